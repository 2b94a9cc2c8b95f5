//! A third-party client proves the Flight SQL endpoint: the ADBC Flight SQL
//! driver from PyPI (`adbc-driver-flightsql`, `pyarrow`), run by
//! `tests/python/adbc_client.py` against `spar serve` in-process.
//!
//! The Python comes from `SPAR_PYTHON` (`scripts/test.sh` points it at a
//! virtual environment with both packages installed), else `python3`.

use serde_json::Value;
use spar_tests::flight::start;
use spar_tests::rows;

const CROSS_SOURCE: &str = "SELECT c.name, count(*) AS n, sum(o.amount) AS total \
     FROM orders o JOIN customers c ON c.id = o.customer GROUP BY c.name ORDER BY c.name";
const PREPARED: &str = "SELECT o.id, c.name FROM orders o JOIN customers c ON c.id = o.customer \
     WHERE o.amount > {} ORDER BY o.id";

/// JSON rows as `a|b` lines, like `spar_tests::rows`.
fn lines(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|rows| {
            rows.iter()
                .map(|row| {
                    row.as_array()
                        .map(|cells| {
                            cells
                                .iter()
                                .map(|c| match c {
                                    Value::String(s) => s.clone(),
                                    other => other.to_string(),
                                })
                                .collect::<Vec<_>>()
                                .join("|")
                        })
                        .unwrap_or_default()
                })
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn the_adbc_flight_sql_driver_queries_spar() {
    let server = start("").await;
    let python = std::env::var("SPAR_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/python/adbc_client.py");
    let output = tokio::process::Command::new(&python)
        .arg(script)
        .arg(format!("grpc://{}", server.addr))
        .args(["ann", "ann-pw"])
        .output()
        .await
        .unwrap_or_else(|e| panic!("cannot run `{python}`: {e}"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the ADBC client failed ({}); if adbc_driver_flightsql is missing, run `bash scripts/test.sh` \
         (it installs it into a virtual environment) or set SPAR_PYTHON:\n{stderr}",
        output.status
    );
    let out: Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("the ADBC client printed no JSON ({e}):\n{stderr}"));

    let engine = server.engine().await;
    let session = engine.session();
    assert_eq!(
        out["cross_source_columns"],
        serde_json::json!(["name", "n", "total"])
    );
    assert_eq!(
        lines(&out["cross_source"]),
        rows(&session, CROSS_SOURCE).await
    );
    for (key, bound) in [("prepared", 450), ("prepared_again", 480)] {
        let expected = rows(&session, &PREPARED.replace("{}", &bound.to_string())).await;
        assert!(!expected.is_empty());
        assert_eq!(lines(&out[key]), expected, "{key}");
    }
    assert_eq!(
        out["objects"]["sales.main.orders"],
        serde_json::json!(["id", "customer", "amount"])
    );
    assert_eq!(
        out["objects"]["crm.main.customers"],
        serde_json::json!(["id", "name"])
    );
    let refused = out["wrong_password"].as_str().unwrap_or_default();
    assert!(
        refused.contains("invalid user name or password"),
        "{refused}"
    );
    server.stop().await;
}
