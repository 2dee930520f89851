//! Connection strings as libpq reads them (issue 16, "Proof"): a table of connection strings
//! from libpq's documentation and its regression tests (`src/interfaces/libpq/t/001_uri.pl`),
//! URI and key=value, with escapes, IPv6, several hosts and services, each parsed by pgsess and
//! by libpq's own `PQconninfoParse` (through `tests/libpq/conninfo_parse.c`, linked against the
//! libpq installed here); both must accept it with the same settings, or both refuse it. Also:
//! every keyword the local libpq knows is in pgsess's table, a service file resolves to what
//! libpq's `PQconndefaults` takes from it, and `pgsess-check` prints what it should.
//!
//! Without libpq's C headers (pkg-config libpq, libpq-fe.h) the comparisons say they are
//! skipped and why.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use pgsess::config::{keywords, parse_settings, parse_uri, Environment};

/// Connection strings from libpq's documentation (libpq-connect, "Connection Strings",
/// "Parameter Key Words", "The Connection Service File") and regression tests (001_uri.pl),
/// plus edge cases of `conninfo_parse` and `conninfo_uri_parse_options`. Refused strings
/// are included: libpq and pgsess must refuse the same ones.
const CASES: &[&str] = &[
    // 001_uri.pl
    "postgresql://uri-user:secret@host:12345/db",
    "postgresql://uri-user@host:12345/db",
    "postgresql://uri-user@host/db",
    "postgresql://host:12345/db",
    "postgresql://host/db",
    "postgresql://uri-user@host:12345/",
    "postgresql://uri-user@host/",
    "postgresql://uri-user@",
    "postgresql://host:12345/",
    "postgresql://host:12345",
    "postgresql://host/",
    "postgresql://host",
    "postgresql://",
    "postgresql://?hostaddr=127.0.0.1",
    "postgresql://example.com?hostaddr=63.1.2.4",
    "postgresql://%68ost/",
    "postgresql://host/db?user=uri-user",
    "postgresql://host/db?user=uri-user&port=12345",
    "postgresql://host/db?u%73er=someotheruser&port=12345",
    "postgresql://host/db?u%7aer=someotheruser&port=12345",
    "postgresql://host:12345?user=uri-user",
    "postgresql://host?user=uri-user",
    "postgresql://host?",
    "postgresql://[::1]:12345/db",
    "postgresql://[::1]/db",
    "postgresql://[2001:db8::1234]/",
    "postgresql://[200z:db8::1234]/",
    "postgresql://[::1]",
    "postgres://",
    "postgres:///",
    "postgres:///db",
    "postgres://uri-user@/db",
    "postgres://?host=/path/to/socket/dir",
    "postgresql://host?uzer=",
    "postgre://",
    "postgres://[::1",
    "postgres://[]",
    "postgres://[::1]z",
    "postgresql://host?zzz",
    "postgresql://host?value1&value2",
    "postgresql://host?key=key=value",
    "postgres://host?dbname=%XXfoo",
    "postgresql://a%00b",
    "postgresql://%zz",
    "postgresql://%1",
    "postgresql://%",
    "postgres://@host",
    "postgres://host:/",
    "postgres://:12345/",
    "postgres://otheruser@?host=/no/such/directory",
    "postgres://otheruser@/?host=/no/such/directory",
    "postgres://otheruser@:12345?host=/no/such/socket/path",
    "postgres://otheruser@:12345/db?host=/path/to/socket",
    "postgres://:12345/db?host=/path/to/socket",
    "postgres://:12345?host=/path/to/socket",
    "postgres://%2Fvar%2Flib%2Fpostgresql/dbname",
    "postgresql://host?sslmode=disable",
    "postgresql://host?sslmode=prefer",
    "postgresql://host?sslmode=verify-full",
    // The documentation's URI examples.
    "postgresql://localhost",
    "postgresql://localhost:5433",
    "postgresql://localhost/mydb",
    "postgresql://user@localhost",
    "postgresql://user:secret@localhost",
    "postgresql://other@localhost/otherdb?connect_timeout=10&application_name=myapp",
    "postgresql://host1:123,host2:456/somedb?target_session_attrs=any&application_name=myapp",
    "postgresql:///mydb?host=localhost&port=5433",
    "postgresql://[2001:db8::1234]/database",
    "postgresql:///dbname?host=/var/lib/postgresql",
    "postgresql://%2Fvar%2Flib%2Fpostgresql/dbname",
    "postgresql://host1:1,host2:2,host3:3/",
    "postgresql://host1,host2,host3/",
    "postgresql:///?service=myservice",
    // Escapes, passwords, several hosts, query keywords.
    "postgresql://us%40er:p%40ss%3Aw%2Frd@db.example.com:6000/my%20db",
    "postgresql://u:hunter2?x@h/db",
    "postgresql://u:hunter2:x@h/db",
    "postgresql://u:@h/db",
    "postgresql://:hunter2@h/db",
    "postgresql://h/db?ssl=true",
    "postgresql://h/db?ssl=false",
    "postgresql://h/db?requiressl=1",
    "postgresql://h/db?options=-c%20geqo%3Doff",
    "postgresql://h/db?application_name=a%26b",
    "postgresql://h?host=x&host=y",
    "postgresql://h/db?&",
    "postgresql://h/db?nosuchkeyword=1",
    "postgresql://[::1]:1,[fe80::1%25eth0]:2/d",
    "postgresql://a:1,b,[::1]:3/d?load_balance_hosts=random",
    "postgresql://h:5432/db?sslmode=verify-full&sslrootcert=system&sslsni=0",
    "postgresql://h/db?keepalives=1&keepalives_idle=30&keepalives_interval=5&keepalives_count=3",
    "postgresql://h/db?tcp_user_timeout=1000&connect_timeout=3",
    "postgresql://h/db?password=hunter2&passfile=/p/pgpass",
    // The documentation's key=value examples, and conninfo_parse's rules.
    "host=localhost port=5432 dbname=mydb connect_timeout=10",
    "host=/var/lib/postgresql dbname=mydb",
    "host=host1,host2 port=123,456 target_session_attrs=read-write",
    "host=localhost hostaddr=127.0.0.1 dbname=mydb",
    "host=example.com hostaddr=::1 port=6543",
    "service=mydb",
    "service=mydb user=override",
    "dbname = 'my db'  user=a\\ b",
    "password='it\\'s a \\\\ test'",
    "password=hunter2 host='a b'",
    "host='' port=5",
    "host= port=5",
    "host='a'port=1",
    "host=a host=b",
    "options='-c geqo=off -c statement_timeout=5s'",
    "application_name=\\'quoted\\'",
    "\thost=tabbed\n  port=1\r\n",
    "requiressl=1",
    "requiressl=0",
    "sslmode=require sslcert=/c.crt sslkey=/c.key sslrootcert=/root.crt",
    "channel_binding=require sslmode=require",
    "client_encoding=UTF8 fallback_application_name=fb",
    "gssencmode=disable krbsrvname=postgres",
    "replication=database",
    "",
    "   ",
    "=x",
    "host",
    "host=a junk",
    "host='unterminated",
    "bogus=1",
    "Host=a",
    "host=a\\",
];

fn helper() -> Option<&'static Path> {
    static HELPER: OnceLock<Option<PathBuf>> = OnceLock::new();
    HELPER
        .get_or_init(|| {
            let flags = match Command::new("pkg-config").args(["--cflags", "--libs", "libpq"]).output() {
                Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).into_owned(),
                _ => {
                    eprintln!("skipped: pkg-config finds no libpq (install libpq-dev to compare with libpq)");
                    return None;
                }
            };
            let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("conninfo_parse");
            let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/libpq/conninfo_parse.c");
            let status = Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()))
                .arg("-std=c99")
                .arg(&src)
                .arg("-o")
                .arg(&out)
                .args(flags.split_whitespace())
                .status();
            match status {
                Ok(s) if s.success() => Some(out),
                _ => {
                    eprintln!(
                        "skipped: tests/libpq/conninfo_parse.c does not build (are libpq's C headers installed?)"
                    );
                    None
                }
            }
        })
        .as_deref()
}

fn unescape(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('t') => out.push('\t'),
                Some('n') => out.push('\n'),
                Some(o) => out.push(o),
                None => {}
            }
        } else {
            out.push(c);
        }
    }
    out
}

type Parsed = Result<Vec<(String, String)>, String>;

/// libpq's reading of each string.
fn libpq_parse(helper: &Path, cases: &[&str]) -> Vec<Parsed> {
    let mut child = Command::new(helper)
        .arg("parse")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("the libpq helper starts");
    let mut input = Vec::new();
    for c in cases {
        input.extend_from_slice(c.as_bytes());
        input.push(0);
    }
    child.stdin.take().unwrap().write_all(&input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let mut results = Vec::new();
    let mut current: Parsed = Ok(Vec::new());
    for line in text.lines() {
        if line == "--" {
            results.push(std::mem::replace(&mut current, Ok(Vec::new())));
            continue;
        }
        let (k, v) = line.split_once('\t').expect("keyword<TAB>value");
        if k == "ERROR" {
            current = Err(unescape(v).trim().to_owned());
        } else if let Ok(pairs) = &mut current {
            pairs.push((k.to_owned(), unescape(v)));
        }
    }
    assert_eq!(results.len(), cases.len());
    results
}

/// The keywords (and their variables) the libpq installed here knows.
fn libpq_keywords(helper: &Path) -> Vec<(String, String)> {
    let out = Command::new(helper).arg("keywords").output().unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let (k, e) = l.split_once('\t').unwrap();
            (k.to_owned(), e.to_owned())
        })
        .collect()
}

fn pgsess_parse(s: &str) -> Parsed {
    match parse_settings(s) {
        Ok(settings) => {
            let mut v: Vec<(String, String)> = settings.iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
            v.sort();
            Ok(v)
        }
        Err(e) => Err(e.message),
    }
}

#[test]
fn the_table_parses_as_libpq_parses_it() {
    assert!(CASES.len() >= 60);
    let Some(helper) = helper() else { return };
    let known: Vec<String> = libpq_keywords(helper).into_iter().map(|(k, _)| k).collect();
    let mut compared = 0;
    let mut skipped = Vec::new();
    let mut mismatches = Vec::new();
    for (case, libpq) in CASES.iter().zip(libpq_parse(helper, CASES)) {
        let ours = pgsess_parse(case);
        if let Err(m) = &ours {
            assert!(!m.contains("hunter2") && !m.contains("secret"), "{case:?}: the message shows the password: {m}");
        }
        // A keyword newer than the libpq installed here: it refuses what libpq 17 accepts.
        if let Err(m) = &libpq {
            let newer = keywords::KEYWORDS.iter().find(|k| {
                !known.iter().any(|n| n == k.name)
                    && (m.contains(&format!("option \"{}\"", k.name))
                        || m.contains(&format!("parameter: \"{}\"", k.name)))
            });
            if let Some(k) = newer {
                skipped.push(format!("{case:?} (the libpq here lacks {}, added after it)", k.name));
                continue;
            }
        }
        compared += 1;
        let libpq = libpq.map(|mut v| {
            v.sort();
            v
        });
        match (&libpq, &ours) {
            (Ok(a), Ok(b)) if a == b => {}
            (Err(_), Err(_)) => {}
            _ => mismatches.push(format!("{case:?}\n    libpq:  {libpq:?}\n    pgsess: {ours:?}")),
        }
    }
    for s in &skipped {
        eprintln!("skipped: {s}");
    }
    assert!(mismatches.is_empty(), "{} of {compared} strings differ:\n{}", mismatches.len(), mismatches.join("\n"));
    eprintln!("{compared} strings compared with libpq, {} skipped", skipped.len());
    assert!(compared >= 60, "only {compared} strings compared");
}

#[test]
fn every_keyword_of_the_local_libpq_is_in_the_table() {
    let Some(helper) = helper() else { return };
    for (name, env) in libpq_keywords(helper) {
        let k = keywords::find(&name).unwrap_or_else(|| panic!("libpq's keyword {name} is missing from keywords.rs"));
        assert_eq!(k.env.unwrap_or(""), env, "{name}'s variable");
    }
}

/// The environment of the helper and of pgsess alike: only the given variables.
struct MapEnv(HashMap<String, String>);

impl Environment for MapEnv {
    fn var(&self, name: &str) -> Option<String> {
        self.0.get(name).cloned().filter(|v| !v.is_empty())
    }
    fn os_user(&self) -> Option<String> {
        Some("osuser".into())
    }
    fn default_socket_dir(&self) -> PathBuf {
        PathBuf::from("/var/run/postgresql")
    }
}

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("pgsess-conninfo-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn a_service_file_gives_what_libpq_takes_from_it() {
    let dir = temp_dir("service");
    let file = dir.join("services.conf");
    std::fs::write(
        &file,
        "# from the documentation\n[mydb]\nhost=somehost\nport=5433\nuser=admin\ndbname=inventory\n\
         application_name=from service\noptions=-c geqo=off\nsslmode=require\n[other]\nhost=wrong\n",
    )
    .unwrap();
    let vars: HashMap<String, String> = [
        ("PGSERVICEFILE", file.display().to_string()),
        ("PGSYSCONFDIR", dir.display().to_string()),
        ("PGSERVICE", "mydb".to_owned()),
        ("PGCONNECT_TIMEOUT", "7".to_owned()),
        ("PGPORT", "9999".to_owned()),
        ("HOME", dir.display().to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let c = parse_uri("", &MapEnv(vars.clone())).unwrap();
    let ours: Vec<(&str, String)> = vec![
        ("host", c.hosts[0].to_string().rsplit_once(':').unwrap().0.to_owned()),
        ("port", c.hosts[0].port.to_string()),
        ("user", c.user.clone()),
        ("dbname", c.dbname.clone()),
        ("application_name", c.application_name.clone().unwrap()),
        ("options", c.options.clone().unwrap()),
        ("sslmode", c.tls.sslmode.as_str().to_owned()),
        ("connect_timeout", c.connect_timeout.as_secs().to_string()),
    ];
    assert_eq!(ours[1].1, "5433", "the service beats PGPORT");
    let Some(helper) = helper() else { return };
    let out = Command::new(helper).arg("defaults").env_clear().envs(&vars).output().unwrap();
    assert!(out.status.success());
    let libpq: HashMap<String, String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once('\t').map(|(k, v)| (k.to_owned(), unescape(v))))
        .collect();
    for (k, v) in ours {
        assert_eq!(libpq.get(k), Some(&v), "{k}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The example binary `make install` installs as pgsess-check (cargo test builds examples).
fn pgsess_check() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let p = exe.parent()?.parent()?.join("examples").join("pgsess-check");
    p.exists().then_some(p)
}

#[test]
fn pgsess_check_prints_the_settings_without_the_password() {
    let Some(tool) = pgsess_check() else {
        eprintln!("skipped: the pgsess-check example is not built");
        return;
    };
    let out = Command::new(&tool)
        .arg("postgresql://app:Wr0ng-Passw0rd-X@db1:6000,db2/app?sslmode=require")
        .env_remove("PGSERVICE")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("host 1: db1:6000 (tcp)") && text.contains("host 2: db2:5432 (tcp)"), "{text}");
    assert!(text.contains("password=********") && text.contains("sslmode: require"), "{text}");
    assert!(!text.contains("Wr0ng-Passw0rd-X"));
    // A session name reads PGSQL_<NAME>; an invalid setting fails with exit status 1.
    let out = Command::new(&tool)
        .arg("checked")
        .env("PGSQL_CHECKED", "host=h port=0 password=wrong-secret-123")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("PGSESS_CONFIG_ERROR") && err.contains("PGSQL_CHECKED") && err.contains("port"), "{err}");
    assert!(!err.contains("wrong-secret-123"));
    let out = Command::new(&tool).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn the_readme_lists_every_keyword_and_variable_as_keywords_rs_does() {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    for k in keywords::KEYWORDS {
        let env = k.env.map(|e| format!(" `{e}`")).unwrap_or_default();
        let status = match k.status {
            keywords::Status::Supported => "supported".to_owned(),
            keywords::Status::Partly(w) => format!("partly: {w}"),
            keywords::Status::Ignored(w) => format!("accepted, {w}"),
            keywords::Status::NotSupported(w) => format!("refused (`PGSESS_NOT_SUPPORTED_ERROR`): {w}"),
        };
        let row = format!("| `{}` |{env} | {} | {status} |", k.name, k.meaning);
        assert!(readme.contains(&row), "README.md lacks the row\n{row}");
    }
    for (var, meaning, status) in keywords::OTHER_ENV {
        let row = format!("| `{var}` | {meaning} | {status} |");
        assert!(readme.contains(&row), "README.md lacks the row\n{row}");
    }
}
