//! `stafd --check-config`, run as a program on upstream-style files.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test may panic

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

fn config_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/data/config")
}

fn nvme_dir(tag: &str) -> PathBuf {
    common::work_dir(&format!("check-{tag}"))
}

fn check(conf: &Path, sys: &Path, nvme: &Path) -> (i32, String, String) {
    let (code, out, err, _) = common::check(conf, sys, nvme);
    (code, out, err)
}

#[test]
fn upstream_default_files_pass() {
    let nvme = nvme_dir("ok");
    let (code, out, err) = check(
        &config_dir().join("stafd.conf"),
        &config_dir().join("sys.conf"),
        &nvme,
    );
    assert_eq!(code, 0, "{err}");
    assert!(err.is_empty(), "{err}");
    assert!(out.contains("kato = 30"), "{out}");
    assert!(out.contains("persistent-connections = true"), "{out}");
    assert!(
        out.contains("host NQN nqn.2014-08.org.nvmexpress:uuid:0f1e2d3c"),
        "{out}"
    );
}

#[test]
fn every_option_set_passes_and_is_echoed() {
    let nvme = nvme_dir("all");
    let (code, out, err) = check(
        &config_dir().join("stafd-all-options.conf"),
        &config_dir().join("sys.conf"),
        &nvme,
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("controller ="), "{out}");
}

#[test]
fn bad_values_fail_naming_file_line_and_option() {
    let nvme = nvme_dir("bad");
    let conf = nvme.join("stafd.conf");
    std::fs::write(&conf, "[Global]\nkato = soon\n[Bogus]\nx = 1\n").unwrap();
    let (code, out, err) = check(&conf, &config_dir().join("sys.conf"), &nvme);
    assert_eq!(code, 1);
    assert!(
        err.contains(&format!("{}:2", conf.display()))
            && err.contains("kato")
            && err.contains("soon"),
        "{err}"
    );
    assert!(err.contains("Bogus"), "{err}");
    assert!(out.contains("kato = 30"), "the default is used: {out}");
}

#[test]
fn unparsable_file_and_missing_host_identity_fail() {
    let nvme = nvme_dir("broken");
    let conf = nvme.join("broken.conf");
    std::fs::write(&conf, "kato = 1\n").unwrap();
    let (code, _, err) = check(&conf, &config_dir().join("sys.conf"), &nvme);
    assert_eq!(code, 1);
    assert!(err.contains(&format!("{}:1", conf.display())), "{err}");
    let empty = nvme.join("empty-nvme-dir");
    std::fs::create_dir_all(&empty).unwrap();
    let (code, _, err) = check(
        &config_dir().join("stafd.conf"),
        &config_dir().join("sys.conf"),
        &empty,
    );
    assert_eq!(code, 1);
    assert!(err.contains("Host NQN"), "{err}");
}

#[test]
fn version_prints_nvme_stas() {
    let out = Command::new(env!("CARGO_BIN_EXE_stafd"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("nvme-stas "));
}
