//! The dialog key cache across real processes: `libc::fork()` children share the parent's
//! mapping, as Kamailio's workers share what `mod_init` created.
//!
//! Run: `cargo test --test cache_fork -- --test-threads=1 --nocapture`
//! (the tests also serialise themselves with a mutex, so forking never overlaps another test).
//! Children only use the cache, raw pipes and `libc::_exit`; they never return into the test
//! harness and report through their exit status.

mod support;

use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use sipsd::engine::cache::{CacheConfig, DialogKey, SharedCache, Stored};

use support::cache_ops as ops;
use support::fork::{
    close, fork_child, kill, pipe, read_byte, still_running, wait_child, write_byte, End,
};
use support::rng::Rng;
use support::serial;

fn key(call: &str, tag: &str) -> DialogKey {
    DialogKey::new(call.as_bytes(), tag.as_bytes())
}

fn cache(capacity: u32, ttl_secs: u32) -> SharedCache {
    SharedCache::create(CacheConfig { capacity, ttl_secs }).expect("create cache")
}

#[test]
fn keys_cross_process_boundaries() {
    let _s = serial();
    let c = cache(64, 0);
    let k1 = key("a84b4c76e66710@pc33.example.com", "1928301774");
    let k2 = key("b95c5d87f77821@pc44.example.com", "7744");
    let cek1 = [0x11u8; 16];
    let cek2 = [0x22u8; 32];
    assert_eq!(
        c.insert(&k1, 1, &cek1).unwrap(),
        Stored::New { generation: 1 }
    );

    // Child A reads the parent's key and stores its own.
    let a = fork_child(|| {
        match ops::use_key(&c, &k1) {
            Ok(Some(e)) if e.cek[..] == cek1 && e.alg == 1 => {}
            _ => return 1,
        }
        match c.insert(&k2, 2, &cek2) {
            Ok(Stored::New { generation: 1 }) => 0,
            _ => 2,
        }
    });
    assert_eq!(
        wait_child(a),
        End::Exit(0),
        "child A read the parent's CEK and stored one"
    );

    // The parent sees child A's key (and the use A counted on k1).
    let e2 = ops::use_key(&c, &k2)
        .unwrap()
        .expect("parent reads the child's CEK");
    assert_eq!((&e2.cek[..], e2.alg), (&cek2[..], 2));
    assert_eq!(
        c.peek(&k1).unwrap().expect("k1").uses,
        1,
        "child A's use is shared"
    );

    // Another child reads both, and rotates k1 for everyone.
    let b = fork_child(|| {
        let ok1 = matches!(ops::use_key(&c, &k1), Ok(Some(e)) if e.cek[..] == cek1);
        let ok2 = matches!(ops::use_key(&c, &k2), Ok(Some(e)) if e.cek[..] == cek2);
        if !(ok1 && ok2) {
            return 1;
        }
        match ops::replace(&c, &k1, 1, &[0x33; 16]) {
            Ok(Some(2)) => 0,
            _ => 2,
        }
    });
    assert_eq!(
        wait_child(b),
        End::Exit(0),
        "child B read both CEKs and rotated k1"
    );
    let e1 = ops::use_key(&c, &k1).unwrap().expect("k1");
    assert_eq!(
        (&e1.cek[..], e1.generation, e1.uses),
        (&[0x33u8; 16][..], 2, 1)
    );
    let s = c.stats().unwrap();
    assert_eq!(
        (s.entries, s.inserts, s.rotations, s.hits, s.misses),
        (2, 2, 1, 5, 0)
    );
    println!("parent->child A, child A->parent, both->child B; child B's rotation seen by the parent (generation 2); {s:?}");
}

/// A CEK that names its writer, dialog and version and carries a hash of them, so any reader
/// can tell a consistent entry from a torn one.
fn cek_for(writer: u8, dialog: u16, version: u32) -> [u8; 32] {
    let mut out = [0u8; 32];
    out[0] = writer;
    out[1..3].copy_from_slice(&dialog.to_le_bytes());
    out[3..7].copy_from_slice(&version.to_le_bytes());
    let h = Sha256::digest(&out[..7]);
    out[7..].copy_from_slice(&h[..25]);
    out
}

fn cek_is_valid_for(cek: &[u8], writer: u8, dialog: u16) -> bool {
    if cek.len() != 32 || cek[0] != writer || cek[1..3] != dialog.to_le_bytes() {
        return false;
    }
    let version = u32::from_le_bytes([cek[3], cek[4], cek[5], cek[6]]);
    cek == cek_for(writer, dialog, version)
}

const WORKERS: u8 = 4;
const OPS: u32 = 2000;
const DIALOGS: u16 = 100;
const CAPACITY: u32 = 256;

fn dialog_key(writer: u8, dialog: u16) -> DialogKey {
    key(&format!("call-{writer}-{dialog}@stress"), "ft")
}

/// Deterministic per-worker operation stream: (op, worker, dialog).
fn ops(worker: u8) -> impl Iterator<Item = (u32, u8, u16)> {
    let mut rng = Rng::new(0x9E37_79B9_7F4A_7C15u64 ^ u64::from(worker));
    (0..OPS).map(move |_| {
        let r = (rng.next() >> 32) as u32;
        let other = (r >> 8) as u8 % WORKERS;
        (r % 4, other, ((r >> 16) % u32::from(DIALOGS)) as u16)
    })
}

/// Exit codes: 0 ok, 1 own entry wrong, 2 foreign entry torn, 3 cache error.
fn worker(c: &SharedCache, w: u8) -> i32 {
    let mut version = vec![0u32; usize::from(DIALOGS)];
    for (op, other, d) in ops(w) {
        match op {
            0 | 1 => {
                let v = version[usize::from(d)] + 1;
                if ops::put(c, &dialog_key(w, d), w + 1, &cek_for(w, d, v)).is_err() {
                    return 3;
                }
                version[usize::from(d)] = v;
            }
            2 => match ops::use_key(c, &dialog_key(w, d)) {
                Ok(Some(e)) => {
                    if e.alg != w + 1 || e.cek[..] != cek_for(w, d, version[usize::from(d)]) {
                        return 1;
                    }
                }
                Ok(None) => {}
                Err(_) => return 3,
            },
            _ => match ops::use_key(c, &dialog_key(other, d)) {
                Ok(Some(e)) => {
                    if e.alg != other + 1 || !cek_is_valid_for(&e.cek, other, d) {
                        return 2;
                    }
                }
                Ok(None) => {}
                Err(_) => return 3,
            },
        }
    }
    0
}

#[test]
fn concurrent_workers_keep_the_table_consistent() {
    let _s = serial();
    let c = cache(CAPACITY, 0);
    let started = Instant::now();
    let pids: Vec<_> = (0..WORKERS).map(|w| fork_child(|| worker(&c, w))).collect();
    for (w, pid) in pids.into_iter().enumerate() {
        assert_eq!(
            wait_child(pid),
            End::Exit(0),
            "worker {w} saw only consistent entries"
        );
    }
    let elapsed = started.elapsed();

    let s = c.stats().unwrap();
    let expected_gets: u64 = (0..WORKERS)
        .map(|w| ops(w).filter(|(op, _, _)| *op >= 2).count() as u64)
        .sum();
    let expected_stores: u64 = u64::from(WORKERS) * u64::from(OPS) - expected_gets;
    assert!(s.entries <= u64::from(CAPACITY));
    assert_eq!(s.hits + s.misses, expected_gets, "every get counted once");
    assert!(s.inserts + s.rotations <= expected_stores);
    assert_eq!(
        s.inserts,
        s.entries + s.evictions + s.expirations + s.removals,
        "every inserted entry is either present or was evicted"
    );
    assert!(
        s.evictions > 0,
        "{} dialogs > capacity {CAPACITY}",
        u32::from(WORKERS) * u32::from(DIALOGS)
    );

    let mut present = 0;
    for w in 0..WORKERS {
        for d in 0..DIALOGS {
            if let Some(e) = c.peek(&dialog_key(w, d)).unwrap() {
                assert!(e.alg == w + 1 && cek_is_valid_for(&e.cek, w, d));
                present += 1;
            }
        }
    }
    assert_eq!(
        present, s.entries,
        "the entry count matches what lookups find"
    );
    // Filling the table up again from the parent evicts exactly what is needed.
    for n in 0..CAPACITY {
        c.insert(&key(&format!("refill-{n}"), "x"), 9, &[1; 16])
            .unwrap();
    }
    assert_eq!(c.stats().unwrap().entries, u64::from(CAPACITY));
    println!(
        "{WORKERS} processes x {OPS} ops in {elapsed:?}: every cek read matched its writer, entries {} <= {CAPACITY}, hits+misses = {expected_gets} gets, inserts {} = entries + evictions {}; {s:?}",
        s.entries, s.inserts, s.evictions
    );
}

#[test]
fn worker_killed_holding_the_lock_does_not_block_others() {
    let _s = serial();
    let c = cache(64, 0);
    let k1 = key("held@example.com", "1");
    let k2 = key("blocked@example.com", "2");
    let k3 = key("after@example.com", "3");
    c.insert(&k1, 1, &[0x41; 16]).unwrap();

    let (rd, wr) = pipe();
    let holder = fork_child(|| {
        c.debug_lock_and_hold();
        write_byte(wr, b'L');
        loop {
            std::thread::sleep(Duration::from_secs(1));
        }
    });
    close(wr);
    assert_eq!(read_byte(rd), Some(b'L'), "holder has the lock");
    close(rd);

    // A second worker tries to use the cache: it blocks behind the holder.
    let waiter = fork_child(|| {
        if !matches!(c.insert(&k2, 1, &[0x42; 16]), Ok(Stored::New { .. })) {
            return 1;
        }
        match ops::use_key(&c, &k1) {
            Ok(Some(e)) if e.cek[..] == [0x41; 16] => 0,
            _ => 2,
        }
    });
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        still_running(waiter),
        "the waiter is blocked while the lock is held"
    );

    kill(holder);
    assert_eq!(wait_child(holder), End::Signal(libc::SIGKILL));
    assert_eq!(
        wait_child(waiter),
        End::Exit(0),
        "waiter proceeded after the holder died"
    );

    assert_eq!(
        &ops::use_key(&c, &k1).unwrap().expect("k1").cek[..],
        &[0x41; 16]
    );
    assert_eq!(
        &ops::use_key(&c, &k2).unwrap().expect("k2").cek[..],
        &[0x42; 16]
    );
    c.insert(&k3, 1, &[0x43; 16]).unwrap();
    let reader = fork_child(|| match ops::use_key(&c, &k3) {
        Ok(Some(e)) if e.cek[..] == [0x43; 16] => 0,
        _ => 1,
    });
    assert_eq!(wait_child(reader), End::Exit(0));
    let s = c.stats().unwrap();
    assert_eq!(s.lock_recoveries, 1);
    assert_eq!(s.entries, 3);
    println!("holder SIGKILLed with the lock: blocked worker got EOWNERDEAD, recovered, stored and read; parent and a new child still work; {s:?}");
}

#[test]
fn worker_killed_mid_change_leaves_a_repaired_table() {
    let _s = serial();
    let c = cache(32, 0);
    let keys: Vec<_> = (0..20).map(|n| key(&format!("dialog-{n}"), "t")).collect();
    for (n, k) in keys.iter().enumerate() {
        c.insert(k, 1, &[n as u8 + 1; 16]).unwrap();
    }
    let victim = keys[5];
    let (rd, wr) = pipe();
    let holder = fork_child(|| {
        c.debug_lock_dirty_and_hold(&victim);
        write_byte(wr, b'D');
        loop {
            std::thread::sleep(Duration::from_secs(1));
        }
    });
    close(wr);
    assert_eq!(read_byte(rd), Some(b'D'));
    close(rd);
    kill(holder);
    assert_eq!(wait_child(holder), End::Signal(libc::SIGKILL));

    // The parent is the next locker: it repairs.
    assert!(
        ops::use_key(&c, &victim).unwrap().is_none(),
        "half-written entry was wiped"
    );
    for (n, k) in keys.iter().enumerate().filter(|(n, _)| *n != 5) {
        assert_eq!(
            &ops::use_key(&c, k).unwrap().expect("intact").cek[..],
            &[n as u8 + 1; 16]
        );
    }
    let s = c.stats().unwrap();
    assert_eq!((s.lock_recoveries, s.entries), (1, 19));
    // And a child can use the repaired table.
    let child = fork_child(|| {
        let ok = matches!(
            c.insert(&victim, 1, &[0x77; 16]),
            Ok(Stored::New { generation: 1 })
        );
        if ok {
            0
        } else {
            1
        }
    });
    assert_eq!(wait_child(child), End::Exit(0));
    assert_eq!(c.stats().unwrap().entries, 20);
    println!("holder SIGKILLed mid-change: the touched entry was zeroized, 19 others intact, indexes rebuilt; {s:?}");
}

#[test]
fn real_clock_ttl_across_processes() {
    let _s = serial();
    let c = cache(8, 1);
    let k = key("ttl@example.com", "1");
    c.insert(&k, 1, &[0x55; 16]).unwrap();
    let child = fork_child(|| {
        if !matches!(c.peek(&k), Ok(Some(_))) {
            return 1;
        }
        std::thread::sleep(Duration::from_millis(2100));
        match ops::use_key(&c, &k) {
            Ok(None) => 0,
            _ => 2,
        }
    });
    assert_eq!(
        wait_child(child),
        End::Exit(0),
        "child saw it live, then expired after 2 s"
    );
    assert!(ops::use_key(&c, &k).unwrap().is_none());
    let s = c.stats().unwrap();
    assert_eq!((s.entries, s.expirations, s.misses), (0, 1, 2));
    println!("ttl 1 s (CLOCK_REALTIME): live in the child at once, expired 2.1 s later; {s:?}");
}
