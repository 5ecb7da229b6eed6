//! The safetensors loader reading from a file, whose reader works out from
//! the header how much to read: it must never panic, and a failed load must
//! leave the model exactly as it was.

#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use strata_core::typenum::consts::*;
use strata_core::{seeded_rng, Dense, Layer, Model, Shape1};

fn path() -> &'static PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        std::env::temp_dir().join(format!("strata-fuzz-{}.safetensors", std::process::id()))
    })
}

fuzz_target!(|data: &[u8]| {
    if std::fs::write(path(), data).is_err() {
        return;
    }
    let mut dense = Dense::<Shape1<U6>, U4>::new(true, &mut seeded_rng(1));
    let before: Vec<Vec<f32>> = dense
        .params()
        .iter()
        .map(|p| dense.export_param(&p.name).unwrap_or_default())
        .collect();
    if dense.load_safetensors(path()).is_err() {
        let after: Vec<Vec<f32>> = dense
            .params()
            .iter()
            .map(|p| dense.export_param(&p.name).unwrap_or_default())
            .collect();
        let bits = |v: &Vec<Vec<f32>>| -> Vec<Vec<u32>> {
            v.iter()
                .map(|t| t.iter().map(|x| x.to_bits()).collect())
                .collect()
        };
        assert!(
            bits(&before) == bits(&after),
            "a failed load changed the model"
        );
    }
});
