//! Git over HTTP at `/<app-id>.git`: git's own `http-backend` run as a CGI program, the request body streamed
//! into it and its answer streamed back, so a push of any size passes without being held in memory. Only the
//! smart protocol's three paths are served; the password of HTTP Basic is an account token (any user name).

use std::process::Stdio;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use updraft_runtime::Runtime;

use crate::ApiState;
use crate::error::{ApiError, Code};

/// The largest push taken.
const MAX_PUSH: u64 = 1 << 30;

/// The app id of a git path (`/<app-id>.git/…`), if the path is one.
pub(super) fn git_app(path: &str) -> Option<&str> {
    let first = path.strip_prefix('/')?.split('/').next()?;
    first.strip_suffix(".git")
}

pub(super) async fn serve(state: &ApiState, runtime: &Arc<Runtime>, request: Request) -> Response {
    match answer(state, runtime, request).await {
        Ok(response) => response,
        Err(err) => plain_error(err),
    }
}

/// Git shows the body of an error to the pusher: plain text, one line.
fn plain_error(err: ApiError) -> Response {
    let status = match err.code {
        Code::AuthorizationRequired | Code::InvalidCredentials => StatusCode::UNAUTHORIZED,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        _ => StatusCode::BAD_REQUEST,
    };
    let mut response = (status, format!("{}\n", err.message)).into_response();
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"Updraft\""));
    }
    response
}

async fn answer(state: &ApiState, runtime: &Arc<Runtime>, request: Request) -> Result<Response, ApiError> {
    let (parts, body) = request.into_parts();
    let path = parts.uri.path().to_owned();
    let id = git_app(&path).unwrap_or_default().to_owned();
    let rest = &path[id.len() + ".git".len() + 1..];
    if !matches!(rest, "/info/refs" | "/git-upload-pack" | "/git-receive-pack") {
        return Err(ApiError::with_message(Code::NotFound, "not a git path"));
    }
    let Some(token) = basic_password(&parts.headers) else {
        return Err(ApiError::with_message(Code::AuthorizationRequired, "give an account token as the password"));
    };
    super::account_token_ok(state, &token).await?;
    if updraft_runtime::names::app_name(&id).is_none() || runtime.app(&id).is_none() {
        return Err(ApiError::with_message(Code::NotFound, format!("no app {id}")));
    }
    let length =
        parts.headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if length.is_some_and(|n| n > MAX_PUSH) {
        return Err(ApiError::with_message(Code::PayloadTooLarge, "the push is over 1 GiB"));
    }
    let header_text =
        |name: header::HeaderName| parts.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let mut command = tokio::process::Command::new("git");
    command
        .arg("http-backend")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("GIT_PROJECT_ROOT", runtime.settings().root.join("repos"))
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("GIT_HTTP_MAX_REQUEST_BUFFER", "100M")
        .env("REMOTE_USER", "account")
        .env("REMOTE_ADDR", "127.0.0.1")
        .env("PATH_INFO", &path)
        .env("REQUEST_METHOD", parts.method.as_str())
        .env("QUERY_STRING", parts.uri.query().unwrap_or_default())
        .env("CONTENT_TYPE", header_text(header::CONTENT_TYPE))
        .env("HTTP_CONTENT_ENCODING", header_text(header::CONTENT_ENCODING))
        .env("GIT_PROTOCOL", parts.headers.get("git-protocol").and_then(|v| v.to_str().ok()).unwrap_or_default())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    if let Some(length) = length {
        command.env("CONTENT_LENGTH", length.to_string());
    }
    let mut child = command.spawn().map_err(|e| internal(&e))?;
    let mut stdin = child.stdin.take().ok_or_else(|| ApiError::new(Code::Internal))?;
    let stdout = child.stdout.take().ok_or_else(|| ApiError::new(Code::Internal))?;
    // The body goes in while the answer comes out: receive-pack answers (and the build talks) before the
    // request has ended only after it, but upload-pack may answer early.
    tokio::spawn(async move {
        let mut body = body;
        let mut taken = 0u64;
        while let Some(Ok(frame)) = body.frame().await {
            if let Ok(data) = frame.into_data() {
                taken += data.len() as u64;
                if taken > MAX_PUSH || stdin.write_all(&data).await.is_err() {
                    return;
                }
            }
        }
        let _ = stdin.shutdown().await;
    });
    cgi_response(child, stdout).await
}

/// The CGI program's answer: its header block (`Status:` and headers), then its output streamed as the body.
async fn cgi_response(child: tokio::process::Child, stdout: tokio::process::ChildStdout) -> Result<Response, ApiError> {
    let mut reader = BufReader::new(stdout);
    let mut response = Response::builder();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).await.map_err(|e| internal(&e))? == 0 {
            return Err(ApiError::new(Code::Internal));
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let Some((name, value)) = line.split_once(':') else { continue };
        if name.eq_ignore_ascii_case("status") {
            let code = value.trim().split(' ').next().and_then(|c| c.parse::<u16>().ok()).unwrap_or(500);
            response = response.status(code);
        } else {
            response = response.header(name.trim(), value.trim());
        }
    }
    // The child lives as long as its output is read.
    let stream = tokio_util::io::ReaderStream::new(reader);
    let body = Body::from_stream(futures_util::StreamExt::map(stream, move |chunk| {
        let _keep = &child;
        chunk
    }));
    response.body(body).map_err(|e| internal(&e))
}

fn internal(err: &dyn std::fmt::Display) -> ApiError {
    tracing::error!(%err, "git http-backend failed");
    ApiError::new(Code::Internal)
}

/// The password of `Authorization: Basic`.
fn basic_password(headers: &HeaderMap) -> Option<String> {
    use base64::Engine;
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (_, password) = text.split_once(':')?;
    (!password.is_empty()).then(|| password.to_owned())
}
