//! Log page handling seen from the log: what a DC's pages make stafd
//! report, against the simulated kernel on tokio's paused clock.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may panic

use std::sync::Mutex;

use nvmf_proto::types::DcType;

use crate::service::Input;
use crate::sim::{DcSim as _, SimKernel};
use crate::tests::{config, nvme, start_with, until};

/// The address of the DCs whose log lines [`captured`] keeps.
const CAPTURED_DC: &str = "10.0.0.66";

/// The log lines about [`CAPTURED_DC`]: one logger for the whole test
/// process, so it keeps only those (tests that count log lines use a DC at
/// that address, one test at a time).
struct Capture(Mutex<Vec<(log::Level, String)>>);

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        let line = record.args().to_string();
        if line.contains(CAPTURED_DC) {
            self.0.lock().unwrap().push((record.level(), line));
        }
    }
    fn flush(&self) {}
}

static CAPTURE: Capture = Capture(Mutex::new(Vec::new()));

/// Starts capturing (once per process); the lines so far, with `text`.
fn captured(level: log::Level, text: &str) -> usize {
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| {
        if log::set_logger(&CAPTURE).is_ok() {
            log::set_max_level(log::LevelFilter::Debug);
        }
    });
    CAPTURE
        .0
        .lock()
        .unwrap()
        .iter()
        .filter(|(l, line)| *l == level && line.contains(text))
        .count()
}

/// A page with a bad entry, read again and again (AENs, a reload) while it
/// does not change: the entry is reported at warning once, then at debug;
/// a new page (GENCTR moved) with it is reported again.
#[tokio::test(start_paused = true)]
async fn a_bad_log_page_entry_is_reported_once_per_page_not_per_read() {
    let bad = "entry ignored";
    assert_eq!(captured(log::Level::Warn, bad), 0);
    let sim = SimKernel::new();
    sim.add_dc(
        CAPTURED_DC,
        "8009",
        DcType::None,
        vec![nvme("10.0.0.9", "nqn.a"), nvme("10.0.0.10", "nqn.b")],
    );
    sim.with_dc(CAPTURED_DC, |d| {
        d.genctr = 5;
        d.bad_entries = vec![1];
    });
    let cfg = format!("[Controllers]\ncontroller = transport=tcp;traddr={CAPTURED_DC}\n");
    let h = start_with(sim.clone(), config(&cfg), None);
    let d = h.steady(CAPTURED_DC).await;
    assert_eq!(d.log_pages.len(), 1, "the bad entry is left out");
    assert_eq!(captured(log::Level::Warn, bad), 1);

    let reads = || sim.state().log_reads.len();
    for n in 2..=4 {
        h.aen("nvme0");
        until("read again", || reads() == n).await;
        h.steady(CAPTURED_DC).await;
    }
    h.handle.send(Input::Reload(config(&cfg)));
    until("read after the reload", || reads() == 5).await;
    h.steady(CAPTURED_DC).await;
    assert_eq!(captured(log::Level::Warn, bad), 1, "same page, no news");
    assert_eq!(
        captured(log::Level::Debug, bad),
        4,
        "still visible with tron"
    );

    sim.with_dc(CAPTURED_DC, |d| d.genctr = 6);
    h.aen("nvme0");
    until("the new page read", || reads() == 6).await;
    h.steady(CAPTURED_DC).await;
    assert_eq!(captured(log::Level::Warn, bad), 2, "a new page is news");
    h.stop().await;
}

/// Found by nvmf-dcsim in the lab: the LSP chosen from Supported Log
/// Pages outlived a reload that turned PLEO off.
#[tokio::test(start_paused = true)]
async fn pleo_turned_off_by_a_reload_is_not_asked_for_again() {
    let sim = SimKernel::new();
    sim.add_dc(
        "10.0.0.1",
        "8009",
        DcType::Ddc,
        vec![nvme("10.0.0.9", "nqn.a")],
    );
    sim.with_dc("10.0.0.1", |d| d.lid0 = Some(0b010));
    let h = start_with(sim, config(crate::tests::ONE_DC), None);
    h.steady("10.0.0.1").await;
    assert_eq!(
        h.sim.state().log_reads,
        [("nvme0".to_owned(), 2)],
        "PLEO asked for"
    );
    h.handle.send(Input::Reload(config(&format!(
        "[Global]\npleo = disabled\n{}",
        crate::tests::ONE_DC
    ))));
    until("the reload re-read the log", || {
        h.sim.state().log_reads.len() == 2
    })
    .await;
    assert_eq!(
        h.sim.state().log_reads[1],
        ("nvme0".to_owned(), 0),
        "no PLEO after pleo = disabled"
    );
    h.stop().await;
}
