//! Where a session's configuration comes from: the `PGSQL_<NAME>` environment variable (or an explicit
//! URL), parsed the way libpq parses connection URIs, completed with libpq's defaults, plus the pool
//! settings. Nothing here does I/O beyond reading the environment, the OS user name and (when the
//! server asks for a password) the password file.
//!
//! Error messages name the part of the URI that is wrong but never echo a value from the authority
//! (user, password, host, port): a password with an unencoded `@` or `/` shifts the other parts, so
//! any of them may hold part of it.
//!
//! This file holds the types and the defaults; the work is in:
//! - `uri.rs`: parsing a connection URI and completing it with `PG*` variables and defaults;
//! - `env.rs`: the environment: `PGSQL_<NAME>`, the process's variables, the OS user;
//! - `passfile.rs`: looking a password up in a libpq password file;
//! - `tls.rs`: the TLS settings (`sslmode`, certificates, channel binding).

mod env;
mod passfile;
mod tls;
mod uri;

use std::path::PathBuf;
use std::time::Duration;

use crate::error::{Error, Result};

pub use env::{env_var_name, uri_from_env, ProcessEnvironment};
pub use passfile::passfile_lookup;
pub use tls::{ChannelBinding, RootCert, SslMode, TlsConfig};
pub use uri::parse_uri;

/// Default wait for a pooled connection, including the time to open one: long enough to ride out a
/// burst, short enough to fail before a typical request deadline. Documented in the header.
pub const DEFAULT_CHECKOUT_TIMEOUT: Duration = Duration::from_millis(5_000);
/// Default bound on one whole connection attempt (socket connect, startup, authentication) to one
/// host, used when the URI has no `connect_timeout`. libpq waits forever; a pool must not.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// TCP keepalive defaults (seconds) when the URI sets none: probe after 60 s idle, every 10 s,
/// give up after 3 unanswered probes.
pub const DEFAULT_KEEPALIVES_IDLE: u32 = 60;
pub const DEFAULT_KEEPALIVES_INTERVAL: u32 = 10;
pub const DEFAULT_KEEPALIVES_COUNT: u32 = 3;
/// Data unacknowledged this long (ms) breaks a TCP connection (libpq's tcp_user_timeout).
pub const DEFAULT_TCP_USER_TIMEOUT_MS: u32 = 60_000;
/// sprockets.clients.postgresql's TornadoSession default.
pub const DEFAULT_POOL_MAX_SIZE: u32 = 25;
/// sprockets.clients.postgresql's default idle TTL.
pub const DEFAULT_POOL_IDLE_TTL: Duration = Duration::from_secs(60);
/// Largest accepted `pool_max_size`: far above any server's max_connections.
pub const MAX_POOL_MAX_SIZE: u32 = 10_000;

/// Where one candidate server listens.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Host {
    Tcp(String),
    /// A Unix-domain socket directory; the socket is `<dir>/.s.PGSQL.<port>`.
    Unix(PathBuf),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct HostSpec {
    pub host: Host,
    pub port: u16,
}

impl std::fmt::Display for HostSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.host {
            Host::Tcp(h) if h.contains(':') => write!(f, "[{h}]:{}", self.port),
            Host::Tcp(h) => write!(f, "{h}:{}", self.port),
            Host::Unix(dir) => write!(f, "{}/.s.PGSQL.{}", dir.display(), self.port),
        }
    }
}

/// libpq's `target_session_attrs`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TargetSessionAttrs {
    Any,
    ReadWrite,
    ReadOnly,
    Primary,
    Standby,
    PreferStandby,
}

impl TargetSessionAttrs {
    fn parse(v: &str) -> Option<TargetSessionAttrs> {
        Some(match v {
            "any" => TargetSessionAttrs::Any,
            "read-write" => TargetSessionAttrs::ReadWrite,
            "read-only" => TargetSessionAttrs::ReadOnly,
            "primary" => TargetSessionAttrs::Primary,
            "standby" => TargetSessionAttrs::Standby,
            "prefer-standby" => TargetSessionAttrs::PreferStandby,
            _ => return None,
        })
    }
}

/// Everything needed to open one connection. `Debug` and `Display` never show the password.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ConnectConfig {
    pub hosts: Vec<HostSpec>,
    pub user: String,
    pub password: Option<String>,
    pub dbname: String,
    pub application_name: Option<String>,
    pub options: Option<String>,
    /// Bound on one whole attempt (connect + startup + authentication) per host.
    pub connect_timeout: Duration,
    pub keepalives: bool,
    pub keepalives_idle: Option<u32>,
    pub keepalives_interval: Option<u32>,
    pub keepalives_count: Option<u32>,
    pub tcp_user_timeout_ms: Option<u32>,
    pub target_session_attrs: TargetSessionAttrs,
    pub load_balance_hosts: bool,
    /// libpq's password file (`passfile=`, PGPASSFILE, or ~/.pgpass), read when no password is
    /// given and the server asks for one.
    pub passfile: Option<PathBuf>,
    /// The socket directory that counts as "localhost" in the password file.
    pub default_socket_dir: PathBuf,
    /// sslmode, certificates and channel binding (ignored for Unix-domain sockets, as in libpq).
    pub tls: TlsConfig,
}

impl std::fmt::Debug for ConnectConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self}")
    }
}

impl std::fmt::Display for ConnectConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hosts: Vec<String> = self.hosts.iter().map(|h| h.to_string()).collect();
        write!(f, "user={} dbname={} hosts={}", self.user, self.dbname, hosts.join(","))
    }
}

impl ConnectConfig {
    /// A canonical, unambiguous text of every setting that changes which connections a pool makes.
    /// Contains the password: it is hashed into the pool id and never shown.
    pub fn canonical_key(&self) -> String {
        let mut s = String::new();
        let mut field = |name: &str, value: &str| {
            s.push_str(name);
            s.push('=');
            s.push_str(&value.len().to_string());
            s.push(':');
            s.push_str(value);
            s.push(';');
        };
        for h in &self.hosts {
            field("host", &h.to_string());
        }
        field("user", &self.user);
        field("password", self.password.as_deref().unwrap_or("\u{0}none"));
        field("dbname", &self.dbname);
        field("application_name", self.application_name.as_deref().unwrap_or(""));
        field("options", self.options.as_deref().unwrap_or(""));
        field("connect_timeout", &self.connect_timeout.as_millis().to_string());
        field(
            "keepalives",
            &format!(
                "{}/{:?}/{:?}/{:?}/{:?}",
                self.keepalives,
                self.keepalives_idle,
                self.keepalives_interval,
                self.keepalives_count,
                self.tcp_user_timeout_ms
            ),
        );
        field("target_session_attrs", &format!("{:?}", self.target_session_attrs));
        field("load_balance_hosts", &self.load_balance_hosts.to_string());
        field("passfile", &self.passfile.as_ref().map(|p| p.display().to_string()).unwrap_or_default());
        let t = &self.tls;
        let path = |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string()).unwrap_or_default();
        field("sslmode", t.sslmode.as_str());
        field(
            "sslrootcert",
            &match &t.root_cert {
                None => String::new(),
                Some(RootCert::System) => "\u{0}system".to_owned(),
                Some(RootCert::File(p)) => p.display().to_string(),
            },
        );
        field("sslcert", &path(&t.cert));
        field("sslkey", &path(&t.key));
        field("sslsni", &t.sni.to_string());
        field("channel_binding", &format!("{:?}", t.channel_binding));
        s
    }

    /// The password for `host`: the URI's (or PGPASSWORD), else the password file's matching
    /// entry, as libpq looks it up.
    pub fn password_for(&self, host: &HostSpec) -> Option<String> {
        self.password.clone().or_else(|| {
            let file = self.passfile.as_ref()?;
            let hostname = match &host.host {
                Host::Tcp(name) => name.clone(),
                Host::Unix(dir) if *dir == self.default_socket_dir => "localhost".to_owned(),
                Host::Unix(dir) => dir.display().to_string(),
            };
            passfile_lookup(file, &hostname, &host.port.to_string(), &self.dbname, &self.user)
        })
    }
}

/// What a pool undoes before a connection goes to its next user (`PoolSettings::reset`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ResetMode {
    /// `DISCARD ALL` only after a use that may have changed session state (the rule is
    /// `conn::state`); a use that changed nothing costs no round trip.
    #[default]
    Dirty,
    /// `DISCARD ALL` after every use (PgBouncer's `server_reset_query` in session mode).
    Always,
    /// Nothing but the rollback of an open transaction: one user's session state (role,
    /// settings, temporary tables, prepared statements, LISTEN, advisory locks) reaches the next.
    Never,
}

/// The largest statement cache a pool may ask for (statements per connection).
pub const MAX_STATEMENT_CACHE: u32 = 65_536;

/// Settings of a pool, fixed when the pool is created. Sessions with different settings on the same
/// URI get different pools.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PoolSettings {
    pub max_size: u32,
    /// Zero disables idle expiry.
    pub idle_ttl: Duration,
    pub checkout_timeout: Duration,
    /// Report (through the log) a connection held by results or a transaction for longer.
    pub leak_threshold: Option<Duration>,
    /// What is undone before a connection goes to its next user.
    pub reset: ResetMode,
    /// Statements each connection keeps prepared (the statement cache); 0 is off.
    pub statement_cache: u32,
}

impl Default for PoolSettings {
    fn default() -> Self {
        PoolSettings {
            max_size: DEFAULT_POOL_MAX_SIZE,
            idle_ttl: DEFAULT_POOL_IDLE_TTL,
            checkout_timeout: DEFAULT_CHECKOUT_TIMEOUT,
            leak_threshold: None,
            reset: ResetMode::Dirty,
            statement_cache: 0,
        }
    }
}

/// What a caller may set before opening a session (the C `pgsess_options`).
#[derive(Clone, Debug, Default)]
pub struct SessionOptions {
    /// When set, used instead of the environment.
    pub db_url: Option<String>,
    pub pool: PoolSettings,
    /// Client-enforced bound on each statement of the session (cancelled on the server after it).
    pub statement_timeout: Option<Duration>,
    /// Open a pinned session (one connection for its life) instead of a pooled one. Not part of
    /// the pool key: pinned and pooled sessions of one URI share a pool.
    pub pinned: bool,
}

impl SessionOptions {
    pub fn set_pool_max_size(&mut self, n: u32) -> Result<()> {
        if n == 0 || n > MAX_POOL_MAX_SIZE {
            return Err(Error::config(format!("pool_max_size must be between 1 and {MAX_POOL_MAX_SIZE}, got {n}")));
        }
        self.pool.max_size = n;
        Ok(())
    }

    pub fn set_checkout_timeout_ms(&mut self, ms: u32) -> Result<()> {
        if ms == 0 {
            return Err(Error::config("checkout_timeout_ms must be at least 1"));
        }
        self.pool.checkout_timeout = Duration::from_millis(ms.into());
        Ok(())
    }

    /// 0 means no statement timeout.
    pub fn set_statement_timeout_ms(&mut self, ms: u32) {
        self.statement_timeout = (ms > 0).then(|| Duration::from_millis(ms.into()));
    }

    /// 0 turns leak reports off.
    pub fn set_leak_threshold_ms(&mut self, ms: u32) {
        self.pool.leak_threshold = (ms > 0).then(|| Duration::from_millis(ms.into()));
    }

    /// Keep up to `capacity` parameterised statements prepared per connection (0 turns the
    /// cache off, the default). At most `MAX_STATEMENT_CACHE`.
    pub fn set_statement_cache(&mut self, capacity: u32) -> Result<()> {
        if capacity > MAX_STATEMENT_CACHE {
            return Err(Error::config(format!(
                "statement cache capacity must be at most {MAX_STATEMENT_CACHE}, got {capacity}"
            )));
        }
        self.pool.statement_cache = capacity;
        Ok(())
    }

    pub fn set_pool_idle_ttl(&mut self, seconds: u32) {
        self.pool.idle_ttl = Duration::from_secs(seconds.into());
    }
}

/// The environment a URI is completed from: libpq's `PG*` variables and the OS user. A trait so
/// tests can supply their own.
pub trait Environment {
    fn var(&self, name: &str) -> Option<String>;
    fn os_user(&self) -> Option<String>;
    fn default_socket_dir(&self) -> PathBuf;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// The environment the tests of every file of `config` complete URIs from: the given variables,
    /// OS user `osuser`, sockets in /var/run/postgresql.
    pub(super) struct FakeEnv(pub(super) HashMap<&'static str, &'static str>);
    impl Environment for FakeEnv {
        fn var(&self, name: &str) -> Option<String> {
            self.0.get(name).map(|s| s.to_string())
        }
        fn os_user(&self) -> Option<String> {
            Some("osuser".into())
        }
        fn default_socket_dir(&self) -> PathBuf {
            PathBuf::from("/var/run/postgresql")
        }
    }
    /// No variables set.
    pub(super) fn env() -> FakeEnv {
        FakeEnv(HashMap::new())
    }

    #[test]
    fn canonical_key_ignores_spelling() {
        let a = parse_uri("postgres://u:p@h/d", &env()).unwrap();
        let b = parse_uri("postgresql://u:p@h:5432/d?", &env()).unwrap();
        assert_eq!(a.canonical_key(), b.canonical_key());
        let c = parse_uri("postgresql://u:q@h/d", &env()).unwrap();
        assert_ne!(a.canonical_key(), c.canonical_key());
        assert!(!format!("{a} {a:?}").contains(":p@"));
    }
}
