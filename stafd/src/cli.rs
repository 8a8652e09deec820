//! stafd's command line (docs/behaviour.md §12.1), in the library so that stas-gen-docs
//! renders the man page and shell completions from it.

use std::path::PathBuf;

use clap::Parser;
use stas_daemon::launch::CommonArgs;

/// stafd's options.
#[derive(Debug, Parser)]
#[command(
    name = "stafd",
    about = "STorage Appliance Finder: discovers NVMe-oF discovery controllers and caches their log pages",
    disable_version_flag = true
)]
pub struct Args {
    /// Configuration file.
    #[arg(
        short = 'f',
        long = "conf-file",
        default_value = "/etc/stas/stafd.conf"
    )]
    pub conf_file: PathBuf,
    /// Run against a simulated kernel with this many discovery controllers
    /// (benchmarks, demos; no root needed). Prints `@@steady` once all are
    /// connected and read.
    #[arg(long, hide = true)]
    pub sim: Option<usize>,
    /// With `--sim`: also browse mDNS on the real network (zero-touch
    /// tests in network namespaces).
    #[arg(long = "sim-zeroconf", hide = true, requires = "sim")]
    pub sim_zeroconf: bool,
    /// What stafd and stacd both take.
    #[command(flatten)]
    pub common: CommonArgs,
}
