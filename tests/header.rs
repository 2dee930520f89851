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
