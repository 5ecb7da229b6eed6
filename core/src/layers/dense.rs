//! `Dense`: a fully connected layer (Keras's `Dense`).
//!
//! Arguments and defaults: `units`, `activation = None` (linear),
//! `use_bias = True`. Kernel Glorot-uniform, bias zero.
//!
//! Shape: acts on the last axis, as in Keras: `(N) -> (units)`, and
//! `(H, W, C) -> (H, W, units)`.
//!
//! Computation: one GEMM, the kernel held as `[in, units]` (Keras's layout);
//! weight files use PyTorch's `[units, in]`. After a `Flatten` of `(H, W, C)`
//! the file's in-features are in PyTorch's `(C, H, W)` flatten order, which
//! [`Dense::follows_flatten_of`] makes load and save permute.

use core::marker::PhantomData;

use rand::RngCore;
use typenum::Unsigned;

use crate::activation::{activation_backward, ActivationFn, Linear};
use crate::batch::Batch;
use crate::init::glorot_uniform;
use crate::kernels::grad::dense_backward;
use crate::kernels::{gemm, parallel, sgemm};
use crate::layer::{Context, Layer, ParamInfo};
use crate::layers::{grad_or_zeros, grow_zeroed, visit_kernel_and_bias};
use crate::shape::{LastAxis, Shape, TypeMarker};

/// Output columns per block of a large dense layer's GEMM.
const COLUMN_BLOCK: usize = 128;

/// A fully connected layer from `In`'s last axis to `U` units, activation `A`.
pub struct Dense<In, U, A = Linear> {
    /// `[in, units]`.
    kernel: Vec<f32>,
    bias: Option<Vec<f32>>,
    /// Gradients, same layouts; empty until the first backward pass.
    grad_kernel: Vec<f32>,
    grad_bias: Vec<f32>,
    /// `(H, W, C)` of the Flatten this layer follows, if any.
    flattened_from: Option<[usize; 3]>,
    types: TypeMarker<(In, U, A)>,
}

impl<In: Shape, U: Unsigned, A> Dense<In, U, A> {
    /// A layer with a Glorot-uniform kernel drawn from `rng` and a zero bias
    /// (none if `use_bias` is false).
    pub fn new(use_bias: bool, rng: &mut dyn RngCore) -> Self {
        let mut layer = Dense {
            kernel: vec![0.0; In::LAST * U::USIZE],
            bias: use_bias.then(|| vec![0.0; U::USIZE]),
            grad_kernel: Vec::new(),
            grad_bias: Vec::new(),
            flattened_from: None,
            types: PhantomData,
        };
        layer.init(rng);
        layer
    }

    /// Declares that this layer's input is a flattened `dims` = `[H, W, C]`
    /// tensor, so that weight files hold its in-features in PyTorch's
    /// `(C, H, W)` order. Ignored unless `H·W·C` is the input length.
    pub fn follows_flatten_of(mut self, dims: &[usize]) -> Self {
        if let [h, w, c] = *dims {
            if h * w * c == In::LAST && In::RANK == 1 {
                self.flattened_from = Some([h, w, c]);
            }
        }
        self
    }

    fn init(&mut self, rng: &mut dyn RngCore) {
        glorot_uniform(&mut self.kernel, In::LAST, U::USIZE, rng);
        if let Some(b) = &mut self.bias {
            b.fill(0.0);
        }
    }

    /// The kernel, `[in, units]` (Keras's layout, in Keras's h, w, c order).
    pub fn kernel(&self) -> &[f32] {
        &self.kernel
    }

    /// The bias, if the layer has one.
    pub fn bias(&self) -> Option<&[f32]> {
        self.bias.as_deref()
    }

    /// An `[in, units]` tensor in PyTorch's `[units, in]` layout (and, after
    /// a Flatten, PyTorch's in-feature order).
    fn to_torch(&self, ours: &[f32]) -> Vec<f32> {
        let (n_in, units) = (In::LAST, U::USIZE);
        let mut torch = vec![0.0; ours.len()];
        for u in 0..units {
            for t in 0..n_in {
                torch[u * n_in + t] = ours[self.our_feature(t) * units + u];
            }
        }
        torch
    }

    /// `out = input · kernel + bias` computed in fixed blocks of
    /// [`COLUMN_BLOCK`] output columns, shared among the context's threads:
    /// each block packs only its own part of the kernel, and the blocks do
    /// not depend on the thread count, so neither does the result.
    fn forward_in_column_blocks(
        &self,
        rows: usize,
        input: &[f32],
        out: &mut [f32],
        ctx: &mut Context<'_>,
    ) {
        let (k, units) = (In::LAST, U::USIZE);
        let workers = parallel::workers(
            ctx.threads(),
            units.div_ceil(COLUMN_BLOCK),
            2 * rows * k * units,
        );
        let blocks = ctx.scratch(rows * units);
        let kernel = &self.kernel;
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
                match &self.bias {
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

    /// Our in-feature index of PyTorch's in-feature `t`.
    fn our_feature(&self, t: usize) -> usize {
        match self.flattened_from {
            Some([h, w, c]) => {
                let (ch, rest) = (t / (h * w), t % (h * w));
                rest * c + ch
            }
            None => t,
        }
    }
}

impl<In: LastAxis, U: Unsigned, A: ActivationFn> Layer for Dense<In, U, A> {
    type Input = In;
    type Output = In::WithLast<U>;

    fn kind(&self) -> &'static str {
        "Dense"
    }

    fn forward_into(
        &self,
        input: &Batch<In>,
        out: &mut Batch<Self::Output>,
        ctx: &mut Context<'_>,
    ) {
        let rows = input.batch_size() * (In::NUMEL / In::LAST.max(1));
        out.resize(input.batch_size());
        let units = U::USIZE;
        if rows > gemm::SMALL_M && units >= 2 * COLUMN_BLOCK {
            self.forward_in_column_blocks(rows, input.as_slice(), out.as_mut_slice(), ctx);
        } else {
            if let Some(bias) = &self.bias {
                for row in out.as_mut_slice().chunks_exact_mut(units.max(1)) {
                    row.copy_from_slice(bias);
                }
            }
            let beta = if self.bias.is_some() { 1.0 } else { 0.0 };
            sgemm(
                rows,
                In::LAST,
                units,
                input.as_slice(),
                &self.kernel,
                beta,
                out.as_mut_slice(),
            );
        }
        A::apply(out.as_mut_slice(), units);
        if ctx.is_recording() {
            ctx.save(input.as_slice().to_vec());
            if !A::IS_LINEAR {
                ctx.save(out.as_slice().to_vec());
            }
        }
    }

    fn backward(&mut self, grad_output: &Batch<Self::Output>, ctx: &mut Context<'_>) -> Batch<In> {
        let mut grad = grad_output.clone();
        activation_backward::<A>(grad.as_mut_slice(), U::USIZE, ctx);
        let input = ctx.restore();
        let rows = grad.batch_size() * (In::NUMEL / In::LAST.max(1));
        grow_zeroed(&mut self.grad_kernel, self.kernel.len());
        grow_zeroed(&mut self.grad_bias, U::USIZE);
        let mut grad_input = Batch::<In>::zeros(grad.batch_size());
        dense_backward(
            (rows, In::LAST, U::USIZE),
            &input,
            &self.kernel,
            grad.as_slice(),
            &mut self.grad_kernel,
            self.bias.as_ref().map(|_| self.grad_bias.as_mut_slice()),
            grad_input.as_mut_slice(),
        );
        grad_input
    }

    fn visit_params_mut(&mut self, f: &mut dyn FnMut(&mut [f32], &[f32])) {
        visit_kernel_and_bias(
            (&mut self.kernel, &mut self.grad_kernel),
            (self.bias.as_mut(), &mut self.grad_bias),
            f,
        );
    }

    fn zero_grads(&mut self) {
        self.grad_kernel.fill(0.0);
        self.grad_bias.fill(0.0);
    }

    fn export_grad(&self, name: &str) -> Option<Vec<f32>> {
        match name {
            "weight" => Some(self.to_torch(&grad_or_zeros(&self.grad_kernel, self.kernel.len()))),
            "bias" if self.bias.is_some() => Some(grad_or_zeros(&self.grad_bias, U::USIZE)),
            _ => None,
        }
    }

    fn ends_with_softmax(&self) -> bool {
        A::IS_SOFTMAX
    }

    fn params(&self) -> Vec<ParamInfo> {
        let mut p = vec![ParamInfo {
            name: "weight".into(),
            shape: vec![U::USIZE, In::LAST],
        }];
        if self.bias.is_some() {
            p.push(ParamInfo {
                name: "bias".into(),
                shape: vec![U::USIZE],
            });
        }
        p
    }

    fn param_count(&self) -> usize {
        self.kernel.len() + self.bias.as_ref().map_or(0, Vec::len)
    }

    fn export_param(&self, name: &str) -> Option<Vec<f32>> {
        match name {
            "weight" => Some(self.to_torch(&self.kernel)),
            "bias" => self.bias.clone(),
            _ => None,
        }
    }

    fn import_param(&mut self, name: &str, values: &[f32]) -> bool {
        match name {
            "weight" if values.len() == self.kernel.len() => {
                let (n_in, units) = (In::LAST, U::USIZE);
                for u in 0..units {
                    for t in 0..n_in {
                        let i = self.our_feature(t);
                        self.kernel[i * units + u] = values[u * n_in + t];
                    }
                }
                true
            }
            "bias" => match &mut self.bias {
                Some(b) if b.len() == values.len() => {
                    b.copy_from_slice(values);
                    true
                }
                _ => false,
            },
            _ => false,
        }
    }

    fn initialize(&mut self, rng: &mut dyn RngCore) {
        self.init(rng);
    }
}
