//! The rows of one statement, fully buffered: text values, each followed by a NUL so C can use it
//! as a string, and one 8-byte offset per cell (libpq's `PGresult` spends 16 bytes a cell plus the
//! value). A leaf: it imports nothing from the rest of the crate, so the connection fills these
//! rows and the results handle (`crate::results`) keeps them without either knowing the other.
//!
//! Rows are stored in blocks of a fixed, power-of-two number of rows (about 64 Ki cells each), so
//! the storage of a big result is never reallocated and copied as it grows (a growing arena would
//! copy megabytes at a time while the server waits on a full socket). Finding a row's block is a
//! shift.

pub mod array;
pub mod binary;
mod cells;
mod json;
mod tag;
pub mod typed;

pub use tag::CommandTag;

use std::collections::VecDeque;
use std::ffi::CString;
use std::sync::Arc;

/// The most notices one statement's result keeps (`ResultSet::push_notice`): the oldest go
/// first past it, counted in `ResultSet::notices_dropped`. A `RAISE NOTICE` in a loop can send
/// millions.
pub const NOTICES_PER_RESULT: usize = 1000;
/// The most bytes of notice text one statement's result keeps (the newest notice is always
/// kept, whatever its size: a notice message is at most 1 MiB).
pub const NOTICE_BYTES_PER_RESULT: usize = 1 << 20;

/// One result column.
#[derive(Clone, Debug, Default)]
pub struct Column {
    pub name: CString,
    pub type_oid: u32,
    /// The format its values come in, from the RowDescription: `FORMAT_TEXT` (the server's text
    /// output) or `FORMAT_BINARY` (its `send` function's bytes).
    pub format: i16,
    /// The type modifier (`PQfmod`): varchar(n) and bpchar(n) give n + 4, numeric(p,s) gives
    /// ((p << 16) | s) + 4, timestamp(p) and interval's precision p; -1 when there is none.
    pub type_modifier: i32,
    /// The table the column comes from (`PQftable`), 0 when it is not a plain table column.
    pub table_oid: u32,
    /// Its attribute number in that table (`PQftablecol`), 0 when it has none.
    pub table_column: i16,
    /// The type's size (`PQfsize`): pg_type.typlen, negative for variable-length types.
    pub type_size: i16,
}

/// `Column::format` of a column whose values are the server's text output.
pub const FORMAT_TEXT: i16 = 0;
/// `Column::format` of a column whose values are the server's binary (`send`) form.
pub const FORMAT_BINARY: i16 = 1;

impl Column {
    /// Whether its values are in binary.
    #[inline]
    pub fn is_binary(&self) -> bool {
        self.format == FORMAT_BINARY
    }
}

/// A cell offset with this bit set is SQL NULL.
const NULL_BIT: u64 = 1 << 63;

/// Cells per block, at most (rounded down to whole rows, a power of two of them).
const BLOCK_CELLS: usize = 64 * 1024;

/// The largest first block handed back for reuse (`ResultSet::take_storage`): small results are
/// the ones whose allocations weigh in a round trip, and an idle connection should not sit on
/// the memory of a big one.
const REUSED_DATA_BYTES: usize = 4096;
const REUSED_CELLS: usize = 512;

/// The emptied row storage of a small result, kept by its connection for the next statement's
/// rows: a round trip then allocates nothing for its rows.
#[derive(Debug)]
pub struct RowStorage(Block);

/// The rows `[b << shift, (b + 1) << shift)` of a result.
#[derive(Debug, Default)]
struct Block {
    /// Every non-NULL value's bytes followed by a NUL.
    data: Vec<u8>,
    /// Row-major start offsets into `data`, one per cell. A NULL cell has `NULL_BIT` set and
    /// holds where the next value will start, so every value ends (with its NUL) where the next
    /// cell's offset, or `data.len()`, begins: no second array of lengths.
    cells: Vec<u64>,
}

impl Block {
    /// Whether its storage is small enough to keep for reuse (`REUSED_DATA_BYTES`).
    fn small_enough_to_reuse(&self) -> bool {
        self.data.capacity() <= REUSED_DATA_BYTES && self.cells.capacity() <= REUSED_CELLS
    }

    /// Cell `i`'s value with its NUL, `None` for NULL.
    ///
    /// # Safety
    /// `i` is the cell of a row below the result's `nrows` and a column below its column count.
    /// `push_row` and `push_raw_row` keep what that guarantees: such a block holds every cell of
    /// its rows, and cell offsets never decrease and never exceed `data.len()`. So no bounds are
    /// checked again (this is the per-cell read of the C API).
    #[inline]
    unsafe fn value_at(&self, i: usize) -> Option<&[u8]> {
        debug_assert!(i < self.cells.len());
        let start = *self.cells.get_unchecked(i);
        if start & NULL_BIT != 0 {
            return None;
        }
        let end = match self.cells.get(i + 1) {
            Some(next) => (next & !NULL_BIT) as usize,
            None => self.data.len(),
        };
        debug_assert!(start as usize <= end && end <= self.data.len());
        Some(self.data.get_unchecked(start as usize..end))
    }
}

/// The buffered outcome of one statement.
#[derive(Debug, Default)]
pub struct ResultSet {
    /// Shared with the connection's cache of its last RowDescription (and with the chunks of a
    /// stream), so a statement run again allocates nothing for its columns. Private: the cell
    /// layout is built for this column count (`begin_rows` is the only way to change it).
    columns: Arc<[Column]>,
    /// Block 0, kept inline so a small result costs no allocation for the list of blocks.
    first: Block,
    /// Blocks 1, 2, ...
    more: Vec<Block>,
    /// log2 of the rows per block.
    shift: u32,
    nrows: usize,
    /// The command tag (`SELECT 3`, `INSERT 0 1`, `CREATE TABLE`), empty when none.
    pub command_tag: CommandTag,
    /// Notices (NOTICE, WARNING, ...) the statement raised, in libpq's text form, oldest first:
    /// the last `NOTICES_PER_RESULT` at most (see `push_notice`).
    pub notices: VecDeque<CString>,
    /// The backend that ran the statement.
    pub backend_pid: i32,
    /// The session's DateStyle was not ISO when the statement ran (dates are not in ISO form).
    pub non_iso_dates: bool,
    /// The session's TimeZone was UTC (or another name for a zone always at offset zero) when
    /// the statement ran: a binary timestamptz can then be rendered as the server's text.
    pub utc_time_zone: bool,
    /// Notices the statement raised that were not kept (`push_notice`).
    pub notices_dropped: u64,
    /// Bytes of the notices in `notices`.
    notice_bytes: usize,
}

impl ResultSet {
    /// Start a new row set with these columns, discarding earlier rows (a later statement of a
    /// multi-statement string replaces an earlier one's rows, as `PQexec` does).
    pub fn begin_rows(&mut self, columns: Arc<[Column]>) {
        let rows_per_block = (BLOCK_CELLS / columns.len().max(1)).max(1);
        self.shift = usize::BITS - 1 - rows_per_block.leading_zeros(); // floor(log2)
        self.columns = columns;
        // Emptied, not replaced: the first block keeps its (possibly reused) capacity, unless it
        // is too big to be worth keeping (an earlier statement of a multi-statement string).
        if !self.first.small_enough_to_reuse() {
            self.first = Block::default();
        }
        self.first.data.clear();
        self.first.cells.clear();
        self.more.clear();
        self.nrows = 0;
        self.command_tag.clear();
    }

    /// Give up the first block's storage, emptied, for another result to reuse: only from a
    /// small result (the rows are gone afterwards; for a result being dropped).
    pub fn take_storage(&mut self) -> Option<RowStorage> {
        let first = &mut self.first;
        if first.data.capacity() == 0 || !first.small_enough_to_reuse() {
            return None;
        }
        self.nrows = 0;
        self.more.clear();
        let mut block = std::mem::take(first);
        block.data.clear();
        block.cells.clear();
        Some(RowStorage(block))
    }

    /// Store rows in `storage` (from `take_storage`) rather than a new allocation. Ignored once
    /// this result holds rows.
    pub fn reuse_storage(&mut self, storage: RowStorage) {
        if self.nrows == 0 && self.first.data.capacity() == 0 && self.first.cells.capacity() == 0 {
            self.first = storage.0;
        }
    }

    /// Keep a notice the statement raised: the oldest kept ones are dropped (and counted in
    /// `notices_dropped`) while more than `NOTICES_PER_RESULT` or more than
    /// `NOTICE_BYTES_PER_RESULT` bytes would be kept, so a server's flood of notices costs a
    /// bounded amount of memory. The newest is always kept.
    pub fn push_notice(&mut self, notice: CString) {
        self.notice_bytes += notice.as_bytes().len();
        self.notices.push_back(notice);
        while self.notices.len() > 1
            && (self.notices.len() > NOTICES_PER_RESULT || self.notice_bytes > NOTICE_BYTES_PER_RESULT)
        {
            if let Some(old) = self.notices.pop_front() {
                self.notice_bytes -= old.as_bytes().len();
                self.notices_dropped += 1;
            }
        }
    }

    /// Discard everything a previous statement produced except the notices.
    pub fn reset_statement(&mut self) {
        self.begin_rows(Arc::default());
    }

    /// The block the next row goes to, with room reserved for `data_bytes` more value bytes.
    fn block_for_next_row(&mut self, data_bytes: usize) -> &mut Block {
        let b = self.nrows >> self.shift;
        if b > self.more.len() {
            // Later blocks are sized from the previous one: full rows are never copied again.
            let prev = self.more.last().unwrap_or(&self.first);
            let block = Block {
                data: Vec::with_capacity(prev.data.len() + prev.data.len() / 8),
                cells: Vec::with_capacity(prev.cells.len()),
            };
            self.more.push(block);
        }
        let ncols = self.columns.len();
        let block = if b == 0 { &mut self.first } else { &mut self.more[b - 1] };
        block.data.reserve(data_bytes);
        block.cells.reserve(ncols);
        block
    }

    /// The result's columns.
    pub fn columns(&self) -> &Arc<[Column]> {
        &self.columns
    }

    /// Append one row; `values` yields each column's bytes or `None` for NULL. Returns false,
    /// appending nothing, unless it yields exactly one value per column.
    pub fn push_row<'a>(&mut self, mut values: impl Iterator<Item = Option<&'a [u8]>>) -> bool {
        let ncols = self.columns.len();
        let block = self.block_for_next_row(0);
        let (data_mark, cells_mark) = (block.data.len(), block.cells.len());
        for v in values.by_ref().take(ncols) {
            match v {
                None => block.cells.push(NULL_BIT | block.data.len() as u64),
                Some(bytes) => {
                    block.cells.push(block.data.len() as u64);
                    block.data.extend_from_slice(bytes);
                    block.data.push(0);
                }
            }
        }
        if block.cells.len() - cells_mark != ncols || values.next().is_some() {
            block.data.truncate(data_mark);
            block.cells.truncate(cells_mark);
            return false;
        }
        self.nrows += 1;
        true
    }

    /// Append one row straight from a DataRow message's values (after its column count): each
    /// an i32 length (-1 for NULL) and that many bytes. Returns false, appending nothing, when
    /// the values do not match `ncols` columns (the result's column count) exactly.
    pub fn push_raw_row(&mut self, values: &[u8], ncols: usize) -> bool {
        if ncols != self.columns.len() {
            return false;
        }
        // Every value's 4-byte length prefix is at least the room its NUL needs, so the row's
        // data never takes more than `values.len()` bytes.
        let block = self.block_for_next_row(values.len());
        let (data, cells) = (block.data.as_mut_ptr(), block.cells.as_mut_ptr());
        let (data_len, cells_len) = (block.data.len(), block.cells.len());
        let (mut pos, mut out) = (0usize, data_len);
        for col in 0..ncols {
            let Some(prefix) = values.get(pos..pos + 4) else { return false };
            let len = i32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]);
            pos += 4;
            let cell = if len < 0 {
                NULL_BIT | out as u64
            } else {
                let len = len as usize;
                let Some(bytes) = values.get(pos..pos + len) else { return false };
                // SAFETY: `out + len + 1 <= data_len + pos <= data_len + values.len()`, within
                // the capacity reserved above; the source is a different allocation.
                unsafe {
                    std::ptr::copy_nonoverlapping(bytes.as_ptr(), data.add(out), len);
                    data.add(out + len).write(0);
                }
                pos += len;
                out += len + 1;
                (out - len - 1) as u64
            };
            // SAFETY: `ncols` cells were reserved above.
            unsafe { cells.add(cells_len + col).write(cell) };
        }
        if pos != values.len() {
            return false;
        }
        // SAFETY: the bytes and cells up to these lengths were written above. A malformed row
        // returned before this point and so appended nothing.
        unsafe {
            block.data.set_len(out);
            block.cells.set_len(cells_len + ncols);
        }
        self.nrows += 1;
        true
    }

    pub fn nrows(&self) -> usize {
        self.nrows
    }

    pub fn ncols(&self) -> usize {
        self.columns.len()
    }

    /// The block holding `row` and the index of the row's first cell in it. Nothing here can
    /// panic, so the C API's per-cell read keeps no unwinding path.
    ///
    /// # Safety
    /// `row < nrows`: then its block exists (`push_row` and `push_raw_row` create it).
    #[inline]
    unsafe fn locate(&self, row: usize) -> (&Block, usize) {
        let b = row >> self.shift;
        debug_assert!(b <= self.more.len());
        let block = if b == 0 { &self.first } else { self.more.get_unchecked(b - 1) };
        (block, (row & ((1 << self.shift) - 1)) * self.columns.len())
    }

    /// The value's bytes including its trailing NUL, `None` for NULL or out of range. The
    /// hottest read of the library: one call per cell from C.
    #[inline]
    pub fn value_with_nul(&self, row: usize, col: usize) -> Option<&[u8]> {
        if row >= self.nrows || col >= self.columns.len() {
            return None;
        }
        // SAFETY: the row and column are in range (see `locate` and `Block::value_at`).
        unsafe {
            let (block, base) = self.locate(row);
            block.value_at(base + col)
        }
    }

    /// Call `f(col, value with its NUL)` for the first `n` columns of `row` (fewer if the result
    /// has fewer), finding the row once; `value` is `None` for NULL. Returns the columns visited:
    /// 0 when `row` is out of range.
    #[inline]
    pub fn for_each_in_row(&self, row: usize, n: usize, mut f: impl FnMut(usize, Option<&[u8]>)) -> usize {
        if row >= self.nrows {
            return 0;
        }
        let n = n.min(self.columns.len());
        // SAFETY: the row is in range.
        let (block, base) = unsafe { self.locate(row) };
        for col in 0..n {
            // SAFETY: the row is in range and `col` below the column count.
            f(col, unsafe { block.value_at(base + col) });
        }
        n
    }

    /// The value's bytes, `None` for NULL or out of range.
    #[inline]
    pub fn value(&self, row: usize, col: usize) -> Option<&[u8]> {
        self.value_with_nul(row, col).map(|v| &v[..v.len() - 1])
    }

    pub fn is_null(&self, row: usize, col: usize) -> bool {
        if row >= self.nrows || col >= self.columns.len() {
            return false;
        }
        // SAFETY: the row is in range.
        let (block, base) = unsafe { self.locate(row) };
        block.cells[base + col] & NULL_BIT != 0
    }

    /// Index of the first column with this name, as `PQfnumber` does for a case-sensitive match.
    pub fn column_index(&self, name: &[u8]) -> Option<usize> {
        self.columns.iter().position(|c| c.name.as_bytes() == name)
    }

    /// Rows affected, from the command tag, as libpq's `PQcmdTuples` reads it: the last number of
    /// INSERT, UPDATE, DELETE, MERGE, SELECT, MOVE, FETCH, COPY tags; zero for any other command.
    /// A count that does not fit 64 bits is `u64::MAX`; `rows_affected_digits` has it exactly.
    pub fn rows_affected(&self) -> u64 {
        self.command_tag.row_count()
    }

    /// The row count of the command tag as the server wrote it, as libpq's `PQcmdTuples` gives
    /// it: its digits, whatever their number; empty for a command without a count.
    pub fn rows_affected_digits(&self) -> &std::ffi::CStr {
        self.command_tag.row_count_digits()
    }

    /// Whether the command tag ends in a row count (the commands `PQcmdTuples` reads).
    fn tag_has_count(&self) -> bool {
        self.command_tag.has_row_count()
    }

    /// sprockets.clients.postgresql's `count()`: the raw row count, as psycopg2's `rowcount`: rows
    /// returned or affected, and -1 for commands without a count (DDL, SET, BEGIN, ...).
    pub fn count(&self) -> i64 {
        if self.tag_has_count() {
            i64::try_from(self.rows_affected()).unwrap_or(i64::MAX)
        } else if !self.columns.is_empty() {
            self.nrows as i64
        } else {
            -1
        }
    }

    /// Approximate heap bytes held, for memory accounting.
    pub fn heap_bytes(&self) -> usize {
        std::iter::once(&self.first).chain(&self.more).map(|b| b.data.capacity() + b.cells.capacity() * 8).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arena_keeps_values_nulls_and_bounds() {
        let mut r = ResultSet::default();
        r.begin_rows(Arc::from(vec![
            Column { name: CString::new("a").unwrap(), type_oid: 23, format: 0, ..Default::default() },
            Column { name: CString::new("b").unwrap(), type_oid: 25, format: 0, ..Default::default() },
        ]));
        assert!(r.push_row([Some(&b"1"[..]), None].into_iter()));
        assert!(r.push_row([Some(&b""[..]), Some(&b"xyz"[..])].into_iter()));
        // One value too few or too many: refused, nothing appended.
        assert!(!r.push_row([Some(&b"short"[..])].into_iter()));
        assert!(!r.push_row([None, None, Some(&b"long"[..])].into_iter()));
        assert_eq!(r.nrows(), 2);
        assert_eq!(r.value(0, 0), Some(&b"1"[..]));
        assert_eq!(r.value(0, 1), None);
        assert!(r.is_null(0, 1));
        assert_eq!(r.value(1, 0), Some(&b""[..]));
        assert_eq!(r.value_with_nul(1, 1), Some(&b"xyz\0"[..]));
        assert_eq!(r.value(2, 0), None);
        assert_eq!(r.value(0, 2), None);
        assert!(!r.is_null(5, 5));
        assert_eq!(r.column_index(b"b"), Some(1));
        assert_eq!(r.column_index(b"c"), None);
    }

    #[test]
    fn raw_rows_parse_in_place_and_reject_malformed_ones() {
        let mut r = ResultSet::default();
        r.begin_rows(Arc::from(vec![
            Column { name: CString::new("a").unwrap(), type_oid: 25, format: 0, ..Default::default() },
            Column { name: CString::new("b").unwrap(), type_oid: 25, format: 0, ..Default::default() },
        ]));
        let mut row = Vec::new();
        row.extend_from_slice(&2i32.to_be_bytes());
        row.extend_from_slice(b"hi");
        row.extend_from_slice(&(-1i32).to_be_bytes());
        assert!(r.push_raw_row(&row, 2));
        assert_eq!((r.value(0, 0), r.value(0, 1), r.is_null(0, 1)), (Some(&b"hi"[..]), None, true));
        // Too short, too long, a length past the end: refused, nothing appended.
        for bad in [&row[..5], &[&row[..], &[0u8][..]].concat()[..], &[0, 0, 0, 9, b'x'][..]] {
            assert!(!r.push_raw_row(bad, 2));
        }
        assert_eq!(r.nrows(), 1);
        assert!(r.push_raw_row(&row, 2));
        assert_eq!(r.value(1, 0), Some(&b"hi"[..]));
    }

    #[test]
    fn rows_span_blocks_with_nulls_at_their_edges() {
        let mut r = ResultSet::default();
        let cols = |n: usize| {
            (0..n).map(|i| Column {
                name: CString::new(format!("c{i}")).unwrap(),
                type_oid: 25,
                format: 0,
                ..Default::default()
            })
        };
        r.begin_rows(cols(3).collect::<Vec<_>>().into());
        let rows_per_block = 1usize << r.shift;
        assert!(rows_per_block * 3 <= BLOCK_CELLS && rows_per_block * 6 > BLOCK_CELLS);
        let n = rows_per_block * 2 + 7;
        let text = |row: usize, col: usize| format!("{row}:{col}");
        // The last column is NULL on every block's last row, the first on every block's first row.
        let is_null = |row: usize, col: usize| {
            (col == 2 && row % rows_per_block == rows_per_block - 1) || (col == 0 && row % rows_per_block == 0)
        };
        for row in 0..n {
            if row == rows_per_block {
                // A malformed row at a block's start appends nothing.
                assert!(!r.push_raw_row(&[0, 0, 0, 9, b'x'], 3));
            }
            let mut raw = Vec::new();
            for col in 0..3 {
                if is_null(row, col) {
                    raw.extend_from_slice(&(-1i32).to_be_bytes());
                } else {
                    let t = text(row, col);
                    raw.extend_from_slice(&(t.len() as i32).to_be_bytes());
                    raw.extend_from_slice(t.as_bytes());
                }
            }
            assert!(r.push_raw_row(&raw, 3));
        }
        assert_eq!(r.nrows(), n);
        assert_eq!(r.more.len(), 2);
        for row in 0..n {
            for col in 0..3 {
                let want = (!is_null(row, col)).then(|| format!("{}\0", text(row, col)).into_bytes());
                assert_eq!(r.value_with_nul(row, col).map(<[u8]>::to_vec), want, "({row}, {col})");
                assert_eq!(r.is_null(row, col), is_null(row, col));
            }
        }
        assert_eq!(r.value(n, 0), None);
        for row in [0, rows_per_block - 1, rows_per_block, n - 1] {
            let mut seen = Vec::new();
            assert_eq!(r.for_each_in_row(row, 9, |col, v| seen.push((col, v.map(<[u8]>::to_vec)))), 3);
            let want: Vec<_> = (0..3).map(|col| (col, r.value_with_nul(row, col).map(<[u8]>::to_vec))).collect();
            assert_eq!(seen, want, "row {row}");
        }
        assert_eq!(r.for_each_in_row(0, 2, |_, _| ()), 2);
        assert_eq!(r.for_each_in_row(n, 3, |_, _| panic!("out of range")), 0);
        // The block walks of many rows, from just before a block's end across the next two.
        let first = rows_per_block - 2;
        let rows = n - first;
        for col in 0..3 {
            let mut seen = Vec::new();
            let visited = r.for_each_in_column(col, first, rows, |i, v| {
                seen.push((i, v.map(<[u8]>::to_vec)));
                Some(())
            });
            assert_eq!(visited, rows);
            let want: Vec<_> = (0..rows).map(|i| (i, r.value_with_nul(first + i, col).map(<[u8]>::to_vec))).collect();
            assert_eq!(seen, want, "column {col}");
        }
        let mut seen = Vec::new();
        assert_eq!(r.for_each_cell_in_rows(first, usize::MAX, |i, v| seen.push((i, v.map(<[u8]>::to_vec)))), rows);
        let want: Vec<_> =
            (0..rows * 3).map(|i| (i, r.value_with_nul(first + i / 3, i % 3).map(<[u8]>::to_vec))).collect();
        assert_eq!(seen, want);
        // The column walk stops where its callback says, and visits nothing out of range.
        let mut calls = 0;
        assert_eq!(r.for_each_in_column(1, first, rows, |i, _| (i < 4).then(|| calls += 1)), 4);
        assert_eq!(calls, 4);
        assert_eq!(r.for_each_in_column(3, 0, 1, |_, _| panic!("no such column")), 0);
        assert_eq!(r.for_each_in_column(0, first, rows + 1, |_, _| panic!("past the end")), 0);
        assert_eq!(r.for_each_in_column(0, usize::MAX, 2, |_, _| panic!("past the end")), 0);
        assert_eq!(r.for_each_in_column(0, n, 0, |_, _| panic!("no rows")), 0);
        r.begin_rows(cols(0).collect::<Vec<_>>().into());
        assert!(r.push_row(std::iter::empty()));
        assert_eq!((r.nrows(), r.value(0, 0)), (1, None));
    }

    #[test]
    fn notices_kept_are_bounded_in_number_and_bytes_the_oldest_dropped_and_counted() {
        let mut r = ResultSet::default();
        for i in 0..NOTICES_PER_RESULT + 250 {
            r.push_notice(CString::new(format!("NOTICE:  {i}\n")).unwrap());
        }
        assert_eq!((r.notices.len(), r.notices_dropped), (NOTICES_PER_RESULT, 250));
        assert_eq!(r.notices[0].to_str().unwrap(), "NOTICE:  250\n", "the oldest went first");
        let big = CString::new(vec![b'x'; NOTICE_BYTES_PER_RESULT / 2 + 1]).unwrap();
        r.push_notice(big.clone());
        r.push_notice(big.clone());
        assert_eq!(r.notices.len(), 1, "two halves and more do not fit: only the newest is kept");
        assert_eq!(r.notices_dropped, 250 + NOTICES_PER_RESULT as u64 + 1);
        let huge = CString::new(vec![b'y'; NOTICE_BYTES_PER_RESULT * 2]).unwrap();
        r.push_notice(huge);
        assert_eq!(r.notices.len(), 1, "the newest is kept whatever its size");
        r.push_notice(CString::new("small").unwrap());
        assert_eq!(r.notices.iter().map(|n| n.to_str().unwrap()).collect::<Vec<_>>(), ["small"]);
    }

    #[test]
    fn rows_affected_reads_the_tag_like_pqcmdtuples() {
        let mut r = ResultSet::default();
        for (tag, n) in
            [("INSERT 0 5", 5), ("UPDATE 3", 3), ("SELECT 7", 7), ("CREATE TABLE", 0), ("DELETE 0", 0), ("", 0)]
        {
            r.command_tag = tag.into();
            assert_eq!(r.rows_affected(), n, "{tag}");
        }
        r.command_tag = "INSERT 0 99999999999999999999".into();
        assert_eq!((r.rows_affected(), r.count()), (u64::MAX, i64::MAX));
        assert_eq!(r.rows_affected_digits().to_str().unwrap(), "99999999999999999999");
    }
}
