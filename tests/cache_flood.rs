//! Cache flooding across real processes (docs/SECURITY.md, "Cache flooding"): forked
//! "workers" store thousands of fresh dialog keys (what a flood of INVITEs does) while another
//! worker carries calls in progress (a store, then in-dialog uses). The segmented LRU must keep
//! every call in progress.
//!
//! Run: `cargo test --test cache_flood -- --nocapture`

mod support;

use std::time::Instant;

use sipsd::engine::cache::{CacheConfig, DialogKey, SharedCache, PROTECTED_PERCENT};

use support::cache_ops as ops;
use support::fork::{close, fork_child, pipe, read_byte, wait_exit, write_byte};

fn live(n: u32) -> DialogKey {
    DialogKey::new(format!("live-{n}@caller.example").as_bytes(), b"ftag")
}

fn fake(worker: u32, n: u32) -> DialogKey {
    DialogKey::new(
        format!("flood-{worker}-{n}@attacker.example").as_bytes(),
        b"x",
    )
}

#[test]
fn flood_from_other_workers_keeps_calls_in_progress() {
    let _s = support::serial();
    const CAPACITY: u32 = 200;
    const LIVE: u32 = 100;
    const FLOOD_PER_WORKER: u32 = 20_000;
    let cache = SharedCache::create(CacheConfig {
        capacity: CAPACITY,
        ttl_secs: 3600,
    })
    .expect("create cache");
    let started = Instant::now();

    // Worker 1: calls in progress. The INVITE stores the key; each in-dialog message (ACK,
    // re-INVITE, BYE...) reads it from the cache. It keeps using its calls during the flood.
    // The calls are set up before the flood starts: between its INVITE and its first
    // in-dialog use a call is probationary, and a flood that stores CAPACITY - protected new
    // dialogs inside that window evicts it (the documented limit of the policy,
    // docs/SECURITY.md).
    let c = &cache;
    let (rd, wr) = pipe();
    let calls = fork_child(move || {
        for n in 0..LIVE {
            if c.insert(&live(n), 1, &[n as u8; 32]).is_err() {
                return 1;
            }
            if !matches!(ops::use_key(c, &live(n)), Ok(Some(_))) {
                return 3;
            }
        }
        write_byte(wr, 1);
        for round in 0..50 {
            for n in 0..LIVE {
                match ops::use_key(c, &live(n)) {
                    Ok(Some(k)) if k.cek.as_slice() == [n as u8; 32] => {}
                    Ok(_) => return 10 + (round % 100),
                    Err(_) => return 2,
                }
            }
            std::thread::yield_now();
        }
        0
    });
    assert_eq!(
        read_byte(rd),
        Some(1),
        "calls worker did not set up its calls"
    );
    close(rd);
    close(wr);
    // Workers 2 and 3: a flood of fresh INVITEs never followed by in-dialog messages.
    let flooders: Vec<_> = (0..2)
        .map(|w| {
            fork_child(move || {
                for n in 0..FLOOD_PER_WORKER {
                    if c.insert(&fake(w, n), 1, &[0xEE; 32]).is_err() {
                        return 1;
                    }
                }
                0
            })
        })
        .collect();
    let calls_exit = wait_exit(calls);
    for f in flooders {
        assert_eq!(wait_exit(f), 0, "flooder failed");
    }
    assert_eq!(
        calls_exit, 0,
        "a call in progress lost its key during the flood (exit {calls_exit})"
    );
    for n in 0..LIVE {
        let k = cache.peek(&live(n)).unwrap().expect("call key kept");
        assert_eq!(k.cek.as_slice(), [n as u8; 32]);
    }
    let s = cache.stats().unwrap();
    assert_eq!(s.entries, u64::from(CAPACITY));
    assert!(s.protected <= u64::from(CAPACITY) * PROTECTED_PERCENT / 100);
    assert_eq!(s.protected, u64::from(LIVE));
    println!(
        "capacity {CAPACITY}: {LIVE} calls in progress (stored, then used from the cache) in one process, {} fresh dialogs from two others in {:?}: all {LIVE} kept, {} evictions (flood only); {s:?}",
        2 * FLOOD_PER_WORKER,
        started.elapsed(),
        s.evictions
    );
}
