//! stafd's command line (docs/behaviour.md §12.1), in the library so that stas-gen-docs
//! renders the man page and shell completions from it.

use std::path::PathBuf;

use clap::Parser;
use stas_daemon::launch::CommonArgs;

/// What `stafd --help` says it is.
const ABOUT: &str =
    "STorage Appliance Finder: discovers NVMe-oF discovery controllers and caches their log pages";

/// Where the configuration is read from unless `-f` says otherwise.
const CONF_FILE: &str = "/etc/stas/stafd.conf";

/// stafd's options.
#[derive(Debug, Parser)]
#[command(name = "stafd", about = ABOUT, disable_version_flag = true)]
pub struct Args {
    /// With `--sim`: also browse mDNS on the real network (zero-touch
    /// tests in network namespaces).
    #[arg(long = "sim-zeroconf", hide = true, requires = "sim")]
    pub sim_zeroconf: bool,
    /// Configuration file.
    #[arg(short = 'f', long = "conf-file", default_value = CONF_FILE)]
    pub conf_file: PathBuf,
    /// What stafd and stacd both take.
    #[command(flatten)]
    pub common: CommonArgs,
}
