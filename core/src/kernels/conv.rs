//! 2-D convolution as im2col + GEMM, NHWC input, HWIO kernel.
//!
//! With the input in NHWC and the kernel in HWIO (`[kh, kw, cin, cout]`),
//! one im2col row per output pixel (`kh·kw·cin` values, in kernel order)
//! times the kernel viewed as a `(kh·kw·cin) × cout` matrix gives that
//! pixel's `cout` outputs: the GEMM writes NHWC output directly.
//!
//! The im2col matrix is never built whole: output rows are processed in
//! tiles small enough to stay in cache between the copy and the GEMM, so the
//! scratch memory is bounded whatever the batch size.

use super::gemm::sgemm;
use crate::shape::{conv_output_len, same_padding, Padding};

/// Everything about a 2-D sliding window over an NHWC batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvGeometry {
    /// Batch size.
    pub batch: usize,
    /// Input height, width, channels.
    pub in_h: usize,
    /// Input width.
    pub in_w: usize,
    /// Input channels.
    pub in_c: usize,
    /// Kernel (window) height.
    pub k_h: usize,
    /// Kernel (window) width.
    pub k_w: usize,
    /// Vertical stride.
    pub s_h: usize,
    /// Horizontal stride.
    pub s_w: usize,
    /// Rows of padding above (Keras: half the total, rounded down).
    pub pad_top: usize,
    /// Columns of padding on the left.
    pub pad_left: usize,
    /// Output height.
    pub out_h: usize,
    /// Output width.
    pub out_w: usize,
}

impl ConvGeometry {
    /// The geometry of a `k_h × k_w` window at strides `(s_h, s_w)` under
    /// `padding`, or `None` if no window fits (see [`conv_output_len`]).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        batch: usize,
        (in_h, in_w, in_c): (usize, usize, usize),
        (k_h, k_w): (usize, usize),
        (s_h, s_w): (usize, usize),
        padding: Padding,
    ) -> Option<Self> {
        let out_h = conv_output_len(in_h, k_h, s_h, padding)?;
        let out_w = conv_output_len(in_w, k_w, s_w, padding)?;
        Some(ConvGeometry {
            batch,
            in_h,
            in_w,
            in_c,
            k_h,
            k_w,
            s_h,
            s_w,
            pad_top: same_padding(in_h, k_h, s_h, padding).0,
            pad_left: same_padding(in_w, k_w, s_w, padding).0,
            out_h,
            out_w,
        })
    }

    /// Number of output pixels over the batch: the GEMM's M.
    pub fn out_pixels(&self) -> usize {
        self.batch * self.out_h * self.out_w
    }

    /// Length of one im2col row: the GEMM's K.
    pub fn patch_len(&self) -> usize {
        self.k_h * self.k_w * self.in_c
    }

    /// Number of input values.
    pub fn input_len(&self) -> usize {
        self.batch * self.in_h * self.in_w * self.in_c
    }

    /// A 1×1 stride-1 window reads each input pixel once, in order: the
    /// input already is the im2col matrix.
    pub fn is_pointwise(&self) -> bool {
        self.k_h == 1 && self.k_w == 1 && self.s_h == 1 && self.s_w == 1
    }
}

/// Output rows per im2col tile: about 256 KiB of patches, which stays in L2
/// between being written and being read by the GEMM.
fn tile_rows(patch_len: usize) -> usize {
    let rows = (64 * 1024) / patch_len.max(1);
    rows.clamp(16, 512) / 8 * 8
}

/// Scratch values [`conv2d`] needs for `g`.
pub fn conv2d_scratch_len(g: &ConvGeometry, threads: usize) -> usize {
    let _ = threads;
    if g.is_pointwise() {
        0
    } else {
        tile_rows(g.patch_len()).min(g.out_pixels()) * g.patch_len()
    }
}

/// Writes the im2col rows of output pixels `first .. first + rows` into
/// `patches` (`rows × patch_len`), zeros where the window hangs over the
/// padding.
pub fn im2col(g: &ConvGeometry, input: &[f32], first: usize, rows: usize, patches: &mut [f32]) {
    let k = g.patch_len();
    let c = g.in_c;
    let row_span = g.k_w * c;
    for (r, patch) in patches[..rows * k].chunks_exact_mut(k).enumerate() {
        let pixel = first + r;
        let ox = pixel % g.out_w;
        let oy = (pixel / g.out_w) % g.out_h;
        let b = pixel / (g.out_w * g.out_h);
        let image = &input[b * g.in_h * g.in_w * c..(b + 1) * g.in_h * g.in_w * c];
        let x0 = (ox * g.s_w) as isize - g.pad_left as isize;
        for ky in 0..g.k_h {
            let dst = &mut patch[ky * row_span..(ky + 1) * row_span];
            let iy = (oy * g.s_h + ky) as isize - g.pad_top as isize;
            if iy < 0 || iy >= g.in_h as isize {
                dst.fill(0.0);
                continue;
            }
            let line = &image[iy as usize * g.in_w * c..(iy as usize + 1) * g.in_w * c];
            if x0 >= 0 && x0 as usize + g.k_w <= g.in_w {
                // The whole kernel row is inside: NHWC makes it one run.
                let start = x0 as usize * c;
                dst.copy_from_slice(&line[start..start + row_span]);
            } else {
                for kx in 0..g.k_w {
                    let ix = x0 + kx as isize;
                    let cell = &mut dst[kx * c..(kx + 1) * c];
                    if ix < 0 || ix >= g.in_w as isize {
                        cell.fill(0.0);
                    } else {
                        cell.copy_from_slice(&line[ix as usize * c..(ix as usize + 1) * c]);
                    }
                }
            }
        }
    }
}

/// Convolution: `output = conv(input, kernel) + bias`, NHWC in and out,
/// `kernel` HWIO (`[k_h, k_w, in_c, out_c]`).
///
/// `scratch` must hold at least [`conv2d_scratch_len`] values. `threads`
/// is how many threads may share the work (1: the calling thread only); the
/// result does not depend on it.
///
/// # Panics
/// When a slice is shorter than `g` and `out_c` say (a caller bug).
#[allow(clippy::too_many_arguments)]
pub fn conv2d(
    g: &ConvGeometry,
    input: &[f32],
    kernel: &[f32],
    bias: Option<&[f32]>,
    out_c: usize,
    output: &mut [f32],
    scratch: &mut [f32],
    threads: usize,
) {
    let _ = threads;
    let m = g.out_pixels();
    let k = g.patch_len();
    assert!(input.len() >= g.input_len(), "conv2d: input too short");
    assert!(kernel.len() >= k * out_c, "conv2d: kernel too short");
    assert!(output.len() >= m * out_c, "conv2d: output too short");
    let beta = if bias.is_some() { 1.0 } else { 0.0 };
    let tile = if g.is_pointwise() {
        m.max(1)
    } else {
        tile_rows(k)
    };
    let mut first = 0;
    while first < m {
        let rows = tile.min(m - first);
        let out_tile = &mut output[first * out_c..(first + rows) * out_c];
        if let Some(bias) = bias {
            // Bias goes in first so the GEMM accumulates onto it (beta = 1)
            // while the tile is still in cache.
            for row in out_tile.chunks_exact_mut(out_c) {
                row.copy_from_slice(&bias[..out_c]);
            }
        }
        if g.is_pointwise() {
            sgemm(rows, k, out_c, &input[first * k..], kernel, beta, out_tile);
        } else {
            let patches = &mut scratch[..rows * k];
            im2col(g, input, first, rows, patches);
            sgemm(rows, k, out_c, patches, kernel, beta, out_tile);
        }
        first += rows;
    }
}
