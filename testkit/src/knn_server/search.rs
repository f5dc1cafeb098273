//! `_search` (sorting, `search_after`, `_source` filtering, totals, aggregations) and
//! `_delete_by_query`.

use super::*;

pub(super) fn pattern_matches(pattern: &str, name: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == name,
        Some((pre, post)) => {
            if post.contains('*') {
                // Not needed by any request so far.
                return false;
            }
            name.len() >= pre.len() + post.len() && name.starts_with(pre) && name.ends_with(post)
        }
    }
}

pub(super) fn string_list(v: &Value) -> Result<Vec<String>, Failure> {
    match v {
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(a) => a
            .iter()
            .map(|x| {
                x.as_str().map(str::to_string).ok_or_else(|| {
                    fail(400, "parsing_exception", "_source patterns must be strings")
                })
            })
            .collect(),
        _ => Err(fail(
            400,
            "parsing_exception",
            "_source patterns must be strings",
        )),
    }
}

/// `_source` filtering: `true`/`false`, patterns, or `{includes, excludes}` (top-level fields).
pub(super) fn filter_source(
    source: &Value,
    spec: Option<&Value>,
) -> Result<Option<Value>, Failure> {
    let (includes, excludes) = match spec {
        None | Some(Value::Bool(true)) => return Ok(Some(source.clone())),
        Some(Value::Bool(false)) => return Ok(None),
        Some(v @ (Value::String(_) | Value::Array(_))) => (string_list(v)?, vec![]),
        Some(Value::Object(o)) => {
            if let Some(k) = o
                .keys()
                .find(|k| !matches!(k.as_str(), "includes" | "excludes"))
            {
                return Err(unsupported(format!("_source.{k} is not implemented")));
            }
            (
                o.get("includes")
                    .map(string_list)
                    .transpose()?
                    .unwrap_or_default(),
                o.get("excludes")
                    .map(string_list)
                    .transpose()?
                    .unwrap_or_default(),
            )
        }
        Some(other) => {
            return Err(fail(
                400,
                "parsing_exception",
                format!("bad _source {other}"),
            ));
        }
    };
    if includes.iter().chain(&excludes).any(|p| p.contains('.')) {
        return Err(unsupported(
            "_source patterns on nested paths are not implemented",
        ));
    }
    let obj = source.as_object().cloned().unwrap_or_default();
    let kept: Map<String, Value> = obj
        .into_iter()
        .filter(|(k, _)| includes.is_empty() || includes.iter().any(|p| pattern_matches(p, k)))
        .filter(|(k, _)| !excludes.iter().any(|p| pattern_matches(p, k)))
        .collect();
    Ok(Some(Value::Object(kept)))
}

#[derive(Clone)]
pub(super) struct SortKey {
    field: String,
    desc: bool,
}

pub(super) fn parse_sort(v: &Value) -> Result<Vec<SortKey>, Failure> {
    let items: Vec<&Value> = match v {
        Value::Array(a) => a.iter().collect(),
        other => vec![other],
    };
    items
        .into_iter()
        .map(|item| match item {
            Value::String(f) => Ok(SortKey {
                field: f.clone(),
                desc: f == "_score",
            }),
            Value::Object(o) if o.len() == 1 => {
                let (f, spec) = o.iter().next().unwrap();
                let order = match spec {
                    Value::String(s) => s.as_str(),
                    Value::Object(so) => {
                        if let Some(k) = so.keys().find(|k| *k != "order") {
                            return Err(unsupported(format!("sort option {k} is not implemented")));
                        }
                        so.get("order").and_then(Value::as_str).unwrap_or("asc")
                    }
                    _ => return Err(fail(400, "parsing_exception", "bad sort")),
                };
                Ok(SortKey {
                    field: f.clone(),
                    desc: order == "desc",
                })
            }
            _ => Err(fail(400, "parsing_exception", "bad sort")),
        })
        .collect()
}

pub(super) fn sort_value(doc: &Doc, id: &str, score: f64, key: &SortKey) -> Value {
    match key.field.as_str() {
        "_score" => json!(score),
        "_id" => json!(id),
        f => {
            let vals = field_values(&doc.source, f);
            // Multi-valued fields sort by their min (asc) or max (desc); missing sorts last.
            let mut best: Option<&Value> = None;
            for v in vals {
                best = Some(match best {
                    None => v,
                    Some(b) => {
                        let better = cmp_values(v, b);
                        if (key.desc && better.is_gt()) || (!key.desc && better.is_lt()) {
                            v
                        } else {
                            b
                        }
                    }
                });
            }
            best.cloned().unwrap_or(Value::Null)
        }
    }
}

pub(super) fn cmp_values(a: &Value, b: &Value) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    match (a, b) {
        (Value::Null, Value::Null) => Ordering::Equal,
        (Value::Null, _) => Ordering::Greater,
        (_, Value::Null) => Ordering::Less,
        _ => match (number_of(a), number_of(b)) {
            (Some(x), Some(y)) if a.is_number() && b.is_number() => x.total_cmp(&y),
            _ => a
                .as_str()
                .unwrap_or_default()
                .cmp(b.as_str().unwrap_or_default()),
        },
    }
}

/// Compares two sort tuples in the requested order (missing values last either way).
pub(super) fn cmp_tuples(a: &[Value], b: &[Value], keys: &[SortKey]) -> std::cmp::Ordering {
    for ((x, y), k) in a.iter().zip(b).zip(keys) {
        let mut o = cmp_values(x, y);
        if k.desc && !x.is_null() && !y.is_null() {
            o = o.reverse();
        }
        if o.is_ne() {
            return o;
        }
    }
    std::cmp::Ordering::Equal
}

pub(super) fn search(idx: &Index, body: &Value, mut ctx: QueryCtx<'_>) -> Answer {
    let index = ctx.index;
    let body = if body.is_null() {
        json!({})
    } else {
        body.clone()
    };
    let obj = body
        .as_object()
        .ok_or_else(|| fail(400, "parsing_exception", "search body must be an object"))?;
    for k in obj.keys() {
        if !matches!(
            k.as_str(),
            "query"
                | "size"
                | "from"
                | "_source"
                | "track_total_hits"
                | "aggs"
                | "aggregations"
                | "sort"
                | "search_after"
        ) {
            return Err(unsupported(format!(
                "search body key {k:?} is not implemented by the test server"
            )));
        }
    }
    let docs = idx.searchable.clone();
    let matched = match obj.get("query") {
        Some(q) => eval(idx, &docs, &mut ctx, q)?,
        None => docs.keys().map(|k| (k.clone(), 1.0)).collect(),
    };
    let size = obj
        .get("size")
        .map_or(Some(10), Value::as_u64)
        .ok_or_else(|| fail(400, "parsing_exception", "size must be a number"))?
        as usize;
    let from = obj
        .get("from")
        .map_or(Some(0), Value::as_u64)
        .ok_or_else(|| fail(400, "parsing_exception", "from must be a number"))?
        as usize;
    if from + size > 10_000 {
        return Err(fail(
            400,
            "illegal_argument_exception",
            format!(
                "Result window is too large, from + size must be less than or equal to: [10000] but was [{}]",
                from + size
            ),
        ));
    }
    let sort = obj.get("sort").map(parse_sort).transpose()?;
    let mut rows: Vec<(String, f64, Arc<Doc>, Vec<Value>)> = matched
        .iter()
        .map(|(id, s)| {
            let d = docs[id].clone();
            let sv = sort
                .as_ref()
                .map(|keys| keys.iter().map(|k| sort_value(&d, id, *s, k)).collect())
                .unwrap_or_default();
            (id.clone(), *s, d, sv)
        })
        .collect();
    match &sort {
        Some(keys) => {
            rows.sort_by(|a, b| cmp_tuples(&a.3, &b.3, keys).then(a.2.order.cmp(&b.2.order)))
        }
        None => rows.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.2.order.cmp(&b.2.order))),
    }
    if let Some(after) = obj.get("search_after") {
        let keys = sort.as_ref().ok_or_else(|| {
            fail(
                400,
                "illegal_argument_exception",
                "Sort must contain at least one field.",
            )
        })?;
        let after = after
            .as_array()
            .filter(|a| a.len() == keys.len())
            .ok_or_else(|| {
                fail(
                    400,
                    "illegal_argument_exception",
                    "search_after has a different number of values than the sort",
                )
            })?;
        rows.retain(|r| cmp_tuples(&r.3, after, keys).is_gt());
    }
    let total = matched.len();
    let track = obj.get("track_total_hits");
    let total_json = match track {
        Some(Value::Bool(false)) => None,
        Some(Value::Bool(true)) => Some(json!({"value": total, "relation": "eq"})),
        Some(Value::Number(n)) => {
            let cap = n.as_u64().unwrap_or(10_000) as usize;
            Some(if total > cap {
                json!({"value": cap, "relation": "gte"})
            } else {
                json!({"value": total, "relation": "eq"})
            })
        }
        None => Some(if total > 10_000 {
            json!({"value": 10_000, "relation": "gte"})
        } else {
            json!({"value": total, "relation": "eq"})
        }),
        Some(other) => {
            return Err(fail(
                400,
                "parsing_exception",
                format!("bad track_total_hits {other}"),
            ));
        }
    };
    let sorted_by_field = sort
        .as_ref()
        .is_some_and(|k| k.iter().all(|k| k.field != "_score"));
    let mut hits = Vec::new();
    let mut max_score: Option<f64> = None;
    for (id, score, d, sv) in rows.iter().skip(from).take(size) {
        let mut h = Map::new();
        h.insert("_index".into(), json!(index));
        h.insert("_id".into(), json!(id));
        if sorted_by_field {
            h.insert("_score".into(), Value::Null);
        } else {
            h.insert("_score".into(), json!(*score as f32));
            max_score = Some(max_score.map_or(*score, |m: f64| m.max(*score)));
        }
        if let Some(src) = filter_source(&d.source, obj.get("_source"))? {
            h.insert("_source".into(), src);
        }
        if sort.is_some() {
            h.insert("sort".into(), Value::Array(sv.clone()));
        }
        hits.push(Value::Object(h));
    }
    let mut hits_obj = Map::new();
    if let Some(t) = total_json {
        hits_obj.insert("total".into(), t);
    }
    hits_obj.insert(
        "max_score".into(),
        max_score.map_or(Value::Null, |m| json!(m as f32)),
    );
    hits_obj.insert("hits".into(), Value::Array(hits));
    let mut out = json!({
        "took": 1,
        "timed_out": false,
        "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0},
        "hits": Value::Object(hits_obj),
    });
    if let Some(aggs) = obj.get("aggs").or_else(|| obj.get("aggregations")) {
        out["aggregations"] = aggregations(idx, &docs, &matched, aggs)?;
    }
    Ok((200, out))
}

pub(super) fn aggregations(
    idx: &Index,
    docs: &BTreeMap<String, Arc<Doc>>,
    matched: &Scored,
    aggs: &Value,
) -> Result<Value, Failure> {
    let mut out = Map::new();
    for (name, def) in aggs
        .as_object()
        .ok_or_else(|| fail(400, "parsing_exception", "aggs must be an object"))?
    {
        let o = def
            .as_object()
            .filter(|o| o.len() == 1)
            .ok_or_else(|| unsupported("sub-aggregations and meta are not implemented"))?;
        let (kind, params) = o.iter().next().unwrap();
        let field = params
            .get("field")
            .and_then(Value::as_str)
            .ok_or_else(|| unsupported(format!("{kind} aggregation without field")))?;
        if !idx.fields.contains_key(field) {
            return Err(unsupported(format!(
                "aggregation on unmapped field {field}"
            )));
        }
        let mut counts: BTreeMap<String, (Value, u64)> = BTreeMap::new();
        for (id, _) in matched {
            let mut seen = std::collections::HashSet::new();
            for v in field_values(&docs[id].source, field) {
                let key = v
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| v.to_string());
                if seen.insert(key.clone()) {
                    counts.entry(key).or_insert_with(|| (v.clone(), 0)).1 += 1;
                }
            }
        }
        match kind.as_str() {
            "terms" => {
                if let Some(k) = params
                    .as_object()
                    .and_then(|p| p.keys().find(|k| !matches!(k.as_str(), "field" | "size")))
                {
                    return Err(unsupported(format!(
                        "terms aggregation parameter {k} is not implemented"
                    )));
                }
                let size = params.get("size").and_then(Value::as_u64).unwrap_or(10) as usize;
                let mut buckets: Vec<(Value, u64)> = counts.into_values().collect();
                buckets.sort_by(|a, b| b.1.cmp(&a.1).then(cmp_values(&a.0, &b.0)));
                let other: u64 = buckets.iter().skip(size).map(|b| b.1).sum();
                buckets.truncate(size);
                out.insert(name.clone(), json!({
                    "doc_count_error_upper_bound": 0,
                    "sum_other_doc_count": other,
                    "buckets": buckets.into_iter().map(|(k, n)| json!({"key": k, "doc_count": n})).collect::<Vec<_>>(),
                }));
            }
            "cardinality" => {
                if let Some(k) = params.as_object().and_then(|p| {
                    p.keys()
                        .find(|k| !matches!(k.as_str(), "field" | "precision_threshold"))
                }) {
                    return Err(unsupported(format!(
                        "cardinality parameter {k} is not implemented"
                    )));
                }
                out.insert(name.clone(), json!({"value": counts.len()}));
            }
            other => {
                return Err(unsupported(format!(
                    "aggregation {other} is not implemented by the test server"
                )));
            }
        }
    }
    Ok(Value::Object(out))
}

pub(super) fn delete_by_query(
    index: &str,
    idx: &mut Index,
    body: &Value,
    query: &[(String, String)],
    time_out: bool,
    version: (u32, u32),
) -> Answer {
    let obj = body.as_object().ok_or_else(|| {
        fail(
            400,
            "action_request_validation_exception",
            "query is missing",
        )
    })?;
    if let Some(k) = obj.keys().find(|k| *k != "query") {
        return Err(unsupported(format!(
            "delete_by_query body key {k} is not implemented"
        )));
    }
    let q = obj.get("query").ok_or_else(|| {
        fail(
            400,
            "action_request_validation_exception",
            "Validation Failed: 1: query is missing;",
        )
    })?;
    let mut refresh = false;
    let mut proceed = false;
    for (k, v) in query {
        match (k.as_str(), v.as_str()) {
            ("refresh", "true" | "") => refresh = true,
            ("refresh", "false") => {}
            ("conflicts", "proceed") => proceed = true,
            ("conflicts", "abort") => {}
            _ => {
                return Err(unsupported(format!(
                    "delete_by_query parameter {k}={v} is not implemented"
                )));
            }
        }
    }
    // Works on a point-in-time view of what is searchable, like OpenSearch's scroll.
    let snapshot = idx.searchable.clone();
    let mut knn = Vec::new();
    let mut ctx = QueryCtx {
        index,
        version,
        knn: &mut knn,
    };
    let matched = eval(idx, &snapshot, &mut ctx, q)?;
    let mut deleted = 0u64;
    let mut conflicts = 0u64;
    // A request whose time runs out stops part way: what it deleted stays deleted.
    let stop_after = if time_out {
        matched.len() / 2
    } else {
        matched.len()
    };
    for (id, _) in matched.iter().take(stop_after) {
        let seen = &snapshot[id];
        match idx.live.get(id) {
            Some(cur) if cur.seq_no == seen.seq_no => {
                idx.live.remove(id);
                idx.next_seq += 1;
                idx.changed(id, None);
                deleted += 1;
            }
            _ => {
                conflicts += 1;
                if !proceed {
                    return Err(fail(
                        409,
                        "version_conflict_engine_exception",
                        format!("[{id}]: version conflict"),
                    ));
                }
            }
        }
    }
    if refresh {
        idx.refresh();
    }
    Ok((
        200,
        json!({
            "took": 1, "timed_out": time_out, "total": matched.len(), "deleted": deleted, "batches": 1,
            "version_conflicts": conflicts, "noops": 0, "retries": {"bulk": 0, "search": 0},
            "throttled_millis": 0, "requests_per_second": -1.0, "throttled_until_millis": 0, "failures": [],
        }),
    ))
}
