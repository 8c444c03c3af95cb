//! The hash table + LRU list, as safe Rust over a typed view of the shared region.
//!
//! Everything here runs with the process-shared lock held (see `shm.rs`). The region holds no
//! pointers, only slot indices ([`Link`]), so every process may map it at any address.
//!
//! Crash safety: every mutation runs between [`Table::begin`] and [`Table::end`], which set and
//! clear the header's `dirty` flag and record the slot(s) being written in `touched`. If a
//! worker dies inside that window, the next locker gets `EOWNERDEAD` and calls
//! [`Table::recover`]: the touched slots are zeroized (their contents cannot be trusted) and the
//! bucket chains, LRU list, free list and entry count are rebuilt from the remaining slots.

use std::hash::Hasher as _;
use std::sync::atomic::{fence, AtomicU32, Ordering};

use siphasher::sip::SipHasher13;
use zeroize::{Zeroize, Zeroizing};

use super::{
    Apply, BodyTag, CacheError, CacheStats, CachedKey, DialogIds, DialogKey, Entry, Stored,
    MAX_CEK_LEN,
};

/// A slot index plus one; 0 means "none". All-zero memory is therefore an empty table.
#[derive(Clone, Copy, PartialEq, Eq, Default, Debug)]
#[repr(transparent)]
pub(crate) struct Link(u32);

impl Link {
    pub(crate) const NONE: Link = Link(0);

    fn to(idx: usize) -> Link {
        // Capacity is bounded by MAX_CAPACITY (4_000_000), so idx + 1 fits in a u32.
        Link(u32::try_from(idx + 1).unwrap_or(0))
    }

    fn get(self) -> Option<usize> {
        self.0.checked_sub(1).map(|i| i as usize)
    }
}

const STATE_FREE: u8 = 0;
const STATE_USED: u8 = 1;

/// Segmented LRU (docs/SECURITY.md, "Cache flooding"): a new entry is probationary; one whose
/// key was used from the cache (`get`) or rotated is protected. A full table evicts the least
/// recently used probationary entry first. Protected entries are at most
/// [`PROTECTED_PERCENT`] of the capacity: promoting one more demotes the least recently used
/// protected entry to the head of the probationary list.
pub(crate) const SEG_PROBATION: u8 = 0;
/// See [`SEG_PROBATION`].
pub(crate) const SEG_PROTECTED: u8 = 1;
/// The protected segment's share of the capacity, in percent.
pub const PROTECTED_PERCENT: u64 = 80;

/// One cache entry as laid out in shared memory (120 bytes, no padding).
#[repr(C)]
pub(crate) struct Slot {
    key: [u8; 32],
    cek: [u8; MAX_CEK_LEN],
    /// The authentication tag of the body last counted as a use ([`BodyTag`]; zero: none).
    last_body: BodyTag,
    created_at: u64,
    last_used: u64,
    generation: u32,
    uses: u32,
    hash_next: Link,
    lru_prev: Link,
    lru_next: Link,
    cek_len: u8,
    alg: u8,
    state: u8,
    /// [`SEG_PROBATION`] or [`SEG_PROTECTED`]: which LRU list the slot is on.
    segment: u8,
}

pub(crate) const SLOT_SIZE: usize = 120;
const _: () = assert!(std::mem::size_of::<Slot>() == SLOT_SIZE);

impl Slot {
    /// Zeroize every field (volatile writes for the secret parts).
    fn wipe(&mut self) {
        self.key.zeroize();
        self.cek.zeroize();
        self.last_body.zeroize();
        self.created_at.zeroize();
        self.last_used.zeroize();
        self.generation.zeroize();
        self.uses.zeroize();
        self.hash_next = Link::NONE;
        self.lru_prev = Link::NONE;
        self.lru_next = Link::NONE;
        self.cek_len.zeroize();
        self.alg.zeroize();
        self.state = STATE_FREE;
        self.segment = SEG_PROBATION;
    }

    fn cek(&self) -> &[u8] {
        &self.cek[..usize::from(self.cek_len).min(MAX_CEK_LEN)]
    }

    fn same_key_material(&self, alg: u8, cek: &[u8]) -> bool {
        let mine = self.cek();
        // Constant time over the common length; lengths are not secret.
        let diff = mine.iter().zip(cek).fold(0u8, |acc, (a, b)| acc | (a ^ b));
        self.alg == alg && mine.len() == cek.len() && diff == 0
    }

    fn set_key_material(&mut self, alg: u8, cek: &[u8]) {
        self.cek.zeroize();
        let n = cek.len().min(MAX_CEK_LEN);
        self.cek[..n].copy_from_slice(&cek[..n]);
        self.cek_len = u8::try_from(n).unwrap_or(0);
        self.alg = alg;
    }

    fn entry(&self) -> Entry<'_> {
        Entry {
            alg: self.alg,
            cek: self.cek(),
            generation: self.generation,
            created_at: self.created_at,
            last_used: self.last_used,
            uses: self.uses,
        }
    }

    fn to_cached(&self) -> CachedKey {
        CachedKey {
            alg: self.alg,
            cek: Zeroizing::new(self.cek().to_vec()),
            generation: self.generation,
            created_at: self.created_at,
            last_used: self.last_used,
            uses: self.uses,
        }
    }
}

/// Operation counters, kept in the shared header.
#[repr(C)]
#[derive(Default)]
pub(crate) struct Counters {
    hits: u64,
    misses: u64,
    inserts: u64,
    rotations: u64,
    evictions: u64,
    expirations: u64,
    removals: u64,
    lock_recoveries: u64,
    promotions: u64,
    demotions: u64,
    repeats: u64,
}

/// The mutable part of the header (only touched with the lock held).
#[repr(C)]
pub(crate) struct TableHeader {
    /// 1 while a mutation is in progress.
    dirty: AtomicU32,
    /// The slots being written by the mutation in progress (as [`Link`] values).
    touched: [AtomicU32; 2],
    entries: u32,
    /// Slots at and above this index have never been used (and are all zero).
    hwm: u32,
    free_head: Link,
    /// The probationary LRU list (head = most recent).
    lru_head: Link,
    lru_tail: Link,
    /// The protected LRU list.
    prot_head: Link,
    prot_tail: Link,
    /// Entries on the protected list.
    protected: u32,
    counters: Counters,
}

/// How many expired entries one `store` may sweep from the LRU tail when the table is full.
const EXPIRE_BATCH: usize = 16;

/// How many slots one [`Table::live_from`] looks at, so that exporting a large, sparse table
/// never holds the lock long.
pub(crate) const EXPORT_SCAN: usize = 4096;

/// What a new slot is filled with: a fresh dialog's key ([`Table::insert`]) or an entry as
/// another node of a cluster holds it ([`Table::apply`]).
struct Fill<'a> {
    alg: u8,
    cek: &'a [u8],
    generation: u32,
    created_at: u64,
    last_used: u64,
    uses: u32,
}

/// Whether an entry last used at `last_used` has expired at `now` under `ttl` seconds (0: never).
pub(crate) fn expired(ttl: u64, last_used: u64, now: u64) -> bool {
    ttl != 0 && now.saturating_sub(last_used) > ttl
}

/// The typed view of the table, valid while the lock is held.
pub(crate) struct Table<'a> {
    hdr: &'a mut TableHeader,
    buckets: &'a mut [Link],
    slots: &'a mut [Slot],
    ttl: u64,
    /// The cache's random SipHash key: nobody outside can aim dialog ids at one bucket.
    hash_key: [u8; 16],
}

impl<'a> Table<'a> {
    /// `buckets.len()` must be a power of two (checked by `Region`'s layout).
    pub(crate) fn new(
        hdr: &'a mut TableHeader,
        buckets: &'a mut [Link],
        slots: &'a mut [Slot],
        ttl_secs: u32,
        hash_key: [u8; 16],
    ) -> Table<'a> {
        Table {
            hdr,
            buckets,
            slots,
            ttl: u64::from(ttl_secs),
            hash_key,
        }
    }

    // ----- crash-safety markers -------------------------------------------------------------

    fn begin(&mut self) {
        self.hdr.touched[0].store(0, Ordering::Relaxed);
        self.hdr.touched[1].store(0, Ordering::Relaxed);
        self.hdr.dirty.store(1, Ordering::Relaxed);
        fence(Ordering::SeqCst);
    }

    fn touch(&mut self, idx: usize) {
        let link = Link::to(idx).0;
        if self.hdr.touched[0].load(Ordering::Relaxed) == 0 {
            self.hdr.touched[0].store(link, Ordering::Relaxed);
        } else {
            self.hdr.touched[1].store(link, Ordering::Relaxed);
        }
        fence(Ordering::SeqCst);
    }

    fn end(&mut self) {
        fence(Ordering::SeqCst);
        self.hdr.dirty.store(0, Ordering::Relaxed);
        self.hdr.touched[0].store(0, Ordering::Relaxed);
        self.hdr.touched[1].store(0, Ordering::Relaxed);
    }

    // ----- index primitives -----------------------------------------------------------------

    /// SipHash-1-3 of the dialog key under the cache's random key: the dialog key is a public
    /// function of Call-ID and tag, so its own bytes would let a caller choose the bucket.
    fn bucket_of(&self, key: &[u8; 32]) -> usize {
        let mut h = SipHasher13::new_with_key(&self.hash_key);
        h.write(key);
        (h.finish() as usize) & (self.buckets.len() - 1)
    }

    /// Find the slot holding `key`, expired or not.
    fn find(&self, key: &[u8; 32]) -> Option<usize> {
        let mut cur = self.buckets[self.bucket_of(key)];
        // Bounded walk: a consistent chain is never longer than the number of slots.
        for _ in 0..=self.slots.len() {
            let idx = cur.get()?;
            let slot = self.slots.get(idx)?;
            if slot.state == STATE_USED && slot.key == *key {
                return Some(idx);
            }
            cur = slot.hash_next;
        }
        None
    }

    fn hash_link(&mut self, idx: usize) {
        let b = self.bucket_of(&self.slots[idx].key);
        self.slots[idx].hash_next = self.buckets[b];
        self.buckets[b] = Link::to(idx);
    }

    fn hash_unlink(&mut self, idx: usize) {
        let b = self.bucket_of(&self.slots[idx].key);
        let me = Link::to(idx);
        let next = self.slots[idx].hash_next;
        if self.buckets[b] == me {
            self.buckets[b] = next;
            return;
        }
        let mut cur = self.buckets[b];
        for _ in 0..=self.slots.len() {
            let Some(i) = cur.get().filter(|&i| i < self.slots.len()) else {
                return;
            };
            if self.slots[i].hash_next == me {
                self.slots[i].hash_next = next;
                return;
            }
            cur = self.slots[i].hash_next;
        }
    }

    /// The (head, tail) of the LRU list of `segment`.
    fn list_mut(&mut self, segment: u8) -> (&mut Link, &mut Link) {
        if segment == SEG_PROTECTED {
            (&mut self.hdr.prot_head, &mut self.hdr.prot_tail)
        } else {
            (&mut self.hdr.lru_head, &mut self.hdr.lru_tail)
        }
    }

    /// Takes the slot off the LRU list of its segment.
    fn lru_unlink(&mut self, idx: usize) {
        let seg = self.slots[idx].segment;
        let prev = self.slots[idx].lru_prev;
        let next = self.slots[idx].lru_next;
        match prev.get().filter(|&p| p < self.slots.len()) {
            Some(p) => self.slots[p].lru_next = next,
            None => *self.list_mut(seg).0 = next,
        }
        match next.get().filter(|&n| n < self.slots.len()) {
            Some(n) => self.slots[n].lru_prev = prev,
            None => *self.list_mut(seg).1 = prev,
        }
        self.slots[idx].lru_prev = Link::NONE;
        self.slots[idx].lru_next = Link::NONE;
    }

    /// Puts the slot at the head (most recent) of the LRU list of its segment.
    fn lru_push_front(&mut self, idx: usize) {
        let seg = self.slots[idx].segment;
        let head = *self.list_mut(seg).0;
        self.slots[idx].lru_prev = Link::NONE;
        self.slots[idx].lru_next = head;
        match head.get().filter(|&h| h < self.slots.len()) {
            Some(h) => self.slots[h].lru_prev = Link::to(idx),
            None => *self.list_mut(seg).1 = Link::to(idx),
        }
        *self.list_mut(seg).0 = Link::to(idx);
    }

    /// Most protected entries: [`PROTECTED_PERCENT`] of the capacity, at least 1.
    fn max_protected(&self) -> u32 {
        let cap = self.slots.len() as u64;
        u32::try_from((cap * PROTECTED_PERCENT / 100).max(1)).unwrap_or(u32::MAX)
    }

    /// Moves a probationary entry to the head of the protected list (call inside
    /// begin/end); if that makes the protected list too long, its least recently used entry
    /// goes back to the head of the probationary list.
    fn promote(&mut self, idx: usize) {
        if self.slots[idx].segment == SEG_PROTECTED {
            return;
        }
        self.lru_unlink(idx);
        self.slots[idx].segment = SEG_PROTECTED;
        self.lru_push_front(idx);
        self.hdr.protected += 1;
        self.hdr.counters.promotions += 1;
        if self.hdr.protected > self.max_protected() {
            if let Some(t) = self.hdr.prot_tail.get().filter(|&t| t < self.slots.len()) {
                self.touch(t);
                self.lru_unlink(t);
                self.slots[t].segment = SEG_PROBATION;
                self.lru_push_front(t);
                self.hdr.protected -= 1;
                self.hdr.counters.demotions += 1;
            }
        }
    }

    /// Take a free slot (free list first, then never-used slots). Call inside begin/end.
    fn alloc(&mut self) -> Option<usize> {
        if let Some(i) = self.hdr.free_head.get().filter(|&i| i < self.slots.len()) {
            self.hdr.free_head = self.slots[i].hash_next;
            self.slots[i].hash_next = Link::NONE;
            return Some(i);
        }
        let hwm = self.hdr.hwm as usize;
        if hwm < self.slots.len() {
            self.hdr.hwm += 1;
            return Some(hwm);
        }
        None
    }

    /// Unlink, zeroize and free one used slot, as its own crash-safe section.
    fn drop_entry(&mut self, idx: usize) {
        self.begin();
        self.touch(idx);
        self.hash_unlink(idx);
        self.lru_unlink(idx);
        if self.slots[idx].segment == SEG_PROTECTED {
            self.hdr.protected = self.hdr.protected.saturating_sub(1);
        }
        self.slots[idx].wipe();
        self.slots[idx].hash_next = self.hdr.free_head;
        self.hdr.free_head = Link::to(idx);
        self.hdr.entries = self.hdr.entries.saturating_sub(1);
        self.end();
    }

    fn is_expired(&self, idx: usize, now: u64) -> bool {
        expired(self.ttl, self.slots[idx].last_used, now)
    }

    /// Find a live entry; an expired one is removed (zeroized) on the way.
    fn find_live(&mut self, key: &DialogKey, now: u64) -> Option<usize> {
        let idx = self.find(key.as_bytes())?;
        if self.is_expired(idx, now) {
            self.drop_entry(idx);
            self.hdr.counters.expirations += 1;
            return None;
        }
        Some(idx)
    }

    /// Mark an entry as just used (moves it to the LRU head).
    fn touch_recency(&mut self, idx: usize, now: u64, count_use: bool) {
        self.begin();
        self.touch(idx);
        let slot = &mut self.slots[idx];
        slot.last_used = now;
        if count_use {
            slot.uses = slot.uses.saturating_add(1);
        }
        self.lru_unlink(idx);
        self.lru_push_front(idx);
        if count_use {
            self.promote(idx);
        }
        self.end();
    }

    /// Make room in a full table: expired entries from the LRU tails first (probationary,
    /// then protected); if none, evict the least recently used probationary entry, or the
    /// least recently used protected one when there is no probationary entry.
    fn make_room(&mut self, now: u64) {
        let mut freed = 0;
        for seg in [SEG_PROBATION, SEG_PROTECTED] {
            while freed < EXPIRE_BATCH {
                let tail = *self.list_mut(seg).1;
                let Some(tail) = tail.get().filter(|&t| t < self.slots.len()) else {
                    break;
                };
                if !self.is_expired(tail, now) {
                    break;
                }
                self.drop_entry(tail);
                self.hdr.counters.expirations += 1;
                freed += 1;
            }
        }
        if freed > 0 {
            return;
        }
        let victim = self
            .hdr
            .lru_tail
            .get()
            .or_else(|| self.hdr.prot_tail.get())
            .filter(|&t| t < self.slots.len());
        match victim {
            Some(tail) => {
                self.drop_entry(tail);
                self.hdr.counters.evictions += 1;
            }
            None => {
                // Full but no LRU tail: the indexes disagree with the slots. Rebuild them.
                self.begin();
                self.rebuild();
                self.end();
            }
        }
    }

    /// Takes a slot for a dialog with no live entry (making room first when the table is
    /// full) and fills it, probationary, as its own crash-safe section. Returns the slot.
    /// `fill.cek.len() <= MAX_CEK_LEN` is checked by the caller.
    fn add(&mut self, key: &DialogKey, fill: &Fill<'_>, now: u64) -> usize {
        if self.hdr.free_head == Link::NONE && self.hdr.hwm as usize >= self.slots.len() {
            self.make_room(now);
        }
        self.begin();
        let idx = match self.alloc() {
            Some(idx) => idx,
            None => {
                // Unreachable for a consistent table (make_room freed a slot); fall back to
                // reusing the LRU tail, or slot 0, so an insert never fails.
                let victim = self
                    .hdr
                    .lru_tail
                    .get()
                    .or_else(|| self.hdr.prot_tail.get())
                    .filter(|&t| t < self.slots.len())
                    .unwrap_or(0);
                self.touch(victim);
                if self.slots[victim].state == STATE_USED {
                    self.hash_unlink(victim);
                    self.lru_unlink(victim);
                    if self.slots[victim].segment == SEG_PROTECTED {
                        self.hdr.protected = self.hdr.protected.saturating_sub(1);
                    }
                    self.hdr.entries = self.hdr.entries.saturating_sub(1);
                    self.hdr.counters.evictions += 1;
                }
                self.slots[victim].wipe();
                victim
            }
        };
        self.touch(idx);
        let slot = &mut self.slots[idx];
        slot.wipe();
        slot.key = *key.as_bytes();
        slot.set_key_material(fill.alg, fill.cek);
        slot.generation = fill.generation;
        slot.uses = fill.uses;
        slot.last_body = [0; 16];
        slot.created_at = fill.created_at;
        slot.last_used = fill.last_used;
        slot.state = STATE_USED;
        self.hash_link(idx);
        self.lru_push_front(idx);
        self.hdr.entries += 1;
        self.end();
        idx
    }

    // ----- operations -----------------------------------------------------------------------

    /// The live entry of the first of `keys` that has one: (position in `keys`, slot).
    /// Expired entries met on the way are removed (zeroized).
    pub(crate) fn find_any<K: DialogIds + ?Sized>(
        &mut self,
        keys: &K,
        now: u64,
    ) -> Option<(usize, usize)> {
        let mut pos = 0;
        while let Some(key) = keys.id(pos) {
            if let Some(idx) = self.find_live(&key, now) {
                return Some((pos, idx));
            }
            pos += 1;
        }
        None
    }

    /// A borrowed view of a live slot (the caller holds the lock for the borrow's lifetime).
    pub(crate) fn entry(&self, idx: usize) -> Entry<'_> {
        self.slots[idx].entry()
    }

    /// The entry's key just opened a message: count a use and a hit, refresh its recency and
    /// protect it (segmented LRU).
    pub(crate) fn mark_used(&mut self, idx: usize, now: u64) {
        self.touch_recency(idx, now, true);
        self.hdr.counters.hits += 1;
    }

    /// A body opened under the entry's key, `body` its authentication tag: a use, unless it
    /// is the body counted last for this entry (a retransmission or a replay of it), which
    /// only refreshes the entry's recency.
    pub(crate) fn mark_opened(&mut self, idx: usize, now: u64, body: &BodyTag) {
        let repeat = self.slots[idx].last_body == *body;
        if !repeat {
            self.begin();
            self.touch(idx);
            self.slots[idx].last_body = *body;
            self.end();
        }
        self.touch_recency(idx, now, !repeat);
        self.hdr.counters.hits += 1;
        if repeat {
            self.hdr.counters.repeats += 1;
        }
    }

    /// A lookup for an in-dialog body found no entry.
    pub(crate) fn count_miss(&mut self) {
        self.hdr.counters.misses += 1;
    }

    /// Replace a live entry's key (a proven rotation): generation + 1, uses 0, the old key
    /// zeroized, the entry protected. Returns the new generation.
    pub(crate) fn replace(&mut self, idx: usize, alg: u8, cek: &[u8], now: u64) -> u32 {
        self.begin();
        self.touch(idx);
        let slot = &mut self.slots[idx];
        slot.set_key_material(alg, cek);
        slot.generation = slot.generation.saturating_add(1);
        slot.uses = 0;
        slot.last_body = [0; 16];
        slot.created_at = now;
        slot.last_used = now;
        let generation = slot.generation;
        self.lru_unlink(idx);
        self.lru_push_front(idx);
        self.promote(idx);
        self.end();
        self.hdr.counters.rotations += 1;
        generation
    }

    /// A copy of a live entry, changing nothing but removing it if it expired.
    pub(crate) fn peek(&mut self, key: &DialogKey, now: u64) -> Option<CachedKey> {
        let idx = self.find_live(key, now)?;
        Some(self.slots[idx].to_cached())
    }

    /// Insert a new dialog's key. A live entry is never overwritten: the same key refreshes its
    /// recency (`Same`), another key changes nothing (`Refused`). `cek.len() <= MAX_CEK_LEN` is
    /// checked by the caller.
    pub(crate) fn insert(&mut self, key: &DialogKey, alg: u8, cek: &[u8], now: u64) -> Stored {
        if let Some(idx) = self.find_live(key, now) {
            let generation = self.slots[idx].generation;
            if self.slots[idx].same_key_material(alg, cek) {
                self.touch_recency(idx, now, false);
                return Stored::Same { generation };
            }
            return Stored::Refused { generation };
        }
        self.add(
            key,
            &Fill {
                alg,
                cek,
                generation: 1,
                created_at: now,
                last_used: now,
                uses: 0,
            },
            now,
        );
        self.hdr.counters.inserts += 1;
        Stored::New { generation: 1 }
    }

    /// Runs `decide` on the live entry of `key` (or `None`) and carries out its [`Apply`]:
    /// store the entry as given (in a new slot, or over the live one), refresh the live
    /// entry's use time and count, or nothing. A stored entry that was used or rotated
    /// (`uses > 0` or `generation > 1`) is protected, as it is on the node that sent it.
    /// Times later than `now` are taken as `now`.
    pub(crate) fn apply<R>(
        &mut self,
        key: &DialogKey,
        now: u64,
        decide: impl FnOnce(Option<Entry<'_>>) -> (Apply, R),
    ) -> Result<R, CacheError> {
        let live = self.find_live(key, now);
        let (verdict, out) = decide(live.map(|idx| self.slots[idx].entry()));
        match verdict {
            Apply::Keep => {}
            Apply::Store(image) => {
                if image.cek.len() > MAX_CEK_LEN {
                    return Err(CacheError::KeyTooLong);
                }
                let fill = Fill {
                    alg: image.alg,
                    cek: &image.cek,
                    generation: image.generation,
                    created_at: image.created_at.min(now),
                    last_used: image.last_used.min(now),
                    uses: image.uses,
                };
                let idx = match live {
                    Some(idx) => {
                        self.overwrite(idx, &fill);
                        idx
                    }
                    None => self.add(key, &fill, now),
                };
                if fill.generation > 1 || fill.uses > 0 {
                    self.begin();
                    self.touch(idx);
                    self.promote(idx);
                    self.end();
                }
            }
            Apply::Touch { last_used, uses } => {
                if let Some(idx) = live {
                    self.begin();
                    self.touch(idx);
                    let slot = &mut self.slots[idx];
                    slot.last_used = slot.last_used.max(last_used.min(now));
                    slot.uses = slot.uses.max(uses);
                    self.lru_unlink(idx);
                    self.lru_push_front(idx);
                    self.end();
                }
            }
        }
        Ok(out)
    }

    /// Replaces a live entry's key and metadata with `fill` (zeroizing the old key) and makes
    /// it the most recent, as one crash-safe section.
    fn overwrite(&mut self, idx: usize, fill: &Fill<'_>) {
        self.begin();
        self.touch(idx);
        let slot = &mut self.slots[idx];
        slot.set_key_material(fill.alg, fill.cek);
        slot.generation = fill.generation;
        slot.uses = fill.uses;
        slot.last_body = [0; 16];
        slot.created_at = fill.created_at;
        slot.last_used = fill.last_used;
        self.lru_unlink(idx);
        self.lru_push_front(idx);
        self.end();
    }

    /// Copies of the live entries in slots `from..`, at most `max` of them and looking at no
    /// more than [`EXPORT_SCAN`] slots (the lock is held meanwhile). Returns them and the slot
    /// to continue from, `None` once the last slot ever used was looked at. Changes nothing.
    pub(crate) fn live_from(
        &self,
        from: usize,
        max: usize,
        now: u64,
    ) -> (Vec<(DialogKey, CachedKey)>, Option<usize>) {
        let end = (self.hdr.hwm as usize).min(self.slots.len());
        let mut out = Vec::new();
        let mut idx = from;
        while idx < end && out.len() < max && idx - from < EXPORT_SCAN {
            let slot = &self.slots[idx];
            if slot.state == STATE_USED && !self.is_expired(idx, now) {
                out.push((DialogKey::from_bytes(slot.key), slot.to_cached()));
            }
            idx += 1;
        }
        (out, (idx < end).then_some(idx))
    }

    pub(crate) fn remove(&mut self, key: &DialogKey) -> bool {
        match self.find(key.as_bytes()) {
            Some(idx) => {
                self.drop_entry(idx);
                self.hdr.counters.removals += 1;
                true
            }
            None => false,
        }
    }

    pub(crate) fn stats(&self) -> CacheStats {
        let c = &self.hdr.counters;
        CacheStats {
            capacity: self.slots.len() as u64,
            entries: u64::from(self.hdr.entries),
            hits: c.hits,
            misses: c.misses,
            inserts: c.inserts,
            rotations: c.rotations,
            evictions: c.evictions,
            expirations: c.expirations,
            removals: c.removals,
            lock_recoveries: c.lock_recoveries,
            protected: u64::from(self.hdr.protected),
            promotions: c.promotions,
            demotions: c.demotions,
            repeats: c.repeats,
        }
    }

    /// Zeroize every slot that was ever used and empty the indexes. Counters are kept.
    pub(crate) fn wipe(&mut self) {
        self.begin();
        let used = (self.hdr.hwm as usize).min(self.slots.len());
        for slot in &mut self.slots[..used] {
            slot.wipe();
        }
        self.clear_indexes();
        self.hdr.entries = 0;
        self.hdr.hwm = 0;
        self.end();
    }

    /// Empty the bucket heads, free list and both LRU lists (the slots are left as they are).
    fn clear_indexes(&mut self) {
        self.buckets.fill(Link::NONE);
        self.hdr.free_head = Link::NONE;
        self.hdr.lru_head = Link::NONE;
        self.hdr.lru_tail = Link::NONE;
        self.hdr.prot_head = Link::NONE;
        self.hdr.prot_tail = Link::NONE;
        self.hdr.protected = 0;
    }

    /// Called once with the lock held after `EOWNERDEAD`. Counts the recovery; if the dead
    /// owner was mid-mutation, zeroizes the slots it was writing and rebuilds every index from
    /// the slots. Returns whether a rebuild was needed.
    pub(crate) fn recover(&mut self) -> bool {
        self.hdr.counters.lock_recoveries += 1;
        if self.hdr.dirty.load(Ordering::Relaxed) == 0 {
            return false;
        }
        for t in 0..2 {
            let link = Link(self.hdr.touched[t].load(Ordering::Relaxed));
            if let Some(i) = link.get().filter(|&i| i < self.slots.len()) {
                self.slots[i].wipe();
            }
        }
        self.rebuild();
        self.end();
        true
    }

    /// Rebuild buckets, LRU list (by last_used), free list and entry count from the slots.
    /// Slots that are not plausible entries, or duplicate a key already seen, are zeroized.
    fn rebuild(&mut self) {
        let hwm = (self.hdr.hwm as usize).min(self.slots.len());
        self.hdr.hwm = u32::try_from(hwm).unwrap_or(0);
        self.clear_indexes();
        let mut live = Vec::new();
        for idx in 0..hwm {
            let plausible = self.slots[idx].state == STATE_USED
                && usize::from(self.slots[idx].cek_len) <= MAX_CEK_LEN
                && self.find(&self.slots[idx].key).is_none();
            if plausible {
                self.hash_link(idx);
                live.push(idx);
            } else {
                self.slots[idx].wipe();
                self.slots[idx].hash_next = self.hdr.free_head;
                self.hdr.free_head = Link::to(idx);
            }
        }
        live.sort_by_key(|&i| self.slots[i].last_used);
        let max_protected = self.max_protected();
        // Most recent first, so that an over-long protected list keeps its newest entries.
        for &idx in live.iter().rev() {
            let seg =
                if self.slots[idx].segment == SEG_PROTECTED && self.hdr.protected < max_protected {
                    self.hdr.protected += 1;
                    SEG_PROTECTED
                } else {
                    SEG_PROBATION
                };
            self.slots[idx].segment = seg;
        }
        for &idx in &live {
            self.lru_push_front(idx);
        }
        self.hdr.entries = u32::try_from(live.len()).unwrap_or(u32::MAX);
    }

    /// Test support: leave the table as a worker killed mid-mutation would: dirty, with the
    /// entry's slot recorded as touched and its bucket chain cut.
    #[cfg(any(test, feature = "test-hooks"))]
    pub(crate) fn simulate_interrupted_mutation(&mut self, key: &DialogKey) {
        self.begin();
        if let Some(idx) = self.find(key.as_bytes()) {
            self.touch(idx);
            self.slots[idx].cek[0] ^= 0xff;
            let b = self.bucket_of(key.as_bytes());
            self.buckets[b] = Link::NONE;
        }
        // No `end()`: the flag stays set.
    }

    /// Test support: the bucket a dialog key goes to.
    #[cfg(test)]
    pub(crate) fn bucket_index(&self, key: &[u8; 32]) -> usize {
        self.bucket_of(key)
    }

    /// Test support: the raw bytes of all slots.
    #[cfg(test)]
    pub(crate) fn slots_ref(&self) -> &[Slot] {
        self.slots
    }

    /// Whether the table was left mid-mutation (a holder died, or unwound, inside a change).
    pub(crate) fn is_dirty(&self) -> bool {
        self.hdr.dirty.load(Ordering::Relaxed) != 0
    }
}
