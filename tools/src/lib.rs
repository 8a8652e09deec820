//! Shared code of the stas command-line tools.
//!
//! Bare § numbers refer to docs/behaviour.md and docs/upstream.md;
//! other documents are named where they are cited.

pub mod browse;
pub mod cli;
pub mod ctl;
pub mod discover;
pub mod docs;
pub mod hostid;
pub mod output;
