//! The one idiom every export follows (after rustls-ffi): how a pointer becomes a Rust reference
//! or box, and what an export returns when it cannot do its work.
//!
//! - Every handle type is an opaque C name for one Rust type (`Handle::Rust`), boxed: making a
//!   handle is `Box::into_raw`, and nothing is copied on the way to C. The pointer C gets is
//!   a checked name for the box (`handles`: a slot and generation in the handle table), so a
//!   handle used after it was freed, freed twice or passed as another type is an interface
//!   error, never undefined behaviour.
//! - `arg`, `arg_mut` and `take` turn a handle pointer into `&T`, `&mut T` or `Box<T>`; a NULL
//!   pointer is an interface error that names the argument, and so is a freed handle or one of
//!   another type (`take` ignores those: a second free does nothing).
//! - `lend` makes a handle for a value something else owns: an unchecked address for a call
//!   that ends before the owner does (a callback's argument), or a checked borrowed handle
//!   (`lend_scoped`, `lend_child`, `lend_checked`) that the owner removes before the value
//!   goes, for handles C may keep.
//! - `call` runs an export's body: it clears `*err`, catches panics (`PGSESS_PANIC`), stores an
//!   error in `*err`, and returns the return type's `Fallback` (NULL, 0, false, or the error's
//!   code) when the body fails. `read_arg` is `call` for a reader of one handle that takes no
//!   `err` and cannot fail otherwise (the per-value readers): the same answers, with the
//!   failure paths out of line.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr::{null, null_mut};

use super::error::{into_raw as error_into_raw, pgsess_error};
use crate::error::{Code, Error, Result};

mod handles;
pub(crate) use handles::Kind;
use handles::{name_of, Found};

/// A C handle type: an opaque name for a `Rust` value made by this library. Each has a kind of
/// its own in the handle table (`handles::Kind`, listed there).
pub(crate) trait Handle: Kind {
    type Rust;
}

/// The value an export returns when its body fails (a NULL or invalid argument, an error, a
/// caught panic): what the header documents as that function's failure value.
pub(crate) trait Fallback {
    fn fallback(error: &Error) -> Self;
}

impl<T> Fallback for *mut T {
    fn fallback(_: &Error) -> Self {
        null_mut()
    }
}

impl<T> Fallback for *const T {
    fn fallback(_: &Error) -> Self {
        null()
    }
}

/// A `pgsess_code` result is the failure's own code.
impl Fallback for Code {
    fn fallback(error: &Error) -> Self {
        error.code
    }
}

macro_rules! fallback_zero {
    ($($t:ty),*) => {$(
        impl Fallback for $t {
            fn fallback(_: &Error) -> Self {
                Default::default()
            }
        }
    )*};
}
fallback_zero!(bool, usize, u32, u64, i32, ());

/// For exports that take no `pgsess_error **err`.
pub(crate) const NO_ERR: *mut *mut pgsess_error = null_mut();

/// Run an export's body. `err` is NULL or writable: it is set to NULL on entry and to a new error
/// on failure. A panic becomes a `PGSESS_PANIC` error; none crosses the boundary. Inlined into
/// every export, with the failure path out of line: a per-cell accessor pays only for its own
/// work on success.
#[inline(always)]
pub(crate) fn call<T: Fallback>(err: *mut *mut pgsess_error, body: impl FnOnce() -> Result<T>) -> T {
    call_or(T::fallback, err, body)
}

/// `call` for an export whose failure value is not its type's `Fallback` (-1 for an index or a
/// file descriptor).
#[inline(always)]
pub(crate) fn call_or<T>(
    fallback: impl FnOnce(&Error) -> T,
    err: *mut *mut pgsess_error,
    body: impl FnOnce() -> Result<T>,
) -> T {
    if !err.is_null() {
        // SAFETY: the caller passes either NULL (checked) or a pointer to writable storage.
        unsafe { *err = null_mut() };
    }
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => failed(fallback, err, e),
        Err(_) => failed(fallback, err, Error::panic()),
    }
}

/// `call` for an export that only reads one handle, takes no `err` and cannot fail but by its
/// argument: the per-cell and per-value readers, called once per value. The handle is resolved
/// inline and `read` gets its value. A NULL or dead handle returns `T`'s fallback, and a panic
/// `T`'s fallback for a `PGSESS_PANIC`, both out of line: the success path holds no `Error`
/// (under `call`, `pgsess_results_value` saved four registers and set up a 0xc8-byte frame for
/// one on every call).
///
/// # Safety
/// As for `arg`.
#[inline(always)]
pub(crate) unsafe fn read_arg<H: Handle, T: Fallback>(p: *const H, name: &str, read: impl FnOnce(&H::Rust) -> T) -> T {
    let found = if p.is_null() { None } else { handles::resolve(p as usize, H::KIND) };
    let Some(v) = found else {
        return unreadable::<H, T>(p as usize, name);
    };
    // SAFETY: `resolve` gives the address of a live value (the caller's promise for a plain one).
    let value = unsafe { &*v.cast::<H::Rust>() };
    match catch_unwind(AssertUnwindSafe(|| read(value))) {
        Ok(t) => t,
        Err(_) => read_panicked(),
    }
}

/// `read_arg`'s answer for a NULL or dead handle.
#[cold]
#[inline(never)]
fn unreadable<H: Handle, T: Fallback>(p: usize, name: &str) -> T {
    let e = if p == 0 { null_argument(name) } else { not_resolved::<H>(p, name) };
    T::fallback(&e)
}

/// `read_arg`'s answer for a panic.
#[cold]
#[inline(never)]
fn read_panicked<T: Fallback>() -> T {
    T::fallback(&Error::panic())
}

/// The failure path of `call_or`: store the error, return the fallback.
#[cold]
#[inline(never)]
fn failed<T>(fallback: impl FnOnce(&Error) -> T, err: *mut *mut pgsess_error, e: Error) -> T {
    let value = fallback(&e);
    if !err.is_null() {
        // SAFETY: as in `call_or`.
        unsafe { *err = error_into_raw(e) };
    }
    value
}

#[cold]
#[inline(never)]
fn null_argument(name: &str) -> Error {
    Error::interface(format!("{name} is NULL"))
}

/// The error for an argument that names no live handle of its type.
#[cold]
#[inline(never)]
fn not_live<H: Handle>(name: &str, found: Found) -> Error {
    let what = name_of::<H>();
    Error::interface(match found {
        Found::OtherKind(other) => format!("{name} is a {other}, not a {what}"),
        Found::Borrowed => format!("{name} is a {what} owned by another object; it is not freed by itself"),
        _ => format!(
            "{name} is not a live {what}: it was already freed (or closed, committed, rolled back, or its owner freed)"
        ),
    })
}

/// The address a handle argument names: a live checked handle's value, or the pointer itself
/// when it is not a checked handle (a lent or unchecked one). Inlined: a few loads and
/// compares; the failures are out of line.
#[inline(always)]
fn resolve<H: Handle>(p: *const H, name: &str) -> Result<*mut H::Rust> {
    if p.is_null() {
        return Err(null_argument(name));
    }
    match handles::resolve(p as usize, H::KIND) {
        Some(v) => Ok(v.cast()),
        None => Err(not_resolved::<H>(p as usize, name)),
    }
}

/// Why `resolve` found no live handle, as an error.
#[cold]
#[inline(never)]
fn not_resolved<H: Handle>(p: usize, name: &str) -> Error {
    not_live::<H>(name, handles::lookup(p, H::KIND))
}

/// Borrow a handle argument.
///
/// # Safety
/// `p` is NULL, a handle of this library (live or freed), or the address of a live `H::Rust`
/// lent by it; not freed during `'a`.
#[inline(always)]
pub(crate) unsafe fn arg<'a, H: Handle>(p: *const H, name: &str) -> Result<&'a H::Rust> {
    // SAFETY: `resolve` gives the address of a live value (the caller's promise for a plain one).
    resolve(p, name).map(|v| &*v)
}

/// Borrow a handle argument for change (handles documented "one thread at a time").
///
/// # Safety
/// As for `arg`, and nothing else uses the handle during `'a`.
#[inline(always)]
pub(crate) unsafe fn arg_mut<'a, H: Handle>(p: *mut H, name: &str) -> Result<&'a mut H::Rust> {
    resolve(p, name).map(|v| &mut *v)
}

/// Take back ownership of a handle (to free, close, commit or roll back); `None` for NULL, for
/// a handle already freed (a second free does nothing), one of another type, and a borrowed
/// one (its owner frees the value).
///
/// # Safety
/// `p` is NULL, a handle of this library, or an unchecked one made by `give` and not taken
/// back since.
pub(crate) unsafe fn take<H: Handle>(p: *mut H) -> Option<Box<H::Rust>> {
    take_checked(p, "handle").ok()
}

/// `take`, saying why when there is nothing to take (NULL, freed, another type, borrowed).
///
/// # Safety
/// As for `take`.
pub(crate) unsafe fn take_checked<H: Handle>(p: *mut H, name: &str) -> Result<Box<H::Rust>> {
    if p.is_null() {
        return Err(null_argument(name));
    }
    match handles::remove(p as usize, H::KIND, true) {
        Found::Plain => Ok(Box::from_raw(p.cast::<H::Rust>())),
        Found::Live(v) => Ok(Box::from_raw(v.cast::<H::Rust>())),
        found => Err(not_live::<H>(name, found)),
    }
}

/// Make a handle the caller owns.
pub(crate) fn give<H: Handle>(value: Box<H::Rust>) -> *mut H {
    let ptr = Box::into_raw(value);
    match handles::insert(H::KIND, ptr.cast(), false) {
        Some(handle) => handle as *mut H,
        None => ptr.cast(), // the table is full or has no range: unchecked
    }
}

/// An unchecked handle to a value something else owns, for a call that ends before the value
/// does (the caller reads it, never frees it).
pub(crate) fn lend<H: Handle>(value: &H::Rust) -> *const H {
    (value as *const H::Rust).cast()
}

/// A checked handle to a value something else owns, which C may keep: usable like any other
/// until `unlend` (which the owner calls before the value goes); freeing it is refused.
pub(crate) fn lend_checked<H: Handle>(value: &H::Rust) -> *mut H {
    let ptr = (value as *const H::Rust).cast_mut();
    match handles::insert(H::KIND, ptr.cast(), true) {
        Some(handle) => handle as *mut H,
        None => ptr.cast(),
    }
}

/// End a handle made by `lend_checked`: later uses of it are interface errors.
pub(crate) fn unlend<H: Handle>(handle: *const H) {
    if !handle.is_null() {
        let _ = handles::remove(handle as usize, H::KIND, false);
    }
}

/// Run `f` with a checked handle to `value` that ends when `f` returns (the transaction a
/// `pgsess_run_in_tx` function is given: kept and used after, it is an interface error).
pub(crate) fn lend_scoped<H: Handle, T>(value: &H::Rust, f: impl FnOnce(*mut H) -> T) -> T {
    struct End<H: Handle>(*mut H);
    impl<H: Handle> Drop for End<H> {
        fn drop(&mut self) {
            unlend(self.0);
        }
    }
    let handle = End(lend_checked::<H>(value));
    f(handle.0)
}

/// The checked handle to `value`, owned by the value behind `owner`, made on first call and
/// the same on later ones; it ends when `owner` is taken back or ends (a transaction's
/// session, valid until the commit or rollback). An unchecked `lend` when `owner` is not a
/// checked handle.
///
/// # Safety
/// `owner` is a live handle and `value` lives as long as the value it names.
pub(crate) unsafe fn lend_child<H: Handle, O: Handle>(owner: *const O, value: &H::Rust) -> *mut H {
    let owner = owner as usize;
    if !handles::in_table(owner) {
        return lend::<H>(value).cast_mut();
    }
    let ptr = (value as *const H::Rust).cast_mut().cast::<()>();
    loop {
        let existing = handles::child_of(owner);
        if existing != 0 {
            if let Found::Live(v) = handles::lookup(existing, H::KIND) {
                if v == ptr {
                    return existing as *mut H;
                }
            }
            return lend::<H>(value).cast_mut(); // not expected: the slot holds another child
        }
        let fresh = lend_checked::<H>(value);
        if !handles::in_table(fresh as usize) || handles::set_child(owner, fresh as usize) {
            return fresh;
        }
        unlend(fresh); // another thread set one first: use it
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ffi::batch::pgsess_batch;
    use crate::ffi::options::pgsess_options;
    use crate::ffi::session::pgsess_session;
    use crate::ffi::tx::pgsess_tx;
    use crate::SessionOptions;

    fn message(e: Error) -> String {
        assert_eq!(e.code, Code::PGSESS_INTERFACE_ERROR);
        e.message
    }

    #[test]
    fn a_freed_handle_is_an_interface_error() {
        let h = give::<pgsess_batch>(Box::default());
        assert!(handles::in_table(h as usize), "the table has a range on this machine");
        assert!(h as usize >= 4096);
        unsafe {
            arg_mut(h, "batch").unwrap().push(crate::conn::BatchStatement { sql: "x".into(), params: vec![] });
            assert_eq!(arg(h, "batch").unwrap().len(), 1);
            let b = take_checked(h, "batch").unwrap();
            assert_eq!(b.len(), 1);
            let m = message(arg(h, "batch").map(drop).unwrap_err());
            assert!(m.starts_with("batch is not a live pgsess_batch: it was already freed"), "{m}");
            assert!(take(h).is_none(), "a second free does nothing");
            assert!(message(take_checked(h, "batch").map(drop).unwrap_err()).contains("not a live"));
            assert!(message(arg::<pgsess_batch>(null(), "batch").map(drop).unwrap_err()).contains("is NULL"));
        }
    }

    #[test]
    fn a_handle_of_another_type_is_an_interface_error() {
        let h = give::<pgsess_options>(Box::default());
        unsafe {
            let m = message(arg(h.cast::<pgsess_batch>(), "batch").map(drop).unwrap_err());
            assert_eq!(m, "batch is a pgsess_options, not a pgsess_batch");
            assert!(take(h.cast::<pgsess_batch>()).is_none());
            assert!(take(h).is_some());
        }
        // Misaligned or unused addresses inside the range name nothing.
        let (base, _) = handles::region_now().unwrap();
        for p in [base + 1, base + 8 * 1_000_000, base + (1 << 32) - 8] {
            assert!(unsafe { arg(p as *const pgsess_options, "opts") }.is_err());
        }
    }

    #[test]
    fn a_stale_handle_never_names_a_later_value() {
        let mut stale = Vec::new();
        let mut live = Vec::new();
        for i in 0..20_000usize {
            let h = give::<pgsess_batch>(Box::default());
            if i % 3 == 0 {
                live.push(h);
            } else {
                drop(unsafe { take(h) }.unwrap());
                stale.push(h);
            }
        }
        let live_set: std::collections::HashSet<usize> = live.iter().map(|&h| h as usize).collect();
        for &h in &stale {
            assert!(!live_set.contains(&(h as usize)), "a freed handle's name was given again");
            assert!(unsafe { arg(h, "batch") }.is_err());
        }
        for h in live {
            assert!(unsafe { take(h) }.is_some());
        }
    }

    #[test]
    fn borrowed_handles_end_with_their_owner() {
        let owner = give::<pgsess_options>(Box::default());
        let value = Box::new(SessionOptions::default());
        unsafe {
            let lent = lend_checked::<pgsess_options>(&value);
            assert!(arg(lent, "opts").is_ok());
            let m = message(take_checked(lent, "opts").map(drop).unwrap_err());
            assert_eq!(m, "opts is a pgsess_options owned by another object; it is not freed by itself");
            assert!(take(lent).is_none());
            unlend(lent);
            assert!(arg(lent, "opts").is_err());

            let child = lend_child::<pgsess_options, pgsess_options>(owner, &value);
            assert_eq!(lend_child::<pgsess_options, pgsess_options>(owner, &value), child, "the same handle again");
            assert!(arg(child, "opts").is_ok());
            assert!(take(owner).is_some());
            assert!(arg(child, "opts").is_err(), "the child ended with its owner");

            let seen = lend_scoped::<pgsess_options, _>(&value, |h| {
                assert!(arg(h, "opts").is_ok());
                h
            });
            assert!(arg(seen, "opts").is_err(), "a scoped handle ends with its scope");
        }
    }

    #[test]
    fn handles_from_many_threads() {
        let threads: Vec<_> = (0..4)
            .map(|_| {
                std::thread::spawn(|| {
                    let mut mine = Vec::new();
                    for i in 0..5_000 {
                        mine.push(give::<pgsess_batch>(Box::default()) as usize);
                        if i % 2 == 0 {
                            let h = mine.swap_remove(mine.len() / 2) as *mut pgsess_batch;
                            assert!(unsafe { take(h) }.is_some());
                            assert!(unsafe { take(h) }.is_none());
                        }
                    }
                    for h in mine {
                        assert!(unsafe { arg(h as *const pgsess_batch, "batch") }.is_ok());
                        assert!(unsafe { take(h as *mut pgsess_batch) }.is_some());
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert!(handles::live() < 100_000);
        // Unused here, but every Handle type must have a kind: this names two more.
        let _ = (name_of::<pgsess_session>(), name_of::<pgsess_tx>());
    }
}
