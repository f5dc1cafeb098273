//! The opaque cursor of a paged search.
//!
//! A cursor names the candidate window the first page read (vectors per route) and where the
//! next page starts, plus a fingerprint of the query. Every page of one search reads the same
//! window again and ranks it the same way, so while the index does not change the pages
//! follow one order with no repeats and no gaps. The cursor is checked against the query it is
//! sent with: a cursor of another query is refused.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// Prefix of every cursor (the format's version).
const PREFIX: &str = "c1.";

/// Where the next page of a search starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PageCursor {
    /// Vectors asked of each route (the window of the first page).
    #[serde(rename = "w")]
    pub(crate) window: usize,
    /// Hits already returned.
    #[serde(rename = "o")]
    pub(crate) offset: usize,
    /// The query's fingerprint.
    #[serde(rename = "q")]
    pub(crate) query: u64,
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
        if hex_part.len() > 512 {
            return Err(bad());
        }
        let json = hex::decode(hex_part).map_err(|_| bad())?;
        let cursor: PageCursor = serde_json::from_slice(&json).map_err(|_| bad())?;
        if cursor.query != query {
            return Err(Error::invalid_input(
                "the cursor belongs to another query: send the same query with its cursor",
            ));
        }
        if cursor.window == 0 || cursor.window > crate::index::MAX_K {
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
        let c = PageCursor {
            window: 200,
            offset: 20,
            query: 42,
        };
        let text = c.encode();
        assert_eq!(PageCursor::decode(&text, 42).unwrap(), c);
        let other = PageCursor::decode(&text, 43).unwrap_err();
        assert!(other.to_string().contains("another query"), "{other}");
        for junk in [
            "",
            "c1.zz",
            "c2.00",
            "c1.7b7d",
            &format!("c1.{}", "0".repeat(600)),
        ] {
            let e = PageCursor::decode(junk, 42).unwrap_err();
            assert_eq!(e.kind(), crate::ErrorKind::InvalidInput, "{junk}");
        }
    }
}
