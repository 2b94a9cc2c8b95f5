//! An order-sensitive fingerprint of the rows a fragment has emitted, so
//! that a rerun on another replica can prove its first rows are the same
//! rows, in the same order, before it emits anything after them.
//!
//! Each value is hashed with a seed drawn once per process (so no data
//! can be made to collide on purpose); a row's hash folds its columns in
//! order, NULL standing for itself; the rows fold as a polynomial
//! `h = h·P + row` over 64 bits, whose weights are all odd, so any single
//! row that differs, or two rows that swap, change it. Two different
//! sequences agree by chance with probability about 2⁻⁶⁴.

use std::hash::{BuildHasher, Hasher};
use std::sync::LazyLock;

use arrow::record_batch::RecordBatch;
use datafusion::common::hash_utils::{create_hashes, RandomState};
use datafusion::error::Result;

/// The hash of a NULL, before its column's position is folded in.
const NULL: u64 = 0x6e75_6c6c_6e75_6c6c;
/// Folds a column into its row's hash (odd).
const COLUMN: u64 = 0x9e37_79b9_7f4a_7c15;
/// Folds a row into the sequence's hash (odd).
const ROW: u64 = 0x0000_0100_0000_01b3;

/// The process's seed for value hashes.
static SEED: LazyLock<RandomState> = LazyLock::new(|| {
    let seed = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    RandomState::with_seed(seed)
});

/// Rows folded so far and their hash.
#[derive(Debug, Default)]
pub(super) struct Fingerprint {
    rows: usize,
    hash: u64,
    /// Scratch space: one batch's row hashes and one column's.
    row_hashes: Vec<u64>,
    column_hashes: Vec<u64>,
}

impl Fingerprint {
    /// Rows folded so far.
    pub(super) fn rows(&self) -> usize {
        self.rows
    }

    /// Whether `other` folded the same rows in the same order (up to the
    /// chance of a 64-bit collision).
    pub(super) fn same_as(&self, other: &Self) -> bool {
        self.rows == other.rows && self.hash == other.hash
    }

    /// Folds in every row of `batch`, in order. Fails on a column type
    /// DataFusion cannot hash.
    pub(super) fn add(&mut self, batch: &RecordBatch) -> Result<()> {
        let n = batch.num_rows();
        self.row_hashes.clear();
        self.row_hashes.resize(n, 0);
        for (position, column) in batch.columns().iter().enumerate() {
            self.column_hashes.clear();
            self.column_hashes.resize(n, NULL);
            // Only valid rows are written; NULLs keep `NULL`.
            create_hashes([column], &*SEED, &mut self.column_hashes)?;
            let salt = position as u64;
            for (row, value) in self.row_hashes.iter_mut().zip(&self.column_hashes) {
                *row = (row.rotate_left(5) ^ value ^ salt).wrapping_mul(COLUMN);
            }
        }
        for row in &self.row_hashes {
            self.hash = self.hash.wrapping_mul(ROW).wrapping_add(*row);
        }
        self.rows += n;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{ArrayRef, Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    fn batch(ids: &[Option<i64>], names: &[Option<&str>]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("name", DataType::Utf8, true),
        ]));
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from(ids.to_vec())),
            Arc::new(StringArray::from(names.to_vec())),
        ];
        RecordBatch::try_new(schema, columns).unwrap_or_else(|e| panic!("{e}"))
    }

    fn of(batches: &[RecordBatch]) -> Fingerprint {
        let mut f = Fingerprint::default();
        for b in batches {
            f.add(b).unwrap_or_else(|e| panic!("{e}"));
        }
        f
    }

    #[test]
    fn the_same_rows_in_other_batches_agree() {
        let whole = batch(&[Some(1), None, Some(3)], &[Some("a"), Some("b"), None]);
        let split = [whole.slice(0, 1), whole.slice(1, 2)];
        assert!(of(std::slice::from_ref(&whole)).same_as(&of(&split)));
        assert_eq!(of(&split).rows(), 3);
    }

    #[test]
    fn order_values_and_nulls_all_count() {
        let base = of(&[batch(&[Some(1), Some(2)], &[Some("a"), Some("b")])]);
        for other in [
            // Rows swapped.
            batch(&[Some(2), Some(1)], &[Some("b"), Some("a")]),
            // One value changed.
            batch(&[Some(1), Some(2)], &[Some("a"), Some("c")]),
            // A value became NULL.
            batch(&[Some(1), Some(2)], &[Some("a"), None]),
            // Values moved between columns' NULLs.
            batch(&[Some(1), None], &[Some("a"), Some("b")]),
        ] {
            assert!(!base.same_as(&of(&[other])));
        }
        // NULL in one column or the other.
        let left = of(&[batch(&[None], &[Some("x")])]);
        let right = of(&[batch(&[Some(0)], &[None])]);
        assert!(!left.same_as(&right));
        // One row fewer.
        let fewer = of(&[batch(&[Some(1)], &[Some("a")])]);
        assert!(!base.same_as(&fewer));
    }
}
