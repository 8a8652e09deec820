//! The last-known configuration: what a daemon knew when it last ran (its
//! controllers, their origins, stafd's cached log pages), kept in the
//! runtime directory so a restart (upgrade, crash) neither disconnects nor
//! forgets (docs/behaviour.md §6.8).
//!
//! Format: a header, then the payload in bincode 2.0 (standard
//! configuration: variable-length integers; this module is the only user
//! of bincode). The header, all integers little-endian:
//!
//! | bytes | field |
//! |---|---|
//! | 8 | magic `STASLKC\0` |
//! | 4 | format version ([`FORMAT_VERSION`]) |
//! | 1 + n | length and name of the daemon that wrote it (`stafd`, `stacd`) |
//! | 8 | payload length |
//! | 8 | FNV-1a 64 checksum of the payload |
//!
//! The payload of version 2 is a [`LastKnownConfig`]: per controller its
//! TID dict, origin, cached discovery log page and last kernel device. The
//! log page is a byte string of 1024-byte discovery log page entry records
//! exactly as a discovery controller sends them (without the page header),
//! emitted and parsed by `nvmf_proto::dlp` ([`WireLogPage`]). Version 1 kept
//! each entry as nvme-stas's DLPE string dict instead; [`LkcFile::load_config`]
//! still reads it (once, after an upgrade) and converts it, and the next save
//! writes version 2.
//!
//! Writes are atomic (a new temporary file under a random name that no
//! planted link can redirect, fsync, rename) with mode 0600, only into a
//! directory no one else may write, and never larger than a read accepts
//! ([`MAX_PAYLOAD`]); reading refuses links, FIFOs, oversized files and
//! files others own or may write. A file that is missing is "nothing
//! known"; one that is corrupt, truncated, from another daemon or in a
//! format version this build does not read is an error the caller reports
//! and ignores.

use std::path::{Path, PathBuf};

use thiserror::Error;

pub use bincode::{Decode, Encode};
pub use record::{ControllerRecord, LastKnownConfig, WireLogPage};

mod record;
mod v1;

/// First bytes of every last-known-configuration file.
pub const MAGIC: &[u8; 8] = b"STASLKC\0";
/// The payload format this build writes (and reads).
pub const FORMAT_VERSION: u32 = 2;
/// The older payload format [`LkcFile::load_config`] still reads.
pub const FORMAT_VERSION_1: u32 = 1;
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
    /// What there is to save is larger than a load accepts; the file is
    /// left as it was.
    #[error(
        "last known config {}: {size} bytes to save, more than the {MAX_PAYLOAD} a restart \
         would read; not saved (fewer discovery controllers or log entries fit)",
        path.display()
    )]
    TooBig {
        /// The file.
        path: PathBuf,
        /// The payload size.
        size: usize,
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

    /// Writes `value` in format version [`FORMAT_VERSION`] atomically: a
    /// temporary file beside the target, fsync, rename over the target,
    /// fsync of the directory.
    pub fn save<T: Encode>(&self, value: &T) -> Result<(), LkcError> {
        let payload = bincode::encode_to_vec(value, config()).map_err(|e| LkcError::Corrupt {
            path: self.path.clone(),
            reason: format!("cannot encode: {e}"),
        })?;
        // Log entries are 1 KiB each on disk: refuse to write what the next
        // start would refuse to read.
        if payload.len() > MAX_PAYLOAD {
            return Err(LkcError::TooBig {
                path: self.path.clone(),
                size: payload.len(),
            });
        }
        let data = self.frame(FORMAT_VERSION, &payload)?;
        nvmf_kernel::files::write_private(&self.path, &data).map_err(|e| self.file(e))
    }

    /// The header for `payload` in format `version`, then the payload.
    fn frame(&self, version: u32, payload: &[u8]) -> Result<Vec<u8>, LkcError> {
        let name = self.daemon.as_bytes();
        let name_len = u8::try_from(name.len()).map_err(|_| LkcError::Foreign {
            path: self.path.clone(),
            reason: "daemon name longer than 255 bytes".into(),
        })?;
        let mut data = Vec::with_capacity(payload.len().saturating_add(64));
        data.extend_from_slice(MAGIC);
        data.extend_from_slice(&version.to_le_bytes());
        data.push(name_len);
        data.extend_from_slice(name);
        data.extend_from_slice(
            &u64::try_from(payload.len())
                .unwrap_or(u64::MAX)
                .to_le_bytes(),
        );
        data.extend_from_slice(&fnv1a(payload).to_le_bytes());
        data.extend_from_slice(payload);
        Ok(data)
    }

    /// Removes the temporary files of writes a crash interrupted; how many.
    pub fn remove_stale_temps(&self) -> usize {
        nvmf_kernel::files::remove_stale_temps(&self.path)
    }

    /// Reads a file in format version [`FORMAT_VERSION`] holding a `T`.
    /// `Ok(None)` when it does not exist. The daemons' own file is read with
    /// [`Self::load_config`], which also reads older versions.
    pub fn load<T: Decode<()>>(&self) -> Result<Option<T>, LkcError> {
        let Some(frame) = self.read_frame(&[FORMAT_VERSION])? else {
            return Ok(None);
        };
        self.decode(frame.payload()).map(Some)
    }

    /// Reads the daemon's last-known configuration, in format version 2, or
    /// 1 (each DLPE dict converted to its wire record, a dict that does not
    /// describe an entry dropped). `Ok(None)` when the file does not exist.
    pub fn load_config(&self) -> Result<Option<LastKnownConfig>, LkcError> {
        let Some(frame) = self.read_frame(&[FORMAT_VERSION, FORMAT_VERSION_1])? else {
            return Ok(None);
        };
        if frame.version == FORMAT_VERSION_1 {
            let old: v1::LastKnownConfigV1 = self.decode(frame.payload())?;
            log::info!(
                "Read {} in format version {FORMAT_VERSION_1}; the next save writes version {FORMAT_VERSION}",
                self.path.display()
            );
            return Ok(Some(old.into()));
        }
        self.decode(frame.payload()).map(Some)
    }

    /// What a daemon restores at start: removes the temporary files of
    /// interrupted writes, then reads the file. A missing file is `None`;
    /// an unusable one is logged (and ignored) and `None`.
    pub fn load_at_start(&self) -> Option<LastKnownConfig> {
        let stale = self.remove_stale_temps();
        if stale > 0 {
            log::info!(
                "Removed {stale} temporary files of interrupted writes beside {}",
                self.path.display()
            );
        }
        self.load_config().unwrap_or_else(|e| {
            log::warn!("{e}");
            None
        })
    }

    fn decode<T: Decode<()>>(&self, payload: &[u8]) -> Result<T, LkcError> {
        let corrupt = |reason: String| LkcError::Corrupt {
            path: self.path.clone(),
            reason,
        };
        let (value, used) = bincode::decode_from_slice(payload, config())
            .map_err(|e| corrupt(format!("cannot decode: {e}")))?;
        if used != payload.len() {
            return Err(corrupt("trailing bytes after the payload".into()));
        }
        Ok(value)
    }

    /// Reads the file and checks its header (one of the `readable` format
    /// versions, this daemon's name, length, checksum). `Ok(None)` when it
    /// does not exist. Refused unless it is a regular file (not a link, not
    /// a FIFO) of bounded size, owned by this daemon's user and writable by
    /// nobody else: it may hold secrets and decides what gets connected.
    fn read_frame(&self, readable: &[u32]) -> Result<Option<Frame>, LkcError> {
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
        if !readable.contains(&version) {
            let known: Vec<String> = readable.iter().map(u32::to_string).collect();
            return Err(foreign(format!(
                "format version {version}, this build reads {}",
                known.join(" and ")
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
        Ok(Some(Frame {
            version,
            data,
            start,
        }))
    }
}

/// A file whose header checked out.
struct Frame {
    /// Its format version.
    version: u32,
    /// The whole file.
    data: Vec<u8>,
    /// Where the payload starts.
    start: usize,
}

impl Frame {
    fn payload(&self) -> &[u8] {
        self.data.get(self.start..).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests;
