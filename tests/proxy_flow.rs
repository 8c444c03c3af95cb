//! The proxy engine on real keys: implicit, explicit and mixed decisions, multipart selection
//! by Content-ID, pre-shared keys, rotation policy and limits. (The same engine runs inside
//! Kamailio through the C ABI; tests/c_abi.rs and tests/kamailio_e2e.rs cover those layers.)

mod support;

use sipsd::crypto::cms::{ContentAlg, IdKind, Recipient, RsaPadding};
use sipsd::engine::proxy::{Counter, KeySource, Proxy, ProxyConfig, SipMessage, Unwrapped};
use sipsd::engine::ua::UaSession;
use sipsd::engine::Error;
use sipsd::sip::body;
use sipsd::sip::body::BodyOptions;
use sipsd::sip::body::SipBody;

use support::vectors::{cert_recipient, keys, psk_recipient};

fn cert(name: &str) -> Recipient {
    cert_recipient(name, IdKind::IssuerSerial, RsaPadding::OaepSha1)
}

fn psk() -> Recipient {
    psk_recipient()
}

/// proxy1 with its RSA key and the PSK, in `mode`, plus extra options.
fn proxy(mode: &str, extra: &[(&str, &str)]) -> Proxy {
    let k = keys();
    let mut c = ProxyConfig::default();
    c.set(
        "rsa_key",
        &format!(
            "key={};cert={}",
            k.join("proxy1.key").display(),
            k.join("proxy1.crt").display()
        ),
    )
    .unwrap();
    c.set(
        "psk",
        &format!(
            "id=text:psk-proxy1;key={};label=psk1",
            k.join("psk-proxy1.hex").display()
        ),
    )
    .unwrap();
    c.set("mode", mode).unwrap();
    for (n, v) in extra {
        c.set(n, v).unwrap();
    }
    Proxy::new(c).unwrap()
}

const SDP: &[u8] = b"v=0\r\no=a 1 1 IN IP4 198.51.100.7\r\ns=-\r\nc=IN IP4 198.51.100.7\r\nt=0 0\r\nm=audio 30000 RTP/SAVP 0\r\n";

fn offer(recipients: &[Recipient]) -> (UaSession, SipBody) {
    UaSession::offer(
        "application/sdp",
        SDP,
        recipients,
        ContentAlg::Aes256Gcm,
        None,
        &BodyOptions::default(),
    )
    .unwrap()
}

fn msg<'a>(call: &'a str, to_tag: &'a str, b: &'a SipBody, disclose: &'a str) -> SipMessage<'a> {
    SipMessage {
        call_id: call.as_bytes(),
        from_tag: b"caller",
        to_tag: to_tag.as_bytes(),
        method: b"INVITE",
        status: 0,
        content_type: b.content_type.as_bytes(),
        transfer_encoding: b.transfer_encoding.unwrap_or("").as_bytes(),
        disclose_to: disclose.as_bytes(),
        body: &b.body,
        ..SipMessage::default()
    }
}

fn disclosed(u: Unwrapped) -> Vec<sipsd::engine::proxy::DisclosedPart> {
    match u {
        Unwrapped::Disclosed(p) => p.into_vec(),
        other => panic!("expected a disclosed body, got {other:?}"),
    }
}

#[test]
fn implicit_mode_decrypts_iff_a_recipient_names_our_key() {
    let p = proxy("implicit", &[]);
    let (_, mine) = offer(&[cert("callee"), cert("proxy1")]);
    let parts = disclosed(p.unwrap(&msg("c1", "", &mine, "")).unwrap());
    assert_eq!(parts[0].body.as_slice(), SDP);
    assert_eq!(parts[0].key_source, KeySource::Wrapped);
    let sdp = parts[0].sdp().expect("an SDP part").expect("a valid SDP");
    let media = sdp.first_audio().unwrap();
    assert_eq!((media.addr(), media.port), (Some("198.51.100.7"), 30000));
    println!("implicit: offer for callee+proxy1 decrypted, media 198.51.100.7:30000");

    let (_, other) = offer(&[cert("callee"), cert("proxy2")]);
    assert!(matches!(
        p.unwrap(&msg("c2", "", &other, "")).unwrap(),
        Unwrapped::NotForMe
    ));
    println!("implicit: offer for callee+proxy2 -> not for me");

    let (_, by_psk) = offer(&[cert("callee"), psk()]);
    let parts = disclosed(p.unwrap(&msg("c3", "", &by_psk, "")).unwrap());
    assert_eq!(parts[0].key_label, "psk1");
    println!("implicit: offer for callee + pre-shared key opened with key 'psk1'");

    let (_, mine2) = offer(&[cert("callee"), cert("proxy1")]);
    assert!(matches!(
        p.unwrap(&msg("c4", "", &mine2, "proxy2.example.net"))
            .unwrap(),
        Unwrapped::Disclosed(_)
    ));
    println!("implicit: Disclose-To is ignored (names proxy2, still decrypted)");
}

#[test]
fn explicit_mode_needs_the_header_to_name_us() {
    let p = proxy("explicit", &[]);
    let (_, b) = offer(&[cert("callee"), cert("proxy1")]);
    assert!(matches!(
        p.unwrap(&msg("e1", "", &b, "")).unwrap(),
        Unwrapped::NotForMe
    ));
    println!("explicit: recipient but no Disclose-To -> not for me");
    assert!(matches!(
        p.unwrap(&msg("e2", "", &b, "proxy2.example.net")).unwrap(),
        Unwrapped::NotForMe
    ));
    println!("explicit: Disclose-To names another proxy -> not for me");
    disclosed(p.unwrap(&msg("e3", "", &b, "PROXY1.example.net")).unwrap());
    println!("explicit: Disclose-To names proxy1 (any case, identity from the certificate CN) -> decrypted");
    let (_, theirs) = offer(&[cert("callee"), cert("proxy2")]);
    let e = p
        .unwrap(&msg("e4", "", &theirs, "proxy1.example.net"))
        .unwrap_err();
    assert!(
        matches!(e, Error::Cms(sipsd::crypto::cms::CmsError::NotRecipient)),
        "{e}"
    );
    println!("explicit: named but not a recipient -> error: {e}");
}

#[test]
fn explicit_content_ids_select_parts_of_a_multipart_body() {
    let p = proxy("both", &[]);
    let (_, for_p1) = offer(&[cert("callee"), cert("proxy1")]);
    let (_, for_p2) = offer(&[cert("callee"), cert("proxy2")]);
    let (ct, body) = body::build_multipart(&[
        (
            for_p1.content_type.clone(),
            Some("sdp1@alice.example".into()),
            None,
            for_p1.body.clone(),
        ),
        ("text/plain".into(), None, None, b"hello".to_vec()),
        (
            for_p2.content_type.clone(),
            Some("sdp2@alice.example".into()),
            Some("base64".into()),
            for_p2.body.clone(),
        ),
    ]);
    let mp = SipBody {
        content_type: ct,
        transfer_encoding: None,
        disclose_to: None,
        body,
    };
    let parts = disclosed(
        p.unwrap(&msg("m1", "", &mp, "proxy1.example.net;cid=<sdp1@alice.example>, proxy2.example.net;cid=sdp2@alice.example"))
            .unwrap(),
    );
    assert_eq!(parts.len(), 1);
    assert_eq!(parts[0].content_id.as_deref(), Some("sdp1@alice.example"));
    println!("both: Disclose-To asks proxy1 for <sdp1@...> of a 3-part body: exactly that part decrypted");

    let parts = disclosed(p.unwrap(&msg("m2", "", &mp, "")).unwrap());
    assert_eq!(parts.len(), 1);
    println!("both, no header: implicit, the one part naming proxy1 decrypted");

    let e = p
        .unwrap(&msg("m3", "", &mp, "proxy1.example.net;cid=nowhere@x"))
        .unwrap_err();
    assert!(matches!(e, Error::ContentIdNotFound(_)), "{e}");
    println!("Content-ID that points nowhere -> {e}");
    let e = p
        .unwrap(&msg(
            "m4",
            "",
            &mp,
            "proxy1.example.net;cid=sdp2@alice.example",
        ))
        .unwrap_err();
    assert!(
        matches!(e, Error::Cms(sipsd::crypto::cms::CmsError::NotRecipient)),
        "{e}"
    );
    println!("asked for a part not wrapped for us -> {e}");
}

#[test]
fn dialog_key_is_reused_rotated_and_limited() {
    let p = proxy("implicit", &[("rotate_max_uses", "2")]);
    let (mut ua, o) = offer(&[cert("callee"), cert("proxy1")]);
    disclosed(p.unwrap(&msg("d1", "", &o, "")).unwrap());
    let opts = BodyOptions::default();
    for i in 1..=2 {
        let b = ua.encrypt("text/plain", b"in dialog", &opts).unwrap();
        let parts = disclosed(p.unwrap(&msg("d1", "callee", &b, "")).unwrap());
        assert_eq!(parts[0].key_source, KeySource::Cache);
        println!("in-dialog body {i} decrypted with the cached key");
    }
    let b = ua.encrypt("text/plain", b"one too many", &opts).unwrap();
    let e = p.unwrap(&msg("d1", "callee", &b, "")).unwrap_err();
    assert!(matches!(e, Error::KeyExpired), "{e}");
    println!("use 3 with rotate_max_uses=2 -> {e}");
    let r = ua
        .rotate(
            "application/sdp",
            SDP,
            &[cert("callee"), cert("proxy1")],
            &opts,
        )
        .unwrap();
    let parts = disclosed(p.unwrap(&msg("d1", "callee", &r, "")).unwrap());
    assert_eq!(parts[0].generation, 2);
    let b = ua.encrypt("text/plain", b"fresh", &opts).unwrap();
    disclosed(p.unwrap(&msg("d1", "callee", &b, "")).unwrap());
    println!("after rotation (generation 2) the new key is used");
    let s = p.stats().unwrap();
    assert_eq!(s.cache.rotations, 1);
    assert!(s.get(Counter::Errors) >= 1);
    println!(
        "stats: decrypted={} errors={} rotations={}",
        s.get(Counter::Decrypted),
        s.get(Counter::Errors),
        s.cache.rotations
    );
}

#[test]
fn recipient_count_is_limited() {
    let p = proxy("implicit", &[("max_recipients", "2")]);
    let (_, b) = offer(&[cert("callee"), cert("proxy2"), cert("proxy1")]);
    let e = p.unwrap(&msg("r1", "", &b, "")).unwrap_err();
    assert!(
        matches!(e, Error::TooManyRecipients { count: 3, limit: 2 }),
        "{e}"
    );
    println!("3 RecipientInfos with max_recipients=2 -> {e}");
}
