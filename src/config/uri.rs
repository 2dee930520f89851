//! Parsing a PostgreSQL connection URI (`postgresql://user:password@host:port/dbname?key=value`)
//! into [`Settings`] the way libpq's `conninfo_uri_parse_options` does: the user information ends
//! at the first `@` before any `/` (so `?` and `:` may appear unencoded in a password), several
//! `host:port` pairs may be given separated by commas (the hosts and the ports become libpq's
//! comma-separated `host` and `port` values), IPv6 addresses go in brackets, every part is
//! percent-decoded, and the query string holds any libpq keyword (`ssl=true` meaning
//! `sslmode=require`, as in libpq).
//!
//! Error messages name the part of the URI that is wrong but never echo a value from the authority
//! (user, password, host, port): a password with an unencoded `/` shifts the other parts, so
//! any of them may hold part of it.

use percent_encoding::percent_decode_str;

use super::conninfo::Settings;
use crate::error::{Error, Result};

/// The URI prefixes libpq recognises, and pgsess's older `pgsql://`.
const PREFIXES: [&str; 3] = ["postgresql://", "postgres://", "pgsql://"];

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

fn store(settings: &mut Settings, keyword: &str, value: String) {
    assert!(settings.set(keyword, value), "{keyword} is one of libpq's keywords");
}

/// Parse a connection URI into the settings it names, as libpq's `PQconninfoParse` does
/// (nothing completed from the environment). Leading and trailing whitespace is ignored.
pub fn uri_settings(uri: &str) -> Result<Settings> {
    let uri = uri.trim();
    let rest = PREFIXES.iter().find_map(|p| uri.strip_prefix(p)).ok_or_else(|| {
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
    let mut settings = Settings::default();

    // Credentials: libpq looks for '@' before the first '/'.
    let mut p = match rest.find(['@', '/']).filter(|&i| rest.as_bytes()[i] == b'@') {
        Some(at) => {
            let creds = &rest[..at];
            let (user, password) = match creds.split_once(':') {
                Some((u, pw)) => (u, Some(pw)),
                None => (creds, None),
            };
            if !user.is_empty() {
                store(&mut settings, "user", decode(user, "user name")?);
            }
            if let Some(pw) = password.filter(|pw| !pw.is_empty()) {
                store(&mut settings, "password", decode(pw, "password")?);
            }
            &rest[at + 1..]
        }
        None => rest,
    };

    // One or more netloc[:port], separated by commas.
    let (mut hosts, mut ports) = (String::new(), String::new());
    let mut term;
    loop {
        let host;
        if let Some(after) = p.strip_prefix('[') {
            let close =
                after.find(']').ok_or_else(|| Error::config("an IPv6 host in the URI is missing its closing ']'"))?;
            if close == 0 {
                return Err(Error::config("an IPv6 host in the URI is empty ('[]')"));
            }
            host = &after[..close];
            p = &after[close + 1..];
            if !p.is_empty() && !p.starts_with([':', '/', '?', ',']) {
                return Err(Error::config("unexpected characters after an IPv6 host in the URI (expected ':' or '/')"));
            }
        } else {
            let end = p.find([':', '/', '?', ',']).unwrap_or(p.len());
            host = &p[..end];
            p = &p[end..];
        }
        hosts.push_str(host);
        term = p.chars().next();
        if term == Some(':') {
            let after = &p[1..];
            let end = after.find(['/', '?', ',']).unwrap_or(after.len());
            ports.push_str(&after[..end]);
            p = &after[end..];
            term = p.chars().next();
        }
        if term != Some(',') {
            break;
        }
        p = &p[1..];
        hosts.push(',');
        ports.push(',');
    }
    if !hosts.is_empty() {
        store(&mut settings, "host", decode(&hosts, "host")?);
    }
    if !ports.is_empty() {
        store(&mut settings, "port", decode(&ports, "port")?);
    }
    if term == Some('/') {
        let after = &p[1..];
        let end = after.find('?').unwrap_or(after.len());
        if end > 0 {
            store(&mut settings, "dbname", decode(&after[..end], "database name")?);
        }
        p = &after[end..];
        term = p.chars().next();
    }
    if term == Some('?') {
        query_params(&p[1..], &mut settings)?;
    }
    Ok(settings)
}

/// The query string: `key=value` pairs separated by `&`, each part percent-decoded.
fn query_params(query: &str, settings: &mut Settings) -> Result<()> {
    let mut previous_was_password = false;
    let mut rest = query;
    while !rest.is_empty() {
        let (pair, next) = rest.split_once('&').unwrap_or((rest, ""));
        rest = next;
        // A parameter right after the password may be a piece of it cut off at an unencoded '&'.
        let name = |raw: &str| {
            if previous_was_password {
                "after password=".to_owned()
            } else if raw.len() <= 64 && raw.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                format!("\"{raw}\"")
            } else {
                "(a name that is not a keyword)".to_owned()
            }
        };
        let (k, v) = pair.split_once('=').ok_or_else(|| {
            Error::config(format!(
                "a URI query parameter {} has no '=' (expected key=value; percent-encode '&' in values as %26)",
                name(pair)
            ))
        })?;
        if v.contains('=') {
            return Err(Error::config(format!(
                "a URI query parameter {} has a second '=' (percent-encode '=' in values as %3D)",
                name(k)
            )));
        }
        let mut key = decode(k, "query parameter name")?;
        let mut value = decode(v, &format!("value of query parameter {}", name(&key)))?;
        if key == "ssl" && value == "true" {
            key = "sslmode".to_owned();
            value = "require".to_owned();
        }
        if key == "requiressl" {
            key = "sslmode".to_owned();
            value = if value.starts_with('1') { "require" } else { "prefer" }.to_owned();
        }
        if !settings.set(&key, value) {
            return Err(Error::config(format!(
                "invalid URI query parameter {}: not one of libpq's connection keywords",
                name(&key)
            )));
        }
        previous_was_password = key == "password";
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(uri: &str) -> Vec<(&'static str, String)> {
        uri_settings(uri).unwrap().iter().map(|(k, v)| (k, v.to_owned())).collect()
    }

    #[test]
    fn parts_become_libpq_keywords() {
        assert_eq!(
            pairs("postgresql://us%40er:p%40ss%3Aw%2Frd@db.example.com:6000/my%20db?sslmode=require"),
            [
                ("user", "us@er".to_owned()),
                ("password", "p@ss:w/rd".to_owned()),
                ("dbname", "my db".to_owned()),
                ("host", "db.example.com".to_owned()),
                ("port", "6000".to_owned()),
                ("sslmode", "require".to_owned()),
            ]
        );
        assert_eq!(
            pairs("postgresql://a:1,b,[::1]:3/d"),
            [("dbname", "d".to_owned()), ("host", "a,b,::1".to_owned()), ("port", "1,,3".to_owned())]
        );
        // As libpq: the user information ends at the first '@' before a '/', '?' included.
        assert_eq!(pairs("postgresql://u:pa?ss@h")[1], ("password", "pa?ss".to_owned()));
        assert_eq!(pairs("postgresql://h?ssl=true"), [("host", "h".to_owned()), ("sslmode", "require".to_owned())]);
        assert!(pairs("postgresql://").is_empty());
        assert!(pairs("postgresql:///?").is_empty());
    }
}
