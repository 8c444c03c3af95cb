//! Message counters shared by every process forked from the one that made them.
//!
//! Kamailio answers `sipsd.stats` from its RPC process, while the workers count: so the
//! counters live in one anonymous shared mapping of atomics, made before the fork.
#![allow(unsafe_code)]

use std::sync::atomic::{AtomicU64, Ordering};

/// What a proxy counts besides the cache's own figures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
pub enum Counter {
    /// Bodies (or parts) decrypted.
    Decrypted,
    /// Encrypted messages meant for someone else.
    NotForMe,
    /// Messages without an encrypted body.
    NotEncrypted,
    /// Messages that failed (malformed, wrong key, limits...).
    Errors,
    /// Dialog entries removed at dialog end.
    DialogsEnded,
    /// Key reloads performed in this or another process.
    Reloads,
}

const COUNT: usize = 6;

/// A page of shared atomics; see the module doc.
pub struct SharedCounters {
    ptr: *mut AtomicU64,
    len: usize,
    owner_pid: u32,
}

// SAFETY: the mapping is only accessed through atomics, valid for the value's lifetime.
unsafe impl Send for SharedCounters {}
// SAFETY: as above; atomics make concurrent access from threads and processes sound.
unsafe impl Sync for SharedCounters {}

impl SharedCounters {
    /// Maps the counters (zeroed). Call before forking.
    pub fn create() -> std::io::Result<SharedCounters> {
        let len = COUNT * std::mem::size_of::<AtomicU64>();
        // SAFETY: anonymous shared mapping with no address hint; the result is checked below.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        Ok(SharedCounters {
            ptr: ptr.cast(),
            len,
            owner_pid: std::process::id(),
        })
    }

    fn slot(&self, c: Counter) -> &AtomicU64 {
        // SAFETY: `c as usize < COUNT`; the mapping is page-aligned, zero-filled (a valid
        // AtomicU64 is any bit pattern) and lives as long as `self`.
        unsafe { &*self.ptr.add(c as usize) }
    }

    /// Adds one.
    pub fn bump(&self, c: Counter) {
        self.slot(c).fetch_add(1, Ordering::Relaxed);
    }

    /// Reads one.
    pub fn get(&self, c: Counter) -> u64 {
        self.slot(c).load(Ordering::Relaxed)
    }
}

impl Drop for SharedCounters {
    fn drop(&mut self) {
        if std::process::id() == self.owner_pid {
            // SAFETY: the mapping was made by `create` with this length and is not used after.
            unsafe { libc::munmap(self.ptr.cast(), self.len) };
        }
    }
}
