//! stacd on a real kernel: stafd, stacd and dbus-daemon in the lab VM
//! against nvmet (the `stacd` scenario of stas-lab-guest): subsystems zoned
//! in and out, disconnect-scope, exclude, restarts of either daemon, SIGHUP,
//! and 100 subsystems at once; then, with ~200 I/O controllers, a flapping
//! fabric: the nvmet port removed and re-added 10 times, stacd's uevent
//! socket overrun, kill -9 of both daemons with 100 connects in flight (each
//! must end with every wanted controller live, exactly once, and nothing
//! else). Prints the AEN -> I/O controller latency, the daemons' memory and
//! the recovery times.
//!
//! Fails, saying what to install, when the lab cannot start;
//! `STAS_SKIP_LAB=1` skips it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test may panic

use std::path::Path;
use std::time::Duration;

use stas_tests::lab::{self, build_static, host_binary_with_libs, Guest, Lab};

const EXPECTED: &[&str] = &[
    "stacd-setup",
    "dbus-daemon",
    "stacd-connects-log-page-subsystems",
    "stacctl-ls",
    "stafctl-ls",
    "stacd-link-connects-unlink-disconnects",
    "stacd-no-disconnect-keeps",
    "stacd-exclude",
    "stacd-restart-keeps-connections",
    "stafd-restart-stacd-keeps",
    "stacd-sighup-connects-new-controller",
    "hostile-config-on-sighup",
    "stacd-scale-100",
    "fabric-200-connected",
    "fault-port-flap",
    "fault-uevent-overrun",
    "fault-kill-9-connects-in-flight",
];

const SCRIPT: &str = r#"
. /lab.sh
/bin/stas-lab-guest stacd
rc=$?
for f in /tmp/blobs/*; do lab_put "$(basename "$f")" "$f"; done
exit $rc
"#;

#[test]
fn lab_stacd() {
    if lab::skip_requested("lab_stacd") {
        return;
    }
    let lab = Lab::prepare().unwrap_or_else(|e| panic!("the lab cannot start: {e}"));
    let bins = build_static(&[
        ("stas-tests", "stas-lab-guest"),
        ("stafd", "stafd"),
        ("stacd", "stacd"),
        ("tools", "stafctl"),
        ("tools", "stacctl"),
    ])
    .unwrap_or_else(|e| panic!("building the static binaries: {e}"));
    let dbus = host_binary_with_libs(Path::new("/usr/bin/dbus-daemon"))
        .unwrap_or_else(|e| panic!("dbus-daemon for the guest: {e} (apt-get install dbus-daemon)"));
    let mut guest = Guest::new("stacd", SCRIPT)
        .file(&bins[0], "/bin/stas-lab-guest")
        .file(&bins[1], "/bin/stafd")
        .file(&bins[2], "/bin/stacd")
        .file(&bins[3], "/bin/stafctl")
        .file(&bins[4], "/bin/stacctl")
        .files(dbus)
        .timeout(Duration::from_secs(900));
    // ~200 I/O controllers with their queues and namespaces.
    guest.memory_mib = 3072;
    let run = lab.run(&guest).unwrap_or_else(|e| panic!("{e}"));
    run.print_results();
    let log = |name: &str| {
        run.blob(name)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    };
    println!("boot {:?}, wall {:?}", run.boot_time, run.wall_time);
    // Kept for reading after a run, failed or not.
    let kept = Path::new(env!("CARGO_TARGET_TMPDIR")).join("lab_stacd");
    if std::fs::create_dir_all(&kept).is_ok() {
        for name in ["stacd.log", "stafd.log"] {
            let _ = std::fs::write(kept.join(name), log(name));
        }
        println!("daemon logs in {}", kept.display());
    }
    run.require_checks(
        EXPECTED,
        &format!(
            "---- stacd log ----\n{}\n---- stafd log ----\n{}",
            log("stacd.log"),
            log("stafd.log")
        ),
    )
    .unwrap_or_else(|e| panic!("{e}"));
}
