//! The write-ahead log: append-only files of checksummed records.
//!
//! ```text
//! wal-<seq:016>.log
//!   "CMWAL001" u64 seq                       header (16 bytes)
//!   records: u32 len, u32 crc32(lsn ‖ body), u64 lsn, body (len - 8 bytes)
//! ```
//!
//! A record is written whole into a buffer and reaches the file on [`WalWriter::sync`], which
//! flushes and fsyncs: what `sync` returned for is durable. On reading, a record that does not
//! check (short header, length past the end, checksum mismatch, an unexpected sequence number)
//! ends the log. If nothing valid follows it, it is the torn tail of an interrupted write and is
//! dropped (the file is truncated there); if valid records follow, the log is damaged in the
//! middle and reading fails with `Corrupt` rather than silently losing what comes after.

use std::fs::{File, OpenOptions};
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

const MAGIC: &[u8; 8] = b"CMWAL001";
const HEADER: u64 = 16;
/// Largest record accepted (a batch of vectors; far above what one asset yields).
pub(crate) const MAX_RECORD: usize = 256 << 20;

/// The file name of log `seq`.
pub(crate) fn file_name(seq: u64) -> String {
    format!("wal-{seq:016}.log")
}

/// The sequence number in a log file name.
pub(crate) fn parse_name(name: &str) -> Option<u64> {
    name.strip_prefix("wal-")?
        .strip_suffix(".log")
        .filter(|s| s.len() == 16 && s.bytes().all(|b| b.is_ascii_digit()))?
        .parse()
        .ok()
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |e| Error::from(e).with_context("path", path.display())
}

/// Appends records to one log file.
#[derive(Debug)]
pub(crate) struct WalWriter {
    file: BufWriter<File>,
    path: PathBuf,
    seq: u64,
    /// Bytes in the file, buffered ones included.
    len: u64,
    /// Bytes known durable.
    synced: u64,
    next_lsn: u64,
}

impl WalWriter {
    /// Creates log `seq` in `dir` (fails if it exists), records starting at `first_lsn`.
    pub(crate) fn create(dir: &Path, seq: u64, first_lsn: u64) -> Result<WalWriter> {
        let path = dir.join(file_name(seq));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(io(&path))?;
        let mut w = WalWriter {
            file: BufWriter::with_capacity(1 << 20, file),
            path,
            seq,
            len: 0,
            synced: 0,
            next_lsn: first_lsn,
        };
        w.file.write_all(MAGIC).map_err(io(&w.path))?;
        w.file.write_all(&seq.to_le_bytes()).map_err(io(&w.path))?;
        w.len = HEADER;
        w.sync()?;
        crate::durable::sync_dir(dir).map_err(io(dir))?;
        Ok(w)
    }

    /// Reopens log `seq` for appending after its last valid record (`valid_len` bytes, from
    /// [`read`]), truncating any torn tail.
    pub(crate) fn reopen(
        path: &Path,
        seq: u64,
        valid_len: u64,
        next_lsn: u64,
    ) -> Result<WalWriter> {
        let mut file = OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(io(path))?;
        file.set_len(valid_len).map_err(io(path))?;
        file.seek(SeekFrom::Start(valid_len)).map_err(io(path))?;
        file.sync_all().map_err(io(path))?;
        Ok(WalWriter {
            file: BufWriter::with_capacity(1 << 20, file),
            path: path.to_path_buf(),
            seq,
            len: valid_len,
            synced: valid_len,
            next_lsn,
        })
    }

    /// Appends a record (buffered; durable after [`sync`](Self::sync)). Returns its LSN.
    pub(crate) fn append(&mut self, body: &[u8]) -> Result<u64> {
        if body.len() + 8 > MAX_RECORD {
            return Err(Error::invalid_input(format!(
                "a log record of {} bytes exceeds {MAX_RECORD}; write fewer vectors per call",
                body.len()
            )));
        }
        let lsn = self.next_lsn;
        let mut crc = crc32fast::Hasher::new();
        crc.update(&lsn.to_le_bytes());
        crc.update(body);
        let len = (body.len() + 8) as u32;
        let write = |f: &mut BufWriter<File>| -> std::io::Result<()> {
            f.write_all(&len.to_le_bytes())?;
            f.write_all(&crc.finalize().to_le_bytes())?;
            f.write_all(&lsn.to_le_bytes())?;
            f.write_all(body)
        };
        write(&mut self.file).map_err(io(&self.path))?;
        self.len += 8 + u64::from(len);
        self.next_lsn += 1;
        Ok(lsn)
    }

    /// Writes the buffer out and fsyncs the file.
    pub(crate) fn sync(&mut self) -> Result<()> {
        if self.synced == self.len {
            return Ok(());
        }
        self.file.flush().map_err(io(&self.path))?;
        self.file.get_ref().sync_data().map_err(io(&self.path))?;
        self.synced = self.len;
        Ok(())
    }

    pub(crate) fn seq(&self) -> u64 {
        self.seq
    }

    pub(crate) fn next_lsn(&self) -> u64 {
        self.next_lsn
    }

    /// Bytes written to this file (records and header).
    pub(crate) fn len(&self) -> u64 {
        self.len
    }
}

/// What reading a log file found.
#[derive(Debug)]
pub(crate) struct WalContents {
    /// `(lsn, body)` of every valid record, in order.
    pub(crate) records: Vec<(u64, Vec<u8>)>,
    /// Bytes up to the end of the last valid record.
    pub(crate) valid_len: u64,
    /// Bytes of torn tail after it (dropped).
    pub(crate) torn_bytes: u64,
}

/// Reads log file `path` (sequence `seq`), whose first record must have LSN `first_lsn` if
/// given. Records are streamed through a buffer; only their bodies are kept.
pub(crate) fn read(path: &Path, seq: u64, first_lsn: Option<u64>) -> Result<WalContents> {
    let file = File::open(path).map_err(io(path))?;
    let size = file.metadata().map_err(io(path))?.len();
    let corrupt = |why: String| Error::corrupt(format!("log {}: {why}", path.display()));
    let mut r = BufReader::with_capacity(1 << 20, file);
    let mut header = [0u8; HEADER as usize];
    if size < HEADER {
        // A log created but cut before its header reached the disk: nothing in it.
        return Ok(WalContents {
            records: Vec::new(),
            valid_len: 0,
            torn_bytes: size,
        });
    }
    r.read_exact(&mut header).map_err(io(path))?;
    let (magic, rest) = header.split_at(8);
    if magic != MAGIC || rest != seq.to_le_bytes() {
        return Err(corrupt("bad header".into()));
    }
    let mut records = Vec::new();
    let mut pos = HEADER;
    let mut expected = first_lsn;
    loop {
        let want = move |lsn: u64| expected.is_none_or(|e| e == lsn);
        match next_record(&mut r, size - pos, want)? {
            Next::Record(lsn, body) => {
                pos += 16 + body.len() as u64;
                expected = Some(lsn + 1);
                records.push((lsn, body));
            }
            Next::End => break,
            Next::Bad => {
                // Is anything valid after this point? Then it is damage, not a torn tail.
                drop(r);
                if let Some(at) = find_valid_record(path, pos + 1, size, expected)? {
                    return Err(corrupt(format!(
                        "a damaged record at byte {pos} is followed by valid records (at byte \
                         {at}); refusing to drop them"
                    )));
                }
                return Ok(WalContents {
                    records,
                    valid_len: pos,
                    torn_bytes: size - pos,
                });
            }
        }
    }
    Ok(WalContents {
        records,
        valid_len: pos,
        torn_bytes: 0,
    })
}

enum Next {
    Record(u64, Vec<u8>),
    End,
    Bad,
}

/// Reads the record at the reader's position; `lsn_ok` says whether its LSN may be there
/// (checked before the body is read, so a damaged length costs no allocation or checksum
/// pass unless the LSN beside it is plausible too).
fn next_record(r: &mut impl Read, left: u64, lsn_ok: impl Fn(u64) -> bool) -> Result<Next> {
    if left == 0 {
        return Ok(Next::End);
    }
    let mut head = [0u8; 16];
    if left < 16 || r.read_exact(&mut head).is_err() {
        return Ok(Next::Bad);
    }
    let (len, rest) = head.split_at(4);
    let (crc, lsn) = rest.split_at(4);
    let len = u32::from_le_bytes(len.try_into().unwrap_or_default()) as u64;
    let crc = u32::from_le_bytes(crc.try_into().unwrap_or_default());
    let lsn = u64::from_le_bytes(lsn.try_into().unwrap_or_default());
    if len < 8 || len as usize > MAX_RECORD || 8 + len > left || !lsn_ok(lsn) {
        return Ok(Next::Bad);
    }
    let mut body = vec![0u8; (len - 8) as usize];
    if r.read_exact(&mut body).is_err() {
        return Ok(Next::Bad);
    }
    let mut h = crc32fast::Hasher::new();
    h.update(&lsn.to_le_bytes());
    h.update(&body);
    if h.finalize() != crc {
        return Ok(Next::Bad);
    }
    Ok(Next::Record(lsn, body))
}

/// The offset of a valid record at or after `from` (only on the damage path: a linear scan).
fn find_valid_record(
    path: &Path,
    from: u64,
    size: u64,
    expected: Option<u64>,
) -> Result<Option<u64>> {
    let mut file = File::open(path).map_err(io(path))?;
    let mut bytes = Vec::new();
    file.seek(SeekFrom::Start(from.min(size)))
        .map_err(io(path))?;
    file.take(size.saturating_sub(from))
        .read_to_end(&mut bytes)
        .map_err(io(path))?;
    // Any later record has an LSN at or after the expected one, and at most one more per 16
    // bytes of log (a record's header alone is 16 bytes). Checking that before reading a
    // candidate's body keeps the scan linear: without it every offset whose 4 bytes happen to
    // read as a length that fits was read and checksummed up to that length (quadratic in the
    // damaged tail: hours for a log of a few hundred MB).
    let ahead = bytes.len() as u64 / 16 + 1;
    let plausible = move |lsn: u64| expected.is_none_or(|e| lsn >= e && lsn - e <= ahead);
    for start in 0..bytes.len() {
        let Some(tail) = bytes.get(start..) else {
            break;
        };
        let mut r = tail;
        if let Next::Record(..) = next_record(&mut r, tail.len() as u64, plausible)? {
            return Ok(Some(from + start as u64));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_log(dir: &Path, bodies: &[&[u8]]) -> PathBuf {
        let mut w = WalWriter::create(dir, 3, 10).unwrap();
        for b in bodies {
            w.append(b).unwrap();
        }
        w.sync().unwrap();
        dir.join(file_name(3))
    }

    #[test]
    fn records_round_trip_and_a_torn_tail_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_log(dir.path(), &[b"one", b"two", b"three"]);
        let all = read(&path, 3, Some(10)).unwrap();
        assert_eq!(all.records.len(), 3);
        assert_eq!(all.records[2], (12, b"three".to_vec()));
        let full = std::fs::metadata(&path).unwrap().len();
        // Cut inside the last record: the first two survive, the tail is reported.
        for cut in [full - 1, full - 5, full - 12] {
            std::fs::OpenOptions::new()
                .write(true)
                .open(&path)
                .unwrap()
                .set_len(cut)
                .unwrap();
            let got = read(&path, 3, Some(10)).unwrap();
            assert_eq!(got.records.len(), 2, "cut at {cut}");
            assert_eq!(got.torn_bytes, cut - got.valid_len);
        }
        // Appending after a torn tail continues the sequence.
        let got = read(&path, 3, Some(10)).unwrap();
        let mut w = WalWriter::reopen(&path, 3, got.valid_len, 12).unwrap();
        w.append(b"again").unwrap();
        w.sync().unwrap();
        let again = read(&path, 3, Some(10)).unwrap();
        assert_eq!(again.records.len(), 3);
        assert_eq!(again.torn_bytes, 0);
    }

    #[test]
    fn damage_in_the_middle_is_corrupt_not_silently_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_log(dir.path(), &[b"first record", b"second record", b"third"]);
        let mut bytes = std::fs::read(&path).unwrap();
        // Flip a byte inside the first record's body.
        bytes[16 + 16 + 2] ^= 0x40;
        std::fs::write(&path, &bytes).unwrap();
        let err = read(&path, 3, Some(10)).unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::Corrupt);
        // Garbage at the end (no valid record after it) is a torn tail.
        let second = tempfile::tempdir().unwrap();
        let path = write_log(second.path(), &[b"a", b"b"]);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.extend_from_slice(&[0xAB; 40]);
        std::fs::write(&path, &bytes).unwrap();
        let got = read(&path, 3, Some(10)).unwrap();
        assert_eq!((got.records.len(), got.torn_bytes), (2, 40));
        // A wrong header is corrupt.
        assert!(read(&path, 4, None).is_err());
    }

    #[test]
    fn damage_before_a_large_tail_is_found_in_linear_time() {
        // 32 MB of records whose bodies are noise (many offsets read as lengths that fit), the
        // first record damaged: the scan for valid records after it must not read and checksum
        // a candidate body at every such offset (liveness bound, not a timing).
        let dir = tempfile::tempdir().unwrap();
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let bodies: Vec<Vec<u8>> = (0..256)
            .map(|_| {
                (0..128 << 10)
                    .map(|_| {
                        state ^= state << 13;
                        state ^= state >> 7;
                        state ^= state << 17;
                        (state >> 24) as u8
                    })
                    .collect()
            })
            .collect();
        let refs: Vec<&[u8]> = bodies.iter().map(Vec::as_slice).collect();
        let path = write_log(dir.path(), &refs);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[16 + 20] ^= 0xFF;
        std::fs::write(&path, &bytes).unwrap();
        let read = crate::fuzz::within(std::time::Duration::from_secs(120), move || {
            read(&path, 3, Some(10)).map(|c| c.records.len())
        })
        .expect("the scan finishes");
        assert_eq!(read.unwrap_err().kind(), crate::ErrorKind::Corrupt);
    }

    #[test]
    fn names_parse() {
        assert_eq!(parse_name(&file_name(42)), Some(42));
        assert_eq!(parse_name("wal-12.log"), None);
        assert_eq!(parse_name("wal-000000000000001x.log"), None);
    }
}
