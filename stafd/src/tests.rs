//! The stafd pipeline against the simulated kernel, on tokio's paused clock:
//! time only moves when a test advances it, so retry timers are asserted
//! exactly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may panic

pub(crate) use stas_daemon::testing::{self, nvme, settle, until, HOSTID, HOSTNQN};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nvmf_kernel::fabrics::{ConnectOptions, ControllerKind};
use nvmf_kernel::uevent::{Uevent, UeventItem};
use nvmf_proto::dlp::DiscoveryLogEntry;
use nvmf_proto::types::{DcType, SubType};
use nvmf_proto::WELL_KNOWN_DISCOVERY_NQN;
use stas_config::{parse_stafd, StafdConfig};
use stas_daemon::lkc::LkcFile;
use stas_tid::Tid;

use crate::dc::{DcStatus, HostInfo, Origin, Stage};
use crate::service::{Input, Service, ServiceHandle, Signals, Stats};
use crate::sim::{DcSim as _, SimKernel};

#[derive(Debug, Default)]
pub(crate) struct Recorder {
    pub(crate) changed: Mutex<Vec<(String, String)>>,
    pub(crate) removed: AtomicU32,
}

impl Signals for Recorder {
    fn log_pages_changed(&self, tid: &Tid, device: &str) {
        self.changed
            .lock()
            .unwrap()
            .push((tid.traddr.clone(), device.into()));
    }
    fn dc_removed(&self) {
        self.removed.fetch_add(1, Ordering::SeqCst);
    }
}

pub(crate) fn config(text: &str) -> Arc<StafdConfig> {
    testing::config(text, parse_stafd)
}

fn host() -> HostInfo {
    HostInfo {
        hostnqn: HOSTNQN.into(),
        hostid: HOSTID.into(),
        hostid_bytes: Some([7; 16]),
        hostname: "testhost".into(),
        os_version: "Linux test".into(),
        symname: None,
    }
}

pub(crate) fn referral(traddr: &str) -> DiscoveryLogEntry {
    DiscoveryLogEntry {
        subtype: SubType::Referral,
        trsvcid: "8009".into(),
        subnqn: WELL_KNOWN_DISCOVERY_NQN.into(),
        ..nvme(traddr, WELL_KNOWN_DISCOVERY_NQN)
    }
}

pub(crate) struct Harness {
    pub(crate) sim: Arc<SimKernel>,
    pub(crate) signals: Arc<Recorder>,
    pub(crate) handle: ServiceHandle,
    pub(crate) task: tokio::task::JoinHandle<Stats>,
}

pub(crate) fn start_with(
    sim: Arc<SimKernel>,
    cfg: Arc<StafdConfig>,
    lkc: Option<LkcFile>,
) -> Harness {
    let signals = Arc::new(Recorder::default());
    let (mut svc, handle) = Service::new(sim.clone(), host(), cfg, signals.clone(), lkc);
    svc.restore();
    let task = tokio::spawn(svc.run());
    Harness {
        sim,
        signals,
        handle,
        task,
    }
}

fn start(cfg: &str) -> Harness {
    start_with(SimKernel::new(), config(cfg), None)
}

impl Harness {
    pub(crate) fn dcs(&self) -> Vec<DcStatus> {
        self.handle.view.snapshot()
    }

    pub(crate) fn dc(&self, traddr: &str) -> Option<DcStatus> {
        self.dcs().into_iter().find(|d| d.tid.traddr == traddr)
    }

    pub(crate) async fn steady(&self, traddr: &str) -> DcStatus {
        let t = traddr.to_owned();
        until(&format!("{t} steady"), || {
            self.dc(&t).is_some_and(|d| d.stage == Stage::Steady)
        })
        .await;
        self.dc(traddr).unwrap()
    }

    pub(crate) fn uevent(&self, parts: &[&str]) {
        let mut raw = Vec::new();
        for p in parts {
            raw.extend_from_slice(p.as_bytes());
            raw.push(0);
        }
        self.handle.send(Input::Uevent(UeventItem::Event(
            Uevent::parse(&raw).unwrap(),
        )));
    }

    pub(crate) fn aen(&self, dev: &str) {
        self.uevent(&[
            &format!("change@/devices/virtual/nvme-fabrics/ctl/{dev}"),
            "SUBSYSTEM=nvme",
            "NVME_AEN=0x70f002",
        ]);
    }

    pub(crate) async fn stop(self) -> Stats {
        self.handle.send(Input::Shutdown);
        self.task.await.unwrap()
    }
}

/// A simulated kernel with DC 10.0.0.1:8009 listing one subsystem
/// (nqn.a at 10.0.0.9): the setup most tests start from.
fn one_dc_listing_one_subsystem() -> Arc<SimKernel> {
    let sim = SimKernel::new();
    sim.add_dc(
        "10.0.0.1",
        "8009",
        DcType::None,
        vec![nvme("10.0.0.9", "nqn.a")],
    );
    sim
}

pub(crate) const ONE_DC: &str = "[Controllers]\ncontroller = transport=tcp;traddr=10.0.0.1\n";

#[tokio::test(start_paused = true)]
async fn configured_dc_connects_reads_and_signals() {
    let sim = SimKernel::new();
    sim.add_dc(
        "10.0.0.1",
        "8009",
        DcType::None,
        vec![nvme("10.0.0.9", "nqn.a"), nvme("0.0.0.0", "nqn.bogus")],
    );
    let h = start_with(sim, config(ONE_DC), None);
    let d = h.steady("10.0.0.1").await;
    assert_eq!(d.origin, Some(Origin::Configured));
    assert_eq!(d.log_pages.len(), 1, "the 0.0.0.0 entry is dropped");
    assert_eq!(d.device.as_deref(), Some("nvme0"));
    let c = h.sim.state().connects[0].clone();
    assert_eq!(c.kind, ControllerKind::Discovery);
    assert_eq!(c.trsvcid.as_deref(), Some("8009"));
    assert_eq!(
        c.keep_alive_tmo,
        Some(30),
        "explicit kato for a persistent DC connection"
    );
    assert_eq!(c.hostnqn.as_deref(), Some(HOSTNQN));
    assert_eq!(
        h.signals.changed.lock().unwrap().as_slice(),
        [("10.0.0.1".to_owned(), "nvme0".to_owned())]
    );
    // nvmet-like DC: Supported Log Pages refused -> plain read (lsp 0).
    assert_eq!(h.sim.state().log_reads, [("nvme0".to_owned(), 0)]);
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn unreachable_dc_retries_fast_then_slow() {
    let sim = SimKernel::new();
    sim.add_dc("10.0.0.1", "8009", DcType::None, vec![]);
    sim.with_dc("10.0.0.1", |d| d.reachable = false);
    let h = start_with(sim, config(ONE_DC), None);
    let connects = |h: &Harness| h.sim.state().connects.len();
    until("first attempt", || connects(&h) == 1).await;
    settle().await;
    tokio::time::advance(Duration::from_millis(2900)).await;
    settle().await;
    assert_eq!(connects(&h), 1, "no retry before 3 s");
    tokio::time::advance(Duration::from_millis(200)).await;
    until("fast retry at 3 s", || connects(&h) == 2).await;
    settle().await;
    tokio::time::advance(Duration::from_secs(59)).await;
    settle().await;
    assert_eq!(connects(&h), 2, "then 60 s");
    tokio::time::advance(Duration::from_secs(2)).await;
    until("slow retry", || connects(&h) == 3).await;
    h.sim.with_dc("10.0.0.1", |d| d.reachable = true);
    settle().await;
    tokio::time::advance(Duration::from_secs(61)).await;
    let d = h.steady("10.0.0.1").await;
    assert_eq!(d.connect_attempts, 0);
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn existing_connection_is_adopted_not_duplicated() {
    let sim = one_dc_listing_one_subsystem();
    let mut o = ConnectOptions::new(
        ControllerKind::Discovery,
        "tcp",
        WELL_KNOWN_DISCOVERY_NQN,
        Some("10.0.0.1"),
    );
    o.trsvcid = Some("8009".into());
    o.hostnqn = Some(HOSTNQN.into());
    let existing = sim.add_existing(o);
    let h = start_with(sim, config(ONE_DC), None);
    let d = h.steady("10.0.0.1").await;
    assert_eq!(d.device.as_deref(), Some(existing.as_str()));
    assert!(h.sim.state().connects.is_empty(), "adopted, no new connect");
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn ddc_is_registered_and_pleo_used() {
    let sim = SimKernel::new();
    sim.add_dc(
        "10.0.0.1",
        "8009",
        DcType::Ddc,
        vec![nvme("10.0.0.9", "nqn.a")],
    );
    sim.with_dc("10.0.0.1", |d| d.lid0 = Some(0b010));
    let h = start_with(sim, config(ONE_DC), None);
    h.steady("10.0.0.1").await;
    let s = h.sim.state().clone();
    assert_eq!(s.registrations.len(), 1);
    assert_eq!(s.lid0_reads, 1);
    assert_eq!(s.log_reads, [("nvme0".to_owned(), 2)], "PLEO asked for");
    drop(s);
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn cdc_is_registered_without_pleo_query_and_refusal_is_not_fatal() {
    let sim = SimKernel::new();
    sim.add_dc(
        "10.0.0.1",
        "8009",
        DcType::Cdc,
        vec![nvme("10.0.0.9", "nqn.a")],
    );
    sim.with_dc("10.0.0.1", |d| d.dim_status = Some(0x4133));
    let h = start_with(sim, config(ONE_DC), None);
    let d = h.steady("10.0.0.1").await;
    assert_eq!(
        d.log_pages.len(),
        1,
        "a refused registration still reads the log"
    );
    let s = h.sim.state().clone();
    assert_eq!(s.registrations.len(), 1);
    assert_eq!(s.lid0_reads, 0, "no Supported Log Pages query to a CDC");
    drop(s);
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn plain_dc_is_not_registered_and_pleo_disabled_skips_query() {
    let sim = SimKernel::new();
    sim.add_dc("10.0.0.1", "8009", DcType::None, vec![]);
    let h = start_with(sim, config("[Global]\npleo = disabled\n[Controllers]\ncontroller = transport=tcp;traddr=10.0.0.1\n"), None);
    h.steady("10.0.0.1").await;
    let s = h.sim.state().clone();
    assert!(s.registrations.is_empty());
    assert_eq!(s.lid0_reads, 0);
    drop(s);
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn referrals_are_followed_cycle_safe_and_removed() {
    let sim = SimKernel::new();
    // A refers to B, B refers back to A: two DCs, no loop.
    sim.add_dc(
        "10.0.0.1",
        "8009",
        DcType::None,
        vec![nvme("10.0.0.9", "nqn.a"), referral("10.0.0.2")],
    );
    sim.add_dc(
        "10.0.0.2",
        "8009",
        DcType::None,
        vec![referral("10.0.0.1"), nvme("10.0.0.8", "nqn.b")],
    );
    let h = start_with(sim, config(ONE_DC), None);
    let b = h.steady("10.0.0.2").await;
    assert_eq!(b.origin, Some(Origin::Referral));
    settle().await;
    assert_eq!(h.dcs().len(), 2);
    assert_eq!(
        h.dc("10.0.0.1").unwrap().origin,
        Some(Origin::Configured),
        "configured wins over referral"
    );

    // A drops the referral: B is disconnected and removed.
    h.sim.with_dc("10.0.0.1", |d| {
        d.entries.retain(|e| e.subtype != SubType::Referral)
    });
    h.aen("nvme0");
    until("B removed", || h.dc("10.0.0.2").is_none()).await;
    until("B disconnected", || h.sim.state().disconnects == ["nvme1"]).await;
    assert_eq!(h.signals.removed.load(Ordering::SeqCst), 1);
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn aen_refetches_and_a_storm_of_aens_costs_one_read() {
    let sim = one_dc_listing_one_subsystem();
    let h = start_with(sim, config(ONE_DC), None);
    h.steady("10.0.0.1").await;
    h.sim
        .with_dc("10.0.0.1", |d| d.entries.push(nvme("10.0.0.10", "nqn.b")));
    h.aen("nvme0");
    until("second read", || {
        h.dc("10.0.0.1").unwrap().log_pages.len() == 2
    })
    .await;
    h.steady("10.0.0.1").await;
    let reads = h.sim.state().log_reads.len();
    assert_eq!(reads, 2);
    // A storm while a read is in flight: one more read, not a hundred.
    h.sim.hold_reads();
    h.aen("nvme0");
    until("read in flight", || {
        h.dc("10.0.0.1").unwrap().stage == Stage::Fetching
    })
    .await;
    for _ in 0..99 {
        h.aen("nvme0");
    }
    settle().await;
    h.sim.release();
    settle().await;
    h.steady("10.0.0.1").await;
    let after = h.sim.state().log_reads.len();
    assert_eq!(
        after - reads,
        2,
        "100 AENs during a read cost the read and one more"
    );
    // Other AENs and other devices change nothing.
    h.uevent(&["change@/x/nvme0", "SUBSYSTEM=nvme", "NVME_AEN=0x000002"]);
    h.aen("nvme7");
    settle().await;
    assert_eq!(h.sim.state().log_reads.len(), after);
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn rediscover_event_resyncs_registration_and_log() {
    let sim = SimKernel::new();
    sim.add_dc("10.0.0.1", "8009", DcType::Ddc, vec![]);
    let h = start_with(sim, config(ONE_DC), None);
    h.steady("10.0.0.1").await;
    h.uevent(&["change@/x/nvme0", "SUBSYSTEM=nvme", "NVME_EVENT=rediscover"]);
    until("re-registered", || h.sim.state().registrations.len() == 2).await;
    until("re-read", || h.sim.state().log_reads.len() == 2).await;
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn device_removal_reconnects_after_3s_keeping_the_cache() {
    let sim = one_dc_listing_one_subsystem();
    let h = start_with(sim, config(ONE_DC), None);
    h.steady("10.0.0.1").await;
    h.sim.vanish("nvme0");
    h.uevent(&[
        "remove@/devices/virtual/nvme-fabrics/ctl/nvme0",
        "SUBSYSTEM=nvme",
    ]);
    until("disconnected", || !h.dc("10.0.0.1").unwrap().connected).await;
    let d = h.dc("10.0.0.1").unwrap();
    assert_eq!(
        d.log_pages.len(),
        1,
        "cached log page kept while reconnecting"
    );
    settle().await;
    assert_eq!(h.sim.state().connects.len(), 1);
    tokio::time::advance(Duration::from_secs(3)).await;
    let d = h.steady("10.0.0.1").await;
    assert_eq!(d.device.as_deref(), Some("nvme1"));
    assert_eq!(h.sim.state().connects.len(), 2);
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn shutdown_keeps_persistent_connections() {
    let sim = SimKernel::new();
    sim.add_dc("10.0.0.1", "8009", DcType::None, vec![]);
    let h = start_with(sim.clone(), config(ONE_DC), None);
    h.steady("10.0.0.1").await;
    h.stop().await;
    testing::assert_all_kept(&sim, 1);
}

#[tokio::test(start_paused = true)]
async fn shutdown_disconnects_without_persistent_connections() {
    let sim = SimKernel::new();
    sim.add_dc("10.0.0.1", "8009", DcType::None, vec![]);
    let cfg = "[Discovery controller connection management]\npersistent-connections = false\n[Controllers]\ncontroller = transport=tcp;traddr=10.0.0.1\n";
    let h = start_with(sim.clone(), config(cfg), None);
    h.steady("10.0.0.1").await;
    h.stop().await;
    assert_eq!(sim.state().disconnects, ["nvme0"]);
}

#[tokio::test(start_paused = true)]
async fn reload_without_the_controller_disconnects_it() {
    let sim = SimKernel::new();
    sim.add_dc("10.0.0.1", "8009", DcType::None, vec![]);
    sim.add_dc("10.0.0.2", "8009", DcType::None, vec![]);
    let h = start_with(sim, config("[Controllers]\ncontroller = transport=tcp;traddr=10.0.0.1\ncontroller = transport=tcp;traddr=10.0.0.2\n"), None);
    let kept = h.steady("10.0.0.1").await.device.unwrap();
    h.steady("10.0.0.2").await;
    h.handle.send(Input::Reload(config(ONE_DC)));
    until("removed", || h.dc("10.0.0.2").is_none()).await;
    until("disconnected", || h.sim.state().disconnects.len() == 1).await;
    assert_eq!(h.signals.removed.load(Ordering::SeqCst), 1);
    // The two DCs connect concurrently: which one is nvme0 is not fixed.
    until("resync re-read the kept DC", || {
        h.sim
            .state()
            .log_reads
            .iter()
            .filter(|(d, _)| *d == kept)
            .count()
            == 2
    })
    .await;
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn exclude_wins_over_controller() {
    let sim = SimKernel::new();
    sim.add_dc("10.0.0.1", "8009", DcType::None, vec![referral("10.0.0.2")]);
    sim.add_dc("10.0.0.2", "8009", DcType::None, vec![]);
    let h = start_with(sim, config("[Controllers]\ncontroller = transport=tcp;traddr=10.0.0.1\nexclude = traddr=10.0.0.2\n"), None);
    h.steady("10.0.0.1").await;
    settle().await;
    assert_eq!(h.dcs().len(), 1, "the referral is excluded");
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn lost_events_resync_every_dc() {
    let sim = SimKernel::new();
    sim.add_dc("10.0.0.1", "8009", DcType::None, vec![]);
    sim.add_dc("10.0.0.2", "8009", DcType::None, vec![]);
    let h = start_with(sim, config("[Controllers]\ncontroller = transport=tcp;traddr=10.0.0.1\ncontroller = transport=tcp;traddr=10.0.0.2\n"), None);
    h.steady("10.0.0.1").await;
    h.steady("10.0.0.2").await;
    let dev2 = h.dc("10.0.0.2").unwrap().device.unwrap();
    h.sim.vanish(&dev2);
    h.handle.send(Input::Uevent(UeventItem::Lost));
    until("surviving DC re-read", || {
        h.sim.state().log_reads.len() >= 3
    })
    .await;
    until("vanished DC noticed", || {
        !h.dc("10.0.0.2").unwrap().connected
    })
    .await;
    tokio::time::advance(Duration::from_secs(3)).await;
    h.steady("10.0.0.2").await;
    let stats = h.stop().await;
    assert_eq!(stats.resyncs, 1);
}

#[tokio::test(start_paused = true)]
async fn a_storm_of_triggers_is_one_reconciliation() {
    let h = start("");
    settle().await;
    let before = h.handle.view.snapshot().len();
    assert_eq!(before, 0);
    for _ in 0..1000 {
        h.handle.send(Input::Reconcile);
    }
    settle().await;
    let stats = h.stop().await;
    // One at start, one for the whole storm.
    assert_eq!(stats.reconciliations, 2);
}

#[tokio::test(start_paused = true)]
async fn stop_waits_for_a_connect_in_flight_then_disconnects() {
    let sim = SimKernel::new();
    sim.add_dc("10.0.0.1", "8009", DcType::None, vec![]);
    sim.hold_connects(true);
    let cfg = "[Discovery controller connection management]\npersistent-connections = false\n[Controllers]\ncontroller = transport=tcp;traddr=10.0.0.1\n";
    let h = start_with(sim.clone(), config(cfg), None);
    // In the kernel, not merely decided (a stop before that drops it).
    until("connect in flight", || sim.state().connects_started == 1).await;
    h.handle.send(Input::Shutdown);
    settle().await;
    assert!(
        sim.state().disconnects.is_empty(),
        "no disconnect while the connect is in flight"
    );
    sim.release();
    h.task.await.unwrap();
    let s = sim.state();
    assert_eq!(s.connects.len(), 1);
    assert_eq!(
        s.disconnects,
        ["nvme0"],
        "the connection made is then taken down"
    );
}

#[tokio::test(start_paused = true)]
async fn a_dc_removed_during_a_connect_is_disconnected_though_shutdown_keeps_connections() {
    // The removal decides first; the shutdown after it (persistent
    // connections) must not turn that disconnect into a keep.
    let sim = SimKernel::new();
    sim.add_dc("10.0.0.1", "8009", DcType::None, vec![]);
    sim.hold_connects(true);
    let h = start_with(sim.clone(), config(ONE_DC), None);
    // In the kernel, not merely decided (a stop before that drops it).
    until("connect in flight", || sim.state().connects_started == 1).await;
    h.handle.send(Input::Reload(config("")));
    until("removed", || h.dc("10.0.0.1").is_none()).await;
    h.handle.send(Input::Shutdown);
    settle().await;
    sim.release();
    h.task.await.unwrap();
    let s = sim.state();
    assert_eq!(s.connects.len(), 1);
    assert_eq!(
        s.disconnects,
        ["nvme0"],
        "the removed DC is not left connected"
    );
}

#[tokio::test(start_paused = true)]
async fn a_thousand_dcs_cost_one_scan_and_events_none() {
    let sim = SimKernel::new();
    let mut cfg = String::from("[Controllers]\n");
    for i in 0..1000 {
        let traddr = format!("10.1.{}.{}", i / 250, i % 250 + 1);
        sim.add_dc(&traddr, "8009", DcType::None, vec![]);
        cfg.push_str(&format!("controller = transport=tcp;traddr={traddr}\n"));
    }
    let h = start_with(sim.clone(), config(&cfg), None);
    until("all steady", || {
        let d = h.dcs();
        d.len() == 1000 && d.iter().all(|d| d.stage == Stage::Steady)
    })
    .await;
    assert_eq!(
        sim.state().full_scans,
        1,
        "one scan at start, none per connect"
    );
    let dev = h.dc("10.1.0.1").unwrap().device.unwrap();
    for _ in 0..100 {
        h.aen(&dev);
    }
    h.uevent(&[
        &format!("remove@/devices/virtual/nvme-fabrics/ctl/{dev}"),
        "ACTION=remove",
        "SUBSYSTEM=nvme",
        &format!("DEVNAME={dev}"),
    ]);
    settle().await;
    testing::lost_events_cost_one_scan(&sim, || {
        h.handle.send(Input::Uevent(UeventItem::Lost));
    })
    .await;
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn last_known_config_restores_cached_pages_before_connecting() {
    let (dir, lkc) = testing::lkc_in_fresh_dir("stafd-lkc-test", "stafd");

    let sim = one_dc_listing_one_subsystem();
    let h = start_with(sim.clone(), config(ONE_DC), Some(lkc.clone()));
    h.steady("10.0.0.1").await;
    h.stop().await; // persistent: the kernel connection stays

    // Restart: the DC is served from the file at once, while unreachable.
    sim.with_dc("10.0.0.1", |d| d.log_errno = Some(nvmf_kernel::Errno::EIO));
    let h = start_with(sim.clone(), config(ONE_DC), Some(lkc));
    let d = h
        .dc("10.0.0.1")
        .expect("restored before any reconciliation");
    assert_eq!(d.log_pages.len(), 1);
    assert_eq!(d.log_pages[0].subnqn, "nqn.a");
    assert_eq!(d.origin, Some(Origin::Configured));
    until("re-adopted", || h.dc("10.0.0.1").unwrap().connected).await;
    settle().await;
    assert_eq!(
        sim.state().connects.len(),
        1,
        "the existing connection was adopted after restart"
    );
    h.stop().await;
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test(start_paused = true)]
async fn nbft_discovery_controllers_are_configured() {
    let sim = SimKernel::new();
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/data/fuzz-seeds/nbft/dell-r760.bin");
    sim.state().nbft = vec![
        std::fs::read(fixture).unwrap(),
        vec![0xca, 0xfe, 0xba, 0xbe],
    ];
    sim.add_dc(
        "100.71.103.50",
        "8009",
        DcType::None,
        vec![nvme("100.71.103.48", "nqn.a")],
    );
    let h = start_with(sim, config(""), None);
    let d = h.steady("100.71.103.50").await;
    assert_eq!(d.origin, Some(Origin::Configured));
    assert_eq!(
        d.tid.host_nqn,
        "nqn.1988-11.com.dell:PowerEdge.R760.1234567"
    );
    assert_eq!(h.dcs().len(), 1, "the corrupt table adds nothing");
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn removed_ddc_is_deregistered_before_disconnect_but_not_at_shutdown() {
    use nvmf_proto::dim::Tas;
    let sim = SimKernel::new();
    sim.add_dc("10.0.0.1", "8009", DcType::Ddc, vec![]);
    sim.add_dc("10.0.0.2", "8009", DcType::Ddc, vec![]);
    let h = start_with(
        sim.clone(),
        config("[Controllers]\ncontroller = transport=tcp;traddr=10.0.0.1\ncontroller = transport=tcp;traddr=10.0.0.2\n"),
        None,
    );
    h.steady("10.0.0.1").await;
    h.steady("10.0.0.2").await;
    let dev2 = h.dc("10.0.0.2").unwrap().device.unwrap();
    h.handle.send(Input::Reload(config(ONE_DC)));
    until("removed DC disconnected", || {
        sim.state().disconnects == [dev2.clone()]
    })
    .await;
    let regs = sim.state().registrations.clone();
    assert!(regs.contains(&(dev2.clone(), Tas::Deregister)), "{regs:?}");
    h.stop().await;
    let regs = sim.state().registrations.clone();
    assert_eq!(
        regs.iter().filter(|(_, t)| *t == Tas::Deregister).count(),
        1,
        "persistent at shutdown: no deregistration"
    );
}

#[tokio::test(start_paused = true)]
async fn unique_discovery_nqn_is_a_discovery_connection_with_kato() {
    let sim = SimKernel::new();
    sim.add_dc("10.0.0.1", "8009", DcType::Cdc, vec![]);
    let h = start_with(sim.clone(), config("[Controllers]\ncontroller = transport=tcp;traddr=10.0.0.1;nqn=nqn.2024-01.io.example:cdc\n"), None);
    h.steady("10.0.0.1").await;
    let c = sim.state().connects[0].clone();
    assert_eq!(c.nqn, "nqn.2024-01.io.example:cdc");
    assert_eq!(c.kind, ControllerKind::Discovery);
    assert_eq!(c.keep_alive_tmo, Some(30));
    let opts = nvmf_kernel::fabrics::build_option_string(
        &c,
        &nvmf_kernel::fabrics::SupportedOptions::parse(nvmf_kernel::fabrics::LINUX_6_1_OPTIONS),
    )
    .unwrap();
    assert!(opts.text.contains(",discovery"), "{}", opts.text);
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn events_of_unmanaged_dcs_are_forwarded_to_nvme_cli() {
    let sim = SimKernel::new();
    sim.add_dc("10.0.0.1", "8009", DcType::None, vec![]);
    sim.add_dc("10.0.0.7", "8009", DcType::None, vec![]);
    let mut o = ConnectOptions::new(
        ControllerKind::Discovery,
        "tcp",
        WELL_KNOWN_DISCOVERY_NQN,
        Some("10.0.0.7"),
    );
    o.trsvcid = Some("8009".into());
    let other = sim.add_existing(o);
    let h = start_with(sim.clone(), config(ONE_DC), None);
    h.steady("10.0.0.1").await;
    h.uevent(&[
        &format!("change@/devices/virtual/nvme-fabrics/ctl/{other}"),
        "SUBSYSTEM=nvme",
        "NVME_AEN=0x70f002",
        "NVME_HOST_TRADDR=none",
        "NVME_HOST_IFACE=eth1",
    ]);
    until("forwarded", || !sim.state().forwarded.is_empty()).await;
    assert_eq!(
        sim.state().forwarded,
        [format!("--device\\x3d{other}\\x09--host-iface\\x3deth1")]
    );
    // Our own DC's AEN is not forwarded.
    h.aen("nvme1");
    settle().await;
    assert_eq!(sim.state().forwarded.len(), 1);
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn removing_a_dc_removes_the_referrals_only_it_named() {
    let sim = SimKernel::new();
    // A -> B -> C -> B: a chain ending in a cycle, all hanging off A.
    sim.add_dc("10.0.0.1", "8009", DcType::None, vec![referral("10.0.0.2")]);
    sim.add_dc("10.0.0.2", "8009", DcType::None, vec![referral("10.0.0.3")]);
    sim.add_dc("10.0.0.3", "8009", DcType::None, vec![referral("10.0.0.2")]);
    sim.add_dc("10.0.0.9", "8009", DcType::None, vec![]);
    let h = start_with(sim.clone(), config(ONE_DC), None);
    h.steady("10.0.0.3").await;
    assert_eq!(h.dcs().len(), 3);
    h.handle.send(Input::Reload(config(
        "[Controllers]\ncontroller = transport=tcp;traddr=10.0.0.9\n",
    )));
    until("only the new DC left", || {
        let d = h.dcs();
        d.len() == 1 && d[0].tid.traddr == "10.0.0.9"
    })
    .await;
    until("three disconnected", || sim.state().disconnects.len() == 3).await;
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn failed_log_read_is_retried_after_20s() {
    let sim = one_dc_listing_one_subsystem();
    sim.with_dc("10.0.0.1", |d| d.log_errno = Some(nvmf_kernel::Errno::EIO));
    let h = start_with(sim.clone(), config(ONE_DC), None);
    until("first read", || sim.state().log_reads.len() == 1).await;
    settle().await;
    sim.with_dc("10.0.0.1", |d| d.log_errno = None);
    tokio::time::advance(Duration::from_secs(19)).await;
    settle().await;
    assert_eq!(sim.state().log_reads.len(), 1, "not before 20 s");
    tokio::time::advance(Duration::from_secs(2)).await;
    let d = h.steady("10.0.0.1").await;
    assert_eq!(d.log_pages.len(), 1);
    h.stop().await;
}

/// The page changing faster than a read completes fails the read (nvmet:
/// "invalid field" once the retries are spent); the AEN of the next change
/// must bring the read at once, not the 20 s retry (all N unzoned at once
/// took 20 s for that).
#[tokio::test(start_paused = true)]
async fn an_aen_after_a_failed_read_reads_at_once() {
    let sim = one_dc_listing_one_subsystem();
    let h = start_with(sim.clone(), config(ONE_DC), None);
    h.steady("10.0.0.1").await;
    sim.with_dc("10.0.0.1", |d| d.log_errno = Some(nvmf_kernel::Errno::EIO));
    h.aen("nvme0");
    until("the failed read", || sim.state().log_reads.len() == 2).await;
    settle().await;
    sim.with_dc("10.0.0.1", |d| {
        d.log_errno = None;
        d.entries.clear();
    });
    h.aen("nvme0");
    until("read again at once", || sim.state().log_reads.len() == 3).await;
    let d = h.steady("10.0.0.1").await;
    assert!(d.log_pages.is_empty(), "{:?}", d.log_pages);
    settle().await;
    assert_eq!(sim.state().log_reads.len(), 3, "one read per AEN");
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn registration_that_does_not_reach_the_dc_is_retried_after_5s() {
    let sim = SimKernel::new();
    sim.add_dc("10.0.0.1", "8009", DcType::Ddc, vec![]);
    sim.with_dc("10.0.0.1", |d| {
        d.dim_errno = Some(nvmf_kernel::Errno::EINTR)
    });
    let h = start_with(sim.clone(), config(ONE_DC), None);
    until("first registration", || {
        sim.state().registrations.len() == 1
    })
    .await;
    settle().await;
    assert!(
        sim.state().log_reads.is_empty(),
        "no read before registering"
    );
    sim.with_dc("10.0.0.1", |d| d.dim_errno = None);
    tokio::time::advance(Duration::from_secs(4)).await;
    settle().await;
    assert_eq!(sim.state().registrations.len(), 1, "not before 5 s");
    tokio::time::advance(Duration::from_secs(2)).await;
    h.steady("10.0.0.1").await;
    assert_eq!(sim.state().registrations.len(), 2);
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn configured_host_names_are_resolved_per_ip_family() {
    let sim = SimKernel::new();
    sim.state().names.insert(
        "dc.example".into(),
        vec!["fd00::5".parse().unwrap(), "10.0.0.5".parse().unwrap()],
    );
    sim.add_dc("10.0.0.5", "8009", DcType::None, vec![]);
    sim.add_dc("fd00::5", "8009", DcType::None, vec![]);
    let h = start_with(
        sim.clone(),
        config("[Controllers]\ncontroller = transport=tcp;traddr=dc.example\n"),
        None,
    );
    h.steady("10.0.0.5").await;
    assert_eq!(
        h.dcs().len(),
        1,
        "the first IPv4 address wins when IPv4 is enabled"
    );
    h.handle.send(Input::Reload(config(
        "[Global]\nip-family = ipv6\n[Controllers]\ncontroller = transport=tcp;traddr=dc.example\ncontroller = transport=tcp;traddr=10.0.0.7\ncontroller = transport=tcp;traddr=nowhere.example\n",
    )));
    h.steady("fd00::5").await;
    until("the IPv4 DC goes", || h.dc("10.0.0.5").is_none()).await;
    settle().await;
    let all: Vec<String> = h.dcs().into_iter().map(|d| d.tid.traddr).collect();
    assert_eq!(
        all,
        ["fd00::5"],
        "IPv4 literal and unresolvable names dropped"
    );
    h.stop().await;
}

pub(crate) fn discovered(traddr: &str, iface: &str) -> Tid {
    Tid::from_cid(
        &[
            ("transport", "tcp"),
            ("traddr", traddr),
            ("trsvcid", "8009"),
            ("host-iface", iface),
            ("subsysnqn", WELL_KNOWN_DISCOVERY_NQN),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect(),
        &stas_tid::TidContext {
            host_nqn: HOSTNQN.into(),
            ignore_iface: false,
        },
    )
}

/// The symbolic names in a DIM payload.
fn symnames(data: &nvmf_proto::dim::DimData) -> Vec<String> {
    data.entries
        .iter()
        .flat_map(|e| &e.attrs)
        .filter_map(|a| match a {
            nvmf_proto::dim::ExtAttr::SymName(s) => Some(s.trim_end().to_owned()),
            _ => None,
        })
        .collect()
}

/// A reload that changes only the symbolic name tells a DC that holds our
/// registration with a DIM update (TP8010), not a second registration; a
/// reload that changes nothing sends no DIM command; a kernel reconnect
/// still registers.
#[tokio::test(start_paused = true)]
async fn a_new_symname_on_reload_is_one_dim_update_not_a_second_register() {
    use nvmf_proto::dim::Tas;
    let sim = SimKernel::new();
    sim.add_dc("10.0.0.1", "8009", DcType::Cdc, vec![]);
    let h = start_with(sim.clone(), config(ONE_DC), None);
    h.steady("10.0.0.1").await;
    let tasks = || -> Vec<Tas> { sim.state().registrations.iter().map(|(_, t)| *t).collect() };
    assert_eq!(tasks(), [Tas::Register]);
    assert!(symnames(&sim.state().dim_payloads[0]).is_empty());

    h.handle.send(Input::Symname(Some("rack7-host".into())));
    h.handle.send(Input::Reload(config(ONE_DC)));
    until("read again after the reload", || {
        sim.state().log_reads.len() == 2
    })
    .await;
    h.steady("10.0.0.1").await;
    assert_eq!(tasks(), [Tas::Register, Tas::Update]);
    assert_eq!(symnames(&sim.state().dim_payloads[1]), ["rack7-host"]);

    // Nothing changed: nothing to tell the DC.
    h.handle.send(Input::Symname(Some("rack7-host".into())));
    h.handle.send(Input::Reload(config(ONE_DC)));
    until("read again after the reload", || {
        sim.state().log_reads.len() == 3
    })
    .await;
    h.steady("10.0.0.1").await;
    assert_eq!(tasks(), [Tas::Register, Tas::Update]);

    // The kernel reconnected it: the DC may have lost us, register again.
    h.uevent(&["change@/x/nvme0", "SUBSYSTEM=nvme", "NVME_EVENT=rediscover"]);
    until("registered again", || tasks().len() == 3).await;
    assert_eq!(tasks()[2], Tas::Register);
    assert_eq!(symnames(&sim.state().dim_payloads[2]), ["rack7-host"]);
    h.stop().await;
}
