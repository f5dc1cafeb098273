//! Snapshots: a directory of files per generation plus `MANIFEST.json` naming the current one.
//!
//! Layout of the index directory:
//!
//! ```text
//! MANIFEST.json                 names the current snapshot, model, dimension, file sizes + CRC-32s
//! snap-0000000000000007/
//!     rows.json                 spec, per space: graph id count, live rows (id, asset, seq, ...)
//!     vectors.f32               live unit vectors, little-endian f32, in rows.json order
//!     visual.hnsw.graph         hnsw_rs dump of the space's graph (optional, derived data)
//!     visual.hnsw.data          ... and its vectors as hnsw_rs stores them
//! ```
//!
//! A flush writes a fresh `snap-<generation>` directory, fsyncs its files and the directory, then
//! replaces `MANIFEST.json` atomically (temp file, fsync, rename, fsync of the directory). Only
//! then are older snapshot directories removed. A crash at any point leaves the previous manifest
//! naming a complete snapshot; leftovers are removed on the next open.

use std::fs::{self, File};
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hnsw_rs::api::AnnT;
use hnsw_rs::hnswio::HnswIo;
use serde::{Deserialize, Serialize};

use crossmodal_core::durable::{sync_dir, write_atomic};
use crossmodal_core::{EmbeddingSpace, Error, IndexSpec, Result};

use crate::config::HnswConfig;
use crate::distance::UnitCosine;
use crate::space::{Graph, PointRef, Row, SpaceState, build_space, guarded};

/// Name of the manifest file in the index directory.
pub const MANIFEST: &str = "MANIFEST.json";
const FORMAT: &str = "crossmodal-hnsw/1";
const ROWS: &str = "rows.json";
const VECTORS: &str = "vectors.f32";
const SNAP_PREFIX: &str = "snap-";
const MANIFEST_TMP_PREFIX: &str = ".MANIFEST.json.tmp-";

#[derive(Debug, Serialize, Deserialize)]
struct Manifest {
    format: String,
    generation: u64,
    snapshot: String,
    model_id: String,
    dimension: usize,
    files: Vec<FileEntry>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct FileEntry {
    name: String,
    bytes: u64,
    crc32: u32,
}

#[derive(Debug, Serialize, Deserialize)]
struct RowsFile {
    spec: IndexSpec,
    spaces: Vec<SpaceFile>,
}

#[derive(Debug, Serialize, Deserialize)]
struct SpaceFile {
    space: EmbeddingSpace,
    /// Nodes in the dumped graph (live rows plus tombstones).
    graph_ids: usize,
    /// Basename of the hnsw_rs dump, if one was written.
    graph: Option<String>,
    /// Live rows as (graph id, row), ids increasing.
    rows: Vec<(usize, Row)>,
}

/// What [`HnswIndex::open`](crate::HnswIndex::open) found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpenReport {
    /// Generation of the snapshot loaded (0: none, the index started empty).
    pub generation: u64,
    /// Spaces whose graph was loaded from the snapshot's graph files.
    pub graphs_loaded: Vec<EmbeddingSpace>,
    /// Spaces whose graph was rebuilt from the stored vectors (no graph files, or unusable).
    pub graphs_rebuilt: Vec<EmbeddingSpace>,
    /// Leftover entries (unfinished or superseded snapshots, temp manifests) removed.
    pub leftovers_removed: usize,
    /// Time taken to open.
    pub elapsed: Duration,
}

/// A loaded snapshot.
pub(crate) struct Loaded {
    pub spaces: Vec<(EmbeddingSpace, SpaceState)>,
    pub report: OpenReport,
}

/// A writer that counts bytes and computes a CRC-32 of what passes through.
struct Checked<W: Write> {
    inner: W,
    crc: crc32fast::Hasher,
    bytes: u64,
}

impl<W: Write> Checked<W> {
    fn new(inner: W) -> Self {
        Checked {
            inner,
            crc: crc32fast::Hasher::new(),
            bytes: 0,
        }
    }
}

impl<W: Write> Write for Checked<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.crc.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |e| Error::from(e).with_context("path", path.display())
}

fn corrupt(path: &Path, why: impl std::fmt::Display) -> Error {
    Error::corrupt(format!(
        "hnsw snapshot file {}: {why}",
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    ))
    .with_context("path", path.display())
}

/// Writes `bytes` to a new file, fsyncs it, and returns its manifest entry.
fn write_file(
    dir: &Path,
    name: &str,
    write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<FileEntry> {
    let path = dir.join(name);
    let file = File::create(&path).map_err(io_err(&path))?;
    let mut w = Checked::new(BufWriter::with_capacity(1 << 20, file));
    let result = write(&mut w).and_then(|()| w.flush());
    result.map_err(io_err(&path))?;
    let Checked { inner, crc, bytes } = w;
    let file = inner
        .into_inner()
        .map_err(|e| io_err(&path)(e.into_error()))?;
    file.sync_all().map_err(io_err(&path))?;
    Ok(FileEntry {
        name: name.to_string(),
        bytes,
        crc32: crc.finalize(),
    })
}

/// Size and CRC-32 of a file, fsyncing it on the way (for files another library wrote).
fn checksum_file(path: &Path, sync: bool) -> std::io::Result<(u64, u32)> {
    let mut file = File::open(path)?;
    if sync {
        file.sync_all()?;
    }
    let mut crc = crc32fast::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut bytes = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        crc.update(&buf[..n]);
        bytes += n as u64;
    }
    Ok((bytes, crc.finalize()))
}

fn valid_snapshot_name(name: &str) -> bool {
    name.strip_prefix(SNAP_PREFIX)
        .is_some_and(|g| !g.is_empty() && g.bytes().all(|b| b.is_ascii_digit()))
}

fn valid_file_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Writes snapshot `generation` of `spaces` into `dir` and points the manifest at it; returns the
/// snapshot's directory name. Older snapshots are removed afterwards.
pub(crate) fn write_snapshot(
    dir: &Path,
    spec: &IndexSpec,
    generation: u64,
    spaces: &[(EmbeddingSpace, &SpaceState)],
    persist_graph: bool,
) -> Result<String> {
    fs::create_dir_all(dir).map_err(io_err(dir))?;
    let name = format!("{SNAP_PREFIX}{generation:016}");
    let snap = dir.join(&name);
    if snap.exists() {
        // An unfinished snapshot of the same generation (a crash mid-flush): never named by the
        // manifest, so it is garbage.
        fs::remove_dir_all(&snap).map_err(io_err(&snap))?;
    }
    fs::create_dir(&snap).map_err(io_err(&snap))?;
    let result =
        fill_snapshot(&snap, spec, generation, &name, spaces, persist_graph).and_then(|manifest| {
            let bytes = serde_json::to_vec_pretty(&manifest)?;
            write_atomic(&dir.join(MANIFEST), &bytes)
        });
    if let Err(e) = result {
        let _ = fs::remove_dir_all(&snap);
        return Err(e);
    }
    if let Err(e) = remove_leftovers(dir, Some(&name)) {
        tracing::warn!(dir = %dir.display(), error = %e, "could not remove old hnsw snapshots");
    }
    Ok(name)
}

fn fill_snapshot(
    snap: &Path,
    spec: &IndexSpec,
    generation: u64,
    name: &str,
    spaces: &[(EmbeddingSpace, &SpaceState)],
    persist_graph: bool,
) -> Result<Manifest> {
    let mut files = Vec::new();
    files.push(write_file(snap, VECTORS, |w| {
        let mut buf = Vec::with_capacity(spec.dimension * 4);
        for (_, state) in spaces {
            for (id, row) in state.rows.iter().enumerate() {
                if row.is_some() {
                    buf.clear();
                    for x in state.vectors.get(id) {
                        buf.extend_from_slice(&x.to_le_bytes());
                    }
                    w.write_all(&buf)?;
                }
            }
        }
        Ok(())
    })?);
    let mut space_files = Vec::with_capacity(spaces.len());
    for (space, state) in spaces {
        let mut graph = None;
        if persist_graph && state.graph.get_nb_point() > 0 {
            // A fresh directory, so hnsw_rs keeps the basename (no random suffix); the name it
            // returns is recorded anyway. Empty graphs are never dumped (hnsw_rs issue 15).
            let basename =
                guarded("graph dump", || state.graph.file_dump(snap, space.as_str()))?
                    .map_err(|e| Error::backend(format!("hnsw_rs graph dump failed: {e}")))?;
            for suffix in ["hnsw.graph", "hnsw.data"] {
                let fname = format!("{basename}.{suffix}");
                let path = snap.join(&fname);
                let (bytes, crc32) = checksum_file(&path, true).map_err(io_err(&path))?;
                files.push(FileEntry {
                    name: fname,
                    bytes,
                    crc32,
                });
            }
            graph = Some(basename);
        }
        space_files.push(SpaceFile {
            space: *space,
            graph_ids: state.rows.len(),
            graph,
            rows: state
                .rows
                .iter()
                .enumerate()
                .filter_map(|(id, r)| r.as_ref().map(|r| (id, r.clone())))
                .collect(),
        });
    }
    let rows = RowsFile {
        spec: spec.clone(),
        spaces: space_files,
    };
    files.push(write_file(snap, ROWS, |w| {
        serde_json::to_writer(w, &rows).map_err(std::io::Error::other)
    })?);
    sync_dir(snap).map_err(io_err(snap))?;
    Ok(Manifest {
        format: FORMAT.to_string(),
        generation,
        snapshot: name.to_string(),
        model_id: spec.model_id.clone(),
        dimension: spec.dimension,
        files,
    })
}

/// Removes snapshot directories other than `keep` and temp manifests; returns how many.
pub(crate) fn remove_leftovers(dir: &Path, keep: Option<&str>) -> Result<usize> {
    let mut removed = 0;
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(io_err(dir)(e)),
    };
    for entry in entries {
        let entry = entry.map_err(io_err(dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        let is_snapshot = name.starts_with(SNAP_PREFIX) && Some(name.as_str()) != keep;
        let is_temp = name.starts_with(MANIFEST_TMP_PREFIX);
        if !(is_snapshot || is_temp) {
            continue;
        }
        let result = if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            fs::remove_dir_all(&path)
        } else {
            fs::remove_file(&path)
        };
        result.map_err(io_err(&path))?;
        removed += 1;
    }
    if removed > 0 {
        sync_dir(dir).map_err(io_err(dir))?;
    }
    Ok(removed)
}

/// Loads the snapshot the manifest in `dir` names (or nothing, if there is no manifest).
pub(crate) fn load(dir: &Path, spec: &IndexSpec, config: &HnswConfig) -> Result<Loaded> {
    let started = Instant::now();
    fs::create_dir_all(dir).map_err(io_err(dir))?;
    let manifest_path = dir.join(MANIFEST);
    let manifest_bytes = match fs::read(&manifest_path) {
        Ok(b) => Some(b),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(io_err(&manifest_path)(e)),
    };
    let Some(manifest_bytes) = manifest_bytes else {
        // Never flushed (or killed before the first manifest): start empty, drop leftovers.
        let leftovers_removed = remove_leftovers(dir, None)?;
        return Ok(Loaded {
            spaces: Vec::new(),
            report: OpenReport {
                leftovers_removed,
                elapsed: started.elapsed(),
                ..OpenReport::default()
            },
        });
    };
    let manifest: Manifest = serde_json::from_slice(&manifest_bytes)
        .map_err(|e| corrupt(&manifest_path, "not a valid manifest").with_source(e))?;
    if manifest.format != FORMAT {
        return Err(corrupt(
            &manifest_path,
            format!("unknown format {:?} (expected {FORMAT:?})", manifest.format),
        ));
    }
    spec.check_same(&IndexSpec::new(
        manifest.model_id.clone(),
        manifest.dimension,
    ))
    .map_err(|e| e.with_context("path", manifest_path.display()))?;
    if !valid_snapshot_name(&manifest.snapshot) {
        return Err(corrupt(
            &manifest_path,
            format!("bad snapshot name {:?}", manifest.snapshot),
        ));
    }
    let snap = dir.join(&manifest.snapshot);
    for entry in &manifest.files {
        if !valid_file_name(&entry.name) {
            return Err(corrupt(
                &manifest_path,
                format!("bad file name {:?}", entry.name),
            ));
        }
    }
    for required in [ROWS, VECTORS] {
        let entry = manifest
            .files
            .iter()
            .find(|f| f.name == required)
            .ok_or_else(|| {
                corrupt(
                    &manifest_path,
                    format!("the manifest does not list {required}"),
                )
            })?;
        verify_file(&snap, entry)?;
    }

    let rows_path = snap.join(ROWS);
    let rows_bytes = fs::read(&rows_path).map_err(io_err(&rows_path))?;
    let rows_file: RowsFile = serde_json::from_slice(&rows_bytes)
        .map_err(|e| corrupt(&rows_path, "not valid JSON").with_source(e))?;
    drop(rows_bytes);
    if &rows_file.spec != spec {
        return Err(corrupt(&rows_path, "spec differs from the manifest"));
    }
    let dim = spec.dimension;
    let vectors_path = snap.join(VECTORS);
    let vector_bytes = fs::read(&vectors_path).map_err(io_err(&vectors_path))?;
    let total_live: usize = rows_file.spaces.iter().map(|s| s.rows.len()).sum();
    if Some(vector_bytes.len()) != total_live.checked_mul(dim).and_then(|n| n.checked_mul(4)) {
        return Err(corrupt(
            &vectors_path,
            format!(
                "{} bytes for {total_live} vectors of {dim} dimensions",
                vector_bytes.len()
            ),
        ));
    }
    let vectors: Vec<f32> = vector_bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    drop(vector_bytes);
    if let Some(i) = vectors.iter().position(|x| !x.is_finite()) {
        return Err(corrupt(
            &vectors_path,
            format!("component {i} is not finite"),
        ));
    }

    let mut report = OpenReport {
        generation: manifest.generation,
        ..OpenReport::default()
    };
    let mut spaces: Vec<(EmbeddingSpace, SpaceState)> = Vec::new();
    let mut offset = 0usize;
    for sf in rows_file.spaces {
        if spaces.iter().any(|(s, _)| *s == sf.space) {
            return Err(corrupt(
                &rows_path,
                format!("space {} listed twice", sf.space),
            ));
        }
        check_rows(&sf, &rows_path)?;
        let n = sf.rows.len();
        let space_vectors = &vectors[offset * dim..(offset + n) * dim];
        offset += n;
        let mut state = None;
        if let Some(basename) = &sf.graph {
            // Graph files are derived data: if they are damaged the graph is rebuilt from the
            // (verified) vectors instead of refusing to open.
            let loaded = verify_graph_files(&snap, basename, &manifest.files)
                .and_then(|()| load_graph(&snap, basename, &sf, space_vectors, dim, config));
            match loaded {
                Ok(s) => {
                    report.graphs_loaded.push(sf.space);
                    state = Some(s);
                }
                Err(e) => tracing::warn!(
                    space = %sf.space, snapshot = %snap.display(), error = %e,
                    "hnsw graph files unusable; rebuilding the graph from the stored vectors"
                ),
            }
        }
        let state = match state {
            Some(s) => s,
            None => {
                if n > 0 {
                    report.graphs_rebuilt.push(sf.space);
                }
                let rows: Vec<Row> = sf.rows.into_iter().map(|(_, r)| r).collect();
                build_space(config, dim, rows, |i| {
                    &space_vectors[i * dim..(i + 1) * dim]
                })?
            }
        };
        spaces.push((sf.space, state));
    }
    report.leftovers_removed = remove_leftovers(dir, Some(&manifest.snapshot))?;
    report.elapsed = started.elapsed();
    Ok(Loaded { spaces, report })
}

/// Checks a snapshot file's presence, size and CRC-32 against its manifest entry.
fn verify_file(snap: &Path, entry: &FileEntry) -> Result<()> {
    let path = snap.join(&entry.name);
    let (bytes, crc32) = match checksum_file(&path, false) {
        Ok(x) => x,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(corrupt(&path, "missing"));
        }
        Err(e) => return Err(io_err(&path)(e)),
    };
    if bytes != entry.bytes {
        return Err(corrupt(
            &path,
            format!("{bytes} bytes, the manifest says {}", entry.bytes),
        ));
    }
    if crc32 != entry.crc32 {
        return Err(corrupt(&path, "checksum mismatch"));
    }
    Ok(())
}

/// Verifies both files of a graph dump (they must be listed in the manifest).
fn verify_graph_files(snap: &Path, basename: &str, files: &[FileEntry]) -> Result<()> {
    for suffix in ["hnsw.graph", "hnsw.data"] {
        let name = format!("{basename}.{suffix}");
        let entry = files
            .iter()
            .find(|f| f.name == name)
            .ok_or_else(|| Error::corrupt(format!("the manifest does not list {name}")))?;
        verify_file(snap, entry)?;
    }
    Ok(())
}

/// Ids increasing and below `graph_ids`; keys unique.
fn check_rows(sf: &SpaceFile, path: &Path) -> Result<()> {
    let mut last: Option<usize> = None;
    let mut keys = std::collections::HashSet::with_capacity(sf.rows.len());
    for (id, row) in &sf.rows {
        if last.is_some_and(|l| *id <= l) || *id >= sf.graph_ids {
            return Err(corrupt(
                path,
                format!("bad graph id {id} in space {}", sf.space),
            ));
        }
        if !keys.insert((&row.asset_id, row.seq)) {
            return Err(corrupt(
                path,
                format!(
                    "record {}:{} listed twice in space {}",
                    row.asset_id, row.seq, sf.space
                ),
            ));
        }
        last = Some(*id);
    }
    Ok(())
}

/// Loads a space's graph from its hnsw_rs dump and checks it against the rows and vectors.
fn load_graph(
    snap: &Path,
    basename: &str,
    sf: &SpaceFile,
    vectors: &[f32],
    dim: usize,
    config: &HnswConfig,
) -> Result<SpaceState> {
    if !valid_file_name(basename) {
        return Err(Error::corrupt(format!("bad graph basename {basename:?}")));
    }
    // hnsw_rs ties a loaded graph's lifetime to its loader (issue 19); graphs here own their
    // vectors (no mmap), so the loader (a few hundred bytes) is leaked to get a 'static graph.
    let io: &'static HnswIo = Box::leak(Box::new(HnswIo::new(snap, basename)));
    let graph: Graph = guarded("graph load", || io.load_hnsw_with_dist(UnitCosine))?
        .map_err(|e| Error::corrupt(format!("hnsw_rs could not load the graph: {e}")))?;
    if graph.get_nb_point() != sf.graph_ids {
        return Err(Error::corrupt(format!(
            "graph has {} nodes, rows.json says {}",
            graph.get_nb_point(),
            sf.graph_ids
        )));
    }
    let mut points: Vec<Option<PointRef>> = vec![None; sf.graph_ids];
    for p in graph.get_point_indexation() {
        let id = p.get_origin_id();
        if p.get_v().len() != dim {
            return Err(Error::corrupt("graph node of the wrong dimension"));
        }
        match points.get_mut(id) {
            Some(slot @ None) => *slot = Some(p),
            _ => {
                return Err(Error::corrupt(format!(
                    "graph id {id} out of range or repeated"
                )));
            }
        }
    }
    let points: Vec<PointRef> = points
        .into_iter()
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| Error::corrupt("graph misses nodes"))?;
    let mut rows: Vec<Option<Row>> = vec![None; sf.graph_ids];
    for (i, (id, row)) in sf.rows.iter().enumerate() {
        if points[*id].get_v() != &vectors[i * dim..(i + 1) * dim] {
            return Err(Error::corrupt(format!(
                "graph vector of id {id} differs from vectors.f32"
            )));
        }
        rows[*id] = Some(row.clone());
    }
    guarded("graph load", || {
        SpaceState::loaded(config, dim, graph, points, rows)
    })
}

/// The snapshot directory the manifest in `dir` names, if any (for tests and tools).
pub fn current_snapshot(dir: &Path) -> Result<Option<PathBuf>> {
    let path = dir.join(MANIFEST);
    match fs::read(&path) {
        Ok(bytes) => {
            let m: Manifest = serde_json::from_slice(&bytes)
                .map_err(|e| corrupt(&path, "not a valid manifest").with_source(e))?;
            if !valid_snapshot_name(&m.snapshot) {
                return Err(corrupt(
                    &path,
                    format!("bad snapshot name {:?}", m.snapshot),
                ));
            }
            Ok(Some(dir.join(m.snapshot)))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err(&path)(e)),
    }
}
