//! Compile-time behaviour of `sequential!`: the chains under `tests/ui/pass`
//! must build and run, and each chain under `tests/ui/fail` must be rejected
//! with the error recorded next to it (`.stderr`). Each case is built
//! against the `strata` facade, as a user's crate would be.
//!
//! These tests live in the macro's package so that trybuild is not a
//! dev-dependency of `strata` (examples build with those). Run them with
//! `cargo test -p strata-macros --test compile_errors`; to refresh the
//! expected errors after changing a message:
//! `TRYBUILD=overwrite cargo test -p strata-macros --test compile_errors`,
//! then read the diff.

use std::path::Path;

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass/*.rs");
    t.compile_fail("tests/ui/fail/*.rs");
}

/// The cases lived in the workspace root's `tests/ui/` until issue 10: one
/// added there would silently never run.
#[test]
fn no_cases_left_in_the_old_place() {
    let old = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/ui");
    assert!(
        !old.exists(),
        "{} exists: UI cases belong in macros/tests/ui/ now",
        old.display()
    );
}
