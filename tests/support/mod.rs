//! Throwaway PostgreSQL clusters for the integration tests (`mod support;`).
//!
//! Each [`Cluster`] is a private server in `$TMPDIR/pgsess-test-<pid>-<n>`, listening
//! on its own unix socket dir and on 127.0.0.1:<free port>.  Roles: `postgres`
//! (superuser, trust over the socket) and `pgsess` (superuser, password
//! [`Cluster::password`], SCRAM); database `pgsess` owned by `pgsess`.
//!
//! initdb runs once per PostgreSQL major version: the result (with role and
//! database already created) is cached in `target/pgsess-test-template-<major>`
//! and copied with `cp -a` for each cluster.  As root, every server program runs
//! as the `postgres` system user through `runuser` (initdb/postgres refuse root).
//! Same logic as `scripts/pg-cluster`, without calling it.
#![allow(dead_code)]

use std::ffi::CString;
use std::fs;
use std::net::TcpListener;
use std::os::unix::fs::{chown, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

const PASSWORD: &str = "pgsess-s3cret";
/// Settings every cluster gets (besides listen address, socket dir and port).
const BASE_SETTINGS: &[&str] = &["fsync=off", "synchronous_commit=off", "full_page_writes=off", "max_connections=200"];
const HBA: &str = "local all postgres trust\n\
                   local all all scram-sha-256\n\
                   host all all 127.0.0.1/32 scram-sha-256\n\
                   host all all ::1/128 scram-sha-256\n";
/// Start attempts when the chosen port turns out to be taken.
const PORT_TRIES: usize = 10;

static COUNTER: AtomicUsize = AtomicUsize::new(0);

pub struct Cluster {
    dir: PathBuf,
    data: PathBuf,
    sock: PathBuf,
    log: PathBuf,
    port: u16,
    extra: Vec<String>,
}

impl Cluster {
    /// A fresh private cluster (socket + TCP on 127.0.0.1), started and ready.
    pub fn start() -> Cluster {
        Cluster::start_with(&[])
    }

    /// Like [`Cluster::start`] with extra server settings, each `"name=value"`
    /// (passed as `-c name=value`; a leading `-c ` is tolerated).
    pub fn start_with(extra_flags: &[&str]) -> Cluster {
        sweep_stale();
        let template = template();
        let dir = new_dir();
        let data = dir.join("data");
        run(Command::new("cp").arg("-a").arg(template).arg(&data), "cp -a template")
            .unwrap_or_else(|e| panic!("{e}\n(if the template is broken, delete {template:?})"));
        let mut c = Cluster {
            sock: dir.join("sock"),
            log: dir.join("server.log"),
            dir,
            data,
            port: 0,
            extra: extra_flags.iter().map(|f| f.trim().trim_start_matches("-c ").trim().to_string()).collect(),
        };
        fs::create_dir(&c.sock).expect("create socket dir");
        give_to_postgres(&c.dir);
        give_to_postgres(&c.sock);
        match start_on_free_port(&c.data, &c.sock, &c.log, &c.extra) {
            Ok(port) => {
                c.port = port;
                c
            }
            Err(e) => {
                let msg = format!("{e}\n{}", c.log_tail());
                drop(c); // stops anything started, removes the dir
                panic!("starting test cluster failed: {msg}");
            }
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn socket_dir(&self) -> &Path {
        &self.sock
    }

    /// The cluster's top directory (holds data/, sock/, server.log).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The data directory (pg_hba.conf, postgresql.auto.conf).
    pub fn data_dir(&self) -> &Path {
        &self.data
    }

    /// Write `name` in the cluster's directory for the server to read (a key, a certificate):
    /// mode 0600 and, when root, owned by `postgres`, as the server requires of a key file.
    pub fn write_server_file(&self, name: &str, contents: &[u8]) -> PathBuf {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let path = self.dir.join(name);
        let _ = fs::remove_file(&path);
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .unwrap_or_else(|e| panic!("create {path:?}: {e}"));
        f.write_all(contents).unwrap_or_else(|e| panic!("write {path:?}: {e}"));
        give_to_postgres(&path);
        path
    }

    /// Replace pg_hba.conf (keeping its owner and mode); takes effect at the next reload or restart.
    pub fn set_hba(&self, text: &str) {
        let hba = self.data.join("pg_hba.conf");
        fs::write(&hba, text).unwrap_or_else(|e| panic!("write {hba:?}: {e}"));
    }

    /// `postgresql://pgsess:pgsess-s3cret@%2F...%2Fsock:PORT/pgsess`
    pub fn uri(&self) -> String {
        let host = pct_encode(&self.sock.to_string_lossy());
        format!("postgresql://pgsess:{PASSWORD}@{host}:{}/pgsess", self.port)
    }

    /// `postgresql://pgsess:pgsess-s3cret@127.0.0.1:PORT/pgsess`
    pub fn tcp_uri(&self) -> String {
        format!("postgresql://pgsess:{PASSWORD}@127.0.0.1:{}/pgsess", self.port)
    }

    /// Superuser `postgres` over the unix socket (trust auth), database pgsess.
    pub fn control(&self) -> postgres::Client {
        postgres::Config::new()
            .host_path(&self.sock)
            .port(self.port)
            .user("postgres")
            .dbname("pgsess")
            .connect_timeout(Duration::from_secs(10))
            .connect(postgres::NoTls)
            .unwrap_or_else(|e| panic!("control connection failed: {e}\n{}", self.log_tail()))
    }

    /// Run SQL as `postgres` through `psql -X -Atq -v ON_ERROR_STOP=1` (database
    /// pgsess) and return its stdout without the trailing newline.  Panics with
    /// psql's stderr on failure.
    pub fn psql(&self, sql: &str) -> String {
        let out = self.run_psql(&[], sql);
        String::from_utf8_lossy(&out).trim_end_matches('\n').to_string()
    }

    /// Run SQL through psql (libpq) as `postgres` and return the fields of the one row its last
    /// statement produces, split on the ASCII unit separator (no value may contain it).
    pub fn psql_row(&self, sql: &str) -> Vec<String> {
        let out = self.run_psql(&["-F", "\x1f", "-R", "\x1e"], sql);
        let text = String::from_utf8(out).expect("psql prints UTF-8");
        let row = text.trim_end_matches('\n').trim_end_matches('\u{1e}');
        row.split('\u{1f}').map(str::to_owned).collect()
    }

    /// psql -X -Atq -v ON_ERROR_STOP=1 as postgres on database pgsess, with `extra` options;
    /// its stdout. Panics with psql's stderr on failure.
    fn run_psql(&self, extra: &[&str], sql: &str) -> Vec<u8> {
        run(
            Command::new(bindir().join("psql"))
                .args(["-X", "-Atq", "-v", "ON_ERROR_STOP=1"])
                .args(extra)
                .args(["-U", "postgres", "-d", "pgsess", "-h"])
                .arg(&self.sock)
                .arg("-p")
                .arg(self.port.to_string())
                .arg("-c")
                .arg(sql)
                .env("PGCONNECT_TIMEOUT", "10"),
            "psql",
        )
        .unwrap_or_else(|e| panic!("{e}"))
        .stdout
    }

    /// `pg_ctl restart -m fast|immediate`; returns once the server accepts
    /// connections again (pg_ctl -w, at most 60 s).
    pub fn restart(&self, mode: &str) {
        assert!(mode == "fast" || mode == "immediate" || mode == "smart", "restart mode {mode:?}");
        self.pg_ctl_start("restart", &["-m", mode]);
    }

    /// Stop the server (mode fast); the cluster can be started again.
    pub fn stop(&self) {
        run(pg_cmd("pg_ctl").arg("-D").arg(&self.data).args(["-m", "fast", "-w", "-t", "60", "stop"]), "pg_ctl stop")
            .unwrap_or_else(|e| panic!("{e}\n{}", self.log_tail()));
    }

    /// Start the same cluster again (same port and settings) after [`Cluster::stop`].
    pub fn start_again(&self) {
        self.pg_ctl_start("start", &[]);
    }

    pub fn password() -> &'static str {
        PASSWORD
    }

    /// The whole server log so far.
    pub fn server_log(&self) -> String {
        fs::read(&self.log).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default()
    }

    fn log_tail(&self) -> String {
        let log = self.server_log();
        let lines: Vec<&str> = log.lines().collect();
        let tail = lines[lines.len().saturating_sub(30)..].join("\n");
        format!("--- {} (tail) ---\n{tail}", self.log.display())
    }

    fn pg_ctl_start(&self, action: &str, args: &[&str]) {
        pg_ctl_start(&self.data, &self.sock, &self.log, self.port, &self.extra, action, args)
            .unwrap_or_else(|e| panic!("{e}\n{}", self.log_tail()));
    }

    /// Immediate stop + remove the directory; never panics.
    fn teardown(&self) {
        if self.data.join("postmaster.pid").exists() {
            let _ =
                pg_cmd("pg_ctl").arg("-D").arg(&self.data).args(["-m", "immediate", "-w", "-t", "60", "stop"]).output();
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.teardown();
    }
}

/// One cluster per test binary, started on first use and stopped at exit.
pub fn shared() -> &'static Cluster {
    static SHARED: OnceLock<Cluster> = OnceLock::new();
    extern "C" fn stop_shared() {
        // Must not unwind out of an extern "C" fn.
        let _ = std::panic::catch_unwind(|| {
            if let Some(c) = SHARED.get() {
                c.teardown();
            }
        });
    }
    SHARED.get_or_init(|| {
        let c = Cluster::start();
        // SAFETY: registering a plain extern "C" fn with no captured state.
        unsafe { libc::atexit(stop_shared) };
        c
    })
}

/// A second cluster per test binary, made once by `make` (e.g. a TLS server), stopped at exit
/// like [`shared`]. Every call must pass the same `make`.
pub fn shared_with(make: fn() -> Cluster) -> &'static Cluster {
    static CUSTOM: OnceLock<Cluster> = OnceLock::new();
    extern "C" fn stop_custom() {
        let _ = std::panic::catch_unwind(|| {
            if let Some(c) = CUSTOM.get() {
                c.teardown();
            }
        });
    }
    CUSTOM.get_or_init(|| {
        let c = make();
        // SAFETY: registering a plain extern "C" fn with no captured state.
        unsafe { libc::atexit(stop_custom) };
        c
    })
}

// ---------------------------------------------------------------------------
// Helpers

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// uid/gid of the `postgres` system user (only needed when root).
fn postgres_ids() -> (u32, u32) {
    static IDS: OnceLock<(u32, u32)> = OnceLock::new();
    *IDS.get_or_init(|| {
        let name = CString::new("postgres").unwrap();
        // SAFETY: getpwnam with a valid C string; fields read before any other call.
        let pw = unsafe { libc::getpwnam(name.as_ptr()) };
        assert!(!pw.is_null(), "running as root but there is no `postgres` user");
        unsafe { ((*pw).pw_uid, (*pw).pw_gid) }
    })
}

/// When root: chown PATH (not recursive) to postgres.
fn give_to_postgres(path: &Path) {
    if is_root() {
        let (u, g) = postgres_ids();
        chown(path, Some(u), Some(g)).unwrap_or_else(|e| panic!("chown {path:?}: {e}"));
    }
}

/// When root: make sure `postgres` can traverse every parent of PATH.
fn make_traversable(path: &Path) {
    if !is_root() {
        return;
    }
    for dir in path.ancestors().skip(1) {
        if let Ok(md) = fs::metadata(dir) {
            let mode = md.permissions().mode();
            if mode & 0o001 == 0 {
                let _ = fs::set_permissions(dir, fs::Permissions::from_mode(mode | 0o001));
            }
        }
    }
}

/// The server bin dir: $PGSESS_BINDIR, `pg_config --bindir` when it holds
/// initdb, else the highest /usr/lib/postgresql/*/bin.
fn bindir() -> &'static Path {
    static BINDIR: OnceLock<PathBuf> = OnceLock::new();
    BINDIR.get_or_init(|| {
        let ok = |d: &Path| d.join("initdb").is_file() && d.join("pg_ctl").is_file();
        if let Some(d) = std::env::var_os("PGSESS_BINDIR").map(PathBuf::from) {
            if ok(&d) {
                return d;
            }
        }
        if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
            let d = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
            if out.status.success() && ok(&d) {
                return d;
            }
        }
        let mut found: Vec<(Vec<u32>, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let ver = e.file_name().to_string_lossy().to_string();
                let key = ver.split('.').map(|p| p.parse().ok()).collect::<Option<Vec<u32>>>()?;
                let d = e.path().join("bin");
                ok(&d).then_some((key, d))
            })
            .collect();
        found.sort();
        found
            .pop()
            .map(|(_, d)| d)
            .expect("no PostgreSQL server binaries (initdb) found: run scripts/ensure-deps or set PGSESS_BINDIR")
    })
}

/// Major version of the server binaries, from `initdb --version`.
fn pg_major() -> String {
    let out = run(Command::new(bindir().join("initdb")).arg("--version"), "initdb --version")
        .unwrap_or_else(|e| panic!("{e}"));
    let text = String::from_utf8_lossy(&out.stdout);
    let ver = text.split_whitespace().last().unwrap_or("unknown");
    ver.chars().take_while(|c| c.is_ascii_digit()).collect()
}

/// A server program from the bin dir, run as `postgres` when we are root.
fn pg_cmd(prog: &str) -> Command {
    let path = bindir().join(prog);
    let mut cmd = if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(path);
        c
    } else {
        Command::new(path)
    };
    cmd.current_dir("/"); // a cwd the postgres user can always enter
    cmd
}

/// Run to completion; Err with both output streams unless it exited 0.
fn run(cmd: &mut Command, what: &str) -> Result<Output, String> {
    let out = cmd.output().map_err(|e| format!("{what}: cannot run {cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(format!(
            "{what} failed ({}): {cmd:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

fn pct_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Quote for the `sh -c` line pg_ctl builds from `-o`.
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// A new, empty, postgres-owned directory `$TMPDIR/pgsess-test-<pid>-<n>`.
fn new_dir() -> PathBuf {
    let base = std::env::temp_dir();
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    let dir = base.join(format!("pgsess-test-{}-{n}", std::process::id()));
    // The socket path (dir/sock/.s.PGSQL.NNNNN) must fit in sun_path (108 bytes).
    assert!(dir.as_os_str().len() <= 80, "temp dir path {dir:?} too long for a unix socket path; set TMPDIR=/tmp");
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {dir:?}: {e}"));
    make_traversable(&dir);
    give_to_postgres(&dir);
    dir
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().unwrap().port()
}

fn server_opts(sock: &Path, port: u16, extra: &[String]) -> String {
    let mut opts = format!(
        "-c listen_addresses=127.0.0.1 -c {} -c port={port}",
        sh_quote(&format!("unix_socket_directories={}", sock.display()))
    );
    for s in BASE_SETTINGS.iter().copied().chain(extra.iter().map(String::as_str)) {
        opts.push_str(" -c ");
        opts.push_str(&sh_quote(s));
    }
    opts
}

/// `pg_ctl start|restart` with our settings; waits (bounded) until ready.
fn pg_ctl_start(
    data: &Path,
    sock: &Path,
    log: &Path,
    port: u16,
    extra: &[String],
    action: &str,
    args: &[&str],
) -> Result<(), String> {
    run(
        pg_cmd("pg_ctl")
            .arg("-D")
            .arg(data)
            .arg("-l")
            .arg(log)
            .args(["-w", "-t", "60"])
            .args(args)
            .arg("-o")
            .arg(server_opts(sock, port, extra))
            .arg(action),
        &format!("pg_ctl {action}"),
    )
    .map(drop)
}

/// Start on a free 127.0.0.1 port, retrying with another one when the port
/// was grabbed in between ("Address already in use").
fn start_on_free_port(data: &Path, sock: &Path, log: &Path, extra: &[String]) -> Result<u16, String> {
    let mut last = String::new();
    for _ in 0..PORT_TRIES {
        let port = free_port();
        let seen = fs::metadata(log).map(|m| m.len() as usize).unwrap_or(0);
        match pg_ctl_start(data, sock, log, port, extra, "start", &[]) {
            Ok(()) => return Ok(port),
            Err(e) => {
                let log_text = fs::read(log).unwrap_or_default();
                let new = String::from_utf8_lossy(log_text.get(seen..).unwrap_or(&[]));
                if !new.contains("already in use") {
                    return Err(e);
                }
                last = e;
            }
        }
    }
    Err(format!("no free port after {PORT_TRIES} tries: {last}"))
}

/// The cached template data directory (initdb + role/database), built once
/// per PostgreSQL major version and published by an atomic rename so that
/// test binaries running in parallel never see a half-built one.
fn template() -> &'static Path {
    static TEMPLATE: OnceLock<PathBuf> = OnceLock::new();
    TEMPLATE.get_or_init(|| {
        let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("target");
        let mut path = target.join(format!("pgsess-test-template-{}", pg_major()));
        // Files must belong to whoever runs the server: postgres when we are
        // root, else us.  A template made by someone else gets a private twin.
        // SAFETY: geteuid has no preconditions.
        let want_uid = if is_root() { postgres_ids().0 } else { unsafe { libc::geteuid() } };
        if fs::metadata(&path).is_ok_and(|m| m.uid() != want_uid) {
            path.set_file_name(format!("pgsess-test-template-{}-u{want_uid}", pg_major()));
        }
        if path.join("PG_VERSION").is_file() {
            return path;
        }
        fs::create_dir_all(&target).expect("create target dir");
        // Leftovers: a broken template, staging dirs of test binaries that died.
        let _ = fs::remove_dir_all(&path);
        let prefix = format!("{}.tmp-", path.file_name().unwrap().to_string_lossy());
        for e in fs::read_dir(&target).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            let pid = name.strip_prefix(&prefix).and_then(|r| r.split('-').next());
            if pid.is_some_and(pid_is_dead) {
                let _ = fs::remove_dir_all(e.path());
            }
        }
        let built = build_template(); // the cluster dir; data/ inside
        let staging =
            path.with_extension(format!("tmp-{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::SeqCst)));
        run(Command::new("cp").arg("-a").arg(built.join("data")).arg(&staging), "cp -a built template")
            .unwrap_or_else(|e| panic!("{e}"));
        let _ = fs::remove_dir_all(&built);
        if let Err(e) = fs::rename(&staging, &path) {
            // Lost the race to another test binary: use its template.
            let _ = fs::remove_dir_all(&staging);
            assert!(path.join("PG_VERSION").is_file(), "publishing template {path:?} failed: {e}");
        }
        path
    })
}

/// initdb, pg_hba.conf, start, create role+database, clean stop.
fn build_template() -> PathBuf {
    let dir = new_dir();
    let (data, sock, log) = (dir.join("data"), dir.join("sock"), dir.join("server.log"));
    let fail = |e: String| -> ! {
        let log_text = fs::read_to_string(&log).unwrap_or_default();
        let _ = pg_cmd("pg_ctl").arg("-D").arg(&data).args(["-m", "immediate", "stop"]).output();
        let _ = fs::remove_dir_all(&dir);
        panic!("building the test cluster template failed: {e}\n--- server log ---\n{log_text}");
    };
    fs::create_dir(&sock).expect("create socket dir");
    give_to_postgres(&sock);
    run(
        pg_cmd("initdb")
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "-E", "UTF8", "--locale=C"])
            .args(["--auth-local=trust", "--auth-host=scram-sha-256", "--no-sync"])
            // 1 MB WAL segments instead of 16: a template that copies faster.
            .arg("--wal-segsize=1"),
        "initdb",
    )
    .unwrap_or_else(|e| fail(e));
    // Truncating keeps initdb's owner (postgres) and mode (0600).
    fs::write(data.join("pg_hba.conf"), HBA).expect("write pg_hba.conf");
    let port = start_on_free_port(&data, &sock, &log, &[]).unwrap_or_else(|e| fail(e));
    run(
        Command::new(bindir().join("psql"))
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-U", "postgres", "-d", "postgres"])
            .arg("-h")
            .arg(&sock)
            .arg("-p")
            .arg(port.to_string())
            .arg("-c")
            .arg(format!("CREATE ROLE pgsess LOGIN SUPERUSER PASSWORD '{PASSWORD}'"))
            .arg("-c")
            .arg("CREATE DATABASE pgsess OWNER pgsess")
            .env("PGCONNECT_TIMEOUT", "10"),
        "create role/database",
    )
    .unwrap_or_else(|e| fail(e));
    run(pg_cmd("pg_ctl").arg("-D").arg(&data).args(["-m", "fast", "-w", "-t", "60", "stop"]), "pg_ctl stop (template)")
        .unwrap_or_else(|e| fail(e));
    let _ = fs::remove_file(data.join("postmaster.opts"));
    dir
}

/// True when PID is a number, not ours, and no such process exists.
fn pid_is_dead(pid: &str) -> bool {
    pid.parse::<u32>().is_ok_and(|p| p != std::process::id() && !Path::new(&format!("/proc/{p}")).exists())
}

/// Once per process: remove cluster dirs left by test binaries that died
/// without cleaning up (their pid is gone), stopping their servers first.
fn sweep_stale() {
    static SWEPT: OnceLock<()> = OnceLock::new();
    SWEPT.get_or_init(|| {
        let Ok(entries) = fs::read_dir(std::env::temp_dir()) else {
            return;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            let Some(rest) = name.strip_prefix("pgsess-test-") else {
                continue;
            };
            if !rest.split('-').next().is_some_and(pid_is_dead) {
                continue;
            }
            let data = e.path().join("data");
            if data.join("postmaster.pid").exists() {
                let _ =
                    pg_cmd("pg_ctl").arg("-D").arg(&data).args(["-m", "immediate", "-w", "-t", "30", "stop"]).output();
            }
            let _ = fs::remove_dir_all(e.path());
        }
    });
}
pub mod fake;
pub mod fidelity;
pub mod servers;

// ---------------------------------------------------------------------------
// Pool backends

/// The two kinds of pool (see src/pool/mod.rs): one shared by every session of a configuration,
/// and one of its own, made as a forked child makes its pools (`Session::open_with_local_pool`).
/// The pool's contract is tested on both (`on_both_backends!`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Shared,
    Local,
}

impl Backend {
    /// `Session::open` on this backend (pools of the two backends are never shared).
    pub fn open(self, name: &str, options: &pgsess::SessionOptions) -> pgsess::Result<pgsess::Session> {
        let s = match self {
            Backend::Shared => pgsess::Session::open(name, options),
            Backend::Local => pgsess::Session::open_with_local_pool(name, options),
        }?;
        assert_eq!(s.uses_local_pool(), self == Backend::Local);
        Ok(s)
    }

    /// For names the two backends' tests must not share (they run at once on one server), such
    /// as application names whose backends a test counts.
    pub fn tag(self) -> &'static str {
        match self {
            Backend::Shared => "shared",
            Backend::Local => "local",
        }
    }
}

/// `on_both_backends!(f, g);` for functions `fn f(backend: Backend)`: the tests `f::shared` and
/// `f::local`.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),+ $(,)?) => {
        $(
            mod $name {
                #[test]
                fn shared() {
                    super::$name($crate::support::Backend::Shared)
                }
                #[test]
                fn local() {
                    super::$name($crate::support::Backend::Local)
                }
            }
        )+
    };
}
