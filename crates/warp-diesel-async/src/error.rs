//! The contract's replies as warp responses: a JSON body with its status, and the contract's
//! errors: a handler's [`ApiError`], and every rejection (no route matched) recovered into one,
//! as warp's `rejections` example does.

use std::convert::Infallible;

use bakeoff_core::{ApiError, JSON_CONTENT_TYPE};
use warp::Rejection;
use warp::http::StatusCode;
use warp::http::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use warp::reject::{MethodNotAllowed, PayloadTooLarge};
use warp::reply::Response;

/// Maps a rejection (no route matched) onto the contract: 405 when the path exists but not for
/// this method, 404 when nothing matched, and a bodiless 500 for anything unforeseen.
pub async fn recover(rejection: Rejection) -> Result<Response, Infallible> {
    let error = if rejection.is_not_found() {
        ApiError::RouteNotFound
    } else if rejection.find::<MethodNotAllowed>().is_some() {
        ApiError::MethodNotAllowed
    } else if rejection.find::<PayloadTooLarge>().is_some() {
        ApiError::PayloadTooLarge
    } else {
        tracing::error!(?rejection, "unhandled rejection");
        ApiError::Internal
    };
    Ok(error_response(&error))
}

/// The contract's error body and status, with `Retry-After` on a 503 and `Allow` on a 405
/// (warp's own rejections carry none).
pub fn error_response(error: &ApiError) -> Response {
    let status = StatusCode::from_u16(error.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = json_response(status, error.to_json());
    for &(name, value) in error.headers() {
        response.headers_mut().insert(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    }
    response
}

/// A response with a body already serialized as JSON.
pub fn json_response(status: StatusCode, body: Vec<u8>) -> Response {
    let mut response = Response::new(body.into());
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(JSON_CONTENT_TYPE));
    response
}
