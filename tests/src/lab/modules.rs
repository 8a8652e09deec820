//! The lab kernel's modules: `modules.dep` (written from each module's
//! `.modinfo` when `dpkg -x` left none), load order, decompression.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::elf::modinfo;
use super::error::io_err;
use super::kernel::need_tool;
use super::util::write_atomically;
use super::LabError;

/// The modules of the lab kernel, from `modules.dep` and `modules.builtin`.
pub(super) struct ModuleIndex {
    dir: PathBuf,
    /// Module name (with `_`) -> (path relative to `dir`, dependencies as listed).
    modules: HashMap<String, (String, Vec<String>)>,
    builtin: HashSet<String>,
}

impl fmt::Debug for ModuleIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ModuleIndex")
            .field("dir", &self.dir)
            .field("modules", &self.modules.len())
            .field("builtin", &self.builtin.len())
            .finish()
    }
}

/// `nvme-tcp.ko.xz` -> `nvme_tcp`.
fn module_name(path: &str) -> String {
    let file = path.rsplit('/').next().unwrap_or(path);
    let stem = file.split(".ko").next().unwrap_or(file);
    stem.replace('-', "_")
}

impl ModuleIndex {
    pub(super) fn load(dir: &Path) -> Result<ModuleIndex, LabError> {
        ensure_modules_dep(dir)?;
        let dep_path = dir.join("modules.dep");
        let dep = fs::read_to_string(&dep_path)
            .map_err(io_err(format!("reading {}", dep_path.display())))?;
        let builtin = fs::read_to_string(dir.join("modules.builtin")).unwrap_or_default();
        Ok(ModuleIndex::parse(dir, &dep, &builtin))
    }

    fn parse(dir: &Path, dep: &str, builtin: &str) -> ModuleIndex {
        let modules = dep
            .lines()
            .filter_map(|line| {
                let (path, deps) = line.split_once(':')?;
                let path = path.trim();
                let deps = deps.split_whitespace().map(module_name).collect();
                Some((module_name(path), (path.to_owned(), deps)))
            })
            .collect();
        let builtin = builtin
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(module_name)
            .collect();
        ModuleIndex {
            dir: dir.to_path_buf(),
            modules,
            builtin,
        }
    }

    /// Load order for `wanted`: dependencies first, each module once, built-in ones left out.
    pub(super) fn resolve(&self, wanted: &[&str]) -> Result<Vec<(String, PathBuf)>, LabError> {
        let mut order = Vec::new();
        let mut seen = HashSet::new();
        for w in wanted {
            let name = module_name(w.trim());
            if self.builtin.contains(&name) {
                continue;
            }
            if !self.modules.contains_key(&name) {
                let mut similar: Vec<&str> = self
                    .modules
                    .keys()
                    .filter(|k| k.contains(&name) || name.contains(k.as_str()))
                    .map(String::as_str)
                    .collect();
                similar.sort_unstable();
                similar.truncate(12);
                return Err(LabError::Module {
                    name: (*w).to_owned(),
                    reason: format!(
                        "not a module of the lab kernel ({}) nor built in{}",
                        self.dir.display(),
                        if similar.is_empty() {
                            String::new()
                        } else {
                            format!("; similar: {}", similar.join(" "))
                        }
                    ),
                });
            }
            self.visit(&name, &mut seen, &mut order);
        }
        Ok(order
            .into_iter()
            .map(|(n, p)| (n, self.dir.join(p)))
            .collect())
    }

    fn visit(&self, name: &str, seen: &mut HashSet<String>, order: &mut Vec<(String, String)>) {
        if self.builtin.contains(name) || !seen.insert(name.to_owned()) {
            return;
        }
        let Some((path, deps)) = self.modules.get(name) else {
            return;
        };
        // depmod lists a module's dependencies so that the last one loads first.
        for d in deps.iter().rev() {
            self.visit(d, seen, order);
        }
        order.push((name.to_owned(), path.clone()));
    }
}

/// `dpkg -x` does not run depmod, so an extracted kernel has no `modules.dep`:
/// write one (in depmod's format) from each module's `.modinfo` `depends=`.
pub(super) fn ensure_modules_dep(dir: &Path) -> Result<(), LabError> {
    let dep_path = dir.join("modules.dep");
    if dep_path.is_file() {
        return Ok(());
    }
    let mut files = Vec::new();
    collect_modules(&dir.join("kernel"), &mut files)?;
    let mut by_name: BTreeMap<String, (String, Vec<String>)> = BTreeMap::new();
    for file in &files {
        let rel = file
            .strip_prefix(dir)
            .unwrap_or(file)
            .to_string_lossy()
            .into_owned();
        let data = read_module(file)?;
        let deps = modinfo(&data, "depends")
            .map_err(|reason| LabError::Elf {
                path: file.clone(),
                reason,
            })?
            .map(|d| {
                d.split(',')
                    .map(str::trim)
                    .filter(|d| !d.is_empty())
                    .map(module_name)
                    .collect()
            })
            .unwrap_or_default();
        by_name.insert(module_name(&rel), (rel, deps));
    }
    let mut text = String::new();
    for (name, (rel, _)) in &by_name {
        let mut order = Vec::new();
        let mut seen = HashSet::new();
        closure(name, &by_name, &mut seen, &mut order);
        order.pop(); // the module itself
        let deps: Vec<&str> = order
            .iter()
            .rev()
            .filter_map(|d| by_name.get(d.as_str()).map(|(p, _)| p.as_str()))
            .collect();
        text.push_str(&format!(
            "{rel}:{}{}\n",
            if deps.is_empty() { "" } else { " " },
            deps.join(" ")
        ));
    }
    write_atomically(&dep_path, text.as_bytes())
}

fn closure(
    name: &str,
    all: &BTreeMap<String, (String, Vec<String>)>,
    seen: &mut HashSet<String>,
    order: &mut Vec<String>,
) {
    if !seen.insert(name.to_owned()) {
        return;
    }
    if let Some((_, deps)) = all.get(name) {
        for d in deps {
            closure(d, all, seen, order);
        }
    }
    order.push(name.to_owned());
}

fn collect_modules(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), LabError> {
    for e in fs::read_dir(dir).map_err(io_err(format!("reading {}", dir.display())))? {
        let path = e
            .map_err(io_err(format!("reading {}", dir.display())))?
            .path();
        if path.is_dir() {
            collect_modules(&path, out)?;
        } else if path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.contains(".ko"))
        {
            out.push(path);
        }
    }
    Ok(())
}

/// A module file's bytes, decompressed with the host's xz/zstd/gzip if needed.
pub(super) fn read_module(path: &Path) -> Result<Vec<u8>, LabError> {
    let name = path.to_string_lossy();
    let (tool, package) = if name.ends_with(".ko.xz") {
        ("xz", "xz-utils")
    } else if name.ends_with(".ko.zst") {
        ("zstd", "zstd")
    } else if name.ends_with(".ko.gz") {
        ("gzip", "gzip")
    } else {
        return fs::read(path).map_err(io_err(format!("reading {}", path.display())));
    };
    let tool = need_tool(tool, package)?;
    let out = Command::new(&tool)
        .arg("-dc")
        .arg(path)
        .stdin(Stdio::null())
        .output()
        .map_err(io_err(format!("decompressing {}", path.display())))?;
    if !out.status.success() {
        return Err(LabError::Command {
            command: format!("{} -dc {}", tool.display(), path.display()),
            status: out.status.to_string(),
            output: String::from_utf8_lossy(&out.stderr).into_owned(),
        });
    }
    Ok(out.stdout)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modules_resolve_in_dependency_order() {
        let dep = "kernel/fs/configfs/configfs.ko:\n\
                   kernel/drivers/nvme/target/nvmet.ko: kernel/fs/configfs/configfs.ko\n\
                   kernel/drivers/nvme/target/nvmet-tcp.ko: kernel/drivers/nvme/target/nvmet.ko kernel/fs/configfs/configfs.ko\n\
                   kernel/drivers/nvme/host/nvme-fabrics.ko:\n";
        let idx = ModuleIndex::parse(
            Path::new("/m"),
            dep,
            "kernel/drivers/nvme/host/nvme-core.ko\n",
        );
        let order = idx
            .resolve(&["nvmet-tcp", "nvme_core", "configfs", "nvme-fabrics"])
            .unwrap();
        let names: Vec<&str> = order.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["configfs", "nvmet", "nvmet_tcp", "nvme_fabrics"]);
        assert_eq!(
            order[2].1,
            Path::new("/m/kernel/drivers/nvme/target/nvmet-tcp.ko")
        );
        let err = idx.resolve(&["nvme-loop"]).unwrap_err().to_string();
        assert!(err.contains("nvme-loop"), "{err}");
    }
}
