//! The contract as warp filters: one filter per route, tried in turn with `or`, and one
//! `recover` that turns warp's rejections into the contract's JSON errors.
//!
//! Three warp defaults are overridden here. A path parameter that does not parse makes warp
//! reject with 404, so parameters are taken as `String` and parsed by core (400 with core's
//! message). Rejections render as text, so [`rejection`] answers them as JSON. And warp has no
//! request timeout, so [`answer`] bounds every handler. Each route's path comes before its
//! method: a known path with the wrong method then rejects with 405, while an unknown path
//! rejects with 404 whatever the method. `path!` matches with or without one trailing slash.

use std::convert::Infallible;
use std::future::Future;
use std::time::{Duration, Instant};

use bakeoff_core::model::{VersionInfo, to_json};
use bakeoff_core::workload::{self, FibonacciBody};
use bakeoff_core::{
    ApiError, ContactId, FibonacciN, Iterations, JSON_CONTENT_TYPE, Millis, PageRequest,
};
use percent_encoding::percent_decode_str;
use warp::http::StatusCode;
use warp::http::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use warp::reject::{MethodNotAllowed, PayloadTooLarge};
use warp::reply::Response;
use warp::{Filter, Rejection};

use crate::db::{self, DbPool};

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

/// The whole contract, with every rejection recovered into a JSON error.
pub fn routes(state: AppState) -> impl Filter<Extract = (Response,), Error = Infallible> + Clone {
    let state = warp::any().map(move || state.clone());

    let version = warp::path!("version")
        .and(get_or_head())
        .then(|| answer(async { Ok(to_json(&VersionInfo::of(crate::VARIANT.name))) }));
    let types = warp::path!("types")
        .and(get_or_head())
        .and(state.clone())
        .then(|state: AppState| {
            answer(async move { Ok(to_json(&db::list_types(&state.pool).await?)) })
        });
    let contacts = warp::path!("contacts")
        .and(get_or_head())
        .and(raw_query())
        .and(state.clone())
        .then(|query: Option<String>, state: AppState| {
            answer(async move {
                let request = PageRequest::from_query(query.as_deref())?;
                Ok(to_json(&db::list_contacts(&state.pool, &request).await?))
            })
        });
    let contact = warp::path!("contacts" / String)
        .and(get_or_head())
        .and(state.clone())
        .then(|id: String, state: AppState| {
            answer(async move {
                let id = ContactId::parse(&decoded(&id))?;
                Ok(to_json(&db::get_contact(&state.pool, id).await?))
            })
        });
    let fibonacci = warp::path!("fibonacci" / String)
        .and(get_or_head())
        .then(|n: String| {
            answer(async move {
                let n = FibonacciN::parse(&decoded(&n))?;
                Ok(to_json(&FibonacciBody {
                    result: workload::fibonacci(n),
                }))
            })
        });
    let database_routes = types.or(contacts).unify().or(contact).unify();
    let routes = version
        .or(database_routes)
        .unify()
        .or(fibonacci)
        .unify()
        .or(test_routes(state))
        .unify()
        .or(openapi())
        .unify();
    routes.recover(rejection).unify()
}

/// The `/test/*` routes: the CPU and I/O workloads, and the server's own resource use.
fn test_routes(
    state: impl Filter<Extract = (AppState,), Error = Infallible> + Clone + Send + Sync + 'static,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let calibrate = warp::path!("test" / "calibrate")
        .and(get_or_head())
        .then(|| answer(async { Ok(to_json(&workload::calibrate())) }));
    let sync_cpubound = warp::path!("test" / "sync-cpubound" / String)
        .and(get_or_head())
        .then(|iterations: String| {
            answer(async move {
                // Inline on the runtime's worker thread, on purpose: this route shows the cost.
                let iterations = Iterations::parse(&decoded(&iterations))?;
                Ok(to_json(&workload::run_iterations(iterations).body()))
            })
        });
    let offload_cpubound = warp::path!("test" / "offload-cpubound" / String)
        .and(get_or_head())
        .then(|iterations: String| {
            answer(async move {
                let iterations = Iterations::parse(&decoded(&iterations))?;
                let report =
                    tokio::task::spawn_blocking(move || workload::run_iterations(iterations))
                        .await
                        .map_err(|error| {
                            tracing::error!(%error, "the offloaded workload did not finish");
                            ApiError::Internal
                        })?;
                Ok(to_json(&report.body()))
            })
        });
    let async_iobound = warp::path!("test" / "async-iobound" / String)
        .and(get_or_head())
        .then(|millis: String| {
            answer(async move {
                let millis = Millis::parse(&decoded(&millis))?;
                let started = Instant::now();
                tokio::time::sleep(Duration::from_millis(millis.get())).await;
                Ok(to_json(&workload::waited_body(millis, started.elapsed())))
            })
        });
    let blocking_iobound = warp::path!("test" / "blocking-iobound" / String)
        .and(get_or_head())
        .then(|millis: String| {
            answer(async move {
                let millis = Millis::parse(&decoded(&millis))?;
                let started = Instant::now();
                // The deliberate mistake: a blocking sleep holds one of the runtime's few worker
                // threads, and every request queued behind it on that thread waits too.
                std::thread::sleep(Duration::from_millis(millis.get()));
                Ok(to_json(&workload::waited_body(millis, started.elapsed())))
            })
        });
    let resmon = warp::path!("test" / "resmon")
        .and(get_or_head())
        .and(state)
        .then(|state: AppState| {
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
        });
    calibrate
        .or(sync_cpubound)
        .unify()
        .or(offload_cpubound)
        .unify()
        .or(async_iobound)
        .unify()
        .or(blocking_iobound)
        .unify()
        .or(resmon)
        .unify()
}

/// `GET /openapi.json`: the contract's document, byte for byte.
fn openapi() -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("openapi.json").and(get_or_head()).map(|| {
        json_response(
            StatusCode::OK,
            bakeoff_core::openapi::OPENAPI_JSON.as_bytes().to_vec(),
        )
    })
}

/// The methods of every route: GET, and HEAD as RFC 9110 asks of a general-purpose server. A HEAD
/// runs the GET's handler; hyper sends its headers, the body's Content-Length included, and no
/// body. Any other method rejects with warp's `MethodNotAllowed`, which [`rejection`] answers.
fn get_or_head() -> impl Filter<Extract = (), Error = Rejection> + Copy {
    warp::get().or(warp::head()).unify()
}

/// The raw query string, if the request has one. `PageRequest::from_query` parses it, so that
/// every variant accepts and rejects the same queries (warp's typed `query()` would reject with
/// its own text).
fn raw_query() -> impl Filter<Extract = (Option<String>,), Error = Infallible> + Clone {
    warp::query::raw()
        .map(Some)
        .or(warp::any().map(|| None))
        .unify()
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

/// Maps a rejection (no route matched) onto the contract: 405 when the path exists but not for
/// this method, 404 when nothing matched, and a bodiless 500 for anything unforeseen.
async fn rejection(rejection: Rejection) -> Result<Response, Infallible> {
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

fn error_response(error: &ApiError) -> Response {
    let status = StatusCode::from_u16(error.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = json_response(status, error.to_json());
    // Retry-After on a 503, Allow on a 405 (warp's own rejections carry none).
    for &(name, value) in error.headers() {
        response.headers_mut().insert(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    }
    response
}

fn json_response(status: StatusCode, body: Vec<u8>) -> Response {
    let mut response = Response::new(body.into());
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(JSON_CONTENT_TYPE));
    response
}
