//! `Flatten`: a sample becomes a vector of all its values.

use proc_macro2::TokenStream;
use quote::quote;

use super::{Entry, InitCx, LayerDef, ShapeCx, TypeCx};
use crate::args::Args;
use crate::model::{Element, Known};

pub const ENTRIES: &[Entry] = &[Entry {
    names: &["Flatten"],
    listed: &["Flatten"],
    args: &["input_shape"],
    parse,
}];

pub struct Flatten;

fn parse(a: &mut Args) -> Element {
    a.no_more("Flatten takes no arguments");
    Element::Layer(Box::new(Flatten))
}

impl LayerDef for Flatten {
    fn field_base(&self) -> &'static str {
        "flatten"
    }

    fn output_shape(&self, input: &Known, _: &ShapeCx) -> syn::Result<Known> {
        Ok(input.then(1, |d| vec![strata_shapes::flatten_output(d)]))
    }

    fn field_type(&self, cx: &TypeCx) -> TokenStream {
        let (name, input) = (cx.support.name("Flatten"), cx.input);
        quote!(#name<#input>)
    }

    fn constructor(&self, _: &InitCx) -> TokenStream {
        quote!(Flatten::new())
    }
}
