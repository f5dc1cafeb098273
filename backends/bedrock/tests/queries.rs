//! Composed queries (`text_image`), processing windows, and what `Debug` and errors print.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

mod common;

use std::sync::Arc;

use common::schema::{Seg, Version};
use common::*;
use crossmodal_bedrock::{
    MarengoConfig, MarengoModel, MarengoProvider, MediaEmbedOptions, ProcessingWindow,
    VideoSegmentation,
};
use crossmodal_core::{
    AssetId, CrossModalSearcher, EmbeddingProvider, EmbeddingSpace, ErrorKind, FlatIndex,
    IndexSpec, MediaFormat, MediaKind, Query, QueryKind, RecordMeta, VectorIndex, VectorRecord,
};
use serde_json::json;

// ---------------------------------------------------------------------------------------------
// Point 11: text_image

/// A real PNG (the repository's fixture), so the searcher's validation accepts it.
fn png() -> Vec<u8> {
    crossmodal_testkit::fixtures::read("image.png")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_image_queries_use_invoke_model_and_search_like_image_queries() {
    let env = Env::sync_only().await;
    let p = Arc::new(env.provider(fast_config(MarengoModel::V3_0)));
    let image = png();
    let text = "the same knight, but at night";
    let expected = server::text_image_vector(Version::V30, text, &image);

    // Index one image whose vector is the composed query's, and one other.
    let index = Arc::new(FlatIndex::new(IndexSpec::for_model(p.model())));
    let meta = RecordMeta::new(MediaKind::Image, MediaFormat::Png);
    let target = AssetId::from_content(b"night knight");
    let other = AssetId::from_content(b"a dog");
    index
        .upsert(vec![
            VectorRecord {
                asset_id: target.clone(),
                space: EmbeddingSpace::Visual,
                seq: 0,
                segment: None,
                vector: expected.clone(),
                meta: meta.clone(),
            },
            VectorRecord {
                asset_id: other,
                space: EmbeddingSpace::Visual,
                seq: 0,
                segment: None,
                vector: server::text_vector(Version::V30, "a dog"),
                meta,
            },
        ])
        .await
        .unwrap();
    let searcher = CrossModalSearcher::new(p.clone(), index as Arc<dyn VectorIndex>);
    let results = searcher
        .search(&Query::text_image(text, image.clone()).k(2))
        .await
        .unwrap();
    assert_eq!(results.query_kind, QueryKind::Image);
    assert_eq!(results.hits[0].asset_id, target);
    assert!((results.hits[0].cosine - 1.0).abs() < 1e-5);

    let body = &env.server.bodies(Op::InvokeModel)[0];
    assert_eq!(
        body,
        &json!({"inputType":"text_image","text_image":{
            "inputText":text,
            "mediaSource":{"base64String":aws_smithy_types::base64::encode(&image)}}})
    );
    assert_eq!(env.server.calls(Op::StartAsyncInvoke), 0);
    env.server.assert_no_violations();

    // Marengo 2.7 has no composed input: Unsupported, no call.
    env.server.reset_counters();
    let p27 = env.provider(fast_config(MarengoModel::V2_7));
    let m = media(MediaFormat::Png, image.into(), None);
    let err = p27.embed_text_image(text, &m).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unsupported, "{err}");
    assert_eq!(env.server.total_calls(), 0);
}

// ---------------------------------------------------------------------------------------------
// Point 11: processing windows

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_processing_window_re_embeds_part_of_a_long_asset() {
    let endpoint = s3_or_skip!("a_processing_window_re_embeds_part_of_a_long_asset");
    let env = Env::with_s3(&endpoint, "window").await;
    let bytes = fake_media(MediaFormat::Mp4, 60_000, 50); // 60 s to the test server
    let uri = put_s3(&env.s3, &env.bucket, "in/long.mp4", bytes.clone()).await;
    let m = media(MediaFormat::Mp4, bytes.clone(), Some(&uri));
    for model in [MarengoModel::V3_0, MarengoModel::V2_7] {
        env.server.reset_counters();
        let version = if model == MarengoModel::V3_0 {
            Version::V30
        } else {
            Version::V27
        };
        let p = env.provider(
            fast_config(model)
                .video_segmentation(VideoSegmentation::Fixed { duration_sec: 6 })
                .spaces([EmbeddingSpace::Visual]),
        );
        let window = ProcessingWindow::new(24.0, 36.0).unwrap();
        let e = p
            .embed_media_with(&m, &MediaEmbedOptions::new().window(window))
            .await
            .unwrap();
        let body = &env.server.bodies(Op::StartAsyncInvoke)[0];
        match version {
            Version::V30 => {
                assert_eq!(body["video"]["startSec"], json!(24));
                assert_eq!(body["video"]["endSec"], json!(36));
            }
            Version::V27 => {
                assert_eq!(body["startSec"], json!(24));
                assert_eq!(body["lengthSec"], json!(12));
            }
        }
        // The clips of the window, timed from the start of the file, with the vectors the
        // whole file has for them.
        let whole = server::segments(version, "video", Seg::Fixed(6.0), 60.0);
        assert_eq!(e.len(), 2, "{model}");
        for got in &e {
            let s = got.segment.unwrap();
            assert!(s.start_sec >= 24.0 && s.end_sec <= 36.0, "{s:?}");
            let i = whole.iter().position(|w| w.0 == s.start_sec).unwrap();
            let option = if version == Version::V30 {
                "visual"
            } else {
                "visual-image"
            };
            assert_eq!(got.vector, server::media_vector(version, &bytes, option, i));
        }
        // The whole file is another job (another ledger key), not the window's output.
        let all = p.embed_media(&m).await.unwrap();
        assert_eq!(all.len(), whole.len());
        assert_eq!(env.server.calls(Op::StartAsyncInvoke), 2);
        env.server.assert_no_violations();
    }

    // Windows are checked before any call.
    env.server.reset_counters();
    let p = env.provider(fast_config(MarengoModel::V3_0));
    let late = MediaEmbedOptions::new().window(ProcessingWindow::new(61.0, 70.0).unwrap());
    let err = p.embed_media_with(&m, &late).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    let img = media(MediaFormat::Png, png().into(), None);
    let err = p
        .embed_media_with(
            &img,
            &MediaEmbedOptions::new().window(ProcessingWindow::new(0.0, 1.0).unwrap()),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert_eq!(env.server.total_calls(), 0);
}

// ---------------------------------------------------------------------------------------------
// Issue 15 point 4: Debug and errors never print credentials

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debug_output_and_errors_never_print_credentials() {
    use aws_credential_types::Credentials;
    const KEY_ID: &str = "AKIAEXAMPLEKEYID7788";
    const SECRET: &str = "wJalrXUtnFEMIK7MDENGbPxRfiCYsecretKEY99";
    const TOKEN: &str = "IQoJb3JpZ2luX2VjEXAMPLEsessionTOKEN";
    let env = Env::sync_only().await;
    let creds = Credentials::new(KEY_ID, SECRET, Some(TOKEN.to_string()), None, "test");
    let bedrock = aws_sdk_bedrockruntime_client(&env.server.url, creds.clone());
    let s3 = {
        let config = crossmodal_bedrock::aws_sdk_s3::Config::builder()
            .behavior_version(crossmodal_bedrock::aws_sdk_s3::config::BehaviorVersion::latest())
            .region(crossmodal_bedrock::aws_sdk_s3::config::Region::new(
                "us-east-1",
            ))
            .credentials_provider(creds.clone())
            .endpoint_url("http://127.0.0.1:9")
            .build();
        crossmodal_bedrock::aws_sdk_s3::Client::from_conf(config)
    };
    let sts = {
        let config = crossmodal_bedrock::aws_sdk_sts::Config::builder()
            .behavior_version(crossmodal_bedrock::aws_sdk_sts::config::BehaviorVersion::latest())
            .region(crossmodal_bedrock::aws_sdk_sts::config::Region::new(
                "us-east-1",
            ))
            .credentials_provider(creds)
            .endpoint_url("http://127.0.0.1:9")
            .build();
        crossmodal_bedrock::aws_sdk_sts::Client::from_conf(config)
    };
    let config = fast_config(MarengoModel::V3_0)
        .output_s3_uri("s3://my-bucket/out/")
        .build()
        .unwrap();
    let builder = MarengoProvider::builder(config.clone())
        .clients(bedrock.clone(), s3.clone())
        .sts_client(sts.clone());
    let mut printed = vec![format!("{config:?}"), format!("{builder:?}")];
    let p = builder.build().unwrap();
    printed.push(format!("{p:?}"));
    printed.push(format!("{:?}", MarengoConfig::builder()));
    // A failing call: the error's Display and Debug (with its SDK source).
    env.server
        .inject(Op::InvokeModel, 100, "AccessDeniedException", "no access");
    let err = p.embed_text("x").await.unwrap_err();
    printed.push(format!("{err}"));
    printed.push(format!("{err:?}"));
    // An unreachable S3 (staging) and STS (owner): errors from those clients too.
    let p = MarengoProvider::builder(
        fast_config(MarengoModel::V3_0)
            .output_s3_uri("s3://my-bucket/out/")
            .staging_s3_uri("s3://my-bucket/staging/")
            .media_source(crossmodal_bedrock::MediaSourcePolicy::S3Only)
            .retry(fast_retry().max_attempts(1))
            .build()
            .unwrap(),
    )
    .clients(bedrock, s3)
    .build()
    .unwrap();
    let err = p
        .embed_media(&media(
            MediaFormat::Wav,
            fake_media(MediaFormat::Wav, 2_000, 1),
            None,
        ))
        .await
        .unwrap_err();
    printed.push(format!("{err:?}"));
    for text in &printed {
        for secret in [SECRET, TOKEN, KEY_ID] {
            assert!(!text.contains(secret), "{secret} printed in {text}");
        }
    }
    assert!(printed[2].contains("MarengoProvider"), "{}", printed[2]);
}

fn aws_sdk_bedrockruntime_client(
    url: &str,
    creds: aws_credential_types::Credentials,
) -> crossmodal_bedrock::aws_sdk_bedrockruntime::Client {
    use crossmodal_bedrock::aws_sdk_bedrockruntime as br;
    let config = br::Config::builder()
        .behavior_version(br::config::BehaviorVersion::latest())
        .region(br::config::Region::new("us-east-1"))
        .credentials_provider(creds)
        .endpoint_url(url)
        .build();
    br::Client::from_conf(config)
}
