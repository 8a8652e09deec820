//! What the simulator saw, as JSON (`--state PATH`): associations, DIM
//! commands with their decoded payloads, log page reads and AENs sent.
//! Tests read it; so can a person. Written atomically, at most every
//! [`WRITE_INTERVAL`], after any change.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use nvmf_proto::dim::{format_uuid, DimData, ExtAttr, Tas};
use serde::{Serialize, Serializer};
use thiserror::Error;
use tokio::sync::Notify;

/// The quickest a change reaches the file.
pub const WRITE_INTERVAL: Duration = Duration::from_millis(20);

/// Records kept per list and DC; older ones are dropped (and counted) so a
/// long scale run does not grow without bound.
pub const MAX_RECORDS: usize = 20_000;

/// Everything seen, per DC name.
#[derive(Debug, Default, Clone, Serialize)]
pub struct State {
    /// Per DC.
    pub dcs: BTreeMap<String, DcState>,
}

/// What one DC saw.
#[derive(Debug, Default, Clone, Serialize)]
pub struct DcState {
    /// Where it listens.
    pub listen: String,
    /// Every association, open or closed.
    pub associations: Vec<Association>,
    /// Current registrations, by host NQN (what the last register/update said).
    pub registrations: BTreeMap<String, Dim>,
    /// Every DIM command.
    pub dim: Vec<Dim>,
    /// Every Get Log Page.
    pub log_reads: Vec<LogRead>,
    /// Every AEN completion sent.
    pub aens: Vec<Aen>,
    /// The GENCTR each host is at.
    pub genctr: BTreeMap<String, u64>,
    /// Records dropped past [`MAX_RECORDS`].
    pub dropped_records: u64,
}

/// One association (an admin queue).
#[derive(Debug, Clone, Serialize)]
pub struct Association {
    /// Its number, unique in the process.
    pub id: u64,
    /// The host's socket address.
    pub peer: String,
    /// Host NQN from Connect.
    pub hostnqn: String,
    /// Host ID from Connect.
    pub hostid: String,
    /// The controller ID assigned.
    pub cntlid: u16,
    /// Keep-alive timeout from Connect, in ms (0: none).
    pub kato_ms: u32,
    /// Still connected.
    pub open: bool,
    /// Why it ended.
    pub closed: Option<String>,
}

/// One DIM command.
#[derive(Debug, Clone, Serialize)]
pub struct Dim {
    /// The association it came on.
    pub association: u64,
    /// The host NQN of that association.
    pub hostnqn: String,
    /// register, deregister, update or other-N.
    pub tas: String,
    /// The status sent back (0: success).
    pub status: u16,
    /// The payload as decoded, or why it did not decode.
    pub payload: Result<DimPayload, DimPayloadError>,
    /// The payload bytes (TDL of them), in hex.
    pub raw_hex: String,
}

/// Why a DIM payload was refused; in the state file as its message.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DimPayloadError {
    /// The bytes are not a DIM payload the decoder accepts.
    #[error("the {len}-byte DIM payload does not decode: {source}")]
    Undecodable {
        /// How many bytes came (TDL of them).
        len: usize,
        /// What the decoder refused.
        source: nvmf_proto::ProtoError,
    },
}

/// Written as the message, as the `String` it replaced was, so readers of
/// the state file see `"payload": {"Err": "<why>"}` as before.
impl Serialize for DimPayloadError {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// A decoded DIM payload.
#[derive(Debug, Clone, Serialize)]
pub struct DimPayload {
    /// Entry format: 1 basic, 2 extended.
    pub entfmt: u16,
    /// Entity type: 1 host, 2 DDC, 3 CDC.
    pub etype: u16,
    /// Entity identifier (host NQN).
    pub eid: String,
    /// Entity name (host name).
    pub ename: String,
    /// Entity version.
    pub ever: String,
    /// The entries.
    pub entries: Vec<DimEntry>,
}

/// One DIM entry.
#[derive(Debug, Clone, Serialize)]
pub struct DimEntry {
    /// Transport type.
    pub trtype: String,
    /// Address family.
    pub adrfam: String,
    /// NQN.
    pub nqn: String,
    /// Transport address.
    pub traddr: String,
    /// Transport service id.
    pub trsvcid: String,
    /// Host ID attribute, if sent.
    pub hostid: Option<String>,
    /// Symbolic name attribute, if sent.
    pub symname: Option<String>,
}

/// One Get Log Page.
#[derive(Debug, Clone, Serialize)]
pub struct LogRead {
    /// The association.
    pub association: u64,
    /// Log identifier.
    pub lid: u8,
    /// Log specific field.
    pub lsp: u8,
    /// Retain asynchronous event.
    pub rae: bool,
    /// Byte offset.
    pub offset: u64,
    /// Bytes asked for.
    pub length: u32,
}

/// One AEN completion.
#[derive(Debug, Clone, Serialize)]
pub struct Aen {
    /// The association.
    pub association: u64,
    /// Its host NQN.
    pub hostnqn: String,
    /// Completion dword 0.
    pub dw0: u32,
}

impl Dim {
    /// Records a DIM command from its dword 10 and payload bytes.
    pub fn new(association: u64, hostnqn: &str, tas: Tas, status: u16, raw: &[u8]) -> Self {
        let tas = match tas {
            Tas::Register => "register".to_owned(),
            Tas::Deregister => "deregister".to_owned(),
            Tas::Update => "update".to_owned(),
            Tas::Other(v) => format!("other-{v}"),
            _ => "unknown".to_owned(),
        };
        Self {
            association,
            hostnqn: hostnqn.to_owned(),
            tas,
            status,
            payload: DimData::parse(raw)
                .map(|d| DimPayload::from(&d))
                .map_err(|source| DimPayloadError::Undecodable {
                    len: raw.len(),
                    source,
                }),
            raw_hex: raw.iter().map(|b| format!("{b:02x}")).collect(),
        }
    }
}

impl From<&DimData> for DimPayload {
    fn from(d: &DimData) -> Self {
        Self {
            entfmt: d.entfmt.into(),
            etype: d.etype.into(),
            eid: d.eid.clone(),
            ename: d.ename.clone(),
            ever: d.ever.clone(),
            entries: d
                .entries
                .iter()
                .map(|e| DimEntry {
                    trtype: e.trtype.stas_str().into_owned(),
                    adrfam: e.adrfam.stas_str().into_owned(),
                    nqn: e.nqn.clone(),
                    traddr: e.traddr.clone(),
                    trsvcid: e.trsvcid.clone(),
                    hostid: e.attrs.iter().find_map(|a| match a {
                        ExtAttr::HostId(id) => Some(format_uuid(id)),
                        _ => None,
                    }),
                    symname: e.attrs.iter().find_map(|a| match a {
                        ExtAttr::SymName(s) => Some(s.trim_end().to_owned()),
                        _ => None,
                    }),
                })
                .collect(),
        }
    }
}

/// Pushes a record, dropping the oldest past [`MAX_RECORDS`].
pub fn push_bounded<T>(list: &mut Vec<T>, dropped: &mut u64, item: T) {
    if list.len() >= MAX_RECORDS {
        list.remove(0);
        *dropped = dropped.saturating_add(1);
    }
    list.push(item);
}

/// The shared state and the file it goes to.
#[derive(Debug, Default)]
pub struct Recorder {
    state: Mutex<State>,
    path: Option<PathBuf>,
    dirty: Notify,
}

impl Recorder {
    /// A recorder writing to `path` (if any); [`Recorder::run_writer`]
    /// does the writing.
    pub fn new(path: Option<PathBuf>) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(State::default()),
            path,
            dirty: Notify::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Changes the state of DC `dc`.
    pub fn update(&self, dc: &str, f: impl FnOnce(&mut DcState)) {
        f(self.lock().dcs.entry(dc.to_owned()).or_default());
        self.dirty.notify_one();
    }

    /// A copy of the state.
    pub fn snapshot(&self) -> State {
        self.lock().clone()
    }

    /// Writes the state file now (atomically: a temporary file renamed).
    pub fn write_now(&self) -> std::io::Result<()> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let json = serde_json::to_vec_pretty(&*self.lock()).map_err(std::io::Error::other)?;
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, json)?;
        std::fs::rename(&tmp, path)
    }

    /// Writes the file after every change, at most every [`WRITE_INTERVAL`]; runs forever.
    pub async fn run_writer(self: Arc<Self>) {
        if let Err(e) = self.write_now() {
            log::error!("cannot write the state file: {e}");
        }
        loop {
            self.dirty.notified().await;
            tokio::time::sleep(WRITE_INTERVAL).await;
            if let Err(e) = self.write_now() {
                log::error!("cannot write the state file: {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    #[test]
    fn a_refused_dim_payload_is_written_as_its_message() {
        let dim = Dim::new(1, "nqn.h", Tas::Register, 0, &[1, 2, 3]);
        let json = serde_json::to_value(&dim).unwrap();
        let why = json["payload"]["Err"].as_str().unwrap();
        assert!(
            why.starts_with("the 3-byte DIM payload does not decode: "),
            "{why}"
        );
    }
}
