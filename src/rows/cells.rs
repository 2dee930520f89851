//! Many rows' cells at once, for bindings that read a result in blocks: one call into the
//! library per block of rows instead of one per row (`pgsess_results_row`) or per cell
//! (`pgsess_results_value`). A cgo or FFI call costs tens of nanoseconds; a block of a few
//! hundred rows makes that cost vanish beside the reading of the values themselves.

use super::ResultSet;

impl ResultSet {
    /// Call `f(index, value with its NUL)` for every cell of the rows `first..first + rows`
    /// (fewer when the result ends sooner), row after row, `index` counting cells from 0 in that
    /// order (row-major: `(row - first) * ncols + col`); `value` is `None` for NULL. Returns how
    /// many rows were visited: 0 when `first` is out of range. A result without columns visits
    /// its rows and calls `f` for none.
    #[inline]
    pub fn for_each_cell_in_rows(&self, first: usize, rows: usize, mut f: impl FnMut(usize, Option<&[u8]>)) -> usize {
        if first >= self.nrows {
            return 0;
        }
        let rows = rows.min(self.nrows - first);
        let ncols = self.columns.len();
        for r in 0..rows {
            // SAFETY: `first + r < nrows`.
            let (block, base) = unsafe { self.locate(first + r) };
            for col in 0..ncols {
                // SAFETY: the row is in range and `col` below the column count.
                f(r * ncols + col, unsafe { block.value_at(base + col) });
            }
        }
        rows
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Column, ResultSet};
    use std::ffi::CString;

    fn set(rows: usize) -> ResultSet {
        let mut set = ResultSet::default();
        set.begin_rows(
            vec![
                Column { name: CString::new("a").unwrap(), type_oid: 23, format: 0, ..Default::default() },
                Column { name: CString::new("b").unwrap(), type_oid: 25, format: 0, ..Default::default() },
            ]
            .into(),
        );
        for i in 0..rows {
            let a = i.to_string();
            let b = (i % 3 != 0).then(|| format!("row {i}"));
            set.push_row([Some(a.as_bytes()), b.as_deref().map(str::as_bytes)].into_iter());
        }
        set
    }

    #[test]
    fn visits_every_cell_of_the_block_in_row_major_order() {
        let set = set(10);
        let mut seen = Vec::new();
        let n = set.for_each_cell_in_rows(3, 4, |i, v| seen.push((i, v.map(|v| v.to_vec()))));
        assert_eq!(n, 4);
        assert_eq!(seen.len(), 8);
        for (k, (i, v)) in seen.iter().enumerate() {
            assert_eq!(*i, k);
            let (row, col) = (3 + k / 2, k % 2);
            assert_eq!(v.as_deref(), set.value_with_nul(row, col), "row {row} col {col}");
        }
        assert!(seen[1].1.is_none(), "row 3 column b is NULL");
    }

    #[test]
    fn stops_at_the_end_and_across_storage_blocks() {
        let set = set(70_000); // more rows than one storage block holds
        let mut cells = 0;
        assert_eq!(set.for_each_cell_in_rows(69_990, 100, |_, _| cells += 1), 10);
        assert_eq!(cells, 20);
        assert_eq!(set.for_each_cell_in_rows(70_000, 5, |_, _| panic!("no cell")), 0);
        let mut last = None;
        assert_eq!(set.for_each_cell_in_rows(0, usize::MAX, |i, v| last = Some((i, v.map(<[u8]>::to_vec)))), 70_000);
        assert_eq!(last, Some((139_999, None)), "69999 is a multiple of 3: NULL");
    }
}
