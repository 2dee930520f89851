//! `pgsess::config::env_var_name` on arbitrary strings: never panics, always names a `PGSQL`
//! variable, and upper-cases the whole `PGSQL_<name>` exactly as `str::to_uppercase` does (which is
//! Python's `str.upper()` full case mapping).
#![no_main]

use libfuzzer_sys::fuzz_target;
use pgsess::config::env_var_name;

fuzz_target!(|data: &[u8]| {
    let name = String::from_utf8_lossy(data);
    let var = env_var_name(&name);
    assert!(var.starts_with("PGSQL"), "{var:?} for {name:?}");
    if name.is_empty() {
        assert_eq!(var, "PGSQL");
    } else {
        assert!(var.starts_with("PGSQL_"), "{var:?} for {name:?}");
        assert_eq!(var, format!("PGSQL_{}", name.to_uppercase()), "for {name:?}");
    }
});
