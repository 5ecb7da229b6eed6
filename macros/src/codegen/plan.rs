//! The types of a model: one field per layer, and the shape between each
//! two layers. Where the macro knows a shape it writes it out
//! (`Shape3<U32, U32, U3>`), so the expansion reads like hand-written code
//! and compiles fast. Where it does not, the shape is a type parameter or
//! a projection (`<Field as Layer>::Output`), tied to the fields by `where`
//! clauses, and the compiler infers it from how the model is used.

use proc_macro2::{Ident, TokenStream};
use quote::{format_ident, quote};

use super::types::{field_name, Support};
use crate::layers::{Fusion, InitCx, LayerDef, TypeCx};
use crate::model::{Checked, Known};

/// How unknown shapes are written.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Unknowns {
    /// A parameter for every unknown shape a field mentions (`S0`, `S2`...):
    /// an anonymous model, whose type nobody writes.
    Params,
    /// One parameter `S`, the input; the others are projections of the
    /// fields: a named model, whose type users write as `VggBlock<S>`.
    Projections,
}

/// Where a shape's type comes from, for the `where` clauses.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Source {
    Written,
    Param,
    InputOf(usize),
    OutputOf(usize),
}

struct ShapeTy {
    ty: TokenStream,
    source: Source,
}

/// Everything about a model's types and fields.
pub struct Plan {
    pub fields: Vec<Ident>,
    /// Each field's part in fused runs (see `codegen::layer_impl`).
    pub fusion: Vec<Fusion>,
    pub field_tys: Vec<TokenStream>,
    pub inits: Vec<TokenStream>,
    /// The model's type parameters (`S0`, `B1`, ... or `S`).
    pub generics: Vec<Ident>,
    /// `block_1: B1` for each embedded block, with its expression.
    pub blocks: Vec<(TokenStream, Ident, syn::Expr)>,
    /// What the fields' types need beside the struct (see `LayerDef::items`).
    pub items: Vec<TokenStream>,
    /// What the fields' types need of the model's parameters (see
    /// `LayerDef::bounds`).
    bounds: Vec<TokenStream>,
    shapes: Vec<ShapeTy>,
    unknowns: Unknowns,
    support: Support,
    model: Ident,
}

impl Plan {
    /// The plan of `model`'s fields.
    pub fn new(checked: &Checked, unknowns: Unknowns, support: Support, model: &Ident) -> Plan {
        let mut plan = Plan {
            fields: Vec::new(),
            fusion: Vec::new(),
            field_tys: Vec::new(),
            inits: Vec::new(),
            generics: Vec::new(),
            blocks: Vec::new(),
            items: Vec::new(),
            bounds: Vec::new(),
            shapes: Vec::new(),
            unknowns,
            support,
            model: model.clone(),
        };
        for (i, layer) in checked.layers.iter().enumerate() {
            plan.add_field(i, layer.def.as_ref(), &checked.shapes[i]);
        }
        for (i, layer) in checked.layers.iter().enumerate() {
            let prev = i.checked_sub(1).map(|p| checked.layers[p].def.as_ref());
            let cx = InitCx {
                index: i,
                model: &plan.model,
                prev,
                prev_input: i.checked_sub(1).map(|p| &plan.shapes[p].ty),
            };
            plan.inits.push(layer.def.constructor(&cx));
        }
        let output = plan.output_shape(&checked.shapes[checked.layers.len()]);
        plan.shapes.push(output);
        plan
    }

    fn add_field(&mut self, i: usize, def: &dyn LayerDef, known: &Known) {
        let input = match def.embedded() {
            Some(expr) => self.add_block(i, def, expr.clone(), known),
            None => self.shape(i, known),
        };
        let cx = TypeCx {
            index: i,
            model: &self.model,
            input: &input.ty,
            support: &self.support,
        };
        self.field_tys.push(def.field_type(&cx));
        self.items.push(def.items(&cx));
        self.bounds.extend(def.bounds(&cx));
        self.fields.push(field_name(def.field_base(), i));
        self.fusion.push(def.fusion());
        self.shapes.push(input);
    }

    /// A block is a type parameter, and so is its value's type: its input
    /// shape is named through it or through the layer before it, so that
    /// no parameter is left that no field mentions.
    fn add_block(
        &mut self,
        i: usize,
        def: &dyn LayerDef,
        expr: syn::Expr,
        known: &Known,
    ) -> ShapeTy {
        let param = format_ident!("B{}", i);
        self.generics.push(param.clone());
        let placeholder = TokenStream::new();
        let cx = TypeCx {
            index: i,
            model: &self.model,
            input: &placeholder,
            support: &self.support,
        };
        // The constructor is the argument that brings the value in.
        let arg = def.constructor(&InitCx {
            index: i,
            model: &self.model,
            prev: None,
            prev_input: None,
        });
        self.blocks.push((arg, param, expr));
        let layer = self.support.name("Layer");
        match i {
            _ if matches!(known, Known::Dims(_)) => self.shape(i, known),
            0 => {
                let own = def.field_type(&cx);
                ShapeTy {
                    ty: quote!(<#own as #layer>::Input),
                    source: Source::InputOf(0),
                }
            }
            _ => self.output_of(i - 1),
        }
    }

    fn output_of(&self, field: usize) -> ShapeTy {
        let (ty, layer) = (&self.field_tys[field], self.support.name("Layer"));
        ShapeTy {
            ty: quote!(<#ty as #layer>::Output),
            source: Source::OutputOf(field),
        }
    }

    /// Layer `i`'s input shape (not a block's).
    fn shape(&mut self, i: usize, known: &Known) -> ShapeTy {
        if let Known::Dims(d) = known {
            return ShapeTy {
                ty: self.support.shape(d),
                source: Source::Written,
            };
        }
        if self.unknowns == Unknowns::Projections && i > 0 {
            return self.output_of(i - 1);
        }
        let param = match self.unknowns {
            Unknowns::Params => format_ident!("S{}", i),
            Unknowns::Projections => format_ident!("S"),
        };
        self.generics.push(param.clone());
        ShapeTy {
            ty: quote!(#param),
            source: Source::Param,
        }
    }

    fn output_shape(&self, known: &Known) -> ShapeTy {
        match known {
            Known::Dims(d) if self.generics.is_empty() => ShapeTy {
                ty: self.support.shape(d),
                source: Source::Written,
            },
            _ => self.output_of(self.fields.len() - 1),
        }
    }

    pub fn input_ty(&self) -> &TokenStream {
        &self.shapes[0].ty
    }

    pub fn output_ty(&self) -> &TokenStream {
        &self.shapes[self.fields.len()].ty
    }

    /// `<S0, B1>`, or nothing.
    pub fn params(&self) -> TokenStream {
        match self.generics.as_slice() {
            [] => quote!(),
            g => quote!(<#(#g),*>),
        }
    }

    /// What ties the shapes to the fields: each field is a layer from its
    /// input shape to the next (equalities that hold by construction left
    /// out), and each shape parameter is a shape. Nothing for a model whose
    /// shapes are all written.
    pub fn where_clause(&self) -> TokenStream {
        if self.generics.is_empty() {
            return quote!();
        }
        let predicates = self.predicates();
        quote!(where #(#predicates,)*)
    }

    /// The predicates of [`Plan::where_clause`], for an enclosing model
    /// to repeat (a struct's bounds are not implied where it is used).
    pub fn predicates(&self) -> Vec<TokenStream> {
        if self.generics.is_empty() {
            return Vec::new();
        }
        let layer = self.support.name("Layer");
        let shape = self.support.name("Shape");
        let params = self
            .shapes
            .iter()
            .filter(|s| s.source == Source::Param)
            .map(|s| &s.ty);
        let layers = self.field_tys.iter().enumerate().map(|(i, ty)| {
            let mut ties = Vec::new();
            if self.shapes[i].source != Source::InputOf(i) {
                let input = &self.shapes[i].ty;
                ties.push(quote!(Input = #input));
            }
            if self.shapes[i + 1].source != Source::OutputOf(i) {
                let output = &self.shapes[i + 1].ty;
                ties.push(quote!(Output = #output));
            }
            match ties.is_empty() {
                true => quote!(#ty: #layer),
                false => quote!(#ty: #layer<#(#ties),*>),
            }
        });
        let params = params.map(|p| quote!(#p: #shape));
        // What `fused_into` and `padded_into` need of the fields they fuse.
        let fused = self
            .field_tys
            .iter()
            .zip(&self.fusion)
            .filter_map(|(ty, f)| {
                let role = match f {
                    Fusion::Head => self.support.name("PaddedHead"),
                    Fusion::Tail => self.support.name("EpilogueLayer"),
                    Fusion::Pool => self.support.name("SliceLayer"),
                    Fusion::None | Fusion::Pad => return None,
                };
                Some(quote!(#ty: #role))
            });
        params
            .chain(layers)
            .chain(fused)
            .chain(self.bounds.iter().cloned())
            .collect()
    }
}
