//! TLS against a real server, for every sslmode, as libpq behaves.
//!
//! One TLS cluster per test binary: a test CA made with rcgen signs the server certificate (SAN
//! dNSName `localhost` only, no IP address) and a client certificate (CN `cert_user`); a second,
//! unrelated CA signs nothing the server uses. pg_hba.conf has `hostssl` and `hostnossl` lines for
//! different roles, so `allow` and `prefer` fallbacks show, and a `cert` line. Whether a
//! connection is encrypted is asked of the server (`pg_stat_ssl`), never taken from the client.
//! The plain cluster of `support::shared()` has `ssl=off`.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use pgsess::config::{parse_uri, Environment};
use pgsess::conn::PgConn;
use pgsess::{Code, Error, Session, SessionOptions};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use support::Cluster;

const PASSWORD: &str = "pgsess-s3cret";

/// The TLS cluster and the files a client needs.
struct Tls {
    cluster: &'static Cluster,
    /// The CA that signed the server's and the client's certificates.
    ca: PathBuf,
    /// A CA that signed nothing here.
    other_ca: PathBuf,
    client_cert: PathBuf,
    client_key: PathBuf,
    /// A path where no file exists (for "no root certificate").
    missing: PathBuf,
}

fn ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

fn leaf(
    sans: &[&str],
    cn: &str,
    usage: ExtendedKeyUsagePurpose,
    issuer: &CertifiedIssuer<'static, KeyPair>,
) -> (String, String) {
    let mut params = CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
    params.distinguished_name.push(DnType::CommonName, cn);
    params.extended_key_usages = vec![usage];
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, issuer).unwrap();
    (cert.pem(), key.serialize_pem())
}

fn make_tls_cluster() -> Cluster {
    let c = Cluster::start();
    let test_ca = ca("pgsess test CA");
    let other_ca = ca("pgsess unrelated CA");
    let (server_cert, server_key) = leaf(&["localhost"], "localhost", ExtendedKeyUsagePurpose::ServerAuth, &test_ca);
    let (client_cert, client_key) = leaf(&[], "cert_user", ExtendedKeyUsagePurpose::ClientAuth, &test_ca);
    let cert = c.write_server_file("server.crt", server_cert.as_bytes());
    let key = c.write_server_file("server.key", server_key.as_bytes());
    let ca_file = c.write_server_file("ca.crt", test_ca.pem().as_bytes());
    // The client's copies, owned by whoever runs the tests.
    let dir = c.dir();
    std::fs::write(dir.join("client-ca.crt"), test_ca.pem()).unwrap();
    std::fs::write(dir.join("client-other-ca.crt"), other_ca.pem()).unwrap();
    std::fs::write(dir.join("client.crt"), client_cert).unwrap();
    write_mode(&dir.join("client.key"), client_key.as_bytes(), 0o600);
    write_mode(&dir.join("client-open.key"), client_key.as_bytes(), 0o640);

    c.psql(&format!(
        "CREATE ROLE ssl_only LOGIN PASSWORD '{PASSWORD}'; CREATE ROLE plain_only LOGIN PASSWORD '{PASSWORD}'; \
         CREATE ROLE cert_user LOGIN"
    ));
    c.set_hba(
        "local all postgres trust\n\
         local all all scram-sha-256\n\
         hostssl all cert_user 127.0.0.1/32 cert\n\
         hostssl all ssl_only 127.0.0.1/32 scram-sha-256\n\
         hostnossl all plain_only 127.0.0.1/32 scram-sha-256\n\
         host all pgsess 127.0.0.1/32 scram-sha-256\n",
    );
    let q = |p: &Path| p.display().to_string().replace('\'', "''");
    for (name, value) in
        [("ssl", "on".into()), ("ssl_cert_file", q(&cert)), ("ssl_key_file", q(&key)), ("ssl_ca_file", q(&ca_file))]
    {
        c.psql(&format!("ALTER SYSTEM SET {name} = '{value}'"));
    }
    c.restart("fast");
    assert_eq!(c.psql("SHOW ssl"), "on");
    c
}

fn write_mode(path: &Path, contents: &[u8], mode: u32) {
    std::fs::write(path, contents).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn tls() -> &'static Tls {
    static TLS: OnceLock<Tls> = OnceLock::new();
    TLS.get_or_init(|| {
        let cluster = support::shared_with(make_tls_cluster);
        let dir = cluster.dir();
        Tls {
            cluster,
            ca: dir.join("client-ca.crt"),
            other_ca: dir.join("client-other-ca.crt"),
            client_cert: dir.join("client.crt"),
            client_key: dir.join("client.key"),
            missing: dir.join("no-such-root.crt"),
        }
    })
}

fn pct(p: &Path) -> String {
    p.display().to_string().bytes().fold(String::new(), |mut s, b| {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            s.push(b as char);
        } else {
            s.push_str(&format!("%{b:02X}"));
        }
        s
    })
}

/// A URI for `user` at `host` on `cluster`'s TCP port, with the query string `query`. Client
/// certificate defaults are pointed at nothing unless the query names them, so a
/// `~/.postgresql/` of the machine running the tests cannot change the outcome.
fn uri(cluster: &Cluster, user: &str, host: &str, query: &str) -> String {
    let none = pct(&tls().missing);
    let mut q = query.to_owned();
    for (key, value) in [("sslcert", &none), ("sslkey", &none), ("sslrootcert", &none)] {
        if !q.contains(&format!("{key}=")) {
            q.push_str(&format!("&{key}={value}"));
        }
    }
    format!("postgresql://{user}:{PASSWORD}@{host}:{}/pgsess?connect_timeout=10{q}", cluster.port())
}

fn open(uri: &str) -> Result<Session, Error> {
    let mut o = SessionOptions { db_url: Some(uri.to_owned()), ..Default::default() };
    o.set_pool_max_size(2).unwrap();
    o.set_pool_idle_ttl(5);
    Session::open("x", &o)
}

/// Whether the server says the session's connection is encrypted.
fn encrypted(s: &Session) -> bool {
    let r = s.query("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", &[]).unwrap();
    match r.set.value(0, 0) {
        Some(b"t") => true,
        Some(b"f") => false,
        other => panic!("pg_stat_ssl: {other:?}"),
    }
}

fn connects_encrypted(uri: &str) -> bool {
    let s = open(uri).unwrap_or_else(|e| panic!("{uri}: {e}"));
    encrypted(&s)
}

/// The error of opening `uri`, checked never to show the password.
fn refused(uri: &str) -> Error {
    let e = match open(uri) {
        Ok(_) => panic!("{uri} connected"),
        Err(e) => e,
    };
    let all = format!("{e} {e:?} {:?} {:?}", e.detail(), e.server);
    assert!(!all.contains(PASSWORD), "the password shows in: {all}");
    eprintln!("refused as expected: {e}");
    e
}

#[test]
fn verify_full_to_localhost_with_the_test_ca() {
    let t = tls();
    let u = uri(t.cluster, "pgsess", "localhost", &format!("&sslmode=verify-full&sslrootcert={}", pct(&t.ca)));
    let s = open(&u).unwrap();
    assert!(encrypted(&s));
    let r = s.query("SELECT version FROM pg_stat_ssl WHERE pid = pg_backend_pid()", &[]).unwrap();
    let version = String::from_utf8_lossy(r.set.value(0, 0).unwrap()).into_owned();
    assert!(version == "TLSv1.3" || version == "TLSv1.2", "{version}");
}

#[test]
fn verify_full_refuses_a_host_name_not_in_the_certificate() {
    let t = tls();
    let e =
        refused(&uri(t.cluster, "pgsess", "127.0.0.1", &format!("&sslmode=verify-full&sslrootcert={}", pct(&t.ca))));
    assert_eq!(e.code, Code::PGSESS_OPERATIONAL_ERROR, "{e}");
    assert!(e.message.contains("does not match host name \"127.0.0.1\""), "{e}");
    assert!(e.message.contains("\"localhost\""), "names what the certificate is for: {e}");
    assert!(e.message.contains("sslmode=verify-full"), "{e}");
    assert!(e.message.contains(&format!("127.0.0.1:{}", t.cluster.port())), "names the host: {e}");
}

#[test]
fn an_unrelated_ca_is_refused() {
    let t = tls();
    for (mode, host) in [("verify-full", "localhost"), ("verify-ca", "127.0.0.1"), ("verify-ca", "localhost")] {
        let e = refused(&uri(t.cluster, "pgsess", host, &format!("&sslmode={mode}&sslrootcert={}", pct(&t.other_ca))));
        assert!(e.message.contains("unknown CA"), "{mode}: {e}");
        assert!(e.message.contains(&t.other_ca.display().to_string()), "names the root file: {e}");
        assert!(e.message.contains(&format!("sslmode={mode}")), "{e}");
    }
    // require with a root certificate file checks the chain, as libpq does (like verify-ca).
    let e =
        refused(&uri(t.cluster, "pgsess", "127.0.0.1", &format!("&sslmode=require&sslrootcert={}", pct(&t.other_ca))));
    assert!(e.message.contains("unknown CA"), "{e}");
}

#[test]
fn verify_ca_skips_the_host_name() {
    let t = tls();
    assert!(connects_encrypted(&uri(
        t.cluster,
        "pgsess",
        "127.0.0.1",
        &format!("&sslmode=verify-ca&sslrootcert={}", pct(&t.ca))
    )));
    // And require with the right root certificate file: verified, host name not checked.
    assert!(connects_encrypted(&uri(
        t.cluster,
        "pgsess",
        "127.0.0.1",
        &format!("&sslmode=require&sslrootcert={}", pct(&t.ca))
    )));
}

#[test]
fn verify_modes_need_a_root_certificate() {
    let t = tls();
    let e = refused(&uri(t.cluster, "pgsess", "localhost", "&sslmode=verify-full"));
    assert!(e.message.contains("root certificate file") && e.message.contains("does not exist"), "{e}");
    assert!(e.message.contains(&t.missing.display().to_string()), "names the file: {e}");
}

#[test]
fn require_without_a_root_certificate_encrypts_without_verifying() {
    let t = tls();
    // 127.0.0.1 is not in the certificate and no CA is known: require does not care.
    assert!(connects_encrypted(&uri(t.cluster, "pgsess", "127.0.0.1", "&sslmode=require")));
}

#[test]
fn prefer_disable_and_an_ssl_off_server() {
    let t = tls();
    let plain = support::shared();
    assert!(!connects_encrypted(&uri(plain, "pgsess", "127.0.0.1", "&sslmode=prefer")), "ssl=off: plain text");
    assert!(!connects_encrypted(&uri(plain, "pgsess", "127.0.0.1", "")), "prefer is the default");
    assert!(connects_encrypted(&uri(t.cluster, "pgsess", "127.0.0.1", "&sslmode=prefer")));
    assert!(connects_encrypted(&uri(t.cluster, "pgsess", "127.0.0.1", "")), "prefer is the default");
    assert!(!connects_encrypted(&uri(t.cluster, "pgsess", "127.0.0.1", "&sslmode=disable")));
    assert!(!connects_encrypted(&uri(t.cluster, "pgsess", "127.0.0.1", "&sslmode=allow")), "allow: plain first");
    // Modes that demand TLS fail against a server without it, with the reason.
    for mode in ["require", "verify-ca", "verify-full"] {
        let query = format!("&sslmode={mode}&sslrootcert={}", pct(&t.ca));
        let e = refused(&uri(plain, "pgsess", "localhost", &query));
        assert!(e.message.contains("does not support SSL"), "{mode}: {e}");
        assert!(e.message.contains(&format!("sslmode={mode}")), "{e}");
    }
}

#[test]
fn allow_and_prefer_fall_back_as_pg_hba_conf_demands() {
    let t = tls();
    // hostssl only: allow's plain attempt is refused, then TLS works.
    assert!(connects_encrypted(&uri(t.cluster, "ssl_only", "127.0.0.1", "&sslmode=allow")));
    // hostnossl only: prefer's TLS attempt is refused, then plain text works.
    assert!(!connects_encrypted(&uri(t.cluster, "plain_only", "127.0.0.1", "&sslmode=prefer")));
    // A root certificate file makes prefer check the chain; a failed check falls back to plain
    // text (libpq's prefer retries without TLS after any TLS failure).
    let other = format!("&sslmode=prefer&sslrootcert={}", pct(&t.other_ca));
    assert!(!connects_encrypted(&uri(t.cluster, "pgsess", "127.0.0.1", &other)));
    let e = refused(&uri(t.cluster, "ssl_only", "127.0.0.1", &other));
    assert!(e.message.contains("unknown CA") && e.message.contains("retried without TLS"), "both attempts: {e}");
    // disable cannot reach a hostssl-only role, require cannot reach a hostnossl-only role: the
    // server's own error says why.
    let e = refused(&uri(t.cluster, "ssl_only", "127.0.0.1", "&sslmode=disable"));
    assert_eq!(e.sqlstate(), Some("28000"), "{e}");
    assert!(e.message.contains("no pg_hba.conf entry") && e.message.contains("no encryption"), "{e}");
    let e = refused(&uri(t.cluster, "plain_only", "127.0.0.1", "&sslmode=require"));
    assert_eq!(e.sqlstate(), Some("28000"), "{e}");
    assert!(e.message.contains("no pg_hba.conf entry") && e.message.contains("SSL encryption"), "{e}");
}

#[test]
fn a_unix_socket_ignores_sslmode() {
    let t = tls();
    let none = pct(&t.missing);
    for mode in ["require", "verify-full"] {
        let u = format!(
            "postgresql://pgsess:{PASSWORD}@{}:{}/pgsess?sslmode={mode}&sslrootcert={none}",
            pct(t.cluster.socket_dir()),
            t.cluster.port()
        );
        assert!(!connects_encrypted(&u), "{mode}");
    }
}

#[test]
fn several_hosts_negotiate_each() {
    let t = tls();
    let port = t.cluster.port();
    // 127.0.0.1 fails the host name check, then localhost passes it.
    let u = format!(
        "postgresql://pgsess:{PASSWORD}@127.0.0.1:{port},localhost:{port}/pgsess?sslmode=verify-full&sslrootcert={}\
         &sslcert={none}&sslkey={none}",
        pct(&t.ca),
        none = pct(&t.missing)
    );
    assert!(connects_encrypted(&u));
}

#[test]
fn client_certificate_authentication() {
    let t = tls();
    let certs = |key: &Path| format!("&sslcert={}&sslkey={}", pct(&t.client_cert), pct(key));
    let u = uri(
        t.cluster,
        "cert_user",
        "localhost",
        &format!("&sslmode=verify-full&sslrootcert={}{}", pct(&t.ca), certs(&t.client_key)),
    );
    let s = open(&u).unwrap();
    assert!(encrypted(&s));
    let r = s.query("SELECT current_user, client_dn FROM pg_stat_ssl WHERE pid = pg_backend_pid()", &[]).unwrap();
    assert_eq!(r.set.value(0, 0), Some(&b"cert_user"[..]));
    assert_eq!(r.set.value(0, 1), Some(&b"/CN=cert_user"[..]));
    drop(r);
    // Without a certificate the cert line refuses us.
    let e =
        refused(&uri(t.cluster, "cert_user", "localhost", &format!("&sslmode=verify-full&sslrootcert={}", pct(&t.ca))));
    assert_eq!(e.sqlstate(), Some("28000"), "{e}");
    // A key file the group may read is refused before anything is sent, as libpq does.
    let open_key = t.client_key.with_file_name("client-open.key");
    let e = refused(&uri(
        t.cluster,
        "cert_user",
        "localhost",
        &format!("&sslmode=verify-full&sslrootcert={}{}", pct(&t.ca), certs(&open_key)),
    ));
    assert!(e.message.contains("group or world access"), "{e}");
    assert!(e.message.contains(&open_key.display().to_string()), "names the file: {e}");
    // A certificate without its key.
    let e = refused(&uri(
        t.cluster,
        "cert_user",
        "localhost",
        &format!("&sslmode=verify-full&sslrootcert={}{}", pct(&t.ca), certs(&t.missing)),
    ));
    assert!(e.message.contains("not private key file"), "{e}");
}

#[test]
fn channel_binding() {
    let t = tls();
    let root = format!("&sslrootcert={}", pct(&t.ca));
    // SCRAM-SHA-256-PLUS over TLS: require only passes when the binding was used.
    assert!(connects_encrypted(&uri(
        t.cluster,
        "pgsess",
        "localhost",
        &format!("&sslmode=verify-full{root}&channel_binding=require")
    )));
    assert!(connects_encrypted(&uri(t.cluster, "pgsess", "127.0.0.1", "&sslmode=require&channel_binding=require")));
    assert!(connects_encrypted(&uri(
        t.cluster,
        "pgsess",
        "localhost",
        &format!("&sslmode=verify-full{root}&channel_binding=disable")
    )));
    // Without TLS there is nothing to bind to.
    let e = refused(&uri(support::shared(), "pgsess", "127.0.0.1", "&channel_binding=require"));
    assert!(e.message.contains("channel binding is required") && e.message.contains("does not use TLS"), "{e}");
    // Certificate authentication involves no SCRAM, so no binding: libpq refuses it too.
    let u = uri(
        t.cluster,
        "cert_user",
        "localhost",
        &format!(
            "&sslmode=verify-full{root}&sslcert={}&sslkey={}&channel_binding=require",
            pct(&t.client_cert),
            pct(&t.client_key)
        ),
    );
    let e = refused(&u);
    assert!(e.message.contains("without channel binding"), "{e}");
}

/// `PG*` variables, through an environment the test supplies (the process's is shared by the
/// tests running in parallel).
struct Env(Vec<(&'static str, String)>);

impl Environment for Env {
    fn var(&self, name: &str) -> Option<String> {
        self.0.iter().find(|(n, _)| *n == name).map(|(_, v)| v.clone())
    }
    fn os_user(&self) -> Option<String> {
        Some("nobody".to_owned())
    }
    fn default_socket_dir(&self) -> PathBuf {
        PathBuf::from("/nonexistent")
    }
}

fn connect_with(uri: &str, env: &Env) -> Result<bool, Error> {
    let config = parse_uri(uri, env)?;
    let mut conn = PgConn::connect(&config)?;
    let set = conn.simple_query("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")?;
    Ok(set.value(0, 0) == Some(b"t"))
}

#[test]
fn environment_fallbacks() {
    let t = tls();
    let base = format!("postgresql://pgsess:{PASSWORD}@localhost:{}/pgsess", t.cluster.port());
    let s = |p: &Path| p.display().to_string();
    let env = |mode: &str, root: &Path| {
        Env(vec![
            ("PGSSLMODE", mode.to_owned()),
            ("PGSSLROOTCERT", s(root)),
            ("PGSSLCERT", s(&t.missing)),
            ("PGSSLKEY", s(&t.missing)),
        ])
    };
    assert!(connect_with(&base, &env("verify-full", &t.ca)).unwrap());
    let e = connect_with(&base, &env("verify-full", &t.other_ca)).unwrap_err();
    assert!(e.message.contains("unknown CA") && e.message.contains("sslmode=verify-full"), "{e}");
    assert!(!connect_with(&base, &env("disable", &t.ca)).unwrap());
    // The URI wins over the environment.
    assert!(
        connect_with(&format!("{base}?sslmode=require"), &env("disable", &t.other_ca)).is_err(),
        "root cert from env"
    );
    assert!(connect_with(&format!("{base}?sslmode=require&sslrootcert={}", pct(&t.ca)), &env("disable", &t.other_ca))
        .unwrap());
    // HOME's ~/.postgresql/root.crt is the default root certificate: require then verifies.
    let home = t.cluster.dir().join("home");
    std::fs::create_dir_all(home.join(".postgresql")).unwrap();
    std::fs::copy(&t.other_ca, home.join(".postgresql/root.crt")).unwrap();
    let e = connect_with(&base, &Env(vec![("PGSSLMODE", "require".into()), ("HOME", s(&home))])).unwrap_err();
    assert!(e.message.contains("unknown CA"), "{e}");
    // PGSSLCERT and PGSSLKEY: certificate authentication.
    let cert_env = Env(vec![
        ("PGSSLMODE", "verify-full".into()),
        ("PGSSLROOTCERT", s(&t.ca)),
        ("PGSSLCERT", s(&t.client_cert)),
        ("PGSSLKEY", s(&t.client_key)),
    ]);
    let cert_uri = format!("postgresql://cert_user@localhost:{}/pgsess", t.cluster.port());
    assert!(connect_with(&cert_uri, &cert_env).unwrap());
}

#[test]
fn a_hundred_megabytes_each_way_over_tls() {
    let t = tls();
    let s = open(&uri(t.cluster, "pgsess", "localhost", &format!("&sslmode=verify-full&sslrootcert={}", pct(&t.ca))))
        .unwrap();
    assert!(encrypted(&s));
    let big = vec![b'x'; 100 * 1024 * 1024];
    let started = Instant::now();
    let r = s.query("SELECT length($1), md5($1) = md5(repeat('x', 104857600))", &[Some(&big)]).unwrap();
    assert_eq!(r.set.value(0, 0), Some(&b"104857600"[..]));
    assert_eq!(r.set.value(0, 1), Some(&b"t"[..]));
    drop(r);
    eprintln!("100 MB parameter over TLS: {:?}", started.elapsed());
    let started = Instant::now();
    let r = s.query("SELECT repeat('y', 104857600)", &[]).unwrap();
    assert_eq!(r.set.value(0, 0).map(<[u8]>::len), Some(104_857_600));
    assert!(r.set.value(0, 0).unwrap().iter().all(|&b| b == b'y'));
    drop(r);
    eprintln!("100 MB result over TLS: {:?}", started.elapsed());
    // Many rows: the record boundaries fall everywhere inside messages.
    let r = s.query("SELECT g, md5(g::text) FROM generate_series(1, 200000) g", &[]).unwrap();
    assert_eq!(r.set.nrows(), 200_000);
    assert_eq!(r.set.value(199_999, 0), Some(&b"200000"[..]));
}

/// A TCP relay to `port` that records the first 8 bytes of every connection: the request code
/// says whether a connection opened with an SSLRequest or went straight to a CancelRequest.
struct Relay {
    port: u16,
    heads: std::sync::Arc<std::sync::Mutex<Vec<[u8; 8]>>>,
}

impl Relay {
    fn start(port: u16) -> Relay {
        use std::io::{Read, Write};
        use std::net::{TcpListener, TcpStream};
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let relay = Relay { port: listener.local_addr().unwrap().port(), heads: Default::default() };
        let heads = relay.heads.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(mut client) = client else { return };
                let mut head = [0u8; 8];
                if client.read_exact(&mut head).is_err() {
                    continue;
                }
                heads.lock().unwrap().push(head);
                let Ok(mut server) = TcpStream::connect(("127.0.0.1", port)) else { continue };
                if server.write_all(&head).is_err() {
                    continue;
                }
                let (mut c2, mut s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut c2, &mut s2);
                    let _ = s2.shutdown(std::net::Shutdown::Write);
                });
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut server, &mut client);
                    let _ = client.shutdown(std::net::Shutdown::Write);
                });
            }
        });
        relay
    }

    /// (SSLRequests, CancelRequests) seen so far.
    fn counts(&self) -> (usize, usize) {
        let heads = self.heads.lock().unwrap();
        let code = |h: &[u8; 8]| u32::from_be_bytes([h[4], h[5], h[6], h[7]]);
        (heads.iter().filter(|h| code(h) == 80877103).count(), heads.iter().filter(|h| code(h) == 80877102).count())
    }
}

#[test]
fn statement_timeout_and_cancel_over_tls() {
    let t = tls();
    let relay = Relay::start(t.cluster.port());
    let u = format!(
        "postgresql://pgsess:{PASSWORD}@localhost:{}/pgsess?sslmode=verify-full&sslrootcert={}&sslcert={none}\
         &sslkey={none}",
        relay.port,
        pct(&t.ca),
        none = pct(&t.missing)
    );
    let mut o = SessionOptions { db_url: Some(u.clone()), ..Default::default() };
    o.set_pool_max_size(1).unwrap();
    o.set_statement_timeout_ms(300);
    let s = Session::open("x", &o).unwrap();
    assert!(encrypted(&s));
    assert_eq!(relay.counts(), (1, 0));
    let started = Instant::now();
    let e = s.query("SELECT pg_sleep(10)", &[]).unwrap_err();
    assert_eq!(e.code, Code::PGSESS_QUERY_CANCELED, "{e}");
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    assert!(encrypted(&s), "the connection survives");
    // The cancel request went over TLS too: a second SSLRequest, no plain CancelRequest.
    assert_eq!(relay.counts(), (2, 0), "the cancel connection opened with an SSLRequest");
    // A plain-text connection cancels in plain text.
    let plain = Relay::start(t.cluster.port());
    let mut o = SessionOptions {
        db_url: Some(format!(
            "postgresql://pgsess:{PASSWORD}@127.0.0.1:{}/pgsess?sslmode=disable&application_name=plain-cancel",
            plain.port
        )),
        ..Default::default()
    };
    o.set_statement_timeout_ms(300);
    let p = Session::open("x", &o).unwrap();
    assert_eq!(p.query("SELECT pg_sleep(10)", &[]).unwrap_err().code, Code::PGSESS_QUERY_CANCELED);
    assert_eq!(plain.counts(), (0, 1));

    // Session::cancel from another thread, without a timeout.
    let s = std::sync::Arc::new(open(&u).unwrap());
    let worker = {
        let s = s.clone();
        std::thread::spawn(move || s.query("SELECT pg_sleep(10)", &[]).expect_err("cancelled"))
    };
    // Cancel until the statement ends: a cancel that reaches the server before the statement
    // starts is lost, so one is not enough to be sure.
    let started = Instant::now();
    let mut cancelled = 0;
    while !worker.is_finished() {
        std::thread::sleep(Duration::from_millis(50));
        cancelled += s.cancel().1;
        assert!(started.elapsed() < Duration::from_secs(8), "the statement was never cancelled");
    }
    assert!(cancelled > 0);
    let e = worker.join().unwrap();
    assert_eq!(e.code, Code::PGSESS_QUERY_CANCELED, "{e}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

/// COPY both ways and a listener over TLS: records split anywhere, a bad row's error read
/// between writes, notifications that rustls decrypts ahead of the socket's readiness.
#[test]
fn copy_and_notifications_over_tls() {
    let t = tls();
    let u = uri(t.cluster, "pgsess", "localhost", &format!("&sslmode=verify-full&sslrootcert={}", pct(&t.ca)));
    let s = open(&u).unwrap();
    assert!(encrypted(&s));
    drop(s.query("DROP TABLE IF EXISTS tls_copy; CREATE TABLE tls_copy (n int, s text)", &[]).unwrap());
    let mut data = Vec::new();
    for i in 0..200_000 {
        data.extend_from_slice(format!("{i}\tsome text {i}\n").as_bytes());
    }
    let mut c = s.copy_in("COPY tls_copy FROM STDIN").unwrap();
    for piece in data.chunks(4093) {
        c.write(piece).unwrap();
    }
    assert_eq!(c.finish().unwrap(), 200_000);
    drop(c);
    let mut c = s.copy_out("COPY (SELECT * FROM tls_copy ORDER BY n) TO STDOUT").unwrap();
    let mut back = Vec::new();
    while let Some(row) = c.read().unwrap() {
        back.extend_from_slice(row);
    }
    assert!(back == data, "byte for byte over TLS");
    drop(c);
    let mut c = s.copy_in("COPY tls_copy FROM STDIN").unwrap();
    let e = (0..500_000).find_map(|i| c.write(if i == 300_000 { b"x\ty\n" } else { b"1\tz\n" }).err());
    let e = e.unwrap_or_else(|| c.finish().unwrap_err());
    assert_eq!(e.sqlstate(), Some("22P02"), "{e}");
    drop(c);
    s.listen("tls_chan").unwrap();
    for i in 0..100 {
        drop(s.query(&format!("NOTIFY tls_chan, '{i}'"), &[]).unwrap());
    }
    for i in 0..100 {
        let n = s.next_notification(Some(std::time::Duration::from_secs(10))).unwrap().expect("over TLS");
        assert_eq!(n.payload.to_str().unwrap(), i.to_string());
    }
    drop(s.query("DROP TABLE tls_copy", &[]).unwrap());
}
