//! The embedding API over real SQLite and file sources.

use std::sync::Arc;

use datafusion::physical_plan::{collect, displayable};
use futures::StreamExt;
use spar_engine::{
    Engine, EngineError, FileFormatKind, FileSourceConfig, Policy, SourceConfig, SqliteSourceConfig,
};
use spar_tests::{rows, sqlite_db};

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"))
}

const BIG: &str =
    "CREATE TABLE big (id INTEGER PRIMARY KEY, label TEXT NOT NULL, amount DECIMAL(12,2));
    WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100000)
    INSERT INTO big SELECT i, 'row ' || i, i / 4.0 FROM n;";

#[tokio::test]
async fn large_tables_stream_in_many_batches() {
    let dir = tempdir();
    let db = sqlite_db(dir.path(), "big.db", BIG);
    let engine = Engine::builder()
        .with_source(
            "s",
            SourceConfig::Sqlite(SqliteSourceConfig::new([db]).with_batch_size(1000)),
        )
        .with_search_path(["s.main"])
        .build()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let df = engine
        .session()
        .sql("SELECT id, label, amount FROM big")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut stream = df.execute_stream().await.unwrap_or_else(|e| panic!("{e}"));
    let (mut batches, mut total, mut largest) = (0, 0, 0);
    while let Some(batch) = stream.next().await {
        let batch = batch.unwrap_or_else(|e| panic!("{e}"));
        batches += 1;
        total += batch.num_rows();
        largest = largest.max(batch.num_rows());
    }
    assert_eq!(total, 100_000);
    assert!(batches >= 100, "read in {batches} batches");
    assert!(largest <= 1000, "a batch of {largest} rows");
}

#[tokio::test]
async fn statistics_reach_datafusion() {
    let dir = tempdir();
    let db = sqlite_db(dir.path(), "big.db", BIG);
    let engine = Engine::builder()
        .with_source("s", SourceConfig::Sqlite(SqliteSourceConfig::new([db])))
        .build()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let session = engine.session();
    let provider = session
        .context()
        .table_provider("s.main.big")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let stats = provider
        .statistics()
        .unwrap_or_else(|| panic!("no statistics"));
    assert_eq!(
        stats.num_rows,
        datafusion::common::stats::Precision::Exact(100_000)
    );
    assert_eq!(
        stats.column_statistics[0].max_value,
        datafusion::common::stats::Precision::Exact(datafusion::scalar::ScalarValue::Int64(Some(
            100_000
        )))
    );
    // The fragment's operator reports them to DataFusion's physical planner.
    let df = session
        .sql("SELECT id FROM s.main.big")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let plan = df
        .create_physical_plan()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let plan_stats = datafusion::physical_plan::StatisticsContext::new()
        .compute(
            plan.as_ref(),
            &datafusion::physical_plan::StatisticsArgs::new(),
        )
        .map(|s| s.num_rows)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        plan_stats,
        datafusion::common::stats::Precision::Exact(100_000),
        "{}",
        displayable(plan.as_ref()).indent(true)
    );
}

#[tokio::test]
async fn search_path_resolves_and_refuses_ambiguity() {
    let dir = tempdir();
    let a = sqlite_db(
        dir.path(),
        "a.db",
        "CREATE TABLE t (v INTEGER); INSERT INTO t VALUES (1); CREATE TABLE only_a (v INTEGER);",
    );
    let b = sqlite_db(
        dir.path(),
        "b.db",
        "CREATE TABLE t (v INTEGER); INSERT INTO t VALUES (2);",
    );
    let engine = Engine::builder()
        .with_source("a", SourceConfig::Sqlite(SqliteSourceConfig::new([a])))
        .with_source("b", SourceConfig::Sqlite(SqliteSourceConfig::new([b])))
        .with_search_path(["a.main", "b.main"])
        .build()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let session = engine.session();
    assert_eq!(
        rows(&session, "SELECT count(*) FROM only_a").await,
        vec!["0"]
    );
    assert_eq!(rows(&session, "SELECT v FROM b.main.t").await, vec!["2"]);
    let e = session
        .sql("SELECT v FROM t")
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        e.contains("`t` is ambiguous") && e.contains("a.main and b.main"),
        "{e}"
    );
    // A cross-source join.
    assert_eq!(
        rows(&session, "SELECT x.v, y.v FROM a.main.t x, b.main.t y").await,
        vec!["1|2"]
    );
}

#[tokio::test]
async fn a_missing_replica_fails_over_to_the_next() {
    let dir = tempdir();
    let good = sqlite_db(
        dir.path(),
        "good.db",
        "CREATE TABLE t (v INTEGER); INSERT INTO t VALUES (7);",
    );
    let engine = Engine::builder()
        .with_source(
            "s",
            SourceConfig::Sqlite(SqliteSourceConfig::new([good.clone()])),
        )
        .build()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // The primary disappears after start-up: queries go to the second replica.
    let primary = dir.path().join("primary.db");
    std::fs::copy(&good, &primary).unwrap_or_else(|e| panic!("{e}"));
    engine
        .register_source(
            "s",
            &SourceConfig::Sqlite(
                SqliteSourceConfig::new([primary.clone(), good]).with_policy(Policy::PrimaryFirst),
            ),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    std::fs::remove_file(&primary).unwrap_or_else(|e| panic!("{e}"));
    let session = engine.session();
    let df = session
        .sql("SELECT v FROM s.main.t")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let plan = df
        .create_physical_plan()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let batches = collect(Arc::clone(&plan), session.context().task_ctx())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 1);
    let shown =
        datafusion::physical_plan::display::DisplayableExecutionPlan::with_metrics(plan.as_ref())
            .indent(true)
            .to_string();
    assert!(
        shown.contains("replica=sqlite:")
            && shown.contains("good.db")
            && shown.contains("failovers=1"),
        "{shown}"
    );
}

#[tokio::test]
async fn file_sources_read_csv_and_json() {
    let dir = tempdir();
    let csv = dir.path().join("csv");
    std::fs::create_dir_all(csv.join("events")).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(csv.join("people.csv"), "id,name\n1,Ada\n2,Grace\n")
        .unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(csv.join("events/2024.csv"), "id,kind\n1,login\n")
        .unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(csv.join("events/2025.csv"), "id,kind\n2,logout\n")
        .unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(csv.join("notes.txt"), "not a table").unwrap_or_else(|e| panic!("{e}"));
    let json = dir.path().join("json");
    std::fs::create_dir_all(&json).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(
        json.join("tags.json"),
        "{\"id\":1,\"tag\":\"x\"}\n{\"id\":2,\"tag\":\"y\"}\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let engine = Engine::builder()
        .with_source(
            "c",
            SourceConfig::Files(FileSourceConfig::new(
                csv.display().to_string(),
                FileFormatKind::Csv,
            )),
        )
        .with_source(
            "j",
            SourceConfig::Files(FileSourceConfig::new(
                json.display().to_string(),
                FileFormatKind::Json,
            )),
        )
        .with_search_path(["c.main", "j.main"])
        .build()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let session = engine.session();
    assert_eq!(
        rows(&session, "SELECT p.name, e.kind, t.tag FROM people p JOIN events e ON p.id = e.id JOIN tags t ON t.id = p.id ORDER BY p.id").await,
        vec!["Ada|login|x", "Grace|logout|y"]
    );
    let e = session
        .sql("SELECT * FROM notes")
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(e.contains("`notes` not found"), "{e}");
}

#[tokio::test]
async fn sessions_are_read_only() {
    let dir = tempdir();
    let db = sqlite_db(dir.path(), "a.db", "CREATE TABLE t (v INTEGER);");
    let engine = Engine::builder()
        .with_source("s", SourceConfig::Sqlite(SqliteSourceConfig::new([db])))
        .build()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    for sql in [
        "CREATE TABLE x AS SELECT 1",
        "INSERT INTO s.main.t VALUES (1)",
        "EXPLAIN DELETE FROM s.main.t",
        "COPY (SELECT 1) TO '/tmp/x.csv'",
    ] {
        let e = engine.session().sql(sql).await.err();
        assert!(
            matches!(&e, Some(EngineError::DataFusion(_))),
            "{sql}: {e:?}"
        );
        let msg = e.map(|e| e.to_string()).unwrap_or_default();
        assert!(msg.contains("Spar is read-only"), "{sql}: {msg}");
    }
    assert_eq!(
        rows(
            &engine.session(),
            "SET datafusion.execution.batch_size = 100"
        )
        .await
        .len(),
        0
    );
    let e = engine
        .session()
        .sql("SELECT 1; SELECT 2")
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(e.contains("expected one SQL statement, found 2"), "{e}");
}

#[tokio::test]
async fn builder_refuses_bad_settings() {
    let e = Engine::builder()
        .with_search_path(["nowhere"])
        .build()
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(e.contains("search_path[0]"), "{e}");
    let e = Engine::builder()
        .with_source(
            "s",
            SourceConfig::Sqlite(SqliteSourceConfig::new(Vec::<std::path::PathBuf>::new())),
        )
        .build()
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(e.contains("sources.s.replicas"), "{e}");
}

const SHOP: &str = "
CREATE TABLE customer (c_id INTEGER PRIMARY KEY, c_name TEXT, c_region INTEGER);
CREATE TABLE orders (o_id INTEGER PRIMARY KEY, o_cust INTEGER, o_total DECIMAL(10,2), o_date DATE, o_note TEXT);
INSERT INTO customer VALUES (1, 'ann', 1), (2, 'bob', 2), (3, 'Ann', NULL), (4, NULL, 1), (5, 'eve', 3);
INSERT INTO orders VALUES (10, 1, 5.50, '1995-01-02', 'a'), (11, 1, 7.25, '1996-03-04', NULL),
  (12, 2, NULL, '1994-12-31', 'b'), (13, 3, 1.00, NULL, 'c'), (14, 9, 2.00, '1995-06-07', 'd'),
  (15, NULL, 3.00, '1995-06-08', NULL), (16, 4, 3.00, '1993-01-01', 'e');
";

/// Queries whose operators SQLite runs whole (joins, aggregates, DISTINCT,
/// UNION ALL, top-k with NULLs); each must answer exactly as with pushdown
/// off, where DataFusion does everything over plain scans.
const PUSHED: &[&str] = &[
    "SELECT c_name, o_id FROM customer JOIN orders ON c_id = o_cust ORDER BY o_id",
    "SELECT c_id, o_id FROM customer LEFT JOIN orders ON c_id = o_cust ORDER BY c_id, o_id",
    "SELECT c_id, o_id FROM customer RIGHT JOIN orders ON c_id = o_cust ORDER BY o_id, c_id",
    "SELECT c_id, o_id FROM customer FULL JOIN orders ON c_id = o_cust ORDER BY c_id NULLS FIRST, o_id",
    "SELECT c_region, count(*) AS n, min(o_date) AS first, max(o_total) AS top FROM customer JOIN orders ON c_id = o_cust GROUP BY c_region ORDER BY c_region",
    "SELECT c_name, count(DISTINCT o_note) AS notes FROM customer LEFT JOIN orders ON c_id = o_cust GROUP BY c_name ORDER BY c_name NULLS FIRST",
    "SELECT DISTINCT c_region FROM customer ORDER BY c_region DESC",
    "SELECT o_total FROM orders ORDER BY o_total DESC LIMIT 3",
    "SELECT o_total FROM orders ORDER BY o_total ASC NULLS FIRST LIMIT 2 OFFSET 1",
    "SELECT o_id FROM orders WHERE o_date < DATE '1995-06-08' UNION ALL SELECT c_id FROM customer WHERE c_region = 1 ORDER BY 1",
    "SELECT a.c_id, b.c_id FROM customer a JOIN customer b ON a.c_region = b.c_region AND a.c_id < b.c_id ORDER BY 1, 2",
    "SELECT c_name FROM customer WHERE c_id IN (SELECT o_cust FROM orders WHERE o_total > 3) ORDER BY c_name",
    "SELECT count(*) FROM orders JOIN customer ON o_cust = c_id WHERE c_name = 'ann'",
];

#[tokio::test]
async fn pushdown_never_changes_an_answer() {
    let dir = tempdir();
    let db = sqlite_db(dir.path(), "shop.db", SHOP);
    let engine = Engine::builder()
        .with_source("shop", SourceConfig::Sqlite(SqliteSourceConfig::new([db])))
        .with_search_path(["shop.main"])
        .build()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let on = engine.session();
    let off = engine.session();
    rows(&off, "SET spar.pushdown = false").await;
    for sql in PUSHED {
        let expected = rows(&off, sql).await;
        assert!(!expected.is_empty(), "{sql}: no rows to compare");
        assert_eq!(rows(&on, sql).await, expected, "{sql}");
    }
    // The join and the aggregate really ran in SQLite, and not with
    // pushdown off.
    let explain = |session| async move {
        rows(
            session,
            "EXPLAIN SELECT c_region, count(*) FROM customer JOIN orders ON c_id = o_cust GROUP BY c_region",
        )
        .await
        .join("\n")
    };
    let pushed = explain(&on).await;
    assert!(
        pushed.contains("INNER JOIN `main`.`orders`") && pushed.contains("GROUP BY"),
        "{pushed}"
    );
    let local = explain(&off).await;
    assert!(
        !local.contains("JOIN `main`") && local.contains("HashJoin"),
        "{local}"
    );
}

#[tokio::test]
async fn table_functions_are_not_table_names() {
    let dir = tempdir();
    let db = sqlite_db(dir.path(), "s.db", "CREATE TABLE t (x INTEGER);");
    let engine = Engine::builder()
        .with_source("s", SourceConfig::Sqlite(SqliteSourceConfig::new([db])))
        .with_search_path(["s.main"])
        .build()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let session = engine.session();
    assert_eq!(
        rows(
            &session,
            "SELECT count(*), max(value) FROM generate_series(1, 10)"
        )
        .await,
        ["10|10"]
    );
    assert_eq!(
        rows(
            &session,
            "SELECT count(*) FROM range(5) r JOIN t ON t.x = r.value"
        )
        .await,
        ["0"]
    );
}

#[tokio::test]
async fn grants_limit_what_a_session_sees() {
    let dir = tempdir();
    let sales = sqlite_db(
        dir.path(),
        "sales.db",
        "CREATE TABLE orders (id INTEGER); CREATE TABLE secrets (id INTEGER); INSERT INTO orders VALUES (1), (2);",
    );
    let crm = sqlite_db(dir.path(), "crm.db", "CREATE TABLE customers (id INTEGER);");
    let engine = Engine::builder()
        .with_source(
            "sales",
            SourceConfig::Sqlite(SqliteSourceConfig::new([sales])),
        )
        .with_source("crm", SourceConfig::Sqlite(SqliteSourceConfig::new([crm])))
        .with_search_path(["sales.main", "crm.main"])
        .build()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let grants =
        vec![spar_engine::Grant::parse("sales.main.orders").unwrap_or_else(|e| panic!("{e}"))];
    let session = engine
        .session_with(spar_engine::SessionOptions {
            access: spar_engine::Access::grants("ann", grants),
            ..Default::default()
        })
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(rows(&session, "SELECT count(*) FROM orders").await, ["2"]);
    assert_eq!(
        rows(&session, "SELECT table_catalog || '.' || table_name FROM information_schema.tables WHERE table_schema = 'main'").await,
        ["sales.orders"]
    );
    assert_eq!(
        rows(&session, "SHOW TABLES")
            .await
            .iter()
            .filter(|r| r.contains("|main|"))
            .count(),
        1
    );
    for sql in [
        "SELECT * FROM secrets",
        "SELECT * FROM crm.main.customers",
        "SELECT * FROM customers",
    ] {
        let e = session
            .sql(sql)
            .await
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        // Answered as a missing table: the grants reveal nothing beyond.
        assert!(e.starts_with("table `"), "{sql}: {e}");
        assert!(e.contains("not found"), "{sql}: {e}");
        assert!(
            !e.contains("customers (") && !e.contains("crm ("),
            "{sql}: {e}"
        );
    }
    // The same engine's unrestricted sessions still see everything.
    assert_eq!(
        rows(&engine.session(), "SELECT count(*) FROM secrets").await,
        ["0"]
    );
}

#[tokio::test]
async fn system_replicas_shows_every_replica_and_needs_its_own_grant() {
    let dir = tempdir();
    let good = sqlite_db(
        dir.path(),
        "good.db",
        "CREATE TABLE t (v INTEGER); INSERT INTO t VALUES (7);",
    );
    let gone = dir.path().join("gone.db");
    std::fs::copy(&good, &gone).unwrap_or_else(|e| panic!("{e}"));
    let engine = Engine::builder()
        .with_source(
            "s",
            SourceConfig::Sqlite(
                SqliteSourceConfig::new([gone.clone(), good])
                    .with_policy(Policy::PrimaryFirst)
                    .with_settings(spar_engine::ReplicaSettings {
                        circuit_failures: 1,
                        circuit_backoff: std::time::Duration::from_secs(30),
                        ..Default::default()
                    }),
            ),
        )
        .with_search_path(["s.main"])
        .build()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    std::fs::remove_file(&gone).unwrap_or_else(|e| panic!("{e}"));
    let session = engine.session();
    assert_eq!(rows(&session, "SELECT v FROM t").await, ["7"]);
    // One row per replica; the failed one names its error. Two-part and
    // three-part names are the same table.
    let shown = rows(
        &session,
        "SELECT source, replica LIKE '%gone.db' AS first, state, failures > 0, last_error IS NOT NULL, changed_at <= now()
         FROM system.replicas ORDER BY first DESC",
    )
    .await;
    assert_eq!(
        shown,
        [
            "s|true|open|true|true|true",
            "s|false|healthy|false|false|true"
        ]
    );
    assert_eq!(
        rows(&session, "SELECT count(*) FROM system.main.replicas").await,
        ["2"]
    );
    let error = rows(
        &session,
        "SELECT last_error FROM system.replicas WHERE state = 'open'",
    )
    .await;
    assert!(error[0].contains("gone.db"), "{error:?}");

    // `*` is every source's data, not Spar's own state.
    let everything = vec![spar_engine::Grant::everything()];
    let user = engine
        .session_with(spar_engine::SessionOptions {
            access: spar_engine::Access::grants("ann", everything.clone()),
            ..Default::default()
        })
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(rows(&user, "SELECT v FROM t").await, ["7"]);
    for sql in [
        "SELECT * FROM system.replicas",
        "SELECT * FROM system.main.replicas",
    ] {
        let e = user
            .sql(sql)
            .await
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("not found"), "{sql}: {e}");
    }
    assert_eq!(
        rows(
            &user,
            "SELECT count(*) FROM information_schema.tables WHERE table_catalog = 'system'"
        )
        .await,
        ["0"]
    );
    let mut granted = everything;
    granted.push(spar_engine::Grant::parse("system.*").unwrap_or_else(|e| panic!("{e}")));
    let operator = engine
        .session_with(spar_engine::SessionOptions {
            access: spar_engine::Access::grants("ops", granted),
            ..Default::default()
        })
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        rows(&operator, "SELECT count(*) FROM system.replicas").await,
        ["2"]
    );

    // `system` is reserved.
    let e = engine
        .register_source(
            "system",
            &SourceConfig::Sqlite(SqliteSourceConfig::new([dir.path().join("x.db")])),
        )
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(e.contains("`system` cannot name a source"), "{e}");
}

/// A query that takes far longer than the timeouts below (billions of
/// generated rows), and finishes if they do not stop it.
const SLOW: &str = "SELECT count(*) FROM generate_series(1, 3000000000)";

#[tokio::test]
async fn statement_timeout_stops_a_query_in_the_api_and_in_sql() {
    let engine = Engine::builder()
        .build()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let session = engine.session();
    let run = |session: spar_engine::Session, sql: &'static str| async move {
        let df = session.sql(sql).await?;
        df.collect().await.map_err(EngineError::from)
    };
    session.set_statement_timeout(Some(std::time::Duration::from_millis(300)));
    assert_eq!(
        session.statement_timeout(),
        Some(std::time::Duration::from_millis(300))
    );
    let e = run(session.clone(), SLOW)
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        e.contains("ran longer than spar.statement_timeout (300ms)"),
        "{e}"
    );
    // Short queries are unaffected; 0 lifts the limit.
    assert_eq!(rows(&session, "SELECT 1").await, ["1"]);
    assert_eq!(
        rows(&session, "SET spar.statement_timeout = 0").await.len(),
        0
    );
    assert_eq!(session.statement_timeout(), None);
    // PostgreSQL's spelling sets the same thing.
    rows(&session, "SET statement_timeout = '250ms'").await;
    assert_eq!(
        session.statement_timeout(),
        Some(std::time::Duration::from_millis(250))
    );
    let e = run(session.clone(), SLOW)
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(e.contains("(250ms)"), "{e}");
    // A bad value is refused with what is expected.
    let e = run(session.clone(), "SET spar.statement_timeout = 'soon'")
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(e.contains("expected a duration such as 30s"), "{e}");
    // Sessions made with options start with the timeout.
    let timed = engine
        .session_with(spar_engine::SessionOptions {
            statement_timeout: Some(std::time::Duration::from_millis(200)),
            ..Default::default()
        })
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(run(timed, SLOW).await.is_err());
}

#[tokio::test]
async fn with_key_order_scans_are_read_in_key_order_only_when_another_replica_can_resume_them() {
    let dir = tempdir();
    let db = sqlite_db(
        dir.path(),
        "big.db",
        &BIG.replace("id INTEGER PRIMARY KEY", "id INTEGER PRIMARY KEY NOT NULL"),
    );
    let copy = dir.path().join("copy.db");
    std::fs::copy(&db, &copy).unwrap_or_else(|e| panic!("{e}"));
    let small_buffer = spar_engine::ReplicaSettings {
        resume_buffer: 64 << 10,
        resume: spar_engine::Resume::KeyOrder,
        ..Default::default()
    };
    let engine = Engine::builder()
        .with_source(
            "one",
            SourceConfig::Sqlite(
                SqliteSourceConfig::new([db.clone()]).with_settings(small_buffer.clone()),
            ),
        )
        .with_source(
            "two",
            SourceConfig::Sqlite(SqliteSourceConfig::new([db, copy]).with_settings(small_buffer)),
        )
        .build()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let session = engine.session();
    let plan = |source: &str| {
        let session = session.clone();
        let sql = format!("EXPLAIN SELECT id, label FROM {source}.main.big");
        async move { rows(&session, &sql).await.join("\n") }
    };
    let one = plan("one").await;
    let two = plan("two").await;
    assert!(!one.contains("ORDER BY"), "{one}");
    assert!(two.contains("ORDER BY"), "{two}");
    // The default, `resume = "replay"`, reads the plain scan.
    engine
        .register_source(
            "fast",
            &SourceConfig::Sqlite(
                SqliteSourceConfig::new([dir.path().join("big.db"), dir.path().join("copy.db")])
                    .with_settings(spar_engine::ReplicaSettings {
                        resume_buffer: 64 << 10,
                        ..Default::default()
                    }),
            ),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let fast = plan("fast").await;
    assert!(!fast.contains("ORDER BY"), "{fast}");
    // Both read every row.
    for source in ["one", "two"] {
        assert_eq!(
            rows(
                &session,
                &format!("SELECT count(*), sum(id) FROM (SELECT id, label FROM {source}.main.big)")
            )
            .await,
            ["100000|5000050000"]
        );
    }
}

#[tokio::test]
async fn a_file_source_reads_its_next_location_when_one_is_gone() {
    let dir = tempdir();
    let write = |root: &std::path::Path| {
        std::fs::create_dir_all(root.join("events")).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(root.join("people.csv"), "id,name\n1,Ada\n2,Grace\n")
            .unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(root.join("events/2024.csv"), "id,kind\n1,login\n")
            .unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(root.join("events/2025.csv"), "id,kind\n2,logout\n")
            .unwrap_or_else(|e| panic!("{e}"));
    };
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    write(&a);
    write(&b);
    let engine = Engine::builder()
        .with_source(
            "c",
            SourceConfig::Files(
                FileSourceConfig::new(a.display().to_string(), FileFormatKind::Csv)
                    .with_other_locations([b.display().to_string()]),
            ),
        )
        .with_search_path(["c.main"])
        .build()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let session = engine.session();
    let join = "SELECT p.name, e.kind FROM people p JOIN events e ON p.id = e.id ORDER BY p.id";
    assert_eq!(rows(&session, join).await, ["Ada|login", "Grace|logout"]);
    assert_eq!(
        engine.sources()[0].replicas,
        [a.display().to_string(), b.display().to_string()]
    );
    // The first location disappears (an unmounted disk): the same answers,
    // listings and reads from the second.
    std::fs::rename(&a, dir.path().join("moved")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(rows(&session, join).await, ["Ada|login", "Grace|logout"]);
    // And when both are gone, the error names both.
    std::fs::rename(&b, dir.path().join("moved-too")).unwrap_or_else(|e| panic!("{e}"));
    let e = match session.sql(join).await {
        Ok(df) => df.collect().await.err().map(|e| e.to_string()),
        Err(e) => Some(e.to_string()),
    }
    .unwrap_or_default();
    assert!(
        e.contains(&a.display().to_string()) && e.contains(&b.display().to_string()),
        "{e}"
    );
}

#[tokio::test]
async fn subqueries_used_as_values_must_return_a_column() {
    let dir = tempdir();
    let db = sqlite_db(
        dir.path(),
        "t.db",
        "CREATE TABLE t (id INTEGER, amount REAL); INSERT INTO t VALUES (1, 2.0);",
    );
    let engine = Engine::builder()
        .with_source("s", SourceConfig::Sqlite(SqliteSourceConfig::new([db])))
        .with_search_path(["s.main"])
        .build()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let session = engine.session();
    for sql in [
        "SELECT id FROM t WHERE amount > (SELECT FROM t)",
        "EXPLAIN SELECT id FROM t WHERE id IN (SELECT FROM t)",
        "SELECT id FROM t WHERE id = ANY (SELECT FROM t UNION SELECT FROM t)",
    ] {
        let e = session
            .sql(sql)
            .await
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("must return one column"), "{sql}: {e}");
    }
    // EXISTS needs no column, and a query of no column is still a query.
    assert_eq!(
        rows(&session, "SELECT id FROM t WHERE EXISTS (SELECT FROM t)").await,
        ["1"]
    );
}
