//! Object metadata the store writes: content hash, display name, and what a HEAD reports.

use std::time::SystemTime;

use crossmodal_core::{AssetId, Error, MediaKey, Result};

/// User-metadata name of the hex SHA-256 of the content (`x-amz-meta-sha256`).
pub const SHA256_METADATA: &str = "sha256";
/// User-metadata name of the percent-encoded display name (`x-amz-meta-display-name`).
pub const DISPLAY_NAME_METADATA: &str = "display-name";
/// Longest display name accepted, in bytes of UTF-8 before encoding (S3 allows 2 KB of user
/// metadata in all).
pub const MAX_DISPLAY_NAME_LEN: usize = 512;

/// Extra settings of one upload (see [`S3MediaStore::put_with`](crate::S3MediaStore::put_with)).
///
/// ```
/// use crossmodal_core::AssetId;
/// use crossmodal_s3::PutOptions;
///
/// let id = AssetId::from_content(b"clip");
/// let options = PutOptions::new()
///     .with_display_name("Château siege (final).mp4")
///     .with_asset(&id);
/// assert_eq!(options.display_name(), Some("Château siege (final).mp4"));
/// assert!(options.sha256().is_some());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PutOptions {
    display_name: Option<String>,
    sha256: Option<[u8; 32]>,
}

impl PutOptions {
    /// No display name, hash computed by the store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Stores a user-supplied name (a file name, a title) as object metadata. It never becomes
    /// part of the key; it is percent-encoded (UTF-8, everything but `A-Z a-z 0-9 - . _ ~`) so
    /// any text survives S3's ASCII-only headers, and [`ObjectInfo::display_name`] decodes it.
    /// Control characters are refused, and so is a name over
    /// [`MAX_DISPLAY_NAME_LEN`] bytes.
    pub fn with_display_name(mut self, name: impl Into<String>) -> Self {
        self.display_name = Some(name.into());
        self
    }

    /// The SHA-256 the content is known to have (an [`AssetId`] is one). The store then skips
    /// hashing a file before uploading it, still hashes what it sends, and fails the upload
    /// (`InvalidInput`, nothing stored) when the two differ.
    pub fn with_sha256(mut self, digest: [u8; 32]) -> Self {
        self.sha256 = Some(digest);
        self
    }

    /// [`with_sha256`](Self::with_sha256) from an asset id (the hex SHA-256 of the content).
    pub fn with_asset(self, asset: &AssetId) -> Self {
        let mut digest = [0u8; 32];
        match hex::decode_to_slice(asset.as_str(), &mut digest) {
            Ok(()) => self.with_sha256(digest),
            // An AssetId is always 64 hex digits; should that change, fall back to hashing.
            Err(_) => self,
        }
    }

    /// The display name.
    pub fn display_name(&self) -> Option<&str> {
        self.display_name.as_deref()
    }

    /// The known SHA-256.
    pub fn sha256(&self) -> Option<&[u8; 32]> {
        self.sha256.as_ref()
    }
}

/// What S3 reports about a stored object (a `HeadObject`). More fields may be added (version
/// id, storage class, ...): the store builds it, callers read it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ObjectInfo {
    /// The store key.
    pub key: MediaKey,
    /// Size in bytes.
    pub size: u64,
    /// The `Content-Type` the object is served with.
    pub content_type: Option<String>,
    /// Hex SHA-256 of the content, as recorded by this store at upload.
    pub sha256: Option<String>,
    /// The decoded display name, if one was stored.
    pub display_name: Option<String>,
    /// The entity tag (quoted, as S3 returns it).
    pub etag: Option<String>,
    /// When the object was last written.
    pub last_modified: Option<SystemTime>,
}

/// Percent-encodes `name` for a metadata header; refuses control characters and long names.
pub(crate) fn encode_display_name(name: &str) -> Result<String> {
    if name.len() > MAX_DISPLAY_NAME_LEN {
        return Err(Error::invalid_input(format!(
            "display name is {} bytes long; at most {MAX_DISPLAY_NAME_LEN} are allowed",
            name.len()
        )));
    }
    if name.chars().any(char::is_control) {
        return Err(Error::invalid_input(
            "display name contains control characters",
        ));
    }
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    Ok(out)
}

/// Reverses [`encode_display_name`]; `None` if `value` is not a valid encoding.
pub(crate) fn decode_display_name(value: &str) -> Option<String> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = value.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_round_trip_through_ascii() {
        for name in [
            "clip.mp4",
            "Château siege (final).mp4",
            "a%20b+c&d=e/../f\\g",
            "日本語の動画.mov",
            "emoji 🎬.wav",
            "",
        ] {
            let enc = encode_display_name(name).unwrap();
            assert!(
                enc.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-._~%".contains(&b)),
                "{enc}"
            );
            assert_eq!(decode_display_name(&enc).as_deref(), Some(name));
        }
    }

    #[test]
    fn bad_display_names_are_refused() {
        assert!(encode_display_name("a\nb").is_err());
        assert!(encode_display_name("a\u{0}b").is_err());
        assert!(encode_display_name(&"x".repeat(MAX_DISPLAY_NAME_LEN + 1)).is_err());
        assert_eq!(decode_display_name("%G0"), None);
        assert_eq!(decode_display_name("%4"), None);
        assert_eq!(decode_display_name("%FF"), None);
    }

    #[test]
    fn asset_ids_give_their_digest() {
        let id = AssetId::from_content(b"x");
        let o = PutOptions::new().with_asset(&id);
        assert_eq!(hex::encode(o.sha256().unwrap()), id.as_str());
    }
}
