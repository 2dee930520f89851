//! The committed C header must be exactly what cbindgen generates from the sources (build.rs
//! writes it to OUT_DIR). On failure run `make header` and commit include/pgsess.h.

#[test]
fn committed_header_matches_cbindgen_output() {
    let generated = std::fs::read_to_string(concat!(env!("OUT_DIR"), "/pgsess.h"))
        .expect("build.rs generated the header (see the cbindgen warning in the build output)");
    let committed = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/include/pgsess.h"))
        .expect("include/pgsess.h is committed");
    assert!(generated == committed, "include/pgsess.h differs from cbindgen's output: run `make header` and commit it");
}

#[test]
fn header_version_macros_equal_cargo_version() {
    let header = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/include/pgsess.h")).unwrap();
    let define = |name: &str| {
        header
            .lines()
            .find_map(|l| l.strip_prefix(&format!("#define {name} ")))
            .unwrap_or_else(|| panic!("{name} is not defined"))
            .trim()
            .to_string()
    };
    assert_eq!(define("PGSESS_VERSION_MAJOR"), env!("CARGO_PKG_VERSION_MAJOR"));
    assert_eq!(define("PGSESS_VERSION_MINOR"), env!("CARGO_PKG_VERSION_MINOR"));
    assert_eq!(define("PGSESS_VERSION_PATCH"), env!("CARGO_PKG_VERSION_PATCH"));
    assert_eq!(define("PGSESS_VERSION"), format!("\"{}\"", env!("CARGO_PKG_VERSION")));
    let lib = unsafe { std::ffi::CStr::from_ptr(pgsess::ffi::library::pgsess_version()) };
    assert_eq!(lib.to_str().unwrap(), env!("CARGO_PKG_VERSION"));
}
