//! The core of every controller task, stafd's discovery controllers and
//! stacd's I/O controllers alike: who it is, the status it publishes, its
//! inbox, the connect that adopts or connects and binds the device, how a
//! failed attempt is reported, and the end (disconnect unless the
//! connection is kept, unbind, tell the service). What differs between
//! the daemons (the pipeline after the connect, the retry policy) stays in
//! each daemon's task, built around this core.

use std::future::Future;
use std::sync::{Arc, Mutex};

use nvmf_kernel::fabrics::{ConnectOptions, SupportedOptions};
use nvmf_kernel::KernelError;
use stas_tid::Tid;
use tokio::sync::mpsc;

use crate::inventory::Role;
use crate::kernel::FabricKernel;
use crate::task::{self, Devices, Fabric, Holder, Inbox, TaskCommand, TaskError};
use crate::{lock, Commander, TaskHandle};

/// The fields of a task's status the core keeps.
#[derive(Debug)]
pub struct Slots<'a> {
    /// The kernel device (`nvmeN`) while bound.
    pub device: &'a mut Option<String>,
    /// Connect attempts since the last success.
    pub attempts: &'a mut u32,
    /// The last error, for debug output.
    pub error: &'a mut Option<String>,
}

/// A change of a task's connection, for the daemon to show in its status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// A connect attempt started.
    Connecting,
    /// The connect bound a device.
    Bound,
    /// The device went away or was given up.
    Released,
    /// The task ended.
    Stopped,
}

/// A task's published status, as the core updates it.
pub trait TaskStatus: Send + 'static {
    /// The fields the core keeps ([`status_slots!`](crate::status_slots)
    /// writes this for fields named `device`, `connect_attempts` and
    /// `last_error`).
    fn slots(&mut self) -> Slots<'_>;
    /// Shows `change` in the daemon's own terms (stage, flags).
    fn show(&mut self, change: Change);
}

/// Writes [`TaskStatus::slots`] for a status with fields `device`,
/// `connect_attempts` and `last_error`.
#[macro_export]
macro_rules! status_slots {
    () => {
        fn slots(&mut self) -> $crate::controller::Slots<'_> {
            $crate::controller::Slots {
                device: &mut self.device,
                attempts: &mut self.connect_attempts,
                error: &mut self.last_error,
            }
        }
    };
}

fn show_connecting(s: &mut impl TaskStatus) {
    let slots = s.slots();
    *slots.attempts = slots.attempts.saturating_add(1);
    s.show(Change::Connecting);
}

fn show_bound(s: &mut impl TaskStatus, device: String) {
    let slots = s.slots();
    *slots.device = Some(device);
    *slots.attempts = 0;
    *slots.error = None;
    s.show(Change::Bound);
}

fn show_released(s: &mut impl TaskStatus) {
    let slots = s.slots();
    *slots.device = None;
    *slots.attempts = 0;
    s.show(Change::Released);
}

/// What a connect needs that every task of a daemon shares.
#[derive(Debug)]
pub struct Shared<K: ?Sized, C> {
    /// The kernel, the controller inventory and the connect bound.
    pub fabric: Fabric<K>,
    /// Which task holds which kernel device.
    pub devices: Devices<C>,
    /// Connect options the kernel accepts.
    pub supported: Arc<SupportedOptions>,
}

impl<K: ?Sized, C> Shared<K, C> {
    /// Over `kernel`, with a new (empty) inventory and device table.
    pub fn new(
        kernel: Arc<K>,
        gate: crate::task::ConnectGate,
        supported: SupportedOptions,
    ) -> Self {
        Self {
            fabric: Fabric {
                kernel,
                inventory: Arc::new(crate::inventory::Inventory::new()),
                gate,
            },
            devices: Devices::default(),
            supported: Arc::new(supported),
        }
    }
}

impl<K: ?Sized, C> Clone for Shared<K, C> {
    fn clone(&self) -> Self {
        Self {
            fabric: self.fabric.clone(),
            devices: self.devices.clone(),
            supported: self.supported.clone(),
        }
    }
}

/// What every task of a daemon shares: the kernel side, the host
/// identity `H`, the current configuration `Cfg` and where notices `N` go.
pub struct TaskContext<K: ?Sized, C, H, Cfg, N> {
    /// The kernel, the device table, the options the kernel accepts.
    pub shared: Shared<K, C>,
    /// The host identity.
    pub host: H,
    /// The current configuration.
    pub config: tokio::sync::watch::Receiver<Arc<Cfg>>,
    /// Where notices go.
    pub notices: mpsc::UnboundedSender<N>,
}

impl<K: ?Sized, C, H: std::fmt::Debug, Cfg, N> std::fmt::Debug for TaskContext<K, C, H, Cfg, N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskContext")
            .field("host", &self.host)
            .finish_non_exhaustive()
    }
}

impl<K: ?Sized, C, H, Cfg, N> TaskContext<K, C, H, Cfg, N> {
    /// A context and the receiving end of its tasks' notices.
    pub fn open(
        shared: Shared<K, C>,
        host: H,
        config: tokio::sync::watch::Receiver<Arc<Cfg>>,
    ) -> (Arc<Self>, mpsc::UnboundedReceiver<N>) {
        let (notices, rx) = mpsc::unbounded_channel();
        let ctx = Self {
            shared,
            host,
            config,
            notices,
        };
        (Arc::new(ctx), rx)
    }
}

/// The core of one controller task.
#[derive(Debug)]
pub struct TaskCore<K: ?Sized, C, S> {
    /// Unique id of the task (a TID may be re-created while an old task drains).
    pub id: u64,
    /// The controller.
    pub tid: Tid,
    /// The status the task publishes.
    pub status: Arc<Mutex<S>>,
    /// Its commands.
    pub inbox: Inbox<C>,
    /// Its own command queue, for whoever routes its device's events.
    pub me: Commander<C>,
    /// The kernel and the daemon's device table.
    pub shared: Shared<K, C>,
}

impl<K, C, S> TaskCore<K, C, S>
where
    K: FabricKernel + ?Sized,
    C: TaskCommand,
    S: TaskStatus + Clone,
{
    /// Spawns `run` with a new core for `tid` publishing `status`; the
    /// handle is what the service keeps.
    pub fn spawn<F, Fut>(
        id: u64,
        tid: Tid,
        status: S,
        shared: Shared<K, C>,
        run: F,
    ) -> TaskHandle<S, C>
    where
        F: FnOnce(Self) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let status = Arc::new(Mutex::new(status));
        let (tx, rx) = mpsc::unbounded_channel();
        let core = Self {
            id,
            tid,
            status: status.clone(),
            inbox: Inbox::new(rx),
            me: Commander::new(tx.clone()),
            shared,
        };
        let task = tokio::spawn(run(core));
        TaskHandle::new(id, status, tx, task)
    }

    /// Changes the published status.
    pub fn set(&self, f: impl FnOnce(&mut S)) {
        f(&mut lock(&self.status));
    }

    /// Runs a kernel call on the blocking pool, taking commands meanwhile.
    pub async fn blocking<T: Send + 'static>(
        &mut self,
        f: impl FnOnce(&K) -> Result<T, KernelError> + Send + 'static,
    ) -> Result<T, TaskError> {
        self.inbox.blocking(&self.shared.fabric.kernel, f).await
    }

    /// Adopts the kernel connection that serves the controller, else
    /// (unless `adopt_only`) connects with `opts`, and binds the device to
    /// this task. `Ok(None)`: nothing to adopt, or told to stop before the
    /// connect could start.
    pub async fn connect(
        &mut self,
        role: Role,
        opts: ConnectOptions,
        adopt_only: bool,
    ) -> Result<Option<String>, TaskError> {
        self.set(show_connecting);
        let bound = task::adopt_or_connect(
            &mut self.inbox,
            &self.shared.fabric,
            role,
            &self.tid,
            opts,
            self.shared.supported.clone(),
            adopt_only,
        )
        .await?;
        let Some(bound) = bound else {
            return Ok(None);
        };
        self.shared.devices.established(
            &bound,
            Holder {
                id: self.id,
                tid: self.tid.clone(),
                commander: self.me.clone(),
            },
        );
        let device = bound.device;
        self.set(|s| show_bound(s, device.clone()));
        Ok(Some(device))
    }

    /// The connect options both kinds of controller share (§5.4), for
    /// this controller.
    pub fn connect_options(
        &self,
        kind: nvmf_kernel::fabrics::ControllerKind,
        global: &stas_config::GlobalOptions,
        hostnqn: &str,
        hostid: &str,
    ) -> ConnectOptions {
        task::connect_options(
            kind,
            &self.tid,
            global,
            &self.shared.supported,
            hostnqn,
            hostid,
        )
    }

    /// Gives up `device` (the kernel removed it, or the task disconnects
    /// it on purpose), so its events no longer reach this task.
    pub fn release(&self, device: &str) {
        self.shared.devices.unbind(device, self.id);
        self.set(show_released);
    }

    /// Reports a failed connect (an error at the second attempt, as
    /// upstream; debug otherwise) and returns the attempts made.
    pub fn connect_failed(&self, e: &TaskError) -> u32 {
        let attempts = *lock(&self.status).slots().attempts;
        if attempts == 2 {
            log::error!("{} Failed to connect to controller. {e}", self.tid);
        } else {
            log::debug!("{} connect attempt {attempts} failed: {e}", self.tid);
        }
        self.set(|s| *s.slots().error = Some(e.to_string()));
        attempts
    }

    /// Whether the connection stays when the task ends: the first stop
    /// command decides (a removal decided before a shutdown still
    /// disconnects); a task dropped without one leaves it.
    pub fn keeps_connection(&self) -> bool {
        self.inbox.stop().unwrap_or(true)
    }

    /// Deletes `device` (logged as upstream does).
    pub async fn disconnect(&mut self, device: &str) {
        log::info!("{} | {device} - Disconnect initiated", self.tid);
        match task::disconnect(&mut self.inbox, &self.shared.fabric, device).await {
            Ok(()) => log::info!("{} | {device} - Disconnected", self.tid),
            Err(e) => log::warn!("{} | {device} - Disconnect failed: {e}", self.tid),
        }
    }

    /// The end: unbinds the device, marks the status stopped and tells the
    /// service with `notice`.
    pub fn finish<N>(
        &self,
        notices: &mpsc::UnboundedSender<N>,
        notice: impl FnOnce(Tid, u64) -> N,
    ) {
        let device = lock(&self.status).slots().device.clone();
        if let Some(device) = device {
            self.shared.devices.unbind(&device, self.id);
        }
        self.set(|s| s.show(Change::Stopped));
        let _ = notices.send(notice(self.tid.clone(), self.id));
    }
}

/// A daemon's controller tasks: the running ones by TID (what this derefs
/// to), those told to stop that have not ended yet, and the view the D-Bus
/// layer reads.
#[derive(Debug)]
pub struct Controllers<S, C> {
    running: std::collections::BTreeMap<Tid, TaskHandle<S, C>>,
    /// Tasks told to stop that have not ended yet (upstream's terminator):
    /// their TID is not re-created until they have.
    pub draining: task::Draining<S, C>,
    next_id: u64,
    /// The statuses D-Bus reads.
    pub view: crate::StatusBoard<S>,
}

impl<S, C> Default for Controllers<S, C> {
    fn default() -> Self {
        Self {
            running: std::collections::BTreeMap::new(),
            draining: task::Draining::default(),
            next_id: 0,
            view: crate::StatusBoard::default(),
        }
    }
}

impl<S, C> std::ops::Deref for Controllers<S, C> {
    type Target = std::collections::BTreeMap<Tid, TaskHandle<S, C>>;
    fn deref(&self) -> &Self::Target {
        &self.running
    }
}

impl<S, C> std::ops::DerefMut for Controllers<S, C> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.running
    }
}

impl<S: crate::ControllerStatus, C> Controllers<S, C> {
    /// The id of the next task (a TID may be re-created while an old task
    /// drains; the id tells them apart).
    pub fn next_id(&mut self) -> u64 {
        self.next_id = self.next_id.wrapping_add(1);
        self.next_id
    }

    /// Shows the running tasks' statuses on the view.
    pub fn publish(&self) {
        self.view
            .set(self.running.values().map(|h| h.status.clone()).collect());
    }

    /// Shutdown: sends `stop` to every task, running or draining, and
    /// waits for them all.
    pub async fn stop_all(&mut self, stop: impl Fn() -> C) {
        let handles: Vec<TaskHandle<S, C>> = std::mem::take(&mut self.running)
            .into_values()
            .chain(self.draining.take_all())
            .collect();
        for h in &handles {
            h.send(stop());
        }
        for h in handles {
            let _ = h.task.await;
        }
    }
}

impl<'a, S, C> IntoIterator for &'a Controllers<S, C> {
    type Item = (&'a Tid, &'a TaskHandle<S, C>);
    type IntoIter = std::collections::btree_map::Iter<'a, Tid, TaskHandle<S, C>>;
    fn into_iter(self) -> Self::IntoIter {
        self.running.iter()
    }
}

/// How the rest of a daemon (signals, uevents, D-Bus) reaches its running
/// service: inputs `I` in, controller statuses `S` out.
#[derive(Debug)]
pub struct ServiceHandle<I, S> {
    tx: mpsc::UnboundedSender<I>,
    /// What the service knows, for D-Bus.
    pub view: crate::StatusBoard<S>,
}

impl<I, S> Clone for ServiceHandle<I, S> {
    fn clone(&self) -> Self {
        Self {
            tx: self.tx.clone(),
            view: self.view.clone(),
        }
    }
}

impl<I, S> ServiceHandle<I, S> {
    /// A handle showing `view`, and the receiving end of its inputs.
    pub fn open(view: crate::StatusBoard<S>) -> (Self, mpsc::UnboundedReceiver<I>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Self { tx, view }, rx)
    }

    /// Queues an input (dropped once the service has ended).
    pub fn send(&self, input: I) {
        let _ = self.tx.send(input);
    }
}

/// What a reconciliation wants of `tids`: valid addresses of an enabled
/// family (each rejection logged, §4.5), less the excluded ones (§3.9).
pub fn wanted(
    tids: Vec<Tid>,
    family: stas_config::IpFamily,
    excludes: &[stas_config::Cid],
) -> std::collections::BTreeSet<Tid> {
    let (valid, rejected) = stas_tid::filter_addresses(tids, family);
    for (_, why) in &rejected {
        if why.is_warning() {
            log::warn!("{why}");
        } else {
            log::debug!("{why}");
        }
    }
    stas_tid::remove_excluded(excludes, valid)
        .0
        .into_iter()
        .collect()
}
