//! Planning time of many-way joins: join reordering on against
//! `SET spar.join_reorder = false`, in the same run.
//!
//! ```sh
//! cargo run --release -p spar-benchmarks --bin planning -- [RUNS]
//! ```
//!
//! Sixteen SQLite tables of 10 to 100,000 rows (analyzed, so the cost model
//! has row counts and distinct values) are spread over three sources, the
//! tables of one source never next to each other in the query. Each case
//! joins the first N of them along a chain of equalities written in that
//! interleaved order (`t0.k = t1.k AND t1.k = t2.k …`), each table also
//! joined to the previous one of its source (`t0.id = t3.id`), as a comma
//! list with the conditions in WHERE.
//! A run plans the query whole (`Session::sql` through DataFusion's
//! optimizer, Spar's rules and physical planning: what a query pays
//! before its first fragment opens) and does not execute it. Each figure
//! is the best of RUNS, the two settings alternating. The target: a
//! 12-way join plans in well under 100 ms with reordering on (12 is past
//! the exhaustive search's 10 tables; 10 is its most expensive case).
//! `PLANNING_EXPLAIN=12` prints the plan of the 12-way join.

use std::time::{Duration, Instant};

use datafusion::physical_plan::displayable;
use spar_engine::{Engine, Session, SourceConfig, SqliteSourceConfig};

const TABLES: usize = 16;
const SOURCES: [&str; 3] = ["s0", "s1", "s2"];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let runs: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(20);
    let dir = tempfile::tempdir()?;
    let mut builder = Engine::builder();
    for (s, source) in SOURCES.iter().enumerate() {
        let path = dir.path().join(format!("{source}.db"));
        write_tables(&path, s)?;
        builder = builder.with_source(
            *source,
            SourceConfig::Sqlite(SqliteSourceConfig::new([path])),
        );
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let engine = runtime.block_on(builder.build())?;

    println!("planning benchmark: chains of N joined tables over 3 SQLite sources, best of {runs}");
    println!(
        "{:>4} {:>14} {:>16} {:>8} {:>18} {:>20}",
        "N", "reorder ms", "as written ms", "ratio", "fragments reorder", "fragments written"
    );
    for n in [4, 6, 8, 10, 12, 16] {
        let sql = chain(n);
        let on = engine.session();
        let off = engine.session();
        runtime.block_on(async {
            off.sql("SET spar.join_reorder = false")
                .await?
                .collect()
                .await
        })?;
        let (mut best_on, mut best_off) = (Duration::MAX, Duration::MAX);
        let (mut fragments_on, mut fragments_off) = (0, 0);
        for _ in 0..runs.max(1) {
            let (t, f) = runtime.block_on(plan(&on, &sql))?;
            best_on = best_on.min(t);
            fragments_on = f;
            let (t, f) = runtime.block_on(plan(&off, &sql))?;
            best_off = best_off.min(t);
            fragments_off = f;
        }
        if std::env::var("PLANNING_EXPLAIN").is_ok_and(|v| v == n.to_string()) {
            let plan = runtime
                .block_on(async { on.sql(&format!("EXPLAIN {sql}")).await?.collect().await })?;
            println!("{}", arrow::util::pretty::pretty_format_batches(&plan)?);
        }
        println!(
            "{n:>4} {:>14.2} {:>16.2} {:>8.2} {fragments_on:>18} {fragments_off:>20}",
            ms(best_on),
            ms(best_off),
            ms(best_on) / ms(best_off)
        );
    }
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Table `i` lives in source `i % 3`; its size cycles through five orders of
/// magnitude so that the cheapest order is not the written one.
fn rows_of(i: usize) -> usize {
    [100_000, 10, 1_000, 100, 10_000][i % 5]
}

fn write_tables(path: &std::path::Path, source: usize) -> Result<(), Box<dyn std::error::Error>> {
    let mut conn = rusqlite::Connection::open(path)?;
    let tx = conn.transaction()?;
    for i in (0..TABLES).filter(|i| i % SOURCES.len() == source) {
        tx.execute_batch(&format!(
            "CREATE TABLE t{i} (id INTEGER PRIMARY KEY, k INTEGER NOT NULL, v INTEGER);
             CREATE INDEX t{i}_k ON t{i} (k);"
        ))?;
        let mut insert = tx.prepare(&format!("INSERT INTO t{i} VALUES (?1, ?2, ?3)"))?;
        let n = rows_of(i);
        for id in 0..n {
            // `k` has as many distinct values as the smaller neighbour has
            // rows, so that every join in the chain narrows.
            insert.execute((id as i64, (id % 1_000) as i64, (id * 7 % 13) as i64))?;
        }
    }
    tx.commit()?;
    conn.execute_batch("ANALYZE")?;
    Ok(())
}

/// `SELECT … FROM t0, t1, …, t{n-1} WHERE t0.k = t1.k AND t1.k = t2.k …
/// AND t0.id = t3.id …`.
fn chain(n: usize) -> String {
    let from: Vec<String> = (0..n)
        .map(|i| format!("{}.main.t{i}", SOURCES[i % SOURCES.len()]))
        .collect();
    let mut conditions: Vec<String> = (1..n).map(|i| format!("t{}.k = t{i}.k", i - 1)).collect();
    // Each table also meets the previous table of its source, so that the
    // tables of one source can join there.
    conditions.extend((SOURCES.len()..n).map(|i| format!("t{}.id = t{i}.id", i - SOURCES.len())));
    format!(
        "SELECT t0.id, t{last}.v FROM {} WHERE {} AND t0.v < 5",
        from.join(", "),
        conditions.join(" AND "),
        last = n - 1
    )
}

/// Plans `sql` whole, without running it: the time taken and the number of
/// fragments in the physical plan.
async fn plan(
    session: &Session,
    sql: &str,
) -> Result<(Duration, usize), Box<dyn std::error::Error>> {
    let start = Instant::now();
    let plan = session.sql(sql).await?.create_physical_plan().await?;
    let time = start.elapsed();
    let text = displayable(plan.as_ref()).indent(false).to_string();
    Ok((time, text.matches("FragmentExec").count()))
}
