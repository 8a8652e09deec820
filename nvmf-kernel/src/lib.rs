//! The Linux kernel's NVMe over Fabrics host interface, without libnvme:
//!
//! | module | kernel interface |
//! |---|---|
//! | [`fabrics`] | `/dev/nvme-fabrics`: probe accepted options, connect |
//! | [`admin`] | `NVME_IOCTL_ADMIN_CMD` on `/dev/nvmeN`: Get Log Page (with the GENCTR protocol), Identify, Supported Log Pages, DIM |
//! | [`sysfs`] | `/sys/class/nvme`: enumerate controllers, read their attributes, delete them |
//! | [`uevent`] | `NETLINK_KOBJECT_UEVENT`: kernel uevents without udev |
//! | [`host`] | host identity: `/etc/nvme/hostnqn`, `hostid`, generating them; host name, OS version, root |
//! | [`netif`] | network interfaces and their addresses |
//! | [`mdns`] | the mDNS sockets: port 5353, group joins per interface, receiving interface, sending per interface |
//!
//! This is the only crate of the workspace that makes syscalls with
//! `unsafe`; every such block says why it is sound. Every filesystem root
//! (`/dev`, `/sys`, `/etc`) comes from [`KernelPaths`], so the logic runs on a
//! fake tree in tests. Calls that reach the kernel block (a connect for
//! seconds); the daemons call them off their event loop.
//!
//! Bare § numbers refer to docs/kernel-interface.md;
//! other documents are named where they are cited.
#![deny(clippy::indexing_slicing)]

pub mod admin;
mod error;
pub mod fabrics;
pub mod files;
pub mod host;
pub mod mdns;
pub mod netif;
pub mod sysfs;
pub mod uevent;

use std::path::{Path, PathBuf};

pub use error::{ConnectFailure, KernelError, NvmeStatus};
pub use nix::errno::Errno;
pub use nvmf_proto as proto;

/// Where the kernel's files are: the real roots by default, a scratch tree in tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelPaths {
    /// Device nodes (`/dev`).
    pub dev: PathBuf,
    /// sysfs (`/sys`).
    pub sys: PathBuf,
    /// Configuration (`/etc`).
    pub etc: PathBuf,
}

impl Default for KernelPaths {
    fn default() -> Self {
        Self::under(Path::new("/"))
    }
}

impl KernelPaths {
    /// `dev`, `sys` and `etc` below `root`.
    pub fn under(root: &Path) -> Self {
        Self {
            dev: root.join("dev"),
            sys: root.join("sys"),
            etc: root.join("etc"),
        }
    }

    /// The ACPI NBFT tables (`NBFT`, `NBFT1`, ...) and their bytes.
    pub fn nbft_tables(&self) -> Vec<(PathBuf, Vec<u8>)> {
        let dir = self.sys.join("firmware/acpi/tables");
        let mut out: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(&dir)
            .map(|rd| {
                rd.filter_map(Result::ok)
                    .filter(|e| e.file_name().to_string_lossy().starts_with("NBFT"))
                    // An ACPI table is at most a few KiB; 1 MiB bounds a
                    // corrupt one.
                    .filter_map(|e| {
                        let bytes = files::read_bounded(&e.path(), 1 << 20, files::Links::Refuse);
                        bytes.ok().flatten().map(|b| (e.path(), b))
                    })
                    .collect()
            })
            .unwrap_or_default();
        out.sort();
        out
    }

    /// `/dev/nvme-fabrics`.
    pub fn fabrics(&self) -> PathBuf {
        self.dev.join("nvme-fabrics")
    }

    /// The admin character device of controller `nvmeN`.
    pub fn controller_dev(&self, name: &str) -> PathBuf {
        self.dev.join(name)
    }
}
