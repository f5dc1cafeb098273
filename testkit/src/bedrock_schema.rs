//! The documented Marengo request schemas (Bedrock user guide pages `model-parameters-marengo`
//! for 2.7 and `model-parameters-marengo-3` for 3.0, as summarised in shared/docs/wire-facts.md),
//! checked strictly: unknown keys, wrong types, values out of range, a field of another version
//! or input type all fail.

use serde_json::{Map, Value};

/// Which model version a body is checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

    /// The version a model id names (base id, `us.`/`eu.`/`apac.` profile, or ARN).
    pub fn of_model_id(id: &str) -> Option<(Version, bool)> {
        for v in [Version::V27, Version::V30] {
            let base = v.base_id();
            let tail = id.rsplit('/').next().unwrap_or(id);
            if tail == base {
                return Some((v, false));
            }
            for p in ["us.", "eu.", "apac.", "global."] {
                if tail.strip_prefix(p) == Some(base) {
                    return Some((v, true));
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
}

type R<T> = Result<T, String>;

fn obj<'a>(v: &'a Value, path: &str) -> R<&'a Map<String, Value>> {
    v.as_object()
        .ok_or_else(|| format!("{path} must be an object, got {v}"))
}

fn only_keys(m: &Map<String, Value>, allowed: &[&str], path: &str) -> R<()> {
    for k in m.keys() {
        if !allowed.contains(&k.as_str()) {
            return Err(format!(
                "{path}: unexpected key {k:?} (allowed: {})",
                allowed.join(", ")
            ));
        }
    }
    Ok(())
}

fn string<'a>(m: &'a Map<String, Value>, key: &str, path: &str) -> R<Option<&'a str>> {
    match m.get(key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(v) => Err(format!("{path}.{key} must be a string, got {v}")),
    }
}

fn number(m: &Map<String, Value>, key: &str, path: &str) -> R<Option<f64>> {
    match m.get(key) {
        None => Ok(None),
        Some(Value::Number(n)) => Ok(n.as_f64()),
        Some(v) => Err(format!("{path}.{key} must be a number, got {v}")),
    }
}

fn in_range(v: Option<f64>, min: f64, max: f64, what: &str) -> R<()> {
    if let Some(v) = v
        && !(min..=max).contains(&v)
    {
        return Err(format!("{what} must be within {min}..={max}, got {v}"));
    }
    Ok(())
}

fn string_set(v: Option<&Value>, allowed: &[&str], what: &str) -> R<Option<Vec<String>>> {
    let Some(v) = v else { return Ok(None) };
    let arr = v
        .as_array()
        .ok_or_else(|| format!("{what} must be an array, got {v}"))?;
    if arr.is_empty() {
        return Err(format!("{what} must not be empty"));
    }
    let mut out: Vec<String> = Vec::new();
    for x in arr {
        let s = x
            .as_str()
            .ok_or_else(|| format!("{what} items must be strings, got {x}"))?;
        if !allowed.contains(&s) {
            return Err(format!(
                "{what}: {s:?} is not one of {}",
                allowed.join(", ")
            ));
        }
        if out.iter().any(|o| o == s) {
            return Err(format!("{what}: {s:?} is repeated"));
        }
        out.push(s.to_string());
    }
    Ok(Some(out))
}

/// Whitespace-separated words: the test server's stand-in for the tokenizer.
fn words(text: &str) -> usize {
    text.split_whitespace().count()
}

fn media_source(v: Option<&Value>, path: &str, max_base64_decoded: usize) -> R<Src> {
    let v = v.ok_or_else(|| format!("{path}.mediaSource is required"))?;
    let m = obj(v, &format!("{path}.mediaSource"))?;
    only_keys(
        m,
        &["base64String", "s3Location"],
        &format!("{path}.mediaSource"),
    )?;
    match (m.get("base64String"), m.get("s3Location")) {
        (Some(_), Some(_)) | (None, None) => Err(format!(
            "{path}.mediaSource needs exactly one of base64String and s3Location"
        )),
        (Some(b), None) => {
            let b = b
                .as_str()
                .ok_or_else(|| format!("{path}.mediaSource.base64String must be a string"))?;
            if b.is_empty() {
                return Err(format!("{path}.mediaSource.base64String is empty"));
            }
            let bytes = aws_smithy_types::base64::decode(b)
                .map_err(|e| format!("{path}.mediaSource.base64String is not base64: {e}"))?;
            if bytes.len() > max_base64_decoded {
                return Err(format!(
                    "{path}.mediaSource.base64String decodes to {} bytes, over {max_base64_decoded}",
                    bytes.len()
                ));
            }
            Ok(Src::Base64(bytes))
        }
        (None, Some(loc)) => {
            let p = format!("{path}.mediaSource.s3Location");
            let loc = obj(loc, &p)?;
            only_keys(loc, &["uri", "bucketOwner"], &p)?;
            let uri = string(loc, "uri", &p)?.ok_or_else(|| format!("{p}.uri is required"))?;
            let rest = uri
                .strip_prefix("s3://")
                .ok_or_else(|| format!("{p}.uri must start with s3://, got {uri:?}"))?;
            match rest.split_once('/') {
                Some((b, k)) if !b.is_empty() && !k.is_empty() => {}
                _ => return Err(format!("{p}.uri must name a bucket and a key, got {uri:?}")),
            }
            let owner = string(loc, "bucketOwner", &p)?;
            if let Some(o) = owner
                && !(o.len() == 12 && o.bytes().all(|c| c.is_ascii_digit()))
            {
                return Err(format!(
                    "{p}.bucketOwner must be a 12-digit account id, got {o:?}"
                ));
            }
            Ok(Src::S3 {
                uri: uri.to_string(),
                owner: owner.map(str::to_string),
            })
        }
    }
}

/// Checks a Marengo request body. `sync` is true for `InvokeModel` (text and image only).
pub fn validate(version: Version, body: &Value, sync: bool) -> R<Parsed> {
    match version {
        Version::V27 => validate_27(body, sync),
        Version::V30 => validate_30(body, sync),
    }
}

fn validate_27(body: &Value, sync: bool) -> R<Parsed> {
    let m = obj(body, "body")?;
    let input_type = string(m, "inputType", "body")?
        .ok_or("body.inputType is required")?
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
            return Err(format!(
                "body.inputType {other:?} is not text, image, video or audio"
            ));
        }
    };
    if sync && !matches!(input_type.as_str(), "text" | "image") {
        return Err(format!(
            "InvokeModel takes text and image input only, not {input_type}"
        ));
    }
    only_keys(m, allowed, &format!("body ({input_type})"))?;
    let mut parsed = Parsed {
        input_type: input_type.clone(),
        text: None,
        media: None,
        options: Vec::new(),
        seg: Seg::Default,
        asset_scope: false,
        truncate: None,
    };
    if input_type == "text" {
        let text = string(m, "inputText", "body")?.ok_or("body.inputText is required for text")?;
        if text.trim().is_empty() {
            return Err("body.inputText is empty".into());
        }
        let truncate = string(m, "textTruncate", "body")?;
        if let Some(t) = truncate
            && !matches!(t, "end" | "none")
        {
            return Err(format!("body.textTruncate must be end or none, got {t:?}"));
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
    parsed.media = Some(media_source(m.get("mediaSource"), "body", 36_000_000)?);
    if input_type == "image" {
        return Ok(parsed);
    }
    let start = number(m, "startSec", "body")?;
    in_range(start, 0.0, f64::MAX, "body.startSec")?;
    if let Some(l) = number(m, "lengthSec", "body")?
        && l <= 0.0
    {
        return Err(format!("body.lengthSec must be > 0, got {l}"));
    }
    let fixed = number(m, "useFixedLengthSec", "body")?;
    in_range(fixed, 2.0, 10.0, "body.useFixedLengthSec")?;
    let min_clip = match m.get("minClipSec") {
        None => None,
        Some(v) => Some(
            v.as_u64()
                .ok_or_else(|| format!("body.minClipSec must be a whole number, got {v}"))?
                as f64,
        ),
    };
    in_range(min_clip, 1.0, 5.0, "body.minClipSec")?;
    if let (Some(f), Some(c)) = (fixed, min_clip)
        && f < c
    {
        return Err(format!(
            "body.useFixedLengthSec {f} is below minClipSec {c}"
        ));
    }
    parsed.seg = match (fixed, min_clip) {
        (Some(f), _) => Seg::Fixed(f),
        (None, Some(c)) => Seg::Dynamic(c),
        (None, None) => Seg::Default,
    };
    parsed.options = if input_type == "video" {
        let all = ["visual-text", "visual-image", "audio"];
        string_set(m.get("embeddingOption"), &all, "body.embeddingOption")?
            .unwrap_or_else(|| all.iter().map(|s| s.to_string()).collect())
    } else {
        vec!["audio".to_string()]
    };
    Ok(parsed)
}

fn validate_30(body: &Value, sync: bool) -> R<Parsed> {
    let m = obj(body, "body")?;
    let input_type = string(m, "inputType", "body")?
        .ok_or("body.inputType is required")?
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
            "body.inputType {input_type:?} is not one of {}",
            known.join(", ")
        ));
    }
    if sync && matches!(input_type.as_str(), "video" | "audio") {
        return Err(format!(
            "InvokeModel takes text, image, text_image and multi_input, not {input_type}"
        ));
    }
    only_keys(m, &["inputType", input_type.as_str()], "body")?;
    let inner_path = format!("body.{input_type}");
    let inner = obj(
        m.get(&input_type)
            .ok_or_else(|| format!("{inner_path} is required"))?,
        &inner_path,
    )?;
    let mut parsed = Parsed {
        input_type: input_type.clone(),
        text: None,
        media: None,
        options: Vec::new(),
        seg: Seg::Default,
        asset_scope: false,
        truncate: None,
    };
    match input_type.as_str() {
        "text" => {
            only_keys(inner, &["inputText"], &inner_path)?;
            let text = string(inner, "inputText", &inner_path)?
                .ok_or_else(|| format!("{inner_path}.inputText is required"))?;
            if text.trim().is_empty() {
                return Err(format!("{inner_path}.inputText is empty"));
            }
            if words(text) > 500 {
                return Err(format!(
                    "the input text is {} tokens, over the 500-token limit",
                    words(text)
                ));
            }
            parsed.text = Some(text.to_string());
        }
        "image" => {
            only_keys(inner, &["mediaSource"], &inner_path)?;
            parsed.media = Some(media_source(
                inner.get("mediaSource"),
                &inner_path,
                36_000_000,
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
            )?);
            let start = number(inner, "startSec", &inner_path)?;
            in_range(start, 0.0, f64::MAX, &format!("{inner_path}.startSec"))?;
            let end = number(inner, "endSec", &inner_path)?;
            if let (Some(s), Some(e)) = (start, end)
                && e <= s
            {
                return Err(format!("{inner_path}.endSec must be after startSec"));
            }
            if let Some(seg) = inner.get("segmentation") {
                let p = format!("{inner_path}.segmentation");
                let seg = obj(seg, &p)?;
                match string(seg, "method", &p)? {
                    Some("dynamic") => {
                        only_keys(seg, &["method", "dynamic"], &p)?;
                        let d = obj(
                            seg.get("dynamic")
                                .ok_or_else(|| format!("{p}.dynamic is required"))?,
                            &format!("{p}.dynamic"),
                        )?;
                        only_keys(d, &["minDurationSec"], &format!("{p}.dynamic"))?;
                        let v = number(d, "minDurationSec", &p)?
                            .ok_or_else(|| format!("{p}.dynamic.minDurationSec is required"))?;
                        in_range(Some(v), 1.0, 5.0, &format!("{p}.dynamic.minDurationSec"))?;
                        parsed.seg = Seg::Dynamic(v);
                    }
                    Some("fixed") => {
                        only_keys(seg, &["method", "fixed"], &p)?;
                        let f = obj(
                            seg.get("fixed")
                                .ok_or_else(|| format!("{p}.fixed is required"))?,
                            &format!("{p}.fixed"),
                        )?;
                        only_keys(f, &["durationSec"], &format!("{p}.fixed"))?;
                        let v = number(f, "durationSec", &p)?
                            .ok_or_else(|| format!("{p}.fixed.durationSec is required"))?;
                        in_range(Some(v), 1.0, 10.0, &format!("{p}.fixed.durationSec"))?;
                        parsed.seg = Seg::Fixed(v);
                    }
                    other => {
                        return Err(format!(
                            "{p}.method must be dynamic or fixed, got {other:?}"
                        ));
                    }
                }
            }
            let all: &[&str] = if input_type == "video" {
                &["visual", "audio", "transcription"]
            } else {
                &["audio", "transcription"]
            };
            parsed.options = string_set(
                inner.get("embeddingOption"),
                all,
                &format!("{inner_path}.embeddingOption"),
            )?
            .unwrap_or_else(|| all.iter().map(|s| s.to_string()).collect());
            let scope = string_set(
                inner.get("embeddingScope"),
                &["clip", "asset"],
                &format!("{inner_path}.embeddingScope"),
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
                &format!("{inner_path}.embeddingType"),
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
