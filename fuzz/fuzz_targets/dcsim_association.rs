#![no_main]
//! nvmf-dcsim's association state machine fed any stream of PDUs, as its
//! reader frames them: it must never panic, and whatever it answers must
//! emit. The first byte picks the digests (bits 0-1), the DC of the
//! example topology (bits 2-3), whether the association starts already
//! connected (bit 4: ICReq and Connect done here, so mutations reach the
//! admin commands) and whether a topology change follows every PDU (bit 5).

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use nvmf_dcsim::association::{Association, Output};
use nvmf_dcsim::dc::Dc;
use nvmf_dcsim::state::Recorder;
use nvmf_dcsim::topology::Topology;
use nvmf_proto::fabrics::{ConnectData, FabricsCommand};
use nvmf_proto::tcp::{CapsuleCmd, CommonHeader, Digests, IcReq, Pdu, COMMON_HEADER_LEN};

static TOPOLOGY: OnceLock<Topology> = OnceLock::new();

fn feed(a: &mut Association, p: Pdu, digests: Digests) -> bool {
    let out = a.on_pdu(p);
    for o in &out {
        if let Output::Send { pdus, .. } = o {
            for p in pdus {
                p.emit(digests).expect("what the simulator sends emits");
            }
        }
    }
    !out.iter().any(|o| matches!(o, Output::Close(_)))
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, mut rest)) = data.split_first() else {
        return;
    };
    let topology = TOPOLOGY.get_or_init(|| {
        Topology::parse(nvmf_dcsim::EXAMPLE, "example").expect("the example loads")
    });
    let spec = topology.dcs[usize::from(mode >> 2 & 3) % topology.dcs.len()].clone();
    let dc = Dc::new(spec.clone(), Recorder::new(None));
    let mut a = Association::new(1, dc.clone(), "fuzz".into());
    let mut digests = Digests {
        header: mode & 1 != 0,
        data: mode & 2 != 0,
    };
    if mode & 0x10 != 0 {
        feed(
            &mut a,
            Pdu::IcReq(IcReq {
                pfv: 0,
                hpda: 0,
                digests,
                maxr2t: 0,
            }),
            Digests::default(),
        );
        let data = ConnectData {
            hostid: [1; 16],
            cntlid: 0xffff,
            subnqn: nvmf_proto::WELL_KNOWN_DISCOVERY_NQN.into(),
            hostnqn: "nqn.2014-08.org.nvmexpress:uuid:00000000-0000-0000-0000-000000000001".into(),
        }
        .emit()
        .expect("connect data emits")
        .to_vec();
        let sqe = FabricsCommand::Connect {
            recfmt: 0,
            qid: 0,
            sqsize: 31,
            cattr: 0,
            kato: 0,
        }
        .to_sqe(0);
        feed(&mut a, Pdu::CapsuleCmd(CapsuleCmd { sqe, data }), digests);
    } else {
        digests = Digests::default();
    }
    let mut changed = spec;
    while rest.len() >= COMMON_HEADER_LEN {
        let Ok(h) = CommonHeader::parse(&rest[..COMMON_HEADER_LEN]) else {
            return;
        };
        let plen = usize::try_from(h.plen)
            .unwrap_or(usize::MAX)
            .clamp(COMMON_HEADER_LEN, rest.len());
        let (pdu, tail) = rest.split_at(plen);
        rest = tail;
        let Ok(p) = Pdu::parse(pdu, digests) else {
            return;
        };
        if let Pdu::IcReq(r) = &p {
            digests = r.digests;
        }
        if !feed(&mut a, p, digests) {
            return;
        }
        if mode & 0x20 != 0 {
            // Each change drops one entry, until none is left.
            if !changed.entries.is_empty() {
                changed.entries.remove(0);
            }
            dc.replace(changed.clone());
            if a.on_change().iter().any(|o| matches!(o, Output::Close(_))) {
                return;
            }
        }
    }
});
