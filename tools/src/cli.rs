//! The clap definitions of the command-line tools, here rather than in
//! their binaries so that `stas-gen-docs` renders man pages and shell
//! completions from the very definitions the tools parse with.

pub mod stacctl;
pub mod stafctl;
pub mod stasadm;
