//! Best-first search over a [`Graph`]: greedy descent through the upper layers, then the
//! `ef`-bounded walk of the bottom layer, with a caller's acceptance test inside the walk.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

use crate::graph::Graph;

/// The distance from the query to stored nodes, as a search sees it (smaller is closer).
pub trait QueryDistance {
    /// Distance from the query to node `id`.
    fn distance(&self, id: u32) -> f32;

    /// Asks the CPU to start loading node `id`'s vector (a hint; no effect on results).
    fn prefetch(&self, _id: u32) {}

    /// How many neighbours ahead of the one being scored to prefetch: a few vectors on their
    /// way from memory while one is scored. Prefetching all of a node's neighbours at once fills
    /// the CPU's miss buffers and stalls instead (measured at 100k x 512: 4 ahead 7.7k
    /// queries/s, all at once 5.9k, none 4.9k).
    fn prefetch_ahead(&self) -> usize {
        4
    }
}

/// A node with its distance to the query.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Neighbour {
    /// Distance to the query (smaller is closer).
    pub distance: f32,
    /// The node.
    pub id: u32,
}

/// Ordered by distance, then id (a total order: NaN sorts last).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Dist(pub f32, pub u32);

impl PartialEq for Dist {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Dist {}
impl PartialOrd for Dist {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Dist {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0).then(self.1.cmp(&other.1))
    }
}

/// Visited marks: one byte per node with an epoch, so clearing is free except when the epoch
/// wraps (every 255 searches). 100 KB per 100k nodes: the marks stay in the L2 cache.
#[derive(Debug, Default)]
pub(crate) struct Visited {
    marks: Vec<u8>,
    epoch: u8,
}

impl Visited {
    pub(crate) fn reset(&mut self, nodes: usize) {
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
    #[inline]
    pub(crate) fn insert(&mut self, id: u32) -> bool {
        match self.marks.get_mut(id as usize) {
            Some(m) if *m != self.epoch => {
                *m = self.epoch;
                true
            }
            _ => false,
        }
    }
}

/// Reusable buffers of one searching (or inserting) thread. Keep one per thread: allocating
/// them per search costs more than a small search.
#[derive(Debug, Default)]
pub struct SearchScratch {
    pub(crate) visited: Visited,
    candidates: BinaryHeap<Reverse<Dist>>,
    results: BinaryHeap<Dist>,
    fresh: Vec<u32>,
    pub(crate) neighbours: Vec<u32>,
    /// An overflowing list being pruned: its ids by distance, each marked checked or not.
    pub(crate) links: Vec<(Dist, bool)>,
    /// Distance evaluations of the last search (a load-independent measure of its cost).
    pub distances: u64,
}

impl SearchScratch {
    /// Empty buffers.
    pub fn new() -> SearchScratch {
        SearchScratch::default()
    }
}

impl Graph {
    /// The `ef` nearest nodes that pass `accept`, best first.
    ///
    /// Greedy descent through the upper layers from the entry node, then a best-first walk of
    /// layer 0 keeping the `ef` nearest *accepted* nodes: rejected nodes are still traversed
    /// (so a filter or tombstones never disconnect the graph), and while fewer than `ef` nodes
    /// are accepted every neighbour stays a candidate, so the walk widens by itself until it
    /// holds `ef` accepted nodes or runs out of candidates. Empty if nothing is linked.
    pub fn search(
        &self,
        scratch: &mut SearchScratch,
        ef: usize,
        query: &impl QueryDistance,
        accept: impl Fn(u32) -> bool,
    ) -> Vec<Neighbour> {
        scratch.distances = 0;
        let Some((entry, top)) = self.entry() else {
            return Vec::new();
        };
        let (cur, d_cur) = self.descend(scratch, entry, top, 0, |id| query.distance(id));
        self.walk(scratch, 0, cur, d_cur, ef.max(1), None, query, accept);
        Graph::take_results(scratch)
            .into_iter()
            .map(|Dist(distance, id)| Neighbour { distance, id })
            .collect()
    }

    /// Greedy descent from `entry` on layer `top` down to layer `floor + 1`: at each layer move
    /// to the closest neighbour until none is closer. Returns the node reached and its distance.
    ///
    /// A neighbour whose insertion has not reached layer 0 yet (another thread is linking it)
    /// is passed over: its lower lists are still empty, so a descent that moved to it would
    /// start the next layer's walk from a node without links and find nothing else. A node
    /// inserted then would get that one neighbour, and lose its only in-link at the next prune.
    pub(crate) fn descend(
        &self,
        scratch: &mut SearchScratch,
        entry: u32,
        top: u8,
        floor: u8,
        distance: impl Fn(u32) -> f32,
    ) -> (u32, f32) {
        let mut cur = entry;
        let mut d_cur = distance(cur);
        scratch.distances += 1;
        let mut level = top;
        while level > floor {
            loop {
                let mut moved = false;
                scratch.neighbours.clear();
                self.neighbours_into(cur, level, &mut scratch.neighbours);
                for &n in &scratch.neighbours {
                    let d = distance(n);
                    scratch.distances += 1;
                    if d < d_cur && self.reached_bottom(n) {
                        d_cur = d;
                        cur = n;
                        moved = true;
                    }
                }
                if !moved {
                    break;
                }
            }
            level -= 1;
        }
        (cur, d_cur)
    }

    /// The best-first walk of one layer from `start` (see [`search`](Self::search)): keeps the
    /// `ef` nearest nodes passing `accept` in `scratch.results`. `skip` (the node being
    /// inserted, if any) is marked visited up front, so it is never scored or returned.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn walk(
        &self,
        scratch: &mut SearchScratch,
        level: u8,
        start: u32,
        d_start: f32,
        ef: usize,
        skip: Option<u32>,
        query: &impl QueryDistance,
        accept: impl Fn(u32) -> bool,
    ) {
        let ahead = query.prefetch_ahead().max(1);
        scratch.visited.reset(self.len());
        scratch.visited.insert(start);
        if let Some(s) = skip {
            scratch.visited.insert(s);
        }
        scratch.candidates.clear();
        scratch.results.clear();
        scratch.candidates.push(Reverse(Dist(d_start, start)));
        if Some(start) != skip && accept(start) {
            scratch.results.push(Dist(d_start, start));
        }
        let mut fresh = std::mem::take(&mut scratch.fresh);
        let mut list = std::mem::take(&mut scratch.neighbours);
        while let Some(Reverse(Dist(d, c))) = scratch.candidates.pop() {
            if scratch.results.len() >= ef && scratch.results.peek().is_some_and(|w| d > w.0) {
                break;
            }
            // The next node to expand: start loading its links while this one is scored.
            if level == 0
                && let Some(Reverse(Dist(_, next))) = scratch.candidates.peek()
            {
                self.prefetch_links(*next);
            }
            list.clear();
            self.neighbours_into(c, level, &mut list);
            fresh.clear();
            fresh.extend(list.iter().copied().filter(|n| scratch.visited.insert(*n)));
            for &n in fresh.iter().take(ahead) {
                query.prefetch(n);
            }
            for (i, &n) in fresh.iter().enumerate() {
                if let Some(&later) = fresh.get(i + ahead) {
                    query.prefetch(later);
                }
                let dn = query.distance(n);
                scratch.distances += 1;
                if scratch.results.len() < ef || scratch.results.peek().is_some_and(|w| dn < w.0) {
                    scratch.candidates.push(Reverse(Dist(dn, n)));
                    if accept(n) {
                        scratch.results.push(Dist(dn, n));
                        if scratch.results.len() > ef {
                            scratch.results.pop();
                        }
                    }
                }
            }
        }
        scratch.fresh = fresh;
        scratch.neighbours = list;
    }

    /// The walk's results, ascending by distance (drains them).
    pub(crate) fn take_results(scratch: &mut SearchScratch) -> Vec<Dist> {
        let mut out: Vec<Dist> = scratch.results.drain().collect();
        out.sort();
        out
    }
}
