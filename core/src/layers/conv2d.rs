//! `Conv2D`: 2-D convolution (Keras's `Conv2D` / `Convolution2D`).
//!
//! Arguments and defaults: `filters`, `kernel_size`, `strides = (1, 1)`,
//! `padding = 'valid'`, `activation = None` (linear), `use_bias = True`.
//! Kernels start Glorot-uniform, biases at zero.
//!
//! Shape: `(H, W, C) -> (Ho, Wo, filters)`, with `Ho = (H - KH) / SH + 1`
//! under valid padding and `Ho = ceil(H / SH)` under same (likewise `Wo`).
//!
//! Computation: the convolution kernels (`kernels::conv`: direct SIMD,
//! Winograd or im2col + GEMM, chosen per shape), the kernel held
//! as HWIO `[kh, kw, in, out]`; weight files use PyTorch's `[out, in, kh, kw]`.

use core::marker::PhantomData;

use rand::RngCore;
use typenum::Unsigned;

use super::{init_kernel_and_bias, window_geometry, KernelTape};
use crate::activation::{activation_backward, ActivationFn, Linear};
use crate::batch::Batch;
use crate::kernels::conv::backward::{
    conv2d_backward_grouped_scratch, conv2d_backward_grouped_scratch_len,
};
use crate::kernels::{conv2d, conv2d_scratch_len};
use crate::layer::{Context, Layer};
use crate::shape::{PaddingMode, Shape, Shape3, TypeMarker, WindowLen, WindowOut};
use crate::tensor::{Layout, Tensor};

/// A 2-D convolution over `In` (a [`Shape3`]) with `F` filters of `KH × KW`,
/// strides `SH × SW`, padding `P` ([`Valid`](crate::Valid) or
/// [`Same`](crate::Same)) and activation `A`.
pub struct Conv2D<In, F, KH, KW, SH, SW, P, A = Linear> {
    /// `weight`: stored HWIO, `[kh, kw, in, out]`.
    kernel: Tensor,
    /// `bias`: `[out]`, absent with `use_bias = false`.
    bias: Option<Tensor>,
    // Eight type parameters are the layer's whole configuration; naming the
    // tuple would only hide it.
    #[allow(clippy::type_complexity)]
    types: TypeMarker<(In, F, KH, KW, SH, SW, P, A)>,
}

impl<In, F, KH, KW, SH, SW, P, A> Conv2D<In, F, KH, KW, SH, SW, P, A>
where
    In: Shape,
    F: Unsigned,
    KH: Unsigned,
    KW: Unsigned,
{
    /// A layer with a Glorot-uniform kernel drawn from `rng` and a zero bias
    /// (none if `use_bias` is false). The input channels are `In`'s last axis.
    pub fn new(use_bias: bool, rng: &mut dyn RngCore) -> Self {
        let (kh, kw, cin, cout) = (KH::USIZE, KW::USIZE, In::LAST, F::USIZE);
        let mut layer = Conv2D {
            kernel: Tensor::parameter(
                vec![cout, cin, kh, kw],
                Layout::Hwio { kh, kw, cin, cout },
                0.0,
            ),
            bias: use_bias.then(|| Tensor::parameter(vec![cout], Layout::Plain, 0.0)),
            types: PhantomData,
        };
        layer.init(rng);
        layer
    }

    fn init(&mut self, rng: &mut dyn RngCore) {
        let receptive = KH::USIZE * KW::USIZE;
        let fans = (receptive * In::LAST, receptive * F::USIZE);
        init_kernel_and_bias(&mut self.kernel, self.bias.as_mut(), fans, rng);
    }

    /// The kernel, HWIO (`[kh, kw, in, out]`, Keras's layout).
    pub fn kernel(&self) -> &[f32] {
        self.kernel.values()
    }

    /// The bias, if the layer has one.
    pub fn bias(&self) -> Option<&[f32]> {
        self.bias.as_ref().map(Tensor::values)
    }
}

impl<H, W, C, F, KH, KW, SH, SW, P, A> Layer for Conv2D<Shape3<H, W, C>, F, KH, KW, SH, SW, P, A>
where
    H: Unsigned,
    W: Unsigned,
    C: Unsigned,
    F: Unsigned,
    KH: Unsigned,
    KW: Unsigned,
    SH: Unsigned,
    SW: Unsigned,
    P: PaddingMode + WindowOut<H, KH, SH> + WindowOut<W, KW, SW>,
    A: ActivationFn,
{
    type Input = Shape3<H, W, C>;
    type Output = Shape3<WindowLen<H, KH, SH, P>, WindowLen<W, KW, SW, P>, F>;
    type Tape = KernelTape<Self::Input, Self::Output>;

    fn kind(&self) -> &'static str {
        "Conv2D"
    }

    fn forward_into(
        &self,
        input: &Batch<Self::Input>,
        out: &mut Batch<Self::Output>,
        ctx: &mut Context<'_>,
    ) {
        let g = window_geometry::<H, W, C, KH, KW, SH, SW, P>(input.batch_size());
        out.resize(input.batch_size());
        let threads = ctx.threads();
        let scratch = ctx.scratch(conv2d_scratch_len(&g, threads));
        conv2d(
            &g,
            input.as_slice(),
            self.kernel.values(),
            self.bias(),
            F::USIZE,
            out.as_mut_slice(),
            scratch,
            threads,
        );
        A::apply(out.as_mut_slice(), F::USIZE);
    }

    fn forward_taped(
        &mut self,
        input: Batch<Self::Input>,
        ctx: &mut Context<'_>,
    ) -> (Batch<Self::Output>, Self::Tape) {
        KernelTape::record::<A, _>(self, input, ctx)
    }

    fn backward(
        &mut self,
        tape: Self::Tape,
        mut grad: Batch<Self::Output>,
        ctx: &mut Context<'_>,
    ) -> Batch<Self::Input> {
        activation_backward::<A>(tape.output(), grad.as_mut_slice(), F::USIZE, ctx);
        let g = window_geometry::<H, W, C, KH, KW, SH, SW, P>(grad.batch_size());
        let mut grad_input = Batch::<Self::Input>::zeros(grad.batch_size());
        let threads = ctx.threads();
        let scratch = ctx.scratch(conv2d_backward_grouped_scratch_len(&g, F::USIZE, threads));
        let (kernel, grad_kernel) = self.kernel.values_and_grad_mut();
        conv2d_backward_grouped_scratch(
            &g,
            tape.input().as_slice(),
            kernel,
            grad.as_slice(),
            F::USIZE,
            grad_kernel,
            self.bias.as_mut().map(Tensor::grad_mut),
            grad_input.as_mut_slice(),
            scratch,
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
}
