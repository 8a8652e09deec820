//! NVMe/TCP PDUs (the NVMe/TCP transport specification): the 8-byte common header, the nine PDU types, header and data
//! digests.
//!
//! [`Pdu::parse`] takes exactly one whole PDU. A reader first reads the
//! [`COMMON_HEADER_LEN`] bytes of the common header; [`CommonHeader::parse`]
//! refuses a PLEN above [`MAX_PDU_LEN`], so the rest can be read into a
//! buffer sized from PLEN, and [`CommonHeader::check`] tells early whether
//! the header fits the type and the negotiated digests.
//!
//! What is checked is the framing, as the Linux host and target check it:
//! the type, HLEN per type, PDO, PLEN, that the HDGST/DDGST flags match the
//! digests negotiated at ICReq/ICResp, the CRC32C values, DATAL against
//! PLEN, and SUCCESS only with LAST_PDU. Field values (PFV, CPDA, MAXH2CDATA
//! ...) are kept for the caller to judge. PDUs are laid out the way Linux
//! lays them out (no padding before the data, CPDA/HPDA 0): data starts
//! right after the header and its digest.

use crate::command::{Cqe, Sqe, CQE_LEN, SQE_LEN};
use crate::wire::{self, Out};
use crate::ProtoError;

/// Size of the common header every PDU starts with.
pub const COMMON_HEADER_LEN: usize = 8;
/// Size of a header or data digest.
pub const DIGEST_LEN: usize = 4;
/// HLEN (and PLEN) of ICReq and ICResp.
pub const IC_LEN: usize = 128;
/// HLEN of a CapsuleCmd: the common header and an SQE.
pub const CAPSULE_CMD_HLEN: usize = COMMON_HEADER_LEN + SQE_LEN;
/// HLEN of CapsuleResp, H2CData, C2HData, R2T and the TermReqs.
pub const SHORT_HLEN: usize = 24;
/// The most bytes of the offending PDU header a TermReq carries.
pub const MAX_TERM_HEADER_LEN: usize = 128;
/// The most data one PDU may carry: 1 MiB. The Linux host sends at most
/// 8 KiB in a capsule and MAXH2CDATA in an H2CData PDU; a target chooses
/// its C2HData sizes.
pub const MAX_DATA_LEN: usize = 1 << 20;
/// The largest PLEN accepted: [`MAX_DATA_LEN`] plus 256 bytes of headers,
/// more than any PDU type needs (a CapsuleCmd's 72-byte header with both
/// digests is 80 bytes; a TermReq is at most 152 bytes in all).
pub const MAX_PDU_LEN: usize = MAX_DATA_LEN + 256;

/// PDU types (common header byte 0).
pub mod pdu_type {
    /// Host to controller: initialize connection request.
    pub const IC_REQ: u8 = 0x00;
    /// Controller to host: initialize connection response.
    pub const IC_RESP: u8 = 0x01;
    /// Host to controller: terminate connection (fatal error).
    pub const H2C_TERM_REQ: u8 = 0x02;
    /// Controller to host: terminate connection (fatal error).
    pub const C2H_TERM_REQ: u8 = 0x03;
    /// Host to controller: a command capsule (SQE and in-capsule data).
    pub const CAPSULE_CMD: u8 = 0x04;
    /// Controller to host: a response capsule (CQE).
    pub const CAPSULE_RESP: u8 = 0x05;
    /// Host to controller: write data, solicited by an R2T.
    pub const H2C_DATA: u8 = 0x06;
    /// Controller to host: read data.
    pub const C2H_DATA: u8 = 0x07;
    /// Controller to host: ready to transfer (asks for H2CData).
    pub const R2T: u8 = 0x09;
}

/// Flag: a header digest follows the header.
pub const FLAG_HDGST: u8 = 0x01;
/// Flag: a data digest follows the data.
pub const FLAG_DDGST: u8 = 0x02;
/// Flag (data PDUs): the last data PDU of the command.
pub const FLAG_LAST_PDU: u8 = 0x04;
/// Flag (C2HData with LAST_PDU only): the command completed successfully,
/// no CapsuleResp follows.
pub const FLAG_SUCCESS: u8 = 0x08;

/// Which digests are in use: requested in ICReq, confirmed in ICResp, then
/// on every PDU of the connection that can carry them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Digests {
    /// Header digests.
    pub header: bool,
    /// Data digests.
    pub data: bool,
}

impl Digests {
    /// No digests.
    pub const NONE: Digests = Digests {
        header: false,
        data: false,
    };
    /// Header and data digests.
    pub const BOTH: Digests = Digests {
        header: true,
        data: true,
    };

    /// Decodes the ICReq/ICResp DGST byte (bit 0 header, bit 1 data; the
    /// other bits are reserved and ignored).
    pub fn from_bits(dgst: u8) -> Self {
        Self {
            header: dgst & 0x01 != 0,
            data: dgst & 0x02 != 0,
        }
    }

    /// The ICReq/ICResp DGST byte.
    pub fn bits(self) -> u8 {
        u8::from(self.header) | u8::from(self.data) << 1
    }
}

/// The common header: 0 type, 1 flags, 2 HLEN, 3 PDO, 4 PLEN le32.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommonHeader {
    /// PDU type ([`pdu_type`]).
    pub pdu_type: u8,
    /// Flags (`FLAG_*`).
    pub flags: u8,
    /// Header length, without the header digest.
    pub hlen: u8,
    /// Offset of the data from the start of the PDU; 0 without data.
    pub pdo: u8,
    /// Length of the whole PDU: header, digests, data.
    pub plen: u32,
}

/// Whether a PDU type carries data after its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Body {
    /// Never (ICReq, ICResp, CapsuleResp, R2T).
    None,
    /// In-capsule data, when PLEN says so (CapsuleCmd).
    Optional,
    /// Always, DATAL bytes (H2CData, C2HData).
    Always,
    /// The offending PDU header, never with digests (the TermReqs).
    Term,
}

/// What a PDU type looks like.
#[derive(Debug, Clone, Copy)]
struct Shape {
    name: &'static str,
    what: &'static str,
    hlen: usize,
    /// Whether the type carries digests when they are negotiated.
    digests: bool,
    body: Body,
}

fn shape(t: u8) -> Result<Shape, ProtoError> {
    use pdu_type::*;
    let (name, what, hlen, digests, body) = match t {
        IC_REQ => ("ICReq", "NVMe/TCP ICReq PDU", IC_LEN, false, Body::None),
        IC_RESP => ("ICResp", "NVMe/TCP ICResp PDU", IC_LEN, false, Body::None),
        H2C_TERM_REQ => (
            "H2CTermReq",
            "NVMe/TCP H2CTermReq PDU",
            SHORT_HLEN,
            false,
            Body::Term,
        ),
        C2H_TERM_REQ => (
            "C2HTermReq",
            "NVMe/TCP C2HTermReq PDU",
            SHORT_HLEN,
            false,
            Body::Term,
        ),
        CAPSULE_CMD => (
            "CapsuleCmd",
            "NVMe/TCP CapsuleCmd PDU",
            CAPSULE_CMD_HLEN,
            true,
            Body::Optional,
        ),
        CAPSULE_RESP => (
            "CapsuleResp",
            "NVMe/TCP CapsuleResp PDU",
            SHORT_HLEN,
            true,
            Body::None,
        ),
        H2C_DATA => (
            "H2CData",
            "NVMe/TCP H2CData PDU",
            SHORT_HLEN,
            true,
            Body::Always,
        ),
        C2H_DATA => (
            "C2HData",
            "NVMe/TCP C2HData PDU",
            SHORT_HLEN,
            true,
            Body::Always,
        ),
        R2T => ("R2T", "NVMe/TCP R2T PDU", SHORT_HLEN, true, Body::None),
        other => {
            return Err(ProtoError::InvalidValue {
                what: "NVMe/TCP PDU type",
                value: u64::from(other),
                expected: "0x00 to 0x07 or 0x09",
            })
        }
    };
    Ok(Shape {
        name,
        what,
        hlen,
        digests,
        body,
    })
}

/// Where the parts of a PDU are, once its common header has been checked.
#[derive(Debug, Clone, Copy)]
struct Layout {
    shape: Shape,
    hlen: usize,
    hdgst: bool,
    data_off: usize,
    data_len: usize,
    ddgst: bool,
}

fn to_u64(v: usize) -> u64 {
    u64::try_from(v).unwrap_or(u64::MAX)
}

impl CommonHeader {
    /// Parses the first [`COMMON_HEADER_LEN`] bytes of `buf`. Fails if PLEN
    /// is below 8 or above [`MAX_PDU_LEN`], so PLEN can size the buffer for
    /// the rest of the PDU.
    pub fn parse(buf: &[u8]) -> Result<Self, ProtoError> {
        const WHAT: &str = "NVMe/TCP common header";
        wire::slice(buf, 0, COMMON_HEADER_LEN, WHAT)?;
        let h = Self {
            pdu_type: wire::u8_at(buf, 0, WHAT)?,
            flags: wire::u8_at(buf, 1, WHAT)?,
            hlen: wire::u8_at(buf, 2, WHAT)?,
            pdo: wire::u8_at(buf, 3, WHAT)?,
            plen: wire::u32_at(buf, 4, WHAT)?,
        };
        h.check_plen()?;
        Ok(h)
    }

    /// Emits the 8 bytes.
    pub fn emit(&self) -> [u8; COMMON_HEADER_LEN] {
        let [p0, p1, p2, p3] = self.plen.to_le_bytes();
        [
            self.pdu_type,
            self.flags,
            self.hlen,
            self.pdo,
            p0,
            p1,
            p2,
            p3,
        ]
    }

    /// PLEN as a length.
    pub fn plen(&self) -> usize {
        usize::try_from(self.plen).unwrap_or(usize::MAX)
    }

    fn check_plen(&self) -> Result<(), ProtoError> {
        if !(COMMON_HEADER_LEN..=MAX_PDU_LEN).contains(&self.plen()) {
            return Err(ProtoError::InvalidValue {
                what: "NVMe/TCP PDU PLEN",
                value: u64::from(self.plen),
                expected: "8 to MAX_PDU_LEN (1 MiB + 256)",
            });
        }
        Ok(())
    }

    /// Checks everything [`Pdu::parse`] checks that the common header alone
    /// decides: the type, HLEN, PDO, PLEN and the flags, against the
    /// negotiated `digests`.
    pub fn check(&self, digests: Digests) -> Result<(), ProtoError> {
        self.layout(digests).map(|_| ())
    }

    fn layout(&self, digests: Digests) -> Result<Layout, ProtoError> {
        let s = shape(self.pdu_type)?;
        let bad = |reason: String| ProtoError::Malformed {
            what: s.what,
            reason,
        };
        self.check_plen()?;
        let hlen = usize::from(self.hlen);
        if hlen != s.hlen {
            return Err(bad(format!("HLEN {hlen}, must be {}", s.hlen)));
        }
        let plen = self.plen();
        let pdo = usize::from(self.pdo);
        if pdo > plen {
            return Err(ProtoError::OutOfBounds {
                what: "NVMe/TCP PDU data (PDO)",
                offset: to_u64(pdo),
                len: 0,
                limit: to_u64(plen),
                region: "PDU (PLEN)",
            });
        }
        let flag = |f: u8| self.flags & f != 0;
        let hdgst = s.digests && digests.header;
        if flag(FLAG_HDGST) != hdgst {
            let why = match (hdgst, s.digests) {
                (true, _) => "HDGST flag clear, but header digests were negotiated",
                (false, true) => "HDGST flag set, but header digests were not negotiated",
                (false, false) => "HDGST flag set on a PDU type that never carries digests",
            };
            return Err(bad(why.to_owned()));
        }
        let hdr_end = hlen.saturating_add(if hdgst { DIGEST_LEN } else { 0 });
        let rest = plen.checked_sub(hdr_end).ok_or_else(|| {
            bad(format!(
                "PLEN {plen} is shorter than HLEN {hlen}{}",
                if hdgst { " + header digest" } else { "" }
            ))
        })?;
        let dd_len = if digests.data { DIGEST_LEN } else { 0 };
        let (data_len, ddgst) = match s.body {
            Body::None if rest != 0 => {
                return Err(bad(format!("PLEN {plen}, must be {hdr_end}")));
            }
            Body::None => (0, false),
            Body::Term if rest > MAX_TERM_HEADER_LEN => {
                return Err(bad(format!(
                    "PLEN {plen}, more than {hlen} + {MAX_TERM_HEADER_LEN} bytes of offending header"
                )));
            }
            Body::Term => (rest, false),
            Body::Optional if rest == 0 => (0, false),
            Body::Always | Body::Optional => {
                let n = rest.checked_sub(dd_len).ok_or_else(|| {
                    bad(format!("PLEN {plen} leaves no room for the data digest"))
                })?;
                if n == 0 && s.body == Body::Optional {
                    return Err(bad(format!(
                        "PLEN {plen} announces in-capsule data, but there is none"
                    )));
                }
                (n, digests.data)
            }
        };
        if flag(FLAG_DDGST) != ddgst {
            let why = match (ddgst, s.body) {
                (true, _) => "DDGST flag clear, but data digests were negotiated".to_owned(),
                (false, Body::Always) => {
                    "DDGST flag set, but data digests were not negotiated".to_owned()
                }
                (false, Body::Optional) if digests.data => {
                    "DDGST flag set on a capsule without data".to_owned()
                }
                (false, Body::Optional) => {
                    "DDGST flag set, but data digests were not negotiated".to_owned()
                }
                (false, _) => "DDGST flag set on a PDU type that never carries data".to_owned(),
            };
            return Err(bad(why));
        }
        // Data, when there is any, follows the header (and its digest)
        // directly; a TermReq's PDO is reserved.
        let want_pdo = match s.body {
            Body::Always => Some(hdr_end),
            Body::Optional if data_len > 0 => Some(hdr_end),
            Body::Optional | Body::None => Some(0),
            Body::Term => None,
        };
        if let Some(want) = want_pdo {
            if pdo != want {
                return Err(bad(format!("PDO {pdo}, must be {want}")));
            }
        }
        if self.pdu_type == pdu_type::C2H_DATA && flag(FLAG_SUCCESS) && !flag(FLAG_LAST_PDU) {
            return Err(ProtoError::InvalidValue {
                what: "NVMe/TCP C2HData flags",
                value: u64::from(self.flags),
                expected: "SUCCESS only together with LAST_PDU",
            });
        }
        if self.pdu_type == pdu_type::H2C_DATA && flag(FLAG_SUCCESS) {
            return Err(ProtoError::InvalidValue {
                what: "NVMe/TCP H2CData flags",
                value: u64::from(self.flags),
                expected: "no SUCCESS flag (it is for C2HData)",
            });
        }
        Ok(Layout {
            shape: s,
            hlen,
            hdgst,
            data_off: hdr_end,
            data_len,
            ddgst,
        })
    }
}

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

/// The CRC32C lookup table, built at compile time (reflected polynomial
/// 0x82F63B78).
// The loop index is below 256 by its bound; a const cannot use get_mut.
#[allow(clippy::indexing_slicing)]
const CRC32C_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0usize;
    let mut n = 0u32;
    while i < 256 {
        let mut crc = n;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
        n += 1;
    }
    table
};

/// CRC32C (Castagnoli), as NVMe/TCP digests use it: initial value !0,
/// final xor !0, reflected polynomial 0x82F63B78. On the wire the digest is
/// little-endian.
pub fn crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        let [low, ..] = crc.to_le_bytes();
        let entry = CRC32C_TABLE
            .get(usize::from(low ^ b))
            .copied()
            .unwrap_or_default();
        crc = (crc >> 8) ^ entry;
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::{Sgl, Status};
    use crate::fabrics::{ConnectData, FabricsCommand};
    use proptest::prelude::*;

    /// Bytes from a spaced hex dump, so expected PDUs read like the tables
    /// of the NVMe/TCP transport specification.
    fn hex(s: &str) -> Vec<u8> {
        s.split_whitespace()
            .map(|b| u8::from_str_radix(b, 16).unwrap())
            .collect()
    }

    fn zeros(n: usize) -> Vec<u8> {
        vec![0; n]
    }

    fn round_trip(pdu: &Pdu, digests: Digests) -> Vec<u8> {
        let raw = pdu.emit(digests).unwrap();
        assert_eq!(&Pdu::parse(&raw, digests).unwrap(), pdu);
        raw
    }

    use crate::fabrics::tests::{connect_data, HOSTNQN};

    fn connect_pdu() -> Pdu {
        Pdu::CapsuleCmd(CapsuleCmd {
            sqe: FabricsCommand::Connect {
                recfmt: 0,
                qid: 0,
                sqsize: 31,
                cattr: 0,
                kato: 5000,
            }
            .to_sqe(0),
            data: connect_data().emit().unwrap().to_vec(),
        })
    }

    /// The Connect SQE (command id 0, SQSIZE 31, KATO 5000) byte by byte.
    fn connect_sqe_bytes() -> Vec<u8> {
        let mut b = hex("7f 40 00 00 01 00 00 00"); // opcode, PSDT SGL, cid 0, FCTYPE 1
        b.extend(zeros(16)); // cdw2, cdw3, mptr
        b.extend(hex("00 00 00 00 00 00 00 00 00 04 00 00 00 00 00 01")); // SGL: 1024 in capsule
        b.extend(hex("00 00 00 00 1f 00 00 00 88 13 00 00")); // RECFMT QID SQSIZE CATTR KATO
        b.extend(zeros(12));
        b
    }

    fn connect_data_bytes() -> Vec<u8> {
        let mut d = hex("0f 1e 2d 3c 4b 5a 69 78 87 96 a5 b4 c3 d2 e1 f0 ff ff");
        d.resize(256, 0);
        d.extend(b"nqn.2014-08.org.nvmexpress.discovery");
        d.resize(512, 0);
        d.extend(HOSTNQN.as_bytes());
        d.resize(1024, 0);
        d
    }

    #[test]
    fn crc32c_known_vectors() {
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c(&[0u8; 32]), 0x8A91_36AA);
        assert_eq!(crc32c(&[0xffu8; 32]), 0x62A8_AB43);
        assert_eq!(crc32c(b""), 0);
    }

    #[test]
    fn icreq_icresp_layout() {
        let mut want = hex("00 00 80 00 80 00 00 00  00 00 00 03 00 00 00 00");
        want.resize(128, 0);
        let req = Pdu::IcReq(IcReq {
            pfv: 0,
            hpda: 0,
            digests: Digests::BOTH,
            maxr2t: 0,
        });
        // ICReq never carries digests, whatever was negotiated.
        assert_eq!(round_trip(&req, Digests::NONE), want);
        assert_eq!(round_trip(&req, Digests::BOTH), want);
        assert_eq!(req.type_name(), "ICReq");

        let mut want = hex("01 00 80 00 80 00 00 00  00 00 00 01 00 00 02 00");
        want.resize(128, 0);
        let resp = Pdu::IcResp(IcResp {
            pfv: 0,
            cpda: 0,
            digests: Digests {
                header: true,
                data: false,
            },
            maxh2cdata: 0x2_0000,
        });
        assert_eq!(round_trip(&resp, Digests::NONE), want);
        assert_eq!(round_trip(&resp, Digests::BOTH), want);
        // PLEN other than 128 is refused.
        let mut long = want.clone();
        long.push(0);
        long[4] = 129;
        assert!(Pdu::parse(&long, Digests::NONE).is_err());
    }

    #[test]
    fn connect_capsule_layout() {
        let mut want = hex("04 00 48 48 48 04 00 00"); // PLEN 72 + 1024 = 0x448
        want.extend(connect_sqe_bytes());
        want.extend(connect_data_bytes());
        assert_eq!(want.len(), 72 + 1024);
        assert_eq!(round_trip(&connect_pdu(), Digests::NONE), want);

        let mut want = hex("04 03 48 4c 50 04 00 00"); // PDO 76, PLEN 1104
        want.extend(connect_sqe_bytes());
        want.extend(hex("50 91 0e ff")); // header digest
        want.extend(connect_data_bytes());
        want.extend(hex("ae 07 8b ea")); // data digest
        assert_eq!(round_trip(&connect_pdu(), Digests::BOTH), want);

        let Pdu::CapsuleCmd(c) = Pdu::parse(&want, Digests::BOTH).unwrap() else {
            panic!("not a capsule")
        };
        assert_eq!(c.sqe.dptr.sgl_type, Sgl::IN_CAPSULE);
        assert_eq!(ConnectData::parse(&c.data).unwrap(), connect_data());
    }

    #[test]
    fn capsule_without_data_has_no_pdo_or_data_digest() {
        let pdu = Pdu::CapsuleCmd(CapsuleCmd {
            sqe: FabricsCommand::PropertyGet {
                attrib: 1,
                offset: 0,
            }
            .to_sqe(1),
            data: vec![],
        });
        let raw = round_trip(&pdu, Digests::BOTH);
        assert_eq!(&raw[..8], hex("04 01 48 00 4c 00 00 00").as_slice());
        let raw = round_trip(&pdu, Digests::NONE);
        assert_eq!(&raw[..8], hex("04 00 48 00 48 00 00 00").as_slice());
    }

    #[test]
    fn capsule_resp_layout() {
        let cqe = Cqe {
            dw0: 1,
            sqhd: 1,
            ..Cqe::default()
        };
        let cqe_bytes = "01 00 00 00 00 00 00 00 01 00 00 00 00 00 00 00";
        let pdu = Pdu::CapsuleResp(cqe);
        let want = hex(&format!("05 00 18 00 18 00 00 00 {cqe_bytes}"));
        assert_eq!(round_trip(&pdu, Digests::NONE), want);
        // A data digest is never on a PDU without data.
        assert_eq!(
            round_trip(
                &pdu,
                Digests {
                    header: false,
                    data: true
                }
            ),
            want
        );
        let want = hex(&format!("05 01 18 00 1c 00 00 00 {cqe_bytes} 42 62 33 32"));
        assert_eq!(round_trip(&pdu, Digests::BOTH), want);

        let err = Pdu::CapsuleResp(Cqe::new(5, Status::CONNECT_INVALID_HOST))
            .emit(Digests::NONE)
            .unwrap();
        assert_eq!(&err[20..24], &[5, 0, 0x08, 0x83]); // (0x4184 << 1), phase 0
    }

    fn c2h_pdu() -> Pdu {
        // The first 20 bytes of a discovery log page: GENCTR 5, NUMREC 1.
        let mut data = vec![5, 0, 0, 0, 0, 0, 0, 0, 1];
        data.resize(20, 0);
        Pdu::C2HData(DataPdu {
            command_id: 0x1003,
            ttag: 0,
            datao: 0,
            last: true,
            success: true,
            data,
        })
    }

    #[test]
    fn c2h_data_layout() {
        let fields = "03 10 00 00 00 00 00 00 14 00 00 00 00 00 00 00";
        let data = "05 00 00 00 00 00 00 00 01 00 00 00 00 00 00 00 00 00 00 00";
        let want = hex(&format!("07 0c 18 18 2c 00 00 00 {fields} {data}"));
        assert_eq!(round_trip(&c2h_pdu(), Digests::NONE), want);
        let want = hex(&format!(
            "07 0f 18 1c 34 00 00 00 {fields} 4b 6c f3 74 {data} 47 ab f8 67"
        ));
        assert_eq!(round_trip(&c2h_pdu(), Digests::BOTH), want);
    }

    #[test]
    fn r2t_layout() {
        let pdu = Pdu::R2t(R2t {
            command_id: 0x2001,
            ttag: 1,
            r2to: 0,
            r2tl: 0x3000,
        });
        let fields = "01 20 01 00 00 00 00 00 00 30 00 00 00 00 00 00";
        let want = hex(&format!("09 00 18 00 18 00 00 00 {fields}"));
        assert_eq!(round_trip(&pdu, Digests::NONE), want);
        let want = hex(&format!("09 01 18 00 1c 00 00 00 {fields} cb a1 c1 65"));
        assert_eq!(round_trip(&pdu, Digests::BOTH), want);
        assert_eq!(pdu.type_name(), "R2T");
    }

    #[test]
    fn c2h_term_req_layout() {
        let pdu = Pdu::C2HTermReq(TermReq {
            fes: FES_INVALID_HEADER_FIELD,
            fei: 2,
            header: hex("04 00 47 00 48 00 00 00"),
        });
        let want = hex(
            "03 00 18 00 20 00 00 00 01 00 02 00 00 00 00 00 00 00 00 00 00 00 00 00 \
             04 00 47 00 48 00 00 00",
        );
        // Never digests.
        assert_eq!(round_trip(&pdu, Digests::NONE), want);
        assert_eq!(round_trip(&pdu, Digests::BOTH), want);
        let too_long = Pdu::H2CTermReq(TermReq {
            fes: 1,
            fei: 0,
            header: zeros(129),
        });
        assert!(matches!(
            too_long.emit(Digests::NONE),
            Err(ProtoError::FieldTooLong { max: 128, .. })
        ));
        // PLEN past 24 + 128.
        let mut raw = want.clone();
        raw.resize(24 + 129, 0);
        raw[4] = 24 + 129;
        assert!(Pdu::parse(&raw, Digests::NONE).is_err());
    }

    fn err_text(raw: &[u8], digests: Digests) -> String {
        Pdu::parse(raw, digests).unwrap_err().to_string()
    }

    #[test]
    fn rejections_name_the_field() {
        let resp = Pdu::CapsuleResp(Cqe::new(1, Status::SUCCESS));
        let good = resp.emit(Digests::BOTH).unwrap();

        let mut raw = good.clone();
        raw[2] = 23; // HLEN
        assert!(err_text(&raw, Digests::BOTH).contains("HLEN 23, must be 24"));

        let mut raw = hex("05 00 18 00 10 00 00 00"); // PLEN 16 < HLEN 24
        raw.resize(16, 0);
        let e = err_text(&raw, Digests::NONE);
        assert!(e.contains("PLEN 16 is shorter than HLEN 24"), "{e}");

        let mut raw = good.clone();
        raw[3] = 29; // PDO past PLEN 28
        let e = Pdu::parse(&raw, Digests::BOTH).unwrap_err();
        assert!(
            matches!(
                e,
                ProtoError::OutOfBounds {
                    offset: 29,
                    limit: 28,
                    ..
                }
            ),
            "{e}"
        );

        let mut raw = good.clone();
        raw[10] ^= 1; // SQID, covered by the header digest
        let e = err_text(&raw, Digests::BOTH);
        assert!(
            e.contains("header digest") && e.contains("CapsuleResp"),
            "{e}"
        );

        let mut raw = c2h_pdu().emit(Digests::BOTH).unwrap();
        let n = raw.len();
        raw[n - 5] ^= 0x80; // last data byte
        let e = err_text(&raw, Digests::BOTH);
        assert!(e.contains("data digest") && e.contains("C2HData"), "{e}");

        // Header digests negotiated, PDU sent without: HDGST flag clear.
        let raw = resp.emit(Digests::NONE).unwrap();
        let e = err_text(&raw, Digests::BOTH);
        assert!(e.contains("HDGST flag clear"), "{e}");
        // And the other way round.
        let raw = resp.emit(Digests::BOTH).unwrap();
        assert!(err_text(&raw, Digests::NONE).contains("HDGST flag set"));
        // Data digests negotiated, C2HData sent without.
        let raw = c2h_pdu()
            .emit(Digests {
                header: true,
                data: false,
            })
            .unwrap();
        assert!(err_text(&raw, Digests::BOTH).contains("DDGST flag clear"));

        // Truncated: every prefix is an error.
        let raw = connect_pdu().emit(Digests::BOTH).unwrap();
        for cut in [0, 1, 7, 8, 71, 72, 75, 76, 1099, raw.len() - 1] {
            assert!(Pdu::parse(&raw[..cut], Digests::BOTH).is_err(), "{cut}");
        }
        let e = err_text(&raw[..100], Digests::BOTH);
        assert!(e.contains("100 bytes received, at least 1104"), "{e}");
        // Trailing bytes of the next PDU.
        let mut two = raw.clone();
        two.push(0);
        assert!(err_text(&two, Digests::BOTH).contains("exactly one PDU"));

        // Unknown type, PLEN over the limit.
        let mut raw = good.clone();
        raw[0] = 0x08;
        assert!(err_text(&raw, Digests::BOTH).contains("PDU type"));
        let over = hex("07 0c 18 18 01 01 10 00"); // PLEN 1 MiB + 257
        let e = CommonHeader::parse(&over).unwrap_err();
        assert!(e.to_string().contains("PLEN"), "{e}");
        let limit = CommonHeader::parse(&hex("07 0c 18 18 00 01 10 00")).unwrap();
        assert_eq!(limit.plen(), MAX_PDU_LEN);
        assert!(limit.check(Digests::NONE).is_ok());
        assert!(CommonHeader::parse(&hex("07 0c 18 18 07 00 00 00")).is_err());
    }

    #[test]
    fn data_pdu_rules() {
        // DATAL must match PLEN.
        let mut raw = c2h_pdu().emit(Digests::NONE).unwrap();
        raw[16] = 19;
        assert!(err_text(&raw, Digests::NONE).contains("DATAL 19"));
        // SUCCESS only with LAST_PDU on C2HData, never on H2CData.
        let mut raw = c2h_pdu().emit(Digests::NONE).unwrap();
        raw[1] = FLAG_SUCCESS;
        assert!(err_text(&raw, Digests::NONE).contains("SUCCESS only together with LAST_PDU"));
        let Pdu::C2HData(mut d) = c2h_pdu() else {
            unreachable!()
        };
        d.last = false;
        assert!(Pdu::C2HData(d.clone()).emit(Digests::NONE).is_err());
        d.last = true;
        assert!(Pdu::H2CData(d.clone()).emit(Digests::NONE).is_err());
        d.success = false;
        round_trip(&Pdu::H2CData(d.clone()), Digests::BOTH);
        // PDO must point right after the header.
        let mut raw = Pdu::H2CData(d).emit(Digests::NONE).unwrap();
        raw[3] = 28;
        assert!(err_text(&raw, Digests::NONE).contains("PDO 28, must be 24"));
    }

    #[test]
    fn capsule_pdo_rules() {
        let raw = connect_pdu().emit(Digests::NONE).unwrap();
        let mut bad = raw.clone();
        bad[3] = 0; // data but no PDO
        assert!(err_text(&bad, Digests::NONE).contains("PDO 0, must be 72"));
        // PDO set, PLEN says no data.
        let mut raw = Pdu::CapsuleCmd(CapsuleCmd {
            sqe: Sqe::default(),
            data: vec![],
        })
        .emit(Digests::NONE)
        .unwrap();
        raw[3] = 72;
        assert!(err_text(&raw, Digests::NONE).contains("PDO 72, must be 0"));
        // Only a data digest's worth of bytes after the header.
        let mut raw = hex("04 02 48 48 4c 00 00 00");
        raw.resize(76, 0);
        assert!(err_text(
            &raw,
            Digests {
                header: false,
                data: true
            }
        )
        .contains("in-capsule data, but there is none"));
    }

    #[test]
    fn too_much_data_is_refused_on_emit() {
        let pdu = Pdu::C2HData(DataPdu {
            command_id: 1,
            ttag: 0,
            datao: 0,
            last: true,
            success: false,
            data: zeros(MAX_DATA_LEN + 1),
        });
        assert!(pdu.emit(Digests::BOTH).is_err());
        let pdu = Pdu::CapsuleCmd(CapsuleCmd {
            sqe: Sqe::default(),
            data: zeros(MAX_DATA_LEN + 1),
        });
        assert!(pdu.emit(Digests::NONE).is_err());
        let pdu = Pdu::CapsuleCmd(CapsuleCmd {
            sqe: Sqe::default(),
            data: zeros(MAX_DATA_LEN),
        });
        round_trip(&pdu, Digests::BOTH);
    }

    fn arb_digests() -> impl Strategy<Value = Digests> {
        (any::<bool>(), any::<bool>()).prop_map(|(header, data)| Digests { header, data })
    }

    fn arb_sqe() -> impl Strategy<Value = Sqe> {
        proptest::collection::vec(any::<u8>(), SQE_LEN).prop_map(|mut b| {
            b[36..39].fill(0);
            Sqe::parse(&b).unwrap()
        })
    }

    fn arb_cqe() -> impl Strategy<Value = Cqe> {
        proptest::collection::vec(any::<u8>(), CQE_LEN).prop_map(|b| Cqe::parse(&b).unwrap())
    }

    fn arb_data(max: usize) -> impl Strategy<Value = Vec<u8>> + Clone {
        proptest::collection::vec(any::<u8>(), 0..max)
    }

    fn arb_pdu() -> impl Strategy<Value = Pdu> {
        let data_pdu = (
            any::<u16>(),
            any::<u16>(),
            any::<u32>(),
            any::<bool>(),
            any::<bool>(),
            arb_data(300),
        )
            .prop_map(|(command_id, ttag, datao, last, success, data)| DataPdu {
                command_id,
                ttag,
                datao,
                last,
                success: success && last,
                data,
            });
        let term = (
            any::<u16>(),
            any::<u32>(),
            arb_data(MAX_TERM_HEADER_LEN + 1),
        )
            .prop_map(|(fes, fei, header)| TermReq { fes, fei, header });
        prop_oneof![
            (any::<u16>(), any::<u8>(), arb_digests(), any::<u32>()).prop_map(
                |(pfv, hpda, digests, maxr2t)| Pdu::IcReq(IcReq {
                    pfv,
                    hpda,
                    digests,
                    maxr2t
                })
            ),
            (any::<u16>(), any::<u8>(), arb_digests(), any::<u32>()).prop_map(
                |(pfv, cpda, digests, maxh2cdata)| Pdu::IcResp(IcResp {
                    pfv,
                    cpda,
                    digests,
                    maxh2cdata
                })
            ),
            term.clone().prop_map(Pdu::H2CTermReq),
            term.prop_map(Pdu::C2HTermReq),
            (arb_sqe(), arb_data(1100))
                .prop_map(|(sqe, data)| Pdu::CapsuleCmd(CapsuleCmd { sqe, data })),
            arb_cqe().prop_map(Pdu::CapsuleResp),
            data_pdu.clone().prop_map(|mut d| {
                d.success = false;
                Pdu::H2CData(d)
            }),
            data_pdu.prop_map(Pdu::C2HData),
            (any::<u16>(), any::<u16>(), any::<u32>(), any::<u32>()).prop_map(
                |(command_id, ttag, r2to, r2tl)| Pdu::R2t(R2t {
                    command_id,
                    ttag,
                    r2to,
                    r2tl
                })
            ),
        ]
    }

    proptest! {
        #[test]
        fn every_pdu_round_trips(pdu in arb_pdu(), digests in arb_digests()) {
            let raw = pdu.emit(digests).unwrap();
            let h = CommonHeader::parse(&raw).unwrap();
            prop_assert_eq!(h.plen(), raw.len());
            prop_assert!(h.check(digests).is_ok());
            prop_assert_eq!(h.pdu_type, pdu.pdu_type());
            prop_assert_eq!(Pdu::parse(&raw, digests).unwrap(), pdu);
        }

        #[test]
        fn wrong_digest_setting_is_refused(pdu in arb_pdu(), digests in arb_digests(), other in arb_digests()) {
            let raw = pdu.emit(digests).unwrap();
            // The same bytes parse under other digests only if they would
            // have been emitted identically.
            if let Ok(p) = Pdu::parse(&raw, other) {
                prop_assert_eq!(&p, &pdu);
                prop_assert_eq!(pdu.emit(other).unwrap(), raw);
            }
        }

        #[test]
        fn any_bytes_never_panic(raw in proptest::collection::vec(any::<u8>(), 0..400), dg in 0..4u8) {
            let digests = Digests::from_bits(dg);
            let _ = CommonHeader::parse(&raw);
            if let Ok(p) = Pdu::parse(&raw, digests) {
                prop_assert_eq!(Pdu::parse(&p.emit(digests).unwrap(), digests).unwrap(), p);
            }
        }

        #[test]
        fn damaged_pdus_never_panic(pdu in arb_pdu(), digests in arb_digests(),
                                    flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
                                    cut in any::<prop::sample::Index>()) {
            let mut raw = pdu.emit(digests).unwrap();
            for (at, v) in flips {
                let i = at.index(raw.len());
                raw[i] = v;
            }
            for buf in [&raw[..], &raw[..cut.index(raw.len())]] {
                if let Ok(p) = Pdu::parse(buf, digests) {
                    prop_assert_eq!(Pdu::parse(&p.emit(digests).unwrap(), digests).unwrap(), p);
                }
            }
        }
    }
}
