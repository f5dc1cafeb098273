//! What one handle wrote and deleted recently, for Amazon OpenSearch Serverless.
//!
//! Serverless makes writes searchable within about 60 s and has no refresh, and documents can
//! be found only by searching (their ids are the service's). So that a handle replaces and
//! deletes what it wrote a moment ago, and does not show what it just deleted, it remembers:
//!
//! - per group (an asset) and key (a record key, or the asset itself for the catalog), the
//!   service id of the document it wrote last, with a value (the catalog keeps the record);
//! - the service ids it deleted (tombstones), until searches no longer return them;
//! - the groups it removed, until their deletes are visible.
//!
//! Entries go when [`flush`](crossmodal_core::VectorIndex::flush) has seen them become visible,
//! or after the visibility time-out (the service has made them visible by then); at most
//! [`MAX_ENTRIES`] are kept (the oldest go first). Clones of a handle share one memory.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Most written entries plus tombstones one handle remembers.
pub(crate) const MAX_ENTRIES: usize = 200_000;

#[derive(Debug, Clone)]
pub(crate) struct Written<V> {
    pub(crate) id: String,
    pub(crate) value: V,
    at: Instant,
}

#[derive(Debug)]
struct Inner<V> {
    groups: HashMap<String, HashMap<String, Written<V>>>,
    removed: HashMap<String, Instant>,
    tombstones: HashMap<String, Instant>,
    written: usize,
}

/// The shared memory of recent writes (see the module documentation).
#[derive(Debug, Clone)]
pub(crate) struct Recent<V> {
    inner: Arc<Mutex<Inner<V>>>,
    keep: Duration,
}

impl<V: Clone> Recent<V> {
    /// A memory that forgets entries after `keep`.
    pub(crate) fn new(keep: Duration) -> Self {
        Recent {
            inner: Arc::new(Mutex::new(Inner {
                groups: HashMap::new(),
                removed: HashMap::new(),
                tombstones: HashMap::new(),
                written: 0,
            })),
            keep,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner<V>> {
        // Nothing panics while holding the lock; a poisoned one still holds consistent maps.
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.expire(self.keep);
        inner
    }

    /// Records that this handle wrote document `id` for `key` of `group`.
    pub(crate) fn wrote(&self, group: &str, key: &str, id: String, value: V) {
        let mut inner = self.lock();
        inner.removed.remove(group);
        let entry = Written {
            id,
            value,
            at: Instant::now(),
        };
        let previous = inner
            .groups
            .entry(group.to_string())
            .or_default()
            .insert(key.to_string(), entry);
        if previous.is_none() {
            inner.written += 1;
        }
        inner.cap();
    }

    /// Records that this handle deleted the documents `ids`.
    pub(crate) fn deleted<'a>(&self, ids: impl IntoIterator<Item = &'a String>) {
        let mut inner = self.lock();
        let now = Instant::now();
        for id in ids {
            inner.tombstones.insert(id.clone(), now);
        }
        inner.cap();
    }

    /// Forgets what this handle wrote for `group` and remembers it removed the group: until its
    /// deletes are visible, searches may still show its documents.
    pub(crate) fn removed(&self, group: &str) {
        let mut inner = self.lock();
        if let Some(keys) = inner.groups.remove(group) {
            inner.written = inner.written.saturating_sub(keys.len());
        }
        inner.removed.insert(group.to_string(), Instant::now());
    }

    /// Whether this handle removed `group` (and wrote nothing for it since).
    pub(crate) fn is_removed(&self, group: &str) -> bool {
        self.lock().removed.contains_key(group)
    }

    /// This handle's last document for `key` of `group`.
    pub(crate) fn latest(&self, group: &str, key: &str) -> Option<Written<V>> {
        self.lock().groups.get(group)?.get(key).cloned()
    }

    /// Every document id this handle wrote last for the keys of `group`.
    pub(crate) fn ids_of_group(&self, group: &str) -> Vec<String> {
        self.lock()
            .groups
            .get(group)
            .map(|keys| keys.values().map(|w| w.id.clone()).collect())
            .unwrap_or_default()
    }

    /// Whether this handle deleted document `id`.
    pub(crate) fn is_deleted(&self, id: &str) -> bool {
        self.lock().tombstones.contains_key(id)
    }

    /// Whether a search hit is outdated for this handle: deleted by it, in a group it removed,
    /// or a key it has written a newer document for.
    pub(crate) fn is_outdated(&self, group: &str, key: &str, id: &str) -> bool {
        let inner = self.lock();
        if inner.tombstones.contains_key(id) || inner.removed.contains_key(group) {
            return true;
        }
        inner
            .groups
            .get(group)
            .and_then(|keys| keys.get(key))
            .is_some_and(|w| w.id != id)
    }

    /// Ids written and ids deleted that searches have not been seen to reflect yet.
    pub(crate) fn pending(&self) -> (Vec<String>, Vec<String>) {
        let inner = self.lock();
        let written = inner
            .groups
            .values()
            .flat_map(|keys| keys.values().map(|w| w.id.clone()))
            .collect();
        let deleted = inner.tombstones.keys().cloned().collect();
        (written, deleted)
    }

    /// Forgets written ids searches now return and deleted ids they no longer return.
    pub(crate) fn confirm(&self, visible: &HashSet<String>, gone: &HashSet<String>) {
        let mut inner = self.lock();
        let mut dropped = 0;
        for keys in inner.groups.values_mut() {
            let before = keys.len();
            keys.retain(|_, w| !visible.contains(&w.id));
            dropped += before - keys.len();
        }
        inner.groups.retain(|_, keys| !keys.is_empty());
        inner.written = inner.written.saturating_sub(dropped);
        inner.tombstones.retain(|id, _| !gone.contains(id));
        if inner.tombstones.is_empty() {
            inner.removed.clear();
        }
    }

    /// Entries remembered (written plus tombstones).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        let inner = self.lock();
        inner.written + inner.tombstones.len()
    }
}

impl<V> Inner<V> {
    fn expire(&mut self, keep: Duration) {
        let fresh = |at: &Instant| at.elapsed() < keep;
        let mut dropped = 0;
        for keys in self.groups.values_mut() {
            let before = keys.len();
            keys.retain(|_, w| fresh(&w.at));
            dropped += before - keys.len();
        }
        if dropped > 0 {
            self.groups.retain(|_, keys| !keys.is_empty());
            self.written = self.written.saturating_sub(dropped);
        }
        self.tombstones.retain(|_, at| fresh(at));
        self.removed.retain(|_, at| fresh(at));
    }

    /// Drops the oldest tenth when more than [`MAX_ENTRIES`] are remembered.
    fn cap(&mut self) {
        let total = self.written + self.tombstones.len();
        if total <= MAX_ENTRIES {
            return;
        }
        let mut ages: Vec<Instant> = self
            .groups
            .values()
            .flat_map(|keys| keys.values().map(|w| w.at))
            .chain(self.tombstones.values().copied())
            .collect();
        ages.sort_unstable();
        let Some(cut) = ages.get(total / 10).copied() else {
            return;
        };
        tracing::warn!(
            remembered = total,
            "more recent Serverless writes than this handle remembers; forgetting the oldest \
             (a rewrite of those keys within the visibility window may leave a duplicate that \
             reads repair)"
        );
        let mut dropped = 0;
        for keys in self.groups.values_mut() {
            let before = keys.len();
            keys.retain(|_, w| w.at > cut);
            dropped += before - keys.len();
        }
        self.groups.retain(|_, keys| !keys.is_empty());
        self.written = self.written.saturating_sub(dropped);
        self.tombstones.retain(|_, at| *at > cut);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_deletes_and_removals_are_remembered_until_confirmed() {
        let r: Recent<u32> = Recent::new(Duration::from_secs(60));
        r.wrote("a", "a:visual:0", "id1".into(), 1);
        r.wrote("a", "a:audio:0", "id2".into(), 2);
        assert_eq!(r.latest("a", "a:visual:0").unwrap().id, "id1");
        // A rewrite of the key replaces the entry; the old id becomes a tombstone.
        r.wrote("a", "a:visual:0", "id3".into(), 3);
        r.deleted(&["id1".to_string()]);
        assert!(r.is_outdated("a", "a:visual:0", "id1"));
        assert!(!r.is_outdated("a", "a:visual:0", "id3"));
        let mut ids = r.ids_of_group("a");
        ids.sort();
        assert_eq!(ids, ["id2", "id3"]);
        assert_eq!(r.len(), 3);
        let (w, d) = r.pending();
        assert_eq!((w.len(), d), (2, vec!["id1".to_string()]));
        r.removed("a");
        assert!(r.is_removed("a") && r.is_outdated("a", "a:audio:0", "id2"));
        assert!(r.ids_of_group("a").is_empty());
        // Once searches reflect it all, nothing is left.
        r.confirm(&HashSet::new(), &HashSet::from(["id1".to_string()]));
        assert_eq!(r.len(), 0);
        assert!(!r.is_removed("a"));
    }

    #[test]
    fn entries_expire_after_the_visibility_time_out() {
        let r: Recent<()> = Recent::new(Duration::from_millis(20));
        r.wrote("a", "k", "id".into(), ());
        r.deleted(&["old".to_string()]);
        std::thread::sleep(Duration::from_millis(40));
        assert!(r.latest("a", "k").is_none());
        assert!(!r.is_deleted("old"));
        assert_eq!(r.len(), 0);
    }
}
