use super::*;

fn parse(text: &str) -> Result<Config> {
    Config::from_toml(text, "spar.toml", Path::new("/etc/spar"))
}

fn error(text: &str) -> String {
    match parse(text) {
        Ok(c) => panic!("expected an error, got {c:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn reads_the_documented_shape() -> Result<()> {
    std::env::set_var("SPAR_TEST_DIR", "mnt");
    let c = parse(
        r#"
        search_path = ["sales.main", "catalog.main"]
        [sources.sales]
        kind = "sqlite"
        replicas = ["data/sales.db", "/${SPAR_TEST_DIR}/copy.db"]
        policy = "round_robin"
        batch_size = 100
        [sources.catalog]
        kind = "files"
        location = "s3://bucket/catalog/"
        format = "csv"
        [sources.catalog.s3]
        endpoint = "http://127.0.0.1:9000"
        allow_http = true
        "#,
    )?;
    assert_eq!(
        c.search_path[1],
        SchemaPath {
            source: "catalog".into(),
            schema: "main".into()
        }
    );
    let SourceConfig::Sqlite(s) = &c.sources["sales"] else {
        panic!("sales is sqlite")
    };
    assert_eq!(
        s.replicas,
        vec![
            PathBuf::from("/etc/spar/data/sales.db"),
            PathBuf::from("/mnt/copy.db")
        ]
    );
    assert_eq!(s.policy, Policy::RoundRobin);
    assert_eq!(s.batch_size, 100);
    let SourceConfig::Files(f) = &c.sources["catalog"] else {
        panic!("catalog is files")
    };
    assert_eq!(f.location, "s3://bucket/catalog/");
    assert_eq!(f.format, FileFormatKind::Csv);
    assert_eq!(f.s3.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
    assert!(f.s3.allow_http);
    Ok(())
}

#[test]
fn errors_name_the_key() {
    let e = error("[sources.sales]\nkind = \"oracle\"\nreplicas = []\n");
    assert!(
        e.starts_with("spar.toml: `sources.sales.kind`: expected one of"),
        "{e}"
    );

    let e = error("[sources.sales]\nkind = \"sqlite\"\nreplicas = [\"a.db\"]\npolcy = \"x\"\n");
    assert!(e.contains("spar.toml:4:1") && e.contains("`polcy`"), "{e}");

    let e =
        error("[sources.sales]\nkind = \"sqlite\"\nreplicas = [\"a.db\"]\npolicy = \"fastest\"\n");
    assert!(
        e.contains("`sources.sales.policy`") && e.contains("primary_first"),
        "{e}"
    );

    let e = error("[sources.sales]\nkind = \"sqlite\"\n");
    assert!(e.contains("`sources.sales.replicas`: missing"), "{e}");

    let e = error("[sources.sales]\nkind = \"sqlite\"\nreplicas = []\n");
    assert!(
        e.contains("`sources.sales.replicas`: expected at least one"),
        "{e}"
    );

    let e = error("search_path = [\"sales\"]\n");
    assert!(
        e.contains("`search_path[0]`") && e.contains("source.schema"),
        "{e}"
    );

    let e = error("search_path = [\"nope.main\"]\n");
    assert!(e.contains("no source named `nope`"), "{e}");

    let e = error("[sources.c]\nkind = \"files\"\nlocation = \"x\"\nformat = \"avro\"\n");
    assert!(
        e.contains("`sources.c.format`") && e.contains("\"avro\""),
        "{e}"
    );

    let e = error("[sources.c]\nkind = \"files\"\nlocation = \"${SPAR_TEST_SURELY_UNSET}\"\n");
    assert!(
        e.contains("`sources.c.location`") && e.contains("SPAR_TEST_SURELY_UNSET"),
        "{e}"
    );

    let e = error("[sources.spar]\nkind = \"files\"\nlocation = \"x\"\n");
    assert!(e.contains("cannot name a source"), "{e}");

    let e = error("search_path = \"sales.main\"\n");
    assert!(e.contains("search_path") || e.contains("sequence"), "{e}");

    let e = error("[sources.sales\nkind = 1");
    assert!(e.starts_with("spar.toml:1:"), "{e}");
}

#[test]
fn postgres_sources_keep_passwords_out_of_debug_output() -> Result<()> {
    std::env::set_var("SPAR_TEST_PG_PW", "s3cr3t");
    let c = parse("[sources.crm]\nkind = \"postgres\"\nreplicas = [\"postgres://spar:${SPAR_TEST_PG_PW}@127.0.0.1/crm\"]\npolicy = \"least_latency\"\n")?;
    let SourceConfig::Postgres(p) = &c.sources["crm"] else {
        panic!("postgres")
    };
    assert_eq!(
        p.replicas,
        vec!["postgres://spar:s3cr3t@127.0.0.1/crm".to_string()]
    );
    assert_eq!(p.policy, Policy::LeastLatency);
    assert!(!format!("{c:?}").contains("s3cr3t"));
    Ok(())
}

#[test]
fn secrets_from_the_environment_stay_hidden() -> Result<()> {
    std::env::set_var("SPAR_TEST_SECRET", "hunter2");
    let c = parse(
        "[sources.c]\nkind = \"files\"\nlocation = \"s3://b/p\"\n[sources.c.s3]\nsecret_access_key = \"${SPAR_TEST_SECRET}\"\n",
    )?;
    let SourceConfig::Files(f) = &c.sources["c"] else {
        panic!("files")
    };
    assert_eq!(f.s3.secret_access_key.as_deref(), Some("hunter2"));
    assert!(!format!("{c:?}").contains("hunter2"));
    Ok(())
}

#[test]
fn reads_the_server_and_its_users() -> Result<()> {
    let c = parse(
        r#"
        [server]
        listen = "127.0.0.1:6000"
        metrics = "127.0.0.1:6001"
        token_ttl = "30m"
        tls = { cert = "tls/server.pem", key = "tls/server.key", client_ca = "/ca.pem" }
        [server.limits]
        max_concurrent_queries = 8
        max_concurrent_queries_per_user = 2
        query_timeout = "90s"
        query_memory = "512MiB"
        max_result_rows = 1000
        [[users]]
        name = "ann"
        password_hash = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA"
        grants = ["sales.public.*", "catalog"]
        "#,
    )?;
    assert_eq!(c.server.listen, "127.0.0.1:6000");
    assert_eq!(c.server.metrics.as_deref(), Some("127.0.0.1:6001"));
    assert_eq!(c.server.token_ttl, std::time::Duration::from_secs(1800));
    let tls = c
        .server
        .tls
        .as_ref()
        .map(|t| (&t.cert, &t.key, &t.client_ca));
    assert_eq!(
        tls,
        Some((
            &PathBuf::from("/etc/spar/tls/server.pem"),
            &PathBuf::from("/etc/spar/tls/server.key"),
            &Some(PathBuf::from("/ca.pem"))
        ))
    );
    let l = &c.server.limits;
    assert_eq!(
        (l.max_concurrent_queries, l.max_concurrent_queries_per_user),
        (8, 2)
    );
    assert_eq!(l.query_timeout, Some(std::time::Duration::from_secs(90)));
    assert_eq!(l.query_memory, Some(512 << 20));
    assert_eq!(l.max_result_rows, Some(1000));
    assert!(!c.server.allow_anonymous);
    assert_eq!(c.users.len(), 1);
    let grants: Vec<String> = c.users[0].grants.iter().map(|g| g.to_string()).collect();
    assert_eq!(grants, ["sales.public.*", "catalog.*.*"]);
    assert!(!format!("{:?}", c.users[0]).contains("argon2id"));
    Ok(())
}

#[test]
fn server_and_user_errors_name_the_key() {
    let cases = [
        (
            "[server]\ntoken_ttl = \"soon\"",
            "spar.toml: `server.token_ttl`: expected a duration",
        ),
        (
            "[server.limits]\nquery_memory = \"lots\"",
            "spar.toml: `server.limits.query_memory`: expected a positive size",
        ),
        (
            "[server.limits]\nmax_result_rows = 0",
            "spar.toml: `server.limits.max_result_rows`: expected a positive number, found 0",
        ),
        (
            "[server]\ntoken_ttl = \"1000000y\"",
            "spar.toml: `server.token_ttl`: expected a duration of at most 365 days",
        ),
        (
            "[server.limits]\nmax_concurrent_queries = 9223372036854775807",
            "spar.toml: `server.limits.max_concurrent_queries`: expected at most 1000000",
        ),
        (
            "[sources.a]\nkind = \"sqlite\"\nreplicas = [\"a.db\"]\nbatch_size = 9223372036854775807",
            "spar.toml: `sources.a.batch_size`: expected a number of rows from 1 to 1048576",
        ),
        (
            "[sources.a]\nkind = \"sqlite\"\nreplicas = [\"${NOPE\"]",
            "spar.toml: `sources.a.replicas[0]`: `${` without a closing `}`",
        ),
        (
            "[server]\ntls = { cert = \"a.pem\" }",
            "spar.toml: `server.tls`: expected both `cert` and `key`",
        ),
        (
            "[[users]]\nname = \"ann\"\npassword_hash = \"secret\"",
            "spar.toml: `users[0].password_hash`: expected an argon2id hash",
        ),
        (
            "[[users]]\nname = \"ann\"\npassword_hash = \"$argon2id$x\"\ngrants = [\"a..b\"]",
            "spar.toml: `users[0].grants[0]`: expected \"source\"",
        ),
        (
            "[[users]]\nname = \"ann\"\npassword_hash = \"$argon2id$x\"\n[[users]]\nname = \"ann\"\npassword_hash = \"$argon2id$y\"",
            "spar.toml: `users[1].name`: user `ann` is defined twice",
        ),
        (
            "[[users]]\nname = \"anonymous\"\npassword_hash = \"$argon2id$x\"",
            "spar.toml: `users[0].name`: `anonymous` names clients without credentials",
        ),
    ];
    for (text, expected) in cases {
        let e = error(text);
        assert!(e.starts_with(expected), "{text}: got {e}");
        assert!(!e.contains("secret"), "{e}");
    }
}

#[test]
fn grants_naming_no_source_are_warned_of() -> Result<()> {
    let c = parse(
        "[sources.sales]\nkind = \"sqlite\"\nreplicas = [\"s.db\"]\n\
         [[users]]\nname = \"ann\"\npassword_hash = \"$argon2id$x\"\ngrants = [\"sales.main.*\", \"slaes\", \"*\"]",
    )?;
    assert_eq!(
        c.warnings(),
        ["users `ann`: grant `slaes.*.*` names no source (the sources are sales); it grants nothing"]
    );
    Ok(())
}

#[test]
fn reads_failover_settings_with_defaults() -> Result<()> {
    let c = parse(
        r#"
        [sources.pg]
        kind = "postgres"
        replicas = ["postgres://a/db", "postgres://b/db"]
        connect_timeout = "2s"
        first_batch_timeout = "1m"
        stall_timeout = "10s"
        retry_deadline = "3s"
        health_check_interval = "500ms"
        circuit_failures = 2
        circuit_backoff = "250ms"
        max_staleness = "30s"
        resume_buffer = "1MiB"
        hedge_after = "p95"
        resume = "key_order"
        statistics_ttl = "10m"
        [sources.lite]
        kind = "sqlite"
        replicas = ["a.db"]
        "#,
    )?;
    let SourceConfig::Postgres(pg) = &c.sources["pg"] else {
        panic!("not postgres: {:?}", c.sources["pg"]);
    };
    let ms = std::time::Duration::from_millis;
    assert_eq!(
        pg.settings,
        ReplicaSettings {
            connect_timeout: ms(2_000),
            first_batch_timeout: ms(60_000),
            stall_timeout: ms(10_000),
            retry_deadline: ms(3_000),
            health_check_interval: ms(500),
            circuit_failures: 2,
            circuit_backoff: ms(250),
            max_staleness: Some(ms(30_000)),
            resume_buffer: 1 << 20,
            hedge_after: Some(crate::replica::HedgeAfter::Percentile(95.0)),
            resume: crate::replica::Resume::KeyOrder,
            statistics_ttl: ms(600_000),
        }
    );
    let SourceConfig::Sqlite(lite) = &c.sources["lite"] else {
        panic!("not sqlite");
    };
    assert_eq!(lite.settings, ReplicaSettings::default());
    Ok(())
}

#[test]
fn failover_setting_errors_name_the_key() {
    let source = "[sources.pg]\nkind = \"postgres\"\nreplicas = [\"postgres://a/db\"]\n";
    for (line, key, expected) in [
        (
            "stall_timeout = \"soon\"",
            "sources.pg.stall_timeout",
            "expected a duration",
        ),
        (
            "max_staleness = \"0s\"",
            "sources.pg.max_staleness",
            "positive duration",
        ),
        (
            "circuit_failures = 0",
            "sources.pg.circuit_failures",
            "from 1 to 1000",
        ),
        (
            "resume_buffer = \"lots\"",
            "sources.pg.resume_buffer",
            "positive size",
        ),
        (
            "hedge_after = \"p100\"",
            "sources.pg.hedge_after",
            "a percentile of recent times to first batch",
        ),
        (
            "resume = \"sometimes\"",
            "sources.pg.resume",
            "\"replay\", \"key_order\" or \"off\"",
        ),
    ] {
        let e = error(&format!("{source}{line}\n"));
        assert!(e.contains(key) && e.contains(expected), "{line}: {e}");
    }
    let files = "[sources.f]\nkind = \"files\"\nlocation = \"/data\"\nstall_timeout = \"1s\"\n";
    let e = error(files);
    assert!(
        e.contains("sources.f.stall_timeout")
            && e.contains("not used by sources of kind \"files\""),
        "{e}"
    );
}

#[test]
fn file_sources_take_several_locations_as_replicas() -> Result<()> {
    let c = Config::from_toml(
        "[sources.f]\nkind = \"files\"\nreplicas = [\"data\", \"s3://backup/data/\"]\n",
        "spar.toml",
        Path::new("/etc/spar"),
    )?;
    let SourceConfig::Files(f) = &c.sources["f"] else {
        panic!("files")
    };
    assert_eq!(f.locations(), ["/etc/spar/data", "s3://backup/data/"]);
    for (toml, expected) in [
        ("location = \"a\"\nreplicas = [\"b\"]", "not both"),
        ("replicas = []", "at least one location"),
        ("format = \"csv\"", "or `replicas`, a list of them"),
    ] {
        let e = error(&format!("[sources.f]\nkind = \"files\"\n{toml}\n"));
        assert!(
            e.contains("sources.f.") && e.contains(expected),
            "{toml}: {e}"
        );
    }
    Ok(())
}
