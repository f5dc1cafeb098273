//! AWS SDK clients for the local test servers (static test credentials, us-east-1, the
//! server's endpoint; path-style S3) and bucket helpers.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use aws_credential_types::Credentials;

/// The static credentials every test client signs with (what moto expects).
pub fn credentials() -> Credentials {
    Credentials::new("testing", "testing", None, None, "tests")
}

/// An S3 client for the S3-compatible server: static credentials, us-east-1, path style.
///
/// moto reports multipart checksums differently from S3, so response checksums are validated
/// only when required; the S3 store checks the SHA-256 it records on every read anyway.
pub fn s3_client(endpoint: &str) -> aws_sdk_s3::Client {
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
        .region(aws_sdk_s3::config::Region::new("us-east-1"))
        .credentials_provider(credentials())
        .endpoint_url(endpoint)
        .force_path_style(true)
        .response_checksum_validation(aws_sdk_s3::config::ResponseChecksumValidation::WhenRequired)
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

/// A Bedrock Runtime client for the test server, signing for us-east-1.
pub fn bedrock_client(url: &str) -> aws_sdk_bedrockruntime::Client {
    bedrock_client_in(url, "us-east-1")
}

/// A Bedrock Runtime client for the test server, signing for `region` (the test server takes
/// the signing region as the region of the request, as Bedrock's regional endpoints do).
pub fn bedrock_client_in(url: &str, region: &str) -> aws_sdk_bedrockruntime::Client {
    let config = aws_sdk_bedrockruntime::Config::builder()
        .behavior_version(aws_sdk_bedrockruntime::config::BehaviorVersion::latest())
        .region(aws_sdk_bedrockruntime::config::Region::new(
            region.to_string(),
        ))
        .credentials_provider(credentials())
        .endpoint_url(url)
        .build();
    aws_sdk_bedrockruntime::Client::from_conf(config)
}

/// An STS client for the S3-compatible server (moto answers `GetCallerIdentity` with its
/// account, 123456789012).
pub fn sts_client(endpoint: &str) -> aws_sdk_sts::Client {
    let config = aws_sdk_sts::Config::builder()
        .behavior_version(aws_sdk_sts::config::BehaviorVersion::latest())
        .region(aws_sdk_sts::config::Region::new("us-east-1"))
        .credentials_provider(credentials())
        .endpoint_url(endpoint)
        .build();
    aws_sdk_sts::Client::from_conf(config)
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
        "cmb-{hint}-{:x}-{:x}-{n}",
        std::process::id(),
        nanos % 0xffff_ffff_ffff
    )
}

/// Creates a fresh bucket.
pub async fn create_bucket(client: &aws_sdk_s3::Client, hint: &str) -> String {
    let bucket = unique_bucket(hint);
    client
        .create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .unwrap_or_else(|e| {
            panic!(
                "could not create bucket {bucket}: {}",
                aws_sdk_s3::error::DisplayErrorContext(e)
            )
        });
    bucket
}

/// Creates a fresh bucket in `region` (`LocationConstraint`).
pub async fn create_bucket_in(client: &aws_sdk_s3::Client, hint: &str, region: &str) -> String {
    use aws_sdk_s3::types::{BucketLocationConstraint, CreateBucketConfiguration};
    let bucket = unique_bucket(hint);
    let mut req = client.create_bucket().bucket(&bucket);
    if region != "us-east-1" {
        req = req.create_bucket_configuration(
            CreateBucketConfiguration::builder()
                .location_constraint(BucketLocationConstraint::from(region))
                .build(),
        );
    }
    req.send().await.unwrap_or_else(|e| {
        panic!(
            "could not create bucket {bucket} in {region}: {}",
            aws_sdk_s3::error::DisplayErrorContext(e)
        )
    });
    bucket
}

/// Whether `s3://bucket/key` exists.
pub async fn object_exists(client: &aws_sdk_s3::Client, bucket: &str, key: &str) -> bool {
    client
        .head_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .is_ok()
}

/// Keys under `prefix`.
pub async fn list_keys(client: &aws_sdk_s3::Client, bucket: &str, prefix: &str) -> Vec<String> {
    let out = client
        .list_objects_v2()
        .bucket(bucket)
        .prefix(prefix)
        .send()
        .await
        .expect("list objects");
    out.contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_string))
        .collect()
}
