//! Shared code of the stas command-line tools.

pub mod browse;
pub mod discover;
pub mod hostid;
pub mod output;
