//! Generates the C header with cbindgen into `$OUT_DIR/pgsess.h`. The committed
//! `include/pgsess.h` must equal it: `make header` copies it, and the test `header_matches`
//! fails on any difference. Nothing here writes into the source tree.
//!
//! Also hands the linker `src/hot-symbols.txt` (see `order_hot_symbols`).

use std::io::Write;
use std::process::{Command, Stdio};

fn main() {
    let crate_dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let out_dir = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    println!("cargo:rerun-if-changed=src");
    // The shared library's soname carries the major version (ABI policy in README.md).
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        let major = std::env::var("CARGO_PKG_VERSION_MAJOR").expect("cargo sets the version");
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libpgsess.so.{major}");
    }
    order_hot_symbols(&crate_dir, &out_dir);
    let mut config = cbindgen::Config::from_file(format!("{crate_dir}/cbindgen.toml")).expect("cbindgen.toml is valid");
    // Version macros equal to Cargo's version (tests/header.rs checks them).
    let version = |part: &str| std::env::var(format!("CARGO_PKG_VERSION_{part}")).expect("cargo sets the version");
    config.after_includes = Some(format!(
        "\n/** The version of this header: equal to pgsess_version() of the library it ships with. */\n\
         #define PGSESS_VERSION_MAJOR {}\n#define PGSESS_VERSION_MINOR {}\n#define PGSESS_VERSION_PATCH {}\n\
         #define PGSESS_VERSION \"{}\"",
        version("MAJOR"),
        version("MINOR"),
        version("PATCH"),
        std::env::var("CARGO_PKG_VERSION").expect("cargo sets the version")
    ));
    match cbindgen::Builder::new().with_crate(&crate_dir).with_config(config).generate() {
        Ok(bindings) => {
            bindings.write_to_file(format!("{out_dir}/pgsess.h"));
        }
        Err(e) => {
            // Keep the library building while a source file is mid-edit; the header test reports it.
            println!("cargo:warning=cbindgen could not generate the header: {e}");
        }
    }
}

/// Ask the linker to place the functions that run on every statement side by side
/// (`src/hot-symbols.txt`, written by `bench/hot-symbols.sh`): spread over the library, the
/// round trip's code touched 52 pages and, whenever anything else ran on the CPU in between,
/// was fetched again page by page; packed, under 20. Only a linker that takes a symbol ordering
/// file (lld, Rust's default on x86-64 Linux) gets the option: it is tried first on an empty
/// library, built with the same rustc, target, flags and linker (`RUSTC_LINKER`, which cargo
/// sets when one is configured). Names that no longer exist (renamed
/// functions, another toolchain) are skipped by the linker. `PGSESS_NO_SYMBOL_ORDER=1` leaves
/// the order to the linker.
fn order_hot_symbols(crate_dir: &str, out_dir: &str) {
    println!("cargo:rerun-if-env-changed=PGSESS_NO_SYMBOL_ORDER");
    if std::env::var_os("PGSESS_NO_SYMBOL_ORDER").is_some_and(|v| v == "1") {
        return;
    }
    let args = [
        format!("link-arg=-Wl,--symbol-ordering-file={crate_dir}/src/hot-symbols.txt"),
        "link-arg=-Wl,--no-warn-symbol-ordering".to_string(),
    ];
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let target = std::env::var("TARGET").expect("cargo sets TARGET");
    let flags = std::env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default();
    let mut probe = Command::new(rustc);
    probe.args(flags.split('\x1f').filter(|f| !f.is_empty()));
    if let Ok(linker) = std::env::var("RUSTC_LINKER") {
        probe.arg(format!("-Clinker={linker}"));
    }
    probe.args(["--crate-type", "cdylib", "--crate-name", "pgsess_link_probe", "--target", &target, "-o"]);
    probe.arg(format!("{out_dir}/libpgsess_link_probe.so"));
    for a in &args {
        probe.args(["-C", a]);
    }
    probe.arg("-").stdin(Stdio::piped()).stdout(Stdio::null()).stderr(Stdio::null());
    let linked = probe.spawn().and_then(|mut child| {
        // An empty crate: the link is all that is tried.
        child.stdin.take().map(|mut s| s.write_all(b"")).transpose()?;
        child.wait()
    });
    if linked.is_ok_and(|status| status.success()) {
        for a in &args {
            println!("cargo:rustc-cdylib-link-arg={}", a.trim_start_matches("link-arg="));
        }
    }
}
