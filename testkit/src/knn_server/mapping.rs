//! Index creation and mappings: settings, field types (with the k-NN engine rules and the
//! version floors), `PUT _mapping`.

use super::*;

pub(super) fn flatten_settings(prefix: &str, v: &Value, out: &mut Map<String, Value>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten_settings(&key, v, out);
            }
        }
        other => {
            out.insert(prefix.to_string(), other.clone());
        }
    }
}

pub(super) fn truthy(v: &Value) -> bool {
    matches!(v, Value::Bool(true)) || v.as_str() == Some("true")
}

pub(super) fn create_index(st: &mut State, name: &str, body: &Value, aoss: bool) -> Answer {
    if st.indices.contains_key(name) {
        return Err(fail(
            400,
            "resource_already_exists_exception",
            format!("index [{name}/test-uuid] already exists"),
        ));
    }
    if name.chars().any(|c| c.is_uppercase()) || name.starts_with(['_', '-', '+']) {
        return Err(fail(
            400,
            "invalid_index_name_exception",
            format!("Invalid index name [{name}]"),
        ));
    }
    if let Some(k) = body
        .as_object()
        .and_then(|o| o.keys().find(|k| *k != "settings" && *k != "mappings"))
    {
        return Err(unsupported(format!(
            "index creation with {k:?} is not implemented"
        )));
    }
    let mut settings = Map::new();
    if let Some(s) = body.get("settings") {
        flatten_settings("", s, &mut settings);
    }
    // `knn` and `index.knn` name the same setting.
    let settings: Map<String, Value> = settings
        .into_iter()
        .map(|(k, v)| {
            if k.starts_with("index.") {
                (k, v)
            } else {
                (format!("index.{k}"), v)
            }
        })
        .collect();
    for k in settings.keys() {
        if !matches!(
            k.as_str(),
            "index.knn"
                | "index.knn.algo_param.ef_search"
                | "index.number_of_shards"
                | "index.number_of_replicas"
                | "index.refresh_interval"
        ) {
            return Err(unsupported(format!(
                "index setting {k} is not implemented by the test server"
            )));
        }
    }
    let mappings = body.get("mappings").cloned().unwrap_or_else(|| json!({}));
    let dynamic = match mappings.get("dynamic") {
        None => Dynamic::True,
        Some(v) if truthy(v) => Dynamic::True,
        Some(v) if v == "strict" => Dynamic::Strict,
        Some(v) if v == false || v == "false" => Dynamic::False,
        Some(v) => return Err(unsupported(format!("dynamic {v} is not implemented"))),
    };
    if let Some(k) = mappings.as_object().and_then(|o| {
        o.keys()
            .find(|k| !matches!(k.as_str(), "dynamic" | "_meta" | "properties"))
    }) {
        return Err(unsupported(format!(
            "mapping parameter {k:?} is not implemented"
        )));
    }
    let mut fields = HashMap::new();
    let version = st.version();
    if let Some(props) = mappings.get("properties").and_then(Value::as_object) {
        for (name, def) in props {
            fields.insert(name.clone(), field_type(name, def, aoss, version)?);
        }
    }
    let seed = name.bytes().fold(0x9E37_79B9_7F4A_7C15u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01B3)
    }) | 1;
    st.indices.insert(
        name.to_string(),
        Index {
            settings,
            mappings,
            fields,
            dynamic,
            live: BTreeMap::new(),
            searchable: Arc::new(BTreeMap::new()),
            pending: VecDeque::new(),
            lag: st.visibility,
            next_seq: 0,
            next_order: 0,
            id_state: seed,
        },
    );
    Ok((
        200,
        json!({"acknowledged": true, "shards_acknowledged": true, "index": name}),
    ))
}

pub(super) fn field_type(
    name: &str,
    def: &Value,
    aoss: bool,
    version: (u32, u32),
) -> Result<FieldType, Failure> {
    let ty = def.get("type").and_then(Value::as_str).unwrap_or("object");
    let allowed_keys: &[&str] = match ty {
        "knn_vector" => &[
            "type",
            "dimension",
            "method",
            "space_type",
            "data_type",
            "doc_values",
        ],
        "date" => &["type", "format"],
        "object" => &["type", "enabled"],
        "text" => &["type", "fields"],
        _ => &["type"],
    };
    if let Some(k) = def
        .as_object()
        .and_then(|o| o.keys().find(|k| !allowed_keys.contains(&k.as_str())))
    {
        return Err(unsupported(format!(
            "field [{name}] parameter {k:?} is not implemented"
        )));
    }
    Ok(match ty {
        "knn_vector" => {
            let dim = def
                .get("dimension")
                .and_then(Value::as_u64)
                .ok_or_else(|| {
                    fail(
                        400,
                        "mapper_parsing_exception",
                        format!("Dimension value missing for vector: {name}"),
                    )
                })?;
            if dim == 0 || dim > 16_000 {
                return Err(fail(
                    400,
                    "mapper_parsing_exception",
                    format!(
                        "Dimension value cannot be greater than 16000 or less than 1 for vector: {name}"
                    ),
                ));
            }
            if let Some(dt) = def.get("data_type").and_then(Value::as_str)
                && dt != "float"
            {
                return Err(unsupported(format!("data_type {dt} is not implemented")));
            }
            let method = def.get("method");
            let engine = method
                .and_then(|m| m.get("engine"))
                .and_then(Value::as_str)
                .unwrap_or("faiss");
            let space = method
                .and_then(|m| m.get("space_type"))
                .or_else(|| def.get("space_type"))
                .and_then(Value::as_str)
                .unwrap_or("l2");
            if aoss {
                let method_name = method.and_then(|m| m.get("name")).and_then(Value::as_str);
                serverless::check_knn_method(name, engine, method_name).map_err(|mut f| {
                    f.serverless = true;
                    f
                })?;
            }
            if let Some(m) = method {
                if let Some(k) = m.as_object().and_then(|o| {
                    o.keys().find(|k| {
                        !matches!(k.as_str(), "name" | "engine" | "space_type" | "parameters")
                    })
                }) {
                    return Err(unsupported(format!(
                        "knn method parameter {k:?} is not implemented"
                    )));
                }
                if m.get("name").and_then(Value::as_str) != Some("hnsw") {
                    return Err(unsupported(
                        "knn methods other than hnsw are not implemented",
                    ));
                }
                if let Some(k) = m
                    .get("parameters")
                    .and_then(Value::as_object)
                    .and_then(|o| {
                        o.keys()
                            .find(|k| !matches!(k.as_str(), "m" | "ef_construction" | "ef_search"))
                    })
                {
                    return Err(unsupported(format!(
                        "hnsw parameter {k:?} is not implemented"
                    )));
                }
                if engine == "lucene"
                    && m.get("parameters")
                        .and_then(|p| p.get("ef_search"))
                        .is_some()
                {
                    // Lucene's HNSW takes m and ef_construction; ef_search is faiss's (and
                    // nmslib's index setting).
                    return Err(fail(
                        400,
                        "mapper_parsing_exception",
                        format!(
                            "Validation Failed: 1: Unknown parameter 'ef_search' for method 'hnsw' \
                             of engine 'lucene' in field [{name}];"
                        ),
                    ));
                }
            }
            let ef_search = method
                .and_then(|m| m.get("parameters"))
                .and_then(|p| p.get("ef_search"))
                .and_then(Value::as_u64);
            if engine == "faiss" && space == "cosinesimil" && version < (2, 19) {
                return Err(fail(
                    400,
                    "mapper_parsing_exception",
                    format!(
                        "Validation Failed: 1: space type [cosinesimil] is not supported with \
                         [faiss] engine in field [{name}];"
                    ),
                ));
            }
            match engine {
                "faiss" | "lucene" => {}
                "nmslib" => {
                    return Err(fail(
                        400,
                        "mapper_parsing_exception",
                        "nmslib engine is deprecated in OpenSearch and cannot be used for new index creation starting from version 3.0.0.",
                    ));
                }
                other => {
                    return Err(fail(
                        400,
                        "mapper_parsing_exception",
                        format!("Invalid engine type: {other}"),
                    ));
                }
            }
            let space = match space {
                "cosinesimil" => Space::CosineSimil,
                "innerproduct" => Space::InnerProduct,
                "l2" => Space::L2,
                other => {
                    return Err(unsupported(format!(
                        "space type {other} is not implemented"
                    )));
                }
            };
            FieldType::Knn {
                dim: dim as usize,
                space,
                engine: engine.to_string(),
                ef_search,
            }
        }
        "keyword" => FieldType::Keyword,
        "byte" => FieldType::Integer {
            min: -128.0,
            max: 127.0,
        },
        "short" => FieldType::Integer {
            min: -32768.0,
            max: 32767.0,
        },
        "integer" => FieldType::Integer {
            min: f64::from(i32::MIN),
            max: f64::from(i32::MAX),
        },
        "long" => FieldType::Integer {
            min: -9.2e18,
            max: 9.2e18,
        },
        "float" | "double" | "half_float" => FieldType::Float,
        "date" => {
            if let Some(f) = def.get("format").and_then(Value::as_str)
                && f != "epoch_millis"
            {
                return Err(unsupported(format!("date format {f} is not implemented")));
            }
            FieldType::Date
        }
        "boolean" => FieldType::Boolean,
        "object" if def.get("enabled") == Some(&Value::Bool(false)) => FieldType::Disabled,
        "text" => {
            let mut fields = BTreeMap::new();
            if let Some(subs) = def.get("fields") {
                let subs = subs.as_object().ok_or_else(|| {
                    fail(
                        400,
                        "mapper_parsing_exception",
                        format!("[fields] of field [{name}] must be an object"),
                    )
                })?;
                for (sub, sub_def) in subs {
                    let ft = field_type(&format!("{name}.{sub}"), sub_def, aoss, version)?;
                    if ft != FieldType::Keyword {
                        return Err(unsupported(format!(
                            "sub-field {name}.{sub} of a type other than keyword is not implemented"
                        )));
                    }
                    fields.insert(sub.clone(), ft);
                }
            }
            FieldType::Text { fields }
        }
        other => {
            return Err(unsupported(format!(
                "field type {other} is not implemented"
            )));
        }
    })
}

/// `PUT /<index>/_mapping`: new fields are added; an existing field cannot change type.
pub(super) fn put_mapping(
    idx: &mut Index,
    body: &Value,
    aoss: bool,
    version: (u32, u32),
) -> Answer {
    if let Some(k) = body
        .as_object()
        .and_then(|o| o.keys().find(|k| *k != "properties"))
    {
        return Err(unsupported(format!(
            "put mapping with {k:?} is not implemented"
        )));
    }
    let props = body
        .get("properties")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let mut added = Vec::new();
    for (name, def) in &props {
        let ft = field_type(name, def, aoss, version)?;
        match idx.fields.get(name) {
            Some(old) if *old != ft => {
                return Err(fail(
                    400,
                    "illegal_argument_exception",
                    format!("mapper [{name}] cannot be changed from type [{old:?}] to [{ft:?}]"),
                ));
            }
            Some(_) => {}
            None => added.push((name.clone(), ft, def.clone())),
        }
    }
    for (name, ft, def) in added {
        idx.fields.insert(name.clone(), ft);
        if !idx.mappings.get("properties").is_some_and(Value::is_object) {
            idx.mappings["properties"] = json!({});
        }
        idx.mappings["properties"][name] = def;
    }
    Ok((200, json!({"acknowledged": true})))
}
