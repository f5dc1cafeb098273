//! Random access to the bytes a probe reads: a slice in memory, or a file read a few bytes at a
//! time (box and chunk headers, a frame, the last bytes), so a multi-GB file is never read whole
//! to learn what it is.

use std::borrow::Cow;
use std::fs::File;
use std::io::{self, BufRead, Read, Seek, SeekFrom};
use std::path::Path;

use crate::error::{Error, Result};

/// Bytes a probe can read anywhere.
pub(crate) trait Source {
    /// Length in bytes.
    fn len(&self) -> u64;

    /// Up to `n` bytes at `offset`: fewer only at the end, none past it.
    fn read(&self, offset: u64, n: usize) -> Result<Cow<'_, [u8]>>;
}

impl Source for [u8] {
    fn len(&self) -> u64 {
        <[u8]>::len(self) as u64
    }

    fn read(&self, offset: u64, n: usize) -> Result<Cow<'_, [u8]>> {
        let start = usize::try_from(offset).unwrap_or(usize::MAX);
        let end = start.saturating_add(n);
        Ok(Cow::Borrowed(
            self.get(start..end.min(<[u8]>::len(self)))
                .unwrap_or_default(),
        ))
    }
}

/// A file read in place with positioned reads (no shared cursor).
pub(crate) struct FileSource<'a> {
    file: &'a File,
    len: u64,
    path: &'a Path,
}

impl<'a> FileSource<'a> {
    /// `file` (opened from `path`, named in errors) of `len` bytes.
    pub(crate) fn new(file: &'a File, len: u64, path: &'a Path) -> Self {
        FileSource { file, len, path }
    }
}

#[cfg(unix)]
fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    std::os::unix::fs::FileExt::read_at(file, buf, offset)
}

#[cfg(windows)]
fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    std::os::windows::fs::FileExt::seek_read(file, buf, offset)
}

impl Source for FileSource<'_> {
    fn len(&self) -> u64 {
        self.len
    }

    fn read(&self, offset: u64, n: usize) -> Result<Cow<'_, [u8]>> {
        let want = usize::try_from(self.len.saturating_sub(offset))
            .unwrap_or(usize::MAX)
            .min(n);
        let mut buf = vec![0u8; want];
        let mut filled = 0;
        while filled < want {
            let Some(rest) = buf.get_mut(filled..) else {
                break;
            };
            match read_at(self.file, rest, offset + filled as u64) {
                Ok(0) => break,
                Ok(k) => filled += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    return Err(Error::from(e).with_context("path", self.path.display()));
                }
            }
        }
        buf.truncate(filled);
        Ok(Cow::Owned(buf))
    }
}

/// A `Read + Seek + BufRead` view of a [`Source`], for parsers that take a reader (reads are
/// buffered in 8 KiB windows).
pub(crate) struct SourceReader<'a, S: Source + ?Sized> {
    src: &'a S,
    pos: u64,
    buf: Vec<u8>,
    /// Offset of `buf` in the source.
    buf_at: u64,
}

impl<'a, S: Source + ?Sized> SourceReader<'a, S> {
    const WINDOW: usize = 8 * 1024;

    pub(crate) fn new(src: &'a S) -> Self {
        SourceReader {
            src,
            pos: 0,
            buf: Vec::new(),
            buf_at: 0,
        }
    }
}

impl<S: Source + ?Sized> BufRead for SourceReader<'_, S> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        let in_buf = self.pos >= self.buf_at && self.pos < self.buf_at + self.buf.len() as u64;
        if !in_buf {
            let window = self
                .src
                .read(self.pos, Self::WINDOW)
                .map_err(io::Error::other)?;
            self.buf = window.into_owned();
            self.buf_at = self.pos;
        }
        let from = usize::try_from(self.pos - self.buf_at).unwrap_or(usize::MAX);
        Ok(self.buf.get(from..).unwrap_or_default())
    }

    fn consume(&mut self, amt: usize) {
        self.pos = self.pos.saturating_add(amt as u64);
    }
}

impl<S: Source + ?Sized> Read for SourceReader<'_, S> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let available = self.fill_buf()?;
        let n = available.len().min(out.len());
        if let (Some(dst), Some(src)) = (out.get_mut(..n), available.get(..n)) {
            dst.copy_from_slice(src);
        }
        self.consume(n);
        Ok(n)
    }
}

impl<S: Source + ?Sized> Seek for SourceReader<'_, S> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::End(d) => self.src.len().checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        let Some(target) = target else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "seek before the start",
            ));
        };
        self.pos = target;
        Ok(target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_and_files_read_alike() {
        let data: Vec<u8> = (0..=255u8).cycle().take(50_000).collect();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.bin");
        std::fs::write(&path, &data).unwrap();
        let file = File::open(&path).unwrap();
        let fs = FileSource::new(&file, data.len() as u64, &path);
        let mem: &[u8] = &data;
        for (off, n) in [
            (0u64, 10usize),
            (49_990, 100),
            (50_000, 5),
            (60_000, 5),
            (123, 0),
        ] {
            assert_eq!(
                fs.read(off, n).unwrap().as_ref(),
                mem.read(off, n).unwrap().as_ref(),
                "{off} {n}"
            );
        }
        let mut r = SourceReader::new(&fs);
        r.seek(SeekFrom::Start(9_000)).unwrap();
        let mut out = vec![0u8; 20_000];
        r.read_exact(&mut out).unwrap();
        assert_eq!(out, &data[9_000..29_000]);
        assert_eq!(r.seek(SeekFrom::End(-10)).unwrap(), 49_990);
        let mut rest = Vec::new();
        r.read_to_end(&mut rest).unwrap();
        assert_eq!(rest, &data[49_990..]);
    }
}
