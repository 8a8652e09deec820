use super::*;
use proptest::prelude::*;

fn name(s: &str) -> DnsName {
    DnsName::parse_dotted(s).unwrap()
}

/// A response built byte by byte, independently of simple-dns, with
/// compression pointers the way Avahi writes them.
fn avahi_like_response() -> Vec<u8> {
    let mut p = vec![0, 0, 0x84, 0x00, 0, 0, 0, 3, 0, 0, 0, 2];
    // PTR _nvme-disc._tcp.local → dc-1._nvme-disc._tcp.local
    let service_at = p.len();
    p.extend_from_slice(b"\x0a_nvme-disc\x04_tcp\x05local\x00");
    let local_at = service_at + 16;
    p.extend_from_slice(&[0, 12, 0, 1, 0, 0, 0x11, 0x94]);
    let ptr_rdata = [b"\x04dc-1".as_slice(), &[0xc0, 12]].concat();
    p.extend_from_slice(&u16::try_from(ptr_rdata.len()).unwrap().to_be_bytes());
    let instance_at = p.len();
    p.extend_from_slice(&ptr_rdata);
    // SRV dc-1... → host.local:8009, cache-flush
    p.extend_from_slice(&[0xc0, u8::try_from(instance_at).unwrap()]);
    p.extend_from_slice(&[0, 33, 0x80, 1, 0, 0, 0, 120]);
    let srv_rdata = [
        [0u8, 0, 0, 0, 0x1f, 0x49].as_slice(),
        b"\x04host",
        &[0xc0, u8::try_from(local_at).unwrap()],
    ]
    .concat();
    p.extend_from_slice(&u16::try_from(srv_rdata.len()).unwrap().to_be_bytes());
    let host_at = p.len() + 6;
    p.extend_from_slice(&srv_rdata);
    // TXT
    p.extend_from_slice(&[0xc0, u8::try_from(instance_at).unwrap()]);
    p.extend_from_slice(&[0, 16, 0x80, 1, 0, 0, 0x11, 0x94]);
    let txt = b"\x05p=tcp\x0dNQN=nqn.1-2:x";
    p.extend_from_slice(&u16::try_from(txt.len()).unwrap().to_be_bytes());
    p.extend_from_slice(txt);
    // A and AAAA in the additional section
    let host = [0xc0, u8::try_from(host_at).unwrap()];
    p.extend_from_slice(&host);
    p.extend_from_slice(&[0, 1, 0x80, 1, 0, 0, 0, 120, 0, 4, 192, 168, 1, 10]);
    p.extend_from_slice(&host);
    p.extend_from_slice(&[0, 28, 0x80, 1, 0, 0, 0, 0, 0, 16]);
    p.extend_from_slice(&Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1).octets());
    p
}

#[test]
fn parses_a_hand_built_response_with_compression() {
    let m = Message::parse(&avahi_like_response()).unwrap();
    assert!(m.response);
    assert!(m.questions.is_empty());
    let instance = name("dc-1._nvme-disc._tcp.local");
    let host = name("host.local");
    assert_eq!(
        m.answers,
        vec![
            Record {
                name: name("_nvme-disc._tcp.local"),
                ttl: 4500,
                cache_flush: false,
                data: RData::Ptr(instance.clone()),
            },
            Record {
                name: instance.clone(),
                ttl: 120,
                cache_flush: true,
                data: RData::Srv {
                    priority: 0,
                    weight: 0,
                    port: 8009,
                    target: host.clone(),
                },
            },
            Record {
                name: instance,
                ttl: 4500,
                cache_flush: true,
                data: RData::Txt(vec![b"p=tcp".to_vec(), b"NQN=nqn.1-2:x".to_vec()]),
            },
        ]
    );
    assert_eq!(
        m.additional,
        vec![
            Record {
                name: host.clone(),
                ttl: 120,
                cache_flush: true,
                data: RData::A(Ipv4Addr::new(192, 168, 1, 10)),
            },
            Record {
                name: host,
                ttl: 0,
                cache_flush: true,
                data: RData::Aaaa(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1)),
            },
        ]
    );
    assert_eq!(m.records().count(), 5);
}

#[test]
fn every_truncation_of_a_response_is_an_error_not_a_panic() {
    let full = avahi_like_response();
    for len in 0..full.len() {
        assert!(
            Message::parse(&full[..len]).is_err(),
            "prefix of {len} bytes"
        );
    }
}

#[test]
fn names_compare_case_insensitively_and_display_escaped() {
    assert_eq!(name("_NVME-disc._TCP.Local"), name("_nvme-disc._tcp.local"));
    assert_ne!(name("a.local"), name("b.local"));
    let n = name("_nvme-disc._tcp.local")
        .child(b"rack 7.dc\\1")
        .unwrap();
    assert_eq!(n.to_string(), "rack 7\\.dc\\\\1._nvme-disc._tcp.local");
    assert_eq!(n.parent(), name("_nvme-disc._tcp.local"));
    assert_eq!(n.first_label(), Some(b"rack 7.dc\\1".as_slice()));
    assert_eq!(label_text(b"a\x01\xff"), "a\\001\\255");
    DnsName::from_labels(&[[b'x'; 64]]).unwrap_err();
    DnsName::from_labels(&[b"".as_slice()]).unwrap_err();
    DnsName::from_labels(&vec![[b'x'; 63]; 4]).unwrap_err();
    DnsName::from_labels(&vec![[b'x'; 62]; 4]).unwrap();
}

#[test]
fn a_pointer_loop_is_rejected() {
    // A question whose name is a pointer to itself.
    let p = [0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 12, 0, 1];
    Message::parse(&p).unwrap_err();
    // Two pointers to each other.
    let p = [
        0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0xc0, 18, 0, 12, 0, 1, 0xc0, 12, 0, 12, 0, 1,
    ];
    Message::parse(&p).unwrap_err();
}

#[test]
fn section_counts_beyond_the_packet_are_rejected_before_decoding() {
    let p = [
        0, 0, 0x84, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    ];
    assert!(matches!(
        Message::parse(&p),
        Err(ProtoError::TooShort { got: 12, .. })
    ));
    let big = vec![0u8; MAX_MESSAGE_LEN + 1];
    assert!(matches!(
        Message::parse(&big),
        Err(ProtoError::FieldTooLong { .. })
    ));
}

fn browse_questions(qu: bool) -> Vec<Question> {
    NVME_DISC_SERVICE_TYPES
        .iter()
        .map(|t| Question {
            name: name(t),
            qtype: RecordType::Ptr,
            unicast_response: qu,
        })
        .collect()
}

#[test]
fn a_browse_query_carries_both_service_types_qu_and_known_answers() {
    let known = Record {
        name: name("_nvme-disc._tcp.local"),
        ttl: 4000,
        cache_flush: false,
        data: RData::Ptr(name("dc-1._nvme-disc._tcp.local")),
    };
    let packets = query_packets(
        &browse_questions(true),
        std::slice::from_ref(&known),
        QUERY_TARGET_LEN,
    )
    .unwrap();
    assert_eq!(packets.len(), 1);
    let raw = &packets[0];
    // QU is the top bit of the question class: 0x8001.
    assert_eq!(&raw[12 + 23..12 + 27], &[0, 12, 0x80, 1]);
    let m = Message::parse(raw).unwrap();
    assert!(!m.response && !m.truncated);
    assert_eq!(m.questions, browse_questions(true));
    assert_eq!(m.answers, vec![known]);
}

#[test]
fn known_answers_that_do_not_fit_continue_in_tc_packets() {
    let service = name("_nvme-disc._tcp.local");
    let known: Vec<Record> = (0..200)
        .map(|i| Record {
            name: service.clone(),
            ttl: 4500,
            cache_flush: false,
            data: RData::Ptr(
                service
                    .child(format!("controller-{i:03}").as_bytes())
                    .unwrap(),
            ),
        })
        .collect();
    let packets = query_packets(&browse_questions(false), &known, 512).unwrap();
    assert!(packets.len() > 3, "{} packets", packets.len());
    let mut seen = Vec::new();
    for (i, raw) in packets.iter().enumerate() {
        assert!(raw.len() <= 512, "packet {i}: {} bytes", raw.len());
        let m = Message::parse(raw).unwrap();
        assert_eq!(m.truncated, i + 1 < packets.len(), "TC of packet {i}");
        assert_eq!(m.questions.is_empty(), i > 0);
        seen.extend(m.answers);
    }
    assert_eq!(seen, known);
    query_packets(&browse_questions(false), &[], 20).unwrap_err();
}

#[test]
fn other_record_types_are_kept_by_type_only_and_not_emitted() {
    // An NSEC record (type 47) as Avahi adds to its responses.
    let mut p = vec![0, 0, 0x84, 0, 0, 0, 0, 1, 0, 0, 0, 0];
    p.extend_from_slice(b"\x04host\x05local\x00\x00\x2f\x80\x01\x00\x00\x00\x78\x00\x08\xc0\x0c\x00\x04\x40\x00\x00\x08");
    let m = Message::parse(&p).unwrap();
    assert_eq!(m.answers[0].data, RData::Other(47));
    assert_eq!(m.answers[0].data.rtype(), RecordType::Other(47));
    m.emit().unwrap_err();
}

#[test]
fn txt_items_are_read_as_nvme_stas_does() {
    let items: Vec<&[u8]> = vec![
        b"p=tcp",
        b" P =x",
        b"a=b=c",
        b"=novalue",
        b"noequals",
        b"bad=\x01",
        b"nbsp=\xa0",
        b"latin=\xe9",
        b"NQN=nqn.first",
        b"Nqn=nqn.second",
        b"empty=",
    ];
    let d = txt_dict(&items);
    let expect: BTreeMap<String, String> = [
        ("p", "tcp"),
        (" p ", "x"),
        ("latin", "\u{e9}"),
        ("nqn", "nqn.second"),
        ("empty", ""),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    assert_eq!(d, expect);
}

#[test]
fn transport_and_nqn_from_txt() {
    let t = |p: &str| txt_transport(&txt_dict(&[format!("p={p}")]));
    assert_eq!(t("tcp"), Some(Transport::Tcp));
    assert_eq!(t(" TCP "), Some(Transport::Tcp));
    assert_eq!(t("roce"), Some(Transport::Rdma));
    assert_eq!(t("iWARP"), Some(Transport::Rdma));
    assert_eq!(t("rdma"), Some(Transport::Rdma));
    assert_eq!(t("udp"), None);
    assert_eq!(t(""), None);
    assert_eq!(txt_transport(&BTreeMap::new()), None);
    assert_eq!(Transport::Rdma.to_string(), "rdma");
    assert_eq!(txt_nqn(&BTreeMap::new()), crate::WELL_KNOWN_DISCOVERY_NQN);
    assert_eq!(txt_nqn(&txt_dict(&["NQN= nqn.x "])), "nqn.x");
    assert_eq!(
        txt_nqn(&txt_dict(&["nqn=  "])),
        crate::WELL_KNOWN_DISCOVERY_NQN
    );
}

fn arb_label() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        "[a-zA-Z0-9_-]{1,20}".prop_map(String::into_bytes),
        proptest::collection::vec(any::<u8>(), 1..63),
    ]
}

fn arb_name() -> impl Strategy<Value = DnsName> {
    proptest::collection::vec(arb_label(), 1..4).prop_map(|l| DnsName::from_labels(&l).unwrap())
}

fn arb_rdata() -> impl Strategy<Value = RData> {
    prop_oneof![
        any::<[u8; 4]>().prop_map(|a| RData::A(Ipv4Addr::from(a))),
        any::<[u8; 16]>().prop_map(|a| RData::Aaaa(Ipv6Addr::from(a))),
        arb_name().prop_map(RData::Ptr),
        (any::<u16>(), any::<u16>(), any::<u16>(), arb_name()).prop_map(
            |(priority, weight, port, target)| RData::Srv {
                priority,
                weight,
                port,
                target
            }
        ),
        // An item starting with '=' is not kept (see the module doc).
        proptest::collection::vec(
            (
                "[a-zA-Z]{1,9}",
                proptest::collection::vec(any::<u8>(), 0..40)
            )
                .prop_map(|(k, v)| [k.as_bytes(), b"=", &v].concat()),
            1..5
        )
        .prop_map(RData::Txt),
    ]
}

fn arb_record() -> impl Strategy<Value = Record> {
    (arb_name(), any::<u32>(), any::<bool>(), arb_rdata()).prop_map(
        |(name, ttl, cache_flush, data)| Record {
            name,
            ttl,
            cache_flush,
            data,
        },
    )
}

proptest! {
    #[test]
    fn messages_round_trip(
        response in any::<bool>(),
        truncated in any::<bool>(),
        questions in proptest::collection::vec(
            (arb_name(), prop_oneof![Just(RecordType::Ptr), Just(RecordType::Srv), Just(RecordType::Any)], any::<bool>())
                .prop_map(|(name, qtype, unicast_response)| Question { name, qtype, unicast_response }),
            0..4),
        answers in proptest::collection::vec(arb_record(), 0..6),
        additional in proptest::collection::vec(arb_record(), 0..4),
    ) {
        let m = Message { id: 0, response, truncated, questions, answers, authority: vec![], additional };
        let raw = m.emit().unwrap();
        prop_assert_eq!(Message::parse(&raw).unwrap(), m);
    }

    #[test]
    fn any_bytes_parse_or_fail_cleanly(raw in proptest::collection::vec(any::<u8>(), 0..600)) {
        if let Ok(m) = Message::parse(&raw) {
            prop_assert!(m.questions.len() + m.records().count() <= raw.len() / 5);
        }
    }

    #[test]
    fn mutated_responses_parse_or_fail_cleanly(at in 0usize..200, byte in any::<u8>()) {
        let mut raw = avahi_like_response();
        let i = at % raw.len();
        raw[i] = byte;
        let _ = Message::parse(&raw);
    }
}
