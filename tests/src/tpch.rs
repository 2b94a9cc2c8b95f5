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

/// How the TPC-H tables are declared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ddl {
    /// As the TPC-H specification's `dss.ddl` declares them: `INTEGER`
    /// keys, `CHAR(n)` codes and names, `VARCHAR(n)` comments,
    /// `DECIMAL(15,2)`, `DATE`; `n_comment` and `r_comment` nullable.
    Spec,
    /// Every string `VARCHAR(200)`, keys as `tpchgen` types them.
    Varchar,
}

/// The TPC-H specification's type for a column (`dss.ddl`).
fn spec_type(column: &str) -> Option<&'static str> {
    Some(match column {
        "n_name" | "r_name" | "p_mfgr" | "s_name" | "l_shipinstruct" => "CHAR(25)",
        "p_brand" | "p_container" | "c_mktsegment" | "l_shipmode" => "CHAR(10)",
        "s_phone" | "c_phone" | "o_orderpriority" | "o_clerk" => "CHAR(15)",
        "o_orderstatus" | "l_returnflag" | "l_linestatus" => "CHAR(1)",
        "n_comment" | "r_comment" => "VARCHAR(152)",
        "p_name" => "VARCHAR(55)",
        "p_type" | "c_name" => "VARCHAR(25)",
        "p_comment" => "VARCHAR(23)",
        "s_address" | "c_address" => "VARCHAR(40)",
        "s_comment" => "VARCHAR(101)",
        "ps_comment" => "VARCHAR(199)",
        "c_comment" => "VARCHAR(117)",
        "o_comment" => "VARCHAR(79)",
        "l_comment" => "VARCHAR(44)",
        "p_retailprice" | "s_acctbal" | "ps_supplycost" | "c_acctbal" | "o_totalprice"
        | "l_quantity" | "l_extendedprice" | "l_discount" | "l_tax" => "DECIMAL(15,2)",
        "o_orderdate" | "l_shipdate" | "l_commitdate" | "l_receiptdate" => "DATE",
        c if c.ends_with("key")
            || matches!(
                c,
                "p_size" | "ps_availqty" | "o_shippriority" | "l_linenumber"
            ) =>
        {
            "INTEGER"
        }
        _ => return None,
    })
}

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
pub fn create_table(table: &str, schema: &SchemaRef, ddl: Ddl) -> Result<String> {
    let columns = schema
        .fields()
        .iter()
        .map(|f| {
            let name = f.name();
            Ok(match ddl {
                Ddl::Varchar => format!("{name} {} NOT NULL", sql_type(f.data_type())),
                Ddl::Spec => {
                    let t = spec_type(name).ok_or_else(|| HarnessError::Sql {
                        what: format!("CREATE TABLE {table}"),
                        detail: format!("column {name} is not in the TPC-H specification"),
                    })?;
                    let null = if name.ends_with("_comment") && t == "VARCHAR(152)" {
                        ""
                    } else {
                        " NOT NULL"
                    };
                    format!("{name} {t}{null}")
                }
            })
        })
        .collect::<Result<Vec<String>>>()?;
    Ok(format!(
        "CREATE TABLE {table} ({}, PRIMARY KEY ({}))",
        columns.join(", "),
        tpch::primary_key(table).join(", ")
    ))
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
/// server, declared as `ddl` says, with keys and indexes, then `ANALYZE`s
/// them. Returns the rows loaded per table.
pub async fn load_postgres(
    server: &PgServer,
    db: &str,
    tables: &[&str],
    scale: f64,
    ddl: Ddl,
) -> Result<Vec<usize>> {
    let dir = tempfile::tempdir().map_err(crate::harness::io_error("temp dir"))?;
    let client = server.connect(db).await?;
    let mut counts = Vec::new();
    for &table in tables {
        let (schema, _) = tpch::generate(table, scale).ok_or_else(|| HarnessError::Sql {
            what: table.into(),
            detail: "not TPC-H".into(),
        })?;
        server
            .execute(db, &create_table(table, &schema, ddl)?)
            .await?;
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
/// itself), declared as `ddl` says, with keys and indexes, then
/// `ANALYZE`s them.
pub async fn load_mariadb(
    server: &MariaDbServer,
    db: &str,
    tables: &[&str],
    scale: f64,
    ddl: Ddl,
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
        let mut statements = vec![create_table(table, &schema, ddl)?];
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

/// Loads the split layout at `scale`, declared as `ddl` says: `orders`,
/// `lineitem`, `customer` into PostgreSQL database `split`, the other five
/// tables into MariaDB database `tpch`, and all eight into PostgreSQL
/// database `reference` (the answer one database gives). Creates the
/// databases.
pub async fn load_split(pg: &PgServer, maria: &MariaDbServer, scale: f64, ddl: Ddl) -> Result<()> {
    for db in ["split", "reference"] {
        pg.create_database(db).await?;
    }
    maria.create_database("tpch").await?;
    load_postgres(pg, "split", &SALES_TABLES, scale, ddl).await?;
    load_postgres(pg, "reference", &tpch::TABLES, scale, ddl).await?;
    load_mariadb(maria, "tpch", &CATALOG_TABLES, scale, ddl).await?;
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

/// The output columns (from 0) of TPC-H query `q` (from 1) computed by AVG
/// or division, where each engine rounds at its own precision; every other
/// value must be equal.
pub fn approximate_columns(q: usize) -> &'static [usize] {
    match q {
        1 => &[6, 7, 8],
        8 => &[1],
        14 | 17 => &[0],
        _ => &[],
    }
}
