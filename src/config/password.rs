//! The password hook (`SessionOptions::set_password_hook`, C `pgsess_options_set_password_callback`):
//! asked for the password of each new connection, with the host and the user, so a rotated
//! password or a short-lived token (cloud IAM authentication) is used without a restart. Part of
//! the pool key by an identity its maker gives (for a C callback, the function's and the user
//! data's addresses), never by what it returns: a rotation keeps the pool.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use super::HostSpec;
use crate::error::{Error, Result};

/// What a password hook runs: `(host, user)` to the password to use, `Ok(None)` for the one
/// configured otherwise (the string, `PGPASSWORD`, the password file), `Err` to fail the
/// connection attempt.
pub type PasswordFn = dyn Fn(&HostSpec, &str) -> Result<Option<String>> + Send + Sync;

/// A password hook. Compared, hashed and shown by its identity alone.
#[derive(Clone)]
pub struct PasswordHook {
    identity: (usize, usize),
    call: Arc<PasswordFn>,
}

impl PasswordHook {
    /// The hook identified by `identity` (two hooks with one identity must do the same thing),
    /// running `call`.
    pub fn new(
        identity: (usize, usize),
        call: impl Fn(&HostSpec, &str) -> Result<Option<String>> + Send + Sync + 'static,
    ) -> PasswordHook {
        PasswordHook { identity, call: Arc::new(call) }
    }

    /// Ask the hook. A panic in it fails the connection attempt.
    pub fn call(&self, host: &HostSpec, user: &str) -> Result<Option<String>> {
        catch_unwind(AssertUnwindSafe(|| (self.call)(host, user)))
            .unwrap_or_else(|_| Err(Error::operational("08001", "the password callback panicked")))
    }

    /// What tells this hook from others.
    pub fn identity(&self) -> (usize, usize) {
        self.identity
    }
}

impl PartialEq for PasswordHook {
    fn eq(&self, other: &Self) -> bool {
        self.identity == other.identity
    }
}

impl Eq for PasswordHook {}

impl Hash for PasswordHook {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.identity.hash(state);
    }
}

impl fmt::Debug for PasswordHook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PasswordHook({:#x}, {:#x})", self.identity.0, self.identity.1)
    }
}
