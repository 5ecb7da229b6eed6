//! The digits CSV reader (plain or gzipped) on arbitrary bytes: it must
//! never panic, and what it accepts must be consistent.

#![no_main]

use libfuzzer_sys::fuzz_target;
use strata_core::datasets::parse_digits_csv;

fuzz_target!(|data: &[u8]| {
    if let Ok((x, y)) = parse_digits_csv(data) {
        assert_eq!(x.batch_size(), y.len());
        assert!(y.iter().all(|&label| label <= 9));
        assert!(x.as_slice().iter().all(|v| (0.0..=1.0).contains(v)));
    }
});
