//! stacd's simulation: NVM subsystems that accept or refuse connects, on
//! the shared simulated kernel ([`stas_daemon::sim`]). Every branch of the
//! service runs against it in unit tests with tokio's paused clock, and
//! `stacd --sim` runs the real service on it.

use std::collections::BTreeSet;
use std::sync::Arc;

use nvmf_kernel::fabrics::ConnectOptions;
use nvmf_kernel::sysfs::ControllerInfo;
use nvmf_kernel::{ConnectFailure, KernelError};
use nvmf_proto::types::CntrlType;
use stas_daemon::sim::{config_naming, controller_record, host_address, SimPeers, HOST};

/// The simulated kernel with stacd's subsystems.
pub type SimKernel = stas_daemon::sim::SimKernel<Subsystems>;

/// The NVM subsystems a simulation has.
#[derive(Debug, Clone, Default)]
pub struct Subsystems {
    /// Subsystems that accept connects, by (traddr, nqn).
    pub reachable: BTreeSet<(String, String)>,
    /// Every connect succeeds (`--sim` following a simulated stafd).
    pub accept_all: bool,
}

impl SimPeers for Subsystems {
    fn accept(&self, opts: &ConnectOptions) -> Result<(), KernelError> {
        let key = (opts.traddr.clone().unwrap_or_default(), opts.nqn.clone());
        if self.accept_all || self.reachable.contains(&key) {
            return Ok(());
        }
        Err(KernelError::Connect {
            failure: ConnectFailure::Refused,
            options: format!("traddr={},nqn={}", key.0, key.1),
        })
    }

    fn record(&self, name: &str, opts: &ConnectOptions) -> ControllerInfo {
        controller_record(name, opts, CntrlType::Io)
    }
}

/// Setting up subsystems.
pub trait SubsystemSim {
    /// Makes subsystem `nqn` at `traddr` accept connects.
    fn add_subsystem(&self, traddr: &str, nqn: &str);
}

impl SubsystemSim for SimKernel {
    fn add_subsystem(&self, traddr: &str, nqn: &str) {
        self.state().reachable.insert((traddr.into(), nqn.into()));
    }
}

/// A simulation where every subsystem is reachable, with a configuration
/// that names `n` of them (10.200.x.y).
pub fn populated(n: usize) -> (Arc<SimKernel>, stas_config::StacdConfig) {
    let sim = SimKernel::new();
    sim.state().accept_all = true;
    let subsystem = |i| {
        let traddr = host_address(10, 200, i);
        let nqn = format!("nqn.2024-01.io.sim:sub{i}");
        sim.add_subsystem(&traddr, &nqn);
        format!("transport=tcp;traddr={traddr};nqn={nqn}")
    };
    let cfg = config_naming(n, subsystem, stas_config::parse_stacd);
    (sim, cfg)
}

/// A host identity for simulations.
pub fn host() -> crate::ioc::HostInfo {
    crate::ioc::HostInfo {
        hostnqn: HOST.0.into(),
        hostid: HOST.1.into(),
        hostkey: None,
    }
}
