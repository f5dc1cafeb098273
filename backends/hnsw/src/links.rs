//! A compact copy of an hnsw_rs graph's links, and the HNSW search that runs over it.
//!
//! hnsw_rs builds the graph (its insertion, with `parallel_insert`, is what this crate uses it
//! for), but its search allocates two `Arc`s per visited node and keeps a `HashMap` of visited
//! nodes, which makes it 3-4x slower than the same walk over plain arrays (measured: identical
//! recall and distance evaluations, 245 µs instead of 835 µs per query at 10k x 512, ef 96).
//! Its filtered search also never stops early when the filter rejects nodes, so a 10% filter
//! visits most of the graph. So after every insert batch the links of the nodes that changed
//! are copied here (u32 ids; layer 0 in one fixed-stride array), and queries walk this copy,
//! reading vectors from the space's contiguous store.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use crate::space::{MAX_LAYERS, PointRef, Scored};

/// The links of one node, read from hnsw_rs.
pub(crate) struct NodeLinks {
    pub id: u32,
    pub level: u8,
    /// `layers[l]`: neighbours at layer `l`, for `l` in `0..=level`.
    pub layers: Vec<Vec<u32>>,
}

impl NodeLinks {
    /// Reads a node's links (takes the node's read lock in hnsw_rs).
    pub fn read(point: &PointRef) -> NodeLinks {
        let level = point.get_point_id().0.min(MAX_LAYERS as u8 - 1);
        let mut layers: Vec<Vec<u32>> = point
            .get_neighborhood_id()
            .into_iter()
            .take(usize::from(level) + 1)
            .map(|l| l.into_iter().map(|n| n.d_id as u32).collect())
            .collect();
        layers.resize(usize::from(level) + 1, Vec::new());
        NodeLinks {
            id: point.get_origin_id() as u32,
            level,
            layers,
        }
    }
}

/// Links of every node of a graph, by graph id.
#[derive(Debug, Default)]
pub(crate) struct Links {
    /// Layer-0 slots per node (`2 * m` of the graph).
    stride: usize,
    /// `nodes * stride` neighbour ids.
    layer0: Vec<u32>,
    /// Number of used slots per node.
    len0: Vec<u16>,
    /// Layers 1.. (index `l - 1`): neighbours of the few nodes that reach them.
    upper: Vec<HashMap<u32, Box<[u32]>>>,
    /// Entry node: one of the nodes on the highest layer.
    entry: Option<(u32, u8)>,
}

/// Largest layer-0 list: `2 * m` for the largest `m` the configuration accepts.
const MAX_STRIDE: usize = 2 * crate::config::MAX_M;

impl Links {
    /// No nodes; layer-0 lists hold up to `2 * m` links (at most `2 * MAX_M`).
    pub fn new(m: usize) -> Links {
        Links {
            stride: (2 * m).clamp(1, MAX_STRIDE),
            layer0: Vec::new(),
            len0: Vec::new(),
            upper: (1..MAX_LAYERS).map(|_| HashMap::new()).collect(),
            entry: None,
        }
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.len0.len()
    }

    /// Grows to `nodes` nodes (new ones without links).
    pub fn grow(&mut self, nodes: usize) {
        if nodes > self.len0.len() {
            self.layer0.resize(nodes * self.stride, 0);
            self.len0.resize(nodes, 0);
        }
    }

    /// Replaces the links of a node (which must be below [`len`](Self::len)).
    pub fn set(&mut self, node: NodeLinks) {
        let id = node.id as usize;
        if id >= self.len0.len() {
            return;
        }
        let n = self.len0.len() as u32;
        for (l, list) in node.layers.into_iter().enumerate() {
            let list: Vec<u32> = list.into_iter().filter(|x| *x < n).collect();
            if l == 0 {
                let k = list.len().min(self.stride);
                let base = id * self.stride;
                self.layer0[base..base + k].copy_from_slice(&list[..k]);
                self.len0[id] = k as u16;
            } else if let Some(layer) = self.upper.get_mut(l - 1) {
                layer.insert(node.id, list.into_boxed_slice());
            }
        }
        if self.entry.is_none_or(|(_, top)| node.level > top) {
            self.entry = Some((node.id, node.level));
        }
    }

    /// Approximate bytes held.
    pub fn memory_bytes(&self) -> usize {
        self.layer0.capacity() * 4
            + self.len0.capacity() * 2
            + self
                .upper
                .iter()
                .flat_map(|m| m.values())
                .map(|v| v.len() * 4 + 48)
                .sum::<usize>()
    }

    /// Asks the CPU to start loading a node's layer-0 links (a hint; no effect on results).
    #[inline]
    fn prefetch_links(&self, id: u32) {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
            let base = self.layer0.as_ptr().wrapping_add(id as usize * self.stride);
            for line in 0..(self.stride * 4).div_ceil(64) {
                // SAFETY: prefetch never faults, whatever the address.
                unsafe { _mm_prefetch::<_MM_HINT_T0>(base.cast::<i8>().wrapping_add(line * 64)) };
            }
            // SAFETY: as above.
            unsafe {
                _mm_prefetch::<_MM_HINT_T0>(
                    self.len0.as_ptr().wrapping_add(id as usize).cast::<i8>(),
                )
            };
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = id;
    }

    fn neighbours0(&self, id: u32) -> &[u32] {
        let id = id as usize;
        let base = id * self.stride;
        let len = self.len0.get(id).copied().unwrap_or(0) as usize;
        self.layer0.get(base..base + len).unwrap_or(&[])
    }

    /// HNSW search: greedy descent through the upper layers, then a best-first walk of layer 0
    /// keeping the `ef` nearest nodes that pass `accept` (tombstones and filters are checked
    /// here, inside the walk; rejected nodes are still traversed). Returns them best first.
    ///
    /// `distance(id)` is `1 - cosine` to the query.
    ///
    /// `prefetch(id)` asks for a vector to be loaded into the cache: each neighbour is
    /// prefetched `ahead` neighbours before it is scored, so a few vectors are always on their
    /// way from memory while one is scored (the walk is bound by memory latency once the
    /// vectors outgrow the cache). Prefetching all of a node's neighbours at once fills the
    /// CPU's miss buffers and stalls instead: measured at 100k x 512, ef 32, `ahead` 4 gave
    /// 7.7k queries/s, everything at once 5.9k, no prefetch 4.9k.
    #[allow(clippy::too_many_arguments)]
    pub fn search(
        &self,
        ef: usize,
        visited: &mut Visited,
        distance: impl Fn(u32) -> f32,
        prefetch: impl Fn(u32),
        ahead: usize,
        accept: impl Fn(u32) -> bool,
    ) -> Vec<Scored> {
        let Some((mut cur, top)) = self.entry else {
            return Vec::new();
        };
        let mut d_cur = distance(cur);
        for layer in (1..=usize::from(top)).rev() {
            let Some(map) = self.upper.get(layer - 1) else {
                continue;
            };
            loop {
                let mut moved = false;
                if let Some(list) = map.get(&cur) {
                    for &n in list.iter() {
                        let d = distance(n);
                        if d < d_cur {
                            d_cur = d;
                            cur = n;
                            moved = true;
                        }
                    }
                }
                if !moved {
                    break;
                }
            }
        }
        visited.reset(self.len());
        visited.insert(cur);
        // Candidates: nearest first. Results: farthest on top.
        let mut candidates: BinaryHeap<Reverse<Dist>> = BinaryHeap::with_capacity(ef * 2);
        let mut results: BinaryHeap<Dist> = BinaryHeap::with_capacity(ef + 1);
        candidates.push(Reverse(Dist(d_cur, cur)));
        if accept(cur) {
            results.push(Dist(d_cur, cur));
        }
        while let Some(Reverse(Dist(d, c))) = candidates.pop() {
            if results.len() >= ef && results.peek().is_some_and(|w| d > w.0) {
                break;
            }
            // The next node to expand: start loading its links while this one is scored.
            if let Some(Reverse(Dist(_, next))) = candidates.peek() {
                self.prefetch_links(*next);
            }
            // First the unvisited neighbours (prefetching their vectors), then their distances.
            let mut fresh = std::mem::take(&mut visited.fresh);
            fresh.clear();
            for &n in self.neighbours0(c) {
                if visited.insert(n) {
                    fresh.push(n);
                }
            }
            for &n in fresh.iter().take(ahead) {
                prefetch(n);
            }
            for (i, &n) in fresh.iter().enumerate() {
                if let Some(&later) = fresh.get(i + ahead) {
                    prefetch(later);
                }
                let dn = distance(n);
                if results.len() < ef || results.peek().is_some_and(|w| dn < w.0) {
                    candidates.push(Reverse(Dist(dn, n)));
                    if accept(n) {
                        results.push(Dist(dn, n));
                        if results.len() > ef {
                            results.pop();
                        }
                    }
                }
            }
            visited.fresh = fresh;
        }
        let mut out: Vec<Scored> = results
            .into_iter()
            .map(|Dist(d, id)| Scored((1.0 - d).clamp(-1.0, 1.0), id as usize))
            .collect();
        out.sort();
        out
    }
}

/// A distance and a node, ordered by distance then id.
#[derive(Debug, Clone, Copy)]
struct Dist(f32, u32);

impl PartialEq for Dist {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == std::cmp::Ordering::Equal
    }
}
impl Eq for Dist {}
impl PartialOrd for Dist {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Dist {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0).then(self.1.cmp(&other.1))
    }
}

/// Visited marks for one search, reused across searches (an epoch per node, so resetting is
/// free except when the epoch counter wraps).
#[derive(Debug, Default)]
pub(crate) struct Visited {
    /// One byte per node (100 KB per 100k nodes, so the marks stay in the L2 cache); cleared
    /// once every 255 searches when the epoch wraps.
    marks: Vec<u8>,
    epoch: u8,
    /// The unvisited neighbours of the node being expanded.
    fresh: Vec<u32>,
}

impl Visited {
    fn reset(&mut self, nodes: usize) {
        if self.marks.len() < nodes {
            self.marks.resize(nodes, 0);
        }
        self.epoch = self.epoch.wrapping_add(1);
        if self.epoch == 0 {
            self.marks.fill(0);
            self.epoch = 1;
        }
    }

    /// Marks a node; false if it was already marked in this search (or out of range).
    fn insert(&mut self, id: u32) -> bool {
        match self.marks.get_mut(id as usize) {
            Some(m) if *m != self.epoch => {
                *m = self.epoch;
                true
            }
            _ => false,
        }
    }
}
