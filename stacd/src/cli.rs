//! stacd's command line (docs/behaviour.md §12.1), in the library so that stas-gen-docs
//! renders the man page and shell completions from it.

use std::path::PathBuf;

use clap::Parser;

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
    /// Host configuration (sys.conf).
    #[arg(long = "sys-conf", default_value = "/etc/stas/sys.conf")]
    pub sys_conf: PathBuf,
    /// Log to the journal/syslog (priority prefixes on stderr).
    #[arg(short = 's', long)]
    pub syslog: bool,
    /// Start with debug tracing on.
    #[arg(long)]
    pub tron: bool,
    /// Check the configuration, print the effective configuration and exit
    /// (non-zero when anything is wrong), like `sshd -t`.
    #[arg(long)]
    pub check_config: bool,
    /// Print the version and exit.
    #[arg(short = 'v', long)]
    pub version: bool,
    /// Where hostnqn/hostid/hostkey live when sys.conf does not say (tests).
    #[arg(long, hide = true, default_value = "/etc/nvme")]
    pub nvme_dir: PathBuf,
    /// Run against a simulated kernel where every subsystem is reachable,
    /// with this many configured (benchmarks, demos; no root needed).
    /// Prints `@@steady` once they are connected.
    #[arg(long, hide = true)]
    pub sim: Option<usize>,
    /// Use the D-Bus bus at this address instead of the system bus (tests);
    /// also taken from $STAS_BUS_ADDRESS.
    #[arg(long = "bus-address", hide = true)]
    pub bus_address: Option<String>,
}
