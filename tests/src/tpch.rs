//! TPC-H tables (from `tpchgen`) loaded into harness servers, with their
//! primary keys and foreign-key indexes.

use std::path::Path;

use arrow::csv::WriterBuilder;
use arrow::datatypes::{DataType, SchemaRef};
use futures::SinkExt;
use mysql_async::prelude::Queryable;
use spar_engine::{Engine, ServerSourceConfig, SourceConfig};
use spar_server::demo::{CATALOG_TABLES, SALES_TABLES};
use spar_server::tpch;

use crate::harness::{HarnessError, MariaDbServer, PgServer, Result};

fn sql_type(t: &DataType) -> String {
    match t {
        DataType::Int64 => "BIGINT".into(),
        DataType::Int32 => "INTEGER".into(),
        DataType::Decimal128(p, s) => format!("DECIMAL({p},{s})"),
        DataType::Date32 => "DATE".into(),
        _ => "VARCHAR(200)".into(),
    }
}

/// `CREATE TABLE` for TPC-H `table` with its primary key, in SQL both
/// PostgreSQL and MariaDB accept.
pub fn create_table(table: &str, schema: &SchemaRef) -> String {
    let columns: Vec<String> = schema
        .fields()
        .iter()
        .map(|f| format!("{} {} NOT NULL", f.name(), sql_type(f.data_type())))
        .collect();
    format!(
        "CREATE TABLE {table} ({}, PRIMARY KEY ({}))",
        columns.join(", "),
        tpch::primary_key(table).join(", ")
    )
}

fn create_indexes(table: &str) -> Vec<String> {
    tpch::secondary_indexes(table)
        .iter()
        .map(|(name, cols)| format!("CREATE INDEX {name} ON {table} ({})", cols.join(", ")))
        .collect()
}

/// Writes TPC-H `table` at `scale` as header-less CSV; returns its rows.
pub fn write_csv(table: &str, scale: f64, path: &Path) -> Result<usize> {
    let fail = |e: &dyn std::fmt::Display| HarnessError::Sql {
        what: format!("generate TPC-H {table}"),
        detail: e.to_string(),
    };
    let (_, batches) = tpch::generate(table, scale).ok_or_else(|| fail(&"not a TPC-H table"))?;
    let file = std::fs::File::create(path).map_err(|e| fail(&e))?;
    let mut writer = WriterBuilder::new()
        .with_header(false)
        .build(std::io::BufWriter::new(file));
    let mut rows = 0;
    for batch in batches {
        let batch = batch.map_err(|e| fail(&e))?;
        rows += batch.num_rows();
        writer.write(&batch).map_err(|e| fail(&e))?;
    }
    Ok(rows)
}

/// Loads TPC-H `tables` at `scale` into database `db` of a PostgreSQL
/// server, with keys and indexes, then `ANALYZE`s them. Returns the rows
/// loaded per table.
pub async fn load_postgres(
    server: &PgServer,
    db: &str,
    tables: &[&str],
    scale: f64,
) -> Result<Vec<usize>> {
    let dir = tempfile::tempdir().map_err(crate::harness::io_error("temp dir"))?;
    let client = server.connect(db).await?;
    let mut counts = Vec::new();
    for &table in tables {
        let (schema, _) = tpch::generate(table, scale).ok_or_else(|| HarnessError::Sql {
            what: table.into(),
            detail: "not TPC-H".into(),
        })?;
        server.execute(db, &create_table(table, &schema)).await?;
        let csv = dir.path().join(format!("{table}.csv"));
        counts.push(write_csv(table, scale, &csv)?);
        let data = std::fs::read(&csv).map_err(crate::harness::io_error("read CSV"))?;
        let copy = |e: tokio_postgres::Error| HarnessError::Sql {
            what: format!("COPY {table}"),
            detail: e.to_string(),
        };
        let sink = client
            .copy_in(&format!("COPY {table} FROM STDIN (FORMAT csv)"))
            .await
            .map_err(copy)?;
        futures::pin_mut!(sink);
        sink.send(bytes::Bytes::from(data)).await.map_err(copy)?;
        sink.finish().await.map_err(copy)?;
        for index in create_indexes(table) {
            server.execute(db, &index).await?;
        }
    }
    server.execute(db, "ANALYZE").await?;
    Ok(counts)
}

/// Loads TPC-H `tables` at `scale` into database `db` of a MariaDB server
/// (which runs as this user on this machine and reads the CSV files
/// itself), with keys and indexes, then `ANALYZE`s them.
pub async fn load_mariadb(
    server: &MariaDbServer,
    db: &str,
    tables: &[&str],
    scale: f64,
) -> Result<Vec<usize>> {
    let dir = tempfile::tempdir().map_err(crate::harness::io_error("temp dir"))?;
    let mut conn = server.connect(db).await?;
    let mut counts = Vec::new();
    for &table in tables {
        let (schema, _) = tpch::generate(table, scale).ok_or_else(|| HarnessError::Sql {
            what: table.into(),
            detail: "not TPC-H".into(),
        })?;
        let csv = dir.path().join(format!("{table}.csv"));
        counts.push(write_csv(table, scale, &csv)?);
        let mut statements = vec![create_table(table, &schema)];
        statements.push(format!(
            "LOAD DATA INFILE '{}' INTO TABLE {table} FIELDS TERMINATED BY ',' OPTIONALLY ENCLOSED BY '\"'",
            csv.display()
        ));
        statements.extend(create_indexes(table));
        statements.push(format!("ANALYZE TABLE {table}"));
        for sql in statements {
            conn.query_drop(&sql).await.map_err(|e| HarnessError::Sql {
                what: sql.clone(),
                detail: e.to_string(),
            })?;
        }
    }
    Ok(counts)
}

/// Loads the split layout at `scale`: `orders`, `lineitem`, `customer` into
/// PostgreSQL database `split`, the other five tables into MariaDB database
/// `tpch`, and all eight into PostgreSQL database `reference` (the answer
/// one database gives). Creates the databases.
pub async fn load_split(pg: &PgServer, maria: &MariaDbServer, scale: f64) -> Result<()> {
    for db in ["split", "reference"] {
        pg.create_database(db).await?;
    }
    maria.create_database("tpch").await?;
    load_postgres(pg, "split", &SALES_TABLES, scale).await?;
    load_postgres(pg, "reference", &tpch::TABLES, scale).await?;
    load_mariadb(maria, "tpch", &CATALOG_TABLES, scale).await?;
    Ok(())
}

/// An engine over the split layout of [`load_split`]: source `sales` is
/// PostgreSQL database `split`, source `catalog` MariaDB database `tpch`,
/// both on the search path so TPC-H's unqualified names resolve.
pub async fn split_engine(pg: &PgServer, maria: &MariaDbServer) -> spar_engine::Result<Engine> {
    Engine::builder()
        .with_source(
            "sales",
            SourceConfig::Postgres(ServerSourceConfig::new([pg.url("split")])),
        )
        .with_source(
            "catalog",
            SourceConfig::MySql(ServerSourceConfig::new([maria.url("tpch")])),
        )
        .with_search_path(["sales.public", "catalog.tpch"])
        .build()
        .await
}
