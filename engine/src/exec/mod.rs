//! Spar's execution operators.

pub mod deadline;
pub mod fragment_exec;

pub use deadline::DeadlineExec;
pub use fragment_exec::FragmentExec;
