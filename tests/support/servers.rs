//! More servers around a [`Cluster`]: a streaming standby made with `pg_basebackup -R`
//! ([`Cluster::make_standby`], itself a `Cluster`, so `psql`, `stop`, `start_again`, `tcp_uri`
//! and the cleanup on drop all work on it) and PgBouncer in front of a cluster ([`Bouncer`]).
//! As root, pg_basebackup, pg_ctl and pgbouncer run as the `postgres` system user.

use std::fs;
use std::io::Write;
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{free_port, give_to_postgres, is_root, new_dir, pg_cmd, postgres_ids, run, start_on_free_port, Cluster};

/// Where the distribution's package puts the binary.
pub const PGBOUNCER: &str = "/usr/sbin/pgbouncer";

impl Cluster {
    /// Let `postgres` open replication connections over the socket (trust) and over TCP, then
    /// reload the configuration.
    pub fn allow_replication(&self) {
        let hba = self.data.join("pg_hba.conf");
        let mut f = fs::OpenOptions::new().append(true).open(&hba).unwrap_or_else(|e| panic!("open {hba:?}: {e}"));
        f.write_all(b"local replication postgres trust\nhost replication postgres 127.0.0.1/32 trust\n")
            .unwrap_or_else(|e| panic!("append to {hba:?}: {e}"));
        drop(f);
        assert_eq!(self.psql("SELECT pg_reload_conf()"), "t");
    }

    /// A hot standby of this cluster: `pg_basebackup -R -X stream` into a new private directory,
    /// started on its own free port and socket directory with the same settings. Needs
    /// [`Cluster::allow_replication`] first. Dropping it stops it and removes its directory.
    pub fn make_standby(&self) -> Cluster {
        let dir = new_dir();
        let mut s = Cluster {
            data: dir.join("data"),
            sock: dir.join("sock"),
            log: dir.join("server.log"),
            dir,
            port: 0,
            extra: self.extra.clone(),
        };
        fs::create_dir(&s.sock).expect("create standby socket dir");
        give_to_postgres(&s.sock);
        run(
            pg_cmd("pg_basebackup")
                .arg("-D")
                .arg(&s.data)
                .args(["-R", "-X", "stream", "-c", "fast", "--no-sync", "-U", "postgres", "-h"])
                .arg(&self.sock)
                .arg("-p")
                .arg(self.port.to_string())
                .env("PGCONNECT_TIMEOUT", "10"),
            "pg_basebackup",
        )
        .unwrap_or_else(|e| panic!("{e}\n{}", self.log_tail()));
        match start_on_free_port(&s.data, &s.sock, &s.log, &s.extra) {
            Ok(port) => s.port = port,
            Err(e) => panic!("starting the standby failed: {e}\n{}", s.log_tail()),
        }
        s
    }

    /// `pg_ctl promote -w`: returns once the server accepts writes.
    pub fn promote_standby(&self) {
        run(pg_cmd("pg_ctl").arg("-D").arg(&self.data).args(["-w", "-t", "60", "promote"]), "pg_ctl promote")
            .unwrap_or_else(|e| panic!("{e}\n{}", self.log_tail()));
    }
}

/// PgBouncer (the distribution's binary) in front of one cluster's database `pgsess`, listening on
/// 127.0.0.1 at a free port, with the user `pgsess` and its password in a plain-text userlist
/// (SCRAM towards the client and the server). Killed on drop.
pub struct Bouncer {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Bouncer {
    /// Start with `pool_mode` (e.g. "transaction") and `default_pool_size`; the configuration and
    /// the log are files in the cluster's directory. Waits (at most 10 s) until it accepts TCP.
    pub fn start(cluster: &Cluster, pool_mode: &str, default_pool_size: u32) -> Bouncer {
        assert!(
            Path::new(PGBOUNCER).is_file(),
            "{PGBOUNCER} is missing: apt-get install pgbouncer (scripts/ensure-deps should install it)"
        );
        let dir = cluster.dir();
        let users = dir.join("pgbouncer-users.txt");
        let log = dir.join("pgbouncer.log");
        write_for_postgres(&users, &format!("\"pgsess\" \"{}\"\n", Cluster::password()));
        let mut last = String::new();
        for _ in 0..10 {
            let port = free_port();
            let ini = dir.join("pgbouncer.ini");
            write_for_postgres(
                &ini,
                &format!(
                    "[databases]\n\
                     pgsess = host=127.0.0.1 port={pg_port} dbname=pgsess\n\
                     \n\
                     [pgbouncer]\n\
                     listen_addr = 127.0.0.1\n\
                     listen_port = {port}\n\
                     unix_socket_dir =\n\
                     auth_type = scram-sha-256\n\
                     auth_file = {users}\n\
                     pool_mode = {pool_mode}\n\
                     default_pool_size = {default_pool_size}\n\
                     max_client_conn = 100\n\
                     ignore_startup_parameters = extra_float_digits,options\n\
                     logfile = {log}\n\
                     pidfile = {pid}\n",
                    pg_port = cluster.port(),
                    users = users.display(),
                    log = log.display(),
                    pid = dir.join("pgbouncer.pid").display(),
                ),
            );
            let seen = fs::metadata(&log).map(|m| m.len() as usize).unwrap_or(0);
            let mut cmd = Command::new(PGBOUNCER);
            cmd.arg(&ini).current_dir("/").stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
            if is_root() {
                // pgbouncer refuses to run as root.
                let (u, g) = postgres_ids();
                cmd.uid(u).gid(g);
            }
            let child = cmd.spawn().unwrap_or_else(|e| panic!("cannot run {PGBOUNCER}: {e}"));
            let mut b = Bouncer { child, port, log: log.clone() };
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                if let Ok(Some(status)) = b.child.try_wait() {
                    last = format!("pgbouncer exited ({status}) on port {port}:\n{}", b.log_since(seen));
                    break;
                }
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return b;
                }
                if Instant::now() > deadline {
                    panic!("pgbouncer did not accept connections within 10 s:\n{}", b.log_since(seen));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            if !last.contains("in use") {
                panic!("{last}");
            }
        }
        panic!("no free port for pgbouncer after 10 tries: {last}");
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `postgresql://pgsess:pgsess-s3cret@127.0.0.1:<bouncer port>/pgsess`
    pub fn uri(&self) -> String {
        format!("postgresql://pgsess:{}@127.0.0.1:{}/pgsess", Cluster::password(), self.port)
    }

    /// PgBouncer's log so far.
    pub fn log(&self) -> String {
        self.log_since(0)
    }

    fn log_since(&self, offset: usize) -> String {
        let text = fs::read(&self.log).unwrap_or_default();
        String::from_utf8_lossy(text.get(offset..).unwrap_or(&[])).into_owned()
    }
}

impl Drop for Bouncer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Write a small file that the `postgres` user can read.
fn write_for_postgres(path: &Path, text: &str) {
    fs::write(path, text).unwrap_or_else(|e| panic!("write {path:?}: {e}"));
    give_to_postgres(path);
}
