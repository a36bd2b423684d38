//! Instances on the machine's real PostgreSQL (127.0.0.1:5432) and Redis (6379): what an instance's credentials
//! reach, and what they must not (another instance's data, the server's admin commands, anything once stopped
//! or deleted). Names carry a random suffix, and every instance made is deleted.

use sqlx::Connection;
use sqlx::postgres::PgConnection;
use updraft_databases::{DatabaseError, Databases, Settings};

const POSTGRES: &str = "postgres://postgres@127.0.0.1:5432/postgres";
const REDIS: &str = "redis://127.0.0.1:6379";

fn suffix() -> String {
    hex::encode(rand::random::<[u8; 4]>())
}

async fn open(dir: &std::path::Path) -> std::sync::Arc<Databases> {
    let settings =
        Settings { root: dir.to_path_buf(), postgres_url: Some(POSTGRES.into()), redis_url: Some(REDIS.into()) };
    Databases::open(settings).await.unwrap()
}

/// The URL of `service` pointing at `database` instead of its own.
fn other_database(url: &str, database: &str) -> String {
    format!("{}/{database}", url.rsplit_once('/').unwrap().0)
}

#[tokio::test]
async fn a_postgres_instance_reaches_its_own_database_only_and_goes_away_whole() {
    let dir = tempfile::tempdir().unwrap();
    let databases = open(dir.path()).await;
    let tag = suffix();
    let a = databases.create(&format!("pa-{tag}"), "qtcs/postgresql:9.3", 1, "default").await.unwrap();
    let b = databases.create(&format!("pb-{tag}"), "postgresql", 2, "default").await.unwrap();
    assert_eq!(a.url(), format!("postgres://mdb_pa_{tag}:{}@127.0.0.1:5432/mdb_pa_{tag}", a.password));

    let mut own = PgConnection::connect(&a.url()).await.unwrap();
    sqlx::raw_sql("CREATE TABLE todo (title text); INSERT INTO todo VALUES ('milk')").execute(&mut own).await.unwrap();
    let title: String = sqlx::query_scalar("SELECT title FROM todo").fetch_one(&mut own).await.unwrap();
    assert_eq!(title, "milk");

    let across = PgConnection::connect(&other_database(&a.url(), &b.username)).await.unwrap_err();
    assert!(across.to_string().contains("permission denied"), "{across}");

    // A stop ends the open session and refuses new ones; a start lets them in again.
    databases.set_running(&a.id, false).await.unwrap();
    assert!(sqlx::query("SELECT 1").execute(&mut own).await.is_err(), "the session outlived the stop");
    let refused = PgConnection::connect(&a.url()).await.unwrap_err();
    assert!(refused.to_string().contains("not permitted to log in"), "{refused}");
    databases.set_running(&a.id, true).await.unwrap();
    let mut again = PgConnection::connect(&a.url()).await.unwrap();
    let kept: i64 = sqlx::query_scalar("SELECT count(*) FROM todo").fetch_one(&mut again).await.unwrap();
    assert_eq!(kept, 1);
    drop(again);

    let taken = databases.create(&format!("pa-{tag}"), "postgresql", 1, "default").await.unwrap_err();
    assert!(matches!(taken, DatabaseError::Conflict(_)), "{taken}");
    for (name, image, size) in [("../x", "postgresql", 1), ("ok", "qtcs/mysql:5.6", 1), ("ok", "postgresql", 9)] {
        let refused = databases.create(name, image, size, "default").await.unwrap_err();
        assert!(matches!(refused, DatabaseError::Invalid(_)), "{name} {image} {size}: {refused}");
    }

    let mut admin = PgConnection::connect(POSTGRES).await.unwrap();
    for service in [&a, &b] {
        databases.delete(&service.id).await.unwrap();
        let left: i64 = sqlx::query_scalar(
            "SELECT (SELECT count(*) FROM pg_roles WHERE rolname = $1) + (SELECT count(*) FROM pg_database WHERE datname = $1)",
        )
        .bind(&service.username)
        .fetch_one(&mut admin)
        .await
        .unwrap();
        assert_eq!(left, 0, "{} left behind", service.username);
    }
    assert!(databases.all().is_empty());
    assert!(matches!(databases.delete(&a.id).await, Err(DatabaseError::NotFound)));
}

async fn redis_as(url: &str) -> redis::RedisResult<redis::aio::MultiplexedConnection> {
    redis::Client::open(url)?.get_multiplexed_async_connection().await
}

async fn run(connection: &mut redis::aio::MultiplexedConnection, args: &[&str]) -> redis::RedisResult<redis::Value> {
    let mut command = redis::cmd(args[0]);
    for arg in &args[1..] {
        command.arg(*arg);
    }
    command.query_async(connection).await
}

#[tokio::test]
async fn a_redis_instance_stays_within_its_prefix_and_its_keys_go_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let databases = open(dir.path()).await;
    let tag = suffix();
    let a = databases.create(&format!("ra-{tag}"), "qtcs/redis:2.8", 1, "default").await.unwrap();
    let b = databases.create(&format!("rb-{tag}"), "redis", 1, "default").await.unwrap();
    let (pa, pb) = (a.database(), b.database());
    assert_eq!(pa, format!("mdb_ra_{tag}:"));

    let mut own = redis_as(&a.url()).await.unwrap();
    let mut other = redis_as(&b.url()).await.unwrap();
    run(&mut own, &["SET", &format!("{pa}k"), "v"]).await.unwrap();
    run(&mut other, &["SET", &format!("{pb}k"), "w"]).await.unwrap();
    for denied in [
        vec!["GET".to_owned(), format!("{pb}k")],
        vec!["SET".into(), "unprefixed".into(), "x".into()],
        vec!["FLUSHALL".into()],
        vec!["KEYS".into(), "*".into()],
        vec!["SELECT".into(), "1".into()],
        vec!["CONFIG".into(), "GET".into(), "*".into()],
        vec!["ACL".into(), "LIST".into()],
        vec!["PUBLISH".into(), "news".into(), "x".into()],
    ] {
        let args: Vec<&str> = denied.iter().map(String::as_str).collect();
        let err = run(&mut own, &args).await.unwrap_err();
        assert!(err.to_string().contains("NOPERM") || err.to_string().contains("permission"), "{denied:?}: {err}");
    }
    let wrong = a.url().replace(&a.password, "wrong");
    assert!(redis_as(&wrong).await.is_err(), "a wrong password logged in");

    databases.set_running(&a.id, false).await.unwrap();
    assert!(run(&mut own, &["GET", &format!("{pa}k")]).await.is_err(), "the connection outlived the stop");
    assert!(redis_as(&a.url()).await.is_err(), "a stopped user logged in");
    databases.set_running(&a.id, true).await.unwrap();
    let mut own = redis_as(&a.url()).await.unwrap();
    assert_eq!(run(&mut own, &["GET", &format!("{pa}k")]).await.unwrap(), redis::Value::BulkString(b"v".to_vec()));

    // A Redis restart without an ACL file forgets users; the next start of Updraft sets them again.
    let mut admin = redis_as(REDIS).await.unwrap();
    run(&mut admin, &["ACL", "DELUSER", &b.username]).await.unwrap();
    drop(databases);
    let databases = open(dir.path()).await;
    redis_as(&b.url()).await.unwrap();

    for service in [&a, &b] {
        databases.delete(&service.id).await.unwrap();
        let keys = run(&mut admin, &["EXISTS", &format!("{}k", service.database())]).await.unwrap();
        assert_eq!(keys, redis::Value::Int(0), "{} keys left", service.username);
        assert!(redis_as(&service.url()).await.is_err(), "a deleted user logged in");
    }
}
