//! Discovery controllers found over mDNS (zero-touch, TP8009): connected,
//! filtered, kept and dropped as the persistence rules say, against the
//! simulated kernel on tokio's paused clock.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may panic

use std::time::Duration;

use nvmf_proto::types::DcType;

use super::tests::*;
use crate::dc::Origin;
use crate::service::Input;
use crate::sim::{DcSim as _, SimKernel};

#[tokio::test(start_paused = true)]
async fn a_dc_found_over_mdns_is_connected_with_origin_discovered_and_pinned() {
    let sim = SimKernel::new();
    sim.add_dc(
        "10.0.0.7",
        "8009",
        DcType::None,
        vec![nvme("10.0.0.9", "nqn.a")],
    );
    let h = start_with(sim, config(""), None);
    h.handle
        .send(Input::Zeroconf([discovered("10.0.0.7", "eth1")].into()));
    let d = h.steady("10.0.0.7").await;
    assert_eq!(d.origin, Some(Origin::Discovered));
    assert_eq!(d.tid.host_iface, "eth1");
    assert_eq!(
        h.sim.state().connects[0].host_iface.as_deref(),
        Some("eth1"),
        "connected from the interface the announcement came on"
    );
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn exclude_and_ip_family_win_over_mdns() {
    let sim = SimKernel::new();
    sim.add_dc("10.0.0.7", "8009", DcType::None, vec![]);
    sim.add_dc("fd00::7", "8009", DcType::None, vec![]);
    let h = start_with(
        sim,
        config("[Global]\nip-family=ipv6\n[Controllers]\nexclude = traddr=fd00::8\n"),
        None,
    );
    h.handle.send(Input::Zeroconf(
        [
            discovered("10.0.0.7", "eth1"),
            discovered("fd00::7", "eth1"),
            discovered("fd00::8", "eth1"),
        ]
        .into(),
    ));
    h.steady("fd00::7").await;
    settle().await;
    assert_eq!(h.dcs().len(), 1, "{:?}", h.dcs());
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_lost_mdns_dc_survives_while_connected_and_goes_after_the_persistence_time() {
    let sim = SimKernel::new();
    sim.add_dc("10.0.0.7", "8009", DcType::None, vec![]);
    let cfg = "[Discovery controller connection management]\nzeroconf-connections-persistence=30\n";
    let h = start_with(sim, config(cfg), None);
    h.handle
        .send(Input::Zeroconf([discovered("10.0.0.7", "eth1")].into()));
    h.steady("10.0.0.7").await;
    // Goodbye: no longer announced, but still connected: kept.
    h.handle.send(Input::Zeroconf(Default::default()));
    settle().await;
    tokio::time::advance(Duration::from_secs(120)).await;
    settle().await;
    assert!(h.dc("10.0.0.7").is_some_and(|d| d.connected));
    // Now it becomes unreachable too: 30 s later it is removed.
    h.sim.with_dc("10.0.0.7", |d| d.reachable = false);
    h.sim.vanish("nvme0");
    h.uevent(&[
        "remove@/devices/virtual/nvme-fabrics/ctl/nvme0",
        "SUBSYSTEM=nvme",
    ]);
    until("disconnected", || {
        h.dc("10.0.0.7").is_some_and(|d| !d.connected)
    })
    .await;
    for _ in 0..25 {
        tokio::time::advance(Duration::from_secs(1)).await;
        settle().await;
    }
    assert!(
        h.dc("10.0.0.7").is_some(),
        "not before the persistence time"
    );
    for _ in 0..10 {
        tokio::time::advance(Duration::from_secs(1)).await;
        settle().await;
    }
    until("removed", || h.dc("10.0.0.7").is_none()).await;
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn an_mdns_dc_announced_again_before_the_deadline_is_kept() {
    let sim = SimKernel::new();
    sim.add_dc("10.0.0.7", "8009", DcType::None, vec![]);
    let cfg = "[Discovery controller connection management]\nzeroconf-connections-persistence=30\n";
    let h = start_with(sim, config(cfg), None);
    let tid = discovered("10.0.0.7", "eth1");
    h.handle.send(Input::Zeroconf([tid.clone()].into()));
    h.steady("10.0.0.7").await;
    h.sim.with_dc("10.0.0.7", |d| d.reachable = false);
    h.sim.vanish("nvme0");
    h.uevent(&[
        "remove@/devices/virtual/nvme-fabrics/ctl/nvme0",
        "SUBSYSTEM=nvme",
    ]);
    h.handle.send(Input::Zeroconf(Default::default()));
    for _ in 0..20 {
        tokio::time::advance(Duration::from_secs(1)).await;
        settle().await;
    }
    h.handle.send(Input::Zeroconf([tid].into()));
    for _ in 0..60 {
        tokio::time::advance(Duration::from_secs(1)).await;
        settle().await;
    }
    assert!(h.dc("10.0.0.7").is_some(), "restored by its announcement");
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_configured_dc_also_announced_stays_configured() {
    let sim = SimKernel::new();
    sim.add_dc("10.0.0.1", "8009", DcType::None, vec![]);
    let h = start_with(sim, config(ONE_DC), None);
    h.steady("10.0.0.1").await;
    let tid = h.dc("10.0.0.1").unwrap().tid;
    h.handle.send(Input::Zeroconf([tid].into()));
    settle().await;
    assert_eq!(h.dc("10.0.0.1").unwrap().origin, Some(Origin::Configured));
    h.stop().await;
}

/// Upstream follows referrals from every DC (nvme-stas #438), not only from
/// configured ones; a referral hangs from its mDNS DC and goes with it.
#[tokio::test(start_paused = true)]
async fn referrals_of_an_mdns_dc_are_followed_and_go_with_it() {
    let sim = SimKernel::new();
    sim.add_dc(
        "10.0.0.7",
        "8009",
        DcType::None,
        vec![nvme("10.0.0.9", "nqn.a"), referral("10.0.0.8")],
    );
    sim.add_dc(
        "10.0.0.8",
        "8009",
        DcType::None,
        vec![referral("10.0.0.7"), nvme("10.0.0.10", "nqn.b")],
    );
    let cfg = "[Discovery controller connection management]\nzeroconf-connections-persistence=30\n";
    let h = start_with(sim.clone(), config(cfg), None);
    h.handle
        .send(Input::Zeroconf([discovered("10.0.0.7", "eth1")].into()));
    let referred = h.steady("10.0.0.8").await;
    assert_eq!(referred.origin, Some(Origin::Referral));
    assert_eq!(
        referred.tid.host_iface, "eth1",
        "reached from the interface its referrer was found on"
    );
    settle().await;
    assert_eq!(
        h.dcs().len(),
        2,
        "the referral back to the mDNS DC is no third DC"
    );
    assert_eq!(
        h.dc("10.0.0.7").unwrap().origin,
        Some(Origin::Discovered),
        "referred to only by its own referral: still an mDNS DC"
    );
    let referred_dev = referred.device.unwrap();

    // No longer announced but still connected: both are kept.
    h.handle.send(Input::Zeroconf(Default::default()));
    for _ in 0..4 {
        tokio::time::advance(Duration::from_secs(30)).await;
        settle().await;
    }
    assert_eq!(h.dcs().len(), 2, "{:?}", h.dcs());

    // The mDNS DC goes: unreachable too, then given up after
    // zeroconf-connections-persistence. Its referral goes with it, though
    // that one is still connected and refers back to it.
    let mdns_dev = h.dc("10.0.0.7").unwrap().device.unwrap();
    sim.with_dc("10.0.0.7", |d| d.reachable = false);
    sim.vanish(&mdns_dev);
    h.uevent(&[
        &format!("remove@/devices/virtual/nvme-fabrics/ctl/{mdns_dev}"),
        "SUBSYSTEM=nvme",
    ]);
    for _ in 0..20 {
        tokio::time::advance(Duration::from_secs(1)).await;
        settle().await;
    }
    assert!(
        h.dc("10.0.0.8").is_some_and(|d| d.connected),
        "kept while its referrer is within the persistence time"
    );
    for _ in 0..15 {
        tokio::time::advance(Duration::from_secs(1)).await;
        settle().await;
    }
    until("both gone", || h.dcs().is_empty()).await;
    until("the referral disconnected", || {
        sim.state().disconnects.contains(&referred_dev)
    })
    .await;
    h.stop().await;
}
