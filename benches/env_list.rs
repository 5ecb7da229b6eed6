//! The benches' one reader of their environment settings.

/// The comma-separated numbers in environment variable `var`, or
/// `default` when it is unset or empty.
///
/// # Panics
/// When the variable holds something other than numbers (a bench run's
/// setting, read before anything is measured).
pub fn list(var: &str, default: &[usize]) -> Vec<usize> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => v
            .split(',')
            .map(|s| {
                s.trim()
                    .parse()
                    .unwrap_or_else(|_| panic!("{var}: numbers, got {v:?}"))
            })
            .collect(),
        _ => default.to_vec(),
    }
}
