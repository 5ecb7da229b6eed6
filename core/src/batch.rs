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
        write!(
            f,
            "a batch of {} needs {} values, but {} were given",
            self.shape, self.expected, self.found
        )
    }
}

impl std::error::Error for ShapeError {}

impl<S: Shape> Batch<S> {
    /// A batch of `len` samples in `buffer`'s allocation: how workspaces
    /// reuse memory. The values are whatever the buffer held (zeros past
    /// its old length): the caller overwrites them.
    pub fn from_buffer(len: usize, mut buffer: Vec<f32>) -> Self {
        // Not clear() + resize(): that would write every value each time.
        buffer.resize(len * S::NUMEL, 0.0);
        Batch {
            len,
            data: buffer,
            shape: PhantomData,
        }
    }

    /// Wraps `data` (NHWC) as `len` samples of shape `S`.
    ///
    /// Fails, giving the vector back untouched inside the error's numbers,
    /// when `data.len() != len * S::NUMEL`.
    pub fn from_vec(len: usize, data: Vec<f32>) -> Result<Self, ShapeError> {
        match len.checked_mul(S::NUMEL) {
            Some(expected) if expected == data.len() => Ok(Batch {
                len,
                data,
                shape: PhantomData,
            }),
            expected => Err(ShapeError {
                expected: expected.unwrap_or(usize::MAX),
                found: data.len(),
                shape: format!("{len} x {}", format_dims(S::DIMS)),
            }),
        }
    }

    /// Copies `data` into a new batch: see [`Batch::from_vec`].
    pub fn from_slice(len: usize, data: &[f32]) -> Result<Self, ShapeError> {
        Self::from_vec(len, data.to_vec())
    }

    /// `len` samples of zeros.
    pub fn zeros(len: usize) -> Self {
        Self::filled(len, 0.0)
    }

    /// `len` samples with every value `value`.
    pub fn filled(len: usize, value: f32) -> Self {
        Batch {
            len,
            data: vec![value; len * S::NUMEL],
            shape: PhantomData,
        }
    }

    /// Makes this a batch of `len` samples, reusing the allocation when it
    /// is large enough. Values that were there keep their place; new ones
    /// are zero.
    pub fn resize(&mut self, len: usize) {
        self.len = len;
        self.data.resize(len * S::NUMEL, 0.0);
    }

    /// Makes this a copy of `other`, reusing the allocation.
    pub fn copy_from(&mut self, other: &Batch<S>) {
        self.len = other.len;
        self.data.clear();
        self.data.extend_from_slice(&other.data);
    }

    /// Number of samples.
    pub fn batch_size(&self) -> usize {
        self.len
    }

    /// The values, NHWC.
    pub fn as_slice(&self) -> &[f32] {
        &self.data
    }

    /// The values, NHWC, writable.
    pub fn as_mut_slice(&mut self) -> &mut [f32] {
        &mut self.data
    }

    /// The values of sample `i`, or `None` past the end.
    pub fn sample(&self, i: usize) -> Option<&[f32]> {
        self.data.get(i * S::NUMEL..(i + 1) * S::NUMEL)
    }

    /// Takes the values out.
    pub fn into_vec(self) -> Vec<f32> {
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
    pub fn argmax(&self) -> Vec<usize> {
        self.data
            .chunks_exact(S::LAST.max(1))
            .map(|row| {
                let mut best = 0;
                for (i, v) in row.iter().enumerate() {
                    if *v > row[best] {
                        best = i;
                    }
                }
                best
            })
            .collect()
    }
}

impl<S> Clone for Batch<S> {
    fn clone(&self) -> Self {
        Batch {
            len: self.len,
            data: self.data.clone(),
            shape: PhantomData,
        }
    }
}

impl<S> PartialEq for Batch<S> {
    fn eq(&self, other: &Self) -> bool {
        self.len == other.len && self.data == other.data
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
