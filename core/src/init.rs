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

/// Keras's initializers, by the names `kernel_initializer` and
/// `bias_initializer` take (`he_normal`, `zeros`...). Each fills a tensor
/// given its layer's fans, computed as Keras computes them from its kernel
/// shape (`fan_in = kh·kw·in`, `fan_out = kh·kw·out`; a bias's fans are its
/// length).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Initializer {
    /// U(-l, l), `l = sqrt(6 / (fan_in + fan_out))`: Keras's default kernel.
    GlorotUniform,
    /// Truncated normal, standard deviation `sqrt(2 / (fan_in + fan_out))`.
    GlorotNormal,
    /// U(-l, l), `l = sqrt(6 / fan_in)`.
    HeUniform,
    /// Truncated normal, standard deviation `sqrt(2 / fan_in)`.
    HeNormal,
    /// U(-l, l), `l = sqrt(3 / fan_in)`.
    LecunUniform,
    /// Truncated normal, standard deviation `sqrt(1 / fan_in)`.
    LecunNormal,
    /// All 0: Keras's default bias.
    Zeros,
    /// All 1.
    Ones,
    /// All `value`.
    Constant(f32),
    /// N(mean, stddev²); Keras's defaults are 0 and 0.05.
    RandomNormal {
        /// Mean.
        mean: f32,
        /// Standard deviation.
        stddev: f32,
    },
    /// U(minval, maxval); Keras's defaults are -0.05 and 0.05.
    RandomUniform {
        /// Lower bound.
        minval: f32,
        /// Upper bound.
        maxval: f32,
    },
    /// N(mean, stddev²) with draws beyond two standard deviations redrawn;
    /// Keras's defaults are 0 and 0.05.
    TruncatedNormal {
        /// Mean.
        mean: f32,
        /// Standard deviation before truncation.
        stddev: f32,
    },
    /// A (semi-)orthogonal matrix of Keras's kernel flattened to
    /// `[fan_in, out]`, times `gain`.
    Orthogonal {
        /// The factor applied to the orthogonal matrix.
        gain: f32,
    },
}

/// Keras's truncation at two standard deviations shrinks a normal's
/// standard deviation by this factor; its variance-scaling initializers
/// divide by it so that the drawn values keep the intended one.
const TRUNCATED_STD: f64 = 0.879_625_661_034_239_8;

impl Initializer {
    /// Keras's names, in the order they are listed.
    pub const NAMES: &'static [&'static str] = &[
        "glorot_uniform",
        "glorot_normal",
        "he_uniform",
        "he_normal",
        "lecun_uniform",
        "lecun_normal",
        "zeros",
        "ones",
        "random_normal",
        "random_uniform",
        "truncated_normal",
        "orthogonal",
    ];

    /// The initializer Keras calls `name`, with Keras's default arguments;
    /// class-style names (`HeNormal`, `Zeros`) are accepted too.
    pub fn from_name(name: &str) -> Option<Initializer> {
        let wanted: String = name
            .chars()
            .filter(|c| *c != '_')
            .map(|c| c.to_ascii_lowercase())
            .collect();
        let init = match wanted.as_str() {
            "glorotuniform" | "xavieruniform" => Initializer::GlorotUniform,
            "glorotnormal" | "xaviernormal" => Initializer::GlorotNormal,
            "heuniform" => Initializer::HeUniform,
            "henormal" => Initializer::HeNormal,
            "lecununiform" => Initializer::LecunUniform,
            "lecunnormal" => Initializer::LecunNormal,
            "zeros" | "zero" => Initializer::Zeros,
            "ones" | "one" => Initializer::Ones,
            "randomnormal" => Initializer::RandomNormal {
                mean: 0.0,
                stddev: 0.05,
            },
            "randomuniform" => Initializer::RandomUniform {
                minval: -0.05,
                maxval: 0.05,
            },
            "truncatednormal" => Initializer::TruncatedNormal {
                mean: 0.0,
                stddev: 0.05,
            },
            "orthogonal" => Initializer::Orthogonal { gain: 1.0 },
            _ => return None,
        };
        Some(init)
    }

    /// Fills `values` (a tensor in Keras's kernel layout, the output axis
    /// last) for a layer with fans `(fan_in, fan_out)`.
    pub fn fill(
        &self,
        values: &mut [f32],
        (fan_in, fan_out): (usize, usize),
        rng: &mut dyn RngCore,
    ) {
        let avg = (fan_in + fan_out) as f64 / 2.0;
        let fan_in_f = fan_in as f64;
        match *self {
            Initializer::GlorotUniform => glorot_uniform(values, fan_in, fan_out, rng),
            Initializer::GlorotNormal => variance_scaling_normal(values, 1.0 / avg.max(1.0), rng),
            Initializer::HeUniform => uniform_limit(values, (6.0 / fan_in_f.max(1.0)).sqrt(), rng),
            Initializer::HeNormal => variance_scaling_normal(values, 2.0 / fan_in_f.max(1.0), rng),
            Initializer::LecunUniform => {
                uniform_limit(values, (3.0 / fan_in_f.max(1.0)).sqrt(), rng)
            }
            Initializer::LecunNormal => {
                variance_scaling_normal(values, 1.0 / fan_in_f.max(1.0), rng)
            }
            Initializer::Zeros => values.fill(0.0),
            Initializer::Ones => values.fill(1.0),
            Initializer::Constant(c) => values.fill(c),
            Initializer::RandomNormal { mean, stddev } => values
                .iter_mut()
                .for_each(|v| *v = (mean as f64 + stddev as f64 * standard_normal(rng)) as f32),
            Initializer::RandomUniform { minval, maxval } => values
                .iter_mut()
                .for_each(|v| *v = minval + (maxval - minval) * rng.random::<f32>()),
            Initializer::TruncatedNormal { mean, stddev } => {
                truncated_normal(values, mean as f64, stddev as f64, rng)
            }
            Initializer::Orthogonal { gain } => orthogonal(values, fan_in.max(1), gain, rng),
        }
    }
}

/// A draw from N(0, 1) (Box–Muller).
fn standard_normal(rng: &mut dyn RngCore) -> f64 {
    // 1 - u is in (0, 1]: its logarithm is finite.
    let u = 1.0 - rng.random::<f64>();
    let v = rng.random::<f64>();
    (-2.0 * u.ln()).sqrt() * (core::f64::consts::TAU * v).cos()
}

/// N(mean, stddev²), redrawing anything beyond two standard deviations, as
/// Keras's `truncated_normal`.
fn truncated_normal(values: &mut [f32], mean: f64, stddev: f64, rng: &mut dyn RngCore) {
    for v in values {
        let z = loop {
            let z = standard_normal(rng);
            if z.abs() <= 2.0 {
                break z;
            }
        };
        *v = (mean + stddev * z) as f32;
    }
}

/// Keras's `VarianceScaling(distribution="truncated_normal")` for a scale
/// already divided by its fan: the drawn values have variance `scale`.
fn variance_scaling_normal(values: &mut [f32], scale: f64, rng: &mut dyn RngCore) {
    truncated_normal(values, 0.0, scale.sqrt() / TRUNCATED_STD, rng);
}

fn uniform_limit(values: &mut [f32], limit: f64, rng: &mut dyn RngCore) {
    let limit = limit as f32;
    for v in values {
        *v = rng.random_range(-limit..=limit);
    }
}

/// Keras's `Orthogonal`: the kernel as a `[rows, cols]` matrix (`rows` its
/// fan-in, `cols` its output axis), drawn normal and orthogonalised; its
/// columns are orthonormal if there are fewer of them than rows, else its
/// rows. Keras's QR with the signs of R's diagonal taken out is the
/// Gram–Schmidt process, which is what this runs.
fn orthogonal(values: &mut [f32], rows: usize, gain: f32, rng: &mut dyn RngCore) {
    let cols = values.len() / rows;
    if cols == 0 {
        return;
    }
    let (long, short) = (rows.max(cols), rows.min(cols));
    // `short` vectors of length `long`, each normalised against the ones
    // before it.
    let mut q: Vec<Vec<f64>> = Vec::with_capacity(short);
    while q.len() < short {
        let mut v: Vec<f64> = (0..long).map(|_| standard_normal(rng)).collect();
        for u in &q {
            let dot: f64 = v.iter().zip(u).map(|(a, b)| a * b).sum();
            v.iter_mut().zip(u).for_each(|(a, b)| *a -= dot * b);
        }
        let norm = v.iter().map(|a| a * a).sum::<f64>().sqrt();
        // A draw (almost never) in the span of the others is drawn again.
        if norm > 1e-6 {
            v.iter_mut().for_each(|a| *a /= norm);
            q.push(v);
        }
    }
    for r in 0..rows {
        for c in 0..cols {
            // Column c of a tall matrix, or row r of a wide one.
            let x = if rows >= cols { q[c][r] } else { q[r][c] };
            values[r * cols + c] = gain * x as f32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Mean and standard deviation.
    fn moments(v: &[f32]) -> (f64, f64) {
        let n = v.len() as f64;
        let mean = v.iter().map(|x| *x as f64).sum::<f64>() / n;
        let var = v.iter().map(|x| (*x as f64 - mean).powi(2)).sum::<f64>() / n;
        (mean, var.sqrt())
    }

    fn drawn(init: Initializer, len: usize, fans: (usize, usize)) -> Vec<f32> {
        let mut v = vec![0.0; len];
        init.fill(&mut v, fans, &mut seeded_rng(7));
        v
    }

    #[test]
    fn truncated_variance_scaling_keeps_kerass_standard_deviation() {
        // he_normal: a normal of stddev sqrt(2 / fan_in) / .87962566, cut
        // at two of those: the values' own stddev is sqrt(2 / fan_in).
        let fan_in = 3 * 3 * 16;
        for (init, variance) in [
            (Initializer::HeNormal, 2.0 / fan_in as f64),
            (Initializer::LecunNormal, 1.0 / fan_in as f64),
            (Initializer::GlorotNormal, 2.0 / (fan_in + 288) as f64),
        ] {
            let v = drawn(init, 200_000, (fan_in, 288));
            let (mean, std) = moments(&v);
            let sd = variance.sqrt();
            assert!(mean.abs() < 0.01 * sd, "{init:?}: mean {mean}");
            assert!((std / sd - 1.0).abs() < 0.01, "{init:?}: std {std} vs {sd}");
            let bound = 2.0 * sd / TRUNCATED_STD;
            assert!(
                v.iter().all(|x| (*x as f64).abs() <= bound + 1e-6),
                "{init:?}"
            );
            // Truncation is at the bound: some values come close to it.
            assert!(
                v.iter().any(|x| (*x as f64).abs() > 0.95 * bound),
                "{init:?}"
            );
        }
    }

    #[test]
    fn uniform_initializers_stay_in_kerass_limits() {
        let fan_in = 100;
        for (init, limit) in [
            (Initializer::HeUniform, (6.0f64 / 100.0).sqrt()),
            (Initializer::LecunUniform, (3.0f64 / 100.0).sqrt()),
            (Initializer::GlorotUniform, (6.0f64 / 150.0).sqrt()),
            (
                Initializer::RandomUniform {
                    minval: -0.05,
                    maxval: 0.05,
                },
                0.05,
            ),
        ] {
            let v = drawn(init, 100_000, (fan_in, 50));
            assert!(
                v.iter().all(|x| (*x as f64).abs() <= limit + 1e-7),
                "{init:?}"
            );
            let (mean, std) = moments(&v);
            // U(-l, l) has standard deviation l / sqrt(3).
            assert!(mean.abs() < 0.01 * limit, "{init:?}: mean {mean}");
            assert!((std / (limit / 3f64.sqrt()) - 1.0).abs() < 0.01, "{init:?}");
        }
    }

    #[test]
    fn fixed_and_plain_normal_initializers() {
        assert!(drawn(Initializer::Zeros, 10, (1, 1))
            .iter()
            .all(|v| *v == 0.0));
        assert!(drawn(Initializer::Ones, 10, (1, 1))
            .iter()
            .all(|v| *v == 1.0));
        let normal = Initializer::from_name("random_normal").unwrap();
        let (mean, std) = moments(&drawn(normal, 100_000, (1, 1)));
        assert!(
            mean.abs() < 0.001 && (std / 0.05 - 1.0).abs() < 0.01,
            "{mean} {std}"
        );
        let truncated = Initializer::from_name("TruncatedNormal").unwrap();
        let v = drawn(truncated, 100_000, (1, 1));
        assert!(v.iter().all(|x| x.abs() <= 0.1 + 1e-7));
        // A standard normal cut at ±2 has variance 0.7737 (0.87962566²).
        let (_, std) = moments(&v);
        assert!((std / (0.05 * TRUNCATED_STD) - 1.0).abs() < 0.01, "{std}");
    }

    #[test]
    fn orthogonal_columns_or_rows_are_orthonormal() {
        for (rows, cols) in [(12, 5), (5, 12), (6, 6)] {
            let v = drawn(
                Initializer::Orthogonal { gain: 2.0 },
                rows * cols,
                (rows, 1),
            );
            // Element k of the i-th of the shorter side's vectors.
            let element = |i: usize, k: usize| {
                let (r, c) = if rows >= cols { (k, i) } else { (i, k) };
                v[r * cols + c] as f64 / 2.0
            };
            let (n, len) = (rows.min(cols), rows.max(cols));
            for i in 0..n {
                for j in 0..n {
                    let dot: f64 = (0..len).map(|k| element(i, k) * element(j, k)).sum();
                    let want = if i == j { 1.0 } else { 0.0 };
                    assert!(
                        (dot - want).abs() < 1e-5,
                        "{rows}x{cols}: <{i},{j}> = {dot}"
                    );
                }
            }
        }
    }

    #[test]
    fn names_are_kerass() {
        for name in Initializer::NAMES {
            assert!(Initializer::from_name(name).is_some(), "{name}");
        }
        assert_eq!(
            Initializer::from_name("HeNormal"),
            Some(Initializer::HeNormal)
        );
        assert_eq!(Initializer::from_name("he_nromal"), None);
    }

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
