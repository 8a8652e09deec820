//! The README demo: builds the static binaries, boots the lab VM with a
//! kernel NVMe/TCP target, runs stafd and stacd there and shows what an
//! admin sees.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use stas_tests::lab::{build_static, host_binary_with_libs, Guest, Lab};

fn say(s: &str) {
    println!("\x1b[1m==> {s}\x1b[0m");
}

fn main() -> ExitCode {
    say("building static binaries (stafd, stacd, stafctl, stacctl, the lab guest)");
    let bins = match build_static(&[
        ("stafd", "stafd"),
        ("tools", "stafctl"),
        ("stas-tests", "stas-lab-guest"),
        ("stacd", "stacd"),
        ("tools", "stacctl"),
    ]) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(1);
        }
    };
    say("preparing the lab (Debian's cloud kernel, cached after the first run)");
    let lab = match Lab::prepare() {
        Ok(l) => l,
        Err(e) => {
            eprintln!("the lab cannot start: {e}");
            return ExitCode::from(1);
        }
    };
    let dbus = match host_binary_with_libs(Path::new("/usr/bin/dbus-daemon")) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("dbus-daemon: {e}");
            return ExitCode::from(1);
        }
    };
    say(&format!(
        "booting kernel {} in QEMU with an nvmet target, dbus-daemon, stafd and stacd",
        lab.kernel_release()
    ));
    let guest = Guest::new("demo", "/bin/stas-lab-guest demo\n")
        .file(&bins[0], "/bin/stafd")
        .file(&bins[1], "/bin/stafctl")
        .file(&bins[2], "/bin/stas-lab-guest")
        .file(&bins[3], "/bin/stacd")
        .file(&bins[4], "/bin/stacctl")
        .files(dbus)
        .timeout(Duration::from_secs(180));
    match lab.run(&guest) {
        Ok(run) => {
            print!("{}", run.output);
            say(&format!(
                "guest booted in {:.1} s, whole run {:.1} s",
                run.boot_time.as_secs_f64(),
                run.wall_time.as_secs_f64()
            ));
            if run.exit_code == Some(0) {
                ExitCode::SUCCESS
            } else {
                eprintln!("the demo did not complete; log: {}", run.log.display());
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(1)
        }
    }
}
