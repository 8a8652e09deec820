//! Bytes the Linux kernel target (nvmet, Debian 6.1 cloud kernel) sent in
//! the lab, decoded offline: golden vectors for nvmf-proto.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test may panic

use nvmf_proto::dlp::{emit_log_page, DiscoveryLogPage};
use nvmf_proto::identify::IdentifyController;
use nvmf_proto::types::{AdrFam, CntrlType, DcType, SubType, TrType};
use nvmf_proto::WELL_KNOWN_DISCOVERY_NQN;

fn read(name: &str) -> Vec<u8> {
    let p = fixtures::data_dir().join("kernel-captures").join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn nvmet_port1_log_page() {
    let raw = read("nvmet-dlp-port1.bin");
    let p = DiscoveryLogPage::parse(&raw).unwrap();
    p.check_complete().unwrap();
    assert_eq!(p.entry_errors().count(), 0);
    let nvme: Vec<_> = p
        .valid_entries()
        .filter(|e| e.subtype == SubType::Nvme)
        .collect();
    assert_eq!(nvme.len(), 3);
    for (i, e) in nvme.iter().enumerate() {
        assert_eq!(e.subnqn, format!("nqn.2024-01.io.stas.lab:sub{}", i + 1));
        assert_eq!((e.trtype, e.adrfam), (TrType::Tcp, AdrFam::Ipv4));
        assert_eq!(
            (e.traddr.as_str(), e.trsvcid.as_str(), e.portid),
            ("127.0.0.1", "8009", 1)
        );
        assert_eq!((e.cntlid, e.asqsz), (0xffff, 32));
    }
    let referral: Vec<_> = p
        .valid_entries()
        .filter(|e| e.subtype == SubType::Referral)
        .collect();
    assert_eq!(referral.len(), 1);
    assert_eq!(
        (referral[0].traddr.as_str(), referral[0].adrfam),
        ("::1", AdrFam::Ipv6)
    );
    assert_eq!(referral[0].subnqn, WELL_KNOWN_DISCOVERY_NQN);
    // nvmet NUL-pads its strings and zeroes reserved bytes: our emitter
    // reproduces the kernel's page byte for byte.
    let entries: Vec<_> = p.valid_entries().cloned().collect();
    assert_eq!(
        emit_log_page(p.header.genctr, p.header.recfmt, &entries).unwrap(),
        raw
    );
}

#[test]
fn nvmet_port2_log_page_is_ipv6() {
    let p = DiscoveryLogPage::parse(&read("nvmet-dlp-port2.bin")).unwrap();
    let nvme: Vec<_> = p
        .valid_entries()
        .filter(|e| e.subtype == SubType::Nvme)
        .collect();
    assert_eq!(nvme.len(), 2);
    assert!(nvme
        .iter()
        .all(|e| e.adrfam == AdrFam::Ipv6 && e.traddr == "::1" && e.portid == 2));
}

#[test]
fn nvmet_identify_controller() {
    let id = IdentifyController::parse(&read("nvmet-identify-dc.bin")).unwrap();
    assert_eq!(id.cntrltype, CntrlType::Discovery);
    assert_eq!(id.dctype, DcType::None);
    assert_eq!(id.subnqn, WELL_KNOWN_DISCOVERY_NQN);
    assert!(id.supports_discovery_log_change());
    assert!(!id.accepts_registration());
    assert_eq!(id.mn, "Linux");
}
