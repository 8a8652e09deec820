//! `stafd --sim` and `stacd --sim` as processes: SIGHUP, at any moment,
//! does not end them (it used to, before the simulation was steady); SIGTERM
//! does, cleanly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test may panic

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use stas_tests::lab::build_static;

fn kill(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{sig} {pid}");
}

#[test]
fn sighup_never_ends_a_simulation_and_sigterm_does() {
    let bins =
        build_static(&[("stafd", "stafd"), ("stacd", "stacd")]).unwrap_or_else(|e| panic!("{e}"));
    for bin in &bins {
        let mut child = Command::new(bin)
            .args(["--sim", "1000"])
            .env_remove("STAS_BUS_ADDRESS")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // At once, while it is still connecting its 1,000 controllers.
        std::thread::sleep(Duration::from_millis(20));
        kill(child.id(), "HUP");
        // Read on a thread: a simulation that never settles must fail this
        // test, not hang it.
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let first = BufReader::new(stdout).lines().next();
            let _ = tx.send(first.and_then(Result::ok).unwrap_or_default());
        });
        let steady = rx.recv_timeout(Duration::from_secs(60));
        if !matches!(&steady, Ok(line) if line.starts_with("@@steady")) {
            kill(child.id(), "KILL");
            let _ = child.wait();
            panic!("{}: not steady within 60 s: {steady:?}", bin.display());
        }
        kill(child.id(), "HUP");
        std::thread::sleep(Duration::from_millis(200));
        assert!(
            child.try_wait().unwrap().is_none(),
            "{} ended on SIGHUP",
            bin.display()
        );
        kill(child.id(), "TERM");
        let start = Instant::now();
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "no exit on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(10));
        };
        assert!(status.success(), "{}: {status}", bin.display());
    }
}
