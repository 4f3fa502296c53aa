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
        let key = schema.to_string();
        if !self.validators.contains_key(&key) {
            let root = json!({
                "allOf": [schema],
                "components": self.document["components"].clone(),
            });
            let validator = jsonschema::options()
                .with_draft(jsonschema::Draft::Draft202012)
                .build(&root)
                .map_err(|error| {
                    anyhow::anyhow!("compiling the schema for {path} {status}: {error}")
                })?;
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
        bail!(
            "{path} {status} does not match the OpenAPI document: {}",
            errors.join("; ")
        )
    }

    fn response_schema(&self, path: &str, status: u16) -> Value {
        let error_schema = json!({"$ref": "#/components/schemas/Error"});
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
