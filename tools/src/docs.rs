//! Man pages and shell completions rendered from the clap definitions of
//! every stas program, so that they never disagree with `--help`.
//! `stas-gen-docs` writes them under `dist/`; a test checks they are
//! current.

use std::io;
use std::path::{Path, PathBuf};

use clap::CommandFactory;
use clap_complete::Shell;

/// A program with a man page and completions, and its manual section.
#[derive(Debug)]
pub struct Program {
    /// Its name (and the name of its man page and completion files).
    pub name: &'static str,
    /// `8` for the daemons, `1` for the tools.
    pub section: &'static str,
    command: fn() -> clap::Command,
    /// Man page sections clap has no place for: (title, paragraphs).
    extra: &'static [(&'static str, &'static [&'static str])],
}

impl Program {
    /// The program's clap command, as its binary parses with it.
    pub fn command(&self) -> clap::Command {
        (self.command)()
    }
}

/// Every program that gets a man page and completions.
pub const PROGRAMS: &[Program] = &[
    Program {
        name: "stafd",
        section: "8",
        command: stafd::cli::Args::command,
        extra: &[(
            "FILES",
            &[
                "/etc/stas/stafd.conf: discovery controllers and options (nvme-stas's format).",
                "/etc/stas/sys.conf: the host's NQN, ID, key and symbolic name.",
                "/run/stafd/last-known-config.bin: the last known configuration, kept across restarts.",
            ],
        )],
    },
    Program {
        name: "stacd",
        section: "8",
        command: stacd::cli::Args::command,
        extra: &[(
            "FILES",
            &[
                "/etc/stas/stacd.conf: I/O controllers and options (nvme-stas's format).",
                "/etc/stas/sys.conf: the host's NQN, ID, key and symbolic name.",
                "/run/stacd/last-known-config.bin: the last known configuration, kept across restarts.",
            ],
        )],
    },
    Program {
        name: "stafctl",
        section: "1",
        command: crate::cli::stafctl::Cli::command,
        extra: &[(
            "EXIT STATUS",
            &[
                "0 on success; 1 when there is no subcommand, when stafd cannot be reached over D-Bus (\"Unable to communicate with stafd over D-Bus. Is stafd running?\") or the bus policy denies the call (changing tron needs root); 2 for a usage error.",
            ],
        )],
    },
    Program {
        name: "stacctl",
        section: "1",
        command: crate::cli::stacctl::Cli::command,
        extra: &[(
            "EXIT STATUS",
            &[
                "0 on success; 1 when there is no subcommand, when stacd cannot be reached over D-Bus (\"Unable to communicate with stacd over D-Bus. Is stacd running?\") or the bus policy denies the call (changing tron needs root); 2 for a usage error.",
            ],
        )],
    },
    Program {
        name: "stasadm",
        section: "1",
        command: crate::cli::stasadm::Cli::command,
        extra: &[
            (
                "EXIT STATUS",
                &["0 on success; 1 on failure (the message says what to do); 2 for a usage error; 3 when discover printed the log page but some entries were bad or missing."],
            ),
            (
                "FILES",
                &["/etc/stas/sys.conf: where hostnqn, hostid, set-symname and clear-symname save the host's identity (section [Host])."],
            ),
        ],
    },
];

/// The shells completions are written for.
const SHELLS: &[Shell] = &[Shell::Bash, Shell::Zsh, Shell::Fish];

/// Where `shell`'s completions of `name` go (under `completions/`): a
/// directory per shell, and the file name each shell's loader looks for.
fn completion_path(shell: Shell, name: &str) -> PathBuf {
    let (dir, file) = match shell {
        // bash-completion loads completions/<command> on first use.
        Shell::Bash => ("bash", name.to_owned()),
        Shell::Zsh => ("zsh", format!("_{name}")),
        Shell::Fish => ("fish", format!("{name}.fish")),
        other => ("other", format!("{name}.{other}")),
    };
    Path::new("completions").join(dir).join(file)
}

/// One generated file: where it goes (relative to the output directory)
/// and its contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generated {
    /// E.g. `man/stafctl-dlp.1` or `completions/zsh/_stafctl`.
    pub path: PathBuf,
    /// The file's bytes.
    pub contents: Vec<u8>,
}

/// The man page of `cmd` and, recursively, of its visible subcommands
/// (`stafctl-dlp.1`, which `stafctl.1` refers to).
/// `extra` sections are appended to this page only.
fn man_pages(
    cmd: clap::Command,
    section: &str,
    extra: &[(&str, &[&str])],
    out: &mut Vec<Generated>,
) -> io::Result<()> {
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        man_pages(sub.clone(), section, &[], out)?;
    }
    let man = clap_mangen::Man::new(cmd)
        .section(section)
        .source(format!("stas {}", env!("CARGO_PKG_VERSION")))
        .manual("stas");
    let mut contents = Vec::new();
    man.render(&mut contents)?;
    for (title, paragraphs) in extra {
        contents.extend(roff_section(title, paragraphs).into_bytes());
    }
    out.push(Generated {
        path: Path::new("man").join(man.get_filename()),
        contents,
    });
    Ok(())
}

/// A man page section of plain-text paragraphs.
fn roff_section(title: &str, paragraphs: &[&str]) -> String {
    let mut out = format!(".SH \"{title}\"\n");
    for (i, p) in paragraphs.iter().enumerate() {
        if i > 0 {
            out.push_str(".PP\n");
        }
        // Backslashes and hyphens are roff syntax; a leading dot or quote
        // would start a request.
        let text = p.replace('\\', "\\e").replace('-', "\\-");
        if text.starts_with(['.', '\'']) {
            out.push_str("\\&");
        }
        out.push_str(&text);
        out.push('\n');
    }
    out
}

/// A copy of `cmd` without its hidden options and subcommands (test and
/// simulation switches), which clap_complete would otherwise offer; the
/// man pages leave them out by themselves.
fn visible_only(cmd: &clap::Command) -> clap::Command {
    let mut built = cmd.clone();
    built.build();
    let mut out = clap::Command::new(built.get_name().to_owned())
        // The built command's own help flag is among the arguments copied.
        .disable_help_flag(true)
        .disable_version_flag(true)
        .disable_help_subcommand(true)
        .args(built.get_arguments().filter(|a| !a.is_hide_set()).cloned());
    if let Some(about) = built.get_about() {
        out = out.about(about.clone());
    }
    for sub in built.get_subcommands().filter(|s| !s.is_hide_set()) {
        out = out.subcommand(visible_only(sub));
    }
    out
}

/// Every man page and completion file, in a stable order.
pub fn generate() -> io::Result<Vec<Generated>> {
    let mut out = Vec::new();
    for program in PROGRAMS {
        // Built, so that subcommands carry their full names (stafctl-dlp)
        // and the global options; the `help` subcommand is clap's, not ours.
        let mut cmd = program.command().disable_help_subcommand(true);
        cmd.build();
        let others: Vec<String> = PROGRAMS
            .iter()
            .filter(|p| p.name != program.name)
            .map(|p| format!("{}({})", p.name, p.section))
            .collect();
        let others = others.join(", ");
        let see_also = [others.as_str()];
        let mut extra: Vec<(&str, &[&str])> = program.extra.to_vec();
        extra.push(("SEE ALSO", &see_also));
        man_pages(cmd, program.section, &extra, &mut out)?;
        for shell in SHELLS {
            let mut cmd = visible_only(&program.command());
            let mut contents = Vec::new();
            clap_complete::generate(*shell, &mut cmd, program.name, &mut contents);
            out.push(Generated {
                path: completion_path(*shell, program.name),
                contents,
            });
        }
    }
    Ok(out)
}

/// Writes every generated file under `dir` (creating directories), and
/// returns their paths.
pub fn write_all(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    for g in generate()? {
        let path = dir.join(&g.path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| with_path(e, parent))?;
        }
        std::fs::write(&path, &g.contents).map_err(|e| with_path(e, &path))?;
        written.push(path);
    }
    Ok(written)
}

fn with_path(e: io::Error, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

/// The `dist/` directory of the source tree, where the generated files
/// are committed.
pub fn dist_dir() -> PathBuf {
    let tools = Path::new(env!("CARGO_MANIFEST_DIR"));
    tools
        .parent()
        .map_or_else(|| tools.join(".."), Path::to_path_buf)
        .join("dist")
}
