//! The contract's error as an axum response, as axum's examples write an application error:
//! handlers return `Result<_, Error>`, use `?` on core's parsers and queries, and axum renders the
//! error through [`IntoResponse`].
//!
//! `ApiError` lives in core and `IntoResponse` in axum, so the orphan rule asks for a local
//! newtype.

use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bakeoff_core::{ApiError, JSON_CONTENT_TYPE};

/// An [`ApiError`] that axum knows how to answer with.
pub struct Error(pub ApiError);

impl From<ApiError> for Error {
    fn from(error: ApiError) -> Error {
        Error(error)
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.0.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, self.0.to_json()).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(JSON_CONTENT_TYPE),
        );
        // Retry-After on a 503, and Allow on a 405: axum adds its own `allow: GET,HEAD` only
        // where the response has none, so core's spelling wins.
        for &(name, value) in self.0.headers() {
            headers.insert(
                HeaderName::from_static(name),
                HeaderValue::from_static(value),
            );
        }
        response
    }
}
