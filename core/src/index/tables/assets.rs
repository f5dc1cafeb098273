//! The asset table shared by every space of an index: each asset's id and the distinct
//! metadata its records carry, stored once instead of once per vector.

use std::collections::HashMap;

use crate::asset::AssetId;
use crate::error::{Error, Result};
use crate::index::RecordMeta;
use crate::storage::codec::{ByteReader, ByteWriter};

/// One asset: its id, the distinct metadata of its records (usually one), its live records.
#[derive(Debug, Clone)]
pub(crate) struct AssetEntry {
    pub(crate) id: AssetId,
    pub(crate) metas: Vec<RecordMeta>,
    /// Live records in all spaces (0: every record deleted or replaced).
    pub(crate) live: u32,
}

/// Assets by index (rows refer to them by `u32`); indexes never change while the table lives.
#[derive(Debug, Clone, Default)]
pub(crate) struct AssetTable {
    pub(crate) entries: Vec<AssetEntry>,
    by_id: HashMap<AssetId, u32>,
}

impl AssetTable {
    /// The index of `id`, adding it if new.
    pub(crate) fn intern(&mut self, id: &AssetId) -> Result<u32> {
        if let Some(&i) = self.by_id.get(id) {
            return Ok(i);
        }
        let i = u32::try_from(self.entries.len())
            .map_err(|_| Error::invalid_input("an index holds at most 2^32 assets"))?;
        self.entries.push(AssetEntry {
            id: id.clone(),
            metas: Vec::new(),
            live: 0,
        });
        self.by_id.insert(id.clone(), i);
        Ok(i)
    }

    /// The slot of `meta` among asset `asset`'s metadata, adding it if new.
    pub(crate) fn intern_meta(&mut self, asset: u32, meta: &RecordMeta) -> Result<u16> {
        let entry = self
            .entries
            .get_mut(asset as usize)
            .ok_or_else(|| Error::backend("asset table: unknown asset index"))?;
        if let Some(i) = entry.metas.iter().position(|m| m == meta) {
            return Ok(i as u16);
        }
        let i = u16::try_from(entry.metas.len()).map_err(|_| {
            Error::invalid_input(format!(
                "asset {} has more than 65535 distinct record metadata values",
                entry.id.short()
            ))
        })?;
        entry.metas.push(meta.clone());
        Ok(i)
    }

    pub(crate) fn index_of(&self, id: &AssetId) -> Option<u32> {
        self.by_id.get(id).copied()
    }

    pub(crate) fn get(&self, asset: u32) -> Option<&AssetEntry> {
        self.entries.get(asset as usize)
    }

    pub(crate) fn get_mut(&mut self, asset: u32) -> Option<&mut AssetEntry> {
        self.entries.get_mut(asset as usize)
    }

    /// Assets with at least one live record.
    pub(crate) fn live_assets(&self) -> usize {
        self.entries.iter().filter(|e| e.live > 0).count()
    }

    /// Approximate bytes held.
    pub(crate) fn memory_bytes(&self) -> usize {
        self.entries
            .iter()
            .map(|e| {
                std::mem::size_of::<AssetEntry>()
                    + 64
                    + e.metas
                        .iter()
                        .map(|m| {
                            std::mem::size_of::<RecordMeta>()
                                + m.tags.iter().map(|t| t.len() + 24).sum::<usize>()
                        })
                        .sum::<usize>()
            })
            .sum::<usize>()
            + self.by_id.capacity() * (std::mem::size_of::<(AssetId, u32)>() + 72)
    }

    /// The file form: `u32 count`, then per asset: 32-byte id, `u32 live`, `u16 metas`, each
    /// meta as a length-prefixed JSON object.
    pub(crate) fn encode(&self, w: &mut ByteWriter) -> Result<()> {
        w.u32(self.entries.len() as u32);
        for e in &self.entries {
            let mut id = [0u8; 32];
            hex::decode_to_slice(e.id.as_str(), &mut id)
                .map_err(|_| Error::backend("asset id is not hex"))?;
            w.bytes(&id);
            w.u32(e.live);
            w.u16(e.metas.len() as u16);
            for m in &e.metas {
                w.blob(
                    &serde_json::to_vec(m)
                        .map_err(|e| Error::backend(format!("encode metadata: {e}")))?,
                );
            }
        }
        Ok(())
    }

    /// Reads [`encode`](Self::encode)'s form; damage is `Corrupt`.
    pub(crate) fn decode(bytes: &[u8]) -> Result<AssetTable> {
        let mut r = ByteReader::new(bytes, "asset table");
        let n = r.count(38)?;
        let mut table = AssetTable::default();
        for _ in 0..n {
            let mut raw = [0u8; 32];
            raw.copy_from_slice(r.take(32)?);
            let id = AssetId::from_digest(raw);
            let live = r.u32()?;
            let metas = r.u16()?;
            let mut entry = AssetEntry {
                id: id.clone(),
                metas: Vec::with_capacity(usize::from(metas).min(r.remaining() / 4)),
                live,
            };
            for _ in 0..metas {
                let json = r.blob()?;
                entry.metas.push(
                    serde_json::from_slice(json)
                        .map_err(|e| r.corrupt(format!("metadata is not valid JSON: {e}")))?,
                );
            }
            if table.by_id.insert(id, table.entries.len() as u32).is_some() {
                return Err(r.corrupt("an asset is listed twice"));
            }
            table.entries.push(entry);
        }
        if !r.is_empty() {
            return Err(r.corrupt("trailing bytes"));
        }
        Ok(table)
    }
}
