//! The crossmodal side of the side-by-side ANN comparison (`benches/ann_compare/README.md`):
//! builds a `crossmodal_hnsw::HnswIndex` over a dataset written by `make_data.py`, sweeps `ef`
//! with single-threaded, one-query-at-a-time searches, and prints the same JSON lines as
//! `peers.py` so `report.py` can put them in one table. A program, not a criterion bench:
//!
//! ```text
//! cargo bench -p crossmodal-benches --bench ann_compare -- --data DIR [--m 16] [--ef-construction 200]
//!     [--efs 10,12,16,...]
//! ```
//!
//! `bash benches/ann_compare/run.sh` makes the data and runs every candidate alternately.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crossmodal::{
    AssetId, EmbeddingSpace, IndexSpec, MediaFormat, MediaKind, RecordMeta, VectorQuery,
    VectorRecord,
};
use crossmodal::{HnswConfig, HnswIndex, Quantization, SearchOptions};
use serde_json::{Value, json};

/// Queries run untimed before each `ef` is timed (the peers do the same).
const WARM_UP: usize = 50;
/// Records handed to the index per `upsert`. The peers index straight from the numpy array;
/// this runner copies each vector into its `VectorRecord`, and glibc keeps the freed copies of
/// the last calls resident (measured on the MiniLM set, RSS growth / raw: 10,000 per call
/// 1.38x, 1,000 1.31x, 250 1.27x; after `malloc_trim` 1.24-1.28x for all three). An ingest
/// upserts one asset (about 15 vectors) at a time, so 250 is still a large batch.
const UPSERT_CHUNK: usize = 250;

struct Args {
    data: PathBuf,
    m: usize,
    ef_construction: usize,
    efs: Vec<usize>,
    /// Experiments only: keep the built index in this directory and reopen it next time (the
    /// build line then reports the reload, not a build; not for the comparison).
    reuse: Option<PathBuf>,
    /// `f32` (default) or `int8` (the walk over int8 codes, exact f32 re-rank).
    quantization: Quantization,
    /// Int8 mode: candidates re-ranked per requested hit (`HnswConfig::rerank`; its default
    /// if not given).
    rerank: Option<usize>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        data: PathBuf::new(),
        m: 16,
        ef_construction: 200,
        efs: vec![
            10, 12, 16, 20, 24, 32, 40, 48, 64, 80, 96, 128, 160, 200, 256,
        ],
        reuse: None,
        quantization: Quantization::None,
        rerank: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            // `cargo bench` adds `--bench`.
            "--bench" => {}
            "--data" => args.data = PathBuf::from(value()?),
            "--reuse" => args.reuse = Some(PathBuf::from(value()?)),
            "--quantization" => {
                args.quantization = match value()?.as_str() {
                    "f32" => Quantization::None,
                    "int8" => Quantization::Int8,
                    other => return Err(format!("--quantization {other}: f32 or int8")),
                }
            }
            "--rerank" => {
                args.rerank = Some(value()?.parse().map_err(|e| format!("--rerank: {e}"))?)
            }
            "--m" => args.m = value()?.parse().map_err(|e| format!("--m: {e}"))?,
            "--ef-construction" => {
                args.ef_construction = value()?
                    .parse()
                    .map_err(|e| format!("--ef-construction: {e}"))?
            }
            "--efs" => {
                args.efs = value()?
                    .split(',')
                    .map(|s| s.trim().parse().map_err(|e| format!("--efs {s}: {e}")))
                    .collect::<Result<_, _>>()?
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if args.data.as_os_str().is_empty() {
        return Err("--data DIR is required (see benches/ann_compare/README.md)".into());
    }
    Ok(args)
}

struct Dataset {
    n: usize,
    nq: usize,
    dim: usize,
    k: usize,
    base: Vec<f32>,
    queries: Vec<f32>,
    truth: Vec<u32>,
}

/// Reads `len` little-endian 4-byte values (`f32` or `u32`) from `path`.
fn read_le<T>(path: &Path, len: usize, from: fn([u8; 4]) -> T) -> Result<Vec<T>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if bytes.len() != len * 4 {
        return Err(format!(
            "{}: {} bytes, expected {}",
            path.display(),
            bytes.len(),
            len * 4
        ));
    }
    Ok(bytes
        .chunks_exact(4)
        .map(|b| from([b[0], b[1], b[2], b[3]]))
        .collect())
}

fn load(dir: &Path) -> Result<Dataset, String> {
    let meta: Value = serde_json::from_slice(
        &std::fs::read(dir.join("meta.json"))
            .map_err(|e| format!("{}/meta.json: {e}", dir.display()))?,
    )
    .map_err(|e| format!("meta.json: {e}"))?;
    let field = |name: &str| {
        meta[name]
            .as_u64()
            .map(|v| v as usize)
            .ok_or(format!("meta.json: no integer `{name}`"))
    };
    let (n, nq, dim, k) = (field("n")?, field("nq")?, field("dim")?, field("k")?);
    Ok(Dataset {
        base: read_le(&dir.join("base.f32"), n * dim, f32::from_le_bytes)?,
        queries: read_le(&dir.join("queries.f32"), nq * dim, f32::from_le_bytes)?,
        truth: read_le(&dir.join("gt.u32"), nq * k, u32::from_le_bytes)?,
        n,
        nq,
        dim,
        k,
    })
}

/// Resident set size of this process, bytes (Linux).
fn rss_bytes() -> u64 {
    status_bytes("VmRSS:")
}

/// Resident set size after `malloc_trim(0)` (glibc only; `None` elsewhere).
fn trimmed_rss() -> Option<u64> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: malloc_trim only releases free heap pages; it takes no pointers.
        unsafe { libc::malloc_trim(0) };
        Some(rss_bytes())
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    None
}

/// A `kB` field of `/proc/self/status` (`VmRSS:`, `RssAnon:`, `RssFile:`), bytes; 0 if absent.
fn status_bytes(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(field))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

fn asset(i: usize) -> AssetId {
    AssetId::from_content(&(i as u64).to_le_bytes())
}

fn main() {
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("ann_compare: {message}");
            std::process::exit(2);
        }
    };
    let data = match load(&args.data) {
        Ok(data) => data,
        Err(message) => {
            eprintln!("ann_compare: {message}");
            std::process::exit(2);
        }
    };
    // The report groups runs by the library's first word: the int8 mode is its own candidate.
    let family = match args.quantization {
        Quantization::Int8 => "crossmodal-hnsw-int8",
        _ => "crossmodal-hnsw",
    };
    let library = format!("{family} {} (own insert)", env!("CARGO_PKG_VERSION"));
    let ids: Vec<AssetId> = (0..data.n).map(asset).collect();
    let row_of: HashMap<AssetId, u32> = ids
        .iter()
        .enumerate()
        .map(|(i, a)| (a.clone(), i as u32))
        .collect();
    let meta = RecordMeta::new(MediaKind::Image, MediaFormat::Jpeg);

    let config = HnswConfig::default()
        .m(args.m)
        .ef_construction(args.ef_construction)
        .quantization(args.quantization);
    let config = match args.rerank {
        Some(factor) => config.rerank(factor),
        None => config,
    };
    // Baseline before the index exists (the peers measure the same way).
    let rss_before = rss_bytes();
    let started = Instant::now();
    let spec = IndexSpec::new("ann-compare", data.dim);
    // The int8 mode keeps its f32 vectors on disk once checkpointed (they are read only to
    // re-rank), so it is measured on a directory; the f32 index in memory.
    let scratch = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let dir = match (&args.reuse, args.quantization) {
        (Some(dir), _) => Some(dir.clone()),
        (None, Quantization::Int8) => Some(scratch.path().join("index")),
        _ => None,
    };
    let index = match &dir {
        Some(dir) => HnswIndex::open(dir, spec, config),
        None => HnswIndex::new(spec, config),
    }
    .unwrap_or_else(|e| panic!("index: {e}"));
    let reused = index.stats_sync().vectors() as usize == data.n;
    for (chunk, rows) in data
        .base
        .chunks(UPSERT_CHUNK * data.dim)
        .enumerate()
        .filter(|_| !reused)
    {
        let records = rows
            .chunks_exact(data.dim)
            .enumerate()
            .map(|(j, v)| VectorRecord {
                asset_id: ids[chunk * UPSERT_CHUNK + j].clone(),
                space: EmbeddingSpace::Visual,
                seq: 0,
                segment: None,
                vector: v.to_vec(),
                meta: meta.clone(),
            })
            .collect();
        index
            .upsert_sync(records)
            .unwrap_or_else(|e| panic!("upsert: {e}"));
    }
    // Built means linked into the graph (upserts return before that).
    index.wait_linked();
    let build_s = started.elapsed().as_secs_f64();
    // An index on a directory (int8) is measured at rest: after the checkpoint its maintenance
    // thread takes once the linker is idle, which moves the f32 vectors written since the last
    // one (up to `checkpoint_ratio` of the data) from memory to the vector file. Timed apart:
    // the peers write nothing to disk.
    let checkpoint_s = dir.as_ref().filter(|_| !reused).map(|_| {
        let started = Instant::now();
        index
            .checkpoint()
            .unwrap_or_else(|e| panic!("checkpoint: {e}"));
        started.elapsed().as_secs_f64()
    });
    let rss_after = rss_bytes();
    // Also after handing freed heap back to the OS, as peers.py does (glibc keeps freed build
    // temporaries resident, here the records of the last upsert): an extra field, the
    // headline number stays the untrimmed one.
    let rss_trimmed = trimmed_rss().map(|b| b.saturating_sub(rss_before));
    let stats = index.stats_sync();
    println!(
        "{}",
        json!({
            "library": library,
            "phase": if reused { "reload" } else { "build" },
            "build_s": build_s,
            "checkpoint_s": checkpoint_s,
            "index_rss_bytes": rss_after.saturating_sub(rss_before),
            "index_reported_bytes": stats.memory_bytes,
            "index_rss_trimmed_bytes": rss_trimmed,
            "raw_bytes": data.n * data.dim * 4,
            "build_threads": std::thread::available_parallelism().map_or(1, |n| n.get()),
        })
    );

    let queries: Vec<&[f32]> = data.queries.chunks_exact(data.dim).collect();
    for &ef in &args.efs {
        let options = SearchOptions::default().ef(ef).always_walk_graph();
        let distances = std::cell::Cell::new(0u64);
        let run = |q: &[f32]| {
            let query = VectorQuery::new(EmbeddingSpace::Visual, q.to_vec(), data.k);
            let (hits, trace) = index
                .search_with(&query, &options)
                .unwrap_or_else(|e| panic!("search: {e}"));
            distances.set(distances.get() + trace.distances);
            hits
        };
        for q in queries.iter().take(WARM_UP) {
            std::hint::black_box(run(q));
        }
        distances.set(0);
        let started = Instant::now();
        let results: Vec<Vec<u32>> = queries
            .iter()
            .map(|q| run(q).iter().map(|hit| row_of[&hit.asset_id]).collect())
            .collect();
        let seconds = started.elapsed().as_secs_f64();
        let found: usize = results
            .iter()
            .zip(data.truth.chunks_exact(data.k))
            .map(|(got, truth)| got.iter().filter(|id| truth.contains(id)).count())
            .sum();
        println!(
            "{}",
            json!({
                "library": library,
                "phase": "search",
                "ef": ef,
                "recall": found as f64 / (data.nq * data.k) as f64,
                "qps": data.nq as f64 / seconds,
                "distances_per_query": distances.get() as f64 / data.nq as f64,
                "search_threads": 1,
            })
        );
    }
    // Informational (the report reads the build line): after every query, how much of the
    // process is anonymous memory and how much mapped file pages (the int8 mode's f32 vector
    // file is mapped; its pages come in as queries re-rank, and the kernel may reclaim them).
    println!(
        "{}",
        json!({
            "library": library,
            "phase": "after_search",
            "rss_bytes": rss_bytes(),
            "rss_anon_bytes": status_bytes("RssAnon:"),
            "rss_file_bytes": status_bytes("RssFile:"),
            "baseline_rss_bytes": rss_before,
        })
    );
}
