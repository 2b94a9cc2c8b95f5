//! Statistics read again: `ANALYZE source.schema.table`, and in the
//! background once they are older than the source's `statistics_ttl`.
//!
//! The tables grow after Spar first read them, on real SQLite files and a
//! real PostgreSQL server; what the planner then knows (the table's
//! statistics as DataFusion reads them) must follow.

use std::time::Duration;

use datafusion::catalog::TableProvider;
use datafusion::common::stats::Precision;
use spar_engine::{
    Access, Engine, Grant, ServerSourceConfig, Session, SessionOptions, SourceConfig,
    SqliteSourceConfig,
};
use spar_tests::harness::PgServer;

fn ok<T, E: std::fmt::Display>(r: Result<T, E>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

/// The row count the planner has for `source.schema.table`.
async fn planned_rows(session: &Session, name: &str) -> Precision<usize> {
    let provider = ok(session.context().table_provider(name).await);
    let table = provider
        .as_ref()
        .downcast_ref::<spar_planner::SourceTable>()
        .unwrap_or_else(|| panic!("{name} is not a SourceTable"));
    table.statistics().map_or(Precision::Absent, |s| s.num_rows)
}

fn insert(path: &std::path::Path, from: i64, to: i64) {
    let conn = ok(rusqlite::Connection::open(path));
    ok(conn.execute_batch(&format!(
        "WITH RECURSIVE n(i) AS (SELECT {from} UNION ALL SELECT i + 1 FROM n WHERE i < {to})
         INSERT INTO t SELECT i, i % 7 FROM n;"
    )));
}

fn lite_engine(dir: &std::path::Path, ttl: Duration) -> (std::path::PathBuf, SqliteSourceConfig) {
    let path = spar_tests::sqlite_db(
        dir,
        "s.db",
        "CREATE TABLE t (id INTEGER PRIMARY KEY, k INT); INSERT INTO t VALUES (1, 1), (2, 2), (3, 3);",
    );
    let mut config = SqliteSourceConfig::new([path.clone()]);
    config.settings.statistics_ttl = ttl;
    (path, config)
}

#[tokio::test]
async fn analyze_reads_a_sqlite_tables_statistics_again() {
    let dir = ok(tempfile::tempdir());
    let (path, config) = lite_engine(dir.path(), Duration::from_secs(3600));
    let engine = ok(Engine::builder()
        .with_source("lite", SourceConfig::Sqlite(config))
        .with_search_path(["lite.main"])
        .build()
        .await);
    let session = engine.session();
    assert_eq!(
        planned_rows(&session, "lite.main.t").await,
        Precision::Exact(3)
    );
    insert(&path, 4, 1000);
    // Within the TTL, a query does not read them again.
    spar_tests::rows(&session, "SELECT count(*) FROM lite.main.t").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        planned_rows(&session, "lite.main.t").await,
        Precision::Exact(3)
    );

    // A bare name, resolved through the search path as in queries.
    let answer = spar_tests::rows(&session, "ANALYZE t").await;
    assert_eq!(answer.len(), 1, "{answer:?}");
    let cells: Vec<&str> = answer[0].split('|').collect();
    assert_eq!(
        &cells[..4],
        &["lite", "main.t", "1000", "true"],
        "{answer:?}"
    );
    assert!(cells[5].contains("s.db"), "{answer:?}");
    // Every session's plans see them, not only the one that asked.
    assert_eq!(
        planned_rows(&engine.session(), "lite.main.t").await,
        Precision::Exact(1000)
    );
}

#[tokio::test]
async fn stale_statistics_are_read_again_in_the_background() {
    let dir = ok(tempfile::tempdir());
    let (path, config) = lite_engine(dir.path(), Duration::from_millis(300));
    let engine = ok(Engine::builder()
        .with_source("lite", SourceConfig::Sqlite(config))
        .build()
        .await);
    let session = engine.session();
    insert(&path, 4, 50);
    tokio::time::sleep(Duration::from_millis(400)).await;
    // This query plans with what it has and starts the read.
    spar_tests::rows(&session, "SELECT count(*) FROM lite.main.t WHERE k = 1").await;
    let mut waited = Duration::ZERO;
    while planned_rows(&session, "lite.main.t").await != Precision::Exact(50) {
        assert!(
            waited < Duration::from_secs(10),
            "the statistics were not read again: {:?}",
            planned_rows(&session, "lite.main.t").await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
        waited += Duration::from_millis(50);
    }
}

#[tokio::test]
async fn analyze_refuses_what_it_cannot_analyze() {
    let dir = ok(tempfile::tempdir());
    let (_path, config) = lite_engine(dir.path(), Duration::from_secs(3600));
    let files = dir.path().join("files");
    ok(std::fs::create_dir_all(&files));
    ok(std::fs::write(files.join("f.csv"), "a,b\n1,2\n"));
    let engine = ok(Engine::builder()
        .with_source("lite", SourceConfig::Sqlite(config))
        .with_source(
            "files",
            SourceConfig::Files(spar_engine::FileSourceConfig::new(
                files.display().to_string(),
                spar_engine::FileFormatKind::Csv,
            )),
        )
        .build()
        .await);
    let session = engine.session();
    for (sql, expected) in [
        ("ANALYZE", "ANALYZE needs a table"),
        (
            "ANALYZE lite.main.t (k)",
            "takes a table name and nothing else",
        ),
        ("ANALYZE lite.main.nope", "nope"),
        (
            "ANALYZE files.main.f",
            "is not a table of a database source",
        ),
        (
            "ANALYZE system.replicas",
            "is not a table of a database source",
        ),
    ] {
        let error = match session.sql(sql).await {
            Ok(_) => panic!("{sql} was accepted"),
            Err(e) => e.to_string(),
        };
        assert!(error.contains(expected), "{sql}: {error}");
    }
    // A table outside the session's grants is answered as one that does
    // not exist.
    let granted = ok(engine.session_with(SessionOptions {
        access: Access::grants("ann", vec![ok(Grant::parse("files"))]),
        ..SessionOptions::default()
    }));
    let hidden = match granted.sql("ANALYZE lite.main.t").await {
        Ok(_) => panic!("a table outside the grants was analyzed"),
        Err(e) => e.to_string(),
    };
    let missing = match granted.sql("ANALYZE lite.main.nope").await {
        Ok(_) => panic!("a missing table was analyzed"),
        Err(e) => e.to_string(),
    };
    assert_eq!(
        hidden.replace("lite.main.t", "X"),
        missing.replace("lite.main.nope", "X")
    );
}

/// The `statistics=` note of the plan's fragment line, if any.
async fn explain_note(session: &Session, sql: &str) -> Option<String> {
    let plan = spar_tests::rows(session, &format!("EXPLAIN {sql}"))
        .await
        .join("\n");
    let line = plan
        .lines()
        .find(|l| l.contains("FragmentExec"))
        .unwrap_or_else(|| panic!("no fragment: {plan}"));
    line.split_once(", statistics=")
        .map(|(_, rest)| rest.split(", sql=").next().unwrap_or(rest).to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn analyze_reads_what_postgresql_analyzed() {
    let mut pg = ok(PgServer::start().await);
    ok(pg.create_database("st").await);
    ok(pg
        .execute(
            "st",
            "CREATE TABLE t (id INT PRIMARY KEY, k INT);
             INSERT INTO t SELECT i, i % 7 FROM generate_series(1, 100) i;
             ANALYZE t;
             CREATE TABLE never (id INT);
             INSERT INTO never VALUES (1);",
        )
        .await);
    let mut config = ServerSourceConfig::new([pg.url("st")]);
    config.settings.statistics_ttl = Duration::from_secs(2);
    let engine = ok(Engine::builder()
        .with_source("pg", SourceConfig::Postgres(config))
        .build()
        .await);
    let session = engine.session();
    // A table PostgreSQL never analyzed has no row count, and EXPLAIN says
    // so; an analyzed one gets no note.
    assert_eq!(
        explain_note(&session, "SELECT * FROM pg.public.never").await,
        Some("missing for public.never".to_string())
    );
    assert_eq!(
        explain_note(&session, "SELECT * FROM pg.public.t WHERE k = 1").await,
        None
    );
    assert_eq!(
        planned_rows(&session, "pg.public.t").await.get_value(),
        Some(&100)
    );
    ok(pg
        .execute(
            "st",
            "INSERT INTO t SELECT i, i % 7 FROM generate_series(101, 5000) i; ANALYZE t;",
        )
        .await);
    let answer = spar_tests::rows(&session, "ANALYZE pg.public.t").await;
    let cells: Vec<&str> = answer[0].split('|').collect();
    assert_eq!(&cells[..3], &["pg", "public.t", "5000"], "{answer:?}");
    // PostgreSQL's counts are estimates; the distinct counts of both columns
    // come from pg_stats.
    assert_eq!(cells[3], "false", "{answer:?}");
    assert_eq!(cells[4], "2", "{answer:?}");
    assert_eq!(
        planned_rows(&session, "pg.public.t").await.get_value(),
        Some(&5000)
    );

    // Past the TTL with the server gone, the statistics cannot be read
    // again: plans go on with the old ones, and EXPLAIN says how old.
    ok(pg.stop());
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let note = explain_note(&session, "SELECT * FROM pg.public.t").await;
    assert!(
        note.as_deref()
            .is_some_and(|n| n.starts_with("read 2s ago for public.t")
                || n.starts_with("read 3s ago for public.t")),
        "{note:?}"
    );
}
