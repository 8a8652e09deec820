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
    out
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
