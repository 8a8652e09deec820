//! Logging for the daemons: lines on stderr, prefixed with their syslog
//! priority (`<3>`, `<6>`, ...) when journald reads stderr, so the journal
//! gets the levels right without libsystemd. `tron` switches DEBUG on and off
//! at run time (D-Bus `tron`, SIGHUP).

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

use log::{Level, LevelFilter, Log, Metadata, Record};

static TRON: AtomicBool = AtomicBool::new(false);

struct Logger {
    priorities: bool,
}

fn priority(level: Level) -> u8 {
    match level {
        Level::Error => 3,
        Level::Warn => 4,
        Level::Info => 6,
        Level::Debug | Level::Trace => 7,
    }
}

impl Log for Logger {
    fn enabled(&self, m: &Metadata<'_>) -> bool {
        m.level()
            <= if TRON.load(Ordering::Relaxed) {
                Level::Debug
            } else {
                Level::Info
            }
    }

    fn log(&self, r: &Record<'_>) {
        if !self.enabled(r.metadata()) {
            return;
        }
        let mut err = std::io::stderr().lock();
        let _ = if self.priorities {
            writeln!(err, "<{}>{}", priority(r.level()), r.args())
        } else {
            writeln!(err, "{}", r.args())
        };
    }

    fn flush(&self) {}
}

/// Installs the logger; `journal` selects priority prefixes (set it when
/// `JOURNAL_STREAM` says stderr is the journal). Safe to call twice (the
/// second call only changes tron).
pub fn init(journal: bool, tron: bool) {
    set_tron(tron);
    let logger: &'static Logger = Box::leak(Box::new(Logger {
        priorities: journal,
    }));
    if log::set_logger(logger).is_ok() {
        log::set_max_level(LevelFilter::Debug);
    }
}

/// Whether stderr is read by journald (systemd sets `JOURNAL_STREAM`).
pub fn stderr_is_journal() -> bool {
    std::env::var_os("JOURNAL_STREAM").is_some()
}

/// Turns debug logging on or off.
pub fn set_tron(on: bool) {
    TRON.store(on, Ordering::Relaxed);
}

/// Whether debug logging is on.
pub fn tron() -> bool {
    TRON.load(Ordering::Relaxed)
}

/// The level name D-Bus reports (`DEBUG` or `INFO`).
pub fn level_name() -> &'static str {
    if tron() {
        "DEBUG"
    } else {
        "INFO"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priorities_and_tron() {
        assert_eq!(priority(Level::Error), 3);
        assert_eq!(priority(Level::Info), 6);
        set_tron(true);
        assert_eq!(level_name(), "DEBUG");
        set_tron(false);
        assert_eq!(level_name(), "INFO");
    }
}
