//! The last-known configuration as stafd keeps it: what a save costs when
//! one DC of many read a new log page, and a version-1 file from before
//! log pages were kept as wire records.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may panic

use std::sync::Arc;

use nvmf_proto::dlp::DiscoveryLogEntry;
use stas_daemon::lkc::{LkcFile, FORMAT_VERSION};

use crate::dc::Origin;
use crate::sim::{populated, DcSim as _, SimKernel};
use crate::tests::{config, settle, start_with, until, ONE_DC};

fn dir(tag: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("stafd-lkc-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn version_on_disk(f: &LkcFile) -> u32 {
    let data = std::fs::read(f.path()).unwrap();
    u32::from_le_bytes(data[8..12].try_into().unwrap())
}

#[tokio::test(start_paused = true)]
async fn a_save_encodes_only_the_log_pages_read_since_the_last() {
    const DCS: usize = 20;
    const ENTRIES: u64 = 8; // per DC, in `populated`
    let d = dir("o-changed");
    let lkc = LkcFile::new(d.join("lkc.bin"), "stafd");
    let (sim, cfg) = populated(DCS);
    let h = start_with(sim.clone(), Arc::new(cfg), Some(lkc.clone()));
    let traddrs: Vec<String> = (0..DCS)
        .map(|i| stas_daemon::sim::host_address(10, 0, i))
        .collect();
    for t in &traddrs {
        h.steady(t).await;
    }
    settle().await;
    assert!(
        h.dcs().iter().all(|d| d.fetches == 1),
        "each DC read its page once"
    );

    // One DC's page gains an entry; it reads it again on the AEN.
    let changed = &traddrs[7];
    sim.with_dc(changed, |dc| {
        dc.entries.push(DiscoveryLogEntry {
            traddr: "10.201.0.1".into(),
            trsvcid: "4420".into(),
            subnqn: "nqn.2024-01.io.sim:new".into(),
            ..DiscoveryLogEntry::default()
        });
    });
    h.aen(h.dc(changed).unwrap().device.as_deref().unwrap());
    until("read again", || h.dc(changed).unwrap().fetches == 2).await;
    settle().await;
    let stats = h.stop().await;

    // Saves followed the reads, the AEN and the shutdown, yet every page
    // was encoded once, plus the changed one once more: re-encoding all
    // pages at each save would have cost DCS * ENTRIES every time.
    assert!(stats.lkc_snapshots >= 3, "{stats:?}");
    assert_eq!(
        stats.lkc_entries_encoded,
        DCS as u64 * ENTRIES + (ENTRIES + 1),
        "{stats:?}"
    );
    let saved = lkc.load_config().unwrap().unwrap();
    assert_eq!(saved.controllers.len(), DCS);
    let sizes: Vec<usize> = saved
        .controllers
        .iter()
        .map(|c| c.log_pages.len())
        .collect();
    let traddr = |c: &stas_daemon::lkc::ControllerRecord| {
        c.tid
            .iter()
            .find(|(k, _)| k == "traddr")
            .map(|(_, v)| v.clone())
            .unwrap()
    };
    for (c, n) in saved.controllers.iter().zip(sizes) {
        let want = if traddr(c) == *changed { 9 } else { 8 };
        assert_eq!(n, want, "{}", traddr(c));
    }
    std::fs::remove_dir_all(&d).ok();
}

#[tokio::test(start_paused = true)]
async fn a_version_1_file_is_restored_and_rewritten_as_version_2() {
    let d = dir("v1");
    let lkc = LkcFile::new(d.join("lkc.bin"), "stafd");
    // Written by stafd before version 2: DC 10.0.0.1 (configured, nvme0)
    // with an NVM entry and a referral to 10.0.0.2, and 10.0.0.2.
    let v1 = include_bytes!("../../stas-daemon/src/lkc/testdata/v1-stafd.bin");
    nvmf_kernel::files::write_private(lkc.path(), v1).unwrap();

    // No DC answers: what is served is what the file held.
    let h = start_with(SimKernel::new(), config(ONE_DC), Some(lkc.clone()));
    let dc = h
        .dc("10.0.0.1")
        .expect("restored before any reconciliation");
    assert_eq!(dc.origin, Some(Origin::Configured));
    let subnqns: Vec<&str> = dc.log_pages.iter().map(|e| e.subnqn.as_str()).collect();
    assert_eq!(
        subnqns,
        [
            "nqn.2014-08.org.example:array-a",
            "nqn.2014-08.org.nvmexpress.discovery"
        ]
    );
    assert!(h.dc("10.0.0.2").is_some());
    h.stop().await;

    assert_eq!(version_on_disk(&lkc), FORMAT_VERSION);
    let saved = lkc
        .load::<stas_daemon::lkc::LastKnownConfig>()
        .unwrap()
        .unwrap();
    let first = saved
        .controllers
        .iter()
        .find(|c| c.tid.contains(&("traddr".into(), "10.0.0.1".into())))
        .unwrap();
    assert_eq!(first.log_pages.entries(), (dc.log_pages, Vec::new()));
    std::fs::remove_dir_all(&d).ok();
}
