#![no_main]
//! Discovery log page: any bytes parse to a page or an error; every entry
//! that parsed emits back, and a canonical re-emit parses to the same entries.

use libfuzzer_sys::fuzz_target;
use nvmf_proto::dlp::{emit_log_page, DiscoveryLogPage};

fuzz_target!(|data: &[u8]| {
    let Ok(page) = DiscoveryLogPage::parse(data) else { return };
    assert!(page.entries.len() <= data.len() / 1024);
    let _ = page.check_complete();
    let good: Vec<_> = page.valid_entries().cloned().collect();
    for e in &good {
        let _ = e.stas_dict();
        let _ = (e.treq.cli_str(), e.eflags.cli_str());
    }
    let raw = emit_log_page(page.header.genctr, page.header.recfmt, &good).expect("parsed entries emit");
    let again = DiscoveryLogPage::parse(&raw).expect("emitted page parses");
    assert_eq!(again.valid_entries().cloned().collect::<Vec<_>>(), good);
});
