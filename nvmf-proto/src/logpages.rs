//! Supported Log Pages (LID 0x00), the discovery log's LID-specific bits, and
//! the Get Log Page command encoding with the chunking discovery readers use
//! (docs/kernel-interface.md §3.1, §3.3).

use crate::wire::{self, Out};
use crate::ProtoError;

/// LID of the Supported Log Pages log page.
pub const LID_SUPPORTED_LOG_PAGES: u8 = 0x00;
/// LID of the discovery log page.
pub const LID_DISCOVERY: u8 = 0x70;
/// Size of the Supported Log Pages log page: one dword per LID.
pub const SUPPORTED_LOG_PAGES_LEN: usize = 1024;
/// Get Log Page transfer size per command: 4 KiB is the smallest possible
/// MDTS, so it never needs checking (libnvme does the same).
pub const CHUNK_LEN: u32 = 4096;

/// Discovery log LSP bit 0: extended discovery log page entries.
pub const LSP_EXTDLPE: u8 = 0x01;
/// Discovery log LSP bit 1: port-local entries only (PLEO).
pub const LSP_PLEO: u8 = 0x02;
/// Discovery log LSP bit 2: all NVM subsystem entries.
pub const LSP_ALLSUBE: u8 = 0x04;

/// What a controller says it supports for the discovery log (the LID-specific
/// half of dword 0x70 of the Supported Log Pages page).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct DiscoveryLogFeatures {
    /// EXTDLPES: extended entries supported.
    pub extdlpes: bool,
    /// PLEOS: port-local entries only supported.
    pub pleos: bool,
    /// ALLSUBES: all-subsystem entries supported.
    pub allsubes: bool,
}

impl DiscoveryLogFeatures {
    /// The LSP to ask with: PLEO when supported, nothing else (nvme-stas never
    /// sets EXTDLPE, and nobody parses extended entries).
    pub fn preferred_lsp(self) -> u8 {
        if self.pleos {
            LSP_PLEO
        } else {
            0
        }
    }
}

/// Support descriptor of one LID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct LidSupport(pub u32);

impl LidSupport {
    /// LSUPP: the log page is supported.
    pub fn supported(self) -> bool {
        self.0 & 1 != 0
    }

    /// IOS: index offset supported.
    pub fn index_offset_supported(self) -> bool {
        self.0 & 2 != 0
    }

    /// LIDSP: bits 31:16.
    pub fn lid_specific(self) -> u16 {
        let [_, _, lo, hi] = self.0.to_le_bytes();
        u16::from_le_bytes([lo, hi])
    }
}

/// The Supported Log Pages log page: one support descriptor per LID.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SupportedLogPages(pub [LidSupport; 256]);

impl Default for SupportedLogPages {
    fn default() -> Self {
        Self([LidSupport(0); 256])
    }
}

impl std::fmt::Debug for SupportedLogPages {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut m = f.debug_map();
        for (lid, s) in self.0.iter().enumerate().filter(|(_, s)| s.0 != 0) {
            m.entry(&format_args!("{lid:#04x}"), &format_args!("{:#010x}", s.0));
        }
        m.finish()
    }
}

impl SupportedLogPages {
    /// Parses the first 1024 bytes of `buf`.
    pub fn parse(buf: &[u8]) -> Result<Self, ProtoError> {
        const W: &str = "supported log pages";
        wire::slice(buf, 0, SUPPORTED_LOG_PAGES_LEN, W)?;
        let mut out = Self::default();
        for (i, slot) in out.0.iter_mut().enumerate() {
            *slot = LidSupport(wire::u32_at(buf, i.saturating_mul(4), W)?);
        }
        Ok(out)
    }

    /// Emits the 1024-byte page.
    pub fn emit(&self) -> Vec<u8> {
        self.0.iter().flat_map(|s| s.0.to_le_bytes()).collect()
    }

    /// The descriptor of `lid`.
    pub fn get(&self, lid: u8) -> LidSupport {
        self.0.get(usize::from(lid)).copied().unwrap_or_default()
    }

    /// Sets the descriptor of `lid`.
    pub fn set(&mut self, lid: u8, support: LidSupport) {
        if let Some(slot) = self.0.get_mut(usize::from(lid)) {
            *slot = support;
        }
    }

    /// The discovery log features (LIDSP of LID 0x70: bit 0 EXTDLPES, bit 1
    /// PLEOS, bit 2 ALLSUBES). All false if the discovery log is not listed.
    pub fn discovery_features(&self) -> DiscoveryLogFeatures {
        let d = self.get(LID_DISCOVERY);
        if !d.supported() {
            return DiscoveryLogFeatures::default();
        }
        let sp = d.lid_specific();
        DiscoveryLogFeatures {
            extdlpes: sp & 1 != 0,
            pleos: sp & 2 != 0,
            allsubes: sp & 4 != 0,
        }
    }
}

/// One Get Log Page admin command (opcode 0x02).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct GetLogPage {
    /// Log identifier.
    pub lid: u8,
    /// Log specific field (7 bits).
    pub lsp: u8,
    /// Retain asynchronous event: leave the event latched after this read.
    pub rae: bool,
    /// Log specific identifier.
    pub lsi: u16,
    /// Byte offset into the log (dword aligned).
    pub offset: u64,
    /// Bytes to transfer (a non-zero multiple of 4).
    pub len: u32,
    /// UUID index (7 bits).
    pub uuid_index: u8,
    /// Command set identifier.
    pub csi: u8,
}

/// Admin opcode of Get Log Page.
pub const OPC_GET_LOG_PAGE: u8 = 0x02;

impl GetLogPage {
    /// Encodes command dwords 10 to 14.
    pub fn cdws(&self) -> Result<[u32; 5], ProtoError> {
        let bad = |what, value: u64, expected| ProtoError::InvalidValue {
            what,
            value,
            expected,
        };
        if self.len == 0 || self.len % 4 != 0 {
            return Err(bad(
                "get log page length",
                self.len.into(),
                "a non-zero multiple of 4",
            ));
        }
        if self.offset % 4 != 0 {
            return Err(bad("get log page offset", self.offset, "a multiple of 4"));
        }
        if self.lsp > 0x7f {
            return Err(bad("get log page LSP", self.lsp.into(), "0..=0x7f"));
        }
        if self.uuid_index > 0x7f {
            return Err(bad(
                "get log page UUID index",
                self.uuid_index.into(),
                "0..=0x7f",
            ));
        }
        let numd = self.len / 4 - 1;
        let [numdl_lo, numdl_hi, numdu_lo, numdu_hi] = numd.to_le_bytes();
        let [off0, off1, off2, off3, off4, off5, off6, off7] = self.offset.to_le_bytes();
        let cdw10 = u32::from_le_bytes([
            self.lid,
            self.lsp | (u8::from(self.rae) << 7),
            numdl_lo,
            numdl_hi,
        ]);
        let [lsi_lo, lsi_hi] = self.lsi.to_le_bytes();
        let cdw11 = u32::from_le_bytes([numdu_lo, numdu_hi, lsi_lo, lsi_hi]);
        let cdw12 = u32::from_le_bytes([off0, off1, off2, off3]);
        let cdw13 = u32::from_le_bytes([off4, off5, off6, off7]);
        let cdw14 = u32::from_le_bytes([self.uuid_index, 0, 0, self.csi]);
        Ok([cdw10, cdw11, cdw12, cdw13, cdw14])
    }

    /// Decodes command dwords 10 to 14 (what a simulated controller receives).
    pub fn from_cdws(cdw: [u32; 5]) -> Self {
        let [cdw10, cdw11, cdw12, cdw13, cdw14] = cdw;
        let [lid, lsp_rae, numdl_lo, numdl_hi] = cdw10.to_le_bytes();
        let [numdu_lo, numdu_hi, lsi_lo, lsi_hi] = cdw11.to_le_bytes();
        let numd = u32::from_le_bytes([numdl_lo, numdl_hi, numdu_lo, numdu_hi]);
        let [uuid, _, _, csi] = cdw14.to_le_bytes();
        Self {
            lid,
            lsp: lsp_rae & 0x7f,
            rae: lsp_rae & 0x80 != 0,
            lsi: u16::from_le_bytes([lsi_lo, lsi_hi]),
            offset: u64::from(cdw12) | (u64::from(cdw13) << 32),
            len: numd.saturating_add(1).saturating_mul(4),
            uuid_index: uuid & 0x7f,
            csi,
        }
    }

    /// Splits a read of `len` bytes at `offset` into commands of at most
    /// [`CHUNK_LEN`] bytes. Every chunk but the last retains the event, so an
    /// AEN is only re-armed once the whole read is done; the last one uses
    /// `rae_last` (false for the discovery log, to re-arm its AEN).
    pub fn chunked(self, rae_last: bool) -> impl Iterator<Item = GetLogPage> {
        let total = u64::from(self.len);
        let chunk = u64::from(CHUNK_LEN);
        let count = total.div_ceil(chunk);
        (0..count).map(move |i| {
            let done = i.saturating_mul(chunk);
            let len = u32::try_from(total.saturating_sub(done).min(chunk)).unwrap_or(CHUNK_LEN);
            GetLogPage {
                offset: self.offset.saturating_add(done),
                len,
                rae: if i + 1 == count { rae_last } else { true },
                ..self
            }
        })
    }
}

/// Writes the Supported Log Pages page into `out` (for simulators).
pub fn emit_supported_into(pages: &SupportedLogPages, out: &mut [u8]) -> Result<(), ProtoError> {
    Out::new(out, "supported log pages").bytes(0, &pages.emit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn supported_log_pages_round_trip_and_features() {
        let mut p = SupportedLogPages::default();
        p.set(0x00, LidSupport(1));
        p.set(LID_DISCOVERY, LidSupport(1 | (0b010 << 16)));
        let raw = p.emit();
        assert_eq!(raw.len(), 1024);
        assert_eq!(&raw[0x70 * 4..0x70 * 4 + 4], &[1, 0, 2, 0]);
        let back = SupportedLogPages::parse(&raw).unwrap();
        assert_eq!(back, p);
        let f = back.discovery_features();
        assert_eq!(
            f,
            DiscoveryLogFeatures {
                extdlpes: false,
                pleos: true,
                allsubes: false
            }
        );
        assert_eq!(f.preferred_lsp(), LSP_PLEO);
        SupportedLogPages::parse(&raw[..1020]).unwrap_err();
    }

    #[test]
    fn features_ignored_when_lid_not_supported() {
        let mut p = SupportedLogPages::default();
        p.set(LID_DISCOVERY, LidSupport(0x0007_0000));
        assert_eq!(p.discovery_features(), DiscoveryLogFeatures::default());
        assert_eq!(p.discovery_features().preferred_lsp(), 0);
        p.set(LID_DISCOVERY, LidSupport(0x0007_0003));
        let f = p.discovery_features();
        assert!(f.extdlpes && f.pleos && f.allsubes);
        assert!(p.get(LID_DISCOVERY).index_offset_supported());
    }

    #[test]
    fn get_log_page_encoding_matches_spec() {
        // Header read: 20 bytes of LID 0x70, RAE 0 -> NUMD 4.
        let c = GetLogPage {
            lid: 0x70,
            len: 20,
            ..Default::default()
        };
        assert_eq!(c.cdws().unwrap(), [0x0004_0070, 0, 0, 0, 0]);
        // PLEO, RAE, large offset, NUMD needing the upper half.
        let c = GetLogPage {
            lid: 0x70,
            lsp: LSP_PLEO,
            rae: true,
            offset: 0x1_0000_0400,
            len: 0x40_0000,
            ..Default::default()
        };
        let d = c.cdws().unwrap();
        assert_eq!(d[0], 0xffff_0000 | 0x8000 | 0x0200 | 0x70);
        assert_eq!(d[1], 0x0000_000f);
        assert_eq!(d[2], 0x0000_0400);
        assert_eq!(d[3], 1);
        assert_eq!(GetLogPage::from_cdws(d), c);
    }

    #[test]
    fn invalid_commands_are_refused() {
        let base = GetLogPage {
            lid: 0x70,
            len: 4096,
            ..Default::default()
        };
        GetLogPage { len: 0, ..base }.cdws().unwrap_err();
        GetLogPage { len: 6, ..base }.cdws().unwrap_err();
        GetLogPage { offset: 2, ..base }.cdws().unwrap_err();
        GetLogPage { lsp: 0x80, ..base }.cdws().unwrap_err();
        GetLogPage {
            uuid_index: 0x80,
            ..base
        }
        .cdws()
        .unwrap_err();
    }

    #[test]
    fn chunking_sets_rae_on_all_but_last() {
        let read = GetLogPage {
            lid: 0x70,
            offset: 1024,
            len: 3 * 4096 + 1024,
            ..Default::default()
        };
        let chunks: Vec<_> = read.chunked(false).collect();
        assert_eq!(chunks.len(), 4);
        assert_eq!(
            chunks.iter().map(|c| c.offset).collect::<Vec<_>>(),
            [1024, 5120, 9216, 13312]
        );
        assert_eq!(
            chunks.iter().map(|c| c.len).collect::<Vec<_>>(),
            [4096, 4096, 4096, 1024]
        );
        assert_eq!(
            chunks.iter().map(|c| c.rae).collect::<Vec<_>>(),
            [true, true, true, false]
        );
        let one: Vec<_> = GetLogPage { len: 1024, ..read }.chunked(true).collect();
        assert_eq!(one.len(), 1);
        assert!(one[0].rae);
    }
}
