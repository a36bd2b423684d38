//! Request bodies: JSON whatever the Content-Type says (the npm SDK sends none), within a size limit
//! and a read deadline.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes, HttpBody};
use hyper::body::{Frame, SizeHint};
use serde_json::Value;
use tokio::time::{Instant, Sleep};

use crate::error::{ApiError, Code};

/// Reads the whole body, refusing more than `limit` bytes, or a body that misses its deadline (see [`DeadlineBody`]).
pub(crate) async fn read_bytes(body: Body, limit: usize) -> Result<Bytes, ApiError> {
    axum::body::to_bytes(body, limit).await.map_err(|err| {
        // `to_bytes` reports an exceeded limit, or the deadline, as a source error.
        if caused_by::<http_body_util::LengthLimitError>(&err) {
            return ApiError::with_message(Code::PayloadTooLarge, format!("Request body is larger than {limit} bytes"));
        }
        if missed_deadline(&err) {
            return ApiError::new(Code::RequestTimeout);
        }
        ApiError::with_message(Code::BadRequest, "Could not read the request body")
    })
}

/// Reads the whole body as JSON; `None` when it is empty.
pub(crate) async fn read_json(body: Body, limit: usize) -> Result<Option<Value>, ApiError> {
    let bytes = read_bytes(body, limit).await?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    serde_json::from_slice(&bytes).map(Some).map_err(|_| ApiError::new(Code::InvalidJson))
}

/// Gives the body of `request` until `deadline` to arrive whole. A per-read idle timeout would not do: a client
/// sending a byte every few seconds would hold its connection (and a file descriptor) forever.
pub(crate) fn with_deadline(request: axum::extract::Request, deadline: Instant) -> axum::extract::Request {
    // Most requests (every GET, and a small POST read in one go) never wait: leave them unwrapped.
    if request.body().is_end_stream() {
        return request;
    }
    request.map(|inner| Body::new(DeadlineBody { inner, deadline, timer: None }))
}

/// Whether `err` (or its source) is a body that missed its deadline.
pub(crate) fn missed_deadline(err: &(dyn std::error::Error + 'static)) -> bool {
    caused_by::<DeadlineElapsed>(err)
}

/// Whether `err` or one of its sources is an `E`.
fn caused_by<E: std::error::Error + 'static>(err: &(dyn std::error::Error + 'static)) -> bool {
    std::iter::successors(Some(err), |err| err.source()).any(|err| err.is::<E>())
}

/// The error a body that missed its deadline ends with; [`read_bytes`] answers it with 408.
#[derive(Debug)]
struct DeadlineElapsed;

impl std::fmt::Display for DeadlineElapsed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the request body did not arrive in time")
    }
}

impl std::error::Error for DeadlineElapsed {}

struct DeadlineBody {
    inner: Body,
    deadline: Instant,
    /// Armed the first time the body makes us wait, so a body already in hand costs no timer.
    timer: Option<Pin<Box<Sleep>>>,
}

impl HttpBody for DeadlineBody {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|frame| frame.map_err(Into::into)));
        }
        let deadline = this.deadline;
        let timer = this.timer.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(DeadlineElapsed)))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// A body that sends one byte, then nothing more.
    struct Stalled(bool);

    impl HttpBody for Stalled {
        type Data = Bytes;
        type Error = std::io::Error;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            if std::mem::replace(&mut self.0, true) {
                return Poll::Pending;
            }
            Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b"{")))))
        }
    }

    fn stalled_request() -> axum::extract::Request {
        axum::extract::Request::new(Body::new(Stalled(false)))
    }

    #[tokio::test]
    async fn a_body_that_misses_its_deadline_is_a_408() {
        let request = with_deadline(stalled_request(), Instant::now() + Duration::from_millis(100));
        let err = read_bytes(request.into_body(), 1024).await.unwrap_err();
        assert_eq!(err.code, Code::RequestTimeout);
    }

    #[tokio::test]
    async fn a_body_in_hand_is_read_and_the_size_limit_still_holds() {
        let request = axum::extract::Request::new(Body::from("{\"a\":1}"));
        let request = with_deadline(request, Instant::now());
        assert_eq!(read_json(request.into_body(), 1024).await.unwrap().unwrap()["a"], 1);
        let request = with_deadline(axum::extract::Request::new(Body::from("x".repeat(10))), Instant::now());
        assert_eq!(read_bytes(request.into_body(), 4).await.unwrap_err().code, Code::PayloadTooLarge);
    }
}
