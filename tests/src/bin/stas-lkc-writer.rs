//! Test helper for `tests/tests/attack_lkc.rs`: does what a daemon does with
//! its last-known configuration, as fast as it can, until it is killed.
//! At start it removes the temporary files of interrupted writes and prints
//! how many; then it saves versions `from+1`, `from+2`, ... forever. Each
//! version is `(k, [k; 512])`, so a torn or mixed file cannot pass for one.
//!
//! Usage: stas-lkc-writer <path> <from>

use std::process::ExitCode;

use stas_daemon::lkc::LkcFile;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let (Some(path), Some(from)) = (args.get(1), args.get(2).and_then(|s| s.parse::<u64>().ok()))
    else {
        eprintln!("usage: stas-lkc-writer <path> <from>");
        return ExitCode::from(2);
    };
    let lkc = LkcFile::new(path, "stacd");
    println!("removed {}", lkc.remove_stale_temps());
    for k in from.saturating_add(1).. {
        if let Err(e) = lkc.save(&(k, vec![k; 512])) {
            eprintln!("{e}");
            return ExitCode::from(1);
        }
    }
    ExitCode::SUCCESS
}
