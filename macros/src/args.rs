//! The arguments of one layer, the same way for every layer: positional
//! and named, given twice, unknown names (with a suggestion), too many.
//! Layer files read their values through [`Args`] and report through it,
//! so that every problem is collected and the parse goes on.

use proc_macro2::{Span, TokenStream};
use syn::punctuated::Punctuated;
use syn::{Expr, Ident, Token};

use crate::errors::Errors;
use crate::model::Dims;
use crate::text::{quoted_list, suggest};

/// The raw arguments of a layer: `None` when it has no parentheses.
pub type RawArgs = Option<Punctuated<Expr, Token![,]>>;

pub struct Args<'a> {
    name: Ident,
    tokens: &'a TokenStream,
    has_parens: bool,
    positional: Vec<Expr>,
    named: Vec<(Ident, Expr)>,
    /// `input_shape = (...)`, or an `Input`'s shape.
    pub input_shape: Option<(Dims, Span)>,
    errors: &'a mut Errors,
}

impl<'a> Args<'a> {
    /// Splits `raw` into positional and named arguments, reporting names
    /// given twice and positional arguments after named ones.
    pub fn new(name: Ident, raw: RawArgs, tokens: &'a TokenStream, errors: &'a mut Errors) -> Self {
        let mut args = Args {
            name,
            tokens,
            has_parens: raw.is_some(),
            positional: Vec::new(),
            named: Vec::new(),
            input_shape: None,
            errors,
        };
        for expr in raw.into_iter().flatten() {
            args.push(expr);
        }
        args
    }

    fn push(&mut self, expr: Expr) {
        let Expr::Assign(assign) = expr else {
            match self.named.first() {
                Some((name, _)) => self.error(syn::Error::new_spanned(
                    &expr,
                    format!("positional argument after the named argument `{name}`"),
                )),
                None => self.positional.push(expr),
            }
            return;
        };
        let ident = match &*assign.left {
            Expr::Path(p) => p.path.get_ident().cloned(),
            _ => None,
        };
        match ident {
            Some(ident) if self.named.iter().any(|(n, _)| *n == ident) => {
                self.error_at(ident.span(), format!("argument `{ident}` is given twice"))
            }
            Some(ident) => self.named.push((ident, *assign.right)),
            None => self.error(syn::Error::new_spanned(
                &assign.left,
                "expected an argument name, as in `padding = same`",
            )),
        }
    }

    /// The layer's name as written (`MaxPool`, `MaxPooling2D`...).
    pub fn name(&self) -> String {
        self.name.to_string()
    }

    pub fn span(&self) -> Span {
        self.name.span()
    }

    /// The whole layer, to point at.
    pub fn tokens(&self) -> &TokenStream {
        self.tokens
    }

    pub fn has_parens(&self) -> bool {
        self.has_parens
    }

    /// Reports named arguments outside `known`, with the closest known name
    /// when there is one.
    pub fn check_names(&mut self, known: &[&str]) {
        let unknown: Vec<Ident> = self
            .named
            .iter()
            .map(|(n, _)| n.clone())
            .filter(|n| !known.contains(&n.to_string().as_str()))
            .collect();
        for name in unknown {
            let layer = self.name();
            let hint = match suggest(&name.to_string(), known.iter().copied()) {
                Some(s) => format!("did you mean `{s}`?"),
                None => format!("it takes {}", quoted_list(known.iter().copied())),
            };
            self.error_at(
                name.span(),
                format!("unknown argument `{name}` for {layer}; {hint}"),
            );
        }
    }

    /// Removes and returns the named argument `name`.
    pub fn take(&mut self, name: &str) -> Option<Expr> {
        let i = self.named.iter().position(|(n, _)| n == name)?;
        Some(self.named.remove(i).1)
    }

    /// The next positional slot, which may also be given by name: the named
    /// value if there is one (reporting a positional one as well), else the
    /// next positional value.
    pub fn slot(&mut self, name: &str) -> Option<Expr> {
        let named = self.take(name);
        let positional = (!self.positional.is_empty()).then(|| self.positional.remove(0));
        if let (Some(e), Some(_)) = (&named, &positional) {
            let layer = self.name();
            self.error(syn::Error::new_spanned(
                e,
                format!("`{name}` of {layer} is given both by position and by name"),
            ));
        }
        named.or(positional)
    }

    /// The positional arguments not taken yet.
    pub fn positional(&self) -> &[Expr] {
        &self.positional
    }

    /// Takes the next `n` positional arguments as read.
    pub fn skip_positional(&mut self, n: usize) {
        self.positional.drain(..n.min(self.positional.len()));
    }

    pub fn has_named(&self, name: &str) -> bool {
        self.named.iter().any(|(n, _)| n == name)
    }

    /// Removes and returns the positional arguments not taken yet.
    pub fn rest(&mut self) -> Vec<Expr> {
        std::mem::take(&mut self.positional)
    }

    /// Reports every positional argument not taken yet.
    pub fn no_more(&mut self, usage: &str) {
        for extra in self.rest() {
            self.too_many(&extra, usage);
        }
    }

    pub fn too_many(&mut self, extra: &Expr, usage: &str) {
        let layer = self.name();
        self.error(syn::Error::new_spanned(
            extra,
            format!("too many arguments for {layer}: {usage}"),
        ));
    }

    /// `read(e)`, or `fallback` after reporting its error.
    pub fn read<T>(
        &mut self,
        e: &Expr,
        read: impl FnOnce(&Expr) -> syn::Result<T>,
        fallback: T,
    ) -> T {
        read(e).unwrap_or_else(|err| {
            self.error(err);
            fallback
        })
    }

    /// Like [`Args::read`] for a value the layer cannot do without: when it
    /// is missing, `missing` is reported on the layer's name.
    pub fn required<T>(
        &mut self,
        e: Option<Expr>,
        missing: &str,
        read: impl FnOnce(&Expr) -> syn::Result<T>,
        fallback: T,
    ) -> T {
        match e {
            Some(e) => self.read(&e, read, fallback),
            None => {
                self.error_at(self.span(), missing);
                fallback
            }
        }
    }

    /// `read` of the named argument `name`, or `default` when it is absent.
    pub fn optional<T>(
        &mut self,
        name: &str,
        read: impl FnOnce(&Expr) -> syn::Result<T>,
        default: T,
    ) -> T {
        match self.take(name) {
            Some(e) => self.read(&e, read, default),
            None => default,
        }
    }

    /// Where problems go, for a layer that parses a chain of its own.
    pub fn errors(&mut self) -> &mut Errors {
        self.errors
    }

    pub fn error(&mut self, e: syn::Error) {
        self.errors.push(e);
    }

    pub fn error_at(&mut self, span: Span, message: impl std::fmt::Display) {
        self.error(syn::Error::new(span, message));
    }
}
