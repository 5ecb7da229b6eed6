//! Weight files: safetensors written and read with the `safetensors` crate
//! directly, loaded into single layers through `Model`, with every failure
//! checked to leave the layer untouched.

use std::collections::HashMap;
use std::path::PathBuf;

use half::{bf16, f16};
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};
use strata_core::typenum::consts::*;
use strata_core::{
    seeded_rng, Conv2D, Dense, Layer, LoadError, Model, SaveError, Shape1, Shape3, Valid,
};

/// weight [3, 2, 2, 2] (PyTorch [out, in, kh, kw]), bias [3].
type Conv = Conv2D<Shape3<U4, U4, U2>, U3, U2, U2, U1, U1, Valid>;
/// weight [4, 6], bias [4].
type Fc = Dense<Shape1<U6>, U4>;

const CONV_W: [usize; 4] = [3, 2, 2, 2];
const CONV_B: [usize; 1] = [3];

fn conv(seed: u64) -> Conv {
    Conv::new(true, &mut seeded_rng(seed))
}

/// A tensor to write: name, dtype, shape, raw little-endian bytes.
struct T {
    name: &'static str,
    dtype: Dtype,
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

fn f32_tensor(name: &'static str, shape: &[usize], values: &[f32]) -> T {
    T {
        name,
        dtype: Dtype::F32,
        shape: shape.to_vec(),
        bytes: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
    }
}

fn file(tensors: &[T]) -> Vec<u8> {
    let views: Vec<(&str, TensorView<'_>)> = tensors
        .iter()
        .map(|t| {
            (
                t.name,
                TensorView::new(t.dtype, t.shape.clone(), &t.bytes).unwrap(),
            )
        })
        .collect();
    safetensors::serialize(views, None).unwrap()
}

fn numbered(len: usize, scale: f32) -> Vec<f32> {
    (0..len)
        .map(|i| (i as f32 - len as f32 / 2.0) * scale)
        .collect()
}

/// Every parameter of `layer`, as bits, in `params()` order.
fn snapshot<L: Layer>(layer: &L) -> Vec<(String, Vec<u32>)> {
    layer
        .params()
        .into_iter()
        .map(|p| {
            let v = layer.export_param(&p.name).unwrap();
            (p.name, v.iter().map(|x| x.to_bits()).collect())
        })
        .collect()
}

/// Loads `bytes` into a fresh conv layer, expecting an error; checks the
/// layer is bit-for-bit unchanged and returns the error.
fn conv_load_err(bytes: &[u8]) -> LoadError {
    let mut layer = conv(3);
    let before = snapshot(&layer);
    let kernel_before: Vec<u32> = layer.kernel().iter().map(|v| v.to_bits()).collect();
    let err = layer
        .load_safetensors_bytes(bytes)
        .expect_err("load should fail");
    assert_eq!(
        snapshot(&layer),
        before,
        "layer changed by a failed load ({err})"
    );
    assert_eq!(
        layer
            .kernel()
            .iter()
            .map(|v| v.to_bits())
            .collect::<Vec<_>>(),
        kernel_before
    );
    err
}

fn temp_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "strata-core-weights-io-{}-{name}",
        std::process::id()
    ))
}

// ---------------------------------------------------------------------------
// Round trips and layout
// ---------------------------------------------------------------------------

#[test]
fn conv_round_trip_in_memory() {
    let a = conv(1);
    let mut b = conv(2);
    assert_ne!(a.kernel(), b.kernel());
    let bytes = a.to_safetensors().unwrap();
    b.load_safetensors_bytes(&bytes).unwrap();
    assert_eq!(a.kernel(), b.kernel());
    assert_eq!(a.bias(), b.bias());
    assert_eq!(snapshot(&a), snapshot(&b));
}

#[test]
fn saved_file_is_pytorch_layout_f32() {
    let mut a = conv(1);
    assert!(a.import_param("bias", &[0.5, -1.5, 2.5]));
    let bytes = a.to_safetensors().unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let mut names = st.names();
    names.sort_unstable();
    assert_eq!(names, vec!["bias", "weight"]);

    let w = st.tensor("weight").unwrap();
    assert_eq!(w.dtype(), Dtype::F32);
    assert_eq!(w.shape(), &CONV_W);
    let torch: Vec<f32> = w
        .data()
        .chunks(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    // torch[o][i][y][x] == kernel (HWIO) [y][x][i][o]
    let (f, c, kh, kw) = (3, 2, 2, 2);
    for o in 0..f {
        for i in 0..c {
            for y in 0..kh {
                for x in 0..kw {
                    assert_eq!(
                        torch[((o * c + i) * kh + y) * kw + x],
                        a.kernel()[((y * kw + x) * c + i) * f + o]
                    );
                }
            }
        }
    }
    let b = st.tensor("bias").unwrap();
    assert_eq!(b.shape(), &CONV_B);
    let bias: Vec<f32> = b
        .data()
        .chunks(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    assert_eq!(bias, vec![0.5, -1.5, 2.5]);
}

#[test]
fn loads_a_file_written_by_hand() {
    let weight = numbered(24, 0.125);
    let bias = vec![1.0, 2.0, 3.0];
    let bytes = file(&[
        f32_tensor("weight", &CONV_W, &weight),
        f32_tensor("bias", &CONV_B, &bias),
    ]);
    let mut layer = conv(9);
    layer.load_safetensors_bytes(&bytes).unwrap();
    assert_eq!(layer.export_param("weight").unwrap(), weight);
    assert_eq!(layer.bias(), Some(&bias[..]));
    // And forward uses them: a single 2x2 patch of ones (valid, 4x4 input
    // would give 3x3; use the first output pixel) sums each filter.
    let x = strata_core::Batch::<Shape3<U4, U4, U2>>::filled(1, 1.0);
    let y = layer.predict(&x);
    for o in 0..3 {
        let want: f32 = weight[o * 8..(o + 1) * 8].iter().sum::<f32>() + bias[o];
        assert_eq!(y.as_slice()[o], want);
    }
}

#[test]
fn dense_round_trip_and_flatten_order() {
    let a = Fc::new(true, &mut seeded_rng(1));
    let mut b = Fc::new(true, &mut seeded_rng(2));
    b.load_safetensors_bytes(&a.to_safetensors().unwrap())
        .unwrap();
    assert_eq!(a.kernel(), b.kernel());

    // After a Flatten of (1, 2, 3): file column c·2 + w is our feature w·3 + c.
    let weight = numbered(24, 1.0);
    let bytes = file(&[
        f32_tensor("weight", &[4, 6], &weight),
        f32_tensor("bias", &[4], &[0.0; 4]),
    ]);
    let mut d = Fc::new(true, &mut seeded_rng(3)).follows_flatten_of(&[1, 2, 3]);
    d.load_safetensors_bytes(&bytes).unwrap();
    for u in 0..4 {
        for c in 0..3 {
            for w in 0..2 {
                assert_eq!(d.kernel()[(w * 3 + c) * 4 + u], weight[u * 6 + c * 2 + w]);
            }
        }
    }
    // Saving gives the file's layout back.
    let st_bytes = d.to_safetensors().unwrap();
    let st = SafeTensors::deserialize(&st_bytes).unwrap();
    let saved: Vec<f32> = st
        .tensor("weight")
        .unwrap()
        .data()
        .chunks(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    assert_eq!(saved, weight);
}

#[test]
fn round_trip_through_a_file() {
    let path = temp_path("round-trip.safetensors");
    let a = conv(1);
    a.save_safetensors(&path).unwrap();
    let mut b = conv(2);
    b.load_safetensors(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    assert_eq!(snapshot(&a), snapshot(&b));
}

#[test]
fn layer_without_bias_has_only_a_weight() {
    let a = Conv::new(false, &mut seeded_rng(1));
    let bytes = a.to_safetensors().unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    assert_eq!(st.names(), vec!["weight"]);
    let mut b = Conv::new(false, &mut seeded_rng(2));
    b.load_safetensors_bytes(&bytes).unwrap();
    assert_eq!(a.kernel(), b.kernel());

    // A bias in the file is unexpected for it.
    let with_bias = file(&[
        f32_tensor("weight", &CONV_W, &numbered(24, 1.0)),
        f32_tensor("bias", &CONV_B, &[1.0; 3]),
    ]);
    let before = snapshot(&b);
    match b.load_safetensors_bytes(&with_bias) {
        Err(LoadError::UnexpectedKey { key, found }) => {
            assert_eq!(key, "bias");
            assert_eq!(found, vec![3]);
        }
        other => panic!("expected UnexpectedKey, got {other:?}"),
    }
    assert_eq!(snapshot(&b), before);
}

// ---------------------------------------------------------------------------
// Other dtypes
// ---------------------------------------------------------------------------

#[test]
fn f64_f16_bf16_are_converted() {
    // Values exactly representable in every format (small multiples of 1/8).
    let weight = numbered(24, 0.125);
    let bias = vec![-2.0f32, 0.0, 3.5];
    let enc = |dtype: Dtype, v: &[f32]| -> Vec<u8> {
        match dtype {
            Dtype::F64 => v.iter().flat_map(|x| (*x as f64).to_le_bytes()).collect(),
            Dtype::F16 => v
                .iter()
                .flat_map(|x| f16::from_f32(*x).to_le_bytes())
                .collect(),
            Dtype::BF16 => v
                .iter()
                .flat_map(|x| bf16::from_f32(*x).to_le_bytes())
                .collect(),
            _ => unreachable!(),
        }
    };
    for (wd, bd) in [
        (Dtype::F64, Dtype::F64),
        (Dtype::F16, Dtype::F16),
        (Dtype::BF16, Dtype::BF16),
        (Dtype::F16, Dtype::BF16),
        (Dtype::BF16, Dtype::F64),
    ] {
        let bytes = file(&[
            T {
                name: "weight",
                dtype: wd,
                shape: CONV_W.to_vec(),
                bytes: enc(wd, &weight),
            },
            T {
                name: "bias",
                dtype: bd,
                shape: CONV_B.to_vec(),
                bytes: enc(bd, &bias),
            },
        ]);
        let mut layer = conv(5);
        layer
            .load_safetensors_bytes(&bytes)
            .unwrap_or_else(|e| panic!("{wd:?}/{bd:?}: {e}"));
        assert_eq!(layer.export_param("weight").unwrap(), weight, "{wd:?}");
        assert_eq!(layer.bias(), Some(&bias[..]), "{bd:?}");
    }
}

#[test]
fn inexact_values_round_like_the_format() {
    let weight: Vec<f32> = (0..24).map(|i| 0.1 + i as f32 * 0.0123).collect();
    let w64: Vec<f64> = weight.iter().map(|&v| v as f64 + 1e-12).collect();
    let bytes = file(&[
        T {
            name: "weight",
            dtype: Dtype::F64,
            shape: CONV_W.to_vec(),
            bytes: w64.iter().flat_map(|x| x.to_le_bytes()).collect(),
        },
        T {
            name: "bias",
            dtype: Dtype::F16,
            shape: CONV_B.to_vec(),
            bytes: [0.1f32, 0.2, 0.3]
                .iter()
                .flat_map(|x| f16::from_f32(*x).to_le_bytes())
                .collect(),
        },
    ]);
    let mut layer = conv(5);
    layer.load_safetensors_bytes(&bytes).unwrap();
    let want: Vec<f32> = w64.iter().map(|&v| v as f32).collect();
    assert_eq!(layer.export_param("weight").unwrap(), want);
    let want_b: Vec<f32> = [0.1f32, 0.2, 0.3]
        .iter()
        .map(|&v| f16::from_f32(v).to_f32())
        .collect();
    assert_eq!(layer.bias(), Some(&want_b[..]));
    assert!((layer.bias().unwrap()[0] - 0.1).abs() < 1e-3);
}

// ---------------------------------------------------------------------------
// Errors: each one names what is wrong and leaves the layer unchanged
// ---------------------------------------------------------------------------

#[test]
fn missing_key() {
    // A valid weight but no bias: the weight must not be applied either.
    let bytes = file(&[f32_tensor("weight", &CONV_W, &numbered(24, 1.0))]);
    let err = conv_load_err(&bytes);
    match &err {
        LoadError::MissingKey { key, expected, .. } => {
            assert_eq!(key, "bias");
            assert_eq!(expected, &vec![3]);
        }
        other => panic!("expected MissingKey, got {other:?}"),
    }
    let text = err.to_string();
    assert!(text.contains("`bias`") && text.contains("[3]"), "{text}");

    let bytes = file(&[f32_tensor("bias", &CONV_B, &[1.0; 3])]);
    match conv_load_err(&bytes) {
        LoadError::MissingKey { key, expected, .. } => {
            assert_eq!(key, "weight");
            assert_eq!(expected, CONV_W.to_vec());
        }
        other => panic!("expected MissingKey, got {other:?}"),
    }

    // An empty (but valid) file lacks everything.
    let empty = safetensors::serialize(Vec::<(&str, TensorView<'_>)>::new(), None).unwrap();
    assert!(matches!(
        conv_load_err(&empty),
        LoadError::MissingKey { .. }
    ));
}

/// A file written under other names (a PyTorch model whose layers sit in
/// a `features` submodule) is recognisable from the error alone: it lists
/// what the model lacks next to what the file has instead.
#[test]
fn missing_key_lists_the_files_other_keys() {
    let bytes = file(&[
        f32_tensor("features.0.weight", &CONV_W, &numbered(24, 1.0)),
        f32_tensor("features.0.bias", &CONV_B, &[1.0; 3]),
    ]);
    let err = conv_load_err(&bytes);
    match &err {
        LoadError::MissingKey {
            key,
            missing,
            unexpected,
            ..
        } => {
            assert_eq!(key, "weight");
            assert_eq!(missing, &["weight", "bias"]);
            assert_eq!(unexpected, &["features.0.bias", "features.0.weight"]);
        }
        other => panic!("expected MissingKey, got {other:?}"),
    }
    assert_eq!(
        err.to_string(),
        "the file has no tensor `weight`; the model expects one of shape [3, 2, 2, 2]\n  \
         missing from the file (2): `weight`, `bias`\n  \
         in the file but not in the model (2): `features.0.bias`, `features.0.weight`"
    );

    // Long lists name the first few and count the rest.
    let names: Vec<&'static str> = (0..11).map(|i| &*format!("extra.{i:02}").leak()).collect();
    let tensors: Vec<T> = names
        .iter()
        .map(|&n| f32_tensor(n, &CONV_B, &[0.0; 3]))
        .chain([f32_tensor("weight", &CONV_W, &numbered(24, 1.0))])
        .collect();
    let text = conv_load_err(&file(&tensors)).to_string();
    assert!(
        text.ends_with(
            "in the file but not in the model (11): `extra.00`, `extra.01`, `extra.02`, \
             `extra.03`, `extra.04`, `extra.05`, `extra.06`, `extra.07` and 3 more"
        ),
        "{text}"
    );
    assert!(
        text.contains("missing from the file (1): `bias`\n"),
        "{text}"
    );
}

#[test]
fn unexpected_key() {
    let bytes = file(&[
        f32_tensor("weight", &CONV_W, &numbered(24, 1.0)),
        f32_tensor("bias", &CONV_B, &[1.0; 3]),
        f32_tensor("running_mean", &[2, 5], &[0.0; 10]),
    ]);
    let err = conv_load_err(&bytes);
    match &err {
        LoadError::UnexpectedKey { key, found } => {
            assert_eq!(key, "running_mean");
            assert_eq!(found, &vec![2, 5]);
        }
        other => panic!("expected UnexpectedKey, got {other:?}"),
    }
    let text = err.to_string();
    assert!(
        text.contains("`running_mean`") && text.contains("[2, 5]"),
        "{text}"
    );

    // Keras-style names are not PyTorch's: `kernel` is unexpected... after
    // `weight` is found missing, which is reported first.
    let bytes = file(&[
        f32_tensor("kernel", &[2, 2, 2, 3], &numbered(24, 1.0)),
        f32_tensor("bias", &CONV_B, &[1.0; 3]),
    ]);
    match conv_load_err(&bytes) {
        LoadError::MissingKey { key, .. } => assert_eq!(key, "weight"),
        other => panic!("expected MissingKey, got {other:?}"),
    }
}

#[test]
fn wrong_shape() {
    // Same number of values, Keras's HWIO shape instead of PyTorch's.
    let bytes = file(&[
        f32_tensor("weight", &[2, 2, 2, 3], &numbered(24, 1.0)),
        f32_tensor("bias", &CONV_B, &[1.0; 3]),
    ]);
    let err = conv_load_err(&bytes);
    match &err {
        LoadError::WrongShape {
            key,
            expected,
            found,
        } => {
            assert_eq!(key, "weight");
            assert_eq!(expected, &CONV_W.to_vec());
            assert_eq!(found, &vec![2, 2, 2, 3]);
        }
        other => panic!("expected WrongShape, got {other:?}"),
    }
    let text = err.to_string();
    assert!(
        text.contains("`weight`") && text.contains("[3, 2, 2, 2]") && text.contains("[2, 2, 2, 3]"),
        "{text}"
    );

    // A valid weight and a bias of the wrong length: nothing is applied.
    let bytes = file(&[
        f32_tensor("weight", &CONV_W, &numbered(24, 1.0)),
        f32_tensor("bias", &[4], &[1.0; 4]),
    ]);
    match conv_load_err(&bytes) {
        LoadError::WrongShape {
            key,
            expected,
            found,
        } => {
            assert_eq!((key.as_str(), expected, found), ("bias", vec![3], vec![4]));
        }
        other => panic!("expected WrongShape, got {other:?}"),
    }

    // A flattened weight (right count, wrong rank).
    let bytes = file(&[
        f32_tensor("weight", &[24], &numbered(24, 1.0)),
        f32_tensor("bias", &CONV_B, &[1.0; 3]),
    ]);
    assert!(matches!(
        conv_load_err(&bytes),
        LoadError::WrongShape { .. }
    ));
}

#[test]
fn wrong_dtype() {
    let ints: Vec<u8> = (0..24i32).flat_map(|v| v.to_le_bytes()).collect();
    let bytes = file(&[
        T {
            name: "weight",
            dtype: Dtype::I32,
            shape: CONV_W.to_vec(),
            bytes: ints,
        },
        f32_tensor("bias", &CONV_B, &[1.0; 3]),
    ]);
    let err = conv_load_err(&bytes);
    match &err {
        LoadError::WrongDtype { key, found } => {
            assert_eq!(key, "weight");
            assert!(found.contains("I32"), "{found}");
        }
        other => panic!("expected WrongDtype, got {other:?}"),
    }
    let text = err.to_string();
    assert!(text.contains("`weight`") && text.contains("I32"), "{text}");

    // A valid weight followed by a U8 bias: the weight is not applied.
    let bytes = file(&[
        f32_tensor("weight", &CONV_W, &numbered(24, 1.0)),
        T {
            name: "bias",
            dtype: Dtype::U8,
            shape: CONV_B.to_vec(),
            bytes: vec![1, 2, 3],
        },
    ]);
    match conv_load_err(&bytes) {
        LoadError::WrongDtype { key, found } => {
            assert_eq!(key, "bias");
            assert!(found.contains("U8"), "{found}");
        }
        other => panic!("expected WrongDtype, got {other:?}"),
    }
}

#[test]
fn corrupt_bytes() {
    let good = conv(1).to_safetensors().unwrap();
    let mut cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", vec![]),
        ("one byte short", good[..good.len() - 1].to_vec()),
        ("header only", good[..good.len() - 24 * 4].to_vec()),
        ("truncated header", good[..12].to_vec()),
        ("length prefix only", good[..8].to_vec()),
        (
            "garbage",
            (0..200u32)
                .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
                .collect(),
        ),
        ("text", b"this is not a safetensors file at all".to_vec()),
    ];
    // A header size larger than the file.
    let mut huge = good.clone();
    huge[..8].copy_from_slice(&(1u64 << 40).to_le_bytes());
    cases.push(("huge header size", huge));
    // A header that is not JSON.
    let mut bad_json = good.clone();
    bad_json[8] = b'!';
    cases.push(("bad json", bad_json));
    for (what, bytes) in cases {
        let err = conv_load_err(&bytes);
        match &err {
            LoadError::Corrupt { reason } => {
                assert!(!reason.is_empty(), "{what}");
                assert!(err.to_string().contains(reason.as_str()), "{what}: {err}");
            }
            other => panic!("{what}: expected Corrupt, got {other:?}"),
        }
        assert!(
            err.to_string().contains("not a valid safetensors file"),
            "{what}: {err}"
        );
    }
}

#[test]
fn missing_path_is_io() {
    let path = temp_path("does-not-exist/weights.safetensors");
    let mut layer = conv(3);
    let before = snapshot(&layer);
    let err = layer.load_safetensors(&path).expect_err("no such file");
    assert_eq!(snapshot(&layer), before);
    match &err {
        LoadError::Io { path: p, source } => {
            assert_eq!(p, &path);
            assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
        }
        other => panic!("expected Io, got {other:?}"),
    }
    assert!(err.to_string().contains("weights.safetensors"), "{err}");
    assert!(std::error::Error::source(&err).is_some());
}

#[test]
fn bad_file_on_disk_leaves_layer_unchanged() {
    let path = temp_path("wrong-shape.safetensors");
    let bytes = file(&[
        f32_tensor("weight", &[3, 2, 2, 1], &[0.0; 12]),
        f32_tensor("bias", &CONV_B, &[1.0; 3]),
    ]);
    std::fs::write(&path, bytes).unwrap();
    let mut layer = conv(3);
    let before = snapshot(&layer);
    let err = layer.load_safetensors(&path).expect_err("wrong shape");
    std::fs::remove_file(&path).unwrap();
    assert!(matches!(err, LoadError::WrongShape { .. }), "{err:?}");
    assert_eq!(snapshot(&layer), before);
}

#[test]
fn dense_errors_leave_layer_unchanged() {
    let mut d = Fc::new(true, &mut seeded_rng(4)).follows_flatten_of(&[1, 2, 3]);
    let before = snapshot(&d);
    let kernel_before = d.kernel().to_vec();
    // Transposed weight (Keras's [in, units]).
    let bytes = file(&[
        f32_tensor("weight", &[6, 4], &[1.0; 24]),
        f32_tensor("bias", &[4], &[1.0; 4]),
    ]);
    match d.load_safetensors_bytes(&bytes) {
        Err(LoadError::WrongShape {
            key,
            expected,
            found,
        }) => {
            assert_eq!(
                (key.as_str(), expected, found),
                ("weight", vec![4, 6], vec![6, 4])
            );
        }
        other => panic!("expected WrongShape, got {other:?}"),
    }
    assert_eq!(snapshot(&d), before);
    assert_eq!(d.kernel(), &kernel_before[..]);
}

#[test]
fn save_to_missing_directory_is_io() {
    let path = temp_path("no-such-dir/out.safetensors");
    match conv(1).save_safetensors(&path) {
        Err(err @ SaveError::Io { .. }) => {
            assert!(err.to_string().contains("out.safetensors"), "{err}");
            assert!(std::error::Error::source(&err).is_some());
            match err {
                SaveError::Io { path: p, .. } => assert_eq!(p, path),
                SaveError::Serialize { .. } => unreachable!(),
            }
        }
        other => panic!("expected SaveError::Io, got {other:?}"),
    }
}

#[test]
fn metadata_in_the_file_is_ignored() {
    let w = numbered(24, 1.0);
    let views = vec![
        (
            "weight",
            TensorView::new(Dtype::F32, CONV_W.to_vec(), bytemuck_f32(&w)).unwrap(),
        ),
        (
            "bias",
            TensorView::new(Dtype::F32, CONV_B.to_vec(), bytemuck_f32(&[1.0; 3])).unwrap(),
        ),
    ];
    let meta = HashMap::from([("format".to_string(), "pt".to_string())]);
    let bytes = safetensors::serialize(views, Some(meta)).unwrap();
    let mut layer = conv(2);
    layer.load_safetensors_bytes(&bytes).unwrap();
    assert_eq!(layer.export_param("weight").unwrap(), w);
}

/// Leaks a little-endian copy (tests only; keeps the views' lifetimes simple).
fn bytemuck_f32(v: &[f32]) -> &'static [u8] {
    Box::leak(
        v.iter()
            .flat_map(|x| x.to_le_bytes())
            .collect::<Vec<u8>>()
            .into_boxed_slice(),
    )
}

#[test]
fn parameterless_layer_takes_only_an_empty_file() {
    let mut pool = strata_core::MaxPool2D::<Shape3<U4, U4, U2>, U2, U2, U2, U2, Valid>::new();
    let bytes = pool.to_safetensors().unwrap();
    assert!(SafeTensors::deserialize(&bytes).unwrap().names().is_empty());
    pool.load_safetensors_bytes(&bytes).unwrap();
    let extra = file(&[f32_tensor("weight", &[2], &[1.0, 2.0])]);
    match pool.load_safetensors_bytes(&extra) {
        Err(LoadError::UnexpectedKey { key, found }) => {
            assert_eq!((key.as_str(), found), ("weight", vec![2]));
        }
        other => panic!("expected UnexpectedKey, got {other:?}"),
    }
}
