//! `sipsd`: the user-agent side on the command line — seal an offer for the callee and chosen
//! proxies, open a body as one of them, encrypt in-dialog bodies with the dialog key, inspect
//! a body without keys, and write SIPp injection files for tests and demos.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use zeroize::Zeroizing;

use sipsd::crypto::cms::{self, Cek, ContentAlg, IdKind, Recipient, RecipientKeyId, RsaPadding};
use sipsd::crypto::keys::{self, KeySpec, KeyStore, PskSpec, RsaKeySpec};
use sipsd::engine::ua::UaSession;
use sipsd::sip::body::build::base64_lines;
use sipsd::sip::body::BodyOptions;
use sipsd::sip::body::SipBody;
use sipsd::sip::body::{self, BodyLimits};
use sipsd::sip::disclose::DisclosureRequest;

#[derive(Parser)]
#[command(
    name = "sipsd",
    version,
    about = "SIP selective disclosure: S/MIME SIP bodies for the callee and chosen proxies"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Seal a body (an SDP offer) for recipient certificates and pre-shared keys.
    Seal(SealArgs),
    /// Open a body (DER, base64, or a whole SIP message) with a key or the dialog key.
    Open(OpenArgs),
    /// Encrypt an in-dialog body as EncryptedData under the dialog key.
    Encrypt(EncryptArgs),
    /// Show the structure of a body: kind, algorithms, recipients, sizes (never keys).
    Inspect(InspectArgs),
    /// Write SIPp injection files with per-call bodies (offer, answer, MESSAGE, rotation).
    SippCalls(SippArgs),
    /// Write the man pages and shell completions of this CLI (for packaging).
    #[command(hide = true)]
    GenerateDocs(GenerateDocsArgs),
}

#[derive(Args)]
struct Recipients {
    /// A recipient's certificate (PEM or DER); repeat for each.
    #[arg(long = "to", value_name = "CERT")]
    certs: Vec<PathBuf>,
    /// A pre-shared key recipient: HEXID:KEYFILE; repeat for each.
    #[arg(long = "psk", value_name = "HEXID:KEYFILE")]
    psks: Vec<String>,
    /// Name certificate recipients by subjectKeyIdentifier instead of issuer and serial.
    #[arg(long)]
    ski: bool,
    /// RSA padding: oaep (SHA-1), oaep-sha256, pkcs1.
    #[arg(long, default_value = "oaep")]
    padding: String,
}

#[derive(Args)]
struct BodyArgs {
    /// Content type of the plaintext.
    #[arg(long, default_value = "application/sdp")]
    content_type: String,
    /// Encrypt the bare plaintext instead of a MIME entity with its Content-Type.
    #[arg(long)]
    raw: bool,
    /// Base64 transfer encoding instead of binary.
    #[arg(long)]
    base64: bool,
    /// Put the encrypted body in a multipart/mixed part with this Content-ID.
    #[arg(long)]
    content_id: Option<String>,
}

impl BodyArgs {
    fn options(&self) -> BodyOptions {
        BodyOptions {
            inner_mime: !self.raw,
            base64: self.base64,
            content_id: self.content_id.clone(),
        }
    }
}

#[derive(Args)]
struct SealArgs {
    #[command(flatten)]
    recipients: Recipients,
    #[command(flatten)]
    body: BodyArgs,
    /// Content encryption: aes-256-gcm (AuthEnvelopedData), aes-128-gcm, aes-256-cbc, aes-128-cbc.
    #[arg(long, default_value = "aes-256-gcm")]
    alg: String,
    /// A Disclose-To header value to print with the headers (explicit request).
    #[arg(long)]
    disclose: Option<String>,
    /// Plaintext file.
    #[arg(long = "in")]
    input: PathBuf,
    /// Where to write the body.
    #[arg(long)]
    out: PathBuf,
    /// Where to keep the dialog key (mode 0600) for later in-dialog bodies.
    #[arg(long)]
    cek_out: Option<PathBuf>,
}

#[derive(Args)]
struct OpenArgs {
    /// A private key and its certificate: KEY:CERT; repeat for each.
    #[arg(long = "key", value_name = "KEY:CERT")]
    keys: Vec<String>,
    /// A pre-shared key: HEXID:KEYFILE.
    #[arg(long = "psk", value_name = "HEXID:KEYFILE")]
    psks: Vec<String>,
    /// The dialog key file, for EncryptedData.
    #[arg(long)]
    cek: Option<PathBuf>,
    /// Save the unwrapped dialog key here (mode 0600).
    #[arg(long)]
    cek_out: Option<PathBuf>,
    /// Which multipart part to open.
    #[arg(long)]
    content_id: Option<String>,
    /// Input: DER, base64, or a SIP message.
    #[arg(long = "in")]
    input: PathBuf,
    /// Where to write the plaintext, mode 0600 (default: standard output).
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Args)]
struct EncryptArgs {
    /// The dialog key file.
    #[arg(long)]
    cek: PathBuf,
    #[command(flatten)]
    body: BodyArgs,
    /// Plaintext file.
    #[arg(long = "in")]
    input: PathBuf,
    /// Where to write the body.
    #[arg(long)]
    out: PathBuf,
}

#[derive(Args)]
struct InspectArgs {
    /// Input: DER, base64, or a SIP message.
    #[arg(long = "in")]
    input: PathBuf,
}

#[derive(Args)]
struct SippArgs {
    /// Number of calls.
    #[arg(long)]
    calls: usize,
    /// The callee's certificate.
    #[arg(long)]
    callee_cert: PathBuf,
    /// Certificates of the proxies that may read; none: the callee only.
    #[arg(long = "proxy-cert")]
    proxy_certs: Vec<PathBuf>,
    /// Make every body malformed (truncated DER) to exercise error paths.
    #[arg(long)]
    corrupt: bool,
    /// Directory for uac.csv, uas.csv and expected.csv.
    #[arg(long)]
    out_dir: PathBuf,
}

#[derive(Args)]
struct GenerateDocsArgs {
    /// Directory for the man pages (sipsd.1 and one page per subcommand).
    #[arg(long)]
    man: PathBuf,
    /// Directory for the completions: sipsd.bash, _sipsd (zsh), sipsd.fish.
    #[arg(long)]
    completions: PathBuf,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Seal(a) => seal(a),
        Command::Open(a) => open(a),
        Command::Encrypt(a) => encrypt(a),
        Command::Inspect(a) => inspect(a),
        Command::SippCalls(a) => sipp_calls(a),
        Command::GenerateDocs(a) => generate_docs(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sipsd: {e}");
            ExitCode::FAILURE
        }
    }
}

type CliResult<T> = Result<T, String>;

fn read(path: &Path) -> CliResult<Vec<u8>> {
    std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))
}

fn write(path: &Path, bytes: &[u8]) -> CliResult<()> {
    std::fs::write(path, bytes).map_err(|e| format!("{}: {e}", path.display()))
}

/// Writes a secret file (a dialog key, decrypted content) readable by its owner only, and
/// never through a file someone else may already hold open: a new file is created next to
/// `path` (`create_new`, `O_NOFOLLOW`, mode 0600 at creation and then `fchmod` 0600 on the
/// descriptor, so no umask widens or narrows it), written and synced, then renamed over `path`.
/// An existing file at `path` (a 0644 one, or a symbolic link) is replaced, not written into.
fn write_secret(path: &Path, bytes: &[u8]) -> CliResult<()> {
    use std::io::Write as _;
    use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
    let err = |e: std::io::Error| format!("{}: {e}", path.display());
    let name = path
        .file_name()
        .ok_or_else(|| format!("{}: not a file name", path.display()))?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let (tmp, mut file) = loop {
        let mut tag = [0u8; 8];
        getrandom::fill(&mut tag).map_err(|e| format!("random file name: {e}"))?;
        let mut tmp_name = std::ffi::OsString::from(".");
        tmp_name.push(name);
        tmp_name.push(format!(".{}.tmp", hex_encode(&tag)));
        let tmp = dir.join(tmp_name);
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&tmp)
        {
            Ok(f) => break (tmp, f),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(format!("{}: {e}", tmp.display())),
        }
    };
    let written = file
        .set_permissions(std::fs::Permissions::from_mode(0o600))
        .and_then(|()| file.write_all(bytes))
        .and_then(|()| file.sync_all())
        .and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(err(e));
    }
    Ok(())
}

/// Reads a secret file with the key store's checks (no symlink, regular file, our owner; a
/// warning on stderr if group or others may read or write it).
fn read_secret(path: &Path) -> CliResult<Zeroizing<Vec<u8>>> {
    let (data, warning) = keys::read_secret_file(path, false).map_err(|e| e.to_string())?;
    if let Some(w) = warning {
        eprintln!("sipsd: warning: {w}");
    }
    Ok(data)
}

fn padding(name: &str) -> CliResult<RsaPadding> {
    match name {
        "oaep" => Ok(RsaPadding::OaepSha1),
        "oaep-sha256" => Ok(RsaPadding::OaepSha256),
        "pkcs1" => Ok(RsaPadding::Pkcs1v15),
        _ => Err(format!("padding '{name}': use oaep, oaep-sha256 or pkcs1")),
    }
}

fn split_pair<'a>(what: &str, s: &'a str) -> CliResult<(&'a str, &'a str)> {
    s.split_once(':')
        .ok_or_else(|| format!("{what} '{s}': expected A:B"))
}

fn hex_decode(s: &str) -> CliResult<Vec<u8>> {
    sipsd::hex::decode(s).ok_or_else(|| "not hex".to_string())
}

use sipsd::hex::encode as hex_encode;

fn recipients(r: &Recipients) -> CliResult<Vec<Recipient>> {
    let pad = padding(&r.padding)?;
    let id = if r.ski {
        IdKind::SubjectKeyId
    } else {
        IdKind::IssuerSerial
    };
    let mut out = Vec::new();
    for cert in &r.certs {
        out.push(Recipient::from_cert_file(cert, id, pad).map_err(|e| e.to_string())?);
    }
    for psk in &r.psks {
        let (id_hex, file) = split_pair("--psk", psk)?;
        let id = hex_decode(id_hex).map_err(|e| format!("--psk id: {e}"))?;
        let (kek, warning) =
            keys::read_psk_file(Path::new(file), false).map_err(|e| e.to_string())?;
        if let Some(w) = warning {
            eprintln!("sipsd: warning: {w}");
        }
        out.push(Recipient::Psk { id, kek });
    }
    if out.is_empty() {
        return Err("no recipient: give --to CERT or --psk ID:FILE".into());
    }
    Ok(out)
}

/// Writes a dialog key file, `ALG:HEX` and a newline, built in a zeroizing buffer.
fn save_cek(path: &Path, cek: &Cek) -> CliResult<()> {
    let name = cek.alg().name().as_bytes();
    let key = cek.as_bytes();
    let mut text = Zeroizing::new(Vec::with_capacity(name.len() + 2 + 2 * key.len()));
    text.extend_from_slice(name);
    text.push(b':');
    sipsd::hex::encode_into(key, &mut text);
    text.push(b'\n');
    write_secret(path, &text)
}

/// Reads a dialog key file: `ALG:HEX`, or bare HEX with the algorithm taken from `der`. The
/// text stays in zeroizing buffers.
fn load_cek(path: &Path, der: Option<&[u8]>) -> CliResult<Cek> {
    let text = read_secret(path)?;
    let text = text.trim_ascii();
    let (alg, hex) = match text.iter().position(|&b| b == b':') {
        Some(colon) => {
            let alg = std::str::from_utf8(&text[..colon]).unwrap_or("?");
            (
                ContentAlg::from_name(alg).ok_or_else(|| format!("unknown algorithm '{alg}'"))?,
                &text[colon + 1..],
            )
        }
        None => {
            let der = der.ok_or("key file without ALG: prefix")?;
            let alg = cms::inspect(der)
                .map_err(|e| e.to_string())?
                .content_alg
                .map_err(|oid| format!("unsupported content algorithm {oid}"))?;
            (alg, text)
        }
    };
    let key = sipsd::hex::decode_secret(hex).ok_or("key file: not hex")?;
    Cek::from_bytes(alg, &key).map_err(|e| e.to_string())
}

fn print_headers(b: &SipBody) {
    println!("Content-Type: {}", b.content_type);
    if let Some(te) = b.transfer_encoding {
        println!("Content-Transfer-Encoding: {te}");
    }
    if let Some(d) = &b.disclose_to {
        println!("{}: {d}", DisclosureRequest::HEADER);
    }
}

fn seal(a: SealArgs) -> CliResult<()> {
    let recips = recipients(&a.recipients)?;
    let alg = ContentAlg::from_name(&a.alg).ok_or_else(|| format!("unknown --alg '{}'", a.alg))?;
    let disclose = a
        .disclose
        .as_deref()
        .map(DisclosureRequest::parse)
        .transpose()
        .map_err(|e| format!("--disclose: {e}"))?;
    let plain = read(&a.input)?;
    let (session, body) = UaSession::offer(
        &a.body.content_type,
        &plain,
        &recips,
        alg,
        disclose.as_ref(),
        &a.body.options(),
    )
    .map_err(|e| e.to_string())?;
    write(&a.out, &body.body)?;
    if let Some(p) = &a.cek_out {
        save_cek(p, session.cek())?;
    }
    print_headers(&body);
    Ok(())
}

/// The DER of the encrypted body in `input`: a SIP message, base64 text, or DER.
fn extract_der(input: &[u8], content_id: Option<&str>) -> CliResult<Vec<u8>> {
    let first_line = input.split(|&b| b == b'\n').next().unwrap_or_default();
    if first_line.windows(7).any(|w| w == b"SIP/2.0") {
        let split = input
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map(|p| (p, p + 4))
            .or_else(|| {
                input
                    .windows(2)
                    .position(|w| w == b"\n\n")
                    .map(|p| (p, p + 2))
            })
            .ok_or("SIP message without a body")?;
        let head = String::from_utf8_lossy(&input[..split.0]);
        let body = &input[split.1..];
        let header = |names: &[&str]| {
            head.lines().find_map(|l| {
                let (n, v) = l.split_once(':')?;
                names
                    .iter()
                    .any(|x| n.trim().eq_ignore_ascii_case(x))
                    .then(|| v.trim().to_string())
            })
        };
        let ct = header(&["content-type", "c"]).ok_or("SIP message without Content-Type")?;
        let te = header(&["content-transfer-encoding"]);
        let parts = body::encrypted_parts(&ct, te.as_deref(), body, &BodyLimits::default())
            .map_err(|e| e.to_string())?;
        let part = match content_id {
            Some(cid) => parts.into_iter().find(|p| p.has_content_id(cid)),
            None => parts.into_iter().next(),
        };
        return part
            .map(|p| p.der)
            .ok_or_else(|| "no encrypted part".into());
    }
    if input.first() == Some(&0x30) {
        return Ok(input.to_vec());
    }
    let text: Vec<u8> = input
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|_| "input is neither DER, base64 nor a SIP message".to_string())
}

fn open(a: OpenArgs) -> CliResult<()> {
    let der = extract_der(&read(&a.input)?, a.content_id.as_deref())?;
    let insp = cms::inspect(&der).map_err(|e| e.to_string())?;
    let plain = if insp.kind == cms::CmsKind::EncryptedData {
        let path = a.cek.as_ref().ok_or("EncryptedData: give --cek FILE")?;
        let cek = load_cek(path, Some(&der))?;
        cms::open_with_cek(&der, &cek).map_err(|e| e.to_string())?
    } else {
        let mut spec = KeySpec::default();
        for k in &a.keys {
            let (key, cert) = split_pair("--key", k)?;
            spec.rsa.push(RsaKeySpec {
                key_path: key.into(),
                cert_path: cert.into(),
                label: None,
            });
        }
        for p in &a.psks {
            let (id, file) = split_pair("--psk", p)?;
            spec.psk.push(PskSpec {
                id: hex_decode(id).map_err(|e| format!("--psk id: {e}"))?,
                key_path: file.into(),
                label: None,
            });
        }
        let keys = KeyStore::load(&spec).map_err(|e| e.to_string())?;
        for w in keys.warnings() {
            eprintln!("sipsd: warning: {w}");
        }
        let opened = cms::open(&der, &keys).map_err(|e| e.to_string())?;
        if let Some(p) = &a.cek_out {
            save_cek(p, &opened.cek)?;
        }
        eprintln!("sipsd: opened with key '{}'", opened.key_label);
        opened.plaintext
    };
    match &a.out {
        // Decrypted content can carry secrets (an SDP's a=crypto keys).
        Some(p) => write_secret(p, &plain),
        None => {
            use std::io::Write as _;
            std::io::stdout()
                .write_all(&plain)
                .map_err(|e| e.to_string())
        }
    }
}

fn encrypt(a: EncryptArgs) -> CliResult<()> {
    let cek = load_cek(&a.cek, None)?;
    let plain = read(&a.input)?;
    let mut session = UaSession::with_key(cek, 1);
    let body = session
        .encrypt(&a.body.content_type, &plain, &a.body.options())
        .map_err(|e| e.to_string())?;
    write(&a.out, &body.body)?;
    print_headers(&body);
    Ok(())
}

fn describe_id(id: &RecipientKeyId) -> String {
    match id {
        RecipientKeyId::IssuerSerial { issuer, serial } => format!(
            "issuer-and-serial (issuer {} bytes, serial {})",
            issuer.len(),
            hex_encode(serial)
        ),
        RecipientKeyId::SubjectKeyId(ski) => format!("subject-key-id {}", hex_encode(ski)),
        RecipientKeyId::KekId(id) => format!("kek-id {}", hex_encode(id)),
        RecipientKeyId::Unsupported(kind) => format!("unsupported ({kind})"),
    }
}

fn inspect(a: InspectArgs) -> CliResult<()> {
    let der = extract_der(&read(&a.input)?, None)?;
    let insp = cms::inspect(&der).map_err(|e| e.to_string())?;
    println!("kind: {:?}", insp.kind);
    match &insp.content_alg {
        Ok(alg) => println!("content-encryption: {}", alg.name()),
        Err(oid) => println!("content-encryption: unsupported ({oid})"),
    }
    println!("der-bytes: {}", der.len());
    println!("ciphertext-bytes: {}", insp.ciphertext_len);
    println!("recipients: {}", insp.recipients.len());
    for (i, r) in insp.recipients.iter().enumerate() {
        println!("  [{i}] {} by {}", r.key_alg, describe_id(&r.id));
    }
    Ok(())
}

/// One SDP per call, distinct so a test can tell calls apart. It carries a fresh SDES key, so
/// it is built in a zeroizing buffer reserved up front (no reallocation leaves a copy).
fn call_sdp(call: usize, answer: bool) -> (String, u16, Zeroizing<String>) {
    use std::fmt::Write as _;
    let host = if answer { 20 } else { 10 };
    let addr = format!("192.0.2.{}", host + call % 200);
    let port = 40000 + 2 * (call % 10000) as u16 + if answer { 20000 } else { 0 };
    let key = test_sdes_key();
    let mut sdp = Zeroizing::new(String::with_capacity(256 + key.len()));
    let _ = write!(
        sdp,
        "v=0\r\no=sipsd {call} 1 IN IP4 {addr}\r\ns=-\r\nc=IN IP4 {addr}\r\nt=0 0\r\n\
         m=audio {port} RTP/SAVP 0\r\na=rtpmap:0 PCMU/8000\r\n\
         a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{}\r\n",
        key.as_str()
    );
    (addr, port, sdp)
}

/// A fresh SDES master key+salt (30 bytes, base64) for a test call, in zeroizing buffers.
fn test_sdes_key() -> Zeroizing<String> {
    use base64::Engine as _;
    let mut k = Zeroizing::new([0u8; 30]);
    getrandom::fill(&mut k[..]).expect("OS random numbers");
    let mut b64 = Zeroizing::new(String::with_capacity(40));
    base64::engine::general_purpose::STANDARD.encode_string(&k[..], &mut b64);
    b64
}

fn one_line(b: &SipBody) -> String {
    String::from_utf8(
        base64_lines(&b.body)
            .into_iter()
            .filter(|c| !c.is_ascii_whitespace())
            .collect(),
    )
    .expect("base64 is ASCII")
}

fn sipp_calls(a: SippArgs) -> CliResult<()> {
    let mut recips =
        vec![
            Recipient::from_cert_file(&a.callee_cert, IdKind::IssuerSerial, RsaPadding::OaepSha1)
                .map_err(|e| e.to_string())?,
        ];
    for p in &a.proxy_certs {
        recips.push(
            Recipient::from_cert_file(p, IdKind::IssuerSerial, RsaPadding::OaepSha1)
                .map_err(|e| e.to_string())?,
        );
    }
    std::fs::create_dir_all(&a.out_dir).map_err(|e| e.to_string())?;
    let opts = BodyOptions::default();
    let (mut uac, mut uas) = (String::from("SEQUENTIAL\n"), String::from("SEQUENTIAL\n"));
    let mut expected = String::from("call;offer_media;answer_media;rotated_media\n");
    let err = |e: sipsd::engine::Error| e.to_string();
    for call in 0..a.calls {
        let (oa, op, offer) = call_sdp(call, false);
        let (aa, ap, answer) = call_sdp(call, true);
        let (ra, rp, reoffer) = call_sdp(call + 100, false);
        let (mut s, invite) = UaSession::offer(
            "application/sdp",
            offer.as_bytes(),
            &recips,
            ContentAlg::Aes256Gcm,
            None,
            &opts,
        )
        .map_err(err)?;
        let ok = s
            .encrypt("application/sdp", answer.as_bytes(), &opts)
            .map_err(err)?;
        let text = format!("call {call}: hello over the dialog key\r\n");
        let msg = s
            .encrypt("text/plain", text.as_bytes(), &opts)
            .map_err(err)?;
        let reinvite = s
            .rotate("application/sdp", reoffer.as_bytes(), &recips, &opts)
            .map_err(err)?;
        let reok = s
            .encrypt("application/sdp", answer.as_bytes(), &opts)
            .map_err(err)?;
        let text2 = format!("call {call}: hello after rotation\r\n");
        let msg2 = s
            .encrypt("text/plain", text2.as_bytes(), &opts)
            .map_err(err)?;
        let mut fields = [&invite, &msg, &reinvite, &msg2].map(one_line);
        if a.corrupt {
            for f in fields.iter_mut() {
                f.truncate(f.len() / 2 / 4 * 4);
            }
        }
        uac.push_str(&fields.join(";"));
        uac.push('\n');
        uas.push_str(&format!("{};{}\n", one_line(&ok), one_line(&reok)));
        expected.push_str(&format!("{call};{oa}:{op};{aa}:{ap};{ra}:{rp}\n"));
    }
    write(&a.out_dir.join("uac.csv"), uac.as_bytes())?;
    write(&a.out_dir.join("uas.csv"), uas.as_bytes())?;
    write(&a.out_dir.join("expected.csv"), expected.as_bytes())?;
    println!(
        "wrote {} calls to {}/{{uac,uas,expected}}.csv",
        a.calls,
        a.out_dir.display()
    );
    Ok(())
}

/// Man pages (clap_mangen) and completions (clap_complete) from the clap definition above,
/// so they cannot drift from the options the binary accepts. clap_mangen gives the hidden
/// command no page; the completions still offer it.
fn generate_docs(a: GenerateDocsArgs) -> CliResult<()> {
    use clap::CommandFactory as _;
    use clap_complete::Shell;
    let io = |what: &Path, e: std::io::Error| format!("{}: {e}", what.display());
    for dir in [&a.man, &a.completions] {
        std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    }
    clap_mangen::generate_to(Cli::command(), &a.man).map_err(|e| io(&a.man, e))?;
    for (shell, file) in [
        (Shell::Bash, "sipsd.bash"),
        (Shell::Zsh, "_sipsd"),
        (Shell::Fish, "sipsd.fish"),
    ] {
        let path = a.completions.join(file);
        let mut out = std::fs::File::create(&path).map_err(|e| io(&path, e))?;
        clap_complete::generate(shell, &mut Cli::command(), "sipsd", &mut out);
    }
    Ok(())
}
