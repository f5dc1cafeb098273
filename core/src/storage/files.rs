//! Data files: append-only files whose committed length and CRC-32 the manifest records, and
//! whole files written once. Reading checks both; a missing, short or altered file is `Corrupt`
//! naming it.

use std::fs::{File, OpenOptions};
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A file as the manifest records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct FileEntry {
    /// File name inside the index directory.
    pub(crate) name: String,
    /// Committed bytes (an append-only file may hold more after a crash; they are ignored).
    pub(crate) bytes: u64,
    /// CRC-32 of the committed bytes.
    pub(crate) crc32: u32,
}

pub(crate) fn io(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |e| Error::from(e).with_context("path", path.display())
}

pub(crate) fn corrupt(path: &Path, why: impl std::fmt::Display) -> Error {
    Error::corrupt(format!(
        "index file {}: {why}",
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    ))
    .with_context("path", path.display())
}

/// Whether a name is one this crate writes (letters, digits, `.`, `_`, `-`; no leading dot).
pub(crate) fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Appends `bytes` to the committed part of `dir/entry.name` (creating it if `entry` is
/// `None`), fsyncs, and returns the new entry: what was there beyond the committed length (a
/// crashed earlier append) is overwritten.
pub(crate) fn append(
    dir: &Path,
    name: &str,
    entry: Option<&FileEntry>,
    write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<FileEntry> {
    let path = dir.join(name);
    let (start, crc) = entry.map_or((0, 0), |e| (e.bytes, e.crc32));
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io(&path))?;
    file.set_len(start).map_err(io(&path))?;
    file.seek(SeekFrom::Start(start)).map_err(io(&path))?;
    let mut w = Counted {
        inner: BufWriter::with_capacity(1 << 20, file),
        crc: crc32fast::Hasher::new_with_initial_len(crc, start),
        bytes: 0,
    };
    write(&mut w).and_then(|()| w.flush()).map_err(io(&path))?;
    let Counted { inner, crc, bytes } = w;
    let file = inner.into_inner().map_err(|e| io(&path)(e.into_error()))?;
    file.sync_all().map_err(io(&path))?;
    Ok(FileEntry {
        name: name.to_string(),
        bytes: start + bytes,
        crc32: crc.finalize(),
    })
}

/// Writes a new file `dir/name` whole (replacing any leftover of that name) and fsyncs it.
pub(crate) fn write_new(
    dir: &Path,
    name: &str,
    write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<FileEntry> {
    let path = dir.join(name);
    if path.exists() {
        std::fs::remove_file(&path).map_err(io(&path))?;
    }
    append(dir, name, None, write)
}

/// Opens `dir/entry.name` for reading its committed bytes after checking their length and
/// CRC-32 (one streaming pass); cuts anything beyond the committed length when `trim` (we hold
/// the directory lock, so those bytes are a crashed append of ours).
pub(crate) fn open_checked(dir: &Path, entry: &FileEntry, trim: bool) -> Result<BufReader<File>> {
    if !valid_name(&entry.name) {
        return Err(corrupt(
            dir,
            format!("bad file name {:?} in the manifest", entry.name),
        ));
    }
    let path = dir.join(&entry.name);
    let file = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(corrupt(&path, "missing"));
        }
        Err(e) => return Err(io(&path)(e)),
    };
    let size = file.metadata().map_err(io(&path))?.len();
    if size < entry.bytes {
        return Err(corrupt(
            &path,
            format!("{size} bytes, the manifest says {}", entry.bytes),
        ));
    }
    if size > entry.bytes && trim {
        OpenOptions::new()
            .write(true)
            .open(&path)
            .and_then(|f| f.set_len(entry.bytes))
            .map_err(io(&path))?;
    }
    let mut r = BufReader::with_capacity(1 << 20, file.try_clone().map_err(io(&path))?);
    let mut crc = crc32fast::Hasher::new();
    let mut left = entry.bytes;
    let mut buf = vec![0u8; 1 << 20];
    while left > 0 {
        let n = (left as usize).min(buf.len());
        let chunk = buf.get_mut(..n).unwrap_or_default();
        r.read_exact(chunk).map_err(io(&path))?;
        crc.update(chunk);
        left -= n as u64;
    }
    if crc.finalize() != entry.crc32 {
        return Err(corrupt(&path, "checksum mismatch"));
    }
    let mut file = file;
    file.seek(SeekFrom::Start(0)).map_err(io(&path))?;
    Ok(BufReader::with_capacity(1 << 20, file))
}

/// Streams the committed bytes of `dir/entry.name` through `each` in whole records of
/// `record` bytes, checking length and CRC-32 in the same single pass (the check fails after
/// `each` has seen the data: callers discard what they built on an error). Cuts anything past
/// the committed length when `trim`.
pub(crate) fn stream_checked(
    dir: &Path,
    entry: &FileEntry,
    trim: bool,
    record: usize,
    mut each: impl FnMut(&[u8]) -> Result<()>,
) -> Result<()> {
    if !valid_name(&entry.name) {
        return Err(corrupt(
            dir,
            format!("bad file name {:?} in the manifest", entry.name),
        ));
    }
    let path = dir.join(&entry.name);
    let file = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(corrupt(&path, "missing"));
        }
        Err(e) => return Err(io(&path)(e)),
    };
    let size = file.metadata().map_err(io(&path))?.len();
    if size < entry.bytes {
        return Err(corrupt(
            &path,
            format!("{size} bytes, the manifest says {}", entry.bytes),
        ));
    }
    if size > entry.bytes && trim {
        OpenOptions::new()
            .write(true)
            .open(&path)
            .and_then(|f| f.set_len(entry.bytes))
            .map_err(io(&path))?;
    }
    let record = record.max(1);
    if !entry.bytes.is_multiple_of(record as u64) {
        return Err(corrupt(
            &path,
            format!("{} bytes is not a whole number of records", entry.bytes),
        ));
    }
    let mut r = file;
    let mut crc = crc32fast::Hasher::new();
    let mut buf = vec![0u8; ((4 << 20) / record).max(1) * record];
    let mut left = entry.bytes;
    while left > 0 {
        let n = (left as usize).min(buf.len());
        let chunk = buf.get_mut(..n).unwrap_or_default();
        r.read_exact(chunk).map_err(io(&path))?;
        crc.update(chunk);
        for rec in chunk.chunks_exact(record) {
            each(rec)?;
        }
        left -= n as u64;
    }
    if crc.finalize() != entry.crc32 {
        return Err(corrupt(&path, "checksum mismatch"));
    }
    Ok(())
}

/// A writer that counts bytes and computes a CRC-32 of what passes through.
struct Counted<W: Write> {
    inner: W,
    crc: crc32fast::Hasher,
    bytes: u64,
}

impl<W: Write> Write for Counted<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.crc.update(buf.get(..n).unwrap_or_default());
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_extend_the_checksum_and_damage_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let first = append(dir.path(), "a.vec", None, |w| w.write_all(b"hello ")).unwrap();
        // A crashed append left garbage past the committed length: it is overwritten.
        std::fs::OpenOptions::new()
            .append(true)
            .open(dir.path().join("a.vec"))
            .unwrap()
            .write_all(b"GARBAGE")
            .unwrap();
        let second = append(dir.path(), "a.vec", Some(&first), |w| w.write_all(b"world")).unwrap();
        assert_eq!(second.bytes, 11);
        assert_eq!(second.crc32, crc32fast::hash(b"hello world"));
        let mut r = open_checked(dir.path(), &second, true).unwrap();
        let mut s = String::new();
        r.read_to_string(&mut s).unwrap();
        assert_eq!(s, "hello world");
        // A flipped byte, a cut file, a missing one: Corrupt, naming the file.
        let path = dir.path().join("a.vec");
        std::fs::write(&path, b"hello World").unwrap();
        let err = open_checked(dir.path(), &second, true).unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::Corrupt);
        assert!(err.to_string().contains("a.vec"), "{err}");
        std::fs::write(&path, b"hello").unwrap();
        assert!(open_checked(dir.path(), &second, true).is_err());
        std::fs::remove_file(&path).unwrap();
        assert!(
            open_checked(dir.path(), &second, true)
                .unwrap_err()
                .to_string()
                .contains("missing")
        );
        assert!(!valid_name("../x") && !valid_name(".hidden") && valid_name("visual.3.vec"));
    }
}
