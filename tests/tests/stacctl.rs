//! stacctl against stacd running on the simulated kernel (`--sim`), on a
//! private dbus-daemon: every subcommand in table and --json form, the
//! message when stacd is not there, and stacd following a simulated stafd
//! over D-Bus through stafd's restart. Needs dbus-daemon (scripts/test
//! installs it).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test may panic

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use stas_tests::bus::{Bus, Running};
use stas_tests::lab::{self, build_static};

const UNREACHABLE: &str = "Unable to communicate with stacd over D-Bus. Is stacd running?";

/// The binaries every test here uses, built once (static, release).
struct Bins {
    stafd: PathBuf,
    stacd: PathBuf,
    stafctl: PathBuf,
    stacctl: PathBuf,
}

fn bins() -> Bins {
    let b = build_static(&[
        ("stafd", "stafd"),
        ("stacd", "stacd"),
        ("tools", "stafctl"),
        ("tools", "stacctl"),
    ])
    .unwrap_or_else(|e| panic!("{e}"));
    Bins {
        stafd: b[0].clone(),
        stacd: b[1].clone(),
        stafctl: b[2].clone(),
        stacctl: b[3].clone(),
    }
}

fn ctl(bin: &Path, bus: &str, args: &[&str]) -> Output {
    Command::new(bin)
        .arg("--bus-address")
        .arg(bus)
        .args(args)
        .env_remove("STAS_BUS_ADDRESS")
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `--json` output of a successful command.
fn json(bin: &Path, bus: &str, args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let o = ctl(bin, bus, &all);
    assert!(o.status.success(), "{args:?}: {o:?}");
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{args:?}: {e}: {}", text(&o)))
}

/// Runs a daemon with `--sim n` on `bus`.
fn daemon(bin: &Path, n: usize, bus: &str) -> Running {
    Running::spawn(
        Command::new(bin)
            .args(["--sim", &n.to_string(), "--bus-address", bus])
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

/// Polls `stacctl --json ls` until `done` holds for its list (within 30 s).
fn ls_until(stacctl: &Path, bus: &str, what: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let start = Instant::now();
    loop {
        let o = ctl(stacctl, bus, &["--json", "ls"]);
        if o.status.success() {
            let v: Value = serde_json::from_slice(&o.stdout).unwrap();
            let list = v.as_array().unwrap().clone();
            if done(&list) {
                return list;
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "stacd: {what} did not happen within 30 s; last answer: {o:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn connected(list: &[Value]) -> bool {
    list.iter().all(|c| {
        c["device"]
            .as_str()
            .is_some_and(|d| d.starts_with("nvme") && d != "nvme?")
    })
}

#[test]
fn stacctl_against_simulated_stacd() {
    if lab::skip_requested("stacctl_against_simulated_stacd") {
        return;
    }
    let b = bins();
    let bus = Bus::start("stacctl").unwrap_or_else(|e| panic!("{e}"));
    let addr = bus.address();

    // Nobody owns the name yet: upstream's message, exit 1.
    let o = ctl(&b.stacctl, addr, &["ls"]);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert!(stderr(&o).contains(UNREACHABLE), "{}", stderr(&o));
    assert!(o.stdout.is_empty());

    let stacd = daemon(&b.stacd, 3, addr);
    let list = ls_until(&b.stacctl, addr, "3 connected controllers", |l| {
        l.len() == 3 && connected(l)
    });
    let mut nqns: Vec<&str> = list
        .iter()
        .map(|c| c["subsysnqn"].as_str().unwrap())
        .collect();
    nqns.sort_unstable();
    assert_eq!(
        nqns,
        [
            "nqn.2024-01.io.sim:sub0",
            "nqn.2024-01.io.sim:sub1",
            "nqn.2024-01.io.sim:sub2"
        ]
    );
    assert!(list.iter().all(|c| c["transport"] == "tcp"), "{list:?}");

    // ls: a header and one row per controller, id columns only.
    let o = ctl(&b.stacctl, addr, &["ls"]);
    assert!(o.status.success(), "{o:?}");
    let t = text(&o);
    assert_eq!(
        t.lines()
            .next()
            .unwrap()
            .split_whitespace()
            .collect::<Vec<_>>(),
        [
            "device",
            "transport",
            "traddr",
            "trsvcid",
            "subsysnqn",
            "host-traddr",
            "host-iface"
        ],
        "{t}"
    );
    assert_eq!(t.lines().count(), 4, "{t}");
    for addr in ["10.200.0.1", "10.200.0.2", "10.200.0.3"] {
        assert!(t.contains(addr), "{addr} missing: {t}");
    }
    assert!(!t.contains("connect attempts"), "{t}");

    // ls -d: the details dicts.
    let t = text(&ctl(&b.stacctl, addr, &["ls", "-d"]));
    assert_eq!(t.matches("  connected ").count(), 3, "{t}");
    assert_eq!(t.matches("dlpe.eflags.ncc").count(), 3, "{t}");
    let detailed = json(&b.stacctl, addr, &["ls", "--detailed"]);
    let detailed = detailed.as_array().unwrap();
    assert_eq!(detailed.len(), 3);
    for c in detailed {
        assert_eq!(c["connected"], "True", "{c}");
        assert_eq!(c["dlpe"], "None", "configured, not from a log page: {c}");
        assert!(c["connect attempts"].is_string(), "{c}");
    }

    // tron / troff, read back; the log level follows.
    assert_eq!(text(&ctl(&b.stacctl, addr, &["tron"])), "tron = True\n");
    assert_eq!(
        json(&b.stacctl, addr, &["tron"]),
        serde_json::json!({"tron": true})
    );
    assert_eq!(json(&b.stacctl, addr, &["status"])["log-level"], "DEBUG");
    assert_eq!(text(&ctl(&b.stacctl, addr, &["troff"])), "tron = False\n");
    assert_eq!(
        json(&b.stacctl, addr, &["troff"]),
        serde_json::json!({"tron": false})
    );

    // status: process info, then every controller; no log pages (stacd has none).
    let v = json(&b.stacctl, addr, &["status"]);
    assert_eq!(v["tron"], false);
    assert_eq!(v["log-level"], "INFO");
    assert!(v["hostnqn"].as_str().unwrap().starts_with("nqn."), "{v}");
    let controllers = v["controllers"].as_array().unwrap();
    assert_eq!(controllers.len(), 3);
    for c in controllers {
        assert!(c.get("log_pages").is_none(), "{c}");
        assert_eq!(c["connected"], "True", "{c}");
        assert!(
            c["retry connect timer"].is_string(),
            "controller_info merged: {c}"
        );
    }
    let t = text(&ctl(&b.stacctl, addr, &["status"]));
    for key in ["hostnqn", "log-level", "tron"] {
        assert!(
            t.lines().any(|l| l.starts_with(&format!("{key} "))),
            "{key}: {t}"
        );
    }
    assert_eq!(t.matches("\ncontroller nvme").count(), 3, "{t}");
    assert!(!t.contains("trtype"), "no log page tables: {t}");

    // The bus address may come from the environment instead.
    let o = Command::new(&b.stacctl)
        .args(["--json", "ls"])
        .env("STAS_BUS_ADDRESS", addr)
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");

    // A reader that stops early is fine.
    let o = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "{} --bus-address {addr} ls -d | head -1",
            b.stacctl.display()
        ))
        .output()
        .unwrap();
    assert!(o.status.success() && stderr(&o).is_empty(), "{o:?}");

    // stacd gone: every subcommand says so.
    let status = stacd.terminate(Duration::from_secs(10)).unwrap();
    assert!(status.success(), "stacd on SIGTERM: {status}");
    for args in [&["ls"][..], &["--json", "status"], &["tron"]] {
        let o = ctl(&b.stacctl, addr, args);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {o:?}");
        assert!(stderr(&o).contains(UNREACHABLE), "{args:?}: {}", stderr(&o));
    }
}

#[test]
fn stacctl_command_line() {
    if lab::skip_requested("stacctl_command_line") {
        return;
    }
    let b = bins();
    let run = |args: &[&str]| {
        Command::new(&b.stacctl)
            .args(args)
            .env_remove("STAS_BUS_ADDRESS")
            .output()
            .unwrap()
    };
    let o = run(&["-v"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(text(&o).starts_with("nvme-stas "), "{}", text(&o));

    // No subcommand: usage on stdout, exit 1 (as upstream).
    let o = run(&[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("Usage: stacctl"), "{}", text(&o));
    for sub in ["tron", "troff", "status", "ls"] {
        assert!(text(&o).contains(sub), "{sub} not in the usage");
    }

    // stafctl's subcommands and unknown options are usage errors.
    for args in [&["dlp"][..], &["adlp"], &["ls", "--bogus"]] {
        let o = run(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {o:?}");
    }

    // No bus at that address: stacd cannot be reached.
    let o = run(&[
        "--bus-address",
        "unix:path=/nonexistent/stas-test-bus",
        "ls",
    ]);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert!(stderr(&o).contains(UNREACHABLE), "{}", stderr(&o));
}

/// Devices of a list, sorted.
fn devices(list: &[Value]) -> Vec<String> {
    let mut d: Vec<String> = list
        .iter()
        .map(|c| c["device"].as_str().unwrap().to_owned())
        .collect();
    d.sort();
    d
}

/// `stacctl --json ls` keeps answering `expected` for `window`.
fn stays(stacctl: &Path, bus: &str, expected: &[Value], window: Duration, while_: &str) {
    let start = Instant::now();
    while start.elapsed() < window {
        let now = json(stacctl, bus, &["ls"]);
        let now = now.as_array().unwrap();
        assert_eq!(
            devices(now),
            devices(expected),
            "stacd's controllers changed {while_}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// How strictly [`follow_stafd_through_its_restart`] judges stacd once
/// stafd is back.
#[derive(Clone, Copy, PartialEq, Eq)]
enum AfterRestart {
    /// stacd ends up with the same 16 controllers.
    Eventually16,
    /// stacd never disconnects any of them (same devices throughout).
    NothingDisconnected,
}

/// `stafd --sim 2` and `stacd --sim 0` on one bus: stacd connects the 16
/// subsystems of stafd's log pages with stafd's host NQN, keeps them while
/// stafd is stopped, and has them once stafd is back.
fn follow_stafd_through_its_restart(tag: &str, after_restart: AfterRestart) {
    let b = bins();
    let bus = Bus::start(tag).unwrap_or_else(|e| panic!("{e}"));
    let addr = bus.address();

    let stafd = daemon(&b.stafd, 2, addr);
    let _stacd = daemon(&b.stacd, 0, addr);

    // 2 discovery controllers with 8 I/O subsystems each: 16 controllers.
    let list = ls_until(&b.stacctl, addr, "16 connected controllers", |l| {
        l.len() == 16 && connected(l)
    });
    let dcs = json(&b.stafctl, addr, &["ls"]);
    let dcs = dcs.as_array().unwrap();
    assert_eq!(dcs.len(), 2, "{dcs:?}");
    let host_nqn = dcs[0]["host-nqn"].as_str().unwrap();
    assert!(!host_nqn.is_empty());
    for c in &list {
        assert_eq!(
            c["host-nqn"], host_nqn,
            "connected with stafd's host NQN: {c}"
        );
    }
    let detailed = json(&b.stacctl, addr, &["ls", "-d"]);
    for c in detailed.as_array().unwrap() {
        assert_ne!(c["dlpe"], "None", "learned from a log page: {c}");
    }

    // stafd stops: unknown is not empty, stacd keeps every controller.
    let status = stafd.terminate(Duration::from_secs(10)).unwrap();
    assert!(status.success(), "stafd on SIGTERM: {status}");
    let o = ctl(&b.stafctl, addr, &["ls"]);
    assert_eq!(o.status.code(), Some(1), "stafd is gone: {o:?}");
    stays(
        &b.stacctl,
        addr,
        &list,
        Duration::from_secs(3),
        "while stafd was away",
    );

    // stafd is back with the same log pages: still the same 16.
    let _stafd = daemon(&b.stafd, 2, addr);
    let start = Instant::now();
    loop {
        let o = ctl(&b.stafctl, addr, &["--json", "adlp"]);
        if o.status.success() {
            let v: Value = serde_json::from_slice(&o.stdout).unwrap();
            let pages: usize = v
                .as_array()
                .unwrap()
                .iter()
                .map(|dc| dc["log-pages"].as_array().map_or(0, Vec::len))
                .sum();
            if pages == 16 {
                break;
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "stafd did not come back: {o:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    match after_restart {
        AfterRestart::Eventually16 => {
            let now = ls_until(&b.stacctl, addr, "16 connected controllers again", |l| {
                l.len() == 16 && connected(l)
            });
            for c in &now {
                assert_eq!(c["host-nqn"], host_nqn, "{c}");
            }
        }
        AfterRestart::NothingDisconnected => stays(
            &b.stacctl,
            addr,
            &list,
            Duration::from_secs(3),
            "after stafd came back",
        ),
    }
}

#[test]
fn stacd_follows_stafd_over_dbus_through_its_restart() {
    if lab::skip_requested("stacd_follows_stafd_over_dbus_through_its_restart") {
        return;
    }
    follow_stafd_through_its_restart("follow", AfterRestart::Eventually16);
}

/// The "stafd restart disconnects nothing": stafd takes its bus
/// name before it has read its DCs' log pages, and stacd fetches
/// get_all_log_pages at once; the DCs' empty "log-pages" must not count as
/// empty until stafd has read them.
#[test]
fn stafd_restart_disconnects_nothing() {
    if lab::skip_requested("stafd_restart_disconnects_nothing") {
        return;
    }
    follow_stafd_through_its_restart("restart", AfterRestart::NothingDisconnected);
}
