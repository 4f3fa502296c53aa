//! Validation of response bodies against the contract's OpenAPI document, the one core generates
//! from its types (`bakeoff_core::openapi`).
//!
//! The document's response schemas use `$ref`s into `#/components`; each schema is compiled as a
//! JSON Schema (draft 2020-12, which OpenAPI 3.1 uses) inside a root that carries those components
//! so the references resolve.

use std::collections::HashMap;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

/// The compiled response schemas, by path template and status.
pub struct OpenApi {
    document: Value,
    validators: HashMap<String, jsonschema::Validator>,
}

impl std::fmt::Debug for OpenApi {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("OpenApi")
            .field("schemas", &self.validators.len())
            .finish()
    }
}

impl OpenApi {
    pub fn contract() -> Result<OpenApi> {
        let document: Value = serde_json::from_str(&bakeoff_core::openapi::OPENAPI_JSON)
            .context("parsing the OpenAPI document")?;
        Ok(OpenApi {
            document,
            validators: HashMap::new(),
        })
    }

    pub fn document(&self) -> &Value {
        &self.document
    }

    /// The path template (`/contacts/{contact_id}`) that `path` (without query) matches.
    pub fn template_of(&self, path: &str) -> Option<String> {
        let path = path.split('?').next().unwrap_or(path);
        let path = if path.len() > 1 {
            path.strip_suffix('/').unwrap_or(path)
        } else {
            path
        };
        let segments: Vec<&str> = path.split('/').collect();
        let paths = self.document["paths"].as_object()?;
        paths
            .keys()
            .find(|template| {
                let template_segments: Vec<&str> = template.split('/').collect();
                template_segments.len() == segments.len()
                    && template_segments
                        .iter()
                        .zip(&segments)
                        .all(|(template_segment, segment)| {
                            template_segment == segment
                                || (template_segment.starts_with('{') && !segment.is_empty())
                        })
            })
            .cloned()
    }

    /// Validates a GET response body. Statuses the document does not list for the path (404 for
    /// an unknown path, 405) are validated against the error schema.
    pub fn validate(&mut self, path: &str, status: u16, body: &Value) -> Result<()> {
        let schema = self.response_schema(path, status);
        self.validate_against(schema, body)
            .with_context(|| format!("{path} {status} does not match the OpenAPI document"))
    }

    /// Validates `body` against `schema`, whose `$ref`s point into the document's components.
    fn validate_against(&mut self, schema: Value, body: &Value) -> Result<()> {
        let key = schema.to_string();
        if !self.validators.contains_key(&key) {
            let root = json!({
                "allOf": [schema],
                "components": self.document["components"].clone(),
            });
            let validator = jsonschema::options()
                .with_draft(jsonschema::Draft::Draft202012)
                .build(&root)
                .map_err(|error| anyhow::anyhow!("compiling the schema {key}: {error}"))?;
            self.validators.insert(key.clone(), validator);
        }
        let Some(validator) = self.validators.get(&key) else {
            bail!("schema cache lost {key}");
        };
        let errors: Vec<String> = validator
            .iter_errors(body)
            .map(|error| format!("{} at {}", error, error.instance_path()))
            .collect();
        if errors.is_empty() {
            return Ok(());
        }
        bail!("{}", errors.join("; "))
    }

    fn response_schema(&self, path: &str, status: u16) -> Value {
        // core's `ErrorBody`, the schema of every error response.
        let error_schema = json!({"$ref": "#/components/schemas/ErrorBody"});
        let Some(template) = self.template_of(path) else {
            return error_schema;
        };
        let mut response =
            &self.document["paths"][&template]["get"]["responses"][status.to_string()];
        if let Some(reference) = response.get("$ref").and_then(Value::as_str) {
            let pointer = reference.trim_start_matches('#');
            response = self.document.pointer(pointer).unwrap_or(&Value::Null);
        }
        match response.pointer("/content/application~1json/schema") {
            Some(schema) => schema.clone(),
            None => error_schema,
        }
    }
}

#[cfg(test)]
mod tests {
    //! The generated document against core's own bodies: what core serializes validates, and
    //! what breaks the contract (an extra field, a missing one) does not.

    use bakeoff_core::model::{Contact, ContactType, Page, VersionInfo};
    use bakeoff_core::workload::{FibonacciBody, TimedBody, TimedCpuBody};
    use bakeoff_core::{ApiError, PageRequest};

    use super::*;

    fn contact() -> Contact {
        Contact {
            contact_id: 7,
            first_name: "Ada".into(),
            last_name: "Smith".into(),
            contact_type: ContactType {
                type_id: 2,
                type_name: "Friends".into(),
            },
            phone_number: vec!["+1-555-201-0100".into()],
            email: vec![],
        }
    }

    fn value_of(body: &impl serde::Serialize) -> Value {
        serde_json::to_value(body).unwrap()
    }

    #[test]
    fn the_bodies_core_serializes_match_the_document() {
        let mut openapi = OpenApi::contract().unwrap();
        let cases = [
            (
                "/version",
                200,
                value_of(&VersionInfo::of("axum-tokio-postgres")),
            ),
            (
                "/types/",
                200,
                value_of(&Page {
                    count: 1,
                    results: vec![contact().contact_type],
                }),
            ),
            (
                "/contacts?limit=1",
                200,
                value_of(&Page {
                    count: 10_000,
                    results: vec![contact()],
                }),
            ),
            ("/contacts/7", 200, value_of(&contact())),
            (
                "/fibonacci/10",
                200,
                value_of(&FibonacciBody { result: 89 }),
            ),
            (
                "/test/sync-cpubound/2",
                200,
                value_of(&TimedCpuBody {
                    message: "Duration of 2 iterations".into(),
                    result: 0.02,
                    checksum: u64::MAX,
                }),
            ),
            (
                "/test/async-iobound/50",
                200,
                value_of(&TimedBody {
                    message: "Waited 50 ms".into(),
                    result: 0.05,
                }),
            ),
            (
                "/test/resmon",
                200,
                value_of(
                    &bakeoff_core::resmon::snapshot("test", 2, 3, bakeoff_core::DbRecycle::Fast)
                        .unwrap(),
                ),
            ),
            (
                "/contacts",
                400,
                value_of(
                    &PageRequest::from_query(Some("limit=0&offset=x"))
                        .unwrap_err()
                        .body(),
                ),
            ),
            (
                "/contacts/8",
                404,
                value_of(&ApiError::ContactNotFound.body()),
            ),
            ("/nowhere", 404, value_of(&ApiError::RouteNotFound.body())),
            ("/types", 405, value_of(&ApiError::MethodNotAllowed.body())),
            (
                "/types",
                503,
                value_of(&ApiError::DatabaseUnavailable.body()),
            ),
        ];
        for (path, status, body) in cases {
            if let Err(error) = openapi.validate(path, status, &body) {
                panic!("{path} {status}: {error:#}");
            }
        }
    }

    #[test]
    fn bodies_that_break_the_contract_do_not_match() {
        let mut openapi = OpenApi::contract().unwrap();
        let mut extra_field = value_of(&contact());
        extra_field["nickname"] = json!("Ada");
        let mut nested_extra_field = value_of(&Page {
            count: 1,
            results: vec![contact()],
        });
        nested_extra_field["results"][0]["nickname"] = json!("Ada");
        let mut missing_field = value_of(&contact());
        missing_field.as_object_mut().unwrap().remove("email");
        let cases = [
            ("/contacts/7", 200, extra_field),
            ("/contacts", 200, nested_extra_field),
            ("/contacts/7", 200, missing_field),
            ("/contacts/0", 200, json!({"contact_id": 0})),
            // A CPU body needs its checksum; a wait has none.
            (
                "/test/sync-cpubound/2",
                200,
                json!({"message": "Duration of 2 iterations", "result": 0.02}),
            ),
            (
                "/test/async-iobound/50",
                200,
                json!({"message": "Waited 50 ms", "result": 0.05, "checksum": 1}),
            ),
            ("/contacts", 400, json!({"status": 400, "errors": {}})),
            (
                "/types",
                503,
                json!({"status": 200, "errors": {"request": "x"}}),
            ),
        ];
        for (path, status, body) in cases {
            assert!(
                openapi.validate(path, status, &body).is_err(),
                "{path} {status} accepted {body}"
            );
        }
    }

    #[test]
    fn the_documents_examples_match_their_own_schemas() {
        let mut openapi = OpenApi::contract().unwrap();
        let schemas = openapi.document()["components"]["schemas"]
            .as_object()
            .unwrap()
            .clone();
        let mut examples = 0;
        for (name, schema) in schemas {
            for example in schema["examples"].as_array().into_iter().flatten() {
                examples += 1;
                let reference = json!({"$ref": format!("#/components/schemas/{name}")});
                if let Err(error) = openapi.validate_against(reference, example) {
                    panic!("the example of {name}: {error:#}");
                }
            }
        }
        assert!(examples >= 6, "only {examples} examples");
    }
}
