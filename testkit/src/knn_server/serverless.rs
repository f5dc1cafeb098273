//! What Amazon OpenSearch Serverless (vector search collections) refuses, for requests signed
//! with SigV4 service `aoss` (`wire-facts.md`, "Corrections and additions"; the opensearch-ruby
//! and opensearch-hadoop Serverless reports for the refresh messages and the 404s):
//!
//! | request | answer |
//! |---|---|
//! | bulk `index` / `create` item with `_id` | item status 400 `illegal_argument_exception`: `Document ID is not supported in create/index operation request` |
//! | `PUT` / `POST /<index>/_doc/<id>`, `/_create/<id>` | 400, the same message |
//! | any `refresh` parameter but `false` | 400 `status_exception`: `<value> refresh policy is not supported.` |
//! | `POST /<index>/_refresh`, `GET /` | 404, empty body (the API is not exposed) |
//! | `POST /<index>/_delete_by_query` | 404, empty body (not offered for vector collections; the status is this server's assumption, the documents give none) |
//! | a `knn_vector` mapping on lucene or nmslib, or a method other than HNSW | 400 `mapper_parsing_exception` (message text assumed) |
//! | no `x-amz-content-sha256` header | 403 |
//!
//! A server started with [`KnnServer::start_serverless`](super::KnnServer::start_serverless)
//! also answers 403 to requests not signed for `aoss`, as a collection endpoint does.

use axum::http::HeaderMap;

use super::{Failure, fail};

/// The message of a document id in an index/create operation.
pub const DOCUMENT_ID_NOT_SUPPORTED: &str =
    "Document ID is not supported in create/index operation request";

/// The SigV4 credential scope service of a request (`es`, `aoss`), if it is signed.
pub fn signing_service(headers: &HeaderMap) -> Option<String> {
    let auth = headers.get("authorization")?.to_str().ok()?;
    let rest = auth.strip_prefix("AWS4-HMAC-SHA256")?;
    let credential = rest
        .split(',')
        .map(str::trim)
        .find_map(|part| part.strip_prefix("Credential="))?;
    // AKID/date/region/service/aws4_request
    credential.split('/').nth(3).map(str::to_string)
}

/// A refusal without a body (Serverless answers unexposed APIs with a bare 404).
fn bare(status: u16) -> Failure {
    let mut f = fail(status, "", "");
    f.bare = true;
    f
}

/// 403 as a collection answers requests it cannot authenticate.
pub(super) fn forbidden(reason: &str) -> Failure {
    let mut f = fail(403, "Forbidden", reason);
    f.forbidden = true;
    f
}

/// Checks a request signed for `aoss` against what Serverless refuses before it is handled.
pub(super) fn check_request(
    method: &str,
    segments: &[&str],
    query: &[(String, String)],
    headers: &HeaderMap,
) -> Result<(), Failure> {
    if !headers.contains_key("x-amz-content-sha256") {
        return Err(forbidden(
            "Amazon OpenSearch Serverless requires the x-amz-content-sha256 header",
        ));
    }
    if let Some((_, v)) = query.iter().find(|(k, _)| k == "refresh") {
        let v = if v.is_empty() { "true" } else { v.as_str() };
        if v != "false" {
            return Err(fail(
                400,
                "status_exception",
                format!("{v} refresh policy is not supported."),
            ));
        }
    }
    match (method, segments) {
        ("GET" | "HEAD", []) => Err(bare(404)),
        (_, [_, "_refresh"]) | (_, ["_refresh"]) => Err(bare(404)),
        (_, [_, "_delete_by_query"]) => Err(bare(404)),
        ("PUT" | "POST", [_, "_doc" | "_create", _]) => Err(fail(
            400,
            "illegal_argument_exception",
            DOCUMENT_ID_NOT_SUPPORTED,
        )),
        _ => Ok(()),
    }
}

/// The mapping refusal for a `knn_vector` field Serverless does not build (lucene, nmslib,
/// non-HNSW methods), if it is one.
pub(super) fn check_knn_method(
    field: &str,
    engine: &str,
    method: Option<&str>,
) -> Result<(), Failure> {
    if engine != "faiss" {
        return Err(fail(
            400,
            "mapper_parsing_exception",
            format!(
                "Engine [{engine}] of field [{field}] is not supported in vector search \
                 collections; supported engines: [faiss]"
            ),
        ));
    }
    if let Some(m) = method
        && m != "hnsw"
    {
        return Err(fail(
            400,
            "mapper_parsing_exception",
            format!(
                "Method [{m}] of field [{field}] is not supported in vector search collections; \
                 supported methods: [hnsw]"
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signing_service_is_read_from_the_credential_scope() {
        let mut h = HeaderMap::new();
        assert_eq!(signing_service(&h), None);
        h.insert(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=AKID/20261201/us-east-1/aoss/aws4_request, \
             SignedHeaders=host;x-amz-date, Signature=abc"
                .parse()
                .unwrap(),
        );
        assert_eq!(signing_service(&h).as_deref(), Some("aoss"));
        h.insert("authorization", "Basic YWRtaW46eA==".parse().unwrap());
        assert_eq!(signing_service(&h), None);
    }
}
