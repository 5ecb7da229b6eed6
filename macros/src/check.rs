//! Checking a parsed chain: argument ranges, ranks, and, where the input
//! shape is known, every layer's shape with Keras's rules. This is the
//! error users read: it names the layers and says the shapes in words.
//! (The type-level rules in `strata-core` are the same, and catch what the
//! macro cannot see, such as a block used with an input shape later.)

use crate::errors::Errors;
use crate::model::{Chain, Dims, LayerKind, LayerSpec, Num, Padding};

/// What the macro knows about the shape between two layers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Known {
    /// Every dimension.
    Dims(Dims),
    /// Only the rank (a block without an input shape).
    Rank(usize),
    /// Nothing (after an embedded `{ block }`).
    Unknown,
}

impl Known {
    pub fn dims(&self) -> Option<&Dims> {
        match self {
            Known::Dims(d) => Some(d),
            _ => None,
        }
    }

    fn rank(&self) -> Option<usize> {
        match self {
            Known::Dims(d) => Some(d.len()),
            Known::Rank(r) => Some(*r),
            Known::Unknown => None,
        }
    }
}

/// A chain that passed every check.
pub struct Checked {
    /// The layers, `Input` removed.
    pub layers: Vec<LayerSpec>,
    /// `shapes[i]` is layer `i`'s input; `shapes[layers.len()]` the output.
    pub shapes: Vec<Known>,
}

/// Keras's output length along one axis, `None` if no window fits.
pub fn window_len(input: usize, k: usize, s: usize, padding: Padding) -> Option<usize> {
    if k == 0 || s == 0 || input == 0 {
        return None;
    }
    match padding {
        Padding::Valid => input.checked_sub(k).map(|d| d / s + 1),
        Padding::Same => Some(input.div_ceil(s)),
    }
}

fn dims_text(d: &[usize]) -> String {
    d.iter()
        .map(|x| x.to_string())
        .collect::<Vec<_>>()
        .join("x")
}

/// How the previous layer's output is described: "Conv2D(8, (3, 3)) outputs
/// 1x1x8", "the input is 1x1x3".
fn source_text(prev: Option<&LayerSpec>, current: Option<&str>, shape: &Known) -> String {
    let what = match shape {
        Known::Dims(d) if d.len() == 1 => format!("a vector of {}", d[0]),
        Known::Dims(d) => dims_text(d),
        Known::Rank(1) => "a vector".to_string(),
        Known::Rank(_) => "a 3-D tensor".to_string(),
        Known::Unknown => "an unknown shape".to_string(),
    };
    match prev {
        Some(p) if Some(p.text.as_str()) == current => {
            format!("the layer before it, also {}, outputs {what}", p.text)
        }
        Some(p) => format!("{} outputs {what}", p.text),
        None => format!("the input is {what}"),
    }
}

fn at_least_one(n: Num, what: &str, errors: &mut Errors) {
    if n.value == 0 {
        errors.push(syn::Error::new(
            n.span,
            format!("{what} must be at least 1, but it is 0"),
        ));
    }
}

pub fn check(chain: Chain, errors: &mut Errors) -> Option<Checked> {
    let mut layers = chain.layers;

    // Where the input shape comes from: `Input(...)` first, or
    // `input_shape = (...)` on the first layer.
    let mut input: Option<Dims> = None;
    let starts_with_input = matches!(layers.first().map(|l| &l.kind), Some(LayerKind::Input));
    for (i, layer) in layers.iter().enumerate() {
        if i > 0 && matches!(layer.kind, LayerKind::Input) {
            errors.push(syn::Error::new_spanned(
                &layer.tokens,
                "Input must be the first element of the chain",
            ));
            continue;
        }
        let Some((dims, span)) = &layer.input_shape else {
            continue;
        };
        if i > 0 {
            let msg = if starts_with_input {
                "the input shape is already given by Input"
            } else {
                "`input_shape` can only be given to the first layer"
            };
            errors.push(syn::Error::new(*span, msg));
        } else if dims.len() != 1 && dims.len() != 3 {
            errors.push(syn::Error::new(
                *span,
                format!(
                    "an input shape is (height, width, channels) or (features,), but this one has {} dimensions",
                    dims.len()
                ),
            ));
        } else if dims.contains(&0) {
            errors.push(syn::Error::new(
                *span,
                "every input dimension must be at least 1",
            ));
        } else {
            input = Some(dims.clone());
        }
    }
    if matches!(layers.first().map(|l| &l.kind), Some(LayerKind::Input)) {
        let input_layer = layers.remove(0);
        if layers.is_empty() {
            errors.push(syn::Error::new_spanned(
                &input_layer.tokens,
                "sequential! needs at least one layer after Input",
            ));
        }
    }
    if layers.is_empty() {
        return None;
    }

    // Without an input shape the first layer's kind still fixes the rank.
    let mut shape = match (&input, &layers[0].kind) {
        (Some(d), _) => Known::Dims(d.clone()),
        (None, LayerKind::Conv2D { .. } | LayerKind::Pool { .. }) => Known::Rank(3),
        _ => Known::Unknown,
    };
    let mut shapes = Vec::with_capacity(layers.len() + 1);
    for i in 0..layers.len() {
        shapes.push(shape.clone());
        let prev = i.checked_sub(1).map(|p| &layers[p]);
        let layer = &layers[i];
        shape = match &layer.kind {
            LayerKind::Input => unreachable!("removed above"),
            LayerKind::Conv2D {
                filters,
                kernel,
                strides,
                padding,
                ..
            } => {
                at_least_one(*filters, "the number of filters", errors);
                window(
                    layer,
                    prev,
                    &shape,
                    *kernel,
                    *strides,
                    *padding,
                    Some(filters.value),
                    errors,
                )
            }
            LayerKind::Pool {
                pool,
                strides,
                strides_given,
                padding,
                ..
            } => {
                // Unwritten strides are the pool size, whose zeros are
                // reported once already, as pool sizes.
                let strides = if *strides_given {
                    *strides
                } else {
                    let one = |n: Num| Num {
                        value: n.value.max(1),
                        ..n
                    };
                    (one(strides.0), one(strides.1))
                };
                window(layer, prev, &shape, *pool, strides, *padding, None, errors)
            }
            LayerKind::Dropout { rate, rate_tokens } => {
                if !(0.0..1.0).contains(rate) {
                    let written: String = rate_tokens
                        .clone()
                        .into_iter()
                        .map(|t| t.to_string())
                        .collect();
                    errors.push(syn::Error::new_spanned(
                        rate_tokens,
                        format!("a Dropout rate must be in [0, 1), but it is {written}"),
                    ));
                }
                shape
            }
            LayerKind::Flatten => match shape {
                Known::Dims(d) => Known::Dims(vec![d.iter().product()]),
                _ => Known::Rank(1),
            },
            LayerKind::Dense { units, .. } => {
                at_least_one(*units, "the number of units", errors);
                match shape {
                    Known::Dims(mut d) => {
                        *d.last_mut().expect("ranks are 1 or 3") = units.value;
                        Known::Dims(d)
                    }
                    other => other,
                }
            }
            LayerKind::Activation(_) => shape,
            LayerKind::Block(_) | LayerKind::Invalid => Known::Unknown,
        };
    }
    shapes.push(shape);
    Some(Checked { layers, shapes })
}

/// Output shape of a Conv2D (`filters` given) or pooling layer, reporting
/// rank and size problems.
#[allow(clippy::too_many_arguments)]
fn window(
    layer: &LayerSpec,
    prev: Option<&LayerSpec>,
    shape: &Known,
    (kh, kw): (Num, Num),
    (sh, sw): (Num, Num),
    padding: Padding,
    filters: Option<usize>,
    errors: &mut Errors,
) -> Known {
    let kind = if filters.is_some() {
        "kernel size"
    } else {
        "pool size"
    };
    for n in [kh, kw] {
        at_least_one(n, &format!("a {kind}"), errors);
    }
    for n in [sh, sw] {
        at_least_one(n, "a stride", errors);
    }
    if shape.rank() == Some(1) {
        errors.push(syn::Error::new_spanned(
            &layer.tokens,
            format!(
                "{} needs a 3-D input (height, width, channels), but {}",
                layer.text,
                source_text(prev, Some(&layer.text), shape)
            ),
        ));
        return Known::Unknown;
    }
    let Some(d) = shape.dims() else {
        return Known::Rank(3);
    };
    let (h, w, c) = (d[0], d[1], d[2]);
    let out_h = window_len(h, kh.value, sh.value, padding);
    let out_w = window_len(w, kw.value, sw.value, padding);
    match (out_h, out_w) {
        (Some(oh), Some(ow)) => Known::Dims(vec![oh, ow, filters.unwrap_or(c)]),
        _ => {
            if [kh, kw, sh, sw].iter().all(|n| n.value > 0) {
                errors.push(syn::Error::new_spanned(
                    &layer.tokens,
                    format!(
                        "{} needs an input of at least {}x{}, but {} (with padding = valid every window must fit; padding = same would pad)",
                        layer.text,
                        kh.value,
                        kw.value,
                        source_text(prev, Some(&layer.text), shape)
                    ),
                ));
            }
            Known::Unknown
        }
    }
}
