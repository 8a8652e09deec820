//! The NVMe Boot Firmware Table (NBFT): the ACPI table in which pre-OS
//! firmware (UEFI NVMe/TCP boot) describes the host, its network interfaces
//! (HFIs), the subsystems it booted from (SSNS) and its discovery controllers
//! (docs/behaviour.md §13).
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
use std::net::IpAddr;

use crate::types::TrType;
use crate::ProtoError;

mod emit;
mod parse;

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
mod tests;
