//! stafctl: look at and steer a running stafd over D-Bus.
//!
//! Same subcommands and options as nvme-stas's stafctl. Output is a readable
//! table by default and JSON with `--json` (upstream prints Python pprint
//! text, which is neither).
//!
//! Exit status: 0 success; 1 stafd unreachable, access denied, or no
//! subcommand; 2 usage error.

use std::fmt::Write;
use std::process::ExitCode;

use clap::{CommandFactory, Parser};
use serde_json::Value;
use stas_daemon::dbus::contract::key;
use tools::cli::stafctl::{Cli, Command, DlpArgs};
use tools::ctl::{self, dict_table, json, Client, Dicts, Failure, Format, DLPE_KEYS, STAFD};

/// `dlp`: the cached log page of the discovery controller `a` names.
async fn dlp(c: &Client, a: DlpArgs, format: Format) -> Result<String, Failure> {
    let host_nqn = match a.host_nqn {
        Some(q) => q,
        None => {
            let (sys, _) = stas_config::load_sysconf(
                std::path::Path::new("/etc/stas/sys.conf"),
                std::path::Path::new("/etc/nvme"),
            )
            .map_err(|e| Failure::Other(e.to_string()))?;
            sys.hostnqn
        }
    };
    let args = (
        a.transport,
        a.traddr,
        a.trsvcid,
        a.nqn,
        a.host_traddr,
        a.host_iface,
        host_nqn,
    );
    let entries = c.get_log_pages(&args).await?;
    match format {
        Format::Json => json(&entries),
        Format::Table => Ok(dict_table(&entries, DLPE_KEYS)),
    }
}

/// `adlp [-d]`: every discovery controller with its cached log page.
async fn adlp(c: &Client, detailed: bool, format: Format) -> Result<String, Failure> {
    let text = c.get_all_log_pages(detailed).await?;
    let v: Value = serde_json::from_str(&text)
        .map_err(|e| Failure::Other(format!("stafd sent bad JSON: {e}")))?;
    if format == Format::Json {
        return json(&v);
    }
    let mut out = String::new();
    for dc in v.as_array().map(Vec::as_slice).unwrap_or_default() {
        let id = &dc[key::DISCOVERY_CONTROLLER];
        let s = |k: &str| id[k].as_str().unwrap_or_default().to_owned();
        let _ = writeln!(
            out,
            "{} {} {}:{} {}{}",
            s(key::DEVICE),
            s(key::TRANSPORT),
            s(key::TRADDR),
            s(key::TRSVCID),
            s(key::SUBSYSNQN),
            if s(key::HOST_IFACE).is_empty() {
                String::new()
            } else {
                format!(" via {}", s(key::HOST_IFACE))
            }
        );
        let entries: Dicts = serde_json::from_value(dc[key::LOG_PAGES].clone()).unwrap_or_default();
        for line in dict_table(&entries, DLPE_KEYS).lines() {
            let _ = writeln!(out, "  {line}");
        }
        let _ = writeln!(out);
    }
    Ok(out)
}

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
    ctl::run(STAFD, cli.bus_address, |c| async move {
        match command {
            Command::Tron => ctl::tron(&c, true, format).await,
            Command::Troff => ctl::tron(&c, false, format).await,
            Command::Status => ctl::status(&c, format).await,
            Command::Ls { detailed } => ctl::ls(&c, detailed, format).await,
            Command::Dlp(a) => dlp(&c, a, format).await,
            Command::Adlp { detailed } => adlp(&c, detailed, format).await,
        }
    })
}
