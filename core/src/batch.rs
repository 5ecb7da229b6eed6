//! [`Batch<S>`]: a run-time number of samples of a compile-time shape.

use core::fmt;
use core::marker::PhantomData;

use crate::shape::{format_dims, Shape};

/// `N` samples of shape `S`, stored contiguously as `f32` in NHWC order
/// (sample, row, column, channel; or sample, feature for [`Shape1`](crate::Shape1)).
///
/// The batch size is a run-time number; everything else is in the type.
///
/// ```
/// use strata_core::{Batch, Shape3};
/// use typenum::{U2, U3};
///
/// let x = Batch::<Shape3<U2, U2, U3>>::from_vec(2, vec![0.5; 24]).unwrap();
/// assert_eq!(x.batch_size(), 2);
/// assert!(Batch::<Shape3<U2, U2, U3>>::from_vec(2, vec![0.5; 23]).is_err());
/// ```
pub struct Batch<S> {
    len: usize,
    /// Values in use: `len · S::NUMEL`, the start of `data`. What `data`
    /// holds past them is memory kept for reuse (see
    /// [`Batch::from_buffer`]).
    values: usize,
    data: Vec<f32>,
    shape: PhantomData<fn() -> S>,
}

/// A buffer whose length does not match the shape it was given for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShapeError {
    /// Number of `f32` values the shape and batch size call for.
    pub expected: usize,
    /// Number of values given.
    pub found: usize,
    /// Human-readable description of the requested shape, e.g. `3 x 32x32x3`.
    pub shape: String,
}

impl fmt::Display for ShapeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.expected == usize::MAX {
            // The count overflowed: there is no number of values to quote.
            write!(
                f,
                "a batch of {} would hold more values than memory can address \
                 (at most {} f32 values)",
                self.shape, MAX_VALUES
            )
        } else {
            write!(
                f,
                "a batch of {} needs {} values, but {} were given",
                self.shape, self.expected, self.found
            )
        }
    }
}

/// The most `f32` values one batch can hold: a `Vec<f32>` may not exceed
/// `isize::MAX` bytes.
pub const MAX_VALUES: usize = isize::MAX as usize / core::mem::size_of::<f32>();

impl std::error::Error for ShapeError {}

impl<S: Shape> Batch<S> {
    /// The number of values `len` samples hold, or `None` when that is more
    /// than a batch can hold ([`MAX_VALUES`]). Every size is computed here,
    /// so that a huge `len` can never wrap around to a small buffer.
    fn values_for(len: usize) -> Option<usize> {
        len.checked_mul(S::NUMEL).filter(|&n| n <= MAX_VALUES)
    }

    /// The error for `found` values given for `len` samples: `expected`
    /// is `usize::MAX` when the count cannot be addressed at all.
    fn size_error(len: usize, found: usize) -> ShapeError {
        ShapeError {
            expected: Self::values_for(len).unwrap_or(usize::MAX),
            found,
            shape: format!("{len} x {}", format_dims(S::DIMS)),
        }
    }

    /// The number of values `len` samples hold; panics, naming the shape,
    /// when that overflows (the documented panic of the infallible
    /// constructors).
    #[track_caller]
    fn values_or_panic(len: usize) -> usize {
        match Self::values_for(len) {
            Some(n) => n,
            None => panic!("{}", Self::size_error(len, 0)),
        }
    }

    /// A batch of `len` samples in `buffer`'s allocation: how workspaces
    /// reuse memory. The values are whatever the buffer held (zeros past
    /// its old length): the caller overwrites them. A longer buffer keeps
    /// its length, unused, so that giving it back and taking it for a
    /// larger batch later writes nothing.
    ///
    /// # Panics
    ///
    /// When `len` samples of `S` hold more than [`MAX_VALUES`] values (as
    /// `Vec` panics on a capacity overflow); [`Batch::try_zeros`] is the
    /// fallible way to size a batch from untrusted numbers.
    #[track_caller]
    pub fn from_buffer(len: usize, mut buffer: Vec<f32>) -> Self {
        let values = Self::values_or_panic(len);
        // Not clear() + resize(): that would write every value each time.
        if buffer.len() < values {
            buffer.resize(values, 0.0);
        }
        Batch {
            len,
            values,
            data: buffer,
            shape: PhantomData,
        }
    }

    /// Wraps `data` (NHWC) as `len` samples of shape `S`.
    ///
    /// Fails, giving the vector back untouched inside the error's numbers,
    /// when `data.len() != len * S::NUMEL` (with `expected` set to
    /// `usize::MAX` when that product overflows).
    pub fn from_vec(len: usize, data: Vec<f32>) -> Result<Self, ShapeError> {
        match Self::values_for(len) {
            Some(expected) if expected == data.len() => Ok(Batch {
                len,
                values: expected,
                data,
                shape: PhantomData,
            }),
            _ => Err(Self::size_error(len, data.len())),
        }
    }

    /// Copies `data` into a new batch: see [`Batch::from_vec`].
    pub fn from_slice(len: usize, data: &[f32]) -> Result<Self, ShapeError> {
        // Checked before copying, so a bad size costs no allocation.
        if Self::values_for(len) != Some(data.len()) {
            return Err(Self::size_error(len, data.len()));
        }
        Self::from_vec(len, data.to_vec())
    }

    /// `len` samples of zeros.
    ///
    /// # Panics
    ///
    /// When `len` samples of `S` hold more than [`MAX_VALUES`] values;
    /// see [`Batch::try_zeros`].
    #[track_caller]
    pub fn zeros(len: usize) -> Self {
        Self::filled(len, 0.0)
    }

    /// `len` samples with every value `value`.
    ///
    /// # Panics
    ///
    /// When `len` samples of `S` hold more than [`MAX_VALUES`] values;
    /// see [`Batch::try_filled`].
    #[track_caller]
    pub fn filled(len: usize, value: f32) -> Self {
        Batch {
            len,
            values: Self::values_or_panic(len),
            data: vec![value; Self::values_or_panic(len)],
            shape: PhantomData,
        }
    }

    /// `len` samples of zeros, or a [`ShapeError`] (with `expected` set to
    /// `usize::MAX`) when `len` samples of `S` hold more values than a
    /// batch can ([`MAX_VALUES`]).
    ///
    /// ```
    /// use strata_core::{Batch, Shape3};
    /// use strata_core::typenum::{U3, U32};
    ///
    /// assert!(Batch::<Shape3<U32, U32, U3>>::try_zeros(1 << 54).is_err());
    /// assert_eq!(Batch::<Shape3<U32, U32, U3>>::try_zeros(2).unwrap().batch_size(), 2);
    /// ```
    pub fn try_zeros(len: usize) -> Result<Self, ShapeError> {
        Self::try_filled(len, 0.0)
    }

    /// `len` samples with every value `value`; fails as [`Batch::try_zeros`].
    pub fn try_filled(len: usize, value: f32) -> Result<Self, ShapeError> {
        let values = Self::values_for(len).ok_or_else(|| Self::size_error(len, 0))?;
        Ok(Batch {
            len,
            values,
            data: vec![value; values],
            shape: PhantomData,
        })
    }

    /// Makes this a batch of `len` samples, reusing the allocation when it
    /// is large enough. Values that were there keep their place; new ones
    /// are zero.
    ///
    /// # Panics
    ///
    /// When `len` samples of `S` hold more than [`MAX_VALUES`] values (the
    /// batch is then unchanged); see [`Batch::try_resize`].
    #[track_caller]
    pub fn resize(&mut self, len: usize) {
        let values = Self::values_or_panic(len);
        self.set_values(len, values);
    }

    /// Makes the first `values` values of `data` this batch's `len`
    /// samples: the old ones keep their place, new ones are zero.
    fn set_values(&mut self, len: usize, values: usize) {
        if values > self.values {
            let spare = self.data.len().min(values);
            self.data[self.values..spare].fill(0.0);
            if self.data.len() < values {
                self.data.resize(values, 0.0);
            }
        }
        self.len = len;
        self.values = values;
    }

    /// [`Batch::resize`], or a [`ShapeError`] leaving the batch unchanged
    /// when `len` samples of `S` hold more values than a batch can.
    pub fn try_resize(&mut self, len: usize) -> Result<(), ShapeError> {
        let values = Self::values_for(len).ok_or_else(|| Self::size_error(len, self.values))?;
        self.set_values(len, values);
        Ok(())
    }

    /// Makes this a copy of `other`, reusing the allocation.
    pub fn copy_from(&mut self, other: &Batch<S>) {
        let values = other.values;
        if self.data.len() >= values {
            self.data[..values].copy_from_slice(other.as_slice());
        } else {
            self.data.clear();
            self.data.extend_from_slice(other.as_slice());
        }
        self.len = other.len;
        self.values = values;
    }

    /// Number of samples.
    pub fn batch_size(&self) -> usize {
        self.len
    }

    /// The values, NHWC.
    pub fn as_slice(&self) -> &[f32] {
        &self.data[..self.values]
    }

    /// The values, NHWC, writable.
    pub fn as_mut_slice(&mut self) -> &mut [f32] {
        &mut self.data[..self.values]
    }

    /// The values of sample `i`, or `None` past the end (for any `i`: the
    /// offsets are computed without wrapping).
    pub fn sample(&self, i: usize) -> Option<&[f32]> {
        if i >= self.len {
            return None;
        }
        let start = i.checked_mul(S::NUMEL)?;
        self.as_slice().get(start..start.checked_add(S::NUMEL)?)
    }

    /// Takes the values out.
    pub fn into_vec(mut self) -> Vec<f32> {
        self.data.truncate(self.values);
        self.data
    }

    /// The whole buffer, the memory kept past the values included: what
    /// [`Batch::from_buffer`] takes to reuse it.
    pub(crate) fn into_buffer(self) -> Vec<f32> {
        self.data
    }

    /// The per-sample shape, outermost axis first.
    pub fn sample_dims(&self) -> &'static [usize] {
        S::DIMS
    }

    /// The full shape including the batch axis: `[N, H, W, C]` or `[N, F]`.
    pub fn dims(&self) -> Vec<usize> {
        let mut d = vec![self.len];
        d.extend_from_slice(S::DIMS);
        d
    }

    /// Index of the largest value of each sample's last axis (the predicted
    /// class, for a classifier's output). One entry per sample and position.
    ///
    /// NaN is never passed over in silence: a row that holds a NaN yields
    /// the index of its first NaN, as NumPy's `argmax` does, so a broken
    /// output does not read as a confident class 0 (or as the largest of
    /// the finite values beside it). Use [`Batch::argmax_checked`] to get
    /// `None` for those rows instead. Ties go to the first index.
    pub fn argmax(&self) -> Vec<usize> {
        self.rows()
            .map(|row| row_argmax(row).unwrap_or_else(|nan| nan))
            .collect()
    }

    /// [`Batch::argmax`], with `None` for every row that holds a NaN (and
    /// so has no largest value).
    ///
    /// ```
    /// use strata_core::{Batch, Shape1};
    /// use strata_core::typenum::U3;
    ///
    /// let y = Batch::<Shape1<U3>>::from_vec(2, vec![0.1, 0.7, 0.2, 0.9, f32::NAN, 0.1]).unwrap();
    /// assert_eq!(y.argmax_checked(), vec![Some(1), None]);
    /// assert_eq!(y.argmax(), vec![1, 1]); // the NaN's index, not 0
    /// ```
    pub fn argmax_checked(&self) -> Vec<Option<usize>> {
        self.rows().map(|row| row_argmax(row).ok()).collect()
    }

    /// The rows of the last axis.
    fn rows(&self) -> core::slice::ChunksExact<'_, f32> {
        self.as_slice().chunks_exact(S::LAST.max(1))
    }
}

/// The index of `row`'s largest value (the first of equal ones), or
/// `Err(i)` with the index of its first NaN. An empty row gives `Ok(0)`.
fn row_argmax(row: &[f32]) -> Result<usize, usize> {
    let mut best = 0;
    for (i, v) in row.iter().enumerate() {
        if v.is_nan() {
            return Err(i);
        }
        if *v > row[best] {
            best = i;
        }
    }
    Ok(best)
}

impl<S> Clone for Batch<S> {
    fn clone(&self) -> Self {
        Batch {
            len: self.len,
            values: self.values,
            data: self.data[..self.values].to_vec(),
            shape: PhantomData,
        }
    }
}

impl<S> PartialEq for Batch<S> {
    fn eq(&self, other: &Self) -> bool {
        self.len == other.len && self.data[..self.values] == other.data[..other.values]
    }
}

impl<S: Shape> fmt::Debug for Batch<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Batch")
            .field("batch_size", &self.len)
            .field("sample_shape", &S::DIMS)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shape::Shape1;
    use typenum::U3;

    type B3 = Batch<Shape1<U3>>;

    /// A buffer longer than the batch keeps its length for reuse, and the
    /// memory past the values never shows: not in the slices, not in
    /// `into_vec`, equality or clones, and not after growing again.
    #[test]
    fn memory_past_the_values_is_kept_and_never_shows() {
        let buffer: Vec<f32> = (0..12).map(|v| v as f32).collect();
        let mut b = B3::from_buffer(2, buffer);
        assert_eq!(b.as_slice(), [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
        assert_eq!(b.sample(1), Some(&[3.0, 4.0, 5.0][..]));
        assert_eq!(b.sample(2), None);
        assert_eq!(
            b,
            B3::from_vec(2, vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0]).unwrap()
        );
        assert_eq!(b.clone().into_buffer().len(), 6);
        // Shrinking keeps the memory; growing again gives zeros, not the
        // old values.
        b.resize(1);
        assert_eq!(b.as_slice(), [0.0, 1.0, 2.0]);
        b.resize(3);
        assert_eq!(b.as_slice(), [0.0, 1.0, 2.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
        // Growing past the buffer appends zeros.
        b.resize(5);
        assert_eq!(&b.as_slice()[9..], [0.0; 6]);
        b.resize(1);
        let kept = b.clone().into_buffer().len();
        assert_eq!(kept, 3);
        assert_eq!(b.into_buffer().len(), 15);
        // A copy into a batch with spare memory takes exactly the source.
        let mut c = B3::from_buffer(0, vec![9.0; 12]);
        c.copy_from(&B3::from_vec(1, vec![1.0, 2.0, 3.0]).unwrap());
        assert_eq!(c.as_slice(), [1.0, 2.0, 3.0]);
        assert_eq!(c.into_vec(), [1.0, 2.0, 3.0]);
    }

    /// Buffers given back to a context keep their whole length, so the
    /// next, larger batch taken from them is not cleared first.
    #[test]
    fn recycled_buffers_keep_their_length() {
        let mut ctx = crate::Context::inference();
        let big: B3 = ctx.take_batch(4);
        assert_eq!(big.as_slice().len(), 12);
        ctx.recycle(big);
        let mut small: B3 = ctx.take_batch(1);
        small.as_mut_slice().fill(7.0);
        ctx.recycle(small);
        let again: B3 = ctx.take_batch(4);
        assert_eq!(again.as_slice().len(), 12);
        assert_eq!(again.as_slice()[..3], [7.0; 3]);
        assert!(again.into_buffer().capacity() >= 12);
    }

    /// The buffer taken is the one given back last whose batch covered as
    /// many values (those are still in cache), else the one given back
    /// last that is long enough without growing.
    #[test]
    fn the_buffer_given_back_last_is_taken_first() {
        let mut ctx = crate::Context::inference();
        let (a, b, small): (B3, B3, B3) = (ctx.take_batch(4), ctx.take_batch(4), ctx.take_batch(1));
        let (pa, pb) = (a.as_slice().as_ptr(), b.as_slice().as_ptr());
        ctx.recycle(a);
        ctx.recycle(b);
        let half: B3 = ctx.take_batch(2);
        assert_eq!(half.as_slice().as_ptr(), pb, "the last given back");
        ctx.recycle(half);
        ctx.recycle(small);
        // `b` held 2 samples last, `a` 4: `a` is warm for 4.
        let big: B3 = ctx.take_batch(4);
        assert_eq!(big.as_slice().as_ptr(), pa);
        // None is warm for 4 now: the last long enough (`small` would grow).
        let next: B3 = ctx.take_batch(4);
        assert_eq!(next.as_slice().as_ptr(), pb);
    }
}
