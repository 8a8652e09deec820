//! What the file holds (format version 2): the controllers, and stafd's
//! cached discovery log pages as the 1024-byte wire records nvmf-proto
//! emits and parses.

use std::sync::Arc;

use bincode::de::Decoder;
use bincode::enc::Encoder;
use bincode::error::{DecodeError, EncodeError};
use bincode::{Decode, Encode};
use nvmf_proto::dlp::{DiscoveryLogEntry, EntryError, ENTRY_LEN};

/// A cached discovery log page: its entries as 1024-byte discovery log
/// page entry records (NVMe Base Specification, Get Log Page 70h), back to
/// back, without the page header. Cloning shares the bytes, so a daemon
/// can keep each controller's encoded page and hand it to every save
/// without copying it.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct WireLogPage(Arc<[u8]>);

impl std::fmt::Debug for WireLogPage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "WireLogPage({} entries)", self.len())
    }
}

impl WireLogPage {
    /// Encodes `entries`. An entry that has no wire form (a text field
    /// longer than its field: never one that was read off the wire, only
    /// one rebuilt from a hand-edited version-1 file) is left out and
    /// logged.
    pub fn encode(entries: &[DiscoveryLogEntry]) -> Self {
        let mut bytes = Vec::with_capacity(entries.len().saturating_mul(ENTRY_LEN));
        for e in entries {
            match e.emit() {
                Ok(record) => bytes.extend_from_slice(&record),
                Err(err) => log::warn!(
                    "Last known config: discovery log entry for {} at {} not saved: {err}",
                    e.subnqn,
                    e.traddr
                ),
            }
        }
        Self(bytes.into())
    }

    /// The page whose records are `bytes`; `None` unless its length is a
    /// whole number of records.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        (bytes.len() % ENTRY_LEN == 0).then(|| Self(bytes.into()))
    }

    /// The records, back to back.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// How many entries.
    pub fn len(&self) -> usize {
        self.0.len() / ENTRY_LEN
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Parses the records: the entries that parse, and for each record
    /// that does not, its index and why.
    pub fn entries(&self) -> (Vec<DiscoveryLogEntry>, Vec<EntryError>) {
        let mut good = Vec::with_capacity(self.len());
        let mut bad = Vec::new();
        for (index, record) in self.0.chunks_exact(ENTRY_LEN).enumerate() {
            match DiscoveryLogEntry::parse(record) {
                Ok(e) => good.push(e),
                Err(error) => bad.push(EntryError { index, error }),
            }
        }
        (good, bad)
    }
}

// Encoded as a byte string (a length, then the records).
impl Encode for WireLogPage {
    fn encode<E: Encoder>(&self, encoder: &mut E) -> Result<(), EncodeError> {
        self.as_bytes().encode(encoder)
    }
}

impl<Context> Decode<Context> for WireLogPage {
    fn decode<D: Decoder<Context = Context>>(decoder: &mut D) -> Result<Self, DecodeError> {
        let bytes = Vec::<u8>::decode(decoder)?;
        if bytes.len() % ENTRY_LEN != 0 {
            return Err(DecodeError::OtherString(format!(
                "a log page of {} bytes is not a whole number of {ENTRY_LEN}-byte entries",
                bytes.len()
            )));
        }
        Ok(Self(bytes.into()))
    }
}

bincode::impl_borrow_decode!(WireLogPage);

/// A controller as remembered: its TID dict form, origin and (stafd) log page.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct ControllerRecord {
    /// The TID's dict form (`transport`, `traddr`, ..., config overrides).
    pub tid: Vec<(String, String)>,
    /// stafd: `configured`, `discovered` or `referral`.
    pub origin: Option<String>,
    /// stafd: the cached discovery log entries; empty for stacd.
    pub log_pages: WireLogPage,
    /// The kernel device last bound (`nvme3`), a hint for adoption.
    pub device: Option<String>,
}

impl ControllerRecord {
    /// The controller's TID, in the daemon's TID context now.
    pub fn tid(&self, ctx: &stas_tid::TidContext) -> stas_tid::Tid {
        let cid: stas_config::Cid = self.tid.iter().cloned().collect();
        stas_tid::Tid::from_cid(&cid, ctx)
    }
}

/// What a daemon remembers.
#[derive(Debug, Clone, PartialEq, Eq, Default, Encode, Decode)]
pub struct LastKnownConfig {
    /// The controllers.
    pub controllers: Vec<ControllerRecord>,
}
