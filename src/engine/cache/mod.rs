//! The per-dialog key cache, in memory shared by every worker process of the SIP server.
//!
//! SIP servers initialise their modules in one process and then fork the
//! workers; the requests and responses of one dialog land in different workers.
//! [`SharedCache::create`] therefore makes a `MAP_SHARED | MAP_ANONYMOUS` mapping (inherited
//! across `fork`) holding a fixed-size hash table of [`DialogKey`] → content-encryption key,
//! guarded by a robust, process-shared `pthread_mutex_t`:
//!
//! - lookups are O(1) (chained hashing; the bucket is a SipHash of the dialog key under a random
//!   key drawn at creation, so nobody can aim Call-IDs at one bucket), eviction is O(1) (doubly
//!   linked LRU lists through the slots);
//! - entries expire `ttl_secs` after their last use (`ttl_secs == 0` disables expiry);
//! - **nothing unauthenticated changes an entry**: [`SharedCache::with_entry`] runs the caller's
//!   check (decrypt and authenticate a body under the cached key, verify a rotation proof) with
//!   the lock held, and only the verdict it returns counts a use, refreshes the entry or
//!   replaces its key ([`Verdict`]): check and change under one lock. [`SharedCache::insert`]
//!   never overwrites a live entry;
//! - eviction is a segmented LRU, so that a flood of new dialogs (anyone can wrap a key for
//!   the proxy's certificate) cannot push out the keys of calls in progress: a new entry is
//!   *probationary*; it becomes *protected* when its key authenticates an in-dialog message
//!   ([`Verdict::Used`]) or is rotated ([`Verdict::Replace`]). When the table is full, expired
//!   entries are dropped first, then the least recently used probationary entry; a protected
//!   entry is evicted only when no probationary entry is left. Protected entries are at most
//!   [`PROTECTED_PERCENT`]% of the capacity: promoting one more moves the least recently used
//!   protected entry back to the head of the probationary list (docs/SECURITY.md);
//! - every removed, evicted, expired or replaced key is zeroized in place;
//! - a worker killed while holding the lock does not block the others: the next locker gets
//!   `EOWNERDEAD`, marks the mutex consistent, and — if the dead worker was in the middle of a
//!   change — zeroizes the slots it was writing and rebuilds the indexes from the slots
//!   ([`CacheStats::lock_recoveries`] counts these). The same repair runs whenever a locker finds
//!   the table marked mid-change, however the last holder left it.
//!
//! Times are `CLOCK_REALTIME` seconds, the same in every process.
//!
//! Module layout: `shm` (the mapping and its layout), `lock` (the robust mutex, also used by
//! `engine::cluster`'s shared state) — the only places with `unsafe` — `table` (the table
//! logic, safe Rust over a typed view) and `replica` (what cluster replication needs: an entry
//! applied under the caller's check, live entries exported in batches).

pub(crate) mod lock;
mod replica;
mod shm;
mod table;

use std::time::{SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

pub use replica::{Apply, Batch};
use shm::Region;
pub use table::PROTECTED_PERCENT;

/// The largest CEK a slot holds (AES-256).
pub const MAX_CEK_LEN: usize = 32;
/// The largest capacity [`SharedCache::create`] accepts (about 420 MB of shared memory).
pub const MAX_CAPACITY: u32 = 4_000_000;

/// Identifies a dialog: SHA-256 over the length-prefixed Call-ID and the caller's tag,
/// `u32be(len(call_id)) || call_id || u32be(len(tag)) || tag`.
///
/// The same for requests and responses of the dialog (both carry the caller's From-tag).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct DialogKey([u8; 32]);

impl DialogKey {
    pub fn new(call_id: &[u8], tag: &[u8]) -> DialogKey {
        let mut h = Sha256::new();
        for field in [call_id, tag] {
            // SIP header values are far below 4 GiB; saturate rather than wrap if not.
            let len = u32::try_from(field.len()).unwrap_or(u32::MAX);
            h.update(len.to_be_bytes());
            h.update(field);
        }
        DialogKey(h.finalize().into())
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The dialog id as another node sent it (a cluster message carries the 32 bytes).
    pub fn from_bytes(bytes: [u8; 32]) -> DialogKey {
        DialogKey(bytes)
    }
}

/// The ids a dialog may be cached under, tried in order by the lookups that take several
/// ([`SharedCache::with_entry`], [`SharedCache::contains`], [`SharedCache::remove_any`]):
/// id `i`, or `None` past the last. An implementation may work an id out only when it is
/// asked for (`engine::proxy` hashes a message's To-tag id only when its From-tag id has no
/// entry); that then happens with the lock held, so it must be as cheap as one SHA-256.
pub trait DialogIds {
    /// Id `i` (0 first), or `None` when there are no more.
    fn id(&self, i: usize) -> Option<DialogKey>;
}

impl DialogIds for [DialogKey] {
    fn id(&self, i: usize) -> Option<DialogKey> {
        self.get(i).copied()
    }
}

impl<const N: usize> DialogIds for [DialogKey; N] {
    fn id(&self, i: usize) -> Option<DialogKey> {
        self.get(i).copied()
    }
}

impl DialogIds for Vec<DialogKey> {
    fn id(&self, i: usize) -> Option<DialogKey> {
        self.get(i).copied()
    }
}

/// Sizing of the cache, fixed at creation.
#[derive(Clone, Copy, Debug)]
pub struct CacheConfig {
    /// Number of entries (1..=[`MAX_CAPACITY`]).
    pub capacity: u32,
    /// Seconds an entry lives after its last use; 0 = no expiry.
    pub ttl_secs: u32,
}

/// A live entry as [`SharedCache::with_entry`] shows it to its check: borrowed from the shared
/// table for the duration of the check, with the lock held. Never copied out by the cache.
pub struct Entry<'a> {
    /// The caller's algorithm tag, stored as given.
    pub alg: u8,
    /// The dialog's content-encryption key.
    pub cek: &'a [u8],
    /// 1 for a new entry, +1 at every rotation.
    pub generation: u32,
    /// Unix seconds when this generation was stored.
    pub created_at: u64,
    /// Unix seconds of the last authenticated use (or store).
    pub last_used: u64,
    /// Authenticated uses of this generation.
    pub uses: u32,
}

/// What a check run by [`SharedCache::with_entry`] decided about the entry it was shown.
pub enum Verdict {
    /// Nothing happened that the entry should remember (a failed or refused message).
    Keep,
    /// The entry's key opened and authenticated a message: count a use, refresh, protect.
    Used,
    /// As [`Verdict::Used`] for a body known by its authentication tag: not counted again
    /// when it is the body counted last (a retransmission or a replay of it).
    Opened(BodyTag),
    /// A proven rotation: replace the key (generation + 1, uses 0, the old key zeroized).
    Replace {
        /// Algorithm tag of the new key.
        alg: u8,
        /// The new key (at most [`MAX_CEK_LEN`] bytes).
        cek: Zeroizing<Vec<u8>>,
    },
}

/// The authentication tag of an opened body (its GCM tag, zero-padded to 16 bytes): which
/// body counted as the last use of a dialog's key. Not secret: it travels in the body.
pub type BodyTag = [u8; 16];

/// What [`SharedCache::with_entry`] found.
pub struct Found<'a> {
    /// The position in the looked-up keys of the one whose entry this is.
    pub which: usize,
    /// The entry.
    pub entry: Entry<'a>,
}

/// Whether a lookup that finds nothing counts as a cache miss.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnMiss {
    /// An in-dialog body for a dialog with no key: counted.
    Count,
    /// Looking whether a dialog is known (a new dialog's first body): not counted.
    Ignore,
}

/// A copy of one entry (tests, tools); the cek is zeroized on drop.
pub struct CachedKey {
    /// The caller's algorithm tag, stored as given.
    pub alg: u8,
    pub cek: Zeroizing<Vec<u8>>,
    /// 1 for a new entry, +1 at every rotation.
    pub generation: u32,
    /// Unix seconds when this generation was stored.
    pub created_at: u64,
    /// Unix seconds of the last use (or store).
    pub last_used: u64,
    /// Authenticated uses since this generation was stored.
    pub uses: u32,
}

impl std::fmt::Debug for CachedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedKey")
            .field("alg", &self.alg)
            .field("cek", &format_args!("<{} bytes>", self.cek.len()))
            .field("generation", &self.generation)
            .field("created_at", &self.created_at)
            .field("last_used", &self.last_used)
            .field("uses", &self.uses)
            .finish()
    }
}

/// What [`SharedCache::insert`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stored {
    /// No live entry existed; generation 1 was stored.
    New { generation: u32 },
    /// The entry already held this alg + cek; nothing changed but its recency.
    Same { generation: u32 },
    /// The entry holds another key: nothing changed (a key is replaced only by a proven
    /// rotation, [`Verdict::Replace`]).
    Refused { generation: u32 },
}

/// Counters kept in shared memory (all processes together).
#[derive(Clone, Copy, Debug, Default)]
pub struct CacheStats {
    pub capacity: u64,
    pub entries: u64,
    pub hits: u64,
    pub misses: u64,
    pub inserts: u64,
    pub rotations: u64,
    pub evictions: u64,
    pub expirations: u64,
    pub removals: u64,
    pub lock_recoveries: u64,
    /// Entries now in the protected segment (used from the cache or rotated).
    pub protected: u64,
    /// Entries moved from probationary to protected.
    pub promotions: u64,
    /// Protected entries moved back to probationary because the segment was full.
    pub demotions: u64,
    /// Bodies opened again: the body last counted for its dialog (a retransmission or a
    /// replay), not counted as another use.
    pub repeats: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("cannot map the shared cache memory: {0}")]
    Mmap(#[source] std::io::Error),
    #[error("shared cache lock failed (errno {0})")]
    Lock(i32),
    #[error("cache capacity must be at least 1")]
    ZeroCapacity,
    #[error("cache capacity is larger than {MAX_CAPACITY}")]
    CapacityTooLarge,
    #[error("content-encryption key longer than {MAX_CEK_LEN} bytes")]
    KeyTooLong,
    #[error("the operating system's random number generator failed")]
    Rng,
}

/// Current `CLOCK_REALTIME` time in whole seconds.
pub(crate) fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The cache. Create it once before forking; every forked process uses its inherited copy.
pub struct SharedCache {
    region: Region,
}

impl SharedCache {
    /// Map and initialise the shared region. Call before fork (in the server's module initialisation).
    pub fn create(cfg: CacheConfig) -> Result<SharedCache, CacheError> {
        Ok(SharedCache {
            region: Region::create(cfg)?,
        })
    }

    /// Lock, repairing first if the previous holder died with the lock or left the table
    /// mid-change.
    fn locked(&self) -> Result<shm::TableGuard<'_>, CacheError> {
        let mut guard = self.region.lock()?;
        if guard.owner_died || guard.is_dirty() {
            guard.recover();
            guard.owner_died = false;
        }
        Ok(guard)
    }

    /// Runs `check` on the live entry of the first of `keys` that has one, with the lock held,
    /// and applies the [`Verdict`] it returns before unlocking: the check and the change happen
    /// under one lock. Returns `None` (and, with [`OnMiss::Count`], counts a miss) when no key
    /// has a live entry; expired entries met on the way are removed.
    ///
    /// The check runs with every other process of the server waiting for the lock: keep it to
    /// symmetric cryptography over one body, never an RSA operation or I/O.
    pub fn with_entry<K: DialogIds + ?Sized, R>(
        &self,
        keys: &K,
        on_miss: OnMiss,
        check: impl FnOnce(Found<'_>) -> (Verdict, R),
    ) -> Result<Option<R>, CacheError> {
        self.with_entry_at(keys, on_miss, now_secs(), check)
    }

    pub(crate) fn with_entry_at<K: DialogIds + ?Sized, R>(
        &self,
        keys: &K,
        on_miss: OnMiss,
        now: u64,
        check: impl FnOnce(Found<'_>) -> (Verdict, R),
    ) -> Result<Option<R>, CacheError> {
        let mut table = self.locked()?;
        let Some((which, idx)) = table.find_any(keys, now) else {
            if on_miss == OnMiss::Count {
                table.count_miss();
            }
            return Ok(None);
        };
        let (verdict, out) = check(Found {
            which,
            entry: table.entry(idx),
        });
        match verdict {
            Verdict::Keep => {}
            Verdict::Used => table.mark_used(idx, now),
            Verdict::Opened(body) => table.mark_opened(idx, now, &body),
            Verdict::Replace { alg, cek } => {
                if cek.len() > MAX_CEK_LEN {
                    return Err(CacheError::KeyTooLong);
                }
                table.replace(idx, alg, &cek, now);
            }
        }
        Ok(Some(out))
    }

    /// Which of `keys` (its position) has a live entry, if any. Copies nothing and changes
    /// nothing but removing expired entries.
    pub fn contains<K: DialogIds + ?Sized>(&self, keys: &K) -> Result<Option<usize>, CacheError> {
        Ok(self
            .locked()?
            .find_any(keys, now_secs())
            .map(|(which, _)| which))
    }

    /// A copy of a live entry without counting anything (tests, tools). An expired entry is
    /// removed and reported as absent.
    pub fn peek(&self, key: &DialogKey) -> Result<Option<CachedKey>, CacheError> {
        self.peek_at(key, now_secs())
    }

    pub(crate) fn peek_at(
        &self,
        key: &DialogKey,
        now: u64,
    ) -> Result<Option<CachedKey>, CacheError> {
        Ok(self.locked()?.peek(key, now))
    }

    /// Stores a new dialog's key: absent → `New{1}`; present with the same alg+cek → `Same`
    /// (only its recency is refreshed); present with another key → `Refused`, nothing changed.
    /// When full, expired entries are dropped first, else an entry is evicted by the
    /// segmented-LRU policy (zeroized).
    pub fn insert(&self, key: &DialogKey, alg: u8, cek: &[u8]) -> Result<Stored, CacheError> {
        self.insert_at(key, alg, cek, now_secs())
    }

    pub(crate) fn insert_at(
        &self,
        key: &DialogKey,
        alg: u8,
        cek: &[u8],
        now: u64,
    ) -> Result<Stored, CacheError> {
        if cek.len() > MAX_CEK_LEN {
            return Err(CacheError::KeyTooLong);
        }
        Ok(self.locked()?.insert(key, alg, cek, now))
    }

    /// Remove (zeroize) a dialog's entry. Returns whether there was one.
    pub fn remove(&self, key: &DialogKey) -> Result<bool, CacheError> {
        Ok(self.locked()?.remove(key))
    }

    /// Removes (and zeroizes) the live entry of the first of `keys` that has one, under one
    /// lock: which of `keys` it was, or `None` when none had a live entry.
    pub fn remove_any<K: DialogIds + ?Sized>(&self, keys: &K) -> Result<Option<usize>, CacheError> {
        let mut table = self.locked()?;
        let Some((which, _)) = table.find_any(keys, now_secs()) else {
            return Ok(None);
        };
        let Some(key) = keys.id(which) else {
            return Ok(None);
        };
        Ok(table.remove(&key).then_some(which))
    }

    pub fn stats(&self) -> Result<CacheStats, CacheError> {
        Ok(self.locked()?.stats())
    }

    /// A counter in the shared header that any process may bump (used for "reload the
    /// keys": each worker compares it with the value it last saw).
    pub fn epoch(&self) -> u64 {
        self.region
            .control()
            .epoch
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Increment the epoch; returns the new value.
    pub fn bump_epoch(&self) -> u64 {
        self.region
            .control()
            .epoch
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
            .wrapping_add(1)
    }

    /// Zeroize every slot (for shutdown; also done by Drop in the creating process).
    pub fn wipe(&self) -> Result<(), CacheError> {
        self.locked()?.wipe();
        Ok(())
    }

    /// Size of the shared mapping in bytes.
    pub fn shared_bytes(&self) -> usize {
        self.region.len()
    }

    /// Test support (feature `test-hooks`, never in a release build): take the lock and
    /// return WITHOUT releasing it, so a test can kill this process while it holds the lock.
    /// Any later call from this same process fails with `CacheError::Lock(EDEADLK)`.
    #[cfg(any(test, feature = "test-hooks"))]
    pub fn debug_lock_and_hold(&self) {
        if let Ok(guard) = self.locked() {
            std::mem::forget(guard);
        }
    }

    /// Test support (feature `test-hooks`): like
    /// [`debug_lock_and_hold`](Self::debug_lock_and_hold), but first leave the table as a
    /// worker killed in the middle of changing `key`'s entry would (dirty flag set, the slot
    /// half written, its bucket chain cut).
    #[cfg(any(test, feature = "test-hooks"))]
    pub fn debug_lock_dirty_and_hold(&self, key: &DialogKey) {
        if let Ok(mut guard) = self.locked() {
            guard.simulate_interrupted_mutation(key);
            std::mem::forget(guard);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(capacity: u32, ttl_secs: u32) -> SharedCache {
        SharedCache::create(CacheConfig { capacity, ttl_secs }).expect("create cache")
    }

    /// An authenticated use (what an opened in-dialog body does), then the entry as it is.
    fn use_at(c: &SharedCache, k: &DialogKey, now: u64) -> Option<CachedKey> {
        c.with_entry_at(&[*k], OnMiss::Count, now, |_| (Verdict::Used, ()))
            .unwrap()?;
        c.peek_at(k, now).unwrap()
    }

    /// A proven rotation to `cek`; the new generation, or None when the dialog has no entry.
    fn rotate_at(c: &SharedCache, k: &DialogKey, alg: u8, cek: &[u8], now: u64) -> Option<u32> {
        c.with_entry_at(&[*k], OnMiss::Ignore, now, |f| {
            let next = f.entry.generation + 1;
            let cek = Zeroizing::new(cek.to_vec());
            (Verdict::Replace { alg, cek }, next)
        })
        .unwrap()
    }

    fn dk(n: u32) -> DialogKey {
        DialogKey::new(format!("call-{n}@example.com").as_bytes(), b"tag")
    }

    fn slot_bytes(c: &SharedCache) -> Vec<u8> {
        let guard = c.locked().expect("lock");
        Region::slot_bytes(&guard)
    }

    /// Bytes of the key + cek + cek_len + alg of each slot (everything derived from a secret).
    fn secret_bytes_per_slot(c: &SharedCache) -> Vec<Vec<u8>> {
        slot_bytes(c)
            .chunks(table::SLOT_SIZE)
            .map(|s| {
                let mut v = s[..64].to_vec();
                v.extend_from_slice(&s[100..102]);
                v
            })
            .collect()
    }

    #[test]
    fn remove_any_removes_the_first_live_key_and_says_which() {
        let c = cache(8, 0);
        let (absent, present) = (dk(1), dk(2));
        c.insert(&present, 1, &[9; 32]).unwrap();
        assert_eq!(c.remove_any(&[absent, present]).unwrap(), Some(1));
        assert_eq!(c.contains(&[present]).unwrap(), None);
        assert_eq!(c.remove_any(&[absent, present]).unwrap(), None);
        assert_eq!(c.stats().unwrap().entries, 0);
        println!("remove_any: the second of two ids was cached -> Some(1), removed; again -> None");
    }

    #[test]
    fn dialog_key_is_sha256_of_length_prefixed_fields() {
        let k = DialogKey::new(b"abc@host", b"tag1");
        let mut h = Sha256::new();
        h.update(b"\x00\x00\x00\x08abc@host\x00\x00\x00\x04tag1");
        let expect: [u8; 32] = h.finalize().into();
        assert_eq!(k.as_bytes(), &expect);
        assert_eq!(k, DialogKey::new(b"abc@host", b"tag1"));
        assert_ne!(DialogKey::new(b"ab", b"c"), DialogKey::new(b"a", b"bc"));
        // A NUL inside a field cannot forge the boundary (it could with a 0x00 separator).
        assert_ne!(
            DialogKey::new(b"a\x00b", b"c"),
            DialogKey::new(b"a", b"b\x00c")
        );
        assert_ne!(k, DialogKey::new(b"abc@host", b"tag2"));
        println!(
            "DialogKey = SHA-256(len||call_id||len||tag): (ab,c) != (a,bc), (a\\0b,c) != (a,b\\0c)"
        );
    }

    #[test]
    fn generations_new_same_refused_and_proven_rotation() {
        let c = cache(8, 0);
        let k = dk(1);
        assert_eq!(
            c.insert_at(&k, 1, &[7; 16], 100).unwrap(),
            Stored::New { generation: 1 }
        );
        let e = use_at(&c, &k, 101).expect("entry");
        assert_eq!(
            (e.alg, &e.cek[..], e.generation, e.uses),
            (1, &[7u8; 16][..], 1, 1)
        );
        assert_eq!((e.created_at, e.last_used), (100, 101));
        assert_eq!(
            c.insert_at(&k, 1, &[7; 16], 102).unwrap(),
            Stored::Same { generation: 1 }
        );
        let e = c.peek_at(&k, 103).unwrap().expect("entry");
        assert_eq!(
            (e.uses, e.created_at, e.last_used),
            (1, 100, 102),
            "Same keeps uses/created_at"
        );
        // insert never overwrites a live entry: another key, or the same bytes under another
        // algorithm, is refused and changes nothing.
        assert_eq!(
            c.insert_at(&k, 1, &[8; 16], 104).unwrap(),
            Stored::Refused { generation: 1 }
        );
        assert_eq!(
            c.insert_at(&k, 2, &[7; 16], 105).unwrap(),
            Stored::Refused { generation: 1 }
        );
        let e = c.peek_at(&k, 105).unwrap().expect("entry");
        assert_eq!(
            (e.alg, &e.cek[..], e.generation, e.uses, e.last_used),
            (1, &[7u8; 16][..], 1, 1, 102),
            "refused inserts leave key, generation, uses and recency"
        );
        // Only a verdict of with_entry replaces the key.
        assert_eq!(rotate_at(&c, &k, 2, &[9; 32], 107), Some(2));
        let e = use_at(&c, &k, 108).expect("entry");
        assert_eq!(
            (e.alg, &e.cek[..], e.generation, e.uses, e.created_at),
            (2, &[9u8; 32][..], 2, 1, 107)
        );
        assert_eq!(rotate_at(&c, &dk(2), 1, &[1; 16], 109), None, "absent");
        // A Keep verdict changes nothing, not even recency.
        c.with_entry_at(&[k], OnMiss::Count, 120, |_| (Verdict::Keep, ()))
            .unwrap()
            .expect("found");
        let e = c.peek_at(&k, 120).unwrap().expect("entry");
        assert_eq!((e.uses, e.last_used), (1, 108));
        let s = c.stats().unwrap();
        assert_eq!(
            (s.entries, s.inserts, s.rotations, s.hits, s.misses),
            (1, 1, 1, 2, 0)
        );
        println!("insert: New{{1}} -> Same{{1}} -> Refused (other key) -> Refused (other alg); with_entry Replace -> 2; Keep leaves uses/recency; absent -> None; stats {s:?}");
    }

    #[test]
    fn the_body_counted_last_is_not_counted_again() {
        let c = cache(8, 0);
        let k = dk(7);
        c.insert_at(&k, 1, &[7; 16], 100).unwrap();
        let open = |tag: u8, now: u64| {
            c.with_entry_at(&[k], OnMiss::Count, now, |_| {
                (Verdict::Opened([tag; 16]), ())
            })
            .unwrap()
            .expect("found");
        };
        let uses = || c.peek_at(&k, 200).unwrap().expect("entry").uses;
        open(1, 101);
        open(1, 102);
        open(1, 103);
        assert_eq!(uses(), 1, "one body three times: one use");
        assert_eq!(
            c.peek_at(&k, 200).unwrap().unwrap().last_used,
            103,
            "a repeat still refreshes the entry"
        );
        open(2, 104);
        open(1, 105);
        assert_eq!(uses(), 3, "another body, then the first again: each a use");
        let mut next = Some((1u8, Zeroizing::new(vec![8u8; 16])));
        c.with_entry_at(&[k], OnMiss::Count, 106, |_| {
            let (alg, cek) = next.take().unwrap();
            (Verdict::Replace { alg, cek }, ())
        })
        .unwrap();
        open(1, 107);
        assert_eq!(uses(), 1, "after a rotation the same tag is a new use");
        let s = c.stats().unwrap();
        assert_eq!((s.hits, s.repeats), (6, 2));
        println!("Verdict::Opened: the same body 3x = 1 use (recency refreshed), another body and the first again = 2 more; a rotation forgets the last body; hits 6, repeats 2");
    }

    #[test]
    fn with_entry_finds_the_first_key_with_an_entry_and_counts_misses() {
        let c = cache(8, 0);
        let (from, to) = (dk(1), dk(2));
        c.insert_at(&to, 1, &[5; 16], 100).unwrap();
        let which = c
            .with_entry_at(&[from, to], OnMiss::Count, 101, |f| {
                assert_eq!(f.entry.cek, &[5u8; 16][..]);
                (Verdict::Used, f.which)
            })
            .unwrap();
        assert_eq!(which, Some(1), "the To-tag key had the entry");
        assert_eq!(c.contains(&[from, to]).unwrap(), Some(1));
        assert_eq!(c.contains(&[from]).unwrap(), None);
        assert!(c
            .with_entry_at(&[dk(9)], OnMiss::Count, 102, |_| (Verdict::Used, ()))
            .unwrap()
            .is_none());
        assert!(c
            .with_entry_at(&[dk(9)], OnMiss::Ignore, 102, |_| (Verdict::Used, ()))
            .unwrap()
            .is_none());
        let s = c.stats().unwrap();
        assert_eq!((s.hits, s.misses), (1, 1), "only OnMiss::Count counts");
        println!("with_entry([from,to]) found the second key's entry; contains agrees; misses counted only with OnMiss::Count; {s:?}");
    }

    #[test]
    fn bucket_index_is_keyed_per_cache() {
        // Two caches of the same size put the same dialog keys in different buckets: the
        // index is SipHash under a random key, not the (public) dialog key's own bytes.
        let (a, b) = (cache(1024, 0), cache(1024, 0));
        let buckets = |c: &SharedCache| -> Vec<usize> {
            let g = c.locked().unwrap();
            (0..64).map(|n| g.bucket_index(dk(n).as_bytes())).collect()
        };
        assert_ne!(buckets(&a), buckets(&b));
        println!("64 dialog keys land in different buckets in two caches (per-cache SipHash key)");
    }

    #[test]
    fn capacity_bound_evicts_least_recently_used() {
        let c = cache(3, 0);
        for n in 1..=3 {
            c.insert_at(&dk(n), 1, &[n as u8; 16], 100 + u64::from(n))
                .unwrap();
        }
        // Use 1: it becomes protected, and 2 is the least recently used probationary entry.
        use_at(&c, &dk(1), 110).expect("1 present");
        c.insert_at(&dk(4), 1, &[4; 16], 111).unwrap();
        assert!(
            c.peek_at(&dk(2), 112).unwrap().is_none(),
            "2 was LRU and is evicted"
        );
        for n in [1, 3, 4] {
            assert_eq!(
                &c.peek_at(&dk(n), 112).unwrap().expect("kept").cek[..],
                &[n as u8; 16]
            );
        }
        // Next eviction order: the probationary entries 3 (stored 103), then 4 (stored 111);
        // 1 is protected (it was used) and outlives both although it is older.
        c.insert_at(&dk(5), 1, &[5; 16], 113).unwrap();
        assert!(c.peek_at(&dk(3), 114).unwrap().is_none());
        c.insert_at(&dk(6), 1, &[6; 16], 115).unwrap();
        assert!(c.peek_at(&dk(4), 116).unwrap().is_none());
        assert!(
            c.peek_at(&dk(1), 116).unwrap().is_some(),
            "protected 1 kept"
        );
        let s = c.stats().unwrap();
        assert_eq!(
            (
                s.entries,
                s.capacity,
                s.evictions,
                s.expirations,
                s.protected
            ),
            (3, 3, 3, 0, 1)
        );
        // Evicted slots are reused, so only `capacity` slots ever hold anything, and the
        // secrets of evicted keys are gone from the region.
        for n in [2u8, 3, 4] {
            assert!(
                !slot_bytes(&c).windows(16).any(|w| w == [n; 16]),
                "cek {n} zeroized"
            );
        }
        println!("capacity 3: evicted 2, then 3, then 4 (probationary LRU order); the used entry 1 is protected and kept; evicted CEKs not in the region");
    }

    #[test]
    fn flood_of_new_dialogs_evicts_only_probationary_entries() {
        const CAP: u32 = 100;
        let c = cache(CAP, 0);
        // 50 calls in progress: stored by their INVITE, then used by an in-dialog message.
        for n in 0..50 {
            c.insert_at(&dk(n), 1, &[1; 16], 100).unwrap();
            use_at(&c, &dk(n), 101).expect("live");
        }
        // 10 000 fresh INVITEs that are never followed by an in-dialog message.
        for n in 1000..11_000 {
            c.insert_at(&dk(n), 1, &[2; 16], 200).unwrap();
        }
        for n in 0..50 {
            assert!(
                c.peek_at(&dk(n), 300).unwrap().is_some(),
                "live call {n} survived the flood"
            );
        }
        let s = c.stats().unwrap();
        assert_eq!((s.entries, s.protected), (u64::from(CAP), 50));
        assert_eq!(s.evictions, 10_000 - 50, "only flood entries were evicted");
        println!("cap {CAP}: 50 used dialogs + 10000 flood INVITEs -> all 50 kept, {} flood entries evicted; {s:?}", s.evictions);
    }

    #[test]
    fn protected_share_is_bounded_and_demotes_the_oldest() {
        let c = cache(10, 0);
        // Promote 10 entries: at most 8 (80 %) stay protected; the 2 least recently used
        // protected ones are demoted to probationary.
        for n in 0..10 {
            c.insert_at(&dk(n), 1, &[n as u8 + 1; 16], 100 + u64::from(n))
                .unwrap();
        }
        for n in 0..10 {
            use_at(&c, &dk(n), 200 + u64::from(n)).expect("live");
        }
        let s = c.stats().unwrap();
        assert_eq!(
            (s.protected, s.promotions, s.demotions),
            (8, 10, 2),
            "80% of 10"
        );
        // The demoted ones (0 and 1) are now the first to go, before any protected entry.
        c.insert_at(&dk(50), 1, &[9; 16], 300).unwrap();
        c.insert_at(&dk(51), 1, &[9; 16], 301).unwrap();
        c.insert_at(&dk(52), 1, &[9; 16], 302).unwrap();
        assert!(c.peek_at(&dk(0), 303).unwrap().is_none());
        assert!(c.peek_at(&dk(1), 303).unwrap().is_none());
        assert!(
            c.peek_at(&dk(50), 303).unwrap().is_none(),
            "probationary 50 next"
        );
        for n in 2..10 {
            assert!(c.peek_at(&dk(n), 303).unwrap().is_some(), "protected {n}");
        }
        // A rotation protects too.
        rotate_at(&c, &dk(52), 1, &[7; 16], 304).expect("live");
        let s = c.stats().unwrap();
        assert_eq!((s.protected, s.demotions), (8, 3));
        println!("cap 10: 10 promotions -> 8 protected, 2 demoted and evicted first; a rotation promotes (demoting the oldest protected); {s:?}");
    }

    #[test]
    fn only_protected_entries_left_evicts_the_oldest_protected() {
        let c = cache(1, 0);
        c.insert_at(&dk(1), 1, &[1; 16], 100).unwrap();
        use_at(&c, &dk(1), 101).expect("live");
        assert_eq!(c.stats().unwrap().protected, 1);
        c.insert_at(&dk(2), 1, &[2; 16], 102).unwrap();
        assert!(c.peek_at(&dk(1), 103).unwrap().is_none());
        assert!(c.peek_at(&dk(2), 103).unwrap().is_some());
        let s = c.stats().unwrap();
        assert_eq!((s.entries, s.protected, s.evictions), (1, 0, 1));
        println!("cap 1: with no probationary entry the protected one is evicted; {s:?}");
    }

    #[test]
    fn recovery_keeps_segments() {
        let c = cache(10, 0);
        for n in 0..6 {
            c.insert_at(&dk(n), 1, &[1; 16], 100 + u64::from(n))
                .unwrap();
        }
        for n in 0..3 {
            use_at(&c, &dk(n), 200).expect("live");
        }
        {
            let mut g = c.locked().unwrap();
            g.simulate_interrupted_mutation(&dk(5));
            assert!(g.recover());
        }
        let s = c.stats().unwrap();
        assert_eq!((s.entries, s.protected), (5, 3));
        // Flood: the 3 protected entries survive, probationary 3 and 4 go.
        for n in 100..120 {
            c.insert_at(&dk(n), 1, &[2; 16], 300).unwrap();
        }
        for n in 0..3 {
            assert!(c.peek_at(&dk(n), 301).unwrap().is_some());
        }
        assert!(c.peek_at(&dk(3), 301).unwrap().is_none());
        println!(
            "recovery rebuilt both lists: protected 3 kept through a flood; {:?}",
            c.stats().unwrap()
        );
    }

    #[test]
    fn ttl_expiry_counts_from_last_use() {
        let c = cache(4, 10);
        let k = dk(1);
        c.insert_at(&k, 1, &[1; 16], 100).unwrap();
        assert!(use_at(&c, &k, 110).is_some(), "10 s after store: live");
        assert!(use_at(&c, &k, 120).is_some(), "10 s after last use: live");
        assert!(
            c.peek_at(&k, 131).unwrap().is_none(),
            "11 s after last use: expired"
        );
        assert!(use_at(&c, &k, 131).is_none());
        let s = c.stats().unwrap();
        assert_eq!((s.entries, s.expirations, s.hits, s.misses), (0, 1, 2, 1));
        assert!(secret_bytes_per_slot(&c)
            .iter()
            .all(|s| s.iter().all(|&b| b == 0)));
        // An expired entry is treated as absent by insert and rotation.
        c.insert_at(&k, 1, &[2; 16], 200).unwrap();
        assert_eq!(rotate_at(&c, &k, 1, &[3; 16], 300), None);
        assert_eq!(
            c.insert_at(&k, 1, &[2; 16], 400).unwrap(),
            Stored::New { generation: 1 }
        );
        println!(
            "ttl 10: live at +10 s after each use, expired (miss, zeroized) at +11 s; stats {:?}",
            c.stats().unwrap()
        );
    }

    #[test]
    fn full_table_drops_expired_before_live() {
        let c = cache(3, 10);
        c.insert_at(&dk(1), 1, &[1; 16], 100).unwrap();
        c.insert_at(&dk(2), 1, &[2; 16], 101).unwrap();
        c.insert_at(&dk(3), 1, &[3; 16], 109).unwrap();
        // At 112, 1 and 2 are expired (> 10 s since last use); 3 is live.
        c.insert_at(&dk(4), 1, &[4; 16], 112).unwrap();
        let s = c.stats().unwrap();
        assert_eq!((s.entries, s.expirations, s.evictions), (2, 2, 0));
        assert!(c.peek_at(&dk(3), 112).unwrap().is_some());
        assert!(c.peek_at(&dk(4), 112).unwrap().is_some());
        println!("full table at t=112: the 2 expired entries went, the live one stayed; {s:?}");
    }

    #[test]
    fn remove_zeroizes_the_slot() {
        let c = cache(4, 0);
        let cek = [0xA5u8; 32];
        c.insert_at(&dk(1), 3, &cek, 100).unwrap();
        c.insert_at(&dk(2), 3, &[0x11; 16], 100).unwrap();
        assert!(
            slot_bytes(&c).windows(32).any(|w| w == cek),
            "cek is in the region"
        );
        assert!(c.remove(&dk(1)).unwrap());
        assert!(!c.remove(&dk(1)).unwrap());
        assert!(use_at(&c, &dk(1), 101).is_none());
        assert!(
            !slot_bytes(&c).windows(32).any(|w| w == cek),
            "cek gone from the region"
        );
        let per_slot = secret_bytes_per_slot(&c);
        assert!(
            per_slot[0].iter().all(|&b| b == 0),
            "slot 0 key+cek+len+alg zero"
        );
        assert!(use_at(&c, &dk(2), 101).is_some());
        let s = c.stats().unwrap();
        assert_eq!((s.entries, s.removals), (1, 1));
        println!(
            "remove: true then false; the removed slot's key, cek, length and alg bytes are all 0"
        );
    }

    #[test]
    fn wipe_zeroizes_every_slot_byte() {
        let c = cache(16, 0);
        for n in 0..16 {
            c.insert_at(&dk(n), 1, &[0xC3; 32], 100).unwrap();
        }
        c.remove(&dk(3)).unwrap();
        assert!(slot_bytes(&c).iter().any(|&b| b != 0));
        c.wipe().unwrap();
        let bytes = slot_bytes(&c);
        assert_eq!(bytes.len(), 16 * table::SLOT_SIZE);
        assert!(
            bytes.iter().all(|&b| b == 0),
            "every byte of every slot is 0"
        );
        assert_eq!(c.stats().unwrap().entries, 0);
        assert!(use_at(&c, &dk(1), 101).is_none());
        // The table is usable again afterwards.
        assert_eq!(
            c.insert_at(&dk(1), 1, &[1; 16], 102).unwrap(),
            Stored::New { generation: 1 }
        );
        println!(
            "wipe: all {} slot bytes are 0, entries 0, table reusable",
            bytes.len()
        );
    }

    #[test]
    fn key_length_and_capacity_limits() {
        let c = cache(2, 0);
        assert!(matches!(
            c.insert(&dk(1), 1, &[0; 33]),
            Err(CacheError::KeyTooLong)
        ));
        assert_eq!(
            c.insert(&dk(1), 1, &[0; 32]).unwrap(),
            Stored::New { generation: 1 }
        );
        assert!(matches!(
            SharedCache::create(CacheConfig {
                capacity: 0,
                ttl_secs: 0
            }),
            Err(CacheError::ZeroCapacity)
        ));
        assert!(matches!(
            SharedCache::create(CacheConfig {
                capacity: MAX_CAPACITY + 1,
                ttl_secs: 0
            }),
            Err(CacheError::CapacityTooLarge)
        ));
        let big = cache(MAX_CAPACITY, 0);
        let per_entry = big.shared_bytes() as f64 / f64::from(MAX_CAPACITY);
        assert!(big.insert(&dk(1), 1, &[1; 16]).unwrap() == Stored::New { generation: 1 });
        println!("33-byte cek -> KeyTooLong, 32 ok; capacity 0 -> ZeroCapacity, {} -> CapacityTooLarge; {} entries map {} bytes ({per_entry:.1} B/entry)", MAX_CAPACITY + 1, MAX_CAPACITY, big.shared_bytes());
    }

    #[test]
    fn mapping_is_shared_and_excluded_from_core_dumps() {
        let c = cache(1000, 0);
        let start = format!("{:x}-", c.region.base_addr());
        let smaps = std::fs::read_to_string("/proc/self/smaps").expect("read smaps");
        // The first VmFlags line after the mapping's header line belongs to it.
        let flags = smaps
            .lines()
            .skip_while(|l| !l.starts_with(&start))
            .find(|l| l.starts_with("VmFlags:"))
            .expect("VmFlags of the cache mapping");
        let flags: Vec<&str> = flags.split_whitespace().skip(1).collect();
        assert!(flags.contains(&"sh"), "MAP_SHARED: {flags:?}");
        assert!(flags.contains(&"dd"), "MADV_DONTDUMP: {flags:?}");
        println!(
            "cache mapping at {start}: VmFlags {flags:?} (sh = shared, dd = not in core dumps)"
        );
    }

    #[test]
    fn epoch_counter() {
        let c = cache(1, 0);
        assert_eq!(c.epoch(), 0);
        assert_eq!(c.bump_epoch(), 1);
        assert_eq!(c.bump_epoch(), 2);
        assert_eq!(c.epoch(), 2);
        println!("epoch 0 -> bump 1 -> bump 2");
    }

    #[test]
    fn recovery_rebuilds_indexes_and_wipes_the_touched_slot() {
        let c = cache(64, 0);
        for n in 0..40 {
            c.insert_at(&dk(n), 1, &[n as u8 + 1; 16], 100 + u64::from(n))
                .unwrap();
        }
        {
            let mut g = c.locked().unwrap();
            g.simulate_interrupted_mutation(&dk(7));
            assert!(g.is_dirty());
            // What the next locker does after EOWNERDEAD:
            assert!(g.recover(), "dirty table is rebuilt");
            assert!(!g.is_dirty());
        }
        assert!(
            c.peek_at(&dk(7), 200).unwrap().is_none(),
            "touched entry wiped"
        );
        for n in (0..40).filter(|&n| n != 7) {
            let e = c
                .peek_at(&dk(n), 200)
                .unwrap()
                .expect("other entries survive");
            assert_eq!(&e.cek[..], &[n as u8 + 1; 16]);
        }
        let s = c.stats().unwrap();
        assert_eq!((s.entries, s.lock_recoveries), (39, 1));
        // LRU order was rebuilt from last_used: filling the table evicts 0, 1, 2... first.
        for n in 100..126 {
            c.insert_at(&dk(n), 1, &[1; 16], 300).unwrap();
        }
        assert!(c.peek_at(&dk(0), 301).unwrap().is_none());
        assert!(c.peek_at(&dk(39), 301).unwrap().is_some());
        println!("simulated crash mid-change of entry 7: entry 7 zeroized, 39 others intact, LRU rebuilt by last_used; {:?}", c.stats().unwrap());
    }
}
