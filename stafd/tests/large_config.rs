//! `stafd --check-config` on a file with 100,000 controllers: parsed and
//! echoed, with the time and the peak RSS printed. Alone in its test binary
//! so the children's peak RSS is this one child's.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test may panic

mod common;

use std::fmt::Write as _;

use common::{check, sys_conf, work_dir};

#[test]
fn a_hundred_thousand_controllers_are_parsed() {
    let d = work_dir("big");
    let conf = d.join("big.conf");
    let mut text = String::from("[Controllers]\n");
    for i in 0..100_000 {
        // Short IPv6 addresses keep the file under the 4 MiB cap.
        writeln!(text, "controller=transport=tcp;traddr=::{i:x}").unwrap();
    }
    std::fs::write(&conf, &text).unwrap();
    let (code, out, err, took) = check(&conf, &sys_conf(), &d);
    assert_eq!(code, 0, "{err}");
    let echoed = out.lines().filter(|l| l.starts_with("controller")).count();
    let peak = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_CHILDREN)
        .unwrap()
        .max_rss();
    println!(
        "100,000 controller lines ({} bytes): checked in {took:?}, peak RSS {:.1} MiB, {echoed} echoed",
        text.len(),
        peak as f64 / 1024.0
    );
    assert_eq!(echoed, 100_000);
    std::fs::remove_dir_all(&d).unwrap();
}
