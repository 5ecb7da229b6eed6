//! A block without an input shape embedded in a chain with `{ block }`:
//! shapes flow through it, and its weight keys nest as in PyTorch.
use strata::prelude::*;

fn main() {
    let block = sequential![Conv2D(8, (3, 3), same) => relu];
    let net = sequential![Input(8, 8, 3) => { block } => Flatten => Dense(10)];

    let y = net.predict(&Batch::<Shape3<U8, U8, U3>>::filled(2, 0.25));
    assert_eq!(y.dims(), vec![2, 10]);
    assert_eq!(y.sample_dims(), &[10]);

    let names: Vec<String> = net.params().into_iter().map(|p| p.name).collect();
    assert_eq!(names, ["0.0.weight", "0.0.bias", "2.weight", "2.bias"]);
    assert_eq!(net.params()[0].shape, [8, 3, 3, 3]);
    assert_eq!(net.params()[2].shape, [10, 512]);

    let outputs: Vec<Vec<usize>> = net.summary().rows.into_iter().map(|r| r.output).collect();
    assert_eq!(outputs, [vec![8, 8, 8], vec![8, 8, 8], vec![512], vec![10]]);

    // Weights round-trip through the nested keys.
    let bytes = net.to_safetensors().unwrap();
    let mut other = {
        let block = sequential![Conv2D(8, (3, 3), same) => relu];
        sequential![Input(8, 8, 3) => { block } => Flatten => Dense(10)].with_seed(1)
    };
    other.load_safetensors_bytes(&bytes).unwrap();
    let x = Batch::<Shape3<U8, U8, U3>>::filled(1, 0.5);
    assert_eq!(other.predict(&x).as_slice(), net.predict(&x).as_slice());
}
