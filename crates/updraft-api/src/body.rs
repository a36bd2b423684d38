//! Request bodies: JSON whatever the Content-Type says (the npm SDK sends none), within a size limit.

use axum::body::{Body, Bytes};
use serde_json::Value;

use crate::error::{ApiError, Code};

/// Reads the whole body, refusing more than `limit` bytes.
pub async fn read_bytes(body: Body, limit: usize) -> Result<Bytes, ApiError> {
    axum::body::to_bytes(body, limit).await.map_err(|err| {
        // `to_bytes` reports an exceeded limit as its source error.
        let too_large = std::error::Error::source(&err).is_some_and(|src| src.is::<http_body_util::LengthLimitError>());
        if too_large {
            ApiError::with_message(Code::PayloadTooLarge, format!("Request body is larger than {limit} bytes"))
        } else {
            ApiError::with_message(Code::BadRequest, "Could not read the request body")
        }
    })
}

/// Reads the whole body as JSON; `None` when it is empty.
pub async fn read_json(body: Body, limit: usize) -> Result<Option<Value>, ApiError> {
    let bytes = read_bytes(body, limit).await?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    serde_json::from_slice(&bytes).map(Some).map_err(|_| ApiError::new(Code::InvalidJson))
}
