//! [`Guest`] (what goes into a VM and the scenario it runs), [`GuestRun`]
//! (what the scenario printed) and the parsing of the scenario's serial stream.

use std::path::PathBuf;
use std::time::Duration;

use super::util::base64_decode;
use super::{EXIT_MARKER, SETUP_FAILED_MARKER, START_MARKER};

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
    /// Kernel modules beyond [`DEFAULT_MODULES`](super::DEFAULT_MODULES), by name (`-` and `_` are the
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

    /// Adds files (e.g. from [`host_binary_with_libs`](super::host_binary_with_libs)).
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

pub(super) struct Parsed {
    pub(super) output: Option<String>,
    pub(super) exit_code: Option<i32>,
    pub(super) setup_failed: Option<String>,
}

pub(super) fn parse_stream(stream: &str) -> Parsed {
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
}
