//! Embedding Spar: sources configured in code, one query across a SQLite
//! database and a CSV directory, results as Arrow record batches.
//!
//! Run with `cargo run -p spar-engine --example embed`.

use std::error::Error;

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::Int64Type;
use spar_engine::{Engine, FileFormatKind, FileSourceConfig, SourceConfig, SqliteSourceConfig};

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    // Two small sources in a temporary directory: a SQLite database with
    // orders, and a directory of CSV files with customers.
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("shop.db");
    rusqlite::Connection::open(&db)?.execute_batch(
        "CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL, total DECIMAL(10,2));
         INSERT INTO orders VALUES (1, 1, 19.99), (2, 2, 5.00), (3, 1, 42.50), (4, 3, 7.25);",
    )?;
    let crm = dir.path().join("crm");
    std::fs::create_dir(&crm)?;
    std::fs::write(
        crm.join("customers.csv"),
        "id,name,country\n1,Ada,UK\n2,Grace,US\n3,Edsger,NL\n",
    )?;

    // The engine, configured in code rather than in spar.toml.
    let engine = Engine::builder()
        .with_source("shop", SourceConfig::Sqlite(SqliteSourceConfig::new([db])))
        .with_source(
            "crm",
            SourceConfig::Files(FileSourceConfig::new(
                crm.display().to_string(),
                FileFormatKind::Csv,
            )),
        )
        .with_search_path(["shop.main", "crm.main"])
        .build()
        .await?;
    let session = engine.session();

    // One query over both sources. The filter on `orders` runs in SQLite.
    let sql = "SELECT c.name, count(*) AS orders, sum(o.total) AS spent
               FROM orders o JOIN customers c ON c.id = o.customer_id
               WHERE o.total > 6
               GROUP BY c.name
               ORDER BY spent DESC";
    let batches: Vec<RecordBatch> = session.sql(sql).await?.collect().await?;
    println!("{}", arrow::util::pretty::pretty_format_batches(&batches)?);

    // The results are plain Arrow: read columns directly.
    let counted: i64 = batches
        .iter()
        .map(|b| {
            b.column(1)
                .as_primitive::<Int64Type>()
                .iter()
                .flatten()
                .sum::<i64>()
        })
        .sum();
    println!("{counted} orders over 6.00");

    // EXPLAIN shows the SQL each source receives.
    let plan = session
        .sql(&format!("EXPLAIN {sql}"))
        .await?
        .collect()
        .await?;
    println!("{}", arrow::util::pretty::pretty_format_batches(&plan)?);
    Ok(())
}
