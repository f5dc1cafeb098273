//! Keyword search: full-text relevance over an asset's display name, tags and user fields,
//! fused by the searcher with the vector routes (hybrid search).
//!
//! Backends: [`SqliteCatalog`](crate::SqliteCatalog) (SQLite FTS5, BM25, in the embedded
//! default's catalog) and `crossmodal_opensearch::OpenSearchIndex` (BM25 in the same OpenSearch
//! index as the vectors, over the name's words, tags and text fields). A searcher without a
//! keyword index refuses `keywords(true)` with `Unsupported`.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::asset::AssetId;
use crate::error::{Error, Result};
use crate::index::{Filter, MAX_K, RecordMeta};

/// Most terms a keyword query keeps (the rest are ignored).
pub const MAX_KEYWORD_TERMS: usize = 32;

/// A keyword query: the words to match, the filter every hit meets, how many assets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct KeywordQuery {
    /// The user's text (split into terms by [`keyword_terms`]).
    pub text: String,
    /// Conditions every hit meets (the same filter as the vector routes).
    pub filter: Filter,
    /// Most assets to return.
    pub k: usize,
}

impl KeywordQuery {
    /// The `k` best assets for `text`, unfiltered.
    pub fn new(text: impl Into<String>, k: usize) -> Self {
        KeywordQuery {
            text: text.into(),
            filter: Filter::default(),
            k,
        }
    }

    /// Adds a filter.
    pub fn filter(mut self, filter: Filter) -> Self {
        self.filter = filter;
        self
    }

    /// Checks `k` and that the text has at least one term.
    pub fn check(&self) -> Result<Vec<String>> {
        if self.k == 0 || self.k > MAX_K {
            return Err(Error::invalid_input(format!(
                "k must be between 1 and {MAX_K}, got {}",
                self.k
            )));
        }
        self.filter.check()?;
        let terms = keyword_terms(&self.text);
        if terms.is_empty() {
            return Err(Error::invalid_input(
                "a keyword query needs at least one word (letters or digits)",
            ));
        }
        Ok(terms)
    }
}

/// Where a keyword matched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct KeywordMatch {
    /// `name`, `tag`, or `fields.<key>`.
    pub field: String,
    /// The text that matched (the whole name, tag or field value).
    pub text: String,
    /// The query terms found in it.
    pub terms: Vec<String>,
}

/// One asset found by keywords.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct KeywordHit {
    /// The asset.
    pub asset_id: AssetId,
    /// Relevance (BM25; larger is better). Comparable within one result list only: fusion uses
    /// ranks, or scores scaled to the list's best.
    pub score: f32,
    /// The asset's metadata.
    pub meta: RecordMeta,
    /// Where the terms matched.
    pub matches: Vec<KeywordMatch>,
}

impl KeywordHit {
    /// A hit for `asset_id` with `score`; `matches` are computed from `meta` and `terms`.
    pub fn new(asset_id: AssetId, score: f32, meta: RecordMeta, terms: &[String]) -> Self {
        let matches = keyword_matches(&meta, terms);
        KeywordHit {
            asset_id,
            score,
            meta,
            matches,
        }
    }
}

/// Full-text search over assets' names, tags and fields.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait KeywordIndex: Send + Sync {
    /// The best assets for the query's terms (any term may match; more and rarer matches rank
    /// higher), only searchable assets that pass the filter, best first, at most `k`.
    /// `InvalidInput` for a query without terms.
    async fn keyword_search(&self, query: &KeywordQuery) -> Result<Vec<KeywordHit>>;
}

/// The terms of a text: runs of letters and digits, lower-cased, in order, without repeats,
/// at most [`MAX_KEYWORD_TERMS`]. `castle_siege_v3.mp4` gives `castle`, `siege`, `v3`, `mp4`.
///
/// ```
/// assert_eq!(crossmodal_core::keyword_terms("Castle siege!  castle"), vec!["castle", "siege"]);
/// ```
pub fn keyword_terms(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for word in text.split(|c: char| !c.is_alphanumeric()) {
        if word.is_empty() {
            continue;
        }
        let w = word.to_lowercase();
        if !out.contains(&w) {
            out.push(w);
            if out.len() == MAX_KEYWORD_TERMS {
                break;
            }
        }
    }
    out
}

/// Whether `term` matches a word of a text the way the keyword backends match: equal, or a
/// prefix of it for terms of 3 characters or more.
pub(crate) fn term_matches_word(term: &str, word: &str) -> bool {
    word == term || (term.chars().count() >= 3 && word.starts_with(term))
}

/// Which of `terms` a text contains.
fn terms_in(text: &str, terms: &[String]) -> Vec<String> {
    let words = keyword_terms(text);
    terms
        .iter()
        .filter(|t| words.iter().any(|w| term_matches_word(t, w)))
        .cloned()
        .collect()
}

/// Where `terms` occur in `meta`: the name, each tag, each field (key or text value).
pub fn keyword_matches(meta: &RecordMeta, terms: &[String]) -> Vec<KeywordMatch> {
    let mut out = Vec::new();
    let mut push = |field: String, text: &str, found: Vec<String>| {
        if !found.is_empty() {
            out.push(KeywordMatch {
                field,
                text: text.to_string(),
                terms: found,
            });
        }
    };
    if let Some(name) = &meta.name {
        push("name".into(), name, terms_in(name, terms));
    }
    for tag in &meta.tags {
        push("tag".into(), tag, terms_in(tag, terms));
    }
    for (k, v) in &meta.fields {
        let text = v.as_text();
        push(format!("fields.{k}"), &text, terms_in(&text, terms));
    }
    out
}

/// The text of the searchable columns of an asset: name, tags, and fields as `key value`.
pub(crate) fn searchable_text(meta: &RecordMeta) -> (String, String, String) {
    let name = meta.name.clone().unwrap_or_default();
    let tags = meta.tags.join(" ");
    let fields = meta
        .fields
        .iter()
        .map(|(k, v)| format!("{k} {}", v.as_text()))
        .collect::<Vec<_>>()
        .join(" ");
    (name, tags, fields)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::{MediaFormat, MediaKind};

    #[test]
    fn terms_split_names_and_matches_say_where() {
        assert_eq!(
            keyword_terms("castle_siege_v3.mp4"),
            vec!["castle", "siege", "v3", "mp4"]
        );
        assert!(keyword_terms(" -- !").is_empty());
        let meta = RecordMeta::new(MediaKind::Video, MediaFormat::Mp4)
            .name("castle_siege_v3.mp4")
            .tags(["medieval", "Castles"])
            .field("campaign", "siege week");
        let terms = keyword_terms("castle siege");
        let m = keyword_matches(&meta, &terms);
        assert_eq!(m.len(), 3, "{m:?}");
        assert_eq!(m[0].field, "name");
        assert_eq!(m[0].terms, vec!["castle", "siege"]);
        assert_eq!(m[1].field, "tag");
        assert_eq!(m[1].text, "Castles", "prefix: castle matches castles");
        assert_eq!(m[2].field, "fields.campaign");
        assert!(
            !term_matches_word("ca", "castle"),
            "short terms match whole words only"
        );
        assert!(KeywordQuery::new("!!", 5).check().is_err());
        assert!(KeywordQuery::new("castle", 0).check().is_err());
    }
}
