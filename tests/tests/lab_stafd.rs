//! stafd on a real kernel: stafd and dbus-daemon in the lab VM against
//! nvmet, checked over D-Bus and sysfs (the `stafd` scenario of
//! stas-lab-guest). Prints the AEN -> log_pages_changed latency.
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
    let bins = build_static(&[("stas-tests", "stas-lab-guest"), ("stafd", "stafd")])
        .unwrap_or_else(|e| panic!("building the static binaries: {e}"));
    let dbus = host_binary_with_libs(Path::new("/usr/bin/dbus-daemon"))
        .unwrap_or_else(|e| panic!("dbus-daemon for the guest: {e} (apt-get install dbus-daemon)"));
    let guest = Guest::new("stafd", SCRIPT)
        .file(&bins[0], "/bin/stas-lab-guest")
        .file(&bins[1], "/bin/stafd")
        .files(dbus)
        .timeout(Duration::from_secs(300));
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
