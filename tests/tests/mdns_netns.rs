//! The built-in mDNS querier (stas-mdns's driver on nvmf-kernel's
//! sockets) against the fixtures responder, each in its own network
//! namespace, joined by veth pairs. Needs root and iproute2; fails when
//! namespaces cannot be made unless STAS_SKIP_LAB=1.
//!
//! Timing figures (announcement to event, queries sent) are printed, not
//! asserted: run with `--nocapture` to see them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::IpAddr;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use fixtures::mdns_responder::{Command, ResponderConfig, ResponderThread};
use fixtures::netns::{veth, NetNs, VethEnd};
use stas_mdns::driver::{DriverConfig, MdnsBrowser};
use stas_mdns::{AddressFamily, DiscoveredService, InterfaceStats, MdnsEvent};

/// True when the test should run; false (after saying so) when namespaces
/// are unavailable and STAS_SKIP_LAB=1; panics otherwise.
fn netns_available(test: &str) -> bool {
    match fixtures::netns::available() {
        Ok(()) => true,
        Err(e) if std::env::var("STAS_SKIP_LAB").as_deref() == Ok("1") => {
            eprintln!(
                "{test} SKIPPED: network namespaces unavailable ({e}); STAS_SKIP_LAB=1 is set"
            );
            false
        }
        Err(e) => panic!(
            "{test}: network namespaces are needed ({e}); run as root with iproute2, \
             or set STAS_SKIP_LAB=1 to skip"
        ),
    }
}

/// The querier running in its own thread inside a namespace, its events
/// time-stamped as they arrive.
struct QuerierThread {
    events: mpsc::Receiver<(Instant, MdnsEvent)>,
    seen: Vec<(Instant, MdnsEvent)>,
    pending: Vec<(Instant, MdnsEvent)>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<(Vec<InterfaceStats>, Vec<DiscoveredService>)>>,
}

impl QuerierThread {
    fn start(ns: &NetNs) -> Self {
        let (event_tx, events) = mpsc::channel();
        let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (ready_tx, ready_rx) = mpsc::channel();
        let name = ns.name.clone();
        let thread = std::thread::spawn(move || {
            fixtures::netns::enter(&name).unwrap();
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let config = DriverConfig {
                    rescan_interval: Duration::from_secs(1),
                    ..DriverConfig::default()
                };
                let mut browser = MdnsBrowser::start(config).unwrap();
                ready_tx.send(()).unwrap();
                tokio::pin!(stop_rx);
                loop {
                    tokio::select! {
                        _ = &mut stop_rx => break,
                        e = browser.events.recv() => match e {
                            Some(e) => {
                                if event_tx.send((Instant::now(), e)).is_err() {
                                    break;
                                }
                            }
                            None => break,
                        },
                    }
                }
                (browser.stats(), browser.services())
            })
        });
        ready_rx
            .recv_timeout(Duration::from_secs(5))
            .expect("the querier started");
        Self {
            events,
            seen: Vec::new(),
            pending: Vec::new(),
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// The first event not yet returned that matches `pred`, with when it
    /// arrived (events on several interfaces come in any order).
    fn wait_for(
        &mut self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&MdnsEvent) -> bool,
    ) -> (Instant, MdnsEvent) {
        if let Some(i) = self.pending.iter().position(|(_, e)| pred(e)) {
            return self.pending.remove(i);
        }
        let end = Instant::now() + timeout;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok((t, e)) => {
                    self.seen.push((t, e.clone()));
                    if pred(&e) {
                        return (t, e);
                    }
                    self.pending.push((t, e));
                }
                Err(_) => panic!(
                    "no {what} within {timeout:?}; events so far: {:#?}",
                    self.seen
                ),
            }
        }
    }

    fn stop(mut self) -> (Vec<InterfaceStats>, Vec<DiscoveredService>) {
        let _ = self.stop.take().unwrap().send(());
        self.thread.take().unwrap().join().unwrap()
    }
}

impl Drop for QuerierThread {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

fn found_on(iface: &'static str) -> impl Fn(&MdnsEvent) -> bool {
    move |e| matches!(e, MdnsEvent::Found(s) if s.key.interface == iface)
}

fn removed_on(iface: &'static str) -> impl Fn(&MdnsEvent) -> bool {
    move |e| matches!(e, MdnsEvent::Removed(s) if s.key.interface == iface)
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// Querier namespace with q0, responder namespace with r0.
fn pair(tag: &str, ipv4: bool) -> (NetNs, NetNs) {
    let q = NetNs::new(&format!("{tag}-q")).unwrap();
    let r = NetNs::new(&format!("{tag}-r")).unwrap();
    veth(
        &q,
        &VethEnd {
            name: "q0",
            ipv4: ipv4.then_some("10.77.1.1/24"),
            ipv6_link_local: Some("fe80::1:1/64"),
        },
        &r,
        &VethEnd {
            name: "r0",
            ipv4: ipv4.then_some("10.77.1.2/24"),
            ipv6_link_local: Some("fe80::1:2/64"),
        },
    )
    .unwrap();
    (q, r)
}

fn addrs(s: &DiscoveredService) -> Vec<String> {
    s.addresses.iter().map(|a| a.addr.to_string()).collect()
}

#[test]
fn a_dc_announced_is_found_with_the_interface_it_was_heard_on() {
    if !netns_available("a_dc_announced_is_found_with_the_interface_it_was_heard_on") {
        return;
    }
    let (q, r) = pair("found", true);
    let mut querier = QuerierThread::start(&q);
    // Let the querier's first queries go unanswered: what is measured is
    // the announcement.
    std::thread::sleep(Duration::from_millis(300));
    let responder = ResponderThread::start(&r.name, ResponderConfig::default()).unwrap();
    let announced = responder.run(Command::Announce).unwrap();
    let (at, e) = querier.wait_for("Found on q0", Duration::from_secs(5), found_on("q0"));
    println!("mDNS announcement -> Found event: {}", ms(at - announced));

    let s = e.service();
    assert_eq!(s.key.instance, "stas-test-dc");
    assert_eq!(s.key.service_type, "_nvme-disc._tcp.local");
    assert_eq!(addrs(s), ["10.77.1.2", "fe80::1:2"]);
    let recs = s.records();
    assert_eq!(recs[0].family, AddressFamily::Ipv4);
    assert_eq!(recs[0].scope, None);
    assert_eq!(recs[1].family, AddressFamily::Ipv6);
    assert_eq!(recs[1].scoped_address(), "fe80::1:2%q0");
    for rec in &recs {
        assert_eq!(rec.interface, "q0");
        assert_eq!(rec.port, 8009);
        assert_eq!(rec.transport.map(|t| t.as_str()), Some("tcp"));
        assert_eq!(rec.nqn, nvmf_proto::WELL_KNOWN_DISCOVERY_NQN);
    }
    assert_eq!(recs[0].ttl, 120);
    assert_eq!(s.ttl, 4500);

    // What the querier sends once it knows the service (the start of the
    // back-off; the steady state, an hour on, is in stas-mdns's
    // fake-clock test).
    let window = Duration::from_secs(4);
    std::thread::sleep(window);
    let queries = responder.stop().unwrap();
    let (stats, services) = querier.stop();
    assert_eq!(services.len(), 1, "{services:?}");
    let q0 = stats.iter().find(|s| s.interface == "q0").unwrap();
    println!(
        "queries heard by the responder on r0 in the first {:.1} s: {} ({} IPv4 + {} IPv6 sent by the querier)",
        (window + Duration::from_millis(300)).as_secs_f64(),
        queries.get("r0").copied().unwrap_or(0),
        q0.queries_sent_v4,
        q0.queries_sent_v6
    );
    assert!(q0.queries_sent_v4 > 0 && q0.queries_sent_v6 > 0, "{q0:?}");
}

#[test]
fn a_goodbye_removes_the_dc() {
    if !netns_available("a_goodbye_removes_the_dc") {
        return;
    }
    let (q, r) = pair("bye", true);
    let responder = ResponderThread::start(&r.name, ResponderConfig::default()).unwrap();
    let mut querier = QuerierThread::start(&q);
    // Found through the answer to its first query.
    let started = Instant::now();
    let (at, _) = querier.wait_for("Found on q0", Duration::from_secs(5), found_on("q0"));
    println!(
        "querier start -> Found (answer to its first query): {}",
        ms(at - started)
    );
    let bye = responder.run(Command::Goodbye).unwrap();
    let (at, _) = querier.wait_for("Removed on q0", Duration::from_secs(5), removed_on("q0"));
    println!(
        "goodbye -> Removed: {} (RFC 6762 §10.1 keeps it 1 s)",
        ms(at - bye)
    );
    assert!(
        at - bye >= Duration::from_millis(900),
        "removed before the 1 s grace"
    );
    let (_, services) = querier.stop();
    assert!(services.is_empty(), "{services:?}");
}

#[test]
fn ttl_expiry_removes_the_dc() {
    if !netns_available("ttl_expiry_removes_the_dc") {
        return;
    }
    let (q, r) = pair("ttl", true);
    let mut querier = QuerierThread::start(&q);
    let config = ResponderConfig {
        ttl: 3,
        host_ttl: 3,
        ..ResponderConfig::default()
    };
    let responder = ResponderThread::start(&r.name, config).unwrap();
    responder.run(Command::Mute).unwrap();
    let announced = responder.run(Command::Announce).unwrap();
    querier.wait_for("Found on q0", Duration::from_secs(5), found_on("q0"));
    let (at, _) = querier.wait_for("Removed on q0", Duration::from_secs(8), removed_on("q0"));
    println!(
        "announcement with TTL 3 s -> Removed: {}",
        ms(at - announced)
    );
    // Before expiring, the querier asked again (80-95 % of the TTL).
    let queries = responder.stop().unwrap();
    println!("queries heard while muted: {queries:?}");
    assert!(queries.get("r0").copied().unwrap_or(0) > 0);
    let (_, services) = querier.stop();
    assert!(services.is_empty());
}

#[test]
fn ipv6_link_local_works_and_keeps_its_scope() {
    if !netns_available("ipv6_link_local_works_and_keeps_its_scope") {
        return;
    }
    let (q, r) = pair("v6", false);
    let responder = ResponderThread::start(&r.name, ResponderConfig::default()).unwrap();
    assert_eq!(
        responder.links,
        vec![(
            "r0".to_owned(),
            vec!["fe80::1:2".parse::<IpAddr>().unwrap()]
        )]
    );
    let mut querier = QuerierThread::start(&q);
    let (_, e) = querier.wait_for("Found on q0", Duration::from_secs(5), found_on("q0"));
    let recs = e.service().records();
    assert_eq!(recs.len(), 1, "{recs:?}");
    assert_eq!(recs[0].family, AddressFamily::Ipv6);
    assert_eq!(recs[0].scope.as_deref(), Some("q0"));
    assert_eq!(recs[0].scoped_address(), "fe80::1:2%q0");
    let (stats, _) = querier.stop();
    let q0 = stats.iter().find(|s| s.interface == "q0").unwrap();
    assert_eq!(q0.queries_sent_v4, 0, "no IPv4 on q0: {q0:?}");
    drop(responder);
}

#[test]
fn two_interfaces_with_the_same_service_are_told_apart() {
    if !netns_available("two_interfaces_with_the_same_service_are_told_apart") {
        return;
    }
    let q = NetNs::new("two-q").unwrap();
    let r = NetNs::new("two-r").unwrap();
    for (n, q_name, r_name) in [(1, "q0", "r0"), (2, "q1", "r1")] {
        let (qa, ra) = (format!("10.77.{n}.1/24"), format!("10.77.{n}.2/24"));
        let (q6, r6) = (format!("fe80::{n}:1/64"), format!("fe80::{n}:2/64"));
        veth(
            &q,
            &VethEnd {
                name: q_name,
                ipv4: Some(&qa),
                ipv6_link_local: Some(&q6),
            },
            &r,
            &VethEnd {
                name: r_name,
                ipv4: Some(&ra),
                ipv6_link_local: Some(&r6),
            },
        )
        .unwrap();
    }
    let responder = ResponderThread::start(&r.name, ResponderConfig::default()).unwrap();
    let mut querier = QuerierThread::start(&q);
    let (_, e0) = querier.wait_for("Found on q0", Duration::from_secs(5), found_on("q0"));
    let (_, e1) = querier.wait_for("Found on q1", Duration::from_secs(5), found_on("q1"));
    assert_eq!(addrs(e0.service()), ["10.77.1.2", "fe80::1:2"]);
    assert_eq!(addrs(e1.service()), ["10.77.2.2", "fe80::2:2"]);
    assert_ne!(e0.service().key, e1.service().key);
    assert_eq!(e0.service().key.instance, e1.service().key.instance);

    // q1 disappears: its service goes at the next rescan, q0's stays.
    q.ip(&["link", "del", "q1"]).unwrap();
    querier.wait_for("Removed on q1", Duration::from_secs(5), removed_on("q1"));
    let (_, services) = querier.stop();
    let on: Vec<&str> = services.iter().map(|s| s.key.interface.as_str()).collect();
    assert_eq!(on, ["q0"]);
    drop(responder);
}

#[test]
fn malformed_packets_are_ignored() {
    if !netns_available("malformed_packets_are_ignored") {
        return;
    }
    let (q, r) = pair("bad", true);
    let mut querier = QuerierThread::start(&q);
    let responder = ResponderThread::start(&r.name, ResponderConfig::default()).unwrap();
    responder.run(Command::Mute).unwrap();
    let garbage: Vec<Vec<u8>> = vec![
        b"not dns at all".to_vec(),
        // A response claiming 65535 records of each kind.
        vec![
            0, 0, 0x84, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        ],
        // A response whose only answer's name points at itself.
        vec![
            0, 0, 0x84, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0xc0, 12, 0, 12, 0, 1, 0, 0, 0, 9, 0, 2, 0xc0,
            12,
        ],
        // A truncated announcement.
        {
            let mut full = Vec::new();
            full.extend_from_slice(&[0, 0, 0x84, 0, 0, 0, 0, 3, 0, 0, 0, 0]);
            full.extend_from_slice(
                b"\x0a_nvme-disc\x04_tcp\x05local\x00\x00\x0c\x00\x01\x00\x00\x11",
            );
            full
        },
    ];
    for g in &garbage {
        responder.run(Command::Raw(g.clone())).unwrap();
    }
    responder.run(Command::Announce).unwrap();
    let (_, e) = querier.wait_for("Found on q0", Duration::from_secs(5), found_on("q0"));
    assert_eq!(addrs(e.service()), ["10.77.1.2", "fe80::1:2"]);
    let (stats, _) = querier.stop();
    let q0 = stats.iter().find(|s| s.interface == "q0").unwrap();
    println!("counters after the garbage: {q0:?}");
    // Each bad packet goes out over IPv4 and IPv6; the IPv6 copy can be
    // lost while the link's IPv6 multicast route is still coming up, so
    // only the IPv4 copies are certain.
    assert!(
        q0.packets_ignored >= garbage.len() as u64,
        "every malformed packet is counted as ignored: {q0:?}"
    );
    drop(responder);
}
