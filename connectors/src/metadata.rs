//! Plain data that connectors report about tables: schema, statistics,
//! indexes. The planner reads only these, never a live connection.

use std::fmt;

use arrow::datatypes::SchemaRef;
use datafusion::common::stats::Precision;
use datafusion::common::{ColumnStatistics, ScalarValue, Statistics};

/// A table's name on its source: the source's own schema and table name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TableName {
    /// The source's schema (`public`, a MySQL database, `main` for SQLite).
    pub schema: String,
    /// The table (or view) name, exactly as the source spells it.
    pub table: String,
}

impl TableName {
    /// A table name from its schema and table.
    pub fn new(schema: impl Into<String>, table: impl Into<String>) -> Self {
        Self {
            schema: schema.into(),
            table: table.into(),
        }
    }
}

impl fmt::Display for TableName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.schema, self.table)
    }
}

/// Whether a relation is a base table or a view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TableKind {
    /// A base table.
    Table,
    /// A view.
    View,
}

/// One index of a table, as the source reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexMeta {
    /// The index name on the source.
    pub name: String,
    /// The indexed columns, in index order. Empty entries never occur; an
    /// expression index has [`IndexMeta::expression`] set instead of names it
    /// cannot give.
    pub columns: Vec<String>,
    /// Whether the index enforces uniqueness.
    pub unique: bool,
    /// Whether this is the table's primary key.
    pub primary: bool,
    /// Whether the index covers only some rows (`WHERE` clause).
    pub partial: bool,
    /// Whether some key part is an expression rather than a column.
    pub expression: bool,
}

impl IndexMeta {
    /// Whether a lookup on exactly these columns (in any order) hits at most
    /// one row through this index.
    pub fn is_unique_on(&self, columns: &[&str]) -> bool {
        self.unique
            && !self.partial
            && !self.expression
            && self.columns.len() == columns.len()
            && self.columns.iter().all(|c| columns.contains(&c.as_str()))
    }
}

/// Statistics of one column, each as precise as the source can tell.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnStats {
    /// The number of NULLs.
    pub null_count: Precision<usize>,
    /// The number of distinct non-NULL values.
    pub distinct_count: Precision<usize>,
    /// The smallest value, in the column's Arrow type.
    pub min: Precision<ScalarValue>,
    /// The largest value, in the column's Arrow type.
    pub max: Precision<ScalarValue>,
}

impl Default for ColumnStats {
    fn default() -> Self {
        Self {
            null_count: Precision::Absent,
            distinct_count: Precision::Absent,
            min: Precision::Absent,
            max: Precision::Absent,
        }
    }
}

/// Statistics of one table: a row count and one entry per column.
#[derive(Debug, Clone, PartialEq)]
pub struct TableStats {
    /// The number of rows.
    pub row_count: Precision<usize>,
    /// One entry per column of the table's schema, in schema order.
    pub columns: Vec<ColumnStats>,
}

impl TableStats {
    /// Statistics that know nothing, for a table of `n_columns` columns.
    pub fn unknown(n_columns: usize) -> Self {
        Self {
            row_count: Precision::Absent,
            columns: vec![ColumnStats::default(); n_columns],
        }
    }

    /// The same statistics as DataFusion's [`Statistics`].
    pub fn to_statistics(&self) -> Statistics {
        Statistics {
            num_rows: self.row_count,
            total_byte_size: Precision::Absent,
            column_statistics: self
                .columns
                .iter()
                .map(|c| ColumnStatistics {
                    null_count: c.null_count,
                    distinct_count: c.distinct_count,
                    min_value: c.min.clone(),
                    max_value: c.max.clone(),
                    sum_value: Precision::Absent,
                    byte_size: Precision::Absent,
                })
                .collect(),
        }
    }

    /// Keeps the statistics of the given columns, in the given order.
    pub fn project(&self, projection: &[usize]) -> Self {
        Self {
            row_count: self.row_count,
            columns: projection
                .iter()
                .map(|&i| self.columns.get(i).cloned().unwrap_or_default())
                .collect(),
        }
    }
}

/// Everything a connector reports about one table.
#[derive(Debug, Clone)]
pub struct TableMeta {
    /// The table's name on its source.
    pub name: TableName,
    /// Table or view.
    pub kind: TableKind,
    /// The Arrow schema every fragment over this table reads into.
    pub schema: SchemaRef,
    /// Row count and column statistics.
    pub stats: TableStats,
    /// The table's indexes (none for views).
    pub indexes: Vec<IndexMeta>,
}

impl TableMeta {
    /// The primary key's columns, when the table has one.
    pub fn primary_key(&self) -> Option<&[String]> {
        self.indexes
            .iter()
            .find(|i| i.primary)
            .map(|i| i.columns.as_slice())
    }
}
