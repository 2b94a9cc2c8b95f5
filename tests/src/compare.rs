//! Comparing Spar's answers with a reference database's, value by value.
//!
//! The reference (PostgreSQL) returns text; Spar returns Arrow arrays,
//! formatted here as text with their types. Numbers are compared by value,
//! not by spelling (`1995` and `1995.0000` are equal when the scales allow
//! it), under these rules:
//!
//! - decimals and integers: equal in value (`12.3400` equals `12.34`,
//!   `12` does not equal `12.99`); only in the columns the caller names as
//!   approximate (AVG and division, where each engine rounds at its own
//!   precision), within one unit in the last place of the coarser scale;
//! - floats: within a relative 1e-9;
//! - everything else (strings, dates, booleans): the same text.

use arrow::array::RecordBatch;
use arrow::datatypes::DataType;
use arrow::util::display::{ArrayFormatter, FormatOptions};

/// One value of a result: its text (`None` for NULL) and, for Spar's side,
/// its Arrow type.
#[derive(Debug, Clone, PartialEq)]
pub struct Cell {
    /// The value as text; `None` is NULL.
    pub text: Option<String>,
    /// The Arrow type, when known.
    pub data_type: Option<DataType>,
}

/// A result's rows of cells, in result order.
pub type Rows = Vec<Vec<Cell>>;

/// The rows of `sql` run through `session`; an error says whether
/// planning or running failed.
pub async fn spar_rows(session: &spar_engine::Session, sql: &str) -> Result<Rows, String> {
    let df = session
        .sql(sql)
        .await
        .map_err(|e| format!("planning: {e}"))?;
    let batches = df.collect().await.map_err(|e| format!("running: {e}"))?;
    Ok(arrow_rows(&batches))
}

/// Spar's batches as rows of typed cells.
pub fn arrow_rows(batches: &[RecordBatch]) -> Rows {
    let options = FormatOptions::default();
    let mut out = Vec::new();
    for batch in batches {
        let formatters: Vec<_> = batch
            .columns()
            .iter()
            .map(|c| {
                ArrayFormatter::try_new(c.as_ref(), &options).unwrap_or_else(|e| panic!("{e}"))
            })
            .collect();
        for row in 0..batch.num_rows() {
            out.push(
                batch
                    .columns()
                    .iter()
                    .zip(&formatters)
                    .map(|(c, f)| Cell {
                        text: (!c.is_null(row)).then(|| f.value(row).to_string()),
                        data_type: Some(c.data_type().clone()),
                    })
                    .collect(),
            );
        }
    }
    out
}

/// Runs `sql` on a PostgreSQL connection with the simple (text) protocol
/// and returns its rows as untyped cells. A `char(n)` value is given as
/// PostgreSQL's cast to text gives it, without its padding (the text
/// protocol sends the padding).
pub async fn postgres_rows(client: &tokio_postgres::Client, sql: &str) -> Result<Rows, String> {
    let padded: Vec<bool> = client
        .prepare(sql)
        .await
        .map_err(|e| format!("PostgreSQL: {e}"))?
        .columns()
        .iter()
        .map(|c| *c.type_() == tokio_postgres::types::Type::BPCHAR)
        .collect();
    let messages = client
        .simple_query(sql)
        .await
        .map_err(|e| format!("PostgreSQL: {e}"))?;
    Ok(messages
        .iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(row) => Some(
                (0..row.len())
                    .map(|i| Cell {
                        text: row.get(i).map(|t| match padded.get(i) {
                            Some(true) => t.trim_end_matches(' ').to_string(),
                            _ => t.to_string(),
                        }),
                        data_type: None,
                    })
                    .collect(),
            ),
            _ => None,
        })
        .collect())
}

/// An exact decimal: `digits × 10^-scale`.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Decimal {
    digits: i128,
    scale: u32,
}

fn parse_decimal(s: &str) -> Option<Decimal> {
    let (negative, body) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    if !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()) {
        return None;
    }
    let digits: i128 = format!("{int}{frac}").parse().ok()?;
    Some(Decimal {
        digits: if negative { -digits } else { digits },
        scale: u32::try_from(frac.len()).ok()?,
    })
}

fn rescale(d: Decimal, scale: u32) -> Option<i128> {
    d.digits
        .checked_mul(10i128.checked_pow(scale.checked_sub(d.scale)?)?)
}

/// Whether two decimal texts are equal under the module's rules.
fn decimals_agree(a: Decimal, b: Decimal, approximate: bool) -> bool {
    let fine = a.scale.max(b.scale);
    let (Some(x), Some(y)) = (rescale(a, fine), rescale(b, fine)) else {
        return false;
    };
    if a.scale == b.scale || !approximate {
        return x == y;
    }
    let coarse = a.scale.min(b.scale);
    let unit = 10i128.pow(fine - coarse);
    (x - y).abs() < unit
}

fn floats_agree(a: f64, b: f64) -> bool {
    a == b || (a - b).abs() <= 1e-9 * a.abs().max(b.abs())
}

fn is_float(t: &Option<DataType>) -> bool {
    matches!(
        t,
        Some(DataType::Float16 | DataType::Float32 | DataType::Float64)
    )
}

/// Rows in a canonical order: sorted by their text, floats rounded so
/// that the last bits of a sum do not reorder them.
pub fn sorted(mut rows: Rows) -> Rows {
    let key = |row: &Vec<Cell>| -> Vec<String> {
        row.iter()
            .map(|c| match (&c.text, &c.data_type) {
                (None, _) => "\u{0}NULL".to_string(),
                (Some(t), Some(d)) if d.is_floating() => t
                    .parse::<f64>()
                    .map_or_else(|_| t.clone(), |f| format!("{f:.8e}")),
                (Some(t), _) => t.clone(),
            })
            .collect()
    };
    rows.sort_by_key(|r| key(r));
    rows
}

/// Whether `spar` and `reference` hold the same value under the module's
/// rules; `approximate` for a column computed by AVG or division.
pub fn same_value(spar: &Cell, reference: &Cell, approximate: bool) -> bool {
    let (Some(a), Some(b)) = (&spar.text, &reference.text) else {
        return spar.text.is_none() && reference.text.is_none();
    };
    if is_float(&spar.data_type) || is_float(&reference.data_type) {
        return match (a.parse::<f64>(), b.parse::<f64>()) {
            (Ok(x), Ok(y)) => floats_agree(x, y),
            _ => false,
        };
    }
    match (parse_decimal(a), parse_decimal(b)) {
        (Some(x), Some(y)) => decimals_agree(x, y, approximate),
        _ => a == b,
    }
}

/// The differences between two results, as readable lines (empty when
/// they agree): row counts, then each differing row, at most `limit`.
/// `approximate` lists the columns (from 0) computed by AVG or division.
pub fn differences(
    spar: &Rows,
    reference: &Rows,
    limit: usize,
    approximate: &[usize],
) -> Vec<String> {
    let show = |row: &Vec<Cell>| {
        row.iter()
            .map(|c| c.text.as_deref().unwrap_or("NULL"))
            .collect::<Vec<_>>()
            .join("|")
    };
    let mut out = Vec::new();
    if spar.len() != reference.len() {
        out.push(format!(
            "{} rows, reference has {}",
            spar.len(),
            reference.len()
        ));
    }
    for (i, (s, r)) in spar.iter().zip(reference).enumerate() {
        let same = s.len() == r.len()
            && s.iter()
                .zip(r)
                .enumerate()
                .all(|(c, (a, b))| same_value(a, b, approximate.contains(&c)));
        if !same && out.len() < limit {
            out.push(format!("row {i}: {} | reference: {}", show(s), show(r)));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(text: &str, t: Option<DataType>) -> Cell {
        Cell {
            text: Some(text.to_string()),
            data_type: t,
        }
    }

    #[test]
    fn decimals_of_one_scale_must_be_exact() {
        let d = Some(DataType::Decimal128(38, 4));
        assert!(same_value(
            &cell("12.3400", d.clone()),
            &cell("12.3400", None),
            false
        ));
        assert!(!same_value(
            &cell("12.3401", d.clone()),
            &cell("12.3400", None),
            false
        ));
        assert!(same_value(
            &cell("1995", Some(DataType::Int32)),
            &cell("1995", None),
            false
        ));
        assert!(!same_value(&cell("-5", None), &cell("5", None), false));
    }

    #[test]
    fn decimals_of_different_scales_agree_to_the_coarser_unit_only_where_approximate() {
        let d = Some(DataType::Decimal128(19, 6));
        assert!(same_value(
            &cell("25.507494", d.clone()),
            &cell("25.5074946612466747", None),
            true
        ));
        assert!(!same_value(
            &cell("25.507494", d.clone()),
            &cell("25.5074946612466747", None),
            false
        ));
        assert!(!same_value(
            &cell("25.507496", d.clone()),
            &cell("25.5074946612466747", None),
            true
        ));
        assert!(same_value(&cell("3.000000", d), &cell("3", None), false));
        // A whole number is not a value with a fraction.
        assert!(!same_value(&cell("12", None), &cell("12.99", None), false));
    }

    #[test]
    fn floats_are_relative_and_text_is_exact() {
        let f = Some(DataType::Float64);
        assert!(same_value(
            &cell("0.30000000000000004", f.clone()),
            &cell("0.3", None),
            false
        ));
        assert!(!same_value(&cell("0.3001", f), &cell("0.3", None), false));
        assert!(!same_value(
            &cell("BRAZIL", None),
            &cell("brazil", None),
            false
        ));
        let null = Cell {
            text: None,
            data_type: None,
        };
        assert!(same_value(&null, &null, false));
        assert!(!same_value(&null, &cell("0", None), false));
    }
}
