//! [`S3Prefix`]: a bucket and key prefix in S3.

use std::fmt;

use crossmodal_core::{Error, Result};

/// A bucket and key prefix in S3 (`s3://bucket/prefix`).
///
/// ```
/// use crossmodal_bedrock::S3Prefix;
/// let p = S3Prefix::parse("s3://my-bucket/marengo/out/").unwrap();
/// assert_eq!(p.bucket(), "my-bucket");
/// assert_eq!(p.prefix(), "marengo/out");
/// assert_eq!(p.uri(), "s3://my-bucket/marengo/out");
/// assert_eq!(p.key("x.json"), "marengo/out/x.json");
/// assert!(S3Prefix::parse("https://example.com/b").is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct S3Prefix {
    bucket: String,
    prefix: String,
}

impl S3Prefix {
    /// A prefix in `bucket` (leading and trailing `/` are dropped; empty for the bucket root).
    pub fn new(bucket: impl Into<String>, prefix: impl Into<String>) -> Result<Self> {
        let bucket = bucket.into();
        let prefix = prefix.into().trim_matches('/').to_string();
        check_bucket(&bucket)?;
        if prefix.contains("//") {
            return Err(Error::invalid_input(format!(
                "S3 prefix {prefix:?} has an empty path segment"
            )));
        }
        Ok(S3Prefix { bucket, prefix })
    }

    /// Parses `s3://bucket` or `s3://bucket/prefix`.
    pub fn parse(uri: &str) -> Result<Self> {
        let rest = uri
            .strip_prefix("s3://")
            .ok_or_else(|| Error::invalid_input(format!("{uri:?} is not an s3:// URI")))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        S3Prefix::new(bucket, prefix)
    }

    /// The bucket.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The key prefix, without leading or trailing `/` (may be empty).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `s3://bucket/prefix` (no trailing `/`).
    pub fn uri(&self) -> String {
        if self.prefix.is_empty() {
            format!("s3://{}", self.bucket)
        } else {
            format!("s3://{}/{}", self.bucket, self.prefix)
        }
    }

    /// The key of `name` under the prefix.
    pub fn key(&self, name: &str) -> String {
        if self.prefix.is_empty() {
            name.to_string()
        } else {
            format!("{}/{}", self.prefix, name)
        }
    }
}

impl fmt::Display for S3Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.uri())
    }
}

fn check_bucket(bucket: &str) -> Result<()> {
    let ok = (3..=63).contains(&bucket.len())
        && bucket
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && bucket
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric())
        && bucket
            .bytes()
            .last()
            .is_some_and(|b| b.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(Error::invalid_input(format!(
            "{bucket:?} is not a valid S3 bucket name (3-63 of a-z, 0-9, '-', '.')"
        )))
    }
}
