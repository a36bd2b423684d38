//! A tiny keep-alive HTTP/1.1 client for the gateway's REST API.
//!
//! Hand-written because the load generator issues tens of thousands of small
//! requests over a handful of connections and needs nothing beyond
//! Content-Length / chunked bodies; it also avoids a second HTTP stack in the
//! measurement loop.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, Result, bail, ensure};
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::ws;

/// The gateway under test, shared by every HTTP connection.
#[derive(Debug)]
pub(crate) struct Target {
    pub host_header: String,
    pub addr: SocketAddr,
    pub admin_token: Option<String>,
}

impl Target {
    pub(crate) async fn resolve(url: &str, admin_token: Option<String>) -> Result<Self> {
        let rest =
            url.strip_prefix("http://").with_context(|| format!("--target must be an http:// URL, got {url}"))?;
        let authority = rest.split('/').next().unwrap_or_default();
        ensure!(!authority.is_empty(), "--target has no host: {url}");
        let with_port = if authority.rsplit_once(':').is_some_and(|(_, p)| p.parse::<u16>().is_ok()) {
            authority.to_string()
        } else {
            format!("{authority}:80")
        };
        let addr = tokio::net::lookup_host(&with_port)
            .await
            .with_context(|| format!("resolve {with_port}"))?
            .next()
            .with_context(|| format!("{with_port} resolved to nothing"))?;
        Ok(Self { host_header: authority.to_string(), addr, admin_token })
    }
}

#[derive(Debug)]
pub(crate) struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Response {
    pub(crate) fn json<T: for<'de> Deserialize<'de>>(&self) -> Result<T> {
        serde_json::from_slice(&self.body).with_context(|| {
            format!("bad JSON in HTTP {} response: {}", self.status, String::from_utf8_lossy(&self.body))
        })
    }

    pub(crate) fn expect_status(self, want: u16, what: &str) -> Result<Self> {
        if self.status != want {
            bail!(
                "{what}: HTTP {} (expected {want}): {}",
                self.status,
                String::from_utf8_lossy(&self.body[..self.body.len().min(200)])
            );
        }
        Ok(self)
    }
}

/// One keep-alive connection; requests on it are strictly sequential.
pub(crate) struct HttpConn {
    target: Arc<Target>,
    stream: Option<TcpStream>,
    buf: Vec<u8>,
    req: Vec<u8>,
}

impl HttpConn {
    pub(crate) fn new(target: Arc<Target>) -> Self {
        Self { target, stream: None, buf: Vec::with_capacity(16 * 1024), req: Vec::with_capacity(1024) }
    }

    /// Sends one request. `admin` adds the bearer token when one is configured.
    pub(crate) async fn request(
        &mut self,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
        admin: bool,
    ) -> Result<Response> {
        let auth = match (&self.target.admin_token, admin) {
            (Some(token), true) => Some(format!("Bearer {token}")),
            _ => None,
        };
        let headers: Vec<(&str, &str)> = auth.iter().map(|v| ("Authorization", v.as_str())).collect();
        self.send(method, path, &headers, body.map(|b| ("application/json", b))).await
    }

    /// Sends one request with these extra headers and an optional `(content type, body)`.
    pub(crate) async fn send(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<(&str, &[u8])>,
    ) -> Result<Response> {
        self.req.clear();
        let t = &self.target;
        self.req.extend_from_slice(format!("{method} {path} HTTP/1.1\r\nHost: {}\r\n", t.host_header).as_bytes());
        for (name, value) in headers {
            self.req.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
        }
        if let Some((content_type, body)) = body {
            self.req.extend_from_slice(
                format!("Content-Type: {content_type}\r\nContent-Length: {}\r\n\r\n", body.len()).as_bytes(),
            );
            self.req.extend_from_slice(body);
        } else {
            self.req.extend_from_slice(b"\r\n");
        }

        // A reused connection may have been closed by the server's idle
        // timeout; retry once on a fresh one if nothing came back at all.
        let reused = self.stream.is_some();
        match self.round_trip().await {
            Ok(resp) => Ok(resp),
            Err(e) if reused && e.downcast_ref::<StaleConnection>().is_some() => {
                self.stream = None;
                self.round_trip().await
            }
            Err(e) => {
                self.stream = None;
                Err(e)
            }
        }
    }

    async fn round_trip(&mut self) -> Result<Response> {
        if self.stream.is_none() {
            self.stream = Some(ws::connect_tcp(self.target.addr).await?);
            self.buf.clear();
        }
        let stream = self.stream.as_mut().expect("connected above");
        if stream.write_all(&self.req).await.is_err() {
            return Err(StaleConnection.into());
        }

        // Read the head.
        let head_end = loop {
            if let Some(i) = ws::find_subslice(&self.buf, b"\r\n\r\n") {
                break i + 4;
            }
            let n = stream.read_buf(&mut self.buf).await.unwrap_or(0);
            if n == 0 {
                if self.buf.is_empty() {
                    return Err(StaleConnection.into());
                }
                bail!("connection closed inside response head");
            }
        };
        let head = std::str::from_utf8(&self.buf[..head_end]).context("response head not UTF-8")?;
        let mut lines = head.split("\r\n");
        let status: u16 = lines
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|s| s.parse().ok())
            .with_context(|| format!("bad status line in {head:?}"))?;
        let (mut content_length, mut chunked, mut close) = (None, false, false);
        for line in lines {
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                content_length = Some(value.parse::<usize>().context("bad Content-Length")?);
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = value.to_ascii_lowercase().contains("chunked");
            } else if name.eq_ignore_ascii_case("connection") {
                close = value.eq_ignore_ascii_case("close");
            }
        }

        let body = if chunked {
            self.read_chunked(head_end).await?
        } else if let Some(len) = content_length {
            while self.buf.len() < head_end + len {
                let stream = self.stream.as_mut().expect("connected");
                ensure!(stream.read_buf(&mut self.buf).await? > 0, "connection closed inside body");
            }
            let body = self.buf[head_end..head_end + len].to_vec();
            self.buf.drain(..head_end + len);
            body
        } else if status == 204 || status == 304 || status < 200 {
            self.buf.drain(..head_end);
            Vec::new()
        } else {
            // Body delimited by connection close.
            let stream = self.stream.as_mut().expect("connected");
            while stream.read_buf(&mut self.buf).await? > 0 {}
            close = true;
            self.buf.drain(..head_end);
            std::mem::take(&mut self.buf)
        };
        if close {
            self.stream = None;
            self.buf.clear();
        }
        Ok(Response { status, body })
    }

    async fn read_chunked(&mut self, mut pos: usize) -> Result<Vec<u8>> {
        let mut body = Vec::new();
        loop {
            // Chunk-size line.
            let line_end = self.fill_until(pos, b"\r\n").await?;
            let size_str = std::str::from_utf8(&self.buf[pos..line_end])?;
            let size_str = size_str.split(';').next().unwrap_or_default().trim();
            let size = usize::from_str_radix(size_str, 16).with_context(|| format!("bad chunk size {size_str:?}"))?;
            pos = line_end + 2;
            if size == 0 {
                // Optional trailers, then an empty line.
                loop {
                    let end = self.fill_until(pos, b"\r\n").await?;
                    let empty = end == pos;
                    pos = end + 2;
                    if empty {
                        break;
                    }
                }
                self.buf.drain(..pos);
                return Ok(body);
            }
            while self.buf.len() < pos + size + 2 {
                self.read_more().await?;
            }
            body.extend_from_slice(&self.buf[pos..pos + size]);
            pos += size + 2;
        }
    }

    /// Reads until `needle` occurs at or after `from`; returns its index.
    async fn fill_until(&mut self, from: usize, needle: &[u8]) -> Result<usize> {
        loop {
            if let Some(i) = ws::find_subslice(&self.buf[from..], needle) {
                return Ok(from + i);
            }
            self.read_more().await?;
        }
    }

    async fn read_more(&mut self) -> Result<()> {
        let stream = self.stream.as_mut().context("not connected")?;
        ensure!(stream.read_buf(&mut self.buf).await? > 0, "connection closed inside chunked body");
        Ok(())
    }
}

/// Marker error: the connection died before any response byte arrived.
#[derive(Debug)]
struct StaleConnection;

impl std::fmt::Display for StaleConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection closed before a response arrived")
    }
}

impl std::error::Error for StaleConnection {}

/// `GET /v1/websocket_uri` and `POST /v1/sockets` answers (extra fields ignored).
#[derive(Debug, Deserialize)]
pub(crate) struct SocketGrant {
    pub uri: String,
}

/// Fetches one single-use connect URI.
pub(crate) async fn fetch_websocket_uri(conn: &mut HttpConn) -> Result<String> {
    let resp =
        conn.request("GET", "/v1/websocket_uri", None, true).await?.expect_status(200, "GET /v1/websocket_uri")?;
    Ok(resp.json::<SocketGrant>()?.uri)
}

/// Creates a socket with tags (admin API); returns its connect URI.
pub(crate) async fn create_socket(conn: &mut HttpConn, tags: &[String]) -> Result<String> {
    let body = serde_json::to_vec(&serde_json::json!({ "tags": tags }))?;
    let resp = conn.request("POST", "/v1/sockets", Some(&body), true).await?.expect_status(201, "POST /v1/sockets")?;
    Ok(resp.json::<SocketGrant>()?.uri)
}

/// Publishes a message whose JSON body the caller has already encoded.
pub(crate) async fn publish(conn: &mut HttpConn, body: &[u8]) -> Result<()> {
    conn.request("POST", "/v1/messages", Some(body), true).await?.expect_status(201, "POST /v1/messages")?;
    Ok(())
}
