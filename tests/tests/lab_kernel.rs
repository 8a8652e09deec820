//! nvmf-kernel against a real Linux kernel: one lab VM boot runs the
//! `kernel` scenario of stas-lab-guest (nvmet target + host on loopback).
//! The boot happens once per test process, whichever test asks first (the
//! others wait for it), and every test here reads its result:
//!
//! * one test per check the scenario reports (`check::*`), failing with that
//!   check's message and the end of the guest's log;
//! * every expected check was reported and no other, and the scenario
//!   exited 0;
//! * our discovery log compared with nvme-cli's on the same target;
//! * the captured bytes kept as golden vectors under
//!   fixtures/data/kernel-captures (STAS_BLESS=1 rewrites them).
//!
//! When the lab cannot start, every test fails with the reason, saying what
//! to install; `STAS_SKIP_LAB=1` skips them all.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test may panic

use std::panic;
use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;

use nvmf_proto::dlp::DiscoveryLogPage;
use nvmf_proto::identify::IdentifyController;
use nvmf_proto::types::TrType;
use stas_tests::lab::{self, build_static, host_binary_with_libs, Guest, GuestRun, Lab};

/// Declares [`EXPECTED`] and one `check::<test>` test per name, in the
/// order the scenario reports them.
macro_rules! checks {
    ($($test:ident => $name:literal,)*) => {
        /// Every check the scenario must report, and pass, in order.
        const EXPECTED: &[&str] = &[$($name),*];

        /// One test per check the `kernel` scenario reports.
        mod check {
            $(
                #[test]
                fn $test() {
                    super::require_check($name);
                }
            )*
        }
    };
}

checks! {
    nvmet_setup => "nvmet-setup",
    options_probe => "options-probe",
    dc_connect => "dc-connect",
    dc_sysfs => "dc-sysfs",
    identify_dc => "identify-dc",
    dlp_content => "dlp-content",
    supported_log_pages_refused_typed => "supported-log-pages-refused-typed",
    dim_refused_typed => "dim-refused-typed",
    uevent_stream => "uevent-stream",
    aen_1 => "aen-1",
    aen_2 => "aen-2",
    dc_ipv6 => "dc-ipv6",
    stasadm_reuse => "stasadm-reuse",
    stasadm_connect_disconnect => "stasadm-connect-disconnect",
    stasadm_connect_refused => "stasadm-connect-refused",
    nvme_cli_discover => "nvme-cli-discover",
    io_connect => "io-connect",
    bad_option_typed => "bad-option-typed",
    unsupported_option_dropped => "unsupported-option-dropped",
    dlp_300 => "dlp-300",
    dlp_genctr_retry => "dlp-genctr-retry",
    dlp_genctr_churn_typed => "dlp-genctr-churn-typed",
    uevent_enobufs_lost => "uevent-enobufs-lost",
}

const SCRIPT: &str = r#"
. /lab.sh
/bin/stas-lab-guest kernel
rc=$?
for f in /tmp/blobs/*; do lab_put "$(basename "$f")" "$f"; done
exit $rc
"#;

/// The shared boot: the scenario's run, or why the lab could not give one.
static BOOT: OnceLock<Result<GuestRun, String>> = OnceLock::new();

/// Whether `STAS_SKIP_LAB=1` asks lab tests to be skipped (said once).
static SKIP: OnceLock<bool> = OnceLock::new();

/// The run of the `kernel` scenario every test reads; `None` when the lab
/// tests are to be skipped. The guest boots once, for the first test that
/// asks; the others wait for it (a panic while booting is kept as the reason,
/// so no second guest is started). When the lab cannot start, this fails
/// the calling test with the reason.
fn boot() -> Option<&'static GuestRun> {
    if *SKIP.get_or_init(|| lab::skip_requested("lab_kernel (all its tests)")) {
        return None;
    }
    let boot = BOOT.get_or_init(|| {
        panic::catch_unwind(boot_once).unwrap_or_else(|p| {
            let why = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_else(|| "a panic".into());
            Err(format!("booting the kernel scenario panicked: {why}"))
        })
    });
    match boot {
        Ok(run) => Some(run),
        Err(e) => panic!("{e}"),
    }
}

/// Builds the guest's binaries and boots it (called once, by [`boot`]).
fn boot_once() -> Result<GuestRun, String> {
    let lab = Lab::prepare().map_err(|e| format!("the lab cannot start: {e}"))?;
    let bins = build_static(&[("stas-tests", "stas-lab-guest"), ("tools", "stasadm")])
        .map_err(|e| format!("building the static binaries: {e}"))?;
    for b in &bins {
        let interpreter = lab::elf_interpreter(b).map_err(|e| e.to_string())?;
        if interpreter.is_some() {
            return Err(format!(
                "{} is not static (interpreter {interpreter:?})",
                b.display()
            ));
        }
    }
    let [guest_bin, stasadm] = bins.as_slice() else {
        return Err(format!("build_static returned {bins:?}"));
    };
    let nvme = host_binary_with_libs(Path::new("/usr/sbin/nvme")).map_err(|e| {
        format!("nvme-cli for the differential test: {e} (apt-get install nvme-cli)")
    })?;
    let guest = Guest::new("kernel", SCRIPT)
        .file(guest_bin, "/bin/stas-lab-guest")
        .file(stasadm, "/bin/stasadm")
        .files(nvme)
        .timeout(Duration::from_secs(420));
    let run = lab.run(&guest).map_err(|e| e.to_string())?;
    run.print_results();
    println!(
        "boot {:?}, wall {:?}, kernel {}",
        run.boot_time,
        run.wall_time,
        lab.kernel_release()
    );
    Ok(run)
}

/// The end of what the guest printed (blobs left out) and of its kernel
/// console, how the run ended and where its whole log is.
fn log_tail(run: &GuestRun) -> String {
    fn last(lines: Vec<&str>, n: usize) -> String {
        lines
            .get(lines.len().saturating_sub(n)..)
            .unwrap_or_default()
            .join("\n")
    }
    let output: Vec<&str> = run
        .output
        .lines()
        .filter(|l| !l.starts_with("@@blob"))
        .collect();
    format!(
        "exit code {:?}{} after {:?} (boot {:?}); log {}\n\
         ---- scenario output (last 40 lines, blobs left out) ----\n{}\n\
         ---- kernel console (last 20 lines) ----\n{}",
        run.exit_code,
        if run.timed_out { " (timed out)" } else { "" },
        run.wall_time,
        run.boot_time,
        run.log.display(),
        last(output, 40),
        last(run.console.lines().collect(), 20),
    )
}

/// Check `name` was reported and passed; else fails with its message and
/// the end of the guest's log.
fn require_check(name: &str) {
    let Some(run) = boot() else { return };
    let reports: Vec<_> = run
        .checks()
        .into_iter()
        .filter(|c| c.name == name)
        .collect();
    let details: Vec<String> = run
        .tagged("detail")
        .into_iter()
        .filter_map(|d| {
            let (n, text) = d.split_once(' ').unwrap_or((d.as_str(), ""));
            (n == name).then(|| text.to_owned())
        })
        .collect();
    let details = details.join("\n");
    assert!(
        !reports.is_empty(),
        "check {name} was not reported by the scenario\n{}",
        log_tail(run)
    );
    if let Some(rc) = reports.iter().find_map(|c| c.failed) {
        panic!("check {name} failed ({rc}): {details}\n{}", log_tail(run));
    }
    println!("{name}: ok {details}");
}

#[test]
fn every_expected_check_reported_and_no_other() {
    let Some(run) = boot() else { return };
    let reported: Vec<String> = run.checks().into_iter().map(|c| c.name).collect();
    let missing: Vec<&str> = EXPECTED
        .iter()
        .copied()
        .filter(|e| !reported.iter().any(|r| r == e))
        .collect();
    let unknown: Vec<&str> = reported
        .iter()
        .map(String::as_str)
        .filter(|r| !EXPECTED.contains(r))
        .collect();
    assert!(
        missing.is_empty() && unknown.is_empty(),
        "checks that did not run {missing:?}, checks not expected {unknown:?}\n{}",
        log_tail(run)
    );
}

#[test]
fn scenario_exits_zero() {
    let Some(run) = boot() else { return };
    let failed: Vec<String> = run
        .checks()
        .into_iter()
        .filter(|c| c.failed.is_some())
        .map(|c| c.name)
        .collect();
    assert_eq!(
        run.exit_code,
        Some(0),
        "the scenario did not exit 0 (failed checks {failed:?})\n{}",
        log_tail(run)
    );
}

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

/// Differential against nvme-cli: every field of every entry.
#[test]
fn nvme_cli_differential() {
    let Some(run) = boot() else { return };
    let ours_raw = run.blob("stasadm-port1.bin").expect("stasadm raw log page");
    let ours = DiscoveryLogPage::parse(&ours_raw).unwrap();
    let cli = run.blob("nvme-cli-port1.json").expect("nvme-cli JSON");
    let compared = differential(&ours, &cli)
        .unwrap_or_else(|e| panic!("{e}\nnvme-cli said: {}", String::from_utf8_lossy(&cli)));
    println!(
        "nvme-cli differential: {compared} fields of {} entries equal",
        ours.entries.len()
    );
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

/// The kernel's log page bytes kept as a golden vector; a new run must
/// decode to the same entries (GENCTR may differ).
fn golden_dlp(name: &str) {
    let Some(run) = boot() else { return };
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

#[test]
fn golden_dlp_port1() {
    golden_dlp("dlp-port1.bin");
}

#[test]
fn golden_dlp_port2() {
    golden_dlp("dlp-port2.bin");
}

/// The kernel's Identify Controller data of the DC kept as a golden vector.
#[test]
fn golden_identify_dc() {
    let Some(run) = boot() else { return };
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
