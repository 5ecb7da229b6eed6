//! 2-D convolution as im2col + GEMM, NHWC input, HWIO kernel.
//!
//! With the input in NHWC and the kernel in HWIO (`[kh, kw, cin, cout]`),
//! one im2col row per output pixel (`kh·kw·cin` values, in kernel order)
//! times the kernel viewed as a `(kh·kw·cin) × cout` matrix gives that
//! pixel's `cout` outputs: the GEMM writes NHWC output directly.
//!
//! The im2col matrix is never built whole: output rows are processed in
//! tiles small enough to stay in cache between the copy and the GEMM, so the
//! scratch memory is bounded whatever the batch size. A tile's bias is
//! written into its output rows just before its GEMM accumulates onto them.
//! Long patches are cut into chunks of about [`K_CHUNK`] columns, each one
//! GEMM accumulating into the same (cache-resident) output tile, so tiles
//! can stay tall whatever the patch length and `matrixmultiply` packs each
//! chunk of the kernel once per tall tile.
//!
//! [`conv2d`] picks one of five paths by the geometry ([`choose_path`]):
//! - [`ConvPath::Winograd4`] / [`ConvPath::Winograd`]: 3×3 stride 1 with
//!   enough channels, F(4×4, 3×3) or F(2×2, 3×3) (see the `winograd` module);
//! - [`ConvPath::Direct`]: short patches (few input channels), a SIMD
//!   kernel reading the input in place (see the `direct` module);
//! - [`ConvPath::Pointwise`]: 1×1 stride 1, where the input already is the
//!   im2col matrix: tiled GEMM straight on it;
//! - [`ConvPath::Im2col`]: everything else, tiled im2col + GEMM.
//!
//! Every path splits its work into units fixed by the geometry and runs them
//! on up to `threads` threads of the process's pool (see the `parallel`
//! module): the result is bitwise identical whatever the thread count.

pub(crate) mod backward;
pub(crate) mod depthwise;
pub(crate) mod direct;
#[cfg(test)]
mod tests;
pub(crate) mod winograd;

pub use super::epilogue::Epilogue;
use super::gemm::sgemm_strided;
pub use super::geometry::ConvGeometry;
use super::isa::{self, Isa};
use super::parallel;

/// Patch columns per GEMM call: `matrixmultiply` works through `k` in
/// blocks of 256, so a chunk of at most that is one pass over the tile.
pub const K_CHUNK: usize = 256;

/// Values of im2col chunk plus output tile a tile may take: the L2 cache
/// (1 MiB where this was measured), so the chunk stays there between the
/// copy and the GEMM. The same for every thread count, so results do not
/// depend on it.
fn tile_budget() -> usize {
    isa::l2_bytes() / 4
}

/// Most output rows in one tile.
const MAX_TILE_ROWS: usize = 1024;

/// The direct kernel reads its kernel block (`patch_len × 32` values) from
/// cache for every pixel block: it beats GEMM while the whole kernel stays
/// within L2 (measured on c1-c8 with 1 MiB), so this many values.
fn direct_max_weights() -> usize {
    isa::l2_bytes() / 4
}

/// Winograd needs at least this many input channels to beat the other
/// paths (its 16 GEMMs have `k = Cin`, `n = Cout`).
const WINOGRAD_MIN_C: usize = 16;

/// ... and at least this many output channels to beat the direct kernel,
/// when that fits: with fewer, Winograd's transforms, whose cost per value
/// does not shrink with the channels, outweigh the multiplies it saves.
/// Channels, not registers: on an AMD Zen 5 with AVX-512 (16 lanes) the
/// direct kernel was 1.06-1.3× faster at 16 channels and Winograd 1.2-1.5×
/// faster at 32 (batch 1, 8 and 64, 16×16 and 32×32 maps); on an AMD Zen 3
/// with AVX2 (8 lanes), 32×32 maps of 16 channels, the direct kernel was
/// 1.1× faster at batch 1, even at batch 8 and 1.3-1.5× faster at batch 64,
/// and Winograd 1.6-1.8× faster at 32 channels.
const WINOGRAD_MIN_OUT_C: usize = 32;

/// F(4×4, 3×3) is chosen over F(2×2, 3×3) while its 4×4 tiles cover at
/// most this percentage of the output area that 2×2 tiles cover.
const WINOGRAD4_MAX_EXTRA_AREA: usize = 120;

/// ... and while it has at least this many tiles: each of its 36 GEMMs has
/// one row per tile, and fewer than a register block's rows leave the
/// multiply-adds waiting on loads (an 8×8 map of 64 channels at batch 1,
/// four tiles: F(2×2) 1.2× faster; at batch 2, eight tiles: F(4×4) 1.3×
/// faster; AMD Zen 3, AVX2).
const WINOGRAD4_MIN_TILES: usize = 8;

/// How [`conv2d`] computes a convolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConvPath {
    /// Tiled im2col + GEMM.
    Im2col,
    /// Tiled GEMM straight on the input (1×1 windows at stride 1 only).
    Pointwise,
    /// The direct SIMD kernel for short patches, with this instruction set.
    Direct(Isa),
    /// Winograd F(2×2, 3×3) (3×3 windows at stride 1 only).
    Winograd,
    /// Winograd F(4×4, 3×3) (3×3 windows at stride 1 only).
    Winograd4,
}

impl ConvPath {
    /// Whether this path can compute `g` with `out_c` channels here.
    pub fn supports(self, g: &ConvGeometry, out_c: usize) -> bool {
        match self {
            ConvPath::Im2col => true,
            ConvPath::Pointwise => g.is_pointwise(),
            ConvPath::Direct(isa) => direct::fits(g, out_c, isa),
            ConvPath::Winograd | ConvPath::Winograd4 => winograd::fits(g),
        }
    }

    /// `(shared, per_thread)` scratch values this path needs for `g` with
    /// `out_c` output channels.
    fn scratch(self, g: &ConvGeometry, out_c: usize) -> (usize, usize) {
        match self {
            ConvPath::Im2col => {
                let tiled = max_tile_rows(g, 0).min(g.out_pixels()) * k_chunk(g.patch_len());
                // A small output takes whole patches when the unpacked GEMM
                // can run it (that depends on the channels too).
                let unpacked = match small_output(g) {
                    true => unpacked_unit_rows(g) * g.patch_len(),
                    false => 0,
                };
                (0, tiled.max(unpacked))
            }
            ConvPath::Pointwise => (0, 0),
            ConvPath::Direct(isa) => (
                direct::shared_scratch_len(g, out_c, isa),
                direct::scratch_len(g),
            ),
            ConvPath::Winograd => winograd::scratch_len(g, 2),
            ConvPath::Winograd4 => winograd::scratch_len(g, 4),
        }
    }

    /// How many threads this path runs `g` with `out_c` channels on when
    /// allowed `threads`: no more than it has work units, than the work
    /// pays for, or than the kernels' cap (see the `parallel` module).
    fn workers(self, g: &ConvGeometry, out_c: usize, threads: usize) -> usize {
        match self {
            ConvPath::Direct(_) => direct::workers(g, out_c, threads),
            ConvPath::Winograd => winograd::workers(g, 2, out_c, threads),
            ConvPath::Winograd4 => winograd::workers(g, 4, out_c, threads),
            ConvPath::Im2col | ConvPath::Pointwise => {
                let m = g.out_pixels();
                // No output rows: no tiles, one (idle) thread.
                let units = match small_output(g) {
                    true => unpacked_units(g),
                    false => m.div_ceil(tile_rows(g, out_c).max(1)),
                };
                let flops = parallel::flops([2, m, g.patch_len(), out_c]);
                parallel::workers(threads, units, flops)
            }
        }
    }

    /// Scratch values this path needs for `g` with `out_c` output channels
    /// on up to `threads` threads: one slice per thread it actually uses
    /// (no more than it has work units, or than its work pays for), so it
    /// follows the work, whatever `threads` asks.
    pub fn scratch_len(self, g: &ConvGeometry, out_c: usize, threads: usize) -> usize {
        let (shared, per_thread) = self.scratch(g, out_c);
        let workers = self.workers(g, out_c, threads);
        shared.saturating_add(parallel::scratch_len(workers, per_thread))
    }
}

/// The path [`conv2d`] takes for `g` with `out_c` output channels (a
/// measured rule; see BENCHMARKS.md).
pub fn choose_path(g: &ConvGeometry, out_c: usize) -> ConvPath {
    let isa = Isa::detect();
    let direct = direct::fits(g, out_c, isa) && g.patch_len() * out_c <= direct_max_weights();
    if let Some(winograd) = winograd_path(g) {
        if out_c >= WINOGRAD_MIN_OUT_C || !direct {
            return winograd;
        }
    }
    if direct {
        return ConvPath::Direct(isa);
    }
    if g.is_pointwise() {
        return ConvPath::Pointwise;
    }
    ConvPath::Im2col
}

/// The Winograd variant for `g`, if `g` is a 3×3 stride-1 window over
/// enough input channels.
fn winograd_path(g: &ConvGeometry) -> Option<ConvPath> {
    if !winograd::fits(g) || g.in_c < WINOGRAD_MIN_C {
        return None;
    }
    // F(4×4) does 1.8× fewer multiplies than F(2×2) but computes whole 4×4
    // tiles: measured 1.2-1.4× faster on c2-c5 (c2: 30×30 outputs, 14% more
    // tile area), no faster on c6 (14×14, 31% more area).
    let area = |t: usize| g.out_h.div_ceil(t) * t * g.out_w.div_ceil(t) * t;
    let four = 100 * area(4) <= WINOGRAD4_MAX_EXTRA_AREA * area(2)
        && winograd::tile_count(g, 4) >= WINOGRAD4_MIN_TILES;
    Some(if four {
        ConvPath::Winograd4
    } else {
        ConvPath::Winograd
    })
}

/// Scratch values [`conv2d`] needs for `g` with `out_c` output channels on
/// up to `threads` threads: what the path it takes needs. It does not grow
/// with the batch size once the work fills the threads, and never with
/// `threads` beyond the threads the work can use.
pub fn conv2d_scratch_len(g: &ConvGeometry, out_c: usize, threads: usize) -> usize {
    choose_path(g, out_c).scratch_len(g, out_c, threads)
}

/// Output rows up to which the im2col and pointwise paths multiply with
/// the direct kernel's unpacked GEMM instead of `matrixmultiply`: a small
/// output (batch 1, maps of 16×16 or less) cannot repay `matrixmultiply`'s
/// packing of the whole kernel, and the allocation of its packing buffer,
/// on every call (a fifth of ResNet-20's time at batch 1, profiled on an
/// AMD Zen 5 with AVX-512; the ratio of packing to multiplying is the same
/// on any machine: one pass over the kernel per output row block).
const UNPACKED_MAX_ROWS: usize = 256;

/// Output rows per unit of the unpacked GEMM (whole units: at least this
/// many rows each, or all of them in one).
const UNPACKED_UNIT_ROWS: usize = 64;

/// Whether `g`'s output is small enough for the unpacked GEMM (one channel
/// group only: its GEMM writes whole output rows).
fn small_output(g: &ConvGeometry) -> bool {
    g.groups <= 1 && g.out_pixels() <= UNPACKED_MAX_ROWS
}

/// Units of the unpacked GEMM: fixed by the geometry.
fn unpacked_units(g: &ConvGeometry) -> usize {
    (g.out_pixels() / UNPACKED_UNIT_ROWS).max(1)
}

/// The most output rows in one unit of the unpacked GEMM.
fn unpacked_unit_rows(g: &ConvGeometry) -> usize {
    g.out_pixels().div_ceil(unpacked_units(g))
}

/// The instruction set of the unpacked GEMM for `g` with `out_c`
/// channels, if it can take it: every unit a whole register block.
fn unpacked_isa(g: &ConvGeometry, out_c: usize) -> Option<Isa> {
    let isa = Isa::detect();
    let fewest_rows = g.out_pixels() / unpacked_units(g);
    (small_output(g) && direct::gemm_fits(fewest_rows, out_c, isa)).then_some(isa)
}

/// Patch columns per GEMM call for patches of `k` values: `k` cut into
/// equal chunks of at most [`K_CHUNK`].
fn k_chunk(k: usize) -> usize {
    let chunks = k.div_ceil(K_CHUNK).max(1);
    k.div_ceil(chunks)
}

/// The most output rows a tile may have for `out_c` channels: im2col chunk
/// and output tile within [`tile_budget`], a multiple of 16 (the
/// `matrixmultiply` micro-kernel's rows).
fn max_tile_rows(g: &ConvGeometry, out_c: usize) -> usize {
    let per_row = if g.is_pointwise() {
        0
    } else {
        k_chunk(g.patch_len())
    } + out_c;
    (tile_budget() / per_row.max(1)).clamp(64, MAX_TILE_ROWS) / 16 * 16
}

/// Output rows per tile: tiles of equal size (multiples of 16) no taller
/// than [`max_tile_rows`], and a multiple of four of them when there are
/// several, so two or four threads get equal shares.
fn tile_rows(g: &ConvGeometry, out_c: usize) -> usize {
    let m = g.out_pixels();
    let max = max_tile_rows(g, out_c);
    let mut tiles = m.div_ceil(max);
    if tiles > 1 {
        tiles = tiles.next_multiple_of(4).min(m.div_ceil(64));
    }
    m.div_ceil(tiles.max(1)).next_multiple_of(16).min(max)
}
/// Columns `k0 .. k0 + width` of channel group `group`'s im2col rows of
/// output pixels `first .. first + rows`, into `patches` (`rows × width`).
#[allow(clippy::too_many_arguments)]
pub(crate) fn im2col_columns(
    g: &ConvGeometry,
    group: usize,
    input: &[f32],
    first: usize,
    rows: usize,
    k0: usize,
    width: usize,
    patches: &mut [f32],
) {
    let k1 = k0 + width;
    assert!(k1 <= g.patch_len(), "im2col: columns past the patch");
    assert!(group < g.groups.max(1), "im2col: no group {group}");
    if width == 0 {
        return;
    }
    if g.d_w == 1 && g.groups == 1 {
        im2col_rows(g, input, first, rows, k0, width, patches);
    } else {
        im2col_cells(g, group, input, first, rows, k0, width, patches);
    }
}

/// The output pixel after `(b, oy, ox)`, in NHWC order.
fn next_pixel(g: &ConvGeometry, (b, oy, ox): (usize, usize, usize)) -> (usize, usize, usize) {
    if ox + 1 < g.out_w {
        (b, oy, ox + 1)
    } else if oy + 1 < g.out_h {
        (b, oy + 1, 0)
    } else {
        (b + 1, 0, 0)
    }
}

/// `(image, row, column)` of output pixel `p`.
fn pixel(g: &ConvGeometry, p: usize) -> (usize, usize, usize) {
    (
        p / (g.out_w * g.out_h),
        (p / g.out_w) % g.out_h,
        p % g.out_w,
    )
}

/// [`im2col_columns`] for windows whose rows are contiguous runs of the
/// input line (no horizontal dilation, one group): one copy per window row.
fn im2col_rows(
    g: &ConvGeometry,
    input: &[f32],
    first: usize,
    rows: usize,
    k0: usize,
    width: usize,
    patches: &mut [f32],
) {
    let c = g.in_c;
    let row_span = g.k_w * c;
    let line_len = (g.in_w * c) as isize;
    let k1 = k0 + width;
    // Window rows the columns touch.
    let ky_first = k0 / row_span;
    let ky_last = (k1 - 1) / row_span;
    let mut at = pixel(g, first);
    for patch in patches[..rows * width].chunks_exact_mut(width) {
        let (b, oy, ox) = at;
        let image = &input[b * g.in_h * g.in_w * c..(b + 1) * g.in_h * g.in_w * c];
        // Offset in the image line of the window's first column: the
        // window row is one run of `row_span` values in NHWC, possibly
        // hanging over either end of the line.
        let x0 = (ox * g.s_w) as isize * c as isize - (g.pad_left * c) as isize;
        for ky in ky_first..=ky_last {
            // This window row's columns within [k0, k1), relative to the row.
            let lo = k0.max(ky * row_span) - ky * row_span;
            let hi = k1.min((ky + 1) * row_span) - ky * row_span;
            let dst = &mut patch[ky * row_span + lo - k0..ky * row_span + hi - k0];
            let iy = (oy * g.s_h + ky * g.d_h) as isize - g.pad_top as isize;
            if iy < 0 || iy >= g.in_h as isize {
                dst.fill(0.0);
                continue;
            }
            let line = &image[iy as usize * g.in_w * c..(iy as usize + 1) * g.in_w * c];
            // Source offsets x0 + lo .. x0 + hi; the part inside the line is
            // copied, the rest is padding.
            let start = (x0 + lo as isize).clamp(0, line_len);
            let end = (x0 + hi as isize).clamp(0, line_len);
            let before = ((start - (x0 + lo as isize)) as usize).min(dst.len());
            let inside = (end - start) as usize;
            dst[..before].fill(0.0);
            dst[before..before + inside].copy_from_slice(&line[start as usize..end as usize]);
            dst[before + inside..].fill(0.0);
        }
        at = next_pixel(g, at);
    }
}

/// [`im2col_columns`] in general (dilated windows, channel groups): one
/// copy per window cell, of the group's channels.
#[allow(clippy::too_many_arguments)]
fn im2col_cells(
    g: &ConvGeometry,
    group: usize,
    input: &[f32],
    first: usize,
    rows: usize,
    k0: usize,
    width: usize,
    patches: &mut [f32],
) {
    let cg = g.group_in_c();
    let k1 = k0 + width;
    let mut at = pixel(g, first);
    for patch in patches[..rows * width].chunks_exact_mut(width) {
        let (b, oy, ox) = at;
        let mut col = k0;
        while col < k1 {
            let cell = col / cg;
            let (ky, kx) = (cell / g.k_w, cell % g.k_w);
            let end = ((cell + 1) * cg).min(k1);
            let dst = &mut patch[col - k0..end - k0];
            let iy = (oy * g.s_h + ky * g.d_h) as isize - g.pad_top as isize;
            let ix = (ox * g.s_w + kx * g.d_w) as isize - g.pad_left as isize;
            if iy < 0 || ix < 0 || iy >= g.in_h as isize || ix >= g.in_w as isize {
                dst.fill(0.0);
            } else {
                let px = ((b * g.in_h + iy as usize) * g.in_w + ix as usize) * g.in_c;
                let ch = group * cg + col - cell * cg;
                dst.copy_from_slice(&input[px + ch..px + ch + dst.len()]);
            }
            col = end;
        }
        at = next_pixel(g, at);
    }
}

/// A convolution kernel transformed once for the path that computes it
/// (Winograd's `U`, or the direct kernel's packed panels), so that calls
/// need not transform it again: a layer keeps one until its weights change
/// ([`crate::Tensor::derived`]).
#[derive(Clone, Debug)]
pub struct PreparedKernel {
    path: ConvPath,
    in_c: usize,
    out_c: usize,
    /// Values per kernel row block the panels were packed for (`k_h · k_w
    /// · in_c`): a window of another size with the same channels reads
    /// panels of another length.
    patch_len: usize,
    /// Lanes of the registers the values were packed for (0: Winograd).
    lanes: usize,
    values: Vec<f32>,
    /// Where the prepared values start in `values` (a 64-byte boundary).
    start: usize,
}

/// Output tiles up to which a prepared Winograd kernel pays (the transform
/// then costs over 1% of the convolution).
const PREPARED_MAX_TILES: usize = 512;

/// Floats in a 64-byte cache line.
const ALIGN_FLOATS: usize = 16;

impl PreparedKernel {
    /// `kernel` (HWIO, for `g` with `out_c` channels) prepared for the path
    /// [`choose_path`] takes, or `None` when that path reads the kernel as
    /// it is.
    ///
    /// # Panics
    /// When `kernel` is shorter than `g` and `out_c` say.
    pub fn new(g: &ConvGeometry, kernel: &[f32], out_c: usize) -> Option<Self> {
        Self::with_path(choose_path(g, out_c), g, kernel, out_c)
    }

    /// Whether keeping `g`'s kernel prepared for `path` (the path
    /// [`choose_path`] gives) pays. Packing for the direct kernel costs one
    /// pass over the kernel, which every call would otherwise make many
    /// times: it always pays. Winograd's per-call transform costs about
    /// `5 / tiles` of the GEMMs it feeds, so it matters for small batches
    /// and maps, while on large ones the transform written into the call's
    /// scratch was measured faster than a kept copy read back from memory
    /// (cifar at batch 64, AMD Zen 5 with AVX-512 and 1 MiB of L2: 1.06×;
    /// BENCHMARKS.md).
    pub fn pays(path: ConvPath, g: &ConvGeometry) -> bool {
        let t = match path {
            ConvPath::Winograd => 2,
            ConvPath::Winograd4 => 4,
            ConvPath::Direct(_) => return true,
            ConvPath::Im2col | ConvPath::Pointwise => return small_output(g),
        };
        winograd::tile_count(g, t) <= PREPARED_MAX_TILES
    }

    /// [`PreparedKernel::new`] for a given path: `None` for the paths that
    /// read the kernel as it is (im2col and pointwise ones whose output is
    /// too large for the unpacked GEMM), and for a path that cannot compute
    /// `g` with `out_c` channels ([`ConvPath::supports`]).
    ///
    /// # Panics
    /// As [`PreparedKernel::new`].
    pub fn with_path(
        path: ConvPath,
        g: &ConvGeometry,
        kernel: &[f32],
        out_c: usize,
    ) -> Option<Self> {
        if !path.supports(g, out_c) {
            return None;
        }
        let (lanes, prepared) = match path {
            ConvPath::Winograd => (0, winograd::transformed_kernel(2, kernel, g.in_c, out_c)),
            ConvPath::Winograd4 => (0, winograd::transformed_kernel(4, kernel, g.in_c, out_c)),
            ConvPath::Direct(isa) => {
                let lanes = isa.lanes();
                (lanes, direct::pack(kernel, g.patch_len(), out_c, lanes))
            }
            ConvPath::Im2col | ConvPath::Pointwise => {
                let lanes = unpacked_isa(g, out_c)?.lanes();
                (lanes, direct::pack(kernel, g.patch_len(), out_c, lanes))
            }
        };
        // Copied to a 64-byte boundary: the GEMMs load whole cache lines
        // of it per register, and a large allocation starts 16 bytes past
        // a page boundary, which would split every load in two.
        let mut values = vec![0.0; prepared.len() + ALIGN_FLOATS];
        let start = values
            .as_ptr()
            .align_offset(ALIGN_FLOATS * 4)
            .min(ALIGN_FLOATS);
        values[start..start + prepared.len()].copy_from_slice(&prepared);
        Some(PreparedKernel {
            path,
            in_c: g.in_c,
            out_c,
            patch_len: g.patch_len(),
            lanes,
            values,
            start,
        })
    }

    /// The prepared values if they serve `path` for `g` with `out_c`
    /// channels.
    fn for_path(&self, path: ConvPath, g: &ConvGeometry, out_c: usize) -> Option<&[f32]> {
        let lanes_match = match path {
            ConvPath::Im2col | ConvPath::Pointwise => {
                unpacked_isa(g, out_c).is_some_and(|isa| isa.lanes() == self.lanes)
            }
            _ => true,
        };
        let shape = (self.in_c, self.patch_len, self.out_c) == (g.in_c, g.patch_len(), out_c);
        (self.path == path && shape && lanes_match).then_some(&self.values[self.start..])
    }
}

/// What a caller may add to a convolution (see [`conv2d_then`]).
#[derive(Clone, Copy, Debug, Default)]
pub struct ConvExtras<'a> {
    /// The kernel prepared for the path (ignored when it was prepared for
    /// another path or shape).
    pub prepared: Option<&'a PreparedKernel>,
    /// Applied to each piece of output right after it is computed.
    pub epilogue: Epilogue<'a>,
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
    conv2d_then(
        g,
        input,
        kernel,
        bias,
        out_c,
        output,
        scratch,
        threads,
        ConvExtras::default(),
    );
}

/// [`conv2d`] with a prepared kernel and an epilogue: `output =
/// epilogue(conv(input, kernel) + bias)`, the epilogue run on each piece
/// of output while it is in cache.
///
/// # Panics
/// As [`conv2d`].
#[allow(clippy::too_many_arguments)]
pub fn conv2d_then(
    g: &ConvGeometry,
    input: &[f32],
    kernel: &[f32],
    bias: Option<&[f32]>,
    out_c: usize,
    output: &mut [f32],
    scratch: &mut [f32],
    threads: usize,
    extras: ConvExtras<'_>,
) {
    let path = choose_path(g, out_c);
    conv2d_with(
        path, g, input, kernel, bias, out_c, output, scratch, threads, extras,
    );
}

/// [`conv2d_then`] along a given path (the tests run every path). `scratch`
/// must hold [`ConvPath::scratch_len`] values.
///
/// # Panics
/// When there is output to compute and the path does not support `g` and
/// `out_c` ([`ConvPath::supports`]), when a size of `g` overflows `usize`,
/// or when a slice is too short.
#[allow(clippy::too_many_arguments)]
pub fn conv2d_with(
    path: ConvPath,
    g: &ConvGeometry,
    input: &[f32],
    kernel: &[f32],
    bias: Option<&[f32]>,
    out_c: usize,
    output: &mut [f32],
    scratch: &mut [f32],
    threads: usize,
    extras: ConvExtras<'_>,
) {
    let args = Args {
        g,
        input,
        kernel,
        bias,
        out_c,
        extras,
    };
    args.run(path, output, scratch, threads);
}

impl Args<'_> {
    /// The im2col and pointwise paths on a small output (see
    /// [`unpacked_isa`]): each unit's whole patches, then one unpacked GEMM
    /// onto the bias, with the epilogue.
    fn unpacked(
        &self,
        path: ConvPath,
        isa: Isa,
        output: &mut [f32],
        scratch: &mut [f32],
        threads: usize,
    ) {
        let Args {
            g,
            input,
            bias,
            out_c,
            extras,
            ..
        } = *self;
        let (m, k, units) = (g.out_pixels(), g.patch_len(), unpacked_units(g));
        let mut rest = &mut output[..m * out_c];
        let mut done = 0;
        let work = (0..units).map(move |u| {
            let end = (u + 1) * m / units;
            let (mine, tail) = std::mem::take(&mut rest).split_at_mut((end - done) * out_c);
            let first = std::mem::replace(&mut done, end);
            rest = tail;
            (first, mine)
        });
        let per_thread = path.scratch(g, out_c).1;
        let workers = path.workers(g, out_c, threads);
        let b = self.weights(path);
        parallel::run(
            workers,
            work,
            scratch,
            per_thread,
            |(first, out), patches| {
                let rows = out.len() / out_c;
                let a: &[f32] = if path == ConvPath::Pointwise {
                    &input[first * k..(first + rows) * k]
                } else {
                    im2col_columns(g, 0, input, first, rows, 0, k, &mut patches[..rows * k]);
                    &patches[..rows * k]
                };
                direct::gemm_weights(isa, (rows, k, out_c), a, b, bias, extras.epilogue, out);
            },
        );
    }
}

impl<'a> Args<'a> {
    /// The kernel as the direct kernel's blocks read it on `path`: packed
    /// when the caller prepared it so, else as given.
    fn weights(&self, path: ConvPath) -> direct::Weights<'a> {
        let prepared = self.extras.prepared;
        match prepared.and_then(|p| p.for_path(path, self.g, self.out_c)) {
            Some(panels) => direct::Weights::Panels(panels),
            None => direct::Weights::Rows(self.kernel),
        }
    }
}

/// One convolution's operands, for every path.
struct Args<'a> {
    g: &'a ConvGeometry,
    input: &'a [f32],
    kernel: &'a [f32],
    bias: Option<&'a [f32]>,
    out_c: usize,
    extras: ConvExtras<'a>,
}

impl Args<'_> {
    /// Checks the sizes, then computes along `path`.
    fn run(&self, path: ConvPath, output: &mut [f32], scratch: &mut [f32], threads: usize) {
        let Args {
            g,
            input,
            kernel,
            bias,
            out_c,
            extras,
        } = *self;
        // Checked first: every size computed below is at most one of these.
        let (input_len, kernel_len, output_len) = g
            .checked_lens(out_c)
            .unwrap_or_else(|| panic!("conv2d: the sizes of {g:?} overflow usize"));
        assert!(input.len() >= input_len, "conv2d: input too short");
        assert!(
            out_c.is_multiple_of(g.groups.max(1)),
            "conv2d: {out_c} output channels in {} groups",
            g.groups
        );
        assert!(kernel.len() >= kernel_len, "conv2d: kernel too short");
        assert!(output.len() >= output_len, "conv2d: output too short");
        if let Some(b) = bias {
            assert!(b.len() >= out_c, "conv2d: bias too short");
        }
        // Nothing to compute (an empty batch, no filters): every path agrees.
        if output_len == 0 {
            return;
        }
        assert!(
            path.supports(g, out_c),
            "conv2d: {path:?} cannot compute {g:?}"
        );
        let epilogue = extras.epilogue;
        let then = winograd::Then {
            transformed: extras.prepared.and_then(|p| p.for_path(path, g, out_c)),
            epilogue,
        };
        match path {
            ConvPath::Direct(isa) => {
                let kernel = self.weights(path);
                direct::conv2d(
                    g, input, kernel, bias, out_c, output, scratch, threads, isa, epilogue,
                )
            }
            ConvPath::Winograd => winograd::conv2d(
                2, g, input, kernel, bias, out_c, output, scratch, threads, then,
            ),
            ConvPath::Winograd4 => winograd::conv2d(
                4, g, input, kernel, bias, out_c, output, scratch, threads, then,
            ),
            ConvPath::Im2col | ConvPath::Pointwise => {
                tiled_gemm(self, path, output, scratch, threads)
            }
        }
    }
}

/// The im2col and pointwise paths: output rows in tiles of [`tile_rows`],
/// each tile's patches in chunks of [`k_chunk`] columns, one GEMM per
/// channel group and chunk (on a small output, [`Args::unpacked`]).
fn tiled_gemm(
    args: &Args<'_>,
    path: ConvPath,
    output: &mut [f32],
    scratch: &mut [f32],
    threads: usize,
) {
    let &Args {
        g,
        input,
        kernel,
        bias,
        out_c,
        extras,
    } = args;
    if let Some(isa) = unpacked_isa(g, out_c) {
        return args.unpacked(path, isa, output, scratch, threads);
    }
    let epilogue = extras.epilogue;
    let m = g.out_pixels();
    let k = g.patch_len();
    let groups = g.groups.max(1);
    // Channels of one group: the input's (a 1x1 patch), the output's.
    let (cg, og) = (g.group_in_c(), out_c / groups);
    let pointwise = path == ConvPath::Pointwise;
    let tile = tile_rows(g, out_c);
    let kc = k_chunk(k);
    let per_thread = path.scratch(g, out_c).1;
    let workers = path.workers(g, out_c, threads);
    let tiles = output[..m * out_c].chunks_mut(tile * out_c).enumerate();
    parallel::run(
        workers,
        tiles,
        scratch,
        per_thread,
        |(t, out_tile), patches| {
            let first = t * tile;
            let rows = out_tile.len() / out_c;
            let mut beta0 = 0.0;
            if let Some(bias) = bias {
                // Bias goes in first so the GEMM accumulates onto it (beta = 1)
                // while the tile is still in cache.
                for row in out_tile.chunks_exact_mut(out_c) {
                    row.copy_from_slice(&bias[..out_c]);
                }
                beta0 = 1.0;
            }
            for group in 0..groups {
                let c_tile = &mut out_tile[group * og..];
                let mut beta = beta0;
                let mut k0 = 0;
                while k0 < k {
                    let width = kc.min(k - k0);
                    let b = &kernel[k0 * out_c + group * og..(k0 + width) * out_c];
                    if pointwise {
                        let a = &input[first * g.in_c + group * cg + k0..(first + rows) * g.in_c];
                        sgemm_strided(rows, width, og, a, g.in_c, b, out_c, beta, c_tile, out_c);
                    } else {
                        let a = &mut patches[..rows * width];
                        im2col_columns(g, group, input, first, rows, k0, width, a);
                        sgemm_strided(rows, width, og, a, width, b, out_c, beta, c_tile, out_c);
                    }
                    beta = 1.0;
                    k0 += width;
                }
            }
            epilogue.apply(out_tile, out_c);
        },
    );
}
