//! The opaque cursor of a paged search.
//!
//! The first page of a search costs a single page: each route reads `k * oversample` vectors.
//! Its cursor names the window every later page reads (`k * oversample * page_depth` vectors
//! per route), the assets the first page showed, where the next page starts, and a
//! fingerprint of the query. Every later page reads that window again, ranks it the same way
//! and leaves out the first page's assets, so while the index does not change the pages
//! follow one order with no repeats and no gaps. The cursor is checked against the query it is
//! sent with: a cursor of another query is refused.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// Prefix of every cursor (the format's version; `c1.` cursors read one window on every
/// page, the first included).
const PREFIX: &str = "c2.";

/// Longest cursor accepted (a first page of the largest `k`, with room to spare).
const MAX_HEX: usize = 2 * (256 + 16 * 1000);

/// Where the next page of a search starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PageCursor {
    /// Vectors asked of each route by the pages after the first.
    #[serde(rename = "w")]
    pub(crate) window: usize,
    /// Hits of the window's ranking (without the first page's assets) already returned.
    #[serde(rename = "o")]
    pub(crate) offset: usize,
    /// The first page's assets, as [`asset_tag`]s in hex (16 digits each).
    #[serde(rename = "f", default)]
    pub(crate) first_page: String,
    /// The query's fingerprint.
    #[serde(rename = "q")]
    pub(crate) query: u64,
}

/// A short tag of an asset id (a [`Fingerprint`] of it), naming the first page's
/// assets in a cursor without spelling out their ids.
pub(crate) fn asset_tag(id: &crate::asset::AssetId) -> u64 {
    let mut f = Fingerprint::default();
    f.part("asset", id.as_str().as_bytes());
    f.finish()
}

impl PageCursor {
    /// The cursor after a first page that showed `shown`.
    pub(crate) fn after_first_page<'a>(
        window: usize,
        shown: impl IntoIterator<Item = &'a crate::asset::AssetId>,
        query: u64,
    ) -> PageCursor {
        let first_page = shown
            .into_iter()
            .map(|id| format!("{:016x}", asset_tag(id)))
            .collect();
        PageCursor {
            window,
            offset: 0,
            first_page,
            query,
        }
    }

    /// The tags of the first page's assets.
    pub(crate) fn first_page_tags(&self) -> std::collections::HashSet<u64> {
        self.first_page
            .as_bytes()
            .chunks(16)
            .filter_map(|c| std::str::from_utf8(c).ok())
            .filter_map(|c| u64::from_str_radix(c, 16).ok())
            .collect()
    }
}

impl PageCursor {
    /// The cursor as an opaque string.
    pub(crate) fn encode(&self) -> String {
        let json = serde_json::to_vec(self).unwrap_or_default();
        format!("{PREFIX}{}", hex::encode(json))
    }

    /// Parses a cursor of the query with fingerprint `query`.
    pub(crate) fn decode(text: &str, query: u64) -> Result<PageCursor> {
        let bad = || Error::invalid_input("the cursor is not one a search returned");
        let hex_part = text.strip_prefix(PREFIX).ok_or_else(bad)?;
        if hex_part.len() > MAX_HEX {
            return Err(bad());
        }
        let json = hex::decode(hex_part).map_err(|_| bad())?;
        let cursor: PageCursor = serde_json::from_slice(&json).map_err(|_| bad())?;
        if cursor.query != query {
            return Err(Error::invalid_input(
                "the cursor belongs to another query: send the same query with its cursor",
            ));
        }
        if cursor.window == 0
            || cursor.window > crate::index::MAX_K
            || !cursor.first_page.len().is_multiple_of(16)
            || !cursor.first_page.bytes().all(|b| b.is_ascii_hexdigit())
        {
            return Err(bad());
        }
        Ok(cursor)
    }
}

/// Builds a query fingerprint from its parts.
#[derive(Default)]
pub(crate) struct Fingerprint(Sha256);

impl Fingerprint {
    /// Adds a labelled part.
    pub(crate) fn part(&mut self, label: &str, bytes: &[u8]) -> &mut Self {
        self.0.update((label.len() as u64).to_le_bytes());
        self.0.update(label.as_bytes());
        self.0.update((bytes.len() as u64).to_le_bytes());
        self.0.update(bytes);
        self
    }

    /// Adds a part by its `Debug` form (plain data: filters, enums, numbers).
    pub(crate) fn debug(&mut self, label: &str, value: &impl std::fmt::Debug) -> &mut Self {
        self.part(label, format!("{value:?}").as_bytes())
    }

    /// The first 8 bytes of the digest.
    pub(crate) fn finish(self) -> u64 {
        let d = self.0.finalize();
        let mut b = [0u8; 8];
        for (o, i) in b.iter_mut().zip(d.iter()) {
            *o = *i;
        }
        u64::from_le_bytes(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_other_queries_and_garbage() {
        let shown = [
            crate::asset::AssetId::from_content(b"one"),
            crate::asset::AssetId::from_content(b"two"),
        ];
        let mut c = PageCursor::after_first_page(200, &shown, 42);
        c.offset = 20;
        let text = c.encode();
        let back = PageCursor::decode(&text, 42).unwrap();
        assert_eq!(back, c);
        assert_eq!(
            back.first_page_tags(),
            shown.iter().map(asset_tag).collect()
        );
        let other = PageCursor::decode(&text, 43).unwrap_err();
        assert!(other.to_string().contains("another query"), "{other}");
        for junk in [
            "",
            "c1.zz",
            "c1.00",
            "c2.7b7d",
            &format!("c2.{}", "0".repeat(MAX_HEX + 2)),
            &format!(
                "c2.{}",
                hex::encode(br#"{"w":200,"o":0,"f":"not hex digits!!","q":42}"#)
            ),
        ] {
            let e = PageCursor::decode(junk, 42).unwrap_err();
            assert_eq!(e.kind(), crate::ErrorKind::InvalidInput, "{junk}");
        }
    }
}
