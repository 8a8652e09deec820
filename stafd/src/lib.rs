//! The parts of stafd other crates may use: its command line (for the
//! generated man page and shell completions). The daemon itself is the
//! binary (src/main.rs).

pub mod cli;
