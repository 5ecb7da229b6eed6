//! Max and average pooling over NHWC batches.

use super::conv::ConvGeometry;

/// Max pooling: each output is the largest input cell in its window.
/// Padding cells never win (they act as -inf, as in Keras's 'same').
pub fn max_pool2d(g: &ConvGeometry, input: &[f32], output: &mut [f32]) {
    // Unlike f32::max, a NaN wins: a NaN input must not vanish (TensorFlow
    // propagates it too, and training relies on seeing it in the loss).
    let max = |a: f32, b: f32| if b > a || b.is_nan() { b } else { a };
    pool(g, input, output, f32::NEG_INFINITY, max, |acc, _| acc);
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
    super::parallel::run(workers, items, &mut [], 0, |(x, y), _| {
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

/// Global pooling (temporary home until the kernels restructure lands).
pub mod global {
    /// The sizes of a global pooling: images, positions (`H·W`) per image,
    /// channels per position.
    #[derive(Clone, Copy, Debug)]
    pub struct Dims {
        /// Images in the batch.
        pub images: usize,
        /// `H·W`.
        pub positions: usize,
        /// `C`.
        pub channels: usize,
    }

    /// Mean of each channel.
    pub fn avg_forward(d: Dims, input: &[f32], output: &mut [f32], _threads: usize) {
        let scale = 1.0 / d.positions.max(1) as f32;
        for (x, y) in input.chunks(d.positions * d.channels).zip(output.chunks_mut(d.channels)) {
            y.fill(0.0);
            for p in x.chunks(d.channels) {
                for (y, v) in y.iter_mut().zip(p) {
                    *y += v;
                }
            }
            y.iter_mut().for_each(|v| *v *= scale);
        }
    }

    /// Max of each channel.
    pub fn max_forward(d: Dims, input: &[f32], output: &mut [f32], _threads: usize) {
        for (x, y) in input.chunks(d.positions * d.channels).zip(output.chunks_mut(d.channels)) {
            y.fill(f32::NEG_INFINITY);
            for p in x.chunks(d.channels) {
                for (y, v) in y.iter_mut().zip(p) {
                    if *v > *y || v.is_nan() {
                        *y = *v;
                    }
                }
            }
        }
    }

    /// Gradient of [`avg_forward`].
    pub fn avg_backward(d: Dims, grad_output: &[f32], grad_input: &mut [f32]) {
        let scale = 1.0 / d.positions.max(1) as f32;
        for (gx, gy) in grad_input.chunks_mut(d.positions * d.channels).zip(grad_output.chunks(d.channels)) {
            for p in gx.chunks_mut(d.channels) {
                for (x, y) in p.iter_mut().zip(gy) {
                    *x = y * scale;
                }
            }
        }
    }

    /// Gradient of [`max_forward`]: to the first arg-max.
    pub fn max_backward(d: Dims, input: &[f32], grad_output: &[f32], grad_input: &mut [f32]) {
        let n = d.positions * d.channels;
        for b in 0..d.images {
            let x = &input[b * n..(b + 1) * n];
            let gx = &mut grad_input[b * n..(b + 1) * n];
            gx.fill(0.0);
            for c in 0..d.channels {
                let mut best = 0;
                for p in 0..d.positions {
                    let v = x[p * d.channels + c];
                    let cur = x[best * d.channels + c];
                    if (v > cur || v.is_nan()) && !cur.is_nan() {
                        best = p;
                    }
                }
                gx[best * d.channels + c] = grad_output[b * d.channels + c];
            }
        }
    }
}
