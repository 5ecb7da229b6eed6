//! A layer written outside strata-core, with a trained parameter and a
//! buffer whose value a training-mode forward pass updates (as
//! BatchNormalization's running statistics are): the architecture test of
//! parameters versus buffers, the explicit mode and the typed tape.

use std::marker::PhantomData;

use strata_core::tensor::{Layout, Tensor};
use strata_core::typenum::consts::*;
use strata_core::{
    declare_tensors, seeded_rng, Adam, Batch, Context, Layer, Loss, Model, Role, Shape, Shape1,
};

/// `y = x · scale` per feature; in training, also tracks the running mean
/// of its input (momentum 0.5) without using it.
struct Scale<S> {
    scale: Tensor,
    running_mean: Tensor,
    shape: PhantomData<S>,
}

impl<S: Shape> Scale<S> {
    fn new() -> Self {
        Scale {
            scale: Tensor::parameter(vec![S::LAST], Layout::Plain, 1.0),
            running_mean: Tensor::buffer(vec![S::LAST], 0.0),
            shape: PhantomData,
        }
    }
}

impl<S: Shape> Layer for Scale<S> {
    type Input = S;
    type Output = S;
    /// The input, typed: the backward pass needs it for the scale's gradient.
    type Tape = Batch<S>;

    fn kind(&self) -> &'static str {
        "Scale"
    }

    fn forward_into(&self, input: &Batch<S>, out: &mut Batch<S>, _: &mut Context<'_>) {
        out.copy_from(input);
        let scale = self.scale.values();
        for row in out.as_mut_slice().chunks_mut(S::LAST) {
            row.iter_mut().zip(scale).for_each(|(v, s)| *v *= s);
        }
    }

    fn forward_taped(&mut self, input: Batch<S>, ctx: &mut Context<'_>) -> (Batch<S>, Batch<S>) {
        if ctx.is_training() {
            let rows = input.as_slice().len() / S::LAST;
            let mean = self.running_mean.values_mut();
            for (c, m) in mean.iter_mut().enumerate() {
                let batch_mean: f32 = input
                    .as_slice()
                    .iter()
                    .skip(c)
                    .step_by(S::LAST)
                    .sum::<f32>()
                    / rows as f32;
                *m = 0.5 * *m + 0.5 * batch_mean;
            }
        }
        let out = self.forward(&input, ctx);
        (out, input)
    }

    fn backward(&mut self, input: Batch<S>, grad: Batch<S>, _: &mut Context<'_>) -> Batch<S> {
        let (scale, grad_scale) = self.scale.values_and_grad_mut();
        let mut grad_input = grad.clone();
        for ((gi, g), x) in grad_input
            .as_mut_slice()
            .chunks_mut(S::LAST)
            .zip(grad.as_slice().chunks(S::LAST))
            .zip(input.as_slice().chunks(S::LAST))
        {
            for c in 0..S::LAST {
                grad_scale[c] += g[c] * x[c];
                gi[c] = g[c] * scale[c];
            }
        }
        grad_input
    }

    declare_tensors!(weight: scale, running_mean: running_mean);
}

fn data() -> (Batch<Shape1<U2>>, Vec<f32>) {
    let x = Batch::from_vec(2, vec![1.0, 2.0, 3.0, 4.0]).unwrap();
    (x, vec![2.0, 4.0, 6.0, 8.0])
}

#[test]
fn tensors_are_declared_once_with_their_roles() {
    let layer = Scale::<Shape1<U2>>::new();
    let params = layer.params();
    let names: Vec<_> = params.iter().map(|p| (p.name.as_str(), p.role)).collect();
    assert_eq!(
        names,
        [("weight", Role::Parameter), ("running_mean", Role::Buffer)]
    );
    assert_eq!(layer.param_count(), 4);
    assert_eq!(layer.export_param("running_mean"), Some(vec![0.0, 0.0]));
    // Buffers never have a gradient.
    assert_eq!(layer.export_grad("running_mean"), None);
    assert_eq!(layer.export_grad("weight"), Some(vec![0.0, 0.0]));
}

#[test]
fn buffers_are_saved_and_loaded_with_the_weights() {
    let mut a = Scale::<Shape1<U2>>::new();
    assert!(a.import_param("running_mean", &[0.25, -0.5]));
    assert!(a.import_param("weight", &[3.0, 4.0]));
    let bytes = a.to_safetensors().unwrap();
    let mut b = Scale::<Shape1<U2>>::new();
    b.load_safetensors_bytes(&bytes).unwrap();
    assert_eq!(b.export_param("running_mean"), Some(vec![0.25, -0.5]));
    assert_eq!(b.export_param("weight"), Some(vec![3.0, 4.0]));
    // A wrong length changes nothing.
    assert!(!b.import_param("running_mean", &[1.0]));
    assert_eq!(b.export_param("running_mean"), Some(vec![0.25, -0.5]));
}

#[test]
fn only_a_training_forward_updates_state() {
    let (x, _) = data();
    let mut layer = Scale::<Shape1<U2>>::new();
    // Inference, with or without a tape: no update.
    let _ = layer.forward(&x, &mut Context::inference());
    let _ = layer.forward_taped(x.clone(), &mut Context::inference());
    assert_eq!(layer.export_param("running_mean"), Some(vec![0.0, 0.0]));
    // Training: the batch means (2, 3), at momentum 0.5.
    let mut rng = seeded_rng(0);
    let _ = layer.forward_taped(x, &mut Context::training(&mut rng));
    assert_eq!(layer.export_param("running_mean"), Some(vec![1.0, 1.5]));
}

#[test]
fn gradients_and_optimizer_see_parameters_only() {
    let (x, y) = data();
    let mut layer = Scale::<Shape1<U2>>::new();
    let grads = layer
        .loss_and_gradients(
            &x,
            &Batch::from_vec(2, y.clone()).unwrap(),
            Loss::mean_squared_error(),
        )
        .unwrap();
    let keys: Vec<_> = grads.tensors.iter().map(|t| t.0.as_str()).collect();
    assert_eq!(keys, ["weight"]);
    // d/ds mean((s x - y)^2) over 4 values at s = 1: (2/4) Σ (x - y) x.
    let want = [
        0.5 * ((1.0 - 2.0) * 1.0 + (3.0 - 6.0) * 3.0),
        0.5 * ((2.0 - 4.0) * 2.0 + (4.0 - 8.0) * 4.0),
    ];
    assert_eq!(grads.get("weight").unwrap(), want);

    let mut count = 0;
    layer.visit_params_mut(&mut |values, grad| {
        count += 1;
        assert_eq!(values.len(), grad.len());
    });
    assert_eq!(count, 1);

    // Training moves the scale towards 2 and the running mean as well.
    let mut trainer = layer.compile(Loss::mean_squared_error(), Adam::new(0.1));
    let targets = Batch::from_vec(2, y).unwrap();
    for seed in 0..50 {
        trainer.train_on_batch(&x, &targets, seed).unwrap();
    }
    let scale = trainer.export_param("weight").unwrap();
    assert!(scale.iter().all(|s| (s - 2.0).abs() < 0.2), "{scale:?}");
    let mean = trainer.export_param("running_mean").unwrap();
    assert!(
        (mean[0] - 2.0).abs() < 1e-3 && (mean[1] - 3.0).abs() < 1e-3,
        "{mean:?}"
    );
}

#[test]
fn context_is_send() {
    fn send<T: Send>() {}
    send::<Context<'static>>();
}
