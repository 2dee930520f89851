//! Completing a connection string's [`Settings`] into a [`ConnectConfig`], as libpq's
//! `conninfo_add_defaults` and `connectOptions2` do: a service file's entry fills what the string
//! leaves out (`service.rs`), then each keyword's `PG*` variable, then libpq's defaults. Every
//! value is checked here, so a deployment learns of a bad one without connecting
//! (`pgsess_config_check`), and a keyword pgsess does not support is refused with
//! `PGSESS_NOT_SUPPORTED_ERROR`, naming it and why (the reasons are in `keywords.rs`).

use std::path::PathBuf;
use std::time::Duration;

use super::conninfo::{is_uri, parse_conninfo, Settings};
use super::keywords::{self, Status};
use super::service::apply_service;
use super::tls::{tls_config, Secret, SslMode, TlsVersions};
use super::uri::uri_settings;
use super::{
    ConnectConfig, Environment, Host, HostSpec, RequireAuth, TargetSessionAttrs, DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_KEEPALIVES_COUNT, DEFAULT_KEEPALIVES_IDLE, DEFAULT_KEEPALIVES_INTERVAL, DEFAULT_TCP_USER_TIMEOUT_MS,
};
use crate::error::{Error, Result};

/// Read a connection string of either form (a URI, or libpq's `key=value` pairs) into the
/// settings it names, nothing completed.
pub fn parse_settings(s: &str) -> Result<Settings> {
    if is_uri(s) {
        uri_settings(s)
    } else {
        parse_conninfo(s)
    }
}

/// Parse a connection string of either form the way libpq does and complete it with libpq's
/// defaults (a service file's entry, `PG*` variables, the default socket directory, port 5432,
/// the OS user). The name says URI for history: `key=value` strings are accepted too.
pub fn parse_uri(s: &str, env: &dyn Environment) -> Result<ConnectConfig> {
    let settings = parse_settings(s).map_err(|e| redact_query_echo(e, s))?;
    complete(settings, env).map_err(|e| redact_query_echo(e, s))
}

/// A password with an unencoded `/` ends the authority early: the rest of the password lands in
/// the path or the query string (`postgresql://u:pa/ss?x=y@h/db`), and an error about a query
/// parameter would echo it. When the query string holds an `@` (the sign of that mistake) and
/// the error quotes any piece of it, say what to fix without quoting anything
/// (`fuzz/fuzz_targets/uri.rs` checks this).
fn redact_query_echo(e: Error, uri: &str) -> Error {
    if !is_uri(uri) {
        return e;
    }
    let Some((_, query)) = uri.split_once('?') else { return e };
    if !query.contains('@') {
        return e;
    }
    let quotes = query.split(['&', '=']).filter(|piece| piece.len() >= 3).any(|piece| {
        e.message.contains(piece)
            || e.message.contains(&*percent_encoding::percent_decode_str(piece).decode_utf8_lossy())
    });
    if quotes {
        Error {
            message: "the URI's query string is invalid and contains '@': percent-encode '?', '@' and '/' in the \
                          user name and password (%3F, %40, %2F)"
                .to_owned(),
            ..e
        }
    } else {
        e
    }
}

fn parse_u32(key: &str, v: &str) -> Result<u32> {
    v.trim().parse::<u32>().map_err(|_| Error::config(format!("{key} must be a non-negative integer")))
}

fn parse_bool01(key: &str, v: &str) -> Result<bool> {
    match v {
        "0" => Ok(false),
        "1" => Ok(true),
        _ => Err(Error::config(format!("{key} must be 0 or 1"))),
    }
}

/// The values in effect: the string's (or the service's), else the keyword's `PG*` variable.
/// An empty value counts as unset. Each value remembers where it came from, for messages.
struct Values<'a> {
    settings: Settings,
    env: &'a dyn Environment,
}

impl Values<'_> {
    /// The value of `keyword` and the name to use for it in a message (the keyword, or the
    /// variable it came from).
    fn get(&self, keyword: &'static str) -> Option<(String, &'static str)> {
        if let Some(v) = self.settings.get(keyword).filter(|v| !v.is_empty()) {
            return Some((v.to_owned(), keyword));
        }
        let var = keywords::find(keyword).and_then(|k| k.env)?;
        self.env.var(var).filter(|v| !v.is_empty()).map(|v| (v, var))
    }

    fn value(&self, keyword: &'static str) -> Option<String> {
        self.get(keyword).map(|(v, _)| v)
    }
}

/// Refuse a keyword that is set (by the string, a service or its variable) and that pgsess does
/// not support, or supports only with some values.
fn check_support(values: &Values) -> Result<()> {
    let not_supported = |from: &str, keyword: &str, why: &str| {
        let what = if from == keyword { keyword.to_owned() } else { format!("{from} (libpq's {keyword})") };
        Err(Error::not_supported(format!("{what} is not supported by pgsess: {why}")))
    };
    for k in keywords::KEYWORDS {
        let Some((v, from)) = values.get(k.name) else { continue };
        match k.status {
            Status::Supported | Status::Ignored(_) => {}
            Status::NotSupported(why) => return not_supported(from, k.name, why),
            Status::Partly(why) => {
                let ok = match k.name {
                    "client_encoding" => crate::text::is_utf8_alias(&v),
                    "gssencmode" => match v.as_str() {
                        "disable" | "prefer" => true,
                        "require" => false,
                        _ => {
                            return Err(Error::config(format!(
                                "invalid {from} \"{v}\" (expected disable, prefer or require)"
                            )))
                        }
                    },
                    "gssdelegation" => match v.as_str() {
                        "0" => true,
                        "1" => false,
                        _ => return Err(Error::config(format!("invalid {from} (expected 0 or 1)"))),
                    },
                    "replication" => {
                        let v = v.to_ascii_lowercase();
                        match v.as_str() {
                            "false" | "off" | "no" | "0" => true,
                            "true" | "on" | "yes" | "1" | "database" => false,
                            _ => {
                                return Err(Error::config(format!(
                                    "invalid {from} \"{v}\" (expected true, false or database)"
                                )))
                            }
                        }
                    }
                    // Their values are checked where they take effect (`tls_versions`).
                    "ssl_min_protocol_version" | "ssl_max_protocol_version" => true,
                    other => unreachable!("no rule for {other}"),
                };
                if !ok {
                    return not_supported(from, k.name, why);
                }
            }
        }
    }
    Ok(())
}

/// libpq's `ssl_min_protocol_version` and `ssl_max_protocol_version` (default TLSv1.2 to any),
/// as far as rustls implements them (TLS 1.2 and 1.3).
fn tls_versions(values: &Values) -> Result<TlsVersions> {
    let rank = |kw: &'static str| -> Result<Option<(u8, &'static str)>> {
        let Some((v, from)) = values.get(kw) else { return Ok(None) };
        let r = match v.to_ascii_lowercase().as_str() {
            "tlsv1" => 0,
            "tlsv1.1" => 1,
            "tlsv1.2" => 2,
            "tlsv1.3" => 3,
            _ => {
                return Err(Error::config(format!(
                    "invalid {from} \"{v}\" (expected TLSv1, TLSv1.1, TLSv1.2 or TLSv1.3)"
                )))
            }
        };
        Ok(Some((r, from)))
    };
    let min = rank("ssl_min_protocol_version")?;
    let max = rank("ssl_max_protocol_version")?;
    if let (Some((lo, _)), Some((hi, _))) = (min, max) {
        if lo > hi {
            return Err(Error::config(
                "invalid TLS protocol version range: ssl_min_protocol_version is above ssl_max_protocol_version",
            ));
        }
    }
    if let Some((hi, from)) = max {
        if hi < 2 {
            return Err(Error::not_supported(format!(
                "{from} below TLSv1.2 is not supported by pgsess: rustls implements TLS 1.2 and 1.3 only"
            )));
        }
    }
    Ok(match (min.map(|m| m.0), max.map(|m| m.0)) {
        (Some(3), _) => TlsVersions::Only13,
        (_, Some(2)) => TlsVersions::Only12,
        _ => TlsVersions::Both,
    })
}

/// The startup parameters libpq takes from `PGDATESTYLE`, `PGTZ` and `PGGEQO`.
fn env_startup(env: &dyn Environment) -> Vec<(String, String)> {
    [("PGDATESTYLE", "datestyle"), ("PGTZ", "timezone"), ("PGGEQO", "geqo")]
        .iter()
        .filter_map(|(var, name)| env.var(var).map(|v| ((*name).to_owned(), v)))
        .collect()
}

/// Complete parsed settings into a configuration (service file, `PG*` variables, defaults),
/// checking every value.
pub fn complete(mut settings: Settings, env: &dyn Environment) -> Result<ConnectConfig> {
    apply_service(&mut settings, env)?;
    let values = Values { settings, env };
    check_support(&values)?;
    let opt_u32 =
        |kw: &'static str| -> Result<Option<u32>> { values.get(kw).map(|(v, from)| parse_u32(from, &v)).transpose() };

    let keepalives = match values.get("keepalives") {
        Some((v, from)) => parse_bool01(from, &v)?,
        None => true,
    };
    let ka_idle = opt_u32("keepalives_idle")?;
    let ka_interval = opt_u32("keepalives_interval")?;
    let ka_count = opt_u32("keepalives_count")?;
    let tcp_user_timeout = opt_u32("tcp_user_timeout")?;

    let target_session_attrs = match values.get("target_session_attrs") {
        Some((v, from)) => TargetSessionAttrs::parse(&v).ok_or_else(|| {
            Error::config(format!(
                "invalid {from} \"{v}\" (expected any, read-write, read-only, primary, standby or prefer-standby)"
            ))
        })?,
        None => TargetSessionAttrs::Any,
    };
    let load_balance_hosts = match values.get("load_balance_hosts") {
        Some((v, from)) => match v.as_str() {
            "disable" => false,
            "random" => true,
            _ => return Err(Error::config(format!("invalid {from} \"{v}\" (expected disable or random)"))),
        },
        None => false,
    };
    let sslsni = match values.settings.get("sslsni").filter(|v| !v.is_empty()) {
        Some(v) => Some(parse_bool01("sslsni", v)?),
        None => None,
    };
    // PGREQUIRESSL=1 (deprecated) means sslmode=require when neither sets sslmode.
    let sslmode = values.settings.get("sslmode").filter(|v| !v.is_empty()).map(str::to_owned).or_else(|| {
        (env.var("PGSSLMODE").is_none() && env.var("PGREQUIRESSL").is_some_and(|v| v.starts_with('1')))
            .then(|| "require".to_owned())
    });
    let explicit = |kw: &str| values.settings.get(kw).map(str::to_owned);
    let mut tls = tls_config(
        sslmode,
        explicit("sslrootcert"),
        explicit("sslcert"),
        explicit("sslkey"),
        sslsni,
        explicit("channel_binding"),
        env,
    )?;
    tls.versions = tls_versions(&values)?;
    tls.key_password = values.value("sslpassword").map(Secret);
    tls.direct = match values.get("sslnegotiation") {
        None => false,
        Some((v, _)) if v == "postgres" => false,
        // As libpq 17: a weaker sslmode could fall back to plain text when the server does not
        // take direct TLS, so direct needs TLS to be required.
        Some((v, _)) if v == "direct" => match tls.sslmode {
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => true,
            weak => {
                return Err(Error::config(format!(
                    "weak sslmode \"{}\" may not be used with sslnegotiation=direct (use \"require\", \"verify-ca\", \
                     or \"verify-full\")",
                    weak.as_str()
                )))
            }
        },
        Some((v, from)) => return Err(Error::config(format!("invalid {from} \"{v}\" (expected postgres or direct)"))),
    };
    // libpq: sslcrl, else PGSSLCRL, else ~/.postgresql/root.crl (set by tls_config); sslcrldir
    // likewise, without a default.
    let (crl_file, crl_dir) = (values.value("sslcrl"), values.value("sslcrldir"));
    if crl_file.is_some() || crl_dir.is_some() {
        tls.crl_file = crl_file.map(PathBuf::from);
    }
    tls.crl_dir = crl_dir.map(PathBuf::from);
    match values.get("sslcertmode") {
        Some((v, _)) if v == "disable" => {
            tls.cert = None;
            tls.key = None;
        }
        Some((v, _)) if v == "require" => tls.cert_required = true,
        Some((v, _)) if v == "allow" => {}
        Some((v, from)) => {
            return Err(Error::config(format!("invalid {from} \"{v}\" (expected disable, allow or require)")))
        }
        None => {}
    }
    let require_auth = match values.get("require_auth") {
        Some((v, from)) => RequireAuth::parse(&v, from)?,
        None => RequireAuth::default(),
    };

    let names: Option<Vec<String>> = values.value("host").map(|h| h.split(',').map(str::to_owned).collect());
    let addrs: Option<Vec<String>> = values.value("hostaddr").map(|h| h.split(',').map(str::to_owned).collect());
    // As libpq: hostaddr and host, when both are given, pair up one to one.
    let hosts: Vec<String> = match (names, &addrs) {
        (Some(n), Some(a)) if n.len() != a.len() => {
            return Err(Error::config(format!("could not match {} host names to {} hostaddr values", n.len(), a.len())))
        }
        (Some(n), _) => n,
        (None, Some(a)) => vec![String::new(); a.len()],
        (None, None) => vec![String::new()],
    };
    let ports: Vec<String> =
        values.value("port").map(|p| p.split(',').map(str::to_owned).collect()).unwrap_or_default();
    let port_for = |i: usize| -> Result<u16> {
        let raw = match ports.len() {
            0 => "",
            1 => ports[0].as_str(),
            n if n == hosts.len() => ports[i].as_str(),
            _ => return Err(Error::config("the connection string lists a different number of ports than hosts")),
        };
        if raw.is_empty() {
            return Ok(5432);
        }
        match raw.trim().parse::<u16>() {
            Ok(p) if p > 0 => Ok(p),
            _ => Err(Error::config("invalid port: expected a number from 1 to 65535")),
        }
    };
    let mut specs = Vec::with_capacity(hosts.len());
    for (i, h) in hosts.iter().enumerate() {
        let port = port_for(i)?;
        let addr = match addrs.as_ref().map(|a| a[i].trim()).filter(|a| !a.is_empty()) {
            Some(a) => Some(a.parse::<std::net::IpAddr>().map_err(|_| {
                Error::config(format!("invalid hostaddr \"{a}\": expected a numeric IPv4 or IPv6 address"))
            })?),
            None => None,
        };
        let host = if let Some(ip) = addr.filter(|_| h.is_empty() || h.starts_with('/')) {
            Host::Tcp(ip.to_string())
        } else if h.is_empty() {
            Host::Unix(env.default_socket_dir())
        } else if h.starts_with('/') {
            Host::Unix(PathBuf::from(h))
        } else {
            if h.contains(['@', '/', ' ']) {
                return Err(Error::config(
                    "invalid host name (in a URI, percent-encode '@', ':' and '/' in the user name and password as \
                     %40, %3A and %2F)",
                ));
            }
            Host::Tcp(h.clone())
        };
        specs.push(HostSpec { host, port, addr });
    }

    let user = match values.value("user") {
        Some(u) => u,
        None => env
            .os_user()
            .ok_or_else(|| Error::config("no user is given and the OS user name could not be determined"))?,
    };
    // A password may be empty on purpose only when written so; PGPASSWORD="" is unset.
    let password = values.settings.get("password").map(str::to_owned).or_else(|| env.var("PGPASSWORD"));
    let dbname = values.value("dbname").unwrap_or_else(|| user.clone());
    let application_name = values.value("application_name").or_else(|| values.value("fallback_application_name"));
    let connect_timeout = match values.get("connect_timeout") {
        // libpq: zero or absent means no limit; a pool bounds it anyway. Values below 2 s become 2 s.
        Some((v, from)) => match parse_u32(from, &v)? {
            0 => DEFAULT_CONNECT_TIMEOUT,
            s => Duration::from_secs(u64::from(s.max(2))),
        },
        None => DEFAULT_CONNECT_TIMEOUT,
    };
    let passfile = values
        .value("passfile")
        .map(PathBuf::from)
        .or_else(|| env.var("HOME").map(|h| PathBuf::from(h).join(".pgpass")));

    Ok(ConnectConfig {
        hosts: specs,
        user,
        password,
        dbname,
        application_name,
        options: values.value("options"),
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
        require_auth,
        startup_params: env_startup(env),
        password_hook: None,
        requirepeer: values.value("requirepeer"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::{env, FakeEnv};
    use std::collections::HashMap;

    #[test]
    fn every_part_is_percent_decoded() {
        let c = parse_uri("postgresql://us%40er:p%40ss%3Aw%2Frd@db.example.com:6000/my%20db", &env()).unwrap();
        assert_eq!(c.user, "us@er");
        assert_eq!(c.password.as_deref(), Some("p@ss:w/rd"));
        assert_eq!(c.dbname, "my db");
        assert_eq!(c.hosts, vec![HostSpec { host: Host::Tcp("db.example.com".into()), port: 6000, addr: None }]);
    }

    #[test]
    fn socket_dirs_and_query_overrides() {
        let c = parse_uri("postgres://u@%2Fvar%2FRun%2Fpg/db", &env()).unwrap();
        assert_eq!(c.hosts[0].host, Host::Unix("/var/Run/pg".into()));
        assert_eq!(c.hosts[0].port, 5432);
        let c = parse_uri("postgresql:///db?host=%2Ftmp&port=7000&user=x", &env()).unwrap();
        assert_eq!(c.hosts, vec![HostSpec { host: Host::Unix("/tmp".into()), port: 7000, addr: None }]);
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
        assert_eq!(c.hosts[0], HostSpec { host: Host::Unix("/var/run/postgresql".into()), port: 5432, addr: None });
        let e = FakeEnv(HashMap::from([("PGHOST", "h"), ("PGPORT", "7"), ("PGUSER", "pu"), ("PGDATABASE", "pd")]));
        let c = parse_uri("postgresql://", &e).unwrap();
        assert_eq!(c.hosts[0], HostSpec { host: Host::Tcp("h".into()), port: 7, addr: None });
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
            ("postgresql://u:hunter2@h/d?sslcrx=x", "sslcrx"),
            ("postgresql://u:hunter2@h/d?password", "'='"),
            // An unencoded '/' in the password moves the rest of it into the path and query string.
            ("postgresql://u:hun/x?sslmode=hunter2@h/db", "%3F"),
            ("postgresql://u:hun/x?hunter2=1@h/db", "%3F"),
            ("postgresql://u:hun/x?target_session_attrs=ter2x@h/db", "%3F"),
            ("postgresql://u:hun/x?require_auth=ter2x@h/db", "%3F"),
        ];
        for (uri, needle) in cases {
            let e = parse_uri(uri, &env()).unwrap_err();
            assert_eq!(e.code, crate::error::Code::PGSESS_CONFIG_ERROR, "{uri}");
            assert!(e.message.contains(needle), "{uri}: {}", e.message);
            assert!(!e.message.contains("hunter") && !e.message.contains("ter2"), "{uri}: {}", e.message);
        }
    }
}

#[cfg(test)]
mod keyword_tests {
    use super::*;
    use crate::config::tests::{env, FakeEnv};
    use crate::config::{quote, TlsVersions};
    use crate::error::Code;
    use std::collections::HashMap;

    #[test]
    fn hostaddr_pairs_with_host_as_libpq() {
        let c = parse_uri("host=db.example.com,b hostaddr=10.0.0.1,::1 port=1,2", &env()).unwrap();
        assert_eq!(c.hosts[0].host, Host::Tcp("db.example.com".into()));
        assert_eq!(c.hosts[0].addr, Some("10.0.0.1".parse().unwrap()));
        assert_eq!(c.hosts[1].addr, Some("::1".parse().unwrap()));
        assert_eq!(c.hosts[1].port, 2);
        let c = parse_uri("hostaddr=127.0.0.1", &env()).unwrap();
        assert_eq!(
            c.hosts,
            vec![HostSpec { host: Host::Tcp("127.0.0.1".into()), port: 5432, addr: Some([127, 0, 0, 1].into()) }]
        );
        let c = parse_uri("postgresql://u@h/d", &FakeEnv(HashMap::from([("PGHOSTADDR", "192.0.2.7")]))).unwrap();
        assert_eq!(c.hosts[0].addr, Some([192, 0, 2, 7].into()));
        assert!(c.hosts[0].to_string().contains("hostaddr 192.0.2.7"));
        for bad in ["hostaddr=db.example.com", "host=a,b hostaddr=1.2.3.4"] {
            assert_eq!(parse_uri(bad, &env()).unwrap_err().code, Code::PGSESS_CONFIG_ERROR, "{bad}");
        }
    }

    #[test]
    fn every_keyword_is_accepted_or_refused_as_documented() {
        use crate::config::keywords::{Status, KEYWORDS};
        // A value each keyword accepts, for those pgsess supports (at least in part).
        let good = |k: &str| match k {
            "port"
            | "connect_timeout"
            | "keepalives_idle"
            | "keepalives_interval"
            | "keepalives_count"
            | "tcp_user_timeout" => "5",
            "keepalives" | "sslsni" | "sslcompression" | "gssdelegation" => "0",
            "hostaddr" => "127.0.0.1",
            "host" => "localhost",
            "require_auth" => "scram-sha-256",
            "channel_binding" => "prefer",
            "client_encoding" => "UTF8",
            "sslmode" => "require",
            "sslnegotiation" => "postgres",
            "sslcertmode" => "allow",
            "ssl_min_protocol_version" | "ssl_max_protocol_version" => "TLSv1.3",
            "gssencmode" => "disable",
            "replication" => "false",
            "target_session_attrs" => "read-write",
            "load_balance_hosts" => "random",
            "service" => "",
            _ => "x",
        };
        for k in KEYWORDS {
            let s = format!("{}={}", k.name, quote(good(k.name)));
            let r = parse_uri(&s, &env());
            match k.status {
                Status::NotSupported(why) => {
                    let e = r.unwrap_err();
                    assert_eq!(e.code, Code::PGSESS_NOT_SUPPORTED_ERROR, "{s}");
                    assert!(e.message.contains(k.name) && e.message.contains(why), "{s}: {}", e.message);
                }
                _ => assert!(r.is_ok(), "{s}: {r:?}"),
            }
            // The same through the keyword's variable.
            if let (Some(var), Status::NotSupported(_)) = (k.env, k.status) {
                let e = parse_uri("", &FakeEnv(HashMap::from([(var, "x")]))).unwrap_err();
                assert!(e.message.contains(var) && e.message.contains(k.name), "{var}: {}", e.message);
            }
        }
        for (s, code) in [
            ("sslnegotiation=direct", Code::PGSESS_CONFIG_ERROR),
            ("sslnegotiation=direct sslmode=allow", Code::PGSESS_CONFIG_ERROR),
            ("sslnegotiation=maybe", Code::PGSESS_CONFIG_ERROR),
            ("gssencmode=require", Code::PGSESS_NOT_SUPPORTED_ERROR),
            ("gssencmode=allow", Code::PGSESS_CONFIG_ERROR),
            ("client_encoding=LATIN1", Code::PGSESS_NOT_SUPPORTED_ERROR),
            ("replication=database", Code::PGSESS_NOT_SUPPORTED_ERROR),
            ("sslcertmode=always", Code::PGSESS_CONFIG_ERROR),
            ("ssl_max_protocol_version=TLSv1.1", Code::PGSESS_NOT_SUPPORTED_ERROR),
            ("ssl_min_protocol_version=TLSv1.3 ssl_max_protocol_version=TLSv1.2", Code::PGSESS_CONFIG_ERROR),
            ("ssl_min_protocol_version=SSLv3", Code::PGSESS_CONFIG_ERROR),
            ("port=0", Code::PGSESS_CONFIG_ERROR),
            ("sslmode=maybe", Code::PGSESS_CONFIG_ERROR),
            ("target_session_attrs=master", Code::PGSESS_CONFIG_ERROR),
            ("load_balance_hosts=yes", Code::PGSESS_CONFIG_ERROR),
            ("require_auth=md6", Code::PGSESS_CONFIG_ERROR),
        ] {
            assert_eq!(parse_uri(s, &env()).unwrap_err().code, code, "{s}");
        }
        let c = parse_uri("ssl_min_protocol_version=tlsv1.3 sslcertmode=disable sslcert=/c sslkey=/k", &env()).unwrap();
        assert_eq!((c.tls.versions, c.tls.cert.as_deref()), (TlsVersions::Only13, None));
        let e = FakeEnv(HashMap::from([("PGREQUIRESSL", "1"), ("PGTZ", "UTC"), ("PGOPTIONS", "-c x=1")]));
        let c = parse_uri("", &e).unwrap();
        assert_eq!(c.tls.sslmode, crate::config::SslMode::Require);
        assert_eq!(c.startup_params, vec![("timezone".to_owned(), "UTC".to_owned())]);
        assert_eq!(c.options.as_deref(), Some("-c x=1"));
    }
}
