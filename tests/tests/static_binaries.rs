//! Every release binary of the workspace is a static musl executable that
//! runs on a host with no libc (`ldd` says so, and the ELF has no interpreter).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test may panic

use std::process::Command;

use stas_tests::lab::{self, build_static, elf_interpreter};

const BINARIES: &[(&str, &str)] = &[
    ("stafd", "stafd"),
    ("stacd", "stacd"),
    ("tools", "stasadm"),
    ("tools", "stafctl"),
    ("tools", "nvmf-dlp"),
    ("nvmf-dcsim", "nvmf-dcsim"),
];

#[test]
fn release_binaries_are_static() {
    if lab::skip_requested("release_binaries_are_static") {
        return;
    }
    let paths = build_static(BINARIES).unwrap_or_else(|e| panic!("{e}"));
    for p in &paths {
        assert_eq!(
            elf_interpreter(p).unwrap(),
            None,
            "{} has a dynamic loader",
            p.display()
        );
        let size = std::fs::metadata(p).unwrap().len();
        println!("{}: {} KiB, static", p.display(), size / 1024);
        if let Ok(out) = Command::new("ldd").arg(p).output() {
            let text = String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr);
            assert!(
                text.contains("not a dynamic executable") || text.contains("statically linked"),
                "ldd {}: {text}",
                p.display()
            );
        }
    }
}
