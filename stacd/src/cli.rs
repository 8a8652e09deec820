//! stacd's command line (docs/behaviour.md §12.1), in the library so that stas-gen-docs
//! renders the man page and shell completions from it.

use std::path::PathBuf;

use clap::Parser;
use stas_daemon::launch::CommonArgs;

/// stacd's options.
#[derive(Debug, Parser)]
#[command(
    name = "stacd",
    about = "STorage Appliance Connector: connects the NVMe-oF I/O controllers that configuration and discovery name",
    disable_version_flag = true
)]
pub struct Args {
    /// Configuration file.
    #[arg(
        short = 'f',
        long = "conf-file",
        default_value = "/etc/stas/stacd.conf"
    )]
    pub conf_file: PathBuf,
    /// Run against a simulated kernel where every subsystem is reachable,
    /// with this many configured (benchmarks, demos; no root needed).
    /// Prints `@@steady` once they are connected.
    #[arg(long, hide = true)]
    pub sim: Option<usize>,
    /// What stafd and stacd both take.
    #[command(flatten)]
    pub common: CommonArgs,
}
