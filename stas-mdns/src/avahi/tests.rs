//! The Avahi backend's bookkeeping, without a bus: how items and resolver
//! results become the same events the built-in querier gives.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;

const V4: i32 = 0;
const V6: i32 = 1;

fn key(ifindex: i32, protocol: i32, name: &str) -> ItemKey {
    ItemKey {
        ifindex,
        protocol,
        name: name.into(),
        service_type: "_nvme-disc._tcp".into(),
        domain: "local".into(),
    }
}

fn resolution(address: &str, port: u16, txt: &[&str]) -> Resolution {
    Resolution {
        host: "dc.local".into(),
        address: address.parse().unwrap(),
        port,
        txt: txt.iter().map(|t| t.as_bytes().to_vec()).collect(),
    }
}

fn path(p: &str) -> OwnedObjectPath {
    OwnedObjectPath::try_from(p).unwrap()
}

fn addrs(s: &DiscoveredService) -> Vec<String> {
    s.addresses.iter().map(|a| a.addr.to_string()).collect()
}

#[test]
fn an_item_is_published_once_resolved_with_the_querier_s_naming() {
    let mut st = AvahiState::default();
    let k = key(3, V4, "my dc.1");
    assert!(st.item_new(k.clone(), "eth0".into(), 3).is_some());
    assert!(st.take_events().is_empty(), "nothing before Found");
    assert!(st.found(&k, resolution("10.0.0.2", 8009, &["P=tcp", "nqn=nqn.x"])));
    let events = st.take_events();
    let [MdnsEvent::Found(s)] = events.as_slice() else {
        panic!("{events:?}");
    };
    assert_eq!(s.key.interface, "eth0");
    assert_eq!(s.key.ifindex, 3);
    assert_eq!(s.key.instance, "my dc\\.1", "escaped like a DNS label");
    assert_eq!(s.key.service_type, "_nvme-disc._tcp.local");
    assert_eq!(s.host, "dc.local");
    assert_eq!(s.port, 8009);
    assert_eq!(s.transport, Some(nvmf_proto::mdns::Transport::Tcp));
    assert_eq!(s.nqn, "nqn.x");
    assert_eq!(s.ttl, 0, "Avahi does not say");
    assert_eq!(addrs(s), ["10.0.0.2"]);
    assert_eq!(st.services().len(), 1);
}

#[test]
fn ipv4_and_ipv6_items_merge_into_one_service() {
    let mut st = AvahiState::default();
    let (k4, k6) = (key(3, V4, "dc"), key(3, V6, "dc"));
    st.item_new(k4.clone(), "eth0".into(), 3);
    st.item_new(k6.clone(), "eth0".into(), 3);
    st.found(&k6, resolution("fe80::2", 8009, &["p=tcp"]));
    st.found(&k4, resolution("10.0.0.2", 8009, &["p=tcp"]));
    let events = st.take_events();
    assert!(matches!(events[0], MdnsEvent::Found(_)), "{events:?}");
    let MdnsEvent::Updated(s) = &events[1] else {
        panic!("{events:?}");
    };
    assert_eq!(addrs(s), ["10.0.0.2", "fe80::2"]);
    assert_eq!(st.services().len(), 1);

    // The same Found again changes nothing; a new port is an update.
    st.found(&k4, resolution("10.0.0.2", 8009, &["p=tcp"]));
    assert!(st.take_events().is_empty());
    st.found(&k4, resolution("10.0.0.2", 4420, &["p=tcp"]));
    let events = st.take_events();
    assert!(
        matches!(&events[..], [MdnsEvent::Updated(s)] if s.port == 4420),
        "{events:?}"
    );

    // One protocol gone: an update; both gone: removed.
    st.item_remove(&k6);
    let events = st.take_events();
    assert!(
        matches!(&events[..], [MdnsEvent::Updated(s)] if addrs(s) == ["10.0.0.2"]),
        "{events:?}"
    );
    st.item_remove(&k4);
    let events = st.take_events();
    assert!(matches!(&events[..], [MdnsEvent::Removed(_)]), "{events:?}");
    assert!(st.services().is_empty());
}

#[test]
fn interfaces_are_told_apart_and_duplicates_ignored() {
    let mut st = AvahiState::default();
    let (a, b) = (key(3, V4, "dc"), key(4, V4, "dc"));
    assert!(st.item_new(a.clone(), "eth0".into(), 3).is_some());
    assert!(
        st.item_new(a.clone(), "eth0".into(), 3).is_none(),
        "duplicate"
    );
    st.item_new(b.clone(), "eth1".into(), 4);
    st.found(&a, resolution("10.0.0.2", 8009, &["p=tcp"]));
    st.found(&b, resolution("10.0.1.2", 8009, &["p=tcp"]));
    let on: Vec<String> = st
        .services()
        .iter()
        .map(|s| s.key.interface.clone())
        .collect();
    assert_eq!(on, ["eth0", "eth1"]);
    st.item_remove(&b);
    let events = st.take_events();
    assert!(
        matches!(events.last(), Some(MdnsEvent::Removed(s)) if s.key.interface == "eth1"),
        "{events:?}"
    );
    assert_eq!(st.services().len(), 1);
}

#[test]
fn found_for_an_unknown_item_is_ignored() {
    let mut st = AvahiState::default();
    assert!(!st.found(&key(3, V4, "dc"), resolution("10.0.0.2", 8009, &["p=tcp"])));
    assert!(st.take_events().is_empty());
    assert!(st.services().is_empty());
}

#[test]
fn a_resolver_failure_unpublishes_until_found_again() {
    let mut st = AvahiState::default();
    let k = key(3, V4, "dc");
    let generation = st.item_new(k.clone(), "eth0".into(), 3).unwrap();
    assert!(st
        .resolver_created(&k, generation, path("/Client1/ServiceResolver1"))
        .is_none());
    assert_eq!(st.resolver_item("/Client1/ServiceResolver1"), Some(&k));
    st.found(&k, resolution("10.0.0.2", 8009, &["p=tcp"]));
    st.take_events();
    st.unresolved(&k);
    assert!(matches!(&st.take_events()[..], [MdnsEvent::Removed(_)]));
    st.found(&k, resolution("10.0.0.2", 8009, &["p=tcp"]));
    assert!(matches!(&st.take_events()[..], [MdnsEvent::Found(_)]));
    assert_eq!(
        st.item_remove(&k),
        Some(path("/Client1/ServiceResolver1")),
        "its resolver is handed back to be freed"
    );
    assert_eq!(st.resolver_item("/Client1/ServiceResolver1"), None);
}

#[test]
fn a_resolver_created_for_an_item_gone_meanwhile_is_handed_back() {
    let mut st = AvahiState::default();
    let k = key(3, V4, "dc");
    let first = st.item_new(k.clone(), "eth0".into(), 3).unwrap();
    st.item_remove(&k);
    let second = st.item_new(k.clone(), "eth0".into(), 3).unwrap();
    assert_eq!(
        st.resolver_created(&k, first, path("/Client1/ServiceResolver1")),
        Some(path("/Client1/ServiceResolver1")),
        "made for the removed item"
    );
    assert!(st
        .resolver_created(&k, second, path("/Client1/ServiceResolver2"))
        .is_none());
    assert_eq!(st.resolver_paths(), [path("/Client1/ServiceResolver2")]);
}

#[test]
fn avahi_leaving_removes_every_service() {
    let mut st = AvahiState::default();
    for (i, name) in [(3, "a"), (4, "b")] {
        let k = key(i, V4, name);
        st.item_new(k.clone(), format!("eth{i}"), u32::try_from(i).unwrap());
        st.found(&k, resolution("10.0.0.2", 8009, &["p=tcp"]));
    }
    st.take_events();
    st.clear();
    let events = st.take_events();
    assert_eq!(events.len(), 2);
    assert!(events.iter().all(|e| matches!(e, MdnsEvent::Removed(_))));
    assert!(st.services().is_empty());
    assert!(st.resolver_paths().is_empty());
}

#[test]
fn an_invalid_transport_is_published_without_one_like_the_querier() {
    let mut st = AvahiState::default();
    let k = key(3, V4, "dc");
    st.item_new(k.clone(), "eth0".into(), 3);
    st.found(&k, resolution("10.0.0.2", 8009, &["p=fc", "=x", "junk"]));
    let s = &st.services()[0];
    assert_eq!(s.transport, None);
    assert_eq!(s.nqn, nvmf_proto::WELL_KNOWN_DISCOVERY_NQN);
    assert!(s.cids(true).is_empty());
}
