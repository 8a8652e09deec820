//! Text tables for people and ordered JSON objects for scripts.

use nvmf_proto::dlp::{DiscoveryLogEntry, DiscoveryLogPage};
use serde::ser::{Serialize, SerializeMap, Serializer};

/// Exit status when output was printed but some input was bad or missing
/// (2 is clap's usage error).
pub const EXIT_PARTIAL: u8 = 3;

/// A JSON object whose keys keep the order they were given in (nvme-stas's
/// dict shapes are ordered, and scripts diff them).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OrderedObject(pub Vec<(String, String)>);

impl OrderedObject {
    /// From `(key, value)` pairs.
    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Self(
            pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }
}

impl Serialize for OrderedObject {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

/// Renders rows under a header with columns padded to their widest cell.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut out = String::new();
        for (i, (cell, w)) in cells.zip(&widths).enumerate() {
            if i > 0 {
                out.push_str("  ");
            }
            out.push_str(cell);
            if i + 1 < widths.len() {
                out.extend(std::iter::repeat_n(
                    ' ',
                    w.saturating_sub(cell.chars().count()),
                ));
            }
        }
        out.truncate(out.trim_end().len());
        out.push('\n');
        out
    };
    let mut out = line(&mut header.iter().copied());
    for row in rows {
        out.push_str(&line(&mut row.iter().map(String::as_str)));
    }
    out
}

/// Spelling of discovery log values in tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spelling {
    /// As nvme-stas puts them on D-Bus (`nvme`).
    Stas,
    /// As nvme-cli prints them (`nvme subsystem`).
    Cli,
}

fn dlpe_row(index: usize, e: &DiscoveryLogEntry, spelling: Spelling) -> Vec<String> {
    let (trtype, adrfam, subtype, treq, eflags) = match spelling {
        Spelling::Cli => (
            e.trtype.cli_str().to_owned(),
            e.adrfam.cli_str().to_owned(),
            e.subtype.cli_str().to_owned(),
            e.treq.cli_str(),
            e.eflags.cli_str(),
        ),
        Spelling::Stas => (
            e.trtype.stas_str().into_owned(),
            e.adrfam.stas_str().into_owned(),
            e.subtype.stas_str().into_owned(),
            e.treq.stas_str().into_owned(),
            e.eflags.stas_str(),
        ),
    };
    vec![
        index.to_string(),
        trtype,
        adrfam,
        subtype,
        e.traddr.clone(),
        e.trsvcid.clone(),
        e.portid.to_string(),
        e.subnqn.clone(),
        treq,
        eflags,
    ]
}

/// The decodable entries of a page as a table.
pub fn dlp_table(page: &DiscoveryLogPage, spelling: Spelling) -> String {
    let rows: Vec<Vec<String>> = page
        .entries
        .iter()
        .enumerate()
        .filter_map(|(i, e)| e.as_ref().ok().map(|e| dlpe_row(i, e, spelling)))
        .collect();
    table(
        &[
            "#", "trtype", "adrfam", "subtype", "traddr", "trsvcid", "portid", "subnqn", "treq",
            "eflags",
        ],
        &rows,
    )
}

/// The decodable entries as a pretty JSON array of nvme-stas DLPE dicts.
pub fn dlp_json(page: &DiscoveryLogPage) -> Result<String, serde_json::Error> {
    let dicts: Vec<OrderedObject> = page
        .valid_entries()
        .map(|e| OrderedObject::from_pairs(e.stas_dict()))
        .collect();
    serde_json::to_string_pretty(&dicts)
}

/// Reports bad and missing entries on stderr, prefixed by `who`; returns
/// whether there were any.
pub fn report_page_problems(who: &str, page: &DiscoveryLogPage) -> bool {
    let mut any = false;
    for err in page.entry_errors() {
        eprintln!("{who}: {err}; entry skipped");
        any = true;
    }
    if let Err(e) = page.check_complete() {
        eprintln!("{who}: page truncated: {e}");
        any = true;
    }
    any
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordered_object_keeps_key_order() {
        let o = OrderedObject::from_pairs([("z", "1"), ("a", "2")]);
        assert_eq!(serde_json::to_string(&o).unwrap(), r#"{"z":"1","a":"2"}"#);
    }

    #[test]
    fn table_pads_columns() {
        let t = table(
            &["a", "bb"],
            &[
                vec!["xxx".into(), "y".into()],
                vec!["".into(), "zzzz".into()],
            ],
        );
        assert_eq!(t, "a    bb\nxxx  y\n     zzzz\n");
    }
}
