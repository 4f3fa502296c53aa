//! The contract as warp filters, as warp's examples compose them: one filter per route, each
//! extracting its raw parameters and handing them to its handler in [`crate::handlers`], tried in
//! turn with `or`, and one `recover` ([`crate::error::recover`]) that turns warp's rejections into
//! the contract's JSON errors. (warp's examples call this module `filters`; every server crate
//! here calls its routing `routes`.)
//!
//! Two warp defaults are overridden here. A path parameter that does not parse makes warp reject
//! with 404, so parameters are taken as `String` and parsed by core in the handler (400 with
//! core's message). Rejections render as text, so `recover` answers them as JSON. Each route's
//! path comes before its method: a known path with the wrong method then rejects with 405, while
//! an unknown path rejects with 404 whatever the method. `path!` matches with or without one
//! trailing slash.

use std::convert::Infallible;

use warp::reply::Response;
use warp::{Filter, Rejection};

use crate::error;
use crate::handlers::{self, AppState};

/// The whole contract, with every rejection recovered into a JSON error.
pub fn routes(state: AppState) -> impl Filter<Extract = (Response,), Error = Infallible> + Clone {
    let version = warp::path!("version")
        .and(get_or_head())
        .then(handlers::version);
    let types = warp::path!("types")
        .and(get_or_head())
        .and(with_state(state.clone()))
        .then(handlers::types);
    let contacts = warp::path!("contacts")
        .and(get_or_head())
        .and(raw_query())
        .and(with_state(state.clone()))
        .then(handlers::contacts);
    let contact = warp::path!("contacts" / String)
        .and(get_or_head())
        .and(with_state(state.clone()))
        .then(handlers::contact);
    let fibonacci = warp::path!("fibonacci" / String)
        .and(get_or_head())
        .then(handlers::fibonacci);
    let openapi = warp::path!("openapi.json")
        .and(get_or_head())
        .then(handlers::openapi);
    let database_routes = types.or(contacts).unify().or(contact).unify();
    let routes = version
        .or(database_routes)
        .unify()
        .or(fibonacci)
        .unify()
        .or(test_routes(state))
        .unify()
        .or(openapi)
        .unify();
    routes.recover(error::recover).unify()
}

/// The `/test/*` routes: the CPU and I/O workloads, and the server's own resource use.
fn test_routes(state: AppState) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let calibrate = warp::path!("test" / "calibrate")
        .and(get_or_head())
        .then(handlers::calibrate);
    let sync_cpubound = warp::path!("test" / "sync-cpubound" / String)
        .and(get_or_head())
        .then(handlers::sync_cpubound);
    let offload_cpubound = warp::path!("test" / "offload-cpubound" / String)
        .and(get_or_head())
        .then(handlers::offload_cpubound);
    let async_iobound = warp::path!("test" / "async-iobound" / String)
        .and(get_or_head())
        .then(handlers::async_iobound);
    let blocking_iobound = warp::path!("test" / "blocking-iobound" / String)
        .and(get_or_head())
        .then(handlers::blocking_iobound);
    let resmon = warp::path!("test" / "resmon")
        .and(get_or_head())
        .and(with_state(state))
        .then(handlers::resmon);
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

/// Hands the state to a handler, as warp's examples hand over their database (`with_db`).
fn with_state(state: AppState) -> impl Filter<Extract = (AppState,), Error = Infallible> + Clone {
    warp::any().map(move || state.clone())
}

/// The methods of every route: GET, and HEAD as RFC 9110 asks of a general-purpose server. A HEAD
/// runs the GET's handler; hyper sends its headers, the body's Content-Length included, and no
/// body. Any other method rejects with warp's `MethodNotAllowed`, which `recover` answers.
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
