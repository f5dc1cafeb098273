//! Asset identity: the content hash every component agrees on.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};

/// The identity of a media asset: the lower-case hex SHA-256 of its bytes.
///
/// Ingesting the same bytes twice yields the same id, so the second ingest is a no-op.
///
/// ```
/// use crossmodal_core::AssetId;
/// let id = AssetId::from_content(b"hello");
/// assert_eq!(id.as_str(), "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824");
/// assert_eq!(id.as_str().parse::<AssetId>().unwrap(), id);
/// assert!("not-a-hash".parse::<AssetId>().is_err());
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AssetId(String);

impl AssetId {
    /// The id of `bytes`.
    pub fn from_content(bytes: &[u8]) -> AssetId {
        AssetId(hex::encode(Sha256::digest(bytes)))
    }

    /// The id of a finished SHA-256 digest.
    pub fn from_digest(digest: [u8; 32]) -> AssetId {
        AssetId(hex::encode(digest))
    }

    /// Parses a 64-character hex SHA-256 (upper case is accepted and lowered).
    pub fn parse(s: &str) -> Result<AssetId> {
        if s.len() != 64 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::invalid_input(format!(
                "asset id must be 64 hex characters (a SHA-256), got {s:?}"
            )));
        }
        Ok(AssetId(s.to_ascii_lowercase()))
    }

    /// The hex string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first 12 hex characters, for logs and display.
    pub fn short(&self) -> &str {
        &self.0[..12]
    }
}

impl fmt::Display for AssetId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for AssetId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AssetId({})", self.short())
    }
}

impl FromStr for AssetId {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        AssetId::parse(s)
    }
}

impl TryFrom<String> for AssetId {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        AssetId::parse(&s)
    }
}

impl From<AssetId> for String {
    fn from(id: AssetId) -> String {
        id.0
    }
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uppercase_is_normalised() {
        let id = AssetId::from_content(b"x");
        let upper = id.as_str().to_ascii_uppercase();
        assert_eq!(AssetId::parse(&upper).unwrap(), id);
    }

    #[test]
    fn serde_validates() {
        let id = AssetId::from_content(b"x");
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(serde_json::from_str::<AssetId>(&json).unwrap(), id);
        assert!(serde_json::from_str::<AssetId>("\"../etc\"").is_err());
    }
}
