//! Spar's execution operators.

pub mod fragment_exec;

pub use fragment_exec::FragmentExec;
