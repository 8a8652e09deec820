//! stasadm's command line.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use nvmf_proto::WELL_KNOWN_DISCOVERY_NQN;

/// stasadm's options and subcommand.
#[derive(Debug, Parser)]
#[command(
    name = "stasadm",
    about = "Administration of NVMe over Fabrics hosts (stas)",
    disable_version_flag = true
)]
pub struct Cli {
    /// The host configuration file to update.
    #[arg(short = 'c', long = "conf-file", default_value = "/etc/stas/sys.conf")]
    pub conf_file: PathBuf,
    /// Print the version and exit.
    #[arg(short = 'v', long)]
    pub version: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// stasadm's subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Generate the host NQN and save it (key `nqn`).
    Hostnqn {
        /// Also write it to this file and point sys.conf at it (file://).
        #[arg(short = 'f', long)]
        file: Option<PathBuf>,
    },
    /// Generate a random host ID and save it (key `id`).
    Hostid {
        /// Also write it to this file and point sys.conf at it (file://).
        #[arg(short = 'f', long)]
        file: Option<PathBuf>,
    },
    /// Save the host's symbolic name (key `symname`), sent in DIM registrations.
    SetSymname {
        /// The symbolic name.
        symname: String,
        /// Also write it to this file and point sys.conf at it (file://).
        #[arg(short = 'f', long)]
        file: Option<PathBuf>,
    },
    /// Remove the symbolic name.
    ClearSymname,
    /// Connect to a discovery controller and print its discovery log page.
    Discover(DiscoverArgs),
    /// List the discovery controllers announced over mDNS (TP8009), with
    /// the built-in querier (no daemon; needs UDP port 5353 and multicast)
    /// or through avahi-daemon.
    Browse(BrowseArgs),
}

/// Which discovery controller `discover` asks, and how to print.
#[derive(Debug, Args)]
pub struct DiscoverArgs {
    /// Transport: tcp, rdma, fc or loop.
    #[arg(short = 't', long)]
    pub transport: String,
    /// Discovery controller address.
    #[arg(short = 'a', long)]
    pub traddr: String,
    /// Discovery controller port (tcp default 8009, rdma 4420).
    #[arg(short = 's', long)]
    pub trsvcid: Option<String>,
    /// Discovery subsystem NQN.
    #[arg(short = 'n', long, default_value = WELL_KNOWN_DISCOVERY_NQN)]
    pub nqn: String,
    /// Local address to connect from.
    #[arg(short = 'w', long)]
    pub host_traddr: Option<String>,
    /// Local interface to connect through.
    #[arg(short = 'f', long)]
    pub host_iface: Option<String>,
    /// Host NQN (default: /etc/nvme/hostnqn).
    #[arg(short = 'q', long)]
    pub hostnqn: Option<String>,
    /// Host ID (default: /etc/nvme/hostid).
    #[arg(short = 'I', long)]
    pub hostid: Option<String>,
    /// Print a JSON array of nvme-stas DLPE dicts instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Spell table values as nvme-cli does.
    #[arg(long)]
    pub cli_names: bool,
    /// Keep the connection (with a 30 s keep-alive) instead of disconnecting.
    #[arg(long)]
    pub keep: bool,
    /// Also write the raw log page bytes to this file.
    #[arg(long)]
    pub raw: Option<PathBuf>,
}

/// How long `browse` listens, and how it prints.
#[derive(Debug, Args)]
pub struct BrowseArgs {
    /// How long to listen, in seconds.
    #[arg(short = 't', long, default_value_t = 5.0, value_parser = parse_seconds)]
    pub timeout: f64,
    /// Print a JSON array instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Who listens: the built-in querier, avahi-daemon over the system bus
    /// (it does not report TTLs: they print as 0), or auto (avahi-daemon
    /// if it is on the bus, else built-in).
    #[arg(long, value_enum, default_value_t = BrowseBackend::Builtin)]
    pub backend: BrowseBackend,
    /// The D-Bus bus to find avahi-daemon on instead of the system bus
    /// (also $STAS_BUS_ADDRESS).
    #[arg(long, hide = true)]
    pub bus_address: Option<String>,
}

/// The mDNS backends `browse` can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BrowseBackend {
    /// avahi-daemon if it is on the system bus, else built-in
    Auto,
    /// the built-in querier (no daemon)
    Builtin,
    /// avahi-daemon over the system bus
    Avahi,
}

impl From<BrowseBackend> for stas_mdns::backend::MdnsBackend {
    fn from(b: BrowseBackend) -> Self {
        match b {
            BrowseBackend::Auto => Self::Auto,
            BrowseBackend::Builtin => Self::Builtin,
            BrowseBackend::Avahi => Self::Avahi,
        }
    }
}

/// A `browse --timeout` that is not a number of seconds in (0, 86400].
#[derive(Debug, thiserror::Error)]
#[error("{given:?} is not a number of seconds between 0 and 86400")]
pub struct SecondsError {
    /// What was given.
    pub given: String,
}

fn parse_seconds(s: &str) -> Result<f64, SecondsError> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 && v <= 86_400.0 => Ok(v),
        _ => Err(SecondsError {
            given: s.to_owned(),
        }),
    }
}
