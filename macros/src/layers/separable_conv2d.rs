//! `SeparableConv2D(filters, kernel_size, strides, padding,
//! depth_multiplier = ..., dilation_rate = ..., activation = ...,
//! use_bias = ...)`: a depthwise convolution, then a 1×1 one to `filters`
//! channels with the bias, then the activation.

use proc_macro2::TokenStream;
use quote::quote;

use super::activation::{self, Act};
use super::conv2d::dilation_types;
use super::depthwise_conv2d::Depthwise;
use super::params::{ParamArgs, SEPARABLE};
use super::window::at_least_one;
use super::{Entry, InitCx, LayerDef, ShapeCx, TypeCx};
use crate::args::Args;
use crate::model::{Element, Known, Num};
use crate::values;

pub const ENTRIES: &[Entry] = &[Entry {
    names: &["SeparableConv2D", "SeparableConvolution2D"],
    listed: &["SeparableConv2D"],
    args: &[
        "filters",
        "kernel_size",
        "strides",
        "padding",
        "depth_multiplier",
        "dilation_rate",
        "activation",
        "use_bias",
        "trainable",
        "depthwise_initializer",
        "pointwise_initializer",
        "kernel_initializer",
        "bias_initializer",
        "depthwise_regularizer",
        "pointwise_regularizer",
        "kernel_regularizer",
        "bias_regularizer",
        "input_shape",
    ],
    parse,
}];

const USAGE: &str =
    "SeparableConv2D(filters, kernel_size [, strides] [, padding], depth_multiplier = ..., ...)";

struct SeparableConv2D {
    filters: Num,
    depthwise: Depthwise,
    activation: Act,
    use_bias: bool,
    params: ParamArgs,
}

fn parse(a: &mut Args) -> Element {
    let one = Num::new(1, a.span());
    let needs = |what: &str| format!("SeparableConv2D needs {what}: {USAGE}");
    let filters = a.slot("filters");
    let filters = a.required(
        filters,
        &needs("its number of filters"),
        |e| values::usize(e, "the number of filters"),
        one,
    );
    let kernel = a.slot("kernel_size");
    let kernel = a.required(
        kernel,
        &needs("its kernel size"),
        |e| values::pair(e, "the kernel size"),
        (one, one),
    );
    at_least_one(a, filters, "the number of filters");
    Element::Layer(Box::new(SeparableConv2D {
        filters,
        depthwise: Depthwise::parse(a, kernel, USAGE),
        activation: a.optional("activation", activation::read, Act::Linear),
        use_bias: a.optional("use_bias", |e| values::boolean(e, "use_bias"), true),
        params: ParamArgs::parse(a, SEPARABLE),
    }))
}

impl LayerDef for SeparableConv2D {
    fn field_base(&self) -> &'static str {
        "separable_conv2d"
    }

    fn input_rank(&self) -> Option<usize> {
        Some(3)
    }

    fn output_shape(&self, input: &Known, cx: &ShapeCx) -> syn::Result<Known> {
        self.depthwise.output(input, cx, Some(self.filters.value))
    }

    fn field_type(&self, cx: &TypeCx) -> TokenStream {
        let s = cx.support;
        let (name, input) = (s.name("SeparableConv2D"), cx.input);
        let filters = s.unsigned(self.filters.value);
        let args = self.depthwise.type_args(cx);
        let act = self.activation.type_tokens(s);
        let dilation = dilation_types(s, self.depthwise.dilation);
        quote!(#name<#input, #filters, #args, #act, #dilation>)
    }

    fn constructor(&self, _: &InitCx) -> TokenStream {
        let use_bias = self.use_bias;
        self.params
            .wrap(quote!(SeparableConv2D::new(#use_bias, rng)))
    }
}
