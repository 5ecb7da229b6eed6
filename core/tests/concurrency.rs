//! One model shared by 8 threads through an `Arc`, each calling `predict`
//! and `predict_into` (with its own workspace) in its own order: every
//! result is bitwise the serial one. Inference takes `&self` and keeps its
//! scratch memory in the caller's `Context`, so nothing is shared but the
//! read-only parameters.
//!
//! The model is built from core layers with a small chain written here, so
//! this test does not depend on the `sequential!` macro.

use std::sync::Arc;

use strata_core::tensor::{VisitPath, Visitor, VisitorMut};
use strata_core::typenum::consts::*;
use strata_core::{
    seeded_rng, Batch, Context, Conv2D, Dense, Flatten, Layer, MaxPool2D, Model, Relu, Same, Shape,
    Shape3, Softmax, Valid,
};

/// `A` then `B`: the two layers at positions 0 and 1 of a model.
struct Chain<A, B>(A, B);

impl<A: Layer, B: Layer<Input = A::Output>> Layer for Chain<A, B> {
    type Input = A::Input;
    type Output = B::Output;
    type Tape = (A::Tape, B::Tape);

    fn kind(&self) -> &'static str {
        "Sequential"
    }

    fn forward_into(
        &self,
        input: &Batch<Self::Input>,
        output: &mut Batch<Self::Output>,
        ctx: &mut Context<'_>,
    ) {
        let middle = self.0.forward(input, ctx);
        self.1.forward_into(&middle, output, ctx);
        ctx.recycle(middle);
    }

    fn forward_taped(
        &mut self,
        input: Batch<Self::Input>,
        ctx: &mut Context<'_>,
    ) -> (Batch<Self::Output>, Self::Tape) {
        let (middle, a) = self.0.forward_taped(input, ctx);
        let (out, b) = self.1.forward_taped(middle, ctx);
        (out, (a, b))
    }

    fn backward(
        &mut self,
        (a, b): Self::Tape,
        grad_output: Batch<Self::Output>,
        ctx: &mut Context<'_>,
    ) -> Batch<Self::Input> {
        let middle = self.1.backward(b, grad_output, ctx);
        self.0.backward(a, middle, ctx)
    }

    fn visit_tensors(&self, path: &mut VisitPath, v: &mut dyn Visitor) {
        path.child(0, &self.0, v);
        path.child(1, &self.1, v);
    }

    fn visit_tensors_mut(&mut self, path: &mut VisitPath, v: &mut dyn VisitorMut) {
        path.child_mut(0, &mut self.0, v);
        path.child_mut(1, &mut self.1, v);
    }
}

type Image = Shape3<U12, U12, U3>;
type ConvRelu = Conv2D<Image, U8, U3, U3, U1, U1, Same, Relu>;
type Pool = MaxPool2D<Shape3<U12, U12, U8>, U2, U2, U2, U2, Valid>;
type Flat = Flatten<Shape3<U6, U6, U8>>;
type Head = Dense<<Flat as Layer>::Output, U10, Softmax>;
/// `Conv2D(8, (3, 3), same) => relu => MaxPool(2, 2) => Flatten => Dense(10) => softmax`.
type Net = Chain<ConvRelu, Chain<Pool, Chain<Flat, Head>>>;

fn net() -> Net {
    let rng = &mut seeded_rng(11);
    Chain(
        ConvRelu::new(true, rng),
        Chain(Pool::new(), Chain(Flat::new(), Head::new(true, rng))),
    )
}

/// Batch `i` of the test inputs: `i % 5 + 1` samples of distinct values.
fn input(i: usize) -> Batch<Image> {
    let n = i % 5 + 1;
    Batch::from_vec(
        n,
        (0..n * Image::NUMEL)
            .map(|j| (((j + 31 * i) * 7919) % 1013) as f32 / 506.0 - 1.0)
            .collect(),
    )
    .unwrap()
}

fn bits<S: Shape>(b: &Batch<S>) -> Vec<u32> {
    b.as_slice().iter().map(|v| v.to_bits()).collect()
}

#[test]
fn eight_threads_sharing_one_model_get_the_serial_results_bitwise() {
    const INPUTS: usize = 12;
    const THREADS: usize = 8;
    const ROUNDS: usize = 6;
    let model = Arc::new(net());
    let inputs: Arc<Vec<Batch<Image>>> = Arc::new((0..INPUTS).map(input).collect());
    let serial: Arc<Vec<Vec<u32>>> =
        Arc::new(inputs.iter().map(|x| bits(&model.predict(x))).collect());
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let (model, inputs, serial) = (model.clone(), inputs.clone(), serial.clone());
            std::thread::spawn(move || {
                // Each thread its own workspace and output, reused across
                // calls and batch sizes, and its own kernel thread count.
                let mut workspace = Context::inference().with_threads(1 + t % 3);
                let mut out = Batch::zeros(0);
                let mut checked = 0;
                for round in 0..ROUNDS {
                    for k in 0..INPUTS {
                        // A different order per thread and round.
                        let i = (k * 5 + t * 7 + round * 3) % INPUTS;
                        let got = if (t + k + round) % 2 == 0 {
                            bits(&model.predict(&inputs[i]))
                        } else {
                            model.predict_into(&inputs[i], &mut out, &mut workspace);
                            bits(&out)
                        };
                        assert_eq!(got, serial[i], "thread {t}, round {round}, input {i}");
                        checked += 1;
                    }
                }
                checked
            })
        })
        .collect();
    let checked: usize = workers.into_iter().map(|w| w.join().unwrap()).sum();
    assert_eq!(checked, THREADS * ROUNDS * INPUTS);
}

#[test]
fn a_model_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Net>();
    assert_send_sync::<Batch<Image>>();
    fn assert_send<T: Send>() {}
    assert_send::<Context<'static>>();
}
