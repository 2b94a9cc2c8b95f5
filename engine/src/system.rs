//! The `system` catalog: tables that describe Spar itself.
//!
//! `system` is a reserved source name. Its one schema, `main`, holds
//! `replicas` (every replica of every SQL source: role, state, lag,
//! latency, in-flight fragments, failures, last error) and `index_advice`
//! (indexes that fragments run on a source would have used: source,
//! table, columns, why, times seen, rows read without them, and the
//! `CREATE INDEX` that makes one) and `source_calibration` (each source's
//! speed against the cost model's defaults, measured from the fragments
//! it ran, and how many fragments' recent times it remembers). Each scan reads
//! the live state, so two queries a second apart may differ. `system.replicas`
//! (two parts) names the same table as `system.main.replicas`.
//!
//! A session made with grants sees `system` only through a grant that
//! names it (`system`, `system.*`, `system.main.replicas`): `*` grants
//! every source's data, not Spar's own state (replica addresses and their
//! errors).

use std::sync::Arc;
use std::time::UNIX_EPOCH;

use arrow::array::{
    ArrayRef, Float64Builder, Int64Builder, RecordBatch, StringBuilder, TimestampMicrosecondBuilder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use async_trait::async_trait;
use datafusion::catalog::{MemoryCatalogProvider, MemorySchemaProvider, Session, TableProvider};
use datafusion::datasource::{MemTable, TableType};
use datafusion::error::Result as DfResult;
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;
use spar_connectors::ReplicaRole;

use crate::catalog::SourceInfo;
use crate::engine::WeakEngine;

/// The reserved name of the catalog that describes Spar.
pub const SYSTEM_CATALOG: &str = "system";
/// The one schema of [`SYSTEM_CATALOG`].
pub const SYSTEM_SCHEMA: &str = "main";

/// The `system` catalog of an engine (held weakly: the engine owns it).
pub(crate) fn catalog(engine: WeakEngine) -> DfResult<Arc<MemoryCatalogProvider>> {
    let schema = MemorySchemaProvider::new();
    let tables = [
        (
            "replicas",
            replicas_schema as SchemaOf,
            replicas_batch as Rows,
        ),
        ("index_advice", index_advice_schema, index_advice_batch),
        ("source_calibration", calibration_schema, calibration_batch),
    ];
    for (name, schema_of, rows) in tables {
        datafusion::catalog::SchemaProvider::register_table(
            &schema,
            name.to_string(),
            Arc::new(SystemTable {
                engine: engine.clone(),
                schema: schema_of,
                rows,
            }),
        )?;
    }
    let catalog = MemoryCatalogProvider::new();
    datafusion::catalog::CatalogProvider::register_schema(
        &catalog,
        SYSTEM_SCHEMA,
        Arc::new(schema),
    )?;
    Ok(Arc::new(catalog))
}

/// The schema of a `system` table.
type SchemaOf = fn() -> SchemaRef;

/// The rows of a `system` table, from the engine's sources as they are now.
type Rows = fn(&[SourceInfo]) -> DfResult<RecordBatch>;

/// A table of the `system` catalog: each scan reads the live state.
#[derive(Debug)]
struct SystemTable {
    engine: WeakEngine,
    schema: SchemaOf,
    rows: Rows,
}

#[async_trait]
impl TableProvider for SystemTable {
    fn schema(&self) -> SchemaRef {
        (self.schema)()
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let sources = self
            .engine
            .upgrade()
            .map(|e| e.sources())
            .unwrap_or_default();
        let batch = (self.rows)(&sources)?;
        let table = MemTable::try_new((self.schema)(), vec![vec![batch]])?;
        table.scan(state, projection, filters, limit).await
    }
}

/// `system.replicas`: one row per replica of every SQL source.
fn replicas_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("source", DataType::Utf8, false),
        Field::new("replica", DataType::Utf8, false),
        Field::new("role", DataType::Utf8, true),
        Field::new("state", DataType::Utf8, false),
        Field::new("lag_seconds", DataType::Float64, true),
        Field::new("latency_ms", DataType::Float64, true),
        Field::new("in_flight", DataType::Int64, false),
        Field::new("failures", DataType::Int64, false),
        Field::new("last_error", DataType::Utf8, true),
        Field::new(
            "changed_at",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
    ]))
}

/// The rows of `system.replicas`.
fn replicas_batch(sources: &[SourceInfo]) -> DfResult<RecordBatch> {
    let mut source = StringBuilder::new();
    let mut replica = StringBuilder::new();
    let mut role = StringBuilder::new();
    let mut state = StringBuilder::new();
    let mut lag = Float64Builder::new();
    let mut latency = Float64Builder::new();
    let mut in_flight = Int64Builder::new();
    let mut failures = Int64Builder::new();
    let mut last_error = StringBuilder::new();
    let mut changed_at = TimestampMicrosecondBuilder::new().with_timezone("UTC");
    for info in sources {
        let Some(set) = &info.replica_set else {
            continue;
        };
        for r in set.stats().replicas {
            source.append_value(&info.name);
            replica.append_value(&r.target);
            role.append_option(r.role.map(|role| match role {
                ReplicaRole::Primary => "primary",
                ReplicaRole::Replica => "replica",
            }));
            state.append_value(r.state);
            lag.append_option(r.lag.map(|d| d.as_secs_f64()));
            latency.append_option(r.latency.map(|d| d.as_secs_f64() * 1000.0));
            in_flight.append_value(i64::try_from(r.in_flight).unwrap_or(i64::MAX));
            failures.append_value(i64::try_from(r.failures).unwrap_or(i64::MAX));
            last_error.append_option(r.last_error.as_deref());
            changed_at.append_value(micros(r.changed_at));
        }
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(source.finish()),
        Arc::new(replica.finish()),
        Arc::new(role.finish()),
        Arc::new(state.finish()),
        Arc::new(lag.finish()),
        Arc::new(latency.finish()),
        Arc::new(in_flight.finish()),
        Arc::new(failures.finish()),
        Arc::new(last_error.finish()),
        Arc::new(changed_at.finish()),
    ];
    Ok(RecordBatch::try_new(replicas_schema(), columns)?)
}

/// `system.index_advice`: one row per index a source lacks, as the index
/// advisor saw fragments run (see `spar_planner::index_advice`).
fn index_advice_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("source", DataType::Utf8, false),
        Field::new("table", DataType::Utf8, false),
        Field::new("columns", DataType::Utf8, false),
        Field::new("reason", DataType::Utf8, false),
        Field::new("times_seen", DataType::Int64, false),
        Field::new("rows_read", DataType::Int64, true),
        Field::new("create_index", DataType::Utf8, true),
        Field::new(
            "last_seen",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
    ]))
}

/// The rows of `system.index_advice`.
fn index_advice_batch(sources: &[SourceInfo]) -> DfResult<RecordBatch> {
    let mut source = StringBuilder::new();
    let mut table = StringBuilder::new();
    let mut columns = StringBuilder::new();
    let mut reason = StringBuilder::new();
    let mut times_seen = Int64Builder::new();
    let mut rows_read = Int64Builder::new();
    let mut create_index = StringBuilder::new();
    let mut last_seen = TimestampMicrosecondBuilder::new().with_timezone("UTC");
    for info in sources {
        let Some(set) = &info.replica_set else {
            continue;
        };
        for r in set.index_advice() {
            source.append_value(&info.name);
            table.append_value(&r.table);
            columns.append_value(r.columns.join(", "));
            reason.append_value(r.reason.as_str());
            times_seen.append_value(i64::try_from(r.times_seen).unwrap_or(i64::MAX));
            rows_read.append_option(r.rows_read.map(|n| i64::try_from(n).unwrap_or(i64::MAX)));
            create_index.append_option(r.create_index.as_deref());
            last_seen.append_value(micros(r.last_seen));
        }
    }
    let arrays: Vec<ArrayRef> = vec![
        Arc::new(source.finish()),
        Arc::new(table.finish()),
        Arc::new(columns.finish()),
        Arc::new(reason.finish()),
        Arc::new(times_seen.finish()),
        Arc::new(rows_read.finish()),
        Arc::new(create_index.finish()),
        Arc::new(last_seen.finish()),
    ];
    Ok(RecordBatch::try_new(index_advice_schema(), arrays)?)
}

/// `system.source_calibration`: one row per SQL source, its speed against
/// the cost model's defaults as measured from the fragments it ran (see
/// `spar_planner::cost`).
fn calibration_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("source", DataType::Utf8, false),
        Field::new("scan_factor", DataType::Float64, false),
        Field::new("work_factor", DataType::Float64, false),
        Field::new("scan_fragments", DataType::Int64, false),
        Field::new("work_fragments", DataType::Int64, false),
        Field::new("fragments_remembered", DataType::Int64, false),
        Field::new(
            "last_measured",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            true,
        ),
    ]))
}

/// The rows of `system.source_calibration`.
fn calibration_batch(sources: &[SourceInfo]) -> DfResult<RecordBatch> {
    let mut source = StringBuilder::new();
    let mut scan = Float64Builder::new();
    let mut work = Float64Builder::new();
    let mut scan_fragments = Int64Builder::new();
    let mut work_fragments = Int64Builder::new();
    let mut remembered = Int64Builder::new();
    let mut last = TimestampMicrosecondBuilder::new().with_timezone("UTC");
    for info in sources {
        let Some(set) = &info.replica_set else {
            continue;
        };
        let c = set.calibration();
        source.append_value(&info.name);
        scan.append_value(c.speed.scan);
        work.append_value(c.speed.work);
        scan_fragments.append_value(i64::try_from(c.scan_samples).unwrap_or(i64::MAX));
        work_fragments.append_value(i64::try_from(c.work_samples).unwrap_or(i64::MAX));
        remembered.append_value(i64::try_from(c.remembered).unwrap_or(i64::MAX));
        last.append_option(c.last_measured.map(micros));
    }
    let arrays: Vec<ArrayRef> = vec![
        Arc::new(source.finish()),
        Arc::new(scan.finish()),
        Arc::new(work.finish()),
        Arc::new(scan_fragments.finish()),
        Arc::new(work_fragments.finish()),
        Arc::new(remembered.finish()),
        Arc::new(last.finish()),
    ];
    Ok(RecordBatch::try_new(calibration_schema(), arrays)?)
}

/// Microseconds since the Unix epoch (0 before it).
fn micros(t: std::time::SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}
