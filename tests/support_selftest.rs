//! The test harness's own test: tests/support (throwaway clusters) works.
mod support;

use std::time::Instant;
use support::Cluster;

#[test]
fn cluster_lifecycle() {
    let t = Instant::now();
    let c = Cluster::start();
    eprintln!("cluster start: {:?}", t.elapsed());
    assert!(c.uri().starts_with("postgresql://pgsess:pgsess-s3cret@%2F"));
    assert!(c.uri().ends_with(&format!(":{}/pgsess", c.port())));
    assert_eq!(c.tcp_uri(), format!("postgresql://pgsess:pgsess-s3cret@127.0.0.1:{}/pgsess", c.port()));

    let mut ctl = c.control();
    let one: i32 = ctl.query_one("SELECT 1", &[]).unwrap().get(0);
    assert_eq!(one, 1);
    assert_eq!(c.psql("SELECT current_user"), "postgres");
    assert_eq!(
        c.psql("SELECT rolsuper, rolpassword LIKE 'SCRAM-SHA-256$%' FROM pg_authid WHERE rolname = 'pgsess'"),
        "t|t"
    );
    assert_eq!(c.psql("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'pgsess'"), "pgsess");
    assert_eq!(c.psql("SHOW fsync"), "off");
    assert_eq!(c.psql("SHOW max_connections"), "200");

    // The pgsess role needs its password, over TCP and over the socket.
    let mut tcp = postgres::Config::new();
    tcp.host("127.0.0.1");
    let mut unix = postgres::Config::new();
    unix.host_path(c.socket_dir());
    for mut cfg in [tcp, unix] {
        cfg.port(c.port()).user("pgsess").dbname("pgsess");
        assert!(cfg.connect(postgres::NoTls).is_err(), "no password must fail");
        cfg.password(Cluster::password());
        let mut cl = cfg.connect(postgres::NoTls).unwrap();
        let who: String = cl.query_one("SELECT current_user::text", &[]).unwrap().get(0);
        assert_eq!(who, "pgsess");
    }
    // And the URI forms parse (the TCP one is accepted by the postgres crate).
    let mut cl = postgres::Client::connect(&c.tcp_uri(), postgres::NoTls).unwrap();
    cl.simple_query("SELECT 1").unwrap();

    let t = Instant::now();
    c.restart("immediate");
    eprintln!("restart immediate: {:?}", t.elapsed());
    assert!(ctl.query_one("SELECT 1", &[]).is_err(), "old session must be gone");
    let mut ctl = c.control();
    let two: i32 = ctl.query_one("SELECT 2", &[]).unwrap().get(0);
    assert_eq!(two, 2);
    drop(ctl);

    c.restart("fast");
    c.stop();
    assert!(postgres::Config::new()
        .host_path(c.socket_dir())
        .port(c.port())
        .user("postgres")
        .connect(postgres::NoTls)
        .is_err());
    c.start_again();
    assert_eq!(c.psql("SELECT 3"), "3");

    let dir = c.dir().to_path_buf();
    drop(c);
    assert!(!dir.exists(), "drop removes the cluster dir");
}

#[test]
fn start_with_extra_settings() {
    let c = Cluster::start_with(&["statement_timeout=12345", "-c work_mem=8MB"]);
    assert_eq!(c.psql("SHOW work_mem"), "8MB");
    assert_eq!(
        c.psql("SELECT setting, source FROM pg_settings WHERE name = 'statement_timeout'"),
        "12345|command line"
    );
    c.restart("immediate");
    assert_eq!(c.psql("SHOW work_mem"), "8MB", "settings survive a restart");
}

#[test]
fn shared_cluster_is_shared() {
    let a = support::shared();
    let b = support::shared();
    assert!(std::ptr::eq(a, b));
    assert_eq!(a.psql("SELECT 1"), "1");
}

/// The fake server (tests/support/fake.rs) answers the library honestly: simple and extended
/// protocol, cached statements, binary results and transactions, so a hostile test's "the next
/// statement is right" means something.
#[test]
fn the_fake_server_answers_honestly() {
    use pgsess::conn::Param;
    use pgsess::{Session, SessionOptions};
    use support::fake::FakeServer;
    let server = FakeServer::honest();
    let mut o = SessionOptions { db_url: Some(server.uri()), ..Default::default() };
    o.set_statement_cache(8).unwrap();
    let s = Session::open("fake", &o).unwrap();
    let r = s.query("SELECT 'one'", &[]).unwrap();
    assert_eq!(r.set.value(0, 0), Some(&b"one"[..]));
    drop(r);
    for _ in 0..3 {
        let r = s.query("SELECT $1", &[Some(b"two")]).unwrap();
        assert_eq!(r.set.value(0, 0), Some(&b"two"[..]));
    }
    let r = s.query_binary("SELECT 7", &[], &[]).unwrap();
    assert_eq!(r.set.value(0, 0), Some(&7i32.to_be_bytes()[..]));
    drop(r);
    let p = [Param { value: Some(b"three"), binary: false }];
    let r = s.query_params("SELECT $1", &[25], &p).unwrap();
    assert_eq!(r.set.value(0, 0), Some(&b"three"[..]));
    drop(r);
    let tx = s.begin().unwrap();
    let r = tx.query("SELECT 'in tx'", &[]).unwrap();
    assert_eq!(r.set.value(0, 0), Some(&b"in tx"[..]));
    drop(r);
    tx.commit().unwrap();
    drop(s);
    assert!(server.connections() >= 1);
    assert!(server.script_errors().is_empty(), "{:?}", server.script_errors());
}
