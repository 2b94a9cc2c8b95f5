//! Shared fixtures for Spar's integration tests.
//!
//! Tests build real sources: SQLite files written with rusqlite, Parquet,
//! CSV and JSON files written to temporary directories, objects to a real
//! S3-compatible server on loopback ([`s3`]), and real PostgreSQL and
//! MariaDB servers with replicas ([`harness`]). Nothing is mocked.

pub mod compare;
pub mod differential;
pub mod flight;
pub mod harness;
pub mod reference;
pub mod s3;
pub mod tpch;

use std::path::{Path, PathBuf};

/// Creates a SQLite database at `dir/name` by running `sql`.
pub fn sqlite_db(dir: &Path, name: &str, sql: &str) -> PathBuf {
    let path = dir.join(name);
    let conn = rusqlite::Connection::open(&path)
        .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    conn.execute_batch(sql)
        .unwrap_or_else(|e| panic!("fixture {}: {e}", path.display()));
    path
}

/// Collects a query's rows as CSV-like lines (`a|b|c`), in result order.
pub async fn rows(session: &spar_engine::Session, sql: &str) -> Vec<String> {
    use arrow::util::display::{ArrayFormatter, FormatOptions};
    let df = session
        .sql(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    let batches = df.collect().await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    let options = FormatOptions::default().with_null("NULL");
    let mut out = Vec::new();
    for batch in &batches {
        let formatters: Vec<_> = batch
            .columns()
            .iter()
            .map(|c| {
                ArrayFormatter::try_new(c.as_ref(), &options).unwrap_or_else(|e| panic!("{e}"))
            })
            .collect();
        for row in 0..batch.num_rows() {
            out.push(
                formatters
                    .iter()
                    .map(|f| f.value(row).to_string())
                    .collect::<Vec<_>>()
                    .join("|"),
            );
        }
    }
    out
}
