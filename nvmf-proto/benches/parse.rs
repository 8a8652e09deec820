//! Discovery log page parse throughput: a 1,000-entry page (≈1 MB), parsed
//! repeatedly; prints bytes/s and entries/s. A figure, not an assertion.
//!
//! Run: `cargo bench -p nvmf-proto --bench parse`

use std::hint::black_box;
use std::time::{Duration, Instant};

use nvmf_proto::dlp::{emit_log_page, DiscoveryLogEntry, DiscoveryLogPage, Tsas};
use nvmf_proto::types::{AdrFam, SecType, SubType, TrType};

fn page(n: usize) -> Vec<u8> {
    let entries: Vec<DiscoveryLogEntry> = (0..n)
        .map(|i| DiscoveryLogEntry {
            trtype: TrType::Tcp,
            adrfam: if i % 2 == 0 {
                AdrFam::Ipv4
            } else {
                AdrFam::Ipv6
            },
            subtype: if i % 50 == 0 {
                SubType::Referral
            } else {
                SubType::Nvme
            },
            portid: u16::try_from(i % 4).unwrap_or(0),
            trsvcid: "4420".into(),
            subnqn: format!(
                "nqn.1988-11.com.example:array-{:04}:subsystem-{i:06}",
                i / 100
            ),
            traddr: if i % 2 == 0 {
                format!("10.{}.{}.{}", i / 65536 % 256, i / 256 % 256, i % 256)
            } else {
                format!("fd00:10:20::{i:x}")
            },
            tsas: Tsas::tcp(SecType::None),
            ..Default::default()
        })
        .collect();
    emit_log_page(42, 0, &entries).unwrap_or_default()
}

fn main() {
    let raw = page(1000);
    let mut iters = 0u64;
    let mut checksum = 0usize;
    // Warm up, then measure for about two seconds.
    for _ in 0..20 {
        checksum += DiscoveryLogPage::parse(black_box(&raw)).map_or(0, |p| p.entries.len());
    }
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(2) {
        for _ in 0..10 {
            let p = DiscoveryLogPage::parse(black_box(&raw));
            checksum += p.map_or(0, |p| black_box(p).valid_entries().count());
        }
        iters += 10;
    }
    let secs = start.elapsed().as_secs_f64();
    let bytes = raw.len() as f64 * iters as f64;
    println!(
        "dlp parse: 1000-entry page ({} bytes): {:.0} pages/s, {:.2} GB/s, {:.1} M entries/s, {:.1} µs/page (checksum {checksum})",
        raw.len(),
        iters as f64 / secs,
        bytes / secs / 1e9,
        iters as f64 * 1000.0 / secs / 1e6,
        secs / iters as f64 * 1e6,
    );
}
