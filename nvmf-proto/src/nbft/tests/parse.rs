//! The parser's rules (§13.3), on patched copies of the emitted fixture.

use super::*;
use std::net::Ipv6Addr;

#[test]
fn whole_table_errors() {
    let good = fixture().emit().unwrap();
    Nbft::parse(&good).unwrap();

    assert!(matches!(
        Nbft::parse(&[]),
        Err(ProtoError::TooShort {
            need: 128,
            got: 0,
            ..
        })
    ));
    assert!(matches!(
        Nbft::parse(&good[..127]),
        Err(ProtoError::TooShort { .. })
    ));
    let garbage: Vec<u8> = [0xca, 0xfe, 0xba, 0xbe].repeat(64);
    Nbft::parse(&garbage).unwrap_err();

    let mut b = good.clone();
    b[0] = b'X';
    assert!(matches!(
        reparse(&mut b),
        Err(ProtoError::InvalidValue {
            what: "NBFT signature",
            ..
        })
    ));

    let mut b = good.clone();
    b[20] ^= 0x55;
    assert!(matches!(
        Nbft::parse(&b),
        Err(ProtoError::Checksum {
            what: "NBFT table",
            ..
        })
    ));

    // Header length beyond the buffer (a truncated file).
    let b = &good[..good.len() - 1];
    assert!(matches!(Nbft::parse(b), Err(ProtoError::TooShort { .. })));
    // A longer buffer is fine: bytes after the table are ignored.
    let mut longer = good.clone();
    longer.extend_from_slice(&[0xff; 7]);
    assert_eq!(Nbft::parse(&longer).unwrap(), fixture());

    let mut b = good.clone();
    b[8] = 2;
    assert!(matches!(
        reparse(&mut b),
        Err(ProtoError::InvalidValue {
            what: "NBFT major revision",
            value: 2,
            ..
        })
    ));
    let mut b = good.clone();
    b[50] = 1;
    assert!(matches!(
        reparse(&mut b),
        Err(ProtoError::InvalidValue {
            what: "NBFT minor revision",
            ..
        })
    ));

    let mut b = good.clone();
    let heap_len = rd32(&b, 40);
    wr32(&mut b, 40, heap_len + 1);
    assert!(matches!(
        reparse(&mut b),
        Err(ProtoError::OutOfBounds {
            what: "NBFT heap",
            ..
        })
    ));
    let mut b = good.clone();
    wr32(&mut b, 36, u32::MAX as usize);
    assert!(matches!(
        reparse(&mut b),
        Err(ProtoError::OutOfBounds {
            what: "NBFT heap",
            ..
        })
    ));

    let mut b = good.clone();
    b[CONTROL_OFF] = 9;
    assert!(matches!(
        reparse(&mut b),
        Err(ProtoError::InvalidValue {
            what: "NBFT control descriptor structure id",
            ..
        })
    ));
}

#[test]
fn control_valid_clear_is_empty_success() {
    let mut b = fixture().emit().unwrap();
    b[CONTROL_OFF + 6] = 0;
    // Even a wrong control id does not matter then.
    b[CONTROL_OFF] = 0;
    let n = reparse(&mut b).unwrap().0;
    assert!(!n.valid);
    assert_eq!(n.host, NbftHost::default());
    assert!(
        n.hfis.is_empty()
            && n.subsystems.is_empty()
            && n.security.is_empty()
            && n.discovery.is_empty()
    );
    assert_eq!(n.header, fixture().header);
    // And the empty form round-trips.
    let raw = n.emit().unwrap();
    assert_eq!(raw.len(), 128);
    assert_eq!(Nbft::parse(&raw).unwrap(), n);
}

#[test]
fn host_descriptor_rules() {
    let good = fixture().emit().unwrap();
    // Host NQN missing.
    let mut b = good.clone();
    wr16(&mut b, HOST_OFF + 22, 0);
    assert!(matches!(
        reparse(&mut b),
        Err(ProtoError::InvalidValue {
            what: "NBFT host NQN",
            ..
        })
    ));
    // Host NQN outside the heap.
    let mut b = good.clone();
    wr32(&mut b, HOST_OFF + 18, 0);
    assert!(matches!(
        reparse(&mut b),
        Err(ProtoError::InvalidValue {
            what: "NBFT host NQN",
            ..
        })
    ));
    let mut b = good.clone();
    wr32(&mut b, HOST_OFF + 18, good.len() - 3);
    assert!(matches!(
        reparse(&mut b),
        Err(ProtoError::OutOfBounds {
            what: "NBFT host NQN",
            ..
        })
    ));
    // Host descriptor outside the table, wrong id, valid flag clear.
    let mut b = good.clone();
    wr32(&mut b, CONTROL_OFF + 8, good.len() - 31);
    assert!(matches!(
        reparse(&mut b),
        Err(ProtoError::OutOfBounds {
            what: "NBFT host descriptor",
            ..
        })
    ));
    let mut b = good.clone();
    b[HOST_OFF] = 3;
    reparse(&mut b).unwrap_err();
    let mut b = good.clone();
    b[HOST_OFF + 1] &= !1;
    reparse(&mut b).unwrap_err();
    // Non-printable NQN.
    let mut b = good.clone();
    let nqn = rd32(&b, HOST_OFF + 18);
    b[nqn + 3] = 0x07;
    assert!(matches!(
        reparse(&mut b),
        Err(ProtoError::NonPrintable {
            field: "NBFT host NQN",
            ..
        })
    ));
    // Primary admin host bits.
    let mut b = good.clone();
    b[HOST_OFF + 1] = 0x01 | (2 << 3);
    let h = reparse(&mut b).unwrap().0.host;
    assert_eq!(h.primary_admin_host_flag, PrimaryAdminHostFlag::Selected);
    assert!(!h.host_id_configured && !h.host_nqn_configured);
}

#[test]
fn heap_strings_end_at_nul_or_length() {
    let good = fixture().emit().unwrap();
    let nqn = "nqn.1988-11.com.dell:PowerEdge.R760.1234567";
    // Length shorter than the text: no NUL within `length` bytes, the
    // string is exactly `length` bytes (lenient reading of rule 5).
    let mut b = good.clone();
    wr16(&mut b, HOST_OFF + 22, nqn.len() - 3);
    assert_eq!(reparse(&mut b).unwrap().0.host.nqn, nqn[..nqn.len() - 3]);
    // A NUL inside the object ends the string early.
    let mut b = good.clone();
    let off = rd32(&b, HOST_OFF + 18);
    b[off + 4] = 0;
    assert_eq!(reparse(&mut b).unwrap().0.host.nqn, "nqn.");
    // A string ending right at the heap end, with no NUL after it.
    let mut b = good.clone();
    let at = append_heap(&mut b, b"nqn.2014-08.org.example:end");
    wr32(&mut b, HOST_OFF + 18, at);
    wr16(&mut b, HOST_OFF + 22, 27);
    assert_eq!(
        reparse(&mut b).unwrap().0.host.nqn,
        "nqn.2014-08.org.example:end"
    );
    // Surrounding spaces are content, not padding.
    let mut x = fixture();
    x.host.nqn = " nqn.x ".into();
    assert_eq!(Nbft::parse(&x.emit().unwrap()).unwrap().host.nqn, " nqn.x ");
}

#[test]
fn hfi_wrong_id_is_skipped_with_its_dependents() {
    let mut b = fixture().emit().unwrap();
    let h = hfi_off(&b, 0);
    b[h] = 4;
    let (n, issues) = reparse(&mut b).unwrap();
    assert_eq!(n.hfis, vec![None]);
    // The SSNS need their primary HFI; the discovery entry loses its HFI.
    assert_eq!(n.subsystems, vec![None, None]);
    assert_eq!(n.discovery[0].as_ref().unwrap().hfi_index, None);
    assert_eq!(issues.len(), 3);
    assert_eq!(issues[0].structure, NbftStructure::Hfi);
    assert_eq!(issues[0].number, 1);
    assert!(issues[0].to_string().starts_with("NBFT HFI descriptor 1: "));
    assert!(issues[1].to_string().contains("NBFT SSNS descriptor 1"));
}

#[test]
fn hfi_rules() {
    let good = fixture().emit().unwrap();
    let info = |b: &[u8]| rd32(b, hfi_off(b, 0) + 16);
    // Wrong transport type, valid flag clear.
    for (byte, val) in [(3usize, 2u8), (2, 0)] {
        let mut b = good.clone();
        let h = hfi_off(&b, 0);
        b[h + byte] = val;
        assert_eq!(reparse(&mut b).unwrap().0.hfis, vec![None]);
    }
    // TCP info: wrong id, wrong version, valid flag clear.
    for (byte, val) in [(0usize, 8u8), (1, 2), (6, 0x06)] {
        let mut b = good.clone();
        let i = info(&b);
        b[i + byte] = val;
        assert_eq!(reparse(&mut b).unwrap().0.hfis, vec![None], "byte {byte}");
    }
    // Index mismatch in the TCP info is tolerated.
    let mut b = good.clone();
    let i = info(&b);
    wr16(&mut b, i + 4, 9);
    assert_eq!(reparse(&mut b).unwrap().0, fixture());
    // TCP info shorter than its structure, or outside the heap.
    let mut b = good.clone();
    let h = hfi_off(&b, 0);
    wr16(&mut b, h + 20, 127);
    assert_eq!(reparse(&mut b).unwrap().0.hfis, vec![None]);
    let mut b = good.clone();
    wr32(&mut b, h + 16, 64);
    assert_eq!(reparse(&mut b).unwrap().0.hfis, vec![None]);
    // DHCP server only with the override flag.
    let mut b = good.clone();
    let i = info(&b);
    b[i + 6] = 0x03;
    let n = reparse(&mut b).unwrap().0;
    let hfi = n.hfis[0].as_ref().unwrap();
    assert!(!hfi.dhcp_override);
    assert_eq!(hfi.dhcp_server_ipaddr, None);
    // Index out of range: skipped.
    let mut b = good.clone();
    b[h + 1] = 2;
    let (n, issues) = reparse(&mut b).unwrap();
    assert_eq!(n.hfis, vec![None]);
    assert!(matches!(
        issues[0].error,
        ProtoError::InvalidValue {
            what: "NBFT HFI descriptor",
            value: 2,
            ..
        }
    ));
}

#[test]
fn ipv6_and_mapped_addresses() {
    let mut x = fixture();
    let h = x.hfis[0].as_mut().unwrap();
    h.ipaddr = "fd00::1".parse().unwrap();
    h.gateway_ipaddr = IpAddr::V6(Ipv6Addr::UNSPECIFIED);
    let n = Nbft::parse(&x.emit().unwrap()).unwrap();
    assert_eq!(n, x);
    let h = n.hfis[0].as_ref().unwrap();
    assert_eq!(h.ipaddr.to_string(), "fd00::1");
    assert_eq!(h.gateway_ipaddr.to_string(), "::");
    // IPv4 is written mapped.
    let raw = fixture().emit().unwrap();
    let info = rd32(&raw, hfi_off(&raw, 0) + 16);
    assert_eq!(
        &raw[info + 20..info + 36],
        &Ipv4Addr::new(100, 71, 245, 232).to_ipv6_mapped().octets()
    );
    // A mapped IPv6 value would not come back as given.
    let mut x = fixture();
    x.hfis[0].as_mut().unwrap().ipaddr = "::ffff:1.2.3.4".parse().unwrap();
    assert!(matches!(x.emit(), Err(ProtoError::BadText { .. })));
}

#[test]
fn ssns_rules() {
    let good = fixture().emit().unwrap();
    // Primary HFI index naming no HFI: that SSNS is skipped, the other kept.
    let mut b = good.clone();
    let s = ssns_off(&b, 0);
    b[s + 46] = 5;
    let (n, issues) = reparse(&mut b).unwrap();
    assert_eq!(n.subsystems[0], None);
    assert_eq!(n.subsystems[1], fixture().subsystems[1]);
    assert!(matches!(
        issues[0].error,
        ProtoError::InvalidValue {
            what: "NBFT SSNS primary HFI index",
            value: 5,
            ..
        }
    ));
    let mut b = good.clone();
    b[s + 46] = 0;
    assert_eq!(reparse(&mut b).unwrap().0.subsystems[0], None);
    // Mandatory heap objects: traddr, trsvcid, NQN.
    for obj in [10usize, 16, 54] {
        let mut b = good.clone();
        wr16(&mut b, s + obj + 4, 0);
        assert_eq!(
            reparse(&mut b).unwrap().0.subsystems[0],
            None,
            "object at {obj}"
        );
    }
    // A heap object pointing outside the heap skips the descriptor.
    let mut b = good.clone();
    wr32(&mut b, s + 54, good.len() - 2);
    let (n, issues) = reparse(&mut b).unwrap();
    assert_eq!(n.subsystems[0], None);
    assert!(matches!(
        issues[0].error,
        ProtoError::OutOfBounds {
            what: "NBFT SSNS subsystem NQN",
            ..
        }
    ));
    // Wrong id, valid flag clear, wrong transport.
    for (byte, val) in [(0usize, 6u8), (3, 0x10), (5, 1)] {
        let mut b = good.clone();
        b[s + byte] = val;
        assert_eq!(
            reparse(&mut b).unwrap().0.subsystems[0],
            None,
            "byte {byte}"
        );
    }
    // Digest flags.
    let mut b = good.clone();
    wr16(&mut b, s + 6, 0x07);
    let n = reparse(&mut b).unwrap().0;
    let ss = n.subsystems[0].as_ref().unwrap();
    assert!(ss.pdu_header_digest_required && ss.data_digest_required);
}

#[test]
fn secondary_hfis_deduplicated_primary_removed() {
    let mut x = fixture();
    let mut h2 = fixture_hfi();
    h2.index = 2;
    h2.mac = [2; 6];
    let mut h3 = fixture_hfi();
    h3.index = 3;
    x.hfis = vec![Some(fixture_hfi()), Some(h2), Some(h3)];
    x.subsystems[0].as_mut().unwrap().hfi_indexes = vec![1, 0];
    let raw = x.emit().unwrap();
    assert_eq!(Nbft::parse(&raw).unwrap(), x);

    let mut b = raw.clone();
    // [3, 3, 2, 0 (none), 9 (no such HFI), 2, 3]; primary is 2.
    let list = append_heap(&mut b, &[3, 3, 2, 0, 9, 2, 3]);
    let s = ssns_off(&b, 0);
    wr32(&mut b, s + 48, list);
    wr16(&mut b, s + 52, 7);
    let n = reparse(&mut b).unwrap().0;
    assert_eq!(n.subsystems[0].as_ref().unwrap().hfi_indexes, vec![1, 2]);
    // Secondary list outside the heap: the SSNS is skipped.
    wr32(&mut b, s + 48, 0);
    assert_eq!(reparse(&mut b).unwrap().0.subsystems[0], None);
}

#[test]
fn ssns_extended_info_rules() {
    let mut x = fixture();
    {
        let s = x.subsystems[0].as_mut().unwrap();
        s.asqsz = 32;
        s.dhcp_root_path = Some("iscsi:10.0.0.1::::iqn.x".into());
    }
    let good = x.emit().unwrap();
    let n = Nbft::parse(&good).unwrap();
    assert_eq!(n, x);
    assert_eq!(n.subsystems[0].as_ref().unwrap().asqsz, 32);
    let s = ssns_off(&good, 0);
    let ext = rd32(&good, s + 60);
    assert_eq!(rd32(&good, ext + 4), 0x03);

    // ASQSZ flag clear: ASQSZ reads as 0, the rest is kept.
    let mut b = good.clone();
    wr32(&mut b, ext + 4, 0x01);
    let n = reparse(&mut b).unwrap().0;
    let ss = n.subsystems[0].as_ref().unwrap();
    assert_eq!((ss.asqsz, ss.controller_id), (0, 5));
    assert!(ss.dhcp_root_path.is_some());

    // Mismatching SSNS index, wrong id, wrong version, valid clear:
    // the extended info is ignored, the SSNS kept.
    for (byte, val) in [(2usize, 2u8), (0, 8), (1, 2), (4, 0x02)] {
        let mut b = good.clone();
        b[ext + byte] = val;
        let (n, issues) = reparse(&mut b).unwrap();
        let ss = n.subsystems[0].as_ref().unwrap();
        assert!(!ss.extended_info, "byte {byte}");
        assert_eq!(
            (ss.controller_id, ss.asqsz, ss.dhcp_root_path.as_deref()),
            (0, 0, None)
        );
        assert_eq!(ss.subsys_nqn, fixture_ssns(1, "1.1.1.1", 0).subsys_nqn);
        assert_eq!(issues.len(), 1);
        assert_eq!(issues[0].structure, NbftStructure::SubsystemExtInfo);
    }
    // Read only when SSNS flag bit 4 is set.
    let mut b = good.clone();
    b[s + 3] &= !0x10;
    let (n, issues) = reparse(&mut b).unwrap();
    assert!(issues.is_empty());
    let ss = n.subsystems[0].as_ref().unwrap();
    assert!(!ss.extended_info);
    assert_eq!(ss.controller_id, 0);
    // Too short an object.
    let mut b = good.clone();
    wr16(&mut b, s + 64, 17);
    assert!(
        !reparse(&mut b).unwrap().0.subsystems[0]
            .as_ref()
            .unwrap()
            .extended_info
    );
}

#[test]
fn discovery_rules() {
    let good = fixture().emit().unwrap();
    let d = disc_off(&good, 0);
    for (byte, val) in [(0usize, 5u8), (1, 0)] {
        let mut b = good.clone();
        b[d + byte] = val;
        assert_eq!(reparse(&mut b).unwrap().0.discovery, vec![None]);
    }
    for obj in [6usize, 12] {
        let mut b = good.clone();
        wr16(&mut b, d + obj + 4, 0);
        assert_eq!(reparse(&mut b).unwrap().0.discovery, vec![None]);
    }
    // Unknown HFI: kept, without an HFI.
    let mut b = good.clone();
    b[d + 3] = 7;
    assert_eq!(
        reparse(&mut b).unwrap().0.discovery[0]
            .as_ref()
            .unwrap()
            .hfi_index,
        None
    );
    // Security index kept raw.
    let mut b = good.clone();
    b[d + 4] = 3;
    assert_eq!(
        reparse(&mut b).unwrap().0.discovery[0]
            .as_ref()
            .unwrap()
            .security_index,
        Some(3)
    );
}

#[test]
fn descriptors_placed_by_index_and_outside_table() {
    let mut x = fixture();
    let mut d2 = x.discovery[0].clone().unwrap();
    d2.index = 2;
    d2.uri = "nvme+tcp://[FE80::1]/".into();
    x.discovery.push(Some(d2));
    let good = x.emit().unwrap();
    assert_eq!(Nbft::parse(&good).unwrap(), x);
    // Swap the two descriptors: list positions follow the index field.
    let mut b = good.clone();
    let (a, c) = (disc_off(&b, 0), disc_off(&b, 1));
    let first = b[a..a + 32].to_vec();
    b.copy_within(c..c + 32, a);
    b[c..c + 32].copy_from_slice(&first);
    assert_eq!(reparse(&mut b).unwrap().0, x);
    // Duplicate index: the first wins.
    let mut b = good.clone();
    b[c + 2] = 1;
    let (n, issues) = reparse(&mut b).unwrap();
    assert_eq!(n.discovery, vec![x.discovery[0].clone(), None]);
    assert_eq!(issues[0].number, 2);
    // An array running past the table end.
    let mut b = good.clone();
    wr32(&mut b, CONTROL_OFF + 40, good.len() - 40);
    let (n, issues) = reparse(&mut b).unwrap();
    assert_eq!(n.discovery[1], None);
    assert!(matches!(
        issues.last().unwrap().error,
        ProtoError::TooShort { .. }
    ));
    // None positions round-trip as zeroed descriptors.
    let mut y = x.clone();
    y.discovery[0] = None;
    y.hfis.push(None);
    assert_eq!(Nbft::parse(&y.emit().unwrap()).unwrap(), y);
}

#[test]
fn security_descriptors_kept_raw() {
    let mut x = fixture();
    x.security = vec![
        None,
        Some(NbftSecurity {
            index: 2,
            flags: 0x8001,
            secret_type: 1,
            channel_algorithms: b"TLS".to_vec(),
            auth_protocols: vec![],
            cipher_suites: vec![0, 1, 0xff],
            dh_groups: vec![],
            hash_functions: b"sha256".to_vec(),
            key_path: b"/key".to_vec(),
        }),
    ];
    let raw = x.emit().unwrap();
    assert_eq!(Nbft::parse(&raw).unwrap(), x);
    let s = desc_off(&raw, 32, SECURITY_LEN, 1);
    let mut b = raw.clone();
    b[s] = 0;
    assert_eq!(reparse(&mut b).unwrap().0.security, vec![None, None]);
}
