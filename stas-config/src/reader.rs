//! Reading a parsed file into a daemon configuration: sections, options,
//! `controller=`/`exclude=` entries, and their diagnostics.

use super::*;

// ---------------------------------------------------------------------------
// Reading a parsed file

/// Walks a parsed file, collecting diagnostics.
pub(crate) struct Reader<'a> {
    pub(crate) ini: &'a Ini,
    pub(crate) file: &'a str,
    pub(crate) diags: Vec<Diagnostic>,
}

/// "Using the default (30)." or, for options passed only when set, what
/// happens instead.
pub(crate) fn fallback(default: Option<String>) -> String {
    match default {
        Some(d) => format!("Using the default ({d})."),
        None => "Using the default (not set: the kernel default applies).".to_owned(),
    }
}

impl<'a> Reader<'a> {
    pub(crate) fn new(ini: &'a Ini, file: &'a str) -> Self {
        let diags = ini
            .notes()
            .iter()
            .map(|n| Diagnostic {
                file: file.to_owned(),
                line: Some(n.line),
                section: String::new(),
                option: None,
                message: n.message.clone(),
                severity: Severity::Warning,
            })
            .collect();
        Self { ini, file, diags }
    }

    pub(crate) fn push(
        &mut self,
        severity: Severity,
        line: Option<usize>,
        section: &str,
        option: Option<&str>,
        message: String,
    ) {
        self.diags.push(Diagnostic {
            file: self.file.to_owned(),
            line,
            section: section.to_owned(),
            option: option.map(str::to_owned),
            message,
            severity,
        });
    }

    pub(crate) fn warn(&mut self, line: usize, section: &str, option: &str, message: String) {
        self.push(
            Severity::Warning,
            Some(line),
            section,
            Some(option),
            message,
        );
    }

    /// Reports sections and options the file `kind` does not accept
    /// (docs/behaviour.md §3.3), with hints for names that belong elsewhere.
    pub(crate) fn check_names(&mut self, kind: FileKind) {
        let ini = self.ini;
        let table = kind.table();
        let accepted_sections = table
            .iter()
            .map(|(s, _)| format!("[{s}]"))
            .collect::<Vec<_>>()
            .join(", ");
        for section in ini.sections() {
            let Some((_, options)) = table.iter().find(|(s, _)| *s == section.name) else {
                let mut message = format!(
                    "unknown section; {} accepts {accepted_sections}. Its options are ignored.",
                    kind.file_name()
                );
                let squashed = section.name.trim();
                if let Some((known, _)) =
                    table.iter().find(|(s, _)| s.eq_ignore_ascii_case(squashed))
                {
                    message.push_str(&format!(
                        " Did you mean [{known}]? Section names are case-sensitive and \
                         have no spaces inside the brackets."
                    ));
                } else if let Some(other) = kind
                    .other()
                    .filter(|o| o.table().iter().any(|(s, _)| *s == section.name))
                {
                    message.push_str(&format!(" This section belongs in {}.", other.file_name()));
                }
                self.push(
                    Severity::Error,
                    Some(section.line),
                    &section.name,
                    None,
                    message,
                );
                continue;
            };
            for option in &section.options {
                if options.contains(&option.name.as_str()) {
                    continue;
                }
                let mut message = format!(
                    "unknown option; [{}] accepts {}. Ignored.",
                    section.name,
                    options.join(", ")
                );
                if let Some(hint) = option_hint(kind, &section.name, &option.name) {
                    message.push_str(&format!(" Note: {hint}."));
                }
                self.push(
                    Severity::Error,
                    Some(option.line),
                    &section.name,
                    Some(&option.name),
                    message,
                );
            }
        }
    }

    /// The value of a scalar option: the last one, converted; `None` when
    /// absent or invalid (then with a diagnostic naming the default).
    pub(crate) fn scalar<T>(
        &mut self,
        section: &str,
        option: &str,
        check: &Check<T>,
        default: Option<String>,
    ) -> Option<T> {
        let ini = self.ini;
        let value = ini.last(section, option)?;
        let message = match &value.text {
            None => format!(
                "has no value (the line has no \"=\"); expected {}",
                check.expected
            ),
            Some(text) => match check.apply(text) {
                Ok(v) => return Some(v),
                Err(e) => e.to_string(),
            },
        };
        self.warn(
            value.line,
            section,
            option,
            format!("{message}. {}", fallback(default)),
        );
        None
    }

    pub(crate) fn global(&mut self, daemon: Daemon) -> GlobalOptions {
        let d = match daemon {
            Daemon::Stafd => GlobalOptions::stafd_defaults(),
            Daemon::Stacd => GlobalOptions::stacd_defaults(),
        };
        let show = |b: bool| Some(b.to_string());
        let show_opt = |n: Option<u32>| n.map(|n| n.to_string());
        let stacd = daemon == Daemon::Stacd;
        let queues = |r: &mut Self, option: &str| {
            if stacd {
                r.scalar(GLOBAL, option, &QUEUES, None)
            } else {
                None
            }
        };
        GlobalOptions {
            tron: self
                .scalar(GLOBAL, "tron", &BOOL, show(d.tron))
                .unwrap_or(d.tron),
            hdr_digest: self
                .scalar(GLOBAL, "hdr-digest", &BOOL, show(d.hdr_digest))
                .unwrap_or(d.hdr_digest),
            data_digest: self
                .scalar(GLOBAL, "data-digest", &BOOL, show(d.data_digest))
                .unwrap_or(d.data_digest),
            kato: self
                .scalar(GLOBAL, "kato", &SECONDS, show_opt(d.kato))
                .or(d.kato),
            nr_io_queues: queues(self, "nr-io-queues"),
            nr_write_queues: queues(self, "nr-write-queues"),
            nr_poll_queues: queues(self, "nr-poll-queues"),
            queue_size: self.scalar(GLOBAL, "queue-size", &QUEUE_SIZE, None),
            reconnect_delay: self.scalar(GLOBAL, "reconnect-delay", &SECONDS, None),
            ctrl_loss_tmo: self.scalar(GLOBAL, "ctrl-loss-tmo", &CTRL_LOSS_TMO, None),
            disable_sqflow: self.scalar(GLOBAL, "disable-sqflow", &BOOL, None),
            ignore_iface: self
                .scalar(GLOBAL, "ignore-iface", &BOOL, show(d.ignore_iface))
                .unwrap_or(d.ignore_iface),
            ip_family: self
                .scalar(
                    GLOBAL,
                    "ip-family",
                    &IP_FAMILY,
                    Some(d.ip_family.to_string()),
                )
                .unwrap_or(d.ip_family),
        }
    }

    /// Parses a `controller=`/`exclude=` value, reporting what upstream
    /// silently drops or misreads.
    pub(crate) fn cid_entry(&mut self, line: usize, option: &str, text: &str) -> Cid {
        let (cid, dropped) = parse_cid_detailed(text);
        for token in dropped {
            let why = if !token.contains('=') {
                "it has no \"=\""
            } else if token.contains(',') {
                "it has more than one \"=\"; fields are separated by \";\", not \",\""
            } else {
                "it has more than one \"=\", and a value cannot contain \"=\""
            };
            self.warn(
                line,
                CONTROLLERS,
                option,
                format!("field {token:?} ignored: {why}; expected key=value."),
            );
        }
        if text.contains('#') {
            self.warn(
                line,
                CONTROLLERS,
                option,
                "contains \"#\": inline comments are not supported, so the text after \"#\" \
                 is part of the value. Put comments on lines of their own."
                    .to_owned(),
            );
        }
        for key in cid.keys().filter(|k| !is_known_key(k)) {
            let lower = key.to_lowercase();
            let mut message = format!("unknown key {key:?}: kept, but never used to connect.");
            if lower != *key && (is_known_key(&lower) || lower == "nqn") {
                message.push_str(&format!(
                    " Keys are case-sensitive: did you mean {lower:?}?"
                ));
            }
            self.warn(line, CONTROLLERS, option, message);
        }
        cid
    }

    pub(crate) fn controllers(&mut self, daemon: Daemon) -> Vec<ControllerSpec> {
        let ini = self.ini;
        let mut out = Vec::new();
        for value in ini.values(CONTROLLERS, "controller") {
            let Some(text) = &value.text else {
                self.warn(
                    value.line,
                    CONTROLLERS,
                    "controller",
                    "has no value (the line has no \"=\"); expected \
                     controller = transport=<trtype>;traddr=<address>;... Ignored."
                        .to_owned(),
                );
                continue;
            };
            let mut cid = self.cid_entry(value.line, "controller", text);
            let fields: Vec<(String, String)> =
                cid.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            // Daemons type the overrides again from the cid
            // (ControllerOverrides::from_cid, once per TID); the same checks
            // here make every override left in the cid one they accept.
            let mut overrides = ControllerOverrides::default();
            for (key, raw) in fields {
                match overrides.set(&key, &raw) {
                    Some(Ok(normalised)) => {
                        cid.insert(key, normalised);
                    }
                    Some(Err(e)) => {
                        cid.remove(&key);
                        self.warn(
                            value.line,
                            CONTROLLERS,
                            "controller",
                            format!(
                                "override {key}: {e}. Ignored, so [Global] {key} applies \
                                 to this controller."
                            ),
                        );
                    }
                    None => {}
                }
            }
            self.dc_keys(value.line, &mut cid, daemon);
            self.check_controller(value, &cid, daemon);
            out.push(ControllerSpec {
                cid,
                line: value.line,
            });
        }
        out
    }

    /// Checks the discovery controller keys of a `controller=` entry,
    /// dropping those that do not apply (with a diagnostic).
    pub(crate) fn dc_keys(&mut self, line: usize, cid: &mut Cid, daemon: Daemon) {
        let Some(v) = cid.get("persistent").cloned() else {
            return;
        };
        let problem = match daemon {
            Daemon::Stacd => {
                "persistent is a discovery controller setting (stafd.conf). Ignored.".to_owned()
            }
            Daemon::Stafd => match PERSISTENT.apply(&v) {
                Ok(_) => return,
                Err(e) => format!(
                    "persistent: {e}. Ignored, so [{DC_MANAGEMENT}] persistent applies to \
                     this controller."
                ),
            },
        };
        cid.remove("persistent");
        self.warn(line, CONTROLLERS, "controller", problem);
    }

    /// What would make the daemon ignore a configured controller.
    pub(crate) fn check_controller(&mut self, value: &Value, cid: &Cid, daemon: Daemon) {
        let mut problems = Vec::new();
        if cid.is_empty() {
            problems.push(
                "empty entry; expected transport=<trtype>;traddr=<address>;... \
                 The daemon ignores it."
                    .to_owned(),
            );
        } else {
            match cid.get("transport").map(String::as_str) {
                None => problems.push(
                    "no transport field; expected transport=tcp, rdma, fc or loop. \
                     The daemon ignores this controller."
                        .to_owned(),
                ),
                Some("tcp" | "rdma") => {
                    if cid.get("traddr").is_none_or(|a| a.is_empty()) {
                        problems.push(
                            "no traddr field; tcp and rdma controllers need an IP address or \
                             host name. The daemon ignores this controller."
                                .to_owned(),
                        );
                    }
                }
                Some("fc" | "loop") => {}
                Some(other) => problems.push(format!(
                    "transport {other:?} is not tcp, rdma, fc or loop (lower case). \
                     The daemon ignores this controller."
                )),
            }
            if daemon == Daemon::Stacd && !cid.contains_key("subsysnqn") {
                problems.push(
                    "no nqn field; stacd needs the subsystem NQN of an I/O controller \
                     (nqn=<subsystem NQN>)."
                        .to_owned(),
                );
            }
        }
        for p in problems {
            self.warn(value.line, CONTROLLERS, "controller", p);
        }
    }

    pub(crate) fn excludes(&mut self) -> Vec<Cid> {
        let ini = self.ini;
        let mut out = Vec::new();
        for value in ini.values(CONTROLLERS, "exclude") {
            let Some(text) = &value.text else {
                self.warn(
                    value.line,
                    CONTROLLERS,
                    "exclude",
                    "has no value (the line has no \"=\"); expected \
                     exclude = key=value;key=value... Ignored."
                        .to_owned(),
                );
                continue;
            };
            let mut cid = self.cid_entry(value.line, "exclude", text);
            if cid.remove("host-traddr").is_some() {
                self.warn(
                    value.line,
                    CONTROLLERS,
                    "exclude",
                    "host-traddr is not used in exclude entries and is ignored.".to_owned(),
                );
            }
            if cid.is_empty() {
                // Upstream matches every controller with such an entry (a
                // defect, §18): an admin who wrote a broken exclude line did
                // not mean "disconnect everything". It is ignored, loudly.
                self.warn(
                    value.line,
                    CONTROLLERS,
                    "exclude",
                    "this entry has no usable key=value field and is ignored (nvme-stas would \
                     exclude EVERY controller with it). Expected e.g. exclude = transport=tcp;traddr=10.0.0.1."
                        .to_owned(),
                );
                continue;
            }
            out.push(cid);
        }
        out
    }

    pub(crate) fn trtypes(&mut self) -> BTreeSet<TrType> {
        let default = BTreeSet::from([TrType::Tcp]);
        let ini = self.ini;
        let option = "disconnect-trtypes";
        let Some(value) = ini.last(IOC_MANAGEMENT, option) else {
            return default;
        };
        let expected = "expected tcp, rdma and/or fc joined by \"+\" without spaces, e.g. tcp+rdma";
        let Some(text) = &value.text else {
            self.warn(
                value.line,
                IOC_MANAGEMENT,
                option,
                format!(
                    "has no value (the line has no \"=\"); {expected}. Using the default (tcp)."
                ),
            );
            return default;
        };
        let mut set = BTreeSet::new();
        let mut bad = BTreeSet::new();
        for item in text.split('+') {
            match item {
                "tcp" => set.insert(TrType::Tcp),
                "rdma" => set.insert(TrType::Rdma),
                "fc" => set.insert(TrType::Fc),
                _ => bad.insert(format!("{item:?}")),
            };
        }
        if !bad.is_empty() {
            let items = bad.into_iter().collect::<Vec<_>>().join(", ");
            let outcome = if set.is_empty() {
                "No valid item is left. Using the default (tcp)."
            } else {
                "They are ignored."
            };
            self.warn(
                value.line,
                IOC_MANAGEMENT,
                option,
                format!("{text:?}: invalid item(s) {items}; {expected}. {outcome}"),
            );
        }
        if set.is_empty() {
            default
        } else {
            set
        }
    }

    pub(crate) fn finish(mut self) -> Vec<Diagnostic> {
        // Stable: file order, whole-file remarks last.
        self.diags.sort_by_key(|d| d.line.unwrap_or(usize::MAX));
        self.diags
    }
}

/// Parses stafd.conf text; `origin` names the file in diagnostics.
pub fn parse_stafd(
    text: &str,
    origin: &str,
) -> Result<(StafdConfig, Vec<Diagnostic>), ConfigError> {
    let ini = Ini::parse(text, origin)?;
    let mut r = Reader::new(&ini, origin);
    r.check_names(FileKind::Daemon(Daemon::Stafd));
    let d = StafdConfig::default();
    let enabled = |b: bool| Some(if b { "enabled" } else { "disabled" }.to_owned());
    let global = r.global(Daemon::Stafd);
    let config = StafdConfig {
        global,
        pleo: r
            .scalar(GLOBAL, "pleo", &ENABLED, enabled(d.pleo))
            .unwrap_or(d.pleo),
        zeroconf: r
            .scalar(SERVICE_DISCOVERY, "zeroconf", &ENABLED, enabled(d.zeroconf))
            .unwrap_or(d.zeroconf),
        mdns_backend: r
            .scalar(
                SERVICE_DISCOVERY,
                "mdns-backend",
                &MDNS_BACKEND,
                Some(d.mdns_backend.to_string()),
            )
            .unwrap_or(d.mdns_backend),
        persistent_connections: r
            .scalar(
                DC_MANAGEMENT,
                "persistent-connections",
                &BOOL,
                Some(d.persistent_connections.to_string()),
            )
            .unwrap_or(d.persistent_connections),
        zeroconf_persistence: r
            .scalar(
                DC_MANAGEMENT,
                "zeroconf-connections-persistence",
                &PERSISTENCE,
                Some(d.zeroconf_persistence.to_string()),
            )
            .unwrap_or(d.zeroconf_persistence),
        persistent: r
            .scalar(
                DC_MANAGEMENT,
                "persistent",
                &PERSISTENT,
                Some(d.persistent.to_string()),
            )
            .unwrap_or(d.persistent),
        epcsd_poll_minutes: r
            .scalar(
                DC_MANAGEMENT,
                "epcsd-poll-interval-minutes",
                &POLL_MINUTES,
                Some(d.epcsd_poll_minutes.to_string()),
            )
            .unwrap_or(d.epcsd_poll_minutes),
        controllers: r.controllers(Daemon::Stafd),
        excludes: r.excludes(),
    };
    Ok((config, r.finish()))
}

/// Parses stacd.conf text; `origin` names the file in diagnostics.
pub fn parse_stacd(
    text: &str,
    origin: &str,
) -> Result<(StacdConfig, Vec<Diagnostic>), ConfigError> {
    let ini = Ini::parse(text, origin)?;
    let mut r = Reader::new(&ini, origin);
    r.check_names(FileKind::Daemon(Daemon::Stacd));
    let d = StacdConfig::default();
    let global = r.global(Daemon::Stacd);
    let config = StacdConfig {
        global,
        disconnect_scope: r
            .scalar(
                IOC_MANAGEMENT,
                "disconnect-scope",
                &SCOPE,
                Some(d.disconnect_scope.to_string()),
            )
            .unwrap_or(d.disconnect_scope),
        disconnect_trtypes: r.trtypes(),
        connect_attempts_on_ncc: r
            .scalar(
                IOC_MANAGEMENT,
                "connect-attempts-on-ncc",
                &NCC,
                Some(d.connect_attempts_on_ncc.to_string()),
            )
            .unwrap_or(d.connect_attempts_on_ncc),
        controllers: r.controllers(Daemon::Stacd),
        excludes: r.excludes(),
    };
    Ok((config, r.finish()))
}

/// The largest configuration file read (far beyond any real one: a
/// symlink to /dev/zero or a runaway generator must not fill memory).
pub const MAX_CONFIG_BYTES: u64 = 4 << 20;

/// Reads a configuration file as text; `None` when nothing is there. It
/// must be a regular file (a symlink to one is fine) of at most
/// [`MAX_CONFIG_BYTES`]; a dangling symlink is an error, not "defaults".
pub(crate) fn read_optional(path: &Path) -> Result<Option<String>, ConfigError> {
    use nvmf_kernel::files::{read_bounded, FileError, Links};
    let file = path.display().to_string();
    let read = read_bounded(path, MAX_CONFIG_BYTES, Links::Follow);
    match read {
        Ok(Some(bytes)) => String::from_utf8(bytes).map(Some).map_err(|e| {
            let valid = e.utf8_error().valid_up_to();
            let line = e
                .as_bytes()
                .get(..valid)
                .map_or(0, |b| b.iter().filter(|&&c| c == b'\n').count())
                + 1;
            ConfigError::Syntax {
                file,
                line,
                message: "not valid UTF-8 text".to_owned(),
            }
        }),
        Ok(None) => Ok(None),
        Err(FileError::Refused { reason, .. }) => Err(ConfigError::Refused { file, reason }),
        Err(FileError::Io { source, .. }) => Err(ConfigError::Io { file, source }),
    }
}

/// Loads stafd.conf. A missing file gives the defaults and no diagnostics;
/// `Err` means unreadable or not INI (on SIGHUP: keep the last good one).
pub fn load_stafd(path: &Path) -> Result<(StafdConfig, Vec<Diagnostic>), ConfigError> {
    match read_optional(path)? {
        Some(text) => parse_stafd(&text, &path.display().to_string()),
        None => Ok((StafdConfig::default(), Vec::new())),
    }
}

/// Loads stacd.conf; see [`load_stafd`].
pub fn load_stacd(path: &Path) -> Result<(StacdConfig, Vec<Diagnostic>), ConfigError> {
    match read_optional(path)? {
        Some(text) => parse_stacd(&text, &path.display().to_string()),
        None => Ok((StacdConfig::default(), Vec::new())),
    }
}
