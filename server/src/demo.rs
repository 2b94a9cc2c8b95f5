//! `spar demo`: the embedded default dataset.
//!
//! TPC-H at scale 0.01 from `tpchgen`: `orders`, `lineitem` and `customer`
//! go into two identical SQLite files, the two replicas of source `sales`;
//! `part`, `partsupp`, `supplier`, `nation` and `region` go into Parquet
//! files of source `catalog`. A `spar.toml` next to them has a search path
//! over both, so `SELECT * FROM orders` works. A second run finds the
//! finished dataset (by a marker file written last) and reuses it.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{Array, RecordBatch};
use arrow::datatypes::{DataType, SchemaRef};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use parquet::arrow::ArrowWriter;
use rusqlite::types::Value;

use crate::error::CliError;
use crate::tpch;

/// The TPC-H scale factor of the demo dataset.
pub const SCALE_FACTOR: f64 = 0.01;
/// Tables of source `sales` (SQLite).
pub const SALES_TABLES: [&str; 3] = ["orders", "lineitem", "customer"];
/// Tables of source `catalog` (Parquet).
pub const CATALOG_TABLES: [&str; 5] = ["part", "partsupp", "supplier", "nation", "region"];

const MARKER: &str = ".spar-demo-complete";
const MARKER_CONTENT: &str = "spar demo v1, TPC-H scale 0.01\n";

/// Makes sure the demo dataset is in `dir` and returns its `spar.toml`.
pub fn prepare(dir: &Path) -> Result<PathBuf, CliError> {
    let config = dir.join("spar.toml");
    let marker = dir.join(MARKER);
    if fs::read_to_string(&marker).is_ok_and(|m| m == MARKER_CONTENT) && config.exists() {
        return Ok(config);
    }
    let fail = |message: String| CliError::Demo {
        dir: dir.to_path_buf(),
        message,
    };
    eprintln!(
        "Writing the demo dataset (TPC-H scale {SCALE_FACTOR}) to {} ...",
        dir.display()
    );
    let sales = dir.join("sales");
    let catalog = dir.join("catalog");
    for d in [&sales, &catalog] {
        if d.exists() {
            fs::remove_dir_all(d)
                .map_err(|e| fail(format!("cannot clear `{}`: {e}", d.display())))?;
        }
        fs::create_dir_all(d).map_err(|e| fail(format!("cannot create `{}`: {e}", d.display())))?;
    }
    let primary = sales.join("sales-1.db");
    write_sqlite(&primary, &SALES_TABLES, SCALE_FACTOR)
        .map_err(|e| fail(format!("SQLite `{}`: {e}", primary.display())))?;
    fs::copy(&primary, sales.join("sales-2.db"))
        .map_err(|e| fail(format!("cannot copy the SQLite replica: {e}")))?;
    for table in CATALOG_TABLES {
        let path = catalog.join(format!("{table}.parquet"));
        write_parquet(&path, table, SCALE_FACTOR)
            .map_err(|e| fail(format!("Parquet `{}`: {e}", path.display())))?;
    }
    fs::write(&config, CONFIG)
        .map_err(|e| fail(format!("cannot write `{}`: {e}", config.display())))?;
    fs::write(&marker, MARKER_CONTENT)
        .map_err(|e| fail(format!("cannot write `{}`: {e}", marker.display())))?;
    Ok(config)
}

const CONFIG: &str = r#"# Written by `spar demo`: TPC-H at scale 0.01.
# Unqualified names are looked up in these schemas, in order.
search_path = ["sales.main", "catalog.main"]

# orders, lineitem, customer: two identical SQLite files, two replicas.
[sources.sales]
kind = "sqlite"
replicas = ["sales/sales-1.db", "sales/sales-2.db"]
policy = "primary_first"

# part, partsupp, supplier, nation, region: Parquet files.
[sources.catalog]
kind = "files"
location = "catalog"
format = "parquet"
"#;

fn sqlite_type(t: &DataType) -> String {
    match t {
        DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64 => "INTEGER".into(),
        DataType::Decimal128(p, s) => format!("DECIMAL({p},{s})"),
        DataType::Date32 => "DATE".into(),
        DataType::Float32 | DataType::Float64 => "DOUBLE".into(),
        _ => "TEXT".into(),
    }
}

/// Writes TPC-H `tables` at `scale_factor` into a new SQLite file, with
/// primary keys, foreign-key indexes and `ANALYZE` statistics.
pub fn write_sqlite(
    path: &Path,
    tables: &[&str],
    scale_factor: f64,
) -> Result<(), Box<dyn std::error::Error>> {
    let mut conn = rusqlite::Connection::open(path)?;
    conn.execute_batch("PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF;")?;
    for &table in tables {
        let (schema, batches) = tpch::generate(table, scale_factor).ok_or("not a TPC-H table")?;
        let pk = tpch::primary_key(table);
        let columns: Vec<String> = schema
            .fields()
            .iter()
            .map(|f| format!("{} {} NOT NULL", f.name(), sqlite_type(f.data_type())))
            .collect();
        conn.execute_batch(&format!(
            "CREATE TABLE {table} ({}, PRIMARY KEY ({}))",
            columns.join(", "),
            pk.join(", ")
        ))?;
        for (name, cols) in tpch::secondary_indexes(table) {
            conn.execute_batch(&format!(
                "CREATE INDEX {name} ON {table} ({})",
                cols.join(", ")
            ))?;
        }
        let tx = conn.transaction()?;
        {
            let marks = vec!["?"; schema.fields().len()].join(", ");
            let mut insert = tx.prepare(&format!("INSERT INTO {table} VALUES ({marks})"))?;
            for batch in batches {
                let batch = batch?;
                for row in sqlite_rows(&batch)? {
                    insert.execute(rusqlite::params_from_iter(row))?;
                }
            }
        }
        tx.commit()?;
    }
    conn.execute_batch("ANALYZE")?;
    Ok(())
}

/// A batch's rows as SQLite values: integers as INTEGER, decimals and
/// dates as their text (SQLite stores decimals as REAL by the column's
/// NUMERIC affinity, dates as ISO text).
fn sqlite_rows(batch: &RecordBatch) -> Result<Vec<Vec<Value>>, arrow::error::ArrowError> {
    let options = FormatOptions::default();
    let columns = batch
        .columns()
        .iter()
        .map(|c| {
            let c = match c.data_type() {
                DataType::Int32 | DataType::Int16 | DataType::Int8 => {
                    arrow::compute::cast(c, &DataType::Int64)?
                }
                _ => Arc::clone(c),
            };
            Ok(c)
        })
        .collect::<Result<Vec<_>, arrow::error::ArrowError>>()?;
    let formatters = columns
        .iter()
        .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
        .collect::<Result<Vec<_>, _>>()?;
    let mut rows = Vec::with_capacity(batch.num_rows());
    for row in 0..batch.num_rows() {
        let values = columns
            .iter()
            .zip(&formatters)
            .map(|(c, f)| {
                if c.is_null(row) {
                    Value::Null
                } else if let Some(ints) = c.as_any().downcast_ref::<arrow::array::Int64Array>() {
                    Value::Integer(ints.value(row))
                } else {
                    Value::Text(f.value(row).to_string())
                }
            })
            .collect();
        rows.push(values);
    }
    Ok(rows)
}

/// Writes TPC-H `table` at `scale_factor` into one Parquet file.
pub fn write_parquet(
    path: &Path,
    table: &str,
    scale_factor: f64,
) -> Result<(), Box<dyn std::error::Error>> {
    let (schema, batches): (SchemaRef, _) =
        tpch::generate(table, scale_factor).ok_or("not a TPC-H table")?;
    let file = fs::File::create(path)?;
    let mut writer = ArrowWriter::try_new(file, schema, None)?;
    for batch in batches {
        writer.write(&batch?)?;
    }
    writer.close()?;
    Ok(())
}
