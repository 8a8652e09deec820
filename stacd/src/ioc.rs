//! One I/O controller as a task: adopt a matching kernel connection or make
//! one, retry on failure (3 s, then 60 s; bounded while the log page entry
//! says NCC, §7.6), reconnect after the kernel removed the device, and
//! disconnect when told to stop (nvme-stas-behaviour §5, §7).
//!
//! Kernel calls run on the blocking pool while the task keeps taking
//! commands and acts on them when the call returns: a stop that arrives
//! during a slow connect disconnects what that connect made, so a
//! disconnect never overtakes a connect in flight. That is what upstream's
//! terminator (§9) exists for, without its 30 s polling.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use nvmf_kernel::fabrics::{ConnectOptions, ControllerKind, SupportedOptions};
use nvmf_kernel::KernelError;
use nvmf_proto::dlp::DiscoveryLogEntry;
use nvmf_proto::types::EFlags;
use stas_common::config::StacdConfig;
use stas_common::kernel::FabricKernel;
use stas_common::matching::{self, existing, ExistingController};
use stas_common::tid::Tid;
use tokio::sync::{mpsc, watch};

/// Retry after the first failed connect, and after the device went away.
pub const FAST_RETRY: Duration = Duration::from_secs(3);
/// Retry after later failed connects.
pub const SLOW_RETRY: Duration = Duration::from_secs(60);

/// Why stacd manages an I/O controller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Source {
    /// Found by the audit (an existing kernel connection, §7.5).
    Audit,
    /// Restored from the last-known configuration at start.
    Restored,
    /// Listed in a discovery log page stafd serves.
    LogPage,
    /// Named in stacd.conf.
    Configured,
}

impl Source {
    /// The spelling in the last-known configuration and debug output.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Audit => "audit",
            Self::Restored => "restored",
            Self::LogPage => "discovered",
            Self::Configured => "configured",
        }
    }

    /// Whether only stafd can say if it is still wanted: such controllers
    /// are kept while stafd's answer is unknown.
    pub fn needs_stafd(self) -> bool {
        self != Self::Configured
    }
}

/// Where the task is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Waiting for the retry timer.
    Waiting,
    /// Connect or adopt in flight.
    Connecting,
    /// Connected.
    Connected,
    /// Stopped retrying (NCC with connect-attempts-on-ncc reached); a reload
    /// or a log page entry without NCC tries again.
    GaveUp,
    /// Disconnecting (or leaving the connection) on the way out.
    Stopping,
    /// Ended.
    Stopped,
}

/// What the rest of the daemon may read about an I/O controller.
#[derive(Debug, Clone)]
pub struct IocStatus {
    /// Its transport ID.
    pub tid: Tid,
    /// Why it is managed.
    pub source: Source,
    /// The kernel device (`nvmeN`) while bound.
    pub device: Option<String>,
    /// Connect attempts since the last success.
    pub connect_attempts: u32,
    /// Where the task is.
    pub stage: Stage,
    /// The log page entry it was last listed with.
    pub dlpe: Option<DiscoveryLogEntry>,
    /// The discovery controller whose log page listed it last.
    pub listed_by: Option<String>,
    /// The last connect error.
    pub last_error: Option<String>,
    /// Interval of the pending retry, if one is pending.
    pub retry_in: Option<Duration>,
}

impl IocStatus {
    /// Whether a kernel connection is bound.
    pub fn connected(&self) -> bool {
        self.stage == Stage::Connected
    }

    /// Whether the last log page entry asks not to connect eagerly (NCC).
    pub fn ncc(&self) -> bool {
        self.dlpe
            .as_ref()
            .is_some_and(|e| e.eflags.contains(EFlags::NCC))
    }
}

/// What the service asks of an I/O controller task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// The log page entry it is listed with now (§7.6 `update_dlpe`).
    Dlpe(Box<DiscoveryLogEntry>),
    /// Its kernel device was removed: reconnect soon.
    Removed,
    /// SIGHUP: a controller that gave up tries once more (§7.7).
    Reload,
    /// Stop; disconnect unless `keep_connection`.
    Stop {
        /// Leave the kernel connection up.
        keep_connection: bool,
    },
}

/// What an I/O controller task tells the service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// The task ended (its kernel work is done).
    Stopped {
        /// The controller.
        tid: Tid,
        /// Which task.
        id: u64,
    },
}

/// The host identity I/O controllers connect with.
#[derive(Debug, Clone, Default)]
pub struct HostInfo {
    /// Host NQN (sys.conf).
    pub hostnqn: String,
    /// Host ID (sys.conf).
    pub hostid: String,
    /// DH-HMAC-CHAP host key (sys.conf).
    pub hostkey: Option<String>,
}

/// What every I/O controller task shares.
pub struct IocContext {
    /// The kernel.
    pub kernel: Arc<dyn FabricKernel>,
    /// The host identity.
    pub host: Arc<HostInfo>,
    /// The current configuration.
    pub config: watch::Receiver<Arc<StacdConfig>>,
    /// Connect options the kernel accepts.
    pub supported: Arc<SupportedOptions>,
    /// Where notices go.
    pub notices: mpsc::UnboundedSender<Notice>,
}

impl std::fmt::Debug for IocContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IocContext")
            .field("host", &self.host)
            .finish_non_exhaustive()
    }
}

/// A running I/O controller task.
pub type IocHandle = stas_common::daemon::TaskHandle<IocStatus, Command>;

/// A way to send commands to an I/O controller task from elsewhere.
pub type IocCommander = stas_common::daemon::Commander<Command>;

pub use stas_common::daemon::lock;

impl stas_common::daemon::ControllerStatus for IocStatus {
    fn tid(&self) -> &Tid {
        &self.tid
    }
}

/// Starts a task for `tid`.
pub fn spawn(
    ctx: Arc<IocContext>,
    id: u64,
    tid: Tid,
    source: Source,
    dlpe: Option<DiscoveryLogEntry>,
) -> IocHandle {
    let status = Arc::new(Mutex::new(IocStatus {
        tid: tid.clone(),
        source,
        device: None,
        connect_attempts: 0,
        stage: Stage::Waiting,
        dlpe,
        listed_by: None,
        last_error: None,
        retry_in: None,
    }));
    let (tx, rx) = mpsc::unbounded_channel();
    let ioc = Ioc {
        ctx,
        id,
        tid,
        status: status.clone(),
        rx,
        rx_closed: false,
        stop: None,
        removed: false,
        retry_now: false,
    };
    let task = tokio::spawn(ioc.run());
    stas_common::daemon::TaskHandle::new(id, status, tx, task)
}

struct Ioc {
    ctx: Arc<IocContext>,
    id: u64,
    tid: Tid,
    status: Arc<Mutex<IocStatus>>,
    rx: mpsc::UnboundedReceiver<Command>,
    rx_closed: bool,
    stop: Option<bool>,
    removed: bool,
    /// Attempt now instead of waiting for the retry timer.
    retry_now: bool,
}

fn parse_override<T: std::str::FromStr>(tid: &Tid, key: &str) -> Option<T> {
    tid.cfg.get(key).and_then(|v| v.parse().ok())
}

impl Ioc {
    fn set(&self, f: impl FnOnce(&mut IocStatus)) {
        f(&mut lock(&self.status));
    }

    fn note(&mut self, cmd: Option<Command>) {
        match cmd {
            Some(Command::Dlpe(e)) => {
                let mut s = lock(&self.status);
                let ncc_before = s.ncc();
                s.dlpe = Some(*e);
                // NCC lifted while not connected: start over at once (§7.6).
                if ncc_before && !s.ncc() && s.stage != Stage::Connected {
                    s.connect_attempts = 0;
                    self.retry_now = true;
                }
            }
            Some(Command::Removed) => self.removed = true,
            Some(Command::Reload) => {
                if lock(&self.status).stage == Stage::GaveUp {
                    self.retry_now = true;
                }
            }
            // The first stop decides: shutdown must not turn a pending
            // disconnect into a keep.
            Some(Command::Stop { keep_connection }) => {
                self.stop.get_or_insert(keep_connection);
            }
            None => {
                // The service dropped us without a word: leave the kernel as it is.
                self.rx_closed = true;
                self.stop.get_or_insert(true);
            }
        }
    }

    /// Runs a kernel call on the blocking pool, taking commands meanwhile.
    async fn blocking<T: Send + 'static>(
        &mut self,
        f: impl FnOnce(&dyn FabricKernel) -> Result<T, KernelError> + Send + 'static,
    ) -> Result<T, String> {
        let kernel = self.ctx.kernel.clone();
        let mut job = tokio::task::spawn_blocking(move || f(&*kernel).map_err(|e| e.to_string()));
        loop {
            tokio::select! {
                r = &mut job => return r.unwrap_or_else(|e| Err(format!("kernel worker failed: {e}"))),
                cmd = self.rx.recv(), if !self.rx_closed => self.note(cmd),
            }
        }
    }

    /// Waits for a command that needs attention, at most `limit`.
    async fn wait(&mut self, limit: Option<Duration>) {
        let sleep = tokio::time::sleep(limit.unwrap_or(Duration::MAX));
        tokio::pin!(sleep);
        while !(self.stop.is_some() || self.removed || self.retry_now || self.rx_closed) {
            tokio::select! {
                () = &mut sleep, if limit.is_some() => return,
                cmd = self.rx.recv() => self.note(cmd),
            }
        }
    }

    /// Whether to try again after a failure (§7.6).
    fn keep_trying(&self) -> bool {
        let s = lock(&self.status);
        let limit = self.ctx.config.borrow().connect_attempts_on_ncc;
        !(s.ncc() && limit != 0 && s.connect_attempts >= limit)
    }

    async fn run(mut self) {
        let mut device: Option<String> = None;
        while self.stop.is_none() {
            self.retry_now = false;
            match self.connect().await {
                Ok(None) => {
                    log::debug!(
                        "{} - the audited connection is gone; nothing to adopt",
                        self.tid
                    );
                    self.stop.get_or_insert(true);
                }
                Ok(Some(dev)) => {
                    device = Some(dev.clone());
                    self.wait(None).await;
                    if self.stop.is_some() {
                        break;
                    }
                    if std::mem::take(&mut self.removed) {
                        log::info!("{} | {dev} - Received \"remove\" event", self.tid);
                        device = None;
                        self.set(|s| {
                            s.device = None;
                            s.connect_attempts = 0;
                        });
                        self.backoff(FAST_RETRY).await;
                    }
                }
                Err(e) => {
                    let attempts = lock(&self.status).connect_attempts;
                    if attempts == 2 {
                        log::error!("{} Failed to connect to controller. {e}", self.tid);
                    } else {
                        log::debug!("{} connect attempt {attempts} failed: {e}", self.tid);
                    }
                    self.set(|s| s.last_error = Some(e));
                    if self.keep_trying() {
                        let delay = if attempts <= 1 {
                            FAST_RETRY
                        } else {
                            SLOW_RETRY
                        };
                        self.backoff(delay).await;
                    } else {
                        log::info!(
                            "{} - NCC set and {attempts} connect attempts failed; waiting for the log page entry to change",
                            self.tid
                        );
                        self.set(|s| s.stage = Stage::GaveUp);
                        self.wait(None).await;
                    }
                }
            }
        }
        let keep = self.stop.unwrap_or(true);
        self.set(|s| s.stage = Stage::Stopping);
        if let (Some(dev), false) = (device, keep) {
            log::info!("{} | {dev} - Disconnect initiated", self.tid);
            let d = dev.clone();
            match self.blocking(move |k| k.disconnect(&d)).await {
                Ok(()) => log::info!("{} | {dev} - Disconnected", self.tid),
                Err(e) => log::warn!("{} | {dev} - Disconnect failed: {e}", self.tid),
            }
        }
        self.set(|s| {
            s.stage = Stage::Stopped;
            s.device = None;
        });
        let _ = self.ctx.notices.send(Notice::Stopped {
            tid: self.tid.clone(),
            id: self.id,
        });
    }

    /// Waits `delay` before the next attempt, or less if told to.
    async fn backoff(&mut self, delay: Duration) {
        self.set(|s| {
            s.stage = Stage::Waiting;
            s.retry_in = Some(delay);
        });
        self.removed = false;
        self.wait(Some(delay)).await;
        self.removed = false;
        self.set(|s| s.retry_in = None);
    }

    /// Adopts a matching kernel connection, or makes one. An audited
    /// controller only adopts: the connection the audit saw may be gone by
    /// now (being disposed of), and then there is nothing to do (`None`).
    async fn connect(&mut self) -> Result<Option<String>, String> {
        self.set(|s| {
            s.connect_attempts = s.connect_attempts.saturating_add(1);
            s.stage = Stage::Connecting;
        });
        let tid = self.tid.clone();
        let opts = self.connect_options();
        let supported = self.ctx.supported.clone();
        let adopt_only = lock(&self.status).source == Source::Audit;
        let found = self
            .blocking(move |k| {
                let ifaces = k.interfaces();
                let found: Vec<ExistingController> = k
                    .controllers()?
                    .iter()
                    .filter(|c| {
                        !c.state
                            .as_deref()
                            .unwrap_or_default()
                            .starts_with("deleting")
                    })
                    .map(existing)
                    .collect();
                if let Some(c) = matching::find_ioc(&found, &tid, &ifaces) {
                    return Ok(Some((c.name.clone(), true)));
                }
                if adopt_only {
                    return Ok(None);
                }
                k.connect(&opts, &supported)
                    .map(|c| Some((c.name(), false)))
            })
            .await?;
        let Some((dev, adopted)) = found else {
            return Ok(None);
        };
        log::info!(
            "{} | {dev} - Connection established!{}",
            self.tid,
            if adopted {
                " (existing connection adopted)"
            } else {
                ""
            }
        );
        self.set(|s| {
            s.device = Some(dev.clone());
            s.stage = Stage::Connected;
            s.connect_attempts = 0;
            s.last_error = None;
        });
        Ok(Some(dev))
    }

    /// The connect options of §5.4: the per-controller override, else the
    /// `[Global]` value.
    fn connect_options(&self) -> ConnectOptions {
        let cfg = self.ctx.config.borrow().clone();
        let g = &cfg.global;
        let t = &self.tid;
        let mut o = ConnectOptions::new(
            ControllerKind::Io,
            &t.transport,
            &t.subsysnqn,
            Some(t.traddr.as_str()).filter(|a| !a.is_empty()),
        );
        o.trsvcid = Some(t.trsvcid.clone()).filter(|s| !s.is_empty());
        o.host_traddr = Some(t.host_traddr.clone()).filter(|s| !s.is_empty());
        if !g.ignore_iface && self.ctx.supported.contains("host_iface") {
            o.host_iface = Some(t.host_iface.clone()).filter(|s| !s.is_empty());
        }
        o.hostnqn = Some(self.ctx.host.hostnqn.clone());
        o.hostid = Some(self.ctx.host.hostid.clone());
        o.keep_alive_tmo = parse_override(t, "kato").or(g.kato);
        o.reconnect_delay = parse_override(t, "reconnect-delay").or(g.reconnect_delay);
        o.ctrl_loss_tmo = parse_override(t, "ctrl-loss-tmo").or(g.ctrl_loss_tmo);
        o.queue_size = parse_override(t, "queue-size").or(g.queue_size);
        o.nr_io_queues = parse_override(t, "nr-io-queues").or(g.nr_io_queues);
        o.nr_write_queues = parse_override(t, "nr-write-queues").or(g.nr_write_queues);
        o.nr_poll_queues = parse_override(t, "nr-poll-queues").or(g.nr_poll_queues);
        o.disable_sqflow = parse_override(t, "disable-sqflow")
            .or(g.disable_sqflow)
            .unwrap_or(false);
        if t.transport == "tcp" {
            o.hdr_digest = parse_override(t, "hdr-digest").unwrap_or(g.hdr_digest);
            o.data_digest = parse_override(t, "data-digest").unwrap_or(g.data_digest);
        }
        o.dhchap_secret = t
            .cfg
            .get("dhchap-secret")
            .cloned()
            .or_else(|| self.ctx.host.hostkey.clone());
        o.dhchap_ctrl_secret = t.cfg.get("dhchap-ctrl-secret").cloned();
        o
    }
}
