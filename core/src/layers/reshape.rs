//! `Reshape`: the same values under another sample shape (Keras's
//! `Reshape`).
//!
//! Arguments: the target shape, `(h, w, c)` or `(n,)`.
//!
//! Shape: `In -> Out`, which must hold as many values as `In` (checked at
//! the type level by [`ReshapesTo`]).
//!
//! Computation: none. Values keep their row-major order over the
//! channels-last layout, as in Keras; only the type changes. (A `Dense`
//! after a reshape of an `(H, W, C)` map to a vector reads PyTorch's
//! `(C, H, W)` column order from weight files, as after `Flatten`.)

use core::marker::PhantomData;

use crate::batch::Batch;
use crate::layer::{Context, Layer};
use crate::onnx::{ExportError, OnnxGraph};
use crate::shape::{ElementCount, ReshapesTo, TypeMarker};

/// Reinterprets samples of `In` as samples of `Out`.
///
/// In `sequential!`: `Reshape((4, 3, 1))`.
///
/// ```
/// use strata_core::typenum::{U1, U2, U3, U4};
/// use strata_core::{Batch, Model, Reshape, Shape3};
///
/// let reshape = Reshape::<Shape3<U2, U2, U3>, Shape3<U4, U3, U1>>::new();
/// let x = Batch::from_vec(1, (0..12).map(|v| v as f32).collect()).unwrap();
/// let y = reshape.predict(&x);
/// assert_eq!((y.dims(), y.as_slice()), (vec![1, 4, 3, 1], x.as_slice()));
/// ```
pub struct Reshape<In, Out>(TypeMarker<(In, Out)>);

impl<In, Out> Reshape<In, Out> {
    /// The layer (it has no parameters).
    pub fn new() -> Self {
        Reshape(PhantomData)
    }
}

impl<In, Out> Default for Reshape<In, Out> {
    fn default() -> Self {
        Self::new()
    }
}

/// The same values under another sample shape of as many values.
fn retype<A: ElementCount, B: ElementCount>(batch: Batch<A>) -> Batch<B> {
    let n = batch.batch_size();
    assert_eq!(A::NUMEL, B::NUMEL, "a reshape keeps the number of values");
    Batch::from_buffer(n, batch.into_buffer())
}

impl<In, Out> Layer for Reshape<In, Out>
where
    In: ReshapesTo<Out>,
    Out: ElementCount,
{
    type Input = In;
    type Output = Out;
    type Tape = ();

    fn kind(&self) -> &'static str {
        "Reshape"
    }

    fn forward_into(&self, input: &Batch<In>, out: &mut Batch<Out>, _: &mut Context<'_>) {
        out.resize(input.batch_size());
        out.as_mut_slice().copy_from_slice(input.as_slice());
    }

    fn forward_owned(&self, input: Batch<In>, _: &mut Context<'_>) -> Batch<Out> {
        retype(input)
    }

    fn forward_taped(&mut self, input: Batch<In>, _: &mut Context<'_>) -> (Batch<Out>, ()) {
        (retype(input), ())
    }

    fn backward(&mut self, _: (), grad_output: Batch<Out>, _: &mut Context<'_>) -> Batch<In> {
        retype(grad_output)
    }

    /// ONNX's `Reshape` (batch kept, `0`) of the values in strata's order:
    /// an image input goes back to NHWC first, an image output to NCHW
    /// after. Between vectors it is the identity.
    fn export_onnx(&self, g: &mut OnnxGraph, input: &str) -> Result<String, ExportError> {
        if In::RANK == 1 && Out::RANK == 1 {
            return Ok(input.to_string());
        }
        let x = if In::RANK == 3 {
            g.to_nhwc(input)
        } else {
            input.to_string()
        };
        let mut shape = vec![0];
        for &d in Out::DIMS {
            shape.push(i64::try_from(d).map_err(|_| ExportError::TooLarge(d))?);
        }
        let shape = g.ints("shape", &shape)?;
        let y = g.node("Reshape", &[&x, &shape], &[]);
        Ok(if Out::RANK == 3 { g.to_nchw(&y) } else { y })
    }
}

#[cfg(test)]
mod tests {
    use typenum::{U1, U12, U2, U3, U4, U6};

    use super::*;
    use crate::layers::depthwise_conv2d::gradcheck::check_layer;
    use crate::model::Model;
    use crate::shape::{Shape, Shape1, Shape3};

    #[test]
    fn keeps_row_major_order() {
        let x =
            Batch::<Shape3<U2, U3, U2>>::from_vec(2, (0..24).map(|v| v as f32).collect()).unwrap();
        let flat = Reshape::<Shape3<U2, U3, U2>, Shape1<U12>>::new().predict(&x);
        assert_eq!(flat.as_slice(), x.as_slice());
        let back = Reshape::<Shape1<U12>, Shape3<U3, U1, U4>>::new().predict(&flat);
        assert_eq!(back.sample_dims(), &[3, 1, 4]);
        assert_eq!(back.as_slice(), x.as_slice());
        let layer = Reshape::<Shape3<U2, U3, U2>, Shape3<U6, U2, U1>>::new();
        assert_eq!(layer.kind(), "Reshape");
        assert_eq!(
            <<Reshape<Shape1<U12>, Shape3<U3, U1, U4>> as Layer>::Output as Shape>::DIMS,
            &[3, 1, 4]
        );
    }

    #[test]
    fn backward_passes_the_gradient_through() {
        let mut layer = Reshape::<Shape3<U2, U3, U2>, Shape3<U1, U1, U12>>::new();
        let x = Batch::from_vec(2, (0..24).map(|v| v as f32 * 0.1).collect()).unwrap();
        check_layer(&mut layer, &x, 3);
    }
}
