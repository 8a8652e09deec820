//! The Avahi backend (feature `mdns-driver`): browses TP8009 discovery
//! controllers through avahi-daemon on the system bus, for hosts where
//! avahi-daemon owns mDNS, and reports them as the same [`MdnsEvent`]s as
//! the built-in querier ([`super::driver::MdnsBrowser`]), so stafd can use
//! either (docs/behaviour.md §10.2, §10.7).
//!
//! * Before any browser exists it subscribes to the `ServiceBrowser`
//!   (`ItemNew`, `ItemRemove`, `Failure`) and `ServiceResolver` (`Found`,
//!   `Failure`) signals on every object path: Avahi before 0.8 may emit the
//!   first items before `ServiceBrowserNew` has returned the browser's path.
//!   Only signals from the current owner of `org.freedesktop.Avahi` count.
//! * `ServiceBrowserNew(-1, -1, "_nvme-disc._tcp" | "_nvme-disc._udp",
//!   "local", AVAHI_LOOKUP_USE_MULTICAST)` on `/`, then one continuous
//!   `ServiceResolverNew` per item; a repeated `Found` is an update.
//! * Avahi reports an item per (interface, IP protocol); the resolver of an
//!   item asks for addresses of that protocol only (upstream asks for either,
//!   and gets whichever answers first), so a DC announcing IPv4 and IPv6
//!   addresses yields both, like the built-in querier. The items of one
//!   (interface, instance, type) are merged into one [`DiscoveredService`]
//!   (the port, host and TXT of the latest `Found`). Avahi does not say the
//!   TTLs: they are reported as 0.
//! * avahi-daemon leaving the bus removes every service (`Removed` events,
//!   so stafd's persistence rules apply); its return re-creates the
//!   browsers. While it is absent, `GetVersionString` is called every
//!   [`AvahiConfig::wake_up_interval`] (which bus-activates it where it is
//!   activatable).
//!
//! Anything malformed from the bus is logged at debug level and ignored.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures_util::StreamExt;
use nvmf_proto::mdns::{label_text, txt_dict, txt_nqn, txt_transport};
use tokio::sync::mpsc;
use zbus::message::Type as MessageType;
use zbus::zvariant::OwnedObjectPath;
use zbus::{Connection, MatchRule, Message, MessageStream};

use super::{DiscoveredService, MdnsError, MdnsEvent, ServiceAddress, ServiceKey};

/// avahi-daemon's bus name.
pub const AVAHI_BUS_NAME: &str = "org.freedesktop.Avahi";
const SERVER_PATH: &str = "/";
const SERVER_INTERFACE: &str = "org.freedesktop.Avahi.Server";
const BROWSER_INTERFACE: &str = "org.freedesktop.Avahi.ServiceBrowser";
const RESOLVER_INTERFACE: &str = "org.freedesktop.Avahi.ServiceResolver";
/// `AVAHI_IF_UNSPEC` (avahi-common/address.h): every interface.
const IF_UNSPEC: i32 = -1;
/// `AVAHI_PROTO_UNSPEC`: IPv4 and IPv6.
const PROTO_UNSPEC: i32 = -1;
/// `AVAHI_LOOKUP_USE_MULTICAST` (avahi-common/defs.h): mDNS only, never
/// wide-area DNS. (`1` would be `AVAHI_LOOKUP_USE_WIDE_AREA`.)
const LOOKUP_USE_MULTICAST: u32 = 2;
/// The service types browsed (without the domain, as Avahi takes them).
pub const AVAHI_SERVICE_TYPES: [&str; 2] = ["_nvme-disc._tcp", "_nvme-disc._udp"];
const DOMAIN: &str = "local";

/// How the Avahi backend runs.
#[derive(Debug, Clone)]
pub struct AvahiConfig {
    /// While avahi-daemon is absent, how often to poke it
    /// (`GetVersionString`); nvme-stas uses 60 s.
    pub wake_up_interval: Duration,
    /// Capacity of the event channel; the backend waits when it is full.
    pub channel_capacity: usize,
}

impl Default for AvahiConfig {
    fn default() -> Self {
        Self {
            wake_up_interval: Duration::from_secs(60),
            channel_capacity: 256,
        }
    }
}

/// What Avahi calls an item: a service instance seen on one interface over
/// one IP protocol.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct ItemKey {
    pub(crate) ifindex: i32,
    pub(crate) protocol: i32,
    pub(crate) name: String,
    pub(crate) service_type: String,
    pub(crate) domain: String,
}

impl ItemKey {
    fn same_service(&self, other: &Self) -> bool {
        self.ifindex == other.ifindex
            && self.name == other.name
            && self.service_type == other.service_type
            && self.domain == other.domain
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Resolution {
    pub(crate) host: String,
    pub(crate) address: IpAddr,
    pub(crate) port: u16,
    pub(crate) txt: Vec<Vec<u8>>,
}

#[derive(Debug)]
struct Item {
    interface: String,
    ifindex: u32,
    /// Tells a resolver created for this item from one created for an
    /// earlier item of the same key (removed and re-added meanwhile).
    generation: u64,
    resolver: Option<OwnedObjectPath>,
    /// With the order it came in, so the latest wins when merging.
    resolved: Option<(u64, Resolution)>,
}

/// The backend's bookkeeping, without the bus: items, their resolutions,
/// and the services published from them.
#[derive(Debug, Default)]
pub(crate) struct AvahiState {
    items: BTreeMap<ItemKey, Item>,
    /// Resolver path → its item.
    resolvers: BTreeMap<String, ItemKey>,
    published: BTreeMap<ServiceKey, DiscoveredService>,
    counter: u64,
    events: Vec<MdnsEvent>,
}

impl AvahiState {
    fn next(&mut self) -> u64 {
        self.counter = self.counter.wrapping_add(1);
        self.counter
    }

    /// A new item on interface `interface` (index `ifindex`); returns the
    /// generation to create its resolver with, or `None` for a duplicate.
    pub(crate) fn item_new(
        &mut self,
        key: ItemKey,
        interface: String,
        ifindex: u32,
    ) -> Option<u64> {
        if self.items.contains_key(&key) {
            return None;
        }
        let generation = self.next();
        self.items.insert(
            key,
            Item {
                interface,
                ifindex,
                generation,
                resolver: None,
                resolved: None,
            },
        );
        Some(generation)
    }

    /// The resolver of `key` exists at `path`. Returns the path back when
    /// nothing needs it any more (the item went meanwhile), to be freed.
    pub(crate) fn resolver_created(
        &mut self,
        key: &ItemKey,
        generation: u64,
        path: OwnedObjectPath,
    ) -> Option<OwnedObjectPath> {
        match self.items.get_mut(key) {
            Some(item) if item.generation == generation && item.resolver.is_none() => {
                item.resolver = Some(path.clone());
                self.resolvers.insert(path.as_str().to_owned(), key.clone());
                None
            }
            _ => Some(path),
        }
    }

    /// The item is gone; returns its resolver, to be freed.
    pub(crate) fn item_remove(&mut self, key: &ItemKey) -> Option<OwnedObjectPath> {
        let item = self.items.remove(key)?;
        if let Some(path) = &item.resolver {
            self.resolvers.remove(path.as_str());
        }
        self.republish(key);
        item.resolver
    }

    /// A resolver reported its item (again). Unknown keys are ignored.
    pub(crate) fn found(&mut self, key: &ItemKey, resolution: Resolution) -> bool {
        let order = self.next();
        let Some(item) = self.items.get_mut(key) else {
            return false;
        };
        item.resolved = Some((order, resolution));
        self.republish(key);
        true
    }

    /// The item a resolver path belongs to.
    pub(crate) fn resolver_item(&self, path: &str) -> Option<&ItemKey> {
        self.resolvers.get(path)
    }

    /// The interface name of an item.
    pub(crate) fn interface_of(&self, key: &ItemKey) -> Option<&str> {
        self.items.get(key).map(|i| i.interface.as_str())
    }

    /// The resolver lost its item's records (Avahi reports a timeout): the
    /// item stays, unresolved, until Avahi removes it or finds it again.
    pub(crate) fn unresolved(&mut self, key: &ItemKey) {
        if let Some(item) = self.items.get_mut(key) {
            if item.resolved.take().is_some() {
                self.republish(key);
            }
        }
    }

    /// avahi-daemon is gone: every service is removed; returns nothing to
    /// free (its objects went with it).
    pub(crate) fn clear(&mut self) {
        self.items.clear();
        self.resolvers.clear();
        for (_, svc) in std::mem::take(&mut self.published) {
            self.events.push(MdnsEvent::Removed(svc));
        }
    }

    /// Every resolver path, for freeing them all.
    pub(crate) fn resolver_paths(&self) -> Vec<OwnedObjectPath> {
        self.items
            .values()
            .filter_map(|i| i.resolver.clone())
            .collect()
    }

    pub(crate) fn take_events(&mut self) -> Vec<MdnsEvent> {
        std::mem::take(&mut self.events)
    }

    pub(crate) fn services(&self) -> Vec<DiscoveredService> {
        self.published.values().cloned().collect()
    }

    /// Recomputes the service `key` belongs to from its items and queues
    /// the event for the difference.
    fn republish(&mut self, key: &ItemKey) {
        let service_key = |interface: &str, ifindex: u32| ServiceKey {
            interface: interface.to_owned(),
            ifindex,
            // Escaped as the built-in querier prints a DNS label.
            instance: label_text(key.name.as_bytes()),
            service_type: format!("{}.{}", key.service_type, key.domain),
        };
        let siblings: Vec<&Item> = self
            .items
            .iter()
            .filter(|(k, _)| k.same_service(key))
            .map(|(_, i)| i)
            .collect();
        let resolved: Vec<(&Item, u64, &Resolution)> = siblings
            .iter()
            .filter_map(|i| i.resolved.as_ref().map(|(o, r)| (*i, *o, r)))
            .collect();
        let Some((latest_item, _, latest)) = resolved.iter().max_by_key(|(_, o, _)| *o) else {
            // Nothing resolved: whatever was published for it goes. The
            // interface is not known without an item, so look the
            // published service up by everything else.
            let gone: Vec<ServiceKey> = self
                .published
                .keys()
                .filter(|k| {
                    i32::try_from(k.ifindex).ok() == Some(key.ifindex)
                        && k.instance == label_text(key.name.as_bytes())
                        && k.service_type == format!("{}.{}", key.service_type, key.domain)
                })
                .cloned()
                .collect();
            for k in gone {
                if let Some(svc) = self.published.remove(&k) {
                    self.events.push(MdnsEvent::Removed(svc));
                }
            }
            return;
        };
        let skey = service_key(&latest_item.interface, latest_item.ifindex);
        let mut addresses: Vec<ServiceAddress> = resolved
            .iter()
            .map(|(_, _, r)| ServiceAddress {
                addr: r.address,
                ttl: 0,
            })
            .collect();
        addresses.sort();
        addresses.dedup();
        let txt = txt_dict(&latest.txt);
        let svc = DiscoveredService {
            key: skey.clone(),
            host: latest.host.clone(),
            port: latest.port,
            transport: txt_transport(&txt),
            nqn: txt_nqn(&txt),
            txt,
            ttl: 0,
            addresses,
        };
        match self.published.get(&skey) {
            None => self.events.push(MdnsEvent::Found(svc.clone())),
            Some(prev) if *prev != svc => self.events.push(MdnsEvent::Updated(svc.clone())),
            Some(_) => return,
        }
        self.published.insert(skey, svc);
    }
}

/// Whether avahi-daemon is on the bus now (`NameHasOwner`); false also
/// when the bus cannot be asked.
pub async fn avahi_present(conn: &Connection) -> bool {
    let proxy = match zbus::fdo::DBusProxy::new(conn).await {
        Ok(p) => p,
        Err(e) => {
            log::debug!("Avahi: cannot ask the bus whether avahi-daemon is there: {e}");
            return false;
        }
    };
    match zbus::names::BusName::try_from(AVAHI_BUS_NAME) {
        Ok(name) => proxy.name_has_owner(name).await.unwrap_or_else(|e| {
            log::debug!("Avahi: NameHasOwner({AVAHI_BUS_NAME}) failed: {e}");
            false
        }),
        Err(_) => false,
    }
}

#[derive(Debug, Default)]
struct Snapshot {
    services: Vec<DiscoveredService>,
}

/// A running Avahi client: its events, and its current view.
#[derive(Debug)]
pub struct AvahiBrowser {
    /// Found/Updated/Removed, in order. When this receiver is dropped the
    /// backend frees its Avahi objects and stops.
    pub events: mpsc::Receiver<MdnsEvent>,
    snapshot: Arc<Mutex<Snapshot>>,
}

fn bus_error(op: &'static str) -> impl Fn(zbus::Error) -> MdnsError {
    move |e| MdnsError::Bus {
        op,
        reason: e.to_string(),
    }
}

impl AvahiBrowser {
    /// Subscribes to Avahi's signals on `conn` (the system bus) and starts
    /// the backend task on the current tokio runtime. Succeeds also when
    /// avahi-daemon is not running: the backend then waits for it (and
    /// says so at warning level). Fails only when the bus refuses the
    /// subscriptions.
    pub async fn start(conn: Connection) -> Result<Self, MdnsError> {
        Self::start_with(conn, AvahiConfig::default()).await
    }

    /// [`start`](Self::start) with explicit tunables.
    pub async fn start_with(conn: Connection, config: AvahiConfig) -> Result<Self, MdnsError> {
        let rule = |interface: &'static str| -> Result<MatchRule<'static>, zbus::Error> {
            Ok(MatchRule::builder()
                .msg_type(MessageType::Signal)
                .interface(interface)?
                .build())
        };
        let browser_signals = MessageStream::for_match_rule(
            rule(BROWSER_INTERFACE).map_err(bus_error("build match rule"))?,
            &conn,
            Some(1024),
        )
        .await
        .map_err(bus_error("subscribe to ServiceBrowser signals"))?;
        let resolver_signals = MessageStream::for_match_rule(
            rule(RESOLVER_INTERFACE).map_err(bus_error("build match rule"))?,
            &conn,
            Some(1024),
        )
        .await
        .map_err(bus_error("subscribe to ServiceResolver signals"))?;
        let dbus = zbus::fdo::DBusProxy::new(&conn)
            .await
            .map_err(bus_error("create org.freedesktop.DBus proxy"))?;
        let owner_changes = dbus
            .receive_name_owner_changed_with_args(&[(0, AVAHI_BUS_NAME)])
            .await
            .map_err(bus_error("subscribe to NameOwnerChanged"))?;
        // Asked after subscribing, so no change can fall in between.
        let owner = match zbus::names::BusName::try_from(AVAHI_BUS_NAME) {
            Ok(name) => dbus.get_name_owner(name).await.ok().map(|o| o.to_string()),
            Err(_) => None,
        };
        let (tx, events) = mpsc::channel(config.channel_capacity.max(1));
        let snapshot = Arc::new(Mutex::new(Snapshot::default()));
        let backend = Backend {
            conn,
            config,
            tx,
            snapshot: Arc::clone(&snapshot),
            state: AvahiState::default(),
            owner: None,
            epoch: 0,
            browsers: BTreeMap::new(),
            calls: tokio::task::JoinSet::new(),
        };
        tokio::spawn(backend.run(owner, browser_signals, resolver_signals, owner_changes));
        Ok(Self { events, snapshot })
    }

    /// The services resolved now.
    pub fn services(&self) -> Vec<DiscoveredService> {
        self.snapshot
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .services
            .clone()
    }
}

/// The result of a bus call made off the main loop (so that a full signal
/// queue can never hold up a reply the loop waits for).
#[derive(Debug)]
enum CallDone {
    Browser {
        epoch: u64,
        service_type: &'static str,
        result: Result<OwnedObjectPath, zbus::Error>,
    },
    Resolver {
        epoch: u64,
        key: ItemKey,
        generation: u64,
        result: Result<OwnedObjectPath, zbus::Error>,
    },
    Ignored,
}

struct Backend {
    conn: Connection,
    config: AvahiConfig,
    tx: mpsc::Sender<MdnsEvent>,
    snapshot: Arc<Mutex<Snapshot>>,
    state: AvahiState,
    /// The unique name of avahi-daemon, when it is on the bus.
    owner: Option<String>,
    /// Bumped whenever the owner changes: replies from an earlier daemon
    /// are dropped.
    epoch: u64,
    /// Service type → its browser.
    browsers: BTreeMap<String, OwnedObjectPath>,
    calls: tokio::task::JoinSet<CallDone>,
}

async fn call_for_path<B>(
    conn: &Connection,
    path: &str,
    interface: &str,
    method: &str,
    body: &B,
) -> Result<OwnedObjectPath, zbus::Error>
where
    B: serde::Serialize + zbus::zvariant::DynamicType,
{
    let reply = conn
        .call_method(Some(AVAHI_BUS_NAME), path, Some(interface), method, body)
        .await?;
    reply.body().deserialize::<OwnedObjectPath>()
}

async fn free(conn: &Connection, path: &OwnedObjectPath, interface: &str) {
    if let Err(e) = conn
        .call_method(
            Some(AVAHI_BUS_NAME),
            path.as_str(),
            Some(interface),
            "Free",
            &(),
        )
        .await
    {
        log::debug!("Avahi: Free() on {}: {e}", path.as_str());
    }
}

/// The name of interface `index`, if it exists (`if_indextoname`).
fn interface_name(index: u32) -> Option<String> {
    match nvmf_kernel::netif::interfaces() {
        Ok(all) => all.into_iter().find(|i| i.index == index).map(|i| i.name),
        Err(e) => {
            log::debug!("Avahi: cannot list interfaces: {e}");
            None
        }
    }
}

fn sender_of(msg: &Message) -> Option<String> {
    msg.header().sender().map(|s| s.to_string())
}

impl Backend {
    async fn run(
        mut self,
        owner: Option<String>,
        mut browser_signals: MessageStream,
        mut resolver_signals: MessageStream,
        mut owner_changes: zbus::fdo::NameOwnerChangedStream,
    ) {
        match owner {
            Some(o) => self.avahi_appeared(o),
            None => log::warn!("avahi-daemon not available, operating w/o mDNS discovery."),
        }
        let period = self.config.wake_up_interval.max(Duration::from_millis(100));
        let mut wake_up = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        wake_up.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            if !self.flush().await {
                break;
            }
            tokio::select! {
                biased;
                () = self.tx.closed() => break,
                change = owner_changes.next() => match change {
                    Some(change) => self.owner_changed(&change),
                    None => {
                        log::warn!("Avahi: the bus connection closed; mDNS discovery through Avahi stops");
                        break;
                    }
                },
                Some(done) = self.calls.join_next(), if !self.calls.is_empty() => match done {
                    Ok(done) => self.call_done(done),
                    Err(e) => log::debug!("Avahi: a bus call task ended abnormally: {e}"),
                },
                msg = browser_signals.next() => match msg {
                    Some(Ok(msg)) => self.browser_signal(&msg),
                    Some(Err(e)) => log::debug!("Avahi: bad ServiceBrowser message: {e}"),
                    None => break,
                },
                msg = resolver_signals.next() => match msg {
                    Some(Ok(msg)) => self.resolver_signal(&msg),
                    Some(Err(e)) => log::debug!("Avahi: bad ServiceResolver message: {e}"),
                    None => break,
                },
                _ = wake_up.tick(), if self.owner.is_none() => self.wake_up(),
            }
        }
        self.shutdown().await;
    }

    /// Publishes the snapshot and forwards the queued events; false when
    /// nobody listens any more.
    async fn flush(&mut self) -> bool {
        let events = self.state.take_events();
        self.snapshot
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .services = self.state.services();
        for e in events {
            if self.tx.send(e).await.is_err() {
                return false;
            }
        }
        true
    }

    /// Frees what this client created, so a long-lived shared connection
    /// does not leave browsers running in avahi-daemon.
    async fn shutdown(mut self) {
        self.calls.abort_all();
        if self.owner.is_none() {
            return;
        }
        let conn = self.conn.clone();
        let resolvers = self.state.resolver_paths();
        let browsers: Vec<OwnedObjectPath> = self.browsers.values().cloned().collect();
        let frees = async move {
            for p in &resolvers {
                free(&conn, p, RESOLVER_INTERFACE).await;
            }
            for p in &browsers {
                free(&conn, p, BROWSER_INTERFACE).await;
            }
        };
        if tokio::time::timeout(Duration::from_secs(2), frees)
            .await
            .is_err()
        {
            log::debug!("Avahi: freeing the browsers timed out");
        }
    }

    fn avahi_appeared(&mut self, owner: String) {
        log::info!("avahi-daemon service available, zeroconf supported.");
        self.owner = Some(owner);
        self.epoch = self.epoch.wrapping_add(1);
        for service_type in AVAHI_SERVICE_TYPES {
            let conn = self.conn.clone();
            let epoch = self.epoch;
            self.calls.spawn(async move {
                let result = call_for_path(
                    &conn,
                    SERVER_PATH,
                    SERVER_INTERFACE,
                    "ServiceBrowserNew",
                    &(
                        IF_UNSPEC,
                        PROTO_UNSPEC,
                        service_type,
                        DOMAIN,
                        LOOKUP_USE_MULTICAST,
                    ),
                )
                .await;
                CallDone::Browser {
                    epoch,
                    service_type,
                    result,
                }
            });
        }
    }

    fn owner_changed(&mut self, change: &zbus::fdo::NameOwnerChanged) {
        let args = match change.args() {
            Ok(a) => a,
            Err(e) => {
                log::debug!("Avahi: malformed NameOwnerChanged: {e}");
                return;
            }
        };
        if args.name().as_str() != AVAHI_BUS_NAME {
            return;
        }
        let new_owner = args.new_owner().as_ref().map(|o| o.to_string());
        if new_owner == self.owner {
            return;
        }
        if self.owner.take().is_some() {
            log::warn!("avahi-daemon not available, zeroconf not supported.");
            self.epoch = self.epoch.wrapping_add(1);
            self.browsers.clear();
            self.state.clear();
        }
        if let Some(o) = new_owner {
            self.avahi_appeared(o);
        }
    }

    fn wake_up(&mut self) {
        // Calling avahi-daemon starts it where it is bus-activatable; its
        // arrival is then seen through NameOwnerChanged.
        let conn = self.conn.clone();
        self.calls.spawn(async move {
            if let Err(e) = conn
                .call_method(
                    Some(AVAHI_BUS_NAME),
                    SERVER_PATH,
                    Some(SERVER_INTERFACE),
                    "GetVersionString",
                    &(),
                )
                .await
            {
                log::debug!("Avahi: wake-up GetVersionString: {e}");
            }
            CallDone::Ignored
        });
    }

    fn call_done(&mut self, done: CallDone) {
        match done {
            CallDone::Ignored => {}
            CallDone::Browser { epoch, .. } | CallDone::Resolver { epoch, .. }
                if epoch != self.epoch =>
            {
                // From a daemon that has gone since: its objects went with it.
            }
            CallDone::Browser {
                service_type,
                result,
                ..
            } => match result {
                Ok(path) => {
                    log::debug!("Avahi: browsing {service_type} at {}", path.as_str());
                    self.browsers.insert(service_type.to_owned(), path);
                }
                Err(e) => {
                    log::warn!("avahi-daemon not available, operating w/o mDNS discovery.");
                    log::error!("Avahi: ServiceBrowserNew({service_type}) failed: {e}");
                }
            },
            CallDone::Resolver {
                key,
                generation,
                result,
                ..
            } => match result {
                Ok(path) => {
                    if let Some(unneeded) = self.state.resolver_created(&key, generation, path) {
                        self.spawn_free(unneeded, RESOLVER_INTERFACE);
                    }
                }
                Err(e) => log::warn!(
                    "Failed to create resolver - ({}, {}, {}.{}): {e}",
                    key.ifindex,
                    key.name,
                    key.service_type,
                    key.domain
                ),
            },
        }
    }

    fn spawn_free(&mut self, path: OwnedObjectPath, interface: &'static str) {
        let conn = self.conn.clone();
        self.calls.spawn(async move {
            free(&conn, &path, interface).await;
            CallDone::Ignored
        });
    }

    fn sent_by_avahi(&self, msg: &Message) -> bool {
        let ok = self.owner.is_some() && sender_of(msg) == self.owner;
        if !ok {
            log::trace!(
                "Avahi: ignoring a signal from {:?} (avahi-daemon is {:?})",
                sender_of(msg),
                self.owner
            );
        }
        ok
    }

    fn browser_signal(&mut self, msg: &Message) {
        if !self.sent_by_avahi(msg) {
            return;
        }
        let header = msg.header();
        let member = header.member().map(|m| m.to_string()).unwrap_or_default();
        match member.as_str() {
            "ItemNew" | "ItemRemove" => {
                let body = msg.body();
                let Ok((ifindex, protocol, name, service_type, domain, _flags)) =
                    body.deserialize::<(i32, i32, String, String, String, u32)>()
                else {
                    log::debug!(
                        "Avahi: ignoring {member} with signature {:?}",
                        body.signature().to_string()
                    );
                    return;
                };
                if !AVAHI_SERVICE_TYPES.contains(&service_type.as_str()) {
                    log::debug!("Avahi: ignoring {member} for service type {service_type}");
                    return;
                }
                let key = ItemKey {
                    ifindex,
                    protocol,
                    name,
                    service_type,
                    domain,
                };
                if member == "ItemNew" {
                    self.item_new(key);
                } else if let Some(path) = self.state.item_remove(&key) {
                    self.spawn_free(path, RESOLVER_INTERFACE);
                }
            }
            "Failure" => {
                let error = msg.body().deserialize::<String>().unwrap_or_default();
                let service_type = header
                    .path()
                    .and_then(|p| {
                        self.browsers
                            .iter()
                            .find(|(_, b)| b.as_str() == p.as_str())
                            .map(|(t, _)| t.as_str())
                    })
                    .unwrap_or("?");
                log::error!("Avahi service browser failure: name={service_type}, error={error}");
            }
            _ => {}
        }
    }

    fn item_new(&mut self, key: ItemKey) {
        let Some(index) = u32::try_from(key.ifindex).ok() else {
            log::debug!("Avahi: ignoring {} with no interface", key.name);
            return;
        };
        let Some(interface) = interface_name(index) else {
            log::debug!("Avahi: ignoring {}: interface {index} is gone", key.name);
            return;
        };
        let Some(generation) = self.state.item_new(key.clone(), interface, index) else {
            return;
        };
        let conn = self.conn.clone();
        let epoch = self.epoch;
        self.calls.spawn(async move {
            // The address protocol is the item's: see the module docs.
            let result = call_for_path(
                &conn,
                SERVER_PATH,
                SERVER_INTERFACE,
                "ServiceResolverNew",
                &(
                    key.ifindex,
                    key.protocol,
                    key.name.as_str(),
                    key.service_type.as_str(),
                    key.domain.as_str(),
                    key.protocol,
                    LOOKUP_USE_MULTICAST,
                ),
            )
            .await;
            CallDone::Resolver {
                epoch,
                key,
                generation,
                result,
            }
        });
    }

    fn resolver_signal(&mut self, msg: &Message) {
        if !self.sent_by_avahi(msg) {
            return;
        }
        let header = msg.header();
        let member = header.member().map(|m| m.to_string()).unwrap_or_default();
        match member.as_str() {
            "Found" => {
                type Found = (
                    i32,
                    i32,
                    String,
                    String,
                    String,
                    String,
                    i32,
                    String,
                    u16,
                    Vec<Vec<u8>>,
                    u32,
                );
                let body = msg.body();
                let Ok(found) = body.deserialize::<Found>() else {
                    log::debug!(
                        "Avahi: ignoring Found with signature {:?}",
                        body.signature().to_string()
                    );
                    return;
                };
                let (ifindex, protocol, name, service_type, domain, host, _, address, port, txt, _) =
                    found;
                // Avahi prints no scope, but a `%scope` would not parse.
                let bare = address.split('%').next().unwrap_or_default();
                let Ok(address) = bare.trim().parse::<IpAddr>() else {
                    log::debug!("Avahi: ignoring Found for {name} with address {address:?}");
                    return;
                };
                let key = ItemKey {
                    ifindex,
                    protocol,
                    name,
                    service_type,
                    domain,
                };
                let resolution = Resolution {
                    host,
                    address,
                    port,
                    txt,
                };
                let known = self.state.found(&key, resolution.clone());
                if !known {
                    log::debug!("Avahi: ignoring Found for unknown item {key:?}");
                    return;
                }
                let txt = txt_dict(&resolution.txt);
                if txt_transport(&txt).is_none() {
                    log::error!(
                        "Received invalid/undefined protocol in mDNS TXT field: address={}, iface={}, TXT={txt:?}",
                        resolution.address,
                        self.state.interface_of(&key).unwrap_or("?")
                    );
                }
            }
            "Failure" => {
                let error = msg.body().deserialize::<String>().unwrap_or_default();
                let Some(key) = header
                    .path()
                    .and_then(|p| self.state.resolver_item(p.as_str()))
                    .cloned()
                else {
                    // Also what Avahi sends after a Free(): not ours any more.
                    log::debug!("Avahi: resolver failure for an unknown resolver: {error}");
                    return;
                };
                if !error.contains("TimeoutError") {
                    log::error!(
                        "Avahi service resolver failure: name={}, error={error}",
                        self.state.interface_of(&key).unwrap_or("?")
                    );
                }
                self.state.unresolved(&key);
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests;
