//! The refusals, each with its message, and the atomic private write.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may panic

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use super::*;

struct Dir(PathBuf);

impl Dir {
    fn new(tag: &str) -> Self {
        let d = std::env::temp_dir().join(format!("nvmf-files-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700)).unwrap();
        Self(d)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn reason(e: FileError) -> String {
    match e {
        FileError::Refused { reason, .. } => reason,
        other => panic!("expected a refusal, got {other}"),
    }
}

#[test]
fn regular_files_are_read_and_missing_ones_are_none() {
    let d = Dir::new("plain");
    let f = d.0.join("a.conf");
    std::fs::write(&f, b"[Global]\n").unwrap();
    assert_eq!(
        read_bounded(&f, 100, Links::Follow).unwrap().unwrap(),
        b"[Global]\n"
    );
    assert!(read_bounded(&d.0.join("none"), 100, Links::Follow)
        .unwrap()
        .is_none());
}

#[test]
fn what_is_not_a_bounded_regular_file_is_refused() {
    let d = Dir::new("refuse");
    // /dev/zero behind a symlink: a device, refused before reading.
    let zero = d.0.join("zero.conf");
    std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
    let r = reason(read_bounded(&zero, 4 << 20, Links::Follow).unwrap_err());
    assert!(r.contains("character device"), "{r}");
    // A FIFO with no writer: refused at once, never waited on.
    let fifo = d.0.join("fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let r = reason(read_bounded(&fifo, 100, Links::Follow).unwrap_err());
    assert!(r.contains("FIFO"), "{r}");
    // Too big.
    let big = d.0.join("big");
    std::fs::write(&big, vec![b'x'; 101]).unwrap();
    let r = reason(read_bounded(&big, 100, Links::Follow).unwrap_err());
    assert!(r.contains("101 bytes, more than the 100"), "{r}");
    // A dangling link is not "no file".
    let dangling = d.0.join("dangling");
    std::os::unix::fs::symlink(d.0.join("gone"), &dangling).unwrap();
    let r = reason(read_bounded(&dangling, 100, Links::Follow).unwrap_err());
    assert!(r.contains("symbolic link to nothing"), "{r}");
    // A link where links are refused.
    let real = d.0.join("real");
    std::fs::write(&real, b"x").unwrap();
    let link = d.0.join("link");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    assert_eq!(
        read_bounded(&link, 100, Links::Follow).unwrap().unwrap(),
        b"x"
    );
    let r = reason(read_bounded(&link, 100, Links::Refuse).unwrap_err());
    assert!(r.contains("symbolic link, refused"), "{r}");
}

#[test]
fn state_files_must_be_private() {
    let d = Dir::new("private");
    let f = d.0.join("state.bin");
    std::fs::write(&f, b"x").unwrap();
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(read_private(&f, 10).unwrap().unwrap(), b"x");
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o666)).unwrap();
    let r = reason(read_private(&f, 10).unwrap_err());
    assert!(r.contains("writable by group or others"), "{r}");
}

#[test]
fn writes_never_follow_a_planted_link_and_leave_no_temp_files() {
    let d = Dir::new("write");
    let target = d.0.join("last-known-config.bin");
    // Plant links at every name an earlier version used for its temp file.
    let victim = d.0.join("victim");
    std::fs::write(&victim, b"untouched").unwrap();
    for i in 0..50 {
        let planted = d.0.join(format!(".last-known-config.bin.tmp{i}"));
        std::os::unix::fs::symlink(&victim, planted).unwrap();
    }
    write_private(&target, b"new").unwrap();
    assert_eq!(std::fs::read(&victim).unwrap(), b"untouched");
    assert_eq!(std::fs::read(&target).unwrap(), b"new");
    let meta = std::fs::symlink_metadata(&target).unwrap();
    assert!(meta.is_file(), "the target is a file, not a link");
    assert_eq!(meta.mode() & 0o777, 0o600);
    assert_eq!(remove_stale_temps(&target), 50);
    let left: Vec<_> = std::fs::read_dir(&d.0).unwrap().collect();
    assert_eq!(left.len(), 2, "the target and the victim only");
}

#[test]
fn a_directory_others_may_write_is_refused_for_state() {
    let d = Dir::new("opendir");
    std::fs::set_permissions(&d.0, std::fs::Permissions::from_mode(0o777)).unwrap();
    let r = reason(write_private(&d.0.join("s.bin"), b"x").unwrap_err());
    assert!(r.contains("writable by group or others"), "{r}");
    let link = std::env::temp_dir().join(format!("nvmf-files-dirlink-{}", std::process::id()));
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(&d.0, &link).unwrap();
    let r = reason(write_private(&link.join("s.bin"), b"x").unwrap_err());
    let _ = std::fs::remove_file(&link);
    assert!(r.contains("not a directory"), "{r}");
}
