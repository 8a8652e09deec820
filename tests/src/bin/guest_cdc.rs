//! The `cdc` part of the stafd lab scenario: nvmf-dcsim plays central and
//! direct discovery controllers over real NVMe/TCP, the guest's kernel is
//! the host, nvmet serves the I/O subsystems the simulated log pages list.
//! First nvme-cli meets the simulator (discover, connect-all, dim), then
//! stafd and stacd do (registration, PLEO, zoning AENs, referrals, EPCSD,
//! keep-alive loss, hostile entries, NCC, deregistration), then one simulator
//! with 100 DCs of 1,000 entries each measures stafd at scale.

use std::collections::BTreeSet;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fixtures::nvmet::{Nvmet, PortAddr};
use nvmf_kernel::fabrics::{ConnectOptions, ControllerKind, Fabrics};
use nvmf_kernel::sysfs::Sysfs;
use nvmf_kernel::KernelPaths;
use nvmf_proto::dim::DimData;
use nvmf_proto::WELL_KNOWN_DISCOVERY_NQN;
use serde_json::Value;

use crate::guest_stacd::{iocs, start_stacd};
use crate::guest_stafd::{all_log_pages, start_stafd, stop};
use crate::{ensure, Report, HOSTID, HOSTNQN};

const TOPOLOGY: &str = "/tmp/dcsim.toml";
const STATE: &str = "/tmp/dcsim.json";
/// The simulated DCs: a CDC, a DDC and one for nvme-cli, each on its own
/// loopback address (nvmet's DC is 127.0.0.1:8009).
const CDC: &str = "127.0.0.2";
const DDC: &str = "127.0.0.3";
const CLI: &str = "127.0.0.4";
/// A DC whose page does not say EPCSD: under `persistent = auto` it is polled.
const POLLED: &str = "127.0.0.6";
/// Where hostile entries point: nothing listens there.
const NOWHERE: &str = "127.0.0.9";
/// An entry flagged NCC that nothing serves.
const NCC_NQN: &str = "nqn.2024-01.io.stas.lab:cdc-ncc";
/// stacd's connect-attempts-on-ncc in this scenario.
const NCC_ATTEMPTS: u32 = 2;
/// nvmet's I/O port for the subsystems the simulated pages list.
const IO_PORT: u16 = 3;

fn io(n: u32) -> String {
    format!("nqn.2024-01.io.stas.lab:cdc-io{n}")
}

fn entry(subnqn: &str, extra: &str) -> String {
    format!("[[dc.entry]]\ntraddr = \"127.0.0.1\"\ntrsvcid = \"4420\"\nsubnqn = \"{subnqn}\"\n{extra}\n")
}

/// The lab topology. `zoned`: the zoning change (io2 taken from this host,
/// io3 given); `drop_keep_alive`: the DDC stops answering Keep Alive.
fn topology(zoned: bool, drop_keep_alive: bool) -> String {
    let mut t = format!(
        "[[dc]]\nname = \"cdc\"\naddress = \"{CDC}\"\nport = 8009\nkind = \"cdc\"\n\
         nqn = \"nqn.2014-08.org.nvmexpress.discovery:uuid:0c0c0c0c-0000-4000-8000-00000000cdc0\"\n"
    );
    t += &entry(&io(1), "");
    if zoned {
        t += &entry(&io(2), "hosts = [\"nqn.some.other.host\"]");
        t += &entry(&io(3), &format!("hosts = [\"{HOSTNQN}\"]"));
    } else {
        t += &entry(&io(2), &format!("hosts = [\"{HOSTNQN}\"]"));
    }
    t += &format!(
        "[[dc.entry]]\nsubtype = \"current\"\ntraddr = \"{CDC}\"\ntrsvcid = \"8009\"\neflags = [\"epcsd\"]\n\n\
         [[dc.entry]]\nsubtype = \"referral\"\ntraddr = \"127.0.0.1\"\ntrsvcid = \"8009\"\n\n"
    );
    // No CDC connectivity: stacd gives up after connect-attempts-on-ncc.
    t += &format!(
        "[[dc.entry]]\ntraddr = \"{NOWHERE}\"\ntrsvcid = \"4420\"\nsubnqn = \"{NCC_NQN}\"\neflags = [\"ncc\"]\n\n"
    );
    for h in [
        "space-padding",
        "garbage-after-nul",
        "unterminated",
        "unknown-codes",
        "non-printable",
    ] {
        t += &format!(
            "[[dc.entry]]\ntraddr = \"{NOWHERE}\"\ntrsvcid = \"4420\"\nsubnqn = \"nqn.hostile:{h}\"\nhostile = \"{h}\"\n\n"
        );
    }
    t += &format!(
        "[[dc]]\nname = \"ddc\"\naddress = \"{DDC}\"\nport = 8009\nkind = \"ddc\"\n\
         [dc.faults]\nrefuse_dim = 0x0102\n{}\n",
        if drop_keep_alive {
            "drop = [\"keep-alive\"]"
        } else {
            ""
        }
    );
    t += &entry(&io(1), "");
    t += &format!(
        "[[dc]]\nname = \"polled\"\naddress = \"{POLLED}\"\nport = 8009\nkind = \"none\"\n"
    );
    t += &entry(&io(1), "");
    t += &format!("[[dc]]\nname = \"cli\"\naddress = \"{CLI}\"\nport = 8009\nkind = \"cdc\"\n");
    for n in 1..=3 {
        t += &entry(&io(n), "");
    }
    t
}

fn start_dcsim(topology_text: &str) -> Result<Child, String> {
    std::fs::write(TOPOLOGY, topology_text).map_err(|e| e.to_string())?;
    let _ = std::fs::remove_file(STATE);
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open("/tmp/dcsim.log")
        .map_err(|e| e.to_string())?;
    Command::new("/bin/nvmf-dcsim")
        .args([TOPOLOGY, "--state", STATE])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .map_err(|e| format!("nvmf-dcsim: {e}"))
}

fn state() -> Value {
    std::fs::read(STATE)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(Value::Null)
}

/// Polls the simulator's state file until `ok` holds.
async fn wait_state(
    what: &str,
    timeout: Duration,
    mut ok: impl FnMut(&Value) -> bool,
) -> Result<Value, String> {
    let start = Instant::now();
    loop {
        let s = state();
        if ok(&s) {
            return Ok(s);
        }
        if start.elapsed() > timeout {
            return Err(format!(
                "{what}: not within {timeout:?}; simulator state: {s}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn nvme(args: &[&str]) -> Result<String, String> {
    let o = Command::new("/usr/sbin/nvme")
        .args(args)
        .output()
        .map_err(|e| format!("nvme: {e}"))?;
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    if o.status.success() {
        Ok(out)
    } else {
        Err(format!(
            "nvme {}: {}; {}{}",
            args.join(" "),
            o.status,
            out,
            String::from_utf8_lossy(&o.stderr)
        ))
    }
}

/// The DC stafd reports at `traddr`, port 8009.
fn dc_of<'a>(v: &'a Value, traddr: &str) -> Option<&'a Value> {
    v.as_array()?
        .iter()
        .find(|d| d["discovery-controller"]["traddr"] == traddr)
}

fn subnqns(dc: &Value) -> BTreeSet<String> {
    dc["log-pages"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|e| e["subnqn"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn stafd_log() -> String {
    std::fs::read_to_string("/tmp/stafd.log").unwrap_or_default()
}

/// Field-by-field differences of two DIM payloads.
fn dim_diff(a: &DimData, b: &DimData) -> Vec<String> {
    let mut d = Vec::new();
    let mut cmp = |what: &str, x: String, y: String| {
        if x != y {
            d.push(format!("{what}: nvme-cli {x:?}, stafd {y:?}"));
        }
    };
    cmp(
        "entfmt",
        format!("{:?}", a.entfmt),
        format!("{:?}", b.entfmt),
    );
    cmp("etype", format!("{:?}", a.etype), format!("{:?}", b.etype));
    cmp("portlcl", a.portlcl.to_string(), b.portlcl.to_string());
    cmp("ektype", a.ektype.to_string(), b.ektype.to_string());
    cmp("eid", a.eid.clone(), b.eid.clone());
    cmp("ename", a.ename.clone(), b.ename.clone());
    cmp("ever", a.ever.clone(), b.ever.clone());
    cmp(
        "entries",
        a.entries.len().to_string(),
        b.entries.len().to_string(),
    );
    for (i, (x, y)) in a.entries.iter().zip(&b.entries).enumerate() {
        cmp(
            &format!("entry {i} trtype"),
            format!("{:?}", x.trtype),
            format!("{:?}", y.trtype),
        );
        cmp(
            &format!("entry {i} adrfam"),
            format!("{:?}", x.adrfam),
            format!("{:?}", y.adrfam),
        );
        cmp(
            &format!("entry {i} subtype"),
            format!("{:?}", x.subtype),
            format!("{:?}", y.subtype),
        );
        cmp(
            &format!("entry {i} treq"),
            format!("{:?}", x.treq),
            format!("{:?}", y.treq),
        );
        cmp(
            &format!("entry {i} portid"),
            x.portid.to_string(),
            y.portid.to_string(),
        );
        cmp(
            &format!("entry {i} cntlid"),
            x.cntlid.to_string(),
            y.cntlid.to_string(),
        );
        cmp(
            &format!("entry {i} asqsz"),
            x.asqsz.to_string(),
            y.asqsz.to_string(),
        );
        cmp(
            &format!("entry {i} trsvcid"),
            x.trsvcid.clone(),
            y.trsvcid.clone(),
        );
        cmp(&format!("entry {i} nqn"), x.nqn.clone(), y.nqn.clone());
        cmp(
            &format!("entry {i} traddr"),
            x.traddr.clone(),
            y.traddr.clone(),
        );
        cmp(
            &format!("entry {i} tsas"),
            format!("{:?}", x.tsas),
            format!("{:?}", y.tsas),
        );
        cmp(
            &format!("entry {i} attrs"),
            format!("{:?}", x.attrs),
            format!("{:?}", y.attrs),
        );
    }
    d
}

fn hex_bytes(v: &Value) -> Vec<u8> {
    let s = v.as_str().unwrap_or_default();
    (0..s.len() / 2)
        .filter_map(|i| u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok())
        .collect()
}

fn write_sysconf(symname: Option<&str>) -> std::io::Result<()> {
    let mut s = format!("[Host]\nnqn = {HOSTNQN}\nid = {HOSTID}\n");
    if let Some(n) = symname {
        s += &format!("symname = {n}\n");
    }
    std::fs::write("/etc/stas/sys.conf", s)
}

/// `persistent = auto`: a DC stays connected only if its page says EPCSD
/// (the CDC's own entry does); the DDC is forced (the keep-alive check
/// needs its connection); the plain DC is polled.
const STAFD_CONF: &str = "[Discovery controller connection management]\npersistent = auto\n\
    [Controllers]\n\
    controller = transport=tcp;traddr=127.0.0.2;trsvcid=8009\n\
    controller = transport=tcp;traddr=127.0.0.3;trsvcid=8009;kato=5;persistent=force\n\
    controller = transport=tcp;traddr=127.0.0.6;trsvcid=8009\n";

pub fn scenario(r: &mut Report, t: &Nvmet) {
    let paths = KernelPaths::default();
    let sysfs = Sysfs::new(&paths);
    let setup = (|| -> Result<Child, String> {
        for n in 1..=3 {
            t.add_subsystem(&io(n), true, None)
                .map_err(|e| e.to_string())?;
        }
        t.add_port(IO_PORT, &PortAddr::tcp("127.0.0.1", "4420"))
            .map_err(|e| e.to_string())?;
        for n in 1..=3 {
            t.link(IO_PORT, &io(n)).map_err(|e| e.to_string())?;
        }
        write_sysconf(None).map_err(|e| e.to_string())?;
        start_dcsim(&topology(false, false))
    })();
    let mut dcsim = match setup {
        Ok(c) => c,
        Err(e) => {
            r.check("dcsim-setup", Err(e));
            return;
        }
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        r.check(
            "dcsim-setup",
            wait_state("the simulator listening", Duration::from_secs(10), |s| {
                s["dcs"].as_object().is_some_and(|d| d.len() == 4)
            })
            .await
            .map(|_| String::new()),
        );
        nvme_cli(r, &sysfs).await;
        daemons(r, &sysfs, &mut dcsim).await;
    });
    stop(&mut dcsim, "TERM");
    let _ = dcsim.wait();
    scale(r, &rt);
    for (f, name) in [("/tmp/dcsim.log", "dcsim.log"), (STATE, "dcsim.json")] {
        if let Ok(b) = std::fs::read(f) {
            r.blob(name, &b);
        }
    }
}

/// nvme-cli against the simulator: discover, connect-all, dim.
async fn nvme_cli(r: &mut Report, sysfs: &Sysfs) {
    let want: BTreeSet<String> = (1..=3).map(io).collect();
    let discover = nvme(&[
        "discover", "-t", "tcp", "-a", CLI, "-s", "8009", "-q", HOSTNQN, "-I", HOSTID, "-o", "json",
    ])
    .and_then(|out| {
        let v: Value = serde_json::from_str(&out).map_err(|e| format!("{e}: {out}"))?;
        let got: BTreeSet<String> = v["records"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|e| e["subnqn"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        ensure(
            got == want,
            format!("nvme discover listed {got:?}, the topology {want:?}"),
        )?;
        Ok(format!(
            "nvme discover listed the topology's {} entries",
            got.len()
        ))
    });
    r.check("dcsim-nvme-discover", discover);

    let connect_all = async {
        nvme(&[
            "connect-all",
            "-t",
            "tcp",
            "-a",
            CLI,
            "-s",
            "8009",
            "-q",
            HOSTNQN,
            "-I",
            HOSTID,
        ])?;
        let start = Instant::now();
        let got = loop {
            let got: BTreeSet<String> = iocs(sysfs)
                .into_keys()
                .filter(|k| want.contains(k))
                .collect();
            if got == want || start.elapsed() > Duration::from_secs(20) {
                break got;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let devs: Vec<String> = iocs(sysfs)
            .into_iter()
            .filter(|(k, _)| want.contains(k))
            .map(|(_, d)| d)
            .collect();
        for d in &devs {
            let _ = sysfs.delete_controller(d);
        }
        ensure(
            got == want,
            format!("nvme connect-all through the simulated CDC connected {got:?}"),
        )?;
        Ok(format!(
            "nvme connect-all connected {} nvmet subsystems listed by the simulated CDC",
            got.len()
        ))
    };
    r.check("dcsim-nvme-connect-all", connect_all.await);

    // nvme dim on a persistent connection to the simulated CDC.
    let dim = async {
        let fabrics = Fabrics::new(&KernelPaths::default());
        let supported = fabrics.supported_options().map_err(|e| e.to_string())?;
        let mut o = ConnectOptions::new(
            ControllerKind::Discovery,
            "tcp",
            WELL_KNOWN_DISCOVERY_NQN,
            Some(CLI),
        );
        o.trsvcid = Some("8009".into());
        o.hostnqn = Some(HOSTNQN.into());
        o.hostid = Some(HOSTID.into());
        o.keep_alive_tmo = Some(30);
        let (c, _) = fabrics.connect(&o, &supported).map_err(|e| e.to_string())?;
        let dev = c.name();
        let out = nvme(&["dim", "--tas=register", "-d", &dev]);
        let s = wait_state("nvme dim at the simulator", Duration::from_secs(10), |s| {
            s["dcs"]["cli"]["dim"]
                .as_array()
                .is_some_and(|a| !a.is_empty())
        })
        .await;
        let _ = sysfs.delete_controller(&dev);
        let out = out?;
        let s = s?;
        let d = &s["dcs"]["cli"]["dim"][0];
        ensure(d["tas"] == "register" && d["status"] == 0, format!("{d}"))?;
        ensure(d["payload"]["Ok"]["eid"] == HOSTNQN, format!("eid: {d}"))?;
        Ok(format!("{} -> {}", out.trim(), d["payload"]))
    };
    r.check("dcsim-nvme-dim", dim.await);
}

/// stafd and stacd against the simulated CDC and DDC.
async fn daemons(r: &mut Report, sysfs: &Sysfs, dcsim: &mut Child) {
    let _ = std::fs::write("/tmp/stafd.log", "");
    if let Err(e) = std::fs::write("/etc/stas/stafd.conf", STAFD_CONF) {
        r.check("cdc-stafd-start", Err(e.to_string()));
        return;
    }
    let stacd_conf = format!(
        "[I/O controller connection management]\nconnect-attempts-on-ncc = {NCC_ATTEMPTS}\n"
    );
    if let Err(e) = std::fs::write("/etc/stas/stacd.conf", stacd_conf) {
        r.check("cdc-stafd-start", Err(e.to_string()));
        return;
    }
    let (Ok(mut stafd), Ok(mut stacd)) = (start_stafd(), start_stacd()) else {
        r.check("cdc-stafd-start", Err("cannot start stafd or stacd".into()));
        return;
    };
    let conn = match zbus::Connection::system().await {
        Ok(c) => c,
        Err(e) => {
            r.check("cdc-stafd-start", Err(e.to_string()));
            return;
        }
    };

    // Registration with sys.conf's identity, and the nvme-cli differential.
    let reg = wait_state(
        "stafd registered with the CDC",
        Duration::from_secs(30),
        |s| s["dcs"]["cdc"]["registrations"][HOSTNQN].is_object(),
    )
    .await;
    r.check(
        "cdc-registered",
        reg.clone().and_then(|s| {
            let d = &s["dcs"]["cdc"]["registrations"][HOSTNQN];
            let p = &d["payload"]["Ok"];
            ensure(d["tas"] == "register", format!("{d}"))?;
            ensure(
                p["eid"] == HOSTNQN && p["entries"][0]["nqn"] == HOSTNQN,
                format!("{p}"),
            )?;
            ensure(p["entries"][0]["hostid"] == HOSTID, format!("hostid: {p}"))?;
            let a = &s["dcs"]["cdc"]["associations"];
            ensure(
                a.as_array().is_some_and(|a| {
                    a.iter()
                        .any(|x| x["hostnqn"] == HOSTNQN && x["hostid"] == HOSTID)
                }),
                format!("associations {a}"),
            )?;
            Ok(format!("{p}"))
        }),
    );
    r.check(
        "dim-payload-vs-nvme-cli",
        reg.and_then(|s| {
            let cli = hex_bytes(&s["dcs"]["cli"]["dim"][0]["raw_hex"]);
            let ours = hex_bytes(&s["dcs"]["cdc"]["registrations"][HOSTNQN]["raw_hex"]);
            if cli == ours {
                return Ok(format!("{} bytes, identical", ours.len()));
            }
            let a = DimData::parse(&cli).map_err(|e| format!("nvme-cli's payload: {e}"))?;
            let b = DimData::parse(&ours).map_err(|e| format!("stafd's payload: {e}"))?;
            Err(format!(
                "{} vs {} bytes; differences: {:?}",
                cli.len(),
                ours.len(),
                dim_diff(&a, &b)
            ))
        }),
    );

    // PLEO asked of the DDC (it offers it); its DIM refusal is not fatal.
    r.check(
        "ddc-pleo-and-refused-dim",
        wait_state("the DDC read with PLEO", Duration::from_secs(30), |s| {
            let d = &s["dcs"]["ddc"];
            d["dim"].as_array().is_some_and(|a| !a.is_empty())
                && d["log_reads"].as_array().is_some_and(|a| {
                    a.iter()
                        .any(|x| x["lid"] == 0x70 && x["lsp"].as_u64().unwrap_or(0) & 2 != 0)
                })
        })
        .await
        .and_then(|s| {
            let d = &s["dcs"]["ddc"];
            ensure(
                d["dim"][0]["status"] != 0,
                format!("DIM not refused: {}", d["dim"][0]),
            )?;
            ensure(
                stafd_log().contains("Registration error"),
                "no \"Registration error\" in stafd's log",
            )?;
            Ok(format!(
                "refused with status {}, log read with LSP PLEO",
                d["dim"][0]["status"]
            ))
        }),
    );

    // The referral to nvmet's DC, the hostile entries, stacd's connects.
    let pages = wait_log_pages(&conn, |v| {
        dc_of(v, "127.0.0.1").is_some_and(|d| !subnqns(d).is_empty())
            && dc_of(v, CDC).is_some_and(|d| subnqns(d).contains(&io(2)))
    })
    .await;
    r.check(
        "cdc-referral-followed",
        pages.clone().map(|v| {
            format!(
                "nvmet's DC via the CDC's referral: {:?}",
                dc_of(&v, "127.0.0.1").map(subnqns)
            )
        }),
    );
    r.check(
        "cdc-hostile-entries",
        pages.and_then(|v| {
            let got = dc_of(&v, CDC).map(subnqns).unwrap_or_default();
            ensure(
                got.contains(&io(1)) && got.contains(&io(2)),
                format!("good entries missing: {got:?}"),
            )?;
            ensure(
                !got.iter().any(|s| s.contains("non-printable")),
                format!("a non-printable entry kept: {got:?}"),
            )?;
            let reported = stafd_log()
                .lines()
                .filter(|l| l.contains(CDC) && l.contains("entry ignored"))
                .count();
            ensure(
                reported == 1,
                format!("{reported} \"entry ignored\" lines for one bad entry"),
            )?;
            Ok(format!(
                "{} entries kept, the non-printable one reported once",
                got.len()
            ))
        }),
    );
    let want_before: BTreeSet<String> = [io(1), io(2)].into();
    let connected = |want: &BTreeSet<String>| {
        let got: BTreeSet<String> = iocs(sysfs)
            .into_keys()
            .filter(|k| k.contains("cdc-io"))
            .collect();
        (got == *want, got)
    };
    let t0 = Instant::now();
    let ok = loop {
        let (ok, got) = connected(&want_before);
        if ok || t0.elapsed() > Duration::from_secs(30) {
            break ensure(ok, format!("stacd connected {got:?}"))
                .map(|()| format!("{got:?} after {:?}", t0.elapsed()));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    r.check("cdc-stacd-connects", ok);

    // Zoning change in the simulator -> AEN -> stafd -> stacd.
    let aens_before = state()["dcs"]["cdc"]["aens"].as_array().map_or(0, Vec::len);
    let _ = std::fs::write(TOPOLOGY, topology(true, false));
    stop(dcsim, "HUP");
    let want_after: BTreeSet<String> = [io(1), io(3)].into();
    let t0 = Instant::now();
    let zoned = loop {
        let (ok, got) = connected(&want_after);
        if ok || t0.elapsed() > Duration::from_secs(30) {
            let aens = state()["dcs"]["cdc"]["aens"].as_array().map_or(0, Vec::len);
            break ensure(
                ok && aens > aens_before,
                format!("connected {got:?}, AENs {aens_before} -> {aens}"),
            )
            .map(|()| {
                format!(
                    "AEN sent; io3 connected and io2 disconnected after {:?}",
                    t0.elapsed()
                )
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    r.check("cdc-zoning-aen-to-stacd", zoned);
    // A kernel reset of the CDC's controller makes stafd read the same page
    // again: its bad entry is not reported again (one report per page
    // version: before and after the zoning change).
    let complete_reads = |s: &Value| {
        s["dcs"]["cdc"]["log_reads"].as_array().map_or(0, |a| {
            a.iter()
                .filter(|r| r["lid"] == 0x70 && r["rae"] == false)
                .count()
        })
    };
    let reads_before = complete_reads(&state());
    let cdc_dev = crate::guest_stafd::dcs(sysfs)
        .into_iter()
        .find(|d| d.ends_with(&format!("@{CDC}")))
        .and_then(|d| d.split('@').next().map(str::to_owned))
        .unwrap_or_default();
    let reset = std::fs::write(format!("/sys/class/nvme/{cdc_dev}/reset_controller"), "1")
        .map_err(|e| format!("reset {cdc_dev}: {e}"));
    let reread = wait_state("a read after the reset", Duration::from_secs(30), |s| {
        complete_reads(s) > reads_before
    })
    .await;
    let reported = stafd_log()
        .lines()
        .filter(|l| l.contains(CDC) && l.contains("entry ignored") && !l.contains("as before"))
        .count();
    r.check(
        "cdc-hostile-reported-once-per-change",
        reset.and(reread).and_then(|s| {
            ensure(
                reported == 2,
                format!("{reported} reports of one bad entry over 2 page versions"),
            )?;
            Ok(format!(
                "{} complete reads, 2 page versions, {reported} reports",
                complete_reads(&s)
            ))
        }),
    );

    // DIM update when only the symbolic name changes.
    // The same reload turns PLEO off (checked on the DDC's next reads).
    let _ = write_sysconf(Some("lab-rack-7"));
    let _ = std::fs::write(
        "/etc/stas/stafd.conf",
        format!("[Global]\npleo = disabled\n{STAFD_CONF}"),
    );
    let dims_before = state()["dcs"]["cdc"]["dim"].as_array().map_or(0, Vec::len);
    stop(&mut stafd, "HUP");
    let update = wait_state(
        "a DIM update with the new symname",
        Duration::from_secs(20),
        |s| {
            s["dcs"]["cdc"]["dim"]
                .as_array()
                .and_then(|a| a.last())
                .is_some_and(|d| {
                    d["tas"] == "update"
                        && d["payload"]["Ok"]["entries"][0]["symname"] == "lab-rack-7"
                })
        },
    )
    .await;
    // Anything else the reload sends comes within a second or two.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let tas: Vec<String> = state()["dcs"]["cdc"]["dim"]
        .as_array()
        .map(|a| {
            a.iter()
                .skip(dims_before)
                .map(|d| d["tas"].as_str().unwrap_or("?").to_owned())
                .collect()
        })
        .unwrap_or_default();
    r.check(
        "cdc-dim-update-on-symname",
        update.and_then(|_| {
            ensure(
                tas == ["update"],
                format!("DIM commands after the reload: {tas:?}"),
            )?;
            Ok(format!("after the reload: {tas:?}"))
        }),
    );

    // Keep-alive loss: the DDC stops answering; the kernel drops the
    // association and reconnects; stafd's cache of the DDC stays.
    let _ = std::fs::write(TOPOLOGY, topology(true, true));
    stop(dcsim, "HUP");
    let t0 = Instant::now();
    let mut gone = 0;
    let dropped = loop {
        if let Ok(v) = all_log_pages(&conn).await {
            if dc_of(&v, DDC).is_none_or(|d| subnqns(d).is_empty()) {
                gone += 1;
            }
        }
        let s = state();
        let closed = s["dcs"]["ddc"]["associations"]
            .as_array()
            .is_some_and(|a| a.iter().any(|x| x["open"] == false));
        if closed || t0.elapsed() > Duration::from_secs(60) {
            break closed;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let _ = std::fs::write(TOPOLOGY, topology(true, false));
    stop(dcsim, "HUP");
    let back = wait_state("a new DDC association", Duration::from_secs(60), |s| {
        s["dcs"]["ddc"]["associations"]
            .as_array()
            .is_some_and(|a| a.last().is_some_and(|x| x["open"] == true) && a.len() >= 2)
    })
    .await;
    r.check(
        "ddc-keep-alive-loss",
        back.and_then(|s| {
            ensure(dropped, "the association never dropped")?;
            ensure(
                gone == 0,
                format!("stafd's DDC log page was missing {gone} times"),
            )?;
            let a = &s["dcs"]["ddc"]["associations"];
            Ok(format!(
                "dropped after {:?}; reconnected; log page kept; {a}",
                t0.elapsed()
            ))
        }),
    );

    // pleo = disabled since the reload: the DDC's new association reads
    // without LSP PLEO.
    let new_reads = |s: &Value| -> Vec<u64> {
        let last = s["dcs"]["ddc"]["associations"]
            .as_array()
            .and_then(|a| a.last())
            .map(|a| a["id"].clone());
        s["dcs"]["ddc"]["log_reads"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter(|x| Some(&x["association"]) == last.as_ref() && x["lid"] == 0x70)
                    .filter_map(|x| x["lsp"].as_u64())
                    .collect()
            })
            .unwrap_or_default()
    };
    let pleo_off = wait_state(
        "reads on the DDC's new association",
        Duration::from_secs(20),
        |s| !new_reads(s).is_empty(),
    )
    .await
    .and_then(|s| {
        let reads = new_reads(&s);
        ensure(
            reads.iter().all(|l| l & 2 == 0),
            format!("LSPs on the new association: {reads:?}"),
        )
        .map(|()| format!("{} reads, LSP {reads:?}", reads.len()))
    });
    r.check("ddc-pleo-disabled-on-reload", pleo_off);

    // EPCSD under persistent = auto: the CDC's own entry says EPCSD, so its
    // connection stays; the plain DC's page does not, so it was read and
    // disconnected, its page kept.
    let epcsd = async {
        let s = wait_state(
            "the polled DC read and let go",
            Duration::from_secs(30),
            |s| {
                let d = &s["dcs"]["polled"];
                d["log_reads"].as_array().is_some_and(|a| !a.is_empty())
                    && d["associations"]
                        .as_array()
                        .is_some_and(|a| !a.is_empty() && a.iter().all(|x| x["open"] == false))
            },
        )
        .await?;
        let kernel = crate::guest_stafd::dcs(sysfs);
        ensure(
            kernel
                .iter()
                .filter(|d| d.ends_with(&format!("@{CDC}")))
                .count()
                == 1,
            format!("the CDC is not connected: {kernel:?}"),
        )?;
        ensure(
            !kernel.iter().any(|d| d.ends_with(&format!("@{POLLED}"))),
            format!("the polled DC is still connected: {kernel:?}"),
        )?;
        let v = all_log_pages(&conn).await?;
        let kept = dc_of(&v, POLLED).map(subnqns).unwrap_or_default();
        ensure(
            kept.contains(&io(1)),
            format!("the polled DC's page was not kept: {kept:?}"),
        )?;
        Ok(format!(
            "kernel DCs {kernel:?}; the polled DC's page {kept:?} kept; its associations {}",
            s["dcs"]["polled"]["associations"]
        ))
    };
    r.check("cdc-epcsd-persistent", epcsd.await);

    // NCC: stacd stopped after connect-attempts-on-ncc failed attempts.
    let ncc_line = format!("NCC set and {NCC_ATTEMPTS} connect attempts failed");
    let t0 = Instant::now();
    let ncc = loop {
        let log = std::fs::read_to_string("/tmp/stacd.log").unwrap_or_default();
        let stopped = log
            .lines()
            .any(|l| l.contains(NCC_NQN) && l.contains(&ncc_line));
        if stopped || t0.elapsed() > Duration::from_secs(90) {
            let tries: Vec<&str> = log.lines().filter(|l| l.contains(NCC_NQN)).collect();
            break ensure(
                stopped,
                format!("no \"{ncc_line}\" for {NCC_NQN}; stacd said {tries:?}"),
            )
            .map(|()| format!("{} lines about it, ending with {ncc_line:?}", tries.len()));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    r.check("cdc-ncc-attempts-bounded", ncc);

    // Removing the CDC from the config deregisters it.
    let _ = std::fs::write("/etc/stas/stafd.conf", "[Global]\n");
    stop(&mut stafd, "HUP");
    r.check(
        "cdc-deregistered-on-removal",
        wait_state("DIM deregister", Duration::from_secs(20), |s| {
            s["dcs"]["cdc"]["dim"]
                .as_array()
                .and_then(|a| a.last())
                .is_some_and(|d| d["tas"] == "deregister")
        })
        .await
        .map(|s| format!("{}", s["dcs"]["cdc"]["registrations"])),
    );
    stop(&mut stacd, "TERM");
    let _ = stacd.wait();
    stop(&mut stafd, "TERM");
    let _ = stafd.wait();
    for d in iocs(sysfs).values() {
        let _ = sysfs.delete_controller(d);
    }
}

async fn wait_log_pages(
    conn: &zbus::Connection,
    mut ok: impl FnMut(&Value) -> bool,
) -> Result<Value, String> {
    let start = Instant::now();
    let mut last = String::new();
    while start.elapsed() < Duration::from_secs(30) {
        match all_log_pages(conn).await {
            Ok(v) if ok(&v) => return Ok(v),
            Ok(v) => last = v.to_string(),
            Err(e) => last = e,
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(format!("not within 30 s; stafd said {last}"))
}

/// DCs and entries per DC of the scale step.
const SCALE_DCS: usize = 100;
const SCALE_ENTRIES: usize = 1000;

fn proc_stat(pid: u32) -> (f64, f64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0);
    // utime, stime are fields 14 and 15 (1-based), 12 and 13 after the ')'.
    ((ticks(11) + ticks(12)) / 100.0, rss / 1024.0)
}

/// One simulator with 100 DCs of 1,000 entries; stafd connected to all.
fn scale(r: &mut Report, rt: &tokio::runtime::Runtime) {
    let topo = format!(
        "[[dc]]\nname = \"scale\"\naddress = \"127.0.0.5\"\nport = 9000\nreplicas = {SCALE_DCS}\nkind = \"ddc\"\n\
         [[dc.entry]]\ntraddr = \"{NOWHERE}\"\ntrsvcid = \"4420\"\nsubnqn = \"nqn.2024-01.io.stas.lab:scale{{n}}\"\ncount = {SCALE_ENTRIES}\n"
    );
    // Not persistent: stafd's exit takes its 100 connections with it.
    let mut conf = String::from(
        "[Discovery controller connection management]\npersistent-connections = false\n[Controllers]\n",
    );
    for p in 0..SCALE_DCS {
        conf += &format!(
            "controller = transport=tcp;traddr=127.0.0.5;trsvcid={}\n",
            9000 + p
        );
    }
    let mut dcsim = match start_dcsim(&topo).and_then(|c| {
        std::fs::write("/etc/stas/stafd.conf", &conf).map_err(|e| e.to_string())?;
        Ok(c)
    }) {
        Ok(c) => c,
        Err(e) => {
            r.check("dcsim-scale-100-dcs", Err(e));
            return;
        }
    };
    if let Ok(log) = std::fs::read("/tmp/stafd.log") {
        r.blob("stafd-cdc.log", &log);
    }
    let _ = std::fs::write("/tmp/stafd.log", "");
    let dcsim_pid = dcsim.id();
    rt.block_on(async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let t0 = Instant::now();
        let Ok(mut stafd) = start_stafd() else {
            r.check("dcsim-scale-100-dcs", Err("cannot start stafd".into()));
            return;
        };
        // Progress from stafd's log, not from D-Bus: a 100,000-entry answer
        // every second would load the daemon being measured.
        let cached = || {
            let log = stafd_log();
            log.lines()
                .filter(|l| l.contains("127.0.0.5") && l.contains(&format!("num records={SCALE_ENTRIES})")))
                .filter_map(|l| l.split(", ").nth(2).map(str::to_owned))
                .collect::<BTreeSet<String>>()
                .len()
        };
        let res = loop {
            let n = cached();
            if n == SCALE_DCS {
                break Ok(t0.elapsed());
            }
            if t0.elapsed() > Duration::from_secs(300) {
                break Err(format!("{n} of {SCALE_DCS} DCs cached after 300 s"));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        };
        // Memory with everything cached, before a D-Bus answer of 100,000
        // entries passes through the daemon's heap.
        let (_, rss_cached) = proc_stat(stafd.id());
        let (_, rss_sim) = proc_stat(dcsim_pid);
        let res = match res {
            Ok(took) => match zbus::Connection::system().await {
                Ok(conn) => match all_log_pages(&conn).await {
                    Ok(v) => {
                        let full = v.as_array().map_or(0, |a| {
                            a.iter()
                                .filter(|d| d["log-pages"].as_array().is_some_and(|p| p.len() == SCALE_ENTRIES))
                                .count()
                        });
                        ensure(full == SCALE_DCS, format!("D-Bus shows {full} full DCs")).map(|()| took)
                    }
                    Err(e) => Err(e),
                },
                Err(e) => Err(e.to_string()),
            },
            Err(e) => Err(e),
        };
        let res = match res {
            Ok(took) => {
                let (cpu0, _) = proc_stat(stafd.id());
                let idle = Duration::from_secs(30);
                tokio::time::sleep(idle).await;
                let (cpu1, rss) = proc_stat(stafd.id());
                let per_min = (cpu1 - cpu0) * 60.0 / idle.as_secs_f64();
                r.metric("scale-100dc-all-cached", took.as_secs_f64(), "s");
                r.metric("scale-100dc-stafd-rss-cached", rss_cached, "MiB");
                r.metric("scale-100dc-stafd-rss-after-dbus", rss, "MiB");
                r.metric("scale-100dc-stafd-idle-cpu", per_min, "s/min");
                r.metric("scale-100dc-dcsim-rss", rss_sim, "MiB");
                Ok(format!(
                    "{SCALE_DCS} DCs x {SCALE_ENTRIES} entries cached {:.1} s after start; stafd RSS {rss_cached:.1} MiB cached, \
                     {rss:.1} MiB after one get_all_log_pages; idle CPU {per_min:.3} s/min; nvmf-dcsim RSS {rss_sim:.1} MiB",
                    took.as_secs_f64()
                ))
            }
            Err(e) => Err(e),
        };
        r.check("dcsim-scale-100-dcs", res);
        stop(&mut stafd, "TERM");
        let _ = stafd.wait();
    });
    stop(&mut dcsim, "TERM");
    let _ = dcsim.wait();
    let _ = std::fs::write("/etc/stas/stafd.conf", "[Global]\n");
}
