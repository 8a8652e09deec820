//! The D-Bus contract of stafd and stacd (docs/behaviour.md §11): bus
//! names, object paths, interface, member and signal names, the dict keys
//! the daemons write and their clients read, and client proxies for both
//! daemons. The daemons serve these names, stacd follows stafd through them
//! and stafctl/stacctl call through them; upstream's own Python clients use
//! the same names, so none of them may change.
//!
//! zbus's `#[interface]` and `#[proxy]` attributes take string literals
//! only, so the names also stand in the proxy attributes below, in the
//! shared interfaces of `server.rs` and in stafd's main interface; tests
//! check every one of them against the constants here.

// The TID methods and the signal have seven or eight string arguments.
#![allow(clippy::too_many_arguments)]

use zbus::proxy::CacheProperties;
use zbus::Connection;

use super::OrderedDict;

/// stafd's names.
pub mod staf {
    /// The well-known bus name stafd owns.
    pub const BUS_NAME: &str = "org.nvmexpress.staf";
    /// The object both interfaces live on.
    pub const OBJECT_PATH: &str = "/org/nvmexpress/staf";
    /// The main interface.
    pub const INTERFACE: &str = "org.nvmexpress.staf";
    /// The debug interface.
    pub const DEBUG_INTERFACE: &str = "org.nvmexpress.staf.debug";
}

/// stacd's names.
pub mod stac {
    /// The well-known bus name stacd owns.
    pub const BUS_NAME: &str = "org.nvmexpress.stac";
    /// The object both interfaces live on.
    pub const OBJECT_PATH: &str = "/org/nvmexpress/stac";
    /// The main interface.
    pub const INTERFACE: &str = "org.nvmexpress.stac";
    /// The debug interface.
    pub const DEBUG_INTERFACE: &str = "org.nvmexpress.stac.debug";
}

/// Member names, the same on both daemons.
pub mod member {
    /// `list_controllers(b) -> aa{ss}`, main interface.
    pub const LIST_CONTROLLERS: &str = "list_controllers";
    /// `get_log_pages(sssssss) -> aa{ss}`, stafd's main interface.
    pub const GET_LOG_PAGES: &str = "get_log_pages";
    /// `get_all_log_pages(b) -> s`, stafd's main interface.
    pub const GET_ALL_LOG_PAGES: &str = "get_all_log_pages";
    /// Signal `log_pages_changed(ssssssss)`, stafd's main interface.
    pub const LOG_PAGES_CHANGED: &str = "log_pages_changed";
    /// Signal `dc_removed()`, stafd's main interface.
    pub const DC_REMOVED: &str = "dc_removed";
    /// `process_info() -> s`, debug interface.
    pub const PROCESS_INFO: &str = "process_info";
    /// `controller_info(sssssss) -> s`, debug interface.
    pub const CONTROLLER_INFO: &str = "controller_info";
    /// Property `tron` (read-write `b`), debug interface.
    pub const TRON: &str = "tron";
    /// Property `log_level` (read-only `s`), debug interface.
    pub const LOG_LEVEL: &str = "log_level";
}

/// The keys of the controller dicts (§11.5.1 - §11.5.3) and of the
/// `get_all_log_pages` JSON (§11.6).
pub mod key {
    /// Transport address.
    pub const TRADDR: &str = "traddr";
    /// Transport service id (port).
    pub const TRSVCID: &str = "trsvcid";
    /// Transport (`tcp`, `rdma`, `fc`, `loop`).
    pub const TRANSPORT: &str = "transport";
    /// Subsystem NQN.
    pub const SUBSYSNQN: &str = "subsysnqn";
    /// Host interface.
    pub const HOST_IFACE: &str = "host-iface";
    /// Host transport address.
    pub const HOST_TRADDR: &str = "host-traddr";
    /// Host NQN.
    pub const HOST_NQN: &str = "host-nqn";
    /// Kernel device (`nvmeN`, `nvme?` when unbound).
    pub const DEVICE: &str = "device";
    /// Connect attempts so far.
    pub const CONNECT_ATTEMPTS: &str = "connect attempts";
    /// The retry-connect timer text.
    pub const RETRY_CONNECT_TIMER: &str = "retry connect timer";
    /// Where a DC came from (stafd).
    pub const ORIGIN: &str = "origin";
    /// `True` / `False`: a kernel connection is bound and live (details).
    pub const CONNECTED: &str = "connected";
    /// Sysfs `hostid` (details).
    pub const HOSTID: &str = "hostid";
    /// Sysfs `hostnqn` (details).
    pub const HOSTNQN: &str = "hostnqn";
    /// Sysfs `model` (details).
    pub const MODEL: &str = "model";
    /// Sysfs `serial` (details).
    pub const SERIAL: &str = "serial";
    /// Sysfs `dctype` (details).
    pub const DCTYPE: &str = "dctype";
    /// Sysfs `cntrltype` (details).
    pub const CNTRLTYPE: &str = "cntrltype";
    /// Python's repr of the I/O controller's DLPE (stacd's details).
    pub const DLPE: &str = "dlpe";
    /// `True` / `False`: the DLPE's NCC flag (stacd's details).
    pub const DLPE_NCC: &str = "dlpe.eflags.ncc";
    /// A DC's dict in a `get_all_log_pages` element.
    pub const DISCOVERY_CONTROLLER: &str = "discovery-controller";
    /// A DC's log page entries in a `get_all_log_pages` element.
    pub const LOG_PAGES: &str = "log-pages";
    /// The mDNS view in stafd's `process_info` (§10.9).
    pub const AVAHI: &str = "avahi";
}

/// The seven TID fields, in the argument order of `get_log_pages`,
/// `controller_info` and (before `device`) `log_pages_changed`.
pub const TID_KEYS: [&str; 7] = [
    key::TRANSPORT,
    key::TRADDR,
    key::TRSVCID,
    key::SUBSYSNQN,
    key::HOST_TRADDR,
    key::HOST_IFACE,
    key::HOST_NQN,
];

/// A step of stafd's connect - register - read pipeline for one DC, as
/// the DC's info dict shows it while it is in flight: one key, whose
/// value is upstream's operation text (§11.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DcOperation {
    /// Connecting (or adopting a kernel connection).
    Connect,
    /// DIM registration.
    Register,
    /// Reading the Supported Log Pages log page.
    GetSupportedLogPage,
    /// Reading the discovery log page.
    GetLogPage,
}

impl DcOperation {
    /// Every operation, in pipeline order.
    pub const ALL: [Self; 4] = [
        Self::Connect,
        Self::Register,
        Self::GetSupportedLogPage,
        Self::GetLogPage,
    ];

    /// Its key in the info dict (upstream's spelling).
    pub fn key(self) -> &'static str {
        match self {
            Self::Connect => "connect operation",
            Self::Register => "register operation",
            Self::GetSupportedLogPage => "get supported log page operation",
            Self::GetLogPage => "get log page operation",
        }
    }
}

/// Whether stafd has read a DC's log page, as its controller dict in
/// `get_all_log_pages(true)` says: stafd writes it (the operation keys and
/// `connected`), stacd reads it to tell "the DC lists nothing" from "stafd
/// has not read the DC yet".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogPageState {
    /// Connected with nothing in flight: the page stafd serves is the DC's
    /// word. A dict without `connected` (not detailed) reads as this too.
    #[default]
    Read,
    /// Not connected, nothing in flight.
    Disconnected,
    /// A pipeline step is in flight: the page is not read (again) yet.
    InFlight(DcOperation),
}

impl LogPageState {
    /// The state a DC's dict shows; `get` looks a key up in it.
    pub fn from_dict<'a>(get: impl Fn(&str) -> Option<&'a str>) -> Self {
        if let Some(op) = DcOperation::ALL
            .into_iter()
            .find(|op| get(op.key()).is_some())
        {
            return Self::InFlight(op);
        }
        if get(key::CONNECTED) == Some(super::py_bool(false)) {
            Self::Disconnected
        } else {
            Self::Read
        }
    }

    /// Whether an empty page in this state means "the DC lists nothing".
    pub fn is_read(self) -> bool {
        self == Self::Read
    }
}

// ---------------------------------------------------------------------------
// Client proxies. Built without a property cache: a client asks when it
// wants to know, and building one then costs no call on the bus.

/// stafd's main interface, as a client calls it.
#[zbus::proxy(
    interface = "org.nvmexpress.staf",
    default_service = "org.nvmexpress.staf",
    default_path = "/org/nvmexpress/staf",
    gen_blocking = false
)]
pub trait Staf {
    /// One dict per DC: its controller-id dict, or its details dict.
    #[zbus(name = "list_controllers")]
    fn list_controllers(&self, detailed: bool) -> zbus::Result<Vec<OrderedDict>>;

    /// The cached log page entries of the DC with this TID, or `[]`.
    #[zbus(name = "get_log_pages")]
    fn get_log_pages(
        &self,
        transport: &str,
        traddr: &str,
        trsvcid: &str,
        subsysnqn: &str,
        host_traddr: &str,
        host_iface: &str,
        host_nqn: &str,
    ) -> zbus::Result<Vec<OrderedDict>>;

    /// Every DC with its log page entries, as JSON text (§11.6).
    #[zbus(name = "get_all_log_pages")]
    fn get_all_log_pages(&self, detailed: bool) -> zbus::Result<String>;

    /// A DC's log page was read.
    #[zbus(signal, name = "log_pages_changed")]
    fn log_pages_changed(
        &self,
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
    fn dc_removed(&self) -> zbus::Result<()>;
}

/// stacd's main interface, as a client calls it.
#[zbus::proxy(
    interface = "org.nvmexpress.stac",
    default_service = "org.nvmexpress.stac",
    default_path = "/org/nvmexpress/stac",
    gen_blocking = false
)]
pub trait Stac {
    /// One dict per I/O controller: its controller-id dict, or its details.
    #[zbus(name = "list_controllers")]
    fn list_controllers(&self, detailed: bool) -> zbus::Result<Vec<OrderedDict>>;
}

/// The debug interface's members, the same on both daemons; one proxy
/// trait per daemon, as the interface name differs.
macro_rules! debug_proxy {
    ($(#[$doc:meta])* $name:ident, $iface:tt, $service:tt, $path:tt) => {
        $(#[$doc])*
        #[zbus::proxy(
            interface = $iface,
            default_service = $service,
            default_path = $path,
            gen_blocking = false
        )]
        pub trait $name {
            /// Debug tracing (writes are limited to root by the bus policy).
            #[zbus(property, name = "tron")]
            fn tron(&self) -> zbus::Result<bool>;

            /// Turns debug tracing on or off.
            #[zbus(property, name = "tron")]
            fn set_tron(&self, on: bool) -> zbus::Result<()>;

            /// `DEBUG` or `INFO`.
            #[zbus(property, name = "log_level")]
            fn log_level(&self) -> zbus::Result<String>;

            /// The daemon's state as JSON (§11.5.5).
            #[zbus(name = "process_info")]
            fn process_info(&self) -> zbus::Result<String>;

            /// The info dict of the controller with this TID as JSON, or `{}`.
            #[zbus(name = "controller_info")]
            fn controller_info(
                &self,
                transport: &str,
                traddr: &str,
                trsvcid: &str,
                subsysnqn: &str,
                host_traddr: &str,
                host_iface: &str,
                host_nqn: &str,
            ) -> zbus::Result<String>;
        }
    };
}

debug_proxy!(
    /// stafd's debug interface, as a client calls it.
    StafDebug,
    "org.nvmexpress.staf.debug",
    "org.nvmexpress.staf",
    "/org/nvmexpress/staf"
);
debug_proxy!(
    /// stacd's debug interface, as a client calls it.
    StacDebug,
    "org.nvmexpress.stac.debug",
    "org.nvmexpress.stac",
    "/org/nvmexpress/stac"
);

/// Builds a proxy of type `P` on `conn` without a property cache, at its
/// default name and path.
pub async fn proxy<'c, P>(conn: &Connection) -> zbus::Result<P>
where
    P: From<zbus::Proxy<'c>> + zbus::proxy::Defaults,
{
    zbus::proxy::Builder::<P>::new(conn)
        .cache_properties(CacheProperties::No)
        .build()
        .await
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests may panic

    use zbus::proxy::Defaults;

    use super::*;

    fn defaults<P: Defaults>() -> (
        Option<&'static str>,
        Option<&'static str>,
        Option<&'static str>,
    ) {
        (
            P::DESTINATION.as_ref().map(|n| n.as_str()),
            P::PATH.as_ref().map(|p| p.as_str()),
            P::INTERFACE.as_ref().map(|i| i.as_str()),
        )
    }

    #[test]
    fn the_proxies_use_the_contracts_names() {
        assert_eq!(
            defaults::<StafProxy<'_>>(),
            (
                Some(staf::BUS_NAME),
                Some(staf::OBJECT_PATH),
                Some(staf::INTERFACE)
            )
        );
        assert_eq!(
            defaults::<StafDebugProxy<'_>>(),
            (
                Some(staf::BUS_NAME),
                Some(staf::OBJECT_PATH),
                Some(staf::DEBUG_INTERFACE)
            )
        );
        assert_eq!(
            defaults::<StacProxy<'_>>(),
            (
                Some(stac::BUS_NAME),
                Some(stac::OBJECT_PATH),
                Some(stac::INTERFACE)
            )
        );
        assert_eq!(
            defaults::<StacDebugProxy<'_>>(),
            (
                Some(stac::BUS_NAME),
                Some(stac::OBJECT_PATH),
                Some(stac::DEBUG_INTERFACE)
            )
        );
    }

    #[test]
    fn log_page_state_reads_the_operation_keys_and_connected() {
        let state = |pairs: &[(&'static str, &'static str)]| {
            let pairs = pairs.to_vec();
            LogPageState::from_dict(move |k| pairs.iter().find(|(pk, _)| *pk == k).map(|p| p.1))
        };
        assert_eq!(state(&[]), LogPageState::Read);
        assert_eq!(state(&[(key::CONNECTED, "True")]), LogPageState::Read);
        assert_eq!(
            state(&[(key::CONNECTED, "False")]),
            LogPageState::Disconnected
        );
        for op in DcOperation::ALL {
            assert_eq!(
                state(&[(key::CONNECTED, "True"), (op.key(), "{}")]),
                LogPageState::InFlight(op)
            );
        }
    }
}
