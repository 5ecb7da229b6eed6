//! A safe front to `matrixmultiply::sgemm` for row-major matrices.
//!
//! Products with very few rows (a dense layer at batch 1-8) skip
//! `matrixmultiply`, which would pack all of `b` to use it for a handful of
//! rows: they stream `b` once per small block of rows instead, each
//! block of `c` held in registers.

use std::sync::atomic::{AtomicUsize, Ordering};

use super::isa::{self, dispatch, Isa, Kernel, Scalar, Simd, PREFETCH_ROWS};

#[cfg(test)]
mod tests;

/// Calls that reached `matrixmultiply::sgemm`, each of which allocates
/// (and frees) one packing buffer.
static SGEMM_CALLS: AtomicUsize = AtomicUsize::new(0);

/// How many products have gone to `matrixmultiply` in this process so far
/// (from any thread): each allocates one packing buffer, the only heap
/// allocation the kernels make in steady state.
pub fn sgemm_calls() -> usize {
    SGEMM_CALLS.load(Ordering::Relaxed)
}

/// Below this many rows, [`sgemm`] streams `b` instead of packing it.
pub const SMALL_M: usize = 8;

/// Rows of `b` each row of `c` takes per load and store of it, when `b`
/// is read whole row after row ([`SmallM::streamed`]).
const STREAM_ROWS: usize = 4;

/// `c = a · b + beta · c` for row-major `a` (`m × k`), `b` (`k × n`) and
/// `c` (`m × n`).
///
/// # Panics
/// When a slice is shorter than its dimensions say: that is a bug in the
/// caller (every caller in strata derives the sizes from the types).
pub fn sgemm(m: usize, k: usize, n: usize, a: &[f32], b: &[f32], beta: f32, c: &mut [f32]) {
    sgemm_strided(m, k, n, a, k, b, n, beta, c, n);
}

/// `c = a · b + beta · c` for row-major matrices with leading dimensions
/// (distance between consecutive rows) `lda`, `ldb` and `ldc`: `a` is
/// `m × k` (`lda >= k`), `b` is `k × n` (`ldb >= n`), `c` is `m × n`
/// (`ldc >= n`).
///
/// # Panics
/// When a slice is shorter than its dimensions say, or a leading dimension
/// is smaller than its row.
#[allow(clippy::too_many_arguments)]
pub fn sgemm_strided(
    m: usize,
    k: usize,
    n: usize,
    a: &[f32],
    lda: usize,
    b: &[f32],
    ldb: usize,
    beta: f32,
    c: &mut [f32],
    ldc: usize,
) {
    assert!(
        lda >= k && ldb >= n && ldc >= n,
        "sgemm: leading dimension below row length"
    );
    // The last row of each matrix need not be padded to its full stride.
    // A span that overflows is longer than any slice.
    let span = |rows: usize, ld: usize, cols: usize| {
        if rows == 0 || cols == 0 {
            0
        } else {
            (rows - 1)
                .checked_mul(ld)
                .and_then(|v| v.checked_add(cols))
                .unwrap_or(usize::MAX)
        }
    };
    assert!(
        a.len() >= span(m, lda, k),
        "sgemm: a has {} values, needs {m}x{k} (stride {lda})",
        a.len()
    );
    assert!(
        b.len() >= span(k, ldb, n),
        "sgemm: b has {} values, needs {k}x{n} (stride {ldb})",
        b.len()
    );
    assert!(
        c.len() >= span(m, ldc, n),
        "sgemm: c has {} values, needs {m}x{n} (stride {ldc})",
        c.len()
    );
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        // sgemm_general gives beta = 0 its meaning (overwrite, even NaN).
        sgemm_general((m, k, n), a, (lda, 1), b, (ldb, 1), beta, c, (ldc, 1));
        return;
    }
    if m <= SMALL_M {
        let p = SmallM {
            m,
            k,
            n,
            a,
            lda,
            b,
            ldb,
            beta,
        };
        dispatch(Isa::detect(), SmallMJob { p, c, ldc });
        return;
    }
    sgemm_general((m, k, n), a, (lda, 1), b, (ldb, 1), beta, c, (ldc, 1));
}

/// The operands of a product with few rows (see [`SMALL_M`]), already
/// checked against their dimensions by [`sgemm_strided`].
struct SmallM<'a> {
    m: usize,
    k: usize,
    n: usize,
    a: &'a [f32],
    lda: usize,
    b: &'a [f32],
    ldb: usize,
    beta: f32,
}

impl SmallM<'_> {
    /// `c = beta · c` first (zeros for `beta = 0`, even over NaN).
    fn scale(&self, c: &mut [f32], ldc: usize) {
        for i in 0..self.m {
            let row = &mut c[i * ldc..i * ldc + self.n];
            if self.beta == 0.0 {
                row.fill(0.0);
            } else if self.beta != 1.0 {
                row.iter_mut().for_each(|v| *v *= self.beta);
            }
        }
    }

    /// Adds `a · b` to rows `i0 .. i0 + MR` of `c` by blocks of `COLS`
    /// registers of columns, then single registers, then single columns.
    #[inline(always)]
    fn rows<S: Simd, const MR: usize, const COLS: usize>(
        &self,
        s: S,
        i0: usize,
        c: &mut [f32],
        ldc: usize,
    ) {
        let (n, lanes) = (self.n, S::LANES);
        let mut j = 0;
        // Rows `i0 .. i0 + MR` are below `m` (the caller's loop) and every
        // block's columns end at or before `n`; `sgemm_strided` checked
        // `a`, `b` and `c` against `m`, `k`, `n` and their strides.
        while j + COLS * lanes <= n {
            // SAFETY: as said above the loop.
            unsafe { self.block::<S, MR, COLS>(s, i0, j, c, ldc) };
            j += COLS * lanes;
        }
        while j + lanes <= n {
            // SAFETY: as said above the first loop.
            unsafe { self.block::<S, MR, 1>(s, i0, j, c, ldc) };
            j += lanes;
        }
        while j < n {
            // SAFETY: as said above the first loop.
            unsafe { self.block::<Scalar, MR, 1>(Scalar, i0, j, c, ldc) };
            j += 1;
        }
    }

    /// Rows `i0 .. i0 + MR` × columns `j .. j + R · LANES` of `c` (see
    /// [`block`]).
    ///
    /// # Safety
    /// `i0 + MR <= m`, `j + R · LANES <= n`, and the slices hold what
    /// `sgemm_strided` checked for `m`, `k`, `n` and the strides.
    #[inline(always)]
    unsafe fn block<S: Simd, const MR: usize, const R: usize>(
        &self,
        s: S,
        i0: usize,
        j: usize,
        c: &mut [f32],
        ldc: usize,
    ) {
        // SAFETY: the caller's bounds put element (i0 + i, p) of `a` at
        // `(i0 + i) · lda + p` inside it for i < MR, p < k, and the rest
        // as `block` asks.
        unsafe {
            block::<S, MR, R>(
                s,
                (&self.a[i0 * self.lda..], self.lda, 1),
                (self.b, self.ldb),
                self.k,
                j,
                (&mut c[i0 * ldc..], ldc),
            )
        }
    }
}

/// Rows `0 .. MR` × columns `j .. j + R · LANES` of `c`, held in registers
/// from their old values while `b`'s rows stream past, each row `p` adding
/// `a(i, p) · b[p][j ..]`, fused, in the order of `p`: one load of `R`
/// registers of `b` and `MR` broadcasts of `a` per `MR · R` multiply-adds.
/// Element `(i, p)` of `a` is `a[i · a_rs + p · a_cs]` (a row-major `a`,
/// or a transposed one read in place).
///
/// # Safety
/// For `i < MR`, `p < k`, `r < R`: `a[i · a_rs + p · a_cs]`, `b[p · ldb +
/// j + r · LANES ..][.. LANES]` and `c[i · ldc + j + r · LANES ..][..
/// LANES]` are inside their slices.
#[inline(always)]
unsafe fn block<S: Simd, const MR: usize, const R: usize>(
    s: S,
    (a, a_rs, a_cs): (&[f32], usize, usize),
    (b, ldb): (&[f32], usize),
    k: usize,
    j: usize,
    (c, ldc): (&mut [f32], usize),
) {
    let lanes = S::LANES;
    let (a, b, cp) = (a.as_ptr(), b.as_ptr(), c.as_mut_ptr());
    // SAFETY: the caller's bounds; loads and stores are unaligned.
    unsafe {
        let mut acc: [[S::V; R]; MR] = std::array::from_fn(|i| {
            std::array::from_fn(|r| s.load(cp.add(i * ldc + j + r * lanes)))
        });
        for p in 0..k {
            let bp = b.add(p * ldb + j);
            // `b`'s rows are `ldb` apart, too far for the hardware
            // prefetchers once a row is a few KiB (aᵀ·b over a large
            // kernel gradient reads it in runs of a few lines per row).
            s.prefetch_span(bp.wrapping_add(PREFETCH_ROWS * ldb), R * lanes);
            let bv: [S::V; R] = std::array::from_fn(|r| s.load(bp.add(r * lanes)));
            let ap = a.add(p * a_cs);
            for (i, acc) in acc.iter_mut().enumerate() {
                let x = s.splat(*ap.add(i * a_rs));
                for (v, w) in acc.iter_mut().zip(&bv) {
                    *v = s.fmadd(x, *w, *v);
                }
            }
        }
        for (i, acc) in acc.iter().enumerate() {
            for (r, v) in acc.iter().enumerate() {
                s.store(cp.add(i * ldc + j + r * lanes), *v);
            }
        }
    }
}

/// A small-`m` product and its output, run by [`dispatch`]: rows in small
/// blocks, each block's columns in registers.
struct SmallMJob<'a, 'c> {
    p: SmallM<'a>,
    c: &'c mut [f32],
    ldc: usize,
}

impl Kernel for SmallMJob<'_, '_> {
    type Output = ();

    #[inline(always)]
    fn run<S: Simd>(self, s: S) {
        let SmallMJob { p, c, ldc } = self;
        p.scale(c, ldc);
        p.all_rows(s, c, ldc);
    }
}

impl SmallM<'_> {
    /// A `b` that stays in L2 ([`SmallM::streams`] false): rows in
    /// blocks of up to 8 (4 on AVX2), each with as many registers of
    /// columns as leave room for one register of `b` per column register
    /// and a broadcast: 16 accumulators where there are 32 registers, 12
    /// where there are 16 (AVX2). A larger `b` is read whole, row after
    /// row ([`SmallM::streamed`]).
    #[inline(always)]
    fn all_rows<S: Simd>(&self, s: S, c: &mut [f32], ldc: usize) {
        match self.streams() {
            true => self.streamed(s, c, ldc),
            false => self.row_blocks(s, c, ldc),
        }
    }

    /// Whether `b` is read row after row, whole ([`SmallM::streamed`]):
    /// when it is too large to stay in half of L2, so it comes from memory
    /// on every call.
    fn streams(&self) -> bool {
        self.k.saturating_mul(self.n).saturating_mul(4) > isa::l2_bytes() / 2
    }

    /// `c += a · b` reading `b` start to end, [`STREAM_ROWS`] rows at a
    /// time, each row whole: the hardware prefetchers follow a few
    /// sequential streams at full speed, where register blocks read `b` in
    /// runs of a few lines `ldb` apart (a Dense layer at batch 1-8 reads
    /// its whole kernel on every call: 2304 × 512 in cifar_cnn, which the
    /// register blocks read at a third of the speed on an AMD Zen 3). For
    /// each row of `c`, each register of columns is loaded, takes the
    /// group's rows of `b` (read from L1 after the first row of `c`), and
    /// is stored: every column adds its terms in the order of `p`, fused,
    /// as the register blocks do: the same result.
    #[inline(always)]
    fn streamed<S: Simd>(&self, s: S, c: &mut [f32], ldc: usize) {
        let mut p0 = 0;
        while p0 + STREAM_ROWS <= self.k {
            self.stream_group::<S, STREAM_ROWS>(s, p0, c, ldc);
            p0 += STREAM_ROWS;
        }
        while p0 < self.k {
            self.stream_group::<S, 1>(s, p0, c, ldc);
            p0 += 1;
        }
    }

    /// Rows `p0 .. p0 + Q` of `b` onto every row of `c` (see
    /// [`SmallM::streamed`]).
    #[inline(always)]
    fn stream_group<S: Simd, const Q: usize>(&self, s: S, p0: usize, c: &mut [f32], ldc: usize) {
        let (n, lanes) = (self.n, S::LANES);
        let whole = n / lanes * lanes;
        let rows: [&[f32]; Q] = std::array::from_fn(|q| {
            let start = (p0 + q) * self.ldb;
            &self.b[start..start + n]
        });
        for i in 0..self.m {
            let a: [f32; Q] = std::array::from_fn(|q| self.a[i * self.lda + p0 + q]);
            let x: [S::V; Q] = std::array::from_fn(|q| s.splat(a[q]));
            let c = &mut c[i * ldc..i * ldc + n];
            let cp = c.as_mut_ptr();
            for j in (0..whole).step_by(lanes) {
                // SAFETY: `j + lanes <= whole <= n`, the length of `c` and
                // of every row; loads and stores are unaligned.
                unsafe {
                    let mut y = s.load(cp.add(j));
                    for q in 0..Q {
                        y = s.fmadd(x[q], s.load(rows[q].as_ptr().add(j)), y);
                    }
                    s.store(cp.add(j), y);
                }
            }
            for (j, y) in c.iter_mut().enumerate().skip(whole) {
                for q in 0..Q {
                    *y = Scalar.fmadd(a[q], rows[q][j], *y);
                }
            }
        }
    }

    /// The register blocks of [`SmallM::all_rows`].
    #[inline(always)]
    fn row_blocks<S: Simd>(&self, s: S, c: &mut [f32], ldc: usize) {
        let mut i0 = 0;
        let tallest = max_block_rows::<S>();
        let narrow = tallest == 4;
        while i0 < self.m {
            // The tallest block, else blocks of up to 4 rows.
            let rows = match self.m - i0 {
                left if left >= tallest => tallest,
                left => left.min(4),
            };
            match (narrow, rows) {
                (false, 8) => self.rows::<S, 8, 2>(s, i0, c, ldc),
                (false, 4) => self.rows::<S, 4, 4>(s, i0, c, ldc),
                (false, 3) => self.rows::<S, 3, 5>(s, i0, c, ldc),
                (false, 2) => self.rows::<S, 2, 8>(s, i0, c, ldc),
                (false, _) => self.rows::<S, 1, 16>(s, i0, c, ldc),
                (true, 4) => self.rows::<S, 4, 3>(s, i0, c, ldc),
                (true, 3) => self.rows::<S, 3, 4>(s, i0, c, ldc),
                (true, 2) => self.rows::<S, 2, 6>(s, i0, c, ldc),
                (true, _) => self.rows::<S, 1, 12>(s, i0, c, ldc),
            }
            i0 += rows;
        }
    }
}

/// Rows of `c` in the small-`m` path's tallest block: 4 where there are 16
/// vector registers (AVX2, whose registers are 8 floats wide), 8 where
/// there are 32.
fn max_block_rows<S: Simd>() -> usize {
    if S::LANES == 8 {
        4
    } else {
        8
    }
}

/// `c = a · b + beta · c` for matrices given by element strides:
/// element `(i, p)` of `a` is `a[i * a_rs + p * a_cs]`, likewise `b`
/// (`k × n`) and `c` (`m × n`). Strides let a transposed operand be read in
/// place. This is the one place strata calls `matrixmultiply`.
///
/// # Panics
/// When a slice is too short for its dimensions and strides (a caller bug),
/// or a stride is above `isize::MAX` (a negative stride cast to `usize`).
#[allow(clippy::too_many_arguments)]
pub fn sgemm_general(
    (m, k, n): (usize, usize, usize),
    a: &[f32],
    (a_rs, a_cs): (usize, usize),
    b: &[f32],
    (b_rs, b_cs): (usize, usize),
    beta: f32,
    c: &mut [f32],
    (c_rs, c_cs): (usize, usize),
) {
    if m == 0 || n == 0 {
        return;
    }
    // matrixmultiply takes strides as isize: one above isize::MAX would
    // turn negative there.
    let strides = [a_rs, a_cs, b_rs, b_cs, c_rs, c_cs];
    assert!(
        strides.iter().all(|&s| isize::try_from(s).is_ok()),
        "sgemm_general: stride above isize::MAX in {strides:?}"
    );
    // The largest offset a `rows × cols` operand reaches; one that
    // overflows is past the end of any slice.
    let last = |rows: usize, cols: usize, rs: usize, cs: usize| {
        (rows - 1)
            .checked_mul(rs)
            .zip((cols - 1).checked_mul(cs))
            .and_then(|(r, c)| r.checked_add(c))
            .unwrap_or(usize::MAX)
    };
    assert!(
        c.len() > last(m, n, c_rs, c_cs),
        "sgemm_general: c too short"
    );
    if k == 0 {
        for i in 0..m {
            for j in 0..n {
                // beta = 0 overwrites c, as matrixmultiply does when k > 0.
                let v = &mut c[i * c_rs + j * c_cs];
                *v = if beta == 0.0 { 0.0 } else { *v * beta };
            }
        }
        return;
    }
    assert!(
        a.len() > last(m, k, a_rs, a_cs),
        "sgemm_general: a too short"
    );
    assert!(
        b.len() > last(k, n, b_rs, b_cs),
        "sgemm_general: b too short"
    );
    SGEMM_CALLS.fetch_add(1, Ordering::Relaxed);
    // SAFETY: the asserts above bound, without wrapping, the largest offset
    // each operand's strides reach (all strides are non-negative and fit
    // isize, so the casts below keep them), so every element
    // matrixmultiply reads or writes lies inside its slice; `c` is a unique
    // borrow, so it overlaps neither `a` nor `b`.
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            1.0,
            a.as_ptr(),
            a_rs as isize,
            a_cs as isize,
            b.as_ptr(),
            b_rs as isize,
            b_cs as isize,
            beta,
            c.as_mut_ptr(),
            c_rs as isize,
            c_cs as isize,
        );
    }
}

/// `c += aᵀ · b` for row-major `a` (`kk × m`, rows `lda` apart), `b`
/// (`kk × n`, rows `ldb` apart) and `c` (`m × n`, rows `ldc` apart),
/// without packing: blocks of `c` stay in registers while the rows of `a`
/// and `b` stream past together (a kernel's gradient, `patchesᵀ · dY`,
/// whose operands `matrixmultiply` would first copy in full).
///
/// # Panics
/// When a slice is shorter than its dimensions and stride say, or a stride
/// is smaller than its row.
#[allow(clippy::too_many_arguments)]
pub(crate) fn add_at_b(
    (m, kk, n): (usize, usize, usize),
    a: &[f32],
    lda: usize,
    b: &[f32],
    ldb: usize,
    c: &mut [f32],
    ldc: usize,
) {
    assert!(
        lda >= m && ldb >= n && ldc >= n,
        "add_at_b: leading dimension below row length"
    );
    let span = |rows: usize, ld: usize, cols: usize| match rows == 0 || cols == 0 {
        true => Some(0),
        false => (rows - 1).checked_mul(ld)?.checked_add(cols),
    };
    let fits = |len: usize, rows, ld, cols| span(rows, ld, cols).is_some_and(|s| len >= s);
    assert!(
        fits(a.len(), kk, lda, m) && fits(b.len(), kk, ldb, n) && fits(c.len(), m, ldc, n),
        "add_at_b: a slice is shorter than {kk}x{m}ᵀ · {kk}x{n}"
    );
    if m == 0 || n == 0 || kk == 0 {
        return;
    }
    let p = AtB {
        m,
        kk,
        n,
        a,
        lda,
        b,
        ldb,
    };
    dispatch(Isa::detect(), AtBJob { p, c, ldc });
}

/// The operands of [`add_at_b`], checked against their sizes.
struct AtB<'a> {
    m: usize,
    kk: usize,
    n: usize,
    a: &'a [f32],
    lda: usize,
    b: &'a [f32],
    ldb: usize,
}

struct AtBJob<'a, 'c> {
    p: AtB<'a>,
    c: &'c mut [f32],
    ldc: usize,
}

impl Kernel for AtBJob<'_, '_> {
    type Output = ();

    #[inline(always)]
    fn run<S: Simd>(self, s: S) {
        let AtBJob { p, c, ldc } = self;
        // Rows of `c` per block as in the direct convolution kernel: as
        // many as leave registers for `b`'s and a broadcast.
        match (S::PIXELS, p.n >= 2 * S::LANES) {
            (12, true) => p.columns::<S, 12, 2>(s, c, ldc),
            (12, false) => p.columns::<S, 24, 1>(s, c, ldc),
            (6, true) => p.columns::<S, 6, 2>(s, c, ldc),
            (6, false) => p.columns::<S, 12, 1>(s, c, ldc),
            _ => p.columns::<S, 4, 1>(s, c, ldc),
        }
    }
}

impl AtB<'_> {
    /// `c`'s columns in blocks of `R` registers, then single registers,
    /// then single columns.
    #[inline(always)]
    fn columns<S: Simd, const T: usize, const R: usize>(&self, s: S, c: &mut [f32], ldc: usize) {
        let (n, lanes) = (self.n, S::LANES);
        let mut j = 0;
        while j + R * lanes <= n {
            self.rows::<S, T, R>(s, j, c, ldc);
            j += R * lanes;
        }
        while j + lanes <= n {
            self.rows::<S, T, 1>(s, j, c, ldc);
            j += lanes;
        }
        while j < n {
            self.rows::<Scalar, T, 1>(Scalar, j, c, ldc);
            j += 1;
        }
    }

    /// Columns `j .. j + R · LANES` of every row of `c`: blocks of `T`
    /// rows, then single rows.
    #[inline(always)]
    fn rows<S: Simd, const T: usize, const R: usize>(
        &self,
        s: S,
        j: usize,
        c: &mut [f32],
        ldc: usize,
    ) {
        // Every block below ends at or before row `m` and column `j + R ·
        // LANES <= n` (the caller's loops); `add_at_b` checked the slices
        // against `m`, `kk`, `n` and the strides.
        let mut t = 0;
        while t + T <= self.m {
            // SAFETY: as said above the loop.
            unsafe { self.block::<S, T, R>(s, t, j, c, ldc) };
            t += T;
        }
        while t < self.m {
            // SAFETY: as said above the first loop.
            unsafe { self.block::<S, 1, R>(s, t, j, c, ldc) };
            t += 1;
        }
    }

    /// Rows `t0 .. t0 + T` × columns `j .. j + R · LANES` of `c` (see
    /// [`block`], with `a` read transposed).
    ///
    /// # Safety
    /// `t0 + T <= m`, `j + R · LANES <= n`, and the slices hold what
    /// [`add_at_b`] checked.
    #[inline(always)]
    unsafe fn block<S: Simd, const T: usize, const R: usize>(
        &self,
        s: S,
        t0: usize,
        j: usize,
        c: &mut [f32],
        ldc: usize,
    ) {
        // SAFETY: element (t0 + i, p) of `aᵀ` is `a[p · lda + t0 + i]`,
        // inside `a` for i < T, p < kk, and the rest as `block` asks.
        unsafe {
            block::<S, T, R>(
                s,
                (&self.a[t0..], 1, self.lda),
                (self.b, self.ldb),
                self.kk,
                j,
                (&mut c[t0 * ldc..], ldc),
            )
        }
    }
}
