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

use crate::command::SQE_LEN;
use crate::wire;
use crate::ProtoError;

mod digest;
mod pdu;

pub use digest::crc32c;
pub use pdu::{
    CapsuleCmd, DataPdu, IcReq, IcResp, Pdu, R2t, TermReq, FES_DATA_OUT_OF_RANGE,
    FES_HEADER_DIGEST_ERROR, FES_INVALID_HEADER_FIELD, FES_PDU_SEQUENCE_ERROR,
    FES_R2T_LIMIT_EXCEEDED, FES_UNSUPPORTED_PARAMETER,
};

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

#[cfg(test)]
mod tests;
