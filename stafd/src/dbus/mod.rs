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

use std::sync::Arc;

use nvmf_kernel::sysfs::ControllerInfo;
use stas_daemon::dbus::contract::{key, member, staf, DcOperation};
pub use stas_daemon::dbus::*;
use stas_tid::Tid;
use tokio::sync::mpsc;
use zbus::message::Header;
use zbus::names::BusName;
use zbus::{fdo, interface, Connection};

use crate::dc::{DcStatus, Stage, FAST_RETRY, SLOW_RETRY};
use crate::service::Signals;

pub use staf::{BUS_NAME, INTERFACE, OBJECT_PATH};
/// Interval of upstream's retry-connect timer before any failure (§5).
const INITIAL_RETRY_SECS: u64 = 60;

/// What the D-Bus objects answer from: the DCs, and the mDNS view
/// `process_info` shows.
pub type DbusConfig = stas_daemon::dbus::DbusConfig<DcStatus, ZeroconfView>;

// ---------------------------------------------------------------------------
// The dict and text shapes of §11.5 - §11.7.

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

/// The pipeline step a DC in `stage` has in flight: the operation key its
/// info dict shows, which stacd reads as "log page not read yet"
/// ([`stas_daemon::dbus::contract::LogPageState`]).
pub fn operation(stage: Stage) -> Option<DcOperation> {
    match stage {
        Stage::Connecting => Some(DcOperation::Connect),
        Stage::Registering => Some(DcOperation::Register),
        Stage::Querying => Some(DcOperation::GetSupportedLogPage),
        Stage::Fetching => Some(DcOperation::GetLogPage),
        Stage::Waiting | Stage::Steady | Stage::Parked | Stage::Stopped => None,
    }
}

/// The dicts of §11.5.2 and §11.5.3 for a DC.
impl ControllerDicts for DcStatus {
    /// The info dict (§11.5.2): the controller-id dict plus connect
    /// attempts, the retry timer, the operation in flight and the origin.
    fn info_dict(&self, redact: bool) -> OrderedDict {
        let mut d = self.controller_id_dict(redact);
        d.set(key::CONNECT_ATTEMPTS, self.connect_attempts.to_string());
        d.set(key::RETRY_CONNECT_TIMER, retry_timer_text(self));
        let error = self.last_error.as_deref();
        let op = operation(self.stage);
        // Upstream's connect operation comes before the origin, the others
        // after it; its fail count is that of the attempts before this one.
        if op == Some(DcOperation::Connect) {
            d.set(
                DcOperation::Connect.key(),
                operation_text(self.connect_attempts.saturating_sub(1), error),
            );
        }
        if let Some(o) = self.origin {
            d.set(key::ORIGIN, o.as_str());
        }
        // The mDNS persistence keys of discovered DCs (§6.7) come with mDNS
        // support; stafd has no loss time or persistence to show yet.
        if let Some(op) = op.filter(|op| *op != DcOperation::Connect) {
            d.set(op.key(), operation_text(u32::from(error.is_some()), error));
        }
        d
    }

    /// The details dict (§11.5.3): the info dict plus the sysfs attributes
    /// of the bound device (`dev`) and `connected`.
    fn details_dict(&self, redact: bool, dev: Option<&ControllerInfo>) -> OrderedDict {
        let mut d = self.info_dict(redact);
        let bound = self.device.is_some();
        let dctype = dev
            .and_then(|i| i.dctype)
            .or(if bound { self.dctype } else { None })
            .map(|t| t.stas_str().into_owned())
            .unwrap_or_default();
        add_device_attrs(&mut d, dev, dctype);
        d.set(key::CONNECTED, py_bool(self.connected));
        d
    }

    fn device(&self) -> Option<&str> {
        self.device.as_deref()
    }
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
                    s.details_dict(redact, dev.as_ref())
                } else {
                    s.controller_id_dict(redact)
                };
                Json::Obj(vec![
                    (key::DISCOVERY_CONTROLLER.to_owned(), Json::from(&dc)),
                    (
                        key::LOG_PAGES.to_owned(),
                        Json::Arr(log_pages(s).iter().map(Json::from).collect()),
                    ),
                ])
            })
            .collect(),
    )
    .dumps()
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
        self.cfg.list_controllers(detailed, conn, &hdr).await
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
        let redact = must_redact(dcs.iter().any(DcStatus::has_secrets), conn, &hdr).await;
        let dcs = if detailed {
            self.cfg.with_device_info(dcs).await
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

/// `org.nvmexpress.staf.debug` over stafd's DCs.
pub type StafDebug = stas_daemon::dbus::StafDebug<DcStatus, ZeroconfView>;

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
                    member::LOG_PAGES_CHANGED,
                    &(a, b, c, d, e, f, g, h),
                )
                .await
            }
            Signal::DcRemoved => {
                conn.emit_signal(
                    None::<BusName<'_>>,
                    OBJECT_PATH,
                    INTERFACE,
                    member::DC_REMOVED,
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
    let main = StafInterface::new(cfg.clone());
    let conn = export_interfaces(builder, OBJECT_PATH, main, StafDebug::new(cfg)).await?;
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
    let conn = export(bus_builder(address)?, cfg, queue).await?;
    claim_name(&conn, BUS_NAME).await?;
    Ok(conn)
}

#[cfg(test)]
mod tests;
