//! The service: wanted I/O controllers (stacd.conf plus the `nvme` entries
//! of stafd's log pages) versus running tasks, reconciled whenever anything
//! that shapes the wanted set changes; the audit of external connections;
//! the routing of kernel events; the last-known configuration; reload and
//! shutdown (docs/behaviour.md §7).
//!
//! Upstream soaks every trigger for 1.5 s (10 s after stafd comes back).
//! Here a trigger sets a flag and the loop reconciles once it has drained
//! what is queued, so bursts still cost one reconciliation and a lone
//! change is acted on at once.
//!
//! Unknown is not empty: while stafd is away or has not answered, I/O
//! controllers that only stafd can vouch for are left alone; they are
//! reconciled when stafd answers again.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use nvmf_kernel::uevent::{Action, UeventItem};
use nvmf_proto::dlp::DiscoveryLogEntry;
use nvmf_proto::types::SubType;
use stas_config::{DisconnectScope, StacdConfig};
use stas_daemon::controller::{wanted, Controllers, Shared};
use stas_daemon::inventory::Role;
use stas_daemon::kernel::{resolve_configured, FabricKernel};
use stas_daemon::lkc::{ControllerRecord, LastKnownConfig, LkcFile, WireLogPage};
use stas_daemon::task::ConnectGate;
use stas_tid::matching::tid_of_existing;
use stas_tid::{remove_excluded, Tid, TidContext};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::ioc::{lock, Command, HostInfo, IocContext, IocStatus, Notice, Source};
use crate::staf::StafView;

/// How long after a kernel `add` event the audit looks (sysfs attributes of
/// a new device are not complete when the event arrives, §7.5).
pub const AUDIT_DELAY: Duration = Duration::from_secs(1);

/// The NVMe/TCP I/O port, for configured TCP I/O controllers without one.
pub const IO_TCP_PORT: &str = "4420";

/// What stafd's log pages ask for.
#[derive(Debug, Default)]
struct Discovered {
    /// I/O controller -> (its entry, the DC that listed it).
    entries: BTreeMap<Tid, (DiscoveryLogEntry, String)>,
    /// DCs whose (empty) page is not stafd's word yet.
    incomplete: BTreeSet<String>,
}

/// Inputs of the service loop.
#[derive(Debug)]
pub enum Input {
    /// What stafd says now (or that it is away).
    Staf(StafView),
    /// A kernel uevent, or news that some were lost.
    Uevent(UeventItem),
    /// A new configuration (SIGHUP).
    Reload(Arc<StacdConfig>),
    /// The TIDs of the external connections an audit found.
    Audited(Vec<Tid>),
    /// Stop every task (keeping every connection) and end.
    Shutdown,
}

/// Counters for tests and debug output.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Reconciliations run.
    pub reconciliations: u64,
    /// Audits run.
    pub audits: u64,
}

/// How to send inputs to a running service.
pub type ServiceHandle = stas_daemon::controller::ServiceHandle<Input, IocStatus>;

/// The stacd service.
#[derive(Debug)]
pub struct Service {
    ctx: Arc<IocContext>,
    config_tx: watch::Sender<Arc<StacdConfig>>,
    iocs: Controllers<IocStatus, Command>,
    notices: mpsc::UnboundedReceiver<Notice>,
    inputs: mpsc::UnboundedReceiver<Input>,
    /// Our own inputs (the audit's result comes back as one).
    me: ServiceHandle,
    staf: StafView,
    lkc: Option<LkcFile>,
    lkc_seq: u64,
    lkc_written: Arc<std::sync::Mutex<u64>>,
    audit_at: Option<Instant>,
    /// What the pending audit covers: every controller (start, reload,
    /// lost events), or only those the kernel added since the last one.
    audit_scope: AuditScope,
    /// Counters.
    pub stats: Stats,
    shutting_down: bool,
}

/// The controllers an audit looks at.
#[derive(Debug, Default)]
enum AuditScope {
    /// Every controller.
    #[default]
    All,
    /// Only these, named by `add` events.
    Added(BTreeSet<String>),
}

impl AuditScope {
    fn widen(&mut self) {
        *self = Self::All;
    }

    fn add(&mut self, device: &str) {
        if let Self::Added(set) = self {
            set.insert(device.to_owned());
        }
    }
}

/// Whether a controller that is no longer wanted keeps its kernel
/// connection (§7.4).
pub fn keeps_connection(cfg: &StacdConfig, tid: &Tid) -> bool {
    match cfg.disconnect_scope {
        DisconnectScope::OnlyStasConnections => false,
        DisconnectScope::NoDisconnect => true,
        DisconnectScope::AllConnectionsMatchingDisconnectTrtypes => !cfg
            .disconnect_trtypes
            .iter()
            .any(|t| t.as_str() == tid.transport),
    }
}

impl Service {
    /// A service over `kernel` with configuration `config`.
    pub fn new(
        kernel: Arc<dyn FabricKernel>,
        host: HostInfo,
        config: Arc<StacdConfig>,
        lkc: Option<LkcFile>,
    ) -> (Self, ServiceHandle) {
        Self::with_gate(kernel, host, config, lkc, ConnectGate::from_env())
    }

    /// [`Self::new`] with an explicit bound on connects in flight.
    pub fn with_gate(
        kernel: Arc<dyn FabricKernel>,
        host: HostInfo,
        config: Arc<StacdConfig>,
        lkc: Option<LkcFile>,
        gate: ConnectGate,
    ) -> (Self, ServiceHandle) {
        let supported = stas_daemon::kernel::probe_options(&*kernel, &["host_iface"]);
        let (config_tx, config_rx) = watch::channel(config);
        let shared = Shared::new(kernel, gate, supported);
        let (ctx, notices) = IocContext::open(shared, Arc::new(host), config_rx);
        let iocs = Controllers::default();
        let (handle, inputs) = ServiceHandle::open(iocs.view.clone());
        let svc = Self {
            ctx,
            config_tx,
            iocs,
            notices,
            inputs,
            me: handle.clone(),
            staf: StafView::Unknown,
            lkc,
            lkc_seq: 0,
            lkc_written: Arc::default(),
            audit_at: None,
            audit_scope: AuditScope::All,
            stats: Stats::default(),
            shutting_down: false,
        };
        (svc, handle)
    }

    /// The connect options the kernel accepts (probed once, at start).
    pub fn supported(&self) -> Arc<nvmf_kernel::fabrics::SupportedOptions> {
        self.ctx.shared.supported.clone()
    }

    fn config(&self) -> Arc<StacdConfig> {
        self.config_tx.borrow().clone()
    }

    fn tid_context(&self) -> TidContext {
        TidContext {
            host_nqn: self.ctx.host.hostnqn.clone(),
            ignore_iface: self.config().global.ignore_iface,
        }
    }

    fn spawn(&mut self, tid: Tid, source: Source, dlpe: Option<DiscoveryLogEntry>) {
        let id = self.iocs.next_id();
        let handle = crate::ioc::spawn(self.ctx.clone(), id, tid.clone(), source, dlpe);
        self.iocs.insert(tid, handle);
    }

    fn publish_view(&self) {
        self.iocs.publish();
    }

    fn pending_disposal(&self, tid: &Tid) -> bool {
        self.iocs.draining.holds(tid)
    }

    /// Recreates the controllers of the last-known configuration that still
    /// have a kernel connection (§7.1), so a restart adopts them and tears
    /// nothing down while stafd has not answered yet.
    pub async fn restore(&mut self) {
        let Some(file) = self.lkc.clone() else { return };
        let Some(lkc) = file.load_at_start() else {
            return;
        };
        let ctx = self.tid_context();
        let tids: Vec<(Tid, Option<String>)> = lkc
            .controllers
            .into_iter()
            .map(|rec| (rec.tid(&ctx), rec.origin))
            .collect();
        let (kernel, inventory) = (
            self.ctx.shared.fabric.kernel.clone(),
            self.ctx.shared.fabric.inventory.clone(),
        );
        // One scan (the inventory's first), then a lookup per controller.
        let alive = tokio::task::spawn_blocking(move || {
            tids.into_iter()
                .filter(|(tid, _)| {
                    let found = inventory.find(&*kernel, Role::Io, tid);
                    if !matches!(found, Ok(Some(_))) {
                        log::debug!("{tid} - no kernel connection left; not restored");
                    }
                    matches!(found, Ok(Some(_)))
                })
                .collect::<Vec<_>>()
        })
        .await;
        let Ok(alive) = alive else { return };
        for (tid, origin) in alive {
            let source = match origin.as_deref() {
                Some("configured") => Source::Configured,
                _ => Source::Restored,
            };
            self.spawn(tid, source, None);
        }
        log::info!(
            "Restored {} I/O controllers from {}",
            self.iocs.len(),
            file.path().display()
        );
        self.publish_view();
    }

    /// Writes the current controllers off the loop. Writes are numbered
    /// and a write older than the last one written is dropped, so the file
    /// always ends up with the newest state.
    fn save_lkc(&mut self) -> Option<tokio::task::JoinHandle<()>> {
        let file = self.lkc.clone()?;
        self.lkc_seq = self.lkc_seq.wrapping_add(1);
        let (seq, written) = (self.lkc_seq, self.lkc_written.clone());
        let controllers = self
            .iocs
            .values()
            .map(|h| {
                let s = h.snapshot();
                ControllerRecord {
                    tid: s.tid.as_dict().into_iter().collect(),
                    origin: Some(s.source.as_str().to_owned()),
                    log_pages: WireLogPage::default(),
                    device: s.device,
                }
            })
            .collect();
        let snapshot = LastKnownConfig { controllers };
        Some(tokio::task::spawn_blocking(move || {
            let mut last = written
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if *last > seq {
                return;
            }
            *last = seq;
            if let Err(e) = file.save(&snapshot) {
                log::error!("Unable to save last known config: {e}");
            }
        }))
    }

    /// The I/O controllers stafd's log pages name (§7.2 step 3), with the
    /// entry and the DC each came from, and the DCs whose page is not
    /// stafd's word yet; None while stafd's answer is unknown.
    fn discovered(&self, ctx: &TidContext) -> Option<Discovered> {
        let StafView::Known(dcs) = &self.staf else {
            return None;
        };
        let mut out = Discovered::default();
        for dc in dcs {
            if !dc.complete {
                out.incomplete.insert(dc.dc.clone());
            }
            for e in dc.entries.iter().filter(|e| e.subtype == SubType::Nvme) {
                let tid = Tid::from_dlpe(e, &dc.host_traddr, &dc.host_iface, &dc.host_nqn, ctx);
                out.entries.insert(tid, (e.clone(), dc.dc.clone()));
            }
        }
        Some(out)
    }

    /// Computes the wanted controllers and starts and stops tasks to match.
    pub async fn reconcile(&mut self) {
        self.stats.reconciliations = self.stats.reconciliations.saturating_add(1);
        let cfg = self.config();
        let ctx = self.tid_context();

        let configured: Vec<Tid> = cfg
            .controllers
            .iter()
            .map(|spec| {
                // Upstream gives a TCP I/O controller without a port the
                // discovery port 8009 (§4.2); an I/O controller listens on
                // NVMe/TCP's 4420, which is what an admin who left the port
                // out means.
                let mut cid = spec.cid.clone();
                if cid.get("transport").map(String::as_str) == Some("tcp")
                    && cid.get("trsvcid").is_none_or(|p| p.trim().is_empty())
                {
                    cid.insert("trsvcid".into(), IO_TCP_PORT.into());
                }
                Tid::from_cid(&cid, &ctx)
            })
            .filter(|t| {
                let usable = !t.transport.is_empty()
                    && !t.subsysnqn.is_empty()
                    && (!t.traddr.is_empty() || t.transport == "loop");
                if !usable {
                    log::warn!("{t} - an I/O controller needs transport, traddr and nqn; ignored");
                }
                usable
            })
            .collect();
        let (configured, _) = remove_excluded(&cfg.excludes, configured);
        let kernel: Arc<dyn FabricKernel> = self.ctx.shared.fabric.kernel.clone();
        let configured = resolve_configured(kernel, cfg.global.ip_family, configured).await;
        let discovered = self.discovered(&ctx);

        let mut source_of: BTreeMap<Tid, Source> = BTreeMap::new();
        for t in discovered.iter().flat_map(|d| d.entries.keys()) {
            source_of.insert(t.clone(), Source::LogPage);
        }
        for t in configured {
            source_of.insert(t, Source::Configured);
        }
        let all = source_of.keys().cloned().collect();
        let wanted = wanted(all, cfg.global.ip_family, &cfg.excludes);
        let (_, excluded) = remove_excluded(&cfg.excludes, self.iocs.keys().cloned().collect());
        let excluded: BTreeSet<Tid> = excluded.into_iter().collect();

        let to_del: Vec<Tid> = self
            .iocs
            .iter()
            .filter(|(tid, h)| {
                if wanted.contains(*tid) {
                    return false;
                }
                let s = lock(&h.status);
                if excluded.contains(*tid) {
                    return true;
                }
                // Without stafd's word only what stacd.conf alone decides
                // may go.
                let listing_unknown = match (&discovered, &s.listed_by) {
                    (None, _) => true,
                    (Some(d), Some(dc)) => d.incomplete.contains(dc),
                    (Some(_), None) => false,
                };
                if listing_unknown {
                    !s.source.needs_stafd() && s.dlpe.is_none()
                } else {
                    true
                }
            })
            .map(|(t, _)| t.clone())
            .collect();
        for tid in &to_del {
            if let Some(h) = self.iocs.remove(tid) {
                let keep = keeps_connection(&cfg, tid);
                log::info!(
                    "{tid} - no longer wanted; {}",
                    if keep {
                        "keeping its connection (disconnect-scope)"
                    } else {
                        "disconnecting"
                    }
                );
                h.send(Command::Stop {
                    keep_connection: keep,
                });
                self.iocs.draining.push(tid.clone(), h);
            }
        }
        for tid in &wanted {
            let listing = discovered
                .as_ref()
                .and_then(|d| d.entries.get(tid))
                .cloned();
            let (dlpe, listed_by) = listing.map_or((None, None), |(e, dc)| (Some(e), Some(dc)));
            let source = source_of.get(tid).copied().unwrap_or(Source::Configured);
            match self.iocs.get(tid) {
                Some(h) => {
                    let changed = {
                        let mut s = lock(&h.status);
                        s.source = source;
                        if listed_by.is_some() {
                            s.listed_by = listed_by;
                        }
                        dlpe.is_some() && s.dlpe != dlpe
                    };
                    if let (true, Some(e)) = (changed, dlpe) {
                        h.send(Command::Dlpe(Box::new(e)));
                    }
                }
                None if self.pending_disposal(tid) => {
                    log::debug!("{tid} - waiting for the previous connection to be disposed of");
                }
                None => {
                    self.spawn(tid.clone(), source, dlpe);
                    if let Some(h) = self.iocs.get(tid) {
                        lock(&h.status).listed_by = listed_by;
                    }
                }
            }
        }
        self.publish_view();
        self.save_lkc();
    }

    fn on_uevent(&mut self, item: UeventItem) {
        let audit = self.config().disconnect_scope
            == DisconnectScope::AllConnectionsMatchingDisconnectTrtypes;
        match item {
            UeventItem::Lost => {
                log::warn!("Kernel events were lost (uevent socket overflow); checking every I/O controller");
                let (kernel, inventory) = (
                    self.ctx.shared.fabric.kernel.clone(),
                    self.ctx.shared.fabric.inventory.clone(),
                );
                let devices = self.ctx.shared.devices.clone();
                let held: Vec<String> = self
                    .iocs
                    .values()
                    .filter_map(|h| lock(&h.status).device.clone())
                    .collect();
                tokio::spawn(async move {
                    // One full scan, shared with any lookup that wants one.
                    let present =
                        tokio::task::spawn_blocking(move || inventory.rescan(&*kernel)).await;
                    let Ok(Ok(present)) = present else { return };
                    for dev in held.iter().filter(|d| !present.contains(*d)) {
                        if let Some(h) = devices.holder(dev) {
                            h.commander.send(Command::Removed);
                        }
                    }
                });
                if audit {
                    self.audit_scope.widen();
                    self.audit_at = Some(Instant::now());
                }
            }
            UeventItem::Event(ev) => {
                if !ev.is_nvme_controller() {
                    return;
                }
                self.ctx.shared.fabric.inventory.note_uevent(&ev);
                match ev.action {
                    Action::Remove => {
                        if let Some(h) = self.ctx.shared.devices.holder(ev.devname()) {
                            h.commander.send(Command::Removed);
                        }
                    }
                    // A controller still connecting when its audit reads it
                    // is audited again when it comes live.
                    Action::Add | Action::Change
                        if audit
                            && (ev.action == Action::Add
                                || ev.nvme_event() == Some("connected")) =>
                    {
                        self.audit_scope.add(ev.devname());
                        self.audit_at.get_or_insert(Instant::now() + AUDIT_DELAY);
                    }
                    _ => {}
                }
            }
        }
    }

    /// Lists the external connections the audit covers (§7.5), off the loop;
    /// the result comes back as [`Input::Audited`].
    fn start_audit(&mut self) {
        self.stats.audits = self.stats.audits.saturating_add(1);
        let cfg = self.config();
        let trtypes: Vec<String> = cfg
            .disconnect_trtypes
            .iter()
            .map(|t| t.as_str().to_owned())
            .collect();
        let ctx = self.tid_context();
        let (kernel, inventory) = (
            self.ctx.shared.fabric.kernel.clone(),
            self.ctx.shared.fabric.inventory.clone(),
        );
        let scope = std::mem::replace(&mut self.audit_scope, AuditScope::Added(BTreeSet::new()));
        let me = self.me.clone();
        tokio::spawn(async move {
            let found = tokio::task::spawn_blocking(move || {
                let controllers = match &scope {
                    AuditScope::All => inventory.all(&*kernel),
                    AuditScope::Added(names) => inventory.read_some(&*kernel, names),
                }
                .unwrap_or_default();
                let ifaces = if controllers.is_empty() {
                    Default::default()
                } else {
                    kernel.interfaces()
                };
                controllers
                    .into_iter()
                    .filter(|c| c.is_ioc && trtypes.contains(&c.transport))
                    .map(|c| tid_of_existing(&c, &ifaces, &ctx))
                    .collect::<Vec<Tid>>()
            })
            .await
            .unwrap_or_default();
            me.send(Input::Audited(found));
        });
    }

    fn on_audited(&mut self, tids: Vec<Tid>) -> bool {
        if self.config().disconnect_scope
            != DisconnectScope::AllConnectionsMatchingDisconnectTrtypes
        {
            return false;
        }
        let mut created = false;
        for tid in tids {
            if self.iocs.contains_key(&tid) || self.pending_disposal(&tid) {
                continue;
            }
            log::info!("{tid} - existing connection audited");
            self.spawn(tid, Source::Audit, None);
            created = true;
        }
        if created {
            self.publish_view();
        }
        created
    }

    fn on_notice(&mut self, n: Notice) -> bool {
        match n {
            Notice::Stopped { tid, id } => {
                let was_draining = self.iocs.draining.ended(&tid, id);
                if self.iocs.get(&tid).is_some_and(|h| h.id == id) {
                    // It ended by itself (an audited connection already gone).
                    self.iocs.remove(&tid);
                    self.publish_view();
                }
                // A TID that waited for this disposal may be created now.
                was_draining && !self.shutting_down
            }
        }
    }

    fn on_input(&mut self, input: Input, want_reconcile: &mut bool) {
        match input {
            Input::Staf(view) => {
                if matches!(view, StafView::Unknown) {
                    log::info!(
                        "stafd's log pages unknown; keeping what they named until it answers"
                    );
                }
                // stafd going away alone changes nothing (§7.3); its answer does.
                *want_reconcile |= matches!(view, StafView::Known(_)) || self.staf != view;
                self.staf = view;
            }
            Input::Uevent(item) => self.on_uevent(item),
            Input::Reload(cfg) => {
                let _ = self.config_tx.send(cfg);
                for h in self.iocs.values() {
                    h.send(Command::Reload);
                }
                if self.config().disconnect_scope
                    == DisconnectScope::AllConnectionsMatchingDisconnectTrtypes
                {
                    self.audit_scope.widen();
                    self.audit_at = Some(Instant::now());
                }
                *want_reconcile = true;
            }
            Input::Audited(tids) => *want_reconcile |= self.on_audited(tids),
            Input::Shutdown => self.shutting_down = true,
        }
    }

    /// Runs until shutdown. Reconciles once at start (and audits, in the
    /// audit scope).
    pub async fn run(mut self) -> Stats {
        let mut want_reconcile = true;
        if self.config().disconnect_scope
            == DisconnectScope::AllConnectionsMatchingDisconnectTrtypes
        {
            self.audit_at = Some(Instant::now());
        }
        loop {
            while let Ok(i) = self.inputs.try_recv() {
                self.on_input(i, &mut want_reconcile);
            }
            while let Ok(n) = self.notices.try_recv() {
                want_reconcile |= self.on_notice(n);
            }
            if self.shutting_down {
                return self.drain().await;
            }
            if want_reconcile {
                want_reconcile = false;
                self.reconcile().await;
                continue;
            }
            let audit_at = self.audit_at;
            tokio::select! {
                i = self.inputs.recv() => match i {
                    Some(i) => self.on_input(i, &mut want_reconcile),
                    None => self.shutting_down = true,
                },
                Some(n) = self.notices.recv() => want_reconcile |= self.on_notice(n),
                () = tokio::time::sleep_until(audit_at.unwrap_or_else(Instant::now)), if audit_at.is_some() => {
                    self.audit_at = None;
                    self.start_audit();
                }
            }
            tokio::task::yield_now().await;
        }
    }

    /// Shutdown (§7.9): save, stop every task keeping its connection, wait.
    async fn drain(mut self) -> Stats {
        if let Some(saving) = self.save_lkc() {
            let _ = saving.await;
        }
        self.iocs
            .stop_all(|| Command::Stop {
                keep_connection: true,
            })
            .await;
        self.stats
    }
}
