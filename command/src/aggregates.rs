//! Aggregate states this process already knows, so a command need not re-read and re-fold a
//! stream it has just read or written.
//!
//! A cached state may be stale: another process may have appended to the stream since. That
//! is safe for a decision that is *appended*, because the append carries the cached version
//! as its expected version: a stale state conflicts, the entry is forgotten, and the retry
//! reads the stream. It is not safe for an answer given without an append (a refusal, or
//! "nothing to do"): those are confirmed on the current state first
//! ([`handling::decide_on`](crate::handling::decide_on)).
//!
//! Events are immutable, so a state folded from versions `1..=v` of a stream stays exactly
//! that; catching up means folding the events after `v`.

use std::any::Any;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};

use events::StreamId;
use lru::LruCache;

use crate::handling::Loaded;

/// Streams kept by default (least recently used go first).
pub const DEFAULT_CAPACITY: usize = 100_000;

type Entry = Arc<dyn Any + Send + Sync>;

/// States by stream, least recently used evicted first. Cloning shares the cache.
#[derive(Clone)]
pub struct AggregateCache {
    entries: Option<Arc<Mutex<LruCache<StreamId, Entry>>>>,
}

impl Default for AggregateCache {
    fn default() -> Self {
        Self::new(DEFAULT_CAPACITY)
    }
}

impl std::fmt::Debug for AggregateCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AggregateCache").field("enabled", &self.entries.is_some()).finish()
    }
}

impl AggregateCache {
    /// A cache of at most `capacity` streams; 0 caches nothing (every command reads).
    pub fn new(capacity: usize) -> Self {
        Self { entries: NonZeroUsize::new(capacity).map(|c| Arc::new(Mutex::new(LruCache::new(c)))) }
    }

    fn with<T>(&self, f: impl FnOnce(&mut LruCache<StreamId, Entry>) -> T) -> Option<T> {
        let entries = self.entries.as_ref()?;
        // A panic while holding the lock cannot leave an entry half-written: take it anyway.
        let mut guard = entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        Some(f(&mut guard))
    }

    /// The state of `stream` as last seen by this process, if it is cached with this type.
    pub fn get<S: Clone + Send + Sync + 'static>(&self, stream: &StreamId) -> Option<Loaded<S>> {
        let entry = self.with(|entries| entries.get(stream).cloned()).flatten()?;
        entry.downcast_ref::<Loaded<S>>().cloned()
    }

    /// Keep `loaded` as the state of `stream`, unless a later version is already kept.
    pub fn put<S: Clone + Send + Sync + 'static>(&self, stream: &StreamId, loaded: Loaded<S>) {
        self.with(|entries| {
            let newer = entries
                .peek(stream)
                .and_then(|e| e.downcast_ref::<Loaded<S>>())
                .is_some_and(|kept| kept.version > loaded.version);
            if !newer {
                entries.put(stream.clone(), Arc::new(loaded));
            }
        });
    }

    /// Drop what is known of `stream` (after a conflict: it moved on elsewhere).
    pub fn forget(&self, stream: &StreamId) {
        self.with(|entries| entries.pop(stream));
    }

    /// How many streams are kept.
    pub fn len(&self) -> usize {
        self.with(|entries| entries.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loaded(state: &str, version: u64) -> Loaded<String> {
        Loaded { state: state.to_owned(), version, position: None }
    }

    #[test]
    fn keeps_the_latest_version_and_forgets_on_request() {
        let cache = AggregateCache::new(10);
        let stream = StreamId::new("cart", "b1");
        cache.put(&stream, loaded("v2", 2));
        cache.put(&stream, loaded("v1", 1));
        assert_eq!(cache.get::<String>(&stream).map(|l| l.state), Some("v2".to_owned()));
        cache.forget(&stream);
        assert!(cache.get::<String>(&stream).is_none());
    }

    #[test]
    fn a_state_of_another_type_is_not_returned() {
        let cache = AggregateCache::new(10);
        let stream = StreamId::new("cart", "b1");
        cache.put(&stream, loaded("v1", 1));
        assert!(cache.get::<u32>(&stream).is_none());
    }

    #[test]
    fn evicts_the_least_recently_used_and_zero_disables() {
        let cache = AggregateCache::new(2);
        let (a, b, c) = (StreamId::new("cart", "a"), StreamId::new("cart", "b"), StreamId::new("cart", "c"));
        cache.put(&a, loaded("a", 1));
        cache.put(&b, loaded("b", 1));
        let _ = cache.get::<String>(&a);
        cache.put(&c, loaded("c", 1));
        assert!(cache.get::<String>(&b).is_none());
        assert!(cache.get::<String>(&a).is_some());
        assert_eq!(cache.len(), 2);

        let off = AggregateCache::new(0);
        off.put(&a, loaded("a", 1));
        assert!(off.get::<String>(&a).is_none());
    }
}
