//! Generates the C header with cbindgen into `$OUT_DIR/pgsess.h`. The committed
//! `include/pgsess.h` must equal it: `make header` copies it, and the test `header_matches`
//! fails on any difference. Nothing here writes into the source tree.

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
