//! The error answers of each service as schemas, and the table of codes the reference prints; the bodies
//! themselves are written by `crate::error`, and the recorded answers of `docs/api/examples.json` are checked
//! against these schemas (`api_reference.rs`), so the two cannot part.

use serde::Deserialize;
use utoipa::ToSchema;

use crate::error::Code;

/// An EDS error: `errors` holds one entry. Bad input is 400 in EDS (QtEnginio maps 400 to an invalid
/// operation).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EdsErrors {
    pub errors: Vec<EdsErrorEntry>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EdsErrorEntry {
    /// For people: what went wrong.
    pub message: String,
    /// For programs: one of the EDS reasons of the table in the reference's introduction.
    pub reason: String,
    /// The property that failed validation, when one did.
    pub property: Option<String>,
}

/// An OAuth2 error (RFC 6749's `error` and `error_description`) with the EDS `errors` beside it, so that either
/// kind of client reads it.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OAuthError {
    /// `invalid_request`, `invalid_grant`, `invalid_client`, `unsupported_grant_type`, ...
    pub error: String,
    pub error_description: String,
    pub errors: Vec<EdsErrorEntry>,
}

/// An MWS, account-platform or MAR error: `{"error": {"reason", "message"}}`, or for a field that failed
/// validation `{"errors": [{"reason", "property", "message"}]}`.
#[derive(Deserialize, ToSchema)]
#[serde(untagged)]
pub enum ServiceError {
    One { error: ServiceErrorEntry },
    Fields { errors: Vec<FieldError> },
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ServiceErrorEntry {
    /// One of the reasons of the table in the reference's introduction.
    pub reason: String,
    pub message: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FieldError {
    pub reason: String,
    pub property: String,
    pub message: String,
}

/// The table of error codes in Markdown, from `crate::error`'s one table.
pub(crate) fn table() -> String {
    let mut table = String::from(
        "| HTTP status (MWS, MAR) | reason | HTTP status (EDS) | EDS reason | message when none is given |\n\
         |---|---|---|---|---|\n",
    );
    for code in Code::ALL {
        table.push_str(&format!(
            "| {} | `{}` | {} | `{}` | {} |\n",
            code.status().as_u16(),
            code.reason(),
            code.eds_status().as_u16(),
            code.eds_reason(),
            code.default_message()
        ));
    }
    table
}
