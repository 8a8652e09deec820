//! A daemon's start, the same for stafd and stacd: the options both take,
//! `--version` and `--check-config`, logging, the start-up checks with
//! upstream's messages, sys.conf and the daemon's file; then either the
//! simulation (`--sim N`) or the real run.

use std::fmt::Display;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use nvmf_kernel::uevent::UeventStream;
use nvmf_kernel::KernelPaths;

use stas_config::{ConfigError, Diagnostic, GlobalOptions, StacdConfig, StafdConfig, SysConf};

use crate::lkc::LkcFile;

/// The options stafd and stacd share (nvme-stas's, plus hidden ones for
/// tests); each daemon adds its configuration file and `--sim`.
#[derive(Debug, clap::Args)]
pub struct CommonArgs {
    /// Host configuration (sys.conf).
    #[arg(long = "sys-conf", default_value = "/etc/stas/sys.conf")]
    pub sys_conf: PathBuf,
    /// Log to the journal/syslog (priority prefixes on stderr).
    #[arg(short = 's', long)]
    pub syslog: bool,
    /// Start with debug tracing on.
    #[arg(long)]
    pub tron: bool,
    /// Check the configuration, print the effective configuration and exit
    /// (non-zero when anything is wrong), like `sshd -t`.
    #[arg(long)]
    pub check_config: bool,
    /// Print the version and exit.
    #[arg(short = 'v', long)]
    pub version: bool,
    /// Where hostnqn/hostid/hostkey live when sys.conf does not say (tests).
    #[arg(long, hide = true, default_value = "/etc/nvme")]
    pub nvme_dir: PathBuf,
    /// Use the D-Bus bus at this address instead of the system bus (tests);
    /// also taken from $STAS_BUS_ADDRESS.
    #[arg(long = "bus-address", hide = true)]
    pub bus_address: Option<String>,
    /// Run the real service against a simulated kernel with this many
    /// controllers (benchmarks, demos; no root needed). Prints `@@steady`
    /// once all are up (stafd: connected and read; stacd: connected).
    #[arg(long, hide = true)]
    pub sim: Option<usize>,
}

impl CommonArgs {
    /// The bus to serve on: `--bus-address`, else `$STAS_BUS_ADDRESS`, else
    /// (`None`) the system bus.
    pub fn bus_address(&self) -> Option<String> {
        self.bus_address
            .clone()
            .or_else(|| std::env::var(crate::dbus::ADDRESS_ENV).ok())
    }
}

/// A daemon's configuration: what the start and the reload need of it.
pub trait DaemonConfig: Display {
    /// The `[Global]` section.
    fn global(&self) -> &GlobalOptions;
}

impl DaemonConfig for StafdConfig {
    fn global(&self) -> &GlobalOptions {
        &self.global
    }
}

impl DaemonConfig for StacdConfig {
    fn global(&self) -> &GlobalOptions {
        &self.global
    }
}

/// What a daemon reads from its files and the host before it runs.
#[derive(Debug)]
pub struct Started<C> {
    /// The daemon's configuration file (read again on SIGHUP).
    pub conf_file: PathBuf,
    /// The bus to serve on (`None`: the system bus).
    pub bus_address: Option<String>,
    /// Where /dev and /sys are.
    pub paths: KernelPaths,
    /// sys.conf.
    pub sys: SysConf,
    /// The daemon's configuration.
    pub cfg: C,
}

impl<C> Started<C> {
    /// (configuration file, bus address, kernel paths, sys.conf, configuration).
    pub fn into_parts(self) -> (PathBuf, Option<String>, KernelPaths, SysConf, C) {
        (
            self.conf_file,
            self.bus_address,
            self.paths,
            self.sys,
            self.cfg,
        )
    }
}

/// What the command line asks a daemon to do.
#[derive(Debug)]
pub enum Launch<C> {
    /// Nothing more: exit with this status (`--version`, `--check-config`,
    /// a failed start-up check).
    Exit(ExitCode),
    /// `--sim N`: the real service against a simulated kernel.
    Simulate {
        /// Controllers to simulate.
        count: usize,
        /// The bus to serve on, if any.
        bus_address: Option<String>,
    },
    /// The daemon proper, with what it read.
    Run(Started<C>),
}

impl<C> Launch<C> {
    /// Does it: `simulate` (count, bus address) or `run` on the daemon's
    /// runtime; the exit status.
    pub fn then<Sim, Run>(
        self,
        simulate: impl FnOnce(usize, Option<String>) -> Sim,
        run: impl FnOnce(Started<C>) -> Run,
    ) -> ExitCode
    where
        Sim: std::future::Future<Output = ExitCode>,
        Run: std::future::Future<Output = ExitCode>,
    {
        match self {
            Self::Exit(code) => code,
            Self::Simulate { count, bus_address } => block_on(simulate(count, bus_address)),
            Self::Run(started) => block_on(run(started)),
        }
    }
}

/// Decides what to do from the options, and does the start-up work both
/// daemons share: `load` reads the daemon's configuration file.
pub fn launch<C: DaemonConfig>(
    prog: &str,
    args: &CommonArgs,
    conf_file: &Path,
    load: impl Fn(&Path) -> Result<(C, Vec<Diagnostic>), ConfigError>,
) -> Launch<C> {
    if args.version {
        crate::print_version();
        return Launch::Exit(ExitCode::SUCCESS);
    }
    if args.check_config {
        return Launch::Exit(crate::check_config(
            &args.sys_conf,
            &args.nvme_dir,
            conf_file,
            load,
        ));
    }
    crate::logging::init(
        args.syslog || crate::logging::stderr_is_journal(),
        args.tron,
    );
    if let Some(count) = args.sim {
        return Launch::Simulate {
            count,
            bus_address: args.bus_address(),
        };
    }
    let paths = KernelPaths::default();
    if let Err(code) = crate::startup_checks(prog, &paths) {
        return Launch::Exit(code);
    }
    let sys = match crate::load_sysconf(&args.sys_conf, &args.nvme_dir) {
        Ok(s) => s,
        Err(code) => return Launch::Exit(code),
    };
    let cfg = match load_logged(conf_file, load) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return Launch::Exit(ExitCode::from(1));
        }
    };
    crate::logging::set_tron(args.tron || cfg.global().tron);
    Launch::Run(Started {
        conf_file: conf_file.to_path_buf(),
        bus_address: args.bus_address(),
        paths,
        sys,
        cfg,
    })
}

/// Runs `fut` on the daemon's runtime; exit status 1 if there is none.
pub fn block_on(fut: impl std::future::Future<Output = ExitCode>) -> ExitCode {
    match crate::runtime() {
        Some(rt) => rt.block_on(fut),
        None => ExitCode::from(1),
    }
}

/// The rest of a simulation's life (`--sim N`): READY=1, `@@steady N` on
/// stdout once `steady` holds, SIGHUP logged and ignored, until SIGTERM or
/// SIGINT; then `stop` and a wait for `service`.
pub async fn simulation<T>(
    mut signals: crate::ProcessSignals,
    count: usize,
    steady: impl FnMut() -> bool,
    service: tokio::task::JoinHandle<T>,
    stop: impl FnOnce(),
) -> ExitCode {
    let _ = crate::notify::notify("READY=1");
    if crate::wait_steady_or_stop(&mut signals, steady).await {
        println!("@@steady {count}");
        // SIGHUP has nothing to reload in a simulation, but must not end it.
        while signals.next_is_reload().await {
            log::info!("SIGHUP: nothing to reload in a simulation");
        }
    }
    stop();
    let _ = service.await;
    ExitCode::SUCCESS
}

/// Loads a daemon configuration, logging its diagnostics; the error names
/// the file.
pub fn load_logged<C>(
    path: &Path,
    load: impl Fn(&Path) -> Result<(C, Vec<Diagnostic>), ConfigError>,
) -> Result<C, ConfigError> {
    let (cfg, diags) = load(path)?;
    for d in diags {
        log::warn!("{d}");
    }
    Ok(cfg)
}

/// The kernel's uevent stream, opened before anything scans sysfs so no
/// event falls in between, and the daemon's last-known-configuration file
/// (in systemd's runtime directory when it gives one); `Err` is the exit
/// status.
pub fn open_events_and_lkc(prog: &str) -> Result<(UeventStream, LkcFile), ExitCode> {
    let uevents = UeventStream::open(crate::uevent_rcvbuf(), true).map_err(|e| {
        eprintln!("cannot listen to kernel events: {e}");
        ExitCode::from(1)
    })?;
    let lkc = LkcFile::new(
        LkcFile::default_path(prog, std::env::var("RUNTIME_DIRECTORY").ok().as_deref()),
        prog,
    );
    Ok((uevents, lkc))
}

/// A SIGHUP handler: reads `conf_file` again with `load` and hands the new
/// configuration to `apply` (after setting `tron` from it); a file that no
/// longer reads is logged and the last good configuration kept.
pub fn reloader<C: DaemonConfig>(
    conf_file: PathBuf,
    load: impl Fn(&Path) -> Result<(C, Vec<Diagnostic>), ConfigError>,
    mut apply: impl FnMut(C),
) -> impl FnMut() {
    move || match load_logged(&conf_file, &load) {
        Ok(c) => {
            crate::logging::set_tron(c.global().tron);
            apply(c);
            log::info!("configuration reloaded from {}", conf_file.display());
        }
        Err(e) => log::error!("{e}; keeping the last good configuration"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_broken_config_file_is_refused_so_sighup_keeps_the_last_good_one() {
        let dir = std::env::temp_dir().join(format!("stas-reload-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("good.conf");
        let broken = dir.join("broken.conf");
        std::fs::write(
            &good,
            "[Global]\nkato = soon\n[Controllers]\ncontroller = transport=tcp;traddr=10.0.0.1\n",
        )
        .unwrap();
        std::fs::write(&broken, "kato = 5\n[Global\n").unwrap();
        // Bad values are diagnostics: the file is still used, with defaults.
        let cfg = load_logged(&good, stas_config::load_stafd).unwrap();
        assert_eq!(cfg.global.kato, Some(30));
        assert_eq!(cfg.controllers.len(), 1);
        // An unparsable file is an error: the daemon keeps what it has.
        let err = load_logged(&broken, stas_config::load_stafd)
            .unwrap_err()
            .to_string();
        assert!(err.contains("broken.conf:1"), "{err}");
        // SIGHUP: the good file reaches the service, the broken one does not.
        let applied = std::cell::Cell::new(0);
        reloader(good, stas_config::load_stafd, |_| {
            applied.set(applied.get() + 1)
        })();
        reloader(broken, stas_config::load_stafd, |_| {
            applied.set(applied.get() + 1)
        })();
        assert_eq!(applied.get(), 1);
        std::fs::remove_dir_all(&dir).ok();
    }
}
