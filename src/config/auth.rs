//! Which authentication the client accepts: libpq 16's `require_auth` (from the URI, else
//! `PGREQUIREAUTH`), parsed and checked as libpq does. What the connection does with it, and the
//! refusals pgsess adds beyond libpq on a plain-text TCP connection, are in `conn::connect`.

use std::fmt;

use crate::error::{Error, Result};

/// One method of `require_auth`: what the server may ask the client to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AuthMethod {
    /// A cleartext password (AuthenticationCleartextPassword).
    Password,
    /// An MD5-hashed password (AuthenticationMD5Password).
    Md5,
    /// GSSAPI (pgsess supports it in no case, but the setting names it as libpq does).
    Gss,
    /// SSPI (likewise).
    Sspi,
    /// SASL with SCRAM-SHA-256 or SCRAM-SHA-256-PLUS.
    ScramSha256,
    /// No authentication at all: an AuthenticationOk that answers no exchange (trust, peer,
    /// certificate authentication).
    None,
}

impl AuthMethod {
    const ALL: [AuthMethod; 6] = [
        AuthMethod::Password,
        AuthMethod::Md5,
        AuthMethod::Gss,
        AuthMethod::Sspi,
        AuthMethod::ScramSha256,
        AuthMethod::None,
    ];

    fn parse(v: &str) -> Option<AuthMethod> {
        Some(match v {
            "password" => AuthMethod::Password,
            "md5" => AuthMethod::Md5,
            "gss" => AuthMethod::Gss,
            "sspi" => AuthMethod::Sspi,
            "scram-sha-256" => AuthMethod::ScramSha256,
            "none" => AuthMethod::None,
            _ => return None,
        })
    }

    /// The name `require_auth` uses.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::Password => "password",
            AuthMethod::Md5 => "md5",
            AuthMethod::Gss => "gss",
            AuthMethod::Sspi => "sspi",
            AuthMethod::ScramSha256 => "scram-sha-256",
            AuthMethod::None => "none",
        }
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }

    /// libpq's words for the server asking for this method (`auth_method_description`), and for
    /// an AuthenticationOk that came before the client finished any exchange.
    pub fn requested(self) -> &'static str {
        match self {
            AuthMethod::Password => "server requested a cleartext password",
            AuthMethod::Md5 => "server requested a hashed password",
            AuthMethod::Gss => "server requested GSSAPI authentication",
            AuthMethod::Sspi => "server requested SSPI authentication",
            AuthMethod::ScramSha256 => "server requested SASL authentication",
            AuthMethod::None => "server did not complete authentication",
        }
    }
}

/// libpq's `require_auth`: the methods the server may use, as a list (`scram-sha-256,none`) or a
/// negated list (`!password,!md5`). Unset (the default), every method is allowed, as in libpq;
/// pgsess's own refusals on plain-text TCP then still apply (`conn::connect`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct RequireAuth {
    /// The setting as written, for messages and the pool key; `None` when unset.
    setting: Option<String>,
    /// Where it came from: `require_auth` (the URI) or `PGREQUIREAUTH`.
    source: &'static str,
    /// Allowed methods, one bit per [`AuthMethod`] (`None` included: allowed means an
    /// AuthenticationOk without a finished exchange is acceptable).
    allowed: u8,
    /// The list names methods to refuse (`!md5`) rather than to allow.
    negated: bool,
}

impl RequireAuth {
    /// Parse a `require_auth` value read from `source` (`"require_auth"` or `"PGREQUIREAUTH"`),
    /// with libpq's rules: comma-separated, no spaces, each method once, either every element
    /// negated or none. An empty value is unset.
    pub fn parse(value: &str, source: &'static str) -> Result<RequireAuth> {
        if value.is_empty() {
            return Ok(RequireAuth::default());
        }
        let negated = value.starts_with('!');
        let all = AuthMethod::ALL.iter().fold(0, |bits, m| bits | m.bit());
        let mut allowed = if negated { all } else { 0 };
        let mut seen = 0u8;
        for part in value.split(',') {
            let method = match (part.strip_prefix('!'), negated) {
                (Some(m), true) => m,
                (None, false) => part,
                (Some(_), false) => {
                    return Err(Error::config(format!(
                        "negative {source} method \"{part}\" cannot be mixed with non-negative methods"
                    )))
                }
                (None, true) => {
                    return Err(Error::config(format!(
                        "{source} method \"{part}\" cannot be mixed with negative methods"
                    )))
                }
            };
            let m = AuthMethod::parse(method).ok_or_else(|| {
                Error::config(format!(
                    "invalid {source} value: \"{method}\" (expected a comma-separated list of password, md5, gss, \
                     sspi, scram-sha-256 and none, or the same list with each method negated by '!')"
                ))
            })?;
            if seen & m.bit() != 0 {
                return Err(Error::config(format!("{source} method \"{part}\" is specified more than once")));
            }
            seen |= m.bit();
            if negated {
                allowed &= !m.bit();
            } else {
                allowed |= m.bit();
            }
        }
        Ok(RequireAuth { setting: Some(value.to_owned()), source, allowed, negated })
    }

    /// Whether the setting was given at all.
    pub fn is_set(&self) -> bool {
        self.setting.is_some()
    }

    /// Whether libpq's check lets the server use `m`. For [`AuthMethod::None`]: whether an
    /// AuthenticationOk may arrive before the client finished an authentication exchange.
    pub fn allows(&self, m: AuthMethod) -> bool {
        self.setting.is_none() || self.allowed & m.bit() != 0
    }

    /// Whether the setting names `m` in a (non-negated) list: the explicit permission pgsess asks
    /// for before it sends a password in plain text or accepts a password-less start over plain
    /// text. A negated list permits without naming, so it keeps pgsess's refusals.
    pub fn lists(&self, m: AuthMethod) -> bool {
        self.setting.is_some() && !self.negated && self.allowed & m.bit() != 0
    }

    /// libpq's check of a server's request for `m`: `Err` with libpq's message
    /// (`authentication method requirement "md5" failed: server requested a cleartext password`)
    /// and which setting refused it.
    pub fn check(&self, m: AuthMethod) -> Result<()> {
        if self.allows(m) {
            return Ok(());
        }
        let why = match m {
            AuthMethod::None => format!("{} requires an authentication exchange", self.source),
            _ => format!("{} does not allow {}", self.source, m.as_str()),
        };
        Err(Error::operational(
            "08001",
            format!(
                "authentication method requirement \"{}\" failed: {} ({why})",
                self.setting.as_deref().unwrap_or(""),
                m.requested(),
            ),
        ))
    }
}

impl fmt::Display for RequireAuth {
    /// The setting as written (empty when unset): part of the pool key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.setting.as_deref().unwrap_or(""))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_uri;
    use crate::config::tests::{env, FakeEnv};
    use std::collections::HashMap;
    use AuthMethod::*;

    fn allowed(r: &RequireAuth) -> Vec<AuthMethod> {
        AuthMethod::ALL.iter().copied().filter(|m| r.allows(*m)).collect()
    }

    #[test]
    fn lists_and_negated_lists_follow_libpq() {
        let unset = RequireAuth::parse("", "require_auth").unwrap();
        assert!(!unset.is_set());
        assert_eq!(allowed(&unset), AuthMethod::ALL.to_vec());
        assert!(!unset.lists(Password) && !unset.lists(None));

        let r = RequireAuth::parse("scram-sha-256", "require_auth").unwrap();
        assert_eq!(allowed(&r), vec![ScramSha256], "a list without none requires an exchange");
        let r = RequireAuth::parse("password,none", "require_auth").unwrap();
        assert_eq!(allowed(&r), vec![Password, None]);
        assert!(r.lists(Password) && r.lists(None) && !r.lists(Md5));
        let r = RequireAuth::parse("none", "require_auth").unwrap();
        assert_eq!(allowed(&r), vec![None], "none alone forbids every password request");

        let r = RequireAuth::parse("!password,!md5", "require_auth").unwrap();
        assert_eq!(allowed(&r), vec![Gss, Sspi, ScramSha256, None]);
        assert!(!r.lists(ScramSha256) && !r.lists(None), "a negated list names nothing it allows");
        let r = RequireAuth::parse("!none", "require_auth").unwrap();
        assert_eq!(allowed(&r), vec![Password, Md5, Gss, Sspi, ScramSha256], "!none requires some exchange");
    }

    #[test]
    fn libpq_messages_for_bad_settings_and_refusals() {
        for (value, needle) in [
            ("password,!md5", "negative require_auth method \"!md5\" cannot be mixed with non-negative methods"),
            ("!password,md5", "require_auth method \"md5\" cannot be mixed with negative methods"),
            ("md5,md5", "require_auth method \"md5\" is specified more than once"),
            ("!md5,!md5", "require_auth method \"!md5\" is specified more than once"),
            ("scram", "invalid require_auth value: \"scram\""),
            ("password, md5", "invalid require_auth value: \" md5\""),
            ("password,", "invalid require_auth value: \"\""),
            ("!", "invalid require_auth value: \"\""),
        ] {
            let e = RequireAuth::parse(value, "require_auth").unwrap_err();
            assert_eq!(e.code, crate::error::Code::PGSESS_CONFIG_ERROR, "{value}");
            assert!(e.message.contains(needle), "{value}: {}", e.message);
        }
        let r = RequireAuth::parse("scram-sha-256", "PGREQUIREAUTH").unwrap();
        let e = r.check(Password).unwrap_err();
        assert_eq!(e.sqlstate(), Some("08001"));
        assert_eq!(
            e.message,
            "authentication method requirement \"scram-sha-256\" failed: server requested a cleartext password \
             (PGREQUIREAUTH does not allow password)"
        );
        let e = r.check(None).unwrap_err();
        assert!(e.message.contains("failed: server did not complete authentication"), "{}", e.message);
        assert!(r.check(ScramSha256).is_ok());
    }

    #[test]
    fn uri_then_environment() {
        let c = parse_uri("postgresql://u@h/d?require_auth=md5,scram-sha-256", &env()).unwrap();
        assert_eq!(c.require_auth.to_string(), "md5,scram-sha-256");
        assert!(c.require_auth.lists(Md5) && !c.require_auth.allows(Password));
        let e = FakeEnv(HashMap::from([("PGREQUIREAUTH", "!md5")]));
        let c = parse_uri("postgresql://u@h/d", &e).unwrap();
        assert!(!c.require_auth.allows(Md5) && c.require_auth.allows(Password));
        let c = parse_uri("postgresql://u@h/d?require_auth=password", &e).unwrap();
        assert_eq!(c.require_auth.to_string(), "password", "the URI wins over the environment");
        let err = parse_uri("postgresql://u@h/d", &FakeEnv(HashMap::from([("PGREQUIREAUTH", "md6")]))).unwrap_err();
        assert!(err.message.contains("invalid PGREQUIREAUTH value: \"md6\""), "{}", err.message);
        // Different settings, different pools.
        let a = parse_uri("postgresql://u@h/d?require_auth=password", &env()).unwrap();
        let b = parse_uri("postgresql://u@h/d", &env()).unwrap();
        assert_ne!(a.canonical_key(), b.canonical_key());
    }
}
