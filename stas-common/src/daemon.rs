//! Process plumbing stafd and stacd share: the runtime, the start-up checks
//! with upstream's messages, `--version`, `--check-config`, and the signals
//! a daemon reacts to.

use std::fmt::Display;
use std::path::Path;
use std::process::ExitCode;

use nvmf_kernel::KernelPaths;
use tokio::signal::unix::{signal, Signal, SignalKind};

use crate::config::{self, ConfigError, Diagnostic, SysConf};

/// One thread for the logic, a bounded pool for blocking kernel calls.
pub fn runtime() -> Option<tokio::runtime::Runtime> {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_blocking_threads(8)
        .build()
    {
        Ok(rt) => Some(rt),
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            None
        }
    }
}

/// `-v`: upstream prints the nvme-stas and libnvme versions.
pub fn print_version() {
    println!("nvme-stas {} (stas, pure Rust)", env!("CARGO_PKG_VERSION"));
    println!("libnvme none (not needed)");
}

/// Root and the fabrics device, with upstream's messages; `Err` is the
/// exit status.
pub fn startup_checks(prog: &str, paths: &KernelPaths) -> Result<(), ExitCode> {
    if !nvmf_kernel::host::is_root() {
        eprintln!("Permission denied. You need root privileges to run {prog}.");
        return Err(ExitCode::from(1));
    }
    if !paths.fabrics().exists() {
        eprintln!(
            "Fatal error: missing nvme-tcp kernel module: {} not found (try `modprobe nvme-tcp`)",
            paths.fabrics().display()
        );
        return Err(ExitCode::from(1));
    }
    Ok(())
}

/// Loads sys.conf, logging its diagnostics; `Err` is the exit status.
pub fn load_sysconf(path: &Path, nvme_dir: &Path) -> Result<SysConf, ExitCode> {
    match config::load_sysconf(path, nvme_dir) {
        Ok((s, diags)) => {
            for d in diags {
                log::warn!("{d}");
            }
            Ok(s)
        }
        Err(e) => {
            eprintln!("{e}");
            Err(ExitCode::from(1))
        }
    }
}

/// Loads a daemon configuration, logging its diagnostics; the error text
/// names the file.
pub fn load_logged<C>(
    path: &Path,
    load: impl Fn(&Path) -> Result<(C, Vec<Diagnostic>), ConfigError>,
) -> Result<C, String> {
    let (cfg, diags) = load(path).map_err(|e| e.to_string())?;
    for d in diags {
        log::warn!("{d}");
    }
    Ok(cfg)
}

/// `--check-config`: checks sys.conf and the daemon's file, prints the
/// effective configuration, and exits non-zero when anything is wrong
/// (like `sshd -t`).
pub fn check_config<C: Display>(
    sys_conf: &Path,
    nvme_dir: &Path,
    conf_file: &Path,
    load: impl Fn(&Path) -> Result<(C, Vec<Diagnostic>), ConfigError>,
) -> ExitCode {
    use std::fmt::Write;
    let mut ok = true;
    let mut out = String::new();
    match config::load_sysconf(sys_conf, nvme_dir) {
        Ok((s, diags)) => {
            for d in &diags {
                eprintln!("{d}");
            }
            let _ = writeln!(
                out,
                "# {}: host NQN {}, host ID {}",
                sys_conf.display(),
                s.hostnqn,
                s.hostid
            );
        }
        Err(e) => {
            eprintln!("{e}");
            ok = false;
        }
    }
    match load(conf_file) {
        Ok((cfg, diags)) => {
            for d in &diags {
                eprintln!("{d}");
            }
            ok &= diags.is_empty();
            let _ = writeln!(out, "# effective configuration of {}", conf_file.display());
            let _ = write!(out, "{cfg}");
        }
        Err(e) => {
            eprintln!("{e}");
            ok = false;
        }
    }
    // A reader that went away (`| head`) is not a configuration error.
    let _ = std::io::Write::write_all(&mut std::io::stdout().lock(), out.as_bytes());
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// SIGHUP (reload), SIGTERM and SIGINT (stop).
#[derive(Debug)]
pub struct ProcessSignals {
    /// SIGHUP.
    pub hup: Signal,
    /// SIGTERM.
    pub term: Signal,
    /// SIGINT.
    pub int: Signal,
}

impl ProcessSignals {
    /// Installs the handlers (inside a runtime).
    pub fn install() -> std::io::Result<Self> {
        Ok(Self {
            hup: signal(SignalKind::hangup())?,
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    /// The next SIGTERM or SIGINT.
    pub async fn stop(&mut self) {
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
    }

    /// The next signal: `true` for SIGHUP (reload), `false` for a stop.
    pub async fn next_is_reload(&mut self) -> bool {
        tokio::select! {
            _ = self.hup.recv() => true,
            _ = self.term.recv() => false,
            _ = self.int.recv() => false,
        }
    }
}
