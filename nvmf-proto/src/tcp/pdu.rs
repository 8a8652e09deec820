//! The PDU bodies and [`Pdu`], which parses and emits one whole PDU.

use super::{
    crc32c, pdu_type, shape, to_u64, Body, CommonHeader, Digests, COMMON_HEADER_LEN, DIGEST_LEN,
    FLAG_DDGST, FLAG_HDGST, FLAG_LAST_PDU, FLAG_SUCCESS, MAX_DATA_LEN, MAX_TERM_HEADER_LEN,
};
use crate::command::{Cqe, Sqe, CQE_LEN, SQE_LEN};
use crate::wire::{self, Out};
use crate::ProtoError;

/// ICReq: the host opens the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IcReq {
    /// PDU format version, 0 (1.0).
    pub pfv: u16,
    /// Host PDU data alignment (Linux sends 0).
    pub hpda: u8,
    /// The digests the host asks for.
    pub digests: Digests,
    /// Maximum outstanding R2Ts per command, 0's based (Linux sends 0).
    pub maxr2t: u32,
}

/// ICResp: the controller's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IcResp {
    /// PDU format version, 0 (1.0).
    pub pfv: u16,
    /// Controller PDU data alignment; the Linux host requires 0.
    pub cpda: u8,
    /// The digests in use; the Linux host requires exactly what it asked for.
    pub digests: Digests,
    /// Largest H2CData data the controller accepts: a multiple of 4, at
    /// least 4096 (the Linux host checks both).
    pub maxh2cdata: u32,
}

/// CapsuleCmd: a command and its in-capsule data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapsuleCmd {
    /// The command.
    pub sqe: Sqe,
    /// In-capsule data (Connect's 1024 bytes, a DIM payload), or empty.
    pub data: Vec<u8>,
}

/// H2CData or C2HData: 8 command id, 10 TTAG, 12 DATAO le32, 16 DATAL le32.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataPdu {
    /// The command the data belongs to.
    pub command_id: u16,
    /// Transfer tag: the R2T's for H2CData; reserved (0) for C2HData.
    pub ttag: u16,
    /// Offset of this data in the command's whole transfer.
    pub datao: u32,
    /// LAST_PDU flag.
    pub last: bool,
    /// SUCCESS flag (C2HData only, and only with `last`).
    pub success: bool,
    /// The data; DATAL is its length.
    pub data: Vec<u8>,
}

/// R2T: 8 command id, 10 TTAG, 12 R2TO le32, 16 R2TL le32.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct R2t {
    /// The command whose data is wanted.
    pub command_id: u16,
    /// Transfer tag for the H2CData PDUs that answer.
    pub ttag: u16,
    /// Offset of the data wanted.
    pub r2to: u32,
    /// Length of the data wanted.
    pub r2tl: u32,
}

/// H2CTermReq or C2HTermReq: 8 FES le16, 10 FEI le32 (FEIL and FEIU),
/// then the offending PDU header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TermReq {
    /// Fatal error status: 1 invalid PDU header field, 2 PDU sequence
    /// error, 3 header digest error, 4 data out of range, 5 R2T limit
    /// exceeded, 6 unsupported parameter.
    pub fes: u16,
    /// Fatal error information (for FES 1: the offset of the bad field).
    pub fei: u32,
    /// The offending PDU header, at most [`MAX_TERM_HEADER_LEN`] bytes.
    pub header: Vec<u8>,
}

/// TermReq fatal error status: invalid PDU header field.
pub const FES_INVALID_HEADER_FIELD: u16 = 1;
/// TermReq fatal error status: PDU sequence error.
pub const FES_PDU_SEQUENCE_ERROR: u16 = 2;
/// TermReq fatal error status: header digest error.
pub const FES_HEADER_DIGEST_ERROR: u16 = 3;
/// TermReq fatal error status: data transfer out of range.
pub const FES_DATA_OUT_OF_RANGE: u16 = 4;
/// TermReq fatal error status: data transfer limit (R2T) exceeded.
pub const FES_R2T_LIMIT_EXCEEDED: u16 = 5;
/// TermReq fatal error status: unsupported parameter.
pub const FES_UNSUPPORTED_PARAMETER: u16 = 6;

/// One NVMe/TCP PDU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pdu {
    /// 0x00.
    IcReq(IcReq),
    /// 0x01.
    IcResp(IcResp),
    /// 0x02.
    H2CTermReq(TermReq),
    /// 0x03.
    C2HTermReq(TermReq),
    /// 0x04.
    CapsuleCmd(CapsuleCmd),
    /// 0x05: a CQE.
    CapsuleResp(Cqe),
    /// 0x06.
    H2CData(DataPdu),
    /// 0x07.
    C2HData(DataPdu),
    /// 0x09.
    R2t(R2t),
}

fn check_digest(what: &'static str, name: &str, got: u32, want: u32) -> Result<(), ProtoError> {
    if got == want {
        return Ok(());
    }
    Err(ProtoError::Malformed {
        what,
        reason: format!("{name} PDU: received {got:#010x}, computed {want:#010x}"),
    })
}

impl Pdu {
    /// Parses exactly one whole PDU (`buf.len()` must equal the header's
    /// PLEN) sent on a connection with the negotiated `digests` (ICReq,
    /// ICResp and the TermReqs never carry digests). Checks the type, HLEN
    /// per type, PDO, PLEN, that the HDGST/DDGST flags match the
    /// negotiation, and the CRC32C values; any mismatch is an error naming
    /// the field.
    pub fn parse(buf: &[u8], digests: Digests) -> Result<Self, ProtoError> {
        let h = CommonHeader::parse(buf)?;
        let plen = h.plen();
        if buf.len() < plen {
            return Err(ProtoError::TooShort {
                what: "NVMe/TCP PDU (PLEN)",
                need: plen,
                got: buf.len(),
            });
        }
        if buf.len() > plen {
            return Err(ProtoError::Malformed {
                what: "NVMe/TCP PDU",
                reason: format!(
                    "{} bytes given for one PDU of PLEN {plen} (pass exactly one PDU)",
                    buf.len()
                ),
            });
        }
        let l = h.layout(digests)?;
        let what = l.shape.what;
        let header = wire::slice(buf, 0, l.hlen, what)?;
        if l.hdgst {
            let got = wire::u32_at(buf, l.hlen, what)?;
            check_digest("NVMe/TCP header digest", l.shape.name, got, crc32c(header))?;
        }
        let data = wire::slice(buf, l.data_off, l.data_len, what)?;
        if l.ddgst {
            let got = wire::u32_at(buf, l.data_off.saturating_add(l.data_len), what)?;
            check_digest("NVMe/TCP data digest", l.shape.name, got, crc32c(data))?;
        }
        let u16_at = |off| wire::u16_at(header, off, what);
        let u32_at = |off| wire::u32_at(header, off, what);
        let data_pdu = || -> Result<DataPdu, ProtoError> {
            let datal = u32_at(16)?;
            if usize::try_from(datal).ok() != Some(data.len()) {
                return Err(ProtoError::Malformed {
                    what,
                    reason: format!(
                        "DATAL {datal}, but PLEN {plen} leaves {} data bytes",
                        data.len()
                    ),
                });
            }
            Ok(DataPdu {
                command_id: u16_at(8)?,
                ttag: u16_at(10)?,
                datao: u32_at(12)?,
                last: h.flags & FLAG_LAST_PDU != 0,
                success: h.flags & FLAG_SUCCESS != 0,
                data: data.to_vec(),
            })
        };
        let term = || -> Result<TermReq, ProtoError> {
            Ok(TermReq {
                fes: u16_at(8)?,
                fei: u32_at(10)?,
                header: data.to_vec(),
            })
        };
        use pdu_type::*;
        Ok(match h.pdu_type {
            IC_REQ => Pdu::IcReq(IcReq {
                pfv: u16_at(8)?,
                hpda: wire::u8_at(header, 10, what)?,
                digests: Digests::from_bits(wire::u8_at(header, 11, what)?),
                maxr2t: u32_at(12)?,
            }),
            IC_RESP => Pdu::IcResp(IcResp {
                pfv: u16_at(8)?,
                cpda: wire::u8_at(header, 10, what)?,
                digests: Digests::from_bits(wire::u8_at(header, 11, what)?),
                maxh2cdata: u32_at(12)?,
            }),
            H2C_TERM_REQ => Pdu::H2CTermReq(term()?),
            C2H_TERM_REQ => Pdu::C2HTermReq(term()?),
            CAPSULE_CMD => Pdu::CapsuleCmd(CapsuleCmd {
                sqe: Sqe::parse(wire::slice(header, COMMON_HEADER_LEN, SQE_LEN, what)?)?,
                data: data.to_vec(),
            }),
            CAPSULE_RESP => Pdu::CapsuleResp(Cqe::parse(wire::slice(
                header,
                COMMON_HEADER_LEN,
                CQE_LEN,
                what,
            )?)?),
            H2C_DATA => Pdu::H2CData(data_pdu()?),
            C2H_DATA => Pdu::C2HData(data_pdu()?),
            R2T => Pdu::R2t(R2t {
                command_id: u16_at(8)?,
                ttag: u16_at(10)?,
                r2to: u32_at(12)?,
                r2tl: u32_at(16)?,
            }),
            // layout() accepted the type, so this is not reached.
            other => {
                return Err(shape(other).err().unwrap_or(ProtoError::Malformed {
                    what: "NVMe/TCP PDU",
                    reason: format!("type {other:#04x} has no decoder"),
                }))
            }
        })
    }

    /// The PDU type byte.
    pub fn pdu_type(&self) -> u8 {
        use pdu_type::*;
        match self {
            Pdu::IcReq(_) => IC_REQ,
            Pdu::IcResp(_) => IC_RESP,
            Pdu::H2CTermReq(_) => H2C_TERM_REQ,
            Pdu::C2HTermReq(_) => C2H_TERM_REQ,
            Pdu::CapsuleCmd(_) => CAPSULE_CMD,
            Pdu::CapsuleResp(_) => CAPSULE_RESP,
            Pdu::H2CData(_) => H2C_DATA,
            Pdu::C2HData(_) => C2H_DATA,
            Pdu::R2t(_) => R2T,
        }
    }

    /// The type's name as the NVMe/TCP specification spells it (`ICReq`,
    /// `CapsuleCmd`, `R2T`, ...).
    pub fn type_name(&self) -> &'static str {
        match self {
            Pdu::IcReq(_) => "ICReq",
            Pdu::IcResp(_) => "ICResp",
            Pdu::H2CTermReq(_) => "H2CTermReq",
            Pdu::C2HTermReq(_) => "C2HTermReq",
            Pdu::CapsuleCmd(_) => "CapsuleCmd",
            Pdu::CapsuleResp(_) => "CapsuleResp",
            Pdu::H2CData(_) => "H2CData",
            Pdu::C2HData(_) => "C2HData",
            Pdu::R2t(_) => "R2T",
        }
    }

    /// Emits the PDU for a connection with the given `digests`: sets the
    /// HDGST/DDGST flags and appends the CRCs where the type carries them
    /// (a CapsuleCmd without data has no data digest). Fails for data over
    /// [`MAX_DATA_LEN`], a TermReq header over [`MAX_TERM_HEADER_LEN`],
    /// SUCCESS without `last` on a C2HData, or SUCCESS on an H2CData.
    pub fn emit(&self, digests: Digests) -> Result<Vec<u8>, ProtoError> {
        let t = self.pdu_type();
        let s = shape(t)?;
        let mut hdr = vec![0u8; s.hlen];
        let mut flags = 0u8;
        let mut w = Out::new(&mut hdr, s.what);
        let data: &[u8] = match self {
            Pdu::IcReq(p) => {
                w.u16(8, p.pfv)?;
                w.u8(10, p.hpda)?;
                w.u8(11, p.digests.bits())?;
                w.u32(12, p.maxr2t)?;
                &[]
            }
            Pdu::IcResp(p) => {
                w.u16(8, p.pfv)?;
                w.u8(10, p.cpda)?;
                w.u8(11, p.digests.bits())?;
                w.u32(12, p.maxh2cdata)?;
                &[]
            }
            Pdu::H2CTermReq(p) | Pdu::C2HTermReq(p) => {
                if p.header.len() > MAX_TERM_HEADER_LEN {
                    return Err(ProtoError::FieldTooLong {
                        field: "NVMe/TCP TermReq offending header",
                        max: MAX_TERM_HEADER_LEN,
                        len: p.header.len(),
                    });
                }
                w.u16(8, p.fes)?;
                w.u32(10, p.fei)?;
                &p.header
            }
            Pdu::CapsuleCmd(p) => {
                w.bytes(COMMON_HEADER_LEN, &p.sqe.emit())?;
                &p.data
            }
            Pdu::CapsuleResp(cqe) => {
                w.bytes(COMMON_HEADER_LEN, &cqe.emit())?;
                &[]
            }
            Pdu::H2CData(p) | Pdu::C2HData(p) => {
                if p.data.len() > MAX_DATA_LEN {
                    return Err(ProtoError::FieldTooLong {
                        field: "NVMe/TCP data PDU data",
                        max: MAX_DATA_LEN,
                        len: p.data.len(),
                    });
                }
                let datal = u32::try_from(p.data.len()).map_err(|_| ProtoError::FieldTooLong {
                    field: "NVMe/TCP data PDU DATAL",
                    max: MAX_DATA_LEN,
                    len: p.data.len(),
                })?;
                w.u16(8, p.command_id)?;
                w.u16(10, p.ttag)?;
                w.u32(12, p.datao)?;
                w.u32(16, datal)?;
                if p.last {
                    flags |= FLAG_LAST_PDU;
                }
                if p.success {
                    flags |= FLAG_SUCCESS;
                }
                &p.data
            }
            Pdu::R2t(p) => {
                w.u16(8, p.command_id)?;
                w.u16(10, p.ttag)?;
                w.u32(12, p.r2to)?;
                w.u32(16, p.r2tl)?;
                &[]
            }
        };
        if data.len() > MAX_DATA_LEN {
            return Err(ProtoError::FieldTooLong {
                field: "NVMe/TCP PDU data",
                max: MAX_DATA_LEN,
                len: data.len(),
            });
        }
        let hdgst = s.digests && digests.header;
        let has_data = match s.body {
            Body::Always => true,
            Body::Optional => !data.is_empty(),
            Body::None | Body::Term => false,
        };
        let ddgst = has_data && digests.data;
        let hd_len = if hdgst { DIGEST_LEN } else { 0 };
        let dd_len = if ddgst { DIGEST_LEN } else { 0 };
        let hdr_end = s.hlen.saturating_add(hd_len);
        let plen = hdr_end.saturating_add(data.len()).saturating_add(dd_len);
        if hdgst {
            flags |= FLAG_HDGST;
        }
        if ddgst {
            flags |= FLAG_DDGST;
        }
        let too_big = |field, value: usize| ProtoError::InvalidValue {
            what: field,
            value: to_u64(value),
            expected: "a value that fits its field",
        };
        let common = CommonHeader {
            pdu_type: t,
            flags,
            hlen: u8::try_from(s.hlen).map_err(|_| too_big("NVMe/TCP HLEN", s.hlen))?,
            pdo: if has_data {
                u8::try_from(hdr_end).map_err(|_| too_big("NVMe/TCP PDO", hdr_end))?
            } else {
                0
            },
            plen: u32::try_from(plen).map_err(|_| too_big("NVMe/TCP PLEN", plen))?,
        };
        // What is emitted obeys the rules parse() applies.
        common.layout(digests)?;
        w.bytes(0, &common.emit())?;

        let mut out = Vec::with_capacity(plen);
        out.extend_from_slice(&hdr);
        if hdgst {
            out.extend_from_slice(&crc32c(&hdr).to_le_bytes());
        }
        out.extend_from_slice(data);
        if ddgst {
            out.extend_from_slice(&crc32c(data).to_le_bytes());
        }
        Ok(out)
    }
}
