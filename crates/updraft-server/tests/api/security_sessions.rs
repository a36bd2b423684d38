//! Finding 5: open notification streams and `eds`-mode sockets follow their user. Leaving a group re-scopes
//! them (no more of the group's frames); a revoked token or a deleted user closes them (1008).

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::eds::{Eds, eds, sign_up};
use crate::eds_stream::{assert_silent_raw, next_event, open_as_qt, schemas, stream_url};
use crate::helpers::*;

/// A group with `user` in it; answers the group's id.
pub(crate) async fn team_with(eds: &Eds, user: &str) -> String {
    let (status, group) = eds.call(Method::POST, "/v1/usergroups", Some(&eds.secret), Some(r#"{"name":"team"}"#)).await;
    assert_eq!(status, StatusCode::CREATED, "{group}");
    let id = group["id"].as_str().unwrap().to_owned();
    join(eds, &id, user).await;
    id
}

pub(crate) async fn join(eds: &Eds, group: &str, user: &str) {
    let member = json!({"id": user, "objectType": "users"}).to_string();
    let (status, body) = eds.call(Method::POST, &members(group), Some(&eds.secret), Some(&member)).await;
    assert!(status.is_success(), "{body}");
}

fn members(group: &str) -> String {
    format!("/v1/usergroups/{group}/members")
}

pub(crate) async fn leave(eds: &Eds, group: &str, user: &str) {
    let member = json!({"id": user, "objectType": "users"}).to_string();
    let (status, body) = eds.call(Method::DELETE, &members(group), Some(&eds.secret), Some(&member)).await;
    assert!(status.is_success(), "{body}");
}

/// A todo only `group` may read, made with the instance secret.
pub(crate) async fn team_todo(eds: &Eds, group: &str, title: &str) {
    let body = json!({"title": title, "accessControlList": {"read": [{"id": group, "objectType": "usergroups"}]}});
    let (status, todo) = eds.call(Method::POST, "/v1/objects/todos", Some(&eds.secret), Some(&body.to_string())).await;
    assert_eq!(status, StatusCode::CREATED, "{todo}");
}

pub(crate) async fn public_todo(eds: &Eds, title: &str) {
    let body = json!({"title": title}).to_string();
    let (status, todo) = eds.call(Method::POST, "/v1/objects/todos", Some(&eds.secret), Some(&body)).await;
    assert_eq!(status, StatusCode::CREATED, "{todo}");
}

pub(crate) async fn revoke(eds: &Eds, token: &str) {
    let (status, body) = eds.form("/v1/auth/oauth2/revoke", &format!("token={token}"), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

pub(crate) async fn delete_user(eds: &Eds, user: &str) {
    let (status, body) = eds.call(Method::DELETE, &format!("/v1/users/{user}"), Some(&eds.secret), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// A backend where alice, in a team, has a stream open that gets the team's todos: the backend, alice's token
/// and id, the team's id, and the stream.
async fn alice_streaming_in_a_team() -> (Eds, String, String, String, RawSocket) {
    let eds = eds().await;
    schemas(&eds).await;
    let (alice, alice_id) = sign_up(&eds, "alice").await;
    let team = team_with(&eds, &alice_id).await;
    let mut stream = open_as_qt(&stream_url(&eds, Some(&alice), "").await).await.unwrap();
    team_todo(&eds, &team, "before: team secret").await;
    assert_eq!(next_event(&mut stream).await["data"]["title"], "before: team secret");
    (eds, alice, alice_id, team, stream)
}

#[tokio::test]
async fn finding_5_a_stream_follows_its_users_groups_token_and_existence() {
    let (eds, alice, alice_id, team, mut stream) = alice_streaming_in_a_team().await;

    // Out of the team: the team's todos no longer reach the stream, public ones still do.
    leave(&eds, &team, &alice_id).await;
    team_todo(&eds, &team, "AFTER removal: team secret").await;
    public_todo(&eds, "public").await;
    assert_eq!(next_event(&mut stream).await["data"]["title"], "public");
    assert_silent_raw(&mut stream).await;

    // Its token revoked: the stream closes.
    revoke(&eds, &alice).await;
    assert_eq!(stream.close_code().await, 1008);

    // Its user deleted: the stream closes.
    let (bob, bob_id) = sign_up(&eds, "bob").await;
    let mut stream = open_as_qt(&stream_url(&eds, Some(&bob), "").await).await.unwrap();
    delete_user(&eds, &bob_id).await;
    assert_eq!(stream.close_code().await, 1008);
}

#[tokio::test]
async fn finding_5_a_stream_url_issued_before_a_revocation_opens_no_stream() {
    let eds = eds().await;
    let (alice, _) = sign_up(&eds, "alice").await;
    let url = stream_url(&eds, Some(&alice), "").await;
    revoke(&eds, &alice).await;
    assert_eq!(open_as_qt(&url).await.err().as_deref(), Some("HTTP/1.1 401 Unauthorized"));
}

/// The default gateway in `eds` mode, bound to the app's backend.
pub(crate) async fn bind_eds_gateway(eds: &Eds) {
    let bind =
        json!({"identityProvider": {"type": "enginio", "backendId": eds.backend, "uri": "http://127.0.0.1:9/v1/user"}});
    let res = (eds.app.client.put(format!("{}/v1/gateways/default/configuration", eds.app.base)))
        .bearer_auth(ADMIN)
        .header("Enginio-Backend-Secret", &eds.secret)
        .body(bind.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK, "{}", res.text().await.unwrap());
}

async fn user_socket(eds: &Eds, token: &str) -> Ws {
    let (status, body) = eds.app.get("/v1/websocket_uri", Some(token)).await;
    assert!(status.is_success(), "{status} {body}");
    let (ws, _) = tokio_tungstenite::connect_async(body["uri"].as_str().unwrap()).await.unwrap();
    ws
}

pub(crate) fn object_title(text: &str) -> Value {
    serde_json::from_str::<Value>(text).unwrap()["object"]["title"].clone()
}

#[tokio::test]
async fn finding_5_an_eds_socket_follows_its_users_groups_token_and_existence() {
    let eds = eds().await;
    let (alice, alice_id) = sign_up(&eds, "alice").await;
    let team = team_with(&eds, &alice_id).await;
    bind_eds_gateway(&eds).await;
    let mut ws = user_socket(&eds, &alice).await;
    // Wait until the socket is registered before changing anything.
    public_todo(&eds, "hello").await;
    assert_eq!(object_title(&next_text(&mut ws).await), "hello");
    team_todo(&eds, &team, "before: team secret").await;
    assert_eq!(object_title(&next_text(&mut ws).await), "before: team secret");

    leave(&eds, &team, &alice_id).await;
    let (_, sockets) = eds.app.get("/v1/sockets", Some(ADMIN)).await;
    assert_eq!(sockets["results"][0]["tags"], json!([format!("users.{alice_id}")]), "re-tagged");
    team_todo(&eds, &team, "AFTER removal: team secret").await;
    public_todo(&eds, "public").await;
    assert_eq!(object_title(&next_text(&mut ws).await), "public");
    assert_silent(&mut ws, 300).await;

    revoke(&eds, &alice).await;
    assert_eq!(close_code(&mut ws).await, 1008);

    let (bob, bob_id) = sign_up(&eds, "bob").await;
    let mut ws = user_socket(&eds, &bob).await;
    public_todo(&eds, "hello bob").await;
    assert_eq!(object_title(&next_text(&mut ws).await), "hello bob");
    delete_user(&eds, &bob_id).await;
    assert_eq!(close_code(&mut ws).await, 1008);
}

#[tokio::test]
async fn finding_5_a_pending_socket_uri_follows_its_user_too() {
    let eds = eds().await;
    let (alice, alice_id) = sign_up(&eds, "alice").await;
    let team = team_with(&eds, &alice_id).await;
    bind_eds_gateway(&eds).await;
    let (status, body) = eds.app.get("/v1/websocket_uri", Some(&alice)).await;
    assert!(status.is_success(), "{body}");
    // Out of the team before connecting: the socket opens without the team's tag.
    leave(&eds, &team, &alice_id).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(body["uri"].as_str().unwrap()).await.unwrap();
    team_todo(&eds, &team, "AFTER removal: team secret").await;
    public_todo(&eds, "public").await;
    assert_eq!(object_title(&next_text(&mut ws).await), "public");

    // A URI whose token is revoked before it is used is withdrawn.
    let (_, body) = eds.app.get("/v1/websocket_uri", Some(&alice)).await;
    revoke(&eds, &alice).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(body["uri"].as_str().unwrap()).await.unwrap();
    assert_eq!(close_code(&mut ws).await, 1008, "invalid, expired or used token");
}

#[tokio::test]
async fn finding_5_a_password_change_closes_the_users_other_streams() {
    let eds = eds().await;
    let (first, alice_id) = sign_up(&eds, "alice").await;
    let (_, second) = eds.login("alice", "pw").await;
    let second = second["access_token"].as_str().unwrap();
    let mut other = open_as_qt(&stream_url(&eds, Some(second), "").await).await.unwrap();
    let mut own = open_as_qt(&stream_url(&eds, Some(&first), "").await).await.unwrap();
    let (status, body) =
        eds.call(Method::PUT, &format!("/v1/users/{alice_id}"), Some(&first), Some(r#"{"password":"new"}"#)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(other.close_code().await, 1008, "the other session's stream closes");
    assert_silent_raw(&mut own).await;
}

/// A deleted group is a group left: its former members' streams no longer get what only the group may read.
#[tokio::test]
async fn finding_5_a_stream_loses_a_deleted_group() {
    let (eds, _, _, team, mut stream) = alice_streaming_in_a_team().await;

    let (status, body) = eds.call(Method::DELETE, &format!("/v1/usergroups/{team}"), Some(&eds.secret), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    team_todo(&eds, &team, "AFTER deletion: team secret").await;
    public_todo(&eds, "public").await;
    // The group's own deletion may come first; the team's todo never does.
    loop {
        let event = next_event(&mut stream).await;
        assert_ne!(event["data"]["title"], "AFTER deletion: team secret", "{event}");
        if event["data"]["title"] == "public" {
            break;
        }
    }
    assert_silent_raw(&mut stream).await;
}
