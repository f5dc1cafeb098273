//! The storage engine's decoders under mutated valid encodings: log files, log records, the
//! asset table, rows and the graph file.

use std::io::Write;

use crossmodal_hnsw::{Graph, GraphConfig, QueryDistance, SearchScratch, Vectors};
use proptest::prelude::*;

use crate::asset::AssetId;
use crate::embedding::{EmbeddingSpace, Segment};
use crate::error::ErrorKind;
use crate::fuzz::{self, LIVENESS};
use crate::index::RecordMeta;
use crate::index::tables::assets::AssetTable;
use crate::index::tables::records::{Op, StoredRecord};
use crate::index::tables::space::{ROW_BYTES, Row};
use crate::media::{MediaFormat, MediaKind};
use crate::storage::codec::{ByteReader, ByteWriter};
use crate::storage::wal::{self, WalWriter};

const DIM: usize = 6;

fn meta(i: usize) -> RecordMeta {
    RecordMeta::new(MediaKind::ALL[i % 3], MediaFormat::ALL[i % 8])
        .tags((0..i % 3).map(|t| format!("tag-{t}")))
        .created_at_ms(1_700_000_000_000 + i as i64)
        .name(format!("asset {i}.mp4"))
        .field("budget", i as f64)
}

fn unit(i: usize) -> Vec<f32> {
    crate::vector::normalized(
        &(0..DIM)
            .map(|d| (i * 7 + d) as f32 - 2.5)
            .collect::<Vec<_>>(),
    )
}

fn record(asset: usize, seq: u32) -> StoredRecord {
    StoredRecord {
        space: EmbeddingSpace::ALL[asset % 4],
        asset_id: AssetId::from_content(format!("asset-{asset}").as_bytes()),
        seq,
        segment: (seq > 0).then(|| Segment::new(f64::from(seq), f64::from(seq) + 1.5).unwrap()),
        meta: meta(asset),
        unit: unit(asset + seq as usize),
    }
}

fn ops() -> Vec<Op> {
    vec![
        Op::Upsert(vec![record(1, 0)]),
        Op::Upsert((0..4).map(|s| record(2, s)).collect()),
        Op::Upsert(vec![record(3, 0), record(4, 1), record(5, 2)]),
        Op::DeleteAsset(AssetId::from_content(b"asset-2")),
    ]
}

/// Bytes a decoder of an `len`-byte input may hold: the decoded form of a record is larger
/// than its encoding (ids as hex strings, metadata per record), within 16x plus 64 KiB.
fn decode_bound(len: usize) -> usize {
    16 * len + (64 << 10)
}

#[test]
fn fuzz_log_records() {
    let seeds: Vec<Vec<u8>> = ops().iter().map(|op| op.encode().unwrap()).collect();
    fuzz::run(
        "log records (Op::decode)",
        fuzz::cases(4000),
        fuzz::mutated(seeds),
        |(_, body)| {
            let len = body.len();
            let input = body.clone();
            let (decoded, peak) =
                fuzz::within(LIVENESS, move || fuzz::measure(|| Op::decode(&input, DIM)))?;
            prop_assert!(peak <= decode_bound(len), "{} bytes held for {}", peak, len);
            match decoded {
                Ok(op) => {
                    if let Op::Upsert(records) = &op {
                        for r in records {
                            prop_assert_eq!(r.unit.len(), DIM);
                            prop_assert!(r.unit.iter().all(|x| x.is_finite()));
                            if let Some(s) = r.segment {
                                prop_assert!(Segment::new(s.start_sec, s.end_sec).is_ok());
                            }
                        }
                    }
                    // What decodes encodes again, and decodes to the same change.
                    let again = op
                        .encode()
                        .map_err(|e| TestCaseError::fail(e.to_string()))?;
                    prop_assert_eq!(Op::decode(&again, DIM).ok(), Some(op));
                    Ok("ok".into())
                }
                Err(e) => {
                    prop_assert_eq!(e.kind(), ErrorKind::Corrupt, "{}", e);
                    Ok("Corrupt".into())
                }
            }
        },
    );
}

fn write_log(dir: &std::path::Path, seq: u64, bodies: &[Vec<u8>]) -> Vec<u8> {
    let mut w = WalWriter::create(dir, seq, 100).unwrap();
    for b in bodies {
        w.append(b).unwrap();
    }
    w.sync().unwrap();
    std::fs::read(dir.join(wal::file_name(seq))).unwrap()
}

#[test]
fn fuzz_log_files() {
    let dir = tempfile::tempdir().unwrap();
    let bodies: Vec<Vec<u8>> = ops().iter().map(|op| op.encode().unwrap()).collect();
    let seeds = vec![
        write_log(dir.path(), 1, &bodies),
        write_log(dir.path(), 2, &bodies[..1]),
        write_log(dir.path(), 3, &[]),
    ];
    let work = tempfile::tempdir().unwrap();
    let counter = std::sync::atomic::AtomicU64::new(0);
    fuzz::run(
        "log files (wal::read)",
        fuzz::cases(1500),
        fuzz::mutated(seeds),
        |(seed, bytes)| {
            let seq = seed as u64 + 1;
            let n = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let case = work.path().join(format!("case-{n}"));
            std::fs::create_dir_all(&case).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let path = case.join(wal::file_name(seq));
            std::fs::File::create(&path)
                .and_then(|mut f| f.write_all(&bytes))
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            let len = bytes.len();
            let read_path = path.clone();
            let (read, peak) = fuzz::within(LIVENESS, move || {
                fuzz::measure(|| wal::read(&read_path, seq, Some(100)))
            })?;
            let _ = std::fs::remove_dir_all(&case);
            // Two 1 MiB read buffers plus the records, and the tail scan's copy.
            prop_assert!(
                peak <= 3 * len + (3 << 20),
                "{} bytes held for {}",
                peak,
                len
            );
            match read {
                Ok(contents) => {
                    prop_assert_eq!(contents.valid_len + contents.torn_bytes, len as u64);
                    for (lsn, (got, body)) in (100..).zip(contents.records.iter()) {
                        prop_assert_eq!(*got, lsn);
                        // A record that passed its checksum is one the writer wrote.
                        prop_assert!(bodies.contains(body) || body.is_empty());
                    }
                    Ok(format!(
                        "ok, {} records, torn tail {}",
                        contents.records.len(),
                        contents.torn_bytes > 0
                    ))
                }
                Err(e) => {
                    prop_assert_eq!(e.kind(), ErrorKind::Corrupt, "{}", e);
                    Ok("Corrupt".into())
                }
            }
        },
    );
}

#[test]
fn fuzz_asset_tables() {
    let mut seeds = Vec::new();
    for n in [0usize, 1, 3, 6] {
        let mut table = AssetTable::default();
        for a in 0..n {
            let id = AssetId::from_content(format!("a{a}").as_bytes());
            let mut i = 0;
            for m in 0..=(a % 3) {
                i = table.intern(&id, &meta(a + m)).unwrap().0;
            }
            if let Some(e) = table.get_mut(i) {
                e.live = a as u32;
            }
        }
        let mut w = ByteWriter::default();
        table.encode(&mut w).unwrap();
        seeds.push(w.buf);
    }
    fuzz::run(
        "asset tables (AssetTable::decode)",
        fuzz::cases(3000),
        fuzz::mutated(seeds),
        |(_, bytes)| {
            let len = bytes.len();
            let input = bytes.clone();
            let (decoded, peak) = fuzz::within(LIVENESS, move || {
                fuzz::measure(|| AssetTable::decode(&input))
            })?;
            prop_assert!(peak <= decode_bound(len), "{} bytes held for {}", peak, len);
            match decoded {
                Ok(table) => {
                    let mut ids = std::collections::HashSet::new();
                    for e in &table.entries {
                        prop_assert!(ids.insert(e.asset_id()), "an asset listed twice");
                        prop_assert!(table.index_of(&e.asset_id()).is_some());
                    }
                    let mut w = ByteWriter::default();
                    table
                        .encode(&mut w)
                        .map_err(|e| TestCaseError::fail(e.to_string()))?;
                    let again = AssetTable::decode(&w.buf)
                        .map_err(|e| TestCaseError::fail(e.to_string()))?;
                    prop_assert_eq!(again.entries.len(), table.entries.len());
                    Ok("ok".into())
                }
                Err(e) => {
                    prop_assert_eq!(e.kind(), ErrorKind::Corrupt, "{}", e);
                    Ok("Corrupt".into())
                }
            }
        },
    );
}

#[test]
fn fuzz_rows() {
    let rows = [
        Row::new(0, 0, 0, None, 7),
        Row::new(9, 3, 2, Some(Segment::new(4.0, 8.5).unwrap()), 0xDEAD_BEEF),
    ];
    let seeds: Vec<Vec<u8>> = rows
        .iter()
        .map(|r| {
            let mut out = Vec::new();
            r.encode(&mut out);
            assert_eq!(out.len(), ROW_BYTES);
            out
        })
        .collect();
    fuzz::run(
        "rows (Row::decode)",
        fuzz::cases(3000),
        fuzz::mutated(seeds),
        |(_, bytes)| {
            let mut r = ByteReader::new(&bytes, "row");
            match Row::decode(&mut r) {
                Ok(row) => {
                    prop_assert!(bytes.len() >= ROW_BYTES);
                    if let Some(s) = row.segment() {
                        prop_assert!(Segment::new(s.start_sec, s.end_sec).is_ok());
                    }
                    let mut out = Vec::new();
                    row.encode(&mut out);
                    prop_assert_eq!(out.len(), ROW_BYTES);
                    Ok("ok".into())
                }
                Err(e) => {
                    prop_assert_eq!(e.kind(), ErrorKind::Corrupt, "{}", e);
                    Ok("Corrupt".into())
                }
            }
        },
    );
}

/// Points in the plane, for building and searching small graphs.
struct Plane(Vec<(f32, f32)>);

impl Plane {
    fn new(n: usize) -> Plane {
        Plane(
            (0..n)
                .map(|i| {
                    let t = i as f32 * 0.37;
                    (t.cos() * (1.0 + i as f32 * 0.01), t.sin())
                })
                .collect(),
        )
    }
    fn d(&self, a: u32, q: (f32, f32)) -> f32 {
        self.0
            .get(a as usize)
            .map_or(f32::MAX, |p| (p.0 - q.0).powi(2) + (p.1 - q.1).powi(2))
    }
}

impl Vectors for Plane {
    fn distance(&self, a: u32, b: u32) -> f32 {
        let q = self.0.get(b as usize).copied().unwrap_or((0.0, 0.0));
        self.d(a, q)
    }
}

struct Near<'a>(&'a Plane, (f32, f32));

impl QueryDistance for Near<'_> {
    fn distance(&self, id: u32) -> f32 {
        self.0.d(id, self.1)
    }
}

#[test]
fn fuzz_graph_files() {
    let config = GraphConfig::default().m(4).ef_construction(16).seed(3);
    let mut seeds = Vec::new();
    let sizes = [1usize, 12, 60];
    for n in sizes {
        let plane = Plane::new(n);
        let mut g = Graph::new(config).unwrap();
        g.push_nodes(n).unwrap();
        g.insert_range(0, n as u32, 1, &plane);
        let mut out = Vec::new();
        g.write(&mut out, n).unwrap();
        seeds.push(out);
    }
    // What reading and searching the valid file of each size holds: the graph's arrays are
    // sized by the caller's node count (the first arena chunk is a fixed cost), never by the file.
    let load = move |bytes: &[u8], nodes: usize| {
        let read = Graph::read(&mut &bytes[..], config, nodes);
        let found = read.as_ref().ok().map(|g| {
            let plane = Plane::new(nodes);
            let mut scratch = SearchScratch::new();
            g.search(&mut scratch, 8, &Near(&plane, (0.3, 0.2)), |_| true)
                .len()
        });
        (read.map(|g| g.len()), found)
    };
    let baseline: Vec<usize> = seeds
        .iter()
        .zip(sizes)
        .map(|(b, n)| {
            let ((read, _), peak) = fuzz::measure(|| load(b, n));
            assert_eq!(read.unwrap(), n);
            peak
        })
        .collect();
    fuzz::run(
        "graph files (Graph::read)",
        fuzz::cases(2000),
        fuzz::mutated(seeds),
        |(seed, bytes)| {
            let nodes = sizes.get(seed).copied().unwrap_or(1);
            let len = bytes.len();
            let input = bytes.clone();
            // A graph that loads must also be searchable without a panic.
            let (read, peak) =
                fuzz::within(LIVENESS, move || fuzz::measure(|| load(&input, nodes)))?;
            let bound = 2 * baseline.get(seed).copied().unwrap_or(0) + 4 * len + (64 << 10);
            prop_assert!(peak <= bound, "{} bytes held for {}", peak, len);
            match read {
                (Ok(n), found) => {
                    prop_assert_eq!(n, nodes);
                    prop_assert!(found.is_some_and(|f| f <= nodes));
                    Ok("ok".into())
                }
                (Err(e), _) => {
                    let corrupt = matches!(e, crossmodal_hnsw::GraphError::Corrupt(_));
                    prop_assert!(corrupt, "{}", e);
                    Ok("Corrupt".into())
                }
            }
        },
    );
}
