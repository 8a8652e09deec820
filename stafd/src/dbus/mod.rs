//! stafd's D-Bus API (docs/behaviour.md §11): `org.nvmexpress.staf` and
//! `org.nvmexpress.staf.debug` at `/org/nvmexpress/staf`, with upstream's
//! member names, signatures, dict key order, value spellings and JSON text,
//! so stafctl, stacd and other existing clients keep working.
//!
//! One deliberate difference (docs/behaviour.md §11.9 \[REC\]): DH-HMAC-CHAP secrets
//! (`dhchap-secret`, `dhchap-ctrl-secret` and the sys.conf host key) are
//! shown as `<redacted>` unless the caller is root, as the bus daemon reports
//! it (`GetConnectionUnixUser`). A caller the bus cannot vouch for (a
//! peer-to-peer connection, a failed lookup) is not root.
//!
//! Upstream's `a{ss}` dicts are Python dicts, which keep insertion order;
//! [`OrderedDict`] puts the entries on the wire in that order (zvariant's own
//! dict types sort their keys).

// The wire signatures have seven or eight string arguments (the TID fields);
// the methods and the signal code zbus generates for them mirror that.
#![allow(clippy::too_many_arguments)]

use std::path::PathBuf;
use std::sync::Arc;

use nvmf_kernel::sysfs::ControllerInfo;
use stas_config::SysConf;
pub use stas_daemon::dbus::*;
use stas_tid::Tid;
use tokio::sync::mpsc;
use zbus::message::Header;
use zbus::names::BusName;
use zbus::{fdo, interface, Connection};

use crate::dc::{DcStatus, Stage, FAST_RETRY, SLOW_RETRY};
use crate::service::{Signals, View};

/// The well-known bus name stafd owns.
pub const BUS_NAME: &str = "org.nvmexpress.staf";
/// The object both interfaces live on.
pub const OBJECT_PATH: &str = "/org/nvmexpress/staf";
/// The main interface.
pub const INTERFACE: &str = "org.nvmexpress.staf";
/// The debug interface.
pub const DEBUG_INTERFACE: &str = "org.nvmexpress.staf.debug";
/// Interval of upstream's retry-connect timer before any failure (§5).
const INITIAL_RETRY_SECS: u64 = 60;

/// Reads the sysfs attributes of a kernel device (`nvmeN`) for the details
/// dict; may block briefly (it is run on the blocking pool).
pub type DeviceInfoFn = Arc<dyn Fn(&str) -> Option<ControllerInfo> + Send + Sync>;

/// What the D-Bus objects answer from.
#[derive(Clone)]
pub struct DbusConfig {
    /// The service's DCs.
    pub view: View,
    /// How method arguments become TIDs (host NQN, ignore-iface).
    pub tid_context: SharedTidContext,
    /// sys.conf (hostnqn, hostid, hostkey, symname for `process_info`).
    pub sys: SysConf,
    /// The last-known-configuration file, if any.
    pub lkc_path: Option<PathBuf>,
    /// The kernel accepts the `discovery` connect option (TP8013).
    pub kernel_tp8013: bool,
    /// The kernel accepts the `host_iface` connect option.
    pub kernel_host_iface: bool,
    /// Sysfs attributes of a bound device, for detailed listings; without
    /// it `dctype` comes from the DC's own status and the rest is "".
    pub device_info: Option<DeviceInfoFn>,
    /// The mDNS view (`avahi` in `process_info`, §10.9) while zeroconf runs.
    pub zeroconf_view: ZeroconfView,
}

/// The zero-touch debug view, shared with the zeroconf task.
pub type ZeroconfView = Arc<std::sync::Mutex<Option<Json>>>;

impl std::fmt::Debug for DbusConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DbusConfig")
            .field("tid_context", &self.tid_context)
            .field("lkc_path", &self.lkc_path)
            .field("kernel_tp8013", &self.kernel_tp8013)
            .field("kernel_host_iface", &self.kernel_host_iface)
            .field("device_info", &self.device_info.is_some())
            .finish_non_exhaustive()
    }
}

impl DbusConfig {
    fn find(&self, fields: [&str; 7]) -> Option<DcStatus> {
        let tid = tid_from_fields(fields, &self.tid_context.get());
        self.view.snapshot().into_iter().find(|s| s.tid == tid)
    }
}

// ---------------------------------------------------------------------------
// The dict and text shapes of §11.5 - §11.7.

fn has_secrets(s: &DcStatus) -> bool {
    s.tid.cfg.keys().any(|k| is_secret(k))
}

/// The controller-id dict (§11.5.1) of a DC.
pub fn controller_id_dict(s: &DcStatus, redact: bool) -> OrderedDict {
    stas_daemon::dbus::controller_id_dict(&s.tid, s.device.as_deref(), redact)
}

/// The retry-connect timer of a DC as upstream would show it: its interval
/// follows the failure count (60 s initially, 3 s after the first failure or
/// a device removal, 60 s from the second failure on). The DC status does
/// not carry the timer's deadline, so it is shown stopped.
fn retry_timer_text(s: &DcStatus) -> String {
    let failed = if s.stage == Stage::Connecting {
        s.connect_attempts.saturating_sub(1)
    } else {
        s.connect_attempts
    };
    let interval = match (failed, s.stage) {
        (0, Stage::Waiting) | (1, _) => FAST_RETRY,
        (0, _) => std::time::Duration::from_secs(INITIAL_RETRY_SECS),
        _ => SLOW_RETRY,
    };
    timer_text(interval, None)
}

/// The info dict (§11.5.2): the controller-id dict plus connect attempts,
/// the retry timer, the operation in flight and the origin.
pub fn info_dict(s: &DcStatus, redact: bool) -> OrderedDict {
    let mut d = controller_id_dict(s, redact);
    d.set("connect attempts", s.connect_attempts.to_string());
    d.set("retry connect timer", retry_timer_text(s));
    let error = s.last_error.as_deref();
    if s.stage == Stage::Connecting {
        d.set(
            "connect operation",
            operation_text(s.connect_attempts.saturating_sub(1), error),
        );
    }
    if let Some(o) = s.origin {
        d.set("origin", o.as_str());
    }
    // The mDNS persistence keys of discovered DCs (§6.7) come with mDNS
    // support; stafd has no loss time or persistence to show yet.
    let op = match s.stage {
        Stage::Fetching => Some("get log page operation"),
        Stage::Registering => Some("register operation"),
        Stage::Querying => Some("get supported log page operation"),
        _ => None,
    };
    if let Some(key) = op {
        d.set(key, operation_text(u32::from(error.is_some()), error));
    }
    d
}

/// The details dict (§11.5.3): the info dict plus the sysfs attributes of
/// the bound device (`dev`) and `connected`.
pub fn details_dict(s: &DcStatus, redact: bool, dev: Option<&ControllerInfo>) -> OrderedDict {
    let mut d = info_dict(s, redact);
    let bound = s.device.is_some();
    let dctype = dev
        .and_then(|i| i.dctype)
        .or(if bound { s.dctype } else { None })
        .map(|t| t.stas_str().into_owned())
        .unwrap_or_default();
    add_device_attrs(&mut d, dev, dctype);
    d.set("connected", py_bool(s.connected));
    d
}

/// The DLPE dicts of a DC's cached log page (§11.5.4).
pub fn log_pages(s: &DcStatus) -> Vec<OrderedDict> {
    s.log_pages
        .iter()
        .map(|e| OrderedDict(stas_daemon::dlpe::to_dict(e)))
        .collect()
}

/// The `get_all_log_pages` JSON (§11.6).
pub fn all_log_pages_json(
    dcs: &[(DcStatus, Option<ControllerInfo>)],
    detailed: bool,
    redact: bool,
) -> String {
    Json::Arr(
        dcs.iter()
            .map(|(s, dev)| {
                let dc = if detailed {
                    details_dict(s, redact, dev.as_ref())
                } else {
                    controller_id_dict(s, redact)
                };
                Json::Obj(vec![
                    ("discovery-controller".to_owned(), Json::from(&dc)),
                    (
                        "log-pages".to_owned(),
                        Json::Arr(log_pages(s).iter().map(Json::from).collect()),
                    ),
                ])
            })
            .collect(),
    )
    .dumps()
}

/// The `process_info` JSON (§11.5.5), with the keys stafd has values for.
pub fn process_info_json(cfg: &DbusConfig, redact: bool) -> String {
    let avahi = cfg
        .zeroconf_view
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    stas_daemon::dbus::process_info_json(
        &cfg.sys,
        cfg.lkc_path.as_deref(),
        cfg.kernel_tp8013,
        cfg.kernel_host_iface,
        redact,
        avahi.map(|v| ("avahi".to_owned(), v)).into_iter().collect(),
    )
}

/// Sysfs attributes of the bound devices of `dcs`, read on the blocking pool.
async fn with_device_info(
    cfg: &DbusConfig,
    dcs: Vec<DcStatus>,
) -> Vec<(DcStatus, Option<ControllerInfo>)> {
    let Some(read) = cfg.device_info.clone() else {
        return dcs.into_iter().map(|s| (s, None)).collect();
    };
    let names: Vec<Option<String>> = dcs.iter().map(|s| s.device.clone()).collect();
    let infos = tokio::task::spawn_blocking(move || {
        names
            .iter()
            .map(|n| n.as_deref().and_then(|n| read(n)))
            .collect::<Vec<_>>()
    })
    .await
    .unwrap_or_default();
    let mut infos = infos.into_iter();
    dcs.into_iter()
        .map(|s| (s, infos.next().flatten()))
        .collect()
}

// ---------------------------------------------------------------------------
// The objects.

/// `org.nvmexpress.staf`.
#[derive(Debug, Clone)]
pub struct StafInterface {
    cfg: Arc<DbusConfig>,
}

impl StafInterface {
    /// The interface over `cfg`.
    pub fn new(cfg: Arc<DbusConfig>) -> Self {
        Self { cfg }
    }
}

#[interface(name = "org.nvmexpress.staf")]
impl StafInterface {
    /// One dict per DC: its controller-id dict, or its details dict.
    #[zbus(name = "list_controllers")]
    async fn list_controllers(
        &self,
        detailed: bool,
        #[zbus(connection)] conn: &Connection,
        #[zbus(header)] hdr: Header<'_>,
    ) -> Vec<OrderedDict> {
        let dcs = self.cfg.view.snapshot();
        let redact = must_redact(dcs.iter().any(has_secrets), conn, &hdr).await;
        if !detailed {
            return dcs.iter().map(|s| controller_id_dict(s, redact)).collect();
        }
        with_device_info(&self.cfg, dcs)
            .await
            .iter()
            .map(|(s, dev)| details_dict(s, redact, dev.as_ref()))
            .collect()
    }

    /// The cached log page entries of the DC with this TID, or `[]`.
    #[zbus(name = "get_log_pages")]
    async fn get_log_pages(
        &self,
        transport: &str,
        traddr: &str,
        trsvcid: &str,
        subsysnqn: &str,
        host_traddr: &str,
        host_iface: &str,
        host_nqn: &str,
    ) -> Vec<OrderedDict> {
        self.cfg
            .find([
                transport,
                traddr,
                trsvcid,
                subsysnqn,
                host_traddr,
                host_iface,
                host_nqn,
            ])
            .map(|s| log_pages(&s))
            .unwrap_or_default()
    }

    /// Every DC with its log page entries, as JSON text (§11.6).
    ///
    /// Before the service has restored or reconciled anything, the answer
    /// is an error rather than `[]`: stacd must not read "no discovery
    /// controllers yet" as "no I/O controllers wanted".
    #[zbus(name = "get_all_log_pages")]
    async fn get_all_log_pages(
        &self,
        detailed: bool,
        #[zbus(connection)] conn: &Connection,
        #[zbus(header)] hdr: Header<'_>,
    ) -> fdo::Result<String> {
        if !self.cfg.view.published() {
            return Err(fdo::Error::Failed(
                "stafd is starting and has no discovery controllers yet; ask again shortly".into(),
            ));
        }
        let dcs = self.cfg.view.snapshot();
        let redact = must_redact(dcs.iter().any(has_secrets), conn, &hdr).await;
        let dcs = if detailed {
            with_device_info(&self.cfg, dcs).await
        } else {
            dcs.into_iter().map(|s| (s, None)).collect()
        };
        Ok(all_log_pages_json(&dcs, detailed, redact))
    }

    /// A DC's log page was read.
    #[zbus(signal, name = "log_pages_changed")]
    async fn log_pages_changed(
        emitter: &zbus::object_server::SignalEmitter<'_>,
        transport: &str,
        traddr: &str,
        trsvcid: &str,
        subsysnqn: &str,
        host_traddr: &str,
        host_iface: &str,
        host_nqn: &str,
        device: &str,
    ) -> zbus::Result<()>;

    /// A reconciliation removed DCs.
    #[zbus(signal, name = "dc_removed")]
    async fn dc_removed(emitter: &zbus::object_server::SignalEmitter<'_>) -> zbus::Result<()>;
}

/// `org.nvmexpress.staf.debug`.
#[derive(Debug, Clone)]
pub struct StafDebug {
    cfg: Arc<DbusConfig>,
}

impl StafDebug {
    /// The interface over `cfg`.
    pub fn new(cfg: Arc<DbusConfig>) -> Self {
        Self { cfg }
    }
}

#[interface(name = "org.nvmexpress.staf.debug")]
impl StafDebug {
    /// Debug tracing (writes are limited to root by the bus policy).
    #[zbus(property(emits_changed_signal = "false"), name = "tron")]
    fn tron(&self) -> bool {
        stas_daemon::logging::tron()
    }

    #[zbus(property, name = "tron")]
    fn set_tron(&mut self, on: bool) {
        stas_daemon::logging::set_tron(on);
        log::info!("tron set to {} over D-Bus", py_bool(on));
    }

    /// `DEBUG` or `INFO`.
    #[zbus(property(emits_changed_signal = "false"), name = "log_level")]
    fn log_level(&self) -> String {
        stas_daemon::logging::level_name().to_owned()
    }

    /// The daemon's state as JSON (§11.5.5).
    #[zbus(name = "process_info")]
    async fn process_info(
        &self,
        #[zbus(connection)] conn: &Connection,
        #[zbus(header)] hdr: Header<'_>,
    ) -> String {
        let redact = must_redact(self.cfg.sys.hostkey.is_some(), conn, &hdr).await;
        process_info_json(&self.cfg, redact)
    }

    /// The info dict of the DC with this TID as JSON, or `{}`.
    #[zbus(name = "controller_info")]
    async fn controller_info(
        &self,
        transport: &str,
        traddr: &str,
        trsvcid: &str,
        subsysnqn: &str,
        host_traddr: &str,
        host_iface: &str,
        host_nqn: &str,
        #[zbus(connection)] conn: &Connection,
        #[zbus(header)] hdr: Header<'_>,
    ) -> String {
        match self.cfg.find([
            transport,
            traddr,
            trsvcid,
            subsysnqn,
            host_traddr,
            host_iface,
            host_nqn,
        ]) {
            Some(s) => {
                let redact = must_redact(has_secrets(&s), conn, &hdr).await;
                Json::from(&info_dict(&s, redact)).dumps()
            }
            None => "{}".to_owned(),
        }
    }
}

// ---------------------------------------------------------------------------
// Signals from the service.

#[derive(Debug)]
enum Signal {
    LogPagesChanged([String; 8]),
    DcRemoved,
}

/// The service's [`Signals`], emitted on D-Bus in the order the service
/// raised them by one task (the trait is synchronous: nothing blocks).
#[derive(Debug, Clone)]
pub struct DbusSignals {
    tx: mpsc::UnboundedSender<Signal>,
}

/// The receiving end of [`DbusSignals`], handed to [`serve`] / [`export`].
#[derive(Debug)]
pub struct SignalQueue {
    rx: mpsc::UnboundedReceiver<Signal>,
}

/// A signal sender for the service and its queue for the D-Bus connection.
/// Signals raised before the connection exists wait for it.
pub fn signals() -> (DbusSignals, SignalQueue) {
    let (tx, rx) = mpsc::unbounded_channel();
    (DbusSignals { tx }, SignalQueue { rx })
}

impl Signals for DbusSignals {
    fn log_pages_changed(&self, tid: &Tid, device: &str) {
        let _ = self.tx.send(Signal::LogPagesChanged([
            tid.transport.clone(),
            tid.traddr.clone(),
            tid.trsvcid.clone(),
            tid.subsysnqn.clone(),
            tid.host_traddr.clone(),
            tid.host_iface.clone(),
            tid.host_nqn.clone(),
            device.to_owned(),
        ]));
    }

    fn dc_removed(&self) {
        let _ = self.tx.send(Signal::DcRemoved);
    }
}

async fn emit_signals(conn: Connection, mut queue: SignalQueue) {
    while let Some(sig) = queue.rx.recv().await {
        let r = match &sig {
            Signal::LogPagesChanged([a, b, c, d, e, f, g, h]) => {
                conn.emit_signal(
                    None::<BusName<'_>>,
                    OBJECT_PATH,
                    INTERFACE,
                    "log_pages_changed",
                    &(a, b, c, d, e, f, g, h),
                )
                .await
            }
            Signal::DcRemoved => {
                conn.emit_signal(
                    None::<BusName<'_>>,
                    OBJECT_PATH,
                    INTERFACE,
                    "dc_removed",
                    &(),
                )
                .await
            }
        };
        if let Err(e) = r {
            log::warn!("D-Bus: cannot emit {sig:?}: {e}");
        }
    }
}

// ---------------------------------------------------------------------------
// Start-up.

/// Builds the connection of `builder` with both interfaces exported at
/// [`OBJECT_PATH`] and starts emitting `queue`'s signals on it. Requests no
/// name (see [`serve`]); usable on peer-to-peer connections.
pub async fn export(
    builder: zbus::connection::Builder<'_>,
    cfg: DbusConfig,
    queue: SignalQueue,
) -> zbus::Result<Connection> {
    let cfg = Arc::new(cfg);
    let conn = builder
        .serve_at(OBJECT_PATH, StafInterface::new(cfg.clone()))?
        .serve_at(OBJECT_PATH, StafDebug::new(cfg))?
        .build()
        .await?;
    log::debug!("D-Bus: {INTERFACE} and {DEBUG_INTERFACE} exported at {OBJECT_PATH}");
    tokio::spawn(emit_signals(conn.clone(), queue));
    Ok(conn)
}

/// Connects to the system bus, or to the bus at `address` when given
/// (`--bus-address`, `$STAS_BUS_ADDRESS`), exports the objects, then asks
/// for [`BUS_NAME`] (upstream's order: a client that sees the name finds
/// the object).
///
/// Fails with [`zbus::Error::NameTaken`] if another process owns the name:
/// the name is neither queued for nor taken over, and not given up to a
/// later instance either (zbus's default flags would allow both).
pub async fn serve(
    address: Option<&str>,
    cfg: DbusConfig,
    queue: SignalQueue,
) -> zbus::Result<Connection> {
    let builder = match address {
        Some(a) => zbus::connection::Builder::address(a)?,
        None => zbus::connection::Builder::system()?,
    };
    let conn = export(builder, cfg, queue).await?;
    conn.request_name_with_flags(BUS_NAME, fdo::RequestNameFlags::DoNotQueue.into())
        .await?;
    Ok(conn)
}

#[cfg(test)]
mod tests;
