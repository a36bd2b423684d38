//! Building the application from settings and running it until a shutdown signal.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, format_err};
use axum::Router;
use axum::extract::Request;
use axum::routing::get;
use tokio::net::TcpListener;
use tower::Layer;
use tower_http::normalize_path::NormalizePathLayer;
use updraft_api::eds::{AccountLogin, FileSettings};
use updraft_api::mws::saved_gateways;
use updraft_api::{ApiContext, ApiState, Limits, PublicAddress};
use updraft_bus::{Bus, LocalBus, OpenSocket, SocketEvent};
use updraft_gateway::gateway::DEFAULT_GATEWAY;
use updraft_gateway::{ConnectionConfig, Gateway, GatewayConfig, Gateways, Membership, QueueLimits, Socket, SocketId};
use updraft_store::Database;

use crate::database::{open_store, prune_logs};
use updraft_ws::close_code;

use crate::config::{BusUrl, Settings};
use crate::conns::{self, Connections};
use crate::runtimes::{self, SocketRuntime};
use crate::serve::{self, Listener};
use crate::telemetry;
use crate::tls::{self, TlsListener};
use crate::workers::Workers;

/// Connections the `--metrics-listen` listener serves at once.
const METRICS_CONNECTIONS: usize = 16;

/// How long open sockets get to finish their close handshake at shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

pub struct Application {
    local_addr: SocketAddr,
    /// The second, HTTPS listener's address (`--tls-listen`).
    tls_addr: Option<SocketAddr>,
    listeners: Vec<Listener>,
    router: Router,
    gateways: Arc<Gateways>,
    /// The EDS notification stream, answered outside the HTTP stack.
    stream: Arc<serve::RawRoute>,
    /// The cap shared by the main listeners.
    connections: Arc<Connections>,
    /// `--metrics-listen`: its address, listener and router.
    metrics: Option<(SocketAddr, TcpListener, Router)>,
    /// Where open WebSockets are served; dropped (and stopped) after the sockets have closed.
    sockets: SocketRuntime,
    /// Background work, stopped at shutdown.
    workers: Workers,
    /// Apps' processes, stopped gracefully at shutdown.
    runtime: Arc<updraft_runtime::Runtime>,
    /// Whose `X-Forwarded-*` headers name the client.
    trusted_proxies: Arc<crate::forwarded::TrustedProxies>,
}

impl Application {
    /// Binds the listener (port 0 picks a free one) and wires every service.
    pub async fn build(settings: Settings) -> anyhow::Result<Application> {
        let metrics = telemetry::metrics();
        // One crypto provider for every rustls user (the TLS listener, the EDS client).
        let _ = rustls::crypto::ring::default_provider().install_default();
        std::fs::create_dir_all(&settings.data_dir)
            .with_context(|| format!("creating data dir {}", settings.data_dir.display()))?;
        let queue = QueueLimits { max_bytes: settings.socket_queue_bytes, max_frames: settings.socket_queue_frames };
        let gateways = Arc::new(Gateways::new(queue, settings.max_pending_sockets, settings.socket_uri_ttl));
        let cap = settings.max_connections.unwrap_or_else(conns::default_cap);
        let counted = Arc::downgrade(&gateways);
        let connections = Connections::new("main", cap, move || counted.upgrade().map_or(0, |g| g.connected()));
        let bound = Bound::new(&settings, &connections)?;
        let store = open_store(&settings).await?;
        let account = account_login(&settings)?;
        let (sockets, deliver) = start_frames(&settings, &gateways).await?;
        let bus = open_bus(&settings, deliver, &gateways).await?;
        let workers = Workers::default();
        let loaded = load_gateways(&settings, &gateways, &store, &workers).await?;
        let webhook_guard = webhook_guard(&settings, &bound);
        spawn_realtime(&workers, &settings, &store, &gateways, &bus, &webhook_guard);
        let blobs = open_blobs(&settings, &workers, &store).await?;
        let runtime = open_runtime(&settings, &workers, &bound)?;
        let state = ApiState::new(ApiContext {
            store: store.clone(),
            tenants: store.clone(),
            users: store.clone(),
            groups: store.clone(),
            schemas: store.clone(),
            webhooks: store.clone(),
            changes: store.clone(),
            files: store.clone(),
            search: store.clone(),
            blobs,
            file_settings: file_settings(&settings),
            uploads: Default::default(),
            streams: Default::default(),
            sessions: Default::default(),
            webhook_guard,
            account,
            gateways: gateways.clone(),
            bus,
            eds: updraft_api::auth::EdsVerifier::with_local(store.clone(), store.clone()),
            public: bound.public_address(&settings),
            admin_token: settings.admin_token.clone(),
            limits: limits(&settings),
            connection: connection(&settings),
            saved_gateways: store.clone(),
            default_eds_uri: settings.default_gateway.eds_uri.clone(),
            passwords: updraft_api::passwords::Passwords::new(settings.login_limits),
            socket_runtime: sockets.handle(),
            runtime: Some(runtime.clone()),
            databases: Some(open_databases(&settings).await?),
        });
        workers.spawn("image-renders", updraft_api::eds::resume_renders(state.clone()));
        let router = router(&settings, state.clone(), metrics);
        let metrics = metrics_listener(&settings, metrics)?;
        workers.spawn("stream", updraft_realtime::stream_hub::run(store.clone(), store, state.streams.hub.clone()));
        let stream = stream_route(state);
        workers.spawn("ticket-sweeper", sweep_tickets(Arc::downgrade(&gateways)));
        workers.spawn("heartbeat", Gateways::run_heartbeat(Arc::downgrade(&gateways), settings.ping_interval));
        let local_addr = bound.local_addr;
        let tls = settings.tls.is_some();
        tracing::info!(%local_addr, tls, gateways = loaded + 1, max_connections = cap, "updraft listening");
        Ok(Application {
            local_addr,
            tls_addr: bound.tls_addr,
            listeners: bound.listeners,
            router,
            gateways,
            stream,
            connections,
            metrics,
            sockets,
            workers,
            runtime,
            trusted_proxies: Arc::new(settings.trusted_proxies.clone()),
        })
    }

    /// The `--metrics-listen` address.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().map(|(addr, _, _)| *addr)
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.tls_addr
    }

    /// Serves until `shutdown` resolves, then closes every socket with 1001 and drains.
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let gateways = self.gateways.clone();
        let (stop, stopping) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            shutdown.await;
            gateways.close_all(close_code::GOING_AWAY, "server shutting down");
            let _ = stop.send(true);
        });
        // Apps' own traffic goes straight to their processes, paths as sent; the API's paths lose a trailing slash.
        let normalized = NormalizePathLayer::trim_trailing_slash().layer(self.router);
        let (runtime, trusted_proxies) = (self.runtime.clone(), self.trusted_proxies.clone());
        let app = tower::service_fn(move |mut request: axum::http::Request<hyper::body::Incoming>| {
            trusted_proxies.apply(&mut request);
            let request = request.map(axum::body::Body::new);
            let host = request.headers().get(axum::http::header::HOST).and_then(|h| h.to_str().ok());
            let target = host.map_or(updraft_runtime::Target::NotAnApp, |host| runtime.route(host));
            if target == updraft_runtime::Target::NotAnApp {
                futures_util::future::Either::Right(tower::ServiceExt::oneshot(normalized.clone(), request))
            } else {
                let host = host.unwrap_or_default().to_owned();
                let answer = updraft_api::serve_app(target, host, request);
                futures_util::future::Either::Left(async move { Ok::<_, std::convert::Infallible>(answer.await) })
            }
        });
        let service = app;
        let mut serving = tokio::task::JoinSet::new();
        for listener in self.listeners {
            let mut stopping = stopping.clone();
            let graceful = async move {
                let _ = stopping.wait_for(|stop| *stop).await;
            };
            let raw = Some(self.stream.clone());
            serving.spawn(serve::serve(listener, service.clone(), raw, self.connections.clone(), graceful));
        }
        if let Some((_, tcp, router)) = self.metrics {
            let mut stopping = stopping.clone();
            let graceful = async move {
                let _ = stopping.wait_for(|stop| *stop).await;
            };
            let service = axum::ServiceExt::<Request>::into_make_service(router);
            let service = tower::ServiceExt::oneshot(service, ()).await.unwrap_or_else(|never| match never {});
            // Scrapers are few: a small cap of its own, apart from the main listeners'.
            let connections = Connections::new("metrics", METRICS_CONNECTIONS, || 0);
            serving.spawn(serve::serve(Listener::Plain(tcp), service, None, connections, graceful));
        }
        serving.join_all().await;
        let deadline = Instant::now() + SHUTDOWN_GRACE;
        while self.gateways.connected() > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.workers.shut_down().await;
        self.runtime.stop_all().await;
        drop(self.sockets);
        Ok(())
    }
}

/// The main listeners, bound: plain or TLS, and the second, HTTPS one of `--tls-listen`.
struct Bound {
    listeners: Vec<Listener>,
    local_addr: SocketAddr,
    tls_addr: Option<SocketAddr>,
    /// Whether the main listener speaks TLS (then socket URIs are `wss`).
    main_is_tls: bool,
    /// Where the TLS listeners find apps' certificates once the runtime is open.
    app_certificates: tls::AppCertificates,
}

impl Bound {
    fn new(settings: &Settings, connections: &Arc<Connections>) -> anyhow::Result<Bound> {
        let tcp = bind(settings.listen).with_context(|| format!("binding {}", settings.listen))?;
        let local_addr = tcp.local_addr()?;
        let mut listeners = Vec::new();
        let mut tls_addr = None;
        let app_certificates = tls::AppCertificates::default();
        match (&settings.tls, settings.tls_listen) {
            (Some(files), None) => {
                let config = tls::server_config(files, app_certificates.clone())?;
                listeners.push(Listener::Tls(TlsListener::new(tcp, config, connections.clone())))
            }
            (Some(files), Some(addr)) => {
                listeners.push(Listener::Plain(tcp));
                let tls_tcp = bind(addr).with_context(|| format!("binding {addr}"))?;
                tls_addr = Some(tls_tcp.local_addr()?);
                let config = tls::server_config(files, app_certificates.clone())?;
                listeners.push(Listener::Tls(TlsListener::new(tls_tcp, config, connections.clone())));
            }
            (None, _) => listeners.push(Listener::Plain(tcp)),
        }
        let main_is_tls = settings.tls.is_some() && settings.tls_listen.is_none();
        Ok(Bound { listeners, local_addr, tls_addr, main_is_tls, app_certificates })
    }

    fn public_address(&self, settings: &Settings) -> PublicAddress {
        PublicAddress {
            app_domain: settings.app_domain.clone(),
            ws_scheme: if self.main_is_tls { "wss" } else { "ws" },
            host: self.local_addr.to_string(),
            plain_host: (!self.main_is_tls).then(|| self.local_addr.to_string()),
        }
    }
}

/// The socket runtime and the fan-out threads, which write frames (see `runtimes`). Call it from the main thread.
async fn start_frames(
    settings: &Settings,
    gateways: &Arc<Gateways>,
) -> anyhow::Result<(SocketRuntime, updraft_bus::Deliver)> {
    let frames_nice = runtimes::frames_niceness(settings.frames_nice);
    let sockets = SocketRuntime::new().context("starting the socket runtime")?;
    sockets.spawn_probe();
    let deliver = updraft_realtime::fanout::deliver_locally(gateways.clone(), frames_nice, sockets.handle())
        .await
        .context("starting the fan-out threads")?;
    Ok((sockets, deliver))
}

/// The default gateway from the settings, then the gateways the store keeps, followed from then on as other nodes
/// change them; answers how many it keeps.
async fn load_gateways(
    settings: &Settings,
    gateways: &Arc<Gateways>,
    store: &Arc<dyn updraft_store::Database>,
    workers: &Workers,
) -> anyhow::Result<usize> {
    let d = &settings.default_gateway;
    gateways.upsert(
        DEFAULT_GATEWAY,
        GatewayConfig {
            name: DEFAULT_GATEWAY.to_owned(),
            access: d.access,
            security_token: d.security_token.clone(),
            eds_backend_id: d.eds_backend_id.clone(),
            eds_permissions: d.eds_permissions.clone(),
            eds_uri: d.eds_uri.clone(),
        },
    );
    // Taken before loading, so that no change made meanwhile is missed.
    let changes = store.gateway_changes();
    let former_file = settings.data_dir.join("gateways.json");
    let loaded = saved_gateways::load(&**store, gateways, &d.eds_uri, &former_file).await;
    let loaded = loaded.context("loading the saved gateways")?;
    if let Some(changes) = changes {
        let store: Arc<dyn updraft_store::SavedGateways> = store.clone();
        let followed = saved_gateways::follow(changes, store, gateways.clone(), d.eds_uri.clone());
        workers.spawn("gateway-follower", followed);
    }
    Ok(loaded)
}

fn account_login(settings: &Settings) -> anyhow::Result<Option<AccountLogin>> {
    match &settings.account {
        Some((email, password)) => Ok(Some(AccountLogin::new(email, password).map_err(|e| format_err!(e))?)),
        None => Ok(None),
    }
}

fn file_settings(settings: &Settings) -> FileSettings {
    FileSettings { max_bytes: settings.max_file_bytes, url_lifetime: settings.file_url_lifetime }
}

/// Where webhooks may point: not at this server's own listeners, nor (unless allowed) unsafe addresses.
fn webhook_guard(settings: &Settings, bound: &Bound) -> updraft_realtime::outbound::Guard {
    let own = std::iter::once(bound.local_addr).chain(bound.tls_addr).collect();
    updraft_realtime::outbound::Guard { allow_unsafe: settings.webhooks.allow_unsafe_targets, own }
}

fn limits(settings: &Settings) -> Limits {
    Limits {
        max_body_bytes: settings.max_body_bytes,
        body_timeout: settings.body_timeout,
        file_body_timeout: settings.file_body_timeout,
    }
}

fn connection(settings: &Settings) -> ConnectionConfig {
    ConnectionConfig { ping_interval: settings.ping_interval, max_client_message: settings.max_client_message_bytes }
}

/// The bytes of EDS files, under the data directory or in the bucket of `--blob-store`, the worker that removes
/// those of deleted files, and the one that expires abandoned uploads.
async fn open_blobs(
    settings: &Settings,
    workers: &Workers,
    store: &Arc<dyn Database>,
) -> anyhow::Result<Arc<dyn updraft_blobs::BlobStore>> {
    let root = settings.data_dir.join("files");
    let blobs: Arc<dyn updraft_blobs::BlobStore> = match &settings.blob_store {
        None => Arc::new(
            updraft_blobs::DirBlobStore::open(&root)
                .with_context(|| format!("opening the file store {}", root.display()))?,
        ),
        Some(url) => {
            let s3 = updraft_blobs::S3BlobStore::open(url, &[], &root)?;
            s3.check().await.with_context(|| format!("reaching the blob store {url}"))?;
            Arc::new(s3)
        }
    };
    let changes = updraft_store::Changes::watch_changes(store.as_ref());
    workers.spawn("file-trash", updraft_realtime::file_trash::sweep(store.clone(), blobs.clone(), changes));
    if let Some(after) = settings.upload_expiry {
        let expire = updraft_realtime::file_trash::expire_uploads(store.clone(), blobs.clone(), after);
        workers.spawn("upload-expiry", expire);
    }
    Ok(blobs)
}

/// The in-process bus, or `--bus`: Redis or NATS between the nodes, each node known by a name of its own, and
/// told of every socket that opens or closes here (the cluster's socket registry).
async fn open_bus(
    settings: &Settings,
    deliver: updraft_bus::Deliver,
    gateways: &Arc<Gateways>,
) -> anyhow::Result<Arc<dyn Bus>> {
    let Some(url) = &settings.bus else { return Ok(Arc::new(LocalBus::new(deliver))) };
    let node = hex::encode(rand::random::<[u8; 8]>());
    let local = local_node(deliver, gateways);
    let bus: Arc<dyn Bus> = match url {
        BusUrl::Redis(url) => Arc::new(
            updraft_bus::RedisBus::start(url, &node, local).await.with_context(|| format!("joining the bus {url}"))?,
        ),
        BusUrl::Nats(url) => Arc::new(
            updraft_bus::NatsBus::start(url, &node, local).await.with_context(|| format!("joining the bus {url}"))?,
        ),
    };
    // Weak: the bus holds the gateways (through `deliver`), so the gateways must not hold the bus.
    let weak = Arc::downgrade(&bus);
    gateways.on_membership(Arc::new(move |gateway, socket, change| {
        let Some(bus) = weak.upgrade() else { return };
        bus.announce(match change {
            Membership::Opened => SocketEvent::Opened(open_socket(gateway, socket)),
            Membership::Closed => SocketEvent::Closed { gateway: gateway.id.clone(), id: socket.id.to_string() },
            Membership::Retagged => SocketEvent::Retagged(open_socket(gateway, socket)),
        });
    }));
    Ok(bus)
}

/// What the bus may ask of this node's gateways: deliver, close one of its sockets, list them all.
fn local_node(deliver: updraft_bus::Deliver, gateways: &Arc<Gateways>) -> updraft_bus::Node {
    let (closing, listing) = (Arc::downgrade(gateways), Arc::downgrade(gateways));
    updraft_bus::Node {
        deliver,
        close: Arc::new(move |gateway, id| {
            let gateway = closing.upgrade().and_then(|gateways| gateways.get(gateway));
            gateway.zip(SocketId::parse(id)).is_some_and(|(gateway, id)| {
                gateway.close_socket(&id, updraft_ws::close_code::NORMAL, updraft_api::mws::SOCKET_DELETED)
            })
        }),
        sockets: Arc::new(move |only: Option<&str>| {
            let Some(gateways) = listing.upgrade() else { return Vec::new() };
            let chosen = match only {
                Some(id) => gateways.get(id).into_iter().collect(),
                None => gateways.list(),
            };
            let each = |gateway: Arc<Gateway>| {
                gateway.hub.list().into_iter().map(move |socket| open_socket(&gateway, &socket)).collect::<Vec<_>>()
            };
            chosen.into_iter().flat_map(each).collect()
        }),
    }
}

fn open_socket(gateway: &Gateway, socket: &Socket) -> OpenSocket {
    OpenSocket {
        gateway: gateway.id.clone(),
        id: socket.id.to_string(),
        tags: socket.tags().iter().map(|tag| tag.to_string()).collect(),
        connected_ms: updraft_core::timestamp::unix_ms(socket.connected_at),
    }
}

/// What follows the change log for sockets and webhooks, and the log's pruning.
fn spawn_realtime(
    workers: &Workers,
    settings: &Settings,
    store: &Arc<dyn Database>,
    gateways: &Arc<Gateways>,
    bus: &Arc<dyn Bus>,
    guard: &updraft_realtime::outbound::Guard,
) {
    // With a shared store every node follows the change log and publishes each change; the bus, which numbers
    // every message, keeps one (`Publication::once`).
    workers.spawn("eds-changes", updraft_realtime::sockets::deliver(store.clone(), gateways.clone(), bus.clone()));
    workers.spawn("pruner", prune_logs(Arc::downgrade(store)));
    let webhook_settings = updraft_realtime::webhooks::Settings {
        timeout: settings.webhooks.timeout,
        retry_base: settings.webhooks.retry_base,
        retry_for: settings.webhooks.retry_for,
        ..updraft_realtime::webhooks::Settings::new(guard.clone())
    };
    let changes = updraft_store::Changes::watch_changes(store.as_ref());
    workers.spawn("webhooks", updraft_realtime::webhooks::run(store.clone(), changes, webhook_settings));
}

/// The EDS notification stream, answered outside the HTTP stack.
fn stream_route(state: ApiState) -> Arc<serve::RawRoute> {
    Arc::new(serve::RawRoute {
        prefix: updraft_api::eds::stream::STREAM_REQUEST_PREFIX,
        serve: Arc::new(move |tcp| Box::pin(updraft_api::eds::stream::serve_connection(state.clone(), tcp))),
    })
}

/// The application runtime under `<data>/runtime`: its hook socket served, and what ran before started again.
fn open_runtime(
    settings: &Settings,
    workers: &Workers,
    bound: &Bound,
) -> anyhow::Result<Arc<updraft_runtime::Runtime>> {
    let root = settings.data_dir.join("runtime");
    let records = updraft_runtime::records::FileRecords::open(&root.join("apps"))?;
    let runtime_settings = updraft_runtime::Settings {
        root: std::path::absolute(&root)?,
        apps_domain: settings.apps_domain.clone(),
        health_timeout: settings.app_health_timeout,
        exe: std::env::current_exe().context("finding this binary for the git hooks")?,
        buildpacks_dir: settings.buildpacks_dir.as_deref().map(std::path::absolute).transpose()?,
    };
    let runtime = updraft_runtime::Runtime::open(runtime_settings, Arc::new(records))?;
    runtime.refresh_hooks()?;
    let _ = bound.app_certificates.set(runtime.clone());
    let served = runtime.clone();
    workers.spawn("runtime-hooks", async move {
        if let Err(err) = updraft_runtime::hook::serve(served).await {
            tracing::error!(%err, "the runtime's hook socket failed: pushes are refused");
        }
    });
    if let Some(address) = settings.ssh_listen {
        let listener = std::net::TcpListener::bind(address).with_context(|| format!("binding SSH on {address}"))?;
        listener.set_nonblocking(true)?;
        let listener = tokio::net::TcpListener::from_std(listener)?;
        let served = runtime.clone();
        workers.spawn("runtime-ssh", async move {
            if let Err(err) = updraft_runtime::ssh::serve(served, listener).await {
                tracing::error!(%err, "the SSH listener failed: pushes over SSH are refused");
            }
        });
    }
    let reconciled = runtime.clone();
    tokio::spawn(async move { reconciled.reconcile().await });
    Ok(runtime)
}

/// The MDB instances' records, and the database servers they live on, each reached once.
async fn open_databases(settings: &Settings) -> anyhow::Result<Arc<updraft_databases::Databases>> {
    let databases = updraft_databases::Settings {
        root: settings.data_dir.join("databases"),
        postgres_url: settings.mdb_postgres_url.clone(),
        redis_url: settings.mdb_redis_url.clone(),
    };
    updraft_databases::Databases::open(databases).await.context("opening the managed databases (MDB)")
}

/// `/healthz`, `/readyz`, `/metrics` for the holder of the metrics token, and every API route, timed.
fn router(
    settings: &Settings,
    state: ApiState,
    metrics: &'static metrics_exporter_prometheus::PrometheusHandle,
) -> Router {
    let server = crate::health::routes(settings.metrics_token.clone(), metrics);
    updraft_api::router(state, server).layer(axum::middleware::from_fn(telemetry::observe_request))
}

/// `--metrics-listen`: its address, listener and router.
fn metrics_listener(
    settings: &Settings,
    metrics: &'static metrics_exporter_prometheus::PrometheusHandle,
) -> anyhow::Result<Option<(SocketAddr, TcpListener, Router)>> {
    let Some(addr) = settings.metrics_listen else { return Ok(None) };
    let tcp = bind(addr).with_context(|| format!("binding {addr}"))?;
    let only = Router::new().route("/metrics", get(move || async move { telemetry::render(metrics) }));
    Ok(Some((tcp.local_addr()?, tcp, only)))
}

/// A listener with a deep accept queue: with the default 128, a burst of connects overflows it and
/// clients wait for the one-second SYN retry.
fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(4096)
}

/// Forgets socket URIs that expired unused.
async fn sweep_tickets(gateways: std::sync::Weak<Gateways>) {
    let mut tick = tokio::time::interval(Duration::from_secs(30));
    loop {
        tick.tick().await;
        let Some(gateways) = gateways.upgrade() else { return };
        gateways.sweep_tickets();
    }
}
