//! `nvmf-dcsim TOPOLOGY.toml [--state PATH]`: serve the topology's discovery
//! controllers until SIGTERM/SIGINT; SIGHUP re-reads the topology.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use nvmf_dcsim::{Recorder, Simulator, Topology, EXAMPLE};
use tokio::signal::unix::{signal, SignalKind};

/// Simulated NVMe-oF discovery controllers over NVMe/TCP.
#[derive(Debug, Parser)]
#[command(name = "nvmf-dcsim", version)]
struct Args {
    /// The topology file (TOML; `--example` prints one).
    #[arg(required_unless_present = "example")]
    topology: Option<PathBuf>,
    /// Write what was seen (associations, DIM, log page reads, AENs) to this JSON file.
    #[arg(long, value_name = "PATH")]
    state: Option<PathBuf>,
    /// Print a commented topology that uses every feature, and exit.
    #[arg(long)]
    example: bool,
    /// Log every command dropped or delayed, too.
    #[arg(long, short)]
    verbose: bool,
}

struct StderrLog;

impl log::Log for StderrLog {
    fn enabled(&self, m: &log::Metadata<'_>) -> bool {
        m.level() <= log::max_level()
    }
    fn log(&self, r: &log::Record<'_>) {
        if self.enabled(r.metadata()) {
            eprintln!(
                "nvmf-dcsim: {}: {}",
                r.level().as_str().to_lowercase(),
                r.args()
            );
        }
    }
    fn flush(&self) {}
}

static LOGGER: StderrLog = StderrLog;

fn main() -> ExitCode {
    let args = Args::parse();
    if args.example {
        print!("{EXAMPLE}");
        return ExitCode::SUCCESS;
    }
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(if args.verbose {
        log::LevelFilter::Debug
    } else {
        log::LevelFilter::Info
    });
    let Some(path) = args.topology else {
        return ExitCode::FAILURE;
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            log::error!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let topology = match Topology::load(&path) {
            Ok(t) => t,
            Err(e) => {
                log::error!("{e}");
                return ExitCode::FAILURE;
            }
        };
        let recorder = Recorder::new(args.state.clone());
        tokio::spawn(recorder.clone().run_writer());
        let mut sim = match Simulator::start(&topology, recorder.clone()).await {
            Ok(s) => s,
            Err(e) => {
                log::error!("{e}");
                return ExitCode::FAILURE;
            }
        };
        let (Ok(mut hup), Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::hangup()),
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            log::error!("cannot install the signal handlers");
            return ExitCode::FAILURE;
        };
        for (name, addr) in sim.listening() {
            println!("@@listening {name} {addr}");
        }
        loop {
            tokio::select! {
                _ = hup.recv() => {
                    match Topology::load(&path) {
                        Ok(t) => match sim.apply(&t).await {
                            Ok(()) => log::info!("reloaded {}", path.display()),
                            Err(e) => log::error!("reload: {e}; the running topology is kept"),
                        },
                        Err(e) => log::error!("reload: {e}; the running topology is kept"),
                    }
                }
                _ = term.recv() => break,
                _ = int.recv() => break,
            }
        }
        drop(sim);
        if let Err(e) = recorder.write_now() {
            log::error!("cannot write the state file: {e}");
        }
        ExitCode::SUCCESS
    })
}
