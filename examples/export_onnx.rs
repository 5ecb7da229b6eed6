//! Exports three networks to ONNX, for ONNX Runtime, Triton, OpenVINO or
//! tract: the quickstart network (trained for a few epochs on the digits
//! that ship inside strata), ResNet-20 and Keras's MobileNetV2. Prints each
//! file's size and export time, then how to serve one.
//!
//! Run with `cargo run --release --example export_onnx [folder]` (default
//! `target/onnx`). Check the files with
//! `python3 scripts/check_onnx.py target/onnx` (onnx's checker and ONNX
//! Runtime; `pip install onnx onnxruntime numpy`).

use std::path::{Path, PathBuf};
use std::time::Instant;

use strata::datasets::{digits, train_test_split};
use strata::prelude::*;

include!("models/mobilenet_v2.rs");
include!("models/resnet20.rs");

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args()
        .nth(1)
        .map_or_else(|| PathBuf::from("target/onnx"), PathBuf::from);
    std::fs::create_dir_all(&dir)?;
    println!(
        "ONNX opset {}, files in {}\n",
        strata::onnx::OPSET,
        dir.display()
    );

    // The quickstart network, trained briefly so that the file is useful.
    let net = sequential![
        Input(8, 8, 1)
        => Conv2D(32, (3, 3), padding = same) => relu
        => Conv2D(32, (3, 3)) => relu
        => MaxPooling2D((2, 2)) => Dropout(0.25)
        => Flatten => Dense(64) => relu => Dropout(0.25)
        => Dense(10) => softmax
    ];
    let (images, labels) = digits();
    let (x_train, y_train, _, _) = train_test_split(&images, &labels, 0.2, 7)?;
    let mut model = net.compile(Loss::sparse_categorical_crossentropy(), Adam::new(0.002));
    let options = FitOptions {
        epochs: 3,
        batch_size: 32,
        ..FitOptions::default()
    };
    model.fit(&x_train, &y_train, options)?;
    export(&model.into_model(), &dir, "quickstart")?;

    export(&ResNet20::new(), &dir, "resnet20")?;
    export(&MobileNetV2::new(), &dir, "mobilenet_v2")?;

    let file = dir.join("resnet20.onnx");
    println!(
        "\nServe it:\n\
         - ONNX Runtime: python3 -c \"import onnxruntime as ort, numpy as np; \
         s = ort.InferenceSession('{file}'); \
         print(s.run(['output'], {{'input': np.zeros((4, 32, 32, 3), np.float32)}})[0].shape)\"\n\
         - Triton: models/resnet20/1/model.onnx plus models/resnet20/config.pbtxt (README, \
         \"Deploying\"), then tritonserver --model-repository=models\n\
         - tract (Rust): tract_onnx::onnx().model_for_path(\"{file}\")?.into_optimized()?.into_runnable()?",
        file = file.display()
    );
    Ok(())
}

/// Writes `net` to `dir/name.onnx` and says how big it is and how long it
/// took.
fn export<M: Model>(net: &M, dir: &Path, name: &str) -> Result<(), strata::ExportError> {
    let path = dir.join(format!("{name}.onnx"));
    let start = Instant::now();
    net.save_onnx(&path)?;
    let elapsed = start.elapsed();
    let size = std::fs::metadata(&path).map_or(0, |m| m.len());
    println!(
        "{name:>13}: {:>10} bytes ({:.1} MB, {} parameters) in {:.0} ms -> {}",
        size,
        size as f64 / 1e6,
        net.param_count(),
        elapsed.as_secs_f64() * 1e3,
        path.display()
    );
    Ok(())
}
