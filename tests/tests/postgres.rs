//! The PostgreSQL connector against real servers started by the harness.

use std::sync::Arc;
use std::time::Duration;

use arrow::array::AsArray;
use arrow::datatypes::{DataType, Field, Schema};
use futures::StreamExt;
use spar_engine::connectors::postgres::PostgresConnector;
use spar_engine::connectors::{Connector, ReplicaRole, TableName};
use spar_engine::{Engine, ServerSourceConfig, SourceConfig};
use spar_tests::harness::PgServer;
use spar_tests::rows;

fn ok<T, E: std::fmt::Display>(r: Result<T, E>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

async fn engine(urls: Vec<String>) -> Engine {
    ok(Engine::builder()
        .with_source("pg", SourceConfig::Postgres(ServerSourceConfig::new(urls)))
        .with_search_path(["pg.public"])
        .build()
        .await)
}

const TYPES: &str = r#"
CREATE EXTENSION citext;
CREATE TYPE mood AS ENUM ('sad', 'happy');
CREATE DOMAIN positive AS int4 CHECK (VALUE > 0);
CREATE TABLE types (
  id int4 PRIMARY KEY, b bool, i2 int2, i4 int4, i8 int8, f4 float4, f8 float8,
  n38 numeric(38,0), n15 numeric(15,2), nu numeric, n50 numeric(50,10),
  t text, vc varchar(20), ch char(5), nm name, ci citext,
  by bytea, d_old date, d_new date, tm time, ts timestamp, tstz timestamptz, iv interval,
  u uuid, js json, jb jsonb, m mood, dom positive, ia int4[], ta text[], ip inet
);
INSERT INTO types VALUES (
  1, true, -32768, 2147483647, -9223372036854775808, 1.5, -2.25e-300,
  99999999999999999999999999999999999999, -1234567890123.45, 3.14159, 12345678901234567890123456789012345678.0123456789,
  '', 'ümlaut 😀', 'ab', 'pg_name', 'MiXeD',
  '\x00ff10', '1900-01-01', '2100-12-31', '23:59:59.999999', '1969-07-20 20:17:40.123456', '2038-01-19 03:14:08.5+02',
  '1 year 2 mons 3 days 04:05:06.789',
  'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{"a": [1, 2]}', '{"b": true}', 'happy', 7, '{1,NULL,3}', '{"x","",NULL}', '192.168.0.1/24'
), (
  2, false, 32767, -2147483648, 9223372036854775807, 'NaN', 'Infinity',
  -99999999999999999999999999999999999999, 0, -0.0000000001, NULL,
  'quote '' and backslash \', '', '', '', '',
  '', '1969-12-31', '2038-01-20', '00:00:00', '2262-04-11 23:47:16.854775', '1901-12-13 20:45:52-08',
  '-1 days -00:00:00.000001',
  '00000000-0000-0000-0000-000000000000', '[]', '{}', 'sad', 1, '{}', '{}', '::1'
), (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
    NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
CREATE TABLE blobs (id int PRIMARY KEY, data bytea);
INSERT INTO blobs SELECT 1, decode(repeat('ab', 4 * 1024 * 1024), 'hex');
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_type_round_trips() {
    let server = ok(PgServer::start().await);
    ok(server.create_database("shop").await);
    ok(server.execute("shop", TYPES).await);
    let engine = engine(vec![server.url("shop")]).await;
    let session = engine.session();

    let types = ok(session.sql("SELECT * FROM types").await)
        .schema()
        .clone();
    let type_of = |c: &str| {
        types
            .field_with_unqualified_name(c)
            .map(|f| f.data_type().to_string())
            .unwrap_or_default()
    };
    assert_eq!(type_of("n38"), "Decimal128(38, 0)");
    assert_eq!(type_of("n15"), "Decimal128(15, 2)");
    assert_eq!(type_of("nu"), "Decimal128(38, 10)");
    assert_eq!(type_of("n50"), "Utf8");
    assert_eq!(type_of("tstz"), r#"Timestamp(µs, "UTC")"#);
    assert_eq!(type_of("iv"), "Interval(MonthDayNano)");
    assert_eq!(type_of("ia"), "List(Int32)");
    assert_eq!(type_of("dom"), "Int32");

    let got = rows(&session, "SELECT * FROM types ORDER BY id").await;
    let expected = [
        "1|true|-32768|2147483647|-9223372036854775808|1.5|-2.25e-300|99999999999999999999999999999999999999|-1234567890123.45|3.1415900000|12345678901234567890123456789012345678.0123456789|\
         |ümlaut 😀|ab|pg_name|MiXeD|00ff10|1900-01-01|2100-12-31|23:59:59.999999|1969-07-20T20:17:40.123456|2038-01-19T01:14:08.500Z|\
         14 mons 3 days 4 hours 5 mins 6.789000000 secs|a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11|{\"a\": [1, 2]}|{\"b\": true}|happy|7|[1, NULL, 3]|[x, , NULL]|192.168.0.1/24",
        "2|false|32767|-2147483648|9223372036854775807|NaN|inf|-99999999999999999999999999999999999999|0.00|-0.0000000001|NULL|\
         quote ' and backslash \\|||||\
         |1969-12-31|2038-01-20|00:00:00|2262-04-11T23:47:16.854775|1901-12-14T04:45:52Z|\
         -1 days -0.000001000 secs|00000000-0000-0000-0000-000000000000|[]|{}|sad|1|[]|[]|::1/128",
        "3|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL",
    ];
    for (got, expected) in got.iter().zip(expected) {
        assert_eq!(got, expected);
    }
    assert_eq!(got.len(), 3);

    // A 4 MiB bytea arrives whole.
    let blobs = ok(ok(session.sql("SELECT data FROM blobs").await)
        .collect()
        .await);
    let data = blobs
        .first()
        .map(|b| b.column(0).as_binary::<i32>().value(0).to_vec())
        .unwrap_or_default();
    assert_eq!(data.len(), 4 * 1024 * 1024);
    assert!(data.iter().all(|b| *b == 0xab));

    // Filters and limits reach PostgreSQL, spelled for it.
    let plan = rows(
        &session,
        "EXPLAIN SELECT id FROM types WHERE i4 > 0 AND d_old < DATE '2000-01-01' LIMIT 1",
    )
    .await
    .join("\n");
    assert!(
        plan.contains(r#"FROM "public"."types" WHERE (("types"."i4" > 0) AND ("types"."d_old" < CAST('2000-01-01' AS DATE))) LIMIT 1"#),
        "{plan}"
    );
    assert_eq!(
        rows(
            &session,
            "SELECT id FROM types WHERE i4 > 0 AND d_old < DATE '2000-01-01' LIMIT 1"
        )
        .await,
        vec!["1"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_that_do_not_fit_are_errors() {
    let server = ok(PgServer::start().await);
    ok(server.create_database("shop").await);
    ok(server.execute("shop", "CREATE TABLE m (x numeric, d date); INSERT INTO m VALUES (1.00000000001, '2020-01-01'), (1, 'infinity')").await);
    let session = engine(vec![server.url("shop")]).await.session();
    let e = ok(session.sql("SELECT x FROM m").await)
        .collect()
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        e.contains("column `x`")
            && e.contains("row 1")
            && e.contains("1.00000000001")
            && e.contains("Decimal128(38, 10)"),
        "{e}"
    );
    let e = ok(session.sql("SELECT d FROM m").await)
        .collect()
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        e.contains("column `d`") && e.contains("row 2") && e.contains("infinite"),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statistics_and_indexes_are_discovered() {
    let server = ok(PgServer::start().await);
    ok(server.create_database("shop").await);
    ok(server
        .execute(
            "shop",
            "CREATE TABLE orders (o_orderkey int8 PRIMARY KEY, o_custkey int8 NOT NULL, o_status char(1), o_comment text, o_total numeric(15,2));
             INSERT INTO orders SELECT g, g % 100, CASE WHEN g % 2 = 0 THEN 'F' ELSE NULL END, 'c' || g, g * 1.5 FROM generate_series(1, 10000) g;
             CREATE INDEX orders_cust ON orders (o_custkey, o_status);
             CREATE UNIQUE INDEX orders_comment ON orders (o_comment) WHERE o_status = 'F';
             CREATE INDEX orders_lower ON orders (lower(o_comment));
             CREATE VIEW big_orders AS SELECT o_orderkey FROM orders WHERE o_total > 100;
             ANALYZE orders;",
        )
        .await);
    let c = ok(PostgresConnector::new(&server.url("shop")));
    assert_eq!(ok(c.list_schemas().await), vec!["public".to_string()]);
    let tables = ok(c.list_tables("public").await);
    assert_eq!(
        tables.iter().map(|(t, _)| t.as_str()).collect::<Vec<_>>(),
        vec!["big_orders", "orders"]
    );
    let t = TableName::new("public", "orders");
    let schema = ok(c.table_schema(&t).await);
    assert!(!schema.field(0).is_nullable() && schema.field(2).is_nullable());

    let indexes = ok(c.indexes(&t).await);
    let find = |n: &str| {
        indexes
            .iter()
            .find(|i| i.name == n)
            .cloned()
            .unwrap_or_else(|| panic!("index {n}: {indexes:?}"))
    };
    let pk = find("orders_pkey");
    assert!(pk.primary && pk.unique && pk.columns == vec!["o_orderkey".to_string()]);
    let cust = find("orders_cust");
    assert!(!cust.unique && cust.columns == vec!["o_custkey".to_string(), "o_status".to_string()]);
    assert!(find("orders_comment").partial && find("orders_comment").unique);
    assert!(find("orders_lower").expression);

    let stats = ok(c.table_statistics(&t, &schema).await);
    use datafusion::common::stats::Precision;
    use datafusion::scalar::ScalarValue;
    assert_eq!(stats.row_count, Precision::Inexact(10_000));
    assert_eq!(stats.columns[1].distinct_count, Precision::Inexact(100));
    assert_eq!(stats.columns[0].distinct_count, Precision::Inexact(10_000));
    assert_eq!(stats.columns[2].null_count, Precision::Inexact(5_000));
    assert_eq!(
        stats.columns[0].min,
        Precision::Inexact(ScalarValue::Int64(Some(1)))
    );
    assert_eq!(
        stats.columns[0].max,
        Precision::Inexact(ScalarValue::Int64(Some(10_000)))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_stream_in_bounded_batches() {
    let server = ok(PgServer::start().await);
    ok(server.create_database("shop").await);
    ok(server.execute("shop", "CREATE TABLE big AS SELECT g AS id, repeat('x', 100) AS pad FROM generate_series(1, 200000) g").await);
    let c = ok(PostgresConnector::new(&server.url("shop"))).with_batch_size(1000);
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int32, true),
        Field::new("pad", DataType::Utf8, true),
    ]));
    let mut stream = ok(c
        .execute("SELECT id, pad FROM big ORDER BY id", Arc::clone(&schema))
        .await);
    let (mut batches, mut rows, mut largest) = (0usize, 0usize, 0usize);
    while let Some(batch) = stream.next().await {
        let batch = ok(batch);
        batches += 1;
        rows += batch.num_rows();
        largest = largest.max(batch.num_rows());
    }
    assert_eq!((rows, batches, largest), (200_000, 200, 1000));

    // Dropping a stream early cancels the query and frees the connection.
    for _ in 0..20 {
        let mut stream = ok(c
            .execute("SELECT id, pad FROM big", Arc::clone(&schema))
            .await);
        assert!(stream.next().await.is_some());
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let client = ok(server.connect("shop").await);
    let copies: i64 = ok(client
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'COPY%' AND state = 'active'",
            &[],
        )
        .await)
    .get(0);
    assert_eq!(copies, 0, "abandoned COPYs are cancelled");

    // Its connections scan a table from its first page, even while
    // another scan of it runs, so that a fragment run again returns its
    // rows in the same order (what a replay checks).
    let setting = Arc::new(Schema::new(vec![Field::new("s", DataType::Utf8, true)]));
    let mut stream = ok(c
        .execute(
            "SELECT current_setting('synchronize_seqscans') AS s",
            setting,
        )
        .await);
    let batch = ok(stream.next().await.unwrap_or_else(|| panic!("no row")));
    assert_eq!(batch.column(0).as_string::<i32>().value(0), "off");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_name_the_server_never_the_password() {
    let server = ok(PgServer::start().await);
    let c = ok(PostgresConnector::new(&server.url("postgres")));
    let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int32, true)]));
    let e = c
        .execute("SELECT 1/0", schema)
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(e.contains("division by zero") && e.contains("22012"), "{e}");

    let port = server.port();
    drop(server);
    let url = format!("postgres://spar:hunter2@127.0.0.1:{port}/sales");
    // The engine starts with the source down; a query of it fails.
    let engine = ok(Engine::builder()
        .with_source("pg", SourceConfig::Postgres(ServerSourceConfig::new([url])))
        .build()
        .await);
    let e = engine
        .session()
        .sql("SELECT * FROM pg.public.items")
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        e.contains(&format!("127.0.0.1:{port}/sales")) && e.contains("source `pg`"),
        "{e}"
    );
    assert!(!e.contains("hunter2"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_report_their_role_and_serve_after_the_primary_dies() {
    let mut primary = ok(PgServer::start().await);
    ok(primary.create_database("shop").await);
    ok(primary
        .execute(
            "shop",
            "CREATE TABLE t (v int); INSERT INTO t VALUES (1), (2), (3)",
        )
        .await);
    let replica = ok(primary.replica().await);
    let on_primary = ok(PostgresConnector::new(&primary.url("shop")));
    let on_replica = ok(PostgresConnector::new(&replica.url("shop")));
    assert_eq!(
        ok(on_primary.replica_status().await).role,
        ReplicaRole::Primary
    );
    let status = ok(on_replica.replica_status().await);
    assert_eq!(status.role, ReplicaRole::Replica);
    assert!(
        status.lag.is_some_and(|l| l < Duration::from_secs(60)),
        "{status:?}"
    );

    let engine = engine(vec![primary.url("shop"), replica.url("shop")]).await;
    ok(primary.kill());
    assert_eq!(
        rows(&engine.session(), "SELECT sum(v) FROM t").await,
        vec!["6"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn giving_up_before_the_first_row_cancels_the_query() {
    let server = ok(PgServer::start().await);
    ok(server.create_database("slow").await);
    ok(server
        .execute(
            "slow",
            "CREATE TABLE t AS SELECT g AS x FROM generate_series(1, 2000) g; ANALYZE t;",
        )
        .await);
    let engine = engine(vec![server.url("slow")]).await;
    // Pushed whole: PostgreSQL holds back even the COPY's start until it
    // has counted 8e9 rows.
    let sql =
        "SELECT count(*) FROM pg.public.t a CROSS JOIN pg.public.t b CROSS JOIN pg.public.t c";
    let mut stream = ok(ok(engine.session().sql(sql).await).execute_stream().await);
    let waited = tokio::time::timeout(Duration::from_millis(1500), stream.next()).await;
    assert!(
        waited.is_err(),
        "the query finished too soon to test anything"
    );
    let client = ok(server.connect("slow").await);
    let count_running = || async {
        ok(client
            .query_one(
                "SELECT count(*) FROM pg_stat_activity \
                 WHERE state = 'active' AND query LIKE '%CROSS JOIN%' AND pid <> pg_backend_pid()",
                &[],
            )
            .await)
        .get::<_, i64>(0)
    };
    // The pattern finds the query while it runs, so its vanishing below
    // means the query stopped.
    assert_eq!(count_running().await, 1, "the running query is not seen");
    drop(stream);
    let mut running: i64 = -1;
    for _ in 0..50 {
        running = count_running().await;
        if running == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(running, 0, "PostgreSQL still runs the abandoned query");
}
