//! The accept loop: HTTP/1.1 with upgrades over plain TCP or TLS, with graceful shutdown.
//!
//! Not `axum::serve`: its auto-detecting connection wraps every stream in a private type, so an
//! upgraded WebSocket could not be unwrapped back into the bare `TcpStream` that keeps idle
//! sockets small (see `updraft_gateway::ws`).
//!
//! Every connection takes a [`Slot`] at accept (see `conns.rs` for the cap and what happens past it).
//! Responses go out with title-case header names (`Content-Type`): HTTP says case does not matter, but the
//! published Ruby SDK looks headers up case-sensitively.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tower::Service;

use crate::conns::{Connections, OVERFLOW_LIFETIME, Slot};
use crate::tls::TlsListener;

/// A client has this long to send its request headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// In-flight HTTP requests get this long to finish at shutdown.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// The application as every connection serves it.
pub(crate) trait HttpService:
    Service<Request<Incoming>, Response = axum::response::Response, Error = std::convert::Infallible, Future: Send>
    + Clone
    + Send
    + 'static
{
}

impl<S> HttpService for S where
    S: Service<Request<Incoming>, Response = axum::response::Response, Error = std::convert::Infallible, Future: Send>
        + Clone
        + Send
        + 'static
{
}

/// Serves a connection taken away from HTTP.
pub(crate) type RawHandler = Arc<dyn Fn(TcpStream) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// Connections the HTTP stack must not answer, by the start of their request line, and who serves them instead.
pub(crate) struct RawRoute {
    pub prefix: &'static [u8],
    pub serve: RawHandler,
}

pub(crate) enum Listener {
    Plain(TcpListener),
    Tls(TlsListener),
}

/// Serves `service` until `shutdown` resolves, then waits (bounded) for open requests.
pub(crate) async fn serve<S>(
    listener: Listener,
    service: S,
    raw: Option<Arc<RawRoute>>,
    connections: Arc<Connections>,
    shutdown: impl Future<Output = ()>,
) where
    S: HttpService,
{
    // Every connection task holds a receiver: `closed()` resolves when the last one is done.
    let (stop, stopping) = watch::channel(false);
    tokio::pin!(shutdown);
    let mut backoff = AcceptBackoff::default();
    loop {
        match &listener {
            Listener::Plain(tcp) => {
                let accepted = tokio::select! {
                    res = tcp.accept() => res,
                    () = &mut shutdown => break,
                };
                match accepted {
                    Ok((stream, peer)) => {
                        backoff.reset();
                        // Past the cap and its overflow slots: closing at once frees the descriptor.
                        let Some(slot) = connections.admit() else { continue };
                        // Small frames must leave at once, not wait for Nagle.
                        let _ = stream.set_nodelay(true);
                        match &raw {
                            Some(raw) if !slot.is_overflow() => {
                                spawn_routed(stream, slot, raw.clone(), service.clone(), stopping.clone())
                            }
                            _ => {
                                let io = TokioIo::new(stream);
                                spawn_connection(io, slot, false, Some(peer), service.clone(), stopping.clone())
                            }
                        }
                    }
                    Err(err) => backoff.wait(&err).await,
                }
            }
            Listener::Tls(tls) => {
                let (stream, slot) = tokio::select! {
                    accepted = tls.accept() => accepted,
                    () = &mut shutdown => break,
                };
                let peer = stream.get_ref().0.peer_addr().ok();
                spawn_connection(TokioIo::new(stream), slot, true, peer, service.clone(), stopping.clone());
            }
        }
    }
    drop(listener);
    drop(stopping);
    let _ = stop.send(true);
    if tokio::time::timeout(DRAIN_TIMEOUT, stop.closed()).await.is_err() {
        tracing::warn!("some HTTP requests were still open at shutdown");
    }
}

/// After a failed accept (out of file descriptors, mostly), waits before the next, longer each time in a
/// row, and warns once per run of failures rather than once per try.
#[derive(Default)]
pub(crate) struct AcceptBackoff {
    failures: u32,
}

impl AcceptBackoff {
    pub(crate) fn reset(&mut self) {
        self.failures = 0;
    }

    pub(crate) async fn wait(&mut self, err: &std::io::Error) {
        if self.failures == 0 {
            tracing::warn!(%err, "accept failed; backing off");
        } else {
            tracing::debug!(%err, failures = self.failures, "accept failed again");
        }
        tokio::time::sleep(self.next_delay()).await;
    }

    /// 10 ms, doubling with each failure in a row, up to 1.28 s.
    fn next_delay(&mut self) -> Duration {
        let delay = Duration::from_millis(10 << self.failures.min(7));
        self.failures = self.failures.saturating_add(1);
        delay
    }
}

/// Serves the connection as HTTP unless its request line starts with `raw.prefix`.
fn spawn_routed<S>(stream: TcpStream, slot: Slot, raw: Arc<RawRoute>, service: S, stopping: watch::Receiver<bool>)
where
    S: HttpService,
{
    tokio::spawn(async move {
        if starts_with(&stream, raw.prefix).await {
            (raw.serve)(stream).await;
            drop(slot);
        } else {
            let peer = stream.peer_addr().ok();
            spawn_connection(TokioIo::new(stream), slot, false, peer, service, stopping);
        }
    });
}

/// Whether the first bytes the peer sends are `prefix`, without consuming them. Gives up (and lets HTTP answer)
/// at the first byte that differs, at end of stream, or when the peer sends nothing for the header timeout.
async fn starts_with(stream: &TcpStream, prefix: &[u8]) -> bool {
    let mut seen = [0u8; 64];
    let want = prefix.len().min(seen.len());
    let deadline = tokio::time::Instant::now() + HEADER_READ_TIMEOUT;
    loop {
        let peeked = tokio::time::timeout_at(deadline, stream.peek(&mut seen[..want])).await;
        let Ok(Ok(n)) = peeked else { return false };
        if n == 0 || seen[..n] != prefix[..n] {
            return false;
        }
        if n == want {
            return true;
        }
        // Part of the prefix arrived; `peek` would return at once again, so wait a little for the rest.
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

fn spawn_connection<I, S>(
    io: TokioIo<I>,
    slot: Slot,
    tls: bool,
    peer: Option<std::net::SocketAddr>,
    service: S,
    mut stopping: watch::Receiver<bool>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: HttpService,
{
    if slot.is_overflow() {
        return spawn_overflow(io, slot, service);
    }
    // Handlers learn which listener a request came through (socket URIs take its scheme), and from whom (limits
    // per client).
    let service = tower::util::MapRequest::new(service, move |mut request: Request<Incoming>| {
        request.extensions_mut().insert(updraft_api::Transport { tls, peer });
        request
    });
    let conn = http1()
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .serve_connection(io, TowerToHyperService::new(service))
        .with_upgrades();
    tokio::spawn(async move {
        tokio::pin!(conn);
        let res = tokio::select! {
            res = conn.as_mut() => res,
            _ = async { let _ = stopping.wait_for(|stop| *stop).await; } => {
                // Finish the request in flight, take no new one.
                conn.as_mut().graceful_shutdown();
                conn.await
            }
        };
        if let Err(err) = res {
            tracing::debug!(%err, "HTTP connection ended with an error");
        }
        // An upgraded WebSocket lives on in the gateway, which counts it from here on.
        drop(slot);
    });
}

/// Every connection's HTTP/1.1 settings.
fn http1() -> hyper::server::conn::http1::Builder {
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(TokioTimer::new()).title_case_headers(true);
    builder
}

/// A connection past the cap: `/healthz` answered as usual, anything else a 503 in its service's error form;
/// one request, and at most [`OVERFLOW_LIFETIME`] in all.
fn spawn_overflow<I, S>(io: TokioIo<I>, slot: Slot, service: S)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: HttpService,
{
    let service = tower::service_fn(move |request: Request<Incoming>| {
        let mut service = service.clone();
        async move {
            if request.uri().path() == "/healthz" {
                return tower::ServiceExt::ready(&mut service).await?.call(request).await;
            }
            let err = updraft_api::error::ApiError::with_message(
                updraft_api::error::Code::Unavailable,
                "The server is at its connection limit; try again shortly",
            );
            Ok(updraft_api::error_response(request.uri().path(), request.headers(), err))
        }
    });
    let conn = http1()
        .keep_alive(false)
        .header_read_timeout(OVERFLOW_LIFETIME)
        .serve_connection(io, TowerToHyperService::new(service));
    tokio::spawn(async move {
        let _ = tokio::time::timeout(OVERFLOW_LIFETIME, conn).await;
        drop(slot);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_accepts_back_off_longer_each_time_and_start_over_after_a_success() {
        let mut backoff = AcceptBackoff::default();
        let delays: Vec<_> = (0..10).map(|_| backoff.next_delay().as_millis()).collect();
        assert_eq!(delays, [10, 20, 40, 80, 160, 320, 640, 1280, 1280, 1280]);
        backoff.reset();
        assert_eq!(backoff.next_delay(), Duration::from_millis(10));
    }
}
