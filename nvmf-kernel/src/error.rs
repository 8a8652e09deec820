//! The one error type of nvmf-kernel.

use std::path::PathBuf;

use nix::errno::Errno;
use nvmf_proto::ProtoError;
use thiserror::Error;

/// Why a connect write to /dev/nvme-fabrics failed, from its errno
/// (docs/kernel-interface.md §1.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConnectFailure {
    /// EALREADY: an identical controller exists.
    AlreadyConnected,
    /// ECONNREFUSED: nothing listens there.
    Refused,
    /// ETIMEDOUT / EAGAIN: the target did not answer in time.
    TimedOut,
    /// EIO: the target answered the setup with an NVMe error (wrong NQN, host not allowed, ...).
    TargetRejected,
    /// EINVAL: the kernel refused the option string.
    InvalidOptions,
    /// ENOKEY: TLS was asked for but no key is available.
    NoKey,
    /// ENODEV: host_iface names no interface, or the controller never became ready.
    NoDevice,
    /// EADDRNOTAVAIL: host_traddr is not a local address.
    AddressNotAvailable,
    /// EHOSTUNREACH / ENETUNREACH.
    Unreachable,
    /// ECONNRESET: the peer closed during connection setup.
    Reset,
    /// ENOMEM: the option string is too long, or a unique-NQN discovery
    /// controller was connected without `discovery`.
    NoMemory,
    /// Any other errno.
    Other(Errno),
}

impl ConnectFailure {
    /// Classifies a connect errno.
    pub fn from_errno(e: Errno) -> Self {
        match e {
            Errno::EALREADY => Self::AlreadyConnected,
            Errno::ECONNREFUSED => Self::Refused,
            Errno::ETIMEDOUT | Errno::EAGAIN => Self::TimedOut,
            Errno::EIO => Self::TargetRejected,
            Errno::EINVAL => Self::InvalidOptions,
            Errno::ENOKEY => Self::NoKey,
            Errno::ENODEV => Self::NoDevice,
            Errno::EADDRNOTAVAIL => Self::AddressNotAvailable,
            Errno::EHOSTUNREACH | Errno::ENETUNREACH => Self::Unreachable,
            Errno::ECONNRESET => Self::Reset,
            Errno::ENOMEM => Self::NoMemory,
            other => Self::Other(other),
        }
    }

    /// What an admin can do about it.
    pub fn advice(self) -> &'static str {
        match self {
            Self::AlreadyConnected => "the controller is already connected; use the existing one",
            Self::Refused => "nothing listens at that address and port; check traddr/trsvcid and the target",
            Self::TimedOut => "the target did not answer; check the network path and that the target is up",
            Self::TargetRejected => {
                "the target refused the connection; check the subsystem NQN and that this host NQN is allowed"
            }
            Self::InvalidOptions => "the kernel refused an option; check the values (see dmesg for the option it named)",
            Self::NoKey => "TLS needs a pre-shared key in the .nvme keyring",
            Self::NoDevice => "check host-iface names an existing interface, and the target's readiness",
            Self::AddressNotAvailable => "host-traddr must be an address of this host",
            Self::Unreachable => "no route to the target; check routing",
            Self::Reset => "the target closed the connection during setup",
            Self::NoMemory => "the option string is too long, or a unique discovery NQN needs the 'discovery' option",
            Self::Other(_) => "see dmesg for the kernel's reason",
        }
    }
}

impl std::fmt::Display for ConnectFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = match self {
            Self::AlreadyConnected => "already connected",
            Self::Refused => "connection refused",
            Self::TimedOut => "timed out",
            Self::TargetRejected => "rejected by the target",
            Self::InvalidOptions => "invalid options",
            Self::NoKey => "no TLS key",
            Self::NoDevice => "no such device or interface",
            Self::AddressNotAvailable => "host address not available",
            Self::Unreachable => "unreachable",
            Self::Reset => "connection reset",
            Self::NoMemory => "out of memory or options too long",
            Self::Other(e) => return write!(f, "{e}"),
        };
        f.write_str(s)
    }
}

/// An NVMe completion status as the passthrough ioctl returns it: the CQE
/// status field without the phase bit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NvmeStatus(pub u16);

impl NvmeStatus {
    /// The decoded status field (nvmf-proto owns the bit layout).
    pub fn status(self) -> nvmf_proto::command::Status {
        nvmf_proto::command::Status::from_field(self.0)
    }

    /// Status code (bits 7:0).
    pub fn sc(self) -> u8 {
        self.status().sc
    }

    /// Status code type (bits 10:8).
    pub fn sct(self) -> u8 {
        self.status().sct
    }

    /// Command retry delay (bits 12:11).
    pub fn crd(self) -> u8 {
        self.status().crd
    }

    /// More information in the error log (bit 13).
    pub fn more(self) -> bool {
        self.status().more
    }

    /// Do not retry (bit 14).
    pub fn dnr(self) -> bool {
        self.status().dnr
    }

    /// SCT and SC, without retry hints: what identifies the condition.
    pub fn code(self) -> u16 {
        self.0 & 0x07ff
    }

    /// Command specific 0x90 "Discover Restart": the log changed under a
    /// multi-command read; read it again.
    pub fn is_discover_restart(self) -> bool {
        self.code() == 0x190
    }

    /// A short description of common statuses.
    pub fn description(self) -> &'static str {
        match self.code() {
            0x000 => "success",
            0x001 => "invalid command opcode",
            0x002 => "invalid field in command",
            0x004 => "data transfer error",
            0x006 => "internal error",
            0x007 => "command abort requested",
            0x00b => "invalid namespace or format",
            0x190 => "discover restart",
            0x109 => "invalid log page",
            0x12f => "invalid discovery information",
            0x130 => "zoning data structure locked",
            0x131 => "zoning data structure not found",
            0x132 => "insufficient discovery resources",
            0x133 => "requested function disabled",
            0x134 => "zone group originator invalid",
            0x370 => "host path error (controller not live)",
            0x371 => "command aborted by host",
            _ => "NVMe error",
        }
    }
}

impl std::fmt::Display for NvmeStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "NVMe status {:#06x} ({}; sct {:#x} sc {:#04x}{})",
            self.0,
            self.description(),
            self.sct(),
            self.sc(),
            if self.dnr() { ", do not retry" } else { "" }
        )
    }
}

/// Everything that can go wrong talking to the kernel.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum KernelError {
    /// A file operation failed.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What was being done (`open`, `read`, `write`, ...).
        op: &'static str,
        /// On what.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// /dev/nvme-fabrics does not exist.
    #[error("{} not found: the nvme-fabrics module is not loaded (try `modprobe nvme-tcp`)", path.display())]
    FabricsMissing {
        /// The path looked for.
        path: PathBuf,
    },
    /// A connect failed.
    #[error("connect '{options}' failed: {failure}: {}", failure.advice())]
    Connect {
        /// The classified errno.
        failure: ConnectFailure,
        /// The option string written (secrets redacted).
        options: String,
    },
    /// The connect options cannot be expressed (a required option is missing,
    /// or a value would corrupt the option string).
    #[error("connect options: {0}")]
    BadOptions(String),
    /// The kernel's reply could not be understood.
    #[error("unexpected reply from {}: {text:?}", path.display())]
    BadReply {
        /// Where it came from.
        path: PathBuf,
        /// What it said.
        text: String,
    },
    /// An admin command completed with an NVMe error status.
    #[error("{command} on {device}: {status}")]
    Nvme {
        /// The command, e.g. `get log page 0x70`.
        command: String,
        /// The controller, e.g. `nvme0`.
        device: String,
        /// The status.
        status: NvmeStatus,
    },
    /// An admin command failed in the kernel (negative return).
    #[error("{command} on {device}: {errno}{}", if *errno == Errno::EINTR { " (the controller was reset while the command ran)" } else { "" })]
    Ioctl {
        /// The command.
        command: String,
        /// The controller.
        device: String,
        /// The errno.
        errno: Errno,
    },
    /// The discovery log kept changing while it was read.
    #[error("discovery log of {device} changed during each of {attempts} reads (GENCTR churn); try again later")]
    GenctrChurn {
        /// The controller.
        device: String,
        /// Reads attempted.
        attempts: u32,
    },
    /// The discovery log's entry count changed while GENCTR did not.
    #[error("discovery log of {device}: NUMREC changed from {before} to {after} without a GENCTR change")]
    NumrecChanged {
        /// The controller.
        device: String,
        /// Entries announced first.
        before: u64,
        /// Entries announced after reading them.
        after: u64,
    },
    /// The discovery log is larger than we are willing to read.
    #[error(
        "discovery log of {device} announces {numrec} entries, more than the limit of {limit}"
    )]
    LogTooLarge {
        /// The controller.
        device: String,
        /// Entries announced.
        numrec: u64,
        /// The limit.
        limit: u64,
    },
    /// Data from the kernel or the controller did not parse.
    #[error("{what}: {source}")]
    Proto {
        /// What was being parsed, and from where.
        what: String,
        /// Why it failed.
        #[source]
        source: ProtoError,
    },
    /// A sysfs attribute held something unexpected.
    #[error("{}: unexpected value {value:?}: {reason}", path.display())]
    BadAttribute {
        /// The attribute file.
        path: PathBuf,
        /// Its content.
        value: String,
        /// What was expected.
        reason: &'static str,
    },
    /// The controller is still being set up and cannot be deleted yet.
    #[error("{name}: busy (still connecting); delete it again in a moment")]
    Busy {
        /// The controller.
        name: String,
    },
    /// An mDNS socket operation failed.
    #[error(
        "mDNS {op} ({what}): {source}; mDNS needs UDP port 5353 and multicast on the interface"
    )]
    Mdns {
        /// The operation.
        op: &'static str,
        /// The socket or interface.
        what: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A socket could not be bound to a network interface (SO_BINDTODEVICE).
    #[error("cannot bind a socket to interface {interface}: {errno}{}", bind_advice(*.errno))]
    BindToDevice {
        /// The interface.
        interface: String,
        /// The errno.
        errno: Errno,
    },
    /// A netlink/uevent socket operation failed.
    #[error("uevent socket: {op}: {errno}")]
    Netlink {
        /// The operation.
        op: &'static str,
        /// The errno.
        errno: Errno,
    },
}

/// What to do about a failed SO_BINDTODEVICE.
fn bind_advice(errno: Errno) -> &'static str {
    match errno {
        Errno::ENODEV => " (no such interface: it may have gone away)",
        Errno::EPERM => " (needs CAP_NET_RAW on kernels before 5.7)",
        _ => "",
    }
}

impl KernelError {
    /// The NVMe status the controller answered with, when it answered
    /// (the command reached it and was refused).
    pub fn nvme_status(&self) -> Option<NvmeStatus> {
        match self {
            Self::Nvme { status, .. } => Some(*status),
            _ => None,
        }
    }

    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            op,
            path: path.into(),
            source,
        }
    }

    /// Whether this is "already connected" (EALREADY on connect).
    pub fn is_already_connected(&self) -> bool {
        matches!(
            self,
            Self::Connect {
                failure: ConnectFailure::AlreadyConnected,
                ..
            }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_fields() {
        let s = NvmeStatus(0x4002);
        assert_eq!(s.sc(), 2);
        assert_eq!(s.sct(), 0);
        assert!(s.dnr());
        assert_eq!(s.description(), "invalid field in command");
        assert_eq!(
            s.to_string(),
            "NVMe status 0x4002 (invalid field in command; sct 0x0 sc 0x02, do not retry)"
        );
        let r = NvmeStatus(0x190);
        assert!(r.is_discover_restart());
        assert_eq!(r.sct(), 1);
        assert_eq!(r.sc(), 0x90);
        assert!(!r.dnr());
        let c = NvmeStatus(0x3871);
        assert_eq!(c.crd(), 3);
        assert_eq!(c.code(), 0x071);
        assert!(NvmeStatus(0x2000).more());
    }

    #[test]
    fn connect_errno_classification_and_message() {
        assert_eq!(
            ConnectFailure::from_errno(Errno::EALREADY),
            ConnectFailure::AlreadyConnected
        );
        assert_eq!(
            ConnectFailure::from_errno(Errno::ECONNREFUSED),
            ConnectFailure::Refused
        );
        assert_eq!(
            ConnectFailure::from_errno(Errno::ENOKEY),
            ConnectFailure::NoKey
        );
        assert_eq!(
            ConnectFailure::from_errno(Errno::EPERM),
            ConnectFailure::Other(Errno::EPERM)
        );
        let e = KernelError::Connect {
            failure: ConnectFailure::InvalidOptions,
            options: "nqn=x,transport=tcp,bogus=1".into(),
        };
        let m = e.to_string();
        assert!(
            m.contains("nqn=x,transport=tcp,bogus=1") && m.contains("invalid options"),
            "{m}"
        );
        assert!(KernelError::Connect {
            failure: ConnectFailure::AlreadyConnected,
            options: String::new()
        }
        .is_already_connected());
    }
}
