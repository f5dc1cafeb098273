//! Metadata filters applied inside vector searches.

use serde::{Deserialize, Serialize};

use super::{FieldCondition, FieldTest, RecordMeta};
use crate::asset::AssetId;
use crate::media::{MediaFormat, MediaKind};

/// Conditions a hit must meet. Empty lists mean "any"; all given conditions must hold.
///
/// ```
/// use crossmodal_core::{Filter, MediaKind};
/// let f = Filter::default().kinds([MediaKind::Video, MediaKind::Image]).tag("castle");
/// assert!(!f.is_empty());
/// assert!(Filter::default().is_empty());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Filter {
    /// Only these media kinds.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kinds: Vec<MediaKind>,
    /// Only these formats.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub formats: Vec<MediaFormat>,
    /// Only these assets.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub asset_ids: Vec<AssetId>,
    /// Only assets carrying at least one of these tags.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags_any: Vec<String>,
    /// Only assets created at or after this time (ms since the Unix epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_from_ms: Option<i64>,
    /// Only assets created before this time (ms since the Unix epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_until_ms: Option<i64>,
    /// Only media at least this long (ms); assets without a length (images) never pass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_duration_ms: Option<u64>,
    /// Only media shorter than this (ms); assets without a length (images) never pass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_duration_ms: Option<u64>,
    /// Conditions on the user's own fields (all must hold).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<FieldCondition>,
}

impl Filter {
    /// Whether the filter lets everything through.
    pub fn is_empty(&self) -> bool {
        self.kinds.is_empty()
            && self.formats.is_empty()
            && self.asset_ids.is_empty()
            && self.tags_any.is_empty()
            && self.created_from_ms.is_none()
            && self.created_until_ms.is_none()
            && self.min_duration_ms.is_none()
            && self.max_duration_ms.is_none()
            && self.fields.is_empty()
    }

    /// Whether the filter has no condition other than its kind list.
    ///
    /// ```
    /// use crossmodal_core::{Filter, MediaKind};
    /// assert!(Filter::default().kinds([MediaKind::Image]).is_empty_except_kinds());
    /// assert!(!Filter::default().tag("castle").is_empty_except_kinds());
    /// ```
    pub fn is_empty_except_kinds(&self) -> bool {
        Filter {
            kinds: Vec::new(),
            ..self.clone()
        }
        .is_empty()
    }

    /// Restricts to these kinds (replacing any earlier kinds).
    pub fn kinds(mut self, kinds: impl IntoIterator<Item = MediaKind>) -> Self {
        self.kinds = kinds.into_iter().collect();
        self
    }

    /// Restricts to these formats.
    pub fn formats(mut self, formats: impl IntoIterator<Item = MediaFormat>) -> Self {
        self.formats = formats.into_iter().collect();
        self
    }

    /// Restricts to these assets.
    pub fn asset_ids(mut self, ids: impl IntoIterator<Item = AssetId>) -> Self {
        self.asset_ids = ids.into_iter().collect();
        self
    }

    /// Adds a tag (a hit needs at least one of the tags).
    pub fn tag(mut self, tag: impl Into<String>) -> Self {
        self.tags_any.push(tag.into());
        self
    }

    /// Restricts to assets created in `[from_ms, until_ms)`.
    pub fn created_between(mut self, from_ms: Option<i64>, until_ms: Option<i64>) -> Self {
        self.created_from_ms = from_ms;
        self.created_until_ms = until_ms;
        self
    }

    /// Restricts to media whose length lies in `[min_ms, max_ms)`.
    pub fn duration_between(mut self, min_ms: Option<u64>, max_ms: Option<u64>) -> Self {
        self.min_duration_ms = min_ms;
        self.max_duration_ms = max_ms;
        self
    }

    /// Adds a condition on a user field.
    ///
    /// ```
    /// use crossmodal_core::{FieldTest, Filter, MediaFormat, MediaKind, RecordMeta};
    /// let f = Filter::default().field("campaign", FieldTest::In(vec!["summer".into(), "spring".into()]));
    /// let meta = RecordMeta::new(MediaKind::Video, MediaFormat::Mp4).field("campaign", "summer");
    /// assert!(f.matches_meta(&meta));
    /// assert!(!f.matches_meta(&RecordMeta::new(MediaKind::Video, MediaFormat::Mp4)));
    /// ```
    pub fn field(mut self, key: impl Into<String>, test: FieldTest) -> Self {
        self.fields.push(FieldCondition {
            key: key.into(),
            test,
        });
        self
    }

    /// The intersection of this filter's kinds with `kinds`: what a route may search when a
    /// user filter and a route's targets both restrict kinds. `None` if it is empty (nothing can
    /// match).
    pub fn restrict_kinds(&self, kinds: &[MediaKind]) -> Option<Filter> {
        let merged: Vec<MediaKind> = if self.kinds.is_empty() {
            kinds.to_vec()
        } else if kinds.is_empty() {
            self.kinds.clone()
        } else {
            self.kinds
                .iter()
                .copied()
                .filter(|k| kinds.contains(k))
                .collect()
        };
        if merged.is_empty() && !(self.kinds.is_empty() && kinds.is_empty()) {
            return None;
        }
        Some(Filter {
            kinds: merged,
            ..self.clone()
        })
    }

    /// Checks the field conditions: well-formed names (they become field paths in remote
    /// indexes), non-empty `In` lists, finite numbers, range bounds of one type.
    pub fn check(&self) -> crate::Result<()> {
        fn check_test(key: &str, test: &FieldTest) -> crate::Result<()> {
            let bad = |m: &str| crate::Error::invalid_input(format!("filter on field {key}: {m}"));
            match test {
                FieldTest::Eq(v) => super::check_field(key, v),
                FieldTest::In(vs) => {
                    if vs.is_empty() {
                        return Err(bad("an empty `in` list matches nothing"));
                    }
                    vs.iter().try_for_each(|v| super::check_field(key, v))
                }
                FieldTest::Range { gte, lt } => {
                    for v in gte.iter().chain(lt.iter()) {
                        super::check_field(key, v)?;
                        if matches!(v, super::FieldValue::Bool(_)) {
                            return Err(bad("a range needs numbers, times or text"));
                        }
                    }
                    match (gte, lt) {
                        (None, None) => Err(bad("a range needs a bound")),
                        (Some(a), Some(b))
                            if std::mem::discriminant(a) != std::mem::discriminant(b) =>
                        {
                            Err(bad("range bounds of different types"))
                        }
                        _ => Ok(()),
                    }
                }
                FieldTest::Exists => super::check_field(key, &super::FieldValue::Bool(true)),
                FieldTest::Not(inner) => check_test(key, inner),
            }
        }
        self.fields
            .iter()
            .try_for_each(|c| check_test(&c.key, &c.test))
    }

    /// Whether a record with `asset` and `meta` passes the filter.
    pub fn matches(&self, asset: &AssetId, meta: &RecordMeta) -> bool {
        (self.asset_ids.is_empty() || self.asset_ids.contains(asset)) && self.matches_meta(meta)
    }

    /// Whether `meta` passes every condition but the asset ids.
    pub fn matches_meta(&self, meta: &RecordMeta) -> bool {
        (self.kinds.is_empty() || self.kinds.contains(&meta.kind))
            && (self.formats.is_empty() || self.formats.contains(&meta.format))
            && (self.tags_any.is_empty() || self.tags_any.iter().any(|t| meta.tags.contains(t)))
            && self
                .created_from_ms
                .is_none_or(|from| meta.created_at_ms >= from)
            && self
                .created_until_ms
                .is_none_or(|until| meta.created_at_ms < until)
            && self
                .min_duration_ms
                .is_none_or(|min| meta.duration_ms.is_some_and(|d| d >= min))
            && self
                .max_duration_ms
                .is_none_or(|max| meta.duration_ms.is_some_and(|d| d < max))
            && self
                .fields
                .iter()
                .all(|c| c.test.passes(meta.fields.get(&c.key)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(kind: MediaKind, format: MediaFormat, tags: &[&str], t: i64) -> RecordMeta {
        RecordMeta::new(kind, format)
            .tags(tags.iter().copied())
            .created_at_ms(t)
    }

    #[test]
    fn every_condition_applies() {
        let id = AssetId::from_content(b"a");
        let other = AssetId::from_content(b"b");
        let m = meta(MediaKind::Video, MediaFormat::Mp4, &["castle"], 100);
        assert!(Filter::default().matches(&id, &m));
        assert!(Filter::default().kinds([MediaKind::Video]).matches(&id, &m));
        assert!(!Filter::default().kinds([MediaKind::Image]).matches(&id, &m));
        assert!(
            !Filter::default()
                .formats([MediaFormat::Mov])
                .matches(&id, &m)
        );
        assert!(!Filter::default().asset_ids([other]).matches(&id, &m));
        assert!(Filter::default().tag("x").tag("castle").matches(&id, &m));
        assert!(!Filter::default().tag("x").matches(&id, &m));
        assert!(
            Filter::default()
                .created_between(Some(100), Some(101))
                .matches(&id, &m)
        );
        assert!(
            !Filter::default()
                .created_between(None, Some(100))
                .matches(&id, &m)
        );
    }

    #[test]
    fn durations_and_fields_apply() {
        let id = AssetId::from_content(b"a");
        let m = meta(MediaKind::Video, MediaFormat::Mp4, &[], 0)
            .duration_ms(30_000)
            .field("campaign", "summer")
            .field("budget", 1200.0);
        let image = meta(MediaKind::Image, MediaFormat::Png, &[], 0);
        let long = Filter::default().duration_between(Some(20_000), None);
        assert!(long.matches(&id, &m) && !long.matches(&id, &image));
        assert!(
            !Filter::default()
                .duration_between(None, Some(30_000))
                .matches(&id, &m)
        );
        let f = Filter::default()
            .field("campaign", FieldTest::Eq("summer".into()))
            .field(
                "budget",
                FieldTest::Range {
                    gte: Some(1000.0.into()),
                    lt: None,
                },
            );
        assert!(f.matches(&id, &m) && !f.is_empty());
        assert!(
            !Filter::default()
                .field("campaign", FieldTest::Not(Box::new(FieldTest::Exists)))
                .matches(&id, &m)
        );
        assert!(
            Filter::default()
                .field("missing", FieldTest::Not(Box::new(FieldTest::Exists)))
                .matches(&id, &m)
        );
    }

    #[test]
    fn restrict_kinds_intersects() {
        let f = Filter::default().kinds([MediaKind::Image, MediaKind::Video]);
        assert_eq!(
            f.restrict_kinds(&[MediaKind::Video, MediaKind::Audio])
                .unwrap()
                .kinds,
            vec![MediaKind::Video]
        );
        assert!(f.restrict_kinds(&[MediaKind::Audio]).is_none());
        assert_eq!(
            Filter::default()
                .restrict_kinds(&[MediaKind::Audio])
                .unwrap()
                .kinds,
            vec![MediaKind::Audio]
        );
    }
}

/// Rows per media kind, kept by an index so that a kind filter admitting every kind the index
/// holds (what a searcher route targeting images and videos sends to a space of images and
/// videos) is skipped instead of checked row by row.
///
/// ```
/// use crossmodal_core::{KindCounts, MediaKind};
/// let mut counts = KindCounts::default();
/// counts.add(MediaKind::Image);
/// counts.add(MediaKind::Video);
/// assert!(counts.all_admitted_by(&[MediaKind::Video, MediaKind::Image]));
/// assert!(counts.all_admitted_by(&[])); // no kind list admits every kind
/// assert!(!counts.all_admitted_by(&[MediaKind::Image]));
/// counts.remove(MediaKind::Video);
/// assert!(counts.all_admitted_by(&[MediaKind::Image]));
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KindCounts {
    image: u64,
    video: u64,
    audio: u64,
}

impl KindCounts {
    fn slot(&mut self, kind: MediaKind) -> &mut u64 {
        match kind {
            MediaKind::Image => &mut self.image,
            MediaKind::Video => &mut self.video,
            MediaKind::Audio => &mut self.audio,
        }
    }

    /// Counts one row of `kind`.
    pub fn add(&mut self, kind: MediaKind) {
        *self.slot(kind) += 1;
    }

    /// Uncounts one row of `kind` (never below zero).
    pub fn remove(&mut self, kind: MediaKind) {
        let n = self.slot(kind);
        *n = n.saturating_sub(1);
    }

    /// Rows of `kind`.
    pub fn get(&self, kind: MediaKind) -> u64 {
        match kind {
            MediaKind::Image => self.image,
            MediaKind::Video => self.video,
            MediaKind::Audio => self.audio,
        }
    }

    /// Whether a filter's kind list (empty: every kind) admits every kind that has rows.
    pub fn all_admitted_by(&self, kinds: &[MediaKind]) -> bool {
        kinds.is_empty()
            || MediaKind::ALL
                .iter()
                .all(|k| self.get(*k) == 0 || kinds.contains(k))
    }
}
