//! The dialog key cache's operations as the fork tests use them, on its check-then-change
//! API: a key used by a body it authenticated, and a writer that stores or (as a proven
//! rotation would) replaces.

use sipsd::engine::cache::{
    CacheError, CachedKey, DialogKey, OnMiss, SharedCache, Stored, Verdict,
};
use zeroize::Zeroizing;

/// An authenticated use of the dialog's key, then the entry as it is.
pub fn use_key(c: &SharedCache, k: &DialogKey) -> Result<Option<CachedKey>, CacheError> {
    if c.with_entry(&[*k], OnMiss::Count, |_| (Verdict::Used, ()))?
        .is_none()
    {
        return Ok(None);
    }
    c.peek(k)
}

/// Insert, or replace a live entry's key as a proven rotation does; the generation.
pub fn put(c: &SharedCache, k: &DialogKey, alg: u8, cek: &[u8]) -> Result<u32, CacheError> {
    match c.insert(k, alg, cek)? {
        Stored::New { generation } | Stored::Same { generation } => Ok(generation),
        Stored::Refused { .. } => replace(c, k, alg, cek).map(|g| g.unwrap_or(0)),
    }
}

/// A proven rotation of a live entry; None when the dialog has none.
pub fn replace(
    c: &SharedCache,
    k: &DialogKey,
    alg: u8,
    cek: &[u8],
) -> Result<Option<u32>, CacheError> {
    c.with_entry(&[*k], OnMiss::Ignore, |f| {
        let cek = Zeroizing::new(cek.to_vec());
        (Verdict::Replace { alg, cek }, f.entry.generation + 1)
    })
}
