//! Inserting (linking) nodes: HNSW's insertion with the neighbour-selection heuristic, safe to
//! run on many threads at once.

use std::sync::atomic::{AtomicU32, Ordering};

use crate::graph::Graph;
use crate::search::{Dist, QueryDistance, SearchScratch};

/// Distances between stored nodes, as insertion needs them (smaller is closer). Implemented by
/// whatever holds the vectors (f32, quantised codes, ...).
pub trait Vectors: Sync {
    /// Distance between nodes `a` and `b`.
    fn distance(&self, a: u32, b: u32) -> f32;

    /// Asks the CPU to start loading node `id`'s vector (a hint).
    fn prefetch(&self, _id: u32) {}

    /// Neighbours to prefetch ahead while scoring (see [`QueryDistance::prefetch_ahead`]).
    fn prefetch_ahead(&self) -> usize {
        4
    }
}

/// Node `q` as the query of its own insertion.
struct NodeQuery<'a, V: Vectors> {
    vectors: &'a V,
    q: u32,
}

impl<V: Vectors> QueryDistance for NodeQuery<'_, V> {
    #[inline]
    fn distance(&self, id: u32) -> f32 {
        self.vectors.distance(self.q, id)
    }
    #[inline]
    fn prefetch(&self, id: u32) {
        self.vectors.prefetch(id);
    }
    fn prefetch_ahead(&self) -> usize {
        self.vectors.prefetch_ahead()
    }
}

impl Graph {
    /// Links node `q` (already pushed, its vector available through `vectors`): finds its
    /// `ef_construction` nearest nodes on each of its layers, keeps a diverse subset of them
    /// (the heuristic of Malkov & Yashunin, algorithm 4, as hnswlib and faiss apply it) as its
    /// neighbours, and adds `q` to each of theirs, pruning a full list with the same heuristic.
    ///
    /// Safe to call for different nodes on many threads at once, and while others search. Each
    /// node must be inserted once.
    pub fn insert(&self, q: u32, vectors: &impl Vectors, scratch: &mut SearchScratch) {
        if q as usize >= self.len() {
            return;
        }
        let level = self.level(q);
        let query = NodeQuery { vectors, q };
        let mut entry = self.entry();
        // A node that becomes the new top holds the entry lock for its whole insertion, so two
        // such nodes never race (hnswlib does the same; it is rare: one node in m^level).
        let mut top_guard = None;
        if entry.is_none_or(|(_, top)| level > top) {
            let guard = self.entry_lock.lock();
            entry = self.entry();
            match entry {
                None => {
                    self.set_entry(q, level);
                    return;
                }
                Some((_, top)) if level > top => top_guard = Some(guard),
                Some(_) => drop(guard),
            }
        }
        let Some((ep, top)) = entry else {
            return;
        };
        let (mut cur, mut d_cur) = self.descend(scratch, ep, top, level, |id| query.distance(id));
        let ef = self.config.ef_construction;
        let mut ids = Vec::with_capacity(self.m0);
        for l in (0..=level.min(top)).rev() {
            self.walk(scratch, l, cur, d_cur, ef, Some(q), &query, |_| true);
            let found = Graph::take_results(scratch);
            // The next layer's walk starts from the nearest node found that has its lower
            // lists (see `descend`), else from where this one started.
            if let Some(&Dist(d, n)) = found.iter().find(|f| self.reached_bottom(f.1)) {
                cur = n;
                d_cur = d;
            }
            let candidates: Vec<(Dist, bool)> = found.iter().map(|&f| (f, false)).collect();
            let (mut chosen, mut checked) = self.select(&candidates, self.capacity(l), vectors);
            {
                let _own = self.lock(q);
                // Another thread may already have linked its own new node into `q`'s list
                // at this layer (it reached `q` through the layer above, linked a moment
                // ago): keep those links rather than overwrite them, or that node can lose
                // its only in-link and become unreachable.
                scratch.neighbours.clear();
                self.neighbours_into(q, l, &mut scratch.neighbours);
                let extra: Vec<Dist> = scratch
                    .neighbours
                    .iter()
                    .filter(|x| !chosen.iter().any(|c| c.1 == **x))
                    .map(|&x| Dist(vectors.distance(q, x), x))
                    .collect();
                if !extra.is_empty() {
                    let mut all: Vec<(Dist, bool)> =
                        chosen.iter().chain(&extra).map(|&c| (c, false)).collect();
                    all.sort_by_key(|c| c.0);
                    (chosen, checked) = self.select(&all, self.capacity(l), vectors);
                }
                ids.clear();
                ids.extend(chosen.iter().map(|d| d.1));
                self.store_list(q, l, &ids, checked);
            }
            for &Dist(d, n) in &chosen {
                self.add_link(n, q, d, l, vectors, scratch);
            }
        }
        if top_guard.is_some() {
            self.set_entry(q, level);
        }
    }

    /// The neighbour-selection heuristic over `candidates` (ascending by distance to the node,
    /// each marked checked or not): a candidate is kept if it is closer to the node than to
    /// every candidate kept before it, up to `cap`. Two checked candidates (ids that passed at
    /// their list's last prune) passed against each other then, so that pair is not compared
    /// again (see [`add_link`](Self::add_link)). Fewer candidates than `cap` are all kept (as hnswlib does). With
    /// [`GraphConfig::keep_pruned`](crate::GraphConfig::keep_pruned) the slots the heuristic
    /// leaves free are filled with the nearest candidates it rejected (the paper's
    /// `keepPrunedConnections`): on small or tightly clustered data the heuristic alone keeps so
    /// few links that a node can lose every in-link and become unreachable.
    ///
    /// Returns the kept candidates, those that passed the heuristic first (ascending), then
    /// the rest, and how many passed (0 when all were kept unchecked).
    fn select(
        &self,
        candidates: &[(Dist, bool)],
        cap: usize,
        vectors: &impl Vectors,
    ) -> (Vec<Dist>, usize) {
        if candidates.len() <= cap {
            return (candidates.iter().map(|c| c.0).collect(), 0);
        }
        let mut chosen: Vec<(Dist, bool)> = Vec::with_capacity(cap);
        let mut pruned: Vec<Dist> = Vec::new();
        for &(c, checked) in candidates {
            if chosen.len() >= cap {
                break;
            }
            if chosen
                .iter()
                .filter(|s| !(checked && s.1))
                .all(|s| vectors.distance(c.1, s.0.1) >= c.0)
            {
                chosen.push((c, checked));
            } else if self.config.keep_pruned {
                pruned.push(c);
            }
        }
        let passed = chosen.len();
        let mut kept: Vec<Dist> = chosen.into_iter().map(|c| c.0).collect();
        if self.config.keep_pruned && kept.len() < cap {
            // Candidates never examined (after `cap` were chosen) cannot be needed here.
            kept.extend(pruned.into_iter().take(cap - kept.len()));
        }
        (kept, passed)
    }

    /// Adds `q` (at distance `d` from `n`) to `n`'s list at `level`, pruning a full list with
    /// the selection heuristic (as [`select`](Self::select) does, fillers included).
    ///
    /// hnswlib and faiss re-run the heuristic over the whole list here: `O(cap^2)` node-to-node
    /// distances (about 500 at `2m = 32` on high-dimensional data, where most ids pass), and a
    /// new node adds itself to up to `2m` lists, so that was 80% of an insert's distances. The
    /// result here is the same at a fraction of the cost: a list's head counts the ids that
    /// passed the heuristic when it was last pruned, and two of those passed against each
    /// other then, so only pairs with an unchecked id (`q`, ids appended since, fillers) are
    /// compared again. Lucene's `NeighborArray` keeps the same checked/unchecked split.
    fn add_link(
        &self,
        n: u32,
        q: u32,
        d: f32,
        level: u8,
        vectors: &impl Vectors,
        scratch: &mut SearchScratch,
    ) {
        let _guard = self.lock(n);
        if self.try_append(n, level, q) {
            return;
        }
        scratch.neighbours.clear();
        let checked = self.neighbours_checked_into(n, level, &mut scratch.neighbours);
        if scratch.neighbours.contains(&q) {
            return;
        }
        let list = &scratch.neighbours;
        let links = &mut scratch.links;
        links.clear();
        // `n`'s neighbours are rows scattered in memory: load a few ahead (as the walk does).
        let ahead = vectors.prefetch_ahead().max(1);
        for &x in list.iter().take(ahead) {
            vectors.prefetch(x);
        }
        for (i, &x) in list.iter().enumerate() {
            if let Some(&later) = list.get(i + ahead) {
                vectors.prefetch(later);
            }
            links.push((Dist(vectors.distance(n, x), x), i < checked));
        }
        links.push((Dist(d, q), false));
        links.sort_by_key(|l| l.0);
        let (kept, passed) = self.select(links, self.capacity(level), vectors);
        scratch.neighbours.clear();
        scratch.neighbours.extend(kept.iter().map(|k| k.1));
        self.store_list(n, level, &scratch.neighbours, passed);
    }

    /// Inserts nodes `first..first + count` on `threads` threads (at least one); each thread
    /// keeps its own scratch.
    pub fn insert_range(&self, first: u32, count: u32, threads: usize, vectors: &impl Vectors) {
        let next = AtomicU32::new(first);
        let end = first.saturating_add(count);
        let run = || {
            let mut scratch = SearchScratch::new();
            loop {
                let id = next.fetch_add(1, Ordering::Relaxed);
                if id >= end {
                    break;
                }
                self.insert(id, vectors, &mut scratch);
            }
        };
        let threads = threads.clamp(1, 64);
        if threads == 1 || count < 64 {
            run();
        } else {
            std::thread::scope(|s| {
                for _ in 1..threads {
                    s.spawn(run);
                }
                run();
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::GraphConfig;

    /// Unit vectors in a few clusters (xorshift; no dependency).
    struct Rows {
        dim: usize,
        data: Vec<f32>,
    }

    impl Rows {
        fn new(n: usize, dim: usize, seed: u64) -> Rows {
            let mut s = seed | 1;
            let mut next = move || {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s >> 11) as f32 / (1u64 << 53) as f32 - 0.5
            };
            let centres: Vec<Vec<f32>> =
                (0..8).map(|_| (0..dim).map(|_| next()).collect()).collect();
            let mut data = Vec::with_capacity(n * dim);
            for i in 0..n {
                let c = &centres[i % centres.len()];
                let mut v: Vec<f32> = c.iter().map(|x| x + 0.3 * next()).collect();
                let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
                v.iter_mut().for_each(|x| *x /= norm);
                data.extend(v);
            }
            Rows { dim, data }
        }
    }

    impl Vectors for Rows {
        fn distance(&self, a: u32, b: u32) -> f32 {
            let (a, b) = (a as usize * self.dim, b as usize * self.dim);
            let dot: f32 = self.data[a..a + self.dim]
                .iter()
                .zip(&self.data[b..b + self.dim])
                .map(|(x, y)| x * y)
                .sum();
            1.0 - dot
        }
    }

    /// What lets a prune skip pairs of checked ids: in every list, each checked id is at least
    /// as far from every nearer checked id as from the list's owner. A wrong checked count (an
    /// appended or filler id counted as checked) breaks it; so would a prune that kept an id
    /// the heuristic rejects.
    #[test]
    fn checked_ids_of_every_list_pass_the_heuristic_against_each_other() {
        for (dim, threads) in [(8, 1), (32, 1), (32, 2)] {
            let rows = Rows::new(3_000, dim, 7 + dim as u64);
            let mut graph = Graph::new(GraphConfig::default().m(6)).unwrap();
            graph.push_nodes(3_000).unwrap();
            graph.insert_range(0, 3_000, threads, &rows);
            let (mut pruned, mut checked_pairs) = (0, 0);
            for n in 0..3_000u32 {
                for level in 0..=graph.level(n) {
                    let mut ids = Vec::new();
                    let checked = graph.neighbours_checked_into(n, level, &mut ids);
                    if checked > 0 && ids.len() == graph.capacity(level) {
                        pruned += 1;
                    }
                    let mut kept: Vec<Dist> = ids[..checked]
                        .iter()
                        .map(|&x| Dist(rows.distance(n, x), x))
                        .collect();
                    kept.sort();
                    for (i, far) in kept.iter().enumerate() {
                        for near in &kept[..i] {
                            checked_pairs += 1;
                            assert!(
                                rows.distance(far.1, near.1) >= far.0,
                                "dim {dim}: node {n} layer {level}: checked {} fails against {}",
                                far.1,
                                near.1
                            );
                        }
                    }
                }
            }
            assert!(
                pruned > 100 && checked_pairs > 1_000,
                "{pruned} {checked_pairs}"
            );
        }
    }
}
