//! Summary statistics shared by the commands.

/// The median of some figures (the upper one of an even count).
pub fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted.get(sorted.len() / 2).copied().unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_median_is_the_upper_middle_value() {
        assert_eq!(super::median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(super::median(&[1.0, 2.0]), 2.0);
        assert_eq!(super::median(&[]), 0.0);
    }
}
