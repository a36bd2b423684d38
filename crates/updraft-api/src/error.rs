//! The one table of API errors: each code's HTTP status and wire reason live here and nowhere else.

use std::borrow::Cow;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use updraft_store::StoreError;

/// Declares `Code` from one row per code: its HTTP status and reason in the MWS form, the same in the EDS form
/// (where bad input is 400 and EDS has fewer reasons), and the message used when a handler gives none. A code's
/// facts are in its row and nowhere else.
macro_rules! make_error_codes {
    ($(
        $(#[$doc:meta])*
        $code:ident => $status:ident $reason:literal, eds $eds_status:ident $eds_reason:literal, $message:literal;
    )*) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Code {
            $($(#[$doc])* $code,)*
        }

        impl Code {
            /// Every code, in the table's order: the API reference lists them.
            pub const ALL: &[Code] = &[$(Code::$code,)*];

            pub fn status(self) -> StatusCode {
                match self {
                    $(Code::$code => StatusCode::$status,)*
                }
            }

            pub fn reason(self) -> &'static str {
                match self {
                    $(Code::$code => $reason,)*
                }
            }

            pub fn eds_status(self) -> StatusCode {
                match self {
                    $(Code::$code => StatusCode::$eds_status,)*
                }
            }

            pub fn eds_reason(self) -> &'static str {
                match self {
                    $(Code::$code => $eds_reason,)*
                }
            }

            pub fn default_message(self) -> &'static str {
                match self {
                    $(Code::$code => $message,)*
                }
            }
        }
    };
}

make_error_codes! {
    /// No credentials where they are required.
    AuthorizationRequired => UNAUTHORIZED "Unauthorized", eds UNAUTHORIZED "Unauthorized", "Authorization header is required";
    /// Credentials present but wrong, or a scheme other than Bearer.
    InvalidCredentials => UNAUTHORIZED "Unauthorized", eds UNAUTHORIZED "Unauthorized", "Access denied";
    /// Valid credentials without the needed permission.
    AccessDenied => FORBIDDEN "AccessDenied", eds FORBIDDEN "AccessDenied", "Access denied";
    NotFound => NOT_FOUND "NotFound", eds NOT_FOUND "NotFound", "Not found";
    /// The path exists, but not for this method.
    MethodNotAllowed => METHOD_NOT_ALLOWED "MethodNotAllowed", eds METHOD_NOT_ALLOWED "MethodNotAllowed", "Method not allowed";
    /// The body is not JSON.
    InvalidJson => UNPROCESSABLE_ENTITY "InvalidJson", eds BAD_REQUEST "BadRequest", "Invalid json";
    /// A field is missing or has the wrong type.
    ValidationFailed => UNPROCESSABLE_ENTITY "ValidationFailed", eds BAD_REQUEST "ValidationFailed", "Validation failed";
    PayloadTooLarge => PAYLOAD_TOO_LARGE "PayloadTooLarge", eds PAYLOAD_TOO_LARGE "BadRequest", "Request body is too large";
    /// A gateway with that id already exists.
    Conflict => CONFLICT "Conflict", eds CONFLICT "Conflict", "Already exists";
    BadRequest => BAD_REQUEST "BadRequest", eds BAD_REQUEST "BadRequest", "Bad request";
    /// A file's download URL past its expiry.
    Gone => GONE "Gone", eds GONE "Gone", "This URL has expired";
    /// A `Range` outside the file.
    RangeNotSatisfiable => RANGE_NOT_SATISFIABLE "RangeNotSatisfiable", eds RANGE_NOT_SATISFIABLE "BadRequest", "Range not satisfiable";
    /// The upgrade request is not a valid WebSocket handshake.
    UpgradeRequired => UPGRADE_REQUIRED "UpgradeRequired", eds UPGRADE_REQUIRED "BadRequest", "WebSocket upgrade required";
    /// Too many outstanding socket tickets, or an identity provider that does not answer.
    Unavailable => SERVICE_UNAVAILABLE "ServiceUnavailable", eds SERVICE_UNAVAILABLE "ServiceUnavailable", "Service unavailable";
    /// The request body did not arrive within the body read deadline.
    RequestTimeout => REQUEST_TIMEOUT "RequestTimeout", eds REQUEST_TIMEOUT "RequestTimeout", "Request body not received in time";
    /// Too many login or sign-up attempts; the answer says when to retry (`Retry-After`).
    TooManyRequests => TOO_MANY_REQUESTS "TooManyRequests", eds TOO_MANY_REQUESTS "TooManyRequests", "Too many attempts, try again later";
    Internal => INTERNAL_SERVER_ERROR "InternalError", eds INTERNAL_SERVER_ERROR "InternalError", "Internal error";
}

/// An error as the API answers it.
/// Wire form: `{"error":{"reason","message"}}` (the hosted MWS form), or for field validation
/// `{"errors":[{"reason","property","message"}]}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub code: Code,
    pub message: Cow<'static, str>,
    pub property: Option<Cow<'static, str>>,
}

impl ApiError {
    pub fn new(code: Code) -> ApiError {
        ApiError { code, message: Cow::Borrowed(code.default_message()), property: None }
    }

    pub fn with_message(code: Code, message: impl Into<Cow<'static, str>>) -> ApiError {
        ApiError { code, message: message.into(), property: None }
    }

    /// A field that failed validation.
    pub fn field(property: impl Into<Cow<'static, str>>, message: impl Into<Cow<'static, str>>) -> ApiError {
        ApiError { code: Code::ValidationFailed, message: message.into(), property: Some(property.into()) }
    }
}

impl From<Code> for ApiError {
    fn from(code: Code) -> ApiError {
        ApiError::new(code)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let reason = self.code.reason();
        let body = match self.property {
            Some(property) => json!({
                "errors": [{ "reason": reason, "property": property, "message": self.message }]
            }),
            None => json!({ "error": { "reason": reason, "message": self.message } }),
        };
        (self.code.status(), axum::Json(body)).into_response()
    }
}

/// An error as EDS answers it: `{"errors":[{"message","reason"[,"property"]}]}`, with bad input
/// as 400 (QtEnginio maps 400 to `ProtocolInvalidOperationError`, and its tests compare whole
/// validation objects).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EdsError(pub ApiError);

impl From<ApiError> for EdsError {
    fn from(err: ApiError) -> EdsError {
        EdsError(err)
    }
}

/// A store refusal as EDS answers it; a database failure is logged here and answered without its details.
impl From<StoreError> for EdsError {
    fn from(err: StoreError) -> EdsError {
        match err {
            StoreError::Forbidden => EdsError(ApiError::new(Code::AccessDenied)),
            StoreError::Taken { property } => EdsError(ApiError::field(property, "has already been taken")),
            StoreError::Invalid { message, property } => {
                let message = match property {
                    Some(property) => format!("{property}: {message}"),
                    None => message,
                };
                EdsError(ApiError::with_message(Code::BadRequest, message))
            }
            StoreError::Database(_) => {
                tracing::error!(%err, "storage failed");
                EdsError(ApiError::with_message(Code::Internal, "Storage failure"))
            }
        }
    }
}

impl From<Code> for EdsError {
    fn from(code: Code) -> EdsError {
        EdsError(ApiError::new(code))
    }
}

impl EdsError {
    /// The status and body of this answer, also for answers written outside axum (the stream's raw handshake).
    pub fn to_parts(&self) -> (StatusCode, serde_json::Value) {
        let err = &self.0;
        let mut entry = json!({ "message": err.message, "reason": err.code.eds_reason() });
        if let Some(property) = &err.property {
            entry["property"] = json!(property);
        }
        (err.code.eds_status(), json!({ "errors": [entry] }))
    }
}

impl IntoResponse for EdsError {
    fn into_response(self) -> Response {
        let (status, body) = self.to_parts();
        (status, axum::Json(body)).into_response()
    }
}

impl EdsError {
    /// RFC 6749's error form (`error`, `error_description`) plus the EDS `errors` array, so that either kind of
    /// client understands it: the answers of the OAuth2 endpoints.
    pub fn oauth(self, error: &str) -> Response {
        let err = self.0;
        let body = json!({
            "error": error,
            "error_description": err.message,
            "errors": [{ "message": err.message, "reason": err.code.eds_reason() }],
        });
        (err.code.eds_status(), axum::Json(body)).into_response()
    }
}
