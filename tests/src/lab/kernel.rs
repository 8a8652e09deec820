//! Host tools, the cache, and the lab kernel: resolved with `apt-cache`,
//! fetched with `apt-get download`, extracted once into the cache.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::elf::elf_interpreter;
use super::error::io_err;
use super::modules::ensure_modules_dep;
use super::util::{unique_suffix, RemoveOnDrop};
use super::{notice, LabError, KERNEL_META_PACKAGE};

/// The first executable named `name` on `PATH`.
pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| {
            fs::metadata(p)
                .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
                .unwrap_or(false)
        })
}

pub(super) fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("STAS_LAB_CACHE").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    match std::env::var_os("HOME").filter(|d| !d.is_empty()) {
        Some(home) => PathBuf::from(home).join(".cache").join("stas-lab"),
        None => std::env::temp_dir().join("stas-lab-cache"),
    }
}

pub(super) fn find_static_busybox() -> Result<PathBuf, LabError> {
    let candidates = [
        PathBuf::from("/bin/busybox"),
        PathBuf::from("/usr/bin/busybox"),
    ];
    let found = candidates
        .into_iter()
        .find(|p| p.is_file())
        .or_else(|| which("busybox"));
    let Some(path) = found else {
        return Err(LabError::MissingTool {
            tool: "busybox".into(),
            hint: "apt-get install busybox-static (scripts/test installs it)".into(),
        });
    };
    if elf_interpreter(&path)?.is_some() {
        return Err(LabError::MissingTool {
            tool: "a static busybox".into(),
            hint: format!(
                "{} is dynamically linked (Debian package busybox); the guest needs apt-get install busybox-static",
                path.display()
            ),
        });
    }
    Ok(path)
}

pub(super) fn busybox_applets(busybox: &Path) -> Result<Vec<String>, LabError> {
    let out = run_captured(Command::new(busybox).arg("--list"))?;
    // `busybox --list` names busybox itself: a link to it would replace the binary with a self-loop.
    Ok(out
        .lines()
        .map(str::trim)
        .filter(|a| !a.is_empty() && *a != "busybox" && !a.contains('/'))
        .map(str::to_owned)
        .collect())
}

/// Runs a command, returns its stdout, or a [`LabError::Command`] with its output.
pub(super) fn run_captured(cmd: &mut Command) -> Result<String, LabError> {
    let command = format!("{cmd:?}");
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(io_err(format!("running {command}")))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() {
        Ok(stdout)
    } else {
        let stderr = String::from_utf8_lossy(&out.stderr);
        Err(LabError::Command {
            command,
            status: out.status.to_string(),
            output: last_n_lines(&format!("{stdout}{stderr}"), 30),
        })
    }
}

pub(super) fn last_n_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines
        .get(lines.len().saturating_sub(n)..)
        .unwrap_or_default()
        .join("\n")
}

pub(super) fn need_tool(tool: &str, package: &str) -> Result<PathBuf, LabError> {
    which(tool).ok_or_else(|| LabError::MissingTool {
        tool: tool.into(),
        hint: format!("apt-get install {package}"),
    })
}

/// The versioned kernel package `linux-image-cloud-amd64` depends on today.
fn resolve_kernel_package() -> Result<String, LabError> {
    let apt_cache = need_tool("apt-cache", "apt")?;
    let out = Command::new(&apt_cache)
        .args(["depends", KERNEL_META_PACKAGE])
        .stdin(Stdio::null())
        .output()
        .map_err(io_err("running apt-cache depends"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .filter_map(|l| l.trim().trim_start_matches('|').strip_prefix("Depends:"))
        .map(|p| p.trim().trim_start_matches('<').trim_end_matches('>').to_owned())
        .find(|p| p.starts_with("linux-image-"))
        .ok_or_else(|| {
            LabError::Kernel(format!(
                "`apt-cache depends {KERNEL_META_PACKAGE}` names no linux-image package{}: run apt-get update",
                if out.status.success() { "" } else { " (it failed)" }
            ))
        })
}

/// Returns the kernel package name and its extraction, fetching it if needed.
pub(super) fn ensure_kernel(cache: &Path) -> Result<(String, PathBuf), LabError> {
    let kernels = cache.join("kernels");
    let package = match resolve_kernel_package() {
        Ok(p) => p,
        Err(e) => {
            // Offline or no apt lists: a kernel fetched earlier still does.
            match newest_cached_kernel(&kernels) {
                Some((p, dir)) => {
                    notice(&format!("stas-lab: {e}; using the cached {p}"));
                    return Ok((p, dir));
                }
                None => return Err(e),
            }
        }
    };
    let root = kernels.join(&package);
    if root.is_dir() {
        return Ok((package, root));
    }
    let apt_get = need_tool("apt-get", "apt")?;
    let dpkg = need_tool("dpkg", "dpkg")?;
    let tmp = cache
        .join("tmp")
        .join(format!("{package}.{}", unique_suffix()));
    fs::create_dir_all(&tmp).map_err(io_err(format!("creating {}", tmp.display())))?;
    let _cleanup = RemoveOnDrop(tmp.clone());
    notice(&format!(
        "stas-lab: fetching {package} into {}",
        kernels.display()
    ));
    run_captured(
        Command::new(&apt_get)
            .arg("download")
            .arg(&package)
            .current_dir(&tmp),
    )
    .map_err(|e| {
        LabError::Kernel(format!(
            "downloading {package} (stale apt lists? run apt-get update): {e}"
        ))
    })?;
    let deb = fs::read_dir(&tmp)
        .map_err(io_err(format!("reading {}", tmp.display())))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .ok_or_else(|| {
            LabError::Kernel(format!(
                "apt-get download {package} left no .deb in {}",
                tmp.display()
            ))
        })?;
    let staged = tmp.join("root");
    run_captured(Command::new(&dpkg).arg("-x").arg(&deb).arg(&staged))
        .map_err(|e| LabError::Kernel(format!("extracting {}: {e}", deb.display())))?;
    let (_, modules_dir) = find_modules_dir(&staged)?;
    ensure_modules_dep(&modules_dir)?;
    fs::create_dir_all(&kernels).map_err(io_err(format!("creating {}", kernels.display())))?;
    if let Err(e) = fs::rename(&staged, &root) {
        // Another process may have published the same kernel first.
        if !root.is_dir() {
            return Err(LabError::Io {
                what: format!("publishing {}", root.display()),
                source: e,
            });
        }
    }
    Ok((package, root))
}

fn newest_cached_kernel(kernels: &Path) -> Option<(String, PathBuf)> {
    fs::read_dir(kernels)
        .ok()?
        .filter_map(Result::ok)
        .filter(|e| e.path().is_dir())
        .filter_map(|e| {
            Some((
                e.metadata().ok()?.modified().ok()?,
                e.file_name().into_string().ok()?,
                e.path(),
            ))
        })
        .max()
        .map(|(_, name, path)| (name, path))
}

pub(super) fn find_vmlinuz(root: &Path) -> Result<PathBuf, LabError> {
    let boot = root.join("boot");
    fs::read_dir(&boot)
        .map_err(io_err(format!("reading {}", boot.display())))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("vmlinuz-"))
        })
        .ok_or_else(|| LabError::Kernel(format!("no vmlinuz-* in {}", boot.display())))
}

pub(super) fn find_modules_dir(root: &Path) -> Result<(String, PathBuf), LabError> {
    for base in [root.join("lib/modules"), root.join("usr/lib/modules")] {
        let Ok(entries) = fs::read_dir(&base) else {
            continue;
        };
        for e in entries.filter_map(Result::ok) {
            if e.path().join("kernel").is_dir() {
                if let Ok(release) = e.file_name().into_string() {
                    return Ok((release, e.path()));
                }
            }
        }
    }
    Err(LabError::Kernel(format!(
        "no lib/modules/<release>/kernel under {}",
        root.display()
    )))
}
