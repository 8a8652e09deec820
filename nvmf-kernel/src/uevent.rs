//! Kernel uevents without udev (docs/kernel-interface.md §5.3): a
//! `NETLINK_KOBJECT_UEVENT` socket on multicast group 1, a pure parser for
//! its datagrams, and (feature `tokio`) an async stream.
//!
//! Lost events are never a silent gap: when the socket overflows (ENOBUFS)
//! the stream yields [`UeventItem::Lost`], and the caller resynchronises
//! from sysfs.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use nix::errno::Errno;
use nix::sys::socket::{
    bind, recvfrom, setsockopt, socket, sockopt, AddressFamily, NetlinkAddr, SockFlag,
    SockProtocol, SockType,
};
use nvmf_proto::aen::AenEvent;
use nvmf_proto::ProtoError;

use crate::KernelError;

/// The kernel's uevent multicast group (udevd re-broadcasts on 2).
pub const KERNEL_GROUP: u32 = 1;
/// Receive buffer asked for (udev uses 128 MiB; a few MiB hold thousands of events).
pub const DEFAULT_RCVBUF: usize = 8 << 20;

/// A uevent's action.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Action {
    /// `add`
    Add,
    /// `remove`
    Remove,
    /// `change`
    Change,
    /// `bind`
    Bind,
    /// `unbind`
    Unbind,
    /// `move`
    Move,
    /// `online`
    Online,
    /// `offline`
    Offline,
    /// Anything else.
    Other(String),
}

impl Action {
    fn parse(s: &str) -> Self {
        match s {
            "add" => Self::Add,
            "remove" => Self::Remove,
            "change" => Self::Change,
            "bind" => Self::Bind,
            "unbind" => Self::Unbind,
            "move" => Self::Move,
            "online" => Self::Online,
            "offline" => Self::Offline,
            o => Self::Other(o.to_owned()),
        }
    }
}

/// One kernel uevent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uevent {
    /// The action.
    pub action: Action,
    /// The device path (`/devices/virtual/nvme-fabrics/ctl/nvme0`).
    pub devpath: String,
    /// The environment, in the order received (keys are unique in practice;
    /// lookups take the first).
    pub env: Vec<(String, String)>,
}

/// Why a datagram is not a kernel uevent.
fn bad(reason: &'static str, raw: &[u8]) -> ProtoError {
    ProtoError::BadText {
        what: "uevent datagram",
        text: nvmf_proto::escape(raw.get(..raw.len().min(64)).unwrap_or_default()),
        reason,
    }
}

impl Uevent {
    /// Parses one datagram: `action@devpath\0KEY=VALUE\0...`. Datagrams from
    /// udevd (`libudev\0` header) are refused: this reads the kernel's own.
    pub fn parse(raw: &[u8]) -> Result<Self, ProtoError> {
        if raw.starts_with(b"libudev\0") {
            return Err(bad("a udevd re-broadcast, not a kernel event", raw));
        }
        let mut parts = raw.split(|&b| b == 0);
        let header = parts.next().unwrap_or_default();
        let header = std::str::from_utf8(header).map_err(|_| bad("header is not UTF-8", raw))?;
        let (action, devpath) = header
            .split_once('@')
            .ok_or_else(|| bad("header lacks '@'", raw))?;
        if action.is_empty() || !devpath.starts_with('/') {
            return Err(bad("header is not action@/devpath", raw));
        }
        let mut env = Vec::new();
        for item in parts.filter(|p| !p.is_empty()) {
            let item = std::str::from_utf8(item).map_err(|_| bad("variable is not UTF-8", raw))?;
            if let Some((k, v)) = item.split_once('=') {
                env.push((k.to_owned(), v.to_owned()));
            }
        }
        let ev = Self {
            action: Action::parse(action),
            devpath: devpath.to_owned(),
            env,
        };
        if let Some(a) = ev.get("ACTION") {
            if Action::parse(a) != ev.action {
                return Err(bad("ACTION differs from the header", raw));
            }
        }
        Ok(ev)
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.env
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// `SUBSYSTEM`.
    pub fn subsystem(&self) -> Option<&str> {
        self.get("SUBSYSTEM")
    }

    /// The device name: `DEVNAME`, else the last component of the path.
    pub fn devname(&self) -> &str {
        self.get("DEVNAME")
            .unwrap_or_else(|| self.devpath.rsplit('/').next().unwrap_or_default())
    }

    /// `SEQNUM`.
    pub fn seqnum(&self) -> Option<u64> {
        self.get("SEQNUM").and_then(|s| s.parse().ok())
    }

    /// Whether this is about an NVMe controller (not a subsystem, namespace or generic device).
    pub fn is_nvme_controller(&self) -> bool {
        self.subsystem() == Some("nvme")
    }

    /// `NVME_EVENT` (`connected`, `rediscover`).
    pub fn nvme_event(&self) -> Option<&str> {
        self.get("NVME_EVENT")
    }

    /// `NVME_AEN`, decoded.
    pub fn aen(&self) -> Option<Result<AenEvent, ProtoError>> {
        self.get("NVME_AEN").map(AenEvent::from_uevent_value)
    }
}

/// What a receive produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UeventItem {
    /// A kernel uevent.
    Event(Uevent),
    /// The socket overflowed: events were lost. Rescan sysfs and re-read
    /// every discovery log.
    Lost,
}

/// A netlink socket subscribed to the kernel's uevents.
#[derive(Debug)]
pub struct UeventSocket {
    fd: OwnedFd,
    /// Receive buffer size the kernel granted.
    pub rcvbuf: usize,
}

impl UeventSocket {
    /// Opens a non-blocking socket on group 1 and asks for a receive buffer
    /// of `rcvbuf` bytes (SO_RCVBUFFORCE when privileged, else SO_RCVBUF,
    /// capped by net.core.rmem_max). Subscribe before scanning sysfs, so no
    /// event falls between the scan and the subscription.
    pub fn open(rcvbuf: usize) -> Result<Self, KernelError> {
        let fd = socket(
            AddressFamily::Netlink,
            SockType::Datagram,
            SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
            SockProtocol::NetlinkKObjectUEvent,
        )
        .map_err(|errno| KernelError::Netlink {
            op: "socket",
            errno,
        })?;
        if setsockopt(&fd, sockopt::RcvBufForce, &rcvbuf).is_err() {
            // Unprivileged: the plain option, capped by rmem_max, is the best we get.
            let _ = setsockopt(&fd, sockopt::RcvBuf, &rcvbuf);
        }
        bind(fd.as_raw_fd(), &NetlinkAddr::new(0, KERNEL_GROUP))
            .map_err(|errno| KernelError::Netlink { op: "bind", errno })?;
        let granted = nix::sys::socket::getsockopt(&fd, sockopt::RcvBuf).unwrap_or(0);
        Ok(Self {
            fd,
            rcvbuf: granted,
        })
    }

    /// Receives one datagram without blocking.
    pub fn try_recv(&self) -> Result<Received, KernelError> {
        let mut buf = [0u8; 16384];
        loop {
            match recvfrom::<NetlinkAddr>(self.fd.as_raw_fd(), &mut buf) {
                Ok((n, from)) => {
                    // Only the kernel (port id 0) sends on group 1 legitimately.
                    if let Some(pid) = from.map(|a| a.pid()).filter(|pid| *pid != 0) {
                        return Ok(Received::Skipped(format!(
                            "datagram from userspace port {pid} dropped"
                        )));
                    }
                    let data = buf.get(..n).unwrap_or_default();
                    return Ok(match Uevent::parse(data) {
                        Ok(ev) => Received::Item(UeventItem::Event(ev)),
                        Err(e) => Received::Skipped(e.to_string()),
                    });
                }
                Err(Errno::EAGAIN) => return Ok(Received::Empty),
                Err(Errno::EINTR) => continue,
                Err(Errno::ENOBUFS) => return Ok(Received::Item(UeventItem::Lost)),
                Err(errno) => return Err(KernelError::Netlink { op: "recv", errno }),
            }
        }
    }
}

/// The outcome of one non-blocking receive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    /// An event, or news of lost events.
    Item(UeventItem),
    /// A datagram that is not a kernel uevent, and why (for debug logs).
    Skipped(String),
    /// Nothing pending.
    Empty,
}

impl AsFd for UeventSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsRawFd for UeventSocket {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.fd.as_raw_fd()
    }
}

#[cfg(feature = "tokio")]
pub use stream::UeventStream;

#[cfg(feature = "tokio")]
mod stream {
    use tokio::io::unix::AsyncFd;
    use tokio::io::Interest;

    use super::{Received, UeventItem, UeventSocket};
    use crate::KernelError;

    /// Kernel uevents as an async stream on the tokio reactor.
    #[derive(Debug)]
    pub struct UeventStream {
        inner: AsyncFd<UeventSocket>,
        nvme_only: bool,
        /// Datagrams dropped because they were not kernel uevents.
        pub skipped: u64,
        /// Why the last one was dropped, for debug logs.
        pub last_skipped: Option<String>,
    }

    impl UeventStream {
        /// Subscribes. With `nvme_only`, events of other subsystems are
        /// skipped. Must be called inside a tokio runtime.
        pub fn open(rcvbuf: usize, nvme_only: bool) -> Result<Self, KernelError> {
            let sock = UeventSocket::open(rcvbuf)?;
            // SAFETY: the socket owns its fd (an OwnedFd it never replaces or
            // closes early), so the descriptor stays open and the same for
            // as long as the AsyncFd owns the socket.
            let inner = unsafe { AsyncFd::register_with_interest(sock, Interest::READABLE) }
                .map_err(|e| KernelError::io("register", "uevent socket", e.into()))?;
            Ok(Self {
                inner,
                nvme_only,
                skipped: 0,
                last_skipped: None,
            })
        }

        /// The receive buffer size the kernel granted.
        pub fn rcvbuf(&self) -> usize {
            self.inner.get_ref().rcvbuf
        }

        /// The next item: an event, or [`UeventItem::Lost`].
        pub async fn next(&mut self) -> Result<UeventItem, KernelError> {
            loop {
                let mut guard = self
                    .inner
                    .readable()
                    .await
                    .map_err(|e| KernelError::io("poll", "uevent socket", e))?;
                loop {
                    match guard.get_inner().try_recv()? {
                        Received::Item(UeventItem::Event(ev))
                            if self.nvme_only && !ev.is_nvme_controller() => {}
                        Received::Item(item) => return Ok(item),
                        Received::Skipped(why) => {
                            self.skipped = self.skipped.saturating_add(1);
                            self.last_skipped = Some(why);
                        }
                        Received::Empty => {
                            guard.clear_ready();
                            break;
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(parts: &[&str]) -> Vec<u8> {
        let mut v = Vec::new();
        for p in parts {
            v.extend_from_slice(p.as_bytes());
            v.push(0);
        }
        v
    }

    #[test]
    fn aen_change_event() {
        let d = raw(&[
            "change@/devices/virtual/nvme-fabrics/ctl/nvme0",
            "ACTION=change",
            "DEVPATH=/devices/virtual/nvme-fabrics/ctl/nvme0",
            "SUBSYSTEM=nvme",
            "NVME_AEN=0x70f002",
            "MAJOR=241",
            "MINOR=0",
            "DEVNAME=nvme0",
            "NVME_TRTYPE=tcp",
            "NVME_TRADDR=127.0.0.1",
            "NVME_TRSVCID=8009",
            "NVME_HOST_TRADDR=none",
            "NVME_HOST_IFACE=none",
            "SEQNUM=4242",
        ]);
        let e = Uevent::parse(&d).unwrap();
        assert_eq!(e.action, Action::Change);
        assert!(e.is_nvme_controller());
        assert_eq!(e.devname(), "nvme0");
        assert_eq!(e.seqnum(), Some(4242));
        assert!(e.aen().unwrap().unwrap().is_discovery_log_change());
        assert_eq!(e.get("NVME_TRADDR"), Some("127.0.0.1"));
        assert_eq!(e.nvme_event(), None);
    }

    #[test]
    fn add_remove_and_connected() {
        let add = Uevent::parse(&raw(&[
            "add@/devices/virtual/nvme-fabrics/ctl/nvme3",
            "ACTION=add",
            "SUBSYSTEM=nvme",
        ]))
        .unwrap();
        assert_eq!(add.action, Action::Add);
        assert_eq!(
            add.devname(),
            "nvme3",
            "from DEVPATH when DEVNAME is absent"
        );
        let c = Uevent::parse(&raw(&[
            "change@/x/nvme3",
            "SUBSYSTEM=nvme",
            "NVME_EVENT=connected",
        ]))
        .unwrap();
        assert_eq!(c.nvme_event(), Some("connected"));
        let sub = Uevent::parse(&raw(&[
            "add@/devices/virtual/nvme-subsystem/nvme-subsys0",
            "SUBSYSTEM=nvme-subsystem",
        ]))
        .unwrap();
        assert!(!sub.is_nvme_controller());
        let other = Uevent::parse(&raw(&["weird@/x", "SUBSYSTEM=nvme"])).unwrap();
        assert_eq!(other.action, Action::Other("weird".into()));
    }

    #[test]
    fn not_kernel_events_are_refused() {
        let mut udev = b"libudev\0".to_vec();
        udev.extend_from_slice(&[0xfe, 0xed, 0xca, 0xfe, 0, 0]);
        assert!(Uevent::parse(&udev)
            .unwrap_err()
            .to_string()
            .contains("udevd"));
        for bad in [
            &b""[..],
            b"no-at-sign\0A=B\0",
            b"add@relative\0",
            b"@/x\0",
            b"add@/x\0\xff=\xfe\0",
            b"\xffadd@/x",
        ] {
            assert!(Uevent::parse(bad).is_err(), "{bad:?}");
        }
        assert!(
            Uevent::parse(&raw(&["add@/x", "ACTION=remove"])).is_err(),
            "inconsistent ACTION"
        );
    }

    #[test]
    fn variables_without_equals_are_ignored_and_bad_aen_reported() {
        let e = Uevent::parse(&raw(&[
            "change@/x/nvme1",
            "GARBAGE",
            "SUBSYSTEM=nvme",
            "NVME_AEN=zz",
        ]))
        .unwrap();
        assert_eq!(e.env.len(), 2);
        e.aen().unwrap().unwrap_err();
    }

    #[test]
    fn socket_opens_and_is_quiet() {
        // Netlink uevent sockets exist on any Linux, NVMe or not.
        let s = UeventSocket::open(DEFAULT_RCVBUF).unwrap();
        assert!(s.rcvbuf > 0);
        // No nvme events on the build host; whatever arrives must not error.
        let _ = s.try_recv().unwrap();
    }
}
