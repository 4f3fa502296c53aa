//! The contract's error type as an actix-web error.
//!
//! `ApiError` lives in core, and `ResponseError` in actix-web, so the orphan rule asks for a local
//! newtype. With it, handlers return `Result<HttpResponse, Error>` and use `?` on core's parsers
//! and queries; actix renders the error through [`ResponseError::error_response`].

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use bakeoff_core::{ApiError, JSON_CONTENT_TYPE};

/// An [`ApiError`] that actix-web knows how to answer with.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct Error(#[from] pub ApiError);

impl ResponseError for Error {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.0.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        response.content_type(JSON_CONTENT_TYPE);
        // Retry-After on a 503, Allow on a 405 (actix sends none of its own).
        for &(name, value) in self.0.headers() {
            response.insert_header((name, value));
        }
        response.body(self.0.to_json())
    }
}
