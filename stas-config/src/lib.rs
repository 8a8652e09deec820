//! stafd.conf, stacd.conf and sys.conf (spec §3): options, daemon defaults,
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
//! Deliberate differences from upstream (spec §18.2):
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

/// `[Global]` options both daemons share (spec §3.5, §3.6).
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

/// stacd `disconnect-scope` (spec §7.4).
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

// ---------------------------------------------------------------------------
// Option tables

const GLOBAL: &str = "Global";
const SERVICE_DISCOVERY: &str = "Service Discovery";
const DC_MANAGEMENT: &str = "Discovery controller connection management";
const IOC_MANAGEMENT: &str = "I/O controller connection management";
const CONTROLLERS: &str = "Controllers";

/// Which daemon a file belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Daemon {
    Stafd,
    Stacd,
}

type Table = &'static [(&'static str, &'static [&'static str])];

/// Which file is being checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FileKind {
    Daemon(Daemon),
    SysConf,
}

impl FileKind {
    fn table(self) -> Table {
        match self {
            FileKind::Daemon(Daemon::Stafd) => STAFD_TABLE,
            FileKind::Daemon(Daemon::Stacd) => STACD_TABLE,
            FileKind::SysConf => SYSCONF_TABLE,
        }
    }

    fn file_name(self) -> &'static str {
        match self {
            FileKind::Daemon(Daemon::Stafd) => "stafd.conf",
            FileKind::Daemon(Daemon::Stacd) => "stacd.conf",
            FileKind::SysConf => "sys.conf",
        }
    }

    /// The other daemon's file, for "belongs in stacd.conf" hints.
    fn other(self) -> Option<FileKind> {
        match self {
            FileKind::Daemon(Daemon::Stafd) => Some(FileKind::Daemon(Daemon::Stacd)),
            FileKind::Daemon(Daemon::Stacd) => Some(FileKind::Daemon(Daemon::Stafd)),
            FileKind::SysConf => None,
        }
    }
}

const STAFD_TABLE: Table = &[
    (
        GLOBAL,
        &[
            "tron",
            "hdr-digest",
            "data-digest",
            "kato",
            "queue-size",
            "reconnect-delay",
            "ctrl-loss-tmo",
            "disable-sqflow",
            "ignore-iface",
            "ip-family",
            "pleo",
        ],
    ),
    (SERVICE_DISCOVERY, &["zeroconf", "mdns-backend"]),
    (
        DC_MANAGEMENT,
        &[
            "persistent-connections",
            "zeroconf-connections-persistence",
            "persistent",
            "epcsd-poll-interval-minutes",
        ],
    ),
    (CONTROLLERS, &["controller", "exclude"]),
];

const STACD_TABLE: Table = &[
    (
        GLOBAL,
        &[
            "tron",
            "hdr-digest",
            "data-digest",
            "kato",
            "nr-io-queues",
            "nr-write-queues",
            "nr-poll-queues",
            "queue-size",
            "reconnect-delay",
            "ctrl-loss-tmo",
            "disable-sqflow",
            "ignore-iface",
            "ip-family",
        ],
    ),
    (
        IOC_MANAGEMENT,
        &[
            "disconnect-scope",
            "disconnect-trtypes",
            "connect-attempts-on-ncc",
        ],
    ),
    (CONTROLLERS, &["controller", "exclude"]),
];

const SYSCONF_TABLE: Table = &[("Host", &["nqn", "id", "key", "symname"])];

/// Options removed from nvme-stas, with what replaced them (spec §3.12).
fn legacy_hint(daemon: Daemon, section: &str, option: &str) -> Option<&'static str> {
    match option {
        "persistent-connections" if daemon == Daemon::Stafd && section == GLOBAL => Some(
            "it moved to [Discovery controller connection management] in nvme-stas 2.1, \
             and the [Global] spelling is no longer read",
        ),
        "blacklist" => {
            Some("renamed to exclude= in nvme-stas 2.0; the old name is no longer accepted")
        }
        "sticky-connections" => Some(
            "replaced in nvme-stas 2.0 by disconnect-scope and disconnect-trtypes in \
             [I/O controller connection management]",
        ),
        "udev-rule" => {
            Some("removed in nvme-stas 2.1.3: stafd always overrides the nvme-cli udev rules")
        }
        _ => None,
    }
}

/// Where an unknown option probably belongs, if anywhere.
fn option_hint(kind: FileKind, section: &str, option: &str) -> Option<String> {
    if let FileKind::Daemon(d) = kind {
        if let Some(hint) = legacy_hint(d, section, option) {
            return Some(hint.to_owned());
        }
    }
    if let Some((s, _)) = kind.table().iter().find(|(_, opts)| opts.contains(&option)) {
        return Some(format!("{option} belongs in [{s}]"));
    }
    let other = kind.other()?;
    other
        .table()
        .iter()
        .any(|(_, opts)| opts.contains(&option))
        .then(|| format!("{option} is only valid in {}", other.file_name()))
}

// ---------------------------------------------------------------------------
// Value checks (spec §3.4)

/// How to check one kind of value: what is accepted, and a converter whose
/// error is a phrase completing `"<value>" ...`.
struct Check<T> {
    expected: &'static str,
    conv: fn(&str) -> Result<T, &'static str>,
}

impl<T> Check<T> {
    /// Converts, or explains why not (`"abc" is not an integer; expected ...`).
    fn apply(&self, v: &str) -> Result<T, String> {
        (self.conv)(v).map_err(|problem| format!("{v:?} {problem}; expected {}", self.expected))
    }
}

/// Python `int()` on stripped text: optional sign, ASCII digits, single `_`
/// between digits. Saturates instead of growing without bound.
fn py_int(text: &str) -> Option<i128> {
    let t = text.trim();
    let (negative, digits) = match t.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    if digits.is_empty()
        || digits.starts_with('_')
        || digits.ends_with('_')
        || digits.contains("__")
        || !digits.bytes().all(|b| b.is_ascii_digit() || b == b'_')
    {
        return None;
    }
    let mut n: i128 = 0;
    for d in digits.bytes().filter(u8::is_ascii_digit) {
        n = n.saturating_mul(10).saturating_add(i128::from(d - b'0'));
    }
    Some(if negative { -n } else { n })
}

fn conv_bool(v: &str) -> Result<bool, &'static str> {
    if v.eq_ignore_ascii_case("true") {
        Ok(true)
    } else if v.eq_ignore_ascii_case("false") {
        Ok(false)
    } else {
        Err("is not a boolean")
    }
}

fn conv_enabled(v: &str) -> Result<bool, &'static str> {
    if v.eq_ignore_ascii_case("enabled") {
        Ok(true)
    } else if v.eq_ignore_ascii_case("disabled") {
        Ok(false)
    } else {
        Err("is not valid")
    }
}

fn conv_u32(v: &str) -> Result<u32, &'static str> {
    let n = py_int(v).ok_or("is not an integer")?;
    u32::try_from(n).map_err(|_| "is out of range")
}

fn conv_i32(v: &str) -> Result<i32, &'static str> {
    let n = py_int(v).ok_or("is not an integer")?;
    i32::try_from(n).map_err(|_| "is out of range")
}

fn conv_queue_size(v: &str) -> Result<u32, &'static str> {
    let n = py_int(v).ok_or("is not an integer")?;
    u32::try_from(n)
        .ok()
        .filter(|n| (16..=1024).contains(n))
        .ok_or("is not within range 16..1024")
}

fn conv_ip_family(v: &str) -> Result<IpFamily, &'static str> {
    match v {
        "ipv4" => Ok(IpFamily {
            v4: true,
            v6: false,
        }),
        "ipv6" => Ok(IpFamily {
            v4: false,
            v6: true,
        }),
        "ipv4+ipv6" | "ipv6+ipv4" => Ok(IpFamily { v4: true, v6: true }),
        _ => Err("is not a valid IP family"),
    }
}

fn conv_scope(v: &str) -> Result<DisconnectScope, &'static str> {
    [
        DisconnectScope::OnlyStasConnections,
        DisconnectScope::AllConnectionsMatchingDisconnectTrtypes,
        DisconnectScope::NoDisconnect,
    ]
    .into_iter()
    .find(|s| s.as_str() == v)
    .ok_or("is not a valid scope")
}

fn conv_mdns_backend(v: &str) -> Result<MdnsBackend, &'static str> {
    match v {
        "auto" => Ok(MdnsBackend::Auto),
        "builtin" => Ok(MdnsBackend::Builtin),
        "avahi" => Ok(MdnsBackend::Avahi),
        _ => Err("is not valid"),
    }
}

fn conv_ncc(v: &str) -> Result<u32, &'static str> {
    let n = py_int(v).ok_or("is not an integer")?;
    // Deliberate fix (spec §18.2 #16): upstream accepts negatives, which
    // make stacd give up after the first failure; they are invalid here.
    if n < 0 {
        return Err("is negative");
    }
    let n = u32::try_from(n).map_err(|_| "is out of range")?;
    // Upstream raises 1 to 2 without a word: one attempt would never retry.
    Ok(if n == 1 { 2 } else { n })
}

fn conv_persistent(v: &str) -> Result<Persistent, &'static str> {
    Persistent::parse(v).ok_or("is not valid")
}

fn conv_poll_minutes(v: &str) -> Result<u32, &'static str> {
    let n = py_int(v).ok_or("is not an integer")?;
    // The poll is the only way back for a DC that is not kept connected:
    // "never" is no answer (nvme-stas main refuses 0 too).
    if n < 1 {
        return Err("is less than 1");
    }
    u32::try_from(n).map_err(|_| "is out of range")
}

fn conv_persistence(v: &str) -> Result<Persistence, &'static str> {
    let secs = timespan::parse(v).ok_or("is not a time span")?;
    if secs.is_nan() {
        return Err("is not a number");
    }
    if secs < 0.0 {
        return Ok(Persistence::Never);
    }
    // Beyond what a Duration holds (including inf) is "never" in practice.
    Ok(Duration::try_from_secs_f64(secs).map_or(Persistence::Never, Persistence::After))
}

const BOOL: Check<bool> = Check {
    expected: "true or false (any case)",
    conv: conv_bool,
};
const ENABLED: Check<bool> = Check {
    expected: "enabled or disabled (any case)",
    conv: conv_enabled,
};
const SECONDS: Check<u32> = Check {
    expected: "a whole number of seconds (0 to 4294967295)",
    conv: conv_u32,
};
const QUEUES: Check<u32> = Check {
    expected: "a whole number of queues",
    conv: conv_u32,
};
const QUEUE_SIZE: Check<u32> = Check {
    expected: "a whole number from 16 to 1024",
    conv: conv_queue_size,
};
const CTRL_LOSS_TMO: Check<i32> = Check {
    expected: "a whole number of seconds, or -1 to retry forever",
    conv: conv_i32,
};
const IP_FAMILY: Check<IpFamily> = Check {
    expected: "ipv4, ipv6, ipv4+ipv6 or ipv6+ipv4 (lower case)",
    conv: conv_ip_family,
};
const SCOPE: Check<DisconnectScope> = Check {
    expected: "only-stas-connections, all-connections-matching-disconnect-trtypes or no-disconnect",
    conv: conv_scope,
};
const MDNS_BACKEND: Check<MdnsBackend> = Check {
    expected: "auto, builtin or avahi (lower case)",
    conv: conv_mdns_backend,
};
const NCC: Check<u32> = Check {
    expected: "0 (never give up) or a whole number of attempts (1 counts as 2)",
    conv: conv_ncc,
};
const PERSISTENT: Check<Persistent> = Check {
    expected: "no, auto or force (lower case)",
    conv: conv_persistent,
};
const POLL_MINUTES: Check<u32> = Check {
    expected: "a whole number of minutes, at least 1",
    conv: conv_poll_minutes,
};
const PERSISTENCE: Check<Persistence> = Check {
    expected: "a time span such as 72hours, 3d5h, 1:30:00 or a number of seconds, \
               or -1 to keep them forever",
    conv: conv_persistence,
};

/// The per-controller overrides of `[Global]` options: validated like the
/// `[Global]` option and normalised (`None` when `key` is not one).
fn check_override(key: &str, v: &str) -> Option<Result<String, String>> {
    Some(match key {
        "hdr-digest" | "data-digest" | "disable-sqflow" => BOOL.apply(v).map(|b| b.to_string()),
        "kato" | "reconnect-delay" => SECONDS.apply(v).map(|n| n.to_string()),
        "nr-io-queues" | "nr-write-queues" | "nr-poll-queues" => {
            QUEUES.apply(v).map(|n| n.to_string())
        }
        "queue-size" => QUEUE_SIZE.apply(v).map(|n| n.to_string()),
        "ctrl-loss-tmo" => CTRL_LOSS_TMO.apply(v).map(|n| n.to_string()),
        _ => return None,
    })
}

/// `controller=` keys with a meaning (spec §3.8), besides the overrides.
const ADDRESS_KEYS: [&str; 9] = [
    "transport",
    "traddr",
    "trsvcid",
    "subsysnqn",
    "host-traddr",
    "host-iface",
    "host-nqn",
    "dhchap-secret",
    "dhchap-ctrl-secret",
];

/// Keys whose values `--check-config` does not print.
const SECRET_KEYS: [&str; 2] = ["dhchap-secret", "dhchap-ctrl-secret"];

/// Per-controller overrides of `[Global]` options (§3.8).
pub const OVERRIDE_KEYS: [&str; 10] = [
    "hdr-digest",
    "data-digest",
    "nr-io-queues",
    "nr-write-queues",
    "nr-poll-queues",
    "queue-size",
    "kato",
    "reconnect-delay",
    "ctrl-loss-tmo",
    "disable-sqflow",
];

/// `controller=` keys of stafd.conf alone: discovery controller settings.
const DC_KEYS: [&str; 1] = ["persistent"];

fn is_known_key(key: &str) -> bool {
    ADDRESS_KEYS.contains(&key) || OVERRIDE_KEYS.contains(&key) || DC_KEYS.contains(&key)
}

// ---------------------------------------------------------------------------
// controller= / exclude= values (spec §3.8)

/// Parses one `controller=` / `exclude=` value exactly like upstream:
/// `;`-separated fields, each split on `=` into exactly two stripped parts
/// (anything else is dropped), later duplicates win, `nqn` becomes
/// `subsysnqn`. No validation.
pub fn parse_cid(text: &str) -> Cid {
    parse_cid_detailed(text).0
}

/// [`parse_cid`], also returning the fields that were dropped.
fn parse_cid_detailed(text: &str) -> (Cid, Vec<&str>) {
    let mut cid = Cid::new();
    let mut dropped = Vec::new();
    for token in text.split(';').map(str::trim).filter(|t| !t.is_empty()) {
        let mut parts = token.split('=');
        match (parts.next(), parts.next(), parts.next()) {
            (Some(key), Some(value), None) => {
                cid.insert(key.trim().to_owned(), value.trim().to_owned());
            }
            _ => dropped.push(token),
        }
    }
    if let Some(nqn) = cid.remove("nqn") {
        cid.insert("subsysnqn".to_owned(), nqn);
    }
    (cid, dropped)
}

/// Serialises a cid as a `controller=` value (`key=value;...`), address
/// fields first and `subsysnqn` written `nqn`; secrets are shown as
/// `<redacted>` when `redact_secrets`. [`parse_cid`] reads it back.
pub fn render_cid(cid: &Cid, redact_secrets: bool) -> String {
    const FIRST: [&str; 7] = [
        "transport",
        "traddr",
        "trsvcid",
        "host-traddr",
        "host-iface",
        "host-nqn",
        "subsysnqn",
    ];
    let ordered = FIRST
        .iter()
        .filter_map(|k| cid.get_key_value(*k))
        .chain(cid.iter().filter(|(k, _)| !FIRST.contains(&k.as_str())));
    let fields: Vec<String> = ordered
        .map(|(k, v)| {
            let k = if k == "subsysnqn" { "nqn" } else { k.as_str() };
            let v = if redact_secrets && SECRET_KEYS.contains(&k) {
                "<redacted>"
            } else {
                v.as_str()
            };
            format!("{k}={v}")
        })
        .collect();
    fields.join(";")
}

// ---------------------------------------------------------------------------
// Reading a parsed file

/// Walks a parsed file, collecting diagnostics.
struct Reader<'a> {
    ini: &'a Ini,
    file: &'a str,
    diags: Vec<Diagnostic>,
}

/// "Using the default (30)." or, for options passed only when set, what
/// happens instead.
fn fallback(default: Option<String>) -> String {
    match default {
        Some(d) => format!("Using the default ({d})."),
        None => "Using the default (not set: the kernel default applies).".to_owned(),
    }
}

impl<'a> Reader<'a> {
    fn new(ini: &'a Ini, file: &'a str) -> Self {
        let diags = ini
            .notes()
            .iter()
            .map(|n| Diagnostic {
                file: file.to_owned(),
                line: Some(n.line),
                section: String::new(),
                option: None,
                message: n.message.clone(),
                severity: Severity::Warning,
            })
            .collect();
        Self { ini, file, diags }
    }

    fn push(
        &mut self,
        severity: Severity,
        line: Option<usize>,
        section: &str,
        option: Option<&str>,
        message: String,
    ) {
        self.diags.push(Diagnostic {
            file: self.file.to_owned(),
            line,
            section: section.to_owned(),
            option: option.map(str::to_owned),
            message,
            severity,
        });
    }

    fn warn(&mut self, line: usize, section: &str, option: &str, message: String) {
        self.push(
            Severity::Warning,
            Some(line),
            section,
            Some(option),
            message,
        );
    }

    /// Reports sections and options the file `kind` does not accept
    /// (spec §3.3), with hints for names that belong elsewhere.
    fn check_names(&mut self, kind: FileKind) {
        let ini = self.ini;
        let table = kind.table();
        let accepted_sections = table
            .iter()
            .map(|(s, _)| format!("[{s}]"))
            .collect::<Vec<_>>()
            .join(", ");
        for section in ini.sections() {
            let Some((_, options)) = table.iter().find(|(s, _)| *s == section.name) else {
                let mut message = format!(
                    "unknown section; {} accepts {accepted_sections}. Its options are ignored.",
                    kind.file_name()
                );
                let squashed = section.name.trim();
                if let Some((known, _)) =
                    table.iter().find(|(s, _)| s.eq_ignore_ascii_case(squashed))
                {
                    message.push_str(&format!(
                        " Did you mean [{known}]? Section names are case-sensitive and \
                         have no spaces inside the brackets."
                    ));
                } else if let Some(other) = kind
                    .other()
                    .filter(|o| o.table().iter().any(|(s, _)| *s == section.name))
                {
                    message.push_str(&format!(" This section belongs in {}.", other.file_name()));
                }
                self.push(
                    Severity::Error,
                    Some(section.line),
                    &section.name,
                    None,
                    message,
                );
                continue;
            };
            for option in &section.options {
                if options.contains(&option.name.as_str()) {
                    continue;
                }
                let mut message = format!(
                    "unknown option; [{}] accepts {}. Ignored.",
                    section.name,
                    options.join(", ")
                );
                if let Some(hint) = option_hint(kind, &section.name, &option.name) {
                    message.push_str(&format!(" Note: {hint}."));
                }
                self.push(
                    Severity::Error,
                    Some(option.line),
                    &section.name,
                    Some(&option.name),
                    message,
                );
            }
        }
    }

    /// The value of a scalar option: the last one, converted; `None` when
    /// absent or invalid (then with a diagnostic naming the default).
    fn scalar<T>(
        &mut self,
        section: &str,
        option: &str,
        check: &Check<T>,
        default: Option<String>,
    ) -> Option<T> {
        let ini = self.ini;
        let value = ini.last(section, option)?;
        let message = match &value.text {
            None => format!(
                "has no value (the line has no \"=\"); expected {}",
                check.expected
            ),
            Some(text) => match check.apply(text) {
                Ok(v) => return Some(v),
                Err(e) => e,
            },
        };
        self.warn(
            value.line,
            section,
            option,
            format!("{message}. {}", fallback(default)),
        );
        None
    }

    fn global(&mut self, daemon: Daemon) -> GlobalOptions {
        let d = match daemon {
            Daemon::Stafd => GlobalOptions::stafd_defaults(),
            Daemon::Stacd => GlobalOptions::stacd_defaults(),
        };
        let show = |b: bool| Some(b.to_string());
        let show_opt = |n: Option<u32>| n.map(|n| n.to_string());
        let stacd = daemon == Daemon::Stacd;
        let queues = |r: &mut Self, option: &str| {
            if stacd {
                r.scalar(GLOBAL, option, &QUEUES, None)
            } else {
                None
            }
        };
        GlobalOptions {
            tron: self
                .scalar(GLOBAL, "tron", &BOOL, show(d.tron))
                .unwrap_or(d.tron),
            hdr_digest: self
                .scalar(GLOBAL, "hdr-digest", &BOOL, show(d.hdr_digest))
                .unwrap_or(d.hdr_digest),
            data_digest: self
                .scalar(GLOBAL, "data-digest", &BOOL, show(d.data_digest))
                .unwrap_or(d.data_digest),
            kato: self
                .scalar(GLOBAL, "kato", &SECONDS, show_opt(d.kato))
                .or(d.kato),
            nr_io_queues: queues(self, "nr-io-queues"),
            nr_write_queues: queues(self, "nr-write-queues"),
            nr_poll_queues: queues(self, "nr-poll-queues"),
            queue_size: self.scalar(GLOBAL, "queue-size", &QUEUE_SIZE, None),
            reconnect_delay: self.scalar(GLOBAL, "reconnect-delay", &SECONDS, None),
            ctrl_loss_tmo: self.scalar(GLOBAL, "ctrl-loss-tmo", &CTRL_LOSS_TMO, None),
            disable_sqflow: self.scalar(GLOBAL, "disable-sqflow", &BOOL, None),
            ignore_iface: self
                .scalar(GLOBAL, "ignore-iface", &BOOL, show(d.ignore_iface))
                .unwrap_or(d.ignore_iface),
            ip_family: self
                .scalar(
                    GLOBAL,
                    "ip-family",
                    &IP_FAMILY,
                    Some(d.ip_family.to_string()),
                )
                .unwrap_or(d.ip_family),
        }
    }

    /// Parses a `controller=`/`exclude=` value, reporting what upstream
    /// silently drops or misreads.
    fn cid_entry(&mut self, line: usize, option: &str, text: &str) -> Cid {
        let (cid, dropped) = parse_cid_detailed(text);
        for token in dropped {
            let why = if !token.contains('=') {
                "it has no \"=\""
            } else if token.contains(',') {
                "it has more than one \"=\"; fields are separated by \";\", not \",\""
            } else {
                "it has more than one \"=\", and a value cannot contain \"=\""
            };
            self.warn(
                line,
                CONTROLLERS,
                option,
                format!("field {token:?} ignored: {why}; expected key=value."),
            );
        }
        if text.contains('#') {
            self.warn(
                line,
                CONTROLLERS,
                option,
                "contains \"#\": inline comments are not supported, so the text after \"#\" \
                 is part of the value. Put comments on lines of their own."
                    .to_owned(),
            );
        }
        for key in cid.keys().filter(|k| !is_known_key(k)) {
            let lower = key.to_lowercase();
            let mut message = format!("unknown key {key:?}: kept, but never used to connect.");
            if lower != *key && (is_known_key(&lower) || lower == "nqn") {
                message.push_str(&format!(
                    " Keys are case-sensitive: did you mean {lower:?}?"
                ));
            }
            self.warn(line, CONTROLLERS, option, message);
        }
        cid
    }

    fn controllers(&mut self, daemon: Daemon) -> Vec<ControllerSpec> {
        let ini = self.ini;
        let mut out = Vec::new();
        for value in ini.values(CONTROLLERS, "controller") {
            let Some(text) = &value.text else {
                self.warn(
                    value.line,
                    CONTROLLERS,
                    "controller",
                    "has no value (the line has no \"=\"); expected \
                     controller = transport=<trtype>;traddr=<address>;... Ignored."
                        .to_owned(),
                );
                continue;
            };
            let mut cid = self.cid_entry(value.line, "controller", text);
            let fields: Vec<(String, String)> =
                cid.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            for (key, raw) in fields {
                match check_override(&key, &raw) {
                    Some(Ok(normalised)) => {
                        cid.insert(key, normalised);
                    }
                    Some(Err(e)) => {
                        cid.remove(&key);
                        self.warn(
                            value.line,
                            CONTROLLERS,
                            "controller",
                            format!(
                                "override {key}: {e}. Ignored, so [Global] {key} applies \
                                 to this controller."
                            ),
                        );
                    }
                    None => {}
                }
            }
            self.dc_keys(value.line, &mut cid, daemon);
            self.check_controller(value, &cid, daemon);
            out.push(ControllerSpec {
                cid,
                line: value.line,
            });
        }
        out
    }

    /// Checks the discovery controller keys of a `controller=` entry,
    /// dropping those that do not apply (with a diagnostic).
    fn dc_keys(&mut self, line: usize, cid: &mut Cid, daemon: Daemon) {
        let Some(v) = cid.get("persistent").cloned() else {
            return;
        };
        let problem = match daemon {
            Daemon::Stacd => {
                "persistent is a discovery controller setting (stafd.conf). Ignored.".to_owned()
            }
            Daemon::Stafd => match PERSISTENT.apply(&v) {
                Ok(_) => return,
                Err(e) => format!(
                    "persistent: {e}. Ignored, so [{DC_MANAGEMENT}] persistent applies to \
                     this controller."
                ),
            },
        };
        cid.remove("persistent");
        self.warn(line, CONTROLLERS, "controller", problem);
    }

    /// What would make the daemon ignore a configured controller.
    fn check_controller(&mut self, value: &Value, cid: &Cid, daemon: Daemon) {
        let mut problems = Vec::new();
        if cid.is_empty() {
            problems.push(
                "empty entry; expected transport=<trtype>;traddr=<address>;... \
                 The daemon ignores it."
                    .to_owned(),
            );
        } else {
            match cid.get("transport").map(String::as_str) {
                None => problems.push(
                    "no transport field; expected transport=tcp, rdma, fc or loop. \
                     The daemon ignores this controller."
                        .to_owned(),
                ),
                Some("tcp" | "rdma") => {
                    if cid.get("traddr").is_none_or(|a| a.is_empty()) {
                        problems.push(
                            "no traddr field; tcp and rdma controllers need an IP address or \
                             host name. The daemon ignores this controller."
                                .to_owned(),
                        );
                    }
                }
                Some("fc" | "loop") => {}
                Some(other) => problems.push(format!(
                    "transport {other:?} is not tcp, rdma, fc or loop (lower case). \
                     The daemon ignores this controller."
                )),
            }
            if daemon == Daemon::Stacd && !cid.contains_key("subsysnqn") {
                problems.push(
                    "no nqn field; stacd needs the subsystem NQN of an I/O controller \
                     (nqn=<subsystem NQN>)."
                        .to_owned(),
                );
            }
        }
        for p in problems {
            self.warn(value.line, CONTROLLERS, "controller", p);
        }
    }

    fn excludes(&mut self) -> Vec<Cid> {
        let ini = self.ini;
        let mut out = Vec::new();
        for value in ini.values(CONTROLLERS, "exclude") {
            let Some(text) = &value.text else {
                self.warn(
                    value.line,
                    CONTROLLERS,
                    "exclude",
                    "has no value (the line has no \"=\"); expected \
                     exclude = key=value;key=value... Ignored."
                        .to_owned(),
                );
                continue;
            };
            let mut cid = self.cid_entry(value.line, "exclude", text);
            if cid.remove("host-traddr").is_some() {
                self.warn(
                    value.line,
                    CONTROLLERS,
                    "exclude",
                    "host-traddr is not used in exclude entries and is ignored.".to_owned(),
                );
            }
            if cid.is_empty() {
                // Upstream matches every controller with such an entry (a
                // defect, §18): an admin who wrote a broken exclude line did
                // not mean "disconnect everything". It is ignored, loudly.
                self.warn(
                    value.line,
                    CONTROLLERS,
                    "exclude",
                    "this entry has no usable key=value field and is ignored (nvme-stas would \
                     exclude EVERY controller with it). Expected e.g. exclude = transport=tcp;traddr=10.0.0.1."
                        .to_owned(),
                );
                continue;
            }
            out.push(cid);
        }
        out
    }

    fn trtypes(&mut self) -> BTreeSet<TrType> {
        let default = BTreeSet::from([TrType::Tcp]);
        let ini = self.ini;
        let option = "disconnect-trtypes";
        let Some(value) = ini.last(IOC_MANAGEMENT, option) else {
            return default;
        };
        let expected = "expected tcp, rdma and/or fc joined by \"+\" without spaces, e.g. tcp+rdma";
        let Some(text) = &value.text else {
            self.warn(
                value.line,
                IOC_MANAGEMENT,
                option,
                format!(
                    "has no value (the line has no \"=\"); {expected}. Using the default (tcp)."
                ),
            );
            return default;
        };
        let mut set = BTreeSet::new();
        let mut bad = BTreeSet::new();
        for item in text.split('+') {
            match item {
                "tcp" => set.insert(TrType::Tcp),
                "rdma" => set.insert(TrType::Rdma),
                "fc" => set.insert(TrType::Fc),
                _ => bad.insert(format!("{item:?}")),
            };
        }
        if !bad.is_empty() {
            let items = bad.into_iter().collect::<Vec<_>>().join(", ");
            let outcome = if set.is_empty() {
                "No valid item is left. Using the default (tcp)."
            } else {
                "They are ignored."
            };
            self.warn(
                value.line,
                IOC_MANAGEMENT,
                option,
                format!("{text:?}: invalid item(s) {items}; {expected}. {outcome}"),
            );
        }
        if set.is_empty() {
            default
        } else {
            set
        }
    }

    fn finish(mut self) -> Vec<Diagnostic> {
        // Stable: file order, whole-file remarks last.
        self.diags.sort_by_key(|d| d.line.unwrap_or(usize::MAX));
        self.diags
    }
}

/// Parses stafd.conf text; `origin` names the file in diagnostics.
pub fn parse_stafd(
    text: &str,
    origin: &str,
) -> Result<(StafdConfig, Vec<Diagnostic>), ConfigError> {
    let ini = Ini::parse(text, origin)?;
    let mut r = Reader::new(&ini, origin);
    r.check_names(FileKind::Daemon(Daemon::Stafd));
    let d = StafdConfig::default();
    let enabled = |b: bool| Some(if b { "enabled" } else { "disabled" }.to_owned());
    let global = r.global(Daemon::Stafd);
    let config = StafdConfig {
        global,
        pleo: r
            .scalar(GLOBAL, "pleo", &ENABLED, enabled(d.pleo))
            .unwrap_or(d.pleo),
        zeroconf: r
            .scalar(SERVICE_DISCOVERY, "zeroconf", &ENABLED, enabled(d.zeroconf))
            .unwrap_or(d.zeroconf),
        mdns_backend: r
            .scalar(
                SERVICE_DISCOVERY,
                "mdns-backend",
                &MDNS_BACKEND,
                Some(d.mdns_backend.to_string()),
            )
            .unwrap_or(d.mdns_backend),
        persistent_connections: r
            .scalar(
                DC_MANAGEMENT,
                "persistent-connections",
                &BOOL,
                Some(d.persistent_connections.to_string()),
            )
            .unwrap_or(d.persistent_connections),
        zeroconf_persistence: r
            .scalar(
                DC_MANAGEMENT,
                "zeroconf-connections-persistence",
                &PERSISTENCE,
                Some(d.zeroconf_persistence.to_string()),
            )
            .unwrap_or(d.zeroconf_persistence),
        persistent: r
            .scalar(
                DC_MANAGEMENT,
                "persistent",
                &PERSISTENT,
                Some(d.persistent.to_string()),
            )
            .unwrap_or(d.persistent),
        epcsd_poll_minutes: r
            .scalar(
                DC_MANAGEMENT,
                "epcsd-poll-interval-minutes",
                &POLL_MINUTES,
                Some(d.epcsd_poll_minutes.to_string()),
            )
            .unwrap_or(d.epcsd_poll_minutes),
        controllers: r.controllers(Daemon::Stafd),
        excludes: r.excludes(),
    };
    Ok((config, r.finish()))
}

/// Parses stacd.conf text; `origin` names the file in diagnostics.
pub fn parse_stacd(
    text: &str,
    origin: &str,
) -> Result<(StacdConfig, Vec<Diagnostic>), ConfigError> {
    let ini = Ini::parse(text, origin)?;
    let mut r = Reader::new(&ini, origin);
    r.check_names(FileKind::Daemon(Daemon::Stacd));
    let d = StacdConfig::default();
    let global = r.global(Daemon::Stacd);
    let config = StacdConfig {
        global,
        disconnect_scope: r
            .scalar(
                IOC_MANAGEMENT,
                "disconnect-scope",
                &SCOPE,
                Some(d.disconnect_scope.to_string()),
            )
            .unwrap_or(d.disconnect_scope),
        disconnect_trtypes: r.trtypes(),
        connect_attempts_on_ncc: r
            .scalar(
                IOC_MANAGEMENT,
                "connect-attempts-on-ncc",
                &NCC,
                Some(d.connect_attempts_on_ncc.to_string()),
            )
            .unwrap_or(d.connect_attempts_on_ncc),
        controllers: r.controllers(Daemon::Stacd),
        excludes: r.excludes(),
    };
    Ok((config, r.finish()))
}

/// The largest configuration file read (far beyond any real one: a
/// symlink to /dev/zero or a runaway generator must not fill memory).
pub const MAX_CONFIG_BYTES: u64 = 4 << 20;

/// Reads a configuration file as text; `None` when nothing is there. It
/// must be a regular file (a symlink to one is fine) of at most
/// [`MAX_CONFIG_BYTES`]; a dangling symlink is an error, not "defaults".
fn read_optional(path: &Path) -> Result<Option<String>, ConfigError> {
    use nvmf_kernel::files::{read_bounded, FileError, Links};
    let file = path.display().to_string();
    let read = read_bounded(path, MAX_CONFIG_BYTES, Links::Follow);
    match read {
        Ok(Some(bytes)) => String::from_utf8(bytes).map(Some).map_err(|e| {
            let valid = e.utf8_error().valid_up_to();
            let line = e
                .as_bytes()
                .get(..valid)
                .map_or(0, |b| b.iter().filter(|&&c| c == b'\n').count())
                + 1;
            ConfigError::Syntax {
                file,
                line,
                message: "not valid UTF-8 text".to_owned(),
            }
        }),
        Ok(None) => Ok(None),
        Err(FileError::Refused { reason, .. }) => Err(ConfigError::Refused { file, reason }),
        Err(FileError::Io { source, .. }) => Err(ConfigError::Io { file, source }),
    }
}

/// Loads stafd.conf. A missing file gives the defaults and no diagnostics;
/// `Err` means unreadable or not INI (on SIGHUP: keep the last good one).
pub fn load_stafd(path: &Path) -> Result<(StafdConfig, Vec<Diagnostic>), ConfigError> {
    match read_optional(path)? {
        Some(text) => parse_stafd(&text, &path.display().to_string()),
        None => Ok((StafdConfig::default(), Vec::new())),
    }
}

/// Loads stacd.conf; see [`load_stafd`].
pub fn load_stacd(path: &Path) -> Result<(StacdConfig, Vec<Diagnostic>), ConfigError> {
    match read_optional(path)? {
        Some(text) => parse_stacd(&text, &path.display().to_string()),
        None => Ok((StacdConfig::default(), Vec::new())),
    }
}

// ---------------------------------------------------------------------------
// Effective configuration

/// `name = value`, or a commented line when the option is not set.
fn write_opt(f: &mut fmt::Formatter<'_>, name: &str, value: Option<String>) -> fmt::Result {
    match value {
        Some(v) => writeln!(f, "{name} = {v}"),
        None => writeln!(f, "# {name} = (kernel default)"),
    }
}

fn write_global(f: &mut fmt::Formatter<'_>, g: &GlobalOptions, daemon: Daemon) -> fmt::Result {
    let n = |v: Option<u32>| v.map(|v| v.to_string());
    writeln!(f, "[{GLOBAL}]")?;
    writeln!(f, "tron = {}", g.tron)?;
    writeln!(f, "hdr-digest = {}", g.hdr_digest)?;
    writeln!(f, "data-digest = {}", g.data_digest)?;
    write_opt(f, "kato", n(g.kato))?;
    if daemon == Daemon::Stacd {
        write_opt(f, "nr-io-queues", n(g.nr_io_queues))?;
        write_opt(f, "nr-write-queues", n(g.nr_write_queues))?;
        write_opt(f, "nr-poll-queues", n(g.nr_poll_queues))?;
    }
    write_opt(f, "queue-size", n(g.queue_size))?;
    write_opt(f, "reconnect-delay", n(g.reconnect_delay))?;
    write_opt(f, "ctrl-loss-tmo", g.ctrl_loss_tmo.map(|v| v.to_string()))?;
    write_opt(f, "disable-sqflow", g.disable_sqflow.map(|v| v.to_string()))?;
    writeln!(f, "ignore-iface = {}", g.ignore_iface)?;
    writeln!(f, "ip-family = {}", g.ip_family)
}

fn write_controllers(
    f: &mut fmt::Formatter<'_>,
    controllers: &[ControllerSpec],
    excludes: &[Cid],
) -> fmt::Result {
    writeln!(f, "\n[{CONTROLLERS}]")?;
    if controllers.is_empty() && excludes.is_empty() {
        writeln!(f, "# no controller or exclude entries")?;
    }
    let entries = controllers
        .iter()
        .map(|c| ("controller", &c.cid))
        .chain(excludes.iter().map(|e| ("exclude", e)));
    for (option, cid) in entries {
        let value = render_cid(cid, true);
        // No trailing blank for an empty entry.
        let sep = if value.is_empty() { "" } else { " " };
        writeln!(f, "{option} ={sep}{value}")?;
    }
    Ok(())
}

fn enabled(b: bool) -> &'static str {
    if b {
        "enabled"
    } else {
        "disabled"
    }
}

/// The effective configuration as a stafd.conf file, every option listed
/// (secrets redacted).
impl fmt::Display for StafdConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "# Effective stafd configuration (defaults included)")?;
        write_global(f, &self.global, Daemon::Stafd)?;
        writeln!(f, "pleo = {}", enabled(self.pleo))?;
        writeln!(f, "\n[{SERVICE_DISCOVERY}]")?;
        writeln!(f, "zeroconf = {}", enabled(self.zeroconf))?;
        writeln!(f, "mdns-backend = {}", self.mdns_backend)?;
        writeln!(f, "\n[{DC_MANAGEMENT}]")?;
        writeln!(
            f,
            "persistent-connections = {}",
            self.persistent_connections
        )?;
        writeln!(
            f,
            "zeroconf-connections-persistence = {}",
            self.zeroconf_persistence
        )?;
        writeln!(f, "persistent = {}", self.persistent)?;
        writeln!(
            f,
            "epcsd-poll-interval-minutes = {}",
            self.epcsd_poll_minutes
        )?;
        write_controllers(f, &self.controllers, &self.excludes)
    }
}

/// The effective configuration as a stacd.conf file, every option listed
/// (secrets redacted).
impl fmt::Display for StacdConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "# Effective stacd configuration (defaults included)")?;
        write_global(f, &self.global, Daemon::Stacd)?;
        writeln!(f, "\n[{IOC_MANAGEMENT}]")?;
        writeln!(f, "disconnect-scope = {}", self.disconnect_scope)?;
        let trtypes: Vec<&str> = self.disconnect_trtypes.iter().map(|t| t.as_str()).collect();
        writeln!(f, "disconnect-trtypes = {}", trtypes.join("+"))?;
        writeln!(
            f,
            "connect-attempts-on-ncc = {}",
            self.connect_attempts_on_ncc
        )?;
        write_controllers(f, &self.controllers, &self.excludes)
    }
}

// ---------------------------------------------------------------------------
// sys.conf (spec §3.7)

/// The host identity from sys.conf, `file://` references resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SysConf {
    /// Host NQN (starts with `nqn.`, at most 223 characters).
    pub hostnqn: String,
    /// Host ID (not checked; may be empty, with a diagnostic).
    pub hostid: String,
    /// DH-HMAC-CHAP host secret.
    pub hostkey: Option<String>,
    /// Host symbolic name (for DIM registration).
    pub symname: Option<String>,
}

/// Maximum host NQN length (NVMe: 223 bytes; upstream counts characters).
const MAX_NQN_LEN: usize = 223;

/// The effective sys.conf, host key redacted.
impl fmt::Display for SysConf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "[Host]")?;
        writeln!(f, "nqn = {}", self.hostnqn)?;
        writeln!(f, "id = {}", self.hostid)?;
        match &self.hostkey {
            Some(_) => writeln!(f, "key = <redacted>")?,
            None => writeln!(f, "# key = (none)")?,
        }
        match &self.symname {
            Some(s) => writeln!(f, "symname = {s}"),
            None => writeln!(f, "# symname = (none)"),
        }
    }
}

/// Where a sys.conf value came from.
struct Raw {
    text: String,
    /// Line in sys.conf; `None` for the built-in default.
    line: Option<usize>,
}

/// How reading a `file://` target went.
enum FileValue {
    /// First whitespace-separated token of the first line, if any.
    Value(Option<String>),
    /// The file does not exist.
    Missing(String),
}

/// Resolves `file://` indirection: the first whitespace-separated token of
/// the first line of the file (`None` when there is none).
fn resolve(text: &str) -> Result<FileValue, String> {
    let Some(path) = text.strip_prefix("file://") else {
        return Ok(FileValue::Value(Some(text.to_owned())));
    };
    match nvmf_kernel::files::read_bounded(
        Path::new(path),
        MAX_KEY_FILE_BYTES,
        nvmf_kernel::files::Links::Follow,
    ) {
        Ok(None) => Ok(FileValue::Missing(format!("{path}: no such file"))),
        Ok(Some(bytes)) => {
            let first = bytes
                .split(|&b| b == b'\n' || b == b'\r')
                .next()
                .unwrap_or_default();
            let first = std::str::from_utf8(first)
                .map_err(|_| format!("cannot read {path}: not valid UTF-8 text"))?;
            Ok(FileValue::Value(
                first.split_whitespace().next().map(str::to_owned),
            ))
        }
        Err(e) => Err(format!("cannot read {e}")),
    }
}

/// The largest file a `file://` value may name (a host NQN, ID or key).
const MAX_KEY_FILE_BYTES: u64 = 64 << 10;

/// Parses sys.conf text; `origin` names the file; `etc_nvme` is the
/// directory holding the default `hostnqn`, `hostid` and `hostkey` files.
pub fn parse_sysconf(
    text: &str,
    origin: &str,
    etc_nvme: &Path,
) -> Result<(SysConf, Vec<Diagnostic>), ConfigError> {
    let ini = Ini::parse(text, origin)?;
    let mut r = Reader::new(&ini, origin);
    // Upstream does not check sys.conf names; reporting them catches typos
    // such as "hostnqn=" that would silently fall back to /etc/nvme.
    r.check_names(FileKind::SysConf);
    for d in &mut r.diags {
        d.severity = Severity::Warning;
    }
    let default_file = |name: &str| -> PathBuf { etc_nvme.join(name) };
    let host_err = |option: &str, line: Option<usize>, message: String| ConfigError::Host {
        file: origin.to_owned(),
        line,
        option: option.to_owned(),
        message,
    };

    let nqn = raw(&mut r, "nqn", Some(default_file("hostnqn")));
    let id = raw(&mut r, "id", Some(default_file("hostid")));
    let key = raw(&mut r, "key", Some(default_file("hostkey")));
    let symname = raw(&mut r, "symname", None);

    // nqn: mandatory.
    let Some(nqn) = nqn else {
        return Err(host_err(
            "nqn",
            None,
            "internal error: no default".to_owned(),
        ));
    };
    let hostnqn = match resolve(&nqn.text).map_err(|e| {
        host_err(
            "nqn",
            nqn.line,
            format!("Error reading mandatory Host NQN (see stasadm --help): {e}"),
        )
    })? {
        FileValue::Value(Some(v)) if !v.is_empty() => v,
        FileValue::Value(_) => {
            return Err(host_err(
                "nqn",
                nqn.line,
                format!(
                    "Host NQN is empty ({}); expected a value starting with \"nqn.\" \
                     (see stasadm --help)",
                    source_of(&nqn.text)
                ),
            ))
        }
        FileValue::Missing(e) => {
            return Err(host_err(
                "nqn",
                nqn.line,
                format!("Error reading mandatory Host NQN (see stasadm --help): {e}"),
            ))
        }
    };
    if !hostnqn.starts_with("nqn.") {
        return Err(host_err(
            "nqn",
            nqn.line,
            format!(
                "Host NQN \"{hostnqn}\" should start with \"nqn.\" ({})",
                source_of(&nqn.text)
            ),
        ));
    }
    let len = hostnqn.chars().count();
    if len > MAX_NQN_LEN {
        return Err(host_err(
            "nqn",
            nqn.line,
            format!(
                "Host NQN \"{hostnqn}\" is {len} characters long; the maximum is {MAX_NQN_LEN} \
                 ({})",
                source_of(&nqn.text)
            ),
        ));
    }

    // id: mandatory file, no format check.
    let Some(id) = id else {
        return Err(host_err(
            "id",
            None,
            "internal error: no default".to_owned(),
        ));
    };
    let read_id_err = |e: String| {
        host_err(
            "id",
            id.line,
            format!("Error reading mandatory Host ID (see stasadm --help): {e}"),
        )
    };
    let hostid = match resolve(&id.text).map_err(read_id_err)? {
        FileValue::Value(v) => v.unwrap_or_default(),
        FileValue::Missing(e) => return Err(read_id_err(e)),
    };
    if hostid.is_empty() {
        r.push(
            Severity::Warning,
            id.line,
            "Host",
            Some("id"),
            format!(
                "the Host ID is empty ({}); connections are made without one \
                 (run stasadm hostid to create one)",
                source_of(&id.text)
            ),
        );
    }

    // key: optional.
    let hostkey = match key {
        None => None,
        Some(key) => match resolve(&key.text).map_err(|e| host_err("key", key.line, e))? {
            FileValue::Value(v) => v.filter(|v| !v.is_empty()),
            FileValue::Missing(e) => {
                // The built-in default file is optional; a configured one is not.
                if key.line.is_some() {
                    r.push(
                        Severity::Warning,
                        key.line,
                        "Host",
                        Some("key"),
                        format!("Error reading host key (will remain undefined): {e}"),
                    );
                }
                None
            }
        },
    };

    // symname: optional.
    let symname = match symname {
        None => None,
        Some(s) => match resolve(&s.text).map_err(|e| host_err("symname", s.line, e))? {
            FileValue::Value(v) => v.filter(|v| !v.is_empty()),
            FileValue::Missing(e) => {
                r.push(
                    Severity::Warning,
                    s.line,
                    "Host",
                    Some("symname"),
                    format!("Error reading host symbolic name (will remain undefined): {e}"),
                );
                None
            }
        },
    };

    let conf = SysConf {
        hostnqn,
        hostid,
        hostkey,
        symname,
    };
    Ok((conf, r.finish()))
}

/// "from <file>" or "set in the file", for messages.
fn source_of(text: &str) -> String {
    match text.strip_prefix("file://") {
        Some(path) => format!("read from {path}"),
        None => "as configured".to_owned(),
    }
}

/// The raw text of a `[Host]` key (last occurrence wins), or the default
/// `file://` reference when absent.
fn raw(r: &mut Reader<'_>, key: &str, default: Option<PathBuf>) -> Option<Raw> {
    let ini = r.ini;
    let values = ini.values("Host", key);
    // The last occurrence and its continuation lines.
    let Some(start) = values.iter().rposition(|v| !v.continuation) else {
        return default.map(|p| Raw {
            text: format!("file://{}", p.display()),
            line: None,
        });
    };
    let first = values.get(start)?;
    if let Some(extra) = values.get(start + 1) {
        r.warn(
            extra.line,
            "Host",
            key,
            "continuation lines are not supported in sys.conf; ignored".to_owned(),
        );
    }
    Some(Raw {
        // A key without "=" is an empty value.
        text: first.text.clone().unwrap_or_default(),
        line: Some(first.line),
    })
}

/// Loads sys.conf (a missing file means all defaults: the files in
/// `etc_nvme`). `Err` when the host NQN or ID is unusable (upstream exits),
/// the file is unreadable, or not INI.
pub fn load_sysconf(
    path: &Path,
    etc_nvme: &Path,
) -> Result<(SysConf, Vec<Diagnostic>), ConfigError> {
    let text = read_optional(path)?.unwrap_or_default();
    parse_sysconf(&text, &path.display().to_string(), etc_nvme)
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A scratch directory removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new() -> Self {
            static COUNTER: AtomicUsize = AtomicUsize::new(0);
            let dir = std::env::temp_dir().join(format!(
                "stas-config-test-{}-{}",
                std::process::id(),
                COUNTER.fetch_add(1, Ordering::Relaxed)
            ));
            std::fs::create_dir_all(&dir).unwrap();
            Self(dir)
        }

        fn write(&self, name: &str, contents: &str) -> PathBuf {
            let path = self.0.join(name);
            std::fs::write(&path, contents).unwrap();
            path
        }

        fn path(&self, name: &str) -> PathBuf {
            self.0.join(name)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn fixture(name: &str) -> String {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../fixtures/data/config")
            .join(name);
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    fn cid(fields: &[(&str, &str)]) -> Cid {
        fields
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn stafd(text: &str) -> (StafdConfig, Vec<Diagnostic>) {
        parse_stafd(text, "/etc/stas/stafd.conf").unwrap()
    }

    fn stacd(text: &str) -> (StacdConfig, Vec<Diagnostic>) {
        parse_stacd(text, "/etc/stas/stacd.conf").unwrap()
    }

    /// The diagnostics about `option`.
    fn about<'a>(diags: &'a [Diagnostic], option: &str) -> Vec<&'a Diagnostic> {
        diags
            .iter()
            .filter(|d| d.option.as_deref() == Some(option))
            .collect()
    }

    fn cids(controllers: &[ControllerSpec]) -> Vec<Cid> {
        controllers.iter().map(|c| c.cid.clone()).collect()
    }

    // -- shipped files ------------------------------------------------------

    #[test]
    fn shipped_stafd_conf_gives_the_defaults() {
        let (config, diags) = stafd(&fixture("stafd.conf"));
        assert!(diags.is_empty(), "{diags:#?}");
        assert_eq!(config, StafdConfig::default());
        assert_eq!(config.global.kato, Some(30));
        assert!(config.persistent_connections && config.pleo && config.zeroconf);
        assert_eq!(
            config.zeroconf_persistence,
            Persistence::After(Duration::from_secs(259_200))
        );
    }

    #[test]
    fn shipped_stacd_conf_gives_the_defaults() {
        let (config, diags) = stacd(&fixture("stacd.conf"));
        assert!(diags.is_empty(), "{diags:#?}");
        assert_eq!(config, StacdConfig::default());
        assert_eq!(config.global.kato, None);
        assert_eq!(config.disconnect_trtypes, BTreeSet::from([TrType::Tcp]));
    }

    #[test]
    fn shipped_sys_conf_gives_the_etc_nvme_files() {
        let etc = TempDir::new();
        etc.write(
            "hostnqn",
            "nqn.2014-08.org.nvmexpress:uuid:01234567-0123-0123-0123-0123456789ab\n",
        );
        etc.write("hostid", "01234567-0123-0123-0123-0123456789ab\n");
        let (conf, diags) =
            parse_sysconf(&fixture("sys.conf"), "/etc/stas/sys.conf", &etc.0).unwrap();
        assert!(diags.is_empty(), "{diags:#?}");
        assert_eq!(
            conf,
            SysConf {
                hostnqn: "nqn.2014-08.org.nvmexpress:uuid:01234567-0123-0123-0123-0123456789ab"
                    .to_owned(),
                hostid: "01234567-0123-0123-0123-0123456789ab".to_owned(),
                hostkey: None,
                symname: None,
            }
        );
    }

    #[test]
    fn every_stafd_option_non_default() {
        let (config, diags) = stafd(&fixture("stafd-all-options.conf"));
        assert!(diags.is_empty(), "{diags:#?}");
        let g = &config.global;
        assert!(g.tron && g.hdr_digest && g.data_digest && g.ignore_iface);
        assert_eq!(g.kato, Some(60));
        assert_eq!(g.queue_size, Some(256));
        assert_eq!(g.reconnect_delay, Some(5));
        assert_eq!(g.ctrl_loss_tmo, Some(-1));
        assert_eq!(g.disable_sqflow, Some(false));
        assert_eq!(
            g.ip_family,
            IpFamily {
                v4: false,
                v6: true
            }
        );
        assert_eq!(
            (g.nr_io_queues, g.nr_write_queues, g.nr_poll_queues),
            (None, None, None)
        );
        assert!(!config.pleo && !config.zeroconf && !config.persistent_connections);
        assert_eq!(config.persistent, Persistent::No);
        assert_eq!(config.epcsd_poll_minutes, 5);
        assert_eq!(config.mdns_backend, MdnsBackend::Builtin);
        assert_eq!(
            config.zeroconf_persistence,
            Persistence::After(Duration::from_secs(36 * 3600))
        );
        // FC and loop controllers are kept (upstream drops them later, §18.1).
        assert_eq!(
            cids(&config.controllers),
            vec![
                cid(&[
                    ("transport", "tcp"),
                    ("traddr", "192.168.1.10"),
                    ("trsvcid", "8009"),
                    ("host-iface", "enp0s8"),
                    ("kato", "15")
                ]),
                cid(&[
                    ("transport", "rdma"),
                    ("traddr", "2001:db8::1"),
                    ("subsysnqn", "nqn.2014-08.org.nvmexpress.discovery")
                ]),
                cid(&[
                    ("transport", "fc"),
                    ("traddr", "nn-0x204600a098cbcac6:pn-0x204700a098cbcac6"),
                    ("host-traddr", "nn-0x20000090fae0b5f5:pn-0x10000090fae0b5f5")
                ]),
                cid(&[("transport", "loop"), ("traddr", "")]),
            ]
        );
        let lines: Vec<usize> = config.controllers.iter().map(|c| c.line).collect();
        assert_eq!(lines, [26, 27, 28, 29]);
        assert_eq!(
            config.excludes,
            vec![
                cid(&[("host-iface", "enp0s3")]),
                cid(&[("transport", "tcp"), ("traddr", "fe80::2c6e:dee7:857:26bb")]),
            ]
        );
    }

    #[test]
    fn every_stacd_option_non_default() {
        let (config, diags) = stacd(&fixture("stacd-all-options.conf"));
        assert!(diags.is_empty(), "{diags:#?}");
        let g = &config.global;
        assert!(g.tron && g.hdr_digest && g.data_digest && g.ignore_iface);
        assert_eq!(g.kato, Some(120));
        assert_eq!(
            (g.nr_io_queues, g.nr_write_queues, g.nr_poll_queues),
            (Some(8), Some(2), Some(1))
        );
        assert_eq!(g.queue_size, Some(512));
        assert_eq!(g.reconnect_delay, Some(20));
        assert_eq!(g.ctrl_loss_tmo, Some(3600));
        assert_eq!(g.disable_sqflow, Some(true));
        assert_eq!(
            g.ip_family,
            IpFamily {
                v4: true,
                v6: false
            }
        );
        assert_eq!(
            config.disconnect_scope,
            DisconnectScope::AllConnectionsMatchingDisconnectTrtypes
        );
        assert_eq!(
            config.disconnect_trtypes,
            BTreeSet::from([TrType::Tcp, TrType::Rdma, TrType::Fc])
        );
        assert_eq!(config.connect_attempts_on_ncc, 5);
        assert_eq!(config.controllers.len(), 2);
        assert_eq!(
            config.controllers[0]
                .cid
                .get("dhchap-secret")
                .map(String::as_str),
            Some("DHHC-1:00:ia6zGodOr4SEG0Zzaw398rpY0wqipUWj4jWjUh4HWUz6aQ2n:")
        );
        assert_eq!(
            config.controllers[1]
                .cid
                .get("transport")
                .map(String::as_str),
            Some("fc")
        );
        assert_eq!(
            config.excludes,
            vec![cid(&[("transport", "tcp"), ("traddr", "10.10.1.101")])]
        );
    }

    // -- §17.2 service config vectors --------------------------------------

    const FILE_A: &str = "\
[Global]
tron=true
kato=200
ip-family=ipv6

[I/O controller connection management]
disconnect-scope = joe
disconnect-trtypes = bob
connect-attempts-on-ncc = 1

[Controllers]
controller=transport=tcp;traddr=100.100.100.100;host-iface=enp0s8
controller=transport=tcp;traddr=100.100.100.200;host-iface=enp0s7;dhchap-ctrl-secret=super-secret;hdr-digest=true;data-digest=true;nr-io-queues=8;nr-write-queues=6;nr-poll-queues=4;queue-size=400;kato=71;reconnect-delay=13;ctrl-loss-tmo=666;disable-sqflow=true
exclude=transport=tcp;traddr=10.10.10.10
";

    fn file_a_controllers() -> Vec<Cid> {
        vec![
            cid(&[
                ("transport", "tcp"),
                ("traddr", "100.100.100.100"),
                ("host-iface", "enp0s8"),
            ]),
            cid(&[
                ("transport", "tcp"),
                ("traddr", "100.100.100.200"),
                ("host-iface", "enp0s7"),
                ("dhchap-ctrl-secret", "super-secret"),
                ("hdr-digest", "true"),
                ("data-digest", "true"),
                ("nr-io-queues", "8"),
                ("nr-write-queues", "6"),
                ("nr-poll-queues", "4"),
                ("queue-size", "400"),
                ("kato", "71"),
                ("reconnect-delay", "13"),
                ("ctrl-loss-tmo", "666"),
                ("disable-sqflow", "true"),
            ]),
        ]
    }

    #[test]
    fn vector_file_a_stacd() {
        let (c, diags) = stacd(FILE_A);
        assert!(c.global.tron);
        assert!(!c.global.hdr_digest && !c.global.data_digest && !c.global.ignore_iface);
        assert_eq!(c.disconnect_scope, DisconnectScope::OnlyStasConnections);
        assert_eq!(c.disconnect_trtypes, BTreeSet::from([TrType::Tcp]));
        assert_eq!(
            c.global.ip_family,
            IpFamily {
                v4: false,
                v6: true
            }
        );
        assert_eq!(c.global.kato, Some(200));
        assert_eq!(cids(&c.controllers), file_a_controllers());
        assert_eq!(
            c.excludes,
            vec![cid(&[("transport", "tcp"), ("traddr", "10.10.10.10")])]
        );
        assert_eq!(c.connect_attempts_on_ncc, 2);

        let scope = about(&diags, "disconnect-scope");
        assert_eq!(scope.len(), 1);
        assert_eq!(
            scope[0].to_string(),
            "/etc/stas/stacd.conf:7: [I/O controller connection management] disconnect-scope: \
             \"joe\" is not a valid scope; expected only-stas-connections, \
             all-connections-matching-disconnect-trtypes or no-disconnect. \
             Using the default (only-stas-connections)."
        );
        let trtypes = about(&diags, "disconnect-trtypes");
        assert_eq!(trtypes.len(), 1);
        assert_eq!(trtypes[0].line, Some(8));
        assert!(trtypes[0].message.contains("\"bob\""), "{}", trtypes[0]);
        assert!(trtypes[0].message.ends_with("Using the default (tcp)."));
        // stacd needs nqn= on its controllers.
        assert_eq!(about(&diags, "controller").len(), 2);
        assert!(diags.iter().all(|d| d.severity == Severity::Warning));
    }

    #[test]
    fn vector_file_a_stafd() {
        let (c, diags) = stafd(FILE_A);
        assert!(c.persistent_connections && c.pleo && !c.global.ignore_iface);
        assert!(c.zeroconf);
        assert_eq!(c.global.kato, Some(200));
        // Overrides not meaningful for discovery controllers are kept anyway.
        assert_eq!(cids(&c.controllers), file_a_controllers());
        let section: Vec<_> = diags
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .collect();
        assert_eq!(section.len(), 1);
        assert_eq!(section[0].section, "I/O controller connection management");
        assert_eq!(section[0].line, Some(6));
        assert!(
            section[0].message.contains("belongs in stacd.conf"),
            "{}",
            section[0]
        );
    }

    #[test]
    fn vector_rewrite_trtypes_and_ncc() {
        let (c, diags) = stacd(
            "[I/O controller connection management]\n\
             disconnect-trtypes = tcp+rdma+fc\n\
             connect-attempts-on-ncc = hello\n",
        );
        assert_eq!(
            c.disconnect_trtypes,
            BTreeSet::from([TrType::Tcp, TrType::Rdma, TrType::Fc])
        );
        assert_eq!(c.connect_attempts_on_ncc, 0);
        assert_eq!(about(&diags, "connect-attempts-on-ncc").len(), 1);
        assert_eq!(diags.len(), 1);
    }

    #[test]
    fn vector_ip_family_variants() {
        for (text, v4, v6) in [
            ("ipv4", true, false),
            ("ipv6", false, true),
            ("ipv4+ipv6", true, true),
            ("ipv6+ipv4", true, true),
        ] {
            let (c, diags) = stafd(&format!("[Global]\nip-family={text}\n"));
            assert!(diags.is_empty());
            assert_eq!(c.global.ip_family, IpFamily { v4, v6 }, "{text}");
        }
        for bad in ["IPv4", "ipv4 + ipv6", "ipv4,ipv6", "4"] {
            let (c, diags) = stafd(&format!("[Global]\nip-family={bad}\n"));
            assert_eq!(c.global.ip_family, IpFamily::default());
            assert_eq!(about(&diags, "ip-family").len(), 1, "{bad}");
        }
    }

    #[test]
    fn vector_queue_size_out_of_range() {
        let (c, diags) = stacd("[Global]\nqueue-size=5\n");
        assert_eq!(c.global.queue_size, None);
        assert_eq!(
            diags[0].to_string(),
            "/etc/stas/stacd.conf:2: [Global] queue-size: \"5\" is not within range 16..1024; \
             expected a whole number from 16 to 1024. \
             Using the default (not set: the kernel default applies)."
        );
        for (text, expected) in [
            ("16", Some(16)),
            ("1024", Some(1024)),
            ("1025", None),
            ("400", Some(400)),
        ] {
            let (c, _) = stacd(&format!("[Global]\nqueue-size={text}\n"));
            assert_eq!(c.global.queue_size, expected, "{text}");
        }
    }

    #[test]
    fn vector_bad_section_and_bad_option() {
        let (_, diags) = stafd("[BadSection]\nfoo=bar\n");
        assert_eq!(diags.len(), 1);
        assert_eq!(diags[0].severity, Severity::Error);
        assert_eq!(diags[0].line, Some(1));
        assert_eq!(diags[0].section, "BadSection");
        assert!(diags[0].to_string().starts_with(
            "/etc/stas/stafd.conf:1: [BadSection] unknown section; stafd.conf accepts [Global], "
        ));

        let (_, diags) = stacd("[Global]\n\nbad-option=something\n");
        assert_eq!(diags.len(), 1);
        assert_eq!(diags[0].severity, Severity::Error);
        assert_eq!(diags[0].line, Some(3));
        assert_eq!(diags[0].option.as_deref(), Some("bad-option"));
        assert!(diags[0].to_string().starts_with(
            "/etc/stas/stacd.conf:3: [Global] bad-option: unknown option; [Global] accepts tron, hdr-digest,"
        ));
    }

    #[test]
    fn last_value_rule() {
        assert_eq!(stacd("[Global]\nkato=5\n").0.global.kato, Some(5));
        assert_eq!(stacd("[Global]\n").0.global.kato, None);
        assert_eq!(stacd("[Global]\nkato=5\nkato=7\n").0.global.kato, Some(7));
        assert_eq!(stacd("[Global]\nkato=5\n  7\n").0.global.kato, Some(7));
        assert_eq!(
            stacd("[Global]\nkato=5\n[Controllers]\n[Global]\nkato=9\n")
                .0
                .global
                .kato,
            Some(9)
        );
        // Only the last value is checked: an earlier bad one is harmless.
        let (c, diags) = stacd("[Global]\nkato=abc\nkato=8\n");
        assert_eq!(c.global.kato, Some(8));
        assert!(diags.is_empty());
    }

    // -- value checks --------------------------------------------------------

    #[test]
    fn invalid_values_fall_back_to_daemon_defaults() {
        let (c, diags) = stafd("[Global]\nkato=abc\ntron=yes\nhdr-digest=1\nreconnect-delay=-3\nctrl-loss-tmo=0x10\npleo=on\n");
        assert_eq!(c, StafdConfig::default());
        assert_eq!(diags.len(), 6);
        assert_eq!(
            diags[0].to_string(),
            "/etc/stas/stafd.conf:2: [Global] kato: \"abc\" is not an integer; expected a whole \
             number of seconds (0 to 4294967295). Using the default (30)."
        );
        assert_eq!(diags[0].file, "/etc/stas/stafd.conf");
        assert_eq!(diags[0].line, Some(2));
        assert_eq!(diags[0].section, "Global");
        assert_eq!(diags[0].option.as_deref(), Some("kato"));
        assert!(diags[1].to_string().ends_with(
            "tron: \"yes\" is not a boolean; expected true or false (any case). Using the default (false)."
        ));
        assert!(diags[3].message.contains("is out of range"), "{}", diags[3]);
        assert!(
            diags[5].message.ends_with("Using the default (enabled)."),
            "{}",
            diags[5]
        );
        // stacd has no kato default.
        let (c, diags) = stacd("[Global]\nkato=1.5\n");
        assert_eq!(c.global.kato, None);
        assert!(diags[0]
            .message
            .ends_with("Using the default (not set: the kernel default applies)."));
    }

    #[test]
    fn python_int_and_bool_spellings() {
        for (text, expected) in [
            ("10", Some(10)),
            ("+10", Some(10)),
            ("1_0", Some(10)),
            ("007", Some(7)),
            ("0", Some(0)),
            ("4294967295", Some(u32::MAX)),
            ("4294967296", None),
            ("1__0", None),
            ("_1", None),
            ("1_", None),
            ("0x10", None),
            ("1.5", None),
            ("", None),
            ("-0", Some(0)),
        ] {
            assert_eq!(
                stacd(&format!("[Global]\nkato={text}\n")).0.global.kato,
                expected,
                "{text:?}"
            );
        }
        for (text, expected) in [("TRUE", true), ("False", false), ("tRuE", true)] {
            assert_eq!(
                stafd(&format!("[Global]\ntron={text}\n")).0.global.tron,
                expected
            );
        }
        let (c, _) = stacd("[Global]\nctrl-loss-tmo=-1\n");
        assert_eq!(c.global.ctrl_loss_tmo, Some(-1));
        let (c, d) = stacd("[Global]\nctrl-loss-tmo=99999999999\n");
        assert_eq!(c.global.ctrl_loss_tmo, None);
        assert_eq!(d.len(), 1);
    }

    #[test]
    fn bare_keys_are_invalid_values() {
        let (c, diags) = stafd("[Global]\ntron\n[Controllers]\ncontroller\nexclude\n");
        assert_eq!(c, StafdConfig::default());
        assert_eq!(diags.len(), 3);
        assert!(diags[0]
            .message
            .starts_with("has no value (the line has no \"=\")"));
        // A bare exclude must not become "exclude everything".
        assert!(c.excludes.is_empty());
        let (c, diags) = stacd("[I/O controller connection management]\ndisconnect-trtypes\n");
        assert_eq!(c.disconnect_trtypes, BTreeSet::from([TrType::Tcp]));
        assert_eq!(diags.len(), 1);
    }

    #[test]
    fn zeroconf_persistence() {
        let get = |v: &str| {
            let (c, d) = stafd(&format!(
                "[Discovery controller connection management]\nzeroconf-connections-persistence={v}\n"
            ));
            (c.zeroconf_persistence, d.len())
        };
        assert_eq!(get("-1"), (Persistence::Never, 0));
        assert_eq!(get("-72hours"), (Persistence::Never, 0));
        assert_eq!(get("0"), (Persistence::After(Duration::ZERO), 0));
        assert_eq!(
            get("0.5"),
            (Persistence::After(Duration::from_millis(500)), 0)
        );
        assert_eq!(
            get("3d5h"),
            (Persistence::After(Duration::from_secs(277_200)), 0)
        );
        assert_eq!(get("inf"), (Persistence::Never, 0));
        assert_eq!(get("blah"), (DEFAULT_PERSISTENCE, 1));
        assert_eq!(get("nan"), (DEFAULT_PERSISTENCE, 1));
        assert_eq!(get("1 week"), (DEFAULT_PERSISTENCE, 1));
        assert_eq!(get(""), (DEFAULT_PERSISTENCE, 1));
    }

    #[test]
    fn persistent_and_epcsd_poll_interval() {
        let get = |v: &str, m: &str| {
            let (c, d) = stafd(&format!(
                "[Discovery controller connection management]\npersistent={v}\n\
                 epcsd-poll-interval-minutes={m}\n"
            ));
            (c.persistent, c.epcsd_poll_interval(), d.len())
        };
        let min = |n: u64| Duration::from_secs(n * 60);
        assert_eq!(
            StafdConfig::default().persistent,
            Persistent::Force,
            "today's behaviour: every DC kept connected"
        );
        assert_eq!(get("auto", "15"), (Persistent::Auto, min(15), 0));
        assert_eq!(get("no", "1"), (Persistent::No, min(1), 0));
        assert_eq!(get("force", "120"), (Persistent::Force, min(120), 0));
        // Anything else falls back to the default, with a diagnostic each.
        assert_eq!(get("yes", "0"), (Persistent::Force, min(15), 2));
        assert_eq!(get("AUTO", "-5"), (Persistent::Force, min(15), 2));
        assert_eq!(get("", "quarter-hourly"), (Persistent::Force, min(15), 2));

        let (c, d) = stafd(
            "[Controllers]\ncontroller = transport=tcp;traddr=10.0.0.1;persistent=auto\n\
             controller = transport=tcp;traddr=10.0.0.2;persistent=sometimes\n",
        );
        assert_eq!(
            c.controllers[0].cid.get("persistent").map(String::as_str),
            Some("auto")
        );
        assert_eq!(c.controllers[1].cid.get("persistent"), None);
        assert_eq!(d.len(), 1, "{d:?}");
        assert!(
            d[0].message
                .contains("\"sometimes\" is not valid; expected no, auto or force"),
            "{}",
            d[0].message
        );
        let (c, d) = stacd(
            "[Controllers]\ncontroller = transport=tcp;traddr=10.0.0.1;nqn=nqn.a;persistent=auto\n",
        );
        assert_eq!(c.controllers[0].cid.get("persistent"), None);
        assert!(d[0].message.contains("stafd.conf"), "{d:?}");
    }

    #[test]
    fn connect_attempts_on_ncc() {
        let get = |v: &str| {
            let (c, d) = stacd(&format!(
                "[I/O controller connection management]\nconnect-attempts-on-ncc={v}\n"
            ));
            (c.connect_attempts_on_ncc, d.len())
        };
        assert_eq!(get("0"), (0, 0));
        assert_eq!(get("1"), (2, 0));
        assert_eq!(get("2"), (2, 0));
        assert_eq!(get("10"), (10, 0));
        // Deliberate fix: negatives are invalid.
        assert_eq!(get("-1"), (0, 1));
    }

    #[test]
    fn disconnect_trtypes_items() {
        let get = |v: &str| {
            let (c, d) = stacd(&format!(
                "[I/O controller connection management]\ndisconnect-trtypes={v}\n"
            ));
            (
                c.disconnect_trtypes.into_iter().collect::<Vec<_>>(),
                d.len(),
            )
        };
        assert_eq!(get("rdma"), (vec![TrType::Rdma], 0));
        assert_eq!(get("fc+tcp+fc"), (vec![TrType::Tcp, TrType::Fc], 0));
        assert_eq!(get("tcp+bob"), (vec![TrType::Tcp], 1));
        assert_eq!(get("rdma+loop"), (vec![TrType::Rdma], 1));
        assert_eq!(get("tcp + rdma"), (vec![TrType::Tcp], 1));
        assert_eq!(get("TCP"), (vec![TrType::Tcp], 1));
        assert_eq!(get(""), (vec![TrType::Tcp], 1));
    }

    // -- names ---------------------------------------------------------------

    #[test]
    fn section_names_are_case_sensitive_option_names_are_not() {
        let (c, diags) = stafd("[global]\nkato=5\n[Global]\nKATO = 7\n  \n");
        assert_eq!(c.global.kato, Some(7));
        assert_eq!(diags.len(), 1);
        assert_eq!(diags[0].section, "global");
        assert!(
            diags[0].message.contains("Did you mean [Global]?"),
            "{}",
            diags[0]
        );
        let (_, diags) = stafd("[ Global ]\n");
        assert!(diags[0].message.contains("Did you mean [Global]?"));
    }

    #[test]
    fn default_section_is_ordinary() {
        let (c, diags) = stafd("[DEFAULT]\nkato=5\n[Global]\n");
        assert_eq!(c.global.kato, Some(30));
        assert_eq!(diags.len(), 1);
        assert_eq!(diags[0].section, "DEFAULT");
    }

    #[test]
    fn duplicate_sections_merge_with_a_warning() {
        let (c, diags) = stafd(
            "[Controllers]\ncontroller=transport=tcp;traddr=1.1.1.1\n[Global]\ntron=true\n\
             [Controllers]\ncontroller=transport=tcp;traddr=2.2.2.2\n",
        );
        assert_eq!(diags.len(), 1, "{diags:?}");
        assert_eq!(diags[0].line, Some(5));
        assert!(
            diags[0]
                .message
                .contains("[Controllers] repeated (first at line 1)"),
            "{diags:?}"
        );
        assert!(c.global.tron);
        let lines: Vec<usize> = c.controllers.iter().map(|c| c.line).collect();
        assert_eq!(lines, [2, 6]);
    }

    #[test]
    fn legacy_and_misplaced_options_are_reported_with_hints() {
        let (c, diags) = stafd(
            "[Global]\npersistent-connections=false\nnr-io-queues=4\nzeroconf=disabled\n\
             [Controllers]\nblacklist=transport=tcp\n",
        );
        // Reported and ignored.
        assert!(c.persistent_connections && c.zeroconf && c.excludes.is_empty());
        assert_eq!(c.global.nr_io_queues, None);
        assert_eq!(diags.len(), 4);
        assert!(diags.iter().all(|d| d.severity == Severity::Error));
        assert!(diags[0]
            .message
            .contains("moved to [Discovery controller connection management]"));
        assert!(diags[1].message.contains("only valid in stacd.conf"));
        assert!(diags[2]
            .message
            .contains("zeroconf belongs in [Service Discovery]"));
        assert!(diags[3].message.contains("renamed to exclude="));
        let (_, diags) =
            stacd("[Global]\nsticky-connections=disabled\nudev-rule=enabled\npleo=enabled\n");
        assert!(diags[0].message.contains("disconnect-scope"));
        assert!(diags[1].message.contains("udev rules"));
        assert!(diags[2].message.contains("only valid in stafd.conf"));
        let (_, diags) = stacd("[Service Discovery]\nzeroconf=enabled\n");
        assert!(diags[0].message.contains("belongs in stafd.conf"));
    }

    // -- controller= / exclude= ----------------------------------------------

    #[test]
    fn vector_parse_cid() {
        for (input, expected) in [
            ("", cid(&[])),
            ("noequalsign", cid(&[])),
            ("key=val=extra", cid(&[])),
            (
                "transport=tcp;noequalsign;traddr=10.10.10.10",
                cid(&[("transport", "tcp"), ("traddr", "10.10.10.10")]),
            ),
            (
                " transport = tcp ; traddr = localhost ; ; ; kato=31",
                cid(&[
                    ("transport", "tcp"),
                    ("traddr", "localhost"),
                    ("kato", "31"),
                ]),
            ),
            ("transport=tcp,traddr=1.1.1.1", cid(&[])),
            (
                "transport=tcp;traddr=fe80::1 # comment",
                cid(&[("transport", "tcp"), ("traddr", "fe80::1 # comment")]),
            ),
            (
                "host-traddr=1.2.3.4,host-iface=eth0;transport=tcp",
                cid(&[("transport", "tcp")]),
            ),
            (
                "Transport=TCP;TRADDR=1.1.1.1",
                cid(&[("Transport", "TCP"), ("TRADDR", "1.1.1.1")]),
            ),
            (
                "transport=tcp;;traddr=1.1.1.1;",
                cid(&[("transport", "tcp"), ("traddr", "1.1.1.1")]),
            ),
            (
                "transport=tcp;traddr=",
                cid(&[("transport", "tcp"), ("traddr", "")]),
            ),
            (
                "transport=tcp;traddr=1.1.1.1;transport=rdma",
                cid(&[("transport", "rdma"), ("traddr", "1.1.1.1")]),
            ),
            ("dhchap-secret=DHHC-1:00:abc=:", cid(&[])),
            ("=value", cid(&[("", "value")])),
            ("key=", cid(&[("key", "")])),
            ("nqn=nqn.a;subsysnqn=nqn.b", cid(&[("subsysnqn", "nqn.a")])),
            ("subsysnqn=nqn.b", cid(&[("subsysnqn", "nqn.b")])),
        ] {
            assert_eq!(parse_cid(input), expected, "{input:?}");
        }
    }

    #[test]
    fn controller_entries_through_the_file() {
        let (c, diags) = stafd(
            "[Controllers]\n\
             controller = transport=tcp;traddr=fe80::1 # comment\n\
             controller = transport=tcp,traddr=1.1.1.1\n\
             controller = Transport=tcp;traddr=1.1.1.1\n\
             controller = transport=tcp;traddr=1.1.1.1;dhchap-secret=DHHC-1:00:abc=:\n\
             controller = transport=bogus;traddr=1.1.1.1\n",
        );
        assert_eq!(c.controllers.len(), 5);
        let messages: Vec<(Option<usize>, &str)> =
            diags.iter().map(|d| (d.line, d.message.as_str())).collect();
        let has = |line: usize, needle: &str| {
            assert!(
                messages
                    .iter()
                    .any(|(l, m)| *l == Some(line) && m.contains(needle)),
                "line {line}: {needle:?} not in {messages:#?}"
            );
        };
        has(2, "inline comments are not supported");
        has(3, "not \",\"");
        has(3, "empty entry");
        has(4, "did you mean \"transport\"?");
        has(4, "no transport field");
        has(5, "a value cannot contain \"=\"");
        has(6, "transport \"bogus\" is not tcp, rdma, fc or loop");
        assert!(diags
            .iter()
            .all(|d| d.option.as_deref() == Some("controller")));
    }

    #[test]
    fn continuation_lines_are_separate_controllers() {
        let (c, diags) = stafd(
            "[Controllers]\ncontroller =\n    transport=tcp;traddr=1.1.1.1\n    transport=tcp;traddr=2.2.2.2\n",
        );
        assert_eq!(
            cids(&c.controllers),
            vec![
                cid(&[]),
                cid(&[("transport", "tcp"), ("traddr", "1.1.1.1")]),
                cid(&[("transport", "tcp"), ("traddr", "2.2.2.2")]),
            ]
        );
        assert_eq!(c.controllers[2].line, 4);
        assert_eq!(diags.len(), 1, "{diags:#?}");
    }

    #[test]
    fn invalid_overrides_are_dropped_so_global_applies() {
        let (c, diags) = stacd(
            "[Controllers]\ncontroller=transport=tcp;traddr=1.1.1.1;nqn=nqn.x;kato=abc;hdr-digest=TRUE;\
             queue-size=8;ctrl-loss-tmo=-1;nr-io-queues=+4;disable-sqflow=nope\n",
        );
        assert_eq!(
            cids(&c.controllers),
            vec![cid(&[
                ("transport", "tcp"),
                ("traddr", "1.1.1.1"),
                ("subsysnqn", "nqn.x"),
                ("hdr-digest", "true"),
                ("ctrl-loss-tmo", "-1"),
                ("nr-io-queues", "4"),
            ])]
        );
        assert_eq!(diags.len(), 3, "{diags:#?}");
        assert!(diags.iter().any(|d| {
            d.to_string()
            == "/etc/stas/stacd.conf:2: [Controllers] controller: override kato: \"abc\" is not an \
                integer; expected a whole number of seconds (0 to 4294967295). Ignored, so \
                [Global] kato applies to this controller."
        }));
    }

    #[test]
    fn exclude_entries() {
        let (c, diags) = stafd(
            "[Controllers]\n\
             exclude = transport=tcp;traddr=10.10.10.10;host-traddr=1.2.3.4;nqn=nqn.x;kato=30\n\
             exclude = host-traddr=1.2.3.4\n\
             exclude =\n\
             exclude = transport=tcp,traddr=1.1.1.1\n",
        );
        assert_eq!(
            c.excludes,
            vec![cid(&[
                ("transport", "tcp"),
                ("traddr", "10.10.10.10"),
                ("subsysnqn", "nqn.x"),
                ("kato", "30"),
            ]),]
        );
        let everything: Vec<Option<usize>> = diags
            .iter()
            .filter(|d| {
                d.message
                    .contains("is ignored (nvme-stas would exclude EVERY controller")
            })
            .map(|d| d.line)
            .collect();
        assert_eq!(everything, [Some(3), Some(4), Some(5)]);
        assert!(diags
            .iter()
            .any(|d| d.line == Some(2) && d.message.contains("host-traddr")));
    }

    // -- rendering -----------------------------------------------------------

    /// What re-parsing a rendering gives back: no line numbers, secrets
    /// redacted.
    fn without_lines(mut controllers: Vec<ControllerSpec>) -> Vec<ControllerSpec> {
        for c in &mut controllers {
            c.line = 0;
            for key in SECRET_KEYS {
                if let Some(v) = c.cid.get_mut(key) {
                    *v = "<redacted>".to_owned();
                }
            }
        }
        controllers
    }

    /// Renders, re-parses, compares; returns the re-parse's diagnostics.
    fn stafd_round_trip(config: &StafdConfig) -> Vec<Diagnostic> {
        let text = config.to_string();
        let (again, diags) = parse_stafd(&text, "rendered").unwrap();
        let mut expected = config.clone();
        expected.controllers = without_lines(expected.controllers);
        let mut again = again;
        again.controllers = without_lines(again.controllers);
        assert_eq!(again, expected, "{text}");
        diags
    }

    fn stacd_round_trip(config: &StacdConfig) -> Vec<Diagnostic> {
        let text = config.to_string();
        let (again, diags) = parse_stacd(&text, "rendered").unwrap();
        let mut expected = config.clone();
        expected.controllers = without_lines(expected.controllers);
        let mut again = again;
        again.controllers = without_lines(again.controllers);
        assert_eq!(again, expected, "{text}");
        diags
    }

    #[test]
    fn effective_configuration_lists_every_option() {
        let text = StafdConfig::default().to_string();
        for line in [
            "[Global]",
            "tron = false",
            "kato = 30",
            "# queue-size = (kernel default)",
            "# ctrl-loss-tmo = (kernel default)",
            "ip-family = ipv4+ipv6",
            "pleo = enabled",
            "[Service Discovery]",
            "zeroconf = enabled",
            "[Discovery controller connection management]",
            "persistent-connections = true",
            "zeroconf-connections-persistence = 72hours",
            "persistent = force",
            "epcsd-poll-interval-minutes = 15",
            "[Controllers]",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line:?} missing from\n{text}"
            );
        }
        assert!(!text.contains("nr-io-queues"));
        let text = StacdConfig::default().to_string();
        for line in [
            "# kato = (kernel default)",
            "# nr-io-queues = (kernel default)",
            "[I/O controller connection management]",
            "disconnect-scope = only-stas-connections",
            "disconnect-trtypes = tcp",
            "connect-attempts-on-ncc = 0",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line:?} missing from\n{text}"
            );
        }
        assert!(!text.contains("pleo"));
    }

    #[test]
    fn render_then_parse_round_trips() {
        // A clean configuration renders to a clean file.
        assert!(stafd_round_trip(&StafdConfig::default()).is_empty());
        assert!(stafd_round_trip(&stafd(&fixture("stafd-all-options.conf")).0).is_empty());
        assert!(stacd_round_trip(&stacd(&fixture("stacd-all-options.conf")).0).is_empty());
        stafd_round_trip(&stafd(FILE_A).0);
        stafd_round_trip(
            &stafd("[Controllers]\nexclude=\ncontroller=\ncontroller==x;nqn=nqn.y\n").0,
        );
        for v in ["-1", "0", "0.5", "90", "1.25", "3d5h"] {
            stafd_round_trip(
                &stafd(&format!(
                    "[Discovery controller connection management]\nzeroconf-connections-persistence={v}\n"
                ))
                .0,
            );
        }
        assert!(stacd_round_trip(&StacdConfig::default()).is_empty());
        stacd_round_trip(&stacd("[Global]\nkato=5\n[I/O controller connection management]\ndisconnect-scope=no-disconnect\ndisconnect-trtypes=fc+rdma\n").0);
    }

    #[test]
    fn rendering_redacts_secrets() {
        let (config, _) = stacd(&fixture("stacd-all-options.conf"));
        let text = config.to_string();
        assert!(text.contains(
            "controller = transport=tcp;traddr=10.10.1.100;trsvcid=4420;nqn=nqn.1988-11.com.dell:\
             PowerSANxxx:01:20210225100113-454f73093ceb4847a7bdfc6e34ae8e28;dhchap-secret=<redacted>\n"
        ), "{text}");
        assert!(!text.contains("DHHC-1"));
        let (again, _) = parse_stacd(&text, "rendered").unwrap();
        let mut expected = config.clone();
        expected.controllers[0]
            .cid
            .insert("dhchap-secret".to_owned(), "<redacted>".to_owned());
        assert_eq!(cids(&again.controllers), cids(&expected.controllers));
        assert_eq!(again.global, expected.global);
        // FA file A's controller secret too.
        let text = stafd(FILE_A).0.to_string();
        assert!(text.contains("dhchap-ctrl-secret=<redacted>") && !text.contains("super-secret"));
    }

    // -- loading ---------------------------------------------------------------

    #[test]
    fn syntax_errors_are_errors_with_the_line() {
        let err = parse_stafd(
            "[Global]\ntron=true\n\n[Controllers\n",
            "/etc/stas/stafd.conf",
        )
        .unwrap_err();
        assert!(
            matches!(err, ConfigError::Syntax { line: 4, .. }),
            "{err:?}"
        );
        assert!(err
            .to_string()
            .starts_with("/etc/stas/stafd.conf:4: malformed section header"));
        let err = parse_stacd("kato=5\n", "x.conf").unwrap_err();
        assert!(err.to_string().starts_with("x.conf:1: "), "{err}");
    }

    #[test]
    fn loading_files() {
        let dir = TempDir::new();
        // Missing: defaults, nothing to say.
        let (c, d) = load_stafd(&dir.path("nope.conf")).unwrap();
        assert_eq!((c, d.len()), (StafdConfig::default(), 0));
        let (c, d) = load_stacd(&dir.path("nope.conf")).unwrap();
        assert_eq!((c, d.len()), (StacdConfig::default(), 0));
        // Diagnostics name the path.
        let path = dir.write("stafd.conf", "[Global]\nkato=x\n");
        let (_, d) = load_stafd(&path).unwrap();
        assert_eq!(d[0].file, path.display().to_string());
        // Not a regular file (a directory) and not UTF-8: errors.
        assert!(matches!(
            load_stafd(&dir.0),
            Err(ConfigError::Refused { .. })
        ));
        let bad = dir.0.join("bad.conf");
        std::fs::write(&bad, b"[Global]\n\ntron=\xff\n").unwrap();
        let err = load_stacd(&bad).unwrap_err();
        assert!(
            matches!(err, ConfigError::Syntax { line: 3, .. }),
            "{err:?}"
        );
    }

    // -- sys.conf --------------------------------------------------------------

    const NQN: &str = "nqn.2014-08.org.nvmexpress:uuid:9aae2691-b275-4b64-8bfe-5da429a2bab9";
    const ID: &str = "56529e15-0f3e-4ede-87e2-63932a4adb99";

    fn sysconf(text: &str, etc: &TempDir) -> Result<(SysConf, Vec<Diagnostic>), ConfigError> {
        parse_sysconf(text, "/etc/stas/sys.conf", &etc.0)
    }

    #[test]
    fn vector_sysconf_values_as_given() {
        let etc = TempDir::new();
        let key = "DHHC-1:03:qwertyuiopasdfghjklzxcvbnm0123456789QWERTYUIOPASDFGHJKLZXCVBNM010101010101010101010101010101:";
        let (conf, diags) = sysconf(
            &format!("[Host]\nnqn={NQN}\nid={ID}\nkey={key}\nsymname=Bart-Simpson\n"),
            &etc,
        )
        .unwrap();
        assert!(diags.is_empty());
        assert_eq!(
            conf,
            SysConf {
                hostnqn: NQN.to_owned(),
                hostid: ID.to_owned(),
                hostkey: Some(key.to_owned()),
                symname: Some("Bart-Simpson".to_owned()),
            }
        );
        assert!(!conf.to_string().contains("DHHC"));
    }

    #[test]
    fn vector_sysconf_fatal_cases() {
        let etc = TempDir::new();
        etc.write("hostid", ID);
        // Empty file: upstream leaves the NQN undefined and fails later.
        etc.write("empty", "");
        let empty = etc.0.join("empty");
        let err = sysconf(&format!("[Host]\nnqn=file://{}\n", empty.display()), &etc).unwrap_err();
        assert!(err.to_string().contains("Host NQN is empty"), "{err}");
        // A device is no key file (upstream read /dev/null as empty).
        let err = sysconf("[Host]\nnqn=file:///dev/null\n", &etc).unwrap_err();
        assert!(err.to_string().contains("not a regular file"), "{err}");
        let err = sysconf(
            &format!("[Host]\nnqn=qnq.2014-08.org.nvmexpress:uuid:x\nid={ID}\n"),
            &etc,
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "/etc/stas/sys.conf:2: [Host] nqn: Host NQN \"qnq.2014-08.org.nvmexpress:uuid:x\" \
             should start with \"nqn.\" (as configured)"
        );
        let missing = "file:///some/non/existing/file/!@#";
        let err = sysconf(
            &format!("[Host]\nnqn={missing}\nid={missing}\nsymname={missing}\n"),
            &etc,
        )
        .unwrap_err();
        assert!(err.to_string().starts_with(
            "/etc/stas/sys.conf:2: [Host] nqn: Error reading mandatory Host NQN (see stasadm --help): \
             /some/non/existing/file/!@#: "
        ), "{err}");
        let err = sysconf(&format!("[Host]\nnqn={NQN}\nid={missing}\n"), &etc).unwrap_err();
        assert!(err.to_string().starts_with(
            "/etc/stas/sys.conf:3: [Host] id: Error reading mandatory Host ID (see stasadm --help): "
        ), "{err}");
        let long = format!("nqn.{}", "a".repeat(220));
        assert_eq!(long.len(), 224);
        let err = sysconf(&format!("[Host]\nnqn={long}\n"), &etc).unwrap_err();
        assert!(
            err.to_string()
                .contains("is 224 characters long; the maximum is 223"),
            "{err}"
        );
        let ok = format!("nqn.{}", "a".repeat(219));
        assert_eq!(
            sysconf(&format!("[Host]\nnqn={ok}\n"), &etc)
                .unwrap()
                .0
                .hostnqn,
            ok
        );
        // Explicitly empty or bare.
        assert!(sysconf("[Host]\nnqn=\n", &etc).is_err());
        assert!(sysconf("[Host]\nnqn\n", &etc).is_err());
    }

    #[test]
    fn vector_sysconf_symname_file_missing_is_a_warning() {
        let etc = TempDir::new();
        let (conf, diags) = sysconf(
            &format!("[Host]\nnqn={NQN}\nid={ID}\nsymname=file:///some/non/existing/file/!@#\n"),
            &etc,
        )
        .unwrap();
        assert_eq!(conf.symname, None);
        assert_eq!(diags.len(), 1);
        assert_eq!(diags[0].line, Some(4));
        assert!(diags[0]
            .message
            .starts_with("Error reading host symbolic name (will remain undefined): "));
    }

    #[test]
    fn sysconf_missing_file_uses_etc_nvme() {
        let etc = TempDir::new();
        let sys = etc.path("sys.conf");
        // No hostnqn file: fatal, naming it.
        let err = load_sysconf(&sys, &etc.0).unwrap_err();
        assert!(
            err.to_string().contains("Error reading mandatory Host NQN"),
            "{err}"
        );
        assert!(err
            .to_string()
            .contains(&etc.path("hostnqn").display().to_string()));
        etc.write("hostnqn", &format!("{NQN}   trailing words\nsecond line\n"));
        let err = load_sysconf(&sys, &etc.0).unwrap_err();
        assert!(
            err.to_string().contains("Error reading mandatory Host ID"),
            "{err}"
        );
        etc.write("hostid", &format!("\t{ID}\n"));
        let (conf, diags) = load_sysconf(&sys, &etc.0).unwrap();
        assert!(diags.is_empty());
        assert_eq!(conf.hostnqn, NQN);
        assert_eq!(conf.hostid, ID);
        assert_eq!((conf.hostkey, conf.symname), (None, None));
        etc.write("hostkey", "DHHC-1:00:abc:\n");
        let (conf, _) = load_sysconf(&sys, &etc.0).unwrap();
        assert_eq!(conf.hostkey.as_deref(), Some("DHHC-1:00:abc:"));
    }

    #[test]
    fn sysconf_file_references() {
        let etc = TempDir::new();
        let nqn = etc.write("nqn", &format!("{NQN}\n"));
        let sym = etc.write("symname", "my host name\n");
        let empty = etc.write("empty", "\n");
        let id = etc.write("id", "");
        let text = format!(
            "[Host]\nnqn=file://{}\nid=file://{}\nsymname=file://{}\nkey=file://{}\n",
            nqn.display(),
            id.display(),
            sym.display(),
            empty.display()
        );
        let (conf, diags) = sysconf(&text, &etc).unwrap();
        assert_eq!(conf.hostnqn, NQN);
        // Only the first word of the first line.
        assert_eq!(conf.symname.as_deref(), Some("my"));
        assert_eq!(conf.hostkey, None);
        // An empty ID is accepted, with a warning.
        assert_eq!(conf.hostid, "");
        assert_eq!(about(&diags, "id").len(), 1);
        // A configured key file that is missing is worth a warning.
        let text = format!("[Host]\nnqn={NQN}\nid={ID}\nkey=file:///no/such/key\n");
        let (conf, diags) = sysconf(&text, &etc).unwrap();
        assert_eq!(conf.hostkey, None);
        assert_eq!(about(&diags, "key").len(), 1);
    }

    #[test]
    fn sysconf_reports_unknown_names_and_continuations() {
        let etc = TempDir::new();
        let (conf, diags) = sysconf(
            &format!("[Host]\nhostnqn=nqn.x\nnqn={NQN}\n   extra\nnqn={NQN}\nid={ID}\n[Other]\n"),
            &etc,
        )
        .unwrap();
        assert_eq!(conf.hostnqn, NQN);
        assert!(diags.iter().all(|d| d.severity == Severity::Warning));
        let lines: Vec<Option<usize>> = diags.iter().map(|d| d.line).collect();
        assert_eq!(lines, [Some(2), Some(7)], "{diags:#?}");
        // Continuation lines after the last occurrence are ignored with a warning.
        let (conf, diags) =
            sysconf(&format!("[Host]\nnqn={NQN}\n   extra\nid={ID}\n"), &etc).unwrap();
        assert_eq!(conf.hostnqn, NQN);
        assert_eq!(diags.len(), 1);
        assert_eq!(diags[0].line, Some(3));
    }

    #[test]
    fn diagnostic_display_without_line_or_option() {
        let d = Diagnostic {
            file: "f".to_owned(),
            line: None,
            section: String::new(),
            option: None,
            message: "m".to_owned(),
            severity: Severity::Warning,
        };
        assert_eq!(d.to_string(), "f: m");
    }
}
