//! `ZeroPadding2D(p)`, `ZeroPadding2D((ph, pw))` or
//! `ZeroPadding2D(((top, bottom), (left, right)))`: rows and columns of
//! zeros around each image.

use proc_macro2::TokenStream;
use quote::quote;
use syn::Expr;

use super::{Fusion, Entry, InitCx, LayerDef, ShapeCx, TypeCx};
use crate::args::Args;
use crate::model::{Element, Known};
use crate::values;

pub const ENTRIES: &[Entry] = &[Entry {
    names: &["ZeroPadding2D"],
    listed: &["ZeroPadding2D"],
    args: &["padding", "input_shape"],
    parse,
}];

const USAGE: &str =
    "ZeroPadding2D(p), ZeroPadding2D((ph, pw)) or ZeroPadding2D(((top, bottom), (left, right)))";

/// Rows on top and at the bottom, columns on the left and on the right.
struct ZeroPadding2D([usize; 4]);

fn parse(a: &mut Args) -> Element {
    let padding = a.slot("padding");
    a.no_more(USAGE);
    // Keras's default: one row or column on every side.
    let sides = padding.map_or([1; 4], |e| a.read(&e, sides, [1; 4]));
    Element::Layer(Box::new(ZeroPadding2D(sides)))
}

/// `p`, `(ph, pw)` or `((top, bottom), (left, right))`.
fn sides(e: &Expr) -> syn::Result<[usize; 4]> {
    let what = "the padding";
    if let Ok((h, w)) = values::pair(e, what) {
        return Ok([h.value, h.value, w.value, w.value]);
    }
    let mut e = e;
    while let Expr::Paren(p) = e {
        e = &p.expr;
    }
    match e {
        Expr::Tuple(t) if t.elems.len() == 2 => {
            let (top, bottom) = values::pair(&t.elems[0], what)?;
            let (left, right) = values::pair(&t.elems[1], what)?;
            Ok([top.value, bottom.value, left.value, right.value])
        }
        _ => Err(syn::Error::new_spanned(
            e,
            format!("expected a padding: {USAGE}"),
        )),
    }
}

impl LayerDef for ZeroPadding2D {
    fn field_base(&self) -> &'static str {
        "zero_padding2d"
    }

    fn input_rank(&self) -> Option<usize> {
        Some(3)
    }

    fn output_shape(&self, input: &Known, _: &ShapeCx) -> syn::Result<Known> {
        let [top, bottom, left, right] = self.0;
        Ok(input.then(3, |d| vec![top + d[0] + bottom, left + d[1] + right, d[2]]))
    }

    fn field_type(&self, cx: &TypeCx) -> TokenStream {
        let s = cx.support;
        let (name, input) = (s.name("ZeroPadding2D"), cx.input);
        let sides = self.0.map(|n| s.unsigned(n));
        quote!(#name<#input, #(#sides),*>)
    }

    fn constructor(&self, _: &InitCx) -> TokenStream {
        quote!(ZeroPadding2D::new())
    }

    fn fusion(&self) -> Fusion {
        Fusion::Pad
    }
}
