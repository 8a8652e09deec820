#![no_main]
//! NBFT: parse, emit, parse again to the same value.

use libfuzzer_sys::fuzz_target;
use nvmf_proto::nbft::Nbft;

fuzz_target!(|data: &[u8]| {
    let Ok(t) = Nbft::parse(data) else { return };
    if let Ok(raw) = t.emit() {
        let again = Nbft::parse(&raw).expect("emitted NBFT parses");
        assert_eq!(again, t);
    }
});
