//! Transport IDs (docs/behaviour.md §4): the identity key of a controller, its
//! defaults, string and dictionary forms, exclusion (§3.9), address-family
//! filtering (§4.5), and the small IP helpers both daemons use (§17.5).
//!
//! Identity is the seven string fields compared exactly; the tolerances of
//! sysfs matching (IPv6 canonical form, IPv4-mapped folding, the well-known
//! NQN wildcard) live in [`crate::matching`], not here.
//!
//! Bare § numbers refer to docs/behaviour.md and docs/upstream.md;
//! other documents are named where they are cited.

pub mod matching;
pub mod nbft;

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::net::IpAddr;

use nvmf_proto::dlp::DiscoveryLogEntry;

use stas_config::{Cid, ControllerOverrides, IpFamily};

/// Default trsvcid for tcp, discovery and I/O controllers alike (§4.2;
/// upstream applies the discovery port to IOCs too, and so do we so that
/// TIDs stay equal to upstream's and to the LKC written by it).
pub const TCP_DEFAULT_TRSVCID: &str = "8009";
/// Default trsvcid for rdma.
pub const RDMA_DEFAULT_TRSVCID: &str = "4420";

/// The trsvcid a transport uses when none is given (§4.2): tcp
/// [`TCP_DEFAULT_TRSVCID`], rdma [`RDMA_DEFAULT_TRSVCID`]; other
/// transports have no service id.
pub fn default_trsvcid(transport: &str) -> Option<&'static str> {
    match transport {
        "tcp" => Some(TCP_DEFAULT_TRSVCID),
        "rdma" => Some(RDMA_DEFAULT_TRSVCID),
        _ => None,
    }
}

/// The keys that are TID fields rather than `cfg` entries (`host-nqn` is a
/// field too but upstream also keeps it in `cfg`).
const FIELD_KEYS: [&str; 6] = [
    "transport",
    "traddr",
    "trsvcid",
    "subsysnqn",
    "host-traddr",
    "host-iface",
];

/// What a TID takes from its surroundings at construction time.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TidContext {
    /// The sys.conf host NQN, used when a cid has no `host-nqn` key.
    /// Cached by the caller at start/reload (\[REC\] for §18.2 #21: upstream
    /// re-reads the file on every TID).
    pub host_nqn: String,
    /// The daemon's `ignore-iface`: erases `host_iface` (§4.4).
    pub ignore_iface: bool,
}

/// A transport ID (§4.1).
///
/// Equality, ordering and hashing use the seven identity fields only;
/// `cfg` is carried along but is not identity. Upstream hashes with MD5 of
/// the concatenated fields to get a value stable across restarts, but only
/// ever uses it for in-memory maps, so the derived-style [`Hash`] over the
/// same fields is equivalent for every use.
#[derive(Debug, Clone, Default)]
pub struct Tid {
    /// `tcp`, `rdma`, `fc`, `loop`, or whatever was configured.
    pub transport: String,
    /// Transport address (IP literal, FC address, ...).
    pub traddr: String,
    /// Transport service id, defaulted per §4.2.
    pub trsvcid: String,
    /// Subsystem NQN.
    pub subsysnqn: String,
    /// Host transport address (source address / FC host address).
    pub host_traddr: String,
    /// Host interface; "" when `ignore-iface` is set.
    pub host_iface: String,
    /// Host NQN (per-controller `host-nqn`, else sys.conf).
    pub host_nqn: String,
    /// Every other key of the cid, including `host-nqn` when it was given.
    pub cfg: Cid,
    /// The `[Global]` overrides among `cfg`, typed once here rather than at
    /// every connect.
    pub overrides: ControllerOverrides,
}

impl Tid {
    fn identity(&self) -> [&str; 7] {
        [
            &self.transport,
            &self.traddr,
            &self.trsvcid,
            &self.subsysnqn,
            &self.host_traddr,
            &self.host_iface,
            &self.host_nqn,
        ]
    }

    /// Builds a TID from a loose controller description (§4.1, §4.2, §4.4).
    pub fn from_cid(cid: &Cid, ctx: &TidContext) -> Tid {
        let get = |k: &str| cid.get(k).cloned().unwrap_or_default();
        let transport = get("transport");
        let given = get("trsvcid");
        // fc, loop and unknown transports have no service id (§4.2).
        let trsvcid = match default_trsvcid(&transport) {
            Some(default) if given.is_empty() => default.to_owned(),
            Some(_) => given,
            None => String::new(),
        };
        let host_iface = if ctx.ignore_iface {
            String::new()
        } else {
            get("host-iface")
        };
        // A present host-nqn key wins even when empty (§4.1).
        let host_nqn = cid
            .get("host-nqn")
            .cloned()
            .unwrap_or_else(|| ctx.host_nqn.clone());
        let cfg = cid
            .iter()
            .filter(|(k, _)| !FIELD_KEYS.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let overrides = ControllerOverrides::from_cid(&cfg);
        Tid {
            transport,
            traddr: get("traddr"),
            trsvcid,
            subsysnqn: get("subsysnqn"),
            host_traddr: get("host-traddr"),
            host_iface,
            host_nqn,
            cfg,
            overrides,
        }
    }

    /// The dictionary form (§4.6): the six cid fields, then `cfg`, then
    /// `host-nqn` set to the TID's host NQN. `from_cid(&t.as_dict(), ctx)`
    /// equals `t` for any TID built by [`Tid::from_cid`] with the same ctx.
    pub fn as_dict(&self) -> Cid {
        let mut d = Cid::new();
        d.insert("traddr".into(), self.traddr.clone());
        d.insert("trsvcid".into(), self.trsvcid.clone());
        d.insert("transport".into(), self.transport.clone());
        d.insert("subsysnqn".into(), self.subsysnqn.clone());
        d.insert("host-iface".into(), self.host_iface.clone());
        d.insert("host-traddr".into(), self.host_traddr.clone());
        // Same order as upstream's dict.update(cfg): cfg may override.
        d.extend(self.cfg.iter().map(|(k, v)| (k.clone(), v.clone())));
        d.insert("host-nqn".into(), self.host_nqn.clone());
        d
    }

    /// The TID of a discovery log page entry (§4.7). `host_traddr`,
    /// `host_iface` and `host_nqn` are those of the discovery controller the
    /// entry came from; an empty `host_nqn` falls back to `ctx.host_nqn`.
    /// Values are stripped as stafd does before caching entries (§6.6).
    pub fn from_dlpe(
        e: &DiscoveryLogEntry,
        host_traddr: &str,
        host_iface: &str,
        host_nqn: &str,
        ctx: &TidContext,
    ) -> Tid {
        let host_nqn = if host_nqn.is_empty() {
            ctx.host_nqn.as_str()
        } else {
            host_nqn
        };
        let cid: Cid = [
            ("transport", e.trtype.stas_str().trim()),
            ("traddr", e.traddr.trim()),
            ("trsvcid", e.trsvcid.trim()),
            ("subsysnqn", e.subnqn.trim()),
            ("host-traddr", host_traddr),
            ("host-iface", host_iface),
            ("host-nqn", host_nqn),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        Tid::from_cid(&cid, ctx)
    }
}

impl PartialEq for Tid {
    fn eq(&self, other: &Self) -> bool {
        self.identity() == other.identity()
    }
}

impl Eq for Tid {}

impl Hash for Tid {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.identity().hash(state);
    }
}

impl PartialOrd for Tid {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Tid {
    fn cmp(&self, other: &Self) -> Ordering {
        self.identity().cmp(&other.identity())
    }
}

/// The §4.3 string form used in logs and as D-Bus keys:
/// `(<transport>, <traddr>, <trsvcid>[, <subsysnqn>][, <host_iface>][, <host_traddr>])`.
impl fmt::Display for Tid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "({}, {}, {}", self.transport, self.traddr, self.trsvcid)?;
        // Upstream order: host_iface before host_traddr; host_nqn never shown.
        for part in [&self.subsysnqn, &self.host_iface, &self.host_traddr] {
            if !part.is_empty() {
                write!(f, ", {part}")?;
            }
        }
        f.write_str(")")
    }
}

/// `[Global]` override keys whose values upstream stores typed (int/bool)
/// in the candidate dict, so a string from an `exclude=` entry never
/// equals them (§3.9: `exclude=kato=30` never matches). Reproduced so that
/// an existing configuration excludes exactly what it did before.
use stas_config::OVERRIDE_KEYS as TYPED_OVERRIDE_KEYS;

/// Whether `candidate` (a TID's dict form) is excluded by any entry of
/// `excludes` (§3.9): every key of the entry must be present in the
/// candidate with an exactly equal value.
///
/// Deliberate difference (\[BUG\] §18.2 #1): an entry with no keys (from a
/// bare `exclude=`) excludes nothing, where upstream excludes everything.
pub fn is_excluded(excludes: &[Cid], candidate: &Cid) -> bool {
    excludes.iter().any(|ex| {
        !ex.is_empty()
            && ex.iter().all(|(k, v)| {
                !TYPED_OVERRIDE_KEYS.contains(&k.as_str()) && candidate.get(k) == Some(v)
            })
    })
}

/// Splits `tids` into (kept, removed) by [`is_excluded`] on each TID's dict
/// form, preserving order.
pub fn remove_excluded(excludes: &[Cid], tids: Vec<Tid>) -> (Vec<Tid>, Vec<Tid>) {
    tids.into_iter()
        .partition(|t| !is_excluded(excludes, &t.as_dict()))
}

/// Why [`filter_addresses`] dropped a TID. `Display` is the upstream log
/// text; see [`AddressRejection::is_warning`] for the level.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AddressRejection {
    /// tcp/rdma traddr is not an IP literal (WARNING upstream).
    InvalidAddress {
        /// The TID's string form.
        tid: String,
    },
    /// The traddr's family is disabled by `ip-family` (DEBUG upstream).
    FamilyDisabled {
        /// The TID's string form.
        tid: String,
        /// The traddr is IPv6 (else IPv4).
        v6: bool,
    },
    /// Not tcp, rdma, fc or loop (WARNING upstream).
    InvalidTransport {
        /// The transport as configured.
        transport: String,
    },
}

impl AddressRejection {
    /// Whether upstream logs this at WARNING (otherwise DEBUG).
    pub fn is_warning(&self) -> bool {
        !matches!(self, Self::FamilyDisabled { .. })
    }
}

impl fmt::Display for AddressRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidAddress { tid } => write!(f, "{tid} IP address is not valid"),
            Self::FamilyDisabled { tid, v6 } => {
                let v = if *v6 { 6 } else { 4 };
                write!(f, "{tid} ignored because IPv{v} is disabled by ip-family")
            }
            Self::InvalidTransport { transport } => write!(f, "Invalid transport {transport}"),
        }
    }
}

/// Address validity and ip-family filtering (§4.5): tcp/rdma need an IP
/// literal traddr of an enabled family; fc and loop always pass (upstream
/// has no FC address validation); other transports are dropped. Order is
/// preserved.
///
/// An IPv6 traddr with a `%scope` suffix is accepted (upstream's Python
/// parser and the kernel both accept it); an IPv4-mapped IPv6 traddr counts
/// as IPv6, as upstream does.
pub fn filter_addresses(
    tids: Vec<Tid>,
    family: IpFamily,
) -> (Vec<Tid>, Vec<(Tid, AddressRejection)>) {
    let mut kept = Vec::new();
    let mut rejected = Vec::new();
    for tid in tids {
        let verdict = match tid.transport.as_str() {
            "tcp" | "rdma" => match parse_scoped_ip(&tid.traddr, false) {
                None => Some(AddressRejection::InvalidAddress {
                    tid: tid.to_string(),
                }),
                Some((ip, _)) if !family.allows(&ip) => Some(AddressRejection::FamilyDisabled {
                    tid: tid.to_string(),
                    v6: ip.is_ipv6(),
                }),
                Some(_) => None,
            },
            "fc" | "loop" => None,
            other => Some(AddressRejection::InvalidTransport {
                transport: other.to_owned(),
            }),
        };
        match verdict {
            None => kept.push(tid),
            Some(why) => rejected.push((tid, why)),
        }
    }
    (kept, rejected)
}

/// Whether a DLPE traddr is a placeholder stafd drops before caching
/// (§6.6): `0.0.0.0`, `::` or empty once stripped (exact strings, no
/// IP parsing, as upstream).
pub fn is_unusable_dlpe_traddr(traddr: &str) -> bool {
    matches!(traddr.trim(), "" | "0.0.0.0" | "::")
}

/// Parses an IP literal (IPv6 case-insensitive). With `fold_mapped`, an
/// IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) becomes IPv4.
///
/// A `%scope` suffix is rejected here (`None`): this is the strict parser of
/// §17.5. The comparison helpers ([`ip_equal`], [`parse_scoped_ip`] and
/// [`crate::matching`]) split the scope off themselves.
pub fn parse_ip(s: &str, fold_mapped: bool) -> Option<IpAddr> {
    let ip: IpAddr = s.parse().ok()?;
    Some(if fold_mapped { fold(ip) } else { ip })
}

/// Like [`parse_ip`] but also accepts an IPv6 `%scope` suffix (non-empty,
/// without a further `%`, as Python's `ipaddress`), returned separately.
pub fn parse_scoped_ip(s: &str, fold_mapped: bool) -> Option<(IpAddr, Option<&str>)> {
    match s.split_once('%') {
        None => parse_ip(s, fold_mapped).map(|ip| (ip, None)),
        Some((addr, scope)) => {
            if scope.is_empty() || scope.contains('%') {
                return None;
            }
            // Scopes only exist on IPv6 (checked before folding).
            let ip = match addr.parse::<IpAddr>().ok()? {
                IpAddr::V6(v6) => IpAddr::V6(v6),
                IpAddr::V4(_) => return None,
            };
            Some((if fold_mapped { fold(ip) } else { ip }, Some(scope)))
        }
    }
}

/// Folds an IPv4-mapped IPv6 address to IPv4.
pub(crate) fn fold(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

/// Whether two addresses name the same endpoint exactly: equal as IPs
/// (IPv6 canonical and case-insensitive) with equal `%scope` suffixes (an
/// unscoped address differs from a scoped one, and IPv4-mapped IPv6
/// differs from IPv4); text that is not an IP is compared as text.
///
/// Stricter than [`ip_equal`]: this is how `stasadm discover` decides a
/// live connection is the one asked for on its command line.
pub fn same_address(a: &str, b: &str) -> bool {
    let split = |s: &str| -> (String, String) {
        let (addr, scope) = s.split_once('%').unwrap_or((s, ""));
        (addr.to_owned(), scope.to_owned())
    };
    let ((a_ip, a_scope), (b_ip, b_scope)) = (split(a), split(b));
    match (a_ip.parse::<IpAddr>(), b_ip.parse::<IpAddr>()) {
        (Ok(x), Ok(y)) => x == y && a_scope == b_scope,
        _ => a == b,
    }
}

/// Whether two addresses are equal as IPs (§17.5, §8.4): IPv6 canonical and
/// case-insensitive, IPv4-mapped IPv6 equal to IPv4. As upstream, anything
/// that does not parse (including `None`) is "none", and none equals none.
///
/// IPv6 scope ids are split off; they must be equal only when both sides
/// carry one (upstream's Python requires equal scopes, so `fe80::1%eth0`
/// never equals `fe80::1`; we are more lenient because the kernel never
/// reports a scope in sysfs while configuration may carry one).
pub fn ip_equal(a: Option<&str>, b: Option<&str>) -> bool {
    let pa = a.and_then(|s| parse_scoped_ip(s, true));
    let pb = b.and_then(|s| parse_scoped_ip(s, true));
    match (pa, pb) {
        (None, None) => true,
        (Some((ia, sa)), Some((ib, sb))) => {
            ia == ib
                && match (sa, sb) {
                    (Some(x), Some(y)) => x == y,
                    _ => true,
                }
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::{HashMap, HashSet};
    use std::net::{Ipv4Addr, Ipv6Addr};

    const H: &str = "nqn.2014-08.org.nvmexpress:uuid:01234567-0123-0123-0123-0123456789ab";
    const DELL: &str = "nqn.1988-11.com.dell:SFSS:2:20220208134025e8";

    /// A cid written inline in a test table.
    type Pairs<'a> = &'a [(&'a str, &'a str)];

    fn ctx() -> TidContext {
        TidContext {
            host_nqn: H.into(),
            ignore_iface: false,
        }
    }

    fn cid(pairs: &[(&str, &str)]) -> Cid {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn tid(pairs: &[(&str, &str)]) -> Tid {
        Tid::from_cid(&cid(pairs), &ctx())
    }

    // §17.4
    #[test]
    fn tid_vectors() {
        let cases: &[(Pairs, &str, &str)] = &[
            (
                &[("transport", "tcp"), ("traddr", "1.1.1.1")],
                "8009",
                "(tcp, 1.1.1.1, 8009)",
            ),
            (
                &[("transport", "tcp"), ("traddr", "1.1.1.1"), ("trsvcid", "")],
                "8009",
                "(tcp, 1.1.1.1, 8009)",
            ),
            (
                &[("transport", "rdma"), ("traddr", "1.1.1.1")],
                "4420",
                "(rdma, 1.1.1.1, 4420)",
            ),
            (
                &[
                    ("transport", "fc"),
                    ("traddr", "nn-0x1:pn-0x2"),
                    ("trsvcid", "4420"),
                ],
                "",
                "(fc, nn-0x1:pn-0x2, )",
            ),
            (
                &[("transport", "loop"), ("traddr", "")],
                "",
                "(loop, , )",
            ),
            (
                &[
                    ("transport", "tcp"),
                    ("traddr", "::1"),
                    ("trsvcid", "4420"),
                    ("subsysnqn", "nqn.a"),
                    ("host-iface", "eth0"),
                    ("host-traddr", "::2"),
                ],
                "4420",
                "(tcp, ::1, 4420, nqn.a, eth0, ::2)",
            ),
            (
                &[
                    ("transport", "tcp"),
                    ("traddr", "::1"),
                    ("trsvcid", "4420"),
                    ("subsysnqn", ""),
                    ("host-traddr", "::2"),
                ],
                "4420",
                "(tcp, ::1, 4420, ::2)",
            ),
            (
                &[
                    ("transport", "tcp"),
                    ("traddr", "10.10.10.10"),
                    ("subsysnqn", DELL),
                    ("trsvcid", "8009"),
                    ("host-traddr", "1.2.3.4"),
                    ("host-iface", "wlp0s20f3"),
                    ("host-nqn", "nqn.1988-11.com.dell:12345"),
                ],
                "8009",
                "(tcp, 10.10.10.10, 8009, nqn.1988-11.com.dell:SFSS:2:20220208134025e8, wlp0s20f3, 1.2.3.4)",
            ),
        ];
        for (pairs, trsvcid, text) in cases {
            let t = tid(pairs);
            assert_eq!(t.trsvcid, *trsvcid, "{pairs:?}");
            assert_eq!(t.to_string(), *text, "{pairs:?}");
            assert_eq!(Tid::from_cid(&t.as_dict(), &ctx()), t);
        }

        let a = tid(cases[0].0);
        let b = tid(cases[1].0);
        assert_eq!(a, b);
        assert_eq!(a.host_nqn, H);
        assert_eq!(
            a.as_dict(),
            cid(&[
                ("traddr", "1.1.1.1"),
                ("trsvcid", "8009"),
                ("transport", "tcp"),
                ("subsysnqn", ""),
                ("host-iface", ""),
                ("host-traddr", ""),
                ("host-nqn", H),
            ])
        );
        // The MD5 value (235925529567944172621805423513080805229) is not
        // reproduced: it only ever keyed in-memory maps, so equal TIDs
        // hashing equal is all that matters.
        let mut set = HashSet::new();
        set.insert(a.clone());
        assert!(set.contains(&b));

        let dell_pairs = cases[7].0;
        let dell = tid(dell_pairs);
        assert_eq!(dell.as_dict(), cid(dell_pairs));
        let mut other = cid(dell_pairs);
        other.insert("traddr".into(), "1.1.1.1".into());
        assert_ne!(Tid::from_cid(&other, &ctx()), dell);
        // "Never equal to a non-TID" is enforced by the type system.
    }

    #[test]
    fn host_nqn_key_wins_even_if_empty_and_lands_in_cfg() {
        let t = tid(&[
            ("transport", "tcp"),
            ("traddr", "1.1.1.1"),
            ("host-nqn", ""),
        ]);
        assert_eq!(t.host_nqn, "");
        assert_eq!(t.cfg, cid(&[("host-nqn", "")]));
        let t = tid(&[
            ("transport", "tcp"),
            ("traddr", "1.1.1.1"),
            ("kato", "30"),
            ("bogus", "x"),
        ]);
        assert_eq!(t.host_nqn, H);
        assert_eq!(t.cfg, cid(&[("kato", "30"), ("bogus", "x")]));
        assert_eq!(t.as_dict().get("bogus").map(String::as_str), Some("x"));
        assert_eq!(t.overrides.kato, Some(30));
    }

    #[test]
    fn cfg_is_not_identity_and_ordering_follows_fields() {
        let a = tid(&[("transport", "tcp"), ("traddr", "1.1.1.1"), ("kato", "1")]);
        let b = tid(&[("transport", "tcp"), ("traddr", "1.1.1.1"), ("kato", "2")]);
        assert_eq!(a, b);
        assert_eq!(a.cmp(&b), Ordering::Equal);
        let c = tid(&[("transport", "tcp"), ("traddr", "1.1.1.2")]);
        assert!(a < c);
        let d = tid(&[("transport", "rdma"), ("traddr", "9.9.9.9")]);
        assert!(d < a);
    }

    #[test]
    fn ignore_iface_erases_host_iface() {
        let c = cid(&[
            ("transport", "tcp"),
            ("traddr", "1.1.1.1"),
            ("host-iface", "eth0"),
        ]);
        let ig = TidContext {
            host_nqn: H.into(),
            ignore_iface: true,
        };
        let t = Tid::from_cid(&c, &ig);
        assert_eq!(t.host_iface, "");
        assert_ne!(t, Tid::from_cid(&c, &ctx()));
        // Interface excludes stop matching.
        assert!(!is_excluded(
            &[cid(&[("host-iface", "eth0")])],
            &t.as_dict()
        ));
        assert!(is_excluded(
            &[cid(&[("host-iface", "eth0")])],
            &Tid::from_cid(&c, &ctx()).as_dict()
        ));
    }

    // §17.6 exclusion table
    #[test]
    fn exclusion_vectors() {
        let tcp1234 = cid(&[("transport", "tcp"), ("traddr", "1.2.3.4")]);
        let rdma5555 = cid(&[("transport", "rdma"), ("traddr", "5.5.5.5")]);
        let cases: Vec<(Vec<Cid>, Cid, bool)> = vec![
            (vec![], tcp1234.clone(), false),
            (vec![tcp1234.clone()], tcp1234.clone(), true),
            (
                vec![cid(&[("transport", "tcp")])],
                cid(&[("transport", "tcp"), ("traddr", "99.99.99.99")]),
                true,
            ),
            (
                vec![tcp1234.clone()],
                cid(&[("transport", "tcp"), ("traddr", "5.5.5.5")]),
                false,
            ),
            (vec![tcp1234.clone()], cid(&[("transport", "tcp")]), false),
            (
                vec![tcp1234.clone(), rdma5555.clone()],
                tcp1234.clone(),
                true,
            ),
            (
                vec![
                    cid(&[("transport", "tcp"), ("traddr", "99.99.99.99")]),
                    rdma5555.clone(),
                ],
                rdma5555.clone(),
                true,
            ),
            (
                vec![tcp1234.clone(), rdma5555.clone()],
                cid(&[("transport", "fc"), ("traddr", "5.5.5.5")]),
                false,
            ),
            // Upstream: true (an empty `exclude=` excludes everything,
            // §18.2 #1). Deliberately fixed: it excludes nothing.
            (vec![Cid::new()], tcp1234.clone(), false),
        ];
        for (excludes, candidate, want) in cases {
            assert_eq!(
                is_excluded(&excludes, &candidate),
                want,
                "{excludes:?} vs {candidate:?}"
            );
        }
    }

    #[test]
    fn exclusion_uses_defaulted_values_exact_strings_and_untyped_keys() {
        let t = tid(&[("transport", "tcp"), ("traddr", "fe80::1"), ("kato", "30")]);
        let d = t.as_dict();
        assert!(is_excluded(&[cid(&[("trsvcid", "8009")])], &d));
        assert!(!is_excluded(&[cid(&[("traddr", "FE80::0:1")])], &d));
        // Typed overrides never match upstream.
        assert!(!is_excluded(&[cid(&[("kato", "30")])], &d));
        assert!(!is_excluded(
            &[cid(&[("transport", "tcp"), ("kato", "30")])],
            &d
        ));
        // host-nqn is a string: matches.
        assert!(is_excluded(&[cid(&[("host-nqn", H)])], &d));
    }

    #[test]
    fn remove_excluded_vectors() {
        let excludes = vec![
            cid(&[("transport", "tcp"), ("traddr", "10.10.10.10")]),
            cid(&[("transport", "rdma"), ("traddr", "192.168.1.1")]),
        ];
        let a = tid(&[("transport", "tcp"), ("traddr", "10.10.10.10")]);
        let b = tid(&[("transport", "rdma"), ("traddr", "192.168.1.1")]);
        let c = tid(&[("transport", "tcp"), ("traddr", "1.1.1.1")]);
        let d = tid(&[("transport", "tcp"), ("traddr", "2.2.2.2")]);

        assert_eq!(
            remove_excluded(&excludes, vec![a.clone()]),
            (vec![], vec![a.clone()])
        );
        assert_eq!(
            remove_excluded(&excludes, vec![b.clone()]),
            (vec![], vec![b.clone()])
        );
        assert_eq!(
            remove_excluded(&excludes, vec![c.clone()]),
            (vec![c.clone()], vec![])
        );
        assert_eq!(
            remove_excluded(&excludes, vec![c.clone(), a.clone(), d.clone(), b.clone()]),
            (vec![c, d], vec![a, b])
        );
        assert_eq!(remove_excluded(&excludes, vec![]), (vec![], vec![]));
    }

    fn dell_dlpe(traddr: &str) -> DiscoveryLogEntry {
        DiscoveryLogEntry {
            trtype: nvmf_proto::types::TrType::Tcp,
            traddr: traddr.into(),
            trsvcid: "8009".into(),
            subnqn: DELL.into(),
            ..DiscoveryLogEntry::default()
        }
    }

    // §17.6 TID from DLPE, §4.7
    #[test]
    fn tid_from_dlpe_vectors() {
        let c = ctx();
        let t = Tid::from_dlpe(&dell_dlpe("10.10.10.10"), "1.2.3.4", "", "", &c);
        assert_eq!(t.transport, "tcp");
        assert_eq!(t.traddr, "10.10.10.10");
        assert_eq!(t.trsvcid, "8009");
        assert_eq!(t.subsysnqn, DELL);
        assert_eq!(t.host_traddr, "1.2.3.4");
        assert_eq!(t.host_iface, "");
        assert_eq!(t.host_nqn, H);

        let same = Tid::from_dlpe(&dell_dlpe("10.10.10.10"), "1.2.3.4", "", "", &c);
        assert_eq!(t, same);
        let other_traddr = Tid::from_dlpe(&dell_dlpe("10.10.10.11"), "1.2.3.4", "", "", &c);
        assert_ne!(t, other_traddr);
        let other_host = Tid::from_dlpe(&dell_dlpe("10.10.10.10"), "1.2.3.5", "", "", &c);
        assert_ne!(t, other_host);

        let mut map = HashMap::new();
        map.insert(t.clone(), 1);
        map.insert(other_traddr.clone(), 2);
        assert_eq!(map.get(&same), Some(&1));

        let dc_nqn = Tid::from_dlpe(&dell_dlpe("10.10.10.10"), "", "eth0", "nqn.dc", &c);
        assert_eq!(dc_nqn.host_nqn, "nqn.dc");
        assert_eq!(dc_nqn.host_iface, "eth0");

        // Blank tcp trsvcid → 8009; FC → "".
        let mut e = dell_dlpe(" 10.10.10.10 ");
        e.trsvcid = String::new();
        let t = Tid::from_dlpe(&e, "", "", "", &c);
        assert_eq!(
            (t.traddr.as_str(), t.trsvcid.as_str()),
            ("10.10.10.10", "8009")
        );
        let mut e = dell_dlpe("nn-0x1:pn-0x2");
        e.trtype = nvmf_proto::types::TrType::Fc;
        e.trsvcid = "4420".into();
        assert_eq!(Tid::from_dlpe(&e, "", "", "", &c).trsvcid, "");
    }

    // §17.5 and §17.6 address filters
    #[test]
    fn address_filter_vectors() {
        let both = IpFamily::default();
        let (kept, rejected) = filter_addresses(
            vec![
                tid(&[("transport", "tcp"), ("traddr", "1.1.1.1")]),
                tid(&[("transport", "tcp"), ("traddr", "555.555.555.555")]),
                tid(&[("transport", "fc"), ("traddr", "blah")]),
                tid(&[("transport", "whatever"), ("traddr", "1.1.1.1")]),
            ],
            both,
        );
        assert_eq!(
            kept.iter().map(|t| t.traddr.as_str()).collect::<Vec<_>>(),
            ["1.1.1.1", "blah"]
        );
        assert_eq!(
            rejected
                .iter()
                .map(|(_, r)| r.to_string())
                .collect::<Vec<_>>(),
            [
                "(tcp, 555.555.555.555, 8009) IP address is not valid",
                "Invalid transport whatever"
            ]
        );
        assert!(rejected.iter().all(|(_, r)| r.is_warning()));

        let t = |transport: &str, traddr: &str| {
            tid(&[
                ("transport", transport),
                ("traddr", traddr),
                ("subsysnqn", DELL),
            ])
        };
        let v4 = IpFamily {
            v4: true,
            v6: false,
        };
        let v6 = IpFamily {
            v4: false,
            v6: true,
        };
        let fcaddr = "nn-0x1000000044001123:pn-0x2000000055001123";
        let cases: Vec<(IpFamily, Tid, bool)> = vec![
            (both, t("tcp", "10.10.10.10"), true),
            (both, t("tcp", "::1"), true),
            (both, t("tcp", "not-an-ip-address"), false),
            (v6, t("tcp", "10.10.10.10"), false),
            (v6, t("tcp", "::1"), true),
            (v4, t("tcp", "10.10.10.10"), true),
            (v4, t("tcp", "::1"), false),
            (both, t("rdma", "192.168.0.1"), true),
            (v4, t("fc", fcaddr), true),
            (v6, t("fc", fcaddr), true),
            (v4, t("loop", ""), true),
            (both, t("unknown", "10.10.10.10"), false),
            // Scoped link-local (kernel accepts it); mapped counts as IPv6.
            (v6, t("tcp", "fe80::1%eth0"), true),
            (both, t("tcp", "1.1.1.1%eth0"), false),
            (v4, t("tcp", "::ffff:1.2.3.4"), false),
        ];
        for (fam, tid, keep) in cases {
            let (kept, rejected) = filter_addresses(vec![tid.clone()], fam);
            assert_eq!(kept.len(), usize::from(keep), "{tid} {fam}");
            assert_eq!(rejected.len(), usize::from(!keep), "{tid} {fam}");
        }
        let (_, rejected) = filter_addresses(vec![t("tcp", "::1")], v4);
        assert_eq!(
            rejected.first().map(|(_, r)| r.clone()),
            Some(AddressRejection::FamilyDisabled {
                tid: format!("(tcp, ::1, 8009, {DELL})"),
                v6: true
            })
        );
        assert!(rejected.iter().all(|(_, r)| !r.is_warning()));
        assert_eq!(filter_addresses(vec![], v4), (vec![], vec![]));
    }

    #[test]
    fn unusable_dlpe_traddr() {
        for (s, want) in [
            ("0.0.0.0", true),
            ("::", true),
            ("", true),
            ("   ", true),
            (" 0.0.0.0 ", true),
            ("::0", false),
            ("0::0", false),
            ("1.2.3.4", false),
            ("nn-0x1:pn-0x2", false),
        ] {
            assert_eq!(is_unusable_dlpe_traddr(s), want, "{s:?}");
        }
    }

    // §17.5
    #[test]
    fn same_address_is_exact_about_scopes_and_mapping() {
        assert!(same_address("fd00::1", "fd00:0:0::1"));
        assert!(same_address("FE80::1%eth0", "fe80::1%eth0"));
        assert!(!same_address("fe80::1%eth0", "fe80::1"));
        assert!(!same_address("fe80::1%eth0", "fe80::1%eth1"));
        assert!(!same_address("::ffff:1.2.3.4", "1.2.3.4"));
        assert!(same_address("nn-0x1:pn-0x2", "nn-0x1:pn-0x2"));
        assert!(!same_address("nn-0x1:pn-0x2", "NN-0X1:PN-0X2"));
        assert_eq!(default_trsvcid("tcp"), Some(TCP_DEFAULT_TRSVCID));
        assert_eq!(default_trsvcid("rdma"), Some(RDMA_DEFAULT_TRSVCID));
        assert_eq!(default_trsvcid("fc"), None);
    }

    #[test]
    fn ip_helper_vectors() {
        assert!(!ip_equal(None, Some("1.1.1.1")));
        assert!(!ip_equal(Some("1.1.1.1"), None));
        assert!(ip_equal(Some("1.1.1.1"), Some("1.1.1.1")));
        assert!(ip_equal(Some("1.2.3.4"), Some("::ffff:102:304")));
        assert!(ip_equal(Some("FE80::AAAA:0:0:1"), Some("fe80::aaaa:0:0:1")));
        assert!(!ip_equal(Some("1.1.1.1"), Some("1.1.1.2")));
        // none == none, as upstream.
        assert!(ip_equal(None, None));
        assert!(ip_equal(Some(""), Some("bogus")));
        // Scopes compared only when both sides have one.
        assert!(ip_equal(Some("fe80::1%eth0"), Some("fe80::1")));
        assert!(ip_equal(Some("fe80::1%eth0"), Some("FE80::1%eth0")));
        assert!(!ip_equal(Some("fe80::1%eth0"), Some("fe80::1%eth1")));
        assert!(!ip_equal(Some("fe80::1%eth0"), Some("fe80::2")));

        for fold in [true, false] {
            assert_eq!(parse_ip("", fold), None);
            assert_eq!(parse_ip("not-an-ip", fold), None);
            assert_eq!(parse_ip("fe80::1%eth0", fold), None);
            assert_eq!(
                parse_ip("1.2.3.4", fold),
                Some(IpAddr::V4(Ipv4Addr::new(1, 2, 3, 4)))
            );
            assert_eq!(parse_ip("::1", fold), Some(IpAddr::V6(Ipv6Addr::LOCALHOST)));
        }
        assert_eq!(
            parse_ip("::ffff:1.2.3.4", true),
            Some(IpAddr::V4(Ipv4Addr::new(1, 2, 3, 4)))
        );
        let mapped = parse_ip("::ffff:1.2.3.4", false);
        assert_eq!(mapped, parse_ip("::ffff:102:304", false));
        assert!(matches!(mapped, Some(IpAddr::V6(_))));

        assert_eq!(
            parse_scoped_ip("fe80::1%eth0", false),
            Some((
                IpAddr::V6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1)),
                Some("eth0")
            ))
        );
        assert_eq!(parse_scoped_ip("fe80::1%", false), None);
        assert_eq!(parse_scoped_ip("fe80::1%a%b", false), None);
        assert_eq!(parse_scoped_ip("1.2.3.4%eth0", false), None);
        assert_eq!(
            parse_scoped_ip("::ffff:1.2.3.4%2", true),
            Some((IpAddr::V4(Ipv4Addr::new(1, 2, 3, 4)), Some("2")))
        );
    }

    fn arb_cid() -> impl Strategy<Value = Cid> {
        let transport = prop_oneof![
            Just("tcp".to_owned()),
            Just("rdma".to_owned()),
            Just("fc".to_owned()),
            Just("loop".to_owned()),
            "[a-z]{0,5}",
        ];
        let text = "[ -~]{0,12}";
        (
            transport,
            proptest::option::of(text),
            proptest::option::of(text),
            proptest::option::of(text),
            proptest::option::of(text),
            proptest::option::of(text),
            proptest::option::of(text),
            proptest::collection::btree_map("[a-z-]{1,10}", text, 0..4),
        )
            .prop_map(|(tr, a, s, n, ht, hi, hn, extra)| {
                let mut c: Cid = extra;
                c.insert("transport".into(), tr);
                for (k, v) in [
                    ("traddr", a),
                    ("trsvcid", s),
                    ("subsysnqn", n),
                    ("host-traddr", ht),
                    ("host-iface", hi),
                    ("host-nqn", hn),
                ] {
                    match v {
                        Some(v) => {
                            c.insert(k.into(), v);
                        }
                        None => {
                            c.remove(k);
                        }
                    }
                }
                c
            })
    }

    proptest! {
        #[test]
        fn dict_round_trip(c in arb_cid(), ignore in any::<bool>(), h in "[ -~]{0,20}") {
            let ctx = TidContext { host_nqn: h, ignore_iface: ignore };
            let t = Tid::from_cid(&c, &ctx);
            let back = Tid::from_cid(&t.as_dict(), &ctx);
            prop_assert_eq!(&back, &t);
            prop_assert_eq!(back.to_string(), t.to_string());
            // And the dict form is a fixed point.
            prop_assert_eq!(back.as_dict(), t.as_dict());
        }
    }
}
