//! The error type every fallible operation returns, and the code/category taxonomy the C API exposes.
//!
//! Codes follow psycopg2's mapping from SQLSTATE classes to DB-API exceptions (the exceptions
//! sprockets.clients.postgresql raises), with finer codes for query cancellation (57014),
//! transaction rollback (class 40), pool exhaustion and configuration errors. The category of a
//! code is its DB-API base.

use std::ffi::CStr;
use std::fmt;

/// Result codes of the C API. `PGSESS_OK` is zero; every other value is a failure.
///
/// The numbering is part of the ABI: new codes are only ever appended.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Code {
    /// Success.
    PGSESS_OK = 0,
    /// Misuse of the API: a NULL handle or argument, invalid UTF-8, a use after close.
    PGSESS_INTERFACE_ERROR = 1,
    /// Configuration: a missing `PGSQL_*` variable, an unparsable URI, an unsupported parameter.
    PGSESS_CONFIG_ERROR = 2,
    /// The database could not be reached or the connection broke (SQLSTATE classes 08, 26-28, 34, 5x, HV).
    PGSESS_OPERATIONAL_ERROR = 3,
    /// Every pooled connection stayed held for the whole checkout timeout.
    PGSESS_POOL_EXHAUSTED = 4,
    /// The statement was cancelled (SQLSTATE 57014: statement_timeout, a cancel request).
    PGSESS_QUERY_CANCELED = 5,
    /// The transaction was rolled back by the server (SQLSTATE class 40: serialization failure, deadlock).
    PGSESS_TRANSACTION_ROLLBACK = 6,
    /// SQL errors: syntax, undefined objects, privileges (SQLSTATE classes 20, 21, 3D, 3F, 42, 44).
    PGSESS_PROGRAMMING_ERROR = 7,
    /// Integrity constraint violations (SQLSTATE class 23).
    PGSESS_INTEGRITY_ERROR = 8,
    /// Data exceptions: invalid input, division by zero, out of range (SQLSTATE class 22).
    PGSESS_DATA_ERROR = 9,
    /// Server-internal states: invalid transaction state, internal errors (24, 25, 2B, 2D, 2F, 38, 39, 3B, F0, P0, XX).
    PGSESS_INTERNAL_ERROR = 10,
    /// A feature the server or pgsess does not support (SQLSTATE class 0A, or a refused setting).
    PGSESS_NOT_SUPPORTED_ERROR = 11,
    /// Any other database error (warnings classes, unknown classes, no SQLSTATE).
    PGSESS_DATABASE_ERROR = 12,
    /// A typed getter was asked for a value that is SQL NULL.
    PGSESS_NULL_VALUE = 13,
    /// A typed getter was asked for a column whose type does not convert to the requested one.
    PGSESS_TYPE_MISMATCH = 14,
    /// A row or column index is out of range.
    PGSESS_OUT_OF_RANGE = 15,
    /// The value does not fit the requested C type.
    PGSESS_VALUE_OVERFLOW = 16,
    /// A bug in pgsess: a panic was caught at the C boundary (or in an asynchronous worker). The
    /// call failed and the library goes on working; its category is `PGSESS_INTERNAL_ERROR`, but
    /// unlike that code (the server's SQLSTATE classes such as XX) it never comes from the server.
    PGSESS_PANIC = 17,
}

use Code::*;

impl Code {
    /// Every code, in numeric order.
    pub const ALL: [Code; 18] = [
        PGSESS_OK,
        PGSESS_INTERFACE_ERROR,
        PGSESS_CONFIG_ERROR,
        PGSESS_OPERATIONAL_ERROR,
        PGSESS_POOL_EXHAUSTED,
        PGSESS_QUERY_CANCELED,
        PGSESS_TRANSACTION_ROLLBACK,
        PGSESS_PROGRAMMING_ERROR,
        PGSESS_INTEGRITY_ERROR,
        PGSESS_DATA_ERROR,
        PGSESS_INTERNAL_ERROR,
        PGSESS_NOT_SUPPORTED_ERROR,
        PGSESS_DATABASE_ERROR,
        PGSESS_NULL_VALUE,
        PGSESS_TYPE_MISMATCH,
        PGSESS_OUT_OF_RANGE,
        PGSESS_VALUE_OVERFLOW,
        PGSESS_PANIC,
    ];

    /// The code for a raw integer, if it names one.
    pub fn from_raw(raw: u32) -> Option<Code> {
        Code::ALL.get(raw as usize).copied()
    }

    /// The enumerator's name as written in the header, NUL-terminated for C.
    pub fn c_name(self) -> &'static CStr {
        match self {
            PGSESS_OK => c"PGSESS_OK",
            PGSESS_INTERFACE_ERROR => c"PGSESS_INTERFACE_ERROR",
            PGSESS_CONFIG_ERROR => c"PGSESS_CONFIG_ERROR",
            PGSESS_OPERATIONAL_ERROR => c"PGSESS_OPERATIONAL_ERROR",
            PGSESS_POOL_EXHAUSTED => c"PGSESS_POOL_EXHAUSTED",
            PGSESS_QUERY_CANCELED => c"PGSESS_QUERY_CANCELED",
            PGSESS_TRANSACTION_ROLLBACK => c"PGSESS_TRANSACTION_ROLLBACK",
            PGSESS_PROGRAMMING_ERROR => c"PGSESS_PROGRAMMING_ERROR",
            PGSESS_INTEGRITY_ERROR => c"PGSESS_INTEGRITY_ERROR",
            PGSESS_DATA_ERROR => c"PGSESS_DATA_ERROR",
            PGSESS_INTERNAL_ERROR => c"PGSESS_INTERNAL_ERROR",
            PGSESS_NOT_SUPPORTED_ERROR => c"PGSESS_NOT_SUPPORTED_ERROR",
            PGSESS_DATABASE_ERROR => c"PGSESS_DATABASE_ERROR",
            PGSESS_NULL_VALUE => c"PGSESS_NULL_VALUE",
            PGSESS_TYPE_MISMATCH => c"PGSESS_TYPE_MISMATCH",
            PGSESS_OUT_OF_RANGE => c"PGSESS_OUT_OF_RANGE",
            PGSESS_VALUE_OVERFLOW => c"PGSESS_VALUE_OVERFLOW",
            PGSESS_PANIC => c"PGSESS_PANIC",
        }
    }

    /// The enumerator's name as written in the header, e.g. `"PGSESS_DATA_ERROR"`.
    pub fn name(self) -> &'static str {
        self.c_name().to_str().unwrap_or("PGSESS_UNKNOWN_CODE")
    }

    /// The DB-API base class of a code: the finer codes map to the class psycopg2 derives them from
    /// (QueryCanceledError and TransactionRollbackError are OperationalErrors; pool exhaustion is
    /// operational; a configuration error is an interface error).
    pub fn category(self) -> Code {
        match self {
            PGSESS_QUERY_CANCELED | PGSESS_TRANSACTION_ROLLBACK | PGSESS_POOL_EXHAUSTED => PGSESS_OPERATIONAL_ERROR,
            PGSESS_CONFIG_ERROR | PGSESS_NULL_VALUE | PGSESS_TYPE_MISMATCH | PGSESS_OUT_OF_RANGE => {
                PGSESS_INTERFACE_ERROR
            }
            PGSESS_VALUE_OVERFLOW => PGSESS_DATA_ERROR,
            PGSESS_PANIC => PGSESS_INTERNAL_ERROR,
            other => other,
        }
    }

    /// The code for a SQLSTATE, following psycopg2's class table.
    pub fn from_sqlstate(sqlstate: &str) -> Code {
        if sqlstate == "57014" {
            return PGSESS_QUERY_CANCELED;
        }
        let class = sqlstate.get(..2).unwrap_or("");
        match class {
            "08" | "26" | "27" | "28" | "34" | "HV" => PGSESS_OPERATIONAL_ERROR,
            "0A" => PGSESS_NOT_SUPPORTED_ERROR,
            "20" | "21" | "3D" | "3F" | "42" | "44" => PGSESS_PROGRAMMING_ERROR,
            "22" => PGSESS_DATA_ERROR,
            "23" => PGSESS_INTEGRITY_ERROR,
            "24" | "25" | "2B" | "2D" | "2F" | "38" | "39" | "3B" | "F0" | "P0" | "XX" => PGSESS_INTERNAL_ERROR,
            "40" => PGSESS_TRANSACTION_ROLLBACK,
            c if c.starts_with('5') => PGSESS_OPERATIONAL_ERROR,
            _ => PGSESS_DATABASE_ERROR,
        }
    }
}

/// The fields of a server ErrorResponse or NoticeResponse that callers act on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServerFields {
    /// Localised severity (`ERROR`, `FATAL`, `NOTICE`, ...).
    pub severity: String,
    /// Non-localised severity (`V` field, PostgreSQL 9.6+), used to classify FATAL/PANIC.
    pub severity_nonlocalized: Option<String>,
    pub sqlstate: String,
    pub message: String,
    pub detail: Option<String>,
    pub hint: Option<String>,
    pub position: Option<String>,
    pub where_: Option<String>,
    pub schema: Option<String>,
    pub table: Option<String>,
    pub column: Option<String>,
    pub datatype: Option<String>,
    pub constraint: Option<String>,
    pub internal_position: Option<String>,
    pub internal_query: Option<String>,
    pub file: Option<String>,
    pub line: Option<String>,
    pub routine: Option<String>,
    /// Which of severity, SQLSTATE and message the server left out of its report (the
    /// `MISSING_*` bits): a real server always sends all three, a broken or hostile one may
    /// not, and then `field` gives NULL for it, as libpq's `PQresultErrorField` does, never an
    /// empty string the server did not send.
    pub(crate) missing: u8,
}

/// `ServerFields::missing`: the report had no severity (`S`) field.
pub(crate) const MISSING_SEVERITY: u8 = 1;
/// `ServerFields::missing`: the report had no SQLSTATE (`C`) field.
pub(crate) const MISSING_SQLSTATE: u8 = 2;
/// `ServerFields::missing`: the report had no message (`M`) field.
pub(crate) const MISSING_MESSAGE: u8 = 4;

impl ServerFields {
    /// The field with this protocol code (libpq's `PG_DIAG_*`: `'C'` SQLSTATE, `'W'` context,
    /// ...), as the server sent it; `None` when it sent none. A real server puts severity,
    /// SQLSTATE and message in every report, so for it they are always `Some`, empty when it
    /// sent them empty (`RAISE EXCEPTION USING MESSAGE = ''`), as libpq's `PQresultErrorField`
    /// gives them; so is any other field sent empty (`USING DETAIL = ''`). A report that left
    /// one of the three out (a broken server or proxy) gives `None` for it.
    pub fn field(&self, code: u8) -> Option<&str> {
        let sent = |bit: u8| self.missing & bit == 0;
        match code {
            b'S' => sent(MISSING_SEVERITY).then_some(self.severity.as_str()),
            b'V' => self.severity_nonlocalized.as_deref(),
            b'C' => sent(MISSING_SQLSTATE).then_some(self.sqlstate.as_str()),
            b'M' => sent(MISSING_MESSAGE).then_some(self.message.as_str()),
            b'D' => self.detail.as_deref(),
            b'H' => self.hint.as_deref(),
            b'P' => self.position.as_deref(),
            b'p' => self.internal_position.as_deref(),
            b'q' => self.internal_query.as_deref(),
            b'W' => self.where_.as_deref(),
            b's' => self.schema.as_deref(),
            b't' => self.table.as_deref(),
            b'c' => self.column.as_deref(),
            b'd' => self.datatype.as_deref(),
            b'n' => self.constraint.as_deref(),
            b'F' => self.file.as_deref(),
            b'L' => self.line.as_deref(),
            b'R' => self.routine.as_deref(),
            _ => None,
        }
    }

    /// Every field code `field` knows, in protocol order.
    pub const FIELD_CODES: &'static [u8] = b"SVCMDHPpqWstcdnFLR";

    /// Whether the server ends the session after this error (FATAL or PANIC).
    pub fn is_fatal(&self) -> bool {
        let s = self.severity_nonlocalized.as_deref().unwrap_or(&self.severity);
        s == "FATAL" || s == "PANIC"
    }

    /// The message in libpq's default-verbosity form: `SEVERITY:  message\nDETAIL:  ...\nHINT:  ...\n`.
    pub fn libpq_text(&self) -> String {
        let mut s = format!("{}:  {}\n", self.severity, self.message);
        if let Some(d) = &self.detail {
            s.push_str(&format!("DETAIL:  {d}\n"));
        }
        if let Some(h) = &self.hint {
            s.push_str(&format!("HINT:  {h}\n"));
        }
        s
    }
}

/// An error from any pgsess operation.
///
/// The message is built from parts that never include a password: configuration errors name the
/// variable or URI part, never its value when that part is a password, and connection errors name
/// hosts, ports, users and databases only.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    pub code: Code,
    pub message: String,
    /// The server's fields, when the server reported the error.
    pub server: Option<Box<ServerFields>>,
    /// SQLSTATE for client-side errors that have a standard one (e.g. 08001 for a failed connect).
    pub client_sqlstate: Option<&'static str>,
    /// The statement never reached the server: its connection could not be opened, was known
    /// broken, or failed while the statement was being sent, so the server ran none of it
    /// (`is_retryable`). False when the failure came after the statement was sent: it may have
    /// run.
    pub unsent: bool,
}

impl Error {
    pub fn new(code: Code, message: impl Into<String>) -> Error {
        Error { code, message: message.into(), server: None, client_sqlstate: None, unsent: false }
    }

    /// What a caught panic becomes: a bug in pgsess, with a code of its own.
    pub fn panic() -> Error {
        Error::new(PGSESS_PANIC, "internal error in pgsess: a panic was caught (a bug: please report it)")
    }

    pub fn interface(message: impl Into<String>) -> Error {
        Error::new(PGSESS_INTERFACE_ERROR, message)
    }

    pub fn config(message: impl Into<String>) -> Error {
        Error::new(PGSESS_CONFIG_ERROR, message)
    }

    pub fn not_supported(message: impl Into<String>) -> Error {
        Error::new(PGSESS_NOT_SUPPORTED_ERROR, message)
    }

    /// An operational error raised by the client (connect failure, broken connection, timeout) with
    /// the SQLSTATE libpq-based drivers report for it.
    pub fn operational(sqlstate: &'static str, message: impl Into<String>) -> Error {
        Error {
            code: PGSESS_OPERATIONAL_ERROR,
            message: message.into(),
            server: None,
            client_sqlstate: Some(sqlstate),
            unsent: false,
        }
    }

    /// An error the server reported, classified by its SQLSTATE. A FATAL error without an
    /// otherwise-specific class is operational: the session is gone.
    pub fn from_server(fields: ServerFields) -> Error {
        let mut code = Code::from_sqlstate(&fields.sqlstate);
        if fields.is_fatal() && code == PGSESS_DATABASE_ERROR {
            code = PGSESS_OPERATIONAL_ERROR;
        }
        let message = if fields.missing & MISSING_MESSAGE != 0 {
            "the server sent an error report without a message".to_owned()
        } else {
            fields.message.clone()
        };
        Error { code, message, server: Some(Box::new(fields)), client_sqlstate: None, unsent: false }
    }

    pub fn category(&self) -> Code {
        self.code.category()
    }

    /// The SQLSTATE: the server's, or the client's standard one for a client-side failure.
    /// `None` when there is none, and for a server report without one (or with an empty one,
    /// which no real server sends): never `Some("")`.
    pub fn sqlstate(&self) -> Option<&str> {
        match &self.server {
            Some(s) => Some(s.sqlstate.as_str()).filter(|s| !s.is_empty()),
            None => self.client_sqlstate,
        }
    }

    pub fn detail(&self) -> Option<&str> {
        self.server.as_ref().and_then(|s| s.detail.as_deref())
    }

    pub fn hint(&self) -> Option<&str> {
        self.server.as_ref().and_then(|s| s.hint.as_deref())
    }

    /// Whether the failed work can safely be run again, and may then succeed: a serialization
    /// failure (SQLSTATE 40001) or a deadlock (40P01), whose transaction the server rolled back,
    /// or a statement that never reached the server (`unsent`). A connection lost after the
    /// statement was sent is not retryable: the statement may have run (and, for a COMMIT, may
    /// have committed).
    pub fn is_retryable(&self) -> bool {
        self.unsent || matches!(self.sqlstate(), Some("40001" | "40P01"))
    }

    /// This error, marked as one whose statement never reached the server (`unsent`).
    pub fn mark_unsent(self) -> Error {
        Error { unsent: true, ..self }
    }

    /// Prefix the message with context (e.g. which host a connect failed on), keeping the code.
    pub fn context(mut self, context: impl fmt::Display) -> Error {
        self.message = format!("{context}: {}", self.message);
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.sqlstate() {
            Some(state) => write!(f, "{} ({}): {}", self.code.name(), state, self.message),
            None => write!(f, "{}: {}", self.code.name(), self.message),
        }
    }
}

impl std::error::Error for Error {}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlstate_classes_follow_psycopg2() {
        let table = [
            ("08006", PGSESS_OPERATIONAL_ERROR),
            ("0A000", PGSESS_NOT_SUPPORTED_ERROR),
            ("21000", PGSESS_PROGRAMMING_ERROR),
            ("22012", PGSESS_DATA_ERROR),
            ("23505", PGSESS_INTEGRITY_ERROR),
            ("25006", PGSESS_INTERNAL_ERROR),
            ("28P01", PGSESS_OPERATIONAL_ERROR),
            ("3D000", PGSESS_PROGRAMMING_ERROR),
            ("40001", PGSESS_TRANSACTION_ROLLBACK),
            ("42601", PGSESS_PROGRAMMING_ERROR),
            ("53300", PGSESS_OPERATIONAL_ERROR),
            ("57014", PGSESS_QUERY_CANCELED),
            ("57P01", PGSESS_OPERATIONAL_ERROR),
            ("P0001", PGSESS_INTERNAL_ERROR),
            ("XX000", PGSESS_INTERNAL_ERROR),
            ("01000", PGSESS_DATABASE_ERROR),
            ("", PGSESS_DATABASE_ERROR),
        ];
        for (state, code) in table {
            assert_eq!(Code::from_sqlstate(state), code, "{state}");
        }
    }

    #[test]
    fn a_report_without_sqlstate_has_none_not_an_empty_one() {
        let fields = ServerFields {
            severity: "ERROR".into(),
            message: "no state".into(),
            missing: MISSING_SQLSTATE,
            ..Default::default()
        };
        assert_eq!(fields.field(b'C'), None);
        assert_eq!(fields.field(b'M'), Some("no state"));
        let e = Error::from_server(fields);
        assert_eq!((e.sqlstate(), e.code), (None, PGSESS_DATABASE_ERROR));
        // Sent, but empty: the field reads as sent (libpq's PQresultErrorField), yet there is
        // no SQLSTATE to report.
        let e = Error::from_server(ServerFields { message: "m".into(), ..Default::default() });
        assert_eq!((e.sqlstate(), e.server.as_ref().unwrap().field(b'C')), (None, Some("")));
        let e = Error::from_server(ServerFields { missing: MISSING_MESSAGE | MISSING_SEVERITY, ..Default::default() });
        assert_eq!(e.server.as_ref().unwrap().field(b'S'), None);
        assert!(e.message.contains("without a message"), "{}", e.message);
        assert_eq!(Error::operational("08006", "x").sqlstate(), Some("08006"));
    }

    #[test]
    fn categories_are_dbapi_bases() {
        assert_eq!(PGSESS_QUERY_CANCELED.category(), PGSESS_OPERATIONAL_ERROR);
        assert_eq!(PGSESS_TRANSACTION_ROLLBACK.category(), PGSESS_OPERATIONAL_ERROR);
        assert_eq!(PGSESS_POOL_EXHAUSTED.category(), PGSESS_OPERATIONAL_ERROR);
        assert_eq!(PGSESS_CONFIG_ERROR.category(), PGSESS_INTERFACE_ERROR);
        assert_eq!(PGSESS_DATA_ERROR.category(), PGSESS_DATA_ERROR);
        for (i, c) in Code::ALL.iter().enumerate() {
            assert_eq!(*c as usize, i);
            assert_eq!(Code::from_raw(i as u32), Some(*c));
        }
        assert_eq!(PGSESS_PANIC.category(), PGSESS_INTERNAL_ERROR);
        assert_eq!(Code::from_raw(Code::ALL.len() as u32), None);
        for c in Code::ALL {
            assert_eq!(c.name(), format!("{c:?}"));
        }
    }
}
