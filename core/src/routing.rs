//! The routing rules: which embedding space to search, for which query and which target kinds.
//!
//! [`RoutingRules`] is a data table a user can inspect and replace, not a `match` buried in the
//! searcher. The defaults follow the founding system, corrected where it was wrong (an audio
//! query searches the audio space, which an audio file has, not the visual one).
//!
//! ```
//! use crossmodal_core::{EmbeddingSpace, MediaKind, ModelInfo, QueryKind, RoutingRules, SearchMode};
//! let rules = RoutingRules::for_model(&ModelInfo::marengo_2_7());
//! let routes = rules.routes(QueryKind::Text, SearchMode::Auto).unwrap();
//! assert_eq!(routes.len(), 3); // images by visual-image, videos by visual-text, audio by audio
//! assert_eq!(routes[1].target_space, EmbeddingSpace::VisualText);
//! assert_eq!(routes[1].target_kinds, vec![MediaKind::Video]);
//! ```

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

use crate::embedding::{EmbeddingSpace, ModelInfo};
use crate::error::{Error, Result};
use crate::media::MediaKind;

/// What the user searches with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QueryKind {
    /// A text description.
    Text,
    /// A reference image.
    Image,
    /// A reference video.
    Video,
    /// A reference audio snippet.
    Audio,
}

impl From<MediaKind> for QueryKind {
    fn from(k: MediaKind) -> Self {
        match k {
            MediaKind::Image => QueryKind::Image,
            MediaKind::Video => QueryKind::Video,
            MediaKind::Audio => QueryKind::Audio,
        }
    }
}

impl fmt::Display for QueryKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            QueryKind::Text => "text",
            QueryKind::Image => "image",
            QueryKind::Video => "video",
            QueryKind::Audio => "audio",
        })
    }
}

/// What aspect of the media the user cares about.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum SearchMode {
    /// The default routes for the query kind.
    #[default]
    Auto,
    /// Visual similarity: colours, shapes, people, scenes.
    Visual,
    /// Content and plot: what happens.
    Semantic,
    /// Background music, sound effects, ambient sound.
    Audio,
    /// Spoken words (Marengo 3.0's transcription space).
    Transcription,
}

impl SearchMode {
    /// All modes.
    pub const ALL: [SearchMode; 5] = [
        SearchMode::Auto,
        SearchMode::Visual,
        SearchMode::Semantic,
        SearchMode::Audio,
        SearchMode::Transcription,
    ];

    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            SearchMode::Auto => "auto",
            SearchMode::Visual => "visual",
            SearchMode::Semantic => "semantic",
            SearchMode::Audio => "audio",
            SearchMode::Transcription => "transcription",
        }
    }
}

impl fmt::Display for SearchMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SearchMode {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(SearchMode::Auto),
            "visual" => Ok(SearchMode::Visual),
            "semantic" => Ok(SearchMode::Semantic),
            "audio" => Ok(SearchMode::Audio),
            "transcription" | "speech" => Ok(SearchMode::Transcription),
            other => Err(Error::invalid_input(format!(
                "unknown search mode {other:?} (auto, visual, semantic, audio, transcription)"
            ))),
        }
    }
}

/// One branch of a search: query vectors of `query_space` (for media queries; a text query has
/// one vector for every space) against the index's `target_space`, restricted to `target_kinds`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    /// Which of a media query's embeddings to search with.
    pub query_space: EmbeddingSpace,
    /// Which space of the index to search.
    pub target_space: EmbeddingSpace,
    /// Which kinds of assets this branch may return (pushed into the index filter).
    pub target_kinds: Vec<MediaKind>,
}

impl Route {
    /// A route searching `space` with query vectors of the same space.
    pub fn same_space(space: EmbeddingSpace, kinds: &[MediaKind]) -> Route {
        Route {
            query_space: space,
            target_space: space,
            target_kinds: kinds.to_vec(),
        }
    }
}

/// The routes for one (query kind, mode) pair.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoutingRule {
    /// The query kind.
    pub query: QueryKind,
    /// The mode.
    pub mode: SearchMode,
    /// Branches searched and merged.
    pub routes: Vec<Route>,
}

/// The routing table. Pairs without a rule are unsupported (a clear error, not empty results).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoutingRules {
    rules: Vec<RoutingRule>,
}

impl RoutingRules {
    /// An empty table; add rules with [`with_rule`](Self::with_rule).
    pub fn empty() -> Self {
        RoutingRules { rules: Vec::new() }
    }

    /// The defaults for a model: the Marengo 2.7 table for a 2.7 model id or a model that yields
    /// a `visual-text` space, otherwise the Marengo 3.0 table (without transcription routes if
    /// the model has no transcription space).
    pub fn for_model(model: &ModelInfo) -> Self {
        let spaces = model.all_spaces();
        if model.is_marengo_2_7() || spaces.contains(&EmbeddingSpace::VisualText) {
            Self::marengo_2_7()
        } else {
            let mut rules = Self::marengo_3_0();
            if !spaces.contains(&EmbeddingSpace::Transcription) {
                rules.rules.retain_mut(|r| {
                    r.routes
                        .retain(|route| route.target_space != EmbeddingSpace::Transcription);
                    !r.routes.is_empty()
                });
            }
            rules
        }
    }

    /// The default table for Marengo Embed 3.0 (`visual`, `audio`, `transcription`).
    pub fn marengo_3_0() -> Self {
        use EmbeddingSpace::{Audio as A, Transcription as T, Visual as V};
        use MediaKind::{Audio, Image, Video};
        let text = |mode, routes| RoutingRule {
            query: QueryKind::Text,
            mode,
            routes,
        };
        let r = Route::same_space;
        let mut rules = vec![
            text(
                SearchMode::Auto,
                vec![r(V, &[Image, Video]), r(A, &[Audio])],
            ),
            text(SearchMode::Visual, vec![r(V, &[Image, Video])]),
            text(
                SearchMode::Semantic,
                vec![r(V, &[Video]), r(T, &[Video, Audio])],
            ),
            text(SearchMode::Audio, vec![r(A, &[Audio, Video])]),
            text(SearchMode::Transcription, vec![r(T, &[Video, Audio])]),
        ];
        rules.extend(Self::media_rules(V, V));
        RoutingRules { rules }
    }

    /// The default table for Marengo Embed 2.7 (`visual-image`, `visual-text`, `audio`).
    pub fn marengo_2_7() -> Self {
        use EmbeddingSpace::{Audio as A, Visual as V, VisualText as VT};
        use MediaKind::{Audio, Image, Video};
        let text = |mode, routes| RoutingRule {
            query: QueryKind::Text,
            mode,
            routes,
        };
        let r = Route::same_space;
        let mut rules = vec![
            text(
                SearchMode::Auto,
                vec![r(V, &[Image]), r(VT, &[Video]), r(A, &[Audio])],
            ),
            text(SearchMode::Visual, vec![r(V, &[Image, Video])]),
            text(SearchMode::Semantic, vec![r(VT, &[Video])]),
            text(SearchMode::Audio, vec![r(A, &[Audio, Video])]),
        ];
        rules.extend(Self::media_rules(V, VT));
        RoutingRules { rules }
    }

    /// Rules for media queries, shared by both tables: `semantic` is the space a video query in
    /// semantic mode searches (2.7: visual-text; 3.0: visual).
    fn media_rules(visual: EmbeddingSpace, semantic: EmbeddingSpace) -> Vec<RoutingRule> {
        use MediaKind::{Audio, Image, Video};
        let audio = EmbeddingSpace::Audio;
        let rule = |query, mode, routes| RoutingRule {
            query,
            mode,
            routes,
        };
        let r = Route::same_space;
        vec![
            rule(
                QueryKind::Image,
                SearchMode::Auto,
                vec![r(visual, &[Image, Video])],
            ),
            rule(
                QueryKind::Image,
                SearchMode::Visual,
                vec![r(visual, &[Image, Video])],
            ),
            rule(
                QueryKind::Video,
                SearchMode::Auto,
                vec![r(visual, &[Image, Video])],
            ),
            rule(
                QueryKind::Video,
                SearchMode::Visual,
                vec![r(visual, &[Image, Video])],
            ),
            rule(
                QueryKind::Video,
                SearchMode::Semantic,
                vec![r(semantic, &[Video])],
            ),
            rule(
                QueryKind::Video,
                SearchMode::Audio,
                vec![r(audio, &[Video, Audio])],
            ),
            rule(
                QueryKind::Audio,
                SearchMode::Auto,
                vec![r(audio, &[Audio, Video])],
            ),
            rule(
                QueryKind::Audio,
                SearchMode::Audio,
                vec![r(audio, &[Audio, Video])],
            ),
        ]
    }

    /// Adds a rule, replacing any rule for the same (query, mode).
    pub fn with_rule(mut self, rule: RoutingRule) -> Self {
        self.rules
            .retain(|r| !(r.query == rule.query && r.mode == rule.mode));
        self.rules.push(rule);
        self
    }

    /// Every rule.
    pub fn rules(&self) -> &[RoutingRule] {
        &self.rules
    }

    /// The routes for a query kind and mode; `Unsupported` when the table has none.
    pub fn routes(&self, query: QueryKind, mode: SearchMode) -> Result<&[Route]> {
        self.rules
            .iter()
            .find(|r| r.query == query && r.mode == mode)
            .map(|r| r.routes.as_slice())
            .ok_or_else(|| {
                let modes: Vec<&str> = self
                    .rules
                    .iter()
                    .filter(|r| r.query == query)
                    .map(|r| r.mode.as_str())
                    .collect();
                let article = match query {
                    QueryKind::Image | QueryKind::Audio => "an",
                    _ => "a",
                };
                Error::unsupported(format!(
                    "no routing rule for {article} {query} query in {mode} mode (supported modes: {})",
                    modes.join(", ")
                ))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use EmbeddingSpace::*;
    use MediaKind::{Audio as KA, Image as KI, Video as KV};

    fn table(
        rules: &RoutingRules,
        q: QueryKind,
        m: SearchMode,
    ) -> Vec<(EmbeddingSpace, Vec<MediaKind>)> {
        rules
            .routes(q, m)
            .unwrap()
            .iter()
            .map(|r| {
                assert_eq!(r.query_space, r.target_space);
                (r.target_space, r.target_kinds.clone())
            })
            .collect()
    }

    /// Every row of DESIGN.md section 5, Marengo 3.0 column.
    #[test]
    fn marengo_3_0_rows() {
        let t = RoutingRules::for_model(&ModelInfo::marengo_3_0());
        use QueryKind as Q;
        use SearchMode as M;
        assert_eq!(
            table(&t, Q::Text, M::Auto),
            vec![(Visual, vec![KI, KV]), (Audio, vec![KA])]
        );
        assert_eq!(table(&t, Q::Text, M::Visual), vec![(Visual, vec![KI, KV])]);
        assert_eq!(
            table(&t, Q::Text, M::Semantic),
            vec![(Visual, vec![KV]), (Transcription, vec![KV, KA])]
        );
        assert_eq!(table(&t, Q::Text, M::Audio), vec![(Audio, vec![KA, KV])]);
        assert_eq!(
            table(&t, Q::Text, M::Transcription),
            vec![(Transcription, vec![KV, KA])]
        );
        for m in [M::Auto, M::Visual] {
            assert_eq!(table(&t, Q::Image, m), vec![(Visual, vec![KI, KV])]);
            assert_eq!(table(&t, Q::Video, m), vec![(Visual, vec![KI, KV])]);
        }
        assert_eq!(table(&t, Q::Video, M::Semantic), vec![(Visual, vec![KV])]);
        assert_eq!(table(&t, Q::Video, M::Audio), vec![(Audio, vec![KV, KA])]);
        for m in [M::Auto, M::Audio] {
            assert_eq!(table(&t, Q::Audio, m), vec![(Audio, vec![KA, KV])]);
        }
    }

    /// Every row of DESIGN.md section 5, Marengo 2.7 column.
    #[test]
    fn marengo_2_7_rows() {
        let t = RoutingRules::for_model(&ModelInfo::marengo_2_7());
        use QueryKind as Q;
        use SearchMode as M;
        assert_eq!(
            table(&t, Q::Text, M::Auto),
            vec![
                (Visual, vec![KI]),
                (VisualText, vec![KV]),
                (Audio, vec![KA])
            ]
        );
        assert_eq!(table(&t, Q::Text, M::Visual), vec![(Visual, vec![KI, KV])]);
        assert_eq!(
            table(&t, Q::Text, M::Semantic),
            vec![(VisualText, vec![KV])]
        );
        assert_eq!(table(&t, Q::Text, M::Audio), vec![(Audio, vec![KA, KV])]);
        let err = t.routes(Q::Text, M::Transcription).unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::Unsupported);
        assert!(err.message().contains("supported modes"));
        for m in [M::Auto, M::Visual] {
            assert_eq!(table(&t, Q::Image, m), vec![(Visual, vec![KI, KV])]);
            assert_eq!(table(&t, Q::Video, m), vec![(Visual, vec![KI, KV])]);
        }
        assert_eq!(
            table(&t, Q::Video, M::Semantic),
            vec![(VisualText, vec![KV])]
        );
        assert_eq!(table(&t, Q::Video, M::Audio), vec![(Audio, vec![KV, KA])]);
        for m in [M::Auto, M::Audio] {
            assert_eq!(table(&t, Q::Audio, m), vec![(Audio, vec![KA, KV])]);
        }
    }

    #[test]
    fn a_2_7_model_without_visual_text_still_gets_the_2_7_table() {
        let model = ModelInfo {
            id: format!("us.{}", ModelInfo::MARENGO_2_7_ID),
            video_spaces: vec![Visual, Audio],
            ..ModelInfo::marengo_2_7()
        };
        let t = RoutingRules::for_model(&model);
        assert_eq!(
            table(&t, QueryKind::Text, SearchMode::Semantic),
            vec![(VisualText, vec![KV])]
        );
    }

    #[test]
    fn unsupported_pairs_are_errors() {
        let t = RoutingRules::marengo_3_0();
        assert!(t.routes(QueryKind::Image, SearchMode::Audio).is_err());
        assert!(t.routes(QueryKind::Audio, SearchMode::Visual).is_err());
    }

    #[test]
    fn rules_can_be_replaced() {
        let t = RoutingRules::marengo_3_0().with_rule(RoutingRule {
            query: QueryKind::Image,
            mode: SearchMode::Auto,
            routes: vec![Route::same_space(Visual, &[KI])],
        });
        assert_eq!(
            table(&t, QueryKind::Image, SearchMode::Auto),
            vec![(Visual, vec![KI])]
        );
    }

    #[test]
    fn model_without_transcription_drops_those_routes() {
        let model = ModelInfo {
            video_spaces: vec![Visual, Audio],
            audio_spaces: vec![Audio],
            ..ModelInfo::marengo_3_0()
        };
        let t = RoutingRules::for_model(&model);
        assert!(
            t.routes(QueryKind::Text, SearchMode::Transcription)
                .is_err()
        );
        assert_eq!(
            table(&t, QueryKind::Text, SearchMode::Semantic),
            vec![(Visual, vec![KV])]
        );
    }

    #[test]
    fn modes_parse() {
        for m in SearchMode::ALL {
            assert_eq!(m.as_str().parse::<SearchMode>().unwrap(), m);
        }
        assert_eq!(
            "speech".parse::<SearchMode>().unwrap(),
            SearchMode::Transcription
        );
        assert!("loud".parse::<SearchMode>().is_err());
    }
}
