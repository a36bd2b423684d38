//! The WebSocket upgrade: any path with `?token=<socket id>`, as the original accepted.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use updraft_bus::{Bus, History, Redeemed};
use updraft_gateway::gateway::Ticket;
use updraft_gateway::{Connection, Gateway, Kept, Membership, Socket, SocketId, Tag, connection};
use updraft_ws::{self as ws, close_code};

use crate::ApiState;
use crate::error::{ApiError, Code};

/// Takes WebSocket handshakes before routing; everything else goes on to the routes.
pub async fn intercept(State(state): State<ApiState>, req: Request, next: Next) -> Response {
    if req.method() == Method::GET && wants_websocket(req.headers()) {
        return accept(state, req).await;
    }
    next.run(req).await
}

fn wants_websocket(headers: &HeaderMap) -> bool {
    headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|p| p.trim().eq_ignore_ascii_case("websocket")))
}

fn has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim().eq_ignore_ascii_case(token))
}

async fn accept(state: ApiState, mut req: Request) -> Response {
    let headers = req.headers();
    if !has_token(headers, header::CONNECTION, "upgrade") {
        return ApiError::with_message(Code::BadRequest, "Connection: Upgrade is required").into_response();
    }
    if headers.get(header::SEC_WEBSOCKET_VERSION).map(HeaderValue::as_bytes) != Some(b"13") {
        let mut res =
            ApiError::with_message(Code::UpgradeRequired, "Only WebSocket version 13 is supported").into_response();
        res.headers_mut().insert(header::SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"));
        return res;
    }
    let Some(key) = headers.get(header::SEC_WEBSOCKET_KEY).filter(|k| ws::is_valid_client_key(k.as_bytes())) else {
        return ApiError::with_message(Code::BadRequest, "Sec-WebSocket-Key is missing or invalid").into_response();
    };
    let accept_key = ws::accept_key(key.as_bytes());
    let Some(on_upgrade) = req.extensions_mut().remove::<hyper::upgrade::OnUpgrade>() else {
        return ApiError::with_message(Code::BadRequest, "This connection cannot be upgraded").into_response();
    };
    let (id, since) = (token(req.uri().query()), since(req.uri().query()));
    // Not held while the bus is asked: thousands of handshakes may wait at once.
    drop(req);
    // The ticket is used up by the attempt, whether or not the connection then opens.
    let ticket = match id {
        Some(id) => redeem(&state, id).await.map(|ticket| (id, ticket)),
        None => None,
    };
    let config = state.connection;
    let sockets = state.socket_runtime.clone();
    let bus = state.bus.clone();
    tokio::spawn(async move {
        let upgraded = match on_upgrade.await {
            Ok(upgraded) => upgraded,
            Err(err) => {
                tracing::debug!(%err, "upgrade failed");
                return;
            }
        };
        let Some((id, ticket)) = ticket else {
            metrics::counter!("updraft_mws_connections_rejected_total").increment(1);
            connection::reject(TokioIo::new(upgraded), close_code::POLICY_VIOLATION, "invalid, expired or used token")
                .await;
            return;
        };
        let mut socket = Socket::new(id, ticket.tags);
        socket.resumable = since.is_some();
        let socket = Arc::new(socket);
        match since {
            Some(since) => insert_resuming(bus.as_ref(), &ticket.gateway, socket.clone(), since).await,
            None => ticket.gateway.hub.insert(socket.clone()),
        }
        ticket.gateway.announce(&socket, Membership::Opened);
        // Unwrapping hyper's boxed stream saves memory on every open socket. The connection gets a task of its own, on
        // the socket runtime (entered here), so that this task's state is not carried for its lifetime. The stream stays
        // registered with the HTTP runtime's I/O driver: moving it (`into_std`, `from_std`) cost 108 bytes a socket, and
        // with the fan-out writing directly an idle socket's readiness events are rare.
        let gateway = ticket.gateway;
        let _enter = sockets.enter();
        match upgraded.downcast::<TokioIo<TcpStream>>() {
            Ok(parts) => {
                let tcp = parts.io.into_inner();
                // Revoked by the connection before it drops the stream.
                socket.allow_direct_writes(std::os::fd::AsRawFd::as_raw_fd(&tcp));
                Serve::spawn(Connection::new(tcp, parts.read_buf, socket, &config), gateway);
            }
            Err(upgraded) => {
                // TLS: the connection task does every write.
                let conn = Connection::new(TokioIo::new(upgraded), Bytes::new(), socket, &config);
                Serve::spawn(conn, gateway);
            }
        }
    });
    let mut res = Response::new(Body::empty());
    *res.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = res.headers_mut();
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(header::SEC_WEBSOCKET_ACCEPT, HeaderValue::from_str(&accept_key).expect("base64 is a valid header"));
    res
}

/// Registers a socket opened with `since`: it gets what it missed from its gateway's journal, or, on a bus that
/// numbers messages across the cluster, from what the bus kept (a bus that does not answer costs it a gap: it
/// refetches its state).
async fn insert_resuming(bus: &dyn Bus, gateway: &Gateway, socket: Arc<Socket>, since: u64) {
    let kept = match bus.history(&gateway.id, since).await {
        Ok(None) => {
            gateway.hub.insert_resuming(socket, since);
            return;
        }
        Ok(Some(History::Gap { latest })) => Kept::Gap { latest },
        Ok(Some(History::Kept { latest, missed })) => {
            let each = |p: updraft_bus::Publication| {
                (p.seq.unwrap_or_default(), p.data.clone(), updraft_realtime::fanout::receivers(&p))
            };
            Kept::Missed { latest, missed: missed.into_iter().map(each).collect() }
        }
        Err(err) => {
            tracing::warn!(%err, "what a resuming socket missed could not be read from the bus");
            Kept::Gap { latest: since }
        }
    };
    gateway.hub.insert_resumed(socket, since, kept);
}

/// Takes the ticket of socket `id`: this node's own, or, with `--bus`, one issued on any node, where the shared
/// copy decides (so a URI opens once in the whole cluster). A bus that does not answer refuses the socket.
async fn redeem(state: &ApiState, id: SocketId) -> Option<Ticket> {
    let here = state.gateways.redeem(&id);
    match state.bus.take_ticket(&id.to_string()).await {
        Ok(Redeemed::NotShared) => here,
        Ok(Redeemed::Taken(None)) => None,
        Ok(Redeemed::Taken(Some(shared))) => here.or_else(|| {
            let gateway = state.gateways.get(&shared.gateway)?;
            // Issued on another node: this one follows the socket's user from now on.
            if let Some(follows) = &shared.follows {
                state.sessions.follow_socket(state, &gateway, id, follows, None);
            }
            Some(Ticket { gateway, tags: shared.tags.iter().map(|tag| Tag::from(tag.as_str())).collect() })
        }),
        Err(err) => {
            tracing::error!(%err, "a shared ticket could not be taken");
            None
        }
    }
}

/// Serves an open socket until it ends, then unregisters it. A plain struct rather than an
/// `async fn`, whose state would hold the connection twice (argument and awaited future).
struct Serve<S> {
    conn: Connection<S>,
    gateway: Arc<Gateway>,
}

impl<S> Serve<S> {
    fn spawn(conn: Connection<S>, gateway: Arc<Gateway>)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        metrics::gauge!("updraft_mws_sockets_connected").increment(1);
        // On the socket runtime: every caller enters it first.
        tokio::spawn(Serve { conn, gateway });
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Future for Serve<S> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let ended = ready!(Pin::new(&mut this.conn).poll(cx));
        let socket = this.conn.socket();
        this.gateway.hub.remove(socket);
        this.gateway.announce(socket, Membership::Closed);
        metrics::gauge!("updraft_mws_sockets_connected").decrement(1);
        tracing::debug!(socket = %socket.id, ?ended, "socket closed");
        Poll::Ready(())
    }
}

/// `since=<seq>`: the socket wants numbered frames, and what it missed after `seq` (see `updraft_gateway::journal`).
fn since(query: Option<&str>) -> Option<u64> {
    query?.split('&').find_map(|pair| pair.strip_prefix("since=")?.parse().ok())
}

fn token(query: Option<&str>) -> Option<SocketId> {
    query?.split('&').find_map(|pair| SocketId::parse(pair.strip_prefix("token=")?))
}
