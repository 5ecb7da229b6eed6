//! Layers fused at inference: a convolution and the per-pixel layers right
//! after it (BatchNormalization, element-wise activations) in one pass.
//!
//! `Conv2D => BatchNormalization => relu` written as three layers would
//! write the convolution's output, then read and write it once per layer
//! after it. `sequential!` instead calls [`fused_into`] for such a run: the
//! later layers become the steps of an [`Epilogue`] that the convolution's
//! kernel applies to each piece of its output while it is in cache. The
//! layers stay what they are (their own fields, weight keys, tapes and
//! backward passes); only `forward_into` takes the shortcut, and only when
//! every later layer can be a step under the context (BatchNormalization
//! cannot while it normalises with batch statistics): otherwise the run
//! goes layer by layer. Fused and unfused give bitwise the same values.
//!
//! A `ZeroPadding2D` right before such a run is folded into the
//! convolution's own window padding ([`padded_into`]): the convolution
//! reads the unpadded input in place, and the zeros it would have read
//! only ever added zero terms, so the values are those of the layers run
//! one by one (up to the sign of a zero).
//!
//! A pooling layer right after such a run ends it ([`pooled_into`],
//! [`pooled_owned`]): when the convolution's output for the whole batch
//! would leave L2, the run goes a band of images at a time, each band's
//! output pooled while it is in cache, with bitwise the values of the
//! layers one by one.

use crate::activation::{Activation, ActivationFn};
use crate::batch::Batch;
use crate::kernels::epilogue::{Epilogue, Step, Steps};
use crate::kernels::isa::l2_bytes;
use crate::kernels::ConvGeometry;
use crate::layer::{Context, Layer};
use crate::layers::ZeroPadding2D;
use crate::shape::Shape;
use core::marker::PhantomData;
use typenum::Unsigned;

/// A layer that can apply an [`Epilogue`] to its output as it computes it:
/// the first layer of a fused run.
pub trait FusedHead: Layer {
    /// [`Layer::forward_into`], then `then` on the output (whole pixels of
    /// the output's last axis), fused into the kernel where it can be.
    fn forward_into_then(
        &self,
        input: &Batch<Self::Input>,
        out: &mut Batch<Self::Output>,
        then: Epilogue<'_>,
        ctx: &mut Context<'_>,
    );

    /// Whether running a batch of `total` images `images` at a time through
    /// [`FusedHead::forward_band_then`] computes bitwise what
    /// [`FusedHead::forward_into_then`] computes on all of them at once:
    /// what lets [`pooled_into`] go by bands. `false` unless the layer
    /// says so.
    fn same_by_bands(&self, total: usize, images: usize) -> bool {
        let _ = (total, images);
        false
    }

    /// [`FusedHead::forward_into_then`] on the `images` images stored at
    /// the start of `input`, written at the start of `out`. Returns `false`,
    /// having done nothing, when it cannot (the default, and whenever
    /// [`FusedHead::same_by_bands`] is `false`).
    ///
    /// # Panics
    /// When `input` or `out` holds fewer than `images` images.
    fn forward_band_then(
        &self,
        input: &[f32],
        images: usize,
        out: &mut [f32],
        then: Epilogue<'_>,
        ctx: &mut Context<'_>,
    ) -> bool {
        let _ = (input, images, out, then, ctx);
        false
    }
}

/// A layer that can run on the images stored at the start of plain
/// slices: the pooling layer that ends a run of [`pooled_into`].
pub trait SliceLayer: Layer {
    /// [`Layer::forward_into`] on the `images` images at the start of
    /// `input`, written at the start of `out`.
    ///
    /// # Panics
    /// When `input` or `out` holds fewer than `images` images.
    fn forward_slices(&self, input: &[f32], images: usize, out: &mut [f32], ctx: &mut Context<'_>);
}

/// A convolution that can take the frame of zeros a [`ZeroPadding2D`]
/// right before it adds into its own window padding, reading the unpadded
/// input in place instead of a padded copy (MobileNetV2 pads before each
/// stride-2 depthwise convolution: a copy of the whole map each time).
pub trait PaddedHead: FusedHead {
    /// [`FusedHead::forward_into_then`] on `images` images of `input`, each
    /// `Self::Input` less `(top, bottom)` rows and `(left, right)` columns,
    /// as if framed by that many rows and columns of zeros. Returns `false`,
    /// having done nothing, when it cannot (its own activation is not
    /// element-wise, or the frame is not smaller than `Self::Input`): the
    /// caller then pads and calls the layer.
    ///
    /// # Panics
    /// When `input` holds fewer values than `images` unpadded images.
    fn forward_padded_then(
        &self,
        input: (&[f32], usize),
        frame: ((usize, usize), (usize, usize)),
        out: &mut Batch<Self::Output>,
        then: Epilogue<'_>,
        ctx: &mut Context<'_>,
    ) -> bool;
}

/// A layer that, under some contexts, is one [`Step`] on its input's
/// pixels, shape unchanged: a later layer of a fused run.
pub trait EpilogueLayer: Layer {
    /// The step this layer is under `ctx`, or `None` when it cannot be one
    /// there. `store` is the layer's to fill with what the step borrows
    /// (folded per-channel factors).
    fn epilogue_step<'a>(&'a self, ctx: &Context<'_>, store: &'a mut Vec<f32>) -> Option<Step<'a>>;
}

/// The later layers of a fused run: a tuple of one to three references to
/// [`EpilogueLayer`]s, each taking the one before's output.
pub trait Tail {
    /// The first layer's input.
    type Input: Shape;
    /// The last layer's output.
    type Output: Shape;

    /// Pushes every layer's step onto `steps`, or returns `false` (the
    /// run then goes layer by layer).
    fn steps<'a>(
        &'a self,
        ctx: &Context<'_>,
        stores: &'a mut [Vec<f32>; 3],
        steps: &mut Steps<'a>,
    ) -> bool;

    /// The layers one after another, unfused.
    fn forward_owned(&self, x: Batch<Self::Input>, ctx: &mut Context<'_>) -> Batch<Self::Output>;
}

impl<B: EpilogueLayer> Tail for (&B,) {
    type Input = B::Input;
    type Output = B::Output;

    fn steps<'a>(
        &'a self,
        ctx: &Context<'_>,
        [s0, ..]: &'a mut [Vec<f32>; 3],
        steps: &mut Steps<'a>,
    ) -> bool {
        push(self.0, ctx, s0, steps)
    }

    fn forward_owned(&self, x: Batch<B::Input>, ctx: &mut Context<'_>) -> Batch<B::Output> {
        self.0.forward_owned(x, ctx)
    }
}

impl<B, C> Tail for (&B, &C)
where
    B: EpilogueLayer,
    C: EpilogueLayer<Input = B::Output>,
{
    type Input = B::Input;
    type Output = C::Output;

    fn steps<'a>(
        &'a self,
        ctx: &Context<'_>,
        [s0, s1, _]: &'a mut [Vec<f32>; 3],
        steps: &mut Steps<'a>,
    ) -> bool {
        push(self.0, ctx, s0, steps) && push(self.1, ctx, s1, steps)
    }

    fn forward_owned(&self, x: Batch<B::Input>, ctx: &mut Context<'_>) -> Batch<C::Output> {
        let x = self.0.forward_owned(x, ctx);
        self.1.forward_owned(x, ctx)
    }
}

impl<B, C, D> Tail for (&B, &C, &D)
where
    B: EpilogueLayer,
    C: EpilogueLayer<Input = B::Output>,
    D: EpilogueLayer<Input = C::Output>,
{
    type Input = B::Input;
    type Output = D::Output;

    fn steps<'a>(
        &'a self,
        ctx: &Context<'_>,
        [s0, s1, s2]: &'a mut [Vec<f32>; 3],
        steps: &mut Steps<'a>,
    ) -> bool {
        push(self.0, ctx, s0, steps) && push(self.1, ctx, s1, steps) && push(self.2, ctx, s2, steps)
    }

    fn forward_owned(&self, x: Batch<B::Input>, ctx: &mut Context<'_>) -> Batch<D::Output> {
        let x = self.0.forward_owned(x, ctx);
        let x = self.1.forward_owned(x, ctx);
        self.2.forward_owned(x, ctx)
    }
}

/// No later layers: a fused run of the head alone (after a
/// [`ZeroPadding2D`] folded into it, or before a pooling layer).
pub struct Bare<S>(PhantomData<S>);

impl<S> Clone for Bare<S> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<S> Copy for Bare<S> {}

impl<S> Bare<S> {
    /// The empty tail.
    pub fn new() -> Self {
        Bare(PhantomData)
    }
}

impl<S> Default for Bare<S> {
    fn default() -> Self {
        Self::new()
    }
}

impl<S: Shape> Tail for Bare<S> {
    type Input = S;
    type Output = S;

    fn steps<'a>(&'a self, _: &Context<'_>, _: &'a mut [Vec<f32>; 3], _: &mut Steps<'a>) -> bool {
        true
    }

    fn forward_owned(&self, x: Batch<S>, _: &mut Context<'_>) -> Batch<S> {
        x
    }
}

fn push<'a, L: EpilogueLayer>(
    layer: &'a L,
    ctx: &Context<'_>,
    store: &'a mut Vec<f32>,
    steps: &mut Steps<'a>,
) -> bool {
    layer
        .epilogue_step(ctx, store)
        .is_some_and(|step| steps.push(step))
}

/// `out = tail(head(input))`: `head` with `tail`'s layers as its epilogue
/// when they can all be steps under `ctx`, else one layer after another.
/// What `sequential!` generates for a convolution followed by
/// BatchNormalization and/or element-wise activations.
///
/// # Panics
/// When `tail` changes the shape (no [`EpilogueLayer`] does).
pub fn fused_into<H, T>(
    head: &H,
    tail: T,
    input: &Batch<H::Input>,
    out: &mut Batch<T::Output>,
    ctx: &mut Context<'_>,
) where
    H: FusedHead,
    T: Tail<Input = H::Output>,
{
    let n = input.batch_size();
    with_tail(tail, n, out, ctx, |head_out, then, ctx| {
        head.forward_into_then(input, head_out, then, ctx)
    });
}

/// `out = pool(tail(head(input)))`, a band of images at a time when the
/// head's output for the whole batch would not stay in L2: each band's
/// output is pooled while it is in cache, instead of the whole map
/// written out and read back (cifar_cnn's second convolution writes 7.4 MB
/// at batch 64 and its max pooling keeps a quarter of it). The bands give
/// bitwise the values of one call ([`FusedHead::same_by_bands`]); when the
/// head cannot go by bands, or the tail cannot be its epilogue under
/// `ctx`, the layers run one after another. What `sequential!` generates
/// for a convolution, its per-pixel layers and a pooling layer.
///
/// # Panics
/// As [`fused_into`].
pub fn pooled_into<H, T, P>(
    head: &H,
    tail: T,
    pool: &P,
    input: &Batch<H::Input>,
    out: &mut Batch<P::Output>,
    ctx: &mut Context<'_>,
) where
    H: FusedHead,
    T: Tail<Input = H::Output> + Copy,
    P: SliceLayer<Input = T::Output>,
{
    pooled(head, tail, pool, input, out, ctx, l2_bytes());
}

/// [`pooled_into`] with bands sized for an L2 of `l2` bytes.
fn pooled<H, T, P>(
    head: &H,
    tail: T,
    pool: &P,
    input: &Batch<H::Input>,
    out: &mut Batch<P::Output>,
    ctx: &mut Context<'_>,
    l2: usize,
) where
    H: FusedHead,
    T: Tail<Input = H::Output> + Copy,
    P: SliceLayer<Input = T::Output>,
{
    let n = input.batch_size();
    let plan = band_plan::<H, T::Output>(head, n, ctx, l2);
    if !plan.is_some_and(|band| banded(head, tail, pool, (input, band), out, ctx)) {
        let mut mid = ctx.take_batch(n);
        fused_into(head, tail, input, &mut mid, ctx);
        pool.forward_into(&mid, out, ctx);
        ctx.recycle(mid);
    }
}

/// [`pooled_into`] on an input the run owns, returning the output: the
/// context's buffers are then taken and given back where the layers one by
/// one would take and give them back (the input's given back before the
/// pool's output is taken), so that each write lands in the buffer the
/// layer-by-layer order would have warmed for it (taken in another order
/// from inside [`pooled_into`], cifar_cnn at batch 64 on two threads ran
/// 0.94-0.96×; Intel Xeon, AVX-512). What `sequential!` generates for such
/// a run after the model's first layer.
///
/// # Panics
/// As [`fused_into`].
pub fn pooled_owned<H, T, P>(
    head: &H,
    tail: T,
    pool: &P,
    input: Batch<H::Input>,
    ctx: &mut Context<'_>,
) -> Batch<P::Output>
where
    H: FusedHead,
    T: Tail<Input = H::Output> + Copy,
    P: SliceLayer<Input = T::Output>,
{
    owned(head, tail, pool, input, ctx, l2_bytes())
}

/// [`pooled_owned`] with bands sized for an L2 of `l2` bytes.
fn owned<H, T, P>(
    head: &H,
    tail: T,
    pool: &P,
    input: Batch<H::Input>,
    ctx: &mut Context<'_>,
    l2: usize,
) -> Batch<P::Output>
where
    H: FusedHead,
    T: Tail<Input = H::Output> + Copy,
    P: SliceLayer<Input = T::Output>,
{
    let n = input.batch_size();
    if let Some(band) = band_plan::<H, T::Output>(head, n, ctx, l2) {
        let mut out = ctx.take_batch(n);
        if banded(head, tail, pool, (&input, band), &mut out, ctx) {
            ctx.recycle(input);
            return out;
        }
        ctx.recycle(out);
    }
    let mut mid = ctx.take_batch(n);
    fused_into(head, tail, &input, &mut mid, ctx);
    ctx.recycle(input);
    let mut out = ctx.take_batch(n);
    pool.forward_into(&mid, &mut out, ctx);
    ctx.recycle(mid);
    out
}

/// Images per band when a run of `head` with an output of `S` per image
/// goes by bands on `n` images under `ctx`, for an L2 of `l2` bytes: when
/// the whole batch's output would not fit in half of it, and the bands
/// give the whole batch's values.
fn band_plan<H: FusedHead, S: Shape>(
    head: &H,
    n: usize,
    ctx: &Context<'_>,
    l2: usize,
) -> Option<usize> {
    let band = band_images(S::NUMEL, l2);
    // On more threads, each band would cost the pool two more rounds of
    // waking and waiting: cifar_cnn at batch 64 on two threads ran 0.86×
    // by bands (Intel Xeon, AVX-512, 2 MiB L2).
    if band >= n || ctx.threads() > 1 {
        return None;
    }
    let last = (n - 1) % band + 1;
    (head.same_by_bands(n, band) && head.same_by_bands(n, last)).then_some(band)
}

/// The run by bands of `band` images, `tail` the head's epilogue;
/// `false`, having written nothing, when the tail cannot be one under
/// `ctx` or the head refuses.
fn banded<H, T, P>(
    head: &H,
    tail: T,
    pool: &P,
    (input, band): (&Batch<H::Input>, usize),
    out: &mut Batch<P::Output>,
    ctx: &mut Context<'_>,
) -> bool
where
    H: FusedHead,
    T: Tail<Input = H::Output> + Copy,
    P: SliceLayer<Input = T::Output>,
{
    assert_eq!(
        <H::Output as Shape>::DIMS,
        <T::Output as Shape>::DIMS,
        "a fused tail keeps the shape"
    );
    let mut stores = ctx.take_stores();
    let mut steps = Steps::new();
    let done = tail.steps(ctx, &mut stores, &mut steps)
        && by_bands(
            head,
            pool,
            (input, band),
            Epilogue::new(steps.as_slice()),
            out,
            ctx,
        );
    ctx.return_stores(stores);
    done
}

/// Images per band of [`pooled_into`]: as many as keep a band's head
/// output of `numel` values per image within half of `l2` bytes, at least
/// one.
fn band_images(numel: usize, l2: usize) -> usize {
    (l2 / 2 / numel.saturating_mul(4).max(1)).max(1)
}

/// The bands of [`pooled_into`], `band` images each (the last the rest),
/// through a buffer of one band. Returns `false`, having written nothing,
/// when the head cannot take its first band.
fn by_bands<H, P>(
    head: &H,
    pool: &P,
    (input, band): (&Batch<H::Input>, usize),
    then: Epilogue<'_>,
    out: &mut Batch<P::Output>,
    ctx: &mut Context<'_>,
) -> bool
where
    H: FusedHead,
    P: SliceLayer,
{
    let n = input.batch_size();
    let (x_len, mid_len, y_len) = (
        <H::Input as Shape>::NUMEL,
        <P::Input as Shape>::NUMEL,
        <P::Output as Shape>::NUMEL,
    );
    let mut mid: Batch<P::Input> = ctx.take_batch(band);
    mid.resize(band);
    out.resize(n);
    let mut first = 0;
    while first < n {
        let k = band.min(n - first);
        let x = &input.as_slice()[first * x_len..(first + k) * x_len];
        let m = &mut mid.as_mut_slice()[..k * mid_len];
        if !head.forward_band_then(x, k, m, then, ctx) {
            // Only the first band can fail: the head answers alike for
            // every band of the run (`same_by_bands` held for both sizes).
            assert_eq!(first, 0, "a fused head refused a band after the first");
            ctx.recycle(mid);
            return false;
        }
        let y = &mut out.as_mut_slice()[first * y_len..(first + k) * y_len];
        pool.forward_slices(m, k, y, ctx);
        first += k;
    }
    ctx.recycle(mid);
    true
}

/// Runs `head` into `out`'s memory (typed as the head's output, the same
/// dimensions: no copy either way) with `tail`'s layers as its epilogue
/// when they can all be steps under `ctx`, else with none and `tail`'s
/// layers after it.
///
/// # Panics
/// When `tail` changes the shape (no [`EpilogueLayer`] does).
fn with_tail<S: Shape, T: Tail<Input = S>>(
    tail: T,
    n: usize,
    out: &mut Batch<T::Output>,
    ctx: &mut Context<'_>,
    head: impl FnOnce(&mut Batch<S>, Epilogue<'_>, &mut Context<'_>),
) {
    assert_eq!(
        S::DIMS,
        <T::Output as Shape>::DIMS,
        "a fused tail keeps the shape"
    );
    let mut stores = ctx.take_stores();
    let mut steps = Steps::new();
    let memory = std::mem::replace(out, Batch::from_buffer(0, Vec::new())).into_buffer();
    let mut head_out = Batch::<S>::from_buffer(n, memory);
    if tail.steps(ctx, &mut stores, &mut steps) {
        head(&mut head_out, Epilogue::new(steps.as_slice()), ctx);
        *out = Batch::from_buffer(n, head_out.into_buffer());
    } else {
        head(&mut head_out, Epilogue::NONE, ctx);
        *out = tail.forward_owned(head_out, ctx);
    }
    ctx.return_stores(stores);
}

/// `out = tail(head(pad(input)))` without the padded copy: `head` reads
/// `input` with `pad`'s frame of zeros folded into its window padding
/// ([`PaddedHead`]), `tail` as in [`fused_into`]. What `sequential!`
/// generates for a `ZeroPadding2D` right before a convolution.
///
/// # Panics
/// As [`fused_into`].
pub fn padded_into<In, T, B, L, R, H, Tl>(
    pad: &ZeroPadding2D<In, T, B, L, R>,
    head: &H,
    tail: Tl,
    input: &Batch<In>,
    out: &mut Batch<Tl::Output>,
    ctx: &mut Context<'_>,
) where
    In: Shape,
    T: Unsigned,
    B: Unsigned,
    L: Unsigned,
    R: Unsigned,
    ZeroPadding2D<In, T, B, L, R>: Layer<Input = In, Output = H::Input>,
    H: PaddedHead,
    Tl: Tail<Input = H::Output>,
{
    let n = input.batch_size();
    let frame = ((T::USIZE, B::USIZE), (L::USIZE, R::USIZE));
    with_tail(tail, n, out, ctx, |head_out, then, ctx| {
        if !head.forward_padded_then((input.as_slice(), n), frame, head_out, then, ctx) {
            let padded = pad.forward(input, ctx);
            head.forward_into_then(&padded, head_out, then, ctx);
            ctx.recycle(padded);
        }
    });
}

/// What a [`PaddedHead`] runs on: its geometry `g` (of the padded input)
/// with `frame` folded in, and its own activation `A`'s step before
/// `then`'s; `None` when either cannot be.
///
/// # Panics
/// When `input` is shorter than the folded geometry's input.
pub(crate) fn padded_plan<'a, A: ActivationFn>(
    g: &ConvGeometry,
    (rows, columns): ((usize, usize), (usize, usize)),
    then: Epilogue<'a>,
    input: &[f32],
) -> Option<(ConvGeometry, Steps<'a>)> {
    let g = g.fold_padding(rows, columns)?;
    let steps = with_activation::<A>(then)?;
    assert!(input.len() >= g.input_len(), "convolution: input too short");
    Some((g, steps))
}

impl<S: Shape, A: ActivationFn> EpilogueLayer for Activation<S, A> {
    /// Element-wise functions are a step; softmax and log-softmax, which
    /// normalise over the last axis, are not.
    fn epilogue_step<'a>(&'a self, _: &Context<'_>, _: &'a mut Vec<f32>) -> Option<Step<'a>> {
        A::ELEMENTWISE.then(step::<A>)
    }
}

/// Element-wise `A` as a step: a clamp when it is one (compiled for the
/// vector unit), else the function itself.
fn step<'a, A: ActivationFn>() -> Step<'a> {
    match A::CLAMP {
        Some((lo, hi)) => Step::Clamp { lo, hi },
        None => Step::Map(A::apply),
    }
}

/// The steps of a layer with a built-in activation `A` (Conv2D's
/// `activation = ...`) followed by `then`: `A` as a step before the
/// others, or `None` when `A` is not element-wise.
pub(crate) fn with_activation<'a, A: ActivationFn>(then: Epilogue<'a>) -> Option<Steps<'a>> {
    let mut steps = Steps::new();
    let own = match (A::IS_LINEAR, A::ELEMENTWISE) {
        (true, _) => true,
        (false, true) => steps.push(step::<A>()),
        (false, false) => false,
    };
    let all = own && then.steps().iter().all(|s| steps.push(*s));
    all.then_some(steps)
}

#[cfg(test)]
mod tests {
    use typenum::{U1, U12, U16, U3, U9};

    use super::*;
    use crate::activation::Relu;
    use crate::init::seeded_rng;
    use crate::layers::{BatchNormalization, Conv2D};
    use crate::shape::{Same, Shape3};
    use crate::Sigmoid;

    type In = Shape3<U12, U9, U16>;
    /// 3×3 stride 1 on 16 channels: a Winograd path, with a prepared kernel.
    type Conv = Conv2D<In, U16, U3, U3, U1, U1, Same>;
    type Out = Shape3<U12, U9, U16>;

    fn layers(seed: u64) -> (Conv, BatchNormalization<Out>) {
        let mut rng = seeded_rng(seed);
        let conv = Conv::new(true, &mut rng);
        let mut bn = BatchNormalization::<Out>::new(0.9, 1e-3, true, true).unwrap();
        // Statistics and affine parameters far from the identity.
        for (k, key) in ["weight", "bias", "running_mean", "running_var"]
            .into_iter()
            .enumerate()
        {
            let values: Vec<f32> = (0..16)
                .map(|c| 0.5 + ((c * 4 + k) as f32 * 0.37).sin().abs())
                .collect();
            assert!(bn.import_param(key, &values), "{key}");
        }
        (conv, bn)
    }

    fn input(n: usize) -> Batch<In> {
        let values = (0..n * In::NUMEL).map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0);
        Batch::from_vec(n, values.collect()).unwrap()
    }

    fn layer_by_layer(
        conv: &Conv,
        bn: &BatchNormalization<Out>,
        x: &Batch<In>,
        ctx: &mut Context<'_>,
    ) -> Batch<Out> {
        let y = conv.forward(x, ctx);
        let y = bn.forward_owned(y, ctx);
        Activation::<Out, Relu>::new().forward_owned(y, ctx)
    }

    /// Conv2D => BatchNormalization => relu fused gives bitwise what the
    /// three layers give one after another, on 1 and 3 threads.
    #[test]
    fn fused_run_equals_layer_by_layer() {
        let (conv, bn) = layers(1);
        let relu = Activation::<Out, Relu>::new();
        let x = input(3);
        for threads in [1, 3] {
            let mut ctx = Context::inference().with_threads(threads);
            let expected = layer_by_layer(&conv, &bn, &x, &mut ctx);
            let mut out = Batch::<Out>::zeros(1);
            fused_into(&conv, (&bn, &relu), &x, &mut out, &mut ctx);
            assert_eq!(out.dims(), expected.dims());
            let same = out.as_slice().iter().zip(expected.as_slice());
            assert!(same.clone().all(|(a, b)| a.to_bits() == b.to_bits()));
            assert!(out.as_slice().iter().any(|&v| v > 0.0));
            assert!(out.as_slice().contains(&0.0));
        }
    }

    /// In training mode BatchNormalization normalises with the batch's
    /// statistics: not a step, so the run goes layer by layer (and still
    /// gives what the layers give).
    #[test]
    fn batch_statistics_are_not_fused() {
        let (conv, bn) = layers(2);
        let relu = Activation::<Out, Relu>::new();
        let x = input(2);
        let mut store = Vec::new();
        let mut rng = seeded_rng(0);
        let mut ctx = Context::training(&mut rng);
        assert!(bn.epilogue_step(&ctx, &mut store).is_none());
        let expected = layer_by_layer(&conv, &bn, &x, &mut ctx);
        let mut out = Batch::<Out>::zeros(2);
        fused_into(&conv, (&bn, &relu), &x, &mut out, &mut ctx);
        assert_eq!(out.as_slice(), expected.as_slice());
        assert!(Activation::<Out, crate::Softmax>::new()
            .epilogue_step(&ctx, &mut store)
            .is_none());
        assert!(Activation::<Out, Sigmoid>::new()
            .epilogue_step(&ctx, &mut store)
            .is_some());
    }

    /// A convolution whose own activation is not element-wise (softmax)
    /// runs it after the kernel, fused or not: the same values as the
    /// linear convolution followed by the activation layer.
    #[test]
    fn softmax_activation_runs_after_the_kernel() {
        type SoftConv = Conv2D<In, U16, U3, U3, U1, U1, Same, crate::Softmax>;
        let soft = SoftConv::new(true, &mut seeded_rng(5));
        let (mut linear, bn) = layers(6);
        assert!(linear.import_param("weight", &soft.export_param("weight").unwrap()));
        assert!(linear.import_param("bias", &soft.export_param("bias").unwrap()));
        let x = input(2);
        let mut ctx = Context::inference();
        let expected = Activation::<Out, crate::Softmax>::new()
            .forward_owned(linear.forward(&x, &mut ctx), &mut ctx);
        assert_eq!(soft.forward(&x, &mut ctx).as_slice(), expected.as_slice());
        let relu = Activation::<Out, Relu>::new();
        let mut fused = Batch::<Out>::zeros(2);
        fused_into(&soft, (&bn, &relu), &x, &mut fused, &mut ctx);
        let expected = relu.forward_owned(bn.forward_owned(expected, &mut ctx), &mut ctx);
        assert_eq!(fused.as_slice(), expected.as_slice());
    }

    /// The prepared (Winograd-transformed) kernel follows the weights: a
    /// changed kernel gives the output a new layer with that kernel gives,
    /// never the old one.
    #[test]
    fn prepared_kernel_follows_the_weights() {
        let (mut conv, _) = layers(3);
        let (fresh, _) = layers(4);
        let x = input(1);
        let mut ctx = Context::inference();
        let before = conv.forward(&x, &mut ctx);
        let again = conv.forward(&x, &mut ctx);
        assert_eq!(before.as_slice(), again.as_slice());
        let fresh_weights = fresh.export_param("weight").unwrap();
        assert!(conv.import_param("weight", &fresh_weights));
        let bias = fresh.export_param("bias").unwrap();
        assert!(conv.import_param("bias", &bias));
        let after = conv.forward(&x, &mut ctx);
        assert_eq!(after.as_slice(), fresh.forward(&x, &mut ctx).as_slice());
        assert_ne!(after.as_slice(), before.as_slice());
        // And through the optimizer's door (`visit_params_mut`).
        conv.visit_params_mut(&mut |v: &mut [f32], _: &[f32]| v.iter_mut().for_each(|v| *v *= 2.0));
        let doubled = conv.forward(&x, &mut ctx);
        let expected: Vec<f32> = after.as_slice().iter().map(|v| v * 2.0).collect();
        for (a, b) in doubled.as_slice().iter().zip(&expected) {
            assert!((a - b).abs() <= 1e-5 * b.abs().max(1.0), "{a} vs {b}");
        }
    }

    /// ZeroPadding2D => Conv2D (3×3 stride 2, 'valid') => BatchNormalization
    /// => relu with the padding folded into the convolution, and the same
    /// for a depthwise convolution and for a head alone, give what the
    /// layers give one after another (the padded copy's zeros only add
    /// zero terms), on 1 and 3 threads; in training mode, where
    /// BatchNormalization is no step, the run still gives the layers'
    /// values.
    #[test]
    fn folded_padding_equals_the_padding_layer() {
        use crate::layers::{DepthwiseConv2D, ZeroPadding2D};
        use crate::shape::Valid;
        use typenum::{U0, U10, U15, U2, U4, U7};
        type Pad = ZeroPadding2D<In, U1, U2, U0, U1>;
        type Padded = Shape3<U15, U10, U16>;
        type Strided = Shape3<U7, U4, U16>;
        let pad = Pad::new();
        let conv = Conv2D::<Padded, U16, U3, U3, U2, U2, Valid>::new(true, &mut seeded_rng(3));
        let dw = DepthwiseConv2D::<Padded, U3, U3, U2, U2, Valid>::new(true, &mut seeded_rng(4));
        let mut bn = BatchNormalization::<Strided>::new(0.9, 1e-3, true, true).unwrap();
        let stats: Vec<f32> = (0..16)
            .map(|c| 0.5 + (c as f32 * 0.37).sin().abs())
            .collect();
        assert!(bn.import_param("running_var", &stats));
        let relu = Activation::<Strided, Relu>::new();
        let x = input(2);
        let close = |a: &Batch<Strided>, b: &Batch<Strided>| {
            assert_eq!(a.dims(), b.dims());
            assert!(a.as_slice().iter().zip(b.as_slice()).all(|(a, b)| a == b));
        };
        for threads in [1, 3] {
            let mut ctx = Context::inference().with_threads(threads);
            let padded = pad.forward(&x, &mut ctx);
            let tail = |y: Batch<Strided>, ctx: &mut Context<'_>| {
                relu.forward_owned(bn.forward_owned(y, ctx), ctx)
            };
            let expected = tail(conv.forward(&padded, &mut ctx), &mut ctx);
            let mut out = Batch::<Strided>::zeros(1);
            padded_into(&pad, &conv, (&bn, &relu), &x, &mut out, &mut ctx);
            close(&out, &expected);
            assert!(out.as_slice().iter().any(|&v| v > 0.0));
            let expected = tail(dw.forward(&padded, &mut ctx), &mut ctx);
            padded_into(&pad, &dw, (&bn, &relu), &x, &mut out, &mut ctx);
            close(&out, &expected);
            padded_into(&pad, &dw, Bare::new(), &x, &mut out, &mut ctx);
            close(&out, &dw.forward(&padded, &mut ctx));
        }
        let mut rng = seeded_rng(0);
        let mut ctx = Context::training(&mut rng);
        let padded = pad.forward(&x, &mut ctx);
        let expected = conv.forward(&padded, &mut ctx);
        let expected = relu.forward_owned(bn.forward_owned(expected, &mut ctx), &mut ctx);
        let mut out = Batch::<Strided>::zeros(2);
        padded_into(&pad, &conv, (&bn, &relu), &x, &mut out, &mut ctx);
        close(&out, &expected);
    }

    /// Conv2D => BatchNormalization => relu => pooling by bands of images
    /// gives bitwise what the layers give one after another: Winograd,
    /// direct and im2col heads, max and average pooling, a NaN in the
    /// input, bands that leave a remainder, on 1 and 3 threads (3 goes
    /// unbanded); and a head whose kernel path would change with the band
    /// size does not go by bands.
    #[test]
    fn pooled_run_equals_layer_by_layer() {
        use crate::layers::{AveragePooling2D, MaxPooling2D};
        use crate::shape::Valid;
        use typenum::{U2, U4, U5, U6, U64, U8};
        type Pooled = Shape3<U6, U4, U16>;
        let (conv, bn) = layers(7);
        let relu = Activation::<Out, Relu>::new();
        let max = MaxPooling2D::<Out, U2, U2, U2, U2, Valid>::new();
        let avg = AveragePooling2D::<Out, U3, U3, U2, U2, Valid>::new();
        let direct =
            Conv2D::<Shape3<U12, U9, U3>, U16, U3, U3, U1, U1, Same>::new(true, &mut seeded_rng(8));
        let im2col = Conv2D::<In, U16, U5, U5, U1, U1, Same>::new(false, &mut seeded_rng(9));
        let mut x = input(7);
        x.as_mut_slice()[100] = f32::NAN;
        let small = Batch::<Shape3<U12, U9, U3>>::from_vec(
            7,
            (0..7 * 12 * 9 * 3)
                .map(|i| ((i * 37) % 101) as f32 / 50.0 - 1.0)
                .collect(),
        )
        .unwrap();
        // Three images of the convolution's output per band: 3, 3, 1.
        let l2 = 2 * 3 * Out::NUMEL * 4;
        let same = |a: &[f32], b: &[f32]| {
            assert_eq!(a.len(), b.len());
            assert!(a.iter().zip(b).all(|(a, b)| a.to_bits() == b.to_bits()));
        };
        for threads in [1, 3] {
            let mut ctx = Context::inference().with_threads(threads);
            let expected = max.forward(&layer_by_layer(&conv, &bn, &x, &mut ctx), &mut ctx);
            let mut out = Batch::<Pooled>::zeros(1);
            assert!(conv.same_by_bands(7, 3) && conv.same_by_bands(7, 1));
            pooled(&conv, (&bn, &relu), &max, &x, &mut out, &mut ctx, l2);
            same(out.as_slice(), expected.as_slice());
            for l2 in [l2, 1 << 30] {
                let y = owned(&conv, (&bn, &relu), &max, x.clone(), &mut ctx, l2);
                same(y.as_slice(), expected.as_slice());
            }
            assert!(out.as_slice().iter().any(|v| v.is_nan()));
            assert!(out.as_slice().iter().any(|&v| v > 0.0));
            let y = relu.forward_owned(conv.forward(&x, &mut ctx), &mut ctx);
            let mut averaged = Batch::zeros(1);
            pooled(&conv, (&relu,), &avg, &x, &mut averaged, &mut ctx, l2);
            same(averaged.as_slice(), avg.forward(&y, &mut ctx).as_slice());
            let y = relu.forward_owned(direct.forward(&small, &mut ctx), &mut ctx);
            pooled(&direct, (&relu,), &max, &small, &mut out, &mut ctx, l2);
            same(out.as_slice(), max.forward(&y, &mut ctx).as_slice());
            let y = im2col.forward(&x, &mut ctx);
            pooled(&im2col, Bare::new(), &max, &x, &mut out, &mut ctx, l2);
            same(out.as_slice(), max.forward(&y, &mut ctx).as_slice());
        }
        // An 8×8 map has four 4×4 tiles: F(2×2) for one image, F(4×4) for
        // seven, which round differently.
        type Small = Shape3<U8, U8, U64>;
        let wide = Conv2D::<Small, U64, U3, U3, U1, U1, Same>::new(true, &mut seeded_rng(10));
        assert!(!wide.same_by_bands(7, 1) && wide.same_by_bands(7, 7));
        let x =
            Batch::<Small>::from_vec(7, (0..7 * Small::NUMEL).map(|i| (i % 13) as f32).collect())
                .unwrap();
        let max = MaxPooling2D::<Small, U2, U2, U2, U2, Valid>::new();
        let mut ctx = Context::inference().with_threads(1);
        let expected = max.forward(&wide.forward(&x, &mut ctx), &mut ctx);
        let mut out = Batch::<Shape3<U4, U4, U64>>::zeros(1);
        pooled(
            &wide,
            Bare::new(),
            &max,
            &x,
            &mut out,
            &mut ctx,
            2 * Small::NUMEL * 4,
        );
        same(out.as_slice(), expected.as_slice());
    }

    /// A convolution whose own activation is softmax cannot take the
    /// padding in: the run pads, then runs the layer.
    #[test]
    fn folded_padding_falls_back_for_a_softmax_head() {
        use crate::layers::ZeroPadding2D;
        use typenum::{U0, U10, U13};
        type Pad = ZeroPadding2D<In, U1, U0, U1, U0>;
        type Padded = Shape3<U13, U10, U16>;
        type SoftConv = Conv2D<Padded, U16, U3, U3, U1, U1, Same, crate::Softmax>;
        let (pad, soft) = (Pad::new(), SoftConv::new(true, &mut seeded_rng(5)));
        let x = input(2);
        let mut ctx = Context::inference();
        let expected = soft.forward(&pad.forward(&x, &mut ctx), &mut ctx);
        let mut out = Batch::<Padded>::zeros(2);
        assert!(!soft.forward_padded_then(
            (x.as_slice(), 2),
            ((1, 0), (1, 0)),
            &mut out,
            Epilogue::NONE,
            &mut ctx
        ));
        padded_into(&pad, &soft, Bare::new(), &x, &mut out, &mut ctx);
        assert_eq!(out.as_slice(), expected.as_slice());
    }
}
