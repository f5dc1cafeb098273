//! Where the model reads media from: inline, in place in S3, or a staged upload; and the
//! bucket owner Marengo 3.0 needs for media in S3.
//!
//! Media stored in S3 in the model's region is read by Bedrock in place: no copy, no byte
//! through this process. Media elsewhere goes inline when the request fits the quota (read
//! with that bound), else it is uploaded to the staging prefix a part at a time (one 8 MiB part
//! in memory at once), whatever its size.

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use bytes::Bytes;
use crossmodal_core::{Error, ErrorKind, MediaInput, Result};

use crate::adapter::MediaSource;
use crate::config::MediaSourcePolicy;
use crate::error::map_sdk_error;
use crate::provider::{MarengoProvider, REQUEST_ENVELOPE_BYTES, base64_len, random_token};
use crate::s3_prefix::S3Prefix;

/// Media up to this size is staged with one `PutObject`; larger media as a multipart upload.
const STAGE_SINGLE_PUT_MAX: u64 = 16 * 1024 * 1024;
/// Part size of a staging upload (the one part held in memory at a time).
const STAGE_PART_BYTES: u64 = 8 * 1024 * 1024;

/// A media source ready to send, and the staged object (`s3://…`) to delete afterwards.
pub(crate) struct Prepared {
    pub source: MediaSource,
    pub staged: Option<String>,
}

impl MarengoProvider {
    pub(crate) fn fits_inline(&self, bytes: u64) -> bool {
        usize::try_from(bytes).is_ok_and(|n| {
            base64_len(n) + REQUEST_ENVELOPE_BYTES <= self.config.max_inline_request_bytes
        })
    }

    /// The `bucketOwner` to send with media in S3: the configured account, else the caller's
    /// account resolved once with STS `GetCallerIdentity`. Marengo 3.0 requires it: without a
    /// configured owner or an STS client that is `InvalidInput`, before any call or upload.
    pub(crate) async fn bucket_owner_for_s3(&self) -> Result<Option<String>> {
        if let Some(owner) = &self.config.bucket_owner {
            return Ok(Some(owner.clone()));
        }
        if let Some(owner) = self.resolved_owner.get() {
            return Ok(Some(owner.clone()));
        }
        if !self.adapter.requires_bucket_owner() {
            return Ok(None);
        }
        let Some(sts) = &self.sts else {
            return Err(Error::invalid_input(format!(
                "{} needs the account id of the bucket owner for media in S3 \
                 (s3Location.bucketOwner): set bucket_owner(\"<12-digit account id>\") in the \
                 MarengoConfig, or give the provider an STS client to resolve it \
                 (MarengoProvider::builder(config).sts_client(..); from_env has one)",
                self.config.model
            )));
        };
        let owner = self
            .resolved_owner
            .get_or_try_init(|| async {
                let out = self
                    .config
                    .retry
                    .run("GetCallerIdentity", || async {
                        sts.get_caller_identity()
                            .send()
                            .await
                            .map_err(|e| map_sdk_error("GetCallerIdentity", e))
                    })
                    .await
                    .map_err(|e| {
                        Error::new(
                            e.kind(),
                            format!(
                                "could not resolve the bucket owner for media in S3 with STS \
                                 (set bucket_owner in the MarengoConfig to skip this): {}",
                                e.message()
                            ),
                        )
                        .with_source(e)
                    })?;
                let account = out.account().unwrap_or_default().to_string();
                if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(Error::new(
                        ErrorKind::Backend,
                        format!(
                            "STS GetCallerIdentity answered account {account:?}, not a \
                             12-digit account id"
                        ),
                    ));
                }
                tracing::debug!(account = %account, "resolved the bucket owner with STS");
                Ok(account)
            })
            .await?;
        Ok(Some(owner.clone()))
    }

    /// Chooses where the model reads the media from, uploading it to the staging prefix when
    /// needed. An original stored in S3 in another region than the model's is staged: Bedrock
    /// refuses S3 input from another region.
    pub(crate) async fn prepare_source(&self, media: &MediaInput) -> Result<Prepared> {
        let in_place = media
            .s3_location_in(&self.config.region)
            .map(|r| r.uri.to_string());
        let fits = self.fits_inline(media.size_bytes);
        match (self.config.media_source, in_place) {
            (MediaSourcePolicy::Auto | MediaSourcePolicy::S3Only, Some(uri)) => Ok(Prepared {
                source: MediaSource::S3 {
                    uri,
                    bucket_owner: self.bucket_owner_for_s3().await?,
                },
                staged: None,
            }),
            (MediaSourcePolicy::Auto | MediaSourcePolicy::InlineOnly, None) if fits => {
                self.inline(media).await
            }
            (MediaSourcePolicy::InlineOnly, Some(_)) if fits => self.inline(media).await,
            (MediaSourcePolicy::InlineOnly, _) => {
                Err(self.too_large_inline(media, "media_source is InlineOnly"))
            }
            (MediaSourcePolicy::Auto | MediaSourcePolicy::S3Only, None) => self.stage(media).await,
        }
    }

    /// The media as `mediaSource.base64String` (read with the inline bound).
    async fn inline(&self, media: &MediaInput) -> Result<Prepared> {
        let bytes = media
            .read_all(self.config.max_inline_request_bytes as u64)
            .await?;
        Ok(Prepared {
            source: MediaSource::Base64(aws_smithy_types::base64::encode(&bytes)),
            staged: None,
        })
    }

    pub(crate) fn too_large_inline(&self, media: &MediaInput, why: &str) -> Error {
        let size = usize::try_from(media.size_bytes).unwrap_or(usize::MAX);
        Error::invalid_input(format!(
            "the {} of {} bytes cannot be sent inline: the request would be about {} bytes, over \
             the {} byte limit ({why}); store originals in S3 or configure a staging prefix \
             (staging_s3_uri)",
            media.kind(),
            media.size_bytes,
            base64_len(size).saturating_add(REQUEST_ENVELOPE_BYTES),
            self.config.max_inline_request_bytes,
        ))
    }

    async fn stage(&self, media: &MediaInput) -> Result<Prepared> {
        let Some(staging) = &self.config.staging else {
            let why = if self.config.media_source == MediaSourcePolicy::S3Only {
                "media_source is S3Only and the media is not stored in S3 in the model's region"
            } else {
                "the media is not stored in S3 in the model's region and no staging prefix is \
                 configured"
            };
            return Err(self.too_large_inline(media, why));
        };
        // The owner first: nothing is uploaded for a request that would be refused.
        let bucket_owner = self.bucket_owner_for_s3().await?;
        let key = staging.key(&format!(
            "{}-{}.{}",
            media.asset_id.as_str(),
            random_token(),
            media.format.extension()
        ));
        let bucket = staging.bucket().to_string();
        if media.size_bytes <= STAGE_SINGLE_PUT_MAX {
            let body = media.read_all(STAGE_SINGLE_PUT_MAX).await?;
            self.config
                .retry
                .run("PutObject", || async {
                    self.s3
                        .put_object()
                        .bucket(&bucket)
                        .key(&key)
                        .content_type(media.format.mime_type())
                        .body(ByteStream::from(body.clone()))
                        .send()
                        .await
                        .map_err(|e| {
                            map_sdk_error("PutObject", e)
                                .with_context("staging", format!("s3://{bucket}/{key}"))
                        })
                })
                .await?;
        } else {
            self.stage_in_parts(media, &bucket, &key).await?;
        }
        tracing::debug!(bucket = %bucket, key = %key, "staged media in S3");
        let uri = format!("s3://{bucket}/{key}");
        Ok(Prepared {
            source: MediaSource::S3 {
                uri: uri.clone(),
                bucket_owner,
            },
            staged: Some(uri),
        })
    }

    /// A multipart upload of `media` to `bucket/key`, one part read at a time; aborted on any
    /// failure.
    async fn stage_in_parts(&self, media: &MediaInput, bucket: &str, key: &str) -> Result<()> {
        let at = || format!("s3://{bucket}/{key}");
        let created = self
            .config
            .retry
            .run("CreateMultipartUpload", || async {
                self.s3
                    .create_multipart_upload()
                    .bucket(bucket)
                    .key(key)
                    .content_type(media.format.mime_type())
                    .send()
                    .await
                    .map_err(|e| {
                        map_sdk_error("CreateMultipartUpload", e).with_context("staging", at())
                    })
            })
            .await?;
        let Some(upload_id) = created.upload_id else {
            return Err(
                Error::backend("S3 CreateMultipartUpload returned no upload id")
                    .with_context("staging", at()),
            );
        };
        let result = self.send_parts(media, bucket, key, &upload_id).await;
        if result.is_err() {
            let aborted = self
                .s3
                .abort_multipart_upload()
                .bucket(bucket)
                .key(key)
                .upload_id(&upload_id)
                .send()
                .await;
            if let Err(e) = aborted {
                tracing::warn!(
                    staging = %at(), upload_id = %upload_id,
                    error = %map_sdk_error("AbortMultipartUpload", e),
                    "could not abort a staging upload; a lifecycle rule on the staging prefix \
                     should clean it up"
                );
            }
        }
        result
    }

    async fn send_parts(
        &self,
        media: &MediaInput,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> Result<()> {
        let at = || format!("s3://{bucket}/{key}");
        let mut parts = Vec::new();
        let mut offset = 0u64;
        let mut number = 0i32;
        while offset < media.size_bytes {
            let end = (offset + STAGE_PART_BYTES).min(media.size_bytes);
            let body: Bytes = media.read_range(offset..end).await?;
            number += 1;
            let out = self
                .config
                .retry
                .run("UploadPart", || async {
                    self.s3
                        .upload_part()
                        .bucket(bucket)
                        .key(key)
                        .upload_id(upload_id)
                        .part_number(number)
                        .body(ByteStream::from(body.clone()))
                        .send()
                        .await
                        .map_err(|e| {
                            map_sdk_error("UploadPart", e)
                                .with_context("staging", at())
                                .with_context("part", number)
                        })
                })
                .await?;
            parts.push(
                CompletedPart::builder()
                    .part_number(number)
                    .set_e_tag(out.e_tag)
                    .build(),
            );
            offset = end;
        }
        self.config
            .retry
            .run("CompleteMultipartUpload", || async {
                self.s3
                    .complete_multipart_upload()
                    .bucket(bucket)
                    .key(key)
                    .upload_id(upload_id)
                    .multipart_upload(
                        CompletedMultipartUpload::builder()
                            .set_parts(Some(parts.clone()))
                            .build(),
                    )
                    .send()
                    .await
                    .map_err(|e| {
                        map_sdk_error("CompleteMultipartUpload", e).with_context("staging", at())
                    })
            })
            .await?;
        Ok(())
    }

    /// Deletes a staged upload (when configured to); failures are logged, never fatal.
    pub(crate) async fn unstage(&self, staged: Option<&str>) {
        let Some(uri) = staged else {
            return;
        };
        if !self.config.delete_staged {
            return;
        }
        self.delete_object(uri, "staged media").await;
    }

    /// Deletes `s3://bucket/key`; true when it is gone. Failures are logged.
    pub(crate) async fn delete_object(&self, uri: &str, what: &str) -> bool {
        let Some((bucket, key)) = S3Prefix::parse(uri)
            .ok()
            .map(|p| (p.bucket().to_string(), p.prefix().to_string()))
            .filter(|(_, key)| !key.is_empty())
        else {
            tracing::warn!(uri, "not deleting {what}: not an s3://bucket/key URI");
            return false;
        };
        match self
            .s3
            .delete_object()
            .bucket(&bucket)
            .key(&key)
            .send()
            .await
        {
            Ok(_) => true,
            Err(e) => {
                tracing::warn!(
                    uri, error = %map_sdk_error("DeleteObject", e),
                    "could not delete {what}"
                );
                false
            }
        }
    }
}
