//! Prebuilt slugs (announce, `PUT` to the upload URL, deploy, list, remove), releases and rollback, and the
//! slugs that must be refused.

use std::path::Path;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{Server, eventually};

const SERVE_PUBLIC: &str = "exec /usr/bin/python3 -m http.server $PORT --bind 127.0.0.1 --directory /app/public";

/// A gzipped tar of `files` made by `tar` in `dir` (`prefix` is `./app/` for Heroku's layout, or empty).
fn slug(dir: &Path, name: &str, prefix: &str, files: &[(&str, &str)]) -> Vec<u8> {
    let root = dir.join(name);
    for (file, text) in files {
        let path = root.join(prefix.trim_start_matches("./")).join(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    let out = dir.join(format!("{name}.tgz"));
    let made = std::process::Command::new("tar").arg("-czf").arg(&out).arg("-C").arg(&root).arg(".").status().unwrap();
    assert!(made.success());
    std::fs::read(out).unwrap()
}

/// Announces `tag` and uploads `bytes` to the URL given: the upload's status.
async fn upload(server: &Server, app: &str, tag: &str, types: Value, bytes: Vec<u8>) -> (StatusCode, String) {
    let body = json!({"tag": tag, "process_types": types});
    let (status, created) = server.call(Method::POST, &format!("/v1/apps/{app}/slugs"), Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let url = created["blob"]["url"].as_str().unwrap().to_owned();
    assert!(url.starts_with(&server.base), "{url}");
    let put = server.client.put(&url).header("Content-Type", "application/octet-stream").body(bytes);
    let response = put.send().await.unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    if status == StatusCode::OK {
        // The URL is spent: nothing more goes there. (A refused upload may be sent again within the hour.)
        let again = server.client.put(&url).body("x").send().await.unwrap();
        assert_eq!(again.status(), StatusCode::NOT_FOUND);
    }
    (status, text)
}

#[tokio::test]
async fn slugs_deploy_as_releases_and_a_rollback_returns_to_one() {
    let server = Server::start().await;
    let app = server.create_app("slugged").await;
    let dir = tempfile::tempdir().unwrap();

    // Heroku's layout (./app/…), process types given with the slug.
    let v1 = slug(dir.path(), "v1", "./app/", &[("public/index.html", "slug one")]);
    let (status, text) = upload(&server, &app, "v1", json!({"web": SERVE_PUBLIC}), v1).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let (status, deployed) =
        server.call(Method::POST, &format!("/v1/apps/{app}/slugs/v1/deploy"), Some(json!({}))).await;
    assert_eq!(status, StatusCode::OK, "{deployed}");
    assert_eq!(deployed["release"], 1);
    eventually(&server, &app, 5, |body| body.contains("slug one")).await;

    // The app's own files at the top, its Procfile inside.
    let files = [("Procfile", &*format!("web: {SERVE_PUBLIC}\n")), ("public/index.html", "slug two")];
    let v2 = slug(dir.path(), "v2", "", &files);
    assert_eq!(upload(&server, &app, "v2", Value::Null, v2).await.0, StatusCode::OK);
    let (status, _) = server.call(Method::POST, &format!("/v1/apps/{app}/slugs/v2/deploy"), None).await;
    assert_eq!(status, StatusCode::OK);
    eventually(&server, &app, 5, |body| body.contains("slug two")).await;

    let (_, listed) = server.call(Method::GET, &format!("/v1/apps/{app}/slugs/"), None).await;
    let tags: Vec<&str> = listed["results"].as_array().unwrap().iter().map(|s| s["tag"].as_str().unwrap()).collect();
    assert_eq!(tags, ["v1", "v2"]);
    assert!(listed["results"][0]["deployedAt"].is_string(), "{listed}");

    // Back to release 1's build, as release 3.
    let (status, rolled) = server.call(Method::POST, &format!("/v1/apps/{app}/releases/1/rollback"), None).await;
    assert_eq!(status, StatusCode::OK, "{rolled}");
    assert_eq!(rolled["version"], 3);
    eventually(&server, &app, 5, |body| body.contains("slug one")).await;
    let (_, releases) = server.call(Method::GET, &format!("/v1/apps/{app}/releases"), None).await;
    let releases = releases["results"].as_array().unwrap().clone();
    assert_eq!(releases.len(), 3);
    assert_eq!((releases[2]["build"].as_u64(), releases[2]["current"].as_bool()), (Some(1), Some(true)));
    let (status, _) = server.call(Method::POST, &format!("/v1/apps/{app}/releases/9/rollback"), None).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    assert_eq!(server.call(Method::DELETE, &format!("/v1/apps/{app}/slugs/v1"), None).await.0, StatusCode::OK);
    assert_eq!(server.call(Method::DELETE, &format!("/v1/apps/{app}/slugs/v1"), None).await.0, StatusCode::NOT_FOUND);
    eventually(&server, &app, 1, |body| body.contains("slug one")).await;
}

#[tokio::test]
async fn bad_slugs_are_refused_and_change_nothing() {
    let server = Server::start().await;
    let app = server.create_app("refused").await;
    let dir = tempfile::tempdir().unwrap();

    let (status, text) = upload(&server, &app, "junk", json!({"web": "x"}), b"not a tarball".to_vec()).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{text}");
    // A member climbing out of the app's directory.
    let evil = dir.path().join("evil.tgz");
    let made = std::process::Command::new("python3")
        .args(["-c", "import io,sys,tarfile\nt=tarfile.open(sys.argv[1],'w:gz')\ni=tarfile.TarInfo('../escaped')\ni.size=1\nt.addfile(i,io.BytesIO(b'x'))\nt.close()"])
        .arg(&evil)
        .status()
        .unwrap();
    assert!(made.success());
    let (status, text) = upload(&server, &app, "evil", json!({"web": "x"}), std::fs::read(&evil).unwrap()).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{text}");
    assert!(text.contains("relative paths"), "{text}");
    // Neither was kept, so neither deploys; nor does a slug with no process type anywhere.
    for tag in ["junk", "evil", "nothing"] {
        let (status, _) = server.call(Method::POST, &format!("/v1/apps/{app}/slugs/{tag}/deploy"), None).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{tag}");
    }
    let bare = slug(dir.path(), "bare", "", &[("index.html", "no Procfile")]);
    assert_eq!(upload(&server, &app, "bare", Value::Null, bare).await.0, StatusCode::OK);
    let (status, refused) = server.call(Method::POST, &format!("/v1/apps/{app}/slugs/bare/deploy"), None).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    let (_, info) = server.call(Method::GET, &format!("/v1/apps/{app}"), None).await;
    assert_eq!(info["state"], "created", "{info}");

    for (body, expected) in [
        (json!({"tag": "../x"}), StatusCode::UNPROCESSABLE_ENTITY),
        (json!({"tag": "ok", "process_types": {"we b": "x"}}), StatusCode::UNPROCESSABLE_ENTITY),
        (json!({"tag": "ok", "process_types": ["web"]}), StatusCode::UNPROCESSABLE_ENTITY),
        (json!({"tag": "bare"}), StatusCode::CONFLICT),
    ] {
        let (status, answer) = server.call(Method::POST, &format!("/v1/apps/{app}/slugs"), Some(body.clone())).await;
        assert_eq!(status, expected, "{body}: {answer}");
    }
    let forged = server.client.put(format!("{}/v1/slug_uploads/{}", server.base, "0".repeat(64))).body("x");
    assert_eq!(forged.send().await.unwrap().status(), StatusCode::NOT_FOUND);
    let anonymous = server.client.post(format!("{}/v1/apps/{app}/slugs", server.base)).json(&json!({"tag": "a"}));
    assert_eq!(anonymous.send().await.unwrap().status(), StatusCode::UNAUTHORIZED);
}
