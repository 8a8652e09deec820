//! One association (a host's admin queue) as a state machine: PDUs in,
//! PDUs out, no I/O. The shell in `server.rs` moves the bytes and keeps the
//! keep-alive timer; this decides what a discovery controller answers.

use std::sync::Arc;
use std::time::Duration;

use nvmf_proto::command::{Cqe, Sgl, Sqe, Status};
use nvmf_proto::dim::{format_uuid, Tas};
use nvmf_proto::fabrics::{
    ConnectData, FabricsCommand, OPC_FABRICS, PROP_CAP, PROP_CC, PROP_CSTS, PROP_VS,
};
use nvmf_proto::identify::{
    IdentifyController, LPA_EXTENDED_DATA, LPA_SUPPORTED_LOG_PAGES, OAES_DISCOVERY_LOG_CHANGE,
};
use nvmf_proto::logpages::{
    GetLogPage, LidSupport, SupportedLogPages, LID_DISCOVERY, LID_SUPPORTED_LOG_PAGES, LSP_EXTDLPE,
    LSP_PLEO,
};
use nvmf_proto::tcp::{DataPdu, Digests, IcResp, Pdu, R2t};
use nvmf_proto::types::{CntrlType, DcType};

use crate::dc::Dc;
use crate::state::{self, push_bounded};
use crate::topology::{CommandName, DcSpec};

/// MAXH2CDATA offered in ICResp.
pub const MAX_H2C_DATA: u32 = 128 << 10;
/// The largest transfer a command may ask for.
pub const MAX_TRANSFER: u32 = 1 << 20;
/// The largest DIM payload accepted (and recorded).
const MAX_DIM_LEN: usize = 64 << 10;
/// C2HData PDUs carry at most this much.
const C2H_CHUNK: usize = 128 << 10;
/// CAP: MQES 127, CQR, TO 15 (7.5 s), CSS NVM; MPSMIN 0 (what the Linux host needs).
const CAP: u64 = 0x0000_0020_0F01_007F;
/// VS: 1.4.
const VS: u32 = 0x0001_0400;
/// Outstanding AERs accepted (Identify AERL + 1).
const AER_LIMIT: usize = 4;
/// Asynchronous Event Request Limit Exceeded.
const AER_LIMIT_EXCEEDED: Status = Status {
    sc: 0x05,
    sct: 1,
    crd: 0,
    more: false,
    dnr: true,
};
/// The discovery log page change AEN (dword 0).
pub const AEN_DISCOVERY_LOG_CHANGE: u32 = 0x0070_f002;

/// What the shell must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Send these PDUs, in order, after `after`.
    Send {
        /// The PDUs.
        pdus: Vec<Pdu>,
        /// How long to hold them (a delay fault).
        after: Duration,
    },
    /// A Keep Alive (or Connect) arrived: restart the KATO timer.
    Alive,
    /// End the association, for this reason.
    Close(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    AwaitIcReq,
    AwaitConnect,
    Live,
}

/// A write whose data comes by R2T/H2CData.
#[derive(Debug)]
struct PendingWrite {
    sqe: Sqe,
    data: Vec<u8>,
    len: usize,
}

/// One association.
#[derive(Debug)]
pub struct Association {
    id: u64,
    dc: Arc<Dc>,
    peer: String,
    phase: Phase,
    digests: Digests,
    hostnqn: String,
    cntlid: u16,
    kato_ms: u32,
    cc: u32,
    aec: u32,
    aers: Vec<u16>,
    /// A DLP-change AEN was sent and not yet cleared by a read with RAE = 0.
    masked: bool,
    /// The GENCTR the host was last told about (or read).
    seen: u64,
    /// GENCTR churn: added to the page's GENCTR.
    churn: u64,
    /// The last page image served, by GENCTR (which moves whenever this
    /// host's page does): a host reads a large page in many chunks, and
    /// building 1,000 entries per chunk made the simulator the bottleneck.
    page: Option<(u64, Arc<Vec<u8>>)>,
    write: Option<PendingWrite>,
}

fn reply(sqe: &Sqe, status: Status, dw0: u32, dw1: u32) -> Pdu {
    Pdu::CapsuleResp(Cqe {
        dw0,
        dw1,
        sqhd: 0,
        sqid: 0,
        command_id: sqe.command_id,
        status,
        phase: false,
    })
}

fn send(pdus: Vec<Pdu>) -> Output {
    Output::Send {
        pdus,
        after: Duration::ZERO,
    }
}

impl Association {
    /// A new association from `peer` on `dc`.
    pub fn new(id: u64, dc: Arc<Dc>, peer: String) -> Self {
        Self {
            id,
            dc,
            peer,
            phase: Phase::AwaitIcReq,
            digests: Digests::default(),
            hostnqn: String::new(),
            cntlid: 0,
            kato_ms: 0,
            cc: 0,
            aec: 0,
            aers: Vec::new(),
            masked: false,
            seen: 0,
            churn: 0,
            page: None,
            write: None,
        }
    }

    /// The keep-alive timeout, once connected with one.
    pub fn kato(&self) -> Option<Duration> {
        (self.phase == Phase::Live && self.kato_ms != 0)
            .then(|| Duration::from_millis(self.kato_ms.into()))
    }

    /// The digests the host asked for in ICReq.
    pub fn digests(&self) -> Digests {
        self.digests
    }

    /// The host NQN, once connected.
    pub fn hostnqn(&self) -> &str {
        &self.hostnqn
    }

    /// Records the end of the association.
    pub fn closed(&self, reason: &str) {
        if self.phase != Phase::Live {
            return;
        }
        let id = self.id;
        self.dc.recorder.update(&self.dc.name(), |s| {
            if let Some(a) = s.associations.iter_mut().rev().find(|a| a.id == id) {
                a.open = false;
                a.closed = Some(reason.to_owned());
            }
        });
    }

    /// Handles one PDU from the host.
    pub fn on_pdu(&mut self, pdu: Pdu) -> Vec<Output> {
        match (self.phase, pdu) {
            (Phase::AwaitIcReq, Pdu::IcReq(r)) => {
                if r.pfv != 0 {
                    return vec![Output::Close(format!(
                        "ICReq asks for PDU format version {}; only 0 (1.0) is served",
                        r.pfv
                    ))];
                }
                self.digests = r.digests;
                self.phase = Phase::AwaitConnect;
                vec![send(vec![Pdu::IcResp(IcResp {
                    pfv: 0,
                    cpda: 0,
                    digests: r.digests,
                    maxh2cdata: MAX_H2C_DATA,
                })])]
            }
            (Phase::AwaitIcReq, p) => vec![Output::Close(format!(
                "{} before ICReq: not an NVMe/TCP host",
                p.type_name()
            ))],
            (_, Pdu::IcReq(_)) => vec![Output::Close("a second ICReq".into())],
            (_, Pdu::CapsuleCmd(c)) => self.command(c.sqe, c.data),
            (_, Pdu::H2CData(d)) => self.h2c_data(d),
            (_, Pdu::H2CTermReq(t)) => vec![Output::Close(format!(
                "the host ended the association (H2CTermReq, FES {:#x})",
                t.fes
            ))],
            (_, p) => vec![Output::Close(format!(
                "a {} from the host, which only a controller sends",
                p.type_name()
            ))],
        }
    }

    /// The DC's topology changed (or it was removed): send an AEN if this
    /// host's page changed.
    pub fn on_change(&mut self) -> Vec<Output> {
        if self.dc.is_retired() {
            return vec![Output::Close("the DC was removed from the topology".into())];
        }
        self.maybe_notify()
    }

    fn maybe_notify(&mut self) -> Vec<Output> {
        if self.phase != Phase::Live
            || self.masked
            || self.aec & OAES_DISCOVERY_LOG_CHANGE == 0
            || self.aers.is_empty()
        {
            return Vec::new();
        }
        let genctr = self.dc.genctr(&self.hostnqn);
        if genctr == self.seen {
            return Vec::new();
        }
        let cid = self.aers.remove(0);
        self.masked = true;
        self.seen = genctr;
        let (id, host) = (self.id, self.hostnqn.clone());
        self.dc.recorder.update(&self.dc.name(), |s| {
            push_bounded(
                &mut s.aens,
                &mut s.dropped_records,
                state::Aen {
                    association: id,
                    hostnqn: host,
                    dw0: AEN_DISCOVERY_LOG_CHANGE,
                },
            );
        });
        log::info!(
            "{}: AEN (discovery log change) to {} on association {id}",
            self.dc.name(),
            self.hostnqn
        );
        let aer = Sqe {
            command_id: cid,
            ..Sqe::default()
        };
        vec![send(vec![reply(
            &aer,
            Status::SUCCESS,
            AEN_DISCOVERY_LOG_CHANGE,
            0,
        )])]
    }

    fn command(&mut self, sqe: Sqe, data: Vec<u8>) -> Vec<Output> {
        if self.write.is_some() {
            return vec![Output::Close(
                "a new command while the data of a write was still due".into(),
            )];
        }
        if sqe.opcode != OPC_FABRICS && self.phase != Phase::Live {
            return vec![Output::Close(format!(
                "admin command {:#04x} before Connect",
                sqe.opcode
            ))];
        }
        // A write too large for the capsule: ask for its data (R2T).
        let dptr = sqe.dptr;
        if sqe.opcode & 0x03 == 0x01
            && dptr.sgl_type == Sgl::TRANSPORT
            && dptr.length != 0
            && data.is_empty()
        {
            if dptr.length > MAX_TRANSFER {
                return vec![send(vec![reply(&sqe, Status::INVALID_FIELD, 0, 0)])];
            }
            self.write = Some(PendingWrite {
                sqe,
                data: Vec::new(),
                len: usize::try_from(dptr.length).unwrap_or(0),
            });
            return vec![send(vec![Pdu::R2t(R2t {
                command_id: sqe.command_id,
                ttag: 1,
                r2to: 0,
                r2tl: dptr.length,
            })])];
        }
        let spec = self.dc.spec();
        let name = if sqe.opcode == OPC_FABRICS {
            match FabricsCommand::from_sqe(&sqe) {
                Ok(FabricsCommand::PropertyGet { .. }) => Some(CommandName::PropertyGet),
                Ok(FabricsCommand::PropertySet { .. }) => Some(CommandName::PropertySet),
                _ => None,
            }
        } else {
            CommandName::from_admin_opcode(sqe.opcode)
        };
        if let Some(n) = name {
            if spec.faults.drop.contains(&n) {
                log::debug!("{}: dropping {} (fault)", spec.name, n.name());
                return Vec::new();
            }
        }
        let mut out = if sqe.opcode == OPC_FABRICS {
            self.fabrics(&spec, &sqe, &data)
        } else {
            self.admin(&spec, &sqe, &data)
        };
        if let Some(delay) = name.and_then(|n| spec.faults.delay.get(&n)) {
            for o in &mut out {
                if let Output::Send { after, .. } = o {
                    *after = *delay;
                }
            }
        }
        out
    }

    fn h2c_data(&mut self, d: DataPdu) -> Vec<Output> {
        let Some(w) = &mut self.write else {
            return vec![Output::Close("H2CData without an R2T".into())];
        };
        let at = usize::try_from(d.datao).unwrap_or(usize::MAX);
        if d.command_id != w.sqe.command_id || d.ttag != 1 || at != w.data.len() {
            return vec![Output::Close(format!(
                "H2CData for command {:#x} tag {} at {} does not continue the write of command {:#x} at {}",
                d.command_id,
                d.ttag,
                d.datao,
                w.sqe.command_id,
                w.data.len()
            ))];
        }
        if w.data.len().saturating_add(d.data.len()) > w.len {
            return vec![Output::Close("H2CData beyond the R2T's length".into())];
        }
        w.data.extend_from_slice(&d.data);
        if w.data.len() < w.len {
            return Vec::new();
        }
        let Some(PendingWrite { sqe, data, .. }) = self.write.take() else {
            return Vec::new();
        };
        self.command(sqe, data)
    }

    fn fabrics(&mut self, spec: &DcSpec, sqe: &Sqe, data: &[u8]) -> Vec<Output> {
        let cmd = match FabricsCommand::from_sqe(sqe) {
            Ok(c) => c,
            Err(e) => {
                log::warn!("{}: bad fabrics command: {e}", spec.name);
                return vec![send(vec![reply(sqe, Status::INVALID_FIELD, 0, 0)])];
            }
        };
        match cmd {
            FabricsCommand::Connect { qid, kato, .. } => self.connect(spec, sqe, qid, kato, data),
            _ if self.phase != Phase::Live => vec![Output::Close(
                "a fabrics command other than Connect before Connect".into(),
            )],
            FabricsCommand::PropertyGet { attrib, offset } => {
                let csts = {
                    let rdy = self.cc & 1;
                    let shst = if (self.cc >> 14) & 3 != 0 { 2 << 2 } else { 0 };
                    rdy | shst
                };
                let value: u64 = match offset {
                    PROP_CAP => CAP,
                    PROP_VS => VS.into(),
                    PROP_CC => self.cc.into(),
                    PROP_CSTS => csts.into(),
                    _ => 0,
                };
                let [a, b, c, d, e, f, g, h] = value.to_le_bytes();
                let (lo, hi) = (
                    u32::from_le_bytes([a, b, c, d]),
                    u32::from_le_bytes([e, f, g, h]),
                );
                let hi = if attrib & 7 == 1 { hi } else { 0 };
                vec![send(vec![reply(sqe, Status::SUCCESS, lo, hi)])]
            }
            FabricsCommand::PropertySet { offset, value, .. } => {
                if offset == PROP_CC {
                    self.cc = u32::try_from(value & 0xffff_ffff).unwrap_or(0);
                }
                vec![send(vec![reply(sqe, Status::SUCCESS, 0, 0)])]
            }
            FabricsCommand::Disconnect { .. } => vec![
                send(vec![reply(sqe, Status::SUCCESS, 0, 0)]),
                Output::Close("the host sent Disconnect".into()),
            ],
            FabricsCommand::Other { .. } => {
                vec![send(vec![reply(sqe, Status::INVALID_OPCODE, 0, 0)])]
            }
        }
    }

    fn connect(
        &mut self,
        spec: &DcSpec,
        sqe: &Sqe,
        qid: u16,
        kato: u32,
        data: &[u8],
    ) -> Vec<Output> {
        if self.phase != Phase::AwaitConnect {
            return vec![Output::Close("a second Connect on the admin queue".into())];
        }
        // Invalid Parameters: DW0 names the byte (bit 16: in the data).
        let invalid = |offset: u32, why: String| {
            log::warn!("{}: Connect refused: {why}", spec.name);
            vec![send(vec![reply(
                sqe,
                Status::CONNECT_INVALID_PARAMETERS,
                offset,
                0,
            )])]
        };
        if qid != 0 {
            return invalid(
                42,
                format!("QID {qid}: a discovery controller has only an admin queue"),
            );
        }
        let cd = match ConnectData::parse(data) {
            Ok(cd) => cd,
            Err(e) => return invalid(1 << 16, format!("connect data: {e}")),
        };
        if cd.subnqn != spec.nqn && cd.subnqn != nvmf_proto::WELL_KNOWN_DISCOVERY_NQN {
            return invalid(
                (1 << 16) | 256,
                format!("SUBNQN {:?} is not {:?}", cd.subnqn, spec.nqn),
            );
        }
        self.hostnqn = cd.hostnqn;
        self.cntlid = self.dc.next_cntlid();
        self.kato_ms = kato;
        self.phase = Phase::Live;
        self.seen = self.dc.genctr(&self.hostnqn);
        let record = state::Association {
            id: self.id,
            peer: self.peer.clone(),
            hostnqn: self.hostnqn.clone(),
            hostid: format_uuid(&cd.hostid),
            cntlid: self.cntlid,
            kato_ms: kato,
            open: true,
            closed: None,
        };
        self.dc.recorder.update(&spec.name, |s| {
            push_bounded(&mut s.associations, &mut s.dropped_records, record);
        });
        log::info!(
            "{}: association {} from {} ({}), cntlid {}, kato {kato} ms",
            spec.name,
            self.id,
            self.peer,
            self.hostnqn,
            self.cntlid
        );
        vec![
            send(vec![reply(sqe, Status::SUCCESS, self.cntlid.into(), 0)]),
            Output::Alive,
        ]
    }

    fn admin(&mut self, spec: &DcSpec, sqe: &Sqe, data: &[u8]) -> Vec<Output> {
        let ok = |dw0| vec![send(vec![reply(sqe, Status::SUCCESS, dw0, 0)])];
        let fail = |status| vec![send(vec![reply(sqe, status, 0, 0)])];
        match sqe.opcode {
            0x02 => self.get_log_page(spec, sqe),
            0x06 => {
                if sqe.cdw10 & 0xff != 1 {
                    return fail(Status::INVALID_FIELD);
                }
                self.data_reply(sqe, self.identify(spec))
            }
            0x09 => match sqe.cdw10 & 0xff {
                0x0b => {
                    self.aec = sqe.cdw11;
                    let mut out = ok(0);
                    out.extend(self.maybe_notify());
                    out
                }
                0x0f => {
                    self.kato_ms = sqe.cdw11;
                    let mut out = ok(0);
                    out.push(Output::Alive);
                    out
                }
                _ => fail(Status::INVALID_FIELD),
            },
            0x0a => match sqe.cdw10 & 0xff {
                0x0b => ok(self.aec),
                0x0f => ok(self.kato_ms),
                _ => fail(Status::INVALID_FIELD),
            },
            0x0c => {
                if self.aers.len() >= AER_LIMIT {
                    return fail(AER_LIMIT_EXCEEDED);
                }
                self.aers.push(sqe.command_id);
                self.maybe_notify()
            }
            0x18 => {
                let mut out = ok(0);
                out.push(Output::Alive);
                out
            }
            0x21 => self.dim(spec, sqe, data),
            _ => fail(Status::INVALID_OPCODE),
        }
    }

    fn identify(&self, spec: &DcSpec) -> Vec<u8> {
        let mut lpa = LPA_EXTENDED_DATA;
        if spec.supported_log_pages {
            lpa |= LPA_SUPPORTED_LOG_PAGES;
        }
        let id = IdentifyController {
            sn: format!("dcsim-{}", self.dc_index()),
            mn: "nvmf-dcsim".into(),
            fr: env!("CARGO_PKG_VERSION").chars().take(8).collect(),
            cntlid: self.cntlid,
            ver: VS,
            oaes: OAES_DISCOVERY_LOG_CHANGE,
            cntrltype: CntrlType::Discovery,
            aerl: 3,
            lpa,
            kas: spec.kas,
            maxcmd: 128,
            sgls: 0x0010_0001,
            subnqn: spec.nqn.clone(),
            dctype: spec.kind,
            ..IdentifyController::default()
        };
        id.emit().unwrap_or_default()
    }

    fn dc_index(&self) -> String {
        self.dc.spec().listen.port().to_string()
    }

    fn get_log_page(&mut self, spec: &DcSpec, sqe: &Sqe) -> Vec<Output> {
        let glp = GetLogPage::from_cdws([sqe.cdw10, sqe.cdw11, sqe.cdw12, sqe.cdw13, sqe.cdw14]);
        let id = self.id;
        self.dc.recorder.update(&spec.name, |s| {
            push_bounded(
                &mut s.log_reads,
                &mut s.dropped_records,
                state::LogRead {
                    association: id,
                    lid: glp.lid,
                    lsp: glp.lsp,
                    rae: glp.rae,
                    offset: glp.offset,
                    length: glp.len,
                },
            );
        });
        let fail = |status| vec![send(vec![reply(sqe, status, 0, 0)])];
        if glp.offset % 4 != 0 || glp.len > MAX_TRANSFER {
            return fail(Status::INVALID_FIELD);
        }
        let image = match glp.lid {
            LID_DISCOVERY => {
                if spec.faults.genctr_churn && glp.offset == 0 {
                    self.churn = self.churn.wrapping_add(1);
                }
                let genctr = self.dc.genctr(&self.hostnqn).wrapping_add(self.churn);
                match &self.page {
                    Some((g, image)) if *g == genctr => image.clone(),
                    _ => {
                        let image = Arc::new(spec.page(&self.hostnqn, genctr));
                        self.page = Some((genctr, image.clone()));
                        image
                    }
                }
            }
            LID_SUPPORTED_LOG_PAGES if spec.supported_log_pages => {
                let mut pages = SupportedLogPages::default();
                pages.set(LID_SUPPORTED_LOG_PAGES, LidSupport(1));
                let mut lsp = 0u32;
                if spec.pleo {
                    lsp |= u32::from(LSP_PLEO);
                }
                if spec.extended_entries {
                    lsp |= u32::from(LSP_EXTDLPE);
                }
                pages.set(LID_DISCOVERY, LidSupport(1 | (lsp << 16)));
                Arc::new(pages.emit())
            }
            _ => return fail(Status::INVALID_FIELD),
        };
        let start = usize::try_from(glp.offset).unwrap_or(usize::MAX);
        let len = usize::try_from(glp.len).unwrap_or(0);
        let mut bytes = vec![0u8; len];
        if let Some(src) = image.get(start..) {
            let n = src.len().min(len);
            bytes[..n].copy_from_slice(&src[..n]);
        }
        let mut out = self.data_reply(sqe, bytes);
        if glp.lid == LID_DISCOVERY && !glp.rae {
            // The host has read the page: the notice is cleared (RAE = 0).
            self.masked = false;
            self.seen = self.dc.genctr(&self.hostnqn);
        }
        out.extend(self.maybe_notify());
        out
    }

    fn dim(&mut self, spec: &DcSpec, sqe: &Sqe, data: &[u8]) -> Vec<Output> {
        let tas = Tas::from_cdw10(sqe.cdw10);
        let tdl = data
            .get(..4)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .map_or(0, u32::from_le_bytes);
        let raw = data
            .get(..usize::try_from(tdl).unwrap_or(0))
            .unwrap_or(data);
        // A registration is a few KiB; what is kept of each is bounded.
        let raw = if raw.len() > MAX_DIM_LEN {
            &[][..]
        } else {
            raw
        };
        let status = if spec.kind == DcType::None {
            Status::INVALID_OPCODE
        } else if let Some(s) = spec.faults.refuse_dim {
            s
        } else if nvmf_proto::dim::DimData::parse(raw).is_err() {
            Status::INVALID_FIELD
        } else {
            Status::SUCCESS
        };
        let record = state::Dim::new(self.id, &self.hostnqn, tas, status.field(), raw);
        log::info!(
            "{}: DIM {} from {}: {}",
            spec.name,
            record.tas,
            self.hostnqn,
            if status.is_success() {
                "accepted".to_owned()
            } else {
                format!("refused with status {:#x}", status.field())
            }
        );
        self.dc.recorder.update(&spec.name, |s| {
            if status.is_success() {
                match tas {
                    Tas::Deregister => {
                        s.registrations.remove(&record.hostnqn);
                    }
                    _ => {
                        s.registrations
                            .insert(record.hostnqn.clone(), record.clone());
                    }
                }
            }
            push_bounded(&mut s.dim, &mut s.dropped_records, record);
        });
        vec![send(vec![reply(sqe, status, 0, 0)])]
    }

    /// The data of a read (C2HData PDUs) and its completion.
    fn data_reply(&self, sqe: &Sqe, mut bytes: Vec<u8>) -> Vec<Output> {
        // Exactly what the host's buffer holds: the SGL's length, which a
        // hostile host may set to 4 GiB.
        if sqe.dptr.length > MAX_TRANSFER {
            return vec![send(vec![reply(sqe, Status::INVALID_FIELD, 0, 0)])];
        }
        bytes.resize(usize::try_from(sqe.dptr.length).unwrap_or(0), 0);
        let mut pdus = Vec::new();
        let chunks = bytes.chunks(C2H_CHUNK).count();
        for (i, chunk) in bytes.chunks(C2H_CHUNK).enumerate() {
            pdus.push(Pdu::C2HData(DataPdu {
                command_id: sqe.command_id,
                ttag: 0,
                datao: u32::try_from(i * C2H_CHUNK).unwrap_or(u32::MAX),
                last: i + 1 == chunks,
                success: false,
                data: chunk.to_vec(),
            }));
        }
        pdus.push(reply(sqe, Status::SUCCESS, 0, 0));
        vec![send(pdus)]
    }
}
