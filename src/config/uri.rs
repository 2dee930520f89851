//! Parsing a PostgreSQL connection URI (`postgresql://user:password@host:port/dbname?key=value`)
//! the way libpq does, and completing it with libpq's `PG*` variables and defaults into a
//! [`ConnectConfig`].

use std::path::PathBuf;
use std::time::Duration;

use percent_encoding::percent_decode_str;

use super::tls::tls_config;
use super::{
    ConnectConfig, Environment, Host, HostSpec, TargetSessionAttrs, DEFAULT_CONNECT_TIMEOUT, DEFAULT_KEEPALIVES_COUNT,
    DEFAULT_KEEPALIVES_IDLE, DEFAULT_KEEPALIVES_INTERVAL, DEFAULT_TCP_USER_TIMEOUT_MS,
};
use crate::error::{Error, Result};

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
/// any piece of it, say what to fix without quoting anything (`fuzz/fuzz_targets/uri.rs` checks this).
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
}
