//! libpq's connection service files (`pg_service.conf`): `service=NAME` in the connection string,
//! else `PGSERVICE`, names a `[NAME]` section whose `keyword=value` lines fill in what the string
//! leaves out (the string wins; the section wins over the `PG*` variables). The files, in libpq's
//! order: `PGSERVICEFILE` (which must exist when set), else `~/.pg_service.conf` (when it exists);
//! then, when the section was not there, `pg_service.conf` in `PGSYSCONFDIR`, else in libpq's
//! compiled-in directory. The format is libpq's `parseServiceFile`: `#` comments, whitespace
//! around a line ignored, the value everything after the first `=` (no quoting), lines of 1023
//! bytes at most, and no `service=` inside a section.
//!
//! Messages name the file, the line number and the keyword, never a value.

use std::path::{Path, PathBuf};

use super::conninfo::Settings;
use super::keywords;
use super::Environment;
use crate::error::{Error, Result};

/// The longest line libpq reads from a service file (its buffer is 1024 bytes with the NUL).
const MAX_LINE: usize = 1022;

/// Where libpq looks for the system-wide `pg_service.conf` when `PGSYSCONFDIR` is unset: its
/// compiled-in `SYSCONFDIR`, which Debian's libpq sets to /etc/postgresql-common.
pub fn default_sysconf_dir() -> PathBuf {
    let debian = PathBuf::from("/etc/postgresql-common");
    if debian.is_dir() {
        debian
    } else {
        PathBuf::from("/usr/local/pgsql/etc")
    }
}

/// Fill `settings` from the service the string (or `PGSERVICE`) names, if any. A named service
/// that no file defines is an error, as in libpq.
pub fn apply_service(settings: &mut Settings, env: &dyn Environment) -> Result<()> {
    let service = match settings.get("service").filter(|s| !s.is_empty()) {
        Some(s) => s.to_owned(),
        None => match env.var("PGSERVICE").filter(|s| !s.is_empty()) {
            Some(s) => s,
            None => return Ok(()),
        },
    };
    let mut searched = Vec::new();
    let first = match env.var("PGSERVICEFILE") {
        Some(f) => Some(PathBuf::from(f)),
        None => env.var("HOME").map(|h| PathBuf::from(h).join(".pg_service.conf")).filter(|p| p.exists()),
    };
    if let Some(file) = first {
        searched.push(file.display().to_string());
        if read_service(&file, &service, settings)? {
            return Ok(());
        }
    }
    let dir = env.var("PGSYSCONFDIR").map(PathBuf::from).unwrap_or_else(default_sysconf_dir);
    let system = dir.join("pg_service.conf");
    if system.exists() {
        searched.push(system.display().to_string());
        if read_service(&system, &service, settings)? {
            return Ok(());
        }
    }
    Err(Error::config(format!(
        "definition of service \"{service}\" not found (searched: {})",
        if searched.is_empty() { "no service file exists".to_owned() } else { searched.join(", ") }
    )))
}

/// Apply the `[service]` section of `file`; false when the file has no such section.
fn read_service(file: &Path, service: &str, settings: &mut Settings) -> Result<bool> {
    let name = file.display();
    let bytes = std::fs::read(file).map_err(|e| Error::config(format!("service file \"{name}\" not found ({e})")))?;
    let text = String::from_utf8(bytes).map_err(|_| Error::config(format!("service file \"{name}\" is not UTF-8")))?;
    let mut found = false;
    for (i, raw) in text.split_inclusive('\n').enumerate() {
        let n = i + 1;
        if raw.len() > MAX_LINE {
            return Err(Error::config(format!("line {n} too long in service file \"{name}\"")));
        }
        let line = raw.trim_matches(|c: char| c.is_ascii_whitespace() || c == '\x0b');
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(rest) = line.strip_prefix('[') {
            if found {
                break;
            }
            found = rest.strip_prefix(service).is_some_and(|r| r.starts_with(']'));
            continue;
        }
        if !found {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            return Err(Error::config(format!("syntax error in service file \"{name}\", line {n}: no '='")));
        };
        if key == "service" {
            return Err(Error::config(format!(
                "nested service specifications not supported in service file \"{name}\", line {n}"
            )));
        }
        let Some(k) = keywords::find(key) else {
            let what = if key.len() <= 64 && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                format!("\"{key}\" is not one of libpq's keywords")
            } else {
                "not a libpq keyword before '='".to_owned()
            };
            return Err(Error::config(format!("syntax error in service file \"{name}\", line {n}: {what}")));
        };
        settings.set_default(k.name, value.to_owned());
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_uri;
    use crate::config::tests::FakeEnv;
    use std::collections::HashMap;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("pgsess-service-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn service_files_follow_libpq_precedence_and_format() {
        let d = dir("precedence");
        let user_file = d.join("user.conf");
        std::fs::write(
            &user_file,
            "# mine\n[other]\nhost=wrong\n\n  [main]  \n host=svc-host\nport=6000\ndbname=svc db\npassword=hunter2\n[x]\nport=1\n",
        )
        .unwrap();
        std::fs::write(d.join("pg_service.conf"), "[sys]\nhost=sys-host\n").unwrap();
        let env = |service: &'static str| {
            FakeEnv(HashMap::from([
                ("PGSERVICEFILE", Box::leak(user_file.display().to_string().into_boxed_str()) as &str),
                ("PGSYSCONFDIR", Box::leak(d.display().to_string().into_boxed_str())),
                ("PGSERVICE", service),
                ("PGPORT", "7777"),
                ("PGHOST", "env-host"),
            ]))
        };
        // The string beats the service, the service beats the environment.
        let c = parse_uri("service=main port=5999", &env("")).unwrap();
        assert_eq!(c.hosts[0], HostSpec { host: Host::Tcp("svc-host".into()), port: 5999, addr: None });
        assert_eq!((c.dbname.as_str(), c.password.as_deref()), ("svc db", Some("hunter2")));
        let c = parse_uri("postgresql://u@/?service=main", &env("")).unwrap();
        assert_eq!(c.hosts[0], HostSpec { host: Host::Tcp("svc-host".into()), port: 6000, addr: None });
        // PGSERVICE, and the system file when the user file lacks the section.
        let c = parse_uri("", &env("sys")).unwrap();
        assert_eq!(c.hosts[0], HostSpec { host: Host::Tcp("sys-host".into()), port: 7777, addr: None });
        let e = parse_uri("service=nope", &env("")).unwrap_err();
        assert!(e.message.contains("definition of service \"nope\" not found"), "{}", e.message);
        std::fs::write(&user_file, "[main]\nhost=h\nbogus=1\n").unwrap();
        let e = parse_uri("service=main", &env("")).unwrap_err();
        assert!(e.message.contains("line 3") && e.message.contains("bogus"), "{}", e.message);
        std::fs::write(&user_file, "[main]\nservice=other\n").unwrap();
        assert!(parse_uri("service=main", &env("")).unwrap_err().message.contains("nested"));
        std::fs::write(&user_file, "[main]\npassword hunter2\n").unwrap();
        let e = parse_uri("service=main", &env("")).unwrap_err();
        assert!(e.message.contains("line 2") && !e.message.contains("hunter2"), "{}", e.message);
        std::fs::remove_dir_all(&d).unwrap();
    }

    use crate::config::{Host, HostSpec};
}
