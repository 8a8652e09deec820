//! stafd's D-Bus API (nvme-stas-behaviour §11): `org.nvmexpress.staf` and
//! `org.nvmexpress.staf.debug` at `/org/nvmexpress/staf`, with upstream's
//! member names, signatures, dict key order, value spellings and JSON text,
//! so stafctl, stacd and other existing clients keep working.
//!
//! One deliberate difference (spec §11.9 \[REC\]): DH-HMAC-CHAP secrets
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
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may panic

    use std::time::Duration;

    use futures_util::StreamExt;
    use nvmf_proto::dlp::{DiscoveryLogEntry, Tsas};
    use nvmf_proto::types::{AdrFam, CntrlType, DcType, SecType, SubType, TrType};
    use nvmf_proto::WELL_KNOWN_DISCOVERY_NQN;
    use stas_config::parse_stafd;
    use zbus::connection::Builder;
    use zbus::message::Type as MessageType;
    use zbus::zvariant::{OwnedValue, Value};

    use serde::Serialize;
    use stas_config::Cid;
    use stas_tid::TidContext;
    use zbus::zvariant::Type;

    use super::*;
    use crate::dc::HostInfo;
    use crate::service::{Input, Service, ServiceHandle, Stats};
    use crate::sim::SimKernel;

    const HOSTNQN: &str = "nqn.2014-08.org.nvmexpress:uuid:0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0";
    const HOSTID: &str = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0";
    const CONF: &str = "[Controllers]\ncontroller = transport=tcp;traddr=10.0.0.1;kato=30;dhchap-secret=DHHC-1:00:c2VjcmV0:\n";

    fn entry() -> DiscoveryLogEntry {
        DiscoveryLogEntry {
            trtype: TrType::Tcp,
            adrfam: AdrFam::Ipv4,
            subtype: SubType::Nvme,
            traddr: "10.0.0.9".into(),
            trsvcid: "4420".into(),
            subnqn: "nqn.1988-11.com.dell:sub1".into(),
            portid: 1,
            cntlid: 0xffff,
            asqsz: 32,
            tsas: Tsas::tcp(SecType::None),
            ..DiscoveryLogEntry::default()
        }
    }

    fn sys() -> SysConf {
        SysConf {
            hostnqn: HOSTNQN.into(),
            hostid: HOSTID.into(),
            hostkey: Some("DHHC-1:00:aG9zdGtleQ==:".into()),
            symname: None,
        }
    }

    fn dbus_config(view: View) -> DbusConfig {
        let device_info: DeviceInfoFn = Arc::new(|name: &str| {
            Some(ControllerInfo {
                name: name.to_owned(),
                hostnqn: Some(HOSTNQN.into()),
                hostid: Some(HOSTID.into()),
                model: Some("Linux".into()),
                serial: Some("(efault)".into()),
                cntrltype: Some(CntrlType::Discovery),
                dctype: Some(DcType::None),
                ..ControllerInfo::default()
            })
        });
        DbusConfig {
            view,
            tid_context: SharedTidContext::new(TidContext {
                host_nqn: HOSTNQN.into(),
                ignore_iface: false,
            }),
            sys: sys(),
            lkc_path: Some("/run/stafd/last-known-config.bin".into()),
            kernel_tp8013: true,
            kernel_host_iface: false,
            device_info: Some(device_info),
            zeroconf_view: ZeroconfView::default(),
        }
    }

    /// A server exporting the objects and a client, over a socket pair.
    async fn p2p(cfg: DbusConfig, queue: SignalQueue) -> (Connection, Connection) {
        let (a, b) = tokio::net::UnixStream::pair().unwrap();
        let server = export(
            Builder::unix_stream(a)
                .server(zbus::Guid::generate())
                .unwrap()
                .p2p(),
            cfg,
            queue,
        );
        let client = Builder::unix_stream(b).p2p().build();
        let (server, client) = tokio::join!(server, client);
        (server.unwrap(), client.unwrap())
    }

    struct Daemon {
        handle: ServiceHandle,
        task: tokio::task::JoinHandle<Stats>,
        _server: Connection,
        client: Connection,
    }

    /// The service on a simulated kernel with one reachable DC, once the
    /// DC is steady, with the sending and receiving ends of its signals.
    async fn steady_service() -> (
        ServiceHandle,
        tokio::task::JoinHandle<Stats>,
        DbusSignals,
        SignalQueue,
    ) {
        let sim = SimKernel::new();
        sim.add_dc("10.0.0.1", "8009", DcType::None, vec![entry()]);
        let (cfg, diags) = parse_stafd(CONF, "test.conf").unwrap();
        assert!(diags.is_empty(), "{diags:?}");
        let (tx, queue) = signals();
        let host = HostInfo {
            hostnqn: HOSTNQN.into(),
            hostid: HOSTID.into(),
            ..HostInfo::default()
        };
        let (svc, handle) = Service::new(sim, host, Arc::new(cfg), Arc::new(tx.clone()), None);
        let task = tokio::spawn(svc.run());
        for _ in 0..500 {
            if handle
                .view
                .snapshot()
                .iter()
                .any(|s| s.stage == Stage::Steady)
            {
                return (handle, task, tx, queue);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the DC never became steady");
    }

    impl Daemon {
        /// The service, its D-Bus objects and a peer-to-peer client.
        async fn start() -> Self {
            let (handle, task, _, queue) = steady_service().await;
            let (server, client) = p2p(dbus_config(handle.view.clone()), queue).await;
            Self {
                handle,
                task,
                _server: server,
                client,
            }
        }

        async fn call<B>(&self, iface: &str, method: &str, body: &B) -> zbus::Message
        where
            B: Serialize + zbus::zvariant::DynamicType,
        {
            self.client
                .call_method(None::<BusName<'_>>, OBJECT_PATH, Some(iface), method, body)
                .await
                .unwrap()
        }

        async fn stop(self) {
            self.handle.send(Input::Shutdown);
            self.task.await.unwrap();
        }
    }

    fn dlpe_expected() -> Vec<(&'static str, &'static str)> {
        vec![
            ("trtype", "tcp"),
            ("adrfam", "ipv4"),
            ("traddr", "10.0.0.9"),
            ("trsvcid", "4420"),
            ("subnqn", "nqn.1988-11.com.dell:sub1"),
            ("subtype", "nvme"),
            ("treq", "not specified"),
            ("tsas", "{'sectype': 'none'}"),
            ("portid", "1"),
            ("cntlid", "65535"),
            ("asqsz", "32"),
            ("eflags", "0"),
        ]
    }

    fn pairs(d: &OrderedDict) -> Vec<(&str, &str)> {
        d.0.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
    }

    fn id_expected() -> Vec<(&'static str, &'static str)> {
        vec![
            ("traddr", "10.0.0.1"),
            ("trsvcid", "8009"),
            ("transport", "tcp"),
            ("subsysnqn", WELL_KNOWN_DISCOVERY_NQN),
            ("host-iface", ""),
            ("host-traddr", ""),
            ("dhchap-secret", "<redacted>"),
            ("kato", "30"),
            ("host-nqn", HOSTNQN),
            ("device", "nvme0"),
        ]
    }

    const TID_ARGS: (&str, &str, &str, &str, &str, &str, &str) = (
        "tcp",
        "10.0.0.1",
        "",
        WELL_KNOWN_DISCOVERY_NQN,
        "",
        "",
        HOSTNQN,
    );

    #[tokio::test]
    async fn list_controllers_shapes_order_and_redaction() {
        let d = Daemon::start().await;
        let msg = d.call(INTERFACE, "list_controllers", &(false,)).await;
        assert_eq!(msg.body().signature().to_string_no_parens(), "aa{ss}");
        let list: Vec<OrderedDict> = msg.body().deserialize().unwrap();
        assert_eq!(list.len(), 1);
        assert_eq!(pairs(&list[0]), id_expected());

        let msg = d.call(INTERFACE, "list_controllers", &(true,)).await;
        assert_eq!(msg.body().signature().to_string_no_parens(), "aa{ss}");
        let list: Vec<OrderedDict> = msg.body().deserialize().unwrap();
        let mut expected = id_expected();
        expected.extend([
            ("connect attempts", "0"),
            ("retry connect timer", "60.0s [off]"),
            ("origin", "configured"),
            ("hostid", HOSTID),
            ("hostnqn", HOSTNQN),
            ("model", "Linux"),
            ("serial", ""),
            ("dctype", "none"),
            ("cntrltype", "discovery"),
            ("connected", "True"),
        ]);
        assert_eq!(pairs(&list[0]), expected);
        d.stop().await;
    }

    #[tokio::test]
    async fn get_log_pages_exact_tid_or_empty() {
        let d = Daemon::start().await;
        let msg = d.call(INTERFACE, "get_log_pages", &TID_ARGS).await;
        assert_eq!(msg.body().signature().to_string_no_parens(), "aa{ss}");
        let pages: Vec<OrderedDict> = msg.body().deserialize().unwrap();
        assert_eq!(pages.len(), 1);
        assert_eq!(pairs(&pages[0]), dlpe_expected());

        // host_nqn is taken literally: "" is not the sys.conf NQN.
        let unknown = [
            (
                "tcp",
                "10.0.0.1",
                "8009",
                WELL_KNOWN_DISCOVERY_NQN,
                "",
                "",
                "",
            ),
            (
                "tcp",
                "10.0.0.2",
                "8009",
                WELL_KNOWN_DISCOVERY_NQN,
                "",
                "",
                HOSTNQN,
            ),
            ("tcp", "10.0.0.1", "8009", "", "", "", HOSTNQN),
        ];
        for args in unknown {
            let msg = d.call(INTERFACE, "get_log_pages", &args).await;
            assert_eq!(msg.body().signature().to_string_no_parens(), "aa{ss}");
            let pages: Vec<OrderedDict> = msg.body().deserialize().unwrap();
            assert!(pages.is_empty(), "{args:?}");
            let msg = d.call(DEBUG_INTERFACE, "controller_info", &args).await;
            assert_eq!(msg.body().deserialize::<String>().unwrap(), "{}");
        }
        d.stop().await;
    }

    #[tokio::test]
    async fn get_all_log_pages_is_python_json() {
        let d = Daemon::start().await;
        let msg = d.call(INTERFACE, "get_all_log_pages", &(false,)).await;
        assert_eq!(msg.body().signature().to_string_no_parens(), "s");
        let text: String = msg.body().deserialize().unwrap();
        let expected = concat!(
            r#"[{"discovery-controller": {"traddr": "10.0.0.1", "trsvcid": "8009", "transport": "tcp", "#,
            r#""subsysnqn": "nqn.2014-08.org.nvmexpress.discovery", "host-iface": "", "host-traddr": "", "#,
            r#""dhchap-secret": "<redacted>", "kato": "30", "#,
            r#""host-nqn": "nqn.2014-08.org.nvmexpress:uuid:0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0", "device": "nvme0"}, "#,
            r#""log-pages": [{"trtype": "tcp", "adrfam": "ipv4", "traddr": "10.0.0.9", "trsvcid": "4420", "#,
            r#""subnqn": "nqn.1988-11.com.dell:sub1", "subtype": "nvme", "treq": "not specified", "#,
            r#""tsas": "{'sectype': 'none'}", "portid": "1", "cntlid": "65535", "asqsz": "32", "eflags": "0"}]}]"#
        );
        assert_eq!(text, expected);

        let text: String = d
            .call(INTERFACE, "get_all_log_pages", &(true,))
            .await
            .body()
            .deserialize()
            .unwrap();
        assert!(
            text.contains(r#""device": "nvme0", "connect attempts": "0", "retry connect timer": "60.0s [off]", "origin": "configured", "hostid": ""#),
            "{text}"
        );
        assert!(
            text.contains(r#""cntrltype": "discovery", "connected": "True"}, "log-pages": [{"#),
            "{text}"
        );
        assert!(!text.contains("c2VjcmV0"), "secret leaked: {text}");
        d.stop().await;
    }

    #[tokio::test]
    async fn controller_info_process_info_and_tron() {
        let d = Daemon::start().await;
        let msg = d.call(DEBUG_INTERFACE, "controller_info", &TID_ARGS).await;
        assert_eq!(msg.body().signature().to_string_no_parens(), "s");
        let text: String = msg.body().deserialize().unwrap();
        assert_eq!(
            text,
            concat!(
                r#"{"traddr": "10.0.0.1", "trsvcid": "8009", "transport": "tcp", "#,
                r#""subsysnqn": "nqn.2014-08.org.nvmexpress.discovery", "host-iface": "", "host-traddr": "", "#,
                r#""dhchap-secret": "<redacted>", "kato": "30", "#,
                r#""host-nqn": "nqn.2014-08.org.nvmexpress:uuid:0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0", "device": "nvme0", "#,
                r#""connect attempts": "0", "retry connect timer": "60.0s [off]", "origin": "configured"}"#
            )
        );

        // tron: a property round trip, seen by log_level and process_info.
        let props = "org.freedesktop.DBus.Properties";
        for on in [true, false] {
            d.call(props, "Set", &(DEBUG_INTERFACE, "tron", Value::from(on)))
                .await;
            let v: OwnedValue = d
                .call(props, "Get", &(DEBUG_INTERFACE, "tron"))
                .await
                .body()
                .deserialize()
                .unwrap();
            assert_eq!(bool::try_from(v).unwrap(), on);
            let v: OwnedValue = d
                .call(props, "Get", &(DEBUG_INTERFACE, "log_level"))
                .await
                .body()
                .deserialize()
                .unwrap();
            assert_eq!(
                String::try_from(v).unwrap(),
                if on { "DEBUG" } else { "INFO" }
            );
            let msg = d.call(DEBUG_INTERFACE, "process_info", &()).await;
            assert_eq!(msg.body().signature().to_string_no_parens(), "s");
            let text: String = msg.body().deserialize().unwrap();
            let expected = format!(
                concat!(
                    r#"{{"tron": {}, "log-level": "{}", "#,
                    r#""hostnqn": "nqn.2014-08.org.nvmexpress:uuid:0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0", "#,
                    r#""hostid": "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0", "hostkey": "<redacted>", "symname": null, "#,
                    r#""last known config file": "/run/stafd/last-known-config.bin", "#,
                    r#""kernel support.TP8013": "True", "kernel support.host_iface": "False"}}"#
                ),
                on,
                if on { "DEBUG" } else { "INFO" }
            );
            assert_eq!(text, expected);
        }
        d.stop().await;
    }

    #[tokio::test]
    async fn introspection_has_upstream_member_names() {
        let (_tx, queue) = signals();
        let view = View::default();
        let (_server, client) = p2p(dbus_config(view.clone()), queue).await;
        let xml: String = client
            .call_method(
                None::<BusName<'_>>,
                OBJECT_PATH,
                Some("org.freedesktop.DBus.Introspectable"),
                "Introspect",
                &(),
            )
            .await
            .unwrap()
            .body()
            .deserialize()
            .unwrap();
        for needle in [
            r#"<interface name="org.nvmexpress.staf">"#,
            r#"<interface name="org.nvmexpress.staf.debug">"#,
            r#"<method name="list_controllers">"#,
            r#"<method name="get_log_pages">"#,
            r#"<method name="get_all_log_pages">"#,
            r#"<signal name="log_pages_changed">"#,
            r#"<signal name="dc_removed">"#,
            r#"<method name="process_info">"#,
            r#"<method name="controller_info">"#,
            r#"<property name="tron" type="b" access="readwrite">"#,
            r#"<property name="log_level" type="s" access="read">"#,
        ] {
            assert!(xml.contains(needle), "{needle} missing from:\n{xml}");
        }
        // Empty daemon: empty answers, not errors.
        let list: Vec<OrderedDict> = client
            .call_method(
                None::<BusName<'_>>,
                OBJECT_PATH,
                Some(INTERFACE),
                "list_controllers",
                &(true,),
            )
            .await
            .unwrap()
            .body()
            .deserialize()
            .unwrap();
        assert!(list.is_empty());
        let all = || {
            client.call_method(
                None::<BusName<'_>>,
                OBJECT_PATH,
                Some(INTERFACE),
                "get_all_log_pages",
                &(false,),
            )
        };
        // Before the service published anything, "no DCs" is not known yet.
        let e = all().await.unwrap_err().to_string();
        assert!(e.contains("stafd is starting"), "{e}");
        view.set(Vec::new());
        let text: String = all().await.unwrap().body().deserialize().unwrap();
        assert_eq!(text, "[]");
    }

    #[tokio::test]
    async fn signals_arrive_in_order_with_their_arguments() {
        let (tx, queue) = signals();
        // Raised before the connection exists: queued, not lost.
        tx.dc_removed();
        let (_server, client) = p2p(dbus_config(View::default()), queue).await;
        let mut stream = zbus::MessageStream::from(&client);
        let tid = Tid::from_cid(
            &[
                ("transport", "tcp"),
                ("traddr", "fd00::1"),
                ("subsysnqn", "nqn.x"),
                ("host-iface", "eth0"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
            &TidContext {
                host_nqn: HOSTNQN.into(),
                ignore_iface: false,
            },
        );
        tx.log_pages_changed(&tid, "nvme3");
        tx.dc_removed();
        let mut got = Vec::new();
        while got.len() < 3 {
            let msg = tokio::time::timeout(Duration::from_secs(5), stream.next())
                .await
                .expect("signal within 5 s")
                .unwrap()
                .unwrap();
            let hdr = msg.header();
            if hdr.message_type() != MessageType::Signal {
                continue;
            }
            assert_eq!(hdr.path().unwrap().as_str(), OBJECT_PATH);
            assert_eq!(hdr.interface().unwrap().as_str(), INTERFACE);
            let member = hdr.member().unwrap().to_string();
            let sig = msg.body().signature().to_string_no_parens();
            got.push((member, sig, msg));
        }
        assert_eq!((got[0].0.as_str(), got[0].1.as_str()), ("dc_removed", ""));
        assert_eq!(
            (got[1].0.as_str(), got[1].1.as_str()),
            ("log_pages_changed", "ssssssss")
        );
        assert_eq!((got[2].0.as_str(), got[2].1.as_str()), ("dc_removed", ""));
        let args: (
            String,
            String,
            String,
            String,
            String,
            String,
            String,
            String,
        ) = got[1].2.body().deserialize().unwrap();
        assert_eq!(
            args,
            (
                "tcp".into(),
                "fd00::1".into(),
                "8009".into(),
                "nqn.x".into(),
                String::new(),
                "eth0".into(),
                HOSTNQN.into(),
                "nvme3".into()
            )
        );
    }

    fn status(cfg: &[(&str, &str)]) -> DcStatus {
        let mut cid: Cid = [
            ("transport", "tcp"),
            ("traddr", "10.0.0.1"),
            ("subsysnqn", "nqn.d"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        cid.extend(cfg.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        DcStatus {
            tid: Tid::from_cid(&cid, &TidContext::default()),
            origin: None,
            device: None,
            connected: false,
            log_pages: vec![entry()],
            have_log_pages: true,
            dctype: None,
            connect_attempts: 0,
            stage: Stage::Waiting,
            last_error: None,
            fetches: 0,
            persistent: stas_config::Persistent::Force,
            referral_epcsd: None,
        }
    }

    #[test]
    fn secrets_are_redacted_only_when_asked() {
        let s = status(&[
            ("dhchap-ctrl-secret", "DHHC-1:01:x:"),
            ("dhchap-secret", "DHHC-1:00:y:"),
            ("hdr-digest", "true"),
        ]);
        assert!(has_secrets(&s));
        let d = controller_id_dict(&s, true);
        assert_eq!(d.get("dhchap-secret"), Some(REDACTED));
        assert_eq!(d.get("dhchap-ctrl-secret"), Some(REDACTED));
        assert_eq!(d.get("hdr-digest"), Some("true"));
        let d = controller_id_dict(&s, false);
        assert_eq!(d.get("dhchap-secret"), Some("DHHC-1:00:y:"));
        assert!(!has_secrets(&status(&[("kato", "10")])));
    }

    #[test]
    fn unbound_dc_and_host_nqn_override_key_order() {
        // A per-controller host-nqn is a cfg key upstream, but the dict shows
        // it once, just before device.
        let s = status(&[("host-nqn", "nqn.h"), ("kato", "5")]);
        let d = controller_id_dict(&s, true);
        let keys: Vec<&str> = d.keys().collect();
        assert_eq!(
            keys,
            [
                "traddr",
                "trsvcid",
                "transport",
                "subsysnqn",
                "host-iface",
                "host-traddr",
                "kato",
                "host-nqn",
                "device"
            ]
        );
        assert_eq!(d.get("host-nqn"), Some("nqn.h"));
        assert_eq!(d.get("device"), Some("nvme?"));
        // Not bound, no sysfs: every attribute is "", connected False, no origin.
        let d = details_dict(&s, true, None);
        for k in [
            "hostid",
            "hostnqn",
            "model",
            "serial",
            "dctype",
            "cntrltype",
        ] {
            assert_eq!(d.get(k), Some(""), "{k}");
        }
        assert_eq!(d.get("connected"), Some("False"));
        assert_eq!(d.get("origin"), None);
    }

    #[test]
    fn timers_and_operations_in_python_text() {
        assert_eq!(timer_text(Duration::from_secs(60), None), "60.0s [off]");
        assert_eq!(timer_text(Duration::from_millis(1500), None), "1.5s [off]");
        assert_eq!(
            timer_text(Duration::from_secs(1), Some(Duration::ZERO)),
            "1.0s [0s]"
        );
        assert_eq!(
            timer_text(Duration::from_secs(3), Some(Duration::from_millis(2500))),
            "3.0s [2.5s]"
        );

        let mut s = status(&[]);
        s.connect_attempts = 1;
        assert_eq!(
            retry_timer_text(&s),
            "3.0s [off]",
            "after the first failure"
        );
        s.connect_attempts = 2;
        assert_eq!(retry_timer_text(&s), "60.0s [off]");
        s.connect_attempts = 0;
        assert_eq!(retry_timer_text(&s), "3.0s [off]", "after a device removal");
        s.stage = Stage::Connecting;
        s.connect_attempts = 3;
        s.last_error = Some("Connection refused (traddr='10.0.0.1')".into());
        let d = info_dict(&s, true);
        assert_eq!(
            d.get("connect operation"),
            Some(
                r#"{'fail count': 2, 'completed': False, 'alive': True, 'error': "Connection refused (traddr='10.0.0.1')"}"#
            )
        );
        s.stage = Stage::Fetching;
        s.last_error = None;
        let d = info_dict(&s, true);
        assert_eq!(d.get("connect operation"), None);
        assert_eq!(
            d.get("get log page operation"),
            Some("{'fail count': 0, 'completed': False, 'alive': True}")
        );

        assert_eq!(py_repr_str("a'b\"c"), r#"'a\'b"c'"#);
        assert_eq!(py_repr_str("tab\there\\"), r"'tab\there\\'");
        assert_eq!(py_repr_str("\u{1}é"), r"'\x01é'");
    }

    #[test]
    fn json_text_matches_python_json_dumps() {
        // json.dumps({"a": ["café", "\U0001F600", "q\"\\\n\x01\x7f"], "b": None, "c": True, "d": {}})
        let v = Json::Obj(vec![
            (
                "a".into(),
                Json::Arr(vec![
                    Json::Str("café".into()),
                    Json::Str("\u{1F600}".into()),
                    Json::Str("q\"\\\n\u{1}\u{7f}".into()),
                ]),
            ),
            ("b".into(), Json::Null),
            ("c".into(), Json::Bool(true)),
            ("d".into(), Json::Obj(vec![])),
            ("e".into(), Json::Arr(vec![])),
        ]);
        assert_eq!(
            v.dumps(),
            r#"{"a": ["caf\u00e9", "\ud83d\ude00", "q\"\\\n\u0001\u007f"], "b": null, "c": true, "d": {}, "e": []}"#
        );
    }

    #[test]
    fn ordered_dict_has_the_a_ss_signature() {
        assert_eq!(OrderedDict::SIGNATURE.to_string(), "a{ss}");
        assert_eq!(<Vec<OrderedDict> as Type>::SIGNATURE.to_string(), "aa{ss}");
    }

    /// A private dbus-daemon, killed when dropped.
    struct PrivateBus {
        child: std::process::Child,
        address: String,
        dir: std::path::PathBuf,
    }

    impl PrivateBus {
        /// None when there is no dbus-daemon to run.
        fn start() -> Option<Self> {
            use std::io::BufRead;
            let dir = std::env::temp_dir().join(format!("stafd-dbus-test-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            let conf = dir.join("bus.conf");
            std::fs::write(
                &conf,
                format!(
                    concat!(
                        "<!DOCTYPE busconfig PUBLIC \"-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN\"\n",
                        " \"http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd\">\n",
                        "<busconfig><type>session</type><listen>unix:path={}</listen><auth>EXTERNAL</auth>\n",
                        "<policy context=\"default\"><allow send_destination=\"*\" eavesdrop=\"true\"/>",
                        "<allow eavesdrop=\"true\"/><allow own=\"*\"/></policy>\n",
                        "</busconfig>\n"
                    ),
                    dir.join("bus").display()
                ),
            )
            .unwrap();
            let mut child = std::process::Command::new("dbus-daemon")
                .arg(format!("--config-file={}", conf.display()))
                .args(["--nofork", "--print-address=1"])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::null())
                .spawn()
                .ok()?;
            let mut address = String::new();
            std::io::BufReader::new(child.stdout.take().unwrap())
                .read_line(&mut address)
                .unwrap();
            Some(Self {
                child,
                address: address.trim().to_owned(),
                dir,
            })
        }
    }

    impl Drop for PrivateBus {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    #[tokio::test]
    async fn on_a_bus_the_name_is_owned_and_root_sees_secrets() {
        let Some(bus) = PrivateBus::start() else {
            eprintln!("no dbus-daemon: test skipped");
            return;
        };
        tokio::time::timeout(Duration::from_secs(30), on_a_bus(&bus))
            .await
            .expect("the bus test hung");
    }

    async fn on_a_bus(bus: &PrivateBus) {
        let (handle, task, tx, queue) = steady_service().await;
        let server = serve(Some(&bus.address), dbus_config(handle.view.clone()), queue)
            .await
            .unwrap();
        let (_, queue2) = signals();
        let second = serve(Some(&bus.address), dbus_config(View::default()), queue2).await;
        assert!(matches!(second, Err(zbus::Error::NameTaken)), "{second:?}");

        let client = Builder::address(bus.address.as_str())
            .unwrap()
            .build()
            .await
            .unwrap();
        let mut stream = zbus::MessageStream::for_match_rule(
            "type='signal',interface='org.nvmexpress.staf'",
            &client,
            None,
        )
        .await
        .unwrap();
        // Root is told the secrets; anyone else is not.
        let root = nvmf_kernel::host::is_root();
        let list: Vec<OrderedDict> = client
            .call_method(
                Some(BUS_NAME),
                OBJECT_PATH,
                Some(INTERFACE),
                "list_controllers",
                &(false,),
            )
            .await
            .unwrap()
            .body()
            .deserialize()
            .unwrap();
        let secret = if root {
            "DHHC-1:00:c2VjcmV0:"
        } else {
            REDACTED
        };
        assert_eq!(list[0].get("dhchap-secret"), Some(secret));
        let info: String = client
            .call_method(
                Some(BUS_NAME),
                OBJECT_PATH,
                Some(DEBUG_INTERFACE),
                "process_info",
                &(),
            )
            .await
            .unwrap()
            .body()
            .deserialize()
            .unwrap();
        let hostkey = if root {
            "DHHC-1:00:aG9zdGtleQ==:"
        } else {
            REDACTED
        };
        assert!(
            info.contains(&format!(r#""hostkey": "{hostkey}""#)),
            "{info}"
        );

        tx.dc_removed();
        loop {
            let msg = tokio::time::timeout(Duration::from_secs(5), stream.next())
                .await
                .expect("signal within 5 s")
                .unwrap()
                .unwrap();
            let hdr = msg.header();
            if hdr.member().is_some_and(|m| m.as_str() == "dc_removed") {
                assert_eq!(
                    hdr.sender().map(|s| s.to_string()),
                    server.unique_name().map(|s| s.to_string())
                );
                break;
            }
        }
        handle.send(Input::Shutdown);
        task.await.unwrap();
    }
}
