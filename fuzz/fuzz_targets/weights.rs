//! The safetensors loader on arbitrary bytes: it must never panic, and a
//! failed load must leave the model exactly as it was.

#![no_main]

use libfuzzer_sys::fuzz_target;
use strata_core::typenum::consts::*;
use strata_core::{seeded_rng, Conv2D, Dense, Layer, Model, Shape1, Shape3, Valid};

/// Every tensor of `layer`, as bits.
fn snapshot<L: Layer>(layer: &L) -> Vec<Vec<u32>> {
    layer
        .params()
        .iter()
        .map(|p| {
            let v = layer.export_param(&p.name).unwrap_or_default();
            v.iter().map(|x| x.to_bits()).collect()
        })
        .collect()
}

fn load_or_unchanged<L: Layer>(layer: &mut L, data: &[u8]) {
    let before = snapshot(layer);
    if layer.load_safetensors_bytes(data).is_err() {
        assert!(snapshot(layer) == before, "a failed load changed the model");
    }
}

fuzz_target!(|data: &[u8]| {
    // Keys `weight` [3, 2, 2, 2] and `bias` [3].
    let mut conv =
        Conv2D::<Shape3<U4, U4, U2>, U3, U2, U2, U1, U1, Valid>::new(true, &mut seeded_rng(0));
    load_or_unchanged(&mut conv, data);
    // Keys `weight` [4, 6] and `bias` [4], stored transposed.
    let mut dense = Dense::<Shape1<U6>, U4>::new(true, &mut seeded_rng(1));
    load_or_unchanged(&mut dense, data);
});
