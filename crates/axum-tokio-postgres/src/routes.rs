//! The routes of the contract in axum: every path, with and without one trailing slash, to its
//! handler; JSON answers for unknown paths and methods.

use axum::Router;
use axum::routing::{MethodRouter, get};

use crate::handlers::{self, AppState};

/// The application.
pub fn router(state: AppState) -> Router {
    let routes: [(&str, MethodRouter<AppState>); 12] = [
        ("/version", get(handlers::version)),
        ("/types", get(handlers::types)),
        ("/contacts", get(handlers::contacts)),
        ("/contacts/{contact_id}", get(handlers::contact)),
        ("/fibonacci/{n}", get(handlers::fibonacci)),
        ("/test/calibrate", get(handlers::calibrate)),
        (
            "/test/sync-cpubound/{iterations}",
            get(handlers::sync_cpubound),
        ),
        (
            "/test/offload-cpubound/{iterations}",
            get(handlers::offload_cpubound),
        ),
        ("/test/async-iobound/{millis}", get(handlers::async_iobound)),
        (
            "/test/blocking-iobound/{millis}",
            get(handlers::blocking_iobound),
        ),
        ("/test/resmon", get(handlers::resmon)),
        ("/openapi.json", get(handlers::openapi)),
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
        .fallback(handlers::route_not_found)
        .method_not_allowed_fallback(handlers::method_not_allowed)
        .with_state(state)
}
