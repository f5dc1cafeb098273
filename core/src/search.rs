//! `CrossModalSearcher`: embed the query, run the routes, fuse, group by asset, rank.

use bytes::Bytes;
use futures::future::try_join_all;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use crate::asset::AssetId;
use crate::cache::EmbeddingCache;
use crate::catalog::AssetCatalog;
use crate::embedder::CachedEmbedder;
use crate::embedding::{
    Embedding, EmbeddingProvider, EmbeddingSpace, MediaContent, MediaInput, Segment, check_text,
};
use crate::error::{Error, ErrorKind, Result};
use crate::index::{Filter, MAX_K, RecordMeta, VectorIndex, VectorQuery};
use crate::keywords::{KeywordHit, KeywordIndex, KeywordMatch, KeywordQuery};
use crate::media::{MediaFormat, MediaKind, MediaLimits, ValidatedMedia, validate_media};
use crate::query_cache::{QueryCache, QueryCacheConfig, QueryEmbedding, QueryKey};
use crate::retry::RetryPolicy;
use crate::routing::{QueryKind, Route, RoutingRules, SearchMode};
use crate::store::{MediaRef, MediaStore};
use crate::vector::normalized;

mod cursor;
mod ranking;

use cursor::{Fingerprint, PageCursor, asset_tag};
pub use ranking::DEFAULT_KEYWORD_WEIGHT;
use ranking::{FoundClip, RankSpec, RouteAsset, RouteFound};

/// What to search with.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum QueryInput {
    /// A text description.
    Text(String),
    /// An uploaded reference file (validated like an ingest).
    Media {
        /// The file's bytes.
        bytes: Bytes,
        /// Its name, for error messages.
        file_name: Option<String>,
    },
    /// An asset already in the library (its embeddings come from the cache when present).
    Asset(AssetId),
    /// A composed query: a reference image and a text that modifies it ("this character, but
    /// at night"), embedded together into one vector and routed like an image query.
    TextImage {
        /// The text.
        text: String,
        /// The image's bytes (validated like an ingest; must be an image).
        image: Bytes,
        /// The image's name, for error messages.
        file_name: Option<String>,
    },
}

/// How results of several routes are merged.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "method")]
#[non_exhaustive]
pub enum Fusion {
    /// Rank by the best raw cosine across routes.
    #[default]
    Cosine,
    /// Reciprocal-rank fusion: sum of `1 / (k0 + rank)` over routes. Raw cosines of different
    /// spaces are not on one scale; RRF compares ranks instead.
    ReciprocalRank {
        /// The damping constant (60 in the original paper).
        k0: f32,
    },
    /// For queries with keywords: `(1 - w) * max(cosine, 0) + w * s / (s + 1)`, `s` the
    /// keyword relevance (BM25, saturated below 1). Scores depend on the asset alone, so they
    /// compare across pages and searches. [`Fusion::Cosine`] with keywords is this with
    /// [`DEFAULT_KEYWORD_WEIGHT`]; without keywords it is [`Fusion::Cosine`].
    Weighted {
        /// `w`, in [0, 1].
        keyword_weight: f32,
    },
}

/// How hits are grouped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "by")]
#[non_exhaustive]
pub enum Grouping {
    /// One hit per asset with its best clip ([`SearchHit::best_segment`]) and its best match per
    /// route ([`SearchHit::matches`]).
    #[default]
    Asset,
    /// One hit per asset carrying every matching clip ([`SearchHit::clips`], best first), each
    /// with its time range and score: "every moment a knight appears".
    Clips {
        /// Clips listed per asset, at most (the count of all is [`SearchHit::clip_count`]).
        clips_per_asset: usize,
        /// Merge overlapping or touching clips of one asset into one time range (its score the
        /// best of them).
        merge_adjacent: bool,
    },
}

impl Grouping {
    /// Every matching clip, up to `clips_per_asset` per asset, adjacent clips kept apart.
    pub fn clips(clips_per_asset: usize) -> Self {
        Grouping::Clips {
            clips_per_asset,
            merge_adjacent: false,
        }
    }

    /// Every matching clip, adjacent and overlapping ones merged into one time range.
    pub fn merged_clips(clips_per_asset: usize) -> Self {
        Grouping::Clips {
            clips_per_asset,
            merge_adjacent: true,
        }
    }
}

/// How hits are ordered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ResultOrder {
    /// By score, best first.
    #[default]
    BestScore,
    /// By the number of matching clips (after merging), then by score: the assets with the most
    /// matching moments first.
    ClipCount,
}

/// One matching clip of an asset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ClipMatch {
    /// The space it matched in.
    pub space: EmbeddingSpace,
    /// Its time range (`None`: the whole asset, an image).
    pub segment: Option<Segment>,
    /// Its cosine similarity to the query.
    pub cosine: f32,
}

/// How an asset matched the keywords of a query.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct KeywordScore {
    /// Full-text relevance (BM25; higher is better).
    pub score: f32,
    /// Rank among the keyword matches (0 = best).
    pub rank: usize,
    /// Where the words matched (name, a tag, a field), for marking them.
    pub matches: Vec<KeywordMatch>,
}

/// How a media query with several segment vectors (a 30 s reference clip) is searched.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum QuerySegments {
    /// One search per query segment; an asset's score is its best match to any of them.
    #[default]
    Each,
    /// One search with the mean of the (normalised) segment vectors.
    Pooled,
}

/// A search request. Build with [`Query::text`], [`Query::media`] or [`Query::asset`].
///
/// ```
/// use crossmodal_core::{MediaKind, Query, SearchMode};
/// let q = Query::text("knights storming a castle")
///     .k(10)
///     .mode(SearchMode::Semantic)
///     .kinds([MediaKind::Video])
///     .min_score(0.1);
/// assert_eq!(q.k, 10);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    /// What to search with.
    pub input: QueryInput,
    /// Which aspect to match.
    pub mode: SearchMode,
    /// Only return these kinds (empty: whatever the routes return).
    pub kinds: Vec<MediaKind>,
    /// How many assets to return (1..=1000).
    pub k: usize,
    /// Metadata conditions, pushed into every index query.
    pub filter: Filter,
    /// Drop assets whose best cosine is below this.
    pub min_score: Option<f32>,
    /// How routes are merged.
    pub fusion: Fusion,
    /// Each route asks the index for `k * oversample` vectors (several segments of one asset
    /// compete for places before grouping).
    pub oversample: usize,
    /// How multi-segment media queries are searched.
    pub segments: QuerySegments,
    /// Whether a media query may return the query asset itself (default false).
    pub include_self: bool,
    /// How hits are grouped (default: one per asset).
    pub grouping: Grouping,
    /// How hits are ordered (default: by score).
    pub order: ResultOrder,
    /// Whether a text query also matches names, tags and fields by full-text relevance (needs
    /// a searcher with a [`KeywordIndex`]; ignored for media queries).
    pub keywords: bool,
    /// Examples to move away from (assets, files or texts): each route searches with
    /// `2q - n` (normalised), `q` the query vector and `n` the mean of the examples' vectors
    /// in the route's space, as Qdrant's `average_vector` recommendation does; asset and file
    /// examples are never returned.
    pub negatives: Vec<QueryInput>,
    /// Minimum cosine per searched space, on top of `min_score`.
    pub route_min_scores: BTreeMap<EmbeddingSpace, f32>,
    /// Weight of each space's matches when fusing (absent: 1, no preference): the cosine fusion
    /// ranks by the best `weight x cosine`, RRF sums `weight / (k0 + rank)`. Marengo 3.0 embeds
    /// every modality into one space, so cosines of its spaces are on one scale and equal
    /// weights are the default; lower the audio weight, say, when sound effects crowd a
    /// picture search.
    pub space_weights: BTreeMap<EmbeddingSpace, f32>,
    /// Continue a search: the `next_cursor` of the previous page (same query otherwise).
    pub cursor: Option<String>,
    /// Pages the pages after the first read candidates for (default 5). The first page costs
    /// a single page (each route asks the index for `k * oversample` vectors, more only when
    /// that does not yield `k` assets); every later page of one search asks for the same
    /// `k * oversample * page_depth` vectors, ranks them the same way and leaves out the first
    /// page's assets, so pages follow one order.
    pub page_depth: usize,
}

impl Query {
    fn new(input: QueryInput) -> Self {
        Query {
            input,
            mode: SearchMode::Auto,
            kinds: Vec::new(),
            k: 10,
            filter: Filter::default(),
            min_score: None,
            fusion: Fusion::Cosine,
            oversample: 4,
            segments: QuerySegments::Each,
            include_self: false,
            grouping: Grouping::Asset,
            order: ResultOrder::BestScore,
            keywords: false,
            negatives: Vec::new(),
            route_min_scores: BTreeMap::new(),
            space_weights: BTreeMap::new(),
            cursor: None,
            page_depth: DEFAULT_PAGE_DEPTH,
        }
    }

    /// Search by a text description.
    pub fn text(text: impl Into<String>) -> Self {
        Query::new(QueryInput::Text(text.into()))
    }

    /// Search by an uploaded reference file.
    pub fn media(bytes: impl Into<Bytes>) -> Self {
        Query::new(QueryInput::Media {
            bytes: bytes.into(),
            file_name: None,
        })
    }

    /// Search by an asset already in the library.
    pub fn asset(asset: AssetId) -> Self {
        Query::new(QueryInput::Asset(asset))
    }

    /// Search by a reference image modified by a text ("this character, but at night"): the
    /// provider embeds both into one vector
    /// ([`EmbeddingProvider::embed_text_image`],
    /// Marengo 3.0's `text_image`), searched like an image query (same routes, same modes).
    ///
    /// ```
    /// use crossmodal_core::{Query, QueryInput};
    /// let q = Query::text_image("the same knight, but at night", vec![0x89, b'P', b'N', b'G']).k(5);
    /// assert!(matches!(q.input, QueryInput::TextImage { .. }));
    /// ```
    pub fn text_image(text: impl Into<String>, image: impl Into<Bytes>) -> Self {
        Query::new(QueryInput::TextImage {
            text: text.into(),
            image: image.into(),
            file_name: None,
        })
    }

    /// Sets the file name of a media (or composed) query's file (for messages).
    pub fn file_name(mut self, name: impl Into<String>) -> Self {
        if let QueryInput::Media { file_name, .. } | QueryInput::TextImage { file_name, .. } =
            &mut self.input
        {
            *file_name = Some(name.into());
        }
        self
    }

    /// Sets the number of assets returned.
    pub fn k(mut self, k: usize) -> Self {
        self.k = k;
        self
    }

    /// Sets the mode.
    pub fn mode(mut self, mode: SearchMode) -> Self {
        self.mode = mode;
        self
    }

    /// Restricts the kinds returned.
    pub fn kinds(mut self, kinds: impl IntoIterator<Item = MediaKind>) -> Self {
        self.kinds = kinds.into_iter().collect();
        self
    }

    /// Sets the metadata filter.
    pub fn filter(mut self, filter: Filter) -> Self {
        self.filter = filter;
        self
    }

    /// Drops results whose best cosine is below `min`.
    pub fn min_score(mut self, min: f32) -> Self {
        self.min_score = Some(min);
        self
    }

    /// Sets the fusion method.
    pub fn fusion(mut self, fusion: Fusion) -> Self {
        self.fusion = fusion;
        self
    }

    /// Sets the per-route oversampling factor (at least 1).
    pub fn oversample(mut self, factor: usize) -> Self {
        self.oversample = factor.max(1);
        self
    }

    /// Sets how multi-segment media queries are searched.
    pub fn segments(mut self, segments: QuerySegments) -> Self {
        self.segments = segments;
        self
    }

    /// Lets a media query return the query asset itself.
    pub fn include_self(mut self, include: bool) -> Self {
        self.include_self = include;
        self
    }

    /// Sets the grouping ([`Grouping::clips`]: every matching clip).
    pub fn grouping(mut self, grouping: Grouping) -> Self {
        self.grouping = grouping;
        self
    }

    /// Sets the order.
    pub fn order(mut self, order: ResultOrder) -> Self {
        self.order = order;
        self
    }

    /// Also matches names, tags and fields by full-text relevance (text queries).
    pub fn keywords(mut self, on: bool) -> Self {
        self.keywords = on;
        self
    }

    /// Adds an example to move away from.
    pub fn negative(mut self, example: QueryInput) -> Self {
        self.negatives.push(example);
        self
    }

    /// Adds a stored asset as an example to move away from.
    pub fn negative_asset(self, asset: AssetId) -> Self {
        self.negative(QueryInput::Asset(asset))
    }

    /// Adds a text as an example to move away from ("no text on screen").
    pub fn negative_text(self, text: impl Into<String>) -> Self {
        self.negative(QueryInput::Text(text.into()))
    }

    /// Drops clips of `space` whose cosine is below `min`.
    pub fn min_score_in(mut self, space: EmbeddingSpace, min: f32) -> Self {
        self.route_min_scores.insert(space, min);
        self
    }

    /// Weighs the matches of `space` by `weight` (0 to 10) when fusing.
    pub fn space_weight(mut self, space: EmbeddingSpace, weight: f32) -> Self {
        self.space_weights.insert(space, weight);
        self
    }

    /// Continues a search from the `next_cursor` of its previous page.
    pub fn cursor(mut self, cursor: impl Into<String>) -> Self {
        self.cursor = Some(cursor.into());
        self
    }

    /// Sets how many pages' worth of candidates the pages after the first read (1..=100).
    pub fn page_depth(mut self, pages: usize) -> Self {
        self.page_depth = pages;
        self
    }

    /// The fingerprint a cursor of this query carries: everything but the cursor.
    fn fingerprint(&self) -> u64 {
        fn input(f: &mut Fingerprint, label: &str, q: &QueryInput) {
            match q {
                QueryInput::Text(t) => f.part(label, t.as_bytes()),
                QueryInput::Media { bytes, .. } => f.part(label, bytes),
                QueryInput::Asset(a) => f.part(label, a.as_str().as_bytes()),
                QueryInput::TextImage { text, image, .. } => {
                    f.part(label, text.as_bytes()).part(label, image)
                }
            };
        }
        let mut f = Fingerprint::default();
        input(&mut f, "input", &self.input);
        for n in &self.negatives {
            input(&mut f, "negative", n);
        }
        f.debug("mode", &self.mode)
            .debug("kinds", &self.kinds)
            .debug("k", &self.k)
            .debug("filter", &self.filter)
            .debug("min_score", &self.min_score)
            .debug("fusion", &self.fusion)
            .debug("oversample", &self.oversample)
            .debug("segments", &self.segments)
            .debug("include_self", &self.include_self)
            .debug("grouping", &self.grouping)
            .debug("order", &self.order)
            .debug("keywords", &self.keywords)
            .debug("route_min_scores", &self.route_min_scores)
            .debug("space_weights", &self.space_weights)
            .debug("page_depth", &self.page_depth);
        f.finish()
    }
}

/// Largest `k` a search accepts.
pub const MAX_RESULTS: usize = 1000;

/// Distinct assets the routes found, leaving out `excluded`.
fn distinct_assets(results: &[(Vec<RouteAsset>, bool)], excluded: &HashSet<AssetId>) -> usize {
    results
        .iter()
        .flat_map(|(assets, _)| assets.iter().map(|a| &a.asset_id))
        .filter(|id| !excluded.contains(*id))
        .collect::<HashSet<_>>()
        .len()
}

/// Default [`Query::page_depth`].
pub const DEFAULT_PAGE_DEPTH: usize = 5;

/// Largest [`Query::page_depth`].
pub const MAX_PAGE_DEPTH: usize = 100;

/// One route's match for an asset: which space and clip matched, how well, at which rank.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RouteMatch {
    /// The index space searched.
    pub space: EmbeddingSpace,
    /// The best-matching clip of the asset in that space.
    pub segment: Option<Segment>,
    /// Cosine similarity of that clip.
    pub cosine: f32,
    /// The asset's rank within the route (0 = best).
    pub rank: usize,
}

/// One result: an asset, why it matched, and where to get it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchHit {
    /// The asset.
    pub asset_id: AssetId,
    /// The ranking score: the best cosine ([`Fusion::Cosine`]) or the fused RRF score.
    pub score: f32,
    /// The best raw cosine similarity over all routes, in [-1, 1].
    pub cosine: f32,
    /// The space of the best match.
    pub space: EmbeddingSpace,
    /// The clip of the best match ("12 s to 18 s of castle.mp4"); `None` for images.
    pub best_segment: Option<Segment>,
    /// Every route that found the asset.
    pub matches: Vec<RouteMatch>,
    /// With [`Grouping::Clips`]: the matching clips, best first, at most `clips_per_asset`.
    #[serde(default)]
    pub clips: Vec<ClipMatch>,
    /// How many distinct clips matched (after merging, in any grouping).
    #[serde(default)]
    pub clip_count: usize,
    /// How the asset matched the query's keywords (`None`: not by keywords).
    #[serde(default)]
    pub keywords: Option<KeywordScore>,
    /// Kind, format, tags and time of the asset, from the index.
    pub meta: RecordMeta,
    /// Where the original is stored (when the searcher has a catalog).
    pub media: Option<MediaRef>,
    /// The name the asset was ingested under (when the searcher has a catalog).
    pub display_name: Option<String>,
}

impl SearchHit {
    /// The asset's kind.
    pub fn kind(&self) -> MediaKind {
        self.meta.kind
    }

    /// The asset's format.
    pub fn format(&self) -> MediaFormat {
        self.meta.format
    }

    /// The original's URI, if known.
    pub fn uri(&self) -> Option<&url::Url> {
        self.media.as_ref().map(|m| &m.uri)
    }
}

/// What happened to one route.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "status")]
pub enum RouteOutcome {
    /// Searched; `assets` distinct assets came back.
    Searched {
        /// Distinct assets found.
        assets: usize,
    },
    /// Skipped: the index holds no vectors in the route's space.
    NoVectorsInIndex,
    /// Skipped: the query yields no embedding of the route's query space (a silent video
    /// searched in audio mode).
    QueryHasNoVectors,
    /// Skipped: the requested kinds and the route's targets do not overlap.
    KindsExcluded,
}

/// A route and what happened to it, so a UI can explain empty results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RouteReport {
    /// The route.
    pub route: Route,
    /// Its outcome.
    pub outcome: RouteOutcome,
}

/// The answer to a [`Query`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchResults {
    /// Ranked hits, best first, at most `k`.
    pub hits: Vec<SearchHit>,
    /// The query's kind.
    pub query_kind: QueryKind,
    /// The mode used.
    pub mode: SearchMode,
    /// Every route of the rule and what happened to it.
    pub routes: Vec<RouteReport>,
    /// The cursor of the next page (`None`: this is the last one). Pages of one search
    /// follow one order with no repeats and no gaps while the index does not change: the
    /// first page's assets, then the later pages' window ranked without them (see
    /// [`Query::page_depth`]). After a change, a page reflects the new state (an asset added
    /// or removed between two pages can shift the boundary by a place: one repeat or one gap),
    /// and nothing fails.
    #[serde(default)]
    pub next_cursor: Option<String>,
}

impl SearchResults {
    /// Routes that could not run because the index has no vectors in their space.
    pub fn missing_spaces(&self) -> Vec<EmbeddingSpace> {
        self.routes
            .iter()
            .filter(|r| r.outcome == RouteOutcome::NoVectorsInIndex)
            .map(|r| r.route.target_space)
            .collect()
    }
}

impl IntoIterator for SearchResults {
    type Item = SearchHit;
    type IntoIter = std::vec::IntoIter<SearchHit>;
    fn into_iter(self) -> Self::IntoIter {
        self.hits.into_iter()
    }
}

/// Query vectors: one per space for media; a single text vector that every space is searched
/// with.
enum QueryVectors {
    Text(Vec<f32>),
    Media {
        asset_id: AssetId,
        by_space: HashMap<EmbeddingSpace, Vec<Vec<f32>>>,
    },
}

impl QueryVectors {
    fn for_space(&self, space: EmbeddingSpace, segments: QuerySegments) -> Vec<Vec<f32>> {
        match self {
            QueryVectors::Text(v) => vec![v.clone()],
            QueryVectors::Media { by_space, .. } => {
                let Some(vectors) = by_space.get(&space) else {
                    return Vec::new();
                };
                match segments {
                    QuerySegments::Each => vectors.clone(),
                    QuerySegments::Pooled => vec![mean_direction(vectors)],
                }
            }
        }
    }

    fn self_asset(&self) -> Option<&AssetId> {
        match self {
            QueryVectors::Text(_) => None,
            QueryVectors::Media { asset_id, .. } => Some(asset_id),
        }
    }
}

fn mean_direction(vectors: &[Vec<f32>]) -> Vec<f32> {
    let dim = vectors.first().map_or(0, Vec::len);
    let mut sum = vec![0f32; dim];
    for v in vectors {
        for (s, x) in sum.iter_mut().zip(normalized(v)) {
            *s += x;
        }
    }
    normalized(&sum)
}

/// Runs cross-modal searches: embeds the query, applies the routing rules, searches each route's
/// space with its kind filter pushed into the index, groups by asset, fuses and ranks.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use crossmodal_core::*;
/// use std::sync::Arc;
///
/// // A toy provider for the example: a real one is `crossmodal_bedrock::MarengoProvider`.
/// struct Toy(ModelInfo);
/// #[async_trait::async_trait]
/// impl EmbeddingProvider for Toy {
///     fn model(&self) -> &ModelInfo { &self.0 }
///     async fn embed_text(&self, _: &str) -> Result<Vec<f32>> { Ok(vec![1.0, 0.0]) }
///     async fn embed_media(&self, _: &MediaInput) -> Result<Vec<Embedding>> { unreachable!() }
/// }
/// let model = ModelInfo { dimension: 2, ..ModelInfo::marengo_3_0() };
/// let index = Arc::new(FlatIndex::new(IndexSpec::for_model(&model)));
/// let meta = RecordMeta::new(MediaKind::Image, MediaFormat::Png);
/// index.upsert(vec![VectorRecord { asset_id: AssetId::from_content(b"img"), space: EmbeddingSpace::Visual,
///     seq: 0, segment: None, vector: vec![0.9, 0.1], meta }]).await.unwrap();
/// let searcher = CrossModalSearcher::new(Arc::new(Toy(model)), index);
/// let results = searcher.search(&Query::text("a red square")).await.unwrap();
/// assert_eq!(results.hits.len(), 1);
/// assert_eq!(results.missing_spaces(), vec![EmbeddingSpace::Audio]); // no audio indexed yet
/// # });
/// ```
///
/// Query embeddings are cached in a bounded in-memory cache ([`QueryCacheConfig`], on by
/// default): the same text, or the same reference file by content hash, searched again in any
/// mode costs no provider call (Marengo takes seconds per text). A query by a stored asset
/// takes its vectors from the embedding cache when it holds them, without reading the original.
#[derive(Clone)]
pub struct CrossModalSearcher {
    embedder: CachedEmbedder,
    index: Arc<dyn VectorIndex>,
    catalog: Option<Arc<dyn AssetCatalog>>,
    store: Option<Arc<dyn MediaStore>>,
    rules: RoutingRules,
    limits: MediaLimits,
    query_cache: Option<QueryCache>,
    keyword_index: Option<Arc<dyn KeywordIndex>>,
}

impl std::fmt::Debug for CrossModalSearcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CrossModalSearcher")
            .field("embedder", &self.embedder)
            .field("index", &self.index.spec())
            .field("catalog", &self.catalog.is_some())
            .field("store", &self.store.is_some())
            .field("query_cache", &self.query_cache)
            .field("keywords", &self.keyword_index.is_some())
            .finish()
    }
}

impl CrossModalSearcher {
    /// A searcher over `index` with `provider`, the model's default routing rules, no cache and
    /// no catalog.
    pub fn new(provider: Arc<dyn EmbeddingProvider>, index: Arc<dyn VectorIndex>) -> Self {
        Self::with_embedder(
            CachedEmbedder::new(provider, None, RetryPolicy::default()),
            index,
        )
    }

    /// A searcher that shares an embedder (cache and retry policy) with an ingestor.
    pub fn with_embedder(embedder: CachedEmbedder, index: Arc<dyn VectorIndex>) -> Self {
        let rules = RoutingRules::for_model(embedder.model());
        let query_cache = query_cache_for(&embedder, &QueryCacheConfig::default());
        CrossModalSearcher {
            embedder,
            index,
            catalog: None,
            store: None,
            rules,
            limits: MediaLimits::default(),
            query_cache,
            keyword_index: None,
        }
    }

    /// Replaces the query-embedding cache (default: [`QueryCacheConfig::default`], 32 MiB of
    /// vectors); [`QueryCacheConfig::disabled`] turns it off.
    pub fn query_cache(mut self, config: QueryCacheConfig) -> Self {
        self.query_cache = query_cache_for(&self.embedder, &config);
        self
    }

    /// Adds an embedding cache (media queries of known content cost no provider call).
    pub fn cache(mut self, cache: Arc<dyn EmbeddingCache>) -> Self {
        self.embedder = self.embedder.with_cache(cache);
        self
    }

    /// Embeds a query through the query cache (when there is one).
    async fn cached_query(
        &self,
        key: QueryKey,
        embed: impl std::future::Future<Output = Result<QueryEmbedding>>,
    ) -> Result<Arc<QueryEmbedding>> {
        match &self.query_cache {
            Some(cache) => cache.get_or_embed(key, embed).await,
            None => embed.await.map(Arc::new),
        }
    }

    /// Adds a catalog (hits carry the media location and name) and a store (queries by asset).
    pub fn catalog(mut self, catalog: Arc<dyn AssetCatalog>, store: Arc<dyn MediaStore>) -> Self {
        self.catalog = Some(catalog);
        self.store = Some(store);
        self
    }

    /// Replaces the routing rules.
    pub fn rules(mut self, rules: RoutingRules) -> Self {
        self.rules = rules;
        self
    }

    /// Adds a full-text index of names, tags and fields, for queries with
    /// [`keywords`](Query::keywords) (the embedded default's `SqliteCatalog` is one).
    pub fn keyword_index(mut self, index: Arc<dyn KeywordIndex>) -> Self {
        self.keyword_index = Some(index);
        self
    }

    /// Sets the limits applied to uploaded query files.
    pub fn limits(mut self, limits: MediaLimits) -> Self {
        self.limits = limits;
        self
    }

    /// The embedding model in use.
    pub fn model(&self) -> &crate::ModelInfo {
        self.embedder.model()
    }

    /// The routing rules in use.
    pub fn routing_rules(&self) -> &RoutingRules {
        &self.rules
    }

    /// Runs a query: one page of hits, and the cursor of the next.
    ///
    /// Errors: `InvalidInput` (empty text, `k` out of range, bad media, no route left after the
    /// kind restriction, a media query without embeddings for any route, a cursor of another
    /// query), `Unsupported` (a mode the routing table lacks for the query kind, keywords
    /// without a keyword index), `NotFound` (query by an unknown asset), and the provider's
    /// and index's errors.
    pub async fn search(&self, query: &Query) -> Result<SearchResults> {
        check_query(query)?;
        let fingerprint = query.fingerprint();
        let cursor = query
            .cursor
            .as_deref()
            .map(|c| PageCursor::decode(c, fingerprint))
            .transpose()?;
        // Resolve the query (validation, catalog look-up) and check the routing table before
        // any model call: an unsupported mode costs nothing.
        let resolved = self.resolve_query(&query.input).await?;
        let query_kind = resolved.kind();
        let routes = self.rules.routes(query_kind, query.mode)?.to_vec();
        let keyword_text = match (&resolved, query.keywords, &self.keyword_index) {
            (ResolvedQuery::Text(text), true, Some(index)) => Some((text.clone(), index.clone())),
            (ResolvedQuery::Text(_), true, None) => {
                return Err(Error::unsupported(
                    "a search with keywords needs a searcher with a keyword index \
                     (CrossModalSearcher::keyword_index)",
                ));
            }
            _ => None,
        };
        let vectors = self.embed_query(resolved).await?;
        let negatives = self.embed_negatives(&query.negatives).await?;
        let counts = self.index.space_counts().await?;
        // The candidate window: the first page reads a single page's worth, every later page
        // of one search the same larger one (`page_depth` pages' worth).
        let page_window = (query.k * query.oversample.max(1)).clamp(1, MAX_K);
        let later_window = (page_window * query.page_depth).clamp(1, MAX_K);
        let mut window = cursor.as_ref().map_or(page_window, |c| c.window);

        let mut reports = Vec::with_capacity(routes.len());
        let mut plans = Vec::new();
        for route in routes {
            match self.plan_route(&route, query, &vectors, &counts) {
                Ok((filter, qvecs)) => {
                    let qvecs = push_away(qvecs, &negatives, &route);
                    plans.push((reports.len(), route.clone(), filter, qvecs));
                    reports.push(RouteReport {
                        route,
                        outcome: RouteOutcome::Searched { assets: 0 },
                    });
                }
                Err(outcome) => reports.push(RouteReport { route, outcome }),
            }
        }
        if plans.is_empty()
            && reports
                .iter()
                .all(|r| r.outcome == RouteOutcome::QueryHasNoVectors)
        {
            return Err(Error::invalid_input(format!(
                "the {query_kind} query yields no embedding for any route of {} mode",
                query.mode
            )));
        }
        if plans.is_empty()
            && reports
                .iter()
                .all(|r| r.outcome == RouteOutcome::KindsExcluded)
        {
            return Err(Error::invalid_input(format!(
                "no route of a {query_kind} query in {} mode returns kinds {:?}",
                query.mode, query.kinds
            )));
        }

        // Never returned: the query asset (unless asked) and the examples to move away from.
        let mut excluded: HashSet<AssetId> =
            negatives.iter().filter_map(|(id, _)| id.clone()).collect();
        if !query.include_self
            && let Some(me) = vectors.self_asset()
        {
            excluded.insert(me.clone());
        }
        let min_for = |space: EmbeddingSpace| -> Option<f32> {
            match (query.min_score, query.route_min_scores.get(&space)) {
                (Some(a), Some(b)) => Some(a.max(*b)),
                (a, b) => a.or(b.copied()),
            }
        };
        let run_routes = |window: usize| {
            try_join_all(plans.iter().map(move |(_, route, filter, qvecs)| {
                self.run_route(
                    route.target_space,
                    filter,
                    qvecs,
                    window,
                    min_for(route.target_space),
                )
            }))
        };
        let mut route_results = run_routes(window).await?;
        // A route that filled its window may hold more: the first page reads the larger
        // window when the single page's one does not yield `k` assets (several clips of one
        // asset filling a route's places), so a first page is as full as the window allows.
        let saturated = |results: &[(Vec<RouteAsset>, bool)]| results.iter().any(|(_, full)| *full);
        if cursor.is_none()
            && window < later_window
            && saturated(&route_results)
            && distinct_assets(&route_results, &excluded) < query.k
        {
            window = later_window;
            route_results = run_routes(window).await?;
        }
        let more_in_index = saturated(&route_results);
        let mut found = Vec::with_capacity(plans.len());
        for ((report_idx, route, _, _), (mut assets, _)) in plans.iter().zip(route_results) {
            assets.retain(|a| !excluded.contains(&a.asset_id));
            if let Some(report) = reports.get_mut(*report_idx) {
                report.outcome = RouteOutcome::Searched {
                    assets: assets.len(),
                };
            }
            found.push(RouteFound {
                space: route.target_space,
                assets,
            });
        }

        let mut keyword_hits = Vec::new();
        if let Some((text, index)) = keyword_text {
            // Keyword hits are assets, not vectors: the window's pages of them (the same on
            // every page of one search, as the window is).
            let keyword_window = (window / query.oversample.max(1)).max(query.k);
            keyword_hits = self
                .keyword_route(&text, &*index, query, keyword_window, &excluded)
                .await?;
            // Assets found by keywords alone are scored by vector too (one filtered search per
            // route), so every hit has its cosine and its clips whatever the fusion.
            let seen: HashSet<&AssetId> = found
                .iter()
                .flat_map(|r| r.assets.iter().map(|a| &a.asset_id))
                .collect();
            let only: Vec<AssetId> = keyword_hits
                .iter()
                .map(|h| &h.asset_id)
                .filter(|id| !seen.contains(id))
                .cloned()
                .collect();
            if !only.is_empty() {
                let extra = try_join_all(plans.iter().map(|(_, route, filter, qvecs)| {
                    let mut filter = filter.clone();
                    filter.asset_ids = if filter.asset_ids.is_empty() {
                        only.clone()
                    } else {
                        only.iter()
                            .filter(|id| filter.asset_ids.contains(id))
                            .cloned()
                            .collect()
                    };
                    async move {
                        if filter.asset_ids.is_empty() {
                            return Ok(Vec::new());
                        }
                        self.run_route(route.target_space, &filter, qvecs, window, None)
                            .await
                            .map(|(assets, _)| assets)
                    }
                }))
                .await?;
                for (route, more) in found.iter_mut().zip(extra) {
                    route.assets.extend(more);
                }
            }
        }

        let spec = RankSpec {
            space_weights: query.space_weights.clone(),
            fusion: query.fusion,
            grouping: query.grouping,
            order: query.order,
            keywords: !keyword_hits.is_empty() || (query.keywords && query_kind == QueryKind::Text),
        };
        let keyword_full = keyword_hits.len() >= (window / query.oversample.max(1)).max(query.k);
        let ranked = ranking::rank(found, keyword_hits, spec);
        let (mut hits, next_cursor) = match cursor {
            // The first page: the best `k`; more may follow if it holds fewer than all it
            // ranked or a route (or the keywords) filled its window.
            None => {
                let more = ranked.len() > query.k || more_in_index || keyword_full;
                let hits: Vec<SearchHit> = ranked.into_iter().take(query.k).collect();
                let next = (more && hits.len() == query.k).then(|| {
                    PageCursor::after_first_page(
                        later_window,
                        hits.iter().map(|h| &h.asset_id),
                        fingerprint,
                    )
                    .encode()
                });
                (hits, next)
            }
            // A later page: the window's ranking without the first page's assets, cut at the
            // cursor's offset.
            Some(c) => {
                let shown = c.first_page_tags();
                let rest: Vec<SearchHit> = ranked
                    .into_iter()
                    .filter(|h| !shown.contains(&asset_tag(&h.asset_id)))
                    .collect();
                let total = rest.len();
                let hits: Vec<SearchHit> = rest.into_iter().skip(c.offset).take(query.k).collect();
                let next = (total > c.offset + query.k).then(|| {
                    PageCursor {
                        offset: c.offset + query.k,
                        ..c
                    }
                    .encode()
                });
                (hits, next)
            }
        };
        if let Some(catalog) = &self.catalog {
            for hit in &mut hits {
                if let Some(record) = catalog.get(&hit.asset_id).await? {
                    hit.media = record.media;
                    hit.display_name = record.display_name;
                }
            }
        }
        Ok(SearchResults {
            hits,
            query_kind,
            mode: query.mode,
            routes: reports,
            next_cursor,
        })
    }

    /// The keyword route: full-text matches of `text` under the query's filter and kinds.
    async fn keyword_route(
        &self,
        text: &str,
        index: &dyn KeywordIndex,
        query: &Query,
        window: usize,
        excluded: &HashSet<AssetId>,
    ) -> Result<Vec<KeywordHit>> {
        let filter = if query.kinds.is_empty() {
            Some(query.filter.clone())
        } else {
            query.filter.restrict_kinds(&query.kinds)
        };
        let Some(filter) = filter else {
            return Ok(Vec::new());
        };
        if crate::keywords::keyword_terms(text).is_empty() {
            return Ok(Vec::new());
        }
        let mut hits = index
            .keyword_search(&KeywordQuery::new(text, window).filter(filter))
            .await?;
        hits.retain(|h| !excluded.contains(&h.asset_id));
        Ok(hits)
    }

    /// Embeds the examples to move away from: each one's vectors, and its asset id when it is
    /// an asset or a file (never returned).
    async fn embed_negatives(
        &self,
        negatives: &[QueryInput],
    ) -> Result<Vec<(Option<AssetId>, QueryVectors)>> {
        let mut out = Vec::with_capacity(negatives.len());
        for n in negatives {
            let resolved = self
                .resolve_query(n)
                .await
                .map_err(|e| e.with_context("negative", "yes"))?;
            let vectors = self.embed_query(resolved).await?;
            let id = vectors.self_asset().cloned();
            out.push((id, vectors));
        }
        Ok(out)
    }

    /// Decides whether a route can run: its filter (user filter ∩ route kinds ∩ requested kinds)
    /// and query vectors, or why it is skipped.
    fn plan_route(
        &self,
        route: &Route,
        query: &Query,
        vectors: &QueryVectors,
        counts: &BTreeMap<EmbeddingSpace, u64>,
    ) -> std::result::Result<(Filter, Vec<Vec<f32>>), RouteOutcome> {
        let mut filter = query
            .filter
            .restrict_kinds(&route.target_kinds)
            .ok_or(RouteOutcome::KindsExcluded)?;
        if !query.kinds.is_empty() {
            filter = filter
                .restrict_kinds(&query.kinds)
                .ok_or(RouteOutcome::KindsExcluded)?;
        }
        if counts.get(&route.target_space).copied().unwrap_or(0) == 0 {
            return Err(RouteOutcome::NoVectorsInIndex);
        }
        let qvecs = vectors.for_space(route.query_space, query.segments);
        if qvecs.is_empty() {
            return Err(RouteOutcome::QueryHasNoVectors);
        }
        Ok((filter, qvecs))
    }

    /// Searches one space with each query vector: per asset its clips (each record's best
    /// cosine over the query vectors) at or above `min`, best first; best asset first.
    async fn run_route(
        &self,
        space: EmbeddingSpace,
        filter: &Filter,
        qvecs: &[Vec<f32>],
        k: usize,
        min: Option<f32>,
    ) -> Result<(Vec<RouteAsset>, bool)> {
        let queries: Vec<VectorQuery> = qvecs
            .iter()
            .map(|v| VectorQuery {
                space,
                vector: v.clone(),
                k,
                filter: filter.clone(),
            })
            .collect();
        let searches = queries.iter().map(|q| self.index.search(q));
        let mut by_asset: HashMap<AssetId, (HashMap<u32, FoundClip>, RecordMeta)> = HashMap::new();
        let mut full = false;
        for hits in try_join_all(searches).await? {
            full |= hits.len() >= k;
            for h in hits {
                if min.is_some_and(|m| h.score < m) {
                    continue;
                }
                let (clips, _) = by_asset
                    .entry(h.asset_id)
                    .or_insert_with(|| (HashMap::new(), h.meta));
                let clip = clips.entry(h.seq).or_insert(FoundClip {
                    seq: h.seq,
                    segment: h.segment,
                    cosine: h.score,
                });
                if h.score > clip.cosine {
                    clip.cosine = h.score;
                }
            }
        }
        let mut ranked: Vec<RouteAsset> = by_asset
            .into_iter()
            .map(|(asset_id, (clips, meta))| {
                let mut clips: Vec<FoundClip> = clips.into_values().collect();
                clips.sort_by(|a, b| b.cosine.total_cmp(&a.cosine).then(a.seq.cmp(&b.seq)));
                RouteAsset {
                    asset_id,
                    clips,
                    meta,
                }
            })
            .collect();
        let best = |a: &RouteAsset| a.clips.first().map_or(f32::NEG_INFINITY, |c| c.cosine);
        ranked.sort_by(|a, b| {
            best(b)
                .total_cmp(&best(a))
                .then(a.asset_id.cmp(&b.asset_id))
        });
        Ok((ranked, full))
    }

    /// Validates the query input and loads what embedding it needs, without a model call (and
    /// without reading a stored original: a query by asset reads it only if the provider needs
    /// it, after the caches missed).
    async fn resolve_query(&self, input: &QueryInput) -> Result<ResolvedQuery> {
        match input {
            QueryInput::Text(text) => {
                let text = check_text(text, self.embedder.model().max_text_chars)?;
                Ok(ResolvedQuery::Text(text.to_string()))
            }
            QueryInput::Media { bytes, file_name } => {
                let v = self.validate(bytes, file_name.as_deref()).await?;
                Ok(ResolvedQuery::Media(media_in_memory(v, bytes.clone())))
            }
            QueryInput::TextImage {
                text,
                image,
                file_name,
            } => {
                let text = check_text(text, self.embedder.model().max_text_chars)?;
                let v = self.validate(image, file_name.as_deref()).await?;
                if v.probe.format.kind() != MediaKind::Image {
                    return Err(Error::invalid_input(format!(
                        "a text+image query takes an image, not {} ({})",
                        v.probe.format.kind(),
                        v.probe.format
                    )));
                }
                Ok(ResolvedQuery::TextImage(
                    text.to_string(),
                    media_in_memory(v, image.clone()),
                ))
            }
            QueryInput::Asset(asset) => {
                let (Some(catalog), Some(store)) = (&self.catalog, &self.store) else {
                    return Err(Error::unsupported(
                        "a query by asset needs a searcher with a catalog and a store",
                    ));
                };
                let record = catalog.get(asset).await?.ok_or_else(|| {
                    Error::not_found("no such asset in the catalog").with_context("asset", asset)
                })?;
                let media = record.media.clone().ok_or_else(|| {
                    Error::new(ErrorKind::NotFound, "the asset's original was never stored")
                        .with_context("asset", asset)
                })?;
                let content = MediaContent::Stored {
                    store: Arc::clone(store),
                    key: media.key.clone(),
                };
                let input =
                    MediaInput::new(asset.clone(), record.format(), record.size_bytes, content)
                        .with_stored(media, store.region())
                        .with_duration(record.probe.duration_sec);
                Ok(ResolvedQuery::Asset(input))
            }
        }
    }

    /// Validates an uploaded query file (large ones hashed and probed on the blocking pool).
    async fn validate(&self, bytes: &Bytes, file_name: Option<&str>) -> Result<ValidatedMedia> {
        if bytes.len() < 256 * 1024 {
            return validate_media(bytes, file_name, &self.limits);
        }
        let (bytes, name, limits) = (
            bytes.clone(),
            file_name.map(str::to_owned),
            self.limits.clone(),
        );
        tokio::task::spawn_blocking(move || validate_media(&bytes, name.as_deref(), &limits))
            .await
            .map_err(crate::error::join_error)?
    }

    /// Embeds a resolved query (through the query cache): the text vector, or the media's
    /// vectors grouped by space.
    async fn embed_query(&self, resolved: ResolvedQuery) -> Result<QueryVectors> {
        match resolved {
            ResolvedQuery::Text(text) => {
                let embedded = self
                    .cached_query(QueryKey::Text(text.clone()), async {
                        self.embedder
                            .embed_text(&text)
                            .await
                            .map(QueryEmbedding::Vector)
                    })
                    .await?;
                match embedded.as_ref() {
                    QueryEmbedding::Vector(v) => Ok(QueryVectors::Text(v.clone())),
                    QueryEmbedding::Media(_) => Err(mixed_up()),
                }
            }
            ResolvedQuery::Media(input) | ResolvedQuery::Asset(input) => {
                let embedded = self
                    .cached_query(QueryKey::Media(input.asset_id.clone()), async {
                        // A stored asset's vectors are usually in the embedding cache already.
                        if let Some(e) = self.embedder.cached(&input.asset_id, input.kind()).await {
                            return Ok(QueryEmbedding::Media(e));
                        }
                        let e = self.embedder.embed_media(&input).await?;
                        Ok(QueryEmbedding::Media(e.embeddings))
                    })
                    .await?;
                let QueryEmbedding::Media(embeddings) = embedded.as_ref() else {
                    return Err(mixed_up());
                };
                Ok(QueryVectors::Media {
                    asset_id: input.asset_id,
                    by_space: by_space(embeddings),
                })
            }
            ResolvedQuery::TextImage(text, image) => {
                let key = QueryKey::TextImage(text.clone(), image.asset_id.clone());
                let embedded = self
                    .cached_query(key, async {
                        self.embedder
                            .embed_text_image(&text, &image)
                            .await
                            .map(QueryEmbedding::Vector)
                    })
                    .await?;
                let QueryEmbedding::Vector(vector) = embedded.as_ref() else {
                    return Err(mixed_up());
                };
                // The space an image query searches with: the model's image space.
                let space = self
                    .embedder
                    .model()
                    .image_spaces
                    .first()
                    .copied()
                    .unwrap_or(EmbeddingSpace::Visual);
                Ok(QueryVectors::Media {
                    asset_id: image.asset_id,
                    by_space: HashMap::from([(space, vec![vector.clone()])]),
                })
            }
        }
    }
}

/// The query cache of `embedder`'s model and options under `config`.
fn query_cache_for(embedder: &CachedEmbedder, config: &QueryCacheConfig) -> Option<QueryCache> {
    QueryCache::new(
        config,
        &embedder.model().id,
        &embedder.provider().options_fingerprint(),
    )
}

/// An uploaded query file as a provider input.
fn media_in_memory(v: ValidatedMedia, bytes: Bytes) -> MediaInput {
    MediaInput::new(
        v.asset_id,
        v.probe.format,
        v.size_bytes,
        MediaContent::Bytes(bytes),
    )
    .with_duration(v.probe.duration_sec)
}

/// Vectors grouped by space, in the order they came.
fn by_space(embeddings: &[Embedding]) -> HashMap<EmbeddingSpace, Vec<Vec<f32>>> {
    let mut by_space: HashMap<EmbeddingSpace, Vec<Vec<f32>>> = HashMap::new();
    for e in embeddings {
        by_space.entry(e.space).or_default().push(e.vector.clone());
    }
    by_space
}

/// A cache entry of the wrong shape for its key (cannot happen: the key's variant decides the
/// shape).
fn mixed_up() -> Error {
    Error::backend("the query cache returned an entry of another kind of query")
}

/// Checks what a query asks before any work.
fn check_query(query: &Query) -> Result<()> {
    if query.k == 0 || query.k > MAX_RESULTS {
        return Err(Error::invalid_input(format!(
            "k must be between 1 and {MAX_RESULTS}, got {}",
            query.k
        )));
    }
    let cosine = |what: &str, v: f32| {
        if (-1.0..=1.0).contains(&v) {
            Ok(())
        } else {
            Err(Error::invalid_input(format!(
                "{what} must be a cosine in [-1, 1], got {v}"
            )))
        }
    };
    if let Some(min) = query.min_score {
        cosine("min_score", min)?;
    }
    for (space, min) in &query.route_min_scores {
        cosine(&format!("the minimum score of {space}"), *min)?;
    }
    for (space, w) in &query.space_weights {
        if !(0.0..=10.0).contains(w) {
            return Err(Error::invalid_input(format!(
                "the weight of {space} must be between 0 and 10, got {w}"
            )));
        }
    }
    if query.page_depth == 0 || query.page_depth > MAX_PAGE_DEPTH {
        return Err(Error::invalid_input(format!(
            "page_depth must be between 1 and {MAX_PAGE_DEPTH}, got {}",
            query.page_depth
        )));
    }
    match query.fusion {
        Fusion::Weighted { keyword_weight } if !(0.0..=1.0).contains(&keyword_weight) => {
            return Err(Error::invalid_input(format!(
                "keyword_weight must be in [0, 1], got {keyword_weight}"
            )));
        }
        Fusion::ReciprocalRank { k0 } if !(k0.is_finite() && k0 >= 0.0) => {
            return Err(Error::invalid_input(format!(
                "the RRF constant k0 must be a finite number >= 0, got {k0}"
            )));
        }
        _ => {}
    }
    if let Grouping::Clips {
        clips_per_asset, ..
    } = query.grouping
        && (clips_per_asset == 0 || clips_per_asset > MAX_RESULTS)
    {
        return Err(Error::invalid_input(format!(
            "clips_per_asset must be between 1 and {MAX_RESULTS}, got {clips_per_asset}"
        )));
    }
    if query.negatives.len() > MAX_NEGATIVES {
        return Err(Error::invalid_input(format!(
            "at most {MAX_NEGATIVES} negative examples, got {}",
            query.negatives.len()
        )));
    }
    Ok(())
}

/// Most negative examples a query may carry.
pub const MAX_NEGATIVES: usize = 16;

/// The query vectors of a route moved away from the negative examples: `2q - n`, normalised,
/// `n` the mean direction of the examples' vectors in the route's target space (or its query
/// space, or a text example's vector).
fn push_away(
    qvecs: Vec<Vec<f32>>,
    negatives: &[(Option<AssetId>, QueryVectors)],
    route: &Route,
) -> Vec<Vec<f32>> {
    let examples: Vec<Vec<f32>> = negatives
        .iter()
        .filter_map(|(_, v)| match v {
            QueryVectors::Text(t) => Some(normalized(t)),
            QueryVectors::Media { by_space, .. } => by_space
                .get(&route.target_space)
                .or_else(|| by_space.get(&route.query_space))
                .filter(|vs| !vs.is_empty())
                .map(|vs| mean_direction(vs)),
        })
        .collect();
    if examples.is_empty() {
        return qvecs;
    }
    let away = mean_direction(&examples);
    qvecs
        .into_iter()
        .map(|q| {
            let q = normalized(&q);
            if q.len() != away.len() {
                return q;
            }
            let moved: Vec<f32> = q.iter().zip(&away).map(|(a, n)| 2.0 * a - n).collect();
            normalized(&moved)
        })
        .collect()
}

/// A query ready to embed.
enum ResolvedQuery {
    /// A text, checked and trimmed.
    Text(String),
    /// An uploaded file.
    Media(MediaInput),
    /// A stored asset (its original is read only if the caches miss and the provider needs it).
    Asset(MediaInput),
    /// A composed query: the text and the image.
    TextImage(String, MediaInput),
}

impl ResolvedQuery {
    fn kind(&self) -> QueryKind {
        match self {
            ResolvedQuery::Text(_) => QueryKind::Text,
            ResolvedQuery::Media(m) | ResolvedQuery::Asset(m) => QueryKind::from(m.kind()),
            // Routed like an image query.
            ResolvedQuery::TextImage(..) => QueryKind::Image,
        }
    }
}

#[cfg(test)]
#[path = "search_tests.rs"]
mod tests;
