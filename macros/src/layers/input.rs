//! `Input(h, w, c)`, `Input(n)`, `Input(shape = (...))`: not a layer, the
//! shape the chain takes.

use syn::spanned::Spanned;

use super::Entry;
use crate::args::Args;
use crate::model::{Dims, Element};
use crate::values;

pub const ENTRIES: &[Entry] = &[Entry {
    names: &["Input", "InputLayer"],
    listed: &["Input"],
    args: &["shape"],
    parse,
}];

fn parse(a: &mut Args) -> Element {
    let named = a.take("shape");
    let positional = a.rest();
    let shape = match (named.as_ref(), positional.as_slice()) {
        (Some(e), []) | (None, [e]) => a.read(e, |e| values::shape(e).map(|(d, _)| d), Dims::new()),
        (None, dims) if dims.len() == 3 => dims
            .iter()
            .map(|d| a.read(d, |e| values::usize(e, "a dimension").map(|n| n.value), 1))
            .collect(),
        _ => {
            a.error(syn::Error::new_spanned(
                a.tokens(),
                format!(
                    "Input takes a sample shape: `Input(height, width, channels)` or `Input(features)`, but {} values were given",
                    positional.len()
                ),
            ));
            Dims::new()
        }
    };
    if !shape.is_empty() {
        a.input_shape = Some((shape, a.tokens().span()));
    }
    Element::Input
}
