//! Max and average pooling over NHWC batches, forward and backward, and
//! global pooling ([`global`]).
//!
//! Pooling windows use [`ConvGeometry`] with `in_c` the channels, no
//! dilation and one group. The backward passes need no work space.

pub mod global;
#[cfg(test)]
mod tests;

use super::isa::{dispatch, load, store, Isa, Kernel, Scalar, Simd};
use super::ConvGeometry;

/// Max pooling: each output is the largest input cell in its window.
/// Padding cells never win (they act as -inf, as in Keras's 'same').
/// Unlike `f32::max`, a NaN wins: a NaN input must not vanish (TensorFlow
/// propagates it too, and training relies on seeing it in the loss).
pub fn max_pool2d(g: &ConvGeometry, input: &[f32], output: &mut [f32]) {
    max_pool2d_with(Isa::detect(), g, input, output);
}

/// [`max_pool2d`] on the vector unit of `isa`; every instruction set
/// gives the same bits (the maximum is one of the inputs, found by the
/// same compares in the same order).
///
/// # Panics
/// When `isa` is not available, or a slice is shorter than `g` says.
pub(crate) fn max_pool2d_with(isa: Isa, g: &ConvGeometry, input: &[f32], output: &mut [f32]) {
    assert!(g.is_plain(), "pool: dilated or grouped window {g:?}");
    assert!(input.len() >= g.input_len(), "pool: input too short");
    assert!(
        output.len() >= g.out_pixels() * g.in_c,
        "pool: output too short"
    );
    dispatch(isa, MaxPool { g, input, output });
}

/// [`max_pool2d`]'s loops, compiled per instruction set: each window's
/// maximum kept in registers, a register of channels at a time, then the
/// remaining channels one by one.
struct MaxPool<'a> {
    g: &'a ConvGeometry,
    input: &'a [f32],
    output: &'a mut [f32],
}

impl Kernel for MaxPool<'_> {
    type Output = ();

    #[inline(always)]
    fn run<S: Simd>(self, s: S) {
        let MaxPool { g, input, output } = self;
        let c = g.in_c;
        let image = g.in_h * g.in_w * c;
        for b in 0..g.batch {
            let x = &input[b * image..(b + 1) * image];
            for oy in 0..g.out_h {
                for ox in 0..g.out_w {
                    let o = ((b * g.out_h + oy) * g.out_w + ox) * c;
                    let out = &mut output[o..o + c];
                    let window = window(g, oy, ox);
                    let mut ch = 0;
                    while ch + S::LANES <= c {
                        max_window(s, g, window, x, ch, out);
                        ch += S::LANES;
                    }
                    for ch in ch..c {
                        max_window(Scalar, g, window, x, ch, out);
                    }
                }
            }
        }
    }
}

/// The maximum over `window` of the `V::LANES` channels from `ch` of image
/// `x`, into `out[ch..]`: from -inf, cells in row-major order.
#[inline(always)]
fn max_window<V: Simd>(
    s: V,
    g: &ConvGeometry,
    (y0, y1, x0, x1): (usize, usize, usize, usize),
    x: &[f32],
    ch: usize,
    out: &mut [f32],
) {
    let mut acc = s.splat(f32::NEG_INFINITY);
    for iy in y0..y1 {
        for ix in x0..x1 {
            acc = s.max_or_nan(acc, load(s, x, (iy * g.in_w + ix) * g.in_c + ch));
        }
    }
    store(s, out, ch, acc);
}

/// Average pooling: each output is the mean of the input cells in its
/// window; at 'same' borders only the cells inside the input count.
pub fn avg_pool2d(g: &ConvGeometry, input: &[f32], output: &mut [f32]) {
    pool(g, input, output, 0.0, |a, b| a + b, |acc, n| acc / n as f32);
}

/// [`max_pool2d`] (`max`) or [`avg_pool2d`] with the batch's images
/// shared among up to `threads` threads. Each image is pooled the same way
/// whichever thread takes it, so the result does not depend on `threads`.
pub fn pool2d_threaded(
    g: &ConvGeometry,
    input: &[f32],
    output: &mut [f32],
    max: bool,
    threads: usize,
) {
    let image_in = g.in_h * g.in_w * g.in_c;
    let image_out = g.out_h * g.out_w * g.in_c;
    let work = g.out_pixels() * g.in_c * g.k_h * g.k_w;
    // A thread (about 10 µs to start) pays for itself on ~256 K reads.
    let workers = threads.max(1).min(g.batch).min((work >> 18).max(1));
    let one = ConvGeometry { batch: 1, ..*g };
    let items = input[..g.batch * image_in]
        .chunks(image_in.max(1))
        .zip(output[..g.batch * image_out].chunks_mut(image_out.max(1)));
    crate::kernels::parallel::run(workers, items, &mut [], 0, |(x, y), _| {
        if max {
            max_pool2d(&one, x, y);
        } else {
            avg_pool2d(&one, x, y);
        }
    });
}

fn pool(
    g: &ConvGeometry,
    input: &[f32],
    output: &mut [f32],
    init: f32,
    combine: impl Fn(f32, f32) -> f32,
    finish: impl Fn(f32, usize) -> f32,
) {
    let c = g.in_c;
    assert!(g.is_plain(), "pool: dilated or grouped window {g:?}");
    assert!(input.len() >= g.input_len(), "pool: input too short");
    assert!(output.len() >= g.out_pixels() * c, "pool: output too short");
    for b in 0..g.batch {
        let image = &input[b * g.in_h * g.in_w * c..(b + 1) * g.in_h * g.in_w * c];
        for oy in 0..g.out_h {
            // The window clipped to the input: padding cells are simply skipped.
            let y0 = (oy * g.s_h).saturating_sub(g.pad_top);
            let y1 = (oy * g.s_h + g.k_h).saturating_sub(g.pad_top).min(g.in_h);
            for ox in 0..g.out_w {
                let x0 = (ox * g.s_w).saturating_sub(g.pad_left);
                let x1 = (ox * g.s_w + g.k_w).saturating_sub(g.pad_left).min(g.in_w);
                let o = ((b * g.out_h + oy) * g.out_w + ox) * c;
                let out = &mut output[o..o + c];
                out.fill(init);
                for iy in y0..y1 {
                    for ix in x0..x1 {
                        let cell = &image[(iy * g.in_w + ix) * c..(iy * g.in_w + ix + 1) * c];
                        for (acc, v) in out.iter_mut().zip(cell) {
                            *acc = combine(*acc, *v);
                        }
                    }
                }
                let count = (y1 - y0) * (x1 - x0);
                for acc in out.iter_mut() {
                    *acc = finish(*acc, count);
                }
            }
        }
    }
}

/// The window of output `(oy, ox)` clipped to the input: `(y0, y1, x0, x1)`.
fn window(g: &ConvGeometry, oy: usize, ox: usize) -> (usize, usize, usize, usize) {
    let y0 = (oy * g.s_h).saturating_sub(g.pad_top);
    let y1 = (oy * g.s_h + g.k_h).saturating_sub(g.pad_top).min(g.in_h);
    let x0 = (ox * g.s_w).saturating_sub(g.pad_left);
    let x1 = (ox * g.s_w + g.k_w).saturating_sub(g.pad_left).min(g.in_w);
    (y0, y1, x0, x1)
}

/// Channels [`max_pool2d_backward`] routes at once: its winners and
/// running maxima live in fixed arrays of this many lanes (a multiple of
/// every SIMD width, so the channel loops vectorise).
const ROUTE_LANES: usize = 32;

/// Max pooling's input gradient: each output's gradient goes to the input
/// cell that won its window (the first maximum in row-major order, padding
/// never winning); overlapping windows add up.
pub fn max_pool2d_backward(
    g: &ConvGeometry,
    input: &[f32],
    grad_output: &[f32],
    grad_input: &mut [f32],
) {
    let c = g.in_c;
    assert!(g.is_plain(), "pool: dilated or grouped window {g:?}");
    assert!(input.len() >= g.input_len(), "pool: input too short");
    assert!(
        grad_output.len() >= g.out_pixels() * c,
        "pool: grad_output too short"
    );
    grad_input[..g.input_len()].fill(0.0);
    let image = g.in_h * g.in_w * c;
    for b in 0..g.batch {
        let x = &input[b * image..(b + 1) * image];
        let dx = &mut grad_input[b * image..(b + 1) * image];
        for oy in 0..g.out_h {
            for ox in 0..g.out_w {
                let o = ((b * g.out_h + oy) * g.out_w + ox) * c;
                let window = window(g, oy, ox);
                for c0 in (0..c).step_by(ROUTE_LANES) {
                    let lanes = ROUTE_LANES.min(c - c0);
                    let dy = &grad_output[o + c0..o + c0 + lanes];
                    route_window(g, window, (c0, lanes), x, dy, dx);
                }
            }
        }
    }
}

/// Routes `dy` (channels `c0 .. c0 + lanes` of one output) to the winners
/// of its clipped `window` in `dx`, both one image. Every cell of the
/// window gets `dy` or zero added per lane (a select, not a branch: which
/// cell wins is data, and random data defeats the branch predictor).
fn route_window(
    g: &ConvGeometry,
    (y0, y1, x0, x1): (usize, usize, usize, usize),
    (c0, lanes): (usize, usize),
    x: &[f32],
    dy: &[f32],
    dx: &mut [f32],
) {
    if y0 >= y1 || x0 >= x1 {
        return;
    }
    let c = g.in_c;
    let at = |iy: usize, ix: usize| (iy * g.in_w + ix) * c + c0;
    let mut best = [f32::NEG_INFINITY; ROUTE_LANES];
    let mut winner = [0u32; ROUTE_LANES];
    best[..lanes].copy_from_slice(&x[at(y0, x0)..at(y0, x0) + lanes]);
    // Cells in row-major order, numbered from 0: strictly greater wins, so
    // the first maximum keeps it (and a NaN, never greater, never takes
    // over, as in the forward pass).
    let mut cell = 0u32;
    for iy in y0..y1 {
        for ix in x0..x1 {
            let v = &x[at(iy, ix)..at(iy, ix) + lanes];
            for ((b, w), &v) in best.iter_mut().zip(&mut winner).zip(v) {
                // Selects as bit masks: written with `if`, the compiler
                // kept a branch per lane.
                let take = lane_mask(v > *b);
                *b = f32::from_bits((b.to_bits() & !take) | (v.to_bits() & take));
                *w = (*w & !take) | (cell & take);
            }
            cell += 1;
        }
    }
    let mut cell = 0u32;
    for iy in y0..y1 {
        for ix in x0..x1 {
            let d = &mut dx[at(iy, ix)..at(iy, ix) + lanes];
            for ((d, &w), &dy) in d.iter_mut().zip(&winner).zip(dy) {
                *d += f32::from_bits(dy.to_bits() & lane_mask(w == cell));
            }
            cell += 1;
        }
    }
}

/// All ones when `on`, else zero: a per-lane select mask.
fn lane_mask(on: bool) -> u32 {
    0u32.wrapping_sub(u32::from(on))
}

/// [`max_pool2d_backward`] with the batch's images shared among up to
/// `threads` threads: windows never span two images, so each image's
/// gradient is computed the same way whichever thread takes it.
pub fn max_pool2d_backward_threaded(
    g: &ConvGeometry,
    input: &[f32],
    grad_output: &[f32],
    grad_input: &mut [f32],
    threads: usize,
) {
    let image_in = g.in_h * g.in_w * g.in_c;
    let image_out = g.out_h * g.out_w * g.in_c;
    // As the forward pass: a thread pays for itself on ~256 K reads.
    let work = g.out_pixels() * g.in_c * g.k_h * g.k_w;
    let workers = threads.max(1).min(g.batch).min((work >> 18).max(1));
    let one = ConvGeometry { batch: 1, ..*g };
    let items = input[..g.batch * image_in]
        .chunks(image_in.max(1))
        .zip(grad_output[..g.batch * image_out].chunks(image_out.max(1)))
        .zip(grad_input[..g.batch * image_in].chunks_mut(image_in.max(1)));
    crate::kernels::parallel::run(workers, items, &mut [], 0, |((x, dy), dx), _| {
        max_pool2d_backward(&one, x, dy, dx);
    });
}

/// Average pooling's input gradient: each output's gradient is shared
/// equally by the input cells of its window (only real cells count, as in
/// the forward pass).
pub fn avg_pool2d_backward(g: &ConvGeometry, grad_output: &[f32], grad_input: &mut [f32]) {
    let c = g.in_c;
    assert!(g.is_plain(), "pool: dilated or grouped window {g:?}");
    grad_input[..g.input_len()].fill(0.0);
    for b in 0..g.batch {
        let base = b * g.in_h * g.in_w * c;
        for oy in 0..g.out_h {
            for ox in 0..g.out_w {
                let (y0, y1, x0, x1) = window(g, oy, ox);
                let share = 1.0 / ((y1 - y0) * (x1 - x0)).max(1) as f32;
                let o = ((b * g.out_h + oy) * g.out_w + ox) * c;
                for iy in y0..y1 {
                    for ix in x0..x1 {
                        let i = base + (iy * g.in_w + ix) * c;
                        for ch in 0..c {
                            grad_input[i + ch] += grad_output[o + ch] * share;
                        }
                    }
                }
            }
        }
    }
}
