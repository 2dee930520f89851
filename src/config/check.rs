//! Checking a configuration without connecting (`pgsess_config_check`, `pgsess-check`): read
//! the connection string (a URI, `key=value` pairs, or a session name whose `PGSQL_<NAME>`
//! variable holds one), complete it as a connection would (service file, `PG*` variables,
//! defaults, every value checked), and look each host's password up in the password file
//! when the string gives none. Nothing is sent anywhere.

use std::fmt::Write as _;

use super::complete::{complete, parse_settings};
use super::conninfo::{quote, Settings};
use super::{env_var_name, is_connection_string, uri_from_env, ConnectConfig, Environment, Host};
use crate::error::Result;

/// A configuration that passed every check, and what it was made of.
pub struct Checked {
    /// Where the connection string came from: `the argument`, or the variable's name.
    pub source: String,
    /// The keywords the string itself sets (before a service file and the environment).
    pub settings: Settings,
    pub config: ConnectConfig,
}

/// Check `arg`: a connection string (a URI, or `key=value` pairs: anything with `://` or `=`),
/// else a session name read as `pgsess_open` reads it (`PGSQL_<NAME>`; the empty string reads
/// `PGSQL`). The error is the one opening a session would give.
pub fn check(arg: &str, env: &dyn Environment) -> Result<Checked> {
    let (source, text) = if is_connection_string(arg) {
        ("the argument".to_owned(), arg.to_owned())
    } else {
        (env_var_name(arg), uri_from_env(arg)?)
    };
    let context = |e: crate::error::Error| {
        if source == "the argument" {
            e
        } else {
            e.context(format!("environment variable {source}"))
        }
    };
    let settings = parse_settings(&text).map_err(context)?;
    let config = complete(settings.clone(), env).map_err(context)?;
    Ok(Checked { source, settings, config })
}

impl Checked {
    /// A report of the settings, one `name: value` line each, the password never shown (only
    /// whether one is set, and where from).
    pub fn report(&self) -> String {
        let c = &self.config;
        let mut s = String::new();
        let _ = writeln!(s, "source: {}", self.source);
        let _ = writeln!(s, "connection string: {}", self.settings.redacted());
        for (i, h) in c.hosts.iter().enumerate() {
            let password = if c.password.is_some() {
                "given (hidden)".to_owned()
            } else if c.password_for(h).is_some() {
                format!(
                    "from the password file {} (hidden)",
                    c.passfile.as_ref().map(|p| p.display().to_string()).unwrap_or_default()
                )
            } else {
                "none".to_owned()
            };
            let kind = match h.host {
                Host::Tcp(_) => "tcp",
                Host::Unix(_) => "unix socket",
            };
            let _ = writeln!(s, "host {}: {h} ({kind}), password: {password}", i + 1);
        }
        let mut line = |k: &str, v: &str| {
            let _ = writeln!(s, "{k}: {v}");
        };
        line("user", &quote(&c.user));
        line("dbname", &quote(&c.dbname));
        line("application_name", &c.application_name.as_deref().map(quote).unwrap_or_else(|| "(none)".into()));
        line("options", &c.options.as_deref().map(quote).unwrap_or_else(|| "(none)".into()));
        line("connect_timeout", &format!("{} s", c.connect_timeout.as_secs()));
        line("target_session_attrs", &format!("{:?}", c.target_session_attrs));
        line("load_balance_hosts", if c.load_balance_hosts { "random" } else { "disable" });
        line("sslmode", c.tls.sslmode.as_str());
        line("channel_binding", &format!("{:?}", c.tls.channel_binding));
        line("tls_versions", &format!("{:?}", c.tls.versions));
        let auth = c.require_auth.to_string();
        line("require_auth", if auth.is_empty() { "(any method)" } else { &auth });
        line("passfile", &c.passfile.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "(none)".into()));
        for (k, v) in &c.startup_params {
            line(&format!("startup {k}"), &quote(v));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::env;

    #[test]
    fn the_report_never_shows_the_password() {
        let c = check("postgresql://u:hunter2@h/d?application_name=a%20b", &env()).unwrap();
        let r = c.report();
        assert!(r.contains("password=********") && r.contains("password: given (hidden)"), "{r}");
        assert!(r.contains("application_name: 'a b'"), "{r}");
        assert!(!r.contains("hunter2"), "{r}");
        let c = check("host=x port=1 password='hunter2' dbname=d", &env()).unwrap();
        assert!(!c.report().contains("hunter2"));
    }
}
