//! The NVMe Boot Firmware Table (NBFT): the ACPI table in which pre-OS
//! firmware (UEFI NVMe/TCP boot) describes the host, its network interfaces
//! (HFIs), the subsystems it booted from (SSNS) and its discovery controllers
//! (nvme-stas-behaviour §13).
//!
//! Parsing follows libnvme's rules (§13.3) so the daemons see what libnvme's
//! Python binding returns: a problem with the table as a whole fails the
//! parse, a bad descriptor is dropped on its own (`None` at its place in the
//! list) and never hides the others. Firmware is as untrusted as a network
//! peer, so every offset and length is checked and arbitrary bytes never
//! panic.
//!
//! Emitting writes one canonical layout (header, control, host, descriptor
//! arrays, then the heap) so tests and fixture generators can build tables;
//! `Nbft::parse(&x.emit()?)? == x` holds for every value `emit` accepts,
//! which is why `emit` rejects values the parser could not give back.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};

use crate::types::TrType;
use crate::wire::{self, decode_text, Charset, Out};
use crate::ProtoError;

/// ACPI table signature.
const SIGNATURE: &[u8; 4] = b"NBFT";
/// Size of the ACPI header.
const HEADER_LEN: usize = 64;
/// Offset and size of the control descriptor.
const CONTROL_OFF: usize = 64;
const CONTROL_LEN: usize = 64;
/// The smallest table libnvme accepts: header and control descriptor.
const MIN_TABLE_LEN: usize = HEADER_LEN + CONTROL_LEN;
/// Where `emit` puts the host descriptor (libnvme finds it through the control).
const HOST_OFF: usize = MIN_TABLE_LEN;
// libnvme's struct sizes, which it uses as array strides whatever the
// control descriptor says (§13.3 rule 4).
const HOST_LEN: usize = 32;
const HFI_LEN: usize = 32;
const HFI_TCP_INFO_LEN: usize = 128;
const SSNS_LEN: usize = 128;
const SSNS_EXT_INFO_LEN: usize = 18;
const SECURITY_LEN: usize = 64;
const DISCOVERY_LEN: usize = 32;
/// Size of an IP address field.
const IP_LEN: usize = 16;

// Structure ids (byte 0 of each structure).
const ID_CONTROL: u8 = 1;
const ID_HOST: u8 = 2;
const ID_HFI: u8 = 3;
const ID_SSNS: u8 = 4;
const ID_SECURITY: u8 = 5;
const ID_DISCOVERY: u8 = 6;
const ID_HFI_TCP_INFO: u8 = 7;
const ID_SSNS_EXT_INFO: u8 = 9;

/// The only transport the NBFT describes.
const TRTYPE_TCP: u8 = 3;

// Flag bits.
const VALID: u8 = 0x01;
const HOST_ID_CONFIGURED: u8 = 0x02;
const HOST_NQN_CONFIGURED: u8 = 0x04;
const HOST_PAH_SHIFT: u8 = 3;
const HFI_DEFAULT_ROUTE: u8 = 0x02;
const HFI_DHCP_OVERRIDE: u8 = 0x04;
const SSNS_VALID: u16 = 0x0001;
const SSNS_EXT_INFO_IN_USE: u16 = 0x0010;
const SSNS_TR_VALID: u16 = 0x0001;
const SSNS_TR_HDR_DIGEST: u16 = 0x0002;
const SSNS_TR_DATA_DIGEST: u16 = 0x0004;
const EXT_VALID: u32 = 0x0001;
const EXT_ASQSZ_VALID: u32 = 0x0002;

/// A parsed (or to-be-emitted) NBFT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nbft {
    /// The ACPI header fields that are not layout.
    pub header: NbftHeader,
    /// The control descriptor's valid flag. When clear the table carries no
    /// boot data: `host` is the default and every list is empty.
    pub valid: bool,
    /// The host descriptor.
    pub host: NbftHost,
    /// Host fabric interfaces; position = HFI index − 1, `None` where the
    /// descriptor was invalid (or absent).
    pub hfis: Vec<Option<NbftHfi>>,
    /// Subsystem namespaces; position = SSNS index − 1.
    pub subsystems: Vec<Option<NbftSubsystem>>,
    /// Security profiles; position = security index − 1.
    pub security: Vec<Option<NbftSecurity>>,
    /// Discovery controllers; position = discovery index − 1.
    pub discovery: Vec<Option<NbftDiscovery>>,
}

/// The ACPI header fields of an NBFT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NbftHeader {
    /// OEM id, raw.
    pub oem_id: [u8; 6],
    /// OEM table id, raw.
    pub oem_table_id: [u8; 8],
    /// OEM revision.
    pub oem_revision: u32,
    /// ASL compiler / creator id, raw.
    pub creator_id: [u8; 4],
    /// Creator revision.
    pub creator_revision: u32,
    /// Major revision; libnvme only reads 1.
    pub major_revision: u8,
    /// Minor revision; libnvme only reads 0.
    pub minor_revision: u8,
    /// Driver device path signature (heap object), raw; empty when absent.
    /// libnvme does not interpret it; one outside the heap is dropped.
    pub driver_dev_path_sig: Vec<u8>,
}

impl Default for NbftHeader {
    fn default() -> Self {
        Self {
            oem_id: [0; 6],
            oem_table_id: [0; 8],
            oem_revision: 0,
            creator_id: [0; 4],
            creator_revision: 0,
            major_revision: 1,
            minor_revision: 0,
            driver_dev_path_sig: Vec::new(),
        }
    }
}

/// The host descriptor.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NbftHost {
    /// Host identifier, the UUID bytes in table order.
    pub id: [u8; 16],
    /// Host NQN (mandatory in a valid table).
    pub nqn: String,
    /// Flag bit 1: the firmware was configured with a host id.
    pub host_id_configured: bool,
    /// Flag bit 2: the firmware was configured with a host NQN.
    pub host_nqn_configured: bool,
    /// Flag bits 3–4.
    pub primary_admin_host_flag: PrimaryAdminHostFlag,
}

impl NbftHost {
    /// The host id as UUID text (`8-4-4-4-12`, lower case), as libnvme gives it.
    pub fn id_text(&self) -> String {
        uuid_text(&self.id)
    }
}

/// The host descriptor's primary administrative host flag (bits 3–4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum PrimaryAdminHostFlag {
    /// 0: not indicated.
    #[default]
    NotIndicated,
    /// 1: this host is not the primary administrative host.
    Unselected,
    /// 2: this host is the primary administrative host.
    Selected,
    /// 3: reserved.
    Reserved,
}

impl PrimaryAdminHostFlag {
    fn from_bits(bits: u8) -> Self {
        match bits & 0x03 {
            0 => Self::NotIndicated,
            1 => Self::Unselected,
            2 => Self::Selected,
            _ => Self::Reserved,
        }
    }

    fn bits(self) -> u8 {
        match self {
            Self::NotIndicated => 0,
            Self::Unselected => 1,
            Self::Selected => 2,
            Self::Reserved => 3,
        }
    }

    /// libnvme's spelling (`primary_admin_host_flag`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotIndicated => "not indicated",
            Self::Unselected => "unselected",
            Self::Selected => "selected",
            Self::Reserved => "reserved",
        }
    }
}

/// A host fabric interface: the HFI descriptor and its TCP transport info.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NbftHfi {
    /// Descriptor index, 1-based (= position in [`Nbft::hfis`] + 1).
    pub index: u8,
    /// Transport type; always TCP in a table libnvme accepts.
    pub trtype: TrType,
    /// PCI segment (bits 31–16), bus (15–8), device (7–3), function (2–0).
    pub pci_sbdf: u32,
    /// MAC address.
    pub mac: [u8; 6],
    /// VLAN id, 0 for none.
    pub vlan: u16,
    /// IP origin (how the address was obtained, e.g. 82 = DHCP in the fixture).
    pub ip_origin: u8,
    /// Interface address.
    pub ipaddr: IpAddr,
    /// Subnet mask prefix length.
    pub subnet_mask_prefix: u8,
    /// Gateway address.
    pub gateway_ipaddr: IpAddr,
    /// Route metric.
    pub route_metric: u16,
    /// Primary DNS server.
    pub primary_dns_ipaddr: IpAddr,
    /// Secondary DNS server.
    pub secondary_dns_ipaddr: IpAddr,
    /// DHCP server; `Some` exactly when `dhcp_override` is set (§13.3 rule 6).
    pub dhcp_server_ipaddr: Option<IpAddr>,
    /// Host name, when the firmware gives one.
    pub host_name: Option<String>,
    /// TCP info flag bit 1: this HFI carries the default route.
    pub this_hfi_is_default_route: bool,
    /// TCP info flag bit 2: the address came from DHCP.
    pub dhcp_override: bool,
}

impl NbftHfi {
    /// The MAC address as lower-case colon hex (`b0:26:28:e8:7c:0e`).
    pub fn mac_addr(&self) -> String {
        let parts: Vec<String> = self.mac.iter().map(|b| format!("{b:02x}")).collect();
        parts.join(":")
    }

    /// libnvme's `pcidev`: `"%x:%x:%x.%x"` of segment, bus, device, function.
    pub fn pcidev(&self) -> String {
        let s = self.pci_sbdf;
        format!(
            "{:x}:{:x}:{:x}.{:x}",
            s >> 16,
            (s >> 8) & 0xff,
            (s & 0xf8) >> 3,
            s & 0x7
        )
    }
}

/// Namespace identifier type of an SSNS descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum NidType {
    /// 1: IEEE EUI-64 (first 8 bytes of the NID).
    Eui64,
    /// 2: NGUID.
    Nguid,
    /// 3: UUID.
    Uuid,
    /// Any other value (0 = none), kept as read.
    Other(u8),
}

impl From<u8> for NidType {
    fn from(v: u8) -> Self {
        match v {
            1 => Self::Eui64,
            2 => Self::Nguid,
            3 => Self::Uuid,
            other => Self::Other(other),
        }
    }
}

impl From<NidType> for u8 {
    fn from(v: NidType) -> u8 {
        match v {
            NidType::Eui64 => 1,
            NidType::Nguid => 2,
            NidType::Uuid => 3,
            NidType::Other(other) => other,
        }
    }
}

impl NidType {
    /// libnvme's spelling (`nid_type`); `None` for types it does not report.
    pub fn as_str(self) -> Option<&'static str> {
        match self {
            Self::Eui64 => Some("eui64"),
            Self::Nguid => Some("nguid"),
            Self::Uuid => Some("uuid"),
            Self::Other(_) => None,
        }
    }
}

/// A subsystem namespace (SSNS descriptor plus its extended info).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NbftSubsystem {
    /// Descriptor index, 1-based (= position in [`Nbft::subsystems`] + 1).
    pub index: u16,
    /// SSNS flags other than valid (bit 0) and extended-info-in-use (bit 4),
    /// which follow from the descriptor being present and from
    /// `extended_info`: non-bootable (1), use security (2), DHCP root-path
    /// override (3), separate discovery controller (5), discovered
    /// namespace (6), unavailable namespace (7–8). Bits 0 and 4 are clear.
    pub flags: u16,
    /// Transport type; always TCP in a table libnvme accepts.
    pub trtype: TrType,
    /// Subsystem transport address.
    pub traddr: IpAddr,
    /// Transport service id (port).
    pub trsvcid: String,
    /// Subsystem port id.
    pub subsys_port_id: u16,
    /// Namespace id.
    pub nsid: u32,
    /// Namespace identifier type.
    pub nid_type: NidType,
    /// Namespace identifier, raw.
    pub nid: [u8; 16],
    /// Subsystem NQN.
    pub subsys_nqn: String,
    /// HFIs to reach the subsystem, 0-based positions in [`Nbft::hfis`]:
    /// the primary first, then the secondaries that exist, de-duplicated.
    pub hfi_indexes: Vec<usize>,
    /// Primary discovery controller index, raw 1-based (`None` for 0).
    pub primary_discovery_ctrl_index: Option<u8>,
    /// Security descriptor index, raw 1-based (`None` for 0).
    pub security_index: Option<u8>,
    /// Transport flag bit 1.
    pub pdu_header_digest_required: bool,
    /// Transport flag bit 2.
    pub data_digest_required: bool,
    /// Whether an acceptable SSNS extended info was present; the three
    /// fields below are 0 / `None` without one.
    pub extended_info: bool,
    /// Controller id (extended info).
    pub controller_id: u16,
    /// Admin submission queue size (extended info), 0 unless its flag is set.
    pub asqsz: u16,
    /// DHCP root path (extended info).
    pub dhcp_root_path: Option<String>,
}

impl NbftSubsystem {
    /// libnvme's `nid` text: hex (8 bytes for EUI-64, 16 for NGUID), UUID
    /// text for a UUID; `None` for other types.
    pub fn nid_text(&self) -> Option<String> {
        match self.nid_type {
            NidType::Eui64 => Some(hex(self.nid.get(..8).unwrap_or_default())),
            NidType::Nguid => Some(hex(&self.nid)),
            NidType::Uuid => Some(uuid_text(&self.nid)),
            NidType::Other(_) => None,
        }
    }
}

/// A security descriptor. libnvme does not decode these, so the heap
/// strings are kept as raw bytes (empty = absent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NbftSecurity {
    /// Descriptor index, 1-based (= position in [`Nbft::security`] + 1).
    pub index: u8,
    /// Flags, raw.
    pub flags: u16,
    /// Secret type, raw.
    pub secret_type: u8,
    /// Secure channel allowed algorithms.
    pub channel_algorithms: Vec<u8>,
    /// Authentication protocols.
    pub auth_protocols: Vec<u8>,
    /// Cipher suites.
    pub cipher_suites: Vec<u8>,
    /// DH groups.
    pub dh_groups: Vec<u8>,
    /// Secure hash functions.
    pub hash_functions: Vec<u8>,
    /// Secret key path.
    pub key_path: Vec<u8>,
}

/// A discovery descriptor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NbftDiscovery {
    /// Descriptor index, 1-based (= position in [`Nbft::discovery`] + 1).
    pub index: u8,
    /// The HFI to reach it, 0-based position in [`Nbft::hfis`]; `None` when
    /// the table names none or one that does not exist (as libnvme).
    pub hfi_index: Option<usize>,
    /// Security descriptor index, raw 1-based (`None` for 0).
    pub security_index: Option<u8>,
    /// Discovery controller URI (`nvme+tcp://100.71.103.50:8009/`).
    pub uri: String,
    /// Discovery controller NQN.
    pub nqn: String,
}

/// Which kind of structure a dropped-descriptor report is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum NbftStructure {
    /// HFI descriptor (with its transport info).
    Hfi,
    /// SSNS descriptor.
    Subsystem,
    /// SSNS extended info (ignored, the SSNS is kept).
    SubsystemExtInfo,
    /// Security descriptor.
    Security,
    /// Discovery descriptor.
    Discovery,
}

impl fmt::Display for NbftStructure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Hfi => "HFI descriptor",
            Self::Subsystem => "SSNS descriptor",
            Self::SubsystemExtInfo => "SSNS extended info of SSNS descriptor",
            Self::Security => "security descriptor",
            Self::Discovery => "discovery descriptor",
        })
    }
}

/// A structure the parser dropped, and why (libnvme logs these at debug).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("NBFT {structure} {number}: {error}")]
pub struct NbftIssue {
    /// The kind of structure.
    pub structure: NbftStructure,
    /// 1-based position of the descriptor in its array.
    pub number: usize,
    /// What was wrong with it.
    pub error: ProtoError,
}

// ---------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------

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
fn heap_text(raw: &[u8], what: &'static str, charset: Charset) -> Result<String, ProtoError> {
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

fn missing(what: &'static str) -> ProtoError {
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

fn expect(
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

fn to_u64(v: usize) -> u64 {
    u64::try_from(v).unwrap_or(u64::MAX)
}

fn to_usize(v: u32) -> usize {
    usize::try_from(v).unwrap_or(usize::MAX)
}

/// A 16-byte IP field; IPv4-mapped addresses come back as IPv4 (§13.2).
fn ip_from_bytes(b: [u8; IP_LEN]) -> IpAddr {
    let v6 = Ipv6Addr::from(b);
    match v6.to_ipv4_mapped() {
        Some(v4) => IpAddr::V4(v4),
        None => IpAddr::V6(v6),
    }
}

fn ip_at(buf: &[u8], off: usize, what: &'static str) -> Result<IpAddr, ProtoError> {
    wire::array::<IP_LEN>(buf, off, what).map(ip_from_bytes)
}

fn nonzero(v: u8) -> Option<u8> {
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

// ---------------------------------------------------------------------------
// Emitting
// ---------------------------------------------------------------------------

/// A heap object pointer; the default (0, 0) means absent.
#[derive(Debug, Clone, Copy, Default)]
struct HeapObj {
    offset: u32,
    length: u16,
}

fn write_obj(w: &mut Out<'_>, off: usize, obj: HeapObj) -> Result<(), ProtoError> {
    w.u32(off, obj.offset)?;
    w.u16(off.saturating_add(4), obj.length)
}

/// The heap under construction: objects are appended in the order `emit`
/// allocates them, which makes the layout deterministic.
struct Heap {
    /// Table offset of the heap.
    base: usize,
    data: Vec<u8>,
}

impl Heap {
    /// Appends `bytes` (plus a NUL when `nul`, so a string is terminated the
    /// way libnvme wants; the object length excludes it). Empty = absent.
    fn alloc(
        &mut self,
        bytes: &[u8],
        nul: bool,
        what: &'static str,
    ) -> Result<HeapObj, ProtoError> {
        if bytes.is_empty() {
            return Ok(HeapObj::default());
        }
        let length = u16::try_from(bytes.len()).map_err(|_| ProtoError::FieldTooLong {
            field: what,
            max: usize::from(u16::MAX),
            len: bytes.len(),
        })?;
        let offset = table_offset(self.base.saturating_add(self.data.len()))?;
        self.data.extend_from_slice(bytes);
        if nul {
            self.data.push(0);
        }
        Ok(HeapObj { offset, length })
    }

    /// Appends a string after checking the parser would read it back.
    fn text(
        &mut self,
        text: &str,
        what: &'static str,
        charset: Charset,
    ) -> Result<HeapObj, ProtoError> {
        check_text(text, what, charset)?;
        self.alloc(text.as_bytes(), true, what)
    }

    fn opt_text(
        &mut self,
        text: Option<&str>,
        what: &'static str,
        charset: Charset,
    ) -> Result<HeapObj, ProtoError> {
        text.map_or(Ok(HeapObj::default()), |t| self.text(t, what, charset))
    }
}

fn table_offset(off: usize) -> Result<u32, ProtoError> {
    u32::try_from(off).map_err(|_| ProtoError::InvalidValue {
        what: "NBFT table length",
        value: to_u64(off),
        expected: "a table smaller than 4 GiB",
    })
}

/// A heap string must be non-empty (empty would read back as absent) and
/// decode to itself: printable, no NUL.
fn check_text(text: &str, what: &'static str, charset: Charset) -> Result<(), ProtoError> {
    if text.is_empty() {
        return Err(missing(what));
    }
    if text.contains('\0') {
        return Err(ProtoError::BadText {
            what,
            text: wire::escape(text.as_bytes()),
            reason: "a heap string cannot contain NUL",
        });
    }
    heap_text(text.as_bytes(), what, charset).map(|_| ())
}

/// The 16-byte form of an IP field: IPv4 as `::ffff:a.b.c.d`. An IPv6 value
/// that is itself IPv4-mapped would read back as IPv4, so it is refused.
fn ip_bytes(ip: IpAddr, what: &'static str) -> Result<[u8; IP_LEN], ProtoError> {
    match ip {
        IpAddr::V4(v4) => Ok(v4.to_ipv6_mapped().octets()),
        IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some() => Err(ProtoError::BadText {
            what,
            text: v6.to_string(),
            reason: "an IPv4-mapped address must be given as IPv4",
        }),
        IpAddr::V6(v6) => Ok(v6.octets()),
    }
}

fn check_index(index: usize, pos: usize, what: &'static str) -> Result<(), ProtoError> {
    expect(
        to_u64(index),
        to_u64(pos.saturating_add(1)),
        what,
        "its position in the list + 1",
    )
}

fn check_tcp(trtype: TrType, what: &'static str) -> Result<(), ProtoError> {
    expect(
        u64::from(u8::from(trtype)),
        u64::from(TRTYPE_TCP),
        what,
        "3 (tcp)",
    )
}

/// The 1-based table index of the HFI at 0-based position `pos`, which must
/// be present (the parser ignores references to absent HFIs).
fn hfi_ref(hfis: &[Option<NbftHfi>], pos: usize, what: &'static str) -> Result<u8, ProtoError> {
    u8::try_from(pos.saturating_add(1))
        .ok()
        .filter(|_| matches!(hfis.get(pos), Some(Some(_))))
        .ok_or(ProtoError::InvalidValue {
            what,
            value: to_u64(pos),
            expected: "the 0-based position of a present HFI",
        })
}

fn nonzero_opt(v: Option<u8>, what: &'static str) -> Result<u8, ProtoError> {
    match v {
        Some(0) => Err(ProtoError::InvalidValue {
            what,
            value: 0,
            expected: "Some(1..=255) or None (0 means none)",
        }),
        Some(v) => Ok(v),
        None => Ok(0),
    }
}

/// The descriptor count of a list, which the control stores in a u8.
fn list_count<T>(list: &[T], what: &'static str) -> Result<u8, ProtoError> {
    u8::try_from(list.len()).map_err(|_| ProtoError::InvalidValue {
        what,
        value: to_u64(list.len()),
        expected: "at most 255 descriptors",
    })
}

/// `buf[off..off + len]` for writing one structure.
fn region<'b>(
    buf: &'b mut [u8],
    off: usize,
    len: usize,
    what: &'static str,
) -> Result<Out<'b>, ProtoError> {
    let got = buf.len();
    let end = off.saturating_add(len);
    let sub = buf.get_mut(off..end).ok_or(ProtoError::TooShort {
        what,
        need: end,
        got,
    })?;
    Ok(Out::new(sub, what))
}

fn emit_host(host: &NbftHost, w: &mut Out<'_>, heap: &mut Heap) -> Result<(), ProtoError> {
    let nqn = heap.text(&host.nqn, "NBFT host NQN", Charset::Utf8)?;
    let mut flags = VALID | (host.primary_admin_host_flag.bits() << HOST_PAH_SHIFT);
    if host.host_id_configured {
        flags |= HOST_ID_CONFIGURED;
    }
    if host.host_nqn_configured {
        flags |= HOST_NQN_CONFIGURED;
    }
    w.u8(0, ID_HOST)?;
    w.u8(1, flags)?;
    w.bytes(2, &host.id)?;
    write_obj(w, 18, nqn)
}

fn emit_hfi(hfi: &NbftHfi, pos: usize, w: &mut Out<'_>, heap: &mut Heap) -> Result<(), ProtoError> {
    const INFO: &str = "NBFT HFI transport info";
    check_index(usize::from(hfi.index), pos, "NBFT HFI descriptor index")?;
    check_tcp(hfi.trtype, "NBFT HFI transport type")?;
    if hfi.dhcp_server_ipaddr.is_some() != hfi.dhcp_override {
        return Err(ProtoError::InvalidValue {
            what: "NBFT HFI DHCP server address",
            value: u64::from(hfi.dhcp_override),
            expected: "an address exactly when dhcp_override is set",
        });
    }
    let name = heap.opt_text(
        hfi.host_name.as_deref(),
        "NBFT HFI host name",
        Charset::Ascii,
    )?;
    let mut flags = VALID;
    if hfi.this_hfi_is_default_route {
        flags |= HFI_DEFAULT_ROUTE;
    }
    if hfi.dhcp_override {
        flags |= HFI_DHCP_OVERRIDE;
    }
    let mut info = [0u8; HFI_TCP_INFO_LEN];
    let mut i = Out::new(&mut info, INFO);
    i.u8(0, ID_HFI_TCP_INFO)?;
    i.u8(1, 1)?;
    i.u8(2, TRTYPE_TCP)?;
    i.u8(3, 1)?;
    i.u16(4, u16::from(hfi.index))?;
    i.u8(6, flags)?;
    i.u32(7, hfi.pci_sbdf)?;
    i.bytes(11, &hfi.mac)?;
    i.u16(17, hfi.vlan)?;
    i.u8(19, hfi.ip_origin)?;
    i.bytes(20, &ip_bytes(hfi.ipaddr, "NBFT HFI IP address")?)?;
    i.u8(36, hfi.subnet_mask_prefix)?;
    i.bytes(37, &ip_bytes(hfi.gateway_ipaddr, "NBFT HFI gateway")?)?;
    i.u16(54, hfi.route_metric)?;
    i.bytes(
        56,
        &ip_bytes(hfi.primary_dns_ipaddr, "NBFT HFI primary DNS")?,
    )?;
    i.bytes(
        72,
        &ip_bytes(hfi.secondary_dns_ipaddr, "NBFT HFI secondary DNS")?,
    )?;
    if let Some(dhcp) = hfi.dhcp_server_ipaddr {
        i.bytes(88, &ip_bytes(dhcp, "NBFT HFI DHCP server")?)?;
    }
    write_obj(&mut i, 104, name)?;
    let info_obj = heap.alloc(&info, false, INFO)?;

    w.u8(0, ID_HFI)?;
    w.u8(1, hfi.index)?;
    w.u8(2, VALID)?;
    w.u8(3, TRTYPE_TCP)?;
    write_obj(w, 16, info_obj)
}

fn emit_ssns(
    s: &NbftSubsystem,
    pos: usize,
    hfis: &[Option<NbftHfi>],
    w: &mut Out<'_>,
    heap: &mut Heap,
) -> Result<(), ProtoError> {
    check_index(usize::from(s.index), pos, "NBFT SSNS descriptor index")?;
    check_tcp(s.trtype, "NBFT SSNS transport type")?;
    if s.flags & (SSNS_VALID | SSNS_EXT_INFO_IN_USE) != 0 {
        return Err(ProtoError::InvalidValue {
            what: "NBFT SSNS flags",
            value: u64::from(s.flags),
            expected: "bits 0 and 4 clear (emit derives them)",
        });
    }
    let nid_type = u8::from(s.nid_type);
    if NidType::from(nid_type) != s.nid_type {
        return Err(ProtoError::InvalidValue {
            what: "NBFT SSNS NID type",
            value: u64::from(nid_type),
            expected: "Other(_) only for values other than 1-3",
        });
    }
    // Every HFI reference must name a present HFI, once, or the parser
    // would drop it (or the whole SSNS for the primary).
    let mut refs = Vec::with_capacity(s.hfi_indexes.len());
    for &p in &s.hfi_indexes {
        let index = hfi_ref(hfis, p, "NBFT SSNS HFI index")?;
        if refs.contains(&index) {
            return Err(ProtoError::InvalidValue {
                what: "NBFT SSNS HFI index",
                value: to_u64(p),
                expected: "each HFI named once",
            });
        }
        refs.push(index);
    }
    let Some((&primary, secondaries)) = refs.split_first() else {
        return Err(missing("NBFT SSNS primary HFI index"));
    };
    if !s.extended_info && (s.controller_id != 0 || s.asqsz != 0 || s.dhcp_root_path.is_some()) {
        return Err(ProtoError::InvalidValue {
            what: "NBFT SSNS extended info",
            value: 0,
            expected: "extended_info set when controller_id, asqsz or dhcp_root_path is given",
        });
    }

    let traddr = heap.alloc(
        &ip_bytes(s.traddr, "NBFT SSNS subsystem transport address")?,
        false,
        "NBFT SSNS subsystem transport address",
    )?;
    let trsvcid = heap.text(&s.trsvcid, "NBFT SSNS transport service id", Charset::Ascii)?;
    let secondary = heap.alloc(secondaries, false, "NBFT SSNS secondary HFI associations")?;
    let nqn = heap.text(&s.subsys_nqn, "NBFT SSNS subsystem NQN", Charset::Utf8)?;
    let mut flags = s.flags | SSNS_VALID;
    let ext = if s.extended_info {
        flags |= SSNS_EXT_INFO_IN_USE;
        let root = heap.opt_text(
            s.dhcp_root_path.as_deref(),
            "NBFT SSNS DHCP root path",
            Charset::Utf8,
        )?;
        let mut ext = [0u8; SSNS_EXT_INFO_LEN];
        let mut e = Out::new(&mut ext, "NBFT SSNS extended info");
        e.u8(0, ID_SSNS_EXT_INFO)?;
        e.u8(1, 1)?;
        e.u16(2, s.index)?;
        e.u32(
            4,
            if s.asqsz != 0 {
                EXT_VALID | EXT_ASQSZ_VALID
            } else {
                EXT_VALID
            },
        )?;
        e.u16(8, s.controller_id)?;
        e.u16(10, s.asqsz)?;
        write_obj(&mut e, 12, root)?;
        heap.alloc(&ext, false, "NBFT SSNS extended info")?
    } else {
        HeapObj::default()
    };
    let mut trflags = SSNS_TR_VALID;
    if s.pdu_header_digest_required {
        trflags |= SSNS_TR_HDR_DIGEST;
    }
    if s.data_digest_required {
        trflags |= SSNS_TR_DATA_DIGEST;
    }

    w.u8(0, ID_SSNS)?;
    w.u16(1, s.index)?;
    w.u16(3, flags)?;
    w.u8(5, TRTYPE_TCP)?;
    w.u16(6, trflags)?;
    w.u8(
        8,
        nonzero_opt(
            s.primary_discovery_ctrl_index,
            "NBFT SSNS primary discovery controller index",
        )?,
    )?;
    write_obj(w, 10, traddr)?;
    write_obj(w, 16, trsvcid)?;
    w.u16(22, s.subsys_port_id)?;
    w.u32(24, s.nsid)?;
    w.u8(28, nid_type)?;
    w.bytes(29, &s.nid)?;
    w.u8(
        45,
        nonzero_opt(s.security_index, "NBFT SSNS security descriptor index")?,
    )?;
    w.u8(46, primary)?;
    write_obj(w, 48, secondary)?;
    write_obj(w, 54, nqn)?;
    write_obj(w, 60, ext)
}

fn emit_security(
    s: &NbftSecurity,
    pos: usize,
    w: &mut Out<'_>,
    heap: &mut Heap,
) -> Result<(), ProtoError> {
    check_index(usize::from(s.index), pos, "NBFT security descriptor index")?;
    let objs = [
        (6, &s.channel_algorithms, "NBFT security channel algorithms"),
        (
            12,
            &s.auth_protocols,
            "NBFT security authentication protocols",
        ),
        (18, &s.cipher_suites, "NBFT security cipher suites"),
        (24, &s.dh_groups, "NBFT security DH groups"),
        (30, &s.hash_functions, "NBFT security hash functions"),
        (36, &s.key_path, "NBFT security key path"),
    ];
    w.u8(0, ID_SECURITY)?;
    w.u8(1, s.index)?;
    w.u16(2, s.flags)?;
    w.u8(4, s.secret_type)?;
    for (off, bytes, what) in objs {
        // NUL-terminated like the strings they normally are.
        let obj = heap.alloc(bytes, true, what)?;
        write_obj(w, off, obj)?;
    }
    Ok(())
}

fn emit_discovery(
    d: &NbftDiscovery,
    pos: usize,
    hfis: &[Option<NbftHfi>],
    w: &mut Out<'_>,
    heap: &mut Heap,
) -> Result<(), ProtoError> {
    check_index(usize::from(d.index), pos, "NBFT discovery descriptor index")?;
    let hfi = match d.hfi_index {
        None => 0,
        Some(p) => hfi_ref(hfis, p, "NBFT discovery HFI index")?,
    };
    let uri = heap.text(&d.uri, "NBFT discovery controller URI", Charset::Utf8)?;
    let nqn = heap.text(&d.nqn, "NBFT discovery controller NQN", Charset::Utf8)?;
    w.u8(0, ID_DISCOVERY)?;
    w.u8(1, VALID)?;
    w.u8(2, d.index)?;
    w.u8(3, hfi)?;
    w.u8(
        4,
        nonzero_opt(d.security_index, "NBFT discovery security index")?,
    )?;
    write_obj(w, 6, uri)?;
    write_obj(w, 12, nqn)
}

/// Where one descriptor array goes in the emitted table.
struct Placement {
    offset: usize,
    count: u8,
    stride: usize,
}

impl Placement {
    fn slot(&self, pos: usize) -> usize {
        self.offset.saturating_add(pos.saturating_mul(self.stride))
    }

    fn end(&self) -> usize {
        self.slot(usize::from(self.count))
    }

    /// The control descriptor's list offset: 0 for an empty list.
    fn list_offset(&self) -> Result<u32, ProtoError> {
        if self.count == 0 {
            Ok(0)
        } else {
            table_offset(self.offset)
        }
    }
}

impl Nbft {
    /// Emits the table in the canonical layout: header, control, host,
    /// HFI, SSNS, security and discovery arrays, then the heap, with heap
    /// objects in descriptor order and a correct checksum. `None` entries
    /// become zeroed (invalid) descriptors so positions survive.
    ///
    /// Refuses values the parser would not give back: an index that is not
    /// position + 1, a dangling or repeated HFI reference, empty or
    /// non-printable strings, a non-TCP transport, revisions other than 1.0,
    /// an invalid table (`valid` clear) with content, and so on.
    pub fn emit(&self) -> Result<Vec<u8>, ProtoError> {
        expect(
            u64::from(self.header.major_revision),
            1,
            "NBFT major revision",
            "1",
        )?;
        expect(
            u64::from(self.header.minor_revision),
            0,
            "NBFT minor revision",
            "0",
        )?;
        if !self.valid
            && (self.host != NbftHost::default()
                || !self.hfis.is_empty()
                || !self.subsystems.is_empty()
                || !self.security.is_empty()
                || !self.discovery.is_empty())
        {
            return Err(ProtoError::InvalidValue {
                what: "NBFT control valid flag",
                value: 0,
                expected: "set when the table has a host or descriptors",
            });
        }

        let hfi = Placement {
            offset: HOST_OFF + HOST_LEN,
            count: list_count(&self.hfis, "NBFT HFI descriptor count")?,
            stride: HFI_LEN,
        };
        let ssns = Placement {
            offset: hfi.end(),
            count: list_count(&self.subsystems, "NBFT SSNS descriptor count")?,
            stride: SSNS_LEN,
        };
        let sec = Placement {
            offset: ssns.end(),
            count: list_count(&self.security, "NBFT security descriptor count")?,
            stride: SECURITY_LEN,
        };
        let disc = Placement {
            offset: sec.end(),
            count: list_count(&self.discovery, "NBFT discovery descriptor count")?,
            stride: DISCOVERY_LEN,
        };
        let heap_off = if self.valid {
            disc.end()
        } else {
            MIN_TABLE_LEN
        };
        let mut table = vec![0u8; heap_off];
        let mut heap = Heap {
            base: heap_off,
            data: Vec::new(),
        };

        let sig = heap.alloc(
            &self.header.driver_dev_path_sig,
            false,
            "NBFT driver device path signature",
        )?;
        if self.valid {
            emit_host(
                &self.host,
                &mut region(&mut table, HOST_OFF, HOST_LEN, "NBFT host descriptor")?,
                &mut heap,
            )?;
            for (pos, h) in self.hfis.iter().enumerate() {
                if let Some(h) = h {
                    let mut w = region(&mut table, hfi.slot(pos), HFI_LEN, "NBFT HFI descriptor")?;
                    emit_hfi(h, pos, &mut w, &mut heap)?;
                }
            }
            for (pos, s) in self.subsystems.iter().enumerate() {
                if let Some(s) = s {
                    let mut w =
                        region(&mut table, ssns.slot(pos), SSNS_LEN, "NBFT SSNS descriptor")?;
                    emit_ssns(s, pos, &self.hfis, &mut w, &mut heap)?;
                }
            }
            for (pos, s) in self.security.iter().enumerate() {
                if let Some(s) = s {
                    let mut w = region(
                        &mut table,
                        sec.slot(pos),
                        SECURITY_LEN,
                        "NBFT security descriptor",
                    )?;
                    emit_security(s, pos, &mut w, &mut heap)?;
                }
            }
            for (pos, d) in self.discovery.iter().enumerate() {
                if let Some(d) = d {
                    let mut w = region(
                        &mut table,
                        disc.slot(pos),
                        DISCOVERY_LEN,
                        "NBFT discovery descriptor",
                    )?;
                    emit_discovery(d, pos, &self.hfis, &mut w, &mut heap)?;
                }
            }
        }

        let mut c = region(
            &mut table,
            CONTROL_OFF,
            CONTROL_LEN,
            "NBFT control descriptor",
        )?;
        c.u8(0, ID_CONTROL)?;
        c.u8(1, 1)?;
        c.u8(2, 0)?;
        c.u16(4, 64)?;
        if self.valid {
            c.u8(6, VALID)?;
            write_obj(
                &mut c,
                8,
                HeapObj {
                    offset: table_offset(HOST_OFF)?,
                    length: 32,
                },
            )?;
            c.u8(14, 1)?;
            for (off, p) in [(16, &hfi), (24, &ssns), (32, &sec), (40, &disc)] {
                c.u32(off, p.list_offset()?)?;
                c.u16(off + 4, u16::try_from(p.stride).unwrap_or(u16::MAX))?;
                c.u8(off + 6, 1)?;
                c.u8(off + 7, p.count)?;
            }
        }

        let heap_len = table_offset(heap.data.len())?;
        table.extend_from_slice(&heap.data);
        let length = table_offset(table.len())?;
        let mut h = region(&mut table, 0, HEADER_LEN, "NBFT header")?;
        h.bytes(0, SIGNATURE)?;
        h.u32(4, length)?;
        h.u8(8, self.header.major_revision)?;
        h.bytes(10, &self.header.oem_id)?;
        h.bytes(16, &self.header.oem_table_id)?;
        h.u32(24, self.header.oem_revision)?;
        h.bytes(28, &self.header.creator_id)?;
        h.u32(32, self.header.creator_revision)?;
        h.u32(36, table_offset(heap_off)?)?;
        h.u32(40, heap_len)?;
        write_obj(&mut h, 44, sig)?;
        h.u8(50, self.header.minor_revision)?;
        let sum = table.iter().fold(0u8, |acc, &b| acc.wrapping_add(b));
        region(&mut table, 9, 1, "NBFT header")?.u8(0, 0u8.wrapping_sub(sum))?;
        Ok(table)
    }
}

// ---------------------------------------------------------------------------
// Text helpers
// ---------------------------------------------------------------------------

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `8-4-4-4-12` lower-case UUID text of 16 bytes in table order.
fn uuid_text(b: &[u8; 16]) -> String {
    let part = |from: usize, to: usize| hex(b.get(from..to).unwrap_or_default());
    format!(
        "{}-{}-{}-{}-{}",
        part(0, 4),
        part(4, 6),
        part(6, 8),
        part(8, 10),
        part(10, 16)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::net::Ipv4Addr;

    fn v4(s: &str) -> IpAddr {
        IpAddr::V4(s.parse::<Ipv4Addr>().unwrap())
    }

    fn unhex<const N: usize>(s: &str) -> [u8; N] {
        let s: String = s.chars().filter(|c| *c != '-' && *c != ':').collect();
        let mut out = [0u8; N];
        for (i, b) in out.iter_mut().enumerate() {
            *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap();
        }
        out
    }

    fn fixture_hfi() -> NbftHfi {
        NbftHfi {
            index: 1,
            trtype: TrType::Tcp,
            // segment 0, bus 0x40, device 0, function 0
            pci_sbdf: 0x4000,
            mac: unhex("b0:26:28:e8:7c:0e"),
            vlan: 0,
            ip_origin: 82,
            ipaddr: v4("100.71.245.232"),
            subnet_mask_prefix: 24,
            gateway_ipaddr: v4("100.71.245.254"),
            route_metric: 500,
            primary_dns_ipaddr: v4("100.64.0.5"),
            secondary_dns_ipaddr: v4("100.64.0.6"),
            dhcp_server_ipaddr: Some(v4("100.71.245.254")),
            host_name: None,
            this_hfi_is_default_route: true,
            dhcp_override: true,
        }
    }

    fn fixture_ssns(index: u16, traddr: &str, controller_id: u16) -> NbftSubsystem {
        NbftSubsystem {
            index,
            flags: 0,
            trtype: TrType::Tcp,
            traddr: v4(traddr),
            trsvcid: "4420".into(),
            subsys_port_id: 0,
            nsid: 148,
            nid_type: NidType::Nguid,
            nid: unhex("c82404ed9c15f53b8ccf0968002e0fca"),
            subsys_nqn: "nqn.1988-11.com.dell:powerstore:00:2a64abf1c5b81F6C4549".into(),
            hfi_indexes: vec![0],
            primary_discovery_ctrl_index: None,
            security_index: None,
            pdu_header_digest_required: false,
            data_digest_required: false,
            extended_info: true,
            controller_id,
            asqsz: 0,
            dhcp_root_path: None,
        }
    }

    /// The values of the upstream `test/NBFT` fixture (§13.5).
    fn fixture() -> Nbft {
        Nbft {
            header: NbftHeader {
                oem_id: *b"DELL  ",
                oem_table_id: *b"PE_SC3  ",
                oem_revision: 1,
                creator_id: *b"DELL",
                creator_revision: 1,
                ..NbftHeader::default()
            },
            valid: true,
            host: NbftHost {
                id: unhex("44454c4c-3400-1036-8038-b2c04f313233"),
                nqn: "nqn.1988-11.com.dell:PowerEdge.R760.1234567".into(),
                host_id_configured: true,
                host_nqn_configured: true,
                primary_admin_host_flag: PrimaryAdminHostFlag::NotIndicated,
            },
            hfis: vec![Some(fixture_hfi())],
            subsystems: vec![
                Some(fixture_ssns(1, "100.71.103.48", 5)),
                Some(fixture_ssns(2, "100.71.103.49", 4166)),
            ],
            security: vec![],
            discovery: vec![Some(NbftDiscovery {
                index: 1,
                hfi_index: Some(0),
                security_index: None,
                uri: "nvme+tcp://100.71.103.50:8009/".into(),
                nqn: "nqn.2014-08.org.nvmexpress.discovery".into(),
            })],
        }
    }

    /// The emitted fixture is kept under fixtures/data/fuzz-seeds/nbft as a
    /// sample table and fuzz seed (STAS_BLESS=1 rewrites it).
    #[test]
    fn fixture_file_matches() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../fixtures/data/fuzz-seeds/nbft/dell-r760.bin");
        let bytes = fixture().emit().unwrap();
        if std::env::var_os("STAS_BLESS").is_some() {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &bytes).unwrap();
        }
        let on_disk = std::fs::read(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (run with STAS_BLESS=1)", path.display()));
        assert_eq!(
            on_disk,
            bytes,
            "{} is stale (run with STAS_BLESS=1)",
            path.display()
        );
    }

    fn sum(buf: &[u8]) -> u8 {
        buf.iter().fold(0u8, |a, &b| a.wrapping_add(b))
    }

    fn fix_checksum(buf: &mut [u8]) {
        let len = (u32::from_le_bytes(buf[4..8].try_into().unwrap()) as usize).min(buf.len());
        buf[9] = 0;
        buf[9] = 0u8.wrapping_sub(sum(&buf[..len]));
    }

    fn rd32(buf: &[u8], off: usize) -> usize {
        u32::from_le_bytes(buf[off..off + 4].try_into().unwrap()) as usize
    }

    fn wr32(buf: &mut [u8], off: usize, v: usize) {
        buf[off..off + 4].copy_from_slice(&u32::try_from(v).unwrap().to_le_bytes());
    }

    fn wr16(buf: &mut [u8], off: usize, v: usize) {
        buf[off..off + 2].copy_from_slice(&u16::try_from(v).unwrap().to_le_bytes());
    }

    /// Offset of descriptor `slot` of the array whose control list offset is at `ctl`.
    fn desc_off(buf: &[u8], ctl: usize, stride: usize, slot: usize) -> usize {
        rd32(buf, CONTROL_OFF + ctl) + slot * stride
    }
    fn hfi_off(buf: &[u8], slot: usize) -> usize {
        desc_off(buf, 16, HFI_LEN, slot)
    }
    fn ssns_off(buf: &[u8], slot: usize) -> usize {
        desc_off(buf, 24, SSNS_LEN, slot)
    }
    fn disc_off(buf: &[u8], slot: usize) -> usize {
        desc_off(buf, 40, DISCOVERY_LEN, slot)
    }

    /// Appends `bytes` to the heap (which `emit` puts last), fixes the
    /// lengths and returns their table offset.
    fn append_heap(buf: &mut Vec<u8>, bytes: &[u8]) -> usize {
        let off = buf.len();
        buf.extend_from_slice(bytes);
        let len = buf.len();
        wr32(buf, 4, len);
        let heap_len = rd32(buf, 40) + bytes.len();
        wr32(buf, 40, heap_len);
        off
    }

    /// Re-checksums and parses.
    fn reparse(buf: &mut [u8]) -> Result<(Nbft, Vec<NbftIssue>), ProtoError> {
        fix_checksum(buf);
        Nbft::parse_with_issues(buf)
    }

    #[test]
    fn fixture_values_round_trip() {
        let x = fixture();
        let raw = x.emit().unwrap();
        assert_eq!(sum(&raw), 0, "checksum byte makes the sum 0");
        assert_eq!(&raw[0..4], b"NBFT");
        assert_eq!(rd32(&raw, 4), raw.len());
        assert_eq!(raw[64 + 23], 1, "one HFI");
        assert_eq!(raw[64 + 31], 2, "two SSNS");
        assert_eq!(raw[64 + 39], 0, "no security descriptor");
        assert_eq!(raw[64 + 47], 1, "one discovery descriptor");
        assert_eq!(raw[HOST_OFF + 1], 0x07, "host flags as in the fixture");

        let (n, issues) = Nbft::parse_with_issues(&raw).unwrap();
        assert!(issues.is_empty(), "{issues:?}");
        assert!(n.valid);
        assert_eq!(n.host.nqn, "nqn.1988-11.com.dell:PowerEdge.R760.1234567");
        assert_eq!(n.host.id_text(), "44454c4c-3400-1036-8038-b2c04f313233");
        assert!(n.host.host_id_configured && n.host.host_nqn_configured);
        assert_eq!(n.host.primary_admin_host_flag.as_str(), "not indicated");

        assert_eq!(n.hfis.len(), 1);
        let h = n.hfis[0].as_ref().unwrap();
        assert_eq!(h.trtype.stas_str(), "tcp");
        assert_eq!(h.pcidev(), "0:40:0.0");
        assert_eq!(h.mac_addr(), "b0:26:28:e8:7c:0e");
        assert_eq!((h.vlan, h.ip_origin), (0, 82));
        assert_eq!(h.ipaddr.to_string(), "100.71.245.232");
        assert_eq!(h.subnet_mask_prefix, 24);
        assert_eq!(h.gateway_ipaddr.to_string(), "100.71.245.254");
        assert_eq!(h.route_metric, 500);
        assert_eq!(h.primary_dns_ipaddr.to_string(), "100.64.0.5");
        assert_eq!(h.secondary_dns_ipaddr.to_string(), "100.64.0.6");
        assert_eq!(h.dhcp_server_ipaddr.unwrap().to_string(), "100.71.245.254");
        assert!(h.this_hfi_is_default_route && h.dhcp_override);
        assert_eq!(h.host_name, None);

        assert_eq!(n.subsystems.len(), 2);
        for (s, (traddr, cntlid)) in n
            .subsystems
            .iter()
            .zip([("100.71.103.48", 5), ("100.71.103.49", 4166)])
        {
            let s = s.as_ref().unwrap();
            assert_eq!(s.trtype.stas_str(), "tcp");
            assert_eq!(s.traddr.to_string(), traddr);
            assert_eq!(s.trsvcid, "4420");
            assert_eq!(s.subsys_port_id, 0);
            assert_eq!(s.nsid, 148);
            assert_eq!(s.nid_type.as_str(), Some("nguid"));
            assert_eq!(s.nid_text().unwrap(), "c82404ed9c15f53b8ccf0968002e0fca");
            assert_eq!(
                s.subsys_nqn,
                "nqn.1988-11.com.dell:powerstore:00:2a64abf1c5b81F6C4549"
            );
            assert_eq!(s.controller_id, cntlid);
            assert_eq!(s.asqsz, 0);
            assert_eq!(s.hfi_indexes, vec![0]);
            assert!(!s.pdu_header_digest_required && !s.data_digest_required);
            assert!(s.extended_info);
            assert_eq!(s.dhcp_root_path, None);
        }
        assert!(n.security.is_empty());
        let d = n.discovery[0].as_ref().unwrap();
        assert_eq!(d.hfi_index, Some(0));
        assert_eq!(d.security_index, None);
        assert_eq!(d.nqn, "nqn.2014-08.org.nvmexpress.discovery");
        assert_eq!(d.uri, "nvme+tcp://100.71.103.50:8009/");
        assert_eq!(
            Nbft::discovery_uri_parts(&d.uri),
            Some(("tcp".into(), "100.71.103.50".into(), Some(8009)))
        );

        assert_eq!(n, x);
        assert_eq!(n.emit().unwrap(), raw);
    }

    /// The fixture's raw quirks: secondary HFI list `[1]` (the primary) and
    /// extended info flags 0x01 with a raw ASQSZ of 32.
    #[test]
    fn fixture_raw_quirks() {
        let mut raw = fixture().emit().unwrap();
        let list = append_heap(&mut raw, &[1]);
        for slot in 0..2 {
            let s = ssns_off(&raw, slot);
            wr32(&mut raw, s + 48, list);
            wr16(&mut raw, s + 52, 1);
            let ext = rd32(&raw, s + 60);
            wr32(&mut raw, ext + 4, 0x01);
            wr16(&mut raw, ext + 10, 32);
        }
        let (n, issues) = reparse(&mut raw).unwrap();
        assert!(issues.is_empty());
        assert_eq!(n, fixture());
    }

    #[test]
    fn whole_table_errors() {
        let good = fixture().emit().unwrap();
        assert!(Nbft::parse(&good).is_ok());

        assert!(matches!(
            Nbft::parse(&[]),
            Err(ProtoError::TooShort {
                need: 128,
                got: 0,
                ..
            })
        ));
        assert!(matches!(
            Nbft::parse(&good[..127]),
            Err(ProtoError::TooShort { .. })
        ));
        let garbage: Vec<u8> = [0xca, 0xfe, 0xba, 0xbe].repeat(64);
        assert!(Nbft::parse(&garbage).is_err());

        let mut b = good.clone();
        b[0] = b'X';
        assert!(matches!(
            reparse(&mut b),
            Err(ProtoError::InvalidValue {
                what: "NBFT signature",
                ..
            })
        ));

        let mut b = good.clone();
        b[20] ^= 0x55;
        assert!(matches!(
            Nbft::parse(&b),
            Err(ProtoError::Checksum {
                what: "NBFT table",
                ..
            })
        ));

        // Header length beyond the buffer (a truncated file).
        let b = &good[..good.len() - 1];
        assert!(matches!(Nbft::parse(b), Err(ProtoError::TooShort { .. })));
        // A longer buffer is fine: bytes after the table are ignored.
        let mut longer = good.clone();
        longer.extend_from_slice(&[0xff; 7]);
        assert_eq!(Nbft::parse(&longer).unwrap(), fixture());

        let mut b = good.clone();
        b[8] = 2;
        assert!(matches!(
            reparse(&mut b),
            Err(ProtoError::InvalidValue {
                what: "NBFT major revision",
                value: 2,
                ..
            })
        ));
        let mut b = good.clone();
        b[50] = 1;
        assert!(matches!(
            reparse(&mut b),
            Err(ProtoError::InvalidValue {
                what: "NBFT minor revision",
                ..
            })
        ));

        let mut b = good.clone();
        let heap_len = rd32(&b, 40);
        wr32(&mut b, 40, heap_len + 1);
        assert!(matches!(
            reparse(&mut b),
            Err(ProtoError::OutOfBounds {
                what: "NBFT heap",
                ..
            })
        ));
        let mut b = good.clone();
        wr32(&mut b, 36, u32::MAX as usize);
        assert!(matches!(
            reparse(&mut b),
            Err(ProtoError::OutOfBounds {
                what: "NBFT heap",
                ..
            })
        ));

        let mut b = good.clone();
        b[CONTROL_OFF] = 9;
        assert!(matches!(
            reparse(&mut b),
            Err(ProtoError::InvalidValue {
                what: "NBFT control descriptor structure id",
                ..
            })
        ));
    }

    #[test]
    fn control_valid_clear_is_empty_success() {
        let mut b = fixture().emit().unwrap();
        b[CONTROL_OFF + 6] = 0;
        // Even a wrong control id does not matter then.
        b[CONTROL_OFF] = 0;
        let n = reparse(&mut b).unwrap().0;
        assert!(!n.valid);
        assert_eq!(n.host, NbftHost::default());
        assert!(
            n.hfis.is_empty()
                && n.subsystems.is_empty()
                && n.security.is_empty()
                && n.discovery.is_empty()
        );
        assert_eq!(n.header, fixture().header);
        // And the empty form round-trips.
        let raw = n.emit().unwrap();
        assert_eq!(raw.len(), 128);
        assert_eq!(Nbft::parse(&raw).unwrap(), n);
    }

    #[test]
    fn host_descriptor_rules() {
        let good = fixture().emit().unwrap();
        // Host NQN missing.
        let mut b = good.clone();
        wr16(&mut b, HOST_OFF + 22, 0);
        assert!(matches!(
            reparse(&mut b),
            Err(ProtoError::InvalidValue {
                what: "NBFT host NQN",
                ..
            })
        ));
        // Host NQN outside the heap.
        let mut b = good.clone();
        wr32(&mut b, HOST_OFF + 18, 0);
        assert!(matches!(
            reparse(&mut b),
            Err(ProtoError::InvalidValue {
                what: "NBFT host NQN",
                ..
            })
        ));
        let mut b = good.clone();
        wr32(&mut b, HOST_OFF + 18, good.len() - 3);
        assert!(matches!(
            reparse(&mut b),
            Err(ProtoError::OutOfBounds {
                what: "NBFT host NQN",
                ..
            })
        ));
        // Host descriptor outside the table, wrong id, valid flag clear.
        let mut b = good.clone();
        wr32(&mut b, CONTROL_OFF + 8, good.len() - 31);
        assert!(matches!(
            reparse(&mut b),
            Err(ProtoError::OutOfBounds {
                what: "NBFT host descriptor",
                ..
            })
        ));
        let mut b = good.clone();
        b[HOST_OFF] = 3;
        assert!(reparse(&mut b).is_err());
        let mut b = good.clone();
        b[HOST_OFF + 1] &= !1;
        assert!(reparse(&mut b).is_err());
        // Non-printable NQN.
        let mut b = good.clone();
        let nqn = rd32(&b, HOST_OFF + 18);
        b[nqn + 3] = 0x07;
        assert!(matches!(
            reparse(&mut b),
            Err(ProtoError::NonPrintable {
                field: "NBFT host NQN",
                ..
            })
        ));
        // Primary admin host bits.
        let mut b = good.clone();
        b[HOST_OFF + 1] = 0x01 | (2 << 3);
        let h = reparse(&mut b).unwrap().0.host;
        assert_eq!(h.primary_admin_host_flag, PrimaryAdminHostFlag::Selected);
        assert!(!h.host_id_configured && !h.host_nqn_configured);
    }

    #[test]
    fn heap_strings_end_at_nul_or_length() {
        let good = fixture().emit().unwrap();
        let nqn = "nqn.1988-11.com.dell:PowerEdge.R760.1234567";
        // Length shorter than the text: no NUL within `length` bytes, the
        // string is exactly `length` bytes (lenient reading of rule 5).
        let mut b = good.clone();
        wr16(&mut b, HOST_OFF + 22, nqn.len() - 3);
        assert_eq!(reparse(&mut b).unwrap().0.host.nqn, nqn[..nqn.len() - 3]);
        // A NUL inside the object ends the string early.
        let mut b = good.clone();
        let off = rd32(&b, HOST_OFF + 18);
        b[off + 4] = 0;
        assert_eq!(reparse(&mut b).unwrap().0.host.nqn, "nqn.");
        // A string ending right at the heap end, with no NUL after it.
        let mut b = good.clone();
        let at = append_heap(&mut b, b"nqn.2014-08.org.example:end");
        wr32(&mut b, HOST_OFF + 18, at);
        wr16(&mut b, HOST_OFF + 22, 27);
        assert_eq!(
            reparse(&mut b).unwrap().0.host.nqn,
            "nqn.2014-08.org.example:end"
        );
        // Surrounding spaces are content, not padding.
        let mut x = fixture();
        x.host.nqn = " nqn.x ".into();
        assert_eq!(Nbft::parse(&x.emit().unwrap()).unwrap().host.nqn, " nqn.x ");
    }

    #[test]
    fn hfi_wrong_id_is_skipped_with_its_dependents() {
        let mut b = fixture().emit().unwrap();
        let h = hfi_off(&b, 0);
        b[h] = 4;
        let (n, issues) = reparse(&mut b).unwrap();
        assert_eq!(n.hfis, vec![None]);
        // The SSNS need their primary HFI; the discovery entry loses its HFI.
        assert_eq!(n.subsystems, vec![None, None]);
        assert_eq!(n.discovery[0].as_ref().unwrap().hfi_index, None);
        assert_eq!(issues.len(), 3);
        assert_eq!(issues[0].structure, NbftStructure::Hfi);
        assert_eq!(issues[0].number, 1);
        assert!(issues[0].to_string().starts_with("NBFT HFI descriptor 1: "));
        assert!(issues[1].to_string().contains("NBFT SSNS descriptor 1"));
    }

    #[test]
    fn hfi_rules() {
        let good = fixture().emit().unwrap();
        let info = |b: &[u8]| rd32(b, hfi_off(b, 0) + 16);
        // Wrong transport type, valid flag clear.
        for (byte, val) in [(3usize, 2u8), (2, 0)] {
            let mut b = good.clone();
            let h = hfi_off(&b, 0);
            b[h + byte] = val;
            assert_eq!(reparse(&mut b).unwrap().0.hfis, vec![None]);
        }
        // TCP info: wrong id, wrong version, valid flag clear.
        for (byte, val) in [(0usize, 8u8), (1, 2), (6, 0x06)] {
            let mut b = good.clone();
            let i = info(&b);
            b[i + byte] = val;
            assert_eq!(reparse(&mut b).unwrap().0.hfis, vec![None], "byte {byte}");
        }
        // Index mismatch in the TCP info is tolerated.
        let mut b = good.clone();
        let i = info(&b);
        wr16(&mut b, i + 4, 9);
        assert_eq!(reparse(&mut b).unwrap().0, fixture());
        // TCP info shorter than its structure, or outside the heap.
        let mut b = good.clone();
        let h = hfi_off(&b, 0);
        wr16(&mut b, h + 20, 127);
        assert_eq!(reparse(&mut b).unwrap().0.hfis, vec![None]);
        let mut b = good.clone();
        wr32(&mut b, h + 16, 64);
        assert_eq!(reparse(&mut b).unwrap().0.hfis, vec![None]);
        // DHCP server only with the override flag.
        let mut b = good.clone();
        let i = info(&b);
        b[i + 6] = 0x03;
        let n = reparse(&mut b).unwrap().0;
        let hfi = n.hfis[0].as_ref().unwrap();
        assert!(!hfi.dhcp_override);
        assert_eq!(hfi.dhcp_server_ipaddr, None);
        // Index out of range: skipped.
        let mut b = good.clone();
        b[h + 1] = 2;
        let (n, issues) = reparse(&mut b).unwrap();
        assert_eq!(n.hfis, vec![None]);
        assert!(matches!(
            issues[0].error,
            ProtoError::InvalidValue {
                what: "NBFT HFI descriptor",
                value: 2,
                ..
            }
        ));
    }

    #[test]
    fn ipv6_and_mapped_addresses() {
        let mut x = fixture();
        let h = x.hfis[0].as_mut().unwrap();
        h.ipaddr = "fd00::1".parse().unwrap();
        h.gateway_ipaddr = IpAddr::V6(Ipv6Addr::UNSPECIFIED);
        let n = Nbft::parse(&x.emit().unwrap()).unwrap();
        assert_eq!(n, x);
        let h = n.hfis[0].as_ref().unwrap();
        assert_eq!(h.ipaddr.to_string(), "fd00::1");
        assert_eq!(h.gateway_ipaddr.to_string(), "::");
        // IPv4 is written mapped.
        let raw = fixture().emit().unwrap();
        let info = rd32(&raw, hfi_off(&raw, 0) + 16);
        assert_eq!(
            &raw[info + 20..info + 36],
            &Ipv4Addr::new(100, 71, 245, 232).to_ipv6_mapped().octets()
        );
        // A mapped IPv6 value would not come back as given.
        let mut x = fixture();
        x.hfis[0].as_mut().unwrap().ipaddr = "::ffff:1.2.3.4".parse().unwrap();
        assert!(matches!(x.emit(), Err(ProtoError::BadText { .. })));
    }

    #[test]
    fn ssns_rules() {
        let good = fixture().emit().unwrap();
        // Primary HFI index naming no HFI: that SSNS is skipped, the other kept.
        let mut b = good.clone();
        let s = ssns_off(&b, 0);
        b[s + 46] = 5;
        let (n, issues) = reparse(&mut b).unwrap();
        assert_eq!(n.subsystems[0], None);
        assert_eq!(n.subsystems[1], fixture().subsystems[1]);
        assert!(matches!(
            issues[0].error,
            ProtoError::InvalidValue {
                what: "NBFT SSNS primary HFI index",
                value: 5,
                ..
            }
        ));
        let mut b = good.clone();
        b[s + 46] = 0;
        assert_eq!(reparse(&mut b).unwrap().0.subsystems[0], None);
        // Mandatory heap objects: traddr, trsvcid, NQN.
        for obj in [10usize, 16, 54] {
            let mut b = good.clone();
            wr16(&mut b, s + obj + 4, 0);
            assert_eq!(
                reparse(&mut b).unwrap().0.subsystems[0],
                None,
                "object at {obj}"
            );
        }
        // A heap object pointing outside the heap skips the descriptor.
        let mut b = good.clone();
        wr32(&mut b, s + 54, good.len() - 2);
        let (n, issues) = reparse(&mut b).unwrap();
        assert_eq!(n.subsystems[0], None);
        assert!(matches!(
            issues[0].error,
            ProtoError::OutOfBounds {
                what: "NBFT SSNS subsystem NQN",
                ..
            }
        ));
        // Wrong id, valid flag clear, wrong transport.
        for (byte, val) in [(0usize, 6u8), (3, 0x10), (5, 1)] {
            let mut b = good.clone();
            b[s + byte] = val;
            assert_eq!(
                reparse(&mut b).unwrap().0.subsystems[0],
                None,
                "byte {byte}"
            );
        }
        // Digest flags.
        let mut b = good.clone();
        wr16(&mut b, s + 6, 0x07);
        let n = reparse(&mut b).unwrap().0;
        let ss = n.subsystems[0].as_ref().unwrap();
        assert!(ss.pdu_header_digest_required && ss.data_digest_required);
    }

    #[test]
    fn secondary_hfis_deduplicated_primary_removed() {
        let mut x = fixture();
        let mut h2 = fixture_hfi();
        h2.index = 2;
        h2.mac = [2; 6];
        let mut h3 = fixture_hfi();
        h3.index = 3;
        x.hfis = vec![Some(fixture_hfi()), Some(h2), Some(h3)];
        x.subsystems[0].as_mut().unwrap().hfi_indexes = vec![1, 0];
        let raw = x.emit().unwrap();
        assert_eq!(Nbft::parse(&raw).unwrap(), x);

        let mut b = raw.clone();
        // [3, 3, 2, 0 (none), 9 (no such HFI), 2, 3]; primary is 2.
        let list = append_heap(&mut b, &[3, 3, 2, 0, 9, 2, 3]);
        let s = ssns_off(&b, 0);
        wr32(&mut b, s + 48, list);
        wr16(&mut b, s + 52, 7);
        let n = reparse(&mut b).unwrap().0;
        assert_eq!(n.subsystems[0].as_ref().unwrap().hfi_indexes, vec![1, 2]);
        // Secondary list outside the heap: the SSNS is skipped.
        wr32(&mut b, s + 48, 0);
        assert_eq!(reparse(&mut b).unwrap().0.subsystems[0], None);
    }

    #[test]
    fn ssns_extended_info_rules() {
        let mut x = fixture();
        {
            let s = x.subsystems[0].as_mut().unwrap();
            s.asqsz = 32;
            s.dhcp_root_path = Some("iscsi:10.0.0.1::::iqn.x".into());
        }
        let good = x.emit().unwrap();
        let n = Nbft::parse(&good).unwrap();
        assert_eq!(n, x);
        assert_eq!(n.subsystems[0].as_ref().unwrap().asqsz, 32);
        let s = ssns_off(&good, 0);
        let ext = rd32(&good, s + 60);
        assert_eq!(rd32(&good, ext + 4), 0x03);

        // ASQSZ flag clear: ASQSZ reads as 0, the rest is kept.
        let mut b = good.clone();
        wr32(&mut b, ext + 4, 0x01);
        let n = reparse(&mut b).unwrap().0;
        let ss = n.subsystems[0].as_ref().unwrap();
        assert_eq!((ss.asqsz, ss.controller_id), (0, 5));
        assert!(ss.dhcp_root_path.is_some());

        // Mismatching SSNS index, wrong id, wrong version, valid clear:
        // the extended info is ignored, the SSNS kept.
        for (byte, val) in [(2usize, 2u8), (0, 8), (1, 2), (4, 0x02)] {
            let mut b = good.clone();
            b[ext + byte] = val;
            let (n, issues) = reparse(&mut b).unwrap();
            let ss = n.subsystems[0].as_ref().unwrap();
            assert!(!ss.extended_info, "byte {byte}");
            assert_eq!(
                (ss.controller_id, ss.asqsz, ss.dhcp_root_path.as_deref()),
                (0, 0, None)
            );
            assert_eq!(ss.subsys_nqn, fixture_ssns(1, "1.1.1.1", 0).subsys_nqn);
            assert_eq!(issues.len(), 1);
            assert_eq!(issues[0].structure, NbftStructure::SubsystemExtInfo);
        }
        // Read only when SSNS flag bit 4 is set.
        let mut b = good.clone();
        b[s + 3] &= !0x10;
        let (n, issues) = reparse(&mut b).unwrap();
        assert!(issues.is_empty());
        let ss = n.subsystems[0].as_ref().unwrap();
        assert!(!ss.extended_info);
        assert_eq!(ss.controller_id, 0);
        // Too short an object.
        let mut b = good.clone();
        wr16(&mut b, s + 64, 17);
        assert!(
            !reparse(&mut b).unwrap().0.subsystems[0]
                .as_ref()
                .unwrap()
                .extended_info
        );
    }

    #[test]
    fn discovery_rules() {
        let good = fixture().emit().unwrap();
        let d = disc_off(&good, 0);
        for (byte, val) in [(0usize, 5u8), (1, 0)] {
            let mut b = good.clone();
            b[d + byte] = val;
            assert_eq!(reparse(&mut b).unwrap().0.discovery, vec![None]);
        }
        for obj in [6usize, 12] {
            let mut b = good.clone();
            wr16(&mut b, d + obj + 4, 0);
            assert_eq!(reparse(&mut b).unwrap().0.discovery, vec![None]);
        }
        // Unknown HFI: kept, without an HFI.
        let mut b = good.clone();
        b[d + 3] = 7;
        assert_eq!(
            reparse(&mut b).unwrap().0.discovery[0]
                .as_ref()
                .unwrap()
                .hfi_index,
            None
        );
        // Security index kept raw.
        let mut b = good.clone();
        b[d + 4] = 3;
        assert_eq!(
            reparse(&mut b).unwrap().0.discovery[0]
                .as_ref()
                .unwrap()
                .security_index,
            Some(3)
        );
    }

    #[test]
    fn descriptors_placed_by_index_and_outside_table() {
        let mut x = fixture();
        let mut d2 = x.discovery[0].clone().unwrap();
        d2.index = 2;
        d2.uri = "nvme+tcp://[FE80::1]/".into();
        x.discovery.push(Some(d2));
        let good = x.emit().unwrap();
        assert_eq!(Nbft::parse(&good).unwrap(), x);
        // Swap the two descriptors: list positions follow the index field.
        let mut b = good.clone();
        let (a, c) = (disc_off(&b, 0), disc_off(&b, 1));
        let first = b[a..a + 32].to_vec();
        b.copy_within(c..c + 32, a);
        b[c..c + 32].copy_from_slice(&first);
        assert_eq!(reparse(&mut b).unwrap().0, x);
        // Duplicate index: the first wins.
        let mut b = good.clone();
        b[c + 2] = 1;
        let (n, issues) = reparse(&mut b).unwrap();
        assert_eq!(n.discovery, vec![x.discovery[0].clone(), None]);
        assert_eq!(issues[0].number, 2);
        // An array running past the table end.
        let mut b = good.clone();
        wr32(&mut b, CONTROL_OFF + 40, good.len() - 40);
        let (n, issues) = reparse(&mut b).unwrap();
        assert_eq!(n.discovery[1], None);
        assert!(matches!(
            issues.last().unwrap().error,
            ProtoError::TooShort { .. }
        ));
        // None positions round-trip as zeroed descriptors.
        let mut y = x.clone();
        y.discovery[0] = None;
        y.hfis.push(None);
        assert_eq!(Nbft::parse(&y.emit().unwrap()).unwrap(), y);
    }

    #[test]
    fn security_descriptors_kept_raw() {
        let mut x = fixture();
        x.security = vec![
            None,
            Some(NbftSecurity {
                index: 2,
                flags: 0x8001,
                secret_type: 1,
                channel_algorithms: b"TLS".to_vec(),
                auth_protocols: vec![],
                cipher_suites: vec![0, 1, 0xff],
                dh_groups: vec![],
                hash_functions: b"sha256".to_vec(),
                key_path: b"/key".to_vec(),
            }),
        ];
        let raw = x.emit().unwrap();
        assert_eq!(Nbft::parse(&raw).unwrap(), x);
        let s = desc_off(&raw, 32, SECURITY_LEN, 1);
        let mut b = raw.clone();
        b[s] = 0;
        assert_eq!(reparse(&mut b).unwrap().0.security, vec![None, None]);
    }

    #[test]
    fn emit_refuses_what_would_not_read_back() {
        let bad: &[fn(&mut Nbft)] = &[
            |x| x.header.major_revision = 2,
            |x| x.host.nqn.clear(),
            |x| x.host.nqn.push('\0'),
            |x| x.host.nqn.push('\n'),
            |x| x.hfis[0].as_mut().unwrap().index = 2,
            |x| x.hfis[0].as_mut().unwrap().trtype = TrType::Rdma,
            |x| x.hfis[0].as_mut().unwrap().dhcp_server_ipaddr = None,
            |x| x.hfis[0].as_mut().unwrap().host_name = Some(String::new()),
            |x| x.subsystems[0].as_mut().unwrap().hfi_indexes = vec![],
            |x| x.subsystems[0].as_mut().unwrap().hfi_indexes = vec![1],
            |x| x.subsystems[0].as_mut().unwrap().hfi_indexes = vec![0, 0],
            |x| x.subsystems[0].as_mut().unwrap().flags = 1,
            |x| x.subsystems[0].as_mut().unwrap().extended_info = false,
            |x| x.subsystems[0].as_mut().unwrap().trsvcid = "44\u{e9}".into(),
            |x| x.subsystems[0].as_mut().unwrap().security_index = Some(0),
            |x| x.discovery[0].as_mut().unwrap().hfi_index = Some(1),
            |x| x.discovery[0].as_mut().unwrap().uri.clear(),
            |x| x.valid = false,
            |x| x.subsystems[0].as_mut().unwrap().nid_type = NidType::Other(2),
            |x| x.hfis = vec![None; 256],
        ];
        for (i, f) in bad.iter().enumerate() {
            let mut x = fixture();
            f(&mut x);
            assert!(x.emit().is_err(), "case {i} should be refused");
        }
    }

    #[test]
    fn uri_parts() {
        let p = Nbft::discovery_uri_parts;
        assert_eq!(
            p("nvme+tcp://100.71.103.50:8009/"),
            Some(("tcp".into(), "100.71.103.50".into(), Some(8009)))
        );
        assert_eq!(
            p("NVME+TCP://Host.Example/"),
            Some(("tcp".into(), "host.example".into(), None))
        );
        assert_eq!(
            p("nvme+tcp://[FE80::1%eth0]:4420"),
            Some(("tcp".into(), "fe80::1%eth0".into(), Some(4420)))
        );
        assert_eq!(
            p("nvme+tcp://[fd00::1]/x"),
            Some(("tcp".into(), "fd00::1".into(), None))
        );
        assert_eq!(
            p("nvme+tcp://user@10.0.0.1:8009?x#y"),
            Some(("tcp".into(), "10.0.0.1".into(), Some(8009)))
        );
        assert_eq!(
            p("nvme+tcp://10.0.0.1:/"),
            Some(("tcp".into(), "10.0.0.1".into(), None))
        );
        assert_eq!(p("nvme+tcp://10.0.0.1:99999/"), None);
        assert_eq!(p("nvme+tcp://10.0.0.1:80a/"), None);
        assert_eq!(p("nvme://10.0.0.1/"), None);
        assert_eq!(p("nvme+://10.0.0.1/"), None);
        assert_eq!(p("nvme+tcp:///"), None);
        assert_eq!(p("nvme+tcp://[fd00::1/"), None);
        assert_eq!(p("10.0.0.1:8009"), None);
    }

    #[test]
    fn formatters() {
        let mut h = fixture_hfi();
        h.pci_sbdf = (0x12 << 16) | (0xab << 8) | (0x1f << 3) | 7;
        assert_eq!(h.pcidev(), "12:ab:1f.7");
        let mut s = fixture_ssns(1, "1.2.3.4", 0);
        s.nid_type = NidType::Eui64;
        assert_eq!(s.nid_text().unwrap(), "c82404ed9c15f53b");
        s.nid_type = NidType::Uuid;
        assert_eq!(
            s.nid_text().unwrap(),
            "c82404ed-9c15-f53b-8ccf-0968002e0fca"
        );
        s.nid_type = NidType::Other(0);
        assert_eq!(s.nid_text(), None);
        for v in 0..=255u8 {
            assert_eq!(u8::from(NidType::from(v)), v);
        }
        for b in 0..4 {
            assert_eq!(PrimaryAdminHostFlag::from_bits(b).bits(), b);
        }
    }

    // --- property tests -----------------------------------------------------

    fn arb_ip() -> impl Strategy<Value = IpAddr> {
        prop_oneof![
            any::<[u8; 4]>().prop_map(IpAddr::from),
            any::<[u8; 16]>().prop_map(ip_from_bytes),
        ]
    }

    fn arb_text() -> impl Strategy<Value = String> {
        "[ -~]{1,24}"
    }

    fn arb_hfi() -> impl Strategy<Value = NbftHfi> {
        (
            (
                any::<u32>(),
                any::<[u8; 6]>(),
                any::<u16>(),
                any::<u8>(),
                arb_ip(),
                any::<u8>(),
                arb_ip(),
            ),
            (
                any::<u16>(),
                arb_ip(),
                arb_ip(),
                proptest::option::of(arb_ip()),
                proptest::option::of(arb_text()),
                any::<bool>(),
            ),
        )
            .prop_map(
                |(
                    (sbdf, mac, vlan, origin, ip, prefix, gw),
                    (metric, dns1, dns2, dhcp, name, def),
                )| NbftHfi {
                    index: 0,
                    trtype: TrType::Tcp,
                    pci_sbdf: sbdf,
                    mac,
                    vlan,
                    ip_origin: origin,
                    ipaddr: ip,
                    subnet_mask_prefix: prefix,
                    gateway_ipaddr: gw,
                    route_metric: metric,
                    primary_dns_ipaddr: dns1,
                    secondary_dns_ipaddr: dns2,
                    dhcp_override: dhcp.is_some(),
                    dhcp_server_ipaddr: dhcp,
                    host_name: name,
                    this_hfi_is_default_route: def,
                },
            )
    }

    fn arb_ssns() -> impl Strategy<Value = NbftSubsystem> {
        (
            (
                any::<u16>(),
                arb_ip(),
                arb_text(),
                any::<u16>(),
                any::<u32>(),
                any::<u8>(),
                any::<[u8; 16]>(),
            ),
            (
                arb_text(),
                proptest::collection::vec(any::<usize>(), 1..4),
                any::<u8>(),
                any::<u8>(),
                any::<(bool, bool)>(),
                proptest::option::of((
                    any::<u16>(),
                    any::<u16>(),
                    proptest::option::of(arb_text()),
                )),
            ),
        )
            .prop_map(
                |(
                    (flags, traddr, trsvcid, port, nsid, nid_type, nid),
                    (nqn, seeds, dc, sec, (hd, dd), ext),
                )| {
                    NbftSubsystem {
                        index: 0,
                        flags: flags & !(SSNS_VALID | SSNS_EXT_INFO_IN_USE),
                        trtype: TrType::Tcp,
                        traddr,
                        trsvcid,
                        subsys_port_id: port,
                        nsid,
                        nid_type: NidType::from(nid_type),
                        nid,
                        subsys_nqn: nqn,
                        hfi_indexes: seeds,
                        primary_discovery_ctrl_index: nonzero(dc),
                        security_index: nonzero(sec),
                        pdu_header_digest_required: hd,
                        data_digest_required: dd,
                        extended_info: ext.is_some(),
                        controller_id: ext.as_ref().map_or(0, |e| e.0),
                        asqsz: ext.as_ref().map_or(0, |e| e.1),
                        dhcp_root_path: ext.and_then(|e| e.2),
                    }
                },
            )
    }

    fn arb_bytes() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(any::<u8>(), 0..12)
    }

    fn arb_security() -> impl Strategy<Value = NbftSecurity> {
        (
            any::<u16>(),
            any::<u8>(),
            arb_bytes(),
            arb_bytes(),
            arb_bytes(),
            arb_bytes(),
            arb_bytes(),
            arb_bytes(),
        )
            .prop_map(|(flags, st, a, b, c, d, e, f)| NbftSecurity {
                index: 0,
                flags,
                secret_type: st,
                channel_algorithms: a,
                auth_protocols: b,
                cipher_suites: c,
                dh_groups: d,
                hash_functions: e,
                key_path: f,
            })
    }

    fn arb_discovery() -> impl Strategy<Value = NbftDiscovery> {
        (
            proptest::option::of(any::<usize>()),
            any::<u8>(),
            arb_text(),
            arb_text(),
        )
            .prop_map(|(hfi, sec, uri, nqn)| NbftDiscovery {
                index: 0,
                hfi_index: hfi,
                security_index: nonzero(sec),
                uri,
                nqn,
            })
    }

    /// Makes generated parts consistent: indexes = position + 1, HFI
    /// references (generated as seeds) mapped onto present HFIs.
    fn fixup(mut n: Nbft) -> Nbft {
        for (p, h) in n.hfis.iter_mut().enumerate() {
            if let Some(h) = h {
                h.index = u8::try_from(p + 1).unwrap();
            }
        }
        let avail: Vec<usize> = n
            .hfis
            .iter()
            .enumerate()
            .filter(|(_, h)| h.is_some())
            .map(|(p, _)| p)
            .collect();
        for (p, slot) in n.subsystems.iter_mut().enumerate() {
            if avail.is_empty() {
                *slot = None;
            }
            if let Some(s) = slot {
                s.index = u16::try_from(p + 1).unwrap();
                let mut refs = Vec::new();
                for seed in &s.hfi_indexes {
                    let pos = avail[seed % avail.len()];
                    if !refs.contains(&pos) {
                        refs.push(pos);
                    }
                }
                s.hfi_indexes = refs;
            }
        }
        for (p, s) in n.security.iter_mut().enumerate() {
            if let Some(s) = s {
                s.index = u8::try_from(p + 1).unwrap();
            }
        }
        for (p, d) in n.discovery.iter_mut().enumerate() {
            if let Some(d) = d {
                d.index = u8::try_from(p + 1).unwrap();
                d.hfi_index = d
                    .hfi_index
                    .filter(|_| !avail.is_empty())
                    .map(|seed| avail[seed % avail.len()]);
            }
        }
        n
    }

    fn arb_nbft() -> impl Strategy<Value = Nbft> {
        let header = (
            any::<[u8; 6]>(),
            any::<[u8; 8]>(),
            any::<u32>(),
            any::<[u8; 4]>(),
            any::<u32>(),
            arb_bytes(),
        )
            .prop_map(
                |(oem_id, oem_table_id, oem_revision, creator_id, creator_revision, sig)| {
                    NbftHeader {
                        oem_id,
                        oem_table_id,
                        oem_revision,
                        creator_id,
                        creator_revision,
                        major_revision: 1,
                        minor_revision: 0,
                        driver_dev_path_sig: sig,
                    }
                },
            );
        let host = (
            any::<[u8; 16]>(),
            arb_text(),
            any::<bool>(),
            any::<bool>(),
            0u8..4,
        )
            .prop_map(|(id, nqn, a, b, pah)| NbftHost {
                id,
                nqn,
                host_id_configured: a,
                host_nqn_configured: b,
                primary_admin_host_flag: PrimaryAdminHostFlag::from_bits(pah),
            });
        (
            header,
            host,
            proptest::collection::vec(proptest::option::weighted(0.8, arb_hfi()), 0..3),
            proptest::collection::vec(proptest::option::weighted(0.8, arb_ssns()), 0..4),
            proptest::collection::vec(proptest::option::of(arb_security()), 0..2),
            proptest::collection::vec(proptest::option::weighted(0.8, arb_discovery()), 0..2),
        )
            .prop_map(|(header, host, hfis, subsystems, security, discovery)| {
                fixup(Nbft {
                    header,
                    valid: true,
                    host,
                    hfis,
                    subsystems,
                    security,
                    discovery,
                })
            })
    }

    proptest! {
        // Failures are reported with their minimal input; no regression file
        // is written into the source tree.
        #![proptest_config(ProptestConfig {
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        #[test]
        fn prop_emit_parse_round_trip(x in arb_nbft()) {
            let raw = x.emit().unwrap();
            prop_assert_eq!(sum(&raw), 0);
            let (n, issues) = Nbft::parse_with_issues(&raw).unwrap();
            // Only the zeroed descriptors emitted for `None` places are reported.
            let nones = x.hfis.iter().filter(|h| h.is_none()).count()
                + x.subsystems.iter().filter(|s| s.is_none()).count()
                + x.security.iter().filter(|s| s.is_none()).count()
                + x.discovery.iter().filter(|d| d.is_none()).count();
            prop_assert_eq!(issues.len(), nones, "{:?}", issues);
            prop_assert_eq!(&n, &x);
            prop_assert_eq!(n.emit().unwrap(), raw);
        }

        #[test]
        fn prop_parse_arbitrary_bytes_never_panics(buf in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let _ = Nbft::parse(&buf);
        }

        /// Arbitrary bytes behind a header that passes rule 1, so the
        /// descriptor walkers see garbage.
        #[test]
        fn prop_parse_garbage_behind_valid_header(
            mut buf in proptest::collection::vec(any::<u8>(), 128..2048),
            heap in any::<(u16, u16)>(),
        ) {
            let len = buf.len();
            buf[0..4].copy_from_slice(SIGNATURE);
            wr32(&mut buf, 4, len);
            buf[8] = 1;
            buf[50] = 0;
            let start = usize::from(heap.0) % len;
            wr32(&mut buf, 36, start);
            wr32(&mut buf, 40, usize::from(heap.1) % (len - start + 1));
            buf[CONTROL_OFF] = 1;
            buf[CONTROL_OFF + 6] |= 1;
            fix_checksum(&mut buf);
            let _ = Nbft::parse_with_issues(&buf);
        }

        #[test]
        fn prop_parse_mutated_table_never_panics(
            x in arb_nbft(),
            muts in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..16),
            recheck in any::<bool>(),
        ) {
            let mut raw = x.emit().unwrap();
            for (at, v) in muts {
                let len = raw.len();
                raw[at % len] = v;
            }
            if recheck {
                fix_checksum(&mut raw);
            }
            if let Ok(n) = Nbft::parse(&raw) {
                // Whatever parses is well-formed enough to describe.
                let _ = format!("{n:?}");
            }
        }
    }
}
