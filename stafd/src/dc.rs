//! One discovery controller as a task: connect (or adopt an existing kernel
//! connection), register (DIM) when it is a DDC/CDC, ask which log page
//! options it supports (PLEO), read its discovery log, then wait for AENs and
//! kernel events (docs/behaviour.md §5, §6.4, §6.5); or, for a DC that is
//! not kept connected (`persistent`, EPCSD), disconnect and read it again
//! after the poll interval, serving the cached page meanwhile.
//!
//! Kernel calls run on the blocking pool; while one is in flight the task
//! still takes commands and acts on them when it returns, so a disconnect
//! never overtakes a connect in flight (the bug upstream's terminator works
//! around, §9). Commands that arrive in a burst coalesce: ten AENs during a
//! read cause one more read, not ten.

use std::sync::Arc;
use std::time::Duration;

use nvmf_kernel::fabrics::ControllerKind;
use nvmf_proto::dim::{DimData, Registration, Tas};
use nvmf_proto::dlp::DiscoveryLogEntry;
use nvmf_proto::types::{AdrFam, DcType, EFlags, SubType};
use stas_config::{Persistent, StafdConfig};
use stas_daemon::controller::{Change, TaskContext, TaskCore, TaskStatus};
use stas_daemon::inventory::Role;
use stas_daemon::task::{self, retry_delay, TaskError};
use stas_tid::{is_unusable_dlpe_traddr, Tid};
use tokio::sync::watch;

use crate::kernel::Kernel;

pub use stas_daemon::task::{FAST_RETRY, SLOW_RETRY};
/// Retry of a failed registration.
pub const REGISTER_RETRY: Duration = Duration::from_secs(5);
/// Retry of a failed log page read.
pub const FETCH_RETRY: Duration = Duration::from_secs(20);

/// Where a DC came from (§6.2), in order of precedence (the greatest wins
/// when several sources name a DC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Origin {
    /// Announced over mDNS.
    Discovered,
    /// Listed in a referral of another DC.
    Referral,
    /// Configured (stafd.conf or NBFT).
    Configured,
}

impl Origin {
    /// The spelling on D-Bus and in the last-known configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Configured => "configured",
            Self::Discovered => "discovered",
            Self::Referral => "referral",
        }
    }

    /// Parses the spelling; None for anything else.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "configured" => Some(Self::Configured),
            "discovered" => Some(Self::Discovered),
            "referral" => Some(Self::Referral),
            _ => None,
        }
    }
}

/// Where the pipeline is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Waiting to (re)connect.
    Waiting,
    /// Connect or adopt in flight.
    Connecting,
    /// DIM registration.
    Registering,
    /// Supported Log Pages.
    Querying,
    /// Reading the discovery log.
    Fetching,
    /// Connected, log page cached, waiting for events.
    Steady,
    /// Log page read and cached, disconnected until the next poll: the DC
    /// is not kept connected (`persistent`, EPCSD).
    Parked,
    /// Stopped.
    Stopped,
}

/// What the rest of the daemon may read about a DC.
#[derive(Debug, Clone)]
pub struct DcStatus {
    /// Its transport ID.
    pub tid: Tid,
    /// Where it came from.
    pub origin: Option<Origin>,
    /// The kernel device (`nvmeN`) while bound.
    pub device: Option<String>,
    /// Whether a kernel connection is bound and live.
    pub connected: bool,
    /// The cached discovery log entries (kept across reconnects).
    pub log_pages: Vec<DiscoveryLogEntry>,
    /// Whether a log page was ever read (or restored).
    pub have_log_pages: bool,
    /// Discovery controller type, once known.
    pub dctype: Option<DcType>,
    /// Connect attempts since the last success.
    pub connect_attempts: u32,
    /// Pipeline stage.
    pub stage: Stage,
    /// The last error, for debug output.
    pub last_error: Option<String>,
    /// Log page reads completed.
    pub fetches: u64,
    /// Whether it is kept connected between reads (`persistent`, this
    /// DC's own or the default), as the service last resolved it.
    pub persistent: Persistent,
    /// EPCSD of the referral entries that lead to it (set in any of
    /// them), `None` when no referral does: what `auto` goes by when the
    /// DC does not describe itself.
    pub referral_epcsd: Option<bool>,
}

impl DcStatus {
    /// The referral entries of the cached log page.
    pub fn referrals(&self) -> impl Iterator<Item = &DiscoveryLogEntry> {
        self.log_pages
            .iter()
            .filter(|e| e.subtype == SubType::Referral)
    }
}

/// What a DC task tells the service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// A log page was read (emit `log_pages_changed`; reconcile if the referrals changed).
    LogPages {
        /// The DC.
        tid: Tid,
        /// Its device.
        device: String,
        /// Whether its referral entries differ from before.
        referrals_changed: bool,
    },
    /// The task ended.
    Stopped {
        /// The DC.
        tid: Tid,
        /// Which task (a TID may be re-added while an old task drains).
        id: u64,
    },
}

/// What the service asks of a DC task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// A Discovery Log Page Change AEN arrived: read the log again.
    Aen,
    /// The kernel reconnected it (`NVME_EVENT=connected/rediscover`), or
    /// lost events ask for a resync: register, query, read again.
    Resync,
    /// The configuration was reloaded (SIGHUP): bring the registration up
    /// to date (a DIM update when what we registered changed, such as the
    /// symbolic name; a registration if we hold none), query, read again.
    Reload,
    /// Its kernel device was removed: reconnect, keeping the cached log page.
    Removed,
    /// Stop; disconnect unless `keep_connection`.
    Stop {
        /// Leave the kernel connection up (persistent connections at exit).
        keep_connection: bool,
    },
}

stas_daemon::stop_command!(Command);

/// The host identity DCs connect and register with.
#[derive(Debug, Clone, Default)]
pub struct HostInfo {
    /// Host NQN (sys.conf).
    pub hostnqn: String,
    /// Host ID text (sys.conf).
    pub hostid: String,
    /// Host ID bytes, when the text is a UUID.
    pub hostid_bytes: Option<[u8; 16]>,
    /// Host name (DIM ENAME).
    pub hostname: String,
    /// OS version (DIM EVER).
    pub os_version: String,
    /// Symbolic name (DIM).
    pub symname: Option<String>,
}

/// What every DC task shares; of the host identity only the symbolic
/// name changes (on reload).
pub type DcContext =
    TaskContext<dyn Kernel, Command, watch::Receiver<Arc<HostInfo>>, StafdConfig, Notice>;

/// A running DC task.
pub type DcHandle = stas_daemon::TaskHandle<DcStatus, Command>;

/// A way to send commands to a DC task from elsewhere.
pub type DcCommander = stas_daemon::Commander<Command>;

/// Starts a DC task, optionally with a log page restored from the
/// last-known configuration (served at once, before it connects).
pub fn spawn(
    ctx: Arc<DcContext>,
    id: u64,
    tid: Tid,
    origin: Option<Origin>,
    cached: Option<Vec<DiscoveryLogEntry>>,
) -> DcHandle {
    // The service resolves it again at every reconciliation; until then,
    // what the TID (a configured or restored one) or the default says.
    let persistent = tid
        .cfg
        .get("persistent")
        .and_then(|v| Persistent::parse(v))
        .unwrap_or(ctx.config.borrow().persistent);
    let status = DcStatus {
        tid: tid.clone(),
        origin,
        device: None,
        connected: false,
        have_log_pages: cached.is_some(),
        log_pages: cached.unwrap_or_default(),
        dctype: None,
        connect_attempts: 0,
        stage: Stage::Waiting,
        last_error: None,
        fetches: 0,
        persistent,
        referral_epcsd: None,
    };
    let shared = ctx.shared.clone();
    TaskCore::spawn(id, tid, status, shared, |core| {
        Dc {
            ctx,
            core,
            removed: false,
            resync: false,
            reload: false,
            refetch: false,
            registered: None,
            entry_errors: None,
            parked: false,
        }
        .run()
    })
}

pub use stas_daemon::lock;

impl stas_daemon::ControllerStatus for DcStatus {
    fn tid(&self) -> &Tid {
        &self.tid
    }
}

impl TaskStatus for DcStatus {
    stas_daemon::status_slots!();

    fn show(&mut self, change: Change) {
        match change {
            Change::Connecting => self.stage = Stage::Connecting,
            Change::Bound | Change::Released => self.connected = change == Change::Bound,
            Change::Stopped => {
                self.stage = Stage::Stopped;
                self.connected = false;
            }
        }
    }
}

struct Dc {
    ctx: Arc<DcContext>,
    core: TaskCore<dyn Kernel, Command, DcStatus>,
    removed: bool,
    resync: bool,
    reload: bool,
    refetch: bool,
    /// What the DC holds from our registration (DIM) on the current
    /// connection: a reload compares it with what we would register now.
    registered: Option<DimData>,
    /// The GENCTR and bad entries of the last page read, so that the same
    /// bad entries are reported once per change, not once per read.
    entry_errors: Option<(u64, Vec<String>)>,
    /// Whether the last read ended in parking, to log the decision when
    /// it changes rather than at every poll.
    parked: bool,
}

enum Next {
    Reconnect(Duration),
    /// The log page is read and the DC is not kept connected: disconnect
    /// and read again after the poll interval.
    Park,
    Stop,
}

impl Dc {
    fn set(&self, f: impl FnOnce(&mut DcStatus)) {
        self.core.set(f);
    }

    /// Applies the commands that arrived (stops are the inbox's).
    fn apply(&mut self) {
        let cmds: Vec<Command> = self.core.inbox.take().collect();
        for cmd in cmds {
            match cmd {
                Command::Aen => self.refetch = true,
                Command::Resync => self.resync = true,
                Command::Reload => self.reload = true,
                Command::Removed => self.removed = true,
                Command::Stop { .. } => {}
            }
        }
    }

    /// Runs a kernel call on the blocking pool, taking commands meanwhile.
    async fn blocking<T: Send + 'static>(
        &mut self,
        f: impl FnOnce(&dyn Kernel) -> Result<T, nvmf_kernel::KernelError> + Send + 'static,
    ) -> Result<T, TaskError> {
        let r = self.core.blocking(f).await;
        self.apply();
        r
    }

    /// Waits `d`, or less if a command needs attention.
    async fn pause(&mut self, d: Duration) {
        self.pause_until(d, false).await;
    }

    /// [`pause`](Self::pause) that an AEN also ends: after a failed read,
    /// a new change event means the page has moved on (a target changing
    /// it faster than a read completes fails the read), so read it now
    /// rather than 20 s later.
    async fn pause_or_aen(&mut self, d: Duration) {
        if self.pause_until(d, true).await {
            self.refetch = false;
        }
    }

    /// Waits `d` or until a command needs attention (an AEN too when
    /// `aen`); whether an AEN ended it.
    async fn pause_until(&mut self, d: Duration, aen: bool) -> bool {
        let deadline = tokio::time::Instant::now() + d;
        loop {
            self.apply();
            if self.core.inbox.stopping() || self.removed || self.resync || self.reload {
                return false;
            }
            if aen && self.refetch {
                return true;
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return false;
            }
            self.core.inbox.wait(Some(left)).await;
        }
    }

    /// Waits for a command that needs attention while steady.
    async fn idle(&mut self) {
        loop {
            self.apply();
            if self.core.inbox.stopping()
                || self.removed
                || self.resync
                || self.reload
                || self.refetch
            {
                return;
            }
            self.core.inbox.wait(None).await;
        }
    }

    async fn run(mut self) {
        let mut delay = Duration::ZERO;
        let mut device: Option<String> = None;
        // Whether the wait ahead is a parked DC's wait for its next poll
        // (else a wait to reconnect).
        let mut waiting_to_poll = false;
        loop {
            if self.core.inbox.stopping() {
                break;
            }
            if !delay.is_zero() {
                let stage = if waiting_to_poll {
                    Stage::Parked
                } else {
                    Stage::Waiting
                };
                self.set(|s| s.stage = stage);
                self.pause(delay).await;
                if self.core.inbox.stopping() {
                    break;
                }
                // A device removal while waiting changes nothing: we reconnect anyway.
                self.removed = false;
                self.resync = false;
                self.reload = false;
            }
            match self.connect().await {
                // Told to stop before the connect could start.
                Ok(None) => break,
                Ok(Some(dev)) => {
                    device = Some(dev.clone());
                    waiting_to_poll = false;
                    match self.serve(&dev).await {
                        Next::Stop => break,
                        Next::Reconnect(d) => {
                            device = None;
                            delay = d;
                        }
                        Next::Park => {
                            self.park(&dev).await;
                            device = None;
                            waiting_to_poll = true;
                            delay = self.ctx.config.borrow().epcsd_poll_interval();
                        }
                    }
                }
                Err(e) => {
                    waiting_to_poll = false;
                    delay = retry_delay(self.core.connect_failed(&e));
                }
            }
        }
        self.apply();
        if let (Some(dev), false) = (device, self.core.keeps_connection()) {
            if self.registered.is_some() {
                // Tell the CDC/DDC we are leaving before we go (TP8010);
                // upstream never deregisters.
                let (d, data) = (dev.clone(), self.registration());
                match self
                    .blocking(move |k| k.register(&d, Tas::Deregister, &data))
                    .await
                {
                    Ok(_) => log::info!("{} | {dev} - Deregistered", self.core.tid),
                    Err(e) => log::warn!("{} | {dev} - Deregistration failed: {e}", self.core.tid),
                }
            }
            self.core.disconnect(&dev).await;
        }
        self.core
            .finish(&self.ctx.notices, |tid, id| Notice::Stopped { tid, id });
    }

    /// Adopts a matching kernel connection, or makes one; `None` if told
    /// to stop before the connect could start.
    async fn connect(&mut self) -> Result<Option<String>, TaskError> {
        let cfg = self.ctx.config.borrow().clone();
        let host = self.ctx.host.borrow().clone();
        let opts = self.core.connect_options(
            ControllerKind::Discovery,
            &cfg.global,
            &host.hostnqn,
            &host.hostid,
        );
        let bound = self.core.connect(Role::Discovery, opts, false).await;
        self.apply();
        bound
    }

    fn first_stage(&self, dctype: DcType) -> Stage {
        if matches!(dctype, DcType::Ddc | DcType::Cdc) && self.core.tid.transport == "tcp" {
            Stage::Registering
        } else {
            self.after_registration(dctype)
        }
    }

    fn after_registration(&self, dctype: DcType) -> Stage {
        if self.ctx.config.borrow().pleo && dctype != DcType::Cdc {
            Stage::Querying
        } else {
            Stage::Fetching
        }
    }

    /// The connected part of the pipeline; returns when the device is gone
    /// or the task must stop.
    async fn serve(&mut self, device: &str) -> Next {
        let d = device.to_owned();
        let dctype = match self.blocking(move |k| k.dc_type(&d)).await {
            Ok(t) => t,
            Err(e) => {
                log::debug!(
                    "{} | {device} - cannot read dctype ({e}); assuming none",
                    self.core.tid
                );
                DcType::None
            }
        };
        self.set(|s| s.dctype = Some(dctype));
        let mut stage = self.first_stage(dctype);
        let mut lsp = 0u8;
        let (mut register_failed, mut fetch_failed) = (false, false);
        // Whether this pass was started by a reload (a DIM update will do).
        let mut reloaded = false;
        // A resync or reload asked for before we connected is already
        // served by this pass, which registers afresh.
        self.resync = false;
        self.reload = false;
        loop {
            if self.core.inbox.stopping() {
                return Next::Stop;
            }
            if std::mem::take(&mut self.removed) {
                log::info!("{} | {device} - Received \"remove\" event", self.core.tid);
                self.core.release(device);
                self.registered = None;
                return Next::Reconnect(FAST_RETRY);
            }
            if std::mem::take(&mut self.resync) {
                // The kernel reconnected it (or events were lost): the DC
                // may have forgotten us, so register again.
                self.refetch = false;
                self.reload = false;
                reloaded = false;
                stage = self.first_stage(dctype);
                // Querying, if PLEO is still wanted, chooses it again.
                lsp = 0;
            } else if std::mem::take(&mut self.reload) {
                self.refetch = false;
                reloaded = true;
                stage = self.first_stage(dctype);
                lsp = 0;
            } else if stage == Stage::Steady && std::mem::take(&mut self.refetch) {
                stage = Stage::Fetching;
            }
            self.set(|s| s.stage = stage);
            match stage {
                Stage::Registering => {
                    let data = self.registration();
                    // On a reload the DC already holding our registration
                    // gets a DIM update (TP8010) when it changed, nothing
                    // when it did not; a second register would be a new
                    // registration to a DC that has one.
                    let tas = match &self.registered {
                        Some(held) if reloaded && *held == data => None,
                        Some(_) if reloaded => Some(Tas::Update),
                        _ => Some(Tas::Register),
                    };
                    let Some(tas) = tas else {
                        stage = self.after_registration(dctype);
                        continue;
                    };
                    let (d, sent) = (device.to_owned(), data.clone());
                    match self.blocking(move |k| k.register(&d, tas, &sent)).await {
                        Ok(_) => {
                            register_failed = false;
                            if tas == Tas::Update {
                                log::info!("{} | {device} - Registration updated", self.core.tid);
                            }
                            self.registered = Some(data);
                            stage = self.after_registration(dctype);
                        }
                        Err(e) if e.nvme_status().is_some() => {
                            // The controller answered: registration refused, carry on.
                            log::warn!("{} | {device} - Registration error. {e}.", self.core.tid);
                            stage = self.after_registration(dctype);
                        }
                        Err(e) => {
                            if !std::mem::replace(&mut register_failed, true) {
                                log::error!("{} | {device} - Failed to register with Discovery Controller. {e}", self.core.tid);
                            }
                            self.pause(REGISTER_RETRY).await;
                        }
                    }
                }
                Stage::Querying => {
                    let d = device.to_owned();
                    match self.blocking(move |k| k.supported_log_pages(&d)).await {
                        Ok(p) => {
                            let f = p.discovery_features();
                            lsp = f.preferred_lsp();
                            log::debug!(
                                "{} | {device} - supported options {f:?}, lsp {lsp:#x}",
                                self.core.tid
                            );
                        }
                        Err(e) => {
                            // Upstream retries forever and never reads the log;
                            // a controller that refuses LID 0 (nvmet does) gets
                            // a plain Get Log Page instead (spec [REC]).
                            log::debug!("{} | {device} - no supported log pages ({e}); reading without PLEO", self.core.tid);
                            lsp = 0;
                        }
                    }
                    stage = Stage::Fetching;
                }
                Stage::Fetching => {
                    let d = device.to_owned();
                    match self.blocking(move |k| k.discovery_log(&d, lsp)).await {
                        Ok(page) => {
                            fetch_failed = false;
                            self.publish(device, page.valid_entries().cloned().collect());
                            let errors = page.entry_errors().map(ToString::to_string).collect();
                            self.report_entry_errors(device, page.header.genctr, errors);
                            let own = own_epcsd(page.valid_entries(), &self.core.tid);
                            if !self.keep_connected(device, own) {
                                return Next::Park;
                            }
                            stage = Stage::Steady;
                        }
                        Err(e) => {
                            if !std::mem::replace(&mut fetch_failed, true) {
                                log::error!(
                                    "{} | {device} - Failed to retrieve log pages. {e}",
                                    self.core.tid
                                );
                            }
                            self.set(|s| s.last_error = Some(e.to_string()));
                            self.pause_or_aen(FETCH_RETRY).await;
                        }
                    }
                }
                Stage::Steady => self.idle().await,
                Stage::Waiting | Stage::Connecting | Stage::Parked | Stage::Stopped => {
                    stage = Stage::Fetching;
                }
            }
        }
    }

    /// Whether to stay connected after a read (`persistent`): `auto` goes
    /// by EPCSD in the DC's own entry (`own`), else in the referral entry
    /// that led to it; a DC that says nothing is polled, as libnvme and
    /// nvme-stas main decide. Logs the decision when it changes.
    fn keep_connected(&mut self, device: &str, own: Option<bool>) -> bool {
        let (persistent, referral) = {
            let s = lock(&self.core.status);
            (s.persistent, s.referral_epcsd)
        };
        let (keep, why) = match persistent {
            Persistent::Force => (true, "persistent=force"),
            Persistent::No => (false, "persistent=no"),
            Persistent::Auto => match (own, referral) {
                (Some(e), _) => (e, "its own log page entry"),
                (None, Some(e)) => (e, "the referral entry that led to it"),
                (None, None) => (false, "no log page entry describes it"),
            },
        };
        if !keep {
            let minutes = self.ctx.config.borrow().epcsd_poll_minutes;
            let text = format!(
                "{} | {device} - Not kept connected ({why}); reading it again every {minutes} min",
                self.core.tid
            );
            if self.parked {
                log::debug!("{text}");
            } else {
                log::info!("{text}");
            }
        } else if self.parked {
            log::info!("{} | {device} - Kept connected now ({why})", self.core.tid);
        }
        self.parked = !keep;
        keep
    }

    /// Disconnects a DC that is not kept connected, keeping its cached log
    /// page (served to stacd meanwhile) until the next poll. The device is
    /// given up first, so the kernel's remove event for our own disconnect
    /// is not taken for the DC going away (nvme-stas #513).
    async fn park(&mut self, device: &str) {
        self.core.release(device);
        // A parked DC registers afresh when it is polled.
        self.registered = None;
        if let Err(e) =
            task::disconnect(&mut self.core.inbox, &self.core.shared.fabric, device).await
        {
            log::warn!("{} | {device} - Disconnect failed: {e}", self.core.tid);
        }
        self.apply();
        // Nothing it asked for while connected is left to do: the next
        // poll reads, registers and queries anew.
        self.refetch = false;
        self.removed = false;
        self.resync = false;
        // Parked once the connection is gone (then the wait for the next
        // poll starts without a yield in between).
        self.set(|s| s.stage = Stage::Parked);
    }

    /// Logs the entries of a page that did not parse: at warning when they
    /// differ from the last page's or the page changed (GENCTR), else at
    /// debug. An AEN storm, a resync or a reconnect re-reads the same page,
    /// and its bad entries are news only once.
    fn report_entry_errors(&mut self, device: &str, genctr: u64, errors: Vec<String>) {
        let now = (genctr, errors);
        let news = self.entry_errors.as_ref() != Some(&now);
        for e in &now.1 {
            if news {
                log::warn!("{} | {device} - {e}; entry ignored", self.core.tid);
            } else {
                log::debug!(
                    "{} | {device} - {e}; entry ignored (as before)",
                    self.core.tid
                );
            }
        }
        self.entry_errors = Some(now);
    }

    fn registration(&self) -> DimData {
        let h = self.ctx.host.borrow().clone();
        let adrfam = if self.core.tid.traddr.contains(':') {
            AdrFam::Ipv6
        } else {
            AdrFam::Ipv4
        };
        DimData::registration(&Registration {
            host_nqn: &h.hostnqn,
            host_id: h.hostid_bytes.unwrap_or_default(),
            hostname: &h.hostname,
            os_version: &h.os_version,
            dc_adrfam: adrfam,
            symname: h.symname.as_deref(),
        })
    }

    fn publish(&self, device: &str, entries: Vec<DiscoveryLogEntry>) {
        let entries: Vec<DiscoveryLogEntry> = entries
            .into_iter()
            .filter(|e| !is_unusable_dlpe_traddr(&e.traddr))
            .collect();
        log::info!(
            "{} | {device} - Received discovery log pages (num records={}).",
            self.core.tid,
            entries.len()
        );
        let referrals_changed = {
            let mut s = lock(&self.core.status);
            let before: Vec<&DiscoveryLogEntry> = s.referrals().collect();
            let after: Vec<&DiscoveryLogEntry> = entries
                .iter()
                .filter(|e| e.subtype == SubType::Referral)
                .collect();
            let changed = before != after;
            s.log_pages = entries;
            s.have_log_pages = true;
            s.fetches = s.fetches.saturating_add(1);
            s.last_error = None;
            changed
        };
        let _ = self.ctx.notices.send(Notice::LogPages {
            tid: self.core.tid.clone(),
            device: device.to_owned(),
            referrals_changed,
        });
    }
}

/// EPCSD as a DC reports it about itself (TP8014): its "current discovery
/// subsystem" entry for the port we reached, else any such entry (the
/// same discovery subsystem's other ports); `None` when its page has none
/// (a DC older than TP8014).
fn own_epcsd<'a>(entries: impl Iterator<Item = &'a DiscoveryLogEntry>, tid: &Tid) -> Option<bool> {
    let own: Vec<&DiscoveryLogEntry> = entries
        .filter(|e| e.subtype == SubType::CurrentDiscovery)
        .collect();
    own.iter()
        .find(|e| e.traddr == tid.traddr && e.trsvcid == tid.trsvcid)
        .or(own.first())
        .map(|e| e.eflags.contains(EFlags::EPCSD))
}
