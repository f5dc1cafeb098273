//! Documents, filters and k-NN queries: how records and queries look on the wire.

use crossmodal_core::{
    AssetId, EmbeddingSpace, Error, Filter, Hit, RecordMeta, Result, Segment, VectorQuery,
    VectorRecord, normalized,
};
use serde_json::{Map, Value, json};

use crate::config::SpaceType;
use crate::mapping::{VECTOR_FIELDS_PATTERN, vector_field};
use crate::meta::{condition_clause, parse_fields, patchable_fields};

/// The `_source` of a record's document: metadata fields plus the (unit-length) vector in its
/// space's field. Serialised straight to JSON so `f32`s keep their short form (`0.6`, not
/// `0.6000000238418579`).
#[derive(Debug, serde::Serialize)]
pub(crate) struct Document<'a> {
    /// The record key `<asset>:<space>:<seq>` (the `_id` on a cluster; on Serverless the only
    /// place the key lives).
    key: String,
    /// When this document was written (ms since the epoch): the newest document of a key wins
    /// when two writers raced on Serverless.
    written_at: i64,
    asset_id: &'a str,
    space: &'static str,
    seq: u32,
    kind: &'static str,
    format: crossmodal_core::MediaFormat,
    created_at: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    duration_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    start_sec: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    end_sec: Option<f64>,
    /// `tags`, `name`, `fields`, `field_keys`, `field_terms` ([`patchable_fields`]).
    #[serde(flatten)]
    meta: Map<String, Value>,
    #[serde(flatten)]
    vector: std::collections::BTreeMap<String, Vec<f32>>,
}

impl<'a> Document<'a> {
    /// The document of `record`.
    pub(crate) fn of(record: &'a VectorRecord) -> Self {
        // Unit length: cosine for `cosinesimil`, and the inner product is the cosine for
        // `innerproduct`.
        let mut vector = std::collections::BTreeMap::new();
        vector.insert(vector_field(record.space), normalized(&record.vector));
        Document {
            key: record.key().doc_id(),
            written_at: crossmodal_core::now_ms(),
            asset_id: record.asset_id.as_str(),
            space: record.space.as_str(),
            seq: record.seq,
            kind: record.meta.kind.as_str(),
            format: record.meta.format,
            created_at: record.meta.created_at_ms,
            duration_ms: record.meta.duration_ms,
            meta: patchable_fields(&record.meta),
            start_sec: record.segment.map(|s| s.start_sec),
            end_sec: record.segment.map(|s| s.end_sec),
            vector,
        }
    }
}

/// A JSON array of `vector`'s numbers in their short `f32` form.
pub(crate) fn vector_json(vector: &[f32]) -> Value {
    let text = serde_json::to_string(vector).unwrap_or_else(|_| "[]".into());
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

/// The filter clauses of `filter` for an OpenSearch `bool.filter` (empty when it lets
/// everything through).
pub(crate) fn filter_clauses(filter: &Filter) -> Vec<Value> {
    let mut clauses = Vec::new();
    if !filter.kinds.is_empty() {
        let kinds: Vec<&str> = filter.kinds.iter().map(|k| k.as_str()).collect();
        clauses.push(json!({"terms": {"kind": kinds}}));
    }
    if !filter.formats.is_empty() {
        clauses.push(json!({"terms": {"format": filter.formats}}));
    }
    if !filter.asset_ids.is_empty() {
        let ids: Vec<&str> = filter.asset_ids.iter().map(AssetId::as_str).collect();
        clauses.push(json!({"terms": {"asset_id": ids}}));
    }
    if !filter.tags_any.is_empty() {
        clauses.push(json!({"terms": {"tags": filter.tags_any}}));
    }
    if filter.created_from_ms.is_some() || filter.created_until_ms.is_some() {
        let mut range = Map::new();
        if let Some(from) = filter.created_from_ms {
            range.insert("gte".into(), json!(from));
        }
        if let Some(until) = filter.created_until_ms {
            range.insert("lt".into(), json!(until));
        }
        clauses.push(json!({"range": {"created_at": range}}));
    }
    if filter.min_duration_ms.is_some() || filter.max_duration_ms.is_some() {
        // Documents without a duration (images) match no range, as `Filter::matches_meta`.
        let mut range = Map::new();
        if let Some(min) = filter.min_duration_ms {
            range.insert("gte".into(), json!(min));
        }
        if let Some(max) = filter.max_duration_ms {
            range.insert("lt".into(), json!(max));
        }
        clauses.push(json!({"range": {"duration_ms": range}}));
    }
    clauses.extend(filter.fields.iter().map(condition_clause));
    clauses
}

/// The `_search` body of a k-NN query: the filter goes **inside** the `knn` clause (efficient
/// filtering: `k` matching hits when they exist), `size` = `k`, vectors excluded from
/// `_source`.
pub(crate) fn knn_search_body(query: &VectorQuery, ef_search: Option<u32>) -> Value {
    let mut knn = Map::new();
    knn.insert("vector".into(), vector_json(&normalized(&query.vector)));
    knn.insert("k".into(), json!(query.k));
    let clauses = filter_clauses(&query.filter);
    if !clauses.is_empty() {
        knn.insert("filter".into(), json!({"bool": {"filter": clauses}}));
    }
    if let Some(ef) = ef_search {
        let ef = u64::from(ef).max(query.k as u64);
        knn.insert("method_parameters".into(), json!({"ef_search": ef}));
    }
    json!({
        "size": query.k,
        "_source": {"excludes": [VECTOR_FIELDS_PATTERN]},
        "query": {"knn": {vector_field(query.space): Value::Object(knn)}},
    })
}

fn corrupt(what: &str, hit: &Value) -> Error {
    let id = hit.get("_id").and_then(Value::as_str).unwrap_or("?");
    Error::corrupt(format!("search hit {id}: {what}")).with_context("doc_id", id)
}

fn parse<T: serde::de::DeserializeOwned>(v: Option<&Value>, what: &str, hit: &Value) -> Result<T> {
    let v = v.ok_or_else(|| corrupt(&format!("missing {what}"), hit))?;
    serde_json::from_value(v.clone()).map_err(|e| corrupt(&format!("bad {what}: {e}"), hit))
}

/// Who a search hit is: its `_id`, record key and write time (the `key` and `written_at` fields;
/// documents of layout 1 have neither: their `_id` is the key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HitIdentity {
    pub(crate) id: String,
    pub(crate) key: String,
    pub(crate) written_at: i64,
}

impl HitIdentity {
    /// The identity of one element of `hits.hits`.
    pub(crate) fn of(hit: &Value) -> Result<HitIdentity> {
        let id = hit
            .get("_id")
            .and_then(Value::as_str)
            .ok_or_else(|| corrupt("no _id", hit))?
            .to_string();
        let source = hit.get("_source");
        let key = source
            .and_then(|s| s.get("key"))
            .and_then(Value::as_str)
            .map_or_else(|| id.clone(), str::to_string);
        let written_at = source
            .and_then(|s| s.get("written_at"))
            .and_then(Value::as_i64)
            .unwrap_or(0);
        Ok(HitIdentity {
            id,
            key,
            written_at,
        })
    }

    /// Orders copies of one key: the newest write wins, ties broken by the id (so every reader
    /// picks the same copy).
    pub(crate) fn newer_than(&self, other: &HitIdentity) -> bool {
        (self.written_at, &self.id) > (other.written_at, &other.id)
    }
}

/// The record a stored document holds, without its vector and score.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct StoredRecord {
    pub(crate) asset_id: AssetId,
    pub(crate) space: EmbeddingSpace,
    pub(crate) seq: u32,
    pub(crate) segment: Option<Segment>,
    pub(crate) meta: RecordMeta,
}

impl StoredRecord {
    /// The record of one element of `hits.hits` (its `_source`).
    pub(crate) fn of(hit: &Value) -> Result<StoredRecord> {
        let source = hit
            .get("_source")
            .ok_or_else(|| corrupt("no _source", hit))?;
        let asset_id: AssetId = parse(source.get("asset_id"), "asset_id", hit)?;
        let space: String = parse(source.get("space"), "space", hit)?;
        let space: EmbeddingSpace = space.parse().map_err(|_| corrupt("unknown space", hit))?;
        let segment = match (source.get("start_sec"), source.get("end_sec")) {
            (Some(s), Some(e)) => Some(Segment {
                start_sec: parse(Some(s), "start_sec", hit)?,
                end_sec: parse(Some(e), "end_sec", hit)?,
            }),
            _ => None,
        };
        Ok(StoredRecord {
            asset_id,
            space,
            seq: parse(source.get("seq"), "seq", hit)?,
            segment,
            meta: parse_meta(source, hit)?,
        })
    }

    /// The record key.
    pub(crate) fn key(&self) -> crossmodal_core::RecordKey {
        crossmodal_core::RecordKey {
            asset_id: self.asset_id.clone(),
            space: self.space,
            seq: self.seq,
        }
    }
}

/// The metadata of a `_source`. Documents written before names, durations and user fields
/// existed read back without them.
fn parse_meta(source: &Value, hit: &Value) -> Result<RecordMeta> {
    let mut meta = RecordMeta::new(
        parse(source.get("kind"), "kind", hit)?,
        parse(source.get("format"), "format", hit)?,
    )
    .tags(match source.get("tags") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => vec![s.clone()],
        t => parse::<Vec<String>>(t, "tags", hit)?,
    })
    .created_at_ms(parse(source.get("created_at"), "created_at", hit)?);
    match source.get("name") {
        None | Some(Value::Null) => {}
        name => meta = meta.name(parse::<String>(name, "name", hit)?),
    }
    match source.get("duration_ms") {
        None | Some(Value::Null) => {}
        d => meta = meta.duration_ms(parse::<u64>(d, "duration_ms", hit)?),
    }
    meta.fields = parse_fields(source).map_err(|why| corrupt(&why, hit))?;
    Ok(meta)
}

/// A [`Hit`] from one element of `hits.hits`, with `_score` converted back to cosine.
pub(crate) fn parse_hit(hit: &Value, space_type: SpaceType) -> Result<Hit> {
    let score = hit
        .get("_score")
        .and_then(Value::as_f64)
        .ok_or_else(|| corrupt("no _score", hit))?;
    let r = StoredRecord::of(hit)?;
    Ok(Hit {
        asset_id: r.asset_id,
        space: r.space,
        seq: r.seq,
        segment: r.segment,
        score: space_type.cosine_from_score(score),
        meta: r.meta,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossmodal_core::{MediaFormat, MediaKind};

    fn record() -> VectorRecord {
        VectorRecord {
            asset_id: AssetId::from_content(b"castle"),
            space: EmbeddingSpace::Visual,
            seq: 2,
            segment: Some(Segment {
                start_sec: 8.0,
                end_sec: 12.5,
            }),
            vector: vec![3.0, 4.0],
            meta: RecordMeta::new(MediaKind::Video, MediaFormat::Mp4)
                .tags(["siege"])
                .created_at_ms(1_700_000_000_000)
                .name("castle_siege_v3.mp4")
                .duration_ms(30_500)
                .field("campaign", "summer")
                .field("budget", 12.75)
                .field("approved", true)
                .field(
                    "launch",
                    crossmodal_core::FieldValue::Time(1_700_000_000_123),
                ),
        }
    }

    #[test]
    fn documents_round_trip_through_hits() {
        let r = record();
        let text = serde_json::to_string(&Document::of(&r)).unwrap();
        assert!(text.contains(r#""vector_visual":[0.6,0.8]"#), "{text}");
        let doc: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(doc["format"], "mp4");
        assert_eq!(doc["key"], r.key().doc_id());
        assert!(doc["written_at"].as_i64().unwrap() > 1_700_000_000_000);
        let mut source = doc.clone();
        source.as_object_mut().unwrap().remove("vector_visual");
        let hit = parse_hit(
            &json!({"_id": "x", "_score": 0.75, "_source": source}),
            SpaceType::CosineSimil,
        )
        .unwrap();
        assert_eq!(hit.score, 0.5);
        let who = HitIdentity::of(&json!({"_id": "x", "_source": source})).unwrap();
        assert_eq!((who.id.as_str(), who.key.clone()), ("x", r.key().doc_id()));
        let older = HitIdentity {
            written_at: who.written_at - 1,
            ..who.clone()
        };
        assert!(who.newer_than(&older) && !older.newer_than(&who));
        assert_eq!(
            (&hit.asset_id, hit.space, hit.seq, hit.segment, &hit.meta),
            (&r.asset_id, r.space, r.seq, r.segment, &r.meta)
        );
        assert_eq!(doc["name"], "castle_siege_v3.mp4");
        assert_eq!(doc["duration_ms"], 30_500);
        assert_eq!(
            doc["field_keys"],
            json!(["approved", "budget", "campaign", "launch"])
        );
    }

    #[test]
    fn documents_of_the_earlier_layout_still_parse() {
        let source = json!({"asset_id": AssetId::from_content(b"old").as_str(), "space": "audio",
            "seq": 0, "kind": "audio", "format": "wav", "tags": "one", "created_at": 7});
        let hit = parse_hit(
            &json!({"_id": "x", "_score": 1.0, "_source": source}),
            SpaceType::CosineSimil,
        )
        .unwrap();
        assert_eq!(hit.meta.name, None);
        assert_eq!(hit.meta.duration_ms, None);
        assert!(hit.meta.fields.is_empty());
        assert_eq!(hit.meta.tags, vec!["one".to_string()]);
    }

    #[test]
    fn durations_and_fields_filter_inside_the_knn_clause() {
        let f = Filter::default()
            .duration_between(Some(1_000), None)
            .field("campaign", crossmodal_core::FieldTest::Eq("summer".into()));
        let q = VectorQuery::new(EmbeddingSpace::Visual, vec![1.0, 0.0], 3).filter(f);
        let body = knn_search_body(&q, None);
        let clauses = body["query"]["knn"]["vector_visual"]["filter"]["bool"]["filter"]
            .as_array()
            .unwrap()
            .clone();
        assert_eq!(
            clauses,
            vec![
                json!({"range": {"duration_ms": {"gte": 1000}}}),
                json!({"term": {"field_terms": "s:campaign=summer"}}),
            ]
        );
    }

    #[test]
    fn filter_goes_inside_the_knn_clause() {
        let f = Filter::default()
            .kinds([MediaKind::Video])
            .formats([MediaFormat::Mov])
            .tag("a")
            .created_between(Some(5), Some(9));
        let q = VectorQuery::new(EmbeddingSpace::Audio, vec![1.0, 0.0], 7).filter(f);
        let body = knn_search_body(&q, Some(100));
        let knn = &body["query"]["knn"]["vector_audio"];
        assert_eq!(knn["k"], 7);
        assert_eq!(body["size"], 7);
        assert_eq!(knn["method_parameters"]["ef_search"], 100);
        let clauses = knn["filter"]["bool"]["filter"].as_array().unwrap();
        assert_eq!(clauses.len(), 4);
        assert_eq!(clauses[0], json!({"terms": {"kind": ["video"]}}));
        assert_eq!(clauses[1], json!({"terms": {"format": ["mov"]}}));
        assert_eq!(
            clauses[3],
            json!({"range": {"created_at": {"gte": 5, "lt": 9}}})
        );
        assert!(body["query"].get("bool").is_none());
        let unfiltered =
            knn_search_body(&VectorQuery::new(EmbeddingSpace::Audio, vec![1.0], 3), None);
        assert!(
            unfiltered["query"]["knn"]["vector_audio"]
                .get("filter")
                .is_none()
        );
    }
}
