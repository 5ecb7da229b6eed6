//! `Dense(units, activation = ..., use_bias = ...)`, acting on the last
//! axis as in Keras.

use proc_macro2::TokenStream;
use quote::quote;

use super::activation::{self, Act};
use super::params::{ParamArgs, KERNEL_AND_BIAS};
use super::window::at_least_one;
use super::{Entry, InitCx, LayerDef, ShapeCx, TypeCx};
use crate::args::Args;
use crate::model::{Element, Known, Num};
use crate::values;

pub const ENTRIES: &[Entry] = &[Entry {
    names: &["Dense"],
    listed: &["Dense"],
    args: &[
        "units",
        "activation",
        "use_bias",
        "trainable",
        "kernel_initializer",
        "bias_initializer",
        "kernel_regularizer",
        "bias_regularizer",
        "input_shape",
    ],
    parse,
}];

struct Dense {
    units: Num,
    activation: Act,
    use_bias: bool,
    params: ParamArgs,
}

fn parse(a: &mut Args) -> Element {
    let units = a.slot("units");
    a.no_more("Dense(units, activation = ..., use_bias = ...)");
    let missing = "Dense needs its number of units: `Dense(10)`";
    let one = Num::new(1, a.span());
    let units = a.required(
        units,
        missing,
        |e| values::usize(e, "the number of units"),
        one,
    );
    at_least_one(a, units, "the number of units");
    Element::Layer(Box::new(Dense {
        units,
        activation: a.optional("activation", activation::read, Act::Linear),
        use_bias: a.optional("use_bias", |e| values::boolean(e, "use_bias"), true),
        params: ParamArgs::parse(a, KERNEL_AND_BIAS),
    }))
}

impl LayerDef for Dense {
    fn field_base(&self) -> &'static str {
        "dense"
    }

    fn output_shape(&self, input: &Known, _: &ShapeCx) -> syn::Result<Known> {
        Ok(match input {
            Known::Dims(d) => Known::Dims(strata_shapes::dense_output(d, self.units.value)),
            other => other.clone(),
        })
    }

    fn field_type(&self, cx: &TypeCx) -> TokenStream {
        let s = cx.support;
        let (name, input) = (s.name("Dense"), cx.input);
        let units = s.unsigned(self.units.value);
        let act = self.activation.type_param(s);
        quote!(#name<#input, #units #act>)
    }

    fn constructor(&self, cx: &InitCx) -> TokenStream {
        let use_bias = self.use_bias;
        let init = quote!(Dense::new(#use_bias, rng));
        let init = match (cx.prev.map(|p| p.field_base()), cx.prev_input) {
            // Weight files hold this layer's in-features in PyTorch's
            // (C, H, W) flatten order (a reshape to a vector too; the layer
            // ignores it for any other reshape).
            (Some("flatten" | "reshape"), Some(flattened)) => {
                quote!(#init.follows_flatten_of(<#flattened as Shape>::DIMS))
            }
            _ => init,
        };
        self.params.wrap(init)
    }
}
