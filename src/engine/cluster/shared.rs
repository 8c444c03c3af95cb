//! The cluster state every process of the server shares: this node's message counter and what
//! it knows of its peers (the anti-replay window of each, and what the `sipsd.cluster` RPC
//! shows). One anonymous shared mapping made before the fork, like the dialog key cache; the
//! peer table is guarded by the same kind of robust process-shared mutex
//! (`engine::cache::lock`), so checking a counter against the window and recording it are one
//! step even when two DMQ workers receive the same message at once.
#![allow(unsafe_code)]

use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::engine::cache::lock::{Acquired, ShmMutex};
use crate::engine::cache::CacheError;

use super::message::MAX_NODE_LEN;

/// Most peers remembered; the one heard from least recently makes room for a new one.
pub const MAX_PEERS: usize = 16;
/// Longest peer address kept (the DMQ node URI it was heard from).
pub const MAX_ADDR_LEN: usize = 128;
/// How far below the highest counter seen a message may still arrive (once): UDP and
/// several DMQ workers reorder messages.
pub const WINDOW: u64 = 64;

/// One peer (all zero: an empty slot).
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct PeerSlot {
    used: u8,
    name_len: u8,
    addr_len: u8,
    _pad: [u8; 5],
    name: [u8; MAX_NODE_LEN],
    addr: [u8; MAX_ADDR_LEN],
    /// The highest counter accepted, and a bit per counter below it (bit n: highest - n).
    highest: u64,
    window: u64,
    first_seen_ms: u64,
    last_seen_ms: u64,
    messages: u64,
    keys: u64,
    ends: u64,
    last_sync_ms: u64,
    /// Keys stored by the sync in progress from this peer.
    sync_keys: u64,
}

/// What is known of one peer, for the RPC.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerInfo {
    /// Its `cluster_node` name (from its authenticated messages).
    pub node: String,
    /// The DMQ address it was last heard from.
    pub addr: String,
    /// Unix milliseconds of its first and last accepted message.
    pub first_seen_ms: u64,
    pub last_seen_ms: u64,
    /// Messages accepted from it.
    pub messages: u64,
    /// Dialog keys it sent that were stored here, and dialog ends that removed one here.
    pub keys: u64,
    pub ends: u64,
    /// Unix milliseconds of the last complete sync it sent us (0: none).
    pub last_sync_ms: u64,
    /// The highest message counter accepted from it.
    pub highest_counter: u64,
}

impl PeerSlot {
    fn name(&self) -> &[u8] {
        &self.name[..usize::from(self.name_len).min(MAX_NODE_LEN)]
    }

    fn info(&self) -> PeerInfo {
        PeerInfo {
            node: String::from_utf8_lossy(self.name()).into_owned(),
            addr: String::from_utf8_lossy(
                &self.addr[..usize::from(self.addr_len).min(MAX_ADDR_LEN)],
            )
            .into_owned(),
            first_seen_ms: self.first_seen_ms,
            last_seen_ms: self.last_seen_ms,
            messages: self.messages,
            keys: self.keys,
            ends: self.ends,
            last_sync_ms: self.last_sync_ms,
            highest_counter: self.highest,
        }
    }

    fn set_addr(&mut self, addr: &str) {
        let n = addr.len().min(MAX_ADDR_LEN);
        self.addr = [0; MAX_ADDR_LEN];
        self.addr[..n].copy_from_slice(&addr.as_bytes()[..n]);
        self.addr_len = u8::try_from(n).unwrap_or(0);
    }

    /// The anti-replay check and record of RFC 4303 §3.4.3 over a 64-message window: a
    /// counter above the highest moves the window; one inside it is taken once.
    fn admit(&mut self, counter: u64) -> bool {
        if counter > self.highest {
            let shift = counter - self.highest;
            self.window = if shift >= WINDOW {
                1
            } else {
                (self.window << shift) | 1
            };
            self.highest = counter;
            return true;
        }
        let behind = self.highest - counter;
        if behind >= WINDOW || self.window & (1 << behind) != 0 {
            return false;
        }
        self.window |= 1 << behind;
        true
    }
}

/// The shared part. `peers` only with `mutex` held.
#[repr(C)]
struct State {
    mutex: ShmMutex,
    counter: AtomicU64,
    started_ms: u64,
    sync_requested_ms: AtomicU64,
    sync_served_ms: AtomicU64,
    peers: [PeerSlot; MAX_PEERS],
}

/// Why [`Shared::admit`] refused a message.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The counter was seen, or is older than the window.
    Replay,
}

struct Unlock<'a>(&'a ShmMutex);

impl Drop for Unlock<'_> {
    fn drop(&mut self) {
        self.0.unlock();
    }
}

/// This process's mapping of the shared cluster state.
pub(crate) struct Shared {
    base: NonNull<State>,
    creator_pid: u32,
}

// SAFETY: the mapping is shared memory whose mutable part (`peers`) is only reached with the
// process-shared mutex held (which also serialises threads); the rest are atomics or written
// once before anyone else can see the mapping.
unsafe impl Send for Shared {}
// SAFETY: as above.
unsafe impl Sync for Shared {}

impl Shared {
    /// Maps and initialises the state; the message counter starts at `now_ms * 1000` so that
    /// it keeps increasing across restarts (docs/PROTOCOL.md §8.3). Call before forking.
    pub(crate) fn create(now_ms: u64) -> Result<Shared, CacheError> {
        let len = std::mem::size_of::<State>();
        // SAFETY: an anonymous shared mapping, no address hint, no file; checked below.
        let addr = unsafe {
            libc::mmap(
                ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if addr == libc::MAP_FAILED {
            return Err(CacheError::Mmap(std::io::Error::last_os_error()));
        }
        let Some(base) = NonNull::new(addr.cast::<State>()) else {
            return Err(CacheError::Mmap(std::io::Error::other(
                "mmap returned NULL",
            )));
        };
        let state = base.as_ptr();
        // SAFETY: the mapping is fresh, zero-filled (a valid State apart from the mutex),
        // page aligned and size_of::<State>() long; nobody else sees it yet. Fields are
        // written through raw pointers, never through references to uninitialised data.
        unsafe {
            ptr::addr_of_mut!((*state).counter).write(AtomicU64::new(now_ms.saturating_mul(1000)));
            ptr::addr_of_mut!((*state).started_ms).write(now_ms);
        }
        let shared = Shared {
            base,
            creator_pid: std::process::id(),
        };
        // SAFETY: the mutex lies inside the fresh mapping, aligned (repr(C) at a page-aligned
        // base), and is not used by anybody yet.
        unsafe { ShmMutex::init(ptr::addr_of_mut!((*state).mutex))? };
        Ok(shared)
    }

    fn state(&self) -> &State {
        // SAFETY: `create` initialised the State at the base of the mapping, which lives as
        // long as `self`. Through `&State` only the mutex (an UnsafeCell), the atomics and
        // the never-rewritten `started_ms` are read; `peers` is reached only in `with_peers`.
        unsafe { self.base.as_ref() }
    }

    /// The next message counter of this node (every process draws from the same one).
    pub(crate) fn next_counter(&self) -> u64 {
        self.state().counter.fetch_add(1, Ordering::SeqCst)
    }

    /// Unix milliseconds this node's cluster state was created (the server started).
    pub(crate) fn started_ms(&self) -> u64 {
        self.state().started_ms
    }

    pub(crate) fn note_sync_requested(&self, now_ms: u64) {
        self.state()
            .sync_requested_ms
            .store(now_ms, Ordering::Relaxed);
    }

    pub(crate) fn note_sync_served(&self, now_ms: u64) {
        self.state().sync_served_ms.store(now_ms, Ordering::Relaxed);
    }

    /// (last sync requested, last sync served), Unix milliseconds, 0 for never.
    pub(crate) fn sync_times(&self) -> (u64, u64) {
        let s = self.state();
        (
            s.sync_requested_ms.load(Ordering::Relaxed),
            s.sync_served_ms.load(Ordering::Relaxed),
        )
    }

    /// Runs `f` on the peer table with the lock held.
    fn with_peers<R>(
        &self,
        f: impl FnOnce(&mut [PeerSlot; MAX_PEERS]) -> R,
    ) -> Result<R, CacheError> {
        let mutex = &self.state().mutex;
        let acquired = mutex.lock()?;
        // unlocks when dropped, also if `f` panics (the C boundary catches the panic)
        let _unlock = Unlock(mutex);
        // SAFETY: we hold the process-shared mutex, so no other process or thread touches
        // `peers` until we unlock below; the pointer lies inside the live mapping and every
        // bit pattern is a valid PeerSlot.
        let peers = unsafe { &mut *ptr::addr_of_mut!((*self.base.as_ptr()).peers) };
        if acquired == Acquired::OwnerDied {
            // A holder died mid-update: its slot may be half written; the windows of the
            // others are still right, and a half-written slot only forgets a peer.
            for p in peers.iter_mut() {
                if usize::from(p.name_len) > MAX_NODE_LEN || usize::from(p.addr_len) > MAX_ADDR_LEN
                {
                    *p = PeerSlot::zeroed();
                }
            }
        }
        Ok(f(peers))
    }

    /// Checks `counter` of `node` against its window and records it (one step, under the
    /// lock); a node not seen before takes a free slot, or the least recently heard one's.
    /// `keys` and `ends` are added to the peer's figures, and a complete sync is noted, only
    /// when the message is admitted.
    pub(crate) fn admit(
        &self,
        node: &str,
        counter: u64,
        addr: &str,
        now_ms: u64,
    ) -> Result<Result<(), Refusal>, CacheError> {
        self.with_peers(|peers| {
            let slot = match peers
                .iter()
                .position(|p| p.used != 0 && p.name() == node.as_bytes())
            {
                Some(i) => &mut peers[i],
                None => {
                    let i = peers
                        .iter()
                        .position(|p| p.used == 0)
                        .or_else(|| {
                            peers
                                .iter()
                                .enumerate()
                                .min_by_key(|(_, p)| p.last_seen_ms)
                                .map(|(i, _)| i)
                        })
                        .unwrap_or(0);
                    let p = &mut peers[i];
                    *p = PeerSlot::zeroed();
                    let n = node.len().min(MAX_NODE_LEN);
                    p.name[..n].copy_from_slice(&node.as_bytes()[..n]);
                    p.name_len = u8::try_from(n).unwrap_or(0);
                    p.used = 1;
                    p.first_seen_ms = now_ms;
                    // the first message sets the window
                    p.highest = counter.saturating_sub(1);
                    p
                }
            };
            if !slot.admit(counter) {
                return Err(Refusal::Replay);
            }
            slot.last_seen_ms = now_ms;
            slot.messages += 1;
            if !addr.is_empty() {
                slot.set_addr(addr);
            }
            Ok(())
        })
    }

    /// Adds to what a peer's admitted message did here. For a part of a sync, `sync` is
    /// `Some(None)`, for its last part `Some(Some(now_ms))`: then the keys the whole sync
    /// stored are returned.
    pub(crate) fn note_applied(
        &self,
        node: &str,
        keys: u64,
        ends: u64,
        sync: Option<Option<u64>>,
    ) -> Result<Option<u64>, CacheError> {
        self.with_peers(|peers| {
            let p = peers
                .iter_mut()
                .find(|p| p.used != 0 && p.name() == node.as_bytes())?;
            p.keys += keys;
            p.ends += ends;
            let done = sync?;
            p.sync_keys += keys;
            let t = done?;
            p.last_sync_ms = t;
            Some(std::mem::take(&mut p.sync_keys))
        })
    }

    /// Every known peer, most recently heard first.
    pub(crate) fn peers(&self) -> Result<Vec<PeerInfo>, CacheError> {
        let mut out = self.with_peers(|peers| {
            peers
                .iter()
                .filter(|p| p.used != 0)
                .map(PeerSlot::info)
                .collect::<Vec<_>>()
        })?;
        out.sort_by_key(|p| std::cmp::Reverse(p.last_seen_ms));
        Ok(out)
    }
}

impl PeerSlot {
    const fn zeroed() -> PeerSlot {
        PeerSlot {
            used: 0,
            name_len: 0,
            addr_len: 0,
            _pad: [0; 5],
            name: [0; MAX_NODE_LEN],
            addr: [0; MAX_ADDR_LEN],
            highest: 0,
            window: 0,
            first_seen_ms: 0,
            last_seen_ms: 0,
            messages: 0,
            keys: 0,
            ends: 0,
            last_sync_ms: 0,
            sync_keys: 0,
        }
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        if std::process::id() == self.creator_pid {
            // SAFETY: base/len are exactly the mapping `create` made; nothing borrows it now
            // (every borrow is tied to `&self`).
            unsafe { libc::munmap(self.base.as_ptr().cast(), std::mem::size_of::<State>()) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_takes_each_counter_once_and_nothing_too_old() {
        let s = Shared::create(1_000).unwrap();
        let ok = |c: u64| s.admit("p1b", c, "sip:10.0.0.2:5090", 5).unwrap() == Ok(());
        assert!(ok(1000), "first message");
        assert!(!ok(1000), "the same again");
        assert!(ok(1003), "ahead");
        assert!(ok(1001), "late but inside the window, once");
        assert!(!ok(1001));
        assert!(ok(1002));
        assert!(ok(1003 + 100), "far ahead");
        assert!(!ok(1003), "now behind the window");
        assert!(ok(1103 - 63), "just inside");
        assert!(!ok(1103 - 64), "just outside");
        let peers = s.peers().unwrap();
        assert_eq!(peers.len(), 1);
        assert_eq!(
            (peers[0].node.as_str(), peers[0].addr.as_str()),
            ("p1b", "sip:10.0.0.2:5090")
        );
        assert_eq!((peers[0].messages, peers[0].highest_counter), (6, 1103));
        println!("window: counters 1000, 1003, 1001, 1002, 1103, 1040 taken once each; replays and 1039 (64 behind) refused; {:?}", peers[0]);
    }

    #[test]
    fn counter_starts_at_the_clock_and_is_shared_across_fork() {
        let s = Shared::create(1_700_000_000_000).unwrap();
        assert_eq!(s.next_counter(), 1_700_000_000_000_000);
        // SAFETY: fork in a test: the child only touches the shared mapping and exits.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            for _ in 0..10 {
                s.next_counter();
            }
            // SAFETY: leave the child without running the test harness's destructors.
            unsafe { libc::_exit(0) };
        }
        let mut status = 0;
        // SAFETY: waiting for the child forked above.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        assert_eq!(s.next_counter(), 1_700_000_000_000_011);
        println!(
            "counter: starts at started_ms*1000, a forked child's draws are seen by the parent"
        );
    }

    #[test]
    fn a_full_table_forgets_the_peer_heard_from_least_recently() {
        let s = Shared::create(0).unwrap();
        for i in 0..MAX_PEERS as u64 {
            s.admit(&format!("n{i}"), 10, "", 100 + i).unwrap().unwrap();
        }
        s.admit("n0", 11, "", 200).unwrap().unwrap();
        s.admit("new", 1, "", 300).unwrap().unwrap();
        let names: Vec<String> = s.peers().unwrap().into_iter().map(|p| p.node).collect();
        assert_eq!(names.len(), MAX_PEERS);
        assert!(names.contains(&"n0".to_string()) && names.contains(&"new".to_string()));
        assert!(
            !names.contains(&"n1".to_string()),
            "n1 was heard from least recently"
        );
        println!("{MAX_PEERS} peers: a new one replaced n1 (least recently heard), n0 stayed");
    }
}
