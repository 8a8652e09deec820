//! The topology file: which discovery controllers to serve, what each one
//! is, what its log page lists for which host, and which faults it plays.
//! The format is documented by [`EXAMPLE`] (`nvmf-dcsim --example`).

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use nvmf_proto::command::Status;
use nvmf_proto::dlp::{self, DiscoveryLogEntry, Tsas, ENTRY_LEN, HEADER_LEN};
use nvmf_proto::types::{AdrFam, DcType, EFlags, SecType, SubType, TrType, Treq};
use serde::Deserialize;
use thiserror::Error;

/// The commented example printed by `nvmf-dcsim --example`; it uses every
/// feature, and a test loads it.
pub const EXAMPLE: &str = include_str!("example.toml");

/// A topology file larger than this is refused (a 1,000-entry page with
/// per-host zoning fits in a few hundred KiB).
pub const MAX_FILE_LEN: u64 = 4 << 20;

/// Why a topology could not be loaded.
#[derive(Debug, Error)]
pub enum TopologyError {
    /// The file could not be read.
    #[error("cannot read topology {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is not a regular file or is too large.
    #[error("topology {path}: {what}")]
    Refused {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        what: String,
    },
    /// The TOML does not parse or does not have the expected shape.
    #[error("topology {path}: {message}")]
    Parse {
        /// The file (or `<text>`).
        path: String,
        /// The parser's message, with the line.
        message: String,
    },
    /// A value is not valid.
    #[error("topology, dc {dc:?}: {problem}")]
    Invalid {
        /// The DC's name.
        dc: String,
        /// What is wrong, and what is accepted.
        #[source]
        problem: InvalidDc,
    },
}

/// What is wrong with one DC of a topology file, and what is accepted.
#[derive(Debug, Error)]
pub enum InvalidDc {
    /// `address` does not parse.
    #[error("address {0:?} is not an IP address")]
    Address(String),
    /// `kind` is none of the three.
    #[error("kind {0:?}: expected cdc, ddc or none")]
    Kind(String),
    /// `nqn` is empty or too long.
    #[error("nqn {0:?}: 1 to 223 bytes expected")]
    Nqn(String),
    /// `replicas` is 0 or runs past the last port.
    #[error("replicas {replicas} from port {port}: 1.. and within port 65535")]
    Replicas {
        /// How many were asked for.
        replicas: u16,
        /// The first port.
        port: u16,
    },
    /// `faults.drop` or `faults.delay_ms` names an unknown command.
    #[error("unknown command {0:?} in faults; known: {known}", known = name_list(&CommandName::ALL))]
    UnknownCommand(String),
    /// An entry's `subtype` is unknown.
    #[error("subtype {0:?}: expected nvme, referral, current or a number")]
    Subtype(String),
    /// An entry's `trtype` is unknown.
    #[error("trtype {0:?}: expected tcp, rdma, fc, loop or a number")]
    Trtype(String),
    /// An entry's `adrfam` is unknown.
    #[error("adrfam {0:?}: expected ipv4, ipv6, ib, fc or a number")]
    Adrfam(String),
    /// An entry's `eflags` has an unknown flag.
    #[error("eflags: {0:?}: expected dupretinfo, epcsd or ncc")]
    Eflag(String),
    /// An entry's `sectype` is unknown.
    #[error("sectype {0:?}: expected none, tls1.2 or tls1.3")]
    Sectype(String),
    /// An entry's `hostile` is unknown.
    #[error("hostile {0:?}: expected one of {known}", known = name_list(&Hostile::ALL))]
    Hostile(String),
    /// An nvme entry has no `subnqn`.
    #[error("an nvme entry needs a subnqn")]
    MissingSubnqn,
    /// An entry's `count` is out of range.
    #[error("count {0}: 1 to 100000")]
    Count(u32),
    /// Counted entries would all be the same.
    #[error("count > 1 needs {{n}} in subnqn, so the entries differ")]
    CountWithoutN,
    /// An entry does not fit the log page format.
    #[error("entry {subnqn}: {source}")]
    Entry {
        /// The entry's subsystem NQN.
        subnqn: String,
        /// What the encoder refused.
        source: nvmf_proto::ProtoError,
    },
    /// Two DCs have the same name.
    #[error("the name is used twice; every DC needs its own")]
    NameUsedTwice,
    /// Two DCs listen on the same address and port.
    #[error("{0} is used twice; every DC needs its own address and port")]
    ListenUsedTwice(SocketAddr),
}

/// The names of a name table, for "expected one of" messages.
fn name_list<T, const N: usize>(table: &[(T, &'static str); N]) -> String {
    table.iter().map(|(_, n)| *n).collect::<Vec<_>>().join(", ")
}

/// A command a fault can be attached to, by the name used in topology files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CommandName {
    /// Get Log Page (0x02).
    GetLogPage,
    /// Identify (0x06).
    Identify,
    /// Set Features (0x09).
    SetFeatures,
    /// Get Features (0x0A).
    GetFeatures,
    /// Asynchronous Event Request (0x0C).
    AsyncEvent,
    /// Keep Alive (0x18).
    KeepAlive,
    /// Discovery Information Management (0x21).
    Dim,
    /// Fabrics Property Get.
    PropertyGet,
    /// Fabrics Property Set.
    PropertySet,
}

impl CommandName {
    const ALL: [(CommandName, &'static str); 9] = [
        (Self::GetLogPage, "get-log-page"),
        (Self::Identify, "identify"),
        (Self::SetFeatures, "set-features"),
        (Self::GetFeatures, "get-features"),
        (Self::AsyncEvent, "async-event"),
        (Self::KeepAlive, "keep-alive"),
        (Self::Dim, "dim"),
        (Self::PropertyGet, "property-get"),
        (Self::PropertySet, "property-set"),
    ];

    /// The admin command with this opcode, if it is one a fault can name.
    pub fn from_admin_opcode(opcode: u8) -> Option<Self> {
        Some(match opcode {
            0x02 => Self::GetLogPage,
            0x06 => Self::Identify,
            0x09 => Self::SetFeatures,
            0x0a => Self::GetFeatures,
            0x0c => Self::AsyncEvent,
            0x18 => Self::KeepAlive,
            0x21 => Self::Dim,
            _ => return None,
        })
    }

    /// The name used in topology files.
    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(c, _)| *c == self)
            .map_or("?", |(_, n)| n)
    }

    fn parse(text: &str) -> Option<Self> {
        Self::ALL.iter().find(|(_, n)| *n == text).map(|(c, _)| *c)
    }
}

/// A way to damage one log page entry on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Hostile {
    /// Text fields padded with spaces instead of NULs.
    SpacePadding,
    /// Bytes after the subnqn's terminating NUL.
    GarbageAfterNul,
    /// The subnqn fills all 256 bytes, with no NUL.
    Unterminated,
    /// trtype, adrfam and subtype codes no specification defines.
    UnknownCodes,
    /// A control byte inside traddr.
    NonPrintable,
}

impl Hostile {
    const ALL: [(Hostile, &'static str); 5] = [
        (Self::SpacePadding, "space-padding"),
        (Self::GarbageAfterNul, "garbage-after-nul"),
        (Self::Unterminated, "unterminated"),
        (Self::UnknownCodes, "unknown-codes"),
        (Self::NonPrintable, "non-printable"),
    ];

    fn parse(text: &str) -> Option<Self> {
        Self::ALL.iter().find(|(_, n)| *n == text).map(|(h, _)| *h)
    }

    /// Damages the 1024 emitted bytes of an entry.
    fn apply(self, e: &mut [u8]) {
        const TRSVCID: (usize, usize) = (32, 32);
        const SUBNQN: (usize, usize) = (256, 256);
        const TRADDR: (usize, usize) = (512, 256);
        match self {
            Self::SpacePadding => {
                for (off, len) in [TRSVCID, SUBNQN, TRADDR] {
                    if let Some(field) = e.get_mut(off..off + len) {
                        let used = field.iter().position(|b| *b == 0).unwrap_or(len);
                        field.iter_mut().skip(used).for_each(|b| *b = b' ');
                    }
                }
            }
            Self::GarbageAfterNul => {
                if let Some(field) = e.get_mut(SUBNQN.0..SUBNQN.0 + SUBNQN.1) {
                    let used = field.iter().position(|b| *b == 0).unwrap_or(SUBNQN.1);
                    for (b, g) in field.iter_mut().skip(used + 1).zip(b"\x01garbage\xff\xfe") {
                        *b = *g;
                    }
                }
            }
            Self::Unterminated => {
                if let Some(field) = e.get_mut(SUBNQN.0..SUBNQN.0 + SUBNQN.1) {
                    field
                        .iter_mut()
                        .filter(|b| **b == 0)
                        .for_each(|b| *b = b'x');
                }
            }
            Self::UnknownCodes => {
                for b in e.iter_mut().take(3) {
                    *b = 0x7e;
                }
            }
            Self::NonPrintable => {
                if let Some(b) = e.get_mut(TRADDR.0 + 1) {
                    *b = 0x07;
                }
            }
        }
    }
}

/// Faults a DC plays on demand.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Faults {
    /// Answer DIM with this status instead of success.
    pub refuse_dim: Option<Status>,
    /// Commands received and never answered.
    pub drop: BTreeSet<CommandName>,
    /// Commands answered only after a delay.
    pub delay: BTreeMap<CommandName, Duration>,
    /// Every read at offset 0 returns a new GENCTR, as if the page changed
    /// between every two reads.
    pub genctr_churn: bool,
    /// The header's NUMREC claims more entries than the page holds.
    pub numrec_too_large: bool,
}

/// One log page entry and who may see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntrySpec {
    /// The entry.
    pub entry: DiscoveryLogEntry,
    /// Host NQNs that see it (zoning); `None`: every host.
    pub hosts: Option<BTreeSet<String>>,
    /// Damage done to it on the wire.
    pub hostile: Option<Hostile>,
}

/// One simulated discovery controller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DcSpec {
    /// Its name in logs and in the state file.
    pub name: String,
    /// Where it listens.
    pub listen: SocketAddr,
    /// DCTYPE in Identify: CDC, DDC or none.
    pub kind: DcType,
    /// Its subsystem NQN (well-known or a unique one).
    pub nqn: String,
    /// Supported Log Pages (LID 0x00) served and advertised (LPA bit 5).
    pub supported_log_pages: bool,
    /// PLEO advertised for LID 0x70.
    pub pleo: bool,
    /// Extended discovery log page entries advertised for LID 0x70.
    pub extended_entries: bool,
    /// Keep-alive granularity (KAS), in 100 ms units.
    pub kas: u16,
    /// Faults.
    pub faults: Faults,
    /// The log page, before zoning.
    pub entries: Vec<EntrySpec>,
}

impl DcSpec {
    /// The entries `hostnqn` sees.
    pub fn visible<'a>(&'a self, hostnqn: &'a str) -> impl Iterator<Item = &'a EntrySpec> + 'a {
        self.entries
            .iter()
            .filter(move |e| e.hosts.as_ref().is_none_or(|h| h.contains(hostnqn)))
    }

    /// The log page image (header and entries) `hostnqn` reads.
    pub fn page(&self, hostnqn: &str, genctr: u64) -> Vec<u8> {
        let visible: Vec<&EntrySpec> = self.visible(hostnqn).collect();
        let extra = if self.faults.numrec_too_large { 5 } else { 0 };
        let header = dlp::DiscoveryLogHeader {
            genctr,
            numrec: u64::try_from(visible.len() + extra).unwrap_or(u64::MAX),
            recfmt: 0,
        };
        let mut page = Vec::with_capacity(HEADER_LEN + visible.len() * ENTRY_LEN);
        page.extend_from_slice(&header.emit());
        for e in visible {
            let mut bytes = e.entry.emit().unwrap_or([0; ENTRY_LEN]);
            if let Some(h) = e.hostile {
                h.apply(&mut bytes);
            }
            page.extend_from_slice(&bytes);
        }
        page
    }

    /// A fingerprint of what `hostnqn` sees, GENCTR aside: a change of it
    /// is a change the host must be told about.
    pub fn view_of(&self, hostnqn: &str) -> u64 {
        let mut h = DefaultHasher::new();
        self.page(hostnqn, 0).hash(&mut h);
        h.finish()
    }
}

/// The whole topology.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Topology {
    /// The DCs, in file order.
    pub dcs: Vec<DcSpec>,
}

impl Topology {
    /// Reads and checks a topology file.
    pub fn load(path: &Path) -> Result<Self, TopologyError> {
        let read = |source| TopologyError::Read {
            path: path.to_owned(),
            source,
        };
        let meta = std::fs::metadata(path).map_err(read)?;
        if !meta.is_file() {
            return Err(TopologyError::Refused {
                path: path.to_owned(),
                what: "not a regular file".into(),
            });
        }
        if meta.len() > MAX_FILE_LEN {
            return Err(TopologyError::Refused {
                path: path.to_owned(),
                what: format!(
                    "{} bytes, more than the {MAX_FILE_LEN} accepted",
                    meta.len()
                ),
            });
        }
        let text = std::fs::read_to_string(path).map_err(read)?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses topology text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self, TopologyError> {
        let file: TopologyFile = toml::from_str(text).map_err(|e| TopologyError::Parse {
            path: origin.to_owned(),
            message: e.to_string(),
        })?;
        let mut dcs = Vec::new();
        for dc in file.dc {
            dcs.extend(dc.resolve()?);
        }
        let (mut names, mut addrs) = (BTreeSet::new(), BTreeSet::new());
        for dc in &dcs {
            if !names.insert(dc.name.clone()) {
                return Err(TopologyError::Invalid {
                    dc: dc.name.clone(),
                    problem: InvalidDc::NameUsedTwice,
                });
            }
            // Port 0 asks the OS for a free port (tests).
            if dc.listen.port() != 0 && !addrs.insert(dc.listen) {
                return Err(TopologyError::Invalid {
                    dc: dc.name.clone(),
                    problem: InvalidDc::ListenUsedTwice(dc.listen),
                });
            }
        }
        Ok(Self { dcs })
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TopologyFile {
    #[serde(default)]
    dc: Vec<DcFile>,
}

fn yes() -> bool {
    true
}
fn one() -> u16 {
    1
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DcFile {
    name: String,
    address: String,
    port: u16,
    #[serde(default = "one")]
    replicas: u16,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    nqn: Option<String>,
    #[serde(default = "yes")]
    supported_log_pages: bool,
    #[serde(default = "yes")]
    pleo: bool,
    #[serde(default)]
    extended_entries: bool,
    #[serde(default)]
    kas: Option<u16>,
    #[serde(default)]
    faults: FaultsFile,
    #[serde(default)]
    entry: Vec<EntryFile>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FaultsFile {
    #[serde(default)]
    refuse_dim: Option<u16>,
    #[serde(default)]
    drop: Vec<String>,
    #[serde(default)]
    delay_ms: BTreeMap<String, u64>,
    #[serde(default)]
    genctr_churn: bool,
    #[serde(default)]
    numrec_too_large: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EntryFile {
    #[serde(default)]
    subtype: Option<String>,
    #[serde(default)]
    trtype: Option<String>,
    #[serde(default)]
    adrfam: Option<String>,
    traddr: String,
    trsvcid: String,
    #[serde(default)]
    subnqn: Option<String>,
    #[serde(default)]
    portid: u16,
    #[serde(default)]
    cntlid: Option<u16>,
    #[serde(default)]
    asqsz: Option<u16>,
    #[serde(default)]
    treq: u8,
    #[serde(default)]
    eflags: Vec<String>,
    #[serde(default)]
    sectype: Option<String>,
    #[serde(default)]
    hosts: Option<Vec<String>>,
    #[serde(default)]
    count: Option<u32>,
    #[serde(default)]
    hostile: Option<String>,
}

/// Reads a code by name or as a number (`"0x7e"`, `"126"`), so a topology
/// can send codes no specification defines.
fn code<T: From<u8>>(text: &str, names: &[(&str, u8)]) -> Option<T> {
    if let Some((_, v)) = names.iter().find(|(n, _)| *n == text) {
        return Some(T::from(*v));
    }
    let n = match text.strip_prefix("0x") {
        Some(hex) => u8::from_str_radix(hex, 16).ok(),
        None => text.parse().ok(),
    };
    n.map(T::from)
}

impl DcFile {
    fn resolve(self) -> Result<Vec<DcSpec>, TopologyError> {
        let name = self.name.clone();
        let bad = |problem: InvalidDc| TopologyError::Invalid {
            dc: name.clone(),
            problem,
        };
        let ip: IpAddr = self
            .address
            .parse()
            .map_err(|_| bad(InvalidDc::Address(self.address.clone())))?;
        let kind = match self.kind.as_deref().unwrap_or("cdc") {
            "cdc" => DcType::Cdc,
            "ddc" => DcType::Ddc,
            "none" => DcType::None,
            other => return Err(bad(InvalidDc::Kind(other.to_owned()))),
        };
        let nqn = self
            .nqn
            .clone()
            .unwrap_or_else(|| nvmf_proto::WELL_KNOWN_DISCOVERY_NQN.to_owned());
        if nqn.is_empty() || nqn.len() > 223 {
            return Err(bad(InvalidDc::Nqn(nqn)));
        }
        let faults = self.faults.resolve().map_err(bad)?;
        let mut entries = Vec::new();
        for e in self.entry {
            entries.extend(e.resolve().map_err(bad)?);
        }
        if self.replicas == 0 || u32::from(self.port) + u32::from(self.replicas) > 65536 {
            return Err(bad(InvalidDc::Replicas {
                replicas: self.replicas,
                port: self.port,
            }));
        }
        let spec = DcSpec {
            name: self.name,
            listen: SocketAddr::new(ip, self.port),
            kind,
            nqn,
            supported_log_pages: self.supported_log_pages,
            pleo: self.pleo,
            extended_entries: self.extended_entries,
            kas: self.kas.unwrap_or(10),
            faults,
            entries,
        };
        if self.replicas == 1 {
            return Ok(vec![spec]);
        }
        Ok((0..self.replicas)
            .map(|i| DcSpec {
                name: format!("{}#{i}", spec.name),
                // Port 0 (any free port) stays 0 for every replica.
                listen: SocketAddr::new(
                    ip,
                    if self.port == 0 {
                        0
                    } else {
                        self.port.saturating_add(i)
                    },
                ),
                ..spec.clone()
            })
            .collect())
    }
}

impl FaultsFile {
    fn resolve(self) -> Result<Faults, InvalidDc> {
        let command =
            |n: &str| CommandName::parse(n).ok_or_else(|| InvalidDc::UnknownCommand(n.to_owned()));
        Ok(Faults {
            refuse_dim: self.refuse_dim.map(|f| {
                let [sc, sct] = f.to_le_bytes();
                Status::new(sct & 0x7, sc, true)
            }),
            drop: self
                .drop
                .iter()
                .map(|n| command(n))
                .collect::<Result<_, _>>()?,
            delay: self
                .delay_ms
                .iter()
                .map(|(n, ms)| Ok((command(n)?, Duration::from_millis(*ms))))
                .collect::<Result<_, InvalidDc>>()?,
            genctr_churn: self.genctr_churn,
            numrec_too_large: self.numrec_too_large,
        })
    }
}

impl EntryFile {
    fn resolve(self) -> Result<Vec<EntrySpec>, InvalidDc> {
        let subtype_text = self.subtype.as_deref().unwrap_or("nvme");
        let subtype: SubType = code(
            subtype_text,
            &[("referral", 1), ("nvme", 2), ("current", 3)],
        )
        .ok_or_else(|| InvalidDc::Subtype(subtype_text.to_owned()))?;
        let trtype_text = self.trtype.as_deref().unwrap_or("tcp");
        let trtype: TrType = code(
            trtype_text,
            &[("rdma", 1), ("fc", 2), ("tcp", 3), ("loop", 254)],
        )
        .ok_or_else(|| InvalidDc::Trtype(trtype_text.to_owned()))?;
        let default_adrfam = if self.traddr.contains(':') {
            "ipv6"
        } else {
            "ipv4"
        };
        let adrfam_text = self.adrfam.as_deref().unwrap_or(default_adrfam);
        let adrfam: AdrFam = code(
            adrfam_text,
            &[("ipv4", 1), ("ipv6", 2), ("ib", 3), ("fc", 4)],
        )
        .ok_or_else(|| InvalidDc::Adrfam(adrfam_text.to_owned()))?;
        let mut eflags = 0u16;
        for f in &self.eflags {
            eflags |= match f.as_str() {
                "dupretinfo" => EFlags::DUPRETINFO,
                "epcsd" => EFlags::EPCSD,
                "ncc" => EFlags::NCC,
                other => return Err(InvalidDc::Eflag(other.to_owned())),
            };
        }
        let sectype = match self.sectype.as_deref().unwrap_or("none") {
            "none" => SecType::None,
            "tls1.2" => SecType::Tls12,
            "tls1.3" => SecType::Tls13,
            other => return Err(InvalidDc::Sectype(other.to_owned())),
        };
        let hostile = match self.hostile.as_deref() {
            None => None,
            Some(h) => Some(Hostile::parse(h).ok_or_else(|| InvalidDc::Hostile(h.to_owned()))?),
        };
        let subnqn = match (&self.subnqn, subtype) {
            (Some(n), _) => n.clone(),
            (None, SubType::Nvme) => return Err(InvalidDc::MissingSubnqn),
            (None, _) => nvmf_proto::WELL_KNOWN_DISCOVERY_NQN.to_owned(),
        };
        let count = self.count.unwrap_or(1);
        if count == 0 || count > 100_000 {
            return Err(InvalidDc::Count(count));
        }
        if count > 1 && !subnqn.contains("{n}") {
            return Err(InvalidDc::CountWithoutN);
        }
        let hosts = self.hosts.map(|h| h.into_iter().collect::<BTreeSet<_>>());
        let mut out = Vec::new();
        for n in 1..=count {
            let fill = |s: &str| s.replace("{n}", &n.to_string());
            let entry = DiscoveryLogEntry {
                trtype,
                adrfam,
                subtype,
                treq: Treq(self.treq),
                portid: self.portid,
                cntlid: self.cntlid.unwrap_or(0xffff),
                asqsz: self.asqsz.unwrap_or(32),
                eflags: EFlags(eflags),
                trsvcid: fill(&self.trsvcid),
                subnqn: fill(&subnqn),
                traddr: fill(&self.traddr),
                tsas: if trtype == TrType::Tcp {
                    Tsas::tcp(sectype)
                } else {
                    Tsas::default()
                },
            };
            entry.emit().map_err(|source| InvalidDc::Entry {
                subnqn: entry.subnqn.clone(),
                source,
            })?;
            out.push(EntrySpec {
                entry,
                hosts: hosts.clone(),
                hostile,
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )]
    use super::*;

    #[test]
    fn the_example_loads_and_uses_every_feature() {
        let t = Topology::parse(EXAMPLE, "example").unwrap();
        let kinds: BTreeSet<String> = t
            .dcs
            .iter()
            .map(|d| d.kind.stas_str().into_owned())
            .collect();
        assert_eq!(kinds.len(), 3, "cdc, ddc and none: {kinds:?}");
        let all: Vec<&EntrySpec> = t.dcs.iter().flat_map(|d| &d.entries).collect();
        for h in Hostile::ALL {
            assert!(
                all.iter().any(|e| e.hostile == Some(h.0)),
                "{:?} unused",
                h.1
            );
        }
        for flag in [EFlags::EPCSD, EFlags::NCC, EFlags::DUPRETINFO] {
            assert!(
                all.iter().any(|e| e.entry.eflags.contains(flag)),
                "{flag:#x} unused"
            );
        }
        assert!(all.iter().any(|e| e.hosts.is_some()), "zoning unused");
        assert!(all.iter().any(|e| e.entry.subtype == SubType::Referral));
        let f = t.dcs.iter().map(|d| &d.faults);
        assert!(f.clone().any(|f| f.refuse_dim.is_some()));
        assert!(f.clone().any(|f| !f.drop.is_empty()));
        assert!(f.clone().any(|f| !f.delay.is_empty()));
        assert!(f.clone().any(|f| f.genctr_churn));
        assert!(f.clone().any(|f| f.numrec_too_large));
        assert!(
            t.dcs.iter().any(|d| d.name.contains('#')),
            "replicas unused"
        );
        assert!(t
            .dcs
            .iter()
            .any(|d| d.nqn != nvmf_proto::WELL_KNOWN_DISCOVERY_NQN));
    }

    #[test]
    fn zoning_and_counted_entries() {
        let t = Topology::parse(
            r#"
[[dc]]
name = "a"
address = "127.0.0.1"
port = 8009
[[dc.entry]]
traddr = "10.0.0.{n}"
trsvcid = "4420"
subnqn = "nqn.test:sub{n}"
count = 3
[[dc.entry]]
traddr = "10.0.1.1"
trsvcid = "4420"
subnqn = "nqn.test:only-h1"
hosts = ["nqn.h1"]
"#,
            "t",
        )
        .unwrap();
        let dc = &t.dcs[0];
        assert_eq!(dc.visible("nqn.h1").count(), 4);
        assert_eq!(dc.visible("nqn.h2").count(), 3);
        assert_eq!(dc.entries[2].entry.subnqn, "nqn.test:sub3");
        assert_ne!(dc.view_of("nqn.h1"), dc.view_of("nqn.h2"));
        let page = dlp::DiscoveryLogPage::parse(&dc.page("nqn.h2", 7)).unwrap();
        assert_eq!(page.header.genctr, 7);
        assert_eq!(page.valid_entries().count(), 3);
    }

    #[test]
    fn bad_topologies_say_what_is_wrong() {
        let base = "[[dc]]\nname = \"a\"\naddress = \"127.0.0.1\"\nport = 8009\n";
        for (extra, expect) in [
            ("kind = \"big\"\n", "kind"),
            ("[dc.faults]\ndrop = [\"reboot\"]\n", "unknown command"),
            ("[[dc.entry]]\ntraddr = \"x\"\ntrsvcid = \"1\"\n", "needs a subnqn"),
            ("[[dc.entry]]\ntraddr = \"x\"\ntrsvcid = \"1\"\nsubnqn = \"n\"\nhostile = \"evil\"\n", "hostile"),
            ("colour = 1\n", "unknown field"),
        ] {
            let err = Topology::parse(&format!("{base}{extra}"), "t").unwrap_err().to_string();
            assert!(err.contains(expect), "{err}");
        }
        let twice = format!("{base}{base}");
        assert!(Topology::parse(&twice, "t")
            .unwrap_err()
            .to_string()
            .contains("used twice"));
        let other_name = format!("{base}{}", base.replace("\"a\"", "\"b\""));
        assert!(Topology::parse(&other_name, "t")
            .unwrap_err()
            .to_string()
            .contains("127.0.0.1:8009 is used twice"));
    }

    #[test]
    fn hostile_entries_break_only_themselves() {
        let mut text = String::from("[[dc]]\nname = \"a\"\naddress = \"127.0.0.1\"\nport = 8009\n");
        text.push_str(
            "[[dc.entry]]\ntraddr = \"10.0.0.1\"\ntrsvcid = \"4420\"\nsubnqn = \"nqn.good\"\n",
        );
        for (_, h) in Hostile::ALL {
            text.push_str(&format!(
                "[[dc.entry]]\ntraddr = \"10.0.0.2\"\ntrsvcid = \"4420\"\nsubnqn = \"nqn.{h}\"\nhostile = \"{h}\"\n"
            ));
        }
        let t = Topology::parse(&text, "t").unwrap();
        let page = dlp::DiscoveryLogPage::parse(&t.dcs[0].page("h", 1)).unwrap();
        assert!(page.valid_entries().any(|e| e.subnqn == "nqn.good"));
        // Our parser reads padding, garbage after NUL, full fields and
        // unknown codes as upstream does; a control byte is refused.
        assert_eq!(page.entries.len(), Hostile::ALL.len() + 1);
        assert_eq!(page.entry_errors().count(), 1, "{page:?}");
        assert!(page
            .valid_entries()
            .any(|e| e.trtype == TrType::Other(0x7e)));
    }
}
