//! Transactions: `begin_with` (the options sent with BEGIN, in its one round trip), the
//! `Transaction` pinned to one pooled connection, its savepoints, and `run_in_tx`, which runs a
//! function in a transaction and runs it again, in a new one, while it fails in a way the
//! server says is worth retrying (a serialization failure, a deadlock) or before any statement
//! reached the server.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use super::{lock, Binding, Pin, Session};
use crate::conn::TxStatus;
use crate::error::{Code, Error, Result};
use crate::pool::Lease;
use crate::results::Results;

/// The CopyFail message of a COPY still open when its transaction ends.
const COPY_OUTLIVED_TRANSACTION: &str = "the transaction ended before this COPY was finished";

/// How many times `run_in_tx` runs its function when `max_attempts` is 0: enough for 8 threads
/// updating one row under SERIALIZABLE (the longest run of conflicts measured there was 12),
/// and at most about 20 s of waiting in all.
pub const DEFAULT_TX_ATTEMPTS: u32 = 30;
/// `run_in_tx`'s first wait between attempts (at most; see `backoff`).
const BACKOFF_BASE: Duration = Duration::from_millis(2);
/// The longest wait between two attempts of `run_in_tx`.
const BACKOFF_CAP: Duration = Duration::from_secs(1);

/// A transaction's isolation level (`BEGIN ISOLATION LEVEL ...`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Isolation {
    /// Say nothing: the server's `default_transaction_isolation` applies (READ COMMITTED unless
    /// configured otherwise).
    #[default]
    Default,
    ReadCommitted,
    RepeatableRead,
    Serializable,
}

/// How a transaction begins: what `BEGIN` says. The default is a plain `BEGIN`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TxOptions {
    pub isolation: Isolation,
    /// `READ ONLY`; false says nothing (the server's `default_transaction_read_only` applies).
    pub read_only: bool,
    /// `DEFERRABLE`, sent whenever asked. The server accepts it with any other options and it
    /// only has an effect on a `SERIALIZABLE READ ONLY` transaction (which then waits for a
    /// snapshot that cannot fail with a serialization error); false says nothing (the server's
    /// `default_transaction_deferrable` applies).
    pub deferrable: bool,
}

impl TxOptions {
    /// The one statement that begins such a transaction: `BEGIN`, then only the options asked
    /// for, e.g. `BEGIN ISOLATION LEVEL SERIALIZABLE READ ONLY DEFERRABLE`.
    pub fn begin_sql(&self) -> String {
        let mut sql = String::from("BEGIN");
        sql.push_str(match self.isolation {
            Isolation::Default => "",
            Isolation::ReadCommitted => " ISOLATION LEVEL READ COMMITTED",
            Isolation::RepeatableRead => " ISOLATION LEVEL REPEATABLE READ",
            Isolation::Serializable => " ISOLATION LEVEL SERIALIZABLE",
        });
        if self.read_only {
            sql.push_str(" READ ONLY");
        }
        if self.deferrable {
            sql.push_str(" DEFERRABLE");
        }
        sql
    }
}

impl Session {
    /// Begin a transaction on one pooled connection, held until commit or rollback: a plain
    /// `BEGIN` (`begin_with` with the default options).
    pub fn begin(&self) -> Result<Transaction> {
        self.begin_with(TxOptions::default())
    }

    /// Begin a transaction with `options`, sent with the `BEGIN` itself: one statement, one round
    /// trip (no `SET TRANSACTION` after it).
    pub fn begin_with(&self, options: TxOptions) -> Result<Transaction> {
        if self.0.binding == Binding::Transaction {
            return Err(Error::interface(
                "a transaction's session cannot begin another transaction (use SAVEPOINT for a nested one)",
            ));
        }
        let lease = self.shared_lease()?;
        let sql = options.begin_sql();
        let outcome = self.run(&lease, |c| c.simple_query(&sql));
        self.note_statement(outcome.as_ref().ok(), &lease);
        outcome?;
        lease.shared().counters.transactions_open.inc();
        lease.set_holder(|| "a transaction".to_owned());
        Ok(Transaction { lease, session: self.clone(), bound: OnceLock::new(), finished: false, in_runner: false })
    }

    /// Run `f` in a transaction begun with `options` and commit it; if `f` fails the transaction
    /// is rolled back. When `f`, the commit or the begin fails with a retryable error
    /// (`Error::is_retryable`: a serialization failure, a deadlock, a statement that never
    /// reached the server), the whole of it runs again in a new transaction, after a random
    /// wait (full jitter: between 0 and 2 ms, doubling with each attempt up to 1 s), at most
    /// `max_attempts` times in all (0 means `DEFAULT_TX_ATTEMPTS`, 30). Returns what the last
    /// attempt returned; when every attempt failed with a retryable error, the last error says
    /// how many were made. The calling thread sleeps between attempts.
    ///
    /// `f` may run several times, so it should have no effect outside the transaction (or ones
    /// it is fine to repeat), and it must pass on the errors of the statements it runs (a
    /// statement's 40001 is what makes the runner retry).
    pub fn run_in_tx<T>(
        &self,
        options: TxOptions,
        max_attempts: u32,
        mut f: impl FnMut(&Transaction) -> Result<T>,
    ) -> Result<T> {
        let attempts = attempts(max_attempts);
        let mut attempt = 1;
        loop {
            let e = match self.attempt_tx(options, &mut f) {
                Ok(value) => return Ok(value),
                Err(e) => e,
            };
            if !e.is_retryable() {
                return Err(e);
            }
            if attempt >= attempts {
                return Err(if attempts > 1 {
                    e.context(format!("the transaction was given up after {attempt} attempts (max_attempts)"))
                } else {
                    e
                });
            }
            std::thread::sleep(backoff(attempt));
            attempt += 1;
        }
    }

    /// One attempt of `run_in_tx`: begin, `f`, then commit (or roll back when `f` failed).
    fn attempt_tx<T>(&self, options: TxOptions, f: &mut impl FnMut(&Transaction) -> Result<T>) -> Result<T> {
        let mut tx = self.begin_with(options)?;
        tx.in_runner = true;
        match f(&tx) {
            Ok(value) => {
                tx.commit()?;
                Ok(value)
            }
            Err(e) => {
                tx.rollback();
                Err(e)
            }
        }
    }
}

/// How many attempts `run_in_tx` makes for its `max_attempts`.
fn attempts(max_attempts: u32) -> u32 {
    if max_attempts == 0 {
        DEFAULT_TX_ATTEMPTS
    } else {
        max_attempts
    }
}

/// How long `run_in_tx` waits after its attempt `attempt` (1 for the first) failed: a random
/// time up to 2 ms × 2^(attempt-1), at most 1 s ("full jitter": retries of transactions that
/// conflicted with each other spread out instead of colliding again).
fn backoff(attempt: u32) -> Duration {
    use std::hash::BuildHasher;
    let limit = BACKOFF_BASE.saturating_mul(1u32 << attempt.saturating_sub(1).min(20)).min(BACKOFF_CAP);
    // RandomState's keys are random for each thread (and differ for each one made): a fresh
    // one hashes to an unpredictable number, without a generator to keep.
    let random = std::collections::hash_map::RandomState::new().hash_one(attempt);
    Duration::from_nanos(random % (limit.as_nanos() as u64 + 1))
}

/// A savepoint's name quoted as an SQL identifier (`"..."`, a `"` doubled), so any name works
/// and none is spliced into the statement. Empty names and NULs are refused.
pub fn savepoint_ident(name: &str) -> Result<String> {
    if name.is_empty() {
        return Err(Error::interface("a savepoint name cannot be empty"));
    }
    if name.contains('\0') {
        return Err(Error::interface("a savepoint name cannot contain a NUL character"));
    }
    Ok(format!("\"{}\"", name.replace('"', "\"\"")))
}

/// A transaction pinned to one pooled connection. Commit or roll back to end it; dropping it
/// unfinished rolls back at once. Its results share the connection, which returns to the pool
/// when the transaction has ended and every one of its results has been dropped.
pub struct Transaction {
    lease: Arc<Lease>,
    session: Session,
    /// The session bound to this transaction, made on first use (`session`).
    bound: OnceLock<Session>,
    finished: bool,
    /// Made by `run_in_tx`, which ends it: the C API refuses to commit or roll it back.
    in_runner: bool,
}

impl Transaction {
    /// A session bound to this transaction: every session call on it (query, callproc, stream,
    /// batch, asynchronous requests) runs inside the transaction, on its connection. It lives
    /// as long as the transaction: when the transaction ends, its outstanding asynchronous
    /// requests are cancelled (their callbacks run) and any later call on it fails.
    pub fn session(&self) -> &Session {
        self.bound
            .get_or_init(|| self.session.sibling(Binding::Transaction, Some(Pin::transaction(self.lease.clone()))))
    }

    /// Whether `run_in_tx` made this transaction and will end it itself.
    pub fn is_run_by_runner(&self) -> bool {
        self.in_runner
    }

    /// Before the transaction ends: its session's requests finish, and it lets go of the
    /// connection, and so does any COPY still open on it (the commit or rollback aborts it).
    fn release_session(&self) {
        self.session.release_copies_on(&self.lease);
        if let Some(bound) = self.bound.get() {
            bound.release_copies_on(&self.lease);
            bound.close_requests();
            if let Some(here) = bound.here_if_made() {
                lock(&here.pin).take();
            }
        }
    }

    /// `Session::query` inside the transaction (through `session`).
    pub fn query(&self, sql: &str, params: &[Option<&[u8]>]) -> Result<Box<Results>> {
        self.session().query(sql, params)
    }

    /// `Session::query_params` inside the transaction.
    pub fn query_params(&self, sql: &str, types: &[u32], params: &[crate::conn::Param<'_>]) -> Result<Box<Results>> {
        self.session().query_params(sql, types, params)
    }

    /// `SAVEPOINT name` (the name quoted as an identifier, see `savepoint_ident`).
    pub fn savepoint(&self, name: &str) -> Result<()> {
        self.control(&format!("SAVEPOINT {}", savepoint_ident(name)?))
    }

    /// `ROLLBACK TO SAVEPOINT name`: undoes what ran since the savepoint, which stays. In a
    /// failed transaction (a statement failed after the savepoint), this makes it usable again,
    /// and a later commit commits what ran before the savepoint and after this.
    pub fn rollback_to(&self, name: &str) -> Result<()> {
        self.control(&format!("ROLLBACK TO SAVEPOINT {}", savepoint_ident(name)?))
    }

    /// `RELEASE SAVEPOINT name`: forgets the savepoint (and those made after it), keeping what
    /// ran since.
    pub fn release(&self, name: &str) -> Result<()> {
        self.control(&format!("RELEASE SAVEPOINT {}", savepoint_ident(name)?))
    }

    /// One statement of the transaction's own (a savepoint command) on its connection.
    fn control(&self, sql: &str) -> Result<()> {
        let outcome = self.session.run(&self.lease, |c| c.simple_query(sql));
        self.session.note_statement(outcome.as_ref().ok(), &self.lease);
        outcome.map(drop)
    }

    /// Commit. If a statement in the transaction failed (and no rollback to a savepoint undid
    /// it), the server rolls back instead: that is reported as `PGSESS_TRANSACTION_ROLLBACK`,
    /// never as success, with the SQLSTATE of the statement that failed the transaction when it
    /// was a serialization failure (40001) or a deadlock (40P01), so that the error is
    /// retryable; with 40000 (transaction rollback) otherwise. A serialization failure found by
    /// the COMMIT itself is the server's 40001 error.
    pub fn commit(mut self) -> Result<()> {
        self.finished = true;
        self.release_session();
        self.end();
        let outcome = self.session.run(&self.lease, |c| {
            // A COPY still open in the transaction is aborted first: it fails the transaction
            // (so the commit reports the rollback), and its handle then says it has ended
            // instead of counting rows that were never committed.
            c.abort_copy(COPY_OUTLIVED_TRANSACTION);
            // The server's status, from its last ReadyForQuery: a rollback to a savepoint
            // makes a failed transaction good again.
            let failed_before = c.tx_status() == TxStatus::Failed;
            let cause = if failed_before {
                c.transaction_failure().map(|(state, message)| (state.to_owned(), message.to_owned()))
            } else {
                None
            };
            let set = c.simple_query("COMMIT")?;
            if failed_before || set.command_tag == "ROLLBACK" {
                return Err(rolled_back(cause));
            }
            Ok(set)
        });
        self.session.note_statement(outcome.as_ref().ok(), &self.lease);
        outcome.map(|_| ())
    }

    /// Roll back. A failure only means the connection is discarded instead of reused.
    pub fn rollback(mut self) {
        self.finished = true;
        self.release_session();
        self.end();
        self.roll_back();
    }

    /// ROLLBACK, after ending a COPY left open in the transaction.
    fn roll_back(&self) {
        let _ = self.session.run(&self.lease, |c| {
            c.abort_copy(COPY_OUTLIVED_TRANSACTION);
            c.simple_query("ROLLBACK")
        });
    }

    fn end(&self) {
        self.lease.shared().counters.transactions_open.dec();
    }
}

/// The error of a COMMIT the server turned into a rollback. `cause`: the SQLSTATE and message of
/// the error that failed the transaction, when known. A serialization failure or a deadlock keeps
/// its SQLSTATE (the error is then retryable); anything else is 40000.
fn rolled_back(cause: Option<(String, String)>) -> Error {
    let (sqlstate, message) = match cause.as_ref().map(|(s, m)| (s.as_str(), m.as_str())) {
        Some(("40001", m)) => (
            "40001",
            format!(
                "the transaction was rolled back, not committed, because of a serialization failure (40001: {m}); \
                 run it again"
            ),
        ),
        Some(("40P01", m)) => (
            "40P01",
            format!("the transaction was rolled back, not committed, because of a deadlock (40P01: {m}); run it again"),
        ),
        Some((s, m)) => (
            "40000",
            format!("the transaction was rolled back, not committed, because a statement in it failed ({s}: {m})"),
        ),
        None => {
            ("40000", "the transaction was rolled back, not committed, because a statement in it failed".to_owned())
        }
    };
    Error { client_sqlstate: Some(sqlstate), ..Error::new(Code::PGSESS_TRANSACTION_ROLLBACK, message) }
}

impl Drop for Transaction {
    fn drop(&mut self) {
        if !self.finished {
            self.release_session();
            self.end();
            self.roll_back();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn begin_says_only_the_options_asked() {
        let sql = |isolation, read_only, deferrable| TxOptions { isolation, read_only, deferrable }.begin_sql();
        assert_eq!(TxOptions::default().begin_sql(), "BEGIN");
        assert_eq!(sql(Isolation::Default, false, false), "BEGIN");
        assert_eq!(sql(Isolation::ReadCommitted, false, false), "BEGIN ISOLATION LEVEL READ COMMITTED");
        assert_eq!(sql(Isolation::RepeatableRead, true, false), "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
        assert_eq!(sql(Isolation::Serializable, true, true), "BEGIN ISOLATION LEVEL SERIALIZABLE READ ONLY DEFERRABLE");
        assert_eq!(sql(Isolation::Default, false, true), "BEGIN DEFERRABLE");
    }

    #[test]
    fn savepoint_names_are_quoted_identifiers() {
        assert_eq!(savepoint_ident("a").unwrap(), "\"a\"");
        assert_eq!(savepoint_ident("it's \"x\" y").unwrap(), "\"it's \"\"x\"\" y\"");
        assert_eq!(savepoint_ident("a\"; COMMIT; --").unwrap(), "\"a\"\"; COMMIT; --\"");
        assert_eq!(savepoint_ident("").unwrap_err().code, Code::PGSESS_INTERFACE_ERROR);
        assert_eq!(savepoint_ident("a\0b").unwrap_err().code, Code::PGSESS_INTERFACE_ERROR);
    }

    #[test]
    fn zero_attempts_means_the_default() {
        assert_eq!(attempts(0), DEFAULT_TX_ATTEMPTS);
        assert_eq!(attempts(1), 1);
        assert_eq!(attempts(77), 77);
    }

    #[test]
    fn backoff_doubles_from_2ms_to_a_1s_cap_with_full_jitter() {
        for attempt in 1..40 {
            let limit = Duration::from_millis(2 << (attempt - 1).min(20)).min(BACKOFF_CAP);
            for _ in 0..20 {
                assert!(backoff(attempt) <= limit, "attempt {attempt}");
            }
        }
        // Random, not fixed: 50 waits of the 1 s range are not all the same.
        let waits: std::collections::HashSet<Duration> = (0..50).map(|_| backoff(30)).collect();
        assert!(waits.len() > 40, "{waits:?}");
    }

    #[test]
    fn a_rolled_back_commit_keeps_a_retryable_cause() {
        let e = rolled_back(Some(("40001".into(), "could not serialize access".into())));
        assert_eq!((e.code, e.sqlstate()), (Code::PGSESS_TRANSACTION_ROLLBACK, Some("40001")));
        assert!(e.is_retryable() && e.message.contains("serialization failure"), "{e}");
        let e = rolled_back(Some(("40P01".into(), "deadlock detected".into())));
        assert_eq!(e.sqlstate(), Some("40P01"));
        assert!(e.is_retryable() && e.message.contains("deadlock"), "{e}");
        let e = rolled_back(Some(("22012".into(), "division by zero".into())));
        assert_eq!(e.sqlstate(), Some("40000"));
        assert!(!e.is_retryable() && e.message.contains("22012: division by zero"), "{e}");
        let e = rolled_back(None);
        assert_eq!((e.code, e.sqlstate(), e.is_retryable()), (Code::PGSESS_TRANSACTION_ROLLBACK, Some("40000"), false));
    }
}
