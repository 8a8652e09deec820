//! One I/O controller as a task: adopt a matching kernel connection or make
//! one, retry on failure (3 s, then 60 s; bounded while the log page entry
//! says NCC, §7.6), reconnect after the kernel removed the device, and
//! disconnect when told to stop (docs/behaviour.md §5, §7).
//!
//! Kernel calls run on the blocking pool while the task keeps taking
//! commands and acts on them when the call returns: a stop that arrives
//! during a slow connect disconnects what that connect made, so a
//! disconnect never overtakes a connect in flight. That is what upstream's
//! terminator (§9) exists for, without its 30 s polling.

use std::sync::Arc;
use std::time::Duration;

use nvmf_kernel::fabrics::{ConnectOptions, ControllerKind};
use nvmf_proto::dlp::DiscoveryLogEntry;
use nvmf_proto::types::EFlags;
use stas_config::StacdConfig;
use stas_daemon::controller::{Change, TaskContext, TaskCore, TaskStatus};
use stas_daemon::inventory::Role;
use stas_daemon::kernel::FabricKernel;
use stas_daemon::task::{retry_delay, TaskError};
use stas_tid::Tid;

pub use stas_daemon::task::{FAST_RETRY, SLOW_RETRY};

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

stas_daemon::stop_command!(Command);

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
pub type IocContext = TaskContext<dyn FabricKernel, Command, Arc<HostInfo>, StacdConfig, Notice>;

/// A running I/O controller task.
pub type IocHandle = stas_daemon::TaskHandle<IocStatus, Command>;

pub use stas_daemon::lock;

impl stas_daemon::ControllerStatus for IocStatus {
    fn tid(&self) -> &Tid {
        &self.tid
    }
}

impl TaskStatus for IocStatus {
    stas_daemon::status_slots!();

    fn show(&mut self, change: Change) {
        match change {
            Change::Connecting => self.stage = Stage::Connecting,
            Change::Bound => self.stage = Stage::Connected,
            Change::Released => {}
            Change::Stopped => {
                self.device = None;
                self.stage = Stage::Stopped;
            }
        }
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
    let status = IocStatus {
        tid: tid.clone(),
        source,
        device: None,
        connect_attempts: 0,
        stage: Stage::Waiting,
        dlpe,
        listed_by: None,
        last_error: None,
        retry_in: None,
    };
    let shared = ctx.shared.clone();
    TaskCore::spawn(id, tid, status, shared, |core| {
        Ioc {
            ctx,
            core,
            removed: false,
            retry_now: false,
        }
        .run()
    })
}

struct Ioc {
    ctx: Arc<IocContext>,
    core: TaskCore<dyn FabricKernel, Command, IocStatus>,
    removed: bool,
    /// Attempt now instead of waiting for the retry timer.
    retry_now: bool,
}

impl Ioc {
    fn set(&self, f: impl FnOnce(&mut IocStatus)) {
        self.core.set(f);
    }

    /// Applies the commands that arrived (stops are the inbox's).
    fn apply(&mut self) {
        let cmds: Vec<Command> = self.core.inbox.take().collect();
        for cmd in cmds {
            match cmd {
                Command::Dlpe(e) => {
                    let mut s = lock(&self.core.status);
                    let ncc_before = s.ncc();
                    s.dlpe = Some(*e);
                    // NCC lifted while not connected: start over at once (§7.6).
                    if ncc_before && !s.ncc() && s.stage != Stage::Connected {
                        s.connect_attempts = 0;
                        self.retry_now = true;
                    }
                }
                Command::Removed => self.removed = true,
                Command::Reload => {
                    if lock(&self.core.status).stage == Stage::GaveUp {
                        self.retry_now = true;
                    }
                }
                Command::Stop { .. } => {}
            }
        }
    }

    /// Waits for a command that needs attention, at most `limit`.
    async fn wait(&mut self, limit: Option<Duration>) {
        let deadline = limit.map(|l| tokio::time::Instant::now() + l);
        loop {
            self.apply();
            if self.core.inbox.stopping() || self.removed || self.retry_now {
                return;
            }
            let left = deadline.map(|d| d.saturating_duration_since(tokio::time::Instant::now()));
            if left.is_some_and(|l| l.is_zero()) {
                return;
            }
            self.core.inbox.wait(left).await;
        }
    }

    /// Whether to try again after a failure (§7.6).
    fn keep_trying(&self) -> bool {
        let s = lock(&self.core.status);
        let limit = self.ctx.config.borrow().connect_attempts_on_ncc;
        !(s.ncc() && limit != 0 && s.connect_attempts >= limit)
    }

    async fn run(mut self) {
        let mut device: Option<String> = None;
        while !self.core.inbox.stopping() {
            self.retry_now = false;
            match self.connect().await {
                Ok(None) => {
                    if !self.core.inbox.stopping() {
                        log::debug!(
                            "{} - the audited connection is gone; nothing to adopt",
                            self.core.tid
                        );
                    }
                    break;
                }
                Ok(Some(dev)) => {
                    device = Some(dev.clone());
                    self.wait(None).await;
                    if self.core.inbox.stopping() {
                        break;
                    }
                    if std::mem::take(&mut self.removed) {
                        log::info!("{} | {dev} - Received \"remove\" event", self.core.tid);
                        device = None;
                        self.core.release(&dev);
                        self.backoff(FAST_RETRY).await;
                    }
                }
                Err(e) => {
                    let attempts = self.core.connect_failed(&e);
                    if self.keep_trying() {
                        self.backoff(retry_delay(attempts)).await;
                    } else {
                        log::info!(
                            "{} - NCC set and {attempts} connect attempts failed; waiting for the log page entry to change",
                            self.core.tid
                        );
                        self.set(|s| s.stage = Stage::GaveUp);
                        self.wait(None).await;
                    }
                }
            }
        }
        self.apply();
        self.set(|s| s.stage = Stage::Stopping);
        if let (Some(dev), false) = (device, self.core.keeps_connection()) {
            self.core.disconnect(&dev).await;
        }
        self.core
            .finish(&self.ctx.notices, |tid, id| Notice::Stopped { tid, id });
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
    /// now (being disposed of), and then there is nothing to do (`None`,
    /// as when told to stop before the connect could start).
    async fn connect(&mut self) -> Result<Option<String>, TaskError> {
        let adopt_only = lock(&self.core.status).source == Source::Audit;
        let opts = self.connect_options();
        let bound = self.core.connect(Role::Io, opts, adopt_only).await;
        self.apply();
        bound
    }

    /// The connect options of §5.4: the per-controller override, else the
    /// `[Global]` value; DH-HMAC-CHAP from the controller, else sys.conf.
    fn connect_options(&self) -> ConnectOptions {
        let cfg = self.ctx.config.borrow().clone();
        let host = &self.ctx.host;
        let mut o =
            self.core
                .connect_options(ControllerKind::Io, &cfg.global, &host.hostnqn, &host.hostid);
        o.dhchap_secret = self
            .core
            .tid
            .cfg
            .get("dhchap-secret")
            .cloned()
            .or_else(|| host.hostkey.clone());
        o.dhchap_ctrl_secret = self.core.tid.cfg.get("dhchap-ctrl-secret").cloned();
        o
    }
}
