//! `{ expr }`: a layer value (typically another model) embedded as one
//! layer. The macro cannot see its type, so its shapes are the compiler's
//! to infer.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};

use super::{InitCx, LayerDef, ShapeCx, TypeCx};
use crate::model::Known;

pub struct Block(pub syn::Expr);

impl LayerDef for Block {
    fn field_base(&self) -> &'static str {
        "block"
    }

    fn output_shape(&self, _: &Known, _: &ShapeCx) -> syn::Result<Known> {
        Ok(Known::Unknown)
    }

    /// A type parameter of the model.
    fn field_type(&self, cx: &TypeCx) -> TokenStream {
        let param = format_ident!("B{}", cx.index);
        quote!(#param)
    }

    /// The value, which the model's constructor takes as an argument.
    fn constructor(&self, cx: &InitCx) -> TokenStream {
        let arg = format_ident!("block_{}", cx.index);
        quote!(#arg)
    }

    fn embedded(&self) -> Option<&syn::Expr> {
        Some(&self.0)
    }
}
