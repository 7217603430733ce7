//! What the hot paths keep in memory between requests — the secret keys
//! that authenticate the backend, and what the proxy needs to call with a
//! connection — and the one rule that keeps it true: every entry names the
//! rows it was read from ([`Topic`]), and every write to those rows drops it.
//!
//! The store announces each write ([`Changes::changed`]) after its commit. In
//! this process that drops the entries at once. Other replicas (PostgreSQL)
//! hear it through `NOTIFY`, sent inside the writing transaction and so
//! delivered when it commits (`store::listen`); while a replica cannot
//! listen, its caches are off and empty. A load that raced a write is not
//! kept: a [`Ticket`] taken before the read is refused once anything changed
//! since. And nothing is kept longer than [`MAX_AGE`] in any case.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, Instant};

/// The longest any entry is used without being read again.
pub const MAX_AGE: Duration = Duration::from_secs(60);
/// Entries per cache; a full cache is emptied and fills again with what is used.
pub const CAPACITY: usize = 10_000;

/// What a cache entry was read from, and what a write changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Topic {
    /// A connection: its row, its credentials, its tokens, its deletion.
    Connection(String),
    /// An integration: its settings, its client, its deletion.
    Integration(String),
    /// A project's secret keys.
    SecretKeys(String),
    /// Anything: every entry goes.
    Everything,
}

impl Topic {
    /// The topic as a `NOTIFY` payload.
    pub fn payload(&self) -> String {
        match self {
            Topic::Connection(id) => format!("connection:{id}"),
            Topic::Integration(id) => format!("integration:{id}"),
            Topic::SecretKeys(project) => format!("secret_keys:{project}"),
            Topic::Everything => "everything".into(),
        }
    }

    /// A payload read back; anything unknown is everything, to be safe.
    pub fn parse(payload: &str) -> Topic {
        match payload.split_once(':') {
            Some(("connection", id)) => Topic::Connection(id.into()),
            Some(("integration", id)) => Topic::Integration(id.into()),
            Some(("secret_keys", project)) => Topic::SecretKeys(project.into()),
            _ => Topic::Everything,
        }
    }
}

trait Evict: Send + Sync {
    fn evict(&self, topic: &Topic);
}

/// Where writes are announced, shared by the store and every cache.
pub struct Changes {
    /// Bumped by every change; a [`Ticket`] remembers it.
    seq: AtomicU64,
    /// Whether entries may be kept and used (off while a replica cannot hear
    /// the others).
    live: AtomicBool,
    caches: Mutex<Vec<Weak<dyn Evict>>>,
}

/// When a load began, in changes.
#[derive(Debug, Clone, Copy)]
pub struct Ticket(u64);

impl Changes {
    /// `live` is false where other processes write and cannot yet be heard.
    pub fn new(live: bool) -> Arc<Changes> {
        Arc::new(Changes {
            seq: AtomicU64::new(0),
            live: AtomicBool::new(live),
            caches: Mutex::new(Vec::new()),
        })
    }

    /// Drops every entry read from `topic`.
    pub fn changed(&self, topic: &Topic) {
        self.seq.fetch_add(1, Ordering::SeqCst);
        let caches: Vec<Arc<dyn Evict>> = match self.caches.lock() {
            Ok(mut caches) => {
                caches.retain(|c| c.strong_count() > 0);
                caches.iter().filter_map(Weak::upgrade).collect()
            }
            Err(_) => return,
        };
        for cache in caches {
            cache.evict(topic);
        }
    }

    /// Turns every cache off and empties it: changes may be missed from now.
    pub fn suspend(&self) {
        self.live.store(false, Ordering::SeqCst);
        self.changed(&Topic::Everything);
    }

    /// Turns the caches on again, empty: changes are heard from now.
    pub fn resume(&self) {
        self.changed(&Topic::Everything);
        self.live.store(true, Ordering::SeqCst);
    }

    pub fn is_live(&self) -> bool {
        self.live.load(Ordering::SeqCst)
    }

    fn ticket(&self) -> Ticket {
        Ticket(self.seq.load(Ordering::SeqCst))
    }
}

struct Entry<V> {
    value: V,
    topics: Vec<Topic>,
    loaded: Instant,
}

/// Values by key, each dropped when a topic it names changes.
pub struct Cache<V> {
    changes: Arc<Changes>,
    /// Hashed with a per-process seed: only values read from rows are
    /// kept, so no caller can fill it with keys chosen to collide.
    entries: RwLock<HashMap<String, Entry<V>, foldhash::fast::RandomState>>,
}

impl<V: Clone + Send + Sync + 'static> Cache<V> {
    pub fn new(changes: &Arc<Changes>) -> Arc<Cache<V>> {
        let cache = Arc::new(Cache {
            changes: changes.clone(),
            entries: RwLock::new(HashMap::default()),
        });
        let weak: Weak<dyn Evict> = Arc::downgrade(&(cache.clone() as Arc<dyn Evict>));
        if let Ok(mut caches) = changes.caches.lock() {
            caches.push(weak);
        }
        cache
    }

    /// The value kept for `key`, if the caches are on and it is young enough.
    pub fn get(&self, key: &str) -> Option<V> {
        if !self.changes.is_live() {
            return None;
        }
        let entries = self.entries.read().ok()?;
        let entry = entries.get(key)?;
        (entry.loaded.elapsed() < MAX_AGE).then(|| entry.value.clone())
    }

    /// Taken before reading what [`Cache::put`] will keep.
    pub fn ticket(&self) -> Ticket {
        self.changes.ticket()
    }

    /// Keeps `value`, read from `topics`, unless anything changed since
    /// `ticket` (the read may be older than that change) or the caches are off.
    pub fn put(&self, ticket: Ticket, key: &str, value: V, topics: Vec<Topic>) {
        let Ok(mut entries) = self.entries.write() else {
            return;
        };
        // Checked under the lock: a change after this point finds the entry and drops it.
        if !self.changes.is_live() || self.changes.ticket().0 != ticket.0 {
            return;
        }
        if entries.len() >= CAPACITY && !entries.contains_key(key) {
            entries.clear();
        }
        entries.insert(
            key.to_string(),
            Entry {
                value,
                topics,
                loaded: Instant::now(),
            },
        );
    }

    pub fn len(&self) -> usize {
        self.entries.read().map(|e| e.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<V: Send + Sync> Evict for Cache<V> {
    fn evict(&self, topic: &Topic) {
        if let Ok(mut entries) = self.entries.write() {
            match topic {
                Topic::Everything => entries.clear(),
                _ => entries.retain(|_, entry| !entry.topics.contains(topic)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topics(connection: &str) -> Vec<Topic> {
        vec![
            Topic::Connection(connection.into()),
            Topic::Integration("int_1".into()),
        ]
    }

    #[test]
    fn a_change_drops_the_entries_read_from_it_and_only_those() {
        let changes = Changes::new(true);
        let cache: Arc<Cache<u32>> = Cache::new(&changes);
        cache.put(cache.ticket(), "a", 1, topics("conn_a"));
        cache.put(cache.ticket(), "b", 2, topics("conn_b"));
        assert_eq!((cache.get("a"), cache.get("b")), (Some(1), Some(2)));

        changes.changed(&Topic::Connection("conn_a".into()));
        assert_eq!((cache.get("a"), cache.get("b")), (None, Some(2)));
        changes.changed(&Topic::SecretKeys("prj_1".into()));
        assert_eq!(cache.get("b"), Some(2));
        changes.changed(&Topic::Integration("int_1".into()));
        assert_eq!(cache.get("b"), None);
    }

    #[test]
    fn a_load_that_raced_a_change_is_not_kept() {
        let changes = Changes::new(true);
        let cache: Arc<Cache<u32>> = Cache::new(&changes);
        let ticket = cache.ticket();
        // The row is read here, then written by someone else…
        changes.changed(&Topic::Connection("conn_other".into()));
        cache.put(ticket, "a", 1, topics("conn_a"));
        assert_eq!(cache.get("a"), None);
        cache.put(cache.ticket(), "a", 1, topics("conn_a"));
        assert_eq!(cache.get("a"), Some(1));
    }

    #[test]
    fn a_cache_that_cannot_hear_changes_keeps_and_gives_nothing() {
        let changes = Changes::new(false);
        let cache: Arc<Cache<u32>> = Cache::new(&changes);
        cache.put(cache.ticket(), "a", 1, topics("conn_a"));
        assert_eq!(cache.get("a"), None);
        changes.resume();
        cache.put(cache.ticket(), "a", 1, topics("conn_a"));
        assert_eq!(cache.get("a"), Some(1));
        changes.suspend();
        assert_eq!(cache.get("a"), None);
        assert!(cache.is_empty(), "suspending empties the cache");
    }

    #[test]
    fn payloads_read_back_as_their_topic_and_unknown_ones_as_everything() {
        for topic in [
            Topic::Connection("conn_1".into()),
            Topic::Integration("int_1".into()),
            Topic::SecretKeys("prj_1".into()),
            Topic::Everything,
        ] {
            assert_eq!(Topic::parse(&topic.payload()), topic);
        }
        assert_eq!(Topic::parse("something:else"), Topic::Everything);
    }

    #[test]
    fn a_full_cache_is_emptied_rather_than_grown() {
        let changes = Changes::new(true);
        let cache: Arc<Cache<usize>> = Cache::new(&changes);
        for n in 0..CAPACITY {
            cache.put(cache.ticket(), &n.to_string(), n, vec![]);
        }
        assert_eq!(cache.len(), CAPACITY);
        cache.put(cache.ticket(), "one more", 0, vec![]);
        assert_eq!(cache.len(), 1);
    }
}
