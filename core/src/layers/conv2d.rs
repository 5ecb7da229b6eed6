//! `Conv2D`: 2-D convolution (Keras's `Conv2D` / `Convolution2D`).
//!
//! Arguments and defaults: `filters`, `kernel_size`, `strides = (1, 1)`,
//! `padding = 'valid'`, `activation = None` (linear), `use_bias = True`.
//! Kernels start Glorot-uniform, biases at zero.
//!
//! Shape: `(H, W, C) -> (Ho, Wo, filters)`, with `Ho = (H - KH) / SH + 1`
//! under valid padding and `Ho = ceil(H / SH)` under same (likewise `Wo`).
//!
//! Computation: im2col + GEMM (see [`crate::kernels::conv`]), the kernel held
//! as HWIO `[kh, kw, in, out]`; weight files use PyTorch's `[out, in, kh, kw]`.

use core::marker::PhantomData;

use rand::RngCore;
use typenum::Unsigned;

use crate::activation::{activation_backward, ActivationFn, Linear};
use crate::batch::Batch;
use crate::init::glorot_uniform;
use crate::kernels::grad::conv2d_backward_grouped;
use crate::kernels::{conv2d, conv2d_scratch_len, ConvGeometry};
use crate::layer::{Context, Layer, ParamInfo};
use crate::layers::{grad_or_zeros, grow_zeroed, visit_kernel_and_bias};
use crate::shape::{PaddingMode, Shape, Shape3, TypeMarker, WindowLen, WindowOut};

/// A 2-D convolution over `In` (a [`Shape3`]) with `F` filters of `KH × KW`,
/// strides `SH × SW`, padding `P` ([`Valid`](crate::Valid) or
/// [`Same`](crate::Same)) and activation `A`.
pub struct Conv2D<In, F, KH, KW, SH, SW, P, A = Linear> {
    /// HWIO: `[kh, kw, in, out]`.
    kernel: Vec<f32>,
    bias: Option<Vec<f32>>,
    /// Gradients, same layouts; empty until the first backward pass.
    grad_kernel: Vec<f32>,
    grad_bias: Vec<f32>,
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
    const KERNEL_LEN: usize = KH::USIZE * KW::USIZE * In::LAST * F::USIZE;

    /// A layer with a Glorot-uniform kernel drawn from `rng` and a zero bias
    /// (none if `use_bias` is false). The input channels are `In`'s last axis.
    pub fn new(use_bias: bool, rng: &mut dyn RngCore) -> Self {
        let mut layer = Conv2D {
            kernel: vec![0.0; Self::KERNEL_LEN],
            bias: use_bias.then(|| vec![0.0; F::USIZE]),
            grad_kernel: Vec::new(),
            grad_bias: Vec::new(),
            types: PhantomData,
        };
        layer.init(rng);
        layer
    }

    fn init(&mut self, rng: &mut dyn RngCore) {
        let receptive = KH::USIZE * KW::USIZE;
        glorot_uniform(
            &mut self.kernel,
            receptive * In::LAST,
            receptive * F::USIZE,
            rng,
        );
        if let Some(b) = &mut self.bias {
            b.fill(0.0);
        }
    }

    /// The kernel, HWIO (`[kh, kw, in, out]`, Keras's layout).
    pub fn kernel(&self) -> &[f32] {
        &self.kernel
    }

    /// The bias, if the layer has one.
    pub fn bias(&self) -> Option<&[f32]> {
        self.bias.as_deref()
    }
}

impl<H, W, C, F, KH, KW, SH, SW, P, A> Conv2D<Shape3<H, W, C>, F, KH, KW, SH, SW, P, A>
where
    H: Unsigned,
    W: Unsigned,
    C: Unsigned,
    F: Unsigned,
    KH: Unsigned,
    KW: Unsigned,
    SH: Unsigned,
    SW: Unsigned,
    P: PaddingMode,
{
    fn geometry(batch: usize) -> ConvGeometry {
        ConvGeometry::new(
            batch,
            (H::USIZE, W::USIZE, C::USIZE),
            (KH::USIZE, KW::USIZE),
            (SH::USIZE, SW::USIZE),
            P::PADDING,
        )
        .expect("the type-level shape rule guarantees the window fits")
    }

    /// An HWIO tensor in PyTorch's `[out, in, kh, kw]` layout.
    fn to_torch(hwio: &[f32]) -> Vec<f32> {
        let mut torch = vec![0.0; hwio.len()];
        for (t, o) in Self::layout_pairs() {
            torch[t] = hwio[o];
        }
        torch
    }

    /// PyTorch index `[o, i, y, x]` of HWIO index `[y, x, i, o]`, as a pair
    /// of flat offsets `(torch, ours)`.
    fn layout_pairs() -> impl Iterator<Item = (usize, usize)> {
        let (kh, kw, ci, co) = (KH::USIZE, KW::USIZE, C::USIZE, F::USIZE);
        (0..co).flat_map(move |o| {
            (0..ci).flat_map(move |i| {
                (0..kh).flat_map(move |y| {
                    (0..kw).map(move |x| {
                        let torch = ((o * ci + i) * kh + y) * kw + x;
                        let ours = ((y * kw + x) * ci + i) * co + o;
                        (torch, ours)
                    })
                })
            })
        })
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

    fn kind(&self) -> &'static str {
        "Conv2D"
    }

    fn forward_into(
        &self,
        input: &Batch<Self::Input>,
        out: &mut Batch<Self::Output>,
        ctx: &mut Context<'_>,
    ) {
        let g = Self::geometry(input.batch_size());
        out.resize(input.batch_size());
        let threads = ctx.threads();
        let scratch = ctx.scratch(conv2d_scratch_len(&g, threads));
        conv2d(
            &g,
            input.as_slice(),
            &self.kernel,
            self.bias.as_deref(),
            F::USIZE,
            out.as_mut_slice(),
            scratch,
            threads,
        );
        A::apply(out.as_mut_slice(), F::USIZE);
        if ctx.is_recording() {
            ctx.save(input.as_slice().to_vec());
            if !A::IS_LINEAR {
                ctx.save(out.as_slice().to_vec());
            }
        }
    }

    fn backward(
        &mut self,
        grad_output: &Batch<Self::Output>,
        ctx: &mut Context<'_>,
    ) -> Batch<Self::Input> {
        let mut grad = grad_output.clone();
        activation_backward::<A>(grad.as_mut_slice(), F::USIZE, ctx);
        let input = ctx.restore();
        let g = Self::geometry(grad.batch_size());
        grow_zeroed(&mut self.grad_kernel, self.kernel.len());
        grow_zeroed(&mut self.grad_bias, F::USIZE);
        let mut grad_input = Batch::<Self::Input>::zeros(grad.batch_size());
        let threads = ctx.threads();
        conv2d_backward_grouped(
            &g,
            &input,
            &self.kernel,
            grad.as_slice(),
            F::USIZE,
            &mut self.grad_kernel,
            self.bias.as_ref().map(|_| self.grad_bias.as_mut_slice()),
            grad_input.as_mut_slice(),
            threads,
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
            "weight" => Some(Self::to_torch(&grad_or_zeros(
                &self.grad_kernel,
                self.kernel.len(),
            ))),
            "bias" if self.bias.is_some() => Some(grad_or_zeros(&self.grad_bias, F::USIZE)),
            _ => None,
        }
    }

    fn ends_with_softmax(&self) -> bool {
        A::IS_SOFTMAX
    }

    fn params(&self) -> Vec<ParamInfo> {
        let mut p = vec![ParamInfo {
            name: "weight".into(),
            shape: vec![F::USIZE, C::USIZE, KH::USIZE, KW::USIZE],
        }];
        if self.bias.is_some() {
            p.push(ParamInfo {
                name: "bias".into(),
                shape: vec![F::USIZE],
            });
        }
        p
    }

    fn param_count(&self) -> usize {
        self.kernel.len() + self.bias.as_ref().map_or(0, Vec::len)
    }

    fn export_param(&self, name: &str) -> Option<Vec<f32>> {
        match name {
            "weight" => Some(Self::to_torch(&self.kernel)),
            "bias" => self.bias.clone(),
            _ => None,
        }
    }

    fn import_param(&mut self, name: &str, values: &[f32]) -> bool {
        match name {
            "weight" if values.len() == self.kernel.len() => {
                for (t, o) in Self::layout_pairs() {
                    self.kernel[o] = values[t];
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
