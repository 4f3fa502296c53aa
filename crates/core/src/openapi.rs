//! The OpenAPI 3.1 document of the contract: one file in the repository (`crates/core/openapi.json`),
//! compiled into every server and served as `GET /openapi.json`. The conformance suite validates
//! every response it sees against it.

/// The document, byte for byte as kept in the repository.
pub const OPENAPI_JSON: &str = include_str!("../openapi.json");

#[cfg(test)]
mod tests {
    #[test]
    fn the_document_is_json_and_carries_the_workspace_version() {
        let document: serde_json::Value = serde_json::from_str(super::OPENAPI_JSON).unwrap();
        assert_eq!(document["openapi"], "3.1.0");
        assert_eq!(document["info"]["version"], crate::VERSION);
    }
}
