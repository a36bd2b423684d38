//! HTTPS and WSS on the same listener, with `wss://` socket URIs.

use reqwest::StatusCode;
use updraft_server::config::ServeArgs;

use crate::helpers::*;

#[tokio::test]
async fn tls_serves_https_and_hands_out_wss_uris() {
    let server = spawn_tls_app(open_args()).await;
    let app = &server.app;
    let port = app.addr.port();

    let client = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(server.cert_pem.as_bytes()).unwrap()])
        .resolve("localhost", app.addr)
        .build()
        .unwrap();
    let res = client.get(format!("https://localhost:{port}/v1/websocket_uri")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let body: serde_json::Value = res.json().await.unwrap();
    let uri = body["uri"].as_str().unwrap();
    assert!(uri.starts_with(&format!("wss://localhost:{port}/?token=")), "the name the client used: {uri}");

    let tls = server.connect().await;
    let (mut ws, _) = tokio_tungstenite::client_async(uri, tls).await.unwrap();
    let body = r#"{"data":"over tls","receivers":{"sockets":["*"],"tags":[]}}"#;
    // The socket registers right after the handshake; resend until it has.
    for _ in 0..100 {
        let res = client.post(format!("https://localhost:{port}/v1/messages")).body(body).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::CREATED);
        if let Ok(text) = tokio::time::timeout(std::time::Duration::from_millis(50), next_text(&mut ws)).await {
            assert_eq!(text, "over tls");
            return;
        }
    }
    panic!("no message over wss");
}

/// `updraft cert` makes a CA once and certificates for any names under it: a client trusting only the CA reaches
/// the server under each name.
#[tokio::test]
async fn certificates_from_updraft_cert_are_trusted_through_their_ca() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    updraft_server::cert::issue(dir.path(), &["mws.localtest".into()]).unwrap();
    let issued = updraft_server::cert::issue(dir.path(), &["eds.localtest".into(), "api.localtest".into()]).unwrap();
    let args = ServeArgs { tls_cert: Some(issued.cert), tls_key: Some(issued.key), ..open_args() };
    let app = spawn_app(args).await;
    let ca = reqwest::Certificate::from_pem(&std::fs::read(&issued.ca).unwrap()).unwrap();
    for name in ["eds.localtest", "api.localtest"] {
        let client = reqwest::Client::builder().tls_certs_only([ca.clone()]).resolve(name, app.addr).build().unwrap();
        let res = client.get(format!("https://{name}:{}/healthz", app.addr.port())).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{name}");
    }
    let client = reqwest::Client::builder().tls_certs_only([ca]).resolve("mws.localtest", app.addr).build().unwrap();
    let wrong = client.get(format!("https://mws.localtest:{}/healthz", app.addr.port())).send().await;
    assert!(wrong.is_err(), "the last certificate does not name mws.localtest");
}

/// A renewed certificate (certbot and cert-manager rewrite the files in place) is served without a restart, and a
/// broken one leaves the last good one served.
#[tokio::test]
async fn a_renewed_certificate_is_served_without_a_restart() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (dir, served) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (cert, key) = (served.path().join("cert.pem"), served.path().join("key.pem"));
    let install = |names: &[&str]| {
        let names: Vec<String> = names.iter().map(|name| (*name).to_owned()).collect();
        let issued = updraft_server::cert::issue(dir.path(), &names).unwrap();
        std::fs::copy(&issued.key, &key).unwrap();
        std::fs::copy(&issued.cert, &cert).unwrap();
        issued.ca
    };
    let ca = install(&["eds.localtest"]);
    let app = spawn_app(ServeArgs { tls_cert: Some(cert.clone()), tls_key: Some(key.clone()), ..open_args() }).await;
    let ca = reqwest::Certificate::from_pem(&std::fs::read(ca).unwrap()).unwrap();
    // A new client each time: a pooled connection keeps the certificate of its handshake.
    let reaches = |name: &'static str| {
        let client = reqwest::Client::builder().tls_certs_only([ca.clone()]).resolve(name, app.addr).build().unwrap();
        let url = format!("https://{name}:{}/healthz", app.addr.port());
        async move { client.get(url).send().await.is_ok_and(|res| res.status() == StatusCode::OK) }
    };
    let within = |name: &'static str| async move {
        for _ in 0..60 {
            if reaches(name).await {
                return true;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        false
    };
    assert!(reaches("eds.localtest").await && !reaches("api.localtest").await);

    install(&["api.localtest"]);
    assert!(within("api.localtest").await, "the renewed certificate is served within seconds");
    assert!(!reaches("eds.localtest").await);

    // A half-written renewal: the last good certificate stays.
    std::fs::write(&cert, "-----BEGIN CERTIFICATE-----\nbroken\n").unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert!(reaches("api.localtest").await, "a broken file does not take the server's certificate away");
}

/// `--tls-listen` adds an HTTPS listener beside the plain one; socket URIs follow the listener and host name the
/// client used, so an SDK pointed at `https://mws.localtest` gets `wss://mws.localtest/...`.
#[tokio::test]
async fn a_second_listener_serves_https_and_uris_follow_the_way_in() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let issued = updraft_server::cert::issue(dir.path(), &["mws.localtest".into()]).unwrap();
    let args = ServeArgs {
        tls_cert: Some(issued.cert),
        tls_key: Some(issued.key),
        tls_listen: Some("127.0.0.1:0".parse().unwrap()),
        ..open_args()
    };
    let app = spawn_app(args).await;
    let tls_addr = app.tls_addr.expect("an HTTPS listener");
    let (status, plain) = app.get("/v1/websocket_uri", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(plain["uri"].as_str().unwrap().starts_with(&format!("ws://{}/?token=", app.addr)), "{plain}");

    let ca = reqwest::Certificate::from_pem(&std::fs::read(&issued.ca).unwrap()).unwrap();
    let client = reqwest::Client::builder().tls_certs_only([ca]).resolve("mws.localtest", tls_addr).build().unwrap();
    let res = client.get(format!("https://mws.localtest:{}/v1/websocket_uri", tls_addr.port())).send().await.unwrap();
    let body: serde_json::Value = res.json().await.unwrap();
    let uri = body["uri"].as_str().unwrap();
    assert!(uri.starts_with(&format!("wss://mws.localtest:{}/?token=", tls_addr.port())), "{uri}");

    // EDS answers over the HTTPS listener too, with its own errors.
    let res = client
        .get(format!("https://mws.localtest:{}/v1/stream_url", tls_addr.port()))
        .header("Enginio-Backend-Id", "unknown")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND, "an unknown backend");
}
