//! What stafd tells stacd: the discovery log pages of every discovery
//! controller, as `get_all_log_pages(true)` returns them (§11.6), turned
//! into data. Input from another process over D-Bus: anything malformed is
//! an error naming what was wrong, never a panic.

use nvmf_proto::dlp::DiscoveryLogEntry;
use serde_json::Value;
use stas_daemon::dbus::contract::{key, LogPageState, TID_KEYS};

/// One discovery controller's log page as stafd serves it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DcLogPages {
    /// Which DC (its transport, address, port, NQN and host side), to
    /// attribute I/O controllers to it.
    pub dc: String,
    /// Whether stafd has read the DC's log page, as its dict says.
    pub state: LogPageState,
    /// Whether the page is stafd's word: false when it is empty and not
    /// [`LogPageState::Read`] (stafd just started without a cached page,
    /// or is still reading it). Controllers this DC listed before are
    /// kept meanwhile.
    pub complete: bool,
    /// The DC's `host-traddr` (I/O controllers it lists connect from there).
    pub host_traddr: String,
    /// The DC's `host-iface`.
    pub host_iface: String,
    /// The DC's `host-nqn`.
    pub host_nqn: String,
    /// Its entries (every subtype; stacd uses the `nvme` ones).
    pub entries: Vec<DiscoveryLogEntry>,
}

/// What stacd knows of stafd's log pages. Unknown is not empty: while
/// stafd is away or has not answered, controllers learnt from log pages
/// are kept (upstream tears them down, nvme-stas PR #510).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum StafView {
    /// stafd is not on the bus, or its answer failed or did not parse.
    #[default]
    Unknown,
    /// stafd's latest answer.
    Known(Vec<DcLogPages>),
}

/// A `get_all_log_pages` answer of the wrong shape. stacd keeps what it
/// knew and asks stafd again; a stafd that keeps answering this is not
/// one stacd understands (check that both come from the same release).
#[derive(Debug, thiserror::Error)]
pub enum AllLogPagesError {
    /// The text is not JSON.
    #[error("stafd's get_all_log_pages answer is not JSON: {0}")]
    NotJson(#[source] serde_json::Error),
    /// The document is not an array of DCs.
    #[error("stafd's get_all_log_pages answer is not a JSON array")]
    NotAnArray,
    /// An element has no controller dict.
    #[error("stafd's get_all_log_pages: element {0} has no \"discovery-controller\"")]
    NoController(usize),
    /// An element has no entry list.
    #[error("stafd's get_all_log_pages: element {0} has no \"log-pages\" array")]
    NoLogPages(usize),
}

fn text(v: &Value, key: &str) -> String {
    v.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .trim()
        .to_owned()
}

/// Parses the `get_all_log_pages` JSON text. Entries that do not parse are
/// skipped with a debug line; a document of the wrong shape is an error.
pub fn parse_all_log_pages(json: &str) -> Result<Vec<DcLogPages>, AllLogPagesError> {
    let doc: Value = serde_json::from_str(json).map_err(AllLogPagesError::NotJson)?;
    let dcs = doc.as_array().ok_or(AllLogPagesError::NotAnArray)?;
    let mut out = Vec::with_capacity(dcs.len());
    for (i, dc) in dcs.iter().enumerate() {
        let ctrl = dc
            .get(key::DISCOVERY_CONTROLLER)
            .ok_or(AllLogPagesError::NoController(i))?;
        let pages = dc
            .get(key::LOG_PAGES)
            .and_then(Value::as_array)
            .ok_or(AllLogPagesError::NoLogPages(i))?;
        let entries = pages
            .iter()
            .filter_map(|p| {
                let dict: Vec<(String, String)> = p
                    .as_object()?
                    .iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                    .collect();
                let e = stas_daemon::dlpe::from_dict(&dict);
                if e.is_none() {
                    log::debug!("stafd's log page entry {p} does not parse; ignored");
                }
                e
            })
            .collect();
        let dc = TID_KEYS
            .iter()
            .map(|k| text(ctrl, k))
            .collect::<Vec<_>>()
            .join(", ");
        // A key present with a value that is not text still counts (an
        // operation in flight); `connected` must say "False" to count.
        let state = LogPageState::from_dict(|k| ctrl.get(k).map(|v| v.as_str().unwrap_or("")));
        out.push(DcLogPages {
            dc: format!("({dc})"),
            state,
            complete: !pages.is_empty() || state.is_read(),
            host_traddr: text(ctrl, key::HOST_TRADDR),
            host_iface: text(ctrl, key::HOST_IFACE),
            host_nqn: text(ctrl, key::HOST_NQN),
            entries,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = r#"[{"discovery-controller": {"traddr": "::1", "trsvcid": "8009", "transport": "tcp", "subsysnqn": "nqn.2014-08.org.nvmexpress.discovery", "host-iface": "eth0", "host-traddr": "", "host-nqn": "nqn.h", "device": "nvme0"}, "log-pages": [{"trtype": "tcp", "adrfam": "ipv6", "traddr": "::1", "trsvcid": "4420", "subnqn": "nqn.1988-11.com.dell:sub", "subtype": "nvme", "treq": "not specified", "tsas": "{'sectype': 'none'}", "portid": "1", "cntlid": "65535", "asqsz": "32", "eflags": "4"}, {"trtype": "bogus"}]}]"#;

    #[test]
    fn upstream_document_parses_and_bad_entries_are_skipped() {
        let dcs = parse_all_log_pages(DOC).unwrap();
        assert_eq!(dcs.len(), 1);
        assert_eq!(dcs[0].host_iface, "eth0");
        assert_eq!(dcs[0].host_nqn, "nqn.h");
        assert_eq!(dcs[0].entries.len(), 1);
        assert_eq!(dcs[0].entries[0].subnqn, "nqn.1988-11.com.dell:sub");
        assert_eq!(dcs[0].entries[0].eflags.0, 4);
        assert!(dcs[0].complete);
        assert!(dcs[0]
            .dc
            .starts_with("(tcp, ::1, 8009, nqn.2014-08.org.nvmexpress.discovery"));
    }

    #[test]
    fn an_empty_page_of_a_dc_not_connected_or_still_reading_is_not_complete() {
        let dc = |extra: &str| {
            format!(
                r#"[{{"discovery-controller": {{"traddr": "1.1.1.1"{extra}}}, "log-pages": []}}]"#
            )
        };
        let complete = |extra: &str| parse_all_log_pages(&dc(extra)).unwrap()[0].complete;
        assert!(complete(""), "not detailed: taken as is");
        assert!(complete(r#", "connected": "True""#));
        assert!(!complete(r#", "connected": "False""#));
        assert!(!complete(
            r#", "connected": "True", "get log page operation": "{}""#
        ));
    }

    #[test]
    fn wrong_shapes_are_errors_naming_the_problem() {
        for (doc, needle) in [
            ("nope", "not JSON"),
            ("{}", "not a JSON array"),
            ("[{}]", "discovery-controller"),
            (r#"[{"discovery-controller": {}}]"#, "log-pages"),
        ] {
            let e = parse_all_log_pages(doc).unwrap_err().to_string();
            assert!(e.contains(needle), "{doc}: {e}");
        }
        assert_eq!(parse_all_log_pages("[]").unwrap(), vec![]);
    }
}
