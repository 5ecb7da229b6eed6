//! A safe front to `matrixmultiply::sgemm` for row-major matrices.

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
    let span = |rows: usize, ld: usize, cols: usize| {
        if rows == 0 || cols == 0 {
            0
        } else {
            (rows - 1) * ld + cols
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
        for row in c.chunks_mut(ldc).take(m) {
            row[..n].iter_mut().for_each(|v| *v *= beta);
        }
        return;
    }
    // SAFETY: the asserts above guarantee that every element the strides
    // address lies inside its slice: a[i*lda + p], b[p*ldb + j] and
    // c[i*ldc + j] for i < m, p < k, j < n; `c` is borrowed mutably, so it
    // aliases nothing.
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            1.0,
            a.as_ptr(),
            lda as isize,
            1,
            b.as_ptr(),
            ldb as isize,
            1,
            beta,
            c.as_mut_ptr(),
            ldc as isize,
            1,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
