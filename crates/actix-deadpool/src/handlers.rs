//! The handlers of the contract. Values come from path segments taken as plain `String`s and the
//! raw query string, and are parsed by core, so that bad input gets the contract's 400 rather
//! than actix's 404 or text bodies.

use std::time::{Duration, Instant};

use actix_web::{HttpRequest, HttpResponse, web};
use bakeoff_core::model::{self, VersionInfo};
use bakeoff_core::workload::{self, FibonacciBody};
use bakeoff_core::{
    ApiError, ContactId, FibonacciN, Iterations, JSON_CONTENT_TYPE, Millis, PageRequest, openapi,
    pg, resmon,
};
use serde::Serialize;

use crate::database::DbPool;
use crate::error::Error;

/// What every worker shares: the database pool, and the worker count `/test/resmon` reports.
pub struct AppState {
    pub pool: DbPool,
    pub workers: usize,
}

type Response = Result<HttpResponse, Error>;

/// A 200 with the body serialized by core, so the bytes match every other variant.
fn json(body: &impl Serialize) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(JSON_CONTENT_TYPE)
        .body(model::to_json(body))
}

pub async fn version() -> HttpResponse {
    json(&VersionInfo::of(crate::VARIANT.name))
}

pub async fn types(state: web::Data<AppState>) -> Response {
    let types = state
        .pool
        .run(async |connection| pg::list_types(connection).await)
        .await?;
    Ok(json(&types))
}

pub async fn contacts(request: HttpRequest, state: web::Data<AppState>) -> Response {
    // Validate before taking a connection: a bad request should not wait for the pool.
    let page = PageRequest::from_query(Some(request.query_string()))?;
    let contacts = state
        .pool
        .run(async |connection| pg::list_contacts(connection, &page).await)
        .await?;
    Ok(json(&contacts))
}

pub async fn contact(contact_id: web::Path<String>, state: web::Data<AppState>) -> Response {
    let id = ContactId::parse(&contact_id)?;
    let contact = state
        .pool
        .run(async |connection| pg::get_contact(connection, id).await)
        .await?;
    Ok(json(&contact))
}

pub async fn fibonacci(n: web::Path<String>) -> Response {
    let n = FibonacciN::parse(&n)?;
    Ok(json(&FibonacciBody {
        result: workload::fibonacci(n),
    }))
}

pub async fn calibrate() -> HttpResponse {
    json(&workload::calibrate())
}

/// The CPU work on the worker's own thread: the worker serves nothing else meanwhile.
pub async fn sync_cpubound(iterations: web::Path<String>) -> Response {
    let iterations = Iterations::parse(&iterations)?;
    Ok(json(&workload::run_iterations(iterations).body()))
}

/// The same work on actix's blocking thread pool (`web::block`), keeping the worker free.
pub async fn offload_cpubound(iterations: web::Path<String>) -> Response {
    let iterations = Iterations::parse(&iterations)?;
    let report = web::block(move || workload::run_iterations(iterations))
        .await
        .map_err(|error| {
            tracing::error!(%error, "offloaded workload failed");
            ApiError::Internal
        })?;
    Ok(json(&report.body()))
}

/// A non-blocking wait: the worker serves other requests meanwhile.
pub async fn async_iobound(millis: web::Path<String>) -> Response {
    let millis = Millis::parse(&millis)?;
    let started = Instant::now();
    actix_web::rt::time::sleep(Duration::from_millis(millis.get())).await;
    Ok(json(&workload::waited_body(millis, started.elapsed())))
}

/// The deliberate mistake: a blocking sleep inside an async handler stalls the whole worker.
pub async fn blocking_iobound(millis: web::Path<String>) -> Response {
    let millis = Millis::parse(&millis)?;
    let started = Instant::now();
    std::thread::sleep(Duration::from_millis(millis.get()));
    Ok(json(&workload::waited_body(millis, started.elapsed())))
}

pub async fn resmon(state: web::Data<AppState>) -> Response {
    let snapshot = resmon::snapshot(
        crate::VARIANT.name,
        state.workers,
        state.pool.size,
        state.pool.recycle,
    )
    .map_err(|error| {
        tracing::error!(%error, "cannot read /proc");
        ApiError::Internal
    })?;
    Ok(json(&snapshot))
}

pub async fn openapi() -> HttpResponse {
    HttpResponse::Ok()
        .content_type(JSON_CONTENT_TYPE)
        .body(openapi::OPENAPI_JSON.as_str())
}

/// `App::default_service`: no route matches the path.
pub async fn route_not_found() -> Response {
    Err(ApiError::RouteNotFound.into())
}

/// Each resource's `default_service`: the path exists, the method does not.
pub async fn method_not_allowed() -> Response {
    Err(ApiError::MethodNotAllowed.into())
}
