//! Parameter initialisation: Keras's defaults, from a seeded generator.

use rand::{Rng, RngCore, SeedableRng};

/// The generator strata uses for initialisation and dropout: ChaCha8, whose
/// stream is fixed for a given seed on every platform and version.
pub type SeededRng = rand_chacha::ChaCha8Rng;

/// The seed a model's parameters are drawn from unless another is chosen
/// (`Model::with_seed`).
pub const DEFAULT_SEED: u64 = 0x5EED_5EED;

/// A [`SeededRng`] started from `seed`.
pub fn seeded_rng(seed: u64) -> SeededRng {
    SeededRng::seed_from_u64(seed)
}

/// Fills `values` from Glorot (Xavier) uniform: U(-l, l) with
/// `l = sqrt(6 / (fan_in + fan_out))`, Keras's default kernel initialiser.
pub fn glorot_uniform(values: &mut [f32], fan_in: usize, fan_out: usize, rng: &mut dyn RngCore) {
    let limit = (6.0 / (fan_in + fan_out).max(1) as f64).sqrt() as f32;
    for v in values {
        *v = rng.random_range(-limit..=limit);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glorot_stays_inside_its_limit_and_is_seeded() {
        let mut a = vec![0.0; 1000];
        let mut b = vec![0.0; 1000];
        glorot_uniform(&mut a, 27, 288, &mut seeded_rng(1));
        glorot_uniform(&mut b, 27, 288, &mut seeded_rng(1));
        assert_eq!(a, b);
        let limit = (6.0f32 / 315.0).sqrt();
        assert!(a.iter().all(|v| v.abs() <= limit));
        // Uniform on (-l, l): the variance is l²/3.
        let var = a.iter().map(|v| v * v).sum::<f32>() / a.len() as f32;
        assert!((var - limit * limit / 3.0).abs() < 0.2 * limit * limit / 3.0);
    }
}
