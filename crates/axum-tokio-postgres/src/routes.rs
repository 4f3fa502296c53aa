//! The routes of the contract in axum, and the mapping of every error onto the contract's JSON.
//!
//! Values are never parsed by axum's typed extractors (whose rejections are text, and 404 for a bad
//! path parameter): handlers take the raw segment or query string and parse it with core, so this
//! variant accepts and rejects exactly what the others do.

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get};
use bakeoff_core::model::{VersionInfo, to_json};
use bakeoff_core::workload::{self, FibonacciBody};
use bakeoff_core::{
    ApiError, ContactId, DbRecycle, FibonacciN, Iterations, JSON_CONTENT_TYPE, Millis, PageRequest,
    pg,
};

use crate::database::Database;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub database: Arc<Database>,
    pub workers: usize,
    pub pool_size: usize,
    /// `DB_RECYCLE`, reported by `/test/resmon`; there is no checkout for it to change.
    pub db_recycle: DbRecycle,
}

/// The application: every path of the contract, with and without one trailing slash.
pub fn router(state: AppState) -> Router {
    let routes: [(&str, MethodRouter<AppState>); 12] = [
        ("/version", get(version)),
        ("/types", get(types)),
        ("/contacts", get(contacts)),
        ("/contacts/{contact_id}", get(contact)),
        ("/fibonacci/{n}", get(fibonacci)),
        ("/test/calibrate", get(calibrate)),
        ("/test/sync-cpubound/{iterations}", get(sync_cpubound)),
        ("/test/offload-cpubound/{iterations}", get(offload_cpubound)),
        ("/test/async-iobound/{millis}", get(async_iobound)),
        ("/test/blocking-iobound/{millis}", get(blocking_iobound)),
        ("/test/resmon", get(resmon)),
        ("/openapi.json", get(openapi)),
    ];
    let mut router = Router::new();
    for (path, method_router) in routes {
        // `get` also answers HEAD: axum runs the GET handler, sets the body's Content-Length and
        // sends no body, as the contract asks.
        router = router
            .route(path, method_router.clone())
            .route(&format!("{path}/"), method_router);
    }
    router
        .fallback(|| async { Json(Err(ApiError::RouteNotFound)) })
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

/// A response body: JSON bytes from core's serializer, or the contract's error.
struct Json(Result<Vec<u8>, ApiError>);

impl IntoResponse for Json {
    fn into_response(self) -> Response {
        let (status, body, extra_headers) = match self.0 {
            Ok(body) => (StatusCode::OK, body, [].as_slice()),
            Err(error) => {
                let status = StatusCode::from_u16(error.status())
                    .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                (status, error.to_json(), error.headers())
            }
        };
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(JSON_CONTENT_TYPE),
        );
        // Retry-After on a 503, and Allow on a 405: axum adds its own `allow: GET,HEAD` only
        // where the response has none, so core's spelling wins.
        for &(name, value) in extra_headers {
            headers.insert(
                HeaderName::from_static(name),
                HeaderValue::from_static(value),
            );
        }
        response
    }
}

fn json<T: serde::Serialize>(result: Result<T, ApiError>) -> Json {
    Json(result.map(|value| to_json(&value)))
}

/// The raw path segment; one axum cannot decode (invalid UTF-8) is invalid for core too.
fn segment(path: Result<Path<String>, PathRejection>) -> String {
    path.map(|Path(segment)| segment)
        .unwrap_or_else(|_| char::REPLACEMENT_CHARACTER.to_string())
}

async fn method_not_allowed() -> Json {
    Json(Err(ApiError::MethodNotAllowed))
}

async fn version() -> Json {
    json(Ok(VersionInfo::of(crate::VARIANT.name)))
}

async fn types(State(state): State<AppState>) -> Json {
    json(
        state
            .database
            .with_connection(|connection| async move { pg::list_types(&*connection).await })
            .await,
    )
}

async fn contacts(State(state): State<AppState>, RawQuery(query): RawQuery) -> Json {
    let request = match PageRequest::from_query(query.as_deref()) {
        Ok(request) => request,
        Err(error) => return Json(Err(error)),
    };
    // Borrowed, so that the work can run a second time if its connection is lost.
    let request = &request;
    json(
        state
            .database
            .with_connection(
                |connection| async move { pg::list_contacts(&*connection, request).await },
            )
            .await,
    )
}

async fn contact(State(state): State<AppState>, path: Result<Path<String>, PathRejection>) -> Json {
    let id = match ContactId::parse(&segment(path)) {
        Ok(id) => id,
        Err(error) => return Json(Err(error)),
    };
    json(
        state
            .database
            .with_connection(|connection| async move { pg::get_contact(&*connection, id).await })
            .await,
    )
}

async fn fibonacci(path: Result<Path<String>, PathRejection>) -> Json {
    json(FibonacciN::parse(&segment(path)).map(|n| FibonacciBody {
        result: workload::fibonacci(n),
    }))
}

async fn calibrate() -> Json {
    json(Ok(workload::calibrate()))
}

/// The CPU work runs on the runtime worker that serves the request, holding it: the mistake the
/// concurrency study shows.
async fn sync_cpubound(path: Result<Path<String>, PathRejection>) -> Json {
    json(
        Iterations::parse(&segment(path))
            .map(|iterations| workload::run_iterations(iterations).body()),
    )
}

/// The same work on tokio's blocking pool, leaving the runtime workers free to serve.
async fn offload_cpubound(path: Result<Path<String>, PathRejection>) -> Json {
    let iterations = match Iterations::parse(&segment(path)) {
        Ok(iterations) => iterations,
        Err(error) => return Json(Err(error)),
    };
    let report = tokio::task::spawn_blocking(move || workload::run_iterations(iterations)).await;
    json(
        report
            .map(|report| report.body())
            .map_err(|_| ApiError::Internal),
    )
}

async fn async_iobound(path: Result<Path<String>, PathRejection>) -> Json {
    let millis = match Millis::parse(&segment(path)) {
        Ok(millis) => millis,
        Err(error) => return Json(Err(error)),
    };
    let started = Instant::now();
    tokio::time::sleep(std::time::Duration::from_millis(millis.get())).await;
    json(Ok(workload::waited_body(millis, started.elapsed())))
}

/// A thread sleep inside an async handler blocks the runtime worker: deliberate, for the study.
async fn blocking_iobound(path: Result<Path<String>, PathRejection>) -> Json {
    let millis = match Millis::parse(&segment(path)) {
        Ok(millis) => millis,
        Err(error) => return Json(Err(error)),
    };
    let started = Instant::now();
    std::thread::sleep(std::time::Duration::from_millis(millis.get()));
    json(Ok(workload::waited_body(millis, started.elapsed())))
}

async fn resmon(State(state): State<AppState>) -> Json {
    json(
        bakeoff_core::resmon::snapshot(
            crate::VARIANT.name,
            state.workers,
            state.pool_size,
            state.db_recycle,
        )
        .map_err(|error| {
            tracing::error!(%error, "reading /proc");
            ApiError::Internal
        }),
    )
}

async fn openapi() -> Json {
    Json(Ok(bakeoff_core::openapi::OPENAPI_JSON.as_bytes().to_vec()))
}
