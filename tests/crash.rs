//! Killed processes on the embedded default: `kill -9` of a child process at random points of a
//! batch ingest (with checkpoints, deletes and compactions running), then a restart that must
//! open the directory, find every asset the catalog calls `Indexed` with its vectors, hold no
//! vector twice, and finish the batch; and a second process on a held directory.
//!
//! The child is this test binary run again (`CROSSMODAL_CRASH_CHILD` names its directory): no
//! extra program, the same provider on both sides.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use crossmodal::storage::StorageConfig;
use crossmodal::{
    AssetId, AssetQuery, AssetState, Embedding, EmbeddingProvider, EmbeddingSpace, Engine,
    ErrorKind, HnswConfig, IngestConfig, IngestItem, LocalOptions, MediaInput, MediaKind,
    ModelInfo, Result, Segment,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const DIM: usize = 16;
const FILES: usize = 60;
const CHILD_VAR: &str = "CROSSMODAL_CRASH_CHILD";

/// Deterministic vectors from the content: one visual vector per image, one audio vector per
/// second of audio (so an asset's vector count is known from its bytes). Not a model.
struct HashProvider(ModelInfo);

fn hash_vector(bytes: &[u8], salt: u32) -> Vec<f32> {
    let digest = AssetId::from_content(&[bytes, &salt.to_le_bytes()].concat());
    let raw = digest.as_str().as_bytes();
    (0..DIM)
        .map(|i| f32::from(raw[i % raw.len()]) - 80.0 + (i as f32) * 0.01)
        .collect()
}

fn expected_vectors(kind: MediaKind, duration: Option<f64>) -> usize {
    match kind {
        MediaKind::Audio => duration.unwrap_or(1.0).ceil().max(1.0) as usize,
        _ => 1,
    }
}

#[async_trait]
impl EmbeddingProvider for HashProvider {
    fn model(&self) -> &ModelInfo {
        &self.0
    }
    async fn embed_text(&self, text: &str) -> Result<Vec<f32>> {
        Ok(hash_vector(text.as_bytes(), 0))
    }
    async fn embed_media(&self, media: &MediaInput) -> Result<Vec<Embedding>> {
        let n = expected_vectors(media.kind(), media.duration_sec);
        let space = if media.kind() == MediaKind::Audio {
            EmbeddingSpace::Audio
        } else {
            EmbeddingSpace::Visual
        };
        Ok((0..n)
            .map(|i| Embedding {
                space,
                segment: (media.kind() == MediaKind::Audio)
                    .then(|| Segment::new(i as f64, i as f64 + 1.0).unwrap()),
                vector: hash_vector(media.asset_id.as_str().as_bytes(), i as u32 + 1),
            })
            .collect())
    }
}

fn provider() -> Arc<dyn EmbeddingProvider> {
    Arc::new(HashProvider(ModelInfo {
        id: "crash-test-hash (not a model)".into(),
        dimension: DIM,
        ..ModelInfo::marengo_3_0()
    }))
}

/// Checkpoints and compactions often, so kills land inside them too.
fn options() -> LocalOptions {
    let storage = StorageConfig::default()
        .min_checkpoint_bytes(4 << 10)
        .checkpoint_ratio(0.05)
        .compaction_ratio(0.1);
    LocalOptions::default()
        .hnsw(HnswConfig::default().storage(storage))
        .ingest(
            IngestConfig::default()
                .concurrency(4)
                .checkpoint_interval(Duration::from_millis(20)),
        )
}

/// The batch: WAV files of 1-3 s and small PNGs, each with distinct content.
fn make_files(dir: &Path) -> Vec<PathBuf> {
    std::fs::create_dir_all(dir).unwrap();
    (0..FILES)
        .map(|i| {
            if i % 3 == 0 {
                let p = dir.join(format!("image-{i}.png"));
                image::RgbImage::from_fn(8, 8, |x, y| {
                    image::Rgb([i as u8, x as u8 * 9, y as u8 * 7])
                })
                .save(&p)
                .unwrap();
                p
            } else {
                let p = dir.join(format!("sound-{i}.wav"));
                let spec = hound::WavSpec {
                    channels: 1,
                    sample_rate: 8000,
                    bits_per_sample: 16,
                    sample_format: hound::SampleFormat::Int,
                };
                let mut w = hound::WavWriter::create(&p, spec).unwrap();
                let seconds = 1 + i % 3;
                for s in 0..8000 * seconds {
                    w.write_sample(((s as f32 * (0.01 + i as f32 * 0.001)).sin() * 9000.0) as i16)
                        .unwrap();
                }
                w.finalize().unwrap();
                p
            }
        })
        .collect()
}

/// The child: ingest the batch (re-running what a killed run left), delete and re-add a few
/// assets to cause tombstones and compactions, say how far it got.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run by kill_nine_at_random_points_loses_nothing as its child process"]
async fn crash_child() {
    let Some(dir) = std::env::var_os(CHILD_VAR).map(PathBuf::from) else {
        return;
    };
    let files = make_files(&dir.join("files"));
    let engine = Engine::open_local_with(dir.join("data"), provider(), options())
        .await
        .unwrap();
    // A line of its own (libtest has printed "test crash_child ... " without a newline).
    println!();
    println!("open");
    engine.retry_failed(|_, _| {}).await.unwrap();
    let items: Vec<IngestItem> = files.iter().map(IngestItem::file).collect();
    let report = engine
        .ingest_batch(items, |p, _| println!("progress {}", p.done))
        .await;
    assert_eq!(
        report.progress.failed,
        0,
        "{:?}",
        report.failures().collect::<Vec<_>>()
    );
    // Churn: delete and re-ingest some assets (tombstones, compactions, log records).
    for path in files.iter().step_by(4) {
        let bytes = std::fs::read(path).unwrap();
        println!("deleting");
        engine.delete(&AssetId::from_content(&bytes)).await.unwrap();
        engine.ingest_file(path).await.unwrap();
        println!("churn");
    }
    engine.flush().await.unwrap();
    println!("done");
}

fn spawn_child(dir: &Path) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "crash_child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_VAR, dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

/// What a reopened directory holds: every `Indexed` asset with all its vectors, no vector twice.
async fn check(dir: &Path, files: &[PathBuf]) -> (usize, Engine) {
    let engine = Engine::open_local_with(dir.join("data"), provider(), options())
        .await
        .unwrap_or_else(|e| panic!("the directory must open after a kill: {e}"));
    let report = engine.open_report().clone();
    // (A deletion a kill interrupted is finished by the open: `deletes_finished`.)
    assert_eq!(
        report.reconciled.missing, 0,
        "the index lost vectors of assets the catalog called indexed: {report:?}"
    );
    let mut expected: BTreeMap<AssetId, usize> = BTreeMap::new();
    for path in files {
        let bytes = std::fs::read(path).unwrap();
        let valid =
            crossmodal::validate_media(&bytes, None, &crossmodal::MediaLimits::default()).unwrap();
        expected.insert(
            valid.asset_id.clone(),
            expected_vectors(valid.probe.kind(), valid.probe.duration_sec),
        );
    }
    let mut indexed = 0;
    let mut query = AssetQuery::new().limit(1000);
    let mut present = 0u64;
    loop {
        let page = engine.assets(&query).await.unwrap();
        for record in &page.assets {
            let n = engine
                .index()
                .asset_vectors(&record.asset_id)
                .await
                .unwrap()
                .unwrap();
            let want = expected[&record.asset_id];
            assert!(
                n == 0 || n == want,
                "asset {} has {n} vectors, expected {want}",
                record.asset_id
            );
            present += n as u64;
            if record.status.state() == AssetState::Indexed {
                indexed += 1;
                assert_eq!(n, want, "an Indexed asset is fully in the index");
            }
        }
        match page.next_cursor {
            Some(c) => query = query.cursor(c),
            None => break,
        }
    }
    let stats = engine.index_stats().await.unwrap();
    assert_eq!(
        stats.vectors(),
        present,
        "no vector of an unknown or deleted asset, none twice"
    );
    (indexed, engine)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_nine_at_random_points_loses_nothing() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path();
    let files = make_files(&dir.join("files"));
    let mut rng = StdRng::seed_from_u64(
        std::env::var("CROSSMODAL_CRASH_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(1),
    );
    let iterations: usize = std::env::var("CROSSMODAL_CRASH_ITERATIONS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(50);
    let (mut kills, mut finished) = (0, 0);
    for _ in 0..iterations {
        let mut child = spawn_child(dir);
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        // Kill after a random number of progress lines (0: right after opening), then a random
        // few milliseconds more, so kills land in ingests, checkpoints, churn and compaction.
        let after = rng.random_range(0..FILES + FILES / 4);
        let mut seen = 0;
        let mut done = false;
        for line in lines.by_ref() {
            let line = line.unwrap();
            if line == "done" {
                done = true;
                break;
            }
            if line.starts_with("progress") || line == "churn" {
                seen += 1;
                if seen >= after {
                    break;
                }
            }
        }
        std::thread::sleep(Duration::from_millis(rng.random_range(0..15)));
        if done {
            finished += 1;
        } else {
            child.kill().unwrap();
            kills += 1;
        }
        child.wait().unwrap();
        let (_, engine) = check(dir, &files).await;
        drop(engine);
    }
    // A last run that is not killed finishes the batch: everything indexed, exactly.
    let mut child = spawn_child(dir);
    assert!(child.wait().unwrap().success(), "the final run completes");
    let (indexed, engine) = check(dir, &files).await;
    assert_eq!(
        indexed, FILES,
        "every asset indexed after the batch is finished"
    );
    let retried = engine.retry_failed(|_, _| {}).await.unwrap();
    assert_eq!(retried.progress.failed, 0);
    assert_eq!(engine.counts().await.unwrap().total(), FILES as u64);
    eprintln!("{kills} kills, {finished} runs finished before their kill point, 0 assets lost");
    assert!(
        kills >= iterations / 2,
        "most iterations were killed mid-run ({kills})"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_process_gets_a_conflict_naming_the_holder() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path();
    let files = make_files(&dir.join("files"));
    let mut child = spawn_child(dir);
    let pid = child.id();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    // (libtest prints its own lines first.)
    assert!(
        lines.by_ref().any(|l| l.unwrap() == "open"),
        "the child opened the directory"
    );
    let started = Instant::now();
    let err = Engine::open_local_with(dir.join("data"), provider(), options())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict);
    assert!(err.to_string().contains(&pid.to_string()), "{err}");
    assert!(
        err.to_string().contains("upload"),
        "says how to add files: {err}"
    );
    // The holder is undisturbed: it finishes its batch.
    for line in lines.by_ref() {
        if line.unwrap() == "done" {
            break;
        }
    }
    assert!(child.wait().unwrap().success());
    let _ = started;
    let (indexed, _) = check(dir, &files).await;
    assert_eq!(indexed, FILES);
}
