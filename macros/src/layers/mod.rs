//! The layers the DSL knows, one file each. A file owns everything about
//! its layer: its Keras names and aliases, its arguments (defaults, checks),
//! its output-shape rule, and the type and constructor it generates. The
//! parser, checker and generator are generic code that asks it through
//! [`Entry`] and [`LayerDef`].
//!
//! A new layer is a new file here and one word in [`registry!`] below.

use proc_macro2::TokenStream;

use crate::args::Args;
use crate::codegen::types::Support;
use crate::model::{Element, Known, LayerSpec};

pub mod block;
pub mod params;
mod window;

/// How a layer is written: the names that mean it, the named arguments it
/// takes, and how to read its arguments.
pub struct Entry {
    /// Every accepted spelling, Keras's and its aliases.
    pub names: &'static [&'static str],
    /// The spellings shown in the list of known layers.
    pub listed: &'static [&'static str],
    /// Named arguments (`input_shape` if the layer can start a chain).
    pub args: &'static [&'static str],
    /// Reads the arguments (names already checked against `args`).
    pub parse: fn(&mut Args) -> Element,
}

/// A layer whose arguments were read: what checking and generating need.
pub trait LayerDef {
    /// Keras's snake-case kind: the stem of the field name (`conv2d_0`).
    fn field_base(&self) -> &'static str;

    /// The rank this layer needs of its input, if it needs one. The checker
    /// reports a mismatch in words, and assumes it for the first layer of a
    /// chain without an input shape.
    fn input_rank(&self) -> Option<usize> {
        None
    }

    /// The shape after this layer, or the error that says why there is none.
    fn output_shape(&self, input: &Known, cx: &ShapeCx) -> syn::Result<Known>;

    /// The field's type.
    fn field_type(&self, cx: &TypeCx) -> TokenStream;

    /// The expression that builds the field (`rng` is in scope).
    fn constructor(&self, cx: &InitCx) -> TokenStream;

    /// `{ expr }`: the value to embed, evaluated in the caller's scope.
    fn embedded(&self) -> Option<&syn::Expr> {
        None
    }

    /// Items the field's type needs, placed beside the model's struct
    /// (a residual's branches are models of their own).
    fn items(&self, cx: &TypeCx) -> TokenStream {
        let _ = cx;
        TokenStream::new()
    }

    /// `where` predicates the field's type needs in a model generic over
    /// its shapes (a residual's branch models have bounds of their own).
    fn bounds(&self, cx: &TypeCx) -> Vec<TokenStream> {
        let _ = cx;
        Vec::new()
    }

    /// What this layer can be in a fused run at inference (see
    /// `strata_core::fusion`).
    fn fusion(&self) -> Fusion {
        Fusion::None
    }
}

/// A layer's part in a fused run: a convolution computes, the per-pixel
/// layers right after it run inside its kernel, and a zero padding right
/// before it becomes part of its window padding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fusion {
    /// Runs on its own.
    None,
    /// Can apply the layers after it to its output as it computes it
    /// (`strata_core::fusion::FusedHead`), and read its input without a
    /// zero padding before it (`strata_core::fusion::PaddedHead`).
    Head,
    /// Can run inside the layer before it
    /// (`strata_core::fusion::EpilogueLayer`).
    Tail,
    /// A frame of zeros the layer after it can take into its own padding
    /// (`ZeroPadding2D`).
    Pad,
    /// Can end a convolution's run, pooling its output a band of images
    /// at a time (`strata_core::fusion::SliceLayer`).
    Pool,
}

/// What an output-shape rule may need besides its input: where to point
/// and how to describe the input in words.
pub struct ShapeCx<'a> {
    pub layer: &'a LayerSpec,
    pub prev: Option<&'a LayerSpec>,
}

impl ShapeCx<'_> {
    /// The layer as the user wrote it.
    pub fn text(&self) -> &str {
        &self.layer.text
    }

    pub fn error(&self, message: impl std::fmt::Display) -> syn::Error {
        self.layer.error(message)
    }

    /// Where `input` comes from, in words: "Conv2D(8, (3, 3)) outputs
    /// 1x1x8", "the input is 1x1x3".
    pub fn source(&self, input: &Known) -> String {
        let what = describe(input);
        match self.prev {
            Some(p) if p.text == self.layer.text => {
                format!("the layer before it, also {}, outputs {what}", p.text)
            }
            Some(p) => format!("{} outputs {what}", p.text),
            None => format!("the input is {what}"),
        }
    }
}

fn describe(shape: &Known) -> String {
    match shape {
        Known::Dims(d) if d.len() == 1 => format!("a vector of {}", d[0]),
        Known::Dims(d) => strata_shapes::format_dims(d),
        Known::Rank(1) => "a vector".to_string(),
        Known::Rank(_) => "a 3-D tensor".to_string(),
        Known::Unknown => "an unknown shape".to_string(),
    }
}

/// What a field's type is built from.
pub struct TypeCx<'a> {
    pub index: usize,
    /// The name of the model the field belongs to (`Sequential`, or a
    /// named model's), which keeps the names of its items apart.
    pub model: &'a proc_macro2::Ident,
    /// The type of the layer's input shape.
    pub input: &'a TokenStream,
    pub support: &'a Support,
}

/// What a constructor may need from its neighbours.
pub struct InitCx<'a> {
    pub index: usize,
    /// The name of the model the field belongs to (see [`TypeCx::model`]).
    pub model: &'a proc_macro2::Ident,
    /// The previous layer, if any.
    pub prev: Option<&'a dyn LayerDef>,
    /// The type of the previous layer's input shape.
    pub prev_input: Option<&'a TokenStream>,
}

macro_rules! registry {
    ($($layer:ident,)*) => {
        $(pub mod $layer;)*

        /// Every named layer, in the order the list of known layers gives.
        pub fn entries() -> impl Iterator<Item = &'static Entry> {
            [$($layer::ENTRIES),*].into_iter().flatten()
        }
    };
}

registry! {
    input,
    conv2d,
    depthwise_conv2d,
    separable_conv2d,
    batch_normalization,
    residual,
    pooling,
    dropout,
    flatten,
    dense,
    global_pooling,
    zero_padding2d,
    reshape,
    activation,
    leaky_relu,
}

/// The entry for a layer name.
pub fn lookup(name: &str) -> Option<&'static Entry> {
    entries().find(|e| e.names.contains(&name))
}
