//! Names of the enums that name things (scenarios, workloads, variants, policies): one spelling,
//! the one clap parses and lists in `--help`, also used in reports and file names.

use clap::ValueEnum;

/// The command-line name of an enum value, e.g. `contacts-page`.
pub fn name_of<T: ValueEnum>(value: &T) -> String {
    value
        .to_possible_value()
        .map(|possible| possible.get_name().to_string())
        .unwrap_or_default()
}

/// What a list flag chose, in the enum's order and without repeats; every value when it chose
/// none.
pub fn chosen_or_all<T: ValueEnum + Ord + Clone>(chosen: &[T]) -> Vec<T> {
    let mut values = if chosen.is_empty() {
        T::value_variants().to_vec()
    } else {
        chosen.to_vec()
    };
    values.sort();
    values.dedup();
    values
}
