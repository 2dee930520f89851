//! `pgsess-check` (installed by `make install` into PREFIX/bin): check a pgsess configuration
//! without connecting, and print the settings a connection would use, the password never shown.
//! It runs the check `pgsess_config_check` runs (`pgsess::config::check`).
//!
//! Usage: `pgsess-check 'postgresql://...'`, `pgsess-check 'host=... dbname=...'`, or
//! `pgsess-check NAME` (the session name: reads `PGSQL_<NAME>` as `pgsess_open` does). Exit
//! status 0 when the configuration is valid, 1 when it is not (the error on stderr, as
//! `pgsess_config_check` reports it), 2 for a usage error.

use std::process::ExitCode;

use pgsess::config::{check, ProcessEnvironment};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [arg] = args.as_slice() else {
        eprintln!(
            "usage: pgsess-check CONNECTION-STRING | NAME\n  \
             checks a URI (postgresql://...), key=value pairs, or the PGSQL_<NAME> variable of a session name,\n  \
             without connecting; prints the settings with the password hidden"
        );
        return ExitCode::from(2);
    };
    if arg == "-h" || arg == "--help" {
        println!("usage: pgsess-check CONNECTION-STRING | NAME");
        return ExitCode::SUCCESS;
    }
    match check(arg, &ProcessEnvironment) {
        Ok(checked) => {
            print!("{}", checked.report());
            println!("OK");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("pgsess-check: {}: {}", e.code.c_name().to_string_lossy(), e.message);
            ExitCode::from(1)
        }
    }
}
