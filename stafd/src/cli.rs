//! stafd's command line (docs/behaviour.md §12.1), in the library so that stas-gen-docs
//! renders the man page and shell completions from it.

use std::path::PathBuf;

use clap::Parser;

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
    /// Run against a simulated kernel with this many discovery controllers
    /// (benchmarks, demos; no root needed). Prints `@@steady` once all are
    /// connected and read.
    #[arg(long, hide = true)]
    pub sim: Option<usize>,
    /// With `--sim`: also browse mDNS on the real network (zero-touch
    /// tests in network namespaces).
    #[arg(long = "sim-zeroconf", hide = true, requires = "sim")]
    pub sim_zeroconf: bool,
    /// Use the D-Bus bus at this address instead of the system bus (tests);
    /// also taken from $STAS_BUS_ADDRESS.
    #[arg(long = "bus-address", hide = true)]
    pub bus_address: Option<String>,
}
