//! Connector throughput: TPC-H `lineitem` read from PostgreSQL and MariaDB
//! into Arrow through Spar's connectors, against each server's own raw
//! export of the same table, in the same run.
//!
//! ```sh
//! cargo run --release -p spar-benchmarks --bin connectors -- [SCALE_FACTOR ...]
//! ```
//!
//! For each scale factor (default: 0.1 and 1) the harness starts a
//! PostgreSQL and a MariaDB server on loopback, loads `lineitem`, and then:
//!
//! - PostgreSQL baseline: `psql -c "COPY lineitem TO STDOUT (FORMAT binary)"`
//!   into /dev/null; Spar: `PostgresConnector::execute` of
//!   `SELECT * FROM lineitem`, every batch counted.
//! - MariaDB baseline: `mariadb --quick -e 'SELECT * FROM lineitem'` into
//!   /dev/null; Spar: `MySqlConnector::execute` of the same query.
//!
//! It prints rows/s, the ratio Spar ÷ baseline, and how far this process's
//! resident memory rose above its level before the read while Spar read
//! (the kernel's high-water mark, reset before each read).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use arrow::csv::WriterBuilder;
use futures::{SinkExt, StreamExt};
use mysql_async::prelude::Queryable;
use spar_engine::connectors::mysql::MySqlConnector;
use spar_engine::connectors::postgres::PostgresConnector;
use spar_engine::connectors::{Connector, TableName};
use spar_tests::harness::{MariaDbServer, PgServer};

type Error = Box<dyn std::error::Error>;

const LINEITEM_DDL: &str = "CREATE TABLE lineitem (
  l_orderkey BIGINT NOT NULL, l_partkey BIGINT NOT NULL, l_suppkey BIGINT NOT NULL, l_linenumber INTEGER NOT NULL,
  l_quantity DECIMAL(15,2) NOT NULL, l_extendedprice DECIMAL(15,2) NOT NULL, l_discount DECIMAL(15,2) NOT NULL,
  l_tax DECIMAL(15,2) NOT NULL, l_returnflag CHAR(1) NOT NULL, l_linestatus CHAR(1) NOT NULL,
  l_shipdate DATE NOT NULL, l_commitdate DATE NOT NULL, l_receiptdate DATE NOT NULL,
  l_shipinstruct VARCHAR(25) NOT NULL, l_shipmode VARCHAR(10) NOT NULL, l_comment VARCHAR(44) NOT NULL,
  PRIMARY KEY (l_orderkey, l_linenumber))";

#[tokio::main]
async fn main() -> Result<(), Error> {
    let scales: Vec<f64> = std::env::args()
        .skip(1)
        .map(|a| a.parse())
        .collect::<Result<_, _>>()?;
    let scales = if scales.is_empty() {
        vec![0.1, 1.0]
    } else {
        scales
    };
    println!("connector benchmark: TPC-H lineitem, Spar connector vs the server's own export");
    println!(
        "{:<10} {:<24} {:>10} {:>9} {:>12} {:>8} {:>10}",
        "scale", "case", "rows", "seconds", "rows/s", "ratio", "+peak MiB"
    );
    for scale in scales {
        let dir = tempfile::tempdir()?;
        let csv = dir.path().join("lineitem.csv");
        let rows = write_csv(&csv, scale)?;
        eprintln!("scale {scale}: {rows} rows written to CSV");
        postgres(scale, &csv, rows).await?;
        mariadb(scale, &csv, rows).await?;
    }
    Ok(())
}

fn write_csv(path: &Path, scale: f64) -> Result<usize, Error> {
    let (_, batches) = spar_server::tpch::generate("lineitem", scale).ok_or("lineitem")?;
    let file = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut writer = WriterBuilder::new().with_header(false).build(file);
    let mut rows = 0;
    for batch in batches {
        let batch = batch?;
        rows += batch.num_rows();
        writer.write(&batch)?;
    }
    Ok(rows)
}

fn report(
    scale: f64,
    case: &str,
    rows: usize,
    time: Duration,
    ratio: Option<f64>,
    peak: Option<u64>,
) {
    let secs = time.as_secs_f64();
    let ratio = ratio.map_or(String::new(), |r| format!("{r:.2}"));
    let peak = peak.map_or(String::new(), |p| {
        format!("{:.0}", p as f64 / 1024.0 / 1024.0)
    });
    println!(
        "{scale:<10} {case:<24} {rows:>10} {secs:>9.2} {:>12.0} {ratio:>8} {peak:>10}",
        rows as f64 / secs
    );
}

/// Resets the kernel's peak-RSS mark for this process.
fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// A memory figure of this process from /proc/self/status, in bytes:
/// `VmHWM` (peak since the last reset) or `VmRSS` (now).
fn memory(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn time_command(mut command: Command) -> Result<Duration, Error> {
    let start = Instant::now();
    let status = command.stdout(Stdio::null()).status()?;
    if !status.success() {
        return Err(format!("{command:?} failed: {status}").into());
    }
    Ok(start.elapsed())
}

async fn spar_read(
    connector: &dyn Connector,
    table: TableName,
) -> Result<(usize, Duration, Option<u64>), Error> {
    let schema = connector.table_schema(&table).await?;
    reset_peak();
    let before = memory("VmRSS:");
    let start = Instant::now();
    let mut stream = connector.execute("SELECT * FROM lineitem", schema).await?;
    let mut rows = 0;
    while let Some(batch) = stream.next().await {
        rows += batch?.num_rows();
    }
    let elapsed = start.elapsed();
    let growth = memory("VmHWM:")
        .zip(before)
        .map(|(peak, before)| peak.saturating_sub(before));
    Ok((rows, elapsed, growth))
}

async fn postgres(scale: f64, csv: &Path, expected: usize) -> Result<(), Error> {
    let server = PgServer::start().await?;
    server.create_database("bench").await?;
    server.execute("bench", LINEITEM_DDL).await?;
    let client = server.connect("bench").await?;
    let sink = client
        .copy_in("COPY lineitem FROM STDIN (FORMAT csv)")
        .await?;
    futures::pin_mut!(sink);
    let mut file = tokio::fs::File::open(csv).await?;
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        use tokio::io::AsyncReadExt;
        let n = file.read(&mut buffer).await?;
        if n == 0 {
            break;
        }
        sink.send(bytes::Bytes::copy_from_slice(&buffer[..n]))
            .await?;
    }
    sink.finish().await?;
    server.execute("bench", "VACUUM ANALYZE lineitem").await?;

    let mut psql = Command::new("psql");
    psql.args([
        "-X",
        "-q",
        "-h",
        "127.0.0.1",
        "-p",
        &server.port().to_string(),
        "-U",
        "spar",
        "-d",
        "bench",
        "-c",
    ])
    .arg("COPY lineitem TO STDOUT (FORMAT binary)");
    let baseline = time_command(psql)?;
    let connector = PostgresConnector::new(&server.url("bench"))?;
    let (rows, time, peak) = spar_read(&connector, TableName::new("public", "lineitem")).await?;
    if rows != expected {
        return Err(format!("postgres: read {rows} rows, loaded {expected}").into());
    }
    report(scale, "postgres: psql COPY", rows, baseline, None, None);
    report(
        scale,
        "postgres: spar",
        rows,
        time,
        Some(baseline.as_secs_f64() / time.as_secs_f64()),
        peak,
    );
    Ok(())
}

async fn mariadb(scale: f64, csv: &Path, expected: usize) -> Result<(), Error> {
    let server = MariaDbServer::start().await?;
    server.create_database("bench").await?;
    server.execute("bench", LINEITEM_DDL).await?;
    // The server runs as this user on this machine, so it can read the file.
    let mut conn = server.connect("bench").await?;
    conn.query_drop(format!(
        "LOAD DATA INFILE '{}' INTO TABLE lineitem FIELDS TERMINATED BY ',' OPTIONALLY ENCLOSED BY '\"'",
        csv.display()
    ))
    .await?;
    conn.query_drop("ANALYZE TABLE lineitem").await?;
    drop(conn);

    let mut client = Command::new("mariadb");
    client
        .args([
            "--quick",
            "-h",
            "127.0.0.1",
            "-P",
            &server.port().to_string(),
            "-u",
            "spar",
            "bench",
            "-e",
        ])
        .arg("SELECT * FROM lineitem");
    let baseline = time_command(client)?;
    let connector = MySqlConnector::new(&server.url("bench"))?;
    let (rows, time, peak) = spar_read(&connector, TableName::new("bench", "lineitem")).await?;
    if rows != expected {
        return Err(format!("mariadb: read {rows} rows, loaded {expected}").into());
    }
    report(scale, "mariadb: client --quick", rows, baseline, None, None);
    report(
        scale,
        "mariadb: spar",
        rows,
        time,
        Some(baseline.as_secs_f64() / time.as_secs_f64()),
        peak,
    );
    Ok(())
}
