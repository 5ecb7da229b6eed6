//! Checking a parsed chain: where the input shape comes from, ranks, and,
//! where the input shape is known, every layer's shape by its own rule.
//! This is the error users read: it names the layers and says the shapes
//! in words. (The type-level rules in `strata-core` are the same, and catch
//! what the macro cannot see, such as a block used with an input shape
//! later.)

use crate::errors::Errors;
use crate::layers::ShapeCx;
use crate::model::{Checked, Dims, Element, Known, Layer, LayerSpec};

pub fn check(mut chain: Vec<LayerSpec>, errors: &mut Errors) -> Option<Checked> {
    let input = input_shape(&chain, errors);
    if matches!(chain.first().map(|l| &l.element), Some(Element::Input)) {
        let input_layer = chain.remove(0);
        if chain.is_empty() {
            errors.push(input_layer.error("sequential! needs at least one layer after Input"));
        }
    }
    if chain.is_empty() {
        return None;
    }
    let first = match input {
        Some(d) => Known::Dims(d),
        // Without an input shape the first layer may still fix the rank.
        None => chain[0]
            .def()
            .and_then(|d| d.input_rank())
            .map_or(Known::Unknown, Known::Rank),
    };
    let shapes = flow(&chain, first, errors);
    let layers = chain.into_iter().filter_map(into_layer).collect();
    Some(Checked { layers, shapes })
}

/// A chain inside a layer (a residual's branch) whose input is `input`:
/// every layer's shape by its own rule, problems reported to `errors`.
pub fn branch(chain: Vec<LayerSpec>, input: Known, errors: &mut Errors) -> Checked {
    let first = match input {
        Known::Unknown => chain
            .first()
            .and_then(|l| l.def())
            .and_then(|d| d.input_rank())
            .map_or(Known::Unknown, Known::Rank),
        known => known,
    };
    let shapes = flow(&chain, first, errors);
    let layers = chain.into_iter().filter_map(into_layer).collect();
    Checked { layers, shapes }
}

fn into_layer(spec: LayerSpec) -> Option<Layer> {
    match spec.element {
        Element::Layer(def) => Some(Layer {
            def,
            text: spec.text,
        }),
        // Reported: nothing is generated.
        Element::Input | Element::Invalid => None,
    }
}

/// `Input(...)` first, or `input_shape = (...)` on the first layer.
fn input_shape(chain: &[LayerSpec], errors: &mut Errors) -> Option<Dims> {
    let starts_with_input = matches!(chain.first().map(|l| &l.element), Some(Element::Input));
    let mut input = None;
    for (i, layer) in chain.iter().enumerate() {
        if i > 0 && matches!(layer.element, Element::Input) {
            errors.push(layer.error("Input must be the first element of the chain"));
            continue;
        }
        let Some((dims, span)) = &layer.input_shape else {
            continue;
        };
        let problem = match (i, dims.len()) {
            (1.., _) if starts_with_input => Some("the input shape is already given by Input".to_string()),
            (1.., _) => Some("`input_shape` can only be given to the first layer".to_string()),
            (_, 1 | 3) if dims.contains(&0) => Some("every input dimension must be at least 1".to_string()),
            (_, 1 | 3) => None,
            (_, n) => Some(format!(
                "an input shape is (height, width, channels) or (features,), but this one has {n} dimensions"
            )),
        };
        match problem {
            Some(message) => errors.push(syn::Error::new(*span, message)),
            None => input = Some(dims.clone()),
        }
    }
    input
}

/// The shape before each layer and after the last.
fn flow(chain: &[LayerSpec], first: Known, errors: &mut Errors) -> Vec<Known> {
    let mut shapes = vec![first];
    for (i, layer) in chain.iter().enumerate() {
        let cx = ShapeCx {
            layer,
            prev: i.checked_sub(1).map(|p| &chain[p]),
        };
        let next = step(&cx, &shapes[i]).unwrap_or_else(|e| {
            errors.push(e);
            Known::Unknown
        });
        shapes.push(next);
    }
    shapes
}

fn step(cx: &ShapeCx, input: &Known) -> syn::Result<Known> {
    let Some(def) = cx.layer.def() else {
        return Ok(Known::Unknown);
    };
    match (def.input_rank(), input.rank()) {
        (Some(3), Some(1)) => Err(cx.error(format!(
            "{} needs a 3-D input (height, width, channels), but {}",
            cx.text(),
            cx.source(input)
        ))),
        _ => def.output_shape(input, cx),
    }
}
