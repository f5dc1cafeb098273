//! The Bedrock test server refuses what Bedrock refuses. For each refusal: the request the old
//! crate code sent (written out by hand) is refused with Bedrock's status, error type and
//! message, and the crate's request now passes.
//!
//! Tests that need S3 skip with a message when `CROSSMODAL_S3_ENDPOINT` is unset, and fail
//! under `CI=true`.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

mod common;

use common::*;
use crossmodal_bedrock::{AudioSegmentation, MarengoConfig, MarengoModel, VideoSegmentation};
use crossmodal_core::{EmbeddingProvider, ErrorKind, MediaFormat};
use serde_json::json;

const V3_ID: &str = "twelvelabs.marengo-embed-3-0-v1:0";
const V27_ID: &str = "twelvelabs.marengo-embed-2-7-v1:0";

// ---------------------------------------------------------------------------------------------
// Point 1: dynamic segmentation is video only

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamic_audio_segmentation_is_refused_and_the_crate_sends_none() {
    let endpoint = s3_or_skip!("dynamic_audio_segmentation_is_refused_and_the_crate_sends_none");
    let env = Env::with_s3(&endpoint, "dynaudio").await;
    let bytes = fake_media(MediaFormat::Wav, 12_000, 4);
    let uri = put_s3(&env.s3, &env.bucket, "in/a.wav", bytes.clone()).await;

    // What the old code sent for audio with `Segmentation::Dynamic { min_duration_sec: 4.0 }`.
    let old = json!({"inputType":"audio","audio":{
        "mediaSource":{"s3Location":{"uri":uri,"bucketOwner":ACCOUNT}},
        "segmentation":{"method":"dynamic","dynamic":{"minDurationSec":4}},
        "embeddingOption":["audio","transcription"],
        "embeddingScope":["clip"]}});
    let refused = start_raw(&env.raw("us-east-1"), V3_ID, &old, &env.uri("out"), None)
        .await
        .unwrap_err();
    refused.assert_validation(
        "Malformed input request: #/audio/segmentation/method: dynamic is not a valid enum \
         value, please reformat your input and try again.",
    );
    assert_eq!(env.server.jobs_created(), 0);

    // The same setting now means video; audio keeps the model's default.
    env.server.reset_counters();
    let p = env.provider(fast_config(MarengoModel::V3_0).video_segmentation(
        VideoSegmentation::Dynamic {
            min_duration_sec: 4,
        },
    ));
    let audio = p
        .embed_media(&media(MediaFormat::Wav, bytes.clone(), Some(&uri)))
        .await
        .unwrap();
    assert!(!audio.is_empty());
    let video_bytes = fake_media(MediaFormat::Mp4, 9_000, 6);
    let video_uri = put_s3(&env.s3, &env.bucket, "in/v.mp4", video_bytes.clone()).await;
    p.embed_media(&media(MediaFormat::Mp4, video_bytes, Some(&video_uri)))
        .await
        .unwrap();
    let bodies = env.server.bodies(Op::StartAsyncInvoke);
    assert!(
        bodies[0]["audio"].get("segmentation").is_none(),
        "{}",
        bodies[0]
    );
    assert_eq!(
        bodies[1]["video"]["segmentation"],
        json!({"method":"dynamic","dynamic":{"minDurationSec":4}})
    );
    // Fixed audio segmentation passes too.
    let p = env.provider(
        fast_config(MarengoModel::V3_0)
            .audio_segmentation(AudioSegmentation::Fixed { duration_sec: 5 }),
    );
    let other = fake_media(MediaFormat::Wav, 12_000, 8);
    let e = p
        .embed_media(&media(MediaFormat::Wav, other, None))
        .await
        .unwrap();
    assert!(e.iter().all(|x| x.segment.unwrap().duration() <= 5.0));
    env.server.assert_no_violations();

    // A configuration string cannot ask for dynamic audio at all.
    let err = "dynamic:4".parse::<AudioSegmentation>().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
}

// ---------------------------------------------------------------------------------------------
// Point 2: 3.0 durations are Integer

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn float_durations_are_refused_and_the_crate_sends_integers() {
    let endpoint = s3_or_skip!("float_durations_are_refused_and_the_crate_sends_integers");
    let env = Env::with_s3(&endpoint, "intdur").await;
    let bytes = fake_media(MediaFormat::Mp4, 9_000, 10);
    let b64 = aws_smithy_types::base64::encode(&bytes);
    let raw = env.raw("us-east-1");
    // What the old code sent for `Segmentation::Fixed { duration_sec: 6.0 }` and for a dynamic
    // minimum of 2.5 s.
    for (segmentation, path) in [
        (
            json!({"method":"fixed","fixed":{"durationSec":6.0}}),
            "#/video/segmentation/fixed/durationSec: expected type: Integer, found: Double",
        ),
        (
            json!({"method":"dynamic","dynamic":{"minDurationSec":2.5}}),
            "#/video/segmentation/dynamic/minDurationSec: expected type: Integer, found: Double",
        ),
    ] {
        let old = json!({"inputType":"video","video":{
            "mediaSource":{"base64String":b64},
            "segmentation":segmentation,
            "embeddingOption":["visual","audio","transcription"],
            "embeddingScope":["clip"]}});
        start_raw(&raw, V3_ID, &old, &env.uri("out"), None)
            .await
            .unwrap_err()
            .assert_validation(path);
    }
    assert_eq!(env.server.jobs_created(), 0);

    env.server.reset_counters();
    let p = env.provider(
        fast_config(MarengoModel::V3_0)
            .video_segmentation(VideoSegmentation::Fixed { duration_sec: 6 }),
    );
    p.embed_media(&media(MediaFormat::Mp4, bytes, None))
        .await
        .unwrap();
    let sent = &env.server.bodies(Op::StartAsyncInvoke)[0]["video"]["segmentation"];
    assert!(sent["fixed"]["durationSec"].is_u64(), "{sent}");
    env.server.assert_no_violations();

    // A setting that is not a whole number of seconds is refused before anything is sent.
    let err = "fixed:2.5".parse::<VideoSegmentation>().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.to_string().contains("whole number"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// Point 3: model ids from the region table

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_profile_called_from_a_region_that_cannot_use_it_is_refused() {
    let env = Env::sync_only().await;
    let text = json!({"inputType":"text","text":{"inputText":"a castle"}});
    let text27 = json!({"inputType":"text","inputText":"a castle","textTruncate":"none"});
    // What the old prefix rule chose: `us.` in us-west-2 and us-east-2, `eu.` in eu-central-1.
    for (region, id, body) in [
        ("us-west-2", format!("us.{V3_ID}"), &text),
        ("us-east-2", format!("us.{V27_ID}"), &text27),
        ("eu-central-1", format!("eu.{V3_ID}"), &text),
        ("eu-west-1", format!("us.{V3_ID}"), &text),
        ("us-east-1", format!("eu.{V3_ID}"), &text),
    ] {
        invoke_raw(&env.raw(region), &id, body)
            .await
            .unwrap_err()
            .assert_validation("The provided model identifier is invalid.");
    }
    // 2.7 takes InvokeModel through a profile only; 3.0 in eu-west-1 likewise.
    for (region, id, body) in [("us-east-1", V27_ID, &text27), ("eu-west-1", V3_ID, &text)] {
        invoke_raw(&env.raw(region), id, body)
            .await
            .unwrap_err()
            .assert_validation("with on-demand throughput isn't supported");
    }

    // The crate refuses those regions with the supported ones named, before any call...
    env.server.reset_counters();
    for (model, region) in [
        (MarengoModel::V3_0, "us-west-2"),
        (MarengoModel::V2_7, "us-east-2"),
        (MarengoModel::V3_0, "eu-central-1"),
    ] {
        let err = MarengoConfig::builder()
            .model(model)
            .region(region)
            .build()
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        assert!(err.to_string().contains("us-east-1, eu-west-1"), "{err}");
    }
    assert_eq!(env.server.total_calls(), 0);
    // ...and its ids pass in every region of the table.
    for row in crossmodal_bedrock::MARENGO_REGIONS {
        let p = env.provider(fast_config(row.model).region(row.region));
        let v = p.embed_text("a castle").await.unwrap();
        assert_eq!(v.len(), row.model.dimension());
        let rec = env.server.recorded().pop().unwrap();
        assert_eq!(rec.region.as_deref(), Some(row.region));
        assert_eq!(rec.model_id.as_deref(), Some(row.invoke_ids[0]));
    }
    env.server.assert_no_violations();
}

// ---------------------------------------------------------------------------------------------
// Point 4: bucketOwner for S3 media in 3.0

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_media_without_a_bucket_owner_is_refused_and_the_crate_requires_or_resolves_it() {
    let endpoint = s3_or_skip!(
        "s3_media_without_a_bucket_owner_is_refused_and_the_crate_requires_or_resolves_it"
    );
    let env = Env::with_s3(&endpoint, "owner").await;
    let image = fake_media(MediaFormat::Png, 2_000, 3);
    let image_uri = put_s3(&env.s3, &env.bucket, "in/i.png", image.clone()).await;
    let video = fake_media(MediaFormat::Mp4, 8_000, 5);
    let video_uri = put_s3(&env.s3, &env.bucket, "in/v.mp4", video.clone()).await;
    let raw = env.raw("us-east-1");

    // What the old code sent without `bucket_owner` configured.
    let owner_missing = "required key [bucketOwner] not found";
    invoke_raw(
        &raw,
        V3_ID,
        &json!({"inputType":"image","image":{"mediaSource":{"s3Location":{"uri":image_uri}}}}),
    )
    .await
    .unwrap_err()
    .assert_validation(&format!(
        "Malformed input request: #/image/mediaSource/s3Location: {owner_missing}"
    ));
    start_raw(
        &raw,
        V3_ID,
        &json!({"inputType":"video","video":{"mediaSource":{"s3Location":{"uri":video_uri}},
                "embeddingOption":["visual"],"embeddingScope":["clip"]}}),
        &env.uri("out"),
        None,
    )
    .await
    .unwrap_err()
    .assert_validation(owner_missing);

    // Without an owner or an STS client the crate refuses S3 media before any call or upload.
    env.server.reset_counters();
    let no_owner = || {
        MarengoConfig::builder()
            .poll(fast_poll())
            .retry(fast_retry())
            .staging_s3_uri(env.uri("staging/"))
            .media_source(crossmodal_bedrock::MediaSourcePolicy::S3Only)
    };
    let p = env.provider(no_owner());
    for m in [
        media(MediaFormat::Png, image.clone(), Some(&image_uri)),
        media(MediaFormat::Mp4, video.clone(), Some(&video_uri)),
        media(MediaFormat::Mp4, video.clone(), None), // would be staged
    ] {
        let err = p.embed_media(&m).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
        assert!(err.to_string().contains("bucket_owner"), "{err}");
    }
    assert_eq!(env.server.total_calls(), 0);
    assert!(list_keys(&env.s3, &env.bucket, "staging/").await.is_empty());

    // With an STS client the account is resolved (moto's account) and sent.
    let p = env
        .provider_builder(no_owner())
        .sts_client(sts_client(&endpoint))
        .build()
        .unwrap();
    p.embed_media(&media(MediaFormat::Png, image, Some(&image_uri)))
        .await
        .unwrap();
    p.embed_media(&media(MediaFormat::Mp4, video.clone(), Some(&video_uri)))
        .await
        .unwrap();
    let image_body = &env.server.bodies(Op::InvokeModel)[0];
    assert_eq!(
        image_body["image"]["mediaSource"]["s3Location"]["bucketOwner"],
        json!(ACCOUNT)
    );
    let video_body = &env.server.bodies(Op::StartAsyncInvoke)[0];
    assert_eq!(
        video_body["video"]["mediaSource"]["s3Location"]["bucketOwner"],
        json!(ACCOUNT)
    );
    // Marengo 2.7 takes S3 media without an owner.
    let p27 = env.provider(no_owner().model(MarengoModel::V2_7));
    p27.embed_media(&media(MediaFormat::Mp4, video, Some(&video_uri)))
        .await
        .unwrap();
    env.server.assert_no_violations();
}

// ---------------------------------------------------------------------------------------------
// Point 5: 2.7 useFixedLengthSec below the default minClipSec

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v27_short_fixed_lengths_need_a_min_clip_and_the_crate_sends_one() {
    let endpoint = s3_or_skip!("v27_short_fixed_lengths_need_a_min_clip_and_the_crate_sends_one");
    let env = Env::with_s3(&endpoint, "minclip").await;
    let bytes = fake_media(MediaFormat::Mp4, 9_000, 12);
    let uri = put_s3(&env.s3, &env.bucket, "in/v.mp4", bytes.clone()).await;
    // What the old code sent for a 3 s fixed length.
    let old = json!({"inputType":"video",
        "mediaSource":{"s3Location":{"uri":uri,"bucketOwner":ACCOUNT}},
        "useFixedLengthSec":3,
        "embeddingOption":["visual-text","visual-image","audio"]});
    start_raw(&env.raw("us-east-1"), V27_ID, &old, &env.uri("out"), None)
        .await
        .unwrap_err()
        .assert_validation("#/useFixedLengthSec: 3 is below minClipSec 4 (its default)");

    env.server.reset_counters();
    let p = env.provider(
        fast_config(MarengoModel::V2_7)
            .video_segmentation(VideoSegmentation::Fixed { duration_sec: 3 }),
    );
    let e = p
        .embed_media(&media(MediaFormat::Mp4, bytes, Some(&uri)))
        .await
        .unwrap();
    assert!(
        e.iter()
            .all(|x| x.segment.unwrap().duration() <= 3.0 + 1e-9)
    );
    let body = &env.server.bodies(Op::StartAsyncInvoke)[0];
    assert_eq!(body["useFixedLengthSec"], json!(3));
    assert_eq!(body["minClipSec"], json!(3));
    env.server.assert_no_violations();
}

// ---------------------------------------------------------------------------------------------
// Media that does not exist, buckets in another region

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_that_does_not_exist_in_s3_is_refused() {
    let endpoint = s3_or_skip!("media_that_does_not_exist_in_s3_is_refused");
    let env = Env::with_s3(&endpoint, "missing").await;
    let bytes = fake_media(MediaFormat::Mp4, 6_000, 14);
    let uri = env.uri("in/not-there.mp4");
    let old = json!({"inputType":"video","video":{
        "mediaSource":{"s3Location":{"uri":uri,"bucketOwner":ACCOUNT}},
        "embeddingOption":["visual"],"embeddingScope":["clip"]}});
    start_raw(&env.raw("us-east-1"), V3_ID, &old, &env.uri("out"), None)
        .await
        .unwrap_err()
        .assert_validation(&format!("Unable to access the S3 object {uri}"));

    // The crate reports it as invalid input naming the object, without a job.
    let p = env.provider(fast_config(MarengoModel::V3_0));
    let m = media(MediaFormat::Mp4, bytes.clone(), Some(&uri));
    let err = p.embed_media(&m).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert!(err.to_string().contains(&uri), "{err}");
    let image_uri = env.uri("in/not-there.png");
    let err = p
        .embed_media(&media(
            MediaFormat::Png,
            fake_media(MediaFormat::Png, 900, 2),
            Some(&image_uri),
        ))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert_eq!(env.server.jobs_created(), 0);
    // Once it exists, the same request passes.
    put_s3(&env.s3, &env.bucket, "in/not-there.mp4", bytes).await;
    assert!(!p.embed_media(&m).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buckets_outside_the_model_region_are_refused() {
    let endpoint = s3_or_skip!("buckets_outside_the_model_region_are_refused");
    let env = Env::with_s3(&endpoint, "regus").await;
    let eu_bucket = create_bucket_in(&env.s3, "regeu", "eu-west-1").await;
    let bytes = fake_media(MediaFormat::Wav, 5_000, 16);
    let eu_uri = put_s3(&env.s3, &eu_bucket, "in/a.wav", bytes.clone()).await;
    let us_uri = put_s3(&env.s3, &env.bucket, "in/a.wav", bytes.clone()).await;
    let body = |uri: &str| {
        json!({"inputType":"audio","audio":{
            "mediaSource":{"s3Location":{"uri":uri,"bucketOwner":ACCOUNT}},
            "embeddingOption":["audio"],"embeddingScope":["clip"]}})
    };
    let raw = env.raw("us-east-1");
    // Output in eu-west-1 for a model called in us-east-1.
    start_raw(
        &raw,
        V3_ID,
        &body(&us_uri),
        &format!("s3://{eu_bucket}/out"),
        None,
    )
    .await
    .unwrap_err()
    .assert_validation("is in eu-west-1, but the model is invoked in us-east-1");
    // Input in eu-west-1.
    start_raw(&raw, V3_ID, &body(&eu_uri), &env.uri("out"), None)
        .await
        .unwrap_err()
        .assert_validation("is in eu-west-1, but the model is invoked in us-east-1");

    // The crate configured for eu-west-1 with its buckets there passes.
    env.server.reset_counters();
    let config = fast_config(MarengoModel::V3_0)
        .region("eu-west-1")
        .output_s3_uri(format!("s3://{eu_bucket}/out/"))
        .build()
        .unwrap();
    let p = crossmodal_bedrock::MarengoProvider::new(env.raw("eu-west-1"), env.s3.clone(), config)
        .unwrap();
    let e = p
        .embed_media(&media(MediaFormat::Wav, bytes, Some(&eu_uri)))
        .await
        .unwrap();
    assert!(!e.is_empty());
    let start = env
        .server
        .recorded()
        .into_iter()
        .find(|r| r.op == Op::StartAsyncInvoke)
        .unwrap();
    assert_eq!(start.region.as_deref(), Some("eu-west-1"));
    assert_eq!(start.model_id.as_deref(), Some(V3_ID));
    env.server.assert_no_violations();
}

// ---------------------------------------------------------------------------------------------
// The envelope against service-2.json

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_are_validated_against_the_api_model() {
    let endpoint = s3_or_skip!("requests_are_validated_against_the_api_model");
    let env = Env::with_s3(&endpoint, "apimodel").await;
    if !env.server.validates_against_api_model() {
        crossmodal_testkit::skip::skip(
            "requests_are_validated_against_the_api_model",
            "service-2.json not found (set CROSSMODAL_BEDROCK_API_MODEL)",
        );
        return;
    }
    let input = json!({"inputType":"text","text":{"inputText":"x"}});
    // An output owner that is not an AccountId.
    start_raw(
        &env.raw("us-east-1"),
        V3_ID,
        &input,
        &env.uri("out"),
        Some("42"),
    )
    .await
    .unwrap_err()
    .assert_validation("AccountId");
    // An output URI that is not an S3Uri.
    start_raw(&env.raw("us-east-1"), V3_ID, &input, "s3://A/out", None)
        .await
        .unwrap_err()
        .assert_validation("S3Uri");
    assert_eq!(env.server.violations().len(), 2);
    // The crate's requests pass.
    env.server.reset_counters();
    let p = env.provider(fast_config(MarengoModel::V3_0));
    p.embed_media(&media(
        MediaFormat::Wav,
        fake_media(MediaFormat::Wav, 3_000, 20),
        None,
    ))
    .await
    .unwrap();
    env.server.assert_no_violations();
}
