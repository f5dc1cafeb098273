//! Asynchronous jobs: start (or pick up from the job ledger), poll, read `output.json`, clean up.

use aws_sdk_bedrockruntime::operation::get_async_invoke::GetAsyncInvokeOutput;
use aws_sdk_bedrockruntime::types::{
    AsyncInvokeOutputDataConfig, AsyncInvokeS3OutputDataConfig, AsyncInvokeStatus,
};
use bytes::Bytes;
use crossmodal_core::{
    Embedding, EmbeddingSpace, Error, ErrorKind, JobKey, JobRecord, MediaInput, MediaKind, Result,
};

use crate::adapter::{MediaRequest, MediaSource};
use crate::config::{MarengoConfig, MediaSourcePolicy};
use crate::document::to_document;
use crate::error::map_sdk_error;
use crate::options::MediaEmbedOptions;
use crate::provider::{Counters, MarengoProvider, REQUEST_ENVELOPE_BYTES, random_token};
use crate::s3_prefix::S3Prefix;

/// How a job ended, as far as this call is concerned.
enum Finished {
    /// `Completed`: the folder its output is in.
    Completed(String),
    /// `Failed`, with Bedrock's failure message.
    Failed(String),
}

/// What picking up a recorded job gave.
enum PickedUp {
    /// Its output, read and parsed.
    Done(Vec<Embedding>),
    /// Nothing to pick up any more (unknown to Bedrock, failed, or its output is gone): start
    /// a new job.
    Gone(String),
}

impl MarengoProvider {
    /// The ledger key of a media request: content, async model id, vector options, window.
    fn job_key(&self, media: &MediaInput, options: &MediaEmbedOptions) -> JobKey {
        JobKey::new(
            media.asset_id.clone(),
            self.async_id.clone(),
            format!("{}{}", self.fingerprint, options.fingerprint()),
        )
    }

    pub(crate) async fn embed_async(
        &self,
        media: &MediaInput,
        spaces: &[EmbeddingSpace],
        options: &MediaEmbedOptions,
    ) -> Result<Vec<Embedding>> {
        let kind = media.kind();
        let output = self.config.output.as_ref().ok_or_else(|| {
            Error::invalid_input(format!(
                "{kind} is embedded by an asynchronous Bedrock job, which needs an output \
                 location: set output_s3_uri in the MarengoConfig"
            ))
        })?;
        // Inline media that cannot fit is rejected before waiting for a job slot.
        if self.config.media_source == MediaSourcePolicy::InlineOnly
            && !self.fits_inline(media.size_bytes)
        {
            return Err(self.too_large_inline(media, "media_source is InlineOnly"));
        }
        let _slot = self
            .jobs
            .acquire()
            .await
            .map_err(|_| Error::backend("the provider's job semaphore is closed"))?;
        let key = self.job_key(media, options);
        let recorded = match self.ledger.get(&key).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "could not read the job ledger; starting a new job");
                None
            }
        };
        if let Some(job) = recorded {
            tracing::Span::current().record("invocation_arn", job.invocation.as_str());
            match self.pick_up(&job, kind, spaces).await? {
                PickedUp::Done(embeddings) => {
                    Counters::add(&self.counters.jobs_resumed, 1);
                    tracing::Span::current().record("resumed", true);
                    return Ok(embeddings);
                }
                PickedUp::Gone(why) => {
                    tracing::info!(
                        invocation_arn = %job.invocation, why = %why,
                        "the recorded job cannot be picked up; starting a new one"
                    );
                    self.forget(&job).await;
                }
            }
        }
        let prepared = self.prepare_source(media).await?;
        tracing::Span::current().record("source", prepared.source.describe());
        let request = MediaRequest {
            kind,
            source: &prepared.source,
            spaces,
            video_segmentation: self.config.video_segmentation,
            audio_segmentation: self.config.audio_segmentation,
            asset_embeddings: self.config.asset_embeddings,
            window: options.window,
        };
        let started = self.start_job(&request, output).await;
        let arn = match started {
            Ok(arn) => arn,
            Err(e) => {
                self.unstage(prepared.staged.as_deref()).await;
                return Err(e);
            }
        };
        let mut job = JobRecord::new(key, arn.clone(), output.uri());
        if let Some(staged) = &prepared.staged {
            job = job.staged_input(staged.clone());
        }
        let recorded = match self.ledger.record(&job).await {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(
                    invocation_arn = %arn, error = %e,
                    "could not record the job in the ledger; a time-out will lose it"
                );
                false
            }
        };
        match self.wait_with_timeout(&arn, output, recorded).await? {
            Finished::Completed(folder) => match self.consume(&job, &folder, kind, spaces).await? {
                Some(embeddings) => Ok(embeddings),
                None => {
                    self.forget(&job).await;
                    Err(Error::new(
                        ErrorKind::ModelFailed,
                        format!("job {arn} completed but wrote no {folder}/output.json"),
                    )
                    .with_context("invocation", &arn)
                    .with_context("output", format!("{folder}/output.json")))
                }
            },
            Finished::Failed(why) => {
                self.forget(&job).await;
                Err(Error::new(
                    ErrorKind::ModelFailed,
                    format!("Marengo job {arn} failed: {why}"),
                )
                .with_context("invocation", &arn))
            }
        }
    }

    /// `StartAsyncInvoke` with retries (one idempotency token for every attempt, so a Start
    /// retried after a lost response does not start a second job); the invocation ARN.
    async fn start_job(&self, request: &MediaRequest<'_>, output: &S3Prefix) -> Result<String> {
        let body = self.adapter.media_body(request);
        if matches!(request.source, MediaSource::Base64(_)) {
            let size = serde_json::to_vec(&body)
                .map_err(crate::error::json_error)?
                .len()
                + REQUEST_ENVELOPE_BYTES;
            if size > MarengoConfig::MAX_REQUEST_BYTES {
                return Err(Error::invalid_input(format!(
                    "the request would be about {size} bytes, over Bedrock's {} byte quota",
                    MarengoConfig::MAX_REQUEST_BYTES
                )));
            }
        }
        let model_input = to_document(&body);
        let mut s3_out = AsyncInvokeS3OutputDataConfig::builder().s3_uri(output.uri());
        if let Some(owner) = &self.config.bucket_owner {
            s3_out = s3_out.bucket_owner(owner);
        }
        if let Some(kms) = &self.config.output_kms_key_id {
            s3_out = s3_out.kms_key_id(kms);
        }
        let output_config = AsyncInvokeOutputDataConfig::S3OutputDataConfig(
            s3_out
                .build()
                .map_err(|e| Error::invalid_input(format!("output location: {e}")))?,
        );
        let token = random_token();
        let started = self
            .config
            .retry
            .run("StartAsyncInvoke", || async {
                self.bedrock
                    .start_async_invoke()
                    .model_id(&self.async_id)
                    .model_input(model_input.clone())
                    .output_data_config(output_config.clone())
                    .client_request_token(&token)
                    .send()
                    .await
                    .map_err(|e| {
                        map_sdk_error("StartAsyncInvoke", e).with_context("model", &self.async_id)
                    })
            })
            .await?;
        let arn = started.invocation_arn().to_string();
        Counters::add(&self.counters.jobs_started, 1);
        tracing::Span::current().record("invocation_arn", arn.as_str());
        tracing::debug!(invocation_arn = %arn, "started Marengo job");
        Ok(arn)
    }

    /// Picks up a job of the ledger: waits for it if it is still running, reads its output if
    /// it completed.
    async fn pick_up(
        &self,
        job: &JobRecord,
        kind: MediaKind,
        spaces: &[EmbeddingSpace],
    ) -> Result<PickedUp> {
        let arn = job.invocation.as_str();
        let output = S3Prefix::parse(&job.output_uri).map_err(|e| {
            Error::corrupt(format!(
                "the job ledger's output URI of {arn} is unusable: {}",
                e.message()
            ))
        })?;
        let status = match self.get_job(arn).await {
            Ok(status) => status,
            // GetAsyncInvoke answers ValidationException for an invocation it does not know
            // (expired, or from another account or region).
            Err(e) if matches!(e.kind(), ErrorKind::InvalidInput | ErrorKind::NotFound) => {
                return Ok(PickedUp::Gone(e.to_string()));
            }
            Err(e) => return Err(e),
        };
        tracing::debug!(invocation_arn = %arn, status = status.status().as_str(), "picking up a recorded job");
        let finished = match finished(&status, &output, arn) {
            Some(f) => f,
            None => self.wait_with_timeout(arn, &output, true).await?,
        };
        match finished {
            Finished::Completed(folder) => match self.consume(job, &folder, kind, spaces).await? {
                Some(embeddings) => Ok(PickedUp::Done(embeddings)),
                None => Ok(PickedUp::Gone(format!(
                    "its output {folder}/output.json is gone"
                ))),
            },
            Finished::Failed(why) => Ok(PickedUp::Gone(format!("it failed: {why}"))),
        }
    }

    /// Reads and parses a completed job's output, then forgets the job (ledger record, staged
    /// input) and deletes the output files when configured to. `None` when `output.json` does
    /// not exist. A transient read failure keeps the job recorded, so a retry reads it again.
    async fn consume(
        &self,
        job: &JobRecord,
        folder: &str,
        kind: MediaKind,
        spaces: &[EmbeddingSpace],
    ) -> Result<Option<Vec<Embedding>>> {
        let arn = job.invocation.as_str();
        let output_uri = format!("{folder}/output.json");
        let Some(body) = self.read_output(folder, arn).await? else {
            return Ok(None);
        };
        let parsed = self
            .expect_for(arn, Some(&output_uri))
            .media(&body, kind, spaces)
            .and_then(|parsed| {
                self.info
                    .check_embeddings(kind, &parsed.embeddings)
                    .map_err(|e| {
                        Error::new(
                            ErrorKind::ModelFailed,
                            format!(
                                "unusable output from {arn} (read from {output_uri}): {}",
                                e.message()
                            ),
                        )
                        .with_context("invocation", arn)
                        .with_context("output", &output_uri)
                    })?;
                Ok(parsed)
            });
        // Parsed or not, the job is consumed: reading the same output again gives the same.
        self.forget(job).await;
        let parsed = parsed?;
        self.count_skipped(&parsed.skipped, arn, Some(&output_uri));
        if self.config.delete_output_after_read {
            for name in ["output.json", "manifest.json"] {
                if self
                    .delete_object(&format!("{folder}/{name}"), "job output")
                    .await
                {
                    Counters::add(&self.counters.output_objects_deleted, 1);
                }
            }
        }
        Ok(Some(parsed.embeddings))
    }

    /// Removes a job from the ledger and deletes its staged input.
    async fn forget(&self, job: &JobRecord) {
        if let Err(e) = self.ledger.remove(&job.key).await {
            tracing::warn!(
                invocation_arn = %job.invocation, error = %e,
                "could not remove the job from the ledger"
            );
        }
        self.unstage(job.staged_input.as_deref()).await;
    }

    /// Polls until the job finishes or the poll time-out passes (a `Timeout` error naming the
    /// invocation; the job keeps running and stays in the ledger when `recorded`).
    async fn wait_with_timeout(
        &self,
        arn: &str,
        output: &S3Prefix,
        recorded: bool,
    ) -> Result<Finished> {
        let timeout = self.config.poll.timeout;
        match tokio::time::timeout(timeout, self.wait(arn, output)).await {
            Ok(r) => r,
            Err(_) => {
                let later = if recorded {
                    "it is recorded in the job ledger: a later call for the same media picks \
                     its output up without starting another job"
                } else {
                    "it could not be recorded in the job ledger"
                };
                Err(Error::new(
                    ErrorKind::Timeout,
                    format!(
                        "Marengo job {arn} did not finish within {timeout:?}; it may still be \
                         running on Bedrock, and {later}"
                    ),
                )
                .with_context("invocation", arn)
                .set_temporary(false))
            }
        }
    }

    /// Polls until the job completes or fails.
    async fn wait(&self, arn: &str, output: &S3Prefix) -> Result<Finished> {
        let mut n = 0u32;
        loop {
            tokio::time::sleep(self.config.poll.interval(n)).await;
            n += 1;
            let job = self.get_job(arn).await?;
            if let Some(done) = finished(&job, output, arn) {
                return Ok(done);
            }
            match job.status() {
                AsyncInvokeStatus::InProgress => {
                    tracing::trace!(invocation_arn = %arn, polls = n, "job in progress");
                }
                other => {
                    tracing::debug!(
                        invocation_arn = %arn, status = other.as_str(),
                        "unknown job status; waiting as if in progress"
                    );
                }
            }
        }
    }

    async fn get_job(&self, arn: &str) -> Result<GetAsyncInvokeOutput> {
        self.config
            .retry
            .run("GetAsyncInvoke", || async {
                self.bedrock
                    .get_async_invoke()
                    .invocation_arn(arn)
                    .send()
                    .await
                    .map_err(|e| map_sdk_error("GetAsyncInvoke", e).with_context("invocation", arn))
            })
            .await
    }

    /// `<folder>/output.json`, `None` when it does not exist.
    async fn read_output(&self, folder: &str, arn: &str) -> Result<Option<Bytes>> {
        let location = S3Prefix::parse(folder).map_err(|e| {
            Error::new(
                ErrorKind::ModelFailed,
                format!(
                    "job {arn} reported an unusable output location: {}",
                    e.message()
                ),
            )
            .with_context("invocation", arn)
        })?;
        let key = location.key("output.json");
        let bucket = location.bucket();
        let read = self
            .config
            .retry
            .run("GetObject", || async {
                let out = self
                    .s3
                    .get_object()
                    .bucket(bucket)
                    .key(&key)
                    .send()
                    .await
                    .map_err(|e| map_sdk_error("GetObject", e))?;
                let data = out.body.collect().await.map_err(|e| {
                    Error::new(ErrorKind::Unavailable, format!("reading output.json: {e}"))
                        .with_source(e)
                })?;
                Ok(data.into_bytes())
            })
            .await;
        match read {
            Ok(body) => Ok(Some(body)),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e
                .with_context("invocation", arn)
                .with_context("output", format!("s3://{bucket}/{key}"))),
        }
    }
}

/// The end of a job, if `job` reports one.
fn finished(job: &GetAsyncInvokeOutput, output: &S3Prefix, arn: &str) -> Option<Finished> {
    match job.status() {
        AsyncInvokeStatus::Completed => {
            let uri = job
                .output_data_config()
                .and_then(|c| c.as_s3_output_data_config().ok())
                .map(|c| c.s3_uri().to_string())
                .unwrap_or_else(|| output.uri());
            Some(Finished::Completed(resolve_output_uri(&uri, arn)))
        }
        AsyncInvokeStatus::Failed => Some(Finished::Failed(
            job.failure_message()
                .unwrap_or("no failure message")
                .to_string(),
        )),
        _ => None,
    }
}

/// `<s3Uri>/<invocation id>`: Bedrock writes a job's files under its output URI plus the id (the
/// ARN's last segment); `GetAsyncInvoke` normally reports the URI with the id already appended.
fn resolve_output_uri(uri: &str, arn: &str) -> String {
    let uri = uri.trim_end_matches('/');
    let id = arn.rsplit('/').next().unwrap_or_default();
    if id.is_empty() || uri.ends_with(&format!("/{id}")) {
        uri.to_string()
    } else {
        format!("{uri}/{id}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_uri_resolution() {
        let arn = "arn:aws:bedrock:us-east-1:123456789012:async-invoke/abcdefghijkl";
        assert_eq!(
            resolve_output_uri("s3://b/out/abcdefghijkl", arn),
            "s3://b/out/abcdefghijkl"
        );
        assert_eq!(
            resolve_output_uri("s3://b/out/", arn),
            "s3://b/out/abcdefghijkl"
        );
        assert_eq!(resolve_output_uri("s3://b", arn), "s3://b/abcdefghijkl");
    }
}
