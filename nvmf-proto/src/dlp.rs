//! The discovery log page (Get Log Page LID 0x70): a 1024-byte header and
//! 1024-byte entries (docs/kernel-interface.md §4).
//!
//! A discovery controller is a network peer and real ones send malformed
//! entries, so one bad entry is reported on its own and never hides the
//! others, and a page shorter than its NUMREC promises keeps the entries that
//! are complete.

use std::fmt;

use crate::types::{
    AdrFam, EFlags, RdmaCms, RdmaPrType, RdmaQpType, SecType, SubType, TrType, Treq,
};
use crate::wire::{self, decode_text, Charset, Out};
use crate::ProtoError;

/// Size of the log page header.
pub const HEADER_LEN: usize = 1024;
/// Size of one log page entry.
pub const ENTRY_LEN: usize = 1024;
/// Bytes of the header that carry data (GENCTR, NUMREC, RECFMT), rounded up
/// to a dword: what a reader fetches to check the generation counter.
pub const HEADER_PREFIX_LEN: usize = 20;

/// The discovery log page header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct DiscoveryLogHeader {
    /// Generation counter, bumped on every change of the log.
    pub genctr: u64,
    /// Number of entries that follow.
    pub numrec: u64,
    /// Record format, 0.
    pub recfmt: u16,
}

impl DiscoveryLogHeader {
    /// Parses the header from the first [`HEADER_PREFIX_LEN`] bytes of `buf`.
    pub fn parse(buf: &[u8]) -> Result<Self, ProtoError> {
        const WHAT: &str = "discovery log header";
        wire::slice(buf, 0, HEADER_PREFIX_LEN, WHAT)?;
        Ok(Self {
            genctr: wire::u64_at(buf, 0, WHAT)?,
            numrec: wire::u64_at(buf, 8, WHAT)?,
            recfmt: wire::u16_at(buf, 16, WHAT)?,
        })
    }

    /// Emits the full 1024-byte header (reserved bytes zero).
    pub fn emit(&self) -> [u8; HEADER_LEN] {
        let mut buf = [0u8; HEADER_LEN];
        buf[0..8].copy_from_slice(&self.genctr.to_le_bytes());
        buf[8..16].copy_from_slice(&self.numrec.to_le_bytes());
        buf[16..18].copy_from_slice(&self.recfmt.to_le_bytes());
        buf
    }
}

/// Transport specific address subtype (TSAS), 256 bytes.
///
/// Its meaning depends on the entry's transport, so the bytes are kept as
/// received and read through the typed accessors.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Tsas(pub [u8; 256]);

impl Default for Tsas {
    fn default() -> Self {
        Self([0; 256])
    }
}

impl fmt::Debug for Tsas {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let used = self.0.iter().rposition(|&b| b != 0).map_or(0, |p| p + 1);
        write!(
            f,
            "Tsas({})",
            wire::escape(self.0.get(..used).unwrap_or_default())
        )
    }
}

/// The RDMA view of a TSAS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RdmaTsas {
    /// Queue pair service type.
    pub qptype: RdmaQpType,
    /// Provider type.
    pub prtype: RdmaPrType,
    /// Connection management service.
    pub cms: RdmaCms,
    /// Partition key.
    pub pkey: u16,
}

impl Tsas {
    /// A TCP TSAS with the given security type.
    pub fn tcp(sectype: SecType) -> Self {
        let mut t = Self::default();
        t.0[0] = sectype.into();
        t
    }

    /// An RDMA TSAS.
    pub fn rdma(r: RdmaTsas) -> Self {
        let mut t = Self::default();
        t.0[0] = r.qptype.into();
        t.0[1] = r.prtype.into();
        t.0[2] = r.cms.into();
        t.0[8..10].copy_from_slice(&r.pkey.to_le_bytes());
        t
    }

    /// The TCP security type (byte 0), meaningful for TCP entries.
    pub fn sectype(&self) -> SecType {
        SecType::from(self.0[0])
    }

    /// The RDMA fields, meaningful for RDMA entries.
    pub fn rdma_fields(&self) -> RdmaTsas {
        RdmaTsas {
            qptype: self.0[0].into(),
            prtype: self.0[1].into(),
            cms: self.0[2].into(),
            pkey: u16::from_le_bytes([self.0[8], self.0[9]]),
        }
    }

    /// nvme-stas's `tsas` value: a Python dict repr, only for TCP and RDMA.
    /// Unknown codes are spelled `reserved` there (§16.4.3).
    pub fn stas_repr(&self, trtype: TrType) -> Option<String> {
        fn name<T: Copy>(v: T, known: impl Fn(T) -> bool, s: impl Fn(T) -> String) -> String {
            if known(v) {
                s(v)
            } else {
                "reserved".to_owned()
            }
        }
        match trtype {
            TrType::Tcp => {
                let sec = self.sectype();
                let s = name(
                    sec,
                    |v| !matches!(v, SecType::Other(_)),
                    |v| v.stas_str().into_owned(),
                );
                Some(format!("{{'sectype': '{s}'}}"))
            }
            TrType::Rdma => {
                let r = self.rdma_fields();
                let qp = name(
                    r.qptype,
                    |v| !matches!(v, RdmaQpType::Other(_)),
                    |v| v.stas_str().into_owned(),
                );
                let pr = name(
                    r.prtype,
                    |v| !matches!(v, RdmaPrType::Other(_)),
                    |v| v.stas_str().into_owned(),
                );
                let cms = name(
                    r.cms,
                    |v| !matches!(v, RdmaCms::Other(_)),
                    |v| v.stas_str().into_owned(),
                );
                Some(format!(
                    "{{'qptype': '{qp}', 'prtype': '{pr}', 'cms': '{cms}'}}"
                ))
            }
            _ => None,
        }
    }
}

/// One discovery log page entry, its text fields decoded and trimmed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DiscoveryLogEntry {
    /// Transport type.
    pub trtype: TrType,
    /// Address family.
    pub adrfam: AdrFam,
    /// Subsystem type.
    pub subtype: SubType,
    /// Transport requirements.
    pub treq: Treq,
    /// NVM subsystem port id.
    pub portid: u16,
    /// Controller id (0xFFFF dynamic, 0xFFFE static).
    pub cntlid: u16,
    /// Admin max submission queue size.
    pub asqsz: u16,
    /// Entry flags.
    pub eflags: EFlags,
    /// Transport service id (port), up to 32 bytes.
    pub trsvcid: String,
    /// Subsystem NQN, up to 256 bytes.
    pub subnqn: String,
    /// Transport address, up to 256 bytes. FC addresses are normalised to
    /// `nn-0x...:pn-0x...`.
    pub traddr: String,
    /// Transport specific address subtype.
    pub tsas: Tsas,
}

impl Default for DiscoveryLogEntry {
    fn default() -> Self {
        Self {
            trtype: TrType::Tcp,
            adrfam: AdrFam::Ipv4,
            subtype: SubType::Nvme,
            treq: Treq(0),
            portid: 0,
            cntlid: 0xffff,
            asqsz: 32,
            eflags: EFlags(0),
            trsvcid: String::new(),
            subnqn: String::new(),
            traddr: String::new(),
            tsas: Tsas::default(),
        }
    }
}

const OFF_TRSVCID: usize = 32;
const LEN_TRSVCID: usize = 32;
const OFF_SUBNQN: usize = 256;
const OFF_TRADDR: usize = 512;
const OFF_TSAS: usize = 768;
const LEN_STR: usize = 256;

impl DiscoveryLogEntry {
    /// Parses one entry from the first [`ENTRY_LEN`] bytes of `buf`.
    pub fn parse(buf: &[u8]) -> Result<Self, ProtoError> {
        const WHAT: &str = "discovery log entry";
        let e = wire::slice(buf, 0, ENTRY_LEN, WHAT)?;
        let trtype = TrType::from(wire::u8_at(e, 0, WHAT)?);
        let mut traddr = decode_text(
            wire::slice(e, OFF_TRADDR, LEN_STR, WHAT)?,
            "traddr",
            Charset::Ascii,
        )?;
        if trtype == TrType::Fc {
            // Some DCs separate the FC names with a comma, which would also
            // split the comma-separated connect string (docs/kernel-interface.md §4.5).
            // libnvme repairs the first comma only; repairing all of them
            // makes the result a valid connect value and parsing idempotent.
            if traddr.contains(',') {
                traddr = traddr.replace(',', ":");
            }
        }
        Ok(Self {
            trtype,
            adrfam: wire::u8_at(e, 1, WHAT)?.into(),
            subtype: wire::u8_at(e, 2, WHAT)?.into(),
            treq: Treq(wire::u8_at(e, 3, WHAT)?),
            portid: wire::u16_at(e, 4, WHAT)?,
            cntlid: wire::u16_at(e, 6, WHAT)?,
            asqsz: wire::u16_at(e, 8, WHAT)?,
            eflags: EFlags(wire::u16_at(e, 10, WHAT)?),
            trsvcid: decode_text(
                wire::slice(e, OFF_TRSVCID, LEN_TRSVCID, WHAT)?,
                "trsvcid",
                Charset::Ascii,
            )?,
            subnqn: decode_text(
                wire::slice(e, OFF_SUBNQN, LEN_STR, WHAT)?,
                "subnqn",
                Charset::Utf8,
            )?,
            traddr,
            tsas: Tsas(wire::array(e, OFF_TSAS, WHAT)?),
        })
    }

    /// Emits the entry into `out`, which must be at least [`ENTRY_LEN`] bytes;
    /// text is NUL padded, reserved bytes are zeroed.
    pub fn emit_into(&self, out: &mut [u8]) -> Result<(), ProtoError> {
        let dst = out.get_mut(..ENTRY_LEN).ok_or(ProtoError::TooShort {
            what: "discovery log entry output",
            need: ENTRY_LEN,
            got: 0,
        })?;
        dst.fill(0);
        let mut w = Out::new(dst, "discovery log entry");
        w.u8(0, self.trtype.into())?;
        w.u8(1, self.adrfam.into())?;
        w.u8(2, self.subtype.into())?;
        w.u8(3, self.treq.0)?;
        w.u16(4, self.portid)?;
        w.u16(6, self.cntlid)?;
        w.u16(8, self.asqsz)?;
        w.u16(10, self.eflags.0)?;
        w.text(OFF_TRSVCID, LEN_TRSVCID, &self.trsvcid, 0, "trsvcid")?;
        w.text(OFF_SUBNQN, LEN_STR, &self.subnqn, 0, "subnqn")?;
        w.text(OFF_TRADDR, LEN_STR, &self.traddr, 0, "traddr")?;
        w.bytes(OFF_TSAS, &self.tsas.0)
    }

    /// Emits the entry as 1024 bytes.
    pub fn emit(&self) -> Result<[u8; ENTRY_LEN], ProtoError> {
        let mut buf = [0u8; ENTRY_LEN];
        self.emit_into(&mut buf)?;
        Ok(buf)
    }

    /// The entry as nvme-stas's DLPE dict: keys and value spellings in the
    /// order nvme-stas puts them on D-Bus (§11.5.4); `tsas` only for TCP/RDMA.
    pub fn stas_dict(&self) -> Vec<(&'static str, String)> {
        let mut d = Vec::with_capacity(12);
        d.push(("trtype", self.trtype.stas_str().into_owned()));
        d.push(("adrfam", self.adrfam.stas_str().into_owned()));
        d.push(("traddr", self.traddr.clone()));
        d.push(("trsvcid", self.trsvcid.clone()));
        d.push(("subnqn", self.subnqn.clone()));
        d.push(("subtype", self.subtype.stas_str().into_owned()));
        d.push(("treq", self.treq.stas_str().into_owned()));
        if let Some(tsas) = self.tsas.stas_repr(self.trtype) {
            d.push(("tsas", tsas));
        }
        d.push(("portid", self.portid.to_string()));
        d.push(("cntlid", self.cntlid.to_string()));
        d.push(("asqsz", self.asqsz.to_string()));
        d.push(("eflags", self.eflags.stas_str()));
        d
    }
}

/// An entry that could not be decoded, with its position in the page.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("discovery log entry {index}: {error}")]
pub struct EntryError {
    /// Zero-based index of the entry in the page.
    pub index: usize,
    /// What was wrong with it.
    pub error: ProtoError,
}

/// A parsed discovery log page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoveryLogPage {
    /// The header as received.
    pub header: DiscoveryLogHeader,
    /// One result per complete entry in the buffer, at most NUMREC.
    pub entries: Vec<Result<DiscoveryLogEntry, EntryError>>,
}

impl DiscoveryLogPage {
    /// Parses a page: the header and as many of its NUMREC entries as `buf`
    /// holds. Bytes after the last promised entry are ignored.
    ///
    /// Fails only if the header itself is missing; check
    /// [`is_truncated`](Self::is_truncated) for a short page.
    pub fn parse(buf: &[u8]) -> Result<Self, ProtoError> {
        let header = DiscoveryLogHeader::parse(buf)?;
        let body = buf.get(HEADER_LEN..).unwrap_or_default();
        let present = body.len() / ENTRY_LEN;
        let count = usize::try_from(header.numrec).map_or(present, |n| n.min(present));
        let entries = body
            .chunks_exact(ENTRY_LEN)
            .take(count)
            .enumerate()
            .map(|(index, raw)| {
                DiscoveryLogEntry::parse(raw).map_err(|error| EntryError { index, error })
            })
            .collect();
        Ok(Self { header, entries })
    }

    /// Whether NUMREC promises more entries than the buffer held.
    pub fn is_truncated(&self) -> bool {
        u64::try_from(self.entries.len()).map_or(true, |n| n < self.header.numrec)
    }

    /// `Ok` if every promised entry was present; else a `TooShort` error
    /// saying how many arrived.
    pub fn check_complete(&self) -> Result<(), ProtoError> {
        if self.is_truncated() {
            let promised = usize::try_from(self.header.numrec).unwrap_or(usize::MAX);
            return Err(ProtoError::TooShort {
                what: "discovery log page (NUMREC entries)",
                need: promised
                    .saturating_mul(ENTRY_LEN)
                    .saturating_add(HEADER_LEN),
                got: self
                    .entries
                    .len()
                    .saturating_mul(ENTRY_LEN)
                    .saturating_add(HEADER_LEN),
            });
        }
        Ok(())
    }

    /// The entries that decoded.
    pub fn valid_entries(&self) -> impl Iterator<Item = &DiscoveryLogEntry> {
        self.entries.iter().filter_map(|e| e.as_ref().ok())
    }

    /// The entries that did not.
    pub fn entry_errors(&self) -> impl Iterator<Item = &EntryError> {
        self.entries.iter().filter_map(|e| e.as_ref().err())
    }
}

/// Emits a whole page with NUMREC = `entries.len()`.
pub fn emit_log_page(
    genctr: u64,
    recfmt: u16,
    entries: &[DiscoveryLogEntry],
) -> Result<Vec<u8>, ProtoError> {
    let numrec = u64::try_from(entries.len()).map_err(|_| ProtoError::InvalidValue {
        what: "discovery log page entry count",
        value: u64::MAX,
        expected: "fewer than 2^64 entries",
    })?;
    let header = DiscoveryLogHeader {
        genctr,
        numrec,
        recfmt,
    };
    let mut buf = vec![0u8; HEADER_LEN.saturating_add(entries.len().saturating_mul(ENTRY_LEN))];
    Out::new(&mut buf, "discovery log page").bytes(0, &header.emit())?;
    for (chunk, entry) in buf
        .get_mut(HEADER_LEN..)
        .unwrap_or_default()
        .chunks_exact_mut(ENTRY_LEN)
        .zip(entries)
    {
        entry.emit_into(chunk)?;
    }
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp_entry() -> DiscoveryLogEntry {
        DiscoveryLogEntry {
            trtype: TrType::Tcp,
            adrfam: AdrFam::Ipv4,
            subtype: SubType::Nvme,
            treq: Treq(0),
            portid: 1,
            cntlid: 0xffff,
            asqsz: 32,
            eflags: EFlags(0),
            trsvcid: "4420".into(),
            subnqn: "nqn.2014-08.org.example:sub1".into(),
            traddr: "192.168.1.20".into(),
            tsas: Tsas::tcp(SecType::None),
        }
    }

    #[test]
    fn header_fields_at_their_offsets() {
        let mut b = [0u8; 1024];
        b[0] = 7;
        b[8] = 3;
        b[16] = 1;
        let h = DiscoveryLogHeader::parse(&b).unwrap();
        assert_eq!(
            h,
            DiscoveryLogHeader {
                genctr: 7,
                numrec: 3,
                recfmt: 1
            }
        );
        assert_eq!(h.emit(), b);
        DiscoveryLogHeader::parse(&b[..19]).unwrap_err();
        DiscoveryLogHeader::parse(&b[..20]).unwrap();
    }

    #[test]
    fn entry_fields_at_their_offsets() {
        let raw = tcp_entry().emit().unwrap();
        assert_eq!(raw[0], 3);
        assert_eq!(raw[1], 1);
        assert_eq!(raw[2], 2);
        assert_eq!(&raw[4..6], &[1, 0]);
        assert_eq!(&raw[6..8], &[0xff, 0xff]);
        assert_eq!(&raw[8..10], &[32, 0]);
        assert_eq!(&raw[32..36], b"4420");
        assert_eq!(&raw[256..260], b"nqn.");
        assert_eq!(&raw[512..515], b"192");
        assert!(raw[12..32].iter().all(|&b| b == 0));
        assert_eq!(DiscoveryLogEntry::parse(&raw).unwrap(), tcp_entry());
    }

    #[test]
    fn stas_dict_order_and_spellings() {
        let d = tcp_entry().stas_dict();
        let keys: Vec<_> = d.iter().map(|(k, _)| *k).collect();
        assert_eq!(
            keys,
            [
                "trtype", "adrfam", "traddr", "trsvcid", "subnqn", "subtype", "treq", "tsas",
                "portid", "cntlid", "asqsz", "eflags"
            ]
        );
        let v: Vec<_> = d.iter().map(|(_, v)| v.as_str()).collect();
        assert_eq!(
            v,
            [
                "tcp",
                "ipv4",
                "192.168.1.20",
                "4420",
                "nqn.2014-08.org.example:sub1",
                "nvme",
                "not specified",
                "{'sectype': 'none'}",
                "1",
                "65535",
                "32",
                "0"
            ]
        );
    }

    #[test]
    fn tsas_only_for_tcp_and_rdma() {
        let mut e = tcp_entry();
        e.trtype = TrType::Fc;
        assert!(e.stas_dict().iter().all(|(k, _)| *k != "tsas"));
        e.trtype = TrType::Rdma;
        e.tsas = Tsas::rdma(RdmaTsas {
            qptype: RdmaQpType::Connected,
            prtype: RdmaPrType::RoceV2,
            cms: RdmaCms::RdmaCm,
            pkey: 0xffff,
        });
        let tsas = e
            .stas_dict()
            .into_iter()
            .find(|(k, _)| *k == "tsas")
            .unwrap()
            .1;
        assert_eq!(
            tsas,
            "{'qptype': 'connected', 'prtype': 'rocev2', 'cms': 'cm'}"
        );
        assert_eq!(e.tsas.rdma_fields().pkey, 0xffff);
        e.tsas = Tsas([9; 256]);
        let tsas = e
            .stas_dict()
            .into_iter()
            .find(|(k, _)| *k == "tsas")
            .unwrap()
            .1;
        assert_eq!(
            tsas,
            "{'qptype': 'reserved', 'prtype': 'reserved', 'cms': 'reserved'}"
        );
        e.trtype = TrType::Tcp;
        assert_eq!(
            e.tsas.stas_repr(TrType::Tcp).unwrap(),
            "{'sectype': 'reserved'}"
        );
        assert_eq!(
            Tsas::tcp(SecType::Tls13).stas_repr(TrType::Tcp).unwrap(),
            "{'sectype': 'tls1.3'}"
        );
    }

    #[test]
    fn fc_comma_is_repaired() {
        let mut e = tcp_entry();
        e.trtype = TrType::Fc;
        e.adrfam = AdrFam::Fc;
        e.traddr = "nn-0x1000000044001123,pn-0x2000000055001123".into();
        let parsed = DiscoveryLogEntry::parse(&e.emit().unwrap()).unwrap();
        assert_eq!(parsed.traddr, "nn-0x1000000044001123:pn-0x2000000055001123");
        e.traddr = "a,b,c".into();
        let parsed = DiscoveryLogEntry::parse(&e.emit().unwrap()).unwrap();
        assert_eq!(parsed.traddr, "a:b:c");
        assert_eq!(
            DiscoveryLogEntry::parse(&parsed.emit().unwrap()).unwrap(),
            parsed
        );
        // Only FC addresses are touched.
        e.trtype = TrType::Tcp;
        e.traddr = "a,b".into();
        assert_eq!(
            DiscoveryLogEntry::parse(&e.emit().unwrap()).unwrap().traddr,
            "a,b"
        );
    }

    #[test]
    fn emit_rejects_overlong_fields() {
        let mut e = tcp_entry();
        e.trsvcid = "1".repeat(33);
        assert!(matches!(
            e.emit(),
            Err(ProtoError::FieldTooLong {
                field: "trsvcid",
                ..
            })
        ));
        e.trsvcid = "1".repeat(32);
        e.emit().unwrap();
    }

    #[test]
    fn page_round_trip_and_truncation() {
        let entries = vec![tcp_entry(), tcp_entry()];
        let raw = emit_log_page(5, 0, &entries).unwrap();
        assert_eq!(raw.len(), 3 * 1024);
        let page = DiscoveryLogPage::parse(&raw).unwrap();
        assert!(!page.is_truncated());
        page.check_complete().unwrap();
        assert_eq!(page.valid_entries().cloned().collect::<Vec<_>>(), entries);

        let short = DiscoveryLogPage::parse(&raw[..2 * 1024 + 1000]).unwrap();
        assert!(short.is_truncated());
        assert_eq!(short.entries.len(), 1);
        let err = short.check_complete().unwrap_err();
        assert!(
            err.to_string()
                .contains("2048 bytes received, at least 3072"),
            "{err}"
        );
    }

    #[test]
    fn bad_entry_does_not_hide_good_ones() {
        let mut raw = emit_log_page(1, 0, &[tcp_entry(), tcp_entry(), tcp_entry()]).unwrap();
        raw[1024 + 1024 + 512 + 3] = 0x01; // control byte inside entry 1's traddr
        let page = DiscoveryLogPage::parse(&raw).unwrap();
        assert_eq!(page.valid_entries().count(), 2);
        let errs: Vec<_> = page.entry_errors().collect();
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].index, 1);
        assert!(
            errs[0]
                .to_string()
                .starts_with("discovery log entry 1: traddr"),
            "{}",
            errs[0]
        );
    }

    #[test]
    fn huge_numrec_does_not_allocate_or_panic() {
        let mut raw = emit_log_page(1, 0, &[tcp_entry()]).unwrap();
        raw[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
        let page = DiscoveryLogPage::parse(&raw).unwrap();
        assert_eq!(page.entries.len(), 1);
        assert!(page.is_truncated());
        assert!(page.check_complete().is_err());
    }

    #[test]
    fn header_only_shorter_than_1024_parses_with_no_entries() {
        let raw = [0u8; 20];
        let page = DiscoveryLogPage::parse(&raw).unwrap();
        assert!(page.entries.is_empty());
        assert!(!page.is_truncated());
    }
}
