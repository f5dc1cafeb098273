//! What the API shows of assets and hits (never a server path).

use crossmodal_core::{
    AssetRecord, AssetState, AssetStatus, EmbeddingSpace, MediaFormat, MediaKind, RouteMatch,
    SearchHit, Segment, StatusCounts,
};
use serde::Serialize;

use crate::api::{App, asset_path};

/// An asset as the API shows it.
#[derive(Debug, Serialize)]
pub(crate) struct AssetView {
    asset_id: String,
    name: Option<String>,
    kind: MediaKind,
    format: MediaFormat,
    size_bytes: u64,
    width: Option<u32>,
    height: Option<u32>,
    duration_sec: Option<f64>,
    has_video: bool,
    has_audio: bool,
    tags: Vec<String>,
    /// User fields (text, number, bool, `{"time_ms": ..}`).
    fields: std::collections::BTreeMap<String, crossmodal_core::FieldValue>,
    /// `pending`, `embedding`, `indexed` or `failed`.
    state: AssetState,
    /// The state with the failed stage and message.
    status: AssetStatus,
    extension_mismatch: Option<String>,
    created_at_ms: i64,
    updated_at_ms: i64,
    /// Where to fetch the original, once stored.
    media_url: Option<String>,
    /// A still of the asset (images: the image; videos: a frame a quarter in), once stored.
    thumbnail_url: Option<String>,
}

/// `1`, `1.5`, `12.25`: seconds for a media fragment or a thumbnail time.
pub(crate) fn seconds(s: f64) -> String {
    let t = format!("{s:.3}");
    let t = t.trim_end_matches('0').trim_end_matches('.');
    if t.is_empty() { "0".into() } else { t.into() }
}

/// The thumbnail URL of an asset of `kind` at `at_sec` (videos), if it can have one.
pub(crate) fn thumbnail_url(
    base: &str,
    asset: &crossmodal_core::AssetId,
    kind: MediaKind,
    at_sec: Option<f64>,
) -> Option<String> {
    let path = format!("{}/thumbnail", asset_path(base, asset));
    match kind {
        MediaKind::Image => Some(path),
        MediaKind::Video => Some(format!("{path}?t={}", seconds(at_sec.unwrap_or(0.0)))),
        _ => None,
    }
}

impl AssetView {
    pub(crate) fn new(base: &str, r: AssetRecord) -> Self {
        let stored = r.media.is_some();
        let kind = r.kind();
        let card_at = r.probe.duration_sec.map(|d| (d * 0.25).max(0.0));
        AssetView {
            media_url: stored.then(|| format!("{}/media", asset_path(base, &r.asset_id))),
            thumbnail_url: if stored {
                thumbnail_url(base, &r.asset_id, kind, card_at)
            } else {
                None
            },
            asset_id: r.asset_id.to_string(),
            kind,
            format: r.format(),
            name: r.display_name,
            size_bytes: r.size_bytes,
            width: r.probe.width,
            height: r.probe.height,
            duration_sec: r.probe.duration_sec,
            has_video: r.probe.has_video,
            has_audio: r.probe.has_audio,
            tags: r.tags,
            fields: r.fields,
            state: r.status.state(),
            status: r.status,
            extension_mismatch: r.extension_mismatch,
            created_at_ms: r.created_at_ms,
            updated_at_ms: r.updated_at_ms,
        }
    }
}

/// One matching clip as the API shows it.
#[derive(Debug, Serialize)]
pub(crate) struct ClipView {
    space: EmbeddingSpace,
    segment: Option<Segment>,
    cosine: f32,
    /// The original at the clip's time range (`#t=start,end`).
    preview_url: Option<String>,
}

/// One search result as the API shows it.
#[derive(Debug, Serialize)]
pub(crate) struct HitView {
    rank: usize,
    asset_id: String,
    name: Option<String>,
    kind: MediaKind,
    format: MediaFormat,
    score: f32,
    cosine: f32,
    /// The embedding space of the best match.
    space: EmbeddingSpace,
    /// The best-matching clip (`None` for images).
    segment: Option<Segment>,
    matches: Vec<RouteMatch>,
    tags: Vec<String>,
    /// User fields of the asset.
    fields: std::collections::BTreeMap<String, crossmodal_core::FieldValue>,
    /// With `group: "clips"`: every matching clip, best first, each with its time range and a
    /// `preview_url` that plays it.
    clips: Vec<ClipView>,
    /// How many clips matched.
    clip_count: usize,
    /// Where the query's words matched (name, tags, fields), for marking them.
    keywords: Option<crossmodal_core::KeywordScore>,
    /// Where a browser can play or show the hit: `/api/assets/{id}/media#t=start,end` for local
    /// stores, a presigned URL (with the same fragment) for stores that give `http(s)` URLs.
    preview_url: Option<String>,
    /// The original through this service.
    media_url: Option<String>,
    /// A still of the matched segment (the middle of the clip), or of the image.
    thumbnail_url: Option<String>,
}

pub(crate) async fn hit_view(app: &App, base: &str, rank: usize, hit: SearchHit) -> HitView {
    let fragment = hit
        .best_segment
        .map(|s| format!("#t={},{}", seconds(s.start_sec), seconds(s.end_sec)))
        .unwrap_or_default();
    let local = format!("{}/media", asset_path(base, &hit.asset_id));
    let preview_url = match &hit.media {
        None => None,
        Some(m) => {
            let store = app.engine.store();
            let scheme = store.media_ref(&m.key).uri.scheme().to_string();
            if scheme == "file" || scheme == "memory" {
                Some(format!("{local}{fragment}"))
            } else {
                match store.preview_url(&m.key, app.config.preview_ttl).await {
                    Ok(url) if matches!(url.scheme(), "http" | "https") => {
                        Some(format!("{url}{fragment}"))
                    }
                    Ok(_) => Some(format!("{local}{fragment}")),
                    Err(e) => {
                        tracing::warn!(asset = %hit.asset_id.short(), error = %e, "no preview URL");
                        Some(format!("{local}{fragment}"))
                    }
                }
            }
        }
    };
    let clips = hit
        .clips
        .iter()
        .map(|c| ClipView {
            space: c.space,
            segment: c.segment,
            cosine: c.cosine,
            preview_url: hit.media.as_ref().map(|_| {
                let at = c
                    .segment
                    .map(|s| format!("#t={},{}", seconds(s.start_sec), seconds(s.end_sec)))
                    .unwrap_or_default();
                format!("{local}{at}")
            }),
        })
        .collect();
    let middle = hit
        .best_segment
        .map(|s| s.start_sec + (s.end_sec - s.start_sec) / 2.0);
    HitView {
        rank,
        asset_id: hit.asset_id.to_string(),
        thumbnail_url: hit
            .media
            .as_ref()
            .and_then(|_| thumbnail_url(base, &hit.asset_id, hit.meta.kind, middle)),
        media_url: hit.media.as_ref().map(|_| local),
        name: hit.display_name,
        kind: hit.meta.kind,
        format: hit.meta.format,
        score: hit.score,
        cosine: hit.cosine,
        space: hit.space,
        segment: hit.best_segment,
        matches: hit.matches,
        tags: hit.meta.tags,
        fields: hit.meta.fields,
        clips,
        clip_count: hit.clip_count,
        keywords: hit.keywords,
        preview_url,
    }
}

pub(crate) fn counts_json(c: &StatusCounts) -> serde_json::Value {
    serde_json::json!({
        "pending": c.pending,
        "embedding": c.embedding,
        "indexed": c.indexed,
        "failed": c.failed,
        "total": c.total(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_are_short() {
        assert_eq!(seconds(1.0), "1");
        assert_eq!(seconds(12.25), "12.25");
        assert_eq!(seconds(0.0), "0");
        assert_eq!(seconds(1.5004), "1.5");
    }
}
