//! The `stafd` lab scenario: stafd and a dbus-daemon in the guest against
//! nvmet, observed the way clients observe it (D-Bus, sysfs).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fixtures::nvmet::{Nvmet, PortAddr};
use futures_util::StreamExt;
use nvmf_kernel::fabrics::{ConnectOptions, ControllerKind, Fabrics};
use nvmf_kernel::sysfs::Sysfs;
use nvmf_kernel::KernelPaths;
use nvmf_proto::WELL_KNOWN_DISCOVERY_NQN;

use crate::{ensure, Report, HOSTID, HOSTNQN};

const DBUS_CONF: &str = r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=/run/dbus/system_bus_socket</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
  </policy>
</busconfig>
"#;

pub(crate) fn sub(n: u32) -> String {
    format!("nqn.2024-01.io.stas.lab:f{n}")
}

pub(crate) fn start_stafd() -> std::io::Result<Child> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open("/tmp/stafd.log")?;
    Command::new("/bin/stafd")
        .env("RUNTIME_DIRECTORY", "/run/stafd")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
}

pub(crate) fn stop(child: &mut Child, signal: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(child.id().to_string())
        .status();
}

pub(crate) fn dcs(sysfs: &Sysfs) -> Vec<String> {
    sysfs
        .controllers()
        .unwrap_or_default()
        .into_iter()
        .filter(|c| c.is_discovery())
        .map(|c| format!("{}@{}", c.name, c.traddr().unwrap_or_default()))
        .collect()
}

pub(crate) async fn all_log_pages(conn: &zbus::Connection) -> Result<serde_json::Value, String> {
    let reply = conn
        .call_method(
            Some("org.nvmexpress.staf"),
            "/org/nvmexpress/staf",
            Some("org.nvmexpress.staf"),
            "get_all_log_pages",
            &(false,),
        )
        .await
        .map_err(|e| e.to_string())?;
    let text: String = reply.body().deserialize().map_err(|e| e.to_string())?;
    serde_json::from_str(&text).map_err(|e| format!("{e}: {text}"))
}

/// The subsystems stafd reports for the DC at `traddr`.
pub(crate) fn subsystems(v: &serde_json::Value, traddr: &str) -> Option<Vec<String>> {
    let dc = v
        .as_array()?
        .iter()
        .find(|d| d["discovery-controller"]["traddr"] == traddr)?;
    let mut s: Vec<String> = dc["log-pages"]
        .as_array()?
        .iter()
        .filter(|e| e["subtype"] == "nvme")
        .filter_map(|e| e["subnqn"].as_str().map(str::to_owned))
        .collect();
    s.sort();
    Some(s)
}

pub(crate) async fn wait_json(
    conn: &zbus::Connection,
    what: &str,
    timeout: Duration,
    mut ok: impl FnMut(&serde_json::Value) -> bool,
) -> Result<serde_json::Value, String> {
    let start = Instant::now();
    let mut last = String::new();
    while start.elapsed() < timeout {
        match all_log_pages(conn).await {
            Ok(v) if ok(&v) => return Ok(v),
            Ok(v) => last = v.to_string(),
            Err(e) => last = e,
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(format!(
        "{what}: not within {timeout:?}; last answer: {last}"
    ))
}

/// Nearest-rank percentile of sorted values (`pct` in 0..=100).
pub(crate) fn percentile(sorted: &[f64], pct: usize) -> f64 {
    let idx = (sorted.len().saturating_sub(1) * pct + 50) / 100;
    sorted.get(idx).copied().unwrap_or(f64::NAN)
}

/// Host identity, a stafd.conf naming the target's DC, and what
/// dbus-daemon needs in the initramfs.
/// Starts the guest's system bus and points this process (and the daemons
/// it starts) at it: the initramfs has no /var/run -> /run link.
pub(crate) fn start_dbus() -> Result<String, String> {
    std::env::set_var(
        "DBUS_SYSTEM_BUS_ADDRESS",
        "unix:path=/run/dbus/system_bus_socket",
    );
    match Command::new("/usr/bin/dbus-daemon")
        .args([
            "--config-file=/etc/stas-lab-dbus.conf",
            "--fork",
            "--nopidfile",
        ])
        .status()
    {
        Ok(s) if s.success() => Ok(String::new()),
        other => Err(format!("{other:?}")),
    }
}

pub(crate) fn prepare_host() -> std::io::Result<()> {
    std::fs::create_dir_all("/etc/nvme")?;
    std::fs::write("/etc/nvme/hostnqn", format!("{HOSTNQN}\n"))?;
    std::fs::write("/etc/nvme/hostid", format!("{HOSTID}\n"))?;
    std::fs::create_dir_all("/etc/stas")?;
    std::fs::write(
        "/etc/stas/stafd.conf",
        "[Controllers]\ncontroller = transport=tcp;traddr=127.0.0.1;trsvcid=8009\n",
    )?;
    std::fs::create_dir_all("/run/stafd")?;
    std::fs::create_dir_all("/run/dbus")?;
    std::fs::write("/etc/passwd", "root:x:0:0:root:/root:/bin/sh\n")?;
    std::fs::write("/etc/group", "root:x:0:\n")?;
    std::fs::write("/etc/stas-lab-dbus.conf", DBUS_CONF)?;
    Ok(())
}

pub fn scenario(r: &mut Report) {
    let paths = KernelPaths::default();
    let sysfs = Sysfs::new(&paths);
    let t = Nvmet::default();
    let setup = (|| -> std::io::Result<()> {
        prepare_host()?;
        for n in 1..=3 {
            t.add_subsystem(&sub(n), true, None)?;
        }
        t.add_port(1, &PortAddr::tcp("127.0.0.1", "8009"))?;
        t.add_port(2, &PortAddr::tcp("::1", "8009"))?;
        t.link(1, &sub(1))?;
        t.link(1, &sub(2))?;
        t.link(2, &sub(1))?;
        t.add_referral(1, "to-v6", &PortAddr::tcp("::1", "8009"), 2)
    })();
    r.check(
        "stafd-setup",
        setup.map(|()| String::new()).map_err(|e| e.to_string()),
    );

    r.check("dbus-daemon", start_dbus());

    // A DC connection made before stafd starts: stafd must adopt it.
    let pre = (|| {
        let fabrics = Fabrics::new(&paths);
        let supported = fabrics.supported_options().map_err(|e| e.to_string())?;
        let mut o = ConnectOptions::new(
            ControllerKind::Discovery,
            "tcp",
            WELL_KNOWN_DISCOVERY_NQN,
            Some("127.0.0.1"),
        );
        o.trsvcid = Some("8009".into());
        o.hostnqn = Some(HOSTNQN.into());
        o.hostid = Some(HOSTID.into());
        o.keep_alive_tmo = Some(30);
        fabrics
            .connect(&o, &supported)
            .map(|(c, _)| c.name())
            .map_err(|e| e.to_string())
    })();
    let pre_name = pre.clone().unwrap_or_default();
    r.check("pre-existing-dc", pre);

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut stafd = match start_stafd() {
        Ok(c) => c,
        Err(e) => {
            r.check("stafd-start", Err(e.to_string()));
            return;
        }
    };
    rt.block_on(async {
        let conn = match zbus::Connection::system().await {
            Ok(c) => c,
            Err(e) => {
                r.check("dbus-connect", Err(e.to_string()));
                return;
            }
        };
        r.check(
            "stafd-configured-and-referral",
            wait_json(
                &conn,
                "both DCs with their log pages",
                Duration::from_secs(30),
                |v| {
                    subsystems(v, "127.0.0.1") == Some(vec![sub(1), sub(2)])
                        && subsystems(v, "::1") == Some(vec![sub(1)])
                },
            )
            .await
            .map(|v| v.to_string()),
        );
        r.check("stafd-adopted-existing", {
            let d = dcs(&sysfs);
            ensure(
                d.len() == 2 && d.iter().any(|x| x == &format!("{pre_name}@127.0.0.1")),
                format!("{d:?}"),
            )
            .map(|()| format!("{d:?}"))
        });

        // AEN -> log_pages_changed, timed from the configfs change.
        let rule = zbus::MatchRule::builder()
            .msg_type(zbus::message::Type::Signal)
            .interface("org.nvmexpress.staf")
            .and_then(|b| b.member("log_pages_changed"))
            .map(|b| b.build());
        let stream = match rule {
            Ok(rule) => zbus::MessageStream::for_match_rule(rule, &conn, Some(256)).await,
            Err(e) => Err(e),
        };
        let mut stream = match stream {
            Ok(s) => s,
            Err(e) => {
                r.check("stafd-signal-subscribe", Err(e.to_string()));
                return;
            }
        };
        let mut lat = Vec::new();
        let mut failures = Vec::new();
        for i in 0..50 {
            let start = Instant::now();
            let change = if i % 2 == 0 {
                t.link(1, &sub(3))
            } else {
                t.unlink(1, &sub(3))
            };
            if let Err(e) = change {
                failures.push(e.to_string());
                continue;
            }
            let got = tokio::time::timeout(Duration::from_secs(10), async {
                while let Some(Ok(msg)) = stream.next().await {
                    if let Ok(args) = msg.body().deserialize::<(
                        String,
                        String,
                        String,
                        String,
                        String,
                        String,
                        String,
                        String,
                    )>() {
                        if args.1 == "127.0.0.1" {
                            return true;
                        }
                    }
                }
                false
            })
            .await;
            match got {
                Ok(true) => lat.push(start.elapsed().as_secs_f64() * 1000.0),
                _ => failures.push(format!("change {i}: no log_pages_changed")),
            }
        }
        lat.sort_by(f64::total_cmp);
        r.metric("aen-to-signal-p50", percentile(&lat, 50), "ms");
        r.metric("aen-to-signal-p99", percentile(&lat, 99), "ms");
        r.check(
            "stafd-aen-signal",
            ensure(
                failures.is_empty() && lat.len() == 50,
                format!("{failures:?}"),
            )
            .map(|()| {
                format!(
                    "50 changes: p50 {:.1} ms, p99 {:.1} ms",
                    percentile(&lat, 50),
                    percentile(&lat, 99)
                )
            }),
        );

        // Restart: nothing is disconnected, the cache is served at once.
        let before = dcs(&sysfs);
        stop(&mut stafd, "TERM");
        let exited = stafd.wait();
        let after_stop = dcs(&sysfs);
        let restart = match start_stafd() {
            Ok(c) => {
                stafd = c;
                let t0 = Instant::now();
                let v = wait_json(&conn, "cache after restart", Duration::from_secs(10), |v| {
                    subsystems(v, "127.0.0.1").is_some_and(|s| !s.is_empty())
                })
                .await;
                let served = t0.elapsed();
                tokio::time::sleep(Duration::from_secs(2)).await;
                let after_start = dcs(&sysfs);
                v.and_then(|_| {
                    ensure(
                        exited.as_ref().is_ok_and(|s| s.success()),
                        format!("exit {exited:?}"),
                    )?;
                    ensure(
                        before == after_stop,
                        format!("stop changed {before:?} -> {after_stop:?}"),
                    )?;
                    ensure(
                        before == after_start,
                        format!("restart changed {before:?} -> {after_start:?}"),
                    )?;
                    Ok(format!(
                        "controllers kept {before:?}; cache served {served:?} after exec"
                    ))
                })
            }
            Err(e) => Err(e.to_string()),
        };
        r.check("stafd-restart-keeps-connections", restart);

        // SIGHUP without the controller: its connection (and the referral's) go.
        let reload = std::fs::write("/etc/stas/stafd.conf", "[Global]\n");
        stop(&mut stafd, "HUP");
        let gone = {
            let start = Instant::now();
            loop {
                let d = dcs(&sysfs);
                if d.is_empty() {
                    break Ok(format!(
                        "all DCs disconnected {:?} after SIGHUP",
                        start.elapsed()
                    ));
                }
                if start.elapsed() > Duration::from_secs(15) {
                    break Err(format!("still connected: {d:?}"));
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        };
        r.check(
            "stafd-sighup-removes",
            reload.map_err(|e| e.to_string()).and(gone),
        );
    });
    stop(&mut stafd, "TERM");
    let _ = stafd.wait();
    if let Ok(log) = std::fs::read("/tmp/stafd.log") {
        r.blob("stafd.log", &log);
    }
    // The same guest then plays the CDC part (nvmf-dcsim): one boot for both.
    crate::guest_cdc::scenario(r, &t);
    if let Ok(log) = std::fs::read("/tmp/stafd.log") {
        r.blob("stafd-scale.log", &log);
    }
    if let Ok(log) = std::fs::read("/tmp/stacd.log") {
        r.blob("stacd-cdc.log", &log);
    }
    let _ = Path::new("/tmp");
}

/// Runs a command and prints what it printed, for the demo.
pub(crate) fn show(title: &str, cmd: &[&str]) {
    println!("\n$ {title}");
    match Command::new(cmd[0]).args(&cmd[1..]).output() {
        Ok(o) => {
            print!("{}", String::from_utf8_lossy(&o.stdout));
            eprint!("{}", String::from_utf8_lossy(&o.stderr));
        }
        Err(e) => println!("({}: {e})", cmd[0]),
    }
}
