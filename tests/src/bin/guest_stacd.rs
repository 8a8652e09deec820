//! The `stacd` lab scenario: stafd, stacd and a dbus-daemon in the guest
//! against nvmet. I/O controllers are observed where an admin sees them
//! (sysfs, namespaces, stacctl), while the target's zoning changes.

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fixtures::nvmet::{Nvmet, PortAddr};
use nvmf_kernel::sysfs::Sysfs;
use nvmf_kernel::KernelPaths;

use crate::guest_stafd::{
    percentile, prepare_host, show, start_dbus, start_stafd, stop, subsystems, wait_json,
};
use crate::{ensure, Report};

/// Subsystems of the scale step (the first is sub(SCALE_FIRST)).
const SCALE_COUNT: u32 = 100;
const SCALE_FIRST: u32 = 100;
/// Link/unlink rounds for the latency figures.
const ROUNDS: usize = 30;

pub(crate) fn sub(n: u32) -> String {
    format!("nqn.2024-01.io.stas.lab:c{n}")
}

pub(crate) fn start_stacd() -> std::io::Result<Child> {
    start_stacd_with(&[])
}

/// [`start_stacd`] with more environment variables.
pub(crate) fn start_stacd_with(env: &[(&str, &str)]) -> std::io::Result<Child> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open("/tmp/stacd.log")?;
    Command::new("/bin/stacd")
        .env("RUNTIME_DIRECTORY", "/run/stacd")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
}

/// Subsystems `sub(n)` for `n` in `range`, each open to any host with a
/// 1 MiB namespace, not linked to a port yet.
pub(crate) fn add_subsystems(t: &Nvmet, range: std::ops::Range<u32>) -> Result<(), String> {
    for n in range {
        t.add_subsystem(&sub(n), true, None)
            .map_err(|e| e.to_string())?;
        t.add_namespace(
            &sub(n),
            1,
            std::path::Path::new(&format!("/tmp/c{n}.img")),
            1 << 20,
        )
        .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Live-or-connecting I/O controllers: subsystem NQN -> device. Reads
/// each controller's identifying attributes only (no subsystem walk, no
/// full attribute set): the checks poll it while stacd works, and must not
/// compete with what they measure.
pub(crate) fn iocs(sysfs: &Sysfs) -> BTreeMap<String, String> {
    sysfs
        .controller_names()
        .unwrap_or_default()
        .iter()
        .filter_map(|n| sysfs.controller_identity(n).ok().flatten())
        .filter(|c| !c.is_discovery())
        .filter(|c| {
            !c.state
                .as_deref()
                .unwrap_or_default()
                .starts_with("deleting")
        })
        .filter_map(|c| Some((c.subsysnqn.clone()?, c.name)))
        .collect()
}

/// How many namespaces the kernel made for controller `dev`.
pub(crate) fn namespaces(dev: &str) -> usize {
    std::fs::read_dir(format!("/sys/class/nvme/{dev}"))
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| {
                    let n = e.file_name().to_string_lossy().into_owned();
                    n.starts_with("nvme") && n.contains('n') && n != dev && n.len() > dev.len()
                })
                .count()
        })
        .unwrap_or(0)
}

/// Polls `cond` every millisecond until it holds; how long that took.
pub(crate) async fn until(
    what: &str,
    timeout: Duration,
    cond: impl FnMut() -> bool,
) -> Result<Duration, String> {
    until_every(what, timeout, Duration::from_millis(1), cond).await
}

/// Polls `cond` every `every` until it holds; how long that took.
pub(crate) async fn until_every(
    what: &str,
    timeout: Duration,
    every: Duration,
    mut cond: impl FnMut() -> bool,
) -> Result<Duration, String> {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if cond() {
            return Ok(start.elapsed());
        }
        tokio::time::sleep(every).await;
    }
    Err(format!("{what}: not within {timeout:?}"))
}

/// Reloads the daemons refused because the file was a FIFO or a device.
fn hostile_refusals() -> usize {
    ["/tmp/stacd.log", "/tmp/stafd.log"]
        .iter()
        .map(|p| {
            std::fs::read_to_string(p)
                .unwrap_or_default()
                .lines()
                .filter(|l| {
                    l.contains("keeping the last good configuration")
                        && (l.contains("is a FIFO") || l.contains("is a character device"))
                })
                .count()
        })
        .sum()
}

fn write_stacd_conf(text: &str) -> Result<(), String> {
    std::fs::write("/etc/stas/stacd.conf", text).map_err(|e| format!("stacd.conf: {e}"))
}

/// `stacctl ls --json`: subsystem NQN -> device, as stacd reports them.
fn stacctl_ls() -> Result<BTreeMap<String, String>, String> {
    let o = Command::new("/bin/stacctl")
        .args(["ls", "--json"])
        .output()
        .map_err(|e| format!("stacctl: {e}"))?;
    if !o.status.success() {
        return Err(format!(
            "stacctl ls --json: {} {}",
            o.status,
            String::from_utf8_lossy(&o.stderr)
        ));
    }
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).map_err(|e| {
        format!(
            "stacctl ls --json: {e}: {}",
            String::from_utf8_lossy(&o.stdout)
        )
    })?;
    Ok(v.as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter_map(|d| {
            Some((
                d["subsysnqn"].as_str()?.to_owned(),
                d["device"].as_str()?.to_owned(),
            ))
        })
        .collect())
}

fn rss_kib(pid: u32) -> Option<f64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

fn setup(t: &Nvmet) -> std::io::Result<()> {
    prepare_host()?;
    std::fs::write("/etc/stas/stacd.conf", "[Global]\n")?;
    std::fs::create_dir_all("/run/stacd")?;
    for n in 1..=5 {
        t.add_subsystem(&sub(n), true, None)?;
        t.add_namespace(
            &sub(n),
            1,
            std::path::Path::new(&format!("/tmp/c{n}.img")),
            16 << 20,
        )?;
    }
    // Port 1 serves discovery and I/O; port 2 is known only to stacd.conf.
    t.add_port(1, &PortAddr::tcp("127.0.0.1", "8009"))?;
    t.add_port(2, &PortAddr::tcp("::1", "4420"))?;
    for n in 1..=3 {
        t.link(1, &sub(n))?;
    }
    t.link(2, &sub(5))
}

pub fn scenario(r: &mut Report) {
    let paths = KernelPaths::default();
    let sysfs = Sysfs::new(&paths);
    let t = Nvmet::default();
    r.check(
        "stacd-setup",
        setup(&t).map(|()| String::new()).map_err(|e| e.to_string()),
    );
    r.check("dbus-daemon", start_dbus());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (Ok(mut stafd), Ok(mut stacd)) = (start_stafd(), start_stacd()) else {
        r.check("daemons-start", Err("stafd or stacd did not start".into()));
        return;
    };
    rt.block_on(async {
        let conn = match zbus::Connection::system().await {
            Ok(c) => c,
            Err(e) => {
                r.check("dbus-connect", Err(e.to_string()));
                return;
            }
        };
        let first3 = [sub(1), sub(2), sub(3)];
        let connected = until("3 subsystems connected with namespaces", Duration::from_secs(60), || {
            let m = iocs(&sysfs);
            first3
                .iter()
                .all(|n| m.get(n).is_some_and(|d| namespaces(d) >= 1))
        })
        .await;
        r.check(
            "stacd-connects-log-page-subsystems",
            connected.map(|d| format!("{:?} after start: {:?}", d, iocs(&sysfs))),
        );
        r.check("stacctl-ls", {
            let kernel = iocs(&sysfs);
            stacctl_ls().and_then(|listed| {
                ensure(listed == kernel, format!("stacctl {listed:?} vs sysfs {kernel:?}"))
                    .map(|()| format!("{listed:?}"))
            })
        });
        r.check("stafctl-ls", {
            match Command::new("/bin/stafctl").arg("ls").output() {
                Ok(o) => {
                    let text = String::from_utf8_lossy(&o.stdout).into_owned();
                    ensure(
                        o.status.success() && text.contains("127.0.0.1") && text.contains("8009"),
                        text.clone(),
                    )
                    .map(|()| text)
                }
                Err(e) => Err(e.to_string()),
            }
        });

        // Zoning: link/unlink a subsystem, timed from the configfs change to
        // the I/O controller live in the kernel (and gone again).
        let (mut up, mut down, mut failures) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..ROUNDS {
            let start = Instant::now();
            if let Err(e) = t.link(1, &sub(4)) {
                failures.push(format!("link {i}: {e}"));
                break;
            }
            let live = until("connected", Duration::from_secs(20), || {
                sysfs
                    .controllers()
                    .unwrap_or_default()
                    .iter()
                    .any(|c| c.subsysnqn.as_deref() == Some(sub(4).as_str()) && c.is_live())
            })
            .await;
            match live {
                Ok(_) => up.push(start.elapsed().as_secs_f64() * 1000.0),
                Err(e) => failures.push(format!("round {i}: {e}")),
            }
            let start = Instant::now();
            if let Err(e) = t.unlink(1, &sub(4)) {
                failures.push(format!("unlink {i}: {e}"));
                break;
            }
            match until("disconnected", Duration::from_secs(20), || {
                !iocs(&sysfs).contains_key(&sub(4))
            })
            .await
            {
                Ok(_) => down.push(start.elapsed().as_secs_f64() * 1000.0),
                Err(e) => failures.push(format!("round {i}: {e}")),
            }
        }
        up.sort_by(f64::total_cmp);
        down.sort_by(f64::total_cmp);
        r.metric("aen-to-ioc-live-p50", percentile(&up, 50), "ms");
        r.metric("aen-to-ioc-live-p99", percentile(&up, 99), "ms");
        r.metric("unlink-to-disconnected-p50", percentile(&down, 50), "ms");
        r.metric("unlink-to-disconnected-p99", percentile(&down, 99), "ms");
        r.check(
            "stacd-link-connects-unlink-disconnects",
            ensure(
                failures.is_empty() && up.len() == ROUNDS && down.len() == ROUNDS,
                format!("{failures:?}"),
            )
            .map(|()| {
                format!(
                    "{ROUNDS} rounds: connect p50 {:.1} ms p99 {:.1} ms; disconnect p50 {:.1} ms p99 {:.1} ms",
                    percentile(&up, 50),
                    percentile(&up, 99),
                    percentile(&down, 50),
                    percentile(&down, 99)
                )
            }),
        );

        // no-disconnect: zoning removes sub3, its connection stays; zoned
        // back, it is adopted, not duplicated.
        let no_disconnect = async {
            write_stacd_conf("[I/O controller connection management]\ndisconnect-scope=no-disconnect\n")?;
            stop(&mut stacd, "HUP");
            tokio::time::sleep(Duration::from_millis(500)).await;
            let before = iocs(&sysfs).get(&sub(3)).cloned().ok_or("sub3 not connected")?;
            t.unlink(1, &sub(3)).map_err(|e| e.to_string())?;
            wait_json(&conn, "stafd drops sub3", Duration::from_secs(10), |v| {
                subsystems(v, "127.0.0.1").is_some_and(|s| !s.contains(&sub(3)))
            })
            .await?;
            until("stacd forgets sub3", Duration::from_secs(10), || {
                stacctl_ls().is_ok_and(|l| !l.contains_key(&sub(3)))
            })
            .await?;
            tokio::time::sleep(Duration::from_secs(2)).await;
            let kept = iocs(&sysfs).get(&sub(3)).cloned();
            ensure(kept.as_ref() == Some(&before), format!("sub3 connection {before} -> {kept:?}"))?;
            t.link(1, &sub(3)).map_err(|e| e.to_string())?;
            until("stacd lists sub3 again", Duration::from_secs(10), || {
                stacctl_ls().is_ok_and(|l| l.get(&sub(3)) == Some(&before))
            })
            .await?;
            let count = sysfs
                .controllers()
                .unwrap_or_default()
                .iter()
                .filter(|c| c.subsysnqn.as_deref() == Some(sub(3).as_str()))
                .count();
            ensure(count == 1, format!("{count} connections to sub3"))?;
            Ok::<_, String>(format!("kept {before} while unzoned, adopted it back"))
        };
        r.check("stacd-no-disconnect-keeps", no_disconnect.await);
        // Back to the default scope whatever happened above.
        let _ = t.link(1, &sub(3));
        let _ = write_stacd_conf("[Global]\n");
        stop(&mut stacd, "HUP");

        let exclude = async {
            write_stacd_conf(&format!("[Controllers]\nexclude = nqn={}\n", sub(2)))?;
            stop(&mut stacd, "HUP");
            let gone = until("excluded sub2 disconnected", Duration::from_secs(10), || {
                !iocs(&sysfs).contains_key(&sub(2))
            })
            .await?;
            write_stacd_conf("[Global]\n")?;
            stop(&mut stacd, "HUP");
            let back = until("sub2 back", Duration::from_secs(20), || {
                iocs(&sysfs).contains_key(&sub(2))
            })
            .await?;
            Ok::<_, String>(format!("disconnected {gone:?} after SIGHUP, back {back:?} after"))
        };
        r.check("stacd-exclude", exclude.await);

        // Restarting stacd disconnects nothing and connects nothing new.
        let restart_stacd = async {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let before = iocs(&sysfs);
            stop(&mut stacd, "TERM");
            let exit = stacd.wait().map_err(|e| e.to_string())?;
            ensure(exit.success(), format!("stacd exited {exit}"))?;
            let stopped = iocs(&sysfs);
            stacd = start_stacd().map_err(|e| e.to_string())?;
            until("stacd lists them again", Duration::from_secs(20), || {
                stacctl_ls().is_ok_and(|l| l == before)
            })
            .await?;
            tokio::time::sleep(Duration::from_secs(2)).await;
            let after = iocs(&sysfs);
            ensure(stopped == before, format!("stop: {before:?} -> {stopped:?}"))?;
            ensure(after == before, format!("restart: {before:?} -> {after:?}"))?;
            Ok::<_, String>(format!("kept {before:?}"))
        };
        r.check("stacd-restart-keeps-connections", restart_stacd.await);

        // stafd away: stacd tears nothing down; stafd back: still nothing.
        let restart_stafd = async {
            let before = iocs(&sysfs);
            stop(&mut stafd, "TERM");
            let _ = stafd.wait();
            tokio::time::sleep(Duration::from_secs(3)).await;
            let away = iocs(&sysfs);
            let listed = stacctl_ls();
            // Back before judging, so later steps have their stafd.
            stafd = start_stafd().map_err(|e| e.to_string())?;
            let listed = listed?;
            wait_json(&conn, "stafd back with its log page", Duration::from_secs(20), |v| {
                subsystems(v, "127.0.0.1").is_some_and(|s| s.len() == 3)
            })
            .await?;
            tokio::time::sleep(Duration::from_secs(3)).await;
            let after = iocs(&sysfs);
            ensure(away == before, format!("stafd away: {before:?} -> {away:?}"))?;
            ensure(listed == before, format!("stacd listed {listed:?} while stafd was away"))?;
            ensure(after == before, format!("stafd back: {before:?} -> {after:?}"))?;
            Ok::<_, String>(format!("kept {before:?}"))
        };
        r.check("stafd-restart-stacd-keeps", restart_stafd.await);

        let sighup_new = async {
            write_stacd_conf(&format!(
                "[Controllers]\ncontroller = transport=tcp;traddr=::1;trsvcid=4420;nqn={}\n",
                sub(5)
            ))?;
            stop(&mut stacd, "HUP");
            until("sub5 connected with a namespace", Duration::from_secs(20), || {
                iocs(&sysfs).get(&sub(5)).is_some_and(|d| namespaces(d) >= 1)
            })
            .await
            .map(|d| format!("connected {d:?} after SIGHUP"))
        };
        r.check("stacd-sighup-connects-new-controller", sighup_new.await);

        // A configuration replaced by something hostile, then SIGHUP: both
        // daemons say why, keep what they had, and still answer.
        let hostile = async {
            let before = iocs(&sysfs);
            let logs_before = hostile_refusals();
            let mut seen = Vec::new();
            for (what, target) in [("a FIFO", None), ("/dev/zero", Some("/dev/zero"))] {
                for (conf, child) in [("stacd", &mut stacd), ("stafd", &mut stafd)] {
                    let path = format!("/etc/stas/{conf}.conf");
                    let saved = std::fs::read(&path).map_err(|e| format!("{path}: {e}"))?;
                    std::fs::remove_file(&path).map_err(|e| format!("{path}: {e}"))?;
                    let made = match target {
                        Some(t) => std::os::unix::fs::symlink(t, &path),
                        None => Command::new("mkfifo").arg(&path).status().map(|_| ()),
                    };
                    made.map_err(|e| format!("{path} as {what}: {e}"))?;
                    stop(child, "HUP");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    let listed = stacctl_ls();
                    let _ = std::fs::remove_file(&path);
                    std::fs::write(&path, saved).map_err(|e| format!("{path}: {e}"))?;
                    ensure(listed.as_ref().is_ok_and(|l| *l == before), format!("{conf}.conf as {what}: stacctl ls {listed:?}, before {before:?}"))?;
                    seen.push(format!("{conf}.conf as {what}"));
                }
            }
            stop(&mut stacd, "HUP");
            stop(&mut stafd, "HUP");
            tokio::time::sleep(Duration::from_millis(500)).await;
            let refusals = hostile_refusals() - logs_before;
            ensure(refusals == 4, format!("{refusals} refusals logged, not 4"))?;
            ensure(iocs(&sysfs) == before, format!("connections changed: {before:?} -> {:?}", iocs(&sysfs)))?;
            Ok::<_, String>(format!("{seen:?}: each refused with the reason, nothing changed, stacctl answered"))
        };
        r.check("hostile-config-on-sighup", hostile.await);

        // Scale: 100 more subsystems zoned at once; RSS of both daemons.
        let scale = async {
            add_subsystems(&t, SCALE_FIRST..SCALE_FIRST + SCALE_COUNT)?;
            let start = Instant::now();
            for n in SCALE_FIRST..SCALE_FIRST + SCALE_COUNT {
                t.link(1, &sub(n)).map_err(|e| e.to_string())?;
            }
            let took = until_every("100 more connected", Duration::from_secs(240), Duration::from_millis(50), || {
                let m = iocs(&sysfs);
                (SCALE_FIRST..SCALE_FIRST + SCALE_COUNT).all(|n| m.contains_key(&sub(n)))
            })
            .await?;
            tokio::time::sleep(Duration::from_secs(2)).await;
            let total = iocs(&sysfs).len();
            let (f, c) = (rss_kib(stafd.id()), rss_kib(stacd.id()));
            r.metric("rss-stafd-100-subsystems", f.unwrap_or(f64::NAN) / 1024.0, "MiB");
            r.metric("rss-stacd-100-subsystems", c.unwrap_or(f64::NAN) / 1024.0, "MiB");
            r.metric("zone-100-to-connected", start.elapsed().as_secs_f64(), "s");
            Ok::<_, String>(format!(
                "{total} I/O controllers; 100 connected {took:?} after zoning; RSS stafd {:.1} MiB, stacd {:.1} MiB",
                f.unwrap_or(f64::NAN) / 1024.0,
                c.unwrap_or(f64::NAN) / 1024.0
            ))
        };
        r.check("stacd-scale-100", scale.await);

        crate::guest_faults::scenario(r, &t, &sysfs, &mut stafd, &mut stacd).await;
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

/// The block devices of the connected subsystems, as `lsblk` would list
/// them (the guest has no lsblk).
fn show_namespaces(sysfs: &Sysfs) {
    println!("\n$ lsblk  (the namespaces, from /sys/block)");
    println!("{:<10} {:>6}  {:<8} subsystem", "name", "size", "via");
    for (nqn, dev) in iocs(sysfs) {
        let Ok(dir) = std::fs::read_dir(format!("/sys/class/nvme/{dev}")) else {
            continue;
        };
        let mut names: Vec<String> = dir
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("nvme") && n.len() > dev.len() && n.contains('n'))
            .collect();
        names.sort();
        for ns in names {
            // nvmeXcYnZ is the path behind the multipath head nvmeXnZ.
            let head = ns
                .split_once('c')
                .and_then(|(x, rest)| Some(format!("{x}{}", &rest[rest.find('n')?..])))
                .unwrap_or(ns.clone());
            let sectors: u64 = std::fs::read_to_string(format!("/sys/block/{head}/size"))
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(0);
            println!("{head:<10} {:>4}M  {dev:<8} {nqn}", sectors / 2048);
        }
    }
}

/// The README demo: what an admin sees when stafd and stacd run against a
/// kernel NVMe/TCP target, and how fast a newly zoned subsystem is
/// connected.
pub fn demo() -> i32 {
    let t = Nvmet::default();
    let sysfs = Sysfs::new(&KernelPaths::default());
    if let Err(e) = setup(&t) {
        println!("target setup failed: {e}");
        return 1;
    }
    println!(
        "kernel NVMe/TCP target on 127.0.0.1:8009 (discovery and I/O) with {}, {}, {}",
        sub(1),
        sub(2),
        sub(3)
    );
    let _ = start_dbus();
    show("cat /etc/stas/stafd.conf", &["cat", "/etc/stas/stafd.conf"]);
    show("cat /etc/stas/stacd.conf", &["cat", "/etc/stas/stacd.conf"]);
    let (Ok(mut stafd), Ok(mut stacd)) = (start_stafd(), start_stacd()) else {
        println!("stafd or stacd did not start");
        return 1;
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            println!("{e}");
            return 1;
        }
    };
    let rc = rt.block_on(async {
        let first3 = [sub(1), sub(2), sub(3)];
        let ready = until("3 subsystems connected", Duration::from_secs(60), || {
            let m = iocs(&sysfs);
            first3
                .iter()
                .all(|n| m.get(n).is_some_and(|d| namespaces(d) >= 1))
        })
        .await;
        match ready {
            Ok(d) => println!("\nstafd and stacd started; 3 subsystems connected {:.0} ms later", d.as_secs_f64() * 1000.0),
            Err(e) => {
                println!("{e}");
                return 1;
            }
        }
        show("stafctl ls", &["/bin/stafctl", "ls"]);
        show(
            "stafctl dlp -a 127.0.0.1 -s 8009",
            &["/bin/stafctl", "dlp", "-a", "127.0.0.1", "-s", "8009"],
        );
        show("stacctl ls", &["/bin/stacctl", "ls"]);
        show_namespaces(&sysfs);

        println!(
            "\nzoning {} in: linking it to the port (the target sends a Discovery Log Page Change AEN)...",
            sub(4)
        );
        let start = Instant::now();
        if let Err(e) = t.link(1, &sub(4)) {
            println!("link failed: {e}");
            return 1;
        }
        let live = until("connected", Duration::from_secs(20), || {
            iocs(&sysfs).get(&sub(4)).is_some_and(|d| namespaces(d) >= 1)
        })
        .await;
        match live {
            Ok(_) => println!(
                "stafd re-read the log page, stacd connected {} and its namespace appeared {:.1} ms after the change",
                sub(4),
                start.elapsed().as_secs_f64() * 1000.0
            ),
            Err(e) => {
                println!("{e}");
                return 1;
            }
        }
        show("stacctl ls", &["/bin/stacctl", "ls"]);
        show_namespaces(&sysfs);
        0
    });
    stop(&mut stacd, "TERM");
    let _ = stacd.wait();
    stop(&mut stafd, "TERM");
    let _ = stafd.wait();
    rc
}
