//! [`Lab::run`]: one boot of a guest under QEMU (TCG), its serial streams
//! read back and kept as a log.

use std::fs;
use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use super::error::io_err;
use super::guest::parse_stream;
use super::util::{write_atomically, TempDir};
use super::{Guest, GuestRun, Lab, LabError, START_MARKER};

impl Lab {
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
