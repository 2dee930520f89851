//! libpq 17's connection keywords (its `PQconninfoOptions`), each with the environment variable
//! libpq falls back to and what pgsess does with it. The parsers (`conninfo.rs`, `uri.rs`) refuse a
//! keyword missing from this table as libpq does; `uri.rs` refuses those pgsess does not support
//! with `PGSESS_NOT_SUPPORTED_ERROR`, naming the keyword and why. The README's keyword table is
//! checked against this one (`tests/conninfo.rs`).

/// What pgsess does with a keyword.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Implemented as libpq does.
    Supported,
    /// Only some values are supported; the others are refused with `PGSESS_NOT_SUPPORTED_ERROR`
    /// (the text says which).
    Partly(&'static str),
    /// Accepted and has no effect, as in libpq (the text says why).
    Ignored(&'static str),
    /// Any value is refused with `PGSESS_NOT_SUPPORTED_ERROR` (the text says why).
    NotSupported(&'static str),
}

/// One keyword of libpq's list.
#[derive(Clone, Copy, Debug)]
pub struct Keyword {
    pub name: &'static str,
    /// The variable libpq reads when neither the string nor a service sets the keyword.
    pub env: Option<&'static str>,
    /// What the keyword means in libpq, in a few words.
    pub meaning: &'static str,
    pub status: Status,
}

const GSS: &str = "pgsess has no GSSAPI/Kerberos support";

use Status::*;

/// Every keyword of libpq 17, in libpq's order.
pub const KEYWORDS: &[Keyword] = &[
    kw("service", Some("PGSERVICE"), "service name in a service file", Supported),
    kw("user", Some("PGUSER"), "user name", Supported),
    kw("password", Some("PGPASSWORD"), "password", Supported),
    kw("passfile", Some("PGPASSFILE"), "password file (default ~/.pgpass)", Supported),
    kw("require_auth", Some("PGREQUIREAUTH"), "authentication methods the server may use", Supported),
    kw("channel_binding", Some("PGCHANNELBINDING"), "SCRAM channel binding: disable, prefer, require", Supported),
    kw("connect_timeout", Some("PGCONNECT_TIMEOUT"), "seconds to wait for a connection", Supported),
    kw("dbname", Some("PGDATABASE"), "database name", Supported),
    kw("host", Some("PGHOST"), "host names or socket directories, comma-separated", Supported),
    kw("hostaddr", Some("PGHOSTADDR"), "numeric IP addresses, comma-separated, instead of a look-up", Supported),
    kw("port", Some("PGPORT"), "ports, comma-separated", Supported),
    kw(
        "client_encoding",
        Some("PGCLIENTENCODING"),
        "client character set",
        Partly("only UTF8 (and its aliases): pgsess exchanges UTF-8 text only"),
    ),
    kw("options", Some("PGOPTIONS"), "command-line options sent to the server", Supported),
    kw("application_name", Some("PGAPPNAME"), "application_name setting", Supported),
    kw("fallback_application_name", None, "application_name when none is set", Supported),
    kw("keepalives", None, "TCP keepalives on (1) or off (0)", Supported),
    kw("keepalives_idle", None, "seconds idle before a keepalive probe", Supported),
    kw("keepalives_interval", None, "seconds between keepalive probes", Supported),
    kw("keepalives_count", None, "probes lost before the connection is dead", Supported),
    kw("tcp_user_timeout", None, "milliseconds unacknowledged data may wait", Supported),
    kw("sslmode", Some("PGSSLMODE"), "whether and how TLS is used", Supported),
    kw(
        "sslnegotiation",
        Some("PGSSLNEGOTIATION"),
        "postgres (SSLRequest first) or direct (TLS at once, PostgreSQL 17)",
        Supported,
    ),
    kw(
        "sslcompression",
        Some("PGSSLCOMPRESSION"),
        "TLS compression",
        Ignored("ignored, as by libpq 17: TLS compression is never used"),
    ),
    kw("sslcert", Some("PGSSLCERT"), "client certificate file", Supported),
    kw("sslkey", Some("PGSSLKEY"), "client private key file", Supported),
    kw(
        "sslcertmode",
        Some("PGSSLCERTMODE"),
        "whether a client certificate is sent: disable, allow, require",
        Supported,
    ),
    kw("sslpassword", None, "password of an encrypted client key", Supported),
    kw("sslrootcert", Some("PGSSLROOTCERT"), "trusted root certificates, or system", Supported),
    kw("sslcrl", Some("PGSSLCRL"), "certificate revocation list file", Supported),
    kw("sslcrldir", Some("PGSSLCRLDIR"), "directory of certificate revocation lists", Supported),
    kw("sslsni", Some("PGSSLSNI"), "send the host name as TLS SNI", Supported),
    kw("requirepeer", Some("PGREQUIREPEER"), "OS user a Unix-socket server must run as", Supported),
    kw(
        "ssl_min_protocol_version",
        Some("PGSSLMINPROTOCOLVERSION"),
        "lowest TLS version: TLSv1, TLSv1.1, TLSv1.2, TLSv1.3",
        Partly("any value is accepted; pgsess never offers a version below TLSv1.2 (rustls)"),
    ),
    kw(
        "ssl_max_protocol_version",
        Some("PGSSLMAXPROTOCOLVERSION"),
        "highest TLS version",
        Partly("TLSv1.2 and TLSv1.3; TLSv1 and TLSv1.1 are refused: rustls implements neither"),
    ),
    kw(
        "gssencmode",
        Some("PGGSSENCMODE"),
        "GSSAPI encryption: disable, prefer, require",
        Partly(
            "disable and prefer (GSSAPI encryption is never used); require is refused: pgsess has no GSSAPI support",
        ),
    ),
    kw("krbsrvname", Some("PGKRBSRVNAME"), "Kerberos service name", NotSupported(GSS)),
    kw("gsslib", Some("PGGSSLIB"), "GSS library (Windows)", NotSupported(GSS)),
    kw(
        "gssdelegation",
        Some("PGGSSDELEGATION"),
        "delegate GSS credentials",
        Partly("only 0: pgsess has no GSSAPI support"),
    ),
    kw(
        "replication",
        None,
        "open a replication connection",
        Partly(
            "only false (off, no, 0): a replication connection accepts the replication protocol's commands only, \
             which a pooled session cannot run",
        ),
    ),
    kw(
        "target_session_attrs",
        Some("PGTARGETSESSIONATTRS"),
        "which server to accept: any, read-write, read-only, primary, standby, prefer-standby",
        Supported,
    ),
    kw("load_balance_hosts", Some("PGLOADBALANCEHOSTS"), "disable or random host order", Supported),
];

const fn kw(name: &'static str, env: Option<&'static str>, meaning: &'static str, status: Status) -> Keyword {
    Keyword { name, env, meaning, status }
}

/// The keyword named `name` (exact, case-sensitive as in libpq).
pub fn find(name: &str) -> Option<&'static Keyword> {
    KEYWORDS.iter().find(|k| k.name == name)
}

/// Environment variables libpq reads that are not a keyword's fallback, with what pgsess does.
pub const OTHER_ENV: &[(&str, &str, &str)] = &[
    ("PGSERVICEFILE", "the service file (default ~/.pg_service.conf)", "supported"),
    ("PGSYSCONFDIR", "directory of the system-wide pg_service.conf", "supported"),
    ("PGREQUIRESSL", "deprecated: 1 means sslmode=require when PGSSLMODE is unset", "supported"),
    ("PGDATESTYLE", "DateStyle sent at startup", "supported (sent as libpq sends it)"),
    ("PGTZ", "TimeZone sent at startup", "supported (sent as libpq sends it)"),
    ("PGGEQO", "geqo sent at startup", "supported (sent as libpq sends it)"),
    ("PGLOCALEDIR", "message catalogue directory", "ignored: pgsess's messages are not translated"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_variables_follow_libpq() {
        for (i, k) in KEYWORDS.iter().enumerate() {
            assert!(KEYWORDS[..i].iter().all(|o| o.name != k.name), "{} twice", k.name);
        }
        assert_eq!(KEYWORDS.len(), 41, "libpq 17 has 41 connection keywords");
        assert_eq!(find("hostaddr").and_then(|k| k.env), Some("PGHOSTADDR"));
        assert!(find("Host").is_none());
    }
}
