//! Winograd F(2×2, 3×3) and F(4×4, 3×3) for 3×3 stride-1 convolutions,
//! NHWC / HWIO.
//!
//! Each `T×T` block of output pixels (a *tile*, `T` = 2 or 4) is computed
//! from the `(T+2)×(T+2)` input patch under it:
//! `Y = Aᵀ [(G g Gᵀ) ⊙ (Bᵀ d B)] A`, `(T+2)²` multiplies per channel pair
//! instead of `9·T²` (16 for 36, or 36 for 144). Over channels the
//! element-wise product becomes `(T+2)²` independent GEMMs, one per position
//! of the transformed tile: `M[p] (tiles × Cout) = V[p] (tiles × Cin) ·
//! U[p] (Cin × Cout)`. They run on the direct kernel's unpacked
//! micro-kernel where the CPU has one, on `matrixmultiply` otherwise.
//!
//! F(4×4) does 1.8× fewer multiplies than F(2×2) but is less accurate (its
//! transforms hold 1/4, 1/6, 1/24 and powers of 2 up to 8): still well
//! within 1e-4 of the direct sum relative to `Σ|x·w|` in the tests.
//!
//! Work goes in units of whole tile rows (a fixed number per unit, derived
//! from the geometry alone): a unit transforms its input tiles into `V`,
//! runs the GEMMs into `M`, and transforms `M` back into its output rows,
//! bias added, all within a per-thread scratch block that stays in cache.
//! Output channels go in blocks of at most [`COUT_BLOCK`]. Their
//! transformed weights `U` come from the caller when it has them
//! ([`transformed_kernel`], which a layer computes once and keeps until its
//! weights change), or are computed per call (per block) into the shared
//! part of the scratch: a pass over the kernel writing `(T+2)² · Cin ·
//! Cout` values, which at batch 1 costs as much as the GEMMs.

use super::direct;
use super::ConvGeometry;
use crate::kernels::epilogue::Epilogue;
use crate::kernels::gemm::sgemm;
use crate::kernels::isa::{dispatch, load, store, Isa, Kernel, Scalar, Simd};
use crate::kernels::parallel;

/// Output channels per block: the transformed weights of one block,
/// `(T+2)² × Cin × COUT_BLOCK`, are the shared scratch.
pub const COUT_BLOCK: usize = 256;

/// Target output pixels per work unit (rounded to whole tile rows).
const PIXELS_PER_UNIT: usize = 768;

/// Output channels the kernel transform takes together (the input and
/// output transforms take one vector register of the instruction set).
const LANES: usize = 16;

/// Largest transformed tile: `(4 + 2)²` positions.
const MAX_POS: usize = 36;

/// Whether the geometry is one Winograd computes: a 3×3 window at
/// stride 1 (any padding).
pub fn fits(g: &ConvGeometry) -> bool {
    g.k_h == 3
        && g.k_w == 3
        && g.s_h == 1
        && g.s_w == 1
        && g.is_plain()
        && g.out_pixels() > 0
        && g.in_c > 0
}

/// Positions of a transformed tile for output tiles of `t × t`.
fn positions(t: usize) -> usize {
    (t + 2) * (t + 2)
}

fn tiles_h(g: &ConvGeometry, t: usize) -> usize {
    g.out_h.div_ceil(t)
}

fn tiles_w(g: &ConvGeometry, t: usize) -> usize {
    g.out_w.div_ceil(t)
}

/// Tile rows per work unit: about [`PIXELS_PER_UNIT`] output pixels, and a
/// multiple of four units when there are several, so two or four threads
/// get equal shares (the count depends on the geometry only).
fn tile_rows_per_unit(g: &ConvGeometry, t: usize) -> usize {
    let rows = g.batch * tiles_h(g, t);
    let per_unit = (PIXELS_PER_UNIT / (t * t) / tiles_w(g, t)).max(1);
    let mut units = rows.div_ceil(per_unit);
    if units > 1 {
        units = units.next_multiple_of(4).min(rows);
    }
    rows.div_ceil(units.max(1))
}

/// Output tiles of the whole batch.
pub(crate) fn tile_count(g: &ConvGeometry, t: usize) -> usize {
    g.batch
        .saturating_mul(tiles_h(g, t))
        .saturating_mul(tiles_w(g, t))
}

/// Largest number of tiles in one unit.
fn unit_tiles(g: &ConvGeometry, t: usize) -> usize {
    let rows = tile_rows_per_unit(g, t).min(g.batch * tiles_h(g, t));
    rows * tiles_w(g, t)
}

/// GEMM rows of a unit of `tiles` tiles: at least one register block of
/// the direct kernel (12 rows), the rows past the tiles zero. A small image
/// at batch 1 (8×8 outputs: four 4×4 tiles) would otherwise go to
/// `matrixmultiply`, which packs its operands into memory it allocates on
/// every call: slower than computing a few rows of zeros.
fn gemm_rows(tiles: usize) -> usize {
    tiles.max(MIN_GEMM_ROWS)
}

/// The most pixels a direct-kernel register block has on any instruction
/// set (see `Isa::block`).
pub(crate) const MIN_GEMM_ROWS: usize = 12;

/// `(shared, per_thread)` scratch values for `g` with `t × t` output
/// tiles (2 or 4).
pub fn scratch_len(g: &ConvGeometry, t: usize) -> (usize, usize) {
    if !fits(g) {
        return (0, 0);
    }
    let pos = positions(t);
    let shared = pos * g.in_c * COUT_BLOCK;
    let per_thread = pos * gemm_rows(unit_tiles(g, t)) * (g.in_c + COUT_BLOCK);
    (shared, per_thread)
}

/// Threads [`conv2d`] runs on for `g` with `t × t` output tiles and
/// `out_c` channels when allowed `threads` (one scratch slice each).
pub fn workers(g: &ConvGeometry, t: usize, out_c: usize, threads: usize) -> usize {
    if !fits(g) {
        return 1;
    }
    let tile_rows = g.batch * tiles_h(g, t);
    let units = tile_rows.div_ceil(tile_rows_per_unit(g, t));
    // The GEMMs do pos·Cin·Cout multiply-adds per tile.
    let tiles = tile_rows.saturating_mul(tiles_w(g, t));
    let flops = parallel::flops([2, positions(t), g.in_c, out_c, tiles]);
    parallel::workers(threads, units, flops)
}

/// Winograd convolution with `t × t` output tiles (2: F(2×2, 3×3), 4:
/// F(4×4, 3×3)); `g` must satisfy [`fits`], `scratch` hold what
/// [`ConvPath::scratch_len`](super::ConvPath::scratch_len) says: the
/// `shared` values of [`scratch_len`], then a cache-line-padded slice of
/// `per_thread` values per thread.
#[allow(clippy::too_many_arguments)]
pub fn conv2d(
    t: usize,
    g: &ConvGeometry,
    input: &[f32],
    kernel: &[f32],
    bias: Option<&[f32]>,
    out_c: usize,
    output: &mut [f32],
    scratch: &mut [f32],
    threads: usize,
    then: Then<'_>,
) {
    assert!(fits(g), "winograd conv2d: not a 3x3 stride-1 window");
    assert!(
        t == 2 || t == 4,
        "winograd conv2d: tiles of 2x2 or 4x4 only"
    );
    let pos = positions(t);
    let cin = g.in_c;
    assert!(input.len() >= g.input_len(), "conv2d: input too short");
    assert!(kernel.len() >= 9 * cin * out_c, "conv2d: kernel too short");
    assert!(
        output.len() >= g.out_pixels() * out_c,
        "conv2d: output too short"
    );
    if let Some(b) = bias {
        assert!(b.len() >= out_c, "conv2d: bias too short");
    }
    if let Some(u) = then.transformed {
        assert!(
            u.len() >= transformed_kernel_len(t, cin, out_c),
            "conv2d: transformed kernel too short"
        );
    }
    let (shared_len, per_thread) = scratch_len(g, t);
    let (u, rest) = scratch.split_at_mut(shared_len);
    let tile_rows = g.batch * tiles_h(g, t);
    let unit_rows = tile_rows_per_unit(g, t);
    let units = tile_rows.div_ceil(unit_rows);
    let workers = workers(g, t, out_c, threads);
    let row_len = g.out_w * out_c;
    let mut co0 = 0;
    while co0 < out_c {
        let cb = COUT_BLOCK.min(out_c - co0);
        let u: &[f32] = match then.transformed {
            Some(all) => &all[pos * cin * co0..pos * cin * (co0 + cb)],
            None => {
                let u = &mut u[..pos * cin * cb];
                transform_kernel(t, kernel, cin, out_c, co0, cb, u);
                u
            }
        };
        // The epilogue needs every channel of a pixel: it runs with the
        // last block, whose units cover the same output rows as the others.
        let epilogue = if co0 + cb == out_c {
            then.epilogue
        } else {
            Epilogue::NONE
        };
        let mut remaining = &mut output[..g.out_pixels() * out_c];
        let mut next_row = 0;
        let work = (0..units).map(move |unit| {
            let tr0 = unit * unit_rows;
            let tr1 = (tr0 + unit_rows).min(tile_rows);
            let end = out_row(g, t, tr1 - 1) + t.min(g.out_h - (tr1 - 1) % tiles_h(g, t) * t);
            let (mine, rest) =
                std::mem::take(&mut remaining).split_at_mut((end - next_row) * row_len);
            remaining = rest;
            next_row = end;
            (tr0, tr1, mine)
        });
        let job = Unit {
            t,
            g,
            input,
            u,
            bias,
            out_c,
            co0,
            cb,
            isa: Isa::detect(),
            epilogue,
        };
        parallel::run(workers, work, rest, per_thread, |(tr0, tr1, out), buf| {
            job.run(tr0, tr1, out, buf);
        });
        co0 += cb;
    }
}

/// What a caller adds to [`conv2d`]: the kernel already transformed, and
/// an epilogue.
#[derive(Clone, Copy, Default)]
pub struct Then<'a> {
    /// [`transformed_kernel`] of the kernel for the same tile size, or
    /// `None` to transform per call.
    pub transformed: Option<&'a [f32]>,
    /// Applied to the output rows of each unit once they are complete.
    pub epilogue: Epilogue<'a>,
}

/// Values of [`transformed_kernel`] for `t × t` tiles.
pub fn transformed_kernel_len(t: usize, cin: usize, cout: usize) -> usize {
    positions(t) * cin * cout
}

/// The transformed weights `U` of every output-channel block, the blocks
/// one after another (block `co0 ..+ cb` at `(t+2)² · cin · co0`, laid out
/// as [`conv2d`] computes it per call): what a layer keeps so that
/// [`conv2d`] need not transform its kernel on every call.
///
/// # Panics
/// When `t` is not 2 or 4, or `kernel` is shorter than `9 · cin · cout`.
pub fn transformed_kernel(t: usize, kernel: &[f32], cin: usize, cout: usize) -> Vec<f32> {
    assert!(t == 2 || t == 4, "winograd: tiles of 2x2 or 4x4 only");
    assert!(kernel.len() >= 9 * cin * cout, "winograd: kernel too short");
    let mut u = vec![0.0; transformed_kernel_len(t, cin, cout)];
    let mut co0 = 0;
    while co0 < cout {
        let cb = COUT_BLOCK.min(cout - co0);
        let block = &mut u[positions(t) * cin * co0..positions(t) * cin * (co0 + cb)];
        transform_kernel(t, kernel, cin, cout, co0, cb, block);
        co0 += cb;
    }
    u
}

/// First output row (over the batch) of tile row `tr`.
fn out_row(g: &ConvGeometry, t: usize, tr: usize) -> usize {
    let th = tiles_h(g, t);
    (tr / th) * g.out_h + (tr % th) * t
}

/// `U[p][ci][co - co0] = (G g Gᵀ)[p]` for output channels `co0 ..+ cb`,
/// compiled for the widest vector unit the CPU has.
fn transform_kernel(
    t: usize,
    kernel: &[f32],
    cin: usize,
    cout: usize,
    co0: usize,
    cb: usize,
    u: &mut [f32],
) {
    dispatch(
        Isa::detect(),
        KernelTransform {
            t,
            kernel,
            cin,
            cout,
            co0,
            cb,
            u,
        },
    );
}

/// The arguments of [`transform_kernel`], run by [`dispatch`]: plain code
/// the compiler vectorises for the instruction set it is compiled for.
struct KernelTransform<'a> {
    t: usize,
    kernel: &'a [f32],
    cin: usize,
    cout: usize,
    co0: usize,
    cb: usize,
    u: &'a mut [f32],
}

impl Kernel for KernelTransform<'_> {
    type Output = ();

    #[inline(always)]
    fn run<S: Simd>(self, _: S) {
        let KernelTransform {
            t,
            kernel,
            cin,
            cout,
            co0,
            cb,
            u,
        } = self;
        if t == 2 {
            transform_kernel_impl::<2>(kernel, cin, cout, co0, cb, u)
        } else {
            transform_kernel_impl::<4>(kernel, cin, cout, co0, cb, u)
        }
    }
}

#[inline(always)]
fn transform_kernel_impl<const T: usize>(
    kernel: &[f32],
    cin: usize,
    cout: usize,
    co0: usize,
    cb: usize,
    u: &mut [f32],
) {
    let plane = cin * cb;
    for ci in 0..cin {
        // Window cell k = ky·3 + kx of this input channel starts at
        // kernel[(k·cin + ci)·cout + co0]; output channels are contiguous.
        let at = |k: usize, j: usize| (k * cin + ci) * cout + co0 + j;
        let mut j = 0;
        while j < cb {
            if cb - j >= LANES {
                let mut g = [[0.0f32; LANES]; 9];
                for (k, cell) in g.iter_mut().enumerate() {
                    cell.copy_from_slice(&kernel[at(k, j)..at(k, j) + LANES]);
                }
                let t = kernel_transform::<T, LANES>(&g);
                for (p, x) in t.iter().take(positions(T)).enumerate() {
                    let o = p * plane + ci * cb + j;
                    u[o..o + LANES].copy_from_slice(x);
                }
                j += LANES;
            } else {
                let mut g = [[0.0f32; 1]; 9];
                for (k, cell) in g.iter_mut().enumerate() {
                    cell[0] = kernel[at(k, j)];
                }
                let t = kernel_transform::<T, 1>(&g);
                for (p, x) in t.iter().take(positions(T)).enumerate() {
                    u[p * plane + ci * cb + j] = x[0];
                }
                j += 1;
            }
        }
    }
}

/// `G g Gᵀ` lane by lane: `g` row-major 3×3, the result row-major
/// `(T+2)×(T+2)` (in the first `(T+2)²` entries).
#[inline(always)]
fn kernel_transform<const T: usize, const L: usize>(g: &[[f32; L]; 9]) -> [[f32; L]; MAX_POS] {
    let a = T + 2;
    // Columns first: t[i][kx] = (G g)[i][kx], a × 3.
    let mut t = [[0.0f32; L]; 18];
    for kx in 0..3 {
        let col = kernel_1d::<T, L>(&[g[kx], g[3 + kx], g[6 + kx]]);
        for i in 0..a {
            t[i * 3 + kx] = col[i];
        }
    }
    // Then each row of t times Gᵀ.
    let mut u = [[0.0f32; L]; MAX_POS];
    for i in 0..a {
        let row = kernel_1d::<T, L>(&[t[i * 3], t[i * 3 + 1], t[i * 3 + 2]]);
        u[i * a..i * a + a].copy_from_slice(&row[..a]);
    }
    u
}

/// `G x` for three values per lane: F(2, 3) `G = [1 0 0; ½ ½ ½; ½ -½ ½;
/// 0 0 1]`, F(4, 3) `G = [¼ 0 0; -⅙ -⅙ -⅙; -⅙ ⅙ -⅙; 1/24 1/12 ⅙;
/// 1/24 -1/12 ⅙; 0 0 1]`.
#[inline(always)]
fn kernel_1d<const T: usize, const L: usize>(x: &[[f32; L]; 3]) -> [[f32; L]; 6] {
    let mut y = [[0.0f32; L]; 6];
    for l in 0..L {
        let (g0, g1, g2) = (x[0][l], x[1][l], x[2][l]);
        if T == 2 {
            y[0][l] = g0;
            y[1][l] = 0.5 * (g0 + g1 + g2);
            y[2][l] = 0.5 * (g0 - g1 + g2);
            y[3][l] = g2;
        } else {
            y[0][l] = 0.25 * g0;
            y[1][l] = -(g0 + g1 + g2) / 6.0;
            y[2][l] = -(g0 - g1 + g2) / 6.0;
            y[3][l] = g0 / 24.0 + g1 / 12.0 + g2 / 6.0;
            y[4][l] = g0 / 24.0 - g1 / 12.0 + g2 / 6.0;
            y[5][l] = g2;
        }
    }
    y
}

/// What every work unit of one block of output channels shares.
struct Unit<'a> {
    /// Output tile side: 2 or 4.
    t: usize,
    g: &'a ConvGeometry,
    input: &'a [f32],
    /// Transformed weights of channels `co0 ..+ cb`: `(t+2)² × Cin × cb`.
    u: &'a [f32],
    bias: Option<&'a [f32]>,
    out_c: usize,
    co0: usize,
    cb: usize,
    isa: Isa,
    /// Run on the unit's output rows once they are complete.
    epilogue: Epilogue<'a>,
}

impl Unit<'_> {
    /// Tile rows `tr0 .. tr1` into `out` (their output rows, all `out_c`
    /// channels), with `buf` as scratch. The transforms are compiled for
    /// the widest vector unit the CPU has.
    fn run(&self, tr0: usize, tr1: usize, out: &mut [f32], buf: &mut [f32]) {
        dispatch(
            self.isa,
            UnitJob {
                job: self,
                tr0,
                tr1,
                out: &mut *out,
                buf,
            },
        );
        self.epilogue.apply(out, self.out_c);
    }
}

/// One call of [`unit`], run by [`dispatch`].
struct UnitJob<'a, 'b> {
    job: &'b Unit<'a>,
    tr0: usize,
    tr1: usize,
    out: &'b mut [f32],
    buf: &'b mut [f32],
}

impl Kernel for UnitJob<'_, '_> {
    type Output = ();

    #[inline(always)]
    fn run<S: Simd>(self, s: S) {
        let UnitJob {
            job,
            tr0,
            tr1,
            out,
            buf,
        } = self;
        if job.t == 2 {
            unit::<S, 2>(s, job, tr0, tr1, out, buf)
        } else {
            unit::<S, 4>(s, job, tr0, tr1, out, buf)
        }
    }
}

/// One work unit: tile rows `tr0 .. tr1`, output channels `co0 ..+ cb`,
/// written into `out` (the unit's output rows, all `out_c` channels).
#[inline(always)]
fn unit<S: Simd, const T: usize>(
    s: S,
    job: &Unit<'_>,
    tr0: usize,
    tr1: usize,
    out: &mut [f32],
    buf: &mut [f32],
) {
    let &Unit {
        g,
        input,
        u,
        bias,
        out_c,
        co0,
        cb,
        isa,
        ..
    } = job;
    let pos = positions(T);
    let cin = g.in_c;
    let th = tiles_h(g, T);
    let tw = tiles_w(g, T);
    let tiles = (tr1 - tr0) * tw;
    // `V[p]` and `M[p]` have `height` rows: the tiles, then zeros.
    let height = gemm_rows(tiles);
    let (v, rest) = buf.split_at_mut(pos * height * cin);
    let m = &mut rest[..pos * height * cb];
    for p in 0..pos {
        v[(p * height + tiles) * cin..(p + 1) * height * cin].fill(0.0);
    }

    // Input transform: V[p][tile][ci].
    for tr in tr0..tr1 {
        let (b, ty) = (tr / th, tr % th);
        for tx in 0..tw {
            let tile = (tr - tr0) * tw + tx;
            transform_input_tile::<S, T>(s, g, input, b, ty, tx, tile, height, v);
        }
    }

    // The GEMMs: M[p] = V[p] · U[p]. They go to the direct kernel's
    // unpacked micro-kernel when the CPU has one (measured faster than
    // packing on c2-c6, even at Cin = 256).
    let unpacked = direct::gemm_fits(height, cb, isa);
    for p in 0..pos {
        let a = &v[p * height * cin..(p + 1) * height * cin];
        let b = &u[p * cin * cb..(p + 1) * cin * cb];
        let c = &mut m[p * height * cb..(p + 1) * height * cb];
        if unpacked {
            direct::gemm(isa, height, cin, cb, a, b, c);
        } else {
            sgemm(tiles, cin, cb, a, b, 0.0, c);
        }
    }

    // Output transform, bias, store.
    let first_row = out_row(g, T, tr0);
    for tr in tr0..tr1 {
        let ty = tr % th;
        let rows = T.min(g.out_h - T * ty);
        let row0 = out_row(g, T, tr) - first_row;
        for tx in 0..tw {
            let tile = (tr - tr0) * tw + tx;
            let cols = T.min(g.out_w - T * tx);
            let at = |c: usize, dy: usize, dx: usize| {
                ((row0 + dy) * g.out_w + T * tx + dx) * out_c + co0 + c
            };
            let put = Put {
                m: &*m,
                first: tile * cb,
                stride: height * cb,
                bias: bias.map(|b| &b[co0..co0 + cb]),
                rows,
                cols,
            };
            put.output_tile::<S, T>(s, cb, out, at);
        }
    }
}

/// One tile's products `M` and where its outputs go.
struct Put<'a> {
    m: &'a [f32],
    /// Offset of the tile's first channel at position 0 of `m`.
    first: usize,
    /// Values between one position's products and the next's.
    stride: usize,
    /// The block's biases, if any.
    bias: Option<&'a [f32]>,
    /// Output rows and columns of the tile inside the image.
    rows: usize,
    cols: usize,
}

impl Put<'_> {
    /// The tile's `channels` outputs, output `(c, dy, dx)` written at
    /// `out[at(c, dy, dx)..]`: whole registers of channels, then the rest
    /// one at a time.
    #[inline(always)]
    fn output_tile<S: Simd, const T: usize>(
        &self,
        s: S,
        channels: usize,
        out: &mut [f32],
        at: impl Fn(usize, usize, usize) -> usize,
    ) {
        let mut c = 0;
        while c + S::LANES <= channels {
            self.output_group::<S, T>(s, c, out, &at);
            c += S::LANES;
        }
        for c in c..channels {
            self.output_group::<Scalar, T>(Scalar, c, out, &at);
        }
    }

    /// `Aᵀ m A` (plus the bias) for the `V::LANES` channels from `c`,
    /// written where `at(c, dy, dx)` says: columns first, then rows, in
    /// the order of `output_1d`, so every instruction set rounds alike.
    #[inline(always)]
    fn output_group<V: Simd, const T: usize>(
        &self,
        s: V,
        c: usize,
        out: &mut [f32],
        at: &impl Fn(usize, usize, usize) -> usize,
    ) {
        let a = T + 2;
        // Built whole, not filled into a zeroed array (as in `input_group`).
        let cols = [
            output_1d::<V, T>(s, self.column(s, c, a, 0)),
            output_1d::<V, T>(s, self.column(s, c, a, 1)),
            output_1d::<V, T>(s, self.column(s, c, a, 2)),
            output_1d::<V, T>(s, self.column(s, c, a, 3)),
            output_1d::<V, T>(s, self.column(s, c, a, 4)),
            output_1d::<V, T>(s, self.column(s, c, a, 5)),
        ];
        let bias = self.bias.map(|b| load(s, b, c));
        for dy in 0..self.rows.min(T) {
            let y = output_1d::<V, T>(s, row_of(&cols, dy));
            for (dx, &v) in y.iter().enumerate().take(self.cols) {
                let v = bias.map_or(v, |b| s.add(v, b));
                store(s, out, at(c, dy, dx), v);
            }
        }
    }

    /// Column `j` of the `a × a` products for the channels from `c`,
    /// zeros past `a`.
    #[inline(always)]
    fn column<V: Simd>(&self, s: V, c: usize, a: usize, j: usize) -> [V::V; 6] {
        let at = |i: usize| (i < a && j < a).then(|| self.first + (i * a + j) * self.stride);
        [
            load_or_zero(s, self.m, at(0), c),
            load_or_zero(s, self.m, at(1), c),
            load_or_zero(s, self.m, at(2), c),
            load_or_zero(s, self.m, at(3), c),
            load_or_zero(s, self.m, at(4), c),
            load_or_zero(s, self.m, at(5), c),
        ]
    }
}

/// Writes `Bᵀ d B` of the `(T+2)×(T+2)` input patch of tile `(ty, tx)` of
/// image `b` into `v[p][tile][..]` (`v` holds `(T+2)² × height × in_c`):
/// whole registers of channels, then the rest one at a time.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn transform_input_tile<S: Simd, const T: usize>(
    s: S,
    g: &ConvGeometry,
    input: &[f32],
    b: usize,
    ty: usize,
    tx: usize,
    tile: usize,
    height: usize,
    v: &mut [f32],
) {
    let a = T + 2;
    let cin = g.in_c;
    let image = &input[b * g.in_h * g.in_w * cin..(b + 1) * g.in_h * g.in_w * cin];
    let y0 = (T * ty) as isize - g.pad_top as isize;
    let x0 = (T * tx) as isize - g.pad_left as isize;
    // Offset of each cell in `image`, or None in the padding.
    let mut cells = [None; MAX_POS];
    for (k, cell) in cells.iter_mut().take(a * a).enumerate() {
        let (iy, ix) = (y0 + (k / a) as isize, x0 + (k % a) as isize);
        let inside = iy >= 0 && ix >= 0 && (iy as usize) < g.in_h && (ix as usize) < g.in_w;
        *cell = inside.then(|| (iy as usize * g.in_w + ix as usize) * cin);
    }
    let first = tile * cin;
    let stride = height * cin;
    let mut c = 0;
    while c + S::LANES <= cin {
        input_group::<S, T>(s, image, &cells, c, v, first, stride);
        c += S::LANES;
    }
    for c in c..cin {
        input_group::<Scalar, T>(Scalar, image, &cells, c, v, first, stride);
    }
}

/// `Bᵀ d B` of the `V::LANES` channels from `c` of the patch whose cells
/// start at `cells` in `image` (zeros for `None`), into `v[first + p ·
/// stride + c ..]` for each position `p`: columns first, then rows, in the
/// order of `input_1d`, so every instruction set rounds alike.
#[inline(always)]
fn input_group<V: Simd, const T: usize>(
    s: V,
    image: &[f32],
    cells: &[Option<usize>; MAX_POS],
    c: usize,
    v: &mut [f32],
    first: usize,
    stride: usize,
) {
    let a = T + 2;
    // Built whole, not filled into a zeroed array: the zeroing was a
    // memset of 36 registers' worth of stack per group (3% of cifar_cnn's
    // time at batch 64). Written out, not with `from_fn` or closures: a
    // closure LLVM leaves out of line is compiled without the instruction
    // set's features, and each vector add in it becomes a call.
    let cols = [
        input_1d::<V, T>(s, input_column(s, image, cells, c, a, 0)),
        input_1d::<V, T>(s, input_column(s, image, cells, c, a, 1)),
        input_1d::<V, T>(s, input_column(s, image, cells, c, a, 2)),
        input_1d::<V, T>(s, input_column(s, image, cells, c, a, 3)),
        input_1d::<V, T>(s, input_column(s, image, cells, c, a, 4)),
        input_1d::<V, T>(s, input_column(s, image, cells, c, a, 5)),
    ];
    for i in 0..a {
        let row = input_1d::<V, T>(s, row_of(&cols, i));
        for (j, &x) in row.iter().enumerate().take(a) {
            store(s, v, first + (i * a + j) * stride + c, x);
        }
    }
}

/// Column `j` of the `a × a` patch, zeros in the padding and past `a`.
#[inline(always)]
fn input_column<V: Simd>(
    s: V,
    image: &[f32],
    cells: &[Option<usize>; MAX_POS],
    c: usize,
    a: usize,
    j: usize,
) -> [V::V; 6] {
    let at = |i: usize| {
        if i < a && j < a {
            cells[i * a + j]
        } else {
            None
        }
    };
    [
        load_or_zero(s, image, at(0), c),
        load_or_zero(s, image, at(1), c),
        load_or_zero(s, image, at(2), c),
        load_or_zero(s, image, at(3), c),
        load_or_zero(s, image, at(4), c),
        load_or_zero(s, image, at(5), c),
    ]
}

/// `V::LANES` floats of `x` from `at + c`, or zeros for `None`.
#[inline(always)]
fn load_or_zero<V: Simd>(s: V, x: &[f32], at: Option<usize>, c: usize) -> V::V {
    match at {
        Some(at) => load(s, x, at + c),
        None => s.zero(),
    }
}

/// Element `i` of each of the columns: row `i` of their transpose.
#[inline(always)]
fn row_of<X: Copy, const N: usize>(cols: &[[X; N]; 6], i: usize) -> [X; 6] {
    [
        cols[0][i], cols[1][i], cols[2][i], cols[3][i], cols[4][i], cols[5][i],
    ]
}

/// `Bᵀ x` per lane: F(2, 3) `Bᵀ = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]`;
/// F(4, 3) `Bᵀ = [4 0 -5 0 1 0; 0 -4 -4 1 1 0; 0 4 -4 -1 1 0;
/// 0 -2 -1 2 1 0; 0 2 -1 -2 1 0; 0 4 0 -5 0 1]`.
#[inline(always)]
fn input_1d<V: Simd, const T: usize>(s: V, x: [V::V; 6]) -> [V::V; 6] {
    let [d0, d1, d2, d3, d4, d5] = x;
    let z = s.zero();
    if T == 2 {
        return [
            s.sub(d0, d2),
            s.add(d1, d2),
            s.sub(d2, d1),
            s.sub(d1, d3),
            z,
            z,
        ];
    }
    let (two, four, five) = (s.splat(2.0), s.splat(4.0), s.splat(5.0));
    let k = |c: V::V, x: V::V| s.mul(c, x);
    [
        s.add(s.sub(k(four, d0), k(five, d2)), d4),
        s.add(k(s.splat(-4.0), s.add(d1, d2)), s.add(d3, d4)),
        s.add(k(four, s.sub(d1, d2)), s.sub(d4, d3)),
        s.add(k(two, s.sub(d3, d1)), s.sub(d4, d2)),
        s.add(k(two, s.sub(d1, d3)), s.sub(d4, d2)),
        s.add(s.sub(k(four, d1), k(five, d3)), d5),
    ]
}

/// `Aᵀ x` per lane: F(2, 3) `Aᵀ = [1 1 1 0; 0 1 -1 -1]`; F(4, 3)
/// `Aᵀ = [1 1 1 1 1 0; 0 1 -1 2 -2 0; 0 1 1 4 4 0; 0 1 -1 8 -8 1]`.
#[inline(always)]
fn output_1d<V: Simd, const T: usize>(s: V, x: [V::V; 6]) -> [V::V; 4] {
    let [m0, m1, m2, m3, m4, m5] = x;
    let z = s.zero();
    if T == 2 {
        return [s.add(s.add(m0, m1), m2), s.sub(s.sub(m1, m2), m3), z, z];
    }
    let (p12, m12) = (s.add(m1, m2), s.sub(m1, m2));
    let (p34, m34) = (s.add(m3, m4), s.sub(m3, m4));
    [
        s.add(s.add(m0, p12), p34),
        s.add(m12, s.mul(s.splat(2.0), m34)),
        s.add(p12, s.mul(s.splat(4.0), p34)),
        s.add(s.add(m12, s.mul(s.splat(8.0), m34)), m5),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shape::Padding;

    /// Values that round differently in any other order of operations.
    fn values(n: usize, seed: usize) -> Vec<f32> {
        (0..n)
            .map(|i| ((i * 7919 + seed * 104_729) % 2003) as f32 / 997.0 - 1.0)
            .collect()
    }

    /// Both transforms on every instruction set here, one tile at a time:
    /// the same bits as the one-lane code, in every channel (whole
    /// registers and the rest), with and without padding and bias.
    struct Transforms<'a> {
        t: usize,
        g: &'a ConvGeometry,
        input: &'a [f32],
        m: &'a [f32],
        bias: Option<&'a [f32]>,
        tiles: (usize, usize),
    }

    impl Transforms<'_> {
        fn run_with<V: Simd, const T: usize>(&self, s: V) -> (Vec<f32>, Vec<f32>) {
            let (g, cin, cout) = (self.g, self.g.in_c, self.g.in_c);
            let (th, tw) = self.tiles;
            let height = th * tw;
            let mut v = vec![f32::NAN; positions(T) * height * cin];
            let mut out = vec![f32::NAN; g.out_h * g.out_w * cout];
            for ty in 0..th {
                for tx in 0..tw {
                    let tile = ty * tw + tx;
                    transform_input_tile::<V, T>(s, g, self.input, 0, ty, tx, tile, height, &mut v);
                    let put = Put {
                        m: self.m,
                        first: tile * cout,
                        stride: height * cout,
                        bias: self.bias,
                        rows: T.min(g.out_h - T * ty),
                        cols: T.min(g.out_w - T * tx),
                    };
                    let at = |c: usize, dy: usize, dx: usize| {
                        ((T * ty + dy) * g.out_w + T * tx + dx) * cout + c
                    };
                    put.output_tile::<V, T>(s, cout, &mut out, at);
                }
            }
            (v, out)
        }
    }

    impl Kernel for &Transforms<'_> {
        type Output = (Vec<f32>, Vec<f32>);
        fn run<S: Simd>(self, s: S) -> Self::Output {
            match self.t {
                2 => self.run_with::<S, 2>(s),
                _ => self.run_with::<S, 4>(s),
            }
        }
    }

    #[test]
    fn transforms_round_alike_on_every_instruction_set() {
        // 37 channels: two AVX-512 registers (four AVX2 ones) and 5 (or
        // 5, 1) one at a time; 'same' padding puts zeros in the edge tiles.
        for (t, padding, bias) in [
            (2, Padding::Same, true),
            (4, Padding::Same, false),
            (4, Padding::Valid, true),
        ] {
            let g = ConvGeometry::new(1, (11, 10, 37), (3, 3), (1, 1), padding).unwrap();
            let cout = 37;
            let tiles = (tiles_h(&g, t), tiles_w(&g, t));
            let input = values(g.input_len(), 1);
            let m = values(positions(t) * tiles.0 * tiles.1 * cout, 2);
            let all_bias = values(cout, 3);
            let job = Transforms {
                t,
                g: &g,
                input: &input,
                m: &m,
                bias: bias.then_some(&all_bias[..]),
                tiles,
            };
            let one = (&job).run(Scalar);
            for isa in Isa::SIMD.into_iter().filter(|isa| isa.available()) {
                let wide = dispatch(isa, &job);
                for (name, a, b) in [("input", &one.0, &wide.0), ("output", &one.1, &wide.1)] {
                    assert!(
                        a.iter().all(|x| x.is_finite()),
                        "t = {t}: {name} left unwritten"
                    );
                    let same = a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits());
                    assert!(
                        same,
                        "t = {t}, {isa:?}: the {name} transform rounds differently"
                    );
                }
            }
        }
    }
}
