//! Snapshots: round trips, model checks, corruption, crashes mid-flush.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

mod common;

use std::fs;
use std::path::Path;

use common::{flat_of, image_records, queries, recall};
use crossmodal_core::conformance::{clustered_records, spec};
use crossmodal_core::{EmbeddingSpace, ErrorKind, Filter, IndexSpec, MediaKind, VectorIndex};
use crossmodal_hnsw::{HnswConfig, HnswIndex, MANIFEST, current_snapshot_dir};

/// Graph walks only (the default plan would scan these small test spaces exactly).
fn walk() -> HnswConfig {
    HnswConfig::default().always_walk_graph()
}

fn snapshot_dirs(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("snap-"))
        .collect();
    v.sort();
    v
}

async fn filled(dir: &Path, config: HnswConfig) -> (HnswIndex, Vec<crossmodal_core::VectorRecord>) {
    let index = HnswIndex::open(dir, spec(), config).unwrap();
    let records = clustered_records(600, 21);
    index.upsert(records.clone()).await.unwrap();
    // Some tombstones, below the compaction ratio.
    for r in records.iter().step_by(40) {
        index.delete_asset(&r.asset_id).await.unwrap();
    }
    (index, records)
}

#[tokio::test]
async fn flush_and_reopen_gives_identical_results() {
    let dir = tempfile::tempdir().unwrap();
    let (index, _) = filled(dir.path(), walk()).await;
    index.flush().await.unwrap();
    let before_stats = index.stats().await.unwrap();
    assert!(before_stats.tombstones > 0);
    let mut qs = queries(60, 32, 3, EmbeddingSpace::Audio, 10);
    qs.extend(queries(60, 32, 4, EmbeddingSpace::Visual, 10));
    for (i, q) in qs.iter_mut().enumerate() {
        if i % 3 == 1 {
            q.filter = Filter::default().kinds([MediaKind::Video]);
        }
    }
    let mut before = Vec::new();
    for q in &qs {
        before.push(index.search(q).await.unwrap());
    }
    drop(index);

    let reopened = HnswIndex::open(dir.path(), spec(), walk()).unwrap();
    let report = reopened.open_report();
    assert_eq!(report.generation, 1);
    assert_eq!(report.graphs_loaded.len(), 2, "{report:?}");
    assert!(report.graphs_rebuilt.is_empty());
    assert_eq!(
        reopened.stats().await.unwrap().vectors_per_space,
        before_stats.vectors_per_space
    );
    assert_eq!(
        reopened.stats().await.unwrap().tombstones,
        before_stats.tombstones
    );
    for (q, want) in qs.iter().zip(&before) {
        assert_eq!(
            &reopened.search(q).await.unwrap(),
            want,
            "same hits after reopen"
        );
    }
    // The reopened index keeps working and persisting.
    reopened.upsert(clustered_records(10, 22)).await.unwrap();
    reopened.flush().await.unwrap();
    assert_eq!(
        snapshot_dirs(dir.path()),
        vec!["snap-0000000000000002".to_string()]
    );
    let again = HnswIndex::open(dir.path(), spec(), HnswConfig::default()).unwrap();
    assert_eq!(again.open_report().generation, 2);
    assert_eq!(
        again.stats().await.unwrap().vectors(),
        reopened.stats().await.unwrap().vectors()
    );
}

#[tokio::test]
async fn without_graph_files_the_graph_is_rebuilt_from_vectors() {
    let dir = tempfile::tempdir().unwrap();
    let spec = IndexSpec::new("m", 24);
    let records = image_records(3000, 24, 5);
    let config = walk().persist_graph(false);
    let index = HnswIndex::open(dir.path(), spec.clone(), config.clone()).unwrap();
    index.upsert(records.clone()).await.unwrap();
    index.flush().await.unwrap();
    let snap = current_snapshot_dir(dir.path()).unwrap().unwrap();
    assert!(!snap.join("visual.hnsw.graph").exists());
    drop(index);
    let reopened = HnswIndex::open(dir.path(), spec.clone(), config).unwrap();
    assert_eq!(
        reopened.open_report().graphs_rebuilt,
        vec![EmbeddingSpace::Visual]
    );
    let flat = flat_of(&spec, &records);
    let r = recall(
        &reopened,
        &flat,
        &queries(100, 24, 6, EmbeddingSpace::Visual, 10),
    );
    assert!(r >= 0.95, "recall after rebuild {r:.3}");
}

#[tokio::test]
async fn reopening_with_another_model_or_dimension_is_a_conflict() {
    let dir = tempfile::tempdir().unwrap();
    let (index, _) = filled(dir.path(), HnswConfig::default()).await;
    index.flush().await.unwrap();
    drop(index);
    let err = HnswIndex::open(
        dir.path(),
        IndexSpec::new("other-model", 32),
        HnswConfig::default(),
    )
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
    let err = HnswIndex::open(
        dir.path(),
        IndexSpec::new(spec().model_id, 64),
        HnswConfig::default(),
    )
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
    // The snapshot is untouched by the refused opens.
    assert!(HnswIndex::open(dir.path(), spec(), HnswConfig::default()).is_ok());
}

#[tokio::test]
async fn damaged_files_are_corrupt_errors_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let (index, _) = filled(dir.path(), HnswConfig::default()).await;
    index.flush().await.unwrap();
    drop(index);
    let snap = current_snapshot_dir(dir.path()).unwrap().unwrap();
    let open = || HnswIndex::open(dir.path(), spec(), HnswConfig::default());

    // One flipped byte in the vectors.
    let vectors = snap.join("vectors.f32");
    let good = fs::read(&vectors).unwrap();
    let mut bad = good.clone();
    bad[good.len() / 2] ^= 0x40;
    fs::write(&vectors, &bad).unwrap();
    let err = open().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corrupt);
    assert!(err.to_string().contains("vectors.f32"), "{err}");
    // Truncated.
    fs::write(&vectors, &good[..good.len() - 7]).unwrap();
    let err = open().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corrupt);
    assert!(err.to_string().contains("vectors.f32"), "{err}");
    // Missing.
    fs::remove_file(&vectors).unwrap();
    let err = open().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corrupt);
    assert!(
        err.to_string().contains("vectors.f32") && err.to_string().contains("missing"),
        "{err}"
    );
    fs::write(&vectors, &good).unwrap();
    assert!(open().is_ok());

    // Garbled rows.
    let rows = snap.join("rows.json");
    let good_rows = fs::read(&rows).unwrap();
    fs::write(&rows, b"{\"spec\": 1").unwrap();
    let err = open().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corrupt);
    assert!(err.to_string().contains("rows.json"), "{err}");
    fs::write(&rows, &good_rows).unwrap();

    // Garbled manifest.
    let manifest = dir.path().join(MANIFEST);
    let good_manifest = fs::read(&manifest).unwrap();
    fs::write(&manifest, b"{not json").unwrap();
    let err = open().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corrupt);
    assert!(err.to_string().contains(MANIFEST), "{err}");
    fs::write(&manifest, &good_manifest).unwrap();
    let ok = open().unwrap();
    assert_eq!(ok.open_report().graphs_loaded.len(), 2);
}

#[tokio::test]
async fn a_damaged_graph_file_is_rebuilt_from_the_vectors() {
    let dir = tempfile::tempdir().unwrap();
    let (index, records) = filled(dir.path(), HnswConfig::default()).await;
    index.flush().await.unwrap();
    let live = index.stats().await.unwrap().vectors();
    drop(index);
    let snap = current_snapshot_dir(dir.path()).unwrap().unwrap();
    let graph = snap.join("audio.hnsw.graph");
    let mut bytes = fs::read(&graph).unwrap();
    bytes.truncate(bytes.len() / 2);
    fs::write(&graph, &bytes).unwrap();
    let reopened = HnswIndex::open(dir.path(), spec(), HnswConfig::default()).unwrap();
    let report = reopened.open_report();
    assert_eq!(
        report.graphs_rebuilt,
        vec![EmbeddingSpace::Audio],
        "{report:?}"
    );
    assert_eq!(report.graphs_loaded, vec![EmbeddingSpace::Visual]);
    assert_eq!(reopened.stats().await.unwrap().vectors(), live);
    let r = &records[1];
    let hits = reopened
        .search(&crossmodal_core::VectorQuery::new(
            r.space,
            r.vector.clone(),
            1,
        ))
        .await
        .unwrap();
    assert_eq!(hits[0].asset_id, r.asset_id);
}

#[tokio::test]
async fn an_empty_index_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let index = HnswIndex::open(dir.path(), spec(), HnswConfig::default()).unwrap();
    assert_eq!(index.open_report().generation, 0);
    index.flush().await.unwrap();
    assert!(dir.path().join(MANIFEST).exists());
    drop(index);
    let reopened = HnswIndex::open(dir.path(), spec(), HnswConfig::default()).unwrap();
    assert_eq!(reopened.open_report().generation, 1);
    assert_eq!(reopened.stats().await.unwrap().vectors(), 0);
    let q = crossmodal_core::VectorQuery::new(EmbeddingSpace::Visual, vec![0.5; 32], 3);
    assert!(reopened.search(&q).await.unwrap().is_empty());

    // A space whose every vector was deleted (a graph of tombstones only) round-trips too.
    let records = clustered_records(4, 23);
    reopened.upsert(records.clone()).await.unwrap();
    for r in &records {
        reopened.delete_asset(&r.asset_id).await.unwrap();
    }
    reopened.flush().await.unwrap();
    drop(reopened);
    let again = HnswIndex::open(dir.path(), spec(), HnswConfig::default()).unwrap();
    assert_eq!(again.stats().await.unwrap().vectors(), 0);
    assert!(again.search(&q).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_crash_mid_flush_leaves_the_previous_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let (index, _) = filled(dir.path(), HnswConfig::default()).await;
    index.flush().await.unwrap();
    let flushed = index.stats().await.unwrap();
    // Changes after the flush, then "kill -9" in the middle of the next flush: a half-written
    // snapshot directory and a temp manifest that never got renamed.
    index.upsert(clustered_records(50, 24)).await.unwrap();
    drop(index);
    let half = dir.path().join("snap-0000000000000002");
    fs::create_dir(&half).unwrap();
    fs::write(half.join("vectors.f32"), vec![7u8; 1000]).unwrap();
    fs::write(half.join("visual.hnsw.graph"), b"half a graph").unwrap();
    fs::write(
        dir.path().join(".MANIFEST.json.tmp-4242-0"),
        b"{\"format\": \"crossm",
    )
    .unwrap();

    let reopened = HnswIndex::open(dir.path(), spec(), HnswConfig::default()).unwrap();
    let report = reopened.open_report();
    assert_eq!(report.generation, 1);
    assert_eq!(report.leftovers_removed, 2, "{report:?}");
    assert_eq!(
        reopened.stats().await.unwrap().vectors_per_space,
        flushed.vectors_per_space
    );
    assert_eq!(
        snapshot_dirs(dir.path()),
        vec!["snap-0000000000000001".to_string()]
    );
    assert!(!dir.path().join(".MANIFEST.json.tmp-4242-0").exists());

    // A crash before the very first manifest: the index starts empty and cleans up.
    let fresh = tempfile::tempdir().unwrap();
    fs::create_dir(fresh.path().join("snap-0000000000000001")).unwrap();
    let empty = HnswIndex::open(fresh.path(), spec(), HnswConfig::default()).unwrap();
    assert_eq!(empty.open_report().leftovers_removed, 1);
    assert_eq!(empty.stats().await.unwrap().vectors(), 0);

    // Flushing after recovery reuses the generation number safely.
    reopened.upsert(clustered_records(5, 25)).await.unwrap();
    reopened.flush().await.unwrap();
    assert_eq!(
        snapshot_dirs(dir.path()),
        vec!["snap-0000000000000002".to_string()]
    );
    let again = HnswIndex::open(dir.path(), spec(), HnswConfig::default()).unwrap();
    assert_eq!(again.open_report().generation, 2);
}

#[tokio::test]
async fn flush_without_changes_writes_nothing_new() {
    let dir = tempfile::tempdir().unwrap();
    let (index, _) = filled(dir.path(), HnswConfig::default()).await;
    index.flush().await.unwrap();
    index.flush().await.unwrap();
    assert_eq!(
        snapshot_dirs(dir.path()),
        vec!["snap-0000000000000001".to_string()]
    );
    // In memory, flush is a no-op.
    let mem = HnswIndex::new(spec(), HnswConfig::default()).unwrap();
    mem.flush().await.unwrap();
    assert!(!mem.capabilities().persistent);
    assert!(index.capabilities().persistent);
}
