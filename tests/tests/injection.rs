//! No value and no name can change the SQL Spar sends: property tests
//! against real PostgreSQL, MariaDB and SQLite.
//!
//! For arbitrary strings full of quotes, backslashes, comment markers and
//! NUL, `s = <value>` (written in the query, and bound as a parameter)
//! selects exactly the rows whose column holds that value, with the filter
//! running at the source; and tables, columns and aliases named with such
//! strings are read back by those names. `SPAR_PROPTEST_CASES` sets the
//! number of values (default 128); each run prints how many it checked.

use std::path::PathBuf;

use arrow::array::{Array, AsArray};
use datafusion::scalar::ScalarValue;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use spar_engine::{Engine, ServerSourceConfig, SourceConfig, SqliteSourceConfig};
use spar_tests::harness::{MariaDbServer, PgServer};

fn ok<T, E: std::fmt::Display>(r: Result<T, E>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

fn cases() -> u32 {
    std::env::var("SPAR_PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(128)
}

/// A runtime for one test; the property runner's cases block on it.
fn runtime() -> tokio::runtime::Runtime {
    ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build())
}

/// Pieces that break naive quoting, and any character at all.
fn hostile_string(max_pieces: usize, nul: bool) -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        4 => prop::sample::select(vec![
            "'", "''", "\\", "\\'", "\\\\", "\"", "\"\"", "`", "``", "--", "/*", "*/", ";",
            "$", "$$", "$a$", "%", "_", " ", "\n", "\t", "\r", "?", "$1", "é", "😀", "中",
            " OR 1=1 -- ", "') UNION SELECT 1 --", "x'", "USING utf8mb4) AS BINARY))",
        ])
        .prop_map(str::to_string),
        1 => any::<char>().prop_map(|c| c.to_string()),
        1 => "[a-zA-Z0-9]{1,4}",
    ];
    prop::collection::vec(piece, 0..max_pieces)
        .prop_map(|p| p.concat())
        .prop_map(move |s| if nul { s } else { s.replace('\0', "") })
}

/// `value` as a string literal in Spar's own SQL (DataFusion's parser:
/// quotes doubled, backslashes plain).
fn df_literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// `name` as a quoted identifier in Spar's own SQL.
fn df_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The three sources, each with a table `probe(id, s)`.
struct Sources {
    _pg: PgServer,
    _my: MariaDbServer,
    _dir: tempfile::TempDir,
    pg: tokio_postgres::Client,
    my: mysql_async::Conn,
    sqlite: PathBuf,
}

const SOURCES: [(&str, &str); 3] = [
    ("pg", "pg.public.probe"),
    ("my", "my.probe.probe"),
    ("lite", "lite.main.probe"),
];

async fn sources() -> Sources {
    let pg_server = ok(PgServer::start().await);
    ok(pg_server.create_database("probe").await);
    ok(pg_server
        .execute("probe", "CREATE TABLE probe (id int PRIMARY KEY, s text)")
        .await);
    let my_server = ok(MariaDbServer::start().await);
    ok(my_server.create_database("probe").await);
    ok(my_server
        .execute(
            "probe",
            "CREATE TABLE probe (id INT PRIMARY KEY, s LONGTEXT) CHARACTER SET utf8mb4",
        )
        .await);
    let dir = ok(tempfile::tempdir());
    let sqlite = spar_tests::sqlite_db(
        dir.path(),
        "probe.db",
        "CREATE TABLE probe (id INTEGER PRIMARY KEY, s TEXT)",
    );
    Sources {
        pg: ok(pg_server.connect("probe").await),
        my: ok(my_server.connect("probe").await),
        _pg: pg_server,
        _my: my_server,
        _dir: dir,
        sqlite,
    }
}

async fn engine(s: &Sources, pg_url: String, my_url: String) -> Engine {
    ok(Engine::builder()
        .with_source(
            "pg",
            SourceConfig::Postgres(ServerSourceConfig::new([pg_url])),
        )
        .with_source("my", SourceConfig::MySql(ServerSourceConfig::new([my_url])))
        .with_source(
            "lite",
            SourceConfig::Sqlite(SqliteSourceConfig::new([s.sqlite.clone()])),
        )
        .build()
        .await)
}

/// Column 0 of every row, as `i64`s, sorted.
async fn ids(df: datafusion::dataframe::DataFrame) -> Result<Vec<i64>, String> {
    let batches = df.collect().await.map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for batch in batches {
        let column = arrow::compute::cast(batch.column(0), &arrow::datatypes::DataType::Int64)
            .map_err(|e| e.to_string())?;
        let column = column.as_primitive::<arrow::datatypes::Int64Type>();
        out.extend((0..column.len()).map(|i| column.value(i)));
    }
    out.sort_unstable();
    Ok(out)
}

/// The SQL of the query's fragments, from EXPLAIN.
async fn fragment_sql(session: &spar_engine::Session, sql: &str) -> String {
    spar_tests::rows(session, &format!("EXPLAIN {sql}"))
        .await
        .into_iter()
        .filter(|l| l.contains("FragmentExec"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn string_literals_select_exactly_their_value_at_every_source() {
    let rt = runtime();
    let s = rt.block_on(sources());
    let (pg_url, my_url) = (s._pg.url("probe"), s._my.url("probe"));
    let spar = rt.block_on(engine(&s, pg_url, my_url));
    let session = spar.session();
    let lite = ok(rusqlite::Connection::open(&s.sqlite));
    let my = tokio::sync::Mutex::new(s.my);

    // What each table holds, to compute the expected answer.
    let stored: std::cell::RefCell<Vec<(i64, String)>> = Default::default();
    let mut runner = TestRunner::new(Config {
        cases: cases(),
        failure_persistence: None,
        ..Config::default()
    });
    let checked = std::cell::Cell::new(0u32);
    let result = runner.run(&hostile_string(8, true), |value| {
        checked.set(checked.get() + 1);
        let id = i64::try_from(stored.borrow().len()).unwrap_or(i64::MAX) + 1;
        // PostgreSQL text cannot hold NUL: the row holds the value without it.
        let pg_value = value.replace('\0', "");
        rt.block_on(async {
            ok(s.pg
                .execute(
                    "INSERT INTO probe VALUES ($1, $2)",
                    &[&(id as i32), &pg_value],
                )
                .await);
            use mysql_async::prelude::Queryable;
            let mut my = my.lock().await;
            ok(my
                .exec_drop("INSERT INTO probe VALUES (?, ?)", (id, value.as_bytes()))
                .await);
        });
        ok(lite.execute("INSERT INTO probe VALUES (?1, ?2)", (id, &value)));
        stored.borrow_mut().push((id, value.clone()));

        for (source, table) in SOURCES {
            let expected: Vec<i64> = stored
                .borrow()
                .iter()
                .filter(|(_, v)| {
                    if source == "pg" {
                        v.replace('\0', "") == value
                    } else {
                        *v == value
                    }
                })
                .map(|(id, _)| *id)
                .collect();
            let text = format!("SELECT id FROM {table} WHERE s = {}", df_literal(&value));
            let bound = format!("SELECT id FROM {table} WHERE s = $1");
            let (got, got_bound, explain) = rt.block_on(async {
                let got = ids(ok(session.sql(&text).await)).await;
                let df = ok(session.sql(&bound).await)
                    .with_param_values(vec![ScalarValue::Utf8(Some(value.clone()))]);
                let got_bound = match df {
                    Ok(df) => ids(df).await,
                    Err(e) => Err(e.to_string()),
                };
                (got, got_bound, fragment_sql(&session, &text).await)
            });
            let context = format!("{source}: value {value:?}\n{explain}");
            prop_assert_eq!(got, Ok(expected.clone()), "{}", context);
            prop_assert_eq!(got_bound, Ok(expected), "bound: {}", context);
            // The filter runs at the source, except where its SQL cannot
            // hold the value (NUL in PostgreSQL and SQLite).
            let pushed = explain.contains("WHERE");
            let can_push = source == "my" || !value.contains('\0');
            if pushed != can_push {
                return Err(TestCaseError::fail(format!(
                    "filter pushed: {pushed}; {context}"
                )));
            }
        }
        Ok(())
    });
    println!(
        "string literals: {} values checked at 3 sources",
        checked.get()
    );
    if let Err(e) = result {
        panic!("{e}");
    }
}

#[test]
fn the_reported_injections_return_only_the_granted_rows() {
    let rt = runtime();
    let mut s = rt.block_on(sources());
    rt.block_on(async {
        ok(s._my
            .execute("probe", "CREATE TABLE big (id INT PRIMARY KEY, payload TEXT); INSERT INTO big VALUES (1, 'secret')")
            .await);
        ok(s.pg.batch_execute("INSERT INTO probe VALUES (1, 'a''b'), (2, 'a''''b')").await);
        use mysql_async::prelude::Queryable;
        ok(s.my.query_drop("INSERT INTO probe VALUES (1, 'x')").await);
    });
    let (pg_url, my_url) = (s._pg.url("probe"), s._my.url("probe"));
    let spar = rt.block_on(engine(&s, pg_url, my_url));
    let session = spar.session();
    rt.block_on(async {
        // The issue's query: a quote after a backslash ended MariaDB's
        // literal, and a UNION read a table of the attacker's choosing.
        let attack = "select id, s from my.probe.probe where s = 'x\\'' USING utf8mb4) AS BINARY)) UNION SELECT id, payload FROM probe.big WHERE id < 4 -- '";
        let got = spar_tests::rows(&session, attack).await;
        assert!(got.is_empty(), "{got:?}");
        let sql = fragment_sql(&session, attack).await;
        assert!(sql.contains("_utf8mb4 X'"), "{sql}");
        assert!(!sql.contains("UNION"), "{sql}");
        // Two quotes in a row were sent as one: `a''b` matched `a'b`.
        let got = spar_tests::rows(&session, "SELECT id FROM pg.public.probe WHERE s = 'a''''b'").await;
        assert_eq!(got, ["2"]);
        let got = spar_tests::rows(&session, "SELECT id FROM pg.public.probe WHERE s = 'a\\'''").await;
        assert!(got.is_empty(), "{got:?}");
    });
}

#[test]
fn tables_columns_and_aliases_with_hostile_names_are_read_by_those_names() {
    let rt = runtime();
    let mut s = rt.block_on(sources());
    // Names every source accepts: no NUL, characters of the BMP only
    // (MySQL), at most 20 characters (PostgreSQL's 63 bytes), not ending in
    // a space (MySQL); distinct ignoring case (MySQL column names).
    let name = hostile_string(6, false).prop_map(|s| {
        let s: String = s
            .chars()
            .filter(|c| (*c as u32) < 0x10000)
            .take(19)
            .collect();
        format!("{s}x")
    });
    let mut runner = TestRunner::new(Config::with_cases(cases().min(48)));
    let mut names: Vec<String> = Vec::new();
    for _ in 0..cases().min(48) {
        let tree = ok(name.new_tree(&mut runner));
        let n = tree.current();
        if !names.iter().any(|m| m.to_lowercase() == n.to_lowercase()) {
            names.push(n);
        }
    }
    let lite = ok(rusqlite::Connection::open(&s.sqlite));
    rt.block_on(async {
        use mysql_async::prelude::Queryable;
        for n in &names {
            let pg = format!("\"{}\"", n.replace('"', "\"\""));
            ok(s.pg
                .batch_execute(&format!(
                    "CREATE TABLE {pg} ({pg} text); INSERT INTO {pg} VALUES ('ok')"
                ))
                .await);
            let my = format!("`{}`", n.replace('`', "``"));
            ok(s.my
                .query_drop(format!(
                    "CREATE TABLE {my} ({my} TEXT); INSERT INTO {my} VALUES ('ok')"
                ))
                .await);
            ok(lite.execute_batch(&format!(
                "CREATE TABLE {pg} ({pg} TEXT); INSERT INTO {pg} VALUES ('ok')"
            )));
        }
    });
    let (pg_url, my_url) = (s._pg.url("probe"), s._my.url("probe"));
    let spar = rt.block_on(engine(&s, pg_url, my_url));
    let session = spar.session();
    for n in &names {
        for (source, schema) in [
            ("pg", "pg.public"),
            ("my", "my.probe"),
            ("lite", "lite.main"),
        ] {
            let id = df_ident(n);
            let alias = df_ident(&format!("{n}\\\"'"));
            let sql =
                format!("SELECT {id} AS {alias} FROM {schema}.{id} WHERE {id} = 'ok' LIMIT 5");
            let df = rt
                .block_on(session.sql(&sql))
                .unwrap_or_else(|e| panic!("{source}: {sql}: {e}"));
            if std::env::var("SPAR_DEBUG").is_ok() {
                eprintln!("{}", rt.block_on(fragment_sql(&session, &sql)));
            }
            let field = df.schema().field(0).name().clone();
            assert_eq!(field, format!("{n}\\\"'"), "{source}: {sql}");
            let batches = rt
                .block_on(df.collect())
                .unwrap_or_else(|e| panic!("{source}: {sql}: {e}"));
            let values: Vec<String> = batches
                .iter()
                .flat_map(|b| {
                    let c = ok(arrow::compute::cast(
                        b.column(0),
                        &arrow::datatypes::DataType::Utf8,
                    ));
                    let c = c.as_string::<i32>();
                    (0..c.len())
                        .map(|i| c.value(i).to_string())
                        .collect::<Vec<_>>()
                })
                .collect();
            assert_eq!(values, ["ok"], "{source}: {sql}");
            let explain = rt.block_on(fragment_sql(&session, &sql));
            assert!(explain.contains("WHERE"), "{source}: not pushed: {explain}");
        }
    }
    println!("identifiers: {} names checked at 3 sources", names.len());
}
