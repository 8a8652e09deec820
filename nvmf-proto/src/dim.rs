//! Discovery Information Management (DIM, admin opcode 0x21, TP8010): the
//! registration payload a host sends to a direct or central discovery
//! controller (docs/kernel-interface.md §3.4, docs/upstream.md §16.6).
//!
//! [`DimData::registration`] builds exactly what libnvme sends: one extended
//! entry for the host, with its Host ID and optional symbolic name. The
//! parser takes any well-formed payload, so a simulated controller can check
//! what it was sent.

use crate::dlp::Tsas;
use crate::types::{AdrFam, SubType, TrType, Treq};
use crate::wire::{self, decode_text, Charset, Out};
use crate::ProtoError;

/// Admin opcode of Discovery Information Management.
pub const OPC_DIM: u8 = 0x21;
/// Size of the DIM data header.
pub const HEADER_LEN: usize = 1024;
/// Size of a basic discovery information entry, and of the fixed part of an
/// extended one before TEL.
pub const DIE_LEN: usize = 1024;
/// Size of the fixed part of an extended entry (up to the attribute list).
pub const EXT_DIE_FIXED_LEN: usize = 1032;
/// Extended attribute type: Host ID (16 bytes).
pub const EXAT_HOSTID: u16 = 1;
/// Extended attribute type: symbolic name.
pub const EXAT_SYMNAME: u16 = 2;
/// The entity key type libnvme sends ("must be 0x5F").
pub const EKTYPE_LIBNVME: u16 = 0x5f;

/// Task (TAS, cdw10 bits 3:0) of a DIM command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Tas {
    /// 0: register.
    Register,
    /// 1: deregister.
    Deregister,
    /// 2: registration update.
    Update,
    /// Any other 4-bit value.
    Other(u8),
}

impl Tas {
    /// Command dword 10 for this task.
    pub fn cdw10(self) -> u32 {
        let v = match self {
            Self::Register => 0,
            Self::Deregister => 1,
            Self::Update => 2,
            Self::Other(v) => v & 0x0f,
        };
        u32::from(v)
    }

    /// Decodes command dword 10.
    pub fn from_cdw10(cdw10: u32) -> Self {
        match cdw10.to_le_bytes()[0] & 0x0f {
            0 => Self::Register,
            1 => Self::Deregister,
            2 => Self::Update,
            v => Self::Other(v),
        }
    }
}

/// Entry format (ENTFMT).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EntryFormat {
    /// 1: basic 1024-byte entries.
    Basic,
    /// 2: extended entries with a length and attributes.
    Extended,
    /// Anything else (not parseable: the entry size is unknown).
    Other(u16),
}

impl From<u16> for EntryFormat {
    fn from(v: u16) -> Self {
        match v {
            1 => Self::Basic,
            2 => Self::Extended,
            o => Self::Other(o),
        }
    }
}

impl From<EntryFormat> for u16 {
    fn from(v: EntryFormat) -> u16 {
        match v {
            EntryFormat::Basic => 1,
            EntryFormat::Extended => 2,
            EntryFormat::Other(o) => o,
        }
    }
}

/// Entity type (ETYPE) of the registering entity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EntityType {
    /// 1: host.
    Host,
    /// 2: direct discovery controller.
    Ddc,
    /// 3: central discovery controller.
    Cdc,
    /// Any other value.
    Other(u16),
}

impl From<u16> for EntityType {
    fn from(v: u16) -> Self {
        match v {
            1 => Self::Host,
            2 => Self::Ddc,
            3 => Self::Cdc,
            o => Self::Other(o),
        }
    }
}

impl From<EntityType> for u16 {
    fn from(v: EntityType) -> u16 {
        match v {
            EntityType::Host => 1,
            EntityType::Ddc => 2,
            EntityType::Cdc => 3,
            EntityType::Other(o) => o,
        }
    }
}

/// An extended attribute of a discovery information entry.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ExtAttr {
    /// Type 1: the 16-byte Host ID.
    HostId([u8; 16]),
    /// Type 2: symbolic name, space padded to a multiple of 4 on the wire.
    SymName(String),
    /// Another type, value kept as received (its length a multiple of 4).
    Other {
        /// EXATTYPE.
        kind: u16,
        /// EXATLEN bytes of value.
        value: Vec<u8>,
    },
}

fn round4(n: usize) -> usize {
    n.saturating_add(3) & !3
}

impl ExtAttr {
    fn value_len(&self) -> usize {
        match self {
            Self::HostId(_) => 16,
            Self::SymName(s) => round4(s.len()),
            Self::Other { value, .. } => round4(value.len()),
        }
    }

    /// Bytes the attribute takes on the wire.
    pub fn wire_len(&self) -> usize {
        self.value_len().saturating_add(4)
    }
}

/// One discovery information entry (basic, or the fixed part of an extended
/// one plus its attributes).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct DimEntry {
    /// Transport type.
    pub trtype: TrType,
    /// Address family.
    pub adrfam: AdrFam,
    /// Subsystem type.
    pub subtype: SubType,
    /// Transport requirements.
    pub treq: Treq,
    /// Port id.
    pub portid: u16,
    /// Controller id.
    pub cntlid: u16,
    /// Admin SQ size.
    pub asqsz: u16,
    /// Transport service id.
    pub trsvcid: String,
    /// NQN of the entity (the host NQN for a host registration).
    pub nqn: String,
    /// Transport address; empty tells the controller to use the address the
    /// command came from.
    pub traddr: String,
    /// Transport specific address subtype.
    pub tsas: Tsas,
    /// Extended attributes (extended format only).
    pub attrs: Vec<ExtAttr>,
}

/// A DIM payload: the header and its entries.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DimData {
    /// Entry format.
    pub entfmt: EntryFormat,
    /// Entity type.
    pub etype: EntityType,
    /// Port local.
    pub portlcl: u8,
    /// Entity key type.
    pub ektype: u16,
    /// Entity identifier (the host NQN).
    pub eid: String,
    /// Entity name (the host name).
    pub ename: String,
    /// Entity version (OS name and version).
    pub ever: String,
    /// The entries.
    pub entries: Vec<DimEntry>,
}

/// What a host registers with: the inputs of libnvme's registration payload.
#[derive(Debug, Clone, Copy)]
pub struct Registration<'a> {
    /// Host NQN.
    pub host_nqn: &'a str,
    /// Host ID.
    pub host_id: [u8; 16],
    /// Host name (`gethostname()`); cut to 256 bytes.
    pub hostname: &'a str,
    /// OS version text, see [`entity_version`]; cut to 64 bytes.
    pub os_version: &'a str,
    /// Address family of the discovery controller's address.
    pub dc_adrfam: AdrFam,
    /// Symbolic name, if configured.
    pub symname: Option<&'a str>,
}

/// libnvme's EVER text: `<ostype> <osrelease>[ <NAME>][ <VERSION_ID>]`
/// (the first word of /proc/sys/kernel/ostype, the kernel release, and
/// os-release's NAME and VERSION_ID without quotes).
pub fn entity_version(
    ostype: &str,
    osrelease: &str,
    name: Option<&str>,
    version_id: Option<&str>,
) -> String {
    let unquote = |s: &str| s.trim().trim_matches('"').trim_matches('\'').to_owned();
    let mut parts = vec![
        ostype
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_owned(),
        osrelease.trim().to_owned(),
    ];
    parts.extend(name.map(unquote));
    parts.extend(version_id.map(unquote));
    parts.retain(|p| !p.is_empty());
    parts.join(" ")
}

/// Cuts `s` to at most `max` bytes on a character boundary.
fn cut(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end = end.saturating_sub(1);
    }
    s.get(..end).unwrap_or_default()
}

impl DimData {
    /// The payload libnvme sends to register a host: extended format, one
    /// host entry for TCP with an empty TRADDR, Host ID and optional
    /// symbolic name attributes.
    pub fn registration(r: &Registration<'_>) -> Self {
        let mut attrs = vec![ExtAttr::HostId(r.host_id)];
        if let Some(sym) = r.symname.filter(|s| !s.is_empty()) {
            attrs.push(ExtAttr::SymName(sym.to_owned()));
        }
        Self {
            entfmt: EntryFormat::Extended,
            etype: EntityType::Host,
            portlcl: 0,
            ektype: EKTYPE_LIBNVME,
            eid: r.host_nqn.to_owned(),
            ename: cut(r.hostname, 256).to_owned(),
            ever: cut(r.os_version, 64).to_owned(),
            entries: vec![DimEntry {
                trtype: TrType::Tcp,
                adrfam: r.dc_adrfam,
                subtype: SubType::Other(0),
                nqn: r.host_nqn.to_owned(),
                attrs,
                ..DimEntry::default()
            }],
        }
    }

    fn entry_len(&self, e: &DimEntry) -> usize {
        match self.entfmt {
            EntryFormat::Extended => e
                .attrs
                .iter()
                .fold(EXT_DIE_FIXED_LEN, |acc, a| acc.saturating_add(a.wire_len())),
            _ => DIE_LEN,
        }
    }

    /// Emits the payload; its length is TDL.
    pub fn emit(&self) -> Result<Vec<u8>, ProtoError> {
        if let EntryFormat::Other(v) = self.entfmt {
            return Err(ProtoError::InvalidValue {
                what: "DIM entry format",
                value: v.into(),
                expected: "1 (basic) or 2 (extended)",
            });
        }
        if self.entfmt == EntryFormat::Basic && self.entries.iter().any(|e| !e.attrs.is_empty()) {
            return Err(ProtoError::InvalidValue {
                what: "DIM basic entry attributes",
                value: 1,
                expected: "no attributes in the basic entry format",
            });
        }
        let total = self
            .entries
            .iter()
            .fold(HEADER_LEN, |acc, e| acc.saturating_add(self.entry_len(e)));
        let tdl = u32::try_from(total).map_err(|_| ProtoError::InvalidValue {
            what: "DIM total data length",
            value: u64::try_from(total).unwrap_or(u64::MAX),
            expected: "less than 4 GiB",
        })?;
        let mut buf = vec![0u8; total];
        let mut w = Out::new(&mut buf, "DIM data");
        w.u32(0, tdl)?;
        w.u64(8, u64::try_from(self.entries.len()).unwrap_or(u64::MAX))?;
        w.u16(16, self.entfmt.into())?;
        w.u16(18, self.etype.into())?;
        w.u8(20, self.portlcl)?;
        w.u16(22, self.ektype)?;
        w.text(24, 256, &self.eid, 0, "DIM eid")?;
        w.text(280, 256, &self.ename, 0, "DIM ename")?;
        w.text(536, 64, &self.ever, 0, "DIM ever")?;
        let mut off = HEADER_LEN;
        for e in &self.entries {
            let len = self.entry_len(e);
            emit_entry(&mut w, off, e, self.entfmt == EntryFormat::Extended, len)?;
            off = off.saturating_add(len);
        }
        Ok(buf)
    }

    /// Parses a payload. TDL must lie within `buf`; every entry and attribute
    /// must lie within TDL.
    pub fn parse(buf: &[u8]) -> Result<Self, ProtoError> {
        const W: &str = "DIM data header";
        wire::slice(buf, 0, HEADER_LEN, W)?;
        let tdl = usize::try_from(wire::u32_at(buf, 0, W)?).unwrap_or(usize::MAX);
        if tdl < HEADER_LEN {
            return Err(ProtoError::InvalidValue {
                what: "DIM total data length",
                value: u64::try_from(tdl).unwrap_or(u64::MAX),
                expected: "at least 1024",
            });
        }
        let data = wire::slice(buf, 0, tdl, "DIM data (TDL bytes)")?;
        let nument = wire::u64_at(data, 8, W)?;
        let entfmt = EntryFormat::from(wire::u16_at(data, 16, W)?);
        let mut out = Self {
            entfmt,
            etype: wire::u16_at(data, 18, W)?.into(),
            portlcl: wire::u8_at(data, 20, W)?,
            ektype: wire::u16_at(data, 22, W)?,
            eid: decode_text(wire::slice(data, 24, 256, W)?, "DIM eid", Charset::Utf8)?,
            ename: decode_text(wire::slice(data, 280, 256, W)?, "DIM ename", Charset::Utf8)?,
            ever: decode_text(wire::slice(data, 536, 64, W)?, "DIM ever", Charset::Utf8)?,
            entries: Vec::new(),
        };
        if nument > 0 {
            if let EntryFormat::Other(v) = entfmt {
                return Err(ProtoError::InvalidValue {
                    what: "DIM entry format",
                    value: v.into(),
                    expected: "1 (basic) or 2 (extended)",
                });
            }
        }
        let mut off = HEADER_LEN;
        let mut i = 0u64;
        while i < nument {
            let (entry, len) = parse_entry(data, off, entfmt == EntryFormat::Extended)?;
            out.entries.push(entry);
            off = off.saturating_add(len);
            i = i.saturating_add(1);
        }
        Ok(out)
    }
}

fn emit_entry(
    w: &mut Out<'_>,
    off: usize,
    e: &DimEntry,
    extended: bool,
    len: usize,
) -> Result<(), ProtoError> {
    let at = |rel: usize| off.saturating_add(rel);
    w.u8(at(0), e.trtype.into())?;
    w.u8(at(1), e.adrfam.into())?;
    w.u8(at(2), e.subtype.into())?;
    w.u8(at(3), e.treq.0)?;
    w.u16(at(4), e.portid)?;
    w.u16(at(6), e.cntlid)?;
    w.u16(at(8), e.asqsz)?;
    w.text(at(32), 32, &e.trsvcid, 0, "DIM entry trsvcid")?;
    w.text(at(256), 256, &e.nqn, 0, "DIM entry nqn")?;
    w.text(at(512), 256, &e.traddr, 0, "DIM entry traddr")?;
    w.bytes(at(768), &e.tsas.0)?;
    if !extended {
        return Ok(());
    }
    let tel = u32::try_from(len).map_err(|_| ProtoError::InvalidValue {
        what: "DIM entry length",
        value: u64::try_from(len).unwrap_or(u64::MAX),
        expected: "less than 4 GiB",
    })?;
    let numexat = u16::try_from(e.attrs.len()).map_err(|_| ProtoError::InvalidValue {
        what: "DIM attribute count",
        value: u64::try_from(e.attrs.len()).unwrap_or(u64::MAX),
        expected: "at most 65535",
    })?;
    w.u32(at(1024), tel)?;
    w.u16(at(1028), numexat)?;
    let mut a_off = at(EXT_DIE_FIXED_LEN);
    for a in &e.attrs {
        let vlen = a.value_len();
        let exatlen = u16::try_from(vlen).map_err(|_| ProtoError::FieldTooLong {
            field: "DIM attribute value",
            max: 0xfffc,
            len: vlen,
        })?;
        let value_off = a_off.saturating_add(4);
        match a {
            ExtAttr::HostId(id) => {
                w.u16(a_off, EXAT_HOSTID)?;
                w.bytes(value_off, id)?;
            }
            ExtAttr::SymName(s) => {
                w.u16(a_off, EXAT_SYMNAME)?;
                w.text(value_off, vlen, s, b' ', "DIM symbolic name")?;
            }
            ExtAttr::Other { kind, value } => {
                w.u16(a_off, *kind)?;
                w.bytes(value_off, value)?;
            }
        }
        w.u16(a_off.saturating_add(2), exatlen)?;
        a_off = a_off.saturating_add(a.wire_len());
    }
    Ok(())
}

fn parse_entry(data: &[u8], off: usize, extended: bool) -> Result<(DimEntry, usize), ProtoError> {
    const W: &str = "DIM entry";
    let fixed = wire::slice(data, off, DIE_LEN, W)?;
    let mut e = DimEntry {
        trtype: wire::u8_at(fixed, 0, W)?.into(),
        adrfam: wire::u8_at(fixed, 1, W)?.into(),
        subtype: wire::u8_at(fixed, 2, W)?.into(),
        treq: Treq(wire::u8_at(fixed, 3, W)?),
        portid: wire::u16_at(fixed, 4, W)?,
        cntlid: wire::u16_at(fixed, 6, W)?,
        asqsz: wire::u16_at(fixed, 8, W)?,
        trsvcid: decode_text(
            wire::slice(fixed, 32, 32, W)?,
            "DIM entry trsvcid",
            Charset::Ascii,
        )?,
        nqn: decode_text(
            wire::slice(fixed, 256, 256, W)?,
            "DIM entry nqn",
            Charset::Utf8,
        )?,
        traddr: decode_text(
            wire::slice(fixed, 512, 256, W)?,
            "DIM entry traddr",
            Charset::Ascii,
        )?,
        tsas: Tsas(wire::array(fixed, 768, W)?),
        attrs: Vec::new(),
    };
    if !extended {
        return Ok((e, DIE_LEN));
    }
    let head = wire::slice(data, off, EXT_DIE_FIXED_LEN, W)?;
    let tel = usize::try_from(wire::u32_at(head, 1024, W)?).unwrap_or(usize::MAX);
    if tel < EXT_DIE_FIXED_LEN || tel % 4 != 0 {
        return Err(ProtoError::InvalidValue {
            what: "DIM entry length (TEL)",
            value: u64::try_from(tel).unwrap_or(u64::MAX),
            expected: "a multiple of 4, at least 1032",
        });
    }
    let entry = wire::slice(data, off, tel, "DIM extended entry (TEL bytes)")?;
    let numexat = wire::u16_at(entry, 1028, W)?;
    let mut a_off = EXT_DIE_FIXED_LEN;
    for _ in 0..numexat {
        const A: &str = "DIM extended attribute";
        let kind = wire::u16_at(entry, a_off, A)?;
        let len = usize::from(wire::u16_at(entry, a_off.saturating_add(2), A)?);
        if len % 4 != 0 {
            return Err(ProtoError::InvalidValue {
                what: "DIM attribute length (EXATLEN)",
                value: u64::try_from(len).unwrap_or(u64::MAX),
                expected: "a multiple of 4",
            });
        }
        let value = wire::slice(entry, a_off.saturating_add(4), len, A)?;
        let attr = match kind {
            EXAT_HOSTID => {
                ExtAttr::HostId(value.try_into().map_err(|_| ProtoError::InvalidValue {
                    what: "DIM Host ID attribute length",
                    value: u64::try_from(len).unwrap_or(u64::MAX),
                    expected: "16",
                })?)
            }
            EXAT_SYMNAME => {
                ExtAttr::SymName(decode_text(value, "DIM symbolic name", Charset::Utf8)?)
            }
            kind => ExtAttr::Other {
                kind,
                value: value.to_vec(),
            },
        };
        e.attrs.push(attr);
        a_off = a_off.saturating_add(4).saturating_add(len);
    }
    Ok((e, tel))
}

/// Parses a UUID in its 8-4-4-4-12 text form (as in /etc/nvme/hostid) into
/// 16 bytes, in the order the text reads.
pub fn parse_uuid(text: &str) -> Result<[u8; 16], ProtoError> {
    let t = text.trim();
    let bad = |reason| ProtoError::BadText {
        what: "UUID",
        text: t.chars().take(64).collect(),
        reason,
    };
    let groups: Vec<&str> = t.split('-').collect();
    if groups.iter().map(|g| g.len()).collect::<Vec<_>>() != [8, 4, 4, 4, 12] {
        return Err(bad("expected 8-4-4-4-12 hexadecimal digits"));
    }
    let hex: String = groups.concat();
    let mut out = [0u8; 16];
    for (i, byte) in out.iter_mut().enumerate() {
        let pair = hex.get(i * 2..i * 2 + 2).ok_or_else(|| bad("too short"))?;
        *byte = u8::from_str_radix(pair, 16).map_err(|_| bad("not hexadecimal"))?;
    }
    Ok(out)
}

/// Formats 16 bytes as lower-case 8-4-4-4-12 UUID text.
pub fn format_uuid(id: &[u8; 16]) -> String {
    let h: String = id.iter().map(|b| format!("{b:02x}")).collect();
    let part = |a: usize, b: usize| h.get(a..b).unwrap_or_default();
    format!(
        "{}-{}-{}-{}-{}",
        part(0, 8),
        part(8, 12),
        part(12, 16),
        part(16, 20),
        part(20, 32)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOSTNQN: &str = "nqn.2014-08.org.nvmexpress:uuid:0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0";
    const HOSTID: &str = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0";

    fn reg(symname: Option<&str>) -> DimData {
        DimData::registration(&Registration {
            host_nqn: HOSTNQN,
            host_id: parse_uuid(HOSTID).unwrap(),
            hostname: "storage-host-1",
            os_version: "Linux 6.1.0-13-amd64 Debian GNU/Linux 12",
            dc_adrfam: AdrFam::Ipv6,
            symname,
        })
    }

    #[test]
    fn registration_without_symname_matches_libnvme_layout() {
        let b = reg(None).emit().unwrap();
        assert_eq!(b.len(), 2076);
        assert_eq!(&b[0..4], &2076u32.to_le_bytes());
        assert_eq!(&b[8..16], &1u64.to_le_bytes());
        assert_eq!(&b[16..18], &[2, 0]); // ENTFMT extended
        assert_eq!(&b[18..20], &[1, 0]); // ETYPE host
        assert_eq!(&b[22..24], &[0x5f, 0]);
        assert_eq!(&b[24..24 + HOSTNQN.len()], HOSTNQN.as_bytes());
        assert_eq!(&b[280..294], b"storage-host-1");
        assert_eq!(&b[536..540], b"Linu");
        let e = &b[1024..];
        assert_eq!(e[0], 3); // tcp
        assert_eq!(e[1], 2); // ipv6
        assert_eq!(e[2], 0);
        assert_eq!(&e[256..256 + HOSTNQN.len()], HOSTNQN.as_bytes());
        assert!(e[512..768].iter().all(|&x| x == 0), "TRADDR empty");
        assert_eq!(&e[1024..1028], &1052u32.to_le_bytes());
        assert_eq!(&e[1028..1030], &[1, 0]);
        assert_eq!(&e[1032..1036], &[1, 0, 16, 0]);
        assert_eq!(&e[1036..1052], &parse_uuid(HOSTID).unwrap());
    }

    #[test]
    fn symname_is_space_padded_to_dword() {
        let b = reg(Some("rack12-host")).emit().unwrap();
        // 11 bytes -> EXATLEN 12; TEL = 1032 + 20 + 16.
        assert_eq!(b.len(), 1024 + 1068);
        let e = &b[1024..];
        assert_eq!(&e[1024..1028], &1068u32.to_le_bytes());
        assert_eq!(&e[1028..1030], &[2, 0]);
        assert_eq!(&e[1052..1056], &[2, 0, 12, 0]);
        assert_eq!(&e[1056..1068], b"rack12-host ");
        let back = DimData::parse(&b).unwrap();
        assert_eq!(back, reg(Some("rack12-host")));
    }

    #[test]
    fn empty_symname_is_not_sent() {
        assert_eq!(reg(Some("")).emit().unwrap().len(), 2076);
    }

    #[test]
    fn round_trip_registration() {
        let d = reg(None);
        assert_eq!(DimData::parse(&d.emit().unwrap()).unwrap(), d);
    }

    #[test]
    fn tas_encoding() {
        assert_eq!(Tas::Register.cdw10(), 0);
        assert_eq!(Tas::Deregister.cdw10(), 1);
        assert_eq!(Tas::Update.cdw10(), 2);
        for v in 0..16u32 {
            assert_eq!(Tas::from_cdw10(v | 0xffff_fff0).cdw10(), v);
        }
    }

    #[test]
    fn malformed_payloads_are_errors() {
        let good = reg(Some("abc")).emit().unwrap();
        // TDL beyond the buffer.
        let mut b = good.clone();
        b[0..4].copy_from_slice(&9999u32.to_le_bytes());
        DimData::parse(&b).unwrap_err();
        // TDL smaller than the header.
        let mut b = good.clone();
        b[0..4].copy_from_slice(&16u32.to_le_bytes());
        DimData::parse(&b).unwrap_err();
        // NUMENT promising more entries than TDL holds.
        let mut b = good.clone();
        b[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
        DimData::parse(&b).unwrap_err();
        // TEL not a multiple of four, and TEL running past TDL.
        let mut b = good.clone();
        b[2048..2052].copy_from_slice(&1033u32.to_le_bytes());
        DimData::parse(&b).unwrap_err();
        let mut b = good.clone();
        b[2048..2052].copy_from_slice(&4096u32.to_le_bytes());
        DimData::parse(&b).unwrap_err();
        // Host ID attribute with a wrong length.
        let mut b = good.clone();
        b[1024 + 1034..1024 + 1036].copy_from_slice(&[8, 0]);
        let err = DimData::parse(&b).unwrap_err();
        assert!(err.to_string().contains("Host ID"), "{err}");
        // EXATLEN not a multiple of four.
        let mut b = reg(Some("abcd")).emit().unwrap();
        b[1024 + 1054..1024 + 1056].copy_from_slice(&[3, 0]);
        assert!(DimData::parse(&b)
            .unwrap_err()
            .to_string()
            .contains("EXATLEN"));
        // Attribute count beyond TEL.
        let mut b = good;
        b[1024 + 1028..1024 + 1030].copy_from_slice(&[9, 0]);
        DimData::parse(&b).unwrap_err();
        // Unknown entry format with entries.
        let mut b = reg(None).emit().unwrap();
        b[16] = 7;
        DimData::parse(&b).unwrap_err();
    }

    #[test]
    fn basic_entries_round_trip() {
        let d = DimData {
            entfmt: EntryFormat::Basic,
            etype: EntityType::Ddc,
            portlcl: 1,
            ektype: 0,
            eid: "nqn.ddc".into(),
            ename: "ddc".into(),
            ever: "1".into(),
            entries: vec![DimEntry {
                traddr: "10.0.0.1".into(),
                trsvcid: "8009".into(),
                ..Default::default()
            }],
        };
        let b = d.emit().unwrap();
        assert_eq!(b.len(), 2048);
        assert_eq!(DimData::parse(&b).unwrap(), d);
        let bad = DimData {
            entries: vec![DimEntry {
                attrs: vec![ExtAttr::HostId([0; 16])],
                ..Default::default()
            }],
            ..d
        };
        bad.emit().unwrap_err();
    }

    #[test]
    fn entity_version_text() {
        assert_eq!(
            entity_version(
                "Linux\n",
                "6.1.0-13-amd64\n",
                Some("\"Debian GNU/Linux\""),
                Some("\"12\"")
            ),
            "Linux 6.1.0-13-amd64 Debian GNU/Linux 12"
        );
        assert_eq!(entity_version("Linux", "6.8.0", None, None), "Linux 6.8.0");
        // Long text is cut to the 64-byte field, on a character boundary.
        let d = DimData::registration(&Registration {
            host_nqn: "nqn.x",
            host_id: [0; 16],
            hostname: "h",
            os_version: &"é".repeat(40),
            dc_adrfam: AdrFam::Ipv4,
            symname: None,
        });
        assert_eq!(d.ever.len(), 64);
        d.emit().unwrap();
    }

    #[test]
    fn uuid_text() {
        let id = parse_uuid(HOSTID).unwrap();
        assert_eq!(id[0], 0x0f);
        assert_eq!(id[15], 0xf0);
        assert_eq!(format_uuid(&id), HOSTID);
        assert_eq!(parse_uuid(&HOSTID.to_uppercase()).unwrap(), id);
        for bad in [
            "",
            "0f1e2d3c4b5a69788796a5b4c3d2e1f0",
            "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1fz",
            "é",
        ] {
            assert!(parse_uuid(bad).is_err(), "{bad}");
        }
    }
}
