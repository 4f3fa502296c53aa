//! The contract's error responses: one enum for every failure a request can meet, and the JSON
//! body `{"status": <code>, "errors": {"<parameter or 'request'>": "<message>"}}` it renders to.
//!
//! Frameworks each have their own defaults (404 for a malformed path parameter, text bodies for
//! extractor errors, empty 405s); every variant maps those onto this type so that clients see the
//! same status and the same bytes whichever server answers.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Seconds a client is asked to wait (`Retry-After`) when the database is unavailable.
pub const RETRY_AFTER_SECONDS: &str = "1";

/// The `Allow` header of a 405: every path of the contract answers GET, and HEAD as RFC 9110 asks
/// of a general-purpose server. One spelling for every variant (axum's own would be `GET,HEAD`).
pub const ALLOWED_METHODS: &str = "GET, HEAD";

/// Every way a request can fail, with the status the contract gives it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// 400: one or more path or query values are invalid; keyed by parameter name.
    #[error("invalid input: {0:?}")]
    InvalidInput(BTreeMap<&'static str, String>),
    /// 404: the contact does not exist.
    #[error("contact not found")]
    ContactNotFound,
    /// 404: no route matches the path.
    #[error("no such path")]
    RouteNotFound,
    /// 405: the path exists but not for this method.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// 413: the request carries a body larger than the server accepts.
    #[error("request body too large")]
    PayloadTooLarge,
    /// 503: the database cannot be reached, or no connection freed up within the wait timeout.
    #[error("database unavailable")]
    DatabaseUnavailable,
    /// 503: the request ran past the server's bound on handler time.
    #[error("request timed out")]
    Timeout,
    /// 500: a bug. The detail goes to the log, never to the client.
    #[error("internal server error")]
    Internal,
}

/// The JSON body of every error response: the status again, and one message per invalid
/// parameter (`contact_id` for a missing contact, `request` for what concerns the whole request).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(examples(json!({"status": 400, "errors": {"limit": "must be an integer from 1 to 200"}})))]
pub struct ErrorBody {
    #[schema(minimum = 400, maximum = 599)]
    pub status: u16,
    #[schema(schema_with = messages_by_key_schema)]
    pub errors: BTreeMap<String, String>,
}

/// The schema of `errors`: never empty, a message (string) per key. The derive cannot say "at
/// least one property" on a map field, so it is built here.
fn messages_by_key_schema() -> utoipa::openapi::Object {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .min_properties(Some(1))
        .additional_properties(Some(ObjectBuilder::new().schema_type(Type::String)))
        .build()
}

impl ApiError {
    /// A 400 for a single parameter.
    pub fn invalid(parameter: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::InvalidInput(BTreeMap::from([(parameter, message.into())]))
    }

    /// A database failure: 503 when the database (or the connection to it) is unavailable,
    /// otherwise a bug, logged with its detail and answered with a 500 that carries none.
    pub fn from_database(error: &dyn std::fmt::Display, unavailable: bool) -> ApiError {
        if unavailable {
            tracing::warn!(%error, "database unavailable");
            ApiError::DatabaseUnavailable
        } else {
            tracing::error!(%error, "database error");
            ApiError::Internal
        }
    }

    /// The HTTP status code.
    pub fn status(&self) -> u16 {
        match self {
            ApiError::InvalidInput(_) => 400,
            ApiError::ContactNotFound | ApiError::RouteNotFound => 404,
            ApiError::MethodNotAllowed => 405,
            ApiError::PayloadTooLarge => 413,
            ApiError::DatabaseUnavailable | ApiError::Timeout => 503,
            ApiError::Internal => 500,
        }
    }

    /// The `Retry-After` header value, on the statuses that carry one.
    pub fn retry_after(&self) -> Option<&'static str> {
        (self.status() == 503).then_some(RETRY_AFTER_SECONDS)
    }

    /// The headers an error answer carries besides `Content-Type`, as (lower-case name, value):
    /// `retry-after` on a 503, `allow` on a 405. Lower case because HTTP/2 and the `http` crate's
    /// static names require it; names are case-insensitive on the wire.
    pub fn headers(&self) -> &'static [(&'static str, &'static str)] {
        match self {
            ApiError::MethodNotAllowed => &[("allow", ALLOWED_METHODS)],
            ApiError::DatabaseUnavailable | ApiError::Timeout => {
                &[("retry-after", RETRY_AFTER_SECONDS)]
            }
            ApiError::InvalidInput(_)
            | ApiError::ContactNotFound
            | ApiError::RouteNotFound
            | ApiError::PayloadTooLarge
            | ApiError::Internal => &[],
        }
    }

    /// The body as a value.
    pub fn body(&self) -> ErrorBody {
        let errors = match self {
            ApiError::InvalidInput(by_parameter) => by_parameter
                .iter()
                .map(|(parameter, message)| (parameter.to_string(), message.clone()))
                .collect(),
            ApiError::ContactNotFound => one("contact_id", "contact not found"),
            ApiError::RouteNotFound => one("request", "no such path"),
            ApiError::MethodNotAllowed => one("request", "method not allowed"),
            ApiError::PayloadTooLarge => one("request", "request body too large"),
            ApiError::DatabaseUnavailable => one("request", "database unavailable, retry later"),
            ApiError::Timeout => one("request", "request timed out, retry later"),
            ApiError::Internal => one("request", "internal server error"),
        };
        ErrorBody {
            status: self.status(),
            errors,
        }
    }

    /// The body as the exact bytes every variant sends.
    pub fn to_json(&self) -> Vec<u8> {
        crate::model::to_json(&self.body())
    }
}

fn one(key: &str, message: &str) -> BTreeMap<String, String> {
    BTreeMap::from([(key.to_string(), message.to_string())])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_name_the_parameter_and_carry_the_status() {
        let body = String::from_utf8(ApiError::invalid("limit", "bad").to_json()).unwrap();
        assert_eq!(body, r#"{"status":400,"errors":{"limit":"bad"}}"#);
        let body = String::from_utf8(ApiError::ContactNotFound.to_json()).unwrap();
        assert_eq!(
            body,
            r#"{"status":404,"errors":{"contact_id":"contact not found"}}"#
        );
        assert_eq!(ApiError::DatabaseUnavailable.retry_after(), Some("1"));
        assert_eq!(ApiError::Internal.retry_after(), None);
        assert_eq!(
            ApiError::MethodNotAllowed.headers(),
            [("allow", "GET, HEAD")]
        );
        assert_eq!(ApiError::Timeout.headers(), [("retry-after", "1")]);
        assert_eq!(ApiError::RouteNotFound.headers(), []);
    }
}
