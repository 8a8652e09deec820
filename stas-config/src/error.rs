//! Why a configuration file could not be loaded at all; its own module so
//! that the INI reader and the option layer both use it without depending
//! on each other.

/// Why a configuration could not be loaded at all.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file exists but cannot be read.
    #[error("cannot read {file}: {source}")]
    Io {
        /// Path of the file.
        file: String,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// The file is not one to read: not a regular file (a FIFO, a device),
    /// a dangling link, or larger than [`MAX_CONFIG_BYTES`](crate::MAX_CONFIG_BYTES).
    #[error("cannot read {file}: {reason}")]
    Refused {
        /// Path of the file.
        file: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The file is not in the INI dialect (or not UTF-8 text).
    #[error("{file}:{line}: {message}")]
    Syntax {
        /// Path of the file (or the origin given to the parser).
        file: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong and what is expected.
        message: String,
    },
    /// sys.conf: the host identity is unusable (upstream exits).
    #[error("{file}{}: [Host] {option}: {message}", at_line(*.line))]
    Host {
        /// Path of sys.conf.
        file: String,
        /// Line of the option when it is set in the file.
        line: Option<usize>,
        /// `nqn` or `id`.
        option: String,
        /// What is wrong and what is expected.
        message: String,
    },
}

/// `:<line>` or nothing.
pub(crate) fn at_line(line: Option<usize>) -> String {
    line.map(|l| format!(":{l}")).unwrap_or_default()
}
