//! `HnswIndex::open` on an index directory one of whose files is mutated.
//!
//! A template directory holds a checkpoint (vectors, rows, tombstones, graph, asset table,
//! manifest) and a log on top of it. Each case copies it, mutates one file and opens the copy:
//!
//! - **raw**: the bytes are changed and nothing else; the manifest's checksums (data files),
//!   the log's record checksums and the manifest's JSON parser must catch it;
//! - **re-sealed**: the checksums are fixed up after the change (the data file's length and
//!   CRC-32 in the manifest, the log record's length and CRC), so the decoders behind them
//!   (rows, asset table, tombstones, graph, log records) see the damage;
//! - **manifest fields**: one number or string of the manifest replaced by a boundary value.
//!
//! The open must answer `Corrupt` (or `Conflict` when the manifest names another model or
//! index kind), or open an index that then searches, takes a write and reopens. It must never
//! panic or hang.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use proptest::prelude::*;
use serde_json::Value;

use crate::asset::AssetId;
use crate::embedding::{EmbeddingSpace, Segment};
use crate::error::ErrorKind;
use crate::fuzz::{self, LIVENESS, Mutation, Pos};
use crate::index::{HnswConfig, HnswIndex, IndexSpec, RecordMeta, VectorQuery, VectorRecord};
use crate::media::{MediaFormat, MediaKind};
use crate::storage::{MANIFEST, StorageConfig};

const DIM: usize = 8;

fn spec() -> IndexSpec {
    IndexSpec::new("fuzz-open-model", DIM)
}

fn config() -> HnswConfig {
    HnswConfig::default()
        .m(4)
        .ef_construction(16)
        .threads(1)
        .storage(
            StorageConfig::default()
                .min_checkpoint_bytes(u64::MAX)
                .max_log_bytes(u64::MAX)
                .link_checkpoint_ratio(1.0),
        )
}

fn records(from: usize, n: usize) -> Vec<VectorRecord> {
    (from..from + n)
        .map(|i| {
            let audio = i % 3 == 0;
            VectorRecord {
                asset_id: AssetId::from_content(format!("open-{}", i / 2).as_bytes()),
                space: if audio {
                    EmbeddingSpace::Audio
                } else {
                    EmbeddingSpace::Visual
                },
                seq: (i % 2) as u32,
                segment: audio.then(|| Segment::new(i as f64, i as f64 + 2.0).unwrap()),
                vector: (0..DIM)
                    .map(|d| ((i * 31 + d * 7) % 17) as f32 - 8.0 + 0.1)
                    .collect(),
                meta: if audio {
                    RecordMeta::new(MediaKind::Audio, MediaFormat::Wav)
                } else {
                    RecordMeta::new(MediaKind::Video, MediaFormat::Mp4)
                }
                .tags([format!("t{}", i % 4)])
                .created_at_ms(i as i64),
            }
        })
        .collect()
}

/// Builds the template: 40 records checkpointed (with their graph), then 12 more and a delete
/// in the log.
fn template(dir: &Path) -> Vec<String> {
    let index = HnswIndex::open(dir, spec(), config()).unwrap();
    index.upsert_sync(records(0, 40)).unwrap();
    index.wait_linked();
    index.checkpoint().unwrap();
    index.upsert_sync(records(40, 12)).unwrap();
    index
        .delete_asset_sync(&AssetId::from_content(b"open-3"))
        .unwrap();
    index.flush_sync().unwrap();
    drop(index);
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "LOCK")
        .collect();
    names.sort();
    for ext in [".vec", ".rows", ".live", ".graph", ".bin", ".log"] {
        assert!(
            names.iter().any(|n| n.ends_with(ext)),
            "the template has a {ext} file: {names:?}"
        );
    }
    names
}

/// How a case changes its file.
#[derive(Debug, Clone)]
enum Damage {
    Raw(Vec<Mutation>),
    Resealed(Vec<Mutation>, Pos),
    ManifestField(Pos, usize),
}

fn damage() -> impl Strategy<Value = (Pos, Damage)> {
    let muts = || proptest::collection::vec(fuzz::mutation(), 1..6);
    (
        any::<u64>().prop_map(Pos),
        prop_oneof![
            2 => muts().prop_map(Damage::Raw),
            3 => (muts(), any::<u64>().prop_map(Pos)).prop_map(|(m, i)| Damage::Resealed(m, i)),
            2 => (any::<u64>().prop_map(Pos), 0..FIELD_VALUES).prop_map(|(i, v)| Damage::ManifestField(i, v)),
        ],
    )
}

const FIELD_VALUES: usize = 10;

fn field_value(v: usize, was: &Value) -> Value {
    match (v, was) {
        (0, _) => Value::from(0u64),
        (1, _) => Value::from(u64::MAX),
        (2, _) => Value::from(1u64 << 63),
        (3, _) => Value::from(u64::from(u32::MAX) + 1),
        (4, _) => Value::from(-1i64),
        (5, _) => Value::from(1e300),
        (6, Value::Number(n)) => Value::from(n.as_u64().unwrap_or(0).wrapping_add(1)),
        (7, Value::Number(n)) => Value::from(n.as_u64().unwrap_or(1).saturating_sub(1)),
        (8, _) => Value::from("../MANIFEST"),
        _ => Value::from(""),
    }
}

/// Every scalar of a JSON document, by path.
fn scalar_paths(v: &Value, path: &mut Vec<Value>, out: &mut Vec<Vec<Value>>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                path.push(Value::from(k.clone()));
                scalar_paths(x, path, out);
                path.pop();
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                path.push(Value::from(i));
                scalar_paths(x, path, out);
                path.pop();
            }
        }
        _ => out.push(path.clone()),
    }
}

fn at_path<'v>(v: &'v mut Value, path: &[Value]) -> Option<&'v mut Value> {
    let mut cur = v;
    for step in path {
        cur = match step {
            Value::String(k) => cur.get_mut(k.as_str())?,
            Value::Number(i) => cur.get_mut(usize::try_from(i.as_u64()?).ok()?)?,
            _ => return None,
        };
    }
    Some(cur)
}

/// Rewrites the log file's records with `mutations` applied to the body of record `which`,
/// each record's length and checksum recomputed.
fn reseal_log(bytes: &[u8], mutations: &[Mutation], which: Pos) -> Vec<u8> {
    let mut out = bytes[..16.min(bytes.len())].to_vec();
    let mut records = Vec::new();
    let mut pos = 16;
    while let Some(head) = bytes.get(pos..pos + 16) {
        let len = u32::from_le_bytes(head[..4].try_into().unwrap()) as usize;
        let lsn = u64::from_le_bytes(head[8..16].try_into().unwrap());
        let Some(body) = bytes.get(pos + 16..pos + 8 + len) else {
            break;
        };
        records.push((lsn, body.to_vec()));
        pos += 8 + len;
    }
    if records.is_empty() {
        return fuzz::apply(bytes, mutations);
    }
    let pick = which.index(records.len());
    for (i, (lsn, body)) in records.into_iter().enumerate() {
        let body = if i == pick {
            fuzz::apply(&body, mutations)
        } else {
            body
        };
        let mut crc = crc32fast::Hasher::new();
        crc.update(&lsn.to_le_bytes());
        crc.update(&body);
        out.extend_from_slice(&((body.len() + 8) as u32).to_le_bytes());
        out.extend_from_slice(&crc.finalize().to_le_bytes());
        out.extend_from_slice(&lsn.to_le_bytes());
        out.extend_from_slice(&body);
    }
    out
}

/// Sets the manifest's entry for `name` to the file's new length and CRC-32.
fn reseal_manifest(dir: &Path, name: &str, bytes: &[u8]) {
    let path = dir.join(MANIFEST);
    let mut manifest: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    fn fix(v: &mut Value, name: &str, len: u64, crc: u32) {
        match v {
            Value::Object(m) => {
                if m.get("name").and_then(Value::as_str) == Some(name) {
                    m.insert("bytes".into(), Value::from(len));
                    m.insert("crc32".into(), Value::from(crc));
                }
                for x in m.values_mut() {
                    fix(x, name, len, crc);
                }
            }
            Value::Array(a) => a.iter_mut().for_each(|x| fix(x, name, len, crc)),
            _ => {}
        }
    }
    fix(
        &mut manifest,
        name,
        bytes.len() as u64,
        crc32fast::hash(bytes),
    );
    std::fs::write(&path, serde_json::to_vec_pretty(&manifest).unwrap()).unwrap();
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_name() != "LOCK" {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

/// Applies the damage to the copy in `dir`; returns the file changed and how.
fn apply_damage(dir: &Path, names: &[String], file: Pos, damage: &Damage) -> (String, String) {
    match damage {
        Damage::ManifestField(which, v) => {
            let path = dir.join(MANIFEST);
            let mut manifest: Value =
                serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
            let mut paths = Vec::new();
            scalar_paths(&manifest, &mut Vec::new(), &mut paths);
            let p = &paths[which.index(paths.len())];
            let how = format!("field {p:?}");
            if let Some(slot) = at_path(&mut manifest, p) {
                *slot = field_value(*v, slot);
            }
            std::fs::write(&path, serde_json::to_vec_pretty(&manifest).unwrap()).unwrap();
            (MANIFEST.to_string(), how)
        }
        Damage::Raw(muts) => {
            let name = names[file.index(names.len())].clone();
            let path = dir.join(&name);
            let bytes = fuzz::apply(&std::fs::read(&path).unwrap(), muts);
            std::fs::write(&path, bytes).unwrap();
            (name, "raw".into())
        }
        Damage::Resealed(muts, which) => {
            let data: Vec<&String> = names.iter().filter(|n| *n != MANIFEST).collect();
            let name = data[file.index(data.len())].clone();
            let path = dir.join(&name);
            let old = std::fs::read(&path).unwrap();
            if name.ends_with(".log") {
                std::fs::write(&path, reseal_log(&old, muts, *which)).unwrap();
            } else {
                let bytes = fuzz::apply(&old, muts);
                std::fs::write(&path, &bytes).unwrap();
                reseal_manifest(dir, &name, &bytes);
            }
            (name, "resealed".into())
        }
    }
}

/// Uses an index that opened: stats, a search per space, a write, a flush.
fn exercise(index: &HnswIndex) -> crate::Result<()> {
    let stats = index.stats_sync();
    for space in [EmbeddingSpace::Visual, EmbeddingSpace::Audio] {
        let q = VectorQuery::new(space, (0..DIM).map(|d| d as f32 + 0.5).collect(), 5);
        let hits = index.search_sync(&q)?;
        assert!(hits.len() <= 5);
        for h in &hits {
            assert!(h.score.is_finite() && (-1.001..=1.001).contains(&h.score));
        }
    }
    index.upsert_sync(records(100, 2))?;
    index.flush_sync()?;
    let _ = stats.vectors();
    Ok(())
}

#[test]
fn fuzz_open_mutated_index_directories() {
    let root = tempfile::tempdir().unwrap();
    let template_dir = root.path().join("template");
    let names = template(&template_dir);
    let counter = AtomicU64::new(0);
    let root_path: PathBuf = root.path().to_path_buf();
    fuzz::run(
        "index directories (HnswIndex::open)",
        fuzz::cases(300),
        damage(),
        |(file, damage)| {
            let n = counter.fetch_add(1, Ordering::Relaxed);
            let dir = root_path.join(format!("case-{n}"));
            copy_dir(&template_dir, &dir);
            let (changed, how) = apply_damage(&dir, &names, file, &damage);
            let open_dir = dir.clone();
            let outcome = fuzz::within(LIVENESS, move || {
                let first = HnswIndex::open(&open_dir, spec(), config());
                match first {
                    Ok(index) => {
                        let used = exercise(&index);
                        drop(index);
                        // What opened once opens again, with the write just made.
                        let again = HnswIndex::open(&open_dir, spec(), config()).map(drop);
                        Ok((used, again))
                    }
                    Err(e) => Err(e),
                }
            })?;
            let _ = std::fs::remove_dir_all(&dir);
            let kind = |f: &str| {
                f.split('.')
                    .next_back()
                    .filter(|_| f != MANIFEST)
                    .unwrap_or(MANIFEST)
                    .to_string()
            };
            match outcome {
                Ok((used, again)) => {
                    prop_assert!(used.is_ok(), "{} {}: opened but {:?}", changed, how, used);
                    prop_assert!(
                        again.is_ok(),
                        "{} {}: opened, then failed to reopen: {:?}",
                        changed,
                        how,
                        again
                    );
                    Ok(format!("{} {how}: opened", kind(&changed)))
                }
                Err(e) => {
                    let allowed = e.kind() == ErrorKind::Corrupt
                        || (changed == MANIFEST && e.kind() == ErrorKind::Conflict);
                    prop_assert!(allowed, "{} {}: {:?}: {}", changed, how, e.kind(), e);
                    Ok(format!("{} {how}: {:?}", kind(&changed), e.kind()))
                }
            }
        },
    );
}
