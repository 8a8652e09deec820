//! A simulated kernel (stratisd's `--sim` idea): discovery controllers with
//! log pages, kernel connections, registrations and failures in memory, so
//! every branch of the pipeline runs in a unit test with tokio's paused
//! clock, including registration and PLEO, which the kernel target cannot
//! exercise.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use nvmf_kernel::fabrics::{ConnectOptions, Connected, SupportedOptions};
use nvmf_kernel::sysfs::ControllerInfo;
use nvmf_kernel::{ConnectFailure, Errno, KernelError, NvmeStatus};
use nvmf_proto::dim::{DimData, Tas};
use nvmf_proto::dlp::{emit_log_page, DiscoveryLogEntry, DiscoveryLogPage, ENTRY_LEN, HEADER_LEN};
use nvmf_proto::logpages::{LidSupport, SupportedLogPages, LID_DISCOVERY};
use nvmf_proto::types::{CntrlType, DcType};
use stas_tid::matching::{Interface, InterfaceTable};

use crate::kernel::{FabricKernel, Kernel};

/// A simulated discovery controller, reachable at (traddr, trsvcid).
#[derive(Debug, Clone, Default)]
pub struct SimDc {
    /// Its log page entries.
    pub entries: Vec<DiscoveryLogEntry>,
    /// Its type.
    pub dctype: Option<DcType>,
    /// Whether connects succeed.
    pub reachable: bool,
    /// LID-specific support bits of LID 0x70, if it serves Supported Log Pages.
    pub lid0: Option<u16>,
    /// A status DIM commands fail with.
    pub dim_status: Option<u16>,
    /// An errno DIM commands fail with (the command did not reach the DC).
    pub dim_errno: Option<Errno>,
    /// A failure every log page read gets.
    pub log_errno: Option<Errno>,
    /// The log page's GENCTR.
    pub genctr: u64,
    /// Entries (by index) sent with a TRADDR that is not ASCII, so that
    /// they do not parse.
    pub bad_entries: Vec<usize>,
}

/// What the simulation saw.
#[derive(Debug, Clone, Default)]
pub struct SimState {
    /// Discovery controllers by (traddr, trsvcid).
    pub dcs: BTreeMap<(String, String), SimDc>,
    /// Kernel controllers by name.
    pub controllers: BTreeMap<String, (ConnectOptions, (String, String))>,
    next_instance: u32,
    /// Connect calls made.
    pub connects: Vec<ConnectOptions>,
    /// Devices deleted.
    pub disconnects: Vec<String>,
    /// Registrations received (device, task).
    pub registrations: Vec<(String, Tas)>,
    /// Their payloads, as a DC would parse them off the wire.
    pub dim_payloads: Vec<DimData>,
    /// Log page reads (device, lsp).
    pub log_reads: Vec<(String, u8)>,
    /// Supported Log Pages reads.
    pub lid0_reads: u32,
    /// Host name resolutions.
    pub names: BTreeMap<String, Vec<IpAddr>>,
    /// NBFT tables the firmware provides.
    pub nbft: Vec<Vec<u8>>,
    /// nvmf-connect@ instances started for unmanaged DCs.
    pub forwarded: Vec<String>,
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
    gate: Arc<(Mutex<bool>, Condvar)>,
    /// The same for discovery log reads.
    read_gate: Arc<(Mutex<bool>, Condvar)>,
}

fn wait_open(gate: &(Mutex<bool>, Condvar)) {
    let (lock, cv) = gate;
    let mut held = lock
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    while *held {
        held = cv
            .wait(held)
            .unwrap_or_else(std::sync::PoisonError::into_inner);
    }
}

#[cfg(test)]
fn set_gate(gate: &(Mutex<bool>, Condvar), closed: bool) {
    *gate
        .0
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = closed;
    gate.1.notify_all();
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

    /// Adds (or replaces) a reachable DC.
    pub fn add_dc(
        &self,
        traddr: &str,
        trsvcid: &str,
        dctype: DcType,
        entries: Vec<DiscoveryLogEntry>,
    ) {
        self.state().dcs.insert(
            (traddr.into(), trsvcid.into()),
            SimDc {
                entries,
                dctype: Some(dctype),
                reachable: true,
                ..SimDc::default()
            },
        );
    }

    fn dc_of(&self, device: &str) -> Result<SimDc, KernelError> {
        let s = self.state();
        let key = s
            .controllers
            .get(device)
            .map(|(_, k)| k.clone())
            .ok_or_else(|| KernelError::Ioctl {
                command: "sim".into(),
                device: device.into(),
                errno: Errno::ENODEV,
            })?;
        s.dcs.get(&key).cloned().ok_or_else(|| KernelError::Ioctl {
            command: "sim".into(),
            device: device.into(),
            errno: Errno::EIO,
        })
    }
}

/// What tests do to the simulation.
#[cfg(test)]
impl SimKernel {
    /// Changes a DC.
    pub fn with_dc(&self, traddr: &str, f: impl FnOnce(&mut SimDc)) {
        if let Some(dc) = self
            .state()
            .dcs
            .iter_mut()
            .find(|((a, _), _)| a == traddr)
            .map(|(_, d)| d)
        {
            f(dc);
        }
    }

    /// A kernel connection that exists before the daemon starts.
    pub fn add_existing(&self, opts: ConnectOptions) -> String {
        let mut s = self.state();
        let name = format!("nvme{}", s.next_instance);
        s.next_instance += 1;
        let key = (
            opts.traddr.clone().unwrap_or_default(),
            opts.trsvcid.clone().unwrap_or_default(),
        );
        s.controllers.insert(name.clone(), (opts, key));
        name
    }

    /// The kernel deletes a controller (e.g. ctrl_loss_tmo expired).
    pub fn vanish(&self, name: &str) {
        self.state().controllers.remove(name);
    }

    /// Holds every connect until [`release`](Self::release).
    pub fn hold_connects(&self) {
        set_gate(&self.gate, true);
    }

    /// Holds every discovery log read until [`release`](Self::release).
    pub fn hold_reads(&self) {
        set_gate(&self.read_gate, true);
    }

    /// Lets held connects and reads proceed.
    pub fn release(&self) {
        set_gate(&self.gate, false);
        set_gate(&self.read_gate, false);
    }
}

/// The sysfs record of simulated controller `name`.
fn simulated_dc(s: &SimState, name: &str) -> Option<ControllerInfo> {
    let (o, key) = s.controllers.get(name)?;
    Some(ControllerInfo {
        dctype: s.dcs.get(key).and_then(|d| d.dctype),
        ..stas_daemon::kernel::simulated_controller(name, o, CntrlType::Discovery)
    })
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
            .keys()
            .filter_map(|name| simulated_dc(&s, name))
            .collect())
    }

    fn controller(&self, name: &str) -> Result<Option<ControllerInfo>, KernelError> {
        let mut s = self.state();
        s.reads += 1;
        Ok(simulated_dc(&s, name))
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
        {
            let (lock, cv) = &*self.gate;
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
        let key = (
            opts.traddr.clone().unwrap_or_default(),
            opts.trsvcid.clone().unwrap_or_default(),
        );
        if !s.dcs.get(&key).is_some_and(|d| d.reachable) {
            return Err(KernelError::Connect {
                failure: ConnectFailure::Refused,
                options: format!("traddr={}", key.0),
            });
        }
        let instance = s.next_instance;
        s.next_instance += 1;
        s.controllers
            .insert(format!("nvme{instance}"), (opts.clone(), key));
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
        self.state()
            .names
            .get(host)
            .cloned()
            .ok_or_else(|| format!("cannot resolve {host}: unknown host"))
    }
}

impl Kernel for SimKernel {
    fn dc_type(&self, device: &str) -> Result<DcType, KernelError> {
        Ok(self.dc_of(device)?.dctype.unwrap_or(DcType::None))
    }

    fn register(&self, device: &str, tas: Tas, data: &DimData) -> Result<u32, KernelError> {
        let dc = self.dc_of(device)?;
        let wire = data.emit().map_err(|source| KernelError::Proto {
            what: "DIM".into(),
            source,
        })?;
        let received = DimData::parse(&wire).map_err(|source| KernelError::Proto {
            what: "DIM".into(),
            source,
        })?;
        let mut s = self.state();
        s.registrations.push((device.into(), tas));
        s.dim_payloads.push(received);
        drop(s);
        if let Some(errno) = dc.dim_errno {
            return Err(KernelError::Ioctl {
                command: "discovery information management".into(),
                device: device.into(),
                errno,
            });
        }
        match dc.dim_status {
            Some(s) => Err(KernelError::Nvme {
                command: "discovery information management".into(),
                device: device.into(),
                status: NvmeStatus(s),
            }),
            None => Ok(0),
        }
    }

    fn supported_log_pages(&self, device: &str) -> Result<SupportedLogPages, KernelError> {
        let dc = self.dc_of(device)?;
        self.state().lid0_reads += 1;
        match dc.lid0 {
            Some(bits) => {
                let mut p = SupportedLogPages::default();
                p.set(LID_DISCOVERY, LidSupport(1 | (u32::from(bits) << 16)));
                Ok(p)
            }
            None => Err(KernelError::Nvme {
                command: "get log page 0x00".into(),
                device: device.into(),
                status: NvmeStatus(0x6002),
            }),
        }
    }

    fn discovery_log(&self, device: &str, lsp: u8) -> Result<DiscoveryLogPage, KernelError> {
        wait_open(&self.read_gate);
        let dc = self.dc_of(device)?;
        self.state().log_reads.push((device.into(), lsp));
        if let Some(errno) = dc.log_errno {
            return Err(KernelError::Ioctl {
                command: "get log page 0x70".into(),
                device: device.into(),
                errno,
            });
        }
        let mut raw =
            emit_log_page(dc.genctr, 0, &dc.entries).map_err(|source| KernelError::Proto {
                what: "sim".into(),
                source,
            })?;
        for i in &dc.bad_entries {
            // TRADDR is at offset 512 of each 1024-byte entry.
            let at = i.saturating_mul(ENTRY_LEN).saturating_add(HEADER_LEN + 512);
            if let Some(b) = raw.get_mut(at) {
                *b = 0xff;
            }
        }
        DiscoveryLogPage::parse(&raw).map_err(|source| KernelError::Proto {
            what: "sim".into(),
            source,
        })
    }

    fn nbft_tables(&self) -> Vec<(std::path::PathBuf, Vec<u8>)> {
        self.state()
            .nbft
            .iter()
            .enumerate()
            .map(|(i, b)| (std::path::PathBuf::from(format!("/sim/NBFT{i}")), b.clone()))
            .collect()
    }

    fn interface_with_mac(&self, _mac: &[u8; 6]) -> Option<String> {
        None
    }

    fn forward_to_nvme_cli(&self, instance: &str) {
        self.state().forwarded.push(instance.to_owned());
    }
}

/// A simulation with `n` reachable DCs (10.0.x.y), each listing 8 NVM
/// subsystems, and the configuration that names them all.
pub fn populated(n: usize) -> (Arc<SimKernel>, stas_config::StafdConfig) {
    let sim = SimKernel::new();
    let mut text = String::from("[Controllers]\n");
    for i in 0..n {
        let traddr = stas_daemon::sim_host_address(10, 0, i);
        let entries = (0..8)
            .map(|k| DiscoveryLogEntry {
                traddr: format!("10.200.{}.{k}", i % 256),
                trsvcid: "4420".into(),
                subnqn: format!("nqn.2024-01.io.sim:dc{i}:sub{k}"),
                ..DiscoveryLogEntry::default()
            })
            .collect();
        sim.add_dc(&traddr, "8009", DcType::None, entries);
        text.push_str(&format!("controller = transport=tcp;traddr={traddr}\n"));
    }
    let cfg = stas_config::parse_stafd(&text, "--sim")
        .map(|(c, _)| c)
        .unwrap_or_default();
    (sim, cfg)
}

/// A host identity for simulations.
pub fn host() -> crate::dc::HostInfo {
    crate::dc::HostInfo {
        hostnqn: "nqn.2014-08.org.nvmexpress:uuid:00000000-0000-4000-8000-000000000001".into(),
        hostid: "00000000-0000-4000-8000-000000000001".into(),
        hostid_bytes: None,
        hostname: "sim".into(),
        os_version: "Linux sim".into(),
        symname: None,
    }
}
