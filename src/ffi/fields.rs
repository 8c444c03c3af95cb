//! The field selectors C passes to the `sd_plain_*_get` functions, each enum with one table of
//! script names from which everything else is derived.
//!
//! cbindgen reads the `#[repr(u32)]` enums as they are written (it cannot see inside a
//! macro), so each enum is written out once with its documentation; [`field_names!`] then
//! adds, from one `VARIANT => "name"` table: `ALL` (number order), `from_u32`, `name`, the
//! NUL-terminated name C reads (`sd_*_field_name`), and a compile-time check that the
//! numbers are 0, 1, 2 ... in table order. Its match is exhaustive: a variant without a row
//! does not compile. The Kamailio module builds its `$sd(...)` names from these tables, so a
//! new field needs no C change.

use std::ffi::c_char;

use super::boundary::ffi_boundary;

/// A `u32` written in decimal, inline: no allocation per message for a field few read.
pub(super) struct Decimal {
    digits: [u8; 10],
    start: usize,
}

impl Decimal {
    pub(super) fn of(mut n: u32) -> Decimal {
        let mut digits = [0u8; 10];
        let mut start = digits.len();
        loop {
            start -= 1;
            // n % 10 < 10: the cast keeps it
            digits[start] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                return Decimal { digits, start };
            }
        }
    }

    pub(super) fn as_bytes(&self) -> &[u8] {
        self.digits.get(self.start..).unwrap_or_default()
    }
}

/// A field enum with its table (implemented by [`field_names!`]).
pub trait FieldTable: Copy + 'static {
    /// Every field, in number order (number = index).
    const ALL: &'static [Self];
    /// The script name, NUL-terminated.
    fn c_name(self) -> &'static [u8];
}

/// `field_names!(ENUM { VARIANT => "name", ... })`: see the module comment.
macro_rules! field_names {
    ($ty:ident { $($variant:ident => $name:literal,)+ }) => {
        impl $crate::ffi::fields::FieldTable for $ty {
            const ALL: &'static [$ty] = &[$($ty::$variant,)+];

            fn c_name(self) -> &'static [u8] {
                match self {
                    $($ty::$variant => concat!($name, "\0").as_bytes(),)+
                }
            }
        }

        impl $ty {
            /// Every field, in number order.
            pub const ALL: &'static [$ty] = <$ty as $crate::ffi::fields::FieldTable>::ALL;

            /// The field with this number.
            pub fn from_u32(n: u32) -> Option<$ty> {
                usize::try_from(n).ok().and_then(|i| Self::ALL.get(i)).copied()
            }

            /// The script name, e.g. `media_addr`.
            pub fn name(self) -> &'static str {
                match self {
                    $($ty::$variant => $name,)+
                }
            }
        }

        const _: () = {
            let mut i = 0;
            while i < $ty::ALL.len() {
                assert!($ty::ALL[i] as usize == i, "field numbers must be 0, 1, 2 ... in table order");
                i += 1;
            }
        };
    };
}

pub(crate) use field_names;

/// The number of fields of `T`.
pub(super) fn count<T: FieldTable>() -> u32 {
    ffi_boundary! { u32::try_from(T::ALL.len()).unwrap_or(u32::MAX) }
}

/// The static NUL-terminated name of field `n` of `T`, or NULL past the end.
pub(super) fn name<T: FieldTable>(n: u32) -> *const c_char {
    ffi_boundary! {
        usize::try_from(n)
            .ok()
            .and_then(|i| T::ALL.get(i))
            .map_or(std::ptr::null(), |f| f.c_name().as_ptr().cast())
    }
}

#[cfg(test)]
mod tests {
    use super::Decimal;

    #[test]
    fn decimal_writes_every_u32() {
        for n in [0, 1, 9, 10, 99, 100, 4_294_967_295, 1_000_000_007] {
            assert_eq!(Decimal::of(n).as_bytes(), n.to_string().as_bytes(), "{n}");
        }
        println!("Decimal digits match to_string for 0 .. u32::MAX");
    }
}
