//! The `zeroconf` lab scenario: zero-touch discovery on a real kernel. An
//! mDNS responder in the guest announces nvmet's discovery port on a veth
//! interface; stafd, with no controller configured, finds it, probes it,
//! connects to it from that interface, and stacd connects the subsystem
//! its log page lists. Its referral to a second DC is followed too.

use std::process::Command;
use std::time::{Duration, Instant};

use fixtures::mdns_responder::{Responder, ResponderConfig, ResponderError};
use fixtures::nvmet::{Nvmet, PortAddr};
use nvmf_kernel::sysfs::Sysfs;
use nvmf_kernel::KernelPaths;

use crate::guest_stacd::{iocs, namespaces, start_stacd, until};
use crate::guest_stafd::{prepare_host, start_dbus, start_stafd, stop};
use crate::{ensure, Report};

const ADDR: &str = "10.99.0.1";
/// The DC the announced one refers to, and its subsystem.
const REFERRED_PORT: &str = "8010";
const REFERRED_SUB: &str = "nqn.2024-01.io.stas.lab:zero-touch-referred";

fn sub() -> String {
    "nqn.2024-01.io.stas.lab:zero-touch".to_owned()
}

fn ip(args: &[&str]) -> std::io::Result<()> {
    let s = Command::new("/bin/ip").args(args).status()?;
    if s.success() {
        Ok(())
    } else {
        Err(std::io::Error::other(format!("ip {}: {s}", args.join(" "))))
    }
}

/// A veth pair with the target's address on v0. IPv6 is off on both ends
/// so the announcement is heard once, on v0 (the netns tests cover IPv6).
fn network() -> std::io::Result<()> {
    ip(&["link", "add", "v0", "type", "veth", "peer", "name", "v1"])?;
    for dev in ["v0", "v1"] {
        std::fs::write(format!("/proc/sys/net/ipv6/conf/{dev}/disable_ipv6"), "1")?;
    }
    ip(&["addr", "add", &format!("{ADDR}/24"), "dev", "v0"])?;
    ip(&["link", "set", "v0", "up"])?;
    ip(&["link", "set", "v1", "up"])
}

fn setup(t: &Nvmet) -> std::io::Result<()> {
    prepare_host()?;
    // Nothing configured: everything comes from mDNS.
    std::fs::write(
        "/etc/stas/stafd.conf",
        "[Service Discovery]\nzeroconf=enabled\nmdns-backend=builtin\n",
    )?;
    std::fs::write("/etc/stas/stacd.conf", "[Global]\n")?;
    std::fs::create_dir_all("/run/stacd")?;
    network()?;
    t.add_subsystem(&sub(), true, None)?;
    t.add_namespace(
        &sub(),
        1,
        std::path::Path::new("/tmp/zero-touch.img"),
        16 << 20,
    )?;
    t.add_port(1, &PortAddr::tcp(ADDR, "8009"))?;
    t.link(1, &sub())?;
    // The announced DC refers to a second one (port 2), which lists a
    // second subsystem: referrals are followed from mDNS DCs too.
    t.add_subsystem(REFERRED_SUB, true, None)?;
    t.add_port(2, &PortAddr::tcp(ADDR, REFERRED_PORT))?;
    t.link(2, REFERRED_SUB)?;
    t.add_referral(1, "to-port-2", &PortAddr::tcp(ADDR, REFERRED_PORT), 2)
}

/// The DCs stafd has connected: (device, traddr, host_iface).
fn dcs(sysfs: &Sysfs) -> Vec<(String, String, String)> {
    sysfs
        .controllers()
        .unwrap_or_default()
        .into_iter()
        .filter(|c| c.is_discovery())
        .map(|c| {
            let a = c.address.clone().unwrap_or_default();
            (
                c.name.clone(),
                a.traddr.unwrap_or_default(),
                a.host_iface.unwrap_or_default(),
            )
        })
        .collect()
}

fn stafctl_json(args: &[&str]) -> Result<serde_json::Value, String> {
    let o = Command::new("/bin/stafctl")
        .args(args)
        .arg("--json")
        .output()
        .map_err(|e| e.to_string())?;
    serde_json::from_slice(&o.stdout).map_err(|e| {
        format!(
            "stafctl {args:?}: {e}: {} {}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    })
}

pub fn scenario(r: &mut Report) {
    let sysfs = Sysfs::new(&KernelPaths::default());
    let t = Nvmet::default();
    r.check(
        "zeroconf-setup",
        setup(&t).map(|()| String::new()).map_err(|e| e.to_string()),
    );
    r.check("dbus-daemon", start_dbus());
    let (Ok(mut stafd), Ok(mut stacd)) = (start_stafd(), start_stacd()) else {
        r.check("daemons-start", Err("stafd or stacd did not start".into()));
        return;
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        // Let stafd come up and start browsing before the announcement.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let nothing = dcs(&sysfs);
        r.check(
            "zeroconf-nothing-before-announcement",
            ensure(nothing.is_empty(), format!("{nothing:?}")).map(|()| String::new()),
        );
        let responder = std::thread::spawn(|| -> Result<(), ResponderError> {
            let mut resp = Responder::open(ResponderConfig {
                instance: "lab-dc".into(),
                host: "lab-dc.local".into(),
                ..ResponderConfig::default()
            })?;
            resp.announce()?;
            let end = Instant::now() + Duration::from_secs(60);
            while Instant::now() < end {
                resp.serve(Duration::from_millis(20))?;
            }
            Ok(())
        });
        let announced = Instant::now();
        let dc = until(
            "the announced DC connected from v0",
            Duration::from_secs(30),
            || dcs(&sysfs).iter().any(|(_, a, i)| a == ADDR && i == "v0"),
        )
        .await;
        if let Ok(d) = &dc {
            r.metric("announce-to-dc-connected", d.as_secs_f64() * 1000.0, "ms");
        }
        r.check(
            "zeroconf-dc-connected-from-announcement",
            dc.map(|d| format!("{:?} after the announcement: {:?}", d, dcs(&sysfs))),
        );
        let ioc = until(
            "its subsystem connected by stacd",
            Duration::from_secs(30),
            || iocs(&sysfs).get(&sub()).is_some_and(|d| namespaces(d) >= 1),
        )
        .await;
        if ioc.is_ok() {
            r.metric(
                "announce-to-io-controller",
                announced.elapsed().as_secs_f64() * 1000.0,
                "ms",
            );
        }
        r.check(
            "zeroconf-io-controller-connected",
            ioc.map(|_| format!("{:?}", iocs(&sysfs))),
        );
        let referred = until(
            "the referred DC's subsystem connected",
            Duration::from_secs(30),
            || iocs(&sysfs).contains_key(REFERRED_SUB),
        )
        .await;
        r.check(
            "zeroconf-referral-followed",
            referred.and_then(|d| {
                let ls = stafctl_json(&["ls", "-d"])?;
                let dc = ls
                    .as_array()
                    .and_then(|a| a.iter().find(|d| d["trsvcid"] == REFERRED_PORT))
                    .ok_or(format!("the referred DC is not listed: {ls}"))?;
                ensure(dc["origin"] == "referral", format!("{dc}"))?;
                Ok(format!(
                    "{d:?} after its subsystem's DC was announced: {dc}"
                ))
            }),
        );
        r.check("zeroconf-stafctl-shows-origin-and-mdns-view", {
            (|| {
                let ls = stafctl_json(&["ls", "-d"])?;
                let dc = ls
                    .as_array()
                    .and_then(|a| a.iter().find(|d| d["traddr"] == ADDR))
                    .ok_or(format!("not listed: {ls}"))?;
                ensure(
                    dc["origin"] == "discovered" && dc["host-iface"] == "v0",
                    format!("{dc}"),
                )?;
                let status = stafctl_json(&["status"])?;
                let services = &status["avahi"]["services"];
                ensure(
                    services.as_object().is_some_and(|m| {
                        m.iter()
                            .any(|(k, v)| k.contains("v0") && v["reachable"] == "True")
                    }),
                    format!("avahi view: {}", status["avahi"]),
                )?;
                Ok(format!("origin discovered; {services}"))
            })()
        });
        let _ = responder;
    });
    stop(&mut stacd, "TERM");
    let _ = stacd.wait();
    stop(&mut stafd, "TERM");
    let _ = stafd.wait();
    for (name, path) in [
        ("stafd.log", "/tmp/stafd.log"),
        ("stacd.log", "/tmp/stacd.log"),
    ] {
        if let Ok(log) = std::fs::read(path) {
            r.blob(name, &log);
        }
    }
}
