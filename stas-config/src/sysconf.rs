//! sys.conf: the host identity (NQN, ID, symbolic name) and where each
//! value came from.

use super::*;

// ---------------------------------------------------------------------------
// sys.conf (docs/behaviour.md §3.7)

/// The host identity from sys.conf, `file://` references resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SysConf {
    /// Host NQN (starts with `nqn.`, at most 223 characters).
    pub hostnqn: String,
    /// Host ID (not checked; may be empty, with a diagnostic).
    pub hostid: String,
    /// DH-HMAC-CHAP host secret.
    pub hostkey: Option<String>,
    /// Host symbolic name (for DIM registration).
    pub symname: Option<String>,
}

/// Maximum host NQN length (NVMe: 223 bytes; upstream counts characters).
pub(crate) const MAX_NQN_LEN: usize = 223;

/// The effective sys.conf, host key redacted.
impl fmt::Display for SysConf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "[Host]")?;
        writeln!(f, "nqn = {}", self.hostnqn)?;
        writeln!(f, "id = {}", self.hostid)?;
        match &self.hostkey {
            Some(_) => writeln!(f, "key = <redacted>")?,
            None => writeln!(f, "# key = (none)")?,
        }
        match &self.symname {
            Some(s) => writeln!(f, "symname = {s}"),
            None => writeln!(f, "# symname = (none)"),
        }
    }
}

/// Where a sys.conf value came from.
pub(crate) struct Raw {
    text: String,
    /// Line in sys.conf; `None` for the built-in default.
    line: Option<usize>,
}

/// How reading a `file://` target went.
pub(crate) enum FileValue {
    /// First whitespace-separated token of the first line, if any.
    Value(Option<String>),
    /// The file does not exist.
    Missing(String),
}

/// Why the file a `file://` value names could not be read; the
/// [`ConfigError::Host`] and diagnostic messages quote it.
#[derive(Debug, thiserror::Error)]
pub(crate) enum HostFileError {
    /// Not readable, or not a file to read (the reason says what to do).
    #[error("cannot read {0}")]
    Read(#[source] nvmf_kernel::files::FileError),
    /// Its first line is not UTF-8.
    #[error("cannot read {path}: not valid UTF-8 text")]
    NotUtf8 {
        /// The file.
        path: String,
    },
}

/// Resolves `file://` indirection: the first whitespace-separated token of
/// the first line of the file (`None` when there is none).
pub(crate) fn resolve(text: &str) -> Result<FileValue, HostFileError> {
    let Some(path) = text.strip_prefix("file://") else {
        return Ok(FileValue::Value(Some(text.to_owned())));
    };
    match nvmf_kernel::files::read_bounded(
        Path::new(path),
        MAX_KEY_FILE_BYTES,
        nvmf_kernel::files::Links::Follow,
    ) {
        Ok(None) => Ok(FileValue::Missing(format!("{path}: no such file"))),
        Ok(Some(bytes)) => {
            let first = bytes
                .split(|&b| b == b'\n' || b == b'\r')
                .next()
                .unwrap_or_default();
            let first = std::str::from_utf8(first).map_err(|_| HostFileError::NotUtf8 {
                path: path.to_owned(),
            })?;
            Ok(FileValue::Value(
                first.split_whitespace().next().map(str::to_owned),
            ))
        }
        Err(e) => Err(HostFileError::Read(e)),
    }
}

/// The largest file a `file://` value may name (a host NQN, ID or key).
pub(crate) const MAX_KEY_FILE_BYTES: u64 = 64 << 10;

/// Parses sys.conf text; `origin` names the file; `etc_nvme` is the
/// directory holding the default `hostnqn`, `hostid` and `hostkey` files.
pub fn parse_sysconf(
    text: &str,
    origin: &str,
    etc_nvme: &Path,
) -> Result<(SysConf, Vec<Diagnostic>), ConfigError> {
    let ini = Ini::parse(text, origin)?;
    let mut r = Reader::new(&ini, origin);
    // Upstream does not check sys.conf names; reporting them catches typos
    // such as "hostnqn=" that would silently fall back to /etc/nvme.
    r.check_names(FileKind::SysConf);
    for d in &mut r.diags {
        d.severity = Severity::Warning;
    }
    let default_file = |name: &str| -> PathBuf { etc_nvme.join(name) };
    let host_err = |option: &str, line: Option<usize>, message: String| ConfigError::Host {
        file: origin.to_owned(),
        line,
        option: option.to_owned(),
        message,
    };

    let nqn = raw(&mut r, "nqn", Some(default_file("hostnqn")));
    let id = raw(&mut r, "id", Some(default_file("hostid")));
    let key = raw(&mut r, "key", Some(default_file("hostkey")));
    let symname = raw(&mut r, "symname", None);

    // nqn: mandatory.
    let Some(nqn) = nqn else {
        return Err(host_err(
            "nqn",
            None,
            "internal error: no default".to_owned(),
        ));
    };
    let hostnqn = match resolve(&nqn.text).map_err(|e| {
        host_err(
            "nqn",
            nqn.line,
            format!("Error reading mandatory Host NQN (see stasadm --help): {e}"),
        )
    })? {
        FileValue::Value(Some(v)) if !v.is_empty() => v,
        FileValue::Value(_) => {
            return Err(host_err(
                "nqn",
                nqn.line,
                format!(
                    "Host NQN is empty ({}); expected a value starting with \"nqn.\" \
                     (see stasadm --help)",
                    source_of(&nqn.text)
                ),
            ))
        }
        FileValue::Missing(e) => {
            return Err(host_err(
                "nqn",
                nqn.line,
                format!("Error reading mandatory Host NQN (see stasadm --help): {e}"),
            ))
        }
    };
    if !hostnqn.starts_with("nqn.") {
        return Err(host_err(
            "nqn",
            nqn.line,
            format!(
                "Host NQN \"{hostnqn}\" should start with \"nqn.\" ({})",
                source_of(&nqn.text)
            ),
        ));
    }
    let len = hostnqn.chars().count();
    if len > MAX_NQN_LEN {
        return Err(host_err(
            "nqn",
            nqn.line,
            format!(
                "Host NQN \"{hostnqn}\" is {len} characters long; the maximum is {MAX_NQN_LEN} \
                 ({})",
                source_of(&nqn.text)
            ),
        ));
    }

    // id: mandatory file, no format check.
    let Some(id) = id else {
        return Err(host_err(
            "id",
            None,
            "internal error: no default".to_owned(),
        ));
    };
    let read_id_err = |e: &dyn fmt::Display| {
        host_err(
            "id",
            id.line,
            format!("Error reading mandatory Host ID (see stasadm --help): {e}"),
        )
    };
    let hostid = match resolve(&id.text).map_err(|e| read_id_err(&e))? {
        FileValue::Value(v) => v.unwrap_or_default(),
        FileValue::Missing(e) => return Err(read_id_err(&e)),
    };
    if hostid.is_empty() {
        r.push(
            Severity::Warning,
            id.line,
            "Host",
            Some("id"),
            format!(
                "the Host ID is empty ({}); connections are made without one \
                 (run stasadm hostid to create one)",
                source_of(&id.text)
            ),
        );
    }

    // key: optional.
    let hostkey = match key {
        None => None,
        Some(key) => {
            match resolve(&key.text).map_err(|e| host_err("key", key.line, e.to_string()))? {
                FileValue::Value(v) => v.filter(|v| !v.is_empty()),
                FileValue::Missing(e) => {
                    // The built-in default file is optional; a configured one is not.
                    if key.line.is_some() {
                        r.push(
                            Severity::Warning,
                            key.line,
                            "Host",
                            Some("key"),
                            format!("Error reading host key (will remain undefined): {e}"),
                        );
                    }
                    None
                }
            }
        }
    };

    // symname: optional.
    let symname = match symname {
        None => None,
        Some(s) => {
            match resolve(&s.text).map_err(|e| host_err("symname", s.line, e.to_string()))? {
                FileValue::Value(v) => v.filter(|v| !v.is_empty()),
                FileValue::Missing(e) => {
                    r.push(
                        Severity::Warning,
                        s.line,
                        "Host",
                        Some("symname"),
                        format!("Error reading host symbolic name (will remain undefined): {e}"),
                    );
                    None
                }
            }
        }
    };

    let conf = SysConf {
        hostnqn,
        hostid,
        hostkey,
        symname,
    };
    Ok((conf, r.finish()))
}

/// "from <file>" or "set in the file", for messages.
pub(crate) fn source_of(text: &str) -> String {
    match text.strip_prefix("file://") {
        Some(path) => format!("read from {path}"),
        None => "as configured".to_owned(),
    }
}

/// The raw text of a `[Host]` key (last occurrence wins), or the default
/// `file://` reference when absent.
pub(crate) fn raw(r: &mut Reader<'_>, key: &str, default: Option<PathBuf>) -> Option<Raw> {
    let ini = r.ini;
    let values = ini.values("Host", key);
    // The last occurrence and its continuation lines.
    let Some(start) = values.iter().rposition(|v| !v.continuation) else {
        return default.map(|p| Raw {
            text: format!("file://{}", p.display()),
            line: None,
        });
    };
    let first = values.get(start)?;
    if let Some(extra) = values.get(start + 1) {
        r.warn(
            extra.line,
            "Host",
            key,
            "continuation lines are not supported in sys.conf; ignored".to_owned(),
        );
    }
    Some(Raw {
        // A key without "=" is an empty value.
        text: first.text.clone().unwrap_or_default(),
        line: Some(first.line),
    })
}

/// Loads sys.conf (a missing file means all defaults: the files in
/// `etc_nvme`). `Err` when the host NQN or ID is unusable (upstream exits),
/// the file is unreadable, or not INI.
pub fn load_sysconf(
    path: &Path,
    etc_nvme: &Path,
) -> Result<(SysConf, Vec<Diagnostic>), ConfigError> {
    let text = read_optional(path)?.unwrap_or_default();
    parse_sysconf(&text, &path.display().to_string(), etc_nvme)
}
