//! The rows of one statement, fully buffered: an arena of text values, each followed by a NUL so C
//! can use it as a string, and one 8-byte offset per cell (libpq's `PGresult` spends 16 bytes a cell
//! plus the value). `Results` adds what the C handle needs: the pooled connection it holds until
//! freed.

mod json;
pub mod typed;

use std::ffi::CString;

use crate::pool::Lease;

/// One result column.
#[derive(Clone, Debug)]
pub struct Column {
    pub name: CString,
    pub type_oid: u32,
}

/// A cell offset with this bit set is SQL NULL.
const NULL_BIT: u64 = 1 << 63;

/// The buffered outcome of one statement.
#[derive(Debug, Default)]
pub struct ResultSet {
    pub columns: Vec<Column>,
    /// Every non-NULL value's bytes followed by a NUL.
    data: Vec<u8>,
    /// Row-major start offsets into `data`, one per cell. A NULL cell has `NULL_BIT` set and
    /// holds where the next value will start, so every value ends (with its NUL) where the next
    /// cell's offset, or `data.len()`, begins: no second array of lengths.
    cells: Vec<u64>,
    nrows: usize,
    /// The command tag (`SELECT 3`, `INSERT 0 1`, `CREATE TABLE`), empty when none.
    pub command_tag: String,
    /// Notices (NOTICE, WARNING, ...) the statement raised, in libpq's text form.
    pub notices: Vec<CString>,
    /// The backend that ran the statement.
    pub backend_pid: i32,
    /// The session's DateStyle was not ISO when the statement ran (dates are not in ISO form).
    pub non_iso_dates: bool,
}

impl ResultSet {
    /// Start a new row set with these columns, discarding earlier rows (a later statement of a
    /// multi-statement string replaces an earlier one's rows, as `PQexec` does).
    pub fn begin_rows(&mut self, columns: Vec<Column>) {
        self.columns = columns;
        self.data.clear();
        self.cells.clear();
        self.nrows = 0;
        self.command_tag.clear();
    }

    /// Discard everything a previous statement produced except the notices.
    pub fn reset_statement(&mut self) {
        self.begin_rows(Vec::new());
    }

    /// Append one row; `values` yields each column's bytes or `None` for NULL.
    pub fn push_row<'a>(&mut self, values: impl Iterator<Item = Option<&'a [u8]>>) {
        for v in values {
            match v {
                None => self.cells.push(NULL_BIT | self.data.len() as u64),
                Some(bytes) => {
                    self.cells.push(self.data.len() as u64);
                    self.data.extend_from_slice(bytes);
                    self.data.push(0);
                }
            }
        }
        self.nrows += 1;
    }

    /// Append one row straight from a DataRow message's values (after its column count): each
    /// an i32 length (-1 for NULL) and that many bytes. Returns false, appending nothing, when
    /// the values do not match `ncols` columns exactly.
    pub fn push_raw_row(&mut self, mut values: &[u8], ncols: usize) -> bool {
        let (data_mark, cells_mark) = (self.data.len(), self.cells.len());
        self.data.reserve(values.len());
        self.cells.reserve(ncols);
        for _ in 0..ncols {
            let Some((len, rest)) = values.split_first_chunk::<4>() else { return self.undo(data_mark, cells_mark) };
            let len = i32::from_be_bytes(*len);
            if len < 0 {
                self.cells.push(NULL_BIT | self.data.len() as u64);
                values = rest;
                continue;
            }
            let Some((bytes, rest)) = rest.split_at_checked(len as usize) else {
                return self.undo(data_mark, cells_mark);
            };
            self.cells.push(self.data.len() as u64);
            self.data.extend_from_slice(bytes);
            self.data.push(0);
            values = rest;
        }
        if !values.is_empty() {
            return self.undo(data_mark, cells_mark);
        }
        self.nrows += 1;
        true
    }

    fn undo(&mut self, data_mark: usize, cells_mark: usize) -> bool {
        self.data.truncate(data_mark);
        self.cells.truncate(cells_mark);
        false
    }

    /// Reserve room for about `bytes` more value bytes.
    pub fn reserve_data(&mut self, bytes: usize) {
        self.data.reserve(bytes);
    }

    pub fn nrows(&self) -> usize {
        self.nrows
    }

    pub fn ncols(&self) -> usize {
        self.columns.len()
    }

    fn cell(&self, row: usize, col: usize) -> Option<usize> {
        if row < self.nrows && col < self.columns.len() {
            Some(row * self.columns.len() + col)
        } else {
            None
        }
    }

    /// The value's bytes including its trailing NUL, `None` for NULL or out of range.
    pub fn value_with_nul(&self, row: usize, col: usize) -> Option<&[u8]> {
        let i = self.cell(row, col)?;
        let start = self.cells[i];
        if start & NULL_BIT != 0 {
            return None;
        }
        let end = self.cells.get(i + 1).map_or(self.data.len(), |next| (next & !NULL_BIT) as usize);
        Some(&self.data[start as usize..end])
    }

    /// The value's bytes, `None` for NULL or out of range.
    pub fn value(&self, row: usize, col: usize) -> Option<&[u8]> {
        self.value_with_nul(row, col).map(|v| &v[..v.len() - 1])
    }

    pub fn is_null(&self, row: usize, col: usize) -> bool {
        self.cell(row, col).is_some_and(|i| self.cells[i] & NULL_BIT != 0)
    }

    /// Index of the first column with this name, as `PQfnumber` does for a case-sensitive match.
    pub fn column_index(&self, name: &[u8]) -> Option<usize> {
        self.columns.iter().position(|c| c.name.as_bytes() == name)
    }

    /// Rows affected, from the command tag, as libpq's `PQcmdTuples` reads it: the last number of
    /// INSERT, UPDATE, DELETE, MERGE, SELECT, MOVE, FETCH, COPY tags; zero for any other command.
    pub fn rows_affected(&self) -> u64 {
        if self.tag_has_count() {
            self.command_tag.rsplit(' ').next().and_then(|n| n.parse().ok()).unwrap_or(0)
        } else {
            0
        }
    }

    /// Whether the command tag ends in a row count (the commands `PQcmdTuples` reads).
    fn tag_has_count(&self) -> bool {
        matches!(
            self.command_tag.split(' ').next(),
            Some("INSERT" | "UPDATE" | "DELETE" | "MERGE" | "SELECT" | "MOVE" | "FETCH" | "COPY")
        )
    }

    /// The seed's `count()`: the raw row count, as psycopg2's `rowcount`: rows returned or
    /// affected, and -1 for commands without a count (DDL, SET, BEGIN, ...).
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
        self.data.capacity() + self.cells.capacity() * 8
    }
}

/// Decoded bytea values by (row, column).
type DecodedCache = std::sync::Mutex<std::collections::HashMap<(usize, usize), Box<[u8]>>>;

/// A statement's rows plus the pooled connection they keep checked out until dropped (the seed's
/// `Results.free()` contract). Results of a transaction share the transaction's connection.
pub struct Results {
    pub set: ResultSet,
    /// Decoded bytea values handed out by `bytes`, kept so their pointers stay valid.
    decoded: DecodedCache,
    /// The SQL text that produced these results.
    pub sql: String,
    /// Returned to the pool when the last holder (results or transaction) lets go.
    _lease: Option<std::sync::Arc<Lease>>,
}

impl Results {
    pub fn new(set: ResultSet, sql: String, lease: Option<std::sync::Arc<Lease>>) -> Results {
        if let Some(l) = &lease {
            l.shared().counters.results_outstanding.inc();
        }
        Results { set, sql, decoded: Default::default(), _lease: lease }
    }
}

impl std::fmt::Debug for Results {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Results")
            .field("sql", &self.sql)
            .field("rows", &self.set.nrows())
            .field("columns", &self.set.ncols())
            .field("command_tag", &self.set.command_tag)
            .field("backend_pid", &self.set.backend_pid)
            .finish()
    }
}

impl Results {
    /// A bytea value decoded to its bytes; any other type's text bytes. The slice lives as long as
    /// the results (decoded values are cached).
    pub fn bytes(&self, row: usize, col: usize) -> Result<&[u8], typed::GetError> {
        let ty = self.set.columns.get(col).ok_or(typed::GetError::OutOfRange)?.type_oid;
        if row >= self.set.nrows() {
            return Err(typed::GetError::OutOfRange);
        }
        let text = self.set.value(row, col).ok_or(typed::GetError::Null)?;
        if ty != typed::oid::BYTEA {
            return Ok(text);
        }
        let mut cache = self.decoded.lock().unwrap_or_else(|p| p.into_inner());
        let ptr: *const [u8] = match cache.get(&(row, col)) {
            Some(b) => &**b,
            None => {
                let decoded = typed::decode_bytea(text).ok_or(typed::GetError::TypeMismatch)?.into_boxed_slice();
                &**cache.entry((row, col)).or_insert(decoded)
            }
        };
        // SAFETY: the boxed slice is never removed or replaced while `self` lives, and a Box's
        // contents do not move when the map grows.
        Ok(unsafe { &*ptr })
    }
}

impl Drop for Results {
    fn drop(&mut self) {
        if let Some(l) = &self._lease {
            l.shared().counters.results_outstanding.dec();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arena_keeps_values_nulls_and_bounds() {
        let mut r = ResultSet::default();
        r.begin_rows(vec![
            Column { name: CString::new("a").unwrap(), type_oid: 23 },
            Column { name: CString::new("b").unwrap(), type_oid: 25 },
        ]);
        r.push_row([Some(&b"1"[..]), None].into_iter());
        r.push_row([Some(&b""[..]), Some(&b"xyz"[..])].into_iter());
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
        r.begin_rows(vec![
            Column { name: CString::new("a").unwrap(), type_oid: 25 },
            Column { name: CString::new("b").unwrap(), type_oid: 25 },
        ]);
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
    fn rows_affected_reads_the_tag_like_pqcmdtuples() {
        let mut r = ResultSet::default();
        for (tag, n) in
            [("INSERT 0 5", 5), ("UPDATE 3", 3), ("SELECT 7", 7), ("CREATE TABLE", 0), ("DELETE 0", 0), ("", 0)]
        {
            r.command_tag = tag.into();
            assert_eq!(r.rows_affected(), n, "{tag}");
        }
    }
}
