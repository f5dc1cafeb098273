//! How a record's metadata lives in a document, and how metadata filters become queries.
//!
//! Under the index's strict mapping (no dynamic fields), a document carries:
//!
//! | field | mapping | holds |
//! |---|---|---|
//! | `tags` | `keyword` | the tags |
//! | `name` | `text` with a `raw` `keyword` sub-field | the display name (BM25 on `name`, exact on `name.raw`) |
//! | `duration_ms` | `long` | the media length |
//! | `fields` | `object`, `"enabled": false` (kept in `_source` only) | the user fields, exactly: `[{"name": .., "value": ..}, ..]` in name order, each value as [`FieldValue`]'s JSON |
//! | `field_keys` | `keyword` | the names of the fields present (`Exists`) |
//! | `field_terms` | `keyword` | one term per field: `"<type>:<name>=<value>"` (`Eq`, `In`, `Range`) |
//! | `name_words` | `text` | the words of the display name, one space between them (keyword search, BM25) |
//! | `field_text` | `text` | the words of the text-valued user fields (keyword search, BM25) |
//!
//! `name_words` and `field_text` hold the words as [`crossmodal_core::keyword_terms`] splits
//! them (runs of letters and digits), so the `standard` analyzer finds the same words on any
//! index, without custom analysis settings (which an existing index cannot gain and Serverless
//! does not let a client change): it would keep `castle_siege_v3` as one token (`_` joins words
//! in Unicode word segmentation), so a `match` on `name` does not find `castle_siege_v3.mp4` by
//! "castle siege".
//!
//! A term's type letter is `b` (bool: `false` / `true`), `n` (number), `t` (time) or `s` (text,
//! as is). Numbers and times are 16 lowercase hex digits of an order-preserving `u64` (a time's
//! `i64` with the sign bit flipped; a number's `f64` bits with the sign bit flipped when
//! positive and all bits flipped when negative, `-0` written as `0`), so the byte order of the
//! terms of one field and type is the order of their values: a `Range` is a keyword `range` on
//! `field_terms` between `"<type>:<name>=<bound>"` and, without an upper bound, `"<type>:<name>>"`
//! (`>` follows `=`, and names hold no `=`). One term per value serves equality and order.
//!
//! The field list is an array (not an object keyed by name) so that a partial update
//! (`{"doc": {..}}`, which merges objects key by key) replaces it whole and a removed field goes.
//! Documents written before these fields existed read back with no name, no duration and no
//! fields.

use std::collections::BTreeMap;

use crossmodal_core::{FieldCondition, FieldTest, FieldValue, RecordMeta};
use serde_json::{Map, Value, json};

/// Mapping of the metadata fields added after layout 2's first release: name and mapping. An
/// existing index lacking one gains it with `PUT _mapping`.
pub(crate) const META_MAPPINGS: &[(&str, &str)] = &[
    ("name", "text"),
    ("duration_ms", "long"),
    ("fields", "object"),
    ("field_keys", "keyword"),
    ("field_terms", "keyword"),
    ("name_words", "text"),
    ("field_text", "text"),
];

/// The words of `text` (runs of letters and digits, as [`crossmodal_core::keyword_terms`]
/// finds them, repeats kept so term frequencies stay), separated by single spaces.
pub(crate) fn words_of(text: &str) -> String {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The words of the text-valued user fields, in name order.
pub(crate) fn field_text(meta: &RecordMeta) -> String {
    meta.fields
        .values()
        .filter_map(|v| match v {
            FieldValue::Text(t) => Some(words_of(t)),
            _ => None,
        })
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The type letter of a value in `field_terms`.
fn type_letter(v: &FieldValue) -> char {
    match v {
        FieldValue::Bool(_) => 'b',
        FieldValue::Number(_) => 'n',
        FieldValue::Time(_) => 't',
        // `FieldValue` is non-exhaustive: text is the only other kind today.
        _ => 's',
    }
}

/// A number as an order-preserving `u64`: `a < b` exactly when `sortable_number(a) <
/// sortable_number(b)` (finite values; `-0` and `0` map to one value, as they compare equal).
pub(crate) fn sortable_number(n: f64) -> u64 {
    let n = if n == 0.0 { 0.0 } else { n };
    let bits = n.to_bits();
    if bits >> 63 == 1 {
        !bits
    } else {
        bits | (1 << 63)
    }
}

/// A time as an order-preserving `u64`.
pub(crate) fn sortable_time(ms: i64) -> u64 {
    (ms as u64) ^ (1 << 63)
}

/// The canonical text of a value after `<type>:<name>=`.
fn canonical(v: &FieldValue) -> String {
    match v {
        FieldValue::Bool(b) => b.to_string(),
        FieldValue::Number(n) => format!("{:016x}", sortable_number(*n)),
        FieldValue::Time(ms) => format!("{:016x}", sortable_time(*ms)),
        FieldValue::Text(t) => t.clone(),
        other => other.as_text(),
    }
}

/// The `field_terms` entry of field `name` holding `v`.
pub(crate) fn field_term(name: &str, v: &FieldValue) -> String {
    format!("{}:{name}={}", type_letter(v), canonical(v))
}

/// The metadata fields a patch can change, as document fields: `tags`, `name` and `name_words`
/// (when a name is set), `fields`, `field_keys`, `field_terms`, `field_text`. Written whole at
/// upsert and in every update.
pub(crate) fn patchable_fields(meta: &RecordMeta) -> Map<String, Value> {
    let mut out = Map::new();
    out.insert("tags".into(), json!(meta.tags));
    if let Some(name) = &meta.name {
        out.insert("name".into(), json!(name));
        out.insert("name_words".into(), json!(words_of(name)));
    }
    let entries: Vec<Value> = meta
        .fields
        .iter()
        .map(|(k, v)| json!({"name": k, "value": v}))
        .collect();
    out.insert("fields".into(), Value::Array(entries));
    out.insert(
        "field_keys".into(),
        json!(meta.fields.keys().collect::<Vec<_>>()),
    );
    out.insert(
        "field_terms".into(),
        json!(
            meta.fields
                .iter()
                .map(|(k, v)| field_term(k, v))
                .collect::<Vec<_>>()
        ),
    );
    out.insert("field_text".into(), json!(field_text(meta)));
    out
}

/// The user fields of a `_source` (`fields` absent or null: none). `Err` names what is wrong.
pub(crate) fn parse_fields(
    source: &Value,
) -> std::result::Result<BTreeMap<String, FieldValue>, String> {
    let mut out = BTreeMap::new();
    let entries = match source.get("fields") {
        None | Some(Value::Null) => return Ok(out),
        Some(Value::Array(a)) => a,
        Some(other) => return Err(format!("fields is not a list: {other}")),
    };
    for e in entries {
        let name = e
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("a field without a name: {e}"))?;
        let value = e
            .get("value")
            .ok_or_else(|| format!("field {name} without a value"))?;
        let value: FieldValue =
            serde_json::from_value(value.clone()).map_err(|err| format!("field {name}: {err}"))?;
        out.insert(name.to_string(), value);
    }
    Ok(out)
}

/// A clause that matches no document.
fn nothing() -> Value {
    json!({"bool": {"must_not": [{"match_all": {}}]}})
}

/// The query clause of one field test, with exactly [`FieldTest::passes`]'s semantics (a
/// missing field fails every test but `Not`).
pub(crate) fn test_clause(key: &str, test: &FieldTest) -> Value {
    match test {
        FieldTest::Eq(v) => json!({"term": {"field_terms": field_term(key, v)}}),
        FieldTest::In(vs) => {
            let terms: Vec<String> = vs.iter().map(|v| field_term(key, v)).collect();
            json!({"terms": {"field_terms": terms}})
        }
        FieldTest::Range { gte, lt } => {
            let letter = match (gte, lt) {
                (Some(a), Some(b)) if type_letter(a) != type_letter(b) => return nothing(),
                (Some(v), _) | (None, Some(v)) => type_letter(v),
                // No bound: every value of the field passes.
                (None, None) => return json!({"term": {"field_keys": key}}),
            };
            let mut range = Map::new();
            range.insert(
                "gte".into(),
                json!(
                    gte.as_ref()
                        .map_or_else(|| format!("{letter}:{key}="), |v| field_term(key, v))
                ),
            );
            range.insert(
                "lt".into(),
                json!(
                    lt.as_ref()
                        .map_or_else(|| format!("{letter}:{key}>"), |v| field_term(key, v))
                ),
            );
            json!({"range": {"field_terms": range}})
        }
        FieldTest::Exists => json!({"term": {"field_keys": key}}),
        FieldTest::Not(inner) => json!({"bool": {"must_not": [test_clause(key, inner)]}}),
        // `FieldTest` is non-exhaustive; a test this crate does not know matches nothing
        // rather than everything.
        _ => nothing(),
    }
}

/// The clause of one condition on a named field.
pub(crate) fn condition_clause(c: &FieldCondition) -> Value {
    test_clause(&c.key, &c.test)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossmodal_core::{MediaFormat, MediaKind};

    #[test]
    fn the_number_encoding_keeps_the_order_across_signs_and_fractions() {
        let values = [
            f64::MIN,
            -1e300,
            -12345.5,
            -2.0,
            -1.5,
            -1.0,
            -0.75,
            -1e-300,
            -f64::MIN_POSITIVE,
            0.0,
            f64::MIN_POSITIVE,
            1e-300,
            0.25,
            0.5,
            1.0,
            1.0000000000000002,
            2.0,
            3.5,
            1e15,
            1e300,
            f64::MAX,
        ];
        for pair in values.windows(2) {
            let (a, b) = (pair[0], pair[1]);
            assert!(a < b);
            assert!(sortable_number(a) < sortable_number(b), "{a} < {b}");
            // The hex text sorts as the numbers (what a keyword range compares).
            let (ta, tb) = (
                field_term("x", &FieldValue::Number(a)),
                field_term("x", &FieldValue::Number(b)),
            );
            assert!(ta < tb, "{ta} < {tb}");
            assert_eq!(ta.len(), "n:x=".len() + 16);
        }
        assert_eq!(sortable_number(-0.0), sortable_number(0.0), "-0 == 0");
        assert_eq!(
            field_term("budget", &FieldValue::Number(-1.0)),
            "n:budget=400fffffffffffff"
        );
        assert_eq!(
            field_term("budget", &FieldValue::Number(1.0)),
            "n:budget=bff0000000000000"
        );
        let times = [i64::MIN, -86_400_000, -1, 0, 1, 1_700_000_000_000, i64::MAX];
        for pair in times.windows(2) {
            assert!(
                field_term("t", &FieldValue::Time(pair[0]))
                    < field_term("t", &FieldValue::Time(pair[1]))
            );
        }
        assert!(
            field_term("b", &FieldValue::Bool(false)) < field_term("b", &FieldValue::Bool(true))
        );
    }

    #[test]
    fn every_value_type_round_trips_through_a_document() {
        let meta = RecordMeta::new(MediaKind::Video, MediaFormat::Mp4)
            .field("flag", true)
            .field("off", false)
            .field("budget", 0.1 + 0.2)
            .field("negative", -1e-7)
            .field("big", 12_345_678_901_234.0)
            .field("campaign", "summer \"quoted\" ünïcode")
            .field("launch", FieldValue::Time(-5))
            .field("number-like-text", "42");
        let doc = Value::Object(patchable_fields(&meta));
        // Through JSON text, as the service returns `_source`.
        let text = serde_json::to_string(&doc).unwrap();
        let back: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(parse_fields(&back).unwrap(), meta.fields);
        assert_eq!(
            doc["field_keys"],
            json!(meta.fields.keys().collect::<Vec<_>>())
        );
        assert!(
            doc["field_terms"]
                .as_array()
                .unwrap()
                .contains(&json!("s:number-like-text=42"))
        );
        assert!(
            doc["field_terms"]
                .as_array()
                .unwrap()
                .contains(&json!("b:flag=true"))
        );
        assert_eq!(parse_fields(&json!({})).unwrap(), BTreeMap::new());
        assert!(parse_fields(&json!({"fields": {"a": 1}})).is_err());
        assert!(parse_fields(&json!({"fields": [{"value": 1}]})).is_err());
    }

    #[test]
    fn tests_become_clauses_with_the_same_semantics() {
        assert_eq!(
            test_clause("campaign", &FieldTest::Eq("summer".into())),
            json!({"term": {"field_terms": "s:campaign=summer"}})
        );
        let range = test_clause(
            "budget",
            &FieldTest::Range {
                gte: Some(100.0.into()),
                lt: None,
            },
        );
        assert_eq!(
            range["range"]["field_terms"]["gte"],
            json!(field_term("budget", &100.0.into()))
        );
        assert_eq!(range["range"]["field_terms"]["lt"], json!("n:budget>"));
        let below = test_clause(
            "budget",
            &FieldTest::Range {
                gte: None,
                lt: Some(FieldValue::Number(-3.0)),
            },
        );
        assert_eq!(below["range"]["field_terms"]["gte"], json!("n:budget="));
        assert_eq!(
            test_clause("a", &FieldTest::Not(Box::new(FieldTest::Exists))),
            json!({"bool": {"must_not": [{"term": {"field_keys": "a"}}]}})
        );
        let mixed = FieldTest::Range {
            gte: Some(1.0.into()),
            lt: Some("x".into()),
        };
        assert_eq!(test_clause("a", &mixed), nothing());
    }
}
