//! stafd.conf, stacd.conf and sys.conf (docs/behaviour.md §3): options, daemon defaults,
//! validation, `controller=` / `exclude=` entries, and the effective
//! configuration `--check-config` prints.
//!
//! Loading a service file fails ([`ConfigError`]) only when the file cannot
//! be read or is not in the INI dialect: that is what "broken" means on
//! SIGHUP (keep the last good configuration). Everything else yields a
//! configuration plus [`Diagnostic`]s: unknown sections and options are
//! reported and ignored, invalid values are reported and replaced by the
//! daemon default, as upstream does. A missing file means all defaults.
//!
//! Deliberate differences from upstream (docs/upstream.md §18.2):
//!
//! * A key without `=` is an invalid value (default + diagnostic), not a
//!   crash; a bare `controller`/`exclude` line is ignored with a diagnostic.
//! * An unparsable `zeroconf-connections-persistence` is invalid (default 72
//!   hours + diagnostic) instead of crashing later; `nan` is invalid too.
//! * An invalid per-controller override is dropped with a diagnostic, so the
//!   `[Global]` value applies (upstream substitutes the daemon default, or
//!   passes the raw text to the kernel).
//! * A negative `connect-attempts-on-ncc` is invalid (default 0).
//! * Integer options are range-checked to what the kernel takes (`kato`
//!   0..=u32::MAX, `ctrl-loss-tmo` an i32, ...); upstream passes any integer.
//! * Controllers of every transport (including fc and loop) are kept.
//! * An `exclude=` entry with no usable field is ignored with a diagnostic
//!   (upstream excludes every controller with it).
//! * Upstream's silent behaviours get diagnostics but keep their meaning:
//!   inline `#` text is still part of the value, fields that do not split
//!   into exactly `key=value` are still dropped.
//!
//! Bare § numbers refer to docs/behaviour.md and docs/upstream.md;
//! other documents are named where they are cited.

mod error;
pub mod ini;
pub mod timespan;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::at_line;
pub use crate::error::ConfigError;
use crate::ini::{Ini, Value};

/// How serious a [`Diagnostic`] is (upstream's log level for it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Severity {
    /// Unknown sections and options (upstream logs them at ERROR).
    Error,
    /// Invalid or suspicious values (upstream: WARNING, or nothing).
    Warning,
}

/// A problem in a file that was nevertheless used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// Path of the file.
    pub file: String,
    /// 1-based line number, when known.
    pub line: Option<usize>,
    /// Section name (empty when not applicable).
    pub section: String,
    /// Option name, when the problem concerns one.
    pub option: Option<String>,
    /// What is wrong, what is accepted, and what was done instead.
    pub message: String,
    /// Log level.
    pub severity: Severity,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}: ", self.file, at_line(self.line))?;
        if !self.section.is_empty() {
            write!(f, "[{}] ", self.section)?;
        }
        if let Some(option) = &self.option {
            write!(f, "{option}: ")?;
        }
        f.write_str(&self.message)
    }
}

/// `[Global]` options both daemons share (docs/behaviour.md §3.5, §3.6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GlobalOptions {
    /// `tron`: trace on.
    pub tron: bool,
    /// `hdr-digest` (TCP).
    pub hdr_digest: bool,
    /// `data-digest` (TCP).
    pub data_digest: bool,
    /// `kato`, seconds; `None` = kernel default.
    pub kato: Option<u32>,
    /// `queue-size`, 16..=1024; `None` = kernel default.
    pub queue_size: Option<u32>,
    /// `reconnect-delay`, seconds; `None` = kernel default.
    pub reconnect_delay: Option<u32>,
    /// `ctrl-loss-tmo`, seconds, negative = forever; `None` = kernel default.
    pub ctrl_loss_tmo: Option<i32>,
    /// `disable-sqflow`; `None` = not passed.
    pub disable_sqflow: Option<bool>,
    /// `ignore-iface`.
    pub ignore_iface: bool,
    /// `ip-family`.
    pub ip_family: IpFamily,
    /// `nr-io-queues` (stacd only; always `None` for stafd).
    pub nr_io_queues: Option<u32>,
    /// `nr-write-queues` (stacd only).
    pub nr_write_queues: Option<u32>,
    /// `nr-poll-queues` (stacd only).
    pub nr_poll_queues: Option<u32>,
}

/// stafd's built-in `kato`.
const STAFD_KATO: u32 = 30;

impl GlobalOptions {
    /// stafd's defaults (`kato` 30).
    pub fn stafd_defaults() -> Self {
        Self {
            kato: Some(STAFD_KATO),
            ..Self::stacd_defaults()
        }
    }

    /// stacd's defaults (nothing passed to the kernel).
    pub fn stacd_defaults() -> Self {
        Self {
            tron: false,
            hdr_digest: false,
            data_digest: false,
            kato: None,
            queue_size: None,
            reconnect_delay: None,
            ctrl_loss_tmo: None,
            disable_sqflow: None,
            ignore_iface: false,
            ip_family: IpFamily::default(),
            nr_io_queues: None,
            nr_write_queues: None,
            nr_poll_queues: None,
        }
    }
}

/// `zeroconf-connections-persistence`: how long a lost mDNS discovery
/// controller is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Persistence {
    /// Negative values: never purged.
    Never,
    /// Purged this long after it is lost (zero: at once).
    After(Duration),
}

impl Persistence {
    /// How long, or None for never.
    pub fn duration(self) -> Option<Duration> {
        match self {
            Self::Never => None,
            Self::After(d) => Some(d),
        }
    }
}

/// Default `zeroconf-connections-persistence`: 72 hours.
const DEFAULT_PERSISTENCE: Persistence = Persistence::After(Duration::from_secs(72 * 3600));

impl fmt::Display for Persistence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Persistence::Never => f.write_str("-1"),
            Persistence::After(d) if d.subsec_nanos() == 0 => {
                let s = d.as_secs();
                if s > 0 && s % 3600 == 0 {
                    write!(f, "{}hours", s / 3600)
                } else {
                    write!(f, "{s}")
                }
            }
            Persistence::After(d) => write!(f, "{}", d.as_secs_f64()),
        }
    }
}

/// `[Service Discovery] mdns-backend`, a stas option: who browses mDNS for
/// discovery controllers (TP8009).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum MdnsBackend {
    /// Avahi when avahi-daemon owns its bus name, else the built-in querier.
    #[default]
    Auto,
    /// The built-in querier (no daemon needed).
    Builtin,
    /// avahi-daemon over D-Bus, as nvme-stas does.
    Avahi,
}

impl MdnsBackend {
    /// The configuration spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Builtin => "builtin",
            Self::Avahi => "avahi",
        }
    }
}

impl fmt::Display for MdnsBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A backend name that is none of `auto`, `builtin`, `avahi`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown mDNS backend {0:?}: expected auto, builtin or avahi")]
pub struct UnknownMdnsBackend(pub String);

impl std::str::FromStr for MdnsBackend {
    type Err = UnknownMdnsBackend;

    /// `auto`, `builtin` (also `built-in`) or `avahi`, in any case, blanks
    /// around ignored.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(Self::Auto),
            "builtin" | "built-in" => Ok(Self::Builtin),
            "avahi" => Ok(Self::Avahi),
            _ => Err(UnknownMdnsBackend(s.to_owned())),
        }
    }
}

/// `persistent` (stafd): whether stafd keeps a discovery controller
/// connected between log page reads, named after nvme-stas main's per-DC
/// key and nvme-cli's `--persistent`. Where a DC is not kept it is polled
/// ("parked" upstream): connect, register, read, disconnect, and again
/// after `epcsd-poll-interval-minutes`, its cached log page served between.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Persistent {
    /// Polled.
    No,
    /// Kept where the log page entry that describes the DC says it
    /// supports explicit persistent connections (EPCSD): its own "current
    /// discovery subsystem" entry, else the referral entry that led to it;
    /// polled otherwise.
    Auto,
    /// Kept whatever EPCSD says: what stafd and nvme-stas 2.x always did.
    #[default]
    Force,
}

impl Persistent {
    /// The configuration spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::No => "no",
            Self::Auto => "auto",
            Self::Force => "force",
        }
    }

    /// Parses the spelling; None for anything else.
    pub fn parse(v: &str) -> Option<Self> {
        [Self::No, Self::Auto, Self::Force]
            .into_iter()
            .find(|p| p.as_str() == v)
    }
}

impl fmt::Display for Persistent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Default `epcsd-poll-interval-minutes`: 15 (nvme-stas main, nvme-discoverd).
pub const DEFAULT_EPCSD_POLL_MINUTES: u32 = 15;

/// stacd `disconnect-scope` (docs/behaviour.md §7.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum DisconnectScope {
    /// `only-stas-connections`.
    #[default]
    OnlyStasConnections,
    /// `all-connections-matching-disconnect-trtypes`.
    AllConnectionsMatchingDisconnectTrtypes,
    /// `no-disconnect`.
    NoDisconnect,
}

impl DisconnectScope {
    /// The configuration spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OnlyStasConnections => "only-stas-connections",
            Self::AllConnectionsMatchingDisconnectTrtypes => {
                "all-connections-matching-disconnect-trtypes"
            }
            Self::NoDisconnect => "no-disconnect",
        }
    }
}

impl fmt::Display for DisconnectScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A transport `disconnect-trtypes` may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum TrType {
    /// `tcp`.
    Tcp,
    /// `rdma`.
    Rdma,
    /// `fc`.
    Fc,
}

impl TrType {
    /// The configuration spelling (also the kernel's transport name).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Rdma => "rdma",
            Self::Fc => "fc",
        }
    }
}

impl fmt::Display for TrType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One `controller=` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControllerSpec {
    /// Its fields (`nqn` already renamed `subsysnqn`; overrides validated
    /// and normalised, e.g. `TRUE` → `true`; secrets included).
    pub cid: Cid,
    /// Line it came from.
    pub line: usize,
}

/// stafd.conf.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StafdConfig {
    /// `[Global]`.
    pub global: GlobalOptions,
    /// `[Global] pleo` (enabled/disabled).
    pub pleo: bool,
    /// `[Service Discovery] zeroconf` (enabled/disabled).
    pub zeroconf: bool,
    /// `[Service Discovery] mdns-backend` (stas only): who browses mDNS.
    pub mdns_backend: MdnsBackend,
    /// `[Discovery controller connection management] persistent-connections`.
    pub persistent_connections: bool,
    /// `[Discovery controller connection management] zeroconf-connections-persistence`.
    pub zeroconf_persistence: Persistence,
    /// `[Discovery controller connection management] persistent`: the
    /// default for DCs whose `controller=` entry has no `persistent` field,
    /// and for DCs found over mDNS or through referrals.
    pub persistent: Persistent,
    /// `[Discovery controller connection management]
    /// epcsd-poll-interval-minutes`, in minutes (at least 1): how often a
    /// DC that is not kept connected is read.
    pub epcsd_poll_minutes: u32,
    /// `[Controllers] controller` entries in file order.
    pub controllers: Vec<ControllerSpec>,
    /// `[Controllers] exclude` entries (without `host-traddr`).
    pub excludes: Vec<Cid>,
}

impl StafdConfig {
    /// `epcsd-poll-interval-minutes` as a duration.
    pub fn epcsd_poll_interval(&self) -> Duration {
        Duration::from_secs(u64::from(self.epcsd_poll_minutes).saturating_mul(60))
    }
}

impl Default for StafdConfig {
    fn default() -> Self {
        Self {
            global: GlobalOptions::stafd_defaults(),
            pleo: true,
            zeroconf: true,
            mdns_backend: MdnsBackend::Auto,
            persistent_connections: true,
            zeroconf_persistence: DEFAULT_PERSISTENCE,
            persistent: Persistent::default(),
            epcsd_poll_minutes: DEFAULT_EPCSD_POLL_MINUTES,
            controllers: Vec::new(),
            excludes: Vec::new(),
        }
    }
}

/// stacd.conf.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StacdConfig {
    /// `[Global]`.
    pub global: GlobalOptions,
    /// `[I/O controller connection management] disconnect-scope`.
    pub disconnect_scope: DisconnectScope,
    /// `[I/O controller connection management] disconnect-trtypes`.
    pub disconnect_trtypes: BTreeSet<TrType>,
    /// `[I/O controller connection management] connect-attempts-on-ncc`
    /// (0 = never give up; never 1, which is raised to 2).
    pub connect_attempts_on_ncc: u32,
    /// `[Controllers] controller` entries in file order.
    pub controllers: Vec<ControllerSpec>,
    /// `[Controllers] exclude` entries (without `host-traddr`).
    pub excludes: Vec<Cid>,
}

impl Default for StacdConfig {
    fn default() -> Self {
        Self {
            global: GlobalOptions::stacd_defaults(),
            disconnect_scope: DisconnectScope::default(),
            disconnect_trtypes: BTreeSet::from([TrType::Tcp]),
            connect_attempts_on_ncc: 0,
            controllers: Vec::new(),
            excludes: Vec::new(),
        }
    }
}

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

mod effective;
mod reader;
mod sysconf;
mod values;

pub use reader::*;
pub use sysconf::*;
pub use values::*;

#[cfg(test)]
mod tests;
