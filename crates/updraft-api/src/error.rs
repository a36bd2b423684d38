//! The one table of API errors: each code's HTTP status and wire reason live here and nowhere else.

use std::borrow::Cow;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// No credentials where they are required.
    AuthorizationRequired,
    /// Credentials present but wrong, or a scheme other than Bearer.
    InvalidCredentials,
    /// Valid credentials without the needed permission.
    AccessDenied,
    NotFound,
    /// The path exists, but not for this method.
    MethodNotAllowed,
    /// The body is not JSON.
    InvalidJson,
    /// A field is missing or has the wrong type.
    ValidationFailed,
    PayloadTooLarge,
    /// A gateway with that id already exists.
    Conflict,
    BadRequest,
    /// The upgrade request is not a valid WebSocket handshake.
    UpgradeRequired,
    /// Too many outstanding socket tickets, or an identity provider that does not answer.
    Unavailable,
    /// The request body did not arrive within the body read deadline.
    RequestTimeout,
    /// Too many login or sign-up attempts; the answer says when to retry (`Retry-After`).
    TooManyRequests,
    Internal,
}

impl Code {
    fn status(self) -> StatusCode {
        match self {
            Code::AuthorizationRequired | Code::InvalidCredentials => StatusCode::UNAUTHORIZED,
            Code::AccessDenied => StatusCode::FORBIDDEN,
            Code::NotFound => StatusCode::NOT_FOUND,
            Code::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Code::InvalidJson | Code::ValidationFailed => StatusCode::UNPROCESSABLE_ENTITY,
            Code::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Code::Conflict => StatusCode::CONFLICT,
            Code::BadRequest => StatusCode::BAD_REQUEST,
            Code::UpgradeRequired => StatusCode::UPGRADE_REQUIRED,
            Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Code::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            Code::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            Code::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn reason(self) -> &'static str {
        match self {
            Code::AuthorizationRequired | Code::InvalidCredentials => "Unauthorized",
            Code::AccessDenied => "AccessDenied",
            Code::NotFound => "NotFound",
            Code::MethodNotAllowed => "MethodNotAllowed",
            Code::InvalidJson => "InvalidJson",
            Code::ValidationFailed => "ValidationFailed",
            Code::PayloadTooLarge => "PayloadTooLarge",
            Code::Conflict => "Conflict",
            Code::BadRequest => "BadRequest",
            Code::UpgradeRequired => "UpgradeRequired",
            Code::Unavailable => "ServiceUnavailable",
            Code::RequestTimeout => "RequestTimeout",
            Code::TooManyRequests => "TooManyRequests",
            Code::Internal => "InternalError",
        }
    }

    fn default_message(self) -> &'static str {
        match self {
            Code::AuthorizationRequired => "Authorization header is required",
            Code::InvalidCredentials | Code::AccessDenied => "Access denied",
            Code::NotFound => "Not found",
            Code::MethodNotAllowed => "Method not allowed",
            Code::InvalidJson => "Invalid json",
            Code::ValidationFailed => "Validation failed",
            Code::PayloadTooLarge => "Request body is too large",
            Code::Conflict => "Already exists",
            Code::BadRequest => "Bad request",
            Code::UpgradeRequired => "WebSocket upgrade required",
            Code::Unavailable => "Service unavailable",
            Code::RequestTimeout => "Request body not received in time",
            Code::TooManyRequests => "Too many attempts, try again later",
            Code::Internal => "Internal error",
        }
    }
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

impl From<Code> for EdsError {
    fn from(code: Code) -> EdsError {
        EdsError(ApiError::new(code))
    }
}

impl Code {
    fn eds_status(self) -> StatusCode {
        match self {
            Code::InvalidJson | Code::ValidationFailed => StatusCode::BAD_REQUEST,
            other => other.status(),
        }
    }

    fn eds_reason(self) -> &'static str {
        match self {
            Code::InvalidJson | Code::PayloadTooLarge | Code::UpgradeRequired => "BadRequest",
            other => other.reason(),
        }
    }
}

impl IntoResponse for EdsError {
    fn into_response(self) -> Response {
        let err = self.0;
        let mut entry = json!({ "message": err.message, "reason": err.code.eds_reason() });
        if let Some(property) = err.property {
            entry["property"] = json!(property);
        }
        (err.code.eds_status(), axum::Json(json!({ "errors": [entry] }))).into_response()
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
