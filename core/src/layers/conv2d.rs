//! `Conv2D`: 2-D convolution (Keras's `Conv2D` / `Convolution2D`).
//!
//! Arguments and defaults: `filters`, `kernel_size`, `strides = (1, 1)`,
//! `padding = 'valid'`, `activation = None` (linear), `use_bias = True`,
//! `dilation_rate = (1, 1)`, `groups = 1`. Kernels start Glorot-uniform
//! (fan-in `kh·kw·in/groups`, fan-out `kh·kw·filters`), biases at zero.
//!
//! Shape: `(H, W, C) -> (Ho, Wo, filters)`, with `Ho = (H - KE) / SH + 1`
//! under valid padding and `Ho = ceil(H / SH)` under same (likewise `Wo`),
//! where `KE = (KH - 1)·DH + 1` is the dilated kernel's span.
//!
//! Computation: the convolution kernels (`kernels::conv`: direct SIMD,
//! Winograd or im2col + GEMM, chosen per shape; dilated and grouped windows
//! always take im2col), the kernel held as HWIO `[kh, kw, in/groups, out]`;
//! weight files use PyTorch's `[out, in/groups, kh, kw]`. With `groups = g`
//! the filters are `g` contiguous groups, each seeing its contiguous slice
//! of `in/g` input channels.

use core::marker::PhantomData;
use std::sync::Arc;

use rand::RngCore;
use typenum::{Unsigned, U1};

use super::{forward_activated, init_kernel_and_bias, Activated, KernelTape};
use crate::activation::{activation_backward, ActivationFn, Linear};
use crate::batch::Batch;
use crate::fusion::{padded_plan, with_activation, FusedHead, PaddedHead};
use crate::kernels::conv::backward::{
    conv2d_backward_grouped_scratch, conv2d_backward_grouped_scratch_len,
};
use crate::kernels::{
    choose_path, conv2d_scratch_len, conv2d_then, ConvExtras, ConvGeometry, ConvPath, Epilogue,
    PreparedKernel,
};
use crate::layer::{Context, Layer};
use crate::onnx::{ExportError, OnnxGraph};
use crate::shape::{
    Dilate, DilatedKernel, DividesInto, PaddingMode, Shape, Shape3, TypeMarker, WindowLen,
    WindowOut,
};
use crate::tensor::{Layout, Tensor};

/// A 2-D convolution over `In` (a [`Shape3`]) with `F` filters of `KH × KW`,
/// strides `SH × SW`, padding `P` ([`Valid`](crate::Valid) or
/// [`Same`](crate::Same)), activation `A`, dilation `DH × DW` and `G`
/// channel groups.
///
/// In `sequential!`: `Conv2D(4, (3, 3), padding = same, activation = relu)`.
///
/// ```
/// use strata_core::typenum::{U1, U3, U4, U8};
/// use strata_core::{seeded_rng, Batch, Conv2D, Model, Relu, Same, Shape3};
///
/// // On 8x8x3 images: 4 filters, a 3x3 kernel, strides 1x1, 'same', relu.
/// let conv: Conv2D<Shape3<U8, U8, U3>, U4, U3, U3, U1, U1, Same, Relu> =
///     Conv2D::new(true, &mut seeded_rng(0));
/// let y = conv.predict(&Batch::filled(2, 0.5));
/// assert_eq!(y.dims(), [2, 8, 8, 4]);
/// assert!(y.as_slice().iter().all(|&v| v >= 0.0));
/// assert_eq!(conv.kernel().len(), 3 * 3 * 3 * 4); // HWIO
/// ```
pub struct Conv2D<In, F, KH, KW, SH, SW, P, A = Linear, DH = U1, DW = U1, G = U1> {
    /// `weight`: stored HWIO, `[kh, kw, in/groups, out]`.
    kernel: Tensor,
    /// `bias`: `[out]`, absent with `use_bias = false`.
    bias: Option<Tensor>,
    // The type parameters are the layer's whole configuration; naming the
    // tuple would only hide it.
    #[allow(clippy::type_complexity)]
    types: TypeMarker<(In, F, KH, KW, SH, SW, P, A, DH, DW, G)>,
}

/// The geometry of a `KH × KW` window dilated by `DH × DW`, at strides
/// `SH × SW` under padding `P`, over a batch of `H × W × C` images split
/// into `groups` channel groups: what the convolution layers derive from
/// their types.
pub(crate) fn conv_geometry<H, W, C, KH, KW, SH, SW, P, DH, DW>(
    batch: usize,
    groups: usize,
) -> ConvGeometry
where
    H: Unsigned,
    W: Unsigned,
    C: Unsigned,
    KH: Unsigned,
    KW: Unsigned,
    SH: Unsigned,
    SW: Unsigned,
    P: PaddingMode,
    DH: Unsigned,
    DW: Unsigned,
{
    ConvGeometry::with_options(
        batch,
        (H::USIZE, W::USIZE, C::USIZE),
        (KH::USIZE, KW::USIZE),
        (SH::USIZE, SW::USIZE),
        P::PADDING,
        (DH::USIZE, DW::USIZE),
        groups,
    )
    .expect("the type-level shape rule guarantees the window fits and the groups divide")
}

impl<In, F, KH, KW, SH, SW, P, A, DH, DW, G> Conv2D<In, F, KH, KW, SH, SW, P, A, DH, DW, G>
where
    In: Shape,
    F: Unsigned,
    KH: Unsigned,
    KW: Unsigned,
    G: Unsigned,
{
    /// A layer with a Glorot-uniform kernel drawn from `rng` and a zero bias
    /// (none if `use_bias` is false). The input channels are `In`'s last axis.
    pub fn new(use_bias: bool, rng: &mut dyn RngCore) -> Self {
        let (kh, kw, cin, cout) = (KH::USIZE, KW::USIZE, Self::group_in(), F::USIZE);
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

    /// Input channels each filter sees: the input's, over the groups.
    fn group_in() -> usize {
        In::LAST / G::USIZE.max(1)
    }

    fn init(&mut self, rng: &mut dyn RngCore) {
        let receptive = KH::USIZE * KW::USIZE;
        let fans = (receptive * Self::group_in(), receptive * F::USIZE);
        init_kernel_and_bias(&mut self.kernel, self.bias.as_mut(), fans, rng);
    }

    /// The kernel, HWIO (`[kh, kw, in/groups, out]`, Keras's layout).
    pub fn kernel(&self) -> &[f32] {
        self.kernel.values()
    }

    /// The bias, if the layer has one.
    pub fn bias(&self) -> Option<&[f32]> {
        self.bias.as_ref().map(Tensor::values)
    }
}

/// The convolution itself; the shape bounds are the [`Layer`] impl's.
impl<H, W, C, F, KH, KW, SH, SW, P, A, DH, DW, G> Activated
    for Conv2D<Shape3<H, W, C>, F, KH, KW, SH, SW, P, A, DH, DW, G>
where
    Self: Layer<Input = Shape3<H, W, C>>,
    H: Unsigned,
    W: Unsigned,
    C: Unsigned,
    F: Unsigned,
    KH: Unsigned,
    KW: Unsigned,
    SH: Unsigned,
    SW: Unsigned,
    P: PaddingMode,
    A: ActivationFn,
    DH: Unsigned,
    DW: Unsigned,
    G: Unsigned,
{
    type Activation = A;

    fn forward_linear(
        &self,
        input: &Batch<Self::Input>,
        out: &mut Batch<Self::Output>,
        ctx: &mut Context<'_>,
    ) {
        self.convolve(input, out, Epilogue::NONE, ctx);
    }
}

impl<H, W, C, F, KH, KW, SH, SW, P, A, DH, DW, G>
    Conv2D<Shape3<H, W, C>, F, KH, KW, SH, SW, P, A, DH, DW, G>
where
    Self: Layer<Input = Shape3<H, W, C>>,
    H: Unsigned,
    W: Unsigned,
    C: Unsigned,
    F: Unsigned,
    KH: Unsigned,
    KW: Unsigned,
    SH: Unsigned,
    SW: Unsigned,
    P: PaddingMode,
    DH: Unsigned,
    DW: Unsigned,
    G: Unsigned,
{
    /// The convolution plus bias, then `then` on each piece of output.
    fn convolve(
        &self,
        input: &Batch<Shape3<H, W, C>>,
        out: &mut Batch<<Self as Layer>::Output>,
        then: Epilogue<'_>,
        ctx: &mut Context<'_>,
    ) {
        let g = conv_geometry::<H, W, C, KH, KW, SH, SW, P, DH, DW>(input.batch_size(), G::USIZE);
        out.resize(g.batch);
        self.convolve_with(&g, input.as_slice(), out.as_mut_slice(), then, ctx);
    }

    /// [`Self::convolve`] of `input` on geometry `g`.
    fn convolve_with(
        &self,
        g: &ConvGeometry,
        input: &[f32],
        out: &mut [f32],
        then: Epilogue<'_>,
        ctx: &mut Context<'_>,
    ) {
        let prepared = prepared_kernel(&self.kernel, g, F::USIZE, ctx);
        let threads = ctx.threads();
        let scratch = ctx.scratch(conv2d_scratch_len(g, F::USIZE, threads));
        let extras = ConvExtras {
            prepared: prepared.as_deref().and_then(Option::as_ref),
            epilogue: then,
        };
        conv2d_then(
            g,
            input,
            self.kernel.values(),
            self.bias(),
            F::USIZE,
            out,
            scratch,
            threads,
            extras,
        );
    }
}

/// `kernel` prepared for the path that computes `g` (Winograd's
/// transformed weights, the direct kernel's panels), kept beside the
/// tensor until its values change, so that inference transforms it once,
/// not per call, where that pays ([`PreparedKernel::pays`]). Training,
/// which changes the weights every step, transforms per call instead
/// (`None`).
pub(crate) fn prepared_kernel(
    kernel: &Tensor,
    g: &ConvGeometry,
    out_c: usize,
    ctx: &Context<'_>,
) -> Option<Arc<Option<PreparedKernel>>> {
    let path = choose_path(g, out_c);
    if ctx.is_training() || !PreparedKernel::pays(path, g) {
        return None;
    }
    // Keyed by the path: a layer's path can change with the batch size,
    // and the key keeps a cache from serving a path it was not made for.
    let key = match path {
        ConvPath::Direct(_) => 1,
        ConvPath::Winograd => 2,
        ConvPath::Im2col => 3,
        ConvPath::Winograd4 => 4,
        ConvPath::Pointwise => 5,
    };
    Some(kernel.derived(key, |k| PreparedKernel::new(g, k, out_c)))
}

impl<H, W, C, F, KH, KW, SH, SW, P, A, DH, DW, G> FusedHead
    for Conv2D<Shape3<H, W, C>, F, KH, KW, SH, SW, P, A, DH, DW, G>
where
    Self: Layer<Input = Shape3<H, W, C>>,
    H: Unsigned,
    W: Unsigned,
    C: Unsigned,
    F: Unsigned,
    KH: Unsigned,
    KW: Unsigned,
    SH: Unsigned,
    SW: Unsigned,
    P: PaddingMode,
    A: ActivationFn,
    DH: Unsigned,
    DW: Unsigned,
    G: Unsigned,
{
    fn forward_into_then(
        &self,
        input: &Batch<Self::Input>,
        out: &mut Batch<Self::Output>,
        then: Epilogue<'_>,
        ctx: &mut Context<'_>,
    ) {
        match with_activation::<A>(then) {
            Some(steps) => self.convolve(input, out, Epilogue::new(steps.as_slice()), ctx),
            None => {
                // An activation over the last axis (softmax): after the
                // whole output, not inside the kernel.
                forward_activated(self, input, out, ctx);
                then.apply(out.as_mut_slice(), F::USIZE);
            }
        }
    }

    /// Alike when both take the same kernel path: every path computes
    /// each image's outputs in the same order whatever the batch.
    fn same_by_bands(&self, total: usize, images: usize) -> bool {
        let geometry = |n| conv_geometry::<H, W, C, KH, KW, SH, SW, P, DH, DW>(n, G::USIZE);
        let path = |n| choose_path(&geometry(n), F::USIZE);
        A::ELEMENTWISE && images > 0 && path(total) == path(images)
    }

    fn forward_band_then(
        &self,
        input: &[f32],
        images: usize,
        out: &mut [f32],
        then: Epilogue<'_>,
        ctx: &mut Context<'_>,
    ) -> bool {
        let g = conv_geometry::<H, W, C, KH, KW, SH, SW, P, DH, DW>(images, G::USIZE);
        let Some(steps) = with_activation::<A>(then) else {
            return false;
        };
        assert!(
            input.len() >= g.input_len() && out.len() >= g.out_pixels() * F::USIZE,
            "Conv2D: a band's slices are shorter than its {images} images"
        );
        self.convolve_with(&g, input, out, Epilogue::new(steps.as_slice()), ctx);
        true
    }
}

impl<H, W, C, F, KH, KW, SH, SW, P, A, DH, DW, G> PaddedHead
    for Conv2D<Shape3<H, W, C>, F, KH, KW, SH, SW, P, A, DH, DW, G>
where
    Self: FusedHead<Input = Shape3<H, W, C>>,
    H: Unsigned,
    W: Unsigned,
    C: Unsigned,
    F: Unsigned,
    KH: Unsigned,
    KW: Unsigned,
    SH: Unsigned,
    SW: Unsigned,
    P: PaddingMode,
    A: ActivationFn,
    DH: Unsigned,
    DW: Unsigned,
    G: Unsigned,
{
    fn forward_padded_then(
        &self,
        (input, images): (&[f32], usize),
        frame: ((usize, usize), (usize, usize)),
        out: &mut Batch<Self::Output>,
        then: Epilogue<'_>,
        ctx: &mut Context<'_>,
    ) -> bool {
        let g = conv_geometry::<H, W, C, KH, KW, SH, SW, P, DH, DW>(images, G::USIZE);
        let Some((g, steps)) = padded_plan::<A>(&g, frame, then, input) else {
            return false;
        };
        out.resize(g.batch);
        let out = out.as_mut_slice();
        self.convolve_with(&g, input, out, Epilogue::new(steps.as_slice()), ctx);
        true
    }
}

impl<H, W, C, F, KH, KW, SH, SW, P, A, DH, DW, G> Layer
    for Conv2D<Shape3<H, W, C>, F, KH, KW, SH, SW, P, A, DH, DW, G>
where
    H: Unsigned,
    W: Unsigned,
    C: Unsigned + DividesInto<G>,
    F: Unsigned + DividesInto<G>,
    KH: Unsigned + Dilate<DH>,
    KW: Unsigned + Dilate<DW>,
    SH: Unsigned,
    SW: Unsigned,
    P: PaddingMode
        + WindowOut<H, DilatedKernel<KH, DH>, SH>
        + WindowOut<W, DilatedKernel<KW, DW>, SW>,
    A: ActivationFn,
    DH: Unsigned,
    DW: Unsigned,
    G: Unsigned,
{
    type Input = Shape3<H, W, C>;
    type Output = Shape3<
        WindowLen<H, DilatedKernel<KH, DH>, SH, P>,
        WindowLen<W, DilatedKernel<KW, DW>, SW, P>,
        F,
    >;
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
        // The activation runs inside the kernel when it is element-wise.
        self.forward_into_then(input, out, Epilogue::NONE, ctx);
    }

    fn forward_taped(
        &mut self,
        input: Batch<Self::Input>,
        ctx: &mut Context<'_>,
    ) -> (Batch<Self::Output>, Self::Tape) {
        KernelTape::record(self, input, ctx)
    }

    fn backward(
        &mut self,
        tape: Self::Tape,
        mut grad: Batch<Self::Output>,
        ctx: &mut Context<'_>,
    ) -> Batch<Self::Input> {
        activation_backward::<A>(tape.kept(), grad.as_mut_slice(), F::USIZE, ctx);
        let g = conv_geometry::<H, W, C, KH, KW, SH, SW, P, DH, DW>(grad.batch_size(), G::USIZE);
        let mut grad_input = ctx.take_batch::<Self::Input>(grad.batch_size());
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

    /// `Conv` (explicit pads reproducing Keras's 'same', dilations, group),
    /// then the activation.
    fn export_onnx(&self, g: &mut OnnxGraph, input: &str) -> Result<String, ExportError> {
        let geometry = conv_geometry::<H, W, C, KH, KW, SH, SW, P, DH, DW>(1, G::USIZE);
        let y = export_conv(g, input, &self.kernel, self.bias.as_ref(), &geometry)?;
        A::export_onnx(g, &y)
    }
}

/// A `Conv` node of `kernel` (exported in PyTorch's `[out, in/groups, kh,
/// kw]`, ONNX's layout) and `bias` over `geometry`: the convolution of
/// Conv2D, DepthwiseConv2D and the pointwise part of SeparableConv2D.
pub(crate) fn export_conv(
    g: &mut OnnxGraph,
    input: &str,
    kernel: &Tensor,
    bias: Option<&Tensor>,
    geometry: &ConvGeometry,
) -> Result<String, ExportError> {
    let weight = g.initializer("weight", kernel.shape(), &kernel.export())?;
    let bias = match bias {
        Some(b) => Some(g.initializer("bias", b.shape(), b.values())?),
        None => None,
    };
    g.conv(input, &weight, bias.as_deref(), geometry)
}
