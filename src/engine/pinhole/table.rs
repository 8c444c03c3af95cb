//! The pinholes of every dialog, in one anonymous shared mapping made before the fork, so that
//! the worker that sees the answer, the one that sees the BYE and the timer process that
//! refreshes all work on the same state.
//!
//! ```text
//! offset 0      Header   robust process-shared mutex, slots in use, key-message sequence
//! 64            [Slot; capacity]   fixed size, plain integers: all-zero is an empty slot
//! ...           [OfferSdp; capacity]  slot i's last offer SDP while it may be recorded
//! ```
//! The offer SDP (with its `a=crypto` keys in clear) is only kept when a recorder is
//! configured, from the offer until its 2xx answer or the dialog's end, and is zeroized then;
//! it lives apart from [`Slot`] (which is `Copy` and copied freely) and is only ever read into
//! a `Zeroizing` buffer.
//!
//! A dialog that was recorded keeps its slot after its end as *finished* (`used == 2`, no
//! flows, no keys) for the RPC; a new dialog takes a free slot first, else the finished one
//! that ended first.
//! Bounded: `capacity` dialogs; a dialog beyond it opens nothing (counted). Lookups scan the
//! slots (the table holds the dialogs with media through one proxy: thousands, not millions).
#![allow(unsafe_code)]

use std::net::IpAddr;
use std::ptr::{self, NonNull};

use zeroize::{Zeroize, Zeroizing};

use crate::engine::cache::lock::{Acquired, ShmMutex};
use crate::engine::cache::CacheError;

/// Longest Call-ID kept (longer ones open nothing).
pub const MAX_CALL_ID: usize = 128;
/// Longest tag kept.
pub const MAX_TAG: usize = 64;
/// Most media streams per offer/answer.
pub const MAX_STREAMS: usize = 8;
/// Most flows (pinholes) per dialog: RTP and RTCP both ways for every stream.
pub const MAX_DIALOG_FLOWS: usize = 4 * MAX_STREAMS;
/// Longest offer SDP kept for a recording (a longer one cannot be recorded).
pub const MAX_OFFER_SDP: usize = 4096;
/// Most dialogs a table may be made for.
pub const MAX_CAPACITY: u32 = 1 << 20;

/// An address as 16 bytes plus its family (4 or 6; 0: none).
#[repr(C)]
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Addr {
    family: u8,
    bytes: [u8; 16],
}

impl Addr {
    pub(crate) fn of(ip: IpAddr) -> Addr {
        let mut bytes = [0u8; 16];
        let family = match ip {
            IpAddr::V4(v) => {
                bytes[..4].copy_from_slice(&v.octets());
                4
            }
            IpAddr::V6(v) => {
                bytes = v.octets();
                6
            }
        };
        Addr { family, bytes }
    }

    pub(crate) fn ip(&self) -> Option<IpAddr> {
        match self.family {
            4 => {
                let mut o = [0u8; 4];
                o.copy_from_slice(&self.bytes[..4]);
                Some(IpAddr::from(o))
            }
            6 => Some(IpAddr::from(self.bytes)),
            _ => None,
        }
    }
}

/// One media stream of an offer or answer: where its RTP arrives, where its RTCP arrives
/// when it is not multiplexed (`a=rtcp`, else port + 1), and whether this side asked for
/// `a=rtcp-mux` (RTCP on the RTP port once both sides did).
#[repr(C)]
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Stream {
    pub(crate) rtp: Addr,
    pub(crate) rtp_port: u16,
    pub(crate) rtcp: Addr,
    pub(crate) rtcp_port: u16,
    pub(crate) mux: bool,
}

impl Stream {
    /// Where this side's RTCP arrives: on the RTP port when RTCP is multiplexed.
    pub(crate) fn rtcp_at(&self, mux: bool) -> (Addr, u16) {
        if mux {
            (self.rtp, self.rtp_port)
        } else {
            (self.rtcp, self.rtcp_port)
        }
    }
}

/// One pinhole as the agent holds it: media to `internal:port`, from `remote` (any source
/// when its family is 0), `remote_port` 0 for any port.
#[repr(C)]
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct FlowRec {
    pub(crate) internal: Addr,
    pub(crate) port: u16,
    pub(crate) remote: Addr,
    pub(crate) remote_port: u16,
}

/// Where a dialog stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// An offer was seen, no answer yet.
    Offered,
    /// Offer and answer seen: the exact flows are open.
    Answered,
}

impl Stage {
    /// `offered` or `answered`.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Offered => "offered",
            Stage::Answered => "answered",
        }
    }
}

/// Whether a dialog is recorded (`Slot::record`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordState {
    /// Not recorded.
    Off,
    /// To be recorded from the next answer (policy `record=1` or `sd_record_start`).
    Marked,
    /// The recorder has the keys; the flows are mirrored.
    Active,
    /// Stopped (`sd_record_stop` or the dialog's end).
    Stopped,
}

impl RecordState {
    pub(crate) fn of(v: u8) -> RecordState {
        match v {
            1 => RecordState::Marked,
            2 => RecordState::Active,
            3 => RecordState::Stopped,
            _ => RecordState::Off,
        }
    }

    /// `off`, `marked`, `active` or `stopped`.
    pub fn name(self) -> &'static str {
        match self {
            RecordState::Off => "off",
            RecordState::Marked => "marked",
            RecordState::Active => "active",
            RecordState::Stopped => "stopped",
        }
    }
}

/// One dialog. All-zero: free.
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct Slot {
    /// 0 free, 1 in use, 2 a finished recording kept for the RPC.
    pub(crate) used: u8,
    /// 1 offered, 2 answered.
    pub(crate) stage: u8,
    pub(crate) call_id_len: u8,
    pub(crate) tag_len: u8,
    pub(crate) n_offer: u8,
    pub(crate) n_flows: u8,
    /// [`RecordState`] as 0..=3.
    pub(crate) record: u8,
    /// Streams (one direction of one m= line each) the recorder was last given.
    pub(crate) record_streams: u8,
    /// When the recording started and stopped (Unix seconds; 0: not yet).
    pub(crate) record_started: u64,
    pub(crate) record_stopped: u64,
    pub(crate) call_id: [u8; MAX_CALL_ID],
    pub(crate) tag: [u8; MAX_TAG],
    /// When the first pinhole of the dialog was asked for (Unix seconds).
    pub(crate) opened_at: u64,
    /// When the agent's lifetime of the flows ends unless refreshed (Unix seconds).
    pub(crate) expires_at: u64,
    /// The last offer's streams, kept until its answer.
    pub(crate) offer: [Stream; MAX_STREAMS],
    /// What the agent holds for the dialog now.
    pub(crate) flows: [FlowRec; MAX_DIALOG_FLOWS],
    /// 1: the state came from another node of the cluster, which refreshes it
    /// (`replica.rs`); 0: this node acted on the dialog last.
    pub(crate) replica: u8,
    pub(crate) owner_len: u8,
    /// The node that refreshes the pinholes (`cluster_node`; empty without a cluster).
    pub(crate) owner: [u8; crate::engine::cluster::MAX_NODE_LEN],
    /// The version of this state replicated last (0: never).
    pub(crate) version: u64,
}

const _: () = assert!(MAX_CALL_ID == crate::engine::cluster::MAX_CALL_ID);
const _: () = assert!(MAX_TAG == crate::engine::cluster::MAX_TAG);
const _: () = assert!(MAX_DIALOG_FLOWS == crate::engine::cluster::MAX_MEDIA_FLOWS);

impl Slot {
    pub(crate) fn is(&self, call_id: &[u8], tag: &[u8]) -> bool {
        self.used == 1
            && usize::from(self.call_id_len) == call_id.len()
            && usize::from(self.tag_len) == tag.len()
            && &self.call_id[..call_id.len()] == call_id
            && &self.tag[..tag.len()] == tag
    }

    pub(crate) fn call_id(&self) -> &[u8] {
        &self.call_id[..usize::from(self.call_id_len)]
    }

    pub(crate) fn tag(&self) -> &[u8] {
        &self.tag[..usize::from(self.tag_len)]
    }

    pub(crate) fn stage(&self) -> Stage {
        if self.stage == 2 {
            Stage::Answered
        } else {
            Stage::Offered
        }
    }

    pub(crate) fn record(&self) -> RecordState {
        RecordState::of(self.record)
    }

    pub(crate) fn offer(&self) -> &[Stream] {
        &self.offer[..usize::from(self.n_offer)]
    }

    pub(crate) fn flows(&self) -> &[FlowRec] {
        &self.flows[..usize::from(self.n_flows)]
    }

    pub(crate) fn set_offer(&mut self, s: &[Stream]) {
        let n = s.len().min(MAX_STREAMS);
        self.offer[..n].copy_from_slice(&s[..n]);
        self.n_offer = n as u8;
    }

    pub(crate) fn owner(&self) -> &[u8] {
        &self.owner[..usize::from(self.owner_len).min(self.owner.len())]
    }

    pub(crate) fn set_owner(&mut self, name: &str) {
        let n = name.len().min(self.owner.len());
        self.owner = [0; crate::engine::cluster::MAX_NODE_LEN];
        self.owner[..n].copy_from_slice(&name.as_bytes()[..n]);
        self.owner_len = n as u8;
    }

    pub(crate) fn set_flows(&mut self, f: &[FlowRec]) {
        let n = f.len().min(MAX_DIALOG_FLOWS);
        self.flows[..n].copy_from_slice(&f[..n]);
        self.n_flows = n as u8;
    }
}

/// An offer SDP kept for a recording; see the module doc.
#[repr(C)]
pub(crate) struct OfferSdp {
    len: u32,
    bytes: [u8; MAX_OFFER_SDP],
}

#[repr(C)]
struct Header {
    mutex: ShmMutex,
    in_use: u32,
    /// The last key-message sequence number (0: none yet).
    sequence: u64,
}

const SLOTS_OFF: usize = 64;
const _: () = assert!(std::mem::size_of::<Header>() <= SLOTS_OFF);

/// The shared mapping; see the module doc.
pub(crate) struct Table {
    base: NonNull<u8>,
    capacity: usize,
    len: usize,
    creator_pid: u32,
}

// SAFETY: plain shared memory; every access to the slots goes through the process-shared
// mutex (which also serialises threads), nothing in it is tied to the creating thread.
unsafe impl Send for Table {}
// SAFETY: as above.
unsafe impl Sync for Table {}

/// The table, locked.
pub(crate) struct Locked<'t> {
    table: &'t Table,
}

impl Table {
    /// Maps a table for `capacity` dialogs. Call before forking.
    pub(crate) fn create(capacity: u32) -> Result<Table, CacheError> {
        if capacity == 0 {
            return Err(CacheError::ZeroCapacity);
        }
        if capacity > MAX_CAPACITY {
            return Err(CacheError::CapacityTooLarge);
        }
        let capacity = capacity as usize;
        let len = Self::sdp_off(capacity) + capacity * std::mem::size_of::<OfferSdp>();
        // SAFETY: an anonymous shared mapping without address hint or file; checked below.
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
        let Some(base) = NonNull::new(addr.cast::<u8>()) else {
            return Err(CacheError::Mmap(std::io::Error::other(
                "mmap returned NULL",
            )));
        };
        let t = Table {
            base,
            capacity,
            len,
            creator_pid: std::process::id(),
        };
        // SAFETY: the header is at the page-aligned start of the fresh, zeroed mapping and
        // nobody uses it yet.
        unsafe { ShmMutex::init(ptr::addr_of_mut!((*t.header()).mutex))? };
        Ok(t)
    }

    /// Where the offer SDPs start: after the slots, 8-aligned.
    fn sdp_off(capacity: usize) -> usize {
        (SLOTS_OFF + capacity * std::mem::size_of::<Slot>()).next_multiple_of(8)
    }

    fn header(&self) -> *mut Header {
        self.base.as_ptr().cast::<Header>()
    }

    /// Takes the lock. A process that died holding it left at most one slot half-written:
    /// slots are only written whole (copies of a `Slot`), so the table is usable as it is.
    pub(crate) fn lock(&self) -> Result<Locked<'_>, CacheError> {
        // SAFETY: the header was initialised in `create`; the mapping outlives `self`.
        let m = unsafe { &(*self.header()).mutex };
        match m.lock()? {
            Acquired::Clean | Acquired::OwnerDied => Ok(Locked { table: self }),
        }
    }

    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }
}

impl Locked<'_> {
    fn slots_ptr(&self) -> *mut Slot {
        // SAFETY: SLOTS_OFF is inside the mapping (len > SLOTS_OFF); 64 is a multiple of
        // Slot's alignment (8).
        unsafe { self.table.base.as_ptr().add(SLOTS_OFF).cast::<Slot>() }
    }

    /// Every slot.
    pub(crate) fn slots(&mut self) -> &mut [Slot] {
        // SAFETY: `capacity` slots follow SLOTS_OFF in the mapping; all-zero bytes are a valid
        // Slot (plain integers); the lock is held, so no other process or thread changes them
        // while this borrow of `self` lives.
        unsafe { std::slice::from_raw_parts_mut(self.slots_ptr(), self.table.capacity) }
    }

    fn sdp(&mut self, i: usize) -> &mut OfferSdp {
        assert!(i < self.table.capacity);
        // SAFETY: `capacity` OfferSdp follow sdp_off in the mapping (see `create`), 8-aligned
        // (OfferSdp's alignment is 4); all-zero is a valid OfferSdp; i is in range; the lock
        // is held and the borrow of `self` keeps it held.
        unsafe {
            &mut *self
                .table
                .base
                .as_ptr()
                .add(Table::sdp_off(self.table.capacity))
                .cast::<OfferSdp>()
                .add(i)
        }
    }

    /// Keeps `sdp` as slot `i`'s offer; false (and nothing kept) when it is too long.
    pub(crate) fn set_offer_sdp(&mut self, i: usize, sdp: &[u8]) -> bool {
        let o = self.sdp(i);
        o.bytes.zeroize();
        o.len = 0;
        if sdp.len() > MAX_OFFER_SDP {
            return false;
        }
        o.bytes[..sdp.len()].copy_from_slice(sdp);
        o.len = sdp.len() as u32;
        true
    }

    /// A copy of slot `i`'s offer SDP (empty when none is kept); with `clear` the shared
    /// copy is zeroized.
    pub(crate) fn offer_sdp(&mut self, i: usize, clear: bool) -> Zeroizing<Vec<u8>> {
        let o = self.sdp(i);
        let n = (o.len as usize).min(MAX_OFFER_SDP);
        let copy = Zeroizing::new(o.bytes[..n].to_vec());
        if clear {
            o.bytes[..n].zeroize();
            o.len = 0;
        }
        copy
    }

    /// The next key-message sequence number: increasing across every process; the first
    /// one after the table was made is the time in microseconds (a restarted proxy still
    /// counts upwards).
    pub(crate) fn next_sequence(&mut self) -> u64 {
        // SAFETY: the header is initialised and the lock is held.
        let h = unsafe { &mut *self.table.header() };
        h.sequence = h
            .sequence
            .max(crate::record::channel::initial_sequence())
            .saturating_add(1);
        h.sequence
    }

    /// The last key-message sequence number (0: none yet).
    pub(crate) fn sequence(&self) -> u64 {
        // SAFETY: the header is initialised and the lock is held.
        unsafe { (*self.table.header()).sequence }
    }

    /// Raises the key-message sequence to at least `seq` (another node's, so that the stop
    /// this node sends for its recording is newer for the recorder).
    pub(crate) fn raise_sequence(&mut self, seq: u64) {
        // SAFETY: the header is initialised and the lock is held.
        let h = unsafe { &mut *self.table.header() };
        h.sequence = h.sequence.max(seq);
    }

    /// The slot of a dialog, if it has one.
    pub(crate) fn find(&mut self, call_id: &[u8], tags: &[&[u8]]) -> Option<usize> {
        let slots = self.slots();
        tags.iter()
            .find_map(|t| slots.iter().position(|s| s.is(call_id, t)))
    }

    /// A free slot for a new dialog, if any.
    pub(crate) fn insert(&mut self, call_id: &[u8], tag: &[u8], now: u64) -> Option<usize> {
        if call_id.len() > MAX_CALL_ID || tag.len() > MAX_TAG || call_id.is_empty() {
            return None;
        }
        let i = match self.slots().iter().position(|s| s.used == 0) {
            Some(i) => i,
            // the finished recording that ended first gives its place
            None => self
                .slots()
                .iter()
                .enumerate()
                .filter(|(_, s)| s.used == 2)
                .min_by_key(|(_, s)| s.record_stopped)
                .map(|(i, _)| i)?,
        };
        self.set_offer_sdp(i, &[]);
        let s = &mut self.slots()[i];
        // SAFETY: Slot is plain integers: all-zero is a valid (free) slot.
        *s = unsafe { std::mem::zeroed() };
        s.used = 1;
        s.stage = 1;
        s.call_id[..call_id.len()].copy_from_slice(call_id);
        s.call_id_len = call_id.len() as u8;
        s.tag[..tag.len()].copy_from_slice(tag);
        s.tag_len = tag.len() as u8;
        s.opened_at = now;
        // SAFETY: the header is initialised and the lock is held.
        unsafe { (*self.table.header()).in_use += 1 };
        Some(i)
    }

    /// Frees slot `i`, returning what it held. With `keep` a recorded dialog stays as a
    /// finished recording (no flows, no offer, no keys) for the RPC.
    pub(crate) fn remove(&mut self, i: usize, keep: bool) -> Slot {
        let s = self.slots()[i];
        self.set_offer_sdp(i, &[]);
        if s.used == 1 && keep {
            let f = &mut self.slots()[i];
            f.used = 2;
            f.n_flows = 0;
            f.n_offer = 0;
            f.expires_at = 0;
            // SAFETY: the header is initialised and the lock is held.
            unsafe { (*self.table.header()).in_use -= 1 };
        } else if s.used == 1 {
            // SAFETY: as in `insert`.
            self.slots()[i] = unsafe { std::mem::zeroed() };
            // SAFETY: the header is initialised and the lock is held.
            unsafe { (*self.table.header()).in_use -= 1 };
        }
        s
    }

    /// Dialogs in the table.
    pub(crate) fn in_use(&self) -> u32 {
        // SAFETY: the header is initialised and the lock is held.
        unsafe { (*self.table.header()).in_use }
    }
}

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        // SAFETY: as in `Table::lock`; this guard holds the lock.
        unsafe { (*self.table.header()).mutex.unlock() };
    }
}

impl Drop for Table {
    fn drop(&mut self) {
        if std::process::id() == self.creator_pid {
            // SAFETY: the mapping made in `create`, with its length; not used afterwards.
            unsafe { libc::munmap(self.base.as_ptr().cast(), self.len) };
        }
    }
}
