//! `DepthwiseConv2D`: each input channel convolved on its own with
//! `depth_multiplier` filters (Keras's `DepthwiseConv2D`; PyTorch's
//! `Conv2d(C, C·m, k, groups = C)`).
//!
//! Arguments and defaults: `kernel_size`, `strides = (1, 1)`,
//! `padding = 'valid'`, `depth_multiplier = 1`, `dilation_rate = (1, 1)`,
//! `activation = None` (linear), `use_bias = True`. The kernel starts
//! Glorot-uniform with Keras's fans for its `[kh, kw, C, m]` kernel
//! (fan-in `kh·kw·C`, fan-out `kh·kw·m`), the bias at zero.
//!
//! Shape: `(H, W, C) -> (Ho, Wo, C·m)`, `Ho` and `Wo` as for `Conv2D`
//! (dilated kernel span `(k - 1)·d + 1`). Output channel `c·m + k` comes
//! from input channel `c`.
//!
//! Computation: the depthwise kernel (`kernels::conv::depthwise`), which
//! reads the input in place with the channels innermost (im2col would
//! waste a memory-bound layer). The kernel is held as `[kh, kw, C·m]`;
//! weight files use PyTorch's `[C·m, 1, kh, kw]`, bias `[C·m]`.

use core::marker::PhantomData;
use core::ops::Mul;

use rand::RngCore;
use typenum::{Prod, Unsigned, U1};

use super::conv2d::{conv_geometry, export_conv};
use super::{forward_activated, init_kernel_and_bias, Activated, KernelTape};
use crate::activation::{activation_backward, ActivationFn, Linear};
use crate::batch::Batch;
use crate::fusion::{padded_plan, with_activation, FusedHead, PaddedHead};
use crate::kernels::conv::depthwise::{
    depthwise_backward_scratch_len, depthwise_conv2d_backward, depthwise_conv2d_then,
};
use crate::kernels::epilogue::Epilogue;
use crate::kernels::ConvGeometry;
use crate::layer::{Context, Layer};
use crate::onnx::{ExportError, OnnxGraph};
use crate::shape::{
    Dilate, DilatedKernel, PaddingMode, Shape, Shape3, TypeMarker, WindowLen, WindowOut,
};
use crate::tensor::{Layout, Tensor};

/// A depthwise convolution over `In` (a [`Shape3`]) with `KH × KW` windows,
/// strides `SH × SW`, padding `P`, `M` filters per input channel,
/// activation `A` and dilation `DH × DW`.
///
/// In `sequential!`: `DepthwiseConv2D((3, 3), depth_multiplier = 2)`.
///
/// ```
/// use strata_core::typenum::{U1, U2, U3, U8};
/// use strata_core::{seeded_rng, Batch, DepthwiseConv2D, Model, Shape3, Valid};
///
/// // 8x8x3 images, 3x3 windows, strides 1x1, 'valid', 2 filters per channel.
/// let conv: DepthwiseConv2D<Shape3<U8, U8, U3>, U3, U3, U1, U1, Valid, U2> =
///     DepthwiseConv2D::new(true, &mut seeded_rng(0));
/// assert_eq!(conv.predict(&Batch::zeros(1)).dims(), [1, 6, 6, 6]);
/// ```
pub struct DepthwiseConv2D<In, KH, KW, SH, SW, P, M = U1, A = Linear, DH = U1, DW = U1> {
    /// `weight`: stored `[kh, kw, C·m]`.
    kernel: Tensor,
    /// `bias`: `[C·m]`, absent with `use_bias = false`.
    bias: Option<Tensor>,
    // The type parameters are the layer's whole configuration.
    #[allow(clippy::type_complexity)]
    types: TypeMarker<(In, KH, KW, SH, SW, P, M, A, DH, DW)>,
}

impl<In, KH, KW, SH, SW, P, M, A, DH, DW> DepthwiseConv2D<In, KH, KW, SH, SW, P, M, A, DH, DW>
where
    In: Shape,
    KH: Unsigned,
    KW: Unsigned,
    M: Unsigned,
{
    /// A layer with a Glorot-uniform kernel drawn from `rng` and a zero bias
    /// (none if `use_bias` is false). The input channels are `In`'s last axis.
    pub fn new(use_bias: bool, rng: &mut dyn RngCore) -> Self {
        let (kh, kw, cout) = (KH::USIZE, KW::USIZE, In::LAST * M::USIZE);
        let mut layer = DepthwiseConv2D {
            kernel: Tensor::parameter(
                vec![cout, 1, kh, kw],
                Layout::Hwio {
                    kh,
                    kw,
                    cin: 1,
                    cout,
                },
                0.0,
            ),
            bias: use_bias.then(|| Tensor::parameter(vec![cout], Layout::Plain, 0.0)),
            types: PhantomData,
        };
        layer.init(rng);
        layer
    }

    fn init(&mut self, rng: &mut dyn RngCore) {
        // Keras's fans for a [kh, kw, C, m] kernel.
        let receptive = KH::USIZE * KW::USIZE;
        let fans = (receptive * In::LAST, receptive * M::USIZE);
        init_kernel_and_bias(&mut self.kernel, self.bias.as_mut(), fans, rng);
    }

    /// The kernel, `[kh, kw, C·m]` (Keras's `[kh, kw, C, m]`, flattened).
    pub fn kernel(&self) -> &[f32] {
        self.kernel.values()
    }

    /// The bias, if the layer has one.
    pub fn bias(&self) -> Option<&[f32]> {
        self.bias.as_ref().map(Tensor::values)
    }
}

/// The depthwise convolution itself; the shape bounds are the [`Layer`] impl's.
impl<H, W, C, KH, KW, SH, SW, P, M, A, DH, DW> Activated
    for DepthwiseConv2D<Shape3<H, W, C>, KH, KW, SH, SW, P, M, A, DH, DW>
where
    Self: Layer<Input = Shape3<H, W, C>>,
    H: Unsigned,
    W: Unsigned,
    C: Unsigned,
    KH: Unsigned,
    KW: Unsigned,
    SH: Unsigned,
    SW: Unsigned,
    P: PaddingMode,
    M: Unsigned,
    A: ActivationFn,
    DH: Unsigned,
    DW: Unsigned,
{
    type Activation = A;

    fn forward_linear(
        &self,
        input: &Batch<Self::Input>,
        out: &mut Batch<Self::Output>,
        ctx: &mut Context<'_>,
    ) {
        out.resize(input.batch_size());
        self.convolve(input, out.as_mut_slice(), Epilogue::NONE, ctx);
    }
}

impl<H, W, C, KH, KW, SH, SW, P, M, A, DH, DW>
    DepthwiseConv2D<Shape3<H, W, C>, KH, KW, SH, SW, P, M, A, DH, DW>
where
    H: Unsigned,
    W: Unsigned,
    C: Unsigned,
    KH: Unsigned,
    KW: Unsigned,
    SH: Unsigned,
    SW: Unsigned,
    P: PaddingMode,
    M: Unsigned,
    DH: Unsigned,
    DW: Unsigned,
{
    /// The convolution plus bias into `out` (sized for the batch), then
    /// `then` on each output row.
    fn convolve(
        &self,
        input: &Batch<Shape3<H, W, C>>,
        out: &mut [f32],
        then: Epilogue<'_>,
        ctx: &mut Context<'_>,
    ) {
        let g = conv_geometry::<H, W, C, KH, KW, SH, SW, P, DH, DW>(input.batch_size(), C::USIZE);
        self.convolve_with(&g, input.as_slice(), out, then, ctx);
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
        depthwise_conv2d_then(
            g,
            M::USIZE,
            input,
            self.kernel.values(),
            self.bias(),
            out,
            ctx.threads(),
            then,
        );
    }
}

impl<H, W, C, KH, KW, SH, SW, P, M, A, DH, DW> PaddedHead
    for DepthwiseConv2D<Shape3<H, W, C>, KH, KW, SH, SW, P, M, A, DH, DW>
where
    Self: FusedHead<Input = Shape3<H, W, C>>,
    H: Unsigned,
    W: Unsigned,
    C: Unsigned,
    KH: Unsigned,
    KW: Unsigned,
    SH: Unsigned,
    SW: Unsigned,
    P: PaddingMode,
    M: Unsigned,
    A: ActivationFn,
    DH: Unsigned,
    DW: Unsigned,
{
    fn forward_padded_then(
        &self,
        (input, images): (&[f32], usize),
        frame: ((usize, usize), (usize, usize)),
        out: &mut Batch<Self::Output>,
        then: Epilogue<'_>,
        ctx: &mut Context<'_>,
    ) -> bool {
        let g = conv_geometry::<H, W, C, KH, KW, SH, SW, P, DH, DW>(images, C::USIZE);
        let Some((g, steps)) = padded_plan::<A>(&g, frame, then, input) else {
            return false;
        };
        out.resize(images);
        let epilogue = Epilogue::new(steps.as_slice());
        self.convolve_with(&g, input, out.as_mut_slice(), epilogue, ctx);
        true
    }
}

impl<H, W, C, KH, KW, SH, SW, P, M, A, DH, DW> FusedHead
    for DepthwiseConv2D<Shape3<H, W, C>, KH, KW, SH, SW, P, M, A, DH, DW>
where
    Self: Layer<Input = Shape3<H, W, C>>,
    H: Unsigned,
    W: Unsigned,
    C: Unsigned,
    KH: Unsigned,
    KW: Unsigned,
    SH: Unsigned,
    SW: Unsigned,
    P: PaddingMode,
    M: Unsigned,
    A: ActivationFn,
    DH: Unsigned,
    DW: Unsigned,
{
    fn forward_into_then(
        &self,
        input: &Batch<Self::Input>,
        out: &mut Batch<Self::Output>,
        then: Epilogue<'_>,
        ctx: &mut Context<'_>,
    ) {
        out.resize(input.batch_size());
        match with_activation::<A>(then) {
            Some(steps) => self.convolve(
                input,
                out.as_mut_slice(),
                Epilogue::new(steps.as_slice()),
                ctx,
            ),
            None => {
                // An activation over the last axis (softmax): after the
                // whole output, not inside the kernel.
                forward_activated(self, input, out, ctx);
                then.apply(out.as_mut_slice(), C::USIZE * M::USIZE);
            }
        }
    }
}

impl<H, W, C, KH, KW, SH, SW, P, M, A, DH, DW> Layer
    for DepthwiseConv2D<Shape3<H, W, C>, KH, KW, SH, SW, P, M, A, DH, DW>
where
    H: Unsigned,
    W: Unsigned,
    C: Unsigned + Mul<M>,
    Prod<C, M>: Unsigned,
    KH: Unsigned + Dilate<DH>,
    KW: Unsigned + Dilate<DW>,
    SH: Unsigned,
    SW: Unsigned,
    P: PaddingMode
        + WindowOut<H, DilatedKernel<KH, DH>, SH>
        + WindowOut<W, DilatedKernel<KW, DW>, SW>,
    M: Unsigned,
    A: ActivationFn,
    DH: Unsigned,
    DW: Unsigned,
{
    type Input = Shape3<H, W, C>;
    type Output = Shape3<
        WindowLen<H, DilatedKernel<KH, DH>, SH, P>,
        WindowLen<W, DilatedKernel<KW, DW>, SW, P>,
        Prod<C, M>,
    >;
    type Tape = KernelTape<Self::Input, Self::Output>;

    fn kind(&self) -> &'static str {
        "DepthwiseConv2D"
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
        let oc = Self::Output::LAST;
        activation_backward::<A>(tape.kept(), grad.as_mut_slice(), oc, ctx);
        let g = conv_geometry::<H, W, C, KH, KW, SH, SW, P, DH, DW>(grad.batch_size(), C::USIZE);
        let mut grad_input = Batch::<Self::Input>::zeros(grad.batch_size());
        let threads = ctx.threads();
        let scratch = ctx.scratch(depthwise_backward_scratch_len(&g, M::USIZE));
        let (kernel, grad_kernel) = self.kernel.values_and_grad_mut();
        depthwise_conv2d_backward(
            &g,
            M::USIZE,
            tape.input().as_slice(),
            kernel,
            grad.as_slice(),
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

    /// A `Conv` with one group per input channel (PyTorch's depthwise
    /// form, whose output channel `c·m + k` is strata's), then the
    /// activation.
    fn export_onnx(&self, g: &mut OnnxGraph, input: &str) -> Result<String, ExportError> {
        let geometry = conv_geometry::<H, W, C, KH, KW, SH, SW, P, DH, DW>(1, C::USIZE);
        let y = export_conv(g, input, &self.kernel, self.bias.as_ref(), &geometry)?;
        A::export_onnx(g, &y)
    }
}

/// Layer-level gradient checks shared by the tests of the layers of this
/// family (depthwise, separable, padding, reshape).
#[cfg(test)]
pub(crate) mod gradcheck {
    use rand::Rng;

    use crate::batch::Batch;
    use crate::init::seeded_rng;
    use crate::layer::{Context, Layer};
    use crate::shape::Shape;
    use crate::tensor::Role;

    /// Checks `layer`'s input and parameter gradients of `Σ r · layer(x)`
    /// (random `r`) against central differences, up to 64 coordinates of
    /// each tensor. The layer must be smooth (linear activation). Returns
    /// the worst error relative to the tensor's largest gradient (at least 1).
    pub(crate) fn check_layer<L: Layer>(layer: &mut L, x: &Batch<L::Input>, seed: u64) -> f64 {
        let mut rng = seeded_rng(seed);
        let n = x.batch_size();
        let r: Vec<f32> = (0..n * L::Output::NUMEL)
            .map(|_| rng.random_range(-1.0..1.0))
            .collect();
        let objective = |layer: &L, x: &Batch<L::Input>| -> f64 {
            let y = layer.forward(x, &mut Context::inference());
            y.as_slice()
                .iter()
                .zip(&r)
                .map(|(y, r)| *y as f64 * *r as f64)
                .sum()
        };
        layer.zero_grads();
        let mut ctx = Context::inference();
        let (_, tape) = layer.forward_taped(x.clone(), &mut ctx);
        let gx = layer.backward(tape, Batch::from_vec(n, r.clone()).unwrap(), &mut ctx);
        let h = 1e-2f32;
        let picked = picks(x.as_slice().len());
        let fd: Vec<f64> = picked
            .iter()
            .map(|&i| {
                let mut plus = x.clone();
                plus.as_mut_slice()[i] += h;
                let mut minus = x.clone();
                minus.as_mut_slice()[i] -= h;
                (objective(&*layer, &plus) - objective(&*layer, &minus)) / (2.0 * h as f64)
            })
            .collect();
        let mut worst = compare("input", gx.as_slice(), &picked, &fd);
        for p in layer.params() {
            if p.role != Role::Parameter {
                continue;
            }
            let grad = layer.export_grad(&p.name).unwrap();
            let values = layer.export_param(&p.name).unwrap();
            let picked = picks(grad.len());
            let mut fd = Vec::new();
            for &i in &picked {
                let mut v = values.clone();
                v[i] = values[i] + h;
                assert!(layer.import_param(&p.name, &v));
                let up = objective(&*layer, x);
                v[i] = values[i] - h;
                assert!(layer.import_param(&p.name, &v));
                let down = objective(&*layer, x);
                fd.push((up - down) / (2.0 * h as f64));
            }
            assert!(layer.import_param(&p.name, &values));
            worst = worst.max(compare(&p.name, &grad, &picked, &fd));
        }
        worst
    }

    /// Up to 64 indices spread over `len`.
    fn picks(len: usize) -> Vec<usize> {
        let step = len.div_ceil(64).max(1);
        (0..len).step_by(step).collect()
    }

    fn compare(what: &str, analytic: &[f32], picked: &[usize], numeric: &[f64]) -> f64 {
        let scale = analytic
            .iter()
            .fold(1.0f64, |m, g| m.max((*g as f64).abs()));
        let mut worst = 0.0f64;
        for (&i, &d) in picked.iter().zip(numeric) {
            let a = analytic[i] as f64;
            let err = (a - d).abs() / scale;
            assert!(
                err < 2e-3,
                "{what}[{i}]: backward {a} vs finite difference {d}"
            );
            worst = worst.max(err);
        }
        worst
    }
}

#[cfg(test)]
mod tests {
    use rand::Rng;
    use typenum::{U2, U3, U4, U5, U6, U7};

    use super::*;
    use crate::init::seeded_rng;
    use crate::layers::Conv2D;
    use crate::model::Model;
    use crate::shape::{Same, Valid};

    type In = Shape3<U7, U6, U3>;

    fn input<S: Shape>(n: usize, seed: u64) -> Batch<S> {
        let mut rng = seeded_rng(seed);
        let v = (0..n * S::NUMEL)
            .map(|_| rng.random_range(-1.0f32..1.0))
            .collect();
        Batch::from_vec(n, v).unwrap()
    }

    /// Copies every tensor of `from` into `to` by key (PyTorch layout).
    fn copy_params<A: Layer, B: Layer>(from: &A, to: &mut B) {
        for p in from.params() {
            let v = from.export_param(&p.name).unwrap();
            assert!(to.import_param(&p.name, &v), "{}", p.name);
        }
    }

    #[test]
    fn keys_shapes_and_kernel_order() {
        let layer = DepthwiseConv2D::<In, U3, U2, U1, U1, Valid, U2>::new(true, &mut seeded_rng(1));
        let params = layer.params();
        assert_eq!(params[0].name, "weight");
        assert_eq!(params[0].shape, [6, 1, 3, 2]);
        assert_eq!(params[1].shape, [6]);
        assert_eq!(layer.param_count(), 6 * 6 + 6);
        // PyTorch's weight[o][0][y][x] is stored at [y][x][o].
        let torch = layer.export_param("weight").unwrap();
        for o in 0..6 {
            for cell in 0..6 {
                assert_eq!(torch[o * 6 + cell], layer.kernel()[cell * 6 + o]);
            }
        }
        assert_eq!(layer.kind(), "DepthwiseConv2D");
    }

    /// The layer computes, and differentiates, exactly what a Conv2D with
    /// one group per channel does with the same weights file.
    fn matches_grouped_conv<P: PaddingMode>()
    where
        DepthwiseConv2D<In, U3, U3, U2, U1, P, U2, Linear, U1, U2>: Layer<
            Input = In,
            Output = <Conv2D<In, U6, U3, U3, U2, U1, P, Linear, U1, U2, U3> as Layer>::Output,
        >,
        Conv2D<In, U6, U3, U3, U2, U1, P, Linear, U1, U2, U3>: Layer<Input = In>,
    {
        let mut rng = seeded_rng(2);
        let mut dw =
            DepthwiseConv2D::<In, U3, U3, U2, U1, P, U2, Linear, U1, U2>::new(true, &mut rng);
        let mut conv = Conv2D::<In, U6, U3, U3, U2, U1, P, Linear, U1, U2, U3>::new(true, &mut rng);
        let bias: Vec<f32> = (0..6).map(|i| i as f32 * 0.1 - 0.2).collect();
        assert!(dw.import_param("bias", &bias));
        copy_params(&dw, &mut conv);
        let x = input::<In>(3, 3);
        let (a, b) = (dw.predict(&x), conv.predict(&x));
        for (a, b) in a.as_slice().iter().zip(b.as_slice()) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
        let r = input(3, 4);
        let mut ctx = Context::inference();
        let (_, tape) = dw.forward_taped(x.clone(), &mut ctx);
        let gx_dw = dw.backward(tape, r.clone(), &mut ctx);
        let (_, tape) = conv.forward_taped(x, &mut ctx);
        let gx_conv = conv.backward(tape, r, &mut ctx);
        let close = |a: &[f32], b: &[f32]| a.iter().zip(b).all(|(a, b)| (a - b).abs() < 1e-4);
        assert!(close(gx_dw.as_slice(), gx_conv.as_slice()));
        for key in ["weight", "bias"] {
            let (a, b) = (dw.export_grad(key).unwrap(), conv.export_grad(key).unwrap());
            assert!(close(&a, &b), "{key}");
        }
    }

    #[test]
    fn equals_conv2d_with_one_group_per_channel() {
        matches_grouped_conv::<Valid>();
        matches_grouped_conv::<Same>();
    }

    #[test]
    fn backward_matches_finite_differences() {
        let mut layer = DepthwiseConv2D::<In, U3, U2, U2, U2, Same, U2, Linear, U2, U1>::new(
            true,
            &mut seeded_rng(5),
        );
        let worst = gradcheck::check_layer(&mut layer, &input(2, 6), 7);
        assert!(worst < 2e-3);
        let mut layer =
            DepthwiseConv2D::<In, U4, U5, U1, U1, Valid>::new(false, &mut seeded_rng(8));
        gradcheck::check_layer(&mut layer, &input(3, 9), 10);
    }

    #[test]
    fn output_shape_and_thread_invariance() {
        type L = DepthwiseConv2D<In, U3, U3, U2, U2, Same, U2, crate::activation::Relu>;
        assert_eq!(<<L as Layer>::Output as Shape>::DIMS, &[4, 3, 6]);
        let layer = L::new(true, &mut seeded_rng(11));
        let x = input::<In>(5, 12);
        let one = layer.forward(&x, &mut Context::inference().with_threads(1));
        let three = layer.forward(&x, &mut Context::inference().with_threads(3));
        assert_eq!(one.as_slice(), three.as_slice());
    }
}
