//! stacd: the I/O-controller daemon of stas.
//!
//! Connects the NVMe-oF I/O controllers that stacd.conf names and that
//! stafd's discovery log pages list, keeps them connected, and disconnects
//! them when they are no longer wanted, as the disconnect-scope says. A
//! drop-in for nvme-stas's stacd: same /etc/stas files, D-Bus API and
//! behaviour (see the spec in shared/spec/nvme-stas-behaviour.md §7).

mod dbus;
#[cfg(test)]
mod follow_tests;
mod ioc;
mod service;
mod sim;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use nvmf_kernel::uevent::UeventStream;
use nvmf_kernel::KernelPaths;
use stacd::cli::Args;
// In the library, for stafd's producer/consumer test; the daemon's
// modules reach it as `crate::staf`.
use stacd::staf;
use stas_config::{self as config, StacdConfig, SysConf};
use stas_daemon::kernel::{FabricKernel, SystemFabric};
use stas_daemon::lkc::LkcFile;
use stas_daemon::{self as daemon, logging, notify};
use stas_tid::TidContext;

use crate::ioc::HostInfo;
use crate::service::{Input, Service, ServiceHandle};

const PROG: &str = "stacd";

fn load_config(path: &Path) -> Result<StacdConfig, String> {
    daemon::load_logged(path, config::load_stacd)
}

fn main() -> ExitCode {
    let args = Args::parse();
    if args.version {
        daemon::print_version();
        return ExitCode::SUCCESS;
    }
    if args.check_config {
        return daemon::check_config(
            &args.sys_conf,
            &args.nvme_dir,
            &args.conf_file,
            config::load_stacd,
        );
    }
    logging::init(args.syslog || logging::stderr_is_journal(), args.tron);
    let bus_address = args
        .bus_address
        .clone()
        .or_else(|| std::env::var(stas_daemon::dbus::ADDRESS_ENV).ok());
    if let Some(n) = args.sim {
        let Some(rt) = daemon::runtime() else {
            return ExitCode::from(1);
        };
        return rt.block_on(simulate(n, bus_address));
    }
    let paths = KernelPaths::default();
    if let Err(code) = daemon::startup_checks(PROG, &paths) {
        return code;
    }
    let sys = match daemon::load_sysconf(&args.sys_conf, &args.nvme_dir) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let cfg = match load_config(&args.conf_file) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(1);
        }
    };
    logging::set_tron(args.tron || cfg.global.tron);
    let Some(rt) = daemon::runtime() else {
        return ExitCode::from(1);
    };
    rt.block_on(run(args.conf_file, bus_address, paths, sys, cfg))
}

fn host_info(sys: &SysConf) -> HostInfo {
    HostInfo {
        hostnqn: sys.hostnqn.clone(),
        hostid: sys.hostid.clone(),
        hostkey: sys.hostkey.clone(),
    }
}

/// Serves D-Bus and follows stafd on `address` (or the system bus).
async fn start_dbus(
    address: Option<&str>,
    cfg: dbus::DbusConfig,
    handle: &ServiceHandle,
) -> Result<zbus::Connection, ExitCode> {
    let conn = match dbus::serve(address, cfg).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("cannot register {} on D-Bus: {e}", dbus::BUS_NAME);
            return Err(ExitCode::from(1));
        }
    };
    let (c, h) = (conn.clone(), handle.clone());
    tokio::spawn(async move {
        if let Err(e) = dbus::follow_stafd(c, h).await {
            log::error!("Failed to connect to staf: cannot follow it on D-Bus: {e}");
        }
    });
    Ok(conn)
}

/// `--sim N`: the real service against the simulated kernel; with a bus
/// address it also serves D-Bus there and follows stafd on it.
async fn simulate(n: usize, bus: Option<String>) -> ExitCode {
    // Installed first: from now on no signal ends the process unasked.
    let Ok(mut signals) = daemon::ProcessSignals::install() else {
        return ExitCode::from(1);
    };
    let (sim, cfg) = sim::populated(n);
    let host = sim::host();
    let sys = SysConf {
        hostnqn: host.hostnqn.clone(),
        hostid: host.hostid.clone(),
        hostkey: None,
        symname: None,
    };
    let ctx = TidContext {
        host_nqn: host.hostnqn.clone(),
        ignore_iface: cfg.global.ignore_iface,
    };
    let (mut svc, handle) = Service::new(sim, host, Arc::new(cfg), None);
    svc.restore().await;
    let _conn = match &bus {
        Some(address) => {
            let dbus_cfg = dbus::DbusConfig {
                view: handle.view.clone(),
                tid_context: stas_daemon::dbus::SharedTidContext::new(ctx),
                sys,
                lkc_path: None,
                kernel_tp8013: true,
                kernel_host_iface: true,
                device_info: None,
                extra: (),
            };
            match start_dbus(Some(address), dbus_cfg, &handle).await {
                Ok(c) => Some(c),
                Err(code) => return code,
            }
        }
        None => None,
    };
    let service = tokio::spawn(svc.run());
    let _ = notify::notify("READY=1");
    let steady = daemon::wait_steady_or_stop(&mut signals, || {
        let all = handle.view.snapshot();
        all.len() >= n && all.iter().all(ioc::IocStatus::connected)
    })
    .await;
    if steady {
        println!("@@steady {n}");
        // SIGHUP has nothing to reload in a simulation, but must not end it.
        while signals.next_is_reload().await {
            log::info!("SIGHUP: nothing to reload in a simulation");
        }
    }
    handle.send(Input::Shutdown);
    let _ = service.await;
    ExitCode::SUCCESS
}

async fn run(
    conf_file: PathBuf,
    bus_address: Option<String>,
    paths: KernelPaths,
    sys: SysConf,
    cfg: StacdConfig,
) -> ExitCode {
    // Subscribe before anything scans sysfs, so no event falls in between.
    let uevents = match UeventStream::open(daemon::uevent_rcvbuf(), true) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("cannot listen to kernel events: {e}");
            return ExitCode::from(1);
        }
    };
    let lkc = LkcFile::new(
        LkcFile::default_path(PROG, std::env::var("RUNTIME_DIRECTORY").ok().as_deref()),
        PROG,
    );
    let kernel = Arc::new(SystemFabric {
        paths: paths.clone(),
    });
    let supported = kernel
        .supported_options()
        .unwrap_or_else(|_| nvmf_kernel::fabrics::SupportedOptions::legacy());
    let tid_context = stas_daemon::dbus::SharedTidContext::new(TidContext {
        host_nqn: sys.hostnqn.clone(),
        ignore_iface: cfg.global.ignore_iface,
    });
    let lkc_path = lkc.path().to_path_buf();
    let (mut svc, handle) = Service::new(kernel, host_info(&sys), Arc::new(cfg), Some(lkc));
    svc.restore().await;
    let dbus_cfg = dbus::DbusConfig {
        view: handle.view.clone(),
        tid_context: tid_context.clone(),
        sys: sys.clone(),
        lkc_path: Some(lkc_path),
        kernel_tp8013: supported.contains("discovery"),
        kernel_host_iface: supported.contains("host_iface"),
        device_info: Some(Arc::new(move |dev: &str| {
            nvmf_kernel::sysfs::Sysfs::new(&paths)
                .controller(dev)
                .ok()
                .flatten()
        })),
        extra: (),
    };
    // Kept for the life of the daemon: dropping it leaves the bus.
    let _dbus = match start_dbus(bus_address.as_deref(), dbus_cfg, &handle).await {
        Ok(c) => c,
        Err(code) => return code,
    };
    let service = tokio::spawn(svc.run());

    let h = handle.clone();
    daemon::forward_uevents(uevents, move |item| h.send(Input::Uevent(item)));
    let reload_handle = handle.clone();
    let reload = move || match load_config(&conf_file) {
        Ok(c) => {
            logging::set_tron(c.global.tron);
            tid_context.set(TidContext {
                host_nqn: sys.hostnqn.clone(),
                ignore_iface: c.global.ignore_iface,
            });
            reload_handle.send(Input::Reload(Arc::new(c)));
            log::info!("configuration reloaded from {}", conf_file.display());
        }
        Err(e) => log::error!("{e}; keeping the last good configuration"),
    };
    daemon::serve(PROG, service, reload, move || handle.send(Input::Shutdown)).await
}
