//! `spawn_app`: a real Updraft on a free loopback port with a fresh data dir, plus typed helpers.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::StreamExt;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use updraft_server::Application;
use updraft_server::config::{AccessMode, ServeArgs};

pub(crate) const ADMIN: &str = "supersecret";
/// Opens `/metrics` on the main listener (`--metrics-token`).
pub(crate) const METRICS_TOKEN: &str = "metrics-secret";

/// The account of servers started with `start_binary`.
pub(crate) const BINARY_EMAIL: &str = "binary@example.com";
pub(crate) const BINARY_PASSWORD: &str = "binary-password";

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The real `updraft` binary, serving on `port` with its data in `dir` and the account above; `extra` goes to
/// `serve`. Killed when dropped.
pub(crate) async fn start_binary(dir: &std::path::Path, port: u16, extra: &[&str]) -> tokio::process::Child {
    start_binary_with_env(dir, port, extra, &[]).await
}

/// [`start_binary`] with these environment variables too.
pub(crate) async fn start_binary_with_env(
    dir: &std::path::Path,
    port: u16,
    extra: &[&str],
    env: &[(&str, &str)],
) -> tokio::process::Child {
    let database = crate::test_database::for_data_dir(dir).await;
    let database_url = database.as_ref().map(|it| it.url());
    if let Some(database) = database {
        crate::test_database::keep(database);
    }
    launch(dir, port, extra, env, database_url.as_deref()).await
}

/// The real binary on `dir`, with its EDS data on `database_url` or, without one, in SQLite in `dir`.
pub(crate) async fn launch(
    dir: &std::path::Path,
    port: u16,
    extra: &[&str],
    env: &[(&str, &str)],
    database_url: Option<&str>,
) -> tokio::process::Child {
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_updraft"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--data-dir"])
        .arg(dir)
        .args(database_url.iter().flat_map(|url| ["--database-url", url]))
        .args(["--admin-email", BINARY_EMAIL, "--admin-password", BINARY_PASSWORD])
        .args(extra)
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let client = reqwest::Client::new();
    for _ in 0..200 {
        if client.get(format!("http://127.0.0.1:{port}/healthz")).send().await.is_ok() {
            return child;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("updraft did not start");
}

pub(crate) type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

pub(crate) struct TestApp {
    pub addr: SocketAddr,
    /// The HTTPS listener of `--tls-listen`.
    pub tls_addr: Option<SocketAddr>,
    pub base: String,
    pub client: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
    /// Declared after `task`'s server and before the data dir: dropped once the server has been told to stop.
    database: Option<std::sync::Arc<crate::test_database::TestDatabase>>,
    _data_dir: Option<tempfile::TempDir>,
}

/// The settings the original MWS specs ran with (`.env.test`), on a free port.
pub(crate) fn spec_args() -> ServeArgs {
    ServeArgs {
        access_control: Some(AccessMode::Eds),
        security_token: Some(ADMIN.into()),
        eds_backend_id: Some("dummy".into()),
        eds_permissions: Some(r#"{"read": ["*"], "write": ["usergroups.12345"]}"#.into()),
        ..open_args()
    }
}

/// No access control, an admin token for the admin-only calls.
pub(crate) fn open_args() -> ServeArgs {
    ServeArgs {
        listen: Some("127.0.0.1:0".parse().unwrap()),
        access_control: Some(AccessMode::None),
        security_token: Some(ADMIN.into()),
        metrics_token: Some(METRICS_TOKEN.into()),
        ..ServeArgs::default()
    }
}

pub(crate) async fn spawn_app(args: ServeArgs) -> TestApp {
    let data_dir = tempfile::tempdir().unwrap();
    let args =
        ServeArgs { data_dir: Some(args.data_dir.clone().unwrap_or_else(|| data_dir.path().to_owned())), ..args };
    let mut app = spawn_in(args).await;
    app._data_dir = Some(data_dir);
    app
}

/// Starts an application on exactly these settings (the caller owns the data dir).
pub(crate) async fn spawn_in(args: ServeArgs) -> TestApp {
    let database = match (&args.database_url, &args.data_dir) {
        (None, Some(dir)) => crate::test_database::for_data_dir(dir).await,
        _ => None,
    };
    let args = ServeArgs { database_url: database.as_ref().map(|it| it.url()).or(args.database_url), ..args };
    let settings = args.resolve().expect("valid test settings");
    let app = Application::build(settings).await.expect("application starts");
    let (addr, tls_addr) = (app.local_addr(), app.tls_addr());
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(app.run_until_stopped(async move {
        let _ = stopped.await;
    }));
    TestApp {
        addr,
        tls_addr,
        base: format!("http://{addr}"),
        client: reqwest::Client::new(),
        stop: Some(stop),
        task: Some(task),
        database,
        _data_dir: None,
    }
}

impl TestApp {
    /// Sends a request; `body` goes out raw with no Content-Type, as the npm SDK and rack-test do.
    pub(crate) async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> (StatusCode, Value) {
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            req = req.header("Authorization", format!("Bearer {token}"));
        }
        if let Some(body) = body {
            req = req.body(body.to_owned());
        }
        let res = req.send().await.expect("request sent");
        let status = res.status();
        let text = res.text().await.unwrap();
        let json =
            if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) };
        (status, json)
    }

    pub(crate) async fn get(&self, path: &str, token: Option<&str>) -> (StatusCode, Value) {
        self.call(Method::GET, path, token, None).await
    }

    pub(crate) async fn post(&self, path: &str, token: Option<&str>, body: &str) -> (StatusCode, Value) {
        self.call(Method::POST, path, token, Some(body)).await
    }

    /// A socket URI from `POST /v1/sockets` with these tags.
    pub(crate) async fn socket_uri(&self, tags: &[&str]) -> (String, String) {
        let body = serde_json::json!({ "tags": tags }).to_string();
        let (status, res) = self.post("/v1/sockets", Some(ADMIN), &body).await;
        assert_eq!(status, StatusCode::CREATED, "{res}");
        (res["id"].as_str().unwrap().to_owned(), res["uri"].as_str().unwrap().to_owned())
    }

    /// Opens a socket with these tags and waits until the server lists it.
    pub(crate) async fn connect(&self, tags: &[&str]) -> (String, Ws) {
        let (id, uri) = self.socket_uri(tags).await;
        let (ws, _) = tokio_tungstenite::connect_async(uri.as_str()).await.expect("socket opens");
        self.wait_connected(&id).await;
        (id, ws)
    }

    pub(crate) async fn wait_connected(&self, id: &str) {
        for _ in 0..200 {
            if self.get(&format!("/v1/sockets/{id}"), Some(ADMIN)).await.0 == StatusCode::OK {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("socket {id} never registered");
    }

    pub(crate) async fn send(&self, data: &str, sockets: &[&str], tags: &[&str]) {
        let body = serde_json::json!({ "data": data, "receivers": { "sockets": sockets, "tags": tags } });
        let (status, res) = self.post("/v1/messages", Some(ADMIN), &body.to_string()).await;
        assert_eq!(status, StatusCode::CREATED, "{res}");
    }

    pub(crate) async fn metric(&self, name: &str) -> f64 {
        let res = self.client.get(format!("{}/metrics", self.base)).bearer_auth(METRICS_TOKEN).send().await.unwrap();
        let text = res.text().await.unwrap();
        text.lines()
            .filter(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    /// Stops the server as SIGTERM would and waits for it to finish.
    pub(crate) async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        let task = self.task.take().unwrap();
        tokio::time::timeout(Duration::from_secs(10), task).await.expect("stops in time").unwrap().unwrap();
        // Stopped on purpose: it may start again on its data.
        if let Some(database) = self.database.take() {
            crate::test_database::keep(database);
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// The next text frame, failing after two seconds.
pub(crate) async fn next_text<S: AsyncRead + AsyncWrite + Unpin>(ws: &mut WebSocketStream<S>) -> String {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(2), ws.next())
            .await
            .expect("a frame within 2 s")
            .expect("socket still open")
            .expect("valid frame");
        match msg {
            Message::Text(text) => return text.to_string(),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("expected text, got {other:?}"),
        }
    }
}

/// Asserts that no text frame arrives within `ms` milliseconds.
pub(crate) async fn assert_silent<S: AsyncRead + AsyncWrite + Unpin>(ws: &mut WebSocketStream<S>, ms: u64) {
    if let Ok(Some(Ok(Message::Text(text)))) = tokio::time::timeout(Duration::from_millis(ms), ws.next()).await {
        panic!("unexpected frame {text}");
    }
}

/// The close code the server sent, failing after three seconds.
pub(crate) async fn close_code<S: AsyncRead + AsyncWrite + Unpin>(ws: &mut WebSocketStream<S>) -> u16 {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(3), ws.next()).await.expect("closed within 3 s");
        match msg {
            Some(Ok(Message::Close(Some(frame)))) => return frame.code.into(),
            Some(Ok(Message::Close(None))) => return 1005,
            Some(Ok(_)) => continue,
            Some(Err(err)) => panic!("error instead of close: {err}"),
            None => panic!("stream ended without a close frame"),
        }
    }
}

/// A WebSocket opened by hand, for sending frames no library would send.
pub(crate) struct RawSocket {
    pub stream: TcpStream,
}

impl RawSocket {
    /// Opens `uri` (`ws://host:port/?token=...`) and checks the 101 answer.
    pub(crate) async fn open(uri: &str) -> RawSocket {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let rest = uri.strip_prefix("ws://").unwrap();
        let (host, path) = rest.split_once('/').unwrap();
        let mut stream = TcpStream::connect(host).await.unwrap();
        let req = format!(
            "GET /{path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        stream.write_all(req.as_bytes()).await.unwrap();
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            let mut byte = [0u8; 1];
            stream.read_exact(&mut byte).await.unwrap();
            head.push(byte[0]);
        }
        let head = String::from_utf8(head).unwrap();
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        assert!(head.contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="), "{head}");
        RawSocket { stream }
    }

    /// Sends one client frame, masked as the protocol requires (`masked = false` breaks that rule).
    pub(crate) async fn send_frame(&mut self, first_byte: u8, payload: &[u8], masked: bool) {
        use tokio::io::AsyncWriteExt;
        let mask = [1u8, 2, 3, 4];
        let mut frame = vec![first_byte];
        let bit = if masked { 0x80 } else { 0 };
        match payload.len() {
            n if n < 126 => frame.push(bit | n as u8),
            n if n <= 0xFFFF => {
                frame.push(bit | 126);
                frame.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                frame.push(bit | 127);
                frame.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        if masked {
            frame.extend_from_slice(&mask);
            frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        } else {
            frame.extend_from_slice(payload);
        }
        // The server may close before taking all of a large frame.
        let _ = self.stream.write_all(&frame).await;
    }

    /// Reads server frames until a close arrives; returns its code. Fails after three seconds.
    pub(crate) async fn close_code(&mut self) -> u16 {
        loop {
            let (opcode, payload) = self.next_frame().await.expect("a close frame before EOF");
            if opcode == 0x8 {
                return u16::from_be_bytes([payload[0], payload[1]]);
            }
        }
    }

    /// The next server frame as (opcode, payload); `None` at EOF.
    pub(crate) async fn next_frame(&mut self) -> Option<(u8, Vec<u8>)> {
        use tokio::io::AsyncReadExt;
        let read = async {
            let mut head = [0u8; 2];
            self.stream.read_exact(&mut head).await.ok()?;
            assert_eq!(head[1] & 0x80, 0, "server frames are not masked");
            let len = match head[1] & 0x7F {
                126 => {
                    let mut b = [0u8; 2];
                    self.stream.read_exact(&mut b).await.ok()?;
                    u16::from_be_bytes(b) as usize
                }
                127 => {
                    let mut b = [0u8; 8];
                    self.stream.read_exact(&mut b).await.ok()?;
                    u64::from_be_bytes(b) as usize
                }
                n => n as usize,
            };
            let mut payload = vec![0u8; len];
            self.stream.read_exact(&mut payload).await.ok()?;
            Some((head[0] & 0x0F, payload))
        };
        tokio::time::timeout(Duration::from_secs(3), read).await.expect("a frame within 3 s")
    }
}

/// A server whose main listener is TLS, with a fresh self-signed certificate for `localhost`.
pub(crate) struct TlsApp {
    pub app: TestApp,
    /// The certificate, for clients to trust.
    pub cert_pem: String,
    cert_der: Vec<u8>,
    _dir: tempfile::TempDir,
}

pub(crate) async fn spawn_tls_app(args: ServeArgs) -> TlsApp {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();
    let app = spawn_app(ServeArgs { tls_cert: Some(cert_path), tls_key: Some(key_path), ..args }).await;
    TlsApp { app, cert_pem: cert.cert.pem(), cert_der: cert.cert.der().to_vec(), _dir: dir }
}

impl TlsApp {
    /// A TLS connection to the server, as `localhost`, trusting only its certificate.
    pub(crate) async fn connect(&self) -> tokio_rustls::client::TlsStream<TcpStream> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(rustls_pki_types::CertificateDer::from(self.cert_der.clone())).unwrap();
        let config = rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth();
        let tcp = TcpStream::connect(self.app.addr).await.unwrap();
        let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
        tokio_rustls::TlsConnector::from(std::sync::Arc::new(config)).connect(name, tcp).await.unwrap()
    }
}
