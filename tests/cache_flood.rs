//! Cache flooding across real processes (docs/SECURITY.md, "Cache flooding"): forked
//! "workers" store thousands of fresh dialog keys (what a flood of INVITEs does) while another
//! worker carries calls in progress (a store, then in-dialog uses). The segmented LRU must keep
//! every call in progress.
//!
//! Run: `cargo test --test cache_flood -- --nocapture`

use std::panic::AssertUnwindSafe;
use std::time::Instant;

use sipsd::engine::cache::{CacheConfig, DialogKey, SharedCache, PROTECTED_PERCENT};

/// A key used by a body it authenticated, on the cache's check-then-change API.
mod ops {
    use sipsd::engine::cache::{CacheError, CachedKey, DialogKey, OnMiss, SharedCache, Verdict};

    /// An authenticated use of the dialog's key, then the entry as it is.
    pub fn use_key(c: &SharedCache, k: &DialogKey) -> Result<Option<CachedKey>, CacheError> {
        if c.with_entry(&[*k], OnMiss::Count, |_| (Verdict::Used, ()))?
            .is_none()
        {
            return Ok(None);
        }
        c.peek(k)
    }
}

/// Fork; the child runs `f` and leaves with `_exit(f())`, never returning into the harness.
fn fork_child(f: impl FnOnce() -> i32) -> libc::pid_t {
    // SAFETY: fork has no memory-safety preconditions. The child only runs `f` (cache calls)
    // and then `_exit`s without running the harness or atexit handlers.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed: {}", std::io::Error::last_os_error());
    if pid == 0 {
        let code = std::panic::catch_unwind(AssertUnwindSafe(f)).unwrap_or(101);
        // SAFETY: `_exit` terminates the child immediately; nothing after it runs.
        unsafe { libc::_exit(code) }
    }
    pid
}

fn wait_exit(pid: libc::pid_t) -> i32 {
    let mut status = 0;
    // SAFETY: `status` is a valid out pointer; `pid` is our own child.
    let rc = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(rc, pid, "waitpid: {}", std::io::Error::last_os_error());
    assert!(libc::WIFEXITED(status), "child killed: status {status}");
    libc::WEXITSTATUS(status)
}

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
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors pipe() writes.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    let (rd, wr) = (fds[0], fds[1]);
    let calls = fork_child(move || {
        for n in 0..LIVE {
            if c.insert(&live(n), 1, &[n as u8; 32]).is_err() {
                return 1;
            }
            if !matches!(ops::use_key(c, &live(n)), Ok(Some(_))) {
                return 3;
            }
        }
        let b = 1u8;
        // SAFETY: writes one byte from a valid buffer to the pipe's write end.
        unsafe { libc::write(wr, (&b as *const u8).cast(), 1) };
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
    let mut b = 0u8;
    // SAFETY: reads one byte into a valid buffer from the pipe's read end.
    let n = unsafe { libc::read(rd, (&mut b as *mut u8).cast(), 1) };
    assert_eq!(n, 1, "calls worker did not set up its calls");
    // SAFETY: closes descriptors we own, once.
    unsafe {
        libc::close(rd);
        libc::close(wr);
    }
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
