//! What both daemons' D-Bus APIs share (docs/behaviour.md §11): the
//! ordered `a{ss}` dict, Python's text forms (timer, repr, `json.dumps`),
//! secrets and who may see them, and the TID context arguments are read with.
//!
//! Upstream's `a{ss}` dicts are Python dicts, which keep insertion order;
//! [`OrderedDict`] puts the entries on the wire in that order (zvariant's own
//! dict types sort their keys).

use std::fmt::Write as _;
use std::sync::{Arc, RwLock};

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, Serializer};
use zbus::message::Header;
use zbus::names::BusName;
use zbus::zvariant::{Signature, Type};
use zbus::{fdo, Connection};

use stas_config::SysConf;
use stas_tid::{Tid, TidContext};

use contract::key;

pub mod contract;
mod server;

pub use server::{
    bus_builder, claim_name, export_interfaces, ControllerDicts, DbusConfig, DeviceInfoFn,
    ProcessInfoExtra, StacDebug, StacInterface, StafDebug, ZeroconfView,
};

/// The environment variable that overrides the system bus address (tests).
pub const ADDRESS_ENV: &str = "STAS_BUS_ADDRESS";
/// What a secret reads as for callers other than root.
pub const REDACTED: &str = "<redacted>";

/// An `a{ss}` whose entries go on the wire in insertion order, as a Python
/// dict does (zvariant's `Dict`, like a `BTreeMap`, would sort the keys).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrderedDict(pub Vec<(String, String)>);

impl OrderedDict {
    /// The value of `key`, if present.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The keys, in order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(k, _)| k.as_str())
    }

    /// Sets `key`, keeping its position if it is already present (Python
    /// dict assignment).
    pub fn set(&mut self, key: &str, value: impl Into<String>) {
        let value = value.into();
        match self.0.iter_mut().find(|(k, _)| k == key) {
            Some(entry) => entry.1 = value,
            None => self.0.push((key.to_owned(), value)),
        }
    }
}

impl Type for OrderedDict {
    const SIGNATURE: &'static Signature =
        <std::collections::HashMap<String, String> as Type>::SIGNATURE;
}

impl Serialize for OrderedDict {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for OrderedDict {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Entries;
        impl<'de> Visitor<'de> for Entries {
            type Value = OrderedDict;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string-to-string dict")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<OrderedDict, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = access.next_entry::<String, String>()? {
                    entries.push(entry);
                }
                Ok(OrderedDict(entries))
            }
        }
        deserializer.deserialize_map(Entries)
    }
}

/// The TID context D-Bus arguments are turned into TIDs with; shared so a
/// reload can change `ignore-iface` ([`SharedTidContext::set`]).
#[derive(Debug, Clone, Default)]
pub struct SharedTidContext(Arc<RwLock<TidContext>>);

impl SharedTidContext {
    /// A context shared from now on.
    pub fn new(ctx: TidContext) -> Self {
        Self(Arc::new(RwLock::new(ctx)))
    }

    /// The context of a host with NQN `host_nqn`.
    pub fn for_host(host_nqn: &str, ignore_iface: bool) -> Self {
        Self::new(TidContext {
            host_nqn: host_nqn.to_owned(),
            ignore_iface,
        })
    }

    /// A reload's new `ignore-iface` (the host NQN needs a restart).
    pub fn set_ignore_iface(&self, ignore_iface: bool) {
        self.0
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .ignore_iface = ignore_iface;
    }

    /// Replaces the context (at reload).
    pub fn set(&self, ctx: TidContext) {
        *self
            .0
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = ctx;
    }

    /// The current context.
    pub fn get(&self) -> TidContext {
        self.0
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

/// Whether a per-controller key holds a secret: `dhchap-secret`,
/// `dhchap-ctrl-secret`, and anything else named like one.
pub fn is_secret(key: &str) -> bool {
    key.contains("secret")
}

/// Python's `repr()` of a float number of seconds (`60.0`, `1.5`).
pub fn py_float(secs: f64) -> String {
    if secs.is_finite() && secs.fract() == 0.0 {
        format!("{secs:.1}")
    } else {
        format!("{secs}")
    }
}

/// Upstream's timer text (§11.7): `<interval>s [off]` when stopped,
/// `<interval>s [<remaining>s]` while running (`0s` once due).
pub fn timer_text(interval: std::time::Duration, remaining: Option<std::time::Duration>) -> String {
    let iv = py_float(interval.as_secs_f64());
    match remaining {
        None => format!("{iv}s [off]"),
        Some(r) if r.is_zero() => format!("{iv}s [0s]"),
        Some(r) => format!("{iv}s [{}s]", py_float(r.as_secs_f64())),
    }
}

/// Python's `repr()` of a `str`.
pub fn py_repr_str(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len().saturating_add(2));
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if u32::from(c) < 0x20 || (0x7f..0xa0).contains(&u32::from(c)) => {
                let _ = write!(out, "\\x{:02x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// Upstream's operation text (§11.7): the repr of
/// `{'fail count': n, 'completed': False, 'alive': True[, 'error': '…']}`.
pub fn operation_text(fail_count: u32, error: Option<&str>) -> String {
    let mut t = format!("{{'fail count': {fail_count}, 'completed': False, 'alive': True");
    if let Some(e) = error {
        let _ = write!(t, ", 'error': {}", py_repr_str(e));
    }
    t.push('}');
    t
}

pub fn py_bool(b: bool) -> &'static str {
    if b {
        "True"
    } else {
        "False"
    }
}

// ---------------------------------------------------------------------------
// JSON as Python's `json.dumps` writes it: `", "` and `": "` separators on
// one line, non-ASCII escaped as `\uXXXX`.

/// A JSON value whose objects keep their key order.
#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    /// `null`.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// A string.
    Str(String),
    /// An array.
    Arr(Vec<Json>),
    /// An object, in key order.
    Obj(Vec<(String, Json)>),
}

impl From<&OrderedDict> for Json {
    fn from(d: &OrderedDict) -> Self {
        Json::Obj(
            d.0.iter()
                .map(|(k, v)| (k.clone(), Json::Str(v.clone())))
                .collect(),
        )
    }
}

impl From<Option<String>> for Json {
    fn from(v: Option<String>) -> Self {
        v.map_or(Json::Null, Json::Str)
    }
}

impl Json {
    /// The text `json.dumps()` gives.
    pub fn dumps(&self) -> String {
        let mut out = String::new();
        self.write(&mut out);
        out
    }

    fn write(&self, out: &mut String) {
        match self {
            Json::Null => out.push_str("null"),
            Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Json::Str(s) => json_str(s, out),
            Json::Arr(items) => {
                out.push('[');
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    v.write(out);
                }
                out.push(']');
            }
            Json::Obj(entries) => {
                out.push('{');
                for (i, (k, v)) in entries.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    json_str(k, out);
                    out.push_str(": ");
                    v.write(out);
                }
                out.push('}');
            }
        }
    }
}

/// A JSON string as Python's `ensure_ascii` encoder writes it: printable
/// ASCII as is, `"` `\` and the five short escapes, everything else as
/// `\uXXXX` (lowercase hex, UTF-16 surrogate pairs above U+FFFF).
pub fn json_str(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            ' '..='~' => out.push(c),
            c => {
                let mut units = [0u16; 2];
                for u in c.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{u:04x}");
                }
            }
        }
    }
    out.push('"');
}

// ---------------------------------------------------------------------------
// Who is calling.

/// Whether the sender of a method call is root, as the bus daemon says.
/// Without a bus (peer-to-peer) or on any failure: no.
pub async fn caller_is_root(conn: &Connection, hdr: &Header<'_>) -> bool {
    let Some(sender) = hdr.sender() else {
        return false;
    };
    if !conn.is_bus() {
        return false;
    }
    let proxy = match fdo::DBusProxy::builder(conn)
        .cache_properties(zbus::proxy::CacheProperties::No)
        .build()
        .await
    {
        Ok(p) => p,
        Err(e) => {
            log::debug!("D-Bus: cannot ask the bus who {sender} is: {e}");
            return false;
        }
    };
    match proxy
        .get_connection_unix_user(BusName::Unique(sender.to_owned()))
        .await
    {
        Ok(uid) => uid == 0,
        Err(e) => {
            log::debug!("D-Bus: cannot get the user of {sender}: {e}");
            false
        }
    }
}

/// Whether secrets must be hidden from this caller; asks the bus only when
/// there is a secret to hide.
pub async fn must_redact(any_secret: bool, conn: &Connection, hdr: &Header<'_>) -> bool {
    any_secret && !caller_is_root(conn, hdr).await
}

/// The controller-id dict (§11.5.1): `traddr, trsvcid, transport,
/// subsysnqn, host-iface, host-traddr`, the extra configuration keys,
/// `host-nqn`, `device`.
pub fn controller_id_dict(t: &Tid, device: Option<&str>, redact: bool) -> OrderedDict {
    let mut d = OrderedDict(
        [
            (key::TRADDR, &t.traddr),
            (key::TRSVCID, &t.trsvcid),
            (key::TRANSPORT, &t.transport),
            (key::SUBSYSNQN, &t.subsysnqn),
            (key::HOST_IFACE, &t.host_iface),
            (key::HOST_TRADDR, &t.host_traddr),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.clone()))
        .collect(),
    );
    for (k, v) in &t.cfg {
        if k == key::HOST_NQN {
            continue;
        }
        let v = if redact && is_secret(k) {
            REDACTED
        } else {
            v.as_str()
        };
        d.set(k, v);
    }
    d.set(key::HOST_NQN, t.host_nqn.clone());
    d.set(key::DEVICE, device.unwrap_or("nvme?"));
    d
}

/// The `process_info` JSON (§11.5.5), with the keys both daemons have values
/// for, then `extra` (stafd's `avahi`).
pub fn process_info_json(
    sys: &SysConf,
    lkc_path: Option<&std::path::Path>,
    kernel_tp8013: bool,
    kernel_host_iface: bool,
    redact: bool,
    extra: Vec<(String, Json)>,
) -> String {
    let hostkey = sys.hostkey.as_ref().map(|k| {
        if redact {
            REDACTED.to_owned()
        } else {
            k.clone()
        }
    });
    let mut fields = vec![
        ("tron".into(), Json::Bool(crate::logging::tron())),
        (
            "log-level".into(),
            Json::Str(crate::logging::level_name().into()),
        ),
        ("hostnqn".into(), Json::Str(sys.hostnqn.clone())),
        ("hostid".into(), Json::Str(sys.hostid.clone())),
        ("hostkey".into(), hostkey.into()),
        ("symname".into(), sys.symname.clone().into()),
        (
            "last known config file".into(),
            lkc_path.map(|p| p.display().to_string()).into(),
        ),
        (
            "kernel support.TP8013".into(),
            Json::Str(py_bool(kernel_tp8013).into()),
        ),
        (
            "kernel support.host_iface".into(),
            Json::Str(py_bool(kernel_host_iface).into()),
        ),
    ];
    fields.extend(extra);
    Json::Obj(fields).dumps()
}

/// The TID of a `get_log_pages` / `controller_info` call (§11.8): the seven
/// fields, with the TID rules applied; host-nqn is always given, so it is
/// taken literally even if empty.
pub fn tid_from_fields(fields: [&str; 7], ctx: &TidContext) -> Tid {
    let cid: stas_config::Cid = contract::TID_KEYS
        .iter()
        .zip(fields)
        .map(|(k, v)| ((*k).to_owned(), v.to_owned()))
        .collect();
    Tid::from_cid(&cid, ctx)
}

/// The sysfs part of the details dict (§11.5.3): `hostid`, `hostnqn`,
/// `model`, `serial`, `dctype`, `cntrltype`, each "" when unknown.
pub fn add_device_attrs(
    d: &mut OrderedDict,
    dev: Option<&nvmf_kernel::sysfs::ControllerInfo>,
    dctype: String,
) {
    let text = |v: Option<&String>| {
        v.filter(|v| v.as_str() != "(efault)")
            .cloned()
            .unwrap_or_default()
    };
    d.set(key::HOSTID, text(dev.and_then(|i| i.hostid.as_ref())));
    d.set(key::HOSTNQN, text(dev.and_then(|i| i.hostnqn.as_ref())));
    d.set(key::MODEL, text(dev.and_then(|i| i.model.as_ref())));
    d.set(key::SERIAL, text(dev.and_then(|i| i.serial.as_ref())));
    d.set(key::DCTYPE, dctype);
    d.set(
        key::CNTRLTYPE,
        dev.and_then(|i| i.cntrltype)
            .map(|t| t.stas_str().into_owned())
            .unwrap_or_default(),
    );
}
