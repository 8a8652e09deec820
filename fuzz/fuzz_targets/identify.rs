#![no_main]
//! Identify Controller: parse, then emit, then parse again to the same value.

use libfuzzer_sys::fuzz_target;
use nvmf_proto::identify::IdentifyController;

fuzz_target!(|data: &[u8]| {
    let Ok(id) = IdentifyController::parse(data) else { return };
    let raw = id.emit().expect("parsed identify emits");
    assert_eq!(IdentifyController::parse(&raw).expect("emitted identify parses"), id);
});
