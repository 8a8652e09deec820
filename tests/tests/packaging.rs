//! The install step and what it installs: scripts/install into a scratch
//! prefix, the units pass `systemd-analyze verify`, dbus-daemon accepts the
//! policy files, the shipped configuration passes `stafd --check-config`,
//! man pages and shell completions land where man and the shells look,
//! and a second install keeps the admin's /etc/stas files.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test may panic

use std::path::{Path, PathBuf};
use std::process::Command;

use stas_tests::lab::{self, build_static, workspace_root};

fn install(prefix: &Path, etc: &Path, bins: &Path) {
    let out = Command::new(workspace_root().join("scripts/install"))
        .env("PREFIX", prefix)
        .env("SYSCONFDIR", etc)
        .env("STAS_BIN_DIR", bins)
        .env_remove("DESTDIR")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "scripts/install: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn install_units_policy_and_config() {
    if lab::skip_requested("install_units_policy_and_config") {
        return;
    }
    let bins = build_static(&[
        ("stafd", "stafd"),
        ("stacd", "stacd"),
        ("tools", "stafctl"),
        ("tools", "stacctl"),
        ("tools", "stasadm"),
        ("tools", "nvmf-dlp"),
    ])
    .unwrap_or_else(|e| panic!("{e}"));
    let bin_dir = bins[0].parent().unwrap().to_path_buf();
    let root = std::env::temp_dir().join(format!("stas-install-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let (prefix, etc) = (root.join("usr"), root.join("etc"));
    install(&prefix, &etc, &bin_dir);

    let units = prefix.join("lib/systemd/system");
    for f in [
        prefix.join("sbin/stafd"),
        prefix.join("sbin/stacd"),
        prefix.join("bin/stafctl"),
        prefix.join("bin/stacctl"),
        prefix.join("bin/stasadm"),
        units.join("stafd.service"),
        units.join("stacd.service"),
        units.join("stas-config.target"),
        units.join("stas-config@.service"),
        prefix.join("share/dbus-1/system.d/org.nvmexpress.staf.conf"),
        prefix.join("share/dbus-1/system.d/org.nvmexpress.stac.conf"),
        etc.join("stas/stafd.conf"),
        etc.join("stas/stacd.conf"),
        etc.join("stas/sys.conf"),
    ] {
        assert!(f.exists(), "{} not installed", f.display());
    }
    // Man pages by section, completions where bash-completion, zsh and fish
    // load them from.
    let share = prefix.join("share");
    for (name, section) in [
        ("stafd", 8),
        ("stacd", 8),
        ("stafctl", 1),
        ("stacctl", 1),
        ("stasadm", 1),
    ] {
        let page = share.join(format!("man/man{section}/{name}.{section}"));
        let text =
            std::fs::read_to_string(&page).unwrap_or_else(|e| panic!("{}: {e}", page.display()));
        assert!(
            text.contains(&format!(".TH {name} {section} ")),
            "{}: {text}",
            page.display()
        );
        for f in [
            share.join(format!("bash-completion/completions/{name}")),
            share.join(format!("zsh/site-functions/_{name}")),
            share.join(format!("fish/vendor_completions.d/{name}.fish")),
        ] {
            assert!(f.is_file(), "{} not installed", f.display());
        }
    }
    assert!(share.join("man/man1/stafctl-dlp.1").is_file());
    assert!(
        !share.join("man/man1/stafd.8").exists() && !share.join("man/man8/stafctl.1").exists(),
        "a man page in the wrong section"
    );
    // The installed bash completion works: it completes stacctl's subcommands.
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!(
            ". {}; COMP_WORDS=(stacctl t); COMP_CWORD=1; _stacctl stacctl t stacctl; echo \"${{COMPREPLY[*]}}\"",
            share.join("bash-completion/completions/stacctl").display()
        ))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "tron troff",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let unit = std::fs::read_to_string(units.join("stafd.service")).unwrap();
    assert!(
        unit.contains(&format!(
            "ExecStart={}/sbin/stafd --syslog",
            prefix.display()
        )),
        "{unit}"
    );
    assert!(unit.contains("BusName=org.nvmexpress.staf"));

    // systemd's own checker, on the units and one instance of the template.
    let instance: PathBuf = root.join("stas-config@hostnqn.service");
    std::fs::copy(units.join("stas-config@.service"), &instance).unwrap();
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(units.join("stafd.service"))
        .arg(units.join("stacd.service"))
        .arg(units.join("stas-config.target"))
        .arg(&instance)
        .output()
        .unwrap_or_else(|e| panic!("systemd-analyze: {e} (apt-get install systemd)"));
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "systemd-analyze verify: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // dbus-daemon reports a malformed included policy on stderr (and runs on).
    let bus = root.join("bus.conf");
    std::fs::write(
        &bus,
        format!(
            "<!DOCTYPE busconfig PUBLIC \"-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN\" \
             \"http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd\">\n<busconfig><type>system</type>\
             <listen>unix:path={}</listen><auth>EXTERNAL</auth><includedir>{}</includedir></busconfig>",
            root.join("bus.sock").display(),
            prefix.join("share/dbus-1/system.d").display()
        ),
    )
    .unwrap();
    let mut daemon = Command::new("dbus-daemon")
        .arg(format!("--config-file={}", bus.display()))
        .arg("--nofork")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("dbus-daemon: {e} (apt-get install dbus-daemon)"));
    let start = std::time::Instant::now();
    while !root.join("bus.sock").exists() {
        if let Some(status) = daemon.try_wait().unwrap() {
            panic!("dbus-daemon refused the policy files ({status})");
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(10),
            "dbus-daemon did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let _ = daemon.kill();
    let out = daemon.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        !log.contains("Error in file") && !log.contains("Encountered error"),
        "policy files: {log}"
    );

    // The shipped configuration is valid as it stands.
    let nvme = root.join("nvme");
    std::fs::create_dir_all(&nvme).unwrap();
    std::fs::write(
        nvme.join("hostnqn"),
        "nqn.2014-08.org.nvmexpress:uuid:0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0\n",
    )
    .unwrap();
    std::fs::write(
        nvme.join("hostid"),
        "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0\n",
    )
    .unwrap();
    let out = Command::new(prefix.join("sbin/stafd"))
        .arg("--check-config")
        .arg("-f")
        .arg(etc.join("stas/stafd.conf"))
        .arg("--sys-conf")
        .arg(etc.join("stas/sys.conf"))
        .arg("--nvme-dir")
        .arg(&nvme)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A second install keeps what the admin changed.
    std::fs::write(etc.join("stas/stafd.conf"), "[Global]\nkato = 60\n").unwrap();
    install(&prefix, &etc, &bin_dir);
    assert_eq!(
        std::fs::read_to_string(etc.join("stas/stafd.conf")).unwrap(),
        "[Global]\nkato = 60\n"
    );
    std::fs::remove_dir_all(&root).ok();
}
