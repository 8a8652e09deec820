//! stafd on a real kernel: stafd and dbus-daemon in the lab VM against
//! nvmet, checked over D-Bus and sysfs (the `stafd` scenario of
//! stas-lab-guest). Prints the AEN -> log_pages_changed latency. The same
//! boot then runs nvme-cli, stafd and stacd against nvmf-dcsim's simulated
//! CDC and DDC over the kernel's NVMe/TCP host, and stafd against 100
//! simulated DCs of 1,000 entries (tests/src/bin/guest_cdc.rs).
//!
//! Fails, saying what to install, when the lab cannot start;
//! `STAS_SKIP_LAB=1` skips it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test may panic

use std::path::Path;
use std::time::Duration;

use stas_tests::lab::{self, build_static, host_binary_with_libs, Guest, Lab};

const EXPECTED: &[&str] = &[
    "stafd-setup",
    "dbus-daemon",
    "pre-existing-dc",
    "stafd-configured-and-referral",
    "stafd-adopted-existing",
    "stafd-aen-signal",
    "stafd-restart-keeps-connections",
    "stafd-sighup-removes",
    // nvmf-dcsim, the simulated CDC/DDC (guest_cdc.rs)
    "dcsim-setup",
    "dcsim-nvme-discover",
    "dcsim-nvme-connect-all",
    "dcsim-nvme-dim",
    "cdc-registered",
    "dim-payload-vs-nvme-cli",
    "ddc-pleo-and-refused-dim",
    "cdc-referral-followed",
    "cdc-hostile-entries",
    "cdc-stacd-connects",
    "cdc-zoning-aen-to-stacd",
    "cdc-hostile-reported-once-per-change",
    "cdc-dim-update-on-symname",
    "ddc-keep-alive-loss",
    "ddc-pleo-disabled-on-reload",
    "cdc-epcsd-persistent",
    "cdc-ncc-attempts-bounded",
    "cdc-deregistered-on-removal",
    "dcsim-scale-100-dcs",
];

const SCRIPT: &str = r#"
. /lab.sh
/bin/stas-lab-guest stafd
rc=$?
for f in /tmp/blobs/*; do lab_put "$(basename "$f")" "$f"; done
exit $rc
"#;

#[test]
fn lab_stafd() {
    if lab::skip_requested("lab_stafd") {
        return;
    }
    let lab = Lab::prepare().unwrap_or_else(|e| panic!("the lab cannot start: {e}"));
    let bins = build_static(&[
        ("stas-tests", "stas-lab-guest"),
        ("stafd", "stafd"),
        ("stacd", "stacd"),
        ("nvmf-dcsim", "nvmf-dcsim"),
    ])
    .unwrap_or_else(|e| panic!("building the static binaries: {e}"));
    let dbus = host_binary_with_libs(Path::new("/usr/bin/dbus-daemon"))
        .unwrap_or_else(|e| panic!("dbus-daemon for the guest: {e} (apt-get install dbus-daemon)"));
    let nvme = host_binary_with_libs(Path::new("/usr/sbin/nvme"))
        .unwrap_or_else(|e| panic!("nvme-cli for the guest: {e} (apt-get install nvme-cli)"));
    let mut guest = Guest::new("stafd", SCRIPT)
        .file(&bins[0], "/bin/stas-lab-guest")
        .file(&bins[1], "/bin/stafd")
        .file(&bins[2], "/bin/stacd")
        .file(&bins[3], "/bin/nvmf-dcsim")
        .files(dbus)
        .files(nvme)
        .timeout(Duration::from_secs(900));
    // 100 DCs x 1,000 entries: stafd's D-Bus answer alone is tens of MiB.
    guest.memory_mib = 2048;
    let run = lab.run(&guest).unwrap_or_else(|e| panic!("{e}"));
    run.print_results();
    let stafd_log = run
        .blob("stafd.log")
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    println!("boot {:?}, wall {:?}", run.boot_time, run.wall_time);
    run.require_checks(EXPECTED, &format!("---- stafd log ----\n{stafd_log}"))
        .unwrap_or_else(|e| panic!("{e}"));
}
