//! The JSON model of the contract. Field order here is the byte order on the wire, so every
//! variant that serializes these types sends the same bytes. The OpenAPI schemas are derived
//! from these same types (`ToSchema`): doc comments become descriptions, fields become required
//! properties in wire order.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `GET /version`: the workspace version and the name of the variant that answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(examples(json!({"version": "0.1.0", "variant": "axum-tokio-postgres"})))]
pub struct VersionInfo {
    pub version: String,
    pub variant: String,
}

impl VersionInfo {
    pub fn of(variant: &str) -> VersionInfo {
        VersionInfo {
            version: crate::VERSION.to_string(),
            variant: variant.to_string(),
        }
    }
}

/// A contact type, alone (`/types`) or nested in a contact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(examples(json!({"type_id": 1, "type_name": "Relatives"})))]
pub struct ContactType {
    #[schema(minimum = 1)]
    pub type_id: i32,
    pub type_name: String,
}

/// One contact with its type, phones (ordered by phone_id) and emails (ordered by email_id).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(examples(json!({
    "contact_id": 1,
    "first_name": "Ada",
    "last_name": "Smith",
    "contact_type": {"type_id": 1, "type_name": "Relatives"},
    "phone_number": ["+1-555-201-0100"],
    "email": ["ada.smith4@example.com"]
})))]
pub struct Contact {
    #[schema(minimum = 1, maximum = 2147483647)]
    pub contact_id: i32,
    pub first_name: String,
    pub last_name: String,
    pub contact_type: ContactType,
    /// Possibly empty.
    pub phone_number: Vec<String>,
    /// Possibly empty.
    pub email: Vec<String>,
}

/// A counted list: `/types` and `/contacts`. `count` ignores paging; a page holds at most 200
/// results (`PageRequest::MAX_LIMIT`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Page<T> {
    /// Every matching row, whatever the limit and offset.
    #[schema(minimum = 0)]
    pub count: i64,
    #[schema(max_items = 200)]
    pub results: Vec<T>,
}

/// One row of the contact statements: a contact joined with its type, before phones and emails.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactRow {
    pub contact_id: i32,
    pub first_name: String,
    pub last_name: String,
    pub type_id: i32,
    pub type_name: String,
}

/// A phone number or an email address with the contact it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactDetail {
    pub contact_id: i32,
    pub value: String,
}

/// Joins contact rows with their phones and emails.
///
/// All three inputs must be ordered by contact_id, and the details by their own key within a
/// contact, as the SQL in [`crate::sql`] returns them: the join is then a single merge pass.
pub fn assemble_contacts(
    rows: Vec<ContactRow>,
    phones: Vec<ContactDetail>,
    emails: Vec<ContactDetail>,
) -> Vec<Contact> {
    let mut phones = phones.into_iter().peekable();
    let mut emails = emails.into_iter().peekable();
    rows.into_iter()
        .map(|row| {
            let phone_number = take_details_of(row.contact_id, &mut phones);
            let email = take_details_of(row.contact_id, &mut emails);
            Contact {
                contact_id: row.contact_id,
                first_name: row.first_name,
                last_name: row.last_name,
                contact_type: ContactType {
                    type_id: row.type_id,
                    type_name: row.type_name,
                },
                phone_number,
                email,
            }
        })
        .collect()
}

fn take_details_of(
    contact_id: i32,
    details: &mut std::iter::Peekable<impl Iterator<Item = ContactDetail>>,
) -> Vec<String> {
    // Details of contacts that are not in the page cannot occur, but skipping them keeps the merge
    // correct whatever the input.
    while details
        .next_if(|detail| detail.contact_id < contact_id)
        .is_some()
    {}
    let mut values = Vec::new();
    while let Some(detail) = details.next_if(|detail| detail.contact_id == contact_id) {
        values.push(detail.value);
    }
    values
}

/// Serializes a response body. Serializing these plain structs cannot fail; if it ever did, the
/// contract's 500 body is sent instead of a panic.
pub fn to_json<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_else(|error| {
        tracing::error!(%error, "response serialization failed");
        br#"{"status":500,"errors":{"request":"internal server error"}}"#.to_vec()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(contact_id: i32) -> ContactRow {
        ContactRow {
            contact_id,
            first_name: format!("F{contact_id}"),
            last_name: format!("L{contact_id}"),
            type_id: 1,
            type_name: "Relatives".into(),
        }
    }

    fn detail(contact_id: i32, value: &str) -> ContactDetail {
        ContactDetail {
            contact_id,
            value: value.into(),
        }
    }

    #[test]
    fn assembling_keeps_order_and_gives_empty_arrays() {
        let contacts = assemble_contacts(
            vec![row(2), row(5), row(9)],
            vec![detail(2, "a"), detail(2, "b"), detail(9, "c")],
            vec![detail(5, "x")],
        );
        assert_eq!(contacts[0].phone_number, vec!["a", "b"]);
        assert!(contacts[0].email.is_empty());
        assert!(contacts[1].phone_number.is_empty());
        assert_eq!(contacts[1].email, vec!["x"]);
        assert_eq!(contacts[2].phone_number, vec!["c"]);
    }

    #[test]
    fn contact_json_has_the_contract_field_order() {
        let contact = assemble_contacts(vec![row(1)], vec![], vec![]).remove(0);
        let json = String::from_utf8(to_json(&contact)).unwrap();
        assert_eq!(
            json,
            r#"{"contact_id":1,"first_name":"F1","last_name":"L1","contact_type":{"type_id":1,"type_name":"Relatives"},"phone_number":[],"email":[]}"#
        );
    }
}
