//! NVMe submission and completion queue entries (SQE, CQE), their status
//! field, and the SGL descriptor NVMe over Fabrics puts in an SQE's data
//! pointer (NVMe base specification; the values the Linux NVMe/TCP host
//! uses are summarised in docs/dcsim.md).
//!
//! Every field is kept as received: an SQE or CQE has no invalid bit
//! pattern, so parsing fails only on a short buffer. What a field means for
//! a given opcode is for the caller ([`crate::fabrics`] decodes the fabrics
//! commands).

use std::fmt;

use crate::wire;
use crate::ProtoError;

/// Size of a submission queue entry.
pub const SQE_LEN: usize = 64;
/// Size of a completion queue entry.
pub const CQE_LEN: usize = 16;
/// Size of an SGL descriptor.
pub const SGL_LEN: usize = 16;

/// SQE flags byte with PSDT = 01b ("SGL, metadata buffer"): what the Linux
/// host sets on every NVMe/TCP command.
pub const SQE_FLAGS_SGL: u8 = 0x40;

/// An SGL descriptor (the data pointer of an NVMe-oF SQE): address le64,
/// length le32, three reserved bytes, the type byte at offset 15
/// (descriptor type in the high nibble, subtype in the low one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Sgl {
    /// Address; for in-capsule data the offset into the capsule (ICDOFF, 0).
    pub address: u64,
    /// Length of the data in bytes.
    pub length: u32,
    /// The type byte.
    pub sgl_type: u8,
}

impl Sgl {
    /// Data block, subtype offset: the data is in the command capsule.
    pub const IN_CAPSULE: u8 = 0x01;
    /// Transport data block: the data moves in C2HData or R2T/H2CData PDUs;
    /// with length 0, the command has no data.
    pub const TRANSPORT: u8 = 0x5A;

    /// Parses a descriptor from the first [`SGL_LEN`] bytes of `buf`. The
    /// reserved bytes 12..15 are ignored.
    pub fn parse(buf: &[u8]) -> Result<Self, ProtoError> {
        const WHAT: &str = "SGL descriptor";
        wire::slice(buf, 0, SGL_LEN, WHAT)?;
        Ok(Self {
            address: wire::u64_at(buf, 0, WHAT)?,
            length: wire::u32_at(buf, 8, WHAT)?,
            sgl_type: wire::u8_at(buf, 15, WHAT)?,
        })
    }

    /// Emits the 16-byte descriptor (reserved bytes zero).
    pub fn emit(&self) -> [u8; SGL_LEN] {
        let mut b = [0u8; SGL_LEN];
        b[0..8].copy_from_slice(&self.address.to_le_bytes());
        b[8..12].copy_from_slice(&self.length.to_le_bytes());
        b[15] = self.sgl_type;
        b
    }
}

/// A submission queue entry: 0 opcode, 1 flags, 2 command id, 4 NSID,
/// 8 CDW2, 12 CDW3, 16 metadata pointer, 24 data pointer (an SGL),
/// 40..64 CDW10..CDW15, all little-endian.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Sqe {
    /// Opcode.
    pub opcode: u8,
    /// Flags: fused operation (bits 1:0) and PSDT (bits 7:6).
    pub flags: u8,
    /// Command identifier, echoed in the completion. The Linux host keeps a
    /// generation counter in its top 4 bits.
    pub command_id: u16,
    /// Namespace id; a fabrics command's FCTYPE is its low byte (SQE byte 4).
    pub nsid: u32,
    /// Command dword 2.
    pub cdw2: u32,
    /// Command dword 3.
    pub cdw3: u32,
    /// Metadata pointer.
    pub mptr: u64,
    /// Data pointer.
    pub dptr: Sgl,
    /// Command dword 10.
    pub cdw10: u32,
    /// Command dword 11.
    pub cdw11: u32,
    /// Command dword 12.
    pub cdw12: u32,
    /// Command dword 13.
    pub cdw13: u32,
    /// Command dword 14.
    pub cdw14: u32,
    /// Command dword 15.
    pub cdw15: u32,
}

impl Sqe {
    /// Parses an SQE from the first [`SQE_LEN`] bytes of `buf`.
    pub fn parse(buf: &[u8]) -> Result<Self, ProtoError> {
        const WHAT: &str = "SQE";
        let b = wire::slice(buf, 0, SQE_LEN, WHAT)?;
        Ok(Self {
            opcode: wire::u8_at(b, 0, WHAT)?,
            flags: wire::u8_at(b, 1, WHAT)?,
            command_id: wire::u16_at(b, 2, WHAT)?,
            nsid: wire::u32_at(b, 4, WHAT)?,
            cdw2: wire::u32_at(b, 8, WHAT)?,
            cdw3: wire::u32_at(b, 12, WHAT)?,
            mptr: wire::u64_at(b, 16, WHAT)?,
            dptr: Sgl::parse(wire::slice(b, 24, SGL_LEN, WHAT)?)?,
            cdw10: wire::u32_at(b, 40, WHAT)?,
            cdw11: wire::u32_at(b, 44, WHAT)?,
            cdw12: wire::u32_at(b, 48, WHAT)?,
            cdw13: wire::u32_at(b, 52, WHAT)?,
            cdw14: wire::u32_at(b, 56, WHAT)?,
            cdw15: wire::u32_at(b, 60, WHAT)?,
        })
    }

    /// Emits the 64-byte SQE.
    pub fn emit(&self) -> [u8; SQE_LEN] {
        let mut b = [0u8; SQE_LEN];
        b[0] = self.opcode;
        b[1] = self.flags;
        b[2..4].copy_from_slice(&self.command_id.to_le_bytes());
        b[4..8].copy_from_slice(&self.nsid.to_le_bytes());
        b[8..12].copy_from_slice(&self.cdw2.to_le_bytes());
        b[12..16].copy_from_slice(&self.cdw3.to_le_bytes());
        b[16..24].copy_from_slice(&self.mptr.to_le_bytes());
        b[24..40].copy_from_slice(&self.dptr.emit());
        b[40..44].copy_from_slice(&self.cdw10.to_le_bytes());
        b[44..48].copy_from_slice(&self.cdw11.to_le_bytes());
        b[48..52].copy_from_slice(&self.cdw12.to_le_bytes());
        b[52..56].copy_from_slice(&self.cdw13.to_le_bytes());
        b[56..60].copy_from_slice(&self.cdw14.to_le_bytes());
        b[60..64].copy_from_slice(&self.cdw15.to_le_bytes());
        b
    }
}

/// A completion's status field: SC bits 7:0, SCT 10:8, CRD 12:11, MORE 13,
/// DNR 14 (15 bits; on the wire it sits above the phase bit).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Status {
    /// Status code.
    pub sc: u8,
    /// Status code type (3 bits): 0 generic, 1 command specific, 2 media
    /// and data integrity, 3 path related, 7 vendor specific.
    pub sct: u8,
    /// Command retry delay (2 bits): which CRDT of Identify applies.
    pub crd: u8,
    /// More status information in the Error Information log page.
    pub more: bool,
    /// Do not retry.
    pub dnr: bool,
}

impl Status {
    /// Successful completion.
    pub const SUCCESS: Status = Status::new(0, 0, false);
    /// Generic 0x01: invalid command opcode (DNR).
    pub const INVALID_OPCODE: Status = Status::new(0, 0x01, true);
    /// Generic 0x02: invalid field in command (DNR).
    pub const INVALID_FIELD: Status = Status::new(0, 0x02, true);
    /// Generic 0x06: internal error.
    pub const INTERNAL_ERROR: Status = Status::new(0, 0x06, false);
    /// Generic 0x0C: command sequence error (DNR).
    pub const COMMAND_SEQUENCE_ERROR: Status = Status::new(0, 0x0C, true);
    /// Command specific 0x09: invalid log page (DNR).
    pub const INVALID_LOG_PAGE: Status = Status::new(1, 0x09, true);
    /// Connect 0x80: incompatible format (RECFMT) (DNR).
    pub const CONNECT_INCOMPATIBLE_FORMAT: Status = Status::new(1, 0x80, true);
    /// Connect 0x81: controller busy.
    pub const CONNECT_CONTROLLER_BUSY: Status = Status::new(1, 0x81, false);
    /// Connect 0x82: invalid parameters (DNR); DW0 says which (see
    /// [`crate::fabrics::connect_invalid_parameter_dw0`]).
    pub const CONNECT_INVALID_PARAMETERS: Status = Status::new(1, 0x82, true);
    /// Connect 0x83: restart discovery (DNR).
    pub const CONNECT_RESTART_DISCOVERY: Status = Status::new(1, 0x83, true);
    /// Connect 0x84: invalid host (DNR).
    pub const CONNECT_INVALID_HOST: Status = Status::new(1, 0x84, true);

    /// A status with CRD 0 and MORE clear.
    pub const fn new(sct: u8, sc: u8, dnr: bool) -> Self {
        Self {
            sc,
            sct,
            crd: 0,
            more: false,
            dnr,
        }
    }

    /// The 15-bit status field. `sct` and `crd` are masked to their 3 and 2
    /// bits.
    pub fn field(self) -> u16 {
        u16::from(self.sc)
            | u16::from(self.sct & 0x7) << 8
            | u16::from(self.crd & 0x3) << 11
            | u16::from(self.more) << 13
            | u16::from(self.dnr) << 14
    }

    /// Decodes a status field; bit 15 is ignored.
    pub fn from_field(f: u16) -> Self {
        let [sc, hi] = f.to_le_bytes();
        Self {
            sc,
            sct: hi & 0x7,
            crd: (hi >> 3) & 0x3,
            more: hi & 0x20 != 0,
            dnr: hi & 0x40 != 0,
        }
    }

    /// SCT 0 and SC 0 (CRD, MORE and DNR do not matter).
    pub fn is_success(self) -> bool {
        self.sc == 0 && self.sct == 0
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SCT {:#x} SC {:#04x}", self.sct, self.sc)?;
        if self.crd != 0 {
            write!(f, " CRD {}", self.crd)?;
        }
        if self.more {
            f.write_str(" MORE")?;
        }
        if self.dnr {
            f.write_str(" DNR")?;
        }
        Ok(())
    }
}

/// Common status constants, the same values as [`Status`]'s associated
/// constants.
pub const SUCCESS: Status = Status::SUCCESS;
/// Generic 0x01: invalid command opcode (DNR).
pub const INVALID_OPCODE: Status = Status::INVALID_OPCODE;
/// Generic 0x02: invalid field in command (DNR).
pub const INVALID_FIELD: Status = Status::INVALID_FIELD;
/// Generic 0x06: internal error.
pub const INTERNAL_ERROR: Status = Status::INTERNAL_ERROR;
/// Generic 0x0C: command sequence error (DNR).
pub const COMMAND_SEQUENCE_ERROR: Status = Status::COMMAND_SEQUENCE_ERROR;
/// Command specific 0x09: invalid log page (DNR).
pub const INVALID_LOG_PAGE: Status = Status::INVALID_LOG_PAGE;
/// Connect 0x80: incompatible format (DNR).
pub const CONNECT_INCOMPATIBLE_FORMAT: Status = Status::CONNECT_INCOMPATIBLE_FORMAT;
/// Connect 0x81: controller busy.
pub const CONNECT_CONTROLLER_BUSY: Status = Status::CONNECT_CONTROLLER_BUSY;
/// Connect 0x82: invalid parameters (DNR).
pub const CONNECT_INVALID_PARAMETERS: Status = Status::CONNECT_INVALID_PARAMETERS;
/// Connect 0x83: restart discovery (DNR).
pub const CONNECT_RESTART_DISCOVERY: Status = Status::CONNECT_RESTART_DISCOVERY;
/// Connect 0x84: invalid host (DNR).
pub const CONNECT_INVALID_HOST: Status = Status::CONNECT_INVALID_HOST;

/// A completion queue entry: 0 DW0, 4 DW1, 8 SQHD, 10 SQID, 12 command id,
/// 14 status word = status field << 1 | phase, all little-endian.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Cqe {
    /// Command specific result (Connect: the CNTLID; Property Get: the value).
    pub dw0: u32,
    /// Command specific dword 1 (Property Get of 8 bytes: the high half).
    pub dw1: u32,
    /// Submission queue head pointer (the Linux host ignores it).
    pub sqhd: u16,
    /// Submission queue id (0 on the admin queue).
    pub sqid: u16,
    /// The command id of the SQE this completes, echoed exactly.
    pub command_id: u16,
    /// Status.
    pub status: Status,
    /// Phase tag (meaningless on fabrics; kept for byte-exactness).
    pub phase: bool,
}

impl Cqe {
    /// A completion of `command_id` with `status` and all else zero.
    pub fn new(command_id: u16, status: Status) -> Self {
        Self {
            command_id,
            status,
            ..Self::default()
        }
    }

    /// Parses a CQE from the first [`CQE_LEN`] bytes of `buf`.
    pub fn parse(buf: &[u8]) -> Result<Self, ProtoError> {
        const WHAT: &str = "CQE";
        let b = wire::slice(buf, 0, CQE_LEN, WHAT)?;
        let status = wire::u16_at(b, 14, WHAT)?;
        Ok(Self {
            dw0: wire::u32_at(b, 0, WHAT)?,
            dw1: wire::u32_at(b, 4, WHAT)?,
            sqhd: wire::u16_at(b, 8, WHAT)?,
            sqid: wire::u16_at(b, 10, WHAT)?,
            command_id: wire::u16_at(b, 12, WHAT)?,
            status: Status::from_field(status >> 1),
            phase: status & 1 != 0,
        })
    }

    /// Emits the 16-byte CQE.
    pub fn emit(&self) -> [u8; CQE_LEN] {
        let mut b = [0u8; CQE_LEN];
        b[0..4].copy_from_slice(&self.dw0.to_le_bytes());
        b[4..8].copy_from_slice(&self.dw1.to_le_bytes());
        b[8..10].copy_from_slice(&self.sqhd.to_le_bytes());
        b[10..12].copy_from_slice(&self.sqid.to_le_bytes());
        b[12..14].copy_from_slice(&self.command_id.to_le_bytes());
        let word = self.status.field() << 1 | u16::from(self.phase);
        b[14..16].copy_from_slice(&word.to_le_bytes());
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn sqe_fields_at_their_offsets() {
        let mut raw = [0u8; 64];
        raw[0] = 0x06; // Identify
        raw[1] = 0x40;
        raw[2..4].copy_from_slice(&[0x34, 0x12]);
        raw[4..8].copy_from_slice(&[1, 0, 0, 0]);
        raw[8] = 2;
        raw[12] = 3;
        raw[16] = 4;
        raw[32..36].copy_from_slice(&[0x00, 0x10, 0, 0]);
        raw[39] = 0x5a;
        raw[40] = 0x01; // CNS 1
        raw[44] = 11;
        raw[48] = 12;
        raw[52] = 13;
        raw[56] = 14;
        raw[60] = 15;
        let sqe = Sqe::parse(&raw).unwrap();
        assert_eq!(
            sqe,
            Sqe {
                opcode: 0x06,
                flags: SQE_FLAGS_SGL,
                command_id: 0x1234,
                nsid: 1,
                cdw2: 2,
                cdw3: 3,
                mptr: 4,
                dptr: Sgl {
                    address: 0,
                    length: 4096,
                    sgl_type: Sgl::TRANSPORT
                },
                cdw10: 1,
                cdw11: 11,
                cdw12: 12,
                cdw13: 13,
                cdw14: 14,
                cdw15: 15,
            }
        );
        assert_eq!(sqe.emit(), raw);
        Sqe::parse(&raw[..63]).unwrap_err();
        // Bytes past the SQE are not looked at.
        let mut longer = raw.to_vec();
        longer.push(0xff);
        assert_eq!(Sqe::parse(&longer).unwrap(), sqe);
    }

    #[test]
    fn sgl_reserved_bytes_ignored() {
        let mut raw = Sgl {
            address: 0x0102_0304_0506_0708,
            length: 1024,
            sgl_type: Sgl::IN_CAPSULE,
        }
        .emit();
        assert_eq!(raw, [8, 7, 6, 5, 4, 3, 2, 1, 0, 4, 0, 0, 0, 0, 0, 0x01]);
        raw[12] = 0xee;
        assert_eq!(Sgl::parse(&raw).unwrap().length, 1024);
        Sgl::parse(&raw[..15]).unwrap_err();
    }

    #[test]
    fn status_field_bits() {
        assert_eq!(Status::SUCCESS.field(), 0);
        assert!(Status::SUCCESS.is_success());
        assert_eq!(Status::INVALID_OPCODE.field(), 0x4001);
        assert_eq!(Status::INVALID_FIELD.field(), 0x4002);
        assert_eq!(Status::CONNECT_INVALID_PARAMETERS.field(), 0x4182);
        assert_eq!(Status::CONNECT_INVALID_HOST.field(), 0x4184);
        assert_eq!(INVALID_LOG_PAGE.field(), 0x4109);
        assert!(!INVALID_FIELD.is_success());
        let s = Status {
            sc: 0xab,
            sct: 7,
            crd: 3,
            more: true,
            dnr: true,
        };
        assert_eq!(s.field(), 0x7fab);
        assert_eq!(Status::from_field(0x7fab), s);
        assert_eq!(Status::from_field(0xffab), s);
        assert_eq!(s.to_string(), "SCT 0x7 SC 0xab CRD 3 MORE DNR");
        assert_eq!(CONNECT_INVALID_HOST.to_string(), "SCT 0x1 SC 0x84 DNR");
        // Success with DNR is still success.
        assert!(Status::new(0, 0, true).is_success());
    }

    #[test]
    fn cqe_fields_at_their_offsets() {
        let raw = [
            0x01, 0x00, 0x00, 0x00, // DW0: CNTLID 1
            0xaa, 0xbb, 0xcc, 0xdd, // DW1
            0x05, 0x00, // SQHD
            0x00, 0x00, // SQID
            0x1f, 0x00, // command id 31
            0x09, 0x83, // status: (0x4184 << 1) | phase 1
        ];
        let cqe = Cqe::parse(&raw).unwrap();
        assert_eq!(
            cqe,
            Cqe {
                dw0: 1,
                dw1: 0xddcc_bbaa,
                sqhd: 5,
                sqid: 0,
                command_id: 31,
                status: CONNECT_INVALID_HOST,
                phase: true,
            }
        );
        assert_eq!(cqe.emit(), raw);
        Cqe::parse(&raw[..15]).unwrap_err();
        assert_eq!(Cqe::new(7, SUCCESS).emit()[12..16], [7, 0, 0, 0]);
    }

    fn arb_status() -> impl Strategy<Value = Status> {
        (any::<u8>(), 0..8u8, 0..4u8, any::<bool>(), any::<bool>()).prop_map(
            |(sc, sct, crd, more, dnr)| Status {
                sc,
                sct,
                crd,
                more,
                dnr,
            },
        )
    }

    proptest! {
        #[test]
        fn sqe_any_bytes_round_trip(raw in proptest::collection::vec(any::<u8>(), 64)) {
            let sqe = Sqe::parse(&raw).unwrap();
            let mut expect = raw.clone();
            expect[36..39].fill(0); // SGL reserved bytes
            prop_assert_eq!(sqe.emit().to_vec(), expect);
        }

        #[test]
        fn cqe_round_trip(dw0 in any::<u32>(), dw1 in any::<u32>(), sqhd in any::<u16>(),
                          sqid in any::<u16>(), command_id in any::<u16>(),
                          status in arb_status(), phase in any::<bool>()) {
            let cqe = Cqe { dw0, dw1, sqhd, sqid, command_id, status, phase };
            prop_assert_eq!(Cqe::parse(&cqe.emit()).unwrap(), cqe);
        }

        #[test]
        fn cqe_any_bytes_round_trip(raw in proptest::collection::vec(any::<u8>(), 16)) {
            let cqe = Cqe::parse(&raw).unwrap();
            prop_assert_eq!(cqe.emit().to_vec(), raw);
        }

        #[test]
        fn short_or_any_bytes_never_panic(raw in proptest::collection::vec(any::<u8>(), 0..80)) {
            prop_assert_eq!(Sqe::parse(&raw).is_ok(), raw.len() >= SQE_LEN);
            prop_assert_eq!(Cqe::parse(&raw).is_ok(), raw.len() >= CQE_LEN);
            prop_assert_eq!(Sgl::parse(&raw).is_ok(), raw.len() >= SGL_LEN);
        }
    }
}
