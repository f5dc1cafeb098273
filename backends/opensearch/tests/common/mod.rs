//! Helpers shared by the integration tests: servers from the environment, configurations, data.
#![allow(dead_code, unused_imports)]

pub use crossmodal_testkit::skip::under_ci;

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crossmodal_core::{
    AssetId, AssetRecord, AssetStatus, EmbeddingSpace, MediaFormat, MediaKind, MediaProbe,
    RecordMeta, RetryPolicy, Segment, VectorRecord,
};
use crossmodal_opensearch::{OpenSearchConfig, OpenSearchConfigBuilder};

/// Environment variable naming the osmem-server (`scripts/opensearch-server.sh start`).
pub const OSMEM_VAR: &str = "CROSSMODAL_OSMEM_URL";

/// The osmem-server URL; `None` (after saying why the test is skipped) when it is unset outside
/// CI; a panic under `CI=true`.
pub fn osmem_url(test: &str) -> Option<String> {
    match std::env::var(OSMEM_VAR) {
        Ok(v) if !v.trim().is_empty() => Some(v.trim().trim_end_matches('/').to_string()),
        _ => {
            crossmodal_testkit::skip::skip(
                test,
                &format!(
                    "{OSMEM_VAR} is not set. Run `scripts/opensearch-server.sh install \
                 && eval \"$(scripts/opensearch-server.sh start)\"` to run the tests against \
                 osmem-server."
                ),
            );
            None
        }
    }
}

/// The osmem-server URL, or return from the test (skip) when it is absent outside CI.
#[macro_export]
macro_rules! osmem_or_skip {
    ($test:expr) => {
        match common::osmem_url($test) {
            Some(url) => url,
            None => return,
        }
    };
}

/// An index name no other test (or run) uses.
pub fn unique_index(hint: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!(
        "cm-{hint}-{:x}-{:x}-{n}",
        std::process::id(),
        nanos % 0xffff_ffff_ffff
    )
}

/// Retries that keep tests fast: 4 attempts, 5 ms doubling to 50 ms, no jitter.
pub fn fast_retry() -> RetryPolicy {
    RetryPolicy::default()
        .max_attempts(4)
        .initial_backoff(Duration::from_millis(5))
        .max_backoff(Duration::from_millis(50))
        .jitter(false)
        .deadline(Some(Duration::from_secs(30)))
}

/// A configuration builder for `url` with a fresh index name and fast retries.
pub fn builder(url: &str, hint: &str) -> OpenSearchConfigBuilder {
    OpenSearchConfig::builder(url)
        .index(unique_index(hint))
        .retry(fast_retry())
        .request_timeout(Duration::from_secs(20))
}

/// A record of `asset` (by number) in `space` with `vector`.
pub fn record(asset: u32, space: EmbeddingSpace, seq: u32, vector: Vec<f32>) -> VectorRecord {
    VectorRecord {
        asset_id: AssetId::from_content(format!("asset-{asset}").as_bytes()),
        space,
        seq,
        segment: (seq > 0 || space == EmbeddingSpace::Audio)
            .then(|| Segment::new(f64::from(seq) * 4.0, f64::from(seq) * 4.0 + 4.0).unwrap()),
        vector,
        meta: if space == EmbeddingSpace::Audio {
            RecordMeta::new(MediaKind::Audio, MediaFormat::Wav)
        } else {
            RecordMeta::new(MediaKind::Video, MediaFormat::Mp4)
        }
        .tags([format!("t{}", asset % 3)])
        .created_at_ms(1_700_000_000_000 + i64::from(asset) * 1000),
    }
}

/// A catalog record number `n` of `format` in `status`, created at `created_at_ms`.
pub fn asset_record(
    n: u32,
    format: MediaFormat,
    status: AssetStatus,
    created_at_ms: i64,
) -> AssetRecord {
    AssetRecord {
        asset_id: AssetId::from_content(&n.to_le_bytes()),
        probe: MediaProbe {
            format,
            width: Some(640),
            height: Some(480),
            duration_sec: (format.kind() != MediaKind::Image).then_some(12.5),
            has_video: format.kind() == MediaKind::Video,
            has_audio: format.kind() != MediaKind::Image,
        },
        size_bytes: 1234 + u64::from(n),
        media: None,
        display_name: Some(format!("file {n}.{}", format.extension())),
        source_path: None,
        extension_mismatch: None,
        tags: vec!["a".into(), format!("t{n}")],
        fields: Default::default(),
        status,
        created_at_ms,
        updated_at_ms: created_at_ms + 5,
    }
}

/// An SDK configuration with static test credentials in us-east-1 (what SigV4 tests sign with;
/// the test servers check the signature's scope, not its value).
#[cfg(feature = "aws-auth")]
pub fn static_sdk_config() -> crossmodal_opensearch::aws_config::SdkConfig {
    use crossmodal_opensearch::aws_config;
    aws_config::SdkConfig::builder()
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(
            aws_credential_types::provider::SharedCredentialsProvider::new(
                aws_credential_types::Credentials::new("AKIDTEST", "secret", None, None, "tests"),
            ),
        )
        .behavior_version(aws_config::BehaviorVersion::latest())
        .build()
}

/// A builder for a Serverless collection at `url`: SigV4 `aoss`, a fresh index name, fast
/// retries, and a visibility time-out that suits a test server's short delay.
#[cfg(feature = "aws-auth")]
pub fn serverless_builder(url: &str, hint: &str) -> OpenSearchConfigBuilder {
    builder(url, hint)
        .sigv4_with_config(
            crossmodal_opensearch::AwsService::Serverless,
            static_sdk_config(),
        )
        .visibility_timeout(Duration::from_secs(10))
}
