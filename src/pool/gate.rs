//! A first-come, first-served gate in front of r2d2: at most `pool_max_size` callers hold a
//! connection, and when all are held, waiters are served in arrival order. A release hands its
//! permit straight to the longest waiter and wakes only that thread (r2d2's own condvar wakes
//! an arbitrary waiter, which under contention leaves some callers waiting through many
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
        Gate { state: Mutex::new(State { permits, queue: VecDeque::new() }) }
    }

    /// The state lock; a panic cannot leave `State` half-updated, so poisoning is ignored.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Take a permit if one is free and nobody is waiting for one.
    pub fn try_acquire(&self) -> bool {
        self.lock().take_free_permit()
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
}
