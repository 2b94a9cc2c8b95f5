//! The `spar` binary end to end: demo, TPC-H answers, EXPLAIN, the shell,
//! and the errors users see.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, OnceLock};

use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use futures::StreamExt;
use spar_server::demo::SCALE_FACTOR;
use spar_server::output::{Format, Writer};
use spar_server::tpch;

fn spar() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_spar"));
    c.env_remove("SPAR_CONFIG").env("SPAR_HISTORY", "/dev/null");
    c
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// One demo dataset for the whole test binary.
fn demo_dir() -> &'static Path {
    static DEMO: OnceLock<tempfile::TempDir> = OnceLock::new();
    DEMO.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let out = spar()
            .args(["demo", "--dir"])
            .arg(dir.path())
            .args(["--query", "SELECT 1"])
            .output();
        let out = out.unwrap_or_else(|e| panic!("spar demo: {e}"));
        assert!(
            out.status.success(),
            "spar demo failed: {}",
            text(&out.stderr)
        );
        dir
    })
    .path()
}

fn demo_query(sql: &str, format: &str) -> Output {
    spar()
        .args(["demo", "--dir"])
        .arg(demo_dir())
        .args(["--format", format, "--query", sql])
        .output()
        .unwrap_or_else(|e| panic!("spar demo --query: {e}"))
}

/// The same query computed by DataFusion over the same TPC-H data in memory.
async fn in_memory_csv(sql: &str) -> String {
    let ctx = SessionContext::new();
    for table in tpch::TABLES {
        let (schema, batches) =
            tpch::generate(table, SCALE_FACTOR).unwrap_or_else(|| panic!("{table}"));
        let batches: Vec<_> = batches
            .map(|b| b.unwrap_or_else(|e| panic!("{e}")))
            .collect();
        let mem = MemTable::try_new(schema, vec![batches]).unwrap_or_else(|e| panic!("{e}"));
        ctx.register_table(table, Arc::new(mem))
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let df = ctx.sql(sql).await.unwrap_or_else(|e| panic!("{e}"));
    let mut stream = df.execute_stream().await.unwrap_or_else(|e| panic!("{e}"));
    let mut out = Vec::new();
    let mut writer = Writer::new(Format::Csv, &mut out, stream.schema());
    while let Some(batch) = stream.next().await {
        writer
            .write(&batch.unwrap_or_else(|e| panic!("{e}")))
            .unwrap_or_else(|e| panic!("{e}"));
    }
    writer.finish().unwrap_or_else(|e| panic!("{e}"));
    text(&out)
}

#[tokio::test]
async fn tpch_q3_and_q5_match_datafusion_in_memory() {
    for (name, sql) in [("Q3", tpch::Q3), ("Q5", tpch::Q5)] {
        let out = demo_query(sql, "csv");
        assert!(out.status.success(), "{name}: {}", text(&out.stderr));
        let spar = text(&out.stdout);
        let expected = in_memory_csv(sql).await;
        assert!(expected.lines().count() > 2, "{name} has rows: {expected}");
        assert_eq!(
            spar, expected,
            "{name} through spar differs from DataFusion in memory"
        );
    }
}

#[test]
fn explain_shows_the_sql_sent_to_sqlite() {
    let out = demo_query(
        "EXPLAIN SELECT o_orderkey, o_totalprice FROM orders \
         WHERE o_orderdate < DATE '1995-03-15' AND o_orderpriority = '1-URGENT' LIMIT 7",
        "csv",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let plan = text(&out.stdout);
    let physical = plan.split("physical_plan").nth(1).unwrap_or_default();
    let fragment = physical
        .lines()
        .find(|l| l.contains("FragmentExec"))
        .unwrap_or_default();
    assert!(fragment.contains("source=sales"), "{plan}");
    assert!(
        fragment
            .contains("SELECT `orders`.`o_orderkey`, `orders`.`o_totalprice` FROM `main`.`orders`"),
        "projection in the SQL: {plan}"
    );
    assert!(
        fragment.contains("`orders`.`o_orderdate` < '1995-03-15'"),
        "filter in the SQL: {plan}"
    );
    assert!(
        fragment.contains("`orders`.`o_orderpriority` = '1-URGENT'"),
        "filter in the SQL: {plan}"
    );
    assert!(fragment.contains("LIMIT 7"), "limit in the SQL: {plan}");
}

#[test]
fn explain_analyze_shows_replica_rows_and_bytes() {
    let count = demo_query("SELECT count(*) FROM orders WHERE o_orderkey < 100", "csv");
    let count = text(&count.stdout)
        .lines()
        .nth(1)
        .unwrap_or_default()
        .to_string();
    assert!(count.parse::<u64>().is_ok_and(|n| n > 0), "{count}");
    let out = demo_query(
        "EXPLAIN ANALYZE SELECT o_orderkey FROM orders WHERE o_orderkey < 100",
        "csv",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let plan = text(&out.stdout);
    let fragment = plan
        .lines()
        .find(|l| l.contains("FragmentExec"))
        .unwrap_or_default();
    assert!(
        fragment.contains("replica=sqlite:") && fragment.contains("sales-1.db"),
        "{plan}"
    );
    assert!(
        fragment.contains(&format!("output_rows={count},")),
        "{plan}"
    );
    assert!(
        fragment.contains("output_bytes=") && fragment.contains("failovers=0"),
        "{plan}"
    );
}

#[test]
fn demo_reuses_its_data() {
    let out = demo_query("SELECT count(*) AS n FROM lineitem", "csv");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        !text(&out.stderr).contains("Writing the demo dataset"),
        "{}",
        text(&out.stderr)
    );
    let n: u64 = text(&out.stdout)
        .lines()
        .nth(1)
        .and_then(|l| l.parse().ok())
        .unwrap_or(0);
    assert!(
        n > 50_000,
        "lineitem at scale 0.01 has about 60k rows, got {n}"
    );
}

#[test]
fn query_reads_sql_from_stdin_and_files() {
    let config = demo_dir().join("spar.toml");
    let mut child = spar()
        .args(["query", "--format", "csv", "-c"])
        .arg(&config)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(b"SELECT r_name FROM region ORDER BY r_regionkey LIMIT 2;")
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let out = child.wait_with_output().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(text(&out.stdout), "r_name\nAFRICA\nAMERICA\n");

    let file = demo_dir().join("q.sql");
    std::fs::write(&file, "SELECT 1 AS a;\nSELECT 'x' AS b;").unwrap_or_else(|e| panic!("{e}"));
    let out = spar()
        .args(["query", "--format", "csv", "-c"])
        .arg(&config)
        .arg("-f")
        .arg(&file)
        .output();
    let out = out.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(text(&out.stdout), "a\n1\nb\nx\n", "{}", text(&out.stderr));
}

#[test]
fn json_output_is_an_array_of_objects() {
    let out = demo_query(
        "SELECT n_nationkey, n_name FROM nation ORDER BY n_nationkey LIMIT 2",
        "json",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout).trim(),
        r#"[{"n_nationkey":0,"n_name":"ALGERIA"},{"n_nationkey":1,"n_name":"ARGENTINA"}]"#
    );
}

/// Far dates print as PostgreSQL prints them in every output format, and
/// what is printed reads back as the same date.
#[test]
fn far_dates_print_and_read_back_as_postgres_writes_them() {
    // (Timestamps take the same path; DataFusion's own timestamps hold
    // no year past 2262, so they are tested on Arrow values in
    // `output.rs`.)
    let sql = "SELECT DATE '10000-01-01' AS far, CAST('0045-03-15 BC' AS DATE) AS bc, \
               DATE '10000-01-01' = DATE '9999-12-31' + INTERVAL '1 day' AS next_day";
    let expected = [
        ("csv", "far,bc,next_day\n10000-01-01,0045-03-15 BC,true"),
        (
            "json",
            r#"[{"far":"10000-01-01","bc":"0045-03-15 BC","next_day":true}]"#,
        ),
    ];
    for (format, want) in expected {
        let out = demo_query(sql, format);
        assert!(out.status.success(), "{format}: {}", text(&out.stderr));
        assert_eq!(text(&out.stdout).trim(), want, "{format}");
    }
    let out = demo_query(sql, "table");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let table = text(&out.stdout);
    assert!(
        table.contains("| 10000-01-01 | 0045-03-15 BC | true"),
        "{table}"
    );
    // The printed forms read back.
    let out = demo_query(
        "SELECT DATE '10000-01-01' - DATE '9999-12-31' AS days, \
         CAST('0001-01-01 BC' AS DATE) + INTERVAL '1 day' AS after",
        "csv",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "days,after\n1,0001-01-02 BC");
}

fn shell(stdin: &str) -> Output {
    let mut child = spar()
        .args(["shell", "-c"])
        .arg(demo_dir().join("spar.toml"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    if let Some(mut input) = child.stdin.take() {
        input
            .write_all(stdin.as_bytes())
            .unwrap_or_else(|e| panic!("{e}"));
    }
    child.wait_with_output().unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn shell_runs_piped_statements_and_meta_commands() {
    let out = shell("\\d\n\\d orders\nSELECT count(*) AS n\n  FROM customer;\nSELEC 1;\nSELECT 40 + 2 AS answer;\n\\timing\nSELECT 1;\n\\nope\n\\q\nSELECT 'after quit';\n");
    let stdout = text(&out.stdout);
    let stderr = text(&out.stderr);
    // \d lists tables of both sources, not the search-path catalog.
    let listed = |source: &str, table: &str| {
        stdout
            .lines()
            .any(|l| l.starts_with(&format!("| {source} ")) && l.contains(&format!("| {table} ")))
    };
    assert!(
        listed("sales", "orders") && listed("catalog", "region"),
        "{stdout}"
    );
    assert!(!stdout.contains("search_path"), "{stdout}");
    // \d NAME describes columns with types.
    assert!(
        stdout.contains("o_orderdate") && stdout.contains("Date32"),
        "{stdout}"
    );
    assert!(stdout.contains("Decimal128(15, 2)"), "{stdout}");
    // A multi-line statement.
    assert!(stdout.contains("| 1500 |"), "{stdout}");
    // The syntax error is reported and the shell goes on.
    assert!(
        stderr.contains("ERROR: syntax error at line 1, column 1"),
        "{stderr}"
    );
    assert!(stdout.contains("| 42     |"), "{stdout}");
    // \timing prints the time of the next statement.
    assert!(
        stdout.contains("Timing is on.") && stdout.contains("Time: "),
        "{stdout}"
    );
    assert!(stderr.contains("unknown command `\\nope`"), "{stderr}");
    // \q stops reading.
    assert!(!stdout.contains("after quit"), "{stdout}");
    // Piped input reports failures in the exit status.
    assert!(!out.status.success());
}

#[test]
fn ctrl_c_cancels_the_query_not_the_shell() {
    use std::io::BufRead;
    let mut child = spar()
        .args(["shell", "-c"])
        .arg(demo_dir().join("spar.toml"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    let mut input = child.stdin.take().unwrap_or_else(|| panic!("stdin"));
    let stdout = child.stdout.take().unwrap_or_else(|| panic!("stdout"));
    let (lines_tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let _ = lines_tx.send(line);
        }
    });
    let wait_for = |text: &str| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        let mut seen = Vec::new();
        while std::time::Instant::now() < deadline {
            if let Ok(line) = lines.recv_timeout(std::time::Duration::from_millis(200)) {
                if line.contains(text) {
                    return seen;
                }
                seen.push(line);
            }
        }
        panic!("`{text}` never appeared; output so far: {seen:?}");
    };
    // Once a first query has answered, the shell handles SIGINT itself.
    input
        .write_all(b"SELECT 'ready' AS state;\n")
        .unwrap_or_else(|e| panic!("{e}"));
    input.flush().unwrap_or_else(|e| panic!("{e}"));
    wait_for("ready");
    // A cross join of lineitem with itself: billions of rows, in small steps.
    input
        .write_all(b"SELECT count(*) FROM lineitem a, lineitem b;\n")
        .unwrap_or_else(|e| panic!("{e}"));
    input.flush().unwrap_or_else(|e| panic!("{e}"));
    std::thread::sleep(std::time::Duration::from_secs(2));
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    assert!(status.is_ok_and(|s| s.success()));
    input
        .write_all(b"SELECT 'still here' AS msg;\n")
        .unwrap_or_else(|e| panic!("{e}"));
    drop(input);
    let before = wait_for("still here");
    assert!(
        !before.iter().any(|l| l.contains("count(*)")),
        "the cancelled query printed a result: {before:?}"
    );
    let out = child.wait_with_output().unwrap_or_else(|e| panic!("{e}"));
    assert!(
        text(&out.stderr).contains("ERROR: query cancelled"),
        "{}",
        text(&out.stderr)
    );
}

// ---- errors users see -------------------------------------------------------

fn config_with(dir: &Path, toml: &str) -> PathBuf {
    let path = dir.join("spar.toml");
    std::fs::write(&path, toml).unwrap_or_else(|e| panic!("{e}"));
    path
}

fn failing_query(config: &Path, sql: &str) -> String {
    let out = spar()
        .args(["query", "-c"])
        .arg(config)
        .arg(sql)
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    let stderr = text(&out.stderr);
    assert!(!out.status.success(), "expected a failure for {sql}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

#[test]
fn syntax_errors_show_where() {
    let e = failing_query(
        &demo_dir().join("spar.toml"),
        "SELECT o_orderkey\nFROM orders\nWHERE o_orderkey >> ;",
    );
    assert!(e.contains("syntax error at line 3, column"), "{e}");
    assert!(
        e.contains("WHERE o_orderkey >> ;\n") && e.contains('^'),
        "{e}"
    );
}

#[test]
fn unknown_tables_name_the_sources() {
    let config = demo_dir().join("spar.toml");
    let e = failing_query(&config, "SELECT * FROM ordrs");
    assert!(e.contains("table `ordrs` not found"), "{e}");
    assert!(
        e.contains("sales.main, catalog.main")
            && e.contains("sales (sqlite)")
            && e.contains("catalog (files)"),
        "{e}"
    );
    let e = failing_query(&config, "SELECT * FROM warehouse.main.orders");
    assert!(
        e.contains("no source `warehouse`") && e.contains("sales (sqlite)"),
        "{e}"
    );
    let e = failing_query(&config, "SELECT * FROM sales.main.nation");
    assert!(
        e.contains("`sales.main` has tables customer, lineitem, orders"),
        "{e}"
    );
}

#[test]
fn missing_files_name_the_path() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let config = config_with(
        dir.path(),
        "[sources.s]\nkind = \"sqlite\"\nreplicas = [\"gone/nowhere.db\"]\n",
    );
    // A source that is down does not stop queries of anything else.
    let out = spar()
        .args(["query", "-c"])
        .arg(&config)
        .arg("SELECT 1 AS one")
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let e = failing_query(&config, "SELECT * FROM s.main.t");
    assert!(
        e.contains("source `s` is unavailable") && e.contains("gone/nowhere.db"),
        "{e}"
    );

    let config = config_with(
        dir.path(),
        "[sources.f]\nkind = \"files\"\nlocation = \"no/such/dir\"\n",
    );
    let e = failing_query(&config, "SELECT * FROM f.main.t");
    assert!(e.contains("no/such/dir") && e.contains("source `f`"), "{e}");

    let e = failing_query(&dir.path().join("absent.toml"), "SELECT 1");
    assert!(
        e.contains("cannot read config file") && e.contains("absent.toml"),
        "{e}"
    );
}

#[test]
fn malformed_config_names_the_key() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let config = config_with(
        dir.path(),
        "[sources.s]\nkind = \"sqlite\"\nreplicas = [\"a.db\"]\npolicy = \"fastest\"\n",
    );
    let e = failing_query(&config, "SELECT 1");
    assert!(
        e.contains("spar.toml") && e.contains("`sources.s.policy`") && e.contains("\"fastest\""),
        "{e}"
    );
    let config = config_with(
        dir.path(),
        "search_path = [\"s.main\"]\n[sources.s]\nkind = \"sqlite\"\nreplica = [\"a.db\"]\n",
    );
    let e = failing_query(&config, "SELECT 1");
    assert!(
        e.contains("spar.toml:4:1") && e.contains("`replica`"),
        "{e}"
    );
}

#[test]
fn unconvertible_values_name_the_column() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let db = dir.path().join("bad.db");
    let conn = rusqlite::Connection::open(&db).unwrap_or_else(|e| panic!("{e}"));
    conn.execute_batch("CREATE TABLE events (id INTEGER, day DATE); INSERT INTO events VALUES (1, '2024-02-29'), (2, 'someday');")
        .unwrap_or_else(|e| panic!("{e}"));
    drop(conn);
    let config = config_with(
        dir.path(),
        "search_path = [\"s.main\"]\n[sources.s]\nkind = \"sqlite\"\nreplicas = [\"bad.db\"]\n",
    );
    let e = failing_query(&config, "SELECT * FROM events");
    assert!(
        e.contains("column `day`")
            && e.contains("row 2")
            && e.contains("'someday'")
            && e.contains("Date32"),
        "{e}"
    );
}

/// `spar serve` on the demo data with user `ann` (hash from `spar
/// hash-password`); its address and the child.
fn serve_demo() -> (
    String,
    std::process::Child,
    Arc<std::sync::Mutex<Vec<String>>>,
) {
    use std::io::BufRead;
    let mut hash = spar()
        .arg("hash-password")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    if let Some(mut input) = hash.stdin.take() {
        input
            .write_all(b"ann-pw\n")
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let hash = hash.wait_with_output().unwrap_or_else(|e| panic!("{e}"));
    let hash = text(&hash.stdout).trim().to_string();
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    let demo =
        std::fs::read_to_string(demo_dir().join("spar.toml")).unwrap_or_else(|e| panic!("{e}"));
    let config = demo_dir().join("serve.toml");
    std::fs::write(
        &config,
        format!("{demo}\n[server]\nshutdown_grace = \"1s\"\n[[users]]\nname = \"ann\"\npassword_hash = \"{hash}\"\ngrants = [\"*\", \"slaes.main\"]\n"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let mut child = spar()
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--log",
            "info",
            "--log-format",
            "json",
            "-c",
        ])
        .arg(&config)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    let stderr = child.stderr.take().unwrap_or_else(|| panic!("no stderr"));
    let mut lines = std::io::BufReader::new(stderr).lines();
    let mut before = Vec::new();
    let address = loop {
        let line = lines
            .next()
            .unwrap_or_else(|| panic!("spar serve exited before listening"))
            .unwrap_or_else(|e| panic!("{e}"));
        if let Some(addr) = line.strip_prefix("spar: serving Flight SQL on ") {
            break addr.to_string();
        }
        before.push(line);
    };
    // Keep draining stderr so the server never blocks on a full pipe.
    let logs = Arc::new(std::sync::Mutex::new(before));
    let kept = Arc::clone(&logs);
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            if let Ok(mut kept) = kept.lock() {
                kept.push(line);
            }
        }
    });
    (address, child, logs)
}

fn remote_shell(address: &str, password: &str, stdin: &str) -> Output {
    let mut child = spar()
        .args(["shell", "--connect", address, "--user", "ann"])
        .env("SPAR_PASSWORD", password)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    if let Some(mut input) = child.stdin.take() {
        input
            .write_all(stdin.as_bytes())
            .unwrap_or_else(|e| panic!("{e}"));
    }
    child.wait_with_output().unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn the_shell_works_over_flight_sql() {
    let (address, mut server, logs) = serve_demo();
    assert!(address.starts_with("grpc://127.0.0.1:"), "{address}");
    // A grant naming no source is warned of at start.
    let warned = logs.lock().map(|l| {
        l.iter()
            .any(|line| line.contains("warning: users `ann`: grant `slaes.main.*` names no source"))
    });
    assert_eq!(warned.ok(), Some(true), "{logs:?}");
    let out = remote_shell(
        &address,
        "ann-pw",
        "\\d\n\\d orders\nSELECT count(*) AS n\n  FROM customer;\nSELEC 1;\nSELECT 40 + 2 AS answer; SELECT 'two' AS second;\n\\timing\nSELECT 1;\n\\q\n",
    );
    let stdout = text(&out.stdout);
    let stderr = text(&out.stderr);
    let listed = |source: &str, table: &str| {
        stdout
            .lines()
            .any(|l| l.starts_with(&format!("| {source} ")) && l.contains(&format!("| {table} ")))
    };
    assert!(
        listed("sales", "orders") && listed("catalog", "region"),
        "{stdout}"
    );
    assert!(
        stdout.contains("o_orderdate") && stdout.contains("Date32"),
        "{stdout}"
    );
    assert!(stdout.contains("| 1500 |"), "{stdout}");
    assert!(
        stderr.contains("ERROR: syntax error at line 1, column 1"),
        "{stderr}"
    );
    assert!(
        stdout.contains("| 42     |") && stdout.contains("| two    |"),
        "{stdout}"
    );
    assert!(stdout.contains("Time: "), "{stdout}");
    assert!(
        !out.status.success(),
        "the syntax error should fail piped input"
    );

    let refused = remote_shell(&address, "wrong", "SELECT 1;\n");
    assert!(!refused.status.success());
    assert!(
        text(&refused.stderr).contains("invalid user name or password"),
        "{}",
        text(&refused.stderr)
    );

    // SIGTERM: a graceful stop with exit status 0.
    let killed = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(killed.success());
    let status = server.wait().unwrap_or_else(|e| panic!("{e}"));
    assert!(status.success(), "spar serve exited with {status}");
    // Structured logs: JSON lines; finished queries carry their id and user.
    let logs = logs.lock().map(|l| l.clone()).unwrap_or_default();
    let finished: Vec<serde_json::Value> = logs
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["fields"]["message"] == "query finished")
        .collect();
    assert!(!finished.is_empty(), "{logs:#?}");
    assert!(
        finished.iter().all(|v| v["fields"]["query_id"]
            .as_str()
            .is_some_and(|id| id.len() == 32)
            && v["fields"]["user"] == "ann"),
        "{finished:#?}"
    );
    assert!(
        !logs
            .iter()
            .any(|l| l.contains("ann-pw") || l.contains("argon2id")),
        "{logs:#?}"
    );
}

#[test]
fn deep_expressions_answer_or_are_refused_without_ending_the_process() {
    // 1,500 ANDs overflowed `spar query`'s stack at 10,000; `spar serve`'s
    // threads at 1,500.
    let chain = |n: usize| {
        let terms: Vec<String> = (0..n)
            .map(|i| format!("o_orderkey <> {}", -1 - i as i64))
            .collect();
        format!("SELECT count(*) FROM orders WHERE {}", terms.join(" AND "))
    };
    // Too long for a command-line argument: from a file.
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let query_file = |n: usize| {
        let path = dir.path().join(format!("chain{n}.sql"));
        std::fs::write(&path, chain(n)).unwrap_or_else(|e| panic!("{e}"));
        spar()
            .args(["query", "--format", "csv", "-c"])
            .arg(demo_dir().join("spar.toml"))
            .arg("-f")
            .arg(&path)
            .output()
            .unwrap_or_else(|e| panic!("spar query: {e}"))
    };
    let out = query_file(3000);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let expected = demo_query("SELECT count(*) FROM orders", "csv");
    assert_eq!(text(&out.stdout), text(&expected.stdout));
    let out = query_file(10_000);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("nest more than 5000 levels deep"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn statement_timeout_stops_long_queries_in_query_and_shell() {
    // Billions of generated rows: far longer than the timeouts below.
    let slow = "SELECT count(*) FROM generate_series(1, 3000000000)";
    let out = spar()
        .args(["query", "--statement-timeout", "300ms", "-c"])
        .arg(demo_dir().join("spar.toml"))
        .arg(slow)
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    let stderr = text(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("ran longer than spar.statement_timeout (300ms)"),
        "{stderr}"
    );
    let out = spar()
        .args(["query", "--statement-timeout", "soon", "-c"])
        .arg(demo_dir().join("spar.toml"))
        .arg("SELECT 1")
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("expected a duration such as 30s"),
        "{stderr}"
    );

    // In the shell, as PostgreSQL spells it; the shell goes on after it.
    let out = shell(&format!(
        "SET statement_timeout = '300ms';\n{slow};\nSET statement_timeout = 0;\nSELECT 40 + 2 AS answer;\n"
    ));
    let stdout = text(&out.stdout);
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("ERROR: ") && stderr.contains("spar.statement_timeout (300ms)"),
        "{stderr}"
    );
    assert!(stdout.contains("| 42     |"), "{stdout}");
}
