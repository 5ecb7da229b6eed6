use strata::prelude::*;

fn main() {
    // The branch changes the channels: an identity shortcut cannot be added.
    let _a = sequential![
        Input(8, 8, 4) => Residual({ Conv2D(8, (3, 3), same) => relu }) => Flatten => Dense(2)
    ];
    // The branch and the shortcut disagree on the size.
    let _b = sequential![
        Input(8, 8, 4) => Residual({ Conv2D(8, (3, 3), same, strides = (2, 2)) }, shortcut = { Conv2D(8, (1, 1)) })
    ];
    // An error inside a branch is reported where it is.
    let _c = sequential![Input(8, 8, 4) => Residual({ Conv2D(4, (9, 9)) })];
}
