//! Hand-built discovery log pages (fixtures::dlp) decoded by nvmf-proto.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test may panic

use fixtures::dlp;
use nvmf_proto::dlp::{DiscoveryLogEntry, DiscoveryLogPage};
use nvmf_proto::types::{AdrFam, EFlags, RdmaPrType, SecType, SubType, TrType, Treq};
use nvmf_proto::ProtoError;

fn page(name: &str) -> DiscoveryLogPage {
    let g = dlp::get(name).unwrap_or_else(|| panic!("no golden vector {name}"));
    DiscoveryLogPage::parse(&g.bytes).unwrap()
}

fn only_entry(name: &str) -> DiscoveryLogEntry {
    let p = page(name);
    assert!(!p.is_truncated(), "{name}");
    assert_eq!(p.entries.len(), 1, "{name}");
    p.entries[0].clone().unwrap()
}

#[test]
fn empty_page() {
    let p = page("empty");
    assert_eq!(p.header.genctr, 1);
    assert_eq!(p.header.numrec, 0);
    assert!(p.entries.is_empty());
    p.check_complete().unwrap();
}

#[test]
fn space_padding_is_stripped() {
    let e = only_entry("space-padded");
    assert_eq!(e.traddr, "192.168.100.10");
    assert_eq!(e.trsvcid, "4420");
    assert_eq!(e.subnqn, "nqn.2014-08.org.example:subsys-a");
}

#[test]
fn garbage_after_nul_is_ignored() {
    let e = only_entry("garbage-after-nul");
    assert_eq!(e.traddr, "192.168.100.10");
    assert_eq!(e.trsvcid, "4420");
    assert_eq!(e.subnqn, "nqn.2014-08.org.example:subsys-a");
}

#[test]
fn unterminated_fields_keep_their_full_width() {
    let e = only_entry("unterminated");
    assert_eq!(e.trsvcid.len(), 32);
    assert_eq!(e.subnqn.len(), 256);
    assert!(e.subnqn.starts_with("nqn.2014-08.org.example:xxx"));
    assert_eq!(e.traddr, "a".repeat(256));
    assert_eq!(e.trtype, TrType::Loop);
    assert_eq!(e.adrfam, AdrFam::IntraHost);
    let d = e.stas_dict();
    assert_eq!(d[0], ("trtype", "loop".to_owned()));
    assert_eq!(d[1], ("adrfam", "254".to_owned()));
    assert!(d.iter().all(|(k, _)| *k != "tsas"), "no tsas for loop");
}

#[test]
fn fc_comma_repaired() {
    let e = only_entry("fc-comma");
    assert_eq!(e.trtype, TrType::Fc);
    assert_eq!(e.adrfam, AdrFam::Fc);
    assert_eq!(e.traddr, "nn-0x200000109b579ef4:pn-0x100000109b579ef4");
}

#[test]
fn unknown_codes_are_kept_and_spelled_as_numbers() {
    let e = only_entry("unknown-codes");
    assert_eq!(e.trtype, TrType::Other(9));
    assert_eq!(e.adrfam, AdrFam::Other(7));
    assert_eq!(e.subtype, SubType::Other(9));
    assert_eq!(e.treq, Treq(0x13));
    assert_eq!(e.eflags, EFlags(0x8007));
    let d: Vec<_> = e.stas_dict().into_iter().map(|(_, v)| v).collect();
    assert_eq!(&d[..2], ["9", "7"]);
    assert_eq!(d[5], "9");
    assert_eq!(d[6], "19");
    assert_eq!(d.last().unwrap(), "32775");
    assert_eq!(e.trtype.cli_str(), "unrecognized");
    assert_eq!(
        e.eflags.cli_str(),
        "explicit discovery connections, duplicate discovery information, no cdc connectivity"
    );
    assert_eq!(e.treq.cli_str(), "unrecognized");
}

#[test]
fn numrec_beyond_buffer_is_truncated_with_complete_entries() {
    let p = page("numrec-beyond-buffer");
    assert_eq!(p.header.numrec, 5);
    assert!(p.is_truncated());
    assert_eq!(p.valid_entries().count(), 2);
    assert_eq!(p.entry_errors().count(), 0);
    assert!(matches!(
        p.check_complete(),
        Err(ProtoError::TooShort { .. })
    ));
}

#[test]
fn ipv6_referral_current_tls_rdma() {
    let p = page("ipv6-and-referral");
    let e: Vec<_> = p.valid_entries().cloned().collect();
    assert_eq!(e.len(), 5);
    assert_eq!(e[0].adrfam, AdrFam::Ipv6);
    assert_eq!(e[0].traddr, "fd00:1::10");
    assert_eq!(e[1].traddr, "fe80::1%eth0");
    assert_eq!(e[1].tsas.sectype(), SecType::Tls13);
    assert_eq!(e[1].treq.stas_str(), "required");
    assert_eq!(e[2].subtype, SubType::Referral);
    assert!(e[2].eflags.contains(EFlags::EPCSD) && e[2].eflags.contains(EFlags::DUPRETINFO));
    assert_eq!(e[3].subtype, SubType::CurrentDiscovery);
    assert_eq!(e[3].subtype.stas_str(), "discovery");
    assert_eq!(e[3].subtype.cli_str(), "current discovery subsystem");
    assert_eq!(e[4].trtype, TrType::Rdma);
    assert_eq!(e[4].tsas.rdma_fields().prtype, RdmaPrType::RoceV2);
    let tsas: Vec<_> = e
        .iter()
        .map(|x| {
            x.stas_dict()
                .into_iter()
                .find(|(k, _)| *k == "tsas")
                .map(|(_, v)| v)
        })
        .collect();
    assert_eq!(tsas[0].as_deref(), Some("{'sectype': 'none'}"));
    assert_eq!(tsas[1].as_deref(), Some("{'sectype': 'tls1.3'}"));
    assert_eq!(
        tsas[4].as_deref(),
        Some("{'qptype': 'connected', 'prtype': 'rocev2', 'cms': 'cm'}")
    );
}

#[test]
fn one_bad_entry_does_not_hide_the_others() {
    let p = page("bad-entry-among-good");
    assert_eq!(p.entries.len(), 3);
    let good: Vec<_> = p.valid_entries().map(|e| e.traddr.as_str()).collect();
    assert_eq!(good, ["192.168.100.10", "192.168.100.12"]);
    let err = p.entry_errors().next().unwrap();
    assert_eq!(err.index, 1);
    let text = err.to_string();
    assert!(
        text.contains("entry 1") && text.contains("traddr") && text.contains("0x1b"),
        "{text}"
    );
}

/// Every canonical (NUL-padded) vector emits back byte for byte.
#[test]
fn canonical_vectors_emit_byte_exact() {
    let raw = dlp::page(10, 2, &[dlp::TCP_NVME, dlp::TCP_NVME]);
    let p = DiscoveryLogPage::parse(&raw).unwrap();
    let entries: Vec<_> = p.valid_entries().cloned().collect();
    let out = nvmf_proto::dlp::emit_log_page(p.header.genctr, p.header.recfmt, &entries).unwrap();
    assert_eq!(out, raw);
}

/// The files under fixtures/data/dlp are the builders' output (set
/// STAS_BLESS=1 to rewrite them after changing a builder).
#[test]
fn data_files_match_builders() {
    let dir = fixtures::data_dir().join("dlp");
    for g in dlp::all() {
        let path = dir.join(format!("{}.bin", g.name));
        if std::env::var_os("STAS_BLESS").is_some() {
            std::fs::write(&path, &g.bytes).unwrap();
        }
        let on_disk = std::fs::read(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (run with STAS_BLESS=1)", path.display()));
        assert_eq!(
            on_disk,
            g.bytes,
            "{} differs from fixtures::dlp::{}",
            path.display(),
            g.name
        );
    }
}
