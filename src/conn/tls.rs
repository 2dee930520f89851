//! TLS as libpq does it, with rustls: the client configuration built from a connection's
//! `sslmode`, `sslrootcert`, `sslcert`, `sslkey` and `sslsni`, and the server certificate checks
//! of each mode:
//! - `verify-full`: the chain up to a root of `sslrootcert`, and the host name (SAN dNSName and
//!   iPAddress entries; the subject CN only when no SAN of the host's kind exists, as libpq does);
//! - `verify-ca`: the chain only;
//! - `require`, `prefer`, `allow`: the chain when a root certificate file exists (libpq's rule:
//!   `sslmode=require` with a `root.crt` behaves like `verify-ca`), else nothing.
//!
//! Files are read for each connection attempt, as libpq does, so renewed certificates are used
//! without a restart. The same configuration serves the cancel requests of the connection.

use std::fmt;
use std::net::IpAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::Resumption;
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, ClientConnection, DigitallySignedStruct, RootCertStore, SignatureScheme};
use sha2::Digest;

use crate::config::{RootCert, Secret, SslMode, TlsConfig, TlsVersions};

/// Where Debian, Fedora/RHEL, SUSE and Alpine/macOS keep the system's root certificates as one
/// PEM bundle (what OpenSSL, and so libpq, reads for `sslrootcert=system`).
const SYSTEM_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

/// The TLS versions rustls may offer (`ssl_min_protocol_version`, `ssl_max_protocol_version`).
fn versions(v: TlsVersions) -> &'static [&'static rustls::SupportedProtocolVersion] {
    static BOTH: [&rustls::SupportedProtocolVersion; 2] = [&rustls::version::TLS13, &rustls::version::TLS12];
    static ONLY12: [&rustls::SupportedProtocolVersion; 1] = [&rustls::version::TLS12];
    static ONLY13: [&rustls::SupportedProtocolVersion; 1] = [&rustls::version::TLS13];
    match v {
        TlsVersions::Both => &BOTH,
        TlsVersions::Only12 => &ONLY12,
        TlsVersions::Only13 => &ONLY13,
    }
}

fn provider() -> &'static Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER.get_or_init(|| Arc::new(rustls::crypto::ring::default_provider()))
}

/// Everything needed to open TLS to one host: shared by the connection and its cancel requests.
pub struct TlsSetup {
    config: Arc<ClientConfig>,
    server_name: ServerName<'static>,
    pub mode: SslMode,
    /// The file the trusted roots came from, for messages.
    roots_from: Option<std::path::PathBuf>,
    /// With `sslcertmode=require`: whether a handshake of this setup was asked for a client
    /// certificate.
    cert_requested: Option<Arc<AtomicBool>>,
    /// `sslnegotiation=direct`: no SSLRequest, the handshake at once (also for cancel requests).
    pub direct: bool,
}

/// The ALPN protocol name PostgreSQL 17 registered for its wire protocol.
pub const ALPN_POSTGRESQL: &[u8] = b"postgresql";

impl fmt::Debug for TlsSetup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TlsSetup(sslmode={})", self.mode.as_str())
    }
}

impl TlsSetup {
    /// Read the certificate files and build the configuration for `host`. The error is a
    /// sentence that names the file and says what to change.
    pub fn new(tls: &TlsConfig, host: &str) -> Result<TlsSetup, String> {
        let (check, roots_from) = match (roots(tls)?, tls.sslmode) {
            (Some((roots, from)), SslMode::VerifyFull) => (Check::ChainAndName(roots), Some(from)),
            (Some((roots, from)), _) => (Check::Chain(roots), Some(from)),
            (None, _) => (Check::Nothing, None),
        };
        let algorithms = provider().signature_verification_algorithms;
        let revocation = match &check {
            Check::Chain(roots) | Check::ChainAndName(roots) => revocation_checker(tls, roots)?,
            Check::Nothing => None,
        };
        let verifier = Arc::new(Verifier { check, host: host.to_owned(), algorithms, revocation });
        let builder = ClientConfig::builder_with_provider(provider().clone())
            .with_protocol_versions(versions(tls.versions))
            .map_err(|e| format!("TLS setup failed: {e}"))?
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        let mut cert_requested = None;
        let mut config = match (client_certificate(tls)?, tls.cert_required) {
            (Some((chain, key)), false) => builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| format!("the client certificate and private key are not usable: {e}"))?,
            (None, false) => builder.with_no_client_auth(),
            (certificate, true) => {
                let key = match certificate {
                    Some((chain, key)) => {
                        let signing = provider()
                            .key_provider
                            .load_private_key(key)
                            .map_err(|e| format!("the client certificate's private key is not usable: {e}"))?;
                        Some(Arc::new(rustls::sign::CertifiedKey::new(chain, signing)))
                    }
                    None => None,
                };
                let resolver = Arc::new(RecordsRequest { key, requested: Arc::default() });
                cert_requested = Some(resolver.requested.clone());
                builder.with_client_cert_resolver(resolver)
            }
        };
        // libpq sends SNI for host names (never for IP addresses) unless sslsni=0.
        let server_name = match ServerName::try_from(host.to_owned()) {
            Ok(name) => name,
            // Not a name rustls accepts: nothing to send as SNI; our verifier checks the host
            // string itself, so the placeholder is never compared.
            Err(_) => ServerName::IpAddress(std::net::Ipv4Addr::UNSPECIFIED.into()),
        };
        config.enable_sni = tls.sni && matches!(server_name, ServerName::DnsName(_));
        // Every connection makes a fresh handshake (libpq keeps no sessions either).
        config.resumption = Resumption::disabled();
        // libpq 17 offers ALPN "postgresql" on every TLS connection; a PostgreSQL 17 server
        // requires it for direct TLS, and older servers ignore it.
        config.alpn_protocols = vec![ALPN_POSTGRESQL.to_vec()];
        Ok(TlsSetup {
            config: Arc::new(config),
            server_name,
            mode: tls.sslmode,
            roots_from,
            cert_requested,
            direct: tls.direct,
        })
    }

    /// Why a TLS handshake failed, in words for the error message.
    pub fn describe(&self, e: &rustls::Error) -> String {
        match (e, &self.roots_from) {
            (rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer), Some(from)) => format!(
                "certificate verify failed: the server certificate is not signed by a CA of the root certificate \
                 file \"{}\" (unknown CA)",
                from.display()
            ),
            _ => describe(e),
        }
    }

    /// `sslcertmode=require` and the handshake done so far had no certificate request: libpq
    /// then fails the connection.
    pub fn certificate_required_but_not_requested(&self) -> bool {
        self.cert_requested.as_ref().is_some_and(|r| !r.load(Ordering::Relaxed))
    }

    /// With `sslnegotiation=direct`, what libpq 17 checks once the handshake is done: the server
    /// selected ALPN `postgresql` (a server that did not may be something else listening on the
    /// port, or a proxy that does not speak PostgreSQL). `None` when all is well.
    pub fn alpn_refusal(&self, selected: Option<&[u8]>) -> Option<String> {
        match (self.direct, selected) {
            (false, _) => None,
            (true, Some(p)) if p == ALPN_POSTGRESQL => None,
            (true, None) => {
                Some("direct SSL connection was established without ALPN protocol negotiation extension".to_owned())
            }
            (true, Some(_)) => Some("SSL connection was established with unexpected ALPN protocol".to_owned()),
        }
    }

    pub fn connection(&self) -> Result<ClientConnection, String> {
        ClientConnection::new(self.config.clone(), self.server_name.clone())
            .map_err(|e| format!("TLS setup failed: {e}"))
    }
}

/// The trusted roots of `sslrootcert` (or `~/.postgresql/root.crt`), or `None` when the mode
/// allows going without and the file does not exist.
#[allow(clippy::type_complexity)]
fn roots(tls: &TlsConfig) -> Result<Option<(Arc<RootCertStore>, std::path::PathBuf)>, String> {
    let verify = matches!(tls.sslmode, SslMode::VerifyCa | SslMode::VerifyFull);
    let path = match &tls.root_cert {
        Some(RootCert::System) => {
            let from_env = std::env::var_os("SSL_CERT_FILE").map(std::path::PathBuf::from);
            let found = from_env.into_iter().chain(SYSTEM_BUNDLES.iter().map(Into::into)).find(|p| p.is_file());
            match found {
                Some(p) => p,
                None => {
                    return Err(format!(
                        "sslrootcert=system: no system root certificate bundle found (looked at SSL_CERT_FILE and {})",
                        SYSTEM_BUNDLES.join(", ")
                    ))
                }
            }
        }
        Some(RootCert::File(p)) => {
            if std::fs::metadata(p).is_err() {
                if verify {
                    return Err(format!(
                        "root certificate file \"{}\" does not exist: provide it (sslrootcert), use the system's \
                         trusted roots with sslrootcert=system, or choose an sslmode that does not verify the server \
                         certificate",
                        p.display()
                    ));
                }
                return Ok(None);
            }
            p.clone()
        }
        None if verify => {
            return Err("no home directory to find ~/.postgresql/root.crt: set sslrootcert, or choose an sslmode \
                        that does not verify the server certificate"
                .to_owned())
        }
        None => return Ok(None),
    };
    let mut store = RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(&path)
        .map_err(|e| format!("could not read root certificate file \"{}\": {e}", path.display()))?;
    let mut bad = 0;
    for cert in certs {
        let cert = cert.map_err(|e| format!("could not read root certificate file \"{}\": {e}", path.display()))?;
        if store.add(cert).is_err() {
            bad += 1;
        }
    }
    // A system bundle may hold a certificate webpki cannot use; a file of our user's must be whole.
    if store.is_empty() || (bad > 0 && tls.root_cert != Some(RootCert::System)) {
        return Err(format!("root certificate file \"{}\" holds no usable certificate", path.display()));
    }
    Ok(Some((Arc::new(store), path)))
}

/// The client certificate chain and key, when the certificate file exists. As libpq: a missing
/// certificate file means no client certificate; a certificate without its key is an error; a
/// key file that the group or others may access is refused.
#[allow(clippy::type_complexity)]
fn client_certificate(
    tls: &TlsConfig,
) -> Result<Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>, String> {
    let Some(cert_path) = &tls.cert else { return Ok(None) };
    match std::fs::metadata(cert_path) {
        Ok(_) => {}
        Err(e) if matches!(e.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory) => {
            return Ok(None)
        }
        Err(e) => return Err(format!("could not open certificate file \"{}\": {e}", cert_path.display())),
    }
    let chain = CertificateDer::pem_file_iter(cert_path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("could not read certificate file \"{}\": {e}", cert_path.display()))?;
    if chain.is_empty() {
        return Err(format!("certificate file \"{}\" holds no certificate", cert_path.display()));
    }
    let Some(key_path) = &tls.key else {
        return Err(format!(
            "certificate present, but no private key file (no home directory): set sslkey for \"{}\"",
            cert_path.display()
        ));
    };
    check_key_file(key_path)?;
    let key = load_key(key_path, tls.key_password.as_ref())?;
    Ok(Some((chain, key)))
}

/// The client's private key from the PEM file `path`: as rustls reads it (PKCS#8, PKCS#1 RSA,
/// SEC1 EC), or PKCS#8's encrypted form decrypted with `sslpassword`. No message shows the
/// password.
fn load_key(path: &Path, password: Option<&Secret>) -> Result<PrivateKeyDer<'static>, String> {
    const BEGIN: &str = "-----BEGIN ENCRYPTED PRIVATE KEY-----";
    const END: &str = "-----END ENCRYPTED PRIVATE KEY-----";
    let shown = path.display();
    let bytes = std::fs::read(path).map_err(|e| format!("could not read private key file \"{shown}\": {e}"))?;
    let text = String::from_utf8_lossy(&bytes);
    if text.contains("Proc-Type: 4,ENCRYPTED") {
        return Err(format!(
            "private key file \"{shown}\" is encrypted in OpenSSL's legacy PEM form, which pgsess does not read: \
             convert it to encrypted PKCS#8 with `openssl pkcs8 -topk8 -v2 aes-256-cbc -in OLD -out NEW`"
        ));
    }
    let Some(start) = text.find(BEGIN) else {
        return PrivateKeyDer::from_pem_slice(&bytes)
            .map_err(|e| format!("could not load private key file \"{shown}\": {e}"));
    };
    let Some(password) = password else {
        return Err(format!("private key file \"{shown}\" is encrypted: set sslpassword to its password"));
    };
    let end = text[start..].find(END).map(|i| start + i + END.len()).ok_or_else(|| {
        format!("could not load private key file \"{shown}\": the encrypted key's PEM block has no end line")
    })?;
    let (_, document) = pkcs8::SecretDocument::from_pem(&text[start..end])
        .map_err(|e| format!("could not load private key file \"{shown}\": {e}"))?;
    let encrypted = pkcs8::EncryptedPrivateKeyInfo::try_from(document.as_bytes())
        .map_err(|e| format!("could not load private key file \"{shown}\": {e}"))?;
    let decrypted = encrypted.decrypt(password.0.as_bytes()).map_err(|e| {
        format!(
            "could not decrypt private key file \"{shown}\": {e} (a wrong sslpassword, or a cipher other than \
             PBES2 with AES-CBC)"
        )
    })?;
    Ok(PrivateKeyDer::Pkcs8(rustls::pki_types::PrivatePkcs8KeyDer::from(decrypted.as_bytes().to_vec())))
}

/// libpq's rule: a regular file, mode 0600 or less when owned by us, 0640 or less when owned by
/// root (a system-wide key readable through a group).
fn check_key_file(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            format!("certificate present, but not private key file \"{}\"", path.display())
        } else {
            format!("could not open private key file \"{}\": {e}", path.display())
        }
    })?;
    if !meta.is_file() {
        return Err(format!("private key file \"{}\" is not a regular file", path.display()));
    }
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    let mode = meta.mode();
    if (meta.uid() == euid && mode & 0o077 != 0) || (meta.uid() == 0 && mode & 0o037 != 0) {
        return Err(format!(
            "private key file \"{}\" has group or world access; it must have permissions u=rw (0600) or less if \
             owned by the current user, or u=rw,g=r (0640) or less if owned by root",
            path.display()
        ));
    }
    Ok(())
}

#[derive(Debug)]
enum Check {
    Nothing,
    Chain(Arc<RootCertStore>),
    ChainAndName(Arc<RootCertStore>),
}

/// The client certificate resolver of `sslcertmode=require`: offers the certificate (if any)
/// as rustls's own does, and records that the server asked for one.
#[derive(Debug)]
struct RecordsRequest {
    key: Option<Arc<rustls::sign::CertifiedKey>>,
    requested: Arc<AtomicBool>,
}

impl rustls::client::ResolvesClientCert for RecordsRequest {
    fn resolve(&self, _hints: &[&[u8]], _schemes: &[SignatureScheme]) -> Option<Arc<rustls::sign::CertifiedKey>> {
        self.requested.store(true, Ordering::Relaxed);
        self.key.clone()
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// The certificate revocation lists of `sslcrl` and `sslcrldir`, as a rustls verifier that
/// checks the chain and every certificate's revocation status (libpq has OpenSSL check the
/// whole chain, and a certificate whose issuer has no list fails); `None` when there are none.
fn revocation_checker(
    tls: &TlsConfig,
    roots: &Arc<RootCertStore>,
) -> Result<Option<Arc<rustls::client::WebPkiServerVerifier>>, String> {
    use rustls::pki_types::CertificateRevocationListDer;
    let mut files = Vec::new();
    if let Some(f) = tls.crl_file.as_ref().filter(|f| f.exists()) {
        files.push(f.clone());
    }
    if let Some(dir) = &tls.crl_dir {
        let entries = std::fs::read_dir(dir).map_err(|e| {
            format!("could not read the revocation list directory \"{}\" (sslcrldir): {e}", dir.display())
        })?;
        let mut in_dir: Vec<_> = entries.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.is_file()).collect();
        in_dir.sort();
        files.extend(in_dir);
    }
    let mut crls = Vec::new();
    for f in &files {
        let bad =
            |e: &dyn fmt::Display| format!("the certificate revocation list \"{}\" is not usable: {e}", f.display());
        for crl in CertificateRevocationListDer::pem_file_iter(f).map_err(|e| bad(&e))? {
            crls.push(crl.map_err(|e| bad(&e))?);
        }
    }
    if crls.is_empty() {
        return Ok(None);
    }
    rustls::client::WebPkiServerVerifier::builder_with_provider(roots.clone(), provider().clone())
        .with_crls(crls)
        .build()
        .map(Some)
        .map_err(|e| format!("the certificate revocation lists are not usable: {e}"))
}

#[derive(Debug)]
struct Verifier {
    /// Checks the chain with the revocation lists, when there are any.
    revocation: Option<Arc<rustls::client::WebPkiServerVerifier>>,
    check: Check,
    /// The host as given in the URI: what `verify-full` compares the certificate with.
    host: String,
    algorithms: WebPkiSupportedAlgorithms,
}

/// A host name check failure, with libpq's wording.
#[derive(Debug)]
struct NameMismatch(String);

impl fmt::Display for NameMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NameMismatch {}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let (roots, names) = match &self.check {
            Check::Nothing => return Ok(ServerCertVerified::assertion()),
            Check::Chain(roots) => (roots, false),
            Check::ChainAndName(roots) => (roots, true),
        };
        match &self.revocation {
            // The chain and the revocation lists; its host name check (rustls's rules) is not
            // libpq's, so a name mismatch is left to ours below.
            Some(v) => match v.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
                Ok(_)
                | Err(rustls::Error::InvalidCertificate(
                    CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
                )) => {}
                Err(e) => return Err(e),
            },
            None => {
                let parsed = rustls::server::ParsedCertificate::try_from(end_entity)?;
                rustls::client::verify_server_cert_signed_by_trust_anchor(
                    &parsed,
                    roots,
                    intermediates,
                    now,
                    self.algorithms.all,
                )?;
            }
        }
        if names {
            check_host_name(end_entity.as_ref(), &self.host).map_err(|m| {
                rustls::Error::InvalidCertificate(CertificateError::Other(rustls::OtherError(Arc::new(NameMismatch(
                    m,
                )))))
            })?;
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// Why a TLS handshake failed, in words for the error message.
pub fn describe(e: &rustls::Error) -> String {
    use rustls::Error as E;
    match e {
        E::InvalidCertificate(c) => match c {
            CertificateError::UnknownIssuer => {
                "certificate verify failed: the server certificate is not signed by a trusted root certificate \
                 (unknown CA; see sslrootcert)"
                    .to_owned()
            }
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                "certificate verify failed: the server certificate has expired".to_owned()
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                "certificate verify failed: the server certificate is not valid yet".to_owned()
            }
            CertificateError::Revoked => {
                "certificate verify failed: the server certificate is revoked (sslcrl, sslcrldir)".to_owned()
            }
            CertificateError::UnknownRevocationStatus => {
                "certificate verify failed: no certificate revocation list covers a certificate of the server's \
                 chain (sslcrl, sslcrldir: libpq needs one for each issuer)"
                    .to_owned()
            }
            CertificateError::Other(other) => format!("certificate verify failed: {}", other.0),
            other => format!("certificate verify failed: {other:?}"),
        },
        E::AlertReceived(alert) => format!("the server sent the TLS alert {alert:?}"),
        other => other.to_string(),
    }
}

// ---------------------------------------------------------------------------------------------
// Certificate fields (a minimal DER reader: the host name check and the channel binding hash
// need the subject CN, the subjectAltName entries and the signature algorithm).

/// One DER element: tag, contents, and what follows.
fn der(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (first as usize, rest)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        (rest[..n].iter().fold(0usize, |acc, &b| acc << 8 | b as usize), &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

/// The elements of a DER sequence's contents.
fn elements(mut input: &[u8]) -> impl Iterator<Item = (u8, &[u8])> {
    std::iter::from_fn(move || {
        let (tag, content, rest) = der(input)?;
        input = rest;
        Some((tag, content))
    })
}

const OID_COMMON_NAME: &[u8] = &[0x55, 0x04, 0x03];
const OID_SUBJECT_ALT_NAME: &[u8] = &[0x55, 0x1d, 0x11];

#[derive(Default)]
struct CertNames<'a> {
    dns: Vec<&'a [u8]>,
    ips: Vec<&'a [u8]>,
    common_names: Vec<&'a [u8]>,
}

/// tbsCertificate and the signature AlgorithmIdentifier of a certificate.
fn cert_parts(cert: &[u8]) -> Option<(&[u8], &[u8])> {
    let (0x30, cert, _) = der(cert)? else { return None };
    let (0x30, tbs, rest) = der(cert)? else { return None };
    let (0x30, algorithm, _) = der(rest)? else { return None };
    Some((tbs, algorithm))
}

fn cert_names(cert: &[u8]) -> Option<CertNames<'_>> {
    let (tbs, _) = cert_parts(cert)?;
    let mut fields = elements(tbs).peekable();
    if fields.peek()?.0 == 0xa0 {
        fields.next(); // version
    }
    let _serial = fields.next()?;
    let _signature = fields.next()?;
    let _issuer = fields.next()?;
    let _validity = fields.next()?;
    let (0x30, subject) = fields.next()? else { return None };
    let _key = fields.next()?;
    let mut names = CertNames::default();
    for set in elements(subject).filter(|(t, _)| *t == 0x31) {
        for (_, attribute) in elements(set.1).filter(|(t, _)| *t == 0x30) {
            let mut parts = elements(attribute);
            if let (Some((0x06, oid)), Some((tag, value))) = (parts.next(), parts.next()) {
                // UTF8String, PrintableString, T61String, IA5String
                if oid == OID_COMMON_NAME && matches!(tag, 0x0c | 0x13 | 0x14 | 0x16) {
                    names.common_names.push(value);
                }
            }
        }
    }
    for (tag, content) in fields {
        if tag != 0xa3 {
            continue; // issuerUniqueID, subjectUniqueID
        }
        let (0x30, extensions, _) = der(content)? else { return None };
        for (_, extension) in elements(extensions) {
            let mut parts = elements(extension);
            let Some((0x06, oid)) = parts.next() else { continue };
            if oid != OID_SUBJECT_ALT_NAME {
                continue;
            }
            let Some((0x04, value)) = parts.find(|(t, _)| *t == 0x04) else { continue };
            let (0x30, general_names, _) = der(value)? else { return None };
            for (tag, name) in elements(general_names) {
                match tag {
                    0x82 => names.dns.push(name),
                    0x87 => names.ips.push(name),
                    _ => {}
                }
            }
        }
    }
    Some(names)
}

/// libpq's `wildcard_certificate_match`: `*.` only as the whole first label, matching one label.
fn wildcard_matches(pattern: &str, host: &str) -> bool {
    let Some(suffix) = pattern.strip_prefix('*') else { return false };
    if pattern.len() < 3 || !suffix.starts_with('.') || pattern.len() > host.len() {
        return false;
    }
    let start = host.len() - suffix.len();
    host.is_char_boundary(start)
        && host[start..].eq_ignore_ascii_case(suffix)
        && host.find('.').is_some_and(|dot| dot >= start)
}

fn name_matches(name: &[u8], host: &str) -> bool {
    // An embedded NUL would let "good.example\0.evil" pass a C string comparison.
    let Ok(name) = std::str::from_utf8(name) else { return false };
    !name.contains('\0') && (name.eq_ignore_ascii_case(host) || wildcard_matches(name, host))
}

/// libpq's host name check (`pq_verify_peer_name_matches_certificate`): every SAN dNSName (with
/// wildcards) and iPAddress; the CN only when the certificate has no SAN of the host's kind.
fn check_host_name(cert: &[u8], host: &str) -> Result<(), String> {
    let names = cert_names(cert).ok_or("the server certificate could not be parsed")?;
    let ip: Option<IpAddr> = host.parse().ok();
    let ip_matches = |bytes: &[u8]| match ip {
        Some(IpAddr::V4(a)) => bytes == a.octets(),
        Some(IpAddr::V6(a)) => bytes == a.octets(),
        None => false,
    };
    if names.dns.iter().any(|n| name_matches(n, host)) || names.ips.iter().any(|b| ip_matches(b)) {
        return Ok(());
    }
    let san_of_host_kind = if ip.is_some() { !names.ips.is_empty() } else { !names.dns.is_empty() };
    let check_cn = !san_of_host_kind;
    if check_cn && names.common_names.first().is_some_and(|cn| name_matches(cn, host)) {
        return Ok(());
    }
    let mut shown: Vec<String> = names.dns.iter().map(|n| String::from_utf8_lossy(n).into_owned()).collect();
    shown.extend(names.ips.iter().map(|b| match b.len() {
        4 => IpAddr::from(<[u8; 4]>::try_from(*b).expect("4 bytes")).to_string(),
        16 => IpAddr::from(<[u8; 16]>::try_from(*b).expect("16 bytes")).to_string(),
        _ => "(invalid IP address)".to_owned(),
    }));
    if check_cn {
        shown.extend(names.common_names.first().map(|n| String::from_utf8_lossy(n).into_owned()));
    }
    let mut seen = std::collections::HashSet::new();
    shown.retain(|n| seen.insert(n.clone()));
    Err(match shown.len() {
        0 => format!("the server certificate has no host name to compare with \"{host}\""),
        1 => format!("server certificate for \"{}\" does not match host name \"{host}\"", shown[0]),
        n => format!(
            "server certificate for \"{}\" (and {} other name{}) does not match host name \"{host}\"",
            shown[0],
            n - 1,
            if n == 2 { "" } else { "s" }
        ),
    })
}

/// The tls-server-end-point channel binding data (RFC 5929) of the server's certificate: its
/// hash with the certificate signature's hash function, SHA-256 for MD5 and SHA-1. `None` when
/// the signature has no hash of its own (Ed25519): the server cannot bind to it either.
pub fn server_end_point(cert: &[u8]) -> Option<Vec<u8>> {
    let (_, algorithm) = cert_parts(cert)?;
    let mut parts = elements(algorithm);
    let (0x06, oid) = parts.next()? else { return None };
    const RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01];
    const ECDSA: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03];
    const HASH: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02];
    enum H {
        S256,
        S384,
        S512,
    }
    let hash = match oid {
        [0x2b, 0x65, 0x70] | [0x2b, 0x65, 0x71] => return None, // Ed25519, Ed448
        o if o.starts_with(RSA) && o.len() == RSA.len() + 1 => match o[RSA.len()] {
            0x0c => H::S384,
            0x0d => H::S512,
            // RSASSA-PSS: the hash is in the parameters ([0] hashAlgorithm, default SHA-1).
            0x0a => {
                let params = parts.next().map(|(_, p)| p).unwrap_or(&[]);
                let hash_oid = elements(params)
                    .find(|(t, _)| *t == 0xa0)
                    .and_then(|(_, c)| der(c))
                    .and_then(|(_, alg, _)| elements(alg).next())
                    .map(|(_, oid)| oid);
                match hash_oid {
                    Some(o) if o.starts_with(HASH) && o.get(HASH.len()) == Some(&0x02) => H::S384,
                    Some(o) if o.starts_with(HASH) && o.get(HASH.len()) == Some(&0x03) => H::S512,
                    _ => H::S256,
                }
            }
            _ => H::S256,
        },
        o if o.starts_with(ECDSA) && o.len() == ECDSA.len() + 1 => match o[ECDSA.len()] {
            0x03 => H::S384,
            0x04 => H::S512,
            _ => H::S256,
        },
        _ => H::S256,
    };
    Some(match hash {
        H::S256 => sha2::Sha256::digest(cert).to_vec(),
        H::S384 => sha2::Sha384::digest(cert).to_vec(),
        H::S512 => sha2::Sha512::digest(cert).to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_follow_libpq() {
        assert!(wildcard_matches("*.example.com", "db.example.com"));
        assert!(wildcard_matches("*.example.com", "DB.Example.COM"));
        assert!(!wildcard_matches("*.example.com", "a.b.example.com"), "one label only");
        assert!(!wildcard_matches("*.example.com", "example.com"));
        assert!(!wildcard_matches("*.example.com", ".example.com"));
        assert!(!wildcard_matches("db*.example.com", "db1.example.com"), "only a whole first label");
        assert!(!wildcard_matches("*", "x"));
        assert!(name_matches(b"LocalHost", "localhost"));
        assert!(!name_matches(b"localhost\0.evil", "localhost"));
    }

    #[test]
    fn direct_tls_needs_alpn_postgresql() {
        let mut config = TlsConfig { sslmode: SslMode::Require, ..TlsConfig::default() };
        let postgres = TlsSetup::new(&config, "localhost").unwrap();
        assert_eq!(postgres.config.alpn_protocols, vec![b"postgresql".to_vec()], "offered as libpq 17 does");
        assert!(postgres.alpn_refusal(None).is_none(), "older servers select nothing");
        config.direct = true;
        let direct = TlsSetup::new(&config, "localhost").unwrap();
        assert!(direct.alpn_refusal(Some(b"postgresql")).is_none());
        assert!(direct.alpn_refusal(None).unwrap().contains("without ALPN"));
        assert!(direct.alpn_refusal(Some(b"http/1.1")).unwrap().contains("unexpected ALPN protocol"));
    }

    #[test]
    fn der_reader_rejects_truncation() {
        assert!(der(&[0x30, 0x82, 0x01]).is_none());
        assert!(der(&[0x30, 0x05, 0x01]).is_none());
        assert_eq!(der(&[0x04, 0x01, 0xaa, 0xbb]), Some((0x04, &[0xaa][..], &[0xbb][..])));
        assert!(cert_names(&[0x30, 0x00]).is_none());
        assert!(server_end_point(b"not a certificate").is_none());
    }
}
