//! `/sys/class/nvme`: the controllers the kernel has, their attributes, and
//! deleting them (docs/kernel-interface.md §6).
//!
//! Attributes that an older kernel lacks are `None`, never errors: a manager
//! must run on 5.14 as on 6.x.

use std::collections::HashMap;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use nvmf_proto::types::{CntrlType, DcType};
use nvmf_proto::WELL_KNOWN_DISCOVERY_NQN;

use crate::{KernelError, KernelPaths};

/// The parsed `address` attribute: `traddr=..,trsvcid=..[,host_traddr=..][,host_iface=..][,src_addr=..]`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ControllerAddress {
    /// Transport address.
    pub traddr: Option<String>,
    /// Transport service id.
    pub trsvcid: Option<String>,
    /// Local address given at connect.
    pub host_traddr: Option<String>,
    /// Local interface given at connect.
    pub host_iface: Option<String>,
    /// Local address of the live admin queue (TCP, 6.1+; absent while reconnecting).
    pub src_addr: Option<String>,
    /// Keys this parser does not know, kept.
    pub other: Vec<(String, String)>,
}

impl ControllerAddress {
    /// Parses the attribute's text.
    pub fn parse(text: &str) -> Self {
        let mut a = Self::default();
        for item in text.trim().split(',').filter(|i| !i.is_empty()) {
            let (k, v) = item.split_once('=').unwrap_or((item, ""));
            let v = v.to_owned();
            match k {
                "traddr" => a.traddr = Some(v),
                "trsvcid" => a.trsvcid = Some(v),
                "host_traddr" => a.host_traddr = Some(v),
                "host_iface" => a.host_iface = Some(v),
                // libnvme cuts a scope id off just in case; so do we.
                "src_addr" => a.src_addr = Some(v.split('%').next().unwrap_or_default().to_owned()),
                _ => a.other.push((k.to_owned(), v)),
            }
        }
        a
    }
}

/// What sysfs says about one controller.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ControllerInfo {
    /// `nvmeN`.
    pub name: String,
    /// N.
    pub instance: u32,
    /// `tcp`, `rdma`, `fc`, `loop`, `pcie`.
    pub transport: Option<String>,
    /// The parsed address (absent for loop).
    pub address: Option<ControllerAddress>,
    /// Subsystem NQN (a DC reached via the well-known NQN may show its unique NQN).
    pub subsysnqn: Option<String>,
    /// Host NQN the controller was connected with.
    pub hostnqn: Option<String>,
    /// Host ID the controller was connected with.
    pub hostid: Option<String>,
    /// `live`, `connecting`, `resetting`, `deleting`, ...
    pub state: Option<String>,
    /// Controller type (5.18+).
    pub cntrltype: Option<CntrlType>,
    /// Discovery controller type (5.18+).
    pub dctype: Option<DcType>,
    /// Controller id.
    pub cntlid: Option<u16>,
    /// Keep-alive timeout in seconds.
    pub kato: Option<u32>,
    /// Admin + I/O queues.
    pub queue_count: Option<u32>,
    /// Model number, trimmed.
    pub model: Option<String>,
    /// Serial number, trimmed.
    pub serial: Option<String>,
    /// Firmware revision, trimmed.
    pub firmware_rev: Option<String>,
    /// Seconds between reconnects, or `off`.
    pub reconnect_delay: Option<String>,
    /// Controller loss timeout, or `off`.
    pub ctrl_loss_tmo: Option<String>,
    /// Fast I/O fail timeout, or `off`.
    pub fast_io_fail_tmo: Option<String>,
    /// The NVM subsystem object (`nvme-subsysM`).
    pub subsystem: Option<String>,
    /// The subsystem's type: `discovery`, `nvm` (5.16+).
    pub subsystype: Option<String>,
    /// Whether a DH-HMAC-CHAP host secret is set (the secret itself is not read).
    pub has_dhchap_secret: bool,
}

impl ControllerInfo {
    /// Whether this is a discovery controller, by the most reliable sign the
    /// kernel offers (docs/kernel-interface.md §6.2): cntrltype, then the subsystem
    /// type, then the well-known NQN.
    pub fn is_discovery(&self) -> bool {
        match self.cntrltype {
            Some(CntrlType::Discovery) => return true,
            Some(CntrlType::Io) | Some(CntrlType::Admin) => return false,
            _ => {}
        }
        if let Some(t) = &self.subsystype {
            return t == "discovery";
        }
        self.subsysnqn.as_deref() == Some(WELL_KNOWN_DISCOVERY_NQN)
    }

    /// Whether the controller is live.
    pub fn is_live(&self) -> bool {
        self.state.as_deref() == Some("live")
    }

    /// The transport address, if any.
    pub fn traddr(&self) -> Option<&str> {
        self.address.as_ref().and_then(|a| a.traddr.as_deref())
    }

    /// The transport service id, if any.
    pub fn trsvcid(&self) -> Option<&str> {
        self.address.as_ref().and_then(|a| a.trsvcid.as_deref())
    }
}

/// A controller's subsystem (`nvme-subsysM`) and that subsystem's type.
type SubsystemOf = (Option<String>, Option<String>);

/// Access to the nvme classes of sysfs.
#[derive(Debug, Clone)]
pub struct Sysfs {
    sys: PathBuf,
}

fn read_attr(path: &Path) -> Result<Option<String>, KernelError> {
    match std::fs::read(path) {
        Ok(b) => Ok(Some(
            String::from_utf8_lossy(&b)
                .trim_end_matches(['\n', '\0'])
                .to_owned(),
        )),
        // Missing on this kernel, or the controller went away meanwhile.
        Err(e) if matches!(e.kind(), ErrorKind::NotFound) => Ok(None),
        // Write-only or secret attributes; and ENODEV/EIO from a dying device.
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(nix::libc::EACCES | nix::libc::ENODEV | nix::libc::EIO | nix::libc::EINVAL)
            ) =>
        {
            Ok(None)
        }
        Err(e) => Err(KernelError::io("read", path, e)),
    }
}

/// `nvmeN` → N; None for names that are not controllers (`nvme-fabrics`, `nvme0n1`).
pub fn controller_instance(name: &str) -> Option<u32> {
    let digits = name.strip_prefix("nvme")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

impl Sysfs {
    /// sysfs under `paths`.
    pub fn new(paths: &KernelPaths) -> Self {
        Self {
            sys: paths.sys.clone(),
        }
    }

    fn class(&self) -> PathBuf {
        self.sys.join("class/nvme")
    }

    /// The directory of controller `name`.
    pub fn controller_dir(&self, name: &str) -> PathBuf {
        self.class().join(name)
    }

    /// Names of all controllers, sorted by instance.
    pub fn controller_names(&self) -> Result<Vec<String>, KernelError> {
        let dir = self.class();
        let rd = match std::fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(KernelError::io("list", dir, e)),
        };
        let mut names: Vec<(u32, String)> = rd
            .filter_map(Result::ok)
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                controller_instance(&name).map(|i| (i, name))
            })
            .collect();
        names.sort();
        Ok(names.into_iter().map(|(_, n)| n).collect())
    }

    /// Every controller, with its attributes. Controllers that vanish during
    /// the scan are left out. Linear in controllers: the subsystems are
    /// listed once for the whole scan, not once per controller.
    pub fn controllers(&self) -> Result<Vec<ControllerInfo>, KernelError> {
        let subsystems = self.subsystem_members()?;
        let mut out = Vec::new();
        for name in self.controller_names()? {
            let subsys = subsystems.get(&name).cloned().unwrap_or_default();
            if let Some(c) = self.read_controller(&name, Some(subsys))? {
                out.push(c);
            }
        }
        Ok(out)
    }

    /// One controller; None if it does not exist. Walks the subsystems to
    /// find its own (a scan of many controllers uses [`Self::controllers`]).
    pub fn controller(&self, name: &str) -> Result<Option<ControllerInfo>, KernelError> {
        self.read_controller(name, None)
    }

    /// What identifies one controller and decides whether it may be adopted:
    /// transport, address, NQNs, host ID, state and type, read from its own
    /// directory alone (a handful of reads, whatever the number of
    /// controllers). The subsystem is looked up only on kernels without
    /// `cntrltype` (before 5.18), where classifying needs its `subsystype`.
    /// None if the controller does not exist.
    pub fn controller_identity(&self, name: &str) -> Result<Option<ControllerInfo>, KernelError> {
        let Some(instance) = controller_instance(name) else {
            return Ok(None);
        };
        let dir = self.controller_dir(name);
        let attr = |a: &str| read_attr(&dir.join(a));
        let Some(transport) = attr("transport")? else {
            // Every controller has `transport`: the directory is gone.
            return Ok(None);
        };
        let mut c = ControllerInfo {
            name: name.to_owned(),
            instance,
            transport: Some(transport),
            address: attr("address")?.map(|a| ControllerAddress::parse(&a)),
            subsysnqn: attr("subsysnqn")?,
            hostnqn: attr("hostnqn")?,
            hostid: attr("hostid")?,
            state: attr("state")?,
            cntrltype: attr("cntrltype")?.map(|v| parse_cntrltype(&v)),
            ..ControllerInfo::default()
        };
        if matches!(c.cntrltype, None | Some(CntrlType::NotReported)) {
            (c.subsystem, c.subsystype) = self.subsystem_of(name)?;
        }
        Ok(Some(c))
    }

    /// A controller's `state` now (`live`, `connecting`, `deleting`, ...);
    /// None if it is gone.
    pub fn controller_state(&self, name: &str) -> Result<Option<String>, KernelError> {
        if controller_instance(name).is_none() {
            return Ok(None);
        }
        read_attr(&self.controller_dir(name).join("state"))
    }

    /// Controller name → (its subsystem, the subsystem's `subsystype`), from
    /// one listing of /sys/class/nvme-subsystem.
    fn subsystem_members(&self) -> Result<HashMap<String, SubsystemOf>, KernelError> {
        let dir = self.sys.join("class/nvme-subsystem");
        let mut out = HashMap::new();
        let Ok(rd) = std::fs::read_dir(&dir) else {
            return Ok(out);
        };
        for e in rd.filter_map(Result::ok) {
            let Ok(members) = std::fs::read_dir(e.path()) else {
                continue;
            };
            let subsys = e.file_name().to_string_lossy().into_owned();
            let subsystype = read_attr(&e.path().join("subsystype"))?;
            for m in members.filter_map(Result::ok) {
                let name = m.file_name().to_string_lossy().into_owned();
                if controller_instance(&name).is_some() {
                    out.insert(name, (Some(subsys.clone()), subsystype.clone()));
                }
            }
        }
        Ok(out)
    }

    /// One controller with every attribute; `subsys` is its subsystem when
    /// the caller already knows it, else it is looked up.
    fn read_controller(
        &self,
        name: &str,
        subsys: Option<SubsystemOf>,
    ) -> Result<Option<ControllerInfo>, KernelError> {
        let Some(instance) = controller_instance(name) else {
            return Ok(None);
        };
        let dir = self.controller_dir(name);
        if !dir.exists() {
            return Ok(None);
        }
        let attr = |a: &str| read_attr(&dir.join(a));
        let trimmed = |a: &str| -> Result<Option<String>, KernelError> {
            Ok(attr(a)?.map(|v| v.trim().to_owned()))
        };
        let number = |a: &'static str| -> Result<Option<String>, KernelError> { attr(a) };
        let parse_num = |a: &'static str, v: Option<String>| -> Result<Option<u32>, KernelError> {
            v.map(|s| {
                s.trim()
                    .parse::<u32>()
                    .map_err(|_| KernelError::BadAttribute {
                        path: dir.join(a),
                        value: s.clone(),
                        reason: "expected a decimal number",
                    })
            })
            .transpose()
        };
        let cntlid = parse_num("cntlid", number("cntlid")?)?
            .map(|v| {
                u16::try_from(v).map_err(|_| KernelError::BadAttribute {
                    path: dir.join("cntlid"),
                    value: v.to_string(),
                    reason: "controller ids are 16-bit",
                })
            })
            .transpose()?;
        let (subsystem, subsystype) = match subsys {
            Some(known) => known,
            None => self.subsystem_of(name)?,
        };
        Ok(Some(ControllerInfo {
            name: name.to_owned(),
            instance,
            transport: attr("transport")?,
            address: attr("address")?.map(|a| ControllerAddress::parse(&a)),
            subsysnqn: attr("subsysnqn")?,
            hostnqn: attr("hostnqn")?,
            hostid: attr("hostid")?,
            state: attr("state")?,
            cntrltype: attr("cntrltype")?.map(|v| parse_cntrltype(&v)),
            dctype: attr("dctype")?.map(|v| parse_dctype(&v)),
            cntlid,
            kato: parse_num("kato", number("kato")?)?,
            queue_count: parse_num("queue_count", number("queue_count")?)?,
            model: trimmed("model")?,
            serial: trimmed("serial")?,
            firmware_rev: trimmed("firmware_rev")?,
            reconnect_delay: attr("reconnect_delay")?,
            ctrl_loss_tmo: attr("ctrl_loss_tmo")?,
            fast_io_fail_tmo: attr("fast_io_fail_tmo")?,
            subsystem,
            subsystype,
            has_dhchap_secret: attr("dhchap_secret")?.is_some_and(|v| !v.is_empty() && v != "none"),
        }))
    }

    /// The subsystem holding controller `name` (the `nvme-subsysM` directory
    /// with an `nvmeN` entry, as libnvme finds it) and its `subsystype`.
    fn subsystem_of(&self, name: &str) -> Result<SubsystemOf, KernelError> {
        let dir = self.sys.join("class/nvme-subsystem");
        let Ok(rd) = std::fs::read_dir(&dir) else {
            return Ok((None, None));
        };
        for e in rd.filter_map(Result::ok) {
            if e.path().join(name).exists() {
                let subsys = e.file_name().to_string_lossy().into_owned();
                let t = read_attr(&e.path().join("subsystype"))?;
                return Ok((Some(subsys), t));
            }
        }
        Ok((None, None))
    }

    /// Deletes controller `name` (synchronous: returns after the teardown).
    /// A controller already gone is not an error; one still in its first
    /// connect is [`KernelError::Busy`].
    pub fn delete_controller(&self, name: &str) -> Result<(), KernelError> {
        let path = self.controller_dir(name).join("delete_controller");
        match std::fs::write(&path, b"1") {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) if e.raw_os_error() == Some(nix::libc::ENODEV) => Ok(()),
            Err(e) if e.raw_os_error() == Some(nix::libc::EBUSY) => Err(KernelError::Busy {
                name: name.to_owned(),
            }),
            Err(e) => Err(KernelError::io("write", path, e)),
        }
    }
}

/// Parses sysfs `cntrltype` (`io`, `discovery`, `admin`, `reserved`).
pub fn parse_cntrltype(v: &str) -> CntrlType {
    match v.trim() {
        "io" => CntrlType::Io,
        "discovery" => CntrlType::Discovery,
        "admin" => CntrlType::Admin,
        _ => CntrlType::NotReported,
    }
}

/// Parses sysfs `dctype` (`none`, `ddc`, `cdc`, `reserved`).
pub fn parse_dctype(v: &str) -> DcType {
    match v.trim() {
        "none" => DcType::None,
        "ddc" => DcType::Ddc,
        "cdc" => DcType::Cdc,
        _ => DcType::Other(0xff),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) struct FakeTree(pub PathBuf);

    impl FakeTree {
        pub fn new(tag: &str) -> Self {
            let root = std::env::temp_dir()
                .join(format!("nvmf-kernel-sysfs-{tag}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&root);
            std::fs::create_dir_all(root.join("sys/class/nvme")).unwrap();
            Self(root)
        }

        pub fn ctrl(&self, name: &str, attrs: &[(&str, &str)]) {
            let d = self.0.join("sys/class/nvme").join(name);
            std::fs::create_dir_all(&d).unwrap();
            for (k, v) in attrs {
                std::fs::write(d.join(k), format!("{v}\n")).unwrap();
            }
        }

        pub fn subsys(&self, subsys: &str, subsystype: Option<&str>, members: &[&str]) {
            let d = self.0.join("sys/class/nvme-subsystem").join(subsys);
            std::fs::create_dir_all(&d).unwrap();
            if let Some(t) = subsystype {
                std::fs::write(d.join("subsystype"), format!("{t}\n")).unwrap();
            }
            for m in members {
                std::fs::create_dir_all(d.join(m)).unwrap();
            }
        }

        pub fn sysfs(&self) -> Sysfs {
            Sysfs::new(&KernelPaths::under(&self.0))
        }
    }

    impl Drop for FakeTree {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn address_forms() {
        let a = ControllerAddress::parse("traddr=192.168.1.20,trsvcid=8009,src_addr=192.168.1.5\n");
        assert_eq!(a.traddr.as_deref(), Some("192.168.1.20"));
        assert_eq!(a.trsvcid.as_deref(), Some("8009"));
        assert_eq!(a.src_addr.as_deref(), Some("192.168.1.5"));
        let b = ControllerAddress::parse(
            "traddr=fe80::1%eth0,trsvcid=4420,host_iface=eth0,src_addr=fe80::2%eth0",
        );
        assert_eq!(b.traddr.as_deref(), Some("fe80::1%eth0"));
        assert_eq!(b.host_iface.as_deref(), Some("eth0"));
        assert_eq!(b.src_addr.as_deref(), Some("fe80::2"));
        let c = ControllerAddress::parse("traddr=nn-0x1:pn-0x2,host_traddr=nn-0x3:pn-0x4,newkey=7");
        assert_eq!(c.host_traddr.as_deref(), Some("nn-0x3:pn-0x4"));
        assert_eq!(c.other, [("newkey".to_owned(), "7".to_owned())]);
        assert_eq!(ControllerAddress::parse(""), ControllerAddress::default());
    }

    #[test]
    fn instance_names() {
        assert_eq!(controller_instance("nvme0"), Some(0));
        assert_eq!(controller_instance("nvme17"), Some(17));
        for n in [
            "nvme",
            "nvme-fabrics",
            "nvme0n1",
            "nvme-subsys0",
            "ng0n1",
            "nvmex",
        ] {
            assert_eq!(controller_instance(n), None, "{n}");
        }
    }

    #[test]
    fn scan_reads_attributes_and_tolerates_old_kernels() {
        let t = FakeTree::new("scan");
        t.ctrl(
            "nvme0",
            &[
                ("transport", "tcp"),
                (
                    "address",
                    "traddr=127.0.0.1,trsvcid=8009,src_addr=127.0.0.1",
                ),
                ("subsysnqn", WELL_KNOWN_DISCOVERY_NQN),
                ("hostnqn", "nqn.h"),
                ("hostid", "11111111-2222-3333-4444-555555555555"),
                ("state", "live"),
                ("cntrltype", "discovery"),
                ("dctype", "none"),
                ("cntlid", "1"),
                ("kato", "30"),
                ("model", "Linux                                   "),
                ("dhchap_secret", "none"),
            ],
        );
        // An old kernel: no cntrltype/dctype/kato.
        t.ctrl(
            "nvme10",
            &[
                ("transport", "tcp"),
                ("subsysnqn", "nqn.io:1"),
                ("state", "connecting"),
                ("cntlid", "7"),
            ],
        );
        t.ctrl(
            "nvme2",
            &[
                ("transport", "loop"),
                ("subsysnqn", "nqn.io:2"),
                ("state", "live"),
            ],
        );
        std::fs::create_dir_all(t.0.join("sys/class/nvme/nvme-fabrics")).unwrap();
        t.subsys("nvme-subsys0", Some("discovery"), &["nvme0"]);
        t.subsys("nvme-subsys2", Some("nvm"), &["nvme2", "nvme10"]);

        let s = t.sysfs();
        assert_eq!(s.controller_names().unwrap(), ["nvme0", "nvme2", "nvme10"]);
        let all = s.controllers().unwrap();
        let c0 = &all[0];
        assert_eq!(c0.instance, 0);
        assert!(c0.is_discovery() && c0.is_live());
        assert_eq!(c0.traddr(), Some("127.0.0.1"));
        assert_eq!(c0.trsvcid(), Some("8009"));
        assert_eq!(c0.kato, Some(30));
        assert_eq!(c0.dctype, Some(DcType::None));
        assert_eq!(c0.model.as_deref(), Some("Linux"));
        assert_eq!(c0.subsystem.as_deref(), Some("nvme-subsys0"));
        assert!(!c0.has_dhchap_secret);
        let c2 = &all[1];
        assert_eq!(c2.address, None, "loop has no address");
        assert!(!c2.is_discovery());
        let c10 = &all[2];
        assert_eq!(c10.cntrltype, None);
        assert_eq!(c10.kato, None);
        assert_eq!(c10.cntlid, Some(7));
        assert_eq!(c10.subsystype.as_deref(), Some("nvm"));
        assert!(s.controller("nvme99").unwrap().is_none());
        assert!(s.controller("nvme-fabrics").unwrap().is_none());
    }

    #[test]
    fn identity_reads_only_the_controllers_own_directory_and_agrees_with_the_scan() {
        let t = FakeTree::new("identity");
        t.ctrl(
            "nvme3",
            &[
                ("transport", "tcp"),
                ("address", "traddr=10.0.0.1,trsvcid=4420,src_addr=10.0.0.2"),
                ("subsysnqn", "nqn.io:3"),
                ("hostnqn", "nqn.h"),
                ("state", "live"),
                ("cntrltype", "io"),
                ("kato", "5"),
            ],
        );
        // Pre-5.18: no cntrltype, so the subsystem's type is looked up.
        t.ctrl(
            "nvme4",
            &[
                ("transport", "tcp"),
                ("subsysnqn", "nqn.unique:dc"),
                ("state", "deleting"),
            ],
        );
        t.subsys("nvme-subsys3", Some("nvm"), &["nvme3"]);
        t.subsys("nvme-subsys4", Some("discovery"), &["nvme4"]);
        let s = t.sysfs();
        let c3 = s.controller_identity("nvme3").unwrap().unwrap();
        assert_eq!(c3.traddr(), Some("10.0.0.1"));
        assert_eq!(c3.subsysnqn.as_deref(), Some("nqn.io:3"));
        assert_eq!(c3.subsystem, None, "cntrltype is enough: no subsystem walk");
        assert_eq!(c3.kato, None, "only what identifies it is read");
        assert!(!c3.is_discovery() && c3.is_live());
        let c4 = s.controller_identity("nvme4").unwrap().unwrap();
        assert!(c4.is_discovery(), "classified through subsystype");
        assert_eq!(
            s.controller_state("nvme4").unwrap().as_deref(),
            Some("deleting")
        );
        assert!(s.controller_identity("nvme9").unwrap().is_none());
        assert!(s.controller_state("nvme9").unwrap().is_none());
        // The scan sees the same subsystems as the single-controller walk.
        let all = s.controllers().unwrap();
        assert_eq!(all[0].subsystem.as_deref(), Some("nvme-subsys3"));
        assert_eq!(all[1].subsystype.as_deref(), Some("discovery"));
        assert_eq!(
            s.controller("nvme4").unwrap().unwrap().subsystem,
            all[1].subsystem
        );
    }

    #[test]
    fn classification_falls_back_to_subsystype_then_nqn() {
        let mut c = ControllerInfo {
            cntrltype: Some(CntrlType::NotReported),
            ..Default::default()
        };
        c.subsystype = Some("discovery".into());
        assert!(
            c.is_discovery(),
            "old nvmet: cntrltype reserved, subsystype discovery"
        );
        c.subsystype = None;
        c.subsysnqn = Some(WELL_KNOWN_DISCOVERY_NQN.into());
        assert!(c.is_discovery());
        c.subsysnqn = Some("nqn.unique:dc".into());
        assert!(!c.is_discovery());
        c.cntrltype = Some(CntrlType::Discovery);
        assert!(c.is_discovery(), "unique NQN DC on 5.18+");
    }

    #[test]
    fn bad_numbers_name_the_attribute() {
        let t = FakeTree::new("bad");
        t.ctrl("nvme3", &[("cntlid", "lots")]);
        let e = t.sysfs().controller("nvme3").unwrap_err();
        assert!(
            e.to_string().contains("cntlid") && e.to_string().contains("lots"),
            "{e}"
        );
    }

    #[test]
    fn delete_writes_one_and_missing_is_fine() {
        let t = FakeTree::new("del");
        t.ctrl("nvme4", &[("delete_controller", "")]);
        let s = t.sysfs();
        s.delete_controller("nvme4").unwrap();
        assert_eq!(
            std::fs::read(t.0.join("sys/class/nvme/nvme4/delete_controller")).unwrap(),
            b"1"
        );
        s.delete_controller("nvme5").unwrap();
    }

    #[test]
    fn no_nvme_class_means_no_controllers() {
        let root = std::env::temp_dir().join(format!("nvmf-kernel-empty-{}", std::process::id()));
        let s = Sysfs::new(&KernelPaths::under(&root));
        assert!(s.controllers().unwrap().is_empty());
    }
}
