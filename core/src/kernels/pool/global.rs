//! Global pooling (Keras's `GlobalAveragePooling2D` and
//! `GlobalMaxPooling2D`): an NHWC batch `(N, H, W, C)` to `(N, C)`, the
//! mean or the maximum of each channel over its `H·W` pixels.
//!
//! Sizes are given as `(batch, pixels, channels)` with `pixels = H·W`: the
//! window is the whole image, so its shape does not matter. The forward
//! passes share a batch's images among threads; each image is reduced the
//! same way (pixels in order) whichever thread takes it, so the result does
//! not depend on the thread count.

use crate::kernels::parallel;

/// `batch · pixels · channels` and `batch · channels`, checked against the
/// slices' lengths.
fn check(
    what: &str,
    (batch, pixels, channels): (usize, usize, usize),
    images: usize,
    pooled: usize,
) {
    let image_len = pixels.checked_mul(channels);
    let need_images = image_len.and_then(|l| l.checked_mul(batch));
    let need_pooled = batch.checked_mul(channels);
    assert!(
        need_images.is_some_and(|n| images >= n) && need_pooled.is_some_and(|n| pooled >= n),
        "{what}: slices too short for {batch} images of {pixels} pixels x {channels} channels"
    );
}

/// Reduces each image of `input` into its row of `output` on up to
/// `threads` threads.
fn forward(
    dims: (usize, usize, usize),
    input: &[f32],
    output: &mut [f32],
    threads: usize,
    reduce: impl Fn(&[f32], &mut [f32]) + Sync,
) {
    let (batch, pixels, channels) = dims;
    check("global pooling", dims, input.len(), output.len());
    let image_len = pixels * channels;
    if batch == 0 || channels == 0 {
        return;
    }
    // A thread (about 10 µs to start) pays for itself on ~256 K reads.
    let work = batch * image_len;
    let workers = threads.max(1).min(batch).min((work >> 18).max(1));
    let items = input[..batch * image_len]
        .chunks(image_len.max(1))
        .zip(output[..batch * channels].chunks_mut(channels));
    parallel::run(workers, items, &mut [], 0, |(x, y), _| reduce(x, y));
}

/// Global average pooling: `output[n][c]` is the mean of `input[n][·][c]`
/// over the `pixels` pixels (summed in order, then divided). An image of
/// no pixels averages to 0.
///
/// # Panics
/// When a slice is shorter than `dims = (batch, pixels, channels)` say.
pub fn avg_forward(dims: (usize, usize, usize), input: &[f32], output: &mut [f32], threads: usize) {
    let (_, pixels, channels) = dims;
    forward(dims, input, output, threads, |x, y| {
        y.fill(0.0);
        for px in x.chunks_exact(channels) {
            for (acc, v) in y.iter_mut().zip(px) {
                *acc += v;
            }
        }
        let count = pixels.max(1) as f32;
        y.iter_mut().for_each(|v| *v /= count);
    });
}

/// Global max pooling: `output[n][c]` is the largest `input[n][·][c]`. A
/// NaN wins (it propagates, as in max pooling and TensorFlow); an image of
/// no pixels gives -inf.
///
/// # Panics
/// When a slice is shorter than `dims = (batch, pixels, channels)` say.
pub fn max_forward(dims: (usize, usize, usize), input: &[f32], output: &mut [f32], threads: usize) {
    let (_, _, channels) = dims;
    forward(dims, input, output, threads, |x, y| {
        y.fill(f32::NEG_INFINITY);
        for px in x.chunks_exact(channels) {
            for (acc, &v) in y.iter_mut().zip(px) {
                if v > *acc || v.is_nan() {
                    *acc = v;
                }
            }
        }
    });
}

/// Global average pooling's input gradient: every pixel of channel `c`
/// of image `n` gets `grad_output[n][c] / pixels`.
///
/// # Panics
/// When a slice is shorter than `dims = (batch, pixels, channels)` say.
pub fn avg_backward(dims: (usize, usize, usize), grad_output: &[f32], grad_input: &mut [f32]) {
    let (batch, pixels, channels) = dims;
    check(
        "global average pooling backward",
        dims,
        grad_input.len(),
        grad_output.len(),
    );
    if batch == 0 || channels == 0 || pixels == 0 {
        return;
    }
    let count = pixels as f32;
    let images = grad_input[..batch * pixels * channels].chunks_exact_mut(pixels * channels);
    for (image, dy) in images.zip(grad_output.chunks_exact(channels)) {
        for px in image.chunks_exact_mut(channels) {
            for (d, g) in px.iter_mut().zip(dy) {
                *d = g / count;
            }
        }
    }
}

/// Global max pooling's input gradient: each `grad_output[n][c]` goes to
/// the first pixel (in row-major order) holding the maximum of channel `c`,
/// as max pooling's backward pass does; every other pixel gets 0.
///
/// # Panics
/// When a slice is shorter than `dims = (batch, pixels, channels)` say.
pub fn max_backward(
    dims: (usize, usize, usize),
    input: &[f32],
    grad_output: &[f32],
    grad_input: &mut [f32],
) {
    let (batch, pixels, channels) = dims;
    check(
        "global max pooling backward",
        dims,
        input.len().min(grad_input.len()),
        grad_output.len(),
    );
    let len = batch * pixels * channels;
    grad_input[..len].fill(0.0);
    if batch == 0 || channels == 0 || pixels == 0 {
        return;
    }
    let image_len = pixels * channels;
    for (b, dy) in grad_output[..batch * channels]
        .chunks_exact(channels)
        .enumerate()
    {
        let x = &input[b * image_len..(b + 1) * image_len];
        for (ch, g) in dy.iter().enumerate() {
            // Same rule as max pooling's backward pass: the first cell, then
            // only a strictly larger one.
            let mut at = 0;
            for p in 1..pixels {
                if x[p * channels + ch] > x[at * channels + ch] {
                    at = p;
                }
            }
            grad_input[b * image_len + at * channels + ch] += g;
        }
    }
}
