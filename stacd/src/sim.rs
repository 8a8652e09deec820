//! A simulated kernel for stacd: NVM subsystems that accept or refuse
//! connects, kernel controllers with sysfs records, connects that can be
//! held "in flight", and the kernel deleting a controller by itself. Every
//! branch of the service runs against it in unit tests with tokio's paused
//! clock, and `stacd --sim` runs the real service on it.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use nvmf_kernel::fabrics::{ConnectOptions, Connected, SupportedOptions};
use nvmf_kernel::sysfs::ControllerInfo;
use nvmf_kernel::{ConnectFailure, KernelError};
use nvmf_proto::types::CntrlType;
use stas_daemon::kernel::FabricKernel;
use stas_tid::matching::{Interface, InterfaceTable};

/// What the simulation saw.
#[derive(Debug, Clone, Default)]
pub struct SimState {
    /// Subsystems that accept connects, by (traddr, nqn).
    pub reachable: BTreeSet<(String, String)>,
    /// Every connect succeeds (`--sim` following a simulated stafd).
    pub accept_all: bool,
    /// Kernel controllers by name.
    pub controllers: BTreeMap<String, ConnectOptions>,
    next_instance: u32,
    /// Connect calls made.
    pub connects: Vec<ConnectOptions>,
    /// Devices deleted.
    pub disconnects: Vec<String>,
    /// Connect calls that entered the kernel (held ones included).
    pub connects_started: u64,
    /// Full scans of every controller (`controllers()` calls).
    pub full_scans: u64,
    /// Single-controller reads.
    pub reads: u64,
}

/// The simulated kernel.
#[derive(Debug, Default)]
pub struct SimKernel {
    state: Mutex<SimState>,
    /// While set, connects wait until it is cleared (a connect "in flight").
    gate: (Mutex<bool>, Condvar),
}

impl SimKernel {
    /// An empty simulation.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// The state, to set up or inspect.
    pub fn state(&self) -> MutexGuard<'_, SimState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Makes subsystem `nqn` at `traddr` accept connects.
    pub fn add_subsystem(&self, traddr: &str, nqn: &str) {
        self.state().reachable.insert((traddr.into(), nqn.into()));
    }

    /// A kernel connection that exists before the daemon starts (made by
    /// nvme-cli, a previous stacd, the boot firmware...).
    #[cfg(test)]
    pub fn add_existing(&self, opts: ConnectOptions) -> String {
        let mut s = self.state();
        let name = format!("nvme{}", s.next_instance);
        s.next_instance += 1;
        s.controllers.insert(name.clone(), opts);
        name
    }

    /// The kernel deletes a controller by itself (ctrl_loss_tmo expired).
    #[cfg(test)]
    pub fn vanish(&self, name: &str) {
        self.state().controllers.remove(name);
    }

    /// Holds (or releases) every connect.
    #[cfg(test)]
    pub fn hold_connects(&self, held: bool) {
        *self
            .gate
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = held;
        self.gate.1.notify_all();
    }
}

impl FabricKernel for SimKernel {
    fn supported_options(&self) -> Result<SupportedOptions, KernelError> {
        Ok(SupportedOptions::parse(
            nvmf_kernel::fabrics::LINUX_6_1_OPTIONS,
        ))
    }

    fn controllers(&self) -> Result<Vec<ControllerInfo>, KernelError> {
        let mut s = self.state();
        s.full_scans += 1;
        Ok(s.controllers
            .iter()
            .map(|(name, o)| stas_daemon::kernel::simulated_controller(name, o, CntrlType::Io))
            .collect())
    }

    fn controller(&self, name: &str) -> Result<Option<ControllerInfo>, KernelError> {
        let mut s = self.state();
        s.reads += 1;
        Ok(s.controllers
            .get(name)
            .map(|o| stas_daemon::kernel::simulated_controller(name, o, CntrlType::Io)))
    }

    fn interfaces(&self) -> InterfaceTable {
        InterfaceTable {
            interfaces: vec![Interface {
                name: "lo".into(),
                addrs: vec![IpAddr::from([127, 0, 0, 1])],
            }],
        }
    }

    fn connect(
        &self,
        opts: &ConnectOptions,
        _: &SupportedOptions,
    ) -> Result<Connected, KernelError> {
        self.state().connects_started += 1;
        {
            let (lock, cv) = &self.gate;
            let mut held = lock
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            while *held {
                held = cv
                    .wait(held)
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
            }
        }
        let mut s = self.state();
        s.connects.push(opts.clone());
        let key = (opts.traddr.clone().unwrap_or_default(), opts.nqn.clone());
        if !s.accept_all && !s.reachable.contains(&key) {
            return Err(KernelError::Connect {
                failure: ConnectFailure::Refused,
                options: format!("traddr={},nqn={}", key.0, key.1),
            });
        }
        let instance = s.next_instance;
        s.next_instance += 1;
        s.controllers
            .insert(format!("nvme{instance}"), opts.clone());
        Ok(Connected {
            instance,
            cntlid: 1,
        })
    }

    fn disconnect(&self, device: &str) -> Result<(), KernelError> {
        let mut s = self.state();
        s.controllers.remove(device);
        s.disconnects.push(device.into());
        Ok(())
    }

    fn resolve(&self, host: &str) -> Result<Vec<IpAddr>, String> {
        Err(format!("cannot resolve {host}: no names in the simulation"))
    }
}

/// A simulation where every subsystem is reachable, with a configuration
/// that names `n` of them (10.200.x.y).
pub fn populated(n: usize) -> (Arc<SimKernel>, stas_config::StacdConfig) {
    let sim = SimKernel::new();
    sim.state().accept_all = true;
    let mut text = String::from("[Controllers]\n");
    for i in 0..n {
        let traddr = stas_daemon::sim_host_address(10, 200, i);
        let nqn = format!("nqn.2024-01.io.sim:sub{i}");
        sim.add_subsystem(&traddr, &nqn);
        text.push_str(&format!(
            "controller = transport=tcp;traddr={traddr};nqn={nqn}\n"
        ));
    }
    let cfg = stas_config::parse_stacd(&text, "--sim")
        .map(|(c, _)| c)
        .unwrap_or_default();
    (sim, cfg)
}

/// A host identity for simulations.
pub fn host() -> crate::ioc::HostInfo {
    crate::ioc::HostInfo {
        hostnqn: "nqn.2014-08.org.nvmexpress:uuid:00000000-0000-4000-8000-000000000001".into(),
        hostid: "00000000-0000-4000-8000-000000000001".into(),
        hostkey: None,
    }
}
