//! Parsing an NBFT the way libnvme does (docs/behaviour.md §13.3).

use std::net::{IpAddr, Ipv6Addr};

use super::emit::check_tcp;
use super::{
    Nbft, NbftDiscovery, NbftHeader, NbftHfi, NbftHost, NbftIssue, NbftSecurity, NbftStructure,
    NbftSubsystem, NidType, PrimaryAdminHostFlag, CONTROL_LEN, CONTROL_OFF, DISCOVERY_LEN,
    EXT_ASQSZ_VALID, EXT_VALID, HFI_DEFAULT_ROUTE, HFI_DHCP_OVERRIDE, HFI_LEN, HFI_TCP_INFO_LEN,
    HOST_ID_CONFIGURED, HOST_LEN, HOST_NQN_CONFIGURED, HOST_PAH_SHIFT, ID_CONTROL, ID_DISCOVERY,
    ID_HFI, ID_HFI_TCP_INFO, ID_HOST, ID_SECURITY, ID_SSNS, ID_SSNS_EXT_INFO, IP_LEN,
    MIN_TABLE_LEN, SECURITY_LEN, SIGNATURE, SSNS_EXT_INFO_IN_USE, SSNS_EXT_INFO_LEN, SSNS_LEN,
    SSNS_TR_DATA_DIGEST, SSNS_TR_HDR_DIGEST, SSNS_VALID, VALID,
};
use crate::types::TrType;
use crate::wire::{self, decode_text, Charset};
use crate::ProtoError;

/// The validated table (truncated to its header length) and its heap bounds.
struct Table<'a> {
    raw: &'a [u8],
    heap_start: usize,
    heap_end: usize,
}

impl<'a> Table<'a> {
    /// The bytes of the heap object described at `off` of `desc`; `None`
    /// when its length is 0 (absent). Only `offset..offset+length` must lie
    /// in the heap, as libnvme's `in_heap` checks (§13.3 rule 5).
    fn heap_obj(
        &self,
        desc: &[u8],
        off: usize,
        what: &'static str,
    ) -> Result<Option<&'a [u8]>, ProtoError> {
        let offset = wire::u32_at(desc, off, what)?;
        let length = wire::u16_at(desc, off.saturating_add(4), what)?;
        if length == 0 {
            return Ok(None);
        }
        let start = usize::try_from(offset).unwrap_or(usize::MAX);
        if start < self.heap_start {
            return Err(ProtoError::InvalidValue {
                what,
                value: u64::from(offset),
                expected: "a heap object offset inside the NBFT heap",
            });
        }
        let end = start.saturating_add(usize::from(length));
        if end > self.heap_end {
            return Err(ProtoError::OutOfBounds {
                what,
                offset: to_u64(start.saturating_sub(self.heap_start)),
                len: u64::from(length),
                limit: to_u64(self.heap_end.saturating_sub(self.heap_start)),
                region: "NBFT heap",
            });
        }
        wire::slice(self.raw, start, usize::from(length), what).map(Some)
    }

    /// An optional heap string.
    fn heap_str(
        &self,
        desc: &[u8],
        off: usize,
        what: &'static str,
        charset: Charset,
    ) -> Result<Option<String>, ProtoError> {
        self.heap_obj(desc, off, what)?
            .map(|raw| heap_text(raw, what, charset))
            .transpose()
    }

    /// A mandatory heap string.
    fn required_str(
        &self,
        desc: &[u8],
        off: usize,
        what: &'static str,
        charset: Charset,
    ) -> Result<String, ProtoError> {
        self.heap_str(desc, off, what, charset)?
            .ok_or_else(|| missing(what))
    }

    /// A heap object that holds a fixed-size structure of `len` bytes.
    fn heap_struct(
        &self,
        desc: &[u8],
        off: usize,
        len: usize,
        what: &'static str,
    ) -> Result<&'a [u8], ProtoError> {
        let raw = self
            .heap_obj(desc, off, what)?
            .ok_or_else(|| missing(what))?;
        wire::slice(raw, 0, len, what)
    }
}

/// A heap string as libnvme reads it, on the lenient reading of §13.3 rule 5:
/// it ends at the first NUL or at `length`, whichever comes first (libnvme
/// itself wants a NUL within `length + 1` bytes, i.e. possibly just past the
/// object). Unlike fixed-width fields, heap strings have no padding, so
/// surrounding spaces are kept.
pub(super) fn heap_text(
    raw: &[u8],
    what: &'static str,
    charset: Charset,
) -> Result<String, ProtoError> {
    let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
    let value = raw.get(..end).unwrap_or_default();
    // Validates printability; its result is trimmed, so keep our own copy.
    decode_text(value, what, charset)?;
    String::from_utf8(value.to_vec()).map_err(|e| {
        let pos = e.utf8_error().valid_up_to();
        ProtoError::NonPrintable {
            field: what,
            offset: pos,
            byte: value.get(pos).copied().unwrap_or_default(),
            value: wire::escape(value),
        }
    })
}

pub(super) fn missing(what: &'static str) -> ProtoError {
    ProtoError::InvalidValue {
        what,
        value: 0,
        expected: "a non-empty heap object (this one is mandatory)",
    }
}

/// Checks that byte `off` of a structure holds `want` (ids, versions).
fn check_byte(
    buf: &[u8],
    off: usize,
    want: u8,
    what: &'static str,
    expected: &'static str,
) -> Result<(), ProtoError> {
    let got = wire::u8_at(buf, off, what)?;
    expect(u64::from(got), u64::from(want), what, expected)
}

/// Checks a structure's "valid" flag bit.
fn check_valid(set: bool, what: &'static str) -> Result<(), ProtoError> {
    expect(u64::from(set), 1, what, "the valid bit (0) set")
}

pub(super) fn expect(
    value: u64,
    want: u64,
    what: &'static str,
    expected: &'static str,
) -> Result<(), ProtoError> {
    if value == want {
        Ok(())
    } else {
        Err(ProtoError::InvalidValue {
            what,
            value,
            expected,
        })
    }
}

pub(super) fn to_u64(v: usize) -> u64 {
    u64::try_from(v).unwrap_or(u64::MAX)
}

fn to_usize(v: u32) -> usize {
    usize::try_from(v).unwrap_or(usize::MAX)
}

/// A 16-byte IP field; IPv4-mapped addresses come back as IPv4 (§13.2).
pub(super) fn ip_from_bytes(b: [u8; IP_LEN]) -> IpAddr {
    let v6 = Ipv6Addr::from(b);
    match v6.to_ipv4_mapped() {
        Some(v4) => IpAddr::V4(v4),
        None => IpAddr::V6(v6),
    }
}

fn ip_at(buf: &[u8], off: usize, what: &'static str) -> Result<IpAddr, ProtoError> {
    wire::array::<IP_LEN>(buf, off, what).map(ip_from_bytes)
}

pub(super) fn nonzero(v: u8) -> Option<u8> {
    (v != 0).then_some(v)
}

/// The 0-based position of the valid HFI with 1-based `index`, if any.
fn hfi_position(hfis: &[Option<NbftHfi>], index: u8) -> Option<usize> {
    let pos = usize::from(index).checked_sub(1)?;
    hfis.get(pos)?.as_ref().map(|_| pos)
}

/// One descriptor array of the control structure.
struct ArraySpec {
    structure: NbftStructure,
    what: &'static str,
    /// Offset in the control descriptor of the u32 list offset.
    list_off: usize,
    /// Offset in the control descriptor of the u8 count.
    count_off: usize,
    stride: usize,
}

const HFI_ARRAY: ArraySpec = ArraySpec {
    structure: NbftStructure::Hfi,
    what: "NBFT HFI descriptor",
    list_off: 16,
    count_off: 23,
    stride: HFI_LEN,
};
const SSNS_ARRAY: ArraySpec = ArraySpec {
    structure: NbftStructure::Subsystem,
    what: "NBFT SSNS descriptor",
    list_off: 24,
    count_off: 31,
    stride: SSNS_LEN,
};
const SECURITY_ARRAY: ArraySpec = ArraySpec {
    structure: NbftStructure::Security,
    what: "NBFT security descriptor",
    list_off: 32,
    count_off: 39,
    stride: SECURITY_LEN,
};
const DISCOVERY_ARRAY: ArraySpec = ArraySpec {
    structure: NbftStructure::Discovery,
    what: "NBFT discovery descriptor",
    list_off: 40,
    count_off: 47,
    stride: DISCOVERY_LEN,
};

/// Walks one descriptor array with libnvme's stride. `parse` gets the
/// descriptor bytes and its 0-based slot and returns its 1-based index with
/// the value, which lands at position index − 1. A descriptor that is
/// invalid, lies outside the table, or has an index out of range or already
/// taken is reported and leaves its place `None`. The list is as long as the
/// (u8) descriptor count, so untrusted indexes never size an allocation.
fn walk<T: Clone>(
    table: &Table<'_>,
    control: &[u8],
    spec: &ArraySpec,
    issues: &mut Vec<NbftIssue>,
    mut parse: impl FnMut(&[u8], usize, &mut Vec<NbftIssue>) -> Result<(usize, T), ProtoError>,
) -> Result<Vec<Option<T>>, ProtoError> {
    let base = to_usize(wire::u32_at(
        control,
        spec.list_off,
        "NBFT control descriptor",
    )?);
    let count = usize::from(wire::u8_at(
        control,
        spec.count_off,
        "NBFT control descriptor",
    )?);
    let mut out: Vec<Option<T>> = vec![None; count];
    for slot in 0..count {
        let off = base.saturating_add(slot.saturating_mul(spec.stride));
        let result = wire::slice(table.raw, off, spec.stride, spec.what)
            .and_then(|desc| parse(desc, slot, issues))
            .and_then(|(index, value)| {
                let cell = index.checked_sub(1).and_then(|pos| out.get_mut(pos));
                match cell {
                    Some(cell) if cell.is_none() => {
                        *cell = Some(value);
                        Ok(())
                    }
                    _ => Err(ProtoError::InvalidValue {
                        what: spec.what,
                        value: to_u64(index),
                        expected: "an index from 1 to the descriptor count, not used by an earlier descriptor",
                    }),
                }
            });
        if let Err(error) = result {
            issues.push(NbftIssue {
                structure: spec.structure,
                number: slot.saturating_add(1),
                error,
            });
        }
    }
    Ok(out)
}

/// Checks the header (§13.3 rule 1) and returns it with the table bounds.
fn parse_header(buf: &[u8]) -> Result<(NbftHeader, Table<'_>), ProtoError> {
    const WHAT: &str = "NBFT header";
    if buf.len() < MIN_TABLE_LEN {
        return Err(ProtoError::TooShort {
            what: "NBFT table",
            need: MIN_TABLE_LEN,
            got: buf.len(),
        });
    }
    let sig = wire::array::<4>(buf, 0, WHAT)?;
    if &sig != SIGNATURE {
        return Err(ProtoError::InvalidValue {
            what: "NBFT signature",
            value: u64::from(u32::from_le_bytes(sig)),
            expected: "\"NBFT\"",
        });
    }
    let length = to_usize(wire::u32_at(buf, 4, WHAT)?);
    if length > buf.len() {
        return Err(ProtoError::TooShort {
            what: "NBFT table (per its header length)",
            need: length,
            got: buf.len(),
        });
    }
    if length < MIN_TABLE_LEN {
        return Err(ProtoError::InvalidValue {
            what: "NBFT header table length",
            value: to_u64(length),
            expected: "at least 128 (header and control descriptor)",
        });
    }
    let raw = wire::slice(buf, 0, length, WHAT)?;
    let sum = raw.iter().fold(0u8, |acc, &b| acc.wrapping_add(b));
    if sum != 0 {
        return Err(ProtoError::Checksum {
            what: "NBFT table",
            sum,
        });
    }
    let major_revision = wire::u8_at(raw, 8, WHAT)?;
    expect(u64::from(major_revision), 1, "NBFT major revision", "1")?;
    let minor_revision = wire::u8_at(raw, 50, WHAT)?;
    expect(u64::from(minor_revision), 0, "NBFT minor revision", "0")?;
    let heap_off = wire::u32_at(raw, 36, WHAT)?;
    let heap_len = wire::u32_at(raw, 40, WHAT)?;
    let heap_start = to_usize(heap_off);
    let heap_end = heap_start.saturating_add(to_usize(heap_len));
    if heap_end > length {
        return Err(ProtoError::OutOfBounds {
            what: "NBFT heap",
            offset: u64::from(heap_off),
            len: u64::from(heap_len),
            limit: to_u64(length),
            region: "table",
        });
    }
    let table = Table {
        raw,
        heap_start,
        heap_end,
    };
    // libnvme does not use the signature object; a bad one is dropped
    // rather than failing an otherwise usable table.
    let driver_dev_path_sig = table
        .heap_obj(raw, 44, "NBFT driver device path signature")
        .ok()
        .flatten()
        .unwrap_or_default()
        .to_vec();
    let header = NbftHeader {
        oem_id: wire::array(raw, 10, WHAT)?,
        oem_table_id: wire::array(raw, 16, WHAT)?,
        oem_revision: wire::u32_at(raw, 24, WHAT)?,
        creator_id: wire::array(raw, 28, WHAT)?,
        creator_revision: wire::u32_at(raw, 32, WHAT)?,
        major_revision,
        minor_revision,
        driver_dev_path_sig,
    };
    Ok((header, table))
}

/// The host descriptor, found through the control descriptor (rule 3).
fn parse_host(table: &Table<'_>, control: &[u8]) -> Result<NbftHost, ProtoError> {
    const WHAT: &str = "NBFT host descriptor";
    let off = wire::u32_at(control, 8, "NBFT control descriptor")?;
    // libnvme checks the descriptor against the table with its struct size,
    // whatever length the control gives.
    let host = wire::slice(table.raw, to_usize(off), HOST_LEN, WHAT).map_err(|_| {
        ProtoError::OutOfBounds {
            what: WHAT,
            offset: u64::from(off),
            len: to_u64(HOST_LEN),
            limit: to_u64(table.raw.len()),
            region: "table",
        }
    })?;
    check_byte(host, 0, ID_HOST, "NBFT host descriptor structure id", "2")?;
    let flags = wire::u8_at(host, 1, WHAT)?;
    check_valid(flags & VALID != 0, "NBFT host descriptor flags")?;
    Ok(NbftHost {
        id: wire::array(host, 2, WHAT)?,
        nqn: table.required_str(host, 18, "NBFT host NQN", Charset::Utf8)?,
        host_id_configured: flags & HOST_ID_CONFIGURED != 0,
        host_nqn_configured: flags & HOST_NQN_CONFIGURED != 0,
        primary_admin_host_flag: PrimaryAdminHostFlag::from_bits(flags >> HOST_PAH_SHIFT),
    })
}

/// An HFI descriptor and its TCP transport info (rule 6).
fn parse_hfi(table: &Table<'_>, desc: &[u8]) -> Result<NbftHfi, ProtoError> {
    const WHAT: &str = "NBFT HFI descriptor";
    const INFO: &str = "NBFT HFI transport info";
    check_byte(desc, 0, ID_HFI, "NBFT HFI descriptor structure id", "3")?;
    let index = wire::u8_at(desc, 1, WHAT)?;
    let flags = wire::u8_at(desc, 2, WHAT)?;
    check_valid(flags & VALID != 0, "NBFT HFI descriptor flags")?;
    let trtype = wire::u8_at(desc, 3, WHAT)?;
    check_tcp(TrType::from(trtype), "NBFT HFI transport type")?;

    let info = table.heap_struct(desc, 16, HFI_TCP_INFO_LEN, INFO)?;
    check_byte(
        info,
        0,
        ID_HFI_TCP_INFO,
        "NBFT HFI transport info structure id",
        "7",
    )?;
    check_byte(info, 1, 1, "NBFT HFI transport info version", "1")?;
    // Bytes 2-5 (transport type, info version, HFI index) are not checked:
    // libnvme tolerates an index mismatch.
    let tflags = wire::u8_at(info, 6, INFO)?;
    check_valid(tflags & VALID != 0, "NBFT HFI transport info flags")?;
    let dhcp_override = tflags & HFI_DHCP_OVERRIDE != 0;
    let dhcp_server = ip_at(info, 88, INFO)?;
    Ok(NbftHfi {
        index,
        trtype: TrType::from(trtype),
        pci_sbdf: wire::u32_at(info, 7, INFO)?,
        mac: wire::array(info, 11, INFO)?,
        vlan: wire::u16_at(info, 17, INFO)?,
        ip_origin: wire::u8_at(info, 19, INFO)?,
        ipaddr: ip_at(info, 20, INFO)?,
        subnet_mask_prefix: wire::u8_at(info, 36, INFO)?,
        gateway_ipaddr: ip_at(info, 37, INFO)?,
        route_metric: wire::u16_at(info, 54, INFO)?,
        primary_dns_ipaddr: ip_at(info, 56, INFO)?,
        secondary_dns_ipaddr: ip_at(info, 72, INFO)?,
        dhcp_server_ipaddr: dhcp_override.then_some(dhcp_server),
        host_name: table.heap_str(info, 104, "NBFT HFI host name", Charset::Ascii)?,
        this_hfi_is_default_route: tflags & HFI_DEFAULT_ROUTE != 0,
        dhcp_override,
    })
}

/// What an accepted SSNS extended info contributes.
struct ExtInfo {
    controller_id: u16,
    asqsz: u16,
    dhcp_root_path: Option<String>,
}

/// The SSNS extended info (rule 7): accepted only with id 9, version 1,
/// matching SSNS index and valid flag.
fn parse_ssns_ext(table: &Table<'_>, desc: &[u8], ssns_index: u16) -> Result<ExtInfo, ProtoError> {
    const WHAT: &str = "NBFT SSNS extended info";
    let ext = table.heap_struct(desc, 60, SSNS_EXT_INFO_LEN, WHAT)?;
    check_byte(
        ext,
        0,
        ID_SSNS_EXT_INFO,
        "NBFT SSNS extended info structure id",
        "9",
    )?;
    check_byte(ext, 1, 1, "NBFT SSNS extended info version", "1")?;
    expect(
        u64::from(wire::u16_at(ext, 2, WHAT)?),
        u64::from(ssns_index),
        "NBFT SSNS extended info SSNS index",
        "the index of the SSNS descriptor pointing to it",
    )?;
    let flags = wire::u32_at(ext, 4, WHAT)?;
    check_valid(flags & EXT_VALID != 0, "NBFT SSNS extended info flags")?;
    let asqsz = wire::u16_at(ext, 10, WHAT)?;
    Ok(ExtInfo {
        controller_id: wire::u16_at(ext, 8, WHAT)?,
        asqsz: if flags & EXT_ASQSZ_VALID != 0 {
            asqsz
        } else {
            0
        },
        dhcp_root_path: table.heap_str(ext, 12, "NBFT SSNS DHCP root path", Charset::Utf8)?,
    })
}

/// An SSNS descriptor (rule 7). `slot` is its 0-based array position, for
/// reporting an ignored extended info.
fn parse_ssns(
    table: &Table<'_>,
    desc: &[u8],
    hfis: &[Option<NbftHfi>],
    slot: usize,
    issues: &mut Vec<NbftIssue>,
) -> Result<NbftSubsystem, ProtoError> {
    const WHAT: &str = "NBFT SSNS descriptor";
    check_byte(desc, 0, ID_SSNS, "NBFT SSNS descriptor structure id", "4")?;
    let index = wire::u16_at(desc, 1, WHAT)?;
    let flags = wire::u16_at(desc, 3, WHAT)?;
    check_valid(flags & SSNS_VALID != 0, "NBFT SSNS descriptor flags")?;
    let trtype = wire::u8_at(desc, 5, WHAT)?;
    check_tcp(TrType::from(trtype), "NBFT SSNS transport type")?;
    let trflags = wire::u16_at(desc, 6, WHAT)?;

    let traddr = table.heap_struct(desc, 10, IP_LEN, "NBFT SSNS subsystem transport address")?;
    let traddr = ip_at(traddr, 0, "NBFT SSNS subsystem transport address")?;
    let trsvcid = table.required_str(desc, 16, "NBFT SSNS transport service id", Charset::Ascii)?;
    let subsys_nqn = table.required_str(desc, 54, "NBFT SSNS subsystem NQN", Charset::Utf8)?;

    let primary = wire::u8_at(desc, 46, WHAT)?;
    let primary_pos = hfi_position(hfis, primary).ok_or(ProtoError::InvalidValue {
        what: "NBFT SSNS primary HFI index",
        value: u64::from(primary),
        expected: "the index of a valid HFI descriptor",
    })?;
    let mut hfi_indexes = vec![primary_pos];
    let secondaries = table
        .heap_obj(desc, 48, "NBFT SSNS secondary HFI associations")?
        .unwrap_or_default();
    // libnvme de-duplicates the list, drops the primary and skips (with a
    // debug message) indexes naming no HFI.
    for &sec in secondaries {
        if let Some(pos) = hfi_position(hfis, sec) {
            if !hfi_indexes.contains(&pos) {
                hfi_indexes.push(pos);
            }
        }
    }

    let ext = if flags & SSNS_EXT_INFO_IN_USE != 0 {
        match parse_ssns_ext(table, desc, index) {
            Ok(ext) => Some(ext),
            Err(error) => {
                issues.push(NbftIssue {
                    structure: NbftStructure::SubsystemExtInfo,
                    number: slot.saturating_add(1),
                    error,
                });
                None
            }
        }
    } else {
        None
    };

    Ok(NbftSubsystem {
        index,
        flags: flags & !(SSNS_VALID | SSNS_EXT_INFO_IN_USE),
        trtype: TrType::from(trtype),
        traddr,
        trsvcid,
        subsys_port_id: wire::u16_at(desc, 22, WHAT)?,
        nsid: wire::u32_at(desc, 24, WHAT)?,
        nid_type: NidType::from(wire::u8_at(desc, 28, WHAT)?),
        nid: wire::array(desc, 29, WHAT)?,
        subsys_nqn,
        hfi_indexes,
        primary_discovery_ctrl_index: nonzero(wire::u8_at(desc, 8, WHAT)?),
        security_index: nonzero(wire::u8_at(desc, 45, WHAT)?),
        pdu_header_digest_required: trflags & SSNS_TR_HDR_DIGEST != 0,
        data_digest_required: trflags & SSNS_TR_DATA_DIGEST != 0,
        extended_info: ext.is_some(),
        controller_id: ext.as_ref().map_or(0, |e| e.controller_id),
        asqsz: ext.as_ref().map_or(0, |e| e.asqsz),
        dhcp_root_path: ext.and_then(|e| e.dhcp_root_path),
    })
}

/// A security descriptor: only its id is checked, libnvme decodes nothing.
fn parse_security(table: &Table<'_>, desc: &[u8]) -> Result<NbftSecurity, ProtoError> {
    const WHAT: &str = "NBFT security descriptor";
    check_byte(
        desc,
        0,
        ID_SECURITY,
        "NBFT security descriptor structure id",
        "5",
    )?;
    let obj = |off: usize, what: &'static str| -> Result<Vec<u8>, ProtoError> {
        Ok(table
            .heap_obj(desc, off, what)?
            .unwrap_or_default()
            .to_vec())
    };
    Ok(NbftSecurity {
        index: wire::u8_at(desc, 1, WHAT)?,
        flags: wire::u16_at(desc, 2, WHAT)?,
        secret_type: wire::u8_at(desc, 4, WHAT)?,
        channel_algorithms: obj(6, "NBFT security channel algorithms")?,
        auth_protocols: obj(12, "NBFT security authentication protocols")?,
        cipher_suites: obj(18, "NBFT security cipher suites")?,
        dh_groups: obj(24, "NBFT security DH groups")?,
        hash_functions: obj(30, "NBFT security hash functions")?,
        key_path: obj(36, "NBFT security key path")?,
    })
}

/// A discovery descriptor (rule 8).
fn parse_discovery(
    table: &Table<'_>,
    desc: &[u8],
    hfis: &[Option<NbftHfi>],
) -> Result<NbftDiscovery, ProtoError> {
    const WHAT: &str = "NBFT discovery descriptor";
    check_byte(
        desc,
        0,
        ID_DISCOVERY,
        "NBFT discovery descriptor structure id",
        "6",
    )?;
    let flags = wire::u8_at(desc, 1, WHAT)?;
    check_valid(flags & VALID != 0, "NBFT discovery descriptor flags")?;
    Ok(NbftDiscovery {
        index: wire::u8_at(desc, 2, WHAT)?,
        hfi_index: hfi_position(hfis, wire::u8_at(desc, 3, WHAT)?),
        security_index: nonzero(wire::u8_at(desc, 4, WHAT)?),
        uri: table.required_str(desc, 6, "NBFT discovery controller URI", Charset::Utf8)?,
        nqn: table.required_str(desc, 12, "NBFT discovery controller NQN", Charset::Utf8)?,
    })
}

impl Nbft {
    /// Parses a table as libnvme does (§13.3). Fails when the table as a
    /// whole is unusable (rules 1–3); a bad descriptor only leaves `None` at
    /// its place. A clear control "valid" flag gives an empty `Ok`.
    pub fn parse(table: &[u8]) -> Result<Nbft, ProtoError> {
        Self::parse_with_issues(table).map(|(nbft, _)| nbft)
    }

    /// [`parse`](Self::parse), also returning why each dropped descriptor
    /// (or ignored SSNS extended info) was dropped, for a debug log.
    pub fn parse_with_issues(buf: &[u8]) -> Result<(Nbft, Vec<NbftIssue>), ProtoError> {
        const CONTROL: &str = "NBFT control descriptor";
        let (header, table) = parse_header(buf)?;
        let control = wire::slice(table.raw, CONTROL_OFF, CONTROL_LEN, CONTROL)?;
        let mut nbft = Nbft {
            header,
            valid: false,
            host: NbftHost::default(),
            hfis: Vec::new(),
            subsystems: Vec::new(),
            security: Vec::new(),
            discovery: Vec::new(),
        };
        let mut issues = Vec::new();
        if wire::u8_at(control, 6, CONTROL)? & VALID == 0 {
            return Ok((nbft, issues));
        }
        check_byte(
            control,
            0,
            ID_CONTROL,
            "NBFT control descriptor structure id",
            "1",
        )?;
        nbft.valid = true;
        nbft.host = parse_host(&table, control)?;

        let hfis = walk(&table, control, &HFI_ARRAY, &mut issues, |d, _, _| {
            parse_hfi(&table, d).map(|h| (usize::from(h.index), h))
        })?;
        // SSNS and discovery descriptors refer to HFIs, so those come first.
        nbft.subsystems = walk(
            &table,
            control,
            &SSNS_ARRAY,
            &mut issues,
            |d, slot, issues| {
                parse_ssns(&table, d, &hfis, slot, issues).map(|s| (usize::from(s.index), s))
            },
        )?;
        nbft.security = walk(&table, control, &SECURITY_ARRAY, &mut issues, |d, _, _| {
            parse_security(&table, d).map(|s| (usize::from(s.index), s))
        })?;
        nbft.discovery = walk(&table, control, &DISCOVERY_ARRAY, &mut issues, |d, _, _| {
            parse_discovery(&table, d, &hfis).map(|s| (usize::from(s.index), s))
        })?;
        nbft.hfis = hfis;
        Ok((nbft, issues))
    }

    /// Splits a discovery URI such as `nvme+tcp://100.71.103.50:8009/` the way
    /// nvme-stas does (§13.4): the transport after `nvme+` (lower case), the
    /// host (lower case, IPv6 brackets removed) and the port if one is given.
    /// `None` for a URI that is not `nvme+<transport>://<host>[:port]...`
    /// or whose port is not a number up to 65535.
    pub fn discovery_uri_parts(uri: &str) -> Option<(String, String, Option<u16>)> {
        let (scheme, rest) = uri.split_once("://")?;
        let scheme = scheme.to_ascii_lowercase();
        let transport = scheme.strip_prefix("nvme+")?;
        if transport.is_empty() {
            return None;
        }
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        let (host, port) = if let Some(bracketed) = hostport.strip_prefix('[') {
            let (host, tail) = bracketed.split_once(']')?;
            let port = if tail.is_empty() {
                None
            } else {
                Some(tail.strip_prefix(':')?)
            };
            (host, port)
        } else {
            match hostport.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (hostport, None),
            }
        };
        if host.is_empty() {
            return None;
        }
        let port = match port {
            None | Some("") => None,
            Some(p) if p.bytes().all(|b| b.is_ascii_digit()) => Some(p.parse::<u16>().ok()?),
            Some(_) => return None,
        };
        Some((transport.to_owned(), host.to_ascii_lowercase(), port))
    }
}
