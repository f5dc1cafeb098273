//! The vector index's settings and mapping, and the check of an existing index against them.

use crossmodal_core::{EmbeddingSpace, Error, ErrorKind, IndexSpec, Result};
use serde_json::{Map, Value, json};

#[cfg(test)]
use crate::config::SpaceType;
use crate::config::{Engine, OpenSearchConfig};

/// Version of the document layout this crate writes, kept in the mapping's `_meta`. Layout 2
/// added the `key` and `written_at` fields (Serverless needs them; an index of layout 1 gains
/// them on connect). The metadata fields `name`, `duration_ms`, `fields`, `field_keys` and
/// `field_terms` ([`crate::meta`]) came later within layout 2: they are additive (an index
/// without them gains them on connect, documents without them read back without a name,
/// duration or fields, and older libraries ignore them), so the layout number stays.
pub(crate) const LAYOUT_VERSION: u64 = 2;

/// The `_meta` key under which the index records what it holds.
pub(crate) const META_KEY: &str = "crossmodal";

/// The `knn_vector` field holding vectors of `space`: `vector_<space>`.
pub fn vector_field(space: EmbeddingSpace) -> String {
    format!("vector_{}", space.as_str())
}

/// `_source` patterns that leave every vector field out of search results.
pub(crate) const VECTOR_FIELDS_PATTERN: &str = "vector_*";

/// Fields added after layout 1: name and mapping type. An existing index that lacks them
/// gains them with `PUT _mapping`.
fn added_fields() -> impl Iterator<Item = (&'static str, &'static str)> {
    [("key", "keyword"), ("written_at", "date")]
        .into_iter()
        .chain(crate::meta::META_MAPPINGS.iter().copied())
}

/// The mapping of added field `name` of type `ty`.
fn added_field(name: &str, ty: &str) -> Value {
    match ty {
        "date" => json!({"type": "date", "format": "epoch_millis"}),
        // The display name: full text (BM25) and, exactly, as a keyword.
        "text" if name == "name" => {
            json!({"type": "text", "fields": {"raw": {"type": "keyword"}}})
        }
        // Words for keyword search (`name_words`, `field_text`): the standard analyzer, BM25.
        "text" => json!({"type": "text"}),
        // User fields, exactly as written: in `_source` only, never parsed or indexed.
        "object" => json!({"type": "object", "enabled": false}),
        other => json!({"type": other}),
    }
}

/// The type an existing mapping gives a field (`object` when it names none: objects with
/// properties carry no `type`).
fn mapped_type(field: &Value) -> &str {
    field
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("object")
}

/// Metadata fields: name and the mapping types an existing index may give them.
const META_FIELDS: &[(&str, &[&str])] = &[
    ("asset_id", &["keyword"]),
    ("space", &["keyword"]),
    ("kind", &["keyword"]),
    ("format", &["keyword"]),
    ("tags", &["keyword"]),
    (
        "seq",
        &["integer", "long", "short", "byte", "unsigned_long"],
    ),
    (
        "start_sec",
        &["float", "double", "half_float", "scaled_float"],
    ),
    (
        "end_sec",
        &["float", "double", "half_float", "scaled_float"],
    ),
    ("created_at", &["date", "date_nanos"]),
];

/// The mapping of one `knn_vector` field: HNSW with the configured engine, space and
/// parameters, the model's dimension. faiss reads `ef_search` from `method.parameters` (it
/// ignores the index setting `index.knn.algo_param.ef_search`, which is nmslib's); lucene's
/// HNSW takes only `m` and `ef_construction`.
fn knn_field(config: &OpenSearchConfig, spec: &IndexSpec) -> Value {
    let mut parameters = Map::new();
    parameters.insert("m".into(), json!(config.m));
    parameters.insert("ef_construction".into(), json!(config.ef_construction));
    if let (Some(ef), Engine::Faiss) = (config.ef_search, config.engine) {
        parameters.insert("ef_search".into(), json!(ef));
    }
    json!({
        "type": "knn_vector",
        "dimension": spec.dimension,
        "method": {
            "name": "hnsw",
            "engine": config.engine.as_str(),
            "space_type": config.space_type.as_str(),
            "parameters": Value::Object(parameters),
        },
    })
}

/// The body of `PUT /<index>/_mapping` adding what an existing index lacks: vector fields for
/// `spaces` (an index created before a space existed) and the fields of `fields` (an index of
/// an older layout). Existing fields are never changed.
pub(crate) fn add_fields_body(
    config: &OpenSearchConfig,
    spec: &IndexSpec,
    missing: &MissingFields,
) -> Value {
    let mut properties: Map<String, Value> = missing
        .spaces
        .iter()
        .map(|s| (vector_field(*s), knn_field(config, spec)))
        .collect();
    for (name, ty) in added_fields() {
        if missing.fields.iter().any(|f| f == name) {
            properties.insert(name.into(), added_field(name, ty));
        }
    }
    json!({"properties": properties})
}

/// The body of `PUT /<index>`: `index.knn`, HNSW parameters, one `knn_vector` field per
/// embedding space, keyword metadata, strict dynamic mapping, and the model in `_meta`.
pub(crate) fn index_body(config: &OpenSearchConfig, spec: &IndexSpec) -> Value {
    let mut index_settings = Map::new();
    index_settings.insert("knn".into(), json!(true));
    if let Some(n) = config.shards {
        index_settings.insert("number_of_shards".into(), json!(n));
    }
    if let Some(n) = config.replicas {
        index_settings.insert("number_of_replicas".into(), json!(n));
    }
    let mut properties = Map::new();
    for space in EmbeddingSpace::ALL {
        properties.insert(vector_field(space), knn_field(config, spec));
    }
    for field in ["asset_id", "space", "kind", "format", "tags"] {
        properties.insert(field.into(), json!({"type": "keyword"}));
    }
    properties.insert("seq".into(), json!({"type": "integer"}));
    properties.insert("start_sec".into(), json!({"type": "float"}));
    properties.insert("end_sec".into(), json!({"type": "float"}));
    properties.insert(
        "created_at".into(),
        json!({"type": "date", "format": "epoch_millis"}),
    );
    for (name, ty) in added_fields() {
        properties.insert(name.into(), added_field(name, ty));
    }
    json!({
        "settings": {"index": Value::Object(index_settings)},
        "mappings": {
            "dynamic": "strict",
            "_meta": {META_KEY: {
                "layout": LAYOUT_VERSION,
                "holds": "vectors",
                "model_id": spec.model_id,
                "dimension": spec.dimension,
                "space_type": config.space_type.as_str(),
                "engine": config.engine.as_str(),
            }},
            "properties": Value::Object(properties),
        },
    })
}

/// What an existing index lacks and gains with `PUT _mapping`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct MissingFields {
    /// Spaces whose vector field the index lacks (made by a version that did not know them).
    pub(crate) spaces: Vec<EmbeddingSpace>,
    /// Fields added since the index was made ([`added_fields`]).
    pub(crate) fields: Vec<String>,
}

impl MissingFields {
    /// Whether nothing is missing.
    pub(crate) fn is_empty(&self) -> bool {
        self.spaces.is_empty() && self.fields.is_empty()
    }
}

/// What an existing, accepted index was built with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ExistingIndex {
    /// The engine its vector fields use (may differ from the configuration's; queries and
    /// scores are the same for both engines).
    pub(crate) engine: Option<String>,
    /// What it lacks.
    pub(crate) missing: MissingFields,
}

fn conflict(index: &str, why: String) -> Error {
    Error::new(
        ErrorKind::Conflict,
        format!("existing OpenSearch index {index:?} does not match: {why}"),
    )
    .with_context("index", index)
}

/// The mapping object of `GET /<index>/_mapping` (`{"<concrete index>": {"mappings": {..}}}`).
pub(crate) fn mappings_of(response: &Value) -> Option<&Value> {
    response.as_object()?.values().next()?.get("mappings")
}

/// Checks an existing index's mapping against the configuration and spec: `Conflict` when it
/// was built for another model or dimension, with another space type, or is not a crossmodal
/// vector index at all.
pub(crate) fn check_existing(
    index: &str,
    mappings: &Value,
    config: &OpenSearchConfig,
    spec: &IndexSpec,
) -> Result<ExistingIndex> {
    let meta = mappings
        .get("_meta")
        .and_then(|m| m.get(META_KEY))
        .ok_or_else(|| {
            conflict(
                index,
                "it was not created by crossmodal (no `_meta.crossmodal` in its mapping); choose \
                 another index name"
                    .into(),
            )
        })?;
    if meta.get("holds").and_then(Value::as_str) != Some("vectors") {
        return Err(conflict(
            index,
            format!(
                "it holds {} rather than vectors",
                meta.get("holds")
                    .and_then(Value::as_str)
                    .unwrap_or("something else")
            ),
        ));
    }
    let layout = meta.get("layout").and_then(Value::as_u64).unwrap_or(0);
    if layout > LAYOUT_VERSION {
        return Err(Error::unsupported(format!(
            "index {index:?} uses document layout {layout}, newer than this library's \
             ({LAYOUT_VERSION}); upgrade crossmodal-opensearch"
        ))
        .with_context("index", index));
    }
    let existing_spec = IndexSpec::new(
        meta.get("model_id")
            .and_then(Value::as_str)
            .unwrap_or("<unknown>"),
        meta.get("dimension")
            .and_then(Value::as_u64)
            .and_then(|d| usize::try_from(d).ok())
            .unwrap_or(0),
    );
    spec.check_same(&existing_spec)
        .map_err(|e| e.with_context("index", index))?;

    let properties = mappings.get("properties").and_then(Value::as_object);
    let field = |name: &str| properties.and_then(|p| p.get(name));
    let mut engine = None;
    let mut missing_spaces = Vec::new();
    for space in EmbeddingSpace::ALL {
        let name = vector_field(space);
        let Some(f) = field(&name) else {
            missing_spaces.push(space);
            continue;
        };
        if f.get("type").and_then(Value::as_str) != Some("knn_vector") {
            return Err(conflict(index, format!("field {name} is not a knn_vector")));
        }
        let dim = f.get("dimension").and_then(Value::as_u64);
        if dim != Some(spec.dimension as u64) {
            return Err(conflict(
                index,
                format!(
                    "field {name} has dimension {}, the model's is {}",
                    dim.map_or("<none>".to_string(), |d| d.to_string()),
                    spec.dimension
                ),
            ));
        }
        let space_type = space_type_of(f);
        if space_type != config.space_type.as_str() {
            return Err(conflict(
                index,
                format!(
                    "field {name} uses space type {space_type}, configured is {}",
                    config.space_type
                ),
            ));
        }
        let field_engine = f
            .get("method")
            .and_then(|m| m.get("engine"))
            .and_then(Value::as_str)
            .map(str::to_string);
        if engine.is_none() {
            engine = field_engine;
        }
    }
    for (name, types) in META_FIELDS {
        let ty = field(name)
            .and_then(|f| f.get("type"))
            .and_then(Value::as_str);
        match ty {
            Some(t) if types.contains(&t) => {}
            other => {
                return Err(conflict(
                    index,
                    format!(
                        "field {name} is {} (expected {})",
                        other.unwrap_or("missing"),
                        types.join(" or ")
                    ),
                ));
            }
        }
    }
    let mut missing_fields = Vec::new();
    for (name, ty) in added_fields() {
        match field(name).map(mapped_type) {
            None => missing_fields.push(name.to_string()),
            Some("object")
                if ty == "object"
                    && field(name).and_then(|f| f.get("enabled")) != Some(&Value::Bool(false)) =>
            {
                return Err(conflict(
                    index,
                    format!("field {name} is an indexed object (expected \"enabled\": false)"),
                ));
            }
            Some(t) if t == ty => {}
            Some(t) => {
                return Err(conflict(
                    index,
                    format!("field {name} is {t} (expected {ty})"),
                ));
            }
        }
    }
    if config.is_serverless() && engine.as_deref().is_some_and(|e| e != "faiss") {
        return Err(conflict(
            index,
            format!(
                "its vector fields use the {} engine; Amazon OpenSearch Serverless takes faiss only",
                engine.as_deref().unwrap_or_default()
            ),
        ));
    }
    if let Some(e) = &engine
        && e != config.engine.as_str()
    {
        tracing::info!(
            index,
            existing = %e,
            configured = %config.engine,
            "using the existing index's k-NN engine"
        );
    }
    if missing_spaces.len() == EmbeddingSpace::ALL.len() {
        return Err(conflict(index, "it has no vector fields".into()));
    }
    Ok(ExistingIndex {
        engine,
        missing: MissingFields {
            spaces: missing_spaces,
            fields: missing_fields,
        },
    })
}

/// The space type of a `knn_vector` mapping: `method.space_type`, else the field's own
/// `space_type` (2.x later), else OpenSearch's default `l2`.
fn space_type_of(field: &Value) -> &str {
    field
        .get("method")
        .and_then(|m| m.get("space_type"))
        .or_else(|| field.get("space_type"))
        .and_then(Value::as_str)
        .unwrap_or("l2")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> OpenSearchConfig {
        OpenSearchConfig::new("http://localhost:9200").unwrap()
    }

    fn mappings(body: &Value) -> Value {
        body["mappings"].clone()
    }

    #[test]
    fn body_has_one_knn_field_per_space_and_the_model_in_meta() {
        let spec = IndexSpec::new("m", 512);
        let body = index_body(&config(), &spec);
        assert_eq!(body["settings"]["index"]["knn"], json!(true));
        for space in EmbeddingSpace::ALL {
            let f = &body["mappings"]["properties"][vector_field(space)];
            assert_eq!(f["type"], "knn_vector");
            assert_eq!(f["dimension"], 512);
            assert_eq!(f["method"]["space_type"], "cosinesimil");
            assert_eq!(f["method"]["engine"], "faiss");
            // faiss reads ef_search from the method, not from the index setting.
            assert_eq!(f["method"]["parameters"]["ef_search"], 100);
        }
        assert!(
            body["settings"]["index"]
                .get("knn.algo_param.ef_search")
                .is_none(),
            "{body}"
        );
        assert_eq!(body["mappings"]["properties"]["key"]["type"], "keyword");
        assert_eq!(body["mappings"]["properties"]["written_at"]["type"], "date");
        let props = &body["mappings"]["properties"];
        assert_eq!(
            props["name"],
            json!({"type": "text", "fields": {"raw": {"type": "keyword"}}})
        );
        assert_eq!(props["duration_ms"]["type"], "long");
        assert_eq!(props["fields"], json!({"type": "object", "enabled": false}));
        for f in ["field_keys", "field_terms"] {
            assert_eq!(props[f]["type"], "keyword");
        }
        assert_eq!(body["mappings"]["_meta"]["crossmodal"]["model_id"], "m");
        assert_eq!(body["mappings"]["dynamic"], "strict");
        check_existing("i", &mappings(&body), &config(), &spec).unwrap();
    }

    #[test]
    fn disagreeing_indexes_are_conflicts() {
        let spec = IndexSpec::new("m", 512);
        let body = index_body(&config(), &spec);
        let other_model = IndexSpec::new("n", 512);
        let other_dim = IndexSpec::new("m", 1024);
        for s in [other_model, other_dim] {
            let e = check_existing("i", &mappings(&body), &config(), &s).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Conflict, "{e}");
        }
        let ip = OpenSearchConfig::builder("http://h")
            .space_type(SpaceType::InnerProduct)
            .build()
            .unwrap();
        let e = check_existing("i", &mappings(&body), &ip, &spec).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Conflict);
        assert!(e.message().contains("space type"), "{e}");
        let mut m = mappings(&body);
        m["properties"]["vector_audio"]["dimension"] = json!(256);
        let e = check_existing("i", &m, &config(), &spec).unwrap_err();
        assert!(e.message().contains("dimension 256"), "{e}");
        let e = check_existing("i", &json!({"properties": {}}), &config(), &spec).unwrap_err();
        assert!(e.message().contains("not created by crossmodal"), "{e}");
        // A field the index lacks is added later, not a conflict.
        let mut m = mappings(&body);
        m["properties"]
            .as_object_mut()
            .unwrap()
            .remove("vector_transcription");
        m["properties"].as_object_mut().unwrap().remove("key");
        let existing = check_existing("i", &m, &config(), &spec).unwrap();
        assert_eq!(existing.missing.spaces, vec![EmbeddingSpace::Transcription]);
        assert_eq!(existing.missing.fields, vec!["key".to_string()]);
        let add = add_fields_body(&config(), &spec, &existing.missing);
        assert_eq!(add["properties"]["vector_transcription"]["dimension"], 512);
        assert_eq!(add["properties"]["key"]["type"], "keyword");
        assert!(add["properties"].get("written_at").is_none());
        // An index of the layout before user fields gains them; one whose `fields` is an
        // indexed object is a conflict.
        let mut m = mappings(&body);
        for f in ["name", "duration_ms", "fields", "field_keys", "field_terms"] {
            m["properties"].as_object_mut().unwrap().remove(f);
        }
        let existing = check_existing("i", &m, &config(), &spec).unwrap();
        assert_eq!(
            existing.missing.fields,
            vec!["name", "duration_ms", "fields", "field_keys", "field_terms"]
        );
        let add = add_fields_body(&config(), &spec, &existing.missing);
        assert_eq!(add["properties"]["fields"]["enabled"], false);
        let mut m = mappings(&body);
        m["properties"]["fields"] = json!({"properties": {"name": {"type": "keyword"}}});
        let e = check_existing("i", &m, &config(), &spec).unwrap_err();
        assert!(e.message().contains("indexed object"), "{e}");
    }

    #[test]
    fn lucene_mappings_carry_no_ef_search() {
        let lucene = OpenSearchConfig::builder("http://h")
            .engine(Engine::Lucene)
            .build()
            .unwrap();
        let body = index_body(&lucene, &IndexSpec::new("m", 8));
        let params = &body["mappings"]["properties"]["vector_visual"]["method"]["parameters"];
        assert_eq!(params, &json!({"m": 16, "ef_construction": 128}));
    }
}
