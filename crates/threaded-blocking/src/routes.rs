//! The contract's routes as a plain match on path segments, each to its handler in
//! [`crate::handlers`]: tiny_http has no router.

use std::borrow::Cow;

use bakeoff_core::ApiError;
use percent_encoding::percent_decode_str;
use tiny_http::Method;

use crate::handlers::{self, AppState};

/// Answers one request: the JSON body of a 200, or the contract's error. A HEAD gets the GET's
/// answer; tiny_http sends its headers and leaves the body out.
pub fn handle(
    state: &AppState,
    method: &Method,
    path: &str,
    query: Option<&str>,
) -> Result<Vec<u8>, ApiError> {
    let route = Route::parse(path).ok_or(ApiError::RouteNotFound)?;
    if !matches!(method, Method::Get | Method::Head) {
        return Err(ApiError::MethodNotAllowed);
    }
    match route {
        Route::Version => handlers::version(),
        Route::Types => handlers::types(state),
        Route::Contacts => handlers::contacts(state, query),
        Route::Contact(id) => handlers::contact(state, &id),
        Route::Fibonacci(n) => handlers::fibonacci(&n),
        Route::Calibrate => handlers::calibrate(),
        // There is nowhere better to offload to than this thread: both run inline.
        Route::SyncCpuBound(iterations) | Route::OffloadCpuBound(iterations) => {
            handlers::cpubound(&iterations)
        }
        // There is no event loop to yield to: both waits hold the thread.
        Route::AsyncIoBound(millis) | Route::BlockingIoBound(millis) => handlers::iobound(&millis),
        Route::Resmon => handlers::resmon(state),
        Route::OpenApi => Ok(handlers::openapi()),
    }
}

/// A path of the contract, with its parameter as it arrived (percent-decoded, not yet parsed).
#[derive(Debug, PartialEq, Eq)]
enum Route<'a> {
    Version,
    Types,
    Contacts,
    Contact(Cow<'a, str>),
    Fibonacci(Cow<'a, str>),
    Calibrate,
    SyncCpuBound(Cow<'a, str>),
    OffloadCpuBound(Cow<'a, str>),
    AsyncIoBound(Cow<'a, str>),
    BlockingIoBound(Cow<'a, str>),
    Resmon,
    OpenApi,
}

impl<'a> Route<'a> {
    /// Matches a path (without its query). One trailing slash names the same route.
    fn parse(path: &'a str) -> Option<Route<'a>> {
        let path = path.strip_suffix('/').unwrap_or(path);
        let segments: Vec<&str> = path.strip_prefix('/')?.split('/').collect();
        if segments.iter().any(|segment| segment.is_empty()) {
            return None;
        }
        let route = match segments.as_slice() {
            ["version"] => Route::Version,
            ["types"] => Route::Types,
            ["contacts"] => Route::Contacts,
            ["contacts", id] => Route::Contact(decode(id)),
            ["fibonacci", n] => Route::Fibonacci(decode(n)),
            ["test", "calibrate"] => Route::Calibrate,
            ["test", "sync-cpubound", iterations] => Route::SyncCpuBound(decode(iterations)),
            ["test", "offload-cpubound", iterations] => Route::OffloadCpuBound(decode(iterations)),
            ["test", "async-iobound", millis] => Route::AsyncIoBound(decode(millis)),
            ["test", "blocking-iobound", millis] => Route::BlockingIoBound(decode(millis)),
            ["test", "resmon"] => Route::Resmon,
            ["openapi.json"] => Route::OpenApi,
            _ => return None,
        };
        Some(route)
    }
}

/// Percent-decodes a path parameter. Bytes that are not UTF-8 become U+FFFD, which no parameter
/// accepts, so they end in the parameter's 400.
fn decode(segment: &str) -> Cow<'_, str> {
    percent_decode_str(segment).decode_utf8_lossy()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_trailing_slash_is_the_same_path() {
        assert_eq!(Route::parse("/version"), Some(Route::Version));
        assert_eq!(Route::parse("/version/"), Some(Route::Version));
        assert_eq!(Route::parse("/version//"), None);
        assert_eq!(Route::parse("/contacts/"), Some(Route::Contacts));
        assert_eq!(Route::parse("/contacts//"), None);
        assert_eq!(Route::parse("/"), None);
        assert_eq!(Route::parse(""), None);
        assert_eq!(Route::parse("/test"), None);
    }

    #[test]
    fn parameters_are_percent_decoded_but_not_parsed() {
        assert_eq!(
            Route::parse("/contacts/%31%32/"),
            Some(Route::Contact("12".into()))
        );
        assert_eq!(
            Route::parse("/fibonacci/abc"),
            Some(Route::Fibonacci("abc".into()))
        );
        assert_eq!(
            Route::parse("/contacts/%FF"),
            Some(Route::Contact("\u{FFFD}".into()))
        );
    }
}
