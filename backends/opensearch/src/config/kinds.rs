//! The small enums of the configuration: engine, space type, write visibility, deployment.

use std::fmt;

/// The k-NN library OpenSearch builds the HNSW graphs with.
///
/// `nmslib` is not offered: OpenSearch 3.0 and later refuse to create new `nmslib` indexes.
/// Amazon OpenSearch Serverless takes faiss only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Engine {
    /// Facebook's faiss (C++). The OpenSearch default from 2.18 and the only engine of
    /// Serverless; efficient filtering from 2.9; `cosinesimil` from 2.19 (on 2.13 to 2.18 use
    /// [`SpaceType::InnerProduct`]; before 2.13 use [`Engine::Lucene`]).
    #[default]
    Faiss,
    /// Lucene's own HNSW (Java). Efficient filtering from 2.4, `cosinesimil` on every 2.x,
    /// `innerproduct` from 2.13. Refused by Amazon OpenSearch Serverless.
    Lucene,
}

impl Engine {
    /// The name OpenSearch uses in mappings (`faiss`, `lucene`).
    pub fn as_str(self) -> &'static str {
        match self {
            Engine::Faiss => "faiss",
            Engine::Lucene => "lucene",
        }
    }
}

impl fmt::Display for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How OpenSearch compares vectors. Either way the index reports cosine similarity in
/// [`Hit::score`](crossmodal_core::Hit::score).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum SpaceType {
    /// `cosinesimil`: score `(1 + cos) / 2` (OpenSearch >= 2.19 for every engine; lucene on
    /// every version). The safe default.
    #[default]
    CosineSimil,
    /// `innerproduct` on vectors this crate normalises to unit length, so the inner product is
    /// the cosine. For faiss on clusters from 2.13 to 2.18, where faiss has no `cosinesimil`
    /// (on 2.9 to 2.12 faiss scores filtered searches differently; use lucene there).
    /// Score `1 + ip` for `ip >= 0`, `1 / (1 - ip)` below.
    InnerProduct,
}

impl SpaceType {
    /// The name OpenSearch uses in mappings (`cosinesimil`, `innerproduct`).
    pub fn as_str(self) -> &'static str {
        match self {
            SpaceType::CosineSimil => "cosinesimil",
            SpaceType::InnerProduct => "innerproduct",
        }
    }

    /// Cosine similarity from the `_score` OpenSearch reports for this space (OpenSearch >= 2.19
    /// formulas; for unit vectors the inner product is the cosine), clamped to [-1, 1].
    ///
    /// ```
    /// use crossmodal_opensearch::SpaceType;
    /// assert_eq!(SpaceType::CosineSimil.cosine_from_score(1.0), 1.0);
    /// assert_eq!(SpaceType::CosineSimil.cosine_from_score(0.25), -0.5);
    /// assert_eq!(SpaceType::InnerProduct.cosine_from_score(1.5), 0.5);
    /// assert_eq!(SpaceType::InnerProduct.cosine_from_score(0.5), -1.0);
    /// ```
    pub fn cosine_from_score(self, score: f64) -> f32 {
        let cos = match self {
            SpaceType::CosineSimil => 2.0 * score - 1.0,
            SpaceType::InnerProduct if score >= 1.0 => score - 1.0,
            SpaceType::InnerProduct if score > 0.0 => 1.0 - 1.0 / score,
            SpaceType::InnerProduct => -1.0,
        };
        cos.clamp(-1.0, 1.0) as f32
    }

    /// The `_score` OpenSearch reports for a cosine (the inverse of
    /// [`cosine_from_score`](Self::cosine_from_score)); used for `min_score`-style thresholds.
    pub fn score_from_cosine(self, cos: f64) -> f64 {
        match self {
            SpaceType::CosineSimil => (1.0 + cos) / 2.0,
            SpaceType::InnerProduct if cos >= 0.0 => 1.0 + cos,
            SpaceType::InnerProduct => 1.0 / (1.0 - cos),
        }
    }
}

impl fmt::Display for SpaceType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// When writes become visible to searches.
///
/// On a [`Deployment::Cluster`] this is the `refresh` parameter of `_bulk`, `_doc` and
/// `_delete_by_query`. Amazon OpenSearch Serverless has no refresh at all (it refuses the
/// parameter and the `_refresh` API, and makes writes searchable within about 60 s), so there
/// [`WaitFor`](Self::WaitFor) is done by the client: the call polls until its own writes are
/// searchable; [`Immediate`](Self::Immediate) is refused by
/// [`build`](crate::OpenSearchConfigBuilder::build).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RefreshPolicy {
    /// The call returns once its writes are searchable (read-your-writes; what the
    /// `VectorIndex` contract expects). Cluster: `refresh=wait_for` (`refresh=true` for
    /// `_delete_by_query`, which takes only a boolean). Serverless: the client polls, up to
    /// [`visibility_timeout`](crate::OpenSearchConfigBuilder::visibility_timeout) (each call may
    /// take about a minute there). The default on a cluster.
    WaitFor,
    /// `refresh=true`: refresh the affected shards at once. Costly under load. Cluster only.
    Immediate,
    /// No waiting: writes become searchable at the next periodic refresh (1 s by default on a
    /// cluster, about 60 s on Serverless). Fastest bulk loading; call
    /// [`VectorIndex::flush`](crossmodal_core::VectorIndex::flush) before searching. The
    /// default on Serverless.
    None,
}

impl RefreshPolicy {
    /// The value of `refresh` for `_bulk` and `_doc` on a cluster, if any.
    pub(crate) fn write_param(self) -> Option<opensearch::params::Refresh> {
        match self {
            RefreshPolicy::WaitFor => Some(opensearch::params::Refresh::WaitFor),
            RefreshPolicy::Immediate => Some(opensearch::params::Refresh::True),
            RefreshPolicy::None => None,
        }
    }

    /// The value of `refresh` for `_delete_by_query` (boolean only).
    pub(crate) fn delete_by_query_param(self) -> bool {
        !matches!(self, RefreshPolicy::None)
    }
}

/// What kind of OpenSearch the configuration talks to: the rules differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Deployment {
    /// Self-managed OpenSearch or an Amazon OpenSearch Service domain (SigV4 `es`): documents
    /// carry the record key as their `_id` (an upsert of the same key replaces it), writes take
    /// `refresh`, deletes by asset use `_delete_by_query`, `flush` calls `_refresh`.
    Cluster,
    /// An Amazon OpenSearch Serverless vector search collection (SigV4 `aoss`): the service
    /// assigns document ids (the record key lives in the `key` field), there is no `refresh`
    /// parameter, no `_refresh` and no `_delete_by_query` (deletes search the ids, then send
    /// bulk `delete` items), faiss is the only engine, and writes become searchable within
    /// about 60 s. See the crate README, "Amazon OpenSearch Serverless".
    Serverless,
}

impl Deployment {
    /// `cluster` or `serverless`.
    pub fn as_str(self) -> &'static str {
        match self {
            Deployment::Cluster => "cluster",
            Deployment::Serverless => "serverless",
        }
    }
}

impl fmt::Display for Deployment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
