//! The `kernel` lab scenario: nvmf-kernel against the kernel's NVMe/TCP host
//! and nvmet target on loopback.
//!
//! [`scenario`] runs one function per behaviour, in order, and reports each
//! under its check name (the names tests/tests/lab_kernel.rs expects, one
//! host-side test each). What a check needs from an earlier one travels in
//! [`Kernel`]; when that earlier step failed, the check reports a failure
//! naming it instead of running.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use fixtures::nvmet::{Nvmet, PortAddr};
use nvmf_kernel::admin::{
    identify_controller, read_discovery_log, send_dim, supported_log_pages, AdminCommand,
    AdminFailure, AdminTransport, DiscoveryLogLimits, NvmeDevice,
};
use nvmf_kernel::fabrics::{
    ConnectOptions, Connected, ControllerKind, Fabrics, OptionString, SupportedOptions,
};
use nvmf_kernel::sysfs::Sysfs;
use nvmf_kernel::uevent::{Received, UeventItem, UeventSocket, UeventStream};
use nvmf_kernel::{ConnectFailure, KernelError, KernelPaths};
use nvmf_proto::dim::{DimData, Registration, Tas};
use nvmf_proto::dlp::DiscoveryLogPage;
use nvmf_proto::types::{AdrFam, CntrlType, DcType, SubType};
use nvmf_proto::WELL_KNOWN_DISCOVERY_NQN;

use crate::{ensure, Outcome, Report, HOSTID, HOSTNQN};

const PREFIX: &str = "nqn.2024-01.io.stas.lab";

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

/// What the checks share: the kernel's interfaces, the target, and what the
/// first steps produced.
struct Kernel {
    paths: KernelPaths,
    fabrics: Fabrics,
    sysfs: Sysfs,
    t: Nvmet,
    /// The options the kernel accepts (options-probe; the legacy set when
    /// the kernel could not be asked).
    supported: SupportedOptions,
    /// The persistent discovery controller on 127.0.0.1 (dc-connect); `None`
    /// if it did not connect.
    dc: Option<Connected>,
}

impl Kernel {
    /// The persistent DC, or the failure of a check that needs it.
    fn dc(&self) -> Result<Connected, String> {
        self.dc
            .ok_or_else(|| "no persistent discovery controller: dc-connect failed".to_owned())
    }

    /// The persistent DC's name (`nvmeN`), or the failure of a check that needs it.
    fn dcname(&self) -> Result<String, String> {
        self.dc().map(|dc| dc.name())
    }
}

/// The `kernel` scenario: every check, in order.
pub(crate) fn scenario(r: &mut Report) {
    let paths = KernelPaths::default();
    let fabrics = Fabrics::new(&paths);
    let sysfs = Sysfs::new(&paths);
    let t = Nvmet::default();
    std::fs::create_dir_all("/etc/nvme").unwrap();
    std::fs::write("/etc/nvme/hostnqn", format!("{HOSTNQN}\n")).unwrap();
    std::fs::write("/etc/nvme/hostid", format!("{HOSTID}\n")).unwrap();

    r.check("nvmet-setup", nvmet_setup(&t));
    let supported = options_probe(r, &fabrics);
    let dc = dc_connect(r, &fabrics, &supported);
    let k = Kernel {
        paths,
        fabrics,
        sysfs,
        t,
        supported,
        dc,
    };

    r.check("dc-sysfs", dc_sysfs(&k));
    r.check("identify-dc", identify_dc(&k, r));
    r.check("dlp-content", dlp_content(&k, r));
    r.check(
        "supported-log-pages-refused-typed",
        supported_log_pages_refused_typed(&k),
    );
    r.check("dim-refused-typed", dim_refused_typed(&k));

    // AENs: link a subsystem, expect NVME_AEN=0x70f002; re-read (re-arms); again.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut stream = uevent_stream(r);
        let mut latencies = Vec::new();
        for (i, n) in [4u32, 5].into_iter().enumerate() {
            let res = aen(&k, stream.as_mut(), n, &mut latencies).await;
            r.check(&format!("aen-{}", i + 1), res);
        }
        for (i, l) in latencies.iter().enumerate() {
            r.metric(
                &format!("aen-latency-{}", i + 1),
                l.as_secs_f64() * 1000.0,
                "ms",
            );
        }
    });

    r.check("dc-ipv6", dc_ipv6(&k, r));
    r.check("stasadm-reuse", stasadm_reuse(&k));
    r.check(
        "stasadm-connect-disconnect",
        stasadm_connect_disconnect(&k, r),
    );
    r.check("stasadm-connect-refused", stasadm_connect_refused());
    r.check("nvme-cli-discover", nvme_cli_discover(r));
    r.check("io-connect", io_connect(&k, r));
    r.check("bad-option-typed", bad_option_typed(&k));
    r.check("unsupported-option-dropped", unsupported_option_dropped(&k));

    println!(
        "@@info unique-discovery-nqn {}",
        if Path::new("/sys/kernel/config/nvmet/discovery_nqn").exists() {
            "supported by this nvmet"
        } else {
            "not supported by this nvmet (the configfs attribute arrived in 6.9)"
        }
    );

    r.check("dlp-300", dlp_300(&k, r));
    r.check("dlp-genctr-retry", dlp_genctr_retry(&k));
    r.check("dlp-genctr-churn-typed", dlp_genctr_churn_typed(&k));
    r.check("uevent-enobufs-lost", uevent_enobufs_lost(&k));

    if let Some(dc) = k.dc {
        let _ = k.sysfs.delete_controller(&dc.name());
    }
}

/// Target: three subsystems; port 1 on 127.0.0.1 (sub1..3), port 2 on ::1
/// (sub1, sub2); a referral from port 1 to port 2.
fn nvmet_setup(t: &Nvmet) -> Outcome {
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
    setup.map(|()| String::new()).map_err(|e| e.to_string())
}

/// Options the kernel accepts (reports options-probe). When the kernel
/// cannot be asked, the check fails and the legacy set is used.
fn options_probe(r: &mut Report, fabrics: &Fabrics) -> SupportedOptions {
    let supported = match fabrics.supported_options() {
        Ok(s) => s,
        Err(e) => {
            r.check("options-probe", Err(e.to_string()));
            return SupportedOptions::legacy();
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
    supported
}

/// A persistent discovery controller on IPv4 (reports dc-connect); the
/// later checks that need it get it from [`Kernel::dc`].
fn dc_connect(
    r: &mut Report,
    fabrics: &Fabrics,
    supported: &SupportedOptions,
) -> Option<Connected> {
    match fabrics.connect(&dc_options("127.0.0.1", Some(30)), supported) {
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
    }
}

/// The persistent DC as sysfs shows it.
fn dc_sysfs(k: &Kernel) -> Outcome {
    let dc = k.dc()?;
    let c = k
        .sysfs
        .controller(&dc.name())
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
}

/// Identify Controller of the persistent DC (kept as blob identify-dc.bin).
fn identify_dc(k: &Kernel, r: &Report) -> Outcome {
    let dc = k.dc()?;
    let mut dev =
        NvmeDevice::open(&k.paths.controller_dev(&dc.name())).map_err(|e| e.to_string())?;
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
}

/// The persistent DC's log page lists what nvmet was set up with (kept as
/// blob dlp-port1.bin).
fn dlp_content(k: &Kernel, r: &Report) -> Outcome {
    let log = read_log(&k.dcname()?)?;
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
}

/// nvmet refuses Supported Log Pages with an NVMe status, typed as such.
fn supported_log_pages_refused_typed(k: &Kernel) -> Outcome {
    let mut dev =
        NvmeDevice::open(&k.paths.controller_dev(&k.dcname()?)).map_err(|e| e.to_string())?;
    match supported_log_pages(&mut dev) {
        Err(KernelError::Nvme { status, .. }) => Ok(format!("{status}")),
        other => Err(format!("expected an NVMe status from nvmet, got {other:?}")),
    }
}

/// nvmet refuses a DIM registration: invalid opcode with DNR.
fn dim_refused_typed(k: &Kernel) -> Outcome {
    let mut dev =
        NvmeDevice::open(&k.paths.controller_dev(&k.dcname()?)).map_err(|e| e.to_string())?;
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
}

/// The kernel's uevent stream opens (reports uevent-stream); the AEN checks
/// wait on it. Runs inside the Tokio runtime.
fn uevent_stream(r: &mut Report) -> Option<UeventStream> {
    match UeventStream::open(nvmf_kernel::uevent::DEFAULT_RCVBUF, true) {
        Ok(s) => {
            r.check("uevent-stream", Ok(format!("rcvbuf {}", s.rcvbuf())));
            Some(s)
        }
        Err(e) => {
            r.check("uevent-stream", Err(e.to_string()));
            None
        }
    }
}

/// Linking subsystem `n` to port 1 raises a Discovery Log Page Change AEN
/// on the persistent DC, and the re-read log page lists it (which re-arms
/// the AEN). The link-to-uevent latency goes into `latencies`.
async fn aen(
    k: &Kernel,
    stream: Option<&mut UeventStream>,
    n: u32,
    latencies: &mut Vec<Duration>,
) -> Outcome {
    let stream = stream.ok_or("no uevent stream: uevent-stream failed")?;
    let dcname = k.dcname()?;
    k.t.add_subsystem(&sub(n), true, None)
        .map_err(|e| e.to_string())?;
    let start = Instant::now();
    k.t.link(1, &sub(n)).map_err(|e| e.to_string())?;
    next_aen(stream, &dcname, Duration::from_secs(10)).await?;
    let lat = start.elapsed();
    latencies.push(lat);
    let log = read_log(&dcname)?;
    ensure(
        subsystems_of(&log.page, SubType::Nvme).contains(&sub(n)),
        "new subsystem not in the log",
    )?;
    Ok(format!("link -> uevent {lat:?}"))
}

/// An IPv6 discovery controller, connected for one read (kept as blob
/// dlp-port2.bin).
fn dc_ipv6(k: &Kernel, r: &Report) -> Outcome {
    let (c, _) = k
        .fabrics
        .connect(&dc_options("::1", None), &k.supported)
        .map_err(|e| e.to_string())?;
    let log = read_log(&c.name());
    k.sysfs
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
        k.sysfs.controller(&c.name()).ok().flatten().is_none()
    })?;
    r.blob("dlp-port2.bin", &log.raw);
    Ok(format!("{} entries", log.page.entries.len()))
}

/// stasadm discover reuses the persistent DC (its raw page kept as blob
/// stasadm-port1.bin for the nvme-cli differential).
fn stasadm_reuse(k: &Kernel) -> Outcome {
    let dcname = k.dcname()?;
    let before = k.sysfs.controller_names().map_err(|e| e.to_string())?;
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
    let after = k.sysfs.controller_names().map_err(|e| e.to_string())?;
    ensure(
        before == after,
        format!("controllers {before:?} -> {after:?}"),
    )?;
    Ok(text)
}

/// stasadm discover on ::1 connects a DC of its own and disconnects it.
fn stasadm_connect_disconnect(k: &Kernel, r: &Report) -> Outcome {
    let before = k.sysfs.controller_names().map_err(|e| e.to_string())?;
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
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| format!("{e}: {text}"))?;
    let n = v.as_array().map_or(0, Vec::len);
    ensure(n >= 2, format!("{n} entries"))?;
    wait_for(
        "stasadm's controller deleted",
        Duration::from_secs(5),
        || k.sysfs.controller_names().is_ok_and(|a| a == before),
    )?;
    r.blob("stasadm-port2.json", text.as_bytes());
    Ok(format!("{n} entries"))
}

/// stasadm discover on a closed port: exit 1 and a message naming it.
fn stasadm_connect_refused() -> Outcome {
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
}

/// nvme-cli against the same target, for the host's differential check
/// (its JSON kept as blob nvme-cli-port1.json).
fn nvme_cli_discover(r: &Report) -> Outcome {
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
}

/// An I/O controller: the namespace appears, a duplicate is "already
/// connected", delete removes it.
fn io_connect(k: &Kernel, r: &Report) -> Outcome {
    let mut o = ConnectOptions::new(ControllerKind::Io, "tcp", &sub(1), Some("127.0.0.1"));
    o.trsvcid = Some("8009".into());
    o.hostnqn = Some(HOSTNQN.into());
    o.hostid = Some(HOSTID.into());
    let start = Instant::now();
    let (c, _) = k
        .fabrics
        .connect(&o, &k.supported)
        .map_err(|e| e.to_string())?;
    let connect_time = start.elapsed();
    let blk = format!("/dev/{}n1", c.name());
    let appeared = wait_for(&blk, Duration::from_secs(10), || Path::new(&blk).exists());
    let dup = k.fabrics.connect(&o, &k.supported);
    let info = k
        .sysfs
        .controller(&c.name())
        .map_err(|e| e.to_string())?
        .ok_or("no sysfs entry")?;
    k.sysfs
        .delete_controller(&c.name())
        .map_err(|e| e.to_string())?;
    let gone = wait_for("I/O controller deleted", Duration::from_secs(10), || {
        k.sysfs.controller(&c.name()).ok().flatten().is_none()
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
}

/// An option the kernel refuses: a typed error that names it.
fn bad_option_typed(k: &Kernel) -> Outcome {
    let bogus = OptionString {
        text: format!(
            "nqn={},transport=tcp,traddr=127.0.0.1,trsvcid=8009,bogus_option=1",
            sub(1)
        ),
        dropped: Vec::new(),
    };
    match k.fabrics.connect_raw(&bogus) {
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
}

/// Options the kernel does not accept are left out of the option string,
/// each with a reason.
fn unsupported_option_dropped(k: &Kernel) -> Outcome {
    let mut o = dc_options("127.0.0.1", None);
    o.tls = true;
    o.concat = true;
    let s =
        nvmf_kernel::fabrics::build_option_string(&o, &k.supported).map_err(|e| e.to_string())?;
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
}

/// A log page of 300+ entries, several 4 KiB chunks, read consistently.
fn dlp_300(k: &Kernel, r: &Report) -> Outcome {
    let dcname = k.dcname()?;
    for n in 100..400 {
        k.t.add_subsystem(&sub(n), true, None)
            .map_err(|e| e.to_string())?;
        k.t.link(1, &sub(n)).map_err(|e| e.to_string())?;
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
}

/// GENCTR protocol while the target changes underneath, made
/// deterministic: a wrapper around the real device changes the nvmet
/// configuration right after an entries chunk of a round was read.
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

/// One change mid-read: the reader starts over and returns a consistent page.
fn dlp_genctr_retry(k: &Kernel) -> Outcome {
    let dev = NvmeDevice::open(&k.paths.controller_dev(&k.dcname()?)).map_err(|e| e.to_string())?;
    let mut f = Flipper {
        dev,
        t: &k.t,
        commands: 0,
        flips_left: 1,
    };
    let log =
        read_discovery_log(&mut f, 0, DiscoveryLogLimits::default()).map_err(|e| e.to_string())?;
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
}

/// A change in every round: a typed GENCTR churn error after the limit.
fn dlp_genctr_churn_typed(k: &Kernel) -> Outcome {
    let dev = NvmeDevice::open(&k.paths.controller_dev(&k.dcname()?)).map_err(|e| e.to_string())?;
    let mut f = Flipper {
        dev,
        t: &k.t,
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
}

/// ENOBUFS: a tiny socket buffer overflows and says so.
fn uevent_enobufs_lost(k: &Kernel) -> Outcome {
    let s = UeventSocket::open(1).map_err(|e| e.to_string())?;
    for _ in 0..3 {
        let (c, _) = k
            .fabrics
            .connect(&dc_options("127.0.0.1", None), &k.supported)
            .map_err(|e| e.to_string())?;
        k.sysfs
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
}
