//! `BatchNormalization(axis = -1, momentum = 0.99, epsilon = 0.001,
//! center = true, scale = true)`, Keras's batch normalisation over the
//! channels.

use proc_macro2::{Literal, TokenStream};
use quote::quote;
use syn::Expr;

use super::params::ParamArgs;
use super::{Entry, Fusion, InitCx, LayerDef, ShapeCx, TypeCx};
use crate::args::Args;
use crate::model::{Element, Known};
use crate::text::layer_text;
use crate::values;

pub const ENTRIES: &[Entry] = &[Entry {
    names: &["BatchNormalization", "BatchNorm"],
    listed: &["BatchNormalization"],
    args: &[
        "axis",
        "momentum",
        "epsilon",
        "center",
        "scale",
        "trainable",
        "input_shape",
    ],
    parse,
}];

const USAGE: &str =
    "BatchNormalization(axis = -1, momentum = 0.99, epsilon = 0.001, center = true, scale = true)";

struct BatchNormalization {
    momentum: f64,
    epsilon: f64,
    center: bool,
    scale: bool,
    params: ParamArgs,
}

/// Keras's order: axis, momentum, epsilon, center, scale.
fn parse(a: &mut Args) -> Element {
    let axis = a.slot("axis");
    let momentum = a.slot("momentum");
    let epsilon = a.slot("epsilon");
    let center = a.slot("center");
    let scale = a.slot("scale");
    a.no_more(USAGE);
    if let Some(axis) = axis {
        check_axis(a, &axis);
    }
    let momentum = number_in(
        a,
        momentum,
        "momentum",
        0.99,
        |m| (0.0..=1.0).contains(&m),
        "must be in [0, 1]",
    );
    let epsilon = number_in(a, epsilon, "epsilon", 1e-3, |e| e > 0.0, "must be positive");
    let mut flag = |e: Option<Expr>, what: &str| {
        e.is_none_or(|e| a.read(&e, |e| values::boolean(e, what), true))
    };
    let (center, scale) = (flag(center, "center"), flag(scale, "scale"));
    Element::Layer(Box::new(BatchNormalization {
        momentum,
        epsilon,
        center,
        scale,
        // Only `trainable`: Keras's gamma and beta initializers are not
        // taken.
        params: ParamArgs::parse(a, &[]),
    }))
}

/// Only the channels (Keras's default `axis = -1`, or the index of the
/// last axis written out) can be normalised over.
fn check_axis(a: &mut Args, axis: &Expr) {
    let value = a.read(axis, |e| values::number(e, "an axis"), -1.0);
    if value != -1.0 && value != 3.0 {
        let written = layer_text(&quote!(#axis));
        a.error(syn::Error::new_spanned(
            axis,
            format!(
                "BatchNormalization normalises over the channels, the last axis (`axis = -1`), \
                 but `axis = {written}` was given; strata's samples are channels last"
            ),
        ));
    }
}

/// The value of `e` (or `default`), reporting it in words unless `ok`.
fn number_in(
    a: &mut Args,
    e: Option<Expr>,
    what: &str,
    default: f64,
    ok: impl Fn(f64) -> bool,
    rule: &str,
) -> f64 {
    let Some(e) = e else { return default };
    let value = a.read(&e, |e| values::number(e, what), default);
    if !ok(value) {
        let written = layer_text(&quote!(#e));
        a.error(syn::Error::new_spanned(
            &e,
            format!("BatchNormalization's {what} {rule}, but it is {written}"),
        ));
    }
    value
}

impl LayerDef for BatchNormalization {
    fn field_base(&self) -> &'static str {
        "batch_normalization"
    }

    fn output_shape(&self, input: &Known, _: &ShapeCx) -> syn::Result<Known> {
        Ok(input.clone())
    }

    fn field_type(&self, cx: &TypeCx) -> TokenStream {
        let (name, input) = (cx.support.name("BatchNormalization"), cx.input);
        quote!(#name<#input>)
    }

    fn constructor(&self, _: &InitCx) -> TokenStream {
        let momentum = Literal::f32_unsuffixed(self.momentum as f32);
        let epsilon = Literal::f32_unsuffixed(self.epsilon as f32);
        let (center, scale) = (self.center, self.scale);
        self.params.wrap(
            quote!(BatchNormalization::new(#momentum, #epsilon, #center, #scale)
                .expect("sequential! checked the momentum and epsilon")),
        )
    }

    fn fusion(&self) -> Fusion {
        Fusion::Tail
    }
}
