//! The panic boundary and the pointer helpers every exported function goes through.

use std::panic::{catch_unwind, AssertUnwindSafe};

use super::result::sd_result;

/// Borrowed bytes: `ptr` may be NULL only when `len` is 0. Never owns its memory.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct sd_str {
    /// First byte.
    pub ptr: *const u8,
    /// Number of bytes.
    pub len: usize,
}

impl sd_str {
    /// An empty view.
    pub const EMPTY: sd_str = sd_str {
        ptr: std::ptr::null(),
        len: 0,
    };

    /// A view of Rust bytes, valid as long as they are.
    pub fn of(bytes: &[u8]) -> sd_str {
        sd_str {
            ptr: bytes.as_ptr(),
            len: bytes.len(),
        }
    }

    /// The bytes this view points at; `None` for a NULL pointer with a length.
    ///
    /// # Safety
    /// `ptr` must point at `len` readable bytes that stay unchanged while the slice lives.
    pub unsafe fn as_slice<'a>(self) -> Option<&'a [u8]> {
        if self.len == 0 {
            return Some(&[]);
        }
        if self.ptr.is_null() {
            return None;
        }
        // SAFETY: non-null, and the caller promises `len` readable bytes.
        Some(unsafe { std::slice::from_raw_parts(self.ptr, self.len) })
    }
}

/// Points `*out` at `value` and returns `SD_OK`; without a value (an index or field out of
/// range, a field the item does not have) leaves it empty and returns
/// `SD_ERR_INVALID_ARGUMENT`. For the getters that hand C a view.
pub fn put_view(out: &mut sd_str, value: Option<&[u8]>) -> sd_result {
    match value {
        Some(v) => {
            *out = sd_str::of(v);
            sd_result::SD_OK
        }
        None => {
            *out = sd_str::EMPTY;
            sd_result::SD_ERR_INVALID_ARGUMENT
        }
    }
}

/// What an exported function returns when it panicked.
pub trait PanicDefault {
    /// The harmless value.
    fn on_panic() -> Self;
}

impl PanicDefault for sd_result {
    fn on_panic() -> Self {
        sd_result::SD_ERR_PANIC
    }
}

impl<T> PanicDefault for *mut T {
    fn on_panic() -> Self {
        std::ptr::null_mut()
    }
}

impl<T> PanicDefault for *const T {
    fn on_panic() -> Self {
        std::ptr::null()
    }
}

impl PanicDefault for usize {
    fn on_panic() -> Self {
        0
    }
}

impl PanicDefault for u32 {
    fn on_panic() -> Self {
        0
    }
}

impl PanicDefault for () {
    fn on_panic() -> Self {}
}

/// Runs `f`, turning a panic into `T::on_panic()`.
pub fn guard<T: PanicDefault>(f: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|_| T::on_panic())
}

/// The one panic boundary: wrap the whole body of an exported function in it.
macro_rules! ffi_boundary {
    ($($body:tt)*) => {
        $crate::ffi::boundary::guard(move || { $($body)* })
    };
}

/// `let x = try_ref!(ptr);` — a shared reference or return `SD_ERR_NULL_PARAMETER`.
macro_rules! try_ref {
    ($ptr:expr) => {
        // SAFETY: the pointer comes from the matching constructor (header contract) and is
        // checked for NULL here.
        match unsafe { $ptr.as_ref() } {
            Some(r) => r,
            None => return $crate::ffi::result::sd_result::SD_ERR_NULL_PARAMETER,
        }
    };
}

/// `let x = try_mut!(ptr);` — an exclusive reference or return `SD_ERR_NULL_PARAMETER`.
macro_rules! try_mut {
    ($ptr:expr) => {
        // SAFETY: as for `try_ref!`; C passes exclusive ownership for the call.
        match unsafe { $ptr.as_mut() } {
            Some(r) => r,
            None => return $crate::ffi::result::sd_result::SD_ERR_NULL_PARAMETER,
        }
    };
}

/// `let x = try_res!(result);` — the value, or return the `sd_result` the error is.
macro_rules! try_res {
    ($r:expr) => {
        match $r {
            Ok(v) => v,
            Err(r) => return r,
        }
    };
}

/// `let out = try_out!(ptr, EMPTY);` — an out-parameter, set to `EMPTY` before anything else
/// can fail (C reads it whatever the result), or return `SD_ERR_NULL_PARAMETER`.
macro_rules! try_out {
    ($ptr:expr, $empty:expr) => {{
        let out = $crate::ffi::boundary::try_mut!($ptr);
        *out = $empty;
        out
    }};
}

/// `let s = try_slice!(sd_str);` — the bytes or return `SD_ERR_NULL_PARAMETER`.
macro_rules! try_slice {
    ($s:expr) => {
        // SAFETY: the header requires `ptr` to point at `len` bytes for the call.
        match unsafe { $s.as_slice() } {
            Some(b) => b,
            None => return $crate::ffi::result::sd_result::SD_ERR_NULL_PARAMETER,
        }
    };
}

/// `let s = try_cstr!(ptr);` — a NUL-terminated UTF-8 string or an error code.
macro_rules! try_cstr {
    ($p:expr) => {{
        if $p.is_null() {
            return $crate::ffi::result::sd_result::SD_ERR_NULL_PARAMETER;
        }
        // SAFETY: non-null; the header requires a NUL-terminated string valid for the call.
        match unsafe { std::ffi::CStr::from_ptr($p) }.to_str() {
            Ok(s) => s,
            Err(_) => return $crate::ffi::result::sd_result::SD_ERR_INVALID_ARGUMENT,
        }
    }};
}

pub(crate) use {ffi_boundary, try_cstr, try_mut, try_out, try_ref, try_res, try_slice};

/// The body of every getter that hands C a view of `*item`: checks `out` and empties it,
/// checks `item`, then [`put_view`] of what `value` reads (SD_ERR_INVALID_ARGUMENT when it
/// reads nothing).
///
/// # Safety
/// `out` NULL or writable; `item` NULL or live for the call and as long as the view is used.
pub unsafe fn get_view<T>(
    item: *const T,
    out: *mut sd_str,
    value: impl FnOnce(&T) -> Option<&[u8]>,
) -> sd_result {
    let out = try_out!(out, sd_str::EMPTY);
    let item = try_ref!(item);
    put_view(out, value(item))
}

/// What `read` says of `*item`, or the default (0, false) for NULL: the body of the
/// counters and flags C may call with NULL.
///
/// # Safety
/// `item` NULL or live for the call.
pub unsafe fn read_or_default<T, R: Default>(item: *const T, read: impl FnOnce(&T) -> R) -> R {
    // SAFETY: NULL or live, per the contract.
    unsafe { item.as_ref() }.map_or_else(R::default, read)
}

/// Gives C a new `Box` of `value` in `*out` (freed with [`free_box`]).
pub fn put_box<T>(out: &mut *mut T, value: T) {
    *out = Box::into_raw(Box::new(value));
}

/// The body of every `*_free`: drops the `Box` C owned; NULL is accepted.
///
/// # Safety
/// `p` NULL or from [`put_box`] (`Box::into_raw`) of a `T`, not yet freed, not used
/// afterwards.
pub unsafe fn free_box<T>(p: *mut T) {
    if !p.is_null() {
        // SAFETY: per the contract, `p` came from Box::into_raw and is freed once.
        drop(unsafe { Box::from_raw(p) });
    }
}
