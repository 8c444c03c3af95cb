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
//! - when the owner's refresh is overdue and the dialog's key is in this node's cache (it
//!   replicates with the dialog and is removed at its end: a replica of a dialog that ended,
//!   or one a replayed message brought back, is forgotten instead): less than a third of the
//!   lifetime is left, where
//!   the owner refreshes with three quarters left (`Pinholes::refresh`: with the default 120 s
//!   the owner renews every 30 s, and a node takes over once it is 50 s late, 40 s before
//!   the agent would drop the flows); or
//! - when an in-dialog request of the dialog reaches it (a re-INVITE's answer moves the
//!   pinholes here, a BYE closes them here and sends the recording's stop).
//!
//! A state is applied only when its version is higher than the one held, so a node that was
//! only cut off, not dead, sees the newer owner and stops refreshing: one node refreshes at a
//! time, apart from the moment both decide at once (both then refresh the same mapping, which
//! the agent treats as one: the PCP nonce is derived from the dialog, not from the node).

use crate::engine::cache::DialogKey;
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

/// Whether this node holds the dialog's key (replicated with it, removed at its end): the
/// evidence that a replica whose owner went silent belongs to a live dialog.
pub(super) fn dialog_lives(proxy: &Proxy, s: &Slot) -> bool {
    let k = DialogKey::new(s.call_id(), s.tag());
    proxy.cache().contains(&[k]).ok().flatten().is_some()
}

/// Whether a replica's owner is overdue: less than a third of the lifetime left (the owner
/// renews with three quarters left).
pub(super) fn overdue(s: &Slot, now: u64, lifetime: u64) -> bool {
    s.expires_at.saturating_sub(now) * 3 <= lifetime
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

#[cfg(test)]
mod tests {
    use std::net::UdpSocket;
    use std::os::unix::fs::PermissionsExt as _;

    use zeroize::Zeroizing;

    use super::*;
    use crate::crypto::cms::CmsKind;
    use crate::engine::cache::now_secs;
    use crate::engine::pinhole::PinholeConfig;
    use crate::engine::proxy::{DisclosedPart, KeySource, ProxyConfig, SipMessage};
    use crate::engine::Error;

    struct Node {
        proxy: Proxy,
        pinholes: Pinholes,
    }

    /// A node of a two-node cluster whose agent never answers (each exchange fails after
    /// 20 ms: these tests are about the table, the agent is tests/cluster_pinholes.rs).
    fn node(dir: &std::path::Path, name: &str, silent: &UdpSocket) -> Node {
        let key = dir.join("cluster.key");
        if !key.exists() {
            std::fs::write(&key, "6b".repeat(32)).unwrap();
            std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        let mut c = ProxyConfig::default();
        c.set(
            "cluster_key",
            &format!("id=text:sipsd-cluster;key={}", key.display()),
        )
        .unwrap();
        c.set("cluster_node", name).unwrap();
        let mut p = PinholeConfig::default();
        p.set("pinhole_agent", &silent.local_addr().unwrap().to_string())
            .unwrap();
        p.set("pinhole_timeout", "20").unwrap();
        p.set("pinhole_retransmit", "10").unwrap();
        Node {
            proxy: Proxy::new(c).unwrap(),
            pinholes: Pinholes::new(&p).unwrap().unwrap(),
        }
    }

    fn part(addr: &str, port: u16) -> DisclosedPart {
        let sdp = format!(
            "v=0\r\no=- 1 1 IN IP4 {addr}\r\ns=-\r\nc=IN IP4 {addr}\r\nt=0 0\r\nm=audio {port} RTP/AVP 0\r\n"
        );
        DisclosedPart {
            content_id: None,
            kind: CmsKind::AuthEnvelopedData,
            content_type: "application/sdp".into(),
            body: Zeroizing::new(sdp.into_bytes()),
            key_source: KeySource::Wrapped,
            key_label: "p1".into(),
            generation: 1,
            signature: None,
        }
    }

    fn msg<'a>(status: u32, to_tag: &'a [u8], method: &'a [u8]) -> SipMessage<'a> {
        SipMessage {
            call_id: b"replica-1@test",
            from_tag: b"caller-tag",
            to_tag,
            method,
            status,
            content_type: b"",
            transfer_encoding: b"",
            disclose_to: b"",
            body: b"",
            from_uri: b"sip:alice@a.example",
            to_uri: b"sip:bob@b.example",
        }
    }

    /// Every message `from` has to send, applied on `to`; (stored, closed, not applied).
    fn carry(from: &Node, to: &Node) -> (u32, u32, u32) {
        let mut n = (0, 0, 0);
        while let Some(text) = from.proxy.cluster_take().unwrap() {
            let r = to
                .proxy
                .cluster_receive(text.as_bytes(), "sip:peer", Some(&to.pinholes))
                .unwrap();
            n.0 += r.media_stored;
            n.1 += r.media_closed;
            n.2 += r.media_stale;
        }
        n
    }

    fn count(n: &Node, c: Counter) -> u64 {
        n.proxy.stats().unwrap().get(c)
    }

    #[test]
    fn replicas_are_kept_refreshed_by_their_owner_taken_over_when_overdue_and_closed() {
        let dir = tempfile::tempdir().unwrap();
        let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
        let a = node(dir.path(), "p1a", &silent);
        let b = node(dir.path(), "p1b", &silent);
        let offer = part("10.77.1.2", 40000);
        let answer = part("10.77.2.2", 50000);
        a.pinholes
            .on_message(&a.proxy, &msg(0, b"", b"INVITE"), &[&offer])
            .unwrap();
        assert_eq!(
            carry(&a, &b),
            (0, 0, 0),
            "an offer kept for its answer travels not"
        );
        let r = a
            .pinholes
            .on_message(&a.proxy, &msg(200, b"callee-tag", b"INVITE"), &[&answer]);
        assert!(
            matches!(r, Err(Error::PinholeAgent(_))),
            "the agent is silent"
        );
        assert_eq!(carry(&a, &b), (1, 0, 0));
        let la = a.pinholes.list().unwrap();
        let lb = b.pinholes.list().unwrap();
        assert_eq!(
            (lb.len(), lb[0].owner.as_str(), lb[0].replica),
            (1, "p1a", true)
        );
        assert_eq!((la[0].owner.as_str(), la[0].replica), ("p1a", false));
        assert_eq!(lb[0].flows, la[0].flows);
        assert_eq!(lb[0].flows.len(), 4, "RTP and RTCP both ways");
        assert_eq!(lb[0].stage, Stage::Answered);
        println!(
            "  ok   the answer's pinholes on p1a reach p1b as a replica owned by p1a: {}",
            lb[0].flows.join(", ")
        );

        // not overdue: p1b leaves them to their owner
        let (refreshed, _) = b.pinholes.refresh(&b.proxy).unwrap();
        assert_eq!(refreshed, 0);
        assert_eq!(count(&b, Counter::PinholeExchanges), 0);
        // an older version changes nothing
        let older = {
            let mut t = a.pinholes.table.lock().unwrap();
            let i = t.find(b"replica-1@test", &[b"caller-tag"]).unwrap();
            let mut s = state_of(&t.slots()[i], 0, false).unwrap();
            s.version -= 1;
            s.flows.clear();
            s
        };
        assert_eq!(
            b.pinholes.apply_media(&older, "p1a").unwrap(),
            MediaApplied::Stale
        );
        assert_eq!(b.pinholes.list().unwrap()[0].flows.len(), 4);
        println!("  ok   p1b does not refresh a replica its owner keeps current; an older version changes nothing");

        // the owner goes silent: less than half the lifetime left, p1b takes over
        let mut overdue = older.clone();
        overdue.version += 10;
        overdue.flows = a
            .pinholes
            .table
            .lock()
            .map(|mut t| {
                let i = t.find(b"replica-1@test", &[b"caller-tag"]).unwrap();
                state_of(&t.slots()[i], 0, false).unwrap().flows
            })
            .unwrap();
        overdue.expires_at = now_secs() + 10;
        overdue.recording = Some(MediaRecording {
            state: 2,
            streams: 2,
            started: 1,
            stopped: 0,
            key_sequence: u64::MAX / 4,
        });
        assert_eq!(
            b.pinholes.apply_media(&overdue, "p1a").unwrap(),
            MediaApplied::Stored
        );
        assert_eq!(b.pinholes.table.lock().unwrap().sequence(), u64::MAX / 4);
        let _ = b.pinholes.refresh(&b.proxy);
        assert_eq!(
            count(&b, Counter::PinholesTakenOver),
            0,
            "no key of the dialog on p1b: not taken over"
        );
        b.proxy
            .cache()
            .insert(
                &DialogKey::new(b"replica-1@test", b"caller-tag"),
                crate::engine::cluster::key_tag(crate::crypto::cms::ContentAlg::Aes256Gcm, true),
                &[7; 32],
            )
            .unwrap();
        let _ = b.pinholes.refresh(&b.proxy);
        assert_eq!(count(&b, Counter::PinholesTakenOver), 1);
        assert!(
            count(&b, Counter::PinholeExchanges) >= 1,
            "p1b asked the agent"
        );
        let lb = b.pinholes.list().unwrap();
        assert_eq!((lb[0].owner.as_str(), lb[0].replica), ("p1b", false));
        println!("  ok   10 s of 120 left: without the dialog's key p1b leaves it; with the key it takes the dialog over and refreshes it (pinholes_taken_over=1); the key-channel sequence follows the replicated one");

        // the take-over is not sent when the refresh failed; a re-INVITE answer through p1b is
        let reoffer = part("10.77.1.2", 40100);
        b.pinholes
            .on_message(&b.proxy, &msg(0, b"callee-tag", b"INVITE"), &[&reoffer])
            .unwrap();
        let _ = b
            .pinholes
            .on_message(&b.proxy, &msg(200, b"callee-tag", b"INVITE"), &[&answer]);
        let (stored, _, _) = carry(&b, &a);
        assert_eq!(stored, 1);
        let la = a.pinholes.list().unwrap();
        assert_eq!((la[0].owner.as_str(), la[0].replica), ("p1b", true));
        assert!(la[0].flows.iter().any(|f| f.starts_with("10.77.1.2:40100")));
        println!("  ok   the re-INVITE's answer through p1b moves the pinholes; p1a now holds them as p1b's replica ({})", la[0].flows.join(", "));

        // the BYE through p1b: closed there, and on p1a without asking the agent
        let before = count(&a, Counter::PinholeExchanges);
        let _ = b
            .pinholes
            .close_of(&b.proxy, &msg(200, b"callee-tag", b"BYE"));
        assert_eq!(carry(&b, &a), (0, 1, 0));
        assert!(a.pinholes.list().unwrap().is_empty());
        assert_eq!(count(&a, Counter::PinholeExchanges), before);
        // the same close again: nothing to close
        let closed = {
            let mut s = overdue.clone();
            s.stage = MediaStage::Closed;
            s.version = u64::MAX;
            s
        };
        assert_eq!(
            a.pinholes.apply_media(&closed, "p1b").unwrap(),
            MediaApplied::Stale
        );
        assert_eq!(
            count(&a, Counter::ClusterMediaApplied),
            2,
            "the re-INVITE and the close"
        );
        println!("  ok   the BYE through p1b closes the dialog on p1a too (no PCP from p1a); a close of a dialog not held is not applied");
    }
}
