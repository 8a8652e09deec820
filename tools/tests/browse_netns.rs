//! `stasadm browse` in a network namespace, against the fixtures mDNS
//! responder in another, joined by a veth pair. Needs root and iproute2;
//! fails when namespaces cannot be made unless STAS_SKIP_LAB=1.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use fixtures::mdns_responder::{ResponderConfig, ResponderThread};
use fixtures::netns::{veth, NetNs, VethEnd};

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

fn browse(ns: &NetNs, args: &[&str]) -> std::process::Output {
    ns.command(env!("CARGO_BIN_EXE_stasadm"))
        .arg("browse")
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn browse_prints_the_dc_heard_and_says_when_none_is() {
    if !netns_available("browse_prints_the_dc_heard_and_says_when_none_is") {
        return;
    }
    let q = NetNs::new("browse-q").unwrap();
    let r = NetNs::new("browse-r").unwrap();
    veth(
        &q,
        &VethEnd {
            name: "q0",
            ipv4: Some("10.78.1.1/24"),
            ipv6_link_local: Some("fe80::1:1/64"),
        },
        &r,
        &VethEnd {
            name: "r0",
            ipv4: Some("10.78.1.2/24"),
            ipv6_link_local: Some("fe80::1:2/64"),
        },
    )
    .unwrap();

    // Nobody announces: exit 0, an empty array, and a line saying so.
    let o = browse(&q, &["--timeout", "1", "--json"]);
    assert!(o.status.success(), "{o:?}");
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "[]");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("No discovery controller was heard on q0"),
        "{o:?}"
    );

    let config = ResponderConfig {
        txt: vec!["p=roce".into(), "NQN=nqn.2014-08.com.example:cdc".into()],
        ..ResponderConfig::default()
    };
    let responder = ResponderThread::start(&r.name, config).unwrap();
    let o = browse(&q, &["--timeout", "1.5", "--json"]);
    assert!(o.status.success(), "{o:?}");
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let list = j.as_array().unwrap();
    assert_eq!(list.len(), 2, "{j:#}");
    let expect = [("IPv4", "10.78.1.2", ""), ("IPv6", "fe80::1:2", "q0")];
    for (dc, (family, address, scope)) in list.iter().zip(expect) {
        assert_eq!(dc["interface"], "q0");
        assert_eq!(dc["family"], family);
        assert_eq!(dc["address"], address);
        assert_eq!(dc["scope"], scope);
        assert_eq!(dc["port"], "8009");
        assert_eq!(dc["transport"], "rdma");
        assert_eq!(dc["nqn"], "nqn.2014-08.com.example:cdc");
        assert_eq!(dc["ttl"], "120");
        assert_eq!(dc["instance"], "stas-test-dc");
    }

    let o = browse(&q, &["--timeout", "1.5"]);
    assert!(o.status.success(), "{o:?}");
    let text = String::from_utf8_lossy(&o.stdout);
    println!("{text}");
    assert!(text.starts_with("INTERFACE  FAMILY  ADDRESS"), "{text}");
    assert!(text.contains("fe80::1:2%q0"), "{text}");

    // auto with no bus to find avahi-daemon on is the built-in querier.
    let o = browse(
        &q,
        &[
            "--timeout",
            "1.5",
            "--backend",
            "auto",
            "--bus-address",
            "unix:path=/nonexistent/stas-bus",
        ],
    );
    assert!(o.status.success(), "{o:?}");
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("fe80::1:2%q0"),
        "{o:?}"
    );
    drop(responder);
}

#[test]
fn browse_through_avahi_without_a_bus_fails_and_says_why() {
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_stasadm"))
        .args([
            "browse",
            "--backend",
            "avahi",
            "--bus-address",
            "unix:path=/nonexistent/stas-bus",
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("Avahi backend: connect to the bus") && err.contains("system bus"),
        "{err}"
    );
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_stasadm"))
        .args(["browse", "--backend", "bonjour"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{o:?}");
}
