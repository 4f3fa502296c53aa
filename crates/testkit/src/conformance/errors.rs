//! The contract's error answers: every rejected input (`BAD_REQUESTS`, one table with every
//! message as a literal), unknown paths and other methods, and the exact bytes of an error body.

use anyhow::Result;
use serde_json::Value;

use super::Checker;
use super::exchange::Answer;

/// The messages of the contract's 400s, by parameter.
const CONTACT_ID_MESSAGE: &str = "must be an integer from 1 to 2147483647";
const FIBONACCI_N_MESSAGE: &str = "must be an integer from 0 to 40";
const ITERATIONS_MESSAGE: &str = "must be an integer from 1 to 10000";
const MILLIS_MESSAGE: &str = "must be an integer from 0 to 60000";
const LIMIT_MESSAGE: &str = "must be an integer from 1 to 200";
const OFFSET_MESSAGE: &str = "must be an integer from 0 to 2147483647";
const STARTS_LENGTH_MESSAGE: &str = "must be 1 to 100 characters";
const STARTS_CHARACTERS_MESSAGE: &str = "may contain only letters, digits and spaces";

/// An error answer of the contract: its status and its `errors`, (parameter or `request`,
/// message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedError {
    pub status: u16,
    pub errors: Vec<(&'static str, &'static str)>,
}

impl ExpectedError {
    /// An answer naming one parameter: (status, parameter, message).
    pub(super) fn one(
        (status, parameter, message): (u16, &'static str, &'static str),
    ) -> ExpectedError {
        ExpectedError {
            status,
            errors: vec![(parameter, message)],
        }
    }
}

/// The errors of the contract other than 400s: (status, parameter or `request`, message).
pub(super) const CONTACT_NOT_FOUND: (u16, &str, &str) = (404, "contact_id", "contact not found");
const ROUTE_NOT_FOUND: (u16, &str, &str) = (404, "request", "no such path");
const METHOD_NOT_ALLOWED: (u16, &str, &str) = (405, "request", "method not allowed");

/// Every rejected input of the contract: (path, status, parameter, exact message). Consecutive
/// rows with the same path are one answer that names several parameters.
#[rustfmt::skip]
const BAD_REQUESTS: &[(&str, u16, &str, &str)] = &[
    ("/contacts/0",                            400, "contact_id", CONTACT_ID_MESSAGE),
    ("/contacts/abc",                          400, "contact_id", CONTACT_ID_MESSAGE),
    ("/contacts/-1",                           400, "contact_id", CONTACT_ID_MESSAGE),
    ("/contacts/2147483648",                   400, "contact_id", CONTACT_ID_MESSAGE),
    ("/contacts/1.5",                          400, "contact_id", CONTACT_ID_MESSAGE),
    ("/contacts/1e3/",                         400, "contact_id", CONTACT_ID_MESSAGE),
    ("/contacts/%20",                          400, "contact_id", CONTACT_ID_MESSAGE),
    ("/contacts/99999999999999999999999",      400, "contact_id", CONTACT_ID_MESSAGE),
    ("/contacts?limit=0",                      400, "limit",      LIMIT_MESSAGE),
    ("/contacts?limit=201",                    400, "limit",      LIMIT_MESSAGE),
    ("/contacts?limit=abc",                    400, "limit",      LIMIT_MESSAGE),
    ("/contacts?limit=",                       400, "limit",      LIMIT_MESSAGE),
    ("/contacts/?offset=-1",                   400, "offset",     OFFSET_MESSAGE),
    ("/contacts?offset=2147483648",            400, "offset",     OFFSET_MESSAGE),
    ("/contacts?offset=1.5",                   400, "offset",     OFFSET_MESSAGE),
    ("/contacts?starts=",                      400, "starts",     STARTS_LENGTH_MESSAGE),
    // 101 characters, one over the limit.
    (LONG_STARTS_PATH,                         400, "starts",     STARTS_LENGTH_MESSAGE),
    ("/contacts?starts=a%25",                  400, "starts",     STARTS_CHARACTERS_MESSAGE),
    ("/contacts?starts=a_b",                   400, "starts",     STARTS_CHARACTERS_MESSAGE),
    ("/contacts?starts=o%27brien",             400, "starts",     STARTS_CHARACTERS_MESSAGE),
    // Every invalid value is reported, not just the first.
    ("/contacts?limit=0&offset=-1&starts=%25", 400, "limit",      LIMIT_MESSAGE),
    ("/contacts?limit=0&offset=-1&starts=%25", 400, "offset",     OFFSET_MESSAGE),
    ("/contacts?limit=0&offset=-1&starts=%25", 400, "starts",     STARTS_CHARACTERS_MESSAGE),
    ("/fibonacci/41",                          400, "n",          FIBONACCI_N_MESSAGE),
    ("/fibonacci/-1",                          400, "n",          FIBONACCI_N_MESSAGE),
    ("/fibonacci/x/",                          400, "n",          FIBONACCI_N_MESSAGE),
    ("/test/sync-cpubound/0",                  400, "iterations", ITERATIONS_MESSAGE),
    ("/test/sync-cpubound/10001",              400, "iterations", ITERATIONS_MESSAGE),
    ("/test/offload-cpubound/x",               400, "iterations", ITERATIONS_MESSAGE),
    ("/test/async-iobound/60001",              400, "millis",     MILLIS_MESSAGE),
    ("/test/blocking-iobound/-5",              400, "millis",     MILLIS_MESSAGE),
];

/// A `starts` of 101 letters.
const LONG_STARTS_PATH: &str = "/contacts?starts=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

/// [`BAD_REQUESTS`] as one expected answer per path.
fn bad_requests() -> Vec<(&'static str, ExpectedError)> {
    let mut cases: Vec<(&'static str, ExpectedError)> = Vec::new();
    for &(path, status, parameter, message) in BAD_REQUESTS {
        match cases.last_mut() {
            Some((last_path, expected)) if *last_path == path && expected.status == status => {
                expected.errors.push((parameter, message));
            }
            _ => cases.push((path, ExpectedError::one((status, parameter, message)))),
        }
    }
    cases
}

/// Paths no route matches, whatever the method.
const UNKNOWN_PATHS: &[&str] = &[
    "/nope",
    "/contacts/1/extra",
    "/version/extra",
    "/test",
    "/test/unknown/1",
];

/// Methods other than GET and HEAD on known paths (405 with `Allow`), and on unknown ones (404).
const OTHER_METHODS: &[(&str, &str, (u16, &str, &str))] = &[
    ("POST", "/version", METHOD_NOT_ALLOWED),
    ("POST", "/contacts", METHOD_NOT_ALLOWED),
    ("PUT", "/types/", METHOD_NOT_ALLOWED),
    ("DELETE", "/contacts/1", METHOD_NOT_ALLOWED),
    ("DELETE", "/contacts/abc", METHOD_NOT_ALLOWED),
    ("PATCH", "/fibonacci/3", METHOD_NOT_ALLOWED),
    ("OPTIONS", "/openapi.json", METHOD_NOT_ALLOWED),
    ("POST", "/test/resmon", METHOD_NOT_ALLOWED),
    ("POST", "/nope", ROUTE_NOT_FOUND),
    ("DELETE", "/contacts/1/extra", ROUTE_NOT_FOUND),
];

/// The exact bytes of an error body: `{"status":S,"errors":{"key":"message",...}}`, keys in
/// alphabetical order. Strings are escaped by serde_json; the layout is the contract's.
fn error_bytes(expected: &ExpectedError) -> Vec<u8> {
    let mut errors = expected.errors.to_vec();
    errors.sort();
    let quoted = |text: &str| serde_json::to_string(text).unwrap_or_default();
    let members: Vec<String> = errors
        .iter()
        .map(|(key, message)| format!("{}:{}", quoted(key), quoted(message)))
        .collect();
    format!(
        "{{\"status\":{},\"errors\":{{{}}}}}",
        expected.status,
        members.join(",")
    )
    .into_bytes()
}

impl Checker<'_> {
    /// Checks an error answer: the status, the headers and, for bakeoff variants, the exact body.
    pub(super) async fn expect_error(&mut self, path: &str, expected: &ExpectedError) {
        let Some((answer, value)) = self.fetch(path, expected.status).await else {
            return;
        };
        self.compare_error(&format!("GET {path}"), &answer, &value, expected);
    }

    pub(super) fn compare_error(
        &mut self,
        what: &str,
        answer: &Answer,
        value: &Value,
        expected: &ExpectedError,
    ) {
        let expected_bytes = error_bytes(expected);
        if self.target.exact_bytes {
            if answer.body != expected_bytes {
                self.fail(format!(
                    "{what}: error body {} (expected {})",
                    String::from_utf8_lossy(&answer.body),
                    String::from_utf8_lossy(&expected_bytes)
                ));
            }
            return;
        }
        // Foreign servers: the same status and the same parameters named; messages may differ.
        let mut expected_keys: Vec<&str> = expected.errors.iter().map(|(key, _)| *key).collect();
        expected_keys.sort();
        let got_keys = value["errors"].as_object().map(|errors| {
            let mut keys: Vec<&str> = errors.keys().map(String::as_str).collect();
            keys.sort();
            keys
        });
        if value["status"] != expected.status || got_keys != Some(expected_keys.clone()) {
            self.fail(format!(
                "{what}: error body {value} does not have status {} and errors named {expected_keys:?}",
                expected.status
            ));
        }
    }

    pub(super) async fn check_bad_requests(&mut self) -> Result<()> {
        for (path, expected) in bad_requests() {
            self.expect_error(path, &expected).await;
        }
        Ok(())
    }

    pub(super) async fn check_not_found_and_methods(&mut self) -> Result<()> {
        for path in UNKNOWN_PATHS {
            self.expect_error(path, &ExpectedError::one(ROUTE_NOT_FOUND))
                .await;
        }
        for &(method, path, expected) in OTHER_METHODS {
            let expected = ExpectedError::one(expected);
            self.report.checks += 1;
            let Ok(method) = reqwest::Method::from_bytes(method.as_bytes()) else {
                self.fail(format!("test table: {method:?} is not a method"));
                continue;
            };
            let Some(answer) = self.send(method.clone(), path).await else {
                continue;
            };
            let what = format!("{method} {path}");
            if let Some((answer, value)) =
                self.check_envelope(answer, method.as_str(), path, expected.status)
            {
                self.compare_error(&what, &answer, &value, &expected);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies_are_the_contract_layout_with_keys_in_order() {
        let (_, expected) = bad_requests()
            .into_iter()
            .find(|(path, _)| *path == "/contacts?limit=0&offset=-1&starts=%25")
            .unwrap();
        assert_eq!(
            String::from_utf8(error_bytes(&expected)).unwrap(),
            r#"{"status":400,"errors":{"limit":"must be an integer from 1 to 200","offset":"must be an integer from 0 to 2147483647","starts":"may contain only letters, digits and spaces"}}"#
        );
        let reversed = ExpectedError {
            status: 405,
            errors: vec![("x", "b"), ("request", "method not allowed")],
        };
        assert_eq!(
            String::from_utf8(error_bytes(&reversed)).unwrap(),
            r#"{"status":405,"errors":{"request":"method not allowed","x":"b"}}"#
        );
        assert_eq!(bad_requests().len(), BAD_REQUESTS.len() - 2);
    }

    #[test]
    fn the_longest_rejected_prefix_is_one_over_the_limit() {
        let prefix = LONG_STARTS_PATH.trim_start_matches("/contacts?starts=");
        assert_eq!(prefix.len(), 101);
        assert!(prefix.bytes().all(|byte| byte == b'a'));
    }
}
