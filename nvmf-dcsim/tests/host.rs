//! The simulator against a small NVMe/TCP host written from the PDUs of
//! nvmf-proto, on loopback: what the Linux host sends, and the faults.
//! (The real kernel meets it in the lab: tests/tests/lab_stafd.rs runs
//! tests/src/bin/guest_cdc.rs.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test may panic

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use nvmf_dcsim::{Recorder, Simulator, Topology};
use nvmf_proto::command::{Cqe, Sgl, Sqe, Status};
use nvmf_proto::dim::{DimData, Registration, Tas};
use nvmf_proto::dlp::DiscoveryLogPage;
use nvmf_proto::fabrics::{ConnectData, FabricsCommand, PROP_CAP};
use nvmf_proto::identify::IdentifyController;
use nvmf_proto::logpages::{GetLogPage, SupportedLogPages, LSP_PLEO};
use nvmf_proto::tcp::{CapsuleCmd, CommonHeader, DataPdu, Digests, IcReq, Pdu, COMMON_HEADER_LEN};
use nvmf_proto::types::{AdrFam, DcType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const H1: &str = "nqn.2014-08.org.nvmexpress:uuid:11111111-1111-1111-1111-111111111111";
const H2: &str = "nqn.2014-08.org.nvmexpress:uuid:22222222-2222-2222-2222-222222222222";

fn topology(extra: &str) -> Topology {
    let text = format!(
        r#"
[[dc]]
name = "cdc"
address = "127.0.0.1"
port = 0
kind = "cdc"
[[dc.entry]]
traddr = "10.0.0.1"
trsvcid = "4420"
subnqn = "nqn.test:all{{n}}"
count = 2
[[dc.entry]]
traddr = "10.0.0.2"
trsvcid = "4420"
subnqn = "nqn.test:h1-only"
hosts = ["{H1}"]
{extra}
"#
    );
    Topology::parse(&text, "test").unwrap()
}

async fn start(t: &Topology) -> (Simulator, Arc<Recorder>, SocketAddr) {
    let rec = Recorder::new(None);
    let sim = Simulator::start(t, rec.clone()).await.unwrap();
    let addr = sim.listening()[0].1;
    (sim, rec, addr)
}

/// A minimal NVMe/TCP host: one admin queue.
struct Host {
    s: TcpStream,
    cid: u16,
    digests: Digests,
}

impl Host {
    async fn open(addr: SocketAddr, digests: Digests) -> Self {
        let mut h = Self {
            s: TcpStream::connect(addr).await.unwrap(),
            cid: 0,
            digests: Digests::default(),
        };
        h.send(Pdu::IcReq(IcReq {
            pfv: 0,
            hpda: 0,
            digests,
            maxr2t: 0,
        }))
        .await;
        match h.recv().await {
            Pdu::IcResp(r) => assert_eq!(r.digests, digests, "ICResp echoes the digests"),
            p => panic!("expected ICResp, got {p:?}"),
        }
        h.digests = digests;
        h
    }

    async fn connect(addr: SocketAddr, hostnqn: &str, kato: u32) -> (Self, Cqe) {
        let mut h = Self::open(addr, Digests::default()).await;
        let cqe = h
            .connect_as(hostnqn, nvmf_proto::WELL_KNOWN_DISCOVERY_NQN, kato)
            .await;
        (h, cqe)
    }

    async fn connect_as(&mut self, hostnqn: &str, subnqn: &str, kato: u32) -> Cqe {
        let data = ConnectData {
            hostid: [7; 16],
            cntlid: 0xffff,
            subnqn: subnqn.into(),
            hostnqn: hostnqn.into(),
        }
        .emit()
        .unwrap()
        .to_vec();
        let sqe = FabricsCommand::Connect {
            recfmt: 0,
            qid: 0,
            sqsize: 31,
            cattr: 0,
            kato,
        }
        .to_sqe(0);
        self.command(sqe, data).await.0
    }

    async fn send(&mut self, p: Pdu) {
        self.s
            .write_all(&p.emit(self.digests).unwrap())
            .await
            .unwrap();
    }

    async fn recv(&mut self) -> Pdu {
        self.try_recv().await.expect("a PDU")
    }

    async fn try_recv(&mut self) -> Option<Pdu> {
        let mut head = [0u8; COMMON_HEADER_LEN];
        self.s.read_exact(&mut head).await.ok()?;
        let h = CommonHeader::parse(&head).unwrap();
        let mut buf = vec![0u8; h.plen as usize];
        buf[..COMMON_HEADER_LEN].copy_from_slice(&head);
        self.s
            .read_exact(&mut buf[COMMON_HEADER_LEN..])
            .await
            .ok()?;
        Some(Pdu::parse(&buf, self.digests).unwrap())
    }

    /// Sends a command, collects its data and completion.
    async fn command(&mut self, mut sqe: Sqe, data: Vec<u8>) -> (Cqe, Vec<u8>) {
        self.cid = self.cid.wrapping_add(1) & 0x0fff;
        sqe.command_id = self.cid;
        self.send(Pdu::CapsuleCmd(CapsuleCmd { sqe, data })).await;
        self.completion(sqe.command_id).await
    }

    async fn completion(&mut self, cid: u16) -> (Cqe, Vec<u8>) {
        let mut got = Vec::new();
        loop {
            match self.recv().await {
                Pdu::C2HData(d) => {
                    assert_eq!(d.command_id, cid);
                    assert_eq!(d.datao as usize, got.len());
                    got.extend(d.data);
                }
                Pdu::CapsuleResp(c) if c.command_id == cid => return (c, got),
                p => panic!("unexpected {p:?}"),
            }
        }
    }

    fn read_sqe(opcode: u8, len: u32) -> Sqe {
        Sqe {
            opcode,
            flags: 0x40,
            dptr: Sgl {
                address: 0,
                length: len,
                sgl_type: Sgl::TRANSPORT,
            },
            ..Sqe::default()
        }
    }

    async fn identify(&mut self) -> IdentifyController {
        let mut sqe = Self::read_sqe(0x06, 4096);
        sqe.cdw10 = 1;
        let (c, data) = self.command(sqe, Vec::new()).await;
        assert!(c.status.is_success());
        IdentifyController::parse(&data).unwrap()
    }

    async fn log_page(
        &mut self,
        lid: u8,
        lsp: u8,
        rae: bool,
        offset: u64,
        len: u32,
    ) -> (Cqe, Vec<u8>) {
        let glp = GetLogPage {
            lid,
            lsp,
            rae,
            offset,
            len,
            ..GetLogPage::default()
        };
        let [c10, c11, c12, c13, c14] = glp.cdws().unwrap();
        let mut sqe = Self::read_sqe(0x02, len);
        (sqe.cdw10, sqe.cdw11, sqe.cdw12, sqe.cdw13, sqe.cdw14) = (c10, c11, c12, c13, c14);
        self.command(sqe, Vec::new()).await
    }

    async fn discovery_log(&mut self) -> DiscoveryLogPage {
        let (c, head) = self.log_page(0x70, 0, true, 0, 1024).await;
        assert!(c.status.is_success());
        let numrec = u32::from_le_bytes(head[8..12].try_into().unwrap());
        let (c, all) = self.log_page(0x70, 0, false, 0, 1024 * (1 + numrec)).await;
        assert!(c.status.is_success());
        DiscoveryLogPage::parse(&all).unwrap()
    }

    async fn dim(&mut self, tas: Tas, hostnqn: &str, symname: &str, in_capsule: bool) -> Cqe {
        let payload = DimData::registration(&Registration {
            host_nqn: hostnqn,
            host_id: [7; 16],
            hostname: "host1",
            os_version: "Linux 6.1",
            dc_adrfam: AdrFam::Ipv4,
            symname: Some(symname),
        })
        .emit()
        .unwrap();
        let len = u32::try_from(payload.len()).unwrap();
        let mut sqe = Sqe {
            opcode: 0x21,
            flags: 0x40,
            cdw10: tas.cdw10(),
            dptr: Sgl {
                address: 0,
                length: len,
                sgl_type: if in_capsule {
                    Sgl::IN_CAPSULE
                } else {
                    Sgl::TRANSPORT
                },
            },
            ..Sqe::default()
        };
        if in_capsule {
            return self.command(sqe, payload).await.0;
        }
        // Too large for the capsule: the controller asks for the data (R2T).
        self.cid = self.cid.wrapping_add(1) & 0x0fff;
        sqe.command_id = self.cid;
        self.send(Pdu::CapsuleCmd(CapsuleCmd {
            sqe,
            data: Vec::new(),
        }))
        .await;
        let r2t = match self.recv().await {
            Pdu::R2t(r) => r,
            p => panic!("expected R2T, got {p:?}"),
        };
        assert_eq!(r2t.r2tl, len);
        let (a, b) = payload.split_at(1000);
        for (off, part, last) in [(0u32, a, false), (1000, b, true)] {
            self.send(Pdu::H2CData(DataPdu {
                command_id: sqe.command_id,
                ttag: r2t.ttag,
                datao: off,
                last,
                success: false,
                data: part.to_vec(),
            }))
            .await;
        }
        self.completion(sqe.command_id).await.0
    }
}

#[tokio::test]
async fn a_host_connects_identifies_reads_zoned_pages_and_registers() {
    let (_sim, rec, addr) = start(&topology("")).await;
    let (mut h, c) = Host::connect(addr, H1, 0).await;
    assert!(c.status.is_success(), "{c:?}");
    assert!(c.dw0 >= 1 && c.dw0 <= 0xffef, "cntlid {}", c.dw0);
    let (cap, _) = h
        .command(
            FabricsCommand::PropertyGet {
                attrib: 1,
                offset: PROP_CAP,
            }
            .to_sqe(0),
            Vec::new(),
        )
        .await;
    assert_eq!(
        u64::from(cap.dw0) | (u64::from(cap.dw1) << 32),
        0x0000_0020_0F01_007F
    );
    let id = h.identify().await;
    assert_eq!(id.dctype, DcType::Cdc);
    assert_eq!(u32::from(id.cntlid), c.dw0);
    assert!(id.supports_supported_log_pages());
    let (_, slp) = h.log_page(0x00, 0, false, 0, 1024).await;
    let f = SupportedLogPages::parse(&slp).unwrap().discovery_features();
    assert!(f.pleos, "{f:?}");
    // Zoning: H1 sees three entries, H2 two.
    assert_eq!(h.discovery_log().await.valid_entries().count(), 3);
    let (mut h2, _) = Host::connect(addr, H2, 0).await;
    assert_eq!(h2.discovery_log().await.valid_entries().count(), 2);
    // PLEO asked for is recorded.
    h2.log_page(0x70, LSP_PLEO, false, 0, 1024).await;
    let c = h.dim(Tas::Register, H1, "rack-7", true).await;
    assert!(c.status.is_success(), "{c:?}");
    let c = h.dim(Tas::Update, H1, "rack-8", false).await;
    assert!(c.status.is_success(), "DIM through R2T/H2CData: {c:?}");
    let s = rec.snapshot().dcs["cdc"].clone();
    assert_eq!(s.associations.len(), 2);
    assert_eq!(s.associations[0].hostnqn, H1);
    assert_eq!(
        s.associations[0].hostid,
        "07070707-0707-0707-0707-070707070707"
    );
    let tas: Vec<&str> = s.dim.iter().map(|d| d.tas.as_str()).collect();
    assert_eq!(tas, ["register", "update"]);
    let p = s.registrations[H1].payload.as_ref().unwrap();
    assert_eq!(p.eid, H1);
    assert_eq!(p.entries[0].symname.as_deref(), Some("rack-8"));
    assert!(s
        .log_reads
        .iter()
        .any(|r| r.lid == 0x70 && r.lsp == LSP_PLEO));
    let c = h.dim(Tas::Deregister, H1, "rack-8", true).await;
    assert!(c.status.is_success());
    assert!(rec.snapshot().dcs["cdc"].registrations.is_empty());
}

#[tokio::test]
async fn a_zoning_change_sends_an_aen_only_to_the_host_it_concerns() {
    let t = topology("");
    let (mut sim, rec, addr) = start(&t).await;
    let mut hosts = Vec::new();
    for nqn in [H1, H2] {
        let (mut h, _) = Host::connect(addr, nqn, 0).await;
        let mut sqe = Host::read_sqe(0x09, 0);
        (sqe.cdw10, sqe.cdw11) = (0x0b, 0x8000_0000);
        assert!(h.command(sqe, Vec::new()).await.0.status.is_success());
        h.discovery_log().await;
        let aer = Sqe {
            opcode: 0x0c,
            command_id: 31,
            ..Sqe::default()
        };
        h.send(Pdu::CapsuleCmd(CapsuleCmd {
            sqe: aer,
            data: Vec::new(),
        }))
        .await;
        hosts.push(h);
    }
    // Only H1's page changes: its zoned entry goes.
    let mut t2 = t.clone();
    t2.dcs[0].entries.retain(|e| e.hosts.is_none());
    sim.apply(&t2).await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(5), hosts[0].recv())
        .await
        .unwrap();
    match got {
        Pdu::CapsuleResp(c) => {
            assert_eq!(c.command_id, 31);
            assert_eq!(c.dw0, 0x0070_f002);
        }
        p => panic!("expected the AEN, got {p:?}"),
    }
    assert!(
        tokio::time::timeout(Duration::from_millis(300), hosts[1].recv())
            .await
            .is_err(),
        "H2's page did not change: no AEN"
    );
    let page = hosts[0].discovery_log().await;
    assert_eq!(page.valid_entries().count(), 2);
    assert_eq!(page.header.genctr, 2);
    let s = rec.snapshot().dcs["cdc"].clone();
    assert_eq!(s.aens.len(), 1);
    assert_eq!(s.aens[0].hostnqn, H1);
}

#[tokio::test]
async fn keep_alive_timeout_ends_the_association() {
    let (_sim, rec, addr) = start(&topology("")).await;
    let (mut h, _) = Host::connect(addr, H1, 400).await;
    // Two keep-alives keep it up past one KATO.
    for _ in 0..2 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let (c, _) = h.command(Host::read_sqe(0x18, 0), Vec::new()).await;
        assert!(c.status.is_success());
    }
    // Then silence: the controller drops the association.
    let end = tokio::time::timeout(Duration::from_secs(3), h.try_recv())
        .await
        .unwrap();
    assert!(end.is_none(), "the socket closes");
    let s = rec.snapshot().dcs["cdc"].clone();
    assert!(!s.associations[0].open);
    assert!(s.associations[0]
        .closed
        .as_deref()
        .unwrap()
        .contains("keep-alive timeout"));
}

#[tokio::test]
async fn garbage_closes_one_association_and_the_others_are_served() {
    let (_sim, rec, addr) = start(&topology("")).await;
    let (mut good, _) = Host::connect(addr, H1, 0).await;
    for junk in [
        vec![0x04, 0, 72, 0, 0xff, 0xff, 0xff, 0x7f], // PLEN 2 GiB
        b"GET / HTTP/1.1\r\n\r\n".to_vec(),
        [vec![0x05, 0, 24, 0, 24, 0, 0, 0], vec![0; 16]].concat(), // a CapsuleResp from a host
    ] {
        let (mut bad, _) = Host::connect(addr, H2, 0).await;
        bad.s.write_all(&junk).await.unwrap();
        let end = tokio::time::timeout(Duration::from_secs(3), bad.try_recv())
            .await
            .unwrap();
        assert!(end.is_none(), "closed after {junk:?}");
    }
    // Bytes that are not even ICReq.
    let mut raw = TcpStream::connect(addr).await.unwrap();
    raw.write_all(&[0xff; 128]).await.unwrap();
    let mut b = [0u8; 1];
    assert_eq!(raw.read(&mut b).await.unwrap(), 0);
    assert_eq!(good.identify().await.dctype, DcType::Cdc, "still served");
    let closed: Vec<String> = rec.snapshot().dcs["cdc"]
        .associations
        .iter()
        .filter_map(|a| a.closed.clone())
        .collect();
    assert_eq!(closed.len(), 3, "{closed:?}");
    assert!(closed.iter().any(|c| c.contains("PLEN")), "{closed:?}");
    assert!(
        closed.iter().any(|c| c.contains("only a controller sends")),
        "{closed:?}"
    );
}

#[tokio::test]
async fn header_and_data_digests_are_served() {
    let (_sim, _rec, addr) = start(&topology("")).await;
    let mut h = Host::open(
        addr,
        Digests {
            header: true,
            data: true,
        },
    )
    .await;
    let c = h
        .connect_as(H1, nvmf_proto::WELL_KNOWN_DISCOVERY_NQN, 0)
        .await;
    assert!(c.status.is_success());
    assert_eq!(h.discovery_log().await.valid_entries().count(), 3);
}

#[tokio::test]
async fn faults_refuse_dim_drop_keep_alive_churn_genctr_and_refuse_unknown_nqns() {
    let faults = "[dc.faults]\nrefuse_dim = 0x0102\ndrop = [\"keep-alive\"]\ngenctr_churn = true\n";
    let (_sim, rec, addr) = start(&topology(faults)).await;
    let (mut h, _) = Host::connect(addr, H1, 0).await;
    let c = h.dim(Tas::Register, H1, "x", true).await;
    assert_eq!(c.status, Status::new(1, 0x02, true));
    assert!(rec.snapshot().dcs["cdc"].registrations.is_empty());
    let a = h.discovery_log().await.header.genctr;
    let b = h.discovery_log().await.header.genctr;
    assert_ne!(a, b, "GENCTR churns");
    let mut sqe = Host::read_sqe(0x18, 0);
    h.cid += 1;
    sqe.command_id = h.cid;
    h.send(Pdu::CapsuleCmd(CapsuleCmd {
        sqe,
        data: Vec::new(),
    }))
    .await;
    assert!(
        tokio::time::timeout(Duration::from_millis(300), h.recv())
            .await
            .is_err(),
        "keep-alive dropped"
    );
    let mut other = Host::open(addr, Digests::default()).await;
    let c = other.connect_as(H2, "nqn.not.this.dc", 0).await;
    assert_eq!(c.status, Status::CONNECT_INVALID_PARAMETERS);
    assert_eq!(c.dw0, (1 << 16) | 256);
}

#[tokio::test]
async fn a_host_that_does_not_read_is_let_go_and_big_dims_are_refused() {
    let (_sim, rec, addr) = start(&topology("")).await;
    // 1 MiB answers asked for and never read: bounded, then closed.
    let (mut h, _) = Host::connect(addr, H1, 0).await;
    for cid in 1..=64u16 {
        let mut sqe = Host::read_sqe(0x06, 1 << 20);
        (sqe.cdw10, sqe.command_id) = (1, cid);
        h.send(Pdu::CapsuleCmd(CapsuleCmd {
            sqe,
            data: Vec::new(),
        }))
        .await;
    }
    let start = std::time::Instant::now();
    let closed = loop {
        let s = rec.snapshot().dcs["cdc"].clone();
        if let Some(c) = s.associations[0].closed.clone() {
            break c;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "never closed: {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(closed.contains("not reading"), "{closed}");
    // A DIM of 100 KiB through R2T: refused, not kept.
    let (mut h2, _) = Host::connect(addr, H2, 0).await;
    let len = 100u32 << 10;
    let sqe = Sqe {
        opcode: 0x21,
        flags: 0x40,
        command_id: 5,
        dptr: Sgl {
            address: 0,
            length: len,
            sgl_type: Sgl::TRANSPORT,
        },
        ..Sqe::default()
    };
    h2.send(Pdu::CapsuleCmd(CapsuleCmd {
        sqe,
        data: Vec::new(),
    }))
    .await;
    let Pdu::R2t(r2t) = h2.recv().await else {
        panic!("expected R2T")
    };
    let mut data = vec![0u8; len as usize];
    data[..4].copy_from_slice(&len.to_le_bytes());
    h2.send(Pdu::H2CData(DataPdu {
        command_id: 5,
        ttag: r2t.ttag,
        datao: 0,
        last: true,
        success: false,
        data,
    }))
    .await;
    let (c, _) = h2.completion(5).await;
    assert!(!c.status.is_success());
    let s = rec.snapshot().dcs["cdc"].clone();
    assert!(s.dim[0].raw_hex.is_empty() && s.registrations.is_empty());
}
