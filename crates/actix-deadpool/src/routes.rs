//! The routes of the contract in actix-web: every path, with and without one trailing slash, to its
//! handler; JSON answers for unknown paths and methods.

use actix_web::{Resource, Responder, guard, web};

use crate::handlers;

/// The routes of the contract.
pub fn routes(config: &mut web::ServiceConfig) {
    config
        .service(get("/version", handlers::version))
        .service(get("/types", handlers::types))
        .service(get("/contacts", handlers::contacts))
        .service(get("/contacts/{contact_id}", handlers::contact))
        .service(get("/fibonacci/{n}", handlers::fibonacci))
        .service(get("/test/calibrate", handlers::calibrate))
        .service(get(
            "/test/sync-cpubound/{iterations}",
            handlers::sync_cpubound,
        ))
        .service(get(
            "/test/offload-cpubound/{iterations}",
            handlers::offload_cpubound,
        ))
        .service(get("/test/async-iobound/{millis}", handlers::async_iobound))
        .service(get(
            "/test/blocking-iobound/{millis}",
            handlers::blocking_iobound,
        ))
        .service(get("/test/resmon", handlers::resmon))
        .service(get("/openapi.json", handlers::openapi))
        .default_service(web::to(handlers::route_not_found));
}

/// A resource answering GET and HEAD at `path` and at `path/` (no redirect), and 405 for other
/// methods. actix routes HEAD only where asked (`web::get()` matches GET alone); for a HEAD it
/// runs the same handler, keeps the body's Content-Length and sends no body.
fn get<F, Args>(path: &str, handler: F) -> Resource
where
    F: actix_web::Handler<Args>,
    Args: actix_web::FromRequest + 'static,
    F::Output: Responder + 'static,
{
    web::resource([path.to_string(), format!("{path}/")])
        .route(
            web::route()
                .guard(guard::Any(guard::Get()).or(guard::Head()))
                .to(handler),
        )
        .default_service(web::to(handlers::method_not_allowed))
}
