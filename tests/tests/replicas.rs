//! Replica sets under failure, against real servers started by the
//! harness: replicas killed and paused before and during a fragment's
//! stream, lagging replicas, sources down at start-up.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::AsArray;
use arrow::datatypes::Int64Type;
use datafusion::physical_plan::display::DisplayableExecutionPlan;
use datafusion::physical_plan::{execute_stream, ExecutionPlan};
use futures::StreamExt;
use spar_engine::connectors::ReplicaPosition;
use spar_engine::replica::{ReplicaSettings, Resume};
use spar_engine::{Engine, Policy, ServerSourceConfig, Session, SourceConfig};
use spar_tests::harness::{MariaDbServer, PgServer};
use spar_tests::rows;

fn ok<T, E: std::fmt::Display>(r: Result<T, E>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

/// Rows in the big table: with rows of about 110 bytes, enough that what
/// is left after the failure does not fit in the sockets' buffers (up to
/// 32 MiB on loopback), so a paused server is seen to stall.
const ROWS: i64 = 1_000_000;

/// Short deadlines, so that a hung replica is given up on quickly, and a
/// small resume buffer, so that the scan emits early and a failure
/// mid-stream must resume (by replay: `resume`'s default).
fn settings() -> ReplicaSettings {
    ReplicaSettings {
        connect_timeout: Duration::from_secs(2),
        first_batch_timeout: Duration::from_secs(5),
        stall_timeout: Duration::from_secs(2),
        retry_deadline: Duration::from_secs(5),
        health_check_interval: Duration::from_millis(200),
        circuit_failures: 1,
        circuit_backoff: Duration::from_millis(300),
        max_staleness: None,
        resume_buffer: 64 << 10,
        resume: Resume::Replay,
        hedge_after: None,
        ..ReplicaSettings::default()
    }
}

async fn engine(source: SourceConfig) -> Engine {
    ok(Engine::builder().with_source("src", source).build().await)
}

fn pg_source(urls: Vec<String>, settings: ReplicaSettings) -> SourceConfig {
    SourceConfig::Postgres(
        ServerSourceConfig::new(urls)
            .with_policy(Policy::PrimaryFirst)
            .with_settings(settings),
    )
}

/// A PostgreSQL primary with the big table, and two streaming replicas.
async fn pg_cluster() -> (PgServer, PgServer, PgServer) {
    let primary = pg_primary().await;
    let a = ok(primary.replica().await);
    let b = ok(primary.replica().await);
    (primary, a, b)
}

/// A PostgreSQL server with the big table.
async fn pg_primary() -> PgServer {
    let primary = ok(PgServer::start().await);
    ok(primary.create_database("shop").await);
    ok(primary
        .execute(
            "shop",
            &format!(
                "CREATE TABLE big (id bigint PRIMARY KEY, v text NOT NULL);
                 INSERT INTO big SELECT g, 'row ' || g || repeat('.', 100) FROM generate_series(1, {ROWS}) g;
                 ANALYZE big;"
            ),
        )
        .await);
    primary
}

/// Reads `sql` (one BIGINT column first) to the end, calling `during`
/// once after `after_rows` rows. Returns the values of the first column,
/// and the plan (with its metrics) for EXPLAIN ANALYZE.
async fn scan_with<F: FnOnce()>(
    session: &Session,
    sql: &str,
    after_rows: usize,
    during: F,
) -> (Vec<i64>, Arc<dyn ExecutionPlan>) {
    let df = ok(session.sql(sql).await);
    let plan = ok(df.create_physical_plan().await);
    let mut stream = ok(execute_stream(
        Arc::clone(&plan),
        session.context().task_ctx(),
    ));
    let mut ids = Vec::new();
    let mut during = Some(during);
    while let Some(batch) = stream.next().await {
        let batch = ok(batch);
        ids.extend(batch.column(0).as_primitive::<Int64Type>().values().iter());
        if ids.len() >= after_rows {
            if let Some(f) = during.take() {
                eprintln!("failure injected after {} rows", ids.len());
                f();
            }
        }
    }
    (ids, plan)
}

fn analyzed(plan: &Arc<dyn ExecutionPlan>) -> String {
    DisplayableExecutionPlan::with_metrics(plan.as_ref())
        .indent(true)
        .to_string()
}

/// Every id from 1 to ROWS exactly once.
fn assert_exactly_all(ids: &[i64]) {
    assert_exactly(ids, ROWS);
}

/// Every id from 1 to `n` exactly once.
fn assert_exactly(ids: &[i64], n: i64) {
    assert_eq!(ids.len() as i64, n, "row count");
    let distinct: HashSet<i64> = ids.iter().copied().collect();
    assert_eq!(distinct.len() as i64, n, "repeated rows");
    assert_eq!(ids.iter().sum::<i64>(), n * (n + 1) / 2, "missing rows");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scan_resumes_only_on_a_replica_as_far_along_as_its_rows() {
    let (primary, mut a, b) = pg_cluster().await;
    // `b` stops replaying; rows added on the primary reach `a` only.
    ok(b.pause_replay().await);
    let more = 2_000;
    ok(primary
        .execute(
            "shop",
            &format!(
                "INSERT INTO big SELECT g, 'row ' || g || repeat('.', 100) FROM generate_series({}, {}) g",
                ROWS + 1,
                ROWS + more
            ),
        )
        .await);
    ok(primary.wait_caught_up(&a).await);
    let urls = vec![a.url("shop"), b.url("shop")];
    let engine = engine(pg_source(
        urls,
        ReplicaSettings {
            retry_deadline: Duration::from_secs(30),
            ..settings()
        },
    ))
    .await;
    let session = engine.session();
    // `a` is killed after 200,000 rows: `b` is behind the rows delivered,
    // so the scan waits for it, and continues once `b` replays again.
    let b_client = ok(b.connect("shop").await);
    let mut target = Some(&mut a);
    let (ids, plan) = scan_with(
        &session,
        "SELECT id, v FROM src.public.big",
        200_000,
        || {
            if let Some(a) = target.take() {
                ok(a.kill());
            }
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_secs(3)).await;
                if let Err(e) = b_client.simple_query("SELECT pg_wal_replay_resume()").await {
                    eprintln!("cannot resume replay: {e}");
                }
            });
        },
    )
    .await;
    assert_exactly(&ids, ROWS + more);
    let shown = analyzed(&plan);
    assert!(shown.contains("resumes=1"), "{shown}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_scan_resumes_after_its_replica_is_killed_or_paused_mid_stream() {
    let (primary, mut a, b) = pg_cluster().await;
    let urls = vec![a.url("shop"), b.url("shop")];
    let engine = engine(pg_source(urls, settings())).await;
    let session = engine.session();
    let sql = "SELECT id, v FROM src.public.big";

    // Killed after 200,000 rows: the scan replays on the second replica,
    // which reads the rows delivered again (checked, not emitted) and
    // goes on after them.
    let mut target = Some(&mut a);
    let (ids, plan) = scan_with(&session, sql, 200_000, || {
        if let Some(a) = target.take() {
            ok(a.kill());
        }
    })
    .await;
    assert_exactly_all(&ids);
    let shown = analyzed(&plan);
    assert!(shown.contains("resumes=1"), "{shown}");
    assert!(shown.contains(&format!("{} -> ", target_of(&a))), "{shown}");
    assert!(!shown.contains("ORDER BY"), "read as it comes: {shown}");

    // While it is down, system.replicas shows its circuit open and why.
    let state_of_a = format!(
        "SELECT state, role, failures > 0, last_error IS NOT NULL FROM system.replicas WHERE replica LIKE '%{}%'",
        target_of(&a)
    );
    let down = rows(&session, &state_of_a).await;
    assert!(
        down == ["open|replica|true|true"] || down == ["half-open|replica|true|true"],
        "{down:?}"
    );
    // Restarted, it comes back into rotation once its circuit's back-off
    // has passed and a health check succeeds.
    ok(a.restart().await);
    ok(primary.wait_caught_up(&a).await);
    let back = Instant::now();
    loop {
        let state = rows(&session, &state_of_a).await;
        if state[0].starts_with("healthy|replica|") {
            break;
        }
        assert!(back.elapsed() < Duration::from_secs(20), "still {state:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Paused (SIGSTOP) after 200,000 rows, read in key order (`resume =
    // "key_order"`, the same replicas as another source): the stall
    // timeout gives up on it and the scan continues on the other replica
    // after the last id delivered.
    let key_order = ReplicaSettings {
        resume: Resume::KeyOrder,
        ..settings()
    };
    ok(engine
        .register_source(
            "keyed",
            &pg_source(vec![a.url("shop"), b.url("shop")], key_order),
        )
        .await);
    let started = Instant::now();
    let keyed = "SELECT id, v FROM keyed.public.big";
    let (ids, plan) = scan_with(&session, keyed, 200_000, || ok(a.pause())).await;
    assert_exactly_all(&ids);
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "took {:?}",
        started.elapsed()
    );
    let shown = analyzed(&plan);
    assert!(shown.contains("resumes=1"), "{shown}");
    assert!(shown.contains("ORDER BY"), "read in key order: {shown}");
    ok(a.resume());
    // Once it runs again, the abandoned statement is gone from it.
    wait_no_fragments(&a).await;
    drop(b);
}

/// Statements of Spar's fragments running on `server` (after it runs
/// again), waited for until none is left.
async fn wait_no_fragments(server: &PgServer) {
    let gone = Instant::now();
    loop {
        let client = ok(server.connect("shop").await);
        let running = ok(client
            .query(
                "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%spar_fragment%' AND pid <> pg_backend_pid()",
                &[],
            )
            .await);
        let n: i64 = running.first().map(|r| r.get(0)).unwrap_or(-1);
        if n == 0 {
            return;
        }
        assert!(
            gone.elapsed() < Duration::from_secs(20),
            "{n} statements left"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statement_timeout_stops_a_stalled_query_and_its_statement() {
    let a = pg_primary().await;
    // Deadlines of the replica set far beyond the statement timeout, and a
    // circuit that failed health checks cannot open: only the statement
    // timeout can stop the query.
    let patient = ReplicaSettings {
        stall_timeout: Duration::from_secs(600),
        first_batch_timeout: Duration::from_secs(600),
        circuit_failures: 1000,
        ..settings()
    };
    let engine = engine(pg_source(vec![a.url("shop")], patient)).await;
    let session = engine.session();
    session.set_statement_timeout(Some(Duration::from_secs(3)));
    let df = ok(session.sql("SELECT id, v FROM src.public.big").await);
    let mut stream = ok(df.execute_stream().await);
    let mut delivered = 0;
    let mut error = None;
    while let Some(batch) = stream.next().await {
        match batch {
            Ok(b) => {
                delivered += b.num_rows();
                if delivered >= 100_000 && error.is_none() {
                    ok(a.pause());
                    error = Some(String::new());
                }
            }
            Err(e) => {
                error = Some(e.to_string());
                break;
            }
        }
    }
    drop(stream);
    ok(a.resume());
    let error = error.unwrap_or_default();
    assert!((delivered as i64) < ROWS, "the scan finished: {delivered}");
    assert!(
        error.contains("ran longer than spar.statement_timeout (3s)"),
        "{error}"
    );
    // The statement stopped on the server too.
    wait_no_fragments(&a).await;
}

fn target_of(server: &PgServer) -> String {
    format!("127.0.0.1:{}/shop", server.port())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_hung_or_dead_replica_before_the_first_batch() {
    let (_primary, a, mut b) = pg_cluster().await;
    let urls = vec![a.url("shop"), b.url("shop")];
    let engine = engine(pg_source(urls.clone(), settings())).await;
    let session = engine.session();
    // A second engine that hedges after 300 ms, and whose deadlines and
    // circuit breaker would not move a fragment off a paused replica.
    let hedging = self::engine(pg_source(
        urls,
        ReplicaSettings {
            connect_timeout: Duration::from_secs(600),
            first_batch_timeout: Duration::from_secs(600),
            health_check_interval: Duration::from_secs(600),
            circuit_failures: 1000,
            hedge_after: Some(spar_engine::replica::HedgeAfter::Fixed(
                Duration::from_millis(300),
            )),
            ..settings()
        },
    ))
    .await;

    // Paused before the query: the connect or first-batch deadline moves
    // the fragment on, and the answer is whole.
    ok(a.pause());

    // With hedging, the fragment also starts on the second replica after
    // 300 ms; that one answers, and the paused one's attempt is dropped.
    let hedged = hedging.session();
    let df = ok(hedged
        .sql("SELECT count(*), sum(id) FROM src.public.big")
        .await);
    let plan = ok(df.create_physical_plan().await);
    let batches = ok(ok(tokio::time::timeout(
        Duration::from_secs(60),
        datafusion::physical_plan::collect(Arc::clone(&plan), hedged.context().task_ctx()),
    )
    .await
    .map_err(|_| "no hedge: the fragment waited for the paused replica")));
    let total: usize = batches.iter().map(|b| b.num_rows()).sum();
    assert_eq!(total, 1);
    let shown = analyzed(&plan);
    assert!(
        shown.contains("hedges=1") && shown.contains(&target_of(&b)),
        "{shown}"
    );
    let stats = hedging.sources()[0]
        .replica_set
        .as_ref()
        .map(|r| r.stats())
        .map(|s| (s.hedges, s.hedges_won, s.hedges_lost));
    assert_eq!(stats, Some((1, 1, 0)));

    let started = Instant::now();
    assert_eq!(
        rows(&session, "SELECT count(*), sum(id) FROM src.public.big").await,
        vec![format!("{ROWS}|{}", ROWS * (ROWS + 1) / 2)]
    );
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "took {:?}",
        started.elapsed()
    );
    // Its circuit is open now: the next query does not wait for it.
    let started = Instant::now();
    assert_eq!(
        rows(&session, "SELECT count(*) FROM src.public.big").await,
        vec![ROWS.to_string()]
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "an open circuit was waited for: {:?}",
        started.elapsed()
    );

    // Every replica down: a clear error within the deadline, naming each.
    ok(b.kill());
    let started = Instant::now();
    let e = session
        .sql("SELECT count(*) FROM src.public.big")
        .await
        .map(|df| df.collect());
    let e = match e {
        Ok(collect) => collect.await.err().map(|e| e.to_string()),
        Err(e) => Some(e.to_string()),
    }
    .unwrap_or_default();
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "took {:?}",
        started.elapsed()
    );
    assert!(e.contains("source `src` is unavailable"), "{e}");
    assert!(
        e.contains(&format!("127.0.0.1:{}/shop", a.port()))
            && e.contains(&format!("127.0.0.1:{}/shop", b.port())),
        "{e}"
    );
    ok(a.resume());
    // The hedged-over attempt's statement did not stay behind.
    wait_no_fragments(&a).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_whose_replay_is_paused_beyond_max_staleness_gets_no_fragments() {
    let (primary, a, b) = pg_cluster().await;
    let urls = vec![a.url("shop"), b.url("shop")];
    let engine = engine(pg_source(
        urls,
        ReplicaSettings {
            max_staleness: Some(Duration::from_secs(1)),
            ..settings()
        },
    ))
    .await;
    let session = engine.session();
    ok(a.pause_replay().await);
    ok(primary
        .execute("shop", "INSERT INTO big VALUES (0, 'new')")
        .await);
    ok(primary.wait_caught_up(&b).await);
    // Wait until a health check has seen the lag beyond one second.
    let started = Instant::now();
    loop {
        let stats = engine.sources()[0].replica_set.as_ref().map(|r| r.stats());
        if stats.is_some_and(|s| s.replicas[0].state == "lagging") {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "never lagging");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // primary_first would pick `a`; it lags, so `b` (which has the new
    // row) serves.
    for _ in 0..3 {
        assert_eq!(
            rows(&session, "SELECT count(*) FROM src.public.big").await,
            vec![(ROWS + 1).to_string()]
        );
    }
    // Every replica lagging: the fragment fails and says so.
    ok(b.pause_replay().await);
    ok(primary
        .execute("shop", "INSERT INTO big VALUES (-1, 'newer')")
        .await);
    let started = Instant::now();
    loop {
        let stats = engine.sources()[0].replica_set.as_ref().map(|r| r.stats());
        if stats.is_some_and(|s| s.replicas.iter().all(|r| r.state == "lagging")) {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "never lagging");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let e = match session.sql("SELECT count(*) FROM src.public.big").await {
        Ok(df) => df.collect().await.err().map(|e| e.to_string()),
        Err(e) => Some(e.to_string()),
    }
    .unwrap_or_default();
    assert!(
        e.contains("trails its primary") && e.contains("max_staleness 1s"),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_scan_resumes_after_its_replica_is_killed_mid_stream() {
    let primary = ok(MariaDbServer::start().await);
    ok(primary.create_database("shop").await);
    ok(primary
        .execute(
            "shop",
            &format!(
                "CREATE TABLE big (id BIGINT PRIMARY KEY, v VARCHAR(20) NOT NULL);
                 SET SESSION max_recursive_iterations = {ROWS};
                 INSERT INTO big WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < {ROWS})
                   SELECT n, CONCAT('row ', n) FROM g;"
            ),
        )
        .await);
    let mut replica = ok(primary.replica().await);
    let urls = vec![replica.url("shop"), primary.url("shop")];
    let engine = engine(SourceConfig::MySql(
        ServerSourceConfig::new(urls).with_settings(settings()),
    ))
    .await;
    let session = engine.session();
    // Both report their GTID position; the primary's covers the replica's,
    // and not the other way once the replica stops applying.
    let set = engine.sources()[0].replica_set.clone();
    let set = set.unwrap_or_else(|| panic!("a SQL source has a replica set"));
    let (at_replica, at_primary) = (set.position(0).await, set.position(1).await);
    let covers = |a: &Option<ReplicaPosition>, b: &Option<ReplicaPosition>| {
        a.as_ref().zip(b.as_ref()).and_then(|(a, b)| a.covers(b))
    };
    assert!(
        matches!(at_replica, Some(ReplicaPosition::Gtid(_))),
        "{at_replica:?}"
    );
    assert_eq!(covers(&at_primary, &at_replica), Some(true));
    ok(replica.execute("", "STOP SLAVE SQL_THREAD").await);
    ok(primary
        .execute("shop", "CREATE TABLE later (id INT PRIMARY KEY)")
        .await);
    let (at_replica, at_primary) = (set.position(0).await, set.position(1).await);
    assert_eq!(covers(&at_replica, &at_primary), Some(false));
    ok(replica.execute("", "START SLAVE SQL_THREAD").await);
    ok(primary.wait_caught_up(&replica).await);
    let replica_target = format!("127.0.0.1:{}/shop", replica.port());
    let mut target = Some(&mut replica);
    let (ids, plan) = scan_with(&session, "SELECT id, v FROM src.shop.big", 200_000, || {
        if let Some(r) = target.take() {
            ok(r.kill());
        }
    })
    .await;
    assert_exactly_all(&ids);
    let shown = analyzed(&plan);
    assert!(shown.contains("resumes=1"), "{shown}");
    assert!(shown.contains(&format!("{replica_target} -> ")), "{shown}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_down_at_start_up_does_not_take_spar_down() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let lite = spar_tests::sqlite_db(
        dir.path(),
        "lite.db",
        "CREATE TABLE t (v INTEGER); INSERT INTO t VALUES (7);",
    );
    let mut pg = ok(PgServer::start().await);
    ok(pg.create_database("shop").await);
    ok(pg
        .execute(
            "shop",
            "CREATE TABLE items (id int PRIMARY KEY); INSERT INTO items VALUES (1), (2);",
        )
        .await);
    let url = pg.url("shop");
    ok(pg.kill());
    let engine = ok(Engine::builder()
        .with_source(
            "lite",
            SourceConfig::Sqlite(spar_engine::SqliteSourceConfig::new([lite])),
        )
        .with_source("pg", pg_source(vec![url], settings()))
        .with_search_path(["lite.main", "pg.public"])
        .build()
        .await);
    let session = engine.session();
    // Another source's tables work.
    assert_eq!(rows(&session, "SELECT v FROM t").await, vec!["7"]);
    // The down source's tables: an error naming the source and its replica.
    let e = session
        .sql("SELECT count(*) FROM pg.public.items")
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        e.contains("source `pg` is unavailable") && e.contains(&format!("127.0.0.1:{}", pg.port())),
        "{e}"
    );
    let e = session
        .sql("SELECT count(*) FROM items")
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(e.contains("source `pg` is unavailable"), "a bare name: {e}");
    // Back up: the catalog is read on first use, and kept if it goes down
    // again.
    ok(pg.restart().await);
    assert_eq!(
        rows(&session, "SELECT count(*) FROM items").await,
        vec!["2"]
    );
    ok(pg.kill());
    let names = rows(
        &session,
        "SELECT table_name FROM information_schema.tables WHERE table_catalog = 'pg' AND table_schema = 'public'",
    )
    .await;
    assert_eq!(names, vec!["items"]);
}
