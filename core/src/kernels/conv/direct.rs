//! Direct NHWC convolution for short patches (few input channels: c1's
//! 3×3×3, c8's 7×7×3), where building im2col rows costs as much as the
//! GEMM they feed, and for 1×1 layers whose kernel fits in L2.
//!
//! It is a GEMM micro-kernel whose A operand is read straight from the
//! input: a block of `P` output pixels × `NB` output channels lives in
//! registers; for each patch element `t`, the block's `NB` kernel values
//! of row `t` are multiplied by each pixel's input value, broadcast. The
//! kernel is read from panels, one per block of channels, each holding its
//! channels of every row one after another ([`pack`]: kept by the layer,
//! or packed per call into the scratch). The input rows a window row needs
//! are first copied, zero-padded, into a small per-thread buffer, so the
//! inner loop has no bounds to test; 1×1 stride-1 layers read the input in
//! place, as one product over all the pixels.
//!
//! Pixel blocks that would pass the end of an output row start earlier
//! instead and recompute a few pixels: the same arithmetic, so the same
//! values. Channels past the last two-register block take one-register
//! blocks, the last one ending at the last channel.

use super::ConvGeometry;
use crate::kernels::epilogue::{Epilogue, InRegisters, Loaded};
use crate::kernels::isa::{dispatch, Isa, Kernel, Simd, PREFETCH_ROWS};
use crate::kernels::parallel;

/// Whether the direct kernel can run `g` with `out_c` channels on `isa`.
pub fn fits(g: &ConvGeometry, out_c: usize, isa: Isa) -> bool {
    let (p, lanes) = isa.min_block();
    isa.available() && g.is_plain() && g.out_w >= p && out_c >= lanes && g.patch_len() > 0
}

/// Columns of zero-padded input one output row's windows cover.
fn span_w(g: &ConvGeometry) -> usize {
    (g.out_w - 1) * g.s_w + g.k_w
}

/// Scratch values per thread: one padded input row per window row (none
/// when the pixels are read in place, one unit of pixels at a time).
pub fn scratch_len(g: &ConvGeometry) -> usize {
    if g.out_w == 0 || pixel_major(g) {
        return 0;
    }
    g.k_h * span_w(g) * g.in_c
}

/// Whether every window is one input pixel, the output's pixels reading
/// the input's in order across rows and images (1×1, stride 1, no
/// padding): the convolution is then one product of `out_pixels` rows,
/// cut into units of pixels rather than of output rows, so that register
/// blocks do not stop at the end of each output row (a 7×7 map's rows of
/// 7 pixels would leave most of a second 6-pixel block idle).
fn pixel_major(g: &ConvGeometry) -> bool {
    g.is_pointwise()
}

/// Pixels per unit of a [`pixel_major`] convolution are a multiple of
/// this: whole register blocks on every instruction set (6, 12 and 24
/// pixels).
const UNIT_PIXELS: usize = 24;

/// Work units of `g` with `out_c` channels: `(units, size)`, the units
/// being output rows, or pixels when [`pixel_major`]. At least about 1
/// MFLOP each, and at least eight when there is enough work, so threads
/// stay balanced; the last unit of pixels takes the remainder.
fn units(g: &ConvGeometry, out_c: usize) -> (usize, usize) {
    let (count, per_item) = match pixel_major(g) {
        true => (g.out_pixels(), parallel::flops([2, g.patch_len(), out_c])),
        false => (
            g.batch * g.out_h,
            parallel::flops([2, g.out_w, g.patch_len(), out_c]),
        ),
    };
    let by_work = (1 << 20) / per_item.max(1) + 1;
    let size = by_work.min(count.div_ceil(8)).max(1);
    if !pixel_major(g) {
        return (count.div_ceil(size), size);
    }
    let size = size.next_multiple_of(UNIT_PIXELS);
    ((count / size).max(1), size)
}

/// Threads [`conv2d`] runs on for `g` and `out_c` when allowed `threads`
/// (one scratch slice each).
pub fn workers(g: &ConvGeometry, out_c: usize, threads: usize) -> usize {
    let flops = parallel::flops([2, g.out_pixels(), g.patch_len(), out_c]);
    parallel::workers(threads, units(g, out_c).0, flops)
}

/// Registers of channels per block wherever the channels fill them; the
/// channels past the last such block take blocks of one register.
const WIDE: usize = 2;

/// Channels in whole wide blocks, of `n` with registers of `lanes`.
fn wide_channels(n: usize, lanes: usize) -> usize {
    n / (WIDE * lanes) * (WIDE * lanes)
}

/// Values of `rows` kernel rows of `n` channels packed by [`pack`] for
/// registers of `lanes` floats.
pub fn packed_len(rows: usize, n: usize, lanes: usize) -> usize {
    let wide = wide_channels(n, lanes);
    rows * (wide + (n - wide).div_ceil(lanes) * lanes)
}

/// `kernel`'s `rows` rows of `n` channels (HWIO viewed as `rows × n`)
/// packed into one panel per register block of channels, each panel its
/// channels of every row one after another: the wide blocks' `WIDE ·
/// lanes` channels, then one register's channels at a time for the rest,
/// the last panel ending at channel `n`. A block then reads its kernel
/// values as one sequential stream instead of rows `n` floats apart,
/// where sizes like 512 or 1280 channels put every row in the same few
/// cache sets (a 14×14 map of 96 → 512 channels ran at 0.6× the speed of
/// 96 → 576 unpacked; AMD Zen 3, AVX2).
///
/// # Panics
/// When `n < lanes`, `lanes` is 0, or `kernel` is shorter than `rows × n`.
pub fn pack(kernel: &[f32], rows: usize, n: usize, lanes: usize) -> Vec<f32> {
    let mut panels = vec![0.0; packed_len(rows, n, lanes)];
    pack_into(kernel, rows, n, lanes, &mut panels);
    panels
}

/// [`pack`] into `panels` (at least [`packed_len`] values).
///
/// # Panics
/// As [`pack`], and when `panels` is too short.
pub fn pack_into(kernel: &[f32], rows: usize, n: usize, lanes: usize, panels: &mut [f32]) {
    assert!(
        lanes > 0 && n >= lanes,
        "pack: {n} channels in registers of {lanes}"
    );
    assert!(
        kernel.len() / n >= rows,
        "pack: kernel shorter than {rows}x{n}"
    );
    let (nb, wide) = (WIDE * lanes, wide_channels(n, lanes));
    let narrow = (wide..n).step_by(lanes).map(|c| (c.min(n - lanes), lanes));
    let mut out = panels[..packed_len(rows, n, lanes)].iter_mut();
    for (c0, width) in (0..wide).step_by(nb).map(|c| (c, nb)).chain(narrow) {
        for row in kernel[..rows * n].chunks_exact(n) {
            // The row first: `zip` stops on it without taking an output.
            for (&v, o) in row[c0..c0 + width].iter().zip(out.by_ref()) {
                *o = v;
            }
        }
    }
}

/// Scratch values [`conv2d`] shares between its threads: the kernel's
/// panels, packed per call when the caller has none prepared, from a
/// cache-line boundary (blocks load whole lines of them; a panel split
/// across lines cost 1.5× on a 56×56 map of 64 → 256 channels, AMD Zen 3).
pub fn shared_scratch_len(g: &ConvGeometry, out_c: usize, isa: Isa) -> usize {
    packed_len(g.patch_len(), out_c, isa.lanes()) + LINE_FLOATS
}

/// Floats in a 64-byte cache line.
const LINE_FLOATS: usize = 16;

/// A kernel as the register blocks read it.
#[derive(Clone, Copy, Debug)]
pub enum Weights<'a> {
    /// HWIO as given: rows of `n` channels.
    Rows(&'a [f32]),
    /// Packed by [`pack`] for registers of the instruction set's lanes.
    Panels(&'a [f32]),
}

/// Direct convolution (see the module doc). `g`, `out_c` and `isa` must
/// satisfy [`fits`]; `scratch` holds what
/// [`ConvPath::scratch_len`](super::ConvPath::scratch_len) says: the
/// [`shared_scratch_len`] values, then a cache-line-padded slice of
/// [`scratch_len`] values per thread. `kernel` is HWIO, packed into the
/// shared scratch first, or packed for `isa` already ([`pack`]).
/// `epilogue` runs on each unit's output as soon as it is computed.
#[allow(clippy::too_many_arguments)]
pub fn conv2d(
    g: &ConvGeometry,
    input: &[f32],
    kernel: Weights<'_>,
    bias: Option<&[f32]>,
    out_c: usize,
    output: &mut [f32],
    scratch: &mut [f32],
    threads: usize,
    isa: Isa,
    epilogue: Epilogue<'_>,
) {
    assert!(fits(g, out_c, isa), "direct conv2d: unsupported geometry");
    assert!(input.len() >= g.input_len(), "conv2d: input too short");
    assert!(
        output.len() >= g.out_pixels() * out_c,
        "conv2d: output too short"
    );
    if let Some(b) = bias {
        assert!(b.len() >= out_c, "conv2d: bias too short");
    }
    // Affine and clamp steps are applied to the accumulators, the rest of
    // the epilogue to each row once it is stored.
    let (regs, rest) = epilogue.split_registers();
    assert!(
        regs.covers(out_c),
        "conv2d: fewer epilogue factors than {out_c} channels"
    );
    // Packing costs one pass over the kernel, which the blocks read once
    // per block of pixels (as rows `out_c` apart without it).
    let (panels, scratch) = scratch.split_at_mut(shared_scratch_len(g, out_c, isa));
    let kernel = match kernel {
        Weights::Rows(hwio) => {
            let start = panels
                .as_ptr()
                .align_offset(4 * LINE_FLOATS)
                .min(LINE_FLOATS);
            let panels = &mut panels[start..];
            pack_into(hwio, g.patch_len(), out_c, isa.lanes(), panels);
            Weights::Panels(panels)
        }
        packed => packed,
    };
    let workers = workers(g, out_c, threads);
    let (units, unit) = units(g, out_c);
    if pixel_major(g) {
        let (m, k) = (g.out_pixels(), g.in_c);
        let mut left = &mut output[..m * out_c];
        let work = (0..units).map(move |u| {
            let rows = if u + 1 == units { m - u * unit } else { unit };
            let (mine, tail) = std::mem::take(&mut left).split_at_mut(rows * out_c);
            left = tail;
            (u * unit, mine)
        });
        parallel::run(workers, work, scratch, 0, |(first, out), _| {
            let rows = out.len() / out_c;
            let a = &input[first * k..(first + rows) * k];
            let operands = Operands::product(isa, (rows, k, out_c), a, kernel, bias, regs);
            dispatch(
                isa,
                Blocks {
                    operands,
                    out: &mut *out,
                },
            );
            rest.apply(out, out_c);
        });
        return;
    }
    let rows = g.batch * g.out_h;
    let row_len = g.out_w * out_c;
    let units = output[..rows * row_len]
        .chunks_mut(unit * row_len)
        .enumerate();
    parallel::run(workers, units, scratch, scratch_len(g), |(u, out), buf| {
        let mut ring = Ring::new(g.k_h);
        for (r, out_row) in out.chunks_exact_mut(row_len).enumerate() {
            let row = u * unit + r;
            output_row(
                g,
                input,
                kernel,
                (bias, regs),
                out_c,
                row,
                out_row,
                buf,
                &mut ring,
                isa,
            );
            rest.apply(out_row, out_c);
        }
    });
}

/// Which padded image row each of a worker's `k_h` line slots holds:
/// consecutive output rows share `k_h - 1` window rows at stride 1, and
/// each is copied (with its padding) once per work unit rather than once
/// per output row that reads it.
struct Ring {
    /// `b · in_h + iy` per slot, `usize::MAX` for none.
    held: [usize; RING_SLOTS],
    /// Whether the window's height fits in the ring (else every row is
    /// copied every time).
    on: bool,
}

/// Window heights up to which [`Ring`] keeps lines.
const RING_SLOTS: usize = 16;

impl Ring {
    fn new(k_h: usize) -> Ring {
        Ring {
            held: [usize::MAX; RING_SLOTS],
            on: k_h <= RING_SLOTS,
        }
    }

    /// Whether image row `key` must be copied into `slot`: not already
    /// there. Records that it will be.
    fn fetch(&mut self, key: usize, slot: usize) -> bool {
        if !self.on {
            return true;
        }
        let fresh = self.held[slot] != key;
        self.held[slot] = key;
        fresh
    }
}

/// Computes output row `row` (`b · out_h + oy`) into `out` (`out_w × out_c`).
#[allow(clippy::too_many_arguments)]
fn output_row(
    g: &ConvGeometry,
    input: &[f32],
    kernel: Weights<'_>,
    (bias, regs): (Option<&[f32]>, InRegisters<'_>),
    n: usize,
    row: usize,
    out: &mut [f32],
    buf: &mut [f32],
    ring: &mut Ring,
    isa: Isa,
) {
    let (b, oy) = (row / g.out_h, row % g.out_h);
    let c = g.in_c;
    let span = span_w(g);
    let line_len = span * c;
    // Window rows that fall inside the input: [ky0, ky1). The others only
    // add zeros, so they are skipped.
    let top = oy * g.s_h;
    let ky0 = g.pad_top.saturating_sub(top).min(g.k_h);
    let ky1 = (g.in_h + g.pad_top).saturating_sub(top).min(g.k_h).max(ky0);
    let image = &input[b * g.in_h * g.in_w * c..(b + 1) * g.in_h * g.in_w * c];
    let used_rows = ky1 - ky0;
    if used_rows == 0 {
        for px in out.chunks_exact_mut(n) {
            match bias {
                Some(bias) => px.copy_from_slice(&bias[..n]),
                None => px.fill(0.0),
            }
        }
        regs.apply(out, n);
        return;
    }
    // Windows that need no padding on the left or right (1×1 layers,
    // 'valid' ones) read the image rows in place; the others read copies
    // of them with the padding's zeros, so the kernel never tests bounds.
    let row_len = g.in_w * c;
    let in_place = g.pad_left == 0 && span <= g.in_w;
    let (lines, line_len) = if in_place {
        let iy0 = top + ky0 - g.pad_top;
        (&image[iy0 * row_len..(iy0 + used_rows) * row_len], row_len)
    } else {
        // Columns of the padded line that hold input: [x0, x1).
        let x0 = g.pad_left.min(span);
        let x1 = (g.pad_left + g.in_w).min(span);
        for ky in ky0..ky1 {
            let iy = top + ky - g.pad_top;
            let slot = iy % g.k_h;
            if !ring.fetch(b * g.in_h + iy, slot) {
                continue;
            }
            let line = &mut buf[slot * line_len..(slot + 1) * line_len];
            line[..x0 * c].fill(0.0);
            line[x0 * c..x1 * c].copy_from_slice(&image[iy * row_len..(iy * g.in_w + x1 - x0) * c]);
            line[x1 * c..].fill(0.0);
        }
        (&buf[..g.k_h * line_len], line_len)
    };
    // A window's rows are consecutive image rows, so `iy % k_h` gives
    // them distinct slots; in place, the lines are the rows in order.
    let (slots, first_slot) = match in_place {
        true => (used_rows, 0),
        false => (g.k_h, (top + ky0 - g.pad_top) % g.k_h),
    };
    let kwc = g.k_w * c;
    let operands = Operands {
        lines,
        line_len,
        rows: used_rows,
        slots,
        first_slot,
        pix_stride: g.s_w * c,
        pixels: g.out_w,
        kwc,
        w: WeightView::new(kernel, g.patch_len(), n, isa, ky0 * kwc),
        n,
        bias,
        regs,
    };
    dispatch(isa, Blocks { operands, out });
}

/// Whether [`gemm`] can multiply with `m` rows and `n` columns on `isa`.
pub fn gemm_fits(m: usize, n: usize, isa: Isa) -> bool {
    let (p, lanes) = isa.min_block();
    isa.available() && m >= p && n >= lanes
}

/// `c = a · b` for row-major `a` (`m × k`), `b` (`k × n`), `c` (`m × n`)
/// on the direct kernel's register blocks: nothing is packed, which pays
/// when `k` and `n` are small (Winograd's 16 products). Blocks at the
/// ends overlap their neighbours rather than run short.
///
/// # Panics
/// When [`gemm_fits`] is false or a slice is too short (sizes whose
/// product overflows are too large for any slice).
pub fn gemm(isa: Isa, m: usize, k: usize, n: usize, a: &[f32], b: &[f32], c: &mut [f32]) {
    gemm_bias(isa, (m, k, n), a, b, None, c);
}

/// [`gemm`] plus `bias` (`n` values) on every row: `c = a · b + bias`.
///
/// # Panics
/// As [`gemm`], and when `bias` is shorter than `n`.
pub fn gemm_bias(
    isa: Isa,
    (m, k, n): (usize, usize, usize),
    a: &[f32],
    b: &[f32],
    bias: Option<&[f32]>,
    c: &mut [f32],
) {
    gemm_then(isa, (m, k, n), a, b, bias, Epilogue::NONE, c);
}

/// [`gemm_bias`], then `epilogue` on `c`: its affine and clamp steps on
/// each register block before it is stored, the rest on `c` afterwards.
///
/// # Panics
/// As [`gemm_bias`], and when an affine step has fewer than `n` factors.
pub fn gemm_then(
    isa: Isa,
    (m, k, n): (usize, usize, usize),
    a: &[f32],
    b: &[f32],
    bias: Option<&[f32]>,
    epilogue: Epilogue<'_>,
    c: &mut [f32],
) {
    gemm_weights(isa, (m, k, n), a, Weights::Rows(b), bias, epilogue, c);
}

/// [`gemm_then`] with `b` as [`Weights`]: rows of `n` values, or packed
/// for `isa`.
///
/// # Panics
/// As [`gemm_then`], and when packed `b` is shorter than [`packed_len`].
pub fn gemm_weights(
    isa: Isa,
    (m, k, n): (usize, usize, usize),
    a: &[f32],
    b: Weights<'_>,
    bias: Option<&[f32]>,
    epilogue: Epilogue<'_>,
    c: &mut [f32],
) {
    assert!(gemm_fits(m, n, isa), "direct gemm: unsupported size");
    let fits =
        |len: usize, rows: usize, cols: usize| rows.checked_mul(cols).is_some_and(|v| len >= v);
    let b_len = match b {
        Weights::Rows(b) => fits(b.len(), k, n),
        Weights::Panels(b) => b.len() >= packed_len(k, n, isa.lanes()),
    };
    assert!(
        fits(a.len(), m, k) && b_len && fits(c.len(), m, n),
        "direct gemm: a slice is shorter than {m}x{k} · {k}x{n}"
    );
    let (regs, rest) = epilogue.split_registers();
    assert!(
        regs.covers(n),
        "direct gemm: fewer epilogue factors than {n} channels"
    );
    let operands = Operands::product(isa, (m, k, n), &a[..m * k], b, bias, regs);
    dispatch(isa, Blocks { operands, out: c });
    rest.apply(&mut c[..m * n], n);
}

/// Where a block's kernel values are: for `R` registers of channels from
/// `j0`, value `(row, j0 + l)` at `base + row · stride + l` ([`Self::at`]).
#[derive(Clone, Copy)]
struct WeightView<'a> {
    w: &'a [f32],
    /// The first kernel row the blocks read (window rows above the image
    /// are skipped).
    first: usize,
    /// Channels (`n`).
    n: usize,
    /// `(kernel rows, lanes)` of [`pack`]'s panels; `None` for HWIO rows.
    packed: Option<(usize, usize)>,
}

impl<'a> WeightView<'a> {
    /// `weights` (`rows × n`), read from row `first` on by blocks of `isa`.
    fn new(weights: Weights<'a>, rows: usize, n: usize, isa: Isa, first: usize) -> Self {
        let (w, packed) = match weights {
            Weights::Rows(w) => (w, None),
            Weights::Panels(w) => (w, Some((rows, isa.lanes()))),
        };
        WeightView {
            w,
            first,
            n,
            packed,
        }
    }

    /// `(base, stride)` of the block of `r` registers of `lanes` channels
    /// from `j0`: a column of the rows, or a panel (wide blocks start at
    /// multiples of their width, one-register blocks at multiples of
    /// `lanes` past the wide ones or at `n - lanes`). `None` on overflow.
    #[inline(always)]
    fn at(&self, j0: usize, r: usize, lanes: usize) -> Option<(usize, usize)> {
        let Some((rows, _)) = self.packed else {
            return Some((j0, self.n));
        };
        let wide = wide_channels(self.n, lanes);
        Some(match r {
            WIDE => (j0.checked_mul(rows)?, WIDE * lanes),
            _ => {
                let panel = j0.saturating_sub(wide).div_ceil(lanes);
                let base = wide.checked_add(panel.checked_mul(lanes)?)?;
                (base.checked_mul(rows)?, lanes)
            }
        })
    }
}

/// What every register block of one output row (or one product) reads.
struct Operands<'a> {
    /// `slots` zero-padded input lines of `line_len` values, window row
    /// `r < rows` in slot `(first_slot + r) % slots`.
    lines: &'a [f32],
    line_len: usize,
    rows: usize,
    slots: usize,
    first_slot: usize,
    /// Distance between the windows of neighbouring output pixels.
    pix_stride: usize,
    /// Output pixels.
    pixels: usize,
    /// Patch values per window row: `k_w · in_c`.
    kwc: usize,
    /// The kernel, window row `r`'s rows from `w.first + r · kwc` on.
    w: WeightView<'a>,
    /// Output channels.
    n: usize,
    bias: Option<&'a [f32]>,
    /// Steps applied to each block before it is stored.
    regs: InRegisters<'a>,
}

impl<'a> Operands<'a> {
    /// The product `a · b` (`m × k` by `k × n`): `a` is one "line" whose
    /// pixels are its rows.
    fn product(
        isa: Isa,
        (m, k, n): (usize, usize, usize),
        a: &'a [f32],
        b: Weights<'a>,
        bias: Option<&'a [f32]>,
        regs: InRegisters<'a>,
    ) -> Self {
        Operands {
            lines: a,
            line_len: m * k,
            rows: 1,
            slots: 1,
            first_slot: 0,
            pix_stride: k,
            pixels: m,
            kwc: k,
            w: WeightView::new(b, k, n, isa, 0),
            n,
            bias: bias.map(|b| &b[..n]),
            regs,
        }
    }
}

/// All the register blocks of one output row (or product), run by
/// [`dispatch`]: one call into code compiled for the instruction set per
/// row, the blocks inlined there.
struct Blocks<'a, 'b> {
    operands: Operands<'a>,
    out: &'b mut [f32],
}

impl Kernel for Blocks<'_, '_> {
    type Output = ();

    #[inline(always)]
    fn run<S: Simd>(self, s: S) {
        // The block's pixel count must be a constant for its accumulators
        // to live in registers: one instance per vector width. Channels
        // past the last whole two-register block take blocks one register
        // wide and twice as many pixels, so the same registers stay busy
        // (16 channels on AVX-512: ResNet's first stage; 24 on AVX2:
        // MobileNetV2's projections). Both compute each value the same
        // way, so where they overlap they write the same values.
        let (o, out) = (&self.operands, self.out);
        let wide = wide_channels(o.n, S::LANES);
        let (wide, narrow) = ((0, wide), (wide, o.n));
        let three = o.pix_stride > 0 && o.kwc == 3 * o.pix_stride;
        match (S::PIXELS, three) {
            (12, false) => {
                blocks::<S, 12, 8, WIDE, 0>(s, o, wide, out);
                blocks::<S, 24, 8, 1, 0>(s, o, narrow, out);
            }
            (12, true) => {
                blocks::<S, 12, 8, WIDE, 3>(s, o, wide, out);
                blocks::<S, 24, 8, 1, 3>(s, o, narrow, out);
            }
            (6, _) => {
                blocks::<S, 6, 3, WIDE, 0>(s, o, wide, out);
                blocks::<S, 12, 6, 1, 0>(s, o, narrow, out);
            }
            _ => blocks::<S, 1, 1, 1, 0>(s, o, (0, o.n), out),
        }
    }
}

/// Covers the `pixels` × channels `c0 .. c1` outputs with blocks of `P`
/// pixels × `R` registers of channels, and the last pixels of a row (fewer
/// than `P`) with blocks of `H < P` pixels, so at most `H - 1` outputs of a
/// row are computed twice. Blocks that would pass the end start earlier
/// instead and recompute a few outputs: the same arithmetic, so the same
/// values. Nothing to do when `c0 == c1`.
#[inline(always)]
fn blocks<S: Simd, const P: usize, const H: usize, const R: usize, const KW: usize>(
    s: S,
    o: &Operands<'_>,
    (c0, c1): (usize, usize),
    out: &mut [f32],
) {
    if c0 >= c1 {
        return;
    }
    let nb = R * S::LANES;
    assert!(
        o.pixels >= H && c1 >= nb,
        "direct kernel: {} pixels x {} channels is less than one block",
        o.pixels,
        c1
    );
    // The last block reaches furthest into every slice: checking it once
    // covers all the others (every bound grows with the last pixel and
    // channel, whatever the block's size).
    check::<S>(o, o.pixels - H, c1 - nb, H, R, out);
    // Whole blocks of `P` pixels, then the rest in blocks of `H`, the last
    // one starting early enough to end at the row's end.
    let mut ox = 0;
    while ox < o.pixels {
        let whole = o.pixels - ox >= P;
        let first_pixel = match whole {
            true => ox,
            false => ox.min(o.pixels - H),
        };
        let mut j = c0;
        while j < c1 {
            let j0 = j.min(c1 - nb);
            // SAFETY: the block's last pixel is at most `pixels - 1` and
            // `j0 <= c1 - nb`, so it stays within the one `check` proved in
            // bounds.
            unsafe {
                match whole {
                    true => block::<S, P, R, KW>(s, o, first_pixel, j0, out),
                    false => block::<S, H, R, KW>(s, o, first_pixel, j0, out),
                }
            };
            j += nb;
        }
        ox += if whole { P } else { H };
    }
}

/// Checks that the block of `p` pixels from `first_pixel` and `r`
/// registers of channels from `j0` reads and writes inside its slices (the
/// SIMD code relies on it), in arithmetic that cannot wrap.
#[inline(always)]
fn check<S: Simd>(
    o: &Operands<'_>,
    first_pixel: usize,
    j0: usize,
    p: usize,
    r: usize,
    out: &[f32],
) {
    let lanes = S::LANES;
    let w = &o.w;
    let ok = || -> Option<bool> {
        let last_pixel = first_pixel.checked_add(p.checked_sub(1)?)?;
        let reach = last_pixel.checked_mul(o.pix_stride)?.checked_add(o.kwc)?;
        // The furthest kernel value read, past the last row's block (none
        // for an empty patch).
        let rows_read = o.rows.checked_mul(o.kwc)?;
        let (base, stride) = w.at(j0, r, lanes)?;
        let weights = match rows_read {
            0 => 0,
            _ => base
                .checked_add((w.first.checked_add(rows_read - 1)?).checked_mul(stride)?)?
                .checked_add(r.checked_mul(lanes)?)?,
        };
        let channels = j0.checked_add(r.checked_mul(lanes)?)?;
        let written = last_pixel.checked_add(1)?.checked_mul(o.n)?;
        Some(
            o.rows <= o.slots
                && o.lines.len() >= o.slots.checked_mul(o.line_len)?
                && reach <= o.line_len
                && w.packed
                    .is_none_or(|(_, l)| l == lanes && (r == 1 || r == WIDE))
                && w.w.len() >= weights
                && channels <= o.n
                && out.len() >= written
                && o.bias.is_none_or(|b| b.len() >= channels)
                && o.regs.covers(channels),
        )
    };
    assert!(
        ok() == Some(true),
        "direct kernel: a {p}x{r} block reaches outside its slices"
    );
}

/// One block: `P` pixels × `R` registers of channels of accumulators,
/// starting from the bias (or zero).
///
/// With `KW = 0`, one kernel row (`R` registers) is loaded per patch
/// element and multiplied by each pixel's input value, broadcast: one
/// broadcast per `R` multiply-adds. With `KW > 0` the window row is `KW`
/// neighbouring groups of `pix_stride` values (a stride-1 window `KW`
/// wide, or any window `KW` strides wide), so neighbouring pixels share
/// input values: each value is broadcast once and multiplied by the `KW`
/// kernel rows that meet it, `KW · R` multiply-adds per broadcast.
/// Broadcasts are what limits the one-register blocks (measured on AVX-512
/// at about one per cycle on an AMD Zen 5). The two orders round
/// differently; each is the same for every block size and thread count.
///
/// # Safety
/// [`check`] must hold for a block whose last pixel and last channel are
/// at or beyond this one's, on the same operands and output; with
/// `KW > 0`, `kwc` must be `KW · pix_stride`.
#[inline(always)]
unsafe fn block<S: Simd, const P: usize, const R: usize, const KW: usize>(
    s: S,
    o: &Operands<'_>,
    first_pixel: usize,
    j0: usize,
    out: &mut [f32],
) {
    let lanes = S::LANES;
    let mut acc = [[s.zero(); R]; P];
    // SAFETY: for every pointer access below, `check`, which the caller
    // guarantees holds, proved that pixel
    // `first_pixel + p` (p < P) reads lines[slot * line_len + (first_pixel
    // + p) * pix_stride + t] for t < kwc and any slot < slots (the slot of
    // window row r is taken mod slots) inside `lines`, that kernel row
    // `first + r * kwc + t` reads w[base + row * stride .. + R * LANES]
    // (`at(j0, R)`) inside `w`,
    // that the bias reads bias[j0 .. + R * LANES], and that the stores hit
    // out[(first_pixel + p) * n + j0 .. + R * LANES] inside `out`, and
    // that the affine steps hold channels `j0 .. + R * LANES`. With
    // `KW > 0`, value `ix * pix_stride + ci` (ix < P + KW - 1, ci <
    // pix_stride) is pixel `min(ix, P - 1)`'s value `t = (ix - min(ix, P -
    // 1)) * pix_stride + ci < KW * pix_stride = kwc`, and kernel row
    // `kx * pix_stride + ci` is `< kwc`. Loads and stores are unaligned.
    unsafe {
        if let Some(bias) = o.bias {
            let b: [S::V; R] = std::array::from_fn(|i| s.load(bias.as_ptr().add(j0 + i * lanes)));
            acc.fill(b);
        }
        let x_base = o.lines.as_ptr().add(first_pixel * o.pix_stride);
        // `check` computed `at` for the furthest block without overflow.
        let (base, w_row) = o.w.at(j0, R, lanes).unwrap_unchecked();
        let w_base = o.w.w.as_ptr().add(base + o.w.first * w_row);
        for r in 0..o.rows {
            let x = x_base.add((o.first_slot + r) % o.slots * o.line_len);
            let w = w_base.add(r * o.kwc * w_row);
            if KW == 0 {
                // One window row over packed panels (1×1 layers): see
                // `patch`.
                if o.rows == 1 && o.w.packed.is_some() {
                    let pixels: [*const f32; P] = std::array::from_fn(|p| x.add(p * o.pix_stride));
                    // The next panel starts a panel's rows on.
                    let next = o.w.packed.map_or(0, |(rows, _)| rows * w_row);
                    patch::<S, P, R>(s, &mut acc, &pixels, w, (w_row, next), o.kwc);
                    continue;
                }
                for t in 0..o.kwc {
                    let wt = w.add(t * w_row);
                    // Kernel rows are `n` floats apart unless packed: too
                    // far for the hardware prefetchers once `n` is a few
                    // hundred, so a kernel that does not fit in L2 would
                    // wait on every row.
                    s.prefetch_span(wt.wrapping_add(PREFETCH_ROWS * w_row), R * lanes);
                    let wv: [S::V; R] = std::array::from_fn(|i| s.load(wt.add(i * lanes)));
                    let xt = x.add(t);
                    for (p, a) in acc.iter_mut().enumerate() {
                        let v = s.splat(*xt.add(p * o.pix_stride));
                        for (a, w) in a.iter_mut().zip(&wv) {
                            *a = s.fmadd(v, *w, *a);
                        }
                    }
                }
                continue;
            }
            let cs = o.pix_stride;
            for ci in 0..cs {
                let wv: [[S::V; R]; 3] = std::array::from_fn(|kx| {
                    let wt = w.add((kx * cs + ci) * w_row);
                    std::array::from_fn(|i| s.load(wt.add(i * lanes)))
                });
                // The broadcasts of the window's three values roll along
                // the pixels: one new broadcast per pixel.
                let xc = x.add(ci);
                let [w0, w1, w2] = wv;
                let mut b0 = s.splat(*xc);
                let mut b1 = s.splat(*xc.add(cs));
                for (p, a) in acc.iter_mut().enumerate() {
                    let b2 = s.splat(*xc.add((p + 2) * cs));
                    for i in 0..R {
                        a[i] = s.fmadd(b0, w0[i], a[i]);
                        a[i] = s.fmadd(b1, w1[i], a[i]);
                        a[i] = s.fmadd(b2, w2[i], a[i]);
                    }
                    (b0, b1) = (b1, b2);
                }
            }
        }
        let steps = Loaded::<S, R>::new(s, o.regs, j0);
        let out = out.as_mut_ptr().add(first_pixel * o.n + j0);
        for (p, a) in acc.iter().enumerate() {
            for (i, v) in a.iter().enumerate() {
                s.store(out.add(p * o.n + i * lanes), steps.apply(s, *v, i));
            }
        }
    }
}

/// `acc[p] += pixels[p][t] · w[t · w_row ..][..R · LANES]` for `t < len`
/// in order, over a packed panel (one sequential stream, which the
/// hardware prefetchers follow): one kernel row loaded per `t`, each
/// pixel's value broadcast to its `R` registers. The pixels' addresses are
/// taken once, outside the loop, and the loop runs [`unroll`] rows per
/// trip, so that few instructions go to anything but the loads and
/// multiply-adds (the same order, so the same values). Only for one
/// window row over packed panels (1×1 layers, the prepared small-output
/// GEMM): on a 3×3 window's rows of 9 values, or over unpacked weights
/// (Winograd's products), the plain loop measured faster.
///
/// Each row also asks L2 for the same row of the next panel, `next` values
/// on (a hint, so any `next` is sound). The hardware prefetchers follow a
/// panel but not the jump to the next, and a layer's kernel is seldom
/// still in L2 when a network comes back to it: inside MobileNetV2, its
/// 7×7 and 14×14 1×1 layers ran 1.2-1.35× faster with the hint, the same
/// alone, where the kernel stays in L2 (Intel Xeon, AVX-512, 2 MiB L2).
///
/// # Safety
/// `pixels[p] .. + len` and `w[t · w_row .. + R · LANES]` for `t < len`
/// must be readable.
#[inline(always)]
unsafe fn patch<S: Simd, const P: usize, const R: usize>(
    s: S,
    acc: &mut [[S::V; R]; P],
    pixels: &[*const f32; P],
    w: *const f32,
    (w_row, next): (usize, usize),
    len: usize,
) {
    // SAFETY: the caller's bounds.
    unsafe {
        let trip = unroll(P * R);
        let mut t = 0;
        while t + trip <= len {
            for u in 0..trip {
                patch_row::<S, P, R>(s, acc, pixels, w, (w_row, next), t + u);
            }
            t += trip;
        }
        for t in t..len {
            patch_row::<S, P, R>(s, acc, pixels, w, (w_row, next), t);
        }
    }
}

/// Kernel rows per trip of [`patch`]'s loop for a block of `accumulators`
/// registers, as measured on c7. With twelve (AVX2's 6 × 2 and 12 × 1),
/// four rows per trip ran 1.36× one: the loop's own instructions are a
/// large share of a short trip (eight rows made the compiler spill the
/// accumulators: twice as slow). With twenty-four (AVX-512's and NEON's
/// 12 × 2 and 24 × 1), the compiler hoisted the later rows' broadcasts
/// into the few free registers and spilled them to the stack: one row per
/// trip ran 1.7× four (Intel Xeon, AVX-512).
const fn unroll(accumulators: usize) -> usize {
    if accumulators > 16 {
        1
    } else {
        4
    }
}

/// Row `t` of [`patch`].
///
/// # Safety
/// As [`patch`], for this `t`.
#[inline(always)]
unsafe fn patch_row<S: Simd, const P: usize, const R: usize>(
    s: S,
    acc: &mut [[S::V; R]; P],
    pixels: &[*const f32; P],
    w: *const f32,
    (w_row, next): (usize, usize),
    t: usize,
) {
    let lanes = S::LANES;
    // SAFETY: the caller's bounds.
    unsafe {
        let wt = w.add(t * w_row);
        // Past the last panel this names no data: a hint only.
        let ahead = wt.wrapping_add(next);
        for i in (0..R * lanes).step_by(16) {
            s.prefetch_l2(ahead.wrapping_add(i));
        }
        let wv: [S::V; R] = std::array::from_fn(|i| s.load(wt.add(i * lanes)));
        for (a, x) in acc.iter_mut().zip(pixels) {
            let v = s.splat(*x.add(t));
            for (a, w) in a.iter_mut().zip(&wv) {
                *a = s.fmadd(v, *w, *a);
            }
        }
    }
}
