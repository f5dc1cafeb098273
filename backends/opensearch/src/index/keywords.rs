//! [`KeywordIndex`] on OpenSearch: BM25 over the documents' name words, tags and field text in
//! the same index as the vectors (see [`crate::keywords`] for the request).
//!
//! The first search asks for [`first_size`] documents (16 per asset wanted); when they hold
//! fewer than `k` assets and the index may have more, it asks again for four times as many,
//! up to 10,000 documents. On Serverless, documents this handle knows are outdated (replaced or
//! deleted, not yet gone from searches) are skipped.

use async_trait::async_trait;
use crossmodal_core::{KeywordHit, KeywordIndex, KeywordQuery, Result};

use super::{OpenSearchIndex, hits_of};
use crate::keywords::{BestPerAsset, MAX_DOCS, first_size, keyword_search_body, score_of};
use crate::query::{HitIdentity, StoredRecord};

#[async_trait]
impl KeywordIndex for OpenSearchIndex {
    /// The best `k` assets for the query's words: one `_search` (more when `k` assets need more
    /// documents than the first asked for), each asset's best document kept. `InvalidInput`
    /// before any request for a query without words or with a bad `k` or filter.
    async fn keyword_search(&self, query: &KeywordQuery) -> Result<Vec<KeywordHit>> {
        let terms = query.check()?;
        let serverless = self.config.is_serverless();
        let mut size = first_size(query.k);
        loop {
            let body = keyword_search_body(query, &terms, size);
            let value = self.search_raw("keyword_search", &body).await?;
            let hits = hits_of(&value).map_err(|e| self.ctx(e))?;
            let mut best = BestPerAsset::default();
            for h in hits {
                let record = StoredRecord::of(h).map_err(|e| self.ctx(e))?;
                if serverless {
                    let who = HitIdentity::of(h).map_err(|e| self.ctx(e))?;
                    if self
                        .recent
                        .is_outdated(record.asset_id.as_str(), &who.key, &who.id)
                    {
                        continue;
                    }
                }
                let score = score_of(h).map_err(|e| self.ctx(e))?;
                best.add(record.asset_id, score, record.meta);
            }
            if best.len() < query.k && hits.len() == size && size < MAX_DOCS {
                size = size.saturating_mul(4).min(MAX_DOCS);
                continue;
            }
            return Ok(best.into_hits(query.k, &terms));
        }
    }
}
