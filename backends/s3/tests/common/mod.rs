//! Helpers shared by the integration tests: the server's endpoint, a test client, fresh buckets.
#![allow(dead_code)]

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use aws_credential_types::Credentials;
use crossmodal_s3::aws_sdk_s3::Client;
use crossmodal_s3::aws_sdk_s3::config::{BehaviorVersion, Region, ResponseChecksumValidation};
use crossmodal_s3::{S3MediaStore, S3StoreConfig};

/// Environment variable naming the S3-compatible server (`scripts/s3-server.sh start`).
pub const ENDPOINT_VAR: &str = "CROSSMODAL_S3_ENDPOINT";
/// Environment variable naming the `moto_server` binary (for tests that start their own).
pub const MOTO_BIN_VAR: &str = "CROSSMODAL_MOTO_BIN";

/// Whether this is a CI run (where a missing server is a failure, not a skip).
pub fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// The value of `var`; `None` (after printing why the test is skipped) when it is unset outside
/// CI; a panic when it is unset under `CI=true`.
pub fn required_env(var: &str, test: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.trim().is_empty() => Some(v.trim().to_string()),
        _ if under_ci() => panic!(
            "{var} is not set but CI=true: the S3 tests must run in CI. Start the server with \
             `scripts/s3-server.sh install && eval \"$(scripts/s3-server.sh start)\"`."
        ),
        _ => {
            eprintln!(
                "SKIPPED {test}: {var} is not set. Run `scripts/s3-server.sh install && \
                 eval \"$(scripts/s3-server.sh start)\"` to run the S3 tests against a local \
                 S3-compatible server."
            );
            None
        }
    }
}

/// The endpoint, or return from the test (skip) when it is absent outside CI.
#[macro_export]
macro_rules! endpoint_or_skip {
    ($test:expr) => {
        match common::required_env(common::ENDPOINT_VAR, $test) {
            Some(endpoint) => endpoint,
            None => return,
        }
    };
}

/// A client as the tests build it: static credentials, us-east-1, the endpoint, path style.
pub fn test_client(endpoint: &str) -> Client {
    let config = crossmodal_s3::aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "tests"))
        .endpoint_url(endpoint)
        .force_path_style(true)
        // moto 5.1 reports the composite CRC32 of a multipart object without the `-<parts>`
        // suffix real S3 adds, so the SDK would check it as a whole-object CRC and fail every
        // read of a multipart object. The store checks the SHA-256 it records on every `get`,
        // and the tests hash what they stream, so integrity is still verified end to end.
        .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
        .build();
    Client::from_conf(config)
}

/// A bucket name no other test (or run) uses.
pub fn unique_bucket(hint: &str) -> String {
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

/// Creates a fresh bucket and returns its name.
pub async fn create_bucket(client: &Client, hint: &str) -> String {
    let bucket = unique_bucket(hint);
    client
        .create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .unwrap_or_else(|e| {
            panic!(
                "could not create bucket {bucket}: {}",
                crossmodal_s3::aws_sdk_s3::error::DisplayErrorContext(e)
            )
        });
    bucket
}

/// The store configuration the tests use for `bucket` on `endpoint`.
///
/// More attempts than the SDK's default 3: moto 5.1 answers some concurrent `PutObject`s of one
/// key with a 500 (it closes the buffer of the object being replaced while the other request
/// still reads it: `ValueError: I/O operation on closed file`), which S3 never does. A 500 is
/// `Unavailable` and retried by the SDK; the extra attempts keep the concurrency tests from
/// failing on the server's bug.
pub fn test_config(endpoint: &str, bucket: &str) -> S3StoreConfig {
    S3StoreConfig::new(bucket)
        .with_endpoint(endpoint)
        .with_path_style(true)
        .with_max_attempts(8)
}

/// Deletes every object in `bucket`, then the bucket (best effort: keeps a long-running server
/// from growing across test runs).
pub async fn remove_bucket(client: &Client, bucket: &str) {
    let mut token: Option<String> = None;
    loop {
        let Ok(page) = client
            .list_objects_v2()
            .bucket(bucket)
            .set_continuation_token(token.take())
            .send()
            .await
        else {
            return;
        };
        for object in page.contents() {
            if let Some(key) = object.key() {
                let _ = client.delete_object().bucket(bucket).key(key).send().await;
            }
        }
        match page.next_continuation_token {
            Some(next) if page.is_truncated == Some(true) => token = Some(next),
            _ => break,
        }
    }
    let _ = client.delete_bucket().bucket(bucket).send().await;
}

/// A fresh bucket and a store on it (returns the raw client too, for checks behind the store).
pub async fn fresh_store(endpoint: &str, hint: &str) -> (S3MediaStore, Client, String) {
    let client = test_client(endpoint);
    let bucket = create_bucket(&client, hint).await;
    let store = S3MediaStore::new(client.clone(), test_config(endpoint, &bucket)).unwrap();
    (store, client, bucket)
}

/// Peak resident set size of this process so far (`VmHWM`), in bytes.
pub fn peak_rss() -> u64 {
    proc_status_kib("VmHWM:") * 1024
}

/// Current resident set size (`VmRSS`), in bytes.
pub fn current_rss() -> u64 {
    proc_status_kib("VmRSS:") * 1024
}

fn proc_status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("{field} missing from /proc/self/status"))
}

/// Resets the peak RSS to the current RSS (Linux `clear_refs` value 5); false if not allowed.
pub fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// Deterministic pseudo-random bytes (xorshift64*), so large test files do not compress or
/// deduplicate.
pub struct Noise(u64);

impl Noise {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Noise(seed | 1)
    }

    /// Fills `buf`.
    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            let v = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}
