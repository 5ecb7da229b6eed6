//! Activations: the `Activation(relu)` layer, Keras's `ReLU` and `Softmax`
//! layers, the bare `relu`, `sigmoid`... and the `activation = ...`
//! argument that Conv2D and Dense take.

use proc_macro2::TokenStream;
use quote::quote;
use syn::Expr;

use super::{Entry, InitCx, LayerDef, ShapeCx, TypeCx};
use crate::args::Args;
use crate::codegen::types::Support;
use crate::model::{Element, Known};
use crate::text::quoted_list;
use crate::values;

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
    /// Keras's name and the `strata` type implementing it.
    const ALL: [(&'static str, &'static str, Act); 5] = [
        ("relu", "Relu", Act::Relu),
        ("sigmoid", "Sigmoid", Act::Sigmoid),
        ("tanh", "Tanh", Act::Tanh),
        ("softmax", "Softmax", Act::Softmax),
        ("linear", "Linear", Act::Linear),
    ];

    pub fn from_name(name: &str) -> Option<Act> {
        Act::ALL.iter().find(|(n, ..)| *n == name).map(|(.., a)| *a)
    }

    fn type_name(self) -> &'static str {
        Act::ALL.iter().find(|(.., a)| *a == self).expect("all listed").1
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
        names: &["ReLU", "Softmax"],
        listed: &[],
        args: &["input_shape"],
        parse: parse_layer_form,
    },
    Entry {
        names: &["relu", "sigmoid", "tanh", "softmax", "linear"],
        listed: &["relu", "sigmoid", "tanh", "softmax", "linear"],
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

/// `ReLU`, `Softmax`: Keras's layer classes for one activation each.
fn parse_layer_form(a: &mut Args) -> Element {
    a.no_more("it takes no arguments");
    let act = if a.name() == "ReLU" { Act::Relu } else { Act::Softmax };
    layer(act)
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
}
