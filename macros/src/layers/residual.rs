//! `Residual({ chain })` (`y = chain(x) + x`) and `Residual({ chain },
//! shortcut = { chain })` (`y = chain(x) + shortcut(x)`).
//!
//! The branches are chains written in the DSL, parsed by the same parser
//! and checked with the residual's input as theirs; each becomes a model
//! of its own (`Main`, `Shortcut`) in a module beside the enclosing model.
//! Where the shapes are known, branches whose outputs differ are an error
//! in words; where they are not, the core's `SameShape` rule catches it.

use std::cell::RefCell;

use proc_macro2::{Delimiter, Ident, Span, TokenStream, TokenTree};
use quote::{format_ident, quote};
use syn::{parse_quote, Expr};

use super::{Entry, InitCx, LayerDef, ShapeCx, TypeCx};
use crate::args::Args;
use crate::errors::Errors;
use crate::invocation::Header;
use crate::model::{Checked, Element, Known, LayerSpec};
use crate::{check, codegen, parse};

pub const ENTRIES: &[Entry] = &[Entry {
    names: &["Residual"],
    listed: &["Residual"],
    args: &["shortcut", "input_shape"],
    parse: parse_residual,
}];

const USAGE: &str = "Residual({ chain }) or Residual({ chain }, shortcut = { chain })";

/// One branch: its layers as parsed, then, once the residual's input is
/// known to the checker, as checked.
struct Branch {
    parsed: RefCell<Vec<LayerSpec>>,
    checked: RefCell<Option<Checked>>,
}

struct Residual {
    main: Branch,
    shortcut: Option<Branch>,
    /// The rank the main branch's first layer needs, if any.
    input_rank: Option<usize>,
}

fn parse_residual(a: &mut Args) -> Element {
    let main = a.rest();
    let shortcut = a.take("shortcut");
    let Some((first, extra)) = main.split_first() else {
        a.error_at(
            a.span(),
            format!("Residual needs its main branch, a chain in braces: {USAGE}"),
        );
        return Element::Invalid;
    };
    for e in extra {
        a.too_many(e, USAGE);
    }
    let main = branch(a, first, "main branch");
    let shortcut = match shortcut {
        Some(e) => match branch(a, &e, "shortcut") {
            Some(chain) => Some(chain),
            None => return Element::Invalid,
        },
        None => None,
    };
    let Some(main) = main else {
        return Element::Invalid;
    };
    let input_rank = main
        .first()
        .and_then(LayerSpec::def)
        .and_then(|d| d.input_rank());
    Element::Layer(Box::new(Residual {
        main: Branch::new(main),
        shortcut: shortcut.map(Branch::new),
        input_rank,
    }))
}

/// The chain in braces `e`, parsed; `None` after reporting why it is not
/// one.
fn branch(a: &mut Args, e: &Expr, what: &str) -> Option<Vec<LayerSpec>> {
    let Some(tokens) = braced(e) else {
        a.error(syn::Error::new_spanned(
            e,
            format!("a Residual's {what} is a chain of layers in braces, as in `{{ Conv2D(16, (3, 3), same) => relu }}`: {USAGE}"),
        ));
        return None;
    };
    if tokens.is_empty() {
        a.error(syn::Error::new_spanned(
            e,
            format!("a Residual's {what} needs at least one layer (an identity shortcut is written by leaving `shortcut` out)"),
        ));
        return None;
    }
    let chain = parse::parse_chain(tokens, a.errors());
    for layer in &chain {
        if let Some(problem) = not_in_branch(layer) {
            a.error(layer.error(format!("{problem} inside a Residual's {what}")));
        }
    }
    Some(chain)
}

/// What a branch cannot hold: its input is the residual's.
fn not_in_branch(layer: &LayerSpec) -> Option<&'static str> {
    if matches!(layer.element, Element::Input) || layer.input_shape.is_some() {
        return Some("no input shape can be given: a branch takes the residual's input");
    }
    layer.def().and_then(|d| d.embedded()).map(|_| {
        "an embedded `{ block }` cannot be used (the macro cannot name its type); write its layers"
    })
}

/// The bounds of a branch model, made to hold where the enclosing model
/// is: its input shape `S` becomes `input`, and the paths to the modules
/// of residuals nested in it start from `module`, where they are.
fn relocate(tokens: TokenStream, input: &TokenStream, module: &Ident) -> TokenStream {
    let mut out = Vec::new();
    let mut after_path_separator = false;
    for tt in tokens {
        let separator = matches!(&tt, TokenTree::Punct(p) if p.as_char() == ':');
        match tt {
            TokenTree::Ident(i) if i == "S" => out.extend(input.clone()),
            TokenTree::Ident(i)
                if !after_path_separator && i.to_string().starts_with("__strata_") =>
            {
                out.extend(quote!(#module::#i));
            }
            TokenTree::Group(g) => {
                let mut group =
                    proc_macro2::Group::new(g.delimiter(), relocate(g.stream(), input, module));
                group.set_span(g.span());
                out.push(TokenTree::Group(group));
            }
            other => out.push(other),
        }
        after_path_separator = separator;
    }
    out.into_iter().collect()
}

/// The tokens inside `{ ... }`, if `e` is a braced group.
fn braced(e: &Expr) -> Option<TokenStream> {
    let mut tokens = quote!(#e).into_iter();
    match (tokens.next(), tokens.next()) {
        (Some(TokenTree::Group(g)), None) if g.delimiter() == Delimiter::Brace => Some(g.stream()),
        _ => None,
    }
}

/// `__strata_Sequential_residual_3`: unique beside the model's struct.
fn module(model: &Ident, index: usize) -> Ident {
    format_ident!("__strata_{}_residual_{}", model, index)
}

impl Branch {
    fn new(chain: Vec<LayerSpec>) -> Branch {
        Branch {
            parsed: RefCell::new(chain),
            checked: RefCell::new(None),
        }
    }

    /// Checks the branch for `input`: its output shape, or every problem
    /// in it as one error.
    fn check(&self, input: &Known) -> syn::Result<Known> {
        let chain = std::mem::take(&mut *self.parsed.borrow_mut());
        let mut errors = Errors::default();
        let checked = check::branch(chain, input.clone(), &mut errors);
        let output = checked.shapes.last().cloned().unwrap_or(Known::Unknown);
        *self.checked.borrow_mut() = Some(checked);
        match errors.combined() {
            Some(e) => Err(e),
            None => Ok(output),
        }
    }

    /// The branch as a model named `name`: a struct and its impls.
    fn model(&self, name: &str) -> TokenStream {
        let checked = self.checked.borrow();
        let checked = checked
            .as_ref()
            .expect("a branch is checked before code is generated");
        let header = Header {
            attrs: vec![parse_quote!(#[doc(hidden)])],
            vis: parse_quote!(pub),
            name: Ident::new(name, Span::call_site()),
        };
        codegen::item(&header, checked)
    }

    /// The bounds of the branch's model `name` (generic over `S`) in
    /// `module`, for its input `input`: what a model that holds it must
    /// repeat.
    fn bounds(&self, name: &str, module: &Ident, input: &TokenStream) -> Vec<TokenStream> {
        if !self.generic() {
            return Vec::new();
        }
        let checked = self.checked.borrow();
        let checked = checked
            .as_ref()
            .expect("a branch is checked before code is generated");
        let predicates = codegen::branch_predicates(checked, &Ident::new(name, Span::call_site()));
        predicates
            .into_iter()
            .map(|p| relocate(p, input, module))
            .collect()
    }

    /// Whether the branch's model is generic over its input shape.
    fn generic(&self) -> bool {
        let checked = self.checked.borrow();
        !matches!(checked.as_ref().map(|c| &c.shapes[0]), Some(Known::Dims(_)))
    }
}

impl Residual {
    /// The module that holds the branches' models, named after the
    /// enclosing model and the residual's position.
    fn module(&self, cx: &TypeCx) -> Ident {
        module(cx.model, cx.index)
    }

    /// The type of a branch's model, `module::Main` or `module::Main<S>`.
    fn branch_type(&self, branch: &Branch, name: &str, cx: &TypeCx) -> TokenStream {
        let (module, name) = (self.module(cx), Ident::new(name, Span::call_site()));
        let input = cx.input;
        match branch.generic() {
            true => quote!(#module::#name<#input>),
            false => quote!(#module::#name),
        }
    }

    /// The error for branches whose outputs differ, naming both shapes.
    fn mismatch(&self, main: &Known, other: &Known, cx: &ShapeCx) -> syn::Error {
        let (main_words, other_words) = (describe(main), describe(other));
        let residual = residual_words(cx);
        cx.error(match &self.shortcut {
            None => format!(
                "the main branch of {residual} outputs {main_words}, but its input is {other_words}: an identity \
                 shortcut adds the input to the branch's output, so the two must have one shape; give a shortcut \
                 that maps the input to {main_words}, such as `shortcut = {{ {} }}`",
                projection_hint(other, main),
            ),
            Some(_) => format!(
                "the main branch of {residual} outputs {main_words}, but its shortcut outputs {other_words}: the \
                 two are added, so they must have one shape"
            ),
        })
    }
}

/// The residual in words: as written when short, else by its name.
fn residual_words(cx: &ShapeCx) -> String {
    let text = cx.text();
    if text.len() <= 60 {
        format!("`{text}`")
    } else {
        "this Residual".to_string()
    }
}

fn describe(shape: &Known) -> String {
    match shape {
        Known::Dims(d) if d.len() == 1 => format!("a vector of {}", d[0]),
        Known::Dims(d) => strata_shapes::format_dims(d),
        Known::Rank(1) => "a vector".to_string(),
        Known::Rank(_) => "a 3-D tensor".to_string(),
        Known::Unknown => "an unknown shape".to_string(),
    }
}

/// A projection from `input` to `main`: a 1x1 convolution, strided when
/// the main branch shrinks the map by whole factors (ResNet's shortcut),
/// or a Dense on vectors.
fn projection_hint(input: &Known, main: &Known) -> String {
    match (input.dims(), main.dims()) {
        (Some(&[h, w, _]), Some(&[h2, w2, c2])) if h2 > 0 && w2 > 0 => {
            let (sh, sw) = (h.div_ceil(h2), w.div_ceil(w2));
            if (sh, sw) == (1, 1) {
                format!("Conv2D({c2}, (1, 1))")
            } else {
                format!("Conv2D({c2}, (1, 1), strides = ({sh}, {sw}))")
            }
        }
        (Some(&[_]), Some(&[n])) => format!("Dense({n})"),
        _ => "Conv2D(filters, (1, 1), strides = ...)".to_string(),
    }
}

impl LayerDef for Residual {
    fn field_base(&self) -> &'static str {
        "residual"
    }

    fn input_rank(&self) -> Option<usize> {
        self.input_rank
    }

    fn output_shape(&self, input: &Known, cx: &ShapeCx) -> syn::Result<Known> {
        let main = self.main.check(input);
        let other = match &self.shortcut {
            Some(sc) => sc.check(input),
            None => Ok(input.clone()),
        };
        let (main, other) = match (main, other) {
            (Ok(m), Ok(o)) => (m, o),
            (Err(mut e), Err(o)) => {
                e.combine(o);
                return Err(e);
            }
            (Err(e), _) | (_, Err(e)) => return Err(e),
        };
        let differ = match (&main, &other) {
            (Known::Dims(a), Known::Dims(b)) => a != b,
            _ => matches!((main.rank(), other.rank()), (Some(a), Some(b)) if a != b),
        };
        if differ {
            return Err(self.mismatch(&main, &other, cx));
        }
        Ok(match (&main, &other) {
            (Known::Dims(_), _) | (_, Known::Unknown) => main,
            _ => other,
        })
    }

    fn field_type(&self, cx: &TypeCx) -> TokenStream {
        let name = cx.support.name("Residual");
        let main = self.branch_type(&self.main, "Main", cx);
        let shortcut = match &self.shortcut {
            Some(sc) => self.branch_type(sc, "Shortcut", cx),
            None => cx.support.name("Identity"),
        };
        quote!(#name<#main, #shortcut>)
    }

    fn bounds(&self, cx: &TypeCx) -> Vec<TokenStream> {
        let module = self.module(cx);
        let mut bounds = self.main.bounds("Main", &module, cx.input);
        if let Some(sc) = &self.shortcut {
            bounds.extend(sc.bounds("Shortcut", &module, cx.input));
        }
        bounds
    }

    fn items(&self, cx: &TypeCx) -> TokenStream {
        let module = self.module(cx);
        let main = self.main.model("Main");
        let shortcut = self.shortcut.as_ref().map(|sc| sc.model("Shortcut"));
        quote! {
            #[doc(hidden)]
            #[allow(non_snake_case)]
            pub mod #module {
                #main
                #shortcut
            }
        }
    }

    fn constructor(&self, cx: &InitCx) -> TokenStream {
        let module = module(cx.model, cx.index);
        let shortcut = match &self.shortcut {
            Some(_) => quote!(#module::Shortcut::__with_rng(rng)),
            None => quote!(Identity),
        };
        quote!(Residual::new(#module::Main::__with_rng(rng), #shortcut))
    }
}

#[cfg(test)]
mod tests {
    use quote::quote;

    use crate::errors::Errors;
    use crate::model::Known;
    use crate::{check, codegen, parse};

    fn run(chain: TokenStream) -> (Vec<Known>, Vec<String>, Option<TokenStream>) {
        let mut errors = Errors::default();
        let layers = parse::parse_chain(chain, &mut errors);
        let checked = check::check(layers, &mut errors);
        let messages = errors.messages();
        let code = checked
            .as_ref()
            .filter(|_| messages.is_empty())
            .map(codegen::expression);
        (
            checked.map(|c| c.shapes).unwrap_or_default(),
            messages,
            code,
        )
    }

    use proc_macro2::TokenStream;

    #[test]
    fn branches_take_the_residuals_input() {
        let (shapes, errors, code) = run(quote!(
            Input(8, 8, 4) => Residual({ Conv2D(8, (3, 3), same, strides = (2, 2)) => relu
                => Residual({ Conv2D(8, (3, 3), same) }) },
                shortcut = { Conv2D(8, (1, 1), strides = (2, 2)) }) => Flatten
        ));
        assert_eq!(errors, Vec::<String>::new());
        assert_eq!(shapes[1], Known::Dims(vec![4, 4, 8]));
        let code = code.unwrap().to_string().replace(' ', "");
        assert!(
            code.contains("pubmod__strata_Sequential_residual_0"),
            "{code}"
        );
        assert!(code.contains("pubmod__strata_Main_residual_2"), "{code}");
        assert!(code.contains("Residual<__strata_Sequential_residual_0::Main,__strata_Sequential_residual_0::Shortcut>"));
    }

    #[test]
    fn mismatched_branches_are_named_in_words() {
        let (_, errors, _) =
            run(quote!(Input(8, 8, 4) => Residual({ Conv2D(8, (3, 3), same, strides = (2, 2)) })));
        assert_eq!(errors.len(), 1);
        assert!(
            errors[0].contains("outputs 4x4x8, but its input is 8x8x4"),
            "{}",
            errors[0]
        );
        assert!(
            errors[0].contains("shortcut = { Conv2D(8, (1, 1), strides = (2, 2)) }"),
            "{}",
            errors[0]
        );
        let (_, errors, _) = run(quote!(Input(16) => Residual({ Dense(8) })));
        assert!(
            errors[0].contains("a vector of 8, but its input is a vector of 16"),
            "{}",
            errors[0]
        );
        assert!(
            errors[0].contains("shortcut = { Dense(8) }"),
            "{}",
            errors[0]
        );
    }

    #[test]
    fn a_branch_is_a_chain_without_an_input_shape() {
        let (_, errors, _) = run(quote!(Input(8) => Residual(relu)));
        assert!(
            errors[0].contains("is a chain of layers in braces"),
            "{errors:?}"
        );
        let (_, errors, _) = run(quote!(Input(8) => Residual({})));
        assert!(errors[0].contains("needs at least one layer"), "{errors:?}");
        let (_, errors, _) = run(quote!(Input(8) => Residual({ Input(8) => relu })));
        assert!(
            errors[0].contains("no input shape can be given"),
            "{errors:?}"
        );
        let (_, errors, _) = run(quote!(Input(8) => Residual({ { block } })));
        assert!(
            errors[0].contains("an embedded `{ block }` cannot be used"),
            "{errors:?}"
        );
        let (_, errors, _) = run(quote!(Input(8) => Residual({ relu }, { relu })));
        assert!(
            errors[0].contains("too many arguments for Residual"),
            "{errors:?}"
        );
    }

    #[test]
    fn without_an_input_shape_the_rank_flows_through() {
        let (shapes, errors, _) =
            run(quote!(Residual({ Conv2D(8, (3, 3), same) => relu }) => Flatten));
        assert_eq!(errors, Vec::<String>::new());
        assert_eq!(shapes[..2], [Known::Rank(3), Known::Rank(3)]);
    }
}
