//! Little-endian binary encoding with bounds-checked reading: every read of untrusted bytes
//! (log records, row files) goes through [`ByteReader`], which answers a short or malformed
//! input with a `Corrupt` error, never a panic or an allocation the input did not pay for.

use crate::error::{Error, Result};

/// Appends little-endian values to a buffer.
#[derive(Debug, Default)]
pub(crate) struct ByteWriter {
    pub(crate) buf: Vec<u8>,
}

impl ByteWriter {
    pub(crate) fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }
    pub(crate) fn u16(&mut self, v: u16) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub(crate) fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub(crate) fn f64(&mut self, v: f64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub(crate) fn bytes(&mut self, v: &[u8]) {
        self.buf.extend_from_slice(v);
    }
    /// A `u32` length, then the bytes.
    pub(crate) fn blob(&mut self, v: &[u8]) {
        self.u32(v.len() as u32);
        self.bytes(v);
    }
    pub(crate) fn f32s(&mut self, v: &[f32]) {
        self.buf.reserve(v.len() * 4);
        for x in v {
            self.buf.extend_from_slice(&x.to_le_bytes());
        }
    }
}

/// Reads little-endian values from a byte slice; every shortfall is `Corrupt` naming `what`.
#[derive(Debug)]
pub(crate) struct ByteReader<'a> {
    bytes: &'a [u8],
    what: &'static str,
}

impl<'a> ByteReader<'a> {
    pub(crate) fn new(bytes: &'a [u8], what: &'static str) -> Self {
        ByteReader { bytes, what }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    pub(crate) fn remaining(&self) -> usize {
        self.bytes.len()
    }

    pub(crate) fn corrupt(&self, why: impl std::fmt::Display) -> Error {
        Error::corrupt(format!("{}: {why}", self.what))
    }

    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if n > self.bytes.len() {
            return Err(self.corrupt(format!("needs {n} more bytes, {} left", self.bytes.len())));
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let b = self.take(N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(b);
        Ok(out)
    }

    pub(crate) fn u8(&mut self) -> Result<u8> {
        Ok(self.array::<1>()?[0])
    }
    pub(crate) fn u16(&mut self) -> Result<u16> {
        Ok(u16::from_le_bytes(self.array()?))
    }
    pub(crate) fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    pub(crate) fn f64(&mut self) -> Result<f64> {
        Ok(f64::from_le_bytes(self.array()?))
    }
    pub(crate) fn blob(&mut self) -> Result<&'a [u8]> {
        let n = self.u32()? as usize;
        self.take(n)
    }
    /// `n` f32 values (the length is checked against the bytes left before allocating).
    pub(crate) fn f32s(&mut self, n: usize) -> Result<Vec<f32>> {
        let bytes = self.take(
            n.checked_mul(4)
                .ok_or_else(|| self.corrupt("length overflows"))?,
        )?;
        Ok(bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap_or_default()))
            .collect())
    }
    /// A count of items each at least `min_bytes` long: refused if the bytes left cannot hold
    /// them (so a damaged count never drives a huge allocation).
    pub(crate) fn count(&mut self, min_bytes: usize) -> Result<usize> {
        let n = self.u32()? as usize;
        if n.saturating_mul(min_bytes.max(1)) > self.bytes.len() {
            return Err(self.corrupt(format!(
                "claims {n} items, only {} bytes left",
                self.bytes.len()
            )));
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_short_input_is_corrupt() {
        let mut w = ByteWriter::default();
        w.u8(7);
        w.u32(1 << 30);
        w.f64(2.5);
        w.blob(b"abc");
        w.f32s(&[1.0, -2.0]);
        let mut r = ByteReader::new(&w.buf, "test");
        assert_eq!(r.u8().unwrap(), 7);
        assert_eq!(r.u32().unwrap(), 1 << 30);
        assert_eq!(r.f64().unwrap(), 2.5);
        assert_eq!(r.blob().unwrap(), b"abc");
        assert_eq!(r.f32s(2).unwrap(), vec![1.0, -2.0]);
        assert!(r.is_empty());
        let err = r.u32().unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::Corrupt);
        let mut huge = ByteReader::new(&[0xff, 0xff, 0xff, 0xff, 1, 2], "test");
        assert!(huge.count(1).is_err());
        let mut huge = ByteReader::new(&[0xff, 0xff, 0xff, 0x7f], "test");
        assert!(huge.f32s(usize::MAX).is_err());
    }
}
