//! `FragmentExec`: runs one fragment on its source's replica set and
//! streams the rows back.
//!
//! ```text
//!  execute() ──▶ ReplicaSet::open(sql) ──▶ first replica that answers
//!                    │  (failover on retryable errors before the first batch)
//!                    ▼
//!  FragmentStream: first batch, then the rest; counts rows, bytes and time
//! ```
//!
//! Its display shows the source, the SQL and, after execution (EXPLAIN
//! ANALYZE), the replica that served it; its metrics give rows, bytes,
//! attempts, failovers, hedges, reruns, resumes and time.

mod ambiguous;
mod exec;
mod fingerprint;
mod stream;
#[cfg(test)]
mod tests;

pub use ambiguous::DropAmbiguousRuntimeFilters;
pub use exec::FragmentExec;
