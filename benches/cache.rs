//! The shared dialog key cache under several processes at once, as Kamailio's workers use it.
//!
//! One `SharedCache` (fixed capacity, no TTL) is created, half filled, then N = 1, 2, 4 forked
//! children hammer it for a fixed time: `get` of cached dialogs (lookups) or `store` of new
//! dialogs (inserts; once the table is full every insert evicts the least recently used
//! entry). Each child counts its operations and sends the count to the parent over a socket;
//! the parent reports operations per second summed over the children. Dialog keys (SHA-256)
//! are computed before the clock starts.
//!
//! Anchor, same run: the same lookups and inserts on a `parking_lot::Mutex<HashMap>` in one
//! process (no sharing across processes, no LRU, no zeroizing): what a plain in-process map
//! costs on this machine.
//!
//! Output: a line per figure, and JSON to `$SIPSD_BENCH_OUT` if set (read by `scripts/bench`).
//! Options (after `--`): `--secs S` per measurement (default 2), `--capacity C` (default
//! 100000), `--procs 1,2,4`.
//!
//! `unsafe`: `fork` and `_exit`, each with its reason.
#![allow(unsafe_code)]

use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sipsd::engine::cache::{CacheConfig, DialogKey, OnMiss, SharedCache, Verdict};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Op {
    Get,
    Store,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Get => "lookup",
            Op::Store => "insert",
        }
    }
}

fn key(prefix: &str, i: usize) -> DialogKey {
    DialogKey::new(
        format!("{prefix}-{i}@bench.example").as_bytes(),
        b"bench-from-tag",
    )
}

const CEK: [u8; 32] = [0x42; 32];

/// Wall-clock deadline shared by parent and children (CLOCK_REALTIME is the same in all).
fn now_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

/// The child's loop: operations done between `start_ns` and `end_ns`.
fn work(cache: &SharedCache, op: Op, keys: &[DialogKey], start_ns: u128, end_ns: u128) -> u64 {
    while now_ns() < start_ns {
        std::hint::spin_loop();
    }
    let mut done = 0u64;
    let mut i = 0usize;
    loop {
        // check the clock every 256 operations
        for _ in 0..256 {
            let k = &keys[i];
            i = (i + 1) % keys.len();
            match op {
                Op::Get => {
                    // The in-dialog hot path: look up and count a use under one lock.
                    let got = cache
                        .with_entry(std::slice::from_ref(k), OnMiss::Count, |f| {
                            (Verdict::Used, f.entry.cek.len())
                        })
                        .expect("cache lookup");
                    assert!(got.is_some(), "prefilled dialog missing");
                }
                Op::Store => {
                    cache.insert(k, 1, &CEK).expect("cache insert");
                }
            }
            done += 1;
        }
        if now_ns() >= end_ns {
            return done;
        }
    }
}

/// Operations per second of `procs` processes doing `op` for `secs`.
fn run_shared(
    cache: &SharedCache,
    op: Op,
    procs: usize,
    prefilled: usize,
    secs: f64,
    round: usize,
) -> f64 {
    let per_child = 200_000usize;
    let mut streams = Vec::new();
    let mut pids = Vec::new();
    // keys computed before fork (in the parent) so the children start together
    let key_sets: Vec<Vec<DialogKey>> = (0..procs)
        .map(|c| match op {
            // lookups: every child walks all prefilled dialogs, from its own offset
            Op::Get => (0..prefilled)
                .map(|i| key("pre", (i + c * prefilled / procs.max(1)) % prefilled))
                .collect(),
            // inserts: new dialogs, distinct per child and per round
            Op::Store => (0..per_child)
                .map(|i| key(&format!("r{round}c{c}"), i))
                .collect(),
        })
        .collect();
    let start_ns = now_ns() + 200_000_000;
    let end_ns = start_ns + (secs * 1e9) as u128;
    for keys in &key_sets {
        let (parent_end, mut child_end) = UnixStream::pair().expect("socketpair");
        // SAFETY: this process is single-threaded here (criterion is not used in this bench and
        // no thread was started), so the child may run Rust code after fork. The child only uses
        // its copy of the memory and the inherited shared mapping, and leaves with _exit.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            drop(parent_end);
            let n = work(cache, op, keys, start_ns, end_ns);
            let _ = child_end.write_all(&n.to_le_bytes());
            drop(child_end);
            // SAFETY: ends the child without running the parent's destructors (the cache's
            // Drop would wipe the shared table in the creator only, but skip it entirely).
            unsafe { libc::_exit(0) };
        }
        drop(child_end);
        streams.push(parent_end);
        pids.push(pid);
    }
    let mut total = 0u64;
    for mut s in streams {
        let mut b = [0u8; 8];
        s.read_exact(&mut b).expect("child result");
        total += u64::from_le_bytes(b);
    }
    for pid in pids {
        let mut status = 0;
        // SAFETY: waits for our own child `pid`; `status` is a valid out pointer.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        assert!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            "child failed"
        );
    }
    total as f64 / secs
}

/// An anchor entry: alg, cek, uses.
type Entry = (u8, [u8; 32], u32);

/// Same operations on an in-process mutexed HashMap (the anchor).
fn run_local(op: Op, prefilled: usize, secs: f64) -> f64 {
    let map: parking_lot::Mutex<HashMap<[u8; 32], Entry>> =
        parking_lot::Mutex::new(HashMap::with_capacity(prefilled * 2));
    let pre: Vec<DialogKey> = (0..prefilled).map(|i| key("pre", i)).collect();
    for k in &pre {
        map.lock().insert(*k.as_bytes(), (1, CEK, 1));
    }
    let new: Vec<DialogKey> = (0..200_000).map(|i| key("local", i)).collect();
    let keys = if op == Op::Get { &pre } else { &new };
    let end = Instant::now() + Duration::from_secs_f64(secs);
    let (mut done, mut i) = (0u64, 0usize);
    while Instant::now() < end {
        for _ in 0..256 {
            let k = keys[i].as_bytes();
            i = (i + 1) % keys.len();
            let mut m = map.lock();
            match op {
                Op::Get => {
                    let e = m.get_mut(k).expect("prefilled");
                    e.2 += 1;
                    std::hint::black_box(e.1);
                }
                Op::Store => {
                    m.insert(*k, (1, CEK, 1));
                }
            }
            done += 1;
        }
    }
    done as f64 / secs
}

fn arg<T: std::str::FromStr>(args: &[String], name: &str, default: T) -> T {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let secs: f64 = arg(&args, "--secs", 2.0);
    let capacity: u32 = arg(&args, "--capacity", 100_000);
    let procs: Vec<usize> = arg(&args, "--procs", "1,2,4".to_string())
        .split(',')
        .filter_map(|p| p.trim().parse().ok())
        .collect();
    let cache = SharedCache::create(CacheConfig {
        capacity,
        ttl_secs: 0,
    })
    .expect("create shared cache");
    let prefilled = capacity as usize / 2;
    for i in 0..prefilled {
        cache.insert(&key("pre", i), 1, &CEK).expect("prefill");
    }
    let bytes = cache.shared_bytes();
    let per_entry = bytes as f64 / f64::from(capacity);
    println!(
        "shared cache: capacity {capacity}, {bytes} bytes shared, {per_entry:.1} bytes per entry; {secs} s per figure"
    );

    let mut json = format!(
        "{{\"capacity\":{capacity},\"shared_bytes\":{bytes},\"bytes_per_entry\":{per_entry:.2},\"secs\":{secs},\"runs\":["
    );
    let mut first = true;
    let mut round = 0usize;
    for op in [Op::Get, Op::Store] {
        for &n in &procs {
            round += 1;
            // inserts evict LRU entries, among them prefilled ones: refill before lookups
            if op == Op::Get {
                for i in 0..prefilled {
                    cache.insert(&key("pre", i), 1, &CEK).expect("refill");
                }
            }
            let rate = run_shared(&cache, op, n, prefilled, secs, round);
            println!(
                "shared cache {:6}: {n} process(es) {rate:>12.0} ops/s",
                op.name()
            );
            json.push_str(&format!(
                "{}{{\"op\":\"{}\",\"procs\":{n},\"ops_per_sec\":{rate:.0}}}",
                if first { "" } else { "," },
                op.name()
            ));
            first = false;
        }
    }
    json.push_str("],\"anchor\":[");
    for (i, op) in [Op::Get, Op::Store].into_iter().enumerate() {
        let rate = run_local(op, prefilled, secs);
        println!(
            "in-process Mutex<HashMap> {:6}: 1 thread {rate:>12.0} ops/s",
            op.name()
        );
        json.push_str(&format!(
            "{}{{\"op\":\"{}\",\"procs\":1,\"ops_per_sec\":{rate:.0}}}",
            if i == 0 { "" } else { "," },
            op.name()
        ));
    }
    json.push_str("]}\n");
    let stats = cache.stats().expect("stats");
    println!(
        "cache stats: entries {} hits {} inserts {} evictions {}",
        stats.entries, stats.hits, stats.inserts, stats.evictions
    );
    if let Some(path) = std::env::var_os("SIPSD_BENCH_OUT") {
        std::fs::write(&path, json).expect("write SIPSD_BENCH_OUT");
    }
}
