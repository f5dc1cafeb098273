//! Multipart uploads: parts read one at a time (from memory or from disk), a bounded number in
//! flight, the upload aborted on any failure or cancellation.

use std::collections::HashMap;
use std::io::Read;
use std::path::PathBuf;

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart};
use bytes::Bytes;
use crossmodal_core::{Error, ErrorKind, Result};
use sha2::{Digest, Sha256};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;

use crate::error::{Target, sdk_error};

/// Where the parts come from.
pub(crate) enum PartSource {
    /// Slices of an in-memory body (no copies).
    Memory {
        /// The whole body.
        bytes: Bytes,
        /// Bytes already handed out.
        offset: usize,
    },
    /// Successive reads of an open file, hashed as they are read.
    File {
        /// The file (moved into the blocking pool for each read).
        file: Option<std::fs::File>,
        /// Running SHA-256 of what was read.
        hasher: Option<Sha256>,
        /// For error messages.
        path: PathBuf,
    },
}

impl PartSource {
    /// A source reading `file` from its current position.
    pub(crate) fn file(file: std::fs::File, path: PathBuf) -> Self {
        PartSource::File {
            file: Some(file),
            hasher: Some(Sha256::new()),
            path,
        }
    }

    /// The next `n` bytes.
    async fn next(&mut self, n: u64) -> Result<Bytes> {
        match self {
            PartSource::Memory { bytes, offset } => {
                let end = offset.saturating_add(usize::try_from(n).unwrap_or(usize::MAX));
                let end = end.min(bytes.len());
                let part = bytes.slice(*offset..end);
                *offset = end;
                Ok(part)
            }
            PartSource::File { file, hasher, path } => {
                let (Some(mut f), Some(mut h)) = (file.take(), hasher.take()) else {
                    return Err(Error::backend("multipart source used after a failed read"));
                };
                let shown = path.display().to_string();
                let (f, h, buf) = tokio::task::spawn_blocking(move || {
                    let len = usize::try_from(n).unwrap_or(usize::MAX);
                    let mut buf = vec![0u8; len];
                    match f.read_exact(&mut buf) {
                        Ok(()) => {
                            h.update(&buf);
                            Ok((f, h, buf))
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(Error::new(
                            ErrorKind::Conflict,
                            "the file shrank while it was being uploaded",
                        )
                        .with_context("path", &shown)
                        .with_source(e)),
                        Err(e) => Err(Error::from(e).with_context("path", &shown)),
                    }
                })
                .await
                .map_err(crate::error::join_error)??;
                *file = Some(f);
                *hasher = Some(h);
                Ok(Bytes::from(buf))
            }
        }
    }

    /// The SHA-256 of everything a file source handed out (`None` for memory sources, whose
    /// hash the caller computed up front).
    fn finish(self) -> Option<[u8; 32]> {
        match self {
            PartSource::Memory { .. } => None,
            PartSource::File { hasher, .. } => hasher.map(|h| h.finalize().into()),
        }
    }
}

/// One multipart upload to run.
pub(crate) struct Upload<'a> {
    pub client: &'a Client,
    pub bucket: &'a str,
    /// Full object key (prefix included).
    pub object_key: &'a str,
    /// Store key, for error context.
    pub store_key: &'a str,
    pub content_type: &'a str,
    pub metadata: HashMap<String, String>,
    pub len: u64,
    pub part_size: u64,
    pub concurrency: usize,
    /// The hash a file source must have; checked before completing.
    pub expected_sha256: Option<[u8; 32]>,
    /// Whether `expected_sha256` came from the caller (mismatch: `InvalidInput`) or from a
    /// first pass over the file (mismatch: the file changed, `Conflict`).
    pub caller_hash: bool,
    /// Attempts the client makes per request.
    pub attempts: u32,
    /// The store's budget of part bytes in memory, shared by all its uploads.
    pub buffer: &'a UploadBuffer,
}

/// The bytes of upload parts a store holds in memory at once, shared by all its uploads (in
/// KiB permits).
#[derive(Debug, Clone)]
pub(crate) struct UploadBuffer {
    permits: std::sync::Arc<Semaphore>,
    total_kib: u32,
}

impl UploadBuffer {
    /// A budget of `bytes` (at least one KiB).
    pub(crate) fn new(bytes: u64) -> Self {
        let total_kib = u32::try_from((bytes / 1024).max(1)).unwrap_or(u32::MAX >> 4);
        UploadBuffer {
            permits: std::sync::Arc::new(Semaphore::new(total_kib as usize)),
            total_kib,
        }
    }

    /// Waits until `bytes` more fit in the budget (a part larger than the whole budget waits
    /// for all of it).
    pub(crate) async fn reserve(&self, bytes: u64) -> Result<OwnedSemaphorePermit> {
        let kib = u32::try_from(bytes.div_ceil(1024).max(1))
            .unwrap_or(u32::MAX)
            .min(self.total_kib);
        std::sync::Arc::clone(&self.permits)
            .acquire_many_owned(kib)
            .await
            .map_err(|_| Error::backend("the store's upload buffer is closed"))
    }
}

/// Aborts a multipart upload that neither completed nor was aborted explicitly, e.g. because the
/// future running it was dropped.
struct AbortOnDrop {
    client: Client,
    bucket: String,
    key: String,
    upload_id: String,
    armed: bool,
}

impl AbortOnDrop {
    async fn abort(mut self) {
        self.armed = false;
        abort(&self.client, &self.bucket, &self.key, &self.upload_id).await;
    }

    fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            let client = self.client.clone();
            let (bucket, key, id) = (
                std::mem::take(&mut self.bucket),
                std::mem::take(&mut self.key),
                std::mem::take(&mut self.upload_id),
            );
            handle.spawn(async move { abort(&client, &bucket, &key, &id).await });
        } else {
            tracing::warn!(
                bucket = %self.bucket,
                key = %self.key,
                upload_id = %self.upload_id,
                "multipart upload dropped outside a tokio runtime; it was not aborted"
            );
        }
    }
}

async fn abort(client: &Client, bucket: &str, key: &str, upload_id: &str) {
    let result = client
        .abort_multipart_upload()
        .bucket(bucket)
        .key(key)
        .upload_id(upload_id)
        .send()
        .await;
    match result {
        Ok(_) => tracing::debug!(bucket, key, upload_id, "aborted multipart upload"),
        Err(e) => tracing::warn!(
            bucket,
            key,
            upload_id,
            error = %crate::error::causes(&e),
            "could not abort multipart upload; a bucket lifecycle rule should clean it up"
        ),
    }
}

/// Runs `upload` with parts from `source`: create, upload parts (bounded concurrency), check
/// the hash, complete. Any failure aborts the upload before returning.
pub(crate) async fn run(upload: Upload<'_>, source: PartSource) -> Result<()> {
    let target = Target {
        op: "CreateMultipartUpload",
        bucket: upload.bucket,
        key: Some(upload.store_key),
        attempts: upload.attempts,
    };
    let created = upload
        .client
        .create_multipart_upload()
        .bucket(upload.bucket)
        .key(upload.object_key)
        .content_type(upload.content_type)
        .set_metadata(Some(upload.metadata.clone()))
        .checksum_algorithm(ChecksumAlgorithm::Crc32)
        .send()
        .await
        .map_err(|e| sdk_error(e, target))?;
    let Some(upload_id) = created.upload_id else {
        return Err(
            Error::backend("S3 CreateMultipartUpload returned no upload id")
                .with_context("bucket", upload.bucket)
                .with_context("key", upload.store_key),
        );
    };
    let guard = AbortOnDrop {
        client: upload.client.clone(),
        bucket: upload.bucket.to_string(),
        key: upload.object_key.to_string(),
        upload_id: upload_id.clone(),
        armed: true,
    };
    match send_parts(&upload, &upload_id, source).await {
        Ok(()) => {
            guard.disarm();
            Ok(())
        }
        Err(e) => {
            guard.abort().await;
            Err(e.with_context("upload_id", upload_id))
        }
    }
}

async fn send_parts(upload: &Upload<'_>, upload_id: &str, mut source: PartSource) -> Result<()> {
    let mut tasks: JoinSet<Result<CompletedPart>> = JoinSet::new();
    let mut done: Vec<CompletedPart> = Vec::new();
    let mut sent: u64 = 0;
    let mut part_number: i32 = 0;
    while sent < upload.len {
        let n = upload.part_size.min(upload.len - sent);
        while tasks.len() >= upload.concurrency {
            if let Some(joined) = tasks.join_next().await {
                done.push(joined.map_err(crate::error::join_error)??);
            }
        }
        // The part's bytes count against the store's buffer from the read to the upload's end.
        let permit = upload.buffer.reserve(n).await?;
        let body = source.next(n).await?;
        sent += n;
        part_number += 1;
        let part = upload_part(
            upload.client.clone(),
            upload.bucket.to_string(),
            upload.object_key.to_string(),
            upload.store_key.to_string(),
            upload_id.to_string(),
            part_number,
            body,
            upload.attempts,
        );
        tasks.spawn(async move {
            let result = part.await;
            drop(permit);
            result
        });
    }
    while let Some(joined) = tasks.join_next().await {
        done.push(joined.map_err(crate::error::join_error)??);
    }

    if let (Some(read), Some(expected)) = (source.finish(), upload.expected_sha256)
        && read != expected
    {
        let error = if upload.caller_hash {
            Error::invalid_input("the content does not have the SHA-256 the caller gave")
        } else {
            Error::new(
                ErrorKind::Conflict,
                "the file changed while it was being uploaded",
            )
        };
        return Err(error
            .with_context("expected_sha256", hex::encode(expected))
            .with_context("sent_sha256", hex::encode(read)));
    }

    done.sort_by_key(|p| p.part_number());
    upload
        .client
        .complete_multipart_upload()
        .bucket(upload.bucket)
        .key(upload.object_key)
        .upload_id(upload_id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(done))
                .build(),
        )
        .send()
        .await
        .map_err(|e| {
            sdk_error(
                e,
                Target {
                    op: "CompleteMultipartUpload",
                    bucket: upload.bucket,
                    key: Some(upload.store_key),
                    attempts: upload.attempts,
                },
            )
        })?;
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn upload_part(
    client: Client,
    bucket: String,
    object_key: String,
    store_key: String,
    upload_id: String,
    part_number: i32,
    body: Bytes,
    attempts: u32,
) -> Result<CompletedPart> {
    let out = client
        .upload_part()
        .bucket(&bucket)
        .key(&object_key)
        .upload_id(&upload_id)
        .part_number(part_number)
        .checksum_algorithm(ChecksumAlgorithm::Crc32)
        .body(ByteStream::from(body))
        .send()
        .await
        .map_err(|e| {
            sdk_error(
                e,
                Target {
                    op: "UploadPart",
                    bucket: &bucket,
                    key: Some(&store_key),
                    attempts,
                },
            )
            .with_context("part", part_number)
        })?;
    Ok(CompletedPart::builder()
        .part_number(part_number)
        .set_e_tag(out.e_tag)
        .set_checksum_crc32(out.checksum_crc32)
        .build())
}
