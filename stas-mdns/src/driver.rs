//! The querier on real sockets (feature `mdns-driver`): a tokio task that
//! owns the [`AsyncMdnsSockets`], feeds the [`Querier`] with packets, time
//! and the interface list (re-read every [`DriverConfig::rescan_interval`];
//! a periodic rescan rather than rtnetlink keeps this small, and mDNS's own
//! retries absorb a few seconds of lag), sends what it asks for, and
//! forwards its events on a channel.
//!
//! Every task and socket must live on the runtime thread that spawned it
//! (the sockets are opened there, so in that thread's network namespace).

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use nvmf_kernel::mdns::{mdns_links, AsyncMdnsSockets, Family};
use nvmf_proto::mdns::MAX_MESSAGE_LEN;
use tokio::sync::mpsc;

use super::{
    AddressFamily, DiscoveredService, InterfaceStats, MdnsError, MdnsEvent, MdnsInterface, Querier,
    QuerierConfig,
};

/// How the driver runs.
#[derive(Debug, Clone)]
pub struct DriverConfig {
    /// The querier's tunables.
    pub querier: QuerierConfig,
    /// How often the interface list is re-read.
    pub rescan_interval: Duration,
    /// Capacity of the event channel; the driver waits when it is full.
    pub channel_capacity: usize,
}

impl Default for DriverConfig {
    fn default() -> Self {
        Self {
            querier: QuerierConfig {
                seed: std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(1, |d| u64::from(d.subsec_nanos())),
                ..QuerierConfig::default()
            },
            rescan_interval: Duration::from_secs(5),
            channel_capacity: 256,
        }
    }
}

#[derive(Debug, Default)]
struct Snapshot {
    services: Vec<DiscoveredService>,
    stats: Vec<InterfaceStats>,
}

/// A running querier: its events, and its current view.
#[derive(Debug)]
pub struct MdnsBrowser {
    /// Found/Updated/Removed, in order. When this receiver is dropped the
    /// driver stops.
    pub events: mpsc::Receiver<MdnsEvent>,
    snapshot: Arc<Mutex<Snapshot>>,
    task: tokio::task::JoinHandle<()>,
}

impl MdnsBrowser {
    /// Opens the sockets and starts the driver task on the current tokio
    /// runtime (with a `LocalSet` or current-thread runtime, it stays on
    /// this thread).
    pub fn start(config: DriverConfig) -> Result<Self, MdnsError> {
        let sockets = AsyncMdnsSockets::open().map_err(|e| MdnsError::Io {
            op: "open sockets",
            reason: e.to_string(),
        })?;
        let (tx, events) = mpsc::channel(config.channel_capacity.max(1));
        let snapshot = Arc::new(Mutex::new(Snapshot::default()));
        let task = tokio::spawn(run(config, sockets, tx, Arc::clone(&snapshot)));
        Ok(Self {
            events,
            snapshot,
            task,
        })
    }

    /// The services resolved now.
    pub fn services(&self) -> Vec<DiscoveredService> {
        self.snapshot
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .services
            .clone()
    }

    /// Counters per interface.
    pub fn stats(&self) -> Vec<InterfaceStats> {
        self.snapshot
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .stats
            .clone()
    }
}

impl Drop for MdnsBrowser {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn family_of(f: AddressFamily) -> Family {
    match f {
        AddressFamily::Ipv4 => Family::V4,
        AddressFamily::Ipv6 => Family::V6,
    }
}

/// Re-reads the interfaces, joins/leaves groups, tells the querier.
fn rescan(
    now: Instant,
    sockets: &mut AsyncMdnsSockets,
    querier: &mut Querier,
    warned: &mut Vec<String>,
) {
    let all = match nvmf_kernel::netif::interfaces() {
        Ok(a) => a,
        Err(e) => {
            log::warn!("mDNS: cannot list interfaces: {e}");
            return;
        }
    };
    let links = mdns_links(&all);
    let failures = sockets.set_links(&links);
    for (name, e) in &failures {
        if !warned.contains(name) {
            log::warn!("mDNS: not browsing on {name}: {e}");
            warned.push(name.clone());
        }
    }
    let usable: Vec<MdnsInterface> = links
        .iter()
        .filter(|l| !failures.iter().any(|(n, _)| *n == l.name))
        .map(|l| MdnsInterface {
            index: l.index,
            name: l.name.clone(),
            ipv4: l.ipv4.is_some() && sockets.has(Family::V4),
            ipv6: l.ipv6_link_local && sockets.has(Family::V6),
        })
        .collect();
    querier.set_interfaces(now, &usable);
}

async fn run(
    config: DriverConfig,
    mut sockets: AsyncMdnsSockets,
    tx: mpsc::Sender<MdnsEvent>,
    snapshot: Arc<Mutex<Snapshot>>,
) {
    let mut querier = Querier::new(config.querier.clone());
    let mut warned = Vec::new();
    let mut buf = vec![0u8; MAX_MESSAGE_LEN];
    let mut next_rescan = Instant::now();
    loop {
        let now = Instant::now();
        if now >= next_rescan {
            rescan(now, &mut sockets, &mut querier, &mut warned);
            next_rescan = now + config.rescan_interval;
        }
        for p in querier.poll(now) {
            if let Err(e) = sockets.send(family_of(p.family), p.ifindex, &p.bytes) {
                log::debug!("mDNS: {e}");
            }
        }
        let events = querier.take_events();
        {
            let mut s = snapshot.lock().unwrap_or_else(PoisonError::into_inner);
            s.services = querier.services();
            s.stats = querier.stats();
        }
        for e in events {
            if tx.send(e).await.is_err() {
                return;
            }
        }
        let deadline = querier
            .next_deadline()
            .map_or(next_rescan, |d| d.min(next_rescan));
        tokio::select! {
            () = tokio::time::sleep_until(deadline.into()) => {}
            () = tx.closed() => return,
            r = sockets.recv(&mut buf) => match r {
                Ok(r) if r.truncated => {
                    log::debug!("mDNS: ignoring a packet from {} cut at {} bytes", r.source, r.len);
                }
                Ok(r) => {
                    let data = buf.get(..r.len).unwrap_or_default();
                    match querier.handle_packet(Instant::now(), r.ifindex, r.source, data) {
                        Ok(()) => {}
                        Err(MdnsError::UnknownInterface(_)) => {
                            log::trace!("mDNS: packet from {} on an interface not browsed", r.source);
                        }
                        Err(e) => log::debug!("mDNS: from {}: {e}", r.source),
                    }
                }
                Err(e) => {
                    log::warn!("mDNS: {e}");
                    // A persistent socket error must not spin.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }
}
