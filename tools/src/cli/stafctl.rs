//! stafctl's command line.

use clap::{Args, Parser, Subcommand};
use nvmf_proto::WELL_KNOWN_DISCOVERY_NQN;

/// stafctl's options and subcommand.
#[derive(Debug, Parser)]
#[command(
    name = "stafctl",
    about = "Query and steer stafd, the NVMe-oF discovery controller daemon",
    disable_version_flag = true
)]
pub struct Cli {
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    /// The D-Bus bus to use instead of the system bus (also $STAS_BUS_ADDRESS).
    #[arg(long, global = true, hide = true)]
    pub bus_address: Option<String>,
    /// Print the version and exit.
    #[arg(short = 'v', long)]
    pub version: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// stafctl's subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Turn debug tracing on.
    Tron,
    /// Turn debug tracing off.
    Troff,
    /// Everything stafd knows: process information and every controller.
    Status,
    /// List the discovery controllers.
    Ls {
        /// Show every detail.
        #[arg(short = 'd', long)]
        detailed: bool,
    },
    /// The cached discovery log page of one discovery controller.
    Dlp(DlpArgs),
    /// The cached discovery log pages of all discovery controllers.
    Adlp {
        /// Show every detail of each controller.
        #[arg(short = 'd', long)]
        detailed: bool,
    },
}

/// Which discovery controller `dlp` asks about (its TID).
#[derive(Debug, Args)]
pub struct DlpArgs {
    /// Transport.
    #[arg(short = 't', long, default_value = "tcp", value_parser = ["tcp", "rdma", "fc", "loop"])]
    pub transport: String,
    /// Discovery controller address.
    #[arg(short = 'a', long)]
    pub traddr: String,
    /// Discovery controller port.
    #[arg(short = 's', long)]
    pub trsvcid: String,
    /// Local address.
    #[arg(short = 'w', long, default_value = "")]
    pub host_traddr: String,
    /// Local interface.
    #[arg(short = 'f', long, default_value = "")]
    pub host_iface: String,
    /// Host NQN (default: the one in /etc/stas/sys.conf).
    #[arg(short = 'q', long)]
    pub host_nqn: Option<String>,
    /// Discovery subsystem NQN.
    #[arg(short = 'n', long, default_value = WELL_KNOWN_DISCOVERY_NQN)]
    pub nqn: String,
}
