//! The parts of stacd other crates may use: its command line (for the
//! generated man page and shell completions) and its reading of stafd's
//! `get_all_log_pages` answer (for stafd's producer/consumer test). The
//! daemon itself is the binary (src/main.rs).

pub mod cli;
pub mod staf;
