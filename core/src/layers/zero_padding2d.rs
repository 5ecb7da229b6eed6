//! `ZeroPadding2D`: rows and columns of zeros around each image (Keras's
//! `ZeroPadding2D`; PyTorch's `ZeroPad2d((left, right, top, bottom))`).
//!
//! Arguments: `padding = p` (all four sides), `(ph, pw)` (top and bottom,
//! left and right), or `((top, bottom), (left, right))`.
//!
//! Shape: `(H, W, C) -> (T + H + B, L + W + R, C)`; a vector has no rows
//! or columns to pad, so it is a type error.
//!
//! Computation: a copy of each input row into the middle of its output row;
//! the backward pass takes the middle of the output's gradient.

use core::marker::PhantomData;
use core::ops::Add;

use typenum::{Sum, Unsigned};

use crate::batch::Batch;
use crate::layer::{Context, Layer};
use crate::onnx::{ExportError, OnnxGraph};
use crate::shape::{Shape3, TypeMarker};

/// Pads `In` (a [`Shape3`]) with `T` rows of zeros on top, `B` at the
/// bottom, `L` columns on the left and `R` on the right.
///
/// In `sequential!`: `ZeroPadding2D(1)`, `ZeroPadding2D((1, 2))` or
/// `ZeroPadding2D(((1, 0), (0, 2)))`.
///
/// ```
/// use strata_core::typenum::{U0, U1};
/// use strata_core::{Batch, Model, Shape3, ZeroPadding2D};
///
/// // One row on top, nothing elsewhere, around a 1x1 image.
/// let pad = ZeroPadding2D::<Shape3<U1, U1, U1>, U1, U0, U0, U0>::new();
/// let y = pad.predict(&Batch::filled(1, 7.0));
/// assert_eq!((y.dims(), y.as_slice()), (vec![1, 2, 1, 1], &[0.0, 7.0][..]));
/// ```
pub struct ZeroPadding2D<In, T, B, L, R>(TypeMarker<(In, T, B, L, R)>);

impl<In, T, B, L, R> ZeroPadding2D<In, T, B, L, R> {
    /// The layer (it has no parameters).
    pub fn new() -> Self {
        ZeroPadding2D(PhantomData)
    }
}

impl<In, T, B, L, R> Default for ZeroPadding2D<In, T, B, L, R> {
    fn default() -> Self {
        Self::new()
    }
}

/// `(padded, inner)` of one image: `inner` rows of `W·C` values sit at row
/// `T`, column `L` of `padded` rows of `(L + W + R)·C` values.
struct Frame {
    top: usize,
    rows: usize,
    inner_rows: usize,
    /// Values before the inner part of a padded row (`L·C`).
    left: usize,
    /// Values of an inner row (`W·C`) and of a padded row.
    inner_len: usize,
    row_len: usize,
}

impl Frame {
    fn of<H, W, C, T, B, L, R>() -> Frame
    where
        H: Unsigned,
        W: Unsigned,
        C: Unsigned,
        T: Unsigned,
        B: Unsigned,
        L: Unsigned,
        R: Unsigned,
    {
        let c = C::USIZE;
        Frame {
            top: T::USIZE,
            rows: T::USIZE + H::USIZE + B::USIZE,
            inner_rows: H::USIZE,
            left: L::USIZE * c,
            inner_len: W::USIZE * c,
            row_len: (L::USIZE + W::USIZE + R::USIZE) * c,
        }
    }

    /// Writes `images` padded images of `x` into `y`, every value once:
    /// the border's zeros and the image's values, so nothing stale in `y`
    /// shows and nothing is written twice (a padded map is as large as a
    /// layer's output, and clearing it first cost a pass over memory).
    fn pad(&self, images: usize, x: &[f32], y: &mut [f32]) {
        if self.row_len == 0 {
            return;
        }
        let rows = y.chunks_exact_mut(self.row_len).take(images * self.rows);
        for (i, row) in rows.enumerate() {
            let (image, r) = (i / self.rows, i % self.rows);
            match r.checked_sub(self.top).filter(|&y| y < self.inner_rows) {
                Some(y) => {
                    let inner = (image * self.inner_rows + y) * self.inner_len;
                    let (left, rest) = row.split_at_mut(self.left);
                    let (middle, right) = rest.split_at_mut(self.inner_len);
                    left.fill(0.0);
                    middle.copy_from_slice(&x[inner..inner + self.inner_len]);
                    right.fill(0.0);
                }
                None => row.fill(0.0),
            }
        }
    }

    /// Calls `f(inner row, padded row)` for every image and inner row.
    fn each_row(&self, images: usize, mut f: impl FnMut(usize, usize)) {
        for image in 0..images {
            for y in 0..self.inner_rows {
                let inner = (image * self.inner_rows + y) * self.inner_len;
                let padded = (image * self.rows + self.top + y) * self.row_len + self.left;
                f(inner, padded);
            }
        }
    }
}

/// The padded shape of `Shape3<H, W, C>`.
pub type PaddedShape<H, W, C, T, B, L, R> = Shape3<Sum<Sum<T, H>, B>, Sum<Sum<L, W>, R>, C>;

impl<H, W, C, T, B, L, R> Layer for ZeroPadding2D<Shape3<H, W, C>, T, B, L, R>
where
    H: Unsigned,
    W: Unsigned,
    C: Unsigned,
    T: Unsigned + Add<H>,
    Sum<T, H>: Add<B>,
    Sum<Sum<T, H>, B>: Unsigned,
    B: Unsigned,
    L: Unsigned + Add<W>,
    Sum<L, W>: Add<R>,
    Sum<Sum<L, W>, R>: Unsigned,
    R: Unsigned,
{
    type Input = Shape3<H, W, C>;
    type Output = PaddedShape<H, W, C, T, B, L, R>;
    type Tape = ();

    fn kind(&self) -> &'static str {
        "ZeroPadding2D"
    }

    fn forward_into(
        &self,
        input: &Batch<Self::Input>,
        out: &mut Batch<Self::Output>,
        _: &mut Context<'_>,
    ) {
        let frame = Frame::of::<H, W, C, T, B, L, R>();
        out.resize(input.batch_size());
        frame.pad(input.batch_size(), input.as_slice(), out.as_mut_slice());
    }

    fn forward_taped(
        &mut self,
        input: Batch<Self::Input>,
        ctx: &mut Context<'_>,
    ) -> (Batch<Self::Output>, ()) {
        (crate::layer::forward_via_into(self, input, ctx), ())
    }

    fn backward(
        &mut self,
        _: (),
        grad_output: Batch<Self::Output>,
        ctx: &mut Context<'_>,
    ) -> Batch<Self::Input> {
        let frame = Frame::of::<H, W, C, T, B, L, R>();
        let n = grad_output.batch_size();
        let mut grad_input: Batch<Self::Input> = ctx.take_batch(n);
        let (dy, dx) = (grad_output.as_slice(), grad_input.as_mut_slice());
        frame.each_row(n, |inner, padded| {
            dx[inner..inner + frame.inner_len]
                .copy_from_slice(&dy[padded..padded + frame.inner_len]);
        });
        ctx.recycle(grad_output);
        grad_input
    }

    /// ONNX's `Pad` (constant zeros) on the NCHW image's height and width.
    fn export_onnx(&self, g: &mut OnnxGraph, input: &str) -> Result<String, ExportError> {
        let [t, b, l, r] = [T::USIZE, B::USIZE, L::USIZE, R::USIZE]
            .map(|p| i64::try_from(p).map_err(|_| ExportError::TooLarge(p)));
        let pads = g.ints("pads", &[0, 0, t?, l?, 0, 0, b?, r?])?;
        Ok(g.node("Pad", &[input, &pads], &[]))
    }
}

#[cfg(test)]
mod tests {
    use typenum::{U0, U1, U2, U3};

    use super::*;
    use crate::layers::depthwise_conv2d::gradcheck::check_layer;
    use crate::model::Model;
    use crate::shape::Shape;

    type In = Shape3<U2, U3, U2>;

    #[test]
    fn pads_each_side_by_hand() {
        // One 2x3 image of two channels; 1 row on top, none at the bottom,
        // 0 columns left, 2 right: 3x5 out.
        let layer = ZeroPadding2D::<In, U1, U0, U0, U2>::new();
        let x = Batch::<In>::from_vec(1, (1..=12).map(|v| v as f32).collect()).unwrap();
        let y = layer.predict(&x);
        assert_eq!(y.sample_dims(), &[3, 5, 2]);
        #[rustfmt::skip]
        let expected = [
            0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
            1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 0.0, 0.0, 0.0, 0.0,
            7.0, 8.0, 9.0, 10.0, 11.0, 12.0, 0.0, 0.0, 0.0, 0.0,
        ];
        assert_eq!(y.as_slice(), expected);
        assert_eq!(layer.kind(), "ZeroPadding2D");
        assert_eq!(layer.param_count(), 0);
    }

    #[test]
    fn backward_takes_the_middle() {
        let mut layer = ZeroPadding2D::<In, U2, U1, U3, U1>::new();
        assert_eq!(
            <<ZeroPadding2D<In, U2, U1, U3, U1> as Layer>::Output as Shape>::DIMS,
            &[5, 7, 2]
        );
        let x = Batch::<In>::from_vec(2, (0..24).map(|v| v as f32 * 0.1 - 1.0).collect()).unwrap();
        check_layer(&mut layer, &x, 1);
        // Stale values in a recycled buffer never leak into the output.
        let mut ctx = Context::inference();
        let mut out = Batch::filled(2, f32::NAN);
        layer.forward_into(&x, &mut out, &mut ctx);
        assert!(out.as_slice().iter().all(|v| v.is_finite()));
    }
}
