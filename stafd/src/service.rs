//! The service: wanted DCs versus running DC tasks, reconciled whenever
//! anything that shapes the wanted set changes (configuration, referrals,
//! later mDNS), plus the routing of kernel events to the DC they concern,
//! the last-known configuration, reload and shutdown (docs/behaviour.md
//! §6).
//!
//! Upstream waits a fixed 1.5 s before each reconciliation to let bursts
//! settle. Here a trigger only sets a flag and wakes the loop; the loop
//! drains everything already queued before reconciling, so a burst of 1,000
//! triggers still costs one reconciliation, and a lone change is acted on at
//! once.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use nvmf_kernel::uevent::{Uevent, UeventItem};
use nvmf_proto::dlp::DiscoveryLogEntry;
use nvmf_proto::types::EFlags;
use nvmf_proto::WELL_KNOWN_DISCOVERY_NQN;
use stas_config::Cid;
use stas_config::{Persistent, StafdConfig};
use stas_daemon::controller::{wanted, Controllers, Shared};
use stas_daemon::kernel::{resolve_configured, FabricKernel};
use stas_daemon::lkc::{ControllerRecord, LastKnownConfig, LkcFile, WireLogPage};
use stas_daemon::task::ConnectGate;
use stas_tid::{filter_addresses, remove_excluded, Tid, TidContext};
use tokio::sync::{mpsc, watch};

use crate::dc::{lock, Command, DcCommander, DcContext, DcStatus, HostInfo, Notice, Origin, Stage};
use crate::kernel::Kernel;

/// How often discovered DCs that mDNS no longer reports are looked at
/// (whether they are connected is not signalled to the service).
pub const LOST_RECHECK: Duration = Duration::from_secs(1);

/// Most DCs accepted from referrals: a peer that invents a new referral on
/// every read must not grow the daemon without bound.
pub const MAX_REFERRALS: usize = 1024;

/// Which DCs each DC a referral walk reached refers to.
#[derive(Debug, Default)]
struct Edges(BTreeMap<Tid, Vec<Tid>>);

impl Edges {
    /// Whether `target` is reached from `from` without going through it.
    fn reaches<'a>(&self, from: impl Iterator<Item = &'a Tid>, target: &Tid) -> bool {
        let mut frontier: Vec<&Tid> = from.collect();
        let mut seen: BTreeSet<&Tid> = frontier.iter().copied().collect();
        while let Some(t) = frontier.pop() {
            for next in self.0.get(t).into_iter().flatten() {
                if next == target {
                    return true;
                }
                if seen.insert(next) {
                    frontier.push(next);
                }
            }
        }
        false
    }
}

/// What a referral walk found.
#[derive(Debug, Default)]
struct Walk {
    /// Every DC referred to.
    referred: BTreeSet<Tid>,
    /// The referrals of each DC the walk went through.
    edges: Edges,
    /// Whether some referral entry leading to a DC says EPCSD.
    epcsd: BTreeMap<Tid, bool>,
}

/// What the service publishes (D-Bus signals, and tests).
pub trait Signals: std::fmt::Debug + Send + Sync + 'static {
    /// A DC's log page was read (`log_pages_changed`).
    fn log_pages_changed(&self, tid: &Tid, device: &str);
    /// A reconciliation removed DCs (`dc_removed`).
    fn dc_removed(&self);
}

/// Signals that go nowhere.
#[derive(Debug, Default)]
pub struct NoSignals;

impl Signals for NoSignals {
    fn log_pages_changed(&self, _: &Tid, _: &str) {}
    fn dc_removed(&self) {}
}

/// Inputs of the service loop.
#[derive(Debug)]
pub enum Input {
    /// Something changed that may change the wanted set.
    #[cfg_attr(not(test), allow(dead_code))]
    Reconcile,
    /// The discovery controllers mDNS reports reachable now (§10.6).
    Zeroconf(BTreeSet<Tid>),
    /// A kernel uevent, or news that some were lost.
    Uevent(UeventItem),
    /// A new configuration (SIGHUP): apply, and have every DC bring its
    /// registration up to date and read its log page again.
    Reload(Arc<StafdConfig>),
    /// The symbolic name sys.conf gives now (SIGHUP re-reads it for this
    /// alone: a new host NQN or ID needs a restart). DCs learn it from the
    /// [`Input::Reload`] that follows.
    Symname(Option<String>),
    /// Stop every DC (keeping connections if configured) and end.
    Shutdown,
}

/// A DC's log page as encoded for the last-known configuration.
#[derive(Debug)]
struct EncodedPage {
    /// Which page: the DC task and its log page read count.
    version: (u64, u64),
    page: WireLogPage,
}

/// Counters for tests and debug output.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Reconciliations run.
    pub reconciliations: u64,
    /// Full resyncs after lost uevents.
    pub resyncs: u64,
    /// Last-known-configuration snapshots taken (one per save).
    pub lkc_snapshots: u64,
    /// Log entries those snapshots encoded: only those of pages read since
    /// the snapshot before.
    pub lkc_entries_encoded: u64,
}

/// The stafd service.
#[derive(Debug)]
pub struct Service {
    ctx: Arc<DcContext>,
    config_tx: watch::Sender<Arc<StafdConfig>>,
    host_tx: watch::Sender<Arc<HostInfo>>,
    dcs: Controllers<DcStatus, Command>,
    notices: mpsc::UnboundedReceiver<Notice>,
    inputs: mpsc::UnboundedReceiver<Input>,
    signals: Arc<dyn Signals>,
    lkc: Option<LkcFile>,
    /// The newest snapshot for the saver task (which writes off the loop),
    /// and the task.
    lkc_tx: Option<(
        watch::Sender<Option<LastKnownConfig>>,
        tokio::task::JoinHandle<()>,
    )>,
    /// Each DC's log page as the last snapshot encoded it.
    lkc_pages: BTreeMap<Tid, EncodedPage>,
    /// Discovery controllers from the boot firmware, read once (§13.1).
    nbft: Option<Vec<Cid>>,
    /// What mDNS reports reachable.
    zeroconf: BTreeSet<Tid>,
    /// Discovered DCs neither reported nor connected, since when (§6.7).
    lost: BTreeMap<Tid, tokio::time::Instant>,
    /// Whether some discovered DC is not reported by mDNS (its connect
    /// state must be looked at again), as of the last [`Self::check_lost`]:
    /// origins and reports change only where that runs.
    unreported: bool,
    /// Counters.
    pub stats: Stats,
    shutting_down: bool,
}

/// How to send inputs to a running service.
pub type ServiceHandle = stas_daemon::controller::ServiceHandle<Input, DcStatus>;

impl Service {
    /// A service over `kernel` with configuration `config`; restores DCs
    /// from `lkc` if given.
    pub fn new(
        kernel: Arc<dyn Kernel>,
        host: HostInfo,
        config: Arc<StafdConfig>,
        signals: Arc<dyn Signals>,
        lkc: Option<LkcFile>,
    ) -> (Self, ServiceHandle) {
        let supported = stas_daemon::kernel::probe_options(&*kernel, &["host_iface", "discovery"]);
        let (config_tx, config_rx) = watch::channel(config);
        let (host_tx, host_rx) = watch::channel(Arc::new(host));
        let shared = Shared::new(kernel, ConnectGate::from_env(), supported);
        let (ctx, notices) = DcContext::open(shared, host_rx, config_rx);
        let dcs = Controllers::default();
        let (handle, inputs) = ServiceHandle::open(dcs.view.clone());
        let svc = Self {
            ctx,
            config_tx,
            host_tx,
            dcs,
            notices,
            inputs,
            signals,
            lkc_tx: None,
            lkc,
            lkc_pages: BTreeMap::new(),
            nbft: None,
            zeroconf: BTreeSet::new(),
            lost: BTreeMap::new(),
            unreported: false,
            stats: Stats::default(),
            shutting_down: false,
        };
        (svc, handle)
    }

    fn tid_context(&self) -> TidContext {
        TidContext {
            host_nqn: self.host_tx.borrow().hostnqn.clone(),
            ignore_iface: self.config().global.ignore_iface,
        }
    }

    /// The connect options the kernel accepts (probed once, at start).
    pub fn supported(&self) -> Arc<nvmf_kernel::fabrics::SupportedOptions> {
        self.ctx.shared.supported.clone()
    }

    fn config(&self) -> Arc<StafdConfig> {
        self.config_tx.borrow().clone()
    }

    fn spawn(&mut self, tid: Tid, origin: Option<Origin>, cached: Option<Vec<DiscoveryLogEntry>>) {
        let id = self.dcs.next_id();
        let handle = crate::dc::spawn(self.ctx.clone(), id, tid.clone(), origin, cached);
        self.dcs.insert(tid, handle);
    }

    fn publish_view(&self) {
        self.dcs.publish();
    }

    /// Recreates the DCs of the last-known configuration (before the first
    /// reconciliation), with their cached log pages, so D-Bus serves them at
    /// once and nothing is torn down while they re-adopt their connections.
    pub fn restore(&mut self) {
        let Some(file) = self.lkc.clone() else { return };
        let Some(lkc) = file.load_at_start() else {
            return;
        };
        let ctx = self.tid_context();
        for rec in lkc.controllers {
            let tid = rec.tid(&ctx);
            let (pages, bad) = rec.log_pages.entries();
            for e in bad {
                log::warn!("{tid} - cached {e}; dropped");
            }
            let origin = rec.origin.as_deref().and_then(Origin::parse);
            self.spawn(tid, origin, Some(pages));
        }
        log::info!(
            "Restored {} discovery controllers from {}",
            self.dcs.len(),
            file.path().display()
        );
        self.publish_view();
    }

    /// What to save. A DC's log page is encoded only when it was read
    /// since the last snapshot (a save follows every event; re-encoding
    /// every DC's page each time would cost O(all pages) per event); the
    /// others share the bytes encoded before.
    fn lkc_snapshot(&mut self) -> LastKnownConfig {
        let mut before = std::mem::take(&mut self.lkc_pages);
        let mut controllers = Vec::with_capacity(self.dcs.len());
        for (tid, e) in &self.dcs {
            let s = lock(&e.status);
            // A DC task replaces its page only with `fetches` bumped, under
            // the same lock; a new task for the TID starts afresh.
            let version = (e.id, s.fetches);
            let page = match before.remove(tid) {
                Some(p) if p.version == version => p.page,
                _ => {
                    let page = WireLogPage::encode(&s.log_pages);
                    self.stats.lkc_entries_encoded = self
                        .stats
                        .lkc_entries_encoded
                        .saturating_add(u64::try_from(page.len()).unwrap_or(u64::MAX));
                    page
                }
            };
            controllers.push(ControllerRecord {
                tid: s.tid.as_dict().into_iter().collect(),
                origin: s.origin.map(|o| o.as_str().to_owned()),
                log_pages: page.clone(),
                device: s.device.clone(),
            });
            self.lkc_pages
                .insert(tid.clone(), EncodedPage { version, page });
        }
        self.stats.lkc_snapshots = self.stats.lkc_snapshots.saturating_add(1);
        LastKnownConfig { controllers }
    }

    /// Hands the current state to the saver task, which writes it on the
    /// blocking pool (an fsync must not stall the loop); snapshots that pile
    /// up meanwhile collapse into the newest.
    fn save_lkc(&mut self) {
        let Some(file) = self.lkc.clone() else { return };
        let snapshot = self.lkc_snapshot();
        let (tx, _) = self.lkc_tx.get_or_insert_with(|| {
            let (tx, mut rx) = watch::channel::<Option<LastKnownConfig>>(None);
            let saver = tokio::spawn(async move {
                while rx.changed().await.is_ok() {
                    let Some(value) = rx.borrow_and_update().clone() else {
                        continue;
                    };
                    let f = file.clone();
                    let r = tokio::task::spawn_blocking(move || f.save(&value)).await;
                    if let Ok(Err(e)) = r {
                        log::error!("Unable to save last known config: {e}");
                    }
                }
            });
            (tx, saver)
        });
        let _ = tx.send(Some(snapshot));
    }

    /// Writes the state now and waits for it (shutdown), after any write
    /// the saver task has in flight, so the last write is the newest.
    async fn save_lkc_now(&mut self) {
        if let Some((tx, saver)) = self.lkc_tx.take() {
            drop(tx);
            let _ = saver.await;
        }
        let Some(file) = self.lkc.clone() else { return };
        let snapshot = self.lkc_snapshot();
        let r = tokio::task::spawn_blocking(move || file.save(&snapshot)).await;
        if let Ok(Err(e)) = r {
            log::error!("Unable to save last known config: {e}");
        }
    }

    /// The NBFT's discovery controllers, parsed at first use; a table that
    /// does not parse contributes nothing (as in libnvme) and is logged.
    fn nbft_cids(&mut self) -> Vec<Cid> {
        if let Some(c) = &self.nbft {
            return c.clone();
        }
        let tables = self.ctx.shared.fabric.kernel.nbft_tables();
        if !tables.is_empty() {
            let paths: Vec<String> = tables
                .iter()
                .map(|(p, _)| p.display().to_string())
                .collect();
            log::info!("NBFT location(s): {paths:?}");
        }
        let parsed: Vec<nvmf_proto::nbft::Nbft> = tables
            .iter()
            .filter_map(|(p, b)| match nvmf_proto::nbft::Nbft::parse(b) {
                Ok(t) => Some(t),
                Err(e) => {
                    log::warn!("{}: {e}; ignored", p.display());
                    None
                }
            })
            .collect();
        let kernel = self.ctx.shared.fabric.kernel.clone();
        let cids = stas_tid::nbft::discovery_cids(&parsed, |mac| kernel.interface_with_mac(mac));
        self.nbft = Some(cids.clone());
        cids
    }

    /// Computes the wanted DCs and starts and stops tasks to match (§6.3).
    pub async fn reconcile(&mut self) {
        self.stats.reconciliations = self.stats.reconciliations.saturating_add(1);
        let cfg = self.config();
        let ctx = self.tid_context();

        let nbft = self.nbft_cids();
        let configured: Vec<Tid> = cfg
            .controllers
            .iter()
            .map(|spec| spec.cid.clone())
            .chain(nbft)
            .map(|mut cid| {
                let nqn = cid.entry("subsysnqn".into()).or_default();
                if nqn.is_empty() {
                    *nqn = WELL_KNOWN_DISCOVERY_NQN.into();
                }
                Tid::from_cid(&cid, &ctx)
            })
            .collect();
        let (configured, _) = remove_excluded(&cfg.excludes, configured);
        // FC and loop DCs have no port; unlike upstream they are kept (§18).
        let kernel: Arc<dyn FabricKernel> = self.ctx.shared.fabric.kernel.clone();
        let configured: Vec<Tid> = resolve_configured(kernel, cfg.global.ip_family, configured)
            .await
            .into_iter()
            .filter(|t| !t.transport.is_empty() && (!t.traddr.is_empty() || t.transport == "loop"))
            .collect();

        // mDNS DCs are kept while announced, and after that while connected
        // or within zeroconf-connections-persistence (§6.7): both count as
        // found over mDNS here, so an exclude removes a held one too. Those
        // past that time are removed below and keep no referrals either.
        let unresponsive = self.unresponsive();
        let held = self
            .dcs
            .iter()
            .filter(|(_, e)| lock(&e.status).origin == Some(Origin::Discovered))
            .map(|(t, _)| t.clone());
        let discovered: Vec<Tid> = self
            .zeroconf
            .iter()
            .cloned()
            .chain(held)
            .collect::<BTreeSet<Tid>>()
            .into_iter()
            .collect();

        // Referrals are followed from every DC that is wanted in its own
        // right, configured (or NBFT) or found over mDNS, as upstream does
        // (nvme-stas #438), and through the referred DCs that are usable.
        // Walking outward from those roots only, never from whatever DC
        // happens to be running, means a DC that is no longer wanted (removed
        // from the configuration, excluded, or an mDNS DC given up) does not
        // keep its referrals alive, and a cycle of referrals cannot keep
        // itself alive either; `seen` makes the walk end on a cycle.
        let usable = |t: &Tid| {
            let (valid, _) = filter_addresses(vec![t.clone()], cfg.global.ip_family);
            !valid.is_empty() && remove_excluded(&cfg.excludes, valid).1.is_empty()
        };
        let roots: Vec<Tid> = configured
            .iter()
            .chain(discovered.iter())
            .filter(|t| !unresponsive.contains(*t) && usable(t))
            .cloned()
            .collect();
        let Walk {
            mut referred,
            edges,
            epcsd,
        } = self.walk_referrals(&roots, &ctx, usable);
        // An mDNS DC referred to only through its own referrals (A refers
        // to B, B back to A: DCs of one fabric do) must keep its mDNS
        // standing, or the cycle would keep it once it is no longer
        // announced. Referred to from another root, it is a referral.
        let configured_set: BTreeSet<&Tid> = configured.iter().collect();
        for a in &discovered {
            if configured_set.contains(a) || !referred.contains(a) {
                continue;
            }
            let others = roots.iter().filter(|r| *r != a);
            if !edges.reaches(others, a) {
                referred.remove(a);
            }
        }
        let referrals: Vec<Tid> = referred.into_iter().collect();

        let mut origin_of: BTreeMap<Tid, Origin> = BTreeMap::new();
        for (tids, origin) in [
            (&discovered, Origin::Discovered),
            (&referrals, Origin::Referral),
            (&configured, Origin::Configured),
        ] {
            for t in tids.iter() {
                let o = origin_of.entry(t.clone()).or_insert(origin);
                *o = (*o).max(origin);
            }
        }
        let all: Vec<Tid> = origin_of.keys().cloned().collect();
        let wanted = wanted(all.clone(), cfg.global.ip_family, &cfg.excludes);

        // DCs found over mDNS survive its absence unless excluded, or lost
        // for longer than zeroconf-connections-persistence (§6.3 steps 5-6).
        let must_remove: BTreeSet<&Tid> = all
            .iter()
            .filter(|t| !wanted.contains(*t))
            .chain(unresponsive.iter())
            .collect();
        let to_del: Vec<Tid> = self
            .dcs
            .iter()
            .filter(|(tid, e)| {
                (!wanted.contains(*tid) || unresponsive.contains(*tid))
                    && (must_remove.contains(tid)
                        || lock(&e.status).origin != Some(Origin::Discovered))
            })
            .map(|(t, _)| t.clone())
            .collect();
        for tid in &to_del {
            self.lost.remove(tid);
            if let Some(e) = self.dcs.remove(tid) {
                log::info!("{tid} - removed (no longer wanted)");
                e.send(Command::Stop {
                    keep_connection: false,
                });
                self.dcs.draining.push(tid.clone(), e);
            }
        }
        if !to_del.is_empty() {
            self.signals.dc_removed();
        }
        for tid in &wanted {
            if unresponsive.contains(tid) {
                continue;
            }
            if !self.dcs.contains_key(tid) {
                self.spawn(tid.clone(), origin_of.get(tid).copied(), None);
            }
        }
        // Whether each DC is kept connected: its own controller= entry's
        // `persistent`, else the default; `auto` also looks at the
        // referral entries that lead to it.
        let own_persistent: BTreeMap<&Tid, Persistent> = configured
            .iter()
            .filter_map(|t| {
                let p = t.cfg.get("persistent").and_then(|v| Persistent::parse(v))?;
                Some((t, p))
            })
            .collect();
        for (tid, e) in &self.dcs {
            let mut s = lock(&e.status);
            if let Some(o) = origin_of.get(tid) {
                s.origin = Some(*o);
            }
            s.persistent = own_persistent.get(tid).copied().unwrap_or(cfg.persistent);
            s.referral_epcsd = epcsd.get(tid).copied();
        }
        self.check_lost();
        self.publish_view();
        self.save_lkc();
    }

    /// The referrals reachable from `roots`: every DC they refer to, and
    /// onward through each referred DC that is `usable` (at most
    /// [`MAX_REFERRALS`] of them), with the edges walked.
    fn walk_referrals(
        &self,
        roots: &[Tid],
        ctx: &TidContext,
        usable: impl Fn(&Tid) -> bool,
    ) -> Walk {
        let mut walk = Walk::default();
        let mut seen: BTreeSet<Tid> = roots.iter().cloned().collect();
        let mut frontier: Vec<Tid> = roots.to_vec();
        while let Some(t) = frontier.pop() {
            let Some(e) = self.dcs.get(&t) else { continue };
            let s = e.snapshot();
            let mut out = Vec::new();
            for r in s.referrals() {
                if walk.referred.len() >= MAX_REFERRALS {
                    log::warn!("more than {MAX_REFERRALS} referrals; following only the first {MAX_REFERRALS}");
                    break;
                }
                let tid = Tid::from_dlpe(
                    r,
                    &s.tid.host_traddr,
                    &s.tid.host_iface,
                    &s.tid.host_nqn,
                    ctx,
                );
                walk.referred.insert(tid.clone());
                *walk.epcsd.entry(tid.clone()).or_default() |= r.eflags.contains(EFlags::EPCSD);
                out.push(tid.clone());
                // A referred DC that will not be kept (excluded, or of a
                // disabled address family) is not followed further.
                if usable(&tid) && seen.insert(tid.clone()) {
                    frontier.push(tid);
                }
            }
            walk.edges.0.insert(t, out);
        }
        walk
    }

    /// The lost-controller check (§6.7) for every discovered DC: one that
    /// mDNS no longer reports and that is not connected is lost from now
    /// (the deadline is not pushed back by later failures); reported or
    /// connected again, it is found.
    fn check_lost(&mut self) {
        let now = tokio::time::Instant::now();
        let persistence = self.config().zeroconf_persistence;
        self.unreported = false;
        for (tid, e) in &self.dcs {
            let s = lock(&e.status);
            let unreported = s.origin == Some(Origin::Discovered) && !self.zeroconf.contains(tid);
            self.unreported |= unreported;
            // A parked DC is disconnected by choice; it is lost only once
            // a poll fails (it then waits to reconnect).
            let lost = unreported && !s.connected && s.stage != Stage::Parked;
            if !lost || persistence.duration().is_none() {
                self.lost.remove(tid);
                continue;
            }
            if !self.lost.contains_key(tid) {
                if let Some(d) = persistence.duration() {
                    log::info!(
                        "{tid} | {} - Controller is not responding. Will be removed in {} s unless restored",
                        s.device.as_deref().unwrap_or("nvme?"),
                        d.as_secs()
                    );
                }
                self.lost.insert(tid.clone(), now);
            }
        }
        let dcs = &self.dcs;
        self.lost.retain(|tid, _| dcs.contains_key(tid));
    }

    /// Lost DCs past `zeroconf-connections-persistence`.
    fn unresponsive(&self) -> BTreeSet<Tid> {
        let Some(d) = self.config().zeroconf_persistence.duration() else {
            return BTreeSet::new();
        };
        let now = tokio::time::Instant::now();
        self.lost
            .iter()
            .filter(|(_, since)| now >= **since + d)
            .map(|(t, _)| t.clone())
            .collect()
    }

    /// When the next lost DC becomes unresponsive, or when to look again
    /// at discovered DCs that are not connected (their connect state is
    /// not signalled to the service).
    fn lost_deadline(&self) -> Option<tokio::time::Instant> {
        let recheck = self
            .unreported
            .then(|| tokio::time::Instant::now() + LOST_RECHECK);
        let expiry = self
            .config()
            .zeroconf_persistence
            .duration()
            .and_then(|d| self.lost.values().map(|since| *since + d).min());
        match (recheck, expiry) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn on_uevent(&mut self, item: UeventItem) {
        match item {
            UeventItem::Lost => {
                // Events were lost: whatever they said, find out again.
                self.stats.resyncs = self.stats.resyncs.saturating_add(1);
                log::warn!("Kernel events were lost (uevent socket overflow); resynchronising every discovery controller");
                let (kernel, inventory) = (
                    self.ctx.shared.fabric.kernel.clone(),
                    self.ctx.shared.fabric.inventory.clone(),
                );
                // A parked DC has no device events could be about, and
                // must not be contacted before its next poll (nvme-stas #513).
                let dcs: Vec<(Option<String>, DcCommander)> = self
                    .dcs
                    .values()
                    .filter_map(|e| {
                        let s = lock(&e.status);
                        (s.stage != Stage::Parked).then(|| (s.device.clone(), e.commander()))
                    })
                    .collect();
                // One full scan, on the blocking pool, shared with any
                // lookup that wants one meanwhile.
                tokio::spawn(async move {
                    let present: BTreeSet<String> =
                        tokio::task::spawn_blocking(move || inventory.rescan(&*kernel))
                            .await
                            .ok()
                            .and_then(Result::ok)
                            .unwrap_or_default();
                    for (dev, c) in dcs {
                        match dev {
                            Some(d) if !present.contains(&d) => c.send(Command::Removed),
                            _ => c.send(Command::Resync),
                        }
                    }
                });
            }
            UeventItem::Event(ev) => self.route(&ev),
        }
    }

    fn route(&self, ev: &Uevent) {
        if !ev.is_nvme_controller() {
            return;
        }
        self.ctx.shared.fabric.inventory.note_uevent(ev);
        let dev = ev.devname();
        let Some(holder) = self.ctx.shared.devices.holder(dev) else {
            self.forward_unmanaged(ev);
            return;
        };
        let (tid, e) = (holder.tid, holder.commander);
        match ev.action {
            nvmf_kernel::uevent::Action::Remove => e.send(Command::Removed),
            nvmf_kernel::uevent::Action::Change => {
                if let Some(aen) = ev.aen() {
                    log::info!(
                        "{tid} | {dev} - Received AEN: {}",
                        ev.get("NVME_AEN").unwrap_or_default()
                    );
                    if aen.is_ok_and(|a| a.is_discovery_log_change()) {
                        e.send(Command::Aen);
                    }
                }
                if matches!(ev.nvme_event(), Some("connected" | "rediscover")) {
                    e.send(Command::Resync);
                }
            }
            _ => {}
        }
    }

    /// A discovery event on a controller stafd does not manage: do what
    /// nvme-cli's masked udev rule would have done (§6.10).
    fn forward_unmanaged(&self, ev: &Uevent) {
        if ev.action != nvmf_kernel::uevent::Action::Change {
            return;
        }
        let dev = ev.devname().to_owned();
        let aen_change = ev
            .aen()
            .is_some_and(|a| a.is_ok_and(|a| a.is_discovery_log_change()));
        let rediscover = ev.nvme_event() == Some("rediscover");
        if !aen_change && !rediscover {
            return;
        }
        if aen_change {
            log::info!(
                "{dev} - Received AEN: Change of Discovery Log Page ({})",
                ev.get("NVME_AEN").unwrap_or_default()
            );
        } else {
            log::info!("{dev} - Received \"rediscover\" event");
        }
        let instance = crate::interop::connect_instance(
            &dev,
            ev.get("NVME_HOST_TRADDR"),
            ev.get("NVME_HOST_IFACE"),
        );
        let kernel = self.ctx.shared.fabric.kernel.clone();
        // Whether it is a DC needs sysfs (that controller's own attributes
        // only): ask on the blocking pool.
        tokio::task::spawn_blocking(move || {
            let is_dc = kernel
                .controller(&dev)
                .ok()
                .flatten()
                .is_some_and(|c| c.is_discovery());
            if is_dc {
                kernel.forward_to_nvme_cli(&instance);
            }
        });
    }

    fn on_notice(&mut self, n: Notice) -> bool {
        match n {
            Notice::LogPages {
                tid,
                device,
                referrals_changed,
            } => {
                self.signals.log_pages_changed(&tid, &device);
                referrals_changed
            }
            Notice::Stopped { tid, id } => {
                self.dcs.draining.ended(&tid, id);
                if self.dcs.get(&tid).is_some_and(|e| e.id == id) {
                    // It ended by itself (cannot happen today); forget it.
                    self.dcs.remove(&tid);
                }
                false
            }
        }
    }

    /// Runs until shutdown. Reconciles once at start.
    pub async fn run(mut self) -> Stats {
        let mut want_reconcile = true;
        let mut dirty = false;
        loop {
            // Take everything already queued before acting on it.
            while let Ok(i) = self.inputs.try_recv() {
                self.on_input(i, &mut want_reconcile);
            }
            while let Ok(n) = self.notices.try_recv() {
                want_reconcile |= self.on_notice(n);
                dirty = true;
            }
            if self.shutting_down {
                return self.drain().await;
            }
            if want_reconcile {
                want_reconcile = false;
                dirty = false;
                self.reconcile().await;
                continue;
            }
            if dirty {
                dirty = false;
                self.save_lkc();
            }
            let lost_at = self.lost_deadline();
            tokio::select! {
                i = self.inputs.recv() => match i {
                    Some(i) => self.on_input(i, &mut want_reconcile),
                    None => self.shutting_down = true,
                },
                Some(n) = self.notices.recv() => {
                    want_reconcile |= self.on_notice(n);
                    dirty = true;
                }
                () = tokio::time::sleep_until(lost_at.unwrap_or_else(tokio::time::Instant::now)), if lost_at.is_some() => {
                    self.check_lost();
                    want_reconcile |= !self.unresponsive().is_empty();
                }
            }
            // Let anything else that is ready queue up behind this input.
            tokio::task::yield_now().await;
        }
    }

    fn on_input(&mut self, input: Input, want_reconcile: &mut bool) {
        match input {
            Input::Reconcile => *want_reconcile = true,
            Input::Zeroconf(tids) => {
                if tids != self.zeroconf {
                    self.zeroconf = tids;
                    *want_reconcile = true;
                }
            }
            Input::Uevent(item) => self.on_uevent(item),
            Input::Reload(cfg) => {
                let _ = self.config_tx.send(cfg);
                for e in self.dcs.values() {
                    e.send(Command::Reload);
                }
                *want_reconcile = true;
            }
            Input::Symname(symname) => {
                self.host_tx.send_if_modified(|h| {
                    if h.symname == symname {
                        return false;
                    }
                    log::info!(
                        "Host symbolic name is now {}",
                        symname.as_deref().unwrap_or("(none)")
                    );
                    *h = Arc::new(HostInfo {
                        symname,
                        ..HostInfo::clone(h)
                    });
                    true
                });
            }
            Input::Shutdown => self.shutting_down = true,
        }
    }

    /// Shutdown (§6.11): save, stop every DC (keeping kernel connections if
    /// persistent-connections), wait for them.
    async fn drain(mut self) -> Stats {
        self.save_lkc_now().await;
        let keep = self.config().persistent_connections;
        self.dcs
            .stop_all(|| Command::Stop {
                keep_connection: keep,
            })
            .await;
        self.stats
    }
}
