//! The built-in mDNS querier (RFC 6762 / RFC 6763) that browses for TP8009
//! discovery controllers, as a pure state machine: the caller feeds it the
//! time, the interfaces and the packets received, and sends the packets it
//! returns. No sockets, no clock: tests drive it with a fake one.
//!
//! What it does, per interface (interfaces are told apart by index):
//!
//! * **Continuous querying** (§5.2): a PTR query for every service type,
//!   first 20-120 ms after the interface appears (with the QU bit, §5.4),
//!   then after 1 s, doubling up to a 60-minute cap.
//! * **Known-answer suppression** (§7.1): browse queries list the PTR answers
//!   cached with more than half their TTL left, split over several packets
//!   with the TC bit when they do not fit (§7.2).
//! * **Cache maintenance** (§5.2, §10): every cached record is re-queried at
//!   80, 85, 90 and 95 % of its TTL (plus up to 2 % jitter); it expires at
//!   its TTL; a goodbye (TTL 0) removes it after 1 s (§10.1); a record with
//!   the cache-flush bit makes older records of its name and type expire
//!   after 1 s (§10.2).
//! * **Resolution**: a PTR without SRV or TXT, or an SRV whose target has no
//!   address, is asked for (SRV, TXT, A, AAAA), retried after 1 s doubling
//!   to 60 s until answered.
//! * **Services**: a service is (interface, instance, service type) with an
//!   SRV, a TXT and at least one address heard on that interface. Changes
//!   come out as [`MdnsEvent`]s.
//! * **Bounds**: at most [`QuerierConfig::max_records_per_interface`]
//!   records are cached per interface; a hostile network fills that and no
//!   more (the excess is counted in [`InterfaceStats::records_dropped`]).
//!
//! With the feature `mdns-driver`, [`driver`] runs it on real sockets.
//!
//! Responses from a source port other than 5353 are ignored (§6). Not done:
//! duplicate question suppression (§7.3) and the on-link source check of
//! §11 (the socket only sees link-local multicast, and unicast replies to
//! port 5353).
//!
//! Bare § numbers refer to sections of RFC 6762;
//! other documents are named where they are cited.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use nvmf_proto::mdns::{
    query_packets, txt_dict, txt_nqn, txt_transport, DnsName, Message, Question, RData, Record,
    RecordType, Transport, MDNS_PORT, NVME_DISC_SERVICE_TYPES, QUERY_TARGET_LEN,
};
use nvmf_proto::ProtoError;

/// The IP family of an address or a socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AddressFamily {
    /// IPv4.
    Ipv4,
    /// IPv6.
    Ipv6,
}

impl AddressFamily {
    /// The family of `addr`.
    pub fn of(addr: &IpAddr) -> Self {
        match addr {
            IpAddr::V4(_) => Self::Ipv4,
            IpAddr::V6(_) => Self::Ipv6,
        }
    }

    /// `IPv4` or `IPv6`, as nvme-stas prints it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ipv4 => "IPv4",
            Self::Ipv6 => "IPv6",
        }
    }
}

impl fmt::Display for AddressFamily {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An interface the querier may use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MdnsInterface {
    /// Kernel interface index.
    pub index: u32,
    /// Interface name.
    pub name: String,
    /// It has an IPv4 address, so IPv4 mDNS works on it.
    pub ipv4: bool,
    /// It has an IPv6 link-local address, so IPv6 mDNS works on it.
    pub ipv6: bool,
}

/// A packet to send to the mDNS group of `family` on interface `ifindex`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingPacket {
    /// Interface index.
    pub ifindex: u32,
    /// Which group: 224.0.0.251 or ff02::fb.
    pub family: AddressFamily,
    /// The message.
    pub bytes: Vec<u8>,
}

/// Why a received packet was not used. Each is normal on a busy network;
/// the driver logs them at debug level with the sender.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MdnsError {
    /// The packet is not a valid DNS message.
    #[error("ignoring malformed mDNS packet: {0}")]
    Malformed(#[from] ProtoError),
    /// A response not from port 5353 (RFC 6762 §6 says to ignore it).
    #[error("ignoring mDNS response from source port {0} (responses must come from port 5353)")]
    WrongSourcePort(u16),
    /// The packet came in on an interface the querier does not use.
    #[error("ignoring mDNS packet on interface index {0}, which is not being browsed")]
    UnknownInterface(u32),
    /// Socket setup or I/O failed (the driver).
    #[error(
        "mDNS {op}: {reason}; check that UDP port 5353 and multicast are allowed on this host"
    )]
    Io {
        /// What was being done.
        op: &'static str,
        /// The error.
        reason: String,
    },
    /// A D-Bus call or subscription of the Avahi backend failed.
    #[error("Avahi backend: {op}: {reason}; check that the system bus is running and reachable")]
    Bus {
        /// What was being done.
        op: &'static str,
        /// The error.
        reason: String,
    },
    /// The Avahi backend was chosen explicitly but there is no bus to reach
    /// avahi-daemon on.
    #[error("the Avahi mDNS backend needs the system bus, and there is no connection to it; choose the built-in backend or start dbus")]
    NoBus,
}

/// What identifies a service: where it was heard and its name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServiceKey {
    /// Name of the interface it was heard on.
    pub interface: String,
    /// Index of that interface.
    pub ifindex: u32,
    /// The instance label (`dc-1` of `dc-1._nvme-disc._tcp.local`).
    pub instance: String,
    /// The service type (`_nvme-disc._tcp.local`).
    pub service_type: String,
}

/// One address of a service and the TTL it was announced with.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServiceAddress {
    /// The address.
    pub addr: IpAddr,
    /// Its TTL in seconds.
    pub ttl: u32,
}

/// A resolved service: SRV, TXT and addresses heard on one interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoveredService {
    /// Which service.
    pub key: ServiceKey,
    /// The SRV target host name.
    pub host: String,
    /// The SRV port.
    pub port: u16,
    /// The TXT items as TP8009 reads them (keys lower-cased).
    pub txt: BTreeMap<String, String>,
    /// The transport from `p=`; `None` if missing or unknown (invalid).
    pub transport: Option<Transport>,
    /// The subsystem NQN from `nqn=`, or the well-known discovery NQN.
    pub nqn: String,
    /// The PTR record's TTL in seconds, as announced.
    pub ttl: u32,
    /// Its addresses, sorted.
    pub addresses: Vec<ServiceAddress>,
}

/// One address of one discovered discovery controller: what stafd turns
/// into a transport ID and what `stasadm browse` prints.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DcRecord {
    /// Interface it was heard on.
    pub interface: String,
    /// Its index.
    pub ifindex: u32,
    /// Family of `address`.
    pub family: AddressFamily,
    /// The address.
    pub address: IpAddr,
    /// For an IPv6 link-local address, the interface it is scoped to (the
    /// one it was heard on); otherwise `None`.
    pub scope: Option<String>,
    /// TCP/UDP port.
    pub port: u16,
    /// Transport, `None` when the TXT `p=` is missing or unknown.
    pub transport: Option<Transport>,
    /// Subsystem NQN.
    pub nqn: String,
    /// The address record's TTL in seconds.
    pub ttl: u32,
    /// The instance label.
    pub instance: String,
    /// The service type.
    pub service_type: String,
}

impl DcRecord {
    /// The address with its scope for link-local IPv6 (`fe80::1%eth0`).
    pub fn scoped_address(&self) -> String {
        match &self.scope {
            Some(s) => format!("{}%{s}", self.address),
            None => self.address.to_string(),
        }
    }
}

fn is_ipv6_link_local(addr: &IpAddr) -> bool {
    matches!(addr, IpAddr::V6(a) if (a.segments()[0] & 0xffc0) == 0xfe80)
}

impl DiscoveredService {
    /// One record per address.
    pub fn records(&self) -> Vec<DcRecord> {
        self.addresses
            .iter()
            .map(|a| DcRecord {
                interface: self.key.interface.clone(),
                ifindex: self.key.ifindex,
                family: AddressFamily::of(&a.addr),
                address: a.addr,
                scope: is_ipv6_link_local(&a.addr).then(|| self.key.interface.clone()),
                port: self.port,
                transport: self.transport,
                nqn: self.nqn.clone(),
                ttl: a.ttl,
                instance: self.key.instance.clone(),
                service_type: self.key.service_type.clone(),
            })
            .collect()
    }
}

impl DiscoveredService {
    /// The controllers this service names, one per address, as nvme-stas
    /// identifies them (docs/behaviour.md §10.4): `transport`, `traddr`
    /// (no scope suffix), `trsvcid`, `host-iface` (the interface for TCP,
    /// empty for RDMA) and `subsysnqn` (the TXT `nqn` only when the kernel
    /// accepts the `discovery` connect option, TP8013; else the well-known
    /// discovery NQN). Empty when the transport is invalid.
    pub fn cids(&self, kernel_supports_discovery: bool) -> Vec<stas_config::Cid> {
        let Some(transport) = self.transport else {
            return Vec::new();
        };
        let nqn = if kernel_supports_discovery {
            self.nqn.clone()
        } else {
            nvmf_proto::WELL_KNOWN_DISCOVERY_NQN.to_owned()
        };
        let host_iface = match transport {
            Transport::Tcp => self.key.interface.clone(),
            Transport::Rdma => String::new(),
        };
        self.addresses
            .iter()
            .map(|a| {
                [
                    ("transport", transport.as_str().to_owned()),
                    ("traddr", a.addr.to_string()),
                    ("trsvcid", self.port.to_string()),
                    ("host-iface", host_iface.clone()),
                    ("subsysnqn", nqn.clone()),
                ]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect()
            })
            .collect()
    }
}

/// A change in the set of discovered services.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MdnsEvent {
    /// A service was resolved for the first time.
    Found(DiscoveredService),
    /// A resolved service changed (address, port, TXT, TTL).
    Updated(DiscoveredService),
    /// A service is gone (goodbye, expiry, interface gone); its last state.
    Removed(DiscoveredService),
}

impl MdnsEvent {
    /// The service concerned.
    pub fn service(&self) -> &DiscoveredService {
        match self {
            Self::Found(s) | Self::Updated(s) | Self::Removed(s) => s,
        }
    }
}

/// Counters for one interface.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InterfaceStats {
    /// Interface name.
    pub interface: String,
    /// Query packets sent over IPv4.
    pub queries_sent_v4: u64,
    /// Query packets sent over IPv6.
    pub queries_sent_v6: u64,
    /// Packets received and used.
    pub packets_received: u64,
    /// Packets received and ignored (malformed, wrong port).
    pub packets_ignored: u64,
    /// Records not cached because the interface's cache was full.
    pub records_dropped: u64,
}

/// Tunables; the defaults are RFC 6762's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuerierConfig {
    /// The service types to browse.
    pub service_types: Vec<DnsName>,
    /// Cache capacity per interface, in records.
    pub max_records_per_interface: usize,
    /// The cap of the browse query interval.
    pub max_browse_interval: Duration,
    /// Seed of the jitter (any value; the driver uses the clock).
    pub seed: u64,
}

impl Default for QuerierConfig {
    fn default() -> Self {
        Self {
            service_types: NVME_DISC_SERVICE_TYPES
                .iter()
                .filter_map(|t| DnsName::parse_dotted(t).ok())
                .collect(),
            max_records_per_interface: 1024,
            max_browse_interval: Duration::from_secs(3600),
            seed: 0x5eed,
        }
    }
}

const FIRST_QUERY_DELAY_MS: (u64, u64) = (20, 120);
const FIRST_INTERVAL: Duration = Duration::from_secs(1);
const MAX_FOLLOWUP_INTERVAL: Duration = Duration::from_secs(60);
const GOODBYE_DELAY: Duration = Duration::from_secs(1);
const REFRESH_PERCENTS: [u64; 4] = [80, 85, 90, 95];

#[derive(Debug, Clone)]
struct CacheEntry {
    ttl: u32,
    received: Instant,
    expires: Instant,
    next_refresh: Option<Instant>,
    refresh_stage: usize,
    jitter: Duration,
}

#[derive(Debug, Clone, Copy)]
struct Retry {
    next_at: Instant,
    interval: Duration,
}

#[derive(Debug)]
struct InterfaceState {
    info: MdnsInterface,
    cache: BTreeMap<(DnsName, RData), CacheEntry>,
    browse: Retry,
    first_browse: bool,
    followups: BTreeMap<(DnsName, RecordType), Retry>,
    refreshes: BTreeSet<(DnsName, RecordType)>,
    published: BTreeMap<(DnsName, DnsName), DiscoveredService>,
    stats: InterfaceStats,
    /// Refresh jitter of this interface, in thousandths of a TTL (0-19).
    jitter_permille: u64,
}

/// The querier. See the module documentation.
#[derive(Debug)]
pub struct Querier {
    config: QuerierConfig,
    interfaces: BTreeMap<u32, InterfaceState>,
    events: VecDeque<MdnsEvent>,
    rng: u64,
}

impl Querier {
    /// A querier with no interfaces yet.
    pub fn new(config: QuerierConfig) -> Self {
        let rng = config.seed | 1;
        Self {
            config,
            interfaces: BTreeMap::new(),
            events: VecDeque::new(),
            rng,
        }
    }

    fn random(&mut self, below: u64) -> u64 {
        // xorshift64: jitter only, no need for quality.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng.checked_rem(below).unwrap_or(0)
    }

    /// Follows the host's interfaces: new ones are browsed, vanished ones
    /// drop their services (as `Removed` events), changed ones (a family
    /// gained) restart their browse schedule.
    pub fn set_interfaces(&mut self, now: Instant, interfaces: &[MdnsInterface]) {
        let gone: Vec<u32> = self
            .interfaces
            .keys()
            .filter(|i| !interfaces.iter().any(|n| n.index == **i))
            .copied()
            .collect();
        for index in gone {
            if let Some(state) = self.interfaces.remove(&index) {
                for (_, svc) in state.published {
                    self.events.push_back(MdnsEvent::Removed(svc));
                }
            }
        }
        for info in interfaces {
            let delay = Duration::from_millis(
                FIRST_QUERY_DELAY_MS.0
                    + self.random(FIRST_QUERY_DELAY_MS.1 - FIRST_QUERY_DELAY_MS.0),
            );
            let first = Retry {
                next_at: now + delay,
                interval: FIRST_INTERVAL,
            };
            match self.interfaces.get_mut(&info.index) {
                Some(state) if state.info == *info => {}
                Some(state) => {
                    let gained = (info.ipv4 && !state.info.ipv4) || (info.ipv6 && !state.info.ipv6);
                    state.info = info.clone();
                    state.stats.interface = info.name.clone();
                    if gained {
                        state.browse = first;
                    }
                }
                None => {
                    let jitter_permille = self.random(20);
                    self.interfaces.insert(
                        info.index,
                        InterfaceState {
                            info: info.clone(),
                            cache: BTreeMap::new(),
                            browse: first,
                            first_browse: true,
                            followups: BTreeMap::new(),
                            refreshes: BTreeSet::new(),
                            published: BTreeMap::new(),
                            stats: InterfaceStats {
                                interface: info.name.clone(),
                                ..InterfaceStats::default()
                            },
                            jitter_permille,
                        },
                    );
                }
            }
        }
    }

    /// Takes in a packet received on interface `ifindex` from `source`.
    /// Queries and unusable packets change nothing; the error says why a
    /// packet was ignored, for a debug log naming the sender.
    pub fn handle_packet(
        &mut self,
        now: Instant,
        ifindex: u32,
        source: SocketAddr,
        bytes: &[u8],
    ) -> Result<(), MdnsError> {
        let max = self.config.max_records_per_interface;
        let service_types = self.config.service_types.clone();
        let state = self
            .interfaces
            .get_mut(&ifindex)
            .ok_or(MdnsError::UnknownInterface(ifindex))?;
        let message = match Message::parse(bytes) {
            Ok(m) => m,
            Err(e) => {
                state.stats.packets_ignored = state.stats.packets_ignored.saturating_add(1);
                return Err(e.into());
            }
        };
        if !message.response {
            return Ok(());
        }
        if source.port() != MDNS_PORT {
            state.stats.packets_ignored = state.stats.packets_ignored.saturating_add(1);
            return Err(MdnsError::WrongSourcePort(source.port()));
        }
        state.stats.packets_received = state.stats.packets_received.saturating_add(1);

        // Service records first, so the addresses of an SRV target that
        // comes in the same packet (additional section) are recognised.
        let (service_records, rest): (Vec<&Record>, Vec<&Record>) = message
            .records()
            .partition(|r| !matches!(r.data, RData::A(_) | RData::Aaaa(_)));
        let mut flushed: BTreeSet<(DnsName, RecordType)> = BTreeSet::new();
        let mut touched: BTreeSet<(DnsName, RData)> = BTreeSet::new();
        for r in service_records {
            let relevant = match &r.data {
                RData::Ptr(target) => service_types.contains(&r.name) && target.parent() == r.name,
                RData::Srv { .. } | RData::Txt(_) => service_types.contains(&r.name.parent()),
                _ => false,
            };
            if relevant {
                state.store(now, r, max, &mut flushed, &mut touched);
            }
        }
        let targets: BTreeSet<DnsName> = state
            .cache
            .keys()
            .filter_map(|(_, d)| match d {
                RData::Srv { target, .. } => Some(target.clone()),
                _ => None,
            })
            .collect();
        for r in rest {
            if targets.contains(&r.name) {
                state.store(now, r, max, &mut flushed, &mut touched);
            }
        }
        // RFC 6762 §10.2: records of a flushed name and type not in this
        // packet, received over a second ago, go in one second.
        for ((name, data), entry) in state.cache.iter_mut() {
            if flushed.contains(&(name.clone(), data.rtype()))
                && !touched.contains(&(name.clone(), data.clone()))
                && entry.received + GOODBYE_DELAY < now
            {
                entry.expires = entry.expires.min(now + GOODBYE_DELAY);
                entry.next_refresh = None;
            }
        }
        self.republish(now, ifindex);
        Ok(())
    }

    /// Runs the timers due at `now` (expiry, refresh, browse, follow-up) and
    /// returns the packets to send.
    pub fn poll(&mut self, now: Instant) -> Vec<OutgoingPacket> {
        let indexes: Vec<u32> = self.interfaces.keys().copied().collect();
        let mut out = Vec::new();
        for index in indexes {
            let expired = self
                .interfaces
                .get_mut(&index)
                .is_some_and(|s| s.expire(now));
            if expired {
                self.republish(now, index);
            }
            let types = self.config.service_types.clone();
            let max_interval = self.config.max_browse_interval;
            let Some(state) = self.interfaces.get_mut(&index) else {
                continue;
            };
            let mut questions: Vec<Question> = Vec::new();
            let mut known = Vec::new();
            if state.browse.next_at <= now {
                for t in &types {
                    questions.push(Question {
                        name: t.clone(),
                        qtype: RecordType::Ptr,
                        unicast_response: state.first_browse,
                    });
                }
                known = state.known_answers(now);
                state.first_browse = false;
                state.browse.next_at = now + state.browse.interval;
                state.browse.interval = (state.browse.interval * 2).min(max_interval);
            }
            for ((name, qtype), retry) in state.followups.iter_mut() {
                if retry.next_at <= now {
                    push_question(&mut questions, name, *qtype);
                    retry.next_at = now + retry.interval;
                    retry.interval = (retry.interval * 2).min(MAX_FOLLOWUP_INTERVAL);
                }
            }
            for (name, qtype) in std::mem::take(&mut state.refreshes) {
                push_question(&mut questions, &name, qtype);
            }
            if questions.is_empty() {
                continue;
            }
            let packets = build_queries(&questions, &known);
            for (family, enabled) in [
                (AddressFamily::Ipv4, state.info.ipv4),
                (AddressFamily::Ipv6, state.info.ipv6),
            ] {
                if !enabled {
                    continue;
                }
                for bytes in &packets {
                    let counter = match family {
                        AddressFamily::Ipv4 => &mut state.stats.queries_sent_v4,
                        AddressFamily::Ipv6 => &mut state.stats.queries_sent_v6,
                    };
                    *counter = counter.saturating_add(1);
                    out.push(OutgoingPacket {
                        ifindex: index,
                        family,
                        bytes: bytes.clone(),
                    });
                }
            }
        }
        out
    }

    /// When [`poll`](Self::poll) next has work, if ever.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.interfaces
            .values()
            .flat_map(|s| {
                let cache = s
                    .cache
                    .values()
                    .flat_map(|e| [Some(e.expires), e.next_refresh])
                    .flatten();
                let followups = s.followups.values().map(|r| r.next_at);
                std::iter::once(s.browse.next_at)
                    .chain(cache)
                    .chain(followups)
            })
            .min()
    }

    /// The events since the last call, oldest first.
    pub fn take_events(&mut self) -> Vec<MdnsEvent> {
        self.events.drain(..).collect()
    }

    /// Every service resolved now.
    pub fn services(&self) -> Vec<DiscoveredService> {
        self.interfaces
            .values()
            .flat_map(|s| s.published.values().cloned())
            .collect()
    }

    /// Counters per interface.
    pub fn stats(&self) -> Vec<InterfaceStats> {
        self.interfaces.values().map(|s| s.stats.clone()).collect()
    }

    /// Recomputes the services of one interface from its cache, queues the
    /// events for the differences and updates the follow-up questions.
    fn republish(&mut self, now: Instant, index: u32) {
        let Some(state) = self.interfaces.get_mut(&index) else {
            return;
        };
        let (services, wanted) = state.resolve();
        let old = std::mem::take(&mut state.published);
        for (key, svc) in &services {
            match old.get(key) {
                None => self.events.push_back(MdnsEvent::Found(svc.clone())),
                Some(prev) if prev != svc => self.events.push_back(MdnsEvent::Updated(svc.clone())),
                Some(_) => {}
            }
        }
        for (key, svc) in old {
            if !services.contains_key(&key) {
                self.events.push_back(MdnsEvent::Removed(svc));
            }
        }
        state.published = services;
        state.followups.retain(|k, _| wanted.contains(k));
        for k in wanted {
            state.followups.entry(k).or_insert(Retry {
                next_at: now,
                interval: FIRST_INTERVAL,
            });
        }
    }
}

fn push_question(questions: &mut Vec<Question>, name: &DnsName, qtype: RecordType) {
    if !questions
        .iter()
        .any(|q| q.name == *name && q.qtype == qtype)
    {
        questions.push(Question {
            name: name.clone(),
            qtype,
            unicast_response: false,
        });
    }
}

/// Splits the questions over packets that fit; the known answers go with
/// the first (which holds the browse questions).
fn build_queries(questions: &[Question], known: &[Record]) -> Vec<Vec<u8>> {
    let mut groups: Vec<Vec<Question>> = vec![Vec::new()];
    let mut used = 12usize;
    for q in questions {
        let len = q.name.wire_len().saturating_add(4);
        if used.saturating_add(len) > QUERY_TARGET_LEN {
            groups.push(Vec::new());
            used = 12;
        }
        if let Some(g) = groups.last_mut() {
            g.push(q.clone());
        }
        used = used.saturating_add(len);
    }
    let mut out = Vec::new();
    for (i, g) in groups.iter().enumerate() {
        let known = if i == 0 { known } else { &[] };
        // Names are at most 255 bytes, so a question always fits; an error
        // here would be a bug, and dropping one query is harmless.
        if let Ok(p) = query_packets(g, known, QUERY_TARGET_LEN) {
            out.extend(p);
        }
    }
    out
}

fn ttl_duration(ttl: u32) -> Duration {
    Duration::from_secs(u64::from(ttl))
}

impl InterfaceState {
    fn store(
        &mut self,
        now: Instant,
        r: &Record,
        max: usize,
        flushed: &mut BTreeSet<(DnsName, RecordType)>,
        touched: &mut BTreeSet<(DnsName, RData)>,
    ) {
        let key = (r.name.clone(), r.data.clone());
        if r.ttl == 0 {
            // Goodbye (§10.1): keep it one more second, then drop it.
            if let Some(e) = self.cache.get_mut(&key) {
                e.expires = e.expires.min(now + GOODBYE_DELAY);
                e.next_refresh = None;
            }
            return;
        }
        if r.cache_flush {
            flushed.insert((r.name.clone(), r.data.rtype()));
        }
        touched.insert(key.clone());
        if !self.cache.contains_key(&key) && self.cache.len() >= max {
            self.stats.records_dropped = self.stats.records_dropped.saturating_add(1);
            return;
        }
        // The jitter (RFC 6762 §5.2: 0-2 % of the TTL) is the interface's,
        // so records that came together with the same TTL are refreshed by
        // one query rather than one each.
        let ttl_ms = u64::from(r.ttl).saturating_mul(1000);
        let jitter_ms = ttl_ms.saturating_mul(self.jitter_permille) / 1000;
        let mut entry = CacheEntry {
            ttl: r.ttl,
            received: now,
            expires: now + ttl_duration(r.ttl),
            next_refresh: None,
            refresh_stage: 0,
            jitter: Duration::from_millis(jitter_ms),
        };
        entry.next_refresh = refresh_at(&entry);
        self.cache.insert(key, entry);
    }

    /// Drops expired records and queues refresh questions; true if a
    /// record was dropped.
    fn expire(&mut self, now: Instant) -> bool {
        let before = self.cache.len();
        self.cache.retain(|_, e| e.expires > now);
        for ((name, data), e) in self.cache.iter_mut() {
            if e.next_refresh.is_some_and(|t| t <= now) {
                self.refreshes.insert((name.clone(), data.rtype()));
                e.refresh_stage = e.refresh_stage.saturating_add(1);
                e.next_refresh = refresh_at(e);
            }
        }
        self.cache.len() != before
    }

    /// The cached records of one name: a range of the cache, since it is
    /// ordered by name first and `A(0.0.0.0)` is the smallest data.
    fn entries_of<'a>(
        &'a self,
        name: &'a DnsName,
    ) -> impl Iterator<Item = (&'a RData, &'a CacheEntry)> + 'a {
        self.cache
            .range((name.clone(), RData::A(std::net::Ipv4Addr::UNSPECIFIED))..)
            .take_while(move |((n, _), _)| n == name)
            .map(|((_, d), e)| (d, e))
    }

    fn known_answers(&self, now: Instant) -> Vec<Record> {
        self.cache
            .iter()
            .filter(|((_, d), e)| {
                matches!(d, RData::Ptr(_))
                    && e.expires.saturating_duration_since(now) > ttl_duration(e.ttl) / 2
            })
            .map(|((name, data), e)| Record {
                name: name.clone(),
                ttl: u32::try_from(e.expires.saturating_duration_since(now).as_secs())
                    .unwrap_or(e.ttl),
                cache_flush: false,
                data: data.clone(),
            })
            .collect()
    }

    /// The resolved services, and the questions still needed to resolve
    /// the rest.
    #[allow(clippy::type_complexity)]
    fn resolve(
        &self,
    ) -> (
        BTreeMap<(DnsName, DnsName), DiscoveredService>,
        BTreeSet<(DnsName, RecordType)>,
    ) {
        let mut services = BTreeMap::new();
        let mut wanted = BTreeSet::new();
        let latest = |name: &DnsName, rtype: RecordType| {
            self.entries_of(name)
                .filter(|(d, _)| d.rtype() == rtype)
                .max_by_key(|(_, e)| e.received)
                .map(|(d, _)| d.clone())
        };
        for ((service_type, data), ptr) in &self.cache {
            let RData::Ptr(instance) = data else {
                continue;
            };
            let srv = latest(instance, RecordType::Srv);
            let txt = latest(instance, RecordType::Txt);
            if srv.is_none() {
                wanted.insert((instance.clone(), RecordType::Srv));
            }
            if txt.is_none() {
                wanted.insert((instance.clone(), RecordType::Txt));
            }
            let (Some(RData::Srv { port, target, .. }), Some(RData::Txt(items))) = (srv, txt)
            else {
                continue;
            };
            let mut addresses: Vec<ServiceAddress> = self
                .entries_of(&target)
                .filter_map(|(d, e)| match d {
                    RData::A(a) => Some(ServiceAddress {
                        addr: IpAddr::V4(*a),
                        ttl: e.ttl,
                    }),
                    RData::Aaaa(a) => Some(ServiceAddress {
                        addr: IpAddr::V6(*a),
                        ttl: e.ttl,
                    }),
                    _ => None,
                })
                .collect();
            if addresses.is_empty() {
                wanted.insert((target.clone(), RecordType::A));
                wanted.insert((target.clone(), RecordType::Aaaa));
                continue;
            }
            addresses.sort();
            addresses.dedup_by(|a, b| a.addr == b.addr);
            let txt = txt_dict(&items);
            let key = ServiceKey {
                interface: self.info.name.clone(),
                ifindex: self.info.index,
                instance: instance
                    .first_label()
                    .map(nvmf_proto::mdns::label_text)
                    .unwrap_or_default(),
                service_type: service_type.to_string(),
            };
            services.insert(
                (service_type.clone(), instance.clone()),
                DiscoveredService {
                    key,
                    host: target.to_string(),
                    port,
                    transport: txt_transport(&txt),
                    nqn: txt_nqn(&txt),
                    txt,
                    ttl: ptr.ttl,
                    addresses,
                },
            );
        }
        (services, wanted)
    }
}

/// When the entry's next refresh query is due: 80, 85, 90, 95 % of its TTL
/// plus its jitter; `None` after the last.
fn refresh_at(e: &CacheEntry) -> Option<Instant> {
    let percent = REFRESH_PERCENTS.get(e.refresh_stage)?;
    let ttl_ms = u64::from(e.ttl).saturating_mul(1000);
    Some(e.received + Duration::from_millis(ttl_ms.saturating_mul(*percent) / 100) + e.jitter)
}

#[cfg(feature = "driver")]
pub mod driver;

#[cfg(feature = "driver")]
pub mod avahi;

#[cfg(feature = "driver")]
pub mod backend;

#[cfg(test)]
mod tests;
