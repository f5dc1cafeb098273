//! The documented Marengo request schemas (Bedrock user guide pages `model-parameters-marengo`
//! for 2.7 and `model-parameters-marengo-3` for 3.0, as summarised in shared/docs/wire-facts.md
//! with its "Corrections and additions"), checked strictly: unknown keys, wrong types, values out
//! of range, a field of another version or input type all fail.
//!
//! Errors name the JSON pointer of the offending value the way Bedrock's validator does
//! (`#/video/segmentation/fixed/durationSec: expected type: Integer, found: Double`); the server
//! wraps them as `Malformed input request: <error>, please reformat your input and try again.`
//!
//! Marengo 3.0 rules from the audit: `durationSec` and `minDurationSec` are Integer; `dynamic`
//! segmentation is video only; `s3Location.bucketOwner` is required; `text_image` is an
//! `InvokeModel` input. Marengo 2.7: `useFixedLengthSec` must be >= `minClipSec` (default 4).

use serde_json::{Map, Value};

/// Which model version a body is checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Version {
    V27,
    V30,
}

impl Version {
    pub fn dimension(self) -> usize {
        match self {
            Version::V27 => 1024,
            Version::V30 => 512,
        }
    }

    pub fn base_id(self) -> &'static str {
        match self {
            Version::V27 => "twelvelabs.marengo-embed-2-7-v1:0",
            Version::V30 => "twelvelabs.marengo-embed-3-0-v1:0",
        }
    }

    /// The version a model id names and its profile prefix (`us.`, `eu.`, ...; empty for the
    /// base id); the id may be an ARN.
    pub fn of_model_id(id: &str) -> Option<(Version, &'static str)> {
        let tail = id.rsplit('/').next().unwrap_or(id);
        for v in [Version::V27, Version::V30] {
            let base = v.base_id();
            if tail == base {
                return Some((v, ""));
            }
            for p in ["us.", "eu.", "apac.", "global."] {
                if tail.strip_prefix(p) == Some(base) {
                    return Some((v, p));
                }
            }
        }
        None
    }
}

/// Where the media of a request is.
#[derive(Debug, Clone, PartialEq)]
pub enum Src {
    Base64(Vec<u8>),
    S3 { uri: String, owner: Option<String> },
}

/// Requested segmentation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Seg {
    Default,
    Fixed(f64),
    Dynamic(f64),
}

/// A valid request, in the terms the test server needs to answer it.
#[derive(Debug, Clone)]
pub struct Parsed {
    pub input_type: String,
    pub text: Option<String>,
    pub media: Option<Src>,
    /// Options asked for (defaults filled in); empty for text and image.
    pub options: Vec<String>,
    pub seg: Seg,
    pub asset_scope: bool,
    pub truncate: Option<String>,
    /// The processing window's start (`startSec`), seconds.
    pub window_start: Option<f64>,
    /// The processing window's end (3.0 `endSec`, 2.7 `startSec + lengthSec`), seconds.
    pub window_end: Option<f64>,
}

impl Parsed {
    fn new(input_type: &str) -> Parsed {
        Parsed {
            input_type: input_type.to_string(),
            text: None,
            media: None,
            options: Vec::new(),
            seg: Seg::Default,
            asset_scope: false,
            truncate: None,
            window_start: None,
            window_end: None,
        }
    }
}

type R<T> = Result<T, String>;

/// The type name Bedrock's validator reports for a JSON value.
fn found(v: &Value) -> &'static str {
    match v {
        Value::Null => "Null",
        Value::Bool(_) => "Boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "Integer",
        Value::Number(_) => "Double",
        Value::String(_) => "String",
        Value::Array(_) => "JSONArray",
        Value::Object(_) => "JSONObject",
    }
}

fn obj<'a>(v: &'a Value, path: &str) -> R<&'a Map<String, Value>> {
    v.as_object()
        .ok_or_else(|| format!("{path}: expected type: JSONObject, found: {}", found(v)))
}

fn only_keys(m: &Map<String, Value>, allowed: &[&str], path: &str) -> R<()> {
    for k in m.keys() {
        if !allowed.contains(&k.as_str()) {
            return Err(format!("{path}: extraneous key [{k}] is not permitted"));
        }
    }
    Ok(())
}

fn required<'a>(m: &'a Map<String, Value>, key: &str, path: &str) -> R<&'a Value> {
    m.get(key)
        .ok_or_else(|| format!("{path}: required key [{key}] not found"))
}

fn string<'a>(m: &'a Map<String, Value>, key: &str, path: &str) -> R<Option<&'a str>> {
    match m.get(key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(v) => Err(format!(
            "{path}/{key}: expected type: String, found: {}",
            found(v)
        )),
    }
}

fn number(m: &Map<String, Value>, key: &str, path: &str) -> R<Option<f64>> {
    match m.get(key) {
        None => Ok(None),
        Some(Value::Number(n)) => Ok(n.as_f64()),
        Some(v) => Err(format!(
            "{path}/{key}: expected type: Number, found: {}",
            found(v)
        )),
    }
}

/// An Integer member: `6` passes, `6.0` and `2.5` do not (JSON text with a decimal point or an
/// exponent is a Double to Bedrock's validator).
fn integer(m: &Map<String, Value>, key: &str, path: &str) -> R<Option<i64>> {
    match m.get(key) {
        None => Ok(None),
        Some(Value::Number(n)) if n.is_i64() || n.is_u64() => Ok(n.as_i64()),
        Some(v) => Err(format!(
            "{path}/{key}: expected type: Integer, found: {}",
            found(v)
        )),
    }
}

fn in_range(v: Option<f64>, min: f64, max: f64, path: &str) -> R<()> {
    if let Some(v) = v {
        if v < min {
            return Err(format!("{path}: {v} is not greater or equal to {min}"));
        }
        if v > max {
            return Err(format!("{path}: {v} is not less or equal to {max}"));
        }
    }
    Ok(())
}

fn string_set(v: Option<&Value>, allowed: &[&str], path: &str) -> R<Option<Vec<String>>> {
    let Some(v) = v else { return Ok(None) };
    let arr = v
        .as_array()
        .ok_or_else(|| format!("{path}: expected type: JSONArray, found: {}", found(v)))?;
    if arr.is_empty() {
        return Err(format!("{path}: expected minimum item count: 1, found: 0"));
    }
    let mut out: Vec<String> = Vec::new();
    for (i, x) in arr.iter().enumerate() {
        let s = x
            .as_str()
            .ok_or_else(|| format!("{path}/{i}: expected type: String, found: {}", found(x)))?;
        if !allowed.contains(&s) {
            return Err(format!("{path}/{i}: {s} is not a valid enum value"));
        }
        if out.iter().any(|o| o == s) {
            return Err(format!("{path}: array items are not unique"));
        }
        out.push(s.to_string());
    }
    Ok(Some(out))
}

/// Whitespace-separated words: the test server's stand-in for the tokenizer.
fn words(text: &str) -> usize {
    text.split_whitespace().count()
}

/// `mediaSource`: exactly one of `base64String` and `s3Location`; `require_owner` makes
/// `s3Location.bucketOwner` required (Marengo 3.0).
fn media_source(
    v: Option<&Value>,
    path: &str,
    max_base64_decoded: usize,
    require_owner: bool,
) -> R<Src> {
    let v = v.ok_or_else(|| format!("{path}: required key [mediaSource] not found"))?;
    let p = format!("{path}/mediaSource");
    let m = obj(v, &p)?;
    only_keys(m, &["base64String", "s3Location"], &p)?;
    match (m.get("base64String"), m.get("s3Location")) {
        (Some(_), Some(_)) | (None, None) => Err(format!(
            "{p}: exactly one of [base64String, s3Location] is required"
        )),
        (Some(b), None) => {
            let b = b.as_str().ok_or_else(|| {
                format!(
                    "{p}/base64String: expected type: String, found: {}",
                    found(b)
                )
            })?;
            if b.is_empty() {
                return Err(format!(
                    "{p}/base64String: expected minLength: 1, actual: 0"
                ));
            }
            let bytes = aws_smithy_types::base64::decode(b)
                .map_err(|e| format!("{p}/base64String: not valid base64 ({e})"))?;
            if bytes.len() > max_base64_decoded {
                return Err(format!(
                    "{p}/base64String: decodes to {} bytes, over {max_base64_decoded}",
                    bytes.len()
                ));
            }
            Ok(Src::Base64(bytes))
        }
        (None, Some(loc)) => {
            let p = format!("{p}/s3Location");
            let loc = obj(loc, &p)?;
            only_keys(loc, &["uri", "bucketOwner"], &p)?;
            let uri = string(loc, "uri", &p)?
                .ok_or_else(|| format!("{p}: required key [uri] not found"))?;
            let rest = uri
                .strip_prefix("s3://")
                .ok_or_else(|| format!("{p}/uri: string [{uri}] does not match pattern ^s3://"))?;
            match rest.split_once('/') {
                Some((b, k)) if !b.is_empty() && !k.is_empty() => {}
                _ => return Err(format!("{p}/uri: [{uri}] must name a bucket and a key")),
            }
            let owner = string(loc, "bucketOwner", &p)?;
            match owner {
                Some(o) if !(o.len() == 12 && o.bytes().all(|c| c.is_ascii_digit())) => {
                    return Err(format!(
                        "{p}/bucketOwner: string [{o}] does not match pattern ^[0-9]{{12}}$"
                    ));
                }
                None if require_owner => {
                    return Err(format!("{p}: required key [bucketOwner] not found"));
                }
                _ => {}
            }
            Ok(Src::S3 {
                uri: uri.to_string(),
                owner: owner.map(str::to_string),
            })
        }
    }
}

/// Checks a Marengo request body. `sync` is true for `InvokeModel`.
pub fn validate(version: Version, body: &Value, sync: bool) -> R<Parsed> {
    match version {
        Version::V27 => validate_27(body, sync),
        Version::V30 => validate_30(body, sync),
    }
}

fn validate_27(body: &Value, sync: bool) -> R<Parsed> {
    let m = obj(body, "#")?;
    let input_type = string(m, "inputType", "#")?
        .ok_or("#: required key [inputType] not found")?
        .to_string();
    let allowed: &[&str] = match input_type.as_str() {
        "text" => &["inputType", "inputText", "textTruncate"],
        "image" => &["inputType", "mediaSource"],
        "video" => &[
            "inputType",
            "mediaSource",
            "startSec",
            "lengthSec",
            "useFixedLengthSec",
            "minClipSec",
            "embeddingOption",
        ],
        "audio" => &[
            "inputType",
            "mediaSource",
            "startSec",
            "lengthSec",
            "useFixedLengthSec",
        ],
        other => {
            return Err(format!("#/inputType: {other} is not a valid enum value"));
        }
    };
    if sync && !matches!(input_type.as_str(), "text" | "image") {
        return Err(format!(
            "#/inputType: InvokeModel takes text and image input only, not {input_type}"
        ));
    }
    only_keys(m, allowed, "#")?;
    let mut parsed = Parsed::new(&input_type);
    if input_type == "text" {
        let text = string(m, "inputText", "#")?.ok_or("#: required key [inputText] not found")?;
        if text.trim().is_empty() {
            return Err("#/inputText: expected minLength: 1, actual: 0".into());
        }
        let truncate = string(m, "textTruncate", "#")?;
        if let Some(t) = truncate
            && !matches!(t, "end" | "none")
        {
            return Err(format!("#/textTruncate: {t} is not a valid enum value"));
        }
        if truncate == Some("none") && words(text) > 77 {
            return Err(format!(
                "the input text is {} tokens, over the 77-token limit (textTruncate none)",
                words(text)
            ));
        }
        parsed.text = Some(text.to_string());
        parsed.truncate = truncate.map(str::to_string);
        return Ok(parsed);
    }
    parsed.media = Some(media_source(m.get("mediaSource"), "#", 36_000_000, false)?);
    if input_type == "image" {
        return Ok(parsed);
    }
    let start = number(m, "startSec", "#")?;
    in_range(start, 0.0, f64::MAX, "#/startSec")?;
    let length = number(m, "lengthSec", "#")?;
    if let Some(l) = length
        && l <= 0.0
    {
        return Err(format!("#/lengthSec: {l} is not greater than 0"));
    }
    parsed.window_start = start;
    parsed.window_end = length.map(|l| start.unwrap_or(0.0) + l);
    let fixed = number(m, "useFixedLengthSec", "#")?;
    in_range(fixed, 2.0, 10.0, "#/useFixedLengthSec")?;
    let min_clip =
        match m.get("minClipSec") {
            None => None,
            Some(v) => Some(v.as_u64().ok_or_else(|| {
                format!("#/minClipSec: expected type: Integer, found: {}", found(v))
            })? as f64),
        };
    in_range(min_clip, 1.0, 5.0, "#/minClipSec")?;
    // minClipSec defaults to 4, and a fixed length must not be shorter.
    if input_type == "video"
        && let Some(f) = fixed
    {
        let c = min_clip.unwrap_or(4.0);
        if f < c {
            return Err(format!(
                "#/useFixedLengthSec: {f} is below minClipSec {c}{}",
                if min_clip.is_none() {
                    " (its default)"
                } else {
                    ""
                }
            ));
        }
    }
    parsed.seg = match (fixed, min_clip) {
        (Some(f), _) => Seg::Fixed(f),
        (None, Some(c)) => Seg::Dynamic(c),
        (None, None) => Seg::Default,
    };
    parsed.options = if input_type == "video" {
        let all = ["visual-text", "visual-image", "audio"];
        string_set(m.get("embeddingOption"), &all, "#/embeddingOption")?
            .unwrap_or_else(|| all.iter().map(|s| s.to_string()).collect())
    } else {
        vec!["audio".to_string()]
    };
    Ok(parsed)
}

fn validate_30(body: &Value, sync: bool) -> R<Parsed> {
    let m = obj(body, "#")?;
    let input_type = string(m, "inputType", "#")?
        .ok_or("#: required key [inputType] not found")?
        .to_string();
    let known = [
        "text",
        "image",
        "text_image",
        "multi_input",
        "video",
        "audio",
    ];
    if !known.contains(&input_type.as_str()) {
        return Err(format!(
            "#/inputType: {input_type} is not a valid enum value"
        ));
    }
    if sync && matches!(input_type.as_str(), "video" | "audio") {
        return Err(format!(
            "#/inputType: InvokeModel takes text, image, text_image and multi_input, not \
             {input_type}"
        ));
    }
    if !sync && input_type == "text_image" {
        return Err(
            "#/inputType: StartAsyncInvoke takes video, audio, image, text and multi_input, not \
             text_image"
                .into(),
        );
    }
    only_keys(m, &["inputType", input_type.as_str()], "#")?;
    let inner_path = format!("#/{input_type}");
    let inner = obj(required(m, &input_type, "#")?, &inner_path)?;
    let mut parsed = Parsed::new(&input_type);
    let text = |inner: &Map<String, Value>| -> R<String> {
        let text = string(inner, "inputText", &inner_path)?
            .ok_or_else(|| format!("{inner_path}: required key [inputText] not found"))?;
        if text.trim().is_empty() {
            return Err(format!(
                "{inner_path}/inputText: expected minLength: 1, actual: 0"
            ));
        }
        if words(text) > 500 {
            return Err(format!(
                "the input text is {} tokens, over the 500-token limit",
                words(text)
            ));
        }
        Ok(text.to_string())
    };
    match input_type.as_str() {
        "text" => {
            only_keys(inner, &["inputText"], &inner_path)?;
            parsed.text = Some(text(inner)?);
        }
        "image" => {
            only_keys(inner, &["mediaSource"], &inner_path)?;
            parsed.media = Some(media_source(
                inner.get("mediaSource"),
                &inner_path,
                36_000_000,
                true,
            )?);
        }
        "text_image" => {
            only_keys(inner, &["inputText", "mediaSource"], &inner_path)?;
            parsed.text = Some(text(inner)?);
            parsed.media = Some(media_source(
                inner.get("mediaSource"),
                &inner_path,
                36_000_000,
                true,
            )?);
        }
        "video" | "audio" => {
            only_keys(
                inner,
                &[
                    "mediaSource",
                    "startSec",
                    "endSec",
                    "segmentation",
                    "embeddingOption",
                    "embeddingScope",
                    "embeddingType",
                ],
                &inner_path,
            )?;
            parsed.media = Some(media_source(
                inner.get("mediaSource"),
                &inner_path,
                36_000_000,
                true,
            )?);
            let start = number(inner, "startSec", &inner_path)?;
            in_range(start, 0.0, f64::MAX, &format!("{inner_path}/startSec"))?;
            let end = number(inner, "endSec", &inner_path)?;
            if let Some(e) = end
                && e <= start.unwrap_or(0.0)
            {
                return Err(format!(
                    "{inner_path}/endSec: {e} is not greater than startSec"
                ));
            }
            parsed.window_start = start;
            parsed.window_end = end;
            if let Some(seg) = inner.get("segmentation") {
                parsed.seg = segmentation_30(seg, &input_type, &inner_path)?;
            }
            let all: &[&str] = if input_type == "video" {
                &["visual", "audio", "transcription"]
            } else {
                &["audio", "transcription"]
            };
            parsed.options = string_set(
                inner.get("embeddingOption"),
                all,
                &format!("{inner_path}/embeddingOption"),
            )?
            .unwrap_or_else(|| all.iter().map(|s| s.to_string()).collect());
            let scope = string_set(
                inner.get("embeddingScope"),
                &["clip", "asset"],
                &format!("{inner_path}/embeddingScope"),
            )?
            .unwrap_or_else(|| vec!["clip".to_string()]);
            parsed.asset_scope = scope.iter().any(|s| s == "asset");
            if !scope.iter().any(|s| s == "clip") {
                return Err(
                    "this test server always returns clips: embeddingScope needs clip".into(),
                );
            }
            if let Some(t) = string_set(
                inner.get("embeddingType"),
                &["separate_embedding", "fused_embedding"],
                &format!("{inner_path}/embeddingType"),
            )? && t.iter().any(|t| t == "fused_embedding")
            {
                return Err("fused_embedding is not implemented by this test server".into());
            }
        }
        other => {
            return Err(format!(
                "input type {other} is not implemented by this test server"
            ));
        }
    }
    Ok(parsed)
}

/// Marengo 3.0 `segmentation`: `fixed` (`durationSec`, Integer 1-10) for video and audio,
/// `dynamic` (`minDurationSec`, Integer 1-5) for video only.
fn segmentation_30(seg: &Value, input_type: &str, inner_path: &str) -> R<Seg> {
    let p = format!("{inner_path}/segmentation");
    let seg = obj(seg, &p)?;
    let methods: &[&str] = if input_type == "video" {
        &["dynamic", "fixed"]
    } else {
        // Shot boundaries are a video notion: audio is cut into fixed lengths only.
        &["fixed"]
    };
    let method = string(seg, "method", &p)?
        .ok_or_else(|| format!("{p}: required key [method] not found"))?;
    if !methods.contains(&method) {
        return Err(format!("{p}/method: {method} is not a valid enum value"));
    }
    only_keys(seg, &["method", method], &p)?;
    let mp = format!("{p}/{method}");
    let params = obj(required(seg, method, &p)?, &mp)?;
    let (key, min, max) = if method == "dynamic" {
        ("minDurationSec", 1, 5)
    } else {
        ("durationSec", 1, 10)
    };
    only_keys(params, &[key], &mp)?;
    let v = integer(params, key, &mp)?
        .ok_or_else(|| format!("{mp}: required key [{key}] not found"))?;
    in_range(
        Some(v as f64),
        f64::from(min),
        f64::from(max),
        &format!("{mp}/{key}"),
    )?;
    Ok(if method == "dynamic" {
        Seg::Dynamic(v as f64)
    } else {
        Seg::Fixed(v as f64)
    })
}
