//! `SeparableConv2D`: a depthwise convolution then a 1×1 convolution
//! (Keras's `SeparableConv2D`; PyTorch: a `Conv2d(C, C·m, k, groups = C,
//! bias = False)` then a `Conv2d(C·m, filters, 1)`).
//!
//! Arguments and defaults: `filters`, `kernel_size`, `strides = (1, 1)`,
//! `padding = 'valid'`, `depth_multiplier = 1`, `dilation_rate = (1, 1)`,
//! `activation = None` (linear), `use_bias = True`. Both kernels start
//! Glorot-uniform with Keras's fans (depthwise as in `DepthwiseConv2D`,
//! pointwise `C·m` in, `filters` out), the bias at zero.
//!
//! Shape: `(H, W, C) -> (Ho, Wo, filters)`, `Ho` and `Wo` those of the
//! depthwise part.
//!
//! Computation: the depthwise part (strides, padding, dilation, multiplier,
//! no bias), then the pointwise part with the bias, then the activation.
//! Weight files hold `depthwise.weight` `[C·m, 1, kh, kw]`,
//! `pointwise.weight` `[filters, C·m, 1, 1]` and `pointwise.bias`.

use core::marker::PhantomData;

use rand::RngCore;
use typenum::{Unsigned, U1};

use super::conv2d::export_conv;
use super::{forward_activated, init_kernel_and_bias, Activated, DepthwiseConv2D, KernelTape};
use crate::activation::{activation_backward, ActivationFn, Linear};
use crate::batch::Batch;
use crate::kernels::conv::backward::{
    conv2d_backward_grouped_scratch, conv2d_backward_grouped_scratch_len,
};
use crate::kernels::{conv2d, conv2d_scratch_len, ConvGeometry};
use crate::layer::{Context, Layer};
use crate::onnx::{ExportError, OnnxGraph};
use crate::shape::{Padding, Shape, Shape3, TypeMarker};
use crate::tensor::{Layout, Tensor, VisitPath, Visitor, VisitorMut};

/// The depthwise part of a [`SeparableConv2D`]: no bias, no activation.
pub type SeparableDepthwise<In, KH, KW, SH, SW, P, M, DH, DW> =
    DepthwiseConv2D<In, KH, KW, SH, SW, P, M, Linear, DH, DW>;

/// The pointwise part of a [`SeparableConv2D`], after its depthwise part.
pub type SeparablePointwise<In, F, KH, KW, SH, SW, P, M, A, DH, DW> =
    Pointwise<SeparableDepthwise<In, KH, KW, SH, SW, P, M, DH, DW>, F, A>;

/// A depthwise convolution over `In` (`KH × KW` windows, strides
/// `SH × SW`, padding `P`, multiplier `M`, dilation `DH × DW`) followed by
/// a 1×1 convolution to `F` channels with activation `A`.
///
/// In `sequential!`: `SeparableConv2D(4, (3, 3), padding = same)`.
///
/// ```
/// use strata_core::typenum::{U1, U3, U4, U8};
/// use strata_core::{seeded_rng, Batch, Model, Same, SeparableConv2D, Shape3};
///
/// let conv: SeparableConv2D<Shape3<U8, U8, U3>, U4, U3, U3, U1, U1, Same> =
///     SeparableConv2D::new(true, &mut seeded_rng(0));
/// assert_eq!(conv.predict(&Batch::zeros(1)).dims(), [1, 8, 8, 4]);
/// ```
pub struct SeparableConv2D<In, F, KH, KW, SH, SW, P, M = U1, A = Linear, DH = U1, DW = U1> {
    depthwise: SeparableDepthwise<In, KH, KW, SH, SW, P, M, DH, DW>,
    pointwise: SeparablePointwise<In, F, KH, KW, SH, SW, P, M, A, DH, DW>,
}

impl<In, F, KH, KW, SH, SW, P, M, A, DH, DW> SeparableConv2D<In, F, KH, KW, SH, SW, P, M, A, DH, DW>
where
    In: Shape,
    F: Unsigned,
    KH: Unsigned,
    KW: Unsigned,
    M: Unsigned,
{
    /// A layer with Glorot-uniform kernels drawn from `rng` (depthwise
    /// first) and a zero bias (none if `use_bias` is false).
    pub fn new(use_bias: bool, rng: &mut dyn RngCore) -> Self {
        let depthwise = DepthwiseConv2D::new(false, rng);
        let pointwise = Pointwise::new(In::LAST * M::USIZE, use_bias, rng);
        SeparableConv2D {
            depthwise,
            pointwise,
        }
    }

    /// The depthwise part.
    pub fn depthwise(&self) -> &SeparableDepthwise<In, KH, KW, SH, SW, P, M, DH, DW> {
        &self.depthwise
    }
}

impl<In, F, KH, KW, SH, SW, P, M, A, DH, DW> Layer
    for SeparableConv2D<In, F, KH, KW, SH, SW, P, M, A, DH, DW>
where
    In: Shape,
    SeparableDepthwise<In, KH, KW, SH, SW, P, M, DH, DW>: Layer<Input = In>,
    SeparablePointwise<In, F, KH, KW, SH, SW, P, M, A, DH, DW>:
        Layer<Input = <SeparableDepthwise<In, KH, KW, SH, SW, P, M, DH, DW> as Layer>::Output>,
{
    type Input = In;
    type Output = <SeparablePointwise<In, F, KH, KW, SH, SW, P, M, A, DH, DW> as Layer>::Output;
    #[allow(clippy::type_complexity)]
    type Tape = (
        <SeparableDepthwise<In, KH, KW, SH, SW, P, M, DH, DW> as Layer>::Tape,
        <SeparablePointwise<In, F, KH, KW, SH, SW, P, M, A, DH, DW> as Layer>::Tape,
    );

    fn kind(&self) -> &'static str {
        "SeparableConv2D"
    }

    fn forward_into(
        &self,
        input: &Batch<In>,
        out: &mut Batch<Self::Output>,
        ctx: &mut Context<'_>,
    ) {
        let mut middle = ctx.take_batch(input.batch_size());
        self.depthwise.forward_into(input, &mut middle, ctx);
        self.pointwise.forward_into(&middle, out, ctx);
        ctx.recycle(middle);
    }

    fn forward_taped(
        &mut self,
        input: Batch<In>,
        ctx: &mut Context<'_>,
    ) -> (Batch<Self::Output>, Self::Tape) {
        let (middle, depthwise) = self.depthwise.forward_taped(input, ctx);
        let (out, pointwise) = self.pointwise.forward_taped(middle, ctx);
        (out, (depthwise, pointwise))
    }

    fn backward(
        &mut self,
        (depthwise, pointwise): Self::Tape,
        grad_output: Batch<Self::Output>,
        ctx: &mut Context<'_>,
    ) -> Batch<In> {
        let middle = self.pointwise.backward(pointwise, grad_output, ctx);
        self.depthwise.backward(depthwise, middle, ctx)
    }

    fn visit_tensors(&self, path: &mut VisitPath, v: &mut dyn Visitor) {
        path.part("depthwise", &self.depthwise, v);
        path.part("pointwise", &self.pointwise, v);
    }

    fn visit_tensors_mut(&mut self, path: &mut VisitPath, v: &mut dyn VisitorMut) {
        path.part_mut("depthwise", &mut self.depthwise, v);
        path.part_mut("pointwise", &mut self.pointwise, v);
    }

    fn initialize(&mut self, rng: &mut dyn RngCore) {
        self.depthwise.initialize(rng);
        self.pointwise.initialize(rng);
    }

    /// The depthwise `Conv`, then the 1×1 `Conv` and the activation.
    fn export_onnx(&self, g: &mut OnnxGraph, input: &str) -> Result<String, ExportError> {
        let middle = g.part("depthwise", |g| self.depthwise.export_onnx(g, input))?;
        g.part("pointwise", |g| self.pointwise.export_onnx(g, &middle))
    }
}

/// The pointwise part of a [`SeparableConv2D`]: a 1×1 convolution to `F`
/// channels, with activation `A`, of what layer `D` outputs.
///
/// It is typed by the layer before it rather than by its input shape, so
/// that a separable layer's fields need no shape arithmetic of their own.
pub struct Pointwise<D, F, A> {
    /// `weight`: stored `[in, F]` (HWIO with a 1×1 window).
    kernel: Tensor,
    /// `bias`: `[F]`, absent with `use_bias = false`.
    bias: Option<Tensor>,
    types: TypeMarker<(D, F, A)>,
}

impl<D, F: Unsigned, A> Pointwise<D, F, A> {
    /// A part over `inputs` channels with a Glorot-uniform kernel drawn from
    /// `rng` and a zero bias (none if `use_bias` is false).
    pub fn new(inputs: usize, use_bias: bool, rng: &mut dyn RngCore) -> Self {
        let (cin, cout) = (inputs, F::USIZE);
        let layout = Layout::Hwio {
            kh: 1,
            kw: 1,
            cin,
            cout,
        };
        let mut part = Pointwise {
            kernel: Tensor::parameter(vec![cout, cin, 1, 1], layout, 0.0),
            bias: use_bias.then(|| Tensor::parameter(vec![cout], Layout::Plain, 0.0)),
            types: PhantomData,
        };
        part.init(rng);
        part
    }

    fn init(&mut self, rng: &mut dyn RngCore) {
        let fans = (self.kernel.numel() / F::USIZE.max(1), F::USIZE);
        init_kernel_and_bias(&mut self.kernel, self.bias.as_mut(), fans, rng);
    }

    /// A 1×1 stride-1 window over `batch` images of `H × W × C`.
    fn geometry<H: Unsigned, W: Unsigned, C: Unsigned>(batch: usize) -> ConvGeometry {
        let input = (H::USIZE, W::USIZE, C::USIZE);
        ConvGeometry::new(batch, input, (1, 1), (1, 1), Padding::Valid)
            .expect("a 1x1 window fits any input")
    }
}

impl<D, H, W, C, F, A> Activated for Pointwise<D, F, A>
where
    D: Layer<Output = Shape3<H, W, C>>,
    Self: Layer<Input = Shape3<H, W, C>>,
    H: Unsigned,
    W: Unsigned,
    C: Unsigned,
    F: Unsigned,
    A: ActivationFn,
{
    type Activation = A;

    fn forward_linear(
        &self,
        input: &Batch<Self::Input>,
        out: &mut Batch<Self::Output>,
        ctx: &mut Context<'_>,
    ) {
        let g = Self::geometry::<H, W, C>(input.batch_size());
        out.resize(input.batch_size());
        let threads = ctx.threads();
        let scratch = ctx.scratch(conv2d_scratch_len(&g, F::USIZE, threads));
        let bias = self.bias.as_ref().map(Tensor::values);
        let (x, y) = (input.as_slice(), out.as_mut_slice());
        conv2d(
            &g,
            x,
            self.kernel.values(),
            bias,
            F::USIZE,
            y,
            scratch,
            threads,
        );
    }
}

impl<D, H, W, C, F, A> Layer for Pointwise<D, F, A>
where
    D: Layer<Output = Shape3<H, W, C>>,
    H: Unsigned,
    W: Unsigned,
    C: Unsigned,
    F: Unsigned,
    A: ActivationFn,
{
    type Input = Shape3<H, W, C>;
    type Output = Shape3<H, W, F>;
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
        forward_activated(self, input, out, ctx);
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
        let g = Self::geometry::<H, W, C>(grad.batch_size());
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

    /// A 1×1 `Conv`, then the activation.
    fn export_onnx(&self, g: &mut OnnxGraph, input: &str) -> Result<String, ExportError> {
        let geometry = Self::geometry::<H, W, C>(1);
        let y = export_conv(g, input, &self.kernel, self.bias.as_ref(), &geometry)?;
        A::export_onnx(g, &y)
    }
}

#[cfg(test)]
mod tests {
    use rand::Rng;
    use typenum::{U2, U3, U4, U5, U6, U8};

    use super::*;
    use crate::init::seeded_rng;
    use crate::layers::depthwise_conv2d::gradcheck::check_layer;
    use crate::layers::Conv2D;
    use crate::model::Model;
    use crate::shape::{Same, Valid};

    type In = Shape3<U6, U5, U3>;

    fn input<S: Shape>(n: usize, seed: u64) -> Batch<S> {
        let mut rng = seeded_rng(seed);
        let v = (0..n * S::NUMEL)
            .map(|_| rng.random_range(-1.0f32..1.0))
            .collect();
        Batch::from_vec(n, v).unwrap()
    }

    #[test]
    fn keys_shapes_and_summary() {
        let layer =
            SeparableConv2D::<In, U8, U3, U3, U1, U1, Same, U2>::new(true, &mut seeded_rng(1));
        let keys: Vec<(String, Vec<usize>)> = layer
            .params()
            .into_iter()
            .map(|p| (p.name, p.shape))
            .collect();
        assert_eq!(
            keys,
            [
                ("depthwise.weight".to_string(), vec![6, 1, 3, 3]),
                ("pointwise.weight".to_string(), vec![8, 6, 1, 1]),
                ("pointwise.bias".to_string(), vec![8]),
            ]
        );
        assert_eq!(layer.param_count(), 54 + 48 + 8);
        let mut rows = Vec::new();
        layer.summary_rows(&mut rows);
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].kind, "SeparableConv2D");
        assert_eq!(rows[0].output, [6, 5, 8]);
        let no_bias =
            SeparableConv2D::<In, U8, U3, U3, U1, U1, Same>::new(false, &mut seeded_rng(1));
        assert_eq!(no_bias.params().len(), 2);
    }

    /// The same as a depthwise layer then a 1×1 Conv2D holding the same
    /// weights.
    #[test]
    fn equals_depthwise_then_pointwise_conv() {
        type Dw = DepthwiseConv2D<In, U3, U2, U2, U1, Valid, U2, Linear, U1, U2>;
        type Sep =
            SeparableConv2D<In, U4, U3, U2, U2, U1, Valid, U2, crate::activation::Tanh, U1, U2>;
        type Pw = Conv2D<<Dw as Layer>::Output, U4, U1, U1, U1, U1, Valid, crate::activation::Tanh>;
        let mut rng = seeded_rng(3);
        let sep = Sep::new(true, &mut rng);
        let mut dw = Dw::new(false, &mut rng);
        let mut pw = Pw::new(true, &mut rng);
        let bias: Vec<f32> = (0..4).map(|i| 0.1 * i as f32).collect();
        let mut sep = sep;
        assert!(sep.import_param("pointwise.bias", &bias));
        assert!(dw.import_param("weight", &sep.export_param("depthwise.weight").unwrap()));
        assert!(pw.import_param("weight", &sep.export_param("pointwise.weight").unwrap()));
        assert!(pw.import_param("bias", &bias));
        let x = input::<In>(2, 4);
        let expected = pw.predict(&dw.predict(&x));
        let got = sep.predict(&x);
        assert_eq!(got.sample_dims(), &[2, 3, 4]);
        for (a, b) in got.as_slice().iter().zip(expected.as_slice()) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
    }

    #[test]
    fn backward_matches_finite_differences() {
        let mut layer = SeparableConv2D::<In, U5, U3, U3, U2, U1, Same, U2, Linear, U1, U2>::new(
            true,
            &mut seeded_rng(5),
        );
        let worst = check_layer(&mut layer, &input(2, 6), 7);
        assert!(worst < 2e-3);
    }
}
