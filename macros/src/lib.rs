//! The `sequential!` macro of [strata](https://docs.rs/strata). Use it
//! through the `strata` crate, which documents the DSL.
//!
//! The macro works in three steps: `parse` turns tokens into a chain of
//! understood layers (`model`), `check` verifies it (where the input shape
//! comes from, ranks and, where the input shape is known, every layer's
//! shape), and `codegen` writes the model. Everything particular to a kind
//! of layer lives in its file under `layers/`; the steps ask it. Every
//! problem is a `syn::Error` on the offending tokens, and all are reported
//! at once.

mod args;
mod check;
mod codegen;
mod errors;
mod invocation;
mod layers;
mod model;
mod parse;
mod text;
mod values;

#[cfg(test)]
mod tests;

use proc_macro2::TokenStream;
use quote::quote;

use errors::Errors;
use invocation::{Header, Invocation};
use model::{Checked, LayerSpec};

/// Builds a model from a Keras-style chain of layers, or, written
/// `sequential! { pub struct Name = ... }`, declares a named model type.
/// See the `strata` crate's documentation for the grammar.
#[proc_macro]
pub fn sequential(input: proc_macro::TokenStream) -> proc_macro::TokenStream {
    match invocation::parse(input.into()) {
        Ok(Invocation {
            header: None,
            chain,
        }) => expression(chain),
        Ok(Invocation {
            header: Some(header),
            chain,
        }) => item(&header, chain),
        Err(e) => e.to_compile_error(),
    }
    .into()
}

fn expression(chain: TokenStream) -> TokenStream {
    let mut errors = Errors::default();
    let layers = parse::parse_chain(chain, &mut errors);
    match checked(layers, &mut errors) {
        Some(checked) => codegen::expression(&checked),
        None => {
            let errors = errors.to_compile_errors();
            // A value of any type, so that the errors above are the only ones.
            quote!({ #errors ::strata::__macro_support::invalid_model() })
        }
    }
}

fn item(header: &Header, chain: TokenStream) -> TokenStream {
    let mut errors = Errors::default();
    let layers = parse::parse_chain(chain, &mut errors);
    reject_blocks(&layers, &mut errors);
    match checked(layers, &mut errors) {
        Some(checked) => codegen::item(header, &checked),
        None => {
            let stub = codegen::item_stub(header);
            let errors = errors.to_compile_errors();
            quote!(#errors #stub)
        }
    }
}

/// The checked chain, if nothing was reported.
fn checked(layers: Vec<LayerSpec>, errors: &mut Errors) -> Option<Checked> {
    let checked = check::check(layers, errors);
    checked.filter(|_| errors.is_empty())
}

/// A named model's type must be written in full, and the macro cannot see
/// the type of an embedded value.
fn reject_blocks(layers: &[LayerSpec], errors: &mut Errors) {
    for layer in layers {
        if layer.def().and_then(|d| d.embedded()).is_some() {
            errors.push(layer.error(
                "a named model cannot embed `{ block }` layers (the macro cannot name their type); \
                 write its layers in the chain, or embed both models in an anonymous `sequential![...]`",
            ));
        }
    }
}
