//! Text tables for people and ordered JSON objects for scripts.

use serde::ser::{Serialize, SerializeMap, Serializer};

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
