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
pub fn secondary_indexes(table: &str) -> &'static [(&'static str, &'static [&'static str])] {
    match table {
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

/// TPC-H query 3 (shipping priority) with the specification's validation
/// parameters.
pub const Q3: &str = "SELECT l_orderkey, sum(l_extendedprice * (1 - l_discount)) AS revenue, o_orderdate, o_shippriority
FROM customer, orders, lineitem
WHERE c_mktsegment = 'BUILDING'
  AND c_custkey = o_custkey
  AND l_orderkey = o_orderkey
  AND o_orderdate < DATE '1995-03-15'
  AND l_shipdate > DATE '1995-03-15'
GROUP BY l_orderkey, o_orderdate, o_shippriority
ORDER BY revenue DESC, o_orderdate
LIMIT 10";

/// TPC-H query 5 (local supplier volume) with the validation parameters.
pub const Q5: &str = "SELECT n_name, sum(l_extendedprice * (1 - l_discount)) AS revenue
FROM customer, orders, lineitem, supplier, nation, region
WHERE c_custkey = o_custkey
  AND l_orderkey = o_orderkey
  AND l_suppkey = s_suppkey
  AND c_nationkey = s_nationkey
  AND s_nationkey = n_nationkey
  AND n_regionkey = r_regionkey
  AND r_name = 'ASIA'
  AND o_orderdate >= DATE '1994-01-01'
  AND o_orderdate < DATE '1994-01-01' + INTERVAL '1' YEAR
GROUP BY n_name
ORDER BY revenue DESC";
