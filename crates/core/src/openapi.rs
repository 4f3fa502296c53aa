//! The OpenAPI 3.1 document of the contract, generated from core's own types with utoipa: the
//! body schemas from the model, error, workload and resmon types (`ToSchema`), the parameters
//! from `params` (`IntoParams`), and the operations from the declarations in [`operations`].
//! Every server serves it as `GET /openapi.json` from [`OPENAPI_JSON`]; the conformance suite
//! checks that each serves exactly these bytes and validates every response it sees against it.
//!
//! Since the document and the bytes on the wire come from the same types, a field added to a body
//! type is in the schema too; what the types cannot say (the operations, their statuses, which
//! objects are closed) is declared here, once.

use std::sync::LazyLock;

use utoipa::openapi::schema::{AdditionalProperties, ArrayItems, Schema};
use utoipa::openapi::{OpenApi as Document, RefOr};
use utoipa::{Modify, OpenApi};

/// The document as every variant serves it (compact JSON), generated on first use.
pub static OPENAPI_JSON: LazyLock<String> = LazyLock::new(|| {
    // The document is plain strings, numbers and maps: serializing it cannot fail.
    document()
        .to_json()
        .expect("the OpenAPI document serializes")
});

/// The document as a value, for tests and tools that inspect it.
pub fn document() -> Document {
    Contract::openapi()
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "bakeoff contacts API",
        version = crate::VERSION,
        description = "The one contract every bakeoff server variant implements, byte for byte. \
            Every path also answers with one trailing slash. Every response is application/json, \
            errors included (the ErrorBody schema). Field order on the wire is the order of each \
            schema's properties. HEAD answers what GET would, without the body; any other method on these paths answers 405 with `Allow: GET, HEAD` (components/responses/MethodNotAllowed); any other path answers 404; \
            500 means a bug and carries no detail."
    ),
    paths(
        operations::version,
        operations::list_types,
        operations::list_contacts,
        operations::get_contact,
        operations::fibonacci,
        operations::calibrate,
        operations::sync_cpu_bound,
        operations::offload_cpu_bound,
        operations::async_io_bound,
        operations::blocking_io_bound,
        operations::resource_monitor,
        operations::openapi,
    ),
    components(
        schemas(crate::ErrorBody),
        responses(
            operations::BadRequest,
            operations::NotFound,
            operations::MethodNotAllowed,
            operations::Unavailable
        )
    ),
    tags(
        (name = "contacts", description = "The contacts service over PostgreSQL: the first study's endpoints."),
        (name = "workload", description = "CPU- and IO-bound endpoints of the concurrency study; no database."),
        (name = "meta", description = "The server itself; no database."),
    ),
    modifiers(&ClosedObjects)
)]
struct Contract;

/// Closes every object schema of the components (`additionalProperties: false`), nested ones
/// included (utoipa inlines a generic's argument: `Page<Contact>` carries a copy of `Contact`): a
/// variant that adds a field to a body breaks the contract, and validation should say so. The
/// body types cannot say it themselves without `#[serde(deny_unknown_fields)]`, which would also
/// make their readers (the benchmark's, the tests') reject bodies they are meant to read
/// leniently.
struct ClosedObjects;

impl Modify for ClosedObjects {
    fn modify(&self, document: &mut Document) {
        let Some(components) = document.components.as_mut() else {
            return;
        };
        components.schemas.values_mut().for_each(close_objects);
    }
}

fn close_objects(schema: &mut RefOr<Schema>) {
    let RefOr::T(schema) = schema else {
        return;
    };
    match schema {
        Schema::Object(object) => {
            // Objects without properties are maps (`errors`) or free-form: not records to close.
            if !object.properties.is_empty() && object.additional_properties.is_none() {
                object.additional_properties =
                    Some(Box::new(AdditionalProperties::FreeForm(false)));
            }
            object.properties.values_mut().for_each(close_objects);
        }
        Schema::Array(array) => {
            if let ArrayItems::RefOrSchema(items) = &mut array.items {
                close_objects(items);
            }
        }
        Schema::AllOf(all_of) => all_of.items.iter_mut().for_each(close_objects),
        Schema::OneOf(one_of) => one_of.items.iter_mut().for_each(close_objects),
        Schema::AnyOf(any_of) => any_of.items.iter_mut().for_each(close_objects),
        _ => {}
    }
}

/// The operations of the contract, for the document only: the real handlers are in the server
/// crates, each in its framework. These functions carry `#[utoipa::path]` and are never called.
#[allow(dead_code)]
mod operations {
    use utoipa::{ToResponse, ToSchema};

    use crate::model::{Contact, ContactType, Page, VersionInfo};
    use crate::resmon::ResourceSnapshot;
    use crate::workload::{FibonacciBody, TimedBody, TimedCpuBody};
    use crate::{ContactId, ErrorBody, FibonacciN, Iterations, Millis, PageRequest};

    /// 400.
    #[derive(ToResponse)]
    #[response(
        description = "An invalid path or query value; `errors` is keyed by parameter \
        and names every invalid one."
    )]
    pub struct BadRequest(ErrorBody);

    /// 404.
    #[derive(ToResponse)]
    #[response(
        description = "No such contact (`errors.contact_id`), or no such path \
        (`errors.request`)."
    )]
    pub struct NotFound(ErrorBody);

    /// 405.
    #[derive(ToResponse)]
    #[response(
        description = "A method other than GET or HEAD on a path of this document.",
        headers(("Allow" = String, description = "The methods the path answers: `GET, HEAD`."))
    )]
    pub struct MethodNotAllowed(ErrorBody);

    /// 503.
    #[derive(ToResponse)]
    #[response(
        description = "The database is unreachable, or no connection freed up within the \
            server's wait timeout (DB_WAIT_TIMEOUT_MS). Retry after the given seconds.",
        headers(("Retry-After" = u32, description = "Seconds to wait before retrying."))
    )]
    pub struct Unavailable(ErrorBody);

    /// What `/openapi.json` answers: an OpenAPI document, left open (this one has more fields).
    #[derive(ToSchema)]
    pub struct OpenApiDocument {
        #[schema(examples("3.1.0"))]
        openapi: String,
        #[schema(value_type = Object)]
        paths: (),
    }

    #[utoipa::path(
        get,
        path = "/version",
        operation_id = "version",
        tag = "meta",
        summary = "Workspace version and variant name; touches no database.",
        responses((status = 200, description = "The version.", body = VersionInfo))
    )]
    fn version() {}

    #[utoipa::path(
        get,
        path = "/types",
        operation_id = "listTypes",
        tag = "contacts",
        summary = "Every contact type, ordered by type_id; one SQL statement.",
        responses(
            (status = 200, description = "The types.", body = Page<ContactType>),
            (status = 503, response = Unavailable),
        )
    )]
    fn list_types() {}

    #[utoipa::path(
        get,
        path = "/contacts",
        operation_id = "listContacts",
        tag = "contacts",
        summary = "A page of contacts ordered by contact_id, optionally filtered by a \
            case-insensitive last-name prefix; at most three SQL statements.",
        description = "Unknown query parameters are ignored; a repeated parameter takes its \
            last value; every invalid value is reported, not just the first.",
        params(PageRequest),
        responses(
            (status = 200, description = "The page; count ignores paging.", body = Page<Contact>),
            (status = 400, response = BadRequest),
            (status = 503, response = Unavailable),
        )
    )]
    fn list_contacts() {}

    #[utoipa::path(
        get,
        path = "/contacts/{contact_id}",
        operation_id = "getContact",
        tag = "contacts",
        summary = "One contact with its type, phones and emails; three SQL statements.",
        params(ContactId),
        responses(
            (status = 200, description = "The contact.", body = Contact),
            (status = 400, response = BadRequest),
            (status = 404, response = NotFound),
            (status = 503, response = Unavailable),
        )
    )]
    fn get_contact() {}

    #[utoipa::path(
        get,
        path = "/fibonacci/{n}",
        operation_id = "fibonacci",
        tag = "workload",
        summary = "fib(n) by naive recursion, fib(0) = fib(1) = 1: CPU per request.",
        params(FibonacciN),
        responses(
            (status = 200, description = "The result.", body = FibonacciBody),
            (status = 400, response = BadRequest),
        )
    )]
    fn fibonacci() {}

    #[utoipa::path(
        get,
        path = "/test/calibrate",
        operation_id = "calibrate",
        tag = "workload",
        summary = "The duration of one iteration of the CPU workload.",
        responses((status = 200, description = "Seconds.", body = TimedBody))
    )]
    fn calibrate() {}

    #[utoipa::path(
        get,
        path = "/test/sync-cpubound/{iterations}",
        operation_id = "syncCpuBound",
        tag = "workload",
        summary = "Runs the CPU workload inline in the request handler.",
        params(Iterations),
        responses(
            (status = 200, description = "Seconds and checksum.", body = TimedCpuBody),
            (status = 400, response = BadRequest),
        )
    )]
    fn sync_cpu_bound() {}

    #[utoipa::path(
        get,
        path = "/test/offload-cpubound/{iterations}",
        operation_id = "offloadCpuBound",
        tag = "workload",
        summary = "Runs the CPU workload off the request-serving threads (inline where the \
            variant has nothing better to offload to).",
        params(Iterations),
        responses(
            (status = 200, description = "Seconds and checksum.", body = TimedCpuBody),
            (status = 400, response = BadRequest),
        )
    )]
    fn offload_cpu_bound() {}

    #[utoipa::path(
        get,
        path = "/test/async-iobound/{millis}",
        operation_id = "asyncIoBound",
        tag = "workload",
        summary = "A non-blocking wait (a thread sleep where the variant has no event loop).",
        params(Millis),
        responses(
            (status = 200, description = "Seconds waited.", body = TimedBody),
            (status = 400, response = BadRequest),
        )
    )]
    fn async_io_bound() {}

    #[utoipa::path(
        get,
        path = "/test/blocking-iobound/{millis}",
        operation_id = "blockingIoBound",
        tag = "workload",
        summary = "The same wait as a thread sleep inside the handler.",
        params(Millis),
        responses(
            (status = 200, description = "Seconds waited.", body = TimedBody),
            (status = 400, response = BadRequest),
        )
    )]
    fn blocking_io_bound() {}

    #[utoipa::path(
        get,
        path = "/test/resmon",
        operation_id = "resourceMonitor",
        tag = "meta",
        summary = "The server process's own resource use.",
        responses((status = 200, description = "A snapshot.", body = ResourceSnapshot))
    )]
    fn resource_monitor() {}

    #[utoipa::path(
        get,
        path = "/openapi.json",
        operation_id = "openapi",
        tag = "meta",
        summary = "This document.",
        responses((status = 200, description = "OpenAPI 3.1.", body = inline(OpenApiDocument)))
    )]
    fn openapi() {}
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::{ContactId, FibonacciN, Iterations, Millis, PageRequest};

    fn served() -> Value {
        serde_json::from_str(&OPENAPI_JSON).unwrap()
    }

    /// The parameter `name` of the GET operation on `path`.
    fn parameter(path: &str, name: &str) -> Value {
        let document = served();
        let parameters = document["paths"][path]["get"]["parameters"]
            .as_array()
            .unwrap()
            .clone();
        parameters
            .into_iter()
            .find(|parameter| parameter["name"] == name)
            .unwrap_or_else(|| panic!("{path} has no parameter {name}"))
    }

    #[test]
    fn the_document_is_openapi_3_1_with_the_workspace_version() {
        let document = served();
        assert_eq!(document["openapi"], "3.1.0");
        assert_eq!(document["info"]["title"], "bakeoff contacts API");
        assert_eq!(document["info"]["version"], crate::VERSION);
    }

    #[test]
    fn every_path_of_the_contract_in_order() {
        let paths: Vec<String> = document().paths.paths.keys().cloned().collect();
        assert_eq!(
            paths,
            [
                "/version",
                "/types",
                "/contacts",
                "/contacts/{contact_id}",
                "/fibonacci/{n}",
                "/test/calibrate",
                "/test/sync-cpubound/{iterations}",
                "/test/offload-cpubound/{iterations}",
                "/test/async-iobound/{millis}",
                "/test/blocking-iobound/{millis}",
                "/test/resmon",
                "/openapi.json",
            ]
        );
        // Each path has exactly one operation, GET.
        for (path, item) in served()["paths"].as_object().unwrap() {
            let methods: Vec<&String> = item.as_object().unwrap().keys().collect();
            assert_eq!(methods, ["get"], "{path}");
        }
    }

    #[test]
    fn the_contact_schema_is_closed_and_requires_every_field_in_wire_order() {
        let document = served();
        let contact = &document["components"]["schemas"]["Contact"];
        let wire_order = [
            "contact_id",
            "first_name",
            "last_name",
            "contact_type",
            "phone_number",
            "email",
        ];
        assert_eq!(contact["required"], json!(wire_order));
        assert_eq!(contact["additionalProperties"], false);
        assert_eq!(
            contact["properties"]["contact_type"],
            json!({"$ref": "#/components/schemas/ContactType"})
        );
        // Properties are listed in wire order too (the document's own bytes).
        let positions: Vec<usize> = wire_order
            .iter()
            .map(|field| {
                let contact_at = OPENAPI_JSON.find(r#""Contact":{"#).unwrap();
                contact_at
                    + OPENAPI_JSON[contact_at..]
                        .find(&format!("\"{field}\":"))
                        .unwrap()
            })
            .collect();
        assert!(positions.is_sorted(), "{positions:?}");
    }

    #[test]
    fn page_parameters_have_the_contract_bounds_and_defaults() {
        let limit = parameter("/contacts", "limit");
        assert_eq!(limit["in"], "query");
        assert_eq!(limit["required"], false);
        assert_eq!(limit["schema"]["minimum"], 1);
        assert_eq!(limit["schema"]["maximum"], 200);
        assert_eq!(limit["schema"]["default"], 100);
        let offset = parameter("/contacts", "offset");
        assert_eq!(offset["required"], false);
        assert_eq!(offset["schema"]["minimum"], 0);
        assert_eq!(offset["schema"]["maximum"], 2_147_483_647);
        assert_eq!(offset["schema"]["default"], 0);
        let starts = parameter("/contacts", "starts");
        assert_eq!(starts["required"], false);
        assert_eq!(starts["schema"]["type"], "string");
        assert_eq!(starts["schema"]["minLength"], 1);
        assert_eq!(starts["schema"]["maxLength"], 100);
        assert_eq!(starts["schema"]["pattern"], r"^[\p{L}\p{N} ]+$");
        // The literals in params.rs's attributes agree with the constants the parser uses.
        assert_eq!(limit["schema"]["maximum"], PageRequest::MAX_LIMIT);
        assert_eq!(limit["schema"]["default"], PageRequest::DEFAULT_LIMIT);
        assert_eq!(offset["schema"]["maximum"], PageRequest::MAX_OFFSET);
        assert_eq!(
            starts["schema"]["maxLength"],
            crate::LastNamePrefix::MAX_CHARS
        );
    }

    #[test]
    fn path_parameters_have_the_parsers_bounds() {
        let cases = [
            (
                "/contacts/{contact_id}",
                ContactId::PARAMETER,
                i64::from(ContactId::MIN),
                i64::from(ContactId::MAX),
            ),
            (
                "/fibonacci/{n}",
                FibonacciN::PARAMETER,
                i64::from(FibonacciN::MIN),
                i64::from(FibonacciN::MAX),
            ),
            (
                "/test/sync-cpubound/{iterations}",
                Iterations::PARAMETER,
                i64::from(Iterations::MIN),
                i64::from(Iterations::MAX),
            ),
            (
                "/test/offload-cpubound/{iterations}",
                Iterations::PARAMETER,
                i64::from(Iterations::MIN),
                i64::from(Iterations::MAX),
            ),
            (
                "/test/async-iobound/{millis}",
                Millis::PARAMETER,
                Millis::MIN as i64,
                Millis::MAX as i64,
            ),
            (
                "/test/blocking-iobound/{millis}",
                Millis::PARAMETER,
                Millis::MIN as i64,
                Millis::MAX as i64,
            ),
        ];
        for (path, name, min, max) in cases {
            let parameter = parameter(path, name);
            assert_eq!(parameter["in"], "path", "{path}");
            assert_eq!(parameter["required"], true, "{path}");
            assert_eq!(parameter["schema"]["type"], "integer", "{path}");
            assert_eq!(parameter["schema"]["minimum"], min, "{path}");
            assert_eq!(parameter["schema"]["maximum"], max, "{path}");
            assert!(parameter["description"].is_string(), "{path}");
        }
        // And the literal values, in case a constant and its attribute moved together.
        assert_eq!(parameter("/fibonacci/{n}", "n")["schema"]["maximum"], 40);
        assert_eq!(
            parameter("/contacts/{contact_id}", "contact_id")["schema"]["maximum"],
            2_147_483_647
        );
    }

    #[test]
    fn every_error_response_carries_the_error_schema_and_503_retry_after() {
        let document = served();
        let mut error_responses = 0;
        for (path, item) in document["paths"].as_object().unwrap() {
            for (status, response) in item["get"]["responses"].as_object().unwrap() {
                if status.starts_with('2') {
                    continue;
                }
                error_responses += 1;
                let reference = response["$ref"].as_str().unwrap();
                let response = document.pointer(reference.trim_start_matches('#')).unwrap();
                assert_eq!(
                    response["content"]["application/json"]["schema"],
                    json!({"$ref": "#/components/schemas/ErrorBody"}),
                    "{path} {status}"
                );
                if status == "503" {
                    assert_eq!(
                        response["headers"]["Retry-After"]["schema"]["type"], "integer",
                        "{path}"
                    );
                }
            }
        }
        // 400 on 7 paths, 404 on 1, 503 on 3.
        assert_eq!(error_responses, 11);
        let error = &document["components"]["schemas"]["ErrorBody"];
        assert_eq!(error["required"], json!(["status", "errors"]));
        assert_eq!(error["properties"]["errors"]["minProperties"], 1);
        assert_eq!(
            error["properties"]["errors"]["additionalProperties"]["type"],
            "string"
        );
        assert!(
            document["components"]["responses"]["MethodNotAllowed"].is_object(),
            "405 is documented"
        );
    }

    #[test]
    fn every_reference_resolves() {
        fn references(value: &Value, found: &mut Vec<String>) {
            match value {
                Value::Object(map) => {
                    if let Some(Value::String(reference)) = map.get("$ref") {
                        found.push(reference.clone());
                    }
                    map.values().for_each(|value| references(value, found));
                }
                Value::Array(values) => values.iter().for_each(|value| references(value, found)),
                _ => {}
            }
        }
        let document = served();
        let mut found = Vec::new();
        references(&document, &mut found);
        assert!(found.len() > 20, "{found:?}");
        for reference in found {
            let pointer = reference.strip_prefix('#').unwrap();
            assert!(document.pointer(pointer).is_some(), "{reference} dangles");
        }
    }

    #[test]
    fn the_cpu_body_requires_a_checksum_and_the_wait_body_has_none() {
        let document = served();
        let schemas = &document["components"]["schemas"];
        assert_eq!(
            schemas["TimedCpuBody"]["required"],
            json!(["message", "result", "checksum"])
        );
        // The checksum is a u64 and may exceed int64.
        assert_eq!(
            schemas["TimedCpuBody"]["properties"]["checksum"]["format"],
            "uint64"
        );
        assert_eq!(
            schemas["TimedBody"]["required"],
            json!(["message", "result"])
        );
        assert_eq!(schemas["TimedBody"]["additionalProperties"], false);
    }
}
