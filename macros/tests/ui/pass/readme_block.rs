//! The README's block, verbatim: no input shape, so its shapes come from the
//! input it is given.
use strata::prelude::*;

fn main() {
    let block = sequential![Conv2D(32, (3, 3), same) => relu => MaxPool(2, 2) => Dropout(0.25)];
    let y = block.predict(&Batch::<Shape3<U16, U16, U3>>::zeros(1));
    assert_eq!(y.sample_dims(), &[8, 8, 32]);
    assert_eq!(y.dims(), vec![1, 8, 8, 32]);

    let outputs: Vec<Vec<usize>> = block
        .summary()
        .rows
        .iter()
        .map(|r| r.output.clone())
        .collect();
    assert_eq!(
        outputs,
        vec![
            vec![16, 16, 32],
            vec![16, 16, 32],
            vec![8, 8, 32],
            vec![8, 8, 32]
        ]
    );
    assert_eq!(block.param_count(), 3 * 3 * 3 * 32 + 32);
}
