//! stacd on D-Bus (docs/behaviour.md §7.3, §11): it serves
//! `org.nvmexpress.stac` and `org.nvmexpress.stac.debug` at
//! `/org/nvmexpress/stac` with upstream's members and shapes, and follows
//! stafd: its name on the bus, its `log_pages_changed` and `dc_removed`
//! signals, and its `get_all_log_pages(true)` answer.
//!
//! As in stafd, DH-HMAC-CHAP secrets are shown as `<redacted>` unless the
//! bus says the caller is root (docs/behaviour.md §11.9 \[REC\]).

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use nvmf_kernel::sysfs::ControllerInfo;
use stas_daemon::dbus::contract::{self, key, stac, staf};
use stas_daemon::dbus::{
    add_device_attrs, bus_builder, claim_name, export_interfaces, operation_text, py_bool,
    py_repr_str, timer_text, ControllerDicts, OrderedDict,
};
use zbus::message::Type as MessageType;
use zbus::names::{OwnedUniqueName, UniqueName};
use zbus::{fdo, Connection, MatchRule, MessageStream};

use crate::ioc::{IocStatus, Stage, SLOW_RETRY};
use crate::service::{Input, ServiceHandle};
use crate::staf::{parse_all_log_pages, StafView};

pub use stac::{BUS_NAME, OBJECT_PATH};
/// When to ask stafd again after a failed `get_all_log_pages`.
const STAF_RETRY: Duration = Duration::from_secs(5);
/// A burst of stafd's signals is over once it pauses this long: the first
/// signal is fetched at once, those that came during that fetch cost one
/// more fetch when they pause (upstream soaks every signal for 1.5 s).
const BURST_PAUSE: Duration = Duration::from_millis(100);
/// How long stafd may take to answer `get_all_log_pages`.
const STAF_CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// What the D-Bus objects answer from: the I/O controllers (stacd adds
/// nothing to `process_info`).
pub type DbusConfig = stas_daemon::dbus::DbusConfig<IocStatus>;

/// Python's repr of the DLPE dict, or `None`.
fn dlpe_repr(s: &IocStatus) -> String {
    let Some(e) = &s.dlpe else {
        return "None".to_owned();
    };
    let items: Vec<String> = stas_daemon::dlpe::to_dict(e)
        .iter()
        .map(|(k, v)| format!("{}: {}", py_repr_str(k), py_repr_str(v)))
        .collect();
    format!("{{{}}}", items.join(", "))
}

/// The dicts of §11.5.2 and §11.5.3 for an I/O controller.
impl ControllerDicts for IocStatus {
    /// The info dict (§11.5.2): the controller-id dict plus connect
    /// attempts, the retry timer and the connect operation in flight.
    fn info_dict(&self, redact: bool) -> OrderedDict {
        let mut d = self.controller_id_dict(redact);
        d.set(key::CONNECT_ATTEMPTS, self.connect_attempts.to_string());
        let interval = self.retry_in.unwrap_or(SLOW_RETRY);
        d.set(key::RETRY_CONNECT_TIMER, timer_text(interval, None));
        if self.stage == Stage::Connecting {
            d.set(
                contract::DcOperation::Connect.key(),
                operation_text(
                    self.connect_attempts.saturating_sub(1),
                    self.last_error.as_deref(),
                ),
            );
        }
        d
    }

    /// The details dict (§11.5.3): the info dict plus the sysfs attributes
    /// of the bound device (`dev`), `connected` and the DLPE.
    fn details_dict(&self, redact: bool, dev: Option<&ControllerInfo>) -> OrderedDict {
        let mut d = self.info_dict(redact);
        let dctype = dev
            .and_then(|i| i.dctype)
            .map(|t| t.stas_str().into_owned())
            .unwrap_or_default();
        add_device_attrs(&mut d, dev, dctype);
        d.set(key::CONNECTED, py_bool(self.connected()));
        d.set(key::DLPE, dlpe_repr(self));
        d.set(key::DLPE_NCC, py_bool(self.ncc()));
        d
    }

    fn device(&self) -> Option<&str> {
        self.device.as_deref()
    }
}

/// `org.nvmexpress.stac` over stacd's I/O controllers.
pub type StacInterface = stas_daemon::dbus::StacInterface<IocStatus>;

/// `org.nvmexpress.stac.debug` over stacd's I/O controllers.
pub type StacDebug = stas_daemon::dbus::StacDebug<IocStatus>;

/// Builds the connection of `builder` with both interfaces exported at
/// [`OBJECT_PATH`]. Requests no name (see [`serve`]).
pub async fn export(
    builder: zbus::connection::Builder<'_>,
    cfg: DbusConfig,
) -> zbus::Result<Connection> {
    let cfg = Arc::new(cfg);
    let main = StacInterface::new(cfg.clone());
    export_interfaces(builder, OBJECT_PATH, main, StacDebug::new(cfg)).await
}

/// Connects to the system bus (or `address`), exports the objects, then
/// asks for [`BUS_NAME`] without queueing: a second stacd fails with
/// [`zbus::Error::NameTaken`].
pub async fn serve(address: Option<&str>, cfg: DbusConfig) -> zbus::Result<Connection> {
    let conn = export(bus_builder(address)?, cfg).await?;
    claim_name(&conn, BUS_NAME).await?;
    Ok(conn)
}

/// Asks stafd for every log page; any failure is "unknown", never "empty".
async fn fetch(conn: &Connection) -> StafView {
    let call = async {
        contract::proxy::<contract::StafProxy<'_>>(conn)
            .await?
            .get_all_log_pages(true)
            .await
    };
    let text = match tokio::time::timeout(STAF_CALL_TIMEOUT, call).await {
        Ok(Ok(text)) => text,
        Ok(Err(e)) => {
            log::error!("Failed to connect to staf: {e}");
            return StafView::Unknown;
        }
        Err(_) => {
            log::error!(
                "Failed to connect to staf: no answer to get_all_log_pages within {} s",
                STAF_CALL_TIMEOUT.as_secs()
            );
            return StafView::Unknown;
        }
    };
    match parse_all_log_pages(&text) {
        Ok(dcs) => StafView::Known(dcs),
        Err(e) => {
            log::error!("{e}");
            StafView::Unknown
        }
    }
}

/// The signals of stafd's current owner: a match rule on its unique name,
/// so the bus does not route anybody else's `org.nvmexpress.staf` signals
/// to us (and a unicast forgery is refused by the sender check below).
async fn owner_signals(conn: &Connection, owner: &UniqueName<'_>) -> zbus::Result<MessageStream> {
    let rule = MatchRule::builder()
        .msg_type(MessageType::Signal)
        .sender(owner.as_str())?
        .interface(staf::INTERFACE)?
        .path(staf::OBJECT_PATH)?
        .build();
    MessageStream::for_match_rule(rule, conn, None).await
}

/// The next signal of `signals`, or never while there is no owner.
async fn next_signal(signals: &mut Option<MessageStream>) -> Option<zbus::Result<zbus::Message>> {
    match signals {
        Some(s) => s.next().await,
        None => std::future::pending().await,
    }
}

/// What [`follow_stafd`] did, for tests and debug output.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FollowStats {
    /// `get_all_log_pages` calls made.
    pub fetches: u64,
    /// Signals taken from stafd's owner.
    pub signals: u64,
    /// Signals refused: not from the current owner of stafd's name.
    pub refused: u64,
}

/// Follows stafd on `conn` for as long as the daemon runs: fetches its log
/// pages when it appears and after its signals, and reports it unknown when
/// it goes away (§7.3).
///
/// Only the current owner of `org.nvmexpress.staf` is listened to (the
/// match rule is re-armed on its unique name when the owner changes), and
/// the loop that drains signals never waits for a call: a fetch runs on its
/// own, one at a time, and signals meanwhile only mark the view stale; the
/// next fetch waits for them to pause ([`BURST_PAUSE`]). A burst of any
/// size costs at most two fetches, and no flood can fill the connection's
/// queues so that a reply is never read.
pub async fn follow_stafd(conn: Connection, service: ServiceHandle) -> zbus::Result<()> {
    follow_stafd_counting(conn, service, Arc::default()).await
}

/// [`follow_stafd`], counting into `stats`.
pub async fn follow_stafd_counting(
    conn: Connection,
    service: ServiceHandle,
    stats: Arc<std::sync::Mutex<FollowStats>>,
) -> zbus::Result<()> {
    let count = |f: fn(&mut FollowStats)| f(&mut stas_daemon::lock(&stats));
    let bus = fdo::DBusProxy::new(&conn).await?;
    let mut owners = bus
        .receive_name_owner_changed_with_args(&[(0, staf::BUS_NAME)])
        .await?;
    let staf_name = zbus::names::BusName::try_from(staf::BUS_NAME)?;
    let mut owner: Option<OwnedUniqueName> = bus.get_name_owner(staf_name).await.ok();
    let mut signals = match &owner {
        Some(o) => Some(owner_signals(&conn, o).await?),
        None => {
            log::info!("stafd is not on the bus yet; waiting for it");
            None
        }
    };
    // Bumped on every owner change: a fetch started for an earlier owner
    // says nothing about the current one.
    let mut generation = 0u64;
    let mut stale = owner.is_some();
    let mut fetching: Option<(u64, tokio::task::JoinHandle<StafView>)> = None;
    // A failed call while stafd is on the bus is asked again later.
    let mut retry_at: Option<tokio::time::Instant> = None;
    // Signals came while the last fetch ran: a burst is going on, and the
    // next fetch waits for it to pause.
    let mut in_burst = false;
    let mut last_signal = tokio::time::Instant::now();
    loop {
        let mut burst_pause: Option<tokio::time::Instant> = None;
        if stale && fetching.is_none() && owner.is_some() {
            let due = last_signal + BURST_PAUSE;
            if in_burst && tokio::time::Instant::now() < due {
                burst_pause = Some(due);
            } else {
                stale = false;
                in_burst = false;
                retry_at = None;
                count(|s| s.fetches += 1);
                let c = conn.clone();
                fetching = Some((generation, tokio::spawn(async move { fetch(&c).await })));
            }
        }
        tokio::select! {
            change = owners.next() => {
                let Some(change) = change else { return Ok(()) };
                let Ok(args) = change.args() else { continue };
                generation = generation.wrapping_add(1);
                owner = args.new_owner().as_ref().map(|o| OwnedUniqueName::from(o.to_owned()));
                signals = match &owner {
                    Some(o) => Some(owner_signals(&conn, o).await?),
                    None => None,
                };
                if owner.is_some() {
                    log::info!("stafd appeared on the bus");
                    stale = true;
                } else {
                    log::info!("stafd left the bus");
                    stale = false;
                    retry_at = None;
                    service.send(Input::Staf(StafView::Unknown));
                }
            }
            msg = next_signal(&mut signals) => {
                let Some(msg) = msg else { return Ok(()) };
                let Ok(m) = msg else { continue };
                let header = m.header();
                let from_owner = header
                    .sender()
                    .zip(owner.as_ref())
                    .is_some_and(|(s, o)| s.as_str() == o.as_str());
                if from_owner {
                    count(|s| s.signals += 1);
                    stale = true;
                    last_signal = tokio::time::Instant::now();
                } else {
                    count(|s| s.refused += 1);
                    log::debug!(
                        "refused a staf signal from {:?}: not stafd",
                        header.sender().map(|s| s.to_string())
                    );
                }
            }
            done = async {
                match &mut fetching {
                    Some((_, job)) => job.await,
                    None => std::future::pending().await,
                }
            } => {
                let Some((fetched_for, _)) = fetching.take() else { continue };
                in_burst = stale;
                let view = done.unwrap_or(StafView::Unknown);
                if fetched_for != generation {
                    continue;
                }
                if view == StafView::Unknown && owner.is_some() {
                    retry_at = Some(tokio::time::Instant::now() + STAF_RETRY);
                }
                service.send(Input::Staf(view));
            }
            () = tokio::time::sleep_until(retry_at.unwrap_or_else(tokio::time::Instant::now)), if retry_at.is_some() => {
                retry_at = None;
                stale |= owner.is_some();
            }
            () = tokio::time::sleep_until(burst_pause.unwrap_or_else(tokio::time::Instant::now)), if burst_pause.is_some() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may panic

    use nvmf_proto::dlp::{DiscoveryLogEntry, Tsas};
    use nvmf_proto::types::{AdrFam, CntrlType, EFlags, SecType, SubType, TrType};
    use stas_tid::{Tid, TidContext};

    use super::*;
    use crate::ioc::Source;

    fn status() -> IocStatus {
        let cid = [
            ("transport", "tcp"),
            ("traddr", "10.0.0.9"),
            ("trsvcid", "4420"),
            ("subsysnqn", "nqn.a"),
            ("dhchap-ctrl-secret", "DHHC-1:00:c2VjcmV0:"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let tid = Tid::from_cid(
            &cid,
            &TidContext {
                host_nqn: "nqn.host".into(),
                ignore_iface: false,
            },
        );
        IocStatus {
            tid,
            source: Source::LogPage,
            device: Some("nvme4".into()),
            connect_attempts: 0,
            stage: Stage::Connected,
            dlpe: Some(DiscoveryLogEntry {
                trtype: TrType::Tcp,
                adrfam: AdrFam::Ipv4,
                subtype: SubType::Nvme,
                traddr: "10.0.0.9".into(),
                trsvcid: "4420".into(),
                subnqn: "nqn.a".into(),
                portid: 1,
                cntlid: 0xffff,
                asqsz: 32,
                eflags: EFlags(EFlags::NCC),
                tsas: Tsas::tcp(SecType::None),
                ..DiscoveryLogEntry::default()
            }),
            listed_by: None,
            last_error: None,
            retry_in: None,
        }
    }

    #[test]
    fn the_interfaces_have_the_contracts_names() {
        use zbus::object_server::Interface;

        assert_eq!(
            <StacInterface as Interface>::name().as_str(),
            stac::INTERFACE
        );
        assert_eq!(
            <StacDebug as Interface>::name().as_str(),
            stac::DEBUG_INTERFACE
        );
    }

    #[test]
    fn details_have_upstreams_keys_in_order_and_secrets_redacted() {
        let dev = ControllerInfo {
            name: "nvme4".into(),
            hostnqn: Some("nqn.host".into()),
            cntrltype: Some(CntrlType::Io),
            model: Some("Linux".into()),
            ..ControllerInfo::default()
        };
        let d = status().details_dict(true, Some(&dev));
        let keys: Vec<&str> = d.keys().collect();
        // Upstream's order, one key after the other (none has a comma).
        assert_eq!(
            keys.join(","),
            "traddr,trsvcid,transport,subsysnqn,host-iface,host-traddr,dhchap-ctrl-secret,\
             host-nqn,device,connect attempts,retry connect timer,hostid,hostnqn,model,serial,\
             dctype,cntrltype,connected,dlpe,dlpe.eflags.ncc"
        );
        assert_eq!(
            d.get("dhchap-ctrl-secret"),
            Some(stas_daemon::dbus::REDACTED)
        );
        assert_eq!(d.get("connected"), Some("True"));
        assert_eq!(d.get("cntrltype"), Some("io"));
        assert_eq!(d.get("dlpe.eflags.ncc"), Some("True"));
        assert_eq!(d.get("retry connect timer"), Some("60.0s [off]"));
        let dlpe = d.get("dlpe").unwrap();
        assert!(
            dlpe.starts_with("{'trtype': 'tcp', 'adrfam': 'ipv4', 'traddr': '10.0.0.9'"),
            "{dlpe}"
        );
        assert!(dlpe.contains("'tsas': \"{'sectype': 'none'}\""), "{dlpe}");
        let root = status().details_dict(false, None);
        assert_eq!(root.get("dhchap-ctrl-secret"), Some("DHHC-1:00:c2VjcmV0:"));
        let mut none = status();
        none.dlpe = None;
        assert_eq!(none.details_dict(false, None).get("dlpe"), Some("None"));
    }
}
