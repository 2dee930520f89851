//! libpq's two forms of connection string, read into [`Settings`] (keyword and value, nothing
//! completed yet), as libpq's `PQconninfoParse` does:
//! - `key=value` pairs (`conninfo_parse` in libpq's fe-connect.c): whitespace separates pairs and
//!   may surround `=`; a value in single quotes may hold whitespace; `\` escapes the next character
//!   inside or outside quotes; a later setting of a keyword replaces an earlier one;
//! - URIs (`postgresql://...`), in `uri.rs`.
//!
//! Error messages name the keyword or the part, never a value: a password written without quotes
//! around a space (`password=a b`) makes its second half look like a keyword, so a word that
//! follows a password is never quoted either.

use super::keywords;
use crate::error::{Error, Result};

/// The keywords a connection string sets, each with its value, as libpq's `PQconninfoParse`
/// returns them. `Debug` never shows the password.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Settings {
    values: Vec<(&'static str, String)>,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl Settings {
    /// The value set for `keyword`, if any.
    pub fn get(&self, keyword: &str) -> Option<&str> {
        self.values.iter().find(|(k, _)| *k == keyword).map(|(_, v)| v.as_str())
    }

    /// Set `keyword` (a name from libpq's list, which gives the `'static` name), replacing any
    /// value it had. False (and nothing set) when `keyword` is not one of libpq's.
    pub fn set(&mut self, keyword: &str, value: String) -> bool {
        let Some(k) = keywords::find(keyword) else { return false };
        match self.values.iter_mut().find(|(n, _)| *n == k.name) {
            Some(slot) => slot.1 = value,
            None => self.values.push((k.name, value)),
        }
        true
    }

    /// Set `keyword` unless it is set already (how a service file's lines apply).
    pub(super) fn set_default(&mut self, keyword: &'static str, value: String) {
        if self.get(keyword).is_none() {
            self.values.push((keyword, value));
        }
    }

    /// Every keyword set, in libpq's keyword order.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &str)> + '_ {
        keywords::KEYWORDS.iter().filter_map(|k| self.get(k.name).map(|v| (k.name, v)))
    }

    /// `keyword=value` pairs in libpq's order and quoting, the password shown as `********`.
    pub fn redacted(&self) -> String {
        let mut out = Vec::new();
        for (k, v) in self.iter() {
            let v = if k == "password" || k == "sslpassword" { "********" } else { v };
            out.push(format!("{k}={}", quote(v)));
        }
        out.join(" ")
    }
}

/// A value as libpq's key=value form writes it: bare when it can be, else in single quotes with
/// `\` before `'` and `\`.
pub fn quote(v: &str) -> String {
    if !v.is_empty() && !v.bytes().any(|b| is_space(b) || b == b'\'' || b == b'\\') {
        return v.to_owned();
    }
    let mut s = String::with_capacity(v.len() + 2);
    s.push('\'');
    for c in v.chars() {
        if c == '\'' || c == '\\' {
            s.push('\\');
        }
        s.push(c);
    }
    s.push('\'');
    s
}

/// C's `isspace` in the C locale, which libpq uses.
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r')
}

/// How a keyword is named in a message: quoted, unless it may be part of a password.
fn name_for_message(name: &str, after_password: bool) -> String {
    if after_password {
        "a word after the password (quote a password that holds spaces: password='...')".to_owned()
    } else if name.len() <= 64 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        format!("\"{name}\"")
    } else {
        "a keyword that is not one of libpq's".to_owned()
    }
}

/// Parse libpq's `key=value` form (`host=db port=5432 dbname='my db'`) exactly as libpq's
/// `conninfo_parse` does, into the settings it names. Keywords outside libpq's list are
/// refused (`PGSESS_CONFIG_ERROR`), as libpq does; whether pgsess supports each one is checked
/// later, when the settings are completed. `requiressl` becomes `sslmode` as in libpq.
pub fn parse_conninfo(s: &str) -> Result<Settings> {
    let b = s.as_bytes();
    let mut settings = Settings::default();
    let mut i = 0;
    let mut previous: Option<&'static str> = None;
    while i < b.len() {
        if is_space(b[i]) {
            i += 1;
            continue;
        }
        let after_password = previous == Some("password");
        let start = i;
        while i < b.len() && b[i] != b'=' && !is_space(b[i]) {
            i += 1;
        }
        let name = &s[start..i];
        while i < b.len() && is_space(b[i]) {
            i += 1;
        }
        if i >= b.len() || b[i] != b'=' {
            return Err(Error::config(format!(
                "missing \"=\" after {} in the connection string (expected keyword=value)",
                name_for_message(name, after_password)
            )));
        }
        i += 1;
        while i < b.len() && is_space(b[i]) {
            i += 1;
        }
        let mut value = Vec::new();
        if i < b.len() && b[i] == b'\'' {
            i += 1;
            loop {
                if i >= b.len() {
                    return Err(Error::config(format!(
                        "unterminated quoted string in the connection string (the value of {})",
                        name_for_message(name, after_password)
                    )));
                }
                match b[i] {
                    b'\\' => {
                        i += 1;
                        if i < b.len() {
                            value.push(b[i]);
                            i += 1;
                        }
                    }
                    b'\'' => {
                        i += 1;
                        break;
                    }
                    c => {
                        value.push(c);
                        i += 1;
                    }
                }
            }
        } else {
            while i < b.len() {
                match b[i] {
                    c if is_space(c) => {
                        i += 1;
                        break;
                    }
                    b'\\' => {
                        i += 1;
                        if i < b.len() {
                            value.push(b[i]);
                            i += 1;
                        }
                    }
                    c => {
                        value.push(c);
                        i += 1;
                    }
                }
            }
        }
        // Only ASCII bytes are removed or split on, so the value is still UTF-8.
        let mut value = String::from_utf8(value).expect("a UTF-8 string split at ASCII bytes");
        let mut key = name;
        if key == "requiressl" {
            key = "sslmode";
            value = if value.starts_with('1') { "require" } else { "prefer" }.to_owned();
        }
        if !settings.set(key, value) {
            return Err(Error::config(format!(
                "invalid connection option {}: not one of libpq's keywords",
                name_for_message(name, after_password)
            )));
        }
        previous = keywords::find(key).map(|k| k.name);
    }
    Ok(settings)
}

/// Whether `s` is a URI (`postgresql://`, `postgres://`, or pgsess's `pgsql://`) rather than
/// `key=value` pairs. Leading whitespace is skipped, as pgsess always has for URIs. A string
/// that starts like a URI of another scheme (`mysql://`) counts as a URI, so its error names
/// the scheme.
pub fn is_uri(s: &str) -> bool {
    let t = s.trim_start();
    match t.split_once("://") {
        Some((scheme, _)) => {
            !scheme.is_empty()
                && scheme.len() <= 32
                && scheme.bytes().all(|c| c.is_ascii_alphanumeric() || b"+-.".contains(&c))
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(s: &str) -> Vec<(String, String)> {
        parse_conninfo(s).unwrap().iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect()
    }

    #[test]
    fn quoting_escapes_and_whitespace_follow_libpq() {
        assert_eq!(
            pairs("host=h port = 5433  dbname='my db' user=a\\ b password='it\\'s'"),
            [("user", "a b"), ("password", "it's"), ("dbname", "my db"), ("host", "h"), ("port", "5433")]
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
        );
        // After '=' blanks are skipped, so an empty value takes the next word (libpq does this).
        assert_eq!(pairs("host= port=5")[0], ("host".to_owned(), "port=5".to_owned()));
        assert_eq!(pairs("host=''  port=5"), [("host".into(), "".into()), ("port".into(), "5".into())]);
        // A quoted value needs no blank after it; later settings win.
        assert_eq!(pairs("host='a'port=1 host=b"), [("host".into(), "b".into()), ("port".into(), "1".into())]);
        assert_eq!(pairs("requiressl=1"), [("sslmode".into(), "require".into())]);
        assert!(pairs(" \t\n").is_empty());
    }

    #[test]
    fn errors_name_the_keyword_not_the_password() {
        for (s, needle) in [
            ("host=h nonsense", "\"nonsense\""),
            ("host=h bogus=1", "\"bogus\""),
            ("password=hunter2 x", "after the password"),
            ("password=hun ter2=1", "after the password"),
            ("password='hunter2", "unterminated"),
        ] {
            let e = parse_conninfo(s).unwrap_err();
            assert_eq!(e.code, crate::error::Code::PGSESS_CONFIG_ERROR, "{s}");
            assert!(e.message.contains(needle), "{s}: {}", e.message);
            assert!(!e.message.contains("hunter") && !e.message.contains("ter2"), "{s}: {}", e.message);
        }
    }

    #[test]
    fn redacted_hides_the_password_and_quotes_as_libpq() {
        let s = parse_conninfo("password=hunter2 host='a b' dbname=it\\'s").unwrap();
        let k = parse_conninfo("sslpassword=keypass sslkey=/k").unwrap();
        assert_eq!(k.redacted(), "sslkey=/k sslpassword=********");
        assert_eq!(s.redacted(), "password=******** dbname='it\\'s' host='a b'");
        assert!(!format!("{s:?}").contains("hunter2"));
        assert_eq!(parse_conninfo(&s.redacted()).unwrap().get("host"), Some("a b"));
    }
}
