//! Keras's `sample_weight` and `class_weight` for `fit`: a weight per
//! training sample that multiplies its loss (see [`FitOptions`](crate::FitOptions)).

use core::fmt;

use crate::loss::Targets;
use crate::shape::Shape;

/// Sample or class weights that do not fit the data.
#[derive(Clone, Debug, PartialEq)]
pub enum WeightError {
    /// Both `sample_weight` and `class_weight` were given (Keras refuses
    /// it too: "You cannot `class_weight` and `sample_weight` at the same
    /// time").
    BothGiven,
    /// Not one sample weight per sample.
    Count {
        /// Samples in the data set.
        expected: usize,
        /// Weights given.
        found: usize,
    },
    /// `class_weight` on an output with several rows per sample (a
    /// per-pixel output), where a sample has no single class.
    ClassWeightNeedsOneClassPerSample,
    /// A weight that is NaN, infinite or negative.
    Invalid {
        /// Which sample (or class, for `class_weight`).
        index: usize,
        /// The weight.
        weight: f32,
    },
}

impl fmt::Display for WeightError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WeightError::BothGiven => write!(
                f,
                "sample_weight and class_weight were both given; give one (fold the class weights into the sample weights)"
            ),
            WeightError::Count { expected, found } => write!(
                f,
                "sample_weight has {found} weights, but there are {expected} samples: give one weight per sample"
            ),
            WeightError::ClassWeightNeedsOneClassPerSample => write!(
                f,
                "class_weight needs one class per sample, but the model outputs several rows per sample; \
                 weight the samples with sample_weight instead"
            ),
            WeightError::Invalid { index, weight } => write!(
                f,
                "weight {weight} at position {index} is not a finite number >= 0"
            ),
        }
    }
}

impl std::error::Error for WeightError {}

fn check_values(weights: &[f32]) -> Result<(), WeightError> {
    match weights.iter().position(|w| !(w.is_finite() && *w >= 0.0)) {
        Some(index) => Err(WeightError::Invalid {
            index,
            weight: weights[index],
        }),
        None => Ok(()),
    }
}

/// One weight per sample of `targets` (`samples` of them), from
/// `sample_weight` as given or from `class_weight` indexed by each
/// sample's class (classes past its end weigh 1, as Keras's missing dict
/// keys); `None` when neither is given.
pub(crate) fn per_sample<S: Shape>(
    sample_weight: Option<&[f32]>,
    class_weight: Option<&[f32]>,
    targets: &Targets<'_, S>,
    samples: usize,
) -> Result<Option<Vec<f32>>, WeightError> {
    match (sample_weight, class_weight) {
        (Some(_), Some(_)) => Err(WeightError::BothGiven),
        (None, None) => Ok(None),
        (Some(w), None) => {
            if w.len() != samples {
                return Err(WeightError::Count {
                    expected: samples,
                    found: w.len(),
                });
            }
            check_values(w)?;
            Ok(Some(w.to_vec()))
        }
        (None, Some(classes)) => {
            check_values(classes)?;
            (0..samples)
                .map(|i| {
                    let class = targets
                        .class_of(i)
                        .ok_or(WeightError::ClassWeightNeedsOneClassPerSample)?;
                    Ok(classes.get(class).copied().unwrap_or(1.0))
                })
                .collect::<Result<Vec<f32>, _>>()
                .map(Some)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::Batch;
    use crate::shape::Shape1;
    use typenum::{U1, U3};

    #[test]
    fn class_weight_follows_each_samples_class() {
        let labels = [2usize, 0, 1, 2];
        let t: Targets<'_, Shape1<U3>> = Targets::from(&labels);
        let w = per_sample(None, Some(&[0.5, 2.0]), &t, 4).unwrap().unwrap();
        // Class 2 is past the list's end: weight 1, as Keras.
        assert_eq!(w, [1.0, 0.5, 2.0, 1.0]);
        let one_hot = Batch::<Shape1<U3>>::from_vec(2, vec![0.0, 1.0, 0.0, 0.9, 0.1, 0.0]).unwrap();
        let t: Targets<'_, Shape1<U3>> = Targets::from(&one_hot);
        let w = per_sample(None, Some(&[3.0, 4.0, 5.0]), &t, 2)
            .unwrap()
            .unwrap();
        assert_eq!(w, [4.0, 3.0]);
        let binary = Batch::<Shape1<U1>>::from_vec(3, vec![1.0, 0.0, 0.9]).unwrap();
        let t: Targets<'_, Shape1<U1>> = Targets::from(&binary);
        let w = per_sample(None, Some(&[1.0, 10.0]), &t, 3)
            .unwrap()
            .unwrap();
        assert_eq!(w, [10.0, 1.0, 10.0]);
    }

    #[test]
    fn bad_weights_are_errors() {
        let labels = [0usize, 1];
        let t: Targets<'_, Shape1<U3>> = Targets::from(&labels);
        assert_eq!(per_sample(None, None, &t, 2), Ok(None));
        assert_eq!(
            per_sample(Some(&[1.0, 1.0]), Some(&[1.0]), &t, 2),
            Err(WeightError::BothGiven)
        );
        assert_eq!(
            per_sample(Some(&[1.0]), None, &t, 2),
            Err(WeightError::Count {
                expected: 2,
                found: 1
            })
        );
        let e = per_sample(Some(&[1.0, f32::NAN]), None, &t, 2).unwrap_err();
        assert!(matches!(e, WeightError::Invalid { index: 1, .. }), "{e}");
    }
}
