//! Message counters shared by every process forked from the one that made them.
//!
//! A SIP server answers statistics and RPC from another process than the workers that count: so the
//! counters live in one anonymous shared mapping of atomics, made before the fork.
#![allow(unsafe_code)]

use std::sync::atomic::{AtomicU64, Ordering};

/// Defines [`Counter`] from one table: each counter once, with its doc.
macro_rules! counters {
    ($($(#[doc = $doc:literal])+ $name:ident = $stat:literal,)+) => {
        /// What a proxy (and an edge) counts besides the cache's own figures.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        #[repr(usize)]
        pub enum Counter {
            $($(#[doc = $doc])+ $name,)+
        }

        impl Counter {
            /// Every counter, in table order.
            pub const ALL: &'static [Counter] = &[$(Counter::$name,)+];

            /// Its statistic name (RPC field, server statistic), NUL-terminated for C.
            pub(crate) fn name_nul(self) -> &'static str {
                match self {
                    $(Counter::$name => concat!($stat, "\0"),)+
                }
            }

            /// One line saying what it counts, NUL-terminated for C.
            pub(crate) fn doc_nul(self) -> &'static str {
                match self {
                    $(Counter::$name => concat!($($doc),+, "\0").trim_start(),)+
                }
            }
        }
    };
}

counters! {
    /// Bodies (or parts) decrypted.
    Decrypted = "decrypted",
    /// Encrypted messages meant for someone else.
    NotForMe = "not_for_me",
    /// Messages without an encrypted body.
    NotEncrypted = "not_encrypted",
    /// Messages that failed (malformed, wrong key, limits...).
    Errors = "errors",
    /// Dialog entries removed at dialog end.
    DialogsEnded = "dialogs_ended",
    /// Key reloads performed in this or another process.
    Reloads = "reloads",
    /// New keys for a known dialog refused: no valid rotation proof.
    RotationsRefused = "rotations_refused",
    /// Initial requests for a dialog id that already has another live key (never overwritten).
    InitialCollisions = "initial_collisions",
    /// Unauthenticated (AES-CBC) bodies inside a known dialog refused without decrypting.
    CbcRefused = "cbc_refused",
    /// RSA private-key operations spent on key transport.
    RsaOps = "rsa_ops",
    /// Messages whose RSA work budget ran out.
    RsaBudgetExhausted = "rsa_budget_exhausted",
    /// Body replacements refused because the next hop is not an allowed plaintext next hop.
    PlaintextRefused = "plaintext_refused",
    /// Replication messages sealed for the other nodes of the cluster (updates and sync parts).
    ClusterOut = "cluster_out",
    /// Replication messages accepted from another node.
    ClusterIn = "cluster_in",
    /// Replicated dialog keys stored here (a dialog not known here, or a newer generation).
    ClusterApplied = "cluster_applied",
    /// Replicated dialog ends that removed a key here.
    ClusterEnded = "cluster_ended",
    /// Replicated dialog keys not applied: an older generation, the same generation with another key, or past the TTL.
    ClusterStale = "cluster_stale",
    /// Replication messages refused: not sealed and authenticated under a cluster key, or malformed inside.
    ClusterBadSeal = "cluster_bad_seal",
    /// Replication messages refused: replayed, sent outside cluster_max_skew or before this node started, or from this node.
    ClusterReplays = "cluster_replays",
    /// Full syncs this node asked the others for (at start or rejoin).
    ClusterSyncRequested = "cluster_sync_requested",
    /// Full syncs this node answered.
    ClusterSyncServed = "cluster_sync_served",
    /// Full syncs received to their end.
    ClusterSyncsDone = "cluster_syncs_done",
    /// Changes not replicated because too many were waiting in one process, or a pinhole state too large for one message.
    ClusterDropped = "cluster_dropped",
    /// Pinhole/recording states of dialogs sealed for the other nodes (each its own message, also counted in cluster_out).
    ClusterMediaOut = "cluster_media_out",
    /// Replicated pinhole/recording states applied here: stored (a dialog not held, or a newer version) or closed.
    ClusterMediaApplied = "cluster_media_applied",
    /// Replicated pinhole/recording states not applied: not newer than the one held, a close of nothing, a full table, or no pinhole table.
    ClusterMediaStale = "cluster_media_stale",
    /// Signatures inside decrypted bodies that verified with a trusted signer's certificate.
    SignaturesValid = "signatures_valid",
    /// Signatures that did not verify or named no trusted signer, and unsigned bodies refused.
    SignaturesFailed = "signatures_failed",
    /// Edge: bodies sealed for a new dialog (a fresh key wrapped for the callee and proxies).
    EdgeOffersSealed = "edge_offers_sealed",
    /// Edge: bodies sealed under the dialog key (EncryptedData).
    EdgeInDialogSealed = "edge_in_dialog_sealed",
    /// Edge: dialog keys replaced by a rotation the edge sent (new key with the proof).
    EdgeRotations = "edge_rotations",
    /// Edge: bodies signed before sealing.
    EdgeSigned = "edge_signed",
    /// Edge: bodies opened for a local user.
    EdgeOpened = "edge_opened",
    /// Edge: bodies that could not be sealed and were refused (unsealable=reject).
    EdgeUnsealableRefused = "edge_unsealable_refused",
    /// Edge: bodies that could not be sealed and were sent in clear (unsealable=clear).
    EdgeSentClear = "edge_sent_clear",
    /// Pinholes (one flow each) the firewall agent confirmed opened, narrowed or renewed.
    PinholesOpened = "pinholes_opened",
    /// Pinholes the firewall agent confirmed deleted (dialog end, or no longer negotiated).
    PinholesClosed = "pinholes_closed",
    /// Pinholes the agent refused (a result other than SUCCESS), or dialogs refused for a full pinhole table.
    PinholesRefused = "pinholes_refused",
    /// Dialogs past pinhole_max_duration whose pinholes were left to expire at the agent.
    PinholesExpired = "pinholes_expired",
    /// Dialogs whose pinhole lifetimes were renewed.
    PinholesRefreshed = "pinholes_refreshed",
    /// Replicated dialogs this node took over: their owner's refresh was overdue, or an in-dialog request reached this node.
    PinholesTakenOver = "pinholes_taken_over",
    /// Exchanges with the firewall agent that failed: no answer in pinhole_timeout, no valid MAC, socket errors.
    PinholeAgentErrors = "pinhole_agent_errors",
    /// Exchanges with the firewall agent (open, narrow, refresh, delete).
    PinholeExchanges = "pinhole_exchanges",
    /// Sum of the exchanges' durations in microseconds (divide by pinhole_exchanges for the mean).
    PinholeLatencyUs = "pinhole_latency_us",
    /// Longest exchange with the firewall agent, microseconds.
    PinholeLatencyMaxUs = "pinhole_latency_max_us",
    /// Dialogs whose media the recorder was given keys for and asked to be mirrored (record=1 or sd_record_start).
    RecordingsStarted = "recordings_started",
    /// Recordings ended: dialog end or sd_record_stop.
    RecordingsStopped = "recordings_stopped",
    /// Sealed key messages (start, update, stop) sent to the recorder.
    RecordKeyMessages = "record_key_messages",
    /// Recordings that could not start or stop as asked: no usable offer/answer keys, a message that could not be sealed or sent.
    RecordErrors = "record_errors",
}

const COUNT: usize = Counter::ALL.len();

/// A page of shared atomics; see the module doc.
pub struct SharedCounters {
    ptr: *mut AtomicU64,
    len: usize,
    owner_pid: u32,
}

// SAFETY: the mapping is only accessed through atomics, valid for the value's lifetime.
unsafe impl Send for SharedCounters {}
// SAFETY: as above; atomics make concurrent access from threads and processes sound.
unsafe impl Sync for SharedCounters {}

impl SharedCounters {
    /// Maps the counters (zeroed). Call before forking.
    pub fn create() -> std::io::Result<SharedCounters> {
        let len = COUNT * std::mem::size_of::<AtomicU64>();
        // SAFETY: anonymous shared mapping with no address hint; the result is checked below.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        Ok(SharedCounters {
            ptr: ptr.cast(),
            len,
            owner_pid: std::process::id(),
        })
    }

    fn slot(&self, c: Counter) -> &AtomicU64 {
        // SAFETY: `c as usize < COUNT`; the mapping is page-aligned, zero-filled (a valid
        // AtomicU64 is any bit pattern) and lives as long as `self`.
        unsafe { &*self.ptr.add(c as usize) }
    }

    /// Adds one.
    pub fn bump(&self, c: Counter) {
        self.add(c, 1);
    }

    /// Adds `n`.
    pub fn add(&self, c: Counter, n: u64) {
        self.slot(c).fetch_add(n, Ordering::Relaxed);
    }

    /// Raises to `n` if lower.
    pub fn max(&self, c: Counter, n: u64) {
        self.slot(c).fetch_max(n, Ordering::Relaxed);
    }

    /// Reads one.
    pub fn get(&self, c: Counter) -> u64 {
        self.slot(c).load(Ordering::Relaxed)
    }
}

impl Drop for SharedCounters {
    fn drop(&mut self) {
        if std::process::id() == self.owner_pid {
            // SAFETY: the mapping was made by `create` with this length and is not used after.
            unsafe { libc::munmap(self.ptr.cast(), self.len) };
        }
    }
}
