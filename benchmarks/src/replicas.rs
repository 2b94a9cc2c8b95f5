//! TPC-H's 22 queries over replica sets, healthy and with a replica hurt
//! mid-run, against the same queries over one replica per source, in the
//! same run.
//!
//! ```sh
//! cargo run --release -p spar-benchmarks --bin replicas -- [SCALE_FACTOR] [RUNS] [QUERIES]
//! ```
//!
//! QUERIES, such as `7,8,9`, runs only those (in every variant).
//!
//! The harness starts PostgreSQL and MariaDB on loopback and loads TPC-H
//! (tpchgen, the specification's DDL) at SCALE_FACTOR (default 1) as the
//! `tpch` benchmark does: `orders`, `lineitem`, `customer` in PostgreSQL,
//! the rest in MariaDB, all eight in a PostgreSQL `reference` database.
//! Then two streaming replicas of the PostgreSQL server and one of the
//! MariaDB server. Variants, each running the 22 queries in turn:
//!
//! - `single`: one replica per source (the primaries), `resume = "off"`:
//!   Spar as it ran before replica sets could resume a fragment;
//! - `healthy`: PostgreSQL with 3 replicas and MariaDB with 2
//!   (`primary_first`, `resume = "replay"`, the default), every replica
//!   up;
//! - `killed`: the same, the PostgreSQL primary (the replica serving)
//!   killed (SIGKILL) halfway through the healthy time;
//! - `paused`: the same, the PostgreSQL primary paused (SIGSTOP) halfway;
//! - `paused, hedged`: `paused` with `hedge_after = "p95"`.
//!
//! The replicated variants use `stall_timeout = "5s"` and
//! `first_batch_timeout = "60s"`. `single` and `healthy` run RUNS
//! (default 1) rounds, alternating, after one warm-up round each; the
//! best time of each query is kept. The hurt variants run once, each on a
//! fresh engine warmed by one round, and the hurt server is brought back
//! (and seen healthy again) before the next. Every answer of every run is
//! checked against the reference database's; a wrong answer stops the
//! benchmark.

use std::time::{Duration, Instant};

use spar_engine::replica::{HedgeAfter, ReplicaSettings, Resume};
use spar_engine::{Engine, Policy, ServerSourceConfig, Session, SourceConfig};
use spar_server::tpch::QUERIES;
use spar_tests::compare::{arrow_rows, differences, postgres_rows, Rows};
use spar_tests::harness::{MariaDbServer, PgServer};
use spar_tests::tpch::{approximate_columns, load_split, Ddl};

type Error = Box<dyn std::error::Error>;

/// The queries to run and their reference answers.
#[derive(Clone)]
struct Workload {
    /// The reference database's answer to each of the 22 queries.
    reference: Vec<Rows>,
    /// The queries to run (from 1); empty for all.
    only: Vec<usize>,
}

/// Runs the 22 queries (those `work.only` names) through `session`, checking
/// each answer: the seconds of each (NaN for those not run).
async fn round(session: &Session, work: &Workload, variant: &str) -> Result<Vec<f64>, Error> {
    let mut times = Vec::new();
    for (i, (sql, expected)) in QUERIES.iter().zip(&work.reference).enumerate() {
        if !work.only.is_empty() && !work.only.contains(&(i + 1)) {
            times.push(f64::NAN);
            continue;
        }
        let started = Instant::now();
        let batches = session
            .sql(sql)
            .await?
            .collect()
            .await
            .map_err(|e| format!("Q{} ({variant}): {e}", i + 1))?;
        times.push(started.elapsed().as_secs_f64());
        let diff = differences(
            &arrow_rows(&batches),
            expected,
            3,
            approximate_columns(i + 1),
        );
        if !diff.is_empty() {
            return Err(format!(
                "Q{} ({variant}) answers wrongly: {}",
                i + 1,
                diff.join("; ")
            )
            .into());
        }
    }
    Ok(times)
}

/// An engine over the replicas: `pg` (PostgreSQL, primary first) and
/// `maria` (MariaDB), with `hedge_after` and `resume`.
async fn replicated(
    pg: &[&PgServer],
    maria: &[&MariaDbServer],
    hedge_after: Option<HedgeAfter>,
    resume: Resume,
) -> Result<Engine, Error> {
    let settings = ReplicaSettings {
        stall_timeout: Duration::from_secs(5),
        first_batch_timeout: Duration::from_secs(60),
        hedge_after,
        resume,
        ..ReplicaSettings::default()
    };
    let source = |urls: Vec<String>| {
        ServerSourceConfig::new(urls)
            .with_policy(Policy::PrimaryFirst)
            .with_settings(settings.clone())
    };
    Ok(Engine::builder()
        .with_source(
            "sales",
            SourceConfig::Postgres(source(pg.iter().map(|s| s.url("split")).collect())),
        )
        .with_source(
            "catalog",
            SourceConfig::MySql(source(maria.iter().map(|s| s.url("tpch")).collect())),
        )
        .with_search_path(["sales.public", "catalog.tpch"])
        .build()
        .await?)
}

/// What the replica sets of `engine` did: failovers, resumes, hedges.
fn moves(engine: &Engine) -> String {
    engine
        .sources()
        .iter()
        .filter_map(|info| {
            let s = info.replica_set.as_ref()?.stats();
            Some(format!(
                "{}: {} failovers, {} resumes, {} hedges ({} won)",
                info.name, s.failovers, s.resumes, s.hedges, s.hedges_won
            ))
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Waits until every replica of `engine` is healthy again.
async fn wait_healthy(engine: &Engine) -> Result<(), Error> {
    let started = Instant::now();
    loop {
        let all = engine.sources().iter().all(|info| {
            info.replica_set
                .as_ref()
                .is_none_or(|r| r.stats().replicas.iter().all(|r| r.state == "healthy"))
        });
        if all {
            return Ok(());
        }
        if started.elapsed() > Duration::from_secs(120) {
            return Err("a replica did not come back within two minutes".into());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[derive(Clone, Copy, Debug)]
enum Hurt {
    Kill,
    Pause,
}

/// One round on a fresh, warmed engine while the PostgreSQL primary is
/// hurt `after` into it; the server is restored afterwards.
async fn hurt_round(
    primary: &mut PgServer,
    others: (&PgServer, &PgServer, &MariaDbServer, &MariaDbServer),
    hedge_after: Option<HedgeAfter>,
    hurt: Hurt,
    after: Duration,
    work: &Workload,
    variant: &str,
) -> Result<(Vec<f64>, String), Error> {
    let (pg_a, pg_b, maria, maria_a) = others;
    let engine = replicated(
        &[&*primary, pg_a, pg_b],
        &[maria, maria_a],
        hedge_after,
        Resume::Replay,
    )
    .await?;
    let session = engine.session();
    round(&session, work, variant).await?;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let timer = tokio::spawn(async move {
        tokio::select! {
            () = tokio::time::sleep(after) => true,
            _ = rx => false,
        }
    });
    let run = {
        let session = session.clone();
        let work = work.clone();
        let variant = variant.to_string();
        tokio::spawn(async move {
            round(&session, &work, &variant)
                .await
                .map_err(|e| e.to_string())
        })
    };
    let fired = timer.await?;
    if fired {
        match hurt {
            Hurt::Kill => primary.kill()?,
            Hurt::Pause => primary.pause()?,
        }
    }
    let times = run.await?;
    let _ = tx.send(());
    if fired {
        match hurt {
            Hurt::Kill => primary.restart().await?,
            Hurt::Pause => primary.resume()?,
        }
    }
    let times = times?;
    let report = format!(
        "{variant}: {} at {:.1} s; {}",
        if fired {
            "hurt"
        } else {
            "not hurt (the round ended first)"
        },
        after.as_secs_f64(),
        moves(&engine)
    );
    wait_healthy(&engine).await?;
    Ok((times, report))
}

fn total(times: &[f64]) -> f64 {
    times.iter().filter(|t| !t.is_nan()).sum()
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let mut args = std::env::args().skip(1);
    let scale: f64 = args.next().map_or(Ok(1.0), |a| a.parse())?;
    let runs: usize = args.next().map_or(Ok(1), |a| a.parse())?;
    if runs == 0 {
        return Err("RUNS must be at least 1".into());
    }
    let only: Vec<usize> = match args.next() {
        None => Vec::new(),
        Some(a) => a
            .split(',')
            .map(str::parse)
            .collect::<Result<Vec<usize>, _>>()?,
    };

    let mut pg = PgServer::start().await?;
    let maria = MariaDbServer::start().await?;
    let loading = Instant::now();
    load_split(&pg, &maria, scale, Ddl::Spec).await?;
    let reference_db = pg.connect("reference").await?;
    let mut reference = Vec::new();
    for (i, sql) in QUERIES.iter().enumerate() {
        reference.push(
            postgres_rows(&reference_db, sql)
                .await
                .map_err(|e| format!("reference Q{}: {e}", i + 1))?,
        );
    }
    drop(reference_db);
    let work = Workload { reference, only };
    let pg_a = pg.replica().await?;
    let pg_b = pg.replica().await?;
    let maria_a = maria.replica().await?;
    eprintln!(
        "loaded scale {scale} and made the replicas in {:.0?}",
        loading.elapsed()
    );

    let single = replicated(&[&pg], &[&maria], None, Resume::Off)
        .await?
        .session();
    let healthy_engine = replicated(
        &[&pg, &pg_a, &pg_b],
        &[&maria, &maria_a],
        None,
        Resume::Replay,
    )
    .await?;
    let healthy = healthy_engine.session();
    round(&single, &work, "single").await?;
    round(&healthy, &work, "healthy").await?;
    let mut best_single = vec![f64::NAN; QUERIES.len()];
    let mut best_healthy = vec![f64::NAN; QUERIES.len()];
    for _ in 0..runs {
        for (best, t) in best_single
            .iter_mut()
            .zip(round(&single, &work, "single").await?)
        {
            *best = best.min(t);
        }
        for (best, t) in best_healthy
            .iter_mut()
            .zip(round(&healthy, &work, "healthy").await?)
        {
            *best = best.min(t);
        }
    }
    drop(healthy);
    drop(healthy_engine);

    let half = Duration::from_secs_f64(total(&best_healthy) / 2.0);
    let others = (&pg_a, &pg_b, &maria, &maria_a);
    let p95 = Some(HedgeAfter::Percentile(95.0));
    let mut reports = Vec::new();
    let (killed, r) = hurt_round(&mut pg, others, None, Hurt::Kill, half, &work, "killed").await?;
    reports.push(r);
    let (paused, r) = hurt_round(&mut pg, others, None, Hurt::Pause, half, &work, "paused").await?;
    reports.push(r);
    let (hedged, r) = hurt_round(
        &mut pg,
        others,
        p95,
        Hurt::Pause,
        half,
        &work,
        "paused, hedged",
    )
    .await?;
    reports.push(r);

    println!(
        "TPC-H scale {scale} (Spec DDL); PostgreSQL 3 replicas, MariaDB 2; best of {runs} for single and healthy; seconds"
    );
    println!(
        "{:<4} {:>8} {:>8} {:>6} {:>8} {:>8} {:>8}",
        "q", "single", "healthy", "ratio", "killed", "paused", "hedged"
    );
    for i in 0..QUERIES.len() {
        if best_single[i].is_nan() {
            continue;
        }
        println!(
            "Q{:<3} {:>8.3} {:>8.3} {:>6.2} {:>8.3} {:>8.3} {:>8.3}",
            i + 1,
            best_single[i],
            best_healthy[i],
            best_healthy[i] / best_single[i],
            killed[i],
            paused[i],
            hedged[i]
        );
    }
    let (s, h) = (total(&best_single), total(&best_healthy));
    println!(
        "total {s:>8.3} {h:>8.3} {:>6.2} {:>8.3} {:>8.3} {:>8.3}",
        h / s,
        total(&killed),
        total(&paused),
        total(&hedged)
    );
    println!("healthy / single = {:.2} (target ≤ 1.05)", h / s);
    println!(
        "killed / healthy = {:.2} (target ≤ 1.2)",
        total(&killed) / h
    );
    println!("paused / healthy = {:.2} (no target)", total(&paused) / h);
    println!(
        "paused, hedged / healthy = {:.2} (target ≤ 1.5)",
        total(&hedged) / h
    );
    for r in reports {
        println!("{r}");
    }
    Ok(())
}
