//! The HTTP side of the Bedrock test server: the three operations, their checks and errors.

// Handlers answer early with a whole `Response`; boxing it would only add noise here.
#![allow(clippy::result_large_err)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::SystemTime;

use aws_smithy_types::date_time::Format;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::output::{media_items, render_manifest, render_output, source_items, text_image_vector};
use super::regions::{self, bucket_region};
use super::{ACCOUNT, Job, JobBehaviour, MAX_BODY, Op, Recorded, ServerState, VectorSource};
use crate::bedrock_schema::{self as schema, Parsed, Src, Version};

pub(super) fn aws_error(error_type: &str, message: &str) -> Response {
    let status = StatusCode::from_u16(super::error_status(error_type)).unwrap();
    (
        status,
        [
            ("x-amzn-ErrorType", error_type.to_string()),
            ("content-type", "application/json".to_string()),
            ("x-amzn-RequestId", request_id()),
        ],
        json!({ "message": message }).to_string(),
    )
        .into_response()
}

fn json_response(body: Value) -> Response {
    (
        StatusCode::OK,
        [
            ("content-type", "application/json".to_string()),
            ("x-amzn-RequestId", request_id()),
        ],
        body.to_string(),
    )
        .into_response()
}

fn request_id() -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "00000000-0000-4000-8000-{:012x}",
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn timestamp(t: SystemTime) -> String {
    aws_smithy_types::DateTime::from(t)
        .fmt(Format::DateTime)
        .unwrap()
}

/// Bedrock's wording of a model-body schema violation.
fn malformed(detail: &str) -> String {
    format!("Malformed input request: {detail}, please reformat your input and try again.")
}

/// Why S3 media cannot be used.
enum MediaError {
    /// The object does not exist (or cannot be read): a state, not a malformed request.
    Missing(String),
    /// The request is wrong (a bucket in another region, another owner): a violation.
    Refused(String),
}

impl ServerState {
    fn count(&self, op: Op) {
        *self.calls.lock().unwrap().entry(op).or_default() += 1;
    }

    fn record(&self, r: Recorded) {
        self.recorded.lock().unwrap().push(r);
    }

    fn vector_source(&self) -> Option<Arc<dyn VectorSource>> {
        self.vector_source.lock().unwrap().clone()
    }

    /// The vector of a text: the vector source's, else the default.
    fn text_vector(&self, version: Version, text: &str) -> Vec<f32> {
        self.vector_source()
            .and_then(|s| s.text(version, text))
            .unwrap_or_else(|| super::text_vector(version, text))
    }

    /// The output items of media: from the vector source's vectors, else the default ones.
    fn media_items(&self, version: Version, parsed: &Parsed, bytes: &[u8]) -> Vec<Value> {
        match self
            .vector_source()
            .and_then(|s| s.media(version, &parsed.input_type, bytes))
        {
            Some(vectors) => source_items(version, parsed, &vectors),
            None => media_items(version, parsed, bytes),
        }
    }

    fn violation(&self, op: Op, what: String) -> Response {
        self.violations
            .lock()
            .unwrap()
            .push(format!("{op:?}: {what}"));
        aws_error("ValidationException", &what)
    }

    /// An injected fault for this call, if any.
    fn fault(&self, op: Op) -> Option<Response> {
        let mut faults = self.faults.lock().unwrap();
        let f = faults.iter_mut().find(|f| f.0 == op && f.1 > 0)?;
        f.1 -= 1;
        Some(aws_error(&f.2, &f.3))
    }

    /// The SigV4 signing region (the signature itself is not verified): the region of the
    /// regional endpoint the request would have gone to.
    fn check_auth(&self, op: Op, headers: &HeaderMap) -> Result<String, Response> {
        let auth = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let scope = auth
            .strip_prefix("AWS4-HMAC-SHA256 Credential=")
            .and_then(|rest| rest.split(',').next())
            .map(|cred| cred.split('/').collect::<Vec<_>>());
        match scope.as_deref() {
            Some([_key, _date, region, "bedrock", "aws4_request"]) if !region.is_empty() => {
                Ok((*region).to_string())
            }
            _ => Err(self.violation(
                op,
                format!("request not signed with SigV4 for service bedrock: {auth:?}"),
            )),
        }
    }

    fn s3(&self) -> Result<&aws_sdk_s3::Client, MediaError> {
        self.s3.as_ref().ok_or_else(|| {
            MediaError::Missing("this test server has no S3 server to read media from".into())
        })
    }

    /// The region of `bucket`; `None` when it does not exist.
    async fn region_of(&self, bucket: &str) -> Result<Option<String>, MediaError> {
        match self.s3()?.get_bucket_location().bucket(bucket).send().await {
            Ok(out) => Ok(Some(bucket_region(
                out.location_constraint().map(|c| c.as_str()),
            ))),
            Err(_) => Ok(None),
        }
    }

    /// Checks S3 media: the owner, the bucket's region, and that the object exists.
    async fn check_s3_media(
        &self,
        uri: &str,
        owner: Option<&str>,
        region: &str,
    ) -> Result<(String, String), MediaError> {
        if let Some(o) = owner
            && o != ACCOUNT
        {
            return Err(MediaError::Refused(format!(
                "bucket owner {o} does not own the bucket of {uri}"
            )));
        }
        let rest = uri.strip_prefix("s3://").unwrap_or(uri);
        let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
        match self.region_of(bucket).await? {
            None => {
                return Err(MediaError::Missing(format!(
                    "Unable to access the S3 object {uri}: the bucket {bucket} does not exist or \
                     is not accessible"
                )));
            }
            Some(r) if r != region => {
                return Err(MediaError::Refused(format!(
                    "The S3 bucket {bucket} of {uri} is in {r}, but the model is invoked in \
                     {region}: input media must be in the model's region"
                )));
            }
            Some(_) => {}
        }
        let exists = self
            .s3()?
            .head_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .is_ok();
        if !exists {
            return Err(MediaError::Missing(format!(
                "Unable to access the S3 object {uri}: it does not exist or is not accessible"
            )));
        }
        Ok((bucket.to_string(), key.to_string()))
    }

    async fn media_bytes(&self, src: &Src, region: &str) -> Result<Vec<u8>, MediaError> {
        match src {
            Src::Base64(b) => Ok(b.clone()),
            Src::S3 { uri, owner } => {
                let (bucket, key) = self.check_s3_media(uri, owner.as_deref(), region).await?;
                let out = self
                    .s3()?
                    .get_object()
                    .bucket(&bucket)
                    .key(&key)
                    .send()
                    .await
                    .map_err(|e| {
                        MediaError::Missing(format!("Unable to access the S3 object {uri}: {e}"))
                    })?;
                let bytes = out
                    .body
                    .collect()
                    .await
                    .map_err(|e| MediaError::Missing(e.to_string()))?;
                Ok(bytes.into_bytes().to_vec())
            }
        }
    }

    /// Answers a media error: a violation or a plain refusal.
    fn media_refusal(&self, op: Op, e: MediaError) -> Response {
        match e {
            MediaError::Missing(m) => aws_error("ValidationException", &m),
            MediaError::Refused(m) => self.violation(op, m),
        }
    }

    /// Checks a member bound to the URI or a header against the API model.
    fn check_bound(&self, op: Op, member: &str, value: Option<&str>) -> Result<(), Response> {
        match &self.model {
            Some(m) => m
                .check_bound(op.name(), member, value)
                .map_err(|e| self.violation(op, format!("service-2.json: {e}"))),
            None => Ok(()),
        }
    }
}

pub(super) async fn invoke_model(
    State(st): State<Arc<ServerState>>,
    Path(model_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let op = Op::InvokeModel;
    st.count(op);
    let region = match st.check_auth(op, &headers) {
        Ok(r) => r,
        Err(r) => return r,
    };
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if header("content-type") != Some("application/json")
        || header("accept") != Some("application/json")
    {
        return st.violation(
            op,
            format!(
                "InvokeModel needs Content-Type and Accept application/json, got {:?} / {:?}",
                header("content-type"),
                header("accept")
            ),
        );
    }
    for (member, value) in [
        ("modelId", Some(model_id.as_str())),
        ("contentType", header("content-type")),
        ("accept", header("accept")),
    ] {
        if let Err(r) = st.check_bound(op, member, value) {
            return r;
        }
    }
    let parsed_body: Option<Value> = serde_json::from_slice(&body).ok();
    st.record(Recorded {
        op,
        region: Some(region.clone()),
        model_id: Some(model_id.clone()),
        model_input: parsed_body.clone(),
        client_request_token: None,
        output_s3_uri: None,
        output_bucket_owner: None,
    });
    if let Some(r) = st.fault(op) {
        return r;
    }
    let max_body = st
        .model
        .as_ref()
        .and_then(|m| m.max_len("InvokeModel", "body"))
        .and_then(|m| usize::try_from(m).ok())
        .unwrap_or(MAX_BODY);
    if body.len() > max_body {
        return st.violation(
            op,
            format!("body of {} bytes is over {max_body}", body.len()),
        );
    }
    let Some((version, prefix)) = Version::of_model_id(&model_id) else {
        return st.violation(op, regions::INVALID_MODEL_ID.to_string());
    };
    if let Err(m) = regions::check_invoke(&model_id, version, prefix, &region) {
        return st.violation(op, m);
    }
    let Some(value) = parsed_body else {
        return st.violation(op, malformed("the body is not JSON"));
    };
    let parsed = match schema::validate(version, &value, true) {
        Ok(p) => p,
        Err(e) => return st.violation(op, malformed(&e)),
    };
    let vector = match (&parsed.text, &parsed.media) {
        (Some(t), None) => json!(st.text_vector(version, t)),
        (Some(t), Some(src)) => match st.media_bytes(src, &region).await {
            Ok(image) => json!(
                st.vector_source()
                    .and_then(|s| s.text_image(version, t, &image))
                    .unwrap_or_else(|| text_image_vector(version, t, &image))
            ),
            Err(e) => return st.media_refusal(op, e),
        },
        (None, Some(src)) => match st.media_bytes(src, &region).await {
            Ok(bytes) => match st.media_items(version, &parsed, &bytes).first() {
                Some(item) => item["embedding"].clone(),
                None => return aws_error("ModelErrorException", "no embedding for this image"),
            },
            Err(e) => return st.media_refusal(op, e),
        },
        (None, None) => unreachable!("validated"),
    };
    json_response(json!({ "data": [ { "embedding": vector } ] }))
}

/// The checked members of a `StartAsyncInvoke` request.
struct StartEnvelope {
    model_id: String,
    input: Value,
    output_uri: String,
    output_owner: Option<String>,
    token: Option<String>,
}

/// The envelope's members as the service reads them (the API model checks them first when it is
/// loaded; these checks hold without it too).
fn check_start_envelope(body: &Value) -> Result<StartEnvelope, String> {
    let m = body.as_object().ok_or("the body is not a JSON object")?;
    for k in m.keys() {
        if ![
            "clientRequestToken",
            "modelId",
            "modelInput",
            "outputDataConfig",
            "tags",
        ]
        .contains(&k.as_str())
        {
            return Err(format!("unexpected member {k:?}"));
        }
    }
    let model_id = m
        .get("modelId")
        .and_then(Value::as_str)
        .ok_or("modelId (string) is required")?;
    if model_id.is_empty()
        || model_id.len() > 256
        || !model_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-/:".contains(&b))
    {
        return Err(format!(
            "modelId {model_id:?} does not match the AsyncInvokeIdentifier pattern"
        ));
    }
    let input = m.get("modelInput").ok_or("modelInput is required")?;
    if !input.is_object() {
        return Err("modelInput must be a JSON object".into());
    }
    let out = m
        .get("outputDataConfig")
        .and_then(Value::as_object)
        .ok_or("outputDataConfig (object) is required")?;
    if out.len() != 1 || !out.contains_key("s3OutputDataConfig") {
        return Err("outputDataConfig is a union: exactly one member, s3OutputDataConfig".into());
    }
    let s3 = out["s3OutputDataConfig"]
        .as_object()
        .ok_or("s3OutputDataConfig must be an object")?;
    for k in s3.keys() {
        if !["s3Uri", "kmsKeyId", "bucketOwner"].contains(&k.as_str()) {
            return Err(format!("unexpected member s3OutputDataConfig.{k}"));
        }
    }
    let uri = s3
        .get("s3Uri")
        .and_then(Value::as_str)
        .ok_or("s3OutputDataConfig.s3Uri is required")?;
    let rest = uri
        .strip_prefix("s3://")
        .ok_or("s3Uri must start with s3://")?;
    let bucket = rest.split('/').next().unwrap_or_default();
    if !(3..=63).contains(&bucket.len())
        || !bucket
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
        || uri.len() > 1024
    {
        return Err(format!("s3Uri {uri:?} does not match the S3Uri pattern"));
    }
    let owner = match s3.get("bucketOwner") {
        None => None,
        Some(Value::String(o)) if o.len() == 12 && o.bytes().all(|b| b.is_ascii_digit()) => {
            Some(o.clone())
        }
        Some(o) => return Err(format!("bucketOwner {o} is not a 12-digit account id")),
    };
    let token = match m.get("clientRequestToken") {
        None => None,
        Some(Value::String(t))
            if (1..=256).contains(&t.len()) && t.bytes().all(|b| (b'!'..=b'~').contains(&b)) =>
        {
            Some(t.clone())
        }
        Some(t) => return Err(format!("clientRequestToken {t} is not a valid token")),
    };
    if let Some(tags) = m.get("tags")
        && !tags.is_array()
    {
        return Err("tags must be a list".into());
    }
    Ok(StartEnvelope {
        model_id: model_id.to_string(),
        input: input.clone(),
        output_uri: uri.to_string(),
        output_owner: owner,
        token,
    })
}

pub(super) async fn start_async_invoke(
    State(st): State<Arc<ServerState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let op = Op::StartAsyncInvoke;
    st.count(op);
    let region = match st.check_auth(op, &headers) {
        Ok(r) => r,
        Err(r) => return r,
    };
    let Ok(value) = serde_json::from_slice::<Value>(&body) else {
        return st.violation(op, "the body is not JSON".into());
    };
    let text = |p: &str| value.pointer(p).and_then(Value::as_str).map(str::to_string);
    st.record(Recorded {
        op,
        region: Some(region.clone()),
        model_id: text("/modelId"),
        model_input: value.get("modelInput").cloned(),
        client_request_token: text("/clientRequestToken"),
        output_s3_uri: text("/outputDataConfig/s3OutputDataConfig/s3Uri"),
        output_bucket_owner: text("/outputDataConfig/s3OutputDataConfig/bucketOwner"),
    });
    if let Some(r) = st.fault(op) {
        return r;
    }
    if body.len() > MAX_BODY {
        return st.violation(
            op,
            format!("body of {} bytes is over {MAX_BODY}", body.len()),
        );
    }
    if let Some(model) = &st.model
        && let Err(e) = model.check_body(op.name(), &value)
    {
        return st.violation(op, format!("service-2.json: {e}"));
    }
    let StartEnvelope {
        model_id,
        input,
        output_uri,
        output_owner,
        token,
    } = match check_start_envelope(&value) {
        Ok(e) => e,
        Err(e) => return st.violation(op, e),
    };
    if let Some(t) = &token
        && let Some(arn) = st.tokens.lock().unwrap().get(t)
    {
        return json_response(json!({ "invocationArn": arn }));
    }
    let Some((version, prefix)) = Version::of_model_id(&model_id) else {
        return st.violation(op, regions::INVALID_MODEL_ID.to_string());
    };
    if let Err(m) = regions::check_async(&model_id, version, prefix, &region) {
        return st.violation(op, m);
    }
    let parsed = match schema::validate(version, &input, false) {
        Ok(p) => p,
        Err(e) => return st.violation(op, malformed(&e)),
    };
    if st.s3.is_none() {
        return aws_error(
            "ValidationException",
            "this test server has no S3 server for output",
        );
    }
    // The output bucket must exist and be in the model's region.
    let bucket = output_uri["s3://".len()..]
        .split('/')
        .next()
        .unwrap()
        .to_string();
    match st.region_of(&bucket).await {
        Ok(Some(r)) if r == region => {}
        Ok(Some(r)) => {
            return st.violation(
                op,
                format!(
                    "The output S3 bucket {bucket} is in {r}, but the model is invoked in \
                     {region}: the output bucket must be in the model's region"
                ),
            );
        }
        _ => {
            return aws_error(
                "ValidationException",
                &format!("The output S3 bucket {bucket} does not exist or is not accessible"),
            );
        }
    }
    // S3 media must exist and be in the region: refused at start, before a job is created.
    if let Some(Src::S3 { uri, owner }) = &parsed.media
        && let Err(e) = st.check_s3_media(uri, owner.as_deref(), &region).await
    {
        return st.media_refusal(op, e);
    }
    let n = st.next_id.fetch_add(1, Ordering::SeqCst);
    let id = format!("{:012x}", n as u64 * 0x9e37_79b9 % 0xffff_ffff_ffff);
    let arn = format!("arn:aws:bedrock:{region}:{ACCOUNT}:async-invoke/{id}");
    let job = Job {
        arn: arn.clone(),
        region,
        model_id,
        version,
        token: token.clone(),
        parsed,
        output_uri: format!("{}/{id}", output_uri.trim_end_matches('/')),
        output_owner,
        behaviour: st.behaviour.lock().unwrap().clone(),
        polls: 0,
        submit: SystemTime::now(),
        status: "InProgress",
        failure: None,
        end: None,
        finishing: false,
    };
    if let Some(t) = token {
        st.tokens.lock().unwrap().insert(t, arn.clone());
    }
    st.jobs.lock().unwrap().insert(arn.clone(), job);
    st.jobs_created.fetch_add(1, Ordering::SeqCst);
    let now = st.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    st.max_in_flight.fetch_max(now, Ordering::SeqCst);
    json_response(json!({ "invocationArn": arn }))
}

fn valid_invocation_arn(arn: &str) -> bool {
    let Some(rest) = arn.strip_prefix("arn:aws:bedrock:") else {
        return false;
    };
    let parts: Vec<&str> = rest.splitn(3, ':').collect();
    if parts.len() != 3 {
        return false;
    }
    let (region, account, resource) = (parts[0], parts[1], parts[2]);
    let id = resource.strip_prefix("async-invoke/").unwrap_or("");
    (1..=20).contains(&region.len())
        && account.len() == 12
        && account.bytes().all(|b| b.is_ascii_digit())
        && id.len() == 12
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

pub(super) async fn get_async_invoke(
    State(st): State<Arc<ServerState>>,
    Path(arn): Path<String>,
    headers: HeaderMap,
) -> Response {
    let op = Op::GetAsyncInvoke;
    st.count(op);
    let region = match st.check_auth(op, &headers) {
        Ok(r) => r,
        Err(r) => return r,
    };
    st.record(Recorded {
        op,
        region: Some(region.clone()),
        model_id: None,
        model_input: None,
        client_request_token: None,
        output_s3_uri: None,
        output_bucket_owner: None,
    });
    if let Some(r) = st.fault(op) {
        return r;
    }
    if let Err(r) = st.check_bound(op, "invocationArn", Some(&arn)) {
        return r;
    }
    if !valid_invocation_arn(&arn) {
        return st.violation(
            op,
            format!("{arn:?} does not match the InvocationArn pattern"),
        );
    }
    // Advance the job; finishing it (writing output.json) happens outside the lock.
    let finish = {
        let mut jobs = st.jobs.lock().unwrap();
        let Some(job) = jobs.get_mut(&arn).filter(|j| j.region == region) else {
            return aws_error(
                "ValidationException",
                &format!("Invocation {arn} not found"),
            );
        };
        let mut finish = None;
        if job.status == "InProgress" && !job.finishing {
            job.polls += 1;
            let b = &job.behaviour;
            if job.polls <= b.unknown_status_polls {
                let r = job_json(job, "Scheduled");
                return json_response(r);
            }
            if !b.never && job.polls > b.unknown_status_polls + b.polls_before_done {
                finish = Some(start_finishing(job));
            }
        }
        finish
    };
    if let Some(finish) = finish {
        finish_and_record(&st, &arn, finish).await;
    }
    let jobs = st.jobs.lock().unwrap();
    match jobs.get(&arn) {
        Some(job) => json_response(job_json(job, job.status)),
        None => aws_error(
            "ValidationException",
            &format!("Invocation {arn} not found"),
        ),
    }
}

/// What finishing a job needs, copied out of the job table so the output is written outside
/// its lock.
pub(super) type Finishing = (Parsed, Version, String, String, JobBehaviour);

/// Marks `job` as finishing (polls meanwhile answer `InProgress`) and copies what writing its
/// output needs.
pub(super) fn start_finishing(job: &mut Job) -> Finishing {
    job.finishing = true;
    (
        job.parsed.clone(),
        job.version,
        job.output_uri.clone(),
        job.region.clone(),
        job.behaviour.clone(),
    )
}

/// Writes a finishing job's output and records its end: `Completed`, or `Failed` with the
/// reason.
pub(super) async fn finish_and_record(st: &ServerState, arn: &str, finishing: Finishing) {
    let (parsed, version, output_uri, job_region, behaviour) = finishing;
    let result = finish_job(
        st,
        arn,
        &parsed,
        version,
        &output_uri,
        &job_region,
        &behaviour,
    )
    .await;
    let mut jobs = st.jobs.lock().unwrap();
    if let Some(job) = jobs.get_mut(arn) {
        job.end = Some(SystemTime::now());
        job.finishing = false;
        match result {
            Ok(()) => job.status = "Completed",
            Err(message) => {
                job.status = "Failed";
                job.failure = Some(message);
            }
        }
        st.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn finish_job(
    st: &ServerState,
    arn: &str,
    parsed: &Parsed,
    version: Version,
    output_uri: &str,
    region: &str,
    behaviour: &JobBehaviour,
) -> Result<(), String> {
    if let Some(msg) = &behaviour.fail {
        return Err(msg.clone());
    }
    let src = parsed.media.as_ref().ok_or("a media job without media")?;
    let bytes = st.media_bytes(src, region).await.map_err(|e| match e {
        MediaError::Missing(m) | MediaError::Refused(m) => m,
    })?;
    let items = st.media_items(version, parsed, &bytes);
    if items.is_empty() {
        return Err("the vector source has no embedding for this media".into());
    }
    let count = items.len();
    let body = render_output(items, behaviour.malformed);
    let rest = &output_uri["s3://".len()..];
    let (bucket, prefix) = rest.split_once('/').unwrap();
    let s3 = st.s3.as_ref().unwrap();
    for (name, content) in [
        ("output.json", body),
        ("manifest.json", render_manifest(arn, count)),
    ] {
        s3.put_object()
            .bucket(bucket)
            .key(format!("{prefix}/{name}"))
            .content_type("application/json")
            .body(content.into())
            .send()
            .await
            .map_err(|e| format!("could not write the output: {e}"))?;
    }
    Ok(())
}

fn job_json(job: &Job, status: &str) -> Value {
    let mut s3 = json!({ "s3Uri": job.output_uri });
    if let Some(o) = &job.output_owner {
        s3["bucketOwner"] = json!(o);
    }
    let mut v = json!({
        "invocationArn": job.arn,
        "modelArn": format!("arn:aws:bedrock:{}::foundation-model/{}", job.region, job.model_id),
        "status": status,
        "submitTime": timestamp(job.submit),
        "lastModifiedTime": timestamp(job.end.unwrap_or_else(SystemTime::now)),
        "outputDataConfig": { "s3OutputDataConfig": s3 },
    });
    if let Some(t) = &job.token {
        v["clientRequestToken"] = json!(t);
    }
    if let Some(f) = &job.failure {
        v["failureMessage"] = json!(f);
    }
    if let Some(e) = job.end {
        v["endTime"] = json!(timestamp(e));
    }
    v
}
