//! The simulated kernel both daemons run on in unit tests (tokio's paused
//! clock) and under `--sim` (benchmarks, demos; no root): kernel
//! controllers with sysfs records, connects that can be held "in flight",
//! the kernel deleting a controller by itself, host names to resolve, and
//! counters of full scans and single reads. What lies beyond the kernel
//! (stafd's discovery controllers, stacd's subsystems) is the daemon's
//! own [`SimPeers`].

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use nvmf_kernel::fabrics::{ConnectOptions, Connected, SupportedOptions};
use nvmf_kernel::sysfs::ControllerInfo;
use nvmf_kernel::KernelError;
use nvmf_proto::types::CntrlType;
use stas_tid::matching::{Interface, InterfaceTable};

use crate::kernel::{FabricKernel, ResolveError};
use crate::lock;

/// The controllers a simulation lets the daemon reach.
pub trait SimPeers: Default + Send + 'static {
    /// Whether a connect with `opts` reaches a controller; the error is
    /// what the kernel would answer when not.
    fn accept(&self, opts: &ConnectOptions) -> Result<(), KernelError>;
    /// The sysfs record of controller `name`, connected with `opts`.
    fn record(&self, name: &str, opts: &ConnectOptions) -> ControllerInfo;
}

/// What the simulated kernel holds and saw; the peers' own state is
/// reached through it (`state.dcs` for `state.peers.dcs`).
#[derive(Debug, Clone, Default)]
pub struct SimState<P> {
    /// Kernel controllers by name, with the options they were connected with.
    pub controllers: BTreeMap<String, ConnectOptions>,
    next_instance: u32,
    /// Connect calls that got through (held ones once released).
    pub connects: Vec<ConnectOptions>,
    /// Devices deleted.
    pub disconnects: Vec<String>,
    /// Connect calls that entered the kernel (held ones included).
    pub connects_started: u64,
    /// Full scans of every controller (`controllers()` calls).
    pub full_scans: u64,
    /// Single-controller reads.
    pub reads: u64,
    /// Host name resolutions.
    pub names: BTreeMap<String, Vec<IpAddr>>,
    /// What lies beyond the kernel.
    pub peers: P,
}

impl<P> Deref for SimState<P> {
    type Target = P;
    fn deref(&self) -> &P {
        &self.peers
    }
}

impl<P> DerefMut for SimState<P> {
    fn deref_mut(&mut self) -> &mut P {
        &mut self.peers
    }
}

impl<P> SimState<P> {
    /// Adds a kernel controller under the next free name.
    fn add(&mut self, opts: ConnectOptions) -> (String, u32) {
        let instance = self.next_instance;
        self.next_instance += 1;
        let name = format!("nvme{instance}");
        self.controllers.insert(name.clone(), opts);
        (name, instance)
    }
}

/// A switch that holds calls until it is opened again.
#[derive(Debug, Default)]
pub struct Hold {
    held: Mutex<bool>,
    changed: Condvar,
}

impl Hold {
    /// Holds (`true`) or lets through (`false`) the calls that wait here.
    pub fn set(&self, held: bool) {
        *lock(&self.held) = held;
        self.changed.notify_all();
    }

    /// Waits until not held, or [`Self::MAX_HOLD`] has passed: a test that
    /// fails while holding calls must end with its failure, not hang in
    /// the runtime's drop waiting for the held call.
    pub fn wait(&self) {
        let start = std::time::Instant::now();
        let mut held = lock(&self.held);
        while *held {
            let Some(left) = Self::MAX_HOLD.checked_sub(start.elapsed()) else {
                return;
            };
            held = self
                .changed
                .wait_timeout(held, left)
                .map(|(g, _)| g)
                .unwrap_or_else(|e| e.into_inner().0);
        }
    }

    /// The longest a call is held (real time).
    pub const MAX_HOLD: std::time::Duration = std::time::Duration::from_secs(10);
}

/// The simulated kernel.
#[derive(Debug, Default)]
pub struct SimKernel<P> {
    state: Mutex<SimState<P>>,
    /// Holds connects (a connect "in flight").
    pub connects: Hold,
    /// Holds the daemon's own slow calls (stafd's log page reads).
    pub reads: Hold,
}

impl<P: SimPeers> SimKernel<P> {
    /// An empty simulation.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// The state, to set up or inspect.
    pub fn state(&self) -> MutexGuard<'_, SimState<P>> {
        lock(&self.state)
    }

    /// A kernel connection that exists before the daemon starts (made by
    /// nvme-cli, an earlier run, the boot firmware...).
    pub fn add_existing(&self, opts: ConnectOptions) -> String {
        self.state().add(opts).0
    }

    /// The kernel deletes a controller by itself (ctrl_loss_tmo expired).
    pub fn vanish(&self, name: &str) {
        self.state().controllers.remove(name);
    }

    /// Holds (or releases) every connect.
    pub fn hold_connects(&self, held: bool) {
        self.connects.set(held);
    }
}

impl<P: SimPeers> FabricKernel for SimKernel<P> {
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
            .map(|(name, o)| s.peers.record(name, o))
            .collect())
    }

    fn controller(&self, name: &str) -> Result<Option<ControllerInfo>, KernelError> {
        let mut s = self.state();
        s.reads += 1;
        Ok(s.controllers.get(name).map(|o| s.peers.record(name, o)))
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
        self.connects.wait();
        let mut s = self.state();
        s.connects.push(opts.clone());
        s.peers.accept(opts)?;
        let (_, instance) = s.add(opts.clone());
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

    fn resolve(&self, host: &str) -> Result<Vec<IpAddr>, ResolveError> {
        self.state()
            .names
            .get(host)
            .cloned()
            .ok_or_else(|| ResolveError {
                host: host.into(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "unknown host"),
            })
    }
}

/// The configuration of a `--sim N` run: `controller` gives the
/// `controller=` value of the `i`-th (from 0) simulated controller;
/// `parse` reads the text (a simulation has no diagnostics worth a stop).
pub fn config_naming<C: Default, D>(
    count: usize,
    mut controller: impl FnMut(usize) -> String,
    parse: impl Fn(&str, &str) -> Result<(C, D), stas_config::ConfigError>,
) -> C {
    let mut text = String::from("[Controllers]\n");
    for i in 0..count {
        text.push_str(&format!("controller = {}\n", controller(i)));
    }
    parse(&text, "--sim").map(|(c, _)| c).unwrap_or_default()
}

/// The sysfs record a kernel would show for a controller connected with
/// `opts` as `name` (live).
pub fn controller_record(
    name: &str,
    opts: &ConnectOptions,
    cntrltype: CntrlType,
) -> ControllerInfo {
    ControllerInfo {
        name: name.to_owned(),
        instance: name.trim_start_matches("nvme").parse().unwrap_or(0),
        transport: Some(opts.transport.clone()),
        address: Some(nvmf_kernel::sysfs::ControllerAddress {
            traddr: opts.traddr.clone(),
            trsvcid: opts.trsvcid.clone(),
            host_traddr: opts.host_traddr.clone(),
            host_iface: opts.host_iface.clone(),
            ..Default::default()
        }),
        subsysnqn: Some(opts.nqn.clone()),
        hostnqn: opts.hostnqn.clone(),
        hostid: opts.hostid.clone(),
        state: Some("live".into()),
        cntrltype: Some(cntrltype),
        ..ControllerInfo::default()
    }
}

/// The host identity of simulations: (host NQN, host ID).
pub const HOST: (&str, &str) = (
    "nqn.2014-08.org.nvmexpress:uuid:00000000-0000-4000-8000-000000000001",
    "00000000-0000-4000-8000-000000000001",
);

/// The `i`-th (from 0) host address of a simulation under `a.b`:
/// a.b.x.y with y in 1..=254, so every address is a valid, usable IPv4
/// host address (no .0, no .255, never a 256).
pub fn host_address(a: u8, b: u8, i: usize) -> String {
    let x = i / 254 % 256;
    let y = i % 254 + 1;
    format!("{a}.{b}.{x}.{y}")
}

#[cfg(test)]
mod tests {
    use super::host_address;

    #[test]
    fn simulated_addresses_are_distinct_valid_hosts() {
        let mut seen = std::collections::HashSet::new();
        for i in 0..70_000 {
            let a = host_address(10, 0, i);
            let ip: std::net::Ipv4Addr = a.parse().unwrap_or_else(|e| panic!("{a}: {e}"));
            let last = ip.octets()[3];
            assert!((1..=254).contains(&last), "{a}");
            if i < 254 * 256 {
                assert!(seen.insert(a.clone()), "{a} twice");
            }
        }
        assert_eq!(host_address(10, 0, 255), "10.0.1.2");
    }
}
