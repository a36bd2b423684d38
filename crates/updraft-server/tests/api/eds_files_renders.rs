//! Image variants whose render a stop cut off are made at the next start: an acknowledged upload gets its
//! variants even when the server stopped (or crashed) while making them.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use updraft_server::config::ServeArgs;

use crate::eds::{EMAIL, PASSWORD};
use crate::eds_files::{Files, files_with, thumbnailed_upload};
use crate::helpers::{open_args, spawn_in};

async fn variants_of(app: &crate::helpers::TestApp, backend: &str, file: &str) -> Value {
    let res = app
        .client
        .get(format!("{}/v1/files/{file}", app.base))
        .header("Enginio-Backend-Id", backend)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    res.json::<Value>().await.unwrap()["variants"].clone()
}

#[tokio::test]
async fn variants_a_stop_cut_off_are_made_at_the_next_start() {
    let files = files_with(open_args()).await;
    let (_, shown) = thumbnailed_upload(&files).await;
    assert_eq!(shown["variants"]["thumbnail"]["status"], "complete", "{shown}");
    let id = shown["id"].as_str().unwrap().to_owned();
    let thumbnail = files.blob_dir(&id).join("thumbnail");
    assert!(thumbnail.exists());

    // As a stop in the middle of the render leaves it: still `processing`, no thumbnail yet. A second variant
    // is `processing` too, which the schema no longer declares.
    let Files { eds, dir } = files;
    let backend = eds.backend.clone();
    eds.app.stop().await;
    std::fs::remove_file(&thumbnail).unwrap();
    let cut_off = json!({"thumbnail": {"status": "processing"}, "poster": {"status": "processing"}}).to_string();
    if let Some(database) = crate::test_database::for_data_dir(dir.path()).await {
        let mut db = <sqlx::PgConnection as sqlx::Connection>::connect(&database.url()).await.unwrap();
        let done = sqlx::query("UPDATE files SET variants = $1::jsonb WHERE id = $2")
            .bind(&cut_off)
            .bind(&id)
            .execute(&mut db)
            .await
            .unwrap();
        assert_eq!(done.rows_affected(), 1);
    } else {
        let db = rusqlite::Connection::open(dir.path().join("eds.sqlite3")).unwrap();
        assert_eq!(db.execute("UPDATE files SET variants = ?1 WHERE id = ?2", (cut_off, &id)).unwrap(), 1);
    }

    let app = spawn_in(ServeArgs {
        data_dir: Some(dir.path().to_owned()),
        admin_email: Some(EMAIL.into()),
        admin_password: Some(PASSWORD.into()),
        ..open_args()
    })
    .await;
    let mut variants = Value::Null;
    for _ in 0..400 {
        variants = variants_of(&app, &backend, &id).await;
        if variants["thumbnail"]["status"] != "processing" && variants["poster"]["status"] != "processing" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(variants, json!({"thumbnail": {"status": "complete"}, "poster": {"status": "failed"}}));
    let made = image::load_from_memory(&std::fs::read(&thumbnail).unwrap()).unwrap();
    assert_eq!((made.width(), made.height()), (20, 20));
}
