//! The TLS settings of a connection: libpq's `sslmode`, `sslrootcert`, `sslcert`, `sslkey`,
//! `sslsni` and `channel_binding`, from the URI, else the `PGSSL*` variables, else libpq's
//! defaults. Only settings: the TLS handshake itself is in `conn`.

use std::path::PathBuf;

use super::Environment;
use crate::error::{Error, Result};

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

/// The TLS versions a connection may use (libpq's `ssl_min_protocol_version` and
/// `ssl_max_protocol_version`, within what rustls implements).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum TlsVersions {
    /// TLS 1.2 or 1.3 (libpq's default minimum is TLSv1.2).
    #[default]
    Both,
    /// `ssl_max_protocol_version=TLSv1.2`.
    Only12,
    /// `ssl_min_protocol_version=TLSv1.3`.
    Only13,
}

/// Where the trusted root certificates come from (`sslrootcert`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum RootCert {
    /// A PEM file; checked for existence at connect time, as libpq does.
    File(PathBuf),
    /// `sslrootcert=system`: the operating system's trust store.
    System,
}

/// A secret setting (`sslpassword`): compared and hashed by its text (it is part of the pool
/// key), never shown by `Debug`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(********)")
    }
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
    /// `sslpassword`: decrypts the private key when it is encrypted (PKCS#8); ignored for an
    /// unencrypted key, as in libpq.
    pub key_password: Option<Secret>,
    /// Send the host name as TLS SNI (`sslsni`, default 1).
    pub sni: bool,
    pub channel_binding: ChannelBinding,
    pub versions: TlsVersions,
    /// libpq's `sslcrl` (default `~/.postgresql/root.crl`): certificate revocation lists in PEM,
    /// used when the chain is checked; skipped when the file does not exist, as in libpq.
    pub crl_file: Option<PathBuf>,
    /// libpq's `sslcrldir`: every file in it is read as PEM revocation lists.
    pub crl_dir: Option<PathBuf>,
    /// `sslcertmode=require`: the server must ask for a client certificate.
    pub cert_required: bool,
    /// `sslnegotiation=direct` (PostgreSQL 17): the TLS handshake starts at once, without an
    /// SSLRequest, and the server must select the ALPN protocol `postgresql`.
    pub direct: bool,
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
            versions: TlsVersions::Both,
            crl_file: None,
            crl_dir: None,
            cert_required: false,
            direct: false,
            key_password: None,
        }
    }
}

/// The TLS settings from the URI's values, else `PGSSLMODE`, `PGSSLROOTCERT`, `PGSSLCERT`,
/// `PGSSLKEY`, `PGSSLSNI`, `PGCHANNELBINDING`, else libpq's defaults: `prefer`, and
/// `~/.postgresql/{root.crt,postgresql.crt,postgresql.key}`.
pub(super) fn tls_config(
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
    let crl_file = home.as_ref().map(|h| h.join("root.crl"));
    Ok(TlsConfig {
        sslmode,
        root_cert,
        cert,
        key,
        sni,
        channel_binding,
        versions: TlsVersions::Both,
        crl_file,
        crl_dir: None,
        cert_required: false,
        direct: false,
        key_password: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_uri;
    use crate::config::tests::{env, FakeEnv};
    use std::collections::HashMap;
    use std::path::Path;

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
}
