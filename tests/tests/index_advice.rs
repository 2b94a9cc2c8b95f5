//! The index advisor on real sources: EXPLAIN notes the index a selective
//! filter or a cross-source join key lacks, `system.index_advice` counts
//! the fragments that lacked it, and its `CREATE INDEX` runs on the source
//! as given; after `ANALYZE` reads the new index, the advice is gone.

use spar_engine::{Engine, ServerSourceConfig, Session, SourceConfig, SqliteSourceConfig};
use spar_tests::harness::{MariaDbServer, PgServer};

fn ok<T, E: std::fmt::Display>(r: Result<T, E>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

/// The `index_advice=` note of the first fragment of `sql`'s plan.
async fn advice_note(session: &Session, sql: &str) -> Option<String> {
    let plan = spar_tests::rows(session, &format!("EXPLAIN {sql}"))
        .await
        .join("\n");
    let notes: Vec<String> = plan
        .lines()
        .filter(|l| l.contains("FragmentExec"))
        .filter_map(|l| l.split_once(", index_advice="))
        .map(|(_, rest)| rest.split(", ").next().unwrap_or(rest).to_string())
        .collect();
    assert!(notes.len() <= 1, "{plan}");
    notes.into_iter().next()
}

/// `system.index_advice` as `source|table|columns|reason|times_seen|rows_read|create_index`.
async fn advice_table(session: &Session) -> Vec<String> {
    spar_tests::rows(
        session,
        "SELECT source, \"table\", columns, reason, times_seen, rows_read, create_index \
         FROM system.index_advice ORDER BY source, \"table\", columns",
    )
    .await
}

#[tokio::test]
async fn sqlite_a_selective_filter_on_an_unindexed_column() {
    let dir = ok(tempfile::tempdir());
    let path = spar_tests::sqlite_db(
        dir.path(),
        "s.db",
        "CREATE TABLE t (id INTEGER PRIMARY KEY, k INT, v TEXT);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20000)
         INSERT INTO t SELECT i, i % 1000, 'v' || i FROM n;",
    );
    let engine = ok(Engine::builder()
        .with_source(
            "lite",
            SourceConfig::Sqlite(SqliteSourceConfig::new([path.clone()])),
        )
        .build()
        .await);
    let session = engine.session();
    let query = "SELECT id, v FROM lite.main.t WHERE k = 5";
    assert_eq!(
        advice_note(&session, query).await.as_deref(),
        Some("main.t(k) for filter")
    );
    // The primary key is an index.
    assert_eq!(
        advice_note(&session, "SELECT v FROM lite.main.t WHERE id = 5").await,
        None
    );
    // EXPLAIN alone records nothing; each run does.
    assert_eq!(advice_table(&session).await, Vec::<String>::new());
    for _ in 0..2 {
        assert_eq!(spar_tests::rows(&session, query).await.len(), 20);
    }
    let create = "CREATE INDEX `main`.`t_k_idx` ON `t` (`k`)";
    assert_eq!(
        advice_table(&session).await,
        [format!("lite|main.t|k|filter|2|40000|{create}")]
    );

    // The advice, taken: the statement runs on the file as given.
    let conn = ok(rusqlite::Connection::open(&path));
    ok(conn.execute_batch(create));
    drop(conn);
    // Until Spar reads the table's indexes again, it still advises it.
    assert!(advice_note(&session, query).await.is_some());
    spar_tests::rows(&session, "ANALYZE lite.main.t").await;
    assert_eq!(advice_note(&session, query).await, None);
    assert_eq!(advice_table(&session).await, Vec::<String>::new());
    assert_eq!(spar_tests::rows(&session, query).await.len(), 20);
    assert_eq!(advice_table(&session).await, Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_filters_and_join_keys_with_names_that_need_quoting() {
    let pg = ok(PgServer::start().await);
    ok(pg.create_database("ia").await);
    ok(pg
        .execute(
            "ia",
            r#"CREATE TABLE "or""ders" (id INT PRIMARY KEY, "cu""st" INT NOT NULL, total INT);
               INSERT INTO "or""ders"
                 SELECT i, i % 5000, i % 97 FROM generate_series(1, 50000) i;
               ANALYZE "or""ders";"#,
        )
        .await);
    let dir = ok(tempfile::tempdir());
    let lite = spar_tests::sqlite_db(
        dir.path(),
        "c.db",
        "CREATE TABLE vip (cust INTEGER PRIMARY KEY, name TEXT);
         INSERT INTO vip VALUES (7, 'a'), (11, 'b'), (4999, 'c');
         ANALYZE;",
    );
    let engine = ok(Engine::builder()
        .with_source(
            "pg",
            SourceConfig::Postgres(ServerSourceConfig::new([pg.url("ia")])),
        )
        .with_source(
            "lite",
            SourceConfig::Sqlite(SqliteSourceConfig::new([lite])),
        )
        .build()
        .await);
    let session = engine.session();

    // A filter on a column of 5,000 values keeps 1/5,000 of the rows.
    let filter = r#"SELECT id FROM pg.public."or""ders" WHERE "cu""st" = 42"#;
    assert_eq!(
        advice_note(&session, filter).await.as_deref(),
        Some(r#"public.or"ders(cu"st) for filter"#)
    );
    // One that keeps most rows is not worth an index.
    assert_eq!(
        advice_note(
            &session,
            r#"SELECT id FROM pg.public."or""ders" WHERE total > 3"#
        )
        .await,
        None
    );
    // Three VIP customers' keys reach the orders fragment's SQL: an index
    // on the key would serve them.
    let join = r#"SELECT o.id, v.name FROM lite.main.vip v
                  JOIN pg.public."or""ders" o ON o."cu""st" = v.cust"#;
    // (The key is compared under a cast: `cu"st` is an INT, `cust` a
    // SQLite INTEGER.)
    assert_eq!(
        advice_note(&session, join).await.as_deref(),
        Some(r#"public.or"ders(cu"st) for join key"#)
    );
    assert_eq!(spar_tests::rows(&session, join).await.len(), 30);
    assert_eq!(spar_tests::rows(&session, filter).await.len(), 10);
    let create =
        r#"CREATE INDEX CONCURRENTLY "or""ders_cu""st_idx" ON "public"."or""ders" ("cu""st")"#;
    // The first reason seen stays; both runs count.
    assert_eq!(
        advice_table(&session).await,
        [format!(
            r#"pg|public.or"ders|cu"st|join key|2|100000|{create}"#
        )]
    );
    ok(pg.execute("ia", create).await);
    spar_tests::rows(&session, r#"ANALYZE pg.public."or""ders""#).await;
    assert_eq!(advice_note(&session, filter).await, None);
    assert_eq!(advice_note(&session, join).await, None);
    assert_eq!(advice_table(&session).await, Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_a_filter_advised_and_its_create_index_run() {
    let maria = ok(MariaDbServer::start().await);
    ok(maria.create_database("ia").await);
    ok(maria
        .execute(
            "ia",
            "CREATE TABLE `ev``ents` (id INT PRIMARY KEY, `ki``nd` INT NOT NULL, tag VARCHAR(20));
             INSERT INTO `ev``ents` SELECT seq, seq % 3000, CONCAT('t', seq) FROM seq_1_to_30000;
             ANALYZE TABLE `ev``ents`;",
        )
        .await);
    let engine = ok(Engine::builder()
        .with_source(
            "maria",
            SourceConfig::MySql(ServerSourceConfig::new([maria.url("ia")])),
        )
        .build()
        .await);
    let session = engine.session();
    // Without a distinct count for the column (MariaDB gives those only
    // for indexes), an equality is taken to keep a tenth of the rows.
    let query = r#"SELECT id FROM maria.ia."ev`ents" WHERE "ki`nd" = 42"#;
    assert_eq!(
        advice_note(&session, query).await.as_deref(),
        Some("ia.ev`ents(ki`nd) for filter")
    );
    assert_eq!(spar_tests::rows(&session, query).await.len(), 10);
    // A string is compared as `CAST(CONVERT(tag USING utf8mb4) AS
    // BINARY)`, which no index on `tag` would serve: none is advised.
    let by_tag = r#"SELECT id FROM maria.ia."ev`ents" WHERE tag = 't42'"#;
    assert_eq!(advice_note(&session, by_tag).await, None);
    assert_eq!(spar_tests::rows(&session, by_tag).await.len(), 1);
    let create = "CREATE INDEX `ev``ents_ki``nd_idx` ON `ia`.`ev``ents` (`ki``nd`)";
    let rows = advice_table(&session).await;
    let cells: Vec<&str> = rows.first().map_or(vec![], |r| r.split('|').collect());
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(
        &cells[..5],
        &["maria", "ia.ev`ents", "ki`nd", "filter", "1"]
    );
    // InnoDB's row count is an estimate.
    let read: u64 = ok(cells[5].parse());
    assert!((10_000..=60_000).contains(&read), "{rows:?}");
    assert_eq!(cells[6], create);
    ok(maria.execute("ia", create).await);
    spar_tests::rows(&session, r#"ANALYZE maria.ia."ev`ents""#).await;
    assert_eq!(advice_note(&session, query).await, None);
}
