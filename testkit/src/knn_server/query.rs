//! The query DSL the backend uses: `match_all`, `term`, `terms`, `range` (numeric, date, and
//! keyword ranges compared byte-wise), `exists`, `ids`, `bool`, `match` (BM25 on `text` fields,
//! [`super::text`]), and `knn` (exact, with efficient filtering, the documented scores, and a record of
//! the `ef_search` the engine would use).

use super::*;

pub(super) type Scored = Vec<(String, f64)>;

pub(super) fn field_values<'a>(doc: &'a Value, field: &str) -> Vec<&'a Value> {
    match doc.get(field) {
        None | Some(Value::Null) => vec![],
        Some(Value::Array(a)) => a.iter().filter(|v| !v.is_null()).collect(),
        Some(v) => vec![v],
    }
}

/// The mapping of `field`, a `text` field's sub-field (`name.raw`) included.
pub(super) fn mapped_field<'a>(idx: &'a Index, field: &str) -> Option<&'a FieldType> {
    if let Some(ft) = idx.fields.get(field) {
        return Some(ft);
    }
    let (parent, sub) = field.rsplit_once('.')?;
    match idx.fields.get(parent) {
        Some(FieldType::Text { fields }) => fields.get(sub),
        _ => None,
    }
}

/// The values a query on `field` sees in `doc`: its `_source` values, a sub-field's those of
/// its parent, none for an object with `"enabled": false` (never indexed).
pub(super) fn searchable_values<'a>(idx: &Index, doc: &'a Value, field: &str) -> Vec<&'a Value> {
    match idx.fields.get(field) {
        Some(FieldType::Disabled) => vec![],
        Some(_) => field_values(doc, field),
        None => match field.rsplit_once('.') {
            Some((parent, sub)) if matches!(idx.fields.get(parent), Some(FieldType::Text { fields }) if fields.contains_key(sub)) => {
                field_values(doc, parent)
            }
            _ => field_values(doc, field),
        },
    }
}

/// Term-level queries on an analysed `text` field match its tokens, which this server does
/// not produce: refused as not implemented rather than answered wrongly.
fn refuse_text(idx: &Index, field: &str, kind: &str) -> Result<(), Failure> {
    if matches!(mapped_field(idx, field), Some(FieldType::Text { .. })) {
        return Err(unsupported(format!(
            "[{kind}] on the text field [{field}] (analysis) is not implemented by the test server"
        )));
    }
    Ok(())
}

pub(super) fn values_equal(a: &Value, b: &Value) -> bool {
    match (number_of(a), number_of(b)) {
        (Some(x), Some(y)) if a.is_number() || b.is_number() => x == y,
        _ => match (a, b) {
            (Value::String(x), Value::String(y)) => x == y,
            (Value::Bool(x), Value::Bool(y)) => x == y,
            (Value::Bool(x), Value::String(y)) | (Value::String(y), Value::Bool(x)) => {
                &x.to_string() == y
            }
            _ => false,
        },
    }
}

/// The term a keyword field indexes for a `_source` value (numbers and booleans as their
/// text).
fn keyword_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

pub(super) fn single_field<'a>(
    q: &'a Value,
    kind: &str,
) -> Result<(&'a String, &'a Value), Failure> {
    let obj = q.as_object().ok_or_else(|| {
        fail(
            400,
            "parsing_exception",
            format!("[{kind}] query malformed"),
        )
    })?;
    let mut fields = obj
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "boost" | "_name"));
    let first = fields.next().ok_or_else(|| {
        fail(
            400,
            "parsing_exception",
            format!("[{kind}] query has no field"),
        )
    })?;
    if fields.next().is_some() {
        return Err(fail(
            400,
            "parsing_exception",
            format!("[{kind}] query doesn't support multiple fields"),
        ));
    }
    Ok(first)
}

pub(super) fn boost_of(q: &Value) -> f64 {
    q.get("boost").and_then(Value::as_f64).unwrap_or(1.0)
}

/// Documents matching `query` with their scores.
/// What a query evaluation needs beyond the documents: the index name, the server's version,
/// and where k-NN searches are recorded.
pub(super) struct QueryCtx<'a> {
    pub(super) index: &'a str,
    pub(super) version: (u32, u32),
    pub(super) knn: &'a mut Vec<KnnSearch>,
}

pub(super) fn eval(
    idx: &Index,
    docs: &BTreeMap<String, Arc<Doc>>,
    ctx: &mut QueryCtx<'_>,
    query: &Value,
) -> Result<Scored, Failure> {
    let obj = query.as_object().ok_or_else(|| {
        fail(
            400,
            "parsing_exception",
            "query malformed, must start with start_object",
        )
    })?;
    if obj.len() != 1 {
        return Err(fail(
            400,
            "parsing_exception",
            "[_na] query malformed, no start_object after query name",
        ));
    }
    let (kind, body) = obj.iter().next().unwrap();
    let all = || docs.iter();
    let mut out = Vec::new();
    match kind.as_str() {
        "match_all" => {
            let b = boost_of(body);
            out.extend(all().map(|(id, _)| (id.clone(), b)));
        }
        "term" => {
            let (field, v) = single_field(body, "term")?;
            let (value, b) = match v {
                Value::Object(o) => (
                    o.get("value")
                        .ok_or_else(|| unsupported("term query without value"))?,
                    v.get("boost").and_then(Value::as_f64).unwrap_or(1.0),
                ),
                other => (other, 1.0),
            };
            if let Value::Object(o) = v
                && let Some(k) = o.keys().find(|k| !matches!(k.as_str(), "value" | "boost"))
            {
                return Err(unsupported(format!(
                    "term parameter {k} is not implemented"
                )));
            }
            refuse_text(idx, field, "term")?;
            for (id, d) in all() {
                if searchable_values(idx, &d.source, field)
                    .iter()
                    .any(|x| values_equal(x, value))
                {
                    out.push((id.clone(), b));
                }
            }
        }
        "terms" => {
            let (field, v) = single_field(body, "terms")?;
            let wanted = v
                .as_array()
                .ok_or_else(|| unsupported("terms lookup is not implemented"))?;
            let b = boost_of(body);
            refuse_text(idx, field, "terms")?;
            for (id, d) in all() {
                if searchable_values(idx, &d.source, field)
                    .iter()
                    .any(|x| wanted.iter().any(|w| values_equal(x, w)))
                {
                    out.push((id.clone(), b));
                }
            }
        }
        "range" => {
            let (field, v) = single_field(body, "range")?;
            let ro = v
                .as_object()
                .ok_or_else(|| fail(400, "parsing_exception", "[range] query malformed"))?;
            refuse_text(idx, field, "range")?;
            let keyword = matches!(mapped_field(idx, field), Some(FieldType::Keyword));
            if !keyword
                && !matches!(
                    mapped_field(idx, field),
                    Some(FieldType::Date | FieldType::Float | FieldType::Integer { .. })
                )
            {
                return Err(unsupported(format!(
                    "range on field {field} of this type is not implemented"
                )));
            }
            let mut bounds = Vec::new();
            let mut text_bounds = Vec::new();
            for (k, bound) in ro {
                match k.as_str() {
                    "gt" | "gte" | "lt" | "lte" if keyword => {
                        // Lucene compares keyword terms byte by byte (UTF-8); a number bound is
                        // its text.
                        let text = match bound {
                            Value::String(s) => s.clone(),
                            Value::Number(n) => n.to_string(),
                            Value::Bool(b) => b.to_string(),
                            other => {
                                return Err(fail(
                                    400,
                                    "parsing_exception",
                                    format!("[range] query does not support [{k}] = {other}"),
                                ));
                            }
                        };
                        text_bounds.push((k.clone(), text));
                    }
                    "gt" | "gte" | "lt" | "lte" => {
                        let x = number_of(bound).ok_or_else(|| {
                            unsupported(format!(
                                "range bound {bound} (date math) is not implemented"
                            ))
                        })?;
                        bounds.push((k.clone(), x));
                    }
                    "format" if bound == "epoch_millis" && !keyword => {}
                    "boost" => {}
                    other => {
                        return Err(unsupported(format!(
                            "range parameter {other} is not implemented"
                        )));
                    }
                }
            }
            let b = boost_of(v);
            for (id, d) in all() {
                let values = searchable_values(idx, &d.source, field);
                let ok = if keyword {
                    values.iter().filter_map(|x| keyword_text(x)).any(|x| {
                        text_bounds.iter().all(|(op, y)| {
                            let o = x.as_bytes().cmp(y.as_bytes());
                            match op.as_str() {
                                "gt" => o.is_gt(),
                                "gte" => o.is_ge(),
                                "lt" => o.is_lt(),
                                _ => o.is_le(),
                            }
                        })
                    })
                } else {
                    values.iter().filter_map(|x| number_of(x)).any(|x| {
                        bounds.iter().all(|(op, y)| match op.as_str() {
                            "gt" => x > *y,
                            "gte" => x >= *y,
                            "lt" => x < *y,
                            _ => x <= *y,
                        })
                    })
                };
                if ok {
                    out.push((id.clone(), b));
                }
            }
        }
        "exists" => {
            let field = body
                .get("field")
                .and_then(Value::as_str)
                .ok_or_else(|| unsupported("exists without field"))?;
            for (id, d) in all() {
                if !searchable_values(idx, &d.source, field).is_empty() {
                    out.push((id.clone(), 1.0));
                }
            }
        }
        "ids" => {
            let values = body
                .get("values")
                .and_then(Value::as_array)
                .ok_or_else(|| unsupported("ids without values"))?;
            for (id, _) in all() {
                if values.iter().any(|v| v.as_str() == Some(id)) {
                    out.push((id.clone(), 1.0));
                }
            }
        }
        "match" => out = super::text::eval_match(idx, docs, ctx.version, body)?,
        "bool" => out = eval_bool(idx, docs, ctx, body)?,
        "knn" => out = eval_knn(idx, docs, ctx, body)?,
        other => {
            return Err(unsupported(format!(
                "query type [{other}] is not implemented by the test server"
            )));
        }
    }
    Ok(out)
}

pub(super) fn clauses(v: Option<&Value>) -> Vec<&Value> {
    match v {
        None => vec![],
        Some(Value::Array(a)) => a.iter().collect(),
        Some(v) => vec![v],
    }
}

pub(super) fn eval_bool(
    idx: &Index,
    docs: &BTreeMap<String, Arc<Doc>>,
    ctx: &mut QueryCtx<'_>,
    body: &Value,
) -> Result<Scored, Failure> {
    if let Some(k) = body.as_object().and_then(|o| {
        o.keys().find(|k| {
            !matches!(
                k.as_str(),
                "must" | "filter" | "should" | "must_not" | "boost" | "minimum_should_match"
            )
        })
    }) {
        return Err(unsupported(format!(
            "bool parameter {k} is not implemented"
        )));
    }
    let must = clauses(body.get("must"));
    let filter = clauses(body.get("filter"));
    let should = clauses(body.get("should"));
    let must_not = clauses(body.get("must_not"));
    let mut scores: HashMap<String, f64> = docs.keys().map(|k| (k.clone(), 0.0)).collect();
    let mut keep: Option<std::collections::HashSet<String>> = None;
    let mut intersect = |set: std::collections::HashSet<String>| {
        keep = Some(match keep.take() {
            None => set,
            Some(k) => k.intersection(&set).cloned().collect(),
        });
    };
    for q in &must {
        let r = eval(idx, docs, ctx, q)?;
        for (id, s) in &r {
            *scores.get_mut(id).unwrap() += s;
        }
        intersect(r.into_iter().map(|(id, _)| id).collect());
    }
    for q in &filter {
        intersect(
            eval(idx, docs, ctx, q)?
                .into_iter()
                .map(|(id, _)| id)
                .collect(),
        );
    }
    let mut should_hits: HashMap<String, usize> = HashMap::new();
    for q in &should {
        for (id, s) in eval(idx, docs, ctx, q)? {
            *scores.get_mut(&id).unwrap() += s;
            *should_hits.entry(id).or_default() += 1;
        }
    }
    let min_should = match body.get("minimum_should_match") {
        Some(v) => v
            .as_u64()
            .map(|n| n as usize)
            .ok_or_else(|| unsupported("minimum_should_match other than an integer"))?,
        None if must.is_empty() && filter.is_empty() && !should.is_empty() => 1,
        None => 0,
    };
    let mut excluded = std::collections::HashSet::new();
    for q in &must_not {
        excluded.extend(eval(idx, docs, ctx, q)?.into_iter().map(|(id, _)| id));
    }
    let boost = boost_of(body);
    let mut out = Vec::new();
    for id in docs.keys() {
        if keep.as_ref().is_some_and(|k| !k.contains(id)) || excluded.contains(id) {
            continue;
        }
        if should_hits.get(id).copied().unwrap_or(0) < min_should {
            continue;
        }
        out.push((id.clone(), scores[id] * boost));
    }
    Ok(out)
}

pub(super) fn score_of(space: Space, q: &[f64], nq: f64, v: &[f32], nv: f64) -> f64 {
    let mut dot = 0.0;
    for i in 0..q.len().min(v.len()) {
        dot += q[i] * f64::from(v[i]);
    }
    match space {
        Space::CosineSimil => {
            let cos = dot / (nq * nv);
            // Documented: d = 1 - cos, score = (2 - d) / 2 = (1 + cos) / 2.
            (2.0 - (1.0 - cos)) / 2.0
        }
        Space::InnerProduct => {
            // Documented for faiss: d = -dot; d >= 0 -> 1 / (1 + d), else -d + 1.
            let d = -dot;
            if d >= 0.0 { 1.0 / (1.0 + d) } else { -d + 1.0 }
        }
        Space::L2 => {
            let d: f64 = q
                .iter()
                .zip(v)
                .map(|(a, b)| (a - f64::from(*b)) * (a - f64::from(*b)))
                .sum();
            1.0 / (1.0 + d)
        }
    }
}

pub(super) fn eval_knn(
    idx: &Index,
    docs: &BTreeMap<String, Arc<Doc>>,
    ctx: &mut QueryCtx<'_>,
    body: &Value,
) -> Result<Scored, Failure> {
    let (field, params) = single_field(body, "knn")?;
    let p = params
        .as_object()
        .ok_or_else(|| fail(400, "parsing_exception", "[knn] malformed"))?;
    for k in p.keys() {
        match k.as_str() {
            "vector" | "k" | "filter" | "boost" => {}
            "method_parameters" => {
                if ctx.version < (2, 16) {
                    // Introduced in 2.16: older versions do not know the key.
                    return Err(fail(
                        400,
                        "parsing_exception",
                        "[knn] unknown token [START_OBJECT] after [method_parameters]",
                    ));
                }
                let mp = p[k].as_object().ok_or_else(|| {
                    fail(
                        400,
                        "parsing_exception",
                        "method_parameters must be an object",
                    )
                })?;
                for (name, v) in mp {
                    if name != "ef_search" || v.as_u64().is_none_or(|x| x < 1) {
                        return Err(unsupported(format!(
                            "method_parameters.{name}={v} is not implemented"
                        )));
                    }
                }
            }
            other => {
                return Err(unsupported(format!(
                    "knn parameter {other} is not implemented by the test server"
                )));
            }
        }
    }
    let Some(FieldType::Knn {
        dim,
        space,
        engine,
        ef_search: mapping_ef,
    }) = idx.fields.get(field.as_str())
    else {
        return Err(fail(
            400,
            "query_shard_exception",
            format!("Field '{field}' is not knn_vector type."),
        ));
    };
    let vector: Vec<f64> = p
        .get("vector")
        .and_then(Value::as_array)
        .ok_or_else(|| fail(400, "parsing_exception", "[knn] requires vector"))?
        .iter()
        .map(|x| {
            x.as_f64()
                .ok_or_else(|| fail(400, "parsing_exception", "[knn] vector must hold numbers"))
        })
        .collect::<Result<_, _>>()?;
    if vector.len() != *dim {
        return Err(fail(
            400,
            "illegal_argument_exception",
            format!(
                "Query vector has invalid dimension: {}. Dimension should be: {dim}",
                vector.len()
            ),
        ));
    }
    if *space == Space::CosineSimil && vector.iter().all(|x| *x == 0.0) {
        return Err(fail(
            400,
            "illegal_argument_exception",
            "zero vector is not supported when space type is [cosinesimil]",
        ));
    }
    let k = p
        .get("k")
        .and_then(Value::as_u64)
        .ok_or_else(|| fail(400, "parsing_exception", "[knn] requires k"))? as usize;
    if k == 0 || k > 10_000 {
        return Err(fail(
            400,
            "illegal_argument_exception",
            format!("[knn] requires 0 < k <= 10000, got {k}"),
        ));
    }
    // The ef the engine searches with, as the k-NN documentation describes it: a query's
    // `method_parameters.ef_search` first; faiss then reads its mapping's method parameter
    // (default 100) and never the index setting `index.knn.algo_param.ef_search`; lucene
    // searches with k.
    let query_ef = p
        .get("method_parameters")
        .and_then(|m| m.get("ef_search"))
        .and_then(Value::as_u64);
    let (ef_search, ef_from) = match (query_ef, engine.as_str(), mapping_ef) {
        (Some(ef), _, _) => (ef, "query"),
        (None, "faiss", Some(ef)) => (*ef, "mapping"),
        (None, "faiss", None) => (100, "default"),
        _ => (k as u64, "k"),
    };
    ctx.knn.push(KnnSearch {
        index: ctx.index.to_string(),
        field: field.clone(),
        engine: engine.clone(),
        k: k as u64,
        ef_search,
        ef_from,
    });
    let allowed: Option<std::collections::HashSet<String>> = match p.get("filter") {
        Some(f) => Some(
            eval(idx, docs, ctx, f)?
                .into_iter()
                .map(|(id, _)| id)
                .collect(),
        ),
        None => None,
    };
    let boost = boost_of(params);
    let nq = vector.iter().map(|x| x * x).sum::<f64>().sqrt();
    let mut scored: Vec<(u64, String, f64)> = Vec::new();
    for (id, d) in docs {
        if allowed.as_ref().is_some_and(|a| !a.contains(id)) {
            continue;
        }
        let Some((v, nv)) = d.vectors.get(field.as_str()) else {
            continue;
        };
        // Scores are single-precision floats in OpenSearch.
        let s = score_of(*space, &vector, nq, v, *nv) as f32;
        scored.push((d.order, id.clone(), f64::from(s) * boost));
    }
    scored.sort_by(|a, b| b.2.total_cmp(&a.2).then(a.0.cmp(&b.0)));
    scored.truncate(k);
    Ok(scored.into_iter().map(|(_, id, s)| (id, s)).collect())
}
