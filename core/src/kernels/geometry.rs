//! The geometry of a 2-D sliding window over an NHWC batch, shared by
//! convolution and pooling.
//!
//! It sits apart from the kernels that use it so that none of them imports
//! another just for the geometry.

use crate::shape::{conv_output_len, same_padding, Padding};

/// Everything about a 2-D sliding window over an NHWC batch.
///
/// A dilated window (`d_h`, `d_w` > 1) reads every `d`-th cell: its
/// effective size is `(k - 1) · d + 1`, which is what the output size and
/// 'same' padding follow (Keras's rule). With `groups > 1` the input and
/// output channels are split into that many equal groups, each output group
/// seeing only its input group (the kernel is then `[k_h, k_w, in_c /
/// groups, out_c]`). Pooling uses neither.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvGeometry {
    /// Batch size.
    pub batch: usize,
    /// Input height.
    pub in_h: usize,
    /// Input width.
    pub in_w: usize,
    /// Input channels.
    pub in_c: usize,
    /// Kernel (window) height.
    pub k_h: usize,
    /// Kernel (window) width.
    pub k_w: usize,
    /// Vertical stride.
    pub s_h: usize,
    /// Horizontal stride.
    pub s_w: usize,
    /// Rows of padding above (Keras: half the total, rounded down).
    pub pad_top: usize,
    /// Columns of padding on the left.
    pub pad_left: usize,
    /// Output height.
    pub out_h: usize,
    /// Output width.
    pub out_w: usize,
    /// Vertical dilation (1: a dense window).
    pub d_h: usize,
    /// Horizontal dilation.
    pub d_w: usize,
    /// Channel groups (1: every output channel sees every input channel).
    pub groups: usize,
}

impl ConvGeometry {
    /// The geometry of a `k_h × k_w` window at strides `(s_h, s_w)` under
    /// `padding`, or `None` if no window fits (see [`conv_output_len`]).
    pub fn new(
        batch: usize,
        input: (usize, usize, usize),
        kernel: (usize, usize),
        strides: (usize, usize),
        padding: Padding,
    ) -> Option<Self> {
        Self::with_options(batch, input, kernel, strides, padding, (1, 1), 1)
    }

    /// [`ConvGeometry::new`] with dilation `(d_h, d_w)` and `groups`
    /// channel groups. `None` also when a dilation or `groups` is zero,
    /// `groups` does not divide the input channels, or the dilated window
    /// size overflows.
    pub fn with_options(
        batch: usize,
        (in_h, in_w, in_c): (usize, usize, usize),
        (k_h, k_w): (usize, usize),
        (s_h, s_w): (usize, usize),
        padding: Padding,
        (d_h, d_w): (usize, usize),
        groups: usize,
    ) -> Option<Self> {
        if groups == 0 || !in_c.is_multiple_of(groups) {
            return None;
        }
        let eff_h = effective(k_h, d_h)?;
        let eff_w = effective(k_w, d_w)?;
        let out_h = conv_output_len(in_h, eff_h, s_h, padding)?;
        let out_w = conv_output_len(in_w, eff_w, s_w, padding)?;
        Some(ConvGeometry {
            batch,
            in_h,
            in_w,
            in_c,
            k_h,
            k_w,
            s_h,
            s_w,
            pad_top: same_padding(in_h, eff_h, s_h, padding).0,
            pad_left: same_padding(in_w, eff_w, s_w, padding).0,
            out_h,
            out_w,
            d_h,
            d_w,
            groups,
        })
    }

    /// Number of output pixels over the batch: the GEMM's M.
    pub fn out_pixels(&self) -> usize {
        self.batch * self.out_h * self.out_w
    }

    /// Input channels of one group.
    pub fn group_in_c(&self) -> usize {
        self.in_c / self.groups.max(1)
    }

    /// Length of one im2col row of one group: the GEMM's K.
    pub fn patch_len(&self) -> usize {
        self.k_h * self.k_w * self.group_in_c()
    }

    /// Number of input values.
    pub fn input_len(&self) -> usize {
        self.batch * self.in_h * self.in_w * self.in_c
    }

    /// `(input, kernel, output)` lengths of a convolution with `out_c`
    /// output channels, or `None` when one overflows `usize` (the fields
    /// are public: a geometry no slice could hold can be written down).
    pub fn checked_lens(&self, out_c: usize) -> Option<(usize, usize, usize)> {
        let input = [self.batch, self.in_h, self.in_w, self.in_c]
            .into_iter()
            .try_fold(1usize, usize::checked_mul)?;
        let patch = self
            .k_h
            .checked_mul(self.k_w)?
            .checked_mul(self.group_in_c())?;
        let pixels = self
            .batch
            .checked_mul(self.out_h)?
            .checked_mul(self.out_w)?;
        Some((input, patch.checked_mul(out_c)?, pixels.checked_mul(out_c)?))
    }

    /// The same windows over the input with `top` and `bottom` rows and
    /// `left` and `right` columns of zeros taken off around each image
    /// (what a `ZeroPadding2D` layer adds): the zeros become part of the
    /// window padding, so the kernels read the smaller input in place and
    /// compute the same outputs. `None` when the input is not larger than
    /// the frame, or a padding overflows.
    pub fn fold_padding(
        &self,
        (top, bottom): (usize, usize),
        (left, right): (usize, usize),
    ) -> Option<Self> {
        let in_h = self.in_h.checked_sub(top.checked_add(bottom)?)?;
        let in_w = self.in_w.checked_sub(left.checked_add(right)?)?;
        (in_h > 0 && in_w > 0).then_some(())?;
        Some(ConvGeometry {
            in_h,
            in_w,
            pad_top: self.pad_top.checked_add(top)?,
            pad_left: self.pad_left.checked_add(left)?,
            ..*self
        })
    }

    /// A 1×1 stride-1 window with no padding reads each input pixel once,
    /// in order: the input already is the im2col matrix. (Keras's rules
    /// never pad a 1×1 stride-1 window; a folded frame of zeros does.)
    pub fn is_pointwise(&self) -> bool {
        self.k_h == 1
            && self.k_w == 1
            && self.s_h == 1
            && self.s_w == 1
            && (self.pad_top, self.pad_left) == (0, 0)
            && (self.out_h, self.out_w) == (self.in_h, self.in_w)
    }

    /// Whether the window is dense (no dilation) over all channels (one
    /// group): the only kind the specialised paths handle.
    pub fn is_plain(&self) -> bool {
        self.d_h == 1 && self.d_w == 1 && self.groups == 1
    }
}

/// The extent `(k - 1) · d + 1` of a window of `k` cells at dilation `d`
/// (`k` itself for `k = 0`, which no geometry accepts).
fn effective(k: usize, d: usize) -> Option<usize> {
    if d == 0 {
        return None;
    }
    match k {
        0 => Some(0),
        _ => (k - 1).checked_mul(d)?.checked_add(1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Keras's rule for a dilated window, written out on its own.
    fn keras_axis(
        input: usize,
        k: usize,
        s: usize,
        d: usize,
        same: bool,
    ) -> Option<(usize, usize)> {
        let k_eff = (k - 1) * d + 1;
        if same {
            let out = input.div_ceil(s);
            let total = ((out - 1) * s + k_eff).saturating_sub(input);
            Some((out, total / 2))
        } else if k_eff <= input {
            Some(((input - k_eff) / s + 1, 0))
        } else {
            None
        }
    }

    proptest! {
        #[test]
        fn dilated_geometry_follows_keras(
            input in 1usize..40, k in 1usize..6, s in 1usize..4, d in 1usize..4,
            same in any::<bool>(), groups in 1usize..4, per_group in 1usize..4,
        ) {
            let padding = if same { Padding::Same } else { Padding::Valid };
            let c = groups * per_group;
            let g = ConvGeometry::with_options(2, (input, input + 1, c), (k, k), (s, s), padding, (d, d), groups);
            let rows = keras_axis(input, k, s, d, same);
            let cols = keras_axis(input + 1, k, s, d, same);
            match (g, rows, cols) {
                (Some(g), Some((oh, pt)), Some((ow, pl))) => {
                    prop_assert_eq!((g.out_h, g.out_w, g.pad_top, g.pad_left), (oh, ow, pt, pl));
                    prop_assert_eq!(g.patch_len(), k * k * per_group);
                    if d == 1 && groups == 1 {
                        prop_assert_eq!(
                            Some(g),
                            ConvGeometry::new(2, (input, input + 1, c), (k, k), (s, s), padding)
                        );
                    }
                }
                (None, r, c) => prop_assert!(r.is_none() || c.is_none()),
                (Some(g), _, _) => prop_assert!(false, "{:?} where Keras has no window", g),
            }
        }
    }

    #[test]
    fn rejects_bad_options() {
        let p = Padding::Same;
        assert!(ConvGeometry::with_options(1, (4, 4, 6), (3, 3), (1, 1), p, (1, 1), 4).is_none());
        assert!(ConvGeometry::with_options(1, (4, 4, 6), (3, 3), (1, 1), p, (1, 1), 0).is_none());
        assert!(ConvGeometry::with_options(1, (4, 4, 6), (3, 3), (1, 1), p, (0, 1), 1).is_none());
        let huge = ConvGeometry::with_options(1, (4, 4, 6), (3, 3), (1, 1), p, (usize::MAX, 1), 1);
        assert!(huge.is_none());
        // Dilation 2 makes a 3-wide window span 5: valid on 4 has no window.
        let valid = Padding::Valid;
        assert!(
            ConvGeometry::with_options(1, (4, 4, 6), (3, 3), (1, 1), valid, (2, 2), 3).is_none()
        );
        let g = ConvGeometry::with_options(1, (5, 5, 6), (3, 3), (1, 1), valid, (2, 2), 3).unwrap();
        assert_eq!(
            (g.out_h, g.out_w, g.patch_len(), g.group_in_c()),
            (1, 1, 18, 2)
        );
    }
}
