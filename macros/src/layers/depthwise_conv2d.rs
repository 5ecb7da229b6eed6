//! `DepthwiseConv2D(kernel_size, strides, padding, depth_multiplier = ...,
//! dilation_rate = ..., activation = ..., use_bias = ...)`: each input
//! channel convolved with `depth_multiplier` filters of its own.

use proc_macro2::TokenStream;
use quote::quote;

use super::activation::{self, Act};
use super::conv2d::{dilation, dilation_types, window};
use super::params::{ParamArgs, DEPTHWISE};
use super::window::{at_least_one, Window2};
use super::{Entry, Fusion, InitCx, LayerDef, ShapeCx, TypeCx};
use crate::args::Args;
use crate::model::{Element, Known, Num};
use crate::values;

pub const ENTRIES: &[Entry] = &[Entry {
    names: &["DepthwiseConv2D"],
    listed: &["DepthwiseConv2D"],
    args: &[
        "kernel_size",
        "strides",
        "padding",
        "depth_multiplier",
        "dilation_rate",
        "activation",
        "use_bias",
        "trainable",
        "depthwise_initializer",
        "kernel_initializer",
        "bias_initializer",
        "depthwise_regularizer",
        "kernel_regularizer",
        "bias_regularizer",
        "input_shape",
    ],
    parse,
}];

const USAGE: &str =
    "DepthwiseConv2D(kernel_size [, strides] [, padding], depth_multiplier = ..., ...)";

/// What the depthwise convolutions share: the window, its dilation and the
/// depth multiplier.
pub(super) struct Depthwise {
    pub window: Window2,
    pub dilation: (Num, Num),
    pub multiplier: Num,
}

impl Depthwise {
    /// Reads the window (the kernel size already read), the multiplier and
    /// the dilation, reporting zeros.
    pub fn parse(a: &mut Args, kernel: (Num, Num), usage: &str) -> Depthwise {
        let one = Num::new(1, a.span());
        let (window, strides_given) = window(a, kernel, usage);
        window.check(a, "a kernel size", strides_given);
        let multiplier = a.optional(
            "depth_multiplier",
            |e| values::usize(e, "the depth multiplier"),
            one,
        );
        at_least_one(a, multiplier, "the depth multiplier");
        Depthwise {
            window,
            dilation: dilation(a),
            multiplier,
        }
    }

    /// The output: `filters` channels, or `C·m` for `None`.
    pub fn output(
        &self,
        input: &Known,
        cx: &ShapeCx,
        filters: Option<usize>,
    ) -> syn::Result<Known> {
        let channels = match (filters, input.dims()) {
            (Some(f), _) => f,
            (None, Some(&[_, _, c])) => c * self.multiplier.value,
            (None, _) => 0,
        };
        let dilation = (self.dilation.0.value, self.dilation.1.value);
        self.window
            .output_dilated(input, cx, Some(channels), dilation)
    }

    /// `KH, KW, SH, SW, P, M`: the type arguments before the activation.
    pub fn type_args(&self, cx: &TypeCx) -> TokenStream {
        let window = self.window.type_args(cx.support);
        let m = cx.support.unsigned(self.multiplier.value);
        quote!(#window, #m)
    }
}

struct DepthwiseConv2D {
    depthwise: Depthwise,
    activation: Act,
    use_bias: bool,
    params: ParamArgs,
}

fn parse(a: &mut Args) -> Element {
    let one = Num::new(1, a.span());
    let kernel = a.slot("kernel_size");
    let missing = format!("DepthwiseConv2D needs its kernel size: {USAGE}");
    let kernel = a.required(
        kernel,
        &missing,
        |e| values::pair(e, "the kernel size"),
        (one, one),
    );
    Element::Layer(Box::new(DepthwiseConv2D {
        depthwise: Depthwise::parse(a, kernel, USAGE),
        activation: a.optional("activation", activation::read, Act::Linear),
        use_bias: a.optional("use_bias", |e| values::boolean(e, "use_bias"), true),
        params: ParamArgs::parse(a, DEPTHWISE),
    }))
}

impl LayerDef for DepthwiseConv2D {
    fn field_base(&self) -> &'static str {
        "depthwise_conv2d"
    }

    fn input_rank(&self) -> Option<usize> {
        Some(3)
    }

    fn output_shape(&self, input: &Known, cx: &ShapeCx) -> syn::Result<Known> {
        self.depthwise.output(input, cx, None)
    }

    fn field_type(&self, cx: &TypeCx) -> TokenStream {
        let s = cx.support;
        let (name, input) = (s.name("DepthwiseConv2D"), cx.input);
        let args = self.depthwise.type_args(cx);
        let act = self.activation.type_tokens(s);
        let dilation = dilation_types(s, self.depthwise.dilation);
        quote!(#name<#input, #args, #act, #dilation>)
    }

    fn constructor(&self, _: &InitCx) -> TokenStream {
        let use_bias = self.use_bias;
        self.params
            .wrap(quote!(DepthwiseConv2D::new(#use_bias, rng)))
    }

    fn fusion(&self) -> Fusion {
        Fusion::Head
    }
}
