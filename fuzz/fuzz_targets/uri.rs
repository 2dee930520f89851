//! `pgsess::config::parse_uri` on arbitrary input, with an environment the input also chooses.
//!
//! Properties:
//! - it never panics, whatever the URI and the `PG*` variables;
//! - for a well-formed `postgresql://USER:PASSWORD@REST` whose password holds the marker
//!   `Z9q-secret-Z9q` (USER and the text around the marker percent-encoded, REST arbitrary), neither
//!   an error message nor the parsed configuration's `Debug`/`Display` contains the marker.
//!
//! - the same with the text around the marker written raw, not percent-encoded (only `@` left
//!   out, so the user information still ends before REST): a `?`, `/` or `#` there ends the
//!   authority early and puts the marker into a query string, port or path, and no error message
//!   may quote it even then (a parsed configuration may: the parser cannot know).
//!
//! Input layout: byte 0 picks the mode (even: the whole rest is the URI; odd: the secret mode,
//! with bit 2 set: raw),
//! byte 1 says which `PG*` variables are set, and the rest is split into fields at 0xFF bytes:
//! the URI (or USER, PREFIX, SUFFIX, REST in the secret mode) and then the variables' values.
#![no_main]

use std::path::PathBuf;

use libfuzzer_sys::fuzz_target;
use pgsess::config::{parse_uri, Environment};

const SECRET: &str = "Z9q-secret-Z9q";

/// The variables `parse_uri` reads, in the order the environment byte's bits select them.
const VARS: [&str; 8] =
    ["PGHOST", "PGPORT", "PGUSER", "PGDATABASE", "PGAPPNAME", "PGCONNECT_TIMEOUT", "PGTARGETSESSIONATTRS", "PGSSLMODE"];

struct FakeEnv {
    vars: Vec<(&'static str, String)>,
    /// `PGPASSWORD`, `PGPASSFILE`, `HOME`: fixed, never the marker.
    os_user: Option<String>,
}

impl Environment for FakeEnv {
    fn var(&self, name: &str) -> Option<String> {
        match name {
            "PGPASSWORD" => Some("env-password".to_owned()),
            "PGPASSFILE" => None,
            "HOME" => Some("/nonexistent-home".to_owned()),
            _ => self.vars.iter().find(|(n, _)| *n == name).map(|(_, v)| v.clone()).filter(|v| !v.is_empty()),
        }
    }
    fn os_user(&self) -> Option<String> {
        self.os_user.clone()
    }
    fn default_socket_dir(&self) -> PathBuf {
        PathBuf::from("/var/run/postgresql")
    }
}

/// Every byte but ASCII letters, digits and `-._~` as %XX: the part stays one part of the URI.
fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The text as `parse_uri` may see it once decoded, to tell whether the input itself spells the
/// marker somewhere (then finding it in the output proves nothing).
fn spells_marker(s: &str) -> bool {
    let decoded: Vec<u8> = percent_decode(s.as_bytes());
    let lossy = String::from_utf8_lossy(&decoded);
    s.contains("Z9q") || lossy.contains("Z9q")
}

fn percent_decode(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'%' && i + 2 < s.len() {
            let h = |c: u8| (c as char).to_digit(16);
            if let (Some(a), Some(b)) = (h(s[i + 1]), h(s[i + 2])) {
                out.push((a * 16 + b) as u8);
                i += 3;
                continue;
            }
        }
        out.push(s[i]);
        i += 1;
    }
    out
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let secret_mode = data[0] & 1 == 1;
    let env_bits = data[1];
    let text = String::from_utf8_lossy(&data[2..]);
    let mut fields = text.split('\u{FFFD}');
    let nuri = if secret_mode { 4 } else { 1 };
    let uri_fields: Vec<&str> = (0..nuri).map(|_| fields.next().unwrap_or("")).collect();

    let mut vars = Vec::new();
    for (i, name) in VARS.iter().enumerate() {
        if env_bits & (1 << i) != 0 {
            vars.push((*name, fields.next().unwrap_or("").to_owned()));
        }
    }
    let env = FakeEnv { vars, os_user: (data[0] & 2 == 0).then(|| "osuser".to_owned()) };

    if !secret_mode {
        // Never panics; a result of either kind is fine.
        let _ = parse_uri(uri_fields[0], &env).map(|c| (format!("{c:?}"), c.canonical_key()));
        return;
    }

    let (user, prefix, suffix, rest) = (uri_fields[0], uri_fields[1], uri_fields[2], uri_fields[3]);
    // Parts that may be echoed must not spell the marker themselves.
    if spells_marker(user) || spells_marker(rest) || env.vars.iter().any(|(_, v)| spells_marker(v)) {
        return;
    }
    if data[0] & 4 != 0 {
        let (prefix, suffix) = (prefix.replace('@', ""), suffix.replace('@', ""));
        let uri = format!("postgresql://{}:{prefix}{SECRET}{suffix}@{rest}", encode(user));
        if let Err(err) = parse_uri(&uri, &env) {
            let shown = format!("{err:?} {}", err.message);
            assert!(!shown.contains(SECRET), "the error shows the raw password: {shown:?} for {uri:?}");
        }
        return;
    }
    let uri = format!("postgresql://{}:{}{SECRET}{}@{rest}", encode(user), encode(prefix), encode(suffix));
    match parse_uri(&uri, &env) {
        Err(err) => {
            assert!(
                !err.message.contains(SECRET),
                "the error message shows the password: {:?} for {uri:?}",
                err.message
            );
            let shown = format!("{err:?} {}", err.message);
            assert!(!shown.contains(SECRET), "the error shows the password: {shown:?} for {uri:?}");
        }
        Ok(config) => {
            // Unless the query string sets its own password, the URI's arrives decoded and whole.
            if !String::from_utf8_lossy(&percent_decode(rest.as_bytes())).contains("password") {
                let expected = format!("{prefix}{SECRET}{suffix}");
                assert_eq!(config.password.as_deref(), Some(expected.as_str()), "for {uri:?}");
            }
            let debug = format!("{config:?}");
            assert!(!debug.contains(SECRET), "Debug shows the password: {debug:?} for {uri:?}");
            let display = config.to_string();
            assert!(!display.contains(SECRET), "Display shows the password: {display:?} for {uri:?}");
            for h in &config.hosts {
                assert!(!h.to_string().contains(SECRET), "a host shows the password: {h} for {uri:?}");
            }
        }
    }
});
