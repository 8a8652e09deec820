#![no_main]
//! mDNS messages: any bytes parse to a message or an error; the TP8009 TXT
//! reading takes any items; a parsed message with only the record types
//! stas keeps emits back and parses to the same message.

use libfuzzer_sys::fuzz_target;
use nvmf_proto::mdns::{txt_dict, txt_nqn, txt_transport, Message, RData};

fuzz_target!(|data: &[u8]| {
    let Ok(m) = Message::parse(data) else { return };
    assert!(m.questions.len() + m.records().count() <= data.len() / 5);
    for r in m.records() {
        let _ = r.name.to_string();
        if let RData::Txt(items) = &r.data {
            let d = txt_dict(items);
            let _ = (txt_transport(&d), txt_nqn(&d));
        }
    }
    if m.records().any(|r| matches!(r.data, RData::Other(_))) {
        return;
    }
    if let Ok(raw) = m.emit() {
        let again = Message::parse(&raw).expect("an emitted message parses");
        assert_eq!(again, m);
    }
});
