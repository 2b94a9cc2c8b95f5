//! Random typed tables and random queries over them, for the randomized
//! differential tester (`tests/tests/differential.rs`).
//!
//! Everything comes from one seed ([`Rng`], SplitMix64), so a run is
//! reproducible from the seed the tester prints. The tables hold the same
//! rows in every source (PostgreSQL, MariaDB, SQLite), declared in each
//! one's own types: integers, a big integer, `DECIMAL(10,2)`, `DOUBLE`,
//! `VARCHAR`, `CHAR(4)`, `DATE`, `BOOLEAN`, with NULLs, case and accent
//! variants, spaces at either end, LIKE's special characters, extreme
//! numbers and far dates. Queries mix filters, joins, aggregates, window
//! functions, subqueries, `CASE`, casts and string and date functions.

use std::fmt::Write as _;

/// SplitMix64: small, fast and the same everywhere.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }

    /// True with probability `p` percent.
    pub fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    /// One of `items`.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// The sources the tester loads, as the engine names them.
pub const SOURCES: [&str; 3] = ["pg", "my", "lite"];

/// The schema of each source holding the tables.
pub fn schema_of(source: &str) -> &'static str {
    match source {
        "pg" => "public",
        "my" => "diff",
        _ => "main",
    }
}

/// A column's kind; its SQL type differs per source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Int,
    Big,
    Dec,
    Float,
    Text,
    Char,
    Date,
    Bool,
}

/// The columns of every table (`id` is the key, never NULL).
const COLUMNS: [(&str, Kind); 9] = [
    ("id", Kind::Int),
    ("k", Kind::Int),
    ("n", Kind::Big),
    ("d", Kind::Dec),
    ("f", Kind::Float),
    ("s", Kind::Text),
    ("c", Kind::Char),
    ("dt", Kind::Date),
    ("b", Kind::Bool),
];

const INTS: [&str; 8] = ["0", "1", "2", "3", "-1", "7", "100", "-2147483648"];
const BIGS: [&str; 8] = [
    "0",
    "1",
    "-1",
    "42",
    "1000000000000",
    "-9000000000000",
    "9223372036854775807",
    "123456789",
];
const DECS: [&str; 8] = [
    "0.00",
    "1.50",
    "-1.50",
    "99999999.99",
    "-0.01",
    "2.25",
    "10.00",
    "3.33",
];
const FLOATS: [&str; 8] = [
    "0", "-1.5", "2.25", "1e300", "-1e-300", "3.14159", "0.1", "1e15",
];
const TEXTS: [&str; 14] = [
    "a", "A", "á", "Á", "a ", " a", "", "ab", "b", "it''s", "50%_off", "Zed", "ß", "a  b",
];
const CHARS: [&str; 7] = ["a", "ab", "A", "a  b", "", "zz", "é"];
const DATES: [&str; 7] = [
    "2024-02-29",
    "1970-01-01",
    "1999-12-31",
    "1000-01-01",
    "9999-12-31",
    "2000-03-01",
    "2024-01-01",
];

/// The rows of one table: each cell the SQL literal text of a value (in
/// standard SQL, quotes doubled), `None` for NULL.
#[derive(Debug, Clone)]
pub struct Table {
    /// The table's name.
    pub name: String,
    rows: Vec<Vec<Option<String>>>,
}

/// `count` rows of random values.
pub fn random_table(rng: &mut Rng, name: &str, count: usize) -> Table {
    let rows = (0..count)
        .map(|id| {
            COLUMNS
                .iter()
                .map(|(col, kind)| {
                    if *col == "id" {
                        return Some((id + 1).to_string());
                    }
                    if rng.chance(15) {
                        return None;
                    }
                    Some(match kind {
                        Kind::Int if *col == "k" => rng.below(4).to_string(),
                        Kind::Int => rng.pick(&INTS).to_string(),
                        Kind::Big => rng.pick(&BIGS).to_string(),
                        Kind::Dec => rng.pick(&DECS).to_string(),
                        Kind::Float => rng.pick(&FLOATS).to_string(),
                        Kind::Text => format!("'{}'", rng.pick(&TEXTS)),
                        Kind::Char => format!("'{}'", rng.pick(&CHARS)),
                        Kind::Date => format!("DATE '{}'", rng.pick(&DATES)),
                        Kind::Bool => rng.pick(&["TRUE", "FALSE"]).to_string(),
                    })
                })
                .collect()
        })
        .collect();
    Table {
        name: name.to_string(),
        rows,
    }
}

fn sql_type(source: &str, kind: Kind) -> &'static str {
    match (source, kind) {
        (_, Kind::Int) => "INTEGER",
        ("lite", Kind::Big) => "INTEGER",
        (_, Kind::Big) => "BIGINT",
        (_, Kind::Dec) => "DECIMAL(10,2)",
        ("pg", Kind::Float) => "DOUBLE PRECISION",
        (_, Kind::Float) => "DOUBLE",
        (_, Kind::Text) => "VARCHAR(20)",
        (_, Kind::Char) => "CHAR(4)",
        (_, Kind::Date) => "DATE",
        (_, Kind::Bool) => "BOOLEAN",
    }
}

impl Table {
    /// `CREATE TABLE` and `INSERT` statements for `source`, one per line.
    pub fn setup_sql(&self, source: &str) -> Vec<String> {
        let columns: Vec<String> = COLUMNS
            .iter()
            .map(|(name, kind)| {
                let key = if *name == "id" { " PRIMARY KEY" } else { "" };
                format!("{name} {}{key}", sql_type(source, *kind))
            })
            .collect();
        let mut out = vec![format!(
            "CREATE TABLE {} ({})",
            self.name,
            columns.join(", ")
        )];
        let rows: Vec<String> = self
            .rows
            .iter()
            .map(|row| {
                let values: Vec<String> = row
                    .iter()
                    .zip(COLUMNS)
                    .map(|(v, (_, kind))| match v {
                        None => "NULL".to_string(),
                        // SQLite keeps a date as its text; MariaDB and
                        // SQLite have booleans as 1 and 0.
                        Some(v) if source == "lite" && kind == Kind::Date => {
                            v.trim_start_matches("DATE ").to_string()
                        }
                        Some(v) if source != "pg" && kind == Kind::Bool => {
                            if v == "TRUE" { "1" } else { "0" }.to_string()
                        }
                        Some(v) => v.clone(),
                    })
                    .collect();
                format!("({})", values.join(", "))
            })
            .collect();
        out.push(format!(
            "INSERT INTO {} VALUES {}",
            self.name,
            rows.join(", ")
        ));
        out
    }
}

/// Generates random queries over tables `t1` and `t2` of one source.
pub struct QueryGen<'a> {
    rng: &'a mut Rng,
    /// `source.schema`, the prefix of the tables' names.
    prefix: String,
}

impl<'a> QueryGen<'a> {
    /// A generator for the tables of `source`.
    pub fn new(rng: &'a mut Rng, source: &str) -> Self {
        Self {
            rng,
            prefix: format!("{source}.{}", schema_of(source)),
        }
    }

    fn column(&mut self, alias: &str, kinds: &[Kind]) -> String {
        let candidates: Vec<&str> = COLUMNS
            .iter()
            .filter(|(_, k)| kinds.contains(k))
            .map(|(n, _)| *n)
            .collect();
        format!("{alias}.{}", self.rng.pick(&candidates))
    }

    fn literal(&mut self, kind: Kind) -> String {
        match kind {
            Kind::Int => self.rng.pick(&INTS).to_string(),
            Kind::Big => self.rng.pick(&BIGS).to_string(),
            Kind::Dec => self.rng.pick(&DECS).to_string(),
            Kind::Float => format!("CAST({} AS DOUBLE)", self.rng.pick(&FLOATS)),
            Kind::Text => {
                let extra = ["a   ", "Ab", "%", "A "];
                let all: Vec<&str> = TEXTS.iter().chain(extra.iter()).copied().collect();
                format!("'{}'", self.rng.pick(&all))
            }
            Kind::Char => {
                let extra = ["a   ", "ab  ", " a"];
                let all: Vec<&str> = CHARS.iter().chain(extra.iter()).copied().collect();
                format!("'{}'", self.rng.pick(&all))
            }
            Kind::Date => format!("DATE '{}'", self.rng.pick(&DATES)),
            Kind::Bool => self.rng.pick(&["TRUE", "FALSE"]).to_string(),
        }
    }

    /// A value of `kind` over the columns of `alias`.
    fn value(&mut self, alias: &str, kind: Kind, depth: usize) -> String {
        let leaf = depth == 0 || self.rng.chance(45);
        if leaf {
            return if self.rng.chance(75) {
                self.column(alias, &[kind])
            } else {
                self.literal(kind)
            };
        }
        let d = depth - 1;
        match kind {
            Kind::Int | Kind::Big | Kind::Dec | Kind::Float => match self.rng.below(6) {
                0 | 1 => {
                    let op = self.rng.pick(&["+", "-", "*"]).to_string();
                    let a = self.value(alias, kind, d);
                    let b = self.value(alias, kind, d);
                    format!("({a} {op} {b})")
                }
                2 => {
                    let p = self.predicate(alias, d);
                    let a = self.value(alias, kind, d);
                    let b = self.value(alias, kind, d);
                    format!("CASE WHEN {p} THEN {a} ELSE {b} END")
                }
                3 if kind == Kind::Int => {
                    let s = self.value(alias, Kind::Text, d);
                    format!("CAST(length({s}) AS INTEGER)")
                }
                3 if kind == Kind::Big => {
                    let x = self.value(alias, Kind::Dec, d);
                    format!("CAST({x} AS BIGINT)")
                }
                4 => {
                    let a = self.value(alias, kind, d);
                    format!("(- {a})")
                }
                _ => {
                    let a = self.value(alias, kind, d);
                    let b = self.value(alias, kind, d);
                    format!("coalesce({a}, {b})")
                }
            },
            Kind::Text | Kind::Char => match self.rng.below(6) {
                0 => format!("upper({})", self.value(alias, kind, d)),
                1 => format!("lower({})", self.value(alias, kind, d)),
                2 => format!("substr({}, 1, 2)", self.value(alias, kind, d)),
                3 => {
                    let a = self.value(alias, Kind::Text, d);
                    let b = self.value(alias, Kind::Char, d);
                    format!("({a} || {b})")
                }
                4 => {
                    let p = self.predicate(alias, d);
                    let a = self.value(alias, kind, d);
                    let b = self.value(alias, kind, d);
                    format!("CASE WHEN {p} THEN {a} ELSE {b} END")
                }
                _ => format!("trim({})", self.value(alias, kind, d)),
            },
            Kind::Date => match self.rng.below(2) {
                0 => {
                    let a = self.value(alias, kind, d);
                    format!("({a} + INTERVAL '1' DAY)")
                }
                _ => self.column(alias, &[Kind::Date]),
            },
            Kind::Bool => self.predicate(alias, d),
        }
    }

    fn any_kind(&mut self) -> Kind {
        *self.rng.pick(&[
            Kind::Int,
            Kind::Big,
            Kind::Dec,
            Kind::Float,
            Kind::Text,
            Kind::Char,
            Kind::Date,
            Kind::Bool,
        ])
    }

    /// A boolean condition over the columns of `alias`.
    pub fn predicate(&mut self, alias: &str, depth: usize) -> String {
        let d = depth.saturating_sub(1);
        match self.rng.below(if depth == 0 { 5 } else { 9 }) {
            0 | 1 => {
                let kind = self.any_kind();
                let op = self
                    .rng
                    .pick(&["=", "<>", "<", "<=", ">", ">="])
                    .to_string();
                let a = self.value(alias, kind, d);
                let b = self.value(alias, kind, d);
                format!("({a} {op} {b})")
            }
            2 => {
                let kind = self.any_kind();
                let a = self.value(alias, kind, d);
                let not = if self.rng.chance(50) { " NOT" } else { "" };
                format!("({a} IS{not} NULL)")
            }
            3 => {
                let kind = self.any_kind();
                let a = self.value(alias, kind, d);
                let items: Vec<String> = (0..1 + self.rng.below(3))
                    .map(|_| self.literal(kind))
                    .collect();
                let not = if self.rng.chance(30) { " NOT" } else { "" };
                format!("({a}{not} IN ({}))", items.join(", "))
            }
            4 => {
                let kind = *self.rng.pick(&[Kind::Text, Kind::Char]);
                let a = self.value(alias, kind, d);
                let pattern = self.rng.pick(&[
                    "a%", "%a", "%b%", "_", "a_", "%", "A%", "%\\%%", "%\\_%", "a  b", "% ",
                ]);
                let like = if self.rng.chance(20) { "ILIKE" } else { "LIKE" };
                format!("({a} {like} '{pattern}')")
            }
            5 => {
                let kind = self.any_kind();
                let a = self.value(alias, kind, d);
                let lo = self.literal(kind);
                let hi = self.literal(kind);
                format!("({a} BETWEEN {lo} AND {hi})")
            }
            6 => format!("(NOT {})", self.predicate(alias, d)),
            7 => format!(
                "({} AND {})",
                self.predicate(alias, d),
                self.predicate(alias, d)
            ),
            _ => format!(
                "({} OR {})",
                self.predicate(alias, d),
                self.predicate(alias, d)
            ),
        }
    }

    /// One random query.
    pub fn query(&mut self) -> String {
        let t1 = format!("{}.t1", self.prefix);
        let t2 = format!("{}.t2", self.prefix);
        let mut sql = String::new();
        match self.rng.below(11) {
            // Projection and filter.
            0 | 1 => {
                let n = 1 + self.rng.below(3);
                let items: Vec<String> = (0..n)
                    .map(|i| {
                        let kind = self.any_kind();
                        format!("{} AS v{i}", self.value("a", kind, 2))
                    })
                    .collect();
                let p = self.predicate("a", 2);
                let _ = write!(
                    sql,
                    "SELECT a.id, {} FROM {t1} a WHERE {p}",
                    items.join(", ")
                );
            }
            // Aggregates by a key.
            2 => {
                let group = self.column(
                    "a",
                    &[Kind::Int, Kind::Text, Kind::Char, Kind::Date, Kind::Bool],
                );
                let kind = *self
                    .rng
                    .pick(&[Kind::Int, Kind::Big, Kind::Dec, Kind::Float]);
                let x = self.value("a", kind, 1);
                let agg = self
                    .rng
                    .pick(&["count", "sum", "min", "max", "avg"])
                    .to_string();
                let distinct = if self.rng.chance(20) { "DISTINCT " } else { "" };
                let p = self.predicate("a", 1);
                let other = self.column("a", &[Kind::Text, Kind::Char, Kind::Date]);
                let _ = write!(
                    sql,
                    "SELECT {group}, {agg}({distinct}{x}), count(*), min({other}), max({other}) \
                     FROM {t1} a WHERE {p} GROUP BY {group}"
                );
            }
            // Joins.
            3 => {
                let join = self.rng.pick(&["JOIN", "LEFT JOIN"]).to_string();
                let on = if self.rng.chance(70) {
                    "a.k = b.k".to_string()
                } else {
                    let col = self.rng.pick(&["s", "c", "dt", "d"]).to_string();
                    format!("a.{col} = b.{col}")
                };
                let p = self.predicate("a", 1);
                let v = {
                    let kind = self.any_kind();
                    self.value("b", kind, 1)
                };
                let _ = write!(
                    sql,
                    "SELECT a.id, b.id, {v} FROM {t1} a {join} {t2} b ON {on} WHERE {p}"
                );
            }
            // Window functions, ordered by the key so the answer is one.
            4 => {
                let x = self.column("a", &[Kind::Int, Kind::Big, Kind::Dec]);
                let any = self.column("a", &[Kind::Text, Kind::Char, Kind::Date, Kind::Int]);
                let w = self
                    .rng
                    .pick(&[
                        "row_number() OVER (PARTITION BY a.k ORDER BY a.id)".to_string(),
                        format!("sum({x}) OVER (PARTITION BY a.k ORDER BY a.id ROWS BETWEEN 1 PRECEDING AND CURRENT ROW)"),
                        format!("lag({any}) OVER (ORDER BY a.id)"),
                        format!("rank() OVER (ORDER BY {any} NULLS FIRST)"),
                        format!("count({x}) OVER (PARTITION BY a.k)"),
                        format!("max({any}) OVER (PARTITION BY a.b ORDER BY a.id)"),
                    ])
                    .clone();
                let _ = write!(sql, "SELECT a.id, {w} FROM {t1} a");
            }
            // Subqueries.
            5 => {
                let pb = self.predicate("b", 1);
                let q = match self.rng.below(4) {
                    0 => format!("a.k IN (SELECT b.k FROM {t2} b WHERE {pb})"),
                    1 => format!("EXISTS (SELECT 1 FROM {t2} b WHERE b.k = a.k AND {pb})"),
                    2 => format!("NOT EXISTS (SELECT 1 FROM {t2} b WHERE b.s = a.s AND {pb})"),
                    _ => format!("a.d > (SELECT avg(b.d) FROM {t2} b WHERE {pb})"),
                };
                let _ = write!(sql, "SELECT a.id, a.s FROM {t1} a WHERE {q}");
            }
            // DISTINCT.
            6 => {
                let kind = self.any_kind();
                let v = self.value("a", kind, 1);
                let _ = write!(sql, "SELECT DISTINCT {v} FROM {t1} a");
            }
            // Aggregates with HAVING.
            8 => {
                let kind = *self.rng.pick(&[Kind::Int, Kind::Dec]);
                let x = self.value("a", kind, 1);
                let lo = self.literal(kind);
                let _ = write!(
                    sql,
                    "SELECT a.k, sum({x}), count(*) FROM {t1} a GROUP BY a.k \
                     HAVING sum({x}) > {lo} OR count(*) > 3"
                );
            }
            // Set operations.
            9 => {
                let kind = self.any_kind();
                let x = self.value("a", kind, 1);
                let y = self.value("b", kind, 1);
                let op = self
                    .rng
                    .pick(&["UNION ALL", "UNION", "EXCEPT", "INTERSECT"])
                    .to_string();
                let p = self.predicate("a", 1);
                let _ = write!(
                    sql,
                    "SELECT {x} FROM {t1} a WHERE {p} {op} SELECT {y} FROM {t2} b"
                );
            }
            // Scalar and NOT IN subqueries.
            10 => {
                let pb = self.predicate("b", 1);
                let q = match self.rng.below(2) {
                    0 => format!(
                        "SELECT a.id, (SELECT max(b.n) FROM {t2} b WHERE {pb}) FROM {t1} a"
                    ),
                    _ => format!(
                        "SELECT a.id FROM {t1} a WHERE a.k NOT IN (SELECT b.k FROM {t2} b WHERE {pb})"
                    ),
                };
                sql.push_str(&q);
            }
            // Order and limit, by the key.
            _ => {
                let p = self.predicate("a", 2);
                let n = 1 + self.rng.below(10);
                let _ = write!(
                    sql,
                    "SELECT a.id, a.s, a.c FROM {t1} a WHERE {p} ORDER BY a.id DESC LIMIT {n}"
                );
            }
        }
        sql
    }
}
