//! The EDS notification stream that QtEnginio's `EnginioModel` listens on (docs/realtime.md): its route, raw
//! handshake and connection loop. Which change reaches which stream, and as what, is `updraft-realtime`'s
//! (`stream_hub`).
//!
//! `GET /v1/stream_url?filter=<JSON>` hands out a single-use `expiringUrl`; the client opens a WebSocket there and
//! gets one text frame per change it may read, of the types whose schema sets `settings.websocket`, and only
//! those the filter (a subset of the event) matches.
//!
//! QtEnginio writes its own handshake and checks the reply with case-sensitive patterns (`Upgrade:`,
//! `Connection:`, `Sec-WebSocket-Accept:`), which hyper's lower-cased header names fail. So the accept loop hands
//! connections whose request line starts with [`STREAM_REQUEST_PREFIX`] to [`serve_connection`], which answers
//! the handshake byte for byte itself.
//!
//! Beyond the original, a stream resumes: `stream_url?since=<seq>` (the `seq` of the last event seen) replays
//! the missed events from the change log before the live ones, or starts with `{"event": "gap"}` when the log no
//! longer reaches back that far.

use std::sync::Arc;
use std::time::Duration;

use axum::Extension;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use bytes::BytesMut;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use updraft_gateway::SocketId;
use updraft_gateway::pending::{self, Limits, Pending, Requester};
use updraft_realtime::stream_hub::{Interest, Replay, StreamHub, Subscription};
use updraft_ws::{self as ws, Event, FrameReader, close_code};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::routes;

use super::sessions::Owner;
use super::{Caller, DataRequest};
use crate::auth::{self, Credentials};
use crate::error::{ApiError, Code, EdsError};
use crate::openapi::{ApiRouter, EdsErrors, tag};
use crate::{ApiState, Transport};

/// Connections starting with this are the stream's, not HTTP requests for the router.
pub const STREAM_REQUEST_PREFIX: &[u8] = b"GET /v1/stream?";
const TICKET_TTL: Duration = Duration::from_secs(300);
/// Pending stream URLs on this server, the memory bound; each backend and each client address gets a share
/// (`pending::Limits::shares_of`), so no tenant's flood refuses another's streams.
const MAX_TICKETS: usize = 100_000;
/// A handshake bigger than this is refused.
const MAX_HEAD: usize = 8 * 1024;
const HEAD_TIMEOUT: Duration = Duration::from_secs(30);
/// Client frames carry pings and closes only.
const MAX_CLIENT_MESSAGE: u64 = 64 * 1024;

pub(crate) fn routes() -> ApiRouter {
    ApiRouter::new().routes(routes!(stream_url))
}

struct StreamTicket {
    interest: Interest,
    since: Option<i64>,
    /// The user and token a user's stream was asked for with: the stream follows them (`sessions`).
    owner: Option<Owner>,
}

/// Pending stream URLs (by backend), and the hub of open streams.
pub struct Streams {
    tickets: Pending<Arc<str>, StreamTicket>,
    pub hub: Arc<StreamHub>,
}

impl Default for Streams {
    fn default() -> Streams {
        Streams { tickets: Pending::new(Limits::shares_of(MAX_TICKETS), TICKET_TTL), hub: Arc::default() }
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct StreamUrlQuery {
    /// JSON: the events to send, as a subset of each (`{"event": "create"}`,
    /// `{"data": {"objectType": "objects.todos"}}`). Absent or empty, every event.
    filter: Option<String>,
    /// The `seq` of the last event seen: the stream first replays the events after it from the change log (or
    /// starts with `{"event": "gap"}` when the log no longer reaches back that far).
    since: Option<i64>,
}

/// Where to open the stream.
#[derive(Serialize, ToSchema)]
struct StreamUrl {
    /// `ws://<host>/v1/stream?token=…`: single use, valid five minutes.
    #[serde(rename = "expiringUrl")]
    expiring_url: String,
}

/// Where the stream is reached, as the request came in.
struct StreamHost(String);

impl axum::extract::FromRequestParts<ApiState> for StreamHost {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &ApiState,
    ) -> Result<StreamHost, Self::Rejection> {
        Ok(StreamHost(state.stream_host(parts)))
    }
}

/// A URL to open a notification stream at: one WebSocket text frame per change the caller may read.
///
/// The URL is single use, valid five minutes, and bound to the caller's read permissions at the time it is
/// opened (a user's stream follows the user: it is re-scoped or closed when the user's access changes). Opened
/// with a WebSocket handshake over plain TCP, it sends
/// `{"event": "create"|"update"|"delete", "data": {…}, "origin": {"apiRequestId"}, "seq"}` for each change of a
/// type whose schema sets `"settings": {"websocket": true}` that the filter matches. Pings are answered; a
/// client that falls too far behind is closed with 1013 and resumes with `since`.
#[utoipa::path(get, path = "/v1/stream_url", tag = tag::STREAM,
    security(("backendId" = []), ("backendId" = [], "userToken" = []), ("backendId" = [], "instanceSecret" = [])),
    params(StreamUrlQuery),
    responses(
        (status = 200, body = StreamUrl),
        (status = 503, description = "Too many pending stream URLs on the server, for the backend or from the \
            client's address.", body = EdsErrors)))]
async fn stream_url(
    State(state): State<ApiState>,
    StreamHost(host): StreamHost,
    request: DataRequest,
    headers: HeaderMap,
    transport: Option<Extension<Transport>>,
    Query(query): Query<StreamUrlQuery>,
) -> Result<Response, EdsError> {
    let filter = match query.filter.as_deref().map(str::trim).filter(|text| !text.is_empty()) {
        None => Map::new(),
        Some(text) => match serde_json::from_str(text) {
            Ok(Value::Object(filter)) => filter,
            _ => return Err(ApiError::with_message(Code::BadRequest, "filter must be a JSON object").into()),
        },
    };
    let subjects = match request.caller {
        Caller::Secret => None,
        Caller::Anonymous | Caller::User(_) => Some(request.subjects.clone()),
    };
    let owner = match (&request.caller, auth::credentials(&headers)?) {
        (Caller::User(user), Credentials::Bearer(token)) => Some(Owner::new(user, &token)),
        _ => None,
    };
    let requester = match request.caller {
        Caller::Secret => Requester::Privileged,
        Caller::Anonymous | Caller::User(_) => {
            Requester::Public(transport.and_then(|Extension(transport)| transport.peer).map(|peer| peer.ip()))
        }
    };
    let interest = Interest { backend: request.backend.id.clone(), subjects, filter };
    let ticket = StreamTicket { interest, since: query.since, owner };
    let (token, _) =
        state.streams.tickets.issue(request.backend.id.as_str().into(), requester, ticket).map_err(|refusal| {
            let message = match refusal {
                pending::Refusal::Full => "Too many pending streams",
                pending::Refusal::Tenant => "Too many pending streams for this backend",
                pending::Refusal::Client => "Too many pending streams from this address",
            };
            ApiError::with_message(Code::Unavailable, message)
        })?;
    // The stream is plain TCP, as QtEnginio opens it.
    let url = format!("ws://{host}/v1/stream?token={token}");
    Ok(axum::Json(StreamUrl { expiring_url: url }).into_response())
}

/// Serves a connection whose request line starts with [`STREAM_REQUEST_PREFIX`].
pub async fn serve_connection(state: ApiState, mut stream: TcpStream) {
    let Ok(Some((head, rest))) = tokio::time::timeout(HEAD_TIMEOUT, read_head(&mut stream)).await.unwrap_or(Ok(None))
    else {
        return;
    };
    let (mut ticket, accept) = match handshake(&state, &head) {
        Ok(accepted) => accepted,
        Err(refusal) => return refuse(&mut stream, refusal).await,
    };
    let subscription = state.streams.hub.open(ticket.interest.clone());
    let id = subscription.id;
    // Registered first, then checked: a change to the user after its stream URL was issued is seen here, and
    // one made from now on reaches the stream through its session.
    if let Some(owner) = &ticket.owner {
        state.sessions.follow_stream(&state, &ticket.interest.backend, owner, id).await;
    }
    match state.streams.hub.interest(id) {
        Some(interest) => ticket.interest = interest,
        None => {
            unfollow(&state, &ticket, id);
            return refuse(&mut stream, refusal(Code::InvalidCredentials, "Access revoked")).await;
        }
    }
    // Exactly the casing QtEnginio's patterns look for.
    let reply = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
    );
    metrics::gauge!("updraft_eds_streams_open").increment(1);
    let ended = if stream.write_all(reply.as_bytes()).await.is_err() {
        StreamEnd::Gone
    } else {
        run_connection(&state, stream, rest, &ticket, subscription).await
    };
    state.streams.hub.close(id);
    unfollow(&state, &ticket, id);
    metrics::gauge!("updraft_eds_streams_open").decrement(1);
    tracing::debug!(?ended, "stream closed");
}

fn unfollow(state: &ApiState, ticket: &StreamTicket, id: u64) {
    if let Some(owner) = &ticket.owner {
        state.sessions.unfollow_stream(&ticket.interest.backend, owner, id);
    }
}

/// Answers a refused handshake in the EDS error form.
async fn refuse(stream: &mut TcpStream, refusal: EdsError) {
    let (status, body) = refusal.to_parts();
    let body = body.to_string();
    let reply = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        status.as_u16(),
        status.canonical_reason().unwrap_or_default(),
        body.len()
    );
    let _ = stream.write_all(reply.as_bytes()).await;
}

/// Reads up to the end of the request head; answers it and any bytes read past it.
async fn read_head(stream: &mut TcpStream) -> std::io::Result<Option<(Vec<u8>, BytesMut)>> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = BytesMut::from(&buf[end + 4..]);
            buf.truncate(end + 4);
            return Ok(Some((buf, rest)));
        }
        if buf.len() > MAX_HEAD {
            return Ok(None);
        }
    }
}

fn refusal(code: Code, message: &'static str) -> EdsError {
    EdsError(ApiError::with_message(code, message))
}

/// Checks the handshake and redeems its ticket; answers the ticket and `Sec-WebSocket-Accept`.
fn handshake(state: &ApiState, head: &[u8]) -> Result<(StreamTicket, String), EdsError> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut request = httparse::Request::new(&mut headers);
    if !matches!(request.parse(head), Ok(httparse::Status::Complete(_))) {
        return Err(refusal(Code::BadRequest, "Malformed handshake"));
    }
    let header = |name: &str| {
        request.headers.iter().find(|h| h.name.eq_ignore_ascii_case(name)).map(|h| h.value).unwrap_or_default()
    };
    let has = |name: &str, token: &str| {
        String::from_utf8_lossy(header(name)).split(',').any(|part| part.trim().eq_ignore_ascii_case(token))
    };
    if !has("upgrade", "websocket") || !has("connection", "upgrade") {
        return Err(refusal(Code::BadRequest, "A WebSocket upgrade is required"));
    }
    if header("sec-websocket-version") != b"13" {
        return Err(refusal(Code::UpgradeRequired, "Only WebSocket version 13 is supported"));
    }
    let key = header("sec-websocket-key");
    if !ws::is_valid_client_key(key) {
        return Err(refusal(Code::BadRequest, "Sec-WebSocket-Key is missing or invalid"));
    }
    let token = request
        .path
        .and_then(|path| path.split_once('?'))
        .and_then(|(_, query)| query.split('&').find_map(|pair| SocketId::parse(pair.strip_prefix("token=")?)));
    match token.and_then(|token| state.streams.tickets.take(&token)) {
        Some((_, ticket)) => Ok((ticket, ws::accept_key(key))),
        None => Err(refusal(Code::InvalidCredentials, "The stream URL is invalid, expired or used")),
    }
}

#[derive(Debug)]
enum StreamEnd {
    ClientClosed,
    Gone,
    Violation,
    TooSlow,
    Revoked,
}

async fn run_connection(
    state: &ApiState,
    mut stream: TcpStream,
    mut rest: BytesMut,
    ticket: &StreamTicket,
    mut subscription: Subscription,
) -> StreamEnd {
    let mut out = BytesMut::new();
    // Missed events first; live ones queue meanwhile (the stream registered before this), and those the
    // replay already sent are skipped by their `seq`.
    let mut sent = 0;
    if let Some(since) = ticket.since {
        sent = replay(state, &ticket.interest, since, &mut stream, &mut out).await;
    }
    let mut reader = FrameReader::new(MAX_CLIENT_MESSAGE);
    let mut buf = vec![0u8; 4096];
    let mut pending = std::mem::take(&mut rest);
    loop {
        if !pending.is_empty() {
            let mut reply = None;
            let fed = reader.feed(&mut pending[..], &mut |event| match event {
                // Pong with the ping's payload, as QtEnginio's keep-alive expects.
                Event::Ping(payload) => ws::put_frame(&mut out, ws::OP_PONG, payload),
                Event::Close { code, .. } => reply = Some(code.unwrap_or(close_code::NORMAL)),
                Event::Pong | Event::Message => (),
            });
            pending.clear();
            if let Err(violation) = fed {
                ws::put_close_frame(&mut out, violation.code, violation.reason);
                let _ = stream.write_all(&out).await;
                return StreamEnd::Violation;
            }
            if let Some(code) = reply {
                // The close echoes the client's code.
                ws::put_close_frame(&mut out, code, "");
                let _ = stream.write_all(&out).await;
                return StreamEnd::ClientClosed;
            }
            if !out.is_empty() && stream.write_all(&out.split()).await.is_err() {
                return StreamEnd::Gone;
            }
        }
        tokio::select! {
            read = stream.read(&mut buf) => match read {
                Ok(0) | Err(_) => return StreamEnd::Gone,
                Ok(n) => pending.extend_from_slice(&buf[..n]),
            },
            frame = subscription.frames.recv() => {
                let Some(frame) = frame else {
                    if subscription.revoked() {
                        ws::put_close_frame(&mut out, close_code::POLICY_VIOLATION, "access revoked");
                        let _ = stream.write_all(&out).await;
                        return StreamEnd::Revoked;
                    }
                    ws::put_close_frame(&mut out, close_code::TRY_AGAIN_LATER, "too far behind; resume with since");
                    let _ = stream.write_all(&out).await;
                    return StreamEnd::TooSlow;
                };
                if frame.seq <= sent {
                    continue;
                }
                ws::put_frame(&mut out, ws::OP_TEXT, &frame.text);
                if stream.write_all(&out.split()).await.is_err() {
                    return StreamEnd::Gone;
                }
            }
        }
    }
}

/// Sends the events after `since` that the log still has; answers the `seq` of the last change looked at.
async fn replay(state: &ApiState, interest: &Interest, since: i64, stream: &mut TcpStream, out: &mut BytesMut) -> i64 {
    let (mut replay, gap) = Replay::start(state.changes.as_ref(), state.schemas.as_ref(), interest, since).await;
    if let Some(gap) = gap {
        ws::put_frame(out, ws::OP_TEXT, &gap);
    }
    while let Some(events) = replay.next_batch().await {
        for event in events {
            ws::put_frame(out, ws::OP_TEXT, &event);
        }
        if stream.write_all(&out.split()).await.is_err() {
            break;
        }
    }
    let _ = stream.write_all(&out.split()).await;
    replay.last()
}
