//! stacctl's command line.

use clap::{Parser, Subcommand};

/// stacctl's options and subcommand.
#[derive(Debug, Parser)]
#[command(
    name = "stacctl",
    about = "Query and steer stacd, the NVMe-oF I/O controller daemon",
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

/// stacctl's subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Turn debug tracing on.
    Tron,
    /// Turn debug tracing off.
    Troff,
    /// Everything stacd knows: process information and every controller.
    Status,
    /// List the I/O controllers.
    Ls {
        /// Show every detail.
        #[arg(short = 'd', long)]
        detailed: bool,
    },
}
