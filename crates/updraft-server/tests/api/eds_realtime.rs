//! Built-in EDS → MWS: a gateway bound to a backend pushes that backend's changes to the sockets of the subjects
//! that may read them, as an `enginio` webhook would, with no webhook configured.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::eds::{eds, sign_up};
use crate::helpers::*;
use crate::security_gateways::bind_default;

fn frame(text: &str) -> Value {
    serde_json::from_str(text).unwrap()
}

#[tokio::test]
async fn changes_reach_the_sockets_that_may_read_them() {
    let eds = eds().await;
    let (alice, alice_id) = sign_up(&eds, "alice").await;
    bind_default(&eds, json!({"type": "none", "backendId": eds.backend})).await;

    let (_, mut anyone) = eds.app.connect(&[]).await;
    let (_, mut as_alice) = eds.app.connect(&[&format!("users.{alice_id}")]).await;
    let (_, mut as_bob) = eds.app.connect(&["users.0123456789abcdef01234567"]).await;

    // A public todo reaches every socket.
    let (_, todo) = eds.call(Method::POST, "/v1/objects/todos", None, Some(r#"{"title":"milk"}"#)).await;
    for ws in [&mut anyone, &mut as_alice, &mut as_bob] {
        let got = frame(&next_text(ws).await);
        assert_eq!(got["object"], todo);
        assert_eq!(got["meta"]["eventName"], "create");
        assert_eq!(got["meta"]["backendId"], eds.backend.as_str());
    }

    // Alice's private note reaches only her socket, with her as the user of the change.
    let (_, note) = eds.call(Method::POST, "/v1/objects/notes", Some(&alice), Some(r#"{"text":"mine"}"#)).await;
    for ws in [&mut anyone, &mut as_alice, &mut as_bob] {
        assert_eq!(frame(&next_text(ws).await)["meta"]["eventName"], "create", "still public when created");
    }
    let path = format!("/v1/objects/notes/{}", note["id"].as_str().unwrap());
    let private = json!({"read": [], "update": [], "delete": [], "admin": [{"id": alice_id, "objectType": "users"}]});
    let (status, _) = eds.call(Method::POST, &format!("{path}/access"), Some(&alice), Some(&private.to_string())).await;
    assert_eq!(status, StatusCode::OK);
    eds.call(Method::PUT, &path, Some(&alice), Some(r#"{"text":"secret"}"#)).await;
    let got = frame(&next_text(&mut as_alice).await);
    assert_eq!((got["meta"]["eventName"].clone(), got["object"]["text"].clone()), (json!("update"), json!("secret")));
    assert_eq!(got["meta"]["userId"], alice_id.as_str());
    assert_silent(&mut anyone, 300).await;
    assert_silent(&mut as_bob, 0).await;

    eds.call(Method::DELETE, &path, Some(&alice), None).await;
    let got = frame(&next_text(&mut as_alice).await);
    assert_eq!((got["meta"]["eventName"].clone(), got["object"]["id"].clone()), (json!("delete"), note["id"].clone()));
    assert_silent(&mut anyone, 200).await;

    // Unbound, the gateway hears nothing of the backend.
    let unbind = json!({"identityProvider": {"type": "none", "backendId": null}}).to_string();
    eds.app.call(Method::PUT, "/v1/gateways/default/configuration", Some(ADMIN), Some(&unbind)).await;
    eds.call(Method::POST, "/v1/objects/todos", None, Some(r#"{"title":"eggs"}"#)).await;
    assert_silent(&mut anyone, 300).await;
}

/// In `eds` access mode, a gateway bound to a backend this server hosts checks tokens in-process: no `EDS_URI`
/// round trip (here it points nowhere), groups included, and a revoked token is refused at once.
#[tokio::test]
async fn tokens_of_a_hosted_backend_are_verified_in_process() {
    let eds = eds().await;
    let (alice, alice_id) = sign_up(&eds, "alice").await;
    let (_, group) = eds.call(Method::POST, "/v1/usergroups", None, Some(r#"{"name":"staff"}"#)).await;
    let members = format!("/v1/usergroups/{}/members", group["id"].as_str().unwrap());
    let member = json!({"id": alice_id, "objectType": "users"}).to_string();
    let (status, body) = eds.call(Method::POST, &members, Some(&eds.secret), Some(&member)).await;
    assert!(status.is_success(), "{body}");
    bind_default(&eds, json!({"type": "enginio", "backendId": eds.backend, "uri": "http://127.0.0.1:9/v1/user"})).await;

    let (status, body) = eds.app.get("/v1/websocket_uri", Some(&alice)).await;
    assert!(status.is_success(), "{status} {body}");
    let uri = body["uri"].as_str().unwrap().to_owned();
    let (mut ws, _) = tokio_tungstenite::connect_async(&uri).await.unwrap();
    let (_, sockets) = eds.app.get("/v1/sockets", Some(ADMIN)).await;
    let tags = &sockets["results"][0]["tags"];
    assert!(tags.as_array().unwrap().contains(&json!(format!("users.{alice_id}"))), "{sockets}");
    assert!(tags.as_array().unwrap().contains(&json!(format!("usergroups.{}", group["id"].as_str().unwrap()))));
    eds.call(Method::POST, "/v1/objects/todos", None, Some(r#"{"title":"milk"}"#)).await;
    assert_eq!(frame(&next_text(&mut ws).await)["object"]["title"], "milk");

    assert_eq!(eds.app.get("/v1/websocket_uri", Some("forged")).await.0, StatusCode::UNAUTHORIZED);
    let (status, _) = eds.form("/v1/auth/oauth2/revoke", &format!("token={alice}"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(eds.app.get("/v1/websocket_uri", Some(&alice)).await.0, StatusCode::UNAUTHORIZED);
}
