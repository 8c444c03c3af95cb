//! The edge role in one process, through the library's API: edge A (alice's side, signs with
//! alice's key), P1 (a trusted proxy) and edge B (bob's side), each with its own key store
//! and dialog key cache, passing one dialog's messages from hand to hand as Kamailio would.
//! The same flow through real Kamailio instances is tests/edge_e2e.rs; this one reaches the
//! corners a SIP scenario cannot aim at (a rotation prepared while the key changed, the
//! synthetic IV of a re-sealed answer, a tampered signed offer, the unsealable policy).
//!
//! Run: `cargo test --test edge_engine -- --nocapture --test-threads=1`.

#[macro_use]
mod support;

use std::path::{Path, PathBuf};

use sipsd::crypto::cms::signed::SignatureCheck;
use sipsd::crypto::cms::{ContentAlg, Recipient};
use sipsd::crypto::keys::{KeySpec, KeyStore, SignKeySpec};
use sipsd::engine::config::Config;
use sipsd::engine::edge::{Edge, Parties, SealOutcome, Sealed, Sealing};
use sipsd::engine::proxy::{Proxy, SipMessage, Unwrapped};
use sipsd::engine::signature::status;
use sipsd::engine::ua::UaSession;
use sipsd::engine::Error;
use sipsd::sip::body::BodyOptions;
use support::openssl::self_signed;
use support::vectors::{cert_recipient, key_path};

const SDP: &[u8] = b"v=0\r\no=alice 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\nm=audio 40000 RTP/SAVP 0\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:QUxJQ0VTX1NSVFBfS0VZX0ZPUl9USEVfVEVTVF8x\r\n";
const ANSWER: &[u8] = b"v=0\r\no=bob 2 2 IN IP4 198.51.100.20\r\ns=-\r\nc=IN IP4 198.51.100.20\r\nt=0 0\r\nm=audio 50000 RTP/SAVP 0\r\n";

/// One SIP message as the server would hand it over (owned; `view()` borrows it).
#[derive(Clone)]
struct Msg {
    call_id: String,
    from_tag: String,
    to_tag: String,
    method: String,
    status: u32,
    content_type: String,
    body: Vec<u8>,
    disclose_to: String,
    cseq: String,
}

impl Msg {
    fn request(method: &str, cseq: u32, from_tag: &str, to_tag: &str, body: &[u8]) -> Msg {
        Msg {
            call_id: "edge-engine-1@example.net".into(),
            from_tag: from_tag.into(),
            to_tag: to_tag.into(),
            method: method.into(),
            status: 0,
            content_type: if method == "MESSAGE" {
                "text/plain"
            } else {
                "application/sdp"
            }
            .into(),
            body: body.to_vec(),
            disclose_to: String::new(),
            cseq: cseq.to_string(),
        }
    }

    fn reply(&self, status: u32, to_tag: &str, body: &[u8]) -> Msg {
        Msg {
            to_tag: if self.to_tag.is_empty() {
                to_tag.into()
            } else {
                self.to_tag.clone()
            },
            status,
            content_type: "application/sdp".into(),
            body: body.to_vec(),
            ..self.clone()
        }
    }

    fn view(&self) -> SipMessage<'_> {
        SipMessage {
            call_id: self.call_id.as_bytes(),
            from_tag: self.from_tag.as_bytes(),
            to_tag: self.to_tag.as_bytes(),
            method: self.method.as_bytes(),
            status: self.status,
            content_type: self.content_type.as_bytes(),
            transfer_encoding: b"",
            disclose_to: self.disclose_to.as_bytes(),
            body: &self.body,
            ..SipMessage::default()
        }
    }

    /// The message as the next hop gets it once the edge replaced the body.
    fn sealed_as(&self, s: &Sealed) -> Msg {
        Msg {
            content_type: s.body.content_type.clone(),
            body: s.body.body.clone(),
            disclose_to: s.disclose_to.clone().unwrap_or_default(),
            ..self.clone()
        }
    }
}

struct Net {
    _dir: tempfile::TempDir,
    edge_a: (Proxy, Edge),
    p1: Proxy,
    edge_b: (Proxy, Edge),
    alice_key: PathBuf,
    alice_crt: PathBuf,
}

fn context(options: &[(&str, String)]) -> (Proxy, Option<Edge>) {
    let mut c = Config::default();
    for (n, v) in options {
        c.set(n, v).unwrap_or_else(|e| panic!("{n}={v}: {e}"));
    }
    let proxy = Proxy::new(c.proxy_config()).expect("proxy part");
    let edge = c
        .edge_config()
        .unwrap()
        .map(|e| Edge::new(e).expect("edge"));
    (proxy, edge)
}

fn copy_key(dir: &Path, who: &str) -> (String, String) {
    use std::os::unix::fs::PermissionsExt;
    let (k, c) = (
        dir.join(format!("{who}.key")),
        dir.join(format!("{who}.crt")),
    );
    std::fs::copy(key_path(&format!("{who}.key")), &k).unwrap();
    std::fs::copy(key_path(&format!("{who}.crt")), &c).unwrap();
    std::fs::set_permissions(&k, std::fs::Permissions::from_mode(0o600)).unwrap();
    (k.display().to_string(), c.display().to_string())
}

fn net(edge_a_extra: &[(&str, String)]) -> Net {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (alice_key, alice_crt) = self_signed(d, "alice", "alice.example.net");
    let (bob_key, bob_crt) = copy_key(d, "callee");
    let (p1_key, p1_crt) = copy_key(d, "proxy1");
    let peers = d.join("peers");
    std::fs::create_dir(&peers).unwrap();
    std::fs::copy(&bob_crt, peers.join("bob@example.net.crt")).unwrap();
    std::fs::copy(&alice_crt, peers.join("alice@example.net.crt")).unwrap();
    let (a, b) = (
        alice_key.display().to_string(),
        alice_crt.display().to_string(),
    );
    let mut a_opts = vec![
        ("role", "edge".to_string()),
        ("local_key", format!("key={a};cert={b}")),
        (
            "sign_key",
            format!("key={a};cert={b};aor=alice@example.net"),
        ),
        ("callee_cert_dir", peers.display().to_string()),
        ("proxy_cert", p1_crt.clone()),
        ("disclose_to", "proxy1.example.net".into()),
        ("rotate_max_uses", "3".into()),
    ];
    a_opts.extend(edge_a_extra.iter().cloned());
    let (pa, ea) = context(&a_opts);
    let (p1, _) = context(&[
        (
            "rsa_key",
            format!("key={p1_key};cert={p1_crt};label=proxy1"),
        ),
        ("identity", "proxy1.example.net".into()),
        ("trusted_signer", b.clone()),
    ]);
    let (pb, eb) = context(&[
        ("role", "edge".into()),
        (
            "local_key",
            format!("key={bob_key};cert={bob_crt};label=bob"),
        ),
        ("callee_cert_dir", peers.display().to_string()),
        ("proxy_cert", p1_crt),
        ("trusted_signer", b),
        ("rotate_max_uses", "3".into()),
    ]);
    Net {
        _dir: dir,
        edge_a: (pa, ea.unwrap()),
        p1,
        edge_b: (pb, eb.unwrap()),
        alice_key,
        alice_crt,
    }
}

const ALICE: Parties<'static> = Parties {
    local: "alice@example.net",
    peer: "bob@example.net",
    cseq: "",
};

fn parties<'a>(local: &'a str, peer: &'a str, cseq: &'a str) -> Parties<'a> {
    Parties { local, peer, cseq }
}

fn seal(side: &(Proxy, Edge), m: &Msg, local: &str, peer: &str) -> Sealed {
    match side
        .1
        .seal(&side.0, &m.view(), &parties(local, peer, &m.cseq))
    {
        Ok(SealOutcome::Sealed(s)) => s,
        other => panic!("FAILED: {} {} not sealed: {other:?}", m.method, m.status),
    }
}

fn opened(r: Result<Unwrapped, Error>, what: &str) -> sipsd::engine::proxy::DisclosedPart {
    match r {
        Ok(Unwrapped::Disclosed(mut parts)) => parts.remove(0),
        other => panic!("FAILED: {what} not opened: {other:?}"),
    }
}

#[test]
fn a_call_sealed_at_the_caller_edge_is_read_by_p1_and_opened_at_the_callee_edge() {
    let _serial = support::serial();
    let n = net(&[]);
    let invite = Msg::request("INVITE", 1, "alice-tag", "", SDP);

    // --- the offer
    let s = seal(&n.edge_a, &invite, "alice@example.net", "bob@example.net");
    check!(
        s.sealing == Sealing::Offer
            && s.generation == 1
            && s.body.content_type.contains("authEnveloped-data"),
        "edge A sealed the INVITE's SDP as AuthEnvelopedData for a new dialog (generation 1): {}",
        s.body.content_type
    );
    check!(
        s.signer.as_deref() == Some("alice.example.net")
            && s.disposition == Some("session; handling=required")
            && s.disclose_to.as_deref() == Some("proxy1.example.net"),
        "signed by alice, Content-Disposition {:?}, Disclose-To {:?}",
        s.disposition,
        s.disclose_to
    );
    check!(
        !s.body.body.windows(3).any(|w| w == b"v=0")
            && !s.body.body.windows(8).any(|w| w == b"a=crypto"),
        "the sealed body carries no SDP text ({} bytes of DER)",
        s.body.body.len()
    );
    let wire = invite.sealed_as(&s);
    let at_p1 = opened(n.p1.unwrap(&wire.view()), "P1: offer");
    check!(
        at_p1.body.as_slice() == SDP
            && at_p1.signature
                == Some(SignatureCheck::Valid {
                    signer: "alice.example.net".into()
                }),
        "P1 decrypted the offer with its own key and verified alice's signature ({:?})",
        at_p1.signature
    );
    let at_b = opened(n.edge_b.1.open(&n.edge_b.0, &wire.view()), "edge B: offer");
    check!(
        at_b.body.as_slice() == SDP && at_b.content_type == "application/sdp" && at_b.generation == 1,
        "edge B opened it with bob's key: the plain SDP byte for byte, application/sdp, generation 1"
    );
    check!(
        status(&at_b.signature) == "valid"
            && at_b.signature.as_ref().and_then(|s| s.signer()) == Some("alice.example.net"),
        "edge B verified the signature: signer {:?}",
        at_b.signature.as_ref().and_then(|s| s.signer())
    );

    // --- the answer, under the dialog key, sealed twice identically (bob re-sends his 200)
    let ok = invite.reply(200, "bob-tag", ANSWER);
    let bob = parties("bob@example.net", "alice@example.net", "1");
    let a1 = match n.edge_b.1.seal(&n.edge_b.0, &ok.view(), &bob).unwrap() {
        SealOutcome::Sealed(s) => s,
        o => panic!("FAILED: answer not sealed: {o:?}"),
    };
    let a2 = match n.edge_b.1.seal(&n.edge_b.0, &ok.view(), &bob).unwrap() {
        SealOutcome::Sealed(s) => s,
        o => panic!("FAILED: answer not sealed: {o:?}"),
    };
    check!(
        a1.sealing == Sealing::InDialog
            && a1.body.content_type.contains("encrypted-data")
            && a1.generation == 1,
        "edge B sealed bob's answer as EncryptedData under the dialog key (claim 4), generation 1"
    );
    check!(
        a1.body.body == a2.body.body,
        "the re-sent 200 OK sealed again is byte for byte the first ({} bytes)",
        a1.body.body.len()
    );
    let ok_wire = ok.sealed_as(&a1);
    let at_p1 = opened(n.p1.unwrap(&ok_wire.view()), "P1: answer");
    check!(
        at_p1.body.as_slice() == ANSWER && at_p1.key_source.name() == "cache",
        "P1 read the answer with the cached dialog key"
    );
    let at_a = opened(
        n.edge_a.1.open(&n.edge_a.0, &ok_wire.view()),
        "edge A: answer",
    );
    check!(
        at_a.body.as_slice() == ANSWER && at_a.key_source.name() == "cache",
        "edge A opened the answer with the key it made: the plain answer for alice"
    );

    // --- in-dialog requests until the caller's edge rotates (rotate_max_uses 3)
    let mut sealings = Vec::new();
    for cseq in 2..=3 {
        let m = Msg::request(
            "MESSAGE",
            cseq,
            "alice-tag",
            "bob-tag",
            format!("hello {cseq}").as_bytes(),
        );
        let s = seal(&n.edge_a, &m, "alice@example.net", "bob@example.net");
        sealings.push((s.sealing, s.generation));
        let w = m.sealed_as(&s);
        opened(n.p1.unwrap(&w.view()), "P1: MESSAGE");
        let b = opened(n.edge_b.1.open(&n.edge_b.0, &w.view()), "edge B: MESSAGE");
        assert_eq!(b.body.as_slice(), format!("hello {cseq}").as_bytes());
    }
    check!(
        sealings == [(Sealing::InDialog, 1), (Sealing::InDialog, 1)],
        "two MESSAGEs from alice: EncryptedData under generation 1, read by P1 and bob's edge"
    );
    // bob's own request is past the limit too, but the callee's side never starts a rotation
    let from_bob = Msg::request("MESSAGE", 1, "bob-tag", "alice-tag", b"from bob");
    let s = seal(&n.edge_b, &from_bob, "bob@example.net", "alice@example.net");
    check!(
        s.sealing == Sealing::InDialog && s.generation == 1,
        "bob's MESSAGE past the limit: EncryptedData, no rotation from the callee's side"
    );
    let w = from_bob.sealed_as(&s);
    opened(n.p1.unwrap(&w.view()), "P1: bob's MESSAGE");
    let at_a = opened(
        n.edge_a.1.open(&n.edge_a.0, &w.view()),
        "edge A: bob's MESSAGE",
    );
    check!(
        at_a.body.as_slice() == b"from bob",
        "alice's edge opened bob's MESSAGE (key found under the To tag)"
    );

    let reinvite = Msg::request("INVITE", 4, "alice-tag", "bob-tag", SDP);
    let r = seal(&n.edge_a, &reinvite, "alice@example.net", "bob@example.net");
    check!(
        r.sealing == Sealing::Rotation && r.generation == 2 && r.body.content_type.contains("authEnveloped-data"),
        "alice's re-INVITE after 3 uses of the key: a rotation (new key with the proof), generation 2"
    );
    let w = reinvite.sealed_as(&r);
    let at_p1 = opened(n.p1.unwrap(&w.view()), "P1: rotation");
    let at_b = opened(n.edge_b.1.open(&n.edge_b.0, &w.view()), "edge B: rotation");
    check!(
        at_p1.generation == 2 && at_b.generation == 2 && at_b.body.as_slice() == SDP,
        "P1 and edge B took the new key with the proof: generation 2 at both"
    );
    let ok2 = reinvite.reply(200, "bob-tag", ANSWER);
    let a = seal(&n.edge_b, &ok2, "bob@example.net", "alice@example.net");
    let w = ok2.sealed_as(&a);
    let at_a = opened(
        n.edge_a.1.open(&n.edge_a.0, &w.view()),
        "edge A: answer after rotation",
    );
    check!(
        a.sealing == Sealing::InDialog && a.generation == 2 && at_a.generation == 2,
        "the re-INVITE's answer: EncryptedData under the new key, opened by edge A (generation 2)"
    );
    let stats = n.edge_a.0.stats().unwrap();
    let get = |name: &str| {
        sipsd::engine::proxy::stats()
            .find(|s| s.name() == name)
            .map(|s| s.value(&stats))
            .unwrap()
    };
    check!(
        (
            get("edge_offers_sealed"),
            get("edge_in_dialog_sealed"),
            get("edge_rotations"),
            get("edge_signed"),
            get("edge_opened")
        ) == (1, 2, 1, 4, 3),
        "edge A's counters: 1 offer, 2 in-dialog, 1 rotation, 4 signed, 3 opened"
    );
}

#[test]
fn a_tampered_signed_offer_is_refused_or_reported() {
    let _serial = support::serial();
    let n = net(&[]);
    // A holder of the dialog key (a faulty caller edge, or anyone who can seal for bob and
    // P1) changes the SDP after alice signed it.
    let signer_store = KeyStore::load(&KeySpec {
        sign: vec![SignKeySpec {
            key_path: n.alice_key.clone(),
            cert_path: n.alice_crt.clone(),
            aor: None,
        }],
        ..Default::default()
    })
    .unwrap();
    let mut entity = sipsd::sip::body::mime_entity("application/sdp", SDP);
    let der =
        sipsd::crypto::cms::signed::sign_detached(&entity, signer_store.signer_for("x@y").unwrap())
            .unwrap();
    let at = entity
        .windows(5)
        .position(|w| w == b"40000")
        .expect("the port in the signed entity");
    entity[at..at + 5].copy_from_slice(b"40666");
    let (signed_type, signed_body) = sipsd::sip::body::signed::multipart_signed(&entity, &der);
    let recipients: Vec<Recipient> = vec![
        cert_recipient(
            "callee",
            sipsd::crypto::cms::IdKind::IssuerSerial,
            sipsd::crypto::cms::RsaPadding::OaepSha256,
        ),
        cert_recipient(
            "proxy1",
            sipsd::crypto::cms::IdKind::IssuerSerial,
            sipsd::crypto::cms::RsaPadding::OaepSha256,
        ),
    ];
    let (_, body) = UaSession::offer(
        &signed_type,
        &signed_body,
        &recipients,
        ContentAlg::Aes256Gcm,
        None,
        &BodyOptions::default(),
    )
    .unwrap();
    let mut m = Msg::request("INVITE", 1, "tamper-tag", "", b"");
    m.content_type = body.content_type;
    m.body = body.body;
    let e = n.p1.unwrap(&m.view()).unwrap_err();
    check!(
        matches!(e, Error::SignatureInvalid(r) if r.contains("digest")),
        "P1 refuses the tampered offer: {e}"
    );
    let e = n.edge_b.1.open(&n.edge_b.0, &m.view()).unwrap_err();
    check!(
        matches!(e, Error::SignatureInvalid(_)),
        "edge B refuses it: {e}"
    );
    // With signature_policy=report the proxy reads it and says what the signature said.
    let (reporting, _) = context(&[
        (
            "rsa_key",
            format!(
                "key={};cert={}",
                key_path("proxy1.key").display(),
                key_path("proxy1.crt").display()
            ),
        ),
        ("trusted_signer", n.alice_crt.display().to_string()),
        ("signature_policy", "report".into()),
    ]);
    let part = opened(reporting.unwrap(&m.view()), "reporting P1");
    check!(
        status(&part.signature) == "invalid"
            && part.signature.as_ref().and_then(|s| s.signer()) == Some("alice.example.net"),
        "signature_policy=report: read, reported invalid in alice's name ({:?})",
        part.signature
    );
    let stats = n.p1.stats().unwrap();
    let failed = sipsd::engine::proxy::stats()
        .find(|s| s.name() == "signatures_failed")
        .unwrap()
        .value(&stats);
    check!(failed == 1, "P1 counted signatures_failed = {failed}");
}

#[test]
fn a_callee_without_certificate_follows_the_unsealable_policy() {
    let _serial = support::serial();
    let n = net(&[]);
    let invite = Msg::request("INVITE", 1, "carol-call", "", SDP);
    let r = n.edge_a.1.seal(
        &n.edge_a.0,
        &invite.view(),
        &parties("alice@example.net", "carol@example.net", "1"),
    );
    check!(
        matches!(&r, Err(Error::NoPeerCertificate(who)) if who == "carol@example.net"),
        "default unsealable=reject: no certificate for carol -> {:?}",
        r.as_ref().map(|_| ()).map_err(|e| e.to_string())
    );
    let clear = net(&[("unsealable", "clear".into())]);
    let r = clear.edge_a.1.seal(
        &clear.edge_a.0,
        &invite.view(),
        &parties("alice@example.net", "carol@example.net", "1"),
    );
    check!(
        matches!(r, Ok(SealOutcome::Clear)),
        "unsealable=clear: left in clear ({r:?})"
    );
    // An in-dialog body of a dialog whose key the edge does not hold is not sealable either.
    let stray = Msg::request("MESSAGE", 2, "no-such-dialog", "x", b"hi");
    let r = n.edge_a.1.seal(&n.edge_a.0, &stray.view(), &ALICE);
    check!(
        matches!(r, Err(Error::NoDialogKey)),
        "no dialog key: refused, not sent in clear"
    );
    let r = n.edge_a.1.seal(
        &n.edge_a.0,
        &Msg::request("BYE", 3, "x", "y", b"").view(),
        &ALICE,
    );
    check!(
        matches!(r, Ok(SealOutcome::Nothing)),
        "a request without a body: nothing to seal"
    );
}

#[test]
fn forked_answers_share_the_offer_key() {
    let _serial = support::serial();
    let n = net(&[]);
    let invite = Msg::request("INVITE", 1, "fork-tag", "", SDP);
    let s = seal(&n.edge_a, &invite, "alice@example.net", "bob@example.net");
    let wire = invite.sealed_as(&s);
    opened(n.p1.unwrap(&wire.view()), "P1: offer");
    // The INVITE forks to two of bob's phones, each behind an edge with bob's key (a second
    // edge is a second cache: it learns the key from the same offer).
    let (bob_key, bob_crt) = (key_path("callee.key"), key_path("callee.crt"));
    let dir = tempfile::tempdir().unwrap();
    let (k, c) = (dir.path().join("bob.key"), dir.path().join("bob.crt"));
    std::fs::copy(&bob_key, &k).unwrap();
    std::fs::copy(&bob_crt, &c).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&k, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let (pc, ec) = context(&[
        ("role", "edge".into()),
        (
            "local_key",
            format!("key={};cert={}", k.display(), c.display()),
        ),
        ("trusted_signer", n.alice_crt.display().to_string()),
    ]);
    let edge_c = (pc, ec.unwrap());
    for (edge, name) in [(&n.edge_b, "edge B"), (&edge_c, "edge C")] {
        let at = opened(edge.1.open(&edge.0, &wire.view()), name);
        assert_eq!(at.body.as_slice(), SDP, "{name}");
    }
    let mut answers = Vec::new();
    for (edge, tag) in [(&n.edge_b, "desk"), (&edge_c, "mobile")] {
        let ok = invite.reply(200, tag, ANSWER);
        let a = seal(edge, &ok, "bob@example.net", "alice@example.net");
        check!(
            a.sealing == Sealing::InDialog && a.generation == 1,
            "the fork answered by bob's {tag} phone: EncryptedData under the offer's key"
        );
        answers.push(ok.sealed_as(&a));
    }
    check!(
        answers[0].body != answers[1].body,
        "the two forks' answers differ on the wire (another To tag: another synthetic IV)"
    );
    let read: Vec<(Vec<u8>, Vec<u8>)> = answers
        .iter()
        .map(|a| {
            let p = opened(n.p1.unwrap(&a.view()), "P1: a fork's answer");
            let e = opened(
                n.edge_a.1.open(&n.edge_a.0, &a.view()),
                "edge A: a fork's answer",
            );
            (p.body.to_vec(), e.body.to_vec())
        })
        .collect();
    check!(
        read.iter().all(|(p, e)| p == ANSWER && e == ANSWER),
        "P1 and edge A read both forks' answers with the one key cached for the caller's tag"
    );
    // A retransmitted INVITE sealed again (tm did not absorb it): the same key wrapped again.
    let again = seal(&n.edge_a, &invite, "alice@example.net", "bob@example.net");
    let w = invite.sealed_as(&again);
    let p = opened(n.p1.unwrap(&w.view()), "P1: the INVITE sealed again");
    check!(
        again.sealing == Sealing::Reoffer && p.key_source.name() == "cache" && p.generation == 1,
        "the INVITE sealed a second time is the same key again: P1 recognises it without RSA (source=cache, generation 1)"
    );
}
