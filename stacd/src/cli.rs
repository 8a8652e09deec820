//! stacd's command line (docs/behaviour.md §12.1), in the library so that stas-gen-docs
//! renders the man page and shell completions from it.

use std::path::PathBuf;

use clap::Parser;
use stas_daemon::launch::CommonArgs;

/// What `stacd --help` says it is.
const ABOUT: &str = "STorage Appliance Connector: connects the NVMe-oF I/O controllers that configuration and discovery name";

/// Where the configuration is read from unless `-f` says otherwise.
const CONF_FILE: &str = "/etc/stas/stacd.conf";

/// stacd's options.
#[derive(Debug, Parser)]
#[command(name = "stacd", about = ABOUT, disable_version_flag = true)]
pub struct Args {
    /// Configuration file.
    #[arg(short = 'f', long = "conf-file", default_value = CONF_FILE)]
    pub conf_file: PathBuf,
    /// What stafd and stacd both take.
    #[command(flatten)]
    pub common: CommonArgs,
}
