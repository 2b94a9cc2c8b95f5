//! The MySQL/MariaDB connector against real MariaDB servers started by the
//! harness.

use std::sync::Arc;
use std::time::Duration;

use arrow::array::AsArray;
use arrow::datatypes::{DataType, Field, Schema};
use futures::StreamExt;
use spar_engine::connectors::mysql::MySqlConnector;
use spar_engine::connectors::{Connector, ReplicaRole, TableName};
use spar_engine::{Engine, ServerSourceConfig, SourceConfig};
use spar_tests::harness::MariaDbServer;
use spar_tests::rows;

fn ok<T, E: std::fmt::Display>(r: Result<T, E>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

async fn engine(urls: Vec<String>) -> Engine {
    ok(Engine::builder()
        .with_source("my", SourceConfig::MySql(ServerSourceConfig::new(urls)))
        .with_search_path(["my.shop"])
        .build()
        .await)
}

const TYPES: &str = r#"
SET SESSION sql_mode = '';
CREATE TABLE types (
  id INT PRIMARY KEY, flag TINYINT(1), ti TINYINT, tu TINYINT UNSIGNED, si SMALLINT, su SMALLINT UNSIGNED,
  mi MEDIUMINT, i INT, iu INT UNSIGNED, bi BIGINT, bu BIGINT UNSIGNED,
  d15 DECIMAL(15,2), d38 DECIMAL(38,0), d65 DECIMAL(65,30), f FLOAT, db DOUBLE,
  c CHAR(5), vc VARCHAR(50), tx TEXT, bn BINARY(3), vb VARBINARY(10), bl LONGBLOB,
  dt DATE, dtm DATETIME(6), ts TIMESTAMP(3) NULL, tm TIME(6), yr YEAR, js JSON,
  en ENUM('small','large'), st SET('a','b','c'), bt BIT(10)
) CHARACTER SET utf8mb4;
INSERT INTO types VALUES (
  1, 1, -128, 255, -32768, 65535, -8388608, -2147483648, 4294967295, -9223372036854775808, 18446744073709551615,
  -1234567890123.45, 99999999999999999999999999999999999999, 12345678901234567890123456789012345.123456789012345678901234567890, 1.5, -2.25e-300,
  'ab', 'ümlaut 😀', '', 'xyz', 'a\0b', REPEAT('z', 2097152),
  '1000-01-01', '1969-07-20 20:17:40.123456', '2038-01-19 03:14:07.5', '-838:59:59.000000', 1901, '{"a": [1, 2]}',
  'large', 'a,c', b'1000000001'
), (
  2, 0, 127, 0, 32767, 0, 8388607, 2147483647, 0, 9223372036854775807, 0,
  0, -99999999999999999999999999999999999999, 0, 0, 0,
  '', '', 'it''s \\ fine', '', '', '',
  '0000-00-00', '0000-00-00 00:00:00', NULL, '00:00:00', 2155, '[]',
  'small', '', b'0'
), (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
    NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_type_round_trips() {
    let server = ok(MariaDbServer::start().await);
    ok(server.create_database("shop").await);
    ok(server.execute("shop", TYPES).await);
    let spar = engine(vec![server.url("shop")]).await;
    let session = spar.session();

    let types = ok(session.sql("SELECT * FROM types").await)
        .schema()
        .clone();
    let type_of = |c: &str| {
        types
            .field_with_unqualified_name(c)
            .map(|f| f.data_type().to_string())
            .unwrap_or_default()
    };
    assert_eq!(type_of("flag"), "Boolean");
    assert_eq!(type_of("bu"), "UInt64");
    assert_eq!(type_of("mi"), "Int32");
    assert_eq!(type_of("d15"), "Decimal128(15, 2)");
    assert_eq!(type_of("d65"), "Utf8");
    assert_eq!(type_of("ts"), r#"Timestamp(ms, "UTC")"#.replace("ms", "µs"));
    assert_eq!(type_of("tm"), "Duration(µs)");
    assert_eq!(type_of("bt"), "UInt64");

    let got = rows(&session, "SELECT id, flag, ti, tu, si, su, mi, i, iu, bi, bu, d15, d38, d65, f, db, c, vc, tx, bn, vb, dt, dtm, ts, tm, yr, js, en, st, bt FROM types ORDER BY id").await;
    let expected = [
        "1|true|-128|255|-32768|65535|-8388608|-2147483648|4294967295|-9223372036854775808|18446744073709551615|\
         -1234567890123.45|99999999999999999999999999999999999999|12345678901234567890123456789012345.123456789012345678901234567890|1.5|-2.25e-300|\
         ab|ümlaut 😀||78797a|610062|1000-01-01|1969-07-20T20:17:40.123456|2038-01-19T03:14:07.500Z|-PT3020399S|1901|{\"a\": [1, 2]}|large|a,c|513",
        "2|false|127|0|32767|0|8388607|2147483647|0|9223372036854775807|0|\
         0.00|-99999999999999999999999999999999999999|0.000000000000000000000000000000|0.0|0.0|\
         ||it's \\ fine|000000||NULL|NULL|NULL|P0D|2155|[]|small||0",
        "3|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL",
    ];
    for (got, expected) in got.iter().zip(expected) {
        assert_eq!(got, expected);
    }
    assert_eq!(got.len(), 3);

    let blobs = ok(ok(session.sql("SELECT bl FROM types WHERE id = 1").await)
        .collect()
        .await);
    let blob = blobs
        .first()
        .map(|b| b.column(0).as_binary::<i32>().value(0).len())
        .unwrap_or(0);
    assert_eq!(blob, 2 * 1024 * 1024);

    // Numeric filters and limits reach MariaDB; string comparisons too, over
    // the strings' UTF-8 bytes.
    let plan = rows(
        &session,
        "EXPLAIN SELECT id FROM types WHERE bi > 0 AND vc = 'x' LIMIT 1",
    )
    .await
    .join("\n");
    assert!(
        plan.contains("FROM `shop`.`types` WHERE ((`types`.`bi` > 0) AND")
            && plan.contains("LIMIT 1"),
        "{plan}"
    );
    assert!(!plan.contains("`vc` = 'x'"), "{plan}");
    assert!(
        plan.contains("CAST(CONVERT(`types`.`vc` USING utf8mb4) AS BINARY) = CAST(CONVERT('x' USING utf8mb4) AS BINARY)"),
        "{plan}"
    );
    // Every kind of column read as text compares at the source as the text
    // Spar reads: a wide decimal, JSON, ENUM, SET, CHAR; pushed or not.
    let text_kinds = "SELECT id FROM types WHERE d65 = '0.000000000000000000000000000000' \
                      OR js = '[]' OR en = 'large' OR st = 'a,c' OR c = 'ab' OR tx > 'it' ORDER BY id";
    assert_eq!(rows(&session, text_kinds).await, vec!["1", "2"]);
    assert!(rows(&session, &format!("EXPLAIN {text_kinds}"))
        .await
        .join("\n")
        .contains("CAST(CONVERT(`types`.`en` USING utf8mb4) AS BINARY)"));
    for one in [
        "d65 = '0.000000000000000000000000000000'",
        "js = '[]'",
        "en = 'small'",
        "st = ''",
        "c = ''",
        "tx > 'it'",
    ] {
        assert_eq!(
            rows(&session, &format!("SELECT id FROM types WHERE {one}")).await,
            vec!["2"],
            "{one}"
        );
    }
    // 'a' = 'A ' in MariaDB's default collation, not in Spar.
    ok(server
        .execute(
            "shop",
            "CREATE TABLE words (w VARCHAR(10), v VARCHAR(10)); \
             INSERT INTO words VALUES ('a', 'a'), ('A ', 'a'), ('b', 'B')",
        )
        .await);
    let fresh = engine(vec![server.url("shop")]).await;
    assert_eq!(
        rows(&fresh.session(), "SELECT w FROM words WHERE w = 'a'").await,
        vec!["a"]
    );
    // Column against column too.
    assert_eq!(
        rows(&fresh.session(), "SELECT w FROM words WHERE w = v").await,
        vec!["a"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statistics_indexes_streaming_and_errors() {
    let server = ok(MariaDbServer::start().await);
    ok(server.create_database("shop").await);
    ok(server
        .execute(
            "shop",
            "CREATE TABLE orders (o_orderkey BIGINT PRIMARY KEY, o_custkey BIGINT NOT NULL, o_comment VARCHAR(100), \
               KEY orders_cust (o_custkey, o_comment), UNIQUE KEY orders_comment (o_comment(10)));
             INSERT INTO orders SELECT seq, seq % 100, CONCAT('c', seq) FROM seq_1_to_50000;
             ANALYZE TABLE orders;",
        )
        .await);
    let c = ok(MySqlConnector::new(&server.url("shop"))).with_batch_size(1000);
    assert_eq!(ok(c.list_schemas().await), vec!["shop".to_string()]);
    let t = TableName::new("shop", "orders");
    let indexes = ok(c.indexes(&t).await);
    let find = |n: &str| {
        indexes
            .iter()
            .find(|i| i.name == n)
            .cloned()
            .unwrap_or_else(|| panic!("index {n}: {indexes:?}"))
    };
    assert!(
        find("PRIMARY").primary
            && find("PRIMARY").unique
            && find("PRIMARY").columns == vec!["o_orderkey".to_string()]
    );
    assert_eq!(
        find("orders_cust").columns,
        vec!["o_custkey".to_string(), "o_comment".to_string()]
    );
    assert!(!find("orders_cust").unique);
    assert!(
        find("orders_comment").unique && find("orders_comment").expression,
        "a prefix index"
    );
    let schema = ok(c.table_schema(&t).await);
    let stats = ok(c.table_statistics(&t, &schema).await);
    use datafusion::common::stats::Precision;
    let rows_estimate = stats.row_count.get_value().copied().unwrap_or(0);
    assert!(
        (40_000..=60_000).contains(&rows_estimate),
        "{:?}",
        stats.row_count
    );
    assert!(
        matches!(stats.columns[0].distinct_count, Precision::Inexact(n) if n > 40_000),
        "{:?}",
        stats.columns[0]
    );

    // Streaming in bounded batches.
    let schema = Arc::new(Schema::new(vec![Field::new("k", DataType::Int64, true)]));
    let mut stream = ok(c
        .execute(
            "SELECT o_orderkey FROM orders ORDER BY o_orderkey",
            Arc::clone(&schema),
        )
        .await);
    let (mut batches, mut total) = (0, 0);
    while let Some(batch) = stream.next().await {
        let batch = ok(batch);
        assert!(batch.num_rows() <= 1000);
        total += batch.num_rows();
        batches += 1;
    }
    assert_eq!((total, batches), (50_000, 50));

    // Abandoned streams are killed on the server.
    for _ in 0..5 {
        let mut stream = ok(c
            .execute(
                "SELECT a.o_orderkey FROM orders a, orders b",
                Arc::clone(&schema),
            )
            .await);
        assert!(stream.next().await.is_some());
    }
    let mut conn = ok(server.connect("").await);
    use mysql_async::prelude::Queryable;
    let mut running = Vec::new();
    for _ in 0..100 {
        running = ok(conn
            .query::<(u64, String, String), _>(
                "SELECT ID, COMMAND, COALESCE(STATE, '') FROM information_schema.PROCESSLIST WHERE INFO LIKE 'SELECT a.o_orderkey%'",
            )
            .await);
        if running.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        running.is_empty(),
        "abandoned queries are killed: {running:?}"
    );

    // Server errors carry the message and the error number.
    let e = c
        .execute("SELECT nope FROM orders", Arc::clone(&schema))
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        e.contains("Unknown column 'nope'") && e.contains("1054"),
        "{e}"
    );
    let port = server.port();
    drop(server);
    let engine = ok(Engine::builder()
        .with_source(
            "my",
            SourceConfig::MySql(ServerSourceConfig::new([format!(
                "mysql://spar:hunter2@127.0.0.1:{port}/shop"
            )])),
        )
        .build()
        .await);
    let e = engine
        .session()
        .sql("SELECT * FROM my.shop.items")
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        e.contains(&format!("127.0.0.1:{port}/shop")) && !e.contains("hunter2"),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_report_their_role_and_serve_after_the_primary_dies() {
    let mut primary = ok(MariaDbServer::start().await);
    ok(primary.create_database("shop").await);
    ok(primary
        .execute(
            "shop",
            "CREATE TABLE t (v INT); INSERT INTO t VALUES (1), (2), (3)",
        )
        .await);
    let replica = ok(primary.replica().await);
    let status = ok(ok(MySqlConnector::new(&replica.url("shop")))
        .replica_status()
        .await);
    assert_eq!(status.role, ReplicaRole::Replica);
    // Seconds_Behind_Master compares the last applied event's timestamp with
    // the clock, so a caught-up replica may still report a second or two.
    assert!(
        status.lag.is_some_and(|l| l < Duration::from_secs(60)),
        "{:?}",
        status.lag
    );
    assert_eq!(
        ok(ok(MySqlConnector::new(&primary.url("shop")))
            .replica_status()
            .await)
        .role,
        ReplicaRole::Primary
    );

    let engine = engine(vec![primary.url("shop"), replica.url("shop")]).await;
    ok(primary.kill());
    assert_eq!(
        rows(&engine.session(), "SELECT sum(v) FROM t").await,
        vec!["6"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn giving_up_before_the_first_row_kills_the_query() {
    use mysql_async::prelude::Queryable;
    let server = ok(MariaDbServer::start().await);
    ok(server.create_database("slow").await);
    ok(server.execute("slow", "CREATE TABLE t (x INT)").await);
    ok(server
        .execute("slow", "INSERT INTO t SELECT seq FROM seq_1_to_2000")
        .await);
    let engine = engine(vec![server.url("slow")]).await;
    // Pushed whole: MariaDB sends nothing until it has counted 8e9 rows.
    let sql = "SELECT count(*) FROM my.slow.t a CROSS JOIN my.slow.t b CROSS JOIN my.slow.t c";
    let mut stream = ok(ok(engine.session().sql(sql).await).execute_stream().await);
    let waited = tokio::time::timeout(Duration::from_millis(1500), stream.next()).await;
    assert!(
        waited.is_err(),
        "the query finished too soon to test anything"
    );
    let mut conn = ok(server.connect("slow").await);
    let count_running = "SELECT count(*) FROM information_schema.processlist \
                         WHERE info LIKE '%CROSS JOIN%' AND id <> connection_id()";
    // The pattern finds the query while it runs, so its vanishing below
    // means the query stopped.
    assert_eq!(
        ok(conn.query_first::<i64, _>(count_running).await),
        Some(1),
        "the running query is not seen"
    );
    drop(stream);
    let mut running = None;
    for _ in 0..50 {
        running = ok(conn.query_first::<i64, _>(count_running).await);
        if running == Some(0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(running, Some(0), "MariaDB still runs the abandoned query");
}
