//! TLS to PostgreSQL and MariaDB: every mode against real servers that
//! present certificates from a test CA, client certificates, and the
//! errors for a wrong CA, a wrong name and a missing certificate.

use std::sync::Arc;

use arrow::array::AsArray;
use arrow::datatypes::{DataType, Field, Schema};
use futures::StreamExt;
use spar_engine::connectors::mysql::MySqlConnector;
use spar_engine::connectors::postgres::PostgresConnector;
use spar_engine::connectors::Connector;
use spar_engine::{Engine, ServerSourceConfig, SourceConfig};
use spar_tests::harness::{MariaDbServer, PgServer, TestCa, CERT_GROUP, PG_USER};
use spar_tests::rows;

fn ok<T, E: std::fmt::Display>(r: Result<T, E>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

/// The first column of the first row of `sql`, as text.
async fn first_text(connector: &dyn Connector, sql: &str) -> String {
    let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Utf8, true)]));
    let mut stream = ok(connector.execute(sql, schema).await);
    let batch = match stream.next().await {
        Some(batch) => ok(batch),
        None => panic!("{sql}: no rows"),
    };
    batch.column(0).as_string::<i32>().value(0).to_string()
}

async fn health_error(connector: &dyn Connector) -> String {
    match connector.health_check().await {
        Ok(()) => panic!("connected, but should not have"),
        Err(e) => e.to_string(),
    }
}

fn pg(url: String) -> PostgresConnector {
    ok(PostgresConnector::new(&url))
}

const PG_TLS: &str =
    "SELECT (ssl::text || ' ' || version) FROM pg_stat_ssl WHERE pid = pg_backend_pid()";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_over_tls() {
    let mut ca = ok(TestCa::new("spar test CA"));
    let other_ca = ok(TestCa::new("someone else"));
    let server = ok(PgServer::start_with_tls(&mut ca).await);
    ok(server.create_database("shop").await);
    ok(server
        .execute(
            "shop",
            &format!(
                "CREATE TABLE t (v int); INSERT INTO t VALUES (1), (2); \
                 CREATE ROLE alice LOGIN IN ROLE {CERT_GROUP}; GRANT SELECT ON t TO alice"
            ),
        )
        .await);
    let port = server.port();
    let ca_file = ca.ca_file().display().to_string();
    let base = |user: &str, host: &str| format!("postgres://{user}@{host}:{port}/shop");

    // verify-full: the chain and the IP address in the certificate.
    let url = format!(
        "{}?sslmode=verify-full&sslrootcert={ca_file}",
        server.url("shop")
    );
    let tls = first_text(&pg(url.clone()), PG_TLS).await;
    assert!(tls.starts_with("true TLSv1."), "{tls}");
    // The whole engine path, as a spar.toml source would be.
    let engine = ok(Engine::builder()
        .with_source(
            "pg",
            SourceConfig::Postgres(ServerSourceConfig::new(vec![url])),
        )
        .with_search_path(["pg.public"])
        .build()
        .await);
    assert_eq!(
        rows(&engine.session(), "SELECT sum(v) FROM t").await,
        vec!["3"]
    );

    // prefer (the default) and require encrypt without checking.
    for params in ["", "?sslmode=require", "?sslmode=prefer"] {
        let tls = first_text(&pg(format!("{}{params}", server.url("shop"))), PG_TLS).await;
        assert!(tls.starts_with("true"), "{params}: {tls}");
    }
    // The server allows TCP only over TLS.
    let e = health_error(&pg(format!("{}?sslmode=disable", server.url("shop")))).await;
    assert!(
        e.contains("no encryption") && e.contains(&format!("127.0.0.1:{port}/shop")),
        "{e}"
    );

    // A CA that did not sign the server's certificate.
    let e = health_error(&pg(format!(
        "{}?sslmode=verify-ca&sslrootcert={}",
        server.url("shop"),
        other_ca.ca_file().display()
    )))
    .await;
    assert!(
        e.contains("certificate") && e.contains("UnknownIssuer"),
        "{e}"
    );
    // The certificate names 127.0.0.1, not localhost: verify-full refuses,
    // verify-ca (chain only) accepts.
    let e = health_error(&pg(format!(
        "{}?sslmode=verify-full&sslrootcert={ca_file}",
        base(PG_USER, "localhost")
    )))
    .await;
    assert!(e.contains("not valid for name"), "{e}");
    let tls = first_text(
        &pg(format!(
            "{}?sslmode=verify-ca&sslrootcert={ca_file}",
            base(PG_USER, "localhost")
        )),
        PG_TLS,
    )
    .await;
    assert!(tls.starts_with("true"), "{tls}");

    // Client certificates: alice must present one with her name.
    let e = health_error(&pg(format!(
        "{}?sslmode=require",
        base("alice", "127.0.0.1")
    )))
    .await;
    assert!(e.contains("certificate"), "{e}");
    let alice = ok(ca.client_cert("alice"));
    let mallory = ok(ca.client_cert("mallory"));
    let with_cert = |files: &spar_tests::harness::CertFiles| {
        format!(
            "{}?sslmode=verify-full&sslrootcert={ca_file}&sslcert={}&sslkey={}",
            base("alice", "127.0.0.1"),
            files.cert.display(),
            files.key.display()
        )
    };
    let user = first_text(&pg(with_cert(&alice)), "SELECT current_user::text").await;
    assert_eq!(user, "alice");
    let e = health_error(&pg(with_cert(&mallory))).await;
    assert!(e.contains("certificate authentication failed"), "{e}");

    // Files that are not there fail when the connector is made.
    let e = PostgresConnector::new(&format!(
        "{}?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem",
        server.url("shop")
    ))
    .err()
    .map(|e| e.to_string())
    .unwrap_or_default();
    assert!(e.contains("/nonexistent/ca.pem"), "{e}");
}

const MY_TLS: &str = "SELECT VARIABLE_VALUE FROM information_schema.SESSION_STATUS WHERE VARIABLE_NAME = 'SSL_VERSION'";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_over_tls() {
    let mut ca = ok(TestCa::new("spar test CA"));
    let other_ca = ok(TestCa::new("someone else"));
    let server = ok(MariaDbServer::start_with_tls(&mut ca).await);
    ok(server.create_database("shop").await);
    ok(server
        .execute(
            "shop",
            "CREATE TABLE t (v INT); INSERT INTO t VALUES (1), (2); \
             CREATE USER secure@'%' REQUIRE SSL; GRANT SELECT ON shop.* TO secure@'%'; \
             CREATE USER carol@'%' REQUIRE SUBJECT '/CN=carol'; GRANT SELECT ON shop.* TO carol@'%'",
        )
        .await);
    let port = server.port();
    let ca_file = ca.ca_file().display().to_string();
    let url =
        |user: &str, host: &str, params: &str| format!("mysql://{user}@{host}:{port}/shop{params}");
    let my = |url: String| ok(MySqlConnector::new(&url));

    // A user that requires TLS is refused without it.
    let e = health_error(&my(url("secure", "127.0.0.1", ""))).await;
    assert!(e.contains("Access denied"), "{e}");
    // REQUIRED encrypts without checking the certificate.
    let version = first_text(
        &my(url("secure", "127.0.0.1", "?ssl-mode=REQUIRED")),
        MY_TLS,
    )
    .await;
    assert!(version.starts_with("TLSv1."), "{version}");
    // VERIFY_IDENTITY: the chain and the IP address; also through the engine.
    let verified = url(
        "secure",
        "127.0.0.1",
        &format!("?ssl-mode=VERIFY_IDENTITY&ssl-ca={ca_file}"),
    );
    let version = first_text(&my(verified.clone()), MY_TLS).await;
    assert!(version.starts_with("TLSv1."), "{version}");
    let engine = ok(Engine::builder()
        .with_source(
            "my",
            SourceConfig::MySql(ServerSourceConfig::new(vec![verified])),
        )
        .with_search_path(["my.shop"])
        .build()
        .await);
    assert_eq!(
        rows(&engine.session(), "SELECT sum(v) FROM t").await,
        vec!["3"]
    );

    // Wrong CA; wrong name (the certificate names 127.0.0.1).
    let e = health_error(&my(url(
        "secure",
        "127.0.0.1",
        &format!(
            "?ssl-mode=VERIFY_IDENTITY&ssl-ca={}",
            other_ca.ca_file().display()
        ),
    )))
    .await;
    assert!(e.contains("UnknownIssuer"), "{e}");
    let e = health_error(&my(url(
        "secure",
        "localhost",
        &format!("?ssl-mode=VERIFY_IDENTITY&ssl-ca={ca_file}"),
    )))
    .await;
    assert!(e.contains("not valid for name"), "{e}");

    // Client certificates: carol must present hers.
    let e = health_error(&my(url("carol", "127.0.0.1", "?ssl-mode=REQUIRED"))).await;
    assert!(e.contains("Access denied"), "{e}");
    let carol = ok(ca.client_cert("carol"));
    let user = first_text(
        &my(url(
            "carol",
            "127.0.0.1",
            &format!(
                "?ssl-mode=VERIFY_IDENTITY&ssl-ca={ca_file}&ssl-cert={}&ssl-key={}",
                carol.cert.display(),
                carol.key.display()
            ),
        )),
        "SELECT CURRENT_USER()",
    )
    .await;
    assert_eq!(user, "carol@%");
}
