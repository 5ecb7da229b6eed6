//! Backward-pass kernels: the gradients of convolution, dense layers and
//! pooling, as plain functions on slices.
//!
//! For a convolution computed as `Y = im2col(X) · W` (see
//! [`conv`](super::conv)), the kernel gradient is `im2col(X)ᵀ · dY` and the
//! input gradient is `col2im(dY · Wᵀ)`: the same im2col tiles as the forward
//! pass, two GEMMs with a transposed operand, and a scatter-add back to the
//! input's layout.

use super::conv::{im2col, ConvGeometry};
use super::gemm::sgemm_general as sgemm_strided;

/// Adds the column sums of `matrix` (rows of `sums.len()` values) to
/// `sums`: a bias's gradient.
fn add_column_sums(matrix: &[f32], sums: &mut [f32]) {
    for row in matrix.chunks_exact(sums.len().max(1)) {
        for (s, v) in sums.iter_mut().zip(row) {
            *s += v;
        }
    }
}

/// Output rows per backward tile (the im2col patches and their gradients).
fn tile_rows(patch_len: usize) -> usize {
    ((128 * 1024) / patch_len.max(1)).clamp(16, 1024)
}

/// Adds the patch gradients of output pixels `first .. first + rows` back
/// onto the input pixels they were copied from (the adjoint of [`im2col`]).
pub fn col2im_add(
    g: &ConvGeometry,
    patches: &[f32],
    first: usize,
    rows: usize,
    grad_input: &mut [f32],
) {
    let k = g.patch_len();
    let c = g.in_c;
    for (r, patch) in patches[..rows * k].chunks_exact(k).enumerate() {
        let pixel = first + r;
        let ox = pixel % g.out_w;
        let oy = (pixel / g.out_w) % g.out_h;
        let b = pixel / (g.out_w * g.out_h);
        for ky in 0..g.k_h {
            let iy = (oy * g.s_h + ky) as isize - g.pad_top as isize;
            if iy < 0 || iy >= g.in_h as isize {
                continue;
            }
            for kx in 0..g.k_w {
                let ix = (ox * g.s_w + kx) as isize - g.pad_left as isize;
                if ix < 0 || ix >= g.in_w as isize {
                    continue;
                }
                let at = ((b * g.in_h + iy as usize) * g.in_w + ix as usize) * c;
                let src = &patch[(ky * g.k_w + kx) * c..(ky * g.k_w + kx + 1) * c];
                for (d, s) in grad_input[at..at + c].iter_mut().zip(src) {
                    *d += s;
                }
            }
        }
    }
}

/// The gradients of a convolution `Y = conv(X, W) + bias` given `dY`
/// (`grad_output`, NHWC): adds `dW` (HWIO) to `grad_kernel` and `Σ dY` to
/// `grad_bias`, and writes `dX` (NHWC) to `grad_input`.
///
/// # Panics
/// When a slice is shorter than `g` and `out_c` say (a caller bug).
#[allow(clippy::too_many_arguments)]
pub fn conv2d_backward(
    g: &ConvGeometry,
    input: &[f32],
    kernel: &[f32],
    grad_output: &[f32],
    out_c: usize,
    grad_kernel: &mut [f32],
    grad_bias: Option<&mut [f32]>,
    grad_input: &mut [f32],
) {
    let m = g.out_pixels();
    let k = g.patch_len();
    assert!(
        grad_output.len() >= m * out_c,
        "conv2d_backward: grad_output too short"
    );
    assert!(
        grad_input.len() >= g.input_len(),
        "conv2d_backward: grad_input too short"
    );
    if let Some(gb) = grad_bias {
        add_column_sums(&grad_output[..m * out_c], gb);
    }
    grad_input[..g.input_len()].fill(0.0);
    let tile = tile_rows(k);
    let mut patches = vec![0.0f32; tile.min(m) * k];
    let mut grad_patches = vec![0.0f32; tile.min(m) * k];
    let mut first = 0;
    while first < m {
        let rows = tile.min(m - first);
        let dy = &grad_output[first * out_c..(first + rows) * out_c];
        let patches = &mut patches[..rows * k];
        im2col(g, input, first, rows, patches);
        // dW (k × out_c) += patchesᵀ (k × rows) · dY (rows × out_c)
        sgemm_strided(
            (k, rows, out_c),
            patches,
            (1, k),
            dy,
            (out_c, 1),
            1.0,
            grad_kernel,
            (out_c, 1),
        );
        // dPatches (rows × k) = dY (rows × out_c) · Wᵀ (out_c × k)
        let grad_patches = &mut grad_patches[..rows * k];
        sgemm_strided(
            (rows, out_c, k),
            dy,
            (out_c, 1),
            kernel,
            (1, out_c),
            0.0,
            grad_patches,
            (k, 1),
        );
        col2im_add(g, grad_patches, first, rows, grad_input);
        first += rows;
    }
}

/// Most image groups [`conv2d_backward_grouped`] splits a batch into.
pub const MAX_GROUPS: usize = 8;

/// [`conv2d_backward`] with the batch split into up to [`MAX_GROUPS`] fixed
/// groups of whole images, shared among up to `threads` threads. Each group
/// writes its own images' input gradient and its own partial kernel and
/// bias gradients, which are then added in group order: the groups depend
/// on the batch size only, so the result does not depend on `threads`.
#[allow(clippy::too_many_arguments)]
pub fn conv2d_backward_grouped(
    g: &ConvGeometry,
    input: &[f32],
    kernel: &[f32],
    grad_output: &[f32],
    out_c: usize,
    grad_kernel: &mut [f32],
    mut grad_bias: Option<&mut [f32]>,
    grad_input: &mut [f32],
    threads: usize,
) {
    let groups = g.batch.clamp(1, MAX_GROUPS);
    let (image_in, image_out) = (g.in_h * g.in_w * g.in_c, g.out_h * g.out_w * out_c);
    let partial_len = grad_kernel.len() + out_c;
    let mut partials = vec![0.0f32; groups * partial_len];
    // Group i holds images first(i) .. first(i + 1).
    let first = |i: usize| i * g.batch / groups;
    let mut items = Vec::with_capacity(groups);
    let mut rest_in = &mut grad_input[..g.input_len()];
    for (i, partial) in partials.chunks_mut(partial_len).enumerate() {
        let n = first(i + 1) - first(i);
        let (mine, tail) = std::mem::take(&mut rest_in).split_at_mut(n * image_in);
        rest_in = tail;
        items.push((i, n, mine, partial));
    }
    let flops = 4 * g.out_pixels() * g.patch_len() * out_c;
    let workers = super::parallel::workers(threads, groups, flops);
    let has_bias = grad_bias.is_some();
    super::parallel::run(
        workers,
        items.into_iter(),
        &mut [],
        0,
        |(i, n, gi, partial), _| {
            let sub = ConvGeometry { batch: n, ..*g };
            let (x0, y0) = (first(i) * image_in, first(i) * image_out);
            let (gk, gb) = partial.split_at_mut(partial.len() - out_c);
            conv2d_backward(
                &sub,
                &input[x0..x0 + n * image_in],
                kernel,
                &grad_output[y0..y0 + n * image_out],
                out_c,
                gk,
                has_bias.then_some(gb),
                gi,
            );
        },
    );
    for partial in partials.chunks(partial_len) {
        let (gk, gb) = partial.split_at(partial.len() - out_c);
        grad_kernel.iter_mut().zip(gk).for_each(|(d, s)| *d += s);
        if let Some(b) = grad_bias.as_deref_mut() {
            b.iter_mut().zip(gb).for_each(|(d, s)| *d += s);
        }
    }
}

/// The gradients of a dense layer `Y = X · W + bias` (`X` is `rows × n_in`,
/// `W` is `n_in × units`): adds `Xᵀ · dY` to `grad_kernel` and `Σ dY` to
/// `grad_bias`, and writes `dY · Wᵀ` to `grad_input`.
#[allow(clippy::too_many_arguments)]
pub fn dense_backward(
    (rows, n_in, units): (usize, usize, usize),
    input: &[f32],
    kernel: &[f32],
    grad_output: &[f32],
    grad_kernel: &mut [f32],
    grad_bias: Option<&mut [f32]>,
    grad_input: &mut [f32],
) {
    if let Some(gb) = grad_bias {
        add_column_sums(&grad_output[..rows * units], gb);
    }
    sgemm_strided(
        (n_in, rows, units),
        input,
        (1, n_in),
        grad_output,
        (units, 1),
        1.0,
        grad_kernel,
        (units, 1),
    );
    sgemm_strided(
        (rows, units, n_in),
        grad_output,
        (units, 1),
        kernel,
        (1, units),
        0.0,
        grad_input,
        (n_in, 1),
    );
}

/// The window of output `(oy, ox)` clipped to the input: `(y0, y1, x0, x1)`.
fn window(g: &ConvGeometry, oy: usize, ox: usize) -> (usize, usize, usize, usize) {
    let y0 = (oy * g.s_h).saturating_sub(g.pad_top);
    let y1 = (oy * g.s_h + g.k_h).saturating_sub(g.pad_top).min(g.in_h);
    let x0 = (ox * g.s_w).saturating_sub(g.pad_left);
    let x1 = (ox * g.s_w + g.k_w).saturating_sub(g.pad_left).min(g.in_w);
    (y0, y1, x0, x1)
}

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
    grad_input[..g.input_len()].fill(0.0);
    for b in 0..g.batch {
        let base = b * g.in_h * g.in_w * c;
        for oy in 0..g.out_h {
            for ox in 0..g.out_w {
                let (y0, y1, x0, x1) = window(g, oy, ox);
                let o = ((b * g.out_h + oy) * g.out_w + ox) * c;
                for ch in 0..c {
                    let mut best = f32::NEG_INFINITY;
                    let mut at = usize::MAX;
                    for iy in y0..y1 {
                        for ix in x0..x1 {
                            let i = base + (iy * g.in_w + ix) * c + ch;
                            if at == usize::MAX || input[i] > best {
                                best = input[i];
                                at = i;
                            }
                        }
                    }
                    if at != usize::MAX {
                        grad_input[at] += grad_output[o + ch];
                    }
                }
            }
        }
    }
}

/// Average pooling's input gradient: each output's gradient is shared
/// equally by the input cells of its window (only real cells count, as in
/// the forward pass).
pub fn avg_pool2d_backward(g: &ConvGeometry, grad_output: &[f32], grad_input: &mut [f32]) {
    let c = g.in_c;
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
