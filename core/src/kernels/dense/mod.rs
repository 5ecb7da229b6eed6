//! A dense layer's products: `Y = X · W + bias` and its gradients, with
//! `X` `rows × k`, `W` `k × units` (Keras's layout), all row-major.

#[cfg(test)]
mod tests;

use crate::kernels::conv::backward::add_column_sums;
use crate::kernels::gemm::{self, add_at_b, sgemm, sgemm_general};
use crate::kernels::parallel;

/// Output columns per block of a large product's GEMM.
pub const COLUMN_BLOCK: usize = 128;

/// Whether [`forward`] splits the product into column blocks: enough rows
/// to go to `matrixmultiply` and at least two blocks to share.
fn in_column_blocks(rows: usize, units: usize) -> bool {
    rows > gemm::SMALL_M && units >= 2 * COLUMN_BLOCK
}

/// Scratch values [`forward`] needs for `rows × units` outputs on `threads`
/// threads: the column blocks, when it uses them (independent of
/// `threads`).
pub fn forward_scratch_len(rows: usize, units: usize, _threads: usize) -> usize {
    if in_column_blocks(rows, units) {
        rows * units
    } else {
        0
    }
}

/// `out = input · kernel + bias` (`out` is `rows × units`).
///
/// Large products go in fixed blocks of [`COLUMN_BLOCK`] output columns,
/// shared among up to `threads` threads: each block packs only its own part
/// of the kernel into its own part of `scratch`, and the bias is added as
/// each block is copied out. Small ones (few rows or few units) start from
/// the bias and accumulate onto it. The blocks do not depend on the thread
/// count, so neither does the result. `scratch` holds at least
/// [`forward_scratch_len`] values.
///
/// # Panics
/// When a slice is shorter than the sizes say.
#[allow(clippy::too_many_arguments)]
pub fn forward(
    rows: usize,
    k: usize,
    units: usize,
    input: &[f32],
    kernel: &[f32],
    bias: Option<&[f32]>,
    out: &mut [f32],
    scratch: &mut [f32],
    threads: usize,
) {
    let len = rows
        .checked_mul(units)
        .expect("dense: output size overflows");
    assert!(out.len() >= len, "dense: output too short");
    if let Some(b) = bias {
        assert!(b.len() >= units, "dense: bias too short");
    }
    let out = &mut out[..len];
    if !in_column_blocks(rows, units) {
        let mut beta = 0.0;
        if let Some(bias) = bias {
            for row in out.chunks_exact_mut(units.max(1)) {
                row.copy_from_slice(&bias[..units]);
            }
            beta = 1.0;
        }
        sgemm(rows, k, units, input, kernel, beta, out);
        return;
    }
    assert!(scratch.len() >= len, "dense: scratch too short");
    let flops = parallel::flops([2, rows, k, units]);
    let workers = parallel::workers(threads, units.div_ceil(COLUMN_BLOCK), flops);
    let blocks = &mut scratch[..len];
    let items = blocks.chunks_mut(rows * COLUMN_BLOCK).enumerate();
    parallel::run(workers, items, &mut [], 0, |(j, block), _| {
        let first = j * COLUMN_BLOCK;
        let width = (units - first).min(COLUMN_BLOCK);
        gemm::sgemm_strided(
            rows,
            k,
            width,
            input,
            k,
            &kernel[first..],
            units,
            0.0,
            block,
            width,
        );
    });
    for (j, block) in blocks.chunks(rows * COLUMN_BLOCK).enumerate() {
        let first = j * COLUMN_BLOCK;
        let width = (units - first).min(COLUMN_BLOCK);
        for (r, src) in block.chunks_exact(width).enumerate() {
            let dst = &mut out[r * units + first..r * units + first + width];
            match bias {
                Some(b) => {
                    for ((d, s), b) in dst.iter_mut().zip(src).zip(&b[first..first + width]) {
                        *d = s + b;
                    }
                }
                None => dst.copy_from_slice(src),
            }
        }
    }
}

/// Rows of the kernel gradient per unit of [`backward`]'s work.
pub const GRAD_ROW_BLOCK: usize = 512;

/// One unit of [`backward`]'s work: the input gradient, or the kernel
/// gradient's rows from the given one on.
enum Part<'a> {
    Input(&'a mut [f32]),
    Kernel(usize, &'a mut [f32]),
}

/// The gradients of a dense layer `Y = X · W + bias` (`X` is `rows × n_in`,
/// `W` is `n_in × units`): adds `Xᵀ · dY` to `grad_kernel` and `Σ dY` to
/// `grad_bias`, and writes `dY · Wᵀ` to `grad_input`. GEMMs reading the
/// transposed operands in place: it needs no work space.
///
/// The input gradient and fixed blocks of [`GRAD_ROW_BLOCK`] rows of the
/// kernel gradient are independent products, shared among up to `threads`
/// threads; each is computed the same way whichever thread takes it, so
/// the result does not depend on `threads`.
///
/// # Panics
/// When a slice is shorter than the sizes say.
#[allow(clippy::too_many_arguments)]
pub fn backward(
    (rows, n_in, units): (usize, usize, usize),
    input: &[f32],
    kernel: &[f32],
    grad_output: &[f32],
    grad_kernel: &mut [f32],
    grad_bias: Option<&mut [f32]>,
    grad_input: &mut [f32],
    threads: usize,
) {
    let out_len = rows
        .checked_mul(units)
        .expect("dense: output size overflows");
    let kernel_len = n_in
        .checked_mul(units)
        .expect("dense: kernel size overflows");
    let in_len = rows.checked_mul(n_in).expect("dense: input size overflows");
    assert!(grad_output.len() >= out_len, "dense: grad_output too short");
    assert!(
        grad_kernel.len() >= kernel_len,
        "dense: grad_kernel too short"
    );
    assert!(grad_input.len() >= in_len, "dense: grad_input too short");
    if let Some(gb) = grad_bias {
        add_column_sums(&grad_output[..out_len], gb);
    }
    if rows == 0 {
        // No samples: dW gains nothing and dX is empty.
        return;
    }
    let block = GRAD_ROW_BLOCK * units.max(1);
    let blocks = grad_kernel[..kernel_len]
        .chunks_mut(block)
        .enumerate()
        .map(|(i, rows)| Part::Kernel(i * GRAD_ROW_BLOCK, rows));
    let parts = std::iter::once(Part::Input(&mut grad_input[..in_len])).chain(blocks);
    let flops = parallel::flops([4, rows, n_in, units]);
    let workers = parallel::workers(threads, 1 + n_in.div_ceil(GRAD_ROW_BLOCK), flops);
    parallel::run(workers, parts, &mut [], 0, |part, _| match part {
        // dX (rows × n_in) = dY (rows × units) · Wᵀ (units × n_in)
        Part::Input(gi) => sgemm_general(
            (rows, units, n_in),
            grad_output,
            (units, 1),
            kernel,
            (1, units),
            0.0,
            gi,
            (n_in, 1),
        ),
        // dW[first ..] (h × units) += X[:, first ..]ᵀ (h × rows) · dY
        Part::Kernel(first, gk) => add_at_b(
            (gk.len() / units.max(1), rows, units),
            &input[first..],
            n_in,
            grad_output,
            units,
            gk,
            units,
        ),
    });
}
