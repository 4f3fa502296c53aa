//! tiny_http glue: what the framework leaves to the application. It has no body limit, so the
//! body is capped here; no error responses of its own, so every answer, success or error, is
//! built here as JSON.
//!
//! What this cannot defend against: tiny_http has no read or write timeouts and gives no access
//! to its sockets. A client that sends its headers slowly holds one of tiny_http's connection
//! threads (not a worker); a client that trickles a body under the cap holds a worker while it is
//! read; a client that reads its response slowly holds a worker while it is written.

use std::io::{Cursor, Read};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::thread;

use bakeoff_core::{ApiError, JSON_CONTENT_TYPE};
use tiny_http::{Header, Request, Response};

use crate::handlers::AppState;
use crate::routes;

/// The largest request body accepted. No route takes a body: the cap only bounds what a client
/// can make a worker read.
pub const MAX_BODY_BYTES: u64 = 64 * 1024;

/// Serves one request on the calling worker thread, response included.
pub fn serve(state: &AppState, mut request: Request) {
    match read_body(&mut request) {
        Ok(()) => {}
        Err(BodyError::TooLarge) => {
            let response = error_response(&ApiError::PayloadTooLarge);
            // After responding, tiny_http reads the rest of the body to keep the connection in
            // step. That is done on a thread of its own so that a client that trickles the body,
            // or never sends it (it asked `Expect: 100-continue` and got this 413), does not hold a
            // worker.
            let spawned = thread::Builder::new()
                .name("discard-body".into())
                .spawn(move || respond(request, response));
            if let Err(error) = spawned {
                tracing::warn!(%error, "cannot start a thread to discard a request body");
            }
            return;
        }
        Err(BodyError::Io(error)) => {
            // The client is gone or broke the framing: there is nobody to answer.
            tracing::debug!(%error, "reading the request body failed");
            return;
        }
    }

    let (path, query) = match request.url().split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (request.url(), None),
    };
    // A panicking handler costs its request a 500, not the server one of its few threads.
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        routes::handle(state, request.method(), path, query)
    }))
    .unwrap_or(Err(ApiError::Internal));
    let response = match outcome {
        Ok(body) => json_response(200, body),
        Err(error) => error_response(&error),
    };
    respond(request, response);
}

enum BodyError {
    TooLarge,
    Io(std::io::Error),
}

/// Reads and discards the body, refusing one over [`MAX_BODY_BYTES`]: by its `Content-Length`
/// before reading anything, and by what actually arrives for a chunked body.
fn read_body(request: &mut Request) -> Result<(), BodyError> {
    if request
        .body_length()
        .is_some_and(|length| length as u64 > MAX_BODY_BYTES)
    {
        return Err(BodyError::TooLarge);
    }
    let read = std::io::copy(
        &mut request.as_reader().take(MAX_BODY_BYTES + 1),
        &mut std::io::sink(),
    )
    .map_err(BodyError::Io)?;
    if read > MAX_BODY_BYTES {
        return Err(BodyError::TooLarge);
    }
    Ok(())
}

fn respond(request: Request, response: Response<Cursor<Vec<u8>>>) {
    if let Err(error) = request.respond(response) {
        tracing::debug!(%error, "writing the response failed");
    }
}

/// A JSON answer framed by `Content-Length`. tiny_http would switch to chunked coding from 32 KiB
/// on; the body is in memory anyway, and with its length a HEAD tells the GET's length too
/// (tiny_http leaves the body out of an answer to HEAD).
fn json_response(status: u16, body: Vec<u8>) -> Response<Cursor<Vec<u8>>> {
    Response::from_data(body)
        .with_status_code(status)
        .with_chunked_threshold(usize::MAX)
        .with_header(header("Content-Type", JSON_CONTENT_TYPE))
}

/// The contract's error body, with `Retry-After` on a 503 and `Allow` on a 405.
fn error_response(error: &ApiError) -> Response<Cursor<Vec<u8>>> {
    let mut response = json_response(error.status(), error.to_json());
    for &(name, value) in error.headers() {
        response.add_header(header(name, value));
    }
    if error.status() == 500 {
        tracing::error!(%error, "answering 500");
    }
    response
}

/// A header from constant ASCII text, which tiny_http always accepts.
fn header(field: &str, value: &str) -> Header {
    Header::from_bytes(field, value).expect("constant header names and values are ASCII")
}
