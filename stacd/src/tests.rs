//! The stacd service against the simulated kernel, on tokio's paused clock:
//! time only moves when a test advances it, so retry timers are asserted
//! exactly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may panic

use stas_daemon::testing::{self, nvme, settle, until, HOSTID, HOSTNQN};
use std::sync::Arc;
use std::time::Duration;

use nvmf_kernel::fabrics::{ConnectOptions, ControllerKind};
use nvmf_kernel::uevent::{Uevent, UeventItem};
use nvmf_proto::dlp::DiscoveryLogEntry;
use nvmf_proto::types::{EFlags, SubType};
use nvmf_proto::WELL_KNOWN_DISCOVERY_NQN;
use stas_config::{parse_stacd, StacdConfig};
use stas_daemon::lkc::LkcFile;

use crate::ioc::{HostInfo, IocStatus, Source, Stage};
use crate::service::{Input, Service, ServiceHandle, Stats, AUDIT_DELAY};
use crate::sim::{SimKernel, SubsystemSim as _};
use crate::staf::{DcLogPages, StafView};
use stas_daemon::dbus::contract::{DcOperation, LogPageState};
use stas_daemon::task::DEFAULT_CONNECTS_IN_FLIGHT;

fn config(text: &str) -> Arc<StacdConfig> {
    testing::config(text, parse_stacd)
}

fn host() -> HostInfo {
    HostInfo {
        hostnqn: HOSTNQN.into(),
        hostid: HOSTID.into(),
        hostkey: None,
    }
}

/// stafd's answer: one DC (reached from eth1) listing `entries`.
fn staf(entries: Vec<DiscoveryLogEntry>) -> Input {
    staf_page(entries, true)
}

fn staf_page(entries: Vec<DiscoveryLogEntry>, complete: bool) -> Input {
    Input::Staf(StafView::Known(vec![DcLogPages {
        dc: "(tcp, 10.0.0.1, 8009)".into(),
        state: if complete {
            LogPageState::Read
        } else {
            LogPageState::InFlight(DcOperation::GetLogPage)
        },
        complete,
        host_traddr: String::new(),
        host_iface: "eth1".into(),
        host_nqn: HOSTNQN.into(),
        entries,
    }]))
}

struct Harness {
    sim: Arc<SimKernel>,
    handle: ServiceHandle,
    task: tokio::task::JoinHandle<Stats>,
}

async fn start_with(sim: Arc<SimKernel>, cfg: Arc<StacdConfig>, lkc: Option<LkcFile>) -> Harness {
    let (mut svc, handle) = Service::new(sim.clone(), host(), cfg, lkc);
    svc.restore().await;
    let task = tokio::spawn(svc.run());
    Harness { sim, handle, task }
}

impl Harness {
    fn iocs(&self) -> Vec<IocStatus> {
        self.handle.view.snapshot()
    }

    fn ioc(&self, nqn: &str) -> Option<IocStatus> {
        self.iocs().into_iter().find(|d| d.tid.subsysnqn == nqn)
    }

    async fn connected(&self, nqn: &str) -> IocStatus {
        let n = nqn.to_owned();
        until(&format!("{n} connected"), || {
            self.ioc(&n).is_some_and(|d| d.connected())
        })
        .await;
        self.ioc(nqn).unwrap()
    }

    async fn gone(&self, nqn: &str) {
        let n = nqn.to_owned();
        until(&format!("{n} gone"), || self.ioc(&n).is_none()).await;
    }

    fn kernel_has(&self, nqn: &str) -> bool {
        self.sim.state().controllers.values().any(|o| o.nqn == nqn)
    }

    fn connects(&self, nqn: &str) -> usize {
        self.sim
            .state()
            .connects
            .iter()
            .filter(|o| o.nqn == nqn)
            .count()
    }

    fn uevent(&self, parts: &[&str]) {
        let mut raw = Vec::new();
        for p in parts {
            raw.extend_from_slice(p.as_bytes());
            raw.push(0);
        }
        self.handle.send(Input::Uevent(UeventItem::Event(
            Uevent::parse(&raw).unwrap(),
        )));
    }

    fn kernel_event(&self, action: &str, dev: &str) {
        self.uevent(&[
            &format!("{action}@/devices/virtual/nvme-fabrics/ctl/{dev}"),
            &format!("ACTION={action}"),
            &format!("DEVPATH=/devices/virtual/nvme-fabrics/ctl/{dev}"),
            "SUBSYSTEM=nvme",
            &format!("DEVNAME={dev}"),
        ]);
    }

    async fn stop(self) -> Stats {
        self.handle.send(Input::Shutdown);
        self.task.await.unwrap()
    }
}

fn io_opts(traddr: &str, nqn: &str, transport: &str) -> ConnectOptions {
    let mut o = ConnectOptions::new(ControllerKind::Io, transport, nqn, Some(traddr));
    o.trsvcid = Some("4420".into());
    o.hostnqn = Some(HOSTNQN.into());
    o
}

const ONE_IOC: &str = "[Controllers]\ncontroller = transport=tcp;traddr=10.0.0.5;nqn=nqn.cfg\n";

#[tokio::test(start_paused = true)]
async fn configured_ioc_connects_with_its_options() {
    let sim = SimKernel::new();
    sim.add_subsystem("10.0.0.5", "nqn.cfg");
    let cfg = "[Global]\nkato=30\nnr-io-queues=4\nqueue-size=64\n[Controllers]\ncontroller = transport=tcp;traddr=10.0.0.5;nqn=nqn.cfg;kato=7\n";
    let h = start_with(sim, config(cfg), None).await;
    let s = h.connected("nqn.cfg").await;
    assert_eq!(s.source, Source::Configured);
    assert_eq!(s.connect_attempts, 0);
    let o = h.sim.state().connects[0].clone();
    assert_eq!(o.kind, ControllerKind::Io);
    assert_eq!(o.trsvcid.as_deref(), Some("4420"));
    assert_eq!(o.keep_alive_tmo, Some(7), "the per-controller kato wins");
    assert_eq!(o.nr_io_queues, Some(4));
    assert_eq!(o.queue_size, Some(64));
    assert_eq!(o.hostnqn.as_deref(), Some(HOSTNQN));
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn failed_connects_retry_after_3_s_then_every_60_s() {
    let h = start_with(SimKernel::new(), config(ONE_IOC), None).await;
    until("first attempt", || h.connects("nqn.cfg") == 1).await;
    settle().await;
    tokio::time::advance(Duration::from_millis(2900)).await;
    settle().await;
    assert_eq!(h.connects("nqn.cfg"), 1);
    tokio::time::advance(Duration::from_millis(200)).await;
    until("second attempt at 3 s", || h.connects("nqn.cfg") == 2).await;
    settle().await;
    tokio::time::advance(Duration::from_secs(59)).await;
    settle().await;
    assert_eq!(h.connects("nqn.cfg"), 2);
    h.sim.add_subsystem("10.0.0.5", "nqn.cfg");
    tokio::time::advance(Duration::from_secs(1)).await;
    h.connected("nqn.cfg").await;
    assert_eq!(h.connects("nqn.cfg"), 3);
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn log_page_entries_connect_with_the_dcs_host_side_and_only_nvme_ones() {
    let sim = SimKernel::new();
    sim.add_subsystem("10.0.0.9", "nqn.a");
    let h = start_with(sim, config(""), None).await;
    let referral = DiscoveryLogEntry {
        subtype: SubType::Referral,
        trsvcid: "8009".into(),
        ..nvme("10.0.0.8", WELL_KNOWN_DISCOVERY_NQN)
    };
    let discovery = DiscoveryLogEntry {
        subtype: SubType::CurrentDiscovery,
        ..nvme("10.0.0.7", WELL_KNOWN_DISCOVERY_NQN)
    };
    h.handle
        .send(staf(vec![nvme("10.0.0.9", "nqn.a"), referral, discovery]));
    let s = h.connected("nqn.a").await;
    assert_eq!(s.source, Source::LogPage);
    assert_eq!(s.tid.host_iface, "eth1");
    assert_eq!(h.iocs().len(), 1, "referral and discovery entries ignored");
    assert_eq!(
        h.sim.state().connects[0].host_iface.as_deref(),
        Some("eth1")
    );
    h.stop().await;
}

async fn removal_under(scope_lines: &str) -> (bool, Vec<String>) {
    let sim = SimKernel::new();
    sim.add_subsystem("10.0.0.9", "nqn.a");
    sim.add_subsystem("10.0.0.9", "nqn.b");
    let cfg = format!("[I/O controller connection management]\n{scope_lines}");
    let h = start_with(sim, config(&cfg), None).await;
    h.handle.send(staf(vec![
        nvme("10.0.0.9", "nqn.a"),
        nvme("10.0.0.9", "nqn.b"),
    ]));
    h.connected("nqn.a").await;
    h.connected("nqn.b").await;
    // Zoning removes nqn.b from the log page.
    h.handle.send(staf(vec![nvme("10.0.0.9", "nqn.a")]));
    h.gone("nqn.b").await;
    // Shutdown waits for the disposal in flight (and keeps the rest).
    let sim = h.sim.clone();
    h.stop().await;
    let kept = sim.state().controllers.values().any(|o| o.nqn == "nqn.b");
    assert!(sim.state().controllers.values().any(|o| o.nqn == "nqn.a"));
    let disconnects = sim.state().disconnects.clone();
    (kept, disconnects)
}

#[tokio::test(start_paused = true)]
async fn an_entry_that_leaves_the_log_page_is_disconnected_as_the_scope_says() {
    let (kept, d) = removal_under("disconnect-scope=only-stas-connections\n").await;
    assert!(
        !kept && d.len() == 1,
        "only-stas-connections disconnects: {d:?}"
    );
    let (kept, d) = removal_under("disconnect-scope=no-disconnect\n").await;
    assert!(kept && d.is_empty(), "no-disconnect keeps: {d:?}");
    let (kept, d) = removal_under(
        "disconnect-scope=all-connections-matching-disconnect-trtypes\ndisconnect-trtypes=rdma\n",
    )
    .await;
    assert!(
        kept && d.is_empty(),
        "tcp is not a disconnect-trtype: {d:?}"
    );
    let (kept, d) = removal_under(
        "disconnect-scope=all-connections-matching-disconnect-trtypes\ndisconnect-trtypes=tcp+rdma\n",
    )
    .await;
    assert!(!kept && d.len() == 1, "tcp is a disconnect-trtype: {d:?}");
}

#[tokio::test(start_paused = true)]
async fn unknown_is_not_empty_while_stafd_is_away() {
    let sim = SimKernel::new();
    sim.add_subsystem("10.0.0.9", "nqn.a");
    sim.add_subsystem("10.0.0.5", "nqn.cfg");
    let h = start_with(sim, config(ONE_IOC), None).await;
    h.handle.send(staf(vec![nvme("10.0.0.9", "nqn.a")]));
    h.connected("nqn.a").await;
    h.connected("nqn.cfg").await;
    // stafd leaves; a reload while it is away reconciles anyway.
    h.handle.send(Input::Staf(StafView::Unknown));
    h.handle.send(Input::Reload(config(ONE_IOC)));
    settle().await;
    tokio::time::advance(Duration::from_secs(120)).await;
    settle().await;
    assert!(h.ioc("nqn.a").is_some_and(|s| s.connected()));
    assert!(h.sim.state().disconnects.is_empty());
    // Back with an empty page: now it goes.
    h.handle.send(staf(vec![]));
    h.gone("nqn.a").await;
    until("disconnected", || !h.kernel_has("nqn.a")).await;
    assert!(h.kernel_has("nqn.cfg"));
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn configuration_still_decides_what_it_alone_named_while_stafd_is_away() {
    let sim = SimKernel::new();
    sim.add_subsystem("10.0.0.5", "nqn.cfg");
    sim.add_subsystem("10.0.0.9", "nqn.a");
    let h = start_with(sim, config(ONE_IOC), None).await;
    h.connected("nqn.cfg").await;
    // stafd never answered; the line is removed: stacd.conf alone named it.
    h.handle.send(Input::Reload(config("")));
    h.gone("nqn.cfg").await;
    until("disconnected", || !h.kernel_has("nqn.cfg")).await;
    // An exclude also wins over an unknown stafd.
    h.handle.send(staf(vec![nvme("10.0.0.9", "nqn.a")]));
    h.connected("nqn.a").await;
    h.handle.send(Input::Staf(StafView::Unknown));
    h.handle.send(Input::Reload(config(
        "[Controllers]\nexclude = transport=tcp;traddr=10.0.0.9\n",
    )));
    h.gone("nqn.a").await;
    until("disconnected", || !h.kernel_has("nqn.a")).await;
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn exclude_keeps_an_entry_from_being_connected() {
    let sim = SimKernel::new();
    sim.add_subsystem("10.0.0.9", "nqn.a");
    sim.add_subsystem("10.0.0.9", "nqn.b");
    let h = start_with(sim, config("[Controllers]\nexclude = nqn=nqn.b\n"), None).await;
    h.handle.send(staf(vec![
        nvme("10.0.0.9", "nqn.a"),
        nvme("10.0.0.9", "nqn.b"),
    ]));
    h.connected("nqn.a").await;
    settle().await;
    assert!(h.ioc("nqn.b").is_none());
    assert_eq!(h.connects("nqn.b"), 0);
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn an_existing_connection_is_adopted_not_duplicated() {
    let sim = SimKernel::new();
    sim.add_subsystem("10.0.0.5", "nqn.cfg");
    let dev = sim.add_existing(io_opts("10.0.0.5", "nqn.cfg", "tcp"));
    let h = start_with(sim, config(ONE_IOC), None).await;
    let s = h.connected("nqn.cfg").await;
    assert_eq!(s.device.as_deref(), Some(dev.as_str()));
    assert_eq!(h.connects("nqn.cfg"), 0);
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn restart_restores_adopts_and_tears_nothing_down_before_stafd_answers() {
    let (dir, lkc) = testing::lkc_in_fresh_dir("stacd-lkc", "stacd");
    let sim = SimKernel::new();
    sim.add_subsystem("10.0.0.9", "nqn.a");
    let h = start_with(sim.clone(), config(""), Some(lkc.clone())).await;
    h.handle.send(staf(vec![nvme("10.0.0.9", "nqn.a")]));
    let before = h.connected("nqn.a").await;
    h.stop().await;
    assert!(sim.state().disconnects.is_empty(), "exit keeps connections");

    // The new instance has not heard from stafd: it adopts, keeps.
    let h = start_with(sim.clone(), config(""), Some(lkc)).await;
    let s = h.connected("nqn.a").await;
    assert_eq!(s.device, before.device);
    assert_eq!(s.source, Source::Restored);
    h.handle.send(Input::Reload(config("")));
    settle().await;
    assert!(h.ioc("nqn.a").is_some());
    assert_eq!(h.connects("nqn.a"), 1, "no second connect");
    assert!(sim.state().disconnects.is_empty());
    // stafd answers: it is listed, so it stays, now from the log page.
    h.handle.send(staf(vec![nvme("10.0.0.9", "nqn.a")]));
    until("source updated", || {
        h.ioc("nqn.a").is_some_and(|s| s.source == Source::LogPage)
    })
    .await;
    h.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(start_paused = true)]
async fn ncc_bounds_attempts_and_a_cleared_ncc_retries_at_once() {
    let cfg = "[I/O controller connection management]\nconnect-attempts-on-ncc=2\n";
    let h = start_with(SimKernel::new(), config(cfg), None).await;
    let mut e = nvme("10.0.0.9", "nqn.a");
    e.eflags = EFlags(EFlags::NCC);
    h.handle.send(staf(vec![e.clone()]));
    until("attempt 1", || h.connects("nqn.a") == 1).await;
    settle().await;
    tokio::time::advance(Duration::from_secs(3)).await;
    until("attempt 2", || h.connects("nqn.a") == 2).await;
    until("gave up", || {
        h.ioc("nqn.a").is_some_and(|s| s.stage == Stage::GaveUp)
    })
    .await;
    tokio::time::advance(Duration::from_secs(600)).await;
    settle().await;
    assert_eq!(h.connects("nqn.a"), 2, "no attempts while NCC is set");
    // A reload gives exactly one more try.
    h.handle.send(Input::Reload(config(cfg)));
    until("attempt 3", || h.connects("nqn.a") == 3).await;
    until("gave up again", || {
        h.ioc("nqn.a").is_some_and(|s| s.stage == Stage::GaveUp)
    })
    .await;
    // NCC cleared: attempts reset, tries at once.
    h.sim.add_subsystem("10.0.0.9", "nqn.a");
    e.eflags = EFlags(0);
    h.handle.send(staf(vec![e]));
    let s = h.connected("nqn.a").await;
    assert_eq!(h.connects("nqn.a"), 4);
    assert!(!s.ncc());
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn without_ncc_attempts_never_stop() {
    let cfg = "[I/O controller connection management]\nconnect-attempts-on-ncc=2\n";
    let h = start_with(SimKernel::new(), config(cfg), None).await;
    h.handle.send(staf(vec![nvme("10.0.0.9", "nqn.a")]));
    until("attempt 1", || h.connects("nqn.a") == 1).await;
    for n in 2..=4 {
        settle().await;
        tokio::time::advance(Duration::from_secs(60)).await;
        until(&format!("attempt {n}"), || h.connects("nqn.a") == n).await;
    }
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_removed_device_reconnects_after_3_s() {
    let sim = SimKernel::new();
    sim.add_subsystem("10.0.0.5", "nqn.cfg");
    let h = start_with(sim, config(ONE_IOC), None).await;
    let s = h.connected("nqn.cfg").await;
    let dev = s.device.unwrap();
    h.sim.vanish(&dev);
    h.kernel_event("remove", &dev);
    until("waiting", || {
        h.ioc("nqn.cfg").is_some_and(|s| s.stage == Stage::Waiting)
    })
    .await;
    settle().await;
    assert_eq!(h.connects("nqn.cfg"), 1);
    tokio::time::advance(Duration::from_secs(3)).await;
    let s = h.connected("nqn.cfg").await;
    assert_ne!(s.device.as_deref(), Some(dev.as_str()));
    assert_eq!(h.connects("nqn.cfg"), 2);
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn lost_events_find_a_vanished_device() {
    let sim = SimKernel::new();
    sim.add_subsystem("10.0.0.5", "nqn.cfg");
    let h = start_with(sim, config(ONE_IOC), None).await;
    let dev = h.connected("nqn.cfg").await.device.unwrap();
    h.sim.vanish(&dev);
    h.handle.send(Input::Uevent(UeventItem::Lost));
    until("waiting", || {
        h.ioc("nqn.cfg").is_some_and(|s| s.stage == Stage::Waiting)
    })
    .await;
    settle().await;
    tokio::time::advance(Duration::from_secs(3)).await;
    h.connected("nqn.cfg").await;
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_disconnect_never_overtakes_a_connect_in_flight() {
    let sim = SimKernel::new();
    sim.add_subsystem("10.0.0.9", "nqn.a");
    sim.hold_connects(true);
    let h = start_with(sim, config(""), None).await;
    h.handle.send(staf(vec![nvme("10.0.0.9", "nqn.a")]));
    // In the kernel, not merely decided (a stop before that drops it).
    until("connect in flight", || h.sim.state().connects_started == 1).await;
    // Unwanted while the connect is in flight, then wanted again.
    h.handle.send(staf(vec![]));
    h.gone("nqn.a").await;
    h.handle.send(staf(vec![nvme("10.0.0.9", "nqn.a")]));
    settle().await;
    assert!(
        h.ioc("nqn.a").is_none(),
        "not re-created while disposal is pending"
    );
    assert!(h.sim.state().disconnects.is_empty());
    h.sim.hold_connects(false);
    // The connect completes, then its disconnect runs, then the new task.
    until("disposed", || h.sim.state().disconnects.len() == 1).await;
    let s = h.connected("nqn.a").await;
    assert_eq!(h.connects("nqn.a"), 2);
    assert!(h
        .sim
        .state()
        .controllers
        .contains_key(s.device.as_deref().unwrap()));
    assert_eq!(h.sim.state().controllers.len(), 1);
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn audit_disconnects_unwanted_external_connections_of_the_trtypes() {
    let sim = SimKernel::new();
    sim.add_subsystem("10.0.0.9", "nqn.a");
    // Exact TID equality decides (§7.4): the same host interface as the DC.
    let mut o = io_opts("10.0.0.9", "nqn.a", "tcp");
    o.host_iface = Some("eth1".into());
    let wanted = sim.add_existing(o);
    let stray = sim.add_existing(io_opts("10.0.0.3", "nqn.stray", "tcp"));
    let rdma = sim.add_existing(io_opts("10.0.0.4", "nqn.rdma", "rdma"));
    let cfg = "[I/O controller connection management]\ndisconnect-scope=all-connections-matching-disconnect-trtypes\ndisconnect-trtypes=tcp\n";
    let h = start_with(sim, config(cfg), None).await;
    h.handle.send(staf(vec![nvme("10.0.0.9", "nqn.a")]));
    until("stray disconnected", || {
        h.sim.state().disconnects == vec![stray.clone()]
    })
    .await;
    let s = h.connected("nqn.a").await;
    assert_eq!(s.device.as_deref(), Some(wanted.as_str()), "adopted");
    assert!(h.sim.state().controllers.contains_key(&rdma));
    // A connection made behind stacd's back is audited after its add event.
    let late = h.sim.add_existing(io_opts("10.0.0.3", "nqn.late", "tcp"));
    h.kernel_event("add", &late);
    settle().await;
    assert!(
        h.sim.state().controllers.contains_key(&late),
        "not before 1 s"
    );
    tokio::time::advance(Duration::from_secs(1)).await;
    until("late disconnected", || {
        !h.sim.state().controllers.contains_key(&late)
    })
    .await;
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn without_the_audit_scope_external_connections_are_left_alone() {
    let sim = SimKernel::new();
    let stray = sim.add_existing(io_opts("10.0.0.3", "nqn.stray", "tcp"));
    let h = start_with(sim, config(""), None).await;
    h.handle.send(staf(vec![]));
    h.kernel_event("add", &stray);
    settle().await;
    tokio::time::advance(Duration::from_secs(5)).await;
    settle().await;
    assert!(h.sim.state().disconnects.is_empty());
    assert!(h.iocs().is_empty());
    let stats = h.stop().await;
    assert_eq!(stats.audits, 0);
}

#[tokio::test(start_paused = true)]
async fn shutdown_keeps_every_connection() {
    let sim = SimKernel::new();
    sim.add_subsystem("10.0.0.5", "nqn.cfg");
    sim.add_subsystem("10.0.0.9", "nqn.a");
    let h = start_with(sim.clone(), config(ONE_IOC), None).await;
    h.handle.send(staf(vec![nvme("10.0.0.9", "nqn.a")]));
    h.connected("nqn.a").await;
    h.connected("nqn.cfg").await;
    h.stop().await;
    testing::assert_all_kept(&sim, 2);
}

#[tokio::test(start_paused = true)]
async fn a_burst_of_stafd_answers_costs_one_reconciliation() {
    let sim = SimKernel::new();
    sim.state().accept_all = true;
    let h = start_with(sim, config(""), None).await;
    settle().await;
    for i in 0..500 {
        h.handle
            .send(staf(vec![nvme("10.0.0.9", &format!("nqn.{}", i % 5))]));
    }
    h.handle.send(staf(vec![nvme("10.0.0.9", "nqn.last")]));
    h.connected("nqn.last").await;
    settle().await;
    assert_eq!(h.iocs().len(), 1);
    let stats = h.stop().await;
    assert!(
        stats.reconciliations <= 3,
        "{} reconciliations",
        stats.reconciliations
    );
}

#[tokio::test(start_paused = true)]
async fn a_dc_that_has_not_read_its_page_yet_takes_nothing_away() {
    let sim = SimKernel::new();
    sim.add_subsystem("10.0.0.9", "nqn.a");
    let h = start_with(sim, config(""), None).await;
    h.handle.send(staf(vec![nvme("10.0.0.9", "nqn.a")]));
    h.connected("nqn.a").await;
    // stafd restarted without a cached page: the DC is there, its page empty
    // and not read yet.
    h.handle.send(staf_page(vec![], false));
    settle().await;
    assert!(h.ioc("nqn.a").is_some_and(|s| s.connected()));
    assert!(h.sim.state().disconnects.is_empty());
    // Read: the page really is empty now.
    h.handle.send(staf_page(vec![], true));
    h.gone("nqn.a").await;
    h.stop().await;
}

/// `n` subsystems everybody reaches, named in the configuration.
fn many(sim: &SimKernel, n: usize, extra: &str) -> Arc<StacdConfig> {
    sim.state().accept_all = true;
    let mut text = format!("{extra}[Controllers]\n");
    for i in 0..n {
        text.push_str(&format!(
            "controller = transport=tcp;traddr=10.2.{}.{};nqn=nqn.new:{i}\n",
            i / 250,
            i % 250 + 1
        ));
    }
    config(&text)
}

/// `n` connections made by someone else before stacd starts.
fn existing(sim: &SimKernel, n: usize) {
    for i in 0..n {
        let traddr = format!("10.9.{}.{}", i / 250, i % 250 + 1);
        sim.add_existing(io_opts(&traddr, &format!("nqn.ext:{i}"), "tcp"));
    }
}

#[tokio::test(start_paused = true)]
async fn connecting_beside_ten_thousand_controllers_costs_one_scan() {
    let sim = SimKernel::new();
    existing(&sim, 10_000);
    let cfg = many(&sim, 200, "");
    let h = start_with(sim.clone(), cfg, None).await;
    until("200 connected", || {
        let v = h.iocs();
        v.len() == 200 && v.iter().all(IocStatus::connected)
    })
    .await;
    let (scans, reads) = {
        let s = sim.state();
        (s.full_scans, s.reads)
    };
    assert_eq!(scans, 1, "one scan at start, none per connect");
    assert!(reads <= 2 * 200, "{reads} single reads for 200 connects");

    // Events: a removal of ours, an addition of someone else's.
    let dev = h.ioc("nqn.new:7").unwrap().device.unwrap();
    sim.vanish(&dev);
    h.kernel_event("remove", &dev);
    let ext = sim.add_existing(io_opts("10.9.200.1", "nqn.ext:late", "tcp"));
    h.kernel_event("add", &ext);
    settle().await;
    tokio::time::advance(Duration::from_secs(3)).await;
    until("reconnected", || {
        h.ioc("nqn.new:7")
            .is_some_and(|s| s.connected() && s.device.as_deref() != Some(dev.as_str()))
    })
    .await;
    testing::lost_events_cost_one_scan(&sim, || {
        h.handle.send(Input::Uevent(UeventItem::Lost));
    })
    .await;
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn the_audit_after_an_add_reads_only_what_was_added() {
    let sim = SimKernel::new();
    existing(&sim, 300);
    let cfg = many(
        &sim,
        0,
        "[I/O controller connection management]\ndisconnect-scope=all-connections-matching-disconnect-trtypes\ndisconnect-trtypes=tcp\n",
    );
    let h = start_with(sim.clone(), cfg, None).await;
    h.handle.send(staf(vec![]));
    // The start-up audit adopts and then disconnects all 300 (unwanted).
    until("external connections disposed of", || {
        sim.state().controllers.is_empty() && h.iocs().is_empty()
    })
    .await;
    settle().await;
    let reads = sim.state().reads;
    assert_eq!(sim.state().full_scans, 1);
    let dev = sim.add_existing(io_opts("10.9.0.1", "nqn.ext:new", "tcp"));
    h.kernel_event("add", &dev);
    settle().await;
    tokio::time::advance(AUDIT_DELAY).await;
    until("the new one disposed of", || {
        sim.state().controllers.is_empty()
    })
    .await;
    let (scans, extra) = {
        let s = sim.state();
        (s.full_scans, s.reads - reads)
    };
    assert_eq!(scans, 1, "an add costs no scan");
    assert!(extra <= 3, "{extra} reads for one added controller");
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn connects_in_flight_are_bounded_and_shutdown_starts_no_new_one() {
    let sim = SimKernel::new();
    sim.hold_connects(true);
    let cfg = many(&sim, 400, "");
    let h = start_with(sim.clone(), cfg, None).await;
    until("connects in flight", || {
        sim.state().connects_started == DEFAULT_CONNECTS_IN_FLIGHT as u64
    })
    .await;
    settle().await;
    assert_eq!(
        sim.state().connects_started,
        DEFAULT_CONNECTS_IN_FLIGHT as u64,
        "400 wanted, the gate's width in flight"
    );
    h.handle.send(Input::Shutdown);
    settle().await;
    sim.hold_connects(false);
    h.task.await.unwrap();
    let s = sim.state();
    assert_eq!(
        s.connects_started, DEFAULT_CONNECTS_IN_FLIGHT as u64,
        "the queued 396 never started"
    );
    assert!(s.disconnects.is_empty(), "shutdown keeps what it connected");
}

#[tokio::test(start_paused = true)]
async fn a_queued_connect_is_dropped_when_no_longer_wanted() {
    let sim = SimKernel::new();
    sim.hold_connects(true);
    let cfg = many(&sim, 50, "");
    let h = start_with(sim.clone(), cfg, None).await;
    until("connects in flight", || {
        sim.state().connects_started == DEFAULT_CONNECTS_IN_FLIGHT as u64
    })
    .await;
    h.handle.send(Input::Reload(config("")));
    until("none wanted", || h.iocs().is_empty()).await;
    sim.hold_connects(false);
    until("in-flight ones disposed of", || {
        sim.state().disconnects.len() == DEFAULT_CONNECTS_IN_FLIGHT
    })
    .await;
    settle().await;
    {
        let s = sim.state();
        assert_eq!(s.connects_started, DEFAULT_CONNECTS_IN_FLIGHT as u64);
        assert!(s.controllers.is_empty());
    }
    h.stop().await;
}
