//! Push or pull on a real source: a PostgreSQL join that the source runs
//! slowly (its hash and merge joins turned off, so it loops over every
//! pair of rows) is run whole once, measured, and from then on run by
//! Spar over the two tables' fragments, with the same answer;
//! `system.source_calibration` shows what was measured, `SET
//! spar.push_or_pull = false` and `ANALYZE` bring the whole fragment back.

use spar_engine::{Engine, ServerSourceConfig, Session, SourceConfig};
use spar_tests::harness::PgServer;

fn ok<T, E: std::fmt::Display>(r: Result<T, E>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

/// The fragment lines of `sql`'s plan.
async fn fragments(session: &Session, sql: &str) -> Vec<String> {
    spar_tests::rows(session, &format!("EXPLAIN {sql}"))
        .await
        .join("\n")
        .lines()
        .filter(|l| l.contains("FragmentExec"))
        .map(str::to_string)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_join_the_source_ran_slowly_is_run_by_spar_with_the_same_answer() {
    let pg = ok(PgServer::start().await);
    ok(pg.create_database("pp").await);
    ok(pg
        .execute(
            "pp",
            "CREATE TABLE a (id INT, k INT, g INT);
             CREATE TABLE b (id INT, k INT);
             INSERT INTO a SELECT i, i % 1000, i % 7 FROM generate_series(1, 200000) i;
             INSERT INTO b SELECT i, i * 7 FROM generate_series(1, 60) i;
             ANALYZE a;
             ANALYZE b;
             ALTER DATABASE pp SET enable_hashjoin = off;
             ALTER DATABASE pp SET enable_mergejoin = off;",
        )
        .await);
    let engine = ok(Engine::builder()
        .with_source(
            "pg",
            SourceConfig::Postgres(ServerSourceConfig::new([pg.url("pp")])),
        )
        .build()
        .await);
    let session = engine.session();
    let query = "SELECT a.g, count(*) AS n, sum(b.id) AS s FROM pg.public.a JOIN pg.public.b \
                 ON a.k = b.k GROUP BY a.g ORDER BY a.g";
    // Estimated, the join and aggregate are cheap in the source.
    let plan = fragments(&session, query).await;
    assert_eq!(plan.len(), 1, "{plan:?}");
    assert!(!plan[0].contains("push_or_pull=split"), "{plan:?}");
    let whole_answer = spar_tests::rows(&session, query).await;

    // Measured, they were not: Spar joins the two tables' rows instead.
    let plan = fragments(&session, query).await;
    assert_eq!(plan.len(), 2, "{plan:?}");
    for line in &plan {
        assert!(line.contains("push_or_pull=split (whole "), "{line}");
        assert!(line.contains("s measured, split "), "{line}");
        assert!(
            !line.contains("JOIN") && !line.contains("GROUP BY"),
            "{line}"
        );
    }
    let split_answer = spar_tests::rows(&session, query).await;
    // Its pieces measured, it stays split.
    assert_eq!(fragments(&session, query).await.len(), 2);
    // Both answers are DataFusion's own (every table read whole).
    let reference = {
        let off = engine.session();
        spar_tests::rows(&off, "SET spar.pushdown = false").await;
        spar_tests::rows(&off, query).await
    };
    assert_eq!(reference.len(), 7);
    assert_eq!(whole_answer, reference);
    assert_eq!(split_answer, reference);

    // What was measured: the join's work was slower than the model's.
    assert_eq!(
        spar_tests::rows(
            &session,
            "SELECT source, work_fragments >= 1, work_factor > 2.0, fragments_remembered >= 3, \
             last_measured IS NOT NULL FROM system.source_calibration",
        )
        .await,
        ["pg|true|true|true|true"]
    );

    // The switch pushes it whole again.
    let whole = engine.session();
    spar_tests::rows(&whole, "SET spar.push_or_pull = false").await;
    assert_eq!(fragments(&whole, query).await.len(), 1);

    // New statistics make new plans: the times are forgotten, and the
    // whole fragment is weighed by the model (the measured speed stays).
    spar_tests::rows(&session, "ANALYZE pg.public.a").await;
    let plan = fragments(&session, query).await;
    assert!(plan.iter().all(|l| !l.contains("s measured")), "{plan:?}");
}
