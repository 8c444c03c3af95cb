//! The auditor option (the patent's "encrypted together with its key information"): a call's
//! SRTP is kept exactly as received (`srtp.pcap`) next to its key messages sealed for an
//! auditor's certificate (`keys.p7m`: CMS AuthEnvelopedData, AES-256-GCM, RSA-OAEP-SHA-256
//! key transport, content = DER `SEQUENCE OF KeyMessage`). Only the auditor's private key
//! opens it; [`open_recording`] then decrypts the capture as the recorder would have.

use std::path::Path;

use der::{Decode, Encode};
use sipsd::crypto::cms::{self, Cek, CmsError, ContentAlg, IdKind, Recipient, RsaPadding};
use sipsd::crypto::keys::KeyStore;
use sipsd::record::KeyMessage;
use zeroize::Zeroizing;

use crate::call::RecordOptions;
use crate::manifest::Manifest;
use crate::pcap::{self, PcapReader};
use crate::recorder::Recorder;

/// The sealed key messages' file name in a recording.
pub const KEYS_FILE: &str = "keys.p7m";
/// The SRTP capture's file name.
pub const SRTP_FILE: &str = "srtp.pcap";

/// Why an audit file could not be made or opened.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// Sealing or opening failed (not a recipient, tampered, ...).
    #[error("CMS: {0}")]
    Cms(#[from] CmsError),
    /// The opened content is not a list of key messages.
    #[error("sealed keys: {0}")]
    Der(String),
    /// Reading or writing a file.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// The auditor as a recipient, from its certificate file.
pub fn auditor(cert: &Path) -> Result<Recipient, AuditError> {
    Ok(Recipient::from_cert_file(
        cert,
        IdKind::IssuerSerial,
        RsaPadding::OaepSha256,
    )?)
}

/// Seals a call's key messages for the auditor.
pub fn seal_keys(msgs: &[KeyMessage], auditor: &Recipient) -> Result<Vec<u8>, AuditError> {
    let list = msgs.to_vec();
    let len = list
        .encoded_len()
        .map_err(|e| AuditError::Der(e.to_string()))?;
    let mut der = Zeroizing::new(vec![
        0u8;
        usize::try_from(len)
            .map_err(|e| AuditError::Der(e.to_string()))?
    ]);
    let n = list
        .encode_to_slice(&mut der)
        .map_err(|e| AuditError::Der(e.to_string()))?
        .len();
    der.truncate(n);
    let cek = Cek::generate(ContentAlg::Aes256Gcm)?;
    Ok(cms::seal(&der, std::slice::from_ref(auditor), &cek)?)
}

/// Opens sealed key messages with the auditor's keys.
pub fn open_keys(sealed: &[u8], keys: &KeyStore) -> Result<Vec<KeyMessage>, AuditError> {
    let opened = cms::open(sealed, keys)?;
    Vec::<KeyMessage>::from_der(&opened.plaintext).map_err(|e| AuditError::Der(e.to_string()))
}

/// Decrypts a kept recording (`dir` with `keys.p7m` and `srtp.pcap`) into `out` with the
/// auditor's keys: WAVs, decrypted pcap and a manifest, as the live recorder writes them.
pub fn open_recording(
    dir: &Path,
    keys: &KeyStore,
    out: &Path,
    opts: &RecordOptions,
) -> Result<Vec<Manifest>, AuditError> {
    let msgs = open_keys(&std::fs::read(dir.join(KEYS_FILE))?, keys)?;
    replay(&dir.join(SRTP_FILE), msgs, out, opts)
}

/// Runs a recorder over a capture file with the given (already trusted) key messages, in
/// the order they were sent: each start first, each update once the capture reaches its
/// sending time (packets before a key change still decrypt with the old key). Then every
/// call is finished.
pub fn replay(
    capture: &Path,
    mut msgs: Vec<KeyMessage>,
    out: &Path,
    opts: &RecordOptions,
) -> Result<Vec<Manifest>, AuditError> {
    std::fs::create_dir_all(out)?;
    let mut opts = *opts;
    opts.keep_srtp = false;
    opts.plaintext = true;
    let mut rec = Recorder::new(out, opts, None);
    msgs.sort_by_key(|m| {
        (
            !matches!(m.event, sipsd::record::Event::Start(_)),
            m.sent_at_ms,
        )
    });
    let mut pending = msgs.into_iter().peekable();
    while let Some(m) = pending.next_if(|m| matches!(m.event, sipsd::record::Event::Start(_))) {
        rec.on_key_message(m)?;
    }
    let mut reader = PcapReader::open(capture)?;
    let lt = reader.linktype();
    while let Some(p) = reader.next_packet()? {
        let at_ms = crate::call::ms(p.at);
        while let Some(m) = pending.next_if(|m| m.sent_at_ms <= at_ms) {
            rec.on_key_message(m)?;
        }
        if let Some(ip) = pcap::ip_of(lt, &p.data) {
            rec.on_ip(p.at, ip)?;
        }
    }
    for m in pending {
        rec.on_key_message(m)?;
    }
    rec.finish_all("audit-open")?;
    Ok(rec.finished().to_vec())
}
