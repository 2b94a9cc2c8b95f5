//! What the index advisor has seen on one source, for
//! `system.index_advice`.

use std::sync::Mutex;
use std::time::SystemTime;

use spar_planner::{AdviceReason, IndexAdvice};

/// The most advice kept per source; past it, the advice seen least often
/// gives way (so that a flood of distinct queries cannot grow it).
const MOST: usize = 1_000;

/// One index the advisor asked for, with how often and at what cost.
#[derive(Debug, Clone)]
pub struct AdviceRecord {
    /// The table, `schema.table`.
    pub table: String,
    /// The columns to index, in order.
    pub columns: Vec<String>,
    /// Why: a filter or a join key (the first reason seen).
    pub reason: AdviceReason,
    /// Fragments run that would have used the index.
    pub times_seen: u64,
    /// The table's estimated rows, summed over those fragments: what the
    /// source read without the index. `None` when the table has no row
    /// count.
    pub rows_read: Option<u64>,
    /// The statement that creates the index, in the source's dialect.
    pub create_index: Option<String>,
    /// When a fragment last asked for it.
    pub last_seen: SystemTime,
}

/// The advice recorded for one source.
#[derive(Debug, Default)]
pub(super) struct Advisor {
    records: Mutex<Vec<AdviceRecord>>,
}

impl Advisor {
    /// Counts one run of a fragment that would have used each of `advice`.
    pub(super) fn record(&self, advice: &[IndexAdvice]) {
        if advice.is_empty() {
            return;
        }
        let Ok(mut records) = self.records.lock() else {
            return;
        };
        let now = SystemTime::now();
        for a in advice {
            let table = a.table.to_string();
            let rows = a.table_rows.map(|r| r as u64);
            match records
                .iter_mut()
                .find(|r| r.table == table && r.columns == a.columns)
            {
                Some(r) => {
                    r.times_seen += 1;
                    r.rows_read = match (r.rows_read, rows) {
                        (Some(x), Some(y)) => Some(x.saturating_add(y)),
                        (x, y) => x.or(y),
                    };
                    r.last_seen = now;
                }
                None => {
                    if records.len() >= MOST {
                        if let Some(least) = records
                            .iter()
                            .enumerate()
                            .min_by_key(|(_, r)| (r.times_seen, r.last_seen))
                            .map(|(i, _)| i)
                        {
                            records.swap_remove(least);
                        }
                    }
                    records.push(AdviceRecord {
                        table,
                        columns: a.columns.clone(),
                        reason: a.reason,
                        times_seen: 1,
                        rows_read: rows,
                        create_index: a.create_index.clone(),
                        last_seen: now,
                    });
                }
            }
        }
    }

    /// Drops every record of `table`.
    pub(super) fn forget(&self, table: &str) {
        if let Ok(mut records) = self.records.lock() {
            records.retain(|r| r.table != table);
        }
    }

    /// Every record, the most rows read first.
    pub(super) fn records(&self) -> Vec<AdviceRecord> {
        let mut out = self.records.lock().map(|r| r.clone()).unwrap_or_default();
        out.sort_by(|a, b| {
            b.rows_read
                .cmp(&a.rows_read)
                .then(b.times_seen.cmp(&a.times_seen))
                .then(a.table.cmp(&b.table))
        });
        out
    }
}

#[cfg(test)]
mod tests {
    use spar_connectors::TableName;

    use super::*;

    fn advice(table: &str, column: &str, rows: Option<usize>) -> IndexAdvice {
        IndexAdvice {
            table: TableName::new("public", table),
            columns: vec![column.to_string()],
            reason: AdviceReason::Filter,
            table_rows: rows,
            create_index: Some(format!("CREATE INDEX ON {table} ({column})")),
        }
    }

    #[test]
    fn runs_are_counted_per_table_and_columns_and_bounded() {
        let advisor = Advisor::default();
        advisor.record(&[advice("t", "a", Some(100)), advice("u", "b", None)]);
        advisor.record(&[advice("t", "a", Some(100))]);
        let records = advisor.records();
        assert_eq!(records.len(), 2);
        assert_eq!(
            (
                records[0].table.as_str(),
                records[0].times_seen,
                records[0].rows_read
            ),
            ("public.t", 2, Some(200))
        );
        assert_eq!((records[1].times_seen, records[1].rows_read), (1, None));
        for i in 0..MOST + 10 {
            advisor.record(&[advice(&format!("x{i}"), "c", Some(1))]);
        }
        let records = advisor.records();
        assert_eq!(records.len(), MOST);
        // The one seen twice stays.
        assert!(records.iter().any(|r| r.table == "public.t"));
    }
}
