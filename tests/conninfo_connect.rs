//! Connecting with what issue 16 added to the configuration, against a real server: libpq's
//! key=value form, hostaddr (no name look-up), a service file naming a password file, and the
//! `PG*` variables libpq sends at startup; and the password hook. The tests take turns
//! (`ENV_LOCK`): one sets process environment variables, which psql (run by the other) would
//! read too.

mod support;

use std::os::unix::fs::PermissionsExt;

use pgsess::{Session, SessionOptions};

static ENV_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn scalar(s: &Session, sql: &str) -> String {
    let r = s.query(sql, &[]).unwrap_or_else(|e| panic!("{sql}: {e}"));
    String::from_utf8(r.set.value(0, 0).expect("a value").to_vec()).unwrap()
}

fn open(url: &str) -> Session {
    let o = SessionOptions { db_url: Some(url.to_owned()), ..SessionOptions::default() };
    Session::open("conninfo", &o).unwrap_or_else(|e| panic!("{url}: {e}"))
}

#[test]
fn key_value_strings_hostaddr_services_and_startup_variables_connect() {
    let _turn = ENV_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let c = support::shared();
    let port = c.port();
    let pw = support::Cluster::password();

    // key=value, quoting included.
    let s = open(&format!(
        "host=127.0.0.1 port={port} user=pgsess password='{pw}' dbname=pgsess application_name='kv test'"
    ));
    assert_eq!(scalar(&s, "SELECT current_setting('application_name')"), "kv test");

    // hostaddr: the name is never looked up (.invalid cannot resolve), the address is used.
    let s = open(&format!(
        "host=db.invalid hostaddr=127.0.0.1 port={port} user=pgsess password={pw} dbname=pgsess \
         application_name=hostaddr sslmode=disable"
    ));
    assert_eq!(scalar(&s, "SELECT host(inet_server_addr())"), "127.0.0.1");

    // requirepeer: the server behind the Unix socket must run as the named OS user.
    let sock = c.socket_dir().display().to_string();
    let over_socket = |peer: &str| {
        SessionOptions {
            db_url: Some(format!(
                "host={sock} port={port} user=pgsess password={pw} dbname=pgsess application_name=peer                  requirepeer={peer}"
            )),
            ..SessionOptions::default()
        }
    };
    let Err(e) = Session::open("conninfo", &over_socket("no-such-os-user")) else { panic!("a wrong peer accepted") };
    let actual = e
        .message
        .split("actual peer user name is \"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("{e}"))
        .to_owned();
    let s = Session::open("conninfo", &over_socket(&actual)).unwrap_or_else(|e| panic!("requirepeer={actual}: {e}"));
    assert_eq!(scalar(&s, "SELECT 1"), "1");

    // A service file naming a password file: no password in the string.
    let dir = std::env::temp_dir().join(format!("pgsess-conninfo-connect-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let passfile = dir.join("pgpass");
    std::fs::write(&passfile, format!("127.0.0.1:{port}:pgsess:pgsess:{pw}\n")).unwrap();
    std::fs::set_permissions(&passfile, std::fs::Permissions::from_mode(0o600)).unwrap();
    let services = dir.join("pg_service.conf");
    std::fs::write(
        &services,
        format!(
            "[conninfo-test]\nhost=127.0.0.1\nport={port}\nuser=pgsess\ndbname=pgsess\npassfile={}\n\
             application_name=from-service\n",
            passfile.display()
        ),
    )
    .unwrap();
    std::env::set_var("PGSERVICEFILE", &services);
    let s = open("service=conninfo-test");
    assert_eq!(scalar(&s, "SELECT current_setting('application_name')"), "from-service");
    std::env::set_var("PGSERVICE", "conninfo-test");
    let s = open("postgresql:///?application_name=uri-over-service");
    assert_eq!(
        scalar(&s, "SELECT current_user || ' ' || current_setting('application_name')"),
        "pgsess uri-over-service"
    );
    let undefined = SessionOptions { db_url: Some("service=not-defined".into()), ..SessionOptions::default() };
    let Err(e) = Session::open("conninfo", &undefined) else { panic!("an undefined service was accepted") };
    assert!(e.message.contains("not-defined"), "{e}");
    std::env::remove_var("PGSERVICE");
    std::env::remove_var("PGSERVICEFILE");

    // PGTZ and PGOPTIONS reach the server as libpq sends them.
    std::env::set_var("PGTZ", "Asia/Tokyo");
    std::env::set_var("PGOPTIONS", "-c statement_timeout=1234");
    let s = open(&format!(
        "host=127.0.0.1 port={port} user=pgsess password={pw} dbname=pgsess application_name=startup-vars"
    ));
    assert_eq!(scalar(&s, "SHOW TimeZone"), "Asia/Tokyo");
    assert_eq!(scalar(&s, "SHOW statement_timeout"), "1234ms");
    std::env::remove_var("PGTZ");
    std::env::remove_var("PGOPTIONS");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_password_hook_sees_each_connect_and_a_rotated_password_is_used_without_a_restart() {
    use std::sync::{Arc, Mutex};

    use pgsess::config::PasswordHook;

    let _turn = ENV_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let c = support::shared();
    let port = c.port();
    c.psql("DROP ROLE IF EXISTS rotator; CREATE ROLE rotator LOGIN PASSWORD 'hunter2'");
    let current = Arc::new(Mutex::new(Some("hunter2".to_owned())));
    let seen: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let (cur, log) = (current.clone(), seen.clone());
    let hook = PasswordHook::new((1, 2), move |host, user| {
        log.lock().unwrap().push((host.to_string(), user.to_owned()));
        Ok(cur.lock().unwrap().clone())
    });
    let mut o = SessionOptions {
        db_url: Some(format!(
            "host=127.0.0.1 port={port} user=rotator dbname=pgsess application_name=rotation sslmode=disable \
             password=Wr0ng-Passw0rd-X"
        )),
        ..SessionOptions::default()
    };
    o.set_password_hook(Some(hook.clone()));
    let s = Session::open("conninfo", &o).unwrap();
    assert_eq!(scalar(&s, "SELECT current_user"), "rotator");
    assert_eq!(seen.lock().unwrap().as_slice(), [(format!("127.0.0.1:{port}"), "rotator".to_owned())]);

    // Rotate: the server's password changes, then the hook's; connections opened from now on
    // use the new one, on the same session and pool.
    c.psql("ALTER ROLE rotator PASSWORD 'never-shown'");
    *current.lock().unwrap() = Some("never-shown".to_owned());
    c.psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'rotation'");
    let mut value = s.query("SELECT current_user", &[]);
    if value.is_err() {
        // The statement that met the terminated connection may fail; the next one reconnects.
        value = s.query("SELECT current_user", &[]);
    }
    let r = value.unwrap_or_else(|e| panic!("after the rotation: {e}"));
    assert_eq!(r.set.value(0, 0), Some(&b"rotator"[..]));
    assert!(seen.lock().unwrap().len() >= 2, "the hook was asked again");

    // None: the password configured otherwise (here the string's, now wrong) is used, and the
    // failure never shows it.
    *current.lock().unwrap() = None;
    let mut o2 = o.clone();
    o2.set_password_hook(Some(PasswordHook::new((1, 3), {
        let cur = current.clone();
        move |_, _| Ok(cur.lock().unwrap().clone())
    })));
    let Err(e) = Session::open("conninfo", &o2) else { panic!("the string's wrong password was accepted") };
    assert!(!e.message.contains("Wr0ng-Passw0rd-X") && !e.message.contains("never-shown"), "{e}");
    assert_eq!(e.code, pgsess::Code::PGSESS_OPERATIONAL_ERROR, "{e}");
}
