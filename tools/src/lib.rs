//! Shared code of the stas command-line tools.

pub mod browse;
pub mod cli;
pub mod ctl;
pub mod discover;
pub mod docs;
pub mod hostid;
pub mod output;
