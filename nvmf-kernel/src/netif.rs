//! The host's network interfaces and their addresses, in kernel order (the
//! first address of a family is the interface's primary one). Used to match
//! existing connections by host_traddr/host_iface (docs/behaviour.md §8.7).

use std::ffi::OsString;
use std::net::IpAddr;
use std::os::fd::AsFd;

use nix::ifaddrs::getifaddrs;
use nix::net::if_::{if_nametoindex, InterfaceFlags};
use nix::sys::socket::{setsockopt, sockopt};

use crate::KernelError;

/// One interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceAddrs {
    /// Interface name (`eth0`).
    pub name: String,
    /// Kernel interface index (what IPv6 scopes and multicast joins name);
    /// 0 if the interface vanished while being listed.
    pub index: u32,
    /// Its addresses, IPv4 and IPv6, in the order the kernel lists them.
    pub addrs: Vec<IpAddr>,
    /// Whether it is up.
    pub up: bool,
    /// Whether it supports multicast.
    pub multicast: bool,
    /// Whether it is a loopback interface.
    pub loopback: bool,
    /// Its hardware address, when it has one (Ethernet, loopback).
    pub mac: Option<[u8; 6]>,
}

/// The interface whose hardware address is `mac` (NBFT names NICs by MAC).
pub fn interface_with_mac(interfaces: &[InterfaceAddrs], mac: &[u8; 6]) -> Option<String> {
    interfaces
        .iter()
        .find(|i| i.mac.as_ref() == Some(mac))
        .map(|i| i.name.clone())
}

/// Lists every interface with its addresses (`getifaddrs`).
pub fn interfaces() -> Result<Vec<InterfaceAddrs>, KernelError> {
    let list = getifaddrs().map_err(|errno| KernelError::Netlink {
        op: "getifaddrs",
        errno,
    })?;
    let mut out: Vec<InterfaceAddrs> = Vec::new();
    for ifa in list {
        let idx = match out.iter().position(|i| i.name == ifa.interface_name) {
            Some(i) => i,
            None => {
                out.push(InterfaceAddrs {
                    name: ifa.interface_name.clone(),
                    index: if_nametoindex(ifa.interface_name.as_str()).unwrap_or(0),
                    addrs: Vec::new(),
                    up: ifa.flags.contains(InterfaceFlags::IFF_UP),
                    multicast: ifa.flags.contains(InterfaceFlags::IFF_MULTICAST),
                    loopback: ifa.flags.contains(InterfaceFlags::IFF_LOOPBACK),
                    mac: None,
                });
                out.len().saturating_sub(1)
            }
        };
        let addr = ifa.address.as_ref().and_then(|a| {
            a.as_sockaddr_in()
                .map(|s| IpAddr::V4(s.ip()))
                .or_else(|| a.as_sockaddr_in6().map(|s| IpAddr::V6(s.ip())))
        });
        let mac = ifa
            .address
            .as_ref()
            .and_then(|a| a.as_link_addr())
            .and_then(|l| l.addr());
        if let Some(entry) = out.get_mut(idx) {
            if let Some(a) = addr {
                entry.addrs.push(a);
            }
            if mac.is_some() {
                entry.mac = mac;
            }
        }
    }
    Ok(out)
}

/// Binds `socket` to `interface` (SO_BINDTODEVICE): its packets leave
/// through that interface whatever the routes say, as the reachability
/// probe of an mDNS-announced controller needs (docs/behaviour.md §10.5).
pub fn bind_to_device(socket: &impl AsFd, interface: &str) -> Result<(), KernelError> {
    setsockopt(socket, sockopt::BindToDevice, &OsString::from(interface)).map_err(|errno| {
        KernelError::BindToDevice {
            interface: interface.to_owned(),
            errno,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binds_to_an_interface_and_names_a_missing_one() {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        if crate::host::is_root() {
            bind_to_device(&socket, "lo").unwrap();
        }
        let e = bind_to_device(&socket, "stas-no-such0").unwrap_err();
        assert!(e.to_string().contains("interface stas-no-such0"), "{e}");
    }

    #[test]
    fn loopback_is_listed_with_its_address() {
        let all = interfaces().unwrap();
        let lo = all
            .iter()
            .find(|i| i.name == "lo")
            .expect("lo exists on Linux");
        assert!(lo.addrs.contains(&IpAddr::from([127, 0, 0, 1])), "{lo:?}");
        assert!(lo.loopback && lo.index > 0, "{lo:?}");
    }
}
