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
//! - `conninfo.rs`: libpq's `key=value` form, and the [`Settings`] both forms are read into;
//! - `uri.rs`: parsing a connection URI into settings;
//! - `keywords.rs`: libpq 17's connection keywords and what pgsess does with each;
//! - `service.rs`: connection service files (`service=`, `PGSERVICE`, `pg_service.conf`);
//! - `check.rs`: checking a configuration without connecting (`pgsess_config_check`);
//! - `complete.rs`: completing settings with the service, `PG*` variables and defaults, and
//!   checking every value;
//! - `env.rs`: the environment: `PGSQL_<NAME>`, the process's variables, the OS user;
//! - `passfile.rs`: looking a password up in a libpq password file;
//! - `password.rs`: the password hook asked for each new connection's password;
//! - `tls.rs`: the TLS settings (`sslmode`, certificates, channel binding);
//! - `auth.rs`: which authentication the client accepts (`require_auth`);
//! - `notice.rs`: the notice hook a pool's connections call with each notice.

mod auth;
mod check;
mod complete;
mod conninfo;
mod env;
pub mod keywords;
mod notice;
mod passfile;
mod password;
mod service;
mod tls;
mod uri;

use std::path::PathBuf;
use std::time::Duration;

use crate::error::{Error, Result};

pub use auth::{AuthMethod, RequireAuth};
pub use check::{check, Checked};
pub use complete::{complete, parse_settings, parse_uri};
pub use conninfo::{quote, Settings};
pub use env::{env_var_name, uri_from_env, user_name_of, ProcessEnvironment};
pub use notice::{NoticeFn, NoticeHook};
pub use passfile::passfile_lookup;
pub use password::{PasswordFn, PasswordHook};
pub use tls::{ChannelBinding, RootCert, Secret, SslMode, TlsConfig, TlsVersions};

/// Default wait for a pooled connection, including the time to open one: long enough to ride out a
/// burst, short enough to fail before a typical request deadline. Documented in the header.
pub const DEFAULT_CHECKOUT_TIMEOUT: Duration = Duration::from_millis(5_000);
/// Default cancel grace (`SessionOptions::cancel_grace`): how long a cancelled statement may
/// wait for the server's answer before it fails and its connection is closed.
pub const DEFAULT_CANCEL_GRACE: Duration = Duration::from_secs(5);
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
/// Default `pool_max_lifetime`: a connection is closed (once idle) after about an hour, so that
/// server-side memory growth and configuration changes reach every connection in time.
pub const DEFAULT_POOL_MAX_LIFETIME: Duration = Duration::from_secs(3600);
/// Default `pool_health_check`: an idle connection unused for longer gets a round trip before
/// it is handed out (a network that drops packets silently is not visible on the socket).
pub const DEFAULT_POOL_HEALTH_CHECK: Duration = Duration::from_secs(30);
/// Default `max_result_bytes`: the DataRow bytes one statement's result (or one stream chunk)
/// may take, 1 GiB, the most one PostgreSQL value may hold. Generous: it is there so a server
/// cannot make the process allocate without end, not to bound ordinary results.
pub const DEFAULT_MAX_RESULT_BYTES: u64 = 1 << 30;

/// Where one candidate server listens.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Host {
    Tcp(String),
    /// A Unix-domain socket directory; the socket is `<dir>/.s.PGSQL.<port>`.
    Unix(PathBuf),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct HostSpec {
    /// The server's name: what is looked up, unless `addr` is set; what TLS checks the
    /// certificate against and the password file is searched for in any case.
    pub host: Host,
    pub port: u16,
    /// libpq's `hostaddr`: the address to connect to instead of looking `host` up (then `host`
    /// is `Host::Tcp`, holding the host name or, when none was given, this address).
    pub addr: Option<std::net::IpAddr>,
}

impl HostSpec {
    /// A TCP host looked up by name.
    pub fn tcp(name: &str, port: u16) -> HostSpec {
        HostSpec { host: Host::Tcp(name.to_owned()), port, addr: None }
    }
}

impl std::fmt::Display for HostSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.host {
            Host::Tcp(h) if h.contains(':') => write!(f, "[{h}]:{}", self.port)?,
            Host::Tcp(h) => write!(f, "{h}:{}", self.port)?,
            Host::Unix(dir) => write!(f, "{}/.s.PGSQL.{}", dir.display(), self.port)?,
        }
        match self.addr {
            Some(a) if self.host != Host::Tcp(a.to_string()) => write!(f, " (hostaddr {a})"),
            _ => Ok(()),
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
    /// Which authentication methods the server may use (libpq's `require_auth`, else
    /// `PGREQUIREAUTH`); unset allows all, as in libpq. Naming a method also lifts pgsess's own
    /// refusal of it on a plain-text TCP connection (see `conn::connect`).
    pub require_auth: RequireAuth,
    /// Server settings sent in the startup packet from libpq's `PGDATESTYLE`, `PGTZ` and
    /// `PGGEQO` (`datestyle`, `timezone`, `geqo`).
    pub startup_params: Vec<(String, String)>,
    /// Asked for the password of each new connection before the string's, `PGPASSWORD` or the
    /// password file (`SessionOptions::set_password_hook`). Part of the key by its identity.
    pub password_hook: Option<PasswordHook>,
    /// libpq's `requirepeer`: the OS user a server reached over a Unix-domain socket must run as.
    pub requirepeer: Option<String>,
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
        field("require_auth", &self.require_auth.to_string());
        field("tls_versions", &format!("{:?}", t.versions));
        field("sslcrl", &path(&t.crl_file));
        field("sslcrldir", &path(&t.crl_dir));
        field("sslcertmode_require", &t.cert_required.to_string());
        field("sslnegotiation", if t.direct { "direct" } else { "postgres" });
        field("sslpassword", t.key_password.as_ref().map(|p| p.0.as_str()).unwrap_or("\u{0}none"));
        for (name, value) in &self.startup_params {
            field(name, value);
        }
        field("requirepeer", self.requirepeer.as_deref().unwrap_or(""));
        field("password_hook", &format!("{:?}", self.password_hook.as_ref().map(PasswordHook::identity)));
        s
    }

    /// The password for a new connection to `host`: the password hook's when there is one and
    /// it gives one, else `password_for`'s. An error of the hook fails the attempt.
    pub fn password_to_connect(&self, host: &HostSpec) -> Result<Option<String>> {
        if let Some(hook) = &self.password_hook {
            if let Some(p) = hook.call(host, &self.user)? {
                return Ok(Some(p));
            }
        }
        Ok(self.password_for(host))
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
    /// Called with each notice the pool's connections receive while running a statement (see
    /// `SessionOptions::set_notice_hook`). Part of the key by the hook's identity.
    pub notice_hook: Option<NoticeHook>,
    /// The most DataRow bytes one result (or one stream chunk) may take; 0 is no limit
    /// (`SessionOptions::set_max_result_bytes`).
    pub max_result_bytes: u64,
    /// A connection open this long (within +-10%, chosen per connection) is closed once it is
    /// idle; zero is no limit.
    pub max_lifetime: Duration,
    /// Idle connections the pool keeps open (opened when the pool is created, re-opened in the
    /// background).
    pub min_idle: u32,
    /// An idle connection unused this long is checked with a round trip before it is handed out;
    /// zero turns the round trip off (the socket check at every checkout remains).
    pub health_check: Duration,
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
            notice_hook: None,
            max_result_bytes: DEFAULT_MAX_RESULT_BYTES,
            max_lifetime: DEFAULT_POOL_MAX_LIFETIME,
            min_idle: 0,
            health_check: DEFAULT_POOL_HEALTH_CHECK,
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
    /// How long a cancelled statement of the session may go on waiting for the server (`None`:
    /// `DEFAULT_CANCEL_GRACE`); see `set_cancel_grace_ms`. Not part of the pool key.
    pub cancel_grace: Option<Duration>,
    /// A signal that interrupts the wait for a statement's answer cancels the statement
    /// (`set_cancel_on_signal`). Not part of the pool key.
    pub cancel_on_signal: bool,
    /// Asked for each new connection's password (`set_password_hook`); copied into the
    /// session's `ConnectConfig`, so part of the pool key by its identity.
    pub password_hook: Option<PasswordHook>,
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

    /// Deliver each notice (NOTICE, WARNING, INFO, DEBUG, LOG, as the server sends them to the
    /// client) that a statement of these sessions receives to `hook`, in arrival order, on the
    /// thread that reads the statement's reply (the one that runs it, or the request engine's
    /// worker for an asynchronous request), before the statement's call returns; the notices
    /// are also kept with the statement's results as before. Notices of the pool's own reset
    /// statements are delivered too (on the thread that returns the connection); those that
    /// arrive while a connection starts up or sits idle are not. `None` turns it off. Part of
    /// the pool key: sessions with different hooks use different pools.
    ///
    /// The hook runs while the statement holds its connection: it must not use the session
    /// (or transaction) whose statement it was called for, which would wait for itself.
    pub fn set_notice_hook(&mut self, hook: Option<NoticeHook>) {
        self.pool.notice_hook = hook;
    }

    /// Ask `hook` for the password of each new connection these sessions' pool opens, with the
    /// host and the user, on the thread that opens it; `Ok(None)` from it means the configured
    /// password (the string, `PGPASSWORD`, the password file). For passwords that rotate and
    /// short-lived tokens: the pool stays, and connections opened after a rotation use the new
    /// password. `None` turns it off. Part of the pool key by the hook's identity.
    pub fn set_password_hook(&mut self, hook: Option<PasswordHook>) {
        self.password_hook = hook;
    }

    /// Once a statement of these sessions is cancelled (its statement timeout passed, or
    /// `Session::cancel` or an asynchronous request's cancel asked), it may wait `ms` more for
    /// the server's answer; then it fails with `PGSESS_QUERY_CANCELED` and its connection is
    /// closed. Closing a session waits as long for its outstanding asynchronous requests. 0:
    /// no wait (the cancel request is still sent). Default 5000.
    pub fn set_cancel_grace_ms(&mut self, ms: u32) {
        self.cancel_grace = Some(Duration::from_millis(ms.into()));
    }

    /// Cancel a statement whose wait for the server's answer a signal interrupts (EINTR): for
    /// runtimes that interrupt a blocked thread with a signal (Ruby's Thread#raise and Timeout
    /// signal the thread until it returns) and C programs with alarm()-style timeouts. The
    /// statement then fails with `PGSESS_QUERY_CANCELED` as soon as the server has cancelled it
    /// (within the cancel grace), and the connection stays usable. Off by default: a signal
    /// is otherwise retried over, as libpq does.
    pub fn set_cancel_on_signal(&mut self, on: bool) {
        self.cancel_on_signal = on;
    }

    /// The cancel grace these options give (`set_cancel_grace_ms`).
    pub fn cancel_grace(&self) -> Duration {
        self.cancel_grace.unwrap_or(DEFAULT_CANCEL_GRACE)
    }

    /// Bound each statement's result to `bytes` of row data (the DataRow messages of one
    /// result, or of one chunk of a stream); 0 is no limit; `DEFAULT_MAX_RESULT_BYTES` (1 GiB)
    /// by default. A result that grows past it fails its statement with an operational error
    /// (SQLSTATE 54000) that says so, and its connection is cancelled and discarded: the bound
    /// keeps a server (or a man in the middle) from making the process allocate without end.
    /// Part of the pool key.
    pub fn set_max_result_bytes(&mut self, bytes: u64) {
        self.pool.max_result_bytes = bytes;
    }

    /// Close a connection once it has been open `seconds` (each connection's limit is chosen
    /// within +-10% of it, so that connections opened together do not all close together); it is
    /// closed when it is next idle, never under a statement. 0: no limit. Default 3600. Part of
    /// the pool key.
    pub fn set_pool_max_lifetime(&mut self, seconds: u32) {
        self.pool.max_lifetime = Duration::from_secs(seconds.into());
    }

    /// Keep at least `n` idle connections open: opened when the pool is created (by the session
    /// that creates it) and re-opened in the background when they close. A value above
    /// `pool_max_size` keeps `pool_max_size` open. Default 0. Part of the pool key.
    pub fn set_pool_min_idle(&mut self, n: u32) -> Result<()> {
        if n > MAX_POOL_MAX_SIZE {
            return Err(Error::config(format!("pool_min_idle must be at most {MAX_POOL_MAX_SIZE}, got {n}")));
        }
        self.pool.min_idle = n;
        Ok(())
    }

    /// Check an idle connection unused for `ms` or longer with a round trip (an empty query)
    /// before it is handed out; one that does not answer within a second is closed and another
    /// one used. 0: no round trip. Default 30000. Part of the pool key.
    pub fn set_pool_health_check_ms(&mut self, ms: u32) {
        self.pool.health_check = Duration::from_millis(ms.into());
    }
}

/// Whether `s` is a connection string (a URI, or libpq's `key=value` pairs: it holds `://` or
/// `=`) rather than a session name, as libpq's `recognized_connection_string` tells.
pub fn is_connection_string(s: &str) -> bool {
    conninfo::is_uri(s) || s.contains('=')
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
