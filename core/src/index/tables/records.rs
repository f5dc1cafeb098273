//! Log records: what an upsert or a delete writes to the write-ahead log, and how a record is
//! applied to the in-memory state (the same code path for a live write and for a replay).

use crate::asset::AssetId;
use crate::embedding::{EmbeddingSpace, Segment};
use crate::error::{Error, Result};
use crate::index::RecordMeta;
use crate::storage::codec::{ByteReader, ByteWriter};

const UPSERT: u8 = 1;
const DELETE_ASSET: u8 = 2;
const PATCH_META: u8 = 3;

/// A record as the log and the tables hold it: its vector already normalised.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct StoredRecord {
    pub(crate) space: EmbeddingSpace,
    pub(crate) asset_id: AssetId,
    pub(crate) seq: u32,
    pub(crate) segment: Option<Segment>,
    pub(crate) meta: RecordMeta,
    pub(crate) unit: Vec<f32>,
}

/// One logged change.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Op {
    /// Insert or replace records (one `VectorIndex::upsert` call: applied whole).
    Upsert(Vec<StoredRecord>),
    /// Remove every record of an asset.
    DeleteAsset(AssetId),
    /// Change the metadata of every record of an asset.
    PatchMeta(AssetId, crate::index::MetaPatch),
}

pub(crate) fn space_code(space: EmbeddingSpace) -> u8 {
    match space {
        EmbeddingSpace::Visual => 0,
        EmbeddingSpace::VisualText => 1,
        EmbeddingSpace::Audio => 2,
        EmbeddingSpace::Transcription => 3,
    }
}

fn space_of(code: u8) -> Option<EmbeddingSpace> {
    EmbeddingSpace::ALL.get(usize::from(code)).copied()
}

fn asset_bytes(id: &AssetId) -> Result<[u8; 32]> {
    let mut raw = [0u8; 32];
    hex::decode_to_slice(id.as_str(), &mut raw)
        .map_err(|_| Error::backend("asset id is not hex"))?;
    Ok(raw)
}

fn read_asset(r: &mut ByteReader<'_>) -> Result<AssetId> {
    let mut raw = [0u8; 32];
    raw.copy_from_slice(r.take(32)?);
    Ok(AssetId::from_digest(raw))
}

impl Op {
    /// The log body of this change.
    pub(crate) fn encode(&self) -> Result<Vec<u8>> {
        let mut w = ByteWriter::default();
        match self {
            Op::Upsert(records) => {
                w.u8(UPSERT);
                // Distinct metadata once per batch (an asset's records share theirs).
                let mut metas: Vec<&RecordMeta> = Vec::new();
                let mut slots = Vec::with_capacity(records.len());
                for r in records {
                    let slot = match metas.iter().position(|m| **m == r.meta) {
                        Some(i) => i,
                        None => {
                            metas.push(&r.meta);
                            metas.len() - 1
                        }
                    };
                    slots.push(slot as u32);
                }
                w.u32(metas.len() as u32);
                for m in metas {
                    w.blob(
                        &serde_json::to_vec(m)
                            .map_err(|e| Error::backend(format!("encode metadata: {e}")))?,
                    );
                }
                w.u32(records.len() as u32);
                for (r, slot) in records.iter().zip(slots) {
                    w.u8(space_code(r.space));
                    w.bytes(&asset_bytes(&r.asset_id)?);
                    w.u32(r.seq);
                    match r.segment {
                        Some(s) => {
                            w.u8(1);
                            w.f64(s.start_sec);
                            w.f64(s.end_sec);
                        }
                        None => w.u8(0),
                    }
                    w.u32(slot);
                    w.u32(r.unit.len() as u32);
                    w.f32s(&r.unit);
                }
            }
            Op::DeleteAsset(id) => {
                w.u8(DELETE_ASSET);
                w.bytes(&asset_bytes(id)?);
            }
            Op::PatchMeta(id, patch) => {
                w.u8(PATCH_META);
                w.bytes(&asset_bytes(id)?);
                w.blob(
                    &serde_json::to_vec(patch)
                        .map_err(|e| Error::backend(format!("encode metadata patch: {e}")))?,
                );
            }
        }
        Ok(w.buf)
    }

    /// Reads a log body; `dim` is the index's dimension (a vector of another length is damage).
    pub(crate) fn decode(body: &[u8], dim: usize) -> Result<Op> {
        let mut r = ByteReader::new(body, "log record");
        let op = match r.u8()? {
            UPSERT => {
                let n_metas = r.count(4)?;
                let mut metas = Vec::with_capacity(n_metas);
                for _ in 0..n_metas {
                    let json = r.blob()?;
                    let meta: RecordMeta = serde_json::from_slice(json)
                        .map_err(|e| r.corrupt(format!("metadata is not valid JSON: {e}")))?;
                    metas.push(meta);
                }
                let n = r.count(46)?;
                let mut records = Vec::with_capacity(n);
                for _ in 0..n {
                    let space = space_of(r.u8()?).ok_or_else(|| r.corrupt("unknown space"))?;
                    let asset_id = read_asset(&mut r)?;
                    let seq = r.u32()?;
                    let segment = match r.u8()? {
                        0 => None,
                        1 => {
                            let start = r.f64()?;
                            let end = r.f64()?;
                            Some(
                                Segment::new(start, end)
                                    .map_err(|e| r.corrupt(e.message().to_string()))?,
                            )
                        }
                        _ => return Err(r.corrupt("bad segment flag")),
                    };
                    let meta = metas
                        .get(r.u32()? as usize)
                        .cloned()
                        .ok_or_else(|| r.corrupt("metadata slot out of range"))?;
                    let len = r.u32()? as usize;
                    if len != dim {
                        return Err(
                            r.corrupt(format!("vector of {len} dimensions, the index has {dim}"))
                        );
                    }
                    let unit = r.f32s(len)?;
                    if unit.iter().any(|x| !x.is_finite()) {
                        return Err(r.corrupt("a vector component is not finite"));
                    }
                    records.push(StoredRecord {
                        space,
                        asset_id,
                        seq,
                        segment,
                        meta,
                        unit,
                    });
                }
                Op::Upsert(records)
            }
            DELETE_ASSET => Op::DeleteAsset(read_asset(&mut r)?),
            PATCH_META => {
                let id = read_asset(&mut r)?;
                let patch = serde_json::from_slice(r.blob()?)
                    .map_err(|e| r.corrupt(format!("metadata patch is not valid JSON: {e}")))?;
                Op::PatchMeta(id, patch)
            }
            other => return Err(r.corrupt(format!("unknown record type {other}"))),
        };
        if !r.is_empty() {
            return Err(r.corrupt("trailing bytes"));
        }
        Ok(op)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::{MediaFormat, MediaKind};

    #[test]
    fn records_round_trip_and_damage_is_corrupt() {
        let meta = RecordMeta::new(MediaKind::Video, MediaFormat::Mp4)
            .tags(["castle"])
            .created_at_ms(7)
            .field("campaign", "summer");
        let rec = |seq| StoredRecord {
            space: EmbeddingSpace::Audio,
            asset_id: AssetId::from_content(b"a"),
            seq,
            segment: Some(Segment::new(1.0, 2.5).unwrap()),
            meta: meta.clone(),
            unit: vec![0.6, 0.8],
        };
        for op in [
            Op::Upsert(vec![rec(0), rec(1)]),
            Op::DeleteAsset(AssetId::from_content(b"b")),
            Op::PatchMeta(
                AssetId::from_content(b"c"),
                crate::index::MetaPatch::default()
                    .set("campaign", "winter")
                    .add_tag("approved"),
            ),
        ] {
            let body = op.encode().unwrap();
            assert_eq!(Op::decode(&body, 2).unwrap(), op);
            // Every truncation is a typed error.
            for cut in 0..body.len() {
                assert!(Op::decode(&body[..cut], 2).is_err(), "cut at {cut}");
            }
        }
        let body = Op::Upsert(vec![rec(0)]).encode().unwrap();
        assert!(Op::decode(&body, 3).is_err(), "dimension mismatch");
    }
}
