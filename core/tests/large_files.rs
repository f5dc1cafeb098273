//! Ingest of 1 GiB files: bounded memory, and a runtime that keeps answering searches while the
//! file is hashed. In a test binary of its own, the tests one at a time, so the process's peak
//! memory is this test's. The files are sparse (a WAV header, a little noise, then holes) and
//! deleted after.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use crossmodal_core::{
    CachedEmbedder, CrossModalSearcher, Embedding, EmbeddingProvider, FlatIndex, IndexSpec,
    IngestConfig, IngestOutcome, Ingestor, LocalDirStore, MediaInput, MediaKind, MediaStore,
    ModelInfo, Query, QueryCacheConfig, Result, RetryPolicy, SqliteCatalog,
};

const GIB: u64 = 1024 * 1024 * 1024;
const MIB: u64 = 1024 * 1024;

/// One test at a time in this binary (peak memory is per process).
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A `len`-byte WAV file (48 kHz stereo 16-bit, 1.55 h for 1 GiB): the header, 64 KiB of
/// noise seeded by `seed` (so files differ), the rest sparse silence.
fn sparse_wav(path: &Path, len: u64, seed: u64) {
    let data = (len - 44) & !3;
    let mut f = std::fs::File::create(path).unwrap();
    let mut h = Vec::with_capacity(44);
    h.extend_from_slice(b"RIFF");
    h.extend_from_slice(&((36 + data) as u32).to_le_bytes());
    h.extend_from_slice(b"WAVEfmt ");
    h.extend_from_slice(&16u32.to_le_bytes());
    h.extend_from_slice(&1u16.to_le_bytes()); // PCM
    h.extend_from_slice(&2u16.to_le_bytes()); // stereo
    h.extend_from_slice(&48_000u32.to_le_bytes());
    h.extend_from_slice(&(48_000u32 * 4).to_le_bytes());
    h.extend_from_slice(&4u16.to_le_bytes());
    h.extend_from_slice(&16u16.to_le_bytes());
    h.extend_from_slice(b"data");
    h.extend_from_slice(&(data as u32).to_le_bytes());
    f.write_all(&h).unwrap();
    let mut x = seed | 1;
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
    f.sync_all().unwrap();
}

/// Vectors from the asset id; never reads the media.
struct IdProvider {
    model: ModelInfo,
    text_calls: AtomicUsize,
}

#[async_trait]
impl EmbeddingProvider for IdProvider {
    fn model(&self) -> &ModelInfo {
        &self.model
    }
    async fn embed_text(&self, text: &str) -> Result<Vec<f32>> {
        self.text_calls.fetch_add(1, Ordering::SeqCst);
        Ok(vec![1.0, text.len() as f32 / 100.0])
    }
    async fn embed_media(&self, media: &MediaInput) -> Result<Vec<Embedding>> {
        let b = media.asset_id.as_str().as_bytes();
        Ok(self
            .model
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

struct Rig {
    ingestor: Ingestor,
    searcher: CrossModalSearcher,
    store: Arc<LocalDirStore>,
    dir: tempfile::TempDir,
}

fn rig() -> Rig {
    let dir = tempfile::tempdir_in(std::env::temp_dir()).unwrap();
    let model = ModelInfo {
        id: "test".into(),
        dimension: 2,
        ..ModelInfo::marengo_3_0()
    };
    let provider = Arc::new(IdProvider {
        model: model.clone(),
        text_calls: AtomicUsize::new(0),
    });
    let store = Arc::new(LocalDirStore::open(dir.path().join("media")).unwrap());
    let index = Arc::new(FlatIndex::new(IndexSpec::for_model(&model)));
    let catalog = Arc::new(SqliteCatalog::open_in_memory().unwrap());
    let embedder = CachedEmbedder::new(provider, None, RetryPolicy::none());
    let ingestor = Ingestor::new(
        embedder.clone(),
        store.clone(),
        index.clone(),
        catalog.clone(),
        IngestConfig::default(),
    )
    .unwrap();
    // No query cache: every search below reaches the provider and the index.
    let searcher = CrossModalSearcher::with_embedder(embedder, index)
        .catalog(catalog, store.clone())
        .query_cache(QueryCacheConfig::disabled());
    Rig {
        ingestor,
        searcher,
        store,
        dir,
    }
}

fn proc_status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

fn path_in(dir: &Path, name: &str) -> PathBuf {
    dir.join(name)
}

#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_larger_than_the_memory_bound_is_ingested_in_bounded_memory() {
    let _one = SERIAL.lock().await;
    let rig = rig();
    let path = path_in(rig.dir.path(), "long-recording.wav");
    sparse_wav(&path, GIB, 7);
    // Peak resident memory from here (Linux resets VmHWM on `5` to clear_refs).
    let reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
    let before = proc_status_kib("VmRSS:") * 1024;
    let report = rig.ingestor.ingest_file(&path).await.unwrap();
    let peak = proc_status_kib("VmHWM:") * 1024;
    let growth = peak.saturating_sub(before);
    eprintln!(
        "1 GiB ingest: RSS before {} MiB, peak {} MiB, growth {} MiB (peak reset: {reset})",
        before / MIB,
        peak / MIB,
        growth / MIB
    );
    assert_eq!(report.outcome, IngestOutcome::Indexed);
    assert_eq!(report.kind, MediaKind::Audio);
    let key = crossmodal_core::MediaKey::for_asset(&report.asset_id, report.format);
    let stored = rig.store.media_ref(&key).uri.to_file_path().unwrap();
    assert_eq!(std::fs::metadata(&stored).unwrap().len(), GIB & !3);
    // The stored copy is the file: its first and last bytes read back alike.
    let head = rig.store.get_range(&key, 0..4096).await.unwrap();
    assert_eq!(head.as_ref(), &std::fs::read(&path).unwrap()[..4096]);
    std::fs::remove_file(&path).unwrap();
    std::fs::remove_file(&stored).unwrap();
    // The whole file was 1024 MiB; main held it (more than once) in memory.
    assert!(
        growth < 200 * MIB,
        "peak RSS grew by {} MiB ingesting a 1 GiB file",
        growth / MIB
    );
}

#[tokio::test(flavor = "current_thread")]
async fn searches_keep_answering_while_a_1_gib_file_is_hashed() {
    let _one = SERIAL.lock().await;
    let rig = rig();
    // Something to find.
    let small = path_in(rig.dir.path(), "small.wav");
    sparse_wav(&small, 256 * 1024, 1);
    rig.ingestor.ingest_file(&small).await.unwrap();
    let big = path_in(rig.dir.path(), "big.wav");
    sparse_wav(&big, GIB, 2);

    // One runtime thread: if hashing or copying ran on it, no search could run meanwhile.
    let done = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicUsize::new(0));
    let searcher = rig.searcher.clone();
    let searching = {
        let (done, answered) = (done.clone(), answered.clone());
        tokio::spawn(async move {
            while !done.load(Ordering::SeqCst) {
                // A guard, not a measurement: a blocked runtime would trip it.
                let results = tokio::time::timeout(
                    Duration::from_secs(60),
                    searcher.search(&Query::text("a long recording")),
                )
                .await
                .expect("a search did not finish within 60 s")
                .unwrap();
                assert!(!results.hits.is_empty());
                answered.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
    };
    // Let the searching task start.
    tokio::task::yield_now().await;
    let before = answered.load(Ordering::SeqCst);
    let report = rig.ingestor.ingest_file(&big).await.unwrap();
    let during = answered.load(Ordering::SeqCst) - before;
    done.store(true, Ordering::SeqCst);
    searching.await.unwrap();
    eprintln!("searches answered while a 1 GiB file was hashed and stored: {during}");
    assert_eq!(report.outcome, IngestOutcome::Indexed);
    let key = crossmodal_core::MediaKey::for_asset(&report.asset_id, report.format);
    let stored = rig.store.media_ref(&key).uri.to_file_path().unwrap();
    std::fs::remove_file(&big).unwrap();
    std::fs::remove_file(&stored).unwrap();
    assert!(
        during >= 10,
        "only {during} searches were answered while the file was read (the runtime was blocked)"
    );
}
