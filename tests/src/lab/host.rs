//! Host binaries for guests: workspace binaries built static (musl) and host
//! executables with their shared libraries.

use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::elf::elf_interpreter;
use super::kernel::{last_n_lines, need_tool, run_captured};
use super::{LabError, MUSL_TARGET};

/// The workspace root (the parent of this crate's directory).
pub fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// Builds workspace binaries as static musl executables (release profile) and
/// returns their paths, in the order asked. One `cargo build --release --target
/// x86_64-unknown-linux-musl -p PKG --bin BIN...` from the workspace root, with
/// `$CARGO` if set, into `<target dir>/stas-lab` (its own directory, so it
/// never waits on the lock of the `cargo test` that runs it).
pub fn build_static(bins: &[(&str, &str)]) -> Result<Vec<PathBuf>, LabError> {
    let root = workspace_root();
    let cargo = std::env::var_os("CARGO")
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| OsString::from("cargo"));
    let base = std::env::var_os("CARGO_TARGET_DIR")
        .or_else(|| std::env::var_os("CARGO_BUILD_TARGET_DIR"))
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .map(|d| if d.is_absolute() { d } else { root.join(d) })
        .unwrap_or_else(|| root.join("target"));
    let target_dir = base.join("stas-lab");
    let mut cmd = Command::new(&cargo);
    cmd.current_dir(&root)
        .args(["build", "--release", "--target", MUSL_TARGET])
        .env("CARGO_TARGET_DIR", &target_dir);
    let mut packages = Vec::new();
    for (pkg, _) in bins {
        if !packages.contains(pkg) {
            packages.push(*pkg);
            cmd.args(["-p", pkg]);
        }
    }
    for (_, bin) in bins {
        cmd.args(["--bin", bin]);
    }
    let command = format!("{cmd:?}");
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => LabError::MissingTool {
                tool: cargo.to_string_lossy().into_owned(),
                hint: "install rustup (https://rustup.rs)".into(),
            },
            _ => LabError::Io {
                what: format!("running {command}"),
                source: e,
            },
        })?;
    if !out.status.success() {
        let mut output = last_n_lines(&String::from_utf8_lossy(&out.stderr), 40);
        if output.contains("target may not be installed")
            || output.contains("can't find crate for `std`")
        {
            output.push_str(&format!("\nhint: rustup target add {MUSL_TARGET}"));
        }
        return Err(LabError::Command {
            command,
            status: out.status.to_string(),
            output,
        });
    }
    bins.iter()
        .map(|(_, bin)| {
            let p = target_dir.join(MUSL_TARGET).join("release").join(bin);
            if p.is_file() {
                Ok(p)
            } else {
                Err(LabError::Elf {
                    path: p,
                    reason: format!("not built by {command}"),
                })
            }
        })
        .collect()
}

/// A host executable plus its shared libraries and dynamic loader (found with
/// `ldd`), as [`Guest::files`](super::Guest::files) entries at the same absolute paths in the guest,
/// so that e.g. Debian's `/usr/sbin/nvme` runs in the initramfs. A static
/// executable comes back alone.
pub fn host_binary_with_libs(path: &Path) -> Result<Vec<(PathBuf, String)>, LabError> {
    if !path.is_absolute() {
        return Err(LabError::Elf {
            path: path.to_path_buf(),
            reason: "give an absolute path".into(),
        });
    }
    if !path.is_file() {
        return Err(LabError::Elf {
            path: path.to_path_buf(),
            reason: "no such file".into(),
        });
    }
    let guest_path = |p: &Path| p.to_string_lossy().into_owned();
    let mut files = vec![(path.to_path_buf(), guest_path(path))];
    if elf_interpreter(path)?.is_none() {
        return Ok(files);
    }
    let ldd = need_tool("ldd", "libc-bin")?;
    let text = run_captured(Command::new(&ldd).arg(path))?;
    for lib in parse_ldd(&text).map_err(|reason| LabError::Elf {
        path: path.to_path_buf(),
        reason,
    })? {
        let entry = (lib.clone(), guest_path(&lib));
        if !files.contains(&entry) {
            files.push(entry);
        }
    }
    Ok(files)
}

fn parse_ldd(text: &str) -> Result<Vec<PathBuf>, String> {
    let mut libs = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let target = match line.split_once("=>") {
            Some((name, rest)) => {
                let rest = rest.trim();
                if rest.starts_with("not found") {
                    return Err(format!("ldd: {} not found", name.trim()));
                }
                rest
            }
            None => line,
        };
        let file = target.split_whitespace().next().unwrap_or_default();
        // linux-vdso.so.1 and friends are not files.
        if file.starts_with('/') {
            libs.push(PathBuf::from(file));
        }
    }
    Ok(libs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ldd_output_parses() {
        let text = "\tlinux-vdso.so.1 (0x00007ffd)\n\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x1)\n\t/lib64/ld-linux-x86-64.so.2 (0x2)\n";
        assert_eq!(
            parse_ldd(text).unwrap(),
            [
                PathBuf::from("/lib/x86_64-linux-gnu/libc.so.6"),
                PathBuf::from("/lib64/ld-linux-x86-64.so.2")
            ]
        );
        parse_ldd("\tlibfoo.so.1 => not found\n").unwrap_err();
    }
}
