//! Tests of the GEMM front: against naive products, with leading
//! dimensions and element strides, `beta`'s meaning, and hostile sizes and
//! strides (which must panic, never touch memory outside the slices).

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::*;
use crate::kernels::testutil::*;
use proptest::prelude::*;

#[test]
fn small_product_by_hand() {
    // [1 2 3; 4 5 6] · [1 0; 0 1; 1 1] = [4 5; 10 11]
    let a = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
    let b = [1.0, 0.0, 0.0, 1.0, 1.0, 1.0];
    let mut c = [1.0; 4];
    sgemm(2, 3, 2, &a, &b, 1.0, &mut c);
    assert_eq!(c, [5.0, 6.0, 11.0, 12.0]);
    sgemm(2, 3, 2, &a, &b, 0.0, &mut c);
    assert_eq!(c, [4.0, 5.0, 10.0, 11.0]);
}

#[test]
fn sgemm_matches_naive_product() {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    for &(m, k, n) in &[(1, 1, 1), (3, 5, 7), (17, 9, 4), (64, 33, 10), (5, 0, 3)] {
        let a = random_vec(&mut rng, m * k);
        let b = random_vec(&mut rng, k * n);
        let c0 = random_vec(&mut rng, m * n);
        for beta in [0.0f32, 1.0] {
            let mut c = c0.clone();
            sgemm(m, k, n, &a, &b, beta, &mut c);
            for i in 0..m {
                for j in 0..n {
                    let mut want = beta as f64 * c0[i * n + j] as f64;
                    for p in 0..k {
                        want += a[i * k + p] as f64 * b[p * n + j] as f64;
                    }
                    assert!(
                        (c[i * n + j] as f64 - want).abs() < 1e-4,
                        "({m},{k},{n}) beta {beta}"
                    );
                }
            }
        }
    }
}

#[test]
fn small_m_rows_together_match_each_row_alone() {
    // Six rows of `c` share each group of `b`'s rows (2000 × 300, 2.4 MB:
    // read whole, row after row, on any L2 up to 4 MiB); a single row
    // reads them alone. Every element sums its products in the same order
    // either way: equal bits.
    let mut rng = ChaCha8Rng::seed_from_u64(31);
    let (m, k, n) = (6, 2000, 300);
    let a = random_vec(&mut rng, m * k);
    let b = random_vec(&mut rng, k * n);
    let c0 = random_vec(&mut rng, m * n);
    let mut c = c0.clone();
    sgemm_strided(m, k, n, &a, k, &b, n, 1.0, &mut c, n);
    for i in 0..m {
        let mut row = c0[i * n..(i + 1) * n].to_vec();
        sgemm_strided(1, k, n, &a[i * k..], k, &b, n, 1.0, &mut row, n);
        assert_eq!(&c[i * n..(i + 1) * n], &row[..], "row {i}");
    }
}

/// Few rows: each element is `c` plus its products in the order of `p`,
/// fused, whether `b` stays in L2 (register blocks) or is read whole row
/// after row (a `b` of 4.6 MB, more than half of any L2 up to 8 MiB):
/// bitwise the sequential `mul_add` chain, for every row count, and for
/// widths with a partial register at the end.
#[test]
fn small_m_adds_products_in_order_fused() {
    let mut rng = ChaCha8Rng::seed_from_u64(41);
    for (k, n) in [(2303, 501), (40, 37)] {
        let b = random_vec(&mut rng, k * n);
        for m in 1..=SMALL_M {
            let a = random_vec(&mut rng, m * k);
            let c0 = random_vec(&mut rng, m * n);
            let mut c = c0.clone();
            sgemm_strided(m, k, n, &a, k, &b, n, 1.0, &mut c, n);
            for i in 0..m {
                for j in 0..n {
                    let mut want = c0[i * n + j];
                    for p in 0..k {
                        want = a[i * k + p].mul_add(b[p * n + j], want);
                    }
                    assert_eq!(
                        c[i * n + j].to_bits(),
                        want.to_bits(),
                        "({m},{k},{n}) [{i},{j}]"
                    );
                }
            }
        }
    }
}

#[test]
fn strided_sgemm_matches_naive_product_small_and_large_m() {
    // m <= 8 streams b (no packing); larger m goes to matrixmultiply. Both
    // honour leading dimensions and beta (beta = 0 ignores c, even NaN).
    let mut rng = ChaCha8Rng::seed_from_u64(12);
    // Small m also with wide rows: every register block size (up to 16
    // registers of columns on one row), then single registers and single
    // columns at the end of each row.
    for &(m, k, n) in &[
        (1, 300, 40),
        (1, 50, 300),
        (2, 20, 263),
        (3, 7, 5),
        (4, 30, 141),
        (5, 10, 77),
        (7, 12, 200),
        (8, 33, 17),
        (8, 9, 133),
        (9, 33, 17),
        (40, 20, 50),
    ] {
        let (lda, ldb, ldc) = (k + 3, n + 2, n + 5);
        let a = random_vec(&mut rng, m * lda);
        let b = random_vec(&mut rng, k * ldb);
        let c0 = random_vec(&mut rng, m * ldc);
        for beta in [0.0f32, 1.0, 0.5] {
            let mut c = c0.clone();
            if beta == 0.0 {
                for i in 0..m {
                    c[i * ldc..i * ldc + n].fill(f32::NAN);
                }
            }
            sgemm_strided(m, k, n, &a, lda, &b, ldb, beta, &mut c, ldc);
            for i in 0..m {
                for j in 0..n {
                    let mut want = beta as f64 * c0[i * ldc + j] as f64;
                    for p in 0..k {
                        want += a[i * lda + p] as f64 * b[p * ldb + j] as f64;
                    }
                    let got = c[i * ldc + j] as f64;
                    assert!((got - want).abs() < 1e-4, "({m},{k},{n}) beta {beta}");
                }
                // Past each row's n columns, c is untouched.
                assert_eq!(
                    c[i * ldc + n..(i + 1) * ldc],
                    c0[i * ldc + n..(i + 1) * ldc]
                );
            }
        }
    }
}

/// A `rows × cols` matrix stored row-major (`transposed: false`) or
/// column-major, with `pad` unused values after each stored line: its
/// buffer and its `(row, column)` element strides.
fn layout(rows: usize, cols: usize, transposed: bool, pad: usize) -> (usize, (usize, usize)) {
    if transposed {
        let ld = rows + pad;
        (cols * ld, (1, ld))
    } else {
        let ld = cols + pad;
        (rows * ld, (ld, 1))
    }
}

#[test]
fn sgemm_strided_matches_naive_matmul() {
    let case = (
        (0usize..=7, 0usize..=7, 0usize..=7),
        (any::<bool>(), any::<bool>(), any::<bool>()),
        (0usize..=2, 0usize..=2, 0usize..=2),
        (
            prop::sample::select(vec![0.0f32, 1.0, 0.5, -2.0]),
            any::<u64>(),
        ),
    );
    run(
        "sgemm_strided",
        256,
        case,
        |&((m, k, n), (ta, tb, tc), (pa, pb, pc), (beta, seed))| {
            let mut rng = rng(seed);
            let (a_len, a_st) = layout(m, k, ta, pa);
            let (b_len, b_st) = layout(k, n, tb, pb);
            let (c_len, c_st) = layout(m, n, tc, pc);
            let a = uniform_f32(&mut rng, a_len, -1.0, 1.0);
            let b = uniform_f32(&mut rng, b_len, -1.0, 1.0);
            let c0 = uniform_f32(&mut rng, c_len, -1.0, 1.0);
            let mut c = c0.clone();
            sgemm_general((m, k, n), &a, a_st, &b, b_st, beta, &mut c, c_st);
            let at =
                |v: &[f32], (rs, cs): (usize, usize), i: usize, j: usize| v[i * rs + j * cs] as f64;
            let mut in_matrix = vec![false; c_len];
            let mut worst = 0.0f64;
            for i in 0..m {
                for j in 0..n {
                    let mut expected = beta as f64 * at(&c0, c_st, i, j);
                    let mut size = expected.abs();
                    for p in 0..k {
                        let t = at(&a, a_st, i, p) * at(&b, b_st, p, j);
                        expected += t;
                        size += t.abs();
                    }
                    let got = at(&c, c_st, i, j);
                    let err = (got - expected).abs() / size.max(1e-3);
                    assert!(
                        err <= 1e-5,
                        "c[{i}][{j}] = {got}, expected {expected} ((m, k, n) = {:?})",
                        (m, k, n)
                    );
                    worst = worst.max(err);
                    in_matrix[i * c_st.0 + j * c_st.1] = true;
                }
            }
            for (idx, (got, before)) in c.iter().zip(&c0).enumerate() {
                if !in_matrix[idx] {
                    assert_eq!(
                        got.to_bits(),
                        before.to_bits(),
                        "padding c[{idx}] was written"
                    );
                }
            }
            Some(worst)
        },
    );
}

/// With `beta = 0`, `c`'s old contents do not matter (the BLAS convention
/// matrixmultiply follows): not even a NaN there shows through, whatever `k`.
#[test]
fn sgemm_strided_beta_zero_overwrites_c() {
    for k in [0usize, 1, 3] {
        let (m, n) = (2, 3);
        let a: Vec<f32> = (0..m * k).map(|v| v as f32 + 1.0).collect();
        let b: Vec<f32> = (0..k * n).map(|v| 0.5 - v as f32).collect();
        let mut c = vec![f32::NAN; m * n];
        sgemm_general((m, k, n), &a, (k, 1), &b, (n, 1), 0.0, &mut c, (n, 1));
        for i in 0..m {
            for j in 0..n {
                let expected: f32 = (0..k).map(|p| a[i * k + p] * b[p * n + j]).sum();
                assert_eq!(c[i * n + j], expected, "k = {k}: c[{i}][{j}]");
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Hostile arguments (issue 9): sizes and strides whose bounds arithmetic
// would wrap must panic before any memory is touched.
// ---------------------------------------------------------------------------

/// Strides that stand for negative ones (a caller casting `isize` to
/// `usize`) reach far before or after the slices.
#[test]
fn sgemm_general_rejects_huge_and_negative_strides() {
    for (rs, cs) in [
        (1usize << 40, (1usize << 40).wrapping_neg()),
        (16, 16usize.wrapping_neg()),
    ] {
        let result = std::panic::catch_unwind(|| {
            let a = vec![1.0f32; 64];
            let b = vec![1.0f32; 64];
            let mut c = vec![0.0f32; 64];
            sgemm_general((4, 4, 4), &a, (rs, cs), &b, (4, 1), 0.0, &mut c, (4, 1));
        });
        assert!(result.is_err(), "a strides {rs}, {cs}: no panic");
        let result = std::panic::catch_unwind(|| {
            let a = vec![1.0f32; 64];
            let b = vec![1.0f32; 64];
            let mut c = vec![0.0f32; 64];
            sgemm_general((4, 4, 4), &a, (4, 1), &b, (4, 1), 1.0, &mut c, (rs, cs));
        });
        assert!(result.is_err(), "c strides {rs}, {cs}: no panic");
    }
}

/// Sizes whose spans overflow `usize` are longer than any slice.
#[test]
fn sgemm_rejects_sizes_that_overflow() {
    let k = ((1u128 << 64) + 2) / 6;
    let k = k as usize;
    for (m, k, n) in [(6, k, 18), (k, 6, 18), (9, k, 9)] {
        let result = std::panic::catch_unwind(|| {
            let mut c = vec![0.0f32; 200];
            sgemm(m, k, n, &[1.0; 2], &[1.0; 6], 0.0, &mut c);
        });
        assert!(result.is_err(), "({m}, {k}, {n}): no panic");
    }
    let result = std::panic::catch_unwind(|| {
        let mut c = vec![0.0f32; 200];
        sgemm_strided(2, 2, 2, &[1.0; 4], usize::MAX, &[1.0; 4], 2, 0.0, &mut c, 2);
    });
    assert!(result.is_err(), "huge lda: no panic");
}

/// Runs `f`, telling whether it panicked.
fn panics(f: impl FnOnce()) -> bool {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).is_err()
}

/// The small-`m` path (`m <= 8`, run through `dispatch` in code compiled
/// for the instruction set): leading dimensions that stand for negative
/// ones, spans that overflow, and slices one value short all panic.
#[test]
fn small_m_sgemm_rejects_hostile_strides_and_sizes() {
    let neg = 16usize.wrapping_neg();
    let huge = 1usize << 61;
    // (m, k, n, lda, ldb, ldc, a, b, c lengths)
    let cases = [
        (2, 2, 2, neg, 2, 2, 64, 64, 64),
        (2, 2, 2, 2, neg, 2, 64, 64, 64),
        (2, 2, 2, 2, 2, neg, 64, 64, 64),
        (8, 2, 2, 1 << 40, 2, 2, 64, 64, 64),
        (8, huge, 2, huge, 2, 2, 64, 64, 64),
        (1, 2, huge, 2, huge, huge, 64, 64, 64),
        (8, 4, 4, 4, 4, 4, 31, 16, 32),
        (8, 4, 4, 4, 4, 4, 32, 15, 32),
        (8, 4, 4, 4, 4, 4, 32, 16, 31),
    ];
    for (m, k, n, lda, ldb, ldc, la, lb, lc) in cases {
        assert!(m <= SMALL_M);
        let (a, b, mut c) = (vec![1.0f32; la], vec![1.0f32; lb], vec![0.0f32; lc]);
        assert!(
            panics(|| sgemm_strided(m, k, n, &a, lda, &b, ldb, 1.0, &mut c, ldc)),
            "({m}, {k}, {n}), strides ({lda}, {ldb}, {ldc}): no panic"
        );
    }
    // One row never steps by its leading dimension: any value is sound.
    let mut c = [0.0f32; 3];
    sgemm_strided(
        1,
        2,
        3,
        &[1.0, 2.0],
        usize::MAX,
        &[1.0; 6],
        3,
        0.0,
        &mut c,
        usize::MAX,
    );
    assert_eq!(c, [3.0; 3]);
}

/// Empty products touch nothing, whatever the other sizes and strides
/// (`beta` still scales `c` when only `k` is zero).
#[test]
fn sgemm_zero_sizes_touch_nothing() {
    let max = usize::MAX;
    let mut none: [f32; 0] = [];
    sgemm_general(
        (0, max, max),
        &[],
        (max, max),
        &[],
        (max, max),
        0.0,
        &mut none,
        (max, max),
    );
    sgemm_general(
        (max, max, 0),
        &[],
        (max, max),
        &[],
        (max, max),
        0.0,
        &mut none,
        (max, max),
    );
    sgemm_strided(0, 3, 4, &[], 3, &[0.0; 12], 4, 0.0, &mut none, 4);
    sgemm_strided(3, 4, 0, &[0.0; 12], 4, &[], 0, 0.0, &mut none, 0);
    let mut c = [2.0f32; 4];
    sgemm_strided(2, 0, 2, &[], 0, &[], 2, 0.5, &mut c, 2);
    assert_eq!(c, [1.0; 4]);
    sgemm_general((2, 0, 2), &[], (0, 0), &[], (0, 0), 0.0, &mut c, (2, 1));
    assert_eq!(c, [0.0; 4]);
}

/// `sgemm_general` (the one call into `matrixmultiply`): strides above
/// `isize::MAX`, dimensions whose reach overflows, and operands one value
/// short panic before the unsafe call; a zero stride (every row the same
/// row) reads inside the slice and is accepted.
#[test]
fn sgemm_general_rejects_overflowing_reach_and_short_operands() {
    let huge = 1usize << 62;
    let big = isize::MAX as usize + 1;
    let cases = [
        ((16, 4, 4), [(big, 1), (4, 1), (4, 1)], [64; 3]),
        ((16, 4, 4), [(4, 1), (4, 1), (1, big)], [64; 3]),
        ((16, huge, 4), [(huge, 1), (4, 1), (4, 1)], [64; 3]),
        ((16, 4, huge), [(4, 1), (huge, 1), (huge, 1)], [64; 3]),
        ((16, 4, 4), [(4, 1), (4, 1), (4, 1)], [63, 16, 64]),
        ((16, 4, 4), [(4, 1), (4, 1), (4, 1)], [64, 15, 64]),
        ((16, 4, 4), [(4, 1), (4, 1), (4, 1)], [64, 16, 63]),
    ];
    for ((m, k, n), [sa, sb, sc], [la, lb, lc]) in cases {
        let (a, b, mut c) = (vec![1.0f32; la], vec![1.0f32; lb], vec![0.0f32; lc]);
        assert!(
            panics(|| sgemm_general((m, k, n), &a, sa, &b, sb, 0.0, &mut c, sc)),
            "({m}, {k}, {n}) strides {sa:?} {sb:?} {sc:?}: no panic"
        );
    }
    let mut c = vec![0.0f32; 64];
    sgemm_general(
        (16, 4, 4),
        &[1.0; 4],
        (0, 1),
        &[1.0; 16],
        (4, 1),
        0.0,
        &mut c,
        (4, 1),
    );
    assert!(c.iter().all(|&v| v == 4.0));
}

/// `add_at_b` adds `aᵀ · b` to `c` on every register block size and tail
/// (rows of `c` past whole blocks, columns past whole registers), with
/// strides, and leaves `c` past each row's `n` columns alone.
#[test]
fn add_at_b_matches_naive_product() {
    let mut rng = ChaCha8Rng::seed_from_u64(13);
    for &(m, kk, n) in &[
        (1, 1, 1),
        (27, 40, 32),
        (288, 17, 32),
        (13, 5, 16),
        (30, 9, 70),
        (7, 100, 3),
        (25, 3, 41),
    ] {
        let (lda, ldb, ldc) = (m + 2, n + 3, n + 1);
        let a = random_vec(&mut rng, kk * lda);
        let b = random_vec(&mut rng, kk * ldb);
        let c0 = random_vec(&mut rng, m * ldc);
        let mut c = c0.clone();
        add_at_b((m, kk, n), &a, lda, &b, ldb, &mut c, ldc);
        for t in 0..m {
            for j in 0..n {
                let mut want = c0[t * ldc + j] as f64;
                for p in 0..kk {
                    want += a[p * lda + t] as f64 * b[p * ldb + j] as f64;
                }
                let got = c[t * ldc + j] as f64;
                assert!((got - want).abs() < 1e-4, "({m},{kk},{n}) at ({t},{j})");
            }
            assert_eq!(
                c[t * ldc + n..(t + 1) * ldc],
                c0[t * ldc + n..(t + 1) * ldc]
            );
        }
    }
}

/// `add_at_b` refuses each slice one value short, strides below their
/// rows and sizes whose reach overflows, before its unchecked code runs.
#[test]
fn add_at_b_rejects_short_slices_and_bad_strides() {
    let (m, kk, n) = (13, 5, 20);
    let ok = |la: usize, lb: usize, lc: usize, lda: usize| {
        let (a, b, mut c) = (vec![1.0f32; la], vec![1.0f32; lb], vec![0.0f32; lc]);
        !panics(|| add_at_b((m, kk, n), &a, lda, &b, n, &mut c, n))
    };
    assert!(ok(kk * m, kk * n, m * n, m));
    assert!(!ok(kk * m - 1, kk * n, m * n, m));
    assert!(!ok(kk * m, kk * n - 1, m * n, m));
    assert!(!ok(kk * m, kk * n, m * n - 1, m));
    assert!(!ok(kk * m, kk * n, m * n, m - 1));
    assert!(panics(|| {
        add_at_b(
            (2, usize::MAX / 2, 2),
            &[1.0; 8],
            2,
            &[1.0; 8],
            2,
            &mut [0.0; 4],
            2,
        )
    }));
}
