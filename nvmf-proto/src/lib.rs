//! NVMe over Fabrics wire structures a discovery client reads and writes,
//! parsed and emitted byte-exact, with no I/O.
//!
//! Everything here comes from, or goes to, a network peer or firmware, so
//! every parser returns `Result` on any input and never panics; unknown
//! numeric codes are kept (`Other(u8)`) rather than rejected. The crate is
//! fuzzed (see `fuzz/` at the workspace root).
//!
//! | module | structure |
//! |---|---|
//! | [`dlp`] | discovery log page (LID 0x70) |
//! | [`aen`] | asynchronous event completion dword / `NVME_AEN` uevent value |
//! | [`identify`] | Identify Controller |
//! | [`logpages`] | Supported Log Pages (LID 0x00), LID 0x70 features, Get Log Page encoding |
//! | [`dim`] | Discovery Information Management (TP8010) payload |
//! | [`nbft`] | NVMe Boot Firmware Table (ACPI) |
//! | [`mdns`] | mDNS/DNS-SD messages (TP8009 zero-touch discovery) and their TXT records |
//! | [`tcp`] | NVMe/TCP PDUs: common header, ICReq/ICResp, capsules, data, R2T, TermReqs; CRC32C digests |
//! | [`command`] | submission and completion queue entries (SQE, CQE), status field, SGL descriptor |
//! | [`fabrics`] | fabrics commands (Connect and its data, Property Get/Set, Disconnect) |
//! | [`types`] | the shared numeric codes and their display strings |
//!
//! Bare § numbers refer to docs/behaviour.md and docs/upstream.md;
//! other documents are named where they are cited.
#![forbid(unsafe_code)]
#![deny(clippy::indexing_slicing)]

pub mod aen;
pub mod command;
pub mod dim;
pub mod dlp;
mod error;
pub mod fabrics;
pub mod identify;
pub mod logpages;
pub mod mdns;
pub mod nbft;
pub mod tcp;
pub mod types;
mod wire;

pub use error::ProtoError;
pub use wire::escape;

/// The well-known discovery subsystem NQN.
pub const WELL_KNOWN_DISCOVERY_NQN: &str = "nqn.2014-08.org.nvmexpress.discovery";
