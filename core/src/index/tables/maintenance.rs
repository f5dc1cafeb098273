//! The background work of an index, on one thread per index: linking new rows into the graph,
//! checkpoints when the log has grown, and compactions when tombstones pile up.
//!
//! Writers never wait for any of it: an upsert appends to the log and to memory and returns;
//! its rows are searchable at once (scanned exactly until linked). Only when the unlinked rows
//! of a space pass `StorageConfig::max_pending` does an upsert wait for the linker.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crossmodal_hnsw::Graph;

use super::checkpoint::{self, graph_err};
use super::records::Op;
use super::space::{SpaceFiles, SpaceTable};
use super::{Layout, Shared, apply_to_space};
use crate::embedding::EmbeddingSpace;
use crate::error::Result;
use crate::storage::files;

/// Rows linked per thread in one round (the state's read lock is held for a round).
const ROUND_PER_THREAD: usize = 32;
/// Rows copied per step of a compaction.
const COPY_CHUNK: usize = 4096;
/// Fewest newly linked nodes an idle linker checkpoints for
/// (`StorageConfig::link_checkpoint_ratio`).
const MIN_GRAPH_LAG: usize = 1024;

/// A compaction in progress: a copy of one space without its tombstones, built beside it.
#[derive(Debug)]
pub(crate) struct CompactionJob {
    space: EmbeddingSpace,
    /// Rows of the live space `..cut` are copied by the job; later changes come as a delta.
    cut: usize,
    next: usize,
    table: SpaceTable,
    /// New data files written while copying (a fresh file generation).
    files: SpaceFiles,
}

/// Runs until the index is dropped.
pub(crate) fn run(shared: Arc<Shared>) {
    let mut retry_checkpoint_after: Option<Instant> = None;
    loop {
        if !shared.signal.wait(Duration::from_secs(1)) {
            break;
        }
        loop {
            if shared.signal.is_shut_down() {
                break;
            }
            let mut progressed = false;
            {
                let mut job = shared.maintenance.lock();
                progressed |= link_round(&shared);
                let may_checkpoint = retry_checkpoint_after.is_none_or(|t| Instant::now() >= t);
                if may_checkpoint && checkpoint_due(&shared) {
                    match checkpoint::write(&shared) {
                        Ok(()) => retry_checkpoint_after = None,
                        Err(e) => {
                            tracing::error!(error = %e, "index checkpoint failed; the log keeps every write, retrying in 10 s");
                            retry_checkpoint_after = Some(Instant::now() + Duration::from_secs(10));
                        }
                    }
                    progressed = true;
                }
                match step_compaction(&shared, &mut job) {
                    Ok(did) => progressed |= did,
                    Err(e) => {
                        tracing::error!(error = %e, "index compaction failed; the space keeps its tombstones");
                        *job = None;
                        shared.writer.lock().compaction = None;
                    }
                }
            }
            shared.signal.progressed();
            if !progressed {
                break;
            }
        }
        if shared.signal.is_shut_down() {
            break;
        }
    }
}

/// Links one round of rows into one space's graph; false if nothing was pending.
pub(crate) fn link_round(shared: &Shared) -> bool {
    let Layout::Graph { threads, .. } = shared.options.layout else {
        return false;
    };
    let st = shared.state.read();
    for table in st.spaces.values() {
        if link_some(table, threads) {
            return true;
        }
    }
    false
}

/// Links up to a round of `table`'s pending rows; false if none were pending.
fn link_some(table: &SpaceTable, threads: usize) -> bool {
    let Some(graph) = &table.graph else {
        return false;
    };
    let linked = table.linked();
    let len = table.len().min(graph.len());
    if linked >= len {
        return false;
    }
    let n = (len - linked).min(ROUND_PER_THREAD * threads.max(1));
    graph.insert_range(linked as u32, n as u32, threads, &table.node_vectors());
    table.linked.store(linked + n, Ordering::Release);
    true
}

/// Whether the log has grown enough to checkpoint: past a share of the checkpointed data (so
/// checkpoints cost a bounded multiple of what was written), or past the cap that bounds what
/// an open replays.
fn checkpoint_due(shared: &Shared) -> bool {
    if shared.dir.is_none() {
        return false;
    }
    if graph_lag_due(shared) {
        return true;
    }
    let cfg = &shared.options.storage;
    let log = {
        let w = shared.writer.lock();
        if w.checkpoint_requested {
            return true;
        }
        w.log_bytes
    };
    if log == 0 {
        return false;
    }
    let data: u64 = shared
        .state
        .read()
        .spaces
        .values()
        .map(|t| (t.checkpointed * t.dim * 4) as u64)
        .sum();
    let threshold = ((data as f64 * cfg.checkpoint_ratio) as u64).max(cfg.min_checkpoint_bytes);
    log >= threshold.min(cfg.max_log_bytes)
}

/// Whether the linker has caught up in every space and linked enough since the last
/// checkpoint that it should be saved (`StorageConfig::link_checkpoint_ratio`): an open
/// relinks what the checkpoint's graph lacks. A checkpoint written while a batch
/// is still being linked would be stale at once, so none is taken then: the log-driven ones
/// cover the data, and this one the links once the batch is linked.
fn graph_lag_due(shared: &Shared) -> bool {
    let ratio = shared.options.storage.link_checkpoint_ratio;
    if ratio >= 1.0 || !matches!(shared.options.layout, Layout::Graph { .. }) {
        return false;
    }
    let checkpointed: Vec<(EmbeddingSpace, u64)> = {
        let w = shared.writer.lock();
        w.manifest.as_ref().map_or_else(Vec::new, |m| {
            m.spaces.iter().map(|s| (s.space, s.linked)).collect()
        })
    };
    let st = shared.state.read();
    let (mut lag, mut linked) = (0usize, 0usize);
    for (space, t) in &st.spaces {
        if t.graph.is_none() {
            continue;
        }
        let now = t.linked();
        if now < t.len() {
            return false;
        }
        let then = checkpointed
            .iter()
            .find(|(s, _)| s == space)
            .map_or(0, |(_, l)| usize::try_from(*l).unwrap_or(usize::MAX));
        lag += now.saturating_sub(then);
        linked += now;
    }
    lag >= MIN_GRAPH_LAG.max((linked as f64 * ratio) as usize)
}

/// Starts, advances or finishes a compaction; false if there was nothing to do.
fn step_compaction(shared: &Shared, job: &mut Option<CompactionJob>) -> Result<bool> {
    let ratio = shared.options.storage.compaction_ratio;
    let Some(j) = job else {
        if ratio >= 1.0 {
            return Ok(false);
        }
        let candidate = {
            let st = shared.state.read();
            st.spaces
                .iter()
                .find(|(_, t)| t.len() >= 64 && t.tombstones() as f64 > ratio * t.len() as f64)
                .map(|(s, _)| *s)
        };
        let Some(space) = candidate else {
            return Ok(false);
        };
        *job = Some(start(shared, space)?);
        return Ok(true);
    };
    if j.next < j.cut {
        copy_step(shared, j)?;
        return Ok(true);
    }
    let threads = match shared.options.layout {
        Layout::Graph { threads, .. } => threads,
        Layout::Flat => 1,
    };
    if link_some(&j.table, threads) {
        return Ok(true);
    }
    if let Some(done) = job.take() {
        finish(shared, done)?;
    }
    Ok(true)
}

/// Begins a compaction of `space`: from now on the writer records the space's changes.
pub(crate) fn start(shared: &Shared, space: EmbeddingSpace) -> Result<CompactionJob> {
    let mut w = shared.writer.lock();
    let st = shared.state.read();
    let old = st
        .spaces
        .get(&space)
        .ok_or_else(|| crate::error::Error::backend("compaction of an unknown space"))?;
    let graph = match &shared.options.layout {
        Layout::Graph { config, .. } => Some(Graph::new(*config).map_err(graph_err)?),
        Layout::Flat => None,
    };
    let int8 = matches!(shared.options.layout, Layout::Graph { int8: true, .. });
    let file_gen = w.alloc_file_gen();
    w.compaction = Some(super::CompactionLog {
        space,
        ops: Vec::new(),
    });
    tracing::debug!(%space, rows = old.len(), tombstones = old.tombstones(), "compaction started");
    Ok(CompactionJob {
        space,
        cut: old.len(),
        next: 0,
        table: SpaceTable::new(old.dim, graph, int8),
        files: SpaceFiles {
            file_gen,
            ..SpaceFiles::default()
        },
    })
}

/// Copies the next chunk of live rows (and, for a persistent index, appends them to the new
/// data files).
fn copy_step(shared: &Shared, j: &mut CompactionJob) -> Result<()> {
    let end = (j.next + COPY_CHUNK).min(j.cut);
    let before = j.table.len();
    {
        let st = shared.state.read();
        let Some(old) = st.spaces.get(&j.space) else {
            j.next = j.cut;
            return Ok(());
        };
        for id in j.next..end {
            if !old.is_live(id) {
                continue;
            }
            let (Some(row), Some(kind)) = (old.rows.get(id).copied(), old.kinds.get(id).copied())
            else {
                continue;
            };
            let kind = match kind {
                1 => crate::media::MediaKind::Image,
                2 => crate::media::MediaKind::Video,
                _ => crate::media::MediaKind::Audio,
            };
            let v = old.vector(id)?;
            j.table.push_copied(row, kind, &v);
        }
    }
    if let Some(graph) = &mut j.table.graph {
        graph
            .push_nodes(j.table.rows.len() - graph.len())
            .map_err(graph_err)?;
    }
    if let Some(dir) = shared.dir.as_deref() {
        append_files(dir, j, before)?;
    }
    j.next = end;
    Ok(())
}

/// Appends the job's rows `from..` to its new data files.
fn append_files(dir: &std::path::Path, j: &mut CompactionJob, from: usize) -> Result<()> {
    let name = |ext: &str| format!("{}.{}.{ext}", j.space, j.files.file_gen);
    let t = &j.table;
    let to = t.len();
    let vectors = files::append(dir, &name("vec"), j.files.vectors.as_ref(), |w| {
        let mut buf = Vec::new();
        for id in from..to {
            buf.clear();
            if let Some(v) = t.memory_vectors(id) {
                for x in v {
                    buf.extend_from_slice(&x.to_le_bytes());
                }
            }
            w.write_all(&buf)?;
        }
        Ok(())
    })?;
    let rows = files::append(dir, &name("rows"), j.files.rows.as_ref(), |w| {
        let mut buf = Vec::new();
        for id in from..to {
            if let Some(r) = t.rows.get(id) {
                r.encode(&mut buf);
            }
        }
        w.write_all(&buf)
    })?;
    let codes = match &t.vectors {
        super::space::VectorData::Int8(d) => Some(files::append(
            dir,
            &name("codes"),
            j.files.codes.as_ref(),
            |w| {
                let mut buf = Vec::new();
                for id in from..to {
                    buf.extend(d.codes.get(id).iter().map(|c| *c as u8));
                    buf.extend_from_slice(&d.scales.get(id).copied().unwrap_or(0.0).to_le_bytes());
                }
                w.write_all(&buf)
            },
        )?),
        super::space::VectorData::F32(_) => None,
    };
    j.files.vectors = Some(vectors);
    j.files.rows = Some(rows);
    j.files.codes = codes;
    j.table.checkpointed = to;
    // Int8: the copied rows' f32 vectors are in the new vector file now; map them and drop
    // them from memory, so a compaction never holds a second f32 copy of its space (at 1.5M
    // vectors a 500k-row space's copy held 1 GB, a third of the library's raw bytes).
    if let (super::space::VectorData::Int8(d), Some(entry)) =
        (&mut j.table.vectors, &j.files.vectors)
    {
        let path = dir.join(&entry.name);
        let file = std::fs::File::open(&path).map_err(files::io(&path))?;
        d.checkpointed_to(&file, &path, to, j.table.dim)?;
    }
    Ok(())
}

/// Applies the changes made meanwhile, links them, and swaps the copy in.
fn finish(shared: &Shared, mut j: CompactionJob) -> Result<()> {
    let threads = match shared.options.layout {
        Layout::Graph { threads, .. } => threads,
        Layout::Flat => 1,
    };
    let mut w = shared.writer.lock();
    let ops = w.compaction.take().map(|c| c.ops).unwrap_or_default();
    let old = {
        let mut st = shared.state.write();
        let st = &mut *st;
        for op in &ops {
            apply_to_space(&mut j.table, &mut st.assets, op, j.space, false)?;
        }
        if let Some(graph) = &mut j.table.graph {
            graph
                .push_nodes(j.table.rows.len() - graph.len())
                .map_err(graph_err)?;
        }
        while link_some(&j.table, threads) {}
        if shared.dir.is_some() {
            j.table.files = j.files.clone();
        } else {
            j.table.files = SpaceFiles::default();
        }
        // In int8 mode the copied rows' f32 vectors are already mapped from the new vector
        // file (`append_files`); the delta's rows stay in memory until the next checkpoint.
        st.spaces.insert(j.space, j.table)
    };
    // The manifest must name the new files before the old ones can go: checkpoint soon.
    w.checkpoint_requested = shared.dir.is_some();
    drop(w);
    shared.signal.wake();
    if let Some(old) = &old {
        tracing::debug!(space = %j.space, tombstones = old.tombstones(), "compaction finished");
    }
    // The old space (and its graph) is freed here, outside every lock.
    drop(old);
    Ok(())
}

/// Advances a compaction driven from a caller's thread by one step.
pub(crate) fn drive(shared: &Shared, job: &mut Option<CompactionJob>) -> Result<()> {
    step_compaction(shared, job).map(|_| ())
}

/// Whether an op touches `space` (for the compaction delta).
pub(crate) fn touches(op: &Op, space: EmbeddingSpace) -> bool {
    match op {
        Op::Upsert(records) => records.iter().any(|r| r.space == space),
        Op::DeleteAsset(_) => true,
        // Metadata lives in the asset table every space shares, not in a space's rows.
        Op::PatchMeta(..) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::IndexSpec;
    use crate::index::tables::search::Plan;
    use crate::index::tables::space::VectorData;
    use crate::index::tables::{Options, Tables};
    use crate::storage::StorageConfig;

    /// An int8 compaction copies its space chunk by chunk into new files; the copy's f32 rows
    /// go to the new vector file and are read from its mapping, never held in memory as a
    /// second copy of the space.
    #[test]
    fn an_int8_compaction_keeps_its_copy_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let dim = 8;
        let options = Options {
            layout: Layout::Graph {
                config: crossmodal_hnsw::GraphConfig::default(),
                int8: true,
                threads: 1,
            },
            storage: StorageConfig::default()
                .min_checkpoint_bytes(u64::MAX)
                .max_log_bytes(u64::MAX)
                .link_checkpoint_ratio(1.0)
                .compaction_ratio(1.0),
            plan: Plan {
                exact_scan_bytes: 0,
                exact_filter_selectivity: 0.0,
                rerank: 4,
            },
        };
        let tables = Tables::open(Some(dir.path()), IndexSpec::new("m", dim), options).unwrap();
        let records = crate::index::tests::image_records(2 * COPY_CHUNK + 100, dim, 3);
        let space = records[0].space;
        tables.upsert(records.clone()).unwrap();
        for r in records.iter().step_by(3) {
            tables.delete_asset(&r.asset_id).unwrap();
        }
        tables.checkpoint().unwrap();
        let shared = &tables.shared;
        let _m = shared.maintenance.lock();
        let mut job = start(shared, space).unwrap();
        for step in 1..=2 {
            copy_step(shared, &mut job).unwrap();
            let VectorData::Int8(d) = &job.table.vectors else {
                panic!("an int8 space");
            };
            assert!(job.table.len() > 0);
            assert_eq!(d.tail.len(), 0, "step {step}: f32 rows held in memory");
            assert_eq!(d.tail_start, job.table.len());
            // Every copied row reads back from the new file, checked against its row's CRC.
            for id in 0..job.table.len() {
                assert_eq!(job.table.vector(id).unwrap().len(), dim);
            }
        }
        shared.writer.lock().compaction = None;
    }
}
