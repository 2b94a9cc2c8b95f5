//! Scan throughput: TPC-H `lineitem` read from SQLite through Spar, against
//! the same rows read with rusqlite directly, in the same run.
//!
//! ```sh
//! cargo run --release -p spar-benchmarks --bin scan -- [SCALE_FACTOR] [RUNS]
//! ```
//!
//! The baseline steps through `SELECT * FROM lineitem` and reads every
//! value (no conversion, no Arrow): the least any SQLite reader pays. Spar
//! runs the same scan through `Session::sql` and streams Arrow batches. A
//! second pair runs a selective filter, which Spar pushes into SQLite. Each
//! figure is the best of RUNS.

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
        let raw = best(runs, || {
            raw_scan(&db, &format!("SELECT * FROM lineitem{filter}"))
        })?;
        let sql = if filter.is_empty() {
            "SELECT * FROM s.main.lineitem".to_string()
        } else {
            "SELECT * FROM s.main.lineitem WHERE l_shipdate < DATE '1992-06-01'".to_string()
        };
        let spar = best(runs, || runtime.block_on(spar_scan(&engine, &sql)))?;
        if raw.0 != spar.0 {
            return Err(format!("{name}: rusqlite read {} rows, Spar {}", raw.0, spar.0).into());
        }
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

fn best(
    runs: usize,
    mut f: impl FnMut() -> Result<usize, Box<dyn std::error::Error>>,
) -> Result<(usize, Duration), Box<dyn std::error::Error>> {
    let mut best = (0, Duration::MAX);
    for _ in 0..runs.max(1) {
        let start = Instant::now();
        let rows = f()?;
        best = (rows, best.1.min(start.elapsed()));
    }
    Ok(best)
}

fn raw_scan(db: &std::path::Path, sql: &str) -> Result<usize, Box<dyn std::error::Error>> {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let mut stmt = conn.prepare(sql)?;
    let columns = stmt.column_count();
    let mut rows = stmt.query([])?;
    let mut n = 0;
    let mut touched = 0usize;
    while let Some(row) = rows.next()? {
        for i in 0..columns {
            if let Ok(v) = row.get_ref(i) {
                touched += matches!(v, rusqlite::types::ValueRef::Null) as usize;
            }
        }
        n += 1;
    }
    std::hint::black_box(touched);
    Ok(n)
}

async fn spar_scan(engine: &Engine, sql: &str) -> Result<usize, Box<dyn std::error::Error>> {
    let mut stream = engine.session().sql(sql).await?.execute_stream().await?;
    let mut n = 0;
    while let Some(batch) = stream.next().await {
        n += batch?.num_rows();
    }
    Ok(n)
}
