use super::*;
use arrow::array::AsArray;
use arrow::datatypes::{DataType, Int64Type};
use futures::StreamExt;

fn fixture() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let path = dir.path().join("t.db");
    let conn = Connection::open(&path).unwrap_or_else(|e| panic!("open: {e}"));
    conn.execute_batch(
        "CREATE TABLE orders (o_orderkey INTEGER PRIMARY KEY, o_custkey BIGINT NOT NULL,
                              o_total DECIMAL(15,2), o_date DATE, o_comment TEXT);
         CREATE INDEX orders_cust ON orders (o_custkey, o_date);
         CREATE UNIQUE INDEX orders_comment ON orders (o_comment) WHERE o_comment IS NOT NULL;
         CREATE VIEW big_orders AS SELECT o_orderkey FROM orders WHERE o_total > 100;
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 10000)
         INSERT INTO orders SELECT i, i % 7, i * 1.25, date('2020-01-01', '+' || (i % 300) || ' days'), NULL FROM n;",
    )
    .unwrap_or_else(|e| panic!("fixture: {e}"));
    (dir, path)
}

#[tokio::test]
async fn discovers_tables_schema_and_indexes() -> Result<()> {
    let (_dir, path) = fixture();
    let c = SqliteConnector::new(&path);
    assert_eq!(c.list_schemas().await?, vec!["main".to_string()]);
    assert_eq!(
        c.list_tables("main").await?,
        vec![
            ("big_orders".to_string(), TableKind::View),
            ("orders".to_string(), TableKind::Table)
        ]
    );
    let t = TableName::new("main", "orders");
    let schema = c.table_schema(&t).await?;
    let types: Vec<_> = schema
        .fields()
        .iter()
        .map(|f| (f.name().as_str(), f.data_type().clone(), f.is_nullable()))
        .collect();
    assert_eq!(
        types,
        vec![
            ("o_orderkey", DataType::Int64, true),
            ("o_custkey", DataType::Int64, false),
            ("o_total", DataType::Decimal128(15, 2), true),
            ("o_date", DataType::Date32, true),
            ("o_comment", DataType::Utf8, true),
        ]
    );
    let indexes = c.indexes(&t).await?;
    let pk = indexes
        .iter()
        .find(|i| i.primary)
        .map(|i| i.columns.clone());
    assert_eq!(pk, Some(vec!["o_orderkey".to_string()]));
    let cust = indexes.iter().find(|i| i.name == "orders_cust").cloned();
    assert_eq!(
        cust.map(|i| (i.columns, i.unique, i.partial)),
        Some((vec!["o_custkey".into(), "o_date".into()], false, false))
    );
    assert!(indexes
        .iter()
        .any(|i| i.name == "orders_comment" && i.unique && i.partial));
    Ok(())
}

#[tokio::test]
async fn statistics_are_real() -> Result<()> {
    let (_dir, path) = fixture();
    let c = SqliteConnector::new(&path);
    let t = TableName::new("main", "orders");
    let schema = c.table_schema(&t).await?;
    let stats = c.table_statistics(&t, &schema).await?;
    assert_eq!(stats.row_count, Precision::Exact(10_000));
    assert_eq!(
        stats.columns[0].min,
        Precision::Exact(ScalarValue::Int64(Some(1)))
    );
    assert_eq!(
        stats.columns[0].max,
        Precision::Exact(ScalarValue::Int64(Some(10_000)))
    );
    assert_eq!(stats.columns[0].distinct_count, Precision::Exact(10_000));
    assert_eq!(
        stats.columns[1].max,
        Precision::Exact(ScalarValue::Int64(Some(6)))
    );

    // After ANALYZE, counts come from sqlite_stat1 and are estimates.
    Connection::open(&path)
        .and_then(|c| c.execute_batch("ANALYZE"))
        .unwrap_or_else(|e| panic!("{e}"));
    let stats = c.table_statistics(&t, &schema).await?;
    assert_eq!(stats.row_count, Precision::Inexact(10_000));
    assert!(
        matches!(stats.columns[1].distinct_count, Precision::Inexact(n) if (6..=8).contains(&n)),
        "{:?}",
        stats.columns[1]
    );
    Ok(())
}

#[tokio::test]
async fn streams_in_many_batches() -> Result<()> {
    let (_dir, path) = fixture();
    let c = SqliteConnector::new(&path).with_batch_size(1000);
    let schema = Arc::new(Schema::new(vec![Field::new("k", DataType::Int64, true)]));
    let mut stream = c
        .execute("SELECT o_orderkey FROM orders ORDER BY o_orderkey", schema)
        .await?;
    let mut batches = 0;
    let mut sum = 0i64;
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        assert!(batch.num_rows() <= 1000);
        sum += batch
            .column(0)
            .as_primitive::<Int64Type>()
            .values()
            .iter()
            .sum::<i64>();
        batches += 1;
    }
    assert_eq!(batches, 10);
    assert_eq!(sum, 10_000 * 10_001 / 2);
    Ok(())
}

#[tokio::test]
async fn dropping_the_stream_stops_the_reader() -> Result<()> {
    let (_dir, path) = fixture();
    let c = SqliteConnector::new(&path).with_batch_size(10);
    let schema = Arc::new(Schema::new(vec![Field::new("k", DataType::Int64, true)]));
    // A cross join of 10^8 rows: only finishes if nothing stops it.
    let sql = "SELECT a.o_orderkey FROM orders a, orders b";
    let mut stream = c.execute(sql, schema).await?;
    assert!(stream.next().await.is_some());
    drop(stream);
    // The file is free again: a writer gets its lock quickly.
    let writer = Connection::open(&path).unwrap_or_else(|e| panic!("{e}"));
    writer
        .busy_timeout(std::time::Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("{e}"));
    writer
        .execute("DELETE FROM orders WHERE o_orderkey = 1", [])
        .unwrap_or_else(|e| panic!("{e}"));
    Ok(())
}

#[tokio::test]
async fn errors_say_what_and_where() {
    let missing = SqliteConnector::new("/nonexistent/dir/sales.db");
    let e = missing
        .health_check()
        .await
        .err()
        .map(|e| (e.is_retryable(), e.to_string()));
    let (retryable, msg) = e.unwrap_or_default();
    assert!(retryable);
    assert!(msg.contains("/nonexistent/dir/sales.db"), "{msg}");

    let (_dir, path) = fixture();
    let c = SqliteConnector::new(&path);
    let schema = Arc::new(Schema::new(vec![Field::new("k", DataType::Int64, true)]));
    let e = c.execute("SELEC 1", Arc::clone(&schema)).await.err();
    assert!(matches!(e, Some(ConnectorError::Query { .. })), "{e:?}");
    let e = c
        .table_schema(&TableName::new("main", "nope"))
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(e.contains("main.nope"), "{e}");

    let mut stream = match c.execute("SELECT 'abc'", schema).await {
        Ok(s) => s,
        Err(e) => panic!("{e}"),
    };
    let e = stream
        .next()
        .await
        .and_then(|r| r.err())
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(e.contains("column `k`") && e.contains("'abc'"), "{e}");
}
