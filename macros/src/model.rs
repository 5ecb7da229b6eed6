//! The typed model of a `sequential!` invocation: what the parser produces,
//! the checker verifies and the generator turns into code.

use proc_macro2::Span;

/// A sample shape as the user wrote it: `[h, w, c]` or `[n]`.
pub type Dims = Vec<usize>;

/// Keras's padding modes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Padding {
    Valid,
    Same,
}

/// The activation functions the DSL knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Act {
    Relu,
    Sigmoid,
    Tanh,
    Softmax,
    Linear,
}

impl Act {
    pub const ALL: [(&'static str, Act); 5] = [
        ("relu", Act::Relu),
        ("sigmoid", Act::Sigmoid),
        ("tanh", Act::Tanh),
        ("softmax", Act::Softmax),
        ("linear", Act::Linear),
    ];

    pub fn from_name(name: &str) -> Option<Act> {
        Act::ALL.iter().find(|(n, _)| *n == name).map(|(_, a)| *a)
    }

    /// The `strata` type implementing it.
    pub fn type_name(self) -> &'static str {
        match self {
            Act::Relu => "Relu",
            Act::Sigmoid => "Sigmoid",
            Act::Tanh => "Tanh",
            Act::Softmax => "Softmax",
            Act::Linear => "Linear",
        }
    }
}

/// What kind of layer, with its checked-for-syntax arguments.
#[derive(Clone)]
pub enum LayerKind {
    /// `Input(h, w, c)` / `Input(n)`: not a layer, only the input shape.
    Input,
    Conv2D {
        filters: Num,
        kernel: (Num, Num),
        strides: (Num, Num),
        padding: Padding,
        activation: Act,
        use_bias: bool,
    },
    Pool {
        max: bool,
        pool: (Num, Num),
        /// Defaults to the pool size, so only checked when written.
        strides: (Num, Num),
        strides_given: bool,
        padding: Padding,
    },
    Dropout {
        rate: f64,
        /// The rate as written, to point at and quote.
        rate_tokens: proc_macro2::TokenStream,
    },
    Flatten,
    Dense {
        units: Num,
        activation: Act,
        use_bias: bool,
    },
    Activation(Act),
    /// A layer that could not be understood (already reported): the shape
    /// after it is unknown, so no false errors follow it.
    Invalid,
    /// `{ expr }`: a layer value (typically another `sequential!` block)
    /// whose type the macro cannot see.
    Block(syn::Expr),
}

/// A number the user wrote, with where they wrote it.
#[derive(Clone, Copy, Debug)]
pub struct Num {
    pub value: usize,
    pub span: Span,
}

/// One element of the chain.
#[derive(Clone)]
pub struct LayerSpec {
    pub kind: LayerKind,
    /// The layer as the user wrote it, for messages: `MaxPool(2, 2)`.
    pub text: String,
    /// The whole layer's tokens, to point errors at.
    pub tokens: proc_macro2::TokenStream,
    /// `Input(...)` or `input_shape = (...)`: the shape this layer takes.
    pub input_shape: Option<(Dims, Span)>,
}

/// A parsed chain: the elements in order, `Input` included.
pub struct Chain {
    pub layers: Vec<LayerSpec>,
}
