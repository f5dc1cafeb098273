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
            let mut chosen = self.select(&found, self.capacity(l), vectors);
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
                    let mut all = chosen;
                    all.extend(extra);
                    all.sort();
                    chosen = self.select(&all, self.capacity(l), vectors);
                }
                ids.clear();
                ids.extend(chosen.iter().map(|d| d.1));
                self.store_neighbours(q, l, &ids);
            }
            for &Dist(d, n) in &chosen {
                self.add_link(n, q, d, l, vectors, scratch);
            }
        }
        if top_guard.is_some() {
            self.set_entry(q, level);
        }
    }

    /// The neighbour-selection heuristic over `candidates` (ascending by distance to the node):
    /// a candidate is kept if it is closer to the node than to every candidate kept before it,
    /// up to `cap`. Fewer candidates than `cap` are all kept (as hnswlib does). With
    /// [`GraphConfig::keep_pruned`](crate::GraphConfig::keep_pruned) the slots the heuristic
    /// leaves free are filled with the nearest candidates it rejected (the paper's
    /// `keepPrunedConnections`): on small or tightly clustered data the heuristic alone keeps so
    /// few links that a node can lose every in-link and become unreachable.
    fn select(&self, candidates: &[Dist], cap: usize, vectors: &impl Vectors) -> Vec<Dist> {
        if candidates.len() <= cap {
            return candidates.to_vec();
        }
        let mut chosen: Vec<Dist> = Vec::with_capacity(cap);
        let mut pruned: Vec<Dist> = Vec::new();
        for &c in candidates {
            if chosen.len() >= cap {
                break;
            }
            if chosen.iter().all(|s| vectors.distance(c.1, s.1) >= c.0) {
                chosen.push(c);
            } else if self.config.keep_pruned {
                pruned.push(c);
            }
        }
        if self.config.keep_pruned && chosen.len() < cap {
            // Candidates never examined (after `cap` were chosen) cannot be needed here.
            chosen.extend(pruned.into_iter().take(cap - chosen.len()));
            chosen.sort();
        }
        chosen
    }

    /// Adds `q` (at distance `d` from `n`) to `n`'s list at `level`, pruning a full list.
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
        self.neighbours_into(n, level, &mut scratch.neighbours);
        if scratch.neighbours.contains(&q) {
            return;
        }
        let mut candidates: Vec<Dist> = scratch
            .neighbours
            .iter()
            .map(|&x| Dist(vectors.distance(n, x), x))
            .collect();
        candidates.push(Dist(d, q));
        candidates.sort();
        let chosen = self.select(&candidates, self.capacity(level), vectors);
        let ids: Vec<u32> = chosen.iter().map(|d| d.1).collect();
        self.store_neighbours(n, level, &ids);
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
