//! Statistics and keys discovered on the TPC-H tables, split as the
//! federation tests split them: orders, lineitem, customer in PostgreSQL;
//! part, partsupp, supplier, nation, region in MariaDB.

use datafusion::common::stats::Precision;
use spar_engine::connectors::mysql::MySqlConnector;
use spar_engine::connectors::postgres::PostgresConnector;
use spar_engine::connectors::{Connector, TableName};
use spar_tests::harness::{MariaDbServer, PgServer};
use spar_tests::tpch::{load_mariadb, load_postgres, Ddl};

const SCALE: f64 = 0.01;

fn ok<T, E: std::fmt::Display>(r: Result<T, E>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

/// Checks one table: primary key and indexes exactly; the row count and
/// the key's distinct count within a factor of two of the truth. Both are
/// estimates: InnoDB samples pages for `TABLE_ROWS` and index cardinality
/// (seen 22% low on `partsupp`), so the check is for the order of
/// magnitude a cost model needs, not for exact counts.
async fn check(connector: &dyn Connector, schema: &str, table: &str, rows: usize) {
    let name = TableName::new(schema, table);
    let indexes = ok(connector.indexes(&name).await);
    let pk = indexes
        .iter()
        .find(|i| i.primary)
        .map(|i| i.columns.clone())
        .unwrap_or_default();
    let expected: Vec<String> = spar_server::tpch::primary_key(table)
        .iter()
        .map(|c| c.to_string())
        .collect();
    assert_eq!(pk, expected, "{table}: primary key");
    for (index, cols) in spar_server::tpch::secondary_indexes(table) {
        let found = indexes
            .iter()
            .find(|i| i.name == *index)
            .map(|i| i.columns.clone())
            .unwrap_or_default();
        assert_eq!(
            found,
            cols.iter().map(|c| c.to_string()).collect::<Vec<_>>(),
            "{table}: index {index}"
        );
    }
    let arrow_schema = ok(connector.table_schema(&name).await);
    let stats = ok(connector.table_statistics(&name, &arrow_schema).await);
    let estimate = stats.row_count.get_value().copied().unwrap_or(0);
    assert!(
        estimate as f64 >= rows as f64 * 0.5 && estimate as f64 <= rows as f64 * 2.0,
        "{table}: {rows} rows, estimated {:?}",
        stats.row_count
    );
    if expected.len() == 1 {
        let key = arrow_schema
            .index_of(&expected[0])
            .unwrap_or_else(|e| panic!("{e}"));
        let distinct = match stats.columns[key].distinct_count {
            Precision::Exact(n) | Precision::Inexact(n) => n,
            Precision::Absent => 0,
        };
        assert!(
            distinct as f64 >= rows as f64 * 0.8,
            "{table}: key distinct count {distinct} for {rows} rows"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_tpch_tables() {
    let server = ok(PgServer::start().await);
    ok(server.create_database("tpch").await);
    let tables = ["orders", "lineitem", "customer"];
    let counts = ok(load_postgres(&server, "tpch", &tables, SCALE, Ddl::Varchar).await);
    let connector = ok(PostgresConnector::new(&server.url("tpch")));
    for (table, rows) in tables.iter().zip(counts) {
        check(&connector, "public", table, rows).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_tpch_tables() {
    let server = ok(MariaDbServer::start().await);
    ok(server.create_database("tpch").await);
    let tables = ["part", "partsupp", "supplier", "nation", "region"];
    let counts = ok(load_mariadb(&server, "tpch", &tables, SCALE, Ddl::Varchar).await);
    let connector = ok(MySqlConnector::new(&server.url("tpch")));
    for (table, rows) in tables.iter().zip(counts) {
        check(&connector, "tpch", table, rows).await;
    }
}
