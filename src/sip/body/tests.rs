//! Unit tests of the body layer as a whole.

use super::*;

const DER: &[u8] = b"\x30\x80\x06\x0b\x2a\x86\x48\x86\xf7\x0d\x01\x09\x10\x01\x17\xa0\x80\x00\x00";

fn limits() -> BodyLimits {
    BodyLimits::default()
}

#[test]
fn single_part_binary() {
    let ct = CmsKind::AuthEnvelopedData.content_type();
    let parts = encrypted_parts(&ct, None, DER, &limits()).unwrap();
    println!("single binary part: {parts:?}");
    assert_eq!(parts.len(), 1);
    assert_eq!(parts[0].der, DER);
    assert_eq!(parts[0].smime_type, Some(CmsKind::AuthEnvelopedData));
    assert_eq!(parts[0].range, 0..DER.len());
    assert_eq!(parts[0].content_id, None);
}

#[test]
fn non_encrypted_bodies_give_nothing() {
    for ct in [
        "application/sdp",
        "application/pkcs7-mime; smime-type=signed-data",
        "application/pkcs7-mime; smime-type=certs-only",
    ] {
        let parts = encrypted_parts(ct, None, b"v=0\r\n", &limits()).unwrap();
        println!("{ct} -> {} encrypted parts", parts.len());
        assert!(parts.is_empty());
    }
    let parts = encrypted_parts("application/x-pkcs7-mime", None, DER, &limits()).unwrap();
    assert_eq!(parts.len(), 1);
    assert_eq!(parts[0].smime_type, None);
    println!("x-pkcs7-mime without smime-type: one part, type left to the DER");
}

#[test]
fn multipart_mixed_found_by_content_id() {
    let (ct, body) = build_multipart(&[
        ("application/sdp".into(), None, None, b"v=0\r\n".to_vec()),
        (
            CmsKind::EnvelopedData.content_type(),
            Some("<enc1@Example.COM>".into()),
            Some("base64".into()),
            DER.to_vec(),
        ),
        (
            "text/plain".into(),
            Some("t@x".into()),
            None,
            b"hello".to_vec(),
        ),
    ]);
    println!("{ct}\n{}", String::from_utf8_lossy(&body));
    let parts = encrypted_parts(&ct, None, &body, &limits()).unwrap();
    assert_eq!(parts.len(), 1);
    let p = &parts[0];
    assert_eq!(p.content_id.as_deref(), Some("enc1@Example.COM"));
    assert!(p.has_content_id("enc1@example.com"));
    assert!(p.has_content_id("<enc1@EXAMPLE.com>"));
    assert!(!p.has_content_id("ENC1@example.com"));
    assert_eq!(p.der, DER);
    assert_eq!(p.smime_type, Some(CmsKind::EnvelopedData));
    let encoded = &body[p.range.clone()];
    assert!(
        encoded.starts_with(b"MIA"),
        "range points at the base64 text"
    );
    println!("found by Content-ID, base64 decoded, range {:?}", p.range);
}

#[test]
fn content_id_comparison() {
    let cases = [
        ("<a@b>", "a@b", true),
        (" < a@B > ", "a@b", true),
        ("A@b", "a@b", false),
        ("a", "a", true),
        ("a", "A", false),
        ("a@b", "a", false),
        ("x@y@Z", "x@y@z", true),
    ];
    for (a, b, want) in cases {
        println!("{a:?} == {b:?}: {}", content_id_eq(a, b));
        assert_eq!(content_id_eq(a, b), want);
    }
}

fn nested(depth: usize) -> (String, Vec<u8>) {
    let (mut ct, mut body) = build_multipart(&[(
        CmsKind::EncryptedData.content_type(),
        Some("deep@x".into()),
        None,
        DER.to_vec(),
    )]);
    for _ in 1..depth {
        let (c, b) = build_multipart(&[(ct, None, None, body)]);
        ct = c;
        body = b;
    }
    (ct, body)
}

#[test]
fn nesting_depth_limit() {
    let (ct, body) = nested(4);
    let parts = encrypted_parts(&ct, None, &body, &limits()).unwrap();
    println!("depth 4 (limit 4): {} part(s)", parts.len());
    assert_eq!(parts.len(), 1);
    assert_eq!(parts[0].der, DER);
    assert_eq!(parts[0].smime_type, Some(CmsKind::EncryptedData));
    let (ct, body) = nested(5);
    let r = encrypted_parts(&ct, None, &body, &limits());
    println!("depth 5 (limit 4): {r:?}");
    assert!(matches!(r, Err(BodyError::TooDeep(5))));
    let none = BodyLimits {
        max_depth: 0,
        ..limits()
    };
    assert!(matches!(
        encrypted_parts(&ct, None, &body, &none),
        Err(BodyError::TooDeep(1))
    ));
}

#[test]
fn very_deep_nesting_is_refused_without_recursion() {
    let (ct, body) = nested(200);
    let generous = BodyLimits {
        max_body: usize::MAX,
        max_parts: usize::MAX,
        max_depth: usize::MAX,
    };
    let parts = encrypted_parts(&ct, None, &body, &generous).unwrap();
    assert_eq!(parts.len(), 1);
    println!("200 levels walked iteratively ({} bytes)", body.len());
}

#[test]
fn parts_are_counted_across_levels() {
    let inner: Vec<_> = (0..10)
        .map(|i| {
            (
                "text/plain".to_string(),
                None,
                None,
                format!("{i}").into_bytes(),
            )
        })
        .collect();
    let (ict, ibody) = build_multipart(&inner);
    let mut outer = inner.clone();
    outer.push((ict, None, None, ibody));
    let (ct, body) = build_multipart(&outer);
    let r = encrypted_parts(&ct, None, &body, &limits());
    println!("11 + 10 parts, limit 16: {r:?}");
    assert!(matches!(r, Err(BodyError::TooManyParts(17))));
}

#[test]
fn limits_and_structure_errors() {
    let big = vec![0u8; 65537];
    let r = encrypted_parts(
        &CmsKind::EnvelopedData.content_type(),
        None,
        &big,
        &limits(),
    );
    println!("65537 bytes: {r:?}");
    assert!(matches!(
        r,
        Err(BodyError::TooLarge {
            size: 65537,
            limit: 65536
        })
    ));
    let r = encrypted_parts("multipart/mixed", None, b"--x\r\n\r\n--x--", &limits());
    println!("no boundary: {r:?}");
    assert!(matches!(r, Err(BodyError::MissingBoundary)));
    let r = encrypted_parts(
        "multipart/mixed; boundary=x",
        Some("base64"),
        b"--x\r\n\r\n--x--",
        &limits(),
    );
    println!("base64 multipart: {r:?}");
    assert!(matches!(r, Err(BodyError::UnsupportedTransferEncoding(_))));
    let r = encrypted_parts("not a type", None, b"", &limits());
    assert!(matches!(r, Err(BodyError::BadContentType(_))));
    let r = encrypted_parts(
        "application/pkcs7-mime",
        Some("base64"),
        b"MII!!!",
        &limits(),
    );
    println!("bad base64: {r:?}");
    assert!(matches!(r, Err(BodyError::BadBase64)));
}

#[test]
fn inner_entity_forms() {
    let sdp = b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\n";
    let (ct, body) = parse_inner(sdp).unwrap();
    assert_eq!((ct.as_str(), body), ("application/sdp", &sdp[..]));
    let ent = mime_entity("Application/SDP", sdp);
    let (ct, body) = parse_inner(&ent).unwrap();
    println!("entity -> {ct}, {} body bytes", body.len());
    assert_eq!((ct.as_str(), body), ("application/sdp", &sdp[..]));
    let (ct, body) = parse_inner(b"Content-ID: <x@y>\r\n\r\nhello").unwrap();
    assert_eq!(
        (ct.as_str(), body),
        ("text/plain; charset=us-ascii", &b"hello"[..])
    );
    let (ct, _) = parse_inner(DER).unwrap();
    assert_eq!(ct, "application/octet-stream");
    let r = parse_inner(
        b"Content-Type: application/sdp\r\nContent-Transfer-Encoding: base64\r\n\r\ndj0w",
    );
    assert!(matches!(r, Err(BodyError::UnsupportedTransferEncoding(_))));
    let r = parse_inner(b"Content-Type: application/sdp\r\nbroken line\r\n\r\nv=0");
    assert!(matches!(r, Err(BodyError::BadHeader(_))));
    println!("bare SDP, entity, default text/plain, DER, base64 refused, broken header refused");
}

#[test]
fn header_injection_is_neutralised() {
    let ent = mime_entity("application/sdp\r\nX-Evil: 1", b"v=0");
    println!("{:?}", String::from_utf8_lossy(&ent));
    assert!(ent.starts_with(b"Content-Type: application/sdp  X-Evil: 1\r\n\r\n"));
    assert!(matches!(
        parse_inner(&ent),
        Err(BodyError::BadContentType(_))
    ));
    let (_, body) = build_multipart(&[(
        "text/plain\r\nX-Evil: 1".into(),
        Some("a>\r\nX-Evil: 2".into()),
        Some("binary\r\nX-Evil: 3".into()),
        b"x".to_vec(),
    )]);
    let text = String::from_utf8_lossy(&body);
    println!("{text:?}");
    assert!(!text.contains("\nX-Evil"));
}

#[test]
fn own_content_types_read_as_parsing_reads_them() {
    for kind in CmsKind::ALL {
        let value = kind.content_type();
        for (te, body) in [
            (None, DER.to_vec()),
            (Some("base64"), b"MIAGCyqGSIb3DQEJEAEX".to_vec()),
        ] {
            let fast = encrypted_parts(&format!(" {value}\r\n"), te, &body, &limits()).unwrap();
            let ct = ContentType::parse(&value).unwrap();
            let general = encrypted_part(&ct, None, te, &body, 0..body.len()).unwrap();
            let general: Vec<_> = general.into_iter().collect();
            assert_eq!(own_smime_content_type(&value), Some(kind));
            assert_eq!(
                format!("{fast:?}"),
                format!("{general:?}"),
                "{value} {te:?}"
            );
        }
        println!(
            "{value}: read without parsing, the same parts as parsing gives (binary and base64)"
        );
    }
    for other in [
        "Application/pkcs7-mime; smime-type=encrypted-data; name=smime.p7m",
        "application/pkcs7-mime; smime-type=Encrypted-Data; name=smime.p7m",
        "application/pkcs7-mime;smime-type=encrypted-data; name=smime.p7m",
        "application/pkcs7-mime; smime-type=encrypted-data",
        "application/pkcs7-mime; smime-type=encrypted-data; name=smime.p7m; x=1",
        "application/pkcs7-mime; smime-type=signed-data; name=smime.p7m",
    ] {
        assert_eq!(own_smime_content_type(other), None, "{other}");
    }
    println!("other spellings (case, blanks, parameters) are parsed");
}

#[test]
fn sdp_entity_header_read_as_parsing_reads_it() {
    let sdp = b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\n";
    let ent = mime_entity("application/sdp", sdp);
    assert!(ent.starts_with(SDP_ENTITY_HEADER));
    let fast = parse_inner_type(&ent).unwrap();
    let general = parse_inner_general(&ent).unwrap();
    assert_eq!(fast, general);
    assert_eq!(fast.1, &sdp[..]);
    // a Content-Transfer-Encoding after it is another header block: parsed (and refused)
    let cte = b"Content-Type: application/sdp\r\nContent-Transfer-Encoding: base64\r\n\r\nv=0";
    assert!(!cte.starts_with(SDP_ENTITY_HEADER));
    println!("the SDP entity header mime_entity writes: read without parsing, as parsing reads it");
}
