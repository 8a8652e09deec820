#![no_main]
//! DIM payload: parse, emit, parse again to the same value.

use libfuzzer_sys::fuzz_target;
use nvmf_proto::dim::DimData;

fuzz_target!(|data: &[u8]| {
    let Ok(d) = DimData::parse(data) else { return };
    // A parsed payload can hold an attribute whose text re-pads differently
    // (e.g. a symbolic name that lost trailing spaces), so only a value that
    // emits is compared after the second parse.
    if let Ok(raw) = d.emit() {
        let again = DimData::parse(&raw).expect("emitted DIM parses");
        assert_eq!(again, d);
    }
});
