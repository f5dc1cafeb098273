//! `_bulk`: action lines, per-item results, document checks against the mapping, partial
//! updates (`update` with `doc`), Serverless's refusal of `_id` in index/create items.

use super::*;

pub(super) fn item_error(index: &str, id: &str, action: &str, status: u16, error: Value) -> Value {
    json!({ action: {"_index": index, "_id": id, "status": status, "error": error} })
}

pub(super) fn parsing_error(
    field: &str,
    ty: &str,
    id: &str,
    preview: &Value,
    cause_type: &str,
    cause: &str,
) -> Value {
    json!({
        "type": "mapper_parsing_exception",
        "reason": format!("failed to parse field [{field}] of type [{ty}] in document with id '{id}'. Preview of field's value: '{preview}'"),
        "caused_by": {"type": cause_type, "reason": cause},
    })
}

/// Checks a document against the mapping; the error object of a rejected one.
pub(super) fn check_document(idx: &Index, id: &str, source: &Value) -> Result<(), Value> {
    let Some(obj) = source.as_object() else {
        return Err(
            json!({"type": "mapper_parsing_exception", "reason": "failed to parse, document is empty"}),
        );
    };
    for (name, value) in obj {
        let Some(ft) = idx.fields.get(name) else {
            if idx.dynamic == Dynamic::Strict {
                return Err(json!({
                    "type": "strict_dynamic_mapping_exception",
                    "reason": format!("mapping set to strict, dynamic introduction of [{name}] within [_doc] is not allowed"),
                }));
            }
            continue;
        };
        if value.is_null() {
            continue;
        }
        let values: Vec<&Value> = match (ft, value) {
            (FieldType::Knn { .. } | FieldType::Disabled, v) => vec![v],
            (_, Value::Array(a)) => a.iter().collect(),
            (_, v) => vec![v],
        };
        for v in values {
            match ft {
                FieldType::Knn { dim, space, .. } => {
                    let Some(arr) = v.as_array() else {
                        return Err(parsing_error(
                            name,
                            "knn_vector",
                            id,
                            v,
                            "illegal_argument_exception",
                            "Vector must be an array of numbers",
                        ));
                    };
                    let nums: Vec<f64> = arr.iter().filter_map(Value::as_f64).collect();
                    if nums.len() != arr.len() || nums.iter().any(|x| !x.is_finite()) {
                        return Err(parsing_error(
                            name,
                            "knn_vector",
                            id,
                            v,
                            "illegal_argument_exception",
                            "KNN vector values must be finite numbers",
                        ));
                    }
                    if nums.len() != *dim {
                        return Err(parsing_error(
                            name,
                            "knn_vector",
                            id,
                            &Value::Null,
                            "illegal_argument_exception",
                            &format!(
                                "Vector dimension mismatch. Expected: {dim}, Given: {}",
                                nums.len()
                            ),
                        ));
                    }
                    if *space == Space::CosineSimil && nums.iter().all(|x| *x == 0.0) {
                        return Err(parsing_error(
                            name,
                            "knn_vector",
                            id,
                            &Value::Null,
                            "illegal_argument_exception",
                            "zero vector is not supported when space type is [cosinesimil]",
                        ));
                    }
                }
                FieldType::Keyword => {
                    if v.is_object() || v.is_array() {
                        return Err(parsing_error(
                            name,
                            "keyword",
                            id,
                            v,
                            "illegal_state_exception",
                            "Can't get text on a START_OBJECT",
                        ));
                    }
                }
                FieldType::Integer { min, max } => {
                    let x = number_of(v).ok_or_else(|| {
                        parsing_error(
                            name,
                            "integer",
                            id,
                            v,
                            "number_format_exception",
                            &format!("For input string: \"{v}\""),
                        )
                    })?;
                    if x < *min || x > *max {
                        return Err(parsing_error(
                            name,
                            "integer",
                            id,
                            v,
                            "illegal_argument_exception",
                            &format!("Value [{v}] is out of range"),
                        ));
                    }
                }
                FieldType::Float | FieldType::Date => {
                    if number_of(v).is_none() {
                        return Err(parsing_error(
                            name,
                            "number",
                            id,
                            v,
                            "number_format_exception",
                            &format!("For input string: \"{v}\""),
                        ));
                    }
                }
                FieldType::Boolean => {
                    if !v.is_boolean() && v.as_str() != Some("true") && v.as_str() != Some("false")
                    {
                        return Err(parsing_error(
                            name,
                            "boolean",
                            id,
                            v,
                            "illegal_argument_exception",
                            "Failed to parse value as boolean",
                        ));
                    }
                }
                FieldType::Disabled => {}
                FieldType::Text { .. } => {
                    if v.is_object() || v.is_array() {
                        return Err(parsing_error(
                            name,
                            "text",
                            id,
                            v,
                            "illegal_state_exception",
                            "Can't get text on a START_OBJECT",
                        ));
                    }
                }
            }
        }
    }
    Ok(())
}

pub(super) fn number_of(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

pub(super) fn bulk(
    st: &mut State,
    spec: Option<&Spec>,
    path_index: Option<&&str>,
    query: &[(String, String)],
    text: &str,
    aoss: bool,
) -> Answer {
    let refresh = query
        .iter()
        .find(|(k, _)| k == "refresh")
        .map(|(_, v)| v.as_str());
    let mut lines = text.split('\n').filter(|l| !l.trim().is_empty()).peekable();
    if lines.peek().is_none() {
        return Err(fail(
            400,
            "action_request_validation_exception",
            "Validation Failed: 1: no requests added;",
        ));
    }
    let mut items = Vec::new();
    let mut errors = false;
    let mut touched = Vec::new();
    while let Some(line) = lines.next() {
        let action: Value = serde_json::from_str(line).map_err(|e| {
            let mut f = fail(
                400,
                "illegal_argument_exception",
                format!("Malformed action/metadata line: {e}"),
            );
            f.violation = true;
            f
        })?;
        if let Some(spec) = spec {
            let errs = spec.validate(
                "schemas/_core.bulk.yaml",
                "/components/schemas/OperationContainer",
                &action,
            );
            if !errs.is_empty() {
                return Err(unsupported(format!(
                    "bulk action line does not fit OperationContainer: {}",
                    errs.join("; ")
                )));
            }
        }
        let obj = action
            .as_object()
            .filter(|o| o.len() == 1)
            .ok_or_else(|| unsupported("a bulk action line must hold exactly one action"))?;
        let (op, meta) = obj.iter().next().unwrap();
        if !matches!(op.as_str(), "index" | "create" | "delete" | "update") {
            return Err(unsupported(format!(
                "bulk action {op} is not implemented by the test server"
            )));
        }
        if let Some(k) = meta
            .as_object()
            .and_then(|m| m.keys().find(|k| !matches!(k.as_str(), "_index" | "_id")))
        {
            return Err(unsupported(format!(
                "bulk action parameter {k} is not implemented by the test server"
            )));
        }
        let index = meta
            .get("_index")
            .and_then(Value::as_str)
            .or(path_index.map(|s| &**s))
            .ok_or_else(|| {
                fail(
                    400,
                    "action_request_validation_exception",
                    "Validation Failed: 1: index is missing;",
                )
            })?
            .to_string();
        let id = meta.get("_id").and_then(Value::as_str).map(str::to_string);
        // Updates and deletes name the (service-assigned) id; index and create may not.
        if aoss && matches!(op.as_str(), "index" | "create") && id.is_some() {
            // Serverless names documents itself; the item fails, the others go on. Its
            // source line is consumed like any other.
            let _ = lines.next();
            errors = true;
            st.refusals.push(format!(
                "bulk {op} item with _id {}: 400 {}",
                id.as_deref().unwrap_or_default(),
                serverless::DOCUMENT_ID_NOT_SUPPORTED
            ));
            items.push(item_error(
                &index,
                id.as_deref().unwrap_or_default(),
                op,
                400,
                json!({
                    "type": "illegal_argument_exception",
                    "reason": serverless::DOCUMENT_ID_NOT_SUPPORTED,
                }),
            ));
            continue;
        }
        let source = if op == "delete" {
            None
        } else {
            let line = lines.next().ok_or_else(|| {
                fail(
                    400,
                    "illegal_argument_exception",
                    "The bulk request must be terminated by a newline [\\n]",
                )
            })?;
            Some(serde_json::from_str::<Value>(line).map_err(|e| {
                let mut f = fail(
                    400,
                    "mapper_parsing_exception",
                    format!("failed to parse: {e}"),
                );
                f.violation = true;
                f
            })?)
        };
        if op == "update" {
            check_update_line(source.as_ref())?;
        }
        let by_id = id
            .as_ref()
            .and_then(|i| st.faults.item_429_ids.get_mut(i))
            .filter(|n| **n > 0)
            .map(|n| *n -= 1)
            .is_some();
        if by_id || st.faults.item_429 > 0 {
            if !by_id {
                st.faults.item_429 -= 1;
            }
            errors = true;
            items.push(item_error(
                &index,
                id.as_deref().unwrap_or(""),
                op,
                429,
                json!({
                    "type": "es_rejected_execution_exception",
                    "reason": "rejected execution of primary operation [test server injected 429]",
                }),
            ));
            continue;
        }
        let Some(idx) = st.indices.get_mut(&index) else {
            // OpenSearch would create the index with dynamic mappings (no knn_vector field):
            // never what the backend wants.
            return Err(unsupported(format!(
                "bulk write to missing index {index} (would auto-create it)"
            )));
        };
        let id = match id {
            Some(id) => id,
            None if op == "delete" || op == "update" => {
                return Err(fail(
                    400,
                    "action_request_validation_exception",
                    "Validation Failed: 1: id is missing;",
                ));
            }
            None => idx.service_id(),
        };
        if op == "update" {
            let doc = source
                .as_ref()
                .and_then(|s| s.get("doc"))
                .cloned()
                .unwrap_or(Value::Null);
            let item = update_doc(idx, &index, &id, &doc);
            if item.get("update").and_then(|u| u.get("error")).is_some() {
                errors = true;
            }
            items.push(item);
            if !touched.contains(&index) {
                touched.push(index);
            }
            continue;
        }
        match source {
            None => {
                let found = idx.live.remove(&id);
                idx.next_seq += 1;
                if found.is_some() {
                    idx.changed(&id, None);
                }
                let (status, result) = if found.is_some() {
                    (200, "deleted")
                } else {
                    (404, "not_found")
                };
                items.push(json!({op: {"_index": index, "_id": id, "_version": found.map_or(1, |d| d.version + 1),
                    "result": result, "status": status, "_seq_no": idx.next_seq - 1, "_primary_term": 1,
                    "_shards": {"total": 2, "successful": 1, "failed": 0}}}));
            }
            Some(source) => {
                if let Err(e) = check_document(idx, &id, &source) {
                    errors = true;
                    items.push(item_error(&index, &id, op, 400, e));
                    continue;
                }
                let existing = idx.live.get(&id).cloned();
                if op == "create" && existing.is_some() {
                    errors = true;
                    items.push(item_error(
                        &index,
                        &id,
                        op,
                        409,
                        json!({
                            "type": "version_conflict_engine_exception",
                            "reason": format!("[{id}]: version conflict, document already exists"),
                        }),
                    ));
                    continue;
                }
                let version = existing.as_ref().map_or(1, |d| d.version + 1);
                let order = match &existing {
                    Some(d) => d.order,
                    None => {
                        idx.next_order += 1;
                        idx.next_order
                    }
                };
                let seq_no = idx.next_seq;
                idx.next_seq += 1;
                let vectors = vectors_of(idx, &source);
                let doc = Arc::new(Doc {
                    source,
                    vectors,
                    seq_no,
                    version,
                    order,
                });
                idx.live.insert(id.clone(), doc.clone());
                idx.changed(&id, Some(doc));
                let (status, result) = if existing.is_some() {
                    (200, "updated")
                } else {
                    (201, "created")
                };
                items.push(
                    json!({op: {"_index": index, "_id": id, "_version": version, "result": result,
                    "_shards": {"total": 2, "successful": 1, "failed": 0}, "_seq_no": seq_no,
                    "_primary_term": 1, "status": status}}),
                );
            }
        }
        if !touched.contains(&index) {
            touched.push(index);
        }
    }
    if matches!(refresh, Some("true" | "" | "wait_for")) {
        for name in &touched {
            if let Some(idx) = st.indices.get_mut(name) {
                idx.refresh();
            }
        }
    } else if let Some(r) = refresh
        && r != "false"
    {
        return Err(unsupported(format!("refresh={r}")));
    }
    Ok((200, json!({"took": 1, "errors": errors, "items": items})))
}

/// Checks the source line of an `update` item: a partial `doc` object is what the server
/// implements; an update without `doc` or `script` is invalid, as OpenSearch says.
fn check_update_line(line: Option<&Value>) -> Result<(), Failure> {
    let obj = line.and_then(Value::as_object).ok_or_else(|| {
        fail(
            400,
            "action_request_validation_exception",
            "Validation Failed: 1: script or doc is missing;",
        )
    })?;
    if let Some(k) = obj.keys().find(|k| *k != "doc") {
        return Err(unsupported(format!(
            "bulk update parameter {k} is not implemented by the test server"
        )));
    }
    match obj.get("doc") {
        Some(Value::Object(_)) => Ok(()),
        None => Err(fail(
            400,
            "action_request_validation_exception",
            "Validation Failed: 1: script or doc is missing;",
        )),
        Some(other) => Err(fail(
            400,
            "parse_exception",
            format!("[doc] must be an object, found {other}"),
        )),
    }
}

/// Merges `patch` into `target` as OpenSearch merges a partial update's `doc` into `_source`:
/// objects key by key (recursively), everything else (arrays included) replaced.
pub(super) fn merge_partial(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                match t.get_mut(k) {
                    Some(existing @ Value::Object(_)) if v.is_object() => {
                        merge_partial(existing, v)
                    }
                    _ => {
                        t.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (t, p) => *t = p.clone(),
    }
}

/// One bulk `update` item: merges `doc` into the live document `id` (404
/// `document_missing_exception` when there is none), checks the result against the mapping,
/// answers `noop` when nothing changes.
fn update_doc(idx: &mut Index, index: &str, id: &str, doc: &Value) -> Value {
    let Some(existing) = idx.live.get(id).cloned() else {
        return item_error(
            index,
            id,
            "update",
            404,
            json!({
                "type": "document_missing_exception",
                "reason": format!("[{id}]: document missing"),
                "index": index,
                "shard": "0",
            }),
        );
    };
    let mut source = existing.source.clone();
    merge_partial(&mut source, doc);
    if source == existing.source {
        return json!({"update": {"_index": index, "_id": id, "_version": existing.version,
            "result": "noop", "_shards": {"total": 0, "successful": 0, "failed": 0},
            "_seq_no": existing.seq_no, "_primary_term": 1, "status": 200}});
    }
    if let Err(e) = check_document(idx, id, &source) {
        return item_error(index, id, "update", 400, e);
    }
    let seq_no = idx.next_seq;
    idx.next_seq += 1;
    let version = existing.version + 1;
    let updated = Arc::new(Doc {
        vectors: vectors_of(idx, &source),
        source,
        seq_no,
        version,
        order: existing.order,
    });
    idx.live.insert(id.to_string(), updated.clone());
    idx.changed(id, Some(updated));
    json!({"update": {"_index": index, "_id": id, "_version": version, "result": "updated",
        "_shards": {"total": 2, "successful": 1, "failed": 0}, "_seq_no": seq_no,
        "_primary_term": 1, "status": 200}})
}

/// The `knn_vector` fields of a `_source`, parsed, with their norms.
pub(super) fn vectors_of(idx: &Index, source: &Value) -> HashMap<String, (Vec<f32>, f64)> {
    idx.fields
        .iter()
        .filter(|(_, t)| matches!(t, FieldType::Knn { .. }))
        .filter_map(|(f, _)| {
            let v = source.get(f)?.as_array()?;
            let v: Vec<f32> = v
                .iter()
                .filter_map(Value::as_f64)
                .map(|x| x as f32)
                .collect();
            let norm = v
                .iter()
                .map(|x| f64::from(*x) * f64::from(*x))
                .sum::<f64>()
                .sqrt();
            Some((f.clone(), (v, norm)))
        })
        .collect()
}
