//! Zero-touch discovery on a real kernel (the `zeroconf` scenario of
//! stas-lab-guest): an mDNS responder in the guest announces nvmet's
//! discovery port on a veth interface, and stafd, configured with nothing,
//! connects to it from that interface; stacd then connects its subsystem.
//! Prints the time from the announcement to the DC and to the I/O
//! controller.
//!
//! Fails, saying what to install, when the lab cannot start;
//! `STAS_SKIP_LAB=1` skips it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test may panic

use std::path::Path;
use std::time::Duration;

use stas_tests::lab::{self, build_static, host_binary_with_libs, Guest, Lab};

const EXPECTED: &[&str] = &[
    "zeroconf-setup",
    "dbus-daemon",
    "zeroconf-nothing-before-announcement",
    "zeroconf-dc-connected-from-announcement",
    "zeroconf-io-controller-connected",
    "zeroconf-referral-followed",
    "zeroconf-stafctl-shows-origin-and-mdns-view",
];

const SCRIPT: &str = r#"
. /lab.sh
/bin/stas-lab-guest zeroconf
rc=$?
for f in /tmp/blobs/*; do lab_put "$(basename "$f")" "$f"; done
exit $rc
"#;

#[test]
fn lab_zeroconf() {
    if lab::skip_requested("lab_zeroconf") {
        return;
    }
    let lab = Lab::prepare().unwrap_or_else(|e| panic!("the lab cannot start: {e}"));
    let bins = build_static(&[
        ("stas-tests", "stas-lab-guest"),
        ("stafd", "stafd"),
        ("stacd", "stacd"),
        ("tools", "stafctl"),
    ])
    .unwrap_or_else(|e| panic!("building the static binaries: {e}"));
    let dbus = host_binary_with_libs(Path::new("/usr/bin/dbus-daemon"))
        .unwrap_or_else(|e| panic!("dbus-daemon for the guest: {e} (apt-get install dbus-daemon)"));
    let ip = host_binary_with_libs(Path::new("/bin/ip"))
        .unwrap_or_else(|e| panic!("ip for the guest: {e} (apt-get install iproute2)"));
    let guest = Guest::new("zeroconf", SCRIPT)
        .file(&bins[0], "/bin/stas-lab-guest")
        .file(&bins[1], "/bin/stafd")
        .file(&bins[2], "/bin/stacd")
        .file(&bins[3], "/bin/stafctl")
        .files(dbus)
        .files(ip)
        .module("veth")
        .timeout(Duration::from_secs(300));
    let run = lab.run(&guest).unwrap_or_else(|e| panic!("{e}"));
    run.print_results();
    let log = |name: &str| {
        run.blob(name)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    };
    println!("boot {:?}, wall {:?}", run.boot_time, run.wall_time);
    run.require_checks(
        EXPECTED,
        &format!(
            "---- stafd log ----\n{}\n---- stacd log ----\n{}",
            log("stafd.log"),
            log("stacd.log")
        ),
    )
    .unwrap_or_else(|e| panic!("{e}"));
}
