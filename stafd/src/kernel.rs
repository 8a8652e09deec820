//! The seam between stafd's logic and the kernel: every kernel operation the
//! daemon makes, as a blocking call. [`SystemKernel`] is the real one
//! (nvmf-kernel); the tests use an in-memory fake. The service runs these
//! calls on tokio's bounded blocking pool, never on the event loop.

use std::net::IpAddr;

use nvmf_kernel::admin::{self, DiscoveryLogLimits, NvmeDevice};
use nvmf_kernel::fabrics::{ConnectOptions, Connected, SupportedOptions};
use nvmf_kernel::sysfs::{ControllerInfo, Sysfs};
use nvmf_kernel::{KernelError, KernelPaths};
use nvmf_proto::dim::{DimData, Tas};
use nvmf_proto::dlp::DiscoveryLogPage;
use nvmf_proto::logpages::SupportedLogPages;
use nvmf_proto::types::DcType;
pub use stas_daemon::kernel::FabricKernel;
use stas_daemon::kernel::{ResolveError, SystemFabric};
use stas_tid::matching::InterfaceTable;

/// Every kernel operation stafd makes: the shared ones and the discovery
/// controller's admin commands. All calls may block.
pub trait Kernel: FabricKernel {
    /// The discovery controller type of a connected controller (sysfs, else Identify).
    fn dc_type(&self, device: &str) -> Result<DcType, KernelError>;
    /// Sends a DIM registration command.
    fn register(&self, device: &str, tas: Tas, data: &DimData) -> Result<u32, KernelError>;
    /// Reads the Supported Log Pages log page.
    fn supported_log_pages(&self, device: &str) -> Result<SupportedLogPages, KernelError>;
    /// Reads the discovery log page with the GENCTR protocol.
    fn discovery_log(&self, device: &str, lsp: u8) -> Result<DiscoveryLogPage, KernelError>;
    /// The NBFT ACPI tables (path, bytes).
    fn nbft_tables(&self) -> Vec<(std::path::PathBuf, Vec<u8>)>;
    /// The interface with hardware address `mac`.
    fn interface_with_mac(&self, mac: &[u8; 6]) -> Option<String>;
    /// Starts nvme-cli's `nvmf-connect@<instance>.service` for a discovery
    /// controller stafd does not manage (what nvme-cli's masked udev rule
    /// would have done). Must not block.
    fn forward_to_nvme_cli(&self, instance: &str);
}

/// The running kernel.
#[derive(Debug, Clone)]
pub struct SystemKernel {
    fabric: SystemFabric,
    systemctl: Option<std::path::PathBuf>,
}

impl SystemKernel {
    /// The kernel under `paths`; `systemctl` for nvme-cli interop.
    pub fn new(paths: KernelPaths, systemctl: Option<std::path::PathBuf>) -> Self {
        Self {
            fabric: SystemFabric { paths },
            systemctl,
        }
    }

    fn device(&self, device: &str) -> Result<NvmeDevice, KernelError> {
        NvmeDevice::open(&self.fabric.paths.controller_dev(device))
    }
}

impl FabricKernel for SystemKernel {
    fn supported_options(&self) -> Result<SupportedOptions, KernelError> {
        self.fabric.supported_options()
    }

    fn controllers(&self) -> Result<Vec<ControllerInfo>, KernelError> {
        self.fabric.controllers()
    }

    fn controller(&self, name: &str) -> Result<Option<ControllerInfo>, KernelError> {
        self.fabric.controller(name)
    }

    fn interfaces(&self) -> InterfaceTable {
        self.fabric.interfaces()
    }

    fn connect(
        &self,
        opts: &ConnectOptions,
        supported: &SupportedOptions,
    ) -> Result<Connected, KernelError> {
        self.fabric.connect(opts, supported)
    }

    fn disconnect(&self, device: &str) -> Result<(), KernelError> {
        self.fabric.disconnect(device)
    }

    fn resolve(&self, host: &str) -> Result<Vec<IpAddr>, ResolveError> {
        self.fabric.resolve(host)
    }
}

impl Kernel for SystemKernel {
    fn dc_type(&self, device: &str) -> Result<DcType, KernelError> {
        if let Some(t) = Sysfs::new(&self.fabric.paths)
            .controller(device)?
            .and_then(|c| c.dctype)
        {
            return Ok(t);
        }
        // Kernels before 5.18 lack the attribute: ask the controller.
        let (_, id) = admin::identify_controller(&mut self.device(device)?)?;
        Ok(id.dctype)
    }

    fn register(&self, device: &str, tas: Tas, data: &DimData) -> Result<u32, KernelError> {
        admin::send_dim(&mut self.device(device)?, tas, data)
    }

    fn supported_log_pages(&self, device: &str) -> Result<SupportedLogPages, KernelError> {
        admin::supported_log_pages(&mut self.device(device)?)
    }

    fn discovery_log(&self, device: &str, lsp: u8) -> Result<DiscoveryLogPage, KernelError> {
        admin::read_discovery_log(
            &mut self.device(device)?,
            lsp,
            DiscoveryLogLimits::default(),
        )
        .map(|l| l.page)
    }

    fn nbft_tables(&self) -> Vec<(std::path::PathBuf, Vec<u8>)> {
        self.fabric.paths.nbft_tables()
    }

    fn interface_with_mac(&self, mac: &[u8; 6]) -> Option<String> {
        nvmf_kernel::netif::interface_with_mac(&nvmf_kernel::netif::interfaces().ok()?, mac)
    }

    fn forward_to_nvme_cli(&self, instance: &str) {
        let Some(systemctl) = &self.systemctl else {
            return;
        };
        let unit = format!("nvmf-connect@{instance}.service");
        match std::process::Command::new(systemctl)
            .args(["--quiet", "--no-block", "restart", &unit])
            .stdin(std::process::Stdio::null())
            .spawn()
        {
            // Reap it without waiting here: its exit status is ignored.
            Ok(mut child) => {
                std::thread::spawn(move || child.wait());
            }
            Err(e) => log::warn!("cannot run {}: {e}", systemctl.display()),
        }
    }
}
