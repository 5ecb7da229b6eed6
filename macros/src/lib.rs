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
///
/// ```
/// use strata::prelude::*;
///
/// // Keras: Sequential([Input((28, 28, 1)), Conv2D(32, 3, activation="relu"), ...])
/// let net = sequential![
///     Input(28, 28, 1)
///     => Conv2D(32, (3, 3), activation = relu) => MaxPooling2D((2, 2))
///     => Conv2D(64, (3, 3), padding = same) => relu => GlobalAveragePooling2D
///     => Dropout(0.5) => Dense(10) => softmax
/// ];
/// let x = Batch::<Shape3<U28, U28, U1>>::zeros(4);
/// let y: Batch<Shape1<U10>> = net.predict(&x); // 4 rows of 10 probabilities
/// assert_eq!(y.dims(), [4, 10]);
///
/// // One public field per layer, Keras's kind and the position in the chain;
/// // the position is also the key prefix in weight files.
/// assert_eq!(net.conv2d_0.kernel().len(), 3 * 3 * 1 * 32);
/// assert_eq!(net.params()[0].name, "0.weight");
/// ```
///
/// The named form declares a type: generic over its input (`Block<S>`)
/// when the chain has no input shape, a plain type when it has one.
///
/// ```
/// use strata::prelude::*;
///
/// sequential! {
///     /// A reusable feature extractor for any image size.
///     pub struct Features = Conv2D(8, (3, 3), same) => relu => MaxPool(2, 2)
/// }
/// sequential! { pub struct Head = Input(4, 4, 8) => Flatten => Dense(10) => softmax }
///
/// // Named types go where types go: fields, return types.
/// fn features() -> Features<Shape3<U8, U8, U1>> {
///     Features::new()
/// }
/// let net = sequential![Input(8, 8, 1) => { features() } => { Head::new() }];
/// assert_eq!(net.predict(&Batch::zeros(1)).dims(), [1, 10]);
/// ```
///
/// The grammar (every layer, its arguments and Keras's defaults), the
/// generated model's structure, training and weight files are in the
/// `strata` crate's documentation.
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
