//! Property tests: emit/parse round trips, and no panic on arbitrary or
//! mutated tables.

use super::*;
use crate::nbft::parse::{ip_from_bytes, nonzero};
use proptest::prelude::*;

fn arb_ip() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<[u8; 4]>().prop_map(IpAddr::from),
        any::<[u8; 16]>().prop_map(ip_from_bytes),
    ]
}

fn arb_text() -> impl Strategy<Value = String> {
    "[ -~]{1,24}"
}

fn arb_hfi() -> impl Strategy<Value = NbftHfi> {
    (
        (
            any::<u32>(),
            any::<[u8; 6]>(),
            any::<u16>(),
            any::<u8>(),
            arb_ip(),
            any::<u8>(),
            arb_ip(),
        ),
        (
            any::<u16>(),
            arb_ip(),
            arb_ip(),
            proptest::option::of(arb_ip()),
            proptest::option::of(arb_text()),
            any::<bool>(),
        ),
    )
        .prop_map(
            |((sbdf, mac, vlan, origin, ip, prefix, gw), (metric, dns1, dns2, dhcp, name, def))| {
                NbftHfi {
                    index: 0,
                    trtype: TrType::Tcp,
                    pci_sbdf: sbdf,
                    mac,
                    vlan,
                    ip_origin: origin,
                    ipaddr: ip,
                    subnet_mask_prefix: prefix,
                    gateway_ipaddr: gw,
                    route_metric: metric,
                    primary_dns_ipaddr: dns1,
                    secondary_dns_ipaddr: dns2,
                    dhcp_override: dhcp.is_some(),
                    dhcp_server_ipaddr: dhcp,
                    host_name: name,
                    this_hfi_is_default_route: def,
                }
            },
        )
}

fn arb_ssns() -> impl Strategy<Value = NbftSubsystem> {
    (
        (
            any::<u16>(),
            arb_ip(),
            arb_text(),
            any::<u16>(),
            any::<u32>(),
            any::<u8>(),
            any::<[u8; 16]>(),
        ),
        (
            arb_text(),
            proptest::collection::vec(any::<usize>(), 1..4),
            any::<u8>(),
            any::<u8>(),
            any::<(bool, bool)>(),
            proptest::option::of((any::<u16>(), any::<u16>(), proptest::option::of(arb_text()))),
        ),
    )
        .prop_map(
            |(
                (flags, traddr, trsvcid, port, nsid, nid_type, nid),
                (nqn, seeds, dc, sec, (hd, dd), ext),
            )| {
                NbftSubsystem {
                    index: 0,
                    flags: flags & !(SSNS_VALID | SSNS_EXT_INFO_IN_USE),
                    trtype: TrType::Tcp,
                    traddr,
                    trsvcid,
                    subsys_port_id: port,
                    nsid,
                    nid_type: NidType::from(nid_type),
                    nid,
                    subsys_nqn: nqn,
                    hfi_indexes: seeds,
                    primary_discovery_ctrl_index: nonzero(dc),
                    security_index: nonzero(sec),
                    pdu_header_digest_required: hd,
                    data_digest_required: dd,
                    extended_info: ext.is_some(),
                    controller_id: ext.as_ref().map_or(0, |e| e.0),
                    asqsz: ext.as_ref().map_or(0, |e| e.1),
                    dhcp_root_path: ext.and_then(|e| e.2),
                }
            },
        )
}

fn arb_bytes() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..12)
}

fn arb_security() -> impl Strategy<Value = NbftSecurity> {
    (
        any::<u16>(),
        any::<u8>(),
        arb_bytes(),
        arb_bytes(),
        arb_bytes(),
        arb_bytes(),
        arb_bytes(),
        arb_bytes(),
    )
        .prop_map(|(flags, st, a, b, c, d, e, f)| NbftSecurity {
            index: 0,
            flags,
            secret_type: st,
            channel_algorithms: a,
            auth_protocols: b,
            cipher_suites: c,
            dh_groups: d,
            hash_functions: e,
            key_path: f,
        })
}

fn arb_discovery() -> impl Strategy<Value = NbftDiscovery> {
    (
        proptest::option::of(any::<usize>()),
        any::<u8>(),
        arb_text(),
        arb_text(),
    )
        .prop_map(|(hfi, sec, uri, nqn)| NbftDiscovery {
            index: 0,
            hfi_index: hfi,
            security_index: nonzero(sec),
            uri,
            nqn,
        })
}

/// Makes generated parts consistent: indexes = position + 1, HFI
/// references (generated as seeds) mapped onto present HFIs.
fn fixup(mut n: Nbft) -> Nbft {
    for (p, h) in n.hfis.iter_mut().enumerate() {
        if let Some(h) = h {
            h.index = u8::try_from(p + 1).unwrap();
        }
    }
    let avail: Vec<usize> = n
        .hfis
        .iter()
        .enumerate()
        .filter(|(_, h)| h.is_some())
        .map(|(p, _)| p)
        .collect();
    for (p, slot) in n.subsystems.iter_mut().enumerate() {
        if avail.is_empty() {
            *slot = None;
        }
        if let Some(s) = slot {
            s.index = u16::try_from(p + 1).unwrap();
            let mut refs = Vec::new();
            for seed in &s.hfi_indexes {
                let pos = avail[seed % avail.len()];
                if !refs.contains(&pos) {
                    refs.push(pos);
                }
            }
            s.hfi_indexes = refs;
        }
    }
    for (p, s) in n.security.iter_mut().enumerate() {
        if let Some(s) = s {
            s.index = u8::try_from(p + 1).unwrap();
        }
    }
    for (p, d) in n.discovery.iter_mut().enumerate() {
        if let Some(d) = d {
            d.index = u8::try_from(p + 1).unwrap();
            d.hfi_index = d
                .hfi_index
                .filter(|_| !avail.is_empty())
                .map(|seed| avail[seed % avail.len()]);
        }
    }
    n
}

fn arb_nbft() -> impl Strategy<Value = Nbft> {
    let header = (
        any::<[u8; 6]>(),
        any::<[u8; 8]>(),
        any::<u32>(),
        any::<[u8; 4]>(),
        any::<u32>(),
        arb_bytes(),
    )
        .prop_map(
            |(oem_id, oem_table_id, oem_revision, creator_id, creator_revision, sig)| NbftHeader {
                oem_id,
                oem_table_id,
                oem_revision,
                creator_id,
                creator_revision,
                major_revision: 1,
                minor_revision: 0,
                driver_dev_path_sig: sig,
            },
        );
    let host = (
        any::<[u8; 16]>(),
        arb_text(),
        any::<bool>(),
        any::<bool>(),
        0u8..4,
    )
        .prop_map(|(id, nqn, a, b, pah)| NbftHost {
            id,
            nqn,
            host_id_configured: a,
            host_nqn_configured: b,
            primary_admin_host_flag: PrimaryAdminHostFlag::from_bits(pah),
        });
    (
        header,
        host,
        proptest::collection::vec(proptest::option::weighted(0.8, arb_hfi()), 0..3),
        proptest::collection::vec(proptest::option::weighted(0.8, arb_ssns()), 0..4),
        proptest::collection::vec(proptest::option::of(arb_security()), 0..2),
        proptest::collection::vec(proptest::option::weighted(0.8, arb_discovery()), 0..2),
    )
        .prop_map(|(header, host, hfis, subsystems, security, discovery)| {
            fixup(Nbft {
                header,
                valid: true,
                host,
                hfis,
                subsystems,
                security,
                discovery,
            })
        })
}

proptest! {
    // Failures are reported with their minimal input; no regression file
    // is written into the source tree.
    #![proptest_config(ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn prop_emit_parse_round_trip(x in arb_nbft()) {
        let raw = x.emit().unwrap();
        prop_assert_eq!(sum(&raw), 0);
        let (n, issues) = Nbft::parse_with_issues(&raw).unwrap();
        // Only the zeroed descriptors emitted for `None` places are reported.
        let nones = x.hfis.iter().filter(|h| h.is_none()).count()
            + x.subsystems.iter().filter(|s| s.is_none()).count()
            + x.security.iter().filter(|s| s.is_none()).count()
            + x.discovery.iter().filter(|d| d.is_none()).count();
        prop_assert_eq!(issues.len(), nones, "{:?}", issues);
        prop_assert_eq!(&n, &x);
        prop_assert_eq!(n.emit().unwrap(), raw);
    }

    #[test]
    fn prop_parse_arbitrary_bytes_never_panics(buf in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = Nbft::parse(&buf);
    }

    /// Arbitrary bytes behind a header that passes rule 1, so the
    /// descriptor walkers see garbage.
    #[test]
    fn prop_parse_garbage_behind_valid_header(
        mut buf in proptest::collection::vec(any::<u8>(), 128..2048),
        heap in any::<(u16, u16)>(),
    ) {
        let len = buf.len();
        buf[0..4].copy_from_slice(SIGNATURE);
        wr32(&mut buf, 4, len);
        buf[8] = 1;
        buf[50] = 0;
        let start = usize::from(heap.0) % len;
        wr32(&mut buf, 36, start);
        wr32(&mut buf, 40, usize::from(heap.1) % (len - start + 1));
        buf[CONTROL_OFF] = 1;
        buf[CONTROL_OFF + 6] |= 1;
        fix_checksum(&mut buf);
        let _ = Nbft::parse_with_issues(&buf);
    }

    #[test]
    fn prop_parse_mutated_table_never_panics(
        x in arb_nbft(),
        muts in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..16),
        recheck in any::<bool>(),
    ) {
        let mut raw = x.emit().unwrap();
        for (at, v) in muts {
            let len = raw.len();
            raw[at % len] = v;
        }
        if recheck {
            fix_checksum(&mut raw);
        }
        if let Ok(n) = Nbft::parse(&raw) {
            // Whatever parses is well-formed enough to describe.
            let _ = format!("{n:?}");
        }
    }
}
