//! Helpers shared by the `--check-config` tests on hostile files.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub fn sys_conf() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/data/config/sys.conf")
}

pub fn work_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("stafd-hostile-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(
        d.join("hostnqn"),
        "nqn.2014-08.org.nvmexpress:uuid:0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0\n",
    )
    .unwrap();
    std::fs::write(d.join("hostid"), "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0\n").unwrap();
    d
}

/// `stafd --check-config`: exit code, stdout, stderr and time; killed (and the test failed) after 20 s.
pub fn check(conf: &Path, sys: &Path, nvme: &Path) -> (i32, String, String, Duration) {
    let start = Instant::now();
    let child = Command::new(env!("CARGO_BIN_EXE_stafd"))
        .arg("--check-config")
        .arg("-f")
        .arg(conf)
        .arg("--sys-conf")
        .arg(sys)
        .arg("--nvme-dir")
        .arg(nvme)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        if rx.recv_timeout(Duration::from_secs(20)).is_err() {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
    });
    let out = child.wait_with_output().unwrap();
    let _ = tx.send(());
    let took = start.elapsed();
    assert!(
        out.status.code().is_some(),
        "{}: stafd hung or died: {}",
        conf.display(),
        out.status
    );
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        took,
    )
}
