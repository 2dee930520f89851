//! Issue 17, item 3: the client, not the server, chooses the authentication it accepts.
//!
//! A fake server plays the man in the middle of a plain-text TCP connection with the default
//! `sslmode=prefer` (it answers the SSL request with 'N') and asks for a cleartext password, an
//! MD5 response, SCRAM with a cheap iteration count or salt, or starts with AuthenticationOk and
//! no challenge at all although a password is configured. Each is refused with an error that
//! says how to allow it, and nothing derived from the password is sent; each is accepted when the
//! URI says so (`require_auth`, `sslmode=disable`). libpq 16's `require_auth` is checked against
//! the fake and against a real cluster whose pg_hba.conf uses password, md5, trust and SCRAM.
mod support;

use std::io;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pgsess::{Code, Error, Session, SessionOptions};
use sha2::{Digest, Sha256};
use support::fake::{be, FakeConn, FakeServer, PASSWORD};
use support::Cluster;

/// No refusal may take longer than this: it is decided on the first message, with no wait
/// (30 s under valgrind, where a SCRAM exchange alone costs seconds of client CPU).
fn quick() -> Duration {
    if slow() {
        Duration::from_secs(30)
    } else {
        Duration::from_millis(1500)
    }
}

/// Under valgrind (scripts/hostile-valgrind sets PGSESS_TEST_SLOW, or valgrind's preload is in
/// LD_PRELOAD) the client's own CPU work runs 20-50 times slower: bounds about that work widen.
fn slow() -> bool {
    std::env::var_os("PGSESS_TEST_SLOW").is_some() || std::env::var("LD_PRELOAD").is_ok_and(|p| p.contains("vgpreload"))
}

fn open(uri: &str) -> Result<Session, Error> {
    let mut o = SessionOptions { db_url: Some(uri.to_owned()), ..Default::default() };
    o.set_pool_max_size(2).unwrap();
    o.set_checkout_timeout_ms(3000).unwrap();
    Session::open("hostile_auth", &o)
}

/// The value of `SELECT 'ok'` on a session opened on `uri`.
fn works(uri: &str) -> String {
    let s = open(uri).unwrap_or_else(|e| panic!("{uri}: {e}"));
    let r = s.query("SELECT 'ok'", &[]).unwrap_or_else(|e| panic!("{uri}: {e}"));
    String::from_utf8(r.set.value(0, 0).unwrap().to_vec()).unwrap()
}

/// The error of opening `uri`, quickly, never showing `password`.
fn refused(uri: &str, password: &str) -> Error {
    let started = Instant::now();
    let e = match open(uri) {
        Ok(_) => panic!("{uri} was accepted"),
        Err(e) => e,
    };
    let took = started.elapsed();
    assert!(took < quick(), "{uri}: refused after {took:?}");
    let all = format!("{e} {e:?}");
    assert!(!all.contains(password), "the password shows in: {all}");
    eprintln!("refused in {took:?}: {e}");
    e
}

/// A refusal by the client (operational, 08001) whose message holds every one of `needles`.
fn assert_refusal(e: &Error, needles: &[&str]) {
    assert_eq!(e.code, Code::PGSESS_OPERATIONAL_ERROR, "{e}");
    assert_eq!(e.sqlstate(), Some("08001"), "{e}");
    for n in needles {
        assert!(e.message.contains(n), "{n:?} missing from: {e}");
    }
}

/// What a script saw the client do, in order.
type Log = Arc<Mutex<Vec<String>>>;

fn note(log: &Log, what: impl Into<String>) {
    log.lock().unwrap().push(what.into());
}

/// The log once it holds `n` entries (a script notes the client's close when its read sees
/// it, which may be just after the client's call returned); at most 2 s.
fn seen(log: &Log, n: usize) -> Vec<String> {
    let started = Instant::now();
    loop {
        let now = log.lock().unwrap().clone();
        if now.len() >= n || started.elapsed() > Duration::from_secs(2) {
            return now;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The client's next message, as the script logs it: `closed` when it went away instead.
fn next_message(c: &mut FakeConn) -> io::Result<Option<(u8, Vec<u8>)>> {
    match c.read_raw() {
        Ok(m) => Ok(Some(m)),
        Err(e) if matches!(e.kind(), io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionReset) => Ok(None),
        Err(e) => Err(e),
    }
}

/// A server that asks with `request` (cleartext or MD5), logs the client's answer, and lets it
/// in whatever it sent.
fn asks_password(request: Vec<u8>, log: Log) -> FakeServer {
    FakeServer::start(move |c| {
        c.send(&request)?;
        match next_message(c)? {
            None => {
                note(&log, "closed");
                Ok(())
            }
            Some((tag, body)) => {
                note(
                    &log,
                    format!("{}:{}", tag as char, String::from_utf8_lossy(body.strip_suffix(&[0]).unwrap_or(&body))),
                );
                c.trust()?;
                c.serve_rest()
            }
        }
    })
}

fn uri_with(server: &FakeServer, query: &str) -> String {
    format!("{}?{query}", server.base_uri())
}

#[test]
fn cleartext_request_over_plain_tcp_is_refused_unless_the_uri_allows_it() {
    let log = Log::default();
    let server = asks_password(be::auth_cleartext(), log.clone());
    // Default sslmode=prefer: the fake answered 'N'; the password is not sent.
    let e = refused(&server.base_uri(), PASSWORD);
    assert_refusal(
        &e,
        &[
            "server requested a cleartext password over a TCP connection without TLS",
            "require_auth=password",
            "sslmode=disable",
        ],
    );
    assert_eq!(server.connections(), 1, "no retry");
    // A second try is refused the same way: nothing was remembered.
    refused(&server.base_uri(), PASSWORD);
    assert_eq!(seen(&log, 2), ["closed", "closed"], "the client sent nothing after the request");

    // Allowed when the URI names it, or says plain text is acceptable.
    assert_eq!(works(&uri_with(&server, "require_auth=password")), "ok");
    assert_eq!(works(&uri_with(&server, "require_auth=scram-sha-256,password")), "ok");
    assert_eq!(works(&server.uri()), "ok"); // sslmode=disable
    assert_eq!(seen(&log, 5)[2..], ["p:secret", "p:secret", "p:secret"]);

    // A negated list names nothing: pgsess's refusal stays.
    let e = refused(&uri_with(&server, "require_auth=!md5"), PASSWORD);
    assert_refusal(&e, &["server requested a cleartext password over a TCP connection without TLS"]);
    // libpq's own refusals come first, with libpq's words.
    let e = refused(&uri_with(&server, "require_auth=!password&sslmode=disable"), PASSWORD);
    assert_refusal(
        &e,
        &[
            "authentication method requirement \"!password\" failed: server requested a cleartext password",
            "require_auth",
        ],
    );
    let e = refused(&uri_with(&server, "require_auth=scram-sha-256"), PASSWORD);
    assert_refusal(
        &e,
        &["authentication method requirement \"scram-sha-256\" failed: server requested a cleartext password"],
    );
    assert_eq!(seen(&log, 8).iter().filter(|s| *s == "closed").count(), 5);
}

#[test]
fn sslmode_allow_retries_a_plain_text_refusal_with_tls() {
    let log = Log::default();
    let server = asks_password(be::auth_cleartext(), log.clone());
    // Plain text first (refused: a password would be sent in clear), then TLS, which the fake
    // does not offer.
    let e = refused(&uri_with(&server, "sslmode=allow"), PASSWORD);
    assert_eq!(e.code, Code::PGSESS_OPERATIONAL_ERROR, "{e}");
    for n in ["does not support SSL", "retried with TLS (sslmode=allow)", "server requested a cleartext password"] {
        assert!(e.message.contains(n), "{n:?} missing from: {e}");
    }
    assert_eq!(seen(&log, 1), ["closed"]);
}

#[test]
fn md5_request_over_plain_tcp_is_refused_unless_the_uri_allows_it() {
    let log = Log::default();
    let salt = [1, 2, 3, 4];
    let server = asks_password(be::auth_md5(salt), log.clone());
    let e = refused(&server.base_uri(), PASSWORD);
    assert_refusal(
        &e,
        &["server requested a hashed password over a TCP connection without TLS", "crack offline", "require_auth=md5"],
    );
    assert_eq!(seen(&log, 1), ["closed"]);
    assert_eq!(works(&uri_with(&server, "require_auth=md5")), "ok");
    assert_eq!(works(&server.uri()), "ok");
    let expected = format!("p:{}", postgres_protocol::authentication::md5_hash(b"fake", PASSWORD.as_bytes(), salt));
    assert_eq!(seen(&log, 3)[1..], [expected.clone(), expected]);
    let e = refused(&uri_with(&server, "require_auth=password"), PASSWORD);
    assert_refusal(&e, &["authentication method requirement \"password\" failed: server requested a hashed password"]);
}

#[test]
fn authentication_ok_without_a_challenge_is_refused_when_a_password_is_configured() {
    let server = FakeServer::honest(); // AuthenticationOk at once: trust, or an impostor
    let e = refused(&server.base_uri(), PASSWORD);
    assert_refusal(
        &e,
        &[
            "server did not complete authentication over a TCP connection without TLS",
            "without asking for the password that is configured",
            "require_auth=none",
            "sslmode=disable",
        ],
    );
    assert_eq!(server.connections(), 1);
    assert_eq!(works(&uri_with(&server, "require_auth=none")), "ok");
    assert_eq!(works(&uri_with(&server, "require_auth=none,scram-sha-256")), "ok");
    assert_eq!(works(&server.uri()), "ok"); // sslmode=disable
                                            // No password configured (and no password file): nothing to protect, as libpq.
    let no_password = format!("postgresql://fake@127.0.0.1:{}/fake?passfile=/nonexistent/pgpass", server.port());
    assert_eq!(works(&no_password), "ok");
    // libpq's rule: a list without none requires an exchange, password or not.
    let e = refused(&format!("{no_password}&require_auth=scram-sha-256"), PASSWORD);
    assert_refusal(
        &e,
        &["authentication method requirement \"scram-sha-256\" failed: server did not complete authentication"],
    );
    let e = refused(&uri_with(&server, "require_auth=!none&sslmode=disable"), PASSWORD);
    assert_refusal(&e, &["authentication method requirement \"!none\" failed: server did not complete authentication"]);
}

// ---- SCRAM, played out in full by the fake ----

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let pad = |b: u8| k.iter().map(|x| x ^ b).collect::<Vec<u8>>();
    let inner = Sha256::new().chain_update(pad(0x36)).chain_update(data).finalize();
    Sha256::new().chain_update(pad(0x5c)).chain_update(inner).finalize().into()
}

fn salted_password(password: &[u8], salt: &[u8], iterations: u32) -> [u8; 32] {
    let mut u = hmac(password, &[salt, &[0, 0, 0, 1]].concat());
    let mut out = u;
    for _ in 1..iterations {
        u = hmac(password, &u);
        out.iter_mut().zip(u).for_each(|(o, x)| *o ^= x);
    }
    out
}

fn base64(bytes: &[u8]) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::new();
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                s.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}

/// How the fake plays SCRAM.
#[derive(Clone, Copy)]
struct Scram {
    iterations: u32,
    salt_len: usize,
    /// Send a server signature that does not verify (a server that does not know the password).
    bad_signature: bool,
    /// Answer the client's proof with AuthenticationOk instead of the server-final message.
    ok_instead_of_final: bool,
}

const HONEST: Scram = Scram { iterations: 4096, salt_len: 16, bad_signature: false, ok_instead_of_final: false };

/// A server speaking SCRAM-SHA-256 as `how` says; it logs `proof ok`/`proof bad` when the client
/// sends its proof, `closed` when the client goes away first.
fn scram_server(how: Scram, log: Log) -> FakeServer {
    FakeServer::start(move |c| {
        c.send(&be::auth_sasl(&["SCRAM-SHA-256"]))?;
        let Some((b'p', body)) = next_message(c)? else {
            note(&log, "no initial response");
            return Ok(());
        };
        // SASLInitialResponse: mechanism, length, client-first message.
        let nul = body.iter().position(|b| *b == 0).unwrap();
        let client_first = String::from_utf8(body[nul + 5..].to_vec()).unwrap();
        let bare = client_first.strip_prefix("n,,").expect("no channel binding over plain text").to_owned();
        let nonce = format!("{}SERVERnonce", bare.split_once("r=").unwrap().1);
        let salt: Vec<u8> = (0..how.salt_len as u8).collect();
        let server_first = format!("r={nonce},s={},i={}", base64(&salt), how.iterations);
        c.send(&be::auth_sasl_continue(server_first.as_bytes()))?;
        let Some((b'p', body)) = next_message(c)? else {
            note(&log, "closed");
            return Ok(());
        };
        let client_final = String::from_utf8(body).unwrap();
        let (without_proof, proof) = client_final.rsplit_once(",p=").unwrap();
        let auth_message = format!("{bare},{server_first},{without_proof}");
        let salted = salted_password(PASSWORD.as_bytes(), &salt, how.iterations);
        let client_key = hmac(&salted, b"Client Key");
        let signature = hmac(&Sha256::digest(client_key), auth_message.as_bytes());
        let expected: Vec<u8> = client_key.iter().zip(signature).map(|(k, s)| k ^ s).collect();
        note(&log, if proof == base64(&expected) { "proof ok" } else { "proof bad" });
        if how.ok_instead_of_final {
            return c.trust().and_then(|_| c.serve_rest());
        }
        let mut verifier = hmac(&hmac(&salted, b"Server Key"), auth_message.as_bytes());
        if how.bad_signature {
            verifier[0] ^= 1;
        }
        c.send(&be::auth_sasl_final(format!("v={}", base64(&verifier)).as_bytes()))?;
        c.trust()?;
        c.serve_rest()
    })
}

#[test]
fn scram_with_postgresqls_defaults_works_over_plain_tcp() {
    let log = Log::default();
    let server = scram_server(HONEST, log.clone());
    assert_eq!(works(&server.base_uri()), "ok");
    assert_eq!(works(&uri_with(&server, "require_auth=scram-sha-256")), "ok");
    assert_eq!(seen(&log, 2), ["proof ok", "proof ok"]);
    let e = refused(&uri_with(&server, "require_auth=password,md5"), PASSWORD);
    assert_refusal(
        &e,
        &["authentication method requirement \"password,md5\" failed: server requested SASL authentication"],
    );
    let e = refused(&uri_with(&server, "require_auth=none"), PASSWORD);
    assert_refusal(&e, &["server requested SASL authentication"]);
    assert_eq!(
        seen(&log, 4),
        ["proof ok", "proof ok", "no initial response", "no initial response"],
        "nothing sent after a require_auth refusal"
    );
}

#[test]
fn scram_iteration_counts_below_4096_are_refused_before_the_proof() {
    for iterations in [0, 1, 4095] {
        let log = Log::default();
        let server = scram_server(Scram { iterations, ..HONEST }, log.clone());
        for uri in [server.base_uri(), server.uri(), uri_with(&server, "require_auth=scram-sha-256")] {
            let e = refused(&uri, PASSWORD);
            assert_refusal(&e, &[&format!("SCRAM iteration count is {iterations}, below the 4096"), "not sent"]);
        }
        assert_eq!(seen(&log, 3), ["closed", "closed", "closed"], "no proof was sent");
    }
}

#[test]
fn scram_with_a_short_salt_or_a_huge_count_is_refused_before_the_proof() {
    for (how, needle) in [
        (Scram { salt_len: 0, ..HONEST }, "salt is 0 bytes"),
        (Scram { salt_len: 4, ..HONEST }, "salt is 4 bytes"),
        (Scram { iterations: 2_000_000_000, ..HONEST }, "iteration count is 2000000000, above the 100000"),
    ] {
        let log = Log::default();
        let server = scram_server(how, log.clone());
        let e = refused(&server.uri(), PASSWORD);
        assert_refusal(&e, &[needle]);
        assert_eq!(seen(&log, 1), ["closed"]);
    }
}

#[test]
fn scram_server_that_does_not_prove_it_knows_the_password_is_refused() {
    for (how, needle) in [
        (Scram { bad_signature: true, ..HONEST }, "the server's SCRAM signature did not verify"),
        (Scram { ok_instead_of_final: true, ..HONEST }, "unexpected message during SCRAM authentication"),
    ] {
        let log = Log::default();
        let server = scram_server(how, log.clone());
        let e = refused(&server.uri(), PASSWORD);
        assert_eq!(e.code, Code::PGSESS_OPERATIONAL_ERROR, "{e}");
        assert_eq!(e.sqlstate(), Some("08P01"), "{e}");
        assert!(e.message.contains(needle), "{e}");
        assert_eq!(seen(&log, 1), ["proof ok"]);
        assert_eq!(server.connections(), 1);
    }
}

// ---- A real cluster: each method of pg_hba.conf, over TCP and over the socket ----

fn auth_cluster() -> &'static Cluster {
    support::shared_with(|| {
        let c = Cluster::start();
        let pw = Cluster::password();
        c.psql(&format!(
            "CREATE ROLE pw_user LOGIN SUPERUSER PASSWORD '{pw}'; CREATE ROLE trust_user LOGIN SUPERUSER; \
             SET password_encryption = 'md5'; CREATE ROLE md5_user LOGIN SUPERUSER PASSWORD '{pw}'"
        ));
        c.set_hba(
            "local all postgres trust\n\
             local all pw_user password\n\
             local all all scram-sha-256\n\
             host all pw_user 127.0.0.1/32 password\n\
             host all md5_user 127.0.0.1/32 md5\n\
             host all trust_user 127.0.0.1/32 trust\n\
             host all all 127.0.0.1/32 scram-sha-256\n",
        );
        c.psql("SELECT pg_reload_conf()");
        c
    })
}

fn tcp(c: &Cluster, user: &str, query: &str) -> String {
    format!(
        "postgresql://{user}:{}@127.0.0.1:{}/pgsess?passfile=/nonexistent/pgpass&{query}",
        Cluster::password(),
        c.port()
    )
}

#[test]
fn real_scram_server_and_require_auth() {
    let c = auth_cluster();
    let (pw, q) = (Cluster::password(), "application_name=hostile_auth");
    assert_eq!(works(&tcp(c, "pgsess", &format!("{q}&require_auth=scram-sha-256"))), "ok");
    assert_eq!(works(&format!("{}?require_auth=scram-sha-256", c.uri())), "ok"); // the socket
    let e = refused(&tcp(c, "pgsess", "require_auth=password"), pw);
    assert_refusal(
        &e,
        &["authentication method requirement \"password\" failed: server requested SASL authentication"],
    );
    let e = refused(&tcp(c, "pgsess", "require_auth=!scram-sha-256"), pw);
    assert_refusal(&e, &["server requested SASL authentication"]);
}

#[test]
fn real_password_md5_and_trust_over_tcp_need_the_uris_consent() {
    let c = auth_cluster();
    let pw = Cluster::password();
    // Give the reload time to apply (it is asynchronous): the trust line lets trust_user in.
    let started = Instant::now();
    while open(&tcp(c, "trust_user", "sslmode=disable")).is_err() {
        assert!(started.elapsed() < Duration::from_secs(5), "pg_hba.conf was not reloaded");
        std::thread::sleep(Duration::from_millis(50));
    }
    for (user, needle, allow) in [
        ("pw_user", "server requested a cleartext password over a TCP connection without TLS", "require_auth=password"),
        ("md5_user", "server requested a hashed password over a TCP connection without TLS", "require_auth=md5"),
        ("trust_user", "server did not complete authentication over a TCP connection without TLS", "require_auth=none"),
    ] {
        let e = refused(&tcp(c, user, ""), pw);
        assert_refusal(&e, &[needle, allow]);
        assert_eq!(works(&tcp(c, user, allow)), "ok", "{user} with {allow}");
        assert_eq!(works(&tcp(c, user, "sslmode=disable&application_name=x")), "ok", "{user} with sslmode=disable");
    }
    // Over the Unix-domain socket the password goes nowhere but to the local server.
    let local = c.uri().replacen("pgsess:", "pw_user:", 1);
    assert_eq!(works(&local), "ok");
}
