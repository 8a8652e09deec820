//! The `bench` lab scenario (`stas-lab-guest bench N CAP_SECS PAR,...`):
//! how fast N NVMe/TCP I/O controllers get connected and disconnected by
//! nvme-cli, by a bare loop over the kernel interface, by stacd alone and by
//! stafd + stacd, all in one boot against nvmet on loopback. Prints
//! `@@metric` lines (read by `tests/benches/fabric.rs`) and leaves a CSV
//! series per method and the daemons' log tails in /tmp/blobs.
//!
//! Metrics per method `ID`: `ID.secs` (time to done, or to the cap),
//! `ID.reached` (live controllers at the end; for disconnects, those left),
//! `ID.target` and `ID.capped` (1 if the cap ended it).

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use fixtures::nvmet::{Nvmet, PortAddr};
use nvmf_kernel::fabrics::{ConnectOptions, ControllerKind, Fabrics, SupportedOptions};
use nvmf_kernel::KernelPaths;

use crate::guest_bench_probe::{
    cpu_secs, delete_all, names, raw_detail, reset, rss_mib, series_csv, tail, terminate,
    wait_new_live_io, Counter, Sampler,
};
use crate::guest_stacd::{start_stacd, start_stacd_with};
use crate::guest_stafd::{percentile, prepare_host, start_dbus, start_stafd, stop};
use crate::{Report, HOSTID, HOSTNQN};

/// Port 1: discovery and I/O at 127.0.0.1:8009 (what stafd and nvme-cli use);
/// port 2: I/O at 127.0.0.1:4420 (what stacd.conf and the raw loop use).
const DISC_PORT: u16 = 1;
const IO_PORT: u16 = 2;
/// Keeps port 1 enabled while it holds none of the benchmark's subsystems; it
/// admits another host only, so it is not in our discovery log page.
const ANCHOR: &str = "nqn.2024-01.io.stas.lab:anchor";
const OTHER_HOST: &str = "nqn.2014-08.org.nvmexpress:uuid:00000000-0000-0000-0000-00000000beef";
/// Zoning changes timed one by one when N is larger than this.
const ZONE_ONE_MAX: u32 = 100;
const ZONE_ONE_LARGE_N: u32 = 50;

fn sub(i: u32) -> String {
    format!("nqn.2024-01.io.stas.lab:b{i}")
}

struct Bench<'a> {
    r: &'a mut Report,
    n: u32,
    cap: Duration,
    t: Nvmet,
    sampler: Sampler,
}

/// How a method ended.
struct Outcome {
    secs: f64,
    reached: u32,
    target: u32,
    capped: bool,
}

fn io_err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

fn stacd_conf(lines: Option<u32>) -> String {
    let mut s = String::from("[Global]\n");
    if let Some(n) = lines {
        s.push_str("\n[Controllers]\n");
        for i in 0..n {
            s.push_str(&format!(
                "controller = transport=tcp;traddr=127.0.0.1;trsvcid=4420;nqn={}\n",
                sub(i)
            ));
        }
    }
    s
}

/// Starts from nothing remembered: no last-known configuration of either daemon.
fn clear_runtime_dirs() {
    for d in ["/run/stacd", "/run/stafd"] {
        let _ = std::fs::remove_dir_all(d);
        let _ = std::fs::create_dir_all(d);
    }
}

/// The TCP service of port 1 (discovery and I/O) and of port 2 (I/O).
const DISC_PORT_SVC: &str = "8009";
const IO_PORT_SVC: &str = "4420";

fn io_options(i: u32, trsvcid: &str) -> ConnectOptions {
    let mut o = ConnectOptions::new(ControllerKind::Io, "tcp", &sub(i), Some("127.0.0.1"));
    o.trsvcid = Some(trsvcid.into());
    o.hostnqn = Some(HOSTNQN.into());
    o.hostid = Some(HOSTID.into());
    o
}

impl Bench<'_> {
    fn setup(&self) -> std::io::Result<()> {
        prepare_host()?;
        std::fs::write("/etc/stas/stacd.conf", stacd_conf(None))?;
        clear_runtime_dirs();
        let t = &self.t;
        t.add_subsystem(ANCHOR, false, None)?;
        t.allow_host(ANCHOR, OTHER_HOST)?;
        for i in 0..self.n {
            t.add_subsystem(&sub(i), false, None)?;
            t.allow_host(&sub(i), HOSTNQN)?;
            t.add_namespace(
                &sub(i),
                1,
                std::path::Path::new(&format!("/tmp/b{i}.img")),
                1 << 20,
            )?;
        }
        t.add_port(DISC_PORT, &PortAddr::tcp("127.0.0.1", "8009"))?;
        t.add_port(IO_PORT, &PortAddr::tcp("127.0.0.1", "4420"))?;
        t.link(DISC_PORT, ANCHOR)?;
        for i in 0..self.n {
            t.link(DISC_PORT, &sub(i))?;
            t.link(IO_PORT, &sub(i))?;
        }
        Ok(())
    }

    /// Back to "nothing connected", checked, before method `id`.
    fn reset(&mut self, id: &str) {
        clear_runtime_dirs();
        let r = reset().map(|d| format!("{:.1} s", d.as_secs_f64()));
        self.r.check(&format!("reset-before-{id}"), r);
    }

    fn begin(&self) -> Instant {
        let start = Instant::now();
        self.sampler.begin(start);
        start
    }

    /// Prints the outcome of `id` and keeps its series.
    fn finish(&mut self, id: &str, o: &Outcome) {
        let series = self.sampler.end(Some(o.secs));
        self.r.metric(&format!("{id}.secs"), o.secs, "s");
        self.r.metric(
            &format!("{id}.reached"),
            f64::from(o.reached),
            "controllers",
        );
        self.r
            .metric(&format!("{id}.target"), f64::from(o.target), "controllers");
        self.r.metric(
            &format!("{id}.capped"),
            f64::from(u8::from(o.capped)),
            "flag",
        );
        self.r
            .blob(&format!("series-{id}.csv"), series_csv(&series).as_bytes());
    }

    /// Waits until `target` I/O controllers are live (or the cap).
    fn wait_connected(&self, start: Instant, target: u32) -> Outcome {
        match self.sampler.wait(self.cap, |c| c.live >= target) {
            Ok(secs) => Outcome {
                secs,
                reached: target,
                target,
                capped: false,
            },
            Err(c) => Outcome {
                secs: start.elapsed().as_secs_f64(),
                reached: c.live,
                target,
                capped: true,
            },
        }
    }

    /// Waits until no I/O controller is left (or the cap).
    fn wait_disconnected(&self, start: Instant) -> Outcome {
        match self.sampler.wait(self.cap, |c| c.io == 0) {
            Ok(secs) => Outcome {
                secs,
                reached: 0,
                target: 0,
                capped: false,
            },
            Err(c) => Outcome {
                secs: start.elapsed().as_secs_f64(),
                reached: c.io,
                target: 0,
                capped: true,
            },
        }
    }

    /// Runs `nvme ARGS` until it exits or the cap; (seconds, capped, status).
    fn nvme(&self, args: &[&str], log: &str) -> (f64, bool, String) {
        let start = Instant::now();
        let out = std::fs::File::create(log).and_then(|f| Ok((f.try_clone()?, f)));
        let mut cmd = Command::new("/usr/sbin/nvme");
        cmd.args(args).stdin(Stdio::null());
        if let Ok((a, b)) = out {
            cmd.stdout(a).stderr(b);
        }
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => return (0.0, false, format!("spawn: {e}")),
        };
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return (start.elapsed().as_secs_f64(), false, status.to_string());
            }
            if start.elapsed() >= self.cap {
                let _ = child.kill();
                let _ = child.wait();
                return (
                    start.elapsed().as_secs_f64(),
                    true,
                    "killed at the cap".into(),
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Method 1: `nvme connect-all`, then `nvme disconnect-all`.
    fn nvme_cli(&mut self) {
        self.reset("connect-all");
        let n = self.n;
        self.begin();
        let (secs, capped, status) = self.nvme(
            &[
                "connect-all",
                "-t",
                "tcp",
                "-a",
                "127.0.0.1",
                "-s",
                "8009",
                &format!("--hostnqn={HOSTNQN}"),
                &format!("--hostid={HOSTID}"),
            ],
            "/tmp/nvme-connect-all.log",
        );
        let c = Counter::default().count();
        self.finish(
            "connect-all",
            &Outcome {
                secs,
                reached: c.live,
                target: n,
                capped,
            },
        );
        self.r
            .check("connect-all", Ok(format!("nvme exited {status}; {c:?}")));

        self.begin();
        let (secs, capped, status) = self.nvme(&["disconnect-all"], "/tmp/nvme-disconnect-all.log");
        let c = Counter::default().count();
        self.finish(
            "disconnect-all",
            &Outcome {
                secs,
                reached: c.io,
                target: 0,
                capped,
            },
        );
        self.r
            .check("disconnect-all", Ok(format!("nvme exited {status}; {c:?}")));
    }

    /// Method 2: `threads` threads looping over `Fabrics::connect`, then as
    /// many deleting.
    fn raw(&mut self, threads: usize) {
        let id = format!("raw-connect-{threads}");
        self.reset(&id);
        let Some((fabrics, supported)) = self.fabrics(&id) else {
            return;
        };
        let cpu_before = cpu_secs(std::process::id());
        let start = self.begin();
        let (ok, errors) = self.connect_raw(&fabrics, &supported, threads, start + self.cap, |i| {
            io_options(i, IO_PORT_SVC)
        });
        if let (Some(b), Some(a)) = (cpu_before, cpu_secs(std::process::id())) {
            self.r.metric(&format!("cpu-{id}.user"), a.0 - b.0, "s");
            self.r.metric(&format!("cpu-{id}.sys"), a.1 - b.1, "s");
        }
        let secs = start.elapsed().as_secs_f64();
        let reached = u32::try_from(ok).unwrap_or(u32::MAX);
        let capped = reached < self.n && errors.is_empty();
        let o = Outcome {
            secs,
            reached,
            target: self.n,
            capped,
        };
        self.finish(&id, &o);
        self.r.check(&id, raw_detail(reached, &errors));

        let id = format!("raw-delete-{threads}");
        let victims = names();
        let start = self.begin();
        let (deleted, errors) = delete_all(&victims, threads, Some(start + self.cap));
        let secs = start.elapsed().as_secs_f64();
        let left = Counter::default().count().io;
        self.finish(
            &id,
            &Outcome {
                secs,
                reached: left,
                target: 0,
                capped: left > 0 && errors.is_empty(),
            },
        );
        let deleted = u32::try_from(deleted).unwrap_or(u32::MAX);
        self.r.check(&id, raw_detail(deleted, &errors));
    }

    /// The kernel's fabrics interface and its options, or check `id` failed.
    fn fabrics(&mut self, id: &str) -> Option<(Fabrics, SupportedOptions)> {
        let fabrics = Fabrics::new(&KernelPaths::default());
        match fabrics.supported_options() {
            Ok(s) => Some((fabrics, s)),
            Err(e) => {
                self.r.check(id, Err(e.to_string()));
                None
            }
        }
    }

    /// `threads` threads connecting subsystems 0..N (`options(i)`) until
    /// done or `deadline`: (connected, errors).
    fn connect_raw(
        &self,
        fabrics: &Fabrics,
        supported: &SupportedOptions,
        threads: usize,
        deadline: Instant,
        options: impl Fn(u32) -> ConnectOptions + Sync,
    ) -> (usize, Vec<String>) {
        let next = AtomicUsize::new(0);
        let ok = AtomicUsize::new(0);
        let errors = Mutex::new(Vec::new());
        std::thread::scope(|s| {
            for _ in 0..threads.max(1) {
                s.spawn(|| {
                    while Instant::now() < deadline {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(i) = u32::try_from(i).ok().filter(|i| *i < self.n) else {
                            break;
                        };
                        match fabrics.connect(&options(i), supported) {
                            Ok(_) => {
                                ok.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(e) => errors
                                .lock()
                                .unwrap_or_else(PoisonError::into_inner)
                                .push(format!("{}: {e}", sub(i))),
                        }
                    }
                });
            }
        });
        (
            ok.into_inner(),
            errors.into_inner().unwrap_or_else(PoisonError::into_inner),
        )
    }

    /// Method 2b: the floor under "all unzoned at once". N raw connects
    /// through port 1, then the clock starts: all N unlinked from port 1
    /// (nvmet drops their controllers; the host starts reconnecting them)
    /// and `threads` threads deleting them at once, as a daemon would. The
    /// kernel's own cost of deleting controllers it is reconnecting.
    fn raw_delete_unzoned(&mut self, threads: usize) {
        let id = format!("unzoned-delete-{threads}");
        self.reset(&id);
        let Some((fabrics, supported)) = self.fabrics(&id) else {
            return;
        };
        let deadline = Instant::now() + self.cap;
        let (ok, errors) = self.connect_raw(&fabrics, &supported, threads, deadline, |i| {
            io_options(i, DISC_PORT_SVC)
        });
        if ok < self.n as usize {
            self.r
                .check(&id, raw_detail(u32::try_from(ok).unwrap_or(0), &errors));
            return;
        }
        let victims = names();
        let start = self.begin();
        let unlinked = (0..self.n).try_for_each(|i| self.t.unlink(DISC_PORT, &sub(i)));
        let (deleted, errors) = delete_all(&victims, threads, Some(start + self.cap));
        let o = self.wait_disconnected(start);
        self.finish(&id, &o);
        let relinked = (0..self.n).try_for_each(|i| self.t.link(DISC_PORT, &sub(i)));
        let deleted = u32::try_from(deleted).unwrap_or(u32::MAX);
        self.r.check(
            &id,
            unlinked
                .and(relinked)
                .map_err(io_err)
                .and_then(|()| raw_detail(deleted, &errors)),
        );
    }

    /// Method 3b: stacd from stacd.conf alone with `w` connects in flight
    /// (`STAS_CONNECTS_IN_FLIGHT`), to choose the default.
    fn stacd_width(&mut self, w: usize) {
        let (n, id) = (self.n, format!("stacd-conf-w{w}"));
        self.reset(&id);
        let width = w.to_string();
        let started = std::fs::write("/etc/stas/stacd.conf", stacd_conf(Some(n)))
            .map_err(io_err)
            .and_then(|()| {
                start_stacd_with(&[("STAS_CONNECTS_IN_FLIGHT", width.as_str())]).map_err(io_err)
            });
        let mut stacd = match started {
            Ok(c) => c,
            Err(e) => {
                self.r.check(&id, Err(e));
                return;
            }
        };
        let start = self.begin();
        let o = self.wait_connected(start, n);
        self.finish(&id, &o);
        let _ = std::fs::write("/etc/stas/stacd.conf", stacd_conf(None));
        terminate(&mut stacd, Duration::from_secs(30));
    }

    /// Method 3: stacd from stacd.conf alone; the lines removed + SIGHUP;
    /// SIGTERM right after a start.
    fn stacd_alone(&mut self) {
        let n = self.n;
        self.reset("stacd-conf");
        let started = std::fs::write("/etc/stas/stacd.conf", stacd_conf(Some(n)))
            .map_err(io_err)
            .and_then(|()| start_stacd().map_err(io_err));
        let mut stacd = match started {
            Ok(c) => c,
            Err(e) => {
                self.r.check("stacd-conf", Err(e));
                return;
            }
        };
        let start = self.begin();
        let o = self.wait_connected(start, n);
        self.finish("stacd-conf", &o);
        if let Some(m) = rss_mib(stacd.id()) {
            self.r.metric("rss-stacd-alone", m, "MiB");
        }
        // Where stacd's time over the raw floor goes: its own CPU, on the
        // same two vCPUs the kernel connects with.
        if let Some((user, sys)) = cpu_secs(stacd.id()) {
            self.r.metric("cpu-stacd-alone.user", user, "s");
            self.r.metric("cpu-stacd-alone.sys", sys, "s");
        }

        let _ = std::fs::write("/etc/stas/stacd.conf", stacd_conf(None));
        let start = self.begin();
        stop(&mut stacd, "HUP");
        let o = self.wait_disconnected(start);
        self.finish("stacd-unconf", &o);
        terminate(&mut stacd, Duration::from_secs(30));

        self.reset("stacd-sigterm");
        let started = std::fs::write("/etc/stas/stacd.conf", stacd_conf(Some(n)))
            .map_err(io_err)
            .and_then(|()| start_stacd().map_err(io_err));
        let mut stacd = match started {
            Ok(c) => c,
            Err(e) => {
                self.r.check("stacd-sigterm", Err(e));
                return;
            }
        };
        let start = self.begin();
        // Connecting has begun once the first controller shows up.
        let first = self.sampler.wait(Duration::from_secs(60), |c| c.io >= 1);
        let at = start.elapsed().as_secs_f64();
        let (secs, killed) = terminate(&mut stacd, self.cap);
        let left = Counter::default().count();
        self.sampler.end(None);
        self.r.metric("stacd-sigterm.secs", secs, "s");
        self.r
            .metric("stacd-sigterm.left", f64::from(left.io), "controllers");
        self.r
            .metric("stacd-sigterm.capped", f64::from(u8::from(killed)), "flag");
        self.r.check(
            "stacd-sigterm",
            Ok(format!(
                "SIGTERM {at:.2} s after start (first controller: {first:?}); exit after {secs:.2} s{}; left {left:?}",
                if killed { " (SIGKILLed at the cap)" } else { "" }
            )),
        );
    }

    fn start_both(&mut self, what: &str) -> Option<(Child, Child)> {
        let _ = std::fs::write("/etc/stas/stacd.conf", stacd_conf(None));
        match (start_stafd(), start_stacd()) {
            (Ok(f), Ok(c)) => Some((f, c)),
            (f, c) => {
                for mut child in [f.ok(), c.ok()].into_iter().flatten() {
                    terminate(&mut child, Duration::from_secs(5));
                }
                self.r
                    .check(what, Err("stafd or stacd did not start".into()));
                None
            }
        }
    }

    /// Methods 4 and 7: stafd + stacd from start, then their memory.
    fn both_from_start(&mut self) {
        let n = self.n;
        self.reset("stafd-stacd");
        let start = self.begin();
        let Some((mut stafd, mut stacd)) = self.start_both("stafd-stacd") else {
            self.sampler.end(None);
            return;
        };
        let o = self.wait_connected(start, n);
        self.finish("stafd-stacd", &o);
        for (name, child) in [("stafd", &stafd), ("stacd", &stacd)] {
            if let Some(m) = rss_mib(child.id()) {
                self.r.metric(&format!("rss-{name}"), m, "MiB");
            }
        }
        self.r
            .metric("rss.live", f64::from(o.reached), "controllers");
        terminate(&mut stacd, Duration::from_secs(30));
        terminate(&mut stafd, Duration::from_secs(30));
    }

    /// Methods 5 and 6: zoning changes with stafd + stacd running.
    fn zoning(&mut self) {
        let n = self.n;
        let unlinked = (0..n).try_for_each(|i| self.t.unlink(DISC_PORT, &sub(i)));
        if let Err(e) = unlinked {
            self.r.check("zone-one", Err(e.to_string()));
            return;
        }
        self.reset("zone-one");
        let Some((mut stafd, mut stacd)) = self.start_both("zone-one") else {
            return;
        };
        let start = self.begin();
        let dc = self.sampler.wait(Duration::from_secs(60), |c| c.dc >= 1);
        // Let stafd read the (empty) log page and arm its AEN first.
        std::thread::sleep(Duration::from_secs(2));
        self.sampler.end(None);
        let changes = if n <= ZONE_ONE_MAX {
            n
        } else {
            ZONE_ONE_LARGE_N
        };
        let mut latencies = Vec::new();
        let mut failure = None;
        let deadline = start + self.cap;
        for i in 0..changes {
            let before = names();
            let t0 = Instant::now();
            if let Err(e) = self.t.link(DISC_PORT, &sub(i)) {
                failure = Some(e.to_string());
                break;
            }
            let limit = (t0 + Duration::from_secs(30)).min(deadline.max(t0));
            match wait_new_live_io(&before, limit) {
                Some(d) => latencies.push(d.as_secs_f64() * 1000.0),
                None => {
                    failure = Some(format!("change {i}: no new live I/O controller in time"));
                    break;
                }
            }
        }
        let done = u32::try_from(latencies.len()).unwrap_or(u32::MAX);
        latencies.sort_by(f64::total_cmp);
        self.r
            .metric("zone-one.p50", percentile(&latencies, 50), "ms");
        self.r
            .metric("zone-one.p99", percentile(&latencies, 99), "ms");
        self.r
            .metric("zone-one.changes", f64::from(done), "changes");
        self.r.metric("zone-one.of", f64::from(changes), "changes");
        self.r.check(
            "zone-one",
            Ok(format!(
                "DC {dc:?}; {done}/{changes} changes timed{}",
                failure
                    .map(|f| format!("; stopped: {f}"))
                    .unwrap_or_default()
            )),
        );

        // The rest at once, so that all N are zoned for the unzoning.
        if done < n {
            let start = self.begin();
            let linked = (done..n).try_for_each(|i| self.t.link(DISC_PORT, &sub(i)));
            let mut o = self.wait_connected(start, n);
            o.target = n;
            self.finish("zone-rest", &o);
            self.r
                .metric("zone-rest.from", f64::from(done), "controllers");
            if let Err(e) = linked {
                self.r.check("zone-rest", Err(e.to_string()));
            }
        }

        let start = self.begin();
        let unlinked = (0..n).try_for_each(|i| self.t.unlink(DISC_PORT, &sub(i)));
        self.r
            .metric("unzone-all.unlink-secs", start.elapsed().as_secs_f64(), "s");
        let o = self.wait_disconnected(start);
        self.finish("unzone-all", &o);
        self.r.check(
            "unzone-all",
            unlinked.map(|()| String::new()).map_err(io_err),
        );
        terminate(&mut stacd, Duration::from_secs(30));
        terminate(&mut stafd, Duration::from_secs(30));
    }
}

/// `args`: N, the cap in seconds, the raw loop's thread counts (`1,4,8,16`),
/// and the connects in flight to try stacd with besides its default (`1,8`).
pub fn scenario(r: &mut Report, args: &[String]) {
    let arg = |i: usize| args.get(i).map(String::as_str).unwrap_or_default();
    let widths: Vec<usize> = arg(3)
        .split(',')
        .filter_map(|p| p.trim().parse().ok())
        .filter(|p| *p > 0)
        .collect();
    let n: u32 = arg(0).parse().unwrap_or(100);
    let cap = Duration::from_secs(arg(1).parse().unwrap_or(180));
    let par: Vec<usize> = arg(2)
        .split(',')
        .filter_map(|p| p.trim().parse().ok())
        .filter(|p| *p > 0)
        .collect();
    let par = if par.is_empty() {
        vec![1, 4, 8, 16]
    } else {
        par
    };
    let mut b = Bench {
        r,
        n,
        cap,
        t: Nvmet::default(),
        sampler: Sampler::spawn(),
    };
    let setup_start = Instant::now();
    let setup = b.setup().map_err(io_err).and_then(|()| start_dbus());
    let setup_ok = setup.is_ok();
    b.r.check(
        "bench-setup",
        setup.map(|_| {
            format!(
                "{n} subsystems in {:.1} s",
                setup_start.elapsed().as_secs_f64()
            )
        }),
    );
    if !setup_ok {
        return;
    }
    b.nvme_cli();
    for p in par {
        b.raw(p);
    }
    b.raw_delete_unzoned(8);
    b.stacd_alone();
    for w in widths {
        b.stacd_width(w);
    }
    b.both_from_start();
    b.zoning();
    b.reset("end");
    for (name, path) in [
        ("stacd.log", "/tmp/stacd.log"),
        ("stafd.log", "/tmp/stafd.log"),
        ("nvme-connect-all.log", "/tmp/nvme-connect-all.log"),
    ] {
        b.r.blob(name, &tail(path, 256 << 10));
    }
}
