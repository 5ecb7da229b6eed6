//! `LeakyReLU | LeakyReLU(negative_slope = a)`: Keras's leaky rectifier
//! layer (default slope 0.3; Keras 2's `alpha = a` is accepted too). The
//! `leaky_relu` activation function (slope 0.2) is in `activation.rs`.

use proc_macro2::{Literal, TokenStream};
use quote::quote;
use syn::Expr;

use super::{Entry, InitCx, LayerDef, ShapeCx, TypeCx};
use crate::args::Args;
use crate::model::{Element, Known};
use crate::text::layer_text;
use crate::values;

pub const ENTRIES: &[Entry] = &[Entry {
    names: &["LeakyReLU"],
    listed: &["LeakyReLU"],
    args: &["negative_slope", "alpha", "input_shape"],
    parse,
}];

/// Keras's default `negative_slope`.
const DEFAULT_SLOPE: f64 = 0.3;

struct LeakyRelu {
    slope: f32,
}

fn parse(a: &mut Args) -> Element {
    let slope = a.slot("negative_slope");
    let alpha = a.take("alpha");
    a.no_more("LeakyReLU(negative_slope = 0.3)");
    let slope = match (slope, alpha) {
        (Some(_), Some(alpha)) => {
            a.error(syn::Error::new_spanned(
                &alpha,
                "`alpha` is Keras 2's name for `negative_slope`; give one of them",
            ));
            return Element::Invalid;
        }
        (Some(e), None) | (None, Some(e)) => e,
        (None, None) => {
            return Element::Layer(Box::new(LeakyRelu {
                slope: DEFAULT_SLOPE as f32,
            }))
        }
    };
    let value = a.read(
        &slope,
        |e| values::number(e, "a negative_slope"),
        DEFAULT_SLOPE,
    );
    check_slope(a, &slope, value);
    Element::Layer(Box::new(LeakyRelu {
        slope: value as f32,
    }))
}

/// Keras's rule (no negative slope) and ours: finite once it is an f32,
/// since the layer holds an f32 (`1e39` is not).
fn check_slope(a: &mut Args, e: &Expr, value: f64) {
    let problem = if !(value as f32).is_finite() {
        "a finite number (as an f32)"
    } else if value < 0.0 {
        "at least 0 (Keras rejects a negative slope)"
    } else {
        return;
    };
    let written = layer_text(&quote!(#e));
    a.error(syn::Error::new_spanned(
        e,
        format!("the negative_slope of LeakyReLU must be {problem}, but it is {written}"),
    ));
}

impl LayerDef for LeakyRelu {
    fn field_base(&self) -> &'static str {
        // Keras's snake case of the class name.
        "leaky_re_lu"
    }

    fn output_shape(&self, input: &Known, _: &ShapeCx) -> syn::Result<Known> {
        Ok(input.clone())
    }

    fn field_type(&self, cx: &TypeCx) -> TokenStream {
        let (name, input) = (cx.support.name("LeakyReLU"), cx.input);
        quote!(#name<#input>)
    }

    fn constructor(&self, _: &InitCx) -> TokenStream {
        let slope = Literal::f32_unsuffixed(self.slope);
        quote!(LeakyReLU::new(#slope).expect("sequential! checked the slope"))
    }
}
