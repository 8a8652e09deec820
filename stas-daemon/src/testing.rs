//! What both daemons' unit tests are built from (feature `testing`, for
//! their dev-dependency only): waiting on a paused clock, a test host,
//! configurations and log page entries, and the checks both make.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may panic

use std::sync::Arc;
use std::time::Duration;

use nvmf_proto::dlp::DiscoveryLogEntry;
use nvmf_proto::types::{AdrFam, SubType, TrType};
use stas_config::{ConfigError, Diagnostic};

use crate::sim::{SimKernel, SimPeers};

/// The host NQN of the tests.
pub const HOSTNQN: &str = "nqn.2014-08.org.nvmexpress:uuid:0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0";
/// The host ID of the tests.
pub const HOSTID: &str = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0";

/// Polls `cond` while the blocking pool works; time does not move.
pub async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..3000 {
        if cond() {
            return;
        }
        tokio::task::yield_now().await;
        std::thread::sleep(Duration::from_millis(1));
    }
    panic!("timed out waiting for: {what}");
}

/// Lets everything that is ready run to quiescence without moving time.
pub async fn settle() {
    for _ in 0..50 {
        tokio::task::yield_now().await;
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// A configuration from `text`, which must have no diagnostics.
pub fn config<C>(
    text: &str,
    parse: impl Fn(&str, &str) -> Result<(C, Vec<Diagnostic>), ConfigError>,
) -> Arc<C> {
    let (cfg, diags) = parse(text, "test.conf").unwrap();
    assert!(diags.is_empty(), "{diags:?}");
    Arc::new(cfg)
}

/// An NVM subsystem's log page entry (TCP, IPv4, port 4420).
pub fn nvme(traddr: &str, nqn: &str) -> DiscoveryLogEntry {
    DiscoveryLogEntry {
        trtype: TrType::Tcp,
        adrfam: AdrFam::Ipv4,
        subtype: SubType::Nvme,
        traddr: traddr.into(),
        trsvcid: "4420".into(),
        subnqn: nqn.into(),
        ..DiscoveryLogEntry::default()
    }
}

/// After events that cost no scan: `send_lost` (news of lost uevents)
/// costs exactly one full scan.
pub async fn lost_events_cost_one_scan<P: SimPeers>(sim: &SimKernel<P>, send_lost: impl FnOnce()) {
    assert_eq!(sim.state().full_scans, 1, "events cost no scan");
    send_lost();
    until("resync", || sim.state().full_scans == 2).await;
    settle().await;
    assert_eq!(
        sim.state().full_scans,
        2,
        "lost events cost exactly one scan"
    );
}

/// A fresh, empty directory of this test process named `name`, and the
/// last-known-configuration file of daemon `prog` in it.
pub fn lkc_in_fresh_dir(name: &str, prog: &str) -> (std::path::PathBuf, crate::lkc::LkcFile) {
    let dir = std::env::temp_dir().join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let lkc = crate::lkc::LkcFile::new(dir.join("lkc.bin"), prog);
    (dir, lkc)
}

/// Nothing was disconnected, and the kernel has `count` controllers.
pub fn assert_all_kept<P: SimPeers>(sim: &SimKernel<P>, count: usize) {
    let s = sim.state();
    assert!(
        s.disconnects.is_empty(),
        "disconnected: {:?}",
        s.disconnects
    );
    assert_eq!(s.controllers.len(), count);
}
