//! What stafd and stacd share, one implementation each:
//!
//! | module | what |
//! |---|---|
//! | [`ini`] | nvme-stas's INI dialect (/etc/stas/*.conf) |
//! | [`config`] | stafd.conf, stacd.conf and sys.conf: options, defaults, validation, `controller=`/`exclude=` |
//! | [`timespan`] | the time-span syntax of `zeroconf-connections-persistence` |
//! | [`tid`] | transport IDs: defaults, identity, string and dict forms, exclusion, address filtering |
//! | [`matching`] | whether an existing kernel connection serves a transport ID (adopt, don't duplicate) |
//! | [`nbft`] | discovery controllers named by the boot firmware (NBFT) |
//! | [`lkc`] | the last-known-configuration file that survives daemon restarts |
//! | [`logging`] | stderr logging with syslog priorities for journald, `tron` at run time |
//! | [`notify`] | `sd_notify` without libsystemd |
//! | [`kernel`] | the kernel operations both daemons make (connect, list, delete), as a trait with a fake-able seam |
//! | [`dlpe`] | discovery log entries in nvme-stas's DLPE dict form and back |
//! | [`daemon`] | process plumbing both daemons share: runtime, start-up checks, `--check-config`, signals |
//! | [`dbus`] | the shapes both D-Bus APIs share: ordered dicts, Python's text forms, secrets |
//! | [`mdns`] | the built-in mDNS querier (TP8009 zero-touch discovery), as a pure state machine; its socket driver behind the feature `mdns-driver` |
//!
//! Nothing here makes syscalls of its own: the kernel and the network are
//! reached through nvmf-kernel (the kernel behind [`kernel::FabricKernel`]).

use std::collections::BTreeMap;

pub mod config;
pub mod daemon;
pub mod dbus;
pub mod dlpe;
pub mod ini;
pub mod kernel;
pub mod lkc;
pub mod logging;
pub mod matching;
pub mod mdns;
pub mod nbft;
pub mod notify;
pub mod tid;
pub mod timespan;

/// A controller described loosely, key → value, as in `controller=` lines,
/// sysfs and D-Bus dicts (`transport`, `traddr`, `trsvcid`, `subsysnqn`,
/// `host-traddr`, `host-iface`, `host-nqn`, plus per-controller options).
pub type Cid = BTreeMap<String, String>;

/// Which IP families a daemon uses (`ip-family`): `ipv4`, `ipv6`,
/// `ipv4+ipv6` / `ipv6+ipv4`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpFamily {
    /// IPv4 enabled.
    pub v4: bool,
    /// IPv6 enabled.
    pub v6: bool,
}

impl Default for IpFamily {
    fn default() -> Self {
        Self { v4: true, v6: true }
    }
}

impl IpFamily {
    /// Whether `addr`'s family is enabled.
    pub fn allows(&self, addr: &std::net::IpAddr) -> bool {
        match addr {
            std::net::IpAddr::V4(_) => self.v4,
            std::net::IpAddr::V6(_) => self.v6,
        }
    }
}

impl std::fmt::Display for IpFamily {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match (self.v4, self.v6) {
            (true, true) => "ipv4+ipv6",
            (true, false) => "ipv4",
            (false, true) => "ipv6",
            (false, false) => "none",
        })
    }
}
