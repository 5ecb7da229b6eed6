//! The activations Keras 3 has beyond relu, sigmoid, tanh, softmax and
//! linear, with its formulas and defaults (its JAX backend's, where the
//! derivative at a kink is a choice): relu6, elu, selu, gelu (exact), silu
//! (= swish), hard_sigmoid, hard_silu (= hard_swish), softplus, softsign,
//! mish, leaky_relu (the function: slope 0.2) and log_softmax.
//!
//! Each element-wise one is a scalar function and its derivative, as a
//! function of the input or of the output ([`Keeps`]), whichever gives the
//! derivative exactly: the output where it determines it, the input where
//! it does not (gelu, silu, mish, hard_silu are not monotonic).

use core::f32::consts::FRAC_1_SQRT_2;

use super::{over_channels, sigmoid, unary, ActivationFn, Keeps};
use crate::onnx::{Attr, ExportError, OnnxGraph};

/// Implements [`ActivationFn`] for the element-wise function `$f`, whose
/// derivative `$d` is a function of what it keeps (`$keeps`).
macro_rules! elementwise {
    ($ty:ident, $name:literal, $keeps:ident, $f:ident, $d:ident, $onnx:expr $(, clamp = $clamp:expr)?) => {
        impl ActivationFn for $ty {
            const NAME: &'static str = $name;
            $(const CLAMP: Option<(f32, f32)> = Some($clamp);)?
            const KEEPS: Keeps = Keeps::$keeps;
            fn export_onnx(g: &mut OnnxGraph, x: &str) -> Result<String, ExportError> {
                $onnx(g, x)
            }
            fn apply(values: &mut [f32], _: usize) {
                values.iter_mut().for_each(|v| *v = $f(*v));
            }
            fn map(input: &[f32], output: &mut [f32], _: usize) {
                for (o, i) in output.iter_mut().zip(input) {
                    *o = $f(*i);
                }
            }
            fn backward(kept: &[f32], grad: &mut [f32], _: usize) {
                for (g, k) in grad.iter_mut().zip(kept) {
                    *g *= $d(*k);
                }
            }
        }
    };
}

/// `min(max(x, 0), 6)`: MobileNet's activation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Relu6;
/// `x` for `x > 0`, else `e^x - 1` (alpha 1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Elu;
/// `scale · elu_alpha(x)` with Keras's alpha 1.67326324, scale 1.05070098.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Selu;
/// Exact GELU: `x · Φ(x) = x (1 + erf(x / √2)) / 2` (Keras's `gelu`, whose
/// `approximate` is false by default).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Gelu;
/// `x · sigmoid(x)`: Keras's `silu`, also called `swish`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Silu;
/// `relu6(x + 3) / 6`, as Keras 3 defines it (Keras 2's was `0.2x + 0.5`,
/// clipped).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HardSigmoid;
/// `x · relu6(x + 3) / 6`: Keras's `hard_silu`, also called `hard_swish`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HardSilu;
/// `ln(1 + e^x)`, computed without overflow for any `x`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Softplus;
/// `x / (1 + |x|)`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Softsign;
/// `x · tanh(softplus(x))`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Mish;
/// Keras's `leaky_relu` FUNCTION (`activation = leaky_relu`): `x` for
/// `x >= 0`, else `0.2 x`. The `LeakyReLU` layer, whose slope is a runtime
/// argument (default 0.3), is [`crate::layers::LeakyReLU`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LeakyRelu;
/// `x_i - ln Σ_j e^x_j` over the last axis.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LogSoftmax;

elementwise!(
    Relu6,
    "relu6",
    Output,
    relu6,
    d_relu6,
    onnx_relu6,
    clamp = (0.0, 6.0)
);
elementwise!(Elu, "elu", Output, elu, d_elu, onnx_elu);
elementwise!(Selu, "selu", Output, selu, d_selu, onnx_selu);
elementwise!(Gelu, "gelu", Input, gelu, d_gelu, onnx_gelu);
elementwise!(Silu, "silu", Input, silu, d_silu, onnx_silu);
elementwise!(
    HardSigmoid,
    "hard_sigmoid",
    Output,
    hard_sigmoid,
    d_hard_sigmoid,
    onnx_hard_sigmoid
);
elementwise!(
    HardSilu,
    "hard_silu",
    Input,
    hard_silu,
    d_hard_silu,
    |g, x| unary(g, "HardSwish", x)
);
elementwise!(
    Softplus,
    "softplus",
    Output,
    softplus,
    d_softplus,
    |g, x| unary(g, "Softplus", x)
);
elementwise!(Softsign, "softsign", Input, softsign, d_softsign, |g, x| {
    unary(g, "Softsign", x)
});
elementwise!(Mish, "mish", Input, mish, d_mish, onnx_mish);
elementwise!(
    LeakyRelu,
    "leaky_relu",
    Input,
    leaky_relu,
    d_leaky_relu,
    |g, x| onnx_leaky(g, x, LEAKY_RELU_SLOPE)
);

/// Keras's selu constants (those of Klambauer et al., as f32).
const SELU_ALPHA: f32 = 1.673_263_24_f64 as f32;
const SELU_SCALE: f32 = 1.050_700_98_f64 as f32;
/// The slope of Keras's `leaky_relu` function (its layer's default is 0.3).
pub(crate) const LEAKY_RELU_SLOPE: f32 = 0.2;
/// `1 / √(2π)`, the standard normal density's factor.
const FRAC_1_SQRT_2PI: f32 = 0.398_942_280_401_432_7_f64 as f32;

fn relu6(x: f32) -> f32 {
    // clamp, not max then min: a NaN stays a NaN.
    x.clamp(0.0, 6.0)
}

/// 1 strictly between the kinks, 0 at and beyond them (JAX's choice).
fn d_relu6(y: f32) -> f32 {
    if y > 0.0 && y < 6.0 {
        1.0
    } else {
        0.0
    }
}

fn elu(x: f32) -> f32 {
    // expm1 keeps the digits of small negative inputs.
    if x > 0.0 {
        x
    } else {
        x.exp_m1()
    }
}

/// From the output: `e^x = y + 1` on the negative side, so 1 at 0 too.
fn d_elu(y: f32) -> f32 {
    if y > 0.0 {
        1.0
    } else {
        y + 1.0
    }
}

fn selu(x: f32) -> f32 {
    SELU_SCALE * if x > 0.0 { x } else { SELU_ALPHA * x.exp_m1() }
}

/// From the output: `scale · alpha · e^x = y + scale · alpha` for `x <= 0`.
fn d_selu(y: f32) -> f32 {
    if y > 0.0 {
        SELU_SCALE
    } else {
        y + SELU_SCALE * SELU_ALPHA
    }
}

fn gelu(x: f32) -> f32 {
    // erfc(-x/√2) rather than 1 + erf(x/√2), as JAX computes it: the sum
    // would cancel to 0 for x below about -5.5, erfc keeps the tail.
    0.5 * x * libm::erfcf(-x * FRAC_1_SQRT_2)
}

/// `Φ(x) + x φ(x)`.
fn d_gelu(x: f32) -> f32 {
    0.5 * libm::erfcf(-x * FRAC_1_SQRT_2) + x * FRAC_1_SQRT_2PI * (-0.5 * x * x).exp()
}

fn silu(x: f32) -> f32 {
    x * sigmoid(x)
}

/// `s (1 + x (1 - s))` with `s = sigmoid(x)`: finite for any finite `x`
/// (at -1e30, `s` is 0 and so is the product).
fn d_silu(x: f32) -> f32 {
    let s = sigmoid(x);
    s * (1.0 + x * (1.0 - s))
}

fn hard_sigmoid(x: f32) -> f32 {
    relu6(x + 3.0) / 6.0
}

/// From the output: 1/6 strictly between the kinks (y in (0, 1)), else 0.
fn d_hard_sigmoid(y: f32) -> f32 {
    if y > 0.0 && y < 1.0 {
        1.0 / 6.0
    } else {
        0.0
    }
}

fn hard_silu(x: f32) -> f32 {
    x * hard_sigmoid(x)
}

/// `hard_sigmoid(x) + x · hard_sigmoid'(x)`, the product rule as JAX
/// differentiates it (the kinks at ±3 take relu6's 0).
fn d_hard_silu(x: f32) -> f32 {
    hard_sigmoid(x) + x * d_relu6(x + 3.0) / 6.0
}

fn softplus(x: f32) -> f32 {
    // max(x, 0) + ln(1 + e^-|x|): e^-|x| <= 1 never overflows, and for large
    // |x| the log term vanishes instead of turning inf - inf into NaN.
    let log_term = (-x.abs()).exp().ln_1p();
    if x > 0.0 {
        x + log_term
    } else {
        log_term
    }
}

/// From the output: `sigmoid(x) = 1 - e^-y`, through expm1 so that a tiny
/// `y` (very negative `x`) keeps its digits.
fn d_softplus(y: f32) -> f32 {
    -(-y).exp_m1()
}

fn softsign(x: f32) -> f32 {
    x / (1.0 + x.abs())
}

/// `1 / (1 + |x|)²`, from the input: `1 - |y|` would cancel for large |x|.
fn d_softsign(x: f32) -> f32 {
    let r = 1.0 / (1.0 + x.abs());
    r * r
}

fn mish(x: f32) -> f32 {
    x * softplus(x).tanh()
}

/// `tanh(sp) + x · sech²(sp) · sigmoid(x)` with `sp = softplus(x)`.
fn d_mish(x: f32) -> f32 {
    let t = softplus(x).tanh();
    t + x * (1.0 - t * t) * sigmoid(x)
}

/// Leaky ReLU with slope `slope`: `x` for `x >= 0` (JAX's side for 0).
pub(crate) fn leaky(x: f32, slope: f32) -> f32 {
    if x >= 0.0 {
        x
    } else {
        slope * x
    }
}

/// Its derivative, from the input: 1 at 0, as JAX's `where(x >= 0, ...)`.
pub(crate) fn d_leaky(x: f32, slope: f32) -> f32 {
    if x >= 0.0 {
        1.0
    } else {
        slope
    }
}

fn leaky_relu(x: f32) -> f32 {
    leaky(x, LEAKY_RELU_SLOPE)
}

fn d_leaky_relu(x: f32) -> f32 {
    d_leaky(x, LEAKY_RELU_SLOPE)
}

// ONNX forms of the functions above. Gelu (opset 20) and Mish (opset 18)
// are newer than the export's opset, so they are written as formulas.

fn onnx_relu6(g: &mut OnnxGraph, x: &str) -> Result<String, ExportError> {
    let (lo, hi) = (g.scalar(0.0)?, g.scalar(6.0)?);
    Ok(g.node("Clip", &[x, &lo, &hi], &[]))
}

fn onnx_elu(g: &mut OnnxGraph, x: &str) -> Result<String, ExportError> {
    Ok(g.node("Elu", &[x], &[("alpha", Attr::Float(1.0))]))
}

fn onnx_selu(g: &mut OnnxGraph, x: &str) -> Result<String, ExportError> {
    let attrs = [
        ("alpha", Attr::Float(SELU_ALPHA)),
        ("gamma", Attr::Float(SELU_SCALE)),
    ];
    Ok(g.node("Selu", &[x], &attrs))
}

/// `0.5 · x · (1 + erf(x / √2))`.
fn onnx_gelu(g: &mut OnnxGraph, x: &str) -> Result<String, ExportError> {
    let (r, one, half) = (g.scalar(FRAC_1_SQRT_2)?, g.scalar(1.0)?, g.scalar(0.5)?);
    let scaled = g.node("Mul", &[x, &r], &[]);
    let erf = g.node("Erf", &[&scaled], &[]);
    let shifted = g.node("Add", &[&erf, &one], &[]);
    let times_x = g.node("Mul", &[x, &shifted], &[]);
    Ok(g.node("Mul", &[&times_x, &half], &[]))
}

fn onnx_silu(g: &mut OnnxGraph, x: &str) -> Result<String, ExportError> {
    let s = g.node("Sigmoid", &[x], &[]);
    Ok(g.node("Mul", &[x, &s], &[]))
}

/// Keras's `relu6(x + 3) / 6` is ONNX's `max(0, min(1, x / 6 + 1 / 2))`.
fn onnx_hard_sigmoid(g: &mut OnnxGraph, x: &str) -> Result<String, ExportError> {
    let attrs = [
        ("alpha", Attr::Float(1.0 / 6.0)),
        ("beta", Attr::Float(0.5)),
    ];
    Ok(g.node("HardSigmoid", &[x], &attrs))
}

/// `x · tanh(softplus(x))`.
fn onnx_mish(g: &mut OnnxGraph, x: &str) -> Result<String, ExportError> {
    let sp = g.node("Softplus", &[x], &[]);
    let t = g.node("Tanh", &[&sp], &[]);
    Ok(g.node("Mul", &[x, &t], &[]))
}

/// `LeakyRelu` with `slope` for negative inputs.
pub(crate) fn onnx_leaky(g: &mut OnnxGraph, x: &str, slope: f32) -> Result<String, ExportError> {
    Ok(g.node("LeakyRelu", &[x], &[("alpha", Attr::Float(slope))]))
}

impl ActivationFn for LogSoftmax {
    const NAME: &'static str = "log_softmax";
    fn export_onnx(g: &mut OnnxGraph, x: &str) -> Result<String, ExportError> {
        over_channels(g, "LogSoftmax", x)
    }
    fn apply(values: &mut [f32], last: usize) {
        for row in values.chunks_exact_mut(last.max(1)) {
            // Shifted by the maximum: every exp() is at most 1, and the
            // largest is exactly 1, so the log of the sum is finite.
            let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let sum: f32 = row.iter().map(|v| (v - max).exp()).sum();
            // (x - max) - ln(sum), as JAX computes it: max + ln(sum) first
            // would round away ln(sum) next to a huge max.
            let log_sum = sum.ln();
            row.iter_mut().for_each(|v| *v = (*v - max) - log_sum);
        }
    }
    fn backward(output: &[f32], grad: &mut [f32], last: usize) {
        // dx_i = g_i - softmax_i Σ_j g_j, and softmax_i = e^y_i.
        let last = last.max(1);
        for (g, y) in grad.chunks_exact_mut(last).zip(output.chunks_exact(last)) {
            let total: f32 = g.iter().sum();
            for (g, y) in g.iter_mut().zip(y) {
                *g -= y.exp() * total;
            }
        }
    }
    const ELEMENTWISE: bool = false;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `A` on one value.
    fn f<A: ActivationFn>(x: f32) -> f32 {
        let mut v = [x];
        A::apply(&mut v, 1);
        v[0]
    }

    /// `A`'s derivative at `x`, through its backward pass given what it keeps.
    fn d<A: ActivationFn>(x: f32) -> f32 {
        let kept = match A::KEEPS {
            Keeps::Input => x,
            _ => f::<A>(x),
        };
        let mut g = [1.0];
        A::backward(&[kept], &mut g, 1);
        g[0]
    }

    fn close(a: f32, b: f64, tol: f64) -> bool {
        (a as f64 - b).abs() <= tol * (1.0 + b.abs())
    }

    #[test]
    fn relu6_values() {
        assert_eq!(
            [-1.0, 0.0, 3.5, 6.0, 7.0, 1e30].map(f::<Relu6>),
            [0.0, 0.0, 3.5, 6.0, 6.0, 6.0]
        );
        assert!(f::<Relu6>(f32::NAN).is_nan());
        // The kinks take 0, as JAX's custom derivative does.
        assert_eq!(
            [-1.0, 0.0, 3.0, 6.0, 7.0].map(d::<Relu6>),
            [0.0, 0.0, 1.0, 0.0, 0.0]
        );
    }

    #[test]
    fn elu_and_selu_values() {
        assert_eq!(f::<Elu>(2.0), 2.0);
        assert!(close(f::<Elu>(-1.0), (-1.0f64).exp_m1(), 1e-7));
        assert_eq!(f::<Elu>(-100.0), -1.0);
        // expm1: a small negative input keeps its digits.
        assert!(close(f::<Elu>(-1e-7), -1e-7, 1e-7));
        assert_eq!(d::<Elu>(0.0), 1.0);
        assert!(close(f::<Selu>(1.0), 1.05070098, 1e-7));
        assert!(close(f::<Selu>(-100.0), -1.05070098 * 1.67326324, 1e-7));
        assert!(close(d::<Selu>(0.0), 1.05070098 * 1.67326324, 1e-7));
        assert!(close(d::<Selu>(1.0), 1.05070098, 1e-7));
    }

    #[test]
    fn gelu_values() {
        // Φ(1) = 0.8413447460685429.
        assert!(close(f::<Gelu>(1.0), 0.8413447460685429, 1e-7));
        assert!(close(f::<Gelu>(-1.0), -0.15865525393145707, 1e-6));
        assert_eq!(f::<Gelu>(0.0), 0.0);
        assert_eq!(f::<Gelu>(10.0), 10.0);
        // The tail survives where 1 + erf would cancel to 0: -10 Φ(-10).
        assert!(close(f::<Gelu>(-10.0), -7.619853024160527e-23, 1e-5));
        assert_eq!(f::<Gelu>(1e30), 1e30);
        assert_eq!(f::<Gelu>(-1e30), 0.0);
        assert_eq!([-1e30, 1e30].map(d::<Gelu>), [0.0, 1.0]);
    }

    #[test]
    fn silu_values() {
        assert!(close(f::<Silu>(1.0), 1.0 / (1.0 + (-1.0f64).exp()), 1e-7));
        assert_eq!(f::<Silu>(100.0), 100.0);
        assert!(f::<Silu>(-100.0) <= 0.0 && f::<Silu>(-100.0) > -1e-40);
        assert_eq!(f::<Silu>(-1e30), 0.0);
        assert_eq!(d::<Silu>(0.0), 0.5);
        assert_eq!([-1e30, 1e30].map(d::<Silu>), [0.0, 1.0]);
    }

    #[test]
    fn hard_sigmoid_and_hard_silu_values() {
        let x = [-4.0, -3.0, 0.0, 1.5, 3.0, 1e30];
        assert_eq!(x.map(f::<HardSigmoid>), [0.0, 0.0, 0.5, 0.75, 1.0, 1.0]);
        assert_eq!(x.map(f::<HardSilu>), [-0.0, -0.0, 0.0, 1.125, 3.0, 1e30]);
        assert_eq!(
            x.map(d::<HardSigmoid>),
            [0.0, 0.0, 1.0 / 6.0, 1.0 / 6.0, 0.0, 0.0]
        );
        // hard_sigmoid(x) + x/6 inside, 0 and 1 outside, the kinks as relu6's.
        assert_eq!(d::<HardSilu>(1.5), 0.75 + 0.25);
        assert_eq!(
            [-4.0, -3.0, 3.0, 4.0].map(d::<HardSilu>),
            [0.0, 0.0, 1.0, 1.0]
        );
    }

    #[test]
    fn softplus_values() {
        assert!(close(f::<Softplus>(0.0), 2.0f64.ln(), 1e-7));
        assert!(close(f::<Softplus>(1.0), 1.0f64.exp().ln_1p(), 1e-7));
        // No overflow to inf, no inf - inf; the negative tail is kept.
        assert_eq!(f::<Softplus>(100.0), 100.0);
        assert_eq!(f::<Softplus>(1e30), 1e30);
        assert!(close(f::<Softplus>(-20.0), (-20.0f64).exp(), 1e-6));
        assert_eq!(f::<Softplus>(-1e30), 0.0);
        assert!(close(d::<Softplus>(-20.0), (-20.0f64).exp(), 1e-5));
        assert_eq!([0.0, 100.0].map(d::<Softplus>), [0.5, 1.0]);
    }

    #[test]
    fn softsign_values() {
        assert_eq!([-3.0, 0.0, 1.0].map(f::<Softsign>), [-0.75, 0.0, 0.5]);
        assert_eq!([1e30, -1e30].map(f::<Softsign>), [1.0, -1.0]);
        assert_eq!([0.0, 1.0, -3.0].map(d::<Softsign>), [1.0, 0.25, 1.0 / 16.0]);
        assert!(d::<Softsign>(1e30) >= 0.0 && d::<Softsign>(1e30) < 1e-40);
    }

    #[test]
    fn mish_values() {
        let sp1 = 1.0f64.exp().ln_1p();
        assert!(close(f::<Mish>(1.0), sp1.tanh(), 1e-7));
        assert_eq!(f::<Mish>(0.0), 0.0);
        assert_eq!(f::<Mish>(100.0), 100.0);
        assert_eq!(f::<Mish>(1e30), 1e30);
        assert!(close(f::<Mish>(-20.0), -20.0 * (-20.0f64).exp(), 1e-5));
        assert_eq!(f::<Mish>(-1e30), 0.0);
        assert_eq!([-1e30, 1e30].map(d::<Mish>), [0.0, 1.0]);
        assert!(close(d::<Mish>(0.0), 2.0f64.ln().tanh(), 1e-7));
    }

    #[test]
    fn leaky_relu_values() {
        assert_eq!([-5.0, 0.0, 2.0].map(f::<LeakyRelu>), [-1.0, 0.0, 2.0]);
        // JAX's where(x >= 0): the slope at 0 is 1.
        assert_eq!([-5.0, 0.0, 2.0].map(d::<LeakyRelu>), [0.2, 1.0, 1.0]);
        assert_eq!(f::<LeakyRelu>(-1e30), -2e29);
    }

    #[test]
    fn log_softmax_values() {
        let mut v = [1.0f32, 2.0, 3.0, 1000.0, 0.0, -1000.0];
        LogSoftmax::apply(&mut v, 3);
        let lse = 3.0 + (1.0 + (-1.0f64).exp() + (-2.0f64).exp()).ln();
        for (i, x) in [1.0, 2.0, 3.0].iter().enumerate() {
            assert!(close(v[i], x - lse, 1e-7));
        }
        // No overflow, no 0 inside a log: exact for widely spread inputs.
        assert_eq!(&v[3..], &[0.0, -1000.0, -2000.0]);
        let mut v = [f32::MAX, f32::MAX];
        LogSoftmax::apply(&mut v, 2);
        assert!(v.iter().all(|y| close(*y, -2.0f64.ln(), 1e-7)));
    }

    /// The f64 twin of each element-wise function, from its definition,
    /// and the kinks to keep finite differences away from.
    fn reference(name: &str) -> (fn(f64) -> f64, &'static [f64]) {
        let softplus = |x: f64| x.exp().ln_1p();
        let hard_sigmoid = |x: f64| (x + 3.0).clamp(0.0, 6.0) / 6.0;
        match name {
            "relu6" => (|x| x.clamp(0.0, 6.0), &[0.0, 6.0]),
            "elu" => (|x| if x > 0.0 { x } else { x.exp() - 1.0 }, &[0.0]),
            "selu" => (
                |x| {
                    1.05070098
                        * if x > 0.0 {
                            x
                        } else {
                            1.67326324 * (x.exp() - 1.0)
                        }
                },
                &[0.0],
            ),
            "gelu" => (|x| x * (1.0 + libm::erf(x / 2f64.sqrt())) / 2.0, &[]),
            "silu" => (|x| x / (1.0 + (-x).exp()), &[]),
            "hard_sigmoid" => (hard_sigmoid, &[-3.0, 3.0]),
            "hard_silu" => (|x| x * (x + 3.0).clamp(0.0, 6.0) / 6.0, &[-3.0, 3.0]),
            "softplus" => (softplus, &[]),
            "softsign" => (|x| x / (1.0 + x.abs()), &[0.0]),
            "mish" => (|x| x * x.exp().ln_1p().tanh(), &[]),
            "leaky_relu" => (|x| if x >= 0.0 { x } else { 0.2 * x }, &[0.0]),
            other => panic!("no reference for {other}"),
        }
    }

    /// Over a grid on [-8, 8] away from the kinks: the forward pass against
    /// the f64 definition, the backward pass against its central difference.
    /// Returns the worst derivative error.
    fn check_against_f64<A: ActivationFn>() -> f64 {
        let (reference, kinks) = reference(A::NAME);
        let h = 1e-5;
        let mut worst = 0.0f64;
        for k in 0..=1600 {
            let x = -8.0 + k as f32 * 0.01 + 0.003;
            let x64 = x as f64;
            if kinks.iter().any(|c| (x64 - c).abs() < 0.01) {
                continue;
            }
            let y = reference(x64);
            assert!(
                close(f::<A>(x), y, 1e-6),
                "{}({x}) = {} vs {y}",
                A::NAME,
                f::<A>(x)
            );
            let fd = (reference(x64 + h) - reference(x64 - h)) / (2.0 * h);
            let err = (d::<A>(x) as f64 - fd).abs() / (1.0 + fd.abs());
            assert!(err <= 2e-6, "{}'({x}) = {} vs {fd}", A::NAME, d::<A>(x));
            worst = worst.max(err);
        }
        worst
    }

    #[test]
    fn derivatives_match_f64_central_differences() {
        let worst = [
            check_against_f64::<Relu6>(),
            check_against_f64::<Elu>(),
            check_against_f64::<Selu>(),
            check_against_f64::<Gelu>(),
            check_against_f64::<Silu>(),
            check_against_f64::<HardSigmoid>(),
            check_against_f64::<HardSilu>(),
            check_against_f64::<Softplus>(),
            check_against_f64::<Softsign>(),
            check_against_f64::<Mish>(),
            check_against_f64::<LeakyRelu>(),
        ];
        let worst: Vec<String> = worst.iter().map(|e| format!("{e:.1e}")).collect();
        println!("worst relative derivative errors: {}", worst.join(", "));
    }

    /// log_softmax's Jacobian-vector product against central differences
    /// of `Σ r_i log_softmax(x)_i` in f64, row by row.
    #[test]
    fn log_softmax_backward_matches_f64_central_differences() {
        let last = 5;
        let x: Vec<f32> = (0..3 * last)
            .map(|i| ((i * 7 % 11) as f32 - 5.0) * 0.7)
            .collect();
        let r: Vec<f32> = (0..3 * last)
            .map(|i| ((i * 5 % 7) as f32 - 3.0) * 0.3)
            .collect();
        let log_softmax = |x: &[f64]| -> Vec<f64> {
            x.chunks(last)
                .flat_map(|row| {
                    let lse = row.iter().map(|v| v.exp()).sum::<f64>().ln();
                    row.iter().map(move |v| v - lse)
                })
                .collect()
        };
        let objective = |x: &[f64]| -> f64 {
            log_softmax(x)
                .iter()
                .zip(&r)
                .map(|(y, r)| y * *r as f64)
                .sum()
        };
        let mut y = x.clone();
        LogSoftmax::apply(&mut y, last);
        let mut g = r.clone();
        LogSoftmax::backward(&y, &mut g, last);
        let x64: Vec<f64> = x.iter().map(|v| *v as f64).collect();
        for (i, (yi, ri)) in y.iter().zip(log_softmax(&x64)).enumerate() {
            assert!(close(*yi, ri, 1e-6), "y[{i}] {yi} vs {ri}");
        }
        let h = 1e-6;
        for i in 0..x.len() {
            let (mut up, mut down) = (x64.clone(), x64.clone());
            up[i] += h;
            down[i] -= h;
            let fd = (objective(&up) - objective(&down)) / (2.0 * h);
            assert!(close(g[i], fd, 1e-5), "dx[{i}] {} vs {fd}", g[i]);
        }
    }
}
