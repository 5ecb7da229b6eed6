//! `Conv2D(filters, kernel_size, strides, padding, dilation_rate = ...,
//! groups = ..., activation = ..., use_bias = ...)`, Keras's 2-D
//! convolution, and what the other convolutions share with it.

use proc_macro2::TokenStream;
use quote::quote;
use strata_shapes::Padding;
use syn::Expr;

use super::activation::{self, Act};
use super::params::{ParamArgs, KERNEL_AND_BIAS};
use super::window::{at_least_one, Window2};
use super::{Entry, Fusion, InitCx, LayerDef, ShapeCx, TypeCx};
use crate::args::Args;
use crate::codegen::types::Support;
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
        "dilation_rate",
        "groups",
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

const USAGE: &str = "Conv2D(filters, kernel_size [, strides] [, padding], ...)";

struct Conv2D {
    filters: Num,
    window: Window2,
    dilation: (Num, Num),
    groups: Num,
    activation: Act,
    use_bias: bool,
    params: ParamArgs,
}

fn parse(a: &mut Args) -> Element {
    let one = Num::new(1, a.span());
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
    let (window, strides_given) = window(a, kernel, USAGE);
    at_least_one(a, filters, "the number of filters");
    window.check(a, "a kernel size", strides_given);
    let dilation = dilation(a);
    let groups = a.optional("groups", |e| values::usize(e, "the number of groups"), one);
    at_least_one(a, groups, "the number of groups");
    if groups.value > 0 && !filters.value.is_multiple_of(groups.value) {
        a.error_at(
            groups.span,
            format!(
                "groups = {} does not divide the {} filters: each group needs as many filters as the others (use a multiple of {} filters)",
                groups.value, filters.value, groups.value
            ),
        );
    }
    Element::Layer(Box::new(Conv2D {
        filters,
        window,
        dilation,
        groups,
        activation: a.optional("activation", activation::read, Act::Linear),
        use_bias: a.optional("use_bias", |e| values::boolean(e, "use_bias"), true),
        params: ParamArgs::parse(a, KERNEL_AND_BIAS),
    }))
}

fn needs(what: &str) -> String {
    format!("Conv2D needs {what}: {USAGE}")
}

/// The window of a convolution whose kernel size was read: strides and
/// padding (after the kernel in either order, or by name), and whether the
/// strides were written (for [`Window2::check`]).
pub(super) fn window(a: &mut Args, kernel: (Num, Num), usage: &str) -> (Window2, bool) {
    let one = Num::new(1, a.span());
    let (strides, padding) = strides_and_padding(a, usage);
    let strides_given = strides.is_some();
    let window = Window2 {
        kernel,
        strides: strides.map_or((one, one), |e| {
            a.read(&e, |e| values::pair(e, "the strides"), (one, one))
        }),
        padding: padding.map_or(Padding::Valid, |e| {
            a.read(&e, values::padding, Padding::Valid)
        }),
    };
    (window, strides_given)
}

/// `dilation_rate = d` or `(dh, dw)`, 1 when absent; each at least 1.
pub(super) fn dilation(a: &mut Args) -> (Num, Num) {
    let one = Num::new(1, a.span());
    let d = a.optional(
        "dilation_rate",
        |e| values::pair(e, "the dilation rate"),
        (one, one),
    );
    for n in [d.0, d.1] {
        at_least_one(a, n, "a dilation rate");
    }
    d
}

/// After the kernel size, Keras's order is strides then padding; the DSL
/// also lets `same`/`valid` come straight after the kernel.
fn strides_and_padding(a: &mut Args, usage: &str) -> (Option<Expr>, Option<Expr>) {
    let mut strides = a.take("strides");
    let mut padding = a.take("padding");
    for extra in a.rest() {
        let slot = if values::is_word(&extra) {
            &mut padding
        } else {
            &mut strides
        };
        if slot.is_some() {
            a.error(syn::Error::new_spanned(
                &extra,
                format!("too many arguments: {usage}"),
            ));
        } else {
            *slot = Some(extra);
        }
    }
    (strides, padding)
}

/// `DH, DW`: the dilation type arguments.
pub(super) fn dilation_types(s: &Support, (dh, dw): (Num, Num)) -> TokenStream {
    let (dh, dw) = (s.unsigned(dh.value), s.unsigned(dw.value));
    quote!(#dh, #dw)
}

impl LayerDef for Conv2D {
    fn field_base(&self) -> &'static str {
        "conv2d"
    }

    fn input_rank(&self) -> Option<usize> {
        Some(3)
    }

    fn output_shape(&self, input: &Known, cx: &ShapeCx) -> syn::Result<Known> {
        let g = self.groups.value;
        if let Some(&[_, _, c]) = input.dims() {
            if g > 0 && !c.is_multiple_of(g) {
                return Err(cx.error(format!(
                    "{} splits its input channels into {g} groups, but {}: {c} channels do not split into {g} equal groups (groups must divide the input channels)",
                    cx.text(),
                    cx.source(input),
                )));
            }
        }
        let dilation = (self.dilation.0.value, self.dilation.1.value);
        self.window
            .output_dilated(input, cx, Some(self.filters.value), dilation)
    }

    fn field_type(&self, cx: &TypeCx) -> TokenStream {
        let s = cx.support;
        let (name, input) = (s.name("Conv2D"), cx.input);
        let filters = s.unsigned(self.filters.value);
        let window = self.window.type_args(s);
        let plain = (
            self.dilation.0.value,
            self.dilation.1.value,
            self.groups.value,
        ) == (1, 1, 1);
        if plain {
            let act = self.activation.type_param(s);
            return quote!(#name<#input, #filters, #window #act>);
        }
        let act = self.activation.type_tokens(s);
        let dilation = dilation_types(s, self.dilation);
        let groups = s.unsigned(self.groups.value);
        quote!(#name<#input, #filters, #window, #act, #dilation, #groups>)
    }

    fn constructor(&self, _: &InitCx) -> TokenStream {
        let use_bias = self.use_bias;
        self.params.wrap(quote!(Conv2D::new(#use_bias, rng)))
    }

    fn fusion(&self) -> Fusion {
        Fusion::Head
    }
}
