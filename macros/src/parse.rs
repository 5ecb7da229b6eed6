//! From tokens to the typed [`Chain`]: syntax, layer names, argument names
//! and argument types. Every problem found becomes a `syn::Error` on the
//! offending tokens; all of them are reported together.

use proc_macro2::{Delimiter, Spacing, Span, TokenStream, TokenTree};
use quote::ToTokens;
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Expr, ExprLit, Ident, Lit, Token, UnOp};

use crate::errors::Errors;
use crate::model::{Act, Chain, Dims, LayerKind, LayerSpec, Num, Padding};

/// Every layer name the DSL knows, for messages and suggestions.
const LAYER_NAMES: &[&str] = &[
    "Input",
    "Conv2D",
    "Convolution2D",
    "MaxPool",
    "MaxPooling2D",
    "MaxPool2D",
    "AvgPool",
    "AveragePooling2D",
    "AvgPool2D",
    "Dropout",
    "Flatten",
    "Dense",
    "Activation",
    "ReLU",
    "Softmax",
    "relu",
    "sigmoid",
    "tanh",
    "softmax",
    "linear",
];

/// Splits the input at top-level `=>` and parses each layer.
pub fn parse_chain(input: TokenStream, errors: &mut Errors) -> Chain {
    let mut segments: Vec<Vec<TokenTree>> = vec![Vec::new()];
    let mut arrows: Vec<Span> = Vec::new();
    let mut tokens = input.into_iter().peekable();
    while let Some(tt) = tokens.next() {
        if let TokenTree::Punct(p) = &tt {
            if p.as_char() == '=' && p.spacing() == Spacing::Joint {
                if let Some(TokenTree::Punct(q)) = tokens.peek() {
                    if q.as_char() == '>' {
                        arrows.push(p.span());
                        tokens.next();
                        segments.push(Vec::new());
                        continue;
                    }
                }
            }
        }
        segments.last_mut().expect("never empty").push(tt);
    }

    let mut layers = Vec::new();
    for (i, segment) in segments.into_iter().enumerate() {
        if segment.is_empty() {
            let span = if i == 0 {
                arrows.first().copied().unwrap_or_else(Span::call_site)
            } else {
                arrows[i - 1]
            };
            let msg = if arrows.is_empty() {
                "sequential! needs at least one layer, e.g. `sequential![Input(28, 28, 1) => Flatten => Dense(10)]`"
            } else {
                "expected a layer on this side of `=>`"
            };
            errors.push(syn::Error::new(span, msg));
            continue;
        }
        let tokens: TokenStream = segment.into_iter().collect();
        let layer = match syn::parse2::<RawLayer>(tokens.clone()) {
            Ok(raw) => interpret(raw, tokens.clone(), errors),
            Err(e) => {
                errors.push(e);
                None
            }
        };
        layers.push(layer.unwrap_or_else(|| LayerSpec {
            kind: LayerKind::Invalid,
            text: layer_text(&tokens),
            tokens,
            input_shape: None,
        }));
    }
    Chain { layers }
}

/// A layer before its name and arguments are understood.
enum RawLayer {
    Named {
        name: Ident,
        args: Option<Punctuated<Expr, Token![,]>>,
    },
    Block(Expr),
}

impl Parse for RawLayer {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        if input.peek(syn::token::Brace) {
            let block: syn::ExprBlock = input.parse()?;
            return Ok(RawLayer::Block(Expr::Block(block)));
        }
        let name: Ident = input.parse().map_err(|e| {
            syn::Error::new(
                e.span(),
                "expected a layer, such as `Conv2D(32, (3, 3))`, `relu` or `{ block }`",
            )
        })?;
        let args = if input.peek(syn::token::Paren) {
            let content;
            syn::parenthesized!(content in input);
            Some(Punctuated::parse_terminated(&content)?)
        } else {
            None
        };
        if !input.is_empty() {
            return Err(input.error("expected `=>` between layers"));
        }
        Ok(RawLayer::Named { name, args })
    }
}

/// `Conv2D (8 , (3 , 3))` -> `Conv2D(8, (3, 3))`: the layer as a person
/// writes it, for messages.
fn layer_text(tokens: &TokenStream) -> String {
    let mut s = String::new();
    write_tokens(tokens.clone(), &mut s);
    s
}

fn write_tokens(tokens: TokenStream, out: &mut String) {
    let mut prev_ident = false;
    for tt in tokens {
        match tt {
            TokenTree::Group(g) => {
                let (open, close) = match g.delimiter() {
                    Delimiter::Parenthesis => ("(", ")"),
                    Delimiter::Bracket => ("[", "]"),
                    Delimiter::Brace => ("{ ", " }"),
                    Delimiter::None => ("", ""),
                };
                out.push_str(open);
                write_tokens(g.stream(), out);
                out.push_str(close);
                prev_ident = true;
            }
            TokenTree::Punct(p) => {
                match p.as_char() {
                    ',' => out.push_str(", "),
                    '=' => out.push_str(" = "),
                    c => out.push(c),
                }
                prev_ident = false;
            }
            other => {
                if prev_ident {
                    out.push(' ');
                }
                out.push_str(&other.to_string());
                prev_ident = true;
            }
        }
    }
}

/// Closest known layer name, if it is a likely typo.
fn suggest(name: &str) -> Option<&'static str> {
    let lower = name.to_ascii_lowercase();
    LAYER_NAMES
        .iter()
        .map(|n| (edit_distance(&lower, &n.to_ascii_lowercase()), *n))
        .filter(|(d, _)| *d <= 2)
        .min()
        .map(|(_, n)| n)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The arguments of one layer, split into positional and named.
struct Args {
    layer: String,
    positional: Vec<Expr>,
    named: Vec<(Ident, Expr)>,
}

impl Args {
    fn new(layer: &str, raw: Option<Punctuated<Expr, Token![,]>>, errors: &mut Errors) -> Args {
        let mut args = Args {
            layer: layer.to_string(),
            positional: Vec::new(),
            named: Vec::new(),
        };
        for expr in raw.into_iter().flatten() {
            match expr {
                Expr::Assign(a) => match &*a.left {
                    Expr::Path(p) if p.path.get_ident().is_some() => {
                        let ident = p.path.get_ident().expect("checked").clone();
                        if args.named.iter().any(|(n, _)| *n == ident) {
                            errors.push(syn::Error::new(
                                ident.span(),
                                format!("argument `{ident}` is given twice"),
                            ));
                        } else {
                            args.named.push((ident, *a.right));
                        }
                    }
                    other => errors.push(syn::Error::new_spanned(
                        other,
                        "expected an argument name, as in `padding = same`",
                    )),
                },
                e => {
                    if let Some((name, _)) = args.named.first() {
                        errors.push(syn::Error::new_spanned(
                            &e,
                            format!("positional argument after the named argument `{name}`"),
                        ));
                    } else {
                        args.positional.push(e);
                    }
                }
            }
        }
        args
    }

    /// Reports named arguments outside `known`; returns whether all were known.
    fn check_names(&self, known: &[&str], errors: &mut Errors) -> bool {
        let mut ok = true;
        for (name, _) in &self.named {
            if !known.contains(&name.to_string().as_str()) {
                ok = false;
                errors.push(syn::Error::new(
                    name.span(),
                    format!(
                        "unknown argument `{name}` for {}; it takes {}",
                        self.layer,
                        known
                            .iter()
                            .map(|k| format!("`{k}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            }
        }
        ok
    }

    /// Removes and returns the named argument `name`.
    fn take(&mut self, name: &str) -> Option<Expr> {
        let i = self.named.iter().position(|(n, _)| n == name)?;
        Some(self.named.remove(i).1)
    }

    /// Reports positional arguments past the first `max`.
    fn check_positional(&self, max: usize, usage: &str, errors: &mut Errors) {
        for extra in self.positional.iter().skip(max) {
            errors.push(syn::Error::new_spanned(
                extra,
                format!("too many arguments for {}: {usage}", self.layer),
            ));
        }
    }

    /// A value given both by position and by name.
    fn duplicate(&self, errors: &mut Errors, name: &str, by_name: &Option<Expr>, by_pos: bool) {
        if let (Some(e), true) = (by_name, by_pos) {
            errors.push(syn::Error::new_spanned(
                e,
                format!(
                    "`{name}` of {} is given both by position and by name",
                    self.layer
                ),
            ));
        }
    }
}

/// Strips `( x )` around a single value.
fn unparen(e: &Expr) -> &Expr {
    match e {
        Expr::Paren(p) => unparen(&p.expr),
        Expr::Group(g) => unparen(&g.expr),
        other => other,
    }
}

fn expect_usize(e: &Expr, what: &str) -> syn::Result<Num> {
    match unparen(e) {
        Expr::Lit(ExprLit {
            lit: Lit::Int(i), ..
        }) => Ok(Num {
            value: i.base10_parse::<usize>()?,
            span: i.span(),
        }),
        other => Err(syn::Error::new_spanned(
            other,
            format!("expected {what}: a non-negative integer"),
        )),
    }
}

/// `3` means `(3, 3)`, as in Keras; `(3, 2)` is itself.
fn expect_pair(e: &Expr, what: &str) -> syn::Result<(Num, Num)> {
    match unparen(e) {
        Expr::Tuple(t) if t.elems.len() == 2 => Ok((
            expect_usize(&t.elems[0], what)?,
            expect_usize(&t.elems[1], what)?,
        )),
        Expr::Lit(_) => {
            let n = expect_usize(e, what)?;
            Ok((n, n))
        }
        other => Err(syn::Error::new_spanned(
            other,
            format!("expected {what}: an integer or a pair such as (3, 3)"),
        )),
    }
}

/// A bare word or a string: `same`, `"same"`.
fn word(e: &Expr) -> Option<(String, Span)> {
    match unparen(e) {
        Expr::Path(p) => p.path.get_ident().map(|i| (i.to_string(), i.span())),
        Expr::Lit(ExprLit {
            lit: Lit::Str(s), ..
        }) => Some((s.value(), s.span())),
        _ => None,
    }
}

fn is_word(e: &Expr) -> bool {
    word(e).is_some()
}

fn expect_padding(e: &Expr) -> syn::Result<Padding> {
    match word(e) {
        Some((w, _)) if w.eq_ignore_ascii_case("same") => Ok(Padding::Same),
        Some((w, _)) if w.eq_ignore_ascii_case("valid") => Ok(Padding::Valid),
        Some((w, _)) if Act::from_name(&w).is_some() => Err(syn::Error::new_spanned(
            e,
            format!("expected a padding: `same` or `valid`; to set the activation write `activation = {w}`"),
        )),
        _ => Err(syn::Error::new_spanned(
            e,
            "expected a padding: `same` or `valid`",
        )),
    }
}

fn expect_activation(e: &Expr) -> syn::Result<Act> {
    let known = || {
        Act::ALL
            .iter()
            .map(|(n, _)| format!("`{n}`"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    match word(e) {
        // Keras's `activation=None` is the identity.
        Some((w, _)) if w == "None" => Ok(Act::Linear),
        Some((w, span)) => Act::from_name(&w).ok_or_else(|| {
            syn::Error::new(
                span,
                format!("unknown activation `{w}`; expected one of {}", known()),
            )
        }),
        None => Err(syn::Error::new_spanned(
            e,
            format!("expected an activation: one of {}", known()),
        )),
    }
}

fn expect_bool(e: &Expr, what: &str) -> syn::Result<bool> {
    match unparen(e) {
        Expr::Lit(ExprLit {
            lit: Lit::Bool(b), ..
        }) => Ok(b.value),
        other => Err(syn::Error::new_spanned(
            other,
            format!("expected `true` or `false` for {what}"),
        )),
    }
}

/// A rate as a number, keeping a leading minus so that the range check can
/// say what was written.
fn expect_number(e: &Expr, what: &str) -> syn::Result<(f64, Span)> {
    let e = unparen(e);
    let err = || syn::Error::new_spanned(e, format!("expected {what}: a number such as 0.25"));
    match e {
        Expr::Lit(ExprLit {
            lit: Lit::Float(f), ..
        }) => Ok((f.base10_parse::<f64>()?, f.span())),
        Expr::Lit(ExprLit {
            lit: Lit::Int(i), ..
        }) => Ok((i.base10_parse::<f64>()?, i.span())),
        Expr::Unary(u) if matches!(u.op, UnOp::Neg(_)) => {
            let (v, _) = expect_number(&u.expr, what).map_err(|_| err())?;
            Ok((-v, e.span()))
        }
        _ => Err(err()),
    }
}

/// `(32, 32, 3)`, `(10,)` or `10`.
fn expect_shape(e: &Expr) -> syn::Result<Dims> {
    match unparen(e) {
        Expr::Tuple(t) => t
            .elems
            .iter()
            .map(|d| expect_usize(d, "a dimension").map(|n| n.value))
            .collect(),
        Expr::Lit(_) => Ok(vec![expect_usize(e, "a dimension")?.value]),
        other => Err(syn::Error::new_spanned(
            other,
            "expected a shape: (height, width, channels) or (features,)",
        )),
    }
}

/// Records `r`'s error and gives `fallback` so that checking can go on.
fn or_report<T>(r: syn::Result<T>, fallback: T, errors: &mut Errors) -> T {
    r.unwrap_or_else(|e| {
        errors.push(e);
        fallback
    })
}

const ONE: fn(Span) -> Num = |span| Num { value: 1, span };

fn interpret(raw: RawLayer, tokens: TokenStream, errors: &mut Errors) -> Option<LayerSpec> {
    let text = layer_text(&tokens);
    let (name, raw_args) = match raw {
        RawLayer::Block(expr) => {
            return Some(LayerSpec {
                kind: LayerKind::Block(expr),
                text,
                tokens,
                input_shape: None,
            })
        }
        RawLayer::Named { name, args } => (name, args),
    };
    let name_str = name.to_string();
    let span = name.span();
    let has_args = raw_args.is_some();
    let mut a = Args::new(&name_str, raw_args, errors);
    let mut input_shape = None;
    if let Some(e) = a.take("input_shape") {
        let shape = or_report(expect_shape(&e), Vec::new(), errors);
        if !shape.is_empty() {
            input_shape = Some((shape, e.span()));
        }
    }

    let kind = match name_str.as_str() {
        "Input" | "InputLayer" => {
            a.check_names(&["shape"], errors);
            let shape = match (a.take("shape"), a.positional.as_slice()) {
                (Some(e), []) => or_report(expect_shape(&e), Vec::new(), errors),
                (None, [one]) => or_report(expect_shape(one), Vec::new(), errors),
                (None, dims) if dims.len() == 3 => dims
                    .iter()
                    .map(|d| or_report(expect_usize(d, "a dimension").map(|n| n.value), 1, errors))
                    .collect(),
                _ => {
                    errors.push(syn::Error::new_spanned(
                        &tokens,
                        format!(
                            "Input takes a sample shape: `Input(height, width, channels)` or `Input(features)`, but {} values were given",
                            a.positional.len()
                        ),
                    ));
                    Vec::new()
                }
            };
            if !shape.is_empty() {
                input_shape = Some((shape, tokens.span()));
            }
            LayerKind::Input
        }
        "Conv2D" | "Convolution2D" => {
            a.check_names(
                &[
                    "filters",
                    "kernel_size",
                    "strides",
                    "padding",
                    "activation",
                    "use_bias",
                    "input_shape",
                ],
                errors,
            );
            let usage = "Conv2D(filters, kernel_size [, strides] [, padding], ...)";
            let filters_named = a.take("filters");
            let kernel_named = a.take("kernel_size");
            a.duplicate(errors, "filters", &filters_named, !a.positional.is_empty());
            a.duplicate(errors, "kernel_size", &kernel_named, a.positional.len() > 1);
            let mut strides = a.take("strides");
            let mut padding = a.take("padding");
            let positional = a.positional.clone();
            let mut pos = positional.iter();
            let filters = filters_named.as_ref().or_else(|| pos.next());
            let kernel = kernel_named.as_ref().or_else(|| pos.next());
            // After the kernel size, Keras's order is strides then padding;
            // the DSL also lets `same`/`valid` come straight after the kernel.
            for extra in pos {
                let slot = if is_word(extra) {
                    &mut padding
                } else {
                    &mut strides
                };
                if slot.is_some() {
                    errors.push(syn::Error::new_spanned(
                        extra,
                        format!("too many arguments: {usage}"),
                    ));
                } else {
                    *slot = Some(extra.clone());
                }
            }
            let filters = match filters {
                Some(e) => or_report(expect_usize(e, "the number of filters"), ONE(span), errors),
                None => {
                    errors.push(syn::Error::new(
                        span,
                        format!("Conv2D needs its number of filters: {usage}"),
                    ));
                    ONE(span)
                }
            };
            let kernel = match kernel {
                Some(e) => or_report(
                    expect_pair(e, "the kernel size"),
                    (ONE(span), ONE(span)),
                    errors,
                ),
                None => {
                    errors.push(syn::Error::new(
                        span,
                        format!("Conv2D needs its kernel size: {usage}"),
                    ));
                    (ONE(span), ONE(span))
                }
            };
            LayerKind::Conv2D {
                filters,
                kernel,
                strides: strides.map_or((ONE(span), ONE(span)), |e| {
                    or_report(
                        expect_pair(&e, "the strides"),
                        (ONE(span), ONE(span)),
                        errors,
                    )
                }),
                padding: padding.map_or(Padding::Valid, |e| {
                    or_report(expect_padding(&e), Padding::Valid, errors)
                }),
                activation: a.take("activation").map_or(Act::Linear, |e| {
                    or_report(expect_activation(&e), Act::Linear, errors)
                }),
                use_bias: a
                    .take("use_bias")
                    .is_none_or(|e| or_report(expect_bool(&e, "use_bias"), true, errors)),
            }
        }
        "MaxPool" | "AvgPool" | "MaxPooling2D" | "MaxPool2D" | "AveragePooling2D" | "AvgPool2D" => {
            let max = name_str.starts_with("Max");
            // `MaxPool(2, 3)` is a 2x3 window; Keras's own names keep Keras's
            // positional order, `MaxPooling2D(pool_size, strides, padding)`.
            let short = name_str == "MaxPool" || name_str == "AvgPool";
            a.check_names(&["pool_size", "strides", "padding", "input_shape"], errors);
            let mut pool = a.take("pool_size");
            let mut strides = a.take("strides");
            let mut padding = a.take("padding");
            let ints = |e: &Expr| {
                matches!(
                    unparen(e),
                    Expr::Lit(ExprLit {
                        lit: Lit::Int(_),
                        ..
                    })
                )
            };
            let mut pos = a.positional.clone().into_iter().peekable();
            let mut pool_pair = None;
            if short
                && pool.is_none()
                && a.positional.len() >= 2
                && ints(&a.positional[0])
                && ints(&a.positional[1])
            {
                let ph = or_report(
                    expect_usize(&a.positional[0], "the pool height"),
                    ONE(span),
                    errors,
                );
                let pw = or_report(
                    expect_usize(&a.positional[1], "the pool width"),
                    ONE(span),
                    errors,
                );
                pool_pair = Some((ph, pw));
                pos.next();
                pos.next();
            }
            for extra in pos {
                let slot = if is_word(&extra) {
                    &mut padding
                } else if pool.is_none() && pool_pair.is_none() {
                    &mut pool
                } else {
                    &mut strides
                };
                if slot.is_some() {
                    errors.push(syn::Error::new_spanned(
                        &extra,
                        format!(
                            "too many arguments for {name_str}(pool_size [, strides] [, padding])"
                        ),
                    ));
                } else {
                    *slot = Some(extra);
                }
            }
            let two = Num { value: 2, span };
            let pool = pool_pair.unwrap_or_else(|| {
                pool.map_or((two, two), |e| {
                    or_report(expect_pair(&e, "the pool size"), (two, two), errors)
                })
            });
            LayerKind::Pool {
                max,
                pool,
                strides_given: strides.is_some(),
                strides: strides.map_or(pool, |e| {
                    or_report(expect_pair(&e, "the strides"), pool, errors)
                }),
                padding: padding.map_or(Padding::Valid, |e| {
                    or_report(expect_padding(&e), Padding::Valid, errors)
                }),
            }
        }
        "Dropout" => {
            a.check_names(&["rate", "input_shape"], errors);
            let named = a.take("rate");
            a.duplicate(errors, "rate", &named, !a.positional.is_empty());
            a.check_positional(1, "Dropout(rate)", errors);
            match named.as_ref().or(a.positional.first()) {
                Some(e) => {
                    let (rate, _) =
                        or_report(expect_number(e, "a dropout rate"), (0.0, e.span()), errors);
                    LayerKind::Dropout {
                        rate,
                        rate_tokens: e.to_token_stream(),
                    }
                }
                None => {
                    errors.push(syn::Error::new(
                        span,
                        "Dropout needs its rate: `Dropout(0.25)`",
                    ));
                    LayerKind::Dropout {
                        rate: 0.0,
                        rate_tokens: tokens.clone(),
                    }
                }
            }
        }
        "Flatten" => {
            a.check_names(&["input_shape"], errors);
            a.check_positional(0, "Flatten takes no arguments", errors);
            LayerKind::Flatten
        }
        "Dense" => {
            a.check_names(&["units", "activation", "use_bias", "input_shape"], errors);
            let named = a.take("units");
            a.duplicate(errors, "units", &named, !a.positional.is_empty());
            a.check_positional(1, "Dense(units, activation = ..., use_bias = ...)", errors);
            let units = match named.as_ref().or(a.positional.first()) {
                Some(e) => or_report(expect_usize(e, "the number of units"), ONE(span), errors),
                None => {
                    errors.push(syn::Error::new(
                        span,
                        "Dense needs its number of units: `Dense(10)`",
                    ));
                    ONE(span)
                }
            };
            LayerKind::Dense {
                units,
                activation: a.take("activation").map_or(Act::Linear, |e| {
                    or_report(expect_activation(&e), Act::Linear, errors)
                }),
                use_bias: a
                    .take("use_bias")
                    .is_none_or(|e| or_report(expect_bool(&e, "use_bias"), true, errors)),
            }
        }
        "Activation" => {
            a.check_names(&["activation", "input_shape"], errors);
            let named = a.take("activation");
            a.check_positional(1, "Activation(relu)", errors);
            match named.as_ref().or(a.positional.first()) {
                Some(e) => {
                    LayerKind::Activation(or_report(expect_activation(e), Act::Linear, errors))
                }
                None => {
                    errors.push(syn::Error::new(
                        span,
                        "Activation needs a function: `Activation(relu)`",
                    ));
                    LayerKind::Activation(Act::Linear)
                }
            }
        }
        "ReLU" | "Softmax" => {
            a.check_names(&["input_shape"], errors);
            a.check_positional(0, "it takes no arguments", errors);
            LayerKind::Activation(if name_str == "ReLU" {
                Act::Relu
            } else {
                Act::Softmax
            })
        }
        other => {
            match Act::from_name(other) {
                Some(act) if !has_args => LayerKind::Activation(act),
                Some(_) => {
                    errors.push(syn::Error::new_spanned(
                    &tokens,
                    format!("`{other}` takes no arguments; write `{other}` or `Activation({other})`"),
                ));
                    return None;
                }
                None => {
                    let other_rank = ["1D", "3D"].iter().any(|d| other.ends_with(d));
                    let hint = match suggest(other).filter(|_| !other_rank) {
                    Some(s) => format!("; did you mean `{s}`?"),
                    None if other_rank => {
                        String::from("; strata has 2-D convolution and pooling layers only")
                    }
                    None => String::from(
                        "; strata knows Input, Conv2D, MaxPool, MaxPooling2D, AvgPool, AveragePooling2D, \
                         Dropout, Flatten, Dense, Activation and relu, sigmoid, tanh, softmax, linear \
                         (embed another block as `{ block }`)",
                    ),
                };
                    errors.push(syn::Error::new(
                        span,
                        format!("unknown layer `{other}`{hint}"),
                    ));
                    return None;
                }
            }
        }
    };
    Some(LayerSpec {
        kind,
        text,
        tokens: tokens.to_token_stream(),
        input_shape,
    })
}
