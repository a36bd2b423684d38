//! Resumable delivery: a socket opened with `since` gets numbered frames, and on reconnecting with the last number
//! it saw, the messages it missed (those meant for it), or an explicit gap when they are no longer kept.

use serde_json::{Value, json};

use crate::helpers::*;

/// Opens a socket with these tags, asking for what came after `since`.
pub(crate) async fn connect_since(app: &TestApp, tags: &[&str], since: u64) -> Ws {
    let (id, uri) = app.socket_uri(tags).await;
    let (ws, _) = tokio_tungstenite::connect_async(format!("{uri}&since={since}")).await.expect("socket opens");
    app.wait_connected(&id).await;
    ws
}

pub(crate) async fn next_json(ws: &mut Ws) -> Value {
    serde_json::from_str(&next_text(ws).await).unwrap()
}

#[tokio::test]
async fn a_socket_reconnecting_with_its_last_seq_gets_what_it_missed() {
    let app = spawn_app(open_args()).await;
    let (_, mut bare) = app.connect(&["red"]).await;
    let mut numbered = connect_since(&app, &["red"], 0).await;
    let hello = next_json(&mut numbered).await;
    assert_eq!(hello["resumed"], true);
    let start = hello["seq"].as_u64().unwrap();

    app.send("one", &[], &["red"]).await;
    assert_eq!(next_text(&mut bare).await, "one", "sockets that did not ask get bare frames");
    let one = next_json(&mut numbered).await;
    assert_eq!(one, json!({"seq": start + 1, "data": "one"}));
    drop(numbered);

    // Missed while away: two for it, one for others.
    app.send(r#"{"object":{"title":"two"}}"#, &[], &["red"]).await;
    app.send("not for red", &[], &["blue"]).await;
    app.send("three", &["*"], &[]).await;
    let mut again = connect_since(&app, &["red"], start + 1).await;
    assert_eq!(next_json(&mut again).await, json!({"seq": start + 2, "data": r#"{"object":{"title":"two"}}"#}));
    assert_eq!(next_json(&mut again).await, json!({"seq": start + 4, "data": "three"}));
    assert_eq!(next_json(&mut again).await, json!({"seq": start + 4, "resumed": true}));
    app.send("live", &[], &["red"]).await;
    assert_eq!(next_json(&mut again).await, json!({"seq": start + 5, "data": "live"}));
    assert_silent(&mut again, 200).await;

    // A number the journal no longer reaches back to (or from before a restart) gets a gap, not a partial replay.
    let mut late = connect_since(&app, &["red"], 1).await;
    assert_eq!(next_json(&mut late).await, json!({"seq": start + 5, "gap": true}));
    app.send("after the gap", &[], &["red"]).await;
    assert_eq!(next_json(&mut late).await["data"], "after the gap");
}
