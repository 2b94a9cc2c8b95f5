use super::*;
use spar_connectors::sqlite::SqliteConnector;

fn set(paths: &[&std::path::Path], policy: Policy) -> ReplicaSet {
    let connectors = paths
        .iter()
        .map(|p| Arc::new(SqliteConnector::new(p)) as Arc<dyn Connector>)
        .collect();
    ReplicaSet::new("sales", connectors, policy)
}

fn db(dir: &tempfile::TempDir, name: &str, value: i64) -> std::path::PathBuf {
    let path = dir.path().join(name);
    let conn = rusqlite::Connection::open(&path).unwrap_or_else(|e| panic!("{e}"));
    conn.execute_batch(&format!(
        "CREATE TABLE t (v INTEGER); INSERT INTO t VALUES ({value});"
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    path
}

fn schema() -> SchemaRef {
    Arc::new(arrow::datatypes::Schema::new(vec![
        arrow::datatypes::Field::new("v", arrow::datatypes::DataType::Int64, true),
    ]))
}

fn first_value(opened: &Opened) -> i64 {
    use arrow::array::AsArray;
    match &opened.first {
        Some(Ok(b)) => b
            .column(0)
            .as_primitive::<arrow::datatypes::Int64Type>()
            .value(0),
        other => panic!(
            "no first batch: {:?}",
            other
                .as_ref()
                .map(|r| r.as_ref().err().map(ToString::to_string))
        ),
    }
}

#[test]
fn policies_order_replicas() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let p = [
        dir.path().join("a"),
        dir.path().join("b"),
        dir.path().join("c"),
    ];
    let refs: Vec<&std::path::Path> = p.iter().map(|p| p.as_path()).collect();
    let primary = set(&refs, Policy::PrimaryFirst);
    assert_eq!(primary.candidates(), vec![0, 1, 2]);
    assert_eq!(primary.candidates(), vec![0, 1, 2]);
    let rr = set(&refs, Policy::RoundRobin);
    assert_eq!(rr.candidates(), vec![0, 1, 2]);
    assert_eq!(rr.candidates(), vec![1, 2, 0]);
    assert_eq!(rr.candidates(), vec![2, 0, 1]);
    let ll = set(&refs, Policy::LeastLatency);
    ll.inner.replicas[0].record_latency(500);
    ll.inner.replicas[1].record_latency(100);
    ll.inner.replicas[2].record_latency(300);
    assert_eq!(ll.candidates(), vec![1, 2, 0]);
}

#[tokio::test]
async fn fails_over_to_the_next_replica() -> Result<()> {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let missing = dir.path().join("missing.db");
    let good = db(&dir, "good.db", 42);
    let replicas = set(&[&missing, &good], Policy::PrimaryFirst);
    let opened = replicas.open("SELECT v FROM t", schema()).await?;
    assert_eq!(opened.failovers, 1);
    assert!(opened.replica.ends_with("good.db"));
    assert_eq!(first_value(&opened), 42);
    let stats = replicas.stats();
    assert_eq!((stats.fragments, stats.failovers, stats.failed), (1, 1, 0));
    let failures: Vec<u64> = stats.replicas.iter().map(|r| r.failures).collect();
    assert_eq!(failures, [1, 0]);
    Ok(())
}

#[tokio::test]
async fn query_errors_do_not_fail_over() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let a = db(&dir, "a.db", 1);
    let b = db(&dir, "b.db", 2);
    let replicas = set(&[&a, &b], Policy::PrimaryFirst);
    let e = replicas
        .open("SELECT nope FROM t", schema())
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(e.contains("a.db") && e.contains("no such column"), "{e}");
}

#[tokio::test]
async fn all_replicas_down_names_each() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let a = dir.path().join("a.db");
    let b = dir.path().join("b.db");
    let e = set(&[&a, &b], Policy::PrimaryFirst)
        .open("SELECT v FROM t", schema())
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        e.contains("source `sales` is unavailable") && e.contains("a.db") && e.contains("b.db"),
        "{e}"
    );
}
