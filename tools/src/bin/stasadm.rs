//! stasadm: administration of the host side of NVMe over Fabrics.
//!
//! `hostnqn`, `hostid`, `set-symname`, `clear-symname` write the host
//! identity into sys.conf as nvme-stas's stasadm does; `discover` asks a
//! discovery controller for its log page, like `nvme discover`, on hosts
//! without nvme-cli; `browse` listens for discovery controllers announced
//! over mDNS (TP8009), the `avahi-browse -r` for when zero-touch does not
//! work.
//!
//! Exit status: 0 success; 1 failure (the message says what to do);
//! 2 usage error; 3 the log page was printed but some entries were bad.

use std::process::ExitCode;

use clap::Parser;
use nvmf_kernel::host::HostIdentity;
use nvmf_kernel::KernelPaths;
use tools::cli::stasadm::{BrowseArgs, Cli, Command, DiscoverArgs};
use tools::discover::{self, Target};
use tools::hostid::IdentityError;
use tools::output::{dlp_json, dlp_table, report_page_problems, Spelling, EXIT_PARTIAL};

fn browse(a: &BrowseArgs) -> ExitCode {
    let timeout = std::time::Duration::from_secs_f64(a.timeout);
    let bus_address = a
        .bus_address
        .clone()
        .or_else(|| std::env::var(stas_daemon::dbus::ADDRESS_ENV).ok());
    let heard = match tools::browse::browse(timeout, a.backend.into(), bus_address.as_deref()) {
        Ok(h) => h,
        Err(e) => {
            eprintln!("stasadm browse: {e}");
            return ExitCode::from(1);
        }
    };
    let interfaces: Vec<&str> = heard.stats.iter().map(|s| s.interface.as_str()).collect();
    if a.json {
        match tools::browse::browse_json(&heard.records) {
            Ok(s) => println!("{s}"),
            Err(e) => {
                eprintln!("stasadm browse: cannot encode JSON: {e}");
                return ExitCode::from(1);
            }
        }
    } else if !heard.records.is_empty() {
        print!("{}", tools::browse::browse_table(&heard.records));
    }
    if heard.records.is_empty() {
        let on = if heard.backend == stas_mdns::backend::MdnsBackend::Avahi {
            "any interface avahi-daemon uses".to_owned()
        } else if interfaces.is_empty() {
            "no usable interface (none is up with multicast and an address)".to_owned()
        } else {
            interfaces.join(", ")
        };
        let line = format!(
            "No discovery controller was heard on {on} in {} s.",
            a.timeout
        );
        // Keep stdout valid JSON for scripts.
        if a.json {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
    }
    ExitCode::SUCCESS
}

fn discover(a: &DiscoverArgs) -> ExitCode {
    let target = Target {
        transport: a.transport.clone(),
        traddr: a.traddr.clone(),
        trsvcid: a.trsvcid.clone(),
        nqn: a.nqn.clone(),
        host_traddr: a.host_traddr.clone(),
        host_iface: a.host_iface.clone(),
        hostnqn: a.hostnqn.clone(),
        hostid: a.hostid.clone(),
    };
    let paths = KernelPaths::default();
    let out = match discover::run(&paths, &target, a.keep) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("stasadm discover: {e}");
            if let nvmf_kernel::KernelError::Io { source, .. } = &e {
                if source.kind() == std::io::ErrorKind::PermissionDenied {
                    eprintln!("stasadm discover: connecting needs root (CAP_SYS_ADMIN)");
                }
            }
            return ExitCode::from(1);
        }
    };
    for (name, reason) in &out.dropped {
        eprintln!("stasadm discover: option {name} not sent: {reason}");
    }
    if let Some(path) = &a.raw {
        if let Err(e) = std::fs::write(path, &out.log.raw) {
            eprintln!("stasadm discover: cannot write {}: {e}", path.display());
            return ExitCode::from(1);
        }
    }
    let page = &out.log.page;
    if a.json {
        match dlp_json(page) {
            Ok(s) => println!("{s}"),
            Err(e) => {
                eprintln!("stasadm discover: cannot encode JSON: {e}");
                return ExitCode::from(1);
            }
        }
    } else {
        let how = match (out.reused, out.kept) {
            (true, _) => "existing connection, kept",
            (false, true) => "connected, kept",
            (false, false) => "connected, then disconnected",
        };
        println!(
            "Discovery log page of {} via {} ({how}): genctr {}, {} entries",
            a.traddr, out.device, page.header.genctr, page.header.numrec
        );
        let spelling = if a.cli_names {
            Spelling::Cli
        } else {
            Spelling::Stas
        };
        print!("{}", dlp_table(page, spelling));
    }
    if report_page_problems("stasadm discover", page) {
        return ExitCode::from(EXIT_PARTIAL);
    }
    ExitCode::SUCCESS
}

fn identity(
    conf: &std::path::Path,
    key: &str,
    value: Result<String, IdentityError>,
    file: Option<&std::path::Path>,
) -> ExitCode {
    let saved = value.and_then(|v| Ok(tools::hostid::save(conf, key, &v, file)?));
    match saved {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("stasadm: {e}");
            ExitCode::from(1)
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.version {
        println!("nvme-stas {} (stas, pure Rust)", env!("CARGO_PKG_VERSION"));
        return ExitCode::SUCCESS;
    }
    let conf = cli.conf_file.as_path();
    let host = HostIdentity::new(&KernelPaths::default());
    match cli.command {
        None => {
            use clap::CommandFactory;
            let _ = Cli::command().print_help();
            ExitCode::from(1)
        }
        Some(Command::Discover(a)) => discover(&a),
        Some(Command::Browse(a)) => browse(&a),
        Some(Command::Hostnqn { file }) => {
            let nqn = host.generate_hostnqn(nvmf_kernel::host::is_root());
            identity(conf, "nqn", nqn.map_err(Into::into), file.as_deref())
        }
        Some(Command::Hostid { file }) => {
            let id = host.random_hostid();
            identity(conf, "id", id.map_err(Into::into), file.as_deref())
        }
        Some(Command::SetSymname { symname, file }) => {
            identity(conf, "symname", Ok(symname), file.as_deref())
        }
        Some(Command::ClearSymname) => match tools::hostid::update_conf(conf, "symname", None) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("stasadm: {e}");
                ExitCode::from(1)
            }
        },
    }
}
