//! `MarengoProvider` on the real `aws-sdk-bedrockruntime` client against the Bedrock-protocol
//! test server (tests/common/server.rs), with job output on the real S3-compatible server.
//!
//! Tests that need S3 (asynchronous jobs, S3 media) skip with a message when
//! `CROSSMODAL_S3_ENDPOINT` is unset, and fail under `CI=true`.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::schema::{self, Seg, Version};
use common::server::{self, media_duration, media_vector, segments};
use common::*;
use crossmodal_bedrock::{
    AudioSegmentation, MarengoConfig, MarengoModel, MarengoProvider, MediaSourcePolicy,
    TextTruncate, VideoSegmentation,
};
use crossmodal_core::{EmbeddingProvider, EmbeddingSpace, ErrorKind, MediaFormat, MediaKind};
use serde_json::{Value, json};

const V3_ID: &str = "twelvelabs.marengo-embed-3-0-v1:0";
const V27_ID: &str = "twelvelabs.marengo-embed-2-7-v1:0";

fn version(model: MarengoModel) -> Version {
    match model {
        MarengoModel::V3_0 => Version::V30,
        MarengoModel::V2_7 => Version::V27,
        other => panic!("no test server version for {other}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Text and images (synchronous InvokeModel)

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v30_text_uses_invoke_model_with_the_base_id() {
    let env = Env::sync_only().await;
    let p = env.provider(fast_config(MarengoModel::V3_0));
    let v = p.embed_text("  a castle at sunset ").await.unwrap();
    assert_eq!(v.len(), 512);
    assert_eq!(v, server::text_vector(Version::V30, "a castle at sunset"));
    // Deterministic, and different texts differ.
    assert_eq!(p.embed_text("a castle at sunset").await.unwrap(), v);
    assert_ne!(p.embed_text("a dog").await.unwrap(), v);

    let rec = &env.server.recorded()[0];
    assert_eq!(rec.op, Op::InvokeModel);
    assert_eq!(rec.model_id.as_deref(), Some(V3_ID));
    assert_eq!(
        rec.model_input.as_ref().unwrap(),
        &json!({"inputType":"text","text":{"inputText":"a castle at sunset"}})
    );
    assert_eq!(env.server.calls(Op::StartAsyncInvoke), 0);
    env.server.assert_no_violations();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v27_text_uses_the_inference_profile_and_never_truncates_silently() {
    let env = Env::sync_only().await;
    let p = env.provider(fast_config(MarengoModel::V2_7));
    assert_eq!(p.invoke_model_id(), format!("us.{V27_ID}"));
    let v = p.embed_text("a dog on a beach").await.unwrap();
    assert_eq!(v.len(), 1024);
    assert_eq!(v, server::text_vector(Version::V27, "a dog on a beach"));
    let rec = &env.server.recorded()[0];
    assert_eq!(
        rec.model_id.as_deref(),
        Some(format!("us.{V27_ID}").as_str())
    );
    assert_eq!(
        rec.model_input.as_ref().unwrap(),
        &json!({"inputType":"text","inputText":"a dog on a beach","textTruncate":"none"})
    );

    // textTruncate "end" when asked for.
    let p = env.provider(fast_config(MarengoModel::V2_7).text_truncate(TextTruncate::End));
    p.embed_text("a dog").await.unwrap();
    assert_eq!(
        env.server.bodies(Op::InvokeModel).last().unwrap()["textTruncate"],
        json!("end")
    );
    env.server.assert_no_violations();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_go_inline_through_invoke_model_for_both_versions() {
    let env = Env::sync_only().await;
    for model in [MarengoModel::V3_0, MarengoModel::V2_7] {
        env.server.reset_counters();
        let p = env.provider(fast_config(model));
        let bytes = fake_media(MediaFormat::Png, 3000, 7);
        // A local store's file:// reference cannot be read by Bedrock: the bytes go inline.
        let m = media(
            MediaFormat::Png,
            bytes.clone(),
            Some("file:///media/ab/cd.png"),
        );
        let e = p.embed_media(&m).await.unwrap();
        assert_eq!(e.len(), 1, "{model}");
        assert_eq!(e[0].space, EmbeddingSpace::Visual);
        assert_eq!(e[0].segment, None);
        assert_eq!(
            e[0].vector,
            media_vector(version(model), &bytes, "image", 0)
        );
        let body = &env.server.bodies(Op::InvokeModel)[0];
        let b64 = aws_smithy_types_b64(&bytes);
        match model {
            MarengoModel::V3_0 => assert_eq!(
                body,
                &json!({"inputType":"image","image":{"mediaSource":{"base64String":b64}}})
            ),
            MarengoModel::V2_7 => assert_eq!(
                body,
                &json!({"inputType":"image","mediaSource":{"base64String":b64}})
            ),
            other => panic!("untested model {other}"),
        }
        assert_eq!(env.server.calls(Op::StartAsyncInvoke), 0);
    }
    env.server.assert_no_violations();
}

fn aws_smithy_types_b64(bytes: &[u8]) -> String {
    // The standard alphabet with padding, as Bedrock expects; computed independently of the
    // provider's encoder.
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_stored_in_s3_is_read_in_place() {
    let endpoint = s3_or_skip!("an_image_stored_in_s3_is_read_in_place");
    let env = Env::with_s3(&endpoint, "img").await;
    let p = env.provider(fast_config(MarengoModel::V3_0));
    let bytes = fake_media(MediaFormat::Jpeg, 4000, 3);
    let uri = put_s3(&env.s3, &env.bucket, "originals/ab/x.jpg", bytes.clone()).await;
    let e = p
        .embed_media(&media(MediaFormat::Jpeg, bytes.clone(), Some(&uri)))
        .await
        .unwrap();
    assert_eq!(e[0].vector, media_vector(Version::V30, &bytes, "image", 0));
    assert_eq!(
        env.server.bodies(Op::InvokeModel)[0],
        json!({"inputType":"image","image":{"mediaSource":{"s3Location":{"uri":uri,"bucketOwner":ACCOUNT}}}})
    );
    env.server.assert_no_violations();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_become_async_jobs_when_sync_images_is_off() {
    let endpoint = s3_or_skip!("images_become_async_jobs_when_sync_images_is_off");
    let env = Env::with_s3(&endpoint, "bulk").await;
    for model in [MarengoModel::V3_0, MarengoModel::V2_7] {
        env.server.reset_counters();
        let p = env.provider(fast_config(model).sync_images(false));
        let bytes = fake_media(MediaFormat::Png, 2500, 11);
        let e = p
            .embed_media(&media(MediaFormat::Png, bytes.clone(), None))
            .await
            .unwrap();
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].space, EmbeddingSpace::Visual);
        assert_eq!(
            e[0].vector,
            media_vector(version(model), &bytes, "image", 0)
        );
        assert_eq!(env.server.calls(Op::InvokeModel), 0);
        assert_eq!(env.server.calls(Op::StartAsyncInvoke), 1);
        let rec = env
            .server
            .recorded()
            .into_iter()
            .find(|r| r.op == Op::StartAsyncInvoke)
            .unwrap();
        // StartAsyncInvoke takes the base model id, also for 2.7.
        assert_eq!(rec.model_id.as_deref(), Some(model.base_id()));
    }
    env.server.assert_no_violations();
}

// ---------------------------------------------------------------------------------------------
// Video and audio (StartAsyncInvoke / GetAsyncInvoke / output.json in S3)

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v30_video_by_s3_location_yields_segments_per_space() {
    let endpoint = s3_or_skip!("v30_video_by_s3_location_yields_segments_per_space");
    let env = Env::with_s3(&endpoint, "v30vid").await;
    let p = env.provider(
        fast_config(MarengoModel::V3_0)
            .video_segmentation(VideoSegmentation::Fixed { duration_sec: 6 })
            .asset_embeddings(true),
    );
    let bytes = fake_media(MediaFormat::Mp4, 20_000, 5); // the server reads it as 20 s
    let uri = put_s3(&env.s3, &env.bucket, "originals/castle.mp4", bytes.clone()).await;
    let e = p
        .embed_media(&media(MediaFormat::Mp4, bytes.clone(), Some(&uri)))
        .await
        .unwrap();

    let rec = env
        .server
        .recorded()
        .into_iter()
        .find(|r| r.op == Op::StartAsyncInvoke)
        .unwrap();
    assert_eq!(rec.model_id.as_deref(), Some(V3_ID));
    assert_eq!(rec.output_s3_uri, Some(env.uri("out")));
    assert_eq!(rec.output_bucket_owner.as_deref(), Some(ACCOUNT));
    assert!(rec.client_request_token.is_some());
    assert_eq!(
        rec.model_input.unwrap(),
        json!({"inputType":"video","video":{
            "mediaSource":{"s3Location":{"uri":uri,"bucketOwner":ACCOUNT}},
            "segmentation":{"method":"fixed","fixed":{"durationSec":6}},
            "embeddingOption":["visual","audio","transcription"],
            "embeddingScope":["clip","asset"]}})
    );

    let segs = segments(
        Version::V30,
        "video",
        Seg::Fixed(6.0),
        media_duration(&bytes),
    );
    assert_eq!(segs.len(), 4);
    let options = ["visual", "audio", "transcription"];
    assert_eq!(e.len(), segs.len() * 3 + 3);
    for (i, (start, end)) in segs.iter().enumerate() {
        for (j, option) in options.iter().enumerate() {
            let got = &e[i * 3 + j];
            assert_eq!(got.space, option.parse::<EmbeddingSpace>().unwrap());
            let seg = got.segment.unwrap();
            assert_eq!((seg.start_sec, seg.end_sec), (*start, *end));
            assert_eq!(got.vector, media_vector(Version::V30, &bytes, option, i));
        }
    }
    // The whole-asset vectors come last, without a segment.
    assert!(e[segs.len() * 3..].iter().all(|x| x.segment.is_none()));
    // The job's output is where the server put it: <s3Uri>/<invocation id>/output.json (and
    // manifest.json), kept by default.
    let mut keys = list_keys(&env.s3, &env.bucket, "out/").await;
    keys.sort();
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert!(keys[0].ends_with("/manifest.json"), "{keys:?}");
    assert!(keys[1].ends_with("/output.json"), "{keys:?}");
    env.server.assert_no_violations();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v27_video_options_map_onto_spaces() {
    let endpoint = s3_or_skip!("v27_video_options_map_onto_spaces");
    let env = Env::with_s3(&endpoint, "v27vid").await;
    let p = env.provider(fast_config(MarengoModel::V2_7).video_segmentation(
        VideoSegmentation::Dynamic {
            min_duration_sec: 3,
        },
    ));
    let bytes = fake_media(MediaFormat::Mp4, 14_000, 9);
    let uri = put_s3(&env.s3, &env.bucket, "in/clip.mp4", bytes.clone()).await;
    let e = p
        .embed_media(&media(MediaFormat::Mp4, bytes.clone(), Some(&uri)))
        .await
        .unwrap();
    let body = env.server.bodies(Op::StartAsyncInvoke)[0].clone();
    assert_eq!(
        body,
        json!({"inputType":"video",
               "mediaSource":{"s3Location":{"uri":uri,"bucketOwner":ACCOUNT}},
               "minClipSec":3,
               "embeddingOption":["visual-image","visual-text","audio"]})
    );
    let segs = segments(
        Version::V27,
        "video",
        Seg::Dynamic(3.0),
        media_duration(&bytes),
    );
    assert_eq!(e.len(), segs.len() * 3);
    let spaces: Vec<EmbeddingSpace> = e[..3].iter().map(|x| x.space).collect();
    assert_eq!(
        spaces,
        [
            EmbeddingSpace::Visual,
            EmbeddingSpace::VisualText,
            EmbeddingSpace::Audio
        ]
    );
    assert_eq!(
        e[1].vector,
        media_vector(Version::V27, &bytes, "visual-text", 0)
    );
    assert_eq!(e[0].vector.len(), 1024);
    p.model().check_embeddings(MediaKind::Video, &e).unwrap();
    env.server.assert_no_violations();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audio_for_both_versions() {
    let endpoint = s3_or_skip!("audio_for_both_versions");
    let env = Env::with_s3(&endpoint, "audio").await;
    let bytes = fake_media(MediaFormat::Wav, 16_000, 21); // 16 s
    let uri = put_s3(&env.s3, &env.bucket, "in/tone.wav", bytes.clone()).await;
    let m = media(MediaFormat::Wav, bytes.clone(), Some(&uri));

    // 3.0: audio and transcription, nested body.
    let p = env.provider(fast_config(MarengoModel::V3_0));
    let e = p.embed_media(&m).await.unwrap();
    let body = env.server.bodies(Op::StartAsyncInvoke)[0].clone();
    assert_eq!(
        body,
        json!({"inputType":"audio","audio":{
            "mediaSource":{"s3Location":{"uri":uri,"bucketOwner":ACCOUNT}},
            "embeddingOption":["audio","transcription"],
            "embeddingScope":["clip"]}})
    );
    let segs = segments(Version::V30, "audio", Seg::Default, 16.0);
    assert_eq!(e.len(), segs.len() * 2);
    assert_eq!(e[0].space, EmbeddingSpace::Audio);
    assert_eq!(e[1].space, EmbeddingSpace::Transcription);

    // 2.7: flat body, no embeddingOption, split evenly near 10 s (16 s -> 2 x 8 s).
    env.server.reset_counters();
    let p = env.provider(fast_config(MarengoModel::V2_7));
    let e = p.embed_media(&m).await.unwrap();
    assert_eq!(
        env.server.bodies(Op::StartAsyncInvoke)[0],
        json!({"inputType":"audio","mediaSource":{"s3Location":{"uri":uri,"bucketOwner":ACCOUNT}}})
    );
    assert_eq!(e.len(), 2);
    assert!(e.iter().all(|x| x.space == EmbeddingSpace::Audio));
    assert_eq!(e[1].segment.unwrap().start_sec, 8.0);
    assert_eq!(e[1].vector, media_vector(Version::V27, &bytes, "audio", 1));
    env.server.assert_no_violations();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_media_not_in_s3_goes_inline_with_the_same_vectors() {
    let endpoint = s3_or_skip!("small_media_not_in_s3_goes_inline_with_the_same_vectors");
    let env = Env::with_s3(&endpoint, "inline").await;
    let p = env.provider(fast_config(MarengoModel::V3_0).spaces([EmbeddingSpace::Visual]));
    let bytes = fake_media(MediaFormat::Mp4, 9_000, 13);
    let inline = p
        .embed_media(&media(
            MediaFormat::Mp4,
            bytes.clone(),
            Some("file:///lib/x.mp4"),
        ))
        .await
        .unwrap();
    let body = &env.server.bodies(Op::StartAsyncInvoke)[0];
    assert_eq!(
        body["video"]["mediaSource"]["base64String"],
        json!(aws_smithy_types_b64(&bytes))
    );
    assert_eq!(body["video"]["embeddingOption"], json!(["visual"]));

    let uri = put_s3(&env.s3, &env.bucket, "in/x.mp4", bytes.clone()).await;
    let by_s3 = p
        .embed_media(&media(MediaFormat::Mp4, bytes.clone(), Some(&uri)))
        .await
        .unwrap();
    assert!(
        env.server.bodies(Op::StartAsyncInvoke)[1]["video"]["mediaSource"]["s3Location"]
            .is_object()
    );
    assert_eq!(inline, by_s3);
    assert!(inline.iter().all(|x| x.space == EmbeddingSpace::Visual));

    // S3Only never inlines: without a staging prefix that is a clear error, no call made.
    env.server.reset_counters();
    let p = env.provider(fast_config(MarengoModel::V3_0).media_source(MediaSourcePolicy::S3Only));
    let err = p
        .embed_media(&media(MediaFormat::Mp4, bytes.clone(), None))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.to_string().contains("staging"), "{err}");
    assert_eq!(env.server.total_calls(), 0);
    env.server.assert_no_violations();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_over_the_request_quota_is_staged_in_s3_and_cleaned_up() {
    let endpoint = s3_or_skip!("media_over_the_request_quota_is_staged_in_s3_and_cleaned_up");
    let env = Env::with_s3(&endpoint, "stage").await;
    let p = env.provider(
        fast_config(MarengoModel::V3_0)
            .staging_s3_uri(env.uri("staging/"))
            .spaces([EmbeddingSpace::Audio]),
    );
    // 19 MB: its base64 (25.3 MB) would break Bedrock's 25 MB request quota.
    let bytes = fake_media(MediaFormat::Mp4, 19_000_000, 17);
    let e = p
        .embed_media(&media(MediaFormat::Mp4, bytes.clone(), None))
        .await
        .unwrap();
    assert!(!e.is_empty());
    let body = &env.server.bodies(Op::StartAsyncInvoke)[0];
    let uri = body["video"]["mediaSource"]["s3Location"]["uri"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        uri.starts_with(&env.uri("staging/")),
        "{uri} is not under the staging prefix"
    );
    // The server hashed the staged object's bytes: the upload was complete.
    assert_eq!(e[0].vector, media_vector(Version::V30, &bytes, "audio", 0));
    // ...and the staged object is gone once the job finished.
    assert!(list_keys(&env.s3, &env.bucket, "staging/").await.is_empty());
    env.server.assert_no_violations();
}

// ---------------------------------------------------------------------------------------------
// Limits: rejected before any request

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_are_enforced_before_any_request() {
    let env = Env::sync_only().await;
    let p27 = env.provider(fast_config(MarengoModel::V2_7));
    let p30 = env.provider(fast_config(MarengoModel::V3_0));
    let no_output = MarengoProvider::new(
        bedrock_client(&env.server.url),
        env.s3.clone(),
        fast_config(MarengoModel::V3_0).build().unwrap(),
    )
    .unwrap();

    let words = |n: usize| vec!["dog"; n].join(" ");
    let cases: Vec<(&str, &str, crossmodal_core::Result<usize>)> = vec![
        (
            "2.7 text of 80 words",
            "at most 77",
            p27.embed_text(&words(80)).await.map(|v| v.len()),
        ),
        (
            "3.0 text of 600 words",
            "tokens",
            p30.embed_text(&words(600)).await.map(|v| v.len()),
        ),
        (
            "3.0 text of 520 estimated tokens",
            "at most 500",
            p30.embed_text(&vec!["a,"; 260].join(" "))
                .await
                .map(|v| v.len()),
        ),
        (
            "empty text",
            "empty",
            p30.embed_text("   ").await.map(|v| v.len()),
        ),
        (
            "image over 5 MB",
            "5 MB",
            p30.embed_media(&media(
                MediaFormat::Png,
                fake_media(MediaFormat::Png, 5_000_001, 1),
                None,
            ))
            .await
            .map(|v| v.len()),
        ),
        (
            "empty image",
            "empty",
            p30.embed_media(&media(MediaFormat::Png, bytes::Bytes::new(), None))
                .await
                .map(|v| v.len()),
        ),
        (
            "3 h video for 2.7",
            "at most 7200 s",
            p27.embed_media(
                &media(
                    MediaFormat::Mp4,
                    fake_media(MediaFormat::Mp4, 1000, 1),
                    Some("s3://b/k.mp4"),
                )
                .with_duration(Some(3.0 * 3600.0 + 1.0)),
            )
            .await
            .map(|v| v.len()),
        ),
        (
            "video without an output location",
            "output_s3_uri",
            no_output
                .embed_media(&media(
                    MediaFormat::Mp4,
                    fake_media(MediaFormat::Mp4, 1000, 1),
                    None,
                ))
                .await
                .map(|v| v.len()),
        ),
        (
            "video over the inline quota without staging",
            "staging",
            p30.embed_media(&media(
                MediaFormat::Mp4,
                fake_media(MediaFormat::Mp4, 19_000_000, 2),
                Some("file:///lib/big.mp4"),
            ))
            .await
            .map(|v| v.len()),
        ),
    ];
    for (what, needle, result) in cases {
        let err = result.expect_err(what);
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{what}: {err}");
        assert!(
            err.to_string().contains(needle),
            "{what}: {err} lacks {needle:?}"
        );
    }
    // 75 short words are within 2.7's 77 tokens by the estimate and reach the model.
    assert_eq!(env.server.total_calls(), 0, "a limit let a request through");
    assert_eq!(p27.embed_text(&words(75)).await.unwrap().len(), 1024);
    assert_eq!(p30.embed_text(&words(490)).await.unwrap().len(), 512);
    assert_eq!(env.server.total_calls(), 2);
    env.server.assert_no_violations();
}

// ---------------------------------------------------------------------------------------------
// Errors and retries

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_and_5xx_are_retried_with_backoff() {
    let env = Env::sync_only().await;
    let p = env.provider(fast_config(MarengoModel::V3_0));
    env.server.inject(
        Op::InvokeModel,
        2,
        "ThrottlingException",
        "Too many requests, please wait.",
    );
    env.server.inject(
        Op::InvokeModel,
        1,
        "ServiceUnavailableException",
        "Service unavailable",
    );
    env.server.inject(
        Op::InvokeModel,
        1,
        "InternalServerException",
        "Internal failure",
    );
    let v = p.embed_text("retry me").await.unwrap();
    assert_eq!(v, server::text_vector(Version::V30, "retry me"));
    assert_eq!(
        env.server.calls(Op::InvokeModel),
        5,
        "4 failures then success"
    );

    env.server.reset_counters();
    env.server.inject(
        Op::InvokeModel,
        1,
        "ServiceQuotaExceededException",
        "Your request exceeds the service quota for your account.",
    );
    p.embed_text("quota").await.unwrap();
    assert_eq!(env.server.calls(Op::InvokeModel), 2);
    env.server.assert_no_violations();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_calls_are_retried_and_start_keeps_its_idempotency_token() {
    let endpoint = s3_or_skip!("async_calls_are_retried_and_start_keeps_its_idempotency_token");
    let env = Env::with_s3(&endpoint, "retry").await;
    let p = env.provider(fast_config(MarengoModel::V3_0));
    env.server.inject(
        Op::StartAsyncInvoke,
        1,
        "ThrottlingException",
        "Too many requests",
    );
    env.server.inject(
        Op::StartAsyncInvoke,
        1,
        "ServiceQuotaExceededException",
        "Too many concurrent jobs",
    );
    env.server.inject(
        Op::GetAsyncInvoke,
        2,
        "ThrottlingException",
        "Too many requests",
    );
    env.server.inject(
        Op::GetAsyncInvoke,
        1,
        "InternalServerException",
        "Internal failure",
    );
    let bytes = fake_media(MediaFormat::Mp3, 5000, 4);
    let e = p
        .embed_media(&media(MediaFormat::Mp3, bytes, None))
        .await
        .unwrap();
    assert!(!e.is_empty());
    assert_eq!(env.server.calls(Op::StartAsyncInvoke), 3);
    let tokens: Vec<String> = env
        .server
        .recorded()
        .into_iter()
        .filter(|r| r.op == Op::StartAsyncInvoke)
        .map(|r| r.client_request_token.expect("a clientRequestToken"))
        .collect();
    assert!(tokens.iter().all(|t| t == &tokens[0]), "{tokens:?}");
    // 3 failed polls, one InProgress, one Completed.
    assert_eq!(env.server.calls(Op::GetAsyncInvoke), 5);
    env.server.assert_no_violations();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_throttling_gives_up_after_the_policy_attempts() {
    let env = Env::sync_only().await;
    let p = env.provider(fast_config(MarengoModel::V3_0).retry(fast_retry().max_attempts(3)));
    env.server
        .inject(Op::InvokeModel, 100, "ThrottlingException", "Rate exceeded");
    let err = p.embed_text("x").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::RateLimited, "{err}");
    assert!(err.to_string().contains("Rate exceeded"), "{err}");
    assert_eq!(err.context_value("attempts"), Some("3"));
    assert_eq!(
        env.server.calls(Op::InvokeModel),
        3,
        "the SDK's own retries are off"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validation_and_access_errors_surface_at_once_with_the_service_message() {
    let env = Env::sync_only().await;
    let p = env.provider(fast_config(MarengoModel::V3_0));
    for (error, kind, message) in [
        (
            "ValidationException",
            ErrorKind::InvalidInput,
            "Malformed input request: 1 schema violations found",
        ),
        (
            "AccessDeniedException",
            ErrorKind::PermissionDenied,
            "You don't have access to the model with the specified model ID.",
        ),
        (
            "ResourceNotFoundException",
            ErrorKind::NotFound,
            "Model not found",
        ),
    ] {
        env.server.reset_counters();
        env.server.inject(Op::InvokeModel, 1, error, message);
        let err = p.embed_text("x").await.unwrap_err();
        assert_eq!(err.kind(), kind, "{error}: {err}");
        assert!(err.to_string().contains(message), "{err}");
        assert!(err.to_string().contains(error), "{err}");
        assert!(err.context_value("request_id").is_some(), "{err:?}");
        assert_eq!(env.server.calls(Op::InvokeModel), 1, "{error} was retried");
    }
}

// ---------------------------------------------------------------------------------------------
// Jobs: timeout, failure, unknown status, malformed output

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_that_never_finishes_times_out_naming_the_invocation() {
    let endpoint = s3_or_skip!("a_job_that_never_finishes_times_out_naming_the_invocation");
    let env = Env::with_s3(&endpoint, "slow").await;
    env.server.set_jobs(JobBehaviour {
        never: true,
        ..JobBehaviour::default()
    });
    let p = env.provider(fast_config(MarengoModel::V3_0).job_timeout(Duration::from_millis(300)));
    let started = Instant::now();
    let err = p
        .embed_media(&media(
            MediaFormat::Wav,
            fake_media(MediaFormat::Wav, 3000, 1),
            None,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    assert!(
        !err.is_temporary(),
        "a timed-out job must not be restarted blindly"
    );
    let arn = err
        .context_value("invocation")
        .expect("names the invocation");
    assert!(arn.contains(":async-invoke/"), "{arn}");
    assert!(err.to_string().contains(arn));
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(env.server.calls(Op::GetAsyncInvoke) >= 3, "it polled");
    assert_eq!(p.available_job_slots(), p.config().max_concurrent_jobs);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_job_propagates_its_failure_message() {
    let endpoint = s3_or_skip!("a_failed_job_propagates_its_failure_message");
    let env = Env::with_s3(&endpoint, "fail").await;
    env.server.set_jobs(JobBehaviour {
        fail: Some("The video could not be decoded: unsupported codec".into()),
        polls_before_done: 2,
        ..JobBehaviour::default()
    });
    let p = env.provider(fast_config(MarengoModel::V2_7));
    let err = p
        .embed_media(&media(
            MediaFormat::Mp4,
            fake_media(MediaFormat::Mp4, 3000, 1),
            None,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ModelFailed, "{err}");
    assert!(err.to_string().contains("unsupported codec"), "{err}");
    assert!(
        err.context_value("invocation")
            .unwrap()
            .contains("async-invoke/")
    );
    assert!(!err.is_temporary());
    env.server.assert_no_violations();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_status_counts_as_still_running() {
    let endpoint = s3_or_skip!("an_unknown_status_counts_as_still_running");
    let env = Env::with_s3(&endpoint, "unknown").await;
    env.server.set_jobs(JobBehaviour {
        unknown_status_polls: 3,
        ..JobBehaviour::default()
    });
    let p = env.provider(fast_config(MarengoModel::V3_0));
    let e = p
        .embed_media(&media(
            MediaFormat::Wav,
            fake_media(MediaFormat::Wav, 3000, 2),
            None,
        ))
        .await
        .unwrap();
    assert!(!e.is_empty());
    assert_eq!(env.server.calls(Op::GetAsyncInvoke), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_output_is_rejected_naming_the_invocation() {
    let endpoint = s3_or_skip!("malformed_output_is_rejected_naming_the_invocation");
    let env = Env::with_s3(&endpoint, "malformed").await;
    for (malformed, needle) in [
        (Malformed::NaN, "not valid JSON"),
        (Malformed::WrongDimension, "dimensions"),
        (Malformed::EmptyData, "empty"),
        (Malformed::MissingEmbedding, "no \"embedding\""),
        (Malformed::MissingStartSec, "startSec"),
        (Malformed::NotJson, "not valid JSON"),
    ] {
        env.server.set_jobs(JobBehaviour {
            malformed: Some(malformed),
            ..JobBehaviour::default()
        });
        for model in [MarengoModel::V3_0, MarengoModel::V2_7] {
            let p = env.provider(fast_config(model));
            let err = p
                .embed_media(&media(
                    MediaFormat::Mp4,
                    fake_media(MediaFormat::Mp4, 4000, 3),
                    None,
                ))
                .await
                .unwrap_err();
            assert_eq!(
                err.kind(),
                ErrorKind::ModelFailed,
                "{malformed:?} {model}: {err}"
            );
            assert!(
                err.to_string().contains(needle),
                "{malformed:?} {model}: {err}"
            );
            let arn = err
                .context_value("invocation")
                .expect("names the invocation");
            assert!(
                arn.contains("async-invoke/") && err.to_string().contains(arn),
                "{err}"
            );
        }
    }
    env.server.assert_no_violations();
}

// ---------------------------------------------------------------------------------------------
// Concurrency and cancellation

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_concurrency_bound_holds_under_50_parallel_requests() {
    let endpoint = s3_or_skip!("the_concurrency_bound_holds_under_50_parallel_requests");
    let env = Env::with_s3(&endpoint, "conc").await;
    env.server.set_jobs(JobBehaviour {
        polls_before_done: 3,
        ..JobBehaviour::default()
    });
    let limit = 4;
    let p = Arc::new(
        env.provider(
            fast_config(MarengoModel::V3_0)
                .max_concurrent_jobs(limit)
                .spaces([EmbeddingSpace::Audio]),
        ),
    );
    let tasks: Vec<_> = (0..50u64)
        .map(|i| {
            let p = p.clone();
            tokio::spawn(async move {
                let m = media(
                    MediaFormat::Wav,
                    fake_media(MediaFormat::Wav, 2000, 2 * i + 100),
                    None,
                );
                p.embed_media(&m).await
            })
        })
        .collect();
    for t in tasks {
        let e = t.await.unwrap().unwrap();
        assert!(!e.is_empty());
    }
    assert_eq!(env.server.calls(Op::StartAsyncInvoke), 50);
    let max = env.server.max_in_flight();
    assert!(max <= limit, "{max} jobs ran at once, the limit is {limit}");
    assert!(max >= 2, "jobs did not overlap at all ({max})");
    assert_eq!(env.server.in_flight(), 0);
    assert_eq!(p.available_job_slots(), limit);
    env.server.assert_no_violations();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_call_frees_its_slot_and_stops_polling() {
    let endpoint = s3_or_skip!("dropping_a_call_frees_its_slot_and_stops_polling");
    let env = Env::with_s3(&endpoint, "cancel").await;
    env.server.set_jobs(JobBehaviour {
        never: true,
        ..JobBehaviour::default()
    });
    let p = env.provider(fast_config(MarengoModel::V3_0).max_concurrent_jobs(1));
    let m = media(
        MediaFormat::Wav,
        fake_media(MediaFormat::Wav, 2000, 1),
        None,
    );
    let r = tokio::time::timeout(Duration::from_millis(150), p.embed_media(&m)).await;
    assert!(r.is_err(), "the call should still be polling");
    assert_eq!(p.available_job_slots(), 1, "the slot is back");
    // Let a request that was already on the wire when the future was dropped land.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let polls = env.server.calls(Op::GetAsyncInvoke);
    assert!(polls > 0);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        env.server.calls(Op::GetAsyncInvoke),
        polls,
        "something kept polling after the future was dropped"
    );
    // The slot is usable, and the dropped call's job is not lost: once it finishes, the next
    // call for the same media picks it up instead of starting another.
    env.server.complete_jobs().await;
    assert!(!p.embed_media(&m).await.unwrap().is_empty());
    assert_eq!(env.server.calls(Op::StartAsyncInvoke), 1);
    assert_eq!(p.stats().jobs_resumed, 1);
}

// ---------------------------------------------------------------------------------------------
// Provider description and the test server's own strictness

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model_info_and_fingerprint_follow_the_configuration() {
    let env = Env::sync_only().await;
    let p = env.provider(
        fast_config(MarengoModel::V3_0)
            .spaces([EmbeddingSpace::Visual, EmbeddingSpace::Audio])
            .video_segmentation(VideoSegmentation::Fixed { duration_sec: 5 })
            .audio_segmentation(AudioSegmentation::Fixed { duration_sec: 5 }),
    );
    let info = p.model();
    assert_eq!(info.id, V3_ID);
    assert_eq!(info.dimension, 512);
    assert_eq!(
        info.spaces_for(MediaKind::Video),
        [EmbeddingSpace::Visual, EmbeddingSpace::Audio]
    );
    assert_eq!(info.spaces_for(MediaKind::Audio), [EmbeddingSpace::Audio]);
    let fp = p.options_fingerprint();
    assert!(fp.contains(V3_ID) && fp.contains("fixed:5"), "{fp}");
    let other = env.provider(fast_config(MarengoModel::V3_0));
    assert_ne!(other.options_fingerprint(), fp);

    let p27 = env.provider(fast_config(MarengoModel::V2_7));
    assert_eq!(p27.model(), &crossmodal_core::ModelInfo::marengo_2_7());
    assert_eq!(MarengoConfig::default().model, MarengoModel::V3_0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_test_server_rejects_malformed_requests() {
    let env = Env::sync_only().await;
    let client = bedrock_client(&env.server.url);
    let invoke = |model: &'static str, body: Value| {
        let client = client.clone();
        async move {
            client
                .invoke_model()
                .model_id(model)
                .content_type("application/json")
                .accept("application/json")
                .body(serde_json::to_vec(&body).unwrap().into())
                .send()
                .await
        }
    };
    // A 2.7 (flat) body sent to 3.0.
    let err = invoke(V3_ID, json!({"inputType":"text","inputText":"x"}))
        .await
        .unwrap_err();
    assert!(err.as_service_error().unwrap().is_validation_exception());
    // 2.7 through its base id: InvokeModel needs an inference profile.
    invoke(V27_ID, json!({"inputType":"text","inputText":"x"}))
        .await
        .unwrap_err();
    // Video through InvokeModel.
    invoke(
        V3_ID,
        json!({"inputType":"video","video":{"mediaSource":{"base64String":"AAAA"}}}),
    )
    .await
    .unwrap_err();
    assert_eq!(
        env.server.violations().len(),
        3,
        "{:#?}",
        env.server.violations()
    );

    // The schemas on their own.
    let ok = |v: Version, b: Value| schema::validate(v, &b, false).unwrap();
    let bad = |v: Version, b: Value| schema::validate(v, &b, false).unwrap_err();
    ok(
        Version::V27,
        json!({"inputType":"video","mediaSource":{"s3Location":{"uri":"s3://b/k"}},"useFixedLengthSec":5}),
    );
    bad(
        Version::V27,
        json!({"inputType":"video","mediaSource":{"s3Location":{"uri":"s3://b/k"}},"useFixedLengthSec":1}),
    );
    bad(
        Version::V27,
        json!({"inputType":"audio","mediaSource":{"s3Location":{"uri":"s3://b/k"}},"embeddingOption":["audio"]}),
    );
    bad(
        Version::V27,
        json!({"inputType":"image","mediaSource":{"base64String":"AAAA","s3Location":{"uri":"s3://b/k"}}}),
    );
    bad(
        Version::V27,
        json!({"inputType":"video","mediaSource":{"s3Location":{"uri":"https://b/k"}}}),
    );
    bad(
        Version::V27,
        json!({"inputType":"video","mediaSource":{"s3Location":{"uri":"s3://b/k","bucketOwner":"42"}}}),
    );
    bad(
        Version::V27,
        json!({"inputType":"video","mediaSource":{"s3Location":{"uri":"s3://b/k"}},"embeddingOption":["visual"]}),
    );
    ok(
        Version::V30,
        json!({"inputType":"audio","audio":{"mediaSource":{"base64String":"AAAA"},"embeddingOption":["transcription"]}}),
    );
    bad(
        Version::V30,
        json!({"inputType":"audio","audio":{"mediaSource":{"base64String":"AAAA"},"embeddingOption":["visual"]}}),
    );
    bad(
        Version::V30,
        json!({"inputType":"video","video":{"mediaSource":{"base64String":"AAAA"},"segmentation":{"method":"fixed","fixed":{"durationSec":11}}}}),
    );
    bad(
        Version::V30,
        json!({"inputType":"video","video":{"mediaSource":{"base64String":"AAAA"},"segmentation":{"method":"dynamic","fixed":{"durationSec":5}}}}),
    );
    bad(
        Version::V30,
        json!({"inputType":"video","mediaSource":{"base64String":"AAAA"}}),
    );
    bad(
        Version::V30,
        json!({"inputType":"text","text":{"inputText":"x","textTruncate":"end"}}),
    );
}
