//! stacctl: look at and steer a running stacd over D-Bus.
//!
//! Same subcommands and options as nvme-stas's stacctl. Output is a readable
//! table by default and JSON with `--json` (upstream prints Python pprint
//! text, which is neither).
//!
//! Exit status: 0 success; 1 stacd unreachable, access denied, or no
//! subcommand; 2 usage error.

use std::process::ExitCode;

use clap::{CommandFactory, Parser};
use tools::cli::stacctl::{Cli, Command};
use tools::ctl::{self, Format, STACD};

fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.version {
        println!("nvme-stas {} (stas, pure Rust)", env!("CARGO_PKG_VERSION"));
        return ExitCode::SUCCESS;
    }
    let Some(command) = cli.command else {
        let _ = Cli::command().print_help();
        return ExitCode::from(1);
    };
    let format = Format::from_json_flag(cli.json);
    ctl::run(STACD, cli.bus_address, |c| async move {
        match command {
            Command::Tron => ctl::tron(&c, true, format).await,
            Command::Troff => ctl::tron(&c, false, format).await,
            Command::Status => ctl::status(&c, format).await,
            Command::Ls { detailed } => ctl::ls(&c, detailed, format).await,
        }
    })
}
