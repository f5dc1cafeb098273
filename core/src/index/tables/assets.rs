//! The asset table shared by every space of an index: each asset's id and the metadata its
//! records carry, stored once per asset (and each distinct metadata value once per index)
//! instead of once per vector.
//!
//! Kept compact because an index can hold one vector per asset (images): an asset costs its
//! 32-byte id, a metadata reference and a live count (about 48 bytes), plus a 4-byte slot in a
//! hash table that stores no second copy of the id.

use std::hash::{BuildHasher, Hash, Hasher};

use hashbrown::HashTable;

use crate::asset::AssetId;
use crate::error::{Error, Result};
use crate::index::{MetaPatch, RecordMeta};
use crate::storage::codec::{ByteReader, ByteWriter};

/// One asset: its id, its metadata slots (indexes into the table's metadata; usually one), its
/// live records.
#[derive(Debug, Clone)]
pub(crate) struct AssetEntry {
    pub(crate) id: [u8; 32],
    /// The first metadata slot's value, and any further slots (rows refer to slots by number).
    meta0: u32,
    more: Vec<u32>,
    /// Live records in all spaces (0: every record deleted or replaced).
    pub(crate) live: u32,
}

impl AssetEntry {
    fn slots(&self) -> impl Iterator<Item = u32> + '_ {
        std::iter::once(self.meta0).chain(self.more.iter().copied())
    }

    fn slot(&self, slot: u16) -> Option<u32> {
        match slot {
            0 => Some(self.meta0),
            s => self.more.get(usize::from(s) - 1).copied(),
        }
    }

    /// The asset's id.
    pub(crate) fn asset_id(&self) -> AssetId {
        AssetId::from_digest(self.id)
    }
}

/// Assets by index (rows refer to them by `u32`); indexes never change while the table lives.
#[derive(Clone, Default)]
pub(crate) struct AssetTable {
    pub(crate) entries: Vec<AssetEntry>,
    /// Entry indexes, hashed by id (the id itself lives only in the entry).
    by_id: HashTable<u32>,
    /// Distinct metadata values, and their indexes hashed by value.
    metas: Vec<RecordMeta>,
    meta_index: HashTable<u32>,
    hasher: std::collections::hash_map::RandomState,
}

impl std::fmt::Debug for AssetTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AssetTable")
            .field("assets", &self.entries.len())
            .field("metas", &self.metas.len())
            .finish()
    }
}

/// The hash of a metadata value (its fields; `RecordMeta` holds no floats to hash).
fn meta_hash(hasher: &std::collections::hash_map::RandomState, meta: &RecordMeta) -> u64 {
    let mut h = hasher.build_hasher();
    meta.kind.hash(&mut h);
    meta.format.hash(&mut h);
    meta.tags.hash(&mut h);
    meta.created_at_ms.hash(&mut h);
    meta.name.hash(&mut h);
    meta.duration_ms.hash(&mut h);
    meta.fields.hash(&mut h);
    h.finish()
}

fn raw_id(id: &AssetId) -> Result<[u8; 32]> {
    let mut raw = [0u8; 32];
    hex::decode_to_slice(id.as_str(), &mut raw)
        .map_err(|_| Error::backend("asset id is not hex"))?;
    Ok(raw)
}

impl AssetTable {
    fn hash_id(&self, id: &[u8; 32]) -> u64 {
        // The id is a SHA-256: its first bytes are already uniformly distributed.
        u64::from_le_bytes(id[..8].try_into().unwrap_or_default())
    }

    fn find(&self, raw: &[u8; 32]) -> Option<u32> {
        let entries = &self.entries;
        self.by_id
            .find(self.hash_id(raw), |&i| {
                entries.get(i as usize).is_some_and(|e| &e.id == raw)
            })
            .copied()
    }

    fn push_entry(&mut self, entry: AssetEntry) -> Result<u32> {
        let i = u32::try_from(self.entries.len())
            .map_err(|_| Error::invalid_input("an index holds at most 2^32 assets"))?;
        let hash = self.hash_id(&entry.id);
        self.entries.push(entry);
        let entries = &self.entries;
        let hash_id = |&j: &u32| {
            entries.get(j as usize).map_or(0, |e| {
                u64::from_le_bytes(e.id[..8].try_into().unwrap_or_default())
            })
        };
        self.by_id.insert_unique(hash, i, hash_id);
        Ok(i)
    }

    /// The index of metadata value `meta`, adding it if new.
    fn intern_value(&mut self, meta: &RecordMeta) -> Result<u32> {
        let hash = meta_hash(&self.hasher, meta);
        let metas = &self.metas;
        if let Some(&i) = self
            .meta_index
            .find(hash, |&i| metas.get(i as usize).is_some_and(|m| m == meta))
        {
            return Ok(i);
        }
        let i = u32::try_from(self.metas.len())
            .map_err(|_| Error::invalid_input("an index holds at most 2^32 metadata values"))?;
        self.metas.push(meta.clone());
        let (metas, hasher) = (&self.metas, &self.hasher);
        self.meta_index.insert_unique(hash, i, |&j| {
            metas.get(j as usize).map_or(0, |m| meta_hash(hasher, m))
        });
        Ok(i)
    }

    /// The index of asset `id` and the slot of `meta` among its metadata, adding either if new.
    pub(crate) fn intern(&mut self, id: &AssetId, meta: &RecordMeta) -> Result<(u32, u16)> {
        let value = self.intern_value(meta)?;
        let raw = raw_id(id)?;
        let Some(i) = self.find(&raw) else {
            let i = self.push_entry(AssetEntry {
                id: raw,
                meta0: value,
                more: Vec::new(),
                live: 0,
            })?;
            return Ok((i, 0));
        };
        let entry = self
            .entries
            .get_mut(i as usize)
            .ok_or_else(|| Error::backend("asset table: unknown asset index"))?;
        if let Some(slot) = entry.slots().position(|v| v == value) {
            return Ok((i, slot as u16));
        }
        let slot = u16::try_from(entry.more.len() + 1).map_err(|_| {
            Error::invalid_input(format!(
                "asset {} has more than 65535 distinct record metadata values",
                entry.asset_id().short()
            ))
        })?;
        entry.more.push(value);
        Ok((i, slot))
    }

    pub(crate) fn index_of(&self, id: &AssetId) -> Option<u32> {
        self.find(&raw_id(id).ok()?)
    }

    pub(crate) fn get(&self, asset: u32) -> Option<&AssetEntry> {
        self.entries.get(asset as usize)
    }

    pub(crate) fn get_mut(&mut self, asset: u32) -> Option<&mut AssetEntry> {
        self.entries.get_mut(asset as usize)
    }

    /// The metadata of asset `asset` after `patch`, slot by slot (nothing changed; an error if
    /// the patch cannot apply).
    pub(crate) fn patched(&self, asset: u32, patch: &MetaPatch) -> Result<Vec<RecordMeta>> {
        let entry = self
            .entries
            .get(asset as usize)
            .ok_or_else(|| Error::backend("asset table: unknown asset index"))?;
        entry
            .slots()
            .map(|v| {
                let mut meta = self
                    .metas
                    .get(v as usize)
                    .cloned()
                    .ok_or_else(|| Error::backend("asset table: unknown metadata"))?;
                patch.apply_to(&mut meta)?;
                Ok(meta)
            })
            .collect()
    }

    /// Applies `patch` to every metadata slot of asset `asset`: rows keep their slot numbers,
    /// so every record of the asset sees the new values at once. The old values stay in the
    /// table (other assets may share them) until the next checkpoint drops unused ones.
    pub(crate) fn patch(&mut self, asset: u32, patch: &MetaPatch) -> Result<()> {
        let patched = self.patched(asset, patch)?;
        let values = patched
            .iter()
            .map(|m| self.intern_value(m))
            .collect::<Result<Vec<u32>>>()?;
        let entry = self
            .entries
            .get_mut(asset as usize)
            .ok_or_else(|| Error::backend("asset table: unknown asset index"))?;
        let mut values = values.into_iter();
        if let Some(v) = values.next() {
            entry.meta0 = v;
        }
        for (slot, v) in entry.more.iter_mut().zip(values) {
            *slot = v;
        }
        Ok(())
    }

    /// The metadata in slot `slot` of asset `asset`.
    #[inline]
    pub(crate) fn meta_of(&self, asset: u32, slot: u16) -> Option<&RecordMeta> {
        self.metas
            .get(self.entries.get(asset as usize)?.slot(slot)? as usize)
    }

    /// Assets with at least one live record.
    pub(crate) fn live_assets(&self) -> usize {
        self.entries.iter().filter(|e| e.live > 0).count()
    }

    /// Approximate bytes held.
    pub(crate) fn memory_bytes(&self) -> usize {
        self.entries.capacity() * std::mem::size_of::<AssetEntry>()
            + self
                .entries
                .iter()
                .map(|e| e.more.capacity() * 4)
                .sum::<usize>()
            + self.by_id.capacity() * 5
            + self.meta_index.capacity() * 5
            + self
                .metas
                .iter()
                .map(|m| {
                    std::mem::size_of::<RecordMeta>()
                        + m.tags.iter().map(|t| t.len() + 24).sum::<usize>()
                        + m.name.as_ref().map_or(0, String::len)
                        + m.fields
                            .iter()
                            .map(|(k, v)| k.len() + 96 + v.as_text().len())
                            .sum::<usize>()
                })
                .sum::<usize>()
    }

    /// The file form: `u32 metas`, each a length-prefixed JSON object; `u32 assets`, each a
    /// 32-byte id, `u32 live`, `u16 slots` and that many `u32` metadata indexes.
    /// Metadata values no asset refers to any more (left by patches) are not written.
    pub(crate) fn encode(&self, w: &mut ByteWriter) -> Result<()> {
        const UNUSED: u32 = u32::MAX;
        let mut remap = vec![UNUSED; self.metas.len()];
        let mut used = Vec::new();
        for e in &self.entries {
            for v in e.slots() {
                let slot = remap
                    .get_mut(v as usize)
                    .ok_or_else(|| Error::backend("asset table: unknown metadata"))?;
                if *slot == UNUSED {
                    *slot = used.len() as u32;
                    used.push(v as usize);
                }
            }
        }
        w.u32(used.len() as u32);
        for &i in &used {
            let m = self
                .metas
                .get(i)
                .ok_or_else(|| Error::backend("asset table: unknown metadata"))?;
            w.blob(
                &serde_json::to_vec(m)
                    .map_err(|e| Error::backend(format!("encode metadata: {e}")))?,
            );
        }
        w.u32(self.entries.len() as u32);
        for e in &self.entries {
            w.bytes(&e.id);
            w.u32(e.live);
            w.u16((1 + e.more.len()) as u16);
            for v in e.slots() {
                w.u32(remap.get(v as usize).copied().unwrap_or(UNUSED));
            }
        }
        Ok(())
    }

    /// Reads [`encode`](Self::encode)'s form; damage is `Corrupt`.
    pub(crate) fn decode(bytes: &[u8]) -> Result<AssetTable> {
        let mut r = ByteReader::new(bytes, "asset table");
        let mut table = AssetTable::default();
        let n_metas = r.count(4)?;
        for _ in 0..n_metas {
            let json = r.blob()?;
            let meta: RecordMeta = serde_json::from_slice(json)
                .map_err(|e| r.corrupt(format!("metadata is not valid JSON: {e}")))?;
            if table.intern_value(&meta)? as usize != table.metas.len() - 1 {
                return Err(r.corrupt("a metadata value is listed twice"));
            }
        }
        let n = r.count(42)?;
        for _ in 0..n {
            let mut id = [0u8; 32];
            id.copy_from_slice(r.take(32)?);
            let live = r.u32()?;
            let slots = r.u16()?;
            let mut values = Vec::with_capacity(usize::from(slots).min(r.remaining() / 4));
            for _ in 0..slots {
                let v = r.u32()?;
                if v as usize >= table.metas.len() {
                    return Err(r.corrupt("an asset names unknown metadata"));
                }
                values.push(v);
            }
            let Some((&meta0, more)) = values.split_first() else {
                return Err(r.corrupt("an asset without metadata"));
            };
            if table.find(&id).is_some() {
                return Err(r.corrupt("an asset is listed twice"));
            }
            table.push_entry(AssetEntry {
                id,
                meta0,
                more: more.to_vec(),
                live,
            })?;
        }
        if !r.is_empty() {
            return Err(r.corrupt("trailing bytes"));
        }
        Ok(table)
    }
}
