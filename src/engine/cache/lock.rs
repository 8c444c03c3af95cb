//! A robust, process-shared `pthread_mutex_t` living inside the shared mapping.
//!
//! The mutex is created with `PTHREAD_PROCESS_SHARED` (usable by every process that maps the
//! memory, i.e. the SIP server's workers forked after module init), `PTHREAD_MUTEX_ROBUST` (if the
//! owner dies while holding it, the next locker gets `EOWNERDEAD` instead of blocking forever)
//! and `PTHREAD_MUTEX_ERRORCHECK` (relocking by the owner fails with `EDEADLK` instead of
//! hanging).
#![allow(unsafe_code)]

use std::cell::UnsafeCell;
use std::mem::MaybeUninit;

use super::CacheError;

/// The mutex as stored in the shared region. Only ever reached through a pointer into the
/// mapping; never moved after [`ShmMutex::init`].
#[repr(transparent)]
pub(crate) struct ShmMutex(UnsafeCell<libc::pthread_mutex_t>);

/// How the lock was obtained.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Acquired {
    /// The previous owner unlocked normally.
    Clean,
    /// The previous owner died holding the lock; the mutex has been marked consistent again and
    /// the caller must check (and repair) the data it protects.
    OwnerDied,
}

fn check(rc: libc::c_int) -> Result<(), CacheError> {
    if rc == 0 {
        Ok(())
    } else {
        Err(CacheError::Lock(rc))
    }
}

impl ShmMutex {
    /// Initialise the mutex in place as robust + process-shared + error-checking.
    ///
    /// # Safety
    /// `this` must point to writable memory, suitably aligned for a `pthread_mutex_t`, inside a
    /// `MAP_SHARED` mapping, and no process may be using that memory as a mutex yet.
    pub(crate) unsafe fn init(this: *mut ShmMutex) -> Result<(), CacheError> {
        let mut attr = MaybeUninit::<libc::pthread_mutexattr_t>::uninit();
        // SAFETY: `attr` is writable storage for an attribute object; init fills it.
        check(unsafe { libc::pthread_mutexattr_init(attr.as_mut_ptr()) })?;
        let attr_ptr = attr.as_mut_ptr();
        let result = (|| {
            // SAFETY: `attr_ptr` was initialised by pthread_mutexattr_init above.
            check(unsafe {
                libc::pthread_mutexattr_setpshared(attr_ptr, libc::PTHREAD_PROCESS_SHARED)
            })?;
            // SAFETY: as above.
            check(unsafe {
                libc::pthread_mutexattr_setrobust(attr_ptr, libc::PTHREAD_MUTEX_ROBUST)
            })?;
            // SAFETY: as above.
            check(unsafe {
                libc::pthread_mutexattr_settype(attr_ptr, libc::PTHREAD_MUTEX_ERRORCHECK)
            })?;
            // SAFETY: the caller guarantees `this` is valid, aligned, unused mutex storage;
            // `ShmMutex` is repr(transparent) over UnsafeCell<pthread_mutex_t>, itself
            // repr(transparent), so the cast is to the same layout.
            check(unsafe {
                libc::pthread_mutex_init(this.cast::<libc::pthread_mutex_t>(), attr_ptr)
            })
        })();
        // SAFETY: `attr_ptr` is an initialised attribute object; it is not used afterwards.
        unsafe { libc::pthread_mutexattr_destroy(attr_ptr) };
        result
    }

    /// Block until the lock is held by this thread.
    ///
    /// On `EOWNERDEAD` the mutex is made consistent again and [`Acquired::OwnerDied`] is
    /// returned: the lock IS held then, and the caller must repair what the dead owner left.
    pub(crate) fn lock(&self) -> Result<Acquired, CacheError> {
        // SAFETY: a `ShmMutex` only exists inside a mapping where `init` ran before any use
        // (`Region::create`), and the mapping outlives `&self`; the pointer comes from the
        // UnsafeCell, which is what allows other processes/threads to change it concurrently.
        let rc = unsafe { libc::pthread_mutex_lock(self.0.get()) };
        match rc {
            0 => Ok(Acquired::Clean),
            libc::EOWNERDEAD => {
                // SAFETY: we hold the mutex (EOWNERDEAD means it was acquired) and it is a
                // robust mutex in the inconsistent state, which is exactly what
                // pthread_mutex_consistent expects.
                let rc = unsafe { libc::pthread_mutex_consistent(self.0.get()) };
                if rc != 0 {
                    // SAFETY: we hold the mutex; unlocking an inconsistent robust mutex makes
                    // it permanently unusable (ENOTRECOVERABLE), which is the honest outcome.
                    unsafe { libc::pthread_mutex_unlock(self.0.get()) };
                    return Err(CacheError::Lock(rc));
                }
                Ok(Acquired::OwnerDied)
            }
            other => Err(CacheError::Lock(other)),
        }
    }

    /// Try to take the lock without blocking. `Ok(None)` means somebody else holds it.
    pub(crate) fn try_lock(&self) -> Result<Option<Acquired>, CacheError> {
        // SAFETY: as in `lock`.
        let rc = unsafe { libc::pthread_mutex_trylock(self.0.get()) };
        match rc {
            0 => Ok(Some(Acquired::Clean)),
            libc::EBUSY => Ok(None),
            libc::EOWNERDEAD => {
                // SAFETY: as in `lock`: we now hold the inconsistent robust mutex.
                let rc = unsafe { libc::pthread_mutex_consistent(self.0.get()) };
                if rc != 0 {
                    // SAFETY: we hold the mutex.
                    unsafe { libc::pthread_mutex_unlock(self.0.get()) };
                    return Err(CacheError::Lock(rc));
                }
                Ok(Some(Acquired::OwnerDied))
            }
            other => Err(CacheError::Lock(other)),
        }
    }

    /// Release the lock. Must only be called by the holder (the guard in `shm.rs` ensures it).
    pub(crate) fn unlock(&self) {
        // SAFETY: see `lock`; the mutex is error-checking, so a wrong unlock returns EPERM
        // instead of corrupting it. Nothing useful can be done with an error here.
        unsafe { libc::pthread_mutex_unlock(self.0.get()) };
    }
}
