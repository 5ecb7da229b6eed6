//! `GlobalAveragePooling2D` and `GlobalMaxPooling2D`: the mean or the max
//! of each channel, `(H, W, C) -> (C)` (PyTorch's `AdaptiveAvgPool2d(1)`
//! then `Flatten`).

use proc_macro2::TokenStream;
use quote::quote;

use super::{Entry, InitCx, LayerDef, ShapeCx, TypeCx};
use crate::args::Args;
use crate::model::{Element, Known};
use crate::values;

const ARGS: &[&str] = &["keepdims", "data_format", "input_shape"];

pub const ENTRIES: &[Entry] = &[
    Entry {
        names: &["GlobalAveragePooling2D", "GlobalAvgPool2D"],
        listed: &["GlobalAveragePooling2D"],
        args: ARGS,
        parse: |a| parse(a, Kind::Average),
    },
    Entry {
        names: &["GlobalMaxPooling2D", "GlobalMaxPool2D"],
        listed: &["GlobalMaxPooling2D"],
        args: ARGS,
        parse: |a| parse(a, Kind::Max),
    },
];

#[derive(Clone, Copy)]
enum Kind {
    Average,
    Max,
}

struct GlobalPooling(Kind);

fn parse(a: &mut Args, kind: Kind) -> Element {
    a.no_more(&format!("{}(keepdims = false)", a.name()));
    if let Some(e) = a.take("keepdims") {
        if a.read(&e, |e| values::boolean(e, "keepdims"), false) {
            a.error(syn::Error::new_spanned(
                &e,
                format!(
                    "{}(keepdims = true) is not supported yet: it outputs a vector of the channels, (H, W, C) -> (C)",
                    a.name()
                ),
            ));
        }
    }
    if let Some(e) = a.take("data_format") {
        match values::word(&e) {
            Some((w, _)) if w == "channels_last" => {}
            _ => a.error(syn::Error::new_spanned(
                &e,
                "strata's samples are channels last: only `data_format = \"channels_last\"` is supported",
            )),
        }
    }
    Element::Layer(Box::new(GlobalPooling(kind)))
}

impl Kind {
    fn type_name(self) -> &'static str {
        match self {
            Kind::Average => "GlobalAveragePooling2D",
            Kind::Max => "GlobalMaxPooling2D",
        }
    }
}

impl LayerDef for GlobalPooling {
    fn field_base(&self) -> &'static str {
        match self.0 {
            Kind::Average => "global_average_pooling2d",
            Kind::Max => "global_max_pooling2d",
        }
    }

    fn input_rank(&self) -> Option<usize> {
        Some(3)
    }

    fn output_shape(&self, input: &Known, _: &ShapeCx) -> syn::Result<Known> {
        Ok(match input.dims() {
            Some(d) => strata_shapes::global_pool_output(d)
                .map_or(Known::Unknown, |c| Known::Dims(vec![c])),
            None => Known::Rank(1),
        })
    }

    fn field_type(&self, cx: &TypeCx) -> TokenStream {
        let (name, input) = (cx.support.name(self.0.type_name()), cx.input);
        quote!(#name<#input>)
    }

    fn constructor(&self, _: &InitCx) -> TokenStream {
        let name = syn::Ident::new(self.0.type_name(), proc_macro2::Span::call_site());
        quote!(#name::new())
    }
}
