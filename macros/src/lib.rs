//! The `sequential!` macro of [strata](https://docs.rs/strata). Use it
//! through the `strata` crate, which documents the DSL.
//!
//! The macro works in three steps, one module each: `parse` turns tokens
//! into a typed model of the chain (`model`), `check` verifies it
//! (argument ranges, ranks and, where the input shape is known, every
//! layer's shape), and `codegen` writes the model struct. Every problem is
//! a `syn::Error` on the offending tokens, and all are reported at once.

mod check;
mod codegen;
mod errors;
mod model;
mod parse;

use proc_macro::TokenStream;

/// Builds a model from a Keras-style chain of layers. See the `strata`
/// crate's documentation for the grammar.
#[proc_macro]
pub fn sequential(input: TokenStream) -> TokenStream {
    let mut errors = errors::Errors::default();
    let chain = parse::parse_chain(input.into(), &mut errors);
    let checked = check::check(chain, &mut errors);
    match checked {
        Some(checked) if errors.is_empty() => codegen::generate(checked).into(),
        _ => {
            let errors = errors.to_compile_errors();
            // A value of any type, so that the errors above are the only ones.
            quote::quote!({ #errors ::strata::__macro_support::invalid_model() }).into()
        }
    }
}
