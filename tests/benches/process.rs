//! stafd and stacd as processes against their simulated kernels (`--sim
//! N`), built as shipped (static musl, release): time from exec to READY=1
//! (sd_notify), time until N controllers are connected (and, for stafd,
//! their log pages read), and resident memory then. Prints figures; asserts
//! nothing.
//!
//! Run: `cargo bench -p stas-tests --bench process`

use std::io::{BufRead, BufReader};
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use stas_tests::lab::build_static;

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

fn run(bin: &Path, n: usize) -> Option<(Duration, Duration, u64)> {
    let name = bin.file_name()?.to_string_lossy().into_owned();
    let dir = std::env::temp_dir().join(format!("{name}-bench-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).ok()?;
    let sock_path = dir.join("notify");
    let sock = UnixDatagram::bind(&sock_path).ok()?;
    sock.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let start = Instant::now();
    let mut child = Command::new(bin)
        .arg("--sim")
        .arg(n.to_string())
        .env("NOTIFY_SOCKET", &sock_path)
        .env_remove("STAS_BUS_ADDRESS")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let mut buf = [0u8; 64];
    let ready = loop {
        let len = sock.recv(&mut buf).ok()?;
        if buf.get(..len) == Some(b"READY=1".as_slice()) {
            break start.elapsed();
        }
    };
    let mut lines = BufReader::new(child.stdout.take()?).lines();
    let steady = loop {
        let line = lines.next()?.ok()?;
        if line.starts_with("@@steady") {
            break start.elapsed();
        }
    };
    let rss = rss_kib(child.id());
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    Some((ready, steady, rss?))
}

fn main() {
    let bins = match build_static(&[("stafd", "stafd"), ("stacd", "stacd")]) {
        Ok(b) => b,
        Err(e) => {
            println!("cannot build the static binaries: {e}");
            return;
        }
    };
    for (bin, what) in bins.iter().zip([
        "DCs connected and their log pages read",
        "I/O controllers connected",
    ]) {
        let name = bin
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        for n in [1usize, 100, 1000] {
            match run(bin, n) {
                Some((ready, steady, rss)) => println!(
                    "{name} --sim {n}: exec -> READY=1 {:.1} ms, all {n} {what} {:.1} ms, VmRSS {rss} KiB ({:.1} MiB)",
                    ready.as_secs_f64() * 1000.0,
                    steady.as_secs_f64() * 1000.0,
                    rss as f64 / 1024.0
                ),
                None => println!("{name} --sim {n}: the run failed"),
            }
        }
    }
}
