//! A flapping fabric, at the end of the `stacd` scenario (same boot): the
//! fabric grown to ~200 I/O controllers, then (a) the nvmet port removed and
//! re-added 10 times, (b) stacd's uevent socket overrun while controllers
//! come and go, (c) kill -9 of stafd and stacd with 100 connects in flight,
//! then both restarted. After each: every wanted I/O controller live,
//! exactly one connection per subsystem, nothing unwanted connected; the
//! time to recover is reported.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Child;
use std::time::{Duration, Instant};

use fixtures::nvmet::{Nvmet, PortAddr};
use nvmf_kernel::sysfs::Sysfs;

use crate::guest_stacd::{
    add_subsystems, namespaces, start_stacd, start_stacd_with, sub, until_every,
};
use crate::guest_stafd::{start_stafd, stop};
use crate::{ensure, Report};

/// The subsystems added to reach ~200 I/O controllers; (c) reconnects them.
const GROW: std::ops::Range<u32> = 300..400;
/// Port-flap rounds.
const FLAPS: usize = 10;
/// Controllers deleted behind stacd's back while its uevents overflow.
const DELETED: usize = 50;
/// A uevent receive buffer small enough to overrun (the kernel doubles it).
const TINY_RCVBUF: &str = "4096";
const RECOVERY_LIMIT: Duration = Duration::from_secs(240);

fn port1() -> PortAddr {
    PortAddr::tcp("127.0.0.1", "8009")
}

/// Subsystem NQN -> (device, state) of every I/O controller the kernel has
/// that is not being deleted.
fn census(sysfs: &Sysfs) -> BTreeMap<String, Vec<(String, String)>> {
    let mut m: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for name in sysfs.controller_names().unwrap_or_default() {
        let Ok(Some(c)) = sysfs.controller_identity(&name) else {
            continue;
        };
        let state = c.state.clone().unwrap_or_default();
        if c.is_discovery() || state.starts_with("deleting") {
            continue;
        }
        if let Some(nqn) = c.subsysnqn.clone() {
            m.entry(nqn).or_default().push((c.name, state));
        }
    }
    m
}

/// What stacd should have connected: the subsystems linked to port 1 (the
/// log page) and sub5, which stacd.conf names on port 2.
fn wanted(t: &Nvmet) -> Result<BTreeSet<String>, String> {
    let mut w: BTreeSet<String> = t
        .linked(1)
        .map_err(|e| e.to_string())?
        .into_iter()
        .collect();
    w.insert(sub(5));
    Ok(w)
}

/// `Ok` when every wanted subsystem has exactly one controller and it is
/// live, and nothing else is connected; else the first problems found.
fn healthy(sysfs: &Sysfs, wanted: &BTreeSet<String>) -> Result<(), String> {
    let have = census(sysfs);
    let mut problems = Vec::new();
    for nqn in wanted {
        match have.get(nqn).map(Vec::as_slice) {
            None | Some([]) => problems.push(format!("{nqn}: not connected")),
            Some([(dev, state)]) if state != "live" => {
                problems.push(format!("{nqn}: {dev} {state}"))
            }
            Some([_]) => {}
            Some(many) => problems.push(format!("{nqn}: {} connections {many:?}", many.len())),
        }
    }
    for (nqn, ctrls) in &have {
        if !wanted.contains(nqn) {
            problems.push(format!("{nqn}: unwanted {ctrls:?}"));
        }
    }
    let n = problems.len();
    problems.truncate(4);
    ensure(n == 0, format!("{n} problems, first: {problems:?}"))
}

/// Waits until [`healthy`], then checks it holds 2 s later too (no late
/// duplicate); how long recovery took from `since`.
async fn recovered(sysfs: &Sysfs, t: &Nvmet, since: Instant) -> Result<Duration, String> {
    let want = wanted(t)?;
    let mut last = String::new();
    // What was still wrong 10 s in: where a slow recovery spends its time.
    let mut at_10s: Option<String> = None;
    let ok = until_every(
        "recovery",
        RECOVERY_LIMIT,
        Duration::from_millis(100),
        || match healthy(sysfs, &want) {
            Ok(()) => true,
            Err(e) => {
                if at_10s.is_none() && since.elapsed() >= Duration::from_secs(10) {
                    at_10s = Some(e.clone());
                }
                last = e;
                false
            }
        },
    )
    .await;
    if ok.is_err() {
        return Err(format!("not recovered within {RECOVERY_LIMIT:?}: {last}"));
    }
    let took = since.elapsed();
    if let Some(e) = at_10s {
        println!("@@note recovery still waiting 10 s in: {e}");
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    healthy(sysfs, &want).map_err(|e| format!("recovered, then 2 s later: {e}"))?;
    Ok(took)
}

fn lost_event_warnings() -> usize {
    std::fs::read_to_string("/tmp/stacd.log")
        .unwrap_or_default()
        .matches("Kernel events were lost")
        .count()
}

pub(crate) async fn scenario(
    r: &mut Report,
    t: &Nvmet,
    sysfs: &Sysfs,
    stafd: &mut Child,
    stacd: &mut Child,
) {
    // ~200 I/O controllers: 100 more on top of the scale step's.
    let grow = async {
        add_subsystems(t, GROW)?;
        let start = Instant::now();
        for n in GROW {
            t.link(1, &sub(n)).map_err(|e| e.to_string())?;
        }
        let took = recovered(sysfs, t, start).await?;
        let n = census(sysfs).len();
        ensure(n >= 200, format!("only {n} I/O controllers"))?;
        let with_ns = census(sysfs)
            .values()
            .filter(|c| c.first().is_some_and(|(d, _)| namespaces(d) >= 1))
            .count();
        Ok::<_, String>(format!(
            "{n} I/O controllers ({with_ns} with a namespace), 100 more connected in {took:?}"
        ))
    };
    r.check("fabric-200-connected", grow.await);

    // (a) The port goes away and comes back, 10 times, 1 s apart.
    let flap = async {
        let linked = t.linked(1).map_err(|e| e.to_string())?;
        for i in 0..FLAPS {
            t.remove_port(1).map_err(|e| format!("flap {i}: {e}"))?;
            tokio::time::sleep(Duration::from_millis(300)).await;
            t.add_port(1, &port1())
                .map_err(|e| format!("flap {i}: {e}"))?;
            for n in &linked {
                t.link(1, n).map_err(|e| format!("flap {i}: {e}"))?;
            }
            tokio::time::sleep(Duration::from_millis(700)).await;
        }
        let took = recovered(sysfs, t, Instant::now()).await?;
        r.metric("port-flap-recovery", took.as_secs_f64(), "s");
        Ok::<_, String>(format!(
            "port 1 ({} subsystems) removed and re-added {FLAPS} times; recovered {took:?} after the last",
            linked.len()
        ))
    };
    r.check("fault-port-flap", flap.await);

    // (b) stacd's uevent socket overrun: stacd stopped (SIGSTOP) with a tiny
    // receive buffer while 50 of its controllers are deleted behind its back
    // and 20 subsystems are unzoned; resumed, it must notice the loss,
    // reconnect the 50 and disconnect the 20.
    let overrun = async {
        stop(stacd, "TERM");
        let _ = stacd.wait();
        *stacd =
            start_stacd_with(&[("STAS_UEVENT_RCVBUF", TINY_RCVBUF)]).map_err(|e| e.to_string())?;
        recovered(sysfs, t, Instant::now()).await?;
        let warned = lost_event_warnings();
        stop(stacd, "STOP");
        let victims: Vec<String> = census(sysfs)
            .into_values()
            .filter_map(|c| c.into_iter().next().map(|(dev, _)| dev))
            .take(DELETED)
            .collect();
        for dev in &victims {
            let _ = std::fs::write(format!("/sys/class/nvme/{dev}/delete_controller"), "1");
        }
        for n in 100..120 {
            t.unlink(1, &sub(n)).map_err(|e| e.to_string())?;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        let resumed = Instant::now();
        stop(stacd, "CONT");
        let took = recovered(sysfs, t, resumed).await?;
        let lost = lost_event_warnings() - warned;
        ensure(
            lost > 0,
            "no 'Kernel events were lost' in stacd's log: the overrun did not happen",
        )?;
        r.metric("uevent-overrun-recovery", took.as_secs_f64(), "s");
        Ok::<_, String>(format!(
            "{} controllers deleted and 20 subsystems unzoned while stacd was stopped; \
             {lost} lost-events resync(s); recovered {took:?} after SIGCONT",
            victims.len()
        ))
    };
    r.check("fault-uevent-overrun", overrun.await);
    // Whatever happened above: stacd running again, with the default buffer.
    stop(stacd, "CONT");

    // (c) kill -9 of both daemons with the 100 connects of GROW in flight.
    let kill9 = async {
        for n in GROW {
            t.unlink(1, &sub(n)).map_err(|e| e.to_string())?;
        }
        recovered(sysfs, t, Instant::now()).await?;
        for n in GROW {
            t.link(1, &sub(n)).map_err(|e| e.to_string())?;
        }
        let grow: BTreeSet<String> = GROW.map(sub).collect();
        let connected = || census(sysfs).keys().filter(|k| grow.contains(*k)).count();
        until_every(
            "the first connects",
            Duration::from_secs(60),
            Duration::from_millis(5),
            || connected() >= 5,
        )
        .await?;
        stop(stacd, "KILL");
        stop(stafd, "KILL");
        let _ = stacd.wait();
        let _ = stafd.wait();
        let at_kill = connected();
        let restart = Instant::now();
        *stafd = start_stafd().map_err(|e| e.to_string())?;
        *stacd = start_stacd().map_err(|e| e.to_string())?;
        let took = recovered(sysfs, t, restart).await?;
        r.metric("kill-9-restart-recovery", took.as_secs_f64(), "s");
        Ok::<_, String>(format!(
            "killed with {at_kill} of 100 connected; restarted, recovered in {took:?}"
        ))
    };
    r.check("fault-kill-9-connects-in-flight", kill9.await);
}
