//! The IDX readers (plain or gzipped) on arbitrary bytes: they must never
//! panic, and what they accept must be exactly what the header describes.

#![no_main]

use libfuzzer_sys::fuzz_target;
use strata_core::datasets::{parse_idx_images, parse_idx_labels, DigitsImage, MnistImage};

fuzz_target!(|data: &[u8]| {
    let plain = !data.starts_with(&[0x1f, 0x8b]);
    if let Ok(images) = parse_idx_images(data) {
        assert_eq!(
            images.pixels.len(),
            images.count * images.rows * images.cols
        );
        if plain {
            assert_eq!(images.pixels.len(), data.len() - 16);
        }
        let _ = images.to_batch::<MnistImage>();
        let _ = images.to_batch::<DigitsImage>();
        assert!(images.image(images.count).is_none());
        assert!(images.image(usize::MAX).is_none());
    }
    if let Ok(labels) = parse_idx_labels(data) {
        if plain {
            assert_eq!(labels.len(), data.len() - 8);
        }
    }
});
