//! The arguments every layer with parameters shares, as Keras's:
//! `trainable = false`, `kernel_initializer = he_normal`,
//! `bias_initializer = zeros`, `kernel_regularizer = l2(0.01)` (with
//! `depthwise_` and `pointwise_` twins for the depthwise convolutions).
//! A layer file lists which of its tensors each name sets; this reads
//! them and wraps the layer's constructor.

use proc_macro2::{Literal, TokenStream};
use quote::quote;
use syn::{Expr, ExprCall};

use crate::args::Args;
use crate::text::{quoted_list, suggest};
use crate::values;

/// Keras's initializer names, as strata-core's `Initializer::NAMES`.
const INITIALIZERS: &[&str] = &[
    "glorot_uniform",
    "glorot_normal",
    "he_uniform",
    "he_normal",
    "lecun_uniform",
    "lecun_normal",
    "zeros",
    "ones",
    "constant",
    "random_normal",
    "random_uniform",
    "truncated_normal",
    "orthogonal",
];

const REGULARIZER_USAGE: &str =
    "a regularizer: `l2(0.01)`, `l1(0.01)` or `l1_l2(l1 = 0.01, l2 = 0.01)`";

/// Which tensors (keys inside the layer: `weight`, `pointwise.bias`) an
/// argument sets.
pub type Targets = &'static [(&'static str, &'static [&'static str])];

/// Conv2D's and Dense's: one kernel, one bias.
pub const KERNEL_AND_BIAS: Targets = &[("kernel", &["weight"]), ("bias", &["bias"])];

/// DepthwiseConv2D's: Keras calls its kernel `depthwise`; `kernel` is
/// accepted too.
pub const DEPTHWISE: Targets = &[
    ("depthwise", &["weight"]),
    ("kernel", &["weight"]),
    ("bias", &["bias"]),
];

/// SeparableConv2D's: its two kernels by Keras's names, or both as
/// `kernel`.
pub const SEPARABLE: Targets = &[
    ("depthwise", &["depthwise.weight"]),
    ("pointwise", &["pointwise.weight"]),
    ("kernel", &["depthwise.weight", "pointwise.weight"]),
    ("bias", &["pointwise.bias"]),
];

/// An initializer read from the layer's arguments: its `Initializer`
/// variant's tokens.
struct Setting {
    keys: &'static [&'static str],
    value: TokenStream,
}

/// `trainable`, the initializers and the regularizers of one layer.
pub struct ParamArgs {
    trainable: bool,
    initializers: Vec<Setting>,
    regularizers: Vec<Setting>,
}

impl ParamArgs {
    /// Reads `trainable` and, for each prefix in `targets`,
    /// `{prefix}_initializer` and `{prefix}_regularizer`.
    pub fn parse(a: &mut Args, targets: Targets) -> ParamArgs {
        let trainable = a.optional("trainable", |e| values::boolean(e, "trainable"), true);
        let mut params = ParamArgs {
            trainable,
            initializers: Vec::new(),
            regularizers: Vec::new(),
        };
        for (prefix, keys) in targets {
            if let Some(e) = a.take(&format!("{prefix}_initializer")) {
                if let Some(value) = a.read(&e, initializer, None) {
                    params.initializers.push(Setting { keys, value });
                }
            }
            if let Some(e) = a.take(&format!("{prefix}_regularizer")) {
                if let Some(value) = a.read(&e, regularizer, None) {
                    params.regularizers.push(Setting { keys, value });
                }
            }
        }
        params
    }

    /// `build`, then the chosen initializers (redrawing the layer from
    /// `rng`), regularizers and freezing.
    pub fn wrap(&self, build: TokenStream) -> TokenStream {
        if self.trainable && self.initializers.is_empty() && self.regularizers.is_empty() {
            return build;
        }
        let support = quote!(::strata::__macro_support);
        let set = |settings: &[Setting], method: TokenStream| {
            let calls = settings.iter().flat_map(|s| {
                let value = &s.value;
                let method = method.clone();
                s.keys
                    .iter()
                    .map(move |k| quote!(layer.#method(#k, ::core::option::Option::Some(#value));))
            });
            quote!(#(#calls)*)
        };
        let inits = set(&self.initializers, quote!(set_initializer));
        let redraw = (!self.initializers.is_empty())
            .then(|| quote!(#support::Layer::initialize(&mut layer, rng);));
        let regs = set(&self.regularizers, quote!(set_regularizer));
        let freeze =
            (!self.trainable).then(|| quote!(#support::Layer::set_trainable(&mut layer, false);));
        quote!({
            let mut layer = #build;
            #inits
            #redraw
            #regs
            #freeze
            layer
        })
    }
}

/// `he_normal`, `"he_normal"`, `HeNormal`, or a call with Keras's
/// arguments: `random_normal(mean = 0.0, stddev = 0.1)`, `constant(0.5)`.
fn initializer(e: &Expr) -> syn::Result<Option<TokenStream>> {
    let (name, args) = match e {
        Expr::Call(call) => (callee(call)?, Some(call)),
        _ => match values::word(e) {
            Some((w, _)) => (w, None),
            None => {
                return Err(syn::Error::new_spanned(
                    e,
                    format!(
                        "expected an initializer, such as `he_normal`: one of {}",
                        quoted_list(INITIALIZERS.iter().copied())
                    ),
                ))
            }
        },
    };
    let canonical = INITIALIZERS.iter().find(|n| squash(n) == squash(&name));
    let Some(&canonical) = canonical else {
        let hint = match suggest(&name, INITIALIZERS.iter().copied()) {
            Some(s) => format!("did you mean `{s}`?"),
            None => format!(
                "Keras's initializers are {}",
                quoted_list(INITIALIZERS.iter().copied())
            ),
        };
        return Err(syn::Error::new_spanned(
            e,
            format!("unknown initializer `{name}`; {hint}"),
        ));
    };
    let init = quote!(::strata::__macro_support::Initializer);
    let numbers = |params: &[&str], defaults: &[f64]| call_numbers(args, params, defaults);
    let lit = float;
    Ok(Some(match canonical {
        "random_normal" | "truncated_normal" => {
            let v = numbers(&["mean", "stddev"], &[0.0, 0.05])?;
            let variant = if canonical == "random_normal" {
                quote!(RandomNormal)
            } else {
                quote!(TruncatedNormal)
            };
            let (mean, stddev) = (lit(v[0]), lit(v[1]));
            quote!(#init::#variant { mean: #mean, stddev: #stddev })
        }
        "random_uniform" => {
            let v = numbers(&["minval", "maxval"], &[-0.05, 0.05])?;
            let (lo, hi) = (lit(v[0]), lit(v[1]));
            quote!(#init::RandomUniform { minval: #lo, maxval: #hi })
        }
        "constant" => {
            let v = lit(numbers(&["value"], &[0.0])?[0]);
            quote!(#init::Constant(#v))
        }
        "orthogonal" => {
            let gain = lit(numbers(&["gain"], &[1.0])?[0]);
            quote!(#init::Orthogonal { gain: #gain })
        }
        other => {
            numbers(&[], &[])?;
            let variant = syn::Ident::new(&camel(other), proc_macro2::Span::call_site());
            quote!(#init::#variant)
        }
    }))
}

/// `l2(0.01)`, `l2` (Keras's default 0.01), `l1(...)`, `l1_l2(l1 = ...,
/// l2 = ...)` (Keras's defaults 0), as class names too (`L2(0.01)`).
fn regularizer(e: &Expr) -> syn::Result<Option<TokenStream>> {
    let (name, args) = match e {
        Expr::Call(call) => (callee(call)?, Some(call)),
        _ => match values::word(e) {
            Some((w, _)) => (w, None),
            None => {
                return Err(syn::Error::new_spanned(
                    e,
                    format!("expected {REGULARIZER_USAGE}"),
                ))
            }
        },
    };
    let (l1, l2) = match squash(&name).as_str() {
        "l1" => (call_numbers(args, &["l1"], &[0.01])?[0], 0.0),
        "l2" => (0.0, call_numbers(args, &["l2"], &[0.01])?[0]),
        "l1l2" => {
            let v = call_numbers(args, &["l1", "l2"], &[0.0, 0.0])?;
            (v[0], v[1])
        }
        _ => {
            let hint = match suggest(&name, ["l1", "l2", "l1_l2"]) {
                Some(s) if s != name => format!("did you mean `{s}`? Expected {REGULARIZER_USAGE}"),
                _ => format!("expected {REGULARIZER_USAGE}"),
            };
            return Err(syn::Error::new_spanned(
                e,
                format!("unknown regularizer `{name}`; {hint}"),
            ));
        }
    };
    if !(l1 >= 0.0 && l2 >= 0.0) {
        return Err(syn::Error::new_spanned(
            e,
            "a regularization factor must be >= 0 (a negative one would reward large weights)",
        ));
    }
    let (l1, l2) = (float(l1), float(l2));
    Ok(Some(
        quote!(::strata::__macro_support::Regularizer { l1: #l1, l2: #l2 }),
    ))
}

/// The function name of `name(...)`.
fn callee(call: &ExprCall) -> syn::Result<String> {
    match &*call.func {
        Expr::Path(p) => p.path.get_ident().map(|i| i.to_string()),
        _ => None,
    }
    .ok_or_else(|| syn::Error::new_spanned(&call.func, "expected a name, as in `l2(0.01)`"))
}

/// The numeric arguments `params` of a call (positional in order, or by
/// name), `defaults` for those not given; no call takes every default.
fn call_numbers(
    call: Option<&ExprCall>,
    params: &[&str],
    defaults: &[f64],
) -> syn::Result<Vec<f64>> {
    let mut out = defaults.to_vec();
    let Some(call) = call else { return Ok(out) };
    let usage = if params.is_empty() {
        "it takes no arguments".to_string()
    } else {
        format!("it takes {}", quoted_list(params.iter().copied()))
    };
    for (i, arg) in call.args.iter().enumerate() {
        let (slot, value) = match arg {
            Expr::Assign(assign) => {
                let name = values::word(&assign.left)
                    .map(|(w, _)| w)
                    .unwrap_or_default();
                let slot = params.iter().position(|p| *p == name).ok_or_else(|| {
                    // `std` for `stddev`: a prefix is as likely a slip.
                    let close = suggest(&name, params.iter().copied()).or_else(|| {
                        let prefix = |p: &&&str| !name.is_empty() && p.starts_with(name.as_str());
                        params.iter().find(prefix).copied()
                    });
                    let hint = match close {
                        Some(s) => format!("did you mean `{s}`?"),
                        None => usage.clone(),
                    };
                    syn::Error::new_spanned(
                        &assign.left,
                        format!("unknown argument `{name}`; {hint}"),
                    )
                })?;
                (slot, &*assign.right)
            }
            positional if i < params.len() => (i, positional),
            extra => {
                return Err(syn::Error::new_spanned(
                    extra,
                    format!("too many arguments; {usage}"),
                ))
            }
        };
        out[slot] = values::number(value, params[slot])?;
    }
    Ok(out)
}

/// An `f32` literal, its minus sign a token of its own.
fn float(v: f64) -> TokenStream {
    let lit = Literal::f32_suffixed(v.abs() as f32);
    if v < 0.0 {
        quote!(-#lit)
    } else {
        quote!(#lit)
    }
}

/// `HeNormal`, `he_normal` and `henormal` are the same name.
fn squash(name: &str) -> String {
    name.chars()
        .filter(|c| *c != '_')
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// `he_normal` -> `HeNormal`.
fn camel(name: &str) -> String {
    name.split('_')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn init(text: &str) -> syn::Result<String> {
        initializer(&syn::parse_str(text).unwrap()).map(|t| t.unwrap().to_string())
    }

    fn reg(text: &str) -> syn::Result<String> {
        regularizer(&syn::parse_str(text).unwrap()).map(|t| t.unwrap().to_string())
    }

    #[test]
    fn initializers_by_name_and_with_arguments() {
        assert!(init("he_normal")
            .unwrap()
            .ends_with("Initializer :: HeNormal"));
        assert!(init("\"GlorotUniform\"")
            .unwrap()
            .ends_with("GlorotUniform"));
        assert!(init("random_normal(stddev = 0.1)")
            .unwrap()
            .contains("stddev : 0.1f32"));
        assert!(init("RandomUniform(-1, 1)")
            .unwrap()
            .contains("minval : - 1f32"));
        let e = init("he_nromal").unwrap_err().to_string();
        assert!(e.contains("did you mean `he_normal`?"), "{e}");
        let e = init("zeros(1)").unwrap_err().to_string();
        assert!(e.contains("too many arguments"), "{e}");
    }

    #[test]
    fn regularizers_by_call() {
        assert!(reg("l2(0.01)")
            .unwrap()
            .contains("l1 : 0f32 , l2 : 0.01f32"));
        assert!(reg("l2").unwrap().contains("l2 : 0.01f32"));
        assert!(reg("l1_l2(l1 = 0.1, l2 = 0.2)")
            .unwrap()
            .contains("l1 : 0.1f32 , l2 : 0.2f32"));
        let e = reg("l3(0.1)").unwrap_err().to_string();
        assert!(e.contains("unknown regularizer `l3`; did you mean"), "{e}");
        assert!(reg("l2(-1)").is_err());
    }
}
