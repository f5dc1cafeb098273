//! The storage engine: logs replayed, checkpoints appended, torn tails dropped, damage named,
//! one writer per directory, leftovers removed, compactions durable.

use std::path::Path;

use super::{eventually, image_records, queries, walk};
use crate::storage::{MANIFEST, StorageConfig};
use crate::{
    ErrorKind, FlatIndex, HnswConfig, HnswIndex, IndexSpec, Quantization, VectorIndex, VectorQuery,
    VectorRecord,
};

fn spec(dim: usize) -> IndexSpec {
    IndexSpec::new("durable-test-model", dim)
}

/// No background checkpoints unless a test asks (so each test decides what is on disk).
fn manual() -> HnswConfig {
    walk().storage(
        StorageConfig::default()
            .min_checkpoint_bytes(u64::MAX)
            .max_log_bytes(u64::MAX)
            .link_checkpoint_ratio(1.0),
    )
}

fn files_with(dir: &Path, ext: &str) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(ext))
        .collect();
    v.sort();
    v
}

fn answers(index: &HnswIndex, qs: &[VectorQuery]) -> Vec<Vec<(String, u32)>> {
    qs.iter()
        .map(|q| {
            index
                .search_sync(q)
                .unwrap()
                .into_iter()
                .map(|h| (h.asset_id.to_string(), h.seq))
                .collect()
        })
        .collect()
}

#[test]
fn the_log_alone_brings_everything_back() {
    let dir = tempfile::tempdir().unwrap();
    let records = image_records(1500, 16, 1);
    let qs = queries(30, 16, 2, records[0].space, 10);
    let index = HnswIndex::open(dir.path(), spec(16), manual()).unwrap();
    index.upsert_sync(records[..1000].to_vec()).unwrap();
    index.delete_asset_sync(&records[3].asset_id).unwrap();
    index.upsert_sync(records[1000..].to_vec()).unwrap();
    index.flush_sync().unwrap();
    drop(index);
    assert!(
        files_with(dir.path(), ".vec").is_empty(),
        "no checkpoint was written"
    );
    let index = HnswIndex::open(dir.path(), spec(16), manual()).unwrap();
    let report = index.open_report().clone();
    assert_eq!(report.log_records, 3, "{report:?}");
    assert_eq!(
        report.pending, 1500,
        "replayed rows are linked in the background"
    );
    assert_eq!(index.stats_sync().vectors(), 1499);
    // Searchable before they are linked (scanned exactly), and after.
    let mut live = records.clone();
    live.remove(3);
    let flat = super::flat_of(&spec(16), &live);
    assert!(super::recall(&index, &flat, &qs) >= 0.99);
    index.wait_linked();
    assert!(super::recall(&index, &flat, &qs) >= 0.95);
}

#[test]
fn a_checkpoint_appends_what_changed_and_reopens_with_its_graph() {
    let dir = tempfile::tempdir().unwrap();
    let dim = 16;
    let records = image_records(2005, dim, 3);
    let qs = queries(30, dim, 4, records[0].space, 10);
    let index = HnswIndex::open(dir.path(), spec(dim), manual()).unwrap();
    index.upsert_sync(records[..2000].to_vec()).unwrap();
    index.wait_linked();
    index.checkpoint().unwrap();
    let vec_file = dir.path().join(&files_with(dir.path(), ".vec")[0]);
    let size = std::fs::metadata(&vec_file).unwrap().len();
    assert_eq!(size, 2000 * dim as u64 * 4);
    // One more asset: the next checkpoint appends its vectors, nothing else of them.
    index.upsert_sync(records[2000..].to_vec()).unwrap();
    index.wait_linked();
    index.checkpoint().unwrap();
    assert_eq!(
        std::fs::metadata(&vec_file).unwrap().len(),
        2005 * dim as u64 * 4
    );
    assert_eq!(files_with(dir.path(), ".vec").len(), 1, "appended in place");
    assert_eq!(
        files_with(dir.path(), ".graph").len(),
        1,
        "the older graph file is gone"
    );
    assert_eq!(
        files_with(dir.path(), ".log").len(),
        1,
        "older logs are gone"
    );
    let before = answers(&index, &qs);
    drop(index);
    let index = HnswIndex::open(dir.path(), spec(dim), manual()).unwrap();
    let report = index.open_report().clone();
    assert_eq!(
        (report.generation, report.log_records, report.pending),
        (2, 0, 0),
        "{report:?}"
    );
    assert!(report.graphs_rebuilt.is_empty());
    assert_eq!(
        answers(&index, &qs),
        before,
        "the loaded graph answers identically"
    );
}

#[test]
fn checkpoints_run_in_the_background_when_the_log_grows() {
    let dir = tempfile::tempdir().unwrap();
    let config = walk().storage(
        StorageConfig::default()
            .min_checkpoint_bytes(1)
            .checkpoint_ratio(0.1),
    );
    let index = HnswIndex::open(dir.path(), spec(16), config).unwrap();
    for chunk in image_records(3000, 16, 5).chunks(300) {
        index.upsert_sync(chunk.to_vec()).unwrap();
    }
    eventually("a checkpoint is written", || {
        dir.path().join(MANIFEST).exists()
    });
    drop(index);
    let index = HnswIndex::open(dir.path(), spec(16), walk()).unwrap();
    assert!(index.open_report().generation >= 1);
    assert_eq!(index.stats_sync().vectors(), 3000);
}

/// Nodes the manifest's graphs hold (0 without a manifest).
fn checkpointed_links(dir: &Path) -> u64 {
    let Ok(bytes) = std::fs::read(dir.join(MANIFEST)) else {
        return 0;
    };
    let manifest: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    manifest["spaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["linked"].as_u64().unwrap_or(0))
        .sum()
}

#[test]
fn an_idle_linker_checkpoints_its_links_so_an_open_relinks_nothing() {
    let dir = tempfile::tempdir().unwrap();
    // The log alone never checkpoints here: only the links can.
    let config = walk().storage(
        StorageConfig::default()
            .min_checkpoint_bytes(u64::MAX)
            .max_log_bytes(u64::MAX),
    );
    let records = image_records(3000, 16, 6);
    let qs = queries(20, 16, 7, records[0].space, 10);
    let index = HnswIndex::open(dir.path(), spec(16), config.clone()).unwrap();
    index.upsert_sync(records).unwrap();
    index.flush_sync().unwrap();
    index.wait_linked();
    eventually("the linked graph is checkpointed", || {
        checkpointed_links(dir.path()) == 3000
    });
    let before = answers(&index, &qs);
    drop(index);
    let index = HnswIndex::open(dir.path(), spec(16), config).unwrap();
    let report = index.open_report().clone();
    assert_eq!((report.log_records, report.pending), (0, 0), "{report:?}");
    assert!(report.graphs_rebuilt.is_empty());
    assert_eq!(answers(&index, &qs), before);
    // Off: the same writes leave the links to be relinked at the next open.
    let dir = tempfile::tempdir().unwrap();
    let index = HnswIndex::open(dir.path(), spec(16), manual()).unwrap();
    index.upsert_sync(image_records(3000, 16, 6)).unwrap();
    index.flush_sync().unwrap();
    index.wait_linked();
    drop(index);
    let index = HnswIndex::open(dir.path(), spec(16), manual()).unwrap();
    assert_eq!(index.open_report().pending, 3000);
}

#[test]
fn a_torn_log_tail_is_dropped_and_damage_in_the_middle_is_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let records = image_records(300, 8, 6);
    let index = FlatIndex::open_with(dir.path(), spec(8), StorageConfig::default()).unwrap();
    for r in &records {
        index.upsert_sync(vec![r.clone()]).unwrap();
    }
    futures::executor::block_on(index.flush()).unwrap();
    drop(index);
    let log = dir.path().join(&files_with(dir.path(), ".log")[0]);
    let full = std::fs::read(&log).unwrap();
    // An interrupted append: half a record at the end.
    let mut torn = full.clone();
    torn.extend_from_slice(&full[full.len() - 60..full.len() - 10]);
    std::fs::write(&log, &torn).unwrap();
    let index = FlatIndex::open(dir.path(), spec(8)).unwrap();
    assert_eq!(index.open_report().torn_bytes, 50);
    assert_eq!(index.len(), 300);
    drop(index);
    assert_eq!(std::fs::read(&log).unwrap(), full, "the tail was cut off");
    // A flipped byte inside an early record, with valid records after it: refused, not dropped.
    let mut damaged = full.clone();
    damaged[100] ^= 0x10;
    std::fs::write(&log, &damaged).unwrap();
    let err = FlatIndex::open(dir.path(), spec(8)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corrupt, "{err}");
}

#[test]
fn a_big_batch_is_logged_in_records_of_whole_assets() {
    // 400 assets x 5 segments at 256 dims: 4 MB of vectors, about 960 per log record.
    let dim = 256;
    let records: Vec<VectorRecord> = image_records(400, dim, 9)
        .into_iter()
        .flat_map(|r| {
            (0..5u32).map(move |seq| {
                let mut r = r.clone();
                r.seq = seq;
                r.vector[seq as usize] += 1.0;
                r
            })
        })
        .collect();
    // Interleaved, as a caller may hand them: the log still keeps each asset together.
    let (even, odd): (Vec<_>, Vec<_>) = records.iter().cloned().partition(|r| r.seq % 2 == 0);
    let batch: Vec<VectorRecord> = even.into_iter().chain(odd).collect();
    let dir = tempfile::tempdir().unwrap();
    let index = FlatIndex::open_with(dir.path(), spec(dim), StorageConfig::default()).unwrap();
    index.upsert_sync(batch).unwrap();
    futures::executor::block_on(index.flush()).unwrap();
    drop(index);
    let index = FlatIndex::open(dir.path(), spec(dim)).unwrap();
    let logged = index.open_report().log_records;
    assert!((3..=6).contains(&logged), "{logged} records for 4 MB");
    assert_eq!(index.len(), 2000);
    drop(index);
    // A crash in the middle of the last record: whole assets survive, none in part.
    let log = dir.path().join(&files_with(dir.path(), ".log")[0]);
    let full = std::fs::metadata(&log).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&log)
        .unwrap()
        .set_len(full - 300_000)
        .unwrap();
    let index = FlatIndex::open(dir.path(), spec(dim)).unwrap();
    let kept = index.open_report().log_records;
    assert!(
        (1..logged).contains(&kept),
        "{kept} of {logged} records kept"
    );
    assert!(
        !index.is_empty() && index.len() < 2000 && index.len().is_multiple_of(5),
        "{}",
        index.len()
    );
    let counts: Vec<usize> = records
        .iter()
        .step_by(5)
        .map(|r| {
            futures::executor::block_on(index.asset_vectors(&r.asset_id))
                .unwrap()
                .unwrap_or(0)
        })
        .collect();
    assert!(counts.iter().all(|c| *c == 0 || *c == 5), "{counts:?}");
    assert_eq!(counts.iter().sum::<usize>(), index.len());
}

#[test]
fn damaged_data_files_are_named_and_a_damaged_graph_is_relinked() {
    let dir = tempfile::tempdir().unwrap();
    let records = image_records(800, 16, 7);
    let index = HnswIndex::open(dir.path(), spec(16), manual()).unwrap();
    index.upsert_sync(records).unwrap();
    index.wait_linked();
    index.checkpoint().unwrap();
    drop(index);
    let graph = dir.path().join(&files_with(dir.path(), ".graph")[0]);
    let mut bytes = std::fs::read(&graph).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    std::fs::write(&graph, &bytes).unwrap();
    let index = HnswIndex::open(dir.path(), spec(16), manual()).unwrap();
    assert_eq!(
        index.open_report().graphs_rebuilt.len(),
        1,
        "derived data is rebuilt"
    );
    assert_eq!(index.stats_sync().vectors(), 800);
    drop(index);
    for ext in [".vec", ".rows", ".live", ".bin"] {
        let path = dir.path().join(&files_with(dir.path(), ext)[0]);
        let original = std::fs::read(&path).unwrap();
        let mut bytes = original.clone();
        bytes[original.len() / 3] ^= 0x40;
        std::fs::write(&path, &bytes).unwrap();
        let err = HnswIndex::open(dir.path(), spec(16), manual()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Corrupt, "{ext}: {err}");
        assert!(err.to_string().contains(ext), "{ext}: {err}");
        std::fs::write(&path, &original).unwrap();
        // A missing file is named too.
        std::fs::remove_file(&path).unwrap();
        let err = HnswIndex::open(dir.path(), spec(16), manual()).unwrap_err();
        assert!(err.to_string().contains("missing"), "{ext}: {err}");
        std::fs::write(&path, &original).unwrap();
    }
    assert!(HnswIndex::open(dir.path(), spec(16), manual()).is_ok());
}

#[test]
fn one_writer_per_directory_and_one_model_per_index() {
    let dir = tempfile::tempdir().unwrap();
    let index = HnswIndex::open(dir.path(), spec(8), HnswConfig::default()).unwrap();
    index.upsert_sync(image_records(10, 8, 8)).unwrap();
    index.flush_sync().unwrap();
    let err = HnswIndex::open(dir.path(), spec(8), HnswConfig::default()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict);
    assert!(
        err.to_string().contains(&std::process::id().to_string()),
        "{err}"
    );
    assert!(
        err.to_string().contains(&dir.path().display().to_string()),
        "{err}"
    );
    // The holder is untouched.
    assert_eq!(index.stats_sync().vectors(), 10);
    drop(index);
    let err = HnswIndex::open(
        dir.path(),
        IndexSpec::new("other-model", 8),
        HnswConfig::default(),
    )
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict);
    let err = FlatIndex::open(dir.path(), spec(8)).unwrap_err();
    assert_eq!(
        err.kind(),
        ErrorKind::Conflict,
        "an hnsw directory is not a flat one"
    );
    assert!(HnswIndex::open(dir.path(), spec(8), HnswConfig::default()).is_ok());
}

#[test]
fn leftovers_are_removed_and_foreign_files_kept() {
    let dir = tempfile::tempdir().unwrap();
    let index = HnswIndex::open(dir.path(), spec(8), manual()).unwrap();
    index.upsert_sync(image_records(100, 8, 9)).unwrap();
    index.checkpoint().unwrap();
    drop(index);
    // What a checkpoint killed before its manifest leaves behind, and a file of someone else's.
    std::fs::write(dir.path().join("visual.99.graph"), b"half").unwrap();
    std::fs::write(dir.path().join("assets.99.bin"), b"half").unwrap();
    std::fs::write(dir.path().join("notes.txt"), b"mine").unwrap();
    let index = HnswIndex::open(dir.path(), spec(8), manual()).unwrap();
    assert_eq!(index.open_report().leftovers_removed, 2);
    assert!(dir.path().join("notes.txt").exists());
    assert_eq!(index.stats_sync().vectors(), 100);
}

#[test]
fn an_older_format_is_refused_with_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("MANIFEST.json"), b"{}").unwrap();
    let err = HnswIndex::open(dir.path(), spec(8), HnswConfig::default()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unsupported);
    assert!(err.to_string().contains("re-indexes"), "{err}");
}

#[test]
fn int8_indexes_reopen_from_codes_and_rerank_from_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let dim = 32;
    let records = image_records(3000, dim, 10);
    let config = manual().quantization(Quantization::Int8);
    let index = HnswIndex::open(dir.path(), spec(dim), config.clone()).unwrap();
    index.upsert_sync(records.clone()).unwrap();
    index.wait_linked();
    index.checkpoint().unwrap();
    let qs = queries(50, dim, 11, records[0].space, 10);
    let before = answers(&index, &qs);
    drop(index);
    let index = HnswIndex::open(dir.path(), spec(dim), config).unwrap();
    assert_eq!(answers(&index, &qs), before);
    let flat = super::flat_of(&spec(dim), &records);
    assert!(super::recall(&index, &flat, &qs) >= 0.95);
    // The f32 vectors are read from disk, each checked: a flipped byte is Corrupt, not a
    // silently wrong score.
    drop(index);
    let vec_file = dir.path().join(&files_with(dir.path(), ".vec")[0]);
    let mut bytes = std::fs::read(&vec_file).unwrap();
    for b in bytes.iter_mut().step_by(97) {
        *b ^= 0x20;
    }
    std::fs::write(&vec_file, &bytes).unwrap();
    let index = HnswIndex::open(
        dir.path(),
        spec(dim),
        manual().quantization(Quantization::Int8),
    )
    .unwrap();
    let err = index.search_sync(&qs[0]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corrupt);
}

/// The int8 mode maps the checkpointed part of its vector file. Each checkpoint appends to
/// that file and maps the longer part; a compaction maps a new file; searches running on
/// other threads meanwhile keep reading the mapping they started with. Every stage answers
/// exactly as the f32 truth says (recall against `FlatIndex`) and as it does after a reopen.
#[test]
fn int8_rerank_follows_appends_compactions_and_reopens() {
    let dir = tempfile::tempdir().unwrap();
    let dim = 24;
    let records = image_records(2400, dim, 21);
    let config = manual().quantization(Quantization::Int8);
    let index =
        std::sync::Arc::new(HnswIndex::open(dir.path(), spec(dim), config.clone()).unwrap());
    let qs = queries(40, dim, 22, records[0].space, 10);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (index, qs, stop) = (index.clone(), qs.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut searched = 0usize;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) || searched == 0 {
                for q in &qs {
                    index
                        .search_sync(q)
                        .expect("a search during checkpoints and compactions");
                    searched += 1;
                }
            }
            searched
        })
    };
    let mut live: Vec<VectorRecord> = Vec::new();
    for part in records.chunks(800) {
        index.upsert_sync(part.to_vec()).unwrap();
        live.extend_from_slice(part);
        index.wait_linked();
        index.checkpoint().unwrap();
        let flat = super::flat_of(&spec(dim), &live);
        assert!(
            super::recall(&index, &flat, &qs) >= 0.95,
            "after {} rows",
            live.len()
        );
    }
    assert_eq!(
        files_with(dir.path(), ".vec").len(),
        1,
        "checkpoints appended to one file"
    );
    for r in records.iter().step_by(2) {
        index.delete_asset_sync(&r.asset_id).unwrap();
    }
    live = records.iter().skip(1).step_by(2).cloned().collect();
    index.compact().unwrap();
    index.checkpoint().unwrap();
    let flat = super::flat_of(&spec(dim), &live);
    assert!(
        super::recall(&index, &flat, &qs) >= 0.95,
        "after the compaction"
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(reader.join().unwrap() > 0);
    let before = answers(&index, &qs);
    drop(index);
    let index = HnswIndex::open(dir.path(), spec(dim), config).unwrap();
    assert_eq!(answers(&index, &qs), before, "a reopen maps the same rows");
    assert_eq!(index.stats_sync().vectors() as usize, live.len());
}

#[test]
fn compactions_are_durable_and_free_the_old_files() {
    let dir = tempfile::tempdir().unwrap();
    let records: Vec<VectorRecord> = image_records(1000, 8, 12);
    let index = HnswIndex::open(dir.path(), spec(8), manual()).unwrap();
    index.upsert_sync(records.clone()).unwrap();
    index.checkpoint().unwrap();
    for r in records.iter().take(500) {
        index.delete_asset_sync(&r.asset_id).unwrap();
    }
    index.compact().unwrap();
    assert_eq!(index.stats_sync().tombstones, 0);
    assert_eq!(
        files_with(dir.path(), ".vec").len(),
        1,
        "the old vector file was removed"
    );
    drop(index);
    let index = HnswIndex::open(dir.path(), spec(8), manual()).unwrap();
    let stats = index.stats_sync();
    assert_eq!((stats.vectors(), stats.tombstones), (500, 0));
    let hits = index
        .search_sync(&VectorQuery::new(
            records[700].space,
            records[700].vector.clone(),
            1,
        ))
        .unwrap();
    assert_eq!(hits[0].asset_id, records[700].asset_id);
    let gone = index
        .search_sync(&VectorQuery::new(
            records[7].space,
            records[7].vector.clone(),
            1,
        ))
        .unwrap();
    assert_ne!(gone[0].asset_id, records[7].asset_id);
}

#[test]
fn metadata_patches_survive_replay_checkpoints_and_compactions() {
    let dir = tempfile::tempdir().unwrap();
    let records: Vec<VectorRecord> = image_records(300, 8, 13);
    let by_campaign =
        |c: &str| crate::Filter::default().field("campaign", crate::FieldTest::Eq(c.into()));
    let count = |index: &HnswIndex, c: &str| {
        index
            .search_sync(
                &VectorQuery::new(records[0].space, records[0].vector.clone(), 300)
                    .filter(by_campaign(c)),
            )
            .unwrap()
            .len()
    };
    let index = HnswIndex::open(dir.path(), spec(8), manual()).unwrap();
    index.upsert_sync(records.clone()).unwrap();
    index.checkpoint().unwrap();
    let patch = |c: &str| crate::MetaPatch::default().set("campaign", c);
    for r in &records[..10] {
        assert_eq!(
            index
                .update_meta_sync(&r.asset_id, &patch("winter"))
                .unwrap(),
            1
        );
    }
    index.flush_sync().unwrap();
    drop(index);
    // From the log.
    let index = HnswIndex::open(dir.path(), spec(8), manual()).unwrap();
    assert_eq!(count(&index, "winter"), 10);
    // From a checkpoint (the old metadata values are not carried along).
    for r in &records[..5] {
        index
            .update_meta_sync(&r.asset_id, &patch("spring"))
            .unwrap();
    }
    index.checkpoint().unwrap();
    drop(index);
    let index = HnswIndex::open(dir.path(), spec(8), manual()).unwrap();
    assert_eq!((count(&index, "winter"), count(&index, "spring")), (5, 5));
    // Across a compaction, with a patch written while it runs and one after.
    for r in records.iter().skip(200) {
        index.delete_asset_sync(&r.asset_id).unwrap();
    }
    index
        .update_meta_sync(&records[20].asset_id, &patch("spring"))
        .unwrap();
    index.compact().unwrap();
    index
        .update_meta_sync(&records[21].asset_id, &patch("spring"))
        .unwrap();
    index.flush_sync().unwrap();
    drop(index);
    let index = HnswIndex::open(dir.path(), spec(8), manual()).unwrap();
    assert_eq!((count(&index, "winter"), count(&index, "spring")), (5, 7));
}

#[test]
fn an_empty_index_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let index = HnswIndex::open(dir.path(), spec(8), manual()).unwrap();
    index.checkpoint().unwrap();
    drop(index);
    let index = HnswIndex::open(dir.path(), spec(8), manual()).unwrap();
    assert_eq!(index.stats_sync().vectors(), 0);
    assert!(
        index
            .search_sync(&VectorQuery::new(
                crate::EmbeddingSpace::Visual,
                vec![1.0; 8],
                3
            ))
            .unwrap()
            .is_empty()
    );
}
