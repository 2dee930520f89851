//! `pgsess_config_check`: a deployment's configuration checked without connecting.

use std::ffi::c_char;

use super::{call, pgsess_error, str_arg};
use crate::config::{check, ProcessEnvironment};
use crate::error::Code;

/// Check a configuration the way `pgsess_open` reads it, without connecting: so a deployment
/// can check its environment in CI.
///
/// `uri_or_conninfo` is a connection string, either a URI (`postgresql://...`) or libpq's
/// `key=value` pairs (`host=db port=5432 dbname=app`; anything holding `://` or `=` is one),
/// or else a session name, read as `pgsess_open` reads it: the environment variable
/// `"PGSQL_" + name` upper-cased (the empty string reads `PGSQL`). The string is completed as a
/// connection would be: the service file entry it (or `PGSERVICE`) names, the `PG*` variables,
/// libpq's defaults. Refused, as opening a session would refuse them: a malformed string, a
/// keyword libpq does not know, an invalid value (sslmode, port, target_session_attrs,
/// load_balance_hosts, require_auth, ...), a service no service file defines, a missing
/// `PGSQL_<NAME>` (all `PGSESS_CONFIG_ERROR`), and a keyword or value pgsess does not support
/// (`PGSESS_NOT_SUPPORTED_ERROR`, naming the keyword and why). Service files and the password
/// file are read; nothing is sent to any server, so a wrong password or an unreachable host is
/// not found here. No message ever shows a password.
///
/// Returns `PGSESS_OK`, or the code of the error it sets in `*err` (`PGSESS_INTERFACE_ERROR`
/// for a NULL or non-UTF-8 argument). `err` may be NULL. Any thread; it reads the environment,
/// so it must not race with `setenv` in another thread.
///
/// # Safety
/// `uri_or_conninfo` NULL or NUL-terminated; `err` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn pgsess_config_check(uri_or_conninfo: *const c_char, err: *mut *mut pgsess_error) -> Code {
    call(err, || {
        check(str_arg(uri_or_conninfo, "uri_or_conninfo")?, &ProcessEnvironment)?;
        Ok(Code::PGSESS_OK)
    })
}
