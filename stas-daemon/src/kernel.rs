//! The kernel operations both daemons make, as a blocking trait: the seam
//! between their logic and the kernel. [`SystemFabric`] is the real one
//! (nvmf-kernel); tests and `--sim` use in-memory fakes. The daemons run
//! these calls on tokio's bounded blocking pool, never on the event loop.

use std::net::{IpAddr, ToSocketAddrs};

use nvmf_kernel::fabrics::{ConnectOptions, Connected, Fabrics, SupportedOptions};
use nvmf_kernel::sysfs::{ControllerInfo, Sysfs};
use nvmf_kernel::{KernelError, KernelPaths};

use stas_tid::matching::{Interface, InterfaceTable};

/// What both stafd and stacd ask of the kernel. All calls may block.
pub trait FabricKernel: Send + Sync + 'static {
    /// The connect options the kernel accepts.
    fn supported_options(&self) -> Result<SupportedOptions, KernelError>;
    /// The controllers that exist, every attribute (a full sysfs scan: the
    /// daemons make one at start and one after lost events, see
    /// [`crate::inventory`]).
    fn controllers(&self) -> Result<Vec<ControllerInfo>, KernelError>;
    /// What identifies one controller (transport, address, NQNs, state,
    /// type), read from its own sysfs directory; None if it is gone.
    fn controller(&self, name: &str) -> Result<Option<ControllerInfo>, KernelError>;

    /// Network interfaces and their addresses.
    fn interfaces(&self) -> InterfaceTable;
    /// Connects a controller (seconds).
    fn connect(
        &self,
        opts: &ConnectOptions,
        supported: &SupportedOptions,
    ) -> Result<Connected, KernelError>;
    /// Deletes a controller.
    fn disconnect(&self, device: &str) -> Result<(), KernelError>;
    /// Resolves a host name (getaddrinfo).
    fn resolve(&self, host: &str) -> Result<Vec<IpAddr>, ResolveError>;
}

/// A host name that did not resolve.
#[derive(Debug, thiserror::Error)]
#[error("cannot resolve {host}: {source}")]
pub struct ResolveError {
    /// The name.
    pub host: String,
    /// What the resolver said.
    #[source]
    pub source: std::io::Error,
}

/// The running kernel under `paths`.
#[derive(Debug, Clone)]
pub struct SystemFabric {
    /// Where /dev and /sys are.
    pub paths: KernelPaths,
}

impl FabricKernel for SystemFabric {
    fn supported_options(&self) -> Result<SupportedOptions, KernelError> {
        Fabrics::new(&self.paths).supported_options()
    }

    fn controllers(&self) -> Result<Vec<ControllerInfo>, KernelError> {
        Sysfs::new(&self.paths).controllers()
    }

    fn controller(&self, name: &str) -> Result<Option<ControllerInfo>, KernelError> {
        Sysfs::new(&self.paths).controller_identity(name)
    }

    fn interfaces(&self) -> InterfaceTable {
        let interfaces = nvmf_kernel::netif::interfaces()
            .unwrap_or_default()
            .into_iter()
            .map(|i| Interface {
                name: i.name,
                addrs: i.addrs,
            })
            .collect();
        InterfaceTable { interfaces }
    }

    fn connect(
        &self,
        opts: &ConnectOptions,
        supported: &SupportedOptions,
    ) -> Result<Connected, KernelError> {
        let (connected, options) = Fabrics::new(&self.paths).connect(opts, supported)?;
        for d in options.dropped {
            log::debug!(
                "connect {}: option {} not sent: {}",
                opts.traddr.as_deref().unwrap_or(""),
                d.name,
                d.reason
            );
        }
        Ok(connected)
    }

    fn disconnect(&self, device: &str) -> Result<(), KernelError> {
        Sysfs::new(&self.paths).delete_controller(device)
    }

    fn resolve(&self, host: &str) -> Result<Vec<IpAddr>, ResolveError> {
        (host, 0u16)
            .to_socket_addrs()
            .map(|it| it.map(|sa| sa.ip()).collect())
            .map_err(|source| ResolveError {
                host: host.into(),
                source,
            })
    }
}

/// Resolves the host names among the `traddr`s of configured TCP/RDMA
/// controllers (§3.10) on the blocking pool, keeping addresses of the
/// enabled families; drops (and logs) what cannot be used.
pub async fn resolve_configured(
    kernel: std::sync::Arc<dyn FabricKernel>,
    family: stas_config::IpFamily,
    tids: Vec<stas_tid::Tid>,
) -> Vec<stas_tid::Tid> {
    let mut out = Vec::with_capacity(tids.len());
    for mut tid in tids {
        if !matches!(tid.transport.as_str(), "tcp" | "rdma") {
            out.push(tid);
            continue;
        }
        if tid.traddr.is_empty() {
            log::error!("Invalid traddr: {tid}");
            continue;
        }
        let literal = stas_tid::parse_ip(&tid.traddr, false)
            .or_else(|| stas_tid::parse_scoped_ip(&tid.traddr, false).map(|(ip, _)| ip));
        if let Some(ip) = literal {
            if family.allows(&ip) {
                out.push(tid);
            } else {
                log::warn!(
                    "Excluding configured IP address {} based on \"ip-family\" setting",
                    tid.traddr
                );
            }
            continue;
        }
        let k = kernel.clone();
        let host = tid.traddr.clone();
        let addrs = tokio::task::spawn_blocking(move || k.resolve(&host))
            .await
            .unwrap_or_else(|e| {
                Err(ResolveError {
                    host: tid.traddr.clone(),
                    source: std::io::Error::other(e),
                })
            });
        match addrs {
            Ok(addrs) => {
                let pick = addrs
                    .iter()
                    .find(|a| family.v4 && a.is_ipv4())
                    .or_else(|| addrs.iter().find(|a| family.v6 && a.is_ipv6()));
                if let Some(a) = pick {
                    tid.traddr = a.to_string();
                    out.push(tid);
                }
            }
            Err(e) => log::error!("{e}"),
        }
    }
    out
}

/// The connect options `kernel` accepts (the legacy set when it cannot
/// say), warning when any of `needed` is missing.
pub fn probe_options(kernel: &dyn FabricKernel, needed: &[&str]) -> SupportedOptions {
    let supported = kernel.supported_options().unwrap_or_else(|e| {
        log::warn!("Cannot determine which NVMe options the kernel supports: {e}");
        SupportedOptions::legacy()
    });
    if needed.iter().any(|o| !supported.contains(o)) {
        log::warn!(
            "The kernel does not appear to support all the options needed ({}); consider updating",
            needed.join(", ")
        );
    }
    supported
}
