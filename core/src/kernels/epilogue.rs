//! What a kernel applies to its output while the output is still in cache.
//!
//! A convolution followed by BatchNormalization (at inference) and an
//! element-wise activation would otherwise write its output, then read and
//! write it twice more, once per layer: on a network like MobileNetV2 those
//! passes over memory cost as much as a depthwise convolution. A kernel
//! that takes an [`Epilogue`] runs it on each piece of output right after
//! computing the piece (a tile, a row block), so the later layers' work is
//! done on data still in L1 or L2.
//!
//! An epilogue works on whole pixels (`channels` values each, NHWC) and
//! treats every pixel alike, so the result does not depend on how a kernel
//! cuts its output into pieces: fused and unfused runs agree bitwise.

use super::isa::{dispatch, Isa, Kernel, Simd};

/// One step of an [`Epilogue`].
#[derive(Clone, Copy, Debug)]
pub enum Step<'a> {
    /// `y = y · scale[c] + shift[c]` for channel `c` (BatchNormalization at
    /// inference, folded), a multiply then an add, rounded twice: as the
    /// layer computes it unfused, so fusing changes no bit.
    Affine {
        /// Per-channel factors.
        scale: &'a [f32],
        /// Per-channel offsets.
        shift: &'a [f32],
    },
    /// `y = y.clamp(lo, hi)` (relu, relu6), a NaN staying a NaN: the
    /// common activations, as a step the kernels compile for the vector
    /// unit.
    Clamp {
        /// The least value.
        lo: f32,
        /// The greatest value.
        hi: f32,
    },
    /// An element-wise function applied in place (an activation whose
    /// result for each value depends on that value alone); the second
    /// argument is the channel count, which element-wise functions ignore.
    Map(fn(&mut [f32], usize)),
}

/// The most steps an [`Epilogue`] built by [`Steps`] holds: a layer's own
/// activation and the three layers a fused run may add.
pub const MAX_STEPS: usize = 4;

/// Up to [`MAX_STEPS`] steps, held without allocating (an inference pass
/// builds them on every call).
#[derive(Clone, Copy, Debug)]
pub struct Steps<'a> {
    items: [Step<'a>; MAX_STEPS],
    len: usize,
}

impl<'a> Steps<'a> {
    /// No steps.
    pub fn new() -> Self {
        // A filler never applied: only the first `len` items are steps.
        let unused = Step::Clamp {
            lo: f32::NEG_INFINITY,
            hi: f32::INFINITY,
        };
        Steps {
            items: [unused; MAX_STEPS],
            len: 0,
        }
    }

    /// Appends `step`; `false` (nothing appended) when full.
    pub fn push(&mut self, step: Step<'a>) -> bool {
        if self.len == MAX_STEPS {
            return false;
        }
        self.items[self.len] = step;
        self.len += 1;
        true
    }

    /// The steps, in order.
    pub fn as_slice(&self) -> &[Step<'a>] {
        &self.items[..self.len]
    }
}

impl Default for Steps<'_> {
    fn default() -> Self {
        Steps::new()
    }
}

/// Steps applied in order to a kernel's output (see the module doc). The
/// default has no steps.
#[derive(Clone, Copy, Debug, Default)]
pub struct Epilogue<'a> {
    steps: &'a [Step<'a>],
}

impl<'a> Epilogue<'a> {
    /// No steps: the output as the kernel computed it.
    pub const NONE: Epilogue<'static> = Epilogue { steps: &[] };

    /// The epilogue running `steps` in order.
    pub fn new(steps: &'a [Step<'a>]) -> Self {
        Epilogue { steps }
    }

    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// The steps, in order.
    pub fn steps(&self) -> &'a [Step<'a>] {
        self.steps
    }

    /// Runs the steps on `pixels`, whole pixels of `channels` values.
    ///
    /// # Panics
    /// When `pixels` is not a whole number of pixels, or an affine step has
    /// fewer than `channels` values (caller bugs).
    pub fn apply(&self, pixels: &mut [f32], channels: usize) {
        if self.steps.is_empty() || pixels.is_empty() {
            return;
        }
        assert!(
            channels > 0 && pixels.len().is_multiple_of(channels),
            "epilogue: {} values are not whole pixels of {channels}",
            pixels.len()
        );
        for step in self.steps {
            if let Step::Affine { scale, shift } = step {
                assert!(
                    scale.len() >= channels && shift.len() >= channels,
                    "epilogue: fewer factors than {channels} channels"
                );
            }
        }
        dispatch(
            Isa::detect(),
            Apply {
                steps: self.steps,
                pixels,
                channels,
            },
        );
    }
}

/// The leading steps of an epilogue that a kernel applies to its
/// accumulators before it stores them: an affine step, then a clamp, each
/// optional (BatchNormalization then relu or relu6, the common run).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct InRegisters<'a> {
    /// Per-channel `(scale, shift)`.
    pub affine: Option<(&'a [f32], &'a [f32])>,
    /// `(lo, hi)`.
    pub clamp: Option<(f32, f32)>,
}

impl InRegisters<'_> {
    /// The same steps on stored values (whole pixels of `channels`).
    pub fn apply(&self, pixels: &mut [f32], channels: usize) {
        let mut steps = Steps::new();
        if let Some((scale, shift)) = self.affine {
            steps.push(Step::Affine { scale, shift });
        }
        if let Some((lo, hi)) = self.clamp {
            steps.push(Step::Clamp { lo, hi });
        }
        Epilogue::new(steps.as_slice()).apply(pixels, channels);
    }

    /// Whether the affine factors cover channels `..channels`.
    pub fn covers(&self, channels: usize) -> bool {
        self.affine
            .is_none_or(|(scale, shift)| scale.len() >= channels && shift.len() >= channels)
    }
}

impl<'a> Epilogue<'a> {
    /// The leading steps a kernel can apply to its accumulators, and the
    /// epilogue of the steps after them, which it applies to memory.
    pub(crate) fn split_registers(&self) -> (InRegisters<'a>, Epilogue<'a>) {
        let steps = self.steps;
        let mut regs = InRegisters::default();
        let mut k = 0;
        if let Some(Step::Affine { scale, shift }) = steps.get(k) {
            regs.affine = Some((scale, shift));
            k += 1;
        }
        if let Some(&Step::Clamp { lo, hi }) = steps.get(k) {
            regs.clamp = Some((lo, hi));
            k += 1;
        }
        (regs, Epilogue::new(&steps[k..]))
    }
}

/// [`InRegisters`] loaded for the `R` registers of channels `j0 + i ·
/// LANES ..` of a register block: [`Loaded::apply`] then works on one
/// register at a time, so that the block's accumulators stay in registers.
pub(crate) struct Loaded<S: Simd, const R: usize> {
    /// Scale and shift registers.
    affine: Option<[[S::V; R]; 2]>,
    clamp: Option<(S::V, S::V)>,
}

impl<S: Simd, const R: usize> Loaded<S, R> {
    /// `regs`' factors for channels `j0 ..`.
    ///
    /// # Safety
    /// `regs.covers(j0 + R · S::LANES)` must hold.
    #[inline(always)]
    pub unsafe fn new(s: S, regs: InRegisters<'_>, j0: usize) -> Self {
        let load = |v: &[f32]| -> [S::V; R] {
            // SAFETY: the caller guarantees `v` holds channels `j0 .. j0 +
            // R · LANES`.
            std::array::from_fn(|i| unsafe { s.load(v.as_ptr().add(j0 + i * S::LANES)) })
        };
        Loaded {
            affine: regs.affine.map(|(scale, shift)| [load(scale), load(shift)]),
            clamp: regs.clamp.map(|(lo, hi)| (s.splat(lo), s.splat(hi))),
        }
    }

    /// The steps on `v`, register `i` of its pixel: the same operations,
    /// rounded the same way, as [`Epilogue::apply`] on the stored values.
    #[inline(always)]
    pub fn apply(&self, s: S, v: S::V, i: usize) -> S::V {
        let mut v = v;
        if let Some([scale, shift]) = &self.affine {
            v = s.add(s.mul(v, scale[i]), shift[i]);
        }
        if let Some((lo, hi)) = self.clamp {
            v = s.clamp(v, lo, hi);
        }
        v
    }
}

/// [`Epilogue::apply`] compiled for the vector unit (the loops are plain
/// code the compiler vectorises inside `dispatch`'s entry point).
struct Apply<'a, 'b> {
    steps: &'a [Step<'a>],
    pixels: &'b mut [f32],
    channels: usize,
}

impl Kernel for Apply<'_, '_> {
    type Output = ();

    #[inline(always)]
    fn run<S: Simd>(self, _: S) {
        let Apply {
            steps,
            pixels,
            channels,
        } = self;
        for step in steps {
            match *step {
                Step::Affine { scale, shift } => {
                    affine(pixels, &scale[..channels], &shift[..channels])
                }
                Step::Clamp { lo, hi } => clamp(pixels, lo, hi),
                Step::Map(f) => f(pixels, channels),
            }
        }
    }
}

#[inline(always)]
fn affine(pixels: &mut [f32], scale: &[f32], shift: &[f32]) {
    for pixel in pixels.chunks_exact_mut(scale.len()) {
        for ((y, &a), &b) in pixel.iter_mut().zip(scale).zip(shift) {
            *y = *y * a + b;
        }
    }
}

#[inline(always)]
fn clamp(values: &mut [f32], lo: f32, hi: f32) {
    for v in values {
        // Compares, not max/min: a NaN stays a NaN, as in the activations.
        let x = if *v < lo { lo } else { *v };
        *v = if x > hi { hi } else { x };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn relu(v: &mut [f32], _: usize) {
        v.iter_mut().for_each(|x| *x = x.max(0.0));
    }

    /// Steps run in order, channel by channel, and pieces of any whole
    /// number of pixels give the same result as the whole.
    #[test]
    fn steps_in_order_on_any_split() {
        let (scale, shift) = ([2.0, -1.0], [1.0, 0.5]);
        let steps = [
            Step::Affine {
                scale: &scale,
                shift: &shift,
            },
            Step::Map(relu),
        ];
        let e = Epilogue::new(&steps);
        let mut whole = vec![1.0, 1.0, -3.0, -3.0, 0.25, 2.0];
        let mut pieces = whole.clone();
        e.apply(&mut whole, 2);
        assert_eq!(whole, [3.0, 0.0, 0.0, 3.5, 1.5, 0.0]);
        let (a, b) = pieces.split_at_mut(2);
        e.apply(a, 2);
        e.apply(b, 2);
        assert_eq!(pieces, whole);
        let mut untouched = vec![-1.0; 4];
        Epilogue::NONE.apply(&mut untouched, 2);
        assert_eq!(untouched, [-1.0; 4]);
    }

    /// The clamp steps are relu and relu6 bit for bit, NaN and -0 included.
    #[test]
    fn clamp_steps_are_the_activations() {
        use crate::activation::{ActivationFn, Relu, Relu6};
        let values = [
            -1.5,
            -0.0,
            0.0,
            2.5,
            6.0,
            7.0,
            f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
        ];
        for (clamp, apply) in [
            (Relu::CLAMP, Relu::apply as fn(&mut [f32], usize)),
            (Relu6::CLAMP, Relu6::apply),
        ] {
            let (lo, hi) = clamp.expect("relu and relu6 are clamps");
            let mut fused = values.repeat(7);
            let mut plain = fused.clone();
            Epilogue::new(&[Step::Clamp { lo, hi }]).apply(&mut fused, 9);
            apply(&mut plain, 9);
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&fused), bits(&plain));
        }
    }

    #[test]
    #[should_panic(expected = "whole pixels")]
    fn refuses_a_partial_pixel() {
        Epilogue::new(&[Step::Map(relu)]).apply(&mut [1.0; 3], 2);
    }
}
