//! The parts of stafd other crates may use: its command line (for the
//! generated man page and shell completions). The daemon itself is the
//! binary (src/main.rs).
//!
//! Bare § numbers refer to docs/behaviour.md and docs/upstream.md;
//! other documents are named where they are cited.

pub mod cli;
