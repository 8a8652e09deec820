#![no_main]
//! NVMe/TCP PDUs: the first byte picks the negotiated digests (bit 0
//! header, bit 1 data), the rest is one PDU. A PDU that parses emits and
//! parses again to the same value; a capsule's SQE goes through the fabrics
//! decoder, and its data through the Connect data parser (round-tripped
//! when its NQNs fit on emit).

use libfuzzer_sys::fuzz_target;
use nvmf_proto::fabrics::{ConnectData, FabricsCommand};
use nvmf_proto::tcp::{CommonHeader, Digests, Pdu};

fuzz_target!(|data: &[u8]| {
    let Some((&dg, raw)) = data.split_first() else {
        return;
    };
    let digests = Digests::from_bits(dg);
    if let Ok(h) = CommonHeader::parse(raw) {
        let _ = h.check(digests);
    }
    let Ok(pdu) = Pdu::parse(raw, digests) else {
        return;
    };
    let _ = pdu.type_name();
    let again = pdu.emit(digests).expect("a parsed PDU emits");
    assert_eq!(
        Pdu::parse(&again, digests).expect("an emitted PDU parses"),
        pdu
    );
    if let Pdu::CapsuleCmd(c) = &pdu {
        if let Ok(cmd) = FabricsCommand::from_sqe(&c.sqe) {
            let sqe = cmd.to_sqe(c.sqe.command_id);
            assert_eq!(FabricsCommand::from_sqe(&sqe).expect("fabrics SQE"), cmd);
        }
        if let Ok(d) = ConnectData::parse(&c.data) {
            if let Ok(bytes) = d.emit() {
                assert_eq!(ConnectData::parse(&bytes).expect("emitted Connect data"), d);
            }
        }
    }
});
