//! From tokens to a [`Chain`] of understood layers: splitting at `=>`,
//! telling `{ block }` from a named layer, finding the name in the registry
//! and handing the arguments to the layer. Every problem becomes a
//! `syn::Error` on the offending tokens; all of them are reported together.

use proc_macro2::{Delimiter, Spacing, Span, TokenStream, TokenTree};
use syn::parse::{Parse, ParseStream, Parser};
use syn::punctuated::Punctuated;
use syn::{Expr, Ident, Token};

use crate::args::{Args, RawArgs};
use crate::errors::Errors;
use crate::layers::{self, block::Block};
use crate::model::{Element, LayerSpec};
use crate::text::{and_list, layer_text, suggest};

/// Splits at top-level `=>` and parses each layer.
pub fn parse_chain(input: TokenStream, errors: &mut Errors) -> Vec<LayerSpec> {
    let (segments, arrows) = split_at_arrows(input);
    let mut layers = Vec::new();
    for (i, segment) in segments.into_iter().enumerate() {
        if segment.is_empty() {
            errors.push(empty_segment(i, &arrows));
        } else {
            layers.push(parse_layer(segment.into_iter().collect(), errors));
        }
    }
    layers
}

fn split_at_arrows(input: TokenStream) -> (Vec<Vec<TokenTree>>, Vec<Span>) {
    let mut segments: Vec<Vec<TokenTree>> = vec![Vec::new()];
    let mut arrows = Vec::new();
    let mut tokens = input.into_iter().peekable();
    while let Some(tt) = tokens.next() {
        let joint_eq = matches!(&tt, TokenTree::Punct(p) if p.as_char() == '=' && p.spacing() == Spacing::Joint);
        if joint_eq && matches!(tokens.peek(), Some(TokenTree::Punct(q)) if q.as_char() == '>') {
            arrows.push(tt.span());
            tokens.next();
            segments.push(Vec::new());
        } else {
            segments.last_mut().expect("never empty").push(tt);
        }
    }
    (segments, arrows)
}

fn empty_segment(i: usize, arrows: &[Span]) -> syn::Error {
    let span = match i {
        0 => arrows.first().copied().unwrap_or_else(Span::call_site),
        _ => arrows[i - 1],
    };
    let message = if arrows.is_empty() {
        "sequential! needs at least one layer, e.g. `sequential![Input(28, 28, 1) => Flatten => Dense(10)]`"
    } else {
        "expected a layer on this side of `=>`"
    };
    syn::Error::new(span, message)
}

/// A layer before its name and arguments are understood.
enum RawLayer {
    Named { name: Ident, args: RawArgs },
    Block(Expr),
}

impl Parse for RawLayer {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        if input.peek(syn::token::Brace) {
            return Ok(RawLayer::Block(Expr::Block(input.parse()?)));
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
            Some(arguments(content.parse()?)?)
        } else {
            None
        };
        if !input.is_empty() {
            return Err(input.error("expected `=>` between layers"));
        }
        Ok(RawLayer::Named { name, args })
    }
}

/// A layer's arguments: Rust expressions, except that an argument may be
/// a chain in braces (`Residual({ Conv2D(8, (3, 3)) => relu })`, or
/// `shortcut = { ... }`), which is no Rust expression and is kept as its
/// tokens for the layer to parse.
fn arguments(tokens: TokenStream) -> syn::Result<Punctuated<Expr, Token![,]>> {
    let plain = Punctuated::parse_terminated.parse2(tokens.clone());
    plain.or_else(|e| with_chains(tokens).ok_or(e))
}

/// The arguments split at top-level commas, a braced chain kept verbatim;
/// `None` if anything else fails to parse (its error is the one to show).
fn with_chains(tokens: TokenStream) -> Option<Punctuated<Expr, Token![,]>> {
    let mut args = Punctuated::new();
    let mut piece: Vec<TokenTree> = Vec::new();
    let mut tokens = tokens.into_iter();
    loop {
        let next = tokens.next();
        let comma = matches!(&next, Some(TokenTree::Punct(p)) if p.as_char() == ',');
        if let (Some(tt), false) = (&next, comma) {
            piece.push(tt.clone());
            continue;
        }
        if piece.is_empty() && comma {
            return None;
        }
        if !piece.is_empty() {
            args.push(argument(std::mem::take(&mut piece))?);
        }
        if next.is_none() {
            return Some(args);
        }
    }
}

fn argument(piece: Vec<TokenTree>) -> Option<Expr> {
    let braced =
        |tt: &TokenTree| matches!(tt, TokenTree::Group(g) if g.delimiter() == Delimiter::Brace);
    let stream: TokenStream = piece.iter().cloned().collect();
    if let Ok(e) = syn::parse2::<Expr>(stream.clone()) {
        return Some(e);
    }
    match piece.as_slice() {
        [chain] if braced(chain) => Some(Expr::Verbatim(stream)),
        [TokenTree::Ident(name), TokenTree::Punct(eq), chain]
            if eq.as_char() == '=' && braced(chain) =>
        {
            Some(Expr::Assign(syn::ExprAssign {
                attrs: Vec::new(),
                left: Box::new(Expr::Path(syn::ExprPath {
                    attrs: Vec::new(),
                    qself: None,
                    path: name.clone().into(),
                })),
                eq_token: Token![=](eq.span()),
                right: Box::new(Expr::Verbatim(chain.clone().into())),
            }))
        }
        _ => None,
    }
}

fn parse_layer(tokens: TokenStream, errors: &mut Errors) -> LayerSpec {
    let mut spec = LayerSpec {
        element: Element::Invalid,
        text: layer_text(&tokens),
        tokens: tokens.clone(),
        input_shape: None,
    };
    match syn::parse2::<RawLayer>(tokens) {
        Ok(RawLayer::Block(expr)) => spec.element = Element::Layer(Box::new(Block(expr))),
        Ok(RawLayer::Named { name, args }) => interpret(&mut spec, name, args, errors),
        Err(e) => errors.push(e),
    }
    spec
}

/// Asks the registry's entry for `name` to read the arguments.
fn interpret(spec: &mut LayerSpec, name: Ident, raw: RawArgs, errors: &mut Errors) {
    let Some(entry) = layers::lookup(&name.to_string()) else {
        errors.push(unknown_layer(&name));
        return;
    };
    let mut args = Args::new(name, raw, &spec.tokens, errors);
    args.check_names(entry.args);
    if entry.args.contains(&"input_shape") {
        if let Some(e) = args.take("input_shape") {
            args.input_shape = args.read(&e, |e| crate::values::shape(e).map(Some), None);
        }
    }
    let element = (entry.parse)(&mut args);
    spec.input_shape = args.input_shape.take();
    spec.element = element;
}

fn unknown_layer(name: &Ident) -> syn::Error {
    let other = name.to_string();
    let other_rank = ["1D", "3D"].iter().any(|d| other.ends_with(d));
    let names = layers::entries().flat_map(|e| e.names.iter().copied());
    let hint = match suggest(&other, names).filter(|_| !other_rank) {
        Some(s) => format!("; did you mean `{s}`?"),
        None if other_rank => "; strata has 2-D convolution and pooling layers only".to_string(),
        None => format!("; {}", known_layers()),
    };
    syn::Error::new(name.span(), format!("unknown layer `{other}`{hint}"))
}

/// "strata knows Input, Conv2D, ... and relu, sigmoid, ...": the layer
/// classes, then the bare activations.
fn known_layers() -> String {
    let listed: Vec<&str> = layers::entries()
        .flat_map(|e| e.listed.iter().copied())
        .collect();
    let is_class = |n: &&str| n.starts_with(|c: char| c.is_ascii_uppercase());
    let classes: Vec<&str> = listed.iter().copied().filter(is_class).collect();
    let bare: Vec<&str> = listed.iter().copied().filter(|n| !is_class(n)).collect();
    format!(
        "strata knows {} (embed another block as `{{ block }}`)",
        and_list(&[classes.join(", "), bare.join(", ")])
    )
}
