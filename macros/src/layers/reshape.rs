//! `Reshape((h, w, c))` or `Reshape((n,))`: the same values under another
//! sample shape, row-major over the channels-last layout.

use proc_macro2::TokenStream;
use quote::quote;

use super::{Entry, InitCx, LayerDef, ShapeCx, TypeCx};
use crate::args::Args;
use crate::model::{Dims, Element, Known};
use crate::values;

pub const ENTRIES: &[Entry] = &[Entry {
    names: &["Reshape"],
    listed: &["Reshape"],
    args: &["target_shape", "input_shape"],
    parse,
}];

const USAGE: &str = "Reshape((height, width, channels)) or Reshape((features,))";

pub struct Reshape(Dims);

fn parse(a: &mut Args) -> Element {
    let target = a.slot("target_shape");
    a.no_more(USAGE);
    let missing = format!("Reshape needs its target shape: {USAGE}");
    let Some((dims, span)) = a.required(target, &missing, |e| values::shape(e).map(Some), None)
    else {
        return Element::Invalid;
    };
    let problem = match dims.len() {
        1 | 3 if dims.contains(&0) => Some("every dimension of the target shape must be at least 1".to_string()),
        1 | 3 => None,
        n => Some(format!(
            "a target shape is (height, width, channels) or (features,), but this one has {n} dimensions"
        )),
    };
    if let Some(message) = problem {
        a.error_at(span, message);
        return Element::Invalid;
    }
    Element::Layer(Box::new(Reshape(dims)))
}

fn count(dims: &[usize]) -> usize {
    dims.iter().product()
}

impl LayerDef for Reshape {
    fn field_base(&self) -> &'static str {
        "reshape"
    }

    fn output_shape(&self, input: &Known, cx: &ShapeCx) -> syn::Result<Known> {
        match input.dims() {
            Some(d) if count(d) != count(&self.0) => Err(cx.error(format!(
                "{} needs {} values per sample, but {} ({} values): a reshape keeps the number of values",
                cx.text(),
                count(&self.0),
                cx.source(input),
                count(d),
            ))),
            _ => Ok(Known::Dims(self.0.clone())),
        }
    }

    fn field_type(&self, cx: &TypeCx) -> TokenStream {
        let s = cx.support;
        let (name, input, target) = (s.name("Reshape"), cx.input, s.shape(&self.0));
        quote!(#name<#input, #target>)
    }

    fn constructor(&self, _: &InitCx) -> TokenStream {
        quote!(Reshape::new())
    }
}
