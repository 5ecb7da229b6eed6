//! The instruction set and cache sizes of this machine, detected once, and
//! the one place that turns the detected instruction set into compiled code.
//!
//! A kernel that wants SIMD implements [`Kernel`]: its `run::<S>` is written
//! once, generic over a [`Simd`] vector type, and [`dispatch`] instantiates
//! it inside a function compiled for that instruction set (as
//! `#[target_feature]` requires). The vector types are proof tokens: only
//! `dispatch` creates one, after checking the CPU has the features, so the
//! generic code stays safe to call.

use std::sync::OnceLock;

/// The SIMD instruction set the kernels use on this machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isa {
    /// 16-lane registers, 32 of them: direct-kernel blocks of 12 pixels ×
    /// 32 channels.
    Avx512,
    /// 8-lane registers with FMA, 16 of them: blocks of 6 pixels × 16
    /// channels.
    Avx2,
    /// AArch64's 4-lane registers (mandatory there), 32 of them: blocks of
    /// 12 pixels × 8 channels.
    Neon,
    /// No SIMD kernel for this machine: portable code only.
    None,
}

impl Isa {
    /// Every instruction set with SIMD kernels, on any target: a test
    /// tries those that are [available](Isa::available).
    pub const SIMD: [Isa; 3] = [Isa::Avx512, Isa::Avx2, Isa::Neon];

    /// What this CPU supports, detected once per process. The environment
    /// variable `STRATA_ISA` (`avx2` or `none`) caps it, to measure or test
    /// the narrower kernels on a wider machine (`none` on any machine,
    /// `avx2` on one with AVX-512).
    pub fn detect() -> Isa {
        static DETECTED: OnceLock<Isa> = OnceLock::new();
        *DETECTED.get_or_init(|| {
            let cpu = Isa::cpu();
            match std::env::var("STRATA_ISA").as_deref() {
                Ok("none") => Isa::None,
                Ok("avx2") if cpu == Isa::Avx512 => Isa::Avx2,
                _ => cpu,
            }
        })
    }

    /// What this CPU supports.
    fn cpu() -> Isa {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                return Isa::Avx512;
            }
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                return Isa::Avx2;
            }
        }
        #[cfg(target_arch = "aarch64")]
        {
            if std::arch::is_aarch64_feature_detected!("neon") {
                return Isa::Neon;
            }
        }
        Isa::None
    }

    /// Whether `self` can run here (within the `STRATA_ISA` cap).
    pub fn available(self) -> bool {
        match self {
            Isa::None => false,
            Isa::Avx2 => matches!(Isa::detect(), Isa::Avx2 | Isa::Avx512),
            Isa::Avx512 => Isa::detect() == Isa::Avx512,
            Isa::Neon => Isa::detect() == Isa::Neon,
        }
    }

    /// `(pixels, channels)` of one register block of the direct kernel.
    pub fn block(self) -> (usize, usize) {
        let pixels = match self {
            Isa::Avx512 | Isa::Neon => 12,
            Isa::Avx2 => 6,
            Isa::None => return (1, 1),
        };
        (pixels, 2 * self.lanes())
    }

    /// `(pixels, channels)` the direct kernel needs at least: a row of its
    /// smallest block's pixels and one register of channels (fewer than two
    /// registers take blocks one register wide).
    pub fn min_block(self) -> (usize, usize) {
        let pixels = match self {
            Isa::Avx512 | Isa::Neon => 8,
            Isa::Avx2 => 6,
            Isa::None => 1,
        };
        (pixels, self.lanes())
    }

    /// Floats per vector register.
    pub fn lanes(self) -> usize {
        match self {
            Isa::Avx512 => 16,
            Isa::Avx2 => 8,
            Isa::Neon => 4,
            Isa::None => 1,
        }
    }
}

/// Rows ahead of the one in use whose cache lines a kernel streaming a
/// matrix row by row asks for ([`Simd::prefetch_span`]): a memory latency
/// of a few hundred cycles over a dozen or so multiply-adds per row.
pub(crate) const PREFETCH_ROWS: usize = 16;

/// One vector register type of an instruction set, and the operations the
/// micro-kernels need. A value of the type is the proof that the CPU has
/// the instruction set: only [`dispatch`] makes one.
pub(crate) trait Simd: Copy {
    /// A register of `LANES` floats.
    type V: Copy;
    /// Floats per register.
    const LANES: usize;
    /// Pixels per register block of the direct kernel (two registers of
    /// output channels each): as many as leave registers for the kernel
    /// row and the broadcast value.
    const PIXELS: usize;
    /// A register of zeros.
    fn zero(self) -> Self::V;
    /// `x` in every lane.
    fn splat(self, x: f32) -> Self::V;
    /// `a · b + c`, rounded once.
    fn fmadd(self, a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    /// `a · b`, rounded.
    fn mul(self, a: Self::V, b: Self::V) -> Self::V;
    /// `a + b`, rounded.
    fn add(self, a: Self::V, b: Self::V) -> Self::V;
    /// `a - b`, rounded.
    fn sub(self, a: Self::V, b: Self::V) -> Self::V;
    /// `lo` where `v < lo`, then `hi` where that is `> hi`, lane by lane:
    /// compares, so a NaN stays a NaN and `-0` stays `-0` (as
    /// [`Step::Clamp`](super::epilogue::Step::Clamp) computes it).
    fn clamp(self, v: Self::V, lo: Self::V, hi: Self::V) -> Self::V;
    /// `b` where `b > a` or `b` is a NaN, else `a`, lane by lane: max
    /// pooling's running maximum, in which a NaN, once seen, wins (as in
    /// TensorFlow) and the earlier of equal values (`-0` before `+0`) stays.
    fn max_or_nan(self, a: Self::V, b: Self::V) -> Self::V;
    /// Loads `LANES` floats from `p`, unaligned.
    ///
    /// # Safety
    /// `p .. p + LANES` must be readable.
    unsafe fn load(self, p: *const f32) -> Self::V;
    /// Stores `LANES` floats at `p`, unaligned.
    ///
    /// # Safety
    /// `p .. p + LANES` must be writable.
    unsafe fn store(self, p: *mut f32, v: Self::V);
    /// Asks for the cache line holding `p` ahead of its use. A hint: any
    /// address, even one outside every allocation, is fine (nothing is
    /// read, nothing faults). A no-op where the instruction set has none.
    #[inline(always)]
    fn prefetch(self, p: *const f32) {
        let _ = p;
    }
    /// [`Simd::prefetch`] with the hint for the outer caches (PREFETCHT1 on
    /// x86): for data wanted later than the next few hundred cycles, which
    /// a CPU that honours the hint keeps out of L1, where it would push out
    /// what is in use.
    #[inline(always)]
    fn prefetch_l2(self, p: *const f32) {
        let _ = p;
    }
    /// [`Simd::prefetch`] of every cache line of `p .. p + len` (`len > 0`).
    #[inline(always)]
    fn prefetch_span(self, p: *const f32, len: usize) {
        // A line holds 16 floats: the line of every 16th value, and of the
        // last one, which may start a line of its own.
        let mut i = 0;
        while i < len {
            self.prefetch(p.wrapping_add(i));
            i += 16;
        }
        self.prefetch(p.wrapping_add(len - 1));
    }
}

/// Portable code: one lane, no feature required.
#[derive(Clone, Copy)]
pub(crate) struct Scalar;

impl Simd for Scalar {
    type V = f32;
    const LANES: usize = 1;
    const PIXELS: usize = 1;
    #[inline(always)]
    fn zero(self) -> f32 {
        0.0
    }
    #[inline(always)]
    fn splat(self, x: f32) -> f32 {
        x
    }
    #[inline(always)]
    fn fmadd(self, a: f32, b: f32, c: f32) -> f32 {
        a.mul_add(b, c)
    }
    #[inline(always)]
    fn mul(self, a: f32, b: f32) -> f32 {
        a * b
    }
    #[inline(always)]
    fn add(self, a: f32, b: f32) -> f32 {
        a + b
    }
    #[inline(always)]
    fn sub(self, a: f32, b: f32) -> f32 {
        a - b
    }
    #[inline(always)]
    fn clamp(self, v: f32, lo: f32, hi: f32) -> f32 {
        let x = if v < lo { lo } else { v };
        if x > hi {
            hi
        } else {
            x
        }
    }
    #[inline(always)]
    fn max_or_nan(self, a: f32, b: f32) -> f32 {
        if b > a || b.is_nan() {
            b
        } else {
            a
        }
    }
    #[inline(always)]
    unsafe fn load(self, p: *const f32) -> f32 {
        // SAFETY: the caller guarantees `p` is readable.
        unsafe { *p }
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32, v: f32) {
        // SAFETY: the caller guarantees `p` is writable.
        unsafe { *p = v }
    }
}

/// A computation written once over the vector width (see the module doc).
pub(crate) trait Kernel {
    /// What the computation returns.
    type Output;
    /// The computation with vectors `S`; implementations should be
    /// `#[inline(always)]` so that they are compiled inside the
    /// instruction set's entry point.
    fn run<S: Simd>(self, simd: S) -> Self::Output;
}

/// Runs `kernel` compiled for `isa`: the one place the kernels match on
/// the instruction set.
///
/// # Panics
/// When `isa` is not [`Isa::None`] and not [available](Isa::available).
pub(crate) fn dispatch<K: Kernel>(isa: Isa, kernel: K) -> K::Output {
    assert!(
        isa == Isa::None || isa.available(),
        "{isa:?} is not available on this CPU"
    );
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `available` checked that the CPU has AVX-512F.
        Isa::Avx512 => unsafe { x86::avx512(kernel) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `available` checked that the CPU has AVX2 and FMA.
        Isa::Avx2 => unsafe { x86::avx2(kernel) },
        #[cfg(target_arch = "aarch64")]
        // SAFETY: `available` checked that the CPU has NEON.
        Isa::Neon => unsafe { arm::neon(kernel) },
        _ => kernel.run(Scalar),
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{Kernel, Simd};
    use std::arch::x86_64::*;

    /// AVX-512F vectors; the private field keeps construction here.
    #[derive(Clone, Copy)]
    pub(crate) struct Avx512(());

    /// AVX2 + FMA vectors; the private field keeps construction here.
    #[derive(Clone, Copy)]
    pub(crate) struct Avx2(());

    /// # Safety
    /// The CPU must support AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn avx512<K: Kernel>(kernel: K) -> K::Output {
        kernel.run(Avx512(()))
    }

    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn avx2<K: Kernel>(kernel: K) -> K::Output {
        kernel.run(Avx2(()))
    }

    impl Simd for Avx512 {
        type V = __m512;
        const LANES: usize = 16;
        const PIXELS: usize = 12;
        #[inline(always)]
        fn zero(self) -> __m512 {
            // SAFETY: an `Avx512` exists only where the CPU has AVX-512F.
            unsafe { _mm512_setzero_ps() }
        }
        #[inline(always)]
        fn splat(self, x: f32) -> __m512 {
            // SAFETY: as in `zero`.
            unsafe { _mm512_set1_ps(x) }
        }
        #[inline(always)]
        fn fmadd(self, a: __m512, b: __m512, c: __m512) -> __m512 {
            // SAFETY: as in `zero`.
            unsafe { _mm512_fmadd_ps(a, b, c) }
        }
        #[inline(always)]
        fn mul(self, a: __m512, b: __m512) -> __m512 {
            // SAFETY: as in `zero`.
            unsafe { _mm512_mul_ps(a, b) }
        }
        #[inline(always)]
        fn add(self, a: __m512, b: __m512) -> __m512 {
            // SAFETY: as in `zero`.
            unsafe { _mm512_add_ps(a, b) }
        }
        #[inline(always)]
        fn sub(self, a: __m512, b: __m512) -> __m512 {
            // SAFETY: as in `zero`.
            unsafe { _mm512_sub_ps(a, b) }
        }
        #[inline(always)]
        fn clamp(self, v: __m512, lo: __m512, hi: __m512) -> __m512 {
            // MAXPS(a, b) is `a > b ? a : b` and MINPS(a, b) `a < b ? a :
            // b`, the second operand on a NaN or equal values: exactly the
            // compares of `clamp`.
            // SAFETY: as in `zero`.
            unsafe { _mm512_min_ps(hi, _mm512_max_ps(lo, v)) }
        }
        #[inline(always)]
        fn max_or_nan(self, a: __m512, b: __m512) -> __m512 {
            // MAXPS(b, a) is `b > a ? b : a`, `a` on a NaN: right but
            // where `b` alone is the NaN, which the blend puts back.
            // SAFETY: as in `zero`.
            unsafe {
                let nan = _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(b, b);
                _mm512_mask_blend_ps(nan, _mm512_max_ps(b, a), b)
            }
        }
        #[inline(always)]
        unsafe fn load(self, p: *const f32) -> __m512 {
            // SAFETY: the CPU has AVX-512F (as in `zero`) and the caller
            // guarantees 16 readable floats at `p`.
            unsafe { _mm512_loadu_ps(p) }
        }
        #[inline(always)]
        unsafe fn store(self, p: *mut f32, v: __m512) {
            // SAFETY: the CPU has AVX-512F and the caller guarantees 16
            // writable floats at `p`.
            unsafe { _mm512_storeu_ps(p, v) }
        }
        #[inline(always)]
        fn prefetch(self, p: *const f32) {
            // SAFETY: PREFETCHT0 (SSE, which every x86-64 CPU has) only
            // hints: it reads nothing into a register and never faults.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(p.cast()) }
        }
        #[inline(always)]
        fn prefetch_l2(self, p: *const f32) {
            // SAFETY: as PREFETCHT0, PREFETCHT1 only hints.
            unsafe { _mm_prefetch::<_MM_HINT_T1>(p.cast()) }
        }
    }

    impl Simd for Avx2 {
        type V = __m256;
        const LANES: usize = 8;
        const PIXELS: usize = 6;
        #[inline(always)]
        fn zero(self) -> __m256 {
            // SAFETY: an `Avx2` exists only where the CPU has AVX2 and FMA.
            unsafe { _mm256_setzero_ps() }
        }
        #[inline(always)]
        fn splat(self, x: f32) -> __m256 {
            // SAFETY: as in `zero`.
            unsafe { _mm256_set1_ps(x) }
        }
        #[inline(always)]
        fn fmadd(self, a: __m256, b: __m256, c: __m256) -> __m256 {
            // SAFETY: as in `zero`.
            unsafe { _mm256_fmadd_ps(a, b, c) }
        }
        #[inline(always)]
        fn mul(self, a: __m256, b: __m256) -> __m256 {
            // SAFETY: as in `zero`.
            unsafe { _mm256_mul_ps(a, b) }
        }
        #[inline(always)]
        fn add(self, a: __m256, b: __m256) -> __m256 {
            // SAFETY: as in `zero`.
            unsafe { _mm256_add_ps(a, b) }
        }
        #[inline(always)]
        fn sub(self, a: __m256, b: __m256) -> __m256 {
            // SAFETY: as in `zero`.
            unsafe { _mm256_sub_ps(a, b) }
        }
        #[inline(always)]
        fn clamp(self, v: __m256, lo: __m256, hi: __m256) -> __m256 {
            // MAXPS(a, b) is `a > b ? a : b` and MINPS(a, b) `a < b ? a :
            // b`, the second operand on a NaN or equal values: exactly the
            // compares of `clamp`.
            // SAFETY: as in `zero`.
            unsafe { _mm256_min_ps(hi, _mm256_max_ps(lo, v)) }
        }
        #[inline(always)]
        fn max_or_nan(self, a: __m256, b: __m256) -> __m256 {
            // As in AVX-512's: MAXPS, then `b` where it is a NaN.
            // SAFETY: as in `zero`.
            unsafe {
                let nan = _mm256_cmp_ps::<_CMP_UNORD_Q>(b, b);
                _mm256_blendv_ps(_mm256_max_ps(b, a), b, nan)
            }
        }
        #[inline(always)]
        unsafe fn load(self, p: *const f32) -> __m256 {
            // SAFETY: the CPU has AVX2 (as in `zero`) and the caller
            // guarantees 8 readable floats at `p`.
            unsafe { _mm256_loadu_ps(p) }
        }
        #[inline(always)]
        unsafe fn store(self, p: *mut f32, v: __m256) {
            // SAFETY: the CPU has AVX2 and the caller guarantees 8 writable
            // floats at `p`.
            unsafe { _mm256_storeu_ps(p, v) }
        }
        #[inline(always)]
        fn prefetch(self, p: *const f32) {
            // SAFETY: PREFETCHT0 (SSE, which every x86-64 CPU has) only
            // hints: it reads nothing into a register and never faults.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(p.cast()) }
        }
        #[inline(always)]
        fn prefetch_l2(self, p: *const f32) {
            // SAFETY: as PREFETCHT0, PREFETCHT1 only hints.
            unsafe { _mm_prefetch::<_MM_HINT_T1>(p.cast()) }
        }
    }
}

#[cfg(target_arch = "aarch64")]
mod arm {
    use super::{Kernel, Simd};
    use std::arch::aarch64::*;

    /// NEON vectors; the private field keeps construction here.
    #[derive(Clone, Copy)]
    pub(crate) struct Neon(());

    /// # Safety
    /// The CPU must support NEON (every AArch64 CPU that runs Linux does,
    /// but `dispatch` still checks, as for the other sets).
    #[target_feature(enable = "neon")]
    pub(super) unsafe fn neon<K: Kernel>(kernel: K) -> K::Output {
        kernel.run(Neon(()))
    }

    impl Simd for Neon {
        type V = float32x4_t;
        const LANES: usize = 4;
        // 24 accumulators, 2 kernel-row registers and a few broadcasts
        // fit the 32 registers without spills (checked in the disassembly);
        // 24 independent chains also keep four FMA pipes busy through a
        // 4-cycle latency.
        const PIXELS: usize = 12;
        #[inline(always)]
        fn zero(self) -> float32x4_t {
            // SAFETY: a `Neon` exists only where the CPU has NEON.
            unsafe { vdupq_n_f32(0.0) }
        }
        #[inline(always)]
        fn splat(self, x: f32) -> float32x4_t {
            // SAFETY: as in `zero`.
            unsafe { vdupq_n_f32(x) }
        }
        #[inline(always)]
        fn fmadd(self, a: float32x4_t, b: float32x4_t, c: float32x4_t) -> float32x4_t {
            // `vfmaq_f32(acc, x, y)` is `acc + x · y`, fused (FMLA).
            // SAFETY: as in `zero`.
            unsafe { vfmaq_f32(c, a, b) }
        }
        #[inline(always)]
        fn mul(self, a: float32x4_t, b: float32x4_t) -> float32x4_t {
            // SAFETY: as in `zero`.
            unsafe { vmulq_f32(a, b) }
        }
        #[inline(always)]
        fn add(self, a: float32x4_t, b: float32x4_t) -> float32x4_t {
            // SAFETY: as in `zero`.
            unsafe { vaddq_f32(a, b) }
        }
        #[inline(always)]
        fn sub(self, a: float32x4_t, b: float32x4_t) -> float32x4_t {
            // SAFETY: as in `zero`.
            unsafe { vsubq_f32(a, b) }
        }
        #[inline(always)]
        fn clamp(self, v: float32x4_t, lo: float32x4_t, hi: float32x4_t) -> float32x4_t {
            // Compare and select: FMAX/FMIN would make +0 of -0 against
            // +0.
            // SAFETY: as in `zero`.
            unsafe {
                let x = vbslq_f32(vcltq_f32(v, lo), lo, v);
                vbslq_f32(vcgtq_f32(x, hi), hi, x)
            }
        }
        #[inline(always)]
        fn max_or_nan(self, a: float32x4_t, b: float32x4_t) -> float32x4_t {
            // `b > a`, or `b` unequal to itself (a NaN): the compares of
            // the scalar code.
            // SAFETY: as in `zero`.
            unsafe {
                let take = vorrq_u32(vcgtq_f32(b, a), vmvnq_u32(vceqq_f32(b, b)));
                vbslq_f32(take, b, a)
            }
        }
        #[inline(always)]
        unsafe fn load(self, p: *const f32) -> float32x4_t {
            // SAFETY: the CPU has NEON (as in `zero`) and the caller
            // guarantees 4 readable floats at `p`; LD1 needs no alignment
            // beyond the element's.
            unsafe { vld1q_f32(p) }
        }
        #[inline(always)]
        unsafe fn store(self, p: *mut f32, v: float32x4_t) {
            // SAFETY: the CPU has NEON and the caller guarantees 4
            // writable floats at `p`.
            unsafe { vst1q_f32(p, v) }
        }
    }
}

/// `V::LANES` floats of `x` from `at`.
///
/// # Panics
/// When they pass the end of `x`.
#[inline(always)]
pub(crate) fn load<V: Simd>(s: V, x: &[f32], at: usize) -> V::V {
    let x = &x[at..at + V::LANES];
    // SAFETY: `x` holds `LANES` floats.
    unsafe { s.load(x.as_ptr()) }
}

/// Writes `v` to `x[at ..][..V::LANES]`.
///
/// # Panics
/// When that passes the end of `x`.
#[inline(always)]
pub(crate) fn store<V: Simd>(s: V, x: &mut [f32], at: usize, v: V::V) {
    let x = &mut x[at..at + V::LANES];
    // SAFETY: `x` holds `LANES` writable floats.
    unsafe { s.store(x.as_mut_ptr(), v) }
}

/// Bytes of L2 cache assumed when detection fails: small enough for any
/// current core, so tiles sized by it stay in cache everywhere.
const DEFAULT_L2: usize = 512 * 1024;

/// The per-core L2 cache size in bytes, detected once (CPUID on x86_64,
/// sysfs on other Linux machines; [`DEFAULT_L2`] where that fails). Tile
/// sizes that must stay
/// in L2 derive from it; it is the same for every thread of the process, so
/// results stay independent of the thread count.
pub(crate) fn l2_bytes() -> usize {
    static L2: OnceLock<usize> = OnceLock::new();
    *L2.get_or_init(|| {
        detect_l2()
            .filter(|&b| (64 * 1024..=64 * 1024 * 1024).contains(&b))
            .unwrap_or(DEFAULT_L2)
    })
}

#[cfg(target_arch = "x86_64")]
fn detect_l2() -> Option<usize> {
    use std::arch::x86_64::__cpuid_count;
    let max_leaf = __cpuid_count(0, 0).eax;
    if max_leaf >= 4 {
        // Intel's deterministic cache parameters: subleaf i describes one
        // cache until a subleaf of type 0.
        for sub in 0..16 {
            let r = __cpuid_count(4, sub);
            let kind = r.eax & 0x1f;
            if kind == 0 {
                break;
            }
            let level = (r.eax >> 5) & 0x7;
            // Data (1) or unified (3) cache of level 2.
            if level == 2 && (kind == 1 || kind == 3) {
                let ways = ((r.ebx >> 22) & 0x3ff) as usize + 1;
                let partitions = ((r.ebx >> 12) & 0x3ff) as usize + 1;
                let line = (r.ebx & 0xfff) as usize + 1;
                let sets = r.ecx as usize + 1;
                return Some(ways * partitions * line * sets);
            }
        }
    }
    // AMD reports leaf 4 as reserved (zeros); its extended leaf 0x80000006
    // gives the L2 size in KiB in ECX[31:16].
    let max_ext = __cpuid_count(0x8000_0000, 0).eax;
    if max_ext >= 0x8000_0006 {
        let kib = (__cpuid_count(0x8000_0006, 0).ecx >> 16) as usize;
        if kib > 0 {
            return Some(kib * 1024);
        }
    }
    None
}

/// Elsewhere, Linux's description of the first CPU's caches.
#[cfg(not(target_arch = "x86_64"))]
fn detect_l2() -> Option<usize> {
    sysfs_l2()
}

/// The data or unified level-2 cache of the first CPU as Linux describes
/// it in sysfs (AArch64 servers and boards; x86 Linux too, where a test
/// checks it against CPUID).
#[cfg_attr(target_arch = "x86_64", allow(dead_code))]
fn sysfs_l2() -> Option<usize> {
    let dir = std::path::Path::new("/sys/devices/system/cpu/cpu0/cache");
    let read = |index: usize, name: &str| {
        std::fs::read_to_string(dir.join(format!("index{index}")).join(name)).ok()
    };
    (0..16).find_map(|index| {
        let level = read(index, "level")?;
        let kind = read(index, "type")?;
        let unified_or_data = matches!(kind.trim(), "Unified" | "Data");
        (level.trim() == "2" && unified_or_data).then(|| parse_cache_size(&read(index, "size")?))?
    })
}

/// A sysfs cache size (`"1024K"`, `"2M"`, or bytes) in bytes, if it is one.
#[cfg_attr(target_arch = "x86_64", allow(dead_code))]
fn parse_cache_size(text: &str) -> Option<usize> {
    let text = text.trim();
    let (digits, unit) = match text.strip_suffix(['K', 'k']) {
        Some(d) => (d, 1024),
        None => match text.strip_suffix(['M', 'm']) {
            Some(d) => (d, 1024 * 1024),
            None => (text, 1),
        },
    };
    digits.parse::<usize>().ok()?.checked_mul(unit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sysfs_cache_sizes_parse() {
        assert_eq!(parse_cache_size("1024K\n"), Some(1 << 20));
        assert_eq!(parse_cache_size("2M"), Some(2 << 20));
        assert_eq!(parse_cache_size("524288"), Some(1 << 19));
        for bad in ["", "K", "12Q", "-1K", "99999999999999999999M"] {
            assert_eq!(parse_cache_size(bad), None, "{bad:?}");
        }
    }

    /// Where both exist, sysfs and CPUID agree on the L2 size.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn sysfs_agrees_with_cpuid() {
        if let (Some(sysfs), Some(cpuid)) = (sysfs_l2(), detect_l2()) {
            assert_eq!(sysfs, cpuid);
        }
    }

    #[test]
    fn l2_is_detected_within_bounds() {
        let l2 = l2_bytes();
        assert!((64 * 1024..=64 * 1024 * 1024).contains(&l2), "{l2}");
        println!("L2: {} KiB", l2 / 1024);
    }

    /// Every instruction set the CPU has computes the same fused
    /// multiply-add through [`dispatch`].
    #[test]
    fn dispatch_runs_each_available_isa() {
        struct Fma;
        impl Kernel for Fma {
            type Output = (usize, f32);
            fn run<S: Simd>(self, s: S) -> (usize, f32) {
                let mut out = [0.0f32; 16];
                let v = s.fmadd(s.splat(1.5), s.splat(2.0), s.splat(0.25));
                // SAFETY: `out` holds 16 floats, at least `S::LANES`.
                unsafe { s.store(out.as_mut_ptr(), v) };
                (S::LANES, out[S::LANES - 1])
            }
        }
        assert_eq!(dispatch(Isa::None, Fma), (1, 3.25));
        if Isa::Avx2.available() {
            assert_eq!(dispatch(Isa::Avx2, Fma), (8, 3.25));
        }
        if Isa::Avx512.available() {
            assert_eq!(dispatch(Isa::Avx512, Fma), (16, 3.25));
        }
        if Isa::Neon.available() {
            assert_eq!(dispatch(Isa::Neon, Fma), (4, 3.25));
        }
    }

    /// NEON is part of AArch64, so there the SIMD kernels (not the scalar
    /// fallbacks) are what the other kernel tests check, unless
    /// `STRATA_ISA=none` turned them off.
    #[cfg(target_arch = "aarch64")]
    #[test]
    fn neon_is_detected_on_aarch64() {
        let capped = std::env::var("STRATA_ISA").as_deref() == Ok("none");
        let expected = if capped { Isa::None } else { Isa::Neon };
        assert_eq!(Isa::detect(), expected);
    }

    /// The direct kernel sizes its checks by [`Isa::block`] and its
    /// register blocks by the vector type's `PIXELS` × two registers: they
    /// must agree for every set that runs here.
    #[test]
    fn block_matches_the_vector_type() {
        struct Block;
        impl Kernel for Block {
            type Output = (usize, usize);
            fn run<S: Simd>(self, _: S) -> (usize, usize) {
                (S::PIXELS, 2 * S::LANES)
            }
        }
        for isa in Isa::SIMD.into_iter().filter(|isa| isa.available()) {
            assert_eq!(dispatch(isa, Block), isa.block(), "{isa:?}");
            assert_eq!(2 * isa.lanes(), isa.block().1, "{isa:?}");
        }
    }

    /// `dispatch` is the one door to code compiled for an instruction set
    /// (calling it on a CPU without the set is undefined behaviour): it
    /// refuses a set this CPU lacks, or that `STRATA_ISA` turned off.
    #[test]
    fn dispatch_refuses_an_isa_the_cpu_lacks() {
        struct Nothing;
        impl Kernel for Nothing {
            type Output = ();
            fn run<S: Simd>(self, _: S) {}
        }
        for isa in Isa::SIMD {
            let result = std::panic::catch_unwind(|| dispatch(isa, Nothing));
            assert_eq!(result.is_ok(), isa.available(), "{isa:?}");
        }
        dispatch(Isa::None, Nothing);
    }
}
