//! What Conv2D and the pooling layers share: a 2-D window, its checks and
//! its shape rule.

use proc_macro2::TokenStream;
use quote::quote;
use strata_shapes::{window2d_output, Padding, Window};

use super::ShapeCx;
use crate::args::Args;
use crate::codegen::types::Support;
use crate::model::{Known, Num};

pub struct Window2 {
    pub kernel: (Num, Num),
    pub strides: (Num, Num),
    pub padding: Padding,
}

/// Reports `n` if it is 0: sizes and strides are at least 1.
pub fn at_least_one(a: &mut Args, n: Num, what: &str) {
    if n.value == 0 {
        a.error_at(n.span, format!("{what} must be at least 1, but it is 0"));
    }
}

impl Window2 {
    /// Reports zero window sizes (`what`: "a kernel size") and, if
    /// `strides_given`, zero strides (unwritten strides come from the
    /// window, whose zeros are reported once already).
    pub fn check(&self, a: &mut Args, what: &str, strides_given: bool) {
        for n in [self.kernel.0, self.kernel.1] {
            at_least_one(a, n, what);
        }
        if strides_given {
            for n in [self.strides.0, self.strides.1] {
                at_least_one(a, n, "a stride");
            }
        }
    }

    fn has_zero(&self) -> bool {
        [self.kernel.0, self.kernel.1, self.strides.0, self.strides.1]
            .iter()
            .any(|n| n.value == 0)
    }

    /// Keras's output shape: `filters` channels for a convolution, the
    /// input's for pooling (`None`).
    pub fn output(
        &self,
        input: &Known,
        cx: &ShapeCx,
        filters: Option<usize>,
    ) -> syn::Result<Known> {
        self.output_dilated(input, cx, filters, (1, 1))
    }

    /// [`Window2::output`] with the window's taps `dilation` apart (its
    /// span `(k - 1)·d + 1` must fit under valid padding).
    pub fn output_dilated(
        &self,
        input: &Known,
        cx: &ShapeCx,
        filters: Option<usize>,
        (dh, dw): (usize, usize),
    ) -> syn::Result<Known> {
        let Some(dims) = input.dims() else {
            return Ok(Known::Rank(3));
        };
        let rows = Window::new(self.kernel.0.value, self.strides.0.value).dilated(dh);
        let cols = Window::new(self.kernel.1.value, self.strides.1.value).dilated(dw);
        match window2d_output(dims, (rows, cols), self.padding, filters) {
            Some(out) => Ok(Known::Dims(out.to_vec())),
            // Already reported as a zero size.
            None if self.has_zero() || dh == 0 || dw == 0 => Ok(Known::Unknown),
            None => Err(cx.error(format!(
                "{} needs an input of at least {}x{}{}, but {} (with padding = valid every window must fit; padding = same would pad)",
                cx.text(),
                rows.effective_kernel(),
                cols.effective_kernel(),
                if (dh, dw) == (1, 1) { "" } else { " (the span of its dilated kernel)" },
                cx.source(input),
            ))),
        }
    }

    /// `KH, KW, SH, SW, P`: the type arguments of every window layer.
    pub fn type_args(&self, s: &Support) -> TokenStream {
        let (kh, kw) = (
            s.unsigned(self.kernel.0.value),
            s.unsigned(self.kernel.1.value),
        );
        let (sh, sw) = (
            s.unsigned(self.strides.0.value),
            s.unsigned(self.strides.1.value),
        );
        let p = s.name(match self.padding {
            Padding::Valid => "Valid",
            Padding::Same => "Same",
        });
        quote!(#kh, #kw, #sh, #sw, #p)
    }
}
