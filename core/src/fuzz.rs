//! Fuzzing on the stable toolchain, inside the test suite: mutated inputs seeded from valid
//! encodings, a bounded number of cases per target, a liveness bound per input, and allocation
//! measured against the input's size.
//!
//! The workspace's fuzz targets (media probes, the storage engine's files, the embedding-cache
//! payload, Marengo output, OpenSearch answers, multipart uploads) are ordinary tests built on
//! this module (feature `fuzz`; **not a stable part of the public API**: it exists for the
//! workspace's own tests and may change in any release).
//!
//! - [`mutated`]: a [`proptest`] strategy that takes one of the seeds (a fixture, a valid
//!   encoding) and applies 1 to 8 mutations to it: bit flips, bytes set to boundary values,
//!   32- and 64-bit fields overwritten with sizes that claim too much (big- and little-endian),
//!   insertions, removals, truncation, duplicated ranges. Failing cases shrink to the fewest
//!   mutations.
//! - [`cases`]: the case count of a target: its default, or `CROSSMODAL_FUZZ_CASES` for a
//!   longer run (`CROSSMODAL_FUZZ_CASES=100000 cargo test -p crossmodal-core fuzz_`).
//! - [`run`]: runs a target with a fixed seed (`CROSSMODAL_FUZZ_SEED` changes it), no failure
//!   files, and prints how many inputs it tried and how their outcomes spread.
//! - [`within`]: runs one input on a worker thread and fails the case if it does not finish in
//!   time (a liveness guard against hangs, never a performance assertion).
//! - [`CountingAllocator`] and [`measure`]: a test binary installs the allocator with
//!   `#[global_allocator]`; `measure` then reports the peak bytes a closure held on its thread,
//!   which a target compares with the input's size.
//!
//! ```
//! use crossmodal_core::fuzz;
//! use proptest::prelude::*;
//!
//! let seeds = vec![b"RIFF\x04\0\0\0WAVE".to_vec()];
//! let tally = fuzz::run("doc-example", fuzz::cases(16), fuzz::mutated(seeds), |(_, bytes)| {
//!     let outcome = crossmodal_core::media::probe(&bytes).map(|_| ()).map_err(|e| e.kind());
//!     prop_assert!(outcome.is_err() || bytes.len() > 12);
//!     Ok(format!("{outcome:?}"))
//! });
//! assert_eq!(tally.inputs, 16);
//! ```

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};

/// Environment variable that sets every target's case count (a longer run).
pub const CASES_VAR: &str = "CROSSMODAL_FUZZ_CASES";
/// Environment variable that changes the runner's seed (default: a fixed seed, so a run is
/// reproducible).
pub const SEED_VAR: &str = "CROSSMODAL_FUZZ_SEED";

/// The number of cases a target runs: `CROSSMODAL_FUZZ_CASES` when set, else `default`.
pub fn cases(default: u32) -> u32 {
    std::env::var(CASES_VAR)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(default)
}

/// Values that break size and offset arithmetic.
const INTERESTING_U32: [u32; 12] = [
    0,
    1,
    7,
    8,
    0x7F,
    0xFF,
    0xFFFF,
    0x7FFF_FFFF,
    0x8000_0000,
    0xFFFF_FFFE,
    0xFFFF_FFFF,
    0x0010_0000,
];
const INTERESTING_U8: [u8; 8] = [0, 1, 0x7F, 0x80, 0xFE, 0xFF, b'0', b' '];

/// A position in an input, resolved against the input's length when it is applied (so a
/// mutation list fits any seed): `Pos(0)` is the first byte, `Pos(u64::MAX)` the last.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pos(pub u64);

impl Pos {
    /// The position in an input of `len` bytes (`0` for an empty one).
    pub fn index(self, len: usize) -> usize {
        ((u128::from(self.0) * len as u128) >> 64) as usize
    }
}

fn pos() -> impl Strategy<Value = Pos> {
    any::<u64>().prop_map(Pos)
}

/// One change to a seed, at [`Pos`]itions relative to its length.
#[derive(Debug, Clone)]
pub enum Mutation {
    /// Flip one bit.
    Flip(Pos, u8),
    /// Set a byte to any value.
    Set(Pos, u8),
    /// Set a byte to a boundary value.
    SetInteresting(Pos, usize),
    /// Overwrite 4 bytes with a boundary value, big-endian or little-endian.
    Word32(Pos, usize, bool),
    /// Overwrite 8 bytes with a huge value, big-endian or little-endian.
    Word64(Pos, bool),
    /// Insert bytes.
    Insert(Pos, Vec<u8>),
    /// Remove up to `n` bytes.
    Remove(Pos, usize),
    /// Keep only a prefix.
    Truncate(Pos),
    /// Copy a range elsewhere (repeats a chunk, a box, a record).
    Duplicate(Pos, usize, Pos),
}

/// One [`Mutation`], any kind (weighted towards bit flips and size fields).
pub fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        3 => (pos(), 0u8..8).prop_map(|(i, b)| Mutation::Flip(i, b)),
        2 => (pos(), any::<u8>()).prop_map(|(i, v)| Mutation::Set(i, v)),
        2 => (pos(), 0..INTERESTING_U8.len()).prop_map(|(i, v)| Mutation::SetInteresting(i, v)),
        3 => (pos(), 0..INTERESTING_U32.len(), any::<bool>())
            .prop_map(|(i, v, be)| Mutation::Word32(i, v, be)),
        1 => (pos(), any::<bool>()).prop_map(|(i, be)| Mutation::Word64(i, be)),
        1 => (pos(), proptest::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(i, b)| Mutation::Insert(i, b)),
        1 => (pos(), 1usize..64).prop_map(|(i, n)| Mutation::Remove(i, n)),
        1 => pos().prop_map(Mutation::Truncate),
        1 => (pos(), 1usize..128, pos())
            .prop_map(|(f, n, t)| Mutation::Duplicate(f, n, t)),
    ]
}

fn overwrite(bytes: &mut [u8], at: usize, with: &[u8]) {
    for (slot, b) in bytes.iter_mut().skip(at).zip(with) {
        *slot = *b;
    }
}

/// Applies `mutations` to a copy of `seed`.
pub fn apply(seed: &[u8], mutations: &[Mutation]) -> Vec<u8> {
    let mut out = seed.to_vec();
    for m in mutations {
        let len = out.len();
        // Positions in an empty input resolve to 0.
        let at = |i: &Pos| i.index(len);
        match m {
            Mutation::Flip(i, bit) => {
                let p = at(i);
                if let Some(b) = out.get_mut(p) {
                    *b ^= 1 << (bit % 8);
                }
            }
            Mutation::Set(i, v) => {
                let p = at(i);
                if let Some(b) = out.get_mut(p) {
                    *b = *v;
                }
            }
            Mutation::SetInteresting(i, v) => {
                let p = at(i);
                let v = INTERESTING_U8.get(*v).copied().unwrap_or(0);
                if let Some(b) = out.get_mut(p) {
                    *b = v;
                }
            }
            Mutation::Word32(i, v, be) => {
                let p = at(i);
                let v = INTERESTING_U32.get(*v).copied().unwrap_or(0);
                let word = if *be {
                    v.to_be_bytes()
                } else {
                    v.to_le_bytes()
                };
                overwrite(&mut out, p, &word);
            }
            Mutation::Word64(i, be) => {
                let p = at(i);
                let v = u64::MAX - 7;
                let word = if *be {
                    v.to_be_bytes()
                } else {
                    v.to_le_bytes()
                };
                overwrite(&mut out, p, &word);
            }
            Mutation::Insert(i, bytes) => {
                let p = i.index(len + 1);
                let tail = out.split_off(p.min(len));
                out.extend_from_slice(bytes);
                out.extend_from_slice(&tail);
            }
            Mutation::Remove(i, n) => {
                let p = at(i).min(len);
                let end = p.saturating_add(*n).min(len);
                out.drain(p..end);
            }
            Mutation::Truncate(i) => {
                let p = at(i);
                out.truncate(p);
            }
            Mutation::Duplicate(from, n, to) => {
                let f = at(from).min(len);
                let end = f.saturating_add(*n).min(len);
                let chunk: Vec<u8> = out.get(f..end).map(<[u8]>::to_vec).unwrap_or_default();
                let t = at(to).min(out.len());
                let tail = out.split_off(t);
                out.extend_from_slice(&chunk);
                out.extend_from_slice(&tail);
            }
        }
    }
    out
}

/// A strategy over mutated copies of `seeds`: `(which seed, the mutated bytes)`.
///
/// # Panics
///
/// If `seeds` is empty (a target without seeds is a bug in the test).
pub fn mutated(seeds: Vec<Vec<u8>>) -> impl Strategy<Value = (usize, Vec<u8>)> {
    assert!(!seeds.is_empty(), "a fuzz target needs at least one seed");
    let seeds = std::sync::Arc::new(seeds);
    (0..seeds.len(), proptest::collection::vec(mutation(), 1..8)).prop_map(move |(i, muts)| {
        let seed = seeds.get(i).map(Vec::as_slice).unwrap_or_default();
        (i, apply(seed, &muts))
    })
}

/// One change to a JSON document, at a [`Pos`] among its values (containers included).
#[derive(Debug, Clone)]
pub enum JsonMutation {
    /// Replace the value with a hostile one (an index into the list of replacements).
    Replace(Pos, usize),
    /// Remove the value from its object or array.
    Remove(Pos),
    /// Repeat an array's element (or an object's value under new keys) `n` times.
    Repeat(Pos, usize),
    /// Mutate the serialised bytes afterwards.
    Bytes(Vec<Mutation>),
}

/// Values that break parsers of JSON answers: wrong types, extreme numbers, huge strings,
/// deep nesting, the words of the formats in the wrong places.
fn hostile_value(i: usize) -> serde_json::Value {
    use serde_json::{Value, json};
    match i {
        0 => Value::Null,
        1 => json!(true),
        2 => json!(0),
        3 => json!(-1),
        4 => json!(1e308),
        5 => json!(-1e308),
        6 => json!(u64::MAX),
        7 => json!(i64::MIN),
        8 => json!(0.5),
        9 => json!(""),
        10 => Value::String("x".repeat(100_000)),
        11 => json!([]),
        12 => json!({}),
        13 => (0..200).fold(json!(1), |v, _| json!([v])),
        14 => json!("NaN"),
        15 => json!("visual"),
        16 => json!("audio"),
        17 => json!("asset"),
        18 => json!(4_294_967_296u64),
        19 => json!([0.1, 0.2]),
        20 => json!({"type": "x", "reason": "y"}),
        21 => json!(1e-320),
        22 => json!("12.5"),
        _ => json!(429),
    }
}

const HOSTILE_VALUES: usize = 24;

/// A [`JsonMutation`].
pub fn json_mutation() -> impl Strategy<Value = JsonMutation> {
    prop_oneof![
        5 => (pos(), 0..HOSTILE_VALUES).prop_map(|(p, v)| JsonMutation::Replace(p, v)),
        2 => pos().prop_map(JsonMutation::Remove),
        1 => (pos(), 1usize..300).prop_map(|(p, n)| JsonMutation::Repeat(p, n)),
        1 => proptest::collection::vec(mutation(), 1..4).prop_map(JsonMutation::Bytes),
    ]
}

fn json_paths(v: &serde_json::Value, path: &mut Vec<PathStep>, out: &mut Vec<Vec<PathStep>>) {
    out.push(path.clone());
    match v {
        serde_json::Value::Object(m) => {
            for (k, x) in m {
                path.push(PathStep::Key(k.clone()));
                json_paths(x, path, out);
                path.pop();
            }
        }
        serde_json::Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                path.push(PathStep::At(i));
                json_paths(x, path, out);
                path.pop();
            }
        }
        _ => {}
    }
}

#[derive(Debug, Clone)]
enum PathStep {
    Key(String),
    At(usize),
}

fn json_at<'v>(
    v: &'v mut serde_json::Value,
    path: &[PathStep],
) -> Option<&'v mut serde_json::Value> {
    let mut cur = v;
    for step in path {
        cur = match step {
            PathStep::Key(k) => cur.get_mut(k.as_str())?,
            PathStep::At(i) => cur.get_mut(*i)?,
        };
    }
    Some(cur)
}

/// Applies JSON mutations to a copy of `doc` and serialises it (byte mutations last).
pub fn apply_json(doc: &serde_json::Value, mutations: &[JsonMutation]) -> Vec<u8> {
    let mut v = doc.clone();
    let mut byte_mutations = Vec::new();
    for m in mutations {
        let mut paths = Vec::new();
        json_paths(&v, &mut Vec::new(), &mut paths);
        let pick = |p: &Pos| paths.get(p.index(paths.len())).cloned().unwrap_or_default();
        match m {
            JsonMutation::Replace(p, i) => {
                let path = pick(p);
                if let Some(slot) = json_at(&mut v, &path) {
                    *slot = hostile_value(*i);
                }
            }
            JsonMutation::Remove(p) => {
                let path = pick(p);
                if let Some((last, parent)) = path.split_last()
                    && let Some(container) = json_at(&mut v, parent)
                {
                    match (container, last) {
                        (serde_json::Value::Object(m), PathStep::Key(k)) => {
                            m.remove(k);
                        }
                        (serde_json::Value::Array(a), PathStep::At(i)) if *i < a.len() => {
                            a.remove(*i);
                        }
                        _ => {}
                    }
                }
            }
            JsonMutation::Repeat(p, n) => {
                let path = pick(p);
                if let Some(slot) = json_at(&mut v, &path) {
                    match slot {
                        serde_json::Value::Array(a) => {
                            if let Some(first) = a.first().cloned() {
                                a.extend(std::iter::repeat_n(first, *n));
                            }
                        }
                        serde_json::Value::Object(m) => {
                            if let Some((k, x)) =
                                m.iter().next().map(|(k, x)| (k.clone(), x.clone()))
                            {
                                for i in 0..*n {
                                    m.insert(format!("{k}{i}"), x.clone());
                                }
                            }
                        }
                        _ => {}
                    }
                }
            }
            JsonMutation::Bytes(b) => byte_mutations.extend(b.iter().cloned()),
        }
    }
    let bytes = serde_json::to_vec(&v).unwrap_or_default();
    apply(&bytes, &byte_mutations)
}

/// A strategy over mutated serialisations of `seeds`: `(which seed, the bytes)`.
///
/// # Panics
///
/// If `seeds` is empty.
pub fn json_mutated(seeds: Vec<serde_json::Value>) -> impl Strategy<Value = (usize, Vec<u8>)> {
    assert!(!seeds.is_empty(), "a fuzz target needs at least one seed");
    let seeds = std::sync::Arc::new(seeds);
    (
        0..seeds.len(),
        proptest::collection::vec(json_mutation(), 1..5),
    )
        .prop_map(move |(i, muts)| {
            let seed = seeds.get(i).cloned().unwrap_or_default();
            (i, apply_json(&seed, &muts))
        })
}

/// What a target's run tried.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    /// Inputs run (every case, the shrinking steps of a failure included).
    pub inputs: u64,
    /// How many inputs ended in each outcome (the labels the target returned).
    pub outcomes: BTreeMap<String, u64>,
}

impl fmt::Display for Tally {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} inputs", self.inputs)?;
        let mut sorted: Vec<(&String, &u64)> = self.outcomes.iter().collect();
        sorted.sort_by(|a, b| b.1.cmp(a.1));
        for (label, n) in sorted.iter().take(8) {
            write!(f, "; {n} {label}")?;
        }
        if sorted.len() > 8 {
            write!(f, "; {} other outcomes", sorted.len() - 8)?;
        }
        Ok(())
    }
}

/// Runs `target` on `cases` inputs drawn from `strategy`, with a fixed seed (or
/// `CROSSMODAL_FUZZ_SEED`) and no failure-persistence files. `target` returns a short label
/// of the outcome (e.g. the error kind) for the tally, or fails the case with
/// `prop_assert!`. A failing case is shrunk, then reported with a panic naming the target and
/// the minimal input.
pub fn run<S, F>(name: &str, cases: u32, strategy: S, target: F) -> Tally
where
    S: Strategy,
    S::Value: fmt::Debug,
    F: Fn(S::Value) -> Result<String, TestCaseError>,
{
    let seed = std::env::var(SEED_VAR)
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(0x5eed_c0de);
    let mut key = [0u8; 32];
    for (slot, b) in key.iter_mut().zip(seed.to_le_bytes().iter().cycle()) {
        *slot = *b;
    }
    let config = Config {
        cases,
        failure_persistence: None,
        // Shrinking is bounded so a failure is reported in reasonable time.
        max_shrink_iters: 2048,
        ..Config::default()
    };
    let mut runner =
        TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &key));
    let tally = Mutex::new(Tally::default());
    let inputs = AtomicU64::new(0);
    let result = runner.run(&strategy, |value| {
        inputs.fetch_add(1, Ordering::Relaxed);
        let label = target(value)?;
        if let Ok(mut t) = tally.lock() {
            *t.outcomes.entry(label).or_default() += 1;
        }
        Ok(())
    });
    let mut tally = tally.into_inner().unwrap_or_default();
    tally.inputs = inputs.load(Ordering::Relaxed);
    eprintln!("fuzz {name}: {tally}");
    if let Err(e) = result {
        panic!(
            "fuzz target {name} failed after {} inputs: {e}",
            tally.inputs
        );
    }
    tally
}

/// Runs `f` on a worker thread and waits at most `limit` for it: a liveness guard (an input
/// that makes a parser loop forever fails its case instead of hanging the suite). A panic in
/// `f` fails the case with the panic's message.
pub fn within<T: Send + 'static>(
    limit: Duration,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, TestCaseError> {
    let (tx, rx) = std::sync::mpsc::channel();
    let worker = std::thread::Builder::new()
        .name("fuzz-input".into())
        .spawn(move || {
            let _ = tx.send(f());
        })
        .map_err(|e| TestCaseError::fail(format!("could not start the worker thread: {e}")))?;
    match rx.recv_timeout(limit) {
        Ok(v) => {
            let _ = worker.join();
            Ok(v)
        }
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => Err(TestCaseError::fail(format!(
            "the input did not finish within {limit:?} (a hang)"
        ))),
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
            let why = match worker.join() {
                Err(payload) => payload
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_string())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".into()),
                Ok(()) => "the worker ended without an answer".into(),
            };
            Err(TestCaseError::fail(format!("the input panicked: {why}")))
        }
    }
}

/// The liveness bound [`within`] is given by the workspace's targets: far above what any
/// input needs on a loaded 2-core machine, far below "forever".
pub const LIVENESS: Duration = Duration::from_secs(20);

thread_local! {
    /// (bytes held now, the most held, whether this thread is being measured).
    static HELD: Cell<(usize, usize, bool)> = const { Cell::new((0, 0, false)) };
}

fn on_alloc(size: usize) {
    let _ = HELD.try_with(|h| {
        let (now, peak, on) = h.get();
        if on {
            let now = now.saturating_add(size);
            h.set((now, peak.max(now), on));
        }
    });
}

fn on_free(size: usize) {
    let _ = HELD.try_with(|h| {
        let (now, peak, on) = h.get();
        if on {
            h.set((now.saturating_sub(size), peak, on));
        }
    });
}

/// A global allocator that counts, per thread, the bytes held while [`measure`] runs (the
/// system allocator does the work). Install it in a test binary of its own:
///
/// ```ignore
/// #[global_allocator]
/// static ALLOC: crossmodal_core::fuzz::CountingAllocator = crossmodal_core::fuzz::CountingAllocator;
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct CountingAllocator;

// SAFETY: every call is forwarded to `System` with the caller's layout and pointer unchanged;
// the bookkeeping touches only a thread-local `Cell` (no allocation, no panic).
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        on_alloc(layout.size());
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract, which `System` shares.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        on_alloc(layout.size());
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        on_free(layout.size());
        // SAFETY: `ptr` was allocated by `System` (through this allocator) with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        on_alloc(new_size);
        on_free(layout.size());
        // SAFETY: as for `dealloc`; `new_size` is the caller's, checked by `System`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// Runs `f` on this thread and returns its result with the most bytes it held at once (what
/// it allocated and had not yet freed). Needs [`CountingAllocator`] as the binary's global
/// allocator; without it the figure is 0.
pub fn measure<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let before = HELD.try_with(|h| {
        let saved = h.get();
        h.set((0, 0, true));
        saved
    });
    let out = f();
    let peak = HELD
        .try_with(|h| {
            let (_, peak, _) = h.get();
            h.set(before.unwrap_or((0, 0, false)));
            peak
        })
        .unwrap_or(0);
    (out, peak)
}

/// Whether [`CountingAllocator`] is this binary's allocator (a 1 KiB allocation shows up).
pub fn counting_installed() -> bool {
    let (v, peak) = measure(|| std::hint::black_box(vec![0u8; 1024]));
    drop(v);
    peak >= 1024
}

thread_local! {
    static PANICS: Cell<u64> = const { Cell::new(0) };
}

static PANIC_HOOK: std::sync::Once = std::sync::Once::new();

/// Runs `f` and counts the panics raised on this thread while it ran, those a `catch_unwind`
/// inside `f` turned into errors included (a parser that converts a third-party panic into a
/// `Corrupt` error still had a crash worth knowing about). Installs, once, a panic hook that
/// counts and then calls the hook that was there before.
pub fn caught_panics<T>(f: impl FnOnce() -> T) -> (T, u64) {
    PANIC_HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let _ = PANICS.try_with(|p| p.set(p.get() + 1));
            previous(info);
        }));
    });
    let before = PANICS.try_with(Cell::get).unwrap_or(0);
    let out = f();
    let after = PANICS.try_with(Cell::get).unwrap_or(0);
    (out, after.saturating_sub(before))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mutations_apply_at_any_length() {
        let seed = b"0123456789".to_vec();
        let flip = apply(&seed, &[Mutation::Flip(Pos(0), 0)]);
        assert_eq!(flip.len(), 10);
        assert_ne!(flip, seed);
        let grown = apply(&seed, &[Mutation::Insert(Pos(u64::MAX), vec![1, 2])]);
        assert_eq!(grown.len(), 12);
        let cut = apply(&seed, &[Mutation::Remove(Pos(0), 64)]);
        assert!(cut.is_empty());
        // Everything still applies to an empty input.
        let all = [
            Mutation::Flip(Pos(u64::MAX / 10 * 3), 2),
            Mutation::Word32(Pos(u64::MAX / 10), 10, true),
            Mutation::Word64(Pos(u64::MAX / 10), false),
            Mutation::Duplicate(Pos(0), 5, Pos(u64::MAX / 10 * 9)),
            Mutation::Truncate(Pos(u64::MAX / 10 * 4)),
        ];
        assert!(apply(&[], &all).is_empty());
        let doc = serde_json::json!({"data": [{"a": 1}, {"a": 2}]});
        let repeated = apply_json(&doc, &[JsonMutation::Repeat(Pos(u64::MAX / 4), 3)]);
        let back: serde_json::Value = serde_json::from_slice(&repeated).unwrap();
        assert_eq!(back["data"].as_array().unwrap().len(), 5);
        let removed = apply_json(&doc, &[JsonMutation::Remove(Pos(u64::MAX / 10 * 3))]);
        assert_ne!(removed, serde_json::to_vec(&doc).unwrap());
        let word = apply(&seed, &[Mutation::Word32(Pos(0), 10, true)]);
        assert_eq!(&word[..4], &[0xFF, 0xFF, 0xFF, 0xFF]);
    }

    #[test]
    fn a_failing_target_is_reported_and_a_hang_is_caught() {
        let failed = std::panic::catch_unwind(|| {
            run("always-fails", 4, mutated(vec![vec![1, 2, 3]]), |_| {
                Err(TestCaseError::fail("no"))
            })
        });
        assert!(failed.is_err());
        let hang = within(Duration::from_millis(50), || {
            std::thread::sleep(Duration::from_secs(2))
        });
        assert!(hang.is_err());
        let panicked = within(Duration::from_secs(5), || panic!("boom"));
        let ((), caught) = caught_panics(|| {
            let _ = std::panic::catch_unwind(|| panic!("swallowed"));
        });
        assert_eq!(caught, 1);
        assert!(format!("{:?}", panicked.err()).contains("boom"));
        assert_eq!(within(Duration::from_secs(5), || 7).ok(), Some(7));
    }
}
