//! `Summary`: a Keras-style table of a model's layers.

use core::fmt;

use crate::layer::SummaryRow;
use crate::shape::format_batch_shape;

/// A model's layers with their output shapes and parameter counts; its
/// `Display` is a table like Keras's `model.summary()`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Summary {
    /// Input shape of one sample.
    pub input: Vec<usize>,
    /// One row per layer.
    pub rows: Vec<SummaryRow>,
}

impl Summary {
    /// Total number of parameters.
    pub fn total_params(&self) -> usize {
        self.rows.iter().map(|r| r.params).sum()
    }

    /// Number of trained parameters.
    pub fn trainable_params(&self) -> usize {
        self.rows.iter().map(|r| r.trainable).sum()
    }

    /// Number of parameters that are kept but not trained (Keras counts
    /// BatchNormalization's moving mean and variance here).
    pub fn non_trainable_params(&self) -> usize {
        self.total_params() - self.trainable_params()
    }
}

/// Keras's automatic layer name: the kind in snake case (`MaxPooling2D` ->
/// `max_pooling2d`), suffixed `_1`, `_2`, ... from the second of a kind on.
fn auto_names(rows: &[SummaryRow]) -> Vec<String> {
    let mut seen: Vec<(String, usize)> = Vec::new();
    rows.iter()
        .map(|r| {
            let mut base = String::new();
            let mut prev_lower = false;
            for ch in r.kind.chars() {
                // Keras's rule: a capital after a lower-case letter starts a
                // word (MaxPooling2D -> max_pooling2d, Conv2D -> conv2d).
                if ch.is_ascii_uppercase() && prev_lower {
                    base.push('_');
                }
                prev_lower = ch.is_ascii_lowercase();
                base.push(ch.to_ascii_lowercase());
            }
            let n = match seen.iter_mut().find(|(k, _)| *k == base) {
                Some((_, n)) => {
                    *n += 1;
                    *n
                }
                None => {
                    seen.push((base.clone(), 0));
                    0
                }
            };
            if n == 0 {
                format!("{base} ({})", r.kind)
            } else {
                format!("{base}_{n} ({})", r.kind)
            }
        })
        .collect()
}

/// `1250858` -> `1,250,858`.
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

fn bytes(n: usize) -> String {
    let b = (n * 4) as f64;
    if b >= 1024.0 * 1024.0 {
        format!("{:.2} MB", b / (1024.0 * 1024.0))
    } else if b >= 1024.0 {
        format!("{:.2} KB", b / 1024.0)
    } else {
        format!("{b:.2} B")
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = auto_names(&self.rows);
        let shapes: Vec<String> = self
            .rows
            .iter()
            .map(|r| format_batch_shape(&r.output))
            .collect();
        let params: Vec<String> = self.rows.iter().map(|r| thousands(r.params)).collect();
        let w0 = names
            .iter()
            .map(|s| s.chars().count())
            .max()
            .unwrap_or(0)
            .max(28);
        let w1 = shapes.iter().map(String::len).max().unwrap_or(0).max(20);
        let w2 = params.iter().map(String::len).max().unwrap_or(0).max(9);
        let line = |l: &str, m: &str, r: &str, fill: &str| {
            format!(
                "{l}{}{m}{}{m}{}{r}",
                fill.repeat(w0 + 2),
                fill.repeat(w1 + 2),
                fill.repeat(w2 + 2)
            )
        };
        writeln!(
            f,
            "Model: \"sequential\"  (input {})",
            format_batch_shape(&self.input)
        )?;
        writeln!(f, "{}", line("┏", "┳", "┓", "━"))?;
        writeln!(
            f,
            "┃ {:<w0$} ┃ {:<w1$} ┃ {:>w2$} ┃",
            "Layer (type)", "Output Shape", "Param #"
        )?;
        writeln!(f, "{}", line("┡", "╇", "┩", "━"))?;
        for i in 0..self.rows.len() {
            writeln!(
                f,
                "│ {:<w0$} │ {:<w1$} │ {:>w2$} │",
                names[i], shapes[i], params[i]
            )?;
        }
        writeln!(f, "{}", line("└", "┴", "┘", "─"))?;
        let total = self.total_params();
        let (trainable, fixed) = (self.trainable_params(), self.non_trainable_params());
        writeln!(f, " Total params: {} ({})", thousands(total), bytes(total))?;
        writeln!(
            f,
            " Trainable params: {} ({})",
            thousands(trainable),
            bytes(trainable)
        )?;
        write!(
            f,
            " Non-trainable params: {} ({})",
            thousands(fixed),
            bytes(fixed)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers_as_keras_writes_them() {
        let row = |kind: &str| SummaryRow {
            kind: kind.into(),
            output: vec![2],
            params: 1234567,
            trainable: 1234567,
        };
        let rows = [
            row("Conv2D"),
            row("MaxPooling2D"),
            row("Conv2D"),
            row("Dense"),
        ];
        assert_eq!(
            auto_names(&rows),
            [
                "conv2d (Conv2D)",
                "max_pooling2d (MaxPooling2D)",
                "conv2d_1 (Conv2D)",
                "dense (Dense)"
            ]
        );
        assert_eq!(thousands(1234567), "1,234,567");
        assert_eq!(thousands(896), "896");
        assert_eq!(thousands(0), "0");
    }

    #[test]
    fn non_trainable_parameters_are_counted_apart() {
        let summary = Summary {
            input: vec![4],
            rows: vec![
                SummaryRow {
                    kind: "Dense".into(),
                    output: vec![4],
                    params: 20,
                    trainable: 20,
                },
                SummaryRow {
                    kind: "BatchNormalization".into(),
                    output: vec![4],
                    params: 16,
                    trainable: 8,
                },
            ],
        };
        assert_eq!(summary.trainable_params(), 28);
        assert_eq!(summary.non_trainable_params(), 8);
        let text = summary.to_string();
        assert!(text.contains(" Total params: 36 (144.00 B)"), "{text}");
        assert!(text.contains(" Trainable params: 28 (112.00 B)"), "{text}");
        assert!(
            text.ends_with(" Non-trainable params: 8 (32.00 B)"),
            "{text}"
        );
    }
}
