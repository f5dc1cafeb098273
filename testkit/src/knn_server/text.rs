//! Full text as OpenSearch scores it: the `standard` analyzer and BM25, for `match` queries on
//! `text` fields.
//!
//! - **Analyzer** (`standard`: the standard tokenizer, then lower-casing; no stop words): tokens
//!   follow Unicode word segmentation (UAX #29) as Lucene's `StandardTokenizer` applies it.
//!   Letters and digits form words; `_` (and the other connector punctuation) joins them
//!   (`castle_siege_v3` is one token); `.` and `'` join two letters or two digits (`v3.mp4` is
//!   `v3` `mp4`, `3.5` one token, `don't` one token); `:` and `·` join letters; `,` and `;`
//!   join digits (`1,000`); every other character separates. Each Han ideograph and each
//!   Hiragana character is a token of its own. Tokens longer than 255 characters are cut.
//! - **BM25** per query term and field: `boost * idf * tf * W / (tf + k1 * (1 - b + b * dl /
//!   avgdl))`, k1 = 1.2, b = 0.75, `idf = ln(1 + (N - n + 0.5) / (n + 0.5))`, where N is the
//!   number of searchable documents with at least one token in the field, n those holding the
//!   term, dl the document's token count (stored as Lucene's one-byte norm, exact up to 40
//!   tokens), avgdl the field's tokens over N. W is `k1 + 1` before OpenSearch 3.0
//!   (`LegacyBM25Similarity`) and 1 from 3.0 (Lucene's `BM25Similarity`). A `match` query's
//!   terms (its text through the same analyzer) score as `bool.should` clauses: summed.
//!   Statistics cover the documents searchable when the query runs (one shard, no deleted
//!   documents waiting for a merge).

use std::collections::HashMap;

use super::*;

/// BM25 `k1` (OpenSearch's default).
pub const K1: f64 = 1.2;
/// BM25 `b` (OpenSearch's default).
pub const B: f64 = 0.75;
/// The standard tokenizer's `max_token_length`.
const MAX_TOKEN_CHARS: usize = 255;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Letter,
    Digit,
    /// Connector punctuation (`_`): joins whatever word characters surround it.
    ExtendNumLet,
    /// Joins two letters (`:`, `·`).
    MidLetter,
    /// Joins two digits (`,`, `;`).
    MidNum,
    /// Joins two letters or two digits (`.`, `'`, `’`).
    MidNumLet,
    /// A token by itself (Han ideographs, Hiragana).
    Single,
    Other,
}

fn class(c: char) -> Class {
    match c {
        '_' | '\u{203F}' | '\u{2040}' | '\u{2054}' | '\u{FE33}' | '\u{FE34}' | '\u{FE4D}'
        | '\u{FE4E}' | '\u{FE4F}' | '\u{FF3F}' => Class::ExtendNumLet,
        ':' | '\u{00B7}' | '\u{0387}' | '\u{05F4}' | '\u{2027}' | '\u{FE13}' | '\u{FE55}'
        | '\u{FF1A}' => Class::MidLetter,
        ',' | ';' | '\u{037E}' | '\u{0589}' | '\u{060C}' | '\u{060D}' | '\u{066C}' | '\u{07F8}'
        | '\u{2044}' | '\u{FE10}' | '\u{FE14}' | '\u{FE50}' | '\u{FE54}' | '\u{FF0C}'
        | '\u{FF1B}' => Class::MidNum,
        '.' | '\'' | '\u{2018}' | '\u{2019}' | '\u{2024}' | '\u{FE52}' | '\u{FF07}'
        | '\u{FF0E}' => Class::MidNumLet,
        '\u{3040}'..='\u{309F}'
        | '\u{3400}'..='\u{4DBF}'
        | '\u{4E00}'..='\u{9FFF}'
        | '\u{F900}'..='\u{FAFF}'
        | '\u{20000}'..='\u{2FA1F}' => Class::Single,
        c if c.is_numeric() => Class::Digit,
        c if c.is_alphabetic() => Class::Letter,
        _ => Class::Other,
    }
}

fn is_word(c: Class) -> bool {
    matches!(c, Class::Letter | Class::Digit | Class::ExtendNumLet)
}

/// Whether a middle character of class `mid` joins `before` and `after`.
fn joins(before: Class, mid: Class, after: Class) -> bool {
    match mid {
        Class::MidLetter => before == Class::Letter && after == Class::Letter,
        Class::MidNum => before == Class::Digit && after == Class::Digit,
        Class::MidNumLet => {
            (before == Class::Letter && after == Class::Letter)
                || (before == Class::Digit && after == Class::Digit)
        }
        _ => false,
    }
}

/// The tokens the `standard` analyzer makes of `text`, in order.
pub fn standard_tokens(text: &str) -> Vec<String> {
    let chars: Vec<(char, Class)> = text.chars().map(|c| (c, class(c))).collect();
    let mut out = Vec::new();
    let mut current = String::new();
    let mut last = Class::Other;
    let flush = |current: &mut String, out: &mut Vec<String>| {
        if !current.is_empty() {
            let t: String = current.chars().take(MAX_TOKEN_CHARS).collect();
            out.push(t.to_lowercase());
            current.clear();
        }
    };
    let mut i = 0;
    while i < chars.len() {
        let (c, cl) = chars[i];
        if cl == Class::Single {
            flush(&mut current, &mut out);
            out.push(c.to_lowercase().collect());
            last = Class::Other;
        } else if is_word(cl) {
            current.push(c);
            last = cl;
        } else if !current.is_empty()
            && chars
                .get(i + 1)
                .is_some_and(|&(_, after)| joins(last, cl, after))
        {
            current.push(c);
            let (n, after) = chars[i + 1];
            current.push(n);
            last = after;
            i += 1;
        } else {
            flush(&mut current, &mut out);
            last = Class::Other;
        }
        i += 1;
    }
    flush(&mut current, &mut out);
    out
}

/// `SmallFloat.intToByte4` and back: the field length Lucene stores in one byte and scores
/// with (exact up to 40).
pub fn stored_length(len: u64) -> u64 {
    const FREE: u64 = 24;
    fn long_to_int4(i: u64) -> u64 {
        let bits = 64 - i.leading_zeros() as u64;
        if bits < 4 {
            return i;
        }
        let shift = bits - 4;
        ((i >> shift) & 0x07) | ((shift + 1) << 3)
    }
    fn int4_to_long(i: u64) -> u64 {
        let bits = i & 0x07;
        let shift = (i >> 3) as i64 - 1;
        if shift < 0 {
            bits
        } else {
            (bits | 0x08) << shift
        }
    }
    let len = len.min(u64::from(u32::MAX >> 1));
    if len < FREE {
        return len;
    }
    let byte = (FREE + long_to_int4(len - FREE)).min(255);
    FREE + int4_to_long(byte - FREE)
}

/// The tokens of one document's `field` (all its values, in order).
fn field_tokens(idx: &Index, doc: &Doc, field: &str) -> Vec<String> {
    searchable_values(idx, &doc.source, field)
        .iter()
        .filter_map(|v| v.as_str())
        .flat_map(standard_tokens)
        .collect()
}

/// The BM25 score of documents for `terms` on `field`: `(id, score)` for every document holding
/// at least one term (`all_terms`: every term).
pub(super) fn bm25(
    idx: &Index,
    docs: &BTreeMap<String, Arc<Doc>>,
    field: &str,
    terms: &[String],
    boost: f64,
    all_terms: bool,
    version: (u32, u32),
) -> Scored {
    let tokens: Vec<(&String, Vec<String>)> = docs
        .iter()
        .map(|(id, d)| (id, field_tokens(idx, d, field)))
        .filter(|(_, t)| !t.is_empty())
        .collect();
    let n_docs = tokens.len() as f64;
    if n_docs == 0.0 {
        return Vec::new();
    }
    let avgdl = tokens.iter().map(|(_, t)| t.len() as f64).sum::<f64>() / n_docs;
    let mut doc_freq: HashMap<&str, f64> = HashMap::new();
    for t in terms {
        let n = tokens.iter().filter(|(_, d)| d.contains(t)).count() as f64;
        doc_freq.insert(t.as_str(), n);
    }
    let weight = if version < (3, 0) { K1 + 1.0 } else { 1.0 };
    let mut out = Vec::new();
    for (id, d) in &tokens {
        let dl = stored_length(d.len() as u64) as f64;
        let mut score = 0.0;
        let mut matched = 0;
        for t in terms {
            let tf = d.iter().filter(|w| *w == t).count() as f64;
            if tf == 0.0 {
                continue;
            }
            matched += 1;
            let n = doc_freq.get(t.as_str()).copied().unwrap_or(0.0);
            let idf = (1.0 + (n_docs - n + 0.5) / (n + 0.5)).ln();
            score += boost * idf * tf * weight / (tf + K1 * (1.0 - B + B * dl / avgdl));
        }
        let enough = if all_terms {
            matched == terms.len()
        } else {
            matched > 0
        };
        if enough {
            out.push(((*id).clone(), score));
        }
    }
    out
}

/// A `match` query (`{"<field>": "text"}` or `{"<field>": {"query", "boost", "operator"}}`).
pub(super) fn eval_match(
    idx: &Index,
    docs: &BTreeMap<String, Arc<Doc>>,
    version: (u32, u32),
    body: &Value,
) -> Result<Scored, Failure> {
    let (field, v) = single_field(body, "match")?;
    let (text, boost, all_terms) = match v {
        Value::Object(o) => {
            if let Some(k) = o
                .keys()
                .find(|k| !matches!(k.as_str(), "query" | "boost" | "operator"))
            {
                return Err(unsupported(format!(
                    "match parameter {k} is not implemented by the test server"
                )));
            }
            let text = o
                .get("query")
                .ok_or_else(|| fail(400, "parsing_exception", "[match] requires query value"))?;
            let all = match o.get("operator").and_then(Value::as_str) {
                None => false,
                Some(op) if op.eq_ignore_ascii_case("or") => false,
                Some(op) if op.eq_ignore_ascii_case("and") => true,
                Some(op) => {
                    return Err(fail(
                        400,
                        "parsing_exception",
                        format!("[match] unknown operator [{op}]"),
                    ));
                }
            };
            (text, boost_of(v), all)
        }
        other => (other, 1.0, false),
    };
    let text = match text {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        _ => {
            return Err(fail(
                400,
                "parsing_exception",
                "[match] unknown token [START_OBJECT] after [query]",
            ));
        }
    };
    match mapped_field(idx, field) {
        Some(FieldType::Text { .. }) => {}
        // Unmapped, or an object kept in `_source` only: nothing is indexed, no hits.
        None | Some(FieldType::Disabled) => return Ok(Vec::new()),
        Some(_) => {
            return Err(unsupported(format!(
                "[match] on the non-text field [{field}] is not implemented by the test server"
            )));
        }
    }
    let terms = standard_tokens(&text);
    if terms.is_empty() {
        return Ok(Vec::new());
    }
    Ok(bm25(idx, docs, field, &terms, boost, all_terms, version))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_standard_tokenizer_keeps_underscored_names_whole() {
        assert_eq!(
            standard_tokens("castle_siege_v3.mp4"),
            vec!["castle_siege_v3", "mp4"]
        );
        assert_eq!(
            standard_tokens("Castle siege v3 mp4"),
            vec!["castle", "siege", "v3", "mp4"]
        );
        assert_eq!(
            standard_tokens("Don't stop: 1,000 at 3.5, e.g. x-y"),
            vec!["don't", "stop", "1,000", "at", "3.5", "e.g", "x", "y"]
        );
        assert_eq!(standard_tokens("城堡 siege"), vec!["城", "堡", "siege"]);
        assert!(standard_tokens(" -- ! ").is_empty());
    }

    #[test]
    fn stored_lengths_are_exact_when_short_and_rounded_down_when_long() {
        for n in 0..=40 {
            assert_eq!(stored_length(n), n);
        }
        assert_eq!(stored_length(41), 40);
        assert_eq!(stored_length(43), 42);
        assert!(stored_length(1000) <= 1000 && stored_length(1000) > 800);
    }
}
