//! The test harness itself: real PostgreSQL and MariaDB servers, replicas,
//! and the ways tests break them.

use std::time::Duration;

use mysql_async::prelude::Queryable;
use spar_tests::harness::{MariaDbServer, PgServer};

fn ok<T, E: std::fmt::Display>(r: Result<T, E>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

async fn pg_count(server: &PgServer) -> i64 {
    let client = ok(server.connect("shop").await);
    ok(client.query_one("SELECT count(*) FROM items", &[]).await).get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_replica_serves_what_the_primary_wrote() {
    let primary = ok(PgServer::start().await);
    ok(primary.create_database("shop").await);
    ok(primary.execute("shop", "CREATE TABLE items (id int PRIMARY KEY, name text); INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 100) g").await);
    let replica = ok(primary.replica().await);
    assert!(replica.is_replica() && !primary.is_replica());
    assert_eq!(pg_count(&replica).await, 100);

    ok(primary
        .execute("shop", "INSERT INTO items VALUES (101, 'late')")
        .await);
    ok(primary.wait_caught_up(&replica).await);
    assert_eq!(pg_count(&replica).await, 101);

    // A hot standby refuses writes.
    let e = replica
        .execute("shop", "INSERT INTO items VALUES (102, 'x')")
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        e.contains("read-only transaction") && e.contains("25006"),
        "{e}"
    );

    // Paused replay: the replica keeps serving, with older data.
    ok(replica.pause_replay().await);
    ok(primary
        .execute("shop", "INSERT INTO items VALUES (102, 'while paused')")
        .await);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(pg_count(&replica).await, 101);
    ok(replica.resume_replay().await);
    ok(primary.wait_caught_up(&replica).await);
    assert_eq!(pg_count(&replica).await, 102);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_kill_pause_and_restart() {
    let mut server = ok(PgServer::start().await);
    ok(server.create_database("shop").await);
    ok(server
        .execute(
            "shop",
            "CREATE TABLE items (id int); INSERT INTO items VALUES (1), (2)",
        )
        .await);

    server.pause().unwrap_or_else(|e| panic!("{e}"));
    let hung = tokio::time::timeout(Duration::from_secs(3), server.connect("shop")).await;
    assert!(
        !matches!(hung, Ok(Ok(_))),
        "a paused server must not answer"
    );
    ok(server.resume());
    assert_eq!(pg_count(&server).await, 2);

    ok(server.kill());
    assert!(
        server.connect("shop").await.is_err(),
        "a killed server must refuse connections"
    );
    ok(server.restart().await);
    assert_eq!(pg_count(&server).await, 2, "committed rows survive a kill");

    ok(server.stop());
    assert!(server.connect("shop").await.is_err());
    ok(server.restart().await);
    assert_eq!(pg_count(&server).await, 2);
}

async fn my_count(server: &MariaDbServer) -> i64 {
    let mut conn = ok(server.connect("shop").await);
    let n: Option<i64> = ok(conn.query_first("SELECT count(*) FROM items").await);
    let _ = conn.disconnect().await;
    n.unwrap_or(-1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_replica_serves_what_the_primary_wrote() {
    let primary = ok(MariaDbServer::start().await);
    ok(primary.create_database("shop").await);
    ok(primary.execute("shop", "CREATE TABLE items (id INT PRIMARY KEY, name TEXT); INSERT INTO items VALUES (1, 'a'), (2, 'b')").await);
    let replica = ok(primary.replica().await);
    assert!(replica.is_replica());
    assert_eq!(my_count(&replica).await, 2);

    ok(primary
        .execute("shop", "INSERT INTO items VALUES (3, 'c')")
        .await);
    ok(primary.wait_caught_up(&replica).await);
    assert_eq!(my_count(&replica).await, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_kill_pause_and_restart() {
    let mut server = ok(MariaDbServer::start().await);
    ok(server.create_database("shop").await);
    ok(server
        .execute(
            "shop",
            "CREATE TABLE items (id INT) ENGINE=InnoDB; INSERT INTO items VALUES (1), (2)",
        )
        .await);

    ok(server.pause());
    let hung = tokio::time::timeout(Duration::from_secs(3), server.connect("shop")).await;
    assert!(
        !matches!(hung, Ok(Ok(_))),
        "a paused server must not answer"
    );
    ok(server.resume());
    assert_eq!(my_count(&server).await, 2);

    ok(server.kill());
    assert!(
        server.connect("shop").await.is_err(),
        "a killed server must refuse connections"
    );
    ok(server.restart().await);
    assert_eq!(my_count(&server).await, 2, "committed rows survive a kill");
}
