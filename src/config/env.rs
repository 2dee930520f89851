//! The environment a session's configuration is read from: the `PGSQL_<NAME>` variable holding
//! its URI, and the process's `PG*` variables and OS user through [`ProcessEnvironment`] (the
//! `PG*` variables themselves are read where the URI is completed, in `uri.rs` and `tls.rs`).

use std::ffi::CStr;
use std::path::PathBuf;

use super::Environment;
use crate::error::{Error, Result};

/// The name of the environment variable a session name reads: `"PGSQL_" + name`, upper-cased as a
/// whole the way Python's `str.upper()` does (full Unicode case mapping: `straße` -> `PGSQL_STRASSE`),
/// nothing else changed. An empty name reads `PGSQL`.
pub fn env_var_name(dbname: &str) -> String {
    if dbname.is_empty() {
        "PGSQL".to_string()
    } else {
        format!("PGSQL_{dbname}").to_uppercase()
    }
}

/// Read the URI for a session name from the environment.
pub fn uri_from_env(dbname: &str) -> Result<String> {
    let name = env_var_name(dbname);
    match std::env::var_os(&name) {
        None => Err(Error::config(format!(
            "environment variable {name} is not set: it must hold the connection string for session \"{dbname}\" \
             (postgresql://user:password@host:port/dbname, or host=... dbname=...), or set the db_url option"
        ))),
        Some(v) => {
            let v = v
                .into_string()
                .map_err(|_| Error::config(format!("environment variable {name} is not valid UTF-8")))?;
            // libpq reads "" as a string that sets nothing; an empty variable is a mistake here.
            if v.trim().is_empty() {
                return Err(Error::config(format!(
                    "environment variable {name} is empty: it must hold the connection string for session \"{dbname}\" \
                     (postgresql://user:password@host:port/dbname, or host=... dbname=...)"
                )));
            }
            Ok(v)
        }
    }
}

/// The real process environment.
pub struct ProcessEnvironment;

impl Environment for ProcessEnvironment {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.is_empty())
    }

    fn os_user(&self) -> Option<String> {
        os_user_name()
    }

    /// libpq's compiled-in socket directory: Debian builds use /var/run/postgresql, upstream /tmp.
    fn default_socket_dir(&self) -> PathBuf {
        let debian = PathBuf::from("/var/run/postgresql");
        if debian.is_dir() {
            debian
        } else {
            PathBuf::from("/tmp")
        }
    }
}

fn os_user_name() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    user_name_of(unsafe { libc::geteuid() })
}

/// The name of the OS user `uid` (for `requirepeer`), if it has one.
pub fn user_name_of(uid: libc::uid_t) -> Option<String> {
    // SAFETY: getpwuid_r writes into our buffer and `pwd`; we read pw_name only on success.
    unsafe {
        let mut pwd: libc::passwd = std::mem::zeroed();
        let mut buf = vec![0 as libc::c_char; 4096];
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        let rc = libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr(), buf.len(), &mut result);
        if rc != 0 || result.is_null() || pwd.pw_name.is_null() {
            return None;
        }
        CStr::from_ptr(pwd.pw_name).to_str().ok().map(str::to_owned)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_names_follow_python_upper() {
        assert_eq!(env_var_name("foo"), "PGSQL_FOO");
        assert_eq!(env_var_name("straße"), "PGSQL_STRASSE");
        assert_eq!(env_var_name("my-db.x 1"), "PGSQL_MY-DB.X 1");
        assert_eq!(env_var_name(""), "PGSQL");
    }
}
