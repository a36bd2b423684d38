//! Heroku-style external buildpacks: the operator's (`--buildpacks-dir`) and an app's `BUILDPACK_URL`, cloned over
//! git's HTTP transport from a plain web server, each building and naming the app's processes.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{Server, Tree, eventually, free_port};

/// A pack that accepts trees with `greeting.txt`, builds `public/index.html` from it and the app's `NAME`
/// variable, and serves `public/` when there is no Procfile.
fn write_pack(dir: &Path, name: &str) {
    let files = [
        ("bin/detect", format!("#!/bin/sh\n[ -f \"$1/greeting.txt\" ] || exit 1\necho '{name}'\n")),
        (
            "bin/compile",
            "#!/bin/sh\nset -e\necho '-----> Compiling the greeting'\necho \"       cache at $2\"\n\
             mkdir -p \"$1/public\"\necho \"$(cat \"$1/greeting.txt\"), $(cat \"$3/NAME\")\" > \"$1/public/index.html\"\n"
                .to_owned(),
        ),
        (
            "bin/release",
            "#!/bin/sh\necho '---'\necho 'default_process_types:'\n\
             echo '  web: exec /usr/bin/python3 -m http.server $PORT --bind 127.0.0.1 --directory /app/public'\n"
                .to_owned(),
        ),
    ];
    for (file, text) in files {
        let path = dir.join(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
}

fn open_to_all(dir: &Path) {
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[tokio::test]
async fn the_operators_packs_and_an_apps_buildpack_url_build_it() {
    let packs = tempfile::tempdir().unwrap();
    open_to_all(packs.path());
    std::fs::create_dir(packs.path().join("greeting")).unwrap();
    open_to_all(&packs.path().join("greeting"));
    write_pack(&packs.path().join("greeting"), "Greeting");
    let server = Server::start_with(&["--buildpacks-dir", packs.path().to_str().unwrap()]).await;

    // The operator's pack recognizes the tree before any built-in pack does, and its release names `web`.
    let app = server.create_app("greeted").await;
    let (status, _) = server.call(Method::PUT, &format!("/v1/apps/{app}/env_vars"), Some(json!({"NAME": "Ada"}))).await;
    assert_eq!(status, StatusCode::OK);
    let tree = Tree::of_files(&[("greeting.txt", "Hello")]).await;
    let (pushed, output) = tree.push(&server.git_url(&app, &server.token)).await;
    assert!(pushed, "{output}");
    for line in ["-----> Greeting app detected", "-----> Compiling the greeting", "Default types for Greeting -> web"] {
        assert!(output.contains(line), "{line:?} in {output}");
    }
    eventually(&server, &app, 5, |body| body.trim() == "Hello, Ada").await;
    let (_, info) = server.call(Method::GET, &format!("/v1/apps/{app}"), None).await;
    assert_eq!(info["release"]["buildpack"], "Greeting", "{info}");

    // An app's BUILDPACK_URL wins: a pack in a git repository any web server serves.
    let remote = tempfile::tempdir().unwrap();
    let pack_tree = Tree::of_files(&[]).await;
    write_pack(pack_tree.dir.path(), "Remote greeting");
    pack_tree.commit("pack").await;
    let bare = remote.path().join("pack.git");
    let cloned = std::process::Command::new("git")
        .args(["clone", "-q", "--bare"])
        .arg(pack_tree.dir.path())
        .arg(&bare)
        .status()
        .unwrap();
    assert!(cloned.success());
    let info = std::process::Command::new("git").arg("-C").arg(&bare).arg("update-server-info").status().unwrap();
    assert!(info.success());
    let port = free_port();
    let _web = tokio::process::Command::new("python3")
        .args(["-m", "http.server", &port.to_string(), "--bind", "127.0.0.1", "--directory"])
        .arg(remote.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let other = server.create_app("fetched").await;
    let url = format!("http://127.0.0.1:{port}/pack.git#master");
    let vars = json!({"BUILDPACK_URL": url, "NAME": "Grace"});
    assert_eq!(server.call(Method::PUT, &format!("/v1/apps/{other}/env_vars"), Some(vars)).await.0, StatusCode::OK);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let (pushed, output) = tree.push(&server.git_url(&other, &server.token)).await;
    assert!(pushed, "{output}");
    assert!(output.contains(&format!("-----> Fetching custom buildpack http://127.0.0.1:{port}/pack.git")), "{output}");
    assert!(output.contains("-----> Remote greeting app detected"), "{output}");
    eventually(&server, &other, 5, |body| body.trim() == "Hello, Grace").await;

    // A URL naming a host file or a helper program is refused, and what runs keeps running.
    for bad in ["file:///etc", "ext::sh -c id"] {
        let vars = json!({"BUILDPACK_URL": bad});
        assert_eq!(server.call(Method::PUT, &format!("/v1/apps/{app}/env_vars"), Some(vars)).await.0, StatusCode::OK);
        tree.write("greeting.txt", &format!("Hi {bad}"));
        tree.commit("again").await;
        let (pushed, output) = tree.push(&server.git_url(&app, &server.token)).await;
        assert!(!pushed, "{output}");
        assert!(output.contains("is not an http, https or git URL"), "{output}");
        eventually(&server, &app, 5, |body| body.trim() == "Hello, Ada").await;
    }
}
