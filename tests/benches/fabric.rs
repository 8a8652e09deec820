//! The fabric benchmark: boots the lab once per N and measures, side by
//! side on the same kernel, how fast N NVMe/TCP I/O controllers get
//! connected and disconnected by `nvme connect-all`/`disconnect-all`, by a
//! bare loop over `/dev/nvme-fabrics` and `delete_controller` (the floors),
//! by stacd from stacd.conf and by stafd + stacd from a discovery log page;
//! plus zoning latency, SIGTERM exit time and memory (the `bench` scenario
//! of stas-lab-guest). Prints a table per N and writes it with an SVG plot
//! under `<target>/bench/`. Prints figures; asserts nothing.
//!
//! Run: `scripts/bench` (installs QEMU and friends), or
//! `cargo bench -p stas-tests --bench fabric`. Knobs: `STAS_BENCH_N`
//! (default `100 400`), `STAS_BENCH_PAR` (thread counts of the raw floors,
//! default `1 4 8 16`), `STAS_BENCH_CAP_SECS` (per-method cap, default 180).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use stas_tests::fabric::FabricResults;
use stas_tests::lab::{build_static, host_binary_with_libs, workspace_root, Guest, Lab};

fn env_list(name: &str, default: &str) -> Vec<u64> {
    std::env::var(name)
        .unwrap_or_else(|_| default.into())
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter_map(|w| w.parse().ok())
        .filter(|v| *v > 0)
        .collect()
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .map(|d| {
            if d.is_absolute() {
                d
            } else {
                workspace_root().join(d)
            }
        })
        .unwrap_or_else(|| workspace_root().join("target"))
}

fn commit() -> String {
    Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(workspace_root())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "unknown".into())
}

fn write(path: &Path, data: &[u8]) {
    if let Err(e) = std::fs::write(path, data) {
        println!("cannot write {}: {e}", path.display());
    }
}

/// Kernel console lines about NVMe (or worse), without their timestamps,
/// with controller numbers as X and quoted names as …, counted: (count, line), most frequent first.
fn kernel_notes(console: &str) -> Vec<(usize, String)> {
    let interesting = |l: &&str| {
        [
            "nvme",
            "BUG",
            "WARNING",
            "Out of memory",
            "hung_task",
            "blocked for more",
        ]
        .iter()
        .any(|k| l.contains(k))
    };
    let mut counts: std::collections::BTreeMap<String, usize> = Default::default();
    for line in console.lines().filter(interesting) {
        let text = match line.split_once("] ") {
            Some((stamp, rest)) if stamp.starts_with('[') => rest,
            _ => line,
        };
        let mut generic = String::new();
        let mut rest = text;
        while let Some(i) = rest.find("nvme") {
            let (head, tail) = rest.split_at(i + 4);
            generic.push_str(head);
            let digits = tail.bytes().take_while(u8::is_ascii_digit).count();
            if digits > 0 {
                generic.push('X');
            }
            rest = tail.get(digits..).unwrap_or_default();
        }
        generic.push_str(rest);
        // Quoted names (subsystem NQNs) vary line by line; group them.
        let generic: String = generic
            .split('"')
            .enumerate()
            .map(|(i, part)| if i % 2 == 1 { "…" } else { part })
            .collect::<Vec<_>>()
            .join("\"");
        *counts.entry(generic).or_default() += 1;
    }
    let mut v: Vec<(usize, String)> = counts.into_iter().map(|(l, c)| (c, l)).collect();
    v.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    v
}

fn main() {
    let ns: Vec<u32> = env_list("STAS_BENCH_N", "100 400")
        .into_iter()
        .filter_map(|n| u32::try_from(n).ok())
        .collect();
    let par = env_list("STAS_BENCH_PAR", "1 4 8 16");
    let widths = env_list("STAS_BENCH_WIDTHS", "1 4");
    let cap = env_list("STAS_BENCH_CAP_SECS", "180")
        .first()
        .copied()
        .unwrap_or(180);
    let lab = match Lab::prepare() {
        Ok(l) => l,
        Err(e) => {
            println!("the lab cannot start: {e}");
            return;
        }
    };
    let bins = match build_static(&[
        ("stas-tests", "stas-lab-guest"),
        ("stafd", "stafd"),
        ("stacd", "stacd"),
    ]) {
        Ok(b) => b,
        Err(e) => {
            println!("cannot build the static binaries: {e}");
            return;
        }
    };
    let host_files = ["/usr/sbin/nvme", "/usr/bin/dbus-daemon"]
        .iter()
        .map(|p| host_binary_with_libs(Path::new(p)))
        .collect::<Result<Vec<_>, _>>();
    let host_files = match host_files {
        Ok(f) => f.into_iter().flatten().collect::<Vec<_>>(),
        Err(e) => {
            println!("nvme-cli or dbus-daemon for the guest: {e} (scripts/bench installs them)");
            return;
        }
    };
    let out = target_dir().join("bench");
    if let Err(e) = std::fs::create_dir_all(&out) {
        println!("cannot create {}: {e}", out.display());
        return;
    }
    let par_arg = par.iter().map(u64::to_string).collect::<Vec<_>>().join(",");
    let widths_arg = widths
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let commit = commit();
    for n in ns {
        let script = format!(
            ". /lab.sh\n/bin/stas-lab-guest bench {n} {cap} {par_arg} {widths_arg}\nrc=$?\n\
             for f in /tmp/blobs/*; do lab_put \"$(basename \"$f\")\" \"$f\"; done\nexit $rc\n"
        );
        // Every method may take up to the cap; resets and boot on top.
        let methods = 2 * par.len() as u64 + widths.len() as u64 + 10;
        let mut guest = Guest::new(format!("bench-{n}"), script)
            .file(&bins[0], "/bin/stas-lab-guest")
            .file(&bins[1], "/bin/stafd")
            .file(&bins[2], "/bin/stacd")
            .files(host_files.clone())
            .timeout(Duration::from_secs(cap * methods + 600));
        guest.memory_mib = (1024 + 8 * n).max(2048);
        println!(
            "\n== N = {n}: booting the lab ({} MiB, per-method cap {cap} s, raw floors with {par_arg} threads) ...",
            guest.memory_mib
        );
        let run = match lab.run(&guest) {
            Ok(r) => r,
            Err(e) => {
                println!("N = {n}: the lab failed: {e}");
                continue;
            }
        };
        let results = FabricResults::from_run(n, cap as f64, &run);
        let heading = format!(
            "stas fabric benchmark, N = {n} (commit {commit}, kernel {}, QEMU TCG 2 vCPUs)",
            lab.kernel_release()
        );
        let mut notes = vec![format!(
            "one boot: {:.0} s (boot {:.1} s); times from the guest's clock, \
             daemon times to within the 0.1 s sampling period",
            run.wall_time.as_secs_f64(),
            run.boot_time.as_secs_f64()
        )];
        if run.timed_out || run.exit_code != Some(0) {
            notes.push(format!(
                "the scenario ended with exit code {:?}{}",
                run.exit_code,
                if run.timed_out { " (VM timed out)" } else { "" }
            ));
        }
        notes.extend(results.failed.iter().map(|f| format!("failed: {f}")));
        let kernel = kernel_notes(&run.console);
        if !kernel.is_empty() {
            let total: usize = kernel.iter().map(|(c, _)| c).sum();
            notes.push(format!(
                "{total} kernel console lines about nvme or worse (full log: {}):",
                run.log.display()
            ));
            notes.extend(kernel.iter().take(8).map(|(c, l)| format!("  {c} × `{l}`")));
        }
        let table = results.table();
        let notes_text: String = notes
            .iter()
            .map(|l| match l.strip_prefix("  ") {
                Some(sub) => format!("  - {sub}\n"),
                None => format!("* {l}\n"),
            })
            .collect();
        println!("\n{heading}\n\n{table}\n{notes_text}");
        let base = out.join(format!("fabric-{n}"));
        write(
            &base.with_extension("md"),
            format!("# {heading}\n\n{table}\n{notes_text}").as_bytes(),
        );
        write(
            &base.with_extension("svg"),
            results
                .svg(&format!(
                    "N = {n}: live I/O controllers per connect method ({commit})"
                ))
                .as_bytes(),
        );
        for log in ["stacd.log", "stafd.log", "nvme-connect-all.log"] {
            if let Some(data) = run.blob(log) {
                write(&out.join(format!("fabric-{n}-{log}")), &data);
            }
        }
        println!(
            "wrote {}.md and .svg (daemon logs: {}-stacd.log, -stafd.log)",
            base.display(),
            base.display()
        );
    }
}
