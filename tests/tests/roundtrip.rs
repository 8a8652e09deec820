//! Property tests across nvmf-proto: parse(emit(x)) == x for generated
//! values, emit(parse(b)) == b for canonical bytes, and no panic on any bytes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test may panic

use nvmf_proto::aen::AenEvent;
use nvmf_proto::dim::{DimData, DimEntry, EntityType, EntryFormat, ExtAttr};
use nvmf_proto::dlp::{
    emit_log_page, DiscoveryLogEntry, DiscoveryLogHeader, DiscoveryLogPage, Tsas,
};
use nvmf_proto::identify::IdentifyController;
use nvmf_proto::logpages::{GetLogPage, LidSupport, SupportedLogPages};
use nvmf_proto::types::{AdrFam, CntrlType, DcType, EFlags, SubType, TrType, Treq};
use proptest::prelude::*;

/// Printable ASCII with no leading/trailing space: what survives trimming.
fn text(max: usize) -> impl Strategy<Value = String> {
    proptest::string::string_regex(&format!(
        "([!-~]([ -~]{{0,{}}}[!-~])?)?",
        max.saturating_sub(2)
    ))
    .expect("valid regex")
    .prop_filter("fits", move |s| s.len() <= max)
}

fn tsas() -> impl Strategy<Value = Tsas> {
    proptest::collection::vec(any::<u8>(), 256).prop_map(|v| {
        let mut t = [0u8; 256];
        t.copy_from_slice(&v);
        Tsas(t)
    })
}

prop_compose! {
    fn entry()(trtype in any::<u8>(), adrfam in any::<u8>(), subtype in any::<u8>(), treq in any::<u8>(),
               portid in any::<u16>(), cntlid in any::<u16>(), asqsz in any::<u16>(), eflags in any::<u16>(),
               trsvcid in text(32), subnqn in text(256), traddr in text(256), tsas in tsas())
               -> DiscoveryLogEntry {
        let trtype = TrType::from(trtype);
        // An FC address is normalised on parse; keep generated ones normal.
        let traddr = if trtype == TrType::Fc { traddr.replace(',', ":") } else { traddr };
        DiscoveryLogEntry {
            trtype,
            adrfam: AdrFam::from(adrfam),
            subtype: SubType::from(subtype),
            treq: Treq(treq),
            portid,
            cntlid,
            asqsz,
            eflags: EFlags(eflags),
            trsvcid,
            subnqn,
            traddr,
            tsas,
        }
    }
}

/// Canonical entry bytes built field by field: NUL padding, zero reserved bytes.
fn canonical_entry_bytes() -> impl Strategy<Value = Vec<u8>> {
    (any::<[u8; 12]>(), text(32), text(256), text(256), tsas()).prop_map(
        |(head, svc, nqn, addr, tsas)| {
            let mut b = vec![0u8; 1024];
            b[..12].copy_from_slice(&head);
            let addr = if b[0] == 2 {
                addr.replace(',', ":")
            } else {
                addr
            };
            b[32..32 + svc.len()].copy_from_slice(svc.as_bytes());
            b[256..256 + nqn.len()].copy_from_slice(nqn.as_bytes());
            b[512..512 + addr.len()].copy_from_slice(addr.as_bytes());
            b[768..].copy_from_slice(&tsas.0);
            b
        },
    )
}

prop_compose! {
    fn identify()(n in any::<[u16; 9]>(), w in any::<[u32; 8]>(), b in any::<[u8; 11]>(),
                  sn in text(20), mn in text(40), fr in text(8), subnqn in text(256)) -> IdentifyController {
        IdentifyController {
            vid: n[0], ssvid: n[1], cntlid: n[2], oacs: n[3], kas: n[4],
            maxcmd: n[5], oncs: n[6], icdoff: n[7], ofcs: n[8],
            ver: w[0], oaes: w[1], ctratt: w[2], nn: w[3], sgls: w[4], ioccsz: w[5], iorcsz: w[6],
            cmic: b[0], mdts: b[1], cntrltype: CntrlType::from(b[2]), aerl: b[3],
            lpa: b[4], sqes: b[5], cqes: b[6], fcatt: b[7], msdbd: b[8],
            dctype: DcType::from(b[9]),
            sn, mn, fr, subnqn,
        }
    }
}

fn ext_attr() -> impl Strategy<Value = ExtAttr> {
    prop_oneof![
        any::<[u8; 16]>().prop_map(ExtAttr::HostId),
        text(64).prop_map(ExtAttr::SymName),
        (3u16.., proptest::collection::vec(any::<[u8; 4]>(), 0..8)).prop_map(|(kind, v)| {
            ExtAttr::Other {
                kind,
                value: v.concat(),
            }
        }),
    ]
}

prop_compose! {
    fn dim_entry(extended: bool)(head in any::<[u8; 4]>(), ids in any::<[u16; 3]>(), trsvcid in text(32),
                                 nqn in text(256), traddr in text(256), tsas in tsas(),
                                 attrs in proptest::collection::vec(ext_attr(), 0..4)) -> DimEntry {
        DimEntry {
            trtype: head[0].into(), adrfam: head[1].into(), subtype: head[2].into(), treq: Treq(head[3]),
            portid: ids[0], cntlid: ids[1], asqsz: ids[2],
            trsvcid, nqn, traddr, tsas,
            attrs: if extended { attrs } else { Vec::new() },
        }
    }
}

fn dim() -> impl Strategy<Value = DimData> {
    any::<bool>().prop_flat_map(|extended| {
        (
            any::<u16>(),
            any::<u8>(),
            any::<u16>(),
            text(223),
            text(256),
            text(64),
            proptest::collection::vec(dim_entry(extended), 0..4),
        )
            .prop_map(
                move |(etype, portlcl, ektype, eid, ename, ever, entries)| DimData {
                    entfmt: if extended {
                        EntryFormat::Extended
                    } else {
                        EntryFormat::Basic
                    },
                    etype: EntityType::from(etype),
                    portlcl,
                    ektype,
                    eid,
                    ename,
                    ever,
                    entries,
                },
            )
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn dlp_entry_value_round_trip(e in entry()) {
        let raw = e.emit().unwrap();
        prop_assert_eq!(DiscoveryLogEntry::parse(&raw).unwrap(), e);
    }

    #[test]
    fn dlp_entry_canonical_bytes_round_trip(raw in canonical_entry_bytes()) {
        let e = DiscoveryLogEntry::parse(&raw).unwrap();
        prop_assert_eq!(e.emit().unwrap().to_vec(), raw);
    }

    #[test]
    fn dlp_page_round_trip(genctr in any::<u64>(), recfmt in any::<u16>(),
                           entries in proptest::collection::vec(entry(), 0..6)) {
        let raw = emit_log_page(genctr, recfmt, &entries).unwrap();
        let page = DiscoveryLogPage::parse(&raw).unwrap();
        prop_assert_eq!(page.header, DiscoveryLogHeader { genctr, numrec: entries.len() as u64, recfmt });
        prop_assert!(!page.is_truncated());
        prop_assert_eq!(page.valid_entries().cloned().collect::<Vec<_>>(), entries);
        let again = emit_log_page(page.header.genctr, page.header.recfmt,
                                  &page.valid_entries().cloned().collect::<Vec<_>>()).unwrap();
        prop_assert_eq!(again, raw);
    }

    #[test]
    fn dlp_page_never_panics(raw in proptest::collection::vec(any::<u8>(), 0..5000)) {
        if let Ok(p) = DiscoveryLogPage::parse(&raw) {
            prop_assert!(p.entries.len() <= raw.len() / 1024);
            for e in p.valid_entries() {
                let _ = e.stas_dict();
                prop_assert!(e.emit().is_ok(), "a parsed entry always emits");
            }
        }
    }

    #[test]
    fn identify_round_trip(id in identify()) {
        let raw = id.emit().unwrap();
        let back = IdentifyController::parse(&raw).unwrap();
        prop_assert_eq!(&back, &id);
        prop_assert_eq!(back.emit().unwrap(), raw);
    }

    #[test]
    fn identify_never_panics(raw in proptest::collection::vec(any::<u8>(), 0..4200)) {
        if let Ok(id) = IdentifyController::parse(&raw) {
            prop_assert!(id.emit().is_ok());
        }
    }

    #[test]
    fn supported_log_pages_round_trip(words in proptest::collection::vec(any::<u32>(), 256)) {
        let raw: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
        let p = SupportedLogPages::parse(&raw).unwrap();
        prop_assert_eq!(p.emit(), raw);
        let mut q = SupportedLogPages::default();
        for (lid, w) in words.iter().enumerate() {
            q.set(u8::try_from(lid).unwrap(), LidSupport(*w));
        }
        prop_assert_eq!(q, p);
    }

    #[test]
    fn get_log_page_cdw_round_trip(lid in any::<u8>(), lsp in 0u8..0x80, rae in any::<bool>(), lsi in any::<u16>(),
                                   offset in any::<u64>(), dwords in 1u32..=0x4000_0000, uuid in 0u8..0x80, csi in any::<u8>()) {
        let c = GetLogPage { lid, lsp, rae, lsi, offset: offset & !3, len: dwords * 4, uuid_index: uuid, csi };
        prop_assert_eq!(GetLogPage::from_cdws(c.cdws().unwrap()), c);
        let chunks: Vec<_> = c.chunked(false).take(3).collect();
        prop_assert!(chunks.iter().all(|k| k.len <= 4096 && k.len > 0));
    }

    #[test]
    fn aen_round_trip(dw in any::<u32>()) {
        let e = AenEvent::from_dword(dw);
        prop_assert_eq!(e.to_dword().unwrap(), dw & 0x00ff_ff07);
        let text = format!("{dw:#08x}");
        prop_assert_eq!(AenEvent::from_uevent_value(&text).unwrap(), e);
    }

    #[test]
    fn aen_text_never_panics(s in "\\PC{0,16}") {
        let _ = AenEvent::from_uevent_value(&s);
    }

    #[test]
    fn dim_round_trip(d in dim()) {
        let raw = d.emit().unwrap();
        let back = DimData::parse(&raw).unwrap();
        prop_assert_eq!(&back, &d);
        prop_assert_eq!(back.emit().unwrap(), raw);
    }

    #[test]
    fn dim_never_panics(raw in proptest::collection::vec(any::<u8>(), 0..4000)) {
        if let Ok(d) = DimData::parse(&raw) {
            let _ = d.emit();
        }
    }
}
