//! stafctl: look at and steer a running stafd over D-Bus.
//!
//! Same subcommands and options as nvme-stas's stafctl. Output is a readable
//! table by default and JSON with `--json` (upstream prints Python pprint
//! text, which is neither).
//!
//! Exit status: 0 success; 1 stafd unreachable, access denied, or no
//! subcommand; 2 usage error.

use std::collections::HashMap;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use nvmf_proto::WELL_KNOWN_DISCOVERY_NQN;
use serde_json::Value;
use tools::output::table;

const BUS_NAME: &str = "org.nvmexpress.staf";
const PATH: &str = "/org/nvmexpress/staf";
const IFACE: &str = "org.nvmexpress.staf";
const DEBUG_IFACE: &str = "org.nvmexpress.staf.debug";

#[derive(Debug, Parser)]
#[command(
    name = "stafctl",
    about = "Query and steer stafd, the NVMe-oF discovery controller daemon",
    disable_version_flag = true
)]
struct Cli {
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,
    /// The D-Bus bus to use instead of the system bus (also $STAS_BUS_ADDRESS).
    #[arg(long, global = true, hide = true)]
    bus_address: Option<String>,
    /// Print the version and exit.
    #[arg(short = 'v', long)]
    version: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Turn debug tracing on.
    Tron,
    /// Turn debug tracing off.
    Troff,
    /// Everything stafd knows: process information and every controller.
    Status,
    /// List the discovery controllers.
    Ls {
        /// Show every detail.
        #[arg(short = 'd', long)]
        detailed: bool,
    },
    /// The cached discovery log page of one discovery controller.
    Dlp(DlpArgs),
    /// The cached discovery log pages of all discovery controllers.
    Adlp {
        /// Show every detail of each controller.
        #[arg(short = 'd', long)]
        detailed: bool,
    },
}

#[derive(Debug, Args)]
struct DlpArgs {
    /// Transport.
    #[arg(short = 't', long, default_value = "tcp", value_parser = ["tcp", "rdma", "fc", "loop"])]
    transport: String,
    /// Discovery controller address.
    #[arg(short = 'a', long)]
    traddr: String,
    /// Discovery controller port.
    #[arg(short = 's', long)]
    trsvcid: String,
    /// Local address.
    #[arg(short = 'w', long, default_value = "")]
    host_traddr: String,
    /// Local interface.
    #[arg(short = 'f', long, default_value = "")]
    host_iface: String,
    /// Host NQN (default: the one in /etc/stas/sys.conf).
    #[arg(short = 'q', long)]
    host_nqn: Option<String>,
    /// Discovery subsystem NQN.
    #[arg(short = 'n', long, default_value = WELL_KNOWN_DISCOVERY_NQN)]
    nqn: String,
}

/// A failed call, classified for the message.
enum Failure {
    Unreachable(String),
    Denied(String),
    Other(String),
}

impl From<zbus::Error> for Failure {
    fn from(e: zbus::Error) -> Self {
        let text = e.to_string();
        match &e {
            zbus::Error::MethodError(name, _, _)
                if name.as_str() == "org.freedesktop.DBus.Error.AccessDenied" =>
            {
                Self::Denied(text)
            }
            zbus::Error::MethodError(name, _, _)
                if matches!(
                    name.as_str(),
                    "org.freedesktop.DBus.Error.ServiceUnknown"
                        | "org.freedesktop.DBus.Error.NameHasNoOwner"
                ) =>
            {
                Self::Unreachable(text)
            }
            zbus::Error::InputOutput(_) | zbus::Error::Address(_) | zbus::Error::Handshake(_) => {
                Self::Unreachable(text)
            }
            _ => Self::Other(text),
        }
    }
}

type Dicts = Vec<HashMap<String, String>>;

struct Client {
    conn: zbus::Connection,
}

impl Client {
    async fn connect(address: Option<&str>) -> Result<Self, Failure> {
        let conn = match address {
            Some(a) => zbus::connection::Builder::address(a)?.build().await?,
            None => zbus::Connection::system().await?,
        };
        Ok(Self { conn })
    }

    async fn call<B, R>(&self, iface: &str, method: &str, body: &B) -> Result<R, Failure>
    where
        B: serde::Serialize + zbus::zvariant::DynamicType,
        R: for<'d> zbus::zvariant::DynamicDeserialize<'d>,
    {
        let reply = self
            .conn
            .call_method(Some(BUS_NAME), PATH, Some(iface), method, body)
            .await?;
        reply
            .body()
            .deserialize::<R>()
            .map_err(|e| Failure::Other(e.to_string()))
    }

    async fn set_tron(&self, on: bool) -> Result<bool, Failure> {
        let value = zbus::zvariant::Value::from(on);
        let _: () = self
            .call(
                "org.freedesktop.DBus.Properties",
                "Set",
                &(DEBUG_IFACE, "tron", value),
            )
            .await?;
        let v: zbus::zvariant::OwnedValue = self
            .call(
                "org.freedesktop.DBus.Properties",
                "Get",
                &(DEBUG_IFACE, "tron"),
            )
            .await?;
        bool::try_from(v).map_err(|e| Failure::Other(e.to_string()))
    }
}

/// Column order of the controller-id dict (§11.5.1).
const ID_KEYS: &[&str] = &[
    "device",
    "transport",
    "traddr",
    "trsvcid",
    "subsysnqn",
    "host-traddr",
    "host-iface",
    "host-nqn",
];
/// Columns of a log page table.
const DLPE_KEYS: &[&str] = &[
    "trtype", "adrfam", "traddr", "trsvcid", "subnqn", "subtype", "treq", "portid", "eflags",
];

fn dict_table(dicts: &[HashMap<String, String>], keys: &[&str]) -> String {
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

/// `key: value` lines, the controller-id keys first, the rest sorted.
fn key_values(d: &HashMap<String, String>, indent: &str) -> String {
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

fn json(v: &impl serde::Serialize) -> Result<String, Failure> {
    serde_json::to_string_pretty(v)
        .map(|s| s + "\n")
        .map_err(|e| Failure::Other(e.to_string()))
}

fn seven(d: &HashMap<String, String>) -> (String, String, String, String, String, String, String) {
    let g = |k: &str| d.get(k).cloned().unwrap_or_default();
    (
        g("transport"),
        g("traddr"),
        g("trsvcid"),
        g("subsysnqn"),
        g("host-traddr"),
        g("host-iface"),
        g("host-nqn"),
    )
}

/// Runs `command`; returns what to print.
async fn run(cli: Cli, command: Command) -> Result<String, Failure> {
    use std::fmt::Write;
    let address = cli
        .bus_address
        .clone()
        .or_else(|| std::env::var("STAS_BUS_ADDRESS").ok());
    // Whatever stops us from reaching the bus means stafd cannot be reached.
    let c = Client::connect(address.as_deref())
        .await
        .map_err(|e| match e {
            Failure::Denied(t) => Failure::Denied(t),
            Failure::Unreachable(t) | Failure::Other(t) => Failure::Unreachable(t),
        })?;
    let mut out = String::new();
    match command {
        Command::Tron | Command::Troff => {
            let on = c.set_tron(matches!(command, Command::Tron)).await?;
            if cli.json {
                out.push_str(&json(&serde_json::json!({ "tron": on }))?);
            } else {
                let _ = writeln!(out, "tron = {}", if on { "True" } else { "False" });
            }
        }
        Command::Ls { detailed } => {
            let list: Dicts = c.call(IFACE, "list_controllers", &(detailed,)).await?;
            if cli.json {
                out.push_str(&json(&list)?);
            } else if detailed {
                for d in &list {
                    let _ = writeln!(out, "{}", key_values(d, "  ").trim_end_matches('\n'));
                    let _ = writeln!(out);
                }
            } else {
                let _ = write!(out, "{}", dict_table(&list, &ID_KEYS[..7]));
            }
        }
        Command::Dlp(a) => {
            let host_nqn = match a.host_nqn {
                Some(q) => q,
                None => {
                    let (sys, _) = stas_common::config::load_sysconf(
                        std::path::Path::new("/etc/stas/sys.conf"),
                        std::path::Path::new("/etc/nvme"),
                    )
                    .map_err(|e| Failure::Other(e.to_string()))?;
                    sys.hostnqn
                }
            };
            let args = (
                a.transport,
                a.traddr,
                a.trsvcid,
                a.nqn,
                a.host_traddr,
                a.host_iface,
                host_nqn,
            );
            let entries: Dicts = c.call(IFACE, "get_log_pages", &args).await?;
            if cli.json {
                out.push_str(&json(&entries)?);
            } else {
                let _ = write!(out, "{}", dict_table(&entries, DLPE_KEYS));
            }
        }
        Command::Adlp { detailed } => {
            let text: String = c.call(IFACE, "get_all_log_pages", &(detailed,)).await?;
            let v: Value = serde_json::from_str(&text)
                .map_err(|e| Failure::Other(format!("stafd sent bad JSON: {e}")))?;
            if cli.json {
                out.push_str(&json(&v)?);
            } else {
                for dc in v.as_array().map(Vec::as_slice).unwrap_or_default() {
                    let id = &dc["discovery-controller"];
                    let s = |k: &str| id[k].as_str().unwrap_or_default().to_owned();
                    let _ = writeln!(
                        out,
                        "{} {} {}:{} {}{}",
                        s("device"),
                        s("transport"),
                        s("traddr"),
                        s("trsvcid"),
                        s("subsysnqn"),
                        if s("host-iface").is_empty() {
                            String::new()
                        } else {
                            format!(" via {}", s("host-iface"))
                        }
                    );
                    let entries: Dicts =
                        serde_json::from_value(dc["log-pages"].clone()).unwrap_or_default();
                    for line in dict_table(&entries, DLPE_KEYS).lines() {
                        let _ = writeln!(out, "  {line}");
                    }
                    let _ = writeln!(out);
                }
            }
        }
        Command::Status => {
            let info: String = c.call(DEBUG_IFACE, "process_info", &()).await?;
            let info: Value =
                serde_json::from_str(&info).map_err(|e| Failure::Other(e.to_string()))?;
            let list: Dicts = c.call(IFACE, "list_controllers", &(true,)).await?;
            let mut controllers = Vec::new();
            for d in &list {
                let args = seven(d);
                let pages: Dicts = c.call(IFACE, "get_log_pages", &args).await?;
                let more: String = c.call(DEBUG_IFACE, "controller_info", &args).await?;
                let mut obj: serde_json::Map<String, Value> = d
                    .iter()
                    .map(|(k, v)| (k.clone(), Value::from(v.clone())))
                    .collect();
                if let Ok(Value::Object(m)) = serde_json::from_str::<Value>(&more) {
                    obj.extend(m);
                }
                obj.insert(
                    "log_pages".into(),
                    serde_json::to_value(&pages).unwrap_or_default(),
                );
                controllers.push((d.clone(), pages, Value::Object(obj)));
            }
            if cli.json {
                let mut v = info.clone();
                if let Value::Object(m) = &mut v {
                    m.insert(
                        "controllers".into(),
                        Value::Array(controllers.iter().map(|(_, _, o)| o.clone()).collect()),
                    );
                }
                out.push_str(&json(&v)?);
            } else {
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
                    let _ = write!(out, "{}", key_values(&flat, ""));
                }
                for (d, pages, _) in &controllers {
                    let _ = writeln!(
                        out,
                        "\ncontroller {}",
                        d.get("device").map_or("nvme?", String::as_str)
                    );
                    let _ = write!(out, "{}", key_values(d, "  "));
                    for line in dict_table(pages, DLPE_KEYS).lines() {
                        let _ = writeln!(out, "    {line}");
                    }
                }
            }
        }
    }
    Ok(out)
}

fn main() -> ExitCode {
    let mut cli = Cli::parse();
    if cli.version {
        println!("nvme-stas {} (stas, pure Rust)", env!("CARGO_PKG_VERSION"));
        return ExitCode::SUCCESS;
    }
    let Some(command) = cli.command.take() else {
        use clap::CommandFactory;
        let _ = Cli::command().print_help();
        return ExitCode::from(1);
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("stafctl: cannot start: {e}");
            return ExitCode::from(1);
        }
    };
    // No answer within this time is an answer: the bus or stafd is stuck.
    let limit = std::time::Duration::from_secs(30);
    let result = rt.block_on(async move {
        tokio::time::timeout(limit, run(cli, command))
            .await
            .unwrap_or_else(|_| Err(Failure::Unreachable(format!("no answer within {limit:?}"))))
    });
    match result {
        Ok(text) => {
            // A reader that went away (`| head`) is not an error of ours.
            use std::io::Write;
            let _ = std::io::stdout().lock().write_all(text.as_bytes());
            ExitCode::SUCCESS
        }
        Err(Failure::Unreachable(e)) => {
            eprintln!("Unable to communicate with stafd over D-Bus. Is stafd running? ({e})");
            ExitCode::from(1)
        }
        Err(Failure::Denied(e)) => {
            eprintln!("stafctl: access denied by the D-Bus policy ({e}); changing tron needs root");
            ExitCode::from(1)
        }
        Err(Failure::Other(e)) => {
            eprintln!("stafctl: {e}");
            ExitCode::from(1)
        }
    }
}
