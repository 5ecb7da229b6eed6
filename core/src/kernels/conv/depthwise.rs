//! Depthwise convolution: each input channel convolved with its own
//! `m` filters (Keras's `DepthwiseConv2D`, PyTorch's `Conv2d` with
//! `groups = in_c`), NHWC in and out.
//!
//! A depthwise convolution does `kh·kw` multiply-adds per output value, so
//! it is bound by memory, not arithmetic: im2col would copy every input
//! value `kh·kw` times to feed a GEMM with one column per group. This
//! kernel reads the input in place instead: for each output row, each
//! window cell adds `input pixel ⊙ kernel cell` to every output pixel of
//! the row it reaches, with the channel axis innermost, so each step is one
//! contiguous vector operation over the channels.
//!
//! With one filter per channel (`m = 1`, MobileNet's case) and a SIMD
//! instruction set, a register-blocked kernel does the work instead (see
//! [`blocked_row`]): a block of up to 12 output pixels × a register of
//! channels stays in registers across the whole window, so each output
//! value is stored once, and each input vector is loaded once per window
//! row for all the cells of the block that read it.
//!
//! The geometry is a [`ConvGeometry`] with `groups == in_c` (one group per
//! channel); the kernel is `[k_h, k_w, in_c · m]` (HWIO with one input
//! channel per group), output channel `c · m + k` coming from input channel
//! `c`. Forward work is split by output rows and backward work by fixed
//! groups of images (the kernel and bias gradients are summed per group,
//! then the groups in order), so results do not depend on the thread count.

use super::ConvGeometry;
use crate::kernels::epilogue::{Epilogue, InRegisters, Loaded};
use crate::kernels::isa::{dispatch, l2_bytes, Isa, Kernel, Scalar, Simd};
use crate::kernels::parallel;

/// Most image groups the backward pass splits a batch into.
const MAX_IMAGE_GROUPS: usize = 8;

/// Output rows per unit of forward work: enough to outweigh the queue.
const ROWS_PER_UNIT: usize = 4;

/// `out += x ⊙ w` per output channel `c · m + k` (input channel `c`): the
/// inner step of the portable forward pass and of the backward pass, one
/// output pixel and one window cell.
#[inline]
fn multiply_add(m: usize, x: &[f32], w: &[f32], out: &mut [f32]) {
    if m == 1 {
        for ((o, &x), &w) in out.iter_mut().zip(x).zip(w) {
            *o += x * w;
        }
    } else {
        for ((o, &x), w) in out.chunks_exact_mut(m).zip(x).zip(w.chunks_exact(m)) {
            for (o, &w) in o.iter_mut().zip(w) {
                *o += x * w;
            }
        }
    }
}

/// The output columns `lo..hi` whose window cell at offset `offset`
/// (`kx · d_w - pad_left`) lands inside a line of `in_w` input columns.
fn columns_inside(g: &ConvGeometry, offset: isize) -> (usize, usize) {
    let s = g.s_w as isize;
    let lo = if offset >= 0 {
        0
    } else {
        (-offset + s - 1) / s
    };
    let room = g.in_w as isize - offset;
    let hi = if room <= 0 { 0 } else { (room + s - 1) / s };
    let hi = (hi as usize).min(g.out_w);
    ((lo as usize).min(hi), hi)
}

/// The input row of output row `oy` under window row `ky`, if inside.
fn input_row(g: &ConvGeometry, oy: usize, ky: usize) -> Option<usize> {
    let iy = (oy * g.s_h + ky * g.d_h) as isize - g.pad_top as isize;
    (iy >= 0 && iy < g.in_h as isize).then_some(iy as usize)
}

/// The input column of output column `ox` at window offset `offset`.
fn input_column(g: &ConvGeometry, ox: usize, offset: isize) -> usize {
    (ox as isize * g.s_w as isize + offset) as usize
}

/// The window cells `lo..hi` (of `k`, `d` apart) that land inside `0..len`
/// when the window starts at `start - pad`: a contiguous range, as the
/// position grows with the cell.
fn cells_inside(start: usize, pad: usize, k: usize, d: usize, len: usize) -> (usize, usize) {
    // Cell `i` is inside when `pad - start <= i · d < len + pad - start`.
    let lo = pad.saturating_sub(start).div_ceil(d).min(k);
    let hi = (len + pad).saturating_sub(start).div_ceil(d).min(k);
    (lo, hi.max(lo))
}

fn check_geometry(g: &ConvGeometry, m: usize) {
    assert!(
        g.groups == g.in_c && m >= 1,
        "depthwise: {g:?} is not one group per channel, or m = {m}"
    );
}

/// Depthwise convolution: `output = depthwise(input, kernel) + bias`, NHWC,
/// `m` output channels per input channel, `kernel` `[k_h, k_w, in_c · m]`.
/// `threads` may share the work; the result does not depend on it.
///
/// # Panics
/// When `g` is not one group per channel, or a slice is shorter than `g`
/// and `m` say (a caller bug).
#[cfg(test)]
#[allow(clippy::too_many_arguments)]
pub fn depthwise_conv2d(
    g: &ConvGeometry,
    m: usize,
    input: &[f32],
    kernel: &[f32],
    bias: Option<&[f32]>,
    output: &mut [f32],
    threads: usize,
) {
    depthwise_conv2d_then(g, m, input, kernel, bias, output, threads, Epilogue::NONE);
}

/// [`depthwise_conv2d`], then `epilogue` on each output row (`out_w`
/// pixels of `in_c · m` channels) right after the row is computed, while
/// it is in cache. The result equals applying `epilogue` to the whole
/// output afterwards, bitwise.
///
/// # Panics
/// As [`depthwise_conv2d`], and when an epilogue step has fewer than
/// `in_c · m` channel values.
#[allow(clippy::too_many_arguments)]
pub fn depthwise_conv2d_then(
    g: &ConvGeometry,
    m: usize,
    input: &[f32],
    kernel: &[f32],
    bias: Option<&[f32]>,
    output: &mut [f32],
    threads: usize,
    epilogue: Epilogue<'_>,
) {
    let forward = Forward {
        g,
        m,
        input,
        kernel,
        bias,
        epilogue,
    };
    forward.run(output, threads, RowPath::choose(m, Isa::detect()));
}

/// How [`Forward`] computes its rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RowPath {
    /// Slice code the compiler vectorises: any `m`, any target.
    Portable,
    /// [`blocked_row`] compiled for this instruction set (`Isa::None`: its
    /// one-lane instance), `m = 1` only.
    Blocked(Isa),
}

impl RowPath {
    /// The blocked kernel where it applies and has vectors; without SIMD
    /// its one-lane form loses to the compiler's vectorised slice code.
    fn choose(m: usize, isa: Isa) -> Self {
        if m == 1 && isa != Isa::None {
            RowPath::Blocked(isa)
        } else {
            RowPath::Portable
        }
    }
}

/// The operands of one forward call.
struct Forward<'a> {
    g: &'a ConvGeometry,
    m: usize,
    input: &'a [f32],
    kernel: &'a [f32],
    bias: Option<&'a [f32]>,
    epilogue: Epilogue<'a>,
}

impl Forward<'_> {
    /// Computes every output row on up to `threads` threads, by `path`.
    fn run(&self, output: &mut [f32], threads: usize, path: RowPath) {
        let g = self.g;
        check_geometry(g, self.m);
        assert!(
            path == RowPath::Portable || self.m == 1,
            "depthwise: the blocked kernel needs m = 1"
        );
        let oc = g.in_c * self.m;
        let row_len = g.out_w * oc;
        let rows = g.batch * g.out_h;
        let (input_len, kernel_len, output_len) = g
            .checked_lens(oc)
            .expect("depthwise: a size overflows usize");
        assert!(self.input.len() >= input_len, "depthwise: input too short");
        assert!(
            self.kernel.len() >= kernel_len,
            "depthwise: kernel too short"
        );
        assert!(output.len() >= output_len, "depthwise: output too short");
        if let Some(b) = self.bias {
            assert!(b.len() >= oc, "depthwise: bias too short");
        }
        if output_len == 0 {
            return;
        }
        // The blocked kernel applies the epilogue's affine and clamp steps
        // to its accumulators; the rest runs on each stored row.
        let (regs, rest) = match path {
            RowPath::Blocked(_) => self.epilogue.split_registers(),
            RowPath::Portable => (InRegisters::default(), self.epilogue),
        };
        assert!(
            regs.covers(oc),
            "depthwise: fewer epilogue factors than {oc} channels"
        );
        let flops = parallel::flops([2, rows, row_len, g.k_h, g.k_w]);
        let units = output[..output_len].chunks_mut(ROWS_PER_UNIT * row_len);
        let workers = parallel::workers(threads, rows.div_ceil(ROWS_PER_UNIT), flops);
        parallel::run(workers, units.enumerate(), &mut [], 0, |(u, band), _| {
            for (r, out_row) in band.chunks_exact_mut(row_len).enumerate() {
                let row = u * ROWS_PER_UNIT + r;
                match path {
                    RowPath::Portable => self.portable_row(row, out_row),
                    RowPath::Blocked(isa) => dispatch(
                        isa,
                        BlockedRow {
                            f: self,
                            regs,
                            row,
                            out_row,
                        },
                    ),
                }
                rest.apply(out_row, oc);
            }
        });
    }

    /// One output row (`row` = image · out_h + oy), by slices.
    fn portable_row(&self, row: usize, out_row: &mut [f32]) {
        let (g, m) = (self.g, self.m);
        let (c, oc) = (g.in_c, g.in_c * m);
        let (b, oy) = (row / g.out_h, row % g.out_h);
        match self.bias {
            Some(bias) => out_row
                .chunks_exact_mut(oc)
                .for_each(|o| o.copy_from_slice(&bias[..oc])),
            None => out_row.fill(0.0),
        }
        for ky in 0..g.k_h {
            let Some(iy) = input_row(g, oy, ky) else {
                continue;
            };
            let line = &self.input[(b * g.in_h + iy) * g.in_w * c..][..g.in_w * c];
            for kx in 0..g.k_w {
                let w = &self.kernel[(ky * g.k_w + kx) * oc..][..oc];
                let offset = (kx * g.d_w) as isize - g.pad_left as isize;
                let (lo, hi) = columns_inside(g, offset);
                for ox in lo..hi {
                    let ix = input_column(g, ox, offset);
                    multiply_add(m, &line[ix * c..][..c], w, &mut out_row[ox * oc..][..oc]);
                }
            }
        }
    }
}

/// One output row of a forward call with `m = 1`, run by [`dispatch`].
struct BlockedRow<'a, 'b> {
    f: &'b Forward<'a>,
    regs: InRegisters<'a>,
    row: usize,
    out_row: &'b mut [f32],
}

impl Kernel for BlockedRow<'_, '_> {
    type Output = ();

    #[inline(always)]
    fn run<S: Simd>(self, s: S) {
        // Fewer channels than lanes: one lane at a time (the same
        // arithmetic, so the same values).
        if self.f.g.in_c < S::LANES {
            return blocked_row(Scalar, self.f, self.regs, self.row, self.out_row);
        }
        blocked_row(s, self.f, self.regs, self.row, self.out_row)
    }
}

/// What every block of one output row reads.
struct RowOperands<'a> {
    g: &'a ConvGeometry,
    /// The row's image, `in_h × in_w × in_c`.
    image: &'a [f32],
    kernel: &'a [f32],
    bias: Option<&'a [f32]>,
    /// Applied to each block before it is stored.
    regs: InRegisters<'a>,
    /// The output row.
    oy: usize,
    /// The window rows that land inside the image.
    ky: (usize, usize),
    /// The image rows the next output row reads and this one does not,
    /// asked for block by block ahead of their use (see [`rows_ahead`]).
    ahead: &'a [f32],
}

/// One output row with `m = 1`, in blocks of pixels × registers of
/// channels (see [`accumulate`]). The interior columns, whose whole window
/// lies inside the image, go in blocks of [`block_pixels`] (or half as
/// many pixels and two registers, see [`halves`]), the last block
/// overlapping its neighbour rather than running short (recomputed values
/// are the same values); the border columns one pixel at a time, over the
/// window cells that land inside. Every value is the bias (or 0) plus
/// `x · w` for each cell inside, fused, in window order, whichever block
/// computes it, so all instruction sets give the same bits.
#[inline(always)]
fn blocked_row<S: Simd>(s: S, f: &Forward<'_>, regs: InRegisters<'_>, row: usize, out: &mut [f32]) {
    let g = f.g;
    let (b, oy) = (row / g.out_h, row % g.out_h);
    let image_len = g.in_h * g.in_w * g.in_c;
    let image = &f.input[b * image_len..][..image_len];
    let r = RowOperands {
        g,
        image,
        ahead: rows_ahead(g, oy, image, l2_bytes()),
        kernel: &f.kernel[..g.k_h * g.k_w * g.in_c],
        bias: f.bias.map(|b| &b[..g.in_c]),
        regs,
        oy,
        ky: cells_inside(oy * g.s_h, g.pad_top, g.k_h, g.d_h, g.in_h),
    };
    let (interior, pixels_per_block, regs) = interior_plan::<S>(g);
    let wide = |regs: usize| g.in_c >= regs * S::LANES;
    for ox in (0..g.out_w).filter(|ox| !interior.contains(ox)) {
        let cells = cells_inside(ox * g.s_w, g.pad_left, g.k_w, g.d_w, g.in_w);
        // One pixel has few accumulators: several registers of channels
        // give the core independent work.
        if wide(BORDER_REGISTERS) {
            pixels::<S, 1, BORDER_REGISTERS, 0, 0>(s, &r, ox, cells, &[], out);
        } else {
            pixels::<S, 1, 1, 0, 0>(s, &r, ox, cells, &[], out);
        }
    }
    match (pixels_per_block, regs) {
        (12, 1) => interior_blocks::<S, 12, 1>(s, &r, interior, out),
        (8, 1) => interior_blocks::<S, 8, 1>(s, &r, interior, out),
        (4, 1) => interior_blocks::<S, 4, 1>(s, &r, interior, out),
        (6, 2) => interior_blocks::<S, 6, 2>(s, &r, interior, out),
        (4, 2) => interior_blocks::<S, 4, 2>(s, &r, interior, out),
        (NARROW_PIXELS, NARROW_REGISTERS) => {
            interior_blocks::<S, NARROW_PIXELS, NARROW_REGISTERS>(s, &r, interior, out)
        }
        (NARROW_PIXELS, 1) => interior_blocks::<S, NARROW_PIXELS, 1>(s, &r, interior, out),
        _ => {}
    }
}

/// The input rows output row `oy + 1` of the same image reads and row
/// `oy` does not (none for the last row), for a window of stride 2 or more
/// over an image of more than four times `l2` bytes. Read for the first
/// time by the next row's blocks, in their order (each pixel's channels a
/// register at a time, the window's pixels on separate cache lines), such
/// rows come from memory at a pace the hardware prefetchers do not set;
/// asked for in order one row early, they are in cache by then.
/// MobileNetV2's 112×112×96 stride-2 layer (4.8 MB, two new rows per
/// output row) ran 1.5× faster so on AMD Zen 3 (512 KiB L2); its stride-2
/// layers on images of 1-4 times L2, which the layer before has just
/// written to L3, ran 20% slower with the hints, and its stride-1 layers
/// (one new row per output row) gained nothing: they get none.
fn rows_ahead<'a>(g: &ConvGeometry, oy: usize, image: &'a [f32], l2: usize) -> &'a [f32] {
    if oy + 1 >= g.out_h
        || g.k_h == 0
        || g.s_h < 2
        || std::mem::size_of_val(image) <= l2.saturating_mul(4)
    {
        return &[];
    }
    // In padded rows: past this row's window, to the next window's end.
    let reach = (g.k_h - 1) * g.d_h;
    let from = (oy * g.s_h + reach + 1).max((oy + 1) * g.s_h);
    let to = (oy + 1) * g.s_h + reach + 1;
    let first = from.saturating_sub(g.pad_top).min(g.in_h);
    let end = to.saturating_sub(g.pad_top).min(g.in_h);
    let row = g.in_w * g.in_c;
    image.get(first * row..end * row).unwrap_or(&[])
}

/// The interior columns of every output row (whose whole window lies
/// inside the image), and the pixels and registers of channels of the
/// blocks that cover them; no interior when it is narrower than a block.
fn interior_plan<S: Simd>(g: &ConvGeometry) -> (std::ops::Range<usize>, usize, usize) {
    // The first cell's column is inside from `lo` on, the last cell's
    // column up to `hi`.
    let lo = columns_inside(g, -(g.pad_left as isize)).0;
    let last = (g.k_w.saturating_sub(1) * g.d_w) as isize - g.pad_left as isize;
    let hi = columns_inside(g, last).1;
    let wide = g.in_c >= NARROW_REGISTERS * S::LANES;
    let p = block_pixels::<S>();
    match hi.saturating_sub(lo) {
        n if n >= p && halves(p, S::LANES, g.in_c, n) => (lo..hi, p / 2, 2),
        n if n >= p => (lo..hi, p, 1),
        n if n >= NARROW_PIXELS && wide => (lo..hi, NARROW_PIXELS, NARROW_REGISTERS),
        n if n >= NARROW_PIXELS => (lo..hi, NARROW_PIXELS, 1),
        _ => (0..0, 0, 0),
    }
}

/// Whether `n` interior columns of `in_c` channels go in blocks of `p / 2`
/// pixels × two registers of `lanes` rather than `p` pixels × one: as many
/// accumulators, taken when they recompute fewer overlapped pixels (a
/// 14-wide map's 12 interior columns are two overlapping 8-pixel blocks,
/// 16 pixels computed, or three 4-pixel ones: 1.2× faster on AVX2, AMD
/// Zen 3).
fn halves(p: usize, lanes: usize, in_c: usize, n: usize) -> bool {
    p >= 8 && in_c >= 2 * lanes && n.next_multiple_of(p / 2) < n.next_multiple_of(p)
}

/// Pixels per interior block of [`blocked_row`]: as many accumulators as
/// leave registers for the kernel vectors and the loads (16 registers on
/// AVX2, 32 on AVX-512 and NEON).
const fn block_pixels<S: Simd>() -> usize {
    match S::LANES {
        8 => 8,
        1 => 4,
        _ => 12,
    }
}

/// Pixels per interior block when the interior is narrower than
/// [`block_pixels`] (MobileNet's last 7×7 layers): few, so that overlapping
/// blocks recompute little...
const NARROW_PIXELS: usize = 2;

/// ... and registers of channels per such block, for independent work.
const NARROW_REGISTERS: usize = 4;

/// Registers of channels per border pixel.
const BORDER_REGISTERS: usize = 4;

/// The interior columns `range` (at least `P`) of a row in blocks of `P`
/// pixels × `R` registers, the last one overlapping its neighbour. Common
/// window widths and strides get code of their own: with the offsets
/// constant, each input vector is loaded once for all the window cells
/// that reach it.
#[inline(always)]
fn interior_blocks<S: Simd, const P: usize, const R: usize>(
    s: S,
    r: &RowOperands<'_>,
    range: std::ops::Range<usize>,
    out: &mut [f32],
) {
    let g = r.g;
    let all = (0, g.k_w);
    // The rows ahead, one share per block, in whole cache lines.
    let share = r.ahead.len().div_ceil(range.len().div_ceil(P).max(1));
    let mut ahead = r.ahead.chunks(share.next_multiple_of(16).max(16));
    let mut ox = range.start;
    while ox < range.end {
        let part = ahead.next().unwrap_or(&[]);
        let first = ox.min(range.end - P);
        match (g.k_w, g.s_w, g.d_w) {
            (3, 1, 1) => pixels::<S, P, R, 3, 1>(s, r, first, all, part, out),
            (3, 2, 1) => pixels::<S, P, R, 3, 2>(s, r, first, all, part, out),
            (5, 1, 1) => pixels::<S, P, R, 5, 1>(s, r, first, all, part, out),
            (5, 2, 1) => pixels::<S, P, R, 5, 2>(s, r, first, all, part, out),
            _ => pixels::<S, P, R, 0, 0>(s, r, first, all, part, out),
        }
        ox += P;
    }
}

/// `P` output pixels from `ox0`, every channel, over window columns
/// `kx.0..kx.1`: `R` registers of channels at a time (at least that many
/// channels), the last block overlapping its neighbour when the channels
/// are not a whole number of blocks. `KW` and `SW`, unless 0, are the
/// window width and stride, known when compiled (then with no dilation
/// and every window column).
#[inline(always)]
fn pixels<S: Simd, const P: usize, const R: usize, const KW: usize, const SW: usize>(
    s: S,
    r: &RowOperands<'_>,
    ox0: usize,
    kx: (usize, usize),
    ahead: &[f32],
    out: &mut [f32],
) {
    let (c, width) = (r.g.in_c, R * S::LANES);
    check_block(r, ox0, P, kx, width, out.len());
    // The block's share of the rows ahead, spread over its channel groups.
    let groups = c.div_ceil(width);
    let per = ahead.len().div_ceil(groups).next_multiple_of(16).max(16);
    let mut ahead = ahead.chunks(per);
    assert!(
        KW == 0 || (kx == (0, KW) && r.g.s_w == SW && r.g.d_w == 1),
        "depthwise: a {KW}-wide stride-{SW} block on {:?}",
        r.g
    );
    let mut j = 0;
    while j < c {
        let j0 = j.min(c - width);
        // SAFETY: `check_block` proved the block of `P` pixels from `ox0`
        // over window columns `kx` and window rows `r.ky` in bounds for the
        // last `width` channels, `j0 <= c - width`, and the window shape is
        // `r.g`'s, as asserted above.
        unsafe { accumulate::<S, P, R, KW, SW>(s, r, ox0, kx, j0, out) };
        for line in ahead.next().unwrap_or(&[]).chunks(16) {
            s.prefetch_l2(line.as_ptr());
        }
        j += width;
    }
}

/// Checks that `p` pixels from `ox0` over window cells `r.ky × kx` read
/// inside the image and the kernel, channels `c - width .. c` inside the
/// bias, and write inside an output of `out_len` values, in arithmetic
/// that cannot wrap ([`accumulate`] relies on it).
fn check_block(
    r: &RowOperands<'_>,
    ox0: usize,
    p: usize,
    (kx0, kx1): (usize, usize),
    width: usize,
    out_len: usize,
) {
    let g = r.g;
    let reads = (r.ky.0 < r.ky.1 && kx0 < kx1).then_some(((r.ky.0, r.ky.1), (kx0, kx1)));
    let ok = || -> Option<bool> {
        let c = g.in_c;
        let last_pixel = ox0.checked_add(p.checked_sub(1)?)?;
        let mut inside = c >= width && out_len >= last_pixel.checked_add(1)?.checked_mul(c)?;
        inside &= r.bias.is_none_or(|b| b.len() >= c) && r.regs.covers(c);
        if let Some(((ky0, ky1), (kx0, kx1))) = reads {
            let top = (r.oy.checked_mul(g.s_h)?).checked_add(ky0.checked_mul(g.d_h)?)?;
            let bottom = (r.oy.checked_mul(g.s_h)?).checked_add((ky1 - 1).checked_mul(g.d_h)?)?;
            let left = (ox0.checked_mul(g.s_w)?).checked_add(kx0.checked_mul(g.d_w)?)?;
            let right =
                (last_pixel.checked_mul(g.s_w)?).checked_add((kx1 - 1).checked_mul(g.d_w)?)?;
            let image = g.in_h.checked_mul(g.in_w)?.checked_mul(c)?;
            let cells = g.k_h.checked_mul(g.k_w)?.checked_mul(c)?;
            inside &= top >= g.pad_top && bottom < g.in_h.checked_add(g.pad_top)?;
            inside &= left >= g.pad_left && right < g.in_w.checked_add(g.pad_left)?;
            inside &= ky1 <= g.k_h && kx1 <= g.k_w;
            inside &= r.image.len() >= image && r.kernel.len() >= cells;
        }
        Some(inside)
    };
    assert!(
        ok() == Some(true),
        "depthwise: a block of {p} pixels from column {ox0} reaches outside its slices"
    );
}

/// `P` output pixels from `ox0` × channels `j0 .. j0 + R · LANES`: the
/// accumulators start from the bias and stay in registers across window
/// rows `r.ky` and columns `kx.0..kx.1`; each cell loads `R` kernel
/// vectors and `R` input vectors per pixel (fewer when `KW` makes the
/// offsets constant: pixels whose cells reach the same column share the
/// load).
///
/// # Safety
/// [`check_block`] must hold for these pixels and window cells with
/// `width = R · LANES`, and `j0 <= in_c - R · LANES`; unless `KW` is 0,
/// the geometry must have `k_w = KW`, `s_w = SW`, `d_w = 1` and `kx` be
/// `(0, KW)`.
#[inline(always)]
unsafe fn accumulate<S: Simd, const P: usize, const R: usize, const KW: usize, const SW: usize>(
    s: S,
    r: &RowOperands<'_>,
    ox0: usize,
    kx: (usize, usize),
    j0: usize,
    out: &mut [f32],
) {
    let (g, c, lanes) = (r.g, r.g.in_c, S::LANES);
    let (kx0, kx1) = if KW == 0 { kx } else { (0, KW) };
    let (s_w, d_w) = if KW == 0 { (g.s_w, g.d_w) } else { (SW, 1) };
    // SAFETY: `check_block` proved, for every window row `ky` in `r.ky`
    // and column `kx` in `kx0..kx1`, that input row `oy·s_h + ky·d_h -
    // pad_top` and columns `(ox0 + p)·s_w + kx·d_w - pad_left` (p < P) lie
    // inside the image, so the `R · LANES` floats from channel `j0 <= c -
    // R · LANES` are inside `r.image`; kernel cells `ky·k_w + kx` inside
    // `r.kernel`; the bias's and the epilogue factors' `c` values and the
    // output's `(ox0 + P)·c`.
    unsafe {
        let mut init = [s.zero(); R];
        if let Some(b) = r.bias {
            for (i, v) in init.iter_mut().enumerate() {
                *v = s.load(b.as_ptr().add(j0 + i * lanes));
            }
        }
        let mut acc = [init; P];
        let step = s_w * c;
        for ky in r.ky.0..r.ky.1 {
            let iy = r.oy * g.s_h + ky * g.d_h - g.pad_top;
            let line = r.image.as_ptr().add(iy * g.in_w * c + j0);
            let w_row = r.kernel.as_ptr().add(ky * g.k_w * c + j0);
            for kx in kx0..kx1 {
                let w_cell = w_row.add(kx * c);
                let w: [S::V; R] = std::array::from_fn(|i| s.load(w_cell.add(i * lanes)));
                let x = line.add((ox0 * s_w + kx * d_w - g.pad_left) * c);
                for (p, a) in acc.iter_mut().enumerate() {
                    for (i, a) in a.iter_mut().enumerate() {
                        *a = s.fmadd(s.load(x.add(p * step + i * lanes)), w[i], *a);
                    }
                }
            }
        }
        let steps = Loaded::<S, R>::new(s, r.regs, j0);
        let o = out.as_mut_ptr().add(ox0 * c + j0);
        for (p, a) in acc.iter().enumerate() {
            for (i, &a) in a.iter().enumerate() {
                s.store(o.add(p * c + i * lanes), steps.apply(s, a, i));
            }
        }
    }
}

/// Image groups of a batch of `batch` images (group `i` starts at image
/// `i · batch / groups`): fixed by the batch size alone.
fn image_groups(batch: usize) -> usize {
    batch.clamp(1, MAX_IMAGE_GROUPS)
}

/// Scratch values [`depthwise_conv2d_backward`] needs: a partial kernel and
/// bias gradient per image group.
pub fn depthwise_backward_scratch_len(g: &ConvGeometry, m: usize) -> usize {
    let oc = g.in_c * m;
    image_groups(g.batch) * (g.k_h * g.k_w * oc + oc)
}

/// The gradients of [`depthwise_conv2d`] given `dY` (`grad_output`, NHWC):
/// adds `dW` to `grad_kernel` and `Σ dY` to `grad_bias`, writes `dX` to
/// `grad_input`. `scratch` holds at least [`depthwise_backward_scratch_len`]
/// values (their contents do not matter); `threads` may share the work and
/// the result does not depend on it.
///
/// # Panics
/// When `g` is not one group per channel, or a slice is shorter than `g`
/// and `m` say.
#[allow(clippy::too_many_arguments)]
pub fn depthwise_conv2d_backward(
    g: &ConvGeometry,
    m: usize,
    input: &[f32],
    kernel: &[f32],
    grad_output: &[f32],
    grad_kernel: &mut [f32],
    mut grad_bias: Option<&mut [f32]>,
    grad_input: &mut [f32],
    scratch: &mut [f32],
    threads: usize,
) {
    check_geometry(g, m);
    let oc = g.in_c * m;
    let kernel_len = g.k_h * g.k_w * oc;
    let (image_in, image_out) = (g.in_h * g.in_w * g.in_c, g.out_h * g.out_w * oc);
    assert!(
        input.len() >= g.input_len(),
        "depthwise_backward: input too short"
    );
    assert!(
        kernel.len() >= kernel_len,
        "depthwise_backward: kernel too short"
    );
    assert!(
        grad_output.len() >= g.batch * image_out,
        "depthwise_backward: grad_output too short"
    );
    assert!(
        grad_kernel.len() >= kernel_len,
        "depthwise_backward: grad_kernel too short"
    );
    assert!(
        grad_input.len() >= g.input_len(),
        "depthwise_backward: grad_input too short"
    );
    let groups = image_groups(g.batch);
    let partial_len = kernel_len + oc;
    let partials = &mut scratch[..groups * partial_len];
    partials.fill(0.0);
    let first = |i: usize| i * g.batch / groups;
    let mut rest_in = &mut grad_input[..g.input_len()];
    let items = partials
        .chunks_mut(partial_len)
        .enumerate()
        .map(move |(i, partial)| {
            let n = first(i + 1) - first(i);
            let (mine, tail) = std::mem::take(&mut rest_in).split_at_mut(n * image_in);
            rest_in = tail;
            (i, mine, partial)
        });
    let flops = parallel::flops([4, g.batch, image_out, g.k_h, g.k_w]);
    let workers = parallel::workers(threads, groups, flops);
    parallel::run(workers, items, &mut [], 0, |(i, gx, partial), _| {
        gx.fill(0.0);
        let (gw, gb) = partial.split_at_mut(kernel_len);
        for (j, b) in (first(i)..first(i + 1)).enumerate() {
            let x = &input[b * image_in..][..image_in];
            let dy = &grad_output[b * image_out..][..image_out];
            backward_image(
                g,
                m,
                x,
                kernel,
                dy,
                gw,
                gb,
                &mut gx[j * image_in..][..image_in],
            );
        }
    });
    for partial in partials.chunks(partial_len) {
        let (gw, gb) = partial.split_at(kernel_len);
        grad_kernel.iter_mut().zip(gw).for_each(|(d, s)| *d += s);
        if let Some(bias) = grad_bias.as_deref_mut() {
            bias.iter_mut().zip(gb).for_each(|(d, s)| *d += s);
        }
    }
}

/// The backward pass of one image: adds its kernel and bias gradients to
/// `gw` and `gb`, its input gradient to `gx`.
#[allow(clippy::too_many_arguments)]
fn backward_image(
    g: &ConvGeometry,
    m: usize,
    x: &[f32],
    kernel: &[f32],
    dy: &[f32],
    gw: &mut [f32],
    gb: &mut [f32],
    gx: &mut [f32],
) {
    let (c, oc) = (g.in_c, g.in_c * m);
    for d in dy.chunks_exact(oc) {
        gb.iter_mut().zip(d).for_each(|(s, d)| *s += d);
    }
    for oy in 0..g.out_h {
        let dy_row = &dy[oy * g.out_w * oc..][..g.out_w * oc];
        for ky in 0..g.k_h {
            let Some(iy) = input_row(g, oy, ky) else {
                continue;
            };
            let line = iy * g.in_w * c;
            for kx in 0..g.k_w {
                let cell = (ky * g.k_w + kx) * oc;
                let (w, gw) = (&kernel[cell..][..oc], &mut gw[cell..][..oc]);
                let offset = (kx * g.d_w) as isize - g.pad_left as isize;
                let (lo, hi) = columns_inside(g, offset);
                for ox in lo..hi {
                    let at = line + input_column(g, ox, offset) * c;
                    let d = &dy_row[ox * oc..][..oc];
                    multiply_add(m, &x[at..][..c], d, gw);
                    gather_add(m, w, d, &mut gx[at..][..c]);
                }
            }
        }
    }
}

/// `gx[c] += Σ_k w[c·m + k] · d[c·m + k]`: an input pixel's gradient from
/// one output pixel through one window cell.
#[inline]
fn gather_add(m: usize, w: &[f32], d: &[f32], gx: &mut [f32]) {
    if m == 1 {
        for ((g, &w), &d) in gx.iter_mut().zip(w).zip(d) {
            *g += w * d;
        }
    } else {
        for ((g, w), d) in gx.iter_mut().zip(w.chunks_exact(m)).zip(d.chunks_exact(m)) {
            *g += w.iter().zip(d).map(|(w, d)| w * d).sum::<f32>();
        }
    }
}

#[cfg(test)]
#[path = "depthwise_tests.rs"]
mod row_tests;

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::kernels::conv::backward::conv2d_backward;
    use crate::kernels::naive;
    use crate::kernels::testutil::*;
    use crate::shape::Padding;

    /// A depthwise case: `c` channels, multiplier `m`.
    #[derive(Clone, Debug)]
    struct Case {
        batch: usize,
        h: usize,
        w: usize,
        c: usize,
        m: usize,
        k: (usize, usize),
        s: (usize, usize),
        d: (usize, usize),
        same: bool,
        bias: bool,
        seed: u64,
    }

    impl Case {
        fn geometry(&self) -> Option<ConvGeometry> {
            let padding = if self.same {
                Padding::Same
            } else {
                Padding::Valid
            };
            let input = (self.h, self.w, self.c);
            ConvGeometry::with_options(self.batch, input, self.k, self.s, padding, self.d, self.c)
        }

        fn out_c(&self) -> usize {
            self.c * self.m
        }
    }

    fn case() -> impl Strategy<Value = Case> {
        (
            (1usize..=4, 1usize..=10, 1usize..=10),
            (1usize..=9, 1usize..=3),
            (1usize..=4, 1usize..=4, 1usize..=3, 1usize..=3),
            (1usize..=3, 1usize..=3),
            (any::<bool>(), any::<bool>(), any::<u64>()),
        )
            .prop_map(
                |((batch, h, w), (c, m), (kh, kw, sh, sw), (dh, dw), (same, bias, seed))| Case {
                    batch,
                    h,
                    w,
                    c,
                    m,
                    k: (kh, kw),
                    s: (sh, sw),
                    d: (dh, dw),
                    same,
                    bias,
                    seed,
                },
            )
    }

    fn forward(
        g: &ConvGeometry,
        m: usize,
        x: &[f32],
        w: &[f32],
        b: Option<&[f32]>,
        threads: usize,
    ) -> Vec<f32> {
        let mut out = vec![f32::NAN; g.out_pixels() * g.in_c * m];
        depthwise_conv2d(g, m, x, w, b, &mut out, threads);
        out
    }

    type Grads = (Vec<f32>, Vec<f32>, Vec<f32>);

    /// Kernel, bias and input gradients, the first two added to 0.5 and 0.25.
    fn backward(
        g: &ConvGeometry,
        m: usize,
        x: &[f32],
        w: &[f32],
        dy: &[f32],
        threads: usize,
    ) -> Grads {
        let oc = g.in_c * m;
        let (mut gw, mut gb, mut gx) =
            (vec![0.5; w.len()], vec![0.25; oc], vec![f32::NAN; x.len()]);
        let mut scratch = vec![f32::NAN; depthwise_backward_scratch_len(g, m)];
        depthwise_conv2d_backward(
            g,
            m,
            x,
            w,
            dy,
            &mut gw,
            Some(&mut gb),
            &mut gx,
            &mut scratch,
            threads,
        );
        (gw, gb, gx)
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: 256,
            max_global_rejects: 4096,
            ..ProptestConfig::default()
        })]

        /// The kernel computes the grouped convolution with one group per
        /// channel (naive and f64 references), on any thread count.
        #[test]
        fn forward_matches_grouped_convolution(case in case()) {
            let Some(g) = case.geometry() else {
                return Err(TestCaseError::reject("no window fits"));
            };
            let (m, oc) = (case.m, case.out_c());
            let mut rng = rng(case.seed);
            let x = uniform_f32(&mut rng, g.input_len(), -1.0, 1.0);
            let w = uniform_f32(&mut rng, g.patch_len() * oc, -1.0, 1.0);
            let b = uniform_f32(&mut rng, oc, -1.0, 1.0);
            let bias = case.bias.then_some(b.as_slice());
            let b64 = to_f64(&b);
            let reference: Vec<f32> = conv_ref(&g, &to_f64(&x), &to_f64(&w), case.bias.then_some(b64.as_slice()), oc)
                .into_iter()
                .map(|v| v as f32)
                .collect();
            let ax: Vec<f64> = x.iter().map(|v| v.abs() as f64).collect();
            let aw: Vec<f64> = w.iter().map(|v| v.abs() as f64).collect();
            let magnitude: Vec<f32> = conv_ref(&g, &ax, &aw, None, oc).into_iter().map(|v| v as f32).collect();
            let one = forward(&g, m, &x, &w, bias, 1);
            assert_close("depthwise vs reference", &one, &reference, &magnitude)?;
            assert_close("depthwise vs naive", &one, &naive::conv2d(&g, &x, &w, bias, oc), &magnitude)?;
            let three = forward(&g, m, &x, &w, bias, 3);
            prop_assert!(one.iter().zip(&three).all(|(a, b)| a.to_bits() == b.to_bits()));
        }
    }

    /// The backward pass against the grouped convolution's and against
    /// finite differences of the f64 reference; bitwise the same on 1 and 3
    /// threads.
    #[test]
    fn backward_matches_grouped_convolution_and_finite_differences() {
        run("depthwise backward", 128, case(), |case| {
            let g = case.geometry()?;
            let (m, oc) = (case.m, case.out_c());
            let mut rng = rng(case.seed);
            let x = uniform_f32(&mut rng, g.input_len(), -1.0, 1.0);
            let w = uniform_f32(&mut rng, g.patch_len() * oc, -1.0, 1.0);
            let dy = uniform_f32(&mut rng, g.out_pixels() * oc, -1.0, 1.0);
            let (gw, gb, gx) = backward(&g, m, &x, &w, &dy, 1);
            assert_eq!(
                (gw.clone(), gb.clone(), gx.clone()),
                backward(&g, m, &x, &w, &dy, 3)
            );

            let (mut cw, mut cb, mut cx) = (vec![0.5; w.len()], vec![0.25; oc], vec![0.0; x.len()]);
            conv2d_backward(&g, &x, &w, &dy, oc, &mut cw, Some(&mut cb), &mut cx);
            for (what, ours, theirs) in [
                ("kernel", &gw, &cw),
                ("bias", &gb, &cb),
                ("input", &gx, &cx),
            ] {
                for (a, b) in ours.iter().zip(theirs.iter()) {
                    assert!(
                        (a - b).abs() <= 1e-4 * (1.0 + b.abs()),
                        "{what}: {a} vs {b} on {g:?}"
                    );
                }
            }

            let (x64, w64, r64) = (to_f64(&x), to_f64(&w), to_f64(&dy));
            let dw: Vec<f32> = gw.iter().map(|v| v - 0.5).collect();
            let mut worst = check_gradient(
                "depthwise grad_kernel",
                &dw,
                &w64,
                |w| dot(&r64, &conv_ref(&g, &x64, w, None, oc)),
                &mut rng,
            );
            worst = worst.max(check_gradient(
                "depthwise grad_input",
                &gx,
                &x64,
                |x| dot(&r64, &conv_ref(&g, x, &w64, None, oc)),
                &mut rng,
            ));
            Some(worst)
        });
    }

    /// A hand-worked case: one 1x3 image of two channels, a 1x2 kernel with
    /// multiplier 2, valid: output channel 2c + k reads input channel c.
    #[test]
    fn multiplier_order_by_hand() {
        let g = ConvGeometry::with_options(1, (1, 3, 2), (1, 2), (1, 1), Padding::Valid, (1, 1), 2)
            .unwrap();
        // x[w][c]: channel 0 is 1, 2, 3; channel 1 is 10, 20, 30.
        let x = [1.0, 10.0, 2.0, 20.0, 3.0, 30.0];
        // w[kx][oc]: oc 0, 1 from channel 0; oc 2, 3 from channel 1.
        let w = [1.0, 2.0, 3.0, 4.0, 0.5, 0.0, 1.0, -1.0];
        let out = forward(&g, 2, &x, &w, Some(&[0.0, 0.0, 0.0, 100.0]), 1);
        assert_eq!(
            out,
            [
                1.0 + 1.0,
                2.0 + 0.0,
                30.0 + 20.0,
                100.0 + 40.0 - 20.0,
                2.0 + 1.5,
                4.0 + 0.0,
                60.0 + 30.0,
                100.0 + 80.0 - 30.0,
            ]
        );
    }
}
