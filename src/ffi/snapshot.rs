//! The tables C lists for an RPC (`sd_pinholes`, `sd_recordings`): a copy made at one moment,
//! one row of texts per item, read by item index and field number. Each table's C type wraps
//! one [`Rows`]; its `*_snapshot`, `*_count`, `*_get` and `*_free` are this file's helpers.

use std::marker::PhantomData;

use super::boundary::put_box;
use super::fields::FieldTable;
use super::result::{fail, sd_result};

/// The rows of a snapshot: `N` texts per item, one per field of `F` in number order.
pub(super) struct Rows<F, const N: usize> {
    rows: Vec<[String; N]>,
    field: PhantomData<F>,
}

impl<F: FieldTable, const N: usize> Rows<F, N> {
    /// A row holds one text per field: checked when the table is built.
    const ONE_TEXT_PER_FIELD: () = assert!(N == F::ALL.len(), "a row needs a text per field");

    fn of<I>(items: Vec<I>, row: fn(I) -> [String; N]) -> Rows<F, N> {
        let () = Self::ONE_TEXT_PER_FIELD;
        Rows {
            rows: items.into_iter().map(row).collect(),
            field: PhantomData,
        }
    }

    /// The number of items.
    pub(super) fn len(&self) -> usize {
        self.rows.len()
    }

    /// Field number `field` of item `index`; `None` when either is out of range.
    pub(super) fn get(&self, index: usize, field: u32) -> Option<&[u8]> {
        let field = usize::try_from(field).ok()?;
        self.rows.get(index)?.get(field).map(String::as_bytes)
    }
}

/// The body of a `*_snapshot`: the items `listed` gave, one row each by `row`, into a new
/// table in `*out` (`wrap` makes the C type of it); the error when listing failed.
pub(super) fn put_snapshot<T, F: FieldTable, I, const N: usize>(
    out: &mut *mut T,
    listed: crate::engine::Result<Vec<I>>,
    row: fn(I) -> [String; N],
    wrap: fn(Rows<F, N>) -> T,
) -> sd_result {
    match listed {
        Ok(items) => {
            put_box(out, wrap(Rows::of(items, row)));
            sd_result::SD_OK
        }
        Err(e) => fail(&e),
    }
}

#[cfg(test)]
mod tests {
    use super::super::boundary::{free_box, get_view, sd_str};
    use super::super::pinhole::sd_pinhole_field;
    use super::*;

    fn row(n: u32) -> [String; 8] {
        std::array::from_fn(|f| format!("{n}/{f}"))
    }

    #[test]
    fn rows_read_by_index_and_field_number() {
        let mut out: *mut Rows<sd_pinhole_field, 8> = std::ptr::null_mut();
        assert_eq!(
            put_snapshot(&mut out, Ok(vec![0, 1]), row, |r| r),
            sd_result::SD_OK
        );
        // SAFETY: `out` was just made by put_snapshot and is freed once, below.
        let rows = unsafe { &*out };
        assert_eq!(rows.len(), 2);
        assert_eq!(rows.get(1, 7), Some(&b"1/7"[..]));
        assert_eq!(rows.get(2, 0), None, "row past the end");
        assert_eq!(rows.get(0, 8), None, "field past the end");
        assert_eq!(rows.get(0, u32::MAX), None, "field number u32::MAX");
        let mut v = sd_str::of(b"stale");
        // SAFETY: `out` live, `v` writable.
        let r = unsafe { get_view(out, &mut v, |r| r.get(9, 0)) };
        assert!(r == sd_result::SD_ERR_INVALID_ARGUMENT && v.len == 0 && v.ptr.is_null());
        // SAFETY: from put_snapshot, freed once.
        unsafe { free_box(out) };
        println!(
            "Rows: 2 rows x 8 fields read; a row, a field or u32::MAX past the end read nothing"
        );
    }
}
