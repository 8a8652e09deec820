//! Runs inside the lab VM (a static musl binary): sets up the kernel NVMe
//! target through configfs and checks, with nvmf-kernel, what the kernel
//! does. Results go to stdout in the lab's line protocol:
//!
//! * `@@check NAME ok` / `@@check NAME fail 1`, then `@@detail NAME text`
//! * `@@metric NAME VALUE UNIT`
//! * files under /tmp/blobs/ (the scenario script sends them with `lab_put`)
//!
//! Usage: `stas-lab-guest kernel` (or stafd, stacd, zeroconf, demo, `bench N CAP_SECS PAR,...`). Exit status 1 if any check failed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test harness may panic

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use fixtures::nvmet::{Nvmet, PortAddr};
use nvmf_kernel::admin::{
    identify_controller, read_discovery_log, send_dim, supported_log_pages, AdminCommand,
    AdminFailure, AdminTransport, DiscoveryLogLimits, NvmeDevice,
};
use nvmf_kernel::fabrics::{
    ConnectOptions, ControllerKind, Fabrics, OptionString, SupportedOptions,
};
use nvmf_kernel::sysfs::Sysfs;
use nvmf_kernel::uevent::{Received, UeventItem, UeventSocket, UeventStream};
use nvmf_kernel::{ConnectFailure, KernelError, KernelPaths};
use nvmf_proto::dim::{DimData, Registration, Tas};
use nvmf_proto::dlp::DiscoveryLogPage;
use nvmf_proto::types::{AdrFam, CntrlType, DcType, SubType};
use nvmf_proto::WELL_KNOWN_DISCOVERY_NQN;

mod guest_bench;
mod guest_bench_probe;
mod guest_cdc;
mod guest_faults;
mod guest_stacd;
mod guest_stafd;
mod guest_zeroconf;

const HOSTNQN: &str = "nqn.2014-08.org.nvmexpress:uuid:4c4c4544-0000-1000-8000-00000000cafe";
const HOSTID: &str = "4c4c4544-0000-1000-8000-00000000cafe";
const PREFIX: &str = "nqn.2024-01.io.stas.lab";

type Outcome = Result<String, String>;

struct Report {
    failed: u32,
}

impl Report {
    fn check(&mut self, name: &str, r: Outcome) {
        match r {
            Ok(detail) => {
                println!("@@check {name} ok");
                if !detail.is_empty() {
                    println!("@@detail {name} {}", detail.replace('\n', " | "));
                }
            }
            Err(detail) => {
                self.failed += 1;
                println!("@@check {name} fail 1");
                println!("@@detail {name} {}", detail.replace('\n', " | "));
            }
        }
    }

    fn metric(&self, name: &str, value: f64, unit: &str) {
        println!("@@metric {name} {value:.3} {unit}");
    }

    fn blob(&self, name: &str, data: &[u8]) {
        std::fs::create_dir_all("/tmp/blobs").unwrap();
        std::fs::write(Path::new("/tmp/blobs").join(name), data).unwrap();
    }
}

fn ensure(cond: bool, what: impl Into<String>) -> Result<(), String> {
    if cond {
        Ok(())
    } else {
        Err(what.into())
    }
}

fn sub(n: u32) -> String {
    format!("{PREFIX}:sub{n}")
}

fn dc_options(traddr: &str, kato: Option<u32>) -> ConnectOptions {
    let mut o = ConnectOptions::new(
        ControllerKind::Discovery,
        "tcp",
        WELL_KNOWN_DISCOVERY_NQN,
        Some(traddr),
    );
    o.trsvcid = Some("8009".into());
    o.hostnqn = Some(HOSTNQN.into());
    o.hostid = Some(HOSTID.into());
    o.keep_alive_tmo = kato;
    o
}

fn subsystems_of(page: &DiscoveryLogPage, subtype: SubType) -> Vec<String> {
    let mut v: Vec<String> = page
        .valid_entries()
        .filter(|e| e.subtype == subtype)
        .map(|e| e.subnqn.clone())
        .collect();
    v.sort();
    v
}

fn read_log(name: &str) -> Result<nvmf_kernel::admin::DiscoveryLog, String> {
    let paths = KernelPaths::default();
    let mut dev = NvmeDevice::open(&paths.controller_dev(name)).map_err(|e| e.to_string())?;
    read_discovery_log(&mut dev, 0, DiscoveryLogLimits::default()).map_err(|e| e.to_string())
}

fn wait_for(
    what: &str,
    timeout: Duration,
    mut f: impl FnMut() -> bool,
) -> Result<Duration, String> {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if f() {
            return Ok(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(format!("{what}: not within {timeout:?}"))
}

/// Waits for the next Discovery Log Page Change AEN on `ctrl`.
async fn next_aen(
    stream: &mut UeventStream,
    ctrl: &str,
    timeout: Duration,
) -> Result<Duration, String> {
    let start = Instant::now();
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let item = tokio::time::timeout_at(deadline, stream.next())
            .await
            .map_err(|_| format!("no NVME_AEN=0x70f002 on {ctrl} within {timeout:?}"))?
            .map_err(|e| e.to_string())?;
        match item {
            UeventItem::Lost => return Err("uevents lost while waiting for the AEN".into()),
            UeventItem::Event(ev) => {
                if ev.devname() == ctrl
                    && ev
                        .aen()
                        .is_some_and(|a| a.is_ok_and(|a| a.is_discovery_log_change()))
                {
                    return Ok(start.elapsed());
                }
            }
        }
    }
}

fn kernel(r: &mut Report) {
    let paths = KernelPaths::default();
    let fabrics = Fabrics::new(&paths);
    let sysfs = Sysfs::new(&paths);
    let t = Nvmet::default();
    std::fs::create_dir_all("/etc/nvme").unwrap();
    std::fs::write("/etc/nvme/hostnqn", format!("{HOSTNQN}\n")).unwrap();
    std::fs::write("/etc/nvme/hostid", format!("{HOSTID}\n")).unwrap();

    // Target: three subsystems; port 1 on 127.0.0.1 (sub1..3), port 2 on ::1
    // (sub1, sub2); a referral from port 1 to port 2.
    let setup = (|| -> std::io::Result<()> {
        for n in 1..=3 {
            t.add_subsystem(&sub(n), true, Some(&format!("stas{n:016}")))?;
            t.add_namespace(&sub(n), 1, Path::new(&format!("/tmp/sub{n}.img")), 16 << 20)?;
        }
        t.add_port(1, &PortAddr::tcp("127.0.0.1", "8009"))?;
        t.add_port(2, &PortAddr::tcp("::1", "8009"))?;
        for n in 1..=3 {
            t.link(1, &sub(n))?;
        }
        t.link(2, &sub(1))?;
        t.link(2, &sub(2))?;
        t.add_referral(1, "to-ipv6", &PortAddr::tcp("::1", "8009"), 2)
    })();
    r.check(
        "nvmet-setup",
        setup.map(|()| String::new()).map_err(|e| e.to_string()),
    );

    // Options the kernel accepts.
    let supported = match fabrics.supported_options() {
        Ok(s) => s,
        Err(e) => {
            r.check("options-probe", Err(e.to_string()));
            SupportedOptions::legacy()
        }
    };
    r.check(
        "options-probe",
        ensure(supported.probed, "the kernel did not list its options")
            .and_then(|()| {
                let missing: Vec<_> = [
                    "transport",
                    "nqn",
                    "traddr",
                    "host_iface",
                    "hostid",
                    "keep_alive_tmo",
                    "discovery",
                ]
                .into_iter()
                .filter(|o| !supported.contains(o))
                .collect();
                ensure(missing.is_empty(), format!("missing {missing:?}"))
            })
            .map(|()| supported.names().collect::<Vec<_>>().join(",")),
    );

    // A persistent discovery controller on IPv4.
    let dc = match fabrics.connect(&dc_options("127.0.0.1", Some(30)), &supported) {
        Ok((c, opts)) => {
            r.check(
                "dc-connect",
                Ok(format!(
                    "{} cntlid {} via '{}'",
                    c.name(),
                    c.cntlid,
                    opts.text
                )),
            );
            Some(c)
        }
        Err(e) => {
            r.check("dc-connect", Err(e.to_string()));
            None
        }
    };
    let Some(dc) = dc else { return };
    let dcname = dc.name();

    r.check(
        "dc-sysfs",
        (|| {
            let c = sysfs
                .controller(&dcname)
                .map_err(|e| e.to_string())?
                .ok_or("no sysfs entry")?;
            ensure(
                c.transport.as_deref() == Some("tcp"),
                format!("transport {:?}", c.transport),
            )?;
            ensure(
                c.traddr() == Some("127.0.0.1"),
                format!("traddr {:?}", c.traddr()),
            )?;
            ensure(
                c.trsvcid() == Some("8009"),
                format!("trsvcid {:?}", c.trsvcid()),
            )?;
            let addr = c.address.clone().unwrap_or_default();
            ensure(
                addr.src_addr.as_deref() == Some("127.0.0.1"),
                format!("src_addr {:?}", addr.src_addr),
            )?;
            ensure(c.is_live(), format!("state {:?}", c.state))?;
            ensure(
                c.cntrltype == Some(CntrlType::Discovery),
                format!("cntrltype {:?}", c.cntrltype),
            )?;
            ensure(
                c.dctype == Some(DcType::None),
                format!("dctype {:?}", c.dctype),
            )?;
            ensure(c.is_discovery(), "not classified as a DC")?;
            ensure(
                c.hostnqn.as_deref() == Some(HOSTNQN),
                format!("hostnqn {:?}", c.hostnqn),
            )?;
            ensure(
                c.hostid.as_deref() == Some(HOSTID),
                format!("hostid {:?}", c.hostid),
            )?;
            ensure(c.kato == Some(30), format!("kato {:?}", c.kato))?;
            ensure(
                c.cntlid == Some(dc.cntlid),
                format!("cntlid {:?} vs {}", c.cntlid, dc.cntlid),
            )?;
            ensure(
                c.subsysnqn.as_deref() == Some(WELL_KNOWN_DISCOVERY_NQN),
                format!("subsysnqn {:?}", c.subsysnqn),
            )?;
            ensure(
                c.subsystype.as_deref() == Some("discovery"),
                format!("subsystype {:?}", c.subsystype),
            )?;
            Ok(format!("{c:?}"))
        })(),
    );

    r.check(
        "identify-dc",
        (|| {
            let mut dev =
                NvmeDevice::open(&paths.controller_dev(&dcname)).map_err(|e| e.to_string())?;
            let (raw, id) = identify_controller(&mut dev).map_err(|e| e.to_string())?;
            r.blob("identify-dc.bin", &raw);
            ensure(
                id.cntrltype == CntrlType::Discovery,
                format!("cntrltype {:?}", id.cntrltype),
            )?;
            ensure(
                id.subnqn == WELL_KNOWN_DISCOVERY_NQN,
                format!("subnqn {}", id.subnqn),
            )?;
            ensure(
                id.supports_discovery_log_change(),
                format!("oaes {:#x}", id.oaes),
            )?;
            ensure(
                id.cntlid == dc.cntlid,
                format!("cntlid {} vs {}", id.cntlid, dc.cntlid),
            )?;
            ensure(!id.accepts_registration(), "nvmet claims to be a DDC/CDC")?;
            Ok(format!(
                "mn {:?} fr {:?} oaes {:#x} lpa {:#x} sgls {:#x}",
                id.mn, id.fr, id.oaes, id.lpa, id.sgls
            ))
        })(),
    );

    r.check(
        "dlp-content",
        (|| {
            let log = read_log(&dcname)?;
            r.blob("dlp-port1.bin", &log.raw);
            let p = &log.page;
            ensure(p.entry_errors().count() == 0, "undecodable entries")?;
            ensure(
                subsystems_of(p, SubType::Nvme) == [sub(1), sub(2), sub(3)],
                format!("nvme {:?}", subsystems_of(p, SubType::Nvme)),
            )?;
            let refs: Vec<_> = p
                .valid_entries()
                .filter(|e| e.subtype == SubType::Referral)
                .collect();
            ensure(refs.len() == 1, format!("{} referrals", refs.len()))?;
            ensure(
                refs[0].traddr == "::1" && refs[0].adrfam == AdrFam::Ipv6 && refs[0].portid == 2,
                format!("{:?}", refs[0]),
            )?;
            ensure(refs[0].subnqn == WELL_KNOWN_DISCOVERY_NQN, "referral NQN")?;
            let nvme: Vec<_> = p
                .valid_entries()
                .filter(|e| e.subtype == SubType::Nvme)
                .collect();
            ensure(
                nvme.iter().all(|e| {
                    e.traddr == "127.0.0.1"
                        && e.trsvcid == "8009"
                        && e.portid == 1
                        && e.adrfam == AdrFam::Ipv4
                }),
                "nvme entry address",
            )?;
            let current = subsystems_of(p, SubType::CurrentDiscovery);
            Ok(format!(
                "genctr {} numrec {} rounds {} current-discovery entries {}",
                p.header.genctr,
                p.header.numrec,
                log.rounds,
                current.len()
            ))
        })(),
    );

    r.check(
        "supported-log-pages-refused-typed",
        (|| {
            let mut dev =
                NvmeDevice::open(&paths.controller_dev(&dcname)).map_err(|e| e.to_string())?;
            match supported_log_pages(&mut dev) {
                Err(KernelError::Nvme { status, .. }) => Ok(format!("{status}")),
                other => Err(format!("expected an NVMe status from nvmet, got {other:?}")),
            }
        })(),
    );

    r.check(
        "dim-refused-typed",
        (|| {
            let mut dev =
                NvmeDevice::open(&paths.controller_dev(&dcname)).map_err(|e| e.to_string())?;
            let reg = DimData::registration(&Registration {
                host_nqn: HOSTNQN,
                host_id: nvmf_proto::dim::parse_uuid(HOSTID).unwrap(),
                hostname: "lab",
                os_version: "Linux",
                dc_adrfam: AdrFam::Ipv4,
                symname: None,
            });
            match send_dim(&mut dev, Tas::Register, &reg) {
                Err(KernelError::Nvme { status, .. }) if status.dnr() => Ok(format!("{status}")),
                other => Err(format!("expected invalid opcode + DNR, got {other:?}")),
            }
        })(),
    );

    // AENs: link a subsystem, expect NVME_AEN=0x70f002; re-read (re-arms); again.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut stream = match UeventStream::open(nvmf_kernel::uevent::DEFAULT_RCVBUF, true) {
            Ok(s) => s,
            Err(e) => {
                r.check("uevent-stream", Err(e.to_string()));
                return;
            }
        };
        r.check("uevent-stream", Ok(format!("rcvbuf {}", stream.rcvbuf())));
        let mut latencies = Vec::new();
        for (i, n) in [4u32, 5].into_iter().enumerate() {
            let name = format!("aen-{}", i + 1);
            let res = async {
                t.add_subsystem(&sub(n), true, None)
                    .map_err(|e| e.to_string())?;
                let start = Instant::now();
                t.link(1, &sub(n)).map_err(|e| e.to_string())?;
                next_aen(&mut stream, &dcname, Duration::from_secs(10)).await?;
                let lat = start.elapsed();
                latencies.push(lat);
                let log = read_log(&dcname)?;
                ensure(
                    subsystems_of(&log.page, SubType::Nvme).contains(&sub(n)),
                    "new subsystem not in the log",
                )?;
                Ok(format!("link -> uevent {lat:?}"))
            }
            .await;
            r.check(&name, res);
        }
        for (i, l) in latencies.iter().enumerate() {
            r.metric(
                &format!("aen-latency-{}", i + 1),
                l.as_secs_f64() * 1000.0,
                "ms",
            );
        }
    });

    // IPv6 discovery controller, connected for one read.
    r.check(
        "dc-ipv6",
        (|| {
            let (c, _) = fabrics
                .connect(&dc_options("::1", None), &supported)
                .map_err(|e| e.to_string())?;
            let log = read_log(&c.name());
            sysfs
                .delete_controller(&c.name())
                .map_err(|e| e.to_string())?;
            let log = log?;
            ensure(
                subsystems_of(&log.page, SubType::Nvme) == [sub(1), sub(2)],
                format!("{:?}", subsystems_of(&log.page, SubType::Nvme)),
            )?;
            ensure(
                log.page
                    .valid_entries()
                    .all(|e| e.subtype != SubType::Nvme || e.traddr == "::1"),
                "entries not on ::1",
            )?;
            wait_for("IPv6 DC deleted", Duration::from_secs(5), || {
                sysfs.controller(&c.name()).ok().flatten().is_none()
            })?;
            r.blob("dlp-port2.bin", &log.raw);
            Ok(format!("{} entries", log.page.entries.len()))
        })(),
    );

    // stasadm discover: reuses the persistent DC; connects and disconnects for ::1.
    r.check(
        "stasadm-reuse",
        (|| {
            let before = sysfs.controller_names().map_err(|e| e.to_string())?;
            let out = Command::new("/bin/stasadm")
                .args([
                    "discover",
                    "-t",
                    "tcp",
                    "-a",
                    "127.0.0.1",
                    "--raw",
                    "/tmp/blobs/stasadm-port1.bin",
                ])
                .output()
                .map_err(|e| e.to_string())?;
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            ensure(
                out.status.success(),
                format!(
                    "exit {:?}: {}{}",
                    out.status.code(),
                    text,
                    String::from_utf8_lossy(&out.stderr)
                ),
            )?;
            ensure(
                text.contains(&format!("via {dcname} (existing connection, kept)")),
                text.clone(),
            )?;
            let after = sysfs.controller_names().map_err(|e| e.to_string())?;
            ensure(
                before == after,
                format!("controllers {before:?} -> {after:?}"),
            )?;
            Ok(text)
        })(),
    );
    r.check(
        "stasadm-connect-disconnect",
        (|| {
            let before = sysfs.controller_names().map_err(|e| e.to_string())?;
            let out = Command::new("/bin/stasadm")
                .args([
                    "discover",
                    "--transport",
                    "tcp",
                    "--traddr",
                    "::1",
                    "--json",
                ])
                .output()
                .map_err(|e| e.to_string())?;
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            ensure(
                out.status.success(),
                format!(
                    "exit {:?}: {}",
                    out.status.code(),
                    String::from_utf8_lossy(&out.stderr)
                ),
            )?;
            let v: serde_json::Value =
                serde_json::from_str(&text).map_err(|e| format!("{e}: {text}"))?;
            let n = v.as_array().map_or(0, Vec::len);
            ensure(n >= 2, format!("{n} entries"))?;
            wait_for(
                "stasadm's controller deleted",
                Duration::from_secs(5),
                || sysfs.controller_names().is_ok_and(|a| a == before),
            )?;
            r.blob("stasadm-port2.json", text.as_bytes());
            Ok(format!("{n} entries"))
        })(),
    );
    r.check(
        "stasadm-connect-refused",
        (|| {
            let out = Command::new("/bin/stasadm")
                .args(["discover", "-t", "tcp", "-a", "127.0.0.1", "-s", "4999"])
                .output()
                .map_err(|e| e.to_string())?;
            let err = String::from_utf8_lossy(&out.stderr).into_owned();
            ensure(
                out.status.code() == Some(1),
                format!("exit {:?}", out.status.code()),
            )?;
            ensure(
                err.contains("connection refused") && err.contains("trsvcid=4999"),
                err.clone(),
            )?;
            Ok(err)
        })(),
    );

    // nvme-cli against the same target, for the host's differential check.
    r.check(
        "nvme-cli-discover",
        (|| {
            let out = Command::new("nvme")
                .args([
                    "discover",
                    "-t",
                    "tcp",
                    "-a",
                    "127.0.0.1",
                    "-s",
                    "8009",
                    "-o",
                    "json",
                ])
                .output()
                .map_err(|e| format!("nvme: {e}"))?;
            ensure(
                out.status.success(),
                format!(
                    "nvme exit {:?}: {}",
                    out.status.code(),
                    String::from_utf8_lossy(&out.stderr)
                ),
            )?;
            r.blob("nvme-cli-port1.json", &out.stdout);
            Ok(String::new())
        })(),
    );

    // An I/O controller: the namespace appears, a duplicate is "already
    // connected", delete removes it.
    r.check(
        "io-connect",
        (|| {
            let mut o = ConnectOptions::new(ControllerKind::Io, "tcp", &sub(1), Some("127.0.0.1"));
            o.trsvcid = Some("8009".into());
            o.hostnqn = Some(HOSTNQN.into());
            o.hostid = Some(HOSTID.into());
            let start = Instant::now();
            let (c, _) = fabrics.connect(&o, &supported).map_err(|e| e.to_string())?;
            let connect_time = start.elapsed();
            let blk = format!("/dev/{}n1", c.name());
            let appeared = wait_for(&blk, Duration::from_secs(10), || Path::new(&blk).exists());
            let dup = fabrics.connect(&o, &supported);
            let info = sysfs
                .controller(&c.name())
                .map_err(|e| e.to_string())?
                .ok_or("no sysfs entry")?;
            sysfs
                .delete_controller(&c.name())
                .map_err(|e| e.to_string())?;
            let gone = wait_for("I/O controller deleted", Duration::from_secs(10), || {
                sysfs.controller(&c.name()).ok().flatten().is_none()
            });
            appeared?;
            gone?;
            match dup {
                Err(e) if e.is_already_connected() => {}
                other => {
                    return Err(format!(
                        "duplicate connect: expected already connected, got {other:?}"
                    ))
                }
            }
            ensure(
                info.cntrltype == Some(CntrlType::Io) && !info.is_discovery(),
                format!("{info:?}"),
            )?;
            ensure(
                info.kato == Some(5),
                format!("I/O kato {:?} (kernel default 5)", info.kato),
            )?;
            r.metric("io-connect", connect_time.as_secs_f64() * 1000.0, "ms");
            Ok(format!("{} in {connect_time:?}, {blk} appeared", c.name()))
        })(),
    );

    // An option the kernel refuses: a typed error that names it.
    r.check(
        "bad-option-typed",
        (|| {
            let bogus = OptionString {
                text: format!(
                    "nqn={},transport=tcp,traddr=127.0.0.1,trsvcid=8009,bogus_option=1",
                    sub(1)
                ),
                dropped: Vec::new(),
            };
            match fabrics.connect_raw(&bogus) {
                Err(KernelError::Connect {
                    failure: ConnectFailure::InvalidOptions,
                    options,
                }) => {
                    ensure(options.contains("bogus_option"), options.clone())?;
                    Ok(KernelError::Connect {
                        failure: ConnectFailure::InvalidOptions,
                        options,
                    }
                    .to_string())
                }
                other => Err(format!("expected EINVAL, got {other:?}")),
            }
        })(),
    );
    r.check(
        "unsupported-option-dropped",
        (|| {
            let mut o = dc_options("127.0.0.1", None);
            o.tls = true;
            o.concat = true;
            let s = nvmf_kernel::fabrics::build_option_string(&o, &supported)
                .map_err(|e| e.to_string())?;
            let dropped: Vec<_> = s
                .dropped
                .iter()
                .map(|d| format!("{}: {}", d.name, d.reason))
                .collect();
            ensure(!s.text.contains("tls"), s.text.clone())?;
            ensure(
                s.dropped.iter().any(|d| d.name == "tls"),
                format!("{dropped:?}"),
            )?;
            Ok(dropped.join("; "))
        })(),
    );

    println!(
        "@@info unique-discovery-nqn {}",
        if Path::new("/sys/kernel/config/nvmet/discovery_nqn").exists() {
            "supported by this nvmet"
        } else {
            "not supported by this nvmet (the configfs attribute arrived in 6.9)"
        }
    );

    // A log page of 300+ entries, several 4 KiB chunks, read consistently.
    r.check(
        "dlp-300",
        (|| {
            for n in 100..400 {
                t.add_subsystem(&sub(n), true, None)
                    .map_err(|e| e.to_string())?;
                t.link(1, &sub(n)).map_err(|e| e.to_string())?;
            }
            let start = Instant::now();
            let log = read_log(&dcname)?;
            let took = start.elapsed();
            let nvme = subsystems_of(&log.page, SubType::Nvme);
            ensure(nvme.len() == 305, format!("{} nvme entries", nvme.len()))?;
            ensure(
                log.page.check_complete().is_ok() && log.page.entry_errors().count() == 0,
                "page not clean",
            )?;
            r.metric("dlp-300-read", took.as_secs_f64() * 1000.0, "ms");
            Ok(format!(
                "{} entries, {} bytes, {} rounds, {took:?}",
                log.page.entries.len(),
                log.raw.len(),
                log.rounds
            ))
        })(),
    );

    // GENCTR protocol while the target changes underneath, made
    // deterministic: a wrapper around the real device changes the nvmet
    // configuration right after an entries chunk of a round was read.
    struct Flipper<'a> {
        dev: NvmeDevice,
        t: &'a Nvmet,
        commands: u32,
        flips_left: u32,
    }
    impl AdminTransport for Flipper<'_> {
        fn device_name(&self) -> &str {
            self.dev.device_name()
        }
        fn submit(&mut self, cmd: &mut AdminCommand<'_>) -> Result<u32, AdminFailure> {
            let r = self.dev.submit(cmd);
            self.commands += 1;
            // Command 2 of each round is its first entries chunk (a
            // header read precedes it): change the target there.
            if self.flips_left > 0 && cmd.cdw[2] == 1024 {
                self.flips_left -= 1;
                let _ = self.t.unlink(1, &sub(150));
                let _ = self.t.link(1, &sub(150));
            }
            r
        }
    }
    r.check(
        "dlp-genctr-retry",
        (|| {
            let dev =
                NvmeDevice::open(&paths.controller_dev(&dcname)).map_err(|e| e.to_string())?;
            let mut f = Flipper {
                dev,
                t: &t,
                commands: 0,
                flips_left: 1,
            };
            let log = read_discovery_log(&mut f, 0, DiscoveryLogLimits::default())
                .map_err(|e| e.to_string())?;
            let n = subsystems_of(&log.page, SubType::Nvme).len();
            ensure(
                log.rounds == 2,
                format!("{} rounds after one change mid-read", log.rounds),
            )?;
            ensure(n == 305 && !log.page.is_truncated(), format!("{n} entries"))?;
            Ok(format!(
                "one change mid-read: consistent page after {} rounds, {} commands",
                log.rounds, f.commands
            ))
        })(),
    );
    r.check(
        "dlp-genctr-churn-typed",
        (|| {
            let dev =
                NvmeDevice::open(&paths.controller_dev(&dcname)).map_err(|e| e.to_string())?;
            let mut f = Flipper {
                dev,
                t: &t,
                commands: 0,
                flips_left: u32::MAX,
            };
            match read_discovery_log(
                &mut f,
                0,
                DiscoveryLogLimits {
                    max_rounds: 3,
                    max_entries: 16_384,
                },
            ) {
                Err(e @ KernelError::GenctrChurn { attempts: 3, .. }) => Ok(e.to_string()),
                other => Err(format!(
                    "expected GENCTR churn after 3 rounds, got {other:?}"
                )),
            }
        })(),
    );

    // ENOBUFS: a tiny socket buffer overflows and says so.
    r.check(
        "uevent-enobufs-lost",
        (|| {
            let s = UeventSocket::open(1).map_err(|e| e.to_string())?;
            for _ in 0..3 {
                let (c, _) = fabrics
                    .connect(&dc_options("127.0.0.1", None), &supported)
                    .map_err(|e| e.to_string())?;
                sysfs
                    .delete_controller(&c.name())
                    .map_err(|e| e.to_string())?;
            }
            let mut events = 0;
            for _ in 0..10_000 {
                match s.try_recv().map_err(|e| e.to_string())? {
                    Received::Item(UeventItem::Lost) => {
                        return Ok(format!("Lost after {events} events (rcvbuf {})", s.rcvbuf))
                    }
                    Received::Item(UeventItem::Event(_)) => events += 1,
                    Received::Skipped(_) => {}
                    Received::Empty => break,
                }
            }
            Err(format!(
                "no ENOBUFS with rcvbuf {} ({events} events read)",
                s.rcvbuf
            ))
        })(),
    );

    let _ = sysfs.delete_controller(&dcname);
}

fn main() {
    let scenario = std::env::args().nth(1).unwrap_or_default();
    let mut r = Report { failed: 0 };
    match scenario.as_str() {
        "kernel" => kernel(&mut r),
        "stafd" => guest_stafd::scenario(&mut r),
        "stacd" => guest_stacd::scenario(&mut r),
        "bench" => {
            let args: Vec<String> = std::env::args().skip(2).collect();
            guest_bench::scenario(&mut r, &args);
        }
        "zeroconf" => guest_zeroconf::scenario(&mut r),
        "demo" => std::process::exit(guest_stacd::demo()),
        other => {
            eprintln!(
                "stas-lab-guest: unknown scenario {other:?}; known: kernel, stafd, stacd, bench, zeroconf, demo"
            );
            std::process::exit(2);
        }
    }
    println!("@@summary {} failed", r.failed);
    std::process::exit(i32::from(r.failed > 0));
}
