//! Activations: the `Activation(relu)` layer, Keras's `ReLU` (and
//! `ReLU(max_value = 6)`) and `Softmax` layers, the bare `relu`, `gelu`,
//! `swish`... and the `activation = ...` argument that Conv2D and Dense
//! take. The `LeakyReLU` layer, which has a slope, is in `leaky_relu.rs`.

use proc_macro2::TokenStream;
use quote::quote;
use syn::Expr;

use super::{Entry, Fusion, InitCx, LayerDef, ShapeCx, TypeCx};
use crate::args::Args;
use crate::codegen::types::Support;
use crate::model::{Element, Known};
use crate::text::{layer_text, quoted_list};
use crate::values;

/// The activation functions the DSL knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Act {
    Relu,
    Sigmoid,
    Tanh,
    Softmax,
    Linear,
    Relu6,
    Elu,
    Selu,
    Gelu,
    Silu,
    HardSigmoid,
    HardSilu,
    Softplus,
    Softsign,
    Mish,
    LeakyRelu,
    LogSoftmax,
}

/// How many names [`Act::ALL`] has (aliases included).
const NAMES: usize = 19;

impl Act {
    /// Keras's names (aliases after the name they stand for) and the
    /// `strata` type implementing each.
    const ALL: [(&'static str, &'static str, Act); NAMES] = [
        ("relu", "Relu", Act::Relu),
        ("sigmoid", "Sigmoid", Act::Sigmoid),
        ("tanh", "Tanh", Act::Tanh),
        ("softmax", "Softmax", Act::Softmax),
        ("linear", "Linear", Act::Linear),
        ("relu6", "Relu6", Act::Relu6),
        ("elu", "Elu", Act::Elu),
        ("selu", "Selu", Act::Selu),
        ("gelu", "Gelu", Act::Gelu),
        ("silu", "Silu", Act::Silu),
        ("swish", "Silu", Act::Silu),
        ("hard_sigmoid", "HardSigmoid", Act::HardSigmoid),
        ("hard_silu", "HardSilu", Act::HardSilu),
        ("hard_swish", "HardSilu", Act::HardSilu),
        ("softplus", "Softplus", Act::Softplus),
        ("softsign", "Softsign", Act::Softsign),
        ("mish", "Mish", Act::Mish),
        ("leaky_relu", "LeakyRelu", Act::LeakyRelu),
        ("log_softmax", "LogSoftmax", Act::LogSoftmax),
    ];

    /// Every name, in [`Act::ALL`]'s order: the bare layer names.
    const NAME_LIST: [&'static str; NAMES] = {
        let mut names = [""; NAMES];
        let mut i = 0;
        while i < NAMES {
            names[i] = Act::ALL[i].0;
            i += 1;
        }
        names
    };

    pub fn from_name(name: &str) -> Option<Act> {
        Act::ALL.iter().find(|(n, ..)| *n == name).map(|(.., a)| *a)
    }

    fn type_name(self) -> &'static str {
        Act::ALL
            .iter()
            .find(|(.., a)| *a == self)
            .expect("all listed")
            .1
    }

    pub fn type_tokens(self, s: &Support) -> TokenStream {
        s.name(self.type_name())
    }

    /// `, Relu` as the last type argument of Conv2D or Dense; nothing for
    /// linear, their default.
    pub fn type_param(self, s: &Support) -> TokenStream {
        if self == Act::Linear {
            return quote!();
        }
        let t = self.type_tokens(s);
        quote!(, #t)
    }
}

/// Reads an activation: `relu`, `"relu"`, or Keras's `None` (the identity).
pub fn read(e: &Expr) -> syn::Result<Act> {
    let known = || quoted_list(Act::ALL.iter().map(|(n, ..)| *n));
    match values::word(e) {
        Some((w, _)) if w == "None" => Ok(Act::Linear),
        Some((w, span)) => Act::from_name(&w).ok_or_else(|| {
            syn::Error::new(
                span,
                format!("unknown activation `{w}`; expected one of {}", known()),
            )
        }),
        None => Err(syn::Error::new_spanned(
            e,
            format!("expected an activation: one of {}", known()),
        )),
    }
}

pub const ENTRIES: &[Entry] = &[
    Entry {
        names: &["Activation"],
        listed: &["Activation"],
        args: &["activation", "input_shape"],
        parse: parse_activation,
    },
    Entry {
        names: &["ReLU"],
        listed: &[],
        args: &["max_value", "input_shape"],
        parse: parse_relu_layer,
    },
    Entry {
        names: &["Softmax"],
        listed: &[],
        args: &["input_shape"],
        parse: parse_softmax_layer,
    },
    Entry {
        names: &Act::NAME_LIST,
        listed: &Act::NAME_LIST,
        args: &[],
        parse: parse_bare,
    },
];

struct Activation(Act);

fn layer(act: Act) -> Element {
    Element::Layer(Box::new(Activation(act)))
}

fn parse_activation(a: &mut Args) -> Element {
    let f = a.slot("activation");
    a.no_more("Activation(relu)");
    let missing = "Activation needs a function: `Activation(relu)`";
    layer(a.required(f, missing, read, Act::Linear))
}

/// `Softmax`: Keras's layer class for softmax.
fn parse_softmax_layer(a: &mut Args) -> Element {
    a.no_more("it takes no arguments");
    layer(Act::Softmax)
}

/// `ReLU`, and `ReLU(max_value = 6)` (MobileNet's relu6); Keras's other
/// arguments (threshold, negative_slope) and other caps are not supported.
fn parse_relu_layer(a: &mut Args) -> Element {
    let max_value = a.slot("max_value");
    a.no_more("ReLU or ReLU(max_value = 6)");
    let Some(e) = max_value else {
        return layer(Act::Relu);
    };
    if values::word(&e).is_some_and(|(w, _)| w == "None") {
        return layer(Act::Relu);
    }
    let cap = a.read(&e, |e| values::number(e, "a max_value"), 6.0);
    if cap != 6.0 {
        let written = layer_text(&quote!(#e));
        a.error(syn::Error::new_spanned(
            &e,
            format!("ReLU supports max_value = 6 (relu6) only, but it is {written}"),
        ));
    }
    layer(Act::Relu6)
}

fn parse_bare(a: &mut Args) -> Element {
    let name = a.name();
    if a.has_parens() {
        a.error(syn::Error::new_spanned(
            a.tokens(),
            format!("`{name}` takes no arguments; write `{name}` or `Activation({name})`"),
        ));
        return Element::Invalid;
    }
    layer(Act::from_name(&name).expect("registered names are activations"))
}

impl LayerDef for Activation {
    fn field_base(&self) -> &'static str {
        "activation"
    }

    fn output_shape(&self, input: &Known, _: &ShapeCx) -> syn::Result<Known> {
        Ok(input.clone())
    }

    fn field_type(&self, cx: &TypeCx) -> TokenStream {
        let (name, input) = (cx.support.name("Activation"), cx.input);
        let act = self.0.type_tokens(cx.support);
        quote!(#name<#input, #act>)
    }

    fn constructor(&self, _: &InitCx) -> TokenStream {
        quote!(Activation::new())
    }

    fn fusion(&self) -> Fusion {
        // Softmax and log-softmax normalise over the last axis: not a
        // per-value step.
        match self.0 {
            Act::Softmax | Act::LogSoftmax => Fusion::None,
            _ => Fusion::Tail,
        }
    }
}
