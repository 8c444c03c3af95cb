//! Two nodes (two caches, two clusters with one key file) exchanging replication messages:
//! the codec through the seal, and every rule a receiver applies.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use base64::Engine as _;
use zeroize::Zeroizing;

use super::*;
use crate::crypto::cms::{self, Cek, ContentAlg, Recipient};
use crate::engine::cache::{CacheConfig, OnMiss, SharedCache, Verdict};

const KEY_ID: &[u8] = b"sipsd-cluster";

fn key_file(dir: &Path, name: &str, byte: u8) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, crate::hex::encode(&[byte; 32])).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    p
}

struct Node {
    cache: SharedCache,
    cluster: Cluster,
}

fn node(dir: &Path, name: &str, key_byte: u8, ttl: u32) -> Node {
    let cfg = ClusterConfig {
        keys: vec![PskSpec {
            id: KEY_ID.to_vec(),
            key_path: key_file(dir, &format!("{name}.key"), key_byte),
            label: None,
        }],
        node: Some(name.to_string()),
        ..ClusterConfig::default()
    };
    Node {
        cache: SharedCache::create(CacheConfig {
            capacity: 64,
            ttl_secs: ttl,
        })
        .unwrap(),
        cluster: Cluster::new(&cfg, true, &[], &KeyStore::default())
            .unwrap()
            .expect("configured"),
    }
}

fn pair() -> (tempfile::TempDir, Node, Node) {
    let dir = tempfile::tempdir().unwrap();
    let a = node(dir.path(), "p1a", 0x11, 3600);
    let b = node(dir.path(), "p1b", 0x11, 3600);
    (dir, a, b)
}

fn dk(n: u32) -> DialogKey {
    DialogKey::new(format!("call-{n}@example.com").as_bytes(), b"caller-tag")
}

fn store(n: &Node, k: &DialogKey, cek: &[u8]) {
    n.cache
        .insert(k, key_tag(ContentAlg::Aes256Gcm, false), cek)
        .unwrap();
}

fn rotate(n: &Node, k: &DialogKey, cek: &[u8]) {
    n.cache
        .with_entry(&[*k], OnMiss::Ignore, |_| {
            (
                Verdict::Replace {
                    alg: key_tag(ContentAlg::Aes256Gcm, false),
                    cek: Zeroizing::new(cek.to_vec()),
                },
                (),
            )
        })
        .unwrap()
        .expect("entry");
}

fn update(n: &Node, changes: &[Change]) -> String {
    n.cluster
        .seal_update(&n.cache, changes)
        .unwrap()
        .expect("something to send")
}

fn recv(n: &Node, text: &str) -> Result<Received> {
    n.cluster
        .receive(&n.cache, None, text.as_bytes(), "sip:peer:5090")
}

#[test]
fn a_key_travels_sealed_and_is_stored_as_a_replica() {
    let (_d, a, b) = pair();
    let k = dk(1);
    store(&a, &k, &[0xAB; 32]);
    let text = update(&a, &[Change::Key(k)]);
    assert!(text.len() <= MAX_MESSAGE_LEN);
    let der = base64::engine::general_purpose::STANDARD
        .decode(&text)
        .unwrap();
    assert!(
        !der.windows(32).any(|w| w == [0xAB; 32]),
        "the key is not in the message in clear"
    );
    let r = recv(&b, &text).unwrap();
    assert_eq!(
        (r.kind, r.node.as_str(), r.stored),
        (Kind::Update, "p1a", 1)
    );
    let got = b.cache.peek(&k).unwrap().expect("replicated");
    assert_eq!(&got.cek[..], &[0xAB; 32]);
    assert_eq!(got.generation, 1);
    assert_eq!(key_of_tag(got.alg), Some((ContentAlg::Aes256Gcm, true)));
    let peers = b.cluster.peers().unwrap();
    assert_eq!((peers[0].node.as_str(), peers[0].keys), ("p1a", 1));
    println!("a {}-byte sealed update carries the key (not in clear); p1b stored it gen 1, tagged replica; peers {peers:?}", text.len());
}

#[test]
fn replayed_forged_and_foreign_messages_change_nothing() {
    let (d, a, b) = pair();
    let k = dk(1);
    store(&a, &k, &[0xAB; 32]);
    let text = update(&a, &[Change::Key(k)]);
    recv(&b, &text).unwrap();
    b.cache.remove(&k).unwrap();
    // the same message again: replayed
    let e = recv(&b, &text).unwrap_err();
    assert!(
        matches!(e, Error::Cluster(ClusterError::Replay { .. })),
        "{e}"
    );
    assert!(
        b.cache.peek(&k).unwrap().is_none(),
        "the replay stored nothing"
    );
    // one bit flipped in the ciphertext: the GCM tag fails
    let mut der = base64::engine::general_purpose::STANDARD
        .decode(&text)
        .unwrap();
    let at = der.len() - 40;
    der[at] ^= 1;
    let forged = base64::engine::general_purpose::STANDARD.encode(&der);
    let e = recv(&b, &forged).unwrap_err();
    assert!(matches!(e, Error::Cluster(ClusterError::BadSeal(_))), "{e}");
    // another cluster's key, garbage, and an empty body
    let c = node(d.path(), "p1c", 0x22, 3600);
    store(&c, &dk(2), &[0xCD; 32]);
    let other = update(&c, &[Change::Key(dk(2))]);
    let e = recv(&b, &other).unwrap_err();
    assert!(matches!(e, Error::Cluster(ClusterError::BadSeal(_))), "{e}");
    for junk in ["", "bm90IGNtcw==", "!!!"] {
        assert!(matches!(
            recv(&b, junk),
            Err(Error::Cluster(ClusterError::BadSeal(_)))
        ));
    }
    // CBC EnvelopedData under the right cluster key: refused unopened (no unauthenticated
    // decryption, whatever it would contain)
    let msg = Message {
        node: "p1a",
        counter: u64::MAX / 2,
        sent_at_ms: now_ms(),
        kind: Kind::Update,
        records: vec![],
        media: vec![],
    }
    .encode()
    .unwrap();
    let cbc = cms::seal(
        &msg,
        &[Recipient::Psk {
            id: KEY_ID.to_vec(),
            kek: Zeroizing::new(vec![0x11; 32]),
        }],
        &Cek::generate(ContentAlg::Aes256Cbc).unwrap(),
    )
    .unwrap();
    let cbc = base64::engine::general_purpose::STANDARD.encode(cbc);
    let e = recv(&b, &cbc).unwrap_err();
    assert!(
        matches!(
            e,
            Error::Cluster(ClusterError::BadSeal("not AuthEnvelopedData"))
        ),
        "{e}"
    );
    // our own message reflected back
    store(&b, &dk(3), &[1; 32]);
    let own = update(&b, &[Change::Key(dk(3))]);
    let e = recv(&b, &own).unwrap_err();
    assert!(
        matches!(e, Error::Cluster(ClusterError::OwnMessage(_))),
        "{e}"
    );
    assert!(b.cache.peek(&dk(2)).unwrap().is_none());
    println!("refused: the replay, a flipped ciphertext bit, another cluster's key, junk, CBC under the cluster key, our own message; nothing stored");
}

#[test]
fn reordered_messages_are_taken_once_and_old_ones_refused() {
    let (_d, a, b) = pair();
    let texts: Vec<String> = (0..70)
        .map(|n| {
            store(&a, &dk(n), &[n as u8; 32]);
            update(&a, &[Change::Key(dk(n))])
        })
        .collect();
    // the 70th first, then the 10th to 69th in reverse (inside the 64-message window)
    recv(&b, &texts[69]).unwrap();
    for t in texts[10..69].iter().rev() {
        recv(&b, t).unwrap();
    }
    // 5th: 65 behind the highest, outside the window
    let e = recv(&b, &texts[4]).unwrap_err();
    assert!(
        matches!(e, Error::Cluster(ClusterError::Replay { .. })),
        "{e}"
    );
    assert!(recv(&b, &texts[30]).is_err(), "each once");
    assert_eq!(b.cache.stats().unwrap().entries, 60);
    println!("70 messages delivered newest first: 60 inside the {WINDOW}-message window taken once each, one 65 behind refused, a repeat refused");
}

#[test]
fn only_a_newer_generation_replaces() {
    let (_d, a, b) = pair();
    let k = dk(1);
    store(&a, &k, &[1; 32]);
    let gen1 = update(&a, &[Change::Key(k)]);
    rotate(&a, &k, &[2; 32]);
    let gen2 = update(&a, &[Change::Key(k)]);
    // delivered out of order: gen 2, then the older gen 1
    assert_eq!(recv(&b, &gen2).unwrap().stored, 1);
    let r = recv(&b, &gen1).unwrap();
    assert_eq!((r.stored, r.stale), (0, 1));
    let got = b.cache.peek(&k).unwrap().unwrap();
    assert_eq!((&got.cek[..], got.generation), (&[2u8; 32][..], 2));
    // the same generation with another key (a stranger's INVITE to the other node): kept
    let c_dir = tempfile::tempdir().unwrap();
    let c = node(c_dir.path(), "p1c", 0x11, 3600);
    store(&c, &k, &[9; 32]);
    rotate(&c, &k, &[8; 32]);
    let r = recv(&b, &update(&c, &[Change::Key(k)])).unwrap();
    assert_eq!((r.stored, r.stale), (0, 1));
    assert_eq!(&b.cache.peek(&k).unwrap().unwrap().cek[..], &[2u8; 32]);
    // the same key again refreshes its use time (b's copy is the newest state)
    let r = recv(&b, &update(&a, &[Change::Key(k)])).unwrap();
    assert_eq!(r.refreshed, 1);
    // a newer generation over a key b stored itself
    store(&b, &dk(5), &[5; 32]);
    store(&a, &dk(5), &[5; 32]);
    rotate(&a, &dk(5), &[6; 32]);
    assert_eq!(
        recv(&b, &update(&a, &[Change::Key(dk(5))])).unwrap().stored,
        1
    );
    let got = b.cache.peek(&dk(5)).unwrap().unwrap();
    assert_eq!((&got.cek[..], got.generation), (&[6u8; 32][..], 2));
    assert!(
        b.cache.stats().unwrap().protected >= 1,
        "a rotated key is protected here too"
    );
    println!("gen 2 then gen 1: gen 1 stale; gen 2 with another key: stale; same key: refreshed; newer over a local key: stored (protected)");
}

#[test]
fn dialog_ends_travel_and_a_full_sync_carries_every_live_key() {
    let (_d, a, b) = pair();
    for n in 0..10 {
        store(&a, &dk(n), &[n as u8 + 1; 32]);
    }
    let ended = [dk(0), dk(1)];
    for k in &ended {
        store(&b, k, &[0xEE; 32]);
        a.cache.remove(k).unwrap();
    }
    let r = recv(
        &b,
        &update(&a, &[Change::End(ended[0]), Change::End(ended[1])]),
    )
    .unwrap();
    assert_eq!(r.ended, 2);
    assert!(b.cache.peek(&ended[0]).unwrap().is_none());
    // b restarts empty and asks; a answers part by part
    let (_d2, b2) = {
        let d = tempfile::tempdir().unwrap();
        let n = node(d.path(), "p1b", 0x11, 3600);
        (d, n)
    };
    let req = b2.cluster.seal_sync_request().unwrap();
    assert_eq!(recv(&a, &req).unwrap().kind, Kind::SyncRequest);
    let (mut cursor, mut parts, mut stored) = (0, 0, 0);
    let total = loop {
        let (text, next) = a.cluster.seal_sync(&a.cache, None, cursor).unwrap();
        let r = recv(&b2, &text).unwrap();
        parts += 1;
        stored += r.stored;
        match next {
            Some(n) => {
                assert_eq!((r.kind, r.sync_stored), (Kind::SyncData, 0));
                cursor = n;
            }
            None => {
                assert_eq!(r.kind, Kind::SyncDone);
                break r.sync_stored;
            }
        }
    };
    assert_eq!(
        (stored, total),
        (8, 8),
        "the last part reports the whole sync"
    );
    for n in 2..10 {
        assert_eq!(
            &b2.cache.peek(&dk(n)).unwrap().unwrap().cek[..],
            &[n as u8 + 1; 32]
        );
    }
    assert!(
        b2.cache.peek(&dk(0)).unwrap().is_none(),
        "ended dialogs are not synced"
    );
    let p = &b2.cluster.peers().unwrap()[0];
    assert!(p.last_sync_ms > 0);
    assert!(a.cluster.info().sync_served_ms > 0 && b2.cluster.info().sync_requested_ms > 0);
    println!("2 dialog ends removed the keys on p1b; a full sync in {parts} parts ({BATCH} keys each) brought the 8 live keys, not the ended ones");
}

#[test]
fn clocks_and_ttl_bound_what_is_accepted() {
    let (d, a, b) = pair();
    store(&a, &dk(1), &[1; 32]);
    let text = update(&a, &[Change::Key(dk(1))]);
    let now = now_ms();
    for (off, what) in [(60_000i64, "a minute later"), (-60_000, "a minute earlier")] {
        let at = u64::try_from(i64::try_from(now).unwrap() + off).unwrap();
        let e = b
            .cluster
            .receive_at(&b.cache, None, text.as_bytes(), "", at)
            .unwrap_err();
        assert!(
            matches!(e, Error::Cluster(ClusterError::OutOfWindow(_))),
            "{what}: {e}"
        );
    }
    // a key past b's TTL is not stored (b's TTL 5 s; a's key last used 100 s ago)
    let short = node(d.path(), "p1s", 0x11, 5);
    a.cache
        .apply(&dk(2), |_| {
            (
                crate::engine::cache::Apply::Store(CachedKey {
                    alg: key_tag(ContentAlg::Aes256Gcm, false),
                    cek: Zeroizing::new(vec![2; 32]),
                    generation: 1,
                    created_at: crate::engine::cache::now_secs() - 100,
                    last_used: crate::engine::cache::now_secs() - 100,
                    uses: 0,
                }),
                (),
            )
        })
        .unwrap();
    let r = recv(&short, &update(&a, &[Change::Key(dk(2))])).unwrap();
    assert_eq!((r.stored, r.expired), (0, 1));
    // and only a message sent in the window: the one above, at its time, is fine
    assert_eq!(recv(&b, &text).unwrap().stored, 1);
    println!("refused a minute ahead and behind (cluster_max_skew 10 s); a key past the receiver's TTL not stored");
}

#[test]
fn a_cluster_key_must_not_be_a_sip_psk() {
    let dir = tempfile::tempdir().unwrap();
    let shared = key_file(dir.path(), "shared.hex", 0x33);
    let sip = vec![PskSpec {
        id: b"psk-proxy1".to_vec(),
        key_path: shared.clone(),
        label: None,
    }];
    let store = KeyStore::load(&crate::crypto::keys::KeySpec {
        psk: sip.clone(),
        ..Default::default()
    })
    .unwrap();
    let cfg = ClusterConfig {
        keys: vec![PskSpec {
            id: KEY_ID.to_vec(),
            key_path: shared,
            label: None,
        }],
        node: Some("p1a".into()),
        ..ClusterConfig::default()
    };
    let e = Cluster::new(&cfg, true, &sip, &store)
        .err()
        .expect("refused");
    assert!(
        e.to_string().contains("known to the cluster nodes only"),
        "{e}"
    );
    assert!(check_key_id(crate::crypto::cms::ROTATION_KEK_ID).is_err());
    println!("refused: {e}");
}

/// A media store that keeps what it is given (the pinhole table's rules are tested in
/// `engine::pinhole::replica`).
#[derive(Default)]
struct Store {
    applied: parking_lot::Mutex<Vec<(MediaState, String)>>,
    held: Vec<MediaState>,
}

impl MediaStore for Store {
    fn apply_media(&self, state: &MediaState, from: &str) -> Result<MediaApplied> {
        self.applied.lock().push((state.clone(), from.to_string()));
        Ok(MediaApplied::Stored)
    }

    fn export_media(&self, cursor: usize, max: usize) -> Result<(Vec<MediaState>, Option<usize>)> {
        let end = (cursor + max).min(self.held.len());
        let out = self.held.get(cursor..end).unwrap_or_default().to_vec();
        Ok((out, (end < self.held.len()).then_some(end)))
    }
}

fn media(call: &str, version: u64) -> MediaState {
    MediaState {
        call_id: call.as_bytes().to_vec(),
        tag: b"caller-tag".to_vec(),
        version,
        owner: "p1a".into(),
        stage: MediaStage::Answered,
        opened_at: 1,
        expires_at: 2,
        flows: vec![MediaFlow {
            internal: "10.77.1.2".parse().unwrap(),
            port: 40000,
            remote: Some("10.77.2.2".parse().unwrap()),
            remote_port: 50000,
        }],
        recording: None,
    }
}

#[test]
fn media_states_travel_sealed_once_and_follow_the_keys_in_a_sync() {
    let (_d, a, b) = pair();
    let store = Store::default();
    let s = media("media-1@example.com", 10);
    let text = a.cluster.seal_media(&s).unwrap();
    assert!(text.len() <= MAX_MESSAGE_LEN);
    let plain = base64::engine::general_purpose::STANDARD
        .decode(&text)
        .unwrap();
    assert!(
        !plain.windows(4).any(|w| w == [10, 77, 1, 2]),
        "no media address in clear"
    );
    let r = b
        .cluster
        .receive(&b.cache, Some(&store), text.as_bytes(), "sip:p1a")
        .unwrap();
    assert_eq!((r.media_stored, r.stored), (1, 0));
    assert_eq!(store.applied.lock()[0].0, s);
    assert_eq!(store.applied.lock()[0].1, "p1a", "the sender's node name");
    // the same message again: refused before the store sees it
    let again = b
        .cluster
        .receive(&b.cache, Some(&store), text.as_bytes(), "sip:p1a");
    assert!(matches!(
        again,
        Err(Error::Cluster(ClusterError::Replay { .. }))
    ));
    // one flipped byte: not sealed for the cluster
    let mut raw = plain.clone();
    let n = raw.len() - 3;
    raw[n] ^= 1;
    let forged = base64::engine::general_purpose::STANDARD.encode(&raw);
    assert!(b
        .cluster
        .receive(&b.cache, Some(&store), forged.as_bytes(), "sip:p1a")
        .is_err());
    assert_eq!(store.applied.lock().len(), 1);
    // without a pinhole table: counted as not applied
    let r = b
        .cluster
        .receive(
            &b.cache,
            None,
            a.cluster.seal_media(&s).unwrap().as_bytes(),
            "sip:p1a",
        )
        .unwrap();
    assert_eq!((r.media_stored, r.media_stale), (0, 1));
    println!("  ok   a media state: sealed (no address in clear), applied once with the sender's name; the replay and a flipped byte never reach the table; without a pinhole table it counts as not applied");

    // a full sync: keys first, then one media state per part
    store_key(&a, 1);
    let held = Store {
        held: vec![media("m-a@x", 1), media("m-b@x", 2), media("m-c@x", 3)],
        ..Store::default()
    };
    let (_d2, b2) = {
        let d = tempfile::tempdir().unwrap();
        let n = node(d.path(), "p1b", 0x11, 3600);
        (d, n)
    };
    let got = Store::default();
    let (mut cursor, mut parts, mut keys) = (0, 0, 0);
    loop {
        let (text, next) = a.cluster.seal_sync(&a.cache, Some(&held), cursor).unwrap();
        let r = b2
            .cluster
            .receive(&b2.cache, Some(&got), text.as_bytes(), "sip:p1a")
            .unwrap();
        parts += 1;
        keys += r.stored;
        match next {
            Some(n) => cursor = n,
            None => {
                assert_eq!(r.kind, Kind::SyncDone);
                break;
            }
        }
    }
    let names: Vec<Vec<u8>> = got
        .applied
        .lock()
        .iter()
        .map(|(m, _)| m.call_id.clone())
        .collect();
    assert_eq!(keys, 1);
    assert_eq!(names, [&b"m-a@x"[..], b"m-b@x", b"m-c@x"]);
    println!(
        "  ok   full sync in {parts} parts: the key, then the 3 pinhole states, sync-done last"
    );
}

fn store_key(n: &Node, i: u32) {
    store(n, &dk(i), &[i as u8; 32]);
}
