//! From a checked chain to code: one struct with one field per layer, whose
//! types carry every shape (see [`plan`]), and a `Layer` impl that calls the
//! fields in turn (see [`layer_impl`]). An anonymous model is an expression
//! that builds it; a named one is items in the caller's module.

mod layer_impl;
mod plan;
pub mod types;

use proc_macro2::{Ident, Span, TokenStream};
use quote::quote;

use crate::invocation::Header;
use crate::model::Checked;
use layer_impl::layer_impl;
use plan::{Plan, Unknowns};
use types::Support;

/// `sequential![...]`: a block that defines the model and evaluates to it.
/// Embedded blocks are evaluated first, in the caller's scope (not under the
/// support imports).
pub fn expression(checked: &Checked) -> TokenStream {
    let name = Ident::new("Sequential", Span::call_site());
    let plan = Plan::new(checked, Unknowns::Params, Support::imported(), &name);
    let items = &plan.items;
    let (params, where_clause) = (plan.params(), plan.where_clause());
    let (fields, field_tys, inits) = (&plan.fields, &plan.field_tys, &plan.inits);
    let args = plan.blocks.iter().map(|(arg, _, _)| arg);
    let (args2, args3) = (args.clone(), args.clone());
    let (params_of_args, exprs) = (
        plan.blocks.iter().map(|b| &b.1),
        plan.blocks.iter().map(|b| &b.2),
    );
    let layer_impl = layer_impl(&plan, &name, "Sequential");
    quote! {{
        #(let #args = #exprs;)*
        {
            use ::strata::__macro_support::*;

            #(#items)*

            /// A model built by `sequential!`: one field per layer, named by
            /// kind and position (the position is the weight-file index).
            #[allow(clippy::type_complexity)]
            pub struct Sequential #params {
                #(pub #fields: #field_tys,)*
            }

            impl #params Sequential #params #where_clause {
                fn new(#(#args2: #params_of_args,)* rng: &mut dyn RngCore) -> Self {
                    Sequential {
                        #(#fields: #inits,)*
                    }
                }
            }

            #layer_impl

            Sequential::new(#(#args3,)* &mut seeded_rng(DEFAULT_SEED))
        }
    }}
}

/// `sequential! { pub struct Name = ... }`: the struct, generic over its
/// input shape when the chain has none, and its impls. The impls import
/// the support names inside `const _`, so the caller's module sees only
/// the struct.
pub fn item(header: &Header, checked: &Checked) -> TokenStream {
    let generic = !matches!(checked.shapes[0], crate::model::Known::Dims(_));
    let unknowns = if generic {
        Unknowns::Projections
    } else {
        Unknowns::Params
    };
    let Header { attrs, vis, name } = header;
    let declared = Plan::new(checked, unknowns, Support::absolute(), name);
    let items = &declared.items;
    let (params, where_clause) = (declared.params(), declared.where_clause());
    let (fields, field_tys) = (&declared.fields, &declared.field_tys);
    let docs = checked
        .layers
        .iter()
        .enumerate()
        .map(|(i, l)| format!("Layer {i}: `{}`.", l.text));
    let impls = item_impls(
        &Plan::new(checked, unknowns, Support::imported(), name),
        name,
    );
    quote! {
        #(#items)*

        #(#attrs)*
        #[allow(clippy::type_complexity)]
        #vis struct #name #params #where_clause {
            #(#[doc = #docs] pub #fields: #field_tys,)*
        }

        const _: () = {
            use ::strata::__macro_support::*;
            #impls
        };
    }
}

/// The `where` predicates of the model `name` that `item` declares for
/// `checked` (generic over `S`), support names in absolute paths: what a
/// model holding it repeats.
pub fn branch_predicates(checked: &Checked, name: &Ident) -> Vec<TokenStream> {
    Plan::new(checked, Unknowns::Projections, Support::absolute(), name).predicates()
}

/// A named model's constructor, `Default` and `Layer` impls.
fn item_impls(plan: &Plan, name: &Ident) -> TokenStream {
    let (params, where_clause) = (plan.params(), plan.where_clause());
    let (fields, inits) = (&plan.fields, &plan.inits);
    let layer_impl = layer_impl(plan, name, &name.to_string());
    quote! {
        impl #params #name #params #where_clause {
            /// The model with its initial weights drawn from `DEFAULT_SEED`,
            /// as every `sequential!` model.
            pub fn new() -> Self {
                Self::__with_rng(&mut seeded_rng(DEFAULT_SEED))
            }

            /// The model with its initial weights drawn from `rng`: how
            /// an enclosing model builds it (a residual's branch).
            #[doc(hidden)]
            pub fn __with_rng(rng: &mut dyn RngCore) -> Self {
                #name {
                    #(#fields: #inits,)*
                }
            }
        }

        impl #params ::core::default::Default for #name #params #where_clause {
            fn default() -> Self {
                Self::new()
            }
        }

        #layer_impl
    }
}

/// What stands in for a named model that has errors, so that its uses do
/// not add errors of their own to the macro's.
pub fn item_stub(header: &Header) -> TokenStream {
    let Header { attrs, vis, name } = header;
    quote! {
        #(#attrs)*
        #vis struct #name;

        impl #name {
            pub fn new() -> Self {
                ::strata::__macro_support::invalid_model()
            }
        }
    }
}
