//! Parsing of every path and query parameter of the contract: parse, don't validate.
//!
//! Servers hand the raw text to these constructors and get either a value that is valid by
//! construction or the contract's 400. Frameworks' own extractors are not used for values, so
//! that every variant accepts and rejects exactly the same inputs with exactly the same messages.

use std::collections::BTreeMap;

use utoipa::IntoParams;

use crate::ApiError;

/// Parses a decimal integer of ASCII digits only (no sign, no spaces) within `min..=max`.
fn parse_bounded(text: &str, min: u64, max: u64) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    // More than 20 digits overflows u64; such inputs are out of range anyway.
    let value: u64 = text.parse().ok()?;
    (min..=max).contains(&value).then_some(value)
}

fn range_message(min: u64, max: u64) -> String {
    format!("must be an integer from {min} to {max}")
}

/// A bounded integer path segment. The bounds are single literal tokens because they also go into
/// the OpenAPI document (`IntoParams`: the derive takes only literal numbers, and only as plain
/// tokens, hence `tt`); `description` is the parameter's description there.
macro_rules! bounded_path_parameter {
    ($(#[$doc:meta])* $name:ident, $inner:ty, $parameter:literal, $min:tt, $max:tt,
     $description:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, IntoParams)]
        #[into_params(names($parameter), parameter_in = Path)]
        pub struct $name(
            #[doc = $description]
            #[param(minimum = $min, maximum = $max)]
            $inner,
        );

        impl $name {
            /// The name of the parameter in paths and error bodies.
            pub const PARAMETER: &'static str = $parameter;
            pub const MIN: $inner = $min;
            pub const MAX: $inner = $max;

            /// Parses the raw (percent-decoded) path segment.
            pub fn parse(text: &str) -> Result<Self, ApiError> {
                match parse_bounded(text, Self::MIN as u64, Self::MAX as u64) {
                    // The bounds fit the inner type, so the conversion is lossless.
                    Some(value) => Ok(Self(value as $inner)),
                    None => Err(ApiError::invalid(
                        Self::PARAMETER,
                        range_message(Self::MIN as u64, Self::MAX as u64),
                    )),
                }
            }

            pub fn get(self) -> $inner {
                self.0
            }
        }
    };
}

bounded_path_parameter!(
    /// `/contacts/{contact_id}`: a positive PostgreSQL `integer`.
    ContactId, i32, "contact_id", 1, 2_147_483_647,
    "The contact's id: a positive PostgreSQL integer, ASCII digits only."
);
bounded_path_parameter!(
    /// `/fibonacci/{n}`: small enough that naive recursion ends in about a second.
    FibonacciN, u32, "n", 0, 40,
    "Small enough that naive recursion ends in about a second."
);
bounded_path_parameter!(
    /// `/test/*-cpubound/{iterations}`: repetitions of the CPU workload.
    Iterations, u32, "iterations", 1, 10_000,
    "Repetitions of the CPU workload (about 10 ms each on the reference machine)."
);
bounded_path_parameter!(
    /// `/test/*-iobound/{millis}`: how long to wait, up to a minute.
    Millis, u64, "millis", 0, 60_000,
    "How long to wait, in milliseconds, up to a minute."
);

// The literal bound above is PostgreSQL's `integer` maximum.
const _: () = assert!(ContactId::MAX == i32::MAX);

/// A validated `starts` filter: 1 to 100 letters, digits and spaces. With no punctuation at all,
/// no LIKE wildcard (`%`, `_`, `\`) can reach the database.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LastNamePrefix(String);

impl LastNamePrefix {
    pub const PARAMETER: &'static str = "starts";
    pub const MAX_CHARS: usize = 100;

    pub fn parse(text: &str) -> Result<LastNamePrefix, ApiError> {
        let chars = text.chars().count();
        if chars == 0 || chars > Self::MAX_CHARS {
            return Err(ApiError::invalid(
                Self::PARAMETER,
                format!("must be 1 to {} characters", Self::MAX_CHARS),
            ));
        }
        if !text.chars().all(|c| c.is_alphanumeric() || c == ' ') {
            return Err(ApiError::invalid(
                Self::PARAMETER,
                "may contain only letters, digits and spaces",
            ));
        }
        Ok(LastNamePrefix(text.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The LIKE pattern matched against `lower(last_name)`: the lower-cased prefix and `%`.
    pub fn like_pattern(&self) -> String {
        format!("{}%", self.0.to_lowercase())
    }
}

/// The query of `GET /contacts`: `limit`, `offset` and an optional `starts`. The `#[param]`
/// bounds and defaults are the constants below, as literals (the derive takes no paths); a test
/// of the OpenAPI module checks that they agree.
#[derive(Debug, Clone, PartialEq, Eq, Hash, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageRequest {
    /// How many contacts to return at most.
    #[param(required = false, minimum = 1, maximum = 200, default = 100)]
    limit: i64,
    /// How many contacts to skip, in contact_id order.
    #[param(required = false, minimum = 0, maximum = 2_147_483_647, default = 0)]
    offset: i64,
    /// Only contacts whose last name starts with this, ignoring case: 1 to 100 letters, digits
    /// and spaces.
    #[param(value_type = String, required = false, min_length = 1, max_length = 100,
            pattern = r"^[\p{L}\p{N} ]+$", example = "sm")]
    starts: Option<LastNamePrefix>,
}

impl Default for PageRequest {
    fn default() -> Self {
        PageRequest {
            limit: Self::DEFAULT_LIMIT,
            offset: 0,
            starts: None,
        }
    }
}

impl PageRequest {
    pub const DEFAULT_LIMIT: i64 = 100;
    pub const MAX_LIMIT: i64 = 200;
    pub const MAX_OFFSET: i64 = i32::MAX as i64;

    /// Parses the raw query string (without `?`), percent-encoded as it arrived.
    ///
    /// Unknown parameters are ignored; a repeated parameter takes its last value (as Django's and
    /// Starlette's query dicts do); every invalid value is reported, not just the first.
    pub fn from_query(raw_query: Option<&str>) -> Result<PageRequest, ApiError> {
        let mut limit = None;
        let mut offset = None;
        let mut starts = None;
        for (key, value) in url::form_urlencoded::parse(raw_query.unwrap_or("").as_bytes()) {
            match &*key {
                "limit" => limit = Some(value.into_owned()),
                "offset" => offset = Some(value.into_owned()),
                "starts" => starts = Some(value.into_owned()),
                _ => {}
            }
        }

        let mut errors = BTreeMap::new();
        let mut request = PageRequest::default();
        if let Some(text) = limit {
            match parse_bounded(&text, 1, Self::MAX_LIMIT as u64) {
                Some(value) => request.limit = value as i64,
                None => {
                    errors.insert("limit", range_message(1, Self::MAX_LIMIT as u64));
                }
            }
        }
        if let Some(text) = offset {
            match parse_bounded(&text, 0, Self::MAX_OFFSET as u64) {
                Some(value) => request.offset = value as i64,
                None => {
                    errors.insert("offset", range_message(0, Self::MAX_OFFSET as u64));
                }
            }
        }
        if let Some(text) = starts {
            match LastNamePrefix::parse(&text) {
                Ok(prefix) => request.starts = Some(prefix),
                Err(ApiError::InvalidInput(mut by_parameter)) => errors.append(&mut by_parameter),
                Err(other) => return Err(other),
            }
        }
        if errors.is_empty() {
            Ok(request)
        } else {
            Err(ApiError::InvalidInput(errors))
        }
    }

    pub fn limit(&self) -> i64 {
        self.limit
    }

    pub fn offset(&self) -> i64 {
        self.offset
    }

    pub fn starts(&self) -> Option<&LastNamePrefix> {
        self.starts.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contact_ids_are_positive_int4_digits_only() {
        let table = [
            ("1", true),
            ("2147483647", true),
            ("0", false),
            ("2147483648", false),
            ("-1", false),
            ("+1", false),
            (" 1", false),
            ("1.0", false),
            ("abc", false),
            ("", false),
            ("99999999999999999999999999", false),
        ];
        for (text, ok) in table {
            assert_eq!(ContactId::parse(text).is_ok(), ok, "{text:?}");
        }
    }

    #[test]
    fn page_requests_default_ignore_unknowns_and_report_every_error() {
        assert_eq!(
            PageRequest::from_query(None).unwrap(),
            PageRequest::default()
        );
        let request = PageRequest::from_query(Some("limit=5&offset=7&x=1&starts=Sm%20i")).unwrap();
        assert_eq!((request.limit(), request.offset()), (5, 7));
        assert_eq!(request.starts().unwrap().like_pattern(), "sm i%");
        let Err(ApiError::InvalidInput(errors)) =
            PageRequest::from_query(Some("limit=0&offset=-1&starts=a%25"))
        else {
            panic!("expected a 400");
        };
        assert_eq!(
            errors.keys().copied().collect::<Vec<_>>(),
            ["limit", "offset", "starts"]
        );
    }

    #[test]
    fn prefixes_refuse_wildcards_and_bound_length() {
        for bad in ["", "a%", "a_", "a\\", "o'brien", &"a".repeat(101)] {
            assert!(LastNamePrefix::parse(bad).is_err(), "{bad:?}");
        }
        for good in ["a", "Van der", "Müller", &"a".repeat(100)] {
            assert!(LastNamePrefix::parse(good).is_ok(), "{good:?}");
        }
    }
}
