//! Format version 1, as written until log pages were stored as wire
//! records: read once after an upgrade and converted; the next save
//! writes version 2.

use bincode::{Decode, Encode};

use super::record::{ControllerRecord, LastKnownConfig, WireLogPage};

/// A version-1 controller: the log entries as nvme-stas DLPE dicts.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub(crate) struct ControllerRecordV1 {
    pub(crate) tid: Vec<(String, String)>,
    pub(crate) origin: Option<String>,
    pub(crate) log_pages: Vec<Vec<(String, String)>>,
    pub(crate) device: Option<String>,
}

/// A version-1 payload.
#[derive(Debug, Clone, PartialEq, Eq, Default, Encode, Decode)]
pub(crate) struct LastKnownConfigV1 {
    pub(crate) controllers: Vec<ControllerRecordV1>,
}

impl From<LastKnownConfigV1> for LastKnownConfig {
    /// Each dict becomes its wire record; a dict that does not describe an
    /// entry is dropped, as restoring version 1 always did.
    fn from(v1: LastKnownConfigV1) -> Self {
        let controllers = v1
            .controllers
            .into_iter()
            .map(|c| {
                let entries: Vec<_> = c
                    .log_pages
                    .iter()
                    .filter_map(|d| crate::dlpe::from_dict(d))
                    .collect();
                ControllerRecord {
                    tid: c.tid,
                    origin: c.origin,
                    log_pages: WireLogPage::encode(&entries),
                    device: c.device,
                }
            })
            .collect();
        Self { controllers }
    }
}
