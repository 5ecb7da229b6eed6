//! `Flatten`: one sample becomes one vector (Keras's `Flatten`).
//!
//! Shape: `(H, W, C) -> (H·W·C)`; a vector stays as it is.
//!
//! Computation: none. NHWC storage already is Keras's flatten order
//! (h, w, c); PyTorch's (c, h, w) order only matters to weight files, which
//! the following `Dense` handles.

use core::marker::PhantomData;

use crate::batch::Batch;
use crate::layer::{Context, Layer};
use crate::onnx::{Attr, ExportError, OnnxGraph};
use crate::shape::{Flattenable, Shape};

/// Flattens `In` into a [`Shape1`](crate::Shape1).
///
/// In `sequential!`: `Flatten`.
///
/// ```
/// use strata_core::typenum::{U2, U3};
/// use strata_core::{Batch, Flatten, Model, Shape3};
///
/// let flatten = Flatten::<Shape3<U2, U2, U3>>::new();
/// let y = flatten.predict(&Batch::filled(5, 1.0));
/// assert_eq!(y.dims(), [5, 12]);
/// ```
pub struct Flatten<In>(PhantomData<fn() -> In>);

impl<In> Flatten<In> {
    /// The layer (it has no parameters).
    pub fn new() -> Self {
        Flatten(PhantomData)
    }
}

impl<In> Default for Flatten<In> {
    fn default() -> Self {
        Self::new()
    }
}

/// The same values under another sample shape of as many values.
fn reshape<A: Shape, B: Shape>(batch: Batch<A>) -> Batch<B> {
    let n = batch.batch_size();
    assert_eq!(A::NUMEL, B::NUMEL, "Flatten keeps the number of values");
    Batch::from_buffer(n, batch.into_buffer())
}

impl<In: Flattenable> Layer for Flatten<In> {
    type Input = In;
    type Output = In::Flat;
    type Tape = ();

    fn kind(&self) -> &'static str {
        "Flatten"
    }

    fn forward_into(&self, input: &Batch<In>, out: &mut Batch<In::Flat>, _: &mut Context<'_>) {
        // Same values, same order: only the type changes. Flattenable
        // guarantees In::Flat has as many values per sample as In.
        out.resize(input.batch_size());
        out.as_mut_slice().copy_from_slice(input.as_slice());
    }

    fn forward_owned(&self, input: Batch<In>, _: &mut Context<'_>) -> Batch<In::Flat> {
        reshape(input)
    }

    fn forward_taped(&mut self, input: Batch<In>, _: &mut Context<'_>) -> (Batch<In::Flat>, ()) {
        (reshape(input), ())
    }

    fn backward(&mut self, _: (), grad_output: Batch<In::Flat>, _: &mut Context<'_>) -> Batch<In> {
        reshape(grad_output)
    }

    /// An image goes back to NHWC before ONNX's `Flatten`, so that the
    /// values come in strata's (Keras's) `h, w, c` order; a vector is
    /// already flat.
    fn export_onnx(&self, g: &mut OnnxGraph, input: &str) -> Result<String, ExportError> {
        if In::RANK == 1 {
            return Ok(input.to_string());
        }
        let nhwc = g.to_nhwc(input);
        Ok(g.node("Flatten", &[&nhwc], &[("axis", Attr::Int(1))]))
    }
}
