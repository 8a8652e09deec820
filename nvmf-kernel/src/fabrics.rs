//! `/dev/nvme-fabrics`: which options the kernel accepts, and connecting
//! controllers (docs/kernel-interface.md §1).
//!
//! A connect is one open, one write of the option string and one read of
//! `instance=N,cntlid=M`. The write blocks until the controller is live or
//! setup failed — seconds, sometimes a minute — and the kernel serializes all
//! connects, so call [`Fabrics::connect`] from a worker thread.

use std::collections::BTreeSet;
use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::path::PathBuf;

use nix::errno::Errno;
use nvmf_proto::WELL_KNOWN_DISCOVERY_NQN;

use crate::{ConnectFailure, KernelError, KernelPaths};

/// The options libnvme assumes when the kernel cannot list them (before
/// 5.17, where reading /dev/nvme-fabrics fails with EINVAL).
pub const LEGACY_OPTIONS: &[&str] = &[
    "transport",
    "nqn",
    "traddr",
    "trsvcid",
    "host_traddr",
    "host_iface",
    "hostnqn",
    "hostid",
    "queue_size",
    "nr_io_queues",
    "nr_write_queues",
    "nr_poll_queues",
    "reconnect_delay",
    "ctrl_loss_tmo",
    "fast_io_fail_tmo",
    "keep_alive_tmo",
    "tos",
    "duplicate_connect",
    "disable_sqflow",
    "hdr_digest",
    "data_digest",
    "discovery",
];

/// What /dev/nvme-fabrics lists on Debian 12's 6.1 kernel (the lab's),
/// for fakes and tests.
pub const LINUX_6_1_OPTIONS: &str = "instance=-1,cntlid=-1,transport=%s,traddr=%s,trsvcid=%s,nqn=%s,queue_size=%d,nr_io_queues=%d,reconnect_delay=%d,ctrl_loss_tmo=%d,keep_alive_tmo=%d,hostnqn=%s,host_traddr=%s,host_iface=%s,hostid=%s,duplicate_connect,disable_sqflow,hdr_digest,data_digest,nr_write_queues=%d,nr_poll_queues=%d,tos=%d,fast_io_fail_tmo=%d,discovery,dhchap_secret=%s,dhchap_ctrl_secret=%s\n";

/// The connect options the running kernel accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SupportedOptions {
    names: BTreeSet<String>,
    /// Whether the list came from the kernel (false: the legacy default set).
    pub probed: bool,
}

impl SupportedOptions {
    /// Parses the text a read of a fresh /dev/nvme-fabrics fd returns:
    /// `instance=-1,cntlid=-1,transport=%s,...` (the first two are not options).
    pub fn parse(text: &str) -> Self {
        let names = text
            .split([',', '\n', ' '])
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(|t| t.split('=').next().unwrap_or(t))
            .filter(|n| *n != "instance" && *n != "cntlid")
            .map(str::to_owned)
            .collect();
        Self {
            names,
            probed: true,
        }
    }

    /// The documented default set, for kernels that cannot list theirs.
    pub fn legacy() -> Self {
        Self {
            names: LEGACY_OPTIONS.iter().map(|s| (*s).to_owned()).collect(),
            probed: false,
        }
    }

    /// Whether the kernel accepts `option`.
    pub fn contains(&self, option: &str) -> bool {
        self.names.contains(option)
    }

    /// All accepted option names.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.names.iter().map(String::as_str)
    }
}

/// What is being connected: the kernel treats discovery controllers apart
/// (no I/O queues, keep-alive only if asked).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ControllerKind {
    /// A discovery controller.
    Discovery,
    /// An I/O controller.
    Io,
}

/// Everything a connect can say. Unset values are not sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectOptions {
    /// Discovery or I/O controller.
    pub kind: ControllerKind,
    /// `tcp`, `rdma`, `fc` or `loop`.
    pub transport: String,
    /// Subsystem NQN (the well-known discovery NQN for most DCs).
    pub nqn: String,
    /// Transport address (optional for loop).
    pub traddr: Option<String>,
    /// Transport service id (port).
    pub trsvcid: Option<String>,
    /// Local address to connect from.
    pub host_traddr: Option<String>,
    /// Local interface to connect through (TCP).
    pub host_iface: Option<String>,
    /// Host NQN.
    pub hostnqn: Option<String>,
    /// Host ID (UUID text).
    pub hostid: Option<String>,
    /// Keep-alive timeout in seconds; a persistent DC connection needs one.
    pub keep_alive_tmo: Option<u32>,
    /// Seconds between reconnect attempts.
    pub reconnect_delay: Option<u32>,
    /// Seconds before giving up reconnecting (negative: never).
    pub ctrl_loss_tmo: Option<i32>,
    /// Seconds before failing I/O while reconnecting.
    pub fast_io_fail_tmo: Option<i32>,
    /// I/O queues (I/O controllers only).
    pub nr_io_queues: Option<u32>,
    /// Write queues (I/O controllers only).
    pub nr_write_queues: Option<u32>,
    /// Poll queues (I/O controllers only).
    pub nr_poll_queues: Option<u32>,
    /// I/O queue depth (I/O controllers only).
    pub queue_size: Option<u32>,
    /// IP type of service.
    pub tos: Option<i32>,
    /// Allow a second identical controller.
    pub duplicate_connect: bool,
    /// Disable SQ flow control.
    pub disable_sqflow: bool,
    /// TCP header digest.
    pub hdr_digest: bool,
    /// TCP data digest.
    pub data_digest: bool,
    /// DH-HMAC-CHAP host secret (I/O controllers only).
    pub dhchap_secret: Option<String>,
    /// DH-HMAC-CHAP controller secret (I/O controllers only).
    pub dhchap_ctrl_secret: Option<String>,
    /// TLS.
    pub tls: bool,
    /// Keyring serial for TLS.
    pub keyring: Option<u32>,
    /// TLS key serial.
    pub tls_key: Option<u32>,
    /// Secure channel concatenation.
    pub concat: bool,
}

impl ConnectOptions {
    /// A connection to `nqn` over `transport` at `traddr`.
    pub fn new(kind: ControllerKind, transport: &str, nqn: &str, traddr: Option<&str>) -> Self {
        Self {
            kind,
            transport: transport.to_owned(),
            nqn: nqn.to_owned(),
            traddr: traddr.map(str::to_owned),
            trsvcid: None,
            host_traddr: None,
            host_iface: None,
            hostnqn: None,
            hostid: None,
            keep_alive_tmo: None,
            reconnect_delay: None,
            ctrl_loss_tmo: None,
            fast_io_fail_tmo: None,
            nr_io_queues: None,
            nr_write_queues: None,
            nr_poll_queues: None,
            queue_size: None,
            tos: None,
            duplicate_connect: false,
            disable_sqflow: false,
            hdr_digest: false,
            data_digest: false,
            dhchap_secret: None,
            dhchap_ctrl_secret: None,
            tls: false,
            keyring: None,
            tls_key: None,
            concat: false,
        }
    }
}

/// An option left out of the connect string, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DroppedOption {
    /// The option name.
    pub name: &'static str,
    /// Why it was not sent.
    pub reason: String,
}

/// The option string to write, and what was left out of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptionString {
    /// The string (`nqn=...,transport=...,...`).
    pub text: String,
    /// Options that were set but not sent.
    pub dropped: Vec<DroppedOption>,
}

impl OptionString {
    /// The string with DH-HMAC-CHAP secrets replaced, for logs and errors.
    pub fn redacted(&self) -> String {
        self.text
            .split(',')
            .map(|item| match item.split_once('=') {
                Some((k, _)) if k.starts_with("dhchap_") => format!("{k}=<redacted>"),
                _ => item.to_owned(),
            })
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// Which per-transport options the kernel allows besides the generic ones
/// (docs/kernel-interface.md §1.3). `None` for a transport this crate does not know:
/// then only the kernel's own list filters.
fn transport_allows(transport: &str, option: &str) -> Option<bool> {
    let list: &[&str] = match transport {
        "tcp" => &[
            "traddr",
            "trsvcid",
            "reconnect_delay",
            "host_traddr",
            "ctrl_loss_tmo",
            "hdr_digest",
            "data_digest",
            "nr_write_queues",
            "nr_poll_queues",
            "tos",
            "host_iface",
            "tls",
            "keyring",
            "tls_key",
            "concat",
        ],
        "rdma" => &[
            "traddr",
            "trsvcid",
            "reconnect_delay",
            "host_traddr",
            "ctrl_loss_tmo",
            "nr_write_queues",
            "nr_poll_queues",
            "tos",
        ],
        "fc" => &["traddr", "host_traddr", "reconnect_delay", "ctrl_loss_tmo"],
        "loop" => &["traddr", "nr_write_queues", "nr_poll_queues"],
        _ => return None,
    };
    Some(list.contains(&option))
}

const GENERIC: &[&str] = &[
    "transport",
    "nqn",
    "queue_size",
    "nr_io_queues",
    "keep_alive_tmo",
    "hostnqn",
    "hostid",
    "duplicate_connect",
    "disable_sqflow",
    "discovery",
    "fast_io_fail_tmo",
    "dhchap_secret",
    "dhchap_ctrl_secret",
];

/// Builds the option string for `opts`, sending only what the kernel
/// accepts (libnvme's rules, docs/kernel-interface.md §1.4), in libnvme's order with
/// `nqn` first.
pub fn build_option_string(
    opts: &ConnectOptions,
    supported: &SupportedOptions,
) -> Result<OptionString, KernelError> {
    let discovery = opts.kind == ControllerKind::Discovery;
    let io = !discovery;
    let tr = opts.transport.as_str();
    let is_loop = tr == "loop";

    let mut items: Vec<(&'static str, Option<String>)> = Vec::new();
    let mut dropped = Vec::new();
    let mut add = |name: &'static str, value: Option<String>, applies: bool, why_not: &str| {
        if !applies {
            dropped.push(DroppedOption {
                name,
                reason: why_not.to_owned(),
            });
        } else {
            items.push((name, value));
        }
    };
    let not_io = "not sent to a discovery controller";

    if opts.nqn.is_empty() {
        return Err(KernelError::BadOptions("nqn is empty".into()));
    }
    if opts.nqn.len() >= 223 {
        return Err(KernelError::BadOptions(format!(
            "nqn is {} bytes, the kernel takes at most 222",
            opts.nqn.len()
        )));
    }
    if matches!(tr, "tcp" | "rdma" | "fc") && opts.traddr.as_deref().is_none_or(str::is_empty) {
        return Err(KernelError::BadOptions(format!(
            "traddr is required for transport {tr}"
        )));
    }
    if tr == "fc" && opts.host_traddr.as_deref().is_none_or(str::is_empty) {
        return Err(KernelError::BadOptions(
            "host_traddr is required for transport fc".into(),
        ));
    }

    add("nqn", Some(opts.nqn.clone()), true, "");
    add("transport", Some(opts.transport.clone()), true, "");
    if let Some(v) = opts.traddr.clone().filter(|v| !v.is_empty()) {
        add("traddr", Some(v), true, "");
    }
    if let Some(v) = opts
        .trsvcid
        .clone()
        .filter(|v| !v.is_empty() && v != "none")
    {
        add("trsvcid", Some(v), true, "");
    }
    if let Some(v) = opts
        .host_traddr
        .clone()
        .filter(|v| !v.is_empty() && v != "none")
    {
        add("host_traddr", Some(v), true, "");
    }
    if let Some(v) = opts
        .host_iface
        .clone()
        .filter(|v| !v.is_empty() && v != "none")
    {
        add("host_iface", Some(v), true, "");
    }
    if let Some(v) = opts.hostnqn.clone().filter(|v| !v.is_empty()) {
        add("hostnqn", Some(v), true, "");
    }
    if let Some(v) = opts.hostid.clone().filter(|v| !v.is_empty()) {
        add("hostid", Some(v), true, "");
    }
    if discovery && opts.nqn != WELL_KNOWN_DISCOVERY_NQN {
        // A unique discovery NQN (TP8013) is only a DC to the kernel when told so.
        add("discovery", None, true, "");
    }
    if let Some(v) = opts.dhchap_secret.clone() {
        add("dhchap_secret", Some(v), io, not_io);
    }
    if let Some(v) = opts.dhchap_ctrl_secret.clone() {
        add("dhchap_ctrl_secret", Some(v), io, not_io);
    }
    for (name, v) in [
        ("nr_io_queues", opts.nr_io_queues),
        ("nr_write_queues", opts.nr_write_queues),
        ("nr_poll_queues", opts.nr_poll_queues),
        ("queue_size", opts.queue_size),
    ] {
        if let Some(v) = v.filter(|v| *v > 0) {
            add(name, Some(v.to_string()), io, not_io);
        }
    }
    if let Some(v) = opts.keep_alive_tmo.filter(|v| *v > 0) {
        add("keep_alive_tmo", Some(v.to_string()), true, "");
    }
    let loop_no = "not valid for the loop transport";
    if let Some(v) = opts.reconnect_delay.filter(|v| *v > 0) {
        add("reconnect_delay", Some(v.to_string()), !is_loop, loop_no);
    }
    if let Some(v) = opts.ctrl_loss_tmo {
        add("ctrl_loss_tmo", Some(v.to_string()), !is_loop, loop_no);
    }
    if let Some(v) = opts.fast_io_fail_tmo.filter(|v| *v > 0) {
        add("fast_io_fail_tmo", Some(v.to_string()), !is_loop, loop_no);
    }
    if let Some(v) = opts.tos.filter(|v| *v >= 0) {
        add("tos", Some(v.to_string()), !is_loop, loop_no);
    }
    if let Some(v) = opts.keyring {
        add("keyring", Some(format!("{v:#010x}")), true, "");
    }
    if let Some(v) = opts.tls_key {
        add("tls_key", Some(format!("{v:#010x}")), true, "");
    }
    for (name, set) in [
        ("duplicate_connect", opts.duplicate_connect),
        ("disable_sqflow", opts.disable_sqflow),
        ("hdr_digest", opts.hdr_digest),
        ("data_digest", opts.data_digest),
        ("tls", opts.tls),
        ("concat", opts.concat),
    ] {
        if set {
            add(name, None, true, "");
        }
    }

    let mut text = String::new();
    for (name, value) in items {
        if !GENERIC.contains(&name) && transport_allows(tr, name) == Some(false) {
            dropped.push(DroppedOption {
                name,
                reason: format!("not valid for transport {tr}"),
            });
            continue;
        }
        if !supported.contains(name) {
            if matches!(name, "nqn" | "transport") {
                return Err(KernelError::BadOptions(format!(
                    "the kernel does not list the mandatory option {name}"
                )));
            }
            dropped.push(DroppedOption {
                name,
                reason: if supported.probed {
                    "the kernel does not accept it".into()
                } else {
                    "not in the default option set of kernels that cannot list theirs".into()
                },
            });
            continue;
        }
        if !text.is_empty() {
            text.push(',');
        }
        text.push_str(name);
        if let Some(v) = value {
            // A comma or newline would start another option: refuse values
            // (which may come from a network peer's log page) that contain one.
            if v.contains([',', '\n', '\0']) {
                return Err(KernelError::BadOptions(format!(
                    "{name} value {v:?} contains a comma, newline or NUL"
                )));
            }
            text.push('=');
            text.push_str(&v);
        }
    }
    if text.len() > 4096 {
        return Err(KernelError::BadOptions(format!(
            "option string is {} bytes, the kernel takes at most 4096",
            text.len()
        )));
    }
    Ok(OptionString { text, dropped })
}

/// A controller the kernel created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Connected {
    /// Instance number: the controller is `nvme<instance>`.
    pub instance: u32,
    /// Controller id.
    pub cntlid: u16,
}

impl Connected {
    /// The controller's name, `nvmeN`.
    pub fn name(&self) -> String {
        format!("nvme{}", self.instance)
    }
}

/// Parses the reply to a successful connect: `instance=N,cntlid=M`.
pub fn parse_connect_reply(text: &str) -> Option<Connected> {
    let mut instance = None;
    let mut cntlid = None;
    for item in text.trim().split([',', '\n']) {
        match item.split_once('=') {
            Some(("instance", v)) => instance = v.trim().parse().ok(),
            Some(("cntlid", v)) => cntlid = v.trim().parse().ok(),
            _ => {}
        }
    }
    Some(Connected {
        instance: instance?,
        cntlid: cntlid?,
    })
}

/// The connect device.
#[derive(Debug, Clone)]
pub struct Fabrics {
    path: PathBuf,
}

fn errno_of(e: &std::io::Error) -> Errno {
    e.raw_os_error()
        .map_or(Errno::UnknownErrno, Errno::from_raw)
}

impl Fabrics {
    /// The connect device under `paths`.
    pub fn new(paths: &KernelPaths) -> Self {
        Self {
            path: paths.fabrics(),
        }
    }

    /// The device path.
    pub fn path(&self) -> &PathBuf {
        &self.path
    }

    fn open(&self, write: bool) -> Result<std::fs::File, KernelError> {
        OpenOptions::new()
            .read(true)
            .write(write)
            .open(&self.path)
            .map_err(|e| {
                if e.kind() == std::io::ErrorKind::NotFound {
                    KernelError::FabricsMissing {
                        path: self.path.clone(),
                    }
                } else {
                    KernelError::io("open", &self.path, e)
                }
            })
    }

    /// Asks the kernel which options it accepts (5.17+). Older kernels answer
    /// EINVAL; then the documented legacy set is returned. Blocks while any
    /// connect is in progress (the kernel holds one mutex for both).
    pub fn supported_options(&self) -> Result<SupportedOptions, KernelError> {
        let mut f = self.open(false)?;
        let mut buf = vec![0u8; 4096];
        match f.read(&mut buf) {
            Ok(n) => {
                let text = String::from_utf8_lossy(buf.get(..n).unwrap_or_default());
                Ok(SupportedOptions::parse(&text))
            }
            Err(e) if errno_of(&e) == Errno::EINVAL => Ok(SupportedOptions::legacy()),
            Err(e) => Err(KernelError::io("read", &self.path, e)),
        }
    }

    /// Connects a controller: builds the option string from what the kernel
    /// accepts, writes it in one write, and reads back the new instance.
    /// **Blocks** until the controller is live or setup failed.
    pub fn connect(
        &self,
        opts: &ConnectOptions,
        supported: &SupportedOptions,
    ) -> Result<(Connected, OptionString), KernelError> {
        let options = build_option_string(opts, supported)?;
        let connected = self.connect_raw(&options)?;
        Ok((connected, options))
    }

    /// Writes a prepared option string.
    pub fn connect_raw(&self, options: &OptionString) -> Result<Connected, KernelError> {
        let mut f = self.open(true)?;
        f.write_all(options.text.as_bytes())
            .map_err(|e| KernelError::Connect {
                failure: ConnectFailure::from_errno(errno_of(&e)),
                options: options.redacted(),
            })?;
        let mut buf = vec![0u8; 256];
        let n = f
            .read(&mut buf)
            .map_err(|e| KernelError::io("read", &self.path, e))?;
        let text = String::from_utf8_lossy(buf.get(..n).unwrap_or_default()).into_owned();
        parse_connect_reply(&text).ok_or(KernelError::BadReply {
            path: self.path.clone(),
            text,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIST_61: &str = LINUX_6_1_OPTIONS;

    fn dc(nqn: &str) -> ConnectOptions {
        let mut o =
            ConnectOptions::new(ControllerKind::Discovery, "tcp", nqn, Some("192.168.1.20"));
        o.trsvcid = Some("8009".into());
        o.hostnqn =
            Some("nqn.2014-08.org.nvmexpress:uuid:11111111-2222-3333-4444-555555555555".into());
        o.hostid = Some("11111111-2222-3333-4444-555555555555".into());
        o.keep_alive_tmo = Some(30);
        o
    }

    #[test]
    fn supported_list_parsed_without_dummies() {
        let s = SupportedOptions::parse(LIST_61);
        assert!(s.probed);
        assert!(
            s.contains("transport") && s.contains("discovery") && s.contains("duplicate_connect")
        );
        assert!(!s.contains("instance") && !s.contains("cntlid") && !s.contains("tls"));
        assert_eq!(s.names().count(), 24);
        let l = SupportedOptions::legacy();
        assert!(!l.probed && l.contains("discovery") && !l.contains("dhchap_secret"));
    }

    #[test]
    fn discovery_controller_string() {
        let s = build_option_string(
            &dc(WELL_KNOWN_DISCOVERY_NQN),
            &SupportedOptions::parse(LIST_61),
        )
        .unwrap();
        assert_eq!(
            s.text,
            "nqn=nqn.2014-08.org.nvmexpress.discovery,transport=tcp,traddr=192.168.1.20,trsvcid=8009,\
             hostnqn=nqn.2014-08.org.nvmexpress:uuid:11111111-2222-3333-4444-555555555555,\
             hostid=11111111-2222-3333-4444-555555555555,keep_alive_tmo=30"
        );
        assert!(s.dropped.is_empty());
    }

    #[test]
    fn unique_discovery_nqn_adds_discovery_flag() {
        let s = build_option_string(
            &dc("nqn.2024-01.io.example:dc"),
            &SupportedOptions::parse(LIST_61),
        )
        .unwrap();
        assert!(
            s.text.contains(",discovery,") || s.text.ends_with(",discovery"),
            "{}",
            s.text
        );
    }

    #[test]
    fn io_only_options_not_sent_to_dc() {
        let mut o = dc(WELL_KNOWN_DISCOVERY_NQN);
        o.nr_io_queues = Some(4);
        o.queue_size = Some(64);
        o.dhchap_secret = Some("DHHC-1:00:secret".into());
        let s = build_option_string(&o, &SupportedOptions::parse(LIST_61)).unwrap();
        assert!(!s.text.contains("nr_io_queues") && !s.text.contains("dhchap"));
        let names: Vec<_> = s.dropped.iter().map(|d| d.name).collect();
        assert_eq!(names, ["dhchap_secret", "nr_io_queues", "queue_size"]);
    }

    #[test]
    fn io_controller_with_everything() {
        let mut o = ConnectOptions::new(
            ControllerKind::Io,
            "tcp",
            "nqn.2024-01.io.lab:sub1",
            Some("fd00::1"),
        );
        o.trsvcid = Some("4420".into());
        o.host_iface = Some("eth0".into());
        o.nr_io_queues = Some(4);
        o.ctrl_loss_tmo = Some(-1);
        o.hdr_digest = true;
        o.dhchap_secret = Some("DHHC-1:00:abc=:".into());
        o.tls = true;
        let s = build_option_string(&o, &SupportedOptions::parse(LIST_61)).unwrap();
        assert_eq!(
            s.text,
            "nqn=nqn.2024-01.io.lab:sub1,transport=tcp,traddr=fd00::1,trsvcid=4420,host_iface=eth0,\
             dhchap_secret=DHHC-1:00:abc=:,nr_io_queues=4,ctrl_loss_tmo=-1,hdr_digest"
        );
        // tls is not in the 6.1 list: dropped and said so.
        assert_eq!(s.dropped.len(), 1);
        assert_eq!(s.dropped[0].name, "tls");
        assert_eq!(s.dropped[0].reason, "the kernel does not accept it");
        assert!(s.redacted().contains("dhchap_secret=<redacted>"));
        assert!(!s.redacted().contains("abc"));
    }

    #[test]
    fn loop_transport_drops_what_loop_refuses() {
        let mut o = ConnectOptions::new(ControllerKind::Io, "loop", "nqn.x", None);
        o.reconnect_delay = Some(2);
        o.ctrl_loss_tmo = Some(10);
        o.host_iface = Some("eth0".into());
        o.hostnqn = Some("nqn.h".into());
        let s = build_option_string(&o, &SupportedOptions::parse(LIST_61)).unwrap();
        assert_eq!(s.text, "nqn=nqn.x,transport=loop,hostnqn=nqn.h");
        let names: Vec<_> = s.dropped.iter().map(|d| d.name).collect();
        assert_eq!(names, ["reconnect_delay", "ctrl_loss_tmo", "host_iface"]);
    }

    #[test]
    fn rdma_and_fc_filtering() {
        let mut o = ConnectOptions::new(ControllerKind::Io, "rdma", "nqn.x", Some("10.0.0.1"));
        o.host_iface = Some("ib0".into());
        o.hdr_digest = true;
        let s = build_option_string(&o, &SupportedOptions::parse(LIST_61)).unwrap();
        assert_eq!(s.text, "nqn=nqn.x,transport=rdma,traddr=10.0.0.1");
        assert_eq!(s.dropped.len(), 2);
        let mut fc = ConnectOptions::new(ControllerKind::Io, "fc", "nqn.x", Some("nn-0x1:pn-0x2"));
        assert!(
            build_option_string(&fc, &SupportedOptions::parse(LIST_61)).is_err(),
            "fc needs host_traddr"
        );
        fc.host_traddr = Some("nn-0x3:pn-0x4".into());
        fc.trsvcid = Some("4420".into());
        let s = build_option_string(&fc, &SupportedOptions::parse(LIST_61)).unwrap();
        assert_eq!(
            s.text,
            "nqn=nqn.x,transport=fc,traddr=nn-0x1:pn-0x2,host_traddr=nn-0x3:pn-0x4"
        );
    }

    #[test]
    fn injection_and_missing_values_refused() {
        let mut o = dc(WELL_KNOWN_DISCOVERY_NQN);
        o.traddr = Some("10.0.0.1,hostnqn=evil".into());
        let e = build_option_string(&o, &SupportedOptions::parse(LIST_61)).unwrap_err();
        assert!(e.to_string().contains("comma"), "{e}");
        o.traddr = None;
        build_option_string(&o, &SupportedOptions::parse(LIST_61)).unwrap_err();
        let long =
            ConnectOptions::new(ControllerKind::Io, "tcp", &"n".repeat(223), Some("1.1.1.1"));
        build_option_string(&long, &SupportedOptions::parse(LIST_61)).unwrap_err();
    }

    #[test]
    fn legacy_kernel_drops_unlisted_options_with_reason() {
        let mut o = dc(WELL_KNOWN_DISCOVERY_NQN);
        o.tls = true;
        let s = build_option_string(&o, &SupportedOptions::legacy()).unwrap();
        assert_eq!(s.dropped[0].name, "tls");
        assert!(s.dropped[0].reason.contains("default option set"));
    }

    #[test]
    fn connect_reply() {
        assert_eq!(
            parse_connect_reply("instance=3,cntlid=1\n"),
            Some(Connected {
                instance: 3,
                cntlid: 1
            })
        );
        assert_eq!(
            parse_connect_reply("instance=-1,cntlid=-1,transport=%s"),
            None
        );
        assert_eq!(parse_connect_reply(""), None);
        assert_eq!(
            Connected {
                instance: 12,
                cntlid: 0
            }
            .name(),
            "nvme12"
        );
    }

    #[test]
    fn missing_device_suggests_modprobe() {
        let dir = std::env::temp_dir().join(format!("nvmf-kernel-fabrics-{}", std::process::id()));
        let f = Fabrics::new(&KernelPaths::under(&dir));
        let e = f.supported_options().unwrap_err();
        assert!(matches!(e, KernelError::FabricsMissing { .. }));
        assert!(e.to_string().contains("modprobe nvme-tcp"), "{e}");
    }

    #[test]
    fn fake_device_file_round_trip() {
        // A regular file stands in for the device: the read returns its content.
        let dir = std::env::temp_dir().join(format!("nvmf-kernel-fake-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("dev")).unwrap();
        std::fs::write(dir.join("dev/nvme-fabrics"), LIST_61).unwrap();
        let f = Fabrics::new(&KernelPaths::under(&dir));
        assert!(f.supported_options().unwrap().contains("host_iface"));
        std::fs::remove_dir_all(&dir).ok();
    }
}
