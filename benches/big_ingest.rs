//! Eight 1 GiB files ingested at once into `LocalDirStore`: peak resident memory growth and
//! throughput (a program, not a criterion bench). The files are sparse WAVs (a header, 64 KiB of
//! noise, then holes), written to `BIG_INGEST_DIR` (default the temp dir) and deleted after; the
//! stored copies are real bytes, so the run needs 8 GiB free there.
//!
//! The peer, in the same run: `cat`-like reading of the same files (one read pass, no hashing or
//! copy), so the ratio says what hashing + probing + storing costs over reading.
//!
//! ```text
//! cargo bench -p crossmodal-benches --bench big_ingest          # 8 x 1 GiB
//! BIG_INGEST_FILES=8 BIG_INGEST_MIB=128 cargo bench -p crossmodal-benches --bench big_ingest
//! ```
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::expect_used)]

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use crossmodal::{
    CachedEmbedder, Embedding, EmbeddingProvider, FlatIndex, IndexSpec, IngestConfig, IngestItem,
    Ingestor, LocalDirStore, MediaInput, ModelInfo, RetryPolicy, SqliteCatalog,
};

/// Vectors from the asset id; never reads the media.
struct IdProvider(ModelInfo);

#[async_trait]
impl EmbeddingProvider for IdProvider {
    fn model(&self) -> &ModelInfo {
        &self.0
    }
    async fn embed_text(&self, _: &str) -> crossmodal::Result<Vec<f32>> {
        Ok(vec![1.0, 0.0])
    }
    async fn embed_media(&self, media: &MediaInput) -> crossmodal::Result<Vec<Embedding>> {
        let b = media.asset_id.as_str().as_bytes();
        Ok(self
            .0
            .spaces_for(media.kind())
            .iter()
            .map(|s| Embedding {
                space: *s,
                segment: None,
                vector: vec![1.0, f32::from(b[0]) / 255.0],
            })
            .collect())
    }
}

fn sparse_wav(path: &Path, len: u64, seed: u64) {
    let data = (len - 44) & !3;
    let mut f = std::fs::File::create(path).unwrap();
    let mut h = Vec::with_capacity(44);
    h.extend_from_slice(b"RIFF");
    h.extend_from_slice(&((36 + data) as u32).to_le_bytes());
    h.extend_from_slice(b"WAVEfmt ");
    h.extend_from_slice(&16u32.to_le_bytes());
    h.extend_from_slice(&1u16.to_le_bytes());
    h.extend_from_slice(&2u16.to_le_bytes());
    h.extend_from_slice(&48_000u32.to_le_bytes());
    h.extend_from_slice(&(48_000u32 * 4).to_le_bytes());
    h.extend_from_slice(&4u16.to_le_bytes());
    h.extend_from_slice(&16u16.to_le_bytes());
    h.extend_from_slice(b"data");
    h.extend_from_slice(&(data as u32).to_le_bytes());
    f.write_all(&h).unwrap();
    let mut x = seed * 2 + 1;
    let noise: Vec<u8> = (0..64 * 1024)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    f.write_all(&noise).unwrap();
    f.seek(SeekFrom::Start(44 + data - 1)).unwrap();
    f.write_all(&[0]).unwrap();
}

fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

const MIB: u64 = 1024 * 1024;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let files: usize = std::env::var("BIG_INGEST_FILES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8);
    let mib: u64 = std::env::var("BIG_INGEST_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    let root = std::env::var_os("BIG_INGEST_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let dir = tempfile::tempdir_in(root).unwrap();
    let paths: Vec<_> = (0..files)
        .map(|i| {
            let p = dir.path().join(format!("long-{i}.wav"));
            sparse_wav(&p, mib * MIB, i as u64 + 7);
            p
        })
        .collect();
    let bytes = files as u64 * mib * MIB;

    // The peer: one plain read pass over the same files, 8 at once.
    let started = Instant::now();
    let readers: Vec<_> = paths
        .iter()
        .cloned()
        .map(|p| {
            std::thread::spawn(move || {
                let mut f = std::fs::File::open(p).unwrap();
                let mut buf = vec![0u8; 4 << 20];
                while f.read(&mut buf).unwrap() > 0 {}
            })
        })
        .collect();
    for r in readers {
        r.join().unwrap();
    }
    let read_s = started.elapsed().as_secs_f64();

    let model = ModelInfo {
        id: "bench".into(),
        dimension: 2,
        ..ModelInfo::marengo_3_0()
    };
    let store = Arc::new(LocalDirStore::open(dir.path().join("media")).unwrap());
    let index = Arc::new(FlatIndex::new(IndexSpec::for_model(&model)));
    let catalog = Arc::new(SqliteCatalog::open_in_memory().unwrap());
    let embedder = CachedEmbedder::new(Arc::new(IdProvider(model)), None, RetryPolicy::none());
    let config = IngestConfig::default().concurrency(files);
    let ingestor = Ingestor::new(embedder, store, index, catalog, config).unwrap();
    let reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
    let before = status_kib("VmRSS:") * 1024;
    let started = Instant::now();
    let report = ingestor
        .ingest_batch(paths.iter().map(IngestItem::file).collect(), |_, _| {})
        .await;
    let ingest_s = started.elapsed().as_secs_f64();
    let peak = status_kib("VmHWM:") * 1024;
    assert_eq!(report.progress.indexed, files, "{:?}", report.items);
    println!(
        "BIG_INGEST {files} x {mib} MiB into LocalDirStore at once: {:.1} s, {:.0} MB/s; \
         plain read of the same files {:.1} s, {:.0} MB/s (ingest/read {:.2}x); \
         peak RSS growth {} MiB (before {} MiB, peak reset {reset})",
        ingest_s,
        bytes as f64 / 1e6 / ingest_s,
        read_s,
        bytes as f64 / 1e6 / read_s,
        ingest_s / read_s,
        peak.saturating_sub(before) / MIB,
        before / MIB
    );
}
