//! [`MappedRows`]: the checkpointed part of a vector file, mapped read-only.
//!
//! The int8 mode keeps its f32 vectors on disk and reads one back for every candidate it
//! re-ranks (`max(ef, 4k)` of them per query). A positioned read costs a system call, a buffer
//! and a decoded copy each; with 384-dimensional vectors that fixed cost was most of a query
//! (`benches/ann_compare`: flat at about 11k queries/s from ef 10 to 40). A mapping reads the
//! row in place. Opening maps nothing in: pages come in on first touch, from the page cache,
//! and the kernel may drop them again under memory pressure (they are clean, file-backed).
//!
//! The mapped range must never shrink while it is mapped, or a read of it faults (`SIGBUS`).
//! The directory lock keeps every other writer of this crate out; within the process a vector
//! file is only ever appended to past its committed length (`files::append` cuts back to the
//! committed length, which is at least what was mapped), cut only at open before it is mapped,
//! and replaced by a new file of a new name. A process that ignores the lock and truncates the
//! file can crash this one; that is the contract of every memory-mapped store (LMDB, Lucene's
//! `MMapDirectory`).

use std::borrow::Cow;
use std::fs::File;
use std::path::Path;

use memmap2::{Mmap, MmapOptions};

use crate::error::Result;
use crate::storage::files::{corrupt, io};

/// Rows `0..rows` of `width` little-endian f32 each, mapped from the start of a file.
pub(crate) struct MappedRows {
    /// `None` for zero rows (an empty mapping is not allowed).
    map: Option<Mmap>,
    rows: usize,
    width: usize,
}

impl std::fmt::Debug for MappedRows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MappedRows")
            .field("rows", &self.rows)
            .field("width", &self.width)
            .finish()
    }
}

impl MappedRows {
    /// Maps the first `rows * width` f32 of `file` (at `path`, named in errors). `Corrupt` if
    /// the file is shorter than that.
    pub(crate) fn map(file: &File, path: &Path, rows: usize, width: usize) -> Result<MappedRows> {
        let bytes = rows
            .checked_mul(width)
            .and_then(|n| n.checked_mul(4))
            .ok_or_else(|| corrupt(path, "vector file size overflows"))?;
        let size = file.metadata().map_err(io(path))?.len();
        if size < bytes as u64 {
            return Err(corrupt(
                path,
                format!("{size} bytes, {rows} vectors of {width} need {bytes}"),
            ));
        }
        let map = if bytes == 0 {
            None
        } else {
            // SAFETY: the range is read-only and never shrinks while mapped (module docs: the
            // directory lock and the append-only use of vector files).
            let map = unsafe { MmapOptions::new().len(bytes).map(file) }.map_err(io(path))?;
            // Re-ranking reads scattered rows: no read-ahead around each fault.
            #[cfg(unix)]
            let _ = map.advise(memmap2::Advice::Random);
            Some(map)
        };
        Ok(MappedRows { map, rows, width })
    }

    /// Row `i`'s little-endian bytes; `None` past the end.
    #[inline]
    pub(crate) fn bytes(&self, i: usize) -> Option<&[u8]> {
        if i >= self.rows {
            return None;
        }
        let row = self.width * 4;
        self.map.as_deref()?.get(i * row..(i + 1) * row)
    }

    /// Row `i` as f32: borrowed from the mapping on little-endian targets (rows are 4-aligned
    /// in a page-aligned mapping), decoded otherwise.
    #[inline]
    pub(crate) fn row(&self, i: usize) -> Option<Cow<'_, [f32]>> {
        let bytes = self.bytes(i)?;
        #[cfg(target_endian = "little")]
        if let Ok(v) = bytemuck::try_cast_slice::<u8, f32>(bytes) {
            return Some(Cow::Borrowed(v));
        }
        Some(Cow::Owned(
            bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap_or_default()))
                .collect(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file_of(rows: &[[f32; 3]]) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v");
        let mut f = File::create(&path).unwrap();
        for r in rows {
            for x in r {
                f.write_all(&x.to_le_bytes()).unwrap();
            }
        }
        (dir, path)
    }

    #[test]
    fn rows_read_back_as_written_and_stop_at_the_mapped_count() {
        let (_d, path) = file_of(&[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]]);
        let file = File::open(&path).unwrap();
        // Only two of the three rows are committed: the third is not readable.
        let m = MappedRows::map(&file, &path, 2, 3).unwrap();
        assert_eq!(&*m.row(1).unwrap(), &[4.0, 5.0, 6.0]);
        assert_eq!(m.bytes(0).unwrap().len(), 12);
        assert!(m.row(2).is_none());
    }

    #[test]
    fn appending_past_the_mapping_leaves_it_readable() {
        let (_d, path) = file_of(&[[1.0, 2.0, 3.0]]);
        let file = File::open(&path).unwrap();
        let m = MappedRows::map(&file, &path, 1, 3).unwrap();
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all(&[0u8; 4096]).unwrap();
        f.sync_all().unwrap();
        assert_eq!(&*m.row(0).unwrap(), &[1.0, 2.0, 3.0]);
    }

    #[test]
    fn a_short_file_is_corrupt_and_an_empty_one_maps_nothing() {
        let (_d, path) = file_of(&[[1.0, 2.0, 3.0]]);
        let file = File::open(&path).unwrap();
        let err = MappedRows::map(&file, &path, 2, 3).unwrap_err();
        assert_eq!(err.kind(), crate::error::ErrorKind::Corrupt);
        assert!(err.to_string().contains("12 bytes"), "{err}");
        let empty = MappedRows::map(&file, &path, 0, 3).unwrap();
        assert!(empty.row(0).is_none());
    }
}
