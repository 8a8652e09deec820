//! The last-known configuration: what a daemon knew when it last ran (its
//! controllers, their origins, stafd's cached log pages), kept in the
//! runtime directory so a restart (upgrade, crash) neither disconnects nor
//! forgets (docs/behaviour.md §6.8).
//!
//! Format: an 8-byte magic, a format version, the name of the daemon that
//! wrote it, the payload length and an FNV-1a checksum, then the payload in
//! bincode 2.0 (this module is the only user of bincode). Writes are atomic
//! (a new temporary file under a random name that no planted link can
//! redirect, fsync, rename) with mode 0600, and only into a directory no
//! one else may write; reading refuses links, FIFOs, oversized files and
//! files others own or may write. A file that is missing is
//! "nothing known"; one that is corrupt, truncated, from another daemon or
//! another format version is an error the caller reports and ignores.

use std::path::{Path, PathBuf};

use thiserror::Error;

pub use bincode::{Decode, Encode};

/// First bytes of every last-known-configuration file.
pub const MAGIC: &[u8; 8] = b"STASLKC\0";
/// The payload format this build reads and writes.
pub const FORMAT_VERSION: u32 = 1;
/// File name inside the runtime directory.
pub const FILE_NAME: &str = "last-known-config.bin";
/// Largest payload accepted when reading (a corrupt length must not size an allocation).
pub const MAX_PAYLOAD: usize = 64 << 20;

/// Why the file could not be used.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum LkcError {
    /// The file is not ours to read (another format, daemon or version).
    #[error("last known config {}: {reason}; ignoring it", path.display())]
    Foreign {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The file, or the directory it lives in, is not one to trust (a
    /// link, a FIFO, too big, not private).
    #[error("last known config {}: {source}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// What was wrong with it or its directory.
        #[source]
        source: nvmf_kernel::files::FileError,
    },
    /// The file is damaged.
    #[error("last known config {}: corrupt ({reason}); ignoring it", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// A controller as remembered: its TID dict form, origin and (stafd) log pages.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct ControllerRecord {
    /// The TID's dict form (`transport`, `traddr`, ..., config overrides).
    pub tid: Vec<(String, String)>,
    /// stafd: `configured`, `discovered` or `referral`.
    pub origin: Option<String>,
    /// stafd: the cached discovery log entries, each as a DLPE dict.
    pub log_pages: Vec<Vec<(String, String)>>,
    /// The kernel device last bound (`nvme3`), a hint for adoption.
    pub device: Option<String>,
}

/// What a daemon remembers.
#[derive(Debug, Clone, PartialEq, Eq, Default, Encode, Decode)]
pub struct LastKnownConfig {
    /// The controllers.
    pub controllers: Vec<ControllerRecord>,
}

/// The file of one daemon.
#[derive(Debug, Clone)]
pub struct LkcFile {
    path: PathBuf,
    daemon: String,
}

fn fnv1a(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<MAX_PAYLOAD>()
}

impl LkcFile {
    /// The file of `daemon` at `path`.
    pub fn new(path: impl Into<PathBuf>, daemon: &str) -> Self {
        Self {
            path: path.into(),
            daemon: daemon.to_owned(),
        }
    }

    /// `$RUNTIME_DIRECTORY/last-known-config.bin` when systemd set it (the
    /// first directory if several), else `/run/<daemon>/last-known-config.bin`.
    pub fn default_path(daemon: &str, runtime_directory: Option<&str>) -> PathBuf {
        let dir = runtime_directory
            .and_then(|d| d.split(':').next())
            .filter(|d| !d.is_empty())
            .map_or_else(|| PathBuf::from("/run").join(daemon), PathBuf::from);
        dir.join(FILE_NAME)
    }

    /// The path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn file(&self, source: nvmf_kernel::files::FileError) -> LkcError {
        LkcError::File {
            path: self.path.clone(),
            source,
        }
    }

    /// Writes `value` atomically: a temporary file beside the target, fsync,
    /// rename over the target, fsync of the directory.
    pub fn save<T: Encode>(&self, value: &T) -> Result<(), LkcError> {
        let payload = bincode::encode_to_vec(value, config()).map_err(|e| LkcError::Corrupt {
            path: self.path.clone(),
            reason: format!("cannot encode: {e}"),
        })?;
        let name = self.daemon.as_bytes();
        let name_len = u8::try_from(name.len()).map_err(|_| LkcError::Foreign {
            path: self.path.clone(),
            reason: "daemon name longer than 255 bytes".into(),
        })?;
        let mut data = Vec::with_capacity(payload.len().saturating_add(64));
        data.extend_from_slice(MAGIC);
        data.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        data.push(name_len);
        data.extend_from_slice(name);
        data.extend_from_slice(
            &u64::try_from(payload.len())
                .unwrap_or(u64::MAX)
                .to_le_bytes(),
        );
        data.extend_from_slice(&fnv1a(&payload).to_le_bytes());
        data.extend_from_slice(&payload);

        nvmf_kernel::files::write_private(&self.path, &data).map_err(|e| self.file(e))
    }

    /// Removes the temporary files of writes a crash interrupted; how many.
    pub fn remove_stale_temps(&self) -> usize {
        nvmf_kernel::files::remove_stale_temps(&self.path)
    }

    /// Reads the file. `Ok(None)` when it does not exist. Refused unless it
    /// is a regular file (not a link, not a FIFO) of bounded size, owned by
    /// this daemon's user and writable by nobody else: it may hold secrets
    /// and decides what gets connected.
    pub fn load<T: Decode<()>>(&self) -> Result<Option<T>, LkcError> {
        let max = MAX_PAYLOAD as u64 + 1024;
        let read = nvmf_kernel::files::read_private(&self.path, max);
        let Some(data) = read.map_err(|e| self.file(e))? else {
            return Ok(None);
        };
        let corrupt = |reason: &str| LkcError::Corrupt {
            path: self.path.clone(),
            reason: reason.to_owned(),
        };
        let foreign = |reason: String| LkcError::Foreign {
            path: self.path.clone(),
            reason,
        };
        if data.get(..8) != Some(MAGIC.as_slice()) {
            return Err(foreign(
                "not a stas last-known-config file (an nvme-stas pickle?)".into(),
            ));
        }
        let version = data
            .get(8..12)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_le_bytes)
            .ok_or_else(|| corrupt("truncated header"))?;
        if version != FORMAT_VERSION {
            return Err(foreign(format!(
                "format version {version}, this build reads {FORMAT_VERSION}"
            )));
        }
        let name_len = usize::from(*data.get(12).ok_or_else(|| corrupt("truncated header"))?);
        let name_end = 13usize.saturating_add(name_len);
        let name = data
            .get(13..name_end)
            .ok_or_else(|| corrupt("truncated header"))?;
        if name != self.daemon.as_bytes() {
            return Err(foreign(format!(
                "written by {}, not {}",
                String::from_utf8_lossy(name),
                self.daemon
            )));
        }
        let field = |at: usize| -> Option<u64> {
            data.get(at..at.checked_add(8)?)
                .and_then(|b| b.try_into().ok())
                .map(u64::from_le_bytes)
        };
        let len = field(name_end).ok_or_else(|| corrupt("truncated header"))?;
        let sum = field(name_end.saturating_add(8)).ok_or_else(|| corrupt("truncated header"))?;
        let start = name_end.saturating_add(16);
        let payload = data.get(start..).unwrap_or_default();
        if usize::try_from(len).ok() != Some(payload.len()) {
            return Err(corrupt(&format!(
                "payload is {} bytes, header says {len}",
                payload.len()
            )));
        }
        if fnv1a(payload) != sum {
            return Err(corrupt("checksum mismatch"));
        }
        let (value, used) = bincode::decode_from_slice(payload, config())
            .map_err(|e| corrupt(&format!("cannot decode: {e}")))?;
        if used != payload.len() {
            return Err(corrupt("trailing bytes after the payload"));
        }
        Ok(Some(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("stas-lkc-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn sample() -> LastKnownConfig {
        LastKnownConfig {
            controllers: vec![ControllerRecord {
                tid: vec![
                    ("transport".into(), "tcp".into()),
                    ("traddr".into(), "10.0.0.1".into()),
                ],
                origin: Some("configured".into()),
                log_pages: vec![vec![
                    ("subtype".into(), "nvme".into()),
                    ("traddr".into(), "10.0.0.2".into()),
                ]],
                device: Some("nvme0".into()),
            }],
        }
    }

    #[test]
    fn round_trip_with_mode_0600() {
        let d = dir("rt");
        let f = LkcFile::new(d.join(FILE_NAME), "stafd");
        assert_eq!(
            f.load::<LastKnownConfig>().unwrap(),
            None,
            "missing is nothing known"
        );
        f.save(&sample()).unwrap();
        assert_eq!(f.load::<LastKnownConfig>().unwrap(), Some(sample()));
        let mode = std::fs::metadata(f.path()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        f.save(&LastKnownConfig::default()).unwrap();
        assert_eq!(
            f.load::<LastKnownConfig>().unwrap(),
            Some(LastKnownConfig::default())
        );
        let leftovers: Vec<_> = std::fs::read_dir(&d)
            .unwrap()
            .filter_map(Result::ok)
            .collect();
        assert_eq!(leftovers.len(), 1, "no temporary file left behind");
        std::fs::remove_dir_all(&d).ok();
    }

    #[test]
    fn corrupt_truncated_and_foreign_files_are_reported() {
        let d = dir("bad");
        let path = d.join(FILE_NAME);
        let f = LkcFile::new(&path, "stafd");
        f.save(&sample()).unwrap();
        let good = std::fs::read(&path).unwrap();

        for cut in [0usize, 5, 12, 20, good.len() - 1] {
            std::fs::write(&path, &good[..cut]).unwrap();
            let e = f.load::<LastKnownConfig>().unwrap_err();
            assert!(
                matches!(e, LkcError::Corrupt { .. } | LkcError::Foreign { .. }),
                "cut {cut}: {e}"
            );
        }
        let mut flipped = good.clone();
        *flipped.last_mut().unwrap() ^= 0xff;
        std::fs::write(&path, &flipped).unwrap();
        assert!(f
            .load::<LastKnownConfig>()
            .unwrap_err()
            .to_string()
            .contains("checksum"));

        std::fs::write(&path, b"\x80\x04\x95pickle").unwrap();
        assert!(f
            .load::<LastKnownConfig>()
            .unwrap_err()
            .to_string()
            .contains("pickle"));

        std::fs::write(&path, &good).unwrap();
        let e = LkcFile::new(&path, "stacd")
            .load::<LastKnownConfig>()
            .unwrap_err();
        assert!(e.to_string().contains("written by stafd, not stacd"), "{e}");

        let mut newer = good;
        newer[8] = 9;
        std::fs::write(&path, &newer).unwrap();
        assert!(f
            .load::<LastKnownConfig>()
            .unwrap_err()
            .to_string()
            .contains("format version 9"));
        std::fs::remove_dir_all(&d).ok();
    }

    #[test]
    fn missing_directory_is_an_io_error_naming_the_file() {
        let f = LkcFile::new("/nonexistent-stas-dir/x.bin", "stafd");
        let e = f.save(&sample()).unwrap_err();
        assert!(e.to_string().contains("/nonexistent-stas-dir/x.bin"), "{e}");
    }

    #[test]
    fn default_path_follows_runtime_directory() {
        assert_eq!(
            LkcFile::default_path("stafd", None),
            PathBuf::from("/run/stafd/last-known-config.bin")
        );
        assert_eq!(
            LkcFile::default_path("stafd", Some("/run/stafd:/run/other")),
            PathBuf::from("/run/stafd/last-known-config.bin")
        );
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            let d = std::env::temp_dir().join(format!("stas-lkc-prop-{}", std::process::id()));
            std::fs::create_dir_all(&d).unwrap();
            let path = d.join("x.bin");
            let mut with_header = MAGIC.to_vec();
            with_header.extend_from_slice(&data);
            for bytes in [&data, &with_header] {
                std::fs::write(&path, bytes).unwrap();
                let _ = LkcFile::new(&path, "stafd").load::<LastKnownConfig>();
            }
        }
    }
}
