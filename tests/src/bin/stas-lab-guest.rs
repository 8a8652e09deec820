//! Runs inside the lab VM (a static musl binary): sets up the kernel NVMe
//! target through configfs and checks, with nvmf-kernel, what the kernel
//! does. Results go to stdout in the lab's line protocol:
//!
//! * `@@check NAME ok` / `@@check NAME fail 1`, then `@@detail NAME text`
//! * `@@metric NAME VALUE UNIT`
//! * files under /tmp/blobs/ (the scenario script sends them with `lab_put`)
//!
//! Usage: `stas-lab-guest kernel` (or stafd, stacd, zeroconf, demo, `bench N CAP_SECS PAR,...`). Exit status 1 if any check failed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test harness may panic

use std::path::Path;

mod guest_bench;
mod guest_bench_probe;
mod guest_cdc;
mod guest_faults;
mod guest_kernel;
mod guest_stacd;
mod guest_stafd;
mod guest_zeroconf;

const HOSTNQN: &str = "nqn.2014-08.org.nvmexpress:uuid:4c4c4544-0000-1000-8000-00000000cafe";
const HOSTID: &str = "4c4c4544-0000-1000-8000-00000000cafe";

type Outcome = Result<String, String>;

struct Report {
    failed: u32,
}

impl Report {
    fn check(&mut self, name: &str, r: Outcome) {
        match r {
            Ok(detail) => {
                println!("@@check {name} ok");
                if !detail.is_empty() {
                    println!("@@detail {name} {}", detail.replace('\n', " | "));
                }
            }
            Err(detail) => {
                self.failed += 1;
                println!("@@check {name} fail 1");
                println!("@@detail {name} {}", detail.replace('\n', " | "));
            }
        }
    }

    fn metric(&self, name: &str, value: f64, unit: &str) {
        println!("@@metric {name} {value:.3} {unit}");
    }

    fn blob(&self, name: &str, data: &[u8]) {
        std::fs::create_dir_all("/tmp/blobs").unwrap();
        std::fs::write(Path::new("/tmp/blobs").join(name), data).unwrap();
    }
}

fn ensure(cond: bool, what: impl Into<String>) -> Result<(), String> {
    if cond {
        Ok(())
    } else {
        Err(what.into())
    }
}

fn main() {
    let scenario = std::env::args().nth(1).unwrap_or_default();
    let mut r = Report { failed: 0 };
    match scenario.as_str() {
        "kernel" => guest_kernel::scenario(&mut r),
        "stafd" => guest_stafd::scenario(&mut r),
        "stacd" => guest_stacd::scenario(&mut r),
        "bench" => {
            let args: Vec<String> = std::env::args().skip(2).collect();
            guest_bench::scenario(&mut r, &args);
        }
        "zeroconf" => guest_zeroconf::scenario(&mut r),
        "demo" => std::process::exit(guest_stacd::demo()),
        other => {
            eprintln!(
                "stas-lab-guest: unknown scenario {other:?}; known: kernel, stafd, stacd, bench, zeroconf, demo"
            );
            std::process::exit(2);
        }
    }
    println!("@@summary {} failed", r.failed);
    std::process::exit(i32::from(r.failed > 0));
}
