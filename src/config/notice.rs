//! The notice hook: what a pool's connections call with each notice (a NoticeResponse: NOTICE,
//! WARNING, INFO, DEBUG, LOG, as the server sends them to the client) that arrives while they run
//! a statement.
//!
//! A hook is one of the pool settings, which are `Copy` and make the pool key through `Debug`:
//! so a hook is a reference to a function kept for the life of the process, and what tells two
//! hooks apart is an identity given by its maker (for a C callback, the function's and the user
//! data's addresses), never the function value itself. Hooks are kept in a process-wide list,
//! one per identity, pushed without a lock (a lock held by another thread at fork() would hang
//! the child's first hook); the list only grows, as the pool registry does, and a program that
//! makes the same hook again and again (new options per request) gets the same entry back.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr::null_mut;
use std::sync::atomic::{AtomicPtr, Ordering};

use crate::error::ServerFields;

/// What a notice hook runs: called with the notice's fields, which live for the call only.
pub type NoticeFn = dyn Fn(&ServerFields) + Send + Sync;

/// A notice hook (`SessionOptions::set_notice_hook`). Compared, hashed and shown by its identity
/// alone: sessions whose hooks have different identities get different pools.
#[derive(Clone, Copy)]
pub struct NoticeHook {
    identity: (usize, usize),
    call: &'static NoticeFn,
}

impl NoticeHook {
    /// The hook identified by `identity`, running `call`. The first hook made with an identity
    /// is kept for the life of the process (the pools that hold it live as long) and every later
    /// one with that identity is that hook again: `call` is then dropped unused. So two hooks
    /// with one identity must do the same thing; for a C callback the identity is the pair
    /// (function address, user data address), for Rust code any pair unique to the closure.
    pub fn new(identity: (usize, usize), call: impl Fn(&ServerFields) + Send + Sync + 'static) -> NoticeHook {
        NoticeHook { identity, call: intern(identity, Box::new(call)) }
    }

    /// What tells this hook from others.
    pub fn identity(&self) -> (usize, usize) {
        self.identity
    }

    /// Run the hook with `notice`. A panic in it is caught (that notice is lost to the hook) and
    /// the statement goes on.
    pub fn call(&self, notice: &ServerFields) {
        let _ = catch_unwind(AssertUnwindSafe(|| (self.call)(notice)));
    }
}

impl PartialEq for NoticeHook {
    fn eq(&self, other: &Self) -> bool {
        self.identity == other.identity
    }
}

impl Eq for NoticeHook {}

impl Hash for NoticeHook {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.identity.hash(state);
    }
}

impl fmt::Debug for NoticeHook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NoticeHook({:#x}, {:#x})", self.identity.0, self.identity.1)
    }
}

/// One kept hook. Never freed, never changed once in the list.
struct Kept {
    identity: (usize, usize),
    call: &'static NoticeFn,
    next: *const Kept,
}

/// The newest kept hook; each points at the one kept before it.
static KEPT: AtomicPtr<Kept> = AtomicPtr::new(null_mut());

/// The kept hook with `identity` among those from `from` back to (not including) `until`.
fn find(identity: (usize, usize), from: *const Kept, until: *const Kept) -> Option<&'static NoticeFn> {
    let mut at = from;
    while !at.is_null() && at != until {
        // SAFETY: entries of the list are leaked boxes, never freed or changed after they were
        // published (with Release, read here after an Acquire load of the head).
        let kept = unsafe { &*at };
        if kept.identity == identity {
            return Some(kept.call);
        }
        at = kept.next;
    }
    None
}

/// The function kept for `identity`: the one already kept, else `call`, kept from now on.
fn intern(identity: (usize, usize), call: Box<NoticeFn>) -> &'static NoticeFn {
    let mut head = KEPT.load(Ordering::Acquire).cast_const();
    if let Some(kept) = find(identity, head, std::ptr::null()) {
        return kept;
    }
    let call: &'static NoticeFn = Box::leak(call);
    let new = Box::into_raw(Box::new(Kept { identity, call, next: head }));
    loop {
        match KEPT.compare_exchange(head.cast_mut(), new, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => return call,
            Err(now) => {
                // Others pushed meanwhile: one of them may have kept this identity.
                if let Some(kept) = find(identity, now, head) {
                    // SAFETY: `new` and `call` were never published: still ours alone.
                    unsafe {
                        drop(Box::from_raw(new));
                        drop(Box::from_raw((call as *const NoticeFn).cast_mut()));
                    }
                    return kept;
                }
                head = now;
                // SAFETY: as above, `new` is not published yet.
                unsafe { (*new).next = head };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::sync::Arc;

    #[test]
    fn one_identity_is_one_hook_and_identity_is_all_that_is_compared() {
        static CALLS: AtomicUsize = AtomicUsize::new(0);
        let id = (&CALLS as *const AtomicUsize as usize, 1);
        let first = NoticeHook::new(id, |_| {
            CALLS.fetch_add(1, Ordering::Relaxed);
        });
        // Same identity, other function: the first one is kept.
        let again = NoticeHook::new(id, |_| panic!("never run: its identity was taken"));
        assert_eq!(first, again);
        again.call(&ServerFields::default());
        assert_eq!(CALLS.load(Ordering::Relaxed), 1);
        let other = NoticeHook::new((id.0, 2), |_| {});
        assert_ne!(first, other);
        assert_eq!(format!("{first:?}"), format!("NoticeHook({:#x}, 0x1)", id.0));
    }

    #[test]
    fn a_panicking_hook_is_contained() {
        let hook = NoticeHook::new((usize::MAX, 7), |_| panic!("hook panics"));
        hook.call(&ServerFields::default());
    }

    #[test]
    fn threads_making_hooks_at_once_agree_on_one_per_identity() {
        let made = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let made = made.clone();
                std::thread::spawn(move || {
                    (0..200)
                        .map(|i| {
                            let made = made.clone();
                            let hook = NoticeHook::new((0xfeed_0000 + i % 50, t % 2), move |_| {
                                made.fetch_add(1, Ordering::Relaxed);
                            });
                            hook.call as *const NoticeFn as *const () as usize
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let results: Vec<Vec<usize>> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        for i in 0..200 {
            for t in 0..8 {
                assert_eq!(results[t][i], results[t % 2][i % 50], "identity ({i} % 50, {t} % 2)");
            }
        }
    }
}
