//! A live test against real Amazon Bedrock. It runs only when `CROSSMODAL_LIVE_BEDROCK=1` and
//! AWS credentials are found by the standard chain, and prints why it is skipped otherwise.
//!
//! - `AWS_REGION` (default `us-east-1`): the model's region.
//! - `CROSSMODAL_LIVE_BEDROCK_MODEL` (default `3.0`): `3.0`, `2.7` or a model / profile id.
//! - `CROSSMODAL_LIVE_BEDROCK_OUTPUT` (optional, `s3://bucket/prefix`): also embeds a generated
//!   two-second WAV file by an asynchronous job writing there (inline media, so only write
//!   access to the prefix is needed).
//! - `CROSSMODAL_LIVE_BEDROCK_OWNER` (optional): the bucket owner's account id.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use crossmodal_bedrock::{MarengoConfig, MarengoProvider};
use crossmodal_core::{EmbeddingProvider, EmbeddingSpace, MediaFormat, MediaInput};

fn wav_tone(seconds: u32) -> Vec<u8> {
    let rate = 16_000u32;
    let samples = rate * seconds;
    let mut out = Vec::with_capacity(44 + samples as usize * 2);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + samples * 2).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes()); // PCM
    out.extend_from_slice(&1u16.to_le_bytes()); // mono
    out.extend_from_slice(&rate.to_le_bytes());
    out.extend_from_slice(&(rate * 2).to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&(samples * 2).to_le_bytes());
    for i in 0..samples {
        let t = i as f32 / rate as f32;
        let s = ((t * 440.0 * std::f32::consts::TAU).sin() * 8000.0) as i16;
        out.extend_from_slice(&s.to_le_bytes());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_marengo_on_bedrock() {
    if std::env::var("CROSSMODAL_LIVE_BEDROCK").as_deref() != Ok("1") {
        crossmodal_testkit::skip::not_opted_in(
            "live_marengo_on_bedrock",
            "set CROSSMODAL_LIVE_BEDROCK=1 (with AWS credentials) to run it against real Amazon Bedrock",
        );
        return;
    }
    let region = std::env::var("AWS_REGION").unwrap_or_else(|_| "us-east-1".into());
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(region.clone()))
        .load()
        .await;
    let has_credentials = match sdk.credentials_provider() {
        Some(p) => {
            use aws_credential_types::provider::ProvideCredentials;
            p.provide_credentials().await.is_ok()
        }
        None => false,
    };
    if !has_credentials {
        crossmodal_testkit::skip::not_opted_in(
            "live_marengo_on_bedrock",
            "CROSSMODAL_LIVE_BEDROCK=1 but no AWS credentials were found by the standard chain",
        );
        return;
    }
    let model = std::env::var("CROSSMODAL_LIVE_BEDROCK_MODEL").unwrap_or_else(|_| "3.0".into());
    let mut builder = MarengoConfig::builder().region(region);
    builder = if model.contains('.') && model.len() > 4 {
        builder.model_id(model)
    } else {
        builder.model(model.parse().expect("CROSSMODAL_LIVE_BEDROCK_MODEL"))
    };
    let output = std::env::var("CROSSMODAL_LIVE_BEDROCK_OUTPUT").ok();
    if let Some(out) = &output {
        builder = builder.output_s3_uri(out);
    }
    if let Ok(owner) = std::env::var("CROSSMODAL_LIVE_BEDROCK_OWNER") {
        builder = builder.bucket_owner(owner);
    }
    let config = builder.build().expect("live configuration");
    let provider = MarengoProvider::from_env(config).await.expect("provider");
    let dim = provider.model().dimension;

    let a = provider
        .embed_text("a castle at sunset")
        .await
        .expect("text");
    assert_eq!(a.len(), dim);
    let b = provider
        .embed_text("a castle at sunset")
        .await
        .expect("text");
    let cos: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum::<f32>()
        / (a.iter().map(|x| x * x).sum::<f32>().sqrt()
            * b.iter().map(|x| x * x).sum::<f32>().sqrt());
    assert!(
        cos > 0.99,
        "the same text embedded twice differs (cosine {cos})"
    );

    match output {
        None => eprintln!(
            "live_marengo_on_bedrock: text checked; set CROSSMODAL_LIVE_BEDROCK_OUTPUT to also \
             run an asynchronous audio job"
        ),
        Some(_) => {
            let bytes = bytes::Bytes::from(wav_tone(2));
            let media = MediaInput::from_bytes(MediaFormat::Wav, bytes).with_duration(Some(2.0));
            let e = provider.embed_media(&media).await.expect("audio job");
            assert!(!e.is_empty());
            assert!(e.iter().any(|x| x.space == EmbeddingSpace::Audio));
            assert!(e.iter().all(|x| x.vector.len() == dim));
        }
    }
}
