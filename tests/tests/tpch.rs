//! TPC-H's 22 queries at scale 0.1 through Spar, in two layouts, against
//! the answers of one PostgreSQL database holding all eight tables:
//!
//! - `orders`, `lineitem`, `customer` in PostgreSQL and `part`, `partsupp`,
//!   `supplier`, `nation`, `region` in MariaDB, declared as the TPC-H
//!   specification declares them (`CHAR(n)`, `DECIMAL(15,2)`, `DATE`),
//!   with pushdown on (twice: the second run plans with the fragments'
//!   measured times), with each of Spar's rules off, and with pushdown off;
//! - the demo's layout: the first three in SQLite, the rest in Parquet.
//!
//! Values are compared under the rules of `spar_tests::compare`: equal in
//! value, but for the AVG and division columns `approximate_columns`
//! names.

use spar_engine::{
    Engine, FileFormatKind, FileSourceConfig, Session, SourceConfig, SqliteSourceConfig,
};
use spar_server::demo::{write_parquet, write_sqlite, CATALOG_TABLES, SALES_TABLES};
use spar_server::tpch::QUERIES;
use spar_tests::compare::{differences, postgres_rows, spar_rows, Rows};
use spar_tests::harness::{MariaDbServer, PgServer};
use spar_tests::tpch::{approximate_columns, load_split, split_engine, Ddl};

const SCALE: f64 = 0.1;

fn ok<T, E: std::fmt::Display>(r: Result<T, E>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

/// Runs every query on each session and returns one line per query that
/// failed or differs from the reference.
async fn check_layout(name: &str, session: &Session, reference: &[Rows]) -> Vec<String> {
    let mut failures = Vec::new();
    for (i, (sql, expected)) in QUERIES.iter().zip(reference).enumerate() {
        let started = std::time::Instant::now();
        let result = spar_rows(session, sql).await;
        eprintln!("{name} Q{}: {:.2?}", i + 1, started.elapsed());
        match result {
            Ok(rows) => {
                let diff = differences(&rows, expected, 3, approximate_columns(i + 1));
                if !diff.is_empty() {
                    failures.push(format!("{name} Q{}: {}", i + 1, diff.join("; ")));
                }
            }
            Err(e) => failures.push(format!("{name} Q{}: {e}", i + 1)),
        }
    }
    failures
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tpch_answers_match_one_postgres_database() {
    let pg = ok(PgServer::start().await);
    let maria = ok(MariaDbServer::start().await);
    ok(load_split(&pg, &maria, SCALE, Ddl::Spec).await);

    let dir = ok(tempfile::tempdir());
    let sqlite = dir.path().join("sales.db");
    ok(write_sqlite(&sqlite, &SALES_TABLES, SCALE));
    let parquet = dir.path().join("catalog");
    ok(std::fs::create_dir_all(&parquet));
    for table in CATALOG_TABLES {
        ok(write_parquet(
            &parquet.join(format!("{table}.parquet")),
            table,
            SCALE,
        ));
    }

    let client = ok(pg.connect("reference").await);
    let mut reference = Vec::new();
    for (i, sql) in QUERIES.iter().enumerate() {
        let rows = postgres_rows(&client, sql)
            .await
            .unwrap_or_else(|e| panic!("reference Q{}: {e}", i + 1));
        assert!(!rows.is_empty(), "reference Q{} returned no rows", i + 1);
        reference.push(rows);
    }

    let servers = ok(split_engine(&pg, &maria).await);
    let demo = ok(Engine::builder()
        .with_source(
            "sales",
            SourceConfig::Sqlite(SqliteSourceConfig::new([sqlite])),
        )
        .with_source(
            "catalog",
            SourceConfig::Files(FileSourceConfig::new(
                parquet.to_string_lossy(),
                FileFormatKind::Parquet,
            )),
        )
        .with_search_path(["sales.main", "catalog.main"])
        .build()
        .await);

    // The pushdown under test happens, over CHAR(n) columns too: Q3's
    // join of customer, orders and lineitem, its filters (one on
    // `c_mktsegment CHAR(10)`) and its sum go to PostgreSQL as one
    // statement; Q1's aggregate, grouped by two CHAR(1) columns, is
    // computed there.
    let fragments = |plan: &Rows| -> Vec<String> {
        plan.iter()
            .flatten()
            .filter_map(|c| c.text.as_deref())
            .flat_map(str::lines)
            .filter(|l| l.contains("source=sales"))
            .map(str::to_string)
            .collect()
    };
    let q3 = fragments(&ok(spar_rows(
        &servers.session(),
        &format!("EXPLAIN {}", QUERIES[2]),
    )
    .await));
    assert!(
        q3.iter().any(|f| f.matches(" JOIN ").count() == 2
            && f.contains("sum(")
            && f.contains("'BUILDING'")),
        "{q3:#?}"
    );
    let q1 = fragments(&ok(spar_rows(
        &servers.session(),
        &format!("EXPLAIN {}", QUERIES[0]),
    )
    .await));
    assert!(
        q1.iter().any(|f| f.contains("GROUP BY")
            && f.contains("\"l_returnflag\"")
            && f.contains("sum(")),
        "{q1:#?}"
    );

    let mut failures = Vec::new();
    failures.extend(check_layout("postgres+mariadb", &servers.session(), &reference).await);
    // Again, now that the fragments' times are measured: `push_or_pull`
    // splits those the sources ran slowly.
    failures
        .extend(check_layout("postgres+mariadb, measured", &servers.session(), &reference).await);
    // Each of Spar's rules off in turn.
    for rule in ["runtime_filters", "join_reorder", "push_or_pull"] {
        let session = servers.session();
        ok(session.sql(&format!("SET spar.{rule} = false")).await);
        let name = format!("postgres+mariadb, {rule} off");
        failures.extend(check_layout(&name, &session, &reference).await);
    }
    let off = servers.session();
    ok(off.sql("SET spar.pushdown = false").await);
    failures.extend(check_layout("postgres+mariadb, pushdown off", &off, &reference).await);
    failures.extend(check_layout("sqlite+parquet", &demo.session(), &reference).await);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
