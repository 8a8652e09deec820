//! The inventory against a fake kernel that counts its sysfs work: lookups
//! cost reads of candidates, never scans; events cost nothing; a lost-events
//! resync costs exactly one scan.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may panic

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Mutex;

use nvmf_kernel::fabrics::{ConnectOptions, Connected, SupportedOptions};
use nvmf_kernel::sysfs::{ControllerAddress, ControllerInfo};
use nvmf_kernel::uevent::Uevent;
use nvmf_kernel::KernelError;
use nvmf_proto::types::CntrlType;

use super::{Inventory, InventoryStats, Role};
use crate::kernel::FabricKernel;
use stas_config::Cid;
use stas_tid::matching::InterfaceTable;
use stas_tid::{Tid, TidContext};

const HOSTNQN: &str = "nqn.2014-08.org.nvmexpress:uuid:inventory";

#[derive(Default)]
struct Fake {
    controllers: Mutex<BTreeMap<String, ControllerInfo>>,
    scans: Mutex<u64>,
    reads: Mutex<u64>,
}

impl Fake {
    fn add(&self, name: &str, nqn: &str, traddr: &str, kind: CntrlType) {
        let c = ControllerInfo {
            name: name.into(),
            instance: name.trim_start_matches("nvme").parse().unwrap(),
            transport: Some("tcp".into()),
            address: Some(ControllerAddress {
                traddr: Some(traddr.into()),
                trsvcid: Some(
                    if kind == CntrlType::Discovery {
                        "8009"
                    } else {
                        "4420"
                    }
                    .into(),
                ),
                ..Default::default()
            }),
            subsysnqn: Some(nqn.into()),
            hostnqn: Some(HOSTNQN.into()),
            state: Some("live".into()),
            cntrltype: Some(kind),
            ..Default::default()
        };
        self.controllers.lock().unwrap().insert(name.into(), c);
    }

    fn set_state(&self, name: &str, state: &str) {
        self.controllers
            .lock()
            .unwrap()
            .get_mut(name)
            .unwrap()
            .state = Some(state.into());
    }

    fn remove(&self, name: &str) {
        self.controllers.lock().unwrap().remove(name);
    }

    fn counts(&self) -> (u64, u64) {
        (*self.scans.lock().unwrap(), *self.reads.lock().unwrap())
    }
}

impl FabricKernel for Fake {
    fn supported_options(&self) -> Result<SupportedOptions, KernelError> {
        Ok(SupportedOptions::legacy())
    }
    fn controllers(&self) -> Result<Vec<ControllerInfo>, KernelError> {
        *self.scans.lock().unwrap() += 1;
        Ok(self.controllers.lock().unwrap().values().cloned().collect())
    }
    fn controller(&self, name: &str) -> Result<Option<ControllerInfo>, KernelError> {
        *self.reads.lock().unwrap() += 1;
        Ok(self.controllers.lock().unwrap().get(name).cloned())
    }
    fn interfaces(&self) -> InterfaceTable {
        InterfaceTable::default()
    }
    fn connect(&self, _: &ConnectOptions, _: &SupportedOptions) -> Result<Connected, KernelError> {
        unreachable!("the inventory never connects")
    }
    fn disconnect(&self, _: &str) -> Result<(), KernelError> {
        unreachable!("the inventory never disconnects")
    }
    fn resolve(&self, _: &str) -> Result<Vec<IpAddr>, crate::kernel::ResolveError> {
        unreachable!("the inventory never resolves names")
    }
}

fn tid(nqn: &str, traddr: &str, trsvcid: &str) -> Tid {
    let cid: Cid = [
        ("transport", "tcp"),
        ("traddr", traddr),
        ("trsvcid", trsvcid),
        ("subsysnqn", nqn),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    Tid::from_cid(
        &cid,
        &TidContext {
            host_nqn: HOSTNQN.into(),
            ignore_iface: false,
        },
    )
}

fn event(action: &str, dev: &str, extra: &[&str]) -> Uevent {
    let mut raw = Vec::new();
    for p in [
        format!("{action}@/devices/virtual/nvme-fabrics/ctl/{dev}"),
        format!("ACTION={action}"),
        "SUBSYSTEM=nvme".into(),
        format!("DEVNAME={dev}"),
    ]
    .iter()
    .map(String::as_str)
    .chain(extra.iter().copied())
    {
        raw.extend_from_slice(p.as_bytes());
        raw.push(0);
    }
    Uevent::parse(&raw).unwrap()
}

/// 10,000 I/O controllers on one target (one address, one bucket for
/// everything but the NQN).
fn big() -> Fake {
    let k = Fake::default();
    for i in 0..10_000 {
        k.add(
            &format!("nvme{i}"),
            &format!("nqn.io:{i}"),
            "10.0.0.1",
            CntrlType::Io,
        );
    }
    k
}

#[test]
fn lookups_cost_one_scan_in_total_and_a_read_per_candidate() {
    let k = big();
    let inv = Inventory::new();
    for i in (0..10_000).step_by(7) {
        let t = tid(&format!("nqn.io:{i}"), "10.0.0.1", "4420");
        assert_eq!(
            inv.find(&k, Role::Io, &t).unwrap(),
            Some(format!("nvme{i}"))
        );
    }
    let missing = tid("nqn.io:absent", "10.0.0.1", "4420");
    assert_eq!(inv.find(&k, Role::Io, &missing).unwrap(), None);
    let (scans, reads) = k.counts();
    assert_eq!(scans, 1, "the first lookup scans, no other");
    assert_eq!(
        reads,
        10_000u64.div_ceil(7),
        "one fresh read of each candidate"
    );
    assert_eq!(
        inv.stats(),
        InventoryStats {
            full_scans: 1,
            reads
        }
    );
}

#[test]
fn events_cost_no_scan_and_new_controllers_are_read_once() {
    let k = big();
    let inv = Inventory::new();
    inv.find(&k, Role::Io, &tid("nqn.io:1", "10.0.0.1", "4420"))
        .unwrap();
    // Someone else connects 100 more, and removes 100.
    for i in 10_000..10_100 {
        k.add(
            &format!("nvme{i}"),
            &format!("nqn.io:{i}"),
            "10.0.0.2",
            CntrlType::Io,
        );
        inv.note_uevent(&event("add", &format!("nvme{i}"), &[]));
    }
    for i in 0..100 {
        k.remove(&format!("nvme{i}"));
        inv.note_uevent(&event("remove", &format!("nvme{i}"), &[]));
    }
    assert_eq!(k.counts(), (1, 1), "events alone read nothing");
    let t = tid("nqn.io:10050", "10.0.0.2", "4420");
    assert_eq!(
        inv.find(&k, Role::Io, &t).unwrap(),
        Some("nvme10050".into())
    );
    assert_eq!(
        k.counts(),
        (1, 1 + 100 + 1),
        "the 100 announced, then the candidate"
    );
    let gone = tid("nqn.io:5", "10.0.0.1", "4420");
    assert_eq!(inv.find(&k, Role::Io, &gone).unwrap(), None);
    assert_eq!(k.counts(), (1, 102), "a removed controller is no candidate");
}

#[test]
fn a_controller_not_identified_yet_is_read_again_later() {
    let k = Fake::default();
    let inv = Inventory::new();
    inv.find(&k, Role::Io, &tid("nqn.io:0", "10.0.0.1", "4420"))
        .unwrap();
    // The `add` of a connect still running: no subsystem NQN yet.
    k.add("nvme0", "", "10.0.0.1", CntrlType::Io);
    k.set_state("nvme0", "connecting");
    inv.note_uevent(&event("add", "nvme0", &[]));
    let t = tid("nqn.io:0", "10.0.0.1", "4420");
    assert_eq!(inv.find(&k, Role::Io, &t).unwrap(), None);
    k.add("nvme0", "nqn.io:0", "10.0.0.1", CntrlType::Io);
    assert_eq!(inv.find(&k, Role::Io, &t).unwrap(), Some("nvme0".into()));
}

#[test]
fn a_controller_being_deleted_is_never_adopted() {
    let k = big();
    let inv = Inventory::new();
    let t = tid("nqn.io:3", "10.0.0.1", "4420");
    // Deleted by someone else: its state says so.
    k.set_state("nvme3", "deleting (no IO)");
    assert_eq!(inv.find(&k, Role::Io, &t).unwrap(), None);
    k.set_state("nvme3", "live");
    assert_eq!(inv.find(&k, Role::Io, &t).unwrap(), Some("nvme3".into()));
    // Deleted by us: noted before the (slow) delete write.
    inv.note_deleting("nvme3");
    assert_eq!(inv.find(&k, Role::Io, &t).unwrap(), None);
    inv.note_deleted("nvme3");
    assert_eq!(inv.find(&k, Role::Io, &t).unwrap(), None);
}

#[test]
fn lost_events_cost_exactly_one_scan() {
    let k = big();
    let inv = Inventory::new();
    inv.find(&k, Role::Io, &tid("nqn.io:1", "10.0.0.1", "4420"))
        .unwrap();
    // Changes nobody told us about.
    k.remove("nvme1");
    k.add("nvme20000", "nqn.io:new", "10.0.0.9", CntrlType::Io);
    inv.invalidate();
    let present = inv.rescan(&k).unwrap();
    assert!(!present.contains("nvme1") && present.contains("nvme20000"));
    let t = tid("nqn.io:new", "10.0.0.9", "4420");
    assert_eq!(
        inv.find(&k, Role::Io, &t).unwrap(),
        Some("nvme20000".into())
    );
    assert_eq!(k.counts().0, 2, "the start-up scan and one resync");
}

#[test]
fn discovery_controllers_with_the_well_known_nqn_are_found_by_address() {
    let k = big();
    // A DC reached through the well-known NQN shows its unique NQN.
    k.add(
        "nvme20000",
        "nqn.unique:dc",
        "10.0.0.1",
        CntrlType::Discovery,
    );
    let inv = Inventory::new();
    let wk = tid(nvmf_proto::WELL_KNOWN_DISCOVERY_NQN, "10.0.0.1", "8009");
    assert_eq!(
        inv.find(&k, Role::Discovery, &wk).unwrap(),
        Some("nvme20000".into())
    );
    assert_eq!(
        inv.find(&k, Role::Io, &wk).unwrap(),
        None,
        "a DC is no I/O controller"
    );
    let mapped = tid(
        nvmf_proto::WELL_KNOWN_DISCOVERY_NQN,
        "::ffff:10.0.0.1",
        "8009",
    );
    assert_eq!(
        inv.find(&k, Role::Discovery, &mapped).unwrap(),
        Some("nvme20000".into())
    );
    assert_eq!(k.counts(), (1, 3));
}

#[test]
fn audits_read_only_what_was_added() {
    let k = big();
    let inv = Inventory::new();
    assert_eq!(inv.all(&k).unwrap().len(), 10_000);
    k.add("nvme10000", "nqn.io:x", "10.0.0.3", CntrlType::Io);
    let added = ["nvme10000".to_owned(), "nvme99999".to_owned()].into();
    let seen = inv.read_some(&k, &added).unwrap();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].subsysnqn, "nqn.io:x");
    assert_eq!(k.counts(), (1, 2));
}
