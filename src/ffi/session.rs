//! `pgsess_session`: open, query, callproc, begin, and sprockets.clients.postgresql's session properties.

use std::ffi::c_char;

use super::options::pgsess_options;
use super::results::pgsess_results;
use super::stream::pgsess_stream;
use super::tx::pgsess_tx;
use super::{
    arg, c_string, call, give, params_arg, pgsess_error, read_arg, str_arg, take, typed_params_arg, Handle, NO_ERR,
};
use crate::config::SessionOptions;
use crate::error::{Code, Error};
use crate::pool::PoolStats;
use crate::session::Session;

/// A session on a process-wide connection pool. Created by `pgsess_open`, owned by the caller,
/// freed with `pgsess_close`. Thread-safe: any number of threads may use one session at once
/// (each statement checks out its own pooled connection); `pgsess_close` must not race with
/// other calls on the same session.
#[allow(non_camel_case_types)]
pub struct pgsess_session {
    _opaque: [u8; 0],
}

impl Handle for pgsess_session {
    type Rust = Session;
}

/// Open a session named `dbname`.
///
/// The connection string comes from the `db_url` option when set; otherwise from the environment
/// variable `"PGSQL_" + dbname`, upper-cased as a whole the way Python's `str.upper()` does
/// (`"straße"` reads `PGSQL_STRASSE`; nothing else is changed). A NULL or empty `dbname` reads
/// `PGSQL`. Either of libpq's forms is accepted: a URI (`postgresql://...`) or `key=value`
/// pairs, completed as libpq completes them (service file, `PG*` variables, defaults). A
/// missing variable, a malformed string, a keyword libpq does not know or an invalid value is
/// `PGSESS_CONFIG_ERROR`; a keyword or value pgsess does not support is
/// `PGSESS_NOT_SUPPORTED_ERROR` (`pgsess_config_check` checks all this without connecting).
///
/// Sessions with the same normalised URI and pool options share one process-wide pool. Joining
/// an existing pool opens no connection; creating one opens its first connection, so a wrong
/// host, user or password fails here. Opening it is bounded by the checkout timeout
/// (`pgsess_options_set_checkout_timeout_ms`) as a whole, whatever the number of hosts and
/// however slowly a server answers: a server that accepts the TCP connection and never answers
/// makes `pgsess_open` fail with `PGSESS_OPERATIONAL_ERROR` (SQLSTATE 08001) at that timeout.
///
/// `opts` may be NULL (defaults); it is only read. Returns a new session, or NULL with `*err` set.
/// Any thread.
///
/// # Safety
/// `dbname` NULL or NUL-terminated; `opts` NULL or live; `err` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn pgsess_open(
    dbname: *const c_char,
    opts: *const pgsess_options,
    err: *mut *mut pgsess_error,
) -> *mut pgsess_session {
    call(err, || {
        let name = if dbname.is_null() { "" } else { str_arg(dbname, "dbname")? };
        let defaults = SessionOptions::default();
        let options = if opts.is_null() { &defaults } else { arg(opts, "opts")? };
        Ok(give::<pgsess_session>(Box::new(Session::open(name, options)?)))
    })
}

/// Close a session. NULL is ignored. Asynchronous requests still outstanding are cancelled and
/// every remaining callback runs on this thread before it returns: queued ones at once with
/// `PGSESS_QUERY_CANCELED`; running ones get a cancel request, and those whose statement has
/// not ended within the cancel grace (`pgsess_options_set_cancel_grace_ms`, default 5 s) fail
/// with `PGSESS_QUERY_CANCELED` (their connections are closed). So it returns within the cancel
/// grace (or the up to 5 s sending the cancel requests takes, when longer). Results and transactions
/// obtained from the session stay valid and keep their connections until freed; the pool stays
/// for other sessions (its idle connections close after `pool_idle_ttl`).
///
/// # Safety
/// `session` NULL or from `pgsess_open`, not yet closed, with no call on it running.
#[no_mangle]
pub unsafe extern "C" fn pgsess_close(session: *mut pgsess_session) {
    call(NO_ERR, || {
        if !session.is_null() && arg(session, "session")?.is_transaction_bound() {
            return Ok(()); // owned by its transaction
        }
        if let Some(session) = take(session) {
            session.close_requests();
        }
        Ok(())
    })
}

/// A new pinned session on `session`'s pool: it checks out one connection now (waiting up to the
/// checkout timeout, `PGSESS_POOL_EXHAUSTED` when none comes free) and holds it until
/// `pgsess_close`, so session state (`SET`, `SET ROLE`, temporary tables, `PREPARE`, `LISTEN`,
/// session advisory locks, `lastval()`) carries from one statement to the next as on a libpq
/// connection, and `BEGIN` ... `COMMIT` sent as separate `pgsess_query` calls is one transaction.
/// Every session call works on it unchanged; statements from several threads run one at a time,
/// in turn. Its results share its connection (they hold no other). If the connection dies, the
/// statement in flight fails with `PGSESS_OPERATIONAL_ERROR` saying the session's state was lost,
/// and the next statement runs on a new connection. `pgsess_begin` on it begins the transaction
/// on its connection: until commit or rollback, the session's other statements run inside that
/// transaction too, as on a libpq connection. `pgsess_close` returns the connection to the pool
/// (once the session's results are freed too) with `DISCARD ALL`, whatever its statements were,
/// unless the pool's `pgsess_reset` mode is `PGSESS_RESET_NEVER`; `pgsess_pool_pinned_sessions`
/// stops counting it at once. Pinning a pinned session or a transaction's session checks out
/// another connection. `session` itself is unchanged. Returns NULL with `*err` set on failure.
/// Any thread.
///
/// # Safety
/// `session` NULL or live; `err` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn pgsess_pin(session: *mut pgsess_session, err: *mut *mut pgsess_error) -> *mut pgsess_session {
    call(err, || Ok(give::<pgsess_session>(Box::new(arg(session, "session")?.pin()?))))
}

/// Whether the session holds one connection for its life: from `pgsess_pin`, from
/// `pgsess_open` with `pgsess_options_set_pinned`, or a transaction's (`pgsess_tx_session`).
/// False for NULL. Any thread.
///
/// # Safety
/// `session` NULL or live.
#[no_mangle]
pub unsafe extern "C" fn pgsess_is_pinned(session: *const pgsess_session) -> bool {
    read_arg(session, "session", |v| v.is_pinned())
}

/// Run `sql` with `nparams` text parameters `$1..$n` (`params[i]` NULL is SQL NULL; types are
/// inferred by the server, as `PQexecParams` with no types). One round trip, no named prepared
/// statement (safe behind PgBouncer in transaction mode). With no parameters the string may hold
/// several statements; the last one's result is returned.
///
/// Waits up to the checkout timeout for a pooled connection (`PGSESS_POOL_EXHAUSTED` when all
/// stay held). The returned results hold that connection until `pgsess_results_free`: free them
/// promptly. Returns NULL with `*err` set on failure (the connection is then released at once).
/// Any thread, concurrently with other calls on the same session.
///
/// # Safety
/// `session` NULL or live; `sql` NULL or NUL-terminated; `params` NULL or `nparams` pointers, each
/// NULL or NUL-terminated; `err` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn pgsess_query(
    session: *mut pgsess_session,
    sql: *const c_char,
    nparams: usize,
    params: *const *const c_char,
    err: *mut *mut pgsess_error,
) -> *mut pgsess_results {
    text_statement(session, sql, nparams, params, err, Session::query)
}

/// `pgsess_query` with the columns of the types read faster in binary delivered in binary:
/// bool, bytea, int2, int4, int8, oid, float8, date, timestamptz and uuid (what a binding's
/// typed scan reads through the typed getters), every other column in text. This needs the
/// pool's statement cache (`pgsess_options_set_statement_cache`), which learns a statement's
/// result types from its first run on each connection: that run's columns, and every column
/// without the cache, are text, exactly as `pgsess_query` gives them. Read each column's format
/// with `pgsess_results_column_format`; the typed getters and `pgsess_results_get_text` read
/// both formats alike. Without parameters, a string holding one statement (no `;` but trailing
/// ones, and no `$`) runs on the extended protocol, so it is cached; any other (several
/// statements, or a `;` or `$` in a literal, comment or dollar quote) runs on the simple
/// protocol as in `pgsess_query`, its last result returned, in text. Connection, results, errors and threads as for `pgsess_query`.
///
/// # Safety
/// As for `pgsess_query`.
#[no_mangle]
pub unsafe extern "C" fn pgsess_query_typed(
    session: *mut pgsess_session,
    sql: *const c_char,
    nparams: usize,
    params: *const *const c_char,
    err: *mut *mut pgsess_error,
) -> *mut pgsess_results {
    text_statement(session, sql, nparams, params, err, Session::query_typed)
}

/// A session's statement with text parameters (`Session::query`, `Session::query_typed`).
type TextStatement = fn(&Session, &str, &[Option<&[u8]>]) -> crate::error::Result<Box<crate::results::Results>>;

/// `pgsess_query` and `pgsess_query_typed`: the arguments checked, then `run`.
///
/// # Safety
/// As for `pgsess_query`.
unsafe fn text_statement(
    session: *mut pgsess_session,
    sql: *const c_char,
    nparams: usize,
    params: *const *const c_char,
    err: *mut *mut pgsess_error,
    run: TextStatement,
) -> *mut pgsess_results {
    call(err, || {
        let s = arg(session, "session")?;
        let sql = str_arg(sql, "sql")?;
        let params = params_arg(nparams, params, "params")?;
        Ok(give::<pgsess_results>(run(s, sql, &params)?))
    })
}

/// `pgsess_query` in the shape of libpq's `PQexecParams`: `param_types` (NULL, or one OID per
/// parameter, 0 meaning inferred) declares types; `param_formats` (NULL: all text) marks binary
/// parameters with 1, whose length is `param_lengths[i]` (so bytea may hold zero bytes); text
/// parameters are NUL-terminated UTF-8 and their lengths are ignored; a NULL value is SQL NULL.
/// Always a single statement, on the extended protocol, even without parameters. Results are
/// text (`pgsess_query_binary` takes the same arguments and returns binary results).
///
/// # Safety
/// As for `pgsess_query`; each non-NULL array has `nparams` elements and binary values have
/// `param_lengths[i]` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn pgsess_query_params(
    session: *mut pgsess_session,
    sql: *const c_char,
    nparams: usize,
    param_types: *const u32,
    param_values: *const *const c_char,
    param_lengths: *const i32,
    param_formats: *const i32,
    err: *mut *mut pgsess_error,
) -> *mut pgsess_results {
    call(err, || {
        let s = arg(session, "session")?;
        let sql = str_arg(sql, "sql")?;
        let (types, params) = typed_params_arg(nparams, param_types, param_values, param_lengths, param_formats)?;
        Ok(give::<pgsess_results>(s.query_params(sql, &types, &params)?))
    })
}

/// `pgsess_query_params` with every result column in binary, as `PQexecParams` with
/// `resultFormat = 1`: `pgsess_results_value` and `pgsess_results_value_length` give the
/// server's binary bytes, equal to libpq's `PQgetvalue`/`PQgetlength` on that result, and
/// `pgsess_results_column_format` is 1 for every column. The typed getters decode binary values
/// as they read text ones (`pgsess_results_get_int64` and the others give the same value for
/// both), and `pgsess_results_get_text` renders the server's text for the types whose text does
/// not depend on session settings. Binary results skip the server's text output and the
/// client's parsing: prefer them for rows read through the typed getters. Arguments, ownership
/// and threads as for `pgsess_query_params` (in a transaction, run it on `pgsess_tx_session`).
///
/// # Safety
/// As for `pgsess_query_params`.
#[no_mangle]
pub unsafe extern "C" fn pgsess_query_binary(
    session: *mut pgsess_session,
    sql: *const c_char,
    nparams: usize,
    param_types: *const u32,
    param_values: *const *const c_char,
    param_lengths: *const i32,
    param_formats: *const i32,
    err: *mut *mut pgsess_error,
) -> *mut pgsess_results {
    call(err, || {
        let s = arg(session, "session")?;
        let sql = str_arg(sql, "sql")?;
        let (types, params) = typed_params_arg(nparams, param_types, param_values, param_lengths, param_formats)?;
        Ok(give::<pgsess_results>(s.query_binary(sql, &types, &params)?))
    })
}

/// Run `sql` (parameters as for `pgsess_query`, one statement) and receive its rows in chunks of
/// at most `chunk_rows` (at least 1) with `pgsess_stream_next`: memory stays bounded by one chunk
/// however large the result. The stream holds its pooled connection until `pgsess_stream_free`
/// (and each chunk's results until they are freed). On a pinned session, or a transaction's, the
/// stream uses the session's one connection: until it has been read to the end or freed, any
/// other statement there (a commit too) fails with `PGSESS_INTERFACE_ERROR`, as libpq refuses a
/// query while another is in progress. Returns NULL with `*err` set on failure,
/// including a statement error found in the first chunk.
///
/// # Safety
/// As for `pgsess_query`.
#[no_mangle]
pub unsafe extern "C" fn pgsess_query_stream(
    session: *mut pgsess_session,
    sql: *const c_char,
    nparams: usize,
    params: *const *const c_char,
    chunk_rows: u32,
    err: *mut *mut pgsess_error,
) -> *mut pgsess_stream {
    stream_statement(session, sql, nparams, params, chunk_rows, err, Session::query_stream)
}

/// A session's stream with text parameters (`Session::query_stream`, `query_stream_typed`).
type StreamStatement = fn(&Session, &str, &[Option<&[u8]>], u32) -> crate::error::Result<crate::session::RowStream>;

/// `pgsess_query_stream` and `pgsess_query_stream_typed`: the arguments checked, then `open`.
///
/// # Safety
/// As for `pgsess_query`.
unsafe fn stream_statement(
    session: *mut pgsess_session,
    sql: *const c_char,
    nparams: usize,
    params: *const *const c_char,
    chunk_rows: u32,
    err: *mut *mut pgsess_error,
    open: StreamStatement,
) -> *mut pgsess_stream {
    call(err, || {
        let s = arg(session, "session")?;
        let sql = str_arg(sql, "sql")?;
        let params = params_arg(nparams, params, "params")?;
        Ok(give::<pgsess_stream>(Box::new(open(s, sql, &params, chunk_rows)?)))
    })
}

/// `pgsess_query_stream` as `pgsess_query_typed` runs a statement: once the pool's statement
/// cache knows the statement's result types (from its first run on a connection), the columns
/// of the types that decode faster than they parse (bool, bytea, int2/4/8, oid, float8, date,
/// timestamptz, uuid) arrive in binary, the others in text; `pgsess_results_column_format` of
/// each chunk says which, and the typed getters read both. Without a statement cache it is
/// `pgsess_query_stream`. Arguments, ownership and threads as for `pgsess_query_stream`.
///
/// # Safety
/// As for `pgsess_query`.
#[no_mangle]
pub unsafe extern "C" fn pgsess_query_stream_typed(
    session: *mut pgsess_session,
    sql: *const c_char,
    nparams: usize,
    params: *const *const c_char,
    chunk_rows: u32,
    err: *mut *mut pgsess_error,
) -> *mut pgsess_stream {
    stream_statement(session, sql, nparams, params, chunk_rows, err, Session::query_stream_typed)
}

/// Call a set-returning or scalar function: `SELECT * FROM name($1, ...)`. `name` may be
/// schema-qualified (`schema.function`); each dot-separated part is quoted as an identifier,
/// never spliced into SQL (so it is case-sensitive: `lower`, not `LOWER`). Arguments and results
/// as for `pgsess_query`.
///
/// # Safety
/// As for `pgsess_query`.
#[no_mangle]
pub unsafe extern "C" fn pgsess_callproc(
    session: *mut pgsess_session,
    name: *const c_char,
    nargs: usize,
    args: *const *const c_char,
    err: *mut *mut pgsess_error,
) -> *mut pgsess_results {
    call(err, || {
        let s = arg(session, "session")?;
        let name = str_arg(name, "name")?;
        let args = params_arg(nargs, args, "args")?;
        Ok(give::<pgsess_results>(s.callproc(name, &args)?))
    })
}

/// `pgsess_callproc` with arguments in `pgsess_query_params` form: declared types (NULL, or one
/// OID per argument, 0 meaning inferred) and binary arguments (`param_formats[i]` 1, length
/// `param_lengths[i]`), so a bytea argument travels as its bytes.
///
/// # Safety
/// As for `pgsess_query_params`, with `name` for `sql`.
#[no_mangle]
pub unsafe extern "C" fn pgsess_callproc_params(
    session: *mut pgsess_session,
    name: *const c_char,
    nargs: usize,
    param_types: *const u32,
    param_values: *const *const c_char,
    param_lengths: *const i32,
    param_formats: *const i32,
    err: *mut *mut pgsess_error,
) -> *mut pgsess_results {
    call(err, || {
        let s = arg(session, "session")?;
        let name = str_arg(name, "name")?;
        let (types, args) = typed_params_arg(nargs, param_types, param_values, param_lengths, param_formats)?;
        Ok(give::<pgsess_results>(s.callproc_params(name, &types, &args)?))
    })
}

/// Begin a transaction: checks out one pooled connection (waiting as `pgsess_query` does) and
/// holds it until `pgsess_commit` or `pgsess_rollback`. Returns NULL with `*err` set on failure.
///
/// # Safety
/// `session` NULL or live; `err` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn pgsess_begin(session: *mut pgsess_session, err: *mut *mut pgsess_error) -> *mut pgsess_tx {
    call(err, || {
        let s = arg(session, "session")?;
        Ok(give::<pgsess_tx>(Box::new(s.begin()?)))
    })
}

/// Ask the server to cancel every statement this session is running now (from another thread:
/// `pgsess_query` blocks the thread that called it). Each cancelled statement fails with
/// `PGSESS_QUERY_CANCELED`; a statement that finishes first is unaffected. A server that does
/// not answer the cancel within the cancel grace (`pgsess_options_set_cancel_grace_ms`,
/// default 5 s) gets no longer: the statement fails with `PGSESS_QUERY_CANCELED` at the grace
/// and its connection is closed, also when the cancel request could not be sent. `PGSESS_OK` when
/// every cancel request was sent (including when nothing was running), else
/// `PGSESS_OPERATIONAL_ERROR`; `PGSESS_INTERFACE_ERROR` for NULL. Any thread.
///
/// # Safety
/// `session` NULL or live.
#[no_mangle]
pub unsafe extern "C" fn pgsess_cancel(session: *const pgsess_session) -> Code {
    call(NO_ERR, || {
        arg(session, "session")?.cancel_running()?;
        Ok(Code::PGSESS_OK)
    })
}

/// The backend process id that ran this session's latest statement (with `pool_max_size` 1, the
/// pool's one connection, as in sprockets.clients.postgresql's Session); for a session that created its pool, the
/// first connection's until then; 0 before any, or for NULL.
///
/// # Safety
/// `session` NULL or live.
#[no_mangle]
pub unsafe extern "C" fn pgsess_backend_pid(session: *const pgsess_session) -> i32 {
    read_arg(session, "session", |v| v.backend_pid())
}

/// The pool's id: a hex hash of the normalised URI and pool options with a per-process salt
/// (never reveals the password). Sessions sharing a pool share its id. Owned by the session; NULL
/// for NULL.
///
/// # Safety
/// `session` NULL or live.
#[no_mangle]
pub unsafe extern "C" fn pgsess_pool_id(session: *const pgsess_session) -> *const c_char {
    read_arg(session, "session", |v| v.pool_id_c().as_ptr())
}

/// How many pinned sessions hold a connection of the session's pool now (their connections are
/// also counted in `pgsess_stats.in_use`). 0 for NULL. Any thread.
///
/// # Safety
/// `session` NULL or live.
#[no_mangle]
pub unsafe extern "C" fn pgsess_pool_pinned_sessions(session: *const pgsess_session) -> u64 {
    read_arg(session, "session", |v| v.pinned_sessions())
}

/// How many COPY handles hold a connection of the session's pool now (their connections are
/// also counted in `pgsess_stats.in_use`). 0 for NULL. Any thread.
///
/// # Safety
/// `session` NULL or live.
#[no_mangle]
pub unsafe extern "C" fn pgsess_pool_copies_open(session: *const pgsess_session) -> u64 {
    read_arg(session, "session", |v| v.copies_open())
}

/// Fill `*stats` with the state of the session's pool. `PGSESS_INTERFACE_ERROR` for NULL
/// arguments. Any thread.
///
/// # Safety
/// `session` NULL or live; `stats` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn pgsess_pool_stats(session: *const pgsess_session, stats: *mut PoolStats) -> Code {
    call(NO_ERR, || {
        let s = arg(session, "session")?;
        let out = stats.as_mut().ok_or_else(|| Error::interface("stats is NULL"))?;
        *out = s.pool_stats();
        Ok(Code::PGSESS_OK)
    })
}

/// The client encoding: always `"UTF8"` (static); NULL for NULL.
///
/// # Safety
/// `session` NULL or live.
#[no_mangle]
pub unsafe extern "C" fn pgsess_encoding(session: *const pgsess_session) -> *const c_char {
    read_arg(session, "session", |v| v.encoding().as_ptr())
}

/// Accepts UTF8 under any of PostgreSQL's spellings (`UTF8`, `utf-8`, `unicode`) and changes
/// nothing. Any other encoding is `PGSESS_NOT_SUPPORTED_ERROR`: pgsess returns UTF-8 text, and
/// another client encoding would corrupt it.
///
/// # Safety
/// `session` NULL or live; `encoding` NULL or NUL-terminated; `err` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn pgsess_set_encoding(
    session: *mut pgsess_session,
    encoding: *const c_char,
    err: *mut *mut pgsess_error,
) -> Code {
    call(err, || {
        arg(session, "session")?.set_encoding(str_arg(encoding, "encoding")?)?;
        Ok(Code::PGSESS_OK)
    })
}

/// Whether the session can get a connection and run `SELECT 1` (waiting up to the checkout
/// timeout). False for NULL.
///
/// # Safety
/// `session` NULL or live.
#[no_mangle]
pub unsafe extern "C" fn pgsess_validate(session: *mut pgsess_session) -> bool {
    read_arg(session, "session", |v| v.validate())
}

/// The session's last 50 notices (NOTICE, WARNING, ...), oldest first, each in libpq's form
/// (`"NOTICE:  text\n"`, with `DETAIL:`/`HINT:` lines when present), concatenated. Returns a new
/// string the caller frees with `pgsess_string_free` (empty when there are none); NULL for NULL.
///
/// # Safety
/// `session` NULL or live.
#[no_mangle]
pub unsafe extern "C" fn pgsess_notices(session: *const pgsess_session) -> *mut c_char {
    call(NO_ERR, || Ok(c_string(&arg(session, "session")?.notices()).into_raw()))
}

/// How many notices the session keeps now (the last 50 at most, across all its statements): the
/// range of indexes `pgsess_notice` accepts. 0 for NULL. Any thread.
///
/// # Safety
/// `session` NULL or live.
#[no_mangle]
pub unsafe extern "C" fn pgsess_notice_count(session: *const pgsess_session) -> usize {
    read_arg(session, "session", |v| v.notice_count())
}

/// The session's notice `index` (0 is the oldest kept) whole, in libpq's form: the severity
/// line as the server wrote it (`"NOTICE:  text\n"`, or its translation under the server's
/// `lc_messages`) followed by its `DETAIL:` and `HINT:` lines when present. Returns a new string
/// the caller frees with `pgsess_string_free`; NULL for NULL or an index past the last (other
/// threads' statements may add notices and drop the oldest between calls). Any thread.
///
/// # Safety
/// `session` NULL or live.
#[no_mangle]
pub unsafe extern "C" fn pgsess_notice(session: *const pgsess_session, index: usize) -> *mut c_char {
    call(NO_ERR, || {
        let notice = arg(session, "session")?.notice(index);
        Ok(notice.map_or(std::ptr::null_mut(), |n| c_string(&n).into_raw()))
    })
}

/// How many notices of the session's statements it did not keep: beyond the last 50 it keeps
/// (`pgsess_notice_count`), and beyond those a statement's results keep
/// (`pgsess_results_notices_dropped`), the oldest dropped first. 0 for NULL. Any thread.
///
/// # Safety
/// `session` NULL or live.
#[no_mangle]
pub unsafe extern "C" fn pgsess_notices_dropped(session: *const pgsess_session) -> u64 {
    read_arg(session, "session", |v| v.notices_dropped())
}
