//! Validation against the AWS API model of Bedrock Runtime (`service-2.json`, the botocore
//! file in `shared/reference/aws-bedrock-runtime-model/`).
//!
//! A small interpreter of the Smithy/botocore shape language for what a request carries:
//! `structure` (members, `required`, members bound to the URI or headers kept out of the body),
//! `union` (exactly one member), `document` (any JSON), `string` (`min`/`max` length,
//! `pattern`, `enum`), `list` (`min`/`max`), `map`, `integer`/`long` (`min`/`max`), `boolean`,
//! `timestamp`, `blob`. Error shapes give each error's HTTP status, operations their error
//! lists. Smithy patterns are not anchored: a value matches when the pattern matches part of it.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use regex::Regex;
use serde_json::Value;

/// The loaded model.
pub struct ApiModel {
    root: Value,
    patterns: Mutex<HashMap<String, Option<Regex>>>,
}

/// Where `service-2.json` is: `CROSSMODAL_BEDROCK_API_MODEL`, else
/// `shared/reference/aws-bedrock-runtime-model/service-2.json` in the first ancestor of this
/// crate that has it.
pub fn model_path() -> PathBuf {
    if let Ok(p) = std::env::var("CROSSMODAL_BEDROCK_API_MODEL") {
        return PathBuf::from(p);
    }
    let rel = "shared/reference/aws-bedrock-runtime-model/service-2.json";
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest
        .ancestors()
        .skip(1)
        .map(|dir| dir.join(rel))
        .find(|p| p.is_file())
        .unwrap_or_else(|| manifest.join("../..").join(rel))
}

static MODEL: OnceLock<Option<Arc<ApiModel>>> = OnceLock::new();

/// The model, loaded once; `None` (with a note) when the file is absent outside CI, a panic
/// under `CI=true`.
pub fn load() -> Option<Arc<ApiModel>> {
    MODEL
        .get_or_init(|| {
            let path = model_path();
            match std::fs::read_to_string(&path) {
                Ok(text) => {
                    let root: Value = serde_json::from_str(&text)
                        .unwrap_or_else(|e| panic!("{} does not parse: {e}", path.display()));
                    Some(Arc::new(ApiModel {
                        root,
                        patterns: Mutex::new(HashMap::new()),
                    }))
                }
                Err(_) if crate::skip::under_ci() => panic!(
                    "the Bedrock Runtime API model is not at {} but CI=true: the Bedrock test \
                     server validates requests against it (set CROSSMODAL_BEDROCK_API_MODEL)",
                    path.display()
                ),
                Err(_) => {
                    eprintln!(
                        "NOTE: the Bedrock Runtime API model is not at {}; the Bedrock test \
                         server checks requests with its built-in rules only (set \
                         CROSSMODAL_BEDROCK_API_MODEL)",
                        path.display()
                    );
                    None
                }
            }
        })
        .clone()
}

impl ApiModel {
    fn shape(&self, name: &str) -> Option<&Value> {
        self.root.get("shapes")?.get(name)
    }

    fn operation(&self, op: &str) -> Option<&Value> {
        self.root.get("operations")?.get(op)
    }

    /// The HTTP status of an error shape (`error.httpStatusCode`).
    pub fn error_status(&self, error: &str) -> Option<u16> {
        let shape = self.shape(error)?;
        if !shape
            .get("exception")
            .and_then(Value::as_bool)
            .unwrap_or(false)
        {
            return None;
        }
        shape
            .pointer("/error/httpStatusCode")
            .and_then(Value::as_u64)
            .and_then(|s| u16::try_from(s).ok())
    }

    /// The error shapes an operation lists.
    pub fn operation_errors(&self, op: &str) -> Vec<String> {
        self.operation(op)
            .and_then(|o| o.get("errors"))
            .and_then(Value::as_array)
            .map(|errors| {
                errors
                    .iter()
                    .filter_map(|e| e.get("shape").and_then(Value::as_str))
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The HTTP method and request URI of an operation.
    pub fn http(&self, op: &str) -> Option<(String, String)> {
        let http = self.operation(op)?.get("http")?;
        Some((
            http.get("method")?.as_str()?.to_string(),
            http.get("requestUri")?.as_str()?.to_string(),
        ))
    }

    fn input_shape(&self, op: &str) -> Result<&Value, String> {
        let name = self
            .operation(op)
            .and_then(|o| o.pointer("/input/shape"))
            .and_then(Value::as_str)
            .ok_or_else(|| format!("service-2.json has no input shape for {op}"))?;
        self.shape(name)
            .ok_or_else(|| format!("service-2.json has no shape {name}"))
    }

    /// Checks the JSON body of `op` (the input members without a `location`).
    pub fn check_body(&self, op: &str, body: &Value) -> Result<(), String> {
        let input = self.input_shape(op)?;
        let members = input
            .get("members")
            .and_then(Value::as_object)
            .ok_or_else(|| format!("{op} input has no members"))?;
        let map = body
            .as_object()
            .ok_or_else(|| format!("the {op} body is not a JSON object"))?;
        for key in map.keys() {
            match members.get(key) {
                None => return Err(format!("{op}: unexpected member {key:?}")),
                Some(m) if m.get("location").is_some() => {
                    return Err(format!(
                        "{op}: member {key:?} travels in the {}, not the body",
                        m["location"].as_str().unwrap_or("request")
                    ));
                }
                Some(_) => {}
            }
        }
        for (name, member) in members {
            if member.get("location").is_some() {
                continue;
            }
            let required = input
                .get("required")
                .and_then(Value::as_array)
                .is_some_and(|r| r.iter().any(|x| x == name));
            match map.get(name) {
                None if required => {
                    return Err(format!("{op}: required member {name:?} is missing"));
                }
                None => {}
                Some(v) => self.check_member(member, v, &format!("{op}.{name}"))?,
            }
        }
        Ok(())
    }

    /// Checks a member bound to the URI or a header (a string value) of `op`.
    pub fn check_bound(&self, op: &str, member: &str, value: Option<&str>) -> Result<(), String> {
        let input = self.input_shape(op)?;
        let m = input
            .pointer(&format!("/members/{member}"))
            .ok_or_else(|| format!("{op} has no member {member}"))?;
        let required = input
            .get("required")
            .and_then(Value::as_array)
            .is_some_and(|r| r.iter().any(|x| x == member));
        match value {
            None if required => Err(format!("{op}: required member {member:?} is missing")),
            None => Ok(()),
            Some(v) => {
                self.check_member(m, &Value::String(v.to_string()), &format!("{op}.{member}"))
            }
        }
    }

    /// The maximum length of a blob or string member of `op`'s input.
    pub fn max_len(&self, op: &str, member: &str) -> Option<u64> {
        let name = self
            .input_shape(op)
            .ok()?
            .pointer(&format!("/members/{member}/shape"))?
            .as_str()?;
        self.shape(name)?.get("max")?.as_u64()
    }

    fn check_member(&self, member: &Value, v: &Value, path: &str) -> Result<(), String> {
        let name = member
            .get("shape")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("{path}: member without a shape"))?;
        self.check_shape(name, v, path)
    }

    fn check_shape(&self, name: &str, v: &Value, path: &str) -> Result<(), String> {
        let shape = self
            .shape(name)
            .ok_or_else(|| format!("service-2.json has no shape {name}"))?;
        if shape.get("document").and_then(Value::as_bool) == Some(true) {
            return Ok(());
        }
        let ty = shape.get("type").and_then(Value::as_str).unwrap_or("");
        let bound = |key: &str| shape.get(key).and_then(Value::as_f64);
        let len_check = |len: usize| -> Result<(), String> {
            if let Some(min) = bound("min")
                && (len as f64) < min
            {
                return Err(format!(
                    "{path}: length {len} is below the minimum {min} ({name})"
                ));
            }
            if let Some(max) = bound("max")
                && (len as f64) > max
            {
                return Err(format!(
                    "{path}: length {len} is above the maximum {max} ({name})"
                ));
            }
            Ok(())
        };
        match ty {
            "structure" | "union" => {
                let obj = v
                    .as_object()
                    .ok_or_else(|| format!("{path}: expected an object ({name}), got {v}"))?;
                let members = shape
                    .get("members")
                    .and_then(Value::as_object)
                    .ok_or_else(|| format!("{name} has no members"))?;
                for key in obj.keys() {
                    if !members.contains_key(key) {
                        return Err(format!("{path}: unexpected member {key:?} ({name})"));
                    }
                }
                if ty == "union" && obj.len() != 1 {
                    return Err(format!(
                        "{path}: a union ({name}) takes exactly one member, got {}",
                        obj.len()
                    ));
                }
                if let Some(required) = shape.get("required").and_then(Value::as_array) {
                    for r in required.iter().filter_map(Value::as_str) {
                        if !obj.contains_key(r) {
                            return Err(format!(
                                "{path}: required member {r:?} is missing ({name})"
                            ));
                        }
                    }
                }
                for (key, value) in obj {
                    if let Some(m) = members.get(key) {
                        self.check_member(m, value, &format!("{path}.{key}"))?;
                    }
                }
                Ok(())
            }
            "string" => {
                let s = v
                    .as_str()
                    .ok_or_else(|| format!("{path}: expected a string ({name}), got {v}"))?;
                len_check(s.chars().count())?;
                if let Some(values) = shape.get("enum").and_then(Value::as_array)
                    && !values.iter().any(|x| x.as_str() == Some(s))
                {
                    return Err(format!("{path}: {s:?} is not a value of {name}"));
                }
                if let Some(pattern) = shape.get("pattern").and_then(Value::as_str)
                    && let Some(re) = self.pattern(pattern)
                    && !re.is_match(s)
                {
                    return Err(format!(
                        "{path}: {s:?} does not match the pattern of {name} ({pattern})"
                    ));
                }
                Ok(())
            }
            "list" => {
                let items = v
                    .as_array()
                    .ok_or_else(|| format!("{path}: expected a list ({name}), got {v}"))?;
                len_check(items.len())?;
                let member = shape
                    .get("member")
                    .ok_or_else(|| format!("{name} has no member shape"))?;
                for (i, item) in items.iter().enumerate() {
                    self.check_member(member, item, &format!("{path}[{i}]"))?;
                }
                Ok(())
            }
            "map" => {
                let obj = v
                    .as_object()
                    .ok_or_else(|| format!("{path}: expected a map ({name}), got {v}"))?;
                len_check(obj.len())?;
                for (k, value) in obj {
                    if let Some(key) = shape.get("key") {
                        self.check_member(key, &Value::String(k.clone()), &format!("{path} key"))?;
                    }
                    if let Some(val) = shape.get("value") {
                        self.check_member(val, value, &format!("{path}.{k}"))?;
                    }
                }
                Ok(())
            }
            "integer" | "long" => {
                let n = v
                    .as_i64()
                    .ok_or_else(|| format!("{path}: expected an integer ({name}), got {v}"))?;
                if bound("min").is_some_and(|min| (n as f64) < min)
                    || bound("max").is_some_and(|max| (n as f64) > max)
                {
                    return Err(format!("{path}: {n} is out of the range of {name}"));
                }
                Ok(())
            }
            "float" | "double" => v
                .as_f64()
                .map(|_| ())
                .ok_or_else(|| format!("{path}: expected a number ({name}), got {v}")),
            "boolean" => v
                .as_bool()
                .map(|_| ())
                .ok_or_else(|| format!("{path}: expected a boolean ({name}), got {v}")),
            "blob" => {
                let s = v
                    .as_str()
                    .ok_or_else(|| format!("{path}: expected base64 text ({name}), got {v}"))?;
                let bytes = aws_smithy_types::base64::decode(s)
                    .map_err(|e| format!("{path}: not base64 ({name}): {e}"))?;
                len_check(bytes.len())
            }
            "timestamp" => {
                if v.is_number() || v.is_string() {
                    Ok(())
                } else {
                    Err(format!("{path}: expected a timestamp ({name}), got {v}"))
                }
            }
            other => Err(format!(
                "{path}: shape type {other:?} of {name} is not handled"
            )),
        }
    }

    /// The compiled pattern (`None` for a pattern the regex crate cannot compile).
    fn pattern(&self, pattern: &str) -> Option<Regex> {
        let mut cache = self.patterns.lock().unwrap();
        cache
            .entry(pattern.to_string())
            .or_insert_with(|| Regex::new(pattern).ok())
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_model_checks_start_async_invoke_bodies() {
        let Some(model) = load() else {
            crate::skip::skip(
                "the_model_checks_start_async_invoke_bodies",
                "service-2.json not found (set CROSSMODAL_BEDROCK_API_MODEL)",
            );
            return;
        };
        let ok = json!({
            "modelId": "twelvelabs.marengo-embed-3-0-v1:0",
            "modelInput": {"inputType": "text", "text": {"inputText": "x"}},
            "outputDataConfig": {"s3OutputDataConfig": {"s3Uri": "s3://my-bucket/out", "bucketOwner": "123456789012"}},
            "clientRequestToken": "abc",
        });
        model.check_body("StartAsyncInvoke", &ok).unwrap();
        let mut bad = ok.clone();
        bad["outputDataConfig"]["s3OutputDataConfig"]["bucketOwner"] = json!("42");
        assert!(
            model
                .check_body("StartAsyncInvoke", &bad)
                .unwrap_err()
                .contains("AccountId")
        );
        let mut bad = ok.clone();
        bad["outputDataConfig"]["s3OutputDataConfig"]["s3Uri"] = json!("https://x/y");
        assert!(model.check_body("StartAsyncInvoke", &bad).is_err());
        let mut bad = ok.clone();
        bad.as_object_mut().unwrap().remove("modelInput");
        assert!(
            model
                .check_body("StartAsyncInvoke", &bad)
                .unwrap_err()
                .contains("required")
        );
        let mut bad = ok.clone();
        bad["extra"] = json!(1);
        assert!(model.check_body("StartAsyncInvoke", &bad).is_err());
        assert_eq!(model.error_status("ModelErrorException"), Some(424));
        assert_eq!(model.error_status("ThrottlingException"), Some(429));
        assert!(
            model
                .operation_errors("GetAsyncInvoke")
                .contains(&"ValidationException".to_string())
        );
        model
            .check_bound(
                "GetAsyncInvoke",
                "invocationArn",
                Some("arn:aws:bedrock:us-east-1:123456789012:async-invoke/abcdefghijkl"),
            )
            .unwrap();
        assert!(
            model
                .check_bound("GetAsyncInvoke", "invocationArn", Some("nope"))
                .is_err()
        );
    }
}
