//! Two trusted proxies of one cluster, in one process, on real keys (the engine the Kamailio
//! module runs; the DMQ transport is tests/cluster_dmq.rs and tests/docker_cluster.rs): a
//! dialog set up through p1a is read on p1b with the replicated key, a rotation through p1b
//! reaches p1a, a dialog end removes the key everywhere, and a stranger's key for the same
//! dialog id sent to the other node replaces nothing.

#[macro_use]
mod support;

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use sipsd::crypto::cms::{ContentAlg, IdKind, Recipient, RsaPadding};
use sipsd::engine::cluster::Kind;
use sipsd::engine::proxy::{Counter, KeySource, Proxy, ProxyConfig, SipMessage, Unwrapped};
use sipsd::engine::ua::UaSession;
use sipsd::engine::Error;
use sipsd::sip::body::{BodyOptions, SipBody};

use support::vectors::{cert_recipient, keys};

const SDP: &[u8] = b"v=0\r\no=a 1 1 IN IP4 198.51.100.7\r\ns=-\r\nc=IN IP4 198.51.100.7\r\nt=0 0\r\nm=audio 30000 RTP/SAVP 0\r\n";

fn cert(name: &str) -> Recipient {
    cert_recipient(name, IdKind::IssuerSerial, RsaPadding::OaepSha1)
}

/// proxy1's key, the cluster key in `dir`, node `name`.
fn node(dir: &Path, name: &str) -> Proxy {
    node_with(dir, name, &[])
}

/// [`node`] with more options.
fn node_with(dir: &Path, name: &str, extra: &[(&str, &str)]) -> Proxy {
    let k = keys();
    let cluster_key = dir.join("cluster.key");
    if !cluster_key.exists() {
        std::fs::write(&cluster_key, "5a".repeat(32)).unwrap();
        std::fs::set_permissions(&cluster_key, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let mut c = ProxyConfig::default();
    for (n, v) in [
        (
            "rsa_key",
            format!(
                "key={};cert={}",
                k.join("proxy1.key").display(),
                k.join("proxy1.crt").display()
            ),
        ),
        (
            "cluster_key",
            format!("id=text:sipsd-cluster;key={}", cluster_key.display()),
        ),
        ("cluster_node", name.to_string()),
    ] {
        c.set(n, &v).unwrap();
    }
    for (n, v) in extra {
        c.set(n, v).unwrap();
    }
    Proxy::new(c).unwrap()
}

/// A caller's offer of `sdp` for `recipients` (AES-256-GCM) and its dialog key.
fn seal_offer(sdp: &[u8], recipients: &[Recipient]) -> (UaSession, SipBody) {
    UaSession::offer(
        "application/sdp",
        sdp,
        recipients,
        ContentAlg::Aes256Gcm,
        None,
        &BodyOptions::default(),
    )
    .unwrap()
}

fn msg<'a>(call: &'a str, to_tag: &'a str, method: &'a str, b: &'a SipBody) -> SipMessage<'a> {
    SipMessage {
        call_id: call.as_bytes(),
        from_tag: b"caller",
        to_tag: to_tag.as_bytes(),
        method: method.as_bytes(),
        status: 0,
        content_type: b.content_type.as_bytes(),
        transfer_encoding: b.transfer_encoding.unwrap_or("").as_bytes(),
        disclose_to: b"",
        body: &b.body,
        ..SipMessage::default()
    }
}

fn read(p: &Proxy, m: &SipMessage<'_>) -> (KeySource, u32) {
    match p.unwrap(m).unwrap() {
        Unwrapped::Disclosed(parts) => (parts[0].key_source, parts[0].generation),
        other => panic!("not disclosed: {other:?}"),
    }
}

/// Everything `from` has to send, delivered to `to`; what `to` stored and ended.
fn replicate(from: &Proxy, to: &Proxy) -> (u32, u32, u32) {
    let (mut stored, mut stale, mut ended) = (0, 0, 0);
    while let Some(text) = from.cluster_take().unwrap() {
        let r = to.cluster_receive(text.as_bytes(), "test", None).unwrap();
        assert_eq!(r.kind, Kind::Update);
        stored += r.stored;
        stale += r.stale;
        ended += r.ended;
    }
    (stored, stale, ended)
}

#[test]
fn a_dialog_survives_the_node_it_was_set_up_through() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (node(dir.path(), "p1a"), node(dir.path(), "p1b"));
    let opts = BodyOptions::default();
    let recipients = [cert("callee"), cert("proxy1")];
    let (mut ua, offer) = seal_offer(SDP, &recipients);
    check!(
        read(&a, &msg("c1", "", "INVITE", &offer)) == (KeySource::Wrapped, 1),
        "p1a read the INVITE with its own key (gen 1)"
    );
    check!(
        replicate(&a, &b) == (1, 0, 0),
        "p1a's key change went to p1b in one sealed message: stored there"
    );
    check!(a.cluster_take().unwrap().is_none(), "nothing left to send");
    let m = ua.encrypt("application/sdp", SDP, &opts).unwrap();
    check!(
        read(&b, &msg("c1", "callee", "MESSAGE", &m)) == (KeySource::Replica, 1),
        "p1b, which never saw the INVITE, read the MESSAGE with the replicated key (key_source=replica, gen 1)"
    );
    // the re-INVITE rotating the key goes through p1b: p1a learns the new key
    let r = ua
        .rotate("application/sdp", SDP, &recipients, &opts)
        .unwrap();
    check!(
        read(&b, &msg("c1", "callee", "INVITE", &r)) == (KeySource::Wrapped, 2),
        "p1b took the rotation with the proof (gen 2)"
    );
    check!(replicate(&b, &a).0 == 1, "the rotation went to p1a");
    let m = ua.encrypt("application/sdp", SDP, &opts).unwrap();
    check!(
        read(&a, &msg("c1", "callee", "MESSAGE", &m)) == (KeySource::Replica, 2),
        "p1a read the next MESSAGE with the rotated key from p1b (gen 2)"
    );
    // the dialog ends on p1a: p1b forgets the key too
    check!(
        a.dialog_end(b"c1", b"caller").unwrap(),
        "p1a ended the dialog"
    );
    check!(
        replicate(&a, &b).2 == 1,
        "the dialog end removed the key on p1b"
    );
    let m = ua.encrypt("application/sdp", SDP, &opts).unwrap();
    let e = b.unwrap(&msg("c1", "callee", "MESSAGE", &m));
    let outcome = format!("{:?}", e.as_ref().map(|_| ()));
    check!(
        matches!(e, Ok(Unwrapped::NotForMe) | Err(Error::NoDialogKey)),
        "p1b no longer reads the dialog ({outcome})"
    );
    let (sa, sb) = (a.stats().unwrap(), b.stats().unwrap());
    check!(
        (sa.get(Counter::ClusterOut), sa.get(Counter::ClusterIn)) == (2, 1)
            && (sb.get(Counter::ClusterIn), sb.get(Counter::ClusterApplied)) == (2, 1)
            && sb.get(Counter::ClusterEnded) == 1
            && sa.cluster.peers == 1
            && sb.cluster.peers == 1,
        "counted: p1a out 2 in 1, p1b in 2 applied 1 ended 1, one peer each"
    );
}

#[test]
fn a_strangers_key_on_the_other_node_replaces_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (node(dir.path(), "p1a"), node(dir.path(), "p1b"));
    let opts = BodyOptions::default();
    let recipients = [cert("callee"), cert("proxy1")];
    let (mut ua, offer) = seal_offer(SDP, &recipients);
    read(&a, &msg("c2", "", "INVITE", &offer));
    // a stranger who knows Call-ID and tag sends its own offer to p1b before the replica
    // arrives: p1b has no key for the dialog and stores the stranger's
    let (_, forged) = seal_offer(b"v=0\r\n", &recipients);
    read(&b, &msg("c2", "", "INVITE", &forged));
    let (stored, stale, _) = replicate(&b, &a);
    check!(
        (stored, stale) == (0, 1),
        "p1a refused p1b's key for its dialog: same generation, another key (stale)"
    );
    let (stored, stale, _) = replicate(&a, &b);
    check!(
        (stored, stale) == (0, 1),
        "and p1b keeps its own: neither node's key is overwritten by the other's"
    );
    let m = ua.encrypt("application/sdp", SDP, &opts).unwrap();
    check!(
        read(&a, &msg("c2", "callee", "MESSAGE", &m)) == (KeySource::Cache, 1),
        "the caller's dialog still reads on p1a with its own key"
    );
    check!(
        a.stats().unwrap().get(Counter::ClusterStale) == 1,
        "counted as cluster_stale"
    );
}

#[test]
fn a_key_used_again_after_cluster_refresh_is_sent_again() {
    let dir = tempfile::tempdir().unwrap();
    let a = node_with(dir.path(), "p1a", &[("cluster_refresh", "2")]);
    let b = node(dir.path(), "p1b");
    let opts = BodyOptions::default();
    let (mut ua, offer) = seal_offer(SDP, &[cert("callee"), cert("proxy1")]);
    read(&a, &msg("c3", "", "INVITE", &offer));
    replicate(&a, &b);
    let m = ua.encrypt("application/sdp", SDP, &opts).unwrap();
    read(&a, &msg("c3", "callee", "MESSAGE", &m));
    check!(
        a.cluster_take().unwrap().is_none(),
        "a use right after the store sends nothing (cluster_refresh 2 s; times are whole seconds)"
    );
    std::thread::sleep(std::time::Duration::from_millis(3100));
    let m = ua.encrypt("application/sdp", SDP, &opts).unwrap();
    read(&a, &msg("c3", "callee", "MESSAGE", &m));
    let text = a.cluster_take().unwrap();
    check!(
        text.is_some(),
        "a use 3 s after the last one sends the key again"
    );
    let r = b
        .cluster_receive(text.unwrap_or_default().as_bytes(), "test", None)
        .unwrap();
    check!(
        (r.stored, r.refreshed) == (0, 1),
        "p1b, holding the same key and generation, only refreshed its use time and count"
    );
}
