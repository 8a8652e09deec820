//! The fabric benchmark's instruments in the guest: a cheap count of the
//! kernel's controllers, a sampler thread that records it every 100 ms, the
//! reset to "nothing connected" between methods, and small helpers.
//!
//! Counting must not compete with what it measures, so it never scans
//! attributes: it lists `/sys/class/nvme` and reads `state` (and, once per
//! controller, `cntrltype`). A controller seen live is re-read only every
//! [`RECHECK_EVERY`] samples, unless its name disappears first.

use std::collections::HashMap;
use std::process::Child;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nvmf_kernel::sysfs::{controller_instance, Sysfs};
use nvmf_kernel::KernelPaths;

use crate::guest_stafd::stop;

const CLASS: &str = "/sys/class/nvme";
/// The sampler's period.
pub(crate) const PERIOD: Duration = Duration::from_millis(100);
/// A controller known live is read again every this many counts.
const RECHECK_EVERY: u64 = 10;

/// What one count found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    /// I/O controllers whose state is `live`.
    pub live: u32,
    /// I/O controllers in any state (and controllers not yet identified).
    pub io: u32,
    /// Discovery controllers.
    pub dc: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Io,
    Discovery,
}

#[derive(Debug)]
struct Known {
    kind: Option<Kind>,
    live_at: Option<u64>,
}

/// Counts controllers, remembering what does not change.
#[derive(Debug, Default)]
pub(crate) struct Counter {
    known: HashMap<String, Known>,
    round: u64,
}

fn read_trimmed(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_owned())
}

/// The controller names now in sysfs.
pub(crate) fn names() -> Vec<String> {
    std::fs::read_dir(CLASS)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| controller_instance(n).is_some())
                .collect()
        })
        .unwrap_or_default()
}

impl Counter {
    /// Counts now.
    pub fn count(&mut self) -> Counts {
        self.round += 1;
        let names = names();
        self.known.retain(|k, _| names.contains(k));
        let mut c = Counts::default();
        for name in names {
            let k = self.known.entry(name.clone()).or_insert(Known {
                kind: None,
                live_at: None,
            });
            if k.kind == Some(Kind::Discovery) {
                c.dc += 1;
                continue;
            }
            if let Some(at) = k.live_at {
                if self.round.saturating_sub(at) < RECHECK_EVERY {
                    c.io += 1;
                    c.live += 1;
                    continue;
                }
            }
            let live = read_trimmed(&format!("{CLASS}/{name}/state")).as_deref() == Some("live");
            if k.kind.is_none() && live {
                k.kind = match read_trimmed(&format!("{CLASS}/{name}/cntrltype")).as_deref() {
                    Some("discovery") => Some(Kind::Discovery),
                    Some("io") => Some(Kind::Io),
                    _ => None,
                };
            }
            if k.kind == Some(Kind::Discovery) {
                c.dc += 1;
                continue;
            }
            c.io += 1;
            if live {
                c.live += 1;
                k.live_at = Some(self.round);
            } else {
                k.live_at = None;
            }
        }
        c
    }
}

/// One sample: seconds since the method started, and the counts.
pub(crate) type Sample = (f64, Counts);

#[derive(Debug, Default)]
struct Shared {
    start: Option<Instant>,
    series: Vec<Sample>,
    last: Option<Sample>,
}

/// A thread counting every [`PERIOD`] and recording for the current method.
#[derive(Debug)]
pub(crate) struct Sampler {
    shared: Arc<Mutex<Shared>>,
    quit: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Sampler {
    pub fn spawn() -> Sampler {
        let shared = Arc::new(Mutex::new(Shared::default()));
        let quit = Arc::new(AtomicBool::new(false));
        let (s, q) = (shared.clone(), quit.clone());
        let thread = std::thread::spawn(move || {
            let mut counter = Counter::default();
            while !q.load(Ordering::Relaxed) {
                // Idle (no counting) between methods.
                if s.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .start
                    .is_none()
                {
                    std::thread::sleep(PERIOD);
                    continue;
                }
                let c = counter.count();
                let now = Instant::now();
                {
                    let mut g = s.lock().unwrap_or_else(PoisonError::into_inner);
                    if let Some(start) = g.start {
                        let sample = (now.duration_since(start).as_secs_f64(), c);
                        g.series.push(sample);
                        g.last = Some(sample);
                    }
                }
                std::thread::sleep(PERIOD);
            }
        });
        Sampler {
            shared,
            quit,
            thread: Some(thread),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts recording a method at `start`, with a first sample at 0.
    pub fn begin(&self, start: Instant) {
        let first = Counter::default().count();
        let mut g = self.lock();
        g.start = Some(start);
        g.series = vec![(0.0, first)];
        g.last = None;
    }

    /// Stops recording; the series, closed by a sample at `at` seconds (when
    /// the method ended by its own clock) if given.
    pub fn end(&self, at: Option<f64>) -> Vec<Sample> {
        let last = at.map(|t| (t, Counter::default().count()));
        let mut g = self.lock();
        g.start = None;
        g.last = None;
        let mut series = std::mem::take(&mut g.series);
        if let Some((t, c)) = last {
            series.retain(|(s, _)| *s <= t);
            series.push((t, c));
        }
        series
    }

    /// Waits until a sample satisfies `done` or `cap` (from the start) passes;
    /// `Ok(t)` of the first satisfying sample, else `Err(last counts)`.
    pub fn wait(&self, cap: Duration, done: impl Fn(Counts) -> bool) -> Result<f64, Counts> {
        loop {
            let (start, last) = {
                let g = self.lock();
                (g.start, g.last)
            };
            let Some(start) = start else {
                return Err(Counts::default());
            };
            if let Some((t, c)) = last {
                if done(c) {
                    return Ok(t);
                }
            }
            if start.elapsed() >= cap {
                // One more sample after the cap, so the answer is current.
                std::thread::sleep(PERIOD + Duration::from_millis(20));
                let last = self.lock().last;
                return match last {
                    Some((t, c)) if done(c) => Ok(t),
                    Some((_, c)) => Err(c),
                    None => Err(Counts::default()),
                };
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.quit.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Deletes `names` with `threads` threads, starting none after `deadline`;
/// (deleted, errors).
pub(crate) fn delete_all(
    names: &[String],
    threads: usize,
    deadline: Option<Instant>,
) -> (usize, Vec<String>) {
    let sysfs = Sysfs::new(&KernelPaths::default());
    let next = std::sync::atomic::AtomicUsize::new(0);
    let errors = Mutex::new(Vec::new());
    let deleted = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..threads.max(1) {
            s.spawn(|| loop {
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    break;
                }
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(name) = names.get(i) else { break };
                match sysfs.delete_controller(name) {
                    Ok(()) => {
                        deleted.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => errors
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push(e.to_string()),
                }
            });
        }
    });
    (
        deleted.into_inner(),
        errors.into_inner().unwrap_or_else(PoisonError::into_inner),
    )
}

/// Deletes every controller (retrying those still in their first connect)
/// until sysfs lists none, or 120 s pass. Ok(how long), or what is left.
pub(crate) fn reset() -> Result<Duration, String> {
    let start = Instant::now();
    loop {
        let left = names();
        if left.is_empty() {
            return Ok(start.elapsed());
        }
        if start.elapsed() > Duration::from_secs(120) {
            return Err(format!("{} controllers left: {left:?}", left.len()));
        }
        let (_, errors) = delete_all(&left, 8, None);
        if !errors.is_empty() {
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// VmRSS of `pid` in MiB.
pub(crate) fn rss_mib(pid: u32) -> Option<f64> {
    let kib: f64 = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())?;
    Some(kib / 1024.0)
}

/// CPU seconds (user, system) process `pid` has used so far, from
/// /proc/PID/stat (clock ticks of 1/100 s, the kernel's USER_HZ).
pub(crate) fn cpu_secs(pid: u32) -> Option<(f64, f64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which may hold spaces: state is 3rd.
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i)?.parse::<f64>().ok();
    Some((ticks(11)? / 100.0, ticks(12)? / 100.0))
}

/// A series as CSV: `t,live,io,dc`.
pub(crate) fn series_csv(series: &[Sample]) -> String {
    let mut s = String::from("t,live,io,dc\n");
    for (t, c) in series {
        s.push_str(&format!("{t:.3},{},{},{}\n", c.live, c.io, c.dc));
    }
    s
}

/// SIGTERM, then SIGKILL if `child` has not exited within `grace`. Seconds to
/// exit, and whether it had to be killed.
pub(crate) fn terminate(child: &mut Child, grace: Duration) -> (f64, bool) {
    let start = Instant::now();
    stop(child, "TERM");
    while start.elapsed() < grace {
        if let Ok(Some(_)) = child.try_wait() {
            return (start.elapsed().as_secs_f64(), false);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    let _ = child.wait();
    (start.elapsed().as_secs_f64(), true)
}

pub(crate) fn raw_detail(done: u32, errors: &[String]) -> Result<String, String> {
    if errors.is_empty() {
        Ok(format!("{done} done"))
    } else {
        Err(format!(
            "{done} done, {} errors, first: {}",
            errors.len(),
            errors
                .iter()
                .take(3)
                .cloned()
                .collect::<Vec<_>>()
                .join("; ")
        ))
    }
}

/// Polls (every 2 ms, reading only new names) until a controller not in
/// `before` is a live I/O controller; how long that took.
pub(crate) fn wait_new_live_io(before: &[String], limit: Instant) -> Option<Duration> {
    let start = Instant::now();
    while Instant::now() < limit {
        for name in names().iter().filter(|n| !before.contains(n)) {
            let attr = |a: &str| {
                std::fs::read_to_string(format!("/sys/class/nvme/{name}/{a}"))
                    .map(|s| s.trim().to_owned())
                    .unwrap_or_default()
            };
            if attr("state") == "live" && attr("cntrltype") == "io" {
                return Some(start.elapsed());
            }
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    None
}

pub(crate) fn tail(path: &str, max: usize) -> Vec<u8> {
    let data = std::fs::read(path).unwrap_or_default();
    data.get(data.len().saturating_sub(max)..)
        .unwrap_or_default()
        .to_vec()
}
