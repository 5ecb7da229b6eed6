//! The typed model of a `sequential!` invocation: what the parser produces,
//! the checker verifies and the generator turns into code. Everything that
//! depends on the kind of layer is behind [`LayerDef`].

use proc_macro2::{Span, TokenStream};

use crate::layers::LayerDef;

/// A sample shape as the user wrote it: `[h, w, c]` or `[n]`.
pub type Dims = Vec<usize>;

/// A number the user wrote, with where they wrote it.
#[derive(Clone, Copy, Debug)]
pub struct Num {
    pub value: usize,
    pub span: Span,
}

impl Num {
    pub fn new(value: usize, span: Span) -> Num {
        Num { value, span }
    }
}

/// What the macro knows about the shape between two layers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Known {
    /// Every dimension.
    Dims(Dims),
    /// Only the rank (a block without an input shape).
    Rank(usize),
    /// Nothing (after an embedded `{ block }`, or after an error).
    Unknown,
}

impl Known {
    pub fn dims(&self) -> Option<&[usize]> {
        match self {
            Known::Dims(d) => Some(d),
            _ => None,
        }
    }

    pub fn rank(&self) -> Option<usize> {
        match self {
            Known::Dims(d) => Some(d.len()),
            Known::Rank(r) => Some(*r),
            Known::Unknown => None,
        }
    }

    /// The shape after a layer whose output has rank `rank`, computed by
    /// `rule` when the dimensions are known.
    pub fn then(&self, rank: usize, rule: impl FnOnce(&[usize]) -> Dims) -> Known {
        match self {
            Known::Dims(d) => Known::Dims(rule(d)),
            _ => Known::Rank(rank),
        }
    }
}

/// One element of the chain, as understood from its name.
pub enum Element {
    /// `Input(...)`: not a layer, only the input shape.
    Input,
    Layer(Box<dyn LayerDef>),
    /// Could not be understood (already reported): the shape after it is
    /// unknown, so no false errors follow it.
    Invalid,
}

/// One element of the chain with what messages need.
pub struct LayerSpec {
    pub element: Element,
    /// The layer as the user wrote it, for messages: `MaxPool(2, 2)`.
    pub text: String,
    /// The whole layer's tokens, to point errors at.
    pub tokens: TokenStream,
    /// `Input(...)` or `input_shape = (...)`: the shape this layer takes.
    pub input_shape: Option<(Dims, Span)>,
}

impl LayerSpec {
    pub fn def(&self) -> Option<&dyn LayerDef> {
        match &self.element {
            Element::Layer(def) => Some(def.as_ref()),
            _ => None,
        }
    }

    /// An error on the whole layer.
    pub fn error(&self, message: impl std::fmt::Display) -> syn::Error {
        syn::Error::new_spanned(&self.tokens, message)
    }
}

/// A checked layer: its definition and its place in messages.
pub struct Layer {
    pub def: Box<dyn LayerDef>,
    pub text: String,
}

/// A chain that passed every check.
pub struct Checked {
    /// The layers, `Input` removed.
    pub layers: Vec<Layer>,
    /// `shapes[i]` is layer `i`'s input; `shapes[layers.len()]` the output.
    pub shapes: Vec<Known>,
}
