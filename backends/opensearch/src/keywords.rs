//! Keyword search on the wire: the BM25 `_search` body and how its document hits become one hit
//! per asset.
//!
//! One `bool` query, `minimum_should_match: 1`, whose `should` clauses score as the embedded
//! default weighs its columns (name 10, tags 5, field text 2):
//!
//! - `match` on `name_words` (the display name's words), `boost` 10: BM25;
//! - `terms` on `tags`, `boost` 5: a tag equal to the query, or to one of its words (as typed or
//!   lower-cased), adds a constant 5;
//! - `match` on `field_text` (the words of the text-valued user fields), `boost` 2: BM25.
//!
//! The [`Filter`](crossmodal_core::Filter) goes in `bool.filter` (it does not score), vectors are
//! left out of `_source`. An asset has one document per vector record, all with the same
//! metadata and so the same score: the body asks for more documents than `k` and the best
//! document of each asset is kept (no `collapse`: whether Serverless vector collections take it
//! is not documented).

use std::collections::HashMap;

use crossmodal_core::{AssetId, KeywordHit, KeywordQuery, RecordMeta, Result};
use serde_json::{Map, Value, json};

use crate::mapping::VECTOR_FIELDS_PATTERN;
use crate::query::filter_clauses;

/// BM25 boost of a match in the display name (the embedded default's column weight).
pub(crate) const NAME_BOOST: f64 = 10.0;
/// Score of a tag equal to the query or one of its words.
pub(crate) const TAG_BOOST: f64 = 5.0;
/// BM25 boost of a match in the text of user fields.
pub(crate) const FIELD_TEXT_BOOST: f64 = 2.0;

/// Documents first asked per asset wanted: an asset holds one document per vector record
/// (about 15 for a long video).
pub(crate) const DOCS_PER_ASSET: usize = 16;

/// Most documents one search returns (OpenSearch's default `index.max_result_window`).
pub(crate) const MAX_DOCS: usize = 10_000;

/// The tag values a query matches exactly: the whole text (trimmed), its words as typed and its
/// terms (lower-cased), without repeats.
fn tag_values(query: &KeywordQuery, terms: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut push = |v: &str| {
        if !v.is_empty() && !out.iter().any(|o| o == v) {
            out.push(v.to_string());
        }
    };
    push(query.text.trim());
    for w in query.text.split(|c: char| !c.is_alphanumeric()) {
        push(w);
    }
    for t in terms {
        push(t);
    }
    out
}

/// The `_search` body of `query` (whose terms are `terms`, from [`KeywordQuery::check`]) asking
/// for `size` documents.
pub(crate) fn keyword_search_body(query: &KeywordQuery, terms: &[String], size: usize) -> Value {
    let words = terms.join(" ");
    let should = vec![
        json!({"match": {"name_words": {"query": words, "boost": NAME_BOOST}}}),
        json!({"terms": {"tags": tag_values(query, terms), "boost": TAG_BOOST}}),
        json!({"match": {"field_text": {"query": words, "boost": FIELD_TEXT_BOOST}}}),
    ];
    let mut bool_query = Map::new();
    bool_query.insert("should".into(), Value::Array(should));
    bool_query.insert("minimum_should_match".into(), json!(1));
    let filter = filter_clauses(&query.filter);
    if !filter.is_empty() {
        bool_query.insert("filter".into(), Value::Array(filter));
    }
    json!({
        "size": size,
        "track_total_hits": false,
        "_source": {"excludes": [VECTOR_FIELDS_PATTERN]},
        "query": {"bool": Value::Object(bool_query)},
    })
}

/// Documents to ask for `k` assets on the first try.
pub(crate) fn first_size(k: usize) -> usize {
    k.saturating_mul(DOCS_PER_ASSET).clamp(1, MAX_DOCS)
}

/// Document hits reduced to the best per asset.
#[derive(Debug, Default)]
pub(crate) struct BestPerAsset {
    best: HashMap<AssetId, (f32, RecordMeta)>,
}

impl BestPerAsset {
    /// Notes one document of `asset` with `score`.
    pub(crate) fn add(&mut self, asset: AssetId, score: f32, meta: RecordMeta) {
        match self.best.get(&asset) {
            Some((s, _)) if *s >= score => {}
            _ => {
                self.best.insert(asset, (score, meta));
            }
        }
    }

    /// How many distinct assets were seen.
    pub(crate) fn len(&self) -> usize {
        self.best.len()
    }

    /// The best `k` assets, best first (ties by asset id), as hits for `terms`.
    pub(crate) fn into_hits(self, k: usize, terms: &[String]) -> Vec<KeywordHit> {
        let mut all: Vec<(AssetId, f32, RecordMeta)> = self
            .best
            .into_iter()
            .map(|(id, (score, meta))| (id, score, meta))
            .collect();
        all.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        all.truncate(k);
        all.into_iter()
            .map(|(id, score, meta)| KeywordHit::new(id, score, meta, terms))
            .collect()
    }
}

/// The score of a keyword hit (`_score`), or `Corrupt`.
pub(crate) fn score_of(hit: &Value) -> Result<f32> {
    hit.get("_score")
        .and_then(Value::as_f64)
        .map(|s| s as f32)
        .ok_or_else(|| {
            let id = hit.get("_id").and_then(Value::as_str).unwrap_or("?");
            crossmodal_core::Error::corrupt(format!("keyword search hit {id}: no _score"))
                .with_context("doc_id", id)
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossmodal_core::{FieldTest, Filter, MediaFormat, MediaKind};

    #[test]
    fn the_body_scores_name_tags_and_field_text_and_filters_apart() {
        let q = KeywordQuery::new("Castle_Siege v3", 5).filter(
            Filter::default()
                .kinds([MediaKind::Video])
                .field("campaign", FieldTest::Eq("summer".into())),
        );
        let terms = q.check().unwrap();
        let body = keyword_search_body(&q, &terms, first_size(q.k));
        assert_eq!(body["size"], 80);
        assert_eq!(body["_source"], json!({"excludes": ["vector_*"]}));
        let b = &body["query"]["bool"];
        assert_eq!(b["minimum_should_match"], 1);
        assert_eq!(
            b["should"][0],
            json!({"match": {"name_words": {"query": "castle siege v3", "boost": 10.0}}})
        );
        assert_eq!(
            b["should"][1],
            json!({"terms": {"tags": ["Castle_Siege v3", "Castle", "Siege", "v3", "castle",
                "siege"], "boost": 5.0}})
        );
        assert_eq!(
            b["should"][2],
            json!({"match": {"field_text": {"query": "castle siege v3", "boost": 2.0}}})
        );
        assert_eq!(
            b["filter"],
            json!([{"terms": {"kind": ["video"]}},
                {"term": {"field_terms": "s:campaign=summer"}}])
        );
        let unfiltered = keyword_search_body(&KeywordQuery::new("x", 1), &["x".into()], 16);
        assert!(unfiltered["query"]["bool"].get("filter").is_none());
        assert_eq!(first_size(10_000), MAX_DOCS);
    }

    #[test]
    fn each_asset_keeps_its_best_document() {
        let meta = |name: &str| RecordMeta::new(MediaKind::Video, MediaFormat::Mp4).name(name);
        let (a, b) = (AssetId::from_content(b"a"), AssetId::from_content(b"b"));
        let mut best = BestPerAsset::default();
        best.add(a.clone(), 1.0, meta("castle_a.mp4"));
        best.add(b.clone(), 3.0, meta("castle_b.mp4"));
        best.add(a.clone(), 4.0, meta("castle_a.mp4"));
        best.add(b.clone(), 2.0, meta("other.mp4"));
        assert_eq!(best.len(), 2);
        let hits = best.into_hits(5, &["castle".into()]);
        assert_eq!(
            hits.iter()
                .map(|h| (h.asset_id.clone(), h.score))
                .collect::<Vec<_>>(),
            vec![(a, 4.0), (b, 3.0)]
        );
        assert_eq!(hits[1].meta.name.as_deref(), Some("castle_b.mp4"));
        assert_eq!(hits[0].matches[0].field, "name");
        let e = score_of(&json!({"_id": "d"})).unwrap_err();
        assert_eq!(e.kind(), crossmodal_core::ErrorKind::Corrupt);
    }
}
