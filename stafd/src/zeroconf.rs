//! Zero-touch discovery (TP8009, docs/behaviour.md §10): the services the
//! mDNS browser reports become discovery-controller identities, TCP ones are
//! probed for reachability before they are reported (a CDC may announce
//! itself before it listens), and the reachable set goes to the service,
//! which reconciles it with origin `discovered`.
//!
//! [`Zeroconf`] is the core (events, probe outcomes and time in; probe
//! requests and the reachable set out), unit-tested with a fake clock;
//! [`run`] is the shell that drives it with a browser and real probes.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr, SocketAddrV6};
use std::time::Duration;

use stas_daemon::dbus::{py_bool, Json};
use stas_mdns::{MdnsEvent, ServiceKey};
use stas_tid::{Tid, TidContext};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Delays between failed reachability probes (§10.5), the last repeating.
/// Upstream's timer skips the first value by accident; here it is used.
pub const PROBE_BACKOFF: [Duration; 7] = [
    Duration::from_secs(2),
    Duration::from_secs(5),
    Duration::from_secs(10),
    Duration::from_secs(30),
    Duration::from_secs(60),
    Duration::from_secs(300),
    Duration::from_secs(600),
];

/// How long a probe may take (upstream has no limit and relies on the
/// kernel's SYN retries, about two minutes).
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// A reachability probe to run: a TCP connect to `addr:port` bound to
/// `interface`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeRequest {
    /// The identity being probed.
    pub tid: Tid,
    /// The service it came from.
    pub key: ServiceKey,
    /// Where to connect.
    pub addr: IpAddr,
    /// TCP port.
    pub port: u16,
}

/// Why a reachability probe failed.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// No TCP socket could be made.
    #[error("Unable to verify connectivity: {0}")]
    Socket(#[source] std::io::Error),
    /// The socket could not be bound to the interface the service was heard on.
    #[error(transparent)]
    Bind(#[from] nvmf_kernel::KernelError),
    /// The connect failed (refused, unreachable, ...).
    #[error(transparent)]
    Connect(std::io::Error),
    /// The connect got no answer within the time given.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Reach {
    /// A probe is in flight (`attempt` failures so far).
    Probing { failures: usize },
    /// The last probe failed; the next is due at `at`.
    Waiting { failures: usize, at: Instant },
    /// Reachable (or not probed: RDMA).
    Reachable,
}

#[derive(Debug, Clone)]
struct Identity {
    tid: Tid,
    addr: IpAddr,
    port: u16,
    reach: Reach,
}

#[derive(Debug, Clone)]
struct Service {
    host: String,
    identities: Vec<Identity>,
}

/// The zero-touch core: see the module documentation.
#[derive(Debug)]
pub struct Zeroconf {
    ctx: TidContext,
    tp8013: bool,
    services: BTreeMap<ServiceKey, Service>,
}

impl Zeroconf {
    /// A core turning services into TIDs with `ctx`; `tp8013`: whether the
    /// kernel accepts the `discovery` option (then the TXT `nqn` is used).
    pub fn new(ctx: TidContext, tp8013: bool) -> Self {
        Self {
            ctx,
            tp8013,
            services: BTreeMap::new(),
        }
    }

    /// Takes a browser event; returns the probes to start now.
    pub fn on_event(&mut self, ev: &MdnsEvent, now: Instant) -> Vec<ProbeRequest> {
        let s = ev.service();
        if let MdnsEvent::Removed(_) = ev {
            log::info!("mDNS: {} on {} is gone", s.key.instance, s.key.interface);
            self.services.remove(&s.key);
            return Vec::new();
        }
        if s.transport.is_none() {
            log::error!(
                "Received invalid/undefined protocol in mDNS TXT field: address={:?}, iface={}, TXT={:?}",
                s.addresses.iter().map(|a| a.addr.to_string()).collect::<Vec<_>>(),
                s.key.interface,
                s.txt
            );
        }
        let before = self.services.remove(&s.key);
        let mut probes = Vec::new();
        let identities = s
            .cids(self.tp8013)
            .into_iter()
            .filter_map(|cid| {
                let tid = Tid::from_cid(&cid, &self.ctx);
                let addr: IpAddr = cid.get("traddr")?.parse().ok()?;
                let kept = before
                    .as_ref()
                    .and_then(|b| b.identities.iter().find(|i| i.tid == tid))
                    .map(|i| i.reach.clone());
                let reach = match (kept, tid.transport.as_str()) {
                    (Some(r), _) => r,
                    // Only TCP can be probed with a TCP connect (§10.4).
                    (None, "tcp") => {
                        probes.push(ProbeRequest {
                            tid: tid.clone(),
                            key: s.key.clone(),
                            addr,
                            port: s.port,
                        });
                        Reach::Probing { failures: 0 }
                    }
                    (None, _) => Reach::Reachable,
                };
                Some(Identity {
                    tid,
                    addr,
                    port: s.port,
                    reach,
                })
            })
            .collect();
        if before.is_none() {
            log::info!(
                "mDNS: {} ({}:{}) heard on {}",
                s.key.instance,
                s.host,
                s.port,
                s.key.interface
            );
        }
        self.services.insert(
            s.key.clone(),
            Service {
                host: s.host.clone(),
                identities,
            },
        );
        self.warn_duplicate_addresses();
        let _ = now;
        probes
    }

    /// §10.8: the same address heard on several interfaces.
    fn warn_duplicate_addresses(&self) {
        let mut by_addr: BTreeMap<IpAddr, Vec<&str>> = BTreeMap::new();
        for (key, s) in &self.services {
            for i in &s.identities {
                let a = match i.addr {
                    IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(i.addr, IpAddr::V4),
                    v4 => v4,
                };
                by_addr.entry(a).or_default().push(&key.interface);
            }
        }
        for (addr, ifaces) in by_addr {
            let distinct: BTreeSet<&&str> = ifaces.iter().collect();
            if distinct.len() > 1 {
                log::error!(
                    "IP address {addr} was found on multiple interfaces: {}",
                    ifaces.join(",")
                );
            }
        }
    }

    /// Takes a probe's outcome; returns whether the reachable set changed.
    pub fn on_probe(
        &mut self,
        key: &ServiceKey,
        tid: &Tid,
        outcome: Result<(), ProbeError>,
        now: Instant,
    ) -> bool {
        let Some(i) = self
            .services
            .get_mut(key)
            .and_then(|s| s.identities.iter_mut().find(|i| i.tid == *tid))
        else {
            return false;
        };
        let Reach::Probing { failures } = i.reach else {
            return false;
        };
        match outcome {
            Ok(()) => {
                log::info!("{tid} - reachable (mDNS, {})", key.interface);
                i.reach = Reach::Reachable;
                true
            }
            Err(e) => {
                if failures == 0 {
                    log::info!(
                        "Unable to verify TCP connectivity  - ({}, {}, {}): {e}",
                        key.interface,
                        i.addr,
                        i.port
                    );
                }
                let delay = PROBE_BACKOFF
                    .get(failures)
                    .or(PROBE_BACKOFF.last())
                    .copied()
                    .unwrap_or(Duration::from_secs(600));
                i.reach = Reach::Waiting {
                    failures: failures.saturating_add(1),
                    at: now + delay,
                };
                false
            }
        }
    }

    /// The probes whose retry time has come.
    pub fn due(&mut self, now: Instant) -> Vec<ProbeRequest> {
        let mut out = Vec::new();
        for (key, s) in &mut self.services {
            for i in &mut s.identities {
                if let Reach::Waiting { failures, at } = i.reach {
                    if at <= now {
                        i.reach = Reach::Probing { failures };
                        out.push(ProbeRequest {
                            tid: i.tid.clone(),
                            key: key.clone(),
                            addr: i.addr,
                            port: i.port,
                        });
                    }
                }
            }
        }
        out
    }

    /// When [`due`](Self::due) has something next.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.services
            .values()
            .flat_map(|s| &s.identities)
            .filter_map(|i| match i.reach {
                Reach::Waiting { at, .. } => Some(at),
                _ => None,
            })
            .min()
    }

    /// The identities of every reachable service (§10.6): the same DC over
    /// `_tcp` and `_udp` collapses into one TID.
    pub fn reachable(&self) -> BTreeSet<Tid> {
        self.services
            .values()
            .flat_map(|s| &s.identities)
            .filter(|i| i.reach == Reach::Reachable)
            .map(|i| i.tid.clone())
            .collect()
    }

    /// The debug view of `process_info` (§10.9), under upstream's key name.
    pub fn view(&self, backend: &str) -> Json {
        let services = self
            .services
            .iter()
            .flat_map(|(key, s)| {
                s.identities.iter().map(move |i| {
                    let family = if i.addr.is_ipv4() { "IPv4" } else { "IPv6" };
                    let name = format!(
                        "({}, {family}, {}.local, {})",
                        key.interface,
                        key.instance,
                        key.service_type.trim_end_matches(".local")
                    );
                    let mut fields: Vec<(String, Json)> = i
                        .tid
                        .as_dict()
                        .into_iter()
                        .map(|(k, v)| (k, Json::Str(v)))
                        .collect();
                    fields.push(("host".into(), Json::Str(s.host.clone())));
                    fields.push((
                        "reachable".into(),
                        Json::Str(py_bool(i.reach == Reach::Reachable).into()),
                    ));
                    (name, Json::Obj(fields))
                })
            })
            .collect();
        Json::Obj(vec![
            ("backend".into(), Json::Str(backend.to_owned())),
            (
                "service types".into(),
                Json::Arr(vec![
                    Json::Str("_nvme-disc._tcp".into()),
                    Json::Str("_nvme-disc._udp".into()),
                ]),
            ),
            ("services".into(), Json::Obj(services)),
        ])
    }
}

/// A TCP connect to `req` bound to the interface the service was heard on
/// (§10.5; even with ignore-iface), within [`PROBE_TIMEOUT`].
async fn probe(req: &ProbeRequest) -> Result<(), ProbeError> {
    let target = match req.addr {
        IpAddr::V4(a) => SocketAddr::from((a, req.port)),
        // IPv4-mapped addresses are probed as IPv4.
        IpAddr::V6(a) => match a.to_ipv4_mapped() {
            Some(v4) => SocketAddr::from((v4, req.port)),
            None => SocketAddr::V6(SocketAddrV6::new(a, req.port, 0, req.key.ifindex)),
        },
    };
    let socket = match target {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4(),
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6(),
    }
    .map_err(ProbeError::Socket)?;
    nvmf_kernel::netif::bind_to_device(&socket, &req.key.interface)?;
    match tokio::time::timeout(PROBE_TIMEOUT, socket.connect(target)).await {
        Ok(Ok(_stream)) => Ok(()),
        Ok(Err(e)) => Err(ProbeError::Connect(e)),
        Err(_) => Err(ProbeError::Timeout(PROBE_TIMEOUT)),
    }
}

/// A running mDNS browser, whichever backend.
pub trait Browser: Send + 'static {
    /// Its events.
    fn events(&mut self) -> &mut mpsc::Receiver<MdnsEvent>;
}

impl Browser for stas_mdns::backend::MdnsSource {
    fn events(&mut self) -> &mut mpsc::Receiver<MdnsEvent> {
        stas_mdns::backend::MdnsSource::events(self)
    }
}

/// The shell: drives `core` with `browser`'s events and real probes, sends
/// the reachable set through `report` whenever it changes, and keeps `view`
/// (the debug JSON) current. Ends when the event stream does.
pub async fn run(
    mut core: Zeroconf,
    mut browser: impl Browser,
    backend: &str,
    report: impl Fn(BTreeSet<Tid>) + Send,
    view: std::sync::Arc<std::sync::Mutex<Option<Json>>>,
) {
    let (probe_tx, mut probe_rx) = mpsc::unbounded_channel();
    let start = |reqs: Vec<ProbeRequest>| {
        for req in reqs {
            let tx = probe_tx.clone();
            tokio::spawn(async move {
                let outcome = probe(&req).await;
                let _ = tx.send((req, outcome));
            });
        }
    };
    let mut reported = BTreeSet::new();
    loop {
        let deadline = core.next_deadline();
        tokio::select! {
            ev = browser.events().recv() => {
                let Some(ev) = ev else { break };
                start(core.on_event(&ev, Instant::now()));
            }
            Some((req, outcome)) = probe_rx.recv() => {
                core.on_probe(&req.key, &req.tid, outcome, Instant::now());
            }
            () = tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => {
                start(core.due(Instant::now()));
            }
        }
        let now = core.reachable();
        if now != reported {
            reported = now.clone();
            report(now);
        }
        *view
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(core.view(backend));
    }
    // The browser is gone (zeroconf disabled): nothing is reported any more.
    report(BTreeSet::new());
    *view
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may panic

    use std::collections::BTreeMap;

    use nvmf_proto::mdns::Transport;
    use stas_mdns::{DiscoveredService, ServiceAddress};

    use super::*;

    fn ctx() -> TidContext {
        TidContext {
            host_nqn: "nqn.host".into(),
            ignore_iface: false,
        }
    }

    fn service(iface: &str, addrs: &[&str], transport: Option<Transport>) -> DiscoveredService {
        DiscoveredService {
            key: ServiceKey {
                interface: iface.into(),
                ifindex: 2,
                instance: "dc1".into(),
                service_type: "_nvme-disc._tcp.local".into(),
            },
            host: "dc1.local".into(),
            port: 8009,
            txt: BTreeMap::new(),
            transport,
            nqn: "nqn.2014-08.org.nvmexpress.discovery".into(),
            ttl: 120,
            addresses: addrs
                .iter()
                .map(|a| ServiceAddress {
                    addr: a.parse().unwrap(),
                    ttl: 120,
                })
                .collect(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn tcp_services_are_reported_once_a_probe_succeeds() {
        let mut z = Zeroconf::new(ctx(), true);
        let t0 = Instant::now();
        let probes = z.on_event(
            &MdnsEvent::Found(service(
                "eth0",
                &["10.0.0.1", "fe80::1"],
                Some(Transport::Tcp),
            )),
            t0,
        );
        assert_eq!(probes.len(), 2);
        assert!(z.reachable().is_empty(), "not before a probe succeeds");
        assert_eq!(probes[0].tid.host_iface, "eth0", "pinned to the interface");
        assert!(z.on_probe(&probes[0].key, &probes[0].tid, Ok(()), t0));
        assert_eq!(z.reachable().len(), 1);
        // An update keeps what was learnt.
        let again = z.on_event(
            &MdnsEvent::Updated(service(
                "eth0",
                &["10.0.0.1", "fe80::1"],
                Some(Transport::Tcp),
            )),
            t0,
        );
        assert!(again.is_empty());
        assert_eq!(z.reachable().len(), 1);
        z.on_event(
            &MdnsEvent::Removed(service("eth0", &["10.0.0.1"], Some(Transport::Tcp))),
            t0,
        );
        assert!(z.reachable().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn failed_probes_back_off_2_5_10_30_60_300_600_600() {
        let mut z = Zeroconf::new(ctx(), true);
        let mut now = Instant::now();
        let p = z
            .on_event(
                &MdnsEvent::Found(service("eth0", &["10.0.0.1"], Some(Transport::Tcp))),
                now,
            )
            .remove(0);
        let mut delays = Vec::new();
        for _ in 0..8 {
            let refused = ProbeError::Connect(std::io::ErrorKind::ConnectionRefused.into());
            z.on_probe(&p.key, &p.tid, Err(refused), now);
            let next = z.next_deadline().unwrap();
            delays.push((next - now).as_secs());
            assert!(z.due(next - Duration::from_millis(1)).is_empty());
            now = next;
            assert_eq!(z.due(now).len(), 1);
        }
        assert_eq!(delays, [2, 5, 10, 30, 60, 300, 600, 600]);
        z.on_probe(&p.key, &p.tid, Ok(()), now);
        assert_eq!(z.reachable().len(), 1);
        assert_eq!(z.next_deadline(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn rdma_is_reachable_at_once_without_an_interface_and_bad_p_is_ignored() {
        let mut z = Zeroconf::new(ctx(), false);
        let t0 = Instant::now();
        let mut s = service("ib0", &["10.1.0.1"], Some(Transport::Rdma));
        s.nqn = "nqn.unique".into();
        assert!(z.on_event(&MdnsEvent::Found(s), t0).is_empty());
        let r: Vec<Tid> = z.reachable().into_iter().collect();
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].transport, "rdma");
        assert_eq!(r[0].host_iface, "");
        assert_eq!(
            r[0].subsysnqn, "nqn.2014-08.org.nvmexpress.discovery",
            "the TXT nqn needs TP8013"
        );
        let mut bad = service("eth0", &["10.0.0.2"], None);
        bad.key.instance = "bad".into();
        assert!(z.on_event(&MdnsEvent::Found(bad), t0).is_empty());
        assert_eq!(z.reachable().len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn the_same_dc_on_two_interfaces_is_two_identities() {
        let mut z = Zeroconf::new(ctx(), true);
        let t0 = Instant::now();
        for iface in ["eth0", "eth1"] {
            for p in z.on_event(
                &MdnsEvent::Found(service(iface, &["10.0.0.1"], Some(Transport::Tcp))),
                t0,
            ) {
                z.on_probe(&p.key, &p.tid, Ok(()), t0);
            }
        }
        let ifaces: Vec<String> = z.reachable().into_iter().map(|t| t.host_iface).collect();
        assert_eq!(ifaces, ["eth0", "eth1"]);
        let view = z.view("builtin").dumps();
        assert!(
            view.contains("\"(eth0, IPv4, dc1.local, _nvme-disc._tcp)\""),
            "{view}"
        );
        assert!(view.contains("\"reachable\": \"True\""), "{view}");
    }
}
