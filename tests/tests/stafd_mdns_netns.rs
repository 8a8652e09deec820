//! stafd's zero-touch discovery as a program, in network namespaces: a
//! responder in one namespace announces a discovery controller (with a TCP
//! listener on its port, so the reachability probe succeeds); stafd runs in
//! the other on the simulated kernel (`--sim 0 --sim-zeroconf`) with a
//! private bus, and is observed with stafctl: the DC joins with origin
//! `discovered` and the interface it was heard on; a goodbye takes it out
//! of the mDNS view while the DC itself stays (persistence). Needs root,
//! iproute2 and dbus-daemon; fails without them unless STAS_SKIP_LAB=1.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test may panic

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fixtures::mdns_responder::{Command as Say, ResponderConfig, ResponderThread};
use fixtures::netns::{veth, NetNs, VethEnd};
use stas_tests::bus::{Bus, Running};
use stas_tests::lab::{self, build_static};

fn stafctl_json(bin: &Path, bus: &str, args: &[&str]) -> serde_json::Value {
    let o = Command::new(bin)
        .arg("--bus-address")
        .arg(bus)
        .args(args)
        .arg("--json")
        .env_remove("STAS_BUS_ADDRESS")
        .output()
        .unwrap();
    serde_json::from_slice(&o.stdout).unwrap_or(serde_json::Value::Null)
}

fn wait(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while start.elapsed() < limit {
        if ok() {
            return start.elapsed();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("{what}: not within {limit:?}");
}

/// A TCP listener inside namespace `ns` accepting (and dropping) connects.
fn listen_in(ns: &str, addr: &str) {
    let (ns, addr) = (ns.to_owned(), addr.to_owned());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        fixtures::netns::enter(&ns).unwrap();
        let l = std::net::TcpListener::bind(&addr).unwrap();
        tx.send(()).unwrap();
        for c in l.incoming() {
            drop(c);
        }
    });
    rx.recv_timeout(Duration::from_secs(5)).unwrap();
}

#[test]
fn stafd_finds_an_announced_dc_on_the_interface_it_was_heard_on() {
    if lab::skip_requested("stafd_finds_an_announced_dc_on_the_interface_it_was_heard_on") {
        return;
    }
    if let Err(e) = fixtures::netns::available() {
        panic!("network namespaces are needed ({e}); run as root with iproute2, or set STAS_SKIP_LAB=1");
    }
    let b = build_static(&[("stafd", "stafd"), ("tools", "stafctl")]).unwrap();
    let (stafd, stafctl) = (&b[0], &b[1]);
    let target = NetNs::new("zt-dc").unwrap();
    let host = NetNs::new("zt-host").unwrap();
    veth(
        &target,
        &VethEnd {
            name: "dc0",
            ipv4: Some("10.77.0.1/24"),
            ipv6_link_local: None,
        },
        &host,
        &VethEnd {
            name: "host0",
            ipv4: Some("10.77.0.2/24"),
            ipv6_link_local: None,
        },
    )
    .unwrap();
    listen_in(&target.name, "10.77.0.1:8009");
    let bus = Bus::start("zt").unwrap();
    let addr = bus.address().to_owned();
    let _daemon = Running::spawn(
        host.command(stafd.to_str().unwrap())
            .args(["--sim", "0", "--sim-zeroconf", "--bus-address", &addr])
            .stdout(Stdio::null()),
    )
    .unwrap();
    wait("stafd on the bus", Duration::from_secs(10), || {
        stafctl_json(stafctl, &addr, &["ls"]).is_array()
    });
    let start = Instant::now();
    let responder = ResponderThread::start(&target.name, ResponderConfig::default()).unwrap();
    responder.run(Say::Announce).unwrap();
    wait(
        "the DC listed with origin discovered",
        Duration::from_secs(20),
        || {
            stafctl_json(stafctl, &addr, &["ls", "-d"])
                .as_array()
                .is_some_and(|a| {
                    a.iter().any(|d| {
                        d["traddr"] == "10.77.0.1"
                            && d["host-iface"] == "host0"
                            && d["origin"] == "discovered"
                    })
                })
        },
    );
    // stafctl is polled every 20 ms and takes a few ms itself.
    println!(
        "responder start -> stafd lists the DC (heard, probed, origin discovered): {:.0} ms",
        start.elapsed().as_secs_f64() * 1000.0
    );
    let view = stafctl_json(stafctl, &addr, &["status"]);
    let services = view["avahi"]["services"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    assert!(
        services
            .iter()
            .any(|(k, v)| k.starts_with("(host0, IPv4, stas-test-dc.local")
                && v["reachable"] == "True"),
        "{}",
        view["avahi"]
    );

    // Goodbye: gone from the mDNS view; the DC itself stays (it ages out
    // only when also unreachable, after zeroconf-connections-persistence).
    responder.run(Say::Goodbye).unwrap();
    wait(
        "the service gone from the mDNS view",
        Duration::from_secs(10),
        || {
            stafctl_json(stafctl, &addr, &["status"])["avahi"]["services"]
                .as_object()
                .is_some_and(serde_json::Map::is_empty)
        },
    );
    let dcs = stafctl_json(stafctl, &addr, &["ls"]);
    assert!(
        dcs.as_array()
            .is_some_and(|a| a.iter().any(|d| d["traddr"] == "10.77.0.1")),
        "{dcs}"
    );
    responder.stop().unwrap();
}
