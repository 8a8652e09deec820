//! Whether an existing kernel controller already serves a transport ID
//! (docs/behaviour.md §8), so the daemons adopt it instead of connecting a duplicate.
//!
//! Pure: the caller reads sysfs/uevents into [`ExistingController`]s and
//! the netlink address dump into an [`InterfaceTable`].

use std::net::IpAddr;

use nvmf_proto::WELL_KNOWN_DISCOVERY_NQN;

use crate::{fold, ip_equal, parse_scoped_ip, same_address, Tid, TidContext};
use stas_config::Cid;

/// One network interface and its addresses, in kernel order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Interface {
    /// The interface name as the kernel reports it (`if_indextoname`), not
    /// the IPv4 `IFA_LABEL` upstream uses (\[REC\] for §8.7 / §18.2 #13: an
    /// interface with only IPv6 addresses is still present and an alias
    /// label like `eth0:1` does not rename it).
    pub name: String,
    /// Addresses of both families in kernel order; the first of a family is
    /// the interface's primary address for that family.
    pub addrs: Vec<IpAddr>,
}

/// The interface address table (§8.7), fetched once per search.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct InterfaceTable {
    /// Interfaces in kernel order.
    pub interfaces: Vec<Interface>,
}

impl InterfaceTable {
    /// The first interface owning `ip` (IPv4 and IPv4-mapped IPv6 equal);
    /// `None` if no interface owns it or `ip` is not an address.
    ///
    /// An IPv6 `%scope` naming an interface that owns the address selects
    /// that interface (a link-local address may exist on several); any other
    /// scope is ignored. Upstream never matches a scoped address here.
    pub fn interface_of(&self, ip: &str) -> Option<&str> {
        let (ip, scope) = parse_scoped_ip(ip, true)?;
        let owns = |i: &&Interface| i.addrs.iter().any(|a| fold(*a) == ip);
        scope
            .and_then(|s| self.interfaces.iter().filter(owns).find(|i| i.name == s))
            .or_else(|| self.interfaces.iter().find(owns))
            .map(|i| i.name.as_str())
    }

    /// The addresses of `iface` of one family (IPv6 if `v6`), in order.
    pub fn addrs_of(&self, iface: &str, v6: bool) -> Vec<IpAddr> {
        self.interfaces
            .iter()
            .filter(|i| i.name == iface)
            .flat_map(|i| i.addrs.iter().copied())
            .filter(|a| a.is_ipv6() == v6)
            .collect()
    }

    /// The primary (first) address of `iface` of one family.
    pub fn primary(&self, iface: &str, v6: bool) -> Option<IpAddr> {
        self.addrs_of(iface, v6).into_iter().next()
    }
}

/// What sysfs and the uevent say about one kernel controller (§8.1, §8.2),
/// normalised: missing, unreadable or `none` values are "", all stripped.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExistingController {
    /// Device name, `nvmeN`.
    pub name: String,
    /// `NVME_TRTYPE`.
    pub transport: String,
    /// `NVME_TRADDR`.
    pub traddr: String,
    /// `NVME_TRSVCID`.
    pub trsvcid: String,
    /// `NVME_HOST_TRADDR`.
    pub host_traddr: String,
    /// `NVME_HOST_IFACE`.
    pub host_iface: String,
    /// sysfs `subsysnqn`.
    pub subsysnqn: String,
    /// sysfs `hostnqn` ("" on kernels without it).
    pub host_nqn: String,
    /// `src_addr=` of sysfs `address` (TCP, kernel ≥ 6.1), else "".
    pub src_addr: String,
    /// Classified as a discovery controller (see [`classify`]).
    pub is_dc: bool,
    /// Classified as an I/O controller (see [`classify`]).
    pub is_ioc: bool,
}

impl ExistingController {
    /// Builds one from a cid with the §8.2 keys (`transport`, `traddr`,
    /// `trsvcid`, `host-traddr`, `host-iface`, `subsysnqn`, `host-nqn`,
    /// `src-addr`), for tests and tools. Classification uses [`classify`]
    /// with an optional `cntrltype` key and no children.
    pub fn from_cid(name: &str, cid: &Cid) -> Self {
        let get = |k: &str| cid.get(k).map(|v| v.trim().to_owned()).unwrap_or_default();
        let subsysnqn = get("subsysnqn");
        let kind = classify(&subsysnqn, &get("cntrltype"), false);
        ExistingController {
            name: name.to_owned(),
            transport: get("transport"),
            traddr: get("traddr"),
            trsvcid: get("trsvcid"),
            host_traddr: get("host-traddr"),
            host_iface: get("host-iface"),
            subsysnqn,
            host_nqn: get("host-nqn"),
            src_addr: get("src-addr"),
            is_dc: kind.is_dc,
            is_ioc: kind.is_ioc,
        }
    }

    /// The cid of §8.2.
    pub fn cid(&self) -> Cid {
        [
            ("transport", &self.transport),
            ("traddr", &self.traddr),
            ("trsvcid", &self.trsvcid),
            ("host-traddr", &self.host_traddr),
            ("host-iface", &self.host_iface),
            ("subsysnqn", &self.subsysnqn),
            ("host-nqn", &self.host_nqn),
            ("src-addr", &self.src_addr),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.clone()))
        .collect()
    }
}

/// A controller's kind for adoption purposes (§8.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Classification {
    /// May be adopted as a discovery controller.
    pub is_dc: bool,
    /// May be adopted as an I/O controller.
    pub is_ioc: bool,
}

/// Classifies a controller from its sysfs `subsysnqn`, `cntrltype`
/// (normalised, "" when absent: kernels < 5.18) and whether it has child
/// devices (namespaces, generic char devices).
///
/// DC: well-known NQN, or cntrltype `discovery`, or — only when cntrltype
/// is unknown — no children. IOC: cntrltype `io` or any children.
/// Deliberate difference (\[BUG\] §8.3 / §18.2 #12): upstream applies the
/// "no children ⇒ DC" rule even when cntrltype is known, so an I/O
/// controller without namespaces was adoptable as a DC.
pub fn classify(subsysnqn: &str, cntrltype: &str, has_children: bool) -> Classification {
    let unknown = cntrltype.is_empty();
    Classification {
        is_dc: subsysnqn == WELL_KNOWN_DISCOVERY_NQN
            || cntrltype == "discovery"
            || (unknown && !has_children),
        is_ioc: cntrltype == "io" || has_children,
    }
}

/// Whether `existing` serves `tid` (§8.4).
pub fn matches(existing: &ExistingController, tid: &Tid, ifaces: &InterfaceTable) -> bool {
    let e = existing;
    if tid.transport != e.transport || tid.trsvcid != e.trsvcid || tid.host_nqn != e.host_nqn {
        return false;
    }
    if !subsysnqn_serves(&tid.subsysnqn, Some(&e.subsysnqn)) {
        return false;
    }
    let ip_transport = matches!(tid.transport.as_str(), "tcp" | "rdma");
    let traddr_ok = if ip_transport {
        ip_equal(Some(&tid.traddr), Some(&e.traddr))
    } else {
        tid.traddr.to_lowercase() == e.traddr.to_lowercase()
    };
    if !traddr_ok {
        return false;
    }
    match tid.transport.as_str() {
        "tcp" => tcp_host_matches(e, tid, ifaces),
        // Mandatory: an empty tid host_traddr only matches an empty one.
        "fc" => tid.host_traddr.to_lowercase() == e.host_traddr.to_lowercase(),
        // host_iface plays no part for rdma.
        "rdma" => {
            tid.host_traddr.is_empty() || ip_equal(Some(&tid.host_traddr), Some(&e.host_traddr))
        }
        _ => true,
    }
}

/// Whether a controller reporting subsystem NQN `reported` (`None`: sysfs
/// has none) serves a request for `wanted` (§8.4 step 2): the same NQN, or
/// any when the well-known discovery NQN is wanted, because a TP8013 DC
/// may report its unique NQN for the well-known one.
pub fn subsysnqn_serves(wanted: &str, reported: Option<&str>) -> bool {
    wanted == WELL_KNOWN_DISCOVERY_NQN || reported == Some(wanted)
}

/// The tcp host-parameter rules of §8.4 step 4.
fn tcp_host_matches(e: &ExistingController, tid: &Tid, ifaces: &InterfaceTable) -> bool {
    if tid.host_traddr.is_empty() && tid.host_iface.is_empty() {
        return true;
    }
    let owner = |ip: &str| ifaces.interface_of(ip).unwrap_or("");

    // Kernel >= 6.1 reports the actual source address: authoritative.
    if parse_scoped_ip(&e.src_addr, true).is_some() {
        if !tid.host_traddr.is_empty() && !ip_equal(Some(&tid.host_traddr), Some(&e.src_addr)) {
            return false;
        }
        return tid.host_iface.is_empty() || tid.host_iface == owner(&e.src_addr);
    }

    // Legacy kernels: infer from what the connect was given; when nothing
    // is known, assume a match (upstream: "not enough info").
    if !tid.host_traddr.is_empty() {
        if !e.host_traddr.is_empty() {
            if !ip_equal(Some(&tid.host_traddr), Some(&e.host_traddr)) {
                return false;
            }
        } else if !e.host_iface.is_empty() {
            // The connection went out of host_iface with its primary
            // address of the candidate's family; an unparsable candidate
            // address has no family, hence an empty list, hence a match.
            if let Some((wanted, _)) = parse_scoped_ip(&tid.host_traddr, true) {
                if let Some(primary) = ifaces.primary(&e.host_iface, wanted.is_ipv6()) {
                    if fold(primary) != wanted {
                        return false;
                    }
                }
            }
        }
    }
    if !tid.host_iface.is_empty() {
        if !e.host_iface.is_empty() {
            return tid.host_iface == e.host_iface;
        }
        if !e.host_traddr.is_empty() {
            return tid.host_iface == owner(&e.host_traddr);
        }
    }
    true
}

/// The first controller classified as a DC that serves `tid` (§8.6).
pub fn find_dc<'a>(
    controllers: &'a [ExistingController],
    tid: &Tid,
    ifaces: &InterfaceTable,
) -> Option<&'a ExistingController> {
    controllers
        .iter()
        .find(|c| c.is_dc && matches(c, tid, ifaces))
}

/// The first controller classified as an IOC that serves `tid` (§8.6).
pub fn find_ioc<'a>(
    controllers: &'a [ExistingController],
    tid: &Tid,
    ifaces: &InterfaceTable,
) -> Option<&'a ExistingController> {
    controllers
        .iter()
        .find(|c| c.is_ioc && matches(c, tid, ifaces))
}

/// The TID of an existing controller, for the connection audit (§8.5): the
/// §8.2 cid, with a tcp controller's missing host-iface filled in from the
/// owner of its src_addr. `src-addr` and `host-nqn` land in `cfg`; the
/// TID's host NQN is the sysfs one, even when "".
pub fn tid_of_existing(
    existing: &ExistingController,
    ifaces: &InterfaceTable,
    ctx: &TidContext,
) -> Tid {
    let mut cid = existing.cid();
    if existing.transport == "tcp"
        && existing.host_iface.is_empty()
        && !existing.src_addr.is_empty()
    {
        let owner = ifaces.interface_of(&existing.src_addr).unwrap_or("");
        cid.insert("host-iface".into(), owner.to_owned());
    }
    Tid::from_cid(&cid, ctx)
}

/// An existing kernel controller as the matching rules see it.
pub fn existing(c: &nvmf_kernel::sysfs::ControllerInfo) -> ExistingController {
    let addr = c.address.clone().unwrap_or_default();
    let norm = |v: Option<String>| {
        v.filter(|s| !s.eq_ignore_ascii_case("none"))
            .unwrap_or_default()
    };
    ExistingController {
        name: c.name.clone(),
        transport: norm(c.transport.clone()),
        traddr: norm(addr.traddr),
        trsvcid: norm(addr.trsvcid),
        host_traddr: norm(addr.host_traddr),
        host_iface: norm(addr.host_iface),
        subsysnqn: norm(c.subsysnqn.clone()),
        host_nqn: norm(c.hostnqn.clone()),
        src_addr: norm(addr.src_addr),
        is_dc: c.is_discovery(),
        is_ioc: !c.is_discovery(),
    }
}

/// A discovery controller named on a command line (`stasadm discover`).
///
/// Looser than a [`Tid`]: the port, host address, host interface and host
/// NQN may be left out (`None`), and one left out matches any value. A
/// missing port means the transport's default ([`crate::default_trsvcid`]);
/// a transport without one (fc, loop) then matches any port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DcRequest<'a> {
    /// Transport.
    pub transport: &'a str,
    /// Address.
    pub traddr: &'a str,
    /// Port.
    pub trsvcid: Option<&'a str>,
    /// Subsystem NQN (the well-known discovery NQN matches any).
    pub subsysnqn: &'a str,
    /// Local address: matched against the one given at connect or the
    /// actual source address the kernel reports.
    pub host_traddr: Option<&'a str>,
    /// Local interface: matched against the one given at connect.
    pub host_iface: Option<&'a str>,
    /// Host NQN.
    pub host_nqn: Option<&'a str>,
}

impl DcRequest<'_> {
    /// Whether `c`, a live discovery controller or not, is this one.
    ///
    /// Addresses compare with [`crate::same_address`]: a command line names
    /// one endpoint, so unlike [`matches`] a scoped address does not match
    /// an unscoped one, and no interface table is consulted.
    pub fn is_served_by(&self, c: &nvmf_kernel::sysfs::ControllerInfo) -> bool {
        let addr = c.address.clone().unwrap_or_default();
        let trsvcid = self
            .trsvcid
            .or_else(|| crate::default_trsvcid(self.transport));
        let same = |have: Option<&str>, want: &str| have.is_some_and(|h| same_address(h, want));
        c.is_discovery()
            && c.is_live()
            && c.transport.as_deref() == Some(self.transport)
            && same(addr.traddr.as_deref(), self.traddr)
            && (trsvcid.is_none() || addr.trsvcid.as_deref() == trsvcid)
            && subsysnqn_serves(self.subsysnqn, c.subsysnqn.as_deref())
            && self
                .host_iface
                .is_none_or(|i| addr.host_iface.as_deref() == Some(i))
            && self.host_traddr.is_none_or(|h| {
                same(addr.host_traddr.as_deref(), h) || same(addr.src_addr.as_deref(), h)
            })
            && self
                .host_nqn
                .is_none_or(|h| c.hostnqn.as_deref() == Some(h))
    }
}

/// The first live discovery controller that is the one `wanted` names
/// (see [`DcRequest::is_served_by`]).
pub fn find_live_dc<'a>(
    controllers: &'a [nvmf_kernel::sysfs::ControllerInfo],
    wanted: &DcRequest<'_>,
) -> Option<&'a nvmf_kernel::sysfs::ControllerInfo> {
    controllers.iter().find(|c| wanted.is_served_by(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    const WK: &str = WELL_KNOWN_DISCOVERY_NQN;

    /// A cid written inline in a test table.
    type Pairs<'a> = &'a [(&'a str, &'a str)];
    /// An owned one, for tables that build cids.
    type PairVec = Vec<(&'static str, &'static str)>;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn table(spec: &[(&str, &[&str])]) -> InterfaceTable {
        InterfaceTable {
            interfaces: spec
                .iter()
                .map(|(name, addrs)| Interface {
                    name: (*name).to_owned(),
                    addrs: addrs.iter().map(|a| ip(a)).collect(),
                })
                .collect(),
        }
    }

    fn cid(pairs: &[(&str, &str)]) -> Cid {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn ctx() -> TidContext {
        TidContext {
            host_nqn: "nqn.sysconf".into(),
            ignore_iface: false,
        }
    }

    // The synthetic host of the upstream parametrised and legacy cases.
    const X4: [&str; 3] = ["192.168.122.10", "192.168.122.11", "10.1.1.1"];
    const X6: [&str; 2] = ["fe80::5054:ff:fe12:3456", "2001:db8::10"];

    fn synthetic() -> InterfaceTable {
        table(&[
            ("lo", &["127.0.0.1", "::1"]),
            ("ens3", &[X4[0], X6[0], X4[1], X6[1], X4[2]]),
            ("v6only", &["2001:db8:1::5"]),
        ])
    }

    // §17.5 interface_of
    #[test]
    fn interface_of_vectors() {
        let t = synthetic();
        assert_eq!(t.interface_of("255.255.255.255"), None);
        assert_eq!(t.interface_of(""), None);
        assert_eq!(t.interface_of("not-an-ip"), None);
        for a in X4.iter().chain(X6.iter()) {
            assert_eq!(t.interface_of(a), Some("ens3"), "{a}");
        }
        assert_eq!(t.interface_of("::ffff:192.168.122.11"), Some("ens3"));
        assert_eq!(t.interface_of("2001:DB8::10"), Some("ens3"));
        // IPv6-only interfaces are present (no IFA_LABEL quirk).
        assert_eq!(t.interface_of("2001:db8:1::5"), Some("v6only"));
        assert_eq!(t.primary("ens3", false), Some(ip(X4[0])));
        assert_eq!(t.primary("ens3", true), Some(ip(X6[0])));
        assert_eq!(t.primary("v6only", false), None);
        assert_eq!(t.primary("nope", false), None);
        assert_eq!(
            t.addrs_of("ens3", false),
            X4.iter().map(|a| ip(a)).collect::<Vec<_>>()
        );
        assert_eq!(
            t.addrs_of("ens3", true),
            X6.iter().map(|a| ip(a)).collect::<Vec<_>>()
        );

        // Same link-local on two interfaces: the scope picks.
        let ll = table(&[("a", &["fe80::1"]), ("b", &["fe80::1"])]);
        assert_eq!(ll.interface_of("fe80::1"), Some("a"));
        assert_eq!(ll.interface_of("fe80::1%b"), Some("b"));
        assert_eq!(ll.interface_of("fe80::1%7"), Some("a"));
        assert_eq!(ll.interface_of("fe80::2%b"), None);
    }

    #[test]
    fn classification_vectors() {
        // (subsysnqn, cntrltype, children) -> (dc, ioc)
        let cases = [
            ("", "", true, false, true),
            (WK, "", false, true, false),
            ("nqn.x", "discovery", false, true, false),
            ("", "", false, true, false),
            ("nqn.x", "io", false, false, true),
            ("nqn.x", "", true, false, true),
            // Upstream: DC (no children). Fixed: cntrltype is known.
            ("nqn.x", "io", false, false, true),
            ("nqn.x", "admin", false, false, false),
        ];
        for (nqn, ct, children, dc, ioc) in cases {
            assert_eq!(
                classify(nqn, ct, children),
                Classification {
                    is_dc: dc,
                    is_ioc: ioc
                },
                "{nqn} {ct} {children}"
            );
        }
    }

    /// Builds an existing controller and a candidate from the same base cid
    /// with per-side overrides ("" value removes the key from the tid side).
    fn pair(
        base: &[(&str, &str)],
        existing: &[(&str, &str)],
        cand: &[(&str, &str)],
    ) -> (ExistingController, Tid) {
        let mut e = cid(base);
        e.extend(cid(existing));
        let mut c = cid(base);
        c.remove("src-addr");
        for (k, v) in cand {
            if v.is_empty() && *k != "subsysnqn" {
                c.remove(*k);
            } else {
                c.insert((*k).to_owned(), (*v).to_owned());
            }
        }
        (
            ExistingController::from_cid("nvme0", &e),
            Tid::from_cid(&c, &ctx()),
        )
    }

    // §17.8 upstream parametrised cases.
    #[test]
    fn upstream_parametrised() {
        let t = synthetic();
        let mut checked = 0;
        for (traddr, reversed) in [
            ("1.2.3.4", "4.3.2.1"),
            ("FE80::aaaa:BBBB:cccc:dddd", "fe80::DDDD:cccc:bbbb:AAAA"),
        ] {
            for iface in &t.interfaces {
                for s in &iface.addrs {
                    let s = s.to_string();
                    let x = iface.name.as_str();
                    for new_kernel in [true, false] {
                        let base = [
                            ("transport", "tcp"),
                            ("traddr", traddr),
                            ("trsvcid", "8009"),
                            ("subsysnqn", "hello"),
                            ("host-traddr", s.as_str()),
                            ("host-iface", x),
                            ("src-addr", if new_kernel { s.as_str() } else { "" }),
                            ("host-nqn", ""),
                        ];
                        let cases: &[(&[(&str, &str)], bool)] = &[
                            (&[], true),
                            (&[("transport", "blah")], false),
                            (&[("traddr", reversed)], false),
                            (&[("trsvcid", "8010")], false),
                            (&[("host-traddr", "255.255.255.255")], false),
                            (&[("host-iface", "blah")], false),
                            (&[("subsysnqn", "bob")], false),
                            (&[("host-traddr", "")], true),
                            (&[("host-iface", "")], true),
                            (&[("host-traddr", ""), ("host-iface", "")], true),
                        ];
                        for (cand, want) in cases {
                            let (e, tid) = pair(&base, &[], cand);
                            assert_eq!(
                                matches(&e, &tid, &t),
                                *want,
                                "new={new_kernel} {x} {s} {traddr} {cand:?}"
                            );
                            checked += 1;
                        }
                    }
                }
            }
        }
        assert!(checked > 200);
    }

    // §17.8 legacy A–G, for both families, on the synthetic interface.
    #[test]
    fn upstream_legacy() {
        let t = synthetic();
        let x = "ens3";
        for (s, other, primary, secondary) in [
            ("192.168.122.11", "1.1.1.1", X4[0], X4[1]),
            (X6[1], "AAAA::FFFF", X6[0], X6[1]),
        ] {
            let base = [
                ("transport", "tcp"),
                ("traddr", "1.2.3.4"),
                ("trsvcid", "8009"),
                ("subsysnqn", "hello"),
                ("host-nqn", ""),
            ];
            #[rustfmt::skip]
            let cases: &[(&str, Pairs, Pairs, bool)] = &[
                ("A.1", &[], &[("host-traddr", other)], true),
                ("A.2", &[("host-iface", x)], &[], true),
                ("B", &[("host-traddr", s)], &[("host-traddr", other)], false),
                ("C", &[("host-traddr", s)], &[("host-iface", "blah")], false),
                ("D", &[("host-traddr", s)], &[("host-iface", x)], true),
                ("E", &[("host-iface", x)], &[("host-traddr", other), ("host-iface", "blah")], false),
                ("F", &[("host-iface", x)], &[("host-traddr", other)], false),
                ("G", &[("host-iface", x)], &[("host-traddr", primary)], true),
                ("G'", &[("host-iface", x)], &[("host-traddr", secondary)], false),
            ];
            for (name, existing, cand, want) in cases {
                let (e, tid) = pair(&base, existing, cand);
                assert_eq!(matches(&e, &tid, &t), *want, "{name} {s}");
            }
        }
    }

    // §17.8 FC and RDMA cases.
    #[test]
    fn upstream_fc_rdma() {
        let t = synthetic();
        let fc = [
            ("transport", "fc"),
            ("traddr", "ABC"),
            ("subsysnqn", "hello"),
            ("host-traddr", "AAA::BBBB"),
            ("host-nqn", ""),
        ];
        let (e, tid) = pair(&fc, &[], &[]);
        assert!(matches(&e, &tid, &t), "FC-1");
        let (e, tid) = pair(&fc, &[], &[("host-traddr", "BBBB::AAA")]);
        assert!(!matches(&e, &tid, &t), "FC-2");

        let rdma = [
            ("transport", "rdma"),
            ("traddr", "2.3.4.5"),
            ("trsvcid", "4444"),
            ("subsysnqn", "hello"),
            ("host-traddr", "5.4.3.2"),
            ("host-nqn", ""),
        ];
        let (e, tid) = pair(&rdma, &[], &[]);
        assert!(matches(&e, &tid, &t), "RDMA-1");
        let (e, tid) = pair(&rdma, &[], &[("host-traddr", "5.5.6.6")]);
        assert!(!matches(&e, &tid, &t), "RDMA-2");
        let (e, tid) = pair(&rdma, &[], &[("host-traddr", "")]);
        assert!(matches(&e, &tid, &t), "RDMA-3");
    }

    // §17.8 "additional vectors".
    #[test]
    fn additional_vectors() {
        let t = table(&[
            ("eth0", &["192.168.1.10", "192.168.1.11", "fe80::10"]),
            ("eth1", &["10.0.0.5"]),
        ]);
        let base = [
            ("transport", "tcp"),
            ("traddr", "1.2.3.4"),
            ("trsvcid", "8009"),
            ("subsysnqn", "hello"),
            ("host-nqn", "nqn.h"),
        ];
        let fc = [("transport", "fc"), ("trsvcid", "")];
        let rdma = [
            ("transport", "rdma"),
            ("traddr", "2.3.4.5"),
            ("trsvcid", "4420"),
        ];
        let with = |extra: &[(&'static str, &'static str)],
                    more: &[(&'static str, &'static str)]| {
            let mut v: Vec<(&str, &str)> = extra.to_vec();
            v.extend_from_slice(more);
            v
        };
        #[rustfmt::skip]
        let cases: Vec<(PairVec, PairVec, bool)> = vec![
            (vec![], vec![("src-addr", "192.168.1.10")], true),
            (vec![], vec![("host-nqn", "nqn.other")], false),
            (vec![("trsvcid", "4420")], vec![], false),
            (vec![("traddr", "FE80::AAAA:0:0:1")], vec![("traddr", "fe80::aaaa:0:0:1")], true),
            (vec![("traddr", "::ffff:1.2.3.4")], vec![("traddr", "1.2.3.4")], true),
            (vec![("subsysnqn", WK)], vec![("subsysnqn", "nqn.unique.dc")], true),
            (vec![("subsysnqn", "nqn.unique.dc")], vec![("subsysnqn", WK)], false),
            (vec![("host-traddr", "192.168.1.10")], vec![("src-addr", "192.168.1.10")], true),
            (vec![("host-traddr", "192.168.1.11")], vec![("src-addr", "192.168.1.10")], false),
            (vec![("host-iface", "eth0")], vec![("src-addr", "192.168.1.11")], true),
            (vec![("host-iface", "eth1")], vec![("src-addr", "192.168.1.11")], false),
            (vec![("host-iface", "eth0")], vec![("src-addr", "172.16.0.1")], false),
            (vec![], vec![("host-iface", "eth1"), ("src-addr", "10.0.0.5")], true),
            (vec![("host-traddr", "192.168.1.10")], vec![("host-traddr", "192.168.1.10")], true),
            (vec![("host-traddr", "192.168.1.11")], vec![("host-traddr", "192.168.1.10")], false),
            (vec![("host-traddr", "192.168.1.10")], vec![("host-iface", "eth0")], true),
            (vec![("host-traddr", "192.168.1.11")], vec![("host-iface", "eth0")], false),
            (vec![("host-traddr", "fe80::99")], vec![("host-iface", "eth1")], true),
            (vec![("host-traddr", "9.9.9.9")], vec![], true),
            (vec![("host-iface", "eth0")], vec![("host-iface", "eth0")], true),
            (vec![("host-iface", "eth1")], vec![("host-iface", "eth0")], false),
            (vec![("host-iface", "eth0")], vec![("host-traddr", "192.168.1.11")], true),
            (vec![("host-iface", "eth0")], vec![("host-traddr", "10.0.0.5")], false),
            (vec![("host-iface", "eth0")], vec![], true),
            (
                with(&fc, &[("traddr", "NN-0X1:PN-0X2"), ("host-traddr", "nn-0x3:pn-0x4")]),
                with(&fc, &[("traddr", "nn-0x1:pn-0x2"), ("host-traddr", "NN-0X3:PN-0X4")]),
                true,
            ),
            (
                with(&fc, &[("traddr", "nn-0x1:pn-0x2"), ("host-traddr", "nn-0x3:pn-0x5")]),
                with(&fc, &[("traddr", "nn-0x1:pn-0x2"), ("host-traddr", "nn-0x3:pn-0x4")]),
                false,
            ),
            (
                with(&fc, &[("traddr", "nn-0x1:pn-0x2")]),
                with(&fc, &[("traddr", "nn-0x1:pn-0x2"), ("host-traddr", "nn-0x3:pn-0x4")]),
                false,
            ),
            (with(&rdma, &[("host-traddr", "5.4.3.2")]), with(&rdma, &[("host-traddr", "5.4.3.2")]), true),
            (with(&rdma, &[("host-traddr", "5.5.6.6")]), with(&rdma, &[("host-traddr", "5.4.3.2")]), false),
            (rdma.to_vec(), with(&rdma, &[("host-traddr", "5.4.3.2")]), true),
            (with(&rdma, &[("host-iface", "eth9")]), rdma.to_vec(), true),
        ];
        for (cand, existing, want) in cases {
            let (e, tid) = pair(&base, &existing, &cand);
            assert_eq!(matches(&e, &tid, &t), want, "{cand:?} vs {existing:?}");
        }
    }

    #[test]
    fn scope_ids_compared_only_when_both_present() {
        let t = table(&[("eth0", &["fe80::10"])]);
        let base = [
            ("transport", "tcp"),
            ("traddr", "fe80::1"),
            ("trsvcid", "8009"),
            ("subsysnqn", "hello"),
            ("host-nqn", ""),
        ];
        for (cand, existing, want) in [
            ("fe80::1", "fe80::1", true),
            ("fe80::1", "fe80::2", false),
            ("fe80::1%eth0", "fe80::1", true),
            ("fe80::1%eth0", "fe80::1%eth0", true),
            ("fe80::1%eth0", "fe80::1%eth1", false),
        ] {
            let (e, tid) = pair(&base, &[("traddr", existing)], &[("traddr", cand)]);
            assert_eq!(matches(&e, &tid, &t), want, "{cand} {existing}");
        }
        // A scoped host-traddr against the kernel's unscoped src_addr.
        for (host_traddr, want) in [("fe80::10%eth0", true), ("fe80::11%eth0", false)] {
            let (e, tid) = pair(
                &base,
                &[("src-addr", "fe80::10")],
                &[("host-traddr", host_traddr), ("host-iface", "eth0")],
            );
            assert_eq!(matches(&e, &tid, &t), want, "{host_traddr}");
        }
    }

    #[test]
    fn find_dc_and_ioc_take_the_first_of_the_right_kind() {
        let t = table(&[("eth0", &["192.168.1.10"])]);
        let common = [
            ("transport", "tcp"),
            ("traddr", "1.2.3.4"),
            ("trsvcid", "8009"),
            ("host-nqn", "nqn.sysconf"),
        ];
        let mk = |name: &str, extra: &[(&str, &str)]| {
            let mut c = cid(&common);
            c.extend(cid(extra));
            ExistingController::from_cid(name, &c)
        };
        let ctrls = vec![
            mk("nvme0", &[("subsysnqn", "nqn.io"), ("cntrltype", "io")]),
            mk(
                "nvme1",
                &[("subsysnqn", "nqn.unique.dc"), ("cntrltype", "discovery")],
            ),
            mk("nvme2", &[("subsysnqn", WK)]),
            mk("nvme3", &[("subsysnqn", "nqn.io"), ("cntrltype", "io")]),
        ];
        let dc = Tid::from_cid(
            &cid(&[
                ("transport", "tcp"),
                ("traddr", "1.2.3.4"),
                ("subsysnqn", WK),
            ]),
            &ctx(),
        );
        assert_eq!(
            find_dc(&ctrls, &dc, &t).map(|c| c.name.as_str()),
            Some("nvme1")
        );
        // The well-known wildcard applies to IOC searches too, but nvme0 is first.
        assert_eq!(
            find_ioc(&ctrls, &dc, &t).map(|c| c.name.as_str()),
            Some("nvme0")
        );
        let io = Tid::from_cid(
            &cid(&[
                ("transport", "tcp"),
                ("traddr", "1.2.3.4"),
                ("subsysnqn", "nqn.io"),
            ]),
            &ctx(),
        );
        assert_eq!(
            find_ioc(&ctrls, &io, &t).map(|c| c.name.as_str()),
            Some("nvme0")
        );
        assert_eq!(find_dc(&ctrls, &io, &t), None);
        let other = Tid::from_cid(
            &cid(&[
                ("transport", "tcp"),
                ("traddr", "9.9.9.9"),
                ("subsysnqn", "nqn.io"),
            ]),
            &ctx(),
        );
        assert_eq!(find_ioc(&ctrls, &other, &t), None);
        assert_eq!(find_ioc(&[], &io, &t), None);
    }

    #[test]
    fn tid_of_existing_vectors() {
        let t = table(&[("eth0", &["192.168.1.10"]), ("eth1", &["10.0.0.5"])]);
        let e = ExistingController::from_cid(
            "nvme4",
            &cid(&[
                ("transport", "tcp"),
                ("traddr", "1.2.3.4"),
                ("trsvcid", "4420"),
                ("subsysnqn", "nqn.io"),
                ("host-nqn", ""),
                ("src-addr", "10.0.0.5"),
            ]),
        );
        let tid = tid_of_existing(&e, &t, &ctx());
        assert_eq!(tid.host_iface, "eth1");
        assert_eq!(tid.host_nqn, "");
        assert_eq!(tid.to_string(), "(tcp, 1.2.3.4, 4420, nqn.io, eth1)");
        assert_eq!(tid.cfg, cid(&[("host-nqn", ""), ("src-addr", "10.0.0.5")]));
        // The audit TID matches the controller it came from.
        assert!(matches(&e, &tid, &t));

        // A known host-iface is kept; an unowned src_addr gives "".
        let mut e2 = e.clone();
        e2.host_iface = "eth0".into();
        assert_eq!(tid_of_existing(&e2, &t, &ctx()).host_iface, "eth0");
        let mut e3 = e.clone();
        e3.src_addr = "172.16.0.1".into();
        assert_eq!(tid_of_existing(&e3, &t, &ctx()).host_iface, "");

        // Not tcp: no inference; ignore-iface erases it anyway.
        let mut e4 = e.clone();
        e4.transport = "rdma".into();
        assert_eq!(tid_of_existing(&e4, &t, &ctx()).host_iface, "");
        let ig = TidContext {
            host_nqn: "nqn.sysconf".into(),
            ignore_iface: true,
        };
        assert_eq!(tid_of_existing(&e, &t, &ig).host_iface, "");

        // fc: trsvcid forced "" even if the kernel said something.
        let fc = ExistingController::from_cid(
            "nvme5",
            &cid(&[
                ("transport", "fc"),
                ("traddr", "nn-0x1:pn-0x2"),
                ("trsvcid", "x"),
            ]),
        );
        assert_eq!(tid_of_existing(&fc, &t, &ctx()).trsvcid, "");
    }
}
