//! `FlatIndex`: exact cosine search over contiguous, normalised vectors.

// Row and vector offsets are computed from the table's own lengths.
#![allow(clippy::indexing_slicing)]

use async_trait::async_trait;
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use super::{
    Hit, IndexCapabilities, IndexSpec, IndexStats, KindCounts, RecordMeta, VectorIndex,
    VectorQuery, VectorRecord, check_query, check_records,
};
use crate::asset::AssetId;
use crate::embedding::{EmbeddingSpace, Segment};
use crate::error::{Error, Result};
use crate::media::MediaKind;
use crate::vector::{cosine_of_unit, normalized};

/// An exact index: every query scans every vector of its space.
///
/// Vectors are normalised at insert and stored row-major in one contiguous `Vec<f32>` per space,
/// so a query is a streaming pass of SIMD inner products (memory-bandwidth bound). It is the
/// reference every approximate index is checked against, and a fine choice up to ~100k vectors.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use crossmodal_core::{AssetId, EmbeddingSpace, FlatIndex, IndexSpec, MediaFormat, MediaKind,
///                  RecordMeta, VectorIndex, VectorQuery, VectorRecord};
/// let index = FlatIndex::new(IndexSpec::new("demo-model", 3));
/// let meta = RecordMeta { kind: MediaKind::Image, format: MediaFormat::Png, tags: vec![], created_at_ms: 0 };
/// index.upsert(vec![VectorRecord {
///     asset_id: AssetId::from_content(b"red square"), space: EmbeddingSpace::Visual, seq: 0,
///     segment: None, vector: vec![1.0, 0.0, 0.0], meta,
/// }]).await.unwrap();
/// let hits = index.search(&VectorQuery::new(EmbeddingSpace::Visual, vec![2.0, 0.0, 0.0], 5)).await.unwrap();
/// assert_eq!(hits.len(), 1);
/// assert!((hits[0].score - 1.0).abs() < 1e-6);
/// # });
/// ```
#[derive(Debug)]
pub struct FlatIndex {
    spec: IndexSpec,
    spaces: RwLock<BTreeMap<EmbeddingSpace, SpaceTable>>,
    /// Where [`flush`](VectorIndex::flush) saves a snapshot, if anywhere.
    path: Option<PathBuf>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Row {
    asset_id: AssetId,
    seq: u32,
    segment: Option<Segment>,
    meta: RecordMeta,
}

#[derive(Debug, Default)]
struct SpaceTable {
    /// `rows.len() * dim` normalised components, row-major.
    data: Vec<f32>,
    rows: Vec<Row>,
    /// Each row's kind as a bit (see [`kind_bit`]), dense so kind filters scan one byte a row.
    kinds: Vec<u8>,
    /// Rows per kind, so a filter that cannot exclude any present kind is skipped.
    kind_counts: KindCounts,
    by_key: HashMap<(AssetId, u32), usize>,
}

fn kind_bit(kind: MediaKind) -> u8 {
    match kind {
        MediaKind::Image => 1,
        MediaKind::Video => 2,
        MediaKind::Audio => 4,
    }
}

impl SpaceTable {
    fn from_rows(data: Vec<f32>, rows: Vec<Row>) -> Self {
        let mut t = SpaceTable {
            data,
            kinds: rows.iter().map(|r| kind_bit(r.meta.kind)).collect(),
            by_key: rows
                .iter()
                .enumerate()
                .map(|(i, r)| ((r.asset_id.clone(), r.seq), i))
                .collect(),
            rows,
            kind_counts: KindCounts::default(),
        };
        for r in &t.rows {
            t.kind_counts.add(r.meta.kind);
        }
        t
    }

    fn upsert(&mut self, dim: usize, row: Row, unit: &[f32]) {
        let key = (row.asset_id.clone(), row.seq);
        self.kind_counts.add(row.meta.kind);
        match self.by_key.get(&key) {
            Some(&i) => {
                self.kind_counts.remove(self.rows[i].meta.kind);
                self.data[i * dim..(i + 1) * dim].copy_from_slice(unit);
                self.kinds[i] = kind_bit(row.meta.kind);
                self.rows[i] = row;
            }
            None => {
                self.by_key.insert(key, self.rows.len());
                self.kinds.push(kind_bit(row.meta.kind));
                self.rows.push(row);
                self.data.extend_from_slice(unit);
            }
        }
    }

    fn remove_asset(&mut self, dim: usize, asset: &AssetId) -> usize {
        let mut doomed: Vec<usize> = self
            .rows
            .iter()
            .enumerate()
            .filter(|(_, r)| &r.asset_id == asset)
            .map(|(i, _)| i)
            .collect();
        doomed.sort_unstable_by(|a, b| b.cmp(a));
        for &i in &doomed {
            let last = self.rows.len() - 1;
            let removed = self.rows.swap_remove(i);
            self.kinds.swap_remove(i);
            self.kind_counts.remove(removed.meta.kind);
            self.by_key.remove(&(removed.asset_id, removed.seq));
            if i != last {
                let (head, tail) = self.data.split_at_mut(last * dim);
                head[i * dim..(i + 1) * dim].copy_from_slice(&tail[..dim]);
                let moved = &self.rows[i];
                self.by_key.insert((moved.asset_id.clone(), moved.seq), i);
            }
            self.data.truncate(last * dim);
        }
        doomed.len()
    }
}

/// A scored row for the top-k heap: ordered so the heap's top is the *worst* kept hit.
#[derive(Debug, PartialEq)]
struct Scored(f32, usize);

impl Eq for Scored {}
impl PartialOrd for Scored {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scored {
    fn cmp(&self, other: &Self) -> Ordering {
        // Higher score = "smaller" so the max-heap keeps the lowest score on top.
        other.0.total_cmp(&self.0).then(self.1.cmp(&other.1))
    }
}

const SNAPSHOT_MAGIC: &[u8; 8] = b"CMFLAT01";

#[derive(Serialize, Deserialize)]
struct SnapshotHeader {
    spec: IndexSpec,
    spaces: Vec<(EmbeddingSpace, Vec<Row>)>,
}

impl FlatIndex {
    /// An empty index for vectors of `spec`.
    pub fn new(spec: IndexSpec) -> Self {
        FlatIndex {
            spec,
            spaces: RwLock::new(BTreeMap::new()),
            path: None,
        }
    }

    /// A persistent index at `path`: loads the snapshot there if one exists (checking the model
    /// and dimension), otherwise starts empty; [`flush`](VectorIndex::flush) saves to it.
    pub fn open(path: impl Into<PathBuf>, spec: IndexSpec) -> Result<Self> {
        let path = path.into();
        let mut index = if path.exists() {
            FlatIndex::load(&path, spec)?
        } else {
            FlatIndex::new(spec)
        };
        index.path = Some(path);
        Ok(index)
    }

    /// Number of live vectors in all spaces.
    pub fn len(&self) -> usize {
        self.spaces.read().values().map(|t| t.rows.len()).sum()
    }

    /// Whether the index holds no vectors.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Exact top-`k` search without the async wrapper (what benches and other indexes' recall
    /// checks call).
    pub fn search_sync(&self, query: &VectorQuery) -> Result<Vec<Hit>> {
        check_query(&self.spec, query)?;
        let q = normalized(&query.vector);
        let dim = self.spec.dimension;
        let spaces = self.spaces.read();
        let Some(table) = spaces.get(&query.space) else {
            return Ok(Vec::new());
        };
        let mut heap: BinaryHeap<Scored> = BinaryHeap::with_capacity(query.k + 1);
        let f = &query.filter;
        // Kinds are checked on a dense byte per row, and not at all when the filter admits every
        // kind the space holds; other conditions need the row's metadata.
        let kind_mask = if f.kinds.is_empty() {
            0b111
        } else {
            f.kinds.iter().fold(0, |m, k| m | kind_bit(*k))
        };
        let check_kinds = !table.kind_counts.all_admitted_by(&f.kinds);
        let check_rest = !f.is_empty_except_kinds();
        for (i, row_vec) in table.data.chunks_exact(dim).enumerate() {
            if check_kinds && table.kinds[i] & kind_mask == 0 {
                continue;
            }
            if check_rest && !f.matches(&table.rows[i].asset_id, &table.rows[i].meta) {
                continue;
            }
            let s = cosine_of_unit(&q, row_vec);
            if heap.len() < query.k {
                heap.push(Scored(s, i));
            } else if let Some(worst) = heap.peek()
                && s > worst.0
            {
                heap.pop();
                heap.push(Scored(s, i));
            }
        }
        let mut scored = heap.into_vec();
        scored.sort();
        Ok(scored
            .into_iter()
            .map(|Scored(score, i)| {
                let r = &table.rows[i];
                Hit {
                    asset_id: r.asset_id.clone(),
                    space: query.space,
                    seq: r.seq,
                    segment: r.segment,
                    score,
                    meta: r.meta.clone(),
                }
            })
            .collect())
    }

    /// Inserts or replaces records without the async wrapper.
    pub fn upsert_sync(&self, records: Vec<VectorRecord>) -> Result<()> {
        check_records(&self.spec, &records)?;
        let dim = self.spec.dimension;
        let mut spaces = self.spaces.write();
        for r in records {
            let unit = normalized(&r.vector);
            spaces.entry(r.space).or_default().upsert(
                dim,
                Row {
                    asset_id: r.asset_id,
                    seq: r.seq,
                    segment: r.segment,
                    meta: r.meta,
                },
                &unit,
            );
        }
        Ok(())
    }

    /// Writes the index to `path` atomically (temp file, fsync, rename).
    pub fn save(&self, path: &Path) -> Result<()> {
        let spaces = self.spaces.read();
        let header = SnapshotHeader {
            spec: self.spec.clone(),
            spaces: spaces.iter().map(|(s, t)| (*s, t.rows.clone())).collect(),
        };
        let header = serde_json::to_vec(&header)?;
        crate::durable::write_atomic_with(path, |f| {
            let mut w = BufWriter::new(f);
            w.write_all(SNAPSHOT_MAGIC)?;
            w.write_all(&(header.len() as u64).to_le_bytes())?;
            w.write_all(&header)?;
            for table in spaces.values() {
                for x in &table.data {
                    w.write_all(&x.to_le_bytes())?;
                }
            }
            w.flush()
        })
    }

    /// Loads an index saved with [`save`](Self::save). `Conflict` if it was built for another
    /// model or dimension than `spec`; `Corrupt` if the file is damaged.
    pub fn load(path: &Path, spec: IndexSpec) -> Result<Self> {
        let mut bytes = Vec::new();
        std::fs::File::open(path)
            .and_then(|mut f| f.read_to_end(&mut bytes))
            .map_err(|e| Error::from(e).with_context("path", path.display()))?;
        let corrupt = |why: &str| {
            Error::corrupt(format!("flat index snapshot: {why}"))
                .with_context("path", path.display())
        };
        if bytes.len() < 16 || &bytes[..8] != SNAPSHOT_MAGIC {
            return Err(corrupt("bad magic"));
        }
        let mut len8 = [0u8; 8];
        len8.copy_from_slice(&bytes[8..16]);
        let header_len =
            usize::try_from(u64::from_le_bytes(len8)).map_err(|_| corrupt("header"))?;
        let header_end = 16usize
            .checked_add(header_len)
            .filter(|e| *e <= bytes.len())
            .ok_or_else(|| corrupt("header runs past the end"))?;
        let header: SnapshotHeader = serde_json::from_slice(&bytes[16..header_end])
            .map_err(|e| corrupt("header is not valid JSON").with_source(e))?;
        spec.check_same(&header.spec)?;
        let dim = spec.dimension;
        let total_rows: usize = header.spaces.iter().map(|(_, r)| r.len()).sum();
        if bytes.len() - header_end != total_rows * dim * 4 {
            return Err(corrupt("vector data length does not match the header"));
        }
        let mut floats = bytes[header_end..]
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]));
        let mut spaces = BTreeMap::new();
        for (space, rows) in header.spaces {
            let data: Vec<f32> = floats.by_ref().take(rows.len() * dim).collect();
            spaces.insert(space, SpaceTable::from_rows(data, rows));
        }
        Ok(FlatIndex {
            spec,
            spaces: RwLock::new(spaces),
            path: None,
        })
    }
}

#[async_trait]
impl VectorIndex for FlatIndex {
    fn spec(&self) -> &IndexSpec {
        &self.spec
    }

    fn capabilities(&self) -> IndexCapabilities {
        IndexCapabilities {
            filter_push_down: true,
            exact: true,
            persistent: self.path.is_some(),
            max_batch: usize::MAX,
        }
    }

    async fn upsert(&self, records: Vec<VectorRecord>) -> Result<()> {
        self.upsert_sync(records)
    }

    async fn search(&self, query: &VectorQuery) -> Result<Vec<Hit>> {
        self.search_sync(query)
    }

    async fn delete_asset(&self, asset: &AssetId) -> Result<usize> {
        let dim = self.spec.dimension;
        let mut spaces = self.spaces.write();
        Ok(spaces
            .values_mut()
            .map(|t| t.remove_asset(dim, asset))
            .sum())
    }

    async fn flush(&self) -> Result<()> {
        match &self.path {
            Some(path) => self.save(path),
            None => Ok(()),
        }
    }

    async fn space_counts(&self) -> Result<BTreeMap<EmbeddingSpace, u64>> {
        Ok(self
            .spaces
            .read()
            .iter()
            .filter(|(_, t)| !t.rows.is_empty())
            .map(|(s, t)| (*s, t.rows.len() as u64))
            .collect())
    }

    async fn stats(&self) -> Result<IndexStats> {
        let spaces = self.spaces.read();
        let mut assets = HashSet::new();
        let mut memory = 0u64;
        let mut per_space = BTreeMap::new();
        for (space, t) in spaces.iter() {
            if t.rows.is_empty() {
                continue;
            }
            per_space.insert(*space, t.rows.len() as u64);
            assets.extend(t.rows.iter().map(|r| &r.asset_id));
            memory += (t.data.capacity() * 4
                + t.rows.capacity() * std::mem::size_of::<Row>()
                + t.by_key.capacity() * (std::mem::size_of::<(AssetId, u32)>() + 8 + 64))
                as u64;
        }
        Ok(IndexStats {
            vectors_per_space: per_space,
            tombstones: 0,
            assets: assets.len() as u64,
            memory_bytes: memory,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conformance;
    use crate::index::Filter;

    #[tokio::test]
    async fn passes_the_vector_index_suite() {
        conformance::vector_index_suite(|spec| async move {
            Box::new(FlatIndex::new(spec)) as Box<dyn VectorIndex>
        })
        .await;
    }

    #[tokio::test]
    async fn snapshot_round_trips_and_checks_the_model() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("flat.idx");
        let spec = conformance::spec();
        let index = FlatIndex::new(spec.clone());
        let records = conformance::clustered_records(200, 7);
        index.upsert(records.clone()).await.unwrap();
        index.save(&path).unwrap();
        let loaded = FlatIndex::load(&path, spec.clone()).unwrap();
        assert_eq!(loaded.len(), records.len());
        let q = VectorQuery::new(records[3].space, records[3].vector.clone(), 5);
        assert_eq!(
            index.search(&q).await.unwrap(),
            loaded.search(&q).await.unwrap()
        );
        let other = IndexSpec::new("other-model", spec.dimension);
        let err = FlatIndex::load(&path, other).unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::Conflict);
        std::fs::write(&path, b"CMFLAT01garbage").unwrap();
        let err = FlatIndex::load(&path, spec).unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::Corrupt);
    }

    #[tokio::test]
    async fn kind_filters_follow_replacements_and_deletes() {
        let index = FlatIndex::new(conformance::spec());
        let mut records = conformance::clustered_records(8, 9);
        records.retain(|r| r.space == EmbeddingSpace::Visual);
        index.upsert(records.clone()).await.unwrap();
        let only = |kind| {
            VectorQuery::new(EmbeddingSpace::Visual, records[0].vector.clone(), 50)
                .filter(Filter::default().kinds([kind]))
        };
        let images = index.search(&only(MediaKind::Image)).await.unwrap().len();
        // Turn one video vector into an image: the image filter now finds one more.
        let mut changed = records
            .iter()
            .find(|r| r.meta.kind == MediaKind::Video)
            .unwrap()
            .clone();
        changed.meta.kind = MediaKind::Image;
        index.upsert(vec![changed.clone()]).await.unwrap();
        assert_eq!(
            index.search(&only(MediaKind::Image)).await.unwrap().len(),
            images + 1
        );
        // Delete every image: the image filter finds nothing, the video filter still works.
        for r in index.search(&only(MediaKind::Image)).await.unwrap() {
            index.delete_asset(&r.asset_id).await.unwrap();
        }
        assert!(
            index
                .search(&only(MediaKind::Image))
                .await
                .unwrap()
                .is_empty()
        );
        let videos = index.search(&only(MediaKind::Video)).await.unwrap();
        assert!(!videos.is_empty());
        assert!(videos.iter().all(|h| h.meta.kind == MediaKind::Video));
    }

    #[tokio::test]
    async fn delete_keeps_remaining_rows_addressable() {
        let index = FlatIndex::new(conformance::spec());
        let records = conformance::clustered_records(50, 3);
        index.upsert(records.clone()).await.unwrap();
        let victim = records[0].asset_id.clone();
        let removed = index.delete_asset(&victim).await.unwrap();
        assert!(removed >= 1);
        // Every remaining record is still found as its own nearest neighbour.
        for r in records.iter().filter(|r| r.asset_id != victim) {
            let hits = index
                .search(&VectorQuery::new(r.space, r.vector.clone(), 1))
                .await
                .unwrap();
            assert_eq!(hits[0].asset_id, r.asset_id);
            assert_eq!(hits[0].seq, r.seq);
        }
    }
}
