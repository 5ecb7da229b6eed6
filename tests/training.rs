//! Training end to end on real data: a small CNN on the UCI digits learns
//! (loss falls, accuracy far above chance), and a checkpoint saved after
//! training and loaded into a fresh model predicts the same.

use strata::datasets::{digits, train_test_split};
use strata::prelude::*;

macro_rules! digits_net {
    () => {
        sequential![
            Input(8, 8, 1) => Conv2D(8, (3, 3), same, activation = relu) => MaxPool(2, 2)
            => Dropout(0.1) => Flatten => Dense(32, activation = relu) => Dense(10) => softmax
        ]
    };
}

#[test]
fn a_small_cnn_learns_the_digits() {
    let (x, y) = digits();
    let (x_train, y_train, x_test, y_test) = train_test_split(&x, &y, 0.25, 3).unwrap();
    let mut model =
        digits_net!().compile(Loss::sparse_categorical_crossentropy(), Adam::new(0.003));
    let before = model.evaluate(&x_test, &y_test).unwrap();
    let history = model
        .fit(
            &x_train,
            &y_train,
            FitOptions {
                epochs: 4,
                batch_size: 32,
                verbose: 0,
                ..FitOptions::default()
            },
        )
        .unwrap();
    let after = model.evaluate(&x_test, &y_test).unwrap();
    println!(
        "loss per epoch {:?}, test accuracy {} -> {}",
        history.loss, before.accuracy, after.accuracy
    );
    assert_eq!(history.loss.len(), 4);
    assert!(
        history.loss.windows(2).all(|w| w[1] < w[0]),
        "loss must fall every epoch: {:?}",
        history.loss
    );
    assert!(history.accuracy[3] > history.accuracy[0]);
    assert!(after.loss < before.loss);
    // Chance is 10%.
    assert!(after.accuracy > 0.8, "test accuracy {}", after.accuracy);
}

#[test]
fn a_checkpoint_restores_the_same_predictions() {
    let (x, y) = digits();
    let mut model = digits_net!().compile(
        Loss::sparse_categorical_crossentropy(),
        Sgd::new(0.05).momentum(0.9),
    );
    model
        .fit(
            &x,
            &y,
            FitOptions {
                epochs: 1,
                verbose: 0,
                ..FitOptions::default()
            },
        )
        .unwrap();
    let path = std::env::temp_dir().join(format!(
        "strata-checkpoint-{}.safetensors",
        std::process::id()
    ));
    model.save_safetensors(&path).unwrap();

    // A fresh model starts elsewhere (another seed), then loads the checkpoint.
    let mut fresh = digits_net!().with_seed(99);
    assert_ne!(fresh.predict(&x), model.predict(&x));
    fresh.load_safetensors(&path).unwrap();
    std::fs::remove_file(&path).ok();
    assert_eq!(fresh.predict(&x), model.predict(&x));
}

#[test]
fn validation_data_is_reported_per_epoch() {
    let (x, y) = digits();
    let (x_train, y_train, x_val, y_val) = train_test_split(&x, &y, 0.2, 5).unwrap();
    let mut model = digits_net!().compile(Loss::sparse_categorical_crossentropy(), Adam::default());
    let history = model
        .fit(
            &x_train,
            &y_train,
            FitOptions {
                epochs: 2,
                verbose: 0,
                validation_data: Some((&x_val, (&y_val).into())),
                ..FitOptions::default()
            },
        )
        .unwrap();
    assert_eq!(history.val_loss.len(), 2);
    let direct = model.evaluate(&x_val, &y_val).unwrap();
    assert!((history.val_loss[1] - direct.loss).abs() < 1e-5);
    assert!((history.val_accuracy[1] - direct.accuracy).abs() < 1e-6);
}
