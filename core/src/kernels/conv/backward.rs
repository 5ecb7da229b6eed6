//! The gradients of a convolution.
//!
//! For a convolution computed as `Y = im2col(X) · W` (see the parent
//! module), the kernel gradient is `im2col(X)ᵀ · dY` and the input gradient
//! is `col2im(dY · Wᵀ)`: the same im2col tiles as the forward pass, two
//! GEMMs with a transposed operand, and a scatter-add back to the input's
//! layout. With channel groups, each group does this on its own columns.
//!
//! Every function takes its work space from the caller (`scratch`, of the
//! length its `*_scratch_len` twin gives) and allocates nothing itself.

use super::{im2col_columns, ConvGeometry};
use crate::kernels::gemm::sgemm_general;
use crate::kernels::parallel;

/// Adds the column sums of `matrix` (rows of `sums.len()` values) to
/// `sums`: a bias's gradient.
pub(crate) fn add_column_sums(matrix: &[f32], sums: &mut [f32]) {
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

/// Adds the patch gradients of channel group `group` of output pixels
/// `first .. first + rows` back onto the input cells they were copied from
/// (the adjoint of [`im2col_columns`]).
fn col2im_add(
    g: &ConvGeometry,
    group: usize,
    patches: &[f32],
    first: usize,
    rows: usize,
    grad_input: &mut [f32],
) {
    let k = g.patch_len();
    let cg = g.group_in_c();
    let c0 = group * cg;
    for (r, patch) in patches[..rows * k].chunks_exact(k).enumerate() {
        let pixel = first + r;
        let ox = pixel % g.out_w;
        let oy = (pixel / g.out_w) % g.out_h;
        let b = pixel / (g.out_w * g.out_h);
        for ky in 0..g.k_h {
            let iy = (oy * g.s_h + ky * g.d_h) as isize - g.pad_top as isize;
            if iy < 0 || iy >= g.in_h as isize {
                continue;
            }
            for kx in 0..g.k_w {
                let ix = (ox * g.s_w + kx * g.d_w) as isize - g.pad_left as isize;
                if ix < 0 || ix >= g.in_w as isize {
                    continue;
                }
                let at = ((b * g.in_h + iy as usize) * g.in_w + ix as usize) * g.in_c + c0;
                let src = &patch[(ky * g.k_w + kx) * cg..(ky * g.k_w + kx + 1) * cg];
                for (d, s) in grad_input[at..at + cg].iter_mut().zip(src) {
                    *d += s;
                }
            }
        }
    }
}

/// Scratch values [`conv2d_backward_scratch`] needs for `g`.
pub fn conv2d_backward_scratch_len(g: &ConvGeometry) -> usize {
    let k = g.patch_len();
    2 * tile_rows(k).min(g.out_pixels()) * k
}

/// The gradients of a convolution `Y = conv(X, W) + bias` given `dY`
/// (`grad_output`, NHWC): adds `dW` (HWIO) to `grad_kernel` and `Σ dY` to
/// `grad_bias`, and writes `dX` (NHWC) to `grad_input`. `scratch` holds at
/// least [`conv2d_backward_scratch_len`] values (their contents do not
/// matter).
///
/// # Panics
/// When a slice is shorter than `g` and `out_c` say (a caller bug).
#[allow(clippy::too_many_arguments)]
pub fn conv2d_backward_scratch(
    g: &ConvGeometry,
    input: &[f32],
    kernel: &[f32],
    grad_output: &[f32],
    out_c: usize,
    grad_kernel: &mut [f32],
    grad_bias: Option<&mut [f32]>,
    grad_input: &mut [f32],
    scratch: &mut [f32],
) {
    let m = g.out_pixels();
    let k = g.patch_len();
    let groups = g.groups.max(1);
    assert!(
        out_c.is_multiple_of(groups),
        "conv2d_backward: {out_c} output channels in {groups} groups"
    );
    let og = out_c / groups;
    assert!(
        grad_output.len() >= m * out_c,
        "conv2d_backward: grad_output too short"
    );
    assert!(
        grad_input.len() >= g.input_len(),
        "conv2d_backward: grad_input too short"
    );
    assert!(
        scratch.len() >= conv2d_backward_scratch_len(g),
        "conv2d_backward: scratch too short"
    );
    if let Some(gb) = grad_bias {
        add_column_sums(&grad_output[..m * out_c], gb);
    }
    grad_input[..g.input_len()].fill(0.0);
    let tile = tile_rows(k);
    let (patches, grad_patches) = scratch.split_at_mut(tile.min(m) * k);
    let mut first = 0;
    while first < m {
        let rows = tile.min(m - first);
        let dy = &grad_output[first * out_c..(first + rows) * out_c];
        for group in 0..groups {
            let patches = &mut patches[..rows * k];
            im2col_columns(g, group, input, first, rows, 0, k, patches);
            let dy = &dy[group * og..];
            // dW (k × og) += patchesᵀ (k × rows) · dY (rows × og)
            sgemm_general(
                (k, rows, og),
                patches,
                (1, k),
                dy,
                (out_c, 1),
                1.0,
                &mut grad_kernel[group * og..],
                (out_c, 1),
            );
            // dPatches (rows × k) = dY (rows × og) · Wᵀ (og × k)
            let grad_patches = &mut grad_patches[..rows * k];
            sgemm_general(
                (rows, og, k),
                dy,
                (out_c, 1),
                &kernel[group * og..],
                (1, out_c),
                0.0,
                grad_patches,
                (k, 1),
            );
            col2im_add(g, group, grad_patches, first, rows, grad_input);
        }
        first += rows;
    }
}

/// [`conv2d_backward_scratch`] with scratch of its own (allocated per call):
/// what the tests call.
#[cfg(test)]
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
    let mut scratch = vec![0.0f32; conv2d_backward_scratch_len(g)];
    conv2d_backward_scratch(
        g,
        input,
        kernel,
        grad_output,
        out_c,
        grad_kernel,
        grad_bias,
        grad_input,
        &mut scratch,
    );
}

/// Most image groups [`conv2d_backward_grouped`] splits a batch into.
pub const MAX_GROUPS: usize = 8;

/// Image groups of a batch of `batch` images, and the first image of group
/// `i` is `i · batch / groups`.
fn image_groups(batch: usize) -> usize {
    batch.clamp(1, MAX_GROUPS)
}

/// Threads [`conv2d_backward_grouped_scratch`] runs on for `g` and `out_c`
/// when allowed `threads`: never more than there are image groups, or
/// than the work pays for.
fn grouped_workers(g: &ConvGeometry, out_c: usize, threads: usize) -> usize {
    let flops = parallel::flops([4, g.out_pixels(), g.patch_len(), out_c]);
    parallel::workers(threads, image_groups(g.batch), flops)
}

/// Scratch values [`conv2d_backward_grouped_scratch`] needs for `g` with
/// `out_c` filters on up to `threads` threads: a partial kernel and bias
/// gradient per image group, and one [`conv2d_backward_scratch_len`] per
/// thread it uses (never more threads than groups).
pub fn conv2d_backward_grouped_scratch_len(
    g: &ConvGeometry,
    out_c: usize,
    threads: usize,
) -> usize {
    let groups = image_groups(g.batch);
    let partials = groups * (g.patch_len() * out_c + out_c);
    let largest = ConvGeometry {
        batch: g.batch.div_ceil(groups),
        ..*g
    };
    let per_thread = conv2d_backward_scratch_len(&largest);
    partials + parallel::scratch_len(grouped_workers(g, out_c, threads), per_thread)
}

/// [`conv2d_backward_scratch`] with the batch split into up to
/// [`MAX_GROUPS`] fixed groups of whole images, shared among up to
/// `threads` threads. Each group writes its own images' input gradient and
/// its own partial kernel and bias gradients, which are then added in group
/// order: the groups depend on the batch size only, so the result does not
/// depend on `threads`. `scratch` holds at least
/// [`conv2d_backward_grouped_scratch_len`] values.
///
/// # Panics
/// When a slice is shorter than `g`, `out_c` and `threads` say.
#[allow(clippy::too_many_arguments)]
pub fn conv2d_backward_grouped_scratch(
    g: &ConvGeometry,
    input: &[f32],
    kernel: &[f32],
    grad_output: &[f32],
    out_c: usize,
    grad_kernel: &mut [f32],
    mut grad_bias: Option<&mut [f32]>,
    grad_input: &mut [f32],
    scratch: &mut [f32],
    threads: usize,
) {
    let groups = image_groups(g.batch);
    let (image_in, image_out) = (g.in_h * g.in_w * g.in_c, g.out_h * g.out_w * out_c);
    let kernel_len = g.patch_len() * out_c;
    assert!(
        grad_kernel.len() >= kernel_len,
        "conv2d_backward: grad_kernel too short"
    );
    assert!(
        scratch.len() >= conv2d_backward_grouped_scratch_len(g, out_c, threads),
        "conv2d_backward: scratch too short"
    );
    let partial_len = kernel_len + out_c;
    let (partials, per_thread) = scratch.split_at_mut(groups * partial_len);
    partials.fill(0.0);
    // Group i holds images first(i) .. first(i + 1).
    let first = |i: usize| i * g.batch / groups;
    let mut rest_in = &mut grad_input[..g.input_len()];
    let items = partials
        .chunks_mut(partial_len)
        .enumerate()
        .map(move |(i, partial)| {
            let n = first(i + 1) - first(i);
            let (mine, tail) = std::mem::take(&mut rest_in).split_at_mut(n * image_in);
            rest_in = tail;
            (i, n, mine, partial)
        });
    let largest = ConvGeometry {
        batch: g.batch.div_ceil(groups),
        ..*g
    };
    let workers = grouped_workers(g, out_c, threads);
    let has_bias = grad_bias.is_some();
    parallel::run(
        workers,
        items,
        per_thread,
        conv2d_backward_scratch_len(&largest),
        |(i, n, gi, partial), work| {
            let sub = ConvGeometry { batch: n, ..*g };
            let (x0, y0) = (first(i) * image_in, first(i) * image_out);
            let (gk, gb) = partial.split_at_mut(kernel_len);
            conv2d_backward_scratch(
                &sub,
                &input[x0..x0 + n * image_in],
                kernel,
                &grad_output[y0..y0 + n * image_out],
                out_c,
                gk,
                has_bias.then_some(gb),
                gi,
                work,
            );
        },
    );
    for partial in partials.chunks(partial_len) {
        let (gk, gb) = partial.split_at(kernel_len);
        grad_kernel.iter_mut().zip(gk).for_each(|(d, s)| *d += s);
        if let Some(b) = grad_bias.as_deref_mut() {
            b.iter_mut().zip(gb).for_each(|(d, s)| *d += s);
        }
    }
}

/// [`conv2d_backward_grouped_scratch`] with scratch of its own (allocated
/// per call): what the tests call.
#[cfg(test)]
#[allow(clippy::too_many_arguments)]
pub fn conv2d_backward_grouped(
    g: &ConvGeometry,
    input: &[f32],
    kernel: &[f32],
    grad_output: &[f32],
    out_c: usize,
    grad_kernel: &mut [f32],
    grad_bias: Option<&mut [f32]>,
    grad_input: &mut [f32],
    threads: usize,
) {
    let mut scratch = vec![0.0f32; conv2d_backward_grouped_scratch_len(g, out_c, threads)];
    conv2d_backward_grouped_scratch(
        g,
        input,
        kernel,
        grad_output,
        out_c,
        grad_kernel,
        grad_bias,
        grad_input,
        &mut scratch,
        threads,
    );
}
