//! Winograd F(2×2, 3×3) for 3×3 stride-1 convolutions, NHWC / HWIO.
//!
//! Each 2×2 block of output pixels (a *tile*) is computed from the 4×4
//! input patch under it: `Y = Aᵀ [(G g Gᵀ) ⊙ (Bᵀ d B)] A`, 16 multiplies
//! per channel pair instead of 36. Over channels the element-wise product
//! becomes 16 independent GEMMs, one per position of the 4×4 transformed
//! tile: `M[p] (tiles × Cout) = V[p] (tiles × Cin) · U[p] (Cin × Cout)`,
//! which run on `matrixmultiply`.
//!
//! Work goes in units of whole tile rows (a fixed number per unit, derived
//! from the geometry alone): a unit transforms its input tiles into `V`,
//! runs the 16 GEMMs into `M`, and transforms `M` back into its output
//! rows, bias added, all within a per-thread scratch block that stays in
//! cache. Output channels go in blocks of at most [`COUT_BLOCK`], whose
//! transformed weights `U` are computed once per call (per block) into the
//! shared part of the scratch; caching them in the layer would save that
//! (about `16 · Cin · Cout · 4` bytes and a pass over the kernel per call).

use super::conv::ConvGeometry;
use super::gemm::sgemm;
use super::parallel;

/// Output channels per block: the transformed weights of one block,
/// `16 × Cin × COUT_BLOCK`, are the shared scratch.
pub const COUT_BLOCK: usize = 128;

/// Target tiles per work unit (rounded to whole tile rows).
const TILES_PER_UNIT: usize = 96;

/// Channels transformed together (one vector register's worth).
const LANES: usize = 16;

/// Whether the geometry is one Winograd F(2×2, 3×3) computes: a 3×3
/// window at stride 1 (any padding).
pub fn fits(g: &ConvGeometry) -> bool {
    g.k_h == 3 && g.k_w == 3 && g.s_h == 1 && g.s_w == 1 && g.out_pixels() > 0 && g.in_c > 0
}

fn tiles_h(g: &ConvGeometry) -> usize {
    g.out_h.div_ceil(2)
}

fn tiles_w(g: &ConvGeometry) -> usize {
    g.out_w.div_ceil(2)
}

/// Tile rows per work unit.
fn tile_rows_per_unit(g: &ConvGeometry) -> usize {
    (TILES_PER_UNIT / tiles_w(g)).max(1)
}

/// Largest number of tiles in one unit.
fn unit_tiles(g: &ConvGeometry) -> usize {
    let rows = tile_rows_per_unit(g).min(g.batch * tiles_h(g));
    rows * tiles_w(g)
}

/// `(shared, per_thread)` scratch values for `g`.
pub fn scratch_len(g: &ConvGeometry) -> (usize, usize) {
    if !fits(g) {
        return (0, 0);
    }
    let shared = 16 * g.in_c * COUT_BLOCK;
    let per_thread = 16 * unit_tiles(g) * (g.in_c + COUT_BLOCK);
    (shared, per_thread)
}

/// Winograd convolution; `g` must satisfy [`fits`], `scratch` hold
/// `shared + threads × per_thread` values of [`scratch_len`].
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
    assert!(fits(g), "winograd conv2d: not a 3x3 stride-1 window");
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
    let (shared_len, per_thread) = scratch_len(g);
    let (u, rest) = scratch.split_at_mut(shared_len);
    let tile_rows = g.batch * tiles_h(g);
    let unit_rows = tile_rows_per_unit(g);
    let units = tile_rows.div_ceil(unit_rows);
    // The 16 GEMMs do 16·Cin·Cout multiply-adds per tile.
    let flops = 2 * 16 * cin * out_c * tile_rows * tiles_w(g);
    let workers = parallel::workers(threads, units, flops);
    let row_len = g.out_w * out_c;
    let mut co0 = 0;
    while co0 < out_c {
        let cb = COUT_BLOCK.min(out_c - co0);
        let u = &mut u[..16 * cin * cb];
        transform_kernel(kernel, cin, out_c, co0, cb, u);
        let u = &*u;
        let mut remaining = &mut output[..g.out_pixels() * out_c];
        let mut next_row = 0;
        let work = (0..units).map(move |unit| {
            let tr0 = unit * unit_rows;
            let tr1 = (tr0 + unit_rows).min(tile_rows);
            let end = out_row(g, tr1 - 1) + 2.min(g.out_h - (tr1 - 1) % tiles_h(g) * 2);
            let (mine, rest) =
                std::mem::take(&mut remaining).split_at_mut((end - next_row) * row_len);
            remaining = rest;
            next_row = end;
            (tr0, tr1, mine)
        });
        parallel::run(workers, work, rest, per_thread, |(tr0, tr1, out), buf| {
            unit(g, input, u, bias, out_c, co0, cb, tr0, tr1, out, buf);
        });
        co0 += cb;
    }
}

/// First output row (over the batch) of tile row `tr`.
fn out_row(g: &ConvGeometry, tr: usize) -> usize {
    let th = tiles_h(g);
    (tr / th) * g.out_h + (tr % th) * 2
}

/// `U[p][ci][co - co0] = (G g Gᵀ)[p]` for output channels `co0 ..+ cb`.
fn transform_kernel(kernel: &[f32], cin: usize, cout: usize, co0: usize, cb: usize, u: &mut [f32]) {
    let plane = cin * cb;
    for ci in 0..cin {
        // g[k] (k = ky·3 + kx) is kernel[(k·cin + ci)·cout + co0 ..+ cb].
        let g: [&[f32]; 9] = std::array::from_fn(|k| {
            let at = (k * cin + ci) * cout + co0;
            &kernel[at..at + cb]
        });
        for j in 0..cb {
            let w = |ky: usize, kx: usize| g[ky * 3 + kx][j];
            // t = G g (4×3), then U = t Gᵀ (4×4).
            let mut t = [[0.0f32; 3]; 4];
            for (kx, col) in (0..3).map(|kx| (kx, [w(0, kx), w(1, kx), w(2, kx)])) {
                t[0][kx] = col[0];
                t[1][kx] = 0.5 * (col[0] + col[1] + col[2]);
                t[2][kx] = 0.5 * (col[0] - col[1] + col[2]);
                t[3][kx] = col[2];
            }
            for (i, row) in t.iter().enumerate() {
                let v = [
                    row[0],
                    0.5 * (row[0] + row[1] + row[2]),
                    0.5 * (row[0] - row[1] + row[2]),
                    row[2],
                ];
                for (jj, x) in v.into_iter().enumerate() {
                    u[(i * 4 + jj) * plane + ci * cb + j] = x;
                }
            }
        }
    }
}

/// One work unit: tile rows `tr0 .. tr1`, output channels `co0 ..+ cb`,
/// written into `out` (the unit's output rows, all `out_c` channels).
#[allow(clippy::too_many_arguments)]
fn unit(
    g: &ConvGeometry,
    input: &[f32],
    u: &[f32],
    bias: Option<&[f32]>,
    out_c: usize,
    co0: usize,
    cb: usize,
    tr0: usize,
    tr1: usize,
    out: &mut [f32],
    buf: &mut [f32],
) {
    let cin = g.in_c;
    let tw = tiles_w(g);
    let tiles = (tr1 - tr0) * tw;
    let (v, rest) = buf.split_at_mut(16 * tiles * cin);
    let m = &mut rest[..16 * tiles * cb];

    // Input transform: V[p][tile][ci].
    for tr in tr0..tr1 {
        let (b, ty) = (tr / tiles_h(g), tr % tiles_h(g));
        for tx in 0..tw {
            let tile = (tr - tr0) * tw + tx;
            transform_input_tile(g, input, b, ty, tx, tile, tiles, v);
        }
    }

    // 16 GEMMs: M[p] = V[p] · U[p].
    for p in 0..16 {
        sgemm(
            tiles,
            cin,
            cb,
            &v[p * tiles * cin..(p + 1) * tiles * cin],
            &u[p * cin * cb..(p + 1) * cin * cb],
            0.0,
            &mut m[p * tiles * cb..(p + 1) * tiles * cb],
        );
    }

    // Output transform, bias, store.
    let first_row = out_row(g, tr0);
    for tr in tr0..tr1 {
        let ty = tr % tiles_h(g);
        let rows = 2.min(g.out_h - 2 * ty);
        let row0 = out_row(g, tr) - first_row;
        for tx in 0..tw {
            let tile = (tr - tr0) * tw + tx;
            let cols = 2.min(g.out_w - 2 * tx);
            let mut c = 0;
            while c < cb {
                let lanes = if cb - c >= LANES { LANES } else { 1 };
                let at = |p: usize| (p * tiles + tile) * cb + c;
                let mut y = [[0.0f32; LANES]; 4];
                if lanes == LANES {
                    let mv: [[f32; LANES]; 16] =
                        std::array::from_fn(|p| m[at(p)..at(p) + LANES].try_into().unwrap());
                    output_transform(&mv, &mut y);
                } else {
                    let mv: [[f32; 1]; 16] = std::array::from_fn(|p| [m[at(p)]]);
                    let mut y1 = [[0.0f32; 1]; 4];
                    output_transform(&mv, &mut y1);
                    for (dst, src) in y.iter_mut().zip(y1) {
                        dst[0] = src[0];
                    }
                }
                for dy in 0..rows {
                    for dx in 0..cols {
                        let o = ((row0 + dy) * g.out_w + 2 * tx + dx) * out_c + co0 + c;
                        let dst = &mut out[o..o + lanes];
                        let src = &y[dy * 2 + dx][..lanes];
                        match bias {
                            Some(b) => {
                                let b = &b[co0 + c..co0 + c + lanes];
                                for ((d, s), b) in dst.iter_mut().zip(src).zip(b) {
                                    *d = s + b;
                                }
                            }
                            None => dst.copy_from_slice(src),
                        }
                    }
                }
                c += lanes;
            }
        }
    }
}

/// Writes `Bᵀ d B` of the 4×4 input patch of tile `(ty, tx)` of image `b`
/// into `v[p][tile][..]` (`v` holds `16 × tiles × in_c`).
#[allow(clippy::too_many_arguments)]
fn transform_input_tile(
    g: &ConvGeometry,
    input: &[f32],
    b: usize,
    ty: usize,
    tx: usize,
    tile: usize,
    tiles: usize,
    v: &mut [f32],
) {
    let cin = g.in_c;
    let image = &input[b * g.in_h * g.in_w * cin..(b + 1) * g.in_h * g.in_w * cin];
    let y0 = (2 * ty) as isize - g.pad_top as isize;
    let x0 = (2 * tx) as isize - g.pad_left as isize;
    // Offset of each of the 16 cells in `image`, or None in the padding.
    let cells: [Option<usize>; 16] = std::array::from_fn(|k| {
        let (iy, ix) = (y0 + (k / 4) as isize, x0 + (k % 4) as isize);
        let inside = iy >= 0 && ix >= 0 && (iy as usize) < g.in_h && (ix as usize) < g.in_w;
        inside.then(|| (iy as usize * g.in_w + ix as usize) * cin)
    });
    let mut c = 0;
    while c < cin {
        if cin - c >= LANES {
            let d: [[f32; LANES]; 16] = std::array::from_fn(|k| match cells[k] {
                Some(at) => image[at + c..at + c + LANES].try_into().unwrap(),
                None => [0.0; LANES],
            });
            let out = input_transform(&d);
            for (p, x) in out.iter().enumerate() {
                let at = (p * tiles + tile) * cin + c;
                v[at..at + LANES].copy_from_slice(x);
            }
            c += LANES;
        } else {
            let d: [[f32; 1]; 16] =
                std::array::from_fn(|k| [cells[k].map_or(0.0, |at| image[at + c])]);
            let out = input_transform(&d);
            for (p, x) in out.iter().enumerate() {
                v[(p * tiles + tile) * cin + c] = x[0];
            }
            c += 1;
        }
    }
}

/// `Bᵀ d B` lane by lane, with `Bᵀ = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]`.
#[inline(always)]
fn input_transform<const L: usize>(d: &[[f32; L]; 16]) -> [[f32; L]; 16] {
    let mut t = [[0.0f32; L]; 16];
    for j in 0..4 {
        for l in 0..L {
            let (d0, d1, d2, d3) = (d[j][l], d[4 + j][l], d[8 + j][l], d[12 + j][l]);
            t[j][l] = d0 - d2;
            t[4 + j][l] = d1 + d2;
            t[8 + j][l] = d2 - d1;
            t[12 + j][l] = d1 - d3;
        }
    }
    let mut v = [[0.0f32; L]; 16];
    for i in 0..4 {
        for l in 0..L {
            let (t0, t1, t2, t3) = (
                t[4 * i][l],
                t[4 * i + 1][l],
                t[4 * i + 2][l],
                t[4 * i + 3][l],
            );
            v[4 * i][l] = t0 - t2;
            v[4 * i + 1][l] = t1 + t2;
            v[4 * i + 2][l] = t2 - t1;
            v[4 * i + 3][l] = t1 - t3;
        }
    }
    v
}

/// `Aᵀ m A` lane by lane, with `Aᵀ = [1 1 1 0; 0 1 -1 -1]`: the 2×2
/// outputs, row-major.
#[inline(always)]
fn output_transform<const L: usize>(m: &[[f32; L]; 16], y: &mut [[f32; L]; 4]) {
    let mut s = [[0.0f32; L]; 8];
    for j in 0..4 {
        for l in 0..L {
            let (m0, m1, m2, m3) = (m[j][l], m[4 + j][l], m[8 + j][l], m[12 + j][l]);
            s[j][l] = m0 + m1 + m2;
            s[4 + j][l] = m1 - m2 - m3;
        }
    }
    for i in 0..2 {
        for l in 0..L {
            let (s0, s1, s2, s3) = (
                s[4 * i][l],
                s[4 * i + 1][l],
                s[4 * i + 2][l],
                s[4 * i + 3][l],
            );
            y[2 * i][l] = s0 + s1 + s2;
            y[2 * i + 1][l] = s1 - s2 - s3;
        }
    }
}
