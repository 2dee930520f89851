//! Where a session's configuration comes from: the `PGSQL_<NAME>` environment variable (or an explicit
//! URL), parsed the way libpq parses connection URIs, completed with libpq's defaults, plus the pool
//! settings. Nothing here does I/O beyond reading the environment and the OS user name.
//!
//! Error messages name the part of the URI that is wrong but never echo a value from the authority
//! (user, password, host, port): a password with an unencoded `@` or `/` shifts the other parts, so
//! any of them may hold part of it.

use std::ffi::CStr;
use std::path::PathBuf;
use std::time::Duration;

use percent_encoding::percent_decode_str;

use crate::error::{Error, Result};

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
/// The seed's TornadoSession default.
pub const DEFAULT_POOL_MAX_SIZE: u32 = 25;
/// The seed's default idle TTL.
pub const DEFAULT_POOL_IDLE_TTL: Duration = Duration::from_secs(60);
/// Largest accepted `pool_max_size`: far above any server's max_connections.
pub const MAX_POOL_MAX_SIZE: u32 = 10_000;

/// The name of the environment variable a session name reads: `"PGSQL_" + name`, upper-cased as a
/// whole the way Python's `str.upper()` does (full Unicode case mapping: `straße` -> `PGSQL_STRASSE`),
/// nothing else changed. An empty name reads `PGSQL`.
pub fn env_var_name(dbname: &str) -> String {
    if dbname.is_empty() {
        "PGSQL".to_string()
    } else {
        format!("PGSQL_{dbname}").to_uppercase()
    }
}

/// Read the URI for a session name from the environment.
pub fn uri_from_env(dbname: &str) -> Result<String> {
    let name = env_var_name(dbname);
    match std::env::var_os(&name) {
        None => Err(Error::config(format!(
            "environment variable {name} is not set: it must hold the PostgreSQL URI for session \"{dbname}\" \
             (postgresql://user:password@host:port/dbname), or set the db_url option"
        ))),
        Some(v) => {
            v.into_string().map_err(|_| Error::config(format!("environment variable {name} is not valid UTF-8")))
        }
    }
}

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

/// libpq's `sslmode`: whether TLS is tried, required, and how the server's certificate is checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SslMode {
    /// Plain text only.
    Disable,
    /// Plain text first; TLS only when the server refuses the plain-text attempt.
    Allow,
    /// TLS when the server supports it (libpq's default), else plain text.
    Prefer,
    /// TLS, no certificate check unless a root certificate file exists (then as `VerifyCa`).
    Require,
    /// TLS, the certificate chain checked against the root certificates.
    VerifyCa,
    /// TLS, the chain and the host name checked.
    VerifyFull,
}

impl SslMode {
    fn parse(v: &str) -> Option<SslMode> {
        Some(match v {
            "disable" => SslMode::Disable,
            "allow" => SslMode::Allow,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Allow => "allow",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

/// libpq's `channel_binding` (SCRAM-SHA-256-PLUS with tls-server-end-point).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ChannelBinding {
    Disable,
    /// Used when the connection is TLS and the server offers it (libpq's default).
    Prefer,
    /// Authentication must use channel binding.
    Require,
}

/// Where the trusted root certificates come from (`sslrootcert`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum RootCert {
    /// A PEM file; checked for existence at connect time, as libpq does.
    File(PathBuf),
    /// `sslrootcert=system`: the operating system's trust store.
    System,
}

/// The TLS settings of a connection, with libpq's defaults applied (files under
/// `~/.postgresql/`). Files are read at connect time, so a renewed certificate is picked up.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TlsConfig {
    pub sslmode: SslMode,
    /// `None` when neither `sslrootcert` nor a home directory gives a path.
    pub root_cert: Option<RootCert>,
    /// The client certificate; skipped when the file does not exist (libpq).
    pub cert: Option<PathBuf>,
    /// Its private key; must exist when the certificate does.
    pub key: Option<PathBuf>,
    /// Send the host name as TLS SNI (`sslsni`, default 1).
    pub sni: bool,
    pub channel_binding: ChannelBinding,
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            sslmode: SslMode::Prefer,
            root_cert: None,
            cert: None,
            key: None,
            sni: true,
            channel_binding: ChannelBinding::Prefer,
        }
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

/// Look `host:port:db:user` up in a libpq password file. The file is ignored (as libpq does)
/// unless it is a regular file with no group or world permissions. Fields are separated by
/// `:`, `\` escapes `:` and `\`, and `*` matches anything.
pub fn passfile_lookup(path: &std::path::Path, host: &str, port: &str, db: &str, user: &str) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_file() || meta.permissions().mode() & 0o077 != 0 {
        return None;
    }
    let text = std::fs::read_to_string(path).ok()?;
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let mut fields = Vec::with_capacity(5);
        let mut field = String::new();
        let mut chars = line.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => field.extend(chars.next()),
                ':' if fields.len() < 4 => fields.push(std::mem::take(&mut field)),
                c => field.push(c),
            }
        }
        fields.push(field);
        if fields.len() != 5 {
            continue;
        }
        let matches = |pattern: &str, value: &str| pattern == "*" || pattern == value;
        if matches(&fields[0], host)
            && matches(&fields[1], port)
            && matches(&fields[2], db)
            && matches(&fields[3], user)
        {
            return Some(fields.pop().expect("five fields"));
        }
    }
    None
}

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
}

impl Default for PoolSettings {
    fn default() -> Self {
        PoolSettings {
            max_size: DEFAULT_POOL_MAX_SIZE,
            idle_ttl: DEFAULT_POOL_IDLE_TTL,
            checkout_timeout: DEFAULT_CHECKOUT_TIMEOUT,
            leak_threshold: None,
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

    pub fn set_pool_idle_ttl(&mut self, seconds: u32) {
        self.pool.idle_ttl = Duration::from_secs(seconds.into());
    }
}

/// The environment a URI is completed from: libpq's `PG*` variables and the OS user. A struct so
/// tests can supply their own.
pub trait Environment {
    fn var(&self, name: &str) -> Option<String>;
    fn os_user(&self) -> Option<String>;
    fn default_socket_dir(&self) -> PathBuf;
}

/// The real process environment.
pub struct ProcessEnvironment;

impl Environment for ProcessEnvironment {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.is_empty())
    }

    fn os_user(&self) -> Option<String> {
        os_user_name()
    }

    /// libpq's compiled-in socket directory: Debian builds use /var/run/postgresql, upstream /tmp.
    fn default_socket_dir(&self) -> PathBuf {
        let debian = PathBuf::from("/var/run/postgresql");
        if debian.is_dir() {
            debian
        } else {
            PathBuf::from("/tmp")
        }
    }
}

fn os_user_name() -> Option<String> {
    // SAFETY: getpwuid_r writes into our buffer and `pwd`; we read pw_name only on success.
    unsafe {
        let mut pwd: libc::passwd = std::mem::zeroed();
        let mut buf = vec![0 as libc::c_char; 4096];
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        let rc = libc::getpwuid_r(libc::geteuid(), &mut pwd, buf.as_mut_ptr(), buf.len(), &mut result);
        if rc != 0 || result.is_null() || pwd.pw_name.is_null() {
            return None;
        }
        CStr::from_ptr(pwd.pw_name).to_str().ok().map(str::to_owned)
    }
}

/// The raw parts of a URI before defaults are applied.
#[derive(Default, Debug)]
struct UriParts {
    user: Option<String>,
    password: Option<String>,
    hosts: Vec<String>,
    ports: Vec<String>,
    dbname: Option<String>,
    params: Vec<(String, String)>,
}

fn decode(part: &str, what: &str) -> Result<String> {
    // libpq rejects a '%' not followed by two hex digits, and %00.
    let bytes = part.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let ok = i + 2 < bytes.len() && bytes[i + 1].is_ascii_hexdigit() && bytes[i + 2].is_ascii_hexdigit();
            if !ok {
                return Err(Error::config(format!("invalid percent-encoding in the {what} of the URI")));
            }
            if bytes[i + 1] == b'0' && bytes[i + 2] == b'0' {
                return Err(Error::config(format!("%00 is not allowed in the {what} of the URI")));
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    percent_decode_str(part)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| Error::config(format!("the {what} of the URI is not valid UTF-8 once percent-decoded")))
}

fn split_uri(uri: &str) -> Result<UriParts> {
    let rest =
        ["postgresql://", "postgres://", "pgsql://"].iter().find_map(|p| uri.strip_prefix(p)).ok_or_else(|| {
            let scheme = uri.split_once("://").map(|(s, _)| s).unwrap_or("");
            if scheme.is_empty()
                || scheme.len() > 32
                || !scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
            {
                Error::config("the URI must start with postgresql:// (or postgres://)")
            } else {
                Error::config(format!("unsupported URI scheme \"{scheme}\": use postgresql:// (or postgres://)"))
            }
        })?;
    let mut parts = UriParts::default();

    // Query string first: everything after the first '?'.
    let (before_query, query) = match rest.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (rest, None),
    };
    // Credentials: libpq looks for '@' before the first '/'.
    let cred_end = before_query.find(['@', '/']).filter(|&i| before_query.as_bytes()[i] == b'@');
    let after_creds = match cred_end {
        Some(at) => {
            let creds = &before_query[..at];
            match creds.split_once(':') {
                Some((u, p)) => {
                    parts.user = Some(decode(u, "user name")?);
                    parts.password = Some(decode(p, "password")?);
                }
                None => parts.user = Some(decode(creds, "user name")?),
            }
            &before_query[at + 1..]
        }
        None => before_query,
    };
    let (netloc, path) = match after_creds.find('/') {
        Some(i) => (&after_creds[..i], Some(&after_creds[i + 1..])),
        None => (after_creds, None),
    };
    if !netloc.is_empty() {
        for spec in netloc.split(',') {
            let (host, port) = split_host_port(spec)?;
            parts.hosts.push(decode(host, "host")?);
            parts.ports.push(decode(port.unwrap_or(""), "port")?);
        }
    }
    if let Some(path) = path {
        if !path.is_empty() {
            parts.dbname = Some(decode(path, "database name")?);
        }
    }
    if let Some(query) = query {
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair
                .split_once('=')
                .ok_or_else(|| Error::config("a URI query parameter has no '=' (expected key=value)"))?;
            let key = decode(k, "query parameter name")?;
            let value = decode(v, &format!("value of query parameter \"{key}\""))?;
            parts.params.push((key, value));
        }
    }
    Ok(parts)
}

fn split_host_port(spec: &str) -> Result<(&str, Option<&str>)> {
    if let Some(rest) = spec.strip_prefix('[') {
        let close =
            rest.find(']').ok_or_else(|| Error::config("an IPv6 host in the URI is missing its closing ']'"))?;
        let host = &rest[..close];
        let after = &rest[close + 1..];
        if after.is_empty() {
            return Ok((host, None));
        }
        let port = after
            .strip_prefix(':')
            .ok_or_else(|| Error::config("unexpected characters after an IPv6 host in the URI"))?;
        return Ok((host, Some(port)));
    }
    Ok(match spec.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (spec, None),
    })
}

fn parse_u32(key: &str, v: &str) -> Result<u32> {
    v.trim()
        .parse::<u32>()
        .map_err(|_| Error::config(format!("query parameter \"{key}\" must be a non-negative integer")))
}

fn parse_bool01(key: &str, v: &str) -> Result<bool> {
    match v {
        "0" => Ok(false),
        "1" => Ok(true),
        _ => Err(Error::config(format!("query parameter \"{key}\" must be 0 or 1"))),
    }
}

/// Parse a PostgreSQL connection URI the way libpq does and complete it with libpq's defaults
/// (`PG*` variables, the default socket directory, port 5432, the OS user).
pub fn parse_uri(uri: &str, env: &dyn Environment) -> Result<ConnectConfig> {
    parse_uri_parts(uri, env).map_err(|e| redact_query_echo(e, uri))
}

/// A password with an unencoded `?` ends the authority early: the rest of the password lands in
/// the query string (`postgresql://u:pa?ss@h/db`), and an error about a query parameter would
/// echo it. When the query string holds an `@` (the sign of that mistake) and the error quotes
/// any piece of it, say what to fix without quoting anything (found by fuzzing).
fn redact_query_echo(e: Error, uri: &str) -> Error {
    let Some((_, query)) = uri.split_once('?') else { return e };
    if !query.contains('@') {
        return e;
    }
    let quotes = query
        .split(['&', '='])
        .filter(|piece| piece.len() >= 3)
        .any(|piece| e.message.contains(piece) || e.message.contains(&*percent_decode_str(piece).decode_utf8_lossy()));
    if quotes {
        Error::config(
            "the URI's query string is invalid and contains '@': percent-encode '?', '@' and '/' in the user name \
             and password (%3F, %40, %2F)",
        )
    } else {
        e
    }
}

fn parse_uri_parts(uri: &str, env: &dyn Environment) -> Result<ConnectConfig> {
    let parts = split_uri(uri.trim())?;
    let mut hosts = parts.hosts;
    let mut ports = parts.ports;
    let mut user = parts.user.filter(|u| !u.is_empty());
    let mut password = parts.password;
    let mut dbname = parts.dbname;
    let mut application_name = None;
    let mut fallback_application_name = None;
    let mut options = None;
    let mut connect_timeout = None;
    let mut keepalives = true;
    let (mut ka_idle, mut ka_interval, mut ka_count, mut tcp_user_timeout) = (None, None, None, None);
    let mut tsa = None;
    let mut load_balance = None;
    let mut sslmode = None;
    let (mut sslrootcert, mut sslcert, mut sslkey, mut sslsni, mut channel_binding) = (None, None, None, None, None);
    let mut passfile = None;

    for (key, value) in parts.params {
        match key.as_str() {
            "host" => hosts = value.split(',').map(str::to_owned).collect(),
            "port" => ports = value.split(',').map(str::to_owned).collect(),
            "user" => user = Some(value),
            "password" => password = Some(value),
            "passfile" => passfile = Some(PathBuf::from(value)),
            "dbname" => dbname = Some(value),
            "application_name" => application_name = Some(value),
            "fallback_application_name" => fallback_application_name = Some(value),
            "options" => options = Some(value),
            "connect_timeout" => connect_timeout = Some(parse_u32(&key, &value)?),
            "keepalives" => keepalives = parse_bool01(&key, &value)?,
            "keepalives_idle" => ka_idle = Some(parse_u32(&key, &value)?),
            "keepalives_interval" => ka_interval = Some(parse_u32(&key, &value)?),
            "keepalives_count" => ka_count = Some(parse_u32(&key, &value)?),
            "tcp_user_timeout" => tcp_user_timeout = Some(parse_u32(&key, &value)?),
            "target_session_attrs" => {
                tsa = Some(TargetSessionAttrs::parse(&value).ok_or_else(|| {
                    Error::config(format!(
                        "invalid target_session_attrs \"{value}\" (expected any, read-write, read-only, primary, standby or prefer-standby)"
                    ))
                })?)
            }
            "load_balance_hosts" => {
                load_balance = Some(match value.as_str() {
                    "disable" => false,
                    "random" => true,
                    _ => return Err(Error::config(format!("invalid load_balance_hosts \"{value}\" (expected disable or random)"))),
                })
            }
            "client_encoding" => {
                if !crate::text::is_utf8_alias(&value) {
                    return Err(Error::config(format!(
                        "client_encoding \"{value}\" is not supported: pgsess always uses UTF8"
                    )));
                }
            }
            "sslmode" => sslmode = Some(value),
            "sslrootcert" => sslrootcert = Some(value),
            "sslcert" => sslcert = Some(value),
            "sslkey" => sslkey = Some(value),
            "sslsni" => sslsni = Some(parse_bool01(&key, &value)?),
            "gssencmode" => {
                if value != "disable" && value != "prefer" && value != "allow" {
                    return Err(Error::config(format!("gssencmode \"{value}\" is not supported: pgsess does not support GSSAPI encryption")));
                }
            }
            "channel_binding" => channel_binding = Some(value),
            other => {
                return Err(Error::config(format!(
                    "URI query parameter \"{other}\" is not supported by pgsess (supported: host, port, user, password, dbname, \
                     passfile, application_name, fallback_application_name, options, connect_timeout, keepalives, keepalives_idle, \
                     keepalives_interval, keepalives_count, tcp_user_timeout, target_session_attrs, load_balance_hosts, \
                     client_encoding, sslmode, sslrootcert, sslcert, sslkey, sslsni, gssencmode, channel_binding)"
                )))
            }
        }
    }

    let tls = tls_config(sslmode, sslrootcert, sslcert, sslkey, sslsni, channel_binding, env)?;

    if hosts.is_empty() || (hosts.len() == 1 && hosts[0].is_empty()) {
        hosts =
            env.var("PGHOST").map(|h| h.split(',').map(str::to_owned).collect()).unwrap_or_else(|| vec![String::new()]);
    }
    if ports.iter().all(|p| p.is_empty()) {
        if let Some(p) = env.var("PGPORT") {
            ports = p.split(',').map(str::to_owned).collect();
        }
    }
    let port_for = |i: usize| -> Result<u16> {
        let raw = match ports.len() {
            0 => "",
            1 => ports[0].as_str(),
            n if n == hosts.len() => ports[i].as_str(),
            _ => return Err(Error::config("the URI lists a different number of ports than hosts")),
        };
        if raw.is_empty() {
            return Ok(5432);
        }
        match raw.parse::<u16>() {
            Ok(p) if p > 0 => Ok(p),
            _ => Err(Error::config("invalid port in the URI: expected a number from 1 to 65535")),
        }
    };
    let mut specs = Vec::with_capacity(hosts.len());
    for (i, h) in hosts.iter().enumerate() {
        let port = port_for(i)?;
        let host = if h.is_empty() {
            Host::Unix(env.default_socket_dir())
        } else if h.starts_with('/') {
            Host::Unix(PathBuf::from(h))
        } else {
            if h.contains(['@', '/', ' ']) {
                return Err(Error::config(
                    "invalid host in the URI (percent-encode '@', ':' and '/' in the user name and password as %40, %3A and %2F)",
                ));
            }
            Host::Tcp(h.clone())
        };
        specs.push(HostSpec { host, port });
    }

    let user = match user.or_else(|| env.var("PGUSER")) {
        Some(u) => u,
        None => env
            .os_user()
            .ok_or_else(|| Error::config("the URI names no user and the OS user name could not be determined"))?,
    };
    let password = password.or_else(|| env.var("PGPASSWORD"));
    let dbname = dbname.filter(|d| !d.is_empty()).or_else(|| env.var("PGDATABASE")).unwrap_or_else(|| user.clone());
    let application_name = application_name.or_else(|| env.var("PGAPPNAME")).or(fallback_application_name);
    let connect_timeout =
        match connect_timeout.map(Some).unwrap_or_else(|| env.var("PGCONNECT_TIMEOUT").and_then(|v| v.parse().ok())) {
            // libpq: zero or absent means no limit; a pool bounds it anyway. Values below 2 s become 2 s.
            Some(0) | None => DEFAULT_CONNECT_TIMEOUT,
            Some(s) => Duration::from_secs(u64::from(s.max(2))),
        };
    let target_session_attrs = match tsa {
        Some(t) => t,
        None => match env.var("PGTARGETSESSIONATTRS") {
            Some(v) => TargetSessionAttrs::parse(&v)
                .ok_or_else(|| Error::config(format!("invalid PGTARGETSESSIONATTRS \"{v}\"")))?,
            None => TargetSessionAttrs::Any,
        },
    };
    let load_balance_hosts = load_balance.unwrap_or(false);
    let passfile = passfile
        .or_else(|| env.var("PGPASSFILE").map(PathBuf::from))
        .or_else(|| env.var("HOME").map(|h| PathBuf::from(h).join(".pgpass")));

    Ok(ConnectConfig {
        hosts: specs,
        user,
        password,
        dbname,
        application_name,
        options,
        connect_timeout,
        keepalives,
        // On by default so a dead peer is noticed in about 90 s, not the kernel's 2 hours.
        keepalives_idle: ka_idle.or(Some(DEFAULT_KEEPALIVES_IDLE)),
        keepalives_interval: ka_interval.or(Some(DEFAULT_KEEPALIVES_INTERVAL)),
        keepalives_count: ka_count.or(Some(DEFAULT_KEEPALIVES_COUNT)),
        tcp_user_timeout_ms: tcp_user_timeout.or(Some(DEFAULT_TCP_USER_TIMEOUT_MS)),
        target_session_attrs,
        load_balance_hosts,
        passfile,
        default_socket_dir: env.default_socket_dir(),
        tls,
    })
}

/// The TLS settings from the URI's values, else `PGSSLMODE`, `PGSSLROOTCERT`, `PGSSLCERT`,
/// `PGSSLKEY`, `PGSSLSNI`, `PGCHANNELBINDING`, else libpq's defaults: `prefer`, and
/// `~/.postgresql/{root.crt,postgresql.crt,postgresql.key}`.
fn tls_config(
    sslmode: Option<String>,
    sslrootcert: Option<String>,
    sslcert: Option<String>,
    sslkey: Option<String>,
    sslsni: Option<bool>,
    channel_binding: Option<String>,
    env: &dyn Environment,
) -> Result<TlsConfig> {
    let nonempty = |v: Option<String>, var: &str| v.filter(|v| !v.is_empty()).or_else(|| env.var(var));
    let home = env.var("HOME").map(|h| PathBuf::from(h).join(".postgresql"));
    let root_cert = match nonempty(sslrootcert, "PGSSLROOTCERT") {
        Some(v) if v == "system" => Some(RootCert::System),
        Some(v) => Some(RootCert::File(PathBuf::from(v))),
        None => home.as_ref().map(|h| RootCert::File(h.join("root.crt"))),
    };
    let explicit_mode = match sslmode.filter(|v| !v.is_empty()) {
        Some(v) => Some((v, "sslmode")),
        None => env.var("PGSSLMODE").map(|v| (v, "PGSSLMODE")),
    };
    let sslmode = match explicit_mode {
        Some((v, from)) => {
            let mode = SslMode::parse(&v).ok_or_else(|| {
                Error::config(format!(
                    "invalid {from} \"{v}\" (expected disable, allow, prefer, require, verify-ca or verify-full)"
                ))
            })?;
            // libpq: the system's roots trust certificates anyone can get for a name they control,
            // so only a host name check makes them meaningful.
            if root_cert == Some(RootCert::System) && mode != SslMode::VerifyFull {
                return Err(Error::config(format!(
                    "{from}={v} is not allowed with sslrootcert=system: the system's root certificates need \
                     sslmode=verify-full"
                )));
            }
            mode
        }
        None if root_cert == Some(RootCert::System) => SslMode::VerifyFull,
        None => SslMode::Prefer,
    };
    let cert =
        nonempty(sslcert, "PGSSLCERT").map(PathBuf::from).or_else(|| home.as_ref().map(|h| h.join("postgresql.crt")));
    let key =
        nonempty(sslkey, "PGSSLKEY").map(PathBuf::from).or_else(|| home.as_ref().map(|h| h.join("postgresql.key")));
    let sni = match sslsni {
        Some(v) => v,
        None => match env.var("PGSSLSNI").as_deref() {
            None | Some("1") => true,
            Some("0") => false,
            Some(_) => return Err(Error::config("invalid PGSSLSNI (expected 0 or 1)")),
        },
    };
    let channel_binding = match nonempty(channel_binding, "PGCHANNELBINDING").as_deref() {
        None | Some("prefer") => ChannelBinding::Prefer,
        Some("disable") => ChannelBinding::Disable,
        Some("require") => ChannelBinding::Require,
        Some(other) => {
            return Err(Error::config(format!(
                "invalid channel_binding \"{other}\" (expected disable, prefer or require)"
            )))
        }
    };
    if channel_binding == ChannelBinding::Require && sslmode == SslMode::Disable {
        return Err(Error::config("channel_binding=require needs TLS, but sslmode=disable never uses it"));
    }
    Ok(TlsConfig { sslmode, root_cert, cert, key, sni, channel_binding })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::path::Path;

    struct FakeEnv(HashMap<&'static str, &'static str>);
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
    fn env() -> FakeEnv {
        FakeEnv(HashMap::new())
    }

    #[test]
    fn env_names_follow_python_upper() {
        assert_eq!(env_var_name("foo"), "PGSQL_FOO");
        assert_eq!(env_var_name("straße"), "PGSQL_STRASSE");
        assert_eq!(env_var_name("my-db.x 1"), "PGSQL_MY-DB.X 1");
        assert_eq!(env_var_name(""), "PGSQL");
    }

    #[test]
    fn every_part_is_percent_decoded() {
        let c = parse_uri("postgresql://us%40er:p%40ss%3Aw%2Frd@db.example.com:6000/my%20db", &env()).unwrap();
        assert_eq!(c.user, "us@er");
        assert_eq!(c.password.as_deref(), Some("p@ss:w/rd"));
        assert_eq!(c.dbname, "my db");
        assert_eq!(c.hosts, vec![HostSpec { host: Host::Tcp("db.example.com".into()), port: 6000 }]);
    }

    #[test]
    fn socket_dirs_and_query_overrides() {
        let c = parse_uri("postgres://u@%2Fvar%2FRun%2Fpg/db", &env()).unwrap();
        assert_eq!(c.hosts[0].host, Host::Unix("/var/Run/pg".into()));
        assert_eq!(c.hosts[0].port, 5432);
        let c = parse_uri("postgresql:///db?host=%2Ftmp&port=7000&user=x", &env()).unwrap();
        assert_eq!(c.hosts, vec![HostSpec { host: Host::Unix("/tmp".into()), port: 7000 }]);
        assert_eq!(c.user, "x");
    }

    #[test]
    fn multi_host_and_ipv6() {
        let c = parse_uri("postgresql://a:1,b,[::1]:3/d?target_session_attrs=read-write", &env()).unwrap();
        let ports: Vec<u16> = c.hosts.iter().map(|h| h.port).collect();
        assert_eq!(ports, vec![1, 5432, 3]);
        assert_eq!(c.hosts[2].host, Host::Tcp("::1".into()));
        assert_eq!(c.target_session_attrs, TargetSessionAttrs::ReadWrite);
    }

    #[test]
    fn defaults_follow_libpq() {
        let c = parse_uri("postgresql://", &env()).unwrap();
        assert_eq!(c.user, "osuser");
        assert_eq!(c.dbname, "osuser");
        assert_eq!(c.hosts[0], HostSpec { host: Host::Unix("/var/run/postgresql".into()), port: 5432 });
        let e = FakeEnv(HashMap::from([("PGHOST", "h"), ("PGPORT", "7"), ("PGUSER", "pu"), ("PGDATABASE", "pd")]));
        let c = parse_uri("postgresql://", &e).unwrap();
        assert_eq!(c.hosts[0], HostSpec { host: Host::Tcp("h".into()), port: 7 });
        assert_eq!((c.user.as_str(), c.dbname.as_str()), ("pu", "pd"));
    }

    #[test]
    fn errors_name_the_part_and_hide_secrets() {
        let cases = [
            ("mysql://u:hunter2@h/d", "scheme"),
            ("postgresql://u:hun%zzter2@h/d", "password"),
            ("postgresql://u:hunter2@h:hunter3/d", "port"),
            ("postgresql://u:hunter2/x@h/d", "port"),
            ("postgresql://u:hun@ter2@h/d", "host"),
            ("postgresql://u:hunter2@h/d?sslcrl=x", "sslcrl"),
            ("postgresql://u:hunter2@h/d?password", "'='"),
            // An unencoded '?' in the password moves the rest of it into the query string.
            ("postgresql://u:hun?sslmode=hunter2@h/db", "%3F"),
            ("postgresql://u:hun?hunter2=1@h/db", "%3F"),
            ("postgresql://u:hun?target_session_attrs=ter2x@h/db", "%3F"),
        ];
        for (uri, needle) in cases {
            let e = parse_uri(uri, &env()).unwrap_err();
            assert_eq!(e.code, crate::error::Code::PGSESS_CONFIG_ERROR, "{uri}");
            assert!(e.message.contains(needle), "{uri}: {}", e.message);
            assert!(!e.message.contains("hunter") && !e.message.contains("ter2"), "{uri}: {}", e.message);
        }
    }

    #[test]
    fn password_file_follows_libpq() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("pgsess-pgpass-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("pgpass");
        std::fs::write(&file, "# comment\nother:5432:*:*:no\nh:*:db:u:first\n*:*:*:u:p\\:w\\\\d\n").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(passfile_lookup(&file, "h", "5432", "db", "u").as_deref(), Some("first"));
        assert_eq!(passfile_lookup(&file, "x", "1", "any", "u").as_deref(), Some("p:w\\d"));
        assert_eq!(passfile_lookup(&file, "x", "1", "any", "nobody"), None);
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(passfile_lookup(&file, "h", "5432", "db", "u"), None, "group/world readable: ignored");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn tls_settings_follow_libpq() {
        let c = parse_uri("postgresql://u@h/d", &env()).unwrap();
        assert_eq!(c.tls, TlsConfig::default(), "no HOME: prefer, no files");
        let home = FakeEnv(HashMap::from([("HOME", "/home/me")]));
        let c = parse_uri("postgresql://u@h/d", &home).unwrap();
        assert_eq!(c.tls.sslmode, SslMode::Prefer);
        assert_eq!(c.tls.root_cert, Some(RootCert::File("/home/me/.postgresql/root.crt".into())));
        assert_eq!(c.tls.cert.as_deref(), Some(Path::new("/home/me/.postgresql/postgresql.crt")));
        assert_eq!(c.tls.key.as_deref(), Some(Path::new("/home/me/.postgresql/postgresql.key")));
        let c = parse_uri(
            "postgresql://u@h/d?sslmode=verify-full&sslrootcert=/ca.pem&sslcert=/c.pem&sslkey=/k.pem&sslsni=0\
             &channel_binding=require",
            &home,
        )
        .unwrap();
        assert_eq!(c.tls.sslmode, SslMode::VerifyFull);
        assert_eq!(c.tls.root_cert, Some(RootCert::File("/ca.pem".into())));
        assert_eq!((c.tls.cert.unwrap(), c.tls.key.unwrap()), ("/c.pem".into(), "/k.pem".into()));
        assert!(!c.tls.sni);
        assert_eq!(c.tls.channel_binding, ChannelBinding::Require);
        // The environment fills what the URI leaves out, and loses to it.
        let e = FakeEnv(HashMap::from([
            ("PGSSLMODE", "verify-ca"),
            ("PGSSLROOTCERT", "/env-ca.pem"),
            ("PGSSLCERT", "/env-c.pem"),
            ("PGSSLKEY", "/env-k.pem"),
            ("PGCHANNELBINDING", "disable"),
        ]));
        let c = parse_uri("postgresql://u@h/d", &e).unwrap();
        assert_eq!(c.tls.sslmode, SslMode::VerifyCa);
        assert_eq!(c.tls.root_cert, Some(RootCert::File("/env-ca.pem".into())));
        assert_eq!((c.tls.cert.unwrap(), c.tls.key.unwrap()), ("/env-c.pem".into(), "/env-k.pem".into()));
        assert_eq!(c.tls.channel_binding, ChannelBinding::Disable);
        let c = parse_uri("postgresql://u@h/d?sslmode=disable&sslrootcert=/u.pem", &e).unwrap();
        assert_eq!(c.tls.sslmode, SslMode::Disable);
        assert_eq!(c.tls.root_cert, Some(RootCert::File("/u.pem".into())));
        // sslrootcert=system means verify-full, and refuses anything weaker.
        let c = parse_uri("postgresql://u@h/d?sslrootcert=system", &env()).unwrap();
        assert_eq!((c.tls.sslmode, c.tls.root_cert), (SslMode::VerifyFull, Some(RootCert::System)));
        for bad in [
            "postgresql://u@h/d?sslrootcert=system&sslmode=require",
            "postgresql://u@h/d?sslmode=bogus",
            "postgresql://u@h/d?channel_binding=maybe",
            "postgresql://u@h/d?sslmode=disable&channel_binding=require",
            "postgresql://u@h/d?sslsni=yes",
        ] {
            let e = parse_uri(bad, &env()).unwrap_err();
            assert_eq!(e.code, crate::error::Code::PGSESS_CONFIG_ERROR, "{bad}");
        }
        let e = parse_uri("postgresql://u@h/d", &FakeEnv(HashMap::from([("PGSSLMODE", "nope")]))).unwrap_err();
        assert!(e.message.contains("PGSSLMODE"), "{}", e.message);
        // TLS settings make different pools.
        let a = parse_uri("postgresql://u@h/d?sslmode=require", &env()).unwrap();
        let b = parse_uri("postgresql://u@h/d?sslmode=verify-full", &env()).unwrap();
        assert_ne!(a.canonical_key(), b.canonical_key());
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
