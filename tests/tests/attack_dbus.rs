//! stafd and stacd attacked over D-Bus by an ordinary local user: a
//! dbus-daemon with the system bus's default-deny policy plus the shipped
//! policy files (dist/dbus), both daemons as root (`--sim`), and a user the
//! test creates trying to take their names, set `tron`, read secrets, and
//! stall stacd with 2,000 forged stafd signals. Prints stacd's
//! `process_info` latency under the flood and the fetches it made. Needs
//! root (scripts/test runs as root), dbus-daemon, dbus-send, dbus-monitor
//! and busctl (scripts/test installs them).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test may panic

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use stas_tests::bus::{Bus, Running};
use stas_tests::lab::build_static;

const ATTACKER: &str = "stas-attacker";
/// stafd --sim's host key (sys.conf `key=`), which only root may read.
const SIM_KEY: &str = "c2ltdWxhdGVkIGhvc3Qga2V5";

fn attacker_uid() -> u32 {
    let id = || Command::new("id").args(["-u", ATTACKER]).output().unwrap();
    let mut out = id();
    if !out.status.success() {
        let made = Command::new("useradd")
            .args([
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                ATTACKER,
            ])
            .status()
            .unwrap_or_else(|e| panic!("useradd: {e} (apt-get install passwd)"));
        assert!(made.success(), "useradd {ATTACKER}: {made}");
        out = id();
    }
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

/// Runs `cmd` as the attacker.
fn as_attacker(uid: u32, cmd: &mut Command) -> Output {
    cmd.uid(uid).gid(uid).output().unwrap()
}

fn busctl(address: &str, args: &[&str]) -> Command {
    let mut c = Command::new("busctl");
    c.arg(format!("--address={address}")).args(args);
    c
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

async fn process_info(conn: &zbus::Connection) -> String {
    let reply = conn
        .call_method(
            Some("org.nvmexpress.stac"),
            "/org/nvmexpress/stac",
            Some("org.nvmexpress.stac.debug"),
            "process_info",
            &(),
        )
        .await
        .unwrap();
    reply.body().deserialize::<String>().unwrap()
}

/// The `p`-th percentile (in per cent) of sorted values.
fn percentile(sorted: &[f64], p: usize) -> f64 {
    let i = sorted.len().saturating_sub(1) * p / 100;
    sorted.get(i).copied().unwrap_or(f64::NAN)
}

#[test]
fn an_ordinary_user_can_neither_take_over_nor_stall_the_daemons() {
    let me = Command::new("id").arg("-u").output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&me.stdout).trim(),
        "0",
        "this test runs the daemons as root and creates a user: run it as root (scripts/test does)"
    );
    let uid = attacker_uid();
    let bins =
        build_static(&[("stafd", "stafd"), ("stacd", "stacd")]).unwrap_or_else(|e| panic!("{e}"));
    let policy = Path::new(env!("CARGO_MANIFEST_DIR")).join("../dist/dbus");
    let bus = Bus::start_system("attack", &policy).unwrap_or_else(|e| panic!("{e}"));
    let address = bus.address().to_owned();
    let daemon = |bin: &Path| {
        Running::spawn(
            Command::new(bin)
                .args(["--sim", "3", "--bus-address", &address])
                .env_remove("STAS_BUS_ADDRESS")
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        )
        .unwrap_or_else(|e| panic!("{e}"))
    };
    let stafd = daemon(&bins[0]);
    let stacd = daemon(&bins[1]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let conn = rt.block_on(async {
        zbus::connection::Builder::address(address.as_str())
            .unwrap()
            .build()
            .await
            .unwrap()
    });
    let owned = |name: &'static str| {
        rt.block_on(async {
            let bus = zbus::fdo::DBusProxy::new(&conn).await.unwrap();
            let name = zbus::names::BusName::try_from(name).unwrap();
            bus.name_has_owner(name).await.unwrap_or(false)
        })
    };
    let start = Instant::now();
    while !(owned("org.nvmexpress.staf") && owned("org.nvmexpress.stac")) {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the daemons did not take their names"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Let stacd follow stafd first.
    std::thread::sleep(Duration::from_secs(1));

    // 1. The names cannot be taken.
    for name in ["org.nvmexpress.staf", "org.nvmexpress.stac"] {
        let o = as_attacker(
            uid,
            &mut busctl(
                &address,
                &[
                    "call",
                    "org.freedesktop.DBus",
                    "/org/freedesktop/DBus",
                    "org.freedesktop.DBus",
                    "RequestName",
                    "su",
                    name,
                    "4",
                ],
            ),
        );
        assert!(
            !o.status.success() && text(&o).contains("Access denied"),
            "{name}: {}",
            text(&o)
        );
    }
    // 2. tron cannot be set, and stays off.
    for (dest, path) in [
        ("org.nvmexpress.staf", "/org/nvmexpress/staf"),
        ("org.nvmexpress.stac", "/org/nvmexpress/stac"),
    ] {
        let o = as_attacker(
            uid,
            &mut busctl(
                &address,
                &[
                    "set-property",
                    dest,
                    path,
                    &format!("{dest}.debug"),
                    "tron",
                    "b",
                    "true",
                ],
            ),
        );
        assert!(
            !o.status.success(),
            "{dest}: tron set by a user: {}",
            text(&o)
        );
        let o = busctl(
            &address,
            &["get-property", dest, path, &format!("{dest}.debug"), "tron"],
        )
        .output()
        .unwrap();
        assert_eq!(text(&o).trim(), "b false", "{dest}");
    }
    // 3. Secrets are redacted for the user, shown to root.
    let info = |cmd: &mut Command| text(&cmd.output().unwrap());
    let args = [
        "call",
        "org.nvmexpress.staf",
        "/org/nvmexpress/staf",
        "org.nvmexpress.staf.debug",
        "process_info",
    ];
    let theirs = text(&as_attacker(uid, &mut busctl(&address, &args)));
    assert!(
        theirs.contains("hostnqn") && !theirs.contains(SIM_KEY),
        "{theirs}"
    );
    assert!(
        info(&mut busctl(&address, &args)).contains(SIM_KEY),
        "root sees the key"
    );

    // 4. 2,000 forged stafd signals while root asks stacd for its state.
    let fetches = Arc::new(AtomicUsize::new(0));
    let mut monitor = Running::spawn(
        Command::new("dbus-monitor")
            .arg(format!("--address={address}"))
            .arg("type='method_call',member='get_all_log_pages'")
            .stdout(Stdio::piped())
            .stderr(Stdio::null()),
    )
    .unwrap_or_else(|e| panic!("dbus-monitor (apt-get install dbus-bin): {e}"));
    let lines = BufReader::new(monitor.stdout().unwrap());
    let seen = fetches.clone();
    std::thread::spawn(move || {
        for l in lines.lines().map_while(Result::ok) {
            if l.contains("member=get_all_log_pages") {
                seen.fetch_add(1, Ordering::SeqCst);
            }
        }
    });
    std::thread::sleep(Duration::from_millis(500));
    let before = fetches.load(Ordering::SeqCst);
    let flood = format!(
        "for i in $(seq 2000); do dbus-send --address={address} --type=signal /org/nvmexpress/staf \
         org.nvmexpress.staf.log_pages_changed string:tcp string:10.0.0.1 string:8009 string: string: \
         string:nqn.x string:nqn.h string:nvme0 || exit 1; done"
    );
    let mut flooder = Command::new("sh");
    flooder
        .args(["-c", &flood])
        .uid(uid)
        .gid(uid)
        .stdout(Stdio::null());
    let mut flooder = flooder.spawn().unwrap();
    let mut latencies = Vec::new();
    let flood_start = Instant::now();
    let mut done_at: Option<Instant> = None;
    loop {
        let t = Instant::now();
        let answer = rt.block_on(async {
            tokio::time::timeout(Duration::from_secs(30), process_info(&conn)).await
        });
        latencies.push(t.elapsed().as_secs_f64() * 1000.0);
        assert!(
            answer.is_ok(),
            "stacd did not answer process_info within 30 s under the flood"
        );
        if done_at.is_none() && flooder.try_wait().unwrap().is_some() {
            done_at = Some(Instant::now());
        }
        // Keep asking for a second after the last forged signal.
        if done_at.is_some_and(|d| d.elapsed() > Duration::from_secs(1)) {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let flood_status = flooder.wait().unwrap();
    assert!(
        flood_status.success(),
        "the forger could not send: {flood_status}"
    );
    let after = fetches.load(Ordering::SeqCst);
    latencies.sort_by(f64::total_cmp);
    println!(
        "2,000 forged signals in {:.1} s: stacd process_info over {} calls p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; get_all_log_pages calls meanwhile: {}",
        flood_start.elapsed().as_secs_f64(),
        latencies.len(),
        percentile(&latencies, 50),
        percentile(&latencies, 99),
        latencies.last().copied().unwrap_or(f64::NAN),
        after - before
    );
    assert_eq!(after - before, 0, "forged signals made stacd fetch");
    drop(monitor);
    let _ = stacd.terminate(Duration::from_secs(10));
    let _ = stafd.terminate(Duration::from_secs(10));
}
