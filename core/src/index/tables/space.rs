//! One embedding space of an index: rows, vectors (f32, or int8 codes with the f32 on disk),
//! tombstones, the per-asset id lists and, for HNSW, the graph.

use std::borrow::Cow;
use std::fs::File;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crossmodal_hnsw::{Graph, Vectors};

use super::assets::AssetTable;
use crate::embedding::Segment;
use crate::error::{Error, Result};
use crate::index::KindCounts;
use crate::media::MediaKind;
use crate::storage::blocks::RowBlocks;
use crate::storage::codec::ByteReader;
use crate::storage::files::FileEntry;
use crate::storage::mapped::MappedRows;
use crate::vector::{dot, dot_i8, quantize_i8};

/// Bytes of one row in a rows file.
pub(crate) const ROW_BYTES: usize = 32;

/// Identity and metadata reference of one stored vector (32 bytes in memory and on disk).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Row {
    pub(crate) asset: u32,
    pub(crate) seq: u32,
    /// CRC-32 of the unit vector's little-endian bytes (checked when it is read back from disk).
    pub(crate) crc: u32,
    /// Slot in the asset's metadata list.
    pub(crate) meta: u16,
    has_segment: bool,
    start: f64,
    end: f64,
}

impl Row {
    pub(crate) fn new(asset: u32, seq: u32, meta: u16, segment: Option<Segment>, crc: u32) -> Row {
        let (has_segment, start, end) = match segment {
            Some(s) => (true, s.start_sec, s.end_sec),
            None => (false, 0.0, 0.0),
        };
        Row {
            asset,
            seq,
            crc,
            meta,
            has_segment,
            start,
            end,
        }
    }

    /// The clip the vector describes.
    pub(crate) fn segment(&self) -> Option<Segment> {
        self.has_segment.then_some(Segment {
            start_sec: self.start,
            end_sec: self.end,
        })
    }

    /// `u32 asset, u32 seq, u16 meta, u16 flags (1: segment), f64 start, f64 end, u32 crc`.
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.asset.to_le_bytes());
        out.extend_from_slice(&self.seq.to_le_bytes());
        out.extend_from_slice(&self.meta.to_le_bytes());
        out.extend_from_slice(&u16::from(self.has_segment).to_le_bytes());
        out.extend_from_slice(&self.start.to_le_bytes());
        out.extend_from_slice(&self.end.to_le_bytes());
        out.extend_from_slice(&self.crc.to_le_bytes());
    }

    pub(crate) fn decode(r: &mut ByteReader<'_>) -> Result<Row> {
        let asset = r.u32()?;
        let seq = r.u32()?;
        let meta = r.u16()?;
        let flags = r.u16()?;
        let start = r.f64()?;
        let end = r.f64()?;
        let crc = r.u32()?;
        let segment = match flags {
            0 => None,
            1 => Some(Segment::new(start, end).map_err(|e| r.corrupt(e.message().to_string()))?),
            other => return Err(r.corrupt(format!("unknown row flags {other}"))),
        };
        Ok(Row::new(asset, seq, meta, segment, crc))
    }
}

/// The live ids of one asset in a space: one inline (the common case, an image), or a list.
#[derive(Debug, Clone)]
pub(crate) enum IdList {
    One(u32),
    Many(Vec<u32>),
}

impl IdList {
    fn push(&mut self, id: u32) {
        match self {
            IdList::One(a) => *self = IdList::Many(vec![*a, id]),
            IdList::Many(v) => v.push(id),
        }
    }

    /// Removes `id`; true if the list is then empty.
    fn remove(&mut self, id: u32) -> bool {
        match self {
            IdList::One(a) => *a == id,
            IdList::Many(v) => {
                v.retain(|x| *x != id);
                if let [only] = v.as_slice() {
                    *self = IdList::One(*only);
                    return false;
                }
                v.is_empty()
            }
        }
    }

    pub(crate) fn as_slice(&self) -> &[u32] {
        match self {
            IdList::One(a) => std::slice::from_ref(a),
            IdList::Many(v) => v,
        }
    }
}

/// The live ids of every asset in a space, indexed by the asset's dense index in the
/// [`AssetTable`] (a position, so no hashing; and growing it reallocates one array instead of
/// rehashing into a new table and freeing the old one, which made glibc raise its trim
/// threshold and keep up to 2 MB of freed heap resident per 30k assets).
#[derive(Debug, Clone, Default)]
pub(crate) struct AssetIds(Vec<Option<IdList>>);

impl AssetIds {
    /// The live ids of `asset`, if it has any here.
    pub(crate) fn get(&self, asset: u32) -> Option<&IdList> {
        self.0.get(asset as usize)?.as_ref()
    }

    /// Adds `id` to `asset`'s list.
    fn note(&mut self, asset: u32, id: u32) {
        let at = asset as usize;
        if at >= self.0.len() {
            self.0.resize(at + 1, None);
        }
        if let Some(slot) = self.0.get_mut(at) {
            match slot {
                Some(list) => list.push(id),
                None => *slot = Some(IdList::One(id)),
            }
        }
    }

    /// Removes `id` from `asset`'s list.
    fn remove(&mut self, asset: u32, id: u32) {
        if let Some(slot) = self.0.get_mut(asset as usize)
            && slot.as_mut().is_some_and(|list| list.remove(id))
        {
            *slot = None;
        }
    }

    fn clear(&mut self) {
        self.0.clear();
    }

    fn memory_bytes(&self) -> usize {
        self.0.capacity() * std::mem::size_of::<Option<IdList>>()
            + self
                .0
                .iter()
                .map(|v| match v {
                    Some(IdList::Many(v)) => v.capacity() * 4,
                    _ => 0,
                })
                .sum::<usize>()
    }
}

/// The bit of a kind in the dense per-row kind array.
pub(crate) fn kind_bit(kind: MediaKind) -> u8 {
    match kind {
        MediaKind::Image => 1,
        MediaKind::Video => 2,
        MediaKind::Audio => 4,
    }
}

/// CRC-32 of a vector's little-endian bytes.
pub(crate) fn vector_crc(v: &[f32]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    let mut buf = [0u8; 256];
    for chunk in v.chunks(64) {
        let mut n = 0;
        for (x, slot) in chunk.iter().zip(buf.chunks_exact_mut(4)) {
            slot.copy_from_slice(&x.to_le_bytes());
            n += 4;
        }
        h.update(buf.get(..n).unwrap_or_default());
    }
    h.finalize()
}

/// Int8 codes for the walk, the f32 vectors on disk for exact re-ranking.
#[derive(Debug)]
pub(crate) struct Int8Data {
    pub(crate) codes: RowBlocks<i8>,
    pub(crate) scales: Vec<f32>,
    /// f32 vectors of rows `tail_start..` (not yet in the vector file).
    pub(crate) tail: RowBlocks<f32>,
    pub(crate) tail_start: usize,
    /// The vector file's rows `..tail_start`, mapped.
    pub(crate) file: Option<Arc<MappedRows>>,
}

impl Int8Data {
    /// After a checkpoint or a compaction wrote rows `..cut` to `file` (at `path`): maps them
    /// and keeps only the f32 rows after `cut` in memory.
    pub(crate) fn checkpointed_to(
        &mut self,
        file: &File,
        path: &Path,
        cut: usize,
        dim: usize,
    ) -> Result<()> {
        let mapped = MappedRows::map(file, path, cut, dim)?;
        let mut tail = RowBlocks::new(dim);
        for id in cut..self.tail_start + self.tail.len() {
            tail.push(self.tail.get(id - self.tail_start));
        }
        self.tail = tail;
        self.tail_start = cut;
        self.file = Some(Arc::new(mapped));
        Ok(())
    }
}

/// How a space holds its vectors.
#[derive(Debug)]
pub(crate) enum VectorData {
    /// Unit f32 vectors in memory.
    F32(RowBlocks<f32>),
    /// Int8 codes in memory, f32 on disk.
    Int8(Int8Data),
}

/// The data files of a space, as the manifest names them.
#[derive(Debug, Clone, Default)]
pub(crate) struct SpaceFiles {
    /// Generation of the vector, row and code files (a compaction starts new ones).
    pub(crate) file_gen: u64,
    pub(crate) vectors: Option<FileEntry>,
    pub(crate) rows: Option<FileEntry>,
    pub(crate) codes: Option<FileEntry>,
}

/// One space.
#[derive(Debug)]
pub(crate) struct SpaceTable {
    pub(crate) dim: usize,
    pub(crate) vectors: VectorData,
    pub(crate) rows: Vec<Row>,
    /// Each row's kind bit, dense so kind filters scan one byte a row.
    pub(crate) kinds: Vec<u8>,
    live: Vec<u64>,
    pub(crate) live_count: usize,
    pub(crate) kind_counts: KindCounts,
    /// Live ids per asset index.
    pub(crate) by_asset: AssetIds,
    pub(crate) graph: Option<Graph>,
    /// Rows `..linked` are in the graph; `linked..` are searched exactly until the maintenance
    /// thread links them.
    pub(crate) linked: AtomicUsize,
    /// Rows in the data files.
    pub(crate) checkpointed: usize,
    pub(crate) files: SpaceFiles,
}

/// A record being added: its unit vector and its place in the asset table.
pub(crate) struct NewRow<'a> {
    pub(crate) asset: u32,
    pub(crate) seq: u32,
    pub(crate) meta: u16,
    pub(crate) kind: MediaKind,
    pub(crate) segment: Option<Segment>,
    pub(crate) unit: &'a [f32],
}

impl SpaceTable {
    /// An empty space of `dim` dimensions: with a graph (`graph`), int8 codes (`int8`).
    pub(crate) fn new(dim: usize, graph: Option<Graph>, int8: bool) -> SpaceTable {
        let vectors = if int8 {
            VectorData::Int8(Int8Data {
                codes: RowBlocks::new(dim),
                scales: Vec::new(),
                tail: RowBlocks::new(dim),
                tail_start: 0,
                file: None,
            })
        } else {
            VectorData::F32(RowBlocks::new(dim))
        };
        SpaceTable {
            dim,
            vectors,
            rows: Vec::new(),
            kinds: Vec::new(),
            live: Vec::new(),
            live_count: 0,
            kind_counts: KindCounts::default(),
            by_asset: AssetIds::default(),
            graph,
            linked: AtomicUsize::new(0),
            checkpointed: 0,
            files: SpaceFiles::default(),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.rows.len()
    }

    pub(crate) fn tombstones(&self) -> usize {
        self.rows.len() - self.live_count
    }

    pub(crate) fn linked(&self) -> usize {
        self.linked.load(Ordering::Acquire).min(self.rows.len())
    }

    #[inline]
    pub(crate) fn is_live(&self, id: usize) -> bool {
        self.live
            .get(id / 64)
            .is_some_and(|w| w & (1u64 << (id % 64)) != 0)
    }

    fn set_live(&mut self, id: usize, on: bool) {
        let word = id / 64;
        if self.live.len() <= word {
            self.live.resize(word + 1, 0);
        }
        if let Some(w) = self.live.get_mut(word) {
            if on {
                *w |= 1u64 << (id % 64);
            } else {
                *w &= !(1u64 << (id % 64));
            }
        }
    }

    /// The tombstone bitmap as words (bit `i`: row `i` is live).
    pub(crate) fn live_words(&self) -> &[u64] {
        &self.live
    }

    /// Appends rows whose vectors and rows were already stored (loading); `live` from the file.
    pub(crate) fn restore_live(&mut self, words: Vec<u64>, assets: &AssetTable) -> Result<()> {
        self.live = words;
        self.live_count = 0;
        self.kind_counts = KindCounts::default();
        self.by_asset.clear();
        for id in 0..self.rows.len() {
            if !self.is_live(id) {
                continue;
            }
            let Some(row) = self.rows.get(id).copied() else {
                continue;
            };
            let kind = assets
                .meta_of(row.asset, row.meta)
                .map(|m| m.kind)
                .ok_or_else(|| {
                    Error::corrupt(format!("row {id} names an unknown asset or metadata"))
                })?;
            self.live_count += 1;
            self.kind_counts.add(kind);
            self.by_asset.note(row.asset, id as u32);
        }
        // Bits past the last row must be clear.
        let extra = (self.rows.len()..self.live.len() * 64).any(|i| self.is_live(i));
        if extra {
            return Err(Error::corrupt(
                "tombstone bitmap marks rows that do not exist",
            ));
        }
        Ok(())
    }

    /// Appends a row loaded from the files: its vector as little-endian bytes (f32 mode; no
    /// temporary copy), its row and kind. `Corrupt` for a component that is not finite.
    pub(crate) fn push_loaded(&mut self, row: Row, kind: MediaKind, le_bytes: &[u8]) -> Result<()> {
        let VectorData::F32(v) = &mut self.vectors else {
            return Err(Error::backend("push_loaded is for f32 spaces"));
        };
        let mut finite = true;
        v.push_with(|slot| {
            for (x, b) in slot.iter_mut().zip(le_bytes.chunks_exact(4)) {
                *x = f32::from_le_bytes(b.try_into().unwrap_or_default());
                finite &= x.is_finite();
            }
        });
        if !finite {
            return Err(Error::corrupt("a stored vector component is not finite"));
        }
        let id = self.rows.len();
        self.rows.push(row);
        self.kinds.push(kind_bit(kind));
        self.set_live(id, true);
        Ok(())
    }

    /// Appends one stored row (loading or replaying): vector, row, kind, live.
    pub(crate) fn push_row(&mut self, row: Row, kind: MediaKind, unit: &[f32]) {
        let id = self.rows.len();
        match &mut self.vectors {
            VectorData::F32(v) => v.push(unit),
            VectorData::Int8(d) => {
                let mut code = Vec::with_capacity(unit.len());
                let scale = quantize_i8(unit, &mut code);
                d.codes.push(&code);
                d.scales.push(scale);
                d.tail.push(unit);
            }
        }
        self.rows.push(row);
        self.kinds.push(kind_bit(kind));
        self.set_live(id, true);
    }

    /// Adds a record, replacing (tombstoning) the live row of the same asset and `seq`.
    /// `counts`: the asset table whose live counts follow (`None` while a compaction rebuilds a
    /// copy of the space: the live table already counted the change).
    pub(crate) fn add(
        &mut self,
        mut counts: Option<&mut AssetTable>,
        new: &NewRow<'_>,
    ) -> Result<()> {
        if let Some(old) = self.by_asset.get(new.asset).and_then(|ids| {
            ids.as_slice().iter().copied().find(|id| {
                self.rows
                    .get(*id as usize)
                    .is_some_and(|r| r.seq == new.seq)
            })
        }) {
            self.kill(old as usize, counts.as_deref_mut());
        }
        let id = u32::try_from(self.rows.len())
            .map_err(|_| Error::invalid_input("a space holds at most 2^32 vectors"))?;
        let row = Row::new(
            new.asset,
            new.seq,
            new.meta,
            new.segment,
            vector_crc(new.unit),
        );
        self.push_row(row, new.kind, new.unit);
        self.live_count += 1;
        self.kind_counts.add(new.kind);
        self.by_asset.note(new.asset, id);
        if let Some(a) = counts.and_then(|c| c.get_mut(new.asset)) {
            a.live += 1;
        }
        Ok(())
    }

    /// Appends a live row copied from another table (a compaction), with its vector (and code).
    pub(crate) fn push_copied(&mut self, row: Row, kind: MediaKind, unit: &[f32]) {
        let id = self.rows.len() as u32;
        self.push_row(row, kind, unit);
        self.live_count += 1;
        self.kind_counts.add(kind);
        self.by_asset.note(row.asset, id);
    }

    /// Tombstones row `id` (no-op if it is not live); `counts` as in [`add`](Self::add).
    pub(crate) fn kill(&mut self, id: usize, counts: Option<&mut AssetTable>) {
        if !self.is_live(id) {
            return;
        }
        self.set_live(id, false);
        self.live_count -= 1;
        if let Some(row) = self.rows.get(id).copied() {
            if let Some(kind) = self.kind_at(id) {
                self.kind_counts.remove(kind);
            }
            self.by_asset.remove(row.asset, id as u32);
            if let Some(a) = counts.and_then(|c| c.get_mut(row.asset)) {
                a.live = a.live.saturating_sub(1);
            }
        }
    }

    fn kind_at(&self, id: usize) -> Option<MediaKind> {
        match self.kinds.get(id)? {
            1 => Some(MediaKind::Image),
            2 => Some(MediaKind::Video),
            4 => Some(MediaKind::Audio),
            _ => None,
        }
    }

    /// Tombstones every live row of `asset`; returns how many.
    pub(crate) fn delete_asset(
        &mut self,
        asset: u32,
        mut counts: Option<&mut AssetTable>,
    ) -> usize {
        let ids: Vec<u32> = self
            .by_asset
            .get(asset)
            .map(|l| l.as_slice().to_vec())
            .unwrap_or_default();
        for id in &ids {
            self.kill(*id as usize, counts.as_deref_mut());
        }
        ids.len()
    }

    /// Row `id`'s unit vector: from memory, or (int8 mode, checkpointed rows) from the mapped
    /// vector file, checked against the row's CRC (a flipped byte on disk is `Corrupt`).
    #[inline]
    pub(crate) fn vector(&self, id: usize) -> Result<Cow<'_, [f32]>> {
        match &self.vectors {
            VectorData::F32(v) => Ok(Cow::Borrowed(v.get(id))),
            VectorData::Int8(d) => {
                if id >= d.tail_start {
                    return Ok(Cow::Borrowed(d.tail.get(id - d.tail_start)));
                }
                let file = d
                    .file
                    .as_ref()
                    .ok_or_else(|| Error::backend("int8 index without its vector file"))?;
                let bytes = file.bytes(id).ok_or_else(|| {
                    Error::corrupt(format!("vector {id} is past the end of the vector file"))
                })?;
                let crc = self.rows.get(id).map(|r| r.crc).unwrap_or_default();
                if crc32fast::hash(bytes) != crc {
                    return Err(Error::corrupt(format!(
                        "vector {id} read back from the vector file does not match its checksum"
                    )));
                }
                file.row(id).ok_or_else(|| {
                    Error::corrupt(format!("vector {id} is past the end of the vector file"))
                })
            }
        }
    }

    /// f32 vectors of rows `from..to` still in memory for the checkpoint (f32 mode: all; int8
    /// mode: the tail), chunk by chunk.
    pub(crate) fn memory_vectors(&self, id: usize) -> Option<&[f32]> {
        match &self.vectors {
            VectorData::F32(v) => Some(v.get(id)),
            VectorData::Int8(d) => id.checked_sub(d.tail_start).map(|i| d.tail.get(i)),
        }
    }

    /// Bytes held in memory.
    pub(crate) fn memory_bytes(&self) -> usize {
        let vectors = match &self.vectors {
            VectorData::F32(v) => v.memory_bytes(),
            VectorData::Int8(d) => {
                d.codes.memory_bytes() + d.scales.capacity() * 4 + d.tail.memory_bytes()
            }
        };
        vectors
            + self.rows.capacity() * std::mem::size_of::<Row>()
            + self.kinds.capacity()
            + self.live.capacity() * 8
            + self.by_asset.memory_bytes()
            + self.graph.as_ref().map_or(0, Graph::memory_bytes)
    }

    /// Distances between stored rows, for inserting into the graph.
    pub(crate) fn node_vectors(&self) -> NodeVectors<'_> {
        match &self.vectors {
            VectorData::F32(v) => NodeVectors::F32(v),
            VectorData::Int8(d) => NodeVectors::Int8(&d.codes, &d.scales),
        }
    }
}

/// A space's vectors as the graph's insert sees them.
pub(crate) enum NodeVectors<'a> {
    F32(&'a RowBlocks<f32>),
    Int8(&'a RowBlocks<i8>, &'a [f32]),
}

/// Neighbours ahead to prefetch: rows of about 8 KB in all (measured best at 384, 512 and 1024
/// dims: 5, 4, 2); of each, only its first `PREFETCH_LINES` lines are asked for.
pub(crate) fn prefetch_ahead(row_bytes: usize) -> usize {
    (8192 / row_bytes.max(1)).clamp(1, 8)
}

impl Vectors for NodeVectors<'_> {
    #[inline]
    fn distance(&self, a: u32, b: u32) -> f32 {
        match self {
            NodeVectors::F32(v) => 1.0 - dot(v.get(a as usize), v.get(b as usize)),
            NodeVectors::Int8(codes, scales) => {
                let s = scales.get(a as usize).copied().unwrap_or(0.0)
                    * scales.get(b as usize).copied().unwrap_or(0.0);
                1.0 - s * dot_i8(codes.get(a as usize), codes.get(b as usize)) as f32
            }
        }
    }

    #[inline]
    fn prefetch(&self, id: u32) {
        match self {
            NodeVectors::F32(v) => v.prefetch(id as usize),
            NodeVectors::Int8(c, _) => c.prefetch(id as usize),
        }
    }

    fn prefetch_ahead(&self) -> usize {
        match self {
            NodeVectors::F32(v) => prefetch_ahead(v.width() * 4),
            NodeVectors::Int8(c, _) => prefetch_ahead(c.width()),
        }
    }
}
