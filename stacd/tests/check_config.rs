//! `stacd --check-config`, run as a program on upstream-style files.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test may panic

use std::path::{Path, PathBuf};
use std::process::Command;

fn config_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/data/config")
}

fn nvme_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("stacd-check-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(
        d.join("hostnqn"),
        "nqn.2014-08.org.nvmexpress:uuid:0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0\n",
    )
    .unwrap();
    std::fs::write(d.join("hostid"), "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0\n").unwrap();
    d
}

fn check(conf: &Path, nvme: &Path) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_stacd"))
        .arg("--check-config")
        .arg("-f")
        .arg(conf)
        .arg("--sys-conf")
        .arg(config_dir().join("sys.conf"))
        .arg("--nvme-dir")
        .arg(nvme)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn upstream_default_file_passes() {
    let (code, out, err) = check(&config_dir().join("stacd.conf"), &nvme_dir("ok"));
    assert_eq!(code, 0, "{err}");
    assert!(err.is_empty(), "{err}");
    assert!(
        out.contains("disconnect-scope = only-stas-connections"),
        "{out}"
    );
}

#[test]
fn every_option_set_passes_and_is_echoed() {
    let (code, out, err) = check(
        &config_dir().join("stacd-all-options.conf"),
        &nvme_dir("all"),
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("controller ="), "{out}");
    assert!(out.contains("connect-attempts-on-ncc"), "{out}");
}

#[test]
fn stafd_only_options_and_bad_values_name_file_and_line() {
    let nvme = nvme_dir("bad");
    let conf = nvme.join("stacd.conf");
    std::fs::write(
        &conf,
        "[Global]\npleo = enabled\n[I/O controller connection management]\ndisconnect-scope = sometimes\n",
    )
    .unwrap();
    let (code, _, err) = check(&conf, &nvme);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!("{}:2", conf.display())) && err.contains("pleo"),
        "{err}"
    );
    assert!(
        err.contains(&format!("{}:4", conf.display())) && err.contains("disconnect-scope"),
        "{err}"
    );
}
