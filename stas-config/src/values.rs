//! The option tables of each file and the checks every value passes
//! (docs/behaviour.md §3.4); `controller=` field parsing and rendering.

use super::*;

// ---------------------------------------------------------------------------
// Option tables

pub(crate) const GLOBAL: &str = "Global";
pub(crate) const SERVICE_DISCOVERY: &str = "Service Discovery";
pub(crate) const DC_MANAGEMENT: &str = "Discovery controller connection management";
pub(crate) const IOC_MANAGEMENT: &str = "I/O controller connection management";
pub(crate) const CONTROLLERS: &str = "Controllers";

/// Which daemon a file belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Daemon {
    Stafd,
    Stacd,
}

pub(crate) type Table = &'static [(&'static str, &'static [&'static str])];

/// Which file is being checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FileKind {
    Daemon(Daemon),
    SysConf,
}

impl FileKind {
    pub(crate) fn table(self) -> Table {
        match self {
            FileKind::Daemon(Daemon::Stafd) => STAFD_TABLE,
            FileKind::Daemon(Daemon::Stacd) => STACD_TABLE,
            FileKind::SysConf => SYSCONF_TABLE,
        }
    }

    pub(crate) fn file_name(self) -> &'static str {
        match self {
            FileKind::Daemon(Daemon::Stafd) => "stafd.conf",
            FileKind::Daemon(Daemon::Stacd) => "stacd.conf",
            FileKind::SysConf => "sys.conf",
        }
    }

    /// The other daemon's file, for "belongs in stacd.conf" hints.
    pub(crate) fn other(self) -> Option<FileKind> {
        match self {
            FileKind::Daemon(Daemon::Stafd) => Some(FileKind::Daemon(Daemon::Stacd)),
            FileKind::Daemon(Daemon::Stacd) => Some(FileKind::Daemon(Daemon::Stafd)),
            FileKind::SysConf => None,
        }
    }
}

pub(crate) const STAFD_TABLE: Table = &[
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

pub(crate) const STACD_TABLE: Table = &[
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

pub(crate) const SYSCONF_TABLE: Table = &[("Host", &["nqn", "id", "key", "symname"])];

/// Options removed from nvme-stas, with what replaced them (docs/behaviour.md §3.12).
pub(crate) fn legacy_hint(daemon: Daemon, section: &str, option: &str) -> Option<&'static str> {
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
pub(crate) fn option_hint(kind: FileKind, section: &str, option: &str) -> Option<String> {
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
// Value checks (docs/behaviour.md §3.4)

/// How to check one kind of value: what is accepted, and a converter whose
/// error is a phrase completing `"<value>" ...`.
pub(crate) struct Check<T> {
    pub(crate) expected: &'static str,
    pub(crate) conv: fn(&str) -> Result<T, &'static str>,
}

/// A value that failed its [`Check`]; displays as
/// `"abc" is not an integer; expected ...`, the text diagnostics quote.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{value:?} {problem}; expected {expected}")]
pub(crate) struct InvalidValue {
    /// The value as written.
    pub(crate) value: String,
    /// What is wrong with it, completing `"<value>" ...`.
    pub(crate) problem: &'static str,
    /// What is accepted.
    pub(crate) expected: &'static str,
}

impl<T> Check<T> {
    /// Converts, or explains why not.
    pub(crate) fn apply(&self, v: &str) -> Result<T, InvalidValue> {
        (self.conv)(v).map_err(|problem| InvalidValue {
            value: v.to_owned(),
            problem,
            expected: self.expected,
        })
    }
}

/// Python `int()` on stripped text: optional sign, ASCII digits, single `_`
/// between digits. Saturates instead of growing without bound.
pub(crate) fn py_int(text: &str) -> Option<i128> {
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

pub(crate) fn conv_bool(v: &str) -> Result<bool, &'static str> {
    if v.eq_ignore_ascii_case("true") {
        Ok(true)
    } else if v.eq_ignore_ascii_case("false") {
        Ok(false)
    } else {
        Err("is not a boolean")
    }
}

pub(crate) fn conv_enabled(v: &str) -> Result<bool, &'static str> {
    if v.eq_ignore_ascii_case("enabled") {
        Ok(true)
    } else if v.eq_ignore_ascii_case("disabled") {
        Ok(false)
    } else {
        Err("is not valid")
    }
}

pub(crate) fn conv_u32(v: &str) -> Result<u32, &'static str> {
    let n = py_int(v).ok_or("is not an integer")?;
    u32::try_from(n).map_err(|_| "is out of range")
}

pub(crate) fn conv_i32(v: &str) -> Result<i32, &'static str> {
    let n = py_int(v).ok_or("is not an integer")?;
    i32::try_from(n).map_err(|_| "is out of range")
}

pub(crate) fn conv_queue_size(v: &str) -> Result<u32, &'static str> {
    let n = py_int(v).ok_or("is not an integer")?;
    u32::try_from(n)
        .ok()
        .filter(|n| (16..=1024).contains(n))
        .ok_or("is not within range 16..1024")
}

pub(crate) fn conv_ip_family(v: &str) -> Result<IpFamily, &'static str> {
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

pub(crate) fn conv_scope(v: &str) -> Result<DisconnectScope, &'static str> {
    [
        DisconnectScope::OnlyStasConnections,
        DisconnectScope::AllConnectionsMatchingDisconnectTrtypes,
        DisconnectScope::NoDisconnect,
    ]
    .into_iter()
    .find(|s| s.as_str() == v)
    .ok_or("is not a valid scope")
}

pub(crate) fn conv_mdns_backend(v: &str) -> Result<MdnsBackend, &'static str> {
    match v {
        "auto" => Ok(MdnsBackend::Auto),
        "builtin" => Ok(MdnsBackend::Builtin),
        "avahi" => Ok(MdnsBackend::Avahi),
        _ => Err("is not valid"),
    }
}

pub(crate) fn conv_ncc(v: &str) -> Result<u32, &'static str> {
    let n = py_int(v).ok_or("is not an integer")?;
    // Deliberate fix (docs/upstream.md §18.2 #16): upstream accepts negatives, which
    // make stacd give up after the first failure; they are invalid here.
    if n < 0 {
        return Err("is negative");
    }
    let n = u32::try_from(n).map_err(|_| "is out of range")?;
    // Upstream raises 1 to 2 without a word: one attempt would never retry.
    Ok(if n == 1 { 2 } else { n })
}

pub(crate) fn conv_persistent(v: &str) -> Result<Persistent, &'static str> {
    Persistent::parse(v).ok_or("is not valid")
}

pub(crate) fn conv_poll_minutes(v: &str) -> Result<u32, &'static str> {
    let n = py_int(v).ok_or("is not an integer")?;
    // The poll is the only way back for a DC that is not kept connected:
    // "never" is no answer (nvme-stas main refuses 0 too).
    if n < 1 {
        return Err("is less than 1");
    }
    u32::try_from(n).map_err(|_| "is out of range")
}

pub(crate) fn conv_persistence(v: &str) -> Result<Persistence, &'static str> {
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

pub(crate) const BOOL: Check<bool> = Check {
    expected: "true or false (any case)",
    conv: conv_bool,
};
pub(crate) const ENABLED: Check<bool> = Check {
    expected: "enabled or disabled (any case)",
    conv: conv_enabled,
};
pub(crate) const SECONDS: Check<u32> = Check {
    expected: "a whole number of seconds (0 to 4294967295)",
    conv: conv_u32,
};
pub(crate) const QUEUES: Check<u32> = Check {
    expected: "a whole number of queues",
    conv: conv_u32,
};
pub(crate) const QUEUE_SIZE: Check<u32> = Check {
    expected: "a whole number from 16 to 1024",
    conv: conv_queue_size,
};
pub(crate) const CTRL_LOSS_TMO: Check<i32> = Check {
    expected: "a whole number of seconds, or -1 to retry forever",
    conv: conv_i32,
};
pub(crate) const IP_FAMILY: Check<IpFamily> = Check {
    expected: "ipv4, ipv6, ipv4+ipv6 or ipv6+ipv4 (lower case)",
    conv: conv_ip_family,
};
pub(crate) const SCOPE: Check<DisconnectScope> = Check {
    expected: "only-stas-connections, all-connections-matching-disconnect-trtypes or no-disconnect",
    conv: conv_scope,
};
pub(crate) const MDNS_BACKEND: Check<MdnsBackend> = Check {
    expected: "auto, builtin or avahi (lower case)",
    conv: conv_mdns_backend,
};
pub(crate) const NCC: Check<u32> = Check {
    expected: "0 (never give up) or a whole number of attempts (1 counts as 2)",
    conv: conv_ncc,
};
pub(crate) const PERSISTENT: Check<Persistent> = Check {
    expected: "no, auto or force (lower case)",
    conv: conv_persistent,
};
pub(crate) const POLL_MINUTES: Check<u32> = Check {
    expected: "a whole number of minutes, at least 1",
    conv: conv_poll_minutes,
};
pub(crate) const PERSISTENCE: Check<Persistence> = Check {
    expected: "a time span such as 72hours, 3d5h, 1:30:00 or a number of seconds, \
               or -1 to keep them forever",
    conv: conv_persistence,
};

/// The per-controller overrides of `[Global]` options on a `controller=`
/// line (§3.8, [`OVERRIDE_KEYS`]), typed; `None` where the line sets none.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ControllerOverrides {
    /// `hdr-digest`.
    pub hdr_digest: Option<bool>,
    /// `data-digest`.
    pub data_digest: Option<bool>,
    /// `disable-sqflow`.
    pub disable_sqflow: Option<bool>,
    /// `kato`, in seconds.
    pub kato: Option<u32>,
    /// `reconnect-delay`, in seconds.
    pub reconnect_delay: Option<u32>,
    /// `ctrl-loss-tmo`, in seconds (-1: retry forever).
    pub ctrl_loss_tmo: Option<i32>,
    /// `queue-size`.
    pub queue_size: Option<u32>,
    /// `nr-io-queues`.
    pub nr_io_queues: Option<u32>,
    /// `nr-write-queues`.
    pub nr_write_queues: Option<u32>,
    /// `nr-poll-queues`.
    pub nr_poll_queues: Option<u32>,
}

impl ControllerOverrides {
    /// The overrides among the fields of `cid`. The config reader has
    /// dropped the invalid ones from the cids it makes (with a diagnostic),
    /// so any still invalid here are skipped: the `[Global]` value applies.
    pub fn from_cid(cid: &Cid) -> Self {
        let mut overrides = Self::default();
        for (key, value) in cid {
            // Not an override key, or invalid: nothing to record.
            let _ = overrides.set(key, value);
        }
        overrides
    }

    /// Checks `v` like the `[Global]` option `key` and records it; returns
    /// the normalised text (`TRUE` → `true`), or why `v` is invalid; `None`
    /// when `key` is not an override.
    pub(crate) fn set(&mut self, key: &str, v: &str) -> Option<Result<String, InvalidValue>> {
        fn keep<T: Copy + ToString>(
            slot: &mut Option<T>,
            checked: Result<T, InvalidValue>,
        ) -> Result<String, InvalidValue> {
            checked.map(|value| {
                *slot = Some(value);
                value.to_string()
            })
        }
        Some(match key {
            "hdr-digest" => keep(&mut self.hdr_digest, BOOL.apply(v)),
            "data-digest" => keep(&mut self.data_digest, BOOL.apply(v)),
            "disable-sqflow" => keep(&mut self.disable_sqflow, BOOL.apply(v)),
            "kato" => keep(&mut self.kato, SECONDS.apply(v)),
            "reconnect-delay" => keep(&mut self.reconnect_delay, SECONDS.apply(v)),
            "ctrl-loss-tmo" => keep(&mut self.ctrl_loss_tmo, CTRL_LOSS_TMO.apply(v)),
            "queue-size" => keep(&mut self.queue_size, QUEUE_SIZE.apply(v)),
            "nr-io-queues" => keep(&mut self.nr_io_queues, QUEUES.apply(v)),
            "nr-write-queues" => keep(&mut self.nr_write_queues, QUEUES.apply(v)),
            "nr-poll-queues" => keep(&mut self.nr_poll_queues, QUEUES.apply(v)),
            _ => return None,
        })
    }
}

/// `controller=` keys with a meaning (docs/behaviour.md §3.8), besides the overrides.
pub(crate) const ADDRESS_KEYS: [&str; 9] = [
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
pub(crate) const SECRET_KEYS: [&str; 2] = ["dhchap-secret", "dhchap-ctrl-secret"];

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
pub(crate) const DC_KEYS: [&str; 1] = ["persistent"];

pub(crate) fn is_known_key(key: &str) -> bool {
    ADDRESS_KEYS.contains(&key) || OVERRIDE_KEYS.contains(&key) || DC_KEYS.contains(&key)
}

// ---------------------------------------------------------------------------
// controller= / exclude= values (docs/behaviour.md §3.8)

/// Parses one `controller=` / `exclude=` value exactly like upstream:
/// `;`-separated fields, each split on `=` into exactly two stripped parts
/// (anything else is dropped), later duplicates win, `nqn` becomes
/// `subsysnqn`. No validation.
pub fn parse_cid(text: &str) -> Cid {
    parse_cid_detailed(text).0
}

/// [`parse_cid`], also returning the fields that were dropped.
pub(crate) fn parse_cid_detailed(text: &str) -> (Cid, Vec<&str>) {
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
