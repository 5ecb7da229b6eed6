//! `Conv2D(filters, kernel_size, strides, padding, activation = ...,
//! use_bias = ...)`, Keras's 2-D convolution.

use proc_macro2::TokenStream;
use quote::quote;
use strata_shapes::Padding;
use syn::Expr;

use super::activation::{self, Act};
use super::window::{at_least_one, Window2};
use super::{Entry, InitCx, LayerDef, ShapeCx, TypeCx};
use crate::args::Args;
use crate::model::{Element, Known, Num};
use crate::values;

pub const ENTRIES: &[Entry] = &[Entry {
    names: &["Conv2D", "Convolution2D"],
    listed: &["Conv2D"],
    args: &[
        "filters",
        "kernel_size",
        "strides",
        "padding",
        "activation",
        "use_bias",
        "input_shape",
    ],
    parse,
}];

const USAGE: &str = "Conv2D(filters, kernel_size [, strides] [, padding], ...)";

struct Conv2D {
    filters: Num,
    window: Window2,
    activation: Act,
    use_bias: bool,
}

fn parse(a: &mut Args) -> Element {
    let one = Num::new(1, a.span());
    let filters = a.slot("filters");
    let filters = a.required(filters, &needs("its number of filters"), |e| values::usize(e, "the number of filters"), one);
    let kernel = a.slot("kernel_size");
    let kernel = a.required(kernel, &needs("its kernel size"), |e| values::pair(e, "the kernel size"), (one, one));
    let (strides, padding) = strides_and_padding(a);
    let strides_given = strides.is_some();
    let window = Window2 {
        kernel,
        strides: strides.map_or((one, one), |e| a.read(&e, |e| values::pair(e, "the strides"), (one, one))),
        padding: padding.map_or(Padding::Valid, |e| a.read(&e, values::padding, Padding::Valid)),
    };
    at_least_one(a, filters, "the number of filters");
    window.check(a, "a kernel size", strides_given);
    Element::Layer(Box::new(Conv2D {
        filters,
        window,
        activation: a.optional("activation", activation::read, Act::Linear),
        use_bias: a.optional("use_bias", |e| values::boolean(e, "use_bias"), true),
    }))
}

fn needs(what: &str) -> String {
    format!("Conv2D needs {what}: {USAGE}")
}

/// After the kernel size, Keras's order is strides then padding; the DSL
/// also lets `same`/`valid` come straight after the kernel.
fn strides_and_padding(a: &mut Args) -> (Option<Expr>, Option<Expr>) {
    let mut strides = a.take("strides");
    let mut padding = a.take("padding");
    for extra in a.rest() {
        let slot = if values::is_word(&extra) { &mut padding } else { &mut strides };
        if slot.is_some() {
            a.error(syn::Error::new_spanned(&extra, format!("too many arguments: {USAGE}")));
        } else {
            *slot = Some(extra);
        }
    }
    (strides, padding)
}

impl LayerDef for Conv2D {
    fn field_base(&self) -> &'static str {
        "conv2d"
    }

    fn input_rank(&self) -> Option<usize> {
        Some(3)
    }

    fn output_shape(&self, input: &Known, cx: &ShapeCx) -> syn::Result<Known> {
        self.window.output(input, cx, Some(self.filters.value))
    }

    fn field_type(&self, cx: &TypeCx) -> TokenStream {
        let s = cx.support;
        let (name, input) = (s.name("Conv2D"), cx.input);
        let filters = s.unsigned(self.filters.value);
        let window = self.window.type_args(s);
        let act = self.activation.type_param(s);
        quote!(#name<#input, #filters, #window #act>)
    }

    fn constructor(&self, _: &InitCx) -> TokenStream {
        let use_bias = self.use_bias;
        quote!(Conv2D::new(#use_bias, rng))
    }
}
