//! Spar's session settings, under the `spar.` prefix (`SET spar.pushdown =
//! false`), as a DataFusion config extension.

use datafusion::common::config::ConfigExtension;
use datafusion::common::extensions_options;

extensions_options! {
    /// Settings that change how Spar plans a query.
    pub struct SparOptions {
        /// Push work into the sources. `false` reads every table whole
        /// (only the columns needed) and does everything else locally: the
        /// reference that pushdown must never change an answer against.
        pub pushdown: bool, default = true
    }
}

impl ConfigExtension for SparOptions {
    const PREFIX: &'static str = "spar";
}
