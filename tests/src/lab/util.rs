//! Small helpers: base64, file names, atomic writes, temporary directories.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use super::error::io_err;
use super::LabError;

pub(super) fn base64_decode(text: &str) -> Option<Vec<u8>> {
    fn value(c: u8) -> Option<u32> {
        match c {
            b'A'..=b'Z' => Some(u32::from(c - b'A')),
            b'a'..=b'z' => Some(u32::from(c - b'a') + 26),
            b'0'..=b'9' => Some(u32::from(c - b'0') + 52),
            b'+' => Some(62),
            b'/' => Some(63),
            _ => None,
        }
    }
    let clean: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    if clean.len() % 4 != 0 {
        return None;
    }
    let mut out = Vec::with_capacity(clean.len() / 4 * 3);
    let quads = clean.chunks(4).count();
    for (i, q) in clean.chunks(4).enumerate() {
        let pad = q.iter().rev().take_while(|b| **b == b'=').count();
        if pad > 2 || (pad > 0 && i + 1 != quads) {
            return None;
        }
        let mut acc: u32 = 0;
        for b in q.get(..4 - pad)? {
            acc = (acc << 6) | value(*b)?;
        }
        acc <<= 6 * u32::try_from(pad).ok()?;
        let bytes = acc.to_be_bytes();
        out.extend_from_slice(bytes.get(1..4 - pad)?);
    }
    Some(out)
}

/// A file-name-safe version of a guest name.
pub(super) fn sanitize(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() || s.starts_with('.') {
        format!("guest{s}")
    } else {
        s
    }
}

pub(super) fn unique_suffix() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!(
        "{}.{}.{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

pub(super) fn write_atomically(path: &Path, data: &[u8]) -> Result<(), LabError> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(io_err(format!("creating {}", dir.display())))?;
    }
    let tmp = PathBuf::from(format!("{}.tmp.{}", path.display(), unique_suffix()));
    fs::write(&tmp, data).map_err(io_err(format!("writing {}", tmp.display())))?;
    fs::rename(&tmp, path).map_err(|e| {
        let _ = fs::remove_file(&tmp);
        LabError::Io {
            what: format!("renaming {} to {}", tmp.display(), path.display()),
            source: e,
        }
    })
}

pub(super) struct RemoveOnDrop(pub(super) PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A private directory for one run, removed when dropped.
pub(super) struct TempDir(RemoveOnDrop);

impl TempDir {
    pub(super) fn new(name: &str) -> Result<TempDir, LabError> {
        let dir =
            std::env::temp_dir().join(format!("stas-lab.{}.{}", sanitize(name), unique_suffix()));
        fs::create_dir_all(&dir).map_err(io_err(format!("creating {}", dir.display())))?;
        Ok(TempDir(RemoveOnDrop(dir)))
    }

    pub(super) fn path(&self) -> &Path {
        &self.0 .0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips_known_vectors() {
        for (plain, enc) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
        ] {
            assert_eq!(
                base64_decode(enc).as_deref(),
                Some(plain.as_bytes()),
                "{enc}"
            );
        }
        assert_eq!(base64_decode("AAEC/w==\n"), Some(vec![0, 1, 2, 255]));
        assert_eq!(base64_decode("Zg=a"), None);
        assert_eq!(base64_decode("Zg="), None);
        assert_eq!(base64_decode("Zg==Zg=="), None);
    }
}
