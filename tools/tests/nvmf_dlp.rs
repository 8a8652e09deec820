//! The nvmf-dlp decoder run as a program on the golden vectors.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test may panic

use std::process::Command;

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_nvmf-dlp"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

fn vector(name: &str) -> String {
    fixtures::data_dir()
        .join("dlp")
        .join(format!("{name}.bin"))
        .display()
        .to_string()
}

#[test]
fn table_lists_every_entry() {
    let (code, out, err) = run(&[&vector("ipv6-and-referral")]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("Discovery log page"), "{out}");
    assert!(out.contains("genctr 8, numrec 5"), "{out}");
    assert_eq!(out.lines().count(), 7, "{out}");
    assert!(
        out.contains("fd00:1::10") && out.contains("referral") && out.contains("fe80::1%eth0"),
        "{out}"
    );
}

#[test]
fn cli_names_use_nvme_cli_spellings() {
    let (code, out, _) = run(&["--cli-names", &vector("ipv6-and-referral")]);
    assert_eq!(code, 0);
    assert!(
        out.contains("discovery subsystem referral") && out.contains("current discovery subsystem"),
        "{out}"
    );
}

#[test]
fn json_is_the_nvme_stas_dlpe_shape() {
    let (code, out, _) = run(&["--json", &vector("space-padded")]);
    assert_eq!(code, 0);
    let expected = r#"[
  {
    "trtype": "tcp",
    "adrfam": "ipv4",
    "traddr": "192.168.100.10",
    "trsvcid": "4420",
    "subnqn": "nqn.2014-08.org.example:subsys-a",
    "subtype": "nvme",
    "treq": "not specified",
    "tsas": "{'sectype': 'none'}",
    "portid": "1",
    "cntlid": "65535",
    "asqsz": "32",
    "eflags": "0"
  }
]
"#;
    assert_eq!(out, expected);
}

#[test]
fn bad_entries_reported_good_ones_printed_exit_3() {
    let (code, out, err) = run(&["--json", &vector("bad-entry-among-good")]);
    assert_eq!(code, 3);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 2);
    assert!(err.contains("discovery log entry 1: traddr"), "{err}");
}

#[test]
fn truncated_page_reported_exit_3() {
    let (code, out, err) = run(&[&vector("numrec-beyond-buffer")]);
    assert_eq!(code, 3);
    assert_eq!(out.lines().count(), 4, "{out}");
    assert!(err.contains("truncated"), "{err}");
}

#[test]
fn unreadable_or_headerless_input_exit_1() {
    let (code, _, err) = run(&["/nonexistent/page.bin"]);
    assert_eq!(code, 1);
    assert!(err.contains("cannot read /nonexistent/page.bin"), "{err}");
    let dir = std::env::temp_dir().join(format!("nvmf-dlp-test-{}", std::process::id()));
    std::fs::write(&dir, b"short").unwrap();
    let (code, _, err) = run(&[dir.to_str().unwrap()]);
    std::fs::remove_file(&dir).ok();
    assert_eq!(code, 1);
    assert!(err.contains("is not a discovery log page"), "{err}");
}
