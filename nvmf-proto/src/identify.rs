//! Identify Controller (opcode 0x06, CNS 1): the 4096-byte data structure,
//! reduced to the fields a fabrics discovery client uses (docs/kernel-interface.md §3.2).
//!
//! Parsing reads the named fields; emitting writes them into an otherwise
//! zeroed page (which is what a simulated controller needs). Bytes of fields
//! not named here (power states, vendor area) are not kept, so a page from a
//! real controller round-trips in its named fields, not byte for byte.

use crate::types::{CntrlType, DcType};
use crate::wire::{self, decode_text, Charset, Out};
use crate::ProtoError;

/// Size of the Identify Controller data structure.
pub const IDENTIFY_LEN: usize = 4096;

/// OAES bit 31: Discovery Log Page Change notices supported.
pub const OAES_DISCOVERY_LOG_CHANGE: u32 = 1 << 31;
/// OAES bit 8: Namespace Attribute notices.
pub const OAES_NS_ATTR: u32 = 1 << 8;
/// OAES bit 9: Firmware Activation notices.
pub const OAES_FW_ACTIVATION: u32 = 1 << 9;
/// OAES bit 11: ANA change notices.
pub const OAES_ANA_CHANGE: u32 = 1 << 11;
/// LPA bit 5: the Supported Log Pages log page (LID 0x00) is supported.
pub const LPA_SUPPORTED_LOG_PAGES: u8 = 1 << 5;
/// LPA bit 2: extended data for Get Log Page (offsets, 32-bit NUMD).
pub const LPA_EXTENDED_DATA: u8 = 1 << 2;
/// CTRATT bit 6: traffic based keep alive.
pub const CTRATT_TBKAS: u32 = 1 << 6;

/// The Identify Controller fields a discovery client needs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IdentifyController {
    /// PCI vendor id.
    pub vid: u16,
    /// PCI subsystem vendor id.
    pub ssvid: u16,
    /// Serial number (ASCII, space padded on the wire).
    pub sn: String,
    /// Model number (ASCII, space padded on the wire).
    pub mn: String,
    /// Firmware revision (ASCII, space padded on the wire).
    pub fr: String,
    /// Controller multi-path I/O and namespace sharing capabilities.
    pub cmic: u8,
    /// Maximum data transfer size (power of two of the minimum page size; 0 unlimited).
    pub mdts: u8,
    /// Controller id; must equal the one Connect returned.
    pub cntlid: u16,
    /// Version, e.g. 0x0001_0400 for 1.4.
    pub ver: u32,
    /// Optional asynchronous events supported.
    pub oaes: u32,
    /// Controller attributes.
    pub ctratt: u32,
    /// Controller type.
    pub cntrltype: CntrlType,
    /// Optional admin command support.
    pub oacs: u16,
    /// Asynchronous event request limit (0's based).
    pub aerl: u8,
    /// Log page attributes.
    pub lpa: u8,
    /// Keep-alive support granularity, in 100 ms units (0: not supported).
    pub kas: u16,
    /// Submission queue entry size.
    pub sqes: u8,
    /// Completion queue entry size.
    pub cqes: u8,
    /// Maximum outstanding commands.
    pub maxcmd: u16,
    /// Number of namespaces.
    pub nn: u32,
    /// Optional NVM command support.
    pub oncs: u16,
    /// SGL support.
    pub sgls: u32,
    /// Subsystem NQN (UTF-8, NUL padded on the wire).
    pub subnqn: String,
    /// I/O queue command capsule supported size (16-byte units).
    pub ioccsz: u32,
    /// I/O queue response capsule supported size (16-byte units).
    pub iorcsz: u32,
    /// In-capsule data offset.
    pub icdoff: u16,
    /// Fabrics controller attributes (bit 0: static controller model).
    pub fcatt: u8,
    /// Maximum SGL data block descriptors.
    pub msdbd: u8,
    /// Optional fabrics commands support.
    pub ofcs: u16,
    /// Discovery controller type.
    pub dctype: DcType,
}

impl IdentifyController {
    /// Parses the first [`IDENTIFY_LEN`] bytes of `buf`.
    pub fn parse(buf: &[u8]) -> Result<Self, ProtoError> {
        const W: &str = "identify controller";
        let b = wire::slice(buf, 0, IDENTIFY_LEN, W)?;
        Ok(Self {
            vid: wire::u16_at(b, 0, W)?,
            ssvid: wire::u16_at(b, 2, W)?,
            sn: decode_text(wire::slice(b, 4, 20, W)?, "identify sn", Charset::Ascii)?,
            mn: decode_text(wire::slice(b, 24, 40, W)?, "identify mn", Charset::Ascii)?,
            fr: decode_text(wire::slice(b, 64, 8, W)?, "identify fr", Charset::Ascii)?,
            cmic: wire::u8_at(b, 76, W)?,
            mdts: wire::u8_at(b, 77, W)?,
            cntlid: wire::u16_at(b, 78, W)?,
            ver: wire::u32_at(b, 80, W)?,
            oaes: wire::u32_at(b, 92, W)?,
            ctratt: wire::u32_at(b, 96, W)?,
            cntrltype: wire::u8_at(b, 111, W)?.into(),
            oacs: wire::u16_at(b, 256, W)?,
            aerl: wire::u8_at(b, 259, W)?,
            lpa: wire::u8_at(b, 261, W)?,
            kas: wire::u16_at(b, 320, W)?,
            sqes: wire::u8_at(b, 512, W)?,
            cqes: wire::u8_at(b, 513, W)?,
            maxcmd: wire::u16_at(b, 514, W)?,
            nn: wire::u32_at(b, 516, W)?,
            oncs: wire::u16_at(b, 520, W)?,
            sgls: wire::u32_at(b, 536, W)?,
            subnqn: decode_text(
                wire::slice(b, 768, 256, W)?,
                "identify subnqn",
                Charset::Utf8,
            )?,
            ioccsz: wire::u32_at(b, 1792, W)?,
            iorcsz: wire::u32_at(b, 1796, W)?,
            icdoff: wire::u16_at(b, 1800, W)?,
            fcatt: wire::u8_at(b, 1802, W)?,
            msdbd: wire::u8_at(b, 1803, W)?,
            ofcs: wire::u16_at(b, 1804, W)?,
            dctype: wire::u8_at(b, 1806, W)?.into(),
        })
    }

    /// Emits a 4096-byte page: named fields set, everything else zero.
    pub fn emit(&self) -> Result<Vec<u8>, ProtoError> {
        let mut buf = vec![0u8; IDENTIFY_LEN];
        let mut w = Out::new(&mut buf, "identify controller");
        w.u16(0, self.vid)?;
        w.u16(2, self.ssvid)?;
        w.text(4, 20, &self.sn, b' ', "identify sn")?;
        w.text(24, 40, &self.mn, b' ', "identify mn")?;
        w.text(64, 8, &self.fr, b' ', "identify fr")?;
        w.u8(76, self.cmic)?;
        w.u8(77, self.mdts)?;
        w.u16(78, self.cntlid)?;
        w.u32(80, self.ver)?;
        w.u32(92, self.oaes)?;
        w.u32(96, self.ctratt)?;
        w.u8(111, self.cntrltype.into())?;
        w.u16(256, self.oacs)?;
        w.u8(259, self.aerl)?;
        w.u8(261, self.lpa)?;
        w.u16(320, self.kas)?;
        w.u8(512, self.sqes)?;
        w.u8(513, self.cqes)?;
        w.u16(514, self.maxcmd)?;
        w.u32(516, self.nn)?;
        w.u16(520, self.oncs)?;
        w.u32(536, self.sgls)?;
        w.text(768, 256, &self.subnqn, 0, "identify subnqn")?;
        w.u32(1792, self.ioccsz)?;
        w.u32(1796, self.iorcsz)?;
        w.u16(1800, self.icdoff)?;
        w.u8(1802, self.fcatt)?;
        w.u8(1803, self.msdbd)?;
        w.u16(1804, self.ofcs)?;
        w.u8(1806, self.dctype.into())?;
        Ok(buf)
    }

    /// Whether the controller sends Discovery Log Page Change notices.
    pub fn supports_discovery_log_change(&self) -> bool {
        self.oaes & OAES_DISCOVERY_LOG_CHANGE != 0
    }

    /// Whether the Supported Log Pages log page may be read.
    pub fn supports_supported_log_pages(&self) -> bool {
        self.lpa & LPA_SUPPORTED_LOG_PAGES != 0
    }

    /// Whether explicit registration (DIM) applies: only DDCs and CDCs take it.
    pub fn accepts_registration(&self) -> bool {
        matches!(self.dctype, DcType::Ddc | DcType::Cdc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dc() -> IdentifyController {
        IdentifyController {
            sn: "0123456789abcdef".into(),
            mn: "Linux".into(),
            fr: "6.1.0".into(),
            cntlid: 1,
            ver: 0x0001_0400,
            oaes: OAES_DISCOVERY_LOG_CHANGE,
            cntrltype: CntrlType::Discovery,
            lpa: LPA_SUPPORTED_LOG_PAGES,
            kas: 100,
            maxcmd: 128,
            sgls: 0x0010_0005,
            subnqn: crate::WELL_KNOWN_DISCOVERY_NQN.into(),
            dctype: DcType::Cdc,
            ..Default::default()
        }
    }

    #[test]
    fn fields_at_their_offsets() {
        let b = dc().emit().unwrap();
        assert_eq!(b.len(), 4096);
        assert_eq!(&b[4..24], b"0123456789abcdef    ");
        assert_eq!(&b[24..29], b"Linux");
        assert_eq!(b[29], b' ');
        assert_eq!(&b[78..80], &[1, 0]);
        assert_eq!(&b[80..84], &[0, 4, 1, 0]);
        assert_eq!(&b[92..96], &[0, 0, 0, 0x80]);
        assert_eq!(b[111], 2);
        assert_eq!(b[261], 0x20);
        assert_eq!(&b[320..322], &[100, 0]);
        assert_eq!(&b[514..516], &[128, 0]);
        assert_eq!(&b[536..540], &[5, 0, 0x10, 0]);
        assert_eq!(&b[768..772], b"nqn.");
        assert_eq!(b[768 + crate::WELL_KNOWN_DISCOVERY_NQN.len()], 0);
        assert_eq!(b[1806], 2);
    }

    #[test]
    fn round_trip_and_predicates() {
        let id = dc();
        let parsed = IdentifyController::parse(&id.emit().unwrap()).unwrap();
        assert_eq!(parsed, id);
        assert!(parsed.supports_discovery_log_change());
        assert!(parsed.supports_supported_log_pages());
        assert!(parsed.accepts_registration());
        let plain = IdentifyController {
            dctype: DcType::None,
            ..id
        };
        assert!(!plain.accepts_registration());
    }

    #[test]
    fn short_buffer_and_bad_text_are_errors() {
        let b = dc().emit().unwrap();
        assert!(matches!(
            IdentifyController::parse(&b[..4095]),
            Err(ProtoError::TooShort {
                need: 4096,
                got: 4095,
                ..
            })
        ));
        let mut bad = b.clone();
        bad[770] = 0x1b;
        let err = IdentifyController::parse(&bad).unwrap_err();
        assert!(err.to_string().contains("identify subnqn"), "{err}");
        // Longer buffers are fine: only the first 4096 bytes count.
        let mut long = b;
        long.extend_from_slice(&[0xff; 10]);
        IdentifyController::parse(&long).unwrap();
    }

    #[test]
    fn overlong_serial_cannot_be_emitted() {
        let id = IdentifyController {
            sn: "x".repeat(21),
            ..dc()
        };
        assert!(matches!(
            id.emit(),
            Err(ProtoError::FieldTooLong {
                field: "identify sn",
                ..
            })
        ));
    }
}
