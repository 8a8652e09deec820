#![no_main]
//! mDNS messages: any bytes parse to a message or an error; the TP8009 TXT
//! reading takes any items; a parsed message with only the record types
//! stas keeps emits back and parses to the same message. The same bytes,
//! fed to the querier as a response, never make it panic or outgrow its
//! cache, and its timers run on.

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use nvmf_proto::mdns::{txt_dict, txt_nqn, txt_transport, Message, RData};
use stas_mdns::{MdnsInterface, Querier, QuerierConfig};

fuzz_target!(|data: &[u8]| {
    let t0 = Instant::now();
    let mut q = Querier::new(QuerierConfig {
        max_records_per_interface: 16,
        ..QuerierConfig::default()
    });
    q.set_interfaces(
        t0,
        &[MdnsInterface { index: 2, name: "eth0".into(), ipv4: true, ipv6: true }],
    );
    let from = "192.0.2.1:5353".parse().unwrap();
    let _ = q.handle_packet(t0, 2, from, data);
    let _ = q.handle_packet(t0 + Duration::from_secs(2), 2, from, data);
    for s in [0, 1, 3, 100, 5000] {
        for p in q.poll(t0 + Duration::from_secs(s)) {
            assert!(p.bytes.len() <= 1452);
        }
    }
    let _ = q.take_events();
    assert!(q.stats().iter().all(|s| s.records_dropped <= 2 * 9000 / 11));

    let Ok(m) = Message::parse(data) else { return };
    assert!(m.questions.len() + m.records().count() <= data.len() / 5);
    for r in m.records() {
        let _ = r.name.to_string();
        if let RData::Txt(items) = &r.data {
            let d = txt_dict(items);
            let _ = (txt_transport(&d), txt_nqn(&d));
        }
    }
    if m.records().any(|r| matches!(r.data, RData::Other(_))) {
        return;
    }
    if let Ok(raw) = m.emit() {
        let again = Message::parse(&raw).expect("an emitted message parses");
        assert_eq!(again, m);
    }
});
