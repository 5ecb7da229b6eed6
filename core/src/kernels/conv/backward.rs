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
//!
//! At stride 1 without dilation or groups, the input gradient is itself a
//! convolution: `dY`, padded by `k - 1 - pad`, with the kernel turned by
//! 180° and its channel axes swapped. When the forward pass has a faster
//! path than im2col for that convolution (Winograd, direct), the grouped
//! backward pass computes `dX` that way, with no `col2im` scatter.

use super::{choose_path, conv2d, conv2d_scratch_len, im2col_columns, ConvGeometry, ConvPath};
use crate::kernels::gemm::{add_at_b, sgemm_general};
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
    // Without horizontal dilation or groups, a window row is one run of
    // `k_w · in_c` values in the input line: one add per window row, not
    // per cell (few channels make cells of a few values).
    let runs = g.d_w == 1 && g.groups <= 1;
    let c0 = group * cg;
    for (r, patch) in patches[..rows * k].chunks_exact(k).enumerate() {
        let pixel = first + r;
        let ox = pixel % g.out_w;
        let oy = (pixel / g.out_w) % g.out_h;
        let b = pixel / (g.out_w * g.out_h);
        // The window's first column, and its columns inside the input.
        let x0 = (ox * g.s_w) as isize - g.pad_left as isize;
        let kx0 = (-x0).clamp(0, g.k_w as isize) as usize;
        let kx1 = (g.in_w as isize - x0).clamp(kx0 as isize, g.k_w as isize) as usize;
        for ky in 0..g.k_h {
            let iy = (oy * g.s_h + ky * g.d_h) as isize - g.pad_top as isize;
            if iy < 0 || iy >= g.in_h as isize {
                continue;
            }
            let line = (b * g.in_h + iy as usize) * g.in_w;
            let row = &patch[ky * g.k_w * cg..(ky + 1) * g.k_w * cg];
            if runs {
                if kx0 == kx1 {
                    continue;
                }
                // `kx0` skips the columns left of the input, so the sum is
                // a column of this line (cast only once it is).
                let at = (line as isize + x0 + kx0 as isize) as usize;
                let dst = &mut grad_input[at * g.in_c..(at + kx1 - kx0) * g.in_c];
                for (d, s) in dst.iter_mut().zip(&row[kx0 * cg..kx1 * cg]) {
                    *d += s;
                }
                continue;
            }
            for kx in 0..g.k_w {
                let ix = x0 + (kx * g.d_w) as isize;
                if ix < 0 || ix >= g.in_w as isize {
                    continue;
                }
                let at = (line + ix as usize) * g.in_c + c0;
                let src = &row[kx * cg..(kx + 1) * cg];
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
#[cfg(test)]
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
    let grads = (grad_kernel, grad_bias, Some(grad_input));
    backward_tiles(g, input, kernel, grad_output, out_c, grads, scratch);
}

/// The kernel gradient, bias gradient and input gradient of `g` (the last
/// one only when asked for), tile by tile: [`conv2d_backward_scratch`].
fn backward_tiles(
    g: &ConvGeometry,
    input: &[f32],
    kernel: &[f32],
    grad_output: &[f32],
    out_c: usize,
    (grad_kernel, grad_bias, mut grad_input): Grads<'_>,
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
        scratch.len() >= conv2d_backward_scratch_len(g),
        "conv2d_backward: scratch too short"
    );
    if let Some(gb) = grad_bias {
        add_column_sums(&grad_output[..m * out_c], gb);
    }
    if let Some(gi) = grad_input.as_deref_mut() {
        assert!(
            gi.len() >= g.input_len(),
            "conv2d_backward: grad_input too short"
        );
        gi[..g.input_len()].fill(0.0);
    }
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
            add_at_b(
                (k, rows, og),
                patches,
                k,
                dy,
                out_c,
                &mut grad_kernel[group * og..],
                out_c,
            );
            let Some(gi) = grad_input.as_deref_mut() else {
                continue;
            };
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
            col2im_add(g, group, grad_patches, first, rows, gi);
        }
        first += rows;
    }
}

/// Where a backward pass puts its gradients: the kernel's (added to), the
/// bias's (added to, if any) and the input's (written, if asked for).
type Grads<'a> = (&'a mut [f32], Option<&'a mut [f32]>, Option<&'a mut [f32]>);

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
/// thread it uses (never more threads than groups); with the input
/// gradient computed as a convolution, room for the turned kernel and for
/// that convolution too (which runs after the others are done).
pub fn conv2d_backward_grouped_scratch_len(
    g: &ConvGeometry,
    out_c: usize,
    threads: usize,
) -> usize {
    let tiles = grouped_tiles_scratch_len(g, out_c, threads);
    match data_gradient_geometry(g, out_c) {
        Some(t) => {
            let conv = conv2d_scratch_len(&t, g.in_c, threads);
            (g.patch_len() * out_c).saturating_add(tiles.max(conv))
        }
        None => tiles,
    }
}

/// The scratch of [`grouped_tiles`].
fn grouped_tiles_scratch_len(g: &ConvGeometry, out_c: usize, threads: usize) -> usize {
    let groups = image_groups(g.batch);
    let partials = groups * (g.patch_len() * out_c + out_c);
    let per_thread = conv2d_backward_scratch_len(&largest_group(g));
    partials + parallel::scratch_len(grouped_workers(g, out_c, threads), per_thread)
}

/// The geometry of one image group of `g` at its largest.
fn largest_group(g: &ConvGeometry) -> ConvGeometry {
    ConvGeometry {
        batch: g.batch.div_ceil(image_groups(g.batch)),
        ..*g
    }
}

/// The input gradient of `g` (with `out_c` filters) as a forward
/// convolution over `dY`, when `g` is a stride-1 window without dilation
/// or groups and the forward pass has a faster path for it than im2col
/// (im2col would only redo the backward GEMM, in another order).
fn data_gradient_geometry(g: &ConvGeometry, out_c: usize) -> Option<ConvGeometry> {
    let plain = g.is_plain() && g.s_h == 1 && g.s_w == 1;
    // 'same' and 'valid' pad less than a window; a caller-built geometry
    // might not.
    let padded = g.pad_top < g.k_h && g.pad_left < g.k_w;
    if !plain || !padded || g.out_pixels() == 0 || g.input_len() == 0 {
        return None;
    }
    let t = ConvGeometry {
        in_h: g.out_h,
        in_w: g.out_w,
        in_c: out_c,
        pad_top: g.k_h - 1 - g.pad_top,
        pad_left: g.k_w - 1 - g.pad_left,
        out_h: g.in_h,
        out_w: g.in_w,
        ..*g
    };
    let fast = matches!(
        choose_path(&t, g.in_c),
        ConvPath::Winograd | ConvPath::Winograd4 | ConvPath::Direct(_)
    );
    fast.then_some(t)
}

/// Writes `kernel` (HWIO, `out_c` filters over `g`'s input channels) turned
/// by 180° with its channel axes swapped into `turned`: the kernel of the
/// convolution that maps `dY` to `dX` (see [`data_gradient_geometry`]).
fn turn_kernel(g: &ConvGeometry, kernel: &[f32], out_c: usize, turned: &mut [f32]) {
    let (cells, cin) = (g.k_h * g.k_w, g.in_c);
    let block = cin * out_c;
    for cell in 0..cells {
        // Cell (ky, kx) lands on (k_h - 1 - ky, k_w - 1 - kx): the cell
        // index reversed.
        let src = &kernel[cell * block..(cell + 1) * block];
        let dst = &mut turned[(cells - 1 - cell) * block..(cells - cell) * block];
        for (co, row) in dst.chunks_exact_mut(cin).enumerate() {
            for (d, s) in row.iter_mut().zip(src[co..].iter().step_by(out_c)) {
                *d = *s;
            }
        }
    }
}

/// [`conv2d_backward_scratch`] with the batch split into up to
/// [`MAX_GROUPS`] fixed groups of whole images, shared among up to
/// `threads` threads. Each group writes its own images' input gradient and
/// its own partial kernel and bias gradients, which are then added in group
/// order: the groups depend on the batch size only, so the result does not
/// depend on `threads`. Where the input gradient is a convolution the
/// forward kernels compute fast, they compute it (thread-invariant too).
/// `scratch` holds at least [`conv2d_backward_grouped_scratch_len`] values.
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
    grad_bias: Option<&mut [f32]>,
    grad_input: &mut [f32],
    scratch: &mut [f32],
    threads: usize,
) {
    assert!(
        scratch.len() >= conv2d_backward_grouped_scratch_len(g, out_c, threads),
        "conv2d_backward: scratch too short"
    );
    assert!(
        grad_input.len() >= g.input_len(),
        "conv2d_backward: grad_input too short"
    );
    let Some(t) = data_gradient_geometry(g, out_c) else {
        let grads = (grad_kernel, grad_bias, Some(grad_input));
        grouped_tiles(
            g,
            (input, kernel, grad_output),
            out_c,
            grads,
            scratch,
            threads,
        );
        return;
    };
    let (turned, rest) = scratch.split_at_mut(g.patch_len() * out_c);
    let grads = (grad_kernel, grad_bias, None);
    grouped_tiles(g, (input, kernel, grad_output), out_c, grads, rest, threads);
    turn_kernel(g, kernel, out_c, turned);
    let grad_input = &mut grad_input[..g.input_len()];
    conv2d(
        &t,
        grad_output,
        turned,
        None,
        g.in_c,
        grad_input,
        rest,
        threads,
    );
}

/// The tiled backward pass over the fixed image groups of
/// [`conv2d_backward_grouped_scratch`], the input gradient only if asked
/// for.
fn grouped_tiles(
    g: &ConvGeometry,
    (input, kernel, grad_output): (&[f32], &[f32], &[f32]),
    out_c: usize,
    (grad_kernel, mut grad_bias, grad_input): Grads<'_>,
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
    let partial_len = kernel_len + out_c;
    let (partials, per_thread) = scratch.split_at_mut(groups * partial_len);
    partials.fill(0.0);
    // Group i holds images first(i) .. first(i + 1).
    let first = |i: usize| i * g.batch / groups;
    let mut rest_in = grad_input.map(|gi| &mut gi[..g.input_len()]);
    let items = partials
        .chunks_mut(partial_len)
        .enumerate()
        .map(move |(i, partial)| {
            let n = first(i + 1) - first(i);
            let mine = rest_in.take().map(|rest| {
                let (mine, tail) = rest.split_at_mut(n * image_in);
                rest_in = Some(tail);
                mine
            });
            (i, n, mine, partial)
        });
    let has_bias = grad_bias.is_some();
    parallel::run(
        grouped_workers(g, out_c, threads),
        items,
        per_thread,
        conv2d_backward_scratch_len(&largest_group(g)),
        |(i, n, gi, partial), work| {
            let sub = ConvGeometry { batch: n, ..*g };
            let (x0, y0) = (first(i) * image_in, first(i) * image_out);
            let (gk, gb) = partial.split_at_mut(kernel_len);
            let x = &input[x0..x0 + n * image_in];
            let dy = &grad_output[y0..y0 + n * image_out];
            let grads = (gk, has_bias.then_some(gb), gi);
            backward_tiles(&sub, x, kernel, dy, out_c, grads, work);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::testutil::{rng, uniform_f32};
    use crate::shape::Padding;

    /// `(dW, db, dX)` of `g` with `out_c` filters in f64, from the
    /// definition: every output cell's gradient times what it read.
    fn reference(
        g: &ConvGeometry,
        x: &[f32],
        w: &[f32],
        dy: &[f32],
        out_c: usize,
    ) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        let (mut dw, mut db) = (vec![0.0; w.len()], vec![0.0; out_c]);
        let mut dx = vec![0.0; g.input_len()];
        for (p, dy) in dy.chunks_exact(out_c).enumerate() {
            let (b, oy, ox) = (p / (g.out_h * g.out_w), p / g.out_w % g.out_h, p % g.out_w);
            db.iter_mut().zip(dy).for_each(|(d, &v)| *d += v as f64);
            for (ky, kx) in (0..g.k_h).flat_map(|ky| (0..g.k_w).map(move |kx| (ky, kx))) {
                let iy = (oy + ky) as isize - g.pad_top as isize;
                let ix = (ox + kx) as isize - g.pad_left as isize;
                if iy < 0 || ix < 0 || iy >= g.in_h as isize || ix >= g.in_w as isize {
                    continue;
                }
                let at = ((b * g.in_h + iy as usize) * g.in_w + ix as usize) * g.in_c;
                for ci in 0..g.in_c {
                    let cell = ((ky * g.k_w + kx) * g.in_c + ci) * out_c;
                    for (co, &d) in dy.iter().enumerate() {
                        dw[cell + co] += x[at + ci] as f64 * d as f64;
                        dx[at + ci] += w[cell + co] as f64 * d as f64;
                    }
                }
            }
        }
        (dw, db, dx)
    }

    fn assert_near(what: &str, got: &[f32], want: &[f64], scale: f64) {
        for (i, (a, b)) in got.iter().zip(want).enumerate() {
            let err = (*a as f64 - b).abs();
            assert!(err <= 1e-5 * scale, "{what}[{i}]: {a} vs {b}");
        }
    }

    /// Stride-1 windows whose input gradient the forward kernels compute
    /// (Winograd for wide channels, the direct kernel for few): the
    /// gradients match the definition, and are the same bits on any
    /// thread count.
    #[test]
    fn input_gradient_as_a_convolution_matches_the_definition() {
        let cases = [
            (3, (10, 9, 16), (3, 3), 24, Padding::Same),
            (9, (11, 8, 32), (3, 3), 16, Padding::Valid),
            (2, (6, 14, 32), (3, 3), 4, Padding::Same),
            (2, (7, 13, 24), (2, 3), 3, Padding::Valid),
        ];
        for (seed, (batch, hwc, k, out_c, padding)) in cases.into_iter().enumerate() {
            let g = ConvGeometry::new(batch, hwc, k, (1, 1), padding).unwrap();
            let mut rng = rng(seed as u64);
            let x = uniform_f32(&mut rng, g.input_len(), -1.0, 1.0);
            let w = uniform_f32(&mut rng, g.patch_len() * out_c, -1.0, 1.0);
            let dy = uniform_f32(&mut rng, g.out_pixels() * out_c, -1.0, 1.0);
            let (dw, db, dx) = reference(&g, &x, &w, &dy, out_c);
            let run = |threads: usize| {
                let (mut gk, mut gb) = (vec![0.5f32; w.len()], vec![0.25f32; out_c]);
                let mut gx = vec![f32::NAN; x.len()];
                let len = conv2d_backward_grouped_scratch_len(&g, out_c, threads);
                let mut scratch = vec![f32::NAN; len];
                conv2d_backward_grouped_scratch(
                    &g,
                    &x,
                    &w,
                    &dy,
                    out_c,
                    &mut gk,
                    Some(&mut gb),
                    &mut gx,
                    &mut scratch,
                    threads,
                );
                (gk, gb, gx)
            };
            let (gk, gb, gx) = run(1);
            let isa_has_path = data_gradient_geometry(&g, out_c).is_some();
            println!("{g:?} x {out_c}: input gradient as a convolution: {isa_has_path}");
            let shift = |v: &[f32], by: f32| v.iter().map(|a| a - by).collect::<Vec<_>>();
            let terms = (g.out_pixels() * out_c) as f64;
            assert_near("dW", &shift(&gk, 0.5), &dw, terms);
            assert_near("db", &shift(&gb, 0.25), &db, terms);
            assert_near("dX", &gx, &dx, (g.k_h * g.k_w * out_c) as f64);
            for threads in [2, 3] {
                assert!(
                    run(threads) == (gk.clone(), gb.clone(), gx.clone()),
                    "{g:?}"
                );
            }
        }
    }

    /// The turned kernel reads back: cell `(ky, kx)`, channels `(ci, co)`
    /// is cell `(k_h - 1 - ky, k_w - 1 - kx)`, channels `(co, ci)`.
    #[test]
    fn turned_kernel_swaps_cells_and_channels() {
        let g = ConvGeometry::new(1, (5, 5, 3), (2, 3), (1, 1), Padding::Valid).unwrap();
        let out_c = 4;
        let w: Vec<f32> = (0..g.patch_len() * out_c).map(|i| i as f32).collect();
        let mut turned = vec![f32::NAN; w.len()];
        turn_kernel(&g, &w, out_c, &mut turned);
        for (ky, kx, ci, co) in (0..2 * 3 * 3 * 4).map(|i| (i / 36, i / 12 % 3, i / 4 % 3, i % 4)) {
            let src = w[((ky * 3 + kx) * 3 + ci) * out_c + co];
            let dst = turned[(((1 - ky) * 3 + (2 - kx)) * out_c + co) * 3 + ci];
            assert_eq!(src, dst, "({ky}, {kx}, {ci}, {co})");
        }
    }
}
