//! What a controller task is made of, in stafd (one task per discovery
//! controller) and stacd (one per I/O controller) alike: its inbox of
//! commands with one stop rule, kernel calls on the blocking pool that
//! never hold up the commands, the bounded and cancellable connect (adopt
//! what the inventory already has, else connect), the disconnect, the retry
//! schedule and the connect options common to both.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use nvmf_kernel::fabrics::{ConnectOptions, ControllerKind, SupportedOptions};
use nvmf_kernel::KernelError;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};

use super::inventory::{Inventory, Role};
use crate::kernel::FabricKernel;
use stas_config::GlobalOptions;
use stas_tid::Tid;

/// Retry after the first failed connect, and after the device went away.
pub const FAST_RETRY: Duration = Duration::from_secs(3);
/// Retry after later failed connects.
pub const SLOW_RETRY: Duration = Duration::from_secs(60);

/// The wait before connect attempt `attempts + 1` after a failure (§7.6):
/// 3 s after the first, then 60 s.
pub fn retry_delay(attempts: u32) -> Duration {
    if attempts <= 1 {
        FAST_RETRY
    } else {
        SLOW_RETRY
    }
}

/// Connects in flight at once, by default. The kernel serialises connects
/// (one mutex around the fabrics device), so more in flight only overlap
/// our own work with the kernel's; measured in the lab with 400
/// subsystems, 8 beat 4 and 1 (scripts/bench). The runtime's blocking pool
/// is twice as large, so disconnects and reads never wait for connects.
pub const DEFAULT_CONNECTS_IN_FLIGHT: usize = 8;

/// Bounds the connects in flight across a daemon's tasks. A task waits for
/// a permit while still taking commands, so a connect not yet started is
/// dropped when its controller stops being wanted, and a shutdown with many
/// connects queued ends once those in flight have returned.
#[derive(Debug, Clone)]
pub struct ConnectGate(Arc<Semaphore>);

impl ConnectGate {
    /// At most `width` connects in flight (at least one).
    pub fn new(width: usize) -> Self {
        Self(Arc::new(Semaphore::new(width.max(1))))
    }

    /// `STAS_CONNECTS_IN_FLIGHT` if set to a number, else the default; at
    /// most the blocking pool's size less four threads kept for the rest.
    pub fn from_env() -> Self {
        let width = std::env::var("STAS_CONNECTS_IN_FLIGHT")
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(DEFAULT_CONNECTS_IN_FLIGHT);
        Self::new(width.min(2 * DEFAULT_CONNECTS_IN_FLIGHT - 4))
    }
}

impl Default for ConnectGate {
    fn default() -> Self {
        Self::new(DEFAULT_CONNECTS_IN_FLIGHT)
    }
}

/// A kernel call of a controller task that did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    /// The kernel refused or failed the call.
    #[error(transparent)]
    Kernel(#[from] KernelError),
    /// The worker thread running the call died (a panic in the call).
    #[error("kernel worker failed: {0}")]
    Worker(String),
}

impl TaskError {
    /// The NVMe status the controller answered with, when it answered.
    pub fn nvme_status(&self) -> Option<nvmf_kernel::NvmeStatus> {
        match self {
            Self::Kernel(e) => e.nvme_status(),
            Self::Worker(_) => None,
        }
    }
}

/// A command that may tell a task to stop.
pub trait TaskCommand: Send + 'static {
    /// `Some(keep_connection)` if this command stops the task.
    fn stop(&self) -> Option<bool>;
}

/// Implements [`TaskCommand`] for a daemon's command enum whose variant
/// `Stop { keep_connection }` stops the task.
#[macro_export]
macro_rules! stop_command {
    ($command:ty) => {
        impl $crate::task::TaskCommand for $command {
            fn stop(&self) -> Option<bool> {
                match self {
                    Self::Stop { keep_connection } => Some(*keep_connection),
                    _ => None,
                }
            }
        }
    };
}

/// A task's commands: stops are taken as they arrive (the first one
/// decides whether the connection is kept: a removal decided before a
/// shutdown still disconnects), the rest queue for the task to apply.
#[derive(Debug)]
pub struct Inbox<C> {
    rx: mpsc::UnboundedReceiver<C>,
    closed: bool,
    stop: Option<bool>,
    queue: VecDeque<C>,
}

impl<C: TaskCommand> Inbox<C> {
    /// An inbox over `rx`.
    pub fn new(rx: mpsc::UnboundedReceiver<C>) -> Self {
        Self {
            rx,
            closed: false,
            stop: None,
            queue: VecDeque::new(),
        }
    }

    /// `Some(keep_connection)` once told to stop.
    pub fn stop(&self) -> Option<bool> {
        self.stop
    }

    /// Whether the task must stop.
    pub fn stopping(&self) -> bool {
        self.stop.is_some()
    }

    fn accept(&mut self, cmd: Option<C>) {
        match cmd {
            Some(c) => match c.stop() {
                Some(keep) => {
                    self.stop.get_or_insert(keep);
                }
                None => self.queue.push_back(c),
            },
            None => {
                // The service dropped us without a word: leave the kernel as it is.
                self.closed = true;
                self.stop.get_or_insert(true);
            }
        }
    }

    /// The commands that arrived and are not applied yet.
    pub fn take(&mut self) -> impl Iterator<Item = C> + '_ {
        self.queue.drain(..)
    }

    /// Waits until a command arrives (queued, or a stop), at most `limit`.
    /// Returns at once if one is already queued or the task must stop.
    pub async fn wait(&mut self, limit: Option<Duration>) {
        if !self.queue.is_empty() || self.stopping() {
            return;
        }
        let sleep = tokio::time::sleep(limit.unwrap_or(Duration::MAX));
        tokio::pin!(sleep);
        tokio::select! {
            () = &mut sleep, if limit.is_some() => {}
            cmd = self.rx.recv(), if !self.closed => self.accept(cmd),
        }
    }

    /// Runs a kernel call on the blocking pool, taking commands meanwhile
    /// (they act when it returns: a disconnect never overtakes it).
    pub async fn blocking<K, T>(
        &mut self,
        kernel: &Arc<K>,
        f: impl FnOnce(&K) -> Result<T, KernelError> + Send + 'static,
    ) -> Result<T, TaskError>
    where
        K: ?Sized + Send + Sync + 'static,
        T: Send + 'static,
    {
        let kernel = kernel.clone();
        let mut job = tokio::task::spawn_blocking(move || f(&*kernel));
        loop {
            tokio::select! {
                r = &mut job => {
                    return match r {
                        Ok(r) => r.map_err(TaskError::from),
                        Err(e) => Err(TaskError::Worker(e.to_string())),
                    };
                }
                cmd = self.rx.recv(), if !self.closed => self.accept(cmd),
            }
        }
    }

    /// A connect permit from `gate`, taking commands while waiting; None if
    /// told to stop first (the connect is dropped before it started).
    pub async fn permit(&mut self, gate: &ConnectGate) -> Option<OwnedSemaphorePermit> {
        let acquire = gate.0.clone().acquire_owned();
        tokio::pin!(acquire);
        while !self.stopping() {
            tokio::select! {
                p = &mut acquire => return p.ok(),
                cmd = self.rx.recv(), if !self.closed => self.accept(cmd),
            }
        }
        None
    }
}

/// How a task came to have its kernel connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bound {
    /// The kernel device, `nvmeN`.
    pub device: String,
    /// Whether an existing connection was adopted.
    pub adopted: bool,
}

/// What a connect needs besides the options.
#[derive(Debug)]
pub struct Fabric<K: ?Sized> {
    /// The kernel.
    pub kernel: Arc<K>,
    /// The controllers the kernel has.
    pub inventory: Arc<Inventory>,
    /// The bound on connects in flight.
    pub gate: ConnectGate,
}

impl<K: ?Sized> Clone for Fabric<K> {
    fn clone(&self) -> Self {
        Self {
            kernel: self.kernel.clone(),
            inventory: self.inventory.clone(),
            gate: self.gate.clone(),
        }
    }
}

/// Adopts the kernel connection that already serves `tid`, else (unless
/// `adopt_only`) connects with `opts` once `gate` lets it start, looking
/// once more then (someone may have connected it meanwhile). Each step is
/// one job on the blocking pool. `Ok(None)`: nothing to adopt, or told to
/// stop before the connect could start. Adopting needs no permit, so an
/// audit's tasks bind their connections (and can dispose of them) however
/// many connects are queued.
pub async fn adopt_or_connect<K, C>(
    inbox: &mut Inbox<C>,
    fabric: &Fabric<K>,
    role: Role,
    tid: &Tid,
    opts: ConnectOptions,
    supported: Arc<SupportedOptions>,
    adopt_only: bool,
) -> Result<Option<Bound>, TaskError>
where
    K: FabricKernel + ?Sized,
    C: TaskCommand,
{
    let adopted = |device| {
        Some(Bound {
            device,
            adopted: true,
        })
    };
    let (inventory, t) = (fabric.inventory.clone(), tid.clone());
    let found = inbox
        .blocking(&fabric.kernel, move |k| inventory.find(k, role, &t))
        .await?;
    if let Some(device) = found {
        return Ok(adopted(device));
    }
    if adopt_only {
        return Ok(None);
    }
    let Some(permit) = inbox.permit(&fabric.gate).await else {
        return Ok(None);
    };
    let (inventory, tid) = (fabric.inventory.clone(), tid.clone());
    inbox
        .blocking(&fabric.kernel, move |k| {
            let _permit = permit;
            if let Some(device) = inventory.find(k, role, &tid)? {
                return Ok(adopted(device));
            }
            let device = k.connect(&opts, &supported)?.name();
            inventory.note_connected(k, &device);
            Ok(Some(Bound {
                device,
                adopted: false,
            }))
        })
        .await
}

/// Deletes `device`, telling the inventory it is going first so nobody
/// adopts it meanwhile.
pub async fn disconnect<K, C>(
    inbox: &mut Inbox<C>,
    fabric: &Fabric<K>,
    device: &str,
) -> Result<(), TaskError>
where
    K: FabricKernel + ?Sized,
    C: TaskCommand,
{
    let (inventory, d) = (fabric.inventory.clone(), device.to_owned());
    inventory.note_deleting(&d);
    inbox
        .blocking(&fabric.kernel, move |k| {
            let r = k.disconnect(&d);
            if r.is_ok() {
                inventory.note_deleted(&d);
            }
            r
        })
        .await
}

/// The connect options both kinds of controller share (§5.4): the address
/// and host side of `tid`, the host identity, and each option from the
/// per-controller override else `[Global]`; queue options for I/O
/// controllers only.
pub fn connect_options(
    kind: ControllerKind,
    tid: &Tid,
    g: &GlobalOptions,
    supported: &SupportedOptions,
    hostnqn: &str,
    hostid: &str,
) -> ConnectOptions {
    let t = tid;
    let given = |s: &str| Some(s.to_owned()).filter(|s| !s.is_empty());
    let mut o = ConnectOptions::new(
        kind,
        &t.transport,
        &t.subsysnqn,
        Some(t.traddr.as_str()).filter(|a| !a.is_empty()),
    );
    o.trsvcid = given(&t.trsvcid);
    o.host_traddr = given(&t.host_traddr);
    if !g.ignore_iface && supported.contains("host_iface") {
        o.host_iface = given(&t.host_iface);
    }
    o.hostnqn = Some(hostnqn.to_owned());
    o.hostid = Some(hostid.to_owned());
    let ov = &t.overrides;
    o.keep_alive_tmo = ov.kato.or(g.kato);
    o.reconnect_delay = ov.reconnect_delay.or(g.reconnect_delay);
    o.ctrl_loss_tmo = ov.ctrl_loss_tmo.or(g.ctrl_loss_tmo);
    o.disable_sqflow = ov.disable_sqflow.or(g.disable_sqflow).unwrap_or(false);
    if t.transport == "tcp" {
        o.hdr_digest = ov.hdr_digest.unwrap_or(g.hdr_digest);
        o.data_digest = ov.data_digest.unwrap_or(g.data_digest);
    }
    if kind == ControllerKind::Io {
        o.queue_size = ov.queue_size.or(g.queue_size);
        o.nr_io_queues = ov.nr_io_queues.or(g.nr_io_queues);
        o.nr_write_queues = ov.nr_write_queues.or(g.nr_write_queues);
        o.nr_poll_queues = ov.nr_poll_queues.or(g.nr_poll_queues);
    }
    o
}

/// Which task holds which kernel device, written by the tasks as they bind
/// and unbind: the service routes a device's uevents with one lookup.
#[derive(Debug)]
pub struct Devices<C> {
    map: Arc<std::sync::Mutex<std::collections::HashMap<String, Holder<C>>>>,
}

/// The task holding a device.
#[derive(Debug)]
pub struct Holder<C> {
    /// The task's id.
    pub id: u64,
    /// Its controller.
    pub tid: Tid,
    /// Its commands.
    pub commander: super::Commander<C>,
}

impl<C> Clone for Holder<C> {
    fn clone(&self) -> Self {
        Self {
            id: self.id,
            tid: self.tid.clone(),
            commander: self.commander.clone(),
        }
    }
}

impl<C> Clone for Devices<C> {
    fn clone(&self) -> Self {
        Self {
            map: self.map.clone(),
        }
    }
}

impl<C> Default for Devices<C> {
    fn default() -> Self {
        Self {
            map: Arc::default(),
        }
    }
}

impl<C> Devices<C> {
    /// Task `holder` now holds the device `bound` names: logged with
    /// upstream's words and recorded for routing.
    pub fn established(&self, bound: &Bound, holder: Holder<C>) {
        log::info!(
            "{} | {} - Connection established!{}",
            holder.tid,
            bound.device,
            if bound.adopted {
                " (existing connection adopted)"
            } else {
                ""
            }
        );
        self.bind(&bound.device, holder);
    }

    /// Task `holder` now holds `device`.
    pub fn bind(&self, device: &str, holder: Holder<C>) {
        super::lock(&self.map).insert(device.to_owned(), holder);
    }

    /// Task `id` no longer holds `device` (a newer holder is left alone).
    pub fn unbind(&self, device: &str, id: u64) {
        let mut map = super::lock(&self.map);
        if map.get(device).is_some_and(|h| h.id == id) {
            map.remove(device);
        }
    }

    /// The task holding `device`.
    pub fn holder(&self, device: &str) -> Option<Holder<C>> {
        super::lock(&self.map).get(device).cloned()
    }
}

/// Tasks told to stop that have not ended yet (upstream's terminator), by
/// controller: a controller is not re-created while its old task drains.
#[derive(Debug)]
pub struct Draining<S, C> {
    tasks: std::collections::BTreeMap<(Tid, u64), super::TaskHandle<S, C>>,
}

impl<S, C> Default for Draining<S, C> {
    fn default() -> Self {
        Self {
            tasks: std::collections::BTreeMap::new(),
        }
    }
}

impl<S, C> Draining<S, C> {
    /// Task `handle` for `tid` was told to stop.
    pub fn push(&mut self, tid: Tid, handle: super::TaskHandle<S, C>) {
        self.tasks.insert((tid, handle.id), handle);
    }

    /// Task `id` for `tid` ended; whether it was draining.
    pub fn ended(&mut self, tid: &Tid, id: u64) -> bool {
        self.tasks.remove(&(tid.clone(), id)).is_some()
    }

    /// Whether an old task of `tid` is still draining.
    pub fn holds(&self, tid: &Tid) -> bool {
        self.tasks
            .range((tid.clone(), 0)..=(tid.clone(), u64::MAX))
            .next()
            .is_some()
    }

    /// Every draining task, for shutdown.
    pub fn take_all(&mut self) -> Vec<super::TaskHandle<S, C>> {
        std::mem::take(&mut self.tasks).into_values().collect()
    }
}
