//! The TLS keywords issue 16 added, against a real TLS server: `ssl_min_protocol_version` and
//! `ssl_max_protocol_version` (the version the server reports in `pg_stat_ssl`), and
//! `sslcertmode=disable` (no client certificate sent, so a `cert` line of pg_hba.conf refuses the
//! connection that `sslcertmode=allow` makes; `sslcertmode=require` refuses a server that asks
//! for no certificate), `sslcrl` and `sslcrldir` (a revoked server certificate is refused).

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use pgsess::{Session, SessionOptions};
use rcgen::{
    date_time_ymd, BasicConstraints, CertificateParams, CertificateRevocationListParams, CertifiedIssuer, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyIdMethod, KeyPair, KeyUsagePurpose, RevokedCertParams, SerialNumber,
};
use support::Cluster;

const PASSWORD: &str = "pgsess-s3cret";
/// The encrypted client key's password (sslpassword).
const KEY_PASSWORD: &str = "k3y-pa55";

fn leaf(
    cn: &str,
    sans: &[&str],
    usage: ExtendedKeyUsagePurpose,
    issuer: &CertifiedIssuer<'static, KeyPair>,
) -> (String, String) {
    let mut params = CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
    params.distinguished_name.push(DnType::CommonName, cn);
    params.extended_key_usages = vec![usage];
    // The server's certificate has serial 7, which the "revoked" list names.
    params.serial_number = Some(SerialNumber::from(vec![if cn == "localhost" { 7u8 } else { 8 }]));
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, issuer).unwrap();
    (cert.pem(), key.serialize_pem())
}

fn make_tls_cluster() -> Cluster {
    let c = Cluster::start();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, "pgsess tls_settings CA");
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
    let (server_cert, server_key) = leaf("localhost", &["localhost"], ExtendedKeyUsagePurpose::ServerAuth, &ca);
    let (client_cert, client_key) = leaf("cert_user", &[], ExtendedKeyUsagePurpose::ClientAuth, &ca);
    let cert = c.write_server_file("server.crt", server_cert.as_bytes());
    let key = c.write_server_file("server.key", server_key.as_bytes());
    let ca_file = c.write_server_file("ca.crt", ca.pem().as_bytes());
    let dir = c.dir();
    std::fs::write(dir.join("client-ca.crt"), ca.pem()).unwrap();
    std::fs::write(dir.join("client.crt"), client_cert).unwrap();
    std::fs::write(dir.join("client.key"), &client_key).unwrap();
    std::fs::set_permissions(dir.join("client.key"), std::fs::Permissions::from_mode(0o600)).unwrap();
    // The same key encrypted (PKCS#8, PBES2: PBKDF2-SHA256 and AES-256-CBC, as `openssl pkcs8
    // -topk8` writes it), and a file in OpenSSL's legacy encrypted PEM form (its headers are what
    // pgsess looks at).
    let der = pkcs8::der::pem::decode_vec(client_key.as_bytes()).unwrap().1;
    let params = pkcs8::pkcs5::pbes2::Parameters::pbkdf2_sha256_aes256cbc(2048, &[7u8; 16], &[9u8; 16]).unwrap();
    let encrypted =
        pkcs8::PrivateKeyInfo::try_from(der.as_slice()).unwrap().encrypt_with_params(params, KEY_PASSWORD).unwrap();
    let pem = encrypted.to_pem("ENCRYPTED PRIVATE KEY", pkcs8::LineEnding::LF).unwrap();
    std::fs::write(dir.join("client-enc.key"), pem.as_bytes()).unwrap();
    std::fs::write(
        dir.join("client-legacy.key"),
        "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-256-CBC,00112233445566778899AABBCCDDEEFF\n\n\
         AAAA\n-----END RSA PRIVATE KEY-----\n",
    )
    .unwrap();
    for f in ["client-enc.key", "client-legacy.key"] {
        std::fs::set_permissions(dir.join(f), std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    // Revocation lists: one naming the server's certificate, one naming another.
    let crl = |serial: u8| {
        CertificateRevocationListParams {
            this_update: date_time_ymd(2024, 1, 1),
            next_update: date_time_ymd(2100, 1, 1),
            crl_number: SerialNumber::from(vec![1u8]),
            issuing_distribution_point: None,
            revoked_certs: vec![RevokedCertParams {
                serial_number: SerialNumber::from(vec![serial]),
                revocation_time: date_time_ymd(2024, 1, 1),
                reason_code: None,
                invalidity_date: None,
            }],
            key_identifier_method: KeyIdMethod::Sha256,
        }
        .signed_by(&ca)
        .unwrap()
        .pem()
        .unwrap()
    };
    std::fs::write(dir.join("revoked.crl"), crl(7)).unwrap();
    std::fs::write(dir.join("other.crl"), crl(99)).unwrap();
    std::fs::create_dir_all(dir.join("crldir")).unwrap();
    std::fs::write(dir.join("crldir/revoked.r0"), crl(7)).unwrap();
    c.psql("CREATE ROLE cert_user LOGIN");
    c.set_hba(
        "local all postgres trust\n\
         local all all scram-sha-256\n\
         hostssl all cert_user 127.0.0.1/32 cert\n\
         hostssl all pgsess 127.0.0.1/32 scram-sha-256\n",
    );
    let q = |p: &Path| p.display().to_string().replace('\'', "''");
    for (name, value) in
        [("ssl", "on".into()), ("ssl_cert_file", q(&cert)), ("ssl_key_file", q(&key)), ("ssl_ca_file", q(&ca_file))]
    {
        c.psql(&format!("ALTER SYSTEM SET {name} = '{value}'"));
    }
    c.restart("fast");
    c
}

fn open(c: &Cluster, user: &str, extra: &str) -> pgsess::Result<Session> {
    let dir = c.dir().display().to_string();
    let url = format!(
        "host=localhost port={} user={user} password={PASSWORD} dbname=pgsess sslmode=verify-full \
         sslrootcert={dir}/client-ca.crt sslcert={dir}/client.crt sslkey={dir}/client.key {extra}",
        c.port()
    );
    Session::open("tls", &SessionOptions { db_url: Some(url), ..SessionOptions::default() })
}

fn tls_version(s: &Session) -> String {
    let r = s.query("SELECT version FROM pg_stat_ssl WHERE pid = pg_backend_pid()", &[]).unwrap();
    String::from_utf8(r.set.value(0, 0).expect("a TLS connection").to_vec()).unwrap()
}

#[test]
fn protocol_versions_and_sslcertmode_take_effect() {
    let c = support::shared_with(make_tls_cluster);
    let s = open(c, "pgsess", "application_name=v12 ssl_max_protocol_version=TLSv1.2").unwrap();
    assert_eq!(tls_version(&s), "TLSv1.2");
    let s = open(c, "pgsess", "application_name=v13 ssl_min_protocol_version=TLSv1.3").unwrap();
    assert_eq!(tls_version(&s), "TLSv1.3");
    let s = open(c, "pgsess", "application_name=vdefault").unwrap();
    assert_eq!(tls_version(&s), "TLSv1.3", "the default offers the highest");

    // Certificate authentication: the certificate is sent with allow (the default), not with disable.
    let s = open(c, "cert_user", "application_name=cert-allow sslcertmode=allow").unwrap();
    let r = s.query("SELECT current_user", &[]).unwrap();
    assert_eq!(r.set.value(0, 0), Some(&b"cert_user"[..]));
    let Err(e) = open(c, "cert_user", "application_name=cert-disable sslcertmode=disable") else {
        panic!("connected without a client certificate")
    };
    assert!(!e.message.contains(PASSWORD), "{e}");
    eprintln!("refused as expected: {e}");

    // Revocation lists: the server's certificate revoked in a file or a directory, or not.
    let dir = c.dir().display().to_string();
    let s = open(c, "pgsess", &format!("application_name=crl-other sslcrl={dir}/other.crl")).unwrap();
    assert_eq!(tls_version(&s), "TLSv1.3");
    for extra in [format!("sslcrl={dir}/revoked.crl"), format!("sslcrldir={dir}/crldir")] {
        let Err(e) = open(c, "pgsess", &format!("application_name=crl-revoked {extra}")) else {
            panic!("{extra}: a revoked server certificate was accepted")
        };
        assert!(e.message.contains("revoked"), "{extra}: {e}");
    }

    // sslcertmode=require: a server with ssl_ca_file asks for a client certificate; once it has
    // none it asks for nothing, and the connection is refused as libpq refuses it.
    let s = open(c, "cert_user", "application_name=cert-require sslcertmode=require").unwrap();
    assert_eq!(s.query("SELECT 1", &[]).unwrap().set.value(0, 0), Some(&b"1"[..]));
    c.psql("ALTER SYSTEM RESET ssl_ca_file");
    c.psql("SELECT pg_reload_conf()");
    std::thread::sleep(std::time::Duration::from_millis(500));
    let s = open(c, "pgsess", "application_name=no-request sslcertmode=allow").unwrap();
    assert_eq!(tls_version(&s), "TLSv1.3");
    let Err(e) = open(c, "pgsess", "application_name=no-request-required sslcertmode=require") else {
        panic!("sslcertmode=require accepted a server that asked for no certificate")
    };
    assert!(e.message.contains("without a valid SSL certificate"), "{e}");
}

/// `sslnegotiation=direct` (libpq 17): the TLS handshake without an SSLRequest, with ALPN
/// `postgresql`. Only a PostgreSQL 17 server takes it; against an older one (Debian 12 has 15)
/// the test says it is skipped and checks what a user of one gets instead: a prompt, explained
/// refusal, never a hang or a plain-text fallback.
#[test]
fn sslnegotiation_direct() {
    let c = support::shared_with(make_tls_cluster);
    let s = open(c, "pgsess", "application_name=direct-probe").unwrap();
    let r = s.query("SHOW server_version_num", &[]).unwrap();
    let version: u32 = std::str::from_utf8(r.set.value(0, 0).unwrap()).unwrap().parse().unwrap();
    drop(r);
    let started = std::time::Instant::now();
    let direct = open(c, "pgsess", "application_name=direct sslnegotiation=direct connect_timeout=5");
    if version >= 170000 {
        let s = direct.unwrap();
        assert_eq!(tls_version(&s), "TLSv1.3");
        return;
    }
    eprintln!(
        "sslnegotiation_direct: skipped against a server: direct TLS needs PostgreSQL 17 or later, and the test \
         server is {version}; checked instead that an older server refuses it promptly and clearly"
    );
    let Err(e) = direct else { panic!("a PostgreSQL {version} server accepted direct TLS") };
    assert!(started.elapsed() < std::time::Duration::from_secs(5), "took {:?}", started.elapsed());
    assert!(e.message.contains("sslnegotiation=direct needs a PostgreSQL 17"), "{e}");
    assert!(!e.message.contains(PASSWORD), "{e}");
    // A weak sslmode is refused before connecting, as libpq 17 refuses it.
    for mode in ["prefer", "allow", "disable"] {
        let url = format!("host=localhost port={} sslmode={mode} sslnegotiation=direct", c.port());
        let Err(e) = pgsess::config::check(&url, &pgsess::config::ProcessEnvironment) else {
            panic!("sslmode={mode} with sslnegotiation=direct passed the check")
        };
        assert!(e.message.contains("may not be used with sslnegotiation=direct"), "{mode}: {e}");
    }
}

/// `sslpassword`: certificate authentication with an encrypted PKCS#8 key works with the right
/// password and fails, saying why, without one or with a wrong one; the legacy encrypted PEM form
/// is refused with the command that converts it. No message shows either password.
#[test]
fn sslpassword_decrypts_an_encrypted_client_key() {
    let c = support::shared_with(make_tls_cluster);
    let dir = c.dir().display().to_string();
    let with = |key: &str, extra: &str| {
        let url = format!(
            "host=localhost port={} user=cert_user dbname=pgsess sslmode=verify-full sslrootcert={dir}/client-ca.crt \
             sslcert={dir}/client.crt sslkey={dir}/{key} {extra}",
            c.port()
        );
        Session::open("tls", &SessionOptions { db_url: Some(url), ..SessionOptions::default() })
    };
    let s = with("client-enc.key", &format!("application_name=enc-key sslpassword={KEY_PASSWORD}")).unwrap();
    let r = s.query("SELECT current_user", &[]).unwrap();
    assert_eq!(r.set.value(0, 0), Some(&b"cert_user"[..]));
    drop(r);
    // An unencrypted key ignores sslpassword, as in libpq.
    with("client.key", "application_name=plain-key sslpassword=unused").unwrap();
    for (key, extra, expect) in [
        ("client-enc.key", "application_name=enc-none", "is encrypted: set sslpassword"),
        ("client-enc.key", "application_name=enc-wrong sslpassword=wrong-one", "could not decrypt private key file"),
        ("client-legacy.key", "application_name=legacy sslpassword=k3y-pa55", "openssl pkcs8 -topk8"),
    ] {
        let Err(e) = with(key, extra) else { panic!("{key} {extra}: connected") };
        assert!(e.message.contains(expect), "{key} {extra}: {e}");
        assert!(!e.message.contains(KEY_PASSWORD) && !e.message.contains("wrong-one"), "{e}");
    }
    // pgsess-check's report never shows it.
    let url = format!("host=localhost sslpassword={KEY_PASSWORD} sslkey={dir}/client-enc.key");
    let Ok(checked) = pgsess::config::check(&url, &pgsess::config::ProcessEnvironment) else { panic!("check failed") };
    let report = checked.report();
    assert!(!report.contains(KEY_PASSWORD) && report.contains("sslpassword=********"), "{report}");
}
