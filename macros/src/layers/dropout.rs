//! `Dropout(rate)`.

use proc_macro2::{Literal, TokenStream};
use quote::quote;

use super::{Entry, InitCx, LayerDef, ShapeCx, TypeCx};
use crate::args::Args;
use crate::model::{Element, Known};
use crate::text::layer_text;
use crate::values;

pub const ENTRIES: &[Entry] = &[Entry {
    names: &["Dropout"],
    listed: &["Dropout"],
    args: &["rate", "input_shape"],
    parse,
}];

struct Dropout {
    rate: f64,
}

fn parse(a: &mut Args) -> Element {
    let rate = a.slot("rate");
    a.no_more("Dropout(rate)");
    let Some(rate) = rate else {
        a.error_at(a.span(), "Dropout needs its rate: `Dropout(0.25)`");
        return Element::Invalid;
    };
    let value = a.read(&rate, |e| values::number(e, "a dropout rate"), 0.0);
    // Keras's range: a rate of 1 would drop everything.
    if !(0.0..1.0).contains(&value) {
        let written = layer_text(&quote!(#rate));
        a.error(syn::Error::new_spanned(
            &rate,
            format!("a Dropout rate must be in [0, 1), but it is {written}"),
        ));
    }
    Element::Layer(Box::new(Dropout { rate: value }))
}

impl LayerDef for Dropout {
    fn field_base(&self) -> &'static str {
        "dropout"
    }

    fn output_shape(&self, input: &Known, _: &ShapeCx) -> syn::Result<Known> {
        Ok(input.clone())
    }

    fn field_type(&self, cx: &TypeCx) -> TokenStream {
        let (name, input) = (cx.support.name("Dropout"), cx.input);
        quote!(#name<#input>)
    }

    fn constructor(&self, _: &InitCx) -> TokenStream {
        let rate = Literal::f32_unsuffixed(self.rate as f32);
        quote!(Dropout::new(#rate).expect("sequential! checked the rate"))
    }
}
