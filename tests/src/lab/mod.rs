//! The lab: a throwaway QEMU guest with a real NVMe-oF kernel.
//!
//! The build machines run a kernel without NVMe support, so code that talks to
//! `/dev/nvme-fabrics`, `/dev/nvmeX` or `/sys/class/nvme` is proven in a guest
//! booting Debian's cloud kernel, which ships the NVMe/TCP host (`nvme-fabrics`,
//! `nvme-tcp`) and the kernel target (`nvmet`, `nvmet-tcp`) as modules.
//!
//! [`Lab::prepare`] finds QEMU and a static busybox on the host and fetches the
//! kernel (`apt-get download` of whatever `linux-image-cloud-amd64` depends on
//! today, extracted once into the cache). [`Lab::run`] builds an initramfs
//! (busybox, the modules, the [`Guest`]'s files, `/lab.sh` and an `/init`),
//! boots it under TCG, runs the guest's script as root and returns what it
//! printed as a [`GuestRun`].
//!
//! The guest has two serial ports: `ttyS0` is the kernel console (boot
//! messages, kernel errors, `/init`'s own messages), `ttyS1` carries the
//! scenario's stdout and stderr only, so kernel messages never land in the
//! middle of a scenario's line. Both go into `logs/<name>.log` under the cache.
//!
//! Inside the guest, `. /lab.sh` gives the scenario these helpers:
//!
//! - `lab_tag KEY TEXT...` prints `@@KEY TEXT` (read back with [`GuestRun::tagged`]);
//! - `lab_check NAME CMD...` runs CMD and prints `@@check NAME ok` or
//!   `@@check NAME fail RC` (see [`GuestRun::checks`]); returns CMD's status;
//! - `lab_put NAME FILE` prints `@@blob NAME <base64>` (see [`GuestRun::blob`]);
//! - `lab_wait_for SECONDS CMD...` retries CMD every 0.1 s until it succeeds.
//!
//! Environment: `STAS_LAB_CACHE` (cache directory, default
//! `$HOME/.cache/stas-lab`), `STAS_SKIP_LAB=1` (see [`skip_requested`]).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::OsString;
use std::fmt;
use std::fs;
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The meta package whose first `linux-image-…` dependency is the kernel the lab boots.
pub const KERNEL_META_PACKAGE: &str = "linux-image-cloud-amd64";

/// Modules every guest loads, in this order (plus their dependencies).
pub const DEFAULT_MODULES: &[&str] =
    &["configfs", "nvmet", "nvmet-tcp", "nvme-fabrics", "nvme-tcp"];

/// The Rust target [`build_static`] builds for.
pub const MUSL_TARGET: &str = "x86_64-unknown-linux-musl";

const START_MARKER: &str = "stas-lab: guest-start";
const EXIT_MARKER: &str = "stas-lab: guest-exit=";
const SETUP_FAILED_MARKER: &str = "stas-lab: setup-failed ";
/// Guest paths the lab writes itself; a [`Guest`] may not replace them.
const RESERVED_GUEST_PATHS: &[&str] = &["/init", "/lab.sh", "/lab"];

/// Why the lab could not do what was asked. The messages say what to install or
/// where to look.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// A host program the lab needs is not installed.
    #[error("{tool} not found: {hint}")]
    MissingTool {
        /// The program looked for.
        tool: String,
        /// What to do about it.
        hint: String,
    },
    /// The kernel package could not be resolved, fetched or used.
    #[error("lab kernel: {0}")]
    Kernel(String),
    /// A kernel module was asked for that the lab kernel does not have.
    #[error("kernel module {name}: {reason}")]
    Module {
        /// The module name as asked.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// A file operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done, with the path.
        what: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A host command failed.
    #[error("`{command}` failed ({status}){}", tail_for_message(.output))]
    Command {
        /// The command line.
        command: String,
        /// How it ended.
        status: String,
        /// The end of what it printed.
        output: String,
    },
    /// The guest definition is unusable.
    #[error("guest {guest}: {reason}")]
    Guest {
        /// The guest's name.
        guest: String,
        /// What is wrong.
        reason: String,
    },
    /// The guest never got to run its scenario.
    #[error("guest {guest}: {reason} (console log: {})", .log.display())]
    Boot {
        /// The guest's name.
        guest: String,
        /// What happened.
        reason: String,
        /// The raw console log of the run.
        log: PathBuf,
    },
    /// A file is not the ELF executable it should be.
    #[error("{}: {reason}", .path.display())]
    Elf {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

fn tail_for_message(output: &str) -> String {
    let t = output.trim();
    if t.is_empty() {
        String::new()
    } else {
        format!(":\n{t}")
    }
}

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> LabError {
    let what = what.into();
    move |source| LabError::Io { what, source }
}

/// True (after printing why) when `STAS_SKIP_LAB=1` asks lab tests to be
/// skipped. Lab tests call this first and return early when it is true;
/// otherwise a missing QEMU or kernel makes them fail with the reason.
pub fn skip_requested(test: &str) -> bool {
    match std::env::var("STAS_SKIP_LAB") {
        Ok(v) if v == "1" => {
            notice(&format!(
                "lab test {test} skipped: STAS_SKIP_LAB=1 is set (the QEMU lab was not started)"
            ));
            true
        }
        _ => false,
    }
}

/// Prints a line on stderr past the test harness's output capture, so that it
/// shows even for a passing test.
fn notice(line: &str) {
    let _ = writeln!(io::stderr(), "{line}");
}

// ---------------------------------------------------------------------------
// Lab
// ---------------------------------------------------------------------------

/// Everything a boot needs, found or fetched once by [`Lab::prepare`].
#[derive(Debug, Clone)]
pub struct Lab {
    cache_dir: PathBuf,
    kernel_package: String,
    kernel: PathBuf,
    kernel_release: String,
    modules_dir: PathBuf,
    busybox: PathBuf,
    applets: Vec<String>,
    qemu: PathBuf,
    modules: Arc<ModuleIndex>,
}

static PREPARED: Mutex<Option<Lab>> = Mutex::new(None);

impl Lab {
    /// Finds or fetches everything a boot needs: `qemu-system-x86_64`, a static
    /// busybox, and the cloud kernel with its modules (downloaded and extracted
    /// into the cache on first use, reused afterwards). Safe to call from many
    /// threads (the work is done once per process) and many processes (the
    /// extraction is published with an atomic rename).
    pub fn prepare() -> Result<Lab, LabError> {
        let mut slot = PREPARED
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(lab) = slot.as_ref() {
            return Ok(lab.clone());
        }
        let lab = Self::prepare_uncached()?;
        *slot = Some(lab.clone());
        Ok(lab)
    }

    fn prepare_uncached() -> Result<Lab, LabError> {
        let qemu = which("qemu-system-x86_64").ok_or_else(|| LabError::MissingTool {
            tool: "qemu-system-x86_64".into(),
            hint: "apt-get install qemu-system-x86 (scripts/test installs it)".into(),
        })?;
        let busybox = find_static_busybox()?;
        let applets = busybox_applets(&busybox)?;
        let cache_dir = cache_dir();
        fs::create_dir_all(&cache_dir).map_err(io_err(format!(
            "creating the lab cache {}",
            cache_dir.display()
        )))?;
        let (kernel_package, root) = ensure_kernel(&cache_dir)?;
        let kernel = find_vmlinuz(&root)?;
        let (kernel_release, modules_dir) = find_modules_dir(&root)?;
        let modules = Arc::new(ModuleIndex::load(&modules_dir)?);
        Ok(Lab {
            cache_dir,
            kernel_package,
            kernel,
            kernel_release,
            modules_dir,
            busybox,
            applets,
            qemu,
            modules,
        })
    }

    /// The cache directory (`$STAS_LAB_CACHE`, else `$HOME/.cache/stas-lab`).
    pub fn cache_dir(&self) -> &Path {
        &self.cache_dir
    }

    /// The kernel image booted.
    pub fn kernel(&self) -> &Path {
        &self.kernel
    }

    /// The Debian package the kernel came from (e.g. `linux-image-6.1.0-56-cloud-amd64`).
    pub fn kernel_package(&self) -> &str {
        &self.kernel_package
    }

    /// The kernel release (`uname -r` in the guest).
    pub fn kernel_release(&self) -> &str {
        &self.kernel_release
    }

    /// The kernel's `lib/modules/<release>` directory.
    pub fn modules_dir(&self) -> &Path {
        &self.modules_dir
    }

    /// The static busybox put into every guest.
    pub fn busybox(&self) -> &Path {
        &self.busybox
    }

    /// Where the raw console log of the last run of guest `name` is kept.
    pub fn log_path(&self, name: &str) -> PathBuf {
        self.cache_dir
            .join("logs")
            .join(format!("{}.log", sanitize(name)))
    }

    /// The modules a guest asking for `extra` loads, dependencies first, built-in
    /// ones left out, as (name, file) pairs.
    pub fn resolve_modules(&self, extra: &[String]) -> Result<Vec<(String, PathBuf)>, LabError> {
        let wanted: Vec<&str> = DEFAULT_MODULES
            .iter()
            .copied()
            .chain(extra.iter().map(String::as_str))
            .collect();
        self.modules.resolve(&wanted)
    }

    /// Boots one guest and runs its scenario; returns when the guest powered off
    /// or the timeout hit. A scenario that ran (even one that failed or timed
    /// out) is `Ok`; an error means the lab itself failed (no QEMU, a bad guest
    /// definition, a guest that never reached its scenario).
    pub fn run(&self, guest: &Guest) -> Result<GuestRun, LabError> {
        let work = TempDir::new(&guest.name)?;
        let initrd = work.path().join("initrd.cpio");
        self.write_initramfs(guest, &initrd)?;

        let console = work.path().join("console.log");
        let qemu_stderr = work.path().join("qemu.stderr");
        let mut cmd = Command::new(&self.qemu);
        cmd.args(["-accel", "tcg", "-cpu", "max", "-smp", "2", "-m"])
            .arg(guest.memory_mib.to_string())
            .args([
                "-nodefaults",
                "-display",
                "none",
                "-monitor",
                "none",
                "-no-reboot",
                "-kernel",
            ])
            .arg(&self.kernel)
            .arg("-initrd")
            .arg(&initrd)
            .args(["-append", "console=ttyS0 quiet panic=-1", "-serial"])
            .arg(qemu_file_chardev(&console)?)
            .args(["-serial", "stdio"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(
                fs::File::create(&qemu_stderr)
                    .map_err(io_err(format!("creating {}", qemu_stderr.display())))?,
            );
        let command_line = format!("{cmd:?}");

        let started = Instant::now();
        let mut child = cmd
            .spawn()
            .map_err(io_err(format!("starting {}", self.qemu.display())))?;
        let reader = match child.stdout.take() {
            Some(out) => thread::spawn(move || read_scenario_stream(out)),
            None => {
                kill_and_reap(&mut child);
                return Err(LabError::Guest {
                    guest: guest.name.clone(),
                    reason: "QEMU's stdout was not piped".into(),
                });
            }
        };
        let (status, timed_out) = wait_with_deadline(&mut child, started + guest.timeout)?;
        let wall_time = started.elapsed();
        let (stream, start_seen) = reader.join().unwrap_or_default();

        let console_text =
            String::from_utf8_lossy(&fs::read(&console).unwrap_or_default()).replace('\r', "");
        let stderr_text =
            String::from_utf8_lossy(&fs::read(&qemu_stderr).unwrap_or_default()).into_owned();
        let stream_text = String::from_utf8_lossy(&stream).replace('\r', "");
        let ended = match (timed_out, status) {
            (true, _) => format!("killed after the {:?} timeout", guest.timeout),
            (false, Some(s)) => format!("QEMU exited ({s})"),
            (false, None) => "QEMU ended".into(),
        };
        let log = self.log_path(&guest.name);
        let log_text = format!(
            "# stas lab guest {name}\n# {command_line}\n# {ended} after {wall_time:?}\n\n\
             ---- kernel console (ttyS0) ----\n{console_text}\n\
             ---- scenario output (ttyS1) ----\n{stream_text}\n\
             ---- qemu stderr ----\n{stderr_text}",
            name = guest.name,
        );
        write_atomically(&log, log_text.as_bytes())?;

        let parsed = parse_stream(&stream_text);
        if let Some(reason) = parsed.setup_failed {
            return Err(LabError::Boot {
                guest: guest.name.clone(),
                reason: format!("guest setup failed: {reason}"),
                log,
            });
        }
        let Some(output) = parsed.output else {
            let mut reason = format!("the scenario never started: {ended}");
            let err = stderr_text.trim();
            if !err.is_empty() {
                reason.push_str(&format!("; QEMU said: {}", last_lines(err, 5)));
            }
            return Err(LabError::Boot {
                guest: guest.name.clone(),
                reason,
                log,
            });
        };
        Ok(GuestRun {
            output,
            exit_code: parsed.exit_code,
            timed_out,
            boot_time: start_seen
                .map(|t| t.saturating_duration_since(started))
                .unwrap_or_default(),
            wall_time,
            console: console_text,
            log,
        })
    }

    fn write_initramfs(&self, guest: &Guest, path: &Path) -> Result<(), LabError> {
        let bad = |reason: String| LabError::Guest {
            guest: guest.name.clone(),
            reason,
        };
        let mut a = Archive::default();
        for d in [
            "/bin",
            "/sbin",
            "/usr/bin",
            "/usr/sbin",
            "/lib/modules/lab",
            "/proc",
            "/sys",
            "/dev",
            "/etc",
            "/tmp",
            "/run",
            "/var/run",
            "/var/tmp",
            "/root",
            "/lab",
        ] {
            a.dir(d).map_err(bad)?;
        }
        a.node("/dev/console", Node::CharDev { major: 5, minor: 1 })
            .map_err(bad)?;
        let busybox = fs::read(&self.busybox)
            .map_err(io_err(format!("reading {}", self.busybox.display())))?;
        a.node(
            "/bin/busybox",
            Node::File {
                data: busybox,
                mode: 0o755,
            },
        )
        .map_err(bad)?;
        for applet in &self.applets {
            a.node(&format!("/bin/{applet}"), Node::Symlink("busybox".into()))
                .map_err(bad)?;
        }

        let modules = self.resolve_modules(&guest.modules)?;
        for (name, file) in &modules {
            a.node(
                &format!("/lib/modules/lab/{name}.ko"),
                Node::File {
                    data: read_module(file)?,
                    mode: 0o644,
                },
            )
            .map_err(bad)?;
        }
        let names: Vec<&str> = modules.iter().map(|(n, _)| n.as_str()).collect();
        a.node(
            "/init",
            Node::File {
                data: init_script(&names).into_bytes(),
                mode: 0o755,
            },
        )
        .map_err(bad)?;
        a.node(
            "/lab.sh",
            Node::File {
                data: LAB_SH.as_bytes().to_vec(),
                mode: 0o644,
            },
        )
        .map_err(bad)?;
        a.node(
            "/lab/scenario.sh",
            Node::File {
                data: guest.script.clone().into_bytes(),
                mode: 0o755,
            },
        )
        .map_err(bad)?;

        for (host, guest_path) in &guest.files {
            if !guest_path.starts_with('/') {
                return Err(bad(format!("guest path {guest_path} is not absolute")));
            }
            let clean = guest_path.trim_end_matches('/');
            if RESERVED_GUEST_PATHS
                .iter()
                .any(|r| clean == *r || clean.starts_with(&format!("{r}/")))
            {
                return Err(bad(format!(
                    "guest path {guest_path} is reserved by the lab"
                )));
            }
            let meta =
                fs::metadata(host).map_err(io_err(format!("guest file {}", host.display())))?;
            let data =
                fs::read(host).map_err(io_err(format!("reading guest file {}", host.display())))?;
            a.node(
                clean,
                Node::File {
                    data,
                    mode: meta.permissions().mode() & 0o7777,
                },
            )
            .map_err(bad)?;
        }

        let f = fs::File::create(path).map_err(io_err(format!("creating {}", path.display())))?;
        let mut w = BufWriter::new(f);
        a.write_newc(&mut w)
            .map_err(io_err(format!("writing {}", path.display())))?;
        w.flush()
            .map_err(io_err(format!("writing {}", path.display())))
    }
}

// ---------------------------------------------------------------------------
// Guest and GuestRun
// ---------------------------------------------------------------------------

/// One guest: what goes into it and the scenario it runs.
#[derive(Debug, Clone)]
pub struct Guest {
    /// For messages and log file names.
    pub name: String,
    /// Host file -> absolute guest path. Parent directories are created and the
    /// mode is kept, so executables stay executable.
    pub files: Vec<(PathBuf, String)>,
    /// A `/bin/sh` (busybox ash) script run as root once modules are loaded,
    /// configfs is mounted on /sys/kernel/config and lo is up. Its stdout and
    /// stderr are [`GuestRun::output`]. `. /lab.sh` loads the helpers.
    pub script: String,
    /// Kernel modules beyond [`DEFAULT_MODULES`], by name (`-` and `_` are the
    /// same); their dependencies are added and built-in ones skipped.
    pub modules: Vec<String>,
    /// Timeout for the whole VM, boot included.
    pub timeout: Duration,
    /// Guest memory.
    pub memory_mib: u32,
}

impl Guest {
    /// A guest with no extra files or modules, a 120 s timeout and 1024 MiB.
    pub fn new(name: impl Into<String>, script: impl Into<String>) -> Guest {
        Guest {
            name: name.into(),
            files: Vec::new(),
            script: script.into(),
            modules: Vec::new(),
            timeout: Duration::from_secs(120),
            memory_mib: 1024,
        }
    }

    /// Adds a host file at an absolute guest path.
    pub fn file(mut self, host: impl Into<PathBuf>, guest_path: impl Into<String>) -> Guest {
        self.files.push((host.into(), guest_path.into()));
        self
    }

    /// Adds files (e.g. from [`host_binary_with_libs`]).
    pub fn files(mut self, files: impl IntoIterator<Item = (PathBuf, String)>) -> Guest {
        self.files.extend(files);
        self
    }

    /// Adds a kernel module.
    pub fn module(mut self, name: impl Into<String>) -> Guest {
        self.modules.push(name.into());
        self
    }

    /// Sets the whole-VM timeout.
    pub fn timeout(mut self, timeout: Duration) -> Guest {
        self.timeout = timeout;
        self
    }
}

/// What a guest's scenario printed and how it ended.
#[derive(Debug, Clone)]
pub struct GuestRun {
    /// Everything the scenario printed (stdout and stderr), `\r` removed.
    pub output: String,
    /// The scenario script's exit status; `None` if the VM died or timed out
    /// before the script ended.
    pub exit_code: Option<i32>,
    /// The VM was killed at the timeout.
    pub timed_out: bool,
    /// From QEMU start to the start of the scenario.
    pub boot_time: Duration,
    /// The whole run.
    pub wall_time: Duration,
    /// The kernel console (`ttyS0`): boot messages and kernel errors.
    pub console: String,
    /// The raw log of this run (kept until the next run of a guest of this name).
    pub log: PathBuf,
}

/// One `lab_check` result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// The check's name.
    pub name: String,
    /// `None` if it passed, else its exit status (`-1` if unreadable).
    pub failed: Option<i32>,
}

impl GuestRun {
    /// Lines the guest printed as `@@<key> <rest>`, as `<rest>`, in order.
    pub fn tagged(&self, key: &str) -> Vec<String> {
        let prefix = format!("@@{key}");
        self.output
            .lines()
            .filter_map(|line| {
                let rest = line.strip_prefix(&prefix)?;
                if rest.is_empty() {
                    Some(String::new())
                } else {
                    rest.strip_prefix(' ').map(str::to_owned)
                }
            })
            .collect()
    }

    /// The blob the guest sent last under `name` with `lab_put NAME FILE`,
    /// decoded; `None` if there is none or it does not decode.
    pub fn blob(&self, name: &str) -> Option<Vec<u8>> {
        let data = self.tagged("blob").into_iter().rev().find_map(|rest| {
            let (n, data) = rest.split_once(' ').unwrap_or((rest.as_str(), ""));
            (n == name).then(|| data.to_owned())
        })?;
        base64_decode(&data)
    }

    /// The `lab_check` results, in order.
    pub fn checks(&self) -> Vec<Check> {
        self.tagged("check")
            .into_iter()
            .map(|rest| {
                let mut words = rest.split_whitespace();
                let name = words.next().unwrap_or_default().to_owned();
                let failed = match words.next() {
                    Some("ok") => None,
                    _ => Some(words.next().and_then(|c| c.parse().ok()).unwrap_or(-1)),
                };
                Check { name, failed }
            })
            .collect()
    }

    /// Prints the scenario's result lines (checks, details, metrics; not
    /// blobs), for the test log.
    pub fn print_results(&self) {
        for line in self
            .output
            .lines()
            .filter(|l| l.starts_with("@@") && !l.starts_with("@@blob"))
        {
            println!("{line}");
        }
    }

    /// Every check in `expected` ran and passed, none failed, and the
    /// scenario exited 0; else a message listing what went wrong, with the
    /// report and `context` (a daemon's log, say).
    pub fn require_checks(&self, expected: &[&str], context: &str) -> Result<(), String> {
        let checks = self.checks();
        let failed: Vec<&str> = checks
            .iter()
            .filter(|c| c.failed.is_some())
            .map(|c| c.name.as_str())
            .collect();
        let missing: Vec<&str> = expected
            .iter()
            .copied()
            .filter(|e| !checks.iter().any(|c| c.name == *e))
            .collect();
        if failed.is_empty() && missing.is_empty() && self.exit_code == Some(0) {
            return Ok(());
        }
        Err(format!(
            "failed checks {failed:?}, checks that did not run {missing:?}\n{}\n{context}",
            self.report()
        ))
    }

    /// A multi-line summary for assertion messages: how it ended, the output
    /// and where the log is.
    pub fn report(&self) -> String {
        format!(
            "exit code {:?}{} after {:?} (boot {:?}); log {}\n---- output ----\n{}",
            self.exit_code,
            if self.timed_out { " (timed out)" } else { "" },
            self.wall_time,
            self.boot_time,
            self.log.display(),
            self.output
        )
    }
}

struct Parsed {
    output: Option<String>,
    exit_code: Option<i32>,
    setup_failed: Option<String>,
}

fn parse_stream(stream: &str) -> Parsed {
    let setup_failed = stream
        .lines()
        .find_map(|l| l.strip_prefix(SETUP_FAILED_MARKER))
        .map(|r| r.trim().to_owned());
    let start = stream
        .find(&format!("{START_MARKER}\n"))
        .map(|i| i + START_MARKER.len() + 1);
    let Some(start) = start else {
        return Parsed {
            output: None,
            exit_code: None,
            setup_failed,
        };
    };
    let body = stream.get(start..).unwrap_or_default();
    let exit_pat = format!("\n{EXIT_MARKER}");
    match body.rfind(&exit_pat) {
        Some(i) => {
            let code = body
                .get(i + exit_pat.len()..)
                .unwrap_or_default()
                .lines()
                .next()
                .and_then(|c| c.trim().parse().ok());
            Parsed {
                output: Some(body.get(..i).unwrap_or_default().to_owned()),
                exit_code: code,
                setup_failed,
            }
        }
        None => Parsed {
            output: Some(body.to_owned()),
            exit_code: None,
            setup_failed,
        },
    }
}

fn read_scenario_stream(mut out: impl Read) -> (Vec<u8>, Option<Instant>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let mut start_seen = None;
    let marker = format!("{START_MARKER}\n");
    loop {
        match out.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
                if start_seen.is_none() {
                    let text = String::from_utf8_lossy(&buf).replace('\r', "");
                    if text.contains(&marker) {
                        start_seen = Some(Instant::now());
                    }
                }
            }
        }
    }
    (buf, start_seen)
}

fn wait_with_deadline(
    child: &mut Child,
    deadline: Instant,
) -> Result<(Option<ExitStatus>, bool), LabError> {
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Ok((Some(status), false)),
            Ok(None) => {}
            Err(e) => {
                kill_and_reap(child);
                return Err(LabError::Io {
                    what: "waiting for QEMU".into(),
                    source: e,
                });
            }
        }
        if Instant::now() >= deadline {
            kill_and_reap(child);
            return Ok((None, true));
        }
        thread::sleep(Duration::from_millis(20));
    }
}

fn kill_and_reap(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines
        .get(lines.len().saturating_sub(n)..)
        .unwrap_or_default()
        .join(" | ")
}

// ---------------------------------------------------------------------------
// Guest-side scripts
// ---------------------------------------------------------------------------

/// The helper library at `/lab.sh`.
const LAB_SH: &str = r#"# stas lab helpers (tests/src/lab.rs). Source with: . /lab.sh

# lab_tag KEY TEXT...: print "@@KEY TEXT" (GuestRun::tagged on the host).
lab_tag() {
    local key="$1"; shift
    echo "@@$key $*"
}

# lab_put NAME FILE: send FILE to the host as "@@blob NAME <base64>" (GuestRun::blob).
lab_put() {
    if [ ! -r "$2" ]; then
        echo "lab_put: cannot read $2" >&2
        return 1
    fi
    printf '@@blob %s ' "$1"
    base64 -w 0 < "$2"
    echo
}

# lab_check NAME CMD...: run CMD, print "@@check NAME ok" or "@@check NAME fail RC";
# returns CMD's status.
lab_check() {
    local name="$1"; shift
    local rc=0
    "$@" || rc=$?
    if [ "$rc" -eq 0 ]; then echo "@@check $name ok"; else echo "@@check $name fail $rc"; fi
    return "$rc"
}

# lab_wait_for SECONDS CMD...: retry CMD every 0.1 s until it succeeds (0) or SECONDS pass (1).
lab_wait_for() {
    local tenths=$(($1 * 10)); shift
    until "$@"; do
        tenths=$((tenths - 1))
        [ "$tenths" -gt 0 ] || return 1
        sleep 0.1
    done
}
"#;

fn init_script(modules: &[&str]) -> String {
    format!(
        r#"#!/bin/sh
# /init of a stas lab guest (generated by tests/src/lab.rs).
# ttyS0 (our stdout) is the kernel console; the scenario writes to ttyS1.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root TERM=dumb
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
stty -F /dev/ttyS1 raw -echo 2>/dev/null
fail() {{
    echo "{setup_failed}$*" > /dev/ttyS1
    echo "{setup_failed}$*"
    poweroff -f
}}
for m in {modules}; do
    insmod /lib/modules/lab/$m.ko || fail "insmod $m"
done
mount -t configfs configfs /sys/kernel/config || fail "mount configfs"
ip link set lo up || fail "ip link set lo up"
hostname lab
cd /
echo "{start}" > /dev/ttyS1
sh /lab/scenario.sh > /dev/ttyS1 2>&1 < /dev/null
rc=$?
# Nothing else may hold ttyS1 open: the last close waits until it is drained.
kill -9 -1 2>/dev/null
sleep 0.05
printf '\n{exit}%s\n' "$rc" > /dev/ttyS1
echo "{exit}$rc"
poweroff -f
"#,
        setup_failed = SETUP_FAILED_MARKER,
        modules = modules.join(" "),
        start = START_MARKER,
        exit = EXIT_MARKER,
    )
}

// ---------------------------------------------------------------------------
// Host tools, cache and kernel
// ---------------------------------------------------------------------------

/// The first executable named `name` on `PATH`.
pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| {
            fs::metadata(p)
                .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
                .unwrap_or(false)
        })
}

fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("STAS_LAB_CACHE").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    match std::env::var_os("HOME").filter(|d| !d.is_empty()) {
        Some(home) => PathBuf::from(home).join(".cache").join("stas-lab"),
        None => std::env::temp_dir().join("stas-lab-cache"),
    }
}

fn find_static_busybox() -> Result<PathBuf, LabError> {
    let candidates = [
        PathBuf::from("/bin/busybox"),
        PathBuf::from("/usr/bin/busybox"),
    ];
    let found = candidates
        .into_iter()
        .find(|p| p.is_file())
        .or_else(|| which("busybox"));
    let Some(path) = found else {
        return Err(LabError::MissingTool {
            tool: "busybox".into(),
            hint: "apt-get install busybox-static (scripts/test installs it)".into(),
        });
    };
    if elf_interpreter(&path)?.is_some() {
        return Err(LabError::MissingTool {
            tool: "a static busybox".into(),
            hint: format!(
                "{} is dynamically linked (Debian package busybox); the guest needs apt-get install busybox-static",
                path.display()
            ),
        });
    }
    Ok(path)
}

fn busybox_applets(busybox: &Path) -> Result<Vec<String>, LabError> {
    let out = run_captured(Command::new(busybox).arg("--list"))?;
    // `busybox --list` names busybox itself: a link to it would replace the binary with a self-loop.
    Ok(out
        .lines()
        .map(str::trim)
        .filter(|a| !a.is_empty() && *a != "busybox" && !a.contains('/'))
        .map(str::to_owned)
        .collect())
}

/// Runs a command, returns its stdout, or a [`LabError::Command`] with its output.
fn run_captured(cmd: &mut Command) -> Result<String, LabError> {
    let command = format!("{cmd:?}");
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(io_err(format!("running {command}")))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() {
        Ok(stdout)
    } else {
        let stderr = String::from_utf8_lossy(&out.stderr);
        Err(LabError::Command {
            command,
            status: out.status.to_string(),
            output: last_n_lines(&format!("{stdout}{stderr}"), 30),
        })
    }
}

fn last_n_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines
        .get(lines.len().saturating_sub(n)..)
        .unwrap_or_default()
        .join("\n")
}

fn need_tool(tool: &str, package: &str) -> Result<PathBuf, LabError> {
    which(tool).ok_or_else(|| LabError::MissingTool {
        tool: tool.into(),
        hint: format!("apt-get install {package}"),
    })
}

/// The versioned kernel package `linux-image-cloud-amd64` depends on today.
fn resolve_kernel_package() -> Result<String, LabError> {
    let apt_cache = need_tool("apt-cache", "apt")?;
    let out = Command::new(&apt_cache)
        .args(["depends", KERNEL_META_PACKAGE])
        .stdin(Stdio::null())
        .output()
        .map_err(io_err("running apt-cache depends"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .filter_map(|l| l.trim().trim_start_matches('|').strip_prefix("Depends:"))
        .map(|p| p.trim().trim_start_matches('<').trim_end_matches('>').to_owned())
        .find(|p| p.starts_with("linux-image-"))
        .ok_or_else(|| {
            LabError::Kernel(format!(
                "`apt-cache depends {KERNEL_META_PACKAGE}` names no linux-image package{}: run apt-get update",
                if out.status.success() { "" } else { " (it failed)" }
            ))
        })
}

/// Returns the kernel package name and its extraction, fetching it if needed.
fn ensure_kernel(cache: &Path) -> Result<(String, PathBuf), LabError> {
    let kernels = cache.join("kernels");
    let package = match resolve_kernel_package() {
        Ok(p) => p,
        Err(e) => {
            // Offline or no apt lists: a kernel fetched earlier still does.
            match newest_cached_kernel(&kernels) {
                Some((p, dir)) => {
                    notice(&format!("stas-lab: {e}; using the cached {p}"));
                    return Ok((p, dir));
                }
                None => return Err(e),
            }
        }
    };
    let root = kernels.join(&package);
    if root.is_dir() {
        return Ok((package, root));
    }
    let apt_get = need_tool("apt-get", "apt")?;
    let dpkg = need_tool("dpkg", "dpkg")?;
    let tmp = cache
        .join("tmp")
        .join(format!("{package}.{}", unique_suffix()));
    fs::create_dir_all(&tmp).map_err(io_err(format!("creating {}", tmp.display())))?;
    let _cleanup = RemoveOnDrop(tmp.clone());
    notice(&format!(
        "stas-lab: fetching {package} into {}",
        kernels.display()
    ));
    run_captured(
        Command::new(&apt_get)
            .arg("download")
            .arg(&package)
            .current_dir(&tmp),
    )
    .map_err(|e| {
        LabError::Kernel(format!(
            "downloading {package} (stale apt lists? run apt-get update): {e}"
        ))
    })?;
    let deb = fs::read_dir(&tmp)
        .map_err(io_err(format!("reading {}", tmp.display())))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .ok_or_else(|| {
            LabError::Kernel(format!(
                "apt-get download {package} left no .deb in {}",
                tmp.display()
            ))
        })?;
    let staged = tmp.join("root");
    run_captured(Command::new(&dpkg).arg("-x").arg(&deb).arg(&staged))
        .map_err(|e| LabError::Kernel(format!("extracting {}: {e}", deb.display())))?;
    let (_, modules_dir) = find_modules_dir(&staged)?;
    ensure_modules_dep(&modules_dir)?;
    fs::create_dir_all(&kernels).map_err(io_err(format!("creating {}", kernels.display())))?;
    if let Err(e) = fs::rename(&staged, &root) {
        // Another process may have published the same kernel first.
        if !root.is_dir() {
            return Err(LabError::Io {
                what: format!("publishing {}", root.display()),
                source: e,
            });
        }
    }
    Ok((package, root))
}

fn newest_cached_kernel(kernels: &Path) -> Option<(String, PathBuf)> {
    fs::read_dir(kernels)
        .ok()?
        .filter_map(Result::ok)
        .filter(|e| e.path().is_dir())
        .filter_map(|e| {
            Some((
                e.metadata().ok()?.modified().ok()?,
                e.file_name().into_string().ok()?,
                e.path(),
            ))
        })
        .max()
        .map(|(_, name, path)| (name, path))
}

fn find_vmlinuz(root: &Path) -> Result<PathBuf, LabError> {
    let boot = root.join("boot");
    fs::read_dir(&boot)
        .map_err(io_err(format!("reading {}", boot.display())))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("vmlinuz-"))
        })
        .ok_or_else(|| LabError::Kernel(format!("no vmlinuz-* in {}", boot.display())))
}

fn find_modules_dir(root: &Path) -> Result<(String, PathBuf), LabError> {
    for base in [root.join("lib/modules"), root.join("usr/lib/modules")] {
        let Ok(entries) = fs::read_dir(&base) else {
            continue;
        };
        for e in entries.filter_map(Result::ok) {
            if e.path().join("kernel").is_dir() {
                if let Ok(release) = e.file_name().into_string() {
                    return Ok((release, e.path()));
                }
            }
        }
    }
    Err(LabError::Kernel(format!(
        "no lib/modules/<release>/kernel under {}",
        root.display()
    )))
}

// ---------------------------------------------------------------------------
// Kernel modules
// ---------------------------------------------------------------------------

/// The modules of the lab kernel, from `modules.dep` and `modules.builtin`.
struct ModuleIndex {
    dir: PathBuf,
    /// Module name (with `_`) -> (path relative to `dir`, dependencies as listed).
    modules: HashMap<String, (String, Vec<String>)>,
    builtin: HashSet<String>,
}

impl fmt::Debug for ModuleIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ModuleIndex")
            .field("dir", &self.dir)
            .field("modules", &self.modules.len())
            .field("builtin", &self.builtin.len())
            .finish()
    }
}

/// `nvme-tcp.ko.xz` -> `nvme_tcp`.
fn module_name(path: &str) -> String {
    let file = path.rsplit('/').next().unwrap_or(path);
    let stem = file.split(".ko").next().unwrap_or(file);
    stem.replace('-', "_")
}

impl ModuleIndex {
    fn load(dir: &Path) -> Result<ModuleIndex, LabError> {
        ensure_modules_dep(dir)?;
        let dep_path = dir.join("modules.dep");
        let dep = fs::read_to_string(&dep_path)
            .map_err(io_err(format!("reading {}", dep_path.display())))?;
        let builtin = fs::read_to_string(dir.join("modules.builtin")).unwrap_or_default();
        Ok(ModuleIndex::parse(dir, &dep, &builtin))
    }

    fn parse(dir: &Path, dep: &str, builtin: &str) -> ModuleIndex {
        let modules = dep
            .lines()
            .filter_map(|line| {
                let (path, deps) = line.split_once(':')?;
                let path = path.trim();
                let deps = deps.split_whitespace().map(module_name).collect();
                Some((module_name(path), (path.to_owned(), deps)))
            })
            .collect();
        let builtin = builtin
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(module_name)
            .collect();
        ModuleIndex {
            dir: dir.to_path_buf(),
            modules,
            builtin,
        }
    }

    /// Load order for `wanted`: dependencies first, each module once, built-in ones left out.
    fn resolve(&self, wanted: &[&str]) -> Result<Vec<(String, PathBuf)>, LabError> {
        let mut order = Vec::new();
        let mut seen = HashSet::new();
        for w in wanted {
            let name = module_name(w.trim());
            if self.builtin.contains(&name) {
                continue;
            }
            if !self.modules.contains_key(&name) {
                let mut similar: Vec<&str> = self
                    .modules
                    .keys()
                    .filter(|k| k.contains(&name) || name.contains(k.as_str()))
                    .map(String::as_str)
                    .collect();
                similar.sort_unstable();
                similar.truncate(12);
                return Err(LabError::Module {
                    name: (*w).to_owned(),
                    reason: format!(
                        "not a module of the lab kernel ({}) nor built in{}",
                        self.dir.display(),
                        if similar.is_empty() {
                            String::new()
                        } else {
                            format!("; similar: {}", similar.join(" "))
                        }
                    ),
                });
            }
            self.visit(&name, &mut seen, &mut order);
        }
        Ok(order
            .into_iter()
            .map(|(n, p)| (n, self.dir.join(p)))
            .collect())
    }

    fn visit(&self, name: &str, seen: &mut HashSet<String>, order: &mut Vec<(String, String)>) {
        if self.builtin.contains(name) || !seen.insert(name.to_owned()) {
            return;
        }
        let Some((path, deps)) = self.modules.get(name) else {
            return;
        };
        // depmod lists a module's dependencies so that the last one loads first.
        for d in deps.iter().rev() {
            self.visit(d, seen, order);
        }
        order.push((name.to_owned(), path.clone()));
    }
}

/// `dpkg -x` does not run depmod, so an extracted kernel has no `modules.dep`:
/// write one (in depmod's format) from each module's `.modinfo` `depends=`.
fn ensure_modules_dep(dir: &Path) -> Result<(), LabError> {
    let dep_path = dir.join("modules.dep");
    if dep_path.is_file() {
        return Ok(());
    }
    let mut files = Vec::new();
    collect_modules(&dir.join("kernel"), &mut files)?;
    let mut by_name: BTreeMap<String, (String, Vec<String>)> = BTreeMap::new();
    for file in &files {
        let rel = file
            .strip_prefix(dir)
            .unwrap_or(file)
            .to_string_lossy()
            .into_owned();
        let data = read_module(file)?;
        let deps = modinfo(&data, "depends")
            .map_err(|reason| LabError::Elf {
                path: file.clone(),
                reason,
            })?
            .map(|d| {
                d.split(',')
                    .map(str::trim)
                    .filter(|d| !d.is_empty())
                    .map(module_name)
                    .collect()
            })
            .unwrap_or_default();
        by_name.insert(module_name(&rel), (rel, deps));
    }
    let mut text = String::new();
    for (name, (rel, _)) in &by_name {
        let mut order = Vec::new();
        let mut seen = HashSet::new();
        closure(name, &by_name, &mut seen, &mut order);
        order.pop(); // the module itself
        let deps: Vec<&str> = order
            .iter()
            .rev()
            .filter_map(|d| by_name.get(d.as_str()).map(|(p, _)| p.as_str()))
            .collect();
        text.push_str(&format!(
            "{rel}:{}{}\n",
            if deps.is_empty() { "" } else { " " },
            deps.join(" ")
        ));
    }
    write_atomically(&dep_path, text.as_bytes())
}

fn closure(
    name: &str,
    all: &BTreeMap<String, (String, Vec<String>)>,
    seen: &mut HashSet<String>,
    order: &mut Vec<String>,
) {
    if !seen.insert(name.to_owned()) {
        return;
    }
    if let Some((_, deps)) = all.get(name) {
        for d in deps {
            closure(d, all, seen, order);
        }
    }
    order.push(name.to_owned());
}

fn collect_modules(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), LabError> {
    for e in fs::read_dir(dir).map_err(io_err(format!("reading {}", dir.display())))? {
        let path = e
            .map_err(io_err(format!("reading {}", dir.display())))?
            .path();
        if path.is_dir() {
            collect_modules(&path, out)?;
        } else if path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.contains(".ko"))
        {
            out.push(path);
        }
    }
    Ok(())
}

/// A module file's bytes, decompressed with the host's xz/zstd/gzip if needed.
fn read_module(path: &Path) -> Result<Vec<u8>, LabError> {
    let name = path.to_string_lossy();
    let (tool, package) = if name.ends_with(".ko.xz") {
        ("xz", "xz-utils")
    } else if name.ends_with(".ko.zst") {
        ("zstd", "zstd")
    } else if name.ends_with(".ko.gz") {
        ("gzip", "gzip")
    } else {
        return fs::read(path).map_err(io_err(format!("reading {}", path.display())));
    };
    let tool = need_tool(tool, package)?;
    let out = Command::new(&tool)
        .arg("-dc")
        .arg(path)
        .stdin(Stdio::null())
        .output()
        .map_err(io_err(format!("decompressing {}", path.display())))?;
    if !out.status.success() {
        return Err(LabError::Command {
            command: format!("{} -dc {}", tool.display(), path.display()),
            status: out.status.to_string(),
            output: String::from_utf8_lossy(&out.stderr).into_owned(),
        });
    }
    Ok(out.stdout)
}

// ---------------------------------------------------------------------------
// ELF
// ---------------------------------------------------------------------------

fn le_u16(d: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_le_bytes(
        d.get(off..off.checked_add(2)?)?.try_into().ok()?,
    ))
}

fn le_u32(d: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        d.get(off..off.checked_add(4)?)?.try_into().ok()?,
    ))
}

fn le_u64(d: &[u8], off: usize) -> Option<usize> {
    usize::try_from(u64::from_le_bytes(
        d.get(off..off.checked_add(8)?)?.try_into().ok()?,
    ))
    .ok()
}

fn check_elf64le(d: &[u8]) -> Result<(), String> {
    if d.get(..4) != Some(b"\x7fELF".as_slice()) {
        return Err("not an ELF file".into());
    }
    if d.get(4) != Some(&2) || d.get(5) != Some(&1) {
        return Err("not a 64-bit little-endian ELF file".into());
    }
    Ok(())
}

/// The program interpreter (`PT_INTERP`) an ELF executable asks for; `None` for
/// a static executable (static-pie included).
pub fn elf_interpreter(path: &Path) -> Result<Option<String>, LabError> {
    let d = fs::read(path).map_err(io_err(format!("reading {}", path.display())))?;
    elf_interpreter_of(&d).map_err(|reason| LabError::Elf {
        path: path.to_path_buf(),
        reason,
    })
}

fn elf_interpreter_of(d: &[u8]) -> Result<Option<String>, String> {
    const PT_INTERP: u32 = 3;
    check_elf64le(d)?;
    let bad = || "truncated ELF program headers".to_owned();
    let phoff = le_u64(d, 0x20).ok_or_else(bad)?;
    let phentsize = usize::from(le_u16(d, 0x36).ok_or_else(bad)?);
    let phnum = usize::from(le_u16(d, 0x38).ok_or_else(bad)?);
    for i in 0..phnum {
        let ph = phoff
            .checked_add(i.checked_mul(phentsize).ok_or_else(bad)?)
            .ok_or_else(bad)?;
        if le_u32(d, ph).ok_or_else(bad)? == PT_INTERP {
            let off = le_u64(d, ph + 8).ok_or_else(bad)?;
            let size = le_u64(d, ph + 32).ok_or_else(bad)?;
            let raw = d
                .get(off..off.checked_add(size).ok_or_else(bad)?)
                .ok_or_else(bad)?;
            let s = String::from_utf8_lossy(raw)
                .trim_end_matches('\0')
                .to_owned();
            return Ok(Some(s));
        }
    }
    Ok(None)
}

/// The value of `key=` in a kernel module's `.modinfo` section.
fn modinfo(d: &[u8], key: &str) -> Result<Option<String>, String> {
    check_elf64le(d)?;
    let bad = || "truncated ELF section headers".to_owned();
    let shoff = le_u64(d, 0x28).ok_or_else(bad)?;
    let shentsize = usize::from(le_u16(d, 0x3a).ok_or_else(bad)?);
    let shnum = usize::from(le_u16(d, 0x3c).ok_or_else(bad)?);
    let shstrndx = usize::from(le_u16(d, 0x3e).ok_or_else(bad)?);
    let section = |i: usize| -> Option<(usize, usize, usize)> {
        let sh = shoff.checked_add(i.checked_mul(shentsize)?)?;
        let name = usize::try_from(le_u32(d, sh)?).ok()?;
        Some((
            name,
            le_u64(d, sh.checked_add(24)?)?,
            le_u64(d, sh.checked_add(32)?)?,
        ))
    };
    let (_, str_off, str_size) = section(shstrndx).ok_or_else(bad)?;
    let strtab = d
        .get(str_off..str_off.checked_add(str_size).ok_or_else(bad)?)
        .ok_or_else(bad)?;
    for i in 0..shnum {
        let (name, off, size) = section(i).ok_or_else(bad)?;
        let sname = strtab
            .get(name..)
            .and_then(|s| s.split(|b| *b == 0).next())
            .unwrap_or_default();
        if sname != b".modinfo" {
            continue;
        }
        let body = d
            .get(off..off.checked_add(size).ok_or_else(bad)?)
            .ok_or_else(bad)?;
        let prefix = format!("{key}=");
        return Ok(body
            .split(|b| *b == 0)
            .find_map(|entry| entry.strip_prefix(prefix.as_bytes()))
            .map(|v| String::from_utf8_lossy(v).into_owned()));
    }
    Err("no .modinfo section (not a kernel module?)".into())
}

// ---------------------------------------------------------------------------
// Host binaries
// ---------------------------------------------------------------------------

/// The workspace root (the parent of this crate's directory).
pub fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// Builds workspace binaries as static musl executables (release profile) and
/// returns their paths, in the order asked. One `cargo build --release --target
/// x86_64-unknown-linux-musl -p PKG --bin BIN...` from the workspace root, with
/// `$CARGO` if set, into `<target dir>/stas-lab` (its own directory, so it
/// never waits on the lock of the `cargo test` that runs it).
pub fn build_static(bins: &[(&str, &str)]) -> Result<Vec<PathBuf>, LabError> {
    let root = workspace_root();
    let cargo = std::env::var_os("CARGO")
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| OsString::from("cargo"));
    let base = std::env::var_os("CARGO_TARGET_DIR")
        .or_else(|| std::env::var_os("CARGO_BUILD_TARGET_DIR"))
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .map(|d| if d.is_absolute() { d } else { root.join(d) })
        .unwrap_or_else(|| root.join("target"));
    let target_dir = base.join("stas-lab");
    let mut cmd = Command::new(&cargo);
    cmd.current_dir(&root)
        .args(["build", "--release", "--target", MUSL_TARGET])
        .env("CARGO_TARGET_DIR", &target_dir);
    let mut packages = Vec::new();
    for (pkg, _) in bins {
        if !packages.contains(pkg) {
            packages.push(*pkg);
            cmd.args(["-p", pkg]);
        }
    }
    for (_, bin) in bins {
        cmd.args(["--bin", bin]);
    }
    let command = format!("{cmd:?}");
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => LabError::MissingTool {
                tool: cargo.to_string_lossy().into_owned(),
                hint: "install rustup (https://rustup.rs)".into(),
            },
            _ => LabError::Io {
                what: format!("running {command}"),
                source: e,
            },
        })?;
    if !out.status.success() {
        let mut output = last_n_lines(&String::from_utf8_lossy(&out.stderr), 40);
        if output.contains("target may not be installed")
            || output.contains("can't find crate for `std`")
        {
            output.push_str(&format!("\nhint: rustup target add {MUSL_TARGET}"));
        }
        return Err(LabError::Command {
            command,
            status: out.status.to_string(),
            output,
        });
    }
    bins.iter()
        .map(|(_, bin)| {
            let p = target_dir.join(MUSL_TARGET).join("release").join(bin);
            if p.is_file() {
                Ok(p)
            } else {
                Err(LabError::Elf {
                    path: p,
                    reason: format!("not built by {command}"),
                })
            }
        })
        .collect()
}

/// A host executable plus its shared libraries and dynamic loader (found with
/// `ldd`), as [`Guest::files`] entries at the same absolute paths in the guest,
/// so that e.g. Debian's `/usr/sbin/nvme` runs in the initramfs. A static
/// executable comes back alone.
pub fn host_binary_with_libs(path: &Path) -> Result<Vec<(PathBuf, String)>, LabError> {
    if !path.is_absolute() {
        return Err(LabError::Elf {
            path: path.to_path_buf(),
            reason: "give an absolute path".into(),
        });
    }
    if !path.is_file() {
        return Err(LabError::Elf {
            path: path.to_path_buf(),
            reason: "no such file".into(),
        });
    }
    let guest_path = |p: &Path| p.to_string_lossy().into_owned();
    let mut files = vec![(path.to_path_buf(), guest_path(path))];
    if elf_interpreter(path)?.is_none() {
        return Ok(files);
    }
    let ldd = need_tool("ldd", "libc-bin")?;
    let text = run_captured(Command::new(&ldd).arg(path))?;
    for lib in parse_ldd(&text).map_err(|reason| LabError::Elf {
        path: path.to_path_buf(),
        reason,
    })? {
        let entry = (lib.clone(), guest_path(&lib));
        if !files.contains(&entry) {
            files.push(entry);
        }
    }
    Ok(files)
}

fn parse_ldd(text: &str) -> Result<Vec<PathBuf>, String> {
    let mut libs = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let target = match line.split_once("=>") {
            Some((name, rest)) => {
                let rest = rest.trim();
                if rest.starts_with("not found") {
                    return Err(format!("ldd: {} not found", name.trim()));
                }
                rest
            }
            None => line,
        };
        let file = target.split_whitespace().next().unwrap_or_default();
        // linux-vdso.so.1 and friends are not files.
        if file.starts_with('/') {
            libs.push(PathBuf::from(file));
        }
    }
    Ok(libs)
}

// ---------------------------------------------------------------------------
// cpio (newc) initramfs
// ---------------------------------------------------------------------------

#[derive(Debug)]
enum Node {
    Dir,
    File { data: Vec<u8>, mode: u32 },
    Symlink(String),
    CharDev { major: u32, minor: u32 },
}

/// An initramfs being built: absolute guest path -> node. Parents sort before
/// their children, so writing in key order creates directories first.
#[derive(Debug, Default)]
struct Archive {
    nodes: BTreeMap<String, Node>,
}

impl Archive {
    fn dir(&mut self, path: &str) -> Result<(), String> {
        self.parents(path)?;
        match self.nodes.get(path) {
            None => {
                self.nodes.insert(path.to_owned(), Node::Dir);
                Ok(())
            }
            Some(Node::Dir) => Ok(()),
            Some(_) => Err(format!("{path} is both a file and a directory")),
        }
    }

    fn parents(&mut self, path: &str) -> Result<(), String> {
        if !path.starts_with('/') || path.len() < 2 || path.ends_with('/') || path.contains("//") {
            return Err(format!("bad guest path {path:?}"));
        }
        if path.split('/').any(|c| c == "." || c == "..") {
            return Err(format!("guest path {path:?} has . or .. in it"));
        }
        match path.rfind('/') {
            Some(0) | None => Ok(()),
            Some(i) => self.dir(path.get(..i).unwrap_or_default()),
        }
    }

    /// Adds a file, symlink or device, replacing a file or symlink of that path.
    fn node(&mut self, path: &str, node: Node) -> Result<(), String> {
        self.parents(path)?;
        if let Some(Node::Dir) = self.nodes.get(path) {
            return Err(format!("{path} is both a directory and a file"));
        }
        self.nodes.insert(path.to_owned(), node);
        Ok(())
    }

    fn write_newc(&self, w: &mut impl Write) -> io::Result<()> {
        const S_IFDIR: u32 = 0o040_000;
        const S_IFREG: u32 = 0o100_000;
        const S_IFLNK: u32 = 0o120_000;
        const S_IFCHR: u32 = 0o020_000;
        let mut ino: u32 = 1;
        for (path, node) in &self.nodes {
            ino = ino.saturating_add(1);
            let name = path.trim_start_matches('/');
            let (mode, nlink, data, rdev): (u32, u32, &[u8], (u32, u32)) = match node {
                Node::Dir => (S_IFDIR | 0o755, 2, &[], (0, 0)),
                Node::File { data, mode } => (S_IFREG | (mode & 0o7777), 1, data, (0, 0)),
                Node::Symlink(target) => (S_IFLNK | 0o777, 1, target.as_bytes(), (0, 0)),
                Node::CharDev { major, minor } => (S_IFCHR | 0o600, 1, &[], (*major, *minor)),
            };
            newc_entry(w, ino, mode, nlink, rdev, name, data)?;
        }
        newc_entry(w, 0, 0, 1, (0, 0), "TRAILER!!!", &[])
    }
}

fn newc_entry(
    w: &mut impl Write,
    ino: u32,
    mode: u32,
    nlink: u32,
    rdev: (u32, u32),
    name: &str,
    data: &[u8],
) -> io::Result<()> {
    let too_big = |what: &str| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{what} too large for cpio: {name}"),
        )
    };
    let size = u32::try_from(data.len()).map_err(|_| too_big("file"))?;
    let namesize = u32::try_from(name.len() + 1).map_err(|_| too_big("name"))?;
    let header = format!(
        "070701{ino:08X}{mode:08X}{:08X}{:08X}{nlink:08X}{:08X}{size:08X}{:08X}{:08X}{:08X}{:08X}{namesize:08X}{:08X}",
        0, 0, 0, 0, 0, rdev.0, rdev.1, 0
    );
    w.write_all(header.as_bytes())?;
    w.write_all(name.as_bytes())?;
    w.write_all(&[0])?;
    w.write_all(&[0u8; 3][..pad4(header.len() + name.len() + 1)])?;
    w.write_all(data)?;
    w.write_all(&[0u8; 3][..pad4(data.len())])
}

fn pad4(n: usize) -> usize {
    (4 - n % 4) % 4
}

// ---------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------

fn base64_decode(text: &str) -> Option<Vec<u8>> {
    fn value(c: u8) -> Option<u32> {
        match c {
            b'A'..=b'Z' => Some(u32::from(c - b'A')),
            b'a'..=b'z' => Some(u32::from(c - b'a') + 26),
            b'0'..=b'9' => Some(u32::from(c - b'0') + 52),
            b'+' => Some(62),
            b'/' => Some(63),
            _ => None,
        }
    }
    let clean: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    if clean.len() % 4 != 0 {
        return None;
    }
    let mut out = Vec::with_capacity(clean.len() / 4 * 3);
    let quads = clean.chunks(4).count();
    for (i, q) in clean.chunks(4).enumerate() {
        let pad = q.iter().rev().take_while(|b| **b == b'=').count();
        if pad > 2 || (pad > 0 && i + 1 != quads) {
            return None;
        }
        let mut acc: u32 = 0;
        for b in q.get(..4 - pad)? {
            acc = (acc << 6) | value(*b)?;
        }
        acc <<= 6 * u32::try_from(pad).ok()?;
        let bytes = acc.to_be_bytes();
        out.extend_from_slice(bytes.get(1..4 - pad)?);
    }
    Some(out)
}

/// A file-name-safe version of a guest name.
fn sanitize(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() || s.starts_with('.') {
        format!("guest{s}")
    } else {
        s
    }
}

fn unique_suffix() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!(
        "{}.{}.{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// QEMU's `file:` chardev path may not contain a comma (its option separator).
fn qemu_file_chardev(path: &Path) -> Result<String, LabError> {
    let p = path.to_string_lossy();
    if p.contains(',') {
        return Err(LabError::Kernel(format!(
            "temporary path {p} contains a comma, which QEMU cannot take"
        )));
    }
    Ok(format!("file:{p}"))
}

fn write_atomically(path: &Path, data: &[u8]) -> Result<(), LabError> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(io_err(format!("creating {}", dir.display())))?;
    }
    let tmp = PathBuf::from(format!("{}.tmp.{}", path.display(), unique_suffix()));
    fs::write(&tmp, data).map_err(io_err(format!("writing {}", tmp.display())))?;
    fs::rename(&tmp, path).map_err(|e| {
        let _ = fs::remove_file(&tmp);
        LabError::Io {
            what: format!("renaming {} to {}", tmp.display(), path.display()),
            source: e,
        }
    })
}

struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A private directory for one run, removed when dropped.
struct TempDir(RemoveOnDrop);

impl TempDir {
    fn new(name: &str) -> Result<TempDir, LabError> {
        let dir =
            std::env::temp_dir().join(format!("stas-lab.{}.{}", sanitize(name), unique_suffix()));
        fs::create_dir_all(&dir).map_err(io_err(format!("creating {}", dir.display())))?;
        Ok(TempDir(RemoveOnDrop(dir)))
    }

    fn path(&self) -> &Path {
        &self.0 .0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_with(output: &str) -> GuestRun {
        GuestRun {
            output: output.into(),
            exit_code: Some(0),
            timed_out: false,
            boot_time: Duration::ZERO,
            wall_time: Duration::ZERO,
            console: String::new(),
            log: PathBuf::new(),
        }
    }

    #[test]
    fn base64_round_trips_known_vectors() {
        for (plain, enc) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
        ] {
            assert_eq!(
                base64_decode(enc).as_deref(),
                Some(plain.as_bytes()),
                "{enc}"
            );
        }
        assert_eq!(base64_decode("AAEC/w==\n"), Some(vec![0, 1, 2, 255]));
        assert_eq!(base64_decode("Zg=a"), None);
        assert_eq!(base64_decode("Zg="), None);
        assert_eq!(base64_decode("Zg==Zg=="), None);
    }

    #[test]
    fn tagged_blob_and_checks() {
        let r = run_with(
            "noise\n@@kernel 6.1.0\n@@kernelx no\n@@check a ok\n@@check b fail 3\n@@blob x Zm9v\n@@blob e \n@@blob x YmFy\n@@flag\n",
        );
        assert_eq!(r.tagged("kernel"), vec!["6.1.0"]);
        assert_eq!(r.tagged("flag"), vec![""]);
        assert_eq!(r.blob("x"), Some(b"bar".to_vec()));
        assert_eq!(r.blob("e"), Some(Vec::new()));
        assert_eq!(r.blob("missing"), None);
        let checks = r.checks();
        assert_eq!(
            checks[0],
            Check {
                name: "a".into(),
                failed: None
            }
        );
        assert_eq!(
            checks[1],
            Check {
                name: "b".into(),
                failed: Some(3)
            }
        );
    }

    #[test]
    fn stream_markers() {
        let p = parse_stream(&format!(
            "junk\n{START_MARKER}\nhello\nworld\n\n{EXIT_MARKER}3\n"
        ));
        assert_eq!(p.output.as_deref(), Some("hello\nworld\n"));
        assert_eq!(p.exit_code, Some(3));
        let p = parse_stream(&format!("{START_MARKER}\npartial"));
        assert_eq!(p.output.as_deref(), Some("partial"));
        assert_eq!(p.exit_code, None);
        let p = parse_stream(&format!("{SETUP_FAILED_MARKER}insmod nvmet\n"));
        assert!(p.output.is_none());
        assert_eq!(p.setup_failed.as_deref(), Some("insmod nvmet"));
    }

    #[test]
    fn modules_resolve_in_dependency_order() {
        let dep = "kernel/fs/configfs/configfs.ko:\n\
                   kernel/drivers/nvme/target/nvmet.ko: kernel/fs/configfs/configfs.ko\n\
                   kernel/drivers/nvme/target/nvmet-tcp.ko: kernel/drivers/nvme/target/nvmet.ko kernel/fs/configfs/configfs.ko\n\
                   kernel/drivers/nvme/host/nvme-fabrics.ko:\n";
        let idx = ModuleIndex::parse(
            Path::new("/m"),
            dep,
            "kernel/drivers/nvme/host/nvme-core.ko\n",
        );
        let order = idx
            .resolve(&["nvmet-tcp", "nvme_core", "configfs", "nvme-fabrics"])
            .unwrap();
        let names: Vec<&str> = order.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["configfs", "nvmet", "nvmet_tcp", "nvme_fabrics"]);
        assert_eq!(
            order[2].1,
            Path::new("/m/kernel/drivers/nvme/target/nvmet-tcp.ko")
        );
        let err = idx.resolve(&["nvme-loop"]).unwrap_err().to_string();
        assert!(err.contains("nvme-loop"), "{err}");
    }

    #[test]
    fn ldd_output_parses() {
        let text = "\tlinux-vdso.so.1 (0x00007ffd)\n\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x1)\n\t/lib64/ld-linux-x86-64.so.2 (0x2)\n";
        assert_eq!(
            parse_ldd(text).unwrap(),
            [
                PathBuf::from("/lib/x86_64-linux-gnu/libc.so.6"),
                PathBuf::from("/lib64/ld-linux-x86-64.so.2")
            ]
        );
        assert!(parse_ldd("\tlibfoo.so.1 => not found\n").is_err());
    }

    #[test]
    fn archive_creates_parents_and_rejects_conflicts() {
        let mut a = Archive::default();
        a.node(
            "/usr/sbin/nvme",
            Node::File {
                data: b"x".to_vec(),
                mode: 0o755,
            },
        )
        .unwrap();
        assert!(matches!(a.nodes.get("/usr"), Some(Node::Dir)));
        assert!(matches!(a.nodes.get("/usr/sbin"), Some(Node::Dir)));
        assert!(a.dir("/usr/sbin/nvme").is_err());
        assert!(a.node("/usr/sbin/nvme/x", Node::Dir).is_err());
        assert!(a.node("relative", Node::Dir).is_err());
        assert!(a.node("/a/../b", Node::Dir).is_err());
        let mut out = Vec::new();
        a.write_newc(&mut out).unwrap();
        assert_eq!(out.len() % 4, 0);
        assert!(out.starts_with(b"070701"));
        let text = String::from_utf8_lossy(&out);
        assert!(text.contains("usr/sbin/nvme\0"));
        assert!(text.contains("TRAILER!!!\0"));
    }

    #[test]
    fn own_test_binary_is_dynamic() {
        let exe = std::env::current_exe().unwrap();
        assert!(elf_interpreter(&exe).unwrap().is_some());
    }
}
