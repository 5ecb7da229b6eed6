//! `Residual`: `y = main(x) + shortcut(x)`, the shortcut the identity
//! unless given (Keras writes it as an `Add` of two branches of a
//! functional model; PyTorch as a module with `main` and `shortcut`).
//!
//! Shape: the main branch's output, which must be its input's shape (an
//! identity shortcut) or the shortcut's output shape; the type-level rule
//! [`SameShape`] says so when it is not.
//!
//! Weight files: `main.{j}...` for the main branch, `shortcut.{j}...` for a
//! shortcut (an identity has no tensors), so a residual at position 3 has
//! `3.main.0.weight`.

use core::ops::BitAnd;

use typenum::{And, Eq, IsEqual, Unsigned, B1};

use crate::batch::Batch;
use crate::kernels::parallel::map_chunks;
use crate::layer::{Context, Layer, SummaryRow};
use crate::onnx::{ExportError, OnnxGraph};
use crate::shape::{Shape, Shape1, Shape3};
use crate::tensor::{VisitPath, Visitor, VisitorMut};

use rand::RngCore;

/// A residual block: `main` plus a shortcut (`Identity` when absent).
///
/// In `sequential!`: `Residual({ Conv2D(8, (3, 3), same) => relu })`, or
/// with `shortcut = { Conv2D(8, (1, 1)) }`.
///
/// ```
/// use strata_core::typenum::U3;
/// use strata_core::{seeded_rng, Batch, Dense, Layer, Model, Residual, Shape1};
///
/// let mut main: Dense<Shape1<U3>, U3> = Dense::new(true, &mut seeded_rng(0));
/// assert!(main.import_param("weight", &[0.0; 9]));
/// let residual = Residual::identity(main);
/// let x = Batch::<Shape1<U3>>::from_vec(1, vec![1.0, 2.0, 3.0]).unwrap();
/// assert_eq!(residual.predict(&x).as_slice(), x.as_slice()); // main(x) = 0, plus x
/// ```
pub struct Residual<Main, Sc = Identity> {
    /// The main branch (a `sequential!` chain).
    pub main: Main,
    /// The shortcut: [`Identity`], or a layer (a projection).
    pub shortcut: Sc,
}

impl<Main, Sc> Residual<Main, Sc> {
    /// `main(x) + shortcut(x)`.
    pub fn new(main: Main, shortcut: Sc) -> Self {
        Residual { main, shortcut }
    }
}

impl<Main> Residual<Main, Identity> {
    /// `main(x) + x`.
    pub fn identity(main: Main) -> Self {
        Residual::new(main, Identity)
    }
}

/// The identity shortcut: `x` itself, added with no copy and no tensors.
#[derive(Clone, Copy, Debug, Default)]
pub struct Identity;

/// What a residual's second branch must do: add its output for `In` to
/// the main branch's, and take its part of the gradient. [`Identity`] and
/// every [`Layer`] are shortcuts.
pub trait ResidualShortcut<In: Shape> {
    /// The branch's output shape.
    type Output: Shape;
    /// What the taped forward pass keeps.
    type Tape;

    /// `out += shortcut(x)`, as [`Layer::forward_into`] (no state change).
    fn add_into(&self, x: &Batch<In>, out: &mut Batch<Self::Output>, ctx: &mut Context<'_>);

    /// `out += shortcut(x)`, as [`Layer::forward_taped`].
    fn add_taped(
        &mut self,
        x: &Batch<In>,
        out: &mut Batch<Self::Output>,
        ctx: &mut Context<'_>,
    ) -> Self::Tape;

    /// Adds the gradient with respect to `x` through the shortcut, for the
    /// gradient `grad` of its output, to `grad_input`.
    fn add_backward(
        &mut self,
        tape: Self::Tape,
        grad: &Batch<Self::Output>,
        grad_input: &mut Batch<In>,
        ctx: &mut Context<'_>,
    );

    /// Visits the shortcut's tensors under `shortcut.`.
    fn visit(&self, path: &mut VisitPath, v: &mut dyn Visitor);
    /// Writable twin of [`ResidualShortcut::visit`].
    fn visit_mut(&mut self, path: &mut VisitPath, v: &mut dyn VisitorMut);
    /// As [`Layer::initialize`].
    fn init(&mut self, rng: &mut dyn RngCore);
    /// As [`Layer::summary_rows`].
    fn rows(&self, rows: &mut Vec<SummaryRow>);
    /// As [`Layer::export_onnx`], under `shortcut` (the identity writes
    /// nothing and returns `input`).
    fn export_shortcut(&self, g: &mut OnnxGraph, input: &str) -> Result<String, ExportError>;
}

/// `out += x`, element-wise work shared among the context's threads (a
/// pass over a whole activation: serial, it held the other threads idle).
fn add_assign(out: &mut [f32], x: &[f32], ctx: &Context<'_>) {
    map_chunks(ctx.threads(), x, out, |x, out| {
        out.iter_mut().zip(x).for_each(|(o, v)| *o += v);
    });
}

impl<S: Shape> ResidualShortcut<S> for Identity {
    type Output = S;
    type Tape = ();

    fn add_into(&self, x: &Batch<S>, out: &mut Batch<S>, ctx: &mut Context<'_>) {
        add_assign(out.as_mut_slice(), x.as_slice(), ctx);
    }

    fn add_taped(&mut self, x: &Batch<S>, out: &mut Batch<S>, ctx: &mut Context<'_>) {
        add_assign(out.as_mut_slice(), x.as_slice(), ctx);
    }

    fn add_backward(
        &mut self,
        _: (),
        grad: &Batch<S>,
        grad_input: &mut Batch<S>,
        ctx: &mut Context<'_>,
    ) {
        add_assign(grad_input.as_mut_slice(), grad.as_slice(), ctx);
    }

    fn visit(&self, _: &mut VisitPath, _: &mut dyn Visitor) {}
    fn visit_mut(&mut self, _: &mut VisitPath, _: &mut dyn VisitorMut) {}
    fn init(&mut self, _: &mut dyn RngCore) {}
    fn rows(&self, _: &mut Vec<SummaryRow>) {}
    fn export_shortcut(&self, _: &mut OnnxGraph, input: &str) -> Result<String, ExportError> {
        Ok(input.to_string())
    }
}

impl<L: Layer> ResidualShortcut<L::Input> for L {
    type Output = L::Output;
    type Tape = L::Tape;

    fn add_into(&self, x: &Batch<L::Input>, out: &mut Batch<L::Output>, ctx: &mut Context<'_>) {
        let mut y = ctx.take_batch(x.batch_size());
        self.forward_into(x, &mut y, ctx);
        add_assign(out.as_mut_slice(), y.as_slice(), ctx);
        ctx.recycle(y);
    }

    fn add_taped(
        &mut self,
        x: &Batch<L::Input>,
        out: &mut Batch<L::Output>,
        ctx: &mut Context<'_>,
    ) -> L::Tape {
        let input = copy_in(x, ctx);
        let (y, tape) = self.forward_taped(input, ctx);
        add_assign(out.as_mut_slice(), y.as_slice(), ctx);
        ctx.recycle(y);
        tape
    }

    fn add_backward(
        &mut self,
        tape: L::Tape,
        grad: &Batch<L::Output>,
        grad_input: &mut Batch<L::Input>,
        ctx: &mut Context<'_>,
    ) {
        let g = self.backward(tape, copy_in(grad, ctx), ctx);
        add_assign(grad_input.as_mut_slice(), g.as_slice(), ctx);
        ctx.recycle(g);
    }

    fn visit(&self, path: &mut VisitPath, v: &mut dyn Visitor) {
        path.part("shortcut", self, v);
    }

    fn visit_mut(&mut self, path: &mut VisitPath, v: &mut dyn VisitorMut) {
        path.part_mut("shortcut", self, v);
    }

    fn init(&mut self, rng: &mut dyn RngCore) {
        self.initialize(rng);
    }

    fn rows(&self, rows: &mut Vec<SummaryRow>) {
        self.summary_rows(rows);
    }

    fn export_shortcut(&self, g: &mut OnnxGraph, input: &str) -> Result<String, ExportError> {
        g.part("shortcut", |g| self.export_onnx(g, input))
    }
}

/// A copy of `x` in a buffer from the context.
fn copy_in<S: Shape>(x: &Batch<S>, ctx: &mut Context<'_>) -> Batch<S> {
    let mut copy = ctx.take_batch(x.batch_size());
    copy.copy_from(x);
    copy
}

/// The type-level rule of a residual: its two branches give the same
/// shape. `A: SameShape<B>` holds when `A` and `B` have the same rank and
/// sizes; it compares the sizes rather than unifying the types, so that a
/// mismatch is reported in words ([`SizesAgree`]) instead of as a type
/// inference error.
#[diagnostic::on_unimplemented(
    message = "the branches of a Residual give different shapes: the main branch outputs `{Self}`, the shortcut `{Other}`",
    label = "the main branch's output must have the rank of its input (identity shortcut) or of the shortcut's output",
    note = "with no shortcut, the main branch must keep the input's shape; otherwise give a projection, \
            `Residual({{ ... }}, shortcut = {{ Conv2D(filters, (1, 1), strides = ...) }})`, whose output matches the main branch's"
)]
pub trait SameShape<Other> {}

/// `typenum::B1`: the sizes compared by [`SameShape`] agree.
#[diagnostic::on_unimplemented(
    message = "the branches of a Residual give different shapes (the note below names them)",
    label = "the main branch's output must equal its input (identity shortcut) or the shortcut's output",
    note = "with no shortcut, the main branch must keep the input's shape; otherwise give a projection, \
            `Residual({{ ... }}, shortcut = {{ Conv2D(filters, (1, 1), strides = ...) }})`, whose output matches the main branch's"
)]
pub trait SizesAgree {}

impl SizesAgree for B1 {}

impl<N1, N2> SameShape<Shape1<N2>> for Shape1<N1>
where
    N1: Unsigned + IsEqual<N2>,
    N2: Unsigned,
    Eq<N1, N2>: SizesAgree,
{
}

impl<H1, W1, C1, H2, W2, C2> SameShape<Shape3<H2, W2, C2>> for Shape3<H1, W1, C1>
where
    H1: Unsigned + IsEqual<H2>,
    W1: Unsigned + IsEqual<W2>,
    C1: Unsigned + IsEqual<C2>,
    H2: Unsigned,
    W2: Unsigned,
    C2: Unsigned,
    Eq<H1, H2>: BitAnd<Eq<W1, W2>>,
    And<Eq<H1, H2>, Eq<W1, W2>>: BitAnd<Eq<C1, C2>>,
    And<And<Eq<H1, H2>, Eq<W1, W2>>, Eq<C1, C2>>: SizesAgree,
{
}

impl<Main, Sc> Layer for Residual<Main, Sc>
where
    Main: Layer,
    Sc: ResidualShortcut<Main::Input>,
    Main::Output: SameShape<Sc::Output>,
{
    type Input = Main::Input;
    type Output = Sc::Output;
    type Tape = (Main::Tape, Sc::Tape);

    fn kind(&self) -> &'static str {
        "Residual"
    }

    fn forward_into(
        &self,
        x: &Batch<Self::Input>,
        out: &mut Batch<Self::Output>,
        ctx: &mut Context<'_>,
    ) {
        // The main branch writes into the output's own memory.
        let mut main: Batch<Main::Output> = retype(core::mem::replace(out, Batch::zeros(0)));
        self.main.forward_into(x, &mut main, ctx);
        *out = retype(main);
        self.shortcut.add_into(x, out, ctx);
    }

    fn forward_owned(&self, x: Batch<Self::Input>, ctx: &mut Context<'_>) -> Batch<Self::Output> {
        let out = self.forward_ref(&x, ctx);
        ctx.recycle(x);
        out
    }

    /// The main branch's output is taken when its last layer runs, not
    /// before the branch starts, so the branch's own activations get the
    /// buffers still in cache (the layers of MobileNetV2's 56×56 blocks ran
    /// 1.1-1.4× faster so on AMD Zen 3, 512 KiB of L2).
    fn forward_ref(&self, x: &Batch<Self::Input>, ctx: &mut Context<'_>) -> Batch<Self::Output> {
        let mut out = retype(self.main.forward_ref(x, ctx));
        self.shortcut.add_into(x, &mut out, ctx);
        out
    }

    fn forward_taped(
        &mut self,
        x: Batch<Self::Input>,
        ctx: &mut Context<'_>,
    ) -> (Batch<Self::Output>, Self::Tape) {
        let (main, main_tape) = self.main.forward_taped(copy_in(&x, ctx), ctx);
        let mut out = retype(main);
        let shortcut_tape = self.shortcut.add_taped(&x, &mut out, ctx);
        ctx.recycle(x);
        (out, (main_tape, shortcut_tape))
    }

    fn backward(
        &mut self,
        (main_tape, shortcut_tape): Self::Tape,
        grad: Batch<Self::Output>,
        ctx: &mut Context<'_>,
    ) -> Batch<Self::Input> {
        // A loss's softmax gradient is for the model's own last layer, not
        // for one at the end of a branch.
        ctx.take_logit_gradient();
        let grad_main = retype(copy_in(&grad, ctx));
        let mut grad_input = self.main.backward(main_tape, grad_main, ctx);
        self.shortcut
            .add_backward(shortcut_tape, &grad, &mut grad_input, ctx);
        ctx.recycle(grad);
        grad_input
    }

    fn visit_tensors(&self, path: &mut VisitPath, v: &mut dyn Visitor) {
        path.part("main", &self.main, v);
        self.shortcut.visit(path, v);
    }

    fn visit_tensors_mut(&mut self, path: &mut VisitPath, v: &mut dyn VisitorMut) {
        path.part_mut("main", &mut self.main, v);
        self.shortcut.visit_mut(path, v);
    }

    fn initialize(&mut self, rng: &mut dyn RngCore) {
        self.main.initialize(rng);
        self.shortcut.init(rng);
    }

    /// The main branch's rows, the shortcut's, then Keras's `Add`.
    fn summary_rows(&self, rows: &mut Vec<SummaryRow>) {
        self.main.summary_rows(rows);
        self.shortcut.rows(rows);
        rows.push(SummaryRow {
            kind: "Add".to_string(),
            output: Self::Output::DIMS.to_vec(),
            params: 0,
            trainable: 0,
        });
    }

    /// The main branch under `main`, the shortcut under `shortcut`, and
    /// an `Add` of the two.
    fn export_onnx(&self, g: &mut OnnxGraph, input: &str) -> Result<String, ExportError> {
        let main = g.part("main", |g| self.main.export_onnx(g, input))?;
        let shortcut = self.shortcut.export_shortcut(g, input)?;
        Ok(g.node("Add", &[&main, &shortcut], &[]))
    }
}

/// The same values under the other branch's name for the shape, which
/// [`SameShape`] guarantees is the same shape.
fn retype<A: Shape, B: Shape>(batch: Batch<A>) -> Batch<B> {
    debug_assert_eq!(A::DIMS, B::DIMS);
    let n = batch.batch_size();
    assert_eq!(A::NUMEL, B::NUMEL, "SameShape: both branches have one shape");
    Batch::from_buffer(n, batch.into_buffer())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::init::seeded_rng;
    use crate::layers::{BatchNormalization, Dense};
    use crate::shape::Shape1;
    use crate::{Model, Relu};
    use rand::Rng;
    use typenum::{U2, U3};

    type V3 = Shape1<U3>;

    fn dense(seed: u64) -> Dense<V3, U3, Relu> {
        Dense::new(true, &mut seeded_rng(seed))
    }

    #[test]
    fn identity_adds_the_input() {
        let mut net = Residual::identity(dense(1));
        net.import_param("main.bias", &[0.5, -0.5, 0.25]);
        let x = Batch::<V3>::from_vec(2, vec![1.0, -2.0, 0.5, 0.0, 3.0, -1.0]).unwrap();
        let main = net.main.predict(&x);
        let y = net.predict(&x);
        for ((y, m), x) in y.as_slice().iter().zip(main.as_slice()).zip(x.as_slice()) {
            assert_eq!(*y, m + x);
        }
    }

    #[test]
    fn keys_name_the_branches() {
        let net = Residual::new(dense(1), Dense::<V3, U3>::new(false, &mut seeded_rng(2)));
        let names: Vec<String> = net.params().into_iter().map(|p| p.name).collect();
        assert_eq!(names, ["main.weight", "main.bias", "shortcut.weight"]);
        let identity = Residual::identity(BatchNormalization::<V3>::keras_default());
        assert_eq!(identity.params()[0].name, "main.weight");
        assert_eq!(identity.params().len(), 5);
        let rows = identity.summary().rows;
        let kinds: Vec<&str> = rows.iter().map(|r| r.kind.as_str()).collect();
        assert_eq!(kinds, ["BatchNormalization", "Add"]);
        assert_eq!((rows[0].params, rows[0].trainable), (12, 6));
    }

    #[test]
    fn gradients_of_both_branches_match_finite_differences() {
        let mut rng = seeded_rng(5);
        let mut net = Residual::new(dense(1), Dense::<V3, U3>::new(true, &mut seeded_rng(2)));
        let x = Batch::<V3>::from_vec(2, (0..6).map(|_| rng.random_range(-1.0..1.0)).collect())
            .unwrap();
        let w: Vec<f32> = (0..6).map(|_| rng.random_range(-1.0..1.0)).collect();
        let loss = |net: &Residual<Dense<V3, U3, Relu>, Dense<V3, U3>>, x: &Batch<V3>| -> f64 {
            let y = net.predict(x);
            y.as_slice()
                .iter()
                .zip(&w)
                .map(|(a, b)| f64::from(*a) * f64::from(*b))
                .sum()
        };
        let mut ctx = Context::inference();
        let (_, tape) = net.forward_taped(x.clone(), &mut ctx);
        let gx = net.backward(tape, Batch::from_vec(2, w.clone()).unwrap(), &mut ctx);
        let h = 1e-3f32;
        for i in 0..6 {
            let (mut plus, mut minus) = (x.clone(), x.clone());
            plus.as_mut_slice()[i] += h;
            minus.as_mut_slice()[i] -= h;
            let numeric = (loss(&net, &plus) - loss(&net, &minus)) / (2.0 * f64::from(h));
            assert!(
                (numeric - f64::from(gx.as_slice()[i])).abs() < 1e-3,
                "dx[{i}]"
            );
        }
        for key in [
            "main.weight",
            "main.bias",
            "shortcut.weight",
            "shortcut.bias",
        ] {
            let grad = net.export_grad(key).unwrap();
            let values = net.export_param(key).unwrap();
            for (k, g) in grad.iter().enumerate() {
                let mut at = |d: f32| {
                    let mut v = values.clone();
                    v[k] += d;
                    net.import_param(key, &v);
                    let l = loss(&net, &x);
                    net.import_param(key, &values);
                    l
                };
                let numeric = (at(h) - at(-h)) / (2.0 * f64::from(h));
                assert!(
                    (numeric - f64::from(*g)).abs() < 1e-3,
                    "{key}[{k}]: {g} vs {numeric}"
                );
            }
        }
    }

    #[test]
    fn forward_into_reuses_the_output_and_matches_the_taped_pass() {
        let mut net = Residual::identity(BatchNormalization::<Shape1<U2>>::keras_default());
        let x = Batch::<Shape1<U2>>::from_vec(2, vec![1.0, 2.0, 3.0, 5.0]).unwrap();
        let mut rng = seeded_rng(0);
        let mut ctx = Context::training(&mut rng);
        let mut out = Batch::zeros(4);
        net.forward_into(&x, &mut out, &mut ctx);
        assert_eq!(out.batch_size(), 2);
        let (taped, _) = net.forward_taped(x.clone(), &mut ctx);
        assert_eq!(out.as_slice(), taped.as_slice());
        // Batch statistics: each channel normalised to -1, 1 (nearly), plus x.
        assert!((out.as_slice()[0] - (1.0 - 1.0)).abs() < 1e-3);
        assert!((out.as_slice()[3] - (5.0 + 1.0)).abs() < 1e-3);
    }

    /// The shortcut's sum over a large batch, split among threads, is
    /// bitwise the main branch's output plus the input.
    #[test]
    fn the_sum_is_the_same_on_any_number_of_threads() {
        let net = Residual::identity(BatchNormalization::<Shape1<U2>>::keras_default());
        let n = 400_000;
        let x =
            Batch::<Shape1<U2>>::from_vec(n, (0..2 * n).map(|i| (i % 977) as f32 / 7.0).collect())
                .unwrap();
        let main = net.main.predict(&x);
        for threads in [1, 2, 5] {
            let mut ctx = Context::inference().with_threads(threads);
            let y = net.forward(&x, &mut ctx);
            let expected = main.as_slice().iter().zip(x.as_slice()).map(|(m, x)| m + x);
            assert!(
                y.as_slice().iter().copied().eq(expected),
                "{threads} threads"
            );
        }
    }
}
