//! The handlers of the contract, one function per route. Every handler runs to the end on the
//! worker thread that took the request: there is nowhere else to run.

use std::thread;
use std::time::{Duration, Instant};

use bakeoff_core::model::{self, VersionInfo};
use bakeoff_core::workload::{self, FibonacciBody};
use bakeoff_core::{ApiError, ContactId, FibonacciN, Iterations, Millis, PageRequest};
use bakeoff_core::{openapi, resmon};

use crate::database::{self, DbPool};

/// What every worker thread shares: the connection pool, and the sizes `/test/resmon` reports.
pub struct AppState {
    pub pool: DbPool,
    pub workers: usize,
    pub pool_size: usize,
}

/// A handler's answer: the JSON body of a 200, or the contract's error.
type Answer = Result<Vec<u8>, ApiError>;

pub fn version() -> Answer {
    Ok(model::to_json(&VersionInfo::of(crate::VARIANT.name)))
}

pub fn types(state: &AppState) -> Answer {
    Ok(model::to_json(&database::list_types(&state.pool)?))
}

pub fn contacts(state: &AppState, query: Option<&str>) -> Answer {
    let request = PageRequest::from_query(query)?;
    Ok(model::to_json(&database::list_contacts(
        &state.pool,
        &request,
    )?))
}

pub fn contact(state: &AppState, id: &str) -> Answer {
    let id = ContactId::parse(id)?;
    Ok(model::to_json(&database::get_contact(&state.pool, id)?))
}

pub fn fibonacci(n: &str) -> Answer {
    let result = workload::fibonacci(FibonacciN::parse(n)?);
    Ok(model::to_json(&FibonacciBody { result }))
}

pub fn calibrate() -> Answer {
    Ok(model::to_json(&workload::calibrate()))
}

/// `/test/sync-cpubound` and `/test/offload-cpubound`: the work on this thread.
pub fn cpubound(iterations: &str) -> Answer {
    let iterations = Iterations::parse(iterations)?;
    Ok(model::to_json(&workload::run_iterations(iterations).body()))
}

/// `/test/async-iobound` and `/test/blocking-iobound`: the wait holds this thread.
pub fn iobound(millis: &str) -> Answer {
    let millis = Millis::parse(millis)?;
    let started = Instant::now();
    thread::sleep(Duration::from_millis(millis.get()));
    Ok(model::to_json(&workload::waited_body(
        millis,
        started.elapsed(),
    )))
}

pub fn resmon(state: &AppState) -> Answer {
    let snapshot = resmon::snapshot(
        crate::VARIANT.name,
        state.workers,
        state.pool_size,
        state.pool.recycle,
    )
    .map_err(|error| {
        tracing::error!(%error, "reading /proc failed");
        ApiError::Internal
    })?;
    Ok(model::to_json(&snapshot))
}

/// The contract's document, byte for byte as core generated it.
pub fn openapi() -> Vec<u8> {
    openapi::OPENAPI_JSON.as_bytes().to_vec()
}
