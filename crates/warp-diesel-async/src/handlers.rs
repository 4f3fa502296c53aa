//! The handlers of the contract, apart from the filters that route to them: each takes the raw
//! values its route extracted, parses them with core, and answers the JSON body or the
//! contract's error.
//!
//! warp has no request timeout, so [`answer`] bounds every handler that can wait.

use std::future::Future;
use std::time::{Duration, Instant};

use bakeoff_core::model::{VersionInfo, to_json};
use bakeoff_core::workload::{self, FibonacciBody};
use bakeoff_core::{ApiError, ContactId, FibonacciN, Iterations, Millis, PageRequest};
use percent_encoding::percent_decode_str;
use warp::http::StatusCode;
use warp::reply::Response;

use crate::database::{self, DbPool};
use crate::error::{error_response, json_response};

/// What every handler may need: the pool, and the sizes `/test/resmon` reports.
#[derive(Clone)]
pub struct AppState {
    pub pool: DbPool,
    pub workers: usize,
    pub pool_size: usize,
}

/// The bound on a handler's time. warp (unlike actix-web or a reverse proxy) has no request
/// timeout of its own; at this bound a request gets 503 Timeout instead of hanging. It is above
/// the longest legitimate request, the 60 s `/test/*-iobound` wait. It cannot interrupt a
/// handler that blocks its thread (`blocking-iobound`, `sync-cpubound`): those are answered when
/// they yield.
pub const HANDLER_TIME_LIMIT: Duration = Duration::from_secs(65);

pub async fn version() -> Response {
    answer(async { Ok(to_json(&VersionInfo::of(crate::VARIANT.name))) }).await
}

pub async fn types(state: AppState) -> Response {
    answer(async move { Ok(to_json(&database::list_types(&state.pool).await?)) }).await
}

pub async fn contacts(query: Option<String>, state: AppState) -> Response {
    answer(async move {
        let request = PageRequest::from_query(query.as_deref())?;
        Ok(to_json(
            &database::list_contacts(&state.pool, &request).await?,
        ))
    })
    .await
}

pub async fn contact(id: String, state: AppState) -> Response {
    answer(async move {
        let id = ContactId::parse(&decoded(&id))?;
        Ok(to_json(&database::get_contact(&state.pool, id).await?))
    })
    .await
}

pub async fn fibonacci(n: String) -> Response {
    answer(async move {
        let n = FibonacciN::parse(&decoded(&n))?;
        Ok(to_json(&FibonacciBody {
            result: workload::fibonacci(n),
        }))
    })
    .await
}

pub async fn calibrate() -> Response {
    answer(async { Ok(to_json(&workload::calibrate())) }).await
}

/// Inline on the runtime's worker thread, on purpose: this route shows the cost.
pub async fn sync_cpubound(iterations: String) -> Response {
    answer(async move {
        let iterations = Iterations::parse(&decoded(&iterations))?;
        Ok(to_json(&workload::run_iterations(iterations).body()))
    })
    .await
}

/// The same work on tokio's blocking pool, leaving the runtime workers free to serve.
pub async fn offload_cpubound(iterations: String) -> Response {
    answer(async move {
        let iterations = Iterations::parse(&decoded(&iterations))?;
        let report = tokio::task::spawn_blocking(move || workload::run_iterations(iterations))
            .await
            .map_err(|error| {
                tracing::error!(%error, "the offloaded workload did not finish");
                ApiError::Internal
            })?;
        Ok(to_json(&report.body()))
    })
    .await
}

pub async fn async_iobound(millis: String) -> Response {
    answer(async move {
        let millis = Millis::parse(&decoded(&millis))?;
        let started = Instant::now();
        tokio::time::sleep(Duration::from_millis(millis.get())).await;
        Ok(to_json(&workload::waited_body(millis, started.elapsed())))
    })
    .await
}

/// The deliberate mistake: a blocking sleep holds one of the runtime's few worker threads, and
/// every request queued behind it on that thread waits too.
pub async fn blocking_iobound(millis: String) -> Response {
    answer(async move {
        let millis = Millis::parse(&decoded(&millis))?;
        let started = Instant::now();
        std::thread::sleep(Duration::from_millis(millis.get()));
        Ok(to_json(&workload::waited_body(millis, started.elapsed())))
    })
    .await
}

pub async fn resmon(state: AppState) -> Response {
    answer(async move {
        let snapshot = bakeoff_core::resmon::snapshot(
            crate::VARIANT.name,
            state.workers,
            state.pool_size,
            state.pool.recycle(),
        )
        .map_err(|error| {
            tracing::error!(%error, "reading /proc failed");
            ApiError::Internal
        })?;
        Ok(to_json(&snapshot))
    })
    .await
}

/// `GET /openapi.json`: the contract's document, byte for byte.
pub async fn openapi() -> Response {
    json_response(
        StatusCode::OK,
        bakeoff_core::openapi::OPENAPI_JSON.as_bytes().to_vec(),
    )
}

/// A path segment as the client meant it: warp hands segments over still percent-encoded.
fn decoded(segment: &str) -> String {
    percent_decode_str(segment).decode_utf8_lossy().into_owned()
}

/// Runs a handler within [`HANDLER_TIME_LIMIT`] and renders its JSON body or its error.
async fn answer(handler: impl Future<Output = Result<Vec<u8>, ApiError>>) -> Response {
    let result = tokio::time::timeout(HANDLER_TIME_LIMIT, handler)
        .await
        .unwrap_or(Err(ApiError::Timeout));
    match result {
        Ok(body) => json_response(StatusCode::OK, body),
        Err(error) => error_response(&error),
    }
}
