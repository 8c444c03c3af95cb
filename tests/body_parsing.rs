//! SIP body parsing end to end on the OpenSSL vectors (copied into tests/data/sip/ from
//! /work/shared/vectors/msgs): single-part binary and base64 bodies, multipart bodies with the
//! encrypted part found by Content-ID, nesting and size limits, the `Disclose-To` header and
//! the SDP facts of the disclosed offer.

use base64::Engine as _;
use const_oid::db::rfc5911::{ID_CT_AUTH_ENVELOPED_DATA, ID_ENCRYPTED_DATA, ID_ENVELOPED_DATA};
use der::Decode as _;
use sipsd::crypto::cms::CmsKind;
use sipsd::sip::body::{
    encrypted_parts, parse_inner, BodyError, BodyLimits, ContentType, EncryptedPart,
};
use sipsd::sip::disclose::{DiscloseError, DisclosureRequest, Selection};
use sipsd::sip::sdp::SdpInfo;

const INVITE: &[u8] = include_bytes!("data/sip/invite-smime.sip");
const OFFER: &[u8] = include_bytes!("data/sip/offer.sdp");
const GCM: &[u8] = include_bytes!("data/sip/gcm256-oaep-callee-proxy1.der");
const CBC: &[u8] = include_bytes!("data/sip/cbc256-pkcs1-callee-proxy1.der");
const ENCRYPTED_DATA: &[u8] = include_bytes!("data/sip/encrypteddata-cbc256.der");

/// A SIP message split into headers (name, value) and body, with Content-Length honoured.
struct SipMessage<'a> {
    headers: Vec<(String, String)>,
    body: &'a [u8],
}

impl<'a> SipMessage<'a> {
    fn parse(msg: &'a [u8]) -> SipMessage<'a> {
        let end = msg
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("header/body separator");
        let head = std::str::from_utf8(&msg[..end]).expect("UTF-8 head");
        let mut headers: Vec<(String, String)> = Vec::new();
        for line in head.split("\r\n").skip(1) {
            if line.starts_with([' ', '\t']) {
                headers.last_mut().expect("field").1.push_str(line);
                continue;
            }
            let (n, v) = line.split_once(':').expect("header line");
            headers.push((n.trim().to_owned(), v.trim().to_owned()));
        }
        let mut m = SipMessage {
            headers,
            body: &msg[end + 4..],
        };
        if let Some(len) = m.header("Content-Length", "l") {
            let len: usize = len.parse().expect("Content-Length");
            assert!(len <= m.body.len(), "Content-Length beyond the message");
            m.body = &m.body[..len];
        }
        m
    }

    fn header(&self, name: &str, compact: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name) || n.eq_ignore_ascii_case(compact))
            .map(|(_, v)| v.as_str())
    }

    fn parts(&self) -> Result<Vec<EncryptedPart>, BodyError> {
        encrypted_parts(
            self.header("Content-Type", "c").expect("Content-Type"),
            self.header("Content-Transfer-Encoding", "\0"),
            self.body,
            &BodyLimits::default(),
        )
        .map(|parts| parts.into_vec())
    }
}

/// The CMS content type of a DER ContentInfo.
fn cms_type(der: &[u8]) -> const_oid::ObjectIdentifier {
    cms::content_info::ContentInfo::from_der(der)
        .expect("ContentInfo")
        .content_type
}

fn b64_lines(der: &[u8], width: usize) -> String {
    let text = base64::engine::general_purpose::STANDARD.encode(der);
    text.as_bytes()
        .chunks(width)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect::<Vec<_>>()
        .join("\r\n")
}

#[test]
fn invite_vector_end_to_end() {
    let msg = SipMessage::parse(INVITE);
    println!(
        "INVITE Call-ID {:?}, Content-Type {:?}, body {} bytes",
        msg.header("Call-ID", "i"),
        msg.header("Content-Type", "c"),
        msg.body.len()
    );
    let parts = msg.parts().unwrap();
    assert_eq!(parts.len(), 1);
    let p = &parts[0];
    assert_eq!(p.smime_type, Some(CmsKind::AuthEnvelopedData));
    assert_eq!(p.content_id, None);
    assert_eq!(p.range, 0..msg.body.len());
    assert_eq!(
        p.der, GCM,
        "the body is the gcm256-oaep-callee-proxy1 vector"
    );
    assert_eq!(cms_type(&p.der), ID_CT_AUTH_ENVELOPED_DATA);
    println!(
        "one authEnveloped-data part of {} bytes, DER is ContentInfo(id-ct-authEnvelopedData)",
        p.der.len()
    );
}

#[test]
fn single_part_base64_with_line_breaks() {
    for width in [64, 76] {
        let body = b64_lines(CBC, width) + "\r\n";
        let parts = encrypted_parts(
            "application/pkcs7-mime; smime-type=Enveloped-Data; name=smime.p7m",
            Some("Base64"),
            body.as_bytes(),
            &BodyLimits::default(),
        )
        .unwrap();
        println!(
            "base64 in {width}-char lines: {} text bytes -> {} DER bytes",
            body.len(),
            parts[0].der.len()
        );
        assert_eq!(parts[0].der, CBC);
        assert_eq!(parts[0].smime_type, Some(CmsKind::EnvelopedData));
        assert_eq!(cms_type(&parts[0].der), ID_ENVELOPED_DATA);
    }
}

#[test]
fn smime_type_detection_any_case() {
    let cases = [
        ("enveloped-data", Some(CmsKind::EnvelopedData)),
        ("ENVELOPED-DATA", Some(CmsKind::EnvelopedData)),
        ("authEnveloped-data", Some(CmsKind::AuthEnvelopedData)),
        ("AUTHENVELOPED-DATA", Some(CmsKind::AuthEnvelopedData)),
        ("\"authenveloped-data\"", Some(CmsKind::AuthEnvelopedData)),
        ("encrypted-data", Some(CmsKind::EncryptedData)),
        ("Encrypted-Data", Some(CmsKind::EncryptedData)),
    ];
    for (param, want) in cases {
        let ct = format!("application/pkcs7-mime; smime-type={param}");
        let parts = encrypted_parts(&ct, None, ENCRYPTED_DATA, &BodyLimits::default()).unwrap();
        println!("smime-type={param} -> {:?}", parts[0].smime_type);
        assert_eq!(parts[0].smime_type, want);
    }
    let parts = encrypted_parts(
        "application/pkcs7-mime",
        None,
        ENCRYPTED_DATA,
        &BodyLimits::default(),
    )
    .unwrap();
    assert_eq!(parts[0].smime_type, None);
    assert_eq!(cms_type(&parts[0].der), ID_ENCRYPTED_DATA);
    println!("no smime-type: None, the DER says id-encryptedData");
    let signed = encrypted_parts(
        "application/pkcs7-mime; smime-type=signed-data",
        None,
        GCM,
        &BodyLimits::default(),
    )
    .unwrap();
    assert!(signed.is_empty());
    println!("smime-type=signed-data is not an encrypted part");
}

/// A hand-written multipart/mixed INVITE body: a plain SDP, the encrypted SDP (base64, by
/// Content-ID) and a text part, with a preamble and an epilogue.
fn mixed_body() -> (String, String) {
    let b64 = b64_lines(GCM, 76);
    let body = format!(
        "This is a multi-part message in MIME format.\r\n\
         --unique-boundary-1\r\n\
         Content-Type: application/sdp\r\n\
         Content-Disposition: session\r\n\
         \r\n\
         v=0\r\no=- 1 1 IN IP4 198.51.100.1\r\ns=-\r\nc=IN IP4 198.51.100.1\r\nt=0 0\r\n\
         m=audio 9 RTP/AVP 0\r\n\
         \r\n\
         --unique-boundary-1\r\n\
         Content-Type: application/pkcs7-mime;\r\n smime-type=authEnveloped-data; name=smime.p7m\r\n\
         Content-ID: <sdp-enc-1@alice.example.org>\r\n\
         Content-Transfer-Encoding: base64\r\n\
         Content-Disposition: session; handling=required\r\n\
         \r\n\
         {b64}\r\n\
         --unique-boundary-1\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\
         Content-ID: <note@alice.example.org>\r\n\
         \r\n\
         hello --unique-boundary-1 is not at a line start\r\n\
         --unique-boundary-1--\r\n\
         epilogue\r\n"
    );
    (
        "multipart/mixed; boundary=\"unique-boundary-1\"".to_owned(),
        body,
    )
}

#[test]
fn multipart_encrypted_part_found_by_content_id() {
    let (ct, body) = mixed_body();
    let parts = encrypted_parts(&ct, None, body.as_bytes(), &BodyLimits::default()).unwrap();
    println!(
        "{} encrypted part(s): {:?}",
        parts.len(),
        parts[0].content_id
    );
    assert_eq!(parts.len(), 1);
    let p = &parts[0];
    assert_eq!(p.content_id.as_deref(), Some("sdp-enc-1@alice.example.org"));
    assert!(p.has_content_id("<sdp-enc-1@ALICE.example.org>"));
    assert!(!p.has_content_id("SDP-ENC-1@alice.example.org"));
    assert_eq!(p.der, GCM);
    assert_eq!(
        &body.as_bytes()[p.range.clone()],
        b64_lines(GCM, 76).as_bytes(),
        "range covers exactly the encoded part body"
    );
    let req =
        DisclosureRequest::parse("proxy1.example.net;cid=<sdp-enc-1@alice.example.org>").unwrap();
    let sel = req.selection_for(&["proxy1.example.net".to_owned()]);
    assert!(sel.covers(p.content_id.as_deref()));
    assert!(!sel.covers(Some("note@alice.example.org")));
    println!("Disclose-To cid selects this part (range {:?})", p.range);
}

#[test]
fn multipart_alternative_and_related_are_walked() {
    let inner = format!(
        "--in\r\nContent-Type: application/pkcs7-mime; smime-type=encrypted-data\r\n\
         Content-ID: <ed@x>\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n--in--",
        b64_lines(ENCRYPTED_DATA, 64)
    );
    for sub in ["alternative", "related"] {
        let body = format!(
            "--out\r\nContent-Type: text/plain\r\n\r\nx\r\n\
             --out\r\nContent-Type: multipart/{sub}; boundary=in\r\n\r\n{inner}\r\n--out--\r\n"
        );
        let parts = encrypted_parts(
            "multipart/mixed;boundary=out",
            None,
            body.as_bytes(),
            &BodyLimits::default(),
        )
        .unwrap();
        println!(
            "mixed > {sub}: {:?} {:?}",
            parts[0].content_id, parts[0].smime_type
        );
        assert_eq!(parts.len(), 1);
        assert_eq!(parts[0].der, ENCRYPTED_DATA);
        assert_eq!(parts[0].smime_type, Some(CmsKind::EncryptedData));
    }
}

/// `levels` multiparts nested in each other, the innermost holding the encrypted part.
fn nested(levels: usize) -> (String, Vec<u8>) {
    let mut ct = CmsKind::EnvelopedData.content_type();
    let mut body = CBC.to_vec();
    let mut cid = Some("enc@x".to_owned());
    for _ in 0..levels {
        let (c, b) = sipsd::sip::body::build_multipart(&[
            ("text/plain".into(), None, None, b"filler".to_vec()),
            (ct, cid.take(), None, body),
        ]);
        ct = c;
        body = b;
    }
    (ct, body)
}

#[test]
fn nesting_within_and_beyond_the_limit() {
    let limits = BodyLimits::default();
    let (ct, body) = nested(limits.max_depth);
    let parts = encrypted_parts(&ct, None, &body, &limits).unwrap();
    println!(
        "depth {} accepted: {:?}",
        limits.max_depth, parts[0].content_id
    );
    assert_eq!(parts[0].der, CBC);
    assert_eq!(parts[0].content_id.as_deref(), Some("enc@x"));
    let (ct, body) = nested(limits.max_depth + 1);
    let err = encrypted_parts(&ct, None, &body, &limits).unwrap_err();
    println!("depth {} refused: {err}", limits.max_depth + 1);
    assert!(matches!(err, BodyError::TooDeep(5)));
}

#[test]
fn broken_bodies_are_errors() {
    let limits = BodyLimits::default();
    let (_, body) = mixed_body();
    let err = encrypted_parts("multipart/mixed", None, body.as_bytes(), &limits).unwrap_err();
    println!("missing boundary: {err}");
    assert!(matches!(err, BodyError::MissingBoundary));

    let err = encrypted_parts(
        "multipart/mixed; boundary=other",
        None,
        body.as_bytes(),
        &limits,
    )
    .unwrap_err();
    println!("wrong boundary: {err}");
    assert!(matches!(err, BodyError::BadMultipart(_)));

    let truncated = &body.as_bytes()[..body.len() / 2];
    let err = encrypted_parts(
        "multipart/mixed; boundary=unique-boundary-1",
        None,
        truncated,
        &limits,
    )
    .unwrap_err();
    println!("truncated: {err}");
    assert!(matches!(err, BodyError::BadMultipart(_)));

    let bad = b64_lines(GCM, 76).replacen('A', "*", 1);
    let err = encrypted_parts(
        "application/pkcs7-mime",
        Some("base64"),
        bad.as_bytes(),
        &limits,
    )
    .unwrap_err();
    println!("invalid base64: {err}");
    assert!(matches!(err, BodyError::BadBase64));

    let small = BodyLimits {
        max_body: 1000,
        ..limits
    };
    let err = encrypted_parts("application/pkcs7-mime", None, GCM, &small).unwrap_err();
    println!("over the limit: {err}");
    assert!(matches!(
        err,
        BodyError::TooLarge {
            size: 1027,
            limit: 1000
        }
    ));
}

#[test]
fn hostile_inputs_never_panic() {
    let (ct, body) = mixed_body();
    let body = body.into_bytes();
    let whole = encrypted_parts(&ct, None, &body, &BodyLimits::default());
    assert!(
        whole.as_ref().is_ok_and(|p| p.len() == 1),
        "the whole body parses: {whole:?}"
    );
    // Every prefix: an error exactly while the closing delimiter is cut (what follows it is
    // the epilogue, which a parser ignores).
    let delimiter = b"--unique-boundary-1--";
    let close_end = body
        .windows(delimiter.len())
        .position(|w| w == delimiter)
        .expect("closing delimiter")
        + delimiter.len();
    let mut errors = 0;
    for cut in 0..body.len() {
        let r = encrypted_parts(&ct, None, &body[..cut], &BodyLimits::default());
        assert_eq!(
            r.is_err(),
            cut < close_end,
            "prefix of {cut} bytes (closing delimiter ends at {close_end}): {r:?}"
        );
        errors += usize::from(r.is_err());
    }
    // A byte flip at every position: an answer (a result, never a panic) each time, and the
    // encrypted part, when still found, never reaches outside the body.
    for i in 0..body.len() {
        let mut b = body.clone();
        b[i] ^= 0x5a;
        if let Ok(parts) = encrypted_parts(&ct, None, &b, &BodyLimits::default()) {
            assert!(
                parts.iter().all(|p| p.range.end <= b.len()),
                "flip at {i}: a part range outside the body"
            );
        }
        let _ = parse_inner(&b[i..]);
    }
    println!(
        "{} prefixes ({errors} errors: every one that cuts the closing delimiter) and {} flips parsed without panic",
        body.len(),
        body.len()
    );
    for junk in [
        "",
        ";",
        "a/b; x=\"",
        "multipart/mixed; boundary=\"\"",
        "\u{0}/\u{0}",
    ] {
        let r = encrypted_parts(junk, None, b"", &BodyLimits::default());
        println!("Content-Type {junk:?} -> {r:?}");
        assert!(r.is_err(), "Content-Type {junk:?} is refused");
    }
}

#[test]
fn decrypted_plaintext_forms() {
    let (ct, sdp) = parse_inner(OFFER).unwrap();
    assert_eq!((ct.as_str(), sdp), ("application/sdp", OFFER));
    let entity = sipsd::sip::body::mime_entity("application/sdp", OFFER);
    let (ct, sdp) = parse_inner(&entity).unwrap();
    assert_eq!(ContentType::parse(&ct).unwrap().media, "application/sdp");
    assert_eq!(sdp, OFFER);
    println!("bare SDP and RFC 3261 §23.4.3 entity both give application/sdp");
}

#[test]
fn offer_sdp_facts() {
    let info = SdpInfo::parse(OFFER).unwrap();
    println!("{info:?}");
    assert_eq!(info.session_addr(), Some("192.0.2.10"));
    let audio = info.first_audio().unwrap();
    assert_eq!(audio.addr(), Some("192.0.2.10"));
    assert_eq!(audio.port, 49170);
    assert_eq!(audio.proto, "RTP/SAVP");
    let values: Vec<&str> = audio.crypto.iter().map(|c| c.value()).collect();
    assert_eq!(
        values,
        ["1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20|1:32"]
    );
    let keys = audio.crypto[0].keys().expect("RFC 4568 inline key");
    assert_eq!(
        (keys[0].key_salt().len(), keys[0].lifetime),
        (30, Some(1 << 20))
    );
    assert!(
        !format!("{info:?}").contains("PS1uQCVe"),
        "Debug redacts the key"
    );
    println!("audio at 192.0.2.10:49170, one a=crypto line (30-byte key||salt, lifetime 2^20), key redacted in Debug");
}

#[test]
fn disclose_to_syntax() {
    let v = "proxy1.example.net;cid=\"<sdp-enc-1@alice.example.org>\", proxy2.example.net";
    let req = DisclosureRequest::parse(v).unwrap();
    let again = DisclosureRequest::parse(&req.to_header_value()).unwrap();
    println!("{v}\n -> {}", req.to_header_value());
    assert_eq!(again, req);
    assert_eq!(
        req.selection_for(&["PROXY1.EXAMPLE.NET".into()]),
        Selection::Parts(vec!["sdp-enc-1@alice.example.org".into()])
    );
    assert_eq!(
        req.selection_for(&["proxy2.example.net".into()]),
        Selection::AllParts
    );
    assert_eq!(
        req.selection_for(&["proxy9.example.net".into()]),
        Selection::NotNamed
    );
    assert_eq!(DisclosureRequest::HEADER, "Disclose-To");

    let overlong = format!("proxy1.example.net;cid={}", "a".repeat(5000));
    let thousand = vec!["p"; 1000].join(","); // 1999 bytes: under the length limit
    for (v, want) in [
        (overlong.as_str(), DiscloseError::TooLong),
        (thousand.as_str(), DiscloseError::TooManyEntries),
        ("", DiscloseError::Empty),
        (
            "proxy1.example.net;cid=\"abc",
            DiscloseError::BadParam("unbalanced quote".into()),
        ),
    ] {
        let got = DisclosureRequest::parse(v).unwrap_err();
        println!("{:.40?}... -> {got}", v);
        assert_eq!(got, want);
    }
}
