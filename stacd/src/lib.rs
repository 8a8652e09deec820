//! stacd: the I/O-controller daemon of stas.
//!
//! Connects the NVMe-oF I/O controllers that stacd.conf names and that
//! stafd's discovery log pages list, keeps them connected, and disconnects
//! them when they are no longer wanted, as the disconnect-scope says. A
//! drop-in for nvme-stas's stacd: same /etc/stas files, D-Bus API and
//! behaviour (see docs/behaviour.md §7).
//!
//! Bare § numbers refer to docs/behaviour.md and docs/upstream.md;
//! other documents are named where they are cited.

pub mod cli;
mod dbus;
#[cfg(test)]
mod follow_tests;
mod ioc;
mod service;
mod sim;
/// stafd's `get_all_log_pages` answer as stacd reads it (public for stafd's
/// producer/consumer test).
pub mod staf;
#[cfg(test)]
mod tests;

use std::process::ExitCode;
use std::sync::Arc;

use crate::cli::Args;
use clap::Parser;
use stas_config::{self as config, StacdConfig, SysConf};
use stas_daemon as daemon;
use stas_daemon::dbus::SharedTidContext;
use stas_daemon::kernel::SystemFabric;
use stas_daemon::launch::{launch, open_events_and_lkc, reloader, simulation, Started};
use stas_tid::TidContext;

use crate::ioc::HostInfo;
use crate::service::{Input, Service, ServiceHandle};

const PROG: &str = "stacd";

/// The daemon: parses the command line, runs until told to stop, and
/// returns the exit status (the binary is this call alone).
pub fn main() -> ExitCode {
    let args = Args::parse();
    let launched = launch(PROG, &args.common, &args.conf_file, config::load_stacd);
    launched.then(simulate, run)
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
    let Ok(signals) = daemon::ProcessSignals::install() else {
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
    let view = handle.view.clone();
    let steady = move || {
        let all = view.snapshot();
        all.len() >= n && all.iter().all(ioc::IocStatus::connected)
    };
    simulation(signals, n, steady, service, move || {
        handle.send(Input::Shutdown)
    })
    .await
}

async fn run(started: Started<StacdConfig>) -> ExitCode {
    let (uevents, lkc) = match open_events_and_lkc(PROG) {
        Ok(opened) => opened,
        Err(code) => return code,
    };
    let (conf_file, bus_address, paths, sys, cfg) = started.into_parts();
    let kernel = Arc::new(SystemFabric {
        paths: paths.clone(),
    });
    let tid_context = SharedTidContext::for_host(&sys.hostnqn, cfg.global.ignore_iface);
    let lkc_path = lkc.path().to_path_buf();
    let (mut svc, handle) = Service::new(kernel, host_info(&sys), Arc::new(cfg), Some(lkc));
    svc.restore().await;
    let dbus_cfg = dbus::DbusConfig::on_kernel(
        handle.view.clone(),
        tid_context.clone(),
        sys,
        lkc_path,
        &svc.supported(),
        paths,
        (),
    );
    // Kept for the life of the daemon: dropping it leaves the bus.
    let _dbus = match start_dbus(bus_address.as_deref(), dbus_cfg, &handle).await {
        Ok(c) => c,
        Err(code) => return code,
    };
    let service = tokio::spawn(svc.run());

    let h = handle.clone();
    daemon::forward_uevents(uevents, move |item| h.send(Input::Uevent(item)));
    let reload_handle = handle.clone();
    let reload = reloader(conf_file, config::load_stacd, move |c| {
        tid_context.set_ignore_iface(c.global.ignore_iface);
        reload_handle.send(Input::Reload(Arc::new(c)));
    });
    daemon::serve(PROG, service, reload, move || handle.send(Input::Shutdown)).await
}
