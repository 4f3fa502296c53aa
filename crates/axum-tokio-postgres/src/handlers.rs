//! The handlers of the contract: each returns `Result<Json<T>, Error>` and uses `?`.
//!
//! Values are never parsed by axum's typed extractors (whose rejections are text, and 404 for a bad
//! path parameter): handlers take the raw segment or query string and parse it with core, so this
//! variant accepts and rejects exactly what the others do.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bakeoff_core::model::{Contact, ContactType, Page, VersionInfo, to_json};
use bakeoff_core::resmon::ResourceSnapshot;
use bakeoff_core::workload::{self, FibonacciBody, TimedBody, TimedCpuBody};
use bakeoff_core::{
    ApiError, ContactId, DbRecycle, FibonacciN, Iterations, JSON_CONTENT_TYPE, Millis, PageRequest,
    pg,
};
use serde::Serialize;

use crate::database::DbPool;
use crate::error::Error;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub pool: Arc<DbPool>,
    pub workers: usize,
    pub pool_size: usize,
    /// `DB_RECYCLE`, reported by `/test/resmon`; there is no checkout for it to change.
    pub db_recycle: DbRecycle,
}

/// A 200 with a JSON body: axum's `Json`, but serialized by core, so that the bytes match every
/// other variant.
pub struct Json<T>(pub T);

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        json_response(to_json(&self.0))
    }
}

/// A 200 with a body already serialized as JSON.
fn json_response(body: Vec<u8>) -> Response {
    let mut response = (StatusCode::OK, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(JSON_CONTENT_TYPE),
    );
    response
}

/// The raw path segment; one axum cannot decode (invalid UTF-8) is invalid for core too.
fn segment(path: Result<Path<String>, PathRejection>) -> String {
    path.map(|Path(segment)| segment)
        .unwrap_or_else(|_| char::REPLACEMENT_CHARACTER.to_string())
}

pub async fn version() -> Json<VersionInfo> {
    Json(VersionInfo::of(crate::VARIANT.name))
}

pub async fn types(State(state): State<AppState>) -> Result<Json<Page<ContactType>>, Error> {
    let types = state
        .pool
        .with_connection(|connection| async move { pg::list_types(&*connection).await })
        .await?;
    Ok(Json(types))
}

pub async fn contacts(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Json<Page<Contact>>, Error> {
    let request = PageRequest::from_query(query.as_deref())?;
    // Borrowed, so that the work can run a second time if its connection is lost.
    let request = &request;
    let contacts = state
        .pool
        .with_connection(|connection| async move { pg::list_contacts(&*connection, request).await })
        .await?;
    Ok(Json(contacts))
}

pub async fn contact(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<Contact>, Error> {
    let id = ContactId::parse(&segment(path))?;
    let contact = state
        .pool
        .with_connection(|connection| async move { pg::get_contact(&*connection, id).await })
        .await?;
    Ok(Json(contact))
}

pub async fn fibonacci(
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<FibonacciBody>, Error> {
    let n = FibonacciN::parse(&segment(path))?;
    Ok(Json(FibonacciBody {
        result: workload::fibonacci(n),
    }))
}

pub async fn calibrate() -> Json<TimedBody> {
    Json(workload::calibrate())
}

/// The CPU work runs on the runtime worker that serves the request, holding it: the mistake the
/// concurrency study shows.
pub async fn sync_cpubound(
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<TimedCpuBody>, Error> {
    let iterations = Iterations::parse(&segment(path))?;
    Ok(Json(workload::run_iterations(iterations).body()))
}

/// The same work on tokio's blocking pool, leaving the runtime workers free to serve.
pub async fn offload_cpubound(
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<TimedCpuBody>, Error> {
    let iterations = Iterations::parse(&segment(path))?;
    let report = tokio::task::spawn_blocking(move || workload::run_iterations(iterations))
        .await
        .map_err(|_| ApiError::Internal)?;
    Ok(Json(report.body()))
}

pub async fn async_iobound(
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<TimedBody>, Error> {
    let millis = Millis::parse(&segment(path))?;
    let started = Instant::now();
    tokio::time::sleep(Duration::from_millis(millis.get())).await;
    Ok(Json(workload::waited_body(millis, started.elapsed())))
}

/// A thread sleep inside an async handler blocks the runtime worker: deliberate, for the study.
pub async fn blocking_iobound(
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<TimedBody>, Error> {
    let millis = Millis::parse(&segment(path))?;
    let started = Instant::now();
    std::thread::sleep(Duration::from_millis(millis.get()));
    Ok(Json(workload::waited_body(millis, started.elapsed())))
}

pub async fn resmon(State(state): State<AppState>) -> Result<Json<ResourceSnapshot>, Error> {
    let snapshot = bakeoff_core::resmon::snapshot(
        crate::VARIANT.name,
        state.workers,
        state.pool_size,
        state.db_recycle,
    )
    .map_err(|error| {
        tracing::error!(%error, "reading /proc");
        ApiError::Internal
    })?;
    Ok(Json(snapshot))
}

/// The contract's document, byte for byte as core generated it.
pub async fn openapi() -> Response {
    json_response(bakeoff_core::openapi::OPENAPI_JSON.as_bytes().to_vec())
}

/// The router's fallback: no route matches the path.
pub async fn route_not_found() -> Error {
    Error(ApiError::RouteNotFound)
}

/// The router's method fallback: the path exists, the method does not.
pub async fn method_not_allowed() -> Error {
    Error(ApiError::MethodNotAllowed)
}
