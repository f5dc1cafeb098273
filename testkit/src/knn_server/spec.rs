//! Validation of request bodies and query parameters against the OpenSearch project's OpenAPI
//! description (`shared/reference/opensearch-api-specification/spec/`).
//!
//! A small JSON Schema interpreter for the keywords that description uses: `$ref` (across
//! files), `type` (incl. `null`), `enum`, `const`, `allOf`, `anyOf`, `oneOf` (exactly one, not
//! counting a branch that lists its properties, leaves `additionalProperties` unsaid and would
//! take an object with other keys only by that omission; at least one where the schema names a
//! `discriminator`, or for query strings, whose values are
//! untyped text), `not`, `properties`, `additionalProperties`, `required`, `min/maxProperties`,
//! `propertyNames`, `items`, `min/maxItems`, `min/maxLength`, `minimum`/`maximum`. `format`,
//! `pattern` and `x-*` extensions are not checked.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde_json::Value;

/// The loaded specification (files are read on first use and cached).
pub struct Spec {
    root: PathBuf,
    files: Mutex<HashMap<PathBuf, Arc<Value>>>,
    resolved: Mutex<HashMap<(PathBuf, String), Arc<Value>>>,
}

/// Where a schema lives: its file and JSON pointer.
#[derive(Clone, Debug)]
struct Loc {
    file: PathBuf,
}

impl Spec {
    /// The specification under `root` (the `spec/` directory), if it is there.
    pub fn load(root: &Path) -> Option<Spec> {
        root.join("namespaces/_core.yaml").is_file().then(|| Spec {
            root: root.to_path_buf(),
            files: Mutex::new(HashMap::new()),
            resolved: Mutex::new(HashMap::new()),
        })
    }

    fn file(&self, path: &Path) -> Arc<Value> {
        let path = normalize(path);
        if let Some(v) = self.files.lock().unwrap().get(&path) {
            return v.clone();
        }
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read spec file {}: {e}", path.display()));
        let value: Value = serde_yaml::from_str(&text)
            .unwrap_or_else(|e| panic!("spec file {} does not parse: {e}", path.display()));
        let value = Arc::new(value);
        self.files.lock().unwrap().insert(path, value.clone());
        value
    }

    /// Resolves `reference` (`#/a/b`, `other.yaml#/a/b`, `../schemas/x.yaml#/a`) from `base`.
    fn resolve(&self, base: &Loc, reference: &str) -> (Loc, Arc<Value>) {
        let (file_part, pointer) = reference.split_once('#').unwrap_or((reference, ""));
        let file = if file_part.is_empty() {
            base.file.clone()
        } else {
            normalize(&base.file.parent().unwrap().join(file_part))
        };
        let key = (file.clone(), pointer.to_string());
        if let Some(v) = self.resolved.lock().unwrap().get(&key) {
            return (Loc { file }, v.clone());
        }
        let doc = self.file(&file);
        let target = Arc::new(
            doc.pointer(pointer)
                .unwrap_or_else(|| {
                    panic!(
                        "spec $ref {reference} (from {}) not found",
                        base.file.display()
                    )
                })
                .clone(),
        );
        self.resolved.lock().unwrap().insert(key, target.clone());
        (Loc { file }, target)
    }

    /// Whether `schema` (through `$ref`s) lists `properties`, leaves `additionalProperties`
    /// unsaid, and `inst` is an object with a key it does not list.
    fn names_other_properties(&self, loc: &Loc, schema: &Value, inst: &Value) -> bool {
        let Some(obj) = inst.as_object() else {
            return false;
        };
        let open_without = |schema: &Value| {
            schema
                .get("properties")
                .and_then(Value::as_object)
                .is_some_and(|props| {
                    schema.get("additionalProperties").is_none()
                        && schema.get("patternProperties").is_none()
                        && obj.keys().any(|k| !props.contains_key(k))
                })
        };
        let Some(first) = schema.get("$ref").and_then(Value::as_str) else {
            return open_without(schema);
        };
        let (mut loc, mut resolved) = self.resolve(loc, first);
        for _ in 0..8 {
            let Some(r) = resolved
                .get("$ref")
                .and_then(Value::as_str)
                .map(str::to_string)
            else {
                break;
            };
            let (l, s) = self.resolve(&loc, &r);
            loc = l;
            resolved = s;
        }
        open_without(&resolved)
    }

    /// Validates `instance` against the schema at `pointer` in `file` (relative to the spec
    /// root). Returns the problems found (empty: valid).
    pub fn validate(&self, file: &str, pointer: &str, instance: &Value) -> Vec<String> {
        let loc = Loc {
            file: normalize(&self.root.join(file)),
        };
        let (loc, schema) = self.resolve(&loc, &format!("#{pointer}"));
        let mut errors = Vec::new();
        self.check(&loc, &schema, instance, "", false, &mut errors);
        errors
    }

    /// The query parameters an operation group (`bulk`, `search`, `indices.create`, ...)
    /// accepts, from `namespace_file`'s `components/parameters` plus the global parameters:
    /// name -> (location, schema).
    fn query_params(&self, namespace_file: &str, group: &str) -> Vec<(String, Loc, Value)> {
        let mut out = Vec::new();
        let ns = Loc {
            file: normalize(&self.root.join(namespace_file)),
        };
        let doc = self.file(&ns.file);
        let prefix = format!("{group}::query.");
        if let Some(params) = doc
            .pointer("/components/parameters")
            .and_then(Value::as_object)
        {
            for (key, p) in params {
                if key.starts_with(&prefix) && p.get("in").and_then(Value::as_str) == Some("query")
                {
                    let name = p["name"].as_str().unwrap_or_default().to_string();
                    out.push((
                        name,
                        ns.clone(),
                        p.get("schema").cloned().unwrap_or(Value::Bool(true)),
                    ));
                }
            }
        }
        let global = Loc {
            file: normalize(&self.root.join("_global_parameters.yaml")),
        };
        let gdoc = self.file(&global.file);
        if let Some(params) = gdoc
            .pointer("/components/parameters")
            .and_then(Value::as_object)
        {
            for p in params.values() {
                if p.get("in").and_then(Value::as_str) == Some("query") {
                    let name = p["name"].as_str().unwrap_or_default().to_string();
                    out.push((
                        name,
                        global.clone(),
                        p.get("schema").cloned().unwrap_or(Value::Bool(true)),
                    ));
                }
            }
        }
        out
    }

    /// Checks query parameters of an operation group: unknown names and values that do not
    /// fit their schema are problems.
    pub fn validate_query(
        &self,
        namespace_file: &str,
        group: &str,
        params: &[(String, String)],
    ) -> Vec<String> {
        let known = self.query_params(namespace_file, group);
        let mut errors = Vec::new();
        for (name, value) in params {
            match known.iter().find(|(n, _, _)| n == name) {
                None => errors.push(format!(
                    "query parameter {name:?} is not defined for {group} in the specification"
                )),
                Some((_, loc, schema)) => {
                    let mut errs = Vec::new();
                    self.check(
                        loc,
                        schema,
                        &Value::String(value.clone()),
                        "",
                        true,
                        &mut errs,
                    );
                    if !errs.is_empty() {
                        errors.push(format!(
                            "query parameter {name}={value:?} does not fit its schema: {}",
                            errs.join("; ")
                        ));
                    }
                }
            }
        }
        errors
    }

    fn check(
        &self,
        loc: &Loc,
        schema: &Value,
        inst: &Value,
        path: &str,
        query_mode: bool,
        errors: &mut Vec<String>,
    ) {
        let here = if path.is_empty() { "/" } else { path };
        let schema = match schema {
            Value::Bool(true) => return,
            Value::Bool(false) => {
                errors.push(format!("{here}: no value is allowed here"));
                return;
            }
            Value::Object(map) => map,
            _ => return,
        };
        if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
            let (l, s) = self.resolve(loc, r);
            self.check(&l, &s, inst, path, query_mode, errors);
        }
        if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
            for s in all {
                self.check(loc, s, inst, path, query_mode, errors);
            }
        }
        if let Some(any) = schema.get("anyOf").and_then(Value::as_array) {
            let mut branch_errors = Vec::new();
            let ok = any.iter().any(|s| {
                let mut e = Vec::new();
                self.check(loc, s, inst, path, query_mode, &mut e);
                let ok = e.is_empty();
                branch_errors.push(e.join(", "));
                ok
            });
            if !ok {
                errors.push(format!(
                    "{here}: matches none of anyOf [{}]",
                    branch_errors.join(" | ")
                ));
            }
        }
        if let Some(one) = schema.get("oneOf").and_then(Value::as_array) {
            let mut branch_errors = Vec::new();
            let matching: Vec<&Value> = one
                .iter()
                .filter(|s| {
                    let mut e = Vec::new();
                    self.check(loc, s, inst, path, query_mode, &mut e);
                    let ok = e.is_empty();
                    if !ok {
                        branch_errors.push(e.join(", "));
                    }
                    ok
                })
                .collect();
            // The description leaves some object branches open by omission (`SortOptions`
            // lists `_score`, `_geo_distance`, `_script` but no `additionalProperties`, so
            // `{"field": "asc"}` would match it and `FieldWithDirection` both, and
            // `{"field": "sideways"}` would match it alone): in a oneOf, a branch that names
            // its properties does not claim an object with other keys.
            let matches = matching
                .iter()
                .filter(|s| !self.names_other_properties(loc, s, inst))
                .count();
            if matches == 0 && !matching.is_empty() {
                branch_errors.push(format!(
                    "{here}: only branches that do not list its keys would take it"
                ));
            }
            let lenient = query_mode || schema.contains_key("discriminator");
            if matches == 0 {
                let mut shown = branch_errors.clone();
                shown.truncate(6);
                errors.push(format!(
                    "{here}: matches none of oneOf [{}]",
                    shown.join(" | ")
                ));
            } else if matches > 1 && !lenient {
                errors.push(format!(
                    "{here}: matches {matches} branches of oneOf, not exactly one"
                ));
            }
        }
        if let Some(not) = schema.get("not") {
            let mut e = Vec::new();
            self.check(loc, not, inst, path, query_mode, &mut e);
            if e.is_empty() {
                errors.push(format!("{here}: matches a schema it must not"));
            }
        }
        if let Some(t) = schema.get("type") {
            let types: Vec<&str> = match t {
                Value::String(s) => vec![s.as_str()],
                Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
                _ => vec![],
            };
            if !types.is_empty() && !types.iter().any(|t| type_matches(t, inst, query_mode)) {
                errors.push(format!(
                    "{here}: expected {}, got {}",
                    types.join(" or "),
                    describe(inst)
                ));
                return;
            }
        }
        if let Some(e) = schema.get("enum").and_then(Value::as_array)
            && !e.iter().any(|v| same_value(v, inst, query_mode))
        {
            errors.push(format!(
                "{here}: {inst} is not one of {}",
                Value::Array(e.clone())
            ));
        }
        if let Some(c) = schema.get("const")
            && !same_value(c, inst, query_mode)
        {
            errors.push(format!("{here}: {inst} is not {c}"));
        }
        if let Value::Object(obj) = inst {
            let props = schema.get("properties").and_then(Value::as_object);
            if let Some(req) = schema.get("required").and_then(Value::as_array) {
                for r in req.iter().filter_map(Value::as_str) {
                    if !obj.contains_key(r) {
                        errors.push(format!("{here}: required property {r:?} is missing"));
                    }
                }
            }
            if let Some(n) = schema.get("minProperties").and_then(Value::as_u64)
                && (obj.len() as u64) < n
            {
                errors.push(format!("{here}: needs at least {n} properties"));
            }
            if let Some(n) = schema.get("maxProperties").and_then(Value::as_u64)
                && (obj.len() as u64) > n
            {
                errors.push(format!(
                    "{here}: takes at most {n} properties, got {}",
                    obj.len()
                ));
            }
            for (k, v) in obj {
                let child = format!("{path}/{k}");
                if let Some(names) = schema.get("propertyNames") {
                    let mut e = Vec::new();
                    self.check(
                        loc,
                        names,
                        &Value::String(k.clone()),
                        &child,
                        query_mode,
                        &mut e,
                    );
                    errors.extend(e);
                }
                if let Some(p) = props.and_then(|p| p.get(k)) {
                    self.check(loc, p, v, &child, query_mode, errors);
                } else if let Some(ap) = schema.get("additionalProperties") {
                    self.check(loc, ap, v, &child, query_mode, errors);
                }
            }
        }
        if let Value::Array(items) = inst {
            if let Some(s) = schema.get("items") {
                for (i, v) in items.iter().enumerate() {
                    self.check(loc, s, v, &format!("{path}/{i}"), query_mode, errors);
                }
            }
            if let Some(n) = schema.get("minItems").and_then(Value::as_u64)
                && (items.len() as u64) < n
            {
                errors.push(format!("{here}: needs at least {n} items"));
            }
            if let Some(n) = schema.get("maxItems").and_then(Value::as_u64)
                && (items.len() as u64) > n
            {
                errors.push(format!("{here}: takes at most {n} items"));
            }
        }
        if let Value::String(s) = inst {
            let len = s.chars().count() as u64;
            if let Some(n) = schema.get("minLength").and_then(Value::as_u64)
                && len < n
            {
                errors.push(format!("{here}: shorter than {n}"));
            }
            if let Some(n) = schema.get("maxLength").and_then(Value::as_u64)
                && len > n
            {
                errors.push(format!("{here}: longer than {n}"));
            }
        }
        if let Some(x) = as_number(inst, query_mode) {
            if let Some(min) = schema.get("minimum").and_then(Value::as_f64)
                && x < min
            {
                errors.push(format!("{here}: {x} is below the minimum {min}"));
            }
            if let Some(max) = schema.get("maximum").and_then(Value::as_f64)
                && x > max
            {
                errors.push(format!("{here}: {x} is above the maximum {max}"));
            }
        }
    }
}

fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

fn as_number(v: &Value, query_mode: bool) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) if query_mode => s.parse().ok(),
        _ => None,
    }
}

fn type_matches(t: &str, v: &Value, query_mode: bool) -> bool {
    match (t, v) {
        ("object", Value::Object(_))
        | ("array", Value::Array(_))
        | ("string", Value::String(_))
        | ("boolean", Value::Bool(_))
        | ("null", Value::Null)
        | ("number", Value::Number(_)) => true,
        ("integer", Value::Number(n)) => {
            n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.fract() == 0.0)
        }
        // Query strings are text: a typed parameter arrives as its textual form.
        ("boolean", Value::String(s)) if query_mode => s == "true" || s == "false" || s.is_empty(),
        ("integer", Value::String(s)) if query_mode => s.parse::<i64>().is_ok(),
        ("number", Value::String(s)) if query_mode => s.parse::<f64>().is_ok(),
        ("array", Value::String(_)) if query_mode => true,
        _ => false,
    }
}

fn same_value(schema_value: &Value, v: &Value, query_mode: bool) -> bool {
    if schema_value == v {
        return true;
    }
    if query_mode && let Value::String(s) = v {
        return match schema_value {
            Value::Bool(b) => s == &b.to_string(),
            Value::Number(n) => s == &n.to_string(),
            _ => false,
        };
    }
    false
}

fn describe(v: &Value) -> String {
    let text = v.to_string();
    let short: String = text.chars().take(60).collect();
    let kind = match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    format!("{kind} {short}")
}
