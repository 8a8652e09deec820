//! stafd's simulation (stratisd's `--sim` idea): discovery controllers with
//! log pages, registrations and failures in memory, on the shared
//! simulated kernel ([`stas_daemon::sim`]), so every branch of the pipeline
//! runs in a unit test with tokio's paused clock, including registration
//! and PLEO, which the kernel target cannot exercise.

use std::collections::BTreeMap;
use std::sync::Arc;

use nvmf_kernel::fabrics::ConnectOptions;
use nvmf_kernel::sysfs::ControllerInfo;
use nvmf_kernel::{ConnectFailure, Errno, KernelError, NvmeStatus};
use nvmf_proto::dim::{DimData, Tas};
use nvmf_proto::dlp::{emit_log_page, DiscoveryLogEntry, DiscoveryLogPage, ENTRY_LEN, HEADER_LEN};
use nvmf_proto::logpages::{LidSupport, SupportedLogPages, LID_DISCOVERY};
use nvmf_proto::types::{CntrlType, DcType};
use stas_daemon::sim::{config_naming, controller_record, host_address, SimPeers, HOST};

use crate::kernel::Kernel;

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

/// The discovery controllers a simulation has, and what they saw.
#[derive(Debug, Clone, Default)]
pub struct Dcs {
    /// Discovery controllers by (traddr, trsvcid).
    pub dcs: BTreeMap<(String, String), SimDc>,
    /// Registrations received (device, task).
    pub registrations: Vec<(String, Tas)>,
    /// Their payloads, as a DC would parse them off the wire.
    pub dim_payloads: Vec<DimData>,
    /// Log page reads (device, lsp).
    pub log_reads: Vec<(String, u8)>,
    /// Supported Log Pages reads.
    pub lid0_reads: u32,
    /// NBFT tables the firmware provides.
    pub nbft: Vec<Vec<u8>>,
    /// nvmf-connect@ instances started for unmanaged DCs.
    pub forwarded: Vec<String>,
}

/// The simulated kernel with stafd's discovery controllers.
pub type SimKernel = stas_daemon::sim::SimKernel<Dcs>;

/// Where a connect with `opts` lands: (traddr, trsvcid).
fn address(opts: &ConnectOptions) -> (String, String) {
    (
        opts.traddr.clone().unwrap_or_default(),
        opts.trsvcid.clone().unwrap_or_default(),
    )
}

impl SimPeers for Dcs {
    fn accept(&self, opts: &ConnectOptions) -> Result<(), KernelError> {
        let key = address(opts);
        if self.dcs.get(&key).is_some_and(|d| d.reachable) {
            return Ok(());
        }
        Err(KernelError::Connect {
            failure: ConnectFailure::Refused,
            options: format!("traddr={}", key.0),
        })
    }

    fn record(&self, name: &str, opts: &ConnectOptions) -> ControllerInfo {
        ControllerInfo {
            dctype: self.dcs.get(&address(opts)).and_then(|d| d.dctype),
            ..controller_record(name, opts, CntrlType::Discovery)
        }
    }
}

/// Setting up and changing discovery controllers.
pub trait DcSim {
    /// Adds (or replaces) a reachable DC.
    fn add_dc(&self, traddr: &str, trsvcid: &str, dctype: DcType, entries: Vec<DiscoveryLogEntry>);
    #[cfg(test)]
    /// Changes a DC.
    fn with_dc(&self, traddr: &str, f: impl FnOnce(&mut SimDc));
    #[cfg(test)]
    /// Holds every discovery log read until [`release`](Self::release).
    fn hold_reads(&self);
    #[cfg(test)]
    /// Lets held connects and reads proceed.
    fn release(&self);
    /// The DC behind kernel controller `device`.
    fn dc_of(&self, device: &str) -> Result<SimDc, KernelError>;
}

impl DcSim for SimKernel {
    fn add_dc(&self, traddr: &str, trsvcid: &str, dctype: DcType, entries: Vec<DiscoveryLogEntry>) {
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

    #[cfg(test)]
    fn with_dc(&self, traddr: &str, f: impl FnOnce(&mut SimDc)) {
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

    #[cfg(test)]
    fn hold_reads(&self) {
        self.reads.set(true);
    }

    #[cfg(test)]
    fn release(&self) {
        self.connects.set(false);
        self.reads.set(false);
    }

    fn dc_of(&self, device: &str) -> Result<SimDc, KernelError> {
        let s = self.state();
        let key = s
            .controllers
            .get(device)
            .map(address)
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
        self.reads.wait();
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
    let dc = |i| {
        let traddr = host_address(10, 0, i);
        let entries = (0..8)
            .map(|k| DiscoveryLogEntry {
                traddr: format!("10.200.{}.{k}", i % 256),
                trsvcid: "4420".into(),
                subnqn: format!("nqn.2024-01.io.sim:dc{i}:sub{k}"),
                ..DiscoveryLogEntry::default()
            })
            .collect();
        sim.add_dc(&traddr, "8009", DcType::None, entries);
        format!("transport=tcp;traddr={traddr}")
    };
    let cfg = config_naming(n, dc, stas_config::parse_stafd);
    (sim, cfg)
}

/// A host identity for simulations.
pub fn host() -> crate::dc::HostInfo {
    crate::dc::HostInfo {
        hostnqn: HOST.0.into(),
        hostid: HOST.1.into(),
        hostid_bytes: None,
        hostname: "sim".into(),
        os_version: "Linux sim".into(),
        symname: None,
    }
}
