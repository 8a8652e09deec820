//! Shared output helpers of the stas command-line tools.

pub mod output;
