#![no_main]
//! AEN: the uevent text parser and the dword codec.

use libfuzzer_sys::fuzz_target;
use nvmf_proto::aen::AenEvent;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(e) = AenEvent::from_uevent_value(text) {
            let dw = e.to_dword().expect("decoded type fits");
            assert_eq!(AenEvent::from_dword(dw), e);
        }
    }
    if data.len() >= 4 {
        let dw = u32::from_le_bytes([data[0], data[1], data[2], data[3]]);
        let _ = AenEvent::from_dword(dw).is_discovery_log_change();
    }
});
