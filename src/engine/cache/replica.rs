//! What replicating the cache to the other nodes of a cluster needs (`engine::cluster`): an
//! entry put as another node holds it, under the caller's check ([`SharedCache::apply`], the
//! check-then-change style of [`SharedCache::with_entry`]), and the live entries read out in
//! batches for a full sync ([`SharedCache::export_from`]).
//!
//! The cache does not decide what to accept: the caller's check sees the live entry (if any)
//! with the lock held and returns an [`Apply`]; only authenticated cluster messages reach it.

use super::table::expired;
use super::{now_secs, CacheError, CachedKey, DialogKey, Entry, SharedCache};

/// What [`SharedCache::apply`]'s check decided.
pub enum Apply {
    /// Change nothing.
    Keep,
    /// Put this entry as it is (algorithm tag, key, generation, times, uses): in a new slot
    /// when the dialog has no live entry, else over it (the old key zeroized).
    Store(CachedKey),
    /// The live entry is the same key: take the later use time and the higher use count.
    Touch {
        /// Unix seconds of the last use on the other node.
        last_used: u64,
        /// Uses counted there.
        uses: u32,
    },
}

/// One batch of a full export: copies of live entries and where to continue.
pub struct Batch {
    /// The entries, each with its dialog.
    pub entries: Vec<(DialogKey, CachedKey)>,
    /// The slot the next batch starts at; `None` when this was the last batch.
    pub next: Option<usize>,
}

impl SharedCache {
    /// Runs `decide` on `key`'s live entry (`None` if it has none) with the lock held, and
    /// carries out the [`Apply`] it returns before unlocking. An entry stored this way that
    /// was used or rotated on the other node is protected (segmented LRU) here too.
    pub fn apply<R>(
        &self,
        key: &DialogKey,
        decide: impl FnOnce(Option<Entry<'_>>) -> (Apply, R),
    ) -> Result<R, CacheError> {
        self.apply_at(key, now_secs(), decide)
    }

    pub(crate) fn apply_at<R>(
        &self,
        key: &DialogKey,
        now: u64,
        decide: impl FnOnce(Option<Entry<'_>>) -> (Apply, R),
    ) -> Result<R, CacheError> {
        self.locked()?.apply(key, now, decide)
    }

    /// Whether an entry last used at `last_used` (Unix seconds) is past the cache's TTL now.
    pub fn is_expired(&self, last_used: u64) -> bool {
        self.is_expired_at(last_used, now_secs())
    }

    pub(crate) fn is_expired_at(&self, last_used: u64, now: u64) -> bool {
        expired(u64::from(self.region.ttl_secs()), last_used, now)
    }

    /// Copies of up to `max` live entries from slot `from` on (0 to start), one lock each
    /// batch; [`Batch::next`] says where the next batch starts. Entries added behind the
    /// cursor meanwhile are not seen (replication sends those as they happen).
    pub fn export_from(&self, from: usize, max: usize) -> Result<Batch, CacheError> {
        self.export_from_at(from, max, now_secs())
    }

    pub(crate) fn export_from_at(
        &self,
        from: usize,
        max: usize,
        now: u64,
    ) -> Result<Batch, CacheError> {
        let (entries, next) = self.locked()?.live_from(from, max, now);
        Ok(Batch { entries, next })
    }
}

#[cfg(test)]
mod tests {
    use zeroize::Zeroizing;

    use super::*;
    use crate::engine::cache::{CacheConfig, OnMiss, Verdict};

    fn cache(capacity: u32, ttl_secs: u32) -> SharedCache {
        SharedCache::create(CacheConfig { capacity, ttl_secs }).unwrap()
    }

    fn dk(n: u32) -> DialogKey {
        DialogKey::new(format!("call-{n}").as_bytes(), b"tag")
    }

    fn image(cek: u8, generation: u32, at: u64, uses: u32) -> CachedKey {
        CachedKey {
            alg: 0x82,
            cek: Zeroizing::new(vec![cek; 32]),
            generation,
            created_at: at,
            last_used: at,
            uses,
        }
    }

    #[test]
    fn apply_stores_overwrites_touches_or_keeps_as_the_check_says() {
        let c = cache(8, 100);
        // no entry: the check sees None; Store puts the image as given
        let seen = c
            .apply_at(&dk(1), 1000, |e| {
                (Apply::Store(image(1, 3, 990, 0)), e.is_none())
            })
            .unwrap();
        assert!(seen);
        let e = c.peek_at(&dk(1), 1000).unwrap().unwrap();
        assert_eq!(
            (e.alg, e.generation, e.created_at, e.last_used),
            (0x82, 3, 990, 990)
        );
        assert_eq!(c.stats().unwrap().protected, 1, "generation 3: protected");
        assert_eq!(
            c.stats().unwrap().inserts,
            0,
            "a replica is not a new dialog's insert"
        );
        // Touch: later use time, higher count; times in the future are taken as now
        c.apply_at(&dk(1), 1000, |e| {
            assert_eq!(e.map(|e| e.generation), Some(3));
            (
                Apply::Touch {
                    last_used: 5000,
                    uses: 7,
                },
                (),
            )
        })
        .unwrap();
        let e = c.peek_at(&dk(1), 1000).unwrap().unwrap();
        assert_eq!((e.last_used, e.uses), (1000, 7));
        // Store over a live entry replaces key and metadata; Keep changes nothing
        c.apply_at(&dk(1), 1001, |_| (Apply::Store(image(2, 4, 1001, 0)), ()))
            .unwrap();
        c.apply_at(&dk(1), 1002, |_| (Apply::Keep, ())).unwrap();
        let e = c.peek_at(&dk(1), 1002).unwrap().unwrap();
        assert_eq!((&e.cek[..], e.generation, e.uses), (&[2u8; 32][..], 4, 0));
        assert_eq!(c.stats().unwrap().entries, 1);
        // an expired live entry is absent to the check
        assert!(c.is_expired_at(1000, 1101) && !c.is_expired_at(1000, 1100));
        let seen = c
            .apply_at(&dk(1), 1200, |e| (Apply::Keep, e.is_some()))
            .unwrap();
        assert!(!seen, "expired: the check sees no entry");
        // keys longer than a slot are refused
        let mut long = image(3, 1, 1200, 0);
        long.cek = Zeroizing::new(vec![3; 33]);
        assert!(matches!(
            c.apply_at(&dk(2), 1200, |_| (Apply::Store(long), ())),
            Err(CacheError::KeyTooLong)
        ));
        // a probationary replica (gen 1, never used) stays probationary
        c.apply_at(&dk(3), 1200, |_| (Apply::Store(image(3, 1, 1200, 0)), ()))
            .unwrap();
        assert_eq!(c.stats().unwrap().protected, 0);
        println!("apply: Store (new, protected at gen 3), Touch (max times, clamped to now), Store over, Keep; expired unseen; 33-byte key refused");
    }

    #[test]
    fn export_walks_every_live_entry_in_batches() {
        let c = cache(100, 10);
        for n in 0..30 {
            c.insert_at(&dk(n), 2, &[n as u8; 16], 1000).unwrap();
        }
        for n in 0..5 {
            c.remove(&dk(n)).unwrap();
        }
        // one used later, the rest expire at 1011
        c.with_entry_at(&[dk(29)], OnMiss::Count, 1005, |_| (Verdict::Used, ()))
            .unwrap();
        let mut seen = Vec::new();
        let mut from = Some(0);
        let mut batches = 0;
        while let Some(f) = from {
            let b = c.export_from_at(f, 7, 1008).unwrap();
            assert!(b.entries.len() <= 7);
            seen.extend(b.entries.into_iter().map(|(k, e)| (k, e.generation)));
            from = b.next;
            batches += 1;
        }
        assert_eq!(seen.len(), 25);
        assert!(seen.iter().all(|(k, _)| (5..30).any(|n| dk(n) == *k)));
        let late = c.export_from_at(0, 100, 1012).unwrap();
        assert_eq!(
            late.entries.len(),
            1,
            "only the entry used at 1005 is live at 1012"
        );
        assert!(late.next.is_none());
        println!("export: 25 live of 30 (5 removed) in {batches} batches of <= 7; at t+12 only the one used later");
    }

    #[test]
    fn export_looks_at_a_bounded_number_of_slots_per_lock() {
        let n = (crate::engine::cache::table::EXPORT_SCAN + 10) as u32;
        let c = cache(n, 0);
        for i in 0..n {
            c.insert_at(&dk(i), 2, &[1; 16], 1000).unwrap();
        }
        for i in 0..n - 1 {
            c.remove(&dk(i)).unwrap();
        }
        let b = c.export_from_at(0, 10, 1000).unwrap();
        assert!(b.entries.is_empty());
        let next = b.next.expect("more slots");
        assert_eq!(next, crate::engine::cache::table::EXPORT_SCAN);
        let b = c.export_from_at(next, 10, 1000).unwrap();
        assert_eq!((b.entries.len(), b.next), (1, None));
        println!("a sparse table of {n} slots: the first batch stops after {next} slots, the second finds the last entry");
    }
}
