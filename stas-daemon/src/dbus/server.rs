//! The server side both daemons share: what their D-Bus objects answer
//! from ([`DbusConfig`]), the debug interface ([`StafDebug`],
//! [`StacDebug`]), `list_controllers` (all of stacd's main interface,
//! [`StacInterface`]), and getting on the bus.

// controller_info has seven string arguments (the TID fields).
#![allow(clippy::too_many_arguments)]

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use nvmf_kernel::sysfs::ControllerInfo;
use stas_config::SysConf;
use zbus::message::Header;
use zbus::object_server::Interface;
use zbus::{fdo, Connection};

use super::contract::key;
use super::{
    controller_id_dict, is_secret, must_redact, py_bool, tid_from_fields, Json, OrderedDict,
    SharedTidContext,
};
use crate::{ControllerStatus, StatusBoard};

/// Reads the sysfs attributes of a kernel device (`nvmeN`) for the details
/// dict; may block briefly (it is run on the blocking pool).
pub type DeviceInfoFn = Arc<dyn Fn(&str) -> Option<ControllerInfo> + Send + Sync>;

/// stafd's zero-touch (mDNS) view, kept up to date by its zeroconf task
/// and shown as `avahi` in `process_info` (§10.9) while zeroconf runs.
pub type ZeroconfView = Arc<Mutex<Option<Json>>>;

/// A controller's status as the D-Bus objects show it (§11.5).
pub trait ControllerDicts: ControllerStatus + Send + Sync + 'static {
    /// The kernel device (`nvmeN`) while bound.
    fn device(&self) -> Option<&str>;

    /// The info dict (§11.5.2).
    fn info_dict(&self, redact: bool) -> OrderedDict;

    /// The details dict (§11.5.3), with the sysfs attributes of the bound
    /// device `dev`.
    fn details_dict(&self, redact: bool, dev: Option<&ControllerInfo>) -> OrderedDict;

    /// Whether its configuration holds a secret (to hide from non-root).
    fn has_secrets(&self) -> bool {
        self.tid().cfg.keys().any(|k| is_secret(k))
    }

    /// The controller-id dict (§11.5.1).
    fn controller_id_dict(&self, redact: bool) -> OrderedDict {
        controller_id_dict(self.tid(), self.device(), redact)
    }
}

/// What a daemon adds to the `process_info` JSON after the keys both have.
pub trait ProcessInfoExtra: Send + Sync + 'static {
    /// The extra fields, in order.
    fn process_info_extra(&self) -> Vec<(String, Json)>;
}

/// stacd adds nothing.
impl ProcessInfoExtra for () {
    fn process_info_extra(&self) -> Vec<(String, Json)> {
        Vec::new()
    }
}

/// stafd adds its mDNS view, while there is one.
impl ProcessInfoExtra for ZeroconfView {
    fn process_info_extra(&self) -> Vec<(String, Json)> {
        crate::lock(self)
            .clone()
            .map(|v| (key::AVAHI.to_owned(), v))
            .into_iter()
            .collect()
    }
}

/// What a daemon's D-Bus objects answer from: its controllers (`S`) and
/// what it adds to `process_info` (`X`).
#[derive(Clone)]
pub struct DbusConfig<S, X = ()> {
    /// The service's controllers.
    pub view: StatusBoard<S>,
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
    /// it the device attributes are "" (stafd's `dctype` comes from the
    /// DC's own status then).
    pub device_info: Option<DeviceInfoFn>,
    /// What only this daemon shows in `process_info` (stafd: its
    /// [`ZeroconfView`]; stacd: nothing).
    pub extra: X,
}

impl<S, X> DbusConfig<S, X> {
    /// A daemon's configuration on the running kernel: what the kernel
    /// accepts as `supported` says, device attributes read from sysfs
    /// under `paths`.
    pub fn on_kernel(
        view: StatusBoard<S>,
        tid_context: SharedTidContext,
        sys: SysConf,
        lkc_path: PathBuf,
        supported: &nvmf_kernel::fabrics::SupportedOptions,
        paths: nvmf_kernel::KernelPaths,
        extra: X,
    ) -> Self {
        Self {
            view,
            tid_context,
            sys,
            lkc_path: Some(lkc_path),
            kernel_tp8013: supported.contains("discovery"),
            kernel_host_iface: supported.contains("host_iface"),
            device_info: Some(Arc::new(move |dev: &str| {
                nvmf_kernel::sysfs::Sysfs::new(&paths)
                    .controller(dev)
                    .ok()
                    .flatten()
            })),
            extra,
        }
    }
}

impl<S, X> std::fmt::Debug for DbusConfig<S, X> {
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

impl<S: ControllerDicts, X: ProcessInfoExtra> DbusConfig<S, X> {
    /// The controller a `get_log_pages` / `controller_info` call names.
    pub fn find(&self, fields: [&str; 7]) -> Option<S> {
        let tid = tid_from_fields(fields, &self.tid_context.get());
        self.view.snapshot().into_iter().find(|s| s.tid() == &tid)
    }

    /// Sysfs attributes of the bound devices of `items`, read on the
    /// blocking pool.
    pub async fn with_device_info(&self, items: Vec<S>) -> Vec<(S, Option<ControllerInfo>)> {
        let Some(read) = self.device_info.clone() else {
            return items.into_iter().map(|s| (s, None)).collect();
        };
        let names: Vec<Option<String>> = items
            .iter()
            .map(|s| s.device().map(str::to_owned))
            .collect();
        let infos = tokio::task::spawn_blocking(move || {
            names
                .iter()
                .map(|n| n.as_deref().and_then(|n| read(n)))
                .collect::<Vec<_>>()
        })
        .await
        .unwrap_or_default();
        let mut infos = infos.into_iter();
        items
            .into_iter()
            .map(|s| (s, infos.next().flatten()))
            .collect()
    }

    /// The `process_info` JSON (§11.5.5).
    pub fn process_info_json(&self, redact: bool) -> String {
        super::process_info_json(
            &self.sys,
            self.lkc_path.as_deref(),
            self.kernel_tp8013,
            self.kernel_host_iface,
            redact,
            self.extra.process_info_extra(),
        )
    }

    /// `list_controllers`: one dict per controller, its controller-id dict
    /// or its details dict; secrets hidden unless the caller is root.
    pub async fn list_controllers(
        &self,
        detailed: bool,
        conn: &Connection,
        hdr: &Header<'_>,
    ) -> Vec<OrderedDict> {
        let items = self.view.snapshot();
        let redact = must_redact(items.iter().any(S::has_secrets), conn, hdr).await;
        if !detailed {
            return items.iter().map(|s| s.controller_id_dict(redact)).collect();
        }
        self.with_device_info(items)
            .await
            .iter()
            .map(|(s, dev)| s.details_dict(redact, dev.as_ref()))
            .collect()
    }

    /// `controller_info`: the info dict of the controller `fields` names
    /// as JSON, or `{}`.
    pub async fn controller_info(
        &self,
        fields: [&str; 7],
        conn: &Connection,
        hdr: &Header<'_>,
    ) -> String {
        match self.find(fields) {
            Some(s) => {
                let redact = must_redact(s.has_secrets(), conn, hdr).await;
                Json::from(&s.info_dict(redact)).dumps()
            }
            None => "{}".to_owned(),
        }
    }
}

/// The debug interface (§11.4): the same members on both daemons under
/// each daemon's interface name (zbus takes the name as a literal).
macro_rules! debug_interface {
    ($(#[$doc:meta])* $name:ident, $iface:tt) => {
        $(#[$doc])*
        pub struct $name<S, X = ()> {
            cfg: Arc<DbusConfig<S, X>>,
        }

        impl<S, X> $name<S, X> {
            /// The interface over `cfg`.
            pub fn new(cfg: Arc<DbusConfig<S, X>>) -> Self {
                Self { cfg }
            }
        }

        impl<S, X> std::fmt::Debug for $name<S, X> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($name))
                    .field("cfg", &self.cfg)
                    .finish()
            }
        }

        #[zbus::interface(name = $iface)]
        impl<S: ControllerDicts, X: ProcessInfoExtra> $name<S, X> {
            /// Debug tracing (writes are limited to root by the bus policy).
            #[zbus(property(emits_changed_signal = "false"), name = "tron")]
            fn tron(&self) -> bool {
                crate::logging::tron()
            }

            #[zbus(property, name = "tron")]
            fn set_tron(&mut self, on: bool) {
                crate::logging::set_tron(on);
                log::info!("tron set to {} over D-Bus", py_bool(on));
            }

            /// `DEBUG` or `INFO`.
            #[zbus(property(emits_changed_signal = "false"), name = "log_level")]
            fn log_level(&self) -> String {
                crate::logging::level_name().to_owned()
            }

            /// The daemon's state as JSON (§11.5.5).
            #[zbus(name = "process_info")]
            async fn process_info(
                &self,
                #[zbus(connection)] conn: &Connection,
                #[zbus(header)] hdr: Header<'_>,
            ) -> String {
                let redact = must_redact(self.cfg.sys.hostkey.is_some(), conn, &hdr).await;
                self.cfg.process_info_json(redact)
            }

            /// The info dict of the controller with this TID as JSON, or `{}`.
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
                let fields = [
                    transport,
                    traddr,
                    trsvcid,
                    subsysnqn,
                    host_traddr,
                    host_iface,
                    host_nqn,
                ];
                self.cfg.controller_info(fields, conn, &hdr).await
            }
        }
    };
}

debug_interface!(
    /// `org.nvmexpress.staf.debug`.
    StafDebug,
    "org.nvmexpress.staf.debug"
);
debug_interface!(
    /// `org.nvmexpress.stac.debug`.
    StacDebug,
    "org.nvmexpress.stac.debug"
);

/// `org.nvmexpress.stac`: stacd's main interface, which lists its I/O
/// controllers and nothing else.
pub struct StacInterface<S, X = ()> {
    cfg: Arc<DbusConfig<S, X>>,
}

impl<S, X> StacInterface<S, X> {
    /// The interface over `cfg`.
    pub fn new(cfg: Arc<DbusConfig<S, X>>) -> Self {
        Self { cfg }
    }
}

impl<S, X> std::fmt::Debug for StacInterface<S, X> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StacInterface")
            .field("cfg", &self.cfg)
            .finish()
    }
}

#[zbus::interface(name = "org.nvmexpress.stac")]
impl<S: ControllerDicts, X: ProcessInfoExtra> StacInterface<S, X> {
    /// One dict per I/O controller: its controller-id dict, or its details.
    #[zbus(name = "list_controllers")]
    async fn list_controllers(
        &self,
        detailed: bool,
        #[zbus(connection)] conn: &Connection,
        #[zbus(header)] hdr: Header<'_>,
    ) -> Vec<OrderedDict> {
        self.cfg.list_controllers(detailed, conn, &hdr).await
    }
}

/// Builds the connection of `builder` with a daemon's `main` and `debug`
/// interfaces exported at `path`. Requests no name (see [`claim_name`]);
/// usable on peer-to-peer connections.
pub async fn export_interfaces<M: Interface, D: Interface>(
    builder: zbus::connection::Builder<'_>,
    path: &'static str,
    main: M,
    debug: D,
) -> zbus::Result<Connection> {
    let conn = builder
        .serve_at(path, main)?
        .serve_at(path, debug)?
        .build()
        .await?;
    log::debug!("D-Bus: {} and {} exported at {path}", M::name(), D::name());
    Ok(conn)
}

/// A connection builder for the bus at `address` (`--bus-address`,
/// `$STAS_BUS_ADDRESS`), or for the system bus.
pub fn bus_builder(address: Option<&str>) -> zbus::Result<zbus::connection::Builder<'static>> {
    match address {
        Some(a) => zbus::connection::Builder::address(a),
        None => zbus::connection::Builder::system(),
    }
}

/// Asks for the well-known `name` on `conn` after the objects are exported
/// (upstream's order: a client that sees the name finds the object).
///
/// Fails with [`zbus::Error::NameTaken`] if another process owns the name:
/// the name is neither queued for nor taken over, and not given up to a
/// later instance either (zbus's default flags would allow both).
pub async fn claim_name(conn: &Connection, name: &'static str) -> zbus::Result<()> {
    conn.request_name_with_flags(name, fdo::RequestNameFlags::DoNotQueue.into())
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use stas_tid::Tid;

    use super::*;
    use crate::dbus::contract::{stac, staf};

    #[derive(Debug, Clone)]
    struct Nothing(Tid);

    impl ControllerStatus for Nothing {
        fn tid(&self) -> &Tid {
            &self.0
        }
    }

    impl ControllerDicts for Nothing {
        fn device(&self) -> Option<&str> {
            None
        }
        fn info_dict(&self, _: bool) -> OrderedDict {
            OrderedDict::default()
        }
        fn details_dict(&self, _: bool, _: Option<&ControllerInfo>) -> OrderedDict {
            OrderedDict::default()
        }
    }

    #[test]
    fn the_interfaces_have_the_contracts_names() {
        assert_eq!(
            <StacInterface<Nothing> as Interface>::name().as_str(),
            stac::INTERFACE
        );
        assert_eq!(
            <StafDebug<Nothing, ZeroconfView> as Interface>::name().as_str(),
            staf::DEBUG_INTERFACE
        );
        assert_eq!(
            <StacDebug<Nothing> as Interface>::name().as_str(),
            stac::DEBUG_INTERFACE
        );
    }
}
