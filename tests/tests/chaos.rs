//! Chaos: TPC-H's 22 queries at scale 0.1 over PostgreSQL (a primary and
//! two streaming replicas) and MariaDB (a primary and one replica), run in
//! a loop while a background task kills, pauses and restarts one server at
//! a time. Every answer must equal the reference (one PostgreSQL database
//! holding all eight tables, read before the chaos starts).
//!
//! `SPAR_CHAOS_SECONDS` (default 60) bounds the loop; at least one round
//! of the 22 queries runs. `SPAR_CHAOS_SEED` repeats a run's choices.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use spar_engine::replica::{HedgeAfter, ReplicaSettings};
use spar_engine::{Engine, Policy, ServerSourceConfig, SourceConfig};
use spar_server::tpch::QUERIES;
use spar_tests::compare::{differences, postgres_rows, spar_rows};
use spar_tests::differential::Rng;
use spar_tests::harness::{MariaDbServer, PgServer};
use spar_tests::tpch::{approximate_columns, load_split, Ddl};

const SCALE: f64 = 0.1;

fn ok<T, E: std::fmt::Display>(r: Result<T, E>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

/// A server the chaos task may hurt.
enum Server {
    Pg(PgServer),
    Maria(MariaDbServer),
}

impl Server {
    fn name(&self) -> String {
        match self {
            Self::Pg(s) => format!("postgres:{}", s.port()),
            Self::Maria(s) => format!("mariadb:{}", s.port()),
        }
    }

    fn kill(&mut self) -> Result<(), String> {
        match self {
            Self::Pg(s) => s.kill(),
            Self::Maria(s) => s.kill(),
        }
        .map_err(|e| e.to_string())
    }

    async fn restart(&mut self) -> Result<(), String> {
        match self {
            Self::Pg(s) => s.restart().await,
            Self::Maria(s) => s.restart().await,
        }
        .map_err(|e| e.to_string())
    }

    fn pause(&self) -> Result<(), String> {
        match self {
            Self::Pg(s) => s.pause(),
            Self::Maria(s) => s.pause(),
        }
        .map_err(|e| e.to_string())
    }

    fn resume(&self) -> Result<(), String> {
        match self {
            Self::Pg(s) => s.resume(),
            Self::Maria(s) => s.resume(),
        }
        .map_err(|e| e.to_string())
    }
}

/// Deadlines short enough that a hurt server is given up on within
/// seconds; hedging after 2 s without a first batch.
fn settings() -> ReplicaSettings {
    ReplicaSettings {
        connect_timeout: Duration::from_secs(2),
        first_batch_timeout: Duration::from_secs(30),
        stall_timeout: Duration::from_secs(5),
        retry_deadline: Duration::from_secs(30),
        health_check_interval: Duration::from_millis(500),
        circuit_failures: 1,
        circuit_backoff: Duration::from_millis(500),
        hedge_after: Some(HedgeAfter::Fixed(Duration::from_secs(2))),
        ..ReplicaSettings::default()
    }
}

/// Kills or pauses one server at a time, for one to three seconds, until
/// `stop`; then hands the servers back, all running.
async fn chaos(
    mut servers: Vec<Server>,
    seed: u64,
    stop: Arc<AtomicBool>,
    actions: Arc<AtomicUsize>,
) -> Vec<Server> {
    let mut rng = Rng::new(seed);
    let pause_for = |rng: &mut Rng| Duration::from_millis(1000 + rng.below(2000) as u64);
    while !stop.load(Ordering::Relaxed) {
        tokio::time::sleep(pause_for(&mut rng)).await;
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let i = rng.below(servers.len());
        let server = &mut servers[i];
        let name = server.name();
        if rng.chance(50) {
            eprintln!("chaos: kill {name}");
            ok(server.kill());
            tokio::time::sleep(pause_for(&mut rng)).await;
            ok(server.restart().await);
            eprintln!("chaos: {name} restarted");
        } else {
            eprintln!("chaos: pause {name}");
            ok(server.pause());
            tokio::time::sleep(pause_for(&mut rng)).await;
            ok(server.resume());
            eprintln!("chaos: {name} resumed");
        }
        actions.fetch_add(1, Ordering::Relaxed);
    }
    servers
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tpch_answers_stay_exact_while_replicas_die() {
    let seconds: u64 = std::env::var("SPAR_CHAOS_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let seed: u64 = std::env::var("SPAR_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        });
    eprintln!("chaos: seed {seed} (SPAR_CHAOS_SEED), {seconds} s (SPAR_CHAOS_SECONDS)");

    let pg = ok(PgServer::start().await);
    let maria = ok(MariaDbServer::start().await);
    ok(load_split(&pg, &maria, SCALE, Ddl::Spec).await);
    let client = ok(pg.connect("reference").await);
    let mut reference = Vec::new();
    for (i, sql) in QUERIES.iter().enumerate() {
        let rows = postgres_rows(&client, sql)
            .await
            .unwrap_or_else(|e| panic!("reference Q{}: {e}", i + 1));
        reference.push(rows);
    }
    drop(client);
    let pg_a = ok(pg.replica().await);
    let pg_b = ok(pg.replica().await);
    let maria_a = ok(maria.replica().await);

    let source = |urls: Vec<String>| {
        ServerSourceConfig::new(urls)
            .with_policy(Policy::RoundRobin)
            .with_settings(settings())
    };
    let engine = ok(Engine::builder()
        .with_source(
            "sales",
            SourceConfig::Postgres(source(vec![
                pg.url("split"),
                pg_a.url("split"),
                pg_b.url("split"),
            ])),
        )
        .with_source(
            "catalog",
            SourceConfig::MySql(source(vec![maria.url("tpch"), maria_a.url("tpch")])),
        )
        .with_search_path(["sales.public", "catalog.tpch"])
        .build()
        .await);
    let session = engine.session();

    let stop = Arc::new(AtomicBool::new(false));
    let actions = Arc::new(AtomicUsize::new(0));
    let servers = vec![
        Server::Pg(pg),
        Server::Pg(pg_a),
        Server::Pg(pg_b),
        Server::Maria(maria),
        Server::Maria(maria_a),
    ];
    let task = tokio::spawn(chaos(
        servers,
        seed,
        Arc::clone(&stop),
        Arc::clone(&actions),
    ));

    let started = Instant::now();
    let mut failures = Vec::new();
    let mut runs = 0;
    let mut rounds = 0;
    while rounds == 0 || started.elapsed() < Duration::from_secs(seconds) {
        for (i, (sql, expected)) in QUERIES.iter().zip(&reference).enumerate() {
            runs += 1;
            match spar_rows(&session, sql).await {
                Ok(rows) => {
                    let diff = differences(&rows, expected, 3, approximate_columns(i + 1));
                    if !diff.is_empty() {
                        failures.push(format!("round {rounds} Q{}: {}", i + 1, diff.join("; ")));
                    }
                }
                Err(e) => failures.push(format!("round {rounds} Q{}: {e}", i + 1)),
            }
        }
        rounds += 1;
    }
    stop.store(true, Ordering::Relaxed);
    let servers = ok(task.await);

    let mut report = Vec::new();
    let mut moved = 0;
    for info in engine.sources() {
        if let Some(set) = &info.replica_set {
            let s = set.stats();
            moved += s.failovers + s.resumes + s.hedges;
            report.push(format!(
                "{}: {} fragments, {} attempts, {} failovers, {} resumes, {} hedges ({} won, {} lost), {} failed",
                info.name,
                s.fragments,
                s.attempts,
                s.failovers,
                s.resumes,
                s.hedges,
                s.hedges_won,
                s.hedges_lost,
                s.failed
            ));
        }
    }
    let actions = actions.load(Ordering::Relaxed);
    eprintln!(
        "chaos: {runs} queries in {rounds} rounds, {actions} kills and pauses; {}",
        report.join("; ")
    );
    drop(servers);
    assert!(
        failures.is_empty(),
        "{} of {runs} answers wrong or failed (seed {seed}):\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(actions > 0, "the chaos task did nothing");
    assert!(
        moved > 0,
        "no fragment met a failure: the test proved nothing ({})",
        report.join("; ")
    );
}
