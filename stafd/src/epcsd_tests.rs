//! `persistent` and `epcsd-poll-interval-minutes`: which DCs stay
//! connected between log page reads and which are polled, against the
//! simulated kernel on tokio's paused clock.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may panic

use std::sync::atomic::Ordering;
use std::time::Duration;

use nvmf_proto::dlp::DiscoveryLogEntry;
use nvmf_proto::types::{DcType, EFlags, SubType};
use nvmf_proto::WELL_KNOWN_DISCOVERY_NQN;

use nvmf_kernel::uevent::UeventItem;

use crate::dc::Stage;
use crate::service::Input;
use crate::sim::{DcSim as _, SimKernel};
use crate::tests::{
    config, discovered, nvme, referral, settle, start_with, until, Harness, ONE_DC,
};

/// A DC's own "current discovery subsystem" entry (TP8014).
fn own_entry(traddr: &str, eflags: u16) -> DiscoveryLogEntry {
    DiscoveryLogEntry {
        subtype: SubType::CurrentDiscovery,
        trsvcid: "8009".into(),
        eflags: EFlags(eflags),
        ..nvme(traddr, WELL_KNOWN_DISCOVERY_NQN)
    }
}

const AUTO: &str = "[Discovery controller connection management]\npersistent = auto\n";

/// Moves the paused clock by `d`, a minute at a time, letting the tasks run.
async fn wait(d: Duration) {
    let mut left = d;
    while !left.is_zero() {
        let step = left.min(Duration::from_secs(60));
        tokio::time::advance(step).await;
        settle().await;
        left -= step;
    }
}

impl Harness {
    async fn parked(&self, traddr: &str) {
        until(&format!("{traddr} parked"), || {
            self.dc(traddr).is_some_and(|d| d.stage == Stage::Parked)
        })
        .await;
    }
}

#[tokio::test(start_paused = true)]
async fn by_default_a_dc_without_epcsd_stays_connected_as_before() {
    let sim = SimKernel::new();
    sim.add_dc(
        "10.0.0.1",
        "8009",
        DcType::None,
        vec![own_entry("10.0.0.1", 0), nvme("10.0.0.9", "nqn.a")],
    );
    let h = start_with(sim.clone(), config(ONE_DC), None);
    h.steady("10.0.0.1").await;
    wait(Duration::from_secs(20 * 60)).await;
    let d = h.dc("10.0.0.1").unwrap();
    assert!(d.connected && d.stage == Stage::Steady, "{d:?}");
    assert!(sim.state().disconnects.is_empty());
    assert_eq!(sim.state().log_reads.len(), 1);
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn under_auto_a_dc_saying_epcsd_stays_connected() {
    let sim = SimKernel::new();
    sim.add_dc(
        "10.0.0.1",
        "8009",
        DcType::None,
        vec![
            own_entry("10.0.0.1", EFlags::EPCSD),
            nvme("10.0.0.9", "nqn.a"),
        ],
    );
    let h = start_with(sim.clone(), config(&format!("{AUTO}{ONE_DC}")), None);
    h.steady("10.0.0.1").await;
    wait(Duration::from_secs(20 * 60)).await;
    assert!(h.dc("10.0.0.1").unwrap().connected);
    assert!(sim.state().disconnects.is_empty());
    assert_eq!(sim.state().log_reads.len(), 1, "AENs, not polls");
    h.stop().await;
}

/// Under `auto`, a DC whose own entry lacks EPCSD is read, disconnected,
/// and read again every 15 minutes; its page stays on D-Bus meanwhile, and
/// the kernel's remove event of our own disconnect changes nothing.
#[tokio::test(start_paused = true)]
async fn under_auto_a_dc_without_epcsd_is_polled_and_its_page_kept_between() {
    let sim = SimKernel::new();
    sim.add_dc(
        "10.0.0.1",
        "8009",
        DcType::Ddc,
        vec![own_entry("10.0.0.1", 0), nvme("10.0.0.9", "nqn.a")],
    );
    let h = start_with(sim.clone(), config(&format!("{AUTO}{ONE_DC}")), None);
    h.parked("10.0.0.1").await;
    until("disconnected", || sim.state().disconnects == ["nvme0"]).await;
    h.uevent(&[
        "remove@/devices/virtual/nvme-fabrics/ctl/nvme0",
        "SUBSYSTEM=nvme",
    ]);
    settle().await;
    let d = h.dc("10.0.0.1").unwrap();
    assert!(!d.connected && d.device.is_none() && d.stage == Stage::Parked);
    // Lost kernel events resync every DC, but a parked one waits its turn.
    h.handle.send(Input::Uevent(UeventItem::Lost));
    settle().await;
    assert_eq!(sim.state().connects.len(), 1);
    assert_eq!(d.log_pages.len(), 2, "the cached page is kept");
    let json = crate::dbus::all_log_pages_json(&[(d, None)], false, false);
    assert!(
        json.contains("nqn.a"),
        "served on D-Bus while parked: {json}"
    );
    assert_eq!(h.signals.removed.load(Ordering::SeqCst), 0, "no dc_removed");
    assert_eq!(sim.state().registrations.len(), 1, "registered when read");

    // Not before the poll interval, even with the page changing meanwhile
    // (a parked DC cannot tell us).
    sim.with_dc("10.0.0.1", |d| d.entries.push(nvme("10.0.0.10", "nqn.b")));
    wait(Duration::from_secs(14 * 60)).await;
    assert_eq!(sim.state().connects.len(), 1, "{:?}", h.dc("10.0.0.1"));
    assert_eq!(h.dc("10.0.0.1").unwrap().log_pages.len(), 2);

    wait(Duration::from_secs(60)).await;
    until("polled", || sim.state().log_reads.len() == 2).await;
    h.parked("10.0.0.1").await;
    until("disconnected again", || sim.state().disconnects.len() == 2).await;
    let d = h.dc("10.0.0.1").unwrap();
    assert_eq!(d.log_pages.len(), 3, "the new page, cached");
    let s = sim.state().clone();
    assert_eq!(s.connects.len(), 2);
    assert_eq!(s.registrations.len(), 2, "registered again when polled");
    drop(s);
    h.stop().await;
    assert_eq!(
        sim.state().disconnects.len(),
        2,
        "nothing left to disconnect"
    );
}

/// `persistent` on a `controller=` line wins over the default: `force`
/// keeps a DC without EPCSD, `no` (here the default) polls one with it,
/// at the configured interval.
#[tokio::test(start_paused = true)]
async fn per_controller_persistent_wins_and_the_poll_interval_is_configurable() {
    let sim = SimKernel::new();
    sim.add_dc(
        "10.0.0.1",
        "8009",
        DcType::None,
        vec![own_entry("10.0.0.1", 0)],
    );
    sim.add_dc(
        "10.0.0.2",
        "8009",
        DcType::None,
        vec![own_entry("10.0.0.2", EFlags::EPCSD)],
    );
    let cfg = "[Discovery controller connection management]\npersistent = no\n\
               epcsd-poll-interval-minutes = 2\n[Controllers]\n\
               controller = transport=tcp;traddr=10.0.0.1;persistent=force\n\
               controller = transport=tcp;traddr=10.0.0.2\n";
    let h = start_with(sim.clone(), config(cfg), None);
    h.steady("10.0.0.1").await;
    h.parked("10.0.0.2").await;
    let connects = |traddr: &str| {
        let s = sim.state();
        s.connects
            .iter()
            .filter(|c| c.traddr.as_deref() == Some(traddr))
            .count()
    };
    wait(Duration::from_secs(100)).await;
    assert_eq!(connects("10.0.0.2"), 1, "not before 2 min");
    wait(Duration::from_secs(21)).await;
    until("10.0.0.2 polled after 2 min", || connects("10.0.0.2") == 2).await;
    h.parked("10.0.0.2").await;
    assert_eq!(sim.state().log_reads.len(), 3);
    assert_eq!(connects("10.0.0.1"), 1);
    assert!(h.dc("10.0.0.1").unwrap().connected);

    // A reload polls it at once, under its new setting.
    h.handle.send(Input::Reload(config(
        &cfg.replace("traddr=10.0.0.2\n", "traddr=10.0.0.2;persistent=auto\n"),
    )));
    until("polled at the reload", || connects("10.0.0.2") == 3).await;
    h.steady("10.0.0.2").await;
    wait(Duration::from_secs(5 * 60)).await;
    assert!(h.dc("10.0.0.2").unwrap().connected, "EPCSD under auto");
    h.stop().await;
}

/// A DC that does not describe itself (no "current discovery subsystem"
/// entry) goes by the referral entry that led to it under `auto`.
#[tokio::test(start_paused = true)]
async fn under_auto_a_referred_dc_without_its_own_entry_goes_by_the_referral() {
    let sim = SimKernel::new();
    let with_epcsd = DiscoveryLogEntry {
        eflags: EFlags(EFlags::EPCSD),
        ..referral("10.0.0.2")
    };
    sim.add_dc(
        "10.0.0.1",
        "8009",
        DcType::None,
        vec![
            own_entry("10.0.0.1", EFlags::EPCSD),
            with_epcsd,
            referral("10.0.0.3"),
        ],
    );
    sim.add_dc(
        "10.0.0.2",
        "8009",
        DcType::None,
        vec![nvme("10.0.0.9", "nqn.a")],
    );
    sim.add_dc(
        "10.0.0.3",
        "8009",
        DcType::None,
        vec![nvme("10.0.0.8", "nqn.b")],
    );
    let h = start_with(sim.clone(), config(&format!("{AUTO}{ONE_DC}")), None);
    h.steady("10.0.0.2").await;
    h.parked("10.0.0.3").await;
    wait(Duration::from_secs(5 * 60)).await;
    assert!(h.dc("10.0.0.1").unwrap().connected);
    assert!(h.dc("10.0.0.2").unwrap().connected);
    assert_eq!(
        h.dc("10.0.0.3").unwrap().log_pages.len(),
        1,
        "the parked referral's page is kept"
    );
    h.stop().await;
}

/// An mDNS DC that is parked is disconnected by choice: no longer
/// announced, it is not lost (and given up) while its polls succeed.
#[tokio::test(start_paused = true)]
async fn a_parked_mdns_dc_is_not_taken_for_lost() {
    let sim = SimKernel::new();
    sim.add_dc(
        "10.0.0.7",
        "8009",
        DcType::None,
        vec![own_entry("10.0.0.7", 0), nvme("10.0.0.9", "nqn.a")],
    );
    let cfg = "[Discovery controller connection management]\npersistent = auto\n\
               zeroconf-connections-persistence = 30\n";
    let h = start_with(sim.clone(), config(cfg), None);
    h.handle
        .send(Input::Zeroconf([discovered("10.0.0.7", "eth1")].into()));
    h.parked("10.0.0.7").await;
    h.handle.send(Input::Zeroconf(Default::default()));
    wait(Duration::from_secs(5 * 60)).await;
    let d = h.dc("10.0.0.7").expect("kept while parked");
    assert_eq!(d.log_pages.len(), 2);
    h.stop().await;
}
