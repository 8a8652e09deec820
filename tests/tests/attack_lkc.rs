//! kill -9 at random moments while a daemon writes its last-known
//! configuration, 200 rounds: the file is always a whole version, the old or
//! a newer one, and temporary files of interrupted writes never pile up (the
//! next start removes them). The writer is `stas-lkc-writer`, which saves
//! through the daemons' own `LkcFile`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test may panic

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use stas_daemon::lkc::LkcFile;

const ROUNDS: usize = 200;

/// A small deterministic generator: the same moments on every run.
fn next(seed: &mut u64) -> u64 {
    *seed = seed
        .wrapping_mul(6_364_136_223_846_793_005)
        .wrapping_add(1_442_695_040_888_963_407);
    *seed >> 33
}

#[test]
fn kill_9_during_writes_leaves_a_whole_version_and_no_pile_of_temps() {
    let dir = std::env::temp_dir().join(format!("stas-attack-lkc-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    let path = dir.join("last-known-config.bin");
    let lkc = LkcFile::new(&path, "stacd");
    let mut seed = 0x5eed_u64;
    let mut version = 0_u64;
    let (mut removed, mut torn_rounds, mut unchanged_rounds) = (0_usize, 0_usize, 0_usize);
    let start = Instant::now();
    for round in 0..ROUNDS {
        let mut writer = Command::new(env!("CARGO_BIN_EXE_stas-lkc-writer"))
            .arg(&path)
            .arg(version.to_string())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        // Wait for its start-up cleanup, then kill it mid-stream.
        let mut first = String::new();
        BufReader::new(writer.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        removed += first
            .trim()
            .strip_prefix("removed ")
            .and_then(|n| n.parse::<usize>().ok())
            .unwrap_or_else(|| panic!("round {round}: writer said {first:?}"));
        std::thread::sleep(Duration::from_micros(next(&mut seed) % 20_000));
        writer.kill().unwrap();
        let status = writer.wait().unwrap();
        assert!(
            status.code().is_none(),
            "round {round}: the writer ended by itself: {status}"
        );

        let loaded: Option<(u64, Vec<u64>)> = lkc
            .load()
            .unwrap_or_else(|e| panic!("round {round}: not a whole version: {e}"));
        match loaded {
            Some((k, body)) => {
                assert!(
                    body.len() == 512 && body.iter().all(|&b| b == k),
                    "round {round}: version {k} has a mixed body"
                );
                assert!(
                    k >= version,
                    "round {round}: went back from {version} to {k}"
                );
                if k == version {
                    unchanged_rounds += 1;
                }
                version = k;
            }
            None => assert_eq!(version, 0, "round {round}: the file vanished"),
        }
        let others: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n != "last-known-config.bin")
            .collect();
        assert!(
            others.len() <= 1,
            "round {round}: temporary files pile up: {others:?}"
        );
        torn_rounds += others.len();
    }
    // The next start cleans what the last kill left.
    removed += lkc.remove_stale_temps();
    let left = std::fs::read_dir(&dir).unwrap().count();
    println!(
        "{ROUNDS} kill -9 rounds in {:.1} s: {version} versions written, every read a whole one; \
         {torn_rounds} rounds left a temporary file, {removed} removed at the next start; \
         {unchanged_rounds} rounds killed before their first save",
        start.elapsed().as_secs_f64()
    );
    assert!(
        version > ROUNDS as u64,
        "the writer barely wrote: {version}"
    );
    assert_eq!(
        removed, torn_rounds,
        "every leftover removed at the next start"
    );
    assert_eq!(left, 1, "only the file itself is left");
    std::fs::remove_dir_all(&dir).unwrap();
}
