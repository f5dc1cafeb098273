//! Checkpoints: the manifest, the data files it names, writing a checkpoint beside a live
//! index, and loading one back (with the log replayed on top).
//!
//! ```text
//! <dir>/LOCK                          the directory lock (holder's pid)
//! <dir>/MANIFEST                      JSON: format, kind, spec, generation, first log to replay,
//!                                     and every data file with its committed length and CRC-32
//! <dir>/wal-<seq>.log                 the write-ahead log (storage::wal)
//! <dir>/<space>.<file_gen>.vec             unit vectors, f32 LE, append-only  (file_gen: file generation,
//! <dir>/<space>.<file_gen>.rows            32-byte rows, append-only           new after a compaction)
//! <dir>/<space>.<file_gen>.codes           int8 mode: code + f32 scale per row, append-only
//! <dir>/<space>.<ckpt>.live           tombstone bitmap, written whole per checkpoint
//! <dir>/<space>.<ckpt>.graph          the graph's linked prefix, written whole per checkpoint
//! <dir>/assets.<ckpt>.bin             the asset table, written whole per checkpoint
//! ```
//!
//! A checkpoint costs what changed for the vectors and rows (appended), plus the graph's links
//! (6% of the vectors' bytes at 512 dims) and the small tables; it runs in the background when
//! the log passes a share of the checkpointed data, and bounds how much log an open replays.

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufWriter, Read, Write};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Instant;

use crossmodal_hnsw::Graph;
use serde::{Deserialize, Serialize};

use super::assets::AssetTable;
use super::records::Op;
use super::space::{Int8Data, ROW_BYTES, Row, SpaceFiles, SpaceTable, VectorData};
use super::{Layout, OpenReport, Shared, State, Writer};
use crate::embedding::EmbeddingSpace;
use crate::error::{Error, ErrorKind, Result};
use crate::index::IndexSpec;
use crate::storage::codec::{ByteReader, ByteWriter};
use crate::storage::files::{self, FileEntry, corrupt, io};
use crate::storage::wal::{self, WalWriter};
use crate::storage::{MANIFEST, lock::LOCK_FILE};

const FORMAT: &str = "crossmodal-index/2";

/// What the manifest says of one space.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SpaceManifest {
    pub(crate) space: EmbeddingSpace,
    pub(crate) rows: u64,
    pub(crate) file_gen: u64,
    pub(crate) vectors: FileEntry,
    pub(crate) rows_file: FileEntry,
    #[serde(default)]
    pub(crate) codes: Option<FileEntry>,
    pub(crate) live: FileEntry,
    #[serde(default)]
    pub(crate) graph: Option<FileEntry>,
    #[serde(default)]
    pub(crate) linked: u64,
}

/// The graph parameters an index was built with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct GraphManifest {
    pub(crate) m: usize,
    pub(crate) ef_construction: usize,
    pub(crate) seed: u64,
    pub(crate) int8: bool,
}

/// The root of a durable index.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Manifest {
    pub(crate) format: String,
    /// `flat` or `hnsw`.
    pub(crate) kind: String,
    pub(crate) spec: IndexSpec,
    pub(crate) generation: u64,
    /// The first log file to replay, and the LSN its first record has.
    pub(crate) wal_start: u64,
    pub(crate) next_lsn: u64,
    #[serde(default)]
    pub(crate) graph: Option<GraphManifest>,
    pub(crate) assets: FileEntry,
    pub(crate) spaces: Vec<SpaceManifest>,
}

impl Manifest {
    fn files(&self) -> Vec<&str> {
        let mut out = vec![self.assets.name.as_str()];
        for s in &self.spaces {
            out.push(&s.vectors.name);
            out.push(&s.rows_file.name);
            out.push(&s.live.name);
            if let Some(c) = &s.codes {
                out.push(&c.name);
            }
            if let Some(g) = &s.graph {
                out.push(&g.name);
            }
        }
        out
    }
}

pub(crate) fn kind_name(layout: &Layout) -> &'static str {
    match layout {
        Layout::Flat => "flat",
        Layout::Graph { .. } => "hnsw",
    }
}

fn graph_manifest(layout: &Layout) -> Option<GraphManifest> {
    match layout {
        Layout::Flat => None,
        Layout::Graph { config, int8, .. } => Some(GraphManifest {
            m: config.m,
            ef_construction: config.ef_construction,
            seed: config.seed,
            int8: *int8,
        }),
    }
}

/// Whether `name` is a file this engine writes (so a leftover of ours when unreferenced).
fn ours(name: &str) -> bool {
    wal::parse_name(name).is_some()
        || name.starts_with(".MANIFEST.tmp-")
        || [".vec", ".rows", ".codes", ".live", ".graph", ".bin"]
            .iter()
            .any(|ext| name.ends_with(ext))
}

/// Loads the index in `dir` (or starts it empty), replays its log and removes leftovers.
pub(crate) fn load(
    dir: &Path,
    spec: &IndexSpec,
    layout: &Layout,
) -> Result<(State, Writer, OpenReport)> {
    let started = Instant::now();
    let mut report = OpenReport::default();
    let manifest_path = dir.join(MANIFEST);
    let manifest: Option<Manifest> = match fs::read(&manifest_path) {
        Ok(bytes) => Some(
            serde_json::from_slice(&bytes)
                .map_err(|e| corrupt(&manifest_path, format!("not a valid manifest: {e}")))?,
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(io(&manifest_path)(e)),
    };
    let manifest = match manifest {
        Some(m) => Some(m),
        None => {
            refuse_older_formats(dir)?;
            // A new index records its model, dimension and kind at once, so a second open with
            // another model is refused even before the first checkpoint.
            Some(initial_manifest(dir, spec, layout)?)
        }
    };
    let mut state = State::default();
    let (wal_start, mut next_lsn) = match &manifest {
        Some(m) => {
            if m.format != FORMAT {
                return Err(corrupt(
                    &manifest_path,
                    format!("unknown format {:?}", m.format),
                ));
            }
            spec.check_same(&m.spec)
                .map_err(|e| e.with_context("path", dir.display()))?;
            if m.kind != kind_name(layout) {
                return Err(Error::new(
                    ErrorKind::Conflict,
                    format!(
                        "{} holds a {} index, not a {} one",
                        dir.display(),
                        m.kind,
                        kind_name(layout)
                    ),
                ));
            }
            let mut r = files::open_checked(dir, &m.assets, true)?;
            let mut bytes = Vec::new();
            r.read_to_end(&mut bytes).map_err(io(dir))?;
            state.assets =
                AssetTable::decode(bytes.get(..m.assets.bytes as usize).unwrap_or_default())?;
            let same_graph = graph_manifest(layout) == m.graph;
            for sm in &m.spaces {
                let space = load_space(
                    dir,
                    spec.dimension,
                    layout,
                    sm,
                    same_graph,
                    &state.assets,
                    &mut report,
                )?;
                report.vectors += space.live_count as u64;
                if state.spaces.insert(sm.space, space).is_some() {
                    return Err(corrupt(
                        &manifest_path,
                        format!("space {} listed twice", sm.space),
                    ));
                }
            }
            report.generation = m.generation;
            (m.wal_start, m.next_lsn)
        }
        None => (1, 1),
    };
    // Replay the log on top.
    let mut seqs: Vec<u64> = fs::read_dir(dir)
        .map_err(io(dir))?
        .filter_map(|e| e.ok())
        .filter_map(|e| wal::parse_name(&e.file_name().to_string_lossy()))
        .filter(|s| *s >= wal_start)
        .collect();
    seqs.sort_unstable();
    let mut writer_wal = None;
    for (i, seq) in seqs.iter().enumerate() {
        let path = dir.join(wal::file_name(*seq));
        let contents = wal::read(&path, *seq, Some(next_lsn))?;
        let last = i + 1 == seqs.len();
        if contents.torn_bytes > 0 && !last {
            return Err(corrupt(&path, "an older log file ends in a torn record"));
        }
        for (lsn, body) in contents.records {
            let op = Op::decode(&body, spec.dimension)
                .map_err(|e| e.with_context("path", path.display()))?;
            super::apply(&mut state, &op, spec.dimension, layout)?;
            report.log_records += 1;
            next_lsn = lsn + 1;
        }
        report.torn_bytes += contents.torn_bytes;
        if last {
            writer_wal = Some(WalWriter::reopen(
                &path,
                *seq,
                contents.valid_len.max(16),
                next_lsn,
            )?);
            if contents.valid_len < 16 {
                // The header itself was torn: start the file again.
                drop(writer_wal.take());
                fs::remove_file(&path).map_err(io(&path))?;
                writer_wal = Some(WalWriter::create(dir, *seq, next_lsn)?);
            }
        }
    }
    let wal = match writer_wal {
        Some(w) => w,
        None => WalWriter::create(dir, wal_start, next_lsn)?,
    };
    // Leftovers: our files that the manifest does not name (a checkpoint cut short), older logs.
    let keep: Vec<String> = manifest
        .as_ref()
        .map(|m| m.files().into_iter().map(String::from).collect())
        .unwrap_or_default();
    for entry in fs::read_dir(dir).map_err(io(dir))? {
        let entry = entry.map_err(io(dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let stale_log = wal::parse_name(&name).is_some_and(|s| s < wal.seq() && !seqs.contains(&s));
        let unreferenced = ours(&name) && wal::parse_name(&name).is_none() && !keep.contains(&name);
        if (stale_log || unreferenced) && name != MANIFEST && name != LOCK_FILE {
            fs::remove_file(entry.path()).map_err(io(&entry.path()))?;
            report.leftovers_removed += 1;
        }
    }
    crate::durable::sync_dir(dir).map_err(io(dir))?;
    report.pending = state
        .spaces
        .values()
        .map(|s| (s.len() - s.linked()) as u64)
        .sum();
    if !matches!(layout, Layout::Graph { .. }) {
        report.pending = 0;
    }
    report.elapsed = started.elapsed();
    let next_file_gen = manifest.as_ref().map_or(1, |m| {
        m.spaces
            .iter()
            .map(|s| s.file_gen)
            .max()
            .unwrap_or(0)
            .max(m.generation)
            + 1
    });
    let writer = Writer {
        wal: Some(wal),
        manifest,
        log_bytes: 0,
        compaction: None,
        checkpoint_requested: false,
        next_file_gen,
    };
    Ok((state, writer, report))
}

/// The manifest of an empty index (written when the directory is created).
fn initial_manifest(dir: &Path, spec: &IndexSpec, layout: &Layout) -> Result<Manifest> {
    let mut w = ByteWriter::default();
    AssetTable::default().encode(&mut w)?;
    let assets = files::write_new(dir, "assets.0.bin", |out| out.write_all(&w.buf))?;
    let manifest = Manifest {
        format: FORMAT.to_string(),
        kind: kind_name(layout).to_string(),
        spec: spec.clone(),
        generation: 0,
        wal_start: 1,
        next_lsn: 1,
        graph: graph_manifest(layout),
        assets,
        spaces: Vec::new(),
    };
    let json = serde_json::to_vec_pretty(&manifest)
        .map_err(|e| Error::backend(format!("encode manifest: {e}")))?;
    crate::durable::write_atomic(&dir.join(MANIFEST), &json)?;
    Ok(manifest)
}

/// A directory written by an earlier version (snapshot directories, `flat.idx`): refused with
/// what to do, never misread.
fn refuse_older_formats(dir: &Path) -> Result<()> {
    let old = fs::read_dir(dir)
        .map_err(io(dir))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|n| n == "MANIFEST.json" || n.starts_with("snap-") || n == "flat.idx");
    match old {
        Some(name) => Err(Error::new(
            ErrorKind::Unsupported,
            format!(
                "{} holds an index in an older format ({name}); remove that directory: the \
                 engine re-indexes every asset from its embedding cache when it reopens, \
                 without calling the model again",
                dir.display()
            ),
        )),
        None => Ok(()),
    }
}

fn read_all(dir: &Path, entry: &FileEntry, verify: bool) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    if verify {
        let r = files::open_checked(dir, entry, true)?;
        r.take(entry.bytes)
            .read_to_end(&mut bytes)
            .map_err(io(dir))?;
    } else {
        let path = dir.join(&entry.name);
        let f = fs::File::open(&path).map_err(io(&path))?;
        f.take(entry.bytes)
            .read_to_end(&mut bytes)
            .map_err(io(&path))?;
    }
    if bytes.len() as u64 != entry.bytes {
        return Err(corrupt(
            &dir.join(&entry.name),
            "shorter than the manifest says",
        ));
    }
    Ok(bytes)
}

/// Streams the committed bytes of a data file through `each` in whole records (one pass that
/// also checks the length and CRC-32).
fn stream(
    dir: &Path,
    entry: &FileEntry,
    record: usize,
    each: impl FnMut(&[u8]) -> Result<()>,
) -> Result<()> {
    files::stream_checked(dir, entry, true, record, each)
}

fn load_space(
    dir: &Path,
    dim: usize,
    layout: &Layout,
    sm: &SpaceManifest,
    same_graph: bool,
    assets: &AssetTable,
    report: &mut OpenReport,
) -> Result<SpaceTable> {
    let rows_n = usize::try_from(sm.rows).map_err(|_| Error::corrupt("row count overflows"))?;
    let (graph_config, int8) = match layout {
        Layout::Flat => (None, false),
        Layout::Graph { config, int8, .. } => (Some(*config), *int8),
    };
    let mut space = SpaceTable::new(dim, None, int8);
    // Rows.
    // (A damaged row count must not overflow the product: `None` never equals a length.)
    if Some(sm.rows_file.bytes) != sm.rows.checked_mul(ROW_BYTES as u64) {
        return Err(corrupt(
            &dir.join(&sm.rows_file.name),
            "row count does not match the manifest",
        ));
    }
    let mut rows = Vec::with_capacity(rows_n);
    stream(dir, &sm.rows_file, ROW_BYTES, |rec| {
        let mut r = ByteReader::new(rec, "row");
        let row = Row::decode(&mut r)?;
        if assets.meta_of(row.asset, row.meta).is_none() {
            return Err(Error::corrupt("a row names an unknown asset"));
        }
        rows.push(row);
        Ok(())
    })?;
    let kind_of = |row: &Row| assets.meta_of(row.asset, row.meta).map(|m| m.kind);
    // Vectors.
    let row_bytes = dim * 4;
    if Some(sm.vectors.bytes) != sm.rows.checked_mul(row_bytes as u64) {
        return Err(corrupt(
            &dir.join(&sm.vectors.name),
            "vector count does not match the manifest",
        ));
    }
    if int8 {
        let codes = sm
            .codes
            .as_ref()
            .ok_or_else(|| Error::corrupt("an int8 index without its code file"))?;
        let mut i = 0usize;
        let VectorData::Int8(d) = &mut space.vectors else {
            return Err(Error::backend("int8 space without int8 data"));
        };
        stream(dir, codes, dim + 4, |rec| {
            let (code, scale) = rec.split_at(dim);
            let code: Vec<i8> = code.iter().map(|b| *b as i8).collect();
            d.codes.push(&code);
            d.scales
                .push(f32::from_le_bytes(scale.try_into().unwrap_or_default()));
            i += 1;
            Ok(())
        })?;
        if i != rows_n {
            return Err(Error::corrupt("code count does not match the rows"));
        }
        // The f32 file is mapped and read in place when re-ranking (each vector checked against
        // its row's CRC then); here only its length is checked, and a crashed append past it is
        // cut before it is mapped.
        let path = dir.join(&sm.vectors.name);
        let file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| {
                if e.kind() == std::io::ErrorKind::NotFound {
                    corrupt(&path, "missing")
                } else {
                    io(&path)(e)
                }
            })?;
        let size = file.metadata().map_err(io(&path))?.len();
        if size < sm.vectors.bytes {
            return Err(corrupt(
                &path,
                format!("{size} bytes, the manifest says {}", sm.vectors.bytes),
            ));
        }
        file.set_len(sm.vectors.bytes).map_err(io(&path))?;
        d.checkpointed_to(&file, &path, rows_n, dim)?;
        for row in rows {
            let kind = kind_of(&row).unwrap_or(crate::media::MediaKind::Image);
            space.rows.push(row);
            space.kinds.push(super::space::kind_bit(kind));
        }
    } else {
        let mut it = rows.into_iter();
        let mut failed = None;
        stream(dir, &sm.vectors, row_bytes, |rec| {
            match it.next() {
                Some(row) => {
                    let kind = kind_of(&row).unwrap_or(crate::media::MediaKind::Image);
                    space.push_loaded(row, kind, rec)?;
                }
                None => failed = Some(()),
            }
            Ok(())
        })?;
        if failed.is_some() || it.next().is_some() {
            return Err(Error::corrupt("vector count does not match the rows"));
        }
    }
    // Tombstones.
    let live_bytes = read_all(dir, &sm.live, true)?;
    let words: Vec<u64> = live_bytes
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().unwrap_or_default()))
        .collect();
    space.restore_live(words, assets)?;
    space.checkpointed = rows_n;
    space.files = SpaceFiles {
        file_gen: sm.file_gen,
        vectors: Some(sm.vectors.clone()),
        rows: Some(sm.rows_file.clone()),
        codes: sm.codes.clone(),
    };
    // The graph: its linked prefix from the file, the rest linked in the background.
    if let Some(config) = graph_config {
        let linked = usize::try_from(sm.linked).unwrap_or(0).min(rows_n);
        // The graph is derived data: damaged (checksum or structure) or built with other
        // parameters, it is rebuilt from the checked vectors instead of refusing to open.
        let loaded = match (&sm.graph, same_graph) {
            (Some(entry), true) => match read_all(dir, entry, true).and_then(|bytes| {
                Graph::read(&mut bytes.as_slice(), config, linked).map_err(graph_err)
            }) {
                Ok(g) => Some(g),
                Err(e) => {
                    tracing::warn!(space = %sm.space, error = %e, "graph file unusable; relinking the space");
                    None
                }
            },
            _ => None,
        };
        let (mut graph, linked) = match loaded {
            Some(g) => (g, linked),
            None => {
                if rows_n > 0 {
                    report.graphs_rebuilt.push(sm.space);
                }
                (Graph::new(config).map_err(graph_err)?, 0)
            }
        };
        graph.push_nodes(rows_n - linked).map_err(graph_err)?;
        space.graph = Some(graph);
        space.linked.store(linked, Ordering::Release);
    }
    Ok(space)
}

pub(crate) fn graph_err(e: crossmodal_hnsw::GraphError) -> Error {
    Error::backend(format!("hnsw graph: {e}")).with_source(e)
}

/// What a checkpoint writes of one space, captured when the log rotates.
struct SpaceCapture {
    space: EmbeddingSpace,
    /// Rows `..cut` belong to this checkpoint.
    cut: usize,
    linked: usize,
    from: usize,
    live: Vec<u64>,
    files: SpaceFiles,
    /// The generation of the space's data files (a new one if it has none yet).
    file_gen: u64,
}

/// Writes a checkpoint of the index in `shared.dir`. Runs beside writers and searches: the log
/// is rotated under the writer lock (the checkpoint then holds exactly what the old logs hold),
/// data is appended holding the state's read lock a chunk at a time, and the manifest is
/// replaced last. Runs with the maintenance lock held (so the graph is not being linked).
pub(crate) fn write(shared: &Shared) -> Result<()> {
    let Some(dir) = shared.dir.as_deref() else {
        return Ok(());
    };
    let dim = shared.spec.dimension;
    // 1. Rotate the log and capture what the checkpoint holds.
    let (assets, captures, wal_start, next_lsn, old_manifest, generation) = {
        let mut w = shared.writer.lock();
        let Some(wal) = w.wal.as_mut() else {
            return Ok(());
        };
        wal.sync()?;
        let (seq, lsn) = (wal.seq() + 1, wal.next_lsn());
        let fresh = WalWriter::create(dir, seq, lsn)?;
        w.wal = Some(fresh);
        w.log_bytes = 0;
        w.checkpoint_requested = false;
        let st = shared.state.read();
        let mut captures = Vec::with_capacity(st.spaces.len());
        for (space, t) in &st.spaces {
            let cut = t.len();
            let mut live = t.live_words().to_vec();
            live.resize(cut.div_ceil(64), 0);
            let file_gen = if t.files.vectors.is_some() {
                t.files.file_gen
            } else {
                w.alloc_file_gen()
            };
            captures.push(SpaceCapture {
                space: *space,
                cut,
                linked: t.linked().min(cut),
                from: t.checkpointed,
                live,
                files: t.files.clone(),
                file_gen,
            });
        }
        let generation = w.manifest.as_ref().map_or(0, |m| m.generation) + 1;
        (
            st.assets.clone(),
            captures,
            seq,
            lsn,
            w.manifest.clone(),
            generation,
        )
    };
    // 2. Data files.
    let mut spaces = Vec::with_capacity(captures.len());
    let mut new_files: BTreeMap<EmbeddingSpace, SpaceFiles> = BTreeMap::new();
    for c in &captures {
        let file_gen = c.file_gen;
        let fresh = c.files.vectors.is_none();
        let name = |ext: &str, g: u64| format!("{}.{g}.{ext}", c.space);
        let base = |e: &Option<FileEntry>| if fresh { None } else { e.clone() };
        let vectors = files::append(
            dir,
            &name("vec", file_gen),
            base(&c.files.vectors).as_ref(),
            |w| {
                copy_rows(shared, c.space, c.from, c.cut, w, |t, id, out| {
                    if let Some(v) = t.memory_vectors(id) {
                        for x in v {
                            out.extend_from_slice(&x.to_le_bytes());
                        }
                    } else if let Ok(v) = t.vector(id) {
                        for x in v.iter() {
                            out.extend_from_slice(&x.to_le_bytes());
                        }
                    }
                })
            },
        )?;
        let rows_file = files::append(
            dir,
            &name("rows", file_gen),
            base(&c.files.rows).as_ref(),
            |w| {
                copy_rows(shared, c.space, c.from, c.cut, w, |t, id, out| {
                    if let Some(r) = t.rows.get(id) {
                        r.encode(out);
                    }
                })
            },
        )?;
        let int8 = matches!(shared.options.layout, Layout::Graph { int8: true, .. });
        let codes = if int8 {
            Some(files::append(
                dir,
                &name("codes", file_gen),
                base(&c.files.codes).as_ref(),
                |w| {
                    copy_rows(shared, c.space, c.from, c.cut, w, |t, id, out| {
                        if let VectorData::Int8(d) = &t.vectors {
                            out.extend(d.codes.get(id).iter().map(|c| *c as u8));
                            out.extend_from_slice(
                                &d.scales.get(id).copied().unwrap_or(0.0).to_le_bytes(),
                            );
                        }
                    })
                },
            )?)
        } else {
            None
        };
        let live = files::write_new(dir, &name("live", generation), |w| {
            for word in &c.live {
                w.write_all(&word.to_le_bytes())?;
            }
            Ok(())
        })?;
        let graph = if matches!(shared.options.layout, Layout::Graph { .. }) && c.linked > 0 {
            let st = shared.state.read();
            match st.spaces.get(&c.space).and_then(|t| t.graph.as_ref()) {
                Some(g) => Some(files::write_new(dir, &name("graph", generation), |w| {
                    g.write(&mut BufWriter::with_capacity(1 << 20, w), c.linked)
                })?),
                None => None,
            }
        } else {
            None
        };
        new_files.insert(
            c.space,
            SpaceFiles {
                file_gen,
                vectors: Some(vectors.clone()),
                rows: Some(rows_file.clone()),
                codes: codes.clone(),
            },
        );
        spaces.push(SpaceManifest {
            space: c.space,
            rows: c.cut as u64,
            file_gen,
            vectors,
            rows_file,
            codes,
            live,
            graph,
            linked: c.linked as u64,
        });
    }
    let mut w = ByteWriter::default();
    assets.encode(&mut w)?;
    let assets_file = files::write_new(dir, &format!("assets.{generation}.bin"), |out| {
        out.write_all(&w.buf)
    })?;
    let manifest = Manifest {
        format: FORMAT.to_string(),
        kind: kind_name(&shared.options.layout).to_string(),
        spec: shared.spec.clone(),
        generation,
        wal_start,
        next_lsn,
        graph: graph_manifest(&shared.options.layout),
        assets: assets_file,
        spaces,
    };
    let json = serde_json::to_vec_pretty(&manifest)
        .map_err(|e| Error::backend(format!("encode manifest: {e}")))?;
    crate::durable::write_atomic(&dir.join(MANIFEST), &json)?;
    // 3. The state now stands on the new files.
    {
        let mut w = shared.writer.lock();
        let mut st = shared.state.write();
        for c in &captures {
            if let (Some(t), Some(f)) = (st.spaces.get_mut(&c.space), new_files.remove(&c.space)) {
                t.checkpointed = c.cut;
                if let VectorData::Int8(d) = &mut t.vectors {
                    trim_tail(dir, d, &f, c.cut, dim)?;
                }
                t.files = f;
            }
        }
        w.manifest = Some(manifest.clone());
    }
    // 4. What the new manifest no longer names: older logs and replaced files.
    let keep = manifest.files();
    if let Some(old) = &old_manifest {
        for name in old.files() {
            if !keep.contains(&name) {
                let _ = fs::remove_file(dir.join(name));
            }
        }
    }
    for entry in fs::read_dir(dir).map_err(io(dir))?.filter_map(|e| e.ok()) {
        if let Some(seq) = wal::parse_name(&entry.file_name().to_string_lossy())
            && seq < wal_start
        {
            let _ = fs::remove_file(entry.path());
        }
    }
    crate::durable::sync_dir(dir).map_err(io(dir))?;
    Ok(())
}

/// Writes rows `from..to` of `space` through `encode`, holding the state's read lock for one
/// chunk of rows at a time (writers get in between chunks).
fn copy_rows(
    shared: &Shared,
    space: EmbeddingSpace,
    from: usize,
    to: usize,
    w: &mut dyn Write,
    encode: impl Fn(&SpaceTable, usize, &mut Vec<u8>),
) -> std::io::Result<()> {
    const CHUNK: usize = 1024;
    let mut buf = Vec::new();
    let mut id = from;
    while id < to {
        let end = (id + CHUNK).min(to);
        buf.clear();
        {
            let st = shared.state.read();
            if let Some(t) = st.spaces.get(&space) {
                for i in id..end {
                    encode(t, i, &mut buf);
                }
            }
        }
        w.write_all(&buf)?;
        id = end;
    }
    Ok(())
}

/// After a checkpoint in int8 mode: the f32 vectors of rows `..cut` are on disk; keep only the
/// tail after it in memory.
fn trim_tail(
    dir: &Path,
    d: &mut Int8Data,
    files: &SpaceFiles,
    cut: usize,
    dim: usize,
) -> Result<()> {
    let Some(entry) = &files.vectors else {
        return Ok(());
    };
    let path = dir.join(&entry.name);
    let file = fs::File::open(&path).map_err(io(&path))?;
    d.checkpointed_to(&file, &path, cut, dim)
}
