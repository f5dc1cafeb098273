//! Parsing of query strings, JSON options and multipart fields, with a 400 naming the problem.

use axum::extract::multipart::Field;
use bytes::{Bytes, BytesMut};
use crossmodal_core::{AssetId, AssetState, Fusion, MediaKind, SearchMode};

use crate::error::{ApiError, ApiResult};

/// Longest text field (tags, mode, ...) read from a multipart form.
pub(crate) const MAX_TEXT_FIELD: usize = 4096;
/// Most tags on one upload, and the longest tag.
pub(crate) const MAX_TAGS: usize = 32;
pub(crate) const MAX_TAG_CHARS: usize = 64;

pub(crate) fn parse_bool(name: &str, value: &str) -> ApiResult<bool> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        _ => Err(ApiError::bad_request(format!(
            "{name} must be true or false, got {value:?}"
        ))),
    }
}

pub(crate) fn parse_kinds(values: &[String]) -> ApiResult<Vec<MediaKind>> {
    let mut kinds = Vec::new();
    for v in values.iter().flat_map(|v| v.split(',')) {
        let v = v.trim();
        if v.is_empty() || v == "all" {
            continue;
        }
        let kind: MediaKind = v.parse()?;
        if !kinds.contains(&kind) {
            kinds.push(kind);
        }
    }
    Ok(kinds)
}

pub(crate) fn parse_state(s: &str) -> ApiResult<AssetState> {
    Ok(s.parse::<AssetState>()?)
}

pub(crate) fn parse_mode(s: &str) -> ApiResult<SearchMode> {
    Ok(s.trim().parse::<SearchMode>()?)
}

pub(crate) fn parse_k(s: &str) -> ApiResult<usize> {
    s.trim().parse().map_err(|_| {
        ApiError::bad_request(format!(
            "k must be a positive integer, got {:?}",
            truncated(s)
        ))
    })
}

pub(crate) fn parse_min_score(s: &str) -> ApiResult<f32> {
    s.trim().parse().map_err(|_| {
        ApiError::bad_request(format!(
            "min_score must be a number in [-1, 1], got {:?}",
            truncated(s)
        ))
    })
}

pub(crate) fn parse_fusion(s: &str) -> ApiResult<Fusion> {
    match s.to_ascii_lowercase().as_str() {
        "cosine" => Ok(Fusion::Cosine),
        "rrf" | "reciprocal_rank" => Ok(Fusion::ReciprocalRank { k0: 60.0 }),
        "weighted" => Ok(Fusion::Weighted {
            keyword_weight: crossmodal_core::DEFAULT_KEYWORD_WEIGHT,
        }),
        w if w.starts_with("weighted:") => {
            let weight: f32 = w
                .trim_start_matches("weighted:")
                .parse()
                .map_err(|_| ApiError::bad_request("weighted:<w> takes a number in [0, 1]"))?;
            Ok(Fusion::Weighted {
                keyword_weight: weight,
            })
        }
        _ => Err(ApiError::bad_request(format!(
            "unknown fusion {:?} (cosine, rrf, weighted or weighted:<w>)",
            truncated(s)
        ))),
    }
}

/// At most 64 characters of `s`, for messages that quote the caller's input.
pub(crate) fn truncated(s: &str) -> String {
    let mut out: String = s.chars().take(64).collect();
    if s.chars().nth(64).is_some() {
        out.push('…');
    }
    out
}

pub(crate) fn parse_tags(values: &[String]) -> ApiResult<Vec<String>> {
    let mut tags: Vec<String> = Vec::new();
    for t in values.iter().flat_map(|v| v.split(',')) {
        let t = t.trim();
        if t.is_empty() {
            continue;
        }
        if t.chars().count() > MAX_TAG_CHARS || t.chars().any(char::is_control) {
            return Err(ApiError::bad_request(format!(
                "a tag is at most {MAX_TAG_CHARS} printable characters: {:?}",
                t.chars().take(MAX_TAG_CHARS + 1).collect::<String>()
            )));
        }
        if !tags.iter().any(|x| x == t) {
            tags.push(t.to_string());
        }
    }
    if tags.len() > MAX_TAGS {
        return Err(ApiError::bad_request(format!(
            "at most {MAX_TAGS} tags, got {}",
            tags.len()
        )));
    }
    Ok(tags)
}

/// The name shown for an uploaded file: the last path component, no control characters, at most
/// 255 characters. Never used as a path.
pub(crate) fn display_name(raw: Option<&str>) -> Option<String> {
    let raw = raw?;
    let base = raw.rsplit(['/', '\\']).next().unwrap_or(raw);
    let clean: String = base.chars().filter(|c| !c.is_control()).take(255).collect();
    let clean = clean.trim();
    (!clean.is_empty() && clean != "." && clean != "..").then(|| clean.to_string())
}

pub(crate) fn parse_asset_id(id: &str) -> ApiResult<AssetId> {
    Ok(AssetId::parse(id)?)
}

/// Reads a text field of at most [`MAX_TEXT_FIELD`] bytes.
pub(crate) async fn read_text(field: &mut Field<'_>, name: &str) -> ApiResult<String> {
    let mut buf = BytesMut::new();
    while let Some(chunk) = field.chunk().await? {
        if buf.len() + chunk.len() > MAX_TEXT_FIELD {
            return Err(ApiError::bad_request(format!(
                "form field {name:?} is longer than {MAX_TEXT_FIELD} bytes"
            )));
        }
        buf.extend_from_slice(&chunk);
    }
    String::from_utf8(buf.to_vec())
        .map_err(|_| ApiError::bad_request(format!("form field {name:?} is not UTF-8")))
}

/// A file read from a multipart form.
pub(crate) struct UploadedFile {
    pub(crate) name: Option<String>,
    /// The bytes, or the 413 error when the file is over the per-file limit (its bytes were
    /// read and dropped so the rest of the form can be processed).
    pub(crate) bytes: Result<Bytes, ApiError>,
}

/// Reads a file field, keeping at most `max` bytes.
pub(crate) async fn read_file(field: &mut Field<'_>, max: u64) -> ApiResult<UploadedFile> {
    let name = display_name(field.file_name());
    let mut buf = BytesMut::new();
    let mut size: u64 = 0;
    while let Some(chunk) = field.chunk().await? {
        size += chunk.len() as u64;
        if size <= max {
            buf.extend_from_slice(&chunk);
        } else if !buf.is_empty() {
            buf = BytesMut::new();
        }
    }
    let bytes = if size > max {
        Err(ApiError::too_large(format!(
            "file {} is larger than the upload limit of {max} bytes",
            name.as_deref()
                .map(|n| format!("{n:?}"))
                .unwrap_or_else(|| "(unnamed)".into()),
        )))
    } else {
        Ok(buf.freeze())
    };
    Ok(UploadedFile { name, bytes })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_last_components_without_control_characters() {
        assert_eq!(
            display_name(Some("C:\\fakepath\\a.png")).as_deref(),
            Some("a.png")
        );
        assert_eq!(
            display_name(Some("../../etc/x\n.png")).as_deref(),
            Some("x.png")
        );
        assert_eq!(display_name(Some("..")), None);
        assert_eq!(display_name(Some("a/..")), None);
        assert_eq!(display_name(Some("")), None);
        assert_eq!(display_name(Some("\u{0}\u{1b}")), None);
    }

    #[test]
    fn quoted_input_is_truncated() {
        assert_eq!(truncated("abc"), "abc");
        assert_eq!(truncated(&"x".repeat(100)).chars().count(), 65);
    }
}
