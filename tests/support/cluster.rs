//! Two trusted Kamailio proxies of one cluster on loopback (trusted-proxy.cfg with
//! `WITH_CLUSTER`: DMQ between them, a record-route name both accept) and what the cluster
//! tests ask of them: the cluster key file, `sipsd.cluster` and `sipsd.stats` figures, and a
//! KDMQ request carrying a replication message the test sealed itself (as a third node).

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::time::Duration;

use sipsd::crypto::cms::ContentAlg;
use sipsd::engine::cache::{CacheConfig, DialogKey, SharedCache};
use sipsd::engine::cluster::{key_tag, Change, Cluster};

use super::kamailio::{Kamailio, P1};
use super::ports::ADDR;
use super::sip::Peer;
use super::tools::Tools;

/// hex of "sipsd-cluster", the example cfg's default CLUSTER_KEY_ID
pub const KEY_ID: &str = "73697073642d636c7573746572";
/// The record-route name both nodes use and accept as their own.
pub const RR: &str = "p1.cluster.test:5060";

/// A 32-byte key file, mode 0600.
pub fn write_key(path: &Path, byte: u8) {
    fs::write(path, format!("{}\n", format!("{byte:02x}").repeat(32))).expect("write key");
    fs::set_permissions(path, fs::Permissions::from_mode(0o600)).expect("chmod key");
}

/// A node: trusted-proxy.cfg with WITH_CLUSTER and WITH_DIALOG, its DMQ socket on `dmq`, the
/// other's on `peer`, next hop `hop`, and `extra` defines.
pub fn start_node(
    t: &Tools,
    dir: &Path,
    name: &str,
    (dmq, peer): (u16, u16),
    hop: &str,
    extra: &[(&str, Option<&str>)],
) -> Kamailio {
    let port = dmq.to_string();
    let peer = format!("\"sip:{ADDR}:{peer}\"");
    let mut defines = vec![
        ("NEXT_HOP", Some(hop)),
        ("WITH_DIALOG", None),
        ("WITH_CLUSTER", None),
        ("CLUSTER_ADDR", Some(ADDR)),
        ("CLUSTER_PORT", Some(port.as_str())),
        ("CLUSTER_PEER", Some(peer.as_str())),
        ("CLUSTER_NODE", Some(name)),
        ("CLUSTER_RR", Some(RR)),
    ];
    defines.extend_from_slice(extra);
    P1::start(t, dir, &defines)
}

/// `sipsd.cluster` of a node: (its peers, syncs it completed from them).
pub fn cluster_view(k: &Kamailio) -> (u64, u64) {
    let f = k.rpc_fields(&["sipsd.cluster"]);
    (
        f.get("peers").copied().unwrap_or(0),
        f.get("last_sync").copied().map_or(0, |t| u64::from(t > 0)),
    )
}

/// A KDMQ request to the sipsd DMQ peer of the node at `to_port`, carrying `body`.
pub fn kdmq(to_port: u16, from_port: u16, n: u32, body: &str) -> Vec<u8> {
    format!(
        "KDMQ sip:sipsd@{ADDR}:{to_port} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {ADDR}:{from_port};branch=z9hG4bK-kdmq-{n}-{}\r\n\
         From: <sip:sipsd@{ADDR}:{from_port}>;tag=t{n}\r\n\
         To: <sip:sipsd@{ADDR}:{to_port}>\r\n\
         Call-ID: kdmq-{n}-{}@test\r\n\
         CSeq: {n} KDMQ\r\n\
         Max-Forwards: 1\r\n\
         Content-Type: {}\r\n\
         Content-Length: {}\r\n\r\n{body}",
        std::process::id(),
        std::process::id(),
        "application/pkcs7-mime; smime-type=authEnveloped-data; name=sipsd-cluster.p7m",
        body.len()
    )
    .into_bytes()
}

/// A replication update carrying one made-up dialog key (`call_id`, `tag`; 32 bytes of 0x42,
/// AES-256-GCM), sealed by `cluster` as a third node would send it.
pub fn sealed_key_update(cluster: &Cluster, call_id: &[u8], tag: &[u8]) -> String {
    let cache = SharedCache::create(CacheConfig {
        capacity: 8,
        ttl_secs: 600,
    })
    .expect("cache");
    let dialog = DialogKey::new(call_id, tag);
    cache
        .insert(&dialog, key_tag(ContentAlg::Aes256Gcm, false), &[0x42; 32])
        .expect("insert");
    cluster
        .seal_update(&cache, &[Change::Key(dialog)])
        .expect("seal")
        .expect("a message")
}

/// Whether `peer` received at least `n` replies with status `code` within 5 s.
pub fn answered(peer: &Peer, n: usize, code: u16) -> bool {
    peer.wait_until(Duration::from_secs(5), |l| {
        l.all
            .iter()
            .filter(|r| r.msg.status() == Some(code))
            .count()
            >= n
    })
}
