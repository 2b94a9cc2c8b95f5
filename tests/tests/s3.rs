//! File sources on `s3://`, against an S3-compatible server on loopback.

use std::sync::Arc;

use object_store::aws::AmazonS3Builder;
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use spar_engine::{Engine, FileFormatKind, FileSourceConfig, S3Options, SourceConfig};
use spar_tests::rows;
use spar_tests::s3::S3Server;

#[tokio::test]
async fn s3_locations_are_read_with_configured_credentials() {
    let server = S3Server::start();
    server.create_bucket("lake");
    let store: Arc<dyn ObjectStore> = Arc::new(
        AmazonS3Builder::new()
            .with_bucket_name("lake")
            .with_endpoint(server.endpoint())
            .with_region("us-east-1")
            .with_access_key_id("spar")
            .with_secret_access_key("secret")
            .with_allow_http(true)
            .build()
            .unwrap_or_else(|e| panic!("{e}")),
    );
    let put = |path: &'static str, body: &'static str| {
        let store = Arc::clone(&store);
        async move {
            store
                .put(
                    &StorePath::from(path),
                    PutPayload::from_static(body.as_bytes()),
                )
                .await
                .unwrap_or_else(|e| panic!("{e}"));
        }
    };
    put("crm/customers.csv", "id,name\n1,Ada\n2,Grace\n").await;
    put("crm/orders/2024.csv", "id,customer_id,total\n10,1,5.5\n").await;
    put(
        "crm/orders/2025.csv",
        "id,customer_id,total\n11,2,7.25\n12,1,1.0\n",
    )
    .await;
    put("crm/readme.txt", "not a table").await;
    put("elsewhere/other.csv", "x\n1\n").await;

    let mut files = FileSourceConfig::new("s3://lake/crm/", FileFormatKind::Csv);
    files.s3 = S3Options {
        endpoint: Some(server.endpoint()),
        region: Some("us-east-1".into()),
        access_key_id: Some("spar".into()),
        secret_access_key: Some("secret".into()),
        allow_http: true,
        ..S3Options::default()
    };
    let engine = Engine::builder()
        .with_source("crm", SourceConfig::Files(files))
        .with_search_path(["crm.main"])
        .build()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let session = engine.session();
    assert_eq!(
        rows(&session, "SELECT c.name, count(*), sum(o.total) FROM customers c JOIN orders o ON o.customer_id = c.id GROUP BY c.name ORDER BY c.name").await,
        vec!["Ada|2|6.5", "Grace|1|7.25"]
    );
    let tables = rows(
        &session,
        "SELECT table_name FROM information_schema.tables WHERE table_catalog = 'crm' AND table_schema = 'main' ORDER BY 1",
    )
    .await;
    assert_eq!(tables, vec!["customers", "orders"]);
}

#[tokio::test]
async fn an_unreachable_s3_endpoint_names_the_location() {
    let mut files = FileSourceConfig::new("s3://lake/crm/", FileFormatKind::Parquet);
    files.s3 = S3Options {
        endpoint: Some("http://127.0.0.1:9".into()),
        region: Some("us-east-1".into()),
        access_key_id: Some("spar".into()),
        secret_access_key: Some("do-not-print-me".into()),
        allow_http: true,
        ..S3Options::default()
    };
    let engine = Engine::builder()
        .with_source("crm", SourceConfig::Files(files))
        .build()
        .await
        .unwrap_or_else(|e| panic!("a source that is down does not stop the engine: {e}"));
    let e = engine
        .session()
        .sql("SELECT * FROM crm.main.customers")
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        e.contains("source `crm`") && e.contains("s3://lake/crm"),
        "{e}"
    );
    assert!(!e.contains("do-not-print-me"), "{e}");
}
