//! Helpers shared by the integration tests: the server's endpoint, a test client, fresh buckets.
#![allow(dead_code, unused_imports)]

use crossmodal_s3::aws_sdk_s3::Client;
use crossmodal_s3::{S3MediaStore, S3StoreConfig};

/// Environment variable naming the S3-compatible server (`scripts/s3-server.sh start`).
pub const ENDPOINT_VAR: &str = "CROSSMODAL_S3_ENDPOINT";
/// Environment variable naming the `moto_server` binary (for tests that start their own).
pub const MOTO_BIN_VAR: &str = "CROSSMODAL_MOTO_BIN";

/// The value of `var`; `None` (after printing why the test is skipped) when it is unset outside
/// CI; a panic when it is unset under `CI=true`.
pub fn required_env(var: &str, test: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.trim().is_empty() => Some(v.trim().to_string()),
        _ => {
            crossmodal_testkit::skip::skip(
                test,
                &format!(
                    "{var} is not set. Run `scripts/s3-server.sh install && \
                 eval \"$(scripts/s3-server.sh start)\"` to run the S3 tests against a local \
                 S3-compatible server."
                ),
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

pub use crossmodal_testkit::aws::{create_bucket, s3_client as test_client, unique_bucket};
pub use crossmodal_testkit::skip::under_ci;

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
