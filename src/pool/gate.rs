//! A first-come, first-served gate in front of the idle list: at most `pool_max_size` callers
//! hold a connection, and when all are held, waiters are served in arrival order. A release
//! hands its permit straight to the longest waiter and wakes only that thread (a condvar would
//! wake an arbitrary waiter, which under contention leaves some callers waiting through many
//! releases: a long latency tail).
//!
//! std's Mutex and thread parking only (futex-based on Linux), never parking_lot: the gate also
//! serves the pools of forked children (see `super::local`).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::Thread;
use std::time::Instant;

struct Waiter {
    thread: Thread,
    granted: AtomicBool,
}

struct State {
    permits: u32,
    /// Permits to take back as they are released, after `resize` made the gate smaller than
    /// the permits held.
    debt: u32,
    queue: VecDeque<Arc<Waiter>>,
}

impl State {
    /// Take a permit if one is free and nobody is waiting for one (waiters are served first).
    fn take_free_permit(&mut self) -> bool {
        let free = self.queue.is_empty() && self.permits > 0;
        if free {
            self.permits -= 1;
        }
        free
    }
}

pub struct Gate {
    state: Mutex<State>,
}

impl Gate {
    pub fn new(permits: u32) -> Gate {
        Gate { state: Mutex::new(State { permits, debt: 0, queue: VecDeque::new() }) }
    }

    /// The state lock; a panic cannot leave `State` half-updated, so poisoning is ignored.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Take a permit if one is free and nobody is waiting for one.
    pub fn try_acquire(&self) -> bool {
        self.lock().take_free_permit()
    }

    /// Take a permit for background work (opening an idle connection) only if one is free,
    /// nobody waits, and more permits are free than `idle()` connections are idle: so that the
    /// connection it opens keeps open connections within the permits. `idle` runs under the
    /// gate's lock: a lease lists its connection as idle before it releases its permit, so a
    /// returning connection is counted at least once.
    pub fn try_acquire_spare(&self, idle: impl FnOnce() -> usize) -> bool {
        let mut s = self.lock();
        let spare = s.queue.is_empty() && s.permits as usize > idle();
        if spare {
            s.permits -= 1;
        }
        spare
    }

    /// Change the number of permits to `total` (from `old`): more are handed to waiters at
    /// once; fewer are taken from the free ones, and the rest from releases as they come.
    pub fn resize(&self, old: u32, total: u32) {
        let mut s = self.lock();
        if total < old {
            let mut less = old - total;
            let free = less.min(s.permits);
            s.permits -= free;
            less -= free;
            s.debt += less;
        } else {
            let mut more = total - old;
            let repaid = more.min(s.debt);
            s.debt -= repaid;
            more -= repaid;
            for _ in 0..more {
                match s.queue.pop_front() {
                    Some(w) => {
                        w.granted.store(true, Ordering::Release);
                        w.thread.unpark();
                    }
                    None => s.permits += 1,
                }
            }
        }
    }

    /// Take a permit, waiting in line until `deadline`. False when the deadline passed first.
    pub fn acquire(&self, deadline: Instant) -> bool {
        let me = {
            let mut s = self.lock();
            if s.take_free_permit() {
                return true;
            }
            let me = Arc::new(Waiter { thread: std::thread::current(), granted: AtomicBool::new(false) });
            s.queue.push_back(me.clone());
            me
        };
        loop {
            if me.granted.load(Ordering::Acquire) {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                let mut s = self.lock();
                // A release may have handed us the permit just now.
                if me.granted.load(Ordering::Acquire) {
                    return true;
                }
                s.queue.retain(|w| !Arc::ptr_eq(w, &me));
                return false;
            }
            std::thread::park_timeout(deadline - now);
        }
    }

    /// Give a permit back: to the first waiter in line, or to the pool.
    pub fn release(&self) {
        let mut s = self.lock();
        if s.debt > 0 {
            s.debt -= 1;
            return;
        }
        match s.queue.pop_front() {
            Some(w) => {
                w.granted.store(true, Ordering::Release);
                w.thread.unpark();
            }
            None => s.permits += 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn waiters_are_served_in_arrival_order_and_can_give_up() {
        let gate = Arc::new(Gate::new(1));
        assert!(gate.acquire(Instant::now()));
        assert!(!gate.acquire(Instant::now() + Duration::from_millis(20)), "no permit left");
        let order = Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut handles = Vec::new();
        for i in 0..4 {
            let (gate, order) = (gate.clone(), order.clone());
            handles.push(std::thread::spawn(move || {
                assert!(gate.acquire(Instant::now() + Duration::from_secs(10)));
                order.lock().unwrap().push(i);
                gate.release();
            }));
            std::thread::sleep(Duration::from_millis(30)); // arrive in order 0, 1, 2, 3
        }
        gate.release();
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(*order.lock().unwrap(), vec![0, 1, 2, 3]);
        assert!(gate.acquire(Instant::now()), "the last release returned the permit");
    }

    #[test]
    fn resizing_takes_free_permits_then_releases_and_grows_for_waiters() {
        let gate = Arc::new(Gate::new(3));
        assert!(gate.try_acquire() && gate.try_acquire());
        gate.resize(3, 1); // 2 held, 1 free: the free one goes, and one release is kept
        assert!(!gate.try_acquire());
        gate.release();
        assert!(!gate.try_acquire(), "the first release paid the debt");
        gate.release();
        assert!(gate.try_acquire(), "one permit in all");
        let waiter = {
            let gate = gate.clone();
            std::thread::spawn(move || gate.acquire(Instant::now() + Duration::from_secs(10)))
        };
        std::thread::sleep(Duration::from_millis(30));
        gate.resize(1, 2);
        assert!(waiter.join().unwrap(), "growing served the waiter");
        assert!(!gate.try_acquire_spare(|| 0), "both permits held");
        gate.release();
        assert!(!gate.try_acquire_spare(|| 1), "one free permit, one idle connection");
        assert!(gate.try_acquire_spare(|| 0));
    }
}
