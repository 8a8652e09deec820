//! The fuzzers' seed inputs under fixtures/data/fuzz-seeds/<target>/ are
//! valid structures built here, so each fuzzer starts past the length and
//! header checks. Set STAS_BLESS=1 to rewrite them. (The NBFT seed is kept
//! by nvmf-proto's own nbft tests, next to the fixture it comes from.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test may panic

use std::path::Path;

use nvmf_proto::dim::{parse_uuid, DimData, Registration};
use nvmf_proto::identify::{
    IdentifyController, LPA_SUPPORTED_LOG_PAGES, OAES_DISCOVERY_LOG_CHANGE,
};
use nvmf_proto::logpages::{LidSupport, SupportedLogPages, LID_DISCOVERY};
use nvmf_proto::types::{AdrFam, CntrlType, DcType};

fn seeds() -> Vec<(&'static str, &'static str, Vec<u8>)> {
    let mut out = Vec::new();
    for g in fixtures::dlp::all() {
        out.push(("dlp", g.name, g.bytes));
    }
    let id = IdentifyController {
        sn: "8f3e1c2a9b7d".into(),
        mn: "Linux".into(),
        fr: "6.1.0".into(),
        cntlid: 1,
        ver: 0x0001_0400,
        oaes: OAES_DISCOVERY_LOG_CHANGE,
        cntrltype: CntrlType::Discovery,
        lpa: LPA_SUPPORTED_LOG_PAGES,
        maxcmd: 128,
        sgls: 0x0010_0005,
        subnqn: nvmf_proto::WELL_KNOWN_DISCOVERY_NQN.into(),
        dctype: DcType::Cdc,
        ..Default::default()
    };
    out.push(("identify", "cdc", id.emit().unwrap()));

    let mut slp = SupportedLogPages::default();
    slp.set(0, LidSupport(1));
    slp.set(LID_DISCOVERY, LidSupport(0x0002_0001));
    out.push(("supported_log_pages", "pleos", slp.emit()));

    let host_id = parse_uuid("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0").unwrap();
    let reg = |symname| {
        DimData::registration(&Registration {
            host_nqn: "nqn.2014-08.org.nvmexpress:uuid:0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0",
            host_id,
            hostname: "host1",
            os_version: "Linux 6.1.0 Debian GNU/Linux 12",
            dc_adrfam: AdrFam::Ipv4,
            symname,
        })
        .emit()
        .unwrap()
    };
    out.push(("dim", "register", reg(None)));
    out.push(("dim", "register-symname", reg(Some("rack-7"))));
    out.push(("aen", "dlp-change", b"0x70f002".to_vec()));
    out.extend(mdns_seeds());
    out.extend(tcp_pdu_seeds());
    out.extend(dcsim_seeds());
    out
}

/// Streams of host PDUs for the dcsim_association fuzzer: its mode byte
/// (bit 4: already connected; bits 0-1: digests), then PDUs as a Linux
/// host sends them to a discovery controller.
fn dcsim_seeds() -> Vec<(&'static str, &'static str, Vec<u8>)> {
    use nvmf_proto::command::{Sgl, Sqe};
    use nvmf_proto::fabrics::{ConnectData, FabricsCommand, ATTRIB_SIZE_8, PROP_CAP, PROP_CC};
    use nvmf_proto::logpages::GetLogPage;
    use nvmf_proto::tcp::{CapsuleCmd, DataPdu, Digests, IcReq, Pdu};
    let admin = |opcode: u8, cid: u16, cdw10: u32, cdw11: u32, len: u32| Sqe {
        opcode,
        flags: 0x40,
        command_id: cid,
        cdw10,
        cdw11,
        dptr: Sgl {
            address: 0,
            length: len,
            sgl_type: Sgl::TRANSPORT,
        },
        ..Sqe::default()
    };
    let cmd = |sqe: Sqe, data: Vec<u8>| Pdu::CapsuleCmd(CapsuleCmd { sqe, data });
    let glp = |cid: u16, lid: u8, lsp: u8, rae: bool, len: u32| {
        let [c10, c11, c12, c13, c14] = GetLogPage {
            lid,
            lsp,
            rae,
            len,
            ..GetLogPage::default()
        }
        .cdws()
        .unwrap();
        let mut sqe = admin(0x02, cid, c10, c11, len);
        (sqe.cdw12, sqe.cdw13, sqe.cdw14) = (c12, c13, c14);
        cmd(sqe, Vec::new())
    };
    let dim = DimData::registration(&Registration {
        host_nqn: "nqn.2014-08.org.nvmexpress:uuid:00000000-0000-0000-0000-000000000001",
        host_id: [1; 16],
        hostname: "host",
        os_version: "Linux 6.1",
        dc_adrfam: AdrFam::Ipv4,
        symname: Some("rack-7"),
    })
    .emit()
    .unwrap();
    let dim_len = u32::try_from(dim.len()).unwrap();
    let mut dim_in_capsule = admin(0x21, 9, 0, 0, dim_len);
    dim_in_capsule.dptr.sgl_type = Sgl::IN_CAPSULE;
    let connected = vec![
        cmd(
            FabricsCommand::PropertyGet {
                attrib: ATTRIB_SIZE_8,
                offset: PROP_CAP,
            }
            .to_sqe(1),
            Vec::new(),
        ),
        cmd(
            FabricsCommand::PropertySet {
                attrib: 0,
                offset: PROP_CC,
                value: 0x0046_0001,
            }
            .to_sqe(2),
            Vec::new(),
        ),
        cmd(admin(0x06, 3, 1, 0, 4096), Vec::new()),
        cmd(admin(0x09, 4, 0x0b, 0x8000_0000, 0), Vec::new()),
        cmd(admin(0x0c, 31, 0, 0, 0), Vec::new()),
        glp(5, 0x00, 0, false, 1024),
        glp(6, 0x70, 0, true, 1024),
        glp(7, 0x70, 2, false, 4096),
        cmd(admin(0x18, 8, 0, 0, 0), Vec::new()),
        cmd(dim_in_capsule, dim.clone()),
        cmd(admin(0x21, 10, 2, 0, dim_len), Vec::new()),
        Pdu::H2CData(DataPdu {
            command_id: 10,
            ttag: 1,
            datao: 0,
            last: true,
            success: false,
            data: dim,
        }),
        cmd(admin(0x0a, 11, 0x0f, 0, 0), Vec::new()),
    ];
    let stream = |mode: u8, pdus: &[Pdu]| {
        let digests = Digests {
            header: mode & 1 != 0,
            data: mode & 2 != 0,
        };
        let mut bytes = vec![mode];
        for p in pdus {
            bytes.extend(p.emit(digests).unwrap());
        }
        bytes
    };
    let connect = cmd(
        FabricsCommand::Connect {
            recfmt: 0,
            qid: 0,
            sqsize: 31,
            cattr: 0,
            kato: 5000,
        }
        .to_sqe(0),
        ConnectData {
            hostid: [2; 16],
            cntlid: 0xffff,
            subnqn: nvmf_proto::WELL_KNOWN_DISCOVERY_NQN.into(),
            hostnqn: "nqn.2014-08.org.nvmexpress:uuid:00000000-0000-0000-0000-000000000002".into(),
        }
        .emit()
        .unwrap()
        .to_vec(),
    );
    let icreq = Pdu::IcReq(IcReq {
        pfv: 0,
        hpda: 0,
        digests: Digests::default(),
        maxr2t: 0,
    });
    let mut from_start = vec![icreq, connect];
    from_start.extend(connected.iter().take(4).cloned());
    vec![
        (
            "dcsim_association",
            "connected-session",
            stream(0x10, &connected),
        ),
        (
            "dcsim_association",
            "connected-session-digests",
            stream(0x13, &connected),
        ),
        (
            "dcsim_association",
            "connected-session-reloads",
            stream(0x30, &connected),
        ),
        ("dcsim_association", "from-icreq", stream(0x00, &from_start)),
    ]
}

/// One PDU per type, prefixed by the digest byte the tcp_pdu fuzzer reads
/// first (bit 0 header, bit 1 data): what a Linux host and a discovery
/// controller exchange on the admin queue.
fn tcp_pdu_seeds() -> Vec<(&'static str, &'static str, Vec<u8>)> {
    use nvmf_proto::command::{Cqe, Status};
    use nvmf_proto::fabrics::{
        ConnectData, FabricsCommand, ATTRIB_SIZE_8, CNTLID_DYNAMIC, PROP_CAP,
    };
    use nvmf_proto::tcp::{
        CapsuleCmd, DataPdu, Digests, IcReq, IcResp, Pdu, R2t, TermReq, FES_INVALID_HEADER_FIELD,
    };
    let seed = |name, digests: Digests, pdu: Pdu| {
        let mut bytes = vec![digests.bits()];
        bytes.extend(pdu.emit(digests).unwrap());
        ("tcp_pdu", name, bytes)
    };
    let both = Digests::BOTH;
    let header_only = Digests {
        header: true,
        data: false,
    };
    let connect_data = ConnectData {
        hostid: parse_uuid("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0").unwrap(),
        cntlid: CNTLID_DYNAMIC,
        subnqn: nvmf_proto::WELL_KNOWN_DISCOVERY_NQN.into(),
        hostnqn: "nqn.2014-08.org.nvmexpress:uuid:0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0".into(),
    };
    let connect = Pdu::CapsuleCmd(CapsuleCmd {
        sqe: FabricsCommand::Connect {
            recfmt: 0,
            qid: 0,
            sqsize: 31,
            cattr: 0,
            kato: 30_000,
        }
        .to_sqe(0),
        data: connect_data.emit().unwrap().to_vec(),
    });
    let mut log_header = vec![5, 0, 0, 0, 0, 0, 0, 0, 1];
    log_header.resize(20, 0);
    let c2h = Pdu::C2HData(DataPdu {
        command_id: 0x1003,
        ttag: 0,
        datao: 0,
        last: true,
        success: true,
        data: log_header,
    });
    vec![
        seed(
            "icreq",
            Digests::NONE,
            Pdu::IcReq(IcReq {
                pfv: 0,
                hpda: 0,
                digests: both,
                maxr2t: 0,
            }),
        ),
        seed(
            "icresp",
            Digests::NONE,
            Pdu::IcResp(IcResp {
                pfv: 0,
                cpda: 0,
                digests: both,
                maxh2cdata: 0x2_0000,
            }),
        ),
        seed("connect", Digests::NONE, connect.clone()),
        seed("connect-digests", both, connect),
        seed(
            "property-get-cap",
            header_only,
            Pdu::CapsuleCmd(CapsuleCmd {
                sqe: FabricsCommand::PropertyGet {
                    attrib: ATTRIB_SIZE_8,
                    offset: PROP_CAP,
                }
                .to_sqe(0x1001),
                data: Vec::new(),
            }),
        ),
        seed(
            "capsule-resp",
            Digests::NONE,
            Pdu::CapsuleResp(Cqe {
                dw0: 1,
                ..Cqe::new(0, Status::SUCCESS)
            }),
        ),
        seed("c2h-data", Digests::NONE, c2h.clone()),
        seed("c2h-data-digests", both, c2h),
        seed(
            "r2t",
            header_only,
            Pdu::R2t(R2t {
                command_id: 0x2001,
                ttag: 1,
                r2to: 0,
                r2tl: 0x3000,
            }),
        ),
        seed(
            "h2c-data-digests",
            both,
            Pdu::H2CData(DataPdu {
                command_id: 0x2001,
                ttag: 1,
                datao: 0,
                last: true,
                success: false,
                data: vec![0xa5; 64],
            }),
        ),
        seed(
            "c2h-term-req",
            Digests::NONE,
            Pdu::C2HTermReq(TermReq {
                fes: FES_INVALID_HEADER_FIELD,
                fei: 2,
                header: vec![0x04, 0x00, 0x47, 0x00, 0x48, 0x00, 0x00, 0x00],
            }),
        ),
    ]
}

fn mdns_seeds() -> Vec<(&'static str, &'static str, Vec<u8>)> {
    use nvmf_proto::mdns::{query_packets, DnsName, Message, Question, RData, Record, RecordType};
    let service = DnsName::parse_dotted("_nvme-disc._tcp.local").unwrap();
    let instance = service.child(b"dc-1").unwrap();
    let host = DnsName::parse_dotted("array-7.local").unwrap();
    let rec = |name: &DnsName, ttl, data| Record {
        name: name.clone(),
        ttl,
        cache_flush: !matches!(data, RData::Ptr(_)),
        data,
    };
    let ptr = rec(&service, 4500, RData::Ptr(instance.clone()));
    let announce = |ttl| {
        Message {
            response: true,
            answers: vec![
                rec(&service, ttl, RData::Ptr(instance.clone())),
                rec(
                    &instance,
                    ttl,
                    RData::Srv {
                        priority: 0,
                        weight: 0,
                        port: 8009,
                        target: host.clone(),
                    },
                ),
                rec(
                    &instance,
                    ttl,
                    RData::Txt(vec![
                        b"p=tcp".to_vec(),
                        b"nqn=nqn.2014-08.org.nvmexpress.discovery".to_vec(),
                    ]),
                ),
            ],
            additional: vec![
                rec(&host, ttl.min(120), RData::A([192, 168, 7, 10].into())),
                rec(&host, ttl.min(120), RData::Aaaa("fe80::7".parse().unwrap())),
            ],
            ..Message::default()
        }
        .emit()
        .unwrap()
    };
    let query = query_packets(
        &[Question {
            name: service.clone(),
            qtype: RecordType::Ptr,
            unicast_response: true,
        }],
        &[ptr],
        1452,
    )
    .unwrap()
    .remove(0);
    vec![
        ("mdns", "announce", announce(4500)),
        ("mdns", "goodbye", announce(0)),
        ("mdns", "query-known-answer", query),
    ]
}

#[test]
fn seed_files_match_builders() {
    let root = fixtures::data_dir().join("fuzz-seeds");
    let bless = std::env::var_os("STAS_BLESS").is_some();
    for (target, name, bytes) in seeds() {
        let dir = root.join(target);
        let path = dir.join(format!("{name}.bin"));
        if bless {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, &bytes).unwrap();
        }
        let on_disk = std::fs::read(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (run with STAS_BLESS=1)", path.display()));
        assert_eq!(
            on_disk,
            bytes,
            "{} is stale (run with STAS_BLESS=1)",
            Path::new(&path).display()
        );
    }
}
