//! The shared mapping: `MAP_SHARED | MAP_ANONYMOUS`, created before fork so every worker
//! inherits it, and its layout.
//!
//! ```text
//! offset 0         Control      ttl, hash key, epoch, robust mutex
//! table_off        TableHeader  dirty flag, touched slots, entries, lists, counters
//! buckets_off      [Link; nbuckets]   bucket heads (nbuckets = capacity rounded up to 2^k)
//! slots_off        [Slot; capacity]   104 bytes each
//! ```
//! All-zero memory is a valid empty table, so creating the cache touches only the first page.
//! The region holds no pointers; links are slot indices plus one.
#![allow(unsafe_code)]

use std::ops::{Deref, DerefMut};
use std::ptr::{self, NonNull};
use std::sync::atomic::AtomicU64;

use super::lock::{Acquired, ShmMutex};
use super::table::{Link, Slot, Table, TableHeader, SLOT_SIZE};
use super::{CacheConfig, CacheError, MAX_CAPACITY};

const ALIGN: usize = 64;

/// The immutable-after-create part of the header, plus the two things every process touches
/// without holding the lock through a `&mut`: the mutex and the epoch counter.
#[repr(C)]
pub(crate) struct Control {
    ttl_secs: u32,
    /// Random SipHash key of the bucket index, drawn once at creation (see `table.rs`).
    hash_key: [u8; 16],
    pub(crate) epoch: AtomicU64,
    mutex: ShmMutex,
}

#[derive(Clone, Copy, Debug)]
struct Layout {
    capacity: usize,
    nbuckets: usize,
    table_off: usize,
    buckets_off: usize,
    slots_off: usize,
    len: usize,
}

fn align_up(x: usize) -> usize {
    x.div_ceil(ALIGN) * ALIGN
}

impl Layout {
    fn new(capacity: u32) -> Result<Layout, CacheError> {
        if capacity == 0 {
            return Err(CacheError::ZeroCapacity);
        }
        if capacity > MAX_CAPACITY {
            return Err(CacheError::CapacityTooLarge);
        }
        let capacity = capacity as usize;
        let nbuckets = capacity.next_power_of_two();
        let table_off = align_up(std::mem::size_of::<Control>());
        let buckets_off = align_up(table_off + std::mem::size_of::<TableHeader>());
        let slots_off = align_up(buckets_off + nbuckets * std::mem::size_of::<Link>());
        let len = slots_off + capacity * SLOT_SIZE;
        Ok(Layout {
            capacity,
            nbuckets,
            table_off,
            buckets_off,
            slots_off,
            len,
        })
    }
}

/// One mapping of the shared region in this process.
///
/// Dropping it in the process that created it wipes the table (zeroizing every slot) and
/// unmaps; in any other process (a forked worker) the mapping is simply left alone.
pub(crate) struct Region {
    base: NonNull<u8>,
    layout: Layout,
    creator_pid: u32,
}

// SAFETY: the region is plain shared memory; all mutable access to the table goes through the
// process-shared mutex (which also serialises threads), the epoch is atomic, and the rest of
// `Control` is immutable after `create`. Nothing in it is tied to the creating thread.
unsafe impl Send for Region {}
// SAFETY: as above.
unsafe impl Sync for Region {}

impl Region {
    pub(crate) fn create(cfg: CacheConfig) -> Result<Region, CacheError> {
        let layout = Layout::new(cfg.capacity)?;
        let mut hash_key = [0u8; 16];
        getrandom::fill(&mut hash_key).map_err(|_| CacheError::Rng)?;
        // SAFETY: an anonymous shared mapping with no address hint and no file; the arguments
        // are valid and the result is checked against MAP_FAILED.
        let addr = unsafe {
            libc::mmap(
                ptr::null_mut(),
                layout.len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if addr == libc::MAP_FAILED {
            return Err(CacheError::Mmap(std::io::Error::last_os_error()));
        }
        let Some(base) = NonNull::new(addr.cast::<u8>()) else {
            return Err(CacheError::Mmap(std::io::Error::other(
                "mmap returned NULL",
            )));
        };
        // Keep the keys out of core dumps. Best effort: a kernel without MADV_DONTDUMP only
        // loses this extra protection, so the result is deliberately ignored.
        // SAFETY: advice on exactly the range we just mapped; it does not change its contents.
        unsafe { libc::madvise(addr, layout.len, libc::MADV_DONTDUMP) };
        let region = Region {
            base,
            layout,
            creator_pid: std::process::id(),
        };
        let control = region.base.as_ptr().cast::<Control>();
        // SAFETY: the mapping is fresh, zero-filled, page aligned and at least
        // size_of::<Control>() long; nobody else can see it yet (no fork has happened since).
        // Fields are written through raw pointers, never through a reference to
        // uninitialised data.
        unsafe {
            ptr::addr_of_mut!((*control).ttl_secs).write(cfg.ttl_secs);
            ptr::addr_of_mut!((*control).hash_key).write(hash_key);
            ptr::addr_of_mut!((*control).epoch).write(AtomicU64::new(0));
        }
        // SAFETY: the mutex field lies inside the fresh mapping, is suitably aligned (repr(C)
        // struct at a page-aligned base) and is not used by anybody yet.
        let init = unsafe { ShmMutex::init(ptr::addr_of_mut!((*control).mutex)) };
        init?;
        Ok(region)
    }

    pub(crate) fn len(&self) -> usize {
        self.layout.len
    }

    /// Seconds an entry lives after its last use (0: no expiry), fixed at creation.
    pub(crate) fn ttl_secs(&self) -> u32 {
        self.control().ttl_secs
    }

    pub(crate) fn control(&self) -> &Control {
        // SAFETY: `create` initialised the Control at the base of the mapping, which stays
        // mapped as long as `self` lives. Fields other than the mutex (UnsafeCell) and the
        // epoch (atomic) are never written again, so a shared reference is sound.
        unsafe { &*self.base.as_ptr().cast::<Control>() }
    }

    /// Take the process-shared lock and return the typed table view.
    pub(crate) fn lock(&self) -> Result<TableGuard<'_>, CacheError> {
        let mutex = &self.control().mutex;
        let acquired = mutex.lock()?;
        Ok(self.guard(acquired))
    }

    /// Like `lock` but gives up (returns `Ok(None)`) if the lock is busy.
    pub(crate) fn try_lock(&self) -> Result<Option<TableGuard<'_>>, CacheError> {
        let mutex = &self.control().mutex;
        Ok(mutex.try_lock()?.map(|acquired| self.guard(acquired)))
    }

    fn guard(&self, acquired: Acquired) -> TableGuard<'_> {
        let ttl = self.control().ttl_secs;
        let hash_key = self.control().hash_key;
        let base = self.base.as_ptr();
        let l = self.layout;
        // SAFETY: we hold the process-shared mutex (the caller just acquired it), so no other
        // process or thread accesses the table part of the region until the guard unlocks;
        // within this process only this guard holds references into it. The three parts are
        // disjoint, inside the mapping, aligned (64-byte offsets from a page-aligned base) and
        // their types are valid for any bit pattern, including the initial zeroes.
        let table = unsafe {
            let hdr = &mut *base.add(l.table_off).cast::<TableHeader>();
            let buckets =
                std::slice::from_raw_parts_mut(base.add(l.buckets_off).cast::<Link>(), l.nbuckets);
            let slots =
                std::slice::from_raw_parts_mut(base.add(l.slots_off).cast::<Slot>(), l.capacity);
            Table::new(hdr, buckets, slots, ttl, hash_key)
        };
        TableGuard {
            mutex: &self.control().mutex,
            table,
            owner_died: acquired == Acquired::OwnerDied,
        }
    }

    /// Wipe the table if the lock can be had within about 100 ms (a live process holding it
    /// forever must not hang shutdown). Returns whether the wipe happened.
    fn wipe_for_shutdown(&self) -> bool {
        for _ in 0..50 {
            match self.try_lock() {
                Ok(Some(mut guard)) => {
                    if guard.owner_died || guard.is_dirty() {
                        guard.recover();
                    }
                    guard.wipe();
                    return true;
                }
                Ok(None) => std::thread::sleep(std::time::Duration::from_millis(2)),
                Err(_) => return false,
            }
        }
        false
    }

    /// Test support: the address the region is mapped at in this process.
    #[cfg(test)]
    pub(crate) fn base_addr(&self) -> usize {
        self.base.as_ptr() as usize
    }

    /// Test support: a copy of the raw bytes of every slot.
    #[cfg(test)]
    pub(crate) fn slot_bytes(guard: &TableGuard<'_>) -> Vec<u8> {
        let slots = guard.slots_ref();
        // SAFETY: `Slot` is repr(C) with no padding (size asserted in table.rs), so every byte
        // of the slice is initialised; the shared borrow of the guard keeps it alive.
        let bytes = unsafe {
            std::slice::from_raw_parts(slots.as_ptr().cast::<u8>(), std::mem::size_of_val(slots))
        };
        bytes.to_vec()
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        if std::process::id() != self.creator_pid {
            return;
        }
        self.wipe_for_shutdown();
        // SAFETY: base/len describe exactly the mapping made in `create`, and this is the last
        // use of `self`: every guard borrows the region, so none is alive during drop.
        unsafe { libc::munmap(self.base.as_ptr().cast(), self.layout.len) };
    }
}

/// The table, locked. Unlocks on drop.
pub(crate) struct TableGuard<'a> {
    mutex: &'a ShmMutex,
    table: Table<'a>,
    /// The previous holder died with the lock; the caller must run `Table::recover`.
    pub(crate) owner_died: bool,
}

impl<'a> Deref for TableGuard<'a> {
    type Target = Table<'a>;
    fn deref(&self) -> &Table<'a> {
        &self.table
    }
}

impl<'a> DerefMut for TableGuard<'a> {
    fn deref_mut(&mut self) -> &mut Table<'a> {
        &mut self.table
    }
}

impl Drop for TableGuard<'_> {
    fn drop(&mut self) {
        self.mutex.unlock();
    }
}
