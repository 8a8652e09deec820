//! Files an admin (or an attacker with write access to /etc) can get wrong,
//! handed to `stafd --check-config`, which reads them exactly as start-up and
//! SIGHUP do: each is refused at once with a message naming the file and the
//! problem (never a hang on a FIFO, never an endless read of /dev/zero).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test may panic

mod common;

use std::path::Path;
use std::process::Command;

use common::{check, sys_conf, work_dir};

#[test]
fn devices_fifos_dangling_links_and_huge_files_are_refused_at_once() {
    let d = work_dir("bad");
    let zero = d.join("zero.conf");
    std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
    let fifo = d.join("fifo.conf");
    mkfifo(&fifo);
    let dangling = d.join("dangling.conf");
    std::os::unix::fs::symlink(d.join("gone.conf"), &dangling).unwrap();
    let huge = d.join("huge.conf");
    let mut text = String::from("[Global]\n");
    while text.len() < 10_000_000 {
        text.push_str("# padding padding padding padding padding padding padding\n");
    }
    std::fs::write(&huge, &text).unwrap();
    let cases: [(&Path, &str); 4] = [
        (&zero, "character device"),
        (&fifo, "FIFO"),
        (&dangling, "symbolic link to nothing"),
        (&huge, "more than the 4194304 allowed"),
    ];
    for (conf, why) in cases {
        let (code, _, err, took) = check(conf, &sys_conf(), &d);
        println!(
            "{}: exit {code} in {took:?}: {}",
            conf.display(),
            err.trim()
        );
        assert_eq!(code, 1, "{}: {err}", conf.display());
        assert!(
            err.contains(&conf.display().to_string()) && err.contains(why),
            "{}: {err}",
            conf.display()
        );
    }
    // The same for sys.conf, which names the host.
    for (sys, why) in [(&fifo, "FIFO"), (&zero, "character device")] {
        let (code, _, err, _) = check(&sys_conf(), sys, &d);
        assert_eq!(code, 1, "sys.conf {}: {err}", sys.display());
        assert!(err.contains(why), "sys.conf {}: {err}", sys.display());
    }
    std::fs::remove_dir_all(&d).unwrap();
}

fn mkfifo(path: &Path) {
    let ok = Command::new("mkfifo").arg(path).status().unwrap().success();
    assert!(ok, "mkfifo {}", path.display());
}
