//! The two forms of `sequential!`: a chain (an expression), or
//! `#[attrs] vis struct Name = chain` (a named model, at item position).

use proc_macro2::{TokenStream, TokenTree};
use syn::parse::{ParseStream, Parser};
use syn::{Attribute, Ident, Token, Visibility};

/// `#[attrs] vis struct Name =`.
pub struct Header {
    pub attrs: Vec<Attribute>,
    pub vis: Visibility,
    pub name: Ident,
}

pub struct Invocation {
    pub header: Option<Header>,
    pub chain: TokenStream,
}

pub fn parse(input: TokenStream) -> syn::Result<Invocation> {
    Parser::parse2(parse_invocation, input)
}

fn parse_invocation(input: ParseStream) -> syn::Result<Invocation> {
    if !starts_with_struct(input) {
        return Ok(Invocation {
            header: None,
            chain: input.parse()?,
        });
    }
    let header = Header {
        attrs: input.call(Attribute::parse_outer)?,
        vis: input.parse()?,
        name: {
            input.parse::<Token![struct]>()?;
            input.parse()?
        },
    };
    if input.peek(Token![<]) {
        return Err(input.error(
            "a named model takes no generic parameters: it is generic over its input shape when the chain has none",
        ));
    }
    input.parse::<Token![=]>().map_err(|e| {
        syn::Error::new(
            e.span(),
            "expected `=` and the chain, as in `pub struct VggBlock = Conv2D(64, (3, 3)) => relu`",
        )
    })?;
    Ok(Invocation {
        header: Some(header),
        chain: without_final_semicolon(input.parse()?),
    })
}

/// Whether the input is `#[...] vis struct ...`: a chain starts with a
/// layer, never with an attribute, a visibility or `struct`.
fn starts_with_struct(input: ParseStream) -> bool {
    let fork = input.fork();
    fork.call(Attribute::parse_outer).is_ok()
        && fork.parse::<Visibility>().is_ok()
        && fork.peek(Token![struct])
}

fn without_final_semicolon(chain: TokenStream) -> TokenStream {
    let mut tokens: Vec<TokenTree> = chain.into_iter().collect();
    if matches!(tokens.last(), Some(TokenTree::Punct(p)) if p.as_char() == ';') {
        tokens.pop();
    }
    tokens.into_iter().collect()
}
