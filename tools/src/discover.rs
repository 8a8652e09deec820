//! `stasadm discover`: connect to a discovery controller (or reuse a live
//! connection to it), read its log page, and disconnect unless asked to keep
//! it or the connection was already there.

use nvmf_kernel::admin::{read_discovery_log, DiscoveryLog, DiscoveryLogLimits, NvmeDevice};
use nvmf_kernel::fabrics::{ConnectOptions, ControllerKind, Fabrics};
use nvmf_kernel::host::HostIdentity;
use nvmf_kernel::sysfs::{ControllerInfo, Sysfs};
use nvmf_kernel::{KernelError, KernelPaths};
use stas_tid::matching::{find_live_dc, DcRequest};

/// The discovery controller asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Transport.
    pub transport: String,
    /// Address.
    pub traddr: String,
    /// Port (defaulted per transport when not given).
    pub trsvcid: Option<String>,
    /// Subsystem NQN.
    pub nqn: String,
    /// Local address.
    pub host_traddr: Option<String>,
    /// Local interface.
    pub host_iface: Option<String>,
    /// Host NQN (from /etc/nvme/hostnqn when not given).
    pub hostnqn: Option<String>,
    /// Host ID (from /etc/nvme/hostid when not given).
    pub hostid: Option<String>,
}

/// The discovery port a transport uses when none is given.
pub fn default_discovery_trsvcid(transport: &str) -> Option<&'static str> {
    stas_tid::default_trsvcid(transport)
}

impl Target {
    /// The target as the shared matching rules take it.
    fn request(&self) -> DcRequest<'_> {
        DcRequest {
            transport: &self.transport,
            traddr: &self.traddr,
            trsvcid: self.trsvcid.as_deref(),
            subsysnqn: &self.nqn,
            host_traddr: self.host_traddr.as_deref(),
            host_iface: self.host_iface.as_deref(),
            host_nqn: self.hostnqn.as_deref(),
        }
    }
}

/// Finds a live discovery controller connection that serves `t`.
pub fn find_existing<'a>(ctrls: &'a [ControllerInfo], t: &Target) -> Option<&'a ControllerInfo> {
    find_live_dc(ctrls, &t.request())
}

/// What a discovery run did.
#[derive(Debug)]
pub struct Outcome {
    /// The controller used (`nvmeN`).
    pub device: String,
    /// Whether an existing connection was reused.
    pub reused: bool,
    /// Whether the connection was left in place.
    pub kept: bool,
    /// The log page.
    pub log: DiscoveryLog,
    /// Options the kernel would not take (name, reason).
    pub dropped: Vec<(String, String)>,
}

/// Runs a discovery: reuse or connect, read, and disconnect unless `keep`
/// (or reused). Blocking.
pub fn run(paths: &KernelPaths, target: &Target, keep: bool) -> Result<Outcome, KernelError> {
    let sysfs = Sysfs::new(paths);
    let ids = HostIdentity::new(paths);
    let mut t = target.clone();
    if t.hostnqn.is_none() {
        t.hostnqn = ids.hostnqn()?;
    }
    if t.hostid.is_none() {
        t.hostid = ids.hostid()?;
    }
    if t.trsvcid.is_none() {
        t.trsvcid = default_discovery_trsvcid(&t.transport).map(str::to_owned);
    }

    let existing = find_existing(&sysfs.controllers()?, &t).map(|c| c.name.clone());
    let (device, reused, dropped) = match existing {
        Some(name) => (name, true, Vec::new()),
        None => {
            let fabrics = Fabrics::new(paths);
            let supported = fabrics.supported_options()?;
            let mut o = ConnectOptions::new(
                ControllerKind::Discovery,
                &t.transport,
                &t.nqn,
                Some(&t.traddr),
            );
            o.trsvcid = t.trsvcid.clone();
            o.host_traddr = t.host_traddr.clone();
            o.host_iface = t.host_iface.clone();
            o.hostnqn = t.hostnqn.clone();
            o.hostid = t.hostid.clone();
            if keep {
                // A connection left behind must keep itself alive (docs/kernel-interface.md §7.4).
                o.keep_alive_tmo = Some(30);
            }
            let (c, opts) = fabrics.connect(&o, &supported)?;
            let dropped = opts
                .dropped
                .into_iter()
                .map(|d| (d.name.to_owned(), d.reason))
                .collect();
            (c.name(), false, dropped)
        }
    };

    let read = NvmeDevice::open(&paths.controller_dev(&device))
        .and_then(|mut dev| read_discovery_log(&mut dev, 0, DiscoveryLogLimits::default()));
    let kept = keep || reused;
    if !kept {
        // Disconnect even when the read failed: leave the host as we found it.
        let deleted = sysfs.delete_controller(&device);
        if let (Ok(_), Err(e)) = (&read, deleted) {
            return Err(e);
        }
    }
    Ok(Outcome {
        device,
        reused,
        kept,
        log: read?,
        dropped,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use nvmf_kernel::sysfs::ControllerAddress;
    use nvmf_proto::types::CntrlType;
    use nvmf_proto::WELL_KNOWN_DISCOVERY_NQN;

    fn dc(name: &str, address: &str) -> ControllerInfo {
        ControllerInfo {
            name: name.into(),
            transport: Some("tcp".into()),
            address: Some(ControllerAddress::parse(address)),
            subsysnqn: Some("nqn.2024-01.io.lab:dc-unique".into()),
            hostnqn: Some("nqn.host:a".into()),
            state: Some("live".into()),
            cntrltype: Some(CntrlType::Discovery),
            ..Default::default()
        }
    }

    fn target(traddr: &str) -> Target {
        Target {
            transport: "tcp".into(),
            traddr: traddr.into(),
            trsvcid: None,
            nqn: WELL_KNOWN_DISCOVERY_NQN.into(),
            host_traddr: None,
            host_iface: None,
            hostnqn: None,
            hostid: None,
        }
    }

    #[test]
    fn reuses_a_live_dc_on_the_same_address_and_default_port() {
        let ctrls = [
            dc("nvme0", "traddr=192.168.1.20,trsvcid=4420"),
            dc("nvme1", "traddr=192.168.1.20,trsvcid=8009"),
        ];
        assert_eq!(
            find_existing(&ctrls, &target("192.168.1.20")).unwrap().name,
            "nvme1"
        );
        assert!(find_existing(&ctrls, &target("192.168.1.21")).is_none());
    }

    #[test]
    fn ipv6_forms_compare_as_addresses_and_scopes_matter() {
        let ctrls = [
            dc("nvme0", "traddr=fd00:0:0::1,trsvcid=8009"),
            dc("nvme1", "traddr=fe80::1%eth0,trsvcid=8009"),
        ];
        assert_eq!(
            find_existing(&ctrls, &target("fd00::1")).unwrap().name,
            "nvme0"
        );
        assert_eq!(
            find_existing(&ctrls, &target("fe80::1%eth0")).unwrap().name,
            "nvme1"
        );
        assert!(find_existing(&ctrls, &target("fe80::1%eth1")).is_none());
    }

    #[test]
    fn not_reused_when_not_live_not_dc_or_other_host() {
        let mut c = dc("nvme0", "traddr=10.0.0.1,trsvcid=8009");
        c.state = Some("connecting".into());
        assert!(find_existing(&[c.clone()], &target("10.0.0.1")).is_none());
        c.state = Some("live".into());
        c.cntrltype = Some(CntrlType::Io);
        assert!(find_existing(&[c.clone()], &target("10.0.0.1")).is_none());
        c.cntrltype = Some(CntrlType::Discovery);
        let mut t = target("10.0.0.1");
        t.hostnqn = Some("nqn.host:b".into());
        assert!(find_existing(&[c.clone()], &t).is_none());
        t.hostnqn = Some("nqn.host:a".into());
        assert!(find_existing(&[c], &t).is_some());
    }

    #[test]
    fn unique_nqn_must_match_and_iface_and_host_traddr_are_checked() {
        let c = dc(
            "nvme0",
            "traddr=10.0.0.1,trsvcid=8009,host_iface=eth0,src_addr=10.0.0.9",
        );
        let mut t = target("10.0.0.1");
        t.nqn = "nqn.2024-01.io.lab:other".into();
        assert!(find_existing(std::slice::from_ref(&c), &t).is_none());
        t.nqn = "nqn.2024-01.io.lab:dc-unique".into();
        assert!(find_existing(std::slice::from_ref(&c), &t).is_some());
        t.host_iface = Some("eth1".into());
        assert!(find_existing(std::slice::from_ref(&c), &t).is_none());
        t.host_iface = Some("eth0".into());
        t.host_traddr = Some("10.0.0.9".into());
        assert!(
            find_existing(std::slice::from_ref(&c), &t).is_some(),
            "src_addr serves host_traddr"
        );
        t.host_traddr = Some("10.0.0.8".into());
        assert!(find_existing(&[c], &t).is_none());
    }
}
