//! Smoke tests of the QEMU lab (tests/src/lab/): a real kernel NVMe/TCP
//! target and host in a guest, a static workspace binary in a guest, and a
//! Debian binary with its shared libraries in a guest.
//!
//! They fail, with what to install, when the lab cannot start; `STAS_SKIP_LAB=1`
//! skips them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test may panic

use std::path::Path;
use std::time::{Duration, Instant};

use stas_tests::lab::{
    self, build_static, elf_interpreter, host_binary_with_libs, Guest, GuestRun, Lab,
};

fn lab() -> Lab {
    let t = Instant::now();
    let lab = Lab::prepare().unwrap_or_else(|e| panic!("the lab cannot start: {e}"));
    println!(
        "lab ready in {:?}: {} ({})",
        t.elapsed(),
        lab.kernel_package(),
        lab.cache_dir().display()
    );
    lab
}

fn run(lab: &Lab, guest: &Guest) -> GuestRun {
    let run = lab.run(guest).unwrap_or_else(|e| panic!("{e}"));
    println!(
        "guest {}: boot {:?}, wall {:?}, exit {:?}",
        guest.name, run.boot_time, run.wall_time, run.exit_code
    );
    run
}

const NVMET_SCENARIO: &str = r#"
. /lab.sh
set -e
lab_tag kernel "$(uname -r)"
ip addr

H=nqn.2014-08.org.nvmexpress:uuid:11111111-2222-3333-4444-555555555555
N=/sys/kernel/config/nvmet
S=nqn.2024-01.io.lab:sub1
mkdir $N/subsystems/$S
echo 1 > $N/subsystems/$S/attr_allow_any_host
truncate -s 64M /tmp/sub1.img
mkdir $N/subsystems/$S/namespaces/1
echo /tmp/sub1.img > $N/subsystems/$S/namespaces/1/device_path
echo 1 > $N/subsystems/$S/namespaces/1/buffered_io  # the initramfs is tmpfs: no O_DIRECT
echo 1 > $N/subsystems/$S/namespaces/1/enable
mkdir $N/ports/1
echo tcp > $N/ports/1/addr_trtype
echo ipv4 > $N/ports/1/addr_adrfam
echo 127.0.0.1 > $N/ports/1/addr_traddr
echo 8009 > $N/ports/1/addr_trsvcid
ln -s $N/subsystems/$S $N/ports/1/subsystems/

# One write to /dev/nvme-fabrics connects; reading it back gives the kernel's answer.
exec 3<>/dev/nvme-fabrics
printf '%s' "transport=tcp,traddr=127.0.0.1,trsvcid=8009,nqn=nqn.2014-08.org.nvmexpress.discovery,hostnqn=$H,keep_alive_tmo=30" >&3
cat <&3
exec 3>&-

set +e
lab_put address /sys/class/nvme/nvme0/address
lab_check dev_nvme0 test -e /dev/nvme0
lab_check lo_ipv6 sh -c 'ip addr show lo | grep -q "::1"'
exit 0
"#;

#[test]
fn lab_boots_and_runs_nvmet() {
    if lab::skip_requested("lab_boots_and_runs_nvmet") {
        return;
    }
    let lab = lab();
    let guest = Guest::new("smoke-nvmet", NVMET_SCENARIO).timeout(Duration::from_secs(180));
    let run = run(&lab, &guest);
    println!("{}", run.output);
    let report = run.report();
    assert_eq!(run.exit_code, Some(0), "{report}");
    assert_eq!(run.tagged("kernel"), [lab.kernel_release()], "{report}");
    let checks = run.checks();
    let names: Vec<&str> = checks.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["dev_nvme0", "lo_ipv6"], "{report}");
    for c in &checks {
        assert_eq!(c.failed, None, "check {} failed\n{report}", c.name);
    }
    let address = run
        .blob("address")
        .unwrap_or_else(|| panic!("no address blob\n{report}"));
    let address = String::from_utf8_lossy(&address);
    println!("nvme0/address = {}", address.trim());
    assert!(address.contains("traddr=127.0.0.1"), "{address}\n{report}");
    assert!(run.output.contains("instance=0"), "{report}");
}

#[test]
fn build_static_produces_static_binary() {
    if lab::skip_requested("build_static_produces_static_binary") {
        return;
    }
    let lab = lab();
    let t = Instant::now();
    let bins = build_static(&[("tools", "nvmf-dlp")]).unwrap_or_else(|e| panic!("{e}"));
    println!("build_static took {:?}", t.elapsed());
    let dlp = &bins[0];
    assert!(
        dlp.ends_with("x86_64-unknown-linux-musl/release/nvmf-dlp"),
        "{}",
        dlp.display()
    );
    let interp = elf_interpreter(dlp).unwrap();
    assert_eq!(interp, None, "{} asks for a dynamic loader", dlp.display());

    let guest = Guest::new("smoke-static", "nvmf-dlp --help; echo \"@@help-exit $?\"\n")
        .file(dlp, "/usr/bin/nvmf-dlp");
    let run = run(&lab, &guest);
    let report = run.report();
    assert_eq!(run.exit_code, Some(0), "{report}");
    assert_eq!(run.tagged("help-exit"), ["0"], "{report}");
    assert!(
        run.output
            .contains("Decode a raw NVMe-oF discovery log page file"),
        "{report}"
    );
    assert!(run.output.contains("--json"), "{report}");
}

#[test]
fn host_binary_with_libs_runs_nvme_cli() {
    if lab::skip_requested("host_binary_with_libs_runs_nvme_cli") {
        return;
    }
    let nvme = Path::new("/usr/sbin/nvme");
    assert!(
        nvme.is_file(),
        "{} not found: apt-get install nvme-cli",
        nvme.display()
    );
    let lab = lab();
    let files = host_binary_with_libs(nvme).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        files.iter().any(|(_, g)| g == "/usr/sbin/nvme"),
        "{files:?}"
    );
    assert!(
        files.iter().any(|(_, g)| g.contains("ld-linux")),
        "no dynamic loader in {files:?}"
    );

    let guest = Guest::new("smoke-nvme-cli", "nvme version\n").files(files);
    let run = run(&lab, &guest);
    let report = run.report();
    assert_eq!(run.exit_code, Some(0), "{report}");
    assert!(run.output.contains("nvme version"), "{report}");
}
