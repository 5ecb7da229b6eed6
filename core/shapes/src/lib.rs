//! The shape rules of [strata](https://docs.rs/strata), written once.
//!
//! The `sequential!` macro checks a chain with these functions while it
//! expands (so that a shape error is reported in words, on the layer that
//! causes it), and `strata-core` uses them at run time (kernel geometry,
//! messages, summaries). The type-level twins of these rules live in
//! `strata_core::shape`; the tests here are the Keras cases both must agree
//! with.
//!
//! Shapes are one sample's dimensions, channels last: `[h, w, c]` for an
//! image, `[n]` for a vector.

#![warn(missing_docs)]

/// How a sliding window (convolution kernel or pooling window) treats borders.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Padding {
    /// No padding: only windows that fit entirely inside the input.
    Valid,
    /// Pad so that the output length is `ceil(input / stride)`; the odd
    /// extra row or column goes at the bottom/right, as in Keras.
    Same,
}

impl Padding {
    /// Keras's name for it: `"valid"` or `"same"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Padding::Valid => "valid",
            Padding::Same => "same",
        }
    }
}

/// A window along one axis: its size, how far it moves, and the spacing of
/// its taps (Keras's `dilation_rate`; 1 is a plain window).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Window {
    /// Number of taps.
    pub kernel: usize,
    /// Step between two windows.
    pub stride: usize,
    /// Step between two taps of one window.
    pub dilation: usize,
}

impl Window {
    /// A window of `kernel` taps moved by `stride`, without dilation.
    pub const fn new(kernel: usize, stride: usize) -> Self {
        Window {
            kernel,
            stride,
            dilation: 1,
        }
    }

    /// The same window with its taps `dilation` apart.
    pub const fn dilated(self, dilation: usize) -> Self {
        Window { dilation, ..self }
    }

    /// The span the taps cover: `(kernel - 1) * dilation + 1` (0 for an
    /// empty window).
    pub fn effective_kernel(&self) -> usize {
        match self.kernel {
            0 => 0,
            k => (k - 1) * self.dilation + 1,
        }
    }

    /// Keras's output length over `input` values: under valid padding
    /// `(input - k_eff) / stride + 1` (when the window fits), under same
    /// `ceil(input / stride)`. `None` when no window fits, or when the
    /// kernel, stride, dilation or input is 0.
    pub fn output_len(&self, input: usize, padding: Padding) -> Option<usize> {
        if self.kernel == 0 || self.stride == 0 || self.dilation == 0 || input == 0 {
            return None;
        }
        match padding {
            Padding::Valid => input
                .checked_sub(self.effective_kernel())
                .map(|d| d / self.stride + 1),
            Padding::Same => Some(input.div_ceil(self.stride)),
        }
    }

    /// Padding `(before, after)` over `input` values. Valid pads nothing;
    /// same pads `max((out - 1) * stride + k_eff - input, 0)` in total, half
    /// before and the rest (the odd one) after, where Keras and TensorFlow
    /// put it.
    pub fn padding(&self, input: usize, padding: Padding) -> (usize, usize) {
        match padding {
            Padding::Valid => (0, 0),
            Padding::Same => {
                let out = input.div_ceil(self.stride.max(1));
                let covered = out.saturating_sub(1) * self.stride + self.effective_kernel();
                let total = covered.saturating_sub(input);
                (total / 2, total - total / 2)
            }
        }
    }
}

/// Output length of a window of `kernel` moved by `stride` over `input`
/// values: [`Window::output_len`] without dilation.
pub fn conv_output_len(
    input: usize,
    kernel: usize,
    stride: usize,
    padding: Padding,
) -> Option<usize> {
    Window::new(kernel, stride).output_len(input, padding)
}

/// Padding `(before, after)` along one axis: [`Window::padding`] without
/// dilation.
pub fn same_padding(
    input: usize,
    kernel: usize,
    stride: usize,
    padding: Padding,
) -> (usize, usize) {
    Window::new(kernel, stride).padding(input, padding)
}

/// The output of a 2-D window layer over `[h, w, c]`: convolution with
/// `filters` output channels, or pooling (which keeps `c`) when `filters`
/// is `None`. `None` when the input is not 3-D or a window does not fit.
pub fn window2d_output(
    input: &[usize],
    (rows, cols): (Window, Window),
    padding: Padding,
    filters: Option<usize>,
) -> Option<[usize; 3]> {
    let &[h, w, c] = input else {
        return None;
    };
    Some([
        rows.output_len(h, padding)?,
        cols.output_len(w, padding)?,
        filters.unwrap_or(c),
    ])
}

/// Dense's output: the last axis becomes `units` (Keras's Dense acts on
/// the last axis, so `[h, w, c]` becomes `[h, w, units]`).
pub fn dense_output(input: &[usize], units: usize) -> Vec<usize> {
    let mut out = input.to_vec();
    match out.last_mut() {
        Some(last) => *last = units,
        None => out.push(units),
    }
    out
}

/// Flatten's output length: the number of values in a sample.
pub fn flatten_output(input: &[usize]) -> usize {
    input.iter().product()
}

/// Global pooling's output length: `[h, w, c]` becomes `[c]`. `None` when
/// the input is not 3-D.
pub fn global_pool_output(input: &[usize]) -> Option<usize> {
    match input {
        &[_, _, c] => Some(c),
        _ => None,
    }
}

/// Formats a sample shape the way Keras's summary does: `(None, 32, 32, 3)`.
pub fn format_batch_shape(dims: &[usize]) -> String {
    let mut s = String::from("(None");
    for d in dims {
        s.push_str(&format!(", {d}"));
    }
    s.push(')');
    s
}

/// Formats a sample shape as `32x32x3` (or `10`), the form used in messages.
pub fn format_dims(dims: &[usize]) -> String {
    dims.iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join("x")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_windows_fit_or_have_no_output() {
        assert_eq!(conv_output_len(9, 3, 1, Padding::Valid), Some(7));
        assert_eq!(conv_output_len(7, 2, 2, Padding::Valid), Some(3));
        // 32 -> 15 -> 7 -> 3 -> 1 with k3 s2, then nothing fits.
        assert_eq!(conv_output_len(32, 3, 2, Padding::Valid), Some(15));
        assert_eq!(conv_output_len(3, 3, 2, Padding::Valid), Some(1));
        assert_eq!(conv_output_len(1, 3, 2, Padding::Valid), None);
        assert_eq!(conv_output_len(2, 3, 1, Padding::Valid), None);
    }

    #[test]
    fn zero_sizes_have_no_output() {
        assert_eq!(conv_output_len(7, 2, 0, Padding::Valid), None);
        assert_eq!(conv_output_len(7, 0, 1, Padding::Same), None);
        assert_eq!(conv_output_len(0, 1, 1, Padding::Same), None);
        assert_eq!(
            Window::new(3, 1).dilated(0).output_len(9, Padding::Valid),
            None
        );
    }

    #[test]
    fn same_output_is_ceil_of_input_over_stride() {
        assert_eq!(conv_output_len(8, 3, 2, Padding::Same), Some(4));
        assert_eq!(conv_output_len(9, 3, 2, Padding::Same), Some(5));
        assert_eq!(conv_output_len(224, 7, 2, Padding::Same), Some(112));
    }

    #[test]
    fn same_padding_puts_the_odd_one_after() {
        // Keras / TensorFlow: 224 wide, k7 s2 -> 112 out, 5 padded: (2, 3).
        assert_eq!(same_padding(224, 7, 2, Padding::Same), (2, 3));
        // 8 wide, k3 s2 -> 4 out, 1 padded, after.
        assert_eq!(same_padding(8, 3, 2, Padding::Same), (0, 1));
        assert_eq!(same_padding(9, 3, 2, Padding::Same), (1, 1));
        assert_eq!(same_padding(5, 2, 1, Padding::Same), (0, 1));
        assert_eq!(same_padding(32, 3, 1, Padding::Same), (1, 1));
        // A stride larger than the kernel can need no padding at all.
        assert_eq!(same_padding(6, 1, 3, Padding::Same), (0, 0));
        assert_eq!(same_padding(9, 3, 1, Padding::Valid), (0, 0));
    }

    #[test]
    fn dilation_widens_the_window() {
        // k3 d2 covers 5 values: 9 -> 5 valid; same pads 4: (2, 2).
        let w = Window::new(3, 1).dilated(2);
        assert_eq!(w.effective_kernel(), 5);
        assert_eq!(w.output_len(9, Padding::Valid), Some(5));
        assert_eq!(w.output_len(4, Padding::Valid), None);
        assert_eq!(w.padding(9, Padding::Same), (2, 2));
        // k3 d2 s2 over 8, same: 4 out, (3 * 2 + 5) - 8 = 3 padded: (1, 2).
        let w = Window::new(3, 2).dilated(2);
        assert_eq!(w.output_len(8, Padding::Same), Some(4));
        assert_eq!(w.padding(8, Padding::Same), (1, 2));
    }

    #[test]
    fn layer_rules() {
        let conv = (Window::new(3, 1), Window::new(3, 1));
        assert_eq!(
            window2d_output(&[32, 32, 3], conv, Padding::Valid, Some(8)),
            Some([30, 30, 8])
        );
        let pool = (Window::new(2, 2), Window::new(2, 2));
        assert_eq!(
            window2d_output(&[15, 15, 32], pool, Padding::Valid, None),
            Some([7, 7, 32])
        );
        assert_eq!(window2d_output(&[10], pool, Padding::Valid, None), None);
        assert_eq!(dense_output(&[512], 10), [10]);
        assert_eq!(dense_output(&[4, 4, 8], 3), [4, 4, 3]);
        assert_eq!(flatten_output(&[6, 6, 64]), 2304);
        assert_eq!(global_pool_output(&[7, 7, 512]), Some(512));
        assert_eq!(global_pool_output(&[10]), None);
    }

    #[test]
    fn formats() {
        assert_eq!(format_dims(&[32, 32, 3]), "32x32x3");
        assert_eq!(format_dims(&[10]), "10");
        assert_eq!(format_batch_shape(&[32, 32, 3]), "(None, 32, 32, 3)");
    }
}
