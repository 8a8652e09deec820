//! [`LabError`]: why the lab could not do what was asked.

use std::io;
use std::path::PathBuf;

/// Why the lab could not do what was asked. The messages say what to install or
/// where to look.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// A host program the lab needs is not installed.
    #[error("{tool} not found: {hint}")]
    MissingTool {
        /// The program looked for.
        tool: String,
        /// What to do about it.
        hint: String,
    },
    /// The kernel package could not be resolved, fetched or used.
    #[error("lab kernel: {0}")]
    Kernel(String),
    /// A kernel module was asked for that the lab kernel does not have.
    #[error("kernel module {name}: {reason}")]
    Module {
        /// The module name as asked.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// A file operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done, with the path.
        what: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A host command failed.
    #[error("`{command}` failed ({status}){}", tail_for_message(.output))]
    Command {
        /// The command line.
        command: String,
        /// How it ended.
        status: String,
        /// The end of what it printed.
        output: String,
    },
    /// The guest definition is unusable.
    #[error("guest {guest}: {reason}")]
    Guest {
        /// The guest's name.
        guest: String,
        /// What is wrong.
        reason: String,
    },
    /// The guest never got to run its scenario.
    #[error("guest {guest}: {reason} (console log: {})", .log.display())]
    Boot {
        /// The guest's name.
        guest: String,
        /// What happened.
        reason: String,
        /// The raw console log of the run.
        log: PathBuf,
    },
    /// A file is not the ELF executable it should be.
    #[error("{}: {reason}", .path.display())]
    Elf {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

fn tail_for_message(output: &str) -> String {
    let t = output.trim();
    if t.is_empty() {
        String::new()
    } else {
        format!(":\n{t}")
    }
}

pub(super) fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> LabError {
    let what = what.into();
    move |source| LabError::Io { what, source }
}
