//! The `Layer` impl of a model: each method calls the fields in turn.

use proc_macro2::{Ident, Literal, TokenStream};
use quote::{format_ident, quote};

use super::plan::Plan;
use crate::layers::Fusion;

/// `impl<..> Layer for #name<..> where .. { .. }`, under the support
/// imports.
pub fn layer_impl(plan: &Plan, name: &Ident, kind: &str) -> TokenStream {
    let (params, where_clause) = (plan.params(), plan.where_clause());
    let (input, output) = (plan.input_ty(), plan.output_ty());
    let field_tys = &plan.field_tys;
    let (fields, fusion) = (&plan.fields, &plan.fusion);
    let forward = forward_body(fields, fusion, Source::Borrowed, Sink::Into);
    let owned = forward_body(fields, fusion, Source::Owned, Sink::New);
    let fresh = forward_body(fields, fusion, Source::Borrowed, Sink::New);
    let taped = forward_taped(&plan.fields);
    let backward = backward(&plan.fields);
    let visits = visits(&plan.fields);
    let export = export_onnx(&plan.fields);
    quote! {
        impl #params Layer for #name #params #where_clause {
            type Input = #input;
            type Output = #output;
            type Tape = (#(<#field_tys as Layer>::Tape,)*);

            fn kind(&self) -> &'static str {
                #kind
            }

            fn forward_into(&self, x: &Batch<Self::Input>, out: &mut Batch<Self::Output>, ctx: &mut Context<'_>) {
                // Each activation lives in a buffer the context keeps, so
                // a reused context allocates nothing in steady state.
                #forward
            }

            fn forward_owned(&self, x: Batch<Self::Input>, ctx: &mut Context<'_>) -> Batch<Self::Output> {
                #owned
            }

            fn forward_ref(&self, x: &Batch<Self::Input>, ctx: &mut Context<'_>) -> Batch<Self::Output> {
                #fresh
            }

            fn forward_taped(&mut self, x: Batch<Self::Input>, ctx: &mut Context<'_>) -> (Batch<Self::Output>, Self::Tape) {
                #taped
            }

            fn backward(&mut self, tape: Self::Tape, g: Batch<Self::Output>, ctx: &mut Context<'_>) -> Batch<Self::Input> {
                #backward
            }

            #visits

            #export
        }
    }
}

/// Whether the model's input `x` is borrowed (`&Batch`) or owned.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Source {
    Borrowed,
    Owned,
}

/// Whether the last layer writes into the caller's `out` or into a batch
/// taken from the context just before it runs, which the body returns.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Sink {
    Into,
    New,
}

/// `x_i` is layer `i`'s output. The first layer reads the model's input,
/// the last writes into `out` or a new batch (see [`Sink`]); the ones
/// between own their input, so activations, dropout and flatten can work
/// in place. Each output is taken from the context right before its layer
/// runs, and each input given back right after: the buffer a layer writes
/// is then the one the layer before it read, still in cache (see
/// `Context::take_batch`). A run of a convolution and the per-pixel layers
/// after it is one `fused_into` call, a zero padding and such a run one
/// `padded_into` call, such a run and a pooling layer after it one
/// `pooled_into` call (`pooled_owned` when the run owns its input, so that
/// it gives the input back where the layers one by one would; see
/// `strata_core::fusion`).
fn forward_body(fields: &[Ident], fusion: &[Fusion], source: Source, sink: Sink) -> TokenStream {
    let n = fields.len();
    let mut code = TokenStream::new();
    // The variable holding the output of the layers so far, and whether it
    // is owned (a `Batch`, not a `&Batch`).
    let (mut prev, mut owned) = (format_ident!("x"), source == Source::Owned);
    let mut i = 0;
    while i < n {
        let last = i + fused_tail(fusion, i);
        let target = format_ident!("x{}", last);
        let padded = fusion[i] == Fusion::Pad;
        let start = match (padded, last > i && fusion[last] == Fusion::Pool) {
            (true, _) => Start::Pad,
            (false, true) => Start::Pooled,
            (false, false) => Start::Plain,
        };
        let call = |out: TokenStream| {
            let x = if owned { quote!(&#prev) } else { quote!(#prev) };
            run(&fields[i..=last], start, x, out)
        };
        let give_back = owned.then(|| quote!(ctx.recycle(#prev);));
        code.extend(if last + 1 == n && sink == Sink::Into {
            let run = call(quote!(out));
            quote!(#run #give_back)
        } else if owned && last == i {
            let field = &fields[i];
            quote!(let #target = self.#field.forward_owned(#prev, ctx);)
        } else if owned && start == Start::Pooled {
            let (head, tail, pool) = (&fields[i], &fields[i + 1..last], &fields[last]);
            let tail = match tail {
                [] => quote!(Bare::new()),
                tail => quote!((#(&self.#tail,)*)),
            };
            quote!(let #target = pooled_owned(&self.#head, #tail, &self.#pool, #prev, ctx);)
        } else {
            let run = call(quote!(&mut #target));
            quote!(let mut #target = ctx.take_batch(#prev.batch_size()); #run #give_back)
        });
        (prev, owned) = (target, true);
        i = last + 1;
    }
    if sink == Sink::New {
        code.extend(quote!(#prev));
    }
    code
}

/// How a run of fields starts and ends.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Start {
    /// A layer alone, or a convolution and its per-pixel layers.
    Plain,
    /// A zero padding folded into the convolution after it.
    Pad,
    /// A convolution, its per-pixel layers and a pooling layer.
    Pooled,
}

/// `fields` (one, or a fused run) from `x` into `out`.
fn run(fields: &[Ident], start: Start, x: TokenStream, out: TokenStream) -> TokenStream {
    match (start, fields) {
        (Start::Pad, [pad, head]) => {
            quote!(padded_into(&self.#pad, &self.#head, Bare::new(), #x, #out, ctx);)
        }
        (Start::Pad, [pad, head, tail @ ..]) => {
            quote!(padded_into(&self.#pad, &self.#head, (#(&self.#tail,)*), #x, #out, ctx);)
        }
        (Start::Pooled, [head, pool]) => {
            quote!(pooled_into(&self.#head, Bare::new(), &self.#pool, #x, #out, ctx);)
        }
        (Start::Pooled, [head, tail @ .., pool]) => {
            quote!(pooled_into(&self.#head, (#(&self.#tail,)*), &self.#pool, #x, #out, ctx);)
        }
        (_, [field]) => quote!(self.#field.forward_into(#x, #out, ctx);),
        (_, [head, tail @ ..]) => {
            quote!(fused_into(&self.#head, (#(&self.#tail,)*), #x, #out, ctx);)
        }
        (_, []) => TokenStream::new(),
    }
}

/// How many layers after field `i` run inside its fused run: a zero
/// padding's convolution and that one's tail, or a convolution's per-pixel
/// layers (at most three) and a pooling layer right after them.
fn fused_tail(fusion: &[Fusion], i: usize) -> usize {
    match (fusion[i], fusion.get(i + 1)) {
        (Fusion::Pad, Some(Fusion::Head)) => 1 + per_pixel(fusion, i + 1),
        (Fusion::Head, _) => {
            let tail = per_pixel(fusion, i);
            tail + usize::from(fusion.get(i + tail + 1) == Some(&Fusion::Pool))
        }
        _ => 0,
    }
}

/// The per-pixel layers right after convolution `i` (at most three).
fn per_pixel(fusion: &[Fusion], i: usize) -> usize {
    fusion[i + 1..]
        .iter()
        .take(3)
        .take_while(|f| **f == Fusion::Tail)
        .count()
}

fn tapes(n: usize) -> Vec<Ident> {
    (0..n).map(|i| format_ident!("t{}", i)).collect()
}

fn forward_taped(fields: &[Ident]) -> TokenStream {
    let tapes = tapes(fields.len());
    quote! {
        #(let (x, #tapes) = self.#fields.forward_taped(x, ctx);)*
        (x, (#(#tapes,)*))
    }
}

fn backward(fields: &[Ident]) -> TokenStream {
    let tapes = tapes(fields.len());
    let (last, last_tape) = (fields.last(), tapes.last());
    let rest = fields.iter().zip(&tapes).rev().skip(1);
    let (rest_fields, rest_tapes): (Vec<_>, Vec<_>) = rest.unzip();
    quote! {
        let (#(#tapes,)*) = tape;
        let g = self.#last.backward(#last_tape, g, ctx);
        // The loss's logit gradient is for the last layer only.
        ctx.take_logit_gradient();
        #(let g = self.#rest_fields.backward(#rest_tapes, g, ctx);)*
        g
    }
}

/// The methods that visit every field in order.
fn visits(fields: &[Ident]) -> TokenStream {
    let index = (0..fields.len()).map(Literal::usize_unsuffixed);
    let index_mut = index.clone();
    quote! {
        fn visit_tensors(&self, path: &mut VisitPath, v: &mut dyn Visitor) {
            #(path.child(#index, &self.#fields, v);)*
        }

        fn visit_tensors_mut(&mut self, path: &mut VisitPath, v: &mut dyn VisitorMut) {
            #(path.child_mut(#index_mut, &mut self.#fields, v);)*
        }

        fn initialize(&mut self, rng: &mut dyn RngCore) {
            #(self.#fields.initialize(rng);)*
        }

        fn summary_rows(&self, rows: &mut Vec<SummaryRow>) {
            #(self.#fields.summary_rows(rows);)*
        }
    }
}

/// `export_onnx`: each field's nodes in turn, each under its chain
/// position and kind (`3:Conv2D/...`), so a viewer shows the chain.
fn export_onnx(fields: &[Ident]) -> TokenStream {
    let index = (0..fields.len()).map(Literal::usize_unsuffixed);
    quote! {
        fn export_onnx(
            &self,
            g: &mut ::strata::onnx::OnnxGraph,
            x: &str,
        ) -> ::core::result::Result<::std::string::String, ::strata::onnx::ExportError> {
            let x = ::std::string::String::from(x);
            #(let x = g.layer(#index, self.#fields.kind(), |g| self.#fields.export_onnx(g, &x))?;)*
            ::core::result::Result::Ok(x)
        }
    }
}
