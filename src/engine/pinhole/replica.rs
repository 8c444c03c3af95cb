//! The pinholes and recordings of a cluster's dialogs on every node (docs/PROTOCOL.md §8.2,
//! `MediaState`; docs/FIREWALL.md §10): each change a node makes to a dialog's pinholes or
//! recording (answer, re-INVITE, refresh, close, recording stop) is noted as a
//! [`MediaState`] for the other nodes, which keep it in their own table as a *replica*.
//!
//! Who refreshes: the **owner**, the node that acted on the dialog last (it names itself in
//! the state). A replica is not refreshed while its owner keeps it current; every refresh
//! the owner makes travels too (a new `expiresAt`). A node takes a replicated dialog over
//! (becomes its owner, refreshes it and says so to the others)
//!
//! - when the owner's refresh is overdue: less than half the lifetime is left, where the
//!   owner refreshes with three quarters left (`Pinholes::refresh`); or
//! - when an in-dialog request of the dialog reaches it (a re-INVITE's answer moves the
//!   pinholes here, a BYE closes them here and sends the recording's stop).
//!
//! A state is applied only when its version is higher than the one held, so a node that was
//! only cut off, not dead, sees the newer owner and stops refreshing: one node refreshes at a
//! time, apart from the moment both decide at once (both then refresh the same mapping, which
//! the agent treats as one: the PCP nonce is derived from the dialog, not from the node).

use crate::engine::cluster::{
    MediaApplied, MediaFlow, MediaRecording, MediaStage, MediaState, MediaStore,
};
use crate::engine::proxy::{Counter, Proxy};
use crate::engine::Result;

use super::table::{Addr, FlowRec, Locked, Slot};
use super::{Pinholes, RecordState, Stage};

/// Microseconds since 1970: a state's version is at least this (the nodes' clocks agree
/// within `cluster_max_skew`), so the last node to act wins.
fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Makes this node the owner of slot `s` (a new version); true when it held a replica.
pub(super) fn claim(proxy: &Proxy, s: &mut Slot) -> bool {
    let Some(node) = proxy.cluster_node() else {
        return false;
    };
    let was_replica = s.replica == 1;
    s.replica = 0;
    s.set_owner(node);
    s.version = now_us().max(s.version.saturating_add(1));
    if was_replica {
        proxy.count(Counter::PinholesTakenOver);
    }
    was_replica
}

/// The state of slot `s` as it travels (`closed`: the dialog ended here); `None` for a slot
/// no node owns (an offer kept for its answer, nothing open) or without a cluster.
pub(super) fn state_of(s: &Slot, key_sequence: u64, closed: bool) -> Option<MediaState> {
    let owner = std::str::from_utf8(s.owner())
        .ok()
        .filter(|o| !o.is_empty())?;
    let flows = if closed { &[][..] } else { s.flows() };
    let record = s.record();
    Some(MediaState {
        call_id: s.call_id().to_vec(),
        tag: s.tag().to_vec(),
        version: s.version,
        owner: owner.to_string(),
        stage: match (closed, s.stage()) {
            (true, _) => MediaStage::Closed,
            (false, Stage::Offered) => MediaStage::Offered,
            (false, Stage::Answered) => MediaStage::Answered,
        },
        opened_at: s.opened_at,
        expires_at: if closed { 0 } else { s.expires_at },
        flows: flows
            .iter()
            .filter_map(|f| {
                Some(MediaFlow {
                    internal: f.internal.ip()?,
                    port: f.port,
                    remote: f.remote.ip(),
                    remote_port: f.remote_port,
                })
            })
            .collect(),
        recording: (record != RecordState::Off).then_some(MediaRecording {
            state: s.record,
            streams: s.record_streams,
            started: s.record_started,
            stopped: s.record_stopped,
            key_sequence,
        }),
    })
}

/// Claims slot `i` and notes its state for the other nodes (after the table's lock is
/// released: call [`Pinholes::send_noted`] with what this returns).
pub(super) fn claim_and_note(proxy: &Proxy, t: &mut Locked<'_>, i: usize) -> Option<MediaState> {
    proxy.cluster_node()?;
    claim(proxy, &mut t.slots()[i]);
    let seq = t.sequence();
    state_of(&t.slots()[i], seq, false)
}

fn flow_rec(f: &MediaFlow) -> FlowRec {
    FlowRec {
        internal: Addr::of(f.internal),
        port: f.port,
        remote: f.remote.map(Addr::of).unwrap_or_default(),
        remote_port: f.remote_port,
    }
}

/// Whether a replica's owner is overdue: less than half the lifetime left (the owner renews
/// with three quarters left).
pub(super) fn overdue(s: &Slot, now: u64, lifetime: u64) -> bool {
    s.expires_at.saturating_sub(now) * 2 <= lifetime
}

impl Pinholes {
    /// Notes `state` (made under the lock) for the other nodes.
    pub(super) fn send_noted(proxy: &Proxy, state: Option<MediaState>) {
        if let Some(s) = state {
            proxy.note_media(s);
        }
    }
}

impl MediaStore for Pinholes {
    fn apply_media(&self, state: &MediaState, _from: &str) -> Result<MediaApplied> {
        let mut t = self.table.lock()?;
        if let Some(r) = &state.recording {
            t.raise_sequence(r.key_sequence);
        }
        let tag: [&[u8]; 1] = [&state.tag];
        let i = match t.find(&state.call_id, &tag) {
            Some(i) if state.version <= t.slots()[i].version => return Ok(MediaApplied::Stale),
            Some(i) if state.stage == MediaStage::Closed => {
                let s = &mut t.slots()[i];
                if let Some(r) = &state.recording {
                    s.record = r.state;
                    s.record_stopped = r.stopped;
                }
                let keep = matches!(s.record(), RecordState::Active | RecordState::Stopped);
                t.remove(i, keep);
                return Ok(MediaApplied::Closed);
            }
            Some(i) => i,
            None if state.stage == MediaStage::Closed => return Ok(MediaApplied::Stale),
            None => match t.insert(&state.call_id, &state.tag, state.opened_at) {
                Some(i) => i,
                None => return Ok(MediaApplied::Full),
            },
        };
        let s = &mut t.slots()[i];
        s.replica = 1;
        s.set_owner(&state.owner);
        s.version = state.version;
        s.stage = if state.stage == MediaStage::Answered {
            2
        } else {
            1
        };
        s.opened_at = state.opened_at;
        s.expires_at = state.expires_at;
        let flows: Vec<FlowRec> = state.flows.iter().map(flow_rec).collect();
        s.set_flows(&flows);
        if let Some(r) = &state.recording {
            s.record = r.state;
            s.record_streams = r.streams;
            s.record_started = r.started;
            s.record_stopped = r.stopped;
        }
        Ok(MediaApplied::Stored)
    }

    fn export_media(&self, cursor: usize, max: usize) -> Result<(Vec<MediaState>, Option<usize>)> {
        let mut t = self.table.lock()?;
        let seq = t.sequence();
        let slots = t.slots();
        let mut out = Vec::new();
        let mut i = cursor;
        while i < slots.len() && out.len() < max {
            if slots[i].used == 1 {
                if let Some(s) = state_of(&slots[i], seq, false) {
                    out.push(s);
                }
            }
            i += 1;
        }
        Ok((out, (i < slots.len()).then_some(i)))
    }
}
