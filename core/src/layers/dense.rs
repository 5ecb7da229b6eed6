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

use super::{forward_activated, init_kernel_and_bias, Activated, KernelTape};
use crate::activation::{activation_backward, ActivationFn, Linear};
use crate::batch::Batch;
use crate::kernels::{dense, ConvGeometry};
use crate::layer::{Context, Layer};
use crate::onnx::{ExportError, OnnxGraph};
use crate::shape::{LastAxis, Padding, Shape, TypeMarker};
use crate::tensor::{Layout, Tensor};

/// A fully connected layer from `In`'s last axis to `U` units, activation `A`.
///
/// In `sequential!`: `Dense(2)`, `Dense(2, activation = relu, use_bias = false)`.
///
/// ```
/// use strata_core::typenum::{U2, U3};
/// use strata_core::{seeded_rng, Batch, Dense, Layer, Model, Shape1};
///
/// let mut dense: Dense<Shape1<U3>, U2> = Dense::new(true, &mut seeded_rng(0));
/// // Weights in PyTorch's layout, [out, in]: y = W x + b.
/// assert!(dense.import_param("weight", &[1.0, 0.0, 0.0, 0.0, 1.0, 1.0]));
/// assert!(dense.import_param("bias", &[0.5, -0.5]));
/// let y = dense.predict(&Batch::from_vec(1, vec![1.0, 2.0, 3.0]).unwrap());
/// assert_eq!(y.as_slice(), [1.5, 4.5]);
/// ```
pub struct Dense<In, U, A = Linear> {
    /// `weight`: stored `[in, units]`.
    kernel: Tensor,
    /// `bias`: `[units]`, absent with `use_bias = false`.
    bias: Option<Tensor>,
    types: TypeMarker<(In, U, A)>,
}

impl<In: Shape, U: Unsigned, A> Dense<In, U, A> {
    /// A layer with a Glorot-uniform kernel drawn from `rng` and a zero bias
    /// (none if `use_bias` is false).
    pub fn new(use_bias: bool, rng: &mut dyn RngCore) -> Self {
        let (inputs, units) = (In::LAST, U::USIZE);
        let layout = Layout::InUnits {
            inputs,
            units,
            flattened: None,
        };
        let mut layer = Dense {
            kernel: Tensor::parameter(vec![units, inputs], layout, 0.0),
            bias: use_bias.then(|| Tensor::parameter(vec![units], Layout::Plain, 0.0)),
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
                self.kernel.set_layout(Layout::InUnits {
                    inputs: In::LAST,
                    units: U::USIZE,
                    flattened: Some([h, w, c]),
                });
            }
        }
        self
    }

    fn init(&mut self, rng: &mut dyn RngCore) {
        let fans = (In::LAST, U::USIZE);
        init_kernel_and_bias(&mut self.kernel, self.bias.as_mut(), fans, rng);
    }

    /// The kernel, `[in, units]` (Keras's layout, in Keras's h, w, c order).
    pub fn kernel(&self) -> &[f32] {
        self.kernel.values()
    }

    /// The bias, if the layer has one.
    pub fn bias(&self) -> Option<&[f32]> {
        self.bias.as_ref().map(Tensor::values)
    }
}

impl<In: LastAxis, U: Unsigned, A: ActivationFn> Activated for Dense<In, U, A> {
    type Activation = A;

    fn forward_linear(
        &self,
        input: &Batch<In>,
        out: &mut Batch<Self::Output>,
        ctx: &mut Context<'_>,
    ) {
        let rows = input.batch_size() * (In::NUMEL / In::LAST.max(1));
        out.resize(input.batch_size());
        let units = U::USIZE;
        let threads = ctx.threads();
        let scratch = ctx.scratch(dense::forward_scratch_len(rows, units, threads));
        dense::forward(
            rows,
            In::LAST,
            units,
            input.as_slice(),
            self.kernel.values(),
            self.bias(),
            out.as_mut_slice(),
            scratch,
            threads,
        );
    }
}

impl<In: LastAxis, U: Unsigned, A: ActivationFn> Layer for Dense<In, U, A> {
    type Input = In;
    type Output = In::WithLast<U>;
    type Tape = KernelTape<In, Self::Output>;

    fn kind(&self) -> &'static str {
        "Dense"
    }

    fn forward_into(
        &self,
        input: &Batch<In>,
        out: &mut Batch<Self::Output>,
        ctx: &mut Context<'_>,
    ) {
        forward_activated(self, input, out, ctx);
    }

    fn forward_taped(
        &mut self,
        input: Batch<In>,
        ctx: &mut Context<'_>,
    ) -> (Batch<Self::Output>, Self::Tape) {
        KernelTape::record(self, input, ctx)
    }

    fn backward(
        &mut self,
        tape: Self::Tape,
        mut grad: Batch<Self::Output>,
        ctx: &mut Context<'_>,
    ) -> Batch<In> {
        activation_backward::<A>(tape.kept(), grad.as_mut_slice(), U::USIZE, ctx);
        let rows = grad.batch_size() * (In::NUMEL / In::LAST.max(1));
        let mut grad_input = ctx.take_batch::<In>(grad.batch_size());
        let threads = ctx.threads();
        let (kernel, grad_kernel) = self.kernel.values_and_grad_mut();
        dense::backward(
            (rows, In::LAST, U::USIZE),
            tape.input().as_slice(),
            kernel,
            grad.as_slice(),
            grad_kernel,
            self.bias.as_mut().map(Tensor::grad_mut),
            grad_input.as_mut_slice(),
            threads,
        );
        tape.recycle(ctx);
        ctx.recycle(grad);
        grad_input
    }

    crate::declare_tensors!(weight: kernel, bias: bias);

    fn initialize(&mut self, rng: &mut dyn RngCore) {
        self.init(rng);
    }

    /// On a vector, `Gemm` with the kernel as held (`[in, units]`, in the
    /// order of strata's values: a Flatten before transposes back to
    /// NHWC, so no permutation); on an image, the same map of the channels
    /// as a 1×1 `Conv`. Then the activation.
    fn export_onnx(&self, g: &mut OnnxGraph, input: &str) -> Result<String, ExportError> {
        let (inputs, units) = (In::LAST, U::USIZE);
        let kernel = self.kernel.values();
        let bias = match &self.bias {
            Some(b) => Some(g.initializer("bias", &[units], b.values())?),
            None => None,
        };
        let y = if In::RANK == 1 {
            let weight = g.initializer("weight", &[inputs, units], kernel)?;
            let mut operands = vec![input, weight.as_str()];
            operands.extend(bias.as_deref());
            g.node("Gemm", &operands, &[])
        } else {
            // [in, units] to Conv's [units, in, 1, 1].
            let transposed: Vec<f32> = (0..units * inputs)
                .map(|i| kernel[(i % inputs) * units + i / inputs])
                .collect();
            let weight = g.initializer("weight", &[units, inputs, 1, 1], &transposed)?;
            let geometry = ConvGeometry::new(1, (1, 1, inputs), (1, 1), (1, 1), Padding::Valid)
                .ok_or(ExportError::TooLarge(inputs))?;
            g.conv(input, &weight, bias.as_deref(), &geometry)?
        };
        A::export_onnx(g, &y)
    }
}
