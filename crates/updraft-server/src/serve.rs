//! The accept loop: HTTP/1.1 with upgrades over plain TCP or TLS, with graceful shutdown.
//!
//! Not `axum::serve`: its auto-detecting connection wraps every stream in a private type, so an
//! upgraded WebSocket could not be unwrapped back into the bare `TcpStream` that keeps idle
//! sockets small (see `updraft_gateway::ws`).

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

use crate::tls::TlsListener;

/// A client has this long to send its request headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// In-flight HTTP requests get this long to finish at shutdown.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// The application as every connection serves it.
pub trait HttpService:
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
pub type RawHandler = Arc<dyn Fn(TcpStream) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// Connections the HTTP stack must not answer, by the start of their request line, and who serves them instead.
pub struct RawRoute {
    pub prefix: &'static [u8],
    pub serve: RawHandler,
}

pub enum Listener {
    Plain(TcpListener),
    Tls(TlsListener),
}

/// Serves `service` until `shutdown` resolves, then waits (bounded) for open requests.
pub async fn serve<S>(listener: Listener, service: S, raw: Option<Arc<RawRoute>>, shutdown: impl Future<Output = ()>)
where
    S: HttpService,
{
    // Every connection task holds a receiver: `closed()` resolves when the last one is done.
    let (stop, stopping) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        match &listener {
            Listener::Plain(tcp) => {
                let accepted = tokio::select! {
                    res = tcp.accept() => res,
                    () = &mut shutdown => break,
                };
                match accepted {
                    Ok((stream, peer)) => {
                        // Small frames must leave at once, not wait for Nagle.
                        let _ = stream.set_nodelay(true);
                        match &raw {
                            Some(raw) => spawn_routed(stream, raw.clone(), service.clone(), stopping.clone()),
                            None => {
                                let io = TokioIo::new(stream);
                                spawn_connection(io, false, Some(peer), service.clone(), stopping.clone())
                            }
                        }
                    }
                    Err(err) => {
                        // Out of file descriptors and similar: back off instead of spinning.
                        tracing::warn!(%err, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
            Listener::Tls(tls) => {
                let stream = tokio::select! {
                    stream = tls.accept() => stream,
                    () = &mut shutdown => break,
                };
                let peer = stream.get_ref().0.peer_addr().ok();
                spawn_connection(TokioIo::new(stream), true, peer, service.clone(), stopping.clone());
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

/// Serves the connection as HTTP unless its request line starts with `raw.prefix`.
fn spawn_routed<S>(stream: TcpStream, raw: Arc<RawRoute>, service: S, stopping: watch::Receiver<bool>)
where
    S: HttpService,
{
    tokio::spawn(async move {
        if starts_with(&stream, raw.prefix).await {
            (raw.serve)(stream).await;
        } else {
            let peer = stream.peer_addr().ok();
            spawn_connection(TokioIo::new(stream), false, peer, service, stopping);
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
    tls: bool,
    peer: Option<std::net::SocketAddr>,
    service: S,
    mut stopping: watch::Receiver<bool>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: HttpService,
{
    // Handlers learn which listener a request came through (socket URIs take its scheme), and from whom (limits
    // per client).
    let service = tower::util::MapRequest::new(service, move |mut request: Request<Incoming>| {
        request.extensions_mut().insert(updraft_api::Transport { tls, peer });
        request
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
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
    });
}
