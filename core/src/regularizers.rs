//! Weight penalties (Keras's `kernel_regularizer = l2(0.01)`): terms added
//! to the training loss, and their gradients added to the parameters'.

/// A penalty on a tensor's values, as Keras's `regularizers`: `L1`
/// adds `l1 · Σ|w|`, `L2` adds `l2 · Σw²` (no ½), `L1L2` both. Training
/// adds it to each batch's loss (so `fit` reports it in `loss` and
/// `val_loss`, as Keras does) and its gradient, `l1 · sign(w) + 2 · l2 · w`,
/// to the tensor's.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Regularizer {
    /// The factor of `Σ|w|`.
    pub l1: f32,
    /// The factor of `Σw²`.
    pub l2: f32,
}

impl Regularizer {
    /// `l1 · Σ|w|` (Keras's `l1(0.01)`; its default factor is 0.01).
    pub const fn l1(l1: f32) -> Regularizer {
        Regularizer { l1, l2: 0.0 }
    }

    /// `l2 · Σw²` (Keras's `l2(0.01)`; its default factor is 0.01).
    pub const fn l2(l2: f32) -> Regularizer {
        Regularizer { l1: 0.0, l2 }
    }

    /// `l1 · Σ|w| + l2 · Σw²` (Keras's `l1_l2(l1, l2)`).
    pub const fn l1_l2(l1: f32, l2: f32) -> Regularizer {
        Regularizer { l1, l2 }
    }

    /// The penalty on `values`.
    pub fn penalty(&self, values: &[f32]) -> f64 {
        let (mut abs, mut squares) = (0.0f64, 0.0f64);
        for &w in values {
            abs += f64::from(w.abs());
            squares += f64::from(w) * f64::from(w);
        }
        f64::from(self.l1) * abs + f64::from(self.l2) * squares
    }

    /// Adds the penalty's gradient to `grad`. The gradient of `|w|` at 0 is
    /// taken as 0, as TensorFlow's and PyTorch's are.
    pub fn add_gradient(&self, values: &[f32], grad: &mut [f32]) {
        for (g, &w) in grad.iter_mut().zip(values) {
            let sign = if w > 0.0 {
                1.0
            } else if w < 0.0 {
                -1.0
            } else {
                0.0
            };
            *g += self.l1 * sign + 2.0 * self.l2 * w;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn l2_value_and_gradient_are_kerass() {
        // Keras: l2(0.01)(w) = 0.01 · Σw² for w = [1, -2, 3] is 0.14; the
        // gradient is 2 · 0.01 · w.
        let w = [1.0f32, -2.0, 3.0];
        let r = Regularizer::l2(0.01);
        assert!((r.penalty(&w) - 0.14).abs() < 1e-7);
        let mut g = [0.5f32, 0.0, 0.0];
        r.add_gradient(&w, &mut g);
        for (got, want) in g.iter().zip([0.5 + 0.02, -0.04, 0.06]) {
            assert!((got - want).abs() < 1e-7, "{got} vs {want}");
        }
    }

    #[test]
    fn l1_and_both() {
        let w = [1.0f32, -2.0, 0.0];
        assert!((Regularizer::l1(0.1).penalty(&w) - 0.3).abs() < 1e-7);
        let both = Regularizer::l1_l2(0.1, 0.01);
        assert!((both.penalty(&w) - (0.3 + 0.05)).abs() < 1e-7);
        let mut g = [0.0f32; 3];
        both.add_gradient(&w, &mut g);
        assert_eq!(g, [0.1 + 0.02, -0.1 - 0.04, 0.0]);
    }
}
