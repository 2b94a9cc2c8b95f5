//! TPC-H data from the `tpchgen` crate, as Arrow record batches.

use arrow::datatypes::SchemaRef;
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
use tpchgen::generators as g;
use tpchgen_arrow as ta;

/// The eight TPC-H tables.
pub const TABLES: [&str; 8] = [
    "region", "nation", "supplier", "customer", "part", "partsupp", "orders", "lineitem",
];

/// Each table's primary key, in key order.
pub fn primary_key(table: &str) -> &'static [&'static str] {
    match table {
        "region" => &["r_regionkey"],
        "nation" => &["n_nationkey"],
        "supplier" => &["s_suppkey"],
        "customer" => &["c_custkey"],
        "part" => &["p_partkey"],
        "partsupp" => &["ps_partkey", "ps_suppkey"],
        "orders" => &["o_orderkey"],
        "lineitem" => &["l_orderkey", "l_linenumber"],
        _ => &[],
    }
}

/// Secondary indexes on foreign keys that joins use, as (name, columns).
/// (Not `s_nationkey` or `n_regionkey`: with those, MariaDB 10.11 plans
/// Q2 a hundred times slower.)
pub fn secondary_indexes(table: &str) -> &'static [(&'static str, &'static [&'static str])] {
    match table {
        "partsupp" => &[("partsupp_suppkey", &["ps_suppkey"])],
        "orders" => &[("orders_custkey", &["o_custkey"])],
        "customer" => &[("customer_nationkey", &["c_nationkey"])],
        "lineitem" => &[("lineitem_partsupp", &["l_partkey", "l_suppkey"])],
        _ => &[],
    }
}

/// A stream of batches of one table.
pub type Batches = Box<dyn Iterator<Item = Result<RecordBatch, ArrowError>> + Send>;

/// The schema and batches of TPC-H table `name` at `scale_factor`, or
/// `None` for a name that is not a TPC-H table.
pub fn generate(name: &str, scale_factor: f64) -> Option<(SchemaRef, Batches)> {
    let sf = scale_factor;
    Some(match name {
        "region" => (
            ta::RegionArrow::schema_ref(),
            Box::new(ta::RegionArrow::new(g::RegionGenerator::new(sf, 1, 1))),
        ),
        "nation" => (
            ta::NationArrow::schema_ref(),
            Box::new(ta::NationArrow::new(g::NationGenerator::new(sf, 1, 1))),
        ),
        "supplier" => (
            ta::SupplierArrow::schema_ref(),
            Box::new(ta::SupplierArrow::new(g::SupplierGenerator::new(sf, 1, 1))),
        ),
        "customer" => (
            ta::CustomerArrow::schema_ref(),
            Box::new(ta::CustomerArrow::new(g::CustomerGenerator::new(sf, 1, 1))),
        ),
        "part" => (
            ta::PartArrow::schema_ref(),
            Box::new(ta::PartArrow::new(g::PartGenerator::new(sf, 1, 1))),
        ),
        "partsupp" => (
            ta::PartSuppArrow::schema_ref(),
            Box::new(ta::PartSuppArrow::new(g::PartSuppGenerator::new(sf, 1, 1))),
        ),
        "orders" => (
            ta::OrderArrow::schema_ref(),
            Box::new(ta::OrderArrow::new(g::OrderGenerator::new(sf, 1, 1))),
        ),
        "lineitem" => (
            ta::LineItemArrow::schema_ref(),
            Box::new(ta::LineItemArrow::new(g::LineItemGenerator::new(sf, 1, 1))),
        ),
        _ => return None,
    })
}

/// The 22 TPC-H queries with the specification's validation parameters,
/// spelled so that DataFusion and PostgreSQL both run them unchanged
/// (query 15's view is a `WITH` clause). Queries 3, 10, 11 and 18 end their
/// `ORDER BY` with a key, so that ties cannot reorder rows between engines.
pub const QUERIES: [&str; 22] = [
    include_str!("tpch_queries/q01.sql"),
    include_str!("tpch_queries/q02.sql"),
    include_str!("tpch_queries/q03.sql"),
    include_str!("tpch_queries/q04.sql"),
    include_str!("tpch_queries/q05.sql"),
    include_str!("tpch_queries/q06.sql"),
    include_str!("tpch_queries/q07.sql"),
    include_str!("tpch_queries/q08.sql"),
    include_str!("tpch_queries/q09.sql"),
    include_str!("tpch_queries/q10.sql"),
    include_str!("tpch_queries/q11.sql"),
    include_str!("tpch_queries/q12.sql"),
    include_str!("tpch_queries/q13.sql"),
    include_str!("tpch_queries/q14.sql"),
    include_str!("tpch_queries/q15.sql"),
    include_str!("tpch_queries/q16.sql"),
    include_str!("tpch_queries/q17.sql"),
    include_str!("tpch_queries/q18.sql"),
    include_str!("tpch_queries/q19.sql"),
    include_str!("tpch_queries/q20.sql"),
    include_str!("tpch_queries/q21.sql"),
    include_str!("tpch_queries/q22.sql"),
];

/// TPC-H query 3 (shipping priority).
pub const Q3: &str = QUERIES[2];

/// TPC-H query 5 (local supplier volume).
pub const Q5: &str = QUERIES[4];
