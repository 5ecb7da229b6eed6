//! `MaxPooling2D` and `AveragePooling2D` (Keras's `pool_size, strides,
//! padding`), with the short forms `MaxPool(2, 3)` / `AvgPool(2, 3)` where
//! two integers are the window's height and width.

use proc_macro2::TokenStream;
use quote::quote;
use strata_shapes::Padding;
use syn::Expr;

use super::window::Window2;
use super::{Entry, Fusion, InitCx, LayerDef, ShapeCx, TypeCx};
use crate::args::Args;
use crate::model::{Element, Known, Num};
use crate::values;

const ARGS: &[&str] = &["pool_size", "strides", "padding", "input_shape"];

pub const ENTRIES: &[Entry] = &[
    Entry {
        names: &["MaxPool", "MaxPooling2D", "MaxPool2D"],
        listed: &["MaxPool", "MaxPooling2D"],
        args: ARGS,
        parse: |a| parse(a, Kind::Max),
    },
    Entry {
        names: &["AvgPool", "AveragePooling2D", "AvgPool2D"],
        listed: &["AvgPool", "AveragePooling2D"],
        args: ARGS,
        parse: |a| parse(a, Kind::Average),
    },
];

#[derive(Clone, Copy)]
enum Kind {
    Max,
    Average,
}

struct Pooling {
    kind: Kind,
    window: Window2,
}

/// The window written as two integers, `MaxPool(2, 3)`: only the short
/// names read it so; Keras's own names keep Keras's order.
fn short_window(a: &mut Args) -> Option<(Num, Num)> {
    let short = matches!(a.name().as_str(), "MaxPool" | "AvgPool");
    let [h, w, ..] = a.positional() else {
        return None;
    };
    if !short || !values::is_int(h) || !values::is_int(w) || a.has_named("pool_size") {
        return None;
    }
    let (h, w) = (h.clone(), w.clone());
    a.skip_positional(2);
    let one = Num::new(1, a.span());
    Some((
        a.read(&h, |e| values::usize(e, "the pool height"), one),
        a.read(&w, |e| values::usize(e, "the pool width"), one),
    ))
}

/// The positional arguments after the window: a word is the padding, a
/// value the pool size (if not given yet) then the strides.
fn assign_rest(a: &mut Args, window_given: bool) -> [Option<Expr>; 3] {
    let mut slots = [a.take("pool_size"), a.take("strides"), a.take("padding")];
    for extra in a.rest() {
        let i = match (values::is_word(&extra), slots[0].is_none() && !window_given) {
            (true, _) => 2,
            (false, true) => 0,
            (false, false) => 1,
        };
        if slots[i].is_some() {
            let usage = format!("{}(pool_size [, strides] [, padding])", a.name());
            a.too_many(&extra, &usage);
        } else {
            slots[i] = Some(extra);
        }
    }
    slots
}

fn parse(a: &mut Args, kind: Kind) -> Element {
    let two = Num::new(2, a.span());
    let short = short_window(a);
    let [pool, strides, padding] = assign_rest(a, short.is_some());
    let pool = short.unwrap_or_else(|| {
        pool.map_or((two, two), |e| {
            a.read(&e, |e| values::pair(e, "the pool size"), (two, two))
        })
    });
    let strides_given = strides.is_some();
    let window = Window2 {
        kernel: pool,
        // Keras: the strides default to the pool size.
        strides: strides.map_or(pool, |e| {
            a.read(&e, |e| values::pair(e, "the strides"), pool)
        }),
        padding: padding.map_or(Padding::Valid, |e| {
            a.read(&e, values::padding, Padding::Valid)
        }),
    };
    window.check(a, "a pool size", strides_given);
    Element::Layer(Box::new(Pooling { kind, window }))
}

impl Kind {
    fn type_name(self) -> &'static str {
        match self {
            Kind::Max => "MaxPooling2D",
            Kind::Average => "AveragePooling2D",
        }
    }
}

impl LayerDef for Pooling {
    fn field_base(&self) -> &'static str {
        match self.kind {
            Kind::Max => "max_pooling2d",
            Kind::Average => "average_pooling2d",
        }
    }

    fn input_rank(&self) -> Option<usize> {
        Some(3)
    }

    fn output_shape(&self, input: &Known, cx: &ShapeCx) -> syn::Result<Known> {
        self.window.output(input, cx, None)
    }

    fn field_type(&self, cx: &TypeCx) -> TokenStream {
        let (name, input) = (cx.support.name(self.kind.type_name()), cx.input);
        let window = self.window.type_args(cx.support);
        quote!(#name<#input, #window>)
    }

    fn constructor(&self, _: &InitCx) -> TokenStream {
        let name = syn::Ident::new(self.kind.type_name(), proc_macro2::Span::call_site());
        quote!(#name::new())
    }

    fn fusion(&self) -> Fusion {
        Fusion::Pool
    }
}
