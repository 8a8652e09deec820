//! Tests of the NBFT parser and emitter: the upstream fixture and the
//! helpers that patch emitted tables (shared with the submodules), the
//! emitter's refusals, discovery URI splitting and the text formatters.

use super::*;
use std::net::Ipv4Addr;

fn v4(s: &str) -> IpAddr {
    IpAddr::V4(s.parse::<Ipv4Addr>().unwrap())
}

fn unhex<const N: usize>(s: &str) -> [u8; N] {
    let s: String = s.chars().filter(|c| *c != '-' && *c != ':').collect();
    let mut out = [0u8; N];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap();
    }
    out
}

fn fixture_hfi() -> NbftHfi {
    NbftHfi {
        index: 1,
        trtype: TrType::Tcp,
        // segment 0, bus 0x40, device 0, function 0
        pci_sbdf: 0x4000,
        mac: unhex("b0:26:28:e8:7c:0e"),
        vlan: 0,
        ip_origin: 82,
        ipaddr: v4("100.71.245.232"),
        subnet_mask_prefix: 24,
        gateway_ipaddr: v4("100.71.245.254"),
        route_metric: 500,
        primary_dns_ipaddr: v4("100.64.0.5"),
        secondary_dns_ipaddr: v4("100.64.0.6"),
        dhcp_server_ipaddr: Some(v4("100.71.245.254")),
        host_name: None,
        this_hfi_is_default_route: true,
        dhcp_override: true,
    }
}

fn fixture_ssns(index: u16, traddr: &str, controller_id: u16) -> NbftSubsystem {
    NbftSubsystem {
        index,
        flags: 0,
        trtype: TrType::Tcp,
        traddr: v4(traddr),
        trsvcid: "4420".into(),
        subsys_port_id: 0,
        nsid: 148,
        nid_type: NidType::Nguid,
        nid: unhex("c82404ed9c15f53b8ccf0968002e0fca"),
        subsys_nqn: "nqn.1988-11.com.dell:powerstore:00:2a64abf1c5b81F6C4549".into(),
        hfi_indexes: vec![0],
        primary_discovery_ctrl_index: None,
        security_index: None,
        pdu_header_digest_required: false,
        data_digest_required: false,
        extended_info: true,
        controller_id,
        asqsz: 0,
        dhcp_root_path: None,
    }
}

/// The values of the upstream `test/NBFT` fixture (§13.5).
fn fixture() -> Nbft {
    Nbft {
        header: NbftHeader {
            oem_id: *b"DELL  ",
            oem_table_id: *b"PE_SC3  ",
            oem_revision: 1,
            creator_id: *b"DELL",
            creator_revision: 1,
            ..NbftHeader::default()
        },
        valid: true,
        host: NbftHost {
            id: unhex("44454c4c-3400-1036-8038-b2c04f313233"),
            nqn: "nqn.1988-11.com.dell:PowerEdge.R760.1234567".into(),
            host_id_configured: true,
            host_nqn_configured: true,
            primary_admin_host_flag: PrimaryAdminHostFlag::NotIndicated,
        },
        hfis: vec![Some(fixture_hfi())],
        subsystems: vec![
            Some(fixture_ssns(1, "100.71.103.48", 5)),
            Some(fixture_ssns(2, "100.71.103.49", 4166)),
        ],
        security: vec![],
        discovery: vec![Some(NbftDiscovery {
            index: 1,
            hfi_index: Some(0),
            security_index: None,
            uri: "nvme+tcp://100.71.103.50:8009/".into(),
            nqn: "nqn.2014-08.org.nvmexpress.discovery".into(),
        })],
    }
}

/// The emitted fixture is kept under fixtures/data/fuzz-seeds/nbft as a
/// sample table and fuzz seed (STAS_BLESS=1 rewrites it).
#[test]
fn fixture_file_matches() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/data/fuzz-seeds/nbft/dell-r760.bin");
    let bytes = fixture().emit().unwrap();
    if std::env::var_os("STAS_BLESS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &bytes).unwrap();
    }
    let on_disk = std::fs::read(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run with STAS_BLESS=1)", path.display()));
    assert_eq!(
        on_disk,
        bytes,
        "{} is stale (run with STAS_BLESS=1)",
        path.display()
    );
}

fn sum(buf: &[u8]) -> u8 {
    buf.iter().fold(0u8, |a, &b| a.wrapping_add(b))
}

fn fix_checksum(buf: &mut [u8]) {
    let len = (u32::from_le_bytes(buf[4..8].try_into().unwrap()) as usize).min(buf.len());
    buf[9] = 0;
    buf[9] = 0u8.wrapping_sub(sum(&buf[..len]));
}

fn rd32(buf: &[u8], off: usize) -> usize {
    u32::from_le_bytes(buf[off..off + 4].try_into().unwrap()) as usize
}

fn wr32(buf: &mut [u8], off: usize, v: usize) {
    buf[off..off + 4].copy_from_slice(&u32::try_from(v).unwrap().to_le_bytes());
}

fn wr16(buf: &mut [u8], off: usize, v: usize) {
    buf[off..off + 2].copy_from_slice(&u16::try_from(v).unwrap().to_le_bytes());
}

/// Offset of descriptor `slot` of the array whose control list offset is at `ctl`.
fn desc_off(buf: &[u8], ctl: usize, stride: usize, slot: usize) -> usize {
    rd32(buf, CONTROL_OFF + ctl) + slot * stride
}
fn hfi_off(buf: &[u8], slot: usize) -> usize {
    desc_off(buf, 16, HFI_LEN, slot)
}
fn ssns_off(buf: &[u8], slot: usize) -> usize {
    desc_off(buf, 24, SSNS_LEN, slot)
}
fn disc_off(buf: &[u8], slot: usize) -> usize {
    desc_off(buf, 40, DISCOVERY_LEN, slot)
}

/// Appends `bytes` to the heap (which `emit` puts last), fixes the
/// lengths and returns their table offset.
fn append_heap(buf: &mut Vec<u8>, bytes: &[u8]) -> usize {
    let off = buf.len();
    buf.extend_from_slice(bytes);
    let len = buf.len();
    wr32(buf, 4, len);
    let heap_len = rd32(buf, 40) + bytes.len();
    wr32(buf, 40, heap_len);
    off
}

/// Re-checksums and parses.
fn reparse(buf: &mut [u8]) -> Result<(Nbft, Vec<NbftIssue>), ProtoError> {
    fix_checksum(buf);
    Nbft::parse_with_issues(buf)
}

#[test]
fn fixture_values_round_trip() {
    let x = fixture();
    let raw = x.emit().unwrap();
    assert_eq!(sum(&raw), 0, "checksum byte makes the sum 0");
    assert_eq!(&raw[0..4], b"NBFT");
    assert_eq!(rd32(&raw, 4), raw.len());
    assert_eq!(raw[64 + 23], 1, "one HFI");
    assert_eq!(raw[64 + 31], 2, "two SSNS");
    assert_eq!(raw[64 + 39], 0, "no security descriptor");
    assert_eq!(raw[64 + 47], 1, "one discovery descriptor");
    assert_eq!(raw[HOST_OFF + 1], 0x07, "host flags as in the fixture");

    let (n, issues) = Nbft::parse_with_issues(&raw).unwrap();
    assert!(issues.is_empty(), "{issues:?}");
    assert!(n.valid);
    assert_eq!(n.host.nqn, "nqn.1988-11.com.dell:PowerEdge.R760.1234567");
    assert_eq!(n.host.id_text(), "44454c4c-3400-1036-8038-b2c04f313233");
    assert!(n.host.host_id_configured && n.host.host_nqn_configured);
    assert_eq!(n.host.primary_admin_host_flag.as_str(), "not indicated");

    assert_eq!(n.hfis.len(), 1);
    let h = n.hfis[0].as_ref().unwrap();
    assert_eq!(h.trtype.stas_str(), "tcp");
    assert_eq!(h.pcidev(), "0:40:0.0");
    assert_eq!(h.mac_addr(), "b0:26:28:e8:7c:0e");
    assert_eq!((h.vlan, h.ip_origin), (0, 82));
    assert_eq!(h.ipaddr.to_string(), "100.71.245.232");
    assert_eq!(h.subnet_mask_prefix, 24);
    assert_eq!(h.gateway_ipaddr.to_string(), "100.71.245.254");
    assert_eq!(h.route_metric, 500);
    assert_eq!(h.primary_dns_ipaddr.to_string(), "100.64.0.5");
    assert_eq!(h.secondary_dns_ipaddr.to_string(), "100.64.0.6");
    assert_eq!(h.dhcp_server_ipaddr.unwrap().to_string(), "100.71.245.254");
    assert!(h.this_hfi_is_default_route && h.dhcp_override);
    assert_eq!(h.host_name, None);

    assert_eq!(n.subsystems.len(), 2);
    for (s, (traddr, cntlid)) in n
        .subsystems
        .iter()
        .zip([("100.71.103.48", 5), ("100.71.103.49", 4166)])
    {
        let s = s.as_ref().unwrap();
        assert_eq!(s.trtype.stas_str(), "tcp");
        assert_eq!(s.traddr.to_string(), traddr);
        assert_eq!(s.trsvcid, "4420");
        assert_eq!(s.subsys_port_id, 0);
        assert_eq!(s.nsid, 148);
        assert_eq!(s.nid_type.as_str(), Some("nguid"));
        assert_eq!(s.nid_text().unwrap(), "c82404ed9c15f53b8ccf0968002e0fca");
        assert_eq!(
            s.subsys_nqn,
            "nqn.1988-11.com.dell:powerstore:00:2a64abf1c5b81F6C4549"
        );
        assert_eq!(s.controller_id, cntlid);
        assert_eq!(s.asqsz, 0);
        assert_eq!(s.hfi_indexes, vec![0]);
        assert!(!s.pdu_header_digest_required && !s.data_digest_required);
        assert!(s.extended_info);
        assert_eq!(s.dhcp_root_path, None);
    }
    assert!(n.security.is_empty());
    let d = n.discovery[0].as_ref().unwrap();
    assert_eq!(d.hfi_index, Some(0));
    assert_eq!(d.security_index, None);
    assert_eq!(d.nqn, "nqn.2014-08.org.nvmexpress.discovery");
    assert_eq!(d.uri, "nvme+tcp://100.71.103.50:8009/");
    assert_eq!(
        Nbft::discovery_uri_parts(&d.uri),
        Some(("tcp".into(), "100.71.103.50".into(), Some(8009)))
    );

    assert_eq!(n, x);
    assert_eq!(n.emit().unwrap(), raw);
}

/// The fixture's raw quirks: secondary HFI list `[1]` (the primary) and
/// extended info flags 0x01 with a raw ASQSZ of 32.
#[test]
fn fixture_raw_quirks() {
    let mut raw = fixture().emit().unwrap();
    let list = append_heap(&mut raw, &[1]);
    for slot in 0..2 {
        let s = ssns_off(&raw, slot);
        wr32(&mut raw, s + 48, list);
        wr16(&mut raw, s + 52, 1);
        let ext = rd32(&raw, s + 60);
        wr32(&mut raw, ext + 4, 0x01);
        wr16(&mut raw, ext + 10, 32);
    }
    let (n, issues) = reparse(&mut raw).unwrap();
    assert!(issues.is_empty());
    assert_eq!(n, fixture());
}

#[test]
fn emit_refuses_what_would_not_read_back() {
    let bad: &[fn(&mut Nbft)] = &[
        |x| x.header.major_revision = 2,
        |x| x.host.nqn.clear(),
        |x| x.host.nqn.push('\0'),
        |x| x.host.nqn.push('\n'),
        |x| x.hfis[0].as_mut().unwrap().index = 2,
        |x| x.hfis[0].as_mut().unwrap().trtype = TrType::Rdma,
        |x| x.hfis[0].as_mut().unwrap().dhcp_server_ipaddr = None,
        |x| x.hfis[0].as_mut().unwrap().host_name = Some(String::new()),
        |x| x.subsystems[0].as_mut().unwrap().hfi_indexes = vec![],
        |x| x.subsystems[0].as_mut().unwrap().hfi_indexes = vec![1],
        |x| x.subsystems[0].as_mut().unwrap().hfi_indexes = vec![0, 0],
        |x| x.subsystems[0].as_mut().unwrap().flags = 1,
        |x| x.subsystems[0].as_mut().unwrap().extended_info = false,
        |x| x.subsystems[0].as_mut().unwrap().trsvcid = "44\u{e9}".into(),
        |x| x.subsystems[0].as_mut().unwrap().security_index = Some(0),
        |x| x.discovery[0].as_mut().unwrap().hfi_index = Some(1),
        |x| x.discovery[0].as_mut().unwrap().uri.clear(),
        |x| x.valid = false,
        |x| x.subsystems[0].as_mut().unwrap().nid_type = NidType::Other(2),
        |x| x.hfis = vec![None; 256],
    ];
    for (i, f) in bad.iter().enumerate() {
        let mut x = fixture();
        f(&mut x);
        assert!(x.emit().is_err(), "case {i} should be refused");
    }
}

#[test]
fn uri_parts() {
    let p = Nbft::discovery_uri_parts;
    assert_eq!(
        p("nvme+tcp://100.71.103.50:8009/"),
        Some(("tcp".into(), "100.71.103.50".into(), Some(8009)))
    );
    assert_eq!(
        p("NVME+TCP://Host.Example/"),
        Some(("tcp".into(), "host.example".into(), None))
    );
    assert_eq!(
        p("nvme+tcp://[FE80::1%eth0]:4420"),
        Some(("tcp".into(), "fe80::1%eth0".into(), Some(4420)))
    );
    assert_eq!(
        p("nvme+tcp://[fd00::1]/x"),
        Some(("tcp".into(), "fd00::1".into(), None))
    );
    assert_eq!(
        p("nvme+tcp://user@10.0.0.1:8009?x#y"),
        Some(("tcp".into(), "10.0.0.1".into(), Some(8009)))
    );
    assert_eq!(
        p("nvme+tcp://10.0.0.1:/"),
        Some(("tcp".into(), "10.0.0.1".into(), None))
    );
    assert_eq!(p("nvme+tcp://10.0.0.1:99999/"), None);
    assert_eq!(p("nvme+tcp://10.0.0.1:80a/"), None);
    assert_eq!(p("nvme://10.0.0.1/"), None);
    assert_eq!(p("nvme+://10.0.0.1/"), None);
    assert_eq!(p("nvme+tcp:///"), None);
    assert_eq!(p("nvme+tcp://[fd00::1/"), None);
    assert_eq!(p("10.0.0.1:8009"), None);
}

#[test]
fn formatters() {
    let mut h = fixture_hfi();
    h.pci_sbdf = (0x12 << 16) | (0xab << 8) | (0x1f << 3) | 7;
    assert_eq!(h.pcidev(), "12:ab:1f.7");
    let mut s = fixture_ssns(1, "1.2.3.4", 0);
    s.nid_type = NidType::Eui64;
    assert_eq!(s.nid_text().unwrap(), "c82404ed9c15f53b");
    s.nid_type = NidType::Uuid;
    assert_eq!(
        s.nid_text().unwrap(),
        "c82404ed-9c15-f53b-8ccf-0968002e0fca"
    );
    s.nid_type = NidType::Other(0);
    assert_eq!(s.nid_text(), None);
    for v in 0..=255u8 {
        assert_eq!(u8::from(NidType::from(v)), v);
    }
    for b in 0..4 {
        assert_eq!(PrimaryAdminHostFlag::from_bits(b).bits(), b);
    }
}

mod parse;
mod prop;
