//! `sd_cluster_*`: the dialog key cache replicated between the nodes of a cluster
//! (docs/PROTOCOL.md §8). The library seals and opens the messages and applies them; the SIP
//! server's glue only carries them (Kamailio: DMQ, `sipsd_dmq.c`):
//!
//! - after every call that may change a dialog key (`sd_unwrap_body`, `sd_rotate`,
//!   `sd_dialog_end`, `sd_dialog_end_msg`) or a dialog's pinholes or recording
//!   (`sd_pinhole_open`, `sd_pinhole_close*`, `sd_pinhole_refresh`, `sd_record_stop`), the
//!   same process calls `sd_cluster_take` until it gives nothing and broadcasts each message;
//! - at start (and on rejoining) it broadcasts `sd_cluster_sync_request`;
//! - every message from another node goes to `sd_cluster_receive`; a sync request is answered
//!   with the parts of `sd_cluster_sync_next`, sent to that node only.
//!
//! Messages are base64 text (no NUL), at most `SD_CLUSTER_MSG_MAX` bytes, with the content
//! type `sd_cluster_content_type()`.

use std::ffi::c_char;

use super::boundary::{
    ffi_boundary, read_or_default, sd_str, try_mut, try_out, try_ref, try_res, try_slice,
};
use super::ctx::sd_ctx;
use super::result::{fail, sd_result};
use crate::engine::cluster::{self, Kind, MediaStore, PeerInfo, Received};
use crate::engine::Error;

/// Sizes of the cluster interface.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum sd_cluster_size {
    /// The largest message the library makes: a buffer this size always fits.
    SD_CLUSTER_MSG_MAX = 2048,
    /// Bytes of a node name field, its NUL included.
    SD_CLUSTER_NAME_SIZE = 65,
    /// Bytes of an address field, its NUL included.
    SD_CLUSTER_ADDR_SIZE = 129,
}

const NAME_SIZE: usize = 65;
const ADDR_SIZE: usize = 129;
const _: () = assert!(sd_cluster_size::SD_CLUSTER_MSG_MAX as usize == cluster::MAX_MESSAGE_LEN);
const _: () = assert!(NAME_SIZE == sd_cluster_size::SD_CLUSTER_NAME_SIZE as usize);
const _: () = assert!(NAME_SIZE == cluster::MAX_NODE_LEN + 1);
const _: () = assert!(ADDR_SIZE == sd_cluster_size::SD_CLUSTER_ADDR_SIZE as usize);
const _: () = assert!(ADDR_SIZE == cluster::MAX_ADDR_LEN + 1);

/// What a received message was.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum sd_cluster_kind {
    /// Keys stored or rotated and dialogs ended on the sender, as they happened.
    SD_CLUSTER_UPDATE = 0,
    /// The sender started or rejoined: answer it with `sd_cluster_sync_next`.
    SD_CLUSTER_SYNC_REQUEST = 1,
    /// A part of the sender's full sync; more follows.
    SD_CLUSTER_SYNC_DATA = 2,
    /// The last part of the sender's full sync.
    SD_CLUSTER_SYNC_DONE = 3,
}

impl From<Kind> for sd_cluster_kind {
    fn from(k: Kind) -> sd_cluster_kind {
        match k {
            Kind::Update => sd_cluster_kind::SD_CLUSTER_UPDATE,
            Kind::SyncRequest => sd_cluster_kind::SD_CLUSTER_SYNC_REQUEST,
            Kind::SyncData => sd_cluster_kind::SD_CLUSTER_SYNC_DATA,
            Kind::SyncDone => sd_cluster_kind::SD_CLUSTER_SYNC_DONE,
        }
    }
}

/// What `sd_cluster_receive` did with an accepted message. Owned by the caller.
#[repr(C)]
pub struct sd_cluster_rx {
    /// What the message was.
    pub kind: sd_cluster_kind,
    /// Dialog keys stored (a dialog not known here, or a newer generation).
    pub stored: u32,
    /// Keys known here with the same generation: use time refreshed.
    pub refreshed: u32,
    /// Keys not applied: an older generation, or the same generation with another key.
    pub stale: u32,
    /// Keys already past the TTL here.
    pub expired: u32,
    /// Dialog ends that removed a key here.
    pub ended: u32,
    /// On `SD_CLUSTER_SYNC_DONE`: the keys the whole sync stored here.
    pub sync_stored: u32,
    /// Pinhole/recording states stored here (a dialog not held here, or a newer version).
    pub media_stored: u32,
    /// Closed states that removed a dialog's pinholes here (the agent was not asked).
    pub media_closed: u32,
    /// Pinhole/recording states not applied (not newer, a close of nothing, a full table, or
    /// no `pinhole_agent` here).
    pub media_stale: u32,
    /// The sender's node name, NUL-terminated.
    pub node: [c_char; 65],
}

impl From<&Received> for sd_cluster_rx {
    fn from(r: &Received) -> sd_cluster_rx {
        let mut node = [0; 65];
        fill(&mut node, &r.node);
        sd_cluster_rx {
            kind: r.kind.into(),
            stored: r.stored,
            refreshed: r.refreshed,
            stale: r.stale,
            expired: r.expired,
            ended: r.ended,
            sync_stored: r.sync_stored,
            media_stored: r.media_stored,
            media_closed: r.media_closed,
            media_stale: r.media_stale,
            node,
        }
    }
}

/// One peer, as `sd_cluster_peer` reports it. Owned by the caller.
#[repr(C)]
pub struct sd_cluster_peer_info {
    /// Its node name, NUL-terminated.
    pub node: [c_char; 65],
    /// The address it was last heard from (what the glue passed to `sd_cluster_receive`).
    pub addr: [c_char; 129],
    /// Unix milliseconds of its first and last accepted message.
    pub first_seen_ms: u64,
    /// See `first_seen_ms`.
    pub last_seen_ms: u64,
    /// Messages accepted from it.
    pub messages: u64,
    /// Its keys stored here.
    pub keys: u64,
    /// Its dialog ends that removed a key here.
    pub ends: u64,
    /// Unix milliseconds of the last full sync it completed to us (0: none).
    pub last_sync_ms: u64,
    /// The highest message counter accepted from it.
    pub highest_counter: u64,
}

/// This node, as `sd_cluster_info` reports it. Owned by the caller.
#[repr(C)]
pub struct sd_cluster_self_info {
    /// `cluster_node`, NUL-terminated.
    pub node: [c_char; 65],
    /// Unix milliseconds the context was made (the server started).
    pub started_ms: u64,
    /// Unix milliseconds of the last sync request this node made (0: none).
    pub sync_requested_ms: u64,
    /// Unix milliseconds of the last full sync this node sent (0: none).
    pub sync_served_ms: u64,
    /// Peers heard from.
    pub peers: u32,
}

/// The pinhole table, where replicated pinhole and recording states go (with `pinhole_agent`).
fn media_store(ctx: &sd_ctx) -> Option<&dyn MediaStore> {
    ctx.pinholes.as_ref().map(|p| p as &dyn MediaStore)
}

/// Copies `s` into a NUL-terminated C array (cut at its size).
fn fill<const N: usize>(out: &mut [c_char; N], s: &str) {
    let n = s.len().min(N - 1);
    for (o, b) in out.iter_mut().zip(&s.as_bytes()[..n]) {
        *o = *b as c_char;
    }
    out[n..].fill(0);
}

/// A buffer every message fits in, checked before anything is taken from the pending
/// changes (so a small buffer loses nothing).
fn buffer_ok(buf: *mut u8, cap: usize) -> Result<(), sd_result> {
    if buf.is_null() || cap < cluster::MAX_MESSAGE_LEN {
        // the detail for sd_last_error(); the code says it is the caller's argument
        let _ = fail(&Error::Config(format!(
            "the buffer must hold SD_CLUSTER_MSG_MAX ({}) bytes, not {cap}",
            cluster::MAX_MESSAGE_LEN
        )));
        return Err(sd_result::SD_ERR_INVALID_ARGUMENT);
    }
    Ok(())
}

/// Writes `text` into `buf` (`cap` bytes) and its length into `len`.
///
/// # Safety
/// `buf` points at `cap` writable bytes (or is NULL with `cap` 0).
unsafe fn write_out(text: &str, buf: *mut u8, cap: usize, len: &mut usize) -> sd_result {
    if text.len() > cap || buf.is_null() {
        *len = 0;
        let _ = fail(&Error::Config(format!(
            "a buffer of {cap} bytes is too small for a {}-byte replication message",
            text.len()
        )));
        return sd_result::SD_ERR_INVALID_ARGUMENT;
    }
    // SAFETY: non-null, and the caller promises `cap >= text.len()` writable bytes.
    let out = unsafe { std::slice::from_raw_parts_mut(buf, text.len()) };
    out.copy_from_slice(text.as_bytes());
    *len = text.len();
    sd_result::SD_OK
}

/// What the sealing calls return: a message written out, nothing to send, or the error.
///
/// # Safety
/// As [`write_out`].
unsafe fn deliver(
    sealed: crate::engine::Result<Option<String>>,
    buf: *mut u8,
    cap: usize,
    len: &mut usize,
) -> sd_result {
    match sealed {
        // SAFETY: forwarded from the caller's contract on `buf` and `cap`.
        Ok(Some(text)) => unsafe { write_out(&text, buf, cap, len) },
        Ok(None) => sd_result::SD_OK,
        Err(e) => fail(&e),
    }
}

/// The body of the calls that write one message: `*len` emptied, the context and the
/// buffer checked before `seal` takes anything, then [`deliver`].
///
/// # Safety
/// `ctx` NULL or from `sd_ctx_new`; `len` NULL or writable; `buf` as [`write_out`].
unsafe fn seal_into(
    ctx: *const sd_ctx,
    buf: *mut u8,
    cap: usize,
    len: *mut usize,
    seal: impl FnOnce(&sd_ctx) -> crate::engine::Result<Option<String>>,
) -> sd_result {
    let len = try_out!(len, 0);
    let ctx = try_ref!(ctx);
    try_res!(buffer_ok(buf, cap));
    // SAFETY: forwarded from the caller's contract on `buf` and `cap`.
    unsafe { deliver(seal(ctx), buf, cap, len) }
}

/// 1 when replication is configured (`cluster_key`), else 0 (also for NULL).
///
/// # Safety
/// `ctx` NULL or from `sd_ctx_new`.
#[no_mangle]
pub unsafe extern "C" fn sd_cluster_enabled(ctx: *const sd_ctx) -> u32 {
    ffi_boundary! {
        // SAFETY: NULL or a live context per the contract.
        u32::from(unsafe { read_or_default(ctx, |c| c.proxy.cluster_enabled()) })
    }
}

/// The Content-Type of replication messages, static and NUL-terminated.
#[no_mangle]
pub extern "C" fn sd_cluster_content_type() -> *const c_char {
    concat!(
        "application/pkcs7-mime; smime-type=authEnveloped-data; name=sipsd-cluster.p7m",
        "\0"
    )
    .as_ptr()
    .cast()
}

/// The next message for the dialog key changes this process made (up to a few each): base64
/// text into `buf` (`cap` bytes, at least `SD_CLUSTER_MSG_MAX`, else SD_ERR_INVALID_ARGUMENT
/// and nothing is taken), its length into `*len`.
/// `*len` is 0 when nothing is left to send: call until then, after every call that may
/// change a dialog key. SD_ERR_CLUSTER_OFF without a cluster key.
///
/// # Safety
/// `ctx` from `sd_ctx_new`; `buf` `cap` writable bytes; `len` writable.
#[no_mangle]
pub unsafe extern "C" fn sd_cluster_take(
    ctx: *const sd_ctx,
    buf: *mut u8,
    cap: usize,
    len: *mut usize,
) -> sd_result {
    ffi_boundary! {
        // SAFETY: forwarded from the caller's contract.
        unsafe { seal_into(ctx, buf, cap, len, |ctx| ctx.proxy.cluster_take()) }
    }
}

/// A sync request (this node started or rejoined: the others answer with all their live
/// keys) into `buf`, its length into `*len`.
///
/// # Safety
/// As `sd_cluster_take`.
#[no_mangle]
pub unsafe extern "C" fn sd_cluster_sync_request(
    ctx: *const sd_ctx,
    buf: *mut u8,
    cap: usize,
    len: *mut usize,
) -> sd_result {
    ffi_boundary! {
        // SAFETY: forwarded from the caller's contract.
        unsafe { seal_into(ctx, buf, cap, len, |ctx| ctx.proxy.cluster_sync_request().map(Some)) }
    }
}

/// One part of a full sync answering a peer's sync request: set `*cursor` to 0 for the first
/// part; each call writes a message into `buf` (length `*len`), moves `*cursor` on, and sets
/// `*more` to 1 while parts follow, 0 after the last one.
///
/// # Safety
/// As `sd_cluster_take`; `cursor` and `more` writable.
#[no_mangle]
pub unsafe extern "C" fn sd_cluster_sync_next(
    ctx: *const sd_ctx,
    cursor: *mut usize,
    more: *mut u32,
    buf: *mut u8,
    cap: usize,
    len: *mut usize,
) -> sd_result {
    ffi_boundary! {
        let len = try_out!(len, 0);
        let more = try_out!(more, 0);
        let cursor = try_mut!(cursor);
        let ctx = try_ref!(ctx);
        try_res!(buffer_ok(buf, cap));
        let part = ctx.proxy.cluster_sync_next(*cursor, media_store(ctx)).map(|(text, next)| {
            *more = u32::from(next.is_some());
            *cursor = next.unwrap_or(0);
            Some(text)
        });
        // SAFETY: forwarded from the caller's contract on `buf` and `cap`.
        unsafe { deliver(part, buf, cap, len) }
    }
}

/// A message from another node (its body as received; `from`: the node's address, kept for
/// `sd_cluster_peer`): opened under the cluster keys, checked against replay, applied to the
/// dialog key cache. SD_OK fills `*out` (a sync request: answer it with
/// `sd_cluster_sync_next`); SD_ERR_CLUSTER_SEAL, SD_ERR_CLUSTER_MESSAGE or
/// SD_ERR_CLUSTER_REPLAY when refused (nothing changed; counted).
///
/// # Safety
/// `ctx` from `sd_ctx_new`; `body`, `from` valid for the call; `out` writable.
#[no_mangle]
pub unsafe extern "C" fn sd_cluster_receive(
    ctx: *const sd_ctx,
    body: sd_str,
    from: sd_str,
    out: *mut sd_cluster_rx,
) -> sd_result {
    ffi_boundary! {
        let out = try_out!(
            out,
            sd_cluster_rx::from(&Received::nothing(Kind::Update, String::new()))
        );
        let ctx = try_ref!(ctx);
        let body = try_slice!(body);
        let from = try_slice!(from);
        let from = String::from_utf8_lossy(from);
        match ctx.proxy.cluster_receive(body, &from, media_store(ctx)) {
            Ok(r) => {
                *out = sd_cluster_rx::from(&r);
                sd_result::SD_OK
            }
            Err(e) => fail(&e),
        }
    }
}

/// This node's name, start and sync times, and how many peers it heard from.
///
/// # Safety
/// `ctx` from `sd_ctx_new`; `out` writable.
#[no_mangle]
pub unsafe extern "C" fn sd_cluster_info(
    ctx: *const sd_ctx,
    out: *mut sd_cluster_self_info,
) -> sd_result {
    ffi_boundary! {
        let out = try_out!(
            out,
            sd_cluster_self_info {
                node: [0; 65],
                started_ms: 0,
                sync_requested_ms: 0,
                sync_served_ms: 0,
                peers: 0,
            }
        );
        let ctx = try_ref!(ctx);
        let info = match ctx.proxy.cluster_info() {
            Ok(i) => i,
            Err(e) => return fail(&e),
        };
        let peers = match ctx.proxy.cluster_peers() {
            Ok(p) => p.len(),
            Err(e) => return fail(&e),
        };
        fill(&mut out.node, &info.node);
        out.started_ms = info.started_ms;
        out.sync_requested_ms = info.sync_requested_ms;
        out.sync_served_ms = info.sync_served_ms;
        out.peers = u32::try_from(peers).unwrap_or(u32::MAX);
        sd_result::SD_OK
    }
}

/// Peer `index` (0 = heard from most recently; see `sd_cluster_info`'s `peers`) into `*out`;
/// SD_ERR_INVALID_ARGUMENT past the last.
///
/// # Safety
/// `ctx` from `sd_ctx_new`; `out` writable.
#[no_mangle]
pub unsafe extern "C" fn sd_cluster_peer(
    ctx: *const sd_ctx,
    index: usize,
    out: *mut sd_cluster_peer_info,
) -> sd_result {
    ffi_boundary! {
        let out = try_out!(out, peer_of(None));
        let ctx = try_ref!(ctx);
        match ctx.proxy.cluster_peers() {
            Ok(peers) => match peers.get(index) {
                Some(p) => {
                    *out = peer_of(Some(p));
                    sd_result::SD_OK
                }
                None => sd_result::SD_ERR_INVALID_ARGUMENT,
            },
            Err(e) => fail(&e),
        }
    }
}

fn peer_of(p: Option<&PeerInfo>) -> sd_cluster_peer_info {
    let mut out = sd_cluster_peer_info {
        node: [0; 65],
        addr: [0; 129],
        first_seen_ms: 0,
        last_seen_ms: 0,
        messages: 0,
        keys: 0,
        ends: 0,
        last_sync_ms: 0,
        highest_counter: 0,
    };
    if let Some(p) = p {
        fill(&mut out.node, &p.node);
        fill(&mut out.addr, &p.addr);
        out.first_seen_ms = p.first_seen_ms;
        out.last_seen_ms = p.last_seen_ms;
        out.messages = p.messages;
        out.keys = p.keys;
        out.ends = p.ends;
        out.last_sync_ms = p.last_sync_ms;
        out.highest_counter = p.highest_counter;
    }
    out
}
