//! A stand-in EDS `GET /v1/user` on loopback, until the built-in EDS exists.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use serde_json::json;

pub(crate) struct EdsStub {
    pub uri: String,
    calls: Arc<AtomicUsize>,
}

impl EdsStub {
    pub(crate) fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

/// Users: `joe-token` is in group 12345, `david-token` in 6789; anything else is refused.
/// Requests without `Enginio-Backend-Id: dummy` are refused too.
pub(crate) async fn start() -> EdsStub {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let app = Router::new().route(
        "/v1/user",
        get(move |headers: HeaderMap| {
            let counter = counter.clone();
            async move {
                counter.fetch_add(1, Ordering::SeqCst);
                let backend = headers.get("enginio-backend-id").and_then(|v| v.to_str().ok());
                let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("");
                let group = match (backend, auth) {
                    (Some("dummy"), "Bearer joe-token") => ("joe", "12345"),
                    (Some("dummy"), "Bearer david-token") => ("david", "6789"),
                    _ => return (StatusCode::UNAUTHORIZED, axum::Json(json!({"errors": []}))),
                };
                let user = json!({"id": group.0, "username": group.0, "usergroups": [{"id": group.1, "objectType": "usergroups"}]});
                (StatusCode::OK, axum::Json(user))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    EdsStub { uri: format!("http://{addr}/v1/user"), calls }
}
