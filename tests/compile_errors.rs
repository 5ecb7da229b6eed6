//! Compile-time behaviour of `sequential!`: the chains under `tests/ui/pass`
//! must build and run, and each chain under `tests/ui/fail` must be rejected
//! with the error recorded next to it (`.stderr`).
//!
//! To refresh the expected errors after changing a message:
//! `TRYBUILD=overwrite cargo test --test compile_errors`, then read the diff.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass/*.rs");
    t.compile_fail("tests/ui/fail/*.rs");
}
