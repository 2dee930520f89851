//! Which statements may leave session state behind for the next user of a pooled connection
//! (`ResetMode::Dirty`): the rule, in one place.
//!
//! A connection is marked dirty, and reset with `DISCARD ALL` before its next user, after:
//! - a command tag that says the session changed: `SET`, `RESET`, `PREPARE`, `DECLARE CURSOR`,
//!   `LISTEN`, `LOAD`, `CREATE TABLE`, `CREATE SEQUENCE`, `CREATE VIEW`, `CREATE FUNCTION`,
//!   `CREATE PROCEDURE`, `CREATE TYPE`, `CREATE DOMAIN` (temporary objects are dropped, others
//!   untouched, by the reset);
//! - a ParameterStatus message from the server after start-up: a setting the server reports
//!   changed (`application_name`, `TimeZone`, `DateStyle`, `IntervalStyle`, ...);
//! - SQL text naming a session-level advisory lock function (`pg_advisory_lock`,
//!   `pg_advisory_lock_shared`, `pg_try_advisory_lock`, `pg_try_advisory_lock_shared`),
//!   `set_config`, `dblink_connect`, `pg_temp`, or the word `temp` or `temporary`, compared
//!   without regard to case (so `CREATE TEMP TABLE ... AS` and `SELECT ... INTO TEMP`, whose tag
//!   is `SELECT n`, count).
//!
//! What this cannot see: state changed inside a function or procedure whose call does not name
//! one of the above (a PL/pgSQL function that runs `SET`, calls `set_config(...)` or takes an
//! advisory lock itself). Every tag of a multi-statement string is checked. Use
//! `ResetMode::Always` where such functions run. Transaction-scoped state (`SET LOCAL`,
//! `pg_advisory_xact_lock`) ends with the transaction and needs no reset; an open transaction is
//! always rolled back before a connection is reused, whatever the mode.

/// Whether a command tag says the statement changed session state.
#[inline]
pub fn tag_changes_session(tag: &[u8]) -> bool {
    matches!(
        tag,
        b"SET"
            | b"RESET"
            | b"PREPARE"
            | b"DECLARE CURSOR"
            | b"LISTEN"
            | b"LOAD"
            | b"CREATE TABLE"
            | b"CREATE SEQUENCE"
            | b"CREATE VIEW"
            | b"CREATE FUNCTION"
            | b"CREATE PROCEDURE"
            | b"CREATE TYPE"
            | b"CREATE DOMAIN"
    )
}

/// Whether SQL text names something that may change session state outside a command tag's
/// notice (see the module comment). Every name it looks for holds a `_` or an `m`: text with
/// neither (most statements) is passed over eight bytes at a time.
#[inline]
pub fn sql_may_change_session(sql: &str) -> bool {
    has_underscore_or_m(sql.as_bytes()) && names_session_state(sql.as_bytes())
}

/// Whether `b` holds a `_`, `m` or `M`, tested a word at a time (the last word overlapping the
/// one before it, so no byte is copied).
#[inline]
fn has_underscore_or_m(b: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let has_zero_byte = |v: u64| v.wrapping_sub(ONES) & !v & HIGHS != 0;
    let hit =
        |w: u64| has_zero_byte(w ^ (b'_' as u64 * ONES)) || has_zero_byte((w | (0x20 * ONES)) ^ (b'm' as u64 * ONES));
    let word = |at: usize| u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"));
    if b.len() < 8 {
        return b.iter().any(|&c| c == b'_' || c | 0x20 == b'm');
    }
    let mut at = 0;
    while at + 8 < b.len() {
        if hit(word(at)) {
            return true;
        }
        at += 8;
    }
    hit(word(b.len() - 8))
}

/// The byte-by-byte search behind `sql_may_change_session`.
fn names_session_state(b: &[u8]) -> bool {
    let is_word = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let at = |i: usize, word: &[u8]| b.len() >= i + word.len() && b[i..i + word.len()].eq_ignore_ascii_case(word);
    for i in 0..b.len() {
        match b[i] | 0x20 {
            b't' => {
                let starts_word = i == 0 || !is_word(b[i - 1]);
                for word in [&b"temporary"[..], b"temp"] {
                    if starts_word && at(i, word) && !b.get(i + word.len()).is_some_and(|&c| is_word(c)) {
                        return true;
                    }
                }
            }
            b'a' if at(i, b"advisory_lock") => return true,
            b's' if at(i, b"set_config") => return true,
            b'd' if at(i, b"dblink_connect") => return true,
            b'p' if at(i, b"pg_temp") => return true,
            _ => {}
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags() {
        for tag in ["SET", "RESET", "PREPARE", "DECLARE CURSOR", "LISTEN", "CREATE TABLE", "CREATE SEQUENCE", "LOAD"] {
            assert!(tag_changes_session(tag.as_bytes()), "{tag}");
        }
        for tag in ["SELECT 1", "INSERT 0 1", "BEGIN", "COMMIT", "ROLLBACK", "DISCARD ALL", "UNLISTEN", ""] {
            assert!(!tag_changes_session(tag.as_bytes()), "{tag}");
        }
    }

    #[test]
    fn text() {
        for sql in [
            "SELECT pg_advisory_lock(1)",
            "select PG_TRY_ADVISORY_LOCK_SHARED(2)",
            "SELECT set_config('search_path', 'x', false)",
            "CREATE TEMP TABLE t AS SELECT 1",
            "select 1 into temporary t",
            "CREATE TABLE pg_temp.t (a int)",
            "temp",
        ] {
            assert!(sql_may_change_session(sql), "{sql}");
        }
        for sql in [
            "SELECT $1::int + 1",
            "SELECT temperature, attempt FROM template_data",
            "SELECT pg_advisory_xact_lock(1)",
            "SELECT pg_advisory_unlock_all()",
            "",
        ] {
            assert!(!sql_may_change_session(sql), "{sql}");
        }
        // The word-at-a-time filter finds its bytes at every offset, in the tail too.
        for len in 0..20 {
            for at in 0..len {
                for c in [b'_', b'm', b'M'] {
                    let mut text = vec![b'x'; len];
                    text[at] = c;
                    assert!(has_underscore_or_m(&text), "{len} {at} {c}");
                }
            }
            assert!(!has_underscore_or_m(&vec![b'x'; len]));
        }
        assert!(!has_underscore_or_m(b"SELECT $1::int + 1, '-' || ' '"));
    }
}
