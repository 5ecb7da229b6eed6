//! Reading argument values: integers, pairs, words, booleans, rates and
//! shapes, each with an error that says what was expected.

use proc_macro2::Span;
use strata_shapes::Padding;
use syn::spanned::Spanned;
use syn::{Expr, ExprLit, Lit, UnOp};

use crate::layers::activation::Act;
use crate::model::{Dims, Num};

/// Strips `( x )` around a single value.
fn unparen(e: &Expr) -> &Expr {
    match e {
        Expr::Paren(p) => unparen(&p.expr),
        Expr::Group(g) => unparen(&g.expr),
        other => other,
    }
}

pub fn is_int(e: &Expr) -> bool {
    matches!(
        unparen(e),
        Expr::Lit(ExprLit {
            lit: Lit::Int(_),
            ..
        })
    )
}

pub fn usize(e: &Expr, what: &str) -> syn::Result<Num> {
    match unparen(e) {
        Expr::Lit(ExprLit {
            lit: Lit::Int(i), ..
        }) => Ok(Num::new(i.base10_parse::<usize>()?, i.span())),
        other => Err(syn::Error::new_spanned(
            other,
            format!("expected {what}: a non-negative integer"),
        )),
    }
}

/// `3` means `(3, 3)`, as in Keras; `(3, 2)` is itself.
pub fn pair(e: &Expr, what: &str) -> syn::Result<(Num, Num)> {
    match unparen(e) {
        Expr::Tuple(t) if t.elems.len() == 2 => {
            Ok((usize(&t.elems[0], what)?, usize(&t.elems[1], what)?))
        }
        Expr::Lit(_) => usize(e, what).map(|n| (n, n)),
        other => Err(syn::Error::new_spanned(
            other,
            format!("expected {what}: an integer or a pair such as (3, 3)"),
        )),
    }
}

/// A bare word or a string: `same`, `"same"`.
pub fn word(e: &Expr) -> Option<(String, Span)> {
    match unparen(e) {
        Expr::Path(p) => p.path.get_ident().map(|i| (i.to_string(), i.span())),
        Expr::Lit(ExprLit {
            lit: Lit::Str(s), ..
        }) => Some((s.value(), s.span())),
        _ => None,
    }
}

pub fn is_word(e: &Expr) -> bool {
    word(e).is_some()
}

pub fn padding(e: &Expr) -> syn::Result<Padding> {
    let expected = "expected a padding: `same` or `valid`";
    match word(e) {
        Some((w, _)) if w.eq_ignore_ascii_case("same") => Ok(Padding::Same),
        Some((w, _)) if w.eq_ignore_ascii_case("valid") => Ok(Padding::Valid),
        // A common slip: the activation where Keras's order puts padding.
        Some((w, _)) if Act::from_name(&w).is_some() => Err(syn::Error::new_spanned(
            e,
            format!("{expected}; to set the activation write `activation = {w}`"),
        )),
        _ => Err(syn::Error::new_spanned(e, expected)),
    }
}

pub fn boolean(e: &Expr, what: &str) -> syn::Result<bool> {
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

/// A number, keeping a leading minus so that a range check can say what
/// was written.
pub fn number(e: &Expr, what: &str) -> syn::Result<f64> {
    let e = unparen(e);
    let err = || syn::Error::new_spanned(e, format!("expected {what}: a number such as 0.25"));
    match e {
        Expr::Lit(ExprLit {
            lit: Lit::Float(f), ..
        }) => f.base10_parse::<f64>(),
        Expr::Lit(ExprLit {
            lit: Lit::Int(i), ..
        }) => i.base10_parse::<f64>(),
        Expr::Unary(u) if matches!(u.op, UnOp::Neg(_)) => {
            number(&u.expr, what).map(|v| -v).map_err(|_| err())
        }
        _ => Err(err()),
    }
}

/// `(32, 32, 3)`, `(10,)` or `10`.
pub fn shape(e: &Expr) -> syn::Result<(Dims, Span)> {
    let dims = match unparen(e) {
        Expr::Tuple(t) => t
            .elems
            .iter()
            .map(|d| usize(d, "a dimension").map(|n| n.value))
            .collect::<syn::Result<Dims>>()?,
        Expr::Lit(_) => vec![usize(e, "a dimension")?.value],
        other => {
            return Err(syn::Error::new_spanned(
                other,
                "expected a shape: (height, width, channels) or (features,)",
            ))
        }
    };
    Ok((dims, e.span()))
}
