//! The daemon framework stafd and stacd run on, one implementation each:
//!
//! | module | what |
//! |---|---|
//! | this page | process plumbing: the runtime, the start-up checks with upstream's messages, `--version`, `--check-config`, the signals a daemon reacts to |
//! | [`launch`] | a daemon's start: the options both take, the start-up checks, the configuration read and re-read |
//! | [`sim`] | the simulated kernel of unit tests and `--sim` |
//! | [`controller`] | the core of a controller task: connect and bind, report failures, end |
//! | [`task`] | the controller-task base: commands, blocking kernel calls off the loop, the connect gate, stop after the call in flight |
//! | [`inventory`] | the controller inventory: one sysfs scan, then kept current by uevents and the daemon's own connects |
//! | [`kernel`] | the kernel operations both daemons make (connect, list, delete), as a trait with a fake-able seam |
//! | [`lkc`] | the last-known-configuration file that survives daemon restarts |
//! | [`logging`] | stderr logging with syslog priorities for journald, `tron` at run time |
//! | [`notify`] | `sd_notify` without libsystemd |
//! | [`dbus`] | the shapes both D-Bus APIs share: ordered dicts, Python's text forms, secrets |
//! | [`dlpe`] | discovery log entries in nvme-stas's DLPE dict form and back |
//!
//! Nothing here makes syscalls of its own: the kernel and the network are
//! reached through nvmf-kernel (the kernel behind [`kernel::FabricKernel`]).
//!
//! Bare § numbers refer to docs/behaviour.md and docs/upstream.md;
//! other documents are named where they are cited.

pub mod controller;
pub mod dbus;
pub mod dlpe;
pub mod inventory;
pub mod kernel;
pub mod launch;
pub mod lkc;
pub mod logging;
pub mod notify;
pub mod sim;
pub mod task;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

use std::fmt::Display;
use std::path::Path;
use std::process::ExitCode;

use nvmf_kernel::KernelPaths;
use tokio::signal::unix::{signal, Signal, SignalKind};

use stas_config::{self as config, ConfigError, Diagnostic, SysConf};

/// One thread for the logic, a bounded pool for blocking kernel calls.
pub fn runtime() -> Option<tokio::runtime::Runtime> {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        // Room for the connect gate's width in connects and as many
        // disconnects and reads beside them.
        .max_blocking_threads(2 * task::DEFAULT_CONNECTS_IN_FLIGHT)
        .build()
    {
        Ok(rt) => Some(rt),
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            None
        }
    }
}

/// `-v`: upstream prints the nvme-stas and libnvme versions.
pub fn print_version() {
    println!("nvme-stas {} (stas, pure Rust)", env!("CARGO_PKG_VERSION"));
    println!("libnvme none (not needed)");
}

/// Root and the fabrics device, with upstream's messages; `Err` is the
/// exit status.
pub fn startup_checks(prog: &str, paths: &KernelPaths) -> Result<(), ExitCode> {
    if !nvmf_kernel::host::is_root() {
        eprintln!("Permission denied. You need root privileges to run {prog}.");
        return Err(ExitCode::from(1));
    }
    if !paths.fabrics().exists() {
        eprintln!(
            "Fatal error: missing nvme-tcp kernel module: {} not found (try `modprobe nvme-tcp`)",
            paths.fabrics().display()
        );
        return Err(ExitCode::from(1));
    }
    Ok(())
}

/// Loads sys.conf, logging its diagnostics; `Err` is the exit status.
pub fn load_sysconf(path: &Path, nvme_dir: &Path) -> Result<SysConf, ExitCode> {
    match config::load_sysconf(path, nvme_dir) {
        Ok((s, diags)) => {
            for d in diags {
                log::warn!("{d}");
            }
            Ok(s)
        }
        Err(e) => {
            eprintln!("{e}");
            Err(ExitCode::from(1))
        }
    }
}

/// `--check-config`: checks sys.conf and the daemon's file, prints the
/// effective configuration, and exits non-zero when anything is wrong
/// (like `sshd -t`).
pub fn check_config<C: Display>(
    sys_conf: &Path,
    nvme_dir: &Path,
    conf_file: &Path,
    load: impl Fn(&Path) -> Result<(C, Vec<Diagnostic>), ConfigError>,
) -> ExitCode {
    use std::fmt::Write;
    let mut ok = true;
    let mut out = String::new();
    match config::load_sysconf(sys_conf, nvme_dir) {
        Ok((s, diags)) => {
            for d in &diags {
                eprintln!("{d}");
            }
            // sys.conf's warnings fail the check like the daemon file's.
            ok &= diags.is_empty();
            let _ = writeln!(
                out,
                "# {}: host NQN {}, host ID {}",
                sys_conf.display(),
                s.hostnqn,
                s.hostid
            );
        }
        Err(e) => {
            eprintln!("{e}");
            ok = false;
        }
    }
    match load(conf_file) {
        Ok((cfg, diags)) => {
            for d in &diags {
                eprintln!("{d}");
            }
            ok &= diags.is_empty();
            let _ = writeln!(out, "# effective configuration of {}", conf_file.display());
            let _ = write!(out, "{cfg}");
        }
        Err(e) => {
            eprintln!("{e}");
            ok = false;
        }
    }
    // A reader that went away (`| head`) is not a configuration error.
    let _ = std::io::Write::write_all(&mut std::io::stdout().lock(), out.as_bytes());
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// SIGHUP (reload), SIGTERM and SIGINT (stop).
#[derive(Debug)]
pub struct ProcessSignals {
    /// SIGHUP.
    pub hup: Signal,
    /// SIGTERM.
    pub term: Signal,
    /// SIGINT.
    pub int: Signal,
}

impl ProcessSignals {
    /// Installs the handlers (inside a runtime).
    pub fn install() -> std::io::Result<Self> {
        Ok(Self {
            hup: signal(SignalKind::hangup())?,
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    /// The next SIGTERM or SIGINT.
    pub async fn stop(&mut self) {
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
    }

    /// The next signal: `true` for SIGHUP (reload), `false` for a stop.
    pub async fn next_is_reload(&mut self) -> bool {
        tokio::select! {
            _ = self.hup.recv() => true,
            _ = self.term.recv() => false,
            _ = self.int.recv() => false,
        }
    }
}

/// A simulation's start: polls `steady` until it holds (`true`) or SIGTERM
/// or SIGINT comes first (`false`); SIGHUP meanwhile is logged and ignored.
/// A stop must work before steady too: a simulation that never settles
/// (a bad address, say) must not outlive `timeout` or a test's kill.
pub async fn wait_steady_or_stop(
    signals: &mut ProcessSignals,
    mut steady: impl FnMut() -> bool,
) -> bool {
    let mut poll = tokio::time::interval(std::time::Duration::from_millis(5));
    loop {
        tokio::select! {
            _ = poll.tick() => if steady() { return true },
            _ = signals.hup.recv() => log::info!("SIGHUP: nothing to reload in a simulation"),
            _ = signals.term.recv() => return false,
            _ = signals.int.recv() => return false,
        }
    }
}

/// The uevent socket's receive buffer: `STAS_UEVENT_RCVBUF` (bytes, at
/// least 4 KiB) if set, else [`nvmf_kernel::uevent::DEFAULT_RCVBUF`]. A small
/// one lets the lab overrun it on purpose, to prove the lost-events resync.
pub fn uevent_rcvbuf() -> usize {
    std::env::var("STAS_UEVENT_RCVBUF")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .map_or(nvmf_kernel::uevent::DEFAULT_RCVBUF, |n| n.max(4096))
}

/// Sends every kernel uevent (or news that some were lost) to `deliver`,
/// for the life of the process; a failing socket is retried each second.
pub fn forward_uevents(
    mut uevents: nvmf_kernel::uevent::UeventStream,
    deliver: impl Fn(nvmf_kernel::uevent::UeventItem) + Send + 'static,
) {
    tokio::spawn(async move {
        loop {
            match uevents.next().await {
                Ok(item) => deliver(item),
                Err(e) => {
                    log::error!("kernel events: {e}");
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                }
            }
        }
    });
}

/// A daemon's life after start-up (§6.11, §6.12): READY=1; each SIGHUP runs
/// `reload` between RELOADING=1 and READY=1; SIGTERM/SIGINT (or the
/// service ending, an error) end the loop; then STOPPING=1, `stop` (which
/// asks the service to shut down) and a wait for it, which a second signal
/// cuts short.
pub async fn serve<T: std::fmt::Debug>(
    prog: &str,
    mut service: tokio::task::JoinHandle<T>,
    mut reload: impl FnMut(),
    stop: impl FnOnce(),
) -> ExitCode {
    let Ok(mut signals) = ProcessSignals::install() else {
        eprintln!("cannot install signal handlers");
        return ExitCode::from(1);
    };
    let _ = crate::notify::notify("READY=1");
    log::info!("{prog} started");
    loop {
        tokio::select! {
            is_reload = signals.next_is_reload() => {
                if !is_reload {
                    break;
                }
                let _ = crate::notify::notify("RELOADING=1");
                reload();
                let _ = crate::notify::notify("READY=1");
            }
            r = &mut service => {
                log::error!("service ended unexpectedly: {r:?}");
                return ExitCode::from(1);
            }
        }
    }
    let _ = crate::notify::notify("STOPPING=1");
    stop();
    tokio::select! {
        r = &mut service => {
            log::info!("{prog} stopped ({r:?})");
            ExitCode::SUCCESS
        }
        () = signals.stop() => ExitCode::from(1),
    }
}

/// Locks a mutex, recovering it if a panicking thread poisoned the lock
/// (the daemons keep plain values behind their locks, always consistent).
pub fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A status that belongs to one controller.
pub trait ControllerStatus: Clone {
    /// The controller's transport ID.
    fn tid(&self) -> &stas_tid::Tid;
}

/// The statuses of a daemon's controller tasks, each published by its task,
/// as the service's current list; what the D-Bus objects read.
#[derive(Debug)]
pub struct StatusBoard<S> {
    list: std::sync::Arc<std::sync::Mutex<Vec<std::sync::Arc<std::sync::Mutex<S>>>>>,
    published: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl<S> Clone for StatusBoard<S> {
    fn clone(&self) -> Self {
        Self {
            list: self.list.clone(),
            published: self.published.clone(),
        }
    }
}

impl<S> Default for StatusBoard<S> {
    fn default() -> Self {
        Self {
            list: std::sync::Arc::default(),
            published: std::sync::Arc::default(),
        }
    }
}

impl<S> StatusBoard<S> {
    /// Whether the service has published its list at least once (restored
    /// or reconciled): before that, "no controllers" means "not known yet".
    pub fn published(&self) -> bool {
        self.published.load(std::sync::atomic::Ordering::Acquire)
    }
}

impl<S: ControllerStatus> StatusBoard<S> {
    /// A snapshot of every status, in TID order.
    pub fn snapshot(&self) -> Vec<S> {
        let list = lock(&self.list).clone();
        let mut v: Vec<S> = list.iter().map(|s| lock(s).clone()).collect();
        v.sort_by(|a, b| a.tid().cmp(b.tid()));
        v
    }

    /// Replaces the list (after a reconciliation).
    pub fn set(&self, statuses: Vec<std::sync::Arc<std::sync::Mutex<S>>>) {
        *lock(&self.list) = statuses;
        self.published
            .store(true, std::sync::atomic::Ordering::Release);
    }
}

/// A running controller task: its id, the status it publishes, its
/// command queue and its join handle.
#[derive(Debug)]
pub struct TaskHandle<S, C> {
    /// Unique id of this task (a TID may be re-created while an old task
    /// drains).
    pub id: u64,
    /// Its published status.
    pub status: std::sync::Arc<std::sync::Mutex<S>>,
    tx: tokio::sync::mpsc::UnboundedSender<C>,
    /// The task.
    pub task: tokio::task::JoinHandle<()>,
}

/// A way to send commands to a task from elsewhere.
#[derive(Debug)]
pub struct Commander<C>(tokio::sync::mpsc::UnboundedSender<C>);

impl<C> Clone for Commander<C> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<C> Commander<C> {
    /// A commander over a task's queue.
    pub fn new(tx: tokio::sync::mpsc::UnboundedSender<C>) -> Self {
        Self(tx)
    }

    /// Sends a command (ignored if the task has ended).
    pub fn send(&self, cmd: C) {
        let _ = self.0.send(cmd);
    }
}

impl<S: Clone, C> TaskHandle<S, C> {
    /// The handle of a task just spawned.
    pub fn new(
        id: u64,
        status: std::sync::Arc<std::sync::Mutex<S>>,
        tx: tokio::sync::mpsc::UnboundedSender<C>,
        task: tokio::task::JoinHandle<()>,
    ) -> Self {
        Self {
            id,
            status,
            tx,
            task,
        }
    }

    /// Sends a command (ignored if the task has ended).
    pub fn send(&self, cmd: C) {
        let _ = self.tx.send(cmd);
    }

    /// A sender for this task's commands.
    pub fn commander(&self) -> Commander<C> {
        Commander(self.tx.clone())
    }

    /// A snapshot of the status.
    pub fn snapshot(&self) -> S {
        lock(&self.status).clone()
    }
}
