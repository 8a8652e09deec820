//! The Linux kernel's NVMe over Fabrics host interface, without libnvme:
//! `/dev/nvme-fabrics`, admin passthrough ioctls, sysfs and kernel uevents.
//!
//! This crate is the only one in the workspace that makes syscalls with
//! `unsafe`; every such block carries a `// SAFETY:` comment. It is filled in
//! by the nvmf-kernel issue; for now it re-exports the protocol crate.

pub use nvmf_proto as proto;
