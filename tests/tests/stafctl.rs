//! stafctl against a stafd running on the simulated kernel (`--sim`), on a
//! private dbus-daemon: every subcommand, tables and --json, and the message
//! when stafd is not there. Needs dbus-daemon (scripts/test installs it).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test may panic

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use stas_tests::bus::Bus;
use stas_tests::lab::{self, build_static};

fn stafctl(bin: &Path, bus: &str, args: &[&str]) -> Output {
    Command::new(bin)
        .arg("--bus-address")
        .arg(bus)
        .args(args)
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn stafctl_against_simulated_stafd() {
    if lab::skip_requested("stafctl_against_simulated_stafd") {
        return;
    }
    let bins =
        build_static(&[("stafd", "stafd"), ("tools", "stafctl")]).unwrap_or_else(|e| panic!("{e}"));
    let (stafd, ctl) = (&bins[0], &bins[1]);
    let bus = Bus::start("stafctl").unwrap_or_else(|e| panic!("{e}"));

    let mut daemon = Command::new(stafd)
        .args(["--sim", "2", "--bus-address", bus.address()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Until stafd holds its name and has read both log pages.
    let start = Instant::now();
    let ls = loop {
        let o = stafctl(ctl, bus.address(), &["ls"]);
        if o.status.success() && text(&o).lines().count() == 3 {
            break o;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "stafd did not come up: {o:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let t = text(&ls);
    assert!(t.starts_with("device  transport  traddr"), "{t}");
    assert!(t.contains("10.0.0.1") && t.contains("10.0.0.2"), "{t}");

    let o = stafctl(ctl, bus.address(), &["--json", "ls"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 2);
    assert!(v[0]["device"].as_str().unwrap().starts_with("nvme"));

    let o = stafctl(ctl, bus.address(), &["ls", "-d"]);
    assert!(
        text(&o).contains("connected") && text(&o).contains("True"),
        "{}",
        text(&o)
    );

    let host_nqn = "nqn.2014-08.org.nvmexpress:uuid:00000000-0000-4000-8000-000000000001";
    let o = stafctl(
        ctl,
        bus.address(),
        &["dlp", "-a", "10.0.0.1", "-s", "8009", "-q", host_nqn],
    );
    assert!(o.status.success());
    assert_eq!(
        text(&o).lines().count(),
        9,
        "header + 8 entries: {}",
        text(&o)
    );
    let o = stafctl(
        ctl,
        bus.address(),
        &[
            "--json", "dlp", "-a", "10.0.0.9", "-s", "8009", "-q", host_nqn,
        ],
    );
    assert_eq!(text(&o).trim(), "[]", "unknown DC: empty list");

    let o = stafctl(ctl, bus.address(), &["adlp"]);
    assert_eq!(
        text(&o)
            .matches("nqn.2014-08.org.nvmexpress.discovery\n")
            .count(),
        2,
        "{}",
        text(&o)
    );
    let o = stafctl(ctl, bus.address(), &["--json", "adlp"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v[0]["log-pages"].as_array().unwrap().len(), 8);

    assert_eq!(
        text(&stafctl(ctl, bus.address(), &["tron"])),
        "tron = True\n"
    );
    assert_eq!(
        text(&stafctl(ctl, bus.address(), &["troff"])),
        "tron = False\n"
    );

    let o = stafctl(ctl, bus.address(), &["--json", "status"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["controllers"].as_array().unwrap().len(), 2);
    assert_eq!(
        v["controllers"][0]["log_pages"].as_array().unwrap().len(),
        8
    );
    assert_eq!(v["log-level"], "INFO");

    // A reader that stops early is fine.
    let o = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "{} --bus-address {} adlp | head -1",
            ctl.display(),
            bus.address()
        ))
        .output()
        .unwrap();
    assert!(
        o.status.success() && String::from_utf8_lossy(&o.stderr).is_empty(),
        "{o:?}"
    );

    let _ = daemon.kill();
    let _ = daemon.wait();
    let o = stafctl(ctl, bus.address(), &["ls"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr)
        .contains("Unable to communicate with stafd over D-Bus. Is stafd running?"));
    let o = Command::new(ctl).output().unwrap();
    assert_eq!(o.status.code(), Some(1), "no subcommand");
}
