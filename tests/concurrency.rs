//! One `sequential!` model shared by 8 threads through an `Arc`, each
//! calling `predict` and `predict_into` (with its own workspace) in its own
//! order: every result is bitwise the serial one. (core/tests/concurrency.rs
//! does the same on a model of core layers.)

use std::sync::Arc;

use strata::prelude::*;
use strata::Context;

fn bits<S: Shape>(b: &Batch<S>) -> Vec<u32> {
    b.as_slice().iter().map(|v| v.to_bits()).collect()
}

#[test]
fn eight_threads_sharing_one_sequential_model_get_the_serial_results_bitwise() {
    const INPUTS: usize = 10;
    const THREADS: usize = 8;
    const ROUNDS: usize = 4;
    let model = Arc::new(sequential![
        Input(16, 16, 3) => Conv2D(8, (3, 3), same) => relu => MaxPool(2, 2) => Dropout(0.25)
        => Conv2D(16, (3, 3)) => relu => Flatten => Dense(32) => relu => Dense(10) => softmax
    ]);
    let inputs: Arc<Vec<Batch<Shape3<U16, U16, U3>>>> = Arc::new(
        (0..INPUTS)
            .map(|i| {
                let n = i % 4 + 1;
                Batch::from_vec(
                    n,
                    (0..n * 768)
                        .map(|j| (((j + 17 * i) * 7919) % 1009) as f32 / 504.0 - 1.0)
                        .collect(),
                )
                .unwrap()
            })
            .collect(),
    );
    let serial: Arc<Vec<Vec<u32>>> =
        Arc::new(inputs.iter().map(|x| bits(&model.predict(x))).collect());
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let (model, inputs, serial) = (model.clone(), inputs.clone(), serial.clone());
            std::thread::spawn(move || {
                let mut workspace = Context::inference().with_threads(1 + t % 2);
                let mut out = Batch::zeros(0);
                for round in 0..ROUNDS {
                    for k in 0..INPUTS {
                        let i = (k * 3 + t * 7 + round) % INPUTS;
                        let got = if (t + k + round) % 2 == 0 {
                            bits(&model.predict(&inputs[i]))
                        } else {
                            model.predict_into(&inputs[i], &mut out, &mut workspace);
                            bits(&out)
                        };
                        assert_eq!(got, serial[i], "thread {t}, round {round}, input {i}");
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
}
