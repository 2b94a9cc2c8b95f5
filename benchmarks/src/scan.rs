//! Scan throughput: TPC-H `lineitem` read from SQLite through Spar, against
//! the same rows read with rusqlite directly, in the same run.
//!
//! ```sh
//! cargo run --release -p spar-benchmarks --bin scan -- [SCALE_FACTOR] [RUNS]
//! ```
//!
//! The baseline steps through `SELECT * FROM lineitem` and reads every
//! value (no conversion, no Arrow): the least any SQLite reader pays. It
//! opens the file as Spar does (read-only, no mutex), once, outside the
//! timer. Spar runs the same scan through `Session::sql` and streams Arrow
//! batches. A second pair runs a selective filter, which Spar pushes into
//! SQLite. Runs alternate between the two; each figure is the best of
//! RUNS. Both must read the same rows: their counts and a checksum (the
//! sum of `l_orderkey` and `l_linenumber`) are compared.

use std::time::{Duration, Instant};

use futures::StreamExt;
use spar_engine::{Engine, SourceConfig, SqliteSourceConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let scale: f64 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(0.1);
    let runs: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(3);
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("tpch.db");
    eprintln!("writing lineitem at scale {scale} to SQLite ...");
    spar_server::demo::write_sqlite(&db, &["lineitem"], scale)?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let engine = runtime.block_on(
        Engine::builder()
            .with_source(
                "s",
                SourceConfig::Sqlite(SqliteSourceConfig::new([db.clone()])),
            )
            .build(),
    )?;

    println!("scan benchmark: TPC-H lineitem, scale {scale}, best of {runs}");
    println!(
        "{:<34} {:>10} {:>12} {:>14}",
        "case", "rows", "seconds", "rows/s"
    );
    for (name, filter) in [
        ("full scan", ""),
        (
            "filter l_shipdate < 1992-06-01",
            " WHERE l_shipdate < '1992-06-01'",
        ),
    ] {
        let conn = rusqlite::Connection::open_with_flags(
            &db,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        let raw_sql = format!("SELECT * FROM lineitem{filter}");
        let sql = if filter.is_empty() {
            "SELECT * FROM s.main.lineitem".to_string()
        } else {
            "SELECT * FROM s.main.lineitem WHERE l_shipdate < DATE '1992-06-01'".to_string()
        };
        let (mut raw, mut spar) = (Best::default(), Best::default());
        for _ in 0..runs.max(1) {
            raw.keep(timed(|| raw_scan(&conn, &raw_sql))?);
            spar.keep(timed(|| runtime.block_on(spar_scan(&engine, &sql)))?);
        }
        if raw.read != spar.read {
            return Err(format!(
                "{name}: rusqlite read (rows, checksum) {:?}, Spar {:?}",
                raw.read, spar.read
            )
            .into());
        }
        let (raw, spar) = ((raw.read.0, raw.time), (spar.read.0, spar.time));
        report(&format!("{name}: rusqlite"), raw);
        report(&format!("{name}: spar"), spar);
        println!(
            "{name}: spar / rusqlite throughput = {:.2}",
            raw.1.as_secs_f64() / spar.1.as_secs_f64()
        );
    }
    Ok(())
}

fn report(case: &str, (rows, time): (usize, Duration)) {
    let secs = time.as_secs_f64();
    println!(
        "{case:<34} {rows:>10} {secs:>12.3} {:>14.0}",
        rows as f64 / secs
    );
}

/// Rows and checksum read, and the best time so far.
#[derive(Default)]
struct Best {
    read: (usize, i64),
    time: Duration,
}

impl Best {
    fn keep(&mut self, (read, time): ((usize, i64), Duration)) {
        if self.time.is_zero() || time < self.time {
            self.time = time;
        }
        self.read = read;
    }
}

type Read = Result<(usize, i64), Box<dyn std::error::Error>>;

fn timed(f: impl FnOnce() -> Read) -> Result<((usize, i64), Duration), Box<dyn std::error::Error>> {
    let start = Instant::now();
    let read = f()?;
    Ok((read, start.elapsed()))
}

fn raw_scan(conn: &rusqlite::Connection, sql: &str) -> Read {
    let mut stmt = conn.prepare(sql)?;
    let columns = stmt.column_count();
    let mut rows = stmt.query([])?;
    let mut n = 0;
    let mut checksum = 0_i64;
    let mut touched = 0usize;
    while let Some(row) = rows.next()? {
        for i in 0..columns {
            if let Ok(v) = row.get_ref(i) {
                touched += matches!(v, rusqlite::types::ValueRef::Null) as usize;
                if i < 4 && i != 1 && i != 2 {
                    if let rusqlite::types::ValueRef::Integer(x) = v {
                        checksum = checksum.wrapping_add(x);
                    }
                }
            }
        }
        n += 1;
    }
    std::hint::black_box(touched);
    Ok((n, checksum))
}

async fn spar_scan(engine: &Engine, sql: &str) -> Read {
    use arrow::array::AsArray;
    use arrow::datatypes::Int64Type;
    let mut stream = engine.session().sql(sql).await?.execute_stream().await?;
    let mut n = 0;
    let mut checksum = 0_i64;
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        n += batch.num_rows();
        // l_orderkey and l_linenumber (columns 0 and 3).
        for column in [0, 3] {
            let values = batch
                .column(column)
                .as_primitive_opt::<Int64Type>()
                .ok_or_else(|| format!("column {column} of lineitem is not Int64"))?;
            checksum = values
                .iter()
                .flatten()
                .fold(checksum, |sum, v| sum.wrapping_add(v));
        }
    }
    Ok((n, checksum))
}
