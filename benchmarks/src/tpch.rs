//! TPC-H's 22 queries across PostgreSQL and MariaDB through Spar, against
//! one PostgreSQL database holding all eight tables, in the same run.
//!
//! ```sh
//! cargo run --release -p spar-benchmarks --bin tpch -- [SCALE_FACTOR] [RUNS] [QUERIES]
//! ```
//!
//! QUERIES, such as `2,4,11`, runs only those. The tables are declared as
//! the TPC-H specification declares them (`CHAR(n)`, `VARCHAR(n)`,
//! `DECIMAL(15,2)`, `DATE`); with `TPCH_DDL=varchar` in the environment,
//! every string is `VARCHAR(200)` instead.
//!
//! The harness starts a PostgreSQL and a MariaDB server on loopback and
//! loads TPC-H (tpchgen) at SCALE_FACTOR (default 1): `orders`, `lineitem`
//! and `customer` into PostgreSQL database `split`, the other five tables
//! into MariaDB, and all eight into PostgreSQL database `reference`, each
//! with its keys and indexes, analyzed. For every query, one warm-up run
//! of each variant, then RUNS (default 1) rounds that run every variant
//! once, in turn; the best time of each is kept:
//!
//! - `single pg`: the query on `reference` (tokio-postgres, rows read);
//! - `spar`: the query through Spar over `split` + MariaDB;
//! - `off`: the same with `SET spar.pushdown = false`;
//! - `no rf`: the same with `SET spar.runtime_filters = false` (every
//!   fragment's SQL as planned), and the rows its fragments returned;
//! - `no jr`: the same with `SET spar.join_reorder = false` (the joins in
//!   the query's order), and the rows its fragments returned;
//! - `no pp`: the same with `SET spar.push_or_pull = false` (every
//!   fragment whole, as pushed);
//! - the fragments Spar sent in its best run, the rows and bytes they
//!   returned, and its planning time (SQL text to physical plan);
//! - where all the query's tables are in one source (`one source`), the
//!   same SQL run directly on that source, Spar ÷ that, and the SQL of
//!   Spar's one fragment run directly on that source.
//!
//! Then the geometric means of spar, off, no rf, no jr and no pp ÷ single pg. With
//! `TPCH_EXPLAIN=1` in the environment, each query's plan with its
//! metrics (`EXPLAIN ANALYZE`; `TPCH_EXPLAIN=verbose`: `EXPLAIN ANALYZE
//! VERBOSE`) is printed after its line.
//!
//! Before timing a query, its answer through Spar (pushdown on and off) is
//! checked against the reference database's, row by row
//! (`spar_tests::compare`); a wrong answer stops the benchmark. Every
//! connection is made before the timers start, on both sides.

use std::sync::Arc;
use std::time::{Duration, Instant};

use datafusion::physical_plan::metrics::MetricValue;
use datafusion::physical_plan::{collect, ExecutionPlan};
use mysql_async::prelude::Queryable;
use spar_engine::{FragmentExec, Session};
use spar_server::tpch::QUERIES;
use spar_tests::compare::{arrow_rows, differences, postgres_rows};
use spar_tests::harness::{MariaDbServer, PgServer};
use spar_tests::tpch::{approximate_columns, load_split, split_engine, Ddl};

type Error = Box<dyn std::error::Error>;

/// What Spar's fragments returned in one run.
#[derive(Default)]
struct Fetched {
    fragments: usize,
    rows: usize,
    bytes: usize,
    sources: Vec<String>,
    /// The SQL of each fragment, in plan order.
    statements: Vec<String>,
    /// Time from SQL text to physical plan, in the kept run.
    planning: Duration,
}

fn fetched(plan: &Arc<dyn ExecutionPlan>, into: &mut Fetched) {
    if let Some(fragment) = plan.downcast_ref::<FragmentExec>() {
        into.fragments += 1;
        if !into.sources.iter().any(|s| s == fragment.source()) {
            into.sources.push(fragment.source().to_string());
        }
        into.statements.push(fragment.sql().to_string());
        if let Some(metrics) = plan.metrics() {
            into.rows += metrics.output_rows().unwrap_or(0);
            into.bytes += metrics
                .sum(|m| matches!(m.value(), MetricValue::OutputBytes(_)))
                .map_or(0, |v| v.as_usize());
        }
    }
    for child in plan.children() {
        fetched(child, into);
    }
}

/// Checks, outside any timing, that Spar's answer to TPC-H query `q`
/// through `session` is the reference database's.
async fn check_answer(
    session: &Session,
    reference: &tokio_postgres::Client,
    q: usize,
    sql: &str,
    variant: &str,
) -> Result<(), Error> {
    let expected = postgres_rows(reference, sql).await?;
    let batches = session.sql(sql).await?.collect().await?;
    let diff = differences(&arrow_rows(&batches), &expected, 3, approximate_columns(q));
    if diff.is_empty() {
        Ok(())
    } else {
        Err(format!("Q{q} ({variant}) answers wrongly: {}", diff.join("; ")).into())
    }
}

/// One run of `sql` through `session`: its time and what it fetched.
async fn spar_run(session: &Session, sql: &str) -> Result<(Duration, Fetched), Error> {
    let started = Instant::now();
    let df = session.sql(sql).await?;
    let plan = df.create_physical_plan().await?;
    let planning = started.elapsed();
    let batches = collect(Arc::clone(&plan), session.context().task_ctx()).await?;
    let elapsed = started.elapsed();
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    if rows == 0 {
        return Err(format!("no rows from {sql}").into());
    }
    let mut f = Fetched {
        planning,
        ..Fetched::default()
    };
    fetched(&plan, &mut f);
    Ok((elapsed, f))
}

/// One run of `sql` on PostgreSQL, every row read: its seconds.
async fn postgres_run(client: &tokio_postgres::Client, sql: &str) -> Result<f64, Error> {
    let started = Instant::now();
    client.simple_query(sql).await?;
    Ok(started.elapsed().as_secs_f64())
}

/// One run of `sql` on MariaDB, every row read: its seconds.
async fn mariadb_run(conn: &mut mysql_async::Conn, sql: &str) -> Result<f64, Error> {
    let started = Instant::now();
    let rows: Vec<mysql_async::Row> = conn.query(sql).await?;
    let seconds = started.elapsed().as_secs_f64();
    drop(rows);
    Ok(seconds)
}

/// Where a query whose one fragment is the whole query also runs
/// directly: its source's connection.
enum Direct<'a> {
    Postgres(&'a tokio_postgres::Client),
    MariaDb(&'a mut mysql_async::Conn),
}

impl Direct<'_> {
    async fn run(&mut self, sql: &str) -> Result<f64, Error> {
        match self {
            Direct::Postgres(client) => postgres_run(client, sql).await,
            Direct::MariaDb(conn) => mariadb_run(conn, sql).await,
        }
    }
}

/// `EXPLAIN ANALYZE` of `sql`: the plan with its metrics, each line cut
/// at 600 characters.
/// ` VERBOSE` with `TPCH_EXPLAIN=verbose` (which also shows each
/// fragment's push-or-pull choice and the SQL it sent).
fn verbose() -> &'static str {
    match std::env::var("TPCH_EXPLAIN") {
        Ok(v) if v == "verbose" => " VERBOSE",
        _ => "",
    }
}

async fn print_plan(session: &Session, sql: &str) -> Result<(), Error> {
    let batches = session
        .sql(&format!("EXPLAIN ANALYZE{} {sql}", verbose()))
        .await?
        .collect()
        .await?;
    let text = arrow::util::pretty::pretty_format_batches(&batches)?.to_string();
    for line in text.lines() {
        let cut: String = line.chars().take(600).collect();
        println!("    {cut}");
    }
    Ok(())
}

fn geomean(ratios: &[f64]) -> f64 {
    (ratios.iter().map(|r| r.ln()).sum::<f64>() / ratios.len() as f64).exp()
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let mut args = std::env::args().skip(1);
    let scale: f64 = args.next().map_or(Ok(1.0), |a| a.parse())?;
    let runs: usize = args.next().map_or(Ok(1), |a| a.parse())?;
    // Optionally only some queries: `2,4,11`.
    let only = args
        .next()
        .map(|a| {
            a.split(',')
                .map(str::parse)
                .collect::<Result<Vec<usize>, _>>()
        })
        .transpose()?;

    let ddl = match std::env::var("TPCH_DDL").as_deref() {
        Err(_) | Ok("spec") => Ddl::Spec,
        Ok("varchar") => Ddl::Varchar,
        Ok(other) => return Err(format!("TPCH_DDL is `spec` or `varchar`, not `{other}`").into()),
    };
    let pg = PgServer::start().await?;
    let maria = MariaDbServer::start().await?;
    let loading = Instant::now();
    load_split(&pg, &maria, scale, ddl).await?;
    eprintln!(
        "loaded scale {scale} ({ddl:?} DDL) in {:.0?}",
        loading.elapsed()
    );
    let engine = split_engine(&pg, &maria).await?;
    let spar = engine.session();
    let off = engine.session();
    off.sql("SET spar.pushdown = false").await?;
    let no_rf = engine.session();
    no_rf.sql("SET spar.runtime_filters = false").await?;
    let no_jr = engine.session();
    no_jr.sql("SET spar.join_reorder = false").await?;
    let no_pp = engine.session();
    no_pp.sql("SET spar.push_or_pull = false").await?;
    let reference = pg.connect("reference").await?;
    let split = pg.connect("split").await?;
    let mut mariadb = maria.connect("tpch").await?;
    // As Spar's connections are: fragments spell `LIKE … ESCAPE '\'`.
    mariadb
        .query_drop(
            "SET SESSION sql_mode = CONCAT_WS(',', NULLIF(@@SESSION.sql_mode, ''), 'NO_BACKSLASH_ESCAPES')",
        )
        .await?;

    println!(
        "TPC-H scale {scale} ({ddl:?} DDL), best of {runs}; seconds; ratios against single pg"
    );
    println!(
        "{:<4} {:>9} {:>8} {:>6} {:>8} {:>6} {:>8} {:>10} {:>8} {:>10} {:>8} {:>5} {:>10} {:>9} {:>7}  {:<22}",
        "q",
        "single pg",
        "spar",
        "ratio",
        "off",
        "ratio",
        "no rf",
        "no rf rows",
        "no jr",
        "no jr rows",
        "no pp",
        "frags",
        "rows",
        "MiB",
        "plan ms",
        "one source: direct, spar/direct, fragment sql"
    );
    let (mut spar_ratios, mut off_ratios) = (Vec::new(), Vec::new());
    let (mut no_rf_ratios, mut no_jr_ratios) = (Vec::new(), Vec::new());
    let mut no_pp_ratios = Vec::new();
    for (i, sql) in QUERIES.iter().enumerate() {
        if only.as_ref().is_some_and(|only| !only.contains(&(i + 1))) {
            continue;
        }
        // One warm-up run of each, then RUNS rounds, each running every
        // variant once (so that a slower or faster spell of the machine
        // touches them alike); the best time of each is kept.
        let (_, first) = spar_run(&spar, sql).await?;
        let fragment = match first.statements.as_slice() {
            [fragment] => Some(fragment.clone()),
            _ => None,
        };
        let mut direct = match (first.sources.as_slice(), &fragment) {
            ([s], Some(_)) if s == "sales" => Some(Direct::Postgres(&split)),
            ([s], Some(_)) if s == "catalog" => Some(Direct::MariaDb(&mut mariadb)),
            _ => None,
        };
        postgres_run(&reference, sql).await?;
        spar_run(&off, sql).await?;
        spar_run(&no_rf, sql).await?;
        spar_run(&no_jr, sql).await?;
        spar_run(&no_pp, sql).await?;
        check_answer(&spar, &reference, i + 1, sql, "spar").await?;
        check_answer(&off, &reference, i + 1, sql, "off").await?;
        check_answer(&no_rf, &reference, i + 1, sql, "no rf").await?;
        check_answer(&no_jr, &reference, i + 1, sql, "no jr").await?;
        check_answer(&no_pp, &reference, i + 1, sql, "no pp").await?;
        if let (Some(d), Some(fragment)) = (direct.as_mut(), &fragment) {
            d.run(sql).await?;
            d.run(fragment).await?;
        }
        let (mut single, mut t_off, mut t_no_rf) = (f64::INFINITY, f64::INFINITY, f64::INFINITY);
        let mut no_rf_rows = 0;
        let (mut t_no_jr, mut no_jr_rows) = (f64::INFINITY, 0);
        let mut t_no_pp = f64::INFINITY;
        let (mut d_sql, mut d_fragment) = (f64::INFINITY, f64::INFINITY);
        let mut best: Option<(Duration, Fetched)> = None;
        for _ in 0..runs {
            single = single.min(postgres_run(&reference, sql).await?);
            let run = spar_run(&spar, sql).await?;
            if best.as_ref().is_none_or(|(t, _)| run.0 < *t) {
                best = Some(run);
            }
            t_off = t_off.min(spar_run(&off, sql).await?.0.as_secs_f64());
            let (t, f) = spar_run(&no_rf, sql).await?;
            t_no_rf = t_no_rf.min(t.as_secs_f64());
            no_rf_rows = f.rows;
            let (t, f) = spar_run(&no_jr, sql).await?;
            t_no_jr = t_no_jr.min(t.as_secs_f64());
            no_jr_rows = f.rows;
            t_no_pp = t_no_pp.min(spar_run(&no_pp, sql).await?.0.as_secs_f64());
            if let (Some(d), Some(fragment)) = (direct.as_mut(), &fragment) {
                d_sql = d_sql.min(d.run(sql).await?);
                d_fragment = d_fragment.min(d.run(fragment).await?);
            }
        }
        let (t, f) = best.ok_or("RUNS must be at least 1")?;
        let t = t.as_secs_f64();
        let direct = match direct {
            Some(_) => format!(
                "{} {d_sql:>8.3} {:>5.2} {d_fragment:>8.3}",
                f.sources[0],
                t / d_sql
            ),
            None => String::new(),
        };
        println!(
            "Q{:<3} {single:>9.3} {t:>8.3} {:>6.2} {t_off:>8.3} {:>6.2} {t_no_rf:>8.3} {no_rf_rows:>10} {t_no_jr:>8.3} {no_jr_rows:>10} {t_no_pp:>8.3} {:>5} {:>10} {:>9.1} {:>7.1}  {direct}",
            i + 1,
            t / single,
            t_off / single,
            f.fragments,
            f.rows,
            f.bytes as f64 / (1024.0 * 1024.0),
            f.planning.as_secs_f64() * 1000.0,
        );
        if std::env::var_os("TPCH_EXPLAIN").is_some() {
            print_plan(&spar, sql).await?;
        }
        spar_ratios.push(t / single);
        off_ratios.push(t_off / single);
        no_rf_ratios.push(t_no_rf / single);
        no_jr_ratios.push(t_no_jr / single);
        no_pp_ratios.push(t_no_pp / single);
    }
    println!(
        "geometric mean: spar / single pg = {:.2}, off / single pg = {:.2}, no rf / single pg = {:.2}, no jr / single pg = {:.2}, no pp / single pg = {:.2}",
        geomean(&spar_ratios),
        geomean(&off_ratios),
        geomean(&no_rf_ratios),
        geomean(&no_jr_ratios),
        geomean(&no_pp_ratios)
    );
    Ok(())
}
