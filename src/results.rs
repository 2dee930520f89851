//! The C handle's side of a statement's outcome: its rows (`crate::rows::ResultSet`) plus the
//! pooled connection they keep checked out until freed (the contract of
//! sprockets.clients.postgresql's `Results.free()`).

use std::ffi::CStr;
use std::sync::Arc;

use crate::error::{Code, Error, Result};
use crate::pool::Lease;
use crate::rows::binary::TextError;
use crate::rows::typed::GetError;
use crate::rows::{typed, ResultSet};

/// Values made from a cell and handed out by pointer, by (row, column, kind): decoded bytea
/// (`bytes`) and rendered text (`text`). Made on the first call that needs one.
type DecodedCache =
    std::sync::OnceLock<Box<std::sync::Mutex<std::collections::HashMap<(usize, usize, Made), Box<[u8]>>>>>;

/// What a cached value was made as.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Made {
    /// A bytea's text decoded to its bytes.
    Bytes,
    /// A binary value rendered as text, with a NUL after it.
    Text,
}

/// What keeps the connection checked out for as long as results live.
pub enum Hold {
    /// The lease of one statement's results, returned when they are dropped.
    Lease(Lease),
    /// A lease shared with a transaction, a stream or a batch's other results: returned when the
    /// last of them lets go.
    Shared(Arc<Lease>),
    /// No connection: results put together without one (the fuzzer's).
    Nothing,
}

impl Hold {
    pub fn lease(&self) -> Option<&Lease> {
        match self {
            Hold::Lease(l) => Some(l),
            Hold::Shared(l) => Some(l),
            Hold::Nothing => None,
        }
    }
}

/// A statement's rows plus the pooled connection they keep checked out until dropped (the
/// `Results.free()` contract of sprockets.clients.postgresql). Results of a transaction share the transaction's connection.
pub struct Results {
    pub set: ResultSet,
    /// Decoded bytea values handed out by `bytes` and text by `text`, kept so their pointers
    /// stay valid.
    decoded: DecodedCache,
    /// The SQL text that produced these results, followed by a NUL for C.
    sql: SqlText,
    /// Returned to the pool when the last holder (results or transaction) lets go.
    hold: Hold,
    /// Counted in the pool's `results_outstanding` (from when they hold a statement's outcome).
    counted: bool,
}

impl Results {
    /// Results of `sql` holding `set`'s rows (a NUL in `sql`, which could not have been sent,
    /// would end it for C).
    pub fn new(set: ResultSet, sql: &str, hold: Hold) -> Results {
        let counted = count_outstanding(&hold);
        Results { set, sql: SqlText::new(sql), decoded: Default::default(), hold, counted }
    }

    /// Empty results on the heap, for a statement to fill in place (`Session`'s statements);
    /// `statement_done` counts them once the statement succeeded.
    pub(crate) fn boxed(sql: &str, hold: Hold) -> Box<Results> {
        let sql = SqlText::new(sql);
        // Written field by field into the allocation, so the ~400-byte value is never built on
        // the stack and copied into the box.
        let mut results = Box::new(std::mem::MaybeUninit::<Results>::uninit());
        let p = results.as_mut_ptr();
        // SAFETY: each field is written once, through raw pointers into the allocation, before
        // the box is taken as initialised (`MaybeUninit<T>` has `T`'s layout); nothing reads the
        // allocation earlier.
        unsafe {
            std::ptr::addr_of_mut!((*p).set).write(ResultSet::default());
            std::ptr::addr_of_mut!((*p).decoded).write(Default::default());
            std::ptr::addr_of_mut!((*p).sql).write(sql);
            std::ptr::addr_of_mut!((*p).hold).write(hold);
            std::ptr::addr_of_mut!((*p).counted).write(false);
            Box::from_raw(Box::into_raw(results).cast::<Results>())
        }
    }

    /// The SQL text that produced these results.
    pub fn sql(&self) -> &str {
        self.sql.text()
    }

    /// The statement filling these results (`boxed`) succeeded: from now on they count as
    /// results not yet freed.
    pub(crate) fn statement_done(&mut self) {
        if !self.counted {
            self.counted = count_outstanding(&self.hold);
        }
    }

    /// The lease the results hold, if any.
    pub(crate) fn hold_lease(&self) -> Option<&Lease> {
        self.hold.lease()
    }

    /// The lease (to run the statement on) and the rows (to fill), at once.
    pub(crate) fn lease_and_set(&mut self) -> (Option<&Lease>, &mut ResultSet) {
        (self.hold.lease(), &mut self.set)
    }

    /// `lease_and_set`, and the SQL.
    pub(crate) fn lease_set_and_sql(&mut self) -> (Option<&Lease>, &mut ResultSet, &str) {
        (self.hold.lease(), &mut self.set, self.sql.text())
    }

    /// `sql` with its NUL, for C (up to its first NUL, which a statement that ran cannot hold).
    pub fn sql_c(&self) -> &CStr {
        CStr::from_bytes_until_nul(self.sql.with_nul()).expect("SqlText ends it with a NUL")
    }
}

/// Count new results as outstanding on their pool (`Results::drop` counts them back); whether
/// they were (results without a connection are not).
fn count_outstanding(hold: &Hold) -> bool {
    hold.lease().inspect(|l| l.shared().counters.results_outstanding.inc()).is_some()
}

/// SQL of fewer bytes than this is kept inside the results (`SqlText::Inline`).
const SQL_INLINE: usize = 96;

/// A statement's SQL followed by a NUL (for C; not scanned for a NUL inside: `Results::sql_c`
/// stops at the first). Short SQL, as most statements' is, lives inside the results, so that
/// their one allocation holds it; longer SQL has its own.
enum SqlText {
    Inline { len: u8, bytes: [u8; SQL_INLINE] },
    Boxed(Box<[u8]>),
}

impl SqlText {
    fn new(sql: &str) -> SqlText {
        let n = sql.len();
        if n < SQL_INLINE {
            let mut bytes = [0; SQL_INLINE];
            bytes[..n].copy_from_slice(sql.as_bytes());
            return SqlText::Inline { len: n as u8, bytes };
        }
        let mut bytes = Vec::with_capacity(n + 1);
        bytes.extend_from_slice(sql.as_bytes());
        bytes.push(0);
        SqlText::Boxed(bytes.into_boxed_slice())
    }

    /// The SQL and its NUL.
    fn with_nul(&self) -> &[u8] {
        match self {
            SqlText::Inline { len, bytes } => &bytes[..=*len as usize],
            SqlText::Boxed(bytes) => bytes,
        }
    }

    fn text(&self) -> &str {
        let b = self.with_nul();
        // SAFETY: copied from a `&str` by `new`, which added the last byte (a NUL).
        unsafe { std::str::from_utf8_unchecked(&b[..b.len() - 1]) }
    }
}

impl std::fmt::Debug for Results {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Results")
            .field("sql", &self.sql())
            .field("rows", &self.set.nrows())
            .field("columns", &self.set.ncols())
            .field("command_tag", &self.set.command_tag)
            .field("backend_pid", &self.set.backend_pid)
            .finish()
    }
}

impl Results {
    /// A bytea value decoded to its bytes; any other type's text bytes; a binary column's value
    /// as it came (a binary bytea is its bytes, a uuid its 16 bytes). The slice lives as long as
    /// the results (decoded values are cached).
    pub fn bytes(&self, row: usize, col: usize) -> Result<&[u8], GetError> {
        let column = self.set.columns().get(col).ok_or(typed::GetError::OutOfRange)?;
        if row >= self.set.nrows() {
            return Err(typed::GetError::OutOfRange);
        }
        let text = self.set.value(row, col).ok_or(typed::GetError::Null)?;
        if column.type_oid != typed::oid::BYTEA || column.is_binary() {
            return Ok(text);
        }
        self.made(row, col, Made::Bytes, || {
            typed::decode_bytea(text).map(Vec::into_boxed_slice).ok_or(typed::GetError::TypeMismatch)
        })
    }

    /// The value as the server's text, with a NUL after it (`ResultSet::get_text`): a text
    /// column's value itself; a binary one rendered once and kept as long as the results.
    pub fn text(&self, row: usize, col: usize) -> std::result::Result<&[u8], TextError> {
        let binary = self.set.columns().get(col).is_some_and(|c| c.is_binary());
        if !binary || row >= self.set.nrows() {
            self.set.get_text(row, col)?; // the refusal, or a text value's check
            return self.set.value_with_nul(row, col).ok_or_else(|| GetError::Null.into());
        }
        let mut error = None;
        let made = self.made(row, col, Made::Text, || match self.set.get_text(row, col) {
            Ok(text) => {
                let mut bytes = Vec::with_capacity(text.len() + 1);
                bytes.extend_from_slice(text.as_bytes());
                bytes.push(0);
                Ok(bytes.into_boxed_slice())
            }
            Err(e) => {
                let code = e.error;
                error = Some(e);
                Err(code)
            }
        });
        made.map_err(|code| error.unwrap_or_else(|| code.into()))
    }

    /// The value made from cell (`row`, `col`) as `kind`, made by `make` the first time.
    fn made(
        &self,
        row: usize,
        col: usize,
        kind: Made,
        make: impl FnOnce() -> std::result::Result<Box<[u8]>, GetError>,
    ) -> std::result::Result<&[u8], GetError> {
        let mut cache = self.decoded.get_or_init(Default::default).lock().unwrap_or_else(|p| p.into_inner());
        let ptr: *const [u8] = match cache.get(&(row, col, kind)) {
            Some(b) => &**b,
            None => &**cache.entry((row, col, kind)).or_insert(make()?),
        };
        // SAFETY: the boxed slice is never removed or replaced while `self` lives, and a Box's
        // contents do not move when the map grows.
        Ok(unsafe { &*ptr })
    }
}

impl Results {
    /// `as_dict()` of sprockets.clients.postgresql: the only row as a JSON object; an interface
    /// error, saying how many rows there are, unless there is exactly one.
    pub fn as_dict(&self) -> Result<String> {
        match self.set.nrows() {
            1 => Ok(self.set.row_json(0).unwrap_or_default()),
            n => Err(Error::interface(format!("as_dict needs exactly one row; the result has {n}"))),
        }
    }
}

/// The code a typed getter's failure is reported as.
pub fn getter_code(e: GetError) -> Code {
    match e {
        GetError::Null => Code::PGSESS_NULL_VALUE,
        GetError::TypeMismatch => Code::PGSESS_TYPE_MISMATCH,
        GetError::OutOfRange => Code::PGSESS_OUT_OF_RANGE,
        GetError::Overflow => Code::PGSESS_VALUE_OVERFLOW,
        GetError::Unsupported => Code::PGSESS_NOT_SUPPORTED_ERROR,
    }
}

impl Drop for Results {
    fn drop(&mut self) {
        if let Hold::Lease(lease) = &mut self.hold {
            // The connection keeps this result's row storage for its next statement.
            if let Some(storage) = self.set.take_storage() {
                lease.keep_row_storage(storage);
            }
        }
        if let (true, Some(l)) = (self.counted, self.hold.lease()) {
            l.shared().counters.results_outstanding.dec();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{SqlText, SQL_INLINE};

    #[test]
    fn sql_short_or_long_reads_back_with_its_nul() {
        for n in [0, 1, SQL_INLINE - 1, SQL_INLINE, 10 * SQL_INLINE] {
            let sql: String = "SELECT é".chars().cycle().take(n).collect();
            let kept = SqlText::new(&sql);
            assert_eq!(kept.text(), sql, "{n} characters");
            assert_eq!(kept.with_nul(), [sql.as_bytes(), b"\0"].concat());
            assert_eq!(matches!(kept, SqlText::Inline { .. }), sql.len() < SQL_INLINE);
        }
    }
}
