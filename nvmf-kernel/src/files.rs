//! Files a daemon reads and writes, taken as untrusted: what it reads must
//! be a regular file of bounded size (a FIFO must not hang start-up, a
//! symlink to /dev/zero must not fill memory), and what it writes goes
//! through a fresh temporary file that no planted symlink can redirect,
//! in a directory nobody else can write to.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::libc;

/// Why a file was not read or written.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// The operating system refused.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not one to trust.
    #[error("{}: {reason}", path.display())]
    Refused {
        /// The file.
        path: PathBuf,
        /// What is wrong with it and what to do.
        reason: String,
    },
}

/// Whether a symbolic link at the path itself is acceptable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Links {
    /// Follow it (configuration an admin may keep elsewhere).
    Follow,
    /// Refuse it (the daemon's own state files).
    Refuse,
}

fn refused(path: &Path, reason: impl Into<String>) -> FileError {
    FileError::Refused {
        path: path.to_owned(),
        reason: reason.into(),
    }
}

fn kind_of(meta: &std::fs::Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let t = meta.file_type();
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    }
}

/// Reads `path` whole, if it is a regular file of at most `max` bytes.
/// `Ok(None)` when nothing is there; a dangling symlink is an error, not
/// "nothing". Never blocks on a FIFO.
pub fn read_bounded(path: &Path, max: u64, links: Links) -> Result<Option<Vec<u8>>, FileError> {
    let mut flags = libc::O_NONBLOCK | libc::O_CLOEXEC;
    if links == Links::Refuse {
        flags |= libc::O_NOFOLLOW;
    }
    let file = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(flags)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            return match std::fs::symlink_metadata(path) {
                Ok(_) => Err(refused(
                    path,
                    "is a symbolic link to nothing; fix or remove the link",
                )),
                Err(_) => Ok(None),
            };
        }
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(refused(
                path,
                "is a symbolic link, refused for this file; remove it",
            ));
        }
        Err(source) => {
            return Err(FileError::Io {
                op: "open",
                path: path.to_owned(),
                source,
            })
        }
    };
    let io = |op, source| FileError::Io {
        op,
        path: path.to_owned(),
        source,
    };
    let meta = file.metadata().map_err(|e| io("stat", e))?;
    if !meta.is_file() {
        return Err(refused(
            path,
            format!("is {}, not a regular file", kind_of(&meta)),
        ));
    }
    if meta.len() > max {
        return Err(refused(
            path,
            format!("is {} bytes, more than the {max} allowed", meta.len()),
        ));
    }
    let mut data = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.take(max.saturating_add(1))
        .read_to_end(&mut data)
        .map_err(|e| io("read", e))?;
    if data.len() as u64 > max {
        return Err(refused(path, format!("grew past the {max} bytes allowed")));
    }
    Ok(Some(data))
}

/// Whether `meta` belongs to this process's user and nobody else may
/// write it; the reason if not.
pub fn private_problem(meta: &std::fs::Metadata) -> Option<String> {
    let me = nix::unistd::geteuid().as_raw();
    if meta.uid() != me {
        return Some(format!("is owned by uid {}, not by uid {me}", meta.uid()));
    }
    if meta.mode() & 0o022 != 0 {
        return Some(format!(
            "is writable by group or others (mode {:o})",
            meta.mode() & 0o7777
        ));
    }
    None
}

/// Reads a state file of this daemon: [`read_bounded`] without following
/// links, and only if it is private ([`private_problem`]).
pub fn read_private(path: &Path, max: u64) -> Result<Option<Vec<u8>>, FileError> {
    let Some(data) = read_bounded(path, max, Links::Refuse)? else {
        return Ok(None);
    };
    let meta = std::fs::symlink_metadata(path).map_err(|source| FileError::Io {
        op: "stat",
        path: path.to_owned(),
        source,
    })?;
    if let Some(p) = private_problem(&meta) {
        return Err(refused(path, format!("{p}; not trusted")));
    }
    Ok(Some(data))
}

/// The directory of `path`, if it is a real directory (not a link) that
/// only this process's user may write.
fn private_dir(path: &Path) -> Result<&Path, FileError> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or_else(|| Path::new("."));
    let meta = std::fs::symlink_metadata(dir).map_err(|source| FileError::Io {
        op: "stat",
        path: dir.to_owned(),
        source,
    })?;
    if !meta.is_dir() {
        return Err(refused(
            dir,
            "is not a directory (a symbolic link?); refusing to keep state there",
        ));
    }
    if let Some(p) = private_problem(&meta) {
        return Err(refused(dir, format!("{p}; refusing to keep state there")));
    }
    Ok(dir)
}

/// The prefix of the temporary files [`write_private`] makes for `path`.
fn temp_prefix(path: &Path) -> String {
    format!(
        ".{}.",
        path.file_name()
            .map_or_else(|| "state".into(), |n| n.to_string_lossy())
    )
}

/// Writes `data` to `path` atomically and privately: a new temporary file
/// under a random name (O_CREAT|O_EXCL|O_NOFOLLOW, mode 0600) in the same
/// private directory, fsync, rename over `path`, fsync of the directory.
pub fn write_private(path: &Path, data: &[u8]) -> Result<(), FileError> {
    let dir = private_dir(path)?;
    let random = RandomState::new().build_hasher().finish();
    let tmp = dir.join(format!("{}{random:016x}.tmp", temp_prefix(path)));
    let io = |op, source| FileError::Io {
        op,
        path: tmp.clone(),
        source,
    };
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&tmp)
        .map_err(|e| io("create", e))?;
    let written = f
        .write_all(data)
        .and_then(|()| f.sync_all())
        .map_err(|e| io("write", e))
        .and_then(|()| {
            std::fs::rename(&tmp, path).map_err(|source| FileError::Io {
                op: "rename into",
                path: path.to_owned(),
                source,
            })
        });
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written?;
    // The rename is durable once the directory is.
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| FileError::Io {
            op: "sync",
            path: dir.to_owned(),
            source,
        })
}

/// Removes the temporary files that writes of `path` left behind when the
/// process died mid-write; how many.
pub fn remove_stale_temps(path: &Path) -> usize {
    let Ok(dir) = private_dir(path) else { return 0 };
    let prefix = temp_prefix(path);
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    rd.filter_map(Result::ok)
        .filter(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            // Also the `.NAME.tmpPID` files of earlier versions.
            n.starts_with(&prefix) && n.contains(".tmp")
        })
        .filter(|e| std::fs::remove_file(e.path()).is_ok())
        .count()
}

#[cfg(test)]
mod tests;
