//! Seeing what the pool does: stats, the log callback, leak reports; and no password in any of it.
//! On both kinds of pool (shared, and one of its own as a forked child makes), one after the other: the log
//! callback is process-wide.

mod support;

use std::ffi::{c_char, c_void, CStr};
use std::sync::Mutex;
use std::time::Duration;

use pgsess::ffi::log::pgsess_log_level as Level;
use pgsess::pool::PoolStats;
use pgsess::SessionOptions;
use support::Backend;

static LOG: Mutex<Vec<(Level, String)>> = Mutex::new(Vec::new());

unsafe extern "C" fn capture(_user: *mut c_void, level: Level, message: *const c_char) {
    let text = CStr::from_ptr(message).to_string_lossy().into_owned();
    LOG.lock().unwrap().push((level, text));
}

#[test]
fn stats_log_and_leak_reports_never_show_the_password() {
    let c = support::shared();
    // SAFETY: capture is thread-safe (a mutex) and never calls into pgsess.
    let code = unsafe {
        pgsess::ffi::log::pgsess_set_log_callback(Some(capture), std::ptr::null_mut(), Level::PGSESS_LOG_DEBUG as u32)
    };
    assert_eq!(code, pgsess::Code::PGSESS_OK);

    for b in [Backend::Shared, Backend::Local] {
        LOG.lock().unwrap().clear();
        let mut o =
            SessionOptions { db_url: Some(format!("{}?application_name=observe", c.uri())), ..Default::default() };
        o.set_pool_max_size(3).unwrap();
        o.set_checkout_timeout_ms(300).unwrap();
        o.set_leak_threshold_ms(400);
        let s = b.open("x", &o).unwrap();
        let mine = format!("pool {}", s.pool_id());
        let held = s.query("SELECT 'held on purpose'", &[]).unwrap();
        let tx = s.begin().unwrap();
        let third = s.query("SELECT 3", &[]).unwrap();
        let e = s.query("SELECT 4", &[]).expect_err("all three connections are held");
        std::thread::sleep(Duration::from_millis(1800));

        let st = s.pool_stats();
        assert_eq!((st.max_size, st.open, st.in_use, st.idle), (3, 3, 3, 0), "{st:?}");
        assert_eq!((st.results_outstanding, st.transactions_open, st.checkout_timeouts), (2, 1, 1), "{st:?}");
        assert!(st.connects >= 3 && st.checkouts >= 3, "{st:?}");
        drop((held, third));
        tx.rollback();
        let st = s.pool_stats();
        assert_eq!((st.in_use, st.idle, st.results_outstanding, st.transactions_open), (0, 3, 0, 0), "{st:?}");

        // The same numbers through the C struct.
        let mut cs = PoolStats::default();
        // SAFETY: a NULL session is allowed and reported.
        let failed = unsafe { pgsess::ffi::session::pgsess_pool_stats(std::ptr::null(), &mut cs) };
        assert_eq!(failed, pgsess::Code::PGSESS_INTERFACE_ERROR);

        // This pool's messages (the reaper and other pools log too).
        let log: Vec<_> = LOG.lock().unwrap().iter().filter(|(_, m)| m.contains(&mine)).cloned().collect();
        let leaks: Vec<_> =
            log.iter().filter(|(l, m)| *l == Level::PGSESS_LOG_WARN && m.contains("possible leak")).collect();
        assert!(leaks.iter().any(|(_, m)| m.contains("the results of \"SELECT 'held on purpose'\"")), "{log:#?}");
        assert!(leaks.iter().any(|(_, m)| m.contains("a transaction")), "{log:#?}");
        assert!(log.iter().any(|(l, m)| *l == Level::PGSESS_LOG_INFO && m.contains("connected to")), "{log:#?}");
        assert!(log.iter().any(|(l, m)| *l == Level::PGSESS_LOG_WARN && m.contains("exhausted")), "{log:#?}");

        // A failed login logs too; no message, error or id carries the password.
        let bad = c.uri().replace(support::Cluster::password(), "Wr0ng-Passw0rd-X");
        let login = b.open("x", &SessionOptions { db_url: Some(bad), ..Default::default() }).err().unwrap();
        let everything: Vec<String> = LOG
            .lock()
            .unwrap()
            .iter()
            .map(|(_, m)| m.clone())
            .chain([e.to_string(), login.to_string(), s.pool_id()])
            .collect();
        for text in &everything {
            for secret in [support::Cluster::password(), "Wr0ng-Passw0rd-X"] {
                assert!(!text.contains(secret), "a password leaked into: {text}");
            }
        }
    }
    unsafe { pgsess::ffi::log::pgsess_set_log_callback(None, std::ptr::null_mut(), 1) };
}
