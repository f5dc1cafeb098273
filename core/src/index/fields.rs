//! User metadata: key/value fields on an asset (text, number, bool, time), the conditions a
//! filter puts on them, and [`MetaPatch`], the change that updates an asset's metadata in place
//! (no re-embedding).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::RecordMeta;
use crate::error::{Error, Result};

/// The value of a user field.
///
/// In JSON: a string, a number, a boolean, or `{"time_ms": <ms since the Unix epoch>}`.
///
/// ```
/// use crossmodal_core::FieldValue;
/// let v: FieldValue = serde_json::from_str(r#"{"time_ms": 1700000000000}"#).unwrap();
/// assert_eq!(v, FieldValue::Time(1_700_000_000_000));
/// assert_eq!(serde_json::to_string(&FieldValue::from("summer")).unwrap(), r#""summer""#);
/// ```
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
#[non_exhaustive]
pub enum FieldValue {
    /// `true` / `false`.
    Bool(bool),
    /// A finite number.
    Number(f64),
    /// Text.
    Text(String),
    /// A point in time, ms since the Unix epoch.
    #[serde(with = "time_ms")]
    Time(i64),
}

mod time_ms {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    struct T {
        time_ms: i64,
    }

    pub fn serialize<S: Serializer>(v: &i64, s: S) -> Result<S::Ok, S::Error> {
        T { time_ms: *v }.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
        Ok(T::deserialize(d)?.time_ms)
    }
}

impl From<&str> for FieldValue {
    fn from(s: &str) -> Self {
        FieldValue::Text(s.to_string())
    }
}

impl From<String> for FieldValue {
    fn from(s: String) -> Self {
        FieldValue::Text(s)
    }
}

impl From<f64> for FieldValue {
    fn from(n: f64) -> Self {
        FieldValue::Number(n)
    }
}

impl From<i64> for FieldValue {
    fn from(n: i64) -> Self {
        FieldValue::Number(n as f64)
    }
}

impl From<bool> for FieldValue {
    fn from(b: bool) -> Self {
        FieldValue::Bool(b)
    }
}

/// Structural equality (numbers by their bits, so that `Eq` and `Hash` hold); filters compare
/// numbers by value.
impl PartialEq for FieldValue {
    fn eq(&self, other: &FieldValue) -> bool {
        match (self, other) {
            (FieldValue::Bool(a), FieldValue::Bool(b)) => a == b,
            (FieldValue::Number(a), FieldValue::Number(b)) => a.to_bits() == b.to_bits(),
            (FieldValue::Text(a), FieldValue::Text(b)) => a == b,
            (FieldValue::Time(a), FieldValue::Time(b)) => a == b,
            _ => false,
        }
    }
}

impl Eq for FieldValue {}

impl std::hash::Hash for FieldValue {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        self.hash_into(h);
    }
}

impl fmt::Display for FieldValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FieldValue::Bool(b) => write!(f, "{b}"),
            FieldValue::Number(n) => write!(f, "{n}"),
            FieldValue::Text(t) => f.write_str(t),
            FieldValue::Time(ms) => write!(f, "{ms} ms"),
        }
    }
}

impl FieldValue {
    /// Orders two values of the same type (numbers, times, text); `None` across types.
    fn compare(&self, other: &FieldValue) -> Option<std::cmp::Ordering> {
        match (self, other) {
            (FieldValue::Number(a), FieldValue::Number(b)) => a.partial_cmp(b),
            (FieldValue::Time(a), FieldValue::Time(b)) => Some(a.cmp(b)),
            (FieldValue::Text(a), FieldValue::Text(b)) => Some(a.cmp(b)),
            (FieldValue::Bool(a), FieldValue::Bool(b)) => Some(a.cmp(b)),
            _ => None,
        }
    }

    /// The text a keyword search sees.
    pub fn as_text(&self) -> String {
        match self {
            FieldValue::Time(ms) => ms.to_string(),
            other => other.to_string(),
        }
    }

    /// Feeds the value to a hasher (numbers by their bits).
    fn hash_into<H: std::hash::Hasher>(&self, h: &mut H) {
        use std::hash::Hash;
        match self {
            FieldValue::Bool(b) => (0u8, b).hash(h),
            FieldValue::Number(n) => (1u8, n.to_bits()).hash(h),
            FieldValue::Text(t) => (2u8, t).hash(h),
            FieldValue::Time(ms) => (3u8, ms).hash(h),
        }
    }
}

/// A condition on one user field.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum FieldTest {
    /// The field equals the value.
    Eq(FieldValue),
    /// The field equals one of the values.
    In(Vec<FieldValue>),
    /// The field lies in `[gte, lt)` (either bound may be absent; values of the same type).
    Range {
        /// Inclusive lower bound.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        gte: Option<FieldValue>,
        /// Exclusive upper bound.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        lt: Option<FieldValue>,
    },
    /// The field is set.
    Exists,
    /// The inner test fails (for `Not(Exists)`: the field is absent).
    Not(Box<FieldTest>),
}

impl FieldTest {
    /// Whether `value` (the field's value, or `None` if unset) passes.
    pub fn passes(&self, value: Option<&FieldValue>) -> bool {
        match self {
            FieldTest::Eq(v) => value.is_some_and(|x| x.compare(v).is_some_and(|o| o.is_eq())),
            FieldTest::In(vs) => {
                value.is_some_and(|x| vs.iter().any(|v| x.compare(v).is_some_and(|o| o.is_eq())))
            }
            FieldTest::Range { gte, lt } => value.is_some_and(|x| {
                gte.as_ref()
                    .is_none_or(|g| x.compare(g).is_some_and(|o| o.is_ge()))
                    && lt
                        .as_ref()
                        .is_none_or(|l| x.compare(l).is_some_and(|o| o.is_lt()))
            }),
            FieldTest::Exists => value.is_some(),
            FieldTest::Not(inner) => !inner.passes(value),
        }
    }
}

/// A condition on a named user field.
///
/// ```
/// use crossmodal_core::{FieldCondition, FieldTest, FieldValue, Filter};
/// let f = Filter::default().field("campaign", FieldTest::Eq("summer".into()));
/// assert_eq!(f.fields, vec![FieldCondition { key: "campaign".into(), test: FieldTest::Eq(FieldValue::from("summer")) }]);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FieldCondition {
    /// The field's name.
    pub key: String,
    /// What its value must satisfy.
    pub test: FieldTest,
}

/// A change to an asset's metadata, applied in place to the catalog record and to every vector
/// of the asset in the index (no re-embedding).
///
/// ```
/// use crossmodal_core::{MetaPatch, FieldValue};
/// let patch = MetaPatch::default().set("campaign", "winter").add_tag("approved").remove_tag("draft");
/// assert!(!patch.is_empty());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct MetaPatch {
    /// Fields set (added or replaced).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub set_fields: BTreeMap<String, FieldValue>,
    /// Fields removed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remove_fields: Vec<String>,
    /// Tags added.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub add_tags: Vec<String>,
    /// Tags removed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remove_tags: Vec<String>,
    /// A new display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// Most fields on one asset, longest field name and longest text value.
pub const MAX_FIELDS: usize = 64;
/// Longest field name.
pub const MAX_FIELD_NAME: usize = 64;
/// Longest text value.
pub const MAX_FIELD_TEXT: usize = 1024;

/// Checks a field name and value: names of letters, digits, `_`, `-`, `.`; finite numbers;
/// bounded text.
pub fn check_field(key: &str, value: &FieldValue) -> Result<()> {
    if key.is_empty()
        || key.len() > MAX_FIELD_NAME
        || !key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
    {
        return Err(Error::invalid_input(format!(
            "field name {key:?}: 1 to {MAX_FIELD_NAME} letters, digits, '_', '-' or '.'"
        )));
    }
    match value {
        FieldValue::Number(n) if !n.is_finite() => Err(Error::invalid_input(format!(
            "field {key}: numbers must be finite"
        ))),
        FieldValue::Text(t) if t.len() > MAX_FIELD_TEXT => Err(Error::invalid_input(format!(
            "field {key}: text longer than {MAX_FIELD_TEXT} bytes"
        ))),
        _ => Ok(()),
    }
}

/// Longest tag.
pub const MAX_TAG: usize = 128;

/// Checks a tag: 1 to [`MAX_TAG`] bytes, not blank, no control characters.
pub fn check_tag(tag: &str) -> Result<()> {
    if tag.trim().is_empty() || tag.len() > MAX_TAG || tag.chars().any(char::is_control) {
        return Err(Error::invalid_input(format!(
            "tag {tag:?}: 1 to {MAX_TAG} bytes, not blank, no control characters"
        )));
    }
    Ok(())
}

impl MetaPatch {
    /// Sets a field.
    pub fn set(mut self, key: impl Into<String>, value: impl Into<FieldValue>) -> Self {
        self.set_fields.insert(key.into(), value.into());
        self
    }

    /// Removes a field.
    pub fn remove(mut self, key: impl Into<String>) -> Self {
        self.remove_fields.push(key.into());
        self
    }

    /// Adds a tag.
    pub fn add_tag(mut self, tag: impl Into<String>) -> Self {
        self.add_tags.push(tag.into());
        self
    }

    /// Removes a tag.
    pub fn remove_tag(mut self, tag: impl Into<String>) -> Self {
        self.remove_tags.push(tag.into());
        self
    }

    /// Renames the asset.
    pub fn rename(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Whether the patch changes nothing.
    pub fn is_empty(&self) -> bool {
        self.set_fields.is_empty()
            && self.remove_fields.is_empty()
            && self.add_tags.is_empty()
            && self.remove_tags.is_empty()
            && self.name.is_none()
    }

    /// Checks every field name and value; `InvalidInput` names the first bad one.
    pub fn validate(&self) -> Result<()> {
        for (k, v) in &self.set_fields {
            check_field(k, v)?;
        }
        for k in &self.remove_fields {
            if self.set_fields.contains_key(k) {
                return Err(Error::invalid_input(format!(
                    "field {k} is both set and removed"
                )));
            }
        }
        for t in self.add_tags.iter().chain(&self.remove_tags) {
            check_tag(t)?;
        }
        if let Some(name) = &self.name
            && (name.trim().is_empty() || name.len() > MAX_FIELD_TEXT)
        {
            return Err(Error::invalid_input(format!(
                "a display name is 1 to {MAX_FIELD_TEXT} bytes and not blank"
            )));
        }
        Ok(())
    }

    /// Applies the patch to metadata (tags keep their order; an added tag already present is
    /// not repeated). `InvalidInput` if the result would hold more than [`MAX_FIELDS`] fields.
    pub fn apply_to(&self, meta: &mut RecordMeta) -> Result<()> {
        for k in &self.remove_fields {
            meta.fields.remove(k);
        }
        for (k, v) in &self.set_fields {
            meta.fields.insert(k.clone(), v.clone());
        }
        if meta.fields.len() > MAX_FIELDS {
            return Err(Error::invalid_input(format!(
                "an asset holds at most {MAX_FIELDS} fields"
            )));
        }
        meta.tags.retain(|t| !self.remove_tags.contains(t));
        for t in &self.add_tags {
            if !meta.tags.contains(t) {
                meta.tags.push(t.clone());
            }
        }
        if let Some(name) = &self.name {
            meta.name = Some(name.clone());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tests_cover_eq_in_range_not_exists() {
        let n = FieldValue::Number(30.0);
        assert!(FieldTest::Eq(30.0.into()).passes(Some(&n)));
        assert!(!FieldTest::Eq("30".into()).passes(Some(&n)));
        assert!(FieldTest::In(vec![1.0.into(), 30.0.into()]).passes(Some(&n)));
        let range = FieldTest::Range {
            gte: Some(10.0.into()),
            lt: Some(30.0.into()),
        };
        assert!(!range.passes(Some(&n)), "the upper bound is exclusive");
        assert!(range.passes(Some(&FieldValue::Number(10.0))));
        assert!(
            !range.passes(Some(&FieldValue::Text("x".into()))),
            "types never mix"
        );
        assert!(FieldTest::Exists.passes(Some(&n)) && !FieldTest::Exists.passes(None));
        assert!(FieldTest::Not(Box::new(FieldTest::Exists)).passes(None));
        let t = FieldTest::Range {
            gte: Some(FieldValue::Time(100)),
            lt: None,
        };
        assert!(t.passes(Some(&FieldValue::Time(100))) && !t.passes(Some(&FieldValue::Time(99))));
    }

    #[test]
    fn patches_apply_and_values_round_trip_as_json() {
        let mut meta = RecordMeta::new(crate::MediaKind::Video, crate::MediaFormat::Mp4)
            .tags(["draft", "castle"]);
        MetaPatch::default()
            .set("campaign", "summer")
            .set("duration_cap", 30.0)
            .add_tag("approved")
            .add_tag("castle")
            .remove_tag("draft")
            .rename("siege.mp4")
            .apply_to(&mut meta)
            .unwrap();
        assert_eq!(meta.tags, vec!["castle".to_string(), "approved".into()]);
        assert_eq!(meta.fields["campaign"], FieldValue::from("summer"));
        assert_eq!(meta.name.as_deref(), Some("siege.mp4"));
        let json = serde_json::to_string(&meta).unwrap();
        assert_eq!(serde_json::from_str::<RecordMeta>(&json).unwrap(), meta);
        for v in [
            FieldValue::Bool(true),
            2.5.into(),
            "x".into(),
            FieldValue::Time(5),
        ] {
            let s = serde_json::to_string(&v).unwrap();
            assert_eq!(serde_json::from_str::<FieldValue>(&s).unwrap(), v, "{s}");
        }
        assert!(check_field("bad name", &FieldValue::Bool(true)).is_err());
        assert!(check_field("n", &FieldValue::Number(f64::NAN)).is_err());
        assert!(MetaPatch::default().set("a b", 1.0).validate().is_err());
    }
}
