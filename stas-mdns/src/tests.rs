use super::*;
use std::net::Ipv4Addr;

const RESPONDER: &str = "192.168.7.10:5353";

fn name(s: &str) -> DnsName {
    DnsName::parse_dotted(s).unwrap()
}

fn eth0() -> MdnsInterface {
    MdnsInterface {
        index: 2,
        name: "eth0".into(),
        ipv4: true,
        ipv6: true,
    }
}

struct Announce {
    instance: &'static str,
    ttl: u32,
    host_ttl: u32,
    port: u16,
    txt: Vec<&'static str>,
    addrs: Vec<IpAddr>,
}

impl Default for Announce {
    fn default() -> Self {
        Self {
            instance: "dc-1",
            ttl: 4500,
            host_ttl: 120,
            port: 8009,
            txt: vec!["p=tcp", "NQN=nqn.2014-08.com.example:cdc"],
            addrs: vec![
                IpAddr::V4(Ipv4Addr::new(192, 168, 7, 10)),
                IpAddr::V6("fe80::7".parse().unwrap()),
            ],
        }
    }
}

impl Announce {
    fn records(&self) -> (Vec<Record>, Vec<Record>) {
        let service = name("_nvme-disc._tcp.local");
        let instance = service.child(self.instance.as_bytes()).unwrap();
        let host = name("array-7.local");
        let rec = |name: &DnsName, ttl, cache_flush, data| Record {
            name: name.clone(),
            ttl,
            cache_flush,
            data,
        };
        let answers = vec![
            rec(&service, self.ttl, false, RData::Ptr(instance.clone())),
            rec(
                &instance,
                self.ttl,
                true,
                RData::Srv {
                    priority: 0,
                    weight: 0,
                    port: self.port,
                    target: host.clone(),
                },
            ),
            rec(
                &instance,
                self.ttl,
                true,
                RData::Txt(self.txt.iter().map(|t| t.as_bytes().to_vec()).collect()),
            ),
        ];
        let additional = self
            .addrs
            .iter()
            .map(|a| {
                let data = match a {
                    IpAddr::V4(a) => RData::A(*a),
                    IpAddr::V6(a) => RData::Aaaa(*a),
                };
                rec(&host, self.host_ttl, true, data)
            })
            .collect();
        (answers, additional)
    }

    fn packet(&self) -> Vec<u8> {
        let (answers, additional) = self.records();
        Message {
            response: true,
            answers,
            additional,
            ..Message::default()
        }
        .emit()
        .unwrap()
    }
}

fn response(records: Vec<Record>) -> Vec<u8> {
    Message {
        response: true,
        answers: records,
        ..Message::default()
    }
    .emit()
    .unwrap()
}

fn querier(now: Instant) -> Querier {
    let mut q = Querier::new(QuerierConfig::default());
    q.set_interfaces(now, &[eth0()]);
    q
}

fn src() -> SocketAddr {
    RESPONDER.parse().unwrap()
}

fn found(events: &[MdnsEvent]) -> Vec<&DiscoveredService> {
    events
        .iter()
        .filter_map(|e| match e {
            MdnsEvent::Found(s) => Some(s),
            _ => None,
        })
        .collect()
}

fn removed(events: &[MdnsEvent]) -> usize {
    events
        .iter()
        .filter(|e| matches!(e, MdnsEvent::Removed(_)))
        .count()
}

fn questions(packets: &[OutgoingPacket]) -> Vec<Question> {
    packets
        .iter()
        .flat_map(|p| Message::parse(&p.bytes).unwrap().questions)
        .collect()
}

#[test]
fn the_first_browse_query_goes_out_within_120_ms_with_qu_on_both_families() {
    let t0 = Instant::now();
    let mut q = querier(t0);
    assert!(q.poll(t0).is_empty());
    let due = q.next_deadline().unwrap();
    assert!(due >= t0 + Duration::from_millis(20) && due <= t0 + Duration::from_millis(120));
    let out = q.poll(due);
    assert_eq!(out.len(), 2);
    assert_eq!(
        out.iter().map(|p| p.family).collect::<Vec<_>>(),
        vec![AddressFamily::Ipv4, AddressFamily::Ipv6]
    );
    let qs = questions(&out[..1]);
    let types: Vec<String> = qs.iter().map(|q| q.name.to_string()).collect();
    assert_eq!(types, ["_nvme-disc._tcp.local", "_nvme-disc._udp.local"]);
    assert!(qs
        .iter()
        .all(|q| q.qtype == RecordType::Ptr && q.unicast_response));
    // The next ones are QM.
    let out = q.poll(due + Duration::from_secs(1));
    assert!(questions(&out).iter().all(|q| !q.unicast_response));
}

#[test]
fn browse_queries_back_off_doubling_to_an_hour() {
    let t0 = Instant::now();
    let mut q = querier(t0);
    let mut sent = Vec::new();
    let end = t0 + Duration::from_secs(5 * 3600);
    while let Some(t) = q.next_deadline() {
        if t > end {
            break;
        }
        if !q.poll(t).is_empty() {
            sent.push(t);
        }
    }
    let gaps: Vec<u64> = sent.windows(2).map(|w| (w[1] - w[0]).as_secs()).collect();
    assert_eq!(
        gaps[..13],
        [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 3600]
    );
    assert!(gaps[13..].iter().all(|g| *g == 3600), "{gaps:?}");
}

#[test]
fn an_announcement_yields_one_service_per_interface_with_its_addresses() {
    let t0 = Instant::now();
    let mut q = querier(t0);
    q.handle_packet(t0, 2, src(), &Announce::default().packet())
        .unwrap();
    let events = q.take_events();
    let f = found(&events);
    assert_eq!(f.len(), 1, "{events:?}");
    let s = f[0];
    assert_eq!(
        s.key,
        ServiceKey {
            interface: "eth0".into(),
            ifindex: 2,
            instance: "dc-1".into(),
            service_type: "_nvme-disc._tcp.local".into(),
        }
    );
    assert_eq!(
        (s.port, s.ttl, s.host.as_str()),
        (8009, 4500, "array-7.local")
    );
    assert_eq!(s.transport, Some(Transport::Tcp));
    assert_eq!(s.nqn, "nqn.2014-08.com.example:cdc");
    let recs = s.records();
    assert_eq!(recs.len(), 2);
    assert_eq!(recs[0].family, AddressFamily::Ipv4);
    assert_eq!(recs[0].scope, None);
    assert_eq!(recs[0].scoped_address(), "192.168.7.10");
    assert_eq!(recs[1].family, AddressFamily::Ipv6);
    assert_eq!(recs[1].scope.as_deref(), Some("eth0"));
    assert_eq!(recs[1].scoped_address(), "fe80::7%eth0");
    assert_eq!(recs[1].ttl, 120);
    assert_eq!(q.services().len(), 1);
    // The same announcement again changes nothing.
    q.handle_packet(
        t0 + Duration::from_secs(1),
        2,
        src(),
        &Announce::default().packet(),
    )
    .unwrap();
    assert!(q.take_events().is_empty());
}

#[test]
fn a_goodbye_removes_the_service_one_second_later() {
    let t0 = Instant::now();
    let mut q = querier(t0);
    q.handle_packet(t0, 2, src(), &Announce::default().packet())
        .unwrap();
    q.take_events();
    let t1 = t0 + Duration::from_secs(10);
    let bye = Announce {
        ttl: 0,
        host_ttl: 0,
        ..Announce::default()
    };
    q.handle_packet(t1, 2, src(), &bye.packet()).unwrap();
    q.poll(t1 + Duration::from_millis(999));
    assert!(q.take_events().is_empty());
    q.poll(t1 + Duration::from_secs(1));
    let events = q.take_events();
    assert_eq!(removed(&events), 1, "{events:?}");
    assert!(q.services().is_empty());
}

#[test]
fn records_are_refreshed_at_80_to_95_percent_and_expire_at_their_ttl() {
    let t0 = Instant::now();
    let mut q = querier(t0);
    let a = Announce {
        ttl: 100,
        host_ttl: 100,
        ..Announce::default()
    };
    q.handle_packet(t0, 2, src(), &a.packet()).unwrap();
    q.take_events();
    let mut refresh_times = Vec::new();
    let mut t = t0;
    while let Some(next) = q.next_deadline() {
        if next > t0 + Duration::from_secs(101) {
            break;
        }
        t = next;
        let out = q.poll(t);
        let qs = questions(&out);
        if qs.iter().any(|q| q.qtype == RecordType::Srv) {
            // One packet per family asks for all five records, which came
            // together with the same TTL.
            assert_eq!(out.len(), 2, "{qs:?}");
            assert_eq!(qs.len(), 2 * 5, "{qs:?}");
            refresh_times.push((t - t0).as_millis());
        }
        if !q.take_events().is_empty() {
            break;
        }
    }
    assert_eq!(refresh_times.len(), 4, "{refresh_times:?}");
    for (at, percent) in refresh_times.iter().zip([80, 85, 90, 95]) {
        // At the percentage of the 100 s TTL, plus under 2 % jitter.
        let from = percent * 1000;
        assert!((from..from + 2000).contains(at), "{refresh_times:?}");
    }
    assert!(
        (t - t0) >= Duration::from_secs(100),
        "removed at {:?}",
        t - t0
    );
    assert!(q.services().is_empty());
}

#[test]
fn a_refresh_answer_keeps_the_service() {
    let t0 = Instant::now();
    let mut q = querier(t0);
    let a = Announce {
        ttl: 100,
        host_ttl: 100,
        ..Announce::default()
    };
    q.handle_packet(t0, 2, src(), &a.packet()).unwrap();
    let t1 = t0 + Duration::from_secs(81);
    q.poll(t1);
    q.handle_packet(t1, 2, src(), &a.packet()).unwrap();
    q.poll(t0 + Duration::from_secs(150));
    let events = q.take_events();
    assert_eq!(removed(&events), 0, "{events:?}");
    assert_eq!(q.services().len(), 1);
}

#[test]
fn known_answers_are_the_ptrs_with_more_than_half_their_ttl_left() {
    let t0 = Instant::now();
    let mut q = querier(t0);
    let a = Announce {
        ttl: 100,
        host_ttl: 1000,
        ..Announce::default()
    };
    q.handle_packet(t0, 2, src(), &a.packet()).unwrap();
    let known_at = |q: &mut Querier, t: Instant| -> Option<Vec<Record>> {
        let out = q.poll(t);
        let m = out
            .iter()
            .map(|p| Message::parse(&p.bytes).unwrap())
            .find(|m| {
                m.questions
                    .iter()
                    .any(|q| q.name == name("_nvme-disc._tcp.local"))
            })?;
        Some(m.answers)
    };
    // First browse query (t0 + <=120 ms): the PTR is fresh.
    let k = known_at(&mut q, t0 + Duration::from_millis(120)).unwrap();
    assert_eq!(k.len(), 1);
    assert_eq!(k[0].data, RData::Ptr(name("dc-1._nvme-disc._tcp.local")));
    assert!(k[0].ttl <= 100 && k[0].ttl >= 99);
    // Browse queries come at +1.12 s, +3.12, +7.12, ..., +63.12 s: at 63 s
    // the PTR has 37 s of 100 left, so it is not a known answer.
    let mut last = None;
    for s in [1, 3, 7, 15, 31, 63] {
        last = known_at(&mut q, t0 + Duration::from_millis(s * 1000 + 120));
        if s == 31 {
            assert_eq!(last.as_ref().map(Vec::len), Some(1), "at {s} s");
        }
    }
    assert_eq!(last, Some(vec![]));
}

#[test]
fn missing_records_are_asked_for_with_back_off() {
    let t0 = Instant::now();
    let mut q = querier(t0);
    let (answers, additional) = Announce::default().records();
    // Only the PTR.
    q.handle_packet(t0, 2, src(), &response(answers[..1].to_vec()))
        .unwrap();
    let qs = questions(&q.poll(t0));
    let instance = name("dc-1._nvme-disc._tcp.local");
    assert!(qs
        .iter()
        .any(|q| q.name == instance && q.qtype == RecordType::Srv));
    assert!(qs
        .iter()
        .any(|q| q.name == instance && q.qtype == RecordType::Txt));
    // Retried after 1 s, then 2 s.
    let followups = |qs: Vec<Question>| {
        qs.into_iter()
            .filter(|q| q.qtype != RecordType::Ptr)
            .count()
    };
    assert_eq!(
        followups(questions(&q.poll(t0 + Duration::from_millis(500)))),
        0
    );
    assert_eq!(
        followups(questions(&q.poll(t0 + Duration::from_secs(1)))),
        4,
        "SRV and TXT on both families"
    );
    assert_eq!(
        followups(questions(&q.poll(t0 + Duration::from_millis(2500)))),
        0
    );
    assert_eq!(
        followups(questions(&q.poll(t0 + Duration::from_secs(3)))),
        4
    );
    // SRV and TXT but no address: A and AAAA are asked for.
    let t1 = t0 + Duration::from_secs(4);
    q.handle_packet(t1, 2, src(), &response(answers[1..].to_vec()))
        .unwrap();
    assert!(q.take_events().is_empty());
    let qs = questions(&q.poll(t1));
    let host = name("array-7.local");
    assert!(qs
        .iter()
        .any(|q| q.name == host && q.qtype == RecordType::A));
    assert!(qs
        .iter()
        .any(|q| q.name == host && q.qtype == RecordType::Aaaa));
    q.handle_packet(t1, 2, src(), &response(additional))
        .unwrap();
    assert_eq!(found(&q.take_events()).len(), 1);
    // Resolved: no more follow-ups.
    let qs = questions(&q.poll(t1 + Duration::from_secs(2)));
    assert!(qs.iter().all(|q| q.qtype == RecordType::Ptr), "{qs:?}");
}

#[test]
fn a_cache_flush_record_replaces_the_old_address_of_its_type_after_a_second() {
    let t0 = Instant::now();
    let mut q = querier(t0);
    q.handle_packet(t0, 2, src(), &Announce::default().packet())
        .unwrap();
    q.take_events();
    let t1 = t0 + Duration::from_secs(5);
    let moved = Announce {
        addrs: vec![IpAddr::V4(Ipv4Addr::new(192, 168, 7, 11))],
        ..Announce::default()
    };
    q.handle_packet(t1, 2, src(), &moved.packet()).unwrap();
    let events = q.take_events();
    assert!(matches!(&events[..], [MdnsEvent::Updated(s)] if s.addresses.len() == 3));
    q.poll(t1 + Duration::from_secs(1));
    let events = q.take_events();
    let [MdnsEvent::Updated(s)] = &events[..] else {
        panic!("{events:?}")
    };
    // The IPv6 address is another type (AAAA): not flushed by an A record.
    let addrs: Vec<String> = s.addresses.iter().map(|a| a.addr.to_string()).collect();
    assert_eq!(addrs, ["192.168.7.11", "fe80::7"]);
}

#[test]
fn two_interfaces_hearing_the_same_service_give_two_services() {
    let t0 = Instant::now();
    let mut q = Querier::new(QuerierConfig::default());
    let eth1 = MdnsInterface {
        index: 3,
        name: "eth1".into(),
        ..eth0()
    };
    q.set_interfaces(t0, &[eth0(), eth1]);
    let p = Announce::default().packet();
    q.handle_packet(t0, 2, src(), &p).unwrap();
    q.handle_packet(t0, 3, src(), &p).unwrap();
    let events = q.take_events();
    let names: Vec<&str> = found(&events)
        .iter()
        .map(|s| s.key.interface.as_str())
        .collect();
    assert_eq!(names, ["eth0", "eth1"]);
    // eth1 goes away: its service is removed, eth0's stays.
    q.set_interfaces(t0, &[eth0()]);
    let events = q.take_events();
    assert!(matches!(&events[..], [MdnsEvent::Removed(s)] if s.key.interface == "eth1"));
    assert_eq!(q.services().len(), 1);
}

#[test]
fn unusable_packets_are_reported_and_change_nothing() {
    let t0 = Instant::now();
    let mut q = querier(t0);
    assert!(matches!(
        q.handle_packet(t0, 2, src(), b"\x00\x01garbage"),
        Err(MdnsError::Malformed(_))
    ));
    let p = Announce::default().packet();
    assert_eq!(
        q.handle_packet(t0, 2, "192.168.7.10:40000".parse().unwrap(), &p),
        Err(MdnsError::WrongSourcePort(40000))
    );
    assert_eq!(
        q.handle_packet(t0, 9, src(), &p),
        Err(MdnsError::UnknownInterface(9))
    );
    // A query (someone else browsing) is not an answer.
    let query = query_packets(
        &[Question {
            name: name("_nvme-disc._tcp.local"),
            qtype: RecordType::Ptr,
            unicast_response: false,
        }],
        &Announce::default().records().0,
        1452,
    )
    .unwrap();
    q.handle_packet(t0, 2, src(), &query[0]).unwrap();
    // Records of other services are not cached.
    let other = Message {
        response: true,
        answers: vec![Record {
            name: name("_http._tcp.local"),
            ttl: 100,
            cache_flush: false,
            data: RData::Ptr(name("web._http._tcp.local")),
        }],
        ..Message::default()
    };
    q.handle_packet(t0, 2, src(), &other.emit().unwrap())
        .unwrap();
    assert!(q.take_events().is_empty());
    let stats = &q.stats()[0];
    assert_eq!((stats.packets_ignored, stats.packets_received), (2, 1));
    // Still works.
    q.handle_packet(t0, 2, src(), &p).unwrap();
    assert_eq!(found(&q.take_events()).len(), 1);
}

#[test]
fn a_flood_of_services_is_capped_per_interface() {
    let t0 = Instant::now();
    let mut q = querier(t0);
    let service = name("_nvme-disc._tcp.local");
    for batch in 0..50 {
        let records = (0..100)
            .map(|i| Record {
                name: service.clone(),
                ttl: 4500,
                cache_flush: false,
                data: RData::Ptr(service.child(format!("x{batch}-{i}").as_bytes()).unwrap()),
            })
            .collect();
        q.handle_packet(t0, 2, src(), &response(records)).unwrap();
    }
    let stats = &q.stats()[0];
    assert_eq!(stats.records_dropped, 5000 - 1024);
    // The known answers of the next browse query are split over packets
    // that each fit a frame.
    let out = q.poll(t0 + Duration::from_millis(120));
    assert!(out.len() > 2);
    assert!(out.iter().all(|p| p.bytes.len() <= QUERY_TARGET_LEN));
}

#[test]
fn an_unknown_transport_is_reported_as_none() {
    let t0 = Instant::now();
    let mut q = querier(t0);
    let a = Announce {
        txt: vec!["p=fc"],
        ..Announce::default()
    };
    q.handle_packet(t0, 2, src(), &a.packet()).unwrap();
    let events = q.take_events();
    let s = found(&events)[0];
    assert_eq!(s.transport, None);
    assert_eq!(s.nqn, nvmf_proto::WELL_KNOWN_DISCOVERY_NQN);
}

#[test]
fn an_interface_without_ipv6_is_queried_over_ipv4_only() {
    let t0 = Instant::now();
    let mut q = Querier::new(QuerierConfig::default());
    q.set_interfaces(
        t0,
        &[MdnsInterface {
            ipv6: false,
            ..eth0()
        }],
    );
    let out = q.poll(t0 + Duration::from_millis(120));
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].family, AddressFamily::Ipv4);
    // Gaining IPv6 restarts the browse schedule.
    q.set_interfaces(t0 + Duration::from_secs(10), &[eth0()]);
    let out = q.poll(t0 + Duration::from_millis(10_120));
    assert_eq!(out.len(), 2);
}

/// The steady state against a responder that answers every query with its
/// records (TTLs 4500 s, addresses 120 s, as Avahi uses).
#[test]
fn steady_state_query_rate() {
    let t0 = Instant::now();
    let mut q = querier(t0);
    let a = Announce::default().packet();
    let mut sent_in_last_hour = 0u64;
    let hour = Duration::from_secs(3600);
    while let Some(t) = q.next_deadline() {
        if t > t0 + 3 * hour {
            break;
        }
        let out = q.poll(t);
        if !out.is_empty() {
            q.handle_packet(t, 2, src(), &a).unwrap();
        }
        if t > t0 + 2 * hour {
            sent_in_last_hour += out.len() as u64;
        }
    }
    let per_minute = sent_in_last_hour as f64 / 60.0;
    println!(
        "steady state: {per_minute:.2} query packets per minute on one interface (IPv4 + IPv6)"
    );
    // Address records (120 s) are refreshed at 80 %: about one query per
    // 96 s per family.
    assert!(per_minute < 2.0, "{per_minute}");
    assert_eq!(q.services().len(), 1);
}

#[test]
fn services_give_controller_ids_as_nvme_stas_does() {
    let t0 = Instant::now();
    let mut q = querier(t0);
    q.handle_packet(t0, 2, src(), &Announce::default().packet())
        .unwrap();
    let s = &q.services()[0];
    let cids = s.cids(true);
    assert_eq!(cids.len(), 2);
    let get = |c: &stas_config::Cid, k: &str| c.get(k).cloned().unwrap_or_default();
    assert_eq!(get(&cids[0], "transport"), "tcp");
    assert_eq!(get(&cids[0], "traddr"), "192.168.7.10");
    assert_eq!(get(&cids[1], "traddr"), "fe80::7");
    assert_eq!(get(&cids[0], "trsvcid"), "8009");
    assert_eq!(get(&cids[0], "host-iface"), "eth0");
    assert_eq!(get(&cids[0], "subsysnqn"), "nqn.2014-08.com.example:cdc");
    // Without TP8013 in the kernel, the well-known NQN.
    assert_eq!(
        get(&s.cids(false)[0], "subsysnqn"),
        nvmf_proto::WELL_KNOWN_DISCOVERY_NQN
    );
    // RDMA: no host-iface; an invalid transport: nothing.
    let mut rdma = s.clone();
    rdma.transport = Some(Transport::Rdma);
    assert_eq!(get(&rdma.cids(true)[0], "host-iface"), "");
    rdma.transport = None;
    assert!(rdma.cids(true).is_empty());
}
