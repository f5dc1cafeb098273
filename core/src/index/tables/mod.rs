//! The storage engine both `FlatIndex` and `HnswIndex` stand on: per-space tables of rows and
//! vectors in memory, a write-ahead log that makes a write durable at the cost of its own bytes,
//! background checkpoints and compactions, and (for HNSW) a graph linked in the background.
//!
//! **Why this design** (a log over one graph per space, not sealed segments): searches walk
//! exactly one graph per space, so their cost does not grow with the number of writes since the
//! last merge; a write costs its log record (fsync on flush) and a brief write lock; the graph is
//! extended in place by its own concurrent insert, so no merge ever rebuilds it (only a
//! compaction, when tombstones pass a ratio, builds a copy beside the live space). Rows not
//! linked yet are scanned exactly, so a write is searchable the moment `upsert` returns.
//! Vectors and rows are append-only files, so a checkpoint appends what is new; only the
//! graph's links (6% of the vectors at 512 dims), the tombstones and the asset table are
//! rewritten. See `backends/hnsw/README.md` for the figures.

pub(crate) mod assets;
pub(crate) mod checkpoint;
pub(crate) mod maintenance;
pub(crate) mod records;
pub(crate) mod search;
pub(crate) mod space;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossmodal_hnsw::{Graph, GraphConfig};
use parking_lot::{Condvar, Mutex, RwLock};

use self::assets::AssetTable;
use self::checkpoint::{Manifest, graph_err};
use self::maintenance::CompactionJob;
use self::records::{Op, StoredRecord};
use self::search::{Plan, QueryVec, ScratchPool, SearchTrace};
use self::space::{NewRow, SpaceTable};
use crate::asset::AssetId;
use crate::embedding::EmbeddingSpace;
use crate::error::{Error, Result};
use crate::index::{
    Hit, IndexSpec, IndexStats, MetaPatch, VectorQuery, VectorRecord, check_query, check_records,
};
use crate::storage::StorageConfig;
use crate::storage::lock::DirLock;
use crate::storage::wal::WalWriter;
use crate::vector::normalized;

pub(crate) use self::search::Scored;

/// SplitMix64: a well-mixed hash (sampling positions).
pub(crate) fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// What each space holds beside its rows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Layout {
    /// Vectors only: every search is an exact scan.
    Flat,
    /// An HNSW graph per space; `int8`: the graph walks int8 codes and re-ranks with f32 read
    /// from disk. `threads` link in the background.
    Graph {
        config: GraphConfig,
        int8: bool,
        threads: usize,
    },
}

/// How a table engine runs.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    pub(crate) layout: Layout,
    pub(crate) storage: StorageConfig,
    pub(crate) plan: Plan,
}

/// What opening found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct OpenReport {
    /// Checkpoint generation loaded (0: none, the index started from its log or empty).
    pub generation: u64,
    /// Live vectors loaded from the checkpoint.
    pub vectors: u64,
    /// Log records replayed on top of it.
    pub log_records: u64,
    /// Bytes of a torn log tail (an interrupted write) that were dropped.
    pub torn_bytes: u64,
    /// Vectors not yet in the graph when the open returned (linked in the background; searched
    /// exactly meanwhile).
    pub pending: u64,
    /// Spaces whose graph file was missing or unusable (or built with other parameters), so
    /// their graph is being rebuilt from the stored vectors.
    pub graphs_rebuilt: Vec<EmbeddingSpace>,
    /// Leftover files removed (a checkpoint cut short, superseded logs).
    pub leftovers_removed: usize,
    /// Time taken.
    pub elapsed: Duration,
}

/// Every space, and the assets they share.
#[derive(Debug, Default)]
pub(crate) struct State {
    pub(crate) assets: AssetTable,
    pub(crate) spaces: BTreeMap<EmbeddingSpace, SpaceTable>,
}

/// The changes to a space made while a compaction copies it.
#[derive(Debug)]
pub(crate) struct CompactionLog {
    pub(crate) space: EmbeddingSpace,
    pub(crate) ops: Vec<Op>,
}

/// Writer-side state, behind one mutex that serialises writes.
#[derive(Debug, Default)]
pub(crate) struct Writer {
    pub(crate) wal: Option<WalWriter>,
    /// The last durable manifest.
    pub(crate) manifest: Option<Manifest>,
    /// Log bytes written since the last checkpoint.
    pub(crate) log_bytes: u64,
    pub(crate) compaction: Option<CompactionLog>,
    /// A checkpoint is owed regardless of the log's size (a compaction swapped a space in).
    pub(crate) checkpoint_requested: bool,
    /// The next unused generation for a space's data files.
    pub(crate) next_file_gen: u64,
}

impl Writer {
    /// A file generation no file of this index uses.
    pub(crate) fn alloc_file_gen(&mut self) -> u64 {
        self.next_file_gen = self.next_file_gen.max(1);
        let g = self.next_file_gen;
        self.next_file_gen += 1;
        g
    }
}

/// Wakes the maintenance thread, and lets writers wait for it.
#[derive(Debug, Default)]
pub(crate) struct Signal {
    state: Mutex<(bool, bool)>,
    work: Condvar,
    progress: Condvar,
}

impl Signal {
    /// Asks the maintenance thread to look for work.
    pub(crate) fn wake(&self) {
        self.state.lock().1 = true;
        self.work.notify_one();
    }

    fn shut_down(&self) {
        self.state.lock().0 = true;
        self.work.notify_all();
        self.progress.notify_all();
    }

    pub(crate) fn is_shut_down(&self) -> bool {
        self.state.lock().0
    }

    /// Waits for work (or `timeout`); false once shut down.
    pub(crate) fn wait(&self, timeout: Duration) -> bool {
        let mut s = self.state.lock();
        if !s.0 && !s.1 {
            self.work.wait_for(&mut s, timeout);
        }
        s.1 = false;
        !s.0
    }

    pub(crate) fn progressed(&self) {
        self.progress.notify_all();
    }

    /// Waits until the maintenance thread reports progress (or `timeout`).
    fn wait_progress(&self, timeout: Duration) {
        let mut s = self.state.lock();
        if !s.0 {
            self.progress.wait_for(&mut s, timeout);
        }
    }
}

/// What the maintenance thread and the handles share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) spec: IndexSpec,
    pub(crate) options: Options,
    pub(crate) dir: Option<PathBuf>,
    pub(crate) state: RwLock<State>,
    pub(crate) writer: Mutex<Writer>,
    /// Held by whoever links, checkpoints or compacts (one at a time); holds the compaction
    /// in progress, so a compaction asked for by a caller continues the background one.
    pub(crate) maintenance: Mutex<Option<CompactionJob>>,
    pub(crate) scratch: ScratchPool,
    pub(crate) signal: Signal,
}

/// A table engine: the shared state plus the maintenance thread and the directory lock.
#[derive(Debug)]
pub(crate) struct Tables {
    pub(crate) shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    _lock: Option<DirLock>,
    pub(crate) report: OpenReport,
}

impl Tables {
    /// Opens (or creates) the engine in `dir` (locked for the engine's lifetime), or in memory.
    /// Blocking.
    pub(crate) fn open(dir: Option<&Path>, spec: IndexSpec, options: Options) -> Result<Tables> {
        if spec.dimension == 0 && dir.is_some() {
            return Err(Error::invalid_input("index dimension must be at least 1"));
        }
        options.storage.validate()?;
        let (lock, state, writer, report) = match dir {
            Some(dir) => {
                let lock = DirLock::acquire(dir)?;
                let (state, writer, report) = checkpoint::load(dir, &spec, &options.layout)?;
                (Some(lock), state, writer, report)
            }
            None => (
                None,
                State::default(),
                Writer::default(),
                OpenReport::default(),
            ),
        };
        Ok(Tables::start(
            dir, lock, spec, options, state, writer, report,
        ))
    }

    /// Starts the maintenance thread over loaded state.
    fn start(
        dir: Option<&Path>,
        lock: Option<DirLock>,
        spec: IndexSpec,
        options: Options,
        state: State,
        writer: Writer,
        report: OpenReport,
    ) -> Tables {
        let shared = Arc::new(Shared {
            spec,
            options,
            dir: dir.map(Path::to_path_buf),
            state: RwLock::new(state),
            writer: Mutex::new(writer),
            maintenance: Mutex::new(None),
            scratch: ScratchPool::default(),
            signal: Signal::default(),
        });
        let s = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("crossmodal-index".into())
            .spawn(move || maintenance::run(s));
        let thread = match thread {
            Ok(t) => Some(t),
            Err(e) => {
                // Searches stay correct without it (unlinked rows are scanned exactly); only
                // linking, checkpoints and compactions wait for `wait_linked`/`checkpoint`.
                tracing::error!(error = %e, "could not start the index maintenance thread");
                None
            }
        };
        shared.signal.wake();
        Tables {
            shared,
            thread,
            _lock: lock,
            report,
        }
    }

    /// An in-memory engine (never fails: invalid storage settings fall back to the defaults).
    pub(crate) fn in_memory(spec: IndexSpec, mut options: Options) -> Tables {
        if options.storage.validate().is_err() {
            options.storage = StorageConfig::default();
        }
        Tables::start(
            None,
            None,
            spec,
            options,
            State::default(),
            Writer::default(),
            OpenReport::default(),
        )
    }

    pub(crate) fn spec(&self) -> &IndexSpec {
        &self.shared.spec
    }

    /// Inserts or replaces records (blocking). Validates everything before changing anything.
    pub(crate) fn upsert(&self, records: Vec<VectorRecord>) -> Result<()> {
        check_records(&self.shared.spec, &records)?;
        if records.is_empty() {
            return Ok(());
        }
        // Within a batch the last record of a key wins.
        let mut last: HashMap<(EmbeddingSpace, &AssetId, u32), usize> = HashMap::new();
        for (i, r) in records.iter().enumerate() {
            last.insert((r.space, &r.asset_id, r.seq), i);
        }
        let keep: HashSet<usize> = last.into_values().collect();
        let stored: Vec<StoredRecord> = records
            .into_iter()
            .enumerate()
            .filter(|(i, _)| keep.contains(i))
            .map(|(_, mut r)| StoredRecord {
                unit: {
                    // In place: no second copy of every vector while a batch is written.
                    crate::vector::normalize_in_place(&mut r.vector);
                    r.vector
                },
                space: r.space,
                asset_id: r.asset_id,
                seq: r.seq,
                segment: r.segment,
                meta: r.meta,
            })
            .collect();
        let spaces: HashSet<EmbeddingSpace> = stored.iter().map(|r| r.space).collect();
        let per_record = UPSERT_RECORD_BYTES / (self.shared.spec.dimension * 4 + 64);
        self.write_all(
            split_by_asset(stored, per_record.max(1))
                .into_iter()
                .map(Op::Upsert),
        )?;
        self.backpressure(&spaces);
        Ok(())
    }

    /// Removes every record of `asset` (blocking); returns how many.
    pub(crate) fn delete_asset(&self, asset: &AssetId) -> Result<usize> {
        let present = {
            let st = self.shared.state.read();
            st.assets
                .index_of(asset)
                .and_then(|a| st.assets.get(a))
                .is_some_and(|e| e.live > 0)
        };
        if !present {
            return Ok(0);
        }
        self.write(Op::DeleteAsset(asset.clone()))
    }

    /// Applies `patch` to every record of `asset` (blocking); returns how many records it holds.
    pub(crate) fn update_meta(&self, asset: &AssetId, patch: &MetaPatch) -> Result<usize> {
        patch.validate()?;
        let live = {
            let st = self.shared.state.read();
            let Some(a) = st.assets.index_of(asset) else {
                return Ok(0);
            };
            let live = st.assets.get(a).map_or(0, |e| e.live as usize);
            if live == 0 {
                return Ok(0);
            }
            live
        };
        if patch.is_empty() {
            return Ok(live);
        }
        self.write(Op::PatchMeta(asset.clone(), patch.clone()))?;
        Ok(live)
    }

    /// Logs `op` and applies it; returns the rows it removed (deletes).
    fn write(&self, op: Op) -> Result<usize> {
        self.write_all(std::iter::once(op))
    }

    /// Logs and applies `ops` in order under one writer lock (no other write comes between
    /// them); each op is dropped once applied. Returns the rows they removed.
    fn write_all(&self, ops: impl IntoIterator<Item = Op>) -> Result<usize> {
        let mut w = self.shared.writer.lock();
        let mut removed = 0;
        for op in ops {
            removed += self.write_locked(&mut w, op)?;
        }
        drop(w);
        self.shared.signal.wake();
        Ok(removed)
    }

    fn write_locked(&self, w: &mut Writer, op: Op) -> Result<usize> {
        if let Op::PatchMeta(id, patch) = &op {
            // Checked under the writer lock (no write can come between): a patch that cannot
            // apply (too many fields) is refused before it reaches the log.
            let st = self.shared.state.read();
            if let Some(a) = st.assets.index_of(id) {
                st.assets.patched(a, patch)?;
            }
        }
        if let Some(wal) = w.wal.as_mut() {
            let body = op.encode()?;
            let before = wal.len();
            wal.append(&body)?;
            let grew = wal.len() - before;
            w.log_bytes += grew;
        }
        let removed = {
            let mut st = self.shared.state.write();
            apply(
                &mut st,
                &op,
                self.shared.spec.dimension,
                &self.shared.options.layout,
            )?
        };
        if let Some(c) = w.compaction.as_mut()
            && maintenance::touches(&op, c.space)
        {
            c.ops.push(op);
        }
        Ok(removed)
    }

    /// Waits while a touched space has more unlinked rows than `max_pending`.
    fn backpressure(&self, spaces: &HashSet<EmbeddingSpace>) {
        let max = self.shared.options.storage.max_pending;
        if !matches!(self.shared.options.layout, Layout::Graph { .. }) {
            return;
        }
        loop {
            let over = {
                let st = self.shared.state.read();
                spaces
                    .iter()
                    .filter_map(|s| st.spaces.get(s))
                    .any(|t| t.len() - t.linked() > max)
            };
            if !over || self.shared.signal.is_shut_down() {
                return;
            }
            self.shared.signal.wake();
            self.shared.signal.wait_progress(Duration::from_millis(50));
        }
    }

    /// Makes every write so far durable (fsync of the log).
    pub(crate) fn flush(&self) -> Result<()> {
        let mut w = self.shared.writer.lock();
        match w.wal.as_mut() {
            Some(wal) => wal.sync(),
            None => Ok(()),
        }
    }

    /// Writes a checkpoint now (blocking), waiting for nothing else.
    pub(crate) fn checkpoint(&self) -> Result<()> {
        let _m = self.shared.maintenance.lock();
        checkpoint::write(&self.shared)
    }

    /// Blocks until every row is linked into the graph (a no-op without a graph).
    pub(crate) fn wait_linked(&self) {
        if self.thread.is_none() {
            let _m = self.shared.maintenance.lock();
            while maintenance::link_round(&self.shared) {}
            return;
        }
        loop {
            let pending = {
                let st = self.shared.state.read();
                st.spaces
                    .values()
                    .filter(|t| t.graph.is_some())
                    .any(|t| t.linked() < t.len())
            };
            if !pending || self.shared.signal.is_shut_down() {
                return;
            }
            self.shared.signal.wake();
            self.shared.signal.wait_progress(Duration::from_millis(20));
        }
    }

    /// Rebuilds every space holding tombstones without them (blocking). Finishes a
    /// compaction already running in the background first.
    pub(crate) fn compact(&self) -> Result<()> {
        let mut job = self.shared.maintenance.lock();
        loop {
            if job.is_none() {
                let next = {
                    let st = self.shared.state.read();
                    st.spaces
                        .iter()
                        .find(|(_, t)| t.tombstones() > 0)
                        .map(|(s, _)| *s)
                };
                match next {
                    Some(space) => *job = Some(maintenance::start(&self.shared, space)?),
                    None => break,
                }
            }
            if let Err(e) = maintenance::drive(&self.shared, &mut job) {
                *job = None;
                self.shared.writer.lock().compaction = None;
                return Err(e);
            }
        }
        drop(job);
        if self.shared.dir.is_some() {
            self.checkpoint()?;
        }
        Ok(())
    }

    /// The nearest live records to the query that pass its filter, best first.
    pub(crate) fn search_planned(
        &self,
        query: &VectorQuery,
        ef: usize,
        plan: &Plan,
        trace: &mut SearchTrace,
    ) -> Result<Vec<Hit>> {
        check_query(&self.shared.spec, query)?;
        let q = QueryVec::new(normalized(&query.vector));
        let st = self.shared.state.read();
        let Some(space) = st.spaces.get(&query.space) else {
            return Ok(Vec::new());
        };
        let scored = space.search(
            &st.assets,
            &q,
            query.k,
            ef,
            &query.filter,
            plan,
            &self.shared.scratch,
            trace,
        )?;
        Ok(scored
            .into_iter()
            .filter_map(|Scored(score, id)| {
                let row = space.rows.get(id as usize)?;
                Some(Hit {
                    asset_id: st.assets.get(row.asset)?.asset_id(),
                    space: query.space,
                    seq: row.seq,
                    segment: row.segment(),
                    score,
                    meta: st.assets.meta_of(row.asset, row.meta)?.clone(),
                })
            })
            .collect())
    }

    /// Counts and sizes.
    pub(crate) fn stats(&self) -> IndexStats {
        let st = self.shared.state.read();
        let mut stats = IndexStats::default();
        for (space, t) in &st.spaces {
            if t.live_count > 0 {
                stats.vectors_per_space.insert(*space, t.live_count as u64);
            }
            stats.tombstones += t.tombstones() as u64;
            stats.memory_bytes += t.memory_bytes() as u64;
        }
        stats.assets = st.assets.live_assets() as u64;
        stats.memory_bytes += st.assets.memory_bytes() as u64;
        stats
    }

    /// Live vectors per space.
    pub(crate) fn space_counts(&self) -> BTreeMap<EmbeddingSpace, u64> {
        self.shared
            .state
            .read()
            .spaces
            .iter()
            .filter(|(_, t)| t.live_count > 0)
            .map(|(s, t)| (*s, t.live_count as u64))
            .collect()
    }

    /// Live vectors of `asset` in every space.
    pub(crate) fn asset_vectors(&self, asset: &AssetId) -> usize {
        let st = self.shared.state.read();
        let Some(a) = st.assets.index_of(asset) else {
            return 0;
        };
        st.spaces
            .values()
            .map(|t| t.by_asset.get(a).map_or(0, |l| l.as_slice().len()))
            .sum()
    }

    /// Live vectors in all spaces.
    pub(crate) fn len(&self) -> usize {
        self.shared
            .state
            .read()
            .spaces
            .values()
            .map(|t| t.live_count)
            .sum()
    }
}

impl Drop for Tables {
    fn drop(&mut self) {
        self.shared.signal.shut_down();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        // Whatever was appended reaches the disk (durable only once `flush` returned, but a
        // clean close loses nothing).
        if let Some(wal) = self.shared.writer.lock().wal.as_mut()
            && let Err(e) = wal.sync()
        {
            tracing::warn!(error = %e, "index log sync at close failed");
        }
    }
}

/// Bytes of vectors one upsert log record holds at most (1 MiB: about 500 vectors of 512
/// dims). A bigger batch is logged as several records, each holding whole assets, so neither a
/// write nor a replay holds a second copy of more than this much of it at once: glibc keeps
/// freed heap of a batch's size resident (it raises its trim threshold to the largest block
/// freed, up to 64 MiB), so a 10,000-vector record body cost its size in resident memory
/// for as long as the process lived. An asset is never split, so a crash before `flush`
/// keeps each asset whole or not at all (a prefix of the batch's assets may survive it).
const UPSERT_RECORD_BYTES: usize = 1 << 20;

/// `records` in groups of about `per_group` (at least one asset each, never splitting an
/// asset), assets in order of first appearance.
fn split_by_asset(records: Vec<StoredRecord>, per_group: usize) -> Vec<Vec<StoredRecord>> {
    if records.len() <= per_group {
        return vec![records];
    }
    let mut first_seen: HashMap<&str, usize> = HashMap::new();
    let order: Vec<usize> = records
        .iter()
        .map(|r| {
            let next = first_seen.len();
            *first_seen.entry(r.asset_id.as_str()).or_insert(next)
        })
        .collect();
    drop(first_seen);
    let mut keyed: Vec<(usize, StoredRecord)> = order.into_iter().zip(records).collect();
    keyed.sort_by_key(|(k, _)| *k);
    let mut groups = Vec::with_capacity(keyed.len() / per_group + 1);
    let mut group: Vec<StoredRecord> = Vec::with_capacity(per_group);
    let mut last = None;
    for (k, r) in keyed {
        if group.len() >= per_group && last != Some(k) {
            groups.push(std::mem::replace(&mut group, Vec::with_capacity(per_group)));
        }
        last = Some(k);
        group.push(r);
    }
    groups.push(group);
    groups
}

/// A new, empty space for `layout`.
fn new_space(dim: usize, layout: &Layout) -> Result<SpaceTable> {
    Ok(match layout {
        Layout::Flat => SpaceTable::new(dim, None, false),
        Layout::Graph { config, int8, .. } => {
            SpaceTable::new(dim, Some(Graph::new(*config).map_err(graph_err)?), *int8)
        }
    })
}

/// Applies a logged change to the state: the one path of live writes and of replays.
pub(crate) fn apply(state: &mut State, op: &Op, dim: usize, layout: &Layout) -> Result<usize> {
    match op {
        Op::Upsert(records) => {
            for r in records {
                if let std::collections::btree_map::Entry::Vacant(e) = state.spaces.entry(r.space) {
                    e.insert(new_space(dim, layout)?);
                }
            }
            let spaces: HashSet<EmbeddingSpace> = records.iter().map(|r| r.space).collect();
            for space in spaces {
                if let Some(table) = state.spaces.get_mut(&space) {
                    apply_to_space(table, &mut state.assets, op, space, true)?;
                }
            }
            Ok(0)
        }
        Op::DeleteAsset(_) => {
            let mut removed = 0;
            for (space, table) in state.spaces.iter_mut() {
                removed += apply_to_space(table, &mut state.assets, op, *space, true)?;
            }
            Ok(removed)
        }
        Op::PatchMeta(id, patch) => {
            if let Some(a) = state.assets.index_of(id)
                && let Err(e) = state.assets.patch(a, patch)
            {
                // Checked before it was logged; a patch that no longer applies (it could only
                // meet other metadata on a replay of a damaged log) is skipped, not fatal.
                tracing::warn!(asset = %id, error = %e, "metadata patch skipped");
            }
            Ok(0)
        }
    }
}

/// Applies `op`'s part for `space` to `table`; `count` updates the assets' live counts (false
/// when a compaction replays the change into its copy). Returns the rows removed.
pub(crate) fn apply_to_space(
    table: &mut SpaceTable,
    assets: &mut AssetTable,
    op: &Op,
    space: EmbeddingSpace,
    count: bool,
) -> Result<usize> {
    match op {
        Op::Upsert(records) => {
            for r in records.iter().filter(|r| r.space == space) {
                let (asset, meta) = assets.intern(&r.asset_id, &r.meta)?;
                table.add(
                    count.then_some(&mut *assets),
                    &NewRow {
                        asset,
                        seq: r.seq,
                        meta,
                        kind: r.meta.kind,
                        segment: r.segment,
                        unit: &r.unit,
                    },
                )?;
            }
            if let Some(graph) = &mut table.graph {
                let missing = table.rows.len().saturating_sub(graph.len());
                graph.push_nodes(missing).map_err(graph_err)?;
            }
            Ok(0)
        }
        Op::DeleteAsset(id) => Ok(match assets.index_of(id) {
            Some(a) => table.delete_asset(a, count.then_some(&mut *assets)),
            None => 0,
        }),
        Op::PatchMeta(..) => Ok(0),
    }
}
