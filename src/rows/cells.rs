//! Many rows' cells at once, for bindings that read a result in blocks: one call into the
//! library per block of rows instead of one per row (`pgsess_results_row`) or per cell
//! (`pgsess_results_value`). A cgo or FFI call costs tens of nanoseconds; a block of a few
//! hundred rows makes that cost vanish beside the reading of the values themselves.

use std::mem::MaybeUninit;

use super::{Block, ResultSet};

impl ResultSet {
    /// Call `f(block, first cell, rows)` for each block that holds some of the rows
    /// `first..first + rows`, in order: the block, the index in it of the first cell of the
    /// first of those rows it holds, and how many of them it holds; until `f` returns false.
    /// The block walk that the readers of many rows share: no row is looked up on its own.
    ///
    /// # Safety
    /// `first + rows <= nrows`.
    #[inline]
    unsafe fn for_each_block(&self, first: usize, rows: usize, mut f: impl FnMut(&Block, usize, usize) -> bool) {
        let per_block = 1usize << self.shift;
        let mut done = 0;
        while done < rows {
            let row = first + done;
            // SAFETY: `row < first + rows <= nrows`.
            let (block, base) = unsafe { self.locate(row) };
            let here = (per_block - (row & (per_block - 1))).min(rows - done);
            if !f(block, base, here) {
                return;
            }
            done += here;
        }
    }

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
        let mut index = 0;
        // SAFETY: `first + rows <= nrows`.
        unsafe {
            self.for_each_block(first, rows, |block, base, here| {
                for cell in base..base + here * ncols {
                    // SAFETY: the cells of the rows a block holds are all in it.
                    f(index, block.value_at(cell));
                    index += 1;
                }
                true
            })
        };
        rows
    }

    /// Call `f(i, value with its NUL)` for column `col` of the rows `first..first + rows`, `i`
    /// counting from 0, `value` `None` for NULL, until `f` returns `None`. Returns how many
    /// calls returned `Some`; nothing is visited unless the column exists and every one of the
    /// rows is there.
    #[inline]
    pub fn for_each_in_column(
        &self,
        col: usize,
        first: usize,
        rows: usize,
        mut f: impl FnMut(usize, Option<&[u8]>) -> Option<()>,
    ) -> usize {
        let ncols = self.columns.len();
        if col >= ncols || !first.checked_add(rows).is_some_and(|end| end <= self.nrows) {
            return 0;
        }
        let mut i = 0;
        // SAFETY: `first + rows <= nrows`.
        unsafe {
            self.for_each_block(first, rows, |block, base, here| {
                for cell in (base + col..base + here * ncols).step_by(ncols) {
                    // SAFETY: the cells of the rows a block holds are all in it; `col` is below
                    // the column count.
                    if f(i, block.value_at(cell)).is_none() {
                        return false;
                    }
                    i += 1;
                }
                true
            })
        };
        i
    }

    /// Copy the bytes of the cells of rows `first..first + max_rows` back to back into `buf`
    /// (without their NULs), each cell's length into `lengths` in row-major order
    /// (`NULL_LENGTH` for NULL), stopping before the first row that does not fit in `buf` or in
    /// `lengths`. Returns (rows copied, bytes written); when not even the first row fits in
    /// `buf`, (0, the bytes it needs).
    /// `buf` may be uninitialised (a caller's malloc'd block): it is only written.
    pub fn copy_cells(
        &self,
        first: usize,
        max_rows: usize,
        buf: &mut [MaybeUninit<u8>],
        lengths: &mut [usize],
    ) -> (usize, usize) {
        let ncols = self.columns.len();
        let max_rows = lengths.len().checked_div(ncols).map_or(max_rows, |fit| max_rows.min(fit));
        let mut used = 0;
        let mut copied = 0;
        while copied < max_rows {
            // One pass over the row: its cells are written while they fit; past that only
            // counted, for the size a row that does not fit needs.
            let mut end = used;
            let mut fits = true;
            let visited = self.for_each_cell_in_rows(first + copied, 1, |i, v| {
                let at = copied * ncols + i;
                let Some(v) = v else {
                    lengths[at] = NULL_LENGTH;
                    return;
                };
                let v = &v[..v.len() - 1];
                fits = fits && end + v.len() <= buf.len();
                if fits {
                    for (d, s) in buf[end..end + v.len()].iter_mut().zip(v) {
                        d.write(*s);
                    }
                }
                lengths[at] = v.len();
                end += v.len();
            });
            if visited == 0 {
                break; // past the last row
            }
            if !fits {
                return if copied == 0 { (0, end) } else { (copied, used) };
            }
            used = end;
            copied += 1;
        }
        (copied, used)
    }
}

/// `copy_cells`' length of a NULL cell.
pub const NULL_LENGTH: usize = usize::MAX;

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

    #[test]
    fn copies_whole_rows_that_fit_and_says_what_the_first_needs() {
        let s = set(3); // rows of ("a<i>", NULL or "b<i>") as `set` builds them
        let mut all = Vec::new();
        s.for_each_cell_in_rows(0, 3, |_, v| all.push(v.map(|v| v[..v.len() - 1].to_vec())));
        let mut space = vec![std::mem::MaybeUninit::new(0u8); 1024];
        let mut lengths = vec![0usize; 6];
        let (rows, bytes) = s.copy_cells(0, 3, &mut space, &mut lengths);
        assert_eq!(rows, 3);
        // SAFETY: every byte was initialised above.
        let buf: Vec<u8> = space.iter().map(|b| unsafe { b.assume_init() }).collect();
        let mut buf_again = space.clone();
        let mut at = 0;
        for (i, want) in all.iter().enumerate() {
            match want {
                None => assert_eq!(lengths[i], super::super::cells::NULL_LENGTH),
                Some(w) => {
                    assert_eq!(&buf[at..at + lengths[i]], &w[..]);
                    at += lengths[i];
                }
            }
        }
        assert_eq!(at, bytes);
        // A buffer too small for the first row: nothing copied, its size returned.
        let first: usize = all[..2].iter().map(|v| v.as_ref().map_or(0, Vec::len)).sum();
        let buf2 = &mut buf_again;
        assert_eq!(s.copy_cells(0, 3, &mut buf2[..first.saturating_sub(1)], &mut lengths), (0, first));
        // Room for one row's bytes, or one row's lengths: one row.
        assert_eq!(s.copy_cells(0, 3, &mut buf2[..first], &mut lengths).0, 1);
        assert_eq!(s.copy_cells(0, 3, buf2, &mut lengths[..3]).0, 1);
        assert_eq!(s.copy_cells(3, 3, buf2, &mut lengths), (0, 0), "past the end");
    }
}
