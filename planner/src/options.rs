//! Spar's session settings, under the `spar.` prefix (`SET spar.pushdown =
//! false`), as a DataFusion config extension.

use std::time::Duration;

use datafusion::common::config::{ConfigExtension, ConfigField, Visit};
use datafusion::common::extensions_options;
use datafusion::error::{DataFusionError, Result};

extensions_options! {
    /// Settings that change how Spar plans and runs a query.
    pub struct SparOptions {
        /// Push work into the sources. `false` reads every table whole
        /// (only the columns needed) and does everything else locally: the
        /// reference that pushdown must never change an answer against.
        pub pushdown: bool, default = true
        /// Stop a query that has not finished this long after it started
        /// running (`30s`, `2m`, `500ms`; a bare number is milliseconds, as
        /// in PostgreSQL; `0` or `off` for no limit).
        pub statement_timeout: Timeout, default = Timeout(None)
        /// Send the keys a hash join's build side produced to the source of
        /// the fragment on its probe side, in that fragment's SQL: an IN
        /// list where DataFusion made one (at most
        /// `datafusion.optimizer.hash_join_inlist_pushdown_max_distinct_values`
        /// keys per partition), else their range. `false` runs every
        /// fragment's SQL as planned.
        pub runtime_filters: bool, default = true
        /// Join the tables of a tree of inner joins in the order the cost
        /// model finds cheapest (tables of one source together, so that
        /// they join in the source; small sides first, so that their keys
        /// filter the large ones), rather than in the order the query
        /// names them. `false` joins them as written.
        pub join_reorder: bool, default = true
        /// Run part of a fragment's sub-plan locally, over smaller
        /// fragments, where the cost model (with the source's measured
        /// speed and the fragment's measured times) finds that at most
        /// half as dear as running it whole in the source. `false` pushes
        /// everything a source can run.
        pub push_or_pull: bool, default = true
    }
}

impl ConfigExtension for SparOptions {
    const PREFIX: &'static str = "spar";
}

/// A duration setting where zero means "no limit".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Timeout(pub Option<Duration>);

/// The longest timeout accepted: longer is surely a mistake, and would
/// overflow the clock arithmetic of timers.
const MAX_TIMEOUT: Duration = Duration::from_secs(365 * 24 * 3600);

impl std::str::FromStr for Timeout {
    type Err = String;

    fn from_str(text: &str) -> std::result::Result<Self, String> {
        let text = text.trim();
        let duration = if text.eq_ignore_ascii_case("off") || text.eq_ignore_ascii_case("none") {
            Duration::ZERO
        } else if let Ok(millis) = text.parse::<u64>() {
            Duration::from_millis(millis)
        } else {
            humantime::parse_duration(text).map_err(|e| {
                format!("expected a duration such as 30s, 2m or 500ms (0 or off for none), found `{text}`: {e}")
            })?
        };
        if duration > MAX_TIMEOUT {
            return Err(format!(
                "`{text}` is longer than a year; use 0 for no limit"
            ));
        }
        Ok(Self((!duration.is_zero()).then_some(duration)))
    }
}

impl std::fmt::Display for Timeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            None => f.write_str("0"),
            Some(d) => write!(f, "{}", humantime::format_duration(d)),
        }
    }
}

impl ConfigField for Timeout {
    fn visit<V: Visit>(&self, v: &mut V, key: &str, description: &'static str) {
        v.some(key, self, description);
    }

    fn set(&mut self, key: &str, value: &str) -> Result<()> {
        *self = value
            .parse()
            .map_err(|e| DataFusionError::Configuration(format!("{key}: {e}")))?;
        Ok(())
    }

    fn reset(&mut self, _key: &str) -> Result<()> {
        *self = Self::default();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::common::config::ExtensionOptions;

    #[test]
    fn timeouts_read_as_postgresql_reads_them() {
        let t = |s: &str| s.parse::<Timeout>().map(|t| t.0);
        assert_eq!(t("30s"), Ok(Some(Duration::from_secs(30))));
        assert_eq!(t("1500"), Ok(Some(Duration::from_millis(1500))));
        assert_eq!(t(" 2m "), Ok(Some(Duration::from_secs(120))));
        assert_eq!(t("0"), Ok(None));
        assert_eq!(t("OFF"), Ok(None));
        assert!(t("soon").is_err());
        assert!(t("-1s").is_err());
        assert!(t("400days").is_err());
        assert!(t("18446744073709551615").is_err());
        let mut options = SparOptions::default();
        assert!(ExtensionOptions::set(&mut options, "statement_timeout", "5s").is_ok());
        assert_eq!(options.statement_timeout.0, Some(Duration::from_secs(5)));
        assert!(ExtensionOptions::set(&mut options, "statement_timeout", "later").is_err());
    }
}
