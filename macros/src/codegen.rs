//! From a checked chain to code: one struct with one field per layer, whose
//! types carry every shape, and a `Layer` impl that calls the fields in turn.
//!
//! Where the macro knows a shape it writes it out (`Shape3<U32, U32, U3>`),
//! so the expansion reads like hand-written code and compiles fast; where it
//! does not (a block without an input shape, or after an embedded block) the
//! shape becomes a type parameter tied to the layers by `where` clauses, and
//! the compiler infers it from how the model is used.

use proc_macro2::{Ident, Literal, Span, TokenStream};
use quote::{format_ident, quote};

use crate::check::{Checked, Known};
use crate::model::{Act, LayerKind, Padding};

/// typenum's type for `n`: its named constant up to 1024, beyond that a
/// `UInt` chain built on the largest named prefix (typenum names no `U2304`).
fn unsigned(n: usize) -> TokenStream {
    if n <= 1024 {
        let id = format_ident!("U{}", n);
        quote!(#id)
    } else {
        let high = unsigned(n >> 1);
        let bit = if n & 1 == 1 { quote!(B1) } else { quote!(B0) };
        quote!(UInt<#high, #bit>)
    }
}

fn shape_type(dims: &[usize]) -> TokenStream {
    let d: Vec<TokenStream> = dims.iter().map(|&n| unsigned(n)).collect();
    match d.as_slice() {
        [n] => quote!(Shape1<#n>),
        [h, w, c] => quote!(Shape3<#h, #w, #c>),
        _ => unreachable!("the checker only lets ranks 1 and 3 through"),
    }
}

fn padding_type(p: Padding) -> TokenStream {
    match p {
        Padding::Valid => quote!(Valid),
        Padding::Same => quote!(Same),
    }
}

fn act_type(a: Act) -> TokenStream {
    let id = Ident::new(a.type_name(), Span::call_site());
    quote!(#id)
}

/// `, Relu` for a non-default activation, nothing for linear.
fn act_param(a: Act) -> TokenStream {
    if a == Act::Linear {
        quote!()
    } else {
        let t = act_type(a);
        quote!(, #t)
    }
}

/// Field name: Keras's snake-case kind and the layer's position, which is
/// also its index in weight files (`conv2d_0` holds `0.weight`).
fn field_name(kind: &LayerKind, i: usize) -> Ident {
    let base = match kind {
        LayerKind::Conv2D { .. } => "conv2d",
        LayerKind::Pool { max: true, .. } => "max_pooling2d",
        LayerKind::Pool { max: false, .. } => "average_pooling2d",
        LayerKind::Dropout { .. } => "dropout",
        LayerKind::Flatten => "flatten",
        LayerKind::Dense { .. } => "dense",
        LayerKind::Activation(_) => "activation",
        LayerKind::Block(_) => "block",
        LayerKind::Input | LayerKind::Invalid => "input",
    };
    format_ident!("{}_{}", base, i)
}

pub fn generate(checked: Checked) -> TokenStream {
    let Checked { layers, shapes } = checked;
    let n = layers.len();

    // Shape types: written out where known, a parameter where not. The
    // final output is named through the last layer instead of a parameter,
    // so that every parameter appears in a field.
    let mut generics: Vec<Ident> = Vec::new();
    let mut shape_tys: Vec<TokenStream> = Vec::with_capacity(n + 1);
    let mut shape_is_param = Vec::with_capacity(n + 1);
    for (i, s) in shapes.iter().enumerate().take(n) {
        match s {
            Known::Dims(d) => {
                shape_tys.push(shape_type(d));
                shape_is_param.push(false);
            }
            _ => {
                let p = format_ident!("S{}", i);
                shape_tys.push(quote!(#p));
                generics.push(p);
                shape_is_param.push(true);
            }
        }
    }

    let mut fields = Vec::new();
    let mut field_tys = Vec::new();
    let mut inits = Vec::new();
    let mut block_args = Vec::new();
    let mut block_bindings = Vec::new();
    for (i, layer) in layers.iter().enumerate() {
        let input = &shape_tys[i];
        let name = field_name(&layer.kind, i);
        let (ty, init) = match &layer.kind {
            LayerKind::Input | LayerKind::Invalid => {
                unreachable!("removed or reported by the checker")
            }
            LayerKind::Conv2D {
                filters,
                kernel,
                strides,
                padding,
                activation,
                use_bias,
            } => {
                let (f, kh, kw) = (
                    unsigned(filters.value),
                    unsigned(kernel.0.value),
                    unsigned(kernel.1.value),
                );
                let (sh, sw) = (unsigned(strides.0.value), unsigned(strides.1.value));
                let p = padding_type(*padding);
                let a = act_param(*activation);
                (
                    quote!(Conv2D<#input, #f, #kh, #kw, #sh, #sw, #p #a>),
                    quote!(Conv2D::new(#use_bias, rng)),
                )
            }
            LayerKind::Pool {
                max,
                pool,
                strides,
                padding,
                ..
            } => {
                let (ph, pw) = (unsigned(pool.0.value), unsigned(pool.1.value));
                let (sh, sw) = (unsigned(strides.0.value), unsigned(strides.1.value));
                let p = padding_type(*padding);
                let t = if *max {
                    quote!(MaxPooling2D)
                } else {
                    quote!(AveragePooling2D)
                };
                (
                    quote!(#t<#input, #ph, #pw, #sh, #sw, #p>),
                    quote!(#t::new()),
                )
            }
            LayerKind::Dropout { rate, .. } => {
                let r = Literal::f32_unsuffixed(*rate as f32);
                (
                    quote!(Dropout<#input>),
                    quote!(Dropout::new(#r).expect("sequential! checked the rate")),
                )
            }
            LayerKind::Flatten => (quote!(Flatten<#input>), quote!(Flatten::new())),
            LayerKind::Dense {
                units,
                activation,
                use_bias,
            } => {
                let u = unsigned(units.value);
                let a = act_param(*activation);
                let mut init = quote!(Dense::new(#use_bias, rng));
                if i > 0 && matches!(layers[i - 1].kind, LayerKind::Flatten) {
                    // Weight files hold this layer's in-features in
                    // PyTorch's (C, H, W) flatten order.
                    let flattened = &shape_tys[i - 1];
                    init = quote!(#init.follows_flatten_of(<#flattened as Shape>::DIMS));
                }
                (quote!(Dense<#input, #u #a>), init)
            }
            LayerKind::Activation(act) => {
                let a = act_type(*act);
                (quote!(Activation<#input, #a>), quote!(Activation::new()))
            }
            LayerKind::Block(expr) => {
                let p = format_ident!("B{}", i);
                generics.push(p.clone());
                let arg = format_ident!("block_{}", i);
                block_args.push(quote!(#arg: #p));
                block_bindings.push((arg.clone(), expr.clone()));
                (quote!(#p), quote!(#arg))
            }
        };
        fields.push(name);
        field_tys.push(ty);
        inits.push(init);
    }

    let last_ty = &field_tys[n - 1];
    let output_ty = match &shapes[n] {
        Known::Dims(d) if generics.is_empty() => shape_type(d),
        _ => quote!(<#last_ty as Layer>::Output),
    };
    let input_ty = &shape_tys[0];

    // In generic mode, tie each layer's shapes together.
    let mut bounds = Vec::new();
    if !generics.is_empty() {
        for (i, ty) in field_tys.iter().enumerate() {
            let input = &shape_tys[i];
            if shape_is_param[i] {
                bounds.push(quote!(#input: Shape));
            }
            if i + 1 < n {
                let next = &shape_tys[i + 1];
                bounds.push(quote!(#ty: Layer<Input = #input, Output = #next>));
            } else {
                bounds.push(quote!(#ty: Layer<Input = #input>));
            }
        }
    }
    let where_clause = if bounds.is_empty() {
        quote!()
    } else {
        quote!(where #(#bounds,)*)
    };
    let params = if generics.is_empty() {
        quote!()
    } else {
        quote!(<#(#generics),*>)
    };

    // x_i is layer i's output; the last layer writes into `out`.
    // x_i is layer i's output. The first layer reads the caller's input,
    // the last writes into `out`; the ones between own their input, so
    // activations, dropout and flatten can work in place.
    let forward_body = {
        let mut body = TokenStream::new();
        for (i, field) in fields.iter().enumerate() {
            let o = format_ident!("x{}", i);
            let p = format_ident!("x{}", i.saturating_sub(1));
            body.extend(match (i, i + 1 == n) {
                (0, true) => quote!(self.#field.forward_into(x, out, ctx);),
                (0, false) => quote!(
                    let mut #o = ctx.take_batch(x.batch_size());
                    self.#field.forward_into(x, &mut #o, ctx);
                ),
                (_, true) => quote!(
                    self.#field.forward_into(&#p, out, ctx);
                    ctx.recycle(#p);
                ),
                (_, false) => quote!(let #o = self.#field.forward_owned(#p, ctx);),
            });
        }
        body
    };
    let last = &fields[n - 1];
    let rev_rest: Vec<&Ident> = fields[..n - 1].iter().rev().collect();
    let block_names = block_bindings.iter().map(|(a, _)| a);
    let block_exprs = block_bindings.iter().map(|(_, e)| e);
    let block_names2 = block_names.clone();

    quote! {{
        // Embedded blocks are evaluated in the caller's scope.
        #(let #block_names = #block_exprs;)*
        {
            use ::strata::__macro_support::*;

            /// A model built by `sequential!`: one field per layer, named by
            /// kind and position (the position is the weight-file index).
            #[allow(clippy::type_complexity)]
            pub struct Sequential #params {
                #(pub #fields: #field_tys,)*
            }

            impl #params Sequential #params #where_clause {
                fn new(#(#block_args,)* rng: &mut dyn RngCore) -> Self {
                    Sequential {
                        #(#fields: #inits,)*
                    }
                }

                fn layers(&self) -> [&dyn AnyLayer; #n] {
                    [#(&self.#fields),*]
                }

                fn layers_mut(&mut self) -> [&mut dyn AnyLayer; #n] {
                    [#(&mut self.#fields),*]
                }
            }

            impl #params Layer for Sequential #params #where_clause {
                type Input = #input_ty;
                type Output = #output_ty;

                fn kind(&self) -> &'static str {
                    "Sequential"
                }

                fn forward_into(&self, x: &Batch<Self::Input>, out: &mut Batch<Self::Output>, ctx: &mut Context<'_>) {
                    // Each activation lives in a buffer the context keeps, so
                    // a reused context allocates nothing in steady state.
                    #forward_body
                }

                fn backward(&mut self, g: &Batch<Self::Output>, ctx: &mut Context<'_>) -> Batch<Self::Input> {
                    let g = self.#last.backward(g, ctx);
                    #(let g = self.#rev_rest.backward(&g, ctx);)*
                    g
                }

                fn visit_params_mut(&mut self, f: &mut dyn FnMut(&mut [f32], &[f32])) {
                    sequential::visit_params_mut(&mut self.layers_mut(), f)
                }

                fn zero_grads(&mut self) {
                    sequential::zero_grads(&mut self.layers_mut())
                }

                fn export_grad(&self, name: &str) -> Option<Vec<f32>> {
                    sequential::export_grad(&self.layers(), name)
                }

                fn ends_with_softmax(&self) -> bool {
                    self.#last.ends_with_softmax()
                }

                fn params(&self) -> Vec<ParamInfo> {
                    sequential::params(&self.layers())
                }

                fn param_count(&self) -> usize {
                    sequential::param_count(&self.layers())
                }

                fn export_param(&self, name: &str) -> Option<Vec<f32>> {
                    sequential::export(&self.layers(), name)
                }

                fn import_param(&mut self, name: &str, values: &[f32]) -> bool {
                    sequential::import(&mut self.layers_mut(), name, values)
                }

                fn initialize(&mut self, rng: &mut dyn RngCore) {
                    sequential::initialize(&mut self.layers_mut(), rng)
                }

                fn summary_rows(&self, rows: &mut Vec<SummaryRow>) {
                    sequential::summary_rows(&self.layers(), rows)
                }
            }

            Sequential::new(#(#block_names2,)* &mut seeded_rng(DEFAULT_SEED))
        }
    }}
}
