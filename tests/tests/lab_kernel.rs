//! nvmf-kernel against a real Linux kernel: one lab VM boot runs the
//! `kernel` scenario of stas-lab-guest (nvmet target + host on loopback),
//! then this test checks its results, compares our discovery log with
//! nvme-cli's on the same target, and keeps the captured bytes as golden
//! vectors under fixtures/data/kernel-captures (STAS_BLESS=1 rewrites them).
//!
//! Fails, saying what to install, when the lab cannot start; `STAS_SKIP_LAB=1`
//! skips it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test may panic

use std::path::Path;
use std::time::Duration;

use nvmf_proto::dlp::DiscoveryLogPage;
use nvmf_proto::identify::IdentifyController;
use nvmf_proto::types::TrType;
use stas_tests::lab::{self, build_static, host_binary_with_libs, Guest, Lab};

/// Every check the scenario must report, and pass.
const EXPECTED: &[&str] = &[
    "nvmet-setup",
    "options-probe",
    "dc-connect",
    "dc-sysfs",
    "identify-dc",
    "dlp-content",
    "supported-log-pages-refused-typed",
    "dim-refused-typed",
    "uevent-stream",
    "aen-1",
    "aen-2",
    "dc-ipv6",
    "stasadm-reuse",
    "stasadm-connect-disconnect",
    "stasadm-connect-refused",
    "nvme-cli-discover",
    "io-connect",
    "bad-option-typed",
    "unsupported-option-dropped",
    "dlp-300",
    "dlp-genctr-retry",
    "dlp-genctr-churn-typed",
    "uevent-enobufs-lost",
];

const SCRIPT: &str = r#"
. /lab.sh
/bin/stas-lab-guest kernel
rc=$?
for f in /tmp/blobs/*; do lab_put "$(basename "$f")" "$f"; done
exit $rc
"#;

/// Compares nvme-cli's `discover -o json` records with our parse of the same
/// target's log page, field by field, in nvme-cli's spellings.
fn differential(ours: &DiscoveryLogPage, cli_json: &[u8]) -> Result<usize, String> {
    let v: serde_json::Value =
        serde_json::from_slice(cli_json).map_err(|e| format!("nvme-cli JSON: {e}"))?;
    let records = v["records"]
        .as_array()
        .ok_or(format!("no records in {v}"))?;
    let entries: Vec<_> = ours.valid_entries().collect();
    if records.len() != entries.len() {
        return Err(format!(
            "nvme-cli lists {} entries, we parsed {}",
            records.len(),
            entries.len()
        ));
    }
    if v["genctr"].as_u64() != Some(ours.header.genctr) {
        return Err(format!(
            "genctr: nvme-cli {} ours {}",
            v["genctr"], ours.header.genctr
        ));
    }
    let mut fields = 0;
    for (i, (rec, e)) in records.iter().zip(&entries).enumerate() {
        let obj = rec.as_object().ok_or("record is not an object")?;
        for (key, val) in obj {
            let ours: serde_json::Value = match key.as_str() {
                "trtype" => e.trtype.cli_str().into(),
                "adrfam" => {
                    if e.traddr.is_empty() {
                        "".into()
                    } else {
                        e.adrfam.cli_str().into()
                    }
                }
                "subtype" => e.subtype.cli_str().into(),
                "treq" => e.treq.cli_str().into(),
                "portid" => e.portid.into(),
                "trsvcid" => e.trsvcid.clone().into(),
                "subnqn" => e.subnqn.clone().into(),
                "traddr" => e.traddr.clone().into(),
                "eflags" => e.eflags.cli_str().into(),
                "sectype" if e.trtype == TrType::Tcp => e.tsas.sectype().cli_str().into(),
                "cntlid" => e.cntlid.into(),
                "asqsz" => e.asqsz.into(),
                other => {
                    return Err(format!(
                        "entry {i}: nvme-cli field {other}={val} has no counterpart here"
                    ))
                }
            };
            // nvme-cli prints some numbers as strings depending on version.
            let same = *val == ours
                || val
                    .as_str()
                    .is_some_and(|s| s == ours.to_string().trim_matches('"'));
            if !same {
                return Err(format!("entry {i} {key}: nvme-cli {val} ours {ours}"));
            }
            fields += 1;
        }
    }
    Ok(fields)
}

fn capture(name: &str, data: &[u8]) -> Vec<u8> {
    let path = fixtures::data_dir().join("kernel-captures").join(name);
    if std::env::var_os("STAS_BLESS").is_some()
        || !path.exists() && std::env::var_os("CI").is_none()
    {
        std::fs::write(&path, data).unwrap();
        println!("captured {}", path.display());
    }
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run the lab test once with STAS_BLESS=1)",
            path.display()
        )
    })
}

#[test]
fn lab_kernel_interface() {
    if lab::skip_requested("lab_kernel_interface") {
        return;
    }
    let lab = Lab::prepare().unwrap_or_else(|e| panic!("the lab cannot start: {e}"));
    let bins = build_static(&[("stas-tests", "stas-lab-guest"), ("tools", "stasadm")])
        .unwrap_or_else(|e| panic!("building the static binaries: {e}"));
    for b in &bins {
        assert_eq!(
            lab::elf_interpreter(b).unwrap(),
            None,
            "{} is not static",
            b.display()
        );
    }
    let nvme = host_binary_with_libs(Path::new("/usr/sbin/nvme")).unwrap_or_else(|e| {
        panic!("nvme-cli for the differential test: {e} (apt-get install nvme-cli)")
    });
    let guest = Guest::new("kernel", SCRIPT)
        .file(&bins[0], "/bin/stas-lab-guest")
        .file(&bins[1], "/bin/stasadm")
        .files(nvme)
        .timeout(Duration::from_secs(420));
    let run = lab.run(&guest).unwrap_or_else(|e| panic!("{e}"));
    run.print_results();
    println!(
        "boot {:?}, wall {:?}, kernel {}",
        run.boot_time,
        run.wall_time,
        lab.kernel_release()
    );
    run.require_checks(EXPECTED, "")
        .unwrap_or_else(|e| panic!("{e}"));

    // Differential against nvme-cli: every field of every entry.
    let ours_raw = run.blob("stasadm-port1.bin").expect("stasadm raw log page");
    let ours = DiscoveryLogPage::parse(&ours_raw).unwrap();
    let cli = run.blob("nvme-cli-port1.json").expect("nvme-cli JSON");
    let compared = differential(&ours, &cli)
        .unwrap_or_else(|e| panic!("{e}\nnvme-cli said: {}", String::from_utf8_lossy(&cli)));
    println!(
        "nvme-cli differential: {compared} fields of {} entries equal",
        ours.entries.len()
    );

    // Captures: the kernel's bytes kept as golden vectors; a new run must
    // decode to the same entries (GENCTR may differ).
    for name in ["dlp-port1.bin", "dlp-port2.bin"] {
        let fresh = run.blob(name).unwrap_or_else(|| panic!("blob {name}"));
        let kept = capture(&format!("nvmet-{name}"), &fresh);
        let a = DiscoveryLogPage::parse(&fresh).unwrap();
        let b = DiscoveryLogPage::parse(&kept).unwrap();
        assert_eq!(
            a.valid_entries().collect::<Vec<_>>(),
            b.valid_entries().collect::<Vec<_>>(),
            "{name} differs from the kept capture"
        );
    }
    let fresh = run.blob("identify-dc.bin").expect("identify blob");
    let kept = capture("nvmet-identify-dc.bin", &fresh);
    let (mut a, mut b) = (
        IdentifyController::parse(&fresh).unwrap(),
        IdentifyController::parse(&kept).unwrap(),
    );
    // The discovery subsystem's serial is random per boot, the firmware
    // revision is the kernel release.
    a.sn.clear();
    b.sn.clear();
    a.fr.clear();
    b.fr.clear();
    a.cntlid = 0;
    b.cntlid = 0;
    assert_eq!(a, b, "identify data differs from the kept capture");
}
