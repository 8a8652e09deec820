//! stafd: the discovery-controller daemon of stas.
//!
//! Finds NVMe-oF discovery controllers (configured, NBFT, mDNS/DNS-SD, referred),
//! keeps connections to them, registers with central ones, caches their
//! discovery log pages and tells stacd when they change. A drop-in for
//! nvme-stas's stafd: same /etc/stas files and behaviour (see the spec in
//! docs/behaviour.md §6).
//!
//! Bare § numbers refer to docs/behaviour.md and docs/upstream.md;
//! other documents are named where they are cited.

pub mod cli;
mod dbus;
mod dc;
#[cfg(test)]
mod epcsd_tests;
mod interop;
mod kernel;
#[cfg(test)]
mod lkc_tests;
#[cfg(test)]
mod log_page_tests;
mod service;
mod sim;
#[cfg(test)]
mod tests;
mod zeroconf;
#[cfg(test)]
mod zeroconf_tests;

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use crate::cli::Args;
use clap::Parser;
use nvmf_kernel::KernelPaths;
use stas_config::{self as config, StafdConfig, SysConf};
use stas_daemon as daemon;
use stas_daemon::launch::{launch, open_events_and_lkc, reloader, simulation, Started};
use stas_tid::TidContext;

use crate::dc::HostInfo;
use crate::kernel::SystemKernel;
use crate::service::{Input, NoSignals, Service};
use stas_daemon::dbus::SharedTidContext;

const PROG: &str = "stafd";

fn host_info(sys: &SysConf, paths: &KernelPaths) -> HostInfo {
    HostInfo {
        hostnqn: sys.hostnqn.clone(),
        hostid: sys.hostid.clone(),
        hostid_bytes: nvmf_proto::dim::parse_uuid(&sys.hostid).ok(),
        hostname: nvmf_kernel::host::hostname(),
        os_version: nvmf_kernel::host::entity_version(paths),
        symname: sys.symname.clone(),
    }
}

/// The daemon: parses the command line, runs until told to stop, and
/// returns the exit status (the binary is this call alone).
pub fn main() -> ExitCode {
    let args = Args::parse();
    let launched = launch(PROG, &args.common, &args.conf_file, config::load_stafd);
    launched.then(
        |count, bus_address| simulate(count, bus_address, args.sim_zeroconf),
        |started| run(&args, started),
    )
}

/// What the zeroconf task needs besides the configuration.
struct ZeroconfSetup {
    handle: service::ServiceHandle,
    tp8013: bool,
    view: dbus::ZeroconfView,
    /// Where avahi-daemon is looked for (the system bus).
    bus: Option<zbus::Connection>,
}

/// The zeroconf task while `[Service Discovery] zeroconf` is enabled.
#[derive(Debug, Default)]
struct ZeroconfTask {
    /// The backend and TID context it runs with, and the task.
    running: Option<(
        (config::MdnsBackend, TidContext),
        tokio::task::JoinHandle<()>,
    )>,
}

impl ZeroconfTask {
    /// Starts, stops or restarts the task to match `cfg` (§10.1: disabling
    /// drops every record; discovered DCs then age as lost ones do).
    fn apply(&mut self, cfg: &StafdConfig, setup: &ZeroconfSetup, ctx: &TidContext) {
        // A new ignore-iface changes the identities: restart with it.
        let want = cfg.zeroconf.then(|| (cfg.mdns_backend, ctx.clone()));
        if self.running.as_ref().map(|(b, _)| b) == want.as_ref()
            && self.running.as_ref().is_some_and(|(_, t)| !t.is_finished())
        {
            return;
        }
        if let Some((_, task)) = self.running.take() {
            task.abort();
            setup.handle.send(Input::Zeroconf(Default::default()));
            *setup
                .view
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
        }
        let Some((backend, ctx)) = want else { return };
        let core = zeroconf::Zeroconf::new(ctx.clone(), setup.tp8013);
        let key = (backend, ctx);
        let handle = setup.handle.clone();
        let view = setup.view.clone();
        let bus = setup.bus.clone();
        let task = tokio::spawn(async move {
            let source = match stas_mdns::backend::start(
                backend,
                stas_mdns::driver::DriverConfig::default(),
                bus.as_ref(),
            )
            .await
            {
                Ok(s) => s,
                Err(e) => {
                    log::warn!("mDNS: cannot browse ({backend}), operating without zero-touch discovery: {e}");
                    return;
                }
            };
            let running = source.backend();
            log::info!("mDNS: browsing for discovery controllers ({running})");
            zeroconf::run(
                core,
                source,
                running.as_str(),
                move |tids| handle.send(Input::Zeroconf(tids)),
                view,
            )
            .await;
        });
        self.running = Some((key, task));
    }
}

/// `--sim N`: the real service against the simulated kernel; with a bus
/// address it also serves D-Bus there (for stafctl tests and demos).
async fn simulate(n: usize, bus: Option<String>, zeroconf: bool) -> ExitCode {
    let (sim, cfg) = sim::populated(n);
    let host = sim::host();
    // Installed first: from now on no signal ends the process unasked.
    let Ok(process_signals) = daemon::ProcessSignals::install() else {
        return ExitCode::from(1);
    };
    let (dbus_signals, signal_queue) = dbus::signals();
    let ctx = TidContext {
        host_nqn: host.hostnqn.clone(),
        ignore_iface: cfg.global.ignore_iface,
    };
    let sys = SysConf {
        hostnqn: host.hostnqn.clone(),
        hostid: host.hostid.clone(),
        hostkey: Some("DHHC-1:00:c2ltdWxhdGVkIGhvc3Qga2V5:".into()),
        symname: None,
    };
    // Without a bus, signals go nowhere (a queue would only grow).
    let signals: Arc<dyn service::Signals> = if bus.is_some() {
        Arc::new(dbus_signals)
    } else {
        Arc::new(NoSignals)
    };
    let cfg = Arc::new(cfg);
    let (mut svc, handle) = Service::new(sim, host, cfg.clone(), signals, None);
    svc.restore();
    let zeroconf_view = dbus::ZeroconfView::default();
    let _conn = match bus {
        Some(address) => {
            let dbus_cfg = dbus::DbusConfig {
                view: handle.view.clone(),
                tid_context: dbus::SharedTidContext::new(ctx.clone()),
                sys,
                lkc_path: None,
                kernel_tp8013: true,
                kernel_host_iface: true,
                device_info: None,
                extra: zeroconf_view.clone(),
            };
            match dbus::serve(Some(&address), dbus_cfg, signal_queue).await {
                Ok(c) => Some(c),
                Err(e) => {
                    eprintln!(
                        "cannot register {} on D-Bus at {address}: {e}",
                        dbus::BUS_NAME
                    );
                    return ExitCode::from(1);
                }
            }
        }
        None => None,
    };
    let service = tokio::spawn(svc.run());
    let mut zeroconf_task = ZeroconfTask::default();
    if zeroconf {
        let setup = ZeroconfSetup {
            handle: handle.clone(),
            tp8013: true,
            view: zeroconf_view,
            bus: None,
        };
        // The built-in querier: the bus in tests is a private one.
        let mut c = (*cfg).clone();
        c.mdns_backend = config::MdnsBackend::Builtin;
        zeroconf_task.apply(&c, &setup, &ctx);
    }
    let view = handle.view.clone();
    let steady = move || {
        let all = view.snapshot();
        all.len() == n && all.iter().all(|d| d.stage == crate::dc::Stage::Steady)
    };
    simulation(process_signals, n, steady, service, move || {
        handle.send(Input::Shutdown)
    })
    .await
}

/// sys.conf's symbolic name, read again on SIGHUP so that a new one
/// reaches the CDCs and DDCs as a DIM update (upstream reads sys.conf only
/// at start). The host NQN and ID name every connection and registration:
/// a change to them is reported and waits for a restart. `None` when the
/// file cannot be read (the current name stays).
fn reload_symname(path: &Path, nvme_dir: &Path, started: &SysConf) -> Option<Option<String>> {
    match config::load_sysconf(path, nvme_dir) {
        Ok((now, diags)) => {
            for d in diags {
                log::warn!("{d}");
            }
            if now.hostnqn != started.hostnqn || now.hostid != started.hostid {
                log::warn!(
                    "{}: the host NQN or ID changed; stafd keeps {} until it is restarted",
                    path.display(),
                    started.hostnqn
                );
            }
            Some(now.symname)
        }
        Err(e) => {
            log::error!("{e}; keeping the host symbolic name");
            None
        }
    }
}

async fn run(args: &Args, started: Started<StafdConfig>) -> ExitCode {
    let (uevents, lkc) = match open_events_and_lkc(PROG) {
        Ok(opened) => opened,
        Err(code) => return code,
    };
    let (conf_file, bus_address, paths, sys, cfg) = started.into_parts();
    let host = host_info(&sys, &paths);
    // Mask nvme-cli's autoconnect rule while stafd runs (§6.10).
    let systemctl = interop::find_systemctl();
    let override_path = Path::new(interop::OVERRIDE);
    let installed = match interop::install(
        override_path,
        systemctl.as_deref().unwrap_or(Path::new("systemctl")),
    ) {
        Ok(w) => w,
        Err(e) => {
            log::warn!("cannot write {}: {e}", override_path.display());
            false
        }
    };
    let kernel = Arc::new(SystemKernel::new(paths.clone(), systemctl));
    let tid_context = SharedTidContext::for_host(&sys.hostnqn, cfg.global.ignore_iface);
    let lkc_path = lkc.path().to_path_buf();
    let zeroconf_view = dbus::ZeroconfView::default();
    let (dbus_signals, signal_queue) = dbus::signals();
    let cfg = Arc::new(cfg);
    let (mut svc, handle) =
        Service::new(kernel, host, cfg.clone(), Arc::new(dbus_signals), Some(lkc));
    svc.restore();
    let supported = svc.supported();
    let dbus_cfg = dbus::DbusConfig::on_kernel(
        handle.view.clone(),
        tid_context.clone(),
        sys.clone(),
        lkc_path,
        &supported,
        paths,
        zeroconf_view.clone(),
    );
    // Kept for the life of the daemon: dropping it leaves the bus.
    let dbus_conn = match dbus::serve(bus_address.as_deref(), dbus_cfg, signal_queue).await {
        Ok(conn) => conn,
        Err(e) => {
            eprintln!("cannot register {} on D-Bus: {e}", dbus::BUS_NAME);
            if installed {
                interop::remove(override_path);
            }
            return ExitCode::from(1);
        }
    };
    let service = tokio::spawn(svc.run());
    let mut zeroconf = ZeroconfTask::default();
    let zeroconf_setup = ZeroconfSetup {
        handle: handle.clone(),
        tp8013: supported.contains("discovery"),
        view: zeroconf_view,
        bus: Some(dbus_conn.clone()),
    };
    zeroconf.apply(&cfg, &zeroconf_setup, &tid_context.get());

    let h = handle.clone();
    daemon::forward_uevents(uevents, move |item| h.send(Input::Uevent(item)));
    let (sys_conf, nvme_dir) = (args.common.sys_conf.clone(), args.common.nvme_dir.clone());
    let reload_handle = handle.clone();
    let reload = reloader(conf_file, config::load_stafd, move |c| {
        if let Some(symname) = reload_symname(&sys_conf, &nvme_dir, &sys) {
            reload_handle.send(Input::Symname(symname));
        }
        tid_context.set_ignore_iface(c.global.ignore_iface);
        let c = Arc::new(c);
        zeroconf.apply(&c, &zeroconf_setup, &tid_context.get());
        reload_handle.send(Input::Reload(c));
    });
    let stop = move || {
        if installed {
            interop::remove(override_path);
        }
        handle.send(Input::Shutdown);
    };
    daemon::serve(PROG, service, reload, stop).await
}
