//! The sockets of the built-in mDNS querier: one UDP socket per family on
//! port 5353 (shared with Avahi or another responder through
//! SO_REUSEADDR/SO_REUSEPORT), joined to 224.0.0.251 / ff02::fb on every
//! up, multicast, non-loopback interface, telling which interface each
//! packet came in on (IP_PKTINFO / IPV6_RECVPKTINFO) and sending on a chosen
//! interface. Multicast loop is on so a responder on this host is heard;
//! the hop limit is 255 as RFC 6762 §11 asks.
//!
//! socket2 sets the socket up (it can join a group by interface index for
//! both families, which nix cannot: nix's `Ipv6MembershipRequest` always
//! names interface 0 and its IPv4 one takes an address); nix reads and
//! writes the packet-info control messages (typed, which socket2 is not).
//! No `unsafe` here.

use std::collections::BTreeSet;
use std::io::{IoSlice, IoSliceMut};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::AsRawFd;
use std::time::Duration;

use nix::libc;
use nix::sys::socket::{
    recvmsg, sendmsg, setsockopt, sockopt, ControlMessage, ControlMessageOwned, MsgFlags,
    SockaddrIn, SockaddrStorage,
};
use nvmf_proto::mdns::{MDNS_GROUP_V4, MDNS_GROUP_V6, MDNS_PORT};
use socket2::{Domain, InterfaceIndexOrAddress, Protocol, SockAddr, Socket, Type};

use crate::netif::InterfaceAddrs;
use crate::KernelError;

/// An interface mDNS can run on, with what each family needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MdnsLink {
    /// Interface index.
    pub index: u32,
    /// Interface name.
    pub name: String,
    /// Its first IPv4 address, if any (IPv4 mDNS needs one).
    pub ipv4: Option<Ipv4Addr>,
    /// Whether it has an IPv6 link-local address (IPv6 mDNS needs one).
    pub ipv6_link_local: bool,
}

/// The interfaces mDNS should use: up, multicast-capable, not loopback,
/// with an address of at least one family.
pub fn mdns_links(interfaces: &[InterfaceAddrs]) -> Vec<MdnsLink> {
    interfaces
        .iter()
        .filter(|i| i.up && i.multicast && !i.loopback && i.index != 0)
        .map(|i| MdnsLink {
            index: i.index,
            name: i.name.clone(),
            ipv4: i.addrs.iter().find_map(|a| match a {
                IpAddr::V4(v4) => Some(*v4),
                IpAddr::V6(_) => None,
            }),
            ipv6_link_local: i
                .addrs
                .iter()
                .any(|a| matches!(a, IpAddr::V6(v6) if (v6.segments()[0] & 0xffc0) == 0xfe80)),
        })
        .filter(|l| l.ipv4.is_some() || l.ipv6_link_local)
        .collect()
}

/// A packet received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    /// Bytes in the buffer.
    pub len: usize,
    /// The interface it came in on.
    pub ifindex: u32,
    /// Who sent it (IPv6 link-local sources carry the interface as scope).
    pub source: SocketAddr,
    /// It did not fit the buffer and was cut.
    pub truncated: bool,
}

/// Which family's socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    /// The IPv4 socket.
    V4,
    /// The IPv6 socket.
    V6,
}

fn err(op: &'static str, what: impl Into<String>, source: std::io::Error) -> KernelError {
    KernelError::Mdns {
        op,
        what: what.into(),
        source,
    }
}

fn errno(op: &'static str, what: impl Into<String>, e: nix::errno::Errno) -> KernelError {
    err(op, what, std::io::Error::from(e))
}

fn open_socket(family: Family) -> Result<Socket, KernelError> {
    let (domain, what, bind) = match family {
        Family::V4 => (
            Domain::IPV4,
            "IPv4 mDNS socket",
            SocketAddr::from(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, MDNS_PORT)),
        ),
        Family::V6 => (
            Domain::IPV6,
            "IPv6 mDNS socket",
            SocketAddr::from(SocketAddrV6::new(
                std::net::Ipv6Addr::UNSPECIFIED,
                MDNS_PORT,
                0,
                0,
            )),
        ),
    };
    let s = Socket::new(domain, Type::DGRAM.cloexec(), Some(Protocol::UDP))
        .map_err(|e| err("create", what, e))?;
    s.set_reuse_address(true)
        .map_err(|e| err("set SO_REUSEADDR", what, e))?;
    s.set_reuse_port(true)
        .map_err(|e| err("set SO_REUSEPORT", what, e))?;
    match family {
        Family::V4 => {
            s.set_multicast_loop_v4(true)
                .map_err(|e| err("set IP_MULTICAST_LOOP", what, e))?;
            s.set_multicast_ttl_v4(255)
                .map_err(|e| err("set IP_MULTICAST_TTL", what, e))?;
            setsockopt(&s, sockopt::Ipv4PacketInfo, &true)
                .map_err(|e| errno("set IP_PKTINFO", what, e))?;
        }
        Family::V6 => {
            s.set_only_v6(true)
                .map_err(|e| err("set IPV6_V6ONLY", what, e))?;
            s.set_multicast_loop_v6(true)
                .map_err(|e| err("set IPV6_MULTICAST_LOOP", what, e))?;
            s.set_multicast_hops_v6(255)
                .map_err(|e| err("set IPV6_MULTICAST_HOPS", what, e))?;
            setsockopt(&s, sockopt::Ipv6RecvPacketInfo, &true)
                .map_err(|e| errno("set IPV6_RECVPKTINFO", what, e))?;
        }
    }
    s.set_nonblocking(true)
        .map_err(|e| err("set O_NONBLOCK", what, e))?;
    s.bind(&SockAddr::from(bind))
        .map_err(|e| err("bind port 5353", what, e))?;
    Ok(s)
}

/// Reads one usable packet without blocking; `None` when there is none
/// left (so an edge-triggered reactor may clear readiness).
fn try_recv(s: &Socket, buf: &mut [u8]) -> Result<Option<Received>, KernelError> {
    loop {
        let mut iov = [IoSliceMut::new(buf)];
        let mut cmsg = nix::cmsg_space!(libc::in6_pktinfo);
        let msg = match recvmsg::<SockaddrStorage>(
            s.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::MSG_DONTWAIT,
        ) {
            Ok(m) => m,
            Err(nix::errno::Errno::EAGAIN) => return Ok(None),
            Err(e) => return Err(errno("receive", "mDNS socket", e)),
        };
        let mut ifindex = 0u32;
        for c in msg
            .cmsgs()
            .map_err(|e| errno("read control messages", "mDNS socket", e))?
        {
            match c {
                ControlMessageOwned::Ipv4PacketInfo(i) => {
                    ifindex = u32::try_from(i.ipi_ifindex).unwrap_or(0);
                }
                ControlMessageOwned::Ipv6PacketInfo(i) => ifindex = i.ipi6_ifindex,
                _ => {}
            }
        }
        let source = msg.address.and_then(|a| {
            a.as_sockaddr_in()
                .map(|s| SocketAddr::V4(SocketAddrV4::new(s.ip(), s.port())))
                .or_else(|| {
                    a.as_sockaddr_in6().map(|s| {
                        SocketAddr::V6(SocketAddrV6::new(
                            s.ip(),
                            s.port(),
                            s.flowinfo(),
                            s.scope_id(),
                        ))
                    })
                })
        });
        // Without a sender or an interface a packet cannot be used; the
        // kernel always gives both, so skip it rather than fail.
        if let (Some(source), true) = (source, ifindex != 0) {
            return Ok(Some(Received {
                len: msg.bytes,
                ifindex,
                source,
                truncated: msg.flags.contains(MsgFlags::MSG_TRUNC),
            }));
        }
    }
}

/// Sends `bytes` to the mDNS group of `family` out of interface `ifindex`.
fn send_on(s: &Socket, family: Family, ifindex: u32, bytes: &[u8]) -> Result<(), KernelError> {
    match family {
        Family::V4 => {
            // IP_PKTINFO's interface overrides IP_MULTICAST_IF for this packet.
            let info = libc::in_pktinfo {
                ipi_ifindex: i32::try_from(ifindex).unwrap_or(0),
                ipi_spec_dst: libc::in_addr { s_addr: 0 },
                ipi_addr: libc::in_addr { s_addr: 0 },
            };
            let dest = SockaddrIn::from(SocketAddrV4::new(MDNS_GROUP_V4, MDNS_PORT));
            sendmsg(
                s.as_raw_fd(),
                &[IoSlice::new(bytes)],
                &[ControlMessage::Ipv4PacketInfo(&info)],
                MsgFlags::MSG_DONTWAIT,
                Some(&dest),
            )
            .map_err(|e| errno("send", format!("IPv4 mDNS query on interface {ifindex}"), e))?;
        }
        Family::V6 => {
            // The scope of the link-local group names the interface.
            let dest = SockAddr::from(SocketAddrV6::new(MDNS_GROUP_V6, MDNS_PORT, 0, ifindex));
            s.send_to(bytes, &dest)
                .map_err(|e| err("send", format!("IPv6 mDNS query on interface {ifindex}"), e))?;
        }
    }
    Ok(())
}

/// The two sockets and the groups joined on them (blocking-free; see
/// [`MdnsSockets::wait`] for a simple poll, or the tokio wrapper).
#[derive(Debug)]
pub struct MdnsSockets {
    v4: Option<Socket>,
    v6: Option<Socket>,
    joined_v4: BTreeSet<u32>,
    joined_v6: BTreeSet<u32>,
}

impl MdnsSockets {
    /// Opens both sockets. A family that cannot be opened (IPv6 disabled,
    /// say) is left out; it is an error only when neither opens, and then
    /// the error is the IPv4 one.
    pub fn open() -> Result<Self, KernelError> {
        let v4 = open_socket(Family::V4);
        let v6 = open_socket(Family::V6);
        let (v4, v6) = match (v4, v6) {
            (Err(e), Err(_)) => return Err(e),
            (v4, v6) => (v4.ok(), v6.ok()),
        };
        Ok(Self {
            v4,
            v6,
            joined_v4: BTreeSet::new(),
            joined_v6: BTreeSet::new(),
        })
    }

    /// Whether the socket of `family` is open.
    pub fn has(&self, family: Family) -> bool {
        match family {
            Family::V4 => self.v4.is_some(),
            Family::V6 => self.v6.is_some(),
        }
    }

    /// Joins the mDNS groups on the links given and leaves them on the
    /// others. Returns the links whose join failed, with the error, for the
    /// log; the rest are joined.
    pub fn set_links(&mut self, links: &[MdnsLink]) -> Vec<(String, KernelError)> {
        let mut failures = Vec::new();
        let want_v4: BTreeSet<u32> = links
            .iter()
            .filter(|l| l.ipv4.is_some())
            .map(|l| l.index)
            .collect();
        let want_v6: BTreeSet<u32> = links
            .iter()
            .filter(|l| l.ipv6_link_local)
            .map(|l| l.index)
            .collect();
        let name = |index: u32| {
            links
                .iter()
                .find(|l| l.index == index)
                .map_or_else(|| format!("#{index}"), |l| l.name.clone())
        };
        if let Some(s) = &self.v4 {
            for gone in self.joined_v4.difference(&want_v4) {
                // The interface may be gone, taking the membership with it.
                let _ =
                    s.leave_multicast_v4_n(&MDNS_GROUP_V4, &InterfaceIndexOrAddress::Index(*gone));
            }
            self.joined_v4.retain(|i| want_v4.contains(i));
            for new in want_v4.difference(&self.joined_v4.clone()) {
                match s.join_multicast_v4_n(&MDNS_GROUP_V4, &InterfaceIndexOrAddress::Index(*new)) {
                    Ok(()) => {
                        self.joined_v4.insert(*new);
                    }
                    Err(e) => failures.push((name(*new), err("join 224.0.0.251", name(*new), e))),
                }
            }
        }
        if let Some(s) = &self.v6 {
            for gone in self.joined_v6.difference(&want_v6) {
                let _ = s.leave_multicast_v6(&MDNS_GROUP_V6, *gone);
            }
            self.joined_v6.retain(|i| want_v6.contains(i));
            for new in want_v6.difference(&self.joined_v6.clone()) {
                match s.join_multicast_v6(&MDNS_GROUP_V6, *new) {
                    Ok(()) => {
                        self.joined_v6.insert(*new);
                    }
                    Err(e) => failures.push((name(*new), err("join ff02::fb", name(*new), e))),
                }
            }
        }
        failures
    }

    /// Whether the group of `family` is joined on `ifindex`.
    pub fn joined(&self, family: Family, ifindex: u32) -> bool {
        match family {
            Family::V4 => self.joined_v4.contains(&ifindex),
            Family::V6 => self.joined_v6.contains(&ifindex),
        }
    }

    /// Reads one packet from either socket without blocking.
    pub fn try_recv(&self, buf: &mut [u8]) -> Result<Option<Received>, KernelError> {
        for s in [&self.v4, &self.v6].into_iter().flatten() {
            if let Some(r) = try_recv(s, buf)? {
                return Ok(Some(r));
            }
        }
        Ok(None)
    }

    /// Waits up to `timeout` for a packet on either socket.
    pub fn wait(&self, timeout: Duration) -> Result<(), KernelError> {
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        use std::os::fd::AsFd;
        let mut fds: Vec<PollFd<'_>> = [&self.v4, &self.v6]
            .into_iter()
            .flatten()
            .map(|s| PollFd::new(s.as_fd(), PollFlags::POLLIN))
            .collect();
        let ms = u16::try_from(timeout.as_millis()).unwrap_or(u16::MAX);
        match poll(&mut fds, PollTimeout::from(ms)) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => Ok(()),
            Err(e) => Err(errno("poll", "mDNS sockets", e)),
        }
    }

    /// Sends `bytes` to the group of `family` on interface `ifindex`.
    pub fn send(&self, family: Family, ifindex: u32, bytes: &[u8]) -> Result<(), KernelError> {
        let s = match family {
            Family::V4 => &self.v4,
            Family::V6 => &self.v6,
        };
        match s {
            Some(s) => send_on(s, family, ifindex, bytes),
            None => Err(err(
                "send",
                format!("mDNS on interface {ifindex}"),
                std::io::Error::new(
                    std::io::ErrorKind::Unsupported,
                    "that family's socket is not open",
                ),
            )),
        }
    }
}

#[cfg(feature = "tokio")]
pub use asynchronous::AsyncMdnsSockets;

#[cfg(feature = "tokio")]
mod asynchronous {
    use tokio::io::unix::AsyncFd;
    use tokio::io::Interest;

    use super::{err, try_recv, Family, MdnsLink, MdnsSockets, Received};
    use crate::KernelError;

    /// [`MdnsSockets`] on the tokio reactor.
    #[derive(Debug)]
    pub struct AsyncMdnsSockets {
        // Declared before `inner` so they are dropped (deregistered) before
        // `inner` closes the descriptors they name.
        v4: Option<AsyncFd<std::os::fd::RawFd>>,
        v6: Option<AsyncFd<std::os::fd::RawFd>>,
        inner: MdnsSockets,
    }

    impl AsyncMdnsSockets {
        /// Opens the sockets ([`MdnsSockets::open`]) and registers them
        /// with the reactor. Must be called inside a tokio runtime.
        pub fn open() -> Result<Self, KernelError> {
            use std::os::fd::AsRawFd;
            let inner = MdnsSockets::open()?;
            let register = |s: &Option<socket2::Socket>| -> Result<_, KernelError> {
                s.as_ref()
                    .map(|s| {
                        // SAFETY: the descriptor is owned by the socket in
                        // `inner`, which is never closed or replaced while
                        // `self` lives and is dropped after this AsyncFd
                        // (field order), so the fd stays valid and the same
                        // for as long as the registration exists.
                        unsafe {
                            AsyncFd::register_with_interest(s.as_raw_fd(), Interest::READABLE)
                        }
                        .map_err(|e| err("register", "mDNS socket", e.into()))
                    })
                    .transpose()
            };
            let v4 = register(&inner.v4)?;
            let v6 = register(&inner.v6)?;
            Ok(Self { inner, v4, v6 })
        }

        /// See [`MdnsSockets::set_links`].
        pub fn set_links(&mut self, links: &[MdnsLink]) -> Vec<(String, KernelError)> {
            self.inner.set_links(links)
        }

        /// See [`MdnsSockets::has`].
        pub fn has(&self, family: Family) -> bool {
            self.inner.has(family)
        }

        /// The next packet from either socket.
        pub async fn recv(&self, buf: &mut [u8]) -> Result<Received, KernelError> {
            loop {
                let ready = match (&self.v4, &self.v6) {
                    (Some(a), Some(b)) => tokio::select! {
                        g = a.readable() => (g, Family::V4),
                        g = b.readable() => (g, Family::V6),
                    },
                    (Some(a), None) => (a.readable().await, Family::V4),
                    (None, Some(b)) => (b.readable().await, Family::V6),
                    (None, None) => return std::future::pending().await,
                };
                let (guard, family) = ready;
                let mut guard = guard.map_err(|e| err("poll", "mDNS socket", e))?;
                let socket = match family {
                    Family::V4 => self.inner.v4.as_ref(),
                    Family::V6 => self.inner.v6.as_ref(),
                };
                let Some(socket) = socket else { continue };
                match try_recv(socket, buf)? {
                    Some(r) => return Ok(r),
                    None => guard.clear_ready(),
                }
            }
        }

        /// Sends without waiting: a full socket buffer drops the packet
        /// (the error says so), which mDNS' retries absorb.
        pub fn send(&self, family: Family, ifindex: u32, bytes: &[u8]) -> Result<(), KernelError> {
            self.inner.send(family, ifindex, bytes)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iface(name: &str, index: u32, addrs: &[&str], flags: (bool, bool, bool)) -> InterfaceAddrs {
        InterfaceAddrs {
            name: name.into(),
            index,
            addrs: addrs.iter().map(|a| a.parse().unwrap()).collect(),
            up: flags.0,
            multicast: flags.1,
            loopback: flags.2,
            mac: None,
        }
    }

    #[test]
    fn links_are_up_multicast_non_loopback_interfaces_with_an_address() {
        let all = [
            iface("lo", 1, &["127.0.0.1", "::1"], (true, false, true)),
            iface(
                "eth0",
                2,
                &["fe80::1", "10.0.0.2", "10.0.0.3"],
                (true, true, false),
            ),
            iface("eth1", 3, &["2001:db8::1"], (true, true, false)),
            iface("eth2", 4, &["10.1.0.2"], (false, true, false)),
            iface("tun0", 5, &["10.2.0.2"], (true, false, false)),
            iface("eth3", 6, &["fe80::3"], (true, true, false)),
        ];
        let links = mdns_links(&all);
        assert_eq!(
            links,
            vec![
                MdnsLink {
                    index: 2,
                    name: "eth0".into(),
                    ipv4: Some(Ipv4Addr::new(10, 0, 0, 2)),
                    ipv6_link_local: true,
                },
                MdnsLink {
                    index: 6,
                    name: "eth3".into(),
                    ipv4: None,
                    ipv6_link_local: true,
                },
            ]
        );
    }

    /// Opening needs nothing special (port 5353 is shared); joining needs
    /// a multicast interface, which a build container may not have, so
    /// only the loopback send/receive path is checked when one exists.
    #[test]
    fn sockets_open_and_a_query_sent_on_a_link_comes_back_on_it() {
        let mut s = MdnsSockets::open().unwrap();
        assert!(s.has(Family::V4) || s.has(Family::V6));
        let links = mdns_links(&crate::netif::interfaces().unwrap());
        let failures = s.set_links(&links);
        assert!(failures.is_empty(), "{failures:?}");
        let Some(link) = links
            .iter()
            .find(|l| l.ipv4.is_some() && s.joined(Family::V4, l.index))
        else {
            eprintln!("no IPv4 multicast interface here: send/receive not exercised");
            return;
        };
        let probe = b"\x12\x34\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00";
        s.send(Family::V4, link.index, probe).unwrap();
        let mut buf = [0u8; 9000];
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        loop {
            assert!(
                std::time::Instant::now() < deadline,
                "our own query did not loop back"
            );
            s.wait(Duration::from_millis(100)).unwrap();
            if let Some(r) = s.try_recv(&mut buf).unwrap() {
                if buf[..r.len] == probe[..] {
                    assert_eq!(r.ifindex, link.index);
                    assert_eq!(r.source.port(), MDNS_PORT);
                    break;
                }
            }
        }
    }
}
