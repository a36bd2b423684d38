//! In front of every route: a request whose host is an app's (`<app-id>.<apps-domain>`) goes to one of the
//! app's web processes, round robin, WebSocket upgrades included; a request for `/<app-id>.git/…` goes to git.
//! Everything else is the API's. App traffic never reaches the API, so an app cannot be used to call it with a
//! visitor's cookies or headers, and the API's CORS headers never land on an app's answers.

use std::net::SocketAddr;
use std::sync::OnceLock;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use updraft_runtime::Target;

use crate::{ApiState, Transport};

pub(crate) async fn intercept(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    let Some(runtime) = state.runtime.clone() else { return next.run(request).await };
    let host = request.headers().get(header::HOST).and_then(|h| h.to_str().ok()).map(str::to_owned);
    if let Some(host) = host {
        let target = runtime.route(&host);
        if target != Target::NotAnApp {
            return serve_app(target, host, request).await;
        }
    }
    if super::git::git_app(request.uri().path()).is_some() {
        return super::git::serve(&state, &runtime, request).await;
    }
    next.run(request).await
}

/// An app's own traffic, where the runtime routed `host` (`Runtime::route`, asked once per request; the
/// listener calls this before any of the API's layers, so no metrics, CORS or path normalization touch it): the
/// answer of one of the app's web processes, or the page saying why there is none.
pub async fn serve_app(target: Target, host: String, request: Request) -> Response {
    match target {
        Target::Backend(address) => proxy(address, host, request).await,
        Target::Down => page(
            StatusCode::SERVICE_UNAVAILABLE,
            "This app has no process up",
            "It is starting, stopped or failing: see its logs.",
        ),
        Target::Unknown | Target::NotAnApp => {
            page(StatusCode::NOT_FOUND, "No such app", "No app is deployed at this address.")
        }
    }
}

fn page(status: StatusCode, title: &str, text: &str) -> Response {
    let html = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{title}</title></head>\
         <body><h1>{title}</h1><p>{text}</p></body></html>\n"
    );
    (status, Html(html)).into_response()
}

fn client() -> &'static Client<HttpConnector, Body> {
    static CLIENT: OnceLock<Client<HttpConnector, Body>> = OnceLock::new();
    CLIENT.get_or_init(|| {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        Client::builder(TokioExecutor::new()).build(connector)
    })
}

/// Headers that concern one hop only (RFC 9110 §7.6.1), not passed on.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "proxy-authorization",
];

async fn proxy(address: SocketAddr, host: String, mut request: Request) -> Response {
    let upgrade = request.headers().get(header::UPGRADE).cloned();
    let client_upgrade = upgrade.is_some().then(|| hyper::upgrade::on(&mut request));
    let transport = request.extensions().get::<Transport>().copied().unwrap_or_default();
    let path = request.uri().path_and_query().map_or("/", |p| p.as_str()).to_owned();
    let Ok(uri) = Uri::try_from(format!("http://{address}{path}")) else {
        return page(StatusCode::BAD_REQUEST, "Bad request", "The request's path is not valid.");
    };
    *request.uri_mut() = uri;
    let headers = request.headers_mut();
    for name in HOP_BY_HOP {
        headers.remove(*name);
    }
    if let Some(upgrade) = upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, upgrade);
    }
    let forwarded_for = transport.peer.map(|peer| peer.ip().to_string()).unwrap_or_default();
    let forwarded = [
        ("x-forwarded-for", forwarded_for),
        ("x-forwarded-proto", if transport.tls { "https" } else { "http" }.to_owned()),
        ("x-forwarded-host", host),
    ];
    for (name, value) in forwarded {
        if let Ok(value) = HeaderValue::try_from(value) {
            headers.insert(HeaderName::from_static(name), value);
        }
    }
    let mut response = match client().request(request).await {
        Ok(response) => response,
        Err(err) => {
            tracing::debug!(%address, %err, "app process did not answer");
            return page(
                StatusCode::BAD_GATEWAY,
                "The app did not answer",
                "Its process is restarting or failing: see its logs.",
            );
        }
    };
    if response.status() == StatusCode::SWITCHING_PROTOCOLS
        && let Some(client_upgrade) = client_upgrade
    {
        let backend_upgrade = hyper::upgrade::on(&mut response);
        tokio::spawn(async move {
            if let (Ok(client), Ok(backend)) = (client_upgrade.await, backend_upgrade.await) {
                let _ = tokio::io::copy_bidirectional(&mut TokioIo::new(client), &mut TokioIo::new(backend)).await;
            }
        });
        let (parts, _) = response.into_parts();
        return Response::from_parts(parts, Body::empty());
    }
    let (mut parts, body) = response.into_parts();
    for name in HOP_BY_HOP {
        parts.headers.remove(*name);
    }
    Response::from_parts(parts, Body::new(body))
}
