//! Apps' own certificates: a client naming an app's host (SNI) gets the app's certificate and reaches the app over
//! HTTPS; any other name gets the server's; a certificate without its key changes nothing.

use std::net::SocketAddr;
use std::sync::Arc;

use reqwest::{Method, StatusCode};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use serde_json::json;

use crate::helpers::{APPS_DOMAIN, Server, Tree, eventually, free_port};

/// The first certificate a TLS handshake naming `name` presents, trusting both test CAs; the handshake's error
/// when the certificate does not name `name`.
async fn presented(
    address: SocketAddr,
    name: &str,
    cas: &[&std::path::Path],
) -> Result<CertificateDer<'static>, String> {
    let mut roots = rustls::RootCertStore::empty();
    for ca in cas {
        roots.add(CertificateDer::from_pem_file(ca).unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(address).await.unwrap();
    let tls =
        connector.connect(ServerName::try_from(name.to_owned()).unwrap(), tcp).await.map_err(|e| e.to_string())?;
    Ok(tls.get_ref().1.peer_certificates().unwrap()[0].clone().into_owned())
}

fn first_certificate(path: &std::path::Path) -> CertificateDer<'static> {
    CertificateDer::from_pem_file(path).unwrap()
}

#[tokio::test]
async fn an_apps_certificate_is_served_by_sni_for_its_hosts_only() {
    let dir = tempfile::tempdir().unwrap();
    let server_tls = updraft_server::cert::issue(&dir.path().join("server"), &["api.test".into()]).unwrap();
    let tls_port = free_port();
    let tls_listen = format!("127.0.0.1:{tls_port}");
    let args = ["--tls-cert", server_tls.cert.to_str().unwrap(), "--tls-key", server_tls.key.to_str().unwrap()];
    let server = Server::start_with(&[&args[..], &["--tls-listen", &tls_listen]].concat()).await;
    let address: SocketAddr = tls_listen.parse().unwrap();

    let app = server.create_app("secure").await;
    let host = format!("{app}.{APPS_DOMAIN}");
    let serve = "web: exec /usr/bin/python3 -m http.server $PORT --bind 127.0.0.1 --directory /app\n";
    let tree = Tree::of_files(&[("Procfile", serve), ("index.html", "over https")]).await;
    let (pushed, output) = tree.push(&server.git_url(&app, &server.token)).await;
    assert!(pushed, "{output}");
    eventually(&server, &app, 5, |body| body.contains("over https")).await;

    let app_tls = updraft_server::cert::issue(&dir.path().join("app"), std::slice::from_ref(&host)).unwrap();
    let cas = [server_tls.ca.as_path(), app_tls.ca.as_path()];
    let server_only = presented(address, &host, &cas).await.unwrap_err();
    assert!(server_only.contains("api.test"), "none uploaded yet, the server's is presented: {server_only}");

    // A certificate with another certificate's key is refused, and nothing changes.
    let other = updraft_server::cert::issue(&dir.path().join("other"), &["x.test".into()]).unwrap();
    let read = |path: &std::path::Path| std::fs::read_to_string(path).unwrap();
    let mismatched = json!({"name": app, "privateKey": read(&other.key), "certificateBody": read(&app_tls.cert)});
    let path = format!("/v1/apps/{app}/ssl_certificate");
    let (status, refused) = server.call(Method::POST, &path, Some(mismatched)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    for bad in
        [json!({"privateKey": "junk", "certificateBody": "junk"}), json!({"certificateBody": read(&app_tls.cert)})]
    {
        assert_eq!(server.call(Method::POST, &path, Some(bad)).await.0, StatusCode::UNPROCESSABLE_ENTITY);
    }
    assert_eq!(server.call(Method::GET, &format!("/v1/apps/{app}"), None).await.1["sslCertificate"], json!(null));

    let upload = json!({"name": app, "privateKey": read(&app_tls.key), "certificateBody": read(&app_tls.cert),
        "certificateChain": read(&app_tls.ca)});
    let (status, answer) = server.call(Method::POST, &path, Some(upload)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(server.call(Method::GET, &format!("/v1/apps/{app}"), None).await.1["sslCertificate"]["name"], app);
    assert_eq!(presented(address, &host, &cas).await, Ok(first_certificate(&app_tls.cert)));
    assert_eq!(presented(address, "api.test", &cas).await, Ok(first_certificate(&server_tls.cert)));

    // A client trusting only the app's CA reaches the app by its name.
    let ca = reqwest::Certificate::from_pem(read(&app_tls.ca).as_bytes()).unwrap();
    let client = reqwest::Client::builder().tls_certs_only([ca]).resolve(&host, address).build().unwrap();
    let response = client.get(format!("https://{host}:{tls_port}/")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.text().await.unwrap().contains("over https"));

    assert_eq!(server.call(Method::DELETE, &path, None).await.0, StatusCode::OK);
    assert!(presented(address, &host, &cas).await.unwrap_err().contains("api.test"));
    assert_eq!(server.call(Method::DELETE, &path, None).await.0, StatusCode::UNPROCESSABLE_ENTITY);
}
