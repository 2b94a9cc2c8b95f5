//! Scans that can continue on another replica after the last row read.
//!
//! A scan fragment of one table with a primary key (or a unique index on
//! columns that cannot be NULL) of integer or date columns can be read in
//! key order. Its SQL is then spelled again for any resume point:
//!
//! ```text
//!   SELECT <columns>, <key columns> FROM t WHERE <filters>
//!     [AND (k1 > v1 OR (k1 = v1 AND k2 > v2))]  ORDER BY k1, k2  [LIMIT rest]
//! ```
//!
//! Only integer and date keys are used: their order is the same at every
//! source and in Arrow, and their literals read back exactly. (A text key
//! would need the source's collation in both the `ORDER BY` and the `>`.)

use std::fmt;
use std::sync::Arc;

use arrow::datatypes::{DataType, SchemaRef};
use datafusion::catalog::TableProvider;
use datafusion::common::{Column, DFSchema, ScalarValue, TableReference};
use datafusion::datasource::provider_as_source;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{col, lit, Expr, LogicalPlanBuilder, SortExpr};
use spar_connectors::{prepare, SqlDialect, TableMeta};

use crate::unparse::plan_to_source_sql;

/// How to read a scan fragment in key order from any resume point.
pub struct ResumableScan {
    table: Arc<dyn TableProvider>,
    remote: TableReference,
    /// Table column indices read: the fragment's own, then key columns it
    /// does not already read.
    projection: Vec<usize>,
    /// How many leading columns are the fragment's output.
    output: usize,
    /// Positions of the key columns in the columns read.
    keys: Vec<usize>,
    key_names: Vec<String>,
    /// The fragment's filters, prepared for the dialect.
    filters: Vec<Expr>,
    fetch: Option<usize>,
    dialect: Arc<dyn SqlDialect>,
    /// The table's columns, unqualified, for preparing the key predicate.
    columns: DFSchema,
    schema: SchemaRef,
}

impl fmt::Debug for ResumableScan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResumableScan")
            .field("remote", &self.remote)
            .field("keys", &self.key_names)
            .finish()
    }
}

impl ResumableScan {
    /// The resumable form of a scan of `meta`'s table reading `projection`
    /// with `filters` (already prepared for `dialect`) and `fetch`, or
    /// `None` when the table has no usable key or the source cannot sort.
    pub(crate) fn new(
        table: Arc<dyn TableProvider>,
        meta: &TableMeta,
        projection: &[usize],
        filters: &[Expr],
        fetch: Option<usize>,
        dialect: Arc<dyn SqlDialect>,
    ) -> Option<Self> {
        let caps = dialect.capabilities();
        if !caps.order_by || !caps.filter || (fetch.is_some() && !caps.limit) {
            return None;
        }
        let schema = &meta.schema;
        let key = meta
            .indexes
            .iter()
            .filter(|i| i.unique && !i.partial && !i.expression && !i.columns.is_empty())
            .filter_map(|i| {
                i.columns
                    .iter()
                    .map(|c| {
                        let (at, field) = schema.column_with_name(c)?;
                        (!field.is_nullable() && orderable(field.data_type())).then_some(at)
                    })
                    .collect::<Option<Vec<usize>>>()
                    .map(|cols| (i.primary, cols))
            })
            // The primary key first, then the narrowest unique index.
            .min_by_key(|(primary, cols)| (!primary, cols.len()))?
            .1;
        let mut read = projection.to_vec();
        let keys = key
            .iter()
            .map(|k| match read.iter().position(|c| c == k) {
                Some(at) => at,
                None => {
                    read.push(*k);
                    read.len() - 1
                }
            })
            .collect();
        let key_names = key
            .iter()
            .map(|&k| schema.field(k).name().clone())
            .collect();
        let columns = DFSchema::try_from(schema.as_ref().clone()).ok()?;
        let read_schema = Arc::new(schema.project(&read).ok()?);
        Some(Self {
            table,
            remote: TableReference::partial(meta.name.schema.as_str(), meta.name.table.as_str()),
            projection: read,
            output: projection.len(),
            keys,
            key_names,
            filters: filters.to_vec(),
            fetch,
            dialect,
            columns,
            schema: read_schema,
        })
    }

    /// The columns the SQL returns: the fragment's, then any key columns
    /// it adds (drop them with [`Self::output_columns`]).
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// How many leading columns of [`Self::schema`] are the fragment's.
    pub fn output_columns(&self) -> usize {
        self.output
    }

    /// Positions of the key columns in [`Self::schema`], in key order.
    pub fn key_columns(&self) -> &[usize] {
        &self.keys
    }

    /// The key's column names, for messages.
    pub fn key_names(&self) -> &[String] {
        &self.key_names
    }

    /// The scan's row limit, if any.
    pub fn fetch(&self) -> Option<usize> {
        self.fetch
    }

    /// The SQL that reads the scan in key order: from the start, or only
    /// the rows after key `after` (one value per key column), with
    /// `delivered` rows already counted against the limit.
    pub fn sql(&self, after: Option<&[ScalarValue]>, delivered: usize) -> Result<String> {
        let mut filters = self.filters.clone();
        if let Some(after) = after {
            let predicate = self.after(after)?;
            filters.push(prepare(self.dialect.as_ref(), predicate, &self.columns)?);
        }
        let scan = LogicalPlanBuilder::scan_with_filters_fetch(
            self.remote.clone(),
            provider_as_source(Arc::clone(&self.table)),
            Some(self.projection.clone()),
            filters,
            None,
        )?;
        let order: Vec<SortExpr> = self
            .key_names
            .iter()
            .map(|k| col(Column::new_unqualified(k)).sort(true, false))
            .collect();
        let mut plan = scan.sort(order)?;
        if let Some(fetch) = self.fetch {
            plan = plan.limit(0, Some(fetch.saturating_sub(delivered)))?;
        }
        plan_to_source_sql(&plan.build()?, self.dialect.as_ref())
    }

    /// `key > after`, lexicographically: `k1 >= v1 AND (k1 > v1 OR (k1 =
    /// v1 AND k2 > v2) …)` (the leading `>=` lets a source use the index).
    fn after(&self, after: &[ScalarValue]) -> Result<Expr> {
        if after.len() != self.key_names.len() || after.iter().any(ScalarValue::is_null) {
            return Err(DataFusionError::Internal(format!(
                "resume point {after:?} does not match key ({})",
                self.key_names.join(", ")
            )));
        }
        let k = |i: usize| col(Column::new_unqualified(&self.key_names[i]));
        let v = |i: usize| lit(after[i].clone());
        let mut disjuncts = Vec::new();
        for i in 0..after.len() {
            let mut term = k(i).gt(v(i));
            for j in (0..i).rev() {
                term = k(j).eq(v(j)).and(term);
            }
            disjuncts.push(term);
        }
        let any = disjuncts
            .into_iter()
            .reduce(Expr::or)
            .ok_or_else(|| DataFusionError::Internal("resume key without columns".into()))?;
        Ok(if after.len() > 1 {
            k(0).gt_eq(v(0)).and(any)
        } else {
            any
        })
    }
}

/// Key types whose order is the same at every source and in Arrow, and
/// whose literals read back exactly.
fn orderable(t: &DataType) -> bool {
    t.is_integer() || matches!(t, DataType::Date32)
}

#[cfg(test)]
mod tests {
    use arrow::datatypes::{Field, Schema};
    use datafusion::common::stats::Precision;
    use datafusion::datasource::empty::EmptyTable;
    use spar_connectors::{IndexMeta, TableKind, TableName, TableStats};

    use super::*;
    use crate::test_util::postgres_dialect;

    fn meta(indexes: Vec<IndexMeta>) -> TableMeta {
        let schema = Arc::new(Schema::new(vec![
            Field::new("order_id", DataType::Int64, false),
            Field::new("line", DataType::Int32, false),
            Field::new("note", DataType::Utf8, true),
            Field::new("code", DataType::Int64, true),
        ]));
        let mut stats = TableStats::unknown(4);
        stats.row_count = Precision::Exact(10);
        TableMeta {
            name: TableName::new("public", "lines"),
            kind: TableKind::Table,
            schema,
            stats,
            indexes,
        }
    }

    fn index(name: &str, columns: &[&str], primary: bool) -> IndexMeta {
        IndexMeta {
            name: name.into(),
            columns: columns.iter().map(|c| c.to_string()).collect(),
            unique: true,
            primary,
            partial: false,
            expression: false,
        }
    }

    fn scan(meta: &TableMeta, projection: &[usize], fetch: Option<usize>) -> Option<ResumableScan> {
        let table = Arc::new(EmptyTable::new(Arc::clone(&meta.schema)));
        let filters = vec![col("note").is_not_null()];
        ResumableScan::new(table, meta, projection, &filters, fetch, postgres_dialect())
    }

    #[test]
    fn a_composite_key_is_read_in_order_and_resumed_after_the_last_key() -> Result<()> {
        let meta = meta(vec![index("pk", &["order_id", "line"], true)]);
        // The fragment reads `note` only: the key columns are added after it.
        let s = scan(&meta, &[2], Some(100))
            .ok_or_else(|| DataFusionError::Internal("no key".into()))?;
        assert_eq!(s.output_columns(), 1);
        assert_eq!(s.key_columns(), [1, 2]);
        assert_eq!(s.key_names(), ["order_id", "line"]);
        let first = s.sql(None, 0)?;
        assert!(first.contains(r#"ORDER BY "lines"."order_id" ASC NULLS LAST, "lines"."line" ASC NULLS LAST LIMIT 100"#), "{first}");
        assert!(first.contains(r#""lines"."note" IS NOT NULL"#), "{first}");
        let after = [ScalarValue::Int64(Some(7)), ScalarValue::Int32(Some(3))];
        let resumed = s.sql(Some(&after), 40)?;
        assert!(
            resumed.contains(r#"("lines"."order_id" >= 7) AND (("lines"."order_id" > 7) OR (("lines"."order_id" = 7) AND ("lines"."line" > 3)))"#),
            "{resumed}"
        );
        assert!(resumed.ends_with("LIMIT 60"), "{resumed}");
        assert!(
            s.sql(Some(&after[..1]), 0).is_err(),
            "a short resume point is refused"
        );
        Ok(())
    }

    #[test]
    fn only_keys_that_cannot_be_null_and_order_alike_everywhere() {
        // No index: nothing to resume by.
        assert!(scan(&meta(vec![]), &[0], None).is_none());
        // A unique index over a nullable column does not identify rows.
        assert!(scan(&meta(vec![index("u", &["code"], false)]), &[0], None).is_none());
        // A text key would need the source's collation on both sides.
        let mut text_key = meta(vec![index("pk", &["note"], true)]);
        text_key.schema = Arc::new(Schema::new(vec![Field::new("note", DataType::Utf8, false)]));
        assert!(scan(&text_key, &[0], None).is_none());
        // The primary key wins over a narrower unique index.
        let both = meta(vec![
            index("u", &["order_id"], false),
            index("pk", &["order_id", "line"], true),
        ]);
        let s = scan(&both, &[0, 1], None);
        assert_eq!(
            s.map(|s| s.key_names().to_vec()),
            Some(vec!["order_id".to_string(), "line".to_string()])
        );
    }
}
