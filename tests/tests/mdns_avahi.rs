//! The Avahi backend against a real avahi-daemon: avahi-daemon runs in a
//! network namespace on a private dbus-daemon, the fixtures responder
//! announces a discovery controller from a peer namespace, and the Avahi
//! backend and the built-in querier (both in the avahi-daemon's namespace,
//! sharing UDP 5353 with it) must report the same service. Also: avahi-daemon
//! restarting gives Removed, then Found again; Avahi's signals forged by
//! another bus client are ignored (without the sender check, the forged DC
//! is the first one found).
//!
//! Needs root, iproute2, dbus-daemon and avahi-daemon (scripts/test installs
//! them); fails when any is missing unless STAS_SKIP_LAB=1. Timings are
//! printed (`--nocapture`), not asserted.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use fixtures::mdns_responder::{Command as ResponderCommand, ResponderConfig, ResponderThread};
use fixtures::netns::{veth, NetNs, VethEnd};
use stas_mdns::avahi::avahi_present;
use stas_mdns::backend::MdnsBackend;
use stas_mdns::driver::DriverConfig;
use stas_mdns::{DiscoveredService, MdnsEvent, ServiceKey};
use stas_tests::bus::{Bus, Running};

/// True when the test should run; false (after saying so) when something
/// it needs is missing and STAS_SKIP_LAB=1; panics otherwise.
fn lab_available(test: &str) -> bool {
    let missing = fixtures::netns::available()
        .err()
        .map(|e| e.to_string())
        .or_else(|| {
            ["avahi-daemon", "dbus-daemon"].iter().find_map(|tool| {
                match Command::new(tool)
                    .arg("--version")
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                {
                    Ok(_) => None,
                    Err(e) => Some(format!("{tool}: {e}")),
                }
            })
        });
    match missing {
        None => true,
        Some(e) if std::env::var("STAS_SKIP_LAB").as_deref() == Ok("1") => {
            eprintln!("{test} SKIPPED: {e}; STAS_SKIP_LAB=1 is set");
            false
        }
        Some(e) => panic!(
            "{test}: needs root, iproute2, dbus-daemon and avahi-daemon ({e}); \
             run scripts/test (it installs them), or set STAS_SKIP_LAB=1 to skip"
        ),
    }
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

async fn connect(address: &str) -> zbus::Connection {
    zbus::connection::Builder::address(address)
        .unwrap()
        .build()
        .await
        .unwrap()
}

/// avahi-daemon in a namespace, on the private bus, with its own /run (a
/// tmpfs in the mount namespace `ip netns exec` makes) so that several can
/// run at once; killed when dropped.
struct AvahiDaemon {
    dir: PathBuf,
    daemon: Option<Running>,
    ns: String,
    bus_address: String,
}

impl AvahiDaemon {
    fn start(tag: &str, ns: &NetNs, interface: &str, bus_address: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("stas-avahi-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("avahi-daemon.conf"),
            format!(
                "[server]\nhost-name=stas-avahi-{tag}\nuse-ipv4=yes\nuse-ipv6=yes\n\
                 allow-interfaces={interface}\nenable-dbus=yes\n\
                 [wide-area]\nenable-wide-area=no\n\
                 [publish]\npublish-workstation=no\npublish-hinfo=no\n"
            ),
        )
        .unwrap();
        let mut daemon = Self {
            dir,
            daemon: None,
            ns: ns.name.clone(),
            bus_address: bus_address.to_owned(),
        };
        daemon.restart();
        daemon
    }

    /// Starts it (again), appending to its log.
    fn restart(&mut self) {
        let conf = self.dir.join("avahi-daemon.conf");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("log"))
            .unwrap();
        let script = format!(
            "mount -t tmpfs tmpfs /run && exec avahi-daemon -f {} --no-drop-root --no-chroot --no-rlimits",
            conf.display()
        );
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.ns, "sh", "-c", &script])
            .env("DBUS_SYSTEM_BUS_ADDRESS", &self.bus_address)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        // `ip netns exec` and `sh` exec into avahi-daemon: this child is it.
        self.daemon = Some(Running::spawn(&mut cmd).unwrap());
    }

    /// SIGKILL, no goodbye: the bus sees its name go.
    fn kill(&mut self) {
        self.daemon = None;
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
    }

    /// Waits until it owns org.freedesktop.Avahi on the bus.
    fn wait_on_bus(&self, bus: &zbus::Connection, rt: &tokio::runtime::Runtime) -> Duration {
        let start = Instant::now();
        while !rt.block_on(avahi_present(bus)) {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "avahi-daemon not on the bus after 10 s; its log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        start.elapsed()
    }
}

impl Drop for AvahiDaemon {
    fn drop(&mut self) {
        self.daemon = None;
        if std::thread::panicking() {
            eprintln!("avahi-daemon log:\n{}", self.log());
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A backend running in its own thread inside a namespace (the Avahi
/// backend too: it names interfaces by index, as seen from there), its
/// events time-stamped as they arrive.
struct SourceThread {
    backend: MdnsBackend,
    events: mpsc::Receiver<(Instant, MdnsEvent)>,
    /// The services as the events say they are.
    view: BTreeMap<ServiceKey, DiscoveredService>,
    log: Vec<(Instant, MdnsEvent)>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<Vec<DiscoveredService>>>,
}

impl SourceThread {
    fn start(ns: &NetNs, backend: MdnsBackend, bus_address: Option<&str>) -> Self {
        let (event_tx, events) = mpsc::channel();
        let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (ready_tx, ready_rx) = mpsc::channel();
        let name = ns.name.clone();
        let bus_address = bus_address.map(str::to_owned);
        let thread = std::thread::spawn(move || {
            fixtures::netns::enter(&name).unwrap();
            runtime().block_on(async move {
                let bus = match &bus_address {
                    Some(a) => Some(connect(a).await),
                    None => None,
                };
                let config = DriverConfig {
                    rescan_interval: Duration::from_secs(1),
                    ..DriverConfig::default()
                };
                let mut source = stas_mdns::backend::start(backend, config, bus.as_ref())
                    .await
                    .unwrap();
                ready_tx.send(source.backend()).unwrap();
                tokio::pin!(stop_rx);
                loop {
                    tokio::select! {
                        _ = &mut stop_rx => break,
                        e = source.recv() => match e {
                            Some(e) => {
                                if event_tx.send((Instant::now(), e)).is_err() {
                                    break;
                                }
                            }
                            None => break,
                        },
                    }
                }
                source.services()
            })
        });
        let backend = ready_rx
            .recv_timeout(Duration::from_secs(5))
            .expect("the backend started");
        Self {
            backend,
            events,
            view: BTreeMap::new(),
            log: Vec::new(),
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// Applies events until `pred` holds for the event just applied and
    /// the view after it; returns when that event arrived.
    fn wait_for(
        &mut self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&MdnsEvent, &BTreeMap<ServiceKey, DiscoveredService>) -> bool,
    ) -> (Instant, MdnsEvent) {
        let end = Instant::now() + timeout;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            let Ok((at, e)) = self.events.recv_timeout(left) else {
                panic!(
                    "{}: no {what} within {timeout:?}; events so far: {:#?}",
                    self.backend, self.log
                );
            };
            self.log.push((at, e.clone()));
            match &e {
                MdnsEvent::Found(s) => {
                    assert!(
                        self.view.insert(s.key.clone(), s.clone()).is_none(),
                        "{}: Found for a service already there: {e:?}",
                        self.backend
                    );
                }
                MdnsEvent::Updated(s) => {
                    assert!(
                        self.view.insert(s.key.clone(), s.clone()).is_some(),
                        "{}: Updated for an unknown service: {e:?}",
                        self.backend
                    );
                }
                MdnsEvent::Removed(s) => {
                    assert!(
                        self.view.remove(&s.key).is_some(),
                        "{}: Removed for an unknown service: {e:?}",
                        self.backend
                    );
                }
            }
            if pred(&e, &self.view) {
                return (at, e);
            }
        }
    }

    fn stop(mut self) -> Vec<DiscoveredService> {
        let _ = self.stop.take().unwrap().send(());
        self.thread.take().unwrap().join().unwrap()
    }
}

impl Drop for SourceThread {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

/// Querier-and-avahi namespace with q0, responder namespace with r0.
fn pair(tag: &str) -> (NetNs, NetNs) {
    let q = NetNs::new(&format!("{tag}-q")).unwrap();
    let r = NetNs::new(&format!("{tag}-r")).unwrap();
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
    (q, r)
}

const BOTH_ADDRESSES: [&str; 2] = ["10.78.1.2", "fe80::1:2"];

fn addrs(s: &DiscoveredService) -> Vec<String> {
    s.addresses.iter().map(|a| a.addr.to_string()).collect()
}

/// The DC resolved on q0 with both its addresses.
fn resolved_on_q0(_: &MdnsEvent, view: &BTreeMap<ServiceKey, DiscoveredService>) -> bool {
    view.values()
        .any(|s| s.key.interface == "q0" && addrs(s) == BOTH_ADDRESSES)
}

/// What both backends must agree on: everything but the TTLs (Avahi does
/// not report them).
fn comparable(s: &DiscoveredService) -> String {
    format!(
        "{} ifindex={} instance={} type={} host={} port={} transport={:?} nqn={} txt={:?} addresses={:?}",
        s.key.interface,
        s.key.ifindex,
        s.key.instance,
        s.key.service_type,
        s.host,
        s.port,
        s.transport.map(|t| t.as_str()),
        s.nqn,
        s.txt,
        addrs(s)
    )
}

#[test]
fn avahi_and_the_builtin_querier_report_the_same_dc() {
    if !lab_available("avahi_and_the_builtin_querier_report_the_same_dc") {
        return;
    }
    let (q, r) = pair("avsame");
    let bus = Bus::start("avahi-same").unwrap();
    let rt = runtime();
    let probe = rt.block_on(connect(bus.address()));
    let avahi = AvahiDaemon::start("same", &q, "q0", bus.address());
    let on_bus = avahi.wait_on_bus(&probe, &rt);
    println!("avahi-daemon start -> on the bus: {}", ms(on_bus));

    // Auto picks Avahi since it is on the bus; the built-in querier binds
    // 5353 next to avahi-daemon's sockets.
    let mut via_avahi = SourceThread::start(&q, MdnsBackend::Auto, Some(bus.address()));
    assert_eq!(via_avahi.backend, MdnsBackend::Avahi);
    let mut builtin = SourceThread::start(&q, MdnsBackend::Builtin, None);
    assert_eq!(builtin.backend, MdnsBackend::Builtin);

    let config = ResponderConfig {
        txt: vec![
            "p=tcp".into(),
            "NQN=nqn.2014-08.org.nvmexpress:uuid:avahi-test".into(),
        ],
        ..ResponderConfig::default()
    };
    // The responder answers queries as soon as it runs, so the clock
    // starts there rather than at its announcement.
    let responder_start = Instant::now();
    let responder = ResponderThread::start(&r.name, config).unwrap();
    responder.run(ResponderCommand::Announce).unwrap();
    let (at_builtin, _) = builtin.wait_for(
        "q0 service with both addresses",
        Duration::from_secs(10),
        resolved_on_q0,
    );
    let (at_avahi, _) = via_avahi.wait_for(
        "q0 service with both addresses",
        Duration::from_secs(10),
        resolved_on_q0,
    );
    println!(
        "responder start -> resolved with both addresses: built-in {}, Avahi {}",
        ms(at_builtin - responder_start),
        ms(at_avahi - responder_start)
    );

    let want: Vec<String> = builtin.view.values().map(comparable).collect();
    let got: Vec<String> = via_avahi.view.values().map(comparable).collect();
    assert_eq!(got, want, "Avahi backend vs built-in querier");
    let s = via_avahi.view.values().next().unwrap();
    assert_eq!(s.key.interface, "q0");
    assert_eq!(s.port, 8009);
    assert_eq!(s.transport.map(|t| t.as_str()), Some("tcp"));
    assert_eq!(s.nqn, "nqn.2014-08.org.nvmexpress:uuid:avahi-test");
    let recs = s.records();
    assert_eq!(recs[1].scoped_address(), "fe80::1:2%q0");

    // The snapshot agrees with the events, for both.
    let avahi_services = via_avahi.stop();
    let builtin_services = builtin.stop();
    assert_eq!(
        avahi_services.iter().map(comparable).collect::<Vec<_>>(),
        want
    );
    assert_eq!(
        builtin_services.iter().map(comparable).collect::<Vec<_>>(),
        want
    );
    drop(responder);
    drop(avahi);
}

#[test]
fn avahi_daemon_restarting_yields_removed_then_found_again() {
    if !lab_available("avahi_daemon_restarting_yields_removed_then_found_again") {
        return;
    }
    let (q, r) = pair("avrestart");
    let bus = Bus::start("avahi-restart").unwrap();
    let rt = runtime();
    let probe = rt.block_on(connect(bus.address()));
    let mut avahi = AvahiDaemon::start("restart", &q, "q0", bus.address());
    avahi.wait_on_bus(&probe, &rt);
    let responder = ResponderThread::start(&r.name, ResponderConfig::default()).unwrap();
    let mut source = SourceThread::start(&q, MdnsBackend::Avahi, Some(bus.address()));
    let started = Instant::now();
    let (at, _) = source.wait_for(
        "Found on q0",
        Duration::from_secs(10),
        |e, _| matches!(e, MdnsEvent::Found(s) if s.key.interface == "q0"),
    );
    println!("backend start -> Found through Avahi: {}", ms(at - started));

    let killed = Instant::now();
    avahi.kill();
    let (at, e) = source.wait_for("Removed on q0", Duration::from_secs(5), |e, _| {
        matches!(e, MdnsEvent::Removed(_))
    });
    println!("avahi-daemon killed -> Removed: {}", ms(at - killed));
    assert_eq!(e.service().key.interface, "q0");
    assert!(source.view.is_empty(), "{:?}", source.view);

    let restarted = Instant::now();
    avahi.restart();
    let (at, e) = source.wait_for("Found again on q0", Duration::from_secs(10), |e, _| {
        matches!(e, MdnsEvent::Found(_))
    });
    println!(
        "avahi-daemon restarted -> Found again: {}",
        ms(at - restarted)
    );
    assert_eq!(e.service().key.interface, "q0");
    assert_eq!(e.service().key.instance, "stas-test-dc");
    let services = source.stop();
    assert_eq!(services.len(), 1, "{services:?}");
    drop(responder);
}

#[test]
fn signals_that_do_not_come_from_avahi_daemon_are_ignored() {
    if !lab_available("signals_that_do_not_come_from_avahi_daemon_are_ignored") {
        return;
    }
    let (q, r) = pair("avforge");
    let bus = Bus::start("avahi-forge").unwrap();
    let rt = runtime();
    let forger = rt.block_on(connect(bus.address()));
    let avahi = AvahiDaemon::start("forge", &q, "q0", bus.address());
    avahi.wait_on_bus(&forger, &rt);
    let mut source = SourceThread::start(&q, MdnsBackend::Avahi, Some(bus.address()));
    let ifindex: i32 = String::from_utf8(
        Command::new("ip")
            .args(["netns", "exec", &q.name, "cat", "/sys/class/net/q0/ifindex"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap()
    .trim()
    .parse()
    .unwrap();

    // Another bus client plays avahi-daemon: new items on q0, and their
    // resolutions on every path a resolver of ours could have.
    const FORGED: &str = "forged-dc";
    let txt: Vec<Vec<u8>> = vec![b"p=tcp".to_vec(), b"NQN=nqn.forged".to_vec()];
    rt.block_on(async {
        for i in 0..50 {
            for protocol in [0_i32, 1] {
                forger
                    .emit_signal(
                        None::<zbus::names::BusName<'_>>,
                        format!("/Client1/ServiceBrowser{}", i % 4 + 1).as_str(),
                        "org.freedesktop.Avahi.ServiceBrowser",
                        "ItemNew",
                        &(ifindex, protocol, FORGED, "_nvme-disc._tcp", "local", 0_u32),
                    )
                    .await
                    .unwrap();
            }
            let address = format!("10.78.1.{}", 100 + i);
            forger
                .emit_signal(
                    None::<zbus::names::BusName<'_>>,
                    format!("/Client1/ServiceResolver{}", i + 1).as_str(),
                    "org.freedesktop.Avahi.ServiceResolver",
                    "Found",
                    &(
                        ifindex,
                        0_i32,
                        FORGED,
                        "_nvme-disc._tcp",
                        "local",
                        "forged.local",
                        0_i32,
                        address.as_str(),
                        8009_u16,
                        txt.clone(),
                        0_u32,
                    ),
                )
                .await
                .unwrap();
        }
    });
    // The backend is alive and following the real avahi-daemon meanwhile:
    // a real DC announced after the forgeries is found, and is all it found.
    let responder = ResponderThread::start(&r.name, ResponderConfig::default()).unwrap();
    let (_, e) = source.wait_for("the real DC", Duration::from_secs(10), |e, _| {
        matches!(e, MdnsEvent::Found(_))
    });
    assert_eq!(e.service().key.instance, "stas-test-dc");
    std::thread::sleep(Duration::from_millis(500));
    while let Ok((at, e)) = source.events.try_recv() {
        source.log.push((at, e));
    }
    let forged: Vec<_> = source
        .log
        .iter()
        .filter(|(_, e)| e.service().key.instance == FORGED)
        .collect();
    println!(
        "100 forged ItemNew and 50 forged Found from another client: {} events for them; {} events in all",
        forged.len(),
        source.log.len()
    );
    assert!(
        forged.is_empty(),
        "forged signals were followed: {forged:?}"
    );
    let services = source.stop();
    assert_eq!(services.len(), 1, "{services:?}");
    drop(responder);
}
