use super::v1::{ControllerRecordV1, LastKnownConfigV1};
use super::*;
use nvmf_proto::dlp::{DiscoveryLogEntry, Tsas, ENTRY_LEN};
use nvmf_proto::types::{AdrFam, EFlags, SecType, SubType, TrType};
use std::os::unix::fs::PermissionsExt;

/// A version-1 file written by the code before version 2 (a stafd file
/// holding [`v1_fixture`]).
const V1_FIXTURE: &[u8] = include_bytes!("testdata/v1-stafd.bin");

fn dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("stas-lkc-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn sample() -> LastKnownConfig {
    LastKnownConfig {
        controllers: vec![ControllerRecord {
            tid: vec![
                ("transport".into(), "tcp".into()),
                ("traddr".into(), "10.0.0.1".into()),
            ],
            origin: Some("configured".into()),
            log_pages: WireLogPage::encode(&fixture_entries()),
            device: Some("nvme0".into()),
        }],
    }
}

/// The log page of the first controller of [`V1_FIXTURE`].
fn fixture_entries() -> Vec<DiscoveryLogEntry> {
    let nvme = DiscoveryLogEntry {
        trtype: TrType::Tcp,
        adrfam: AdrFam::Ipv4,
        subtype: SubType::Nvme,
        traddr: "10.0.0.9".into(),
        trsvcid: "4420".into(),
        subnqn: "nqn.2014-08.org.example:array-a".into(),
        tsas: Tsas::tcp(SecType::None),
        ..DiscoveryLogEntry::default()
    };
    let referral = DiscoveryLogEntry {
        subtype: SubType::Referral,
        traddr: "10.0.0.2".into(),
        trsvcid: "8009".into(),
        subnqn: "nqn.2014-08.org.nvmexpress.discovery".into(),
        portid: 3,
        cntlid: 0xfffe,
        eflags: EFlags(2),
        tsas: Tsas::tcp(SecType::Tls13),
        ..nvme.clone()
    };
    vec![nvme, referral]
}

fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
    p.iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// What [`V1_FIXTURE`] holds, in the version-1 form.
fn v1_fixture() -> LastKnownConfigV1 {
    let dc = "nqn.2014-08.org.nvmexpress.discovery";
    LastKnownConfigV1 {
        controllers: vec![
            ControllerRecordV1 {
                tid: pairs(&[
                    ("transport", "tcp"),
                    ("traddr", "10.0.0.1"),
                    ("trsvcid", "8009"),
                    ("host-traddr", ""),
                    ("host-iface", ""),
                    ("subsysnqn", dc),
                ]),
                origin: Some("configured".into()),
                log_pages: fixture_entries().iter().map(crate::dlpe::to_dict).collect(),
                device: Some("nvme0".into()),
            },
            ControllerRecordV1 {
                tid: pairs(&[
                    ("transport", "tcp"),
                    ("traddr", "10.0.0.2"),
                    ("trsvcid", "8009"),
                    ("subsysnqn", dc),
                ]),
                origin: None,
                log_pages: Vec::new(),
                device: None,
            },
        ],
    }
}

/// Writes `value` as the version-1 code did (same header, version 1).
fn save_v1(f: &LkcFile, value: &LastKnownConfigV1) {
    let payload = bincode::encode_to_vec(value, config()).unwrap();
    let data = f.frame(FORMAT_VERSION_1, &payload).unwrap();
    nvmf_kernel::files::write_private(f.path(), &data).unwrap();
}

fn version_on_disk(f: &LkcFile) -> u32 {
    let data = std::fs::read(f.path()).unwrap();
    u32::from_le_bytes(data[8..12].try_into().unwrap())
}

#[test]
fn round_trip_with_mode_0600() {
    let d = dir("rt");
    let f = LkcFile::new(d.join(FILE_NAME), "stafd");
    assert_eq!(
        f.load::<LastKnownConfig>().unwrap(),
        None,
        "missing is nothing known"
    );
    f.save(&sample()).unwrap();
    assert_eq!(f.load::<LastKnownConfig>().unwrap(), Some(sample()));
    let mode = std::fs::metadata(f.path()).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    f.save(&LastKnownConfig::default()).unwrap();
    assert_eq!(
        f.load::<LastKnownConfig>().unwrap(),
        Some(LastKnownConfig::default())
    );
    let leftovers: Vec<_> = std::fs::read_dir(&d)
        .unwrap()
        .filter_map(Result::ok)
        .collect();
    assert_eq!(leftovers.len(), 1, "no temporary file left behind");
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn corrupt_truncated_and_foreign_files_are_reported() {
    let d = dir("bad");
    let path = d.join(FILE_NAME);
    let f = LkcFile::new(&path, "stafd");
    f.save(&sample()).unwrap();
    let good = std::fs::read(&path).unwrap();

    for cut in [0usize, 5, 12, 20, good.len() - 1] {
        std::fs::write(&path, &good[..cut]).unwrap();
        let e = f.load::<LastKnownConfig>().unwrap_err();
        assert!(
            matches!(e, LkcError::Corrupt { .. } | LkcError::Foreign { .. }),
            "cut {cut}: {e}"
        );
    }
    let mut flipped = good.clone();
    *flipped.last_mut().unwrap() ^= 0xff;
    std::fs::write(&path, &flipped).unwrap();
    assert!(f
        .load::<LastKnownConfig>()
        .unwrap_err()
        .to_string()
        .contains("checksum"));

    std::fs::write(&path, b"\x80\x04\x95pickle").unwrap();
    assert!(f
        .load::<LastKnownConfig>()
        .unwrap_err()
        .to_string()
        .contains("pickle"));

    std::fs::write(&path, &good).unwrap();
    let e = LkcFile::new(&path, "stacd")
        .load::<LastKnownConfig>()
        .unwrap_err();
    assert!(e.to_string().contains("written by stafd, not stacd"), "{e}");

    let mut newer = good;
    newer[8] = 9;
    std::fs::write(&path, &newer).unwrap();
    assert!(f
        .load::<LastKnownConfig>()
        .unwrap_err()
        .to_string()
        .contains("format version 9"));
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn missing_directory_is_an_io_error_naming_the_file() {
    let f = LkcFile::new("/nonexistent-stas-dir/x.bin", "stafd");
    let e = f.save(&sample()).unwrap_err();
    assert!(e.to_string().contains("/nonexistent-stas-dir/x.bin"), "{e}");
}

#[test]
fn default_path_follows_runtime_directory() {
    assert_eq!(
        LkcFile::default_path("stafd", None),
        PathBuf::from("/run/stafd/last-known-config.bin")
    );
    assert_eq!(
        LkcFile::default_path("stafd", Some("/run/stafd:/run/other")),
        PathBuf::from("/run/stafd/last-known-config.bin")
    );
}

proptest::proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
        let d = std::env::temp_dir().join(format!("stas-lkc-prop-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        let path = d.join("x.bin");
        let mut with_header = MAGIC.to_vec();
        with_header.extend_from_slice(&data);
        for bytes in [&data, &with_header] {
            std::fs::write(&path, bytes).unwrap();
            let f = LkcFile::new(&path, "stafd");
            let _ = f.load::<LastKnownConfig>();
            let _ = f.load_config();
        }
    }
}

#[test]
fn the_version_1_encoder_here_writes_what_the_old_code_wrote() {
    let d = dir("v1enc");
    let f = LkcFile::new(d.join(FILE_NAME), "stafd");
    save_v1(&f, &v1_fixture());
    assert_eq!(std::fs::read(f.path()).unwrap(), V1_FIXTURE);
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn version_1_is_read_converted_and_rewritten_as_version_2() {
    let d = dir("v1");
    let f = LkcFile::new(d.join(FILE_NAME), "stafd");
    nvmf_kernel::files::write_private(f.path(), V1_FIXTURE).unwrap();

    let read = f.load_config().unwrap().unwrap();
    assert_eq!(read.controllers.len(), 2);
    let (dc, other) = (&read.controllers[0], &read.controllers[1]);
    assert_eq!(dc.tid, v1_fixture().controllers[0].tid);
    assert_eq!(dc.origin.as_deref(), Some("configured"));
    assert_eq!(dc.device.as_deref(), Some("nvme0"));
    assert_eq!(dc.log_pages.entries(), (fixture_entries(), Vec::new()));
    let wire: Vec<u8> = fixture_entries()
        .iter()
        .flat_map(|e| e.emit().unwrap())
        .collect();
    assert_eq!(dc.log_pages.as_bytes(), wire, "stored as wire records");
    assert_eq!(
        (other.origin.as_deref(), other.device.as_deref()),
        (None, None)
    );
    assert!(other.log_pages.is_empty());

    assert_eq!(version_on_disk(&f), 1, "reading does not rewrite");
    let e = f.load::<LastKnownConfig>().unwrap_err();
    assert!(
        e.to_string()
            .contains("format version 1, this build reads 2"),
        "{e}"
    );

    // The next save writes version 2, which reads back the same.
    f.save(&read).unwrap();
    assert_eq!(version_on_disk(&f), FORMAT_VERSION);
    assert_eq!(FORMAT_VERSION, 2);
    assert_eq!(f.load_config().unwrap(), Some(read.clone()));
    assert_eq!(f.load::<LastKnownConfig>().unwrap(), Some(read));
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn version_1_dicts_that_describe_no_entry_are_dropped() {
    let d = dir("v1bad");
    let f = LkcFile::new(d.join(FILE_NAME), "stafd");
    let mut old = v1_fixture();
    old.controllers[0]
        .log_pages
        .insert(0, pairs(&[("trtype", "tcp")]));
    save_v1(&f, &old);
    let read = f.load_config().unwrap().unwrap();
    assert_eq!(
        read.controllers[0].log_pages.entries(),
        (fixture_entries(), Vec::new())
    );
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn wire_log_page_round_trips_and_reports_bad_records() {
    let page = WireLogPage::encode(&fixture_entries());
    assert_eq!(page.len(), 2);
    assert_eq!(page.as_bytes().len(), 2 * ENTRY_LEN);
    assert_eq!(page.entries(), (fixture_entries(), Vec::new()));
    assert_eq!(WireLogPage::from_bytes(page.as_bytes()), Some(page.clone()));
    assert_eq!(WireLogPage::from_bytes(&[0; ENTRY_LEN - 1]), None);
    assert!(WireLogPage::default().is_empty());

    // A record whose traddr is not ASCII is reported, the others kept.
    let mut bytes = page.as_bytes().to_vec();
    bytes[512] = 0xff;
    let (good, bad) = WireLogPage::from_bytes(&bytes).unwrap().entries();
    assert_eq!(good, fixture_entries()[1..]);
    assert_eq!(bad.len(), 1);
    assert_eq!(bad[0].index, 0);

    // An entry with no wire form (a text field too long) is left out.
    let mut too_long = fixture_entries();
    too_long[0].subnqn = "n".repeat(300);
    assert_eq!(
        WireLogPage::encode(&too_long).entries().0,
        fixture_entries()[1..]
    );
}

#[test]
fn a_log_page_of_partial_records_is_corrupt() {
    let d = dir("partial");
    let f = LkcFile::new(d.join(FILE_NAME), "stafd");
    // The payload of `sample()`, but with a log page of 1000 bytes.
    let short = (
        sample().controllers[0].tid.clone(),
        Some("configured".to_owned()),
        vec![0u8; 1000],
        None::<String>,
    );
    f.save(&vec![short]).unwrap();
    let e = f.load_config().unwrap_err();
    assert!(matches!(e, LkcError::Corrupt { .. }), "{e}");
    assert!(e.to_string().contains("not a whole number"), "{e}");
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn what_a_load_would_refuse_is_not_saved() {
    let d = dir("big");
    let f = LkcFile::new(d.join(FILE_NAME), "stafd");
    f.save(&sample()).unwrap();
    let e = f.save(&vec![0u8; MAX_PAYLOAD]).unwrap_err();
    assert!(matches!(e, LkcError::TooBig { .. }), "{e}");
    assert!(e.to_string().contains("not saved"), "{e}");
    assert_eq!(
        f.load_config().unwrap(),
        Some(sample()),
        "the old file stays"
    );
    std::fs::remove_dir_all(&d).ok();
}
