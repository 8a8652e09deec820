//! NVMe over Fabrics commands (opcode 0x7F): Connect and its 1024-byte
//! data, Property Get/Set, Disconnect (NVMe over Fabrics
//! specification; see docs/dcsim.md for what a Linux host sends).
//!
//! A fabrics command is an [`Sqe`] whose byte 4 (the low byte of the NSID
//! field) is the FCTYPE; the command-specific fields sit in CDW10..CDW13.
//! Unknown FCTYPEs are kept ([`FabricsCommand::Other`]) for the caller to
//! answer with Invalid Opcode.

use crate::command::{Sgl, Sqe, SQE_FLAGS_SGL};
use crate::wire::{self, decode_text, Charset, Out};
use crate::ProtoError;

/// The fabrics command opcode.
pub const OPC_FABRICS: u8 = 0x7F;
/// Size of the Connect command's in-capsule data.
pub const CONNECT_DATA_LEN: usize = 1024;

/// FCTYPE of Property Set.
pub const FCTYPE_PROPERTY_SET: u8 = 0x00;
/// FCTYPE of Connect.
pub const FCTYPE_CONNECT: u8 = 0x01;
/// FCTYPE of Property Get.
pub const FCTYPE_PROPERTY_GET: u8 = 0x04;
/// FCTYPE of Authentication Send.
pub const FCTYPE_AUTH_SEND: u8 = 0x05;
/// FCTYPE of Authentication Receive.
pub const FCTYPE_AUTH_RECEIVE: u8 = 0x06;
/// FCTYPE of Disconnect.
pub const FCTYPE_DISCONNECT: u8 = 0x08;

/// Property ATTRIB size (bits 2:0): a 4-byte property.
pub const ATTRIB_SIZE_4: u8 = 0;
/// Property ATTRIB size (bits 2:0): an 8-byte property.
pub const ATTRIB_SIZE_8: u8 = 1;

/// Controller Capabilities (8 bytes).
pub const PROP_CAP: u32 = 0x00;
/// Version (4 bytes).
pub const PROP_VS: u32 = 0x08;
/// Controller Configuration (4 bytes).
pub const PROP_CC: u32 = 0x14;
/// Controller Status (4 bytes).
pub const PROP_CSTS: u32 = 0x1C;
/// Controller Ready Timeouts (4 bytes; read only if CAP.CRMS != 0).
pub const PROP_CRTO: u32 = 0x68;

/// The CNTLID a host asks for to get any controller (dynamic model).
pub const CNTLID_DYNAMIC: u16 = 0xFFFF;

/// The size in bytes a Property Get/Set ATTRIB selects: 4 or 8.
pub fn property_len(attrib: u8) -> Result<usize, ProtoError> {
    match attrib & 0x7 {
        ATTRIB_SIZE_4 => Ok(4),
        ATTRIB_SIZE_8 => Ok(8),
        other => Err(ProtoError::InvalidValue {
            what: "property ATTRIB size",
            value: u64::from(other),
            expected: "0 (4 bytes) or 1 (8 bytes)",
        }),
    }
}

/// DW0 of a Connect completion with status
/// [`CONNECT_INVALID_PARAMETERS`](crate::command::CONNECT_INVALID_PARAMETERS):
/// bits 15:0 the byte offset of the bad field, bit 16 set if that offset is
/// in the Connect data rather than the SQE.
pub fn connect_invalid_parameter_dw0(offset: u16, in_data: bool) -> u32 {
    u32::from(offset) | u32::from(in_data) << 16
}

/// A fabrics command, decoded from its SQE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FabricsCommand {
    /// Property Set (FCTYPE 0x00): 40 ATTRIB, 44 OFFSET le32, 48 VALUE le64.
    PropertySet {
        /// Size selector (bits 2:0, see [`property_len`]).
        attrib: u8,
        /// Property offset ([`PROP_CC`], ...).
        offset: u32,
        /// The value; only the low 4 bytes count for a 4-byte property.
        value: u64,
    },
    /// Connect (FCTYPE 0x01): 40 RECFMT le16, 42 QID le16, 44 SQSIZE le16,
    /// 46 CATTR, 48 KATO le32; its data is a [`ConnectData`].
    Connect {
        /// Record format, 0.
        recfmt: u16,
        /// Queue id: 0 for the admin queue.
        qid: u16,
        /// Submission queue size, 0's based (admin: 31 for a depth of 32).
        sqsize: u16,
        /// Connect attributes (bit 2: disable SQ flow control).
        cattr: u8,
        /// Keep-alive timeout in milliseconds (0: none).
        kato: u32,
    },
    /// Property Get (FCTYPE 0x04): 40 ATTRIB, 44 OFFSET le32.
    PropertyGet {
        /// Size selector (bits 2:0, see [`property_len`]).
        attrib: u8,
        /// Property offset ([`PROP_CAP`], ...).
        offset: u32,
    },
    /// Disconnect (FCTYPE 0x08): 40 RECFMT le16.
    Disconnect {
        /// Record format, 0.
        recfmt: u16,
    },
    /// Another FCTYPE (authentication, reserved, vendor specific).
    Other {
        /// The FCTYPE.
        fctype: u8,
    },
}

fn lo16(v: u32) -> u16 {
    let [a, b, _, _] = v.to_le_bytes();
    u16::from_le_bytes([a, b])
}

fn hi16(v: u32) -> u16 {
    let [_, _, a, b] = v.to_le_bytes();
    u16::from_le_bytes([a, b])
}

fn byte(v: u32, n: usize) -> u8 {
    v.to_le_bytes().get(n).copied().unwrap_or_default()
}

fn dword(lo: u16, hi: u16) -> u32 {
    u32::from(lo) | u32::from(hi) << 16
}

impl FabricsCommand {
    /// Decodes the fabrics command an SQE carries. Fails only if the opcode
    /// is not 0x7F; reserved fields are ignored.
    pub fn from_sqe(sqe: &Sqe) -> Result<Self, ProtoError> {
        if sqe.opcode != OPC_FABRICS {
            return Err(ProtoError::InvalidValue {
                what: "fabrics command opcode",
                value: u64::from(sqe.opcode),
                expected: "0x7f",
            });
        }
        // SQE byte 4 is the low byte of the little-endian NSID field.
        let fctype = byte(sqe.nsid, 0);
        Ok(match fctype {
            FCTYPE_PROPERTY_SET => Self::PropertySet {
                attrib: byte(sqe.cdw10, 0),
                offset: sqe.cdw11,
                value: u64::from(sqe.cdw12) | u64::from(sqe.cdw13) << 32,
            },
            FCTYPE_CONNECT => Self::Connect {
                recfmt: lo16(sqe.cdw10),
                qid: hi16(sqe.cdw10),
                sqsize: lo16(sqe.cdw11),
                cattr: byte(sqe.cdw11, 2),
                kato: sqe.cdw12,
            },
            FCTYPE_PROPERTY_GET => Self::PropertyGet {
                attrib: byte(sqe.cdw10, 0),
                offset: sqe.cdw11,
            },
            FCTYPE_DISCONNECT => Self::Disconnect {
                recfmt: lo16(sqe.cdw10),
            },
            fctype => Self::Other { fctype },
        })
    }

    /// The FCTYPE of this command.
    pub fn fctype(&self) -> u8 {
        match self {
            Self::PropertySet { .. } => FCTYPE_PROPERTY_SET,
            Self::Connect { .. } => FCTYPE_CONNECT,
            Self::PropertyGet { .. } => FCTYPE_PROPERTY_GET,
            Self::Disconnect { .. } => FCTYPE_DISCONNECT,
            Self::Other { fctype } => *fctype,
        }
    }

    /// The SQE the Linux host would send for this command: flags
    /// [`SQE_FLAGS_SGL`]; Connect's data pointer is an in-capsule SGL of
    /// 1024 bytes, every other command's a transport SGL of length 0.
    pub fn to_sqe(&self, command_id: u16) -> Sqe {
        let mut sqe = Sqe {
            opcode: OPC_FABRICS,
            flags: SQE_FLAGS_SGL,
            command_id,
            nsid: u32::from(self.fctype()),
            dptr: Sgl {
                address: 0,
                length: 0,
                sgl_type: Sgl::TRANSPORT,
            },
            ..Sqe::default()
        };
        match *self {
            Self::PropertySet {
                attrib,
                offset,
                value,
            } => {
                let [v0, v1, v2, v3, v4, v5, v6, v7] = value.to_le_bytes();
                sqe.cdw10 = u32::from(attrib);
                sqe.cdw11 = offset;
                sqe.cdw12 = u32::from_le_bytes([v0, v1, v2, v3]);
                sqe.cdw13 = u32::from_le_bytes([v4, v5, v6, v7]);
            }
            Self::Connect {
                recfmt,
                qid,
                sqsize,
                cattr,
                kato,
            } => {
                sqe.dptr = Sgl {
                    address: 0,
                    length: 1024,
                    sgl_type: Sgl::IN_CAPSULE,
                };
                sqe.cdw10 = dword(recfmt, qid);
                sqe.cdw11 = dword(sqsize, u16::from(cattr));
                sqe.cdw12 = kato;
            }
            Self::PropertyGet { attrib, offset } => {
                sqe.cdw10 = u32::from(attrib);
                sqe.cdw11 = offset;
            }
            Self::Disconnect { recfmt } => sqe.cdw10 = u32::from(recfmt),
            Self::Other { .. } => {}
        }
        sqe
    }
}

/// The Connect command's data: 0 HOSTID (16 bytes), 16 CNTLID le16,
/// 256 SUBNQN (256 bytes), 512 HOSTNQN (256 bytes), the rest reserved.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConnectData {
    /// The host identifier, a raw UUID.
    pub hostid: [u8; 16],
    /// The controller asked for ([`CNTLID_DYNAMIC`] on the admin queue; the
    /// assigned one on I/O queues).
    pub cntlid: u16,
    /// The subsystem to connect to.
    pub subnqn: String,
    /// The host's NQN.
    pub hostnqn: String,
}

const OFF_SUBNQN: usize = 256;
const OFF_HOSTNQN: usize = 512;
const NQN_FIELD: usize = 256;
/// The longest NQN that leaves room for its terminating NUL.
const NQN_MAX: usize = NQN_FIELD - 1;

impl ConnectData {
    /// Parses the first [`CONNECT_DATA_LEN`] bytes of `buf`. An NQN ends at
    /// its first NUL or fills its 256 bytes; it must be UTF-8 without
    /// control characters (surrounding spaces are dropped as padding).
    pub fn parse(buf: &[u8]) -> Result<Self, ProtoError> {
        const WHAT: &str = "Connect data";
        let b = wire::slice(buf, 0, CONNECT_DATA_LEN, WHAT)?;
        Ok(Self {
            hostid: wire::array(b, 0, WHAT)?,
            cntlid: wire::u16_at(b, 16, WHAT)?,
            subnqn: decode_text(
                wire::slice(b, OFF_SUBNQN, NQN_FIELD, WHAT)?,
                "Connect SUBNQN",
                Charset::Utf8,
            )?,
            hostnqn: decode_text(
                wire::slice(b, OFF_HOSTNQN, NQN_FIELD, WHAT)?,
                "Connect HOSTNQN",
                Charset::Utf8,
            )?,
        })
    }

    /// Emits the 1024 bytes, NQNs NUL padded. An NQN longer than 255 bytes
    /// (no room for the NUL) is `FieldTooLong`.
    pub fn emit(&self) -> Result<[u8; CONNECT_DATA_LEN], ProtoError> {
        let mut buf = [0u8; CONNECT_DATA_LEN];
        for (field, nqn) in [
            ("Connect SUBNQN", &self.subnqn),
            ("Connect HOSTNQN", &self.hostnqn),
        ] {
            if nqn.len() > NQN_MAX {
                return Err(ProtoError::FieldTooLong {
                    field,
                    max: NQN_MAX,
                    len: nqn.len(),
                });
            }
        }
        let mut w = Out::new(&mut buf, "Connect data");
        w.bytes(0, &self.hostid)?;
        w.u16(16, self.cntlid)?;
        w.text(OFF_SUBNQN, NQN_FIELD, &self.subnqn, 0, "Connect SUBNQN")?;
        w.text(OFF_HOSTNQN, NQN_FIELD, &self.hostnqn, 0, "Connect HOSTNQN")?;
        Ok(buf)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::command::SQE_LEN;
    use proptest::prelude::*;

    pub(crate) const HOSTNQN: &str =
        "nqn.2014-08.org.nvmexpress:uuid:0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0";

    /// The admin-queue Connect SQE as Linux 6.1 sends it (command id 0,
    /// KATO 5 s), byte by byte.
    fn linux_connect_sqe() -> [u8; SQE_LEN] {
        let mut b = [0u8; SQE_LEN];
        b[0] = 0x7f; // opcode
        b[1] = 0x40; // PSDT: SGL
        b[4] = 0x01; // FCTYPE Connect
        b[32..36].copy_from_slice(&[0x00, 0x04, 0x00, 0x00]); // SGL length 1024
        b[39] = 0x01; // SGL type: data block, offset
        b[44..46].copy_from_slice(&[31, 0]); // SQSIZE
        b[48..52].copy_from_slice(&[0x88, 0x13, 0, 0]); // KATO 5000
        b
    }

    #[test]
    fn connect_sqe_layout() {
        let cmd = FabricsCommand::Connect {
            recfmt: 0,
            qid: 0,
            sqsize: 31,
            cattr: 0,
            kato: 5000,
        };
        assert_eq!(cmd.to_sqe(0).emit(), linux_connect_sqe());
        let sqe = Sqe::parse(&linux_connect_sqe()).unwrap();
        assert_eq!(FabricsCommand::from_sqe(&sqe).unwrap(), cmd);

        // An I/O queue Connect: QID at 42, CATTR at 46.
        let mut raw = linux_connect_sqe();
        raw[42..44].copy_from_slice(&[3, 0]);
        raw[46] = 0x04;
        raw[40..42].copy_from_slice(&[0, 0]);
        let cmd = FabricsCommand::from_sqe(&Sqe::parse(&raw).unwrap()).unwrap();
        assert_eq!(
            cmd,
            FabricsCommand::Connect {
                recfmt: 0,
                qid: 3,
                sqsize: 31,
                cattr: 4,
                kato: 5000
            }
        );
        assert_eq!(cmd.to_sqe(0).emit(), raw);
    }

    #[test]
    fn property_layouts() {
        // Property Get CAP, 8 bytes.
        let mut raw = [0u8; SQE_LEN];
        raw[0] = 0x7f;
        raw[1] = 0x40;
        raw[2..4].copy_from_slice(&[0x05, 0x10]);
        raw[4] = 0x04;
        raw[39] = 0x5a;
        raw[40] = 0x01;
        let get = FabricsCommand::PropertyGet {
            attrib: ATTRIB_SIZE_8,
            offset: PROP_CAP,
        };
        assert_eq!(get.to_sqe(0x1005).emit(), raw);
        assert_eq!(
            FabricsCommand::from_sqe(&Sqe::parse(&raw).unwrap()).unwrap(),
            get
        );

        // Property Set CC = 0x00460001.
        let mut raw = [0u8; SQE_LEN];
        raw[0] = 0x7f;
        raw[1] = 0x40;
        raw[2] = 0x06;
        raw[4] = 0x00;
        raw[39] = 0x5a;
        raw[44] = 0x14;
        raw[48..52].copy_from_slice(&[0x01, 0x00, 0x46, 0x00]);
        let set = FabricsCommand::PropertySet {
            attrib: ATTRIB_SIZE_4,
            offset: PROP_CC,
            value: 0x0046_0001,
        };
        assert_eq!(set.to_sqe(6).emit(), raw);
        assert_eq!(
            FabricsCommand::from_sqe(&Sqe::parse(&raw).unwrap()).unwrap(),
            set
        );
        raw[52..56].copy_from_slice(&[1, 2, 3, 4]);
        assert!(matches!(
            FabricsCommand::from_sqe(&Sqe::parse(&raw).unwrap()).unwrap(),
            FabricsCommand::PropertySet {
                value: 0x0403_0201_0046_0001,
                ..
            }
        ));

        assert_eq!(property_len(0).unwrap(), 4);
        assert_eq!(property_len(0xf9).unwrap(), 8);
        property_len(2).unwrap_err();
    }

    #[test]
    fn disconnect_other_and_wrong_opcode() {
        let d = FabricsCommand::Disconnect { recfmt: 0 };
        let sqe = d.to_sqe(9);
        assert_eq!(sqe.emit()[4], 0x08);
        assert_eq!(FabricsCommand::from_sqe(&sqe).unwrap(), d);
        let auth = FabricsCommand::Other { fctype: 0x05 };
        assert_eq!(FabricsCommand::from_sqe(&auth.to_sqe(1)).unwrap(), auth);

        let mut sqe = FabricsCommand::PropertyGet {
            attrib: 0,
            offset: PROP_CSTS,
        }
        .to_sqe(1);
        // Bytes 5..8 (the rest of the NSID field) are reserved.
        sqe.nsid |= 0xffff_ff00;
        assert!(matches!(
            FabricsCommand::from_sqe(&sqe).unwrap(),
            FabricsCommand::PropertyGet { offset: 0x1c, .. }
        ));
        sqe.opcode = 0x06;
        let err = FabricsCommand::from_sqe(&sqe).unwrap_err();
        assert!(err.to_string().contains("fabrics command opcode"), "{err}");
    }

    #[test]
    fn invalid_parameter_dw0() {
        assert_eq!(connect_invalid_parameter_dw0(256, true), 0x0001_0100);
        assert_eq!(connect_invalid_parameter_dw0(42, false), 42);
    }

    /// A Connect data block the tcp tests share.
    pub(crate) fn connect_data() -> ConnectData {
        ConnectData {
            hostid: [
                0x0f, 0x1e, 0x2d, 0x3c, 0x4b, 0x5a, 0x69, 0x78, 0x87, 0x96, 0xa5, 0xb4, 0xc3, 0xd2,
                0xe1, 0xf0,
            ],
            cntlid: CNTLID_DYNAMIC,
            subnqn: crate::WELL_KNOWN_DISCOVERY_NQN.into(),
            hostnqn: HOSTNQN.into(),
        }
    }

    #[test]
    fn connect_data_layout() {
        let mut raw = [0u8; CONNECT_DATA_LEN];
        raw[..16].copy_from_slice(&connect_data().hostid);
        raw[16..18].copy_from_slice(&[0xff, 0xff]);
        raw[256..256 + 36].copy_from_slice(b"nqn.2014-08.org.nvmexpress.discovery");
        raw[512..512 + HOSTNQN.len()].copy_from_slice(HOSTNQN.as_bytes());
        assert_eq!(connect_data().emit().unwrap(), raw);
        assert_eq!(ConnectData::parse(&raw).unwrap(), connect_data());
        ConnectData::parse(&raw[..1023]).unwrap_err();
    }

    #[test]
    fn connect_data_nqn_limits() {
        let mut d = connect_data();
        d.subnqn = "n".repeat(255);
        let raw = d.emit().unwrap();
        assert_eq!(ConnectData::parse(&raw).unwrap(), d);
        d.hostnqn = "n".repeat(256);
        assert_eq!(
            d.emit().unwrap_err(),
            ProtoError::FieldTooLong {
                field: "Connect HOSTNQN",
                max: 255,
                len: 256
            }
        );
        // An unterminated 256-byte NQN is read whole.
        let mut raw = connect_data().emit().unwrap();
        raw[256..512].fill(b'a');
        assert_eq!(ConnectData::parse(&raw).unwrap().subnqn.len(), 256);
        // Control characters and broken UTF-8 are errors naming the field.
        raw[300] = 0x07;
        let err = ConnectData::parse(&raw).unwrap_err();
        assert!(err.to_string().contains("SUBNQN"), "{err}");
        let mut raw = connect_data().emit().unwrap();
        raw[512 + 3] = 0xc3;
        raw[512 + 4] = 0x28;
        let err = ConnectData::parse(&raw).unwrap_err();
        assert!(err.to_string().contains("HOSTNQN"), "{err}");
    }

    fn arb_command() -> impl Strategy<Value = FabricsCommand> {
        prop_oneof![
            (any::<u8>(), any::<u32>(), any::<u64>()).prop_map(|(attrib, offset, value)| {
                FabricsCommand::PropertySet {
                    attrib,
                    offset,
                    value,
                }
            }),
            (
                any::<u16>(),
                any::<u16>(),
                any::<u16>(),
                any::<u8>(),
                any::<u32>()
            )
                .prop_map(|(recfmt, qid, sqsize, cattr, kato)| {
                    FabricsCommand::Connect {
                        recfmt,
                        qid,
                        sqsize,
                        cattr,
                        kato,
                    }
                }),
            (any::<u8>(), any::<u32>())
                .prop_map(|(attrib, offset)| FabricsCommand::PropertyGet { attrib, offset }),
            any::<u16>().prop_map(|recfmt| FabricsCommand::Disconnect { recfmt }),
            any::<u8>()
                .prop_filter("a decoded FCTYPE", |t| ![0, 1, 4, 8].contains(t))
                .prop_map(|fctype| FabricsCommand::Other { fctype }),
        ]
    }

    proptest! {
        #[test]
        fn commands_round_trip(cmd in arb_command(), cid in any::<u16>()) {
            let raw = cmd.to_sqe(cid).emit();
            let sqe = Sqe::parse(&raw).unwrap();
            prop_assert_eq!(sqe.command_id, cid);
            prop_assert_eq!(FabricsCommand::from_sqe(&sqe).unwrap(), cmd);
        }

        #[test]
        fn connect_data_round_trip(hostid in any::<[u8; 16]>(), cntlid in any::<u16>(),
                                   subnqn in "[a-z0-9.:-]{0,40}", hostnqn in "[!-~]([ -~]{0,250}[!-~])?") {
            let d = ConnectData { hostid, cntlid, subnqn, hostnqn };
            prop_assert_eq!(ConnectData::parse(&d.emit().unwrap()).unwrap(), d);
        }

        #[test]
        fn any_bytes_never_panic(raw in proptest::collection::vec(any::<u8>(), 0..1100)) {
            if let Ok(sqe) = Sqe::parse(&raw) {
                if let Ok(cmd) = FabricsCommand::from_sqe(&sqe) {
                    prop_assert_eq!(
                        FabricsCommand::from_sqe(&cmd.to_sqe(sqe.command_id)).unwrap(),
                        cmd
                    );
                }
            }
            if let Ok(d) = ConnectData::parse(&raw) {
                if let Ok(again) = d.emit() {
                    prop_assert_eq!(ConnectData::parse(&again).unwrap(), d);
                }
            }
        }

        #[test]
        fn any_sqe_decodes_when_opcode_is_fabrics(raw in proptest::collection::vec(any::<u8>(), 64)) {
            let mut raw = raw;
            raw[0] = OPC_FABRICS;
            let cmd = FabricsCommand::from_sqe(&Sqe::parse(&raw).unwrap()).unwrap();
            prop_assert_eq!(cmd.fctype(), raw[4]);
        }
    }
}
