#![no_main]
//! Supported Log Pages: parse, emit byte-exact, read the discovery features.

use libfuzzer_sys::fuzz_target;
use nvmf_proto::logpages::{GetLogPage, SupportedLogPages};

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = SupportedLogPages::parse(data) {
        assert_eq!(&p.emit()[..], &data[..1024]);
        let _ = p.discovery_features().preferred_lsp();
    }
    if data.len() >= 20 {
        let mut cdw = [0u32; 5];
        for (i, c) in cdw.iter_mut().enumerate() {
            *c = u32::from_le_bytes([data[i * 4], data[i * 4 + 1], data[i * 4 + 2], data[i * 4 + 3]]);
        }
        let cmd = GetLogPage::from_cdws(cdw);
        for chunk in cmd.chunked(false).take(4) {
            let _ = chunk.cdws();
        }
    }
});
