//! What stafctl and stacctl share: reaching a daemon over D-Bus, the
//! subcommands both have (`tron`, `troff`, `ls`, `status`), the table and
//! JSON renderings, and the exit codes and messages of docs/behaviour.md §12.4.

use std::collections::HashMap;
use std::fmt::Write;
use std::future::Future;
use std::process::ExitCode;
use std::time::Duration;

use serde_json::Value;
use stas_daemon::dbus::contract::{self, key};
use stas_daemon::dbus::OrderedDict;

use crate::output::table;

/// Which daemon a control tool talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DaemonKind {
    /// stafd ([`contract::staf`]).
    Staf,
    /// stacd ([`contract::stac`]).
    Stac,
}

/// A daemon a control tool talks to; where it lives on the bus (§11.1) is
/// in the D-Bus contract ([`contract::staf`], [`contract::stac`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Daemon {
    /// The daemon's name in messages (`stafd`).
    pub name: &'static str,
    /// The control tool's name in messages (`stafctl`).
    pub tool: &'static str,
    /// Which one it is (its names and proxies).
    pub kind: DaemonKind,
    /// Whether it caches discovery log pages (`get_log_pages`), which
    /// `status` then shows per controller.
    pub has_log_pages: bool,
}

/// stafd, as stafctl sees it.
pub const STAFD: Daemon = Daemon {
    name: "stafd",
    tool: "stafctl",
    kind: DaemonKind::Staf,
    has_log_pages: true,
};

/// stacd, as stacctl sees it.
pub const STACD: Daemon = Daemon {
    name: "stacd",
    tool: "stacctl",
    kind: DaemonKind::Stac,
    has_log_pages: false,
};

/// How long a whole command may take: no answer within this time is an
/// answer (the bus or the daemon is stuck).
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// A failed command, classified for the message and exit status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The bus or the daemon cannot be reached.
    Unreachable(String),
    /// The bus policy refused the call.
    Denied(String),
    /// Anything else (a malformed answer, a D-Bus error reply).
    Other(String),
}

/// What kind of failure a D-Bus error is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FailureKind {
    Unreachable,
    Denied,
    Other,
}

fn failure_kind(e: &zbus::Error) -> FailureKind {
    match e {
        // A property Set or Get through a proxy fails as an fdo error.
        zbus::Error::FDO(fdo) => match &**fdo {
            zbus::fdo::Error::AccessDenied(_) => FailureKind::Denied,
            zbus::fdo::Error::ServiceUnknown(_) | zbus::fdo::Error::NameHasNoOwner(_) => {
                FailureKind::Unreachable
            }
            zbus::fdo::Error::ZBus(inner) => failure_kind(inner),
            _ => FailureKind::Other,
        },
        zbus::Error::MethodError(name, _, _)
            if name.as_str() == "org.freedesktop.DBus.Error.AccessDenied" =>
        {
            FailureKind::Denied
        }
        zbus::Error::MethodError(name, _, _)
            if matches!(
                name.as_str(),
                "org.freedesktop.DBus.Error.ServiceUnknown"
                    | "org.freedesktop.DBus.Error.NameHasNoOwner"
            ) =>
        {
            FailureKind::Unreachable
        }
        zbus::Error::InputOutput(_) | zbus::Error::Address(_) | zbus::Error::Handshake(_) => {
            FailureKind::Unreachable
        }
        _ => FailureKind::Other,
    }
}

impl From<zbus::Error> for Failure {
    fn from(e: zbus::Error) -> Self {
        let text = e.to_string();
        match failure_kind(&e) {
            FailureKind::Unreachable => Self::Unreachable(text),
            FailureKind::Denied => Self::Denied(text),
            FailureKind::Other => Self::Other(text),
        }
    }
}

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Tables and `key  value` lines for people.
    Table,
    /// Pretty JSON for scripts.
    Json,
}

impl Format {
    /// `--json` given or not.
    pub fn from_json_flag(json: bool) -> Self {
        if json {
            Self::Json
        } else {
            Self::Table
        }
    }
}

/// The `aa{ss}` answers: one string dict per controller or log page entry.
pub type Dicts = Vec<HashMap<String, String>>;

fn dicts(answer: Vec<OrderedDict>) -> Dicts {
    answer
        .into_iter()
        .map(|d| d.0.into_iter().collect())
        .collect()
}

/// Calls `$call` on the debug proxy (`$p`) of `$client`'s daemon: the two
/// debug interfaces have the same members under different names.
macro_rules! on_debug {
    ($client:expr, $p:ident => $call:expr) => {
        match $client.daemon.kind {
            DaemonKind::Staf => {
                let $p = contract::proxy::<contract::StafDebugProxy<'_>>(&$client.conn).await?;
                $call
            }
            DaemonKind::Stac => {
                let $p = contract::proxy::<contract::StacDebugProxy<'_>>(&$client.conn).await?;
                $call
            }
        }
    };
}

/// A connection to the bus, aimed at one daemon.
#[derive(Debug)]
pub struct Client {
    conn: zbus::Connection,
    daemon: Daemon,
}

impl Client {
    /// Connects to the bus at `address`, or the system bus.
    pub async fn connect(daemon: Daemon, address: Option<&str>) -> Result<Self, Failure> {
        let conn = match address {
            Some(a) => zbus::connection::Builder::address(a)?.build().await?,
            None => zbus::Connection::system().await?,
        };
        Ok(Self { conn, daemon })
    }

    /// The daemon this client talks to.
    pub fn daemon(&self) -> Daemon {
        self.daemon
    }

    /// `list_controllers(detailed)`.
    pub async fn list_controllers(&self, detailed: bool) -> Result<Dicts, Failure> {
        let answer = match self.daemon.kind {
            DaemonKind::Staf => {
                contract::proxy::<contract::StafProxy<'_>>(&self.conn)
                    .await?
                    .list_controllers(detailed)
                    .await?
            }
            DaemonKind::Stac => {
                contract::proxy::<contract::StacProxy<'_>>(&self.conn)
                    .await?
                    .list_controllers(detailed)
                    .await?
            }
        };
        Ok(dicts(answer))
    }

    /// stafd's proxy; the other daemon has no log pages to ask for.
    async fn staf(&self) -> Result<contract::StafProxy<'_>, Failure> {
        if self.daemon.kind != DaemonKind::Staf {
            return Err(Failure::Other(format!(
                "{} caches no discovery log pages; ask stafd (stafctl)",
                self.daemon.name
            )));
        }
        Ok(contract::proxy(&self.conn).await?)
    }

    /// stafd's `get_log_pages` for the controller `tid` names.
    pub async fn get_log_pages(&self, tid: &TidArgs) -> Result<Dicts, Failure> {
        let (transport, traddr, trsvcid, subsysnqn, host_traddr, host_iface, host_nqn) = tid;
        let answer = self
            .staf()
            .await?
            .get_log_pages(
                transport,
                traddr,
                trsvcid,
                subsysnqn,
                host_traddr,
                host_iface,
                host_nqn,
            )
            .await?;
        Ok(dicts(answer))
    }

    /// stafd's `get_all_log_pages(detailed)`: JSON text.
    pub async fn get_all_log_pages(&self, detailed: bool) -> Result<String, Failure> {
        Ok(self.staf().await?.get_all_log_pages(detailed).await?)
    }

    /// `process_info()`: JSON text.
    pub async fn process_info(&self) -> Result<String, Failure> {
        Ok(on_debug!(self, p => p.process_info().await?))
    }

    /// `controller_info` for the controller `tid` names: JSON text.
    pub async fn controller_info(&self, tid: &TidArgs) -> Result<String, Failure> {
        let (transport, traddr, trsvcid, subsysnqn, host_traddr, host_iface, host_nqn) = tid;
        Ok(on_debug!(self, p => {
            p.controller_info(
                transport,
                traddr,
                trsvcid,
                subsysnqn,
                host_traddr,
                host_iface,
                host_nqn,
            )
            .await?
        }))
    }

    /// Sets the `tron` property, then reads it back (as upstream does).
    pub async fn set_tron(&self, on: bool) -> Result<bool, Failure> {
        Ok(on_debug!(self, p => {
            p.set_tron(on).await?;
            p.tron().await?
        }))
    }
}

/// Column order of the controller-id dict (§11.5.1).
pub const ID_KEYS: &[&str] = &[
    key::DEVICE,
    key::TRANSPORT,
    key::TRADDR,
    key::TRSVCID,
    key::SUBSYSNQN,
    key::HOST_TRADDR,
    key::HOST_IFACE,
    key::HOST_NQN,
];

/// Columns of a log page table.
pub const DLPE_KEYS: &[&str] = &[
    "trtype", "adrfam", "traddr", "trsvcid", "subnqn", "subtype", "treq", "portid", "eflags",
];

/// The `keys` columns of `dicts` as a table (missing keys are empty cells).
pub fn dict_table(dicts: &[HashMap<String, String>], keys: &[&str]) -> String {
    let rows: Vec<Vec<String>> = dicts
        .iter()
        .map(|d| {
            keys.iter()
                .map(|k| d.get(*k).cloned().unwrap_or_default())
                .collect()
        })
        .collect();
    table(keys, &rows)
}

/// `key  value` lines, the controller-id keys first, the rest sorted.
pub fn key_values(d: &HashMap<String, String>, indent: &str) -> String {
    let mut keys: Vec<&String> = d.keys().collect();
    keys.sort_by_key(|k| {
        (
            ID_KEYS.iter().position(|x| x == k).unwrap_or(usize::MAX),
            (*k).clone(),
        )
    });
    let width = keys.iter().map(|k| k.len()).max().unwrap_or(0);
    keys.iter()
        .map(|k| {
            format!(
                "{indent}{k:width$}  {}\n",
                d.get(*k).map_or("", String::as_str)
            )
        })
        .collect()
}

/// Pretty JSON with a final newline.
pub fn json(v: &impl serde::Serialize) -> Result<String, Failure> {
    serde_json::to_string_pretty(v)
        .map(|s| s + "\n")
        .map_err(|e| Failure::Other(e.to_string()))
}

/// The seven TID fields of a controller dict, in the order of
/// `get_log_pages` and `controller_info`.
pub type TidArgs = (String, String, String, String, String, String, String);

/// The TID arguments that name the controller of dict `d`.
pub fn tid_args(d: &HashMap<String, String>) -> TidArgs {
    let g = |k: &str| d.get(k).cloned().unwrap_or_default();
    let [transport, traddr, trsvcid, subsysnqn, host_traddr, host_iface, host_nqn] =
        contract::TID_KEYS.map(g);
    (
        transport,
        traddr,
        trsvcid,
        subsysnqn,
        host_traddr,
        host_iface,
        host_nqn,
    )
}

/// `tron` / `troff`: sets tracing and prints what the daemon reports back.
pub async fn tron(c: &Client, on: bool, format: Format) -> Result<String, Failure> {
    let on = c.set_tron(on).await?;
    match format {
        Format::Json => json(&serde_json::json!({ "tron": on })),
        Format::Table => Ok(format!("tron = {}\n", if on { "True" } else { "False" })),
    }
}

/// `ls [-d]`: the daemon's controllers, a table (or blocks of details).
pub async fn ls(c: &Client, detailed: bool, format: Format) -> Result<String, Failure> {
    let list = c.list_controllers(detailed).await?;
    let mut out = String::new();
    match format {
        Format::Json => out.push_str(&json(&list)?),
        Format::Table if detailed => {
            for d in &list {
                let _ = writeln!(out, "{}", key_values(d, "  ").trim_end_matches('\n'));
                let _ = writeln!(out);
            }
        }
        Format::Table => out.push_str(&dict_table(&list, &ID_KEYS[..7])),
    }
    Ok(out)
}

/// One controller of `status`: its details dict, its cached log page (if
/// the daemon has them) and everything merged into one object.
struct ControllerStatus {
    details: HashMap<String, String>,
    log_pages: Option<Dicts>,
    merged: Value,
}

/// `status`: `process_info` plus every controller's details merged with
/// its `controller_info` (and, for stafd, its log page under `log_pages`).
pub async fn status(c: &Client, format: Format) -> Result<String, Failure> {
    let info = c.process_info().await?;
    let info: Value = serde_json::from_str(&info).map_err(|e| {
        Failure::Other(format!(
            "{} sent bad JSON in process_info: {e}",
            c.daemon().name
        ))
    })?;
    let list = c.list_controllers(true).await?;
    let mut controllers = Vec::new();
    for details in list {
        let args = tid_args(&details);
        let log_pages: Option<Dicts> = if c.daemon().has_log_pages {
            Some(c.get_log_pages(&args).await?)
        } else {
            None
        };
        let more = c.controller_info(&args).await?;
        let mut obj: serde_json::Map<String, Value> = details
            .iter()
            .map(|(k, v)| (k.clone(), Value::from(v.clone())))
            .collect();
        if let Ok(Value::Object(m)) = serde_json::from_str::<Value>(&more) {
            obj.extend(m);
        }
        if let Some(pages) = &log_pages {
            obj.insert(
                "log_pages".into(),
                serde_json::to_value(pages).unwrap_or_default(),
            );
        }
        controllers.push(ControllerStatus {
            details,
            log_pages,
            merged: Value::Object(obj),
        });
    }
    let mut out = String::new();
    match format {
        Format::Json => {
            let mut v = info;
            if let Value::Object(m) = &mut v {
                m.insert(
                    "controllers".into(),
                    Value::Array(controllers.into_iter().map(|s| s.merged).collect()),
                );
            }
            out.push_str(&json(&v)?);
        }
        Format::Table => {
            if let Value::Object(m) = &info {
                let flat: HashMap<String, String> = m
                    .iter()
                    .filter(|(_, v)| !v.is_object())
                    .map(|(k, v)| {
                        (
                            k.clone(),
                            v.as_str().map_or_else(|| v.to_string(), str::to_owned),
                        )
                    })
                    .collect();
                out.push_str(&key_values(&flat, ""));
            }
            for s in &controllers {
                let _ = writeln!(
                    out,
                    "\ncontroller {}",
                    s.details.get(key::DEVICE).map_or("nvme?", String::as_str)
                );
                out.push_str(&key_values(&s.details, "  "));
                if let Some(pages) = &s.log_pages {
                    for line in dict_table(pages, DLPE_KEYS).lines() {
                        let _ = writeln!(out, "    {line}");
                    }
                }
            }
        }
    }
    Ok(out)
}

/// The process side of a control tool: connects to the bus at
/// `bus_address` (else $STAS_BUS_ADDRESS, else the system bus), runs
/// `command` within [`TIMEOUT`], prints its output and maps failures to
/// docs/behaviour.md §12.4's messages and exit status 1.
pub fn run<F, Fut>(daemon: Daemon, bus_address: Option<String>, command: F) -> ExitCode
where
    F: FnOnce(Client) -> Fut,
    Fut: Future<Output = Result<String, Failure>>,
{
    let address = bus_address.or_else(|| std::env::var(stas_daemon::dbus::ADDRESS_ENV).ok());
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("{}: cannot start: {e}", daemon.tool);
            return ExitCode::from(1);
        }
    };
    let result = rt.block_on(async move {
        let work = async move {
            // Whatever stops us from reaching the bus means the daemon
            // cannot be reached.
            let client =
                Client::connect(daemon, address.as_deref())
                    .await
                    .map_err(|e| match e {
                        Failure::Denied(t) => Failure::Denied(t),
                        Failure::Unreachable(t) | Failure::Other(t) => Failure::Unreachable(t),
                    })?;
            command(client).await
        };
        tokio::time::timeout(TIMEOUT, work)
            .await
            .unwrap_or_else(|_| {
                Err(Failure::Unreachable(format!(
                    "no answer within {TIMEOUT:?}"
                )))
            })
    });
    report(daemon, result)
}

/// Prints `result` (output on stdout, failure on stderr); the exit status.
fn report(daemon: Daemon, result: Result<String, Failure>) -> ExitCode {
    match result {
        Ok(text) => {
            // A reader that went away (`| head`) is not an error of ours.
            use std::io::Write;
            let _ = std::io::stdout().lock().write_all(text.as_bytes());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{}", failure_message(daemon, &e));
            ExitCode::from(1)
        }
    }
}

/// The message for a failure: upstream's wording when the daemon cannot
/// be reached, what to do otherwise.
pub fn failure_message(daemon: Daemon, failure: &Failure) -> String {
    let Daemon { name, tool, .. } = daemon;
    match failure {
        Failure::Unreachable(e) => {
            format!("Unable to communicate with {name} over D-Bus. Is {name} running? ({e})")
        }
        Failure::Denied(e) => {
            format!("{tool}: access denied by the D-Bus policy ({e}); changing tron needs root")
        }
        Failure::Other(e) => format!("{tool}: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dict(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn key_values_puts_id_keys_first_then_sorts() {
        let d = dict(&[
            ("zeta", "1"),
            ("traddr", "10.0.0.1"),
            ("alpha", "2"),
            ("device", "nvme0"),
        ]);
        assert_eq!(
            key_values(&d, "> "),
            "> device  nvme0\n> traddr  10.0.0.1\n> alpha   2\n> zeta    1\n"
        );
    }

    #[test]
    fn tid_args_follow_the_method_signature() {
        let d = dict(&[
            ("transport", "tcp"),
            ("traddr", "a"),
            ("trsvcid", "4420"),
            ("subsysnqn", "n"),
            ("host-traddr", "h"),
            ("host-iface", "eth0"),
            ("host-nqn", "q"),
        ]);
        assert_eq!(
            tid_args(&d),
            (
                "tcp".into(),
                "a".into(),
                "4420".into(),
                "n".into(),
                "h".into(),
                "eth0".into(),
                "q".into()
            )
        );
    }

    #[test]
    fn unreachable_names_the_daemon_as_upstream_does() {
        let f = Failure::Unreachable("x".into());
        assert!(failure_message(STACD, &f)
            .starts_with("Unable to communicate with stacd over D-Bus. Is stacd running?"));
        assert!(failure_message(STAFD, &f)
            .starts_with("Unable to communicate with stafd over D-Bus. Is stafd running?"));
        assert_eq!(
            failure_message(STACD, &Failure::Other("bad".into())),
            "stacctl: bad"
        );
    }

    #[test]
    fn missing_name_owner_is_unreachable_and_policy_refusal_is_denied() {
        let err = |name: &str| {
            let msg = zbus::message::Message::method_call("/", "m")
                .unwrap()
                .build(&())
                .unwrap();
            zbus::Error::MethodError(
                zbus::names::OwnedErrorName::try_from(name).unwrap(),
                None,
                msg,
            )
        };
        assert!(matches!(
            Failure::from(err("org.freedesktop.DBus.Error.ServiceUnknown")),
            Failure::Unreachable(_)
        ));
        assert!(matches!(
            Failure::from(err("org.freedesktop.DBus.Error.AccessDenied")),
            Failure::Denied(_)
        ));
        assert!(matches!(
            Failure::from(err("org.freedesktop.DBus.Error.UnknownMethod")),
            Failure::Other(_)
        ));
    }

    #[test]
    fn property_failures_through_a_proxy_are_classified_alike() {
        let fdo = |e: zbus::fdo::Error| zbus::Error::FDO(Box::new(e));
        assert!(matches!(
            Failure::from(fdo(zbus::fdo::Error::AccessDenied("no".into()))),
            Failure::Denied(_)
        ));
        assert!(matches!(
            Failure::from(fdo(zbus::fdo::Error::ServiceUnknown("gone".into()))),
            Failure::Unreachable(_)
        ));
        assert!(matches!(
            Failure::from(fdo(zbus::fdo::Error::ZBus(zbus::Error::Handshake(
                "refused".into()
            )))),
            Failure::Unreachable(_)
        ));
        assert!(matches!(
            Failure::from(fdo(zbus::fdo::Error::Failed("bad".into()))),
            Failure::Other(_)
        ));
    }
}
