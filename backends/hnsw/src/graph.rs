//! [`Graph`]: the links of every node, stored compactly and readable while other threads insert.
//!
//! Layout: layer 0 is one fixed-stride array of `u32` slots per node (`[head, id, id, ...]`,
//! `2m + 1` slots), in chunks of [`NODES_PER_CHUNK`] nodes so that growing never moves existing
//! nodes. Nodes on higher layers (about one in `m`) get `level * (m + 1)` slots in a second
//! chunked arena. A list's head holds its length (low 16 bits) and how many of its first ids
//! are known to pass the neighbour-selection heuristic (high 16 bits; ids appended to a list
//! with room are not checked until it overflows, see `add_link`).
//! Slots are `AtomicU32`: a search reads lists without locks (the head with
//! `Acquire`, ids `Relaxed`), an insert writes a list's ids and then its head (`Release`) under
//! the node's stripe lock. A reader may see a list half-updated (old and new ids mixed); every id
//! it sees is a valid node, which is all a best-first search needs. That is the same contract
//! hnswlib and faiss keep, without their per-visit locks.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use parking_lot::{Mutex, MutexGuard};

use crate::GraphError;
use crate::config::GraphConfig;

/// Highest layer a node can reach (levels are `0..=MAX_LEVEL`).
pub const MAX_LEVEL: u8 = 15;

/// Nodes per layer-0 chunk.
pub(crate) const NODES_PER_CHUNK: usize = 1 << 14;
/// Slots per chunk of the upper-layer arena.
const UPPER_CHUNK_SLOTS: usize = 1 << 16;
/// Stripe locks serialising writers of one node's lists.
const STRIPES: usize = 1 << 10;
/// The length bits of a list's head slot (the rest count its checked ids).
const LEN_MASK: u32 = 0xFFFF;
/// Where a list's head keeps its checked count.
const CHECKED_SHIFT: u32 = 16;

/// An HNSW graph over nodes `0..len()`; vectors live elsewhere (see [`crate::Vectors`]).
///
/// Growing ([`push_nodes`](Self::push_nodes)) needs `&mut self`; inserting
/// ([`insert`](Self::insert)) and searching ([`search`](Self::search)) take `&self` and may run
/// on many threads at once.
pub struct Graph {
    pub(crate) config: GraphConfig,
    pub(crate) m0: usize,
    /// `1 / ln(m)`: levels are `floor(-ln(u) * level_mult)`.
    level_mult: f64,
    pub(crate) levels: Vec<u8>,
    /// Per node: first slot of its upper-layer lists, `u32::MAX` if its level is 0.
    pub(crate) upper_offset: Vec<u32>,
    layer0: Vec<Box<[AtomicU32]>>,
    upper: Vec<Box<[AtomicU32]>>,
    /// Slots used in the upper arena (the next region starts here, or at the next chunk).
    upper_used: usize,
    /// 0: no entry yet; else `1 << 40 | level << 32 | node`.
    entry: AtomicU64,
    pub(crate) entry_lock: Mutex<()>,
    stripes: Box<[Mutex<()>]>,
}

impl std::fmt::Debug for Graph {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Graph")
            .field("config", &self.config)
            .field("nodes", &self.len())
            .field("entry", &self.entry())
            .finish()
    }
}

const ENTRY_SET: u64 = 1 << 40;

fn pack_entry(node: u32, level: u8) -> u64 {
    ENTRY_SET | (u64::from(level) << 32) | u64::from(node)
}

fn unpack_entry(packed: u64) -> Option<(u32, u8)> {
    (packed & ENTRY_SET != 0).then_some((packed as u32, (packed >> 32) as u8))
}

/// SplitMix64: a well-mixed hash (level draws).
pub(crate) fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn new_slots(n: usize) -> Box<[AtomicU32]> {
    (0..n).map(|_| AtomicU32::new(0)).collect()
}

impl Graph {
    /// An empty graph.
    pub fn new(config: GraphConfig) -> Result<Graph, GraphError> {
        config.validate()?;
        Ok(Graph {
            m0: config.m0(),
            level_mult: 1.0 / (config.m as f64).ln(),
            config,
            levels: Vec::new(),
            upper_offset: Vec::new(),
            layer0: Vec::new(),
            upper: Vec::new(),
            upper_used: 0,
            entry: AtomicU64::new(0),
            entry_lock: Mutex::new(()),
            stripes: (0..STRIPES).map(|_| Mutex::new(())).collect(),
        })
    }

    /// The configuration the graph was built with.
    pub fn config(&self) -> &GraphConfig {
        &self.config
    }

    /// Number of nodes (linked or not).
    pub fn len(&self) -> usize {
        self.levels.len()
    }

    /// Whether the graph has no nodes.
    pub fn is_empty(&self) -> bool {
        self.levels.is_empty()
    }

    /// The entry node and the top layer, once any node is linked.
    pub fn entry(&self) -> Option<(u32, u8)> {
        unpack_entry(self.entry.load(Ordering::Acquire))
    }

    pub(crate) fn set_entry(&self, node: u32, level: u8) {
        self.entry.store(pack_entry(node, level), Ordering::Release);
    }

    /// The level drawn for node `id` (a function of the seed and the id).
    pub fn level_for(&self, id: u32) -> u8 {
        let h = splitmix64(self.config.seed ^ u64::from(id).wrapping_mul(0xA24B_AED4_963E_E407));
        // A uniform draw in (0, 1].
        let u = ((h >> 11) as f64 + 1.0) / (1u64 << 53) as f64;
        let level = (-u.ln() * self.level_mult).floor();
        if level >= f64::from(MAX_LEVEL) {
            MAX_LEVEL
        } else {
            level as u8
        }
    }

    /// Adds `n` unlinked nodes (ids `len()..len() + n`) with their levels drawn; returns the
    /// first new id. Their vectors must be available to [`insert`](Self::insert) before they
    /// are linked.
    pub fn push_nodes(&mut self, n: usize) -> Result<u32, GraphError> {
        let first = self.len();
        let levels: Vec<u8> = (first..first + n)
            .map(|id| u32::try_from(id).map(|id| self.level_for(id)))
            .collect::<Result<_, _>>()
            .map_err(|_| GraphError::Capacity(first + n))?;
        self.push_nodes_with_levels(&levels)?;
        u32::try_from(first).map_err(|_| GraphError::Capacity(first))
    }

    /// Adds unlinked nodes with given levels (loading a file, copying another builder's graph).
    pub(crate) fn push_nodes_with_levels(&mut self, levels: &[u8]) -> Result<(), GraphError> {
        let after = self.len() + levels.len();
        if after > u32::MAX as usize {
            return Err(GraphError::Capacity(after));
        }
        let stride = self.m0 + 1;
        while self.layer0.len() * NODES_PER_CHUNK < after {
            self.layer0.push(new_slots(NODES_PER_CHUNK * stride));
        }
        let region = self.config.m + 1;
        for &level in levels {
            let level = level.min(MAX_LEVEL);
            let offset = if level == 0 {
                u32::MAX
            } else {
                let need = usize::from(level) * region;
                let in_chunk = self.upper_used % UPPER_CHUNK_SLOTS;
                if self.upper_used == self.upper.len() * UPPER_CHUNK_SLOTS
                    || in_chunk + need > UPPER_CHUNK_SLOTS
                {
                    // Start a fresh chunk (a region never straddles two).
                    self.upper_used = self.upper.len() * UPPER_CHUNK_SLOTS;
                    self.upper.push(new_slots(UPPER_CHUNK_SLOTS));
                }
                let start = self.upper_used;
                self.upper_used += need;
                u32::try_from(start).map_err(|_| GraphError::Capacity(start))?
            };
            self.levels.push(level);
            self.upper_offset.push(offset);
        }
        Ok(())
    }

    /// The level of node `id` (0 for an unknown id).
    pub fn level(&self, id: u32) -> u8 {
        self.levels.get(id as usize).copied().unwrap_or(0)
    }

    /// The slots of node `id`'s list at `level`: `[len, ids...]`; `None` if the node does not
    /// reach that level.
    #[inline]
    pub(crate) fn slots(&self, id: u32, level: u8) -> Option<&[AtomicU32]> {
        let id = id as usize;
        if level == 0 {
            let stride = self.m0 + 1;
            let chunk = self.layer0.get(id / NODES_PER_CHUNK)?;
            let start = (id % NODES_PER_CHUNK) * stride;
            chunk.get(start..start + stride)
        } else {
            if level > *self.levels.get(id)? {
                return None;
            }
            let offset = *self.upper_offset.get(id)? as usize;
            let region = self.config.m + 1;
            let start = offset + (usize::from(level) - 1) * region;
            let chunk = self.upper.get(start / UPPER_CHUNK_SLOTS)?;
            let at = start % UPPER_CHUNK_SLOTS;
            chunk.get(at..at + region)
        }
    }

    /// Largest list length at `level`.
    pub(crate) fn capacity(&self, level: u8) -> usize {
        if level == 0 { self.m0 } else { self.config.m }
    }

    /// Appends node `id`'s neighbours at `level` to `out` (lock-free read).
    #[inline]
    pub(crate) fn neighbours_into(&self, id: u32, level: u8, out: &mut Vec<u32>) {
        if let Some((len, ids)) = self.slots(id, level).and_then(|s| s.split_first()) {
            let n = ((len.load(Ordering::Acquire) & LEN_MASK) as usize).min(ids.len());
            out.extend(ids.iter().take(n).map(|slot| slot.load(Ordering::Relaxed)));
        }
    }

    /// Appends node `id`'s neighbours at `level` to `out` and returns how many of the first of
    /// them are known to pass the selection heuristic (the rest were appended unchecked).
    pub(crate) fn neighbours_checked_into(&self, id: u32, level: u8, out: &mut Vec<u32>) -> usize {
        let Some((head, ids)) = self.slots(id, level).and_then(|s| s.split_first()) else {
            return 0;
        };
        let head = head.load(Ordering::Acquire);
        let n = ((head & LEN_MASK) as usize).min(ids.len());
        out.extend(ids.iter().take(n).map(|slot| slot.load(Ordering::Relaxed)));
        ((head >> CHECKED_SHIFT) as usize).min(n)
    }

    /// Whether node `id` has its layer-0 list, i.e. its insertion reached the bottom layer
    /// (lists are written top-down, layer 0 last). A node reached through an upper layer
    /// before then has empty lower lists: a walk that moves to it there is stuck.
    #[inline]
    pub(crate) fn reached_bottom(&self, id: u32) -> bool {
        self.slots(id, 0)
            .and_then(|s| s.first())
            .is_some_and(|head| head.load(Ordering::Acquire) & LEN_MASK > 0)
    }

    /// Node `id`'s neighbours at `level`.
    pub fn neighbours(&self, id: u32, level: u8) -> Vec<u32> {
        let mut out = Vec::new();
        self.neighbours_into(id, level, &mut out);
        out
    }

    /// Replaces node `id`'s list at `level`, none of its ids checked (a list read from a file or
    /// another builder; the caller holds the node's stripe lock; at most
    /// [`capacity`](Self::capacity) ids are kept). Its next prune compares every pair again.
    pub(crate) fn store_neighbours(&self, id: u32, level: u8, ids: &[u32]) {
        self.store_list(id, level, ids, 0);
    }

    /// Replaces node `id`'s list at `level`; its first `checked` ids passed the selection
    /// heuristic (the caller holds the node's stripe lock).
    pub(crate) fn store_list(&self, id: u32, level: u8, ids: &[u32], checked: usize) {
        if let Some((head, slots)) = self.slots(id, level).and_then(|s| s.split_first()) {
            let n = ids.len().min(slots.len());
            for (slot, &v) in slots.iter().zip(ids) {
                slot.store(v, Ordering::Relaxed);
            }
            let checked = checked.min(n) as u32;
            head.store(n as u32 | (checked << CHECKED_SHIFT), Ordering::Release);
        }
    }

    /// Appends one id to node `id`'s list at `level` if there is room (stripe lock held);
    /// false when the list is full.
    pub(crate) fn try_append(&self, id: u32, level: u8, v: u32) -> bool {
        match self.slots(id, level).and_then(|s| s.split_first()) {
            Some((head, slots)) => {
                let raw = head.load(Ordering::Acquire);
                let n = (raw & LEN_MASK) as usize;
                match slots.get(n) {
                    Some(slot) => {
                        slot.store(v, Ordering::Relaxed);
                        // The checked count stays: the new id is unchecked.
                        head.store((raw & !LEN_MASK) | (n as u32 + 1), Ordering::Release);
                        true
                    }
                    None => false,
                }
            }
            None => false,
        }
    }

    /// The stripe lock of node `id`.
    pub(crate) fn lock(&self, id: u32) -> MutexGuard<'_, ()> {
        let i = (splitmix64(u64::from(id)) as usize) % STRIPES;
        // `STRIPES` locks exist and `i < STRIPES`.
        match self.stripes.get(i) {
            Some(m) => m.lock(),
            None => self.entry_lock.lock(),
        }
    }

    /// Hints the CPU to load node `id`'s layer-0 list.
    #[inline]
    pub(crate) fn prefetch_links(&self, id: u32) {
        #[cfg(target_arch = "x86_64")]
        if let Some(slots) = self.slots(id, 0) {
            use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
            let base = slots.as_ptr().cast::<i8>();
            for line in 0..(slots.len() * 4).div_ceil(64) {
                // SAFETY: prefetching never faults, whatever the address.
                unsafe { _mm_prefetch::<_MM_HINT_T0>(base.wrapping_add(line * 64)) };
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = id;
    }

    /// Bytes held by the links (the levels and offsets included).
    pub fn memory_bytes(&self) -> usize {
        self.layer0.len() * NODES_PER_CHUNK * (self.m0 + 1) * 4
            + self.upper.len() * UPPER_CHUNK_SLOTS * 4
            + self.levels.capacity()
            + self.upper_offset.capacity() * 4
    }

    /// Bytes per node the links need at least (layer 0), for capacity planning.
    pub fn bytes_per_node(&self) -> usize {
        (self.m0 + 1) * 4 + 5
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_follow_the_geometric_law_and_depend_only_on_seed_and_id() {
        let mut g = Graph::new(GraphConfig::default()).unwrap();
        g.push_nodes(100_000).unwrap();
        let upper = g.levels.iter().filter(|l| **l > 0).count();
        // P(level > 0) = 1/m = 1/16.
        assert!((5_000..7_500).contains(&upper), "{upper}");
        let mut h = Graph::new(GraphConfig::default()).unwrap();
        h.push_nodes(10).unwrap();
        assert_eq!(&g.levels[..10], &h.levels[..]);
        let other = Graph::new(GraphConfig::default().seed(7)).unwrap();
        assert!((0..1000u32).any(|id| other.level_for(id) != g.level_for(id)));
    }

    #[test]
    fn lists_round_trip_and_respect_capacity() {
        let mut g = Graph::new(GraphConfig::default().m(4)).unwrap();
        g.push_nodes(NODES_PER_CHUNK + 10).unwrap();
        let id = (NODES_PER_CHUNK + 3) as u32;
        g.store_neighbours(id, 0, &[1, 2, 3]);
        assert_eq!(g.neighbours(id, 0), vec![1, 2, 3]);
        for v in 4..=5 {
            assert!(g.try_append(id, 0, v));
        }
        assert_eq!(g.neighbours(id, 0).len(), 5);
        for v in 6..=8 {
            assert!(g.try_append(id, 0, v));
        }
        assert!(!g.try_append(id, 0, 9), "layer 0 holds 2m = 8");
        g.store_neighbours(id, 0, &(0..20).collect::<Vec<_>>());
        assert_eq!(g.neighbours(id, 0).len(), 8);
        // A node of level 0 has no upper lists.
        let flat = (0..g.len() as u32).find(|i| g.level(*i) == 0).unwrap();
        assert!(g.slots(flat, 1).is_none());
        let tall = (0..g.len() as u32).find(|i| g.level(*i) >= 2).unwrap();
        g.store_neighbours(tall, 2, &[7, 8]);
        g.store_neighbours(tall, 1, &[9]);
        assert_eq!(g.neighbours(tall, 2), vec![7, 8]);
        assert_eq!(g.neighbours(tall, 1), vec![9]);
    }
}
