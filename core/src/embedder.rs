//! A provider behind the embedding cache and the retry policy: what ingest and search both call.

use std::sync::Arc;

use crate::cache::{CacheKey, EmbeddingCache};
use crate::embedding::{Embedding, EmbeddingProvider, MediaInput, ModelInfo, check_text};
use crate::error::{Error, ErrorKind, Result};
use crate::retry::RetryPolicy;
use crate::vector::check_vector;

/// Embeddings of one media file and whether they came from the cache.
#[derive(Debug, Clone)]
pub struct MediaEmbeddings {
    /// One per space per segment.
    pub embeddings: Vec<Embedding>,
    /// True when no provider call was made.
    pub cached: bool,
}

/// Wraps an [`EmbeddingProvider`] with an optional [`EmbeddingCache`], a [`RetryPolicy`] for
/// temporary provider errors, and checks of what the provider returns.
#[derive(Clone)]
pub struct CachedEmbedder {
    provider: Arc<dyn EmbeddingProvider>,
    cache: Option<Arc<dyn EmbeddingCache>>,
    retry: RetryPolicy,
}

impl std::fmt::Debug for CachedEmbedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedEmbedder")
            .field("model", &self.provider.model().id)
            .field("cache", &self.cache.is_some())
            .field("retry", &self.retry)
            .finish()
    }
}

impl CachedEmbedder {
    /// A provider with a cache and a retry policy. A provider that
    /// [retries internally](EmbeddingProvider::retries_internally) gets no second retry loop.
    pub fn new(
        provider: Arc<dyn EmbeddingProvider>,
        cache: Option<Arc<dyn EmbeddingCache>>,
        retry: RetryPolicy,
    ) -> Self {
        let retry = if provider.retries_internally() {
            RetryPolicy::none()
        } else {
            retry
        };
        CachedEmbedder {
            provider,
            cache,
            retry,
        }
    }

    /// The same provider and retry policy with `cache`.
    pub fn with_cache(mut self, cache: Arc<dyn EmbeddingCache>) -> Self {
        self.cache = Some(cache);
        self
    }

    /// The provider.
    pub fn provider(&self) -> &Arc<dyn EmbeddingProvider> {
        &self.provider
    }

    /// The model.
    pub fn model(&self) -> &ModelInfo {
        self.provider.model()
    }

    /// The cache key of a piece of content under this provider.
    pub fn cache_key(&self, media: &MediaInput) -> CacheKey {
        CacheKey {
            content: media.asset_id.clone(),
            model_id: self.provider.model().id.clone(),
            options: self.provider.options_fingerprint(),
        }
    }

    /// The cached embeddings of content `asset` (of `kind`) under this provider, without
    /// reading the content (what re-indexing and searching by a stored asset need); `None` on
    /// a miss or a cache that fails (logged).
    pub async fn cached(
        &self,
        asset: &crate::AssetId,
        kind: crate::MediaKind,
    ) -> Option<Vec<Embedding>> {
        let cache = self.cache.as_ref()?;
        let key = CacheKey {
            content: asset.clone(),
            model_id: self.provider.model().id.clone(),
            options: self.provider.options_fingerprint(),
        };
        match cache.get(&key).await {
            Ok(Some(e)) if self.provider.model().check_embeddings(kind, &e).is_ok() => Some(e),
            Ok(_) => None,
            Err(e) => {
                tracing::warn!(error = %e, "embedding cache read failed");
                None
            }
        }
    }

    /// Embeds a text query (validated: not empty, within the model's length), retrying
    /// temporary errors, and checks the vector's dimension and values.
    pub async fn embed_text(&self, text: &str) -> Result<Vec<f32>> {
        let model = self.provider.model();
        let text = check_text(text, model.max_text_chars)?;
        let vector = self
            .retry
            .run("embed_text", || self.provider.embed_text(text))
            .await?;
        check_vector(&vector, model.dimension).map_err(|e| {
            Error::new(
                ErrorKind::ModelFailed,
                format!(
                    "model {} returned a bad text vector: {}",
                    model.id,
                    e.message()
                ),
            )
        })?;
        Ok(vector)
    }

    /// Embeds a composed query (an image and a text that modifies it): the text is validated
    /// like a text query, the image must be an image; temporary errors are retried and the
    /// vector checked. Not cached (a query, not an asset).
    pub async fn embed_text_image(&self, text: &str, image: &MediaInput) -> Result<Vec<f32>> {
        let model = self.provider.model();
        let text = check_text(text, model.max_text_chars)?;
        if image.kind() != crate::MediaKind::Image {
            return Err(Error::invalid_input(format!(
                "a composed text+image query takes an image, not {} ({})",
                image.kind(),
                image.format
            )));
        }
        let vector = self
            .retry
            .run("embed_text_image", || {
                self.provider.embed_text_image(text, image)
            })
            .await?;
        check_vector(&vector, model.dimension).map_err(|e| {
            Error::new(
                ErrorKind::ModelFailed,
                format!(
                    "model {} returned a bad text+image vector: {}",
                    model.id,
                    e.message()
                ),
            )
        })?;
        Ok(vector)
    }

    /// Embeds media, from the cache when it holds this content for this model and options.
    /// A cache that fails to read or write is logged and bypassed, never fatal.
    pub async fn embed_media(&self, media: &MediaInput) -> Result<MediaEmbeddings> {
        let model = self.provider.model();
        let key = self.cache_key(media);
        if let Some(cache) = &self.cache {
            match cache.get(&key).await {
                Ok(Some(embeddings))
                    if model.check_embeddings(media.kind(), &embeddings).is_ok() =>
                {
                    return Ok(MediaEmbeddings {
                        embeddings,
                        cached: true,
                    });
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "embedding cache read failed; calling the provider")
                }
            }
        }
        let embeddings = self
            .retry
            .run("embed_media", || self.provider.embed_media(media))
            .await
            .map_err(|e| e.with_context("asset", media.asset_id.short()))?;
        model.check_embeddings(media.kind(), &embeddings)?;
        if let Some(cache) = &self.cache
            && let Err(e) = cache.put(&key, &embeddings).await
        {
            tracing::warn!(error = %e, "embedding cache write failed");
        }
        Ok(MediaEmbeddings {
            embeddings,
            cached: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::embedding::MockEmbeddingProvider;

    fn throttled_provider(internal: bool, calls: usize) -> Arc<dyn EmbeddingProvider> {
        let mut mock = MockEmbeddingProvider::new();
        mock.expect_model()
            .return_const(crate::test_support::tiny_model());
        mock.expect_retries_internally().return_const(internal);
        mock.expect_embed_text()
            .times(calls)
            .returning(|_| Err(Error::new(ErrorKind::RateLimited, "slow down")));
        Arc::new(mock)
    }

    #[tokio::test(start_paused = true)]
    async fn temporary_errors_are_retried_by_the_policy() {
        let policy = RetryPolicy::default().max_attempts(3);
        let e = CachedEmbedder::new(throttled_provider(false, 3), None, policy);
        let err = e.embed_text("castle").await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::RateLimited);
    }

    #[tokio::test(start_paused = true)]
    async fn a_provider_that_retries_itself_gets_no_second_loop() {
        let policy = RetryPolicy::default().max_attempts(3);
        let e = CachedEmbedder::new(throttled_provider(true, 1), None, policy);
        assert!(e.embed_text("castle").await.is_err());
    }

    #[tokio::test]
    async fn over_long_and_empty_text_never_reach_the_provider() {
        let e = CachedEmbedder::new(throttled_provider(false, 0), None, RetryPolicy::none());
        assert_eq!(
            e.embed_text(" ").await.unwrap_err().kind(),
            ErrorKind::InvalidInput
        );
        let long = "x".repeat(101);
        assert_eq!(
            e.embed_text(&long).await.unwrap_err().kind(),
            ErrorKind::InvalidInput
        );
    }
}
