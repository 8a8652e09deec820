//! Living with nvme-cli's udev rules (docs/behaviour.md §6.10).
//!
//! nvme-cli ships `70-nvmf-autoconnect.rules`, which runs `nvme connect-all`
//! on every Discovery Log Page Change AEN and `rediscover` event — racing
//! stacd and ignoring host-iface. stafd masks it with a same-named file in
//! /run/udev/rules.d (which takes precedence), keeping only nvme-cli's FC
//! rule, and forwards those events itself for the discovery controllers it
//! does not manage.

use std::path::{Path, PathBuf};

/// Where the override goes.
pub const OVERRIDE: &str = "/run/udev/rules.d/70-nvmf-autoconnect.rules";

/// The override file's content for `systemctl` at `systemctl` (upstream's
/// text, byte for byte: the escapes are literal).
pub fn override_rules(systemctl: &Path) -> String {
    format!(
        "\nACTION==\"change\", SUBSYSTEM==\"fc\", ENV{{FC_EVENT}}==\"nvmediscovery\", \\\n  ENV{{NVMEFC_HOST_TRADDR}}==\"*\",  ENV{{NVMEFC_TRADDR}}==\"*\", \\\n  RUN+=\"{} --no-block restart nvmf-connect@--device\\x3dnone\\x09--transport\\x3dfc\\x09--traddr\\x3d$env{{NVMEFC_TRADDR}}\\x09--trsvcid\\x3dnone\\x09--host-traddr\\x3d$env{{NVMEFC_HOST_TRADDR}}.service\"\n",
        systemctl.display()
    )
}

/// `systemctl` on PATH, if any.
pub fn find_systemctl() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("systemctl"))
        .find(|p| p.is_file())
}

/// Installs the override unless a file is already there. Returns whether
/// stafd wrote it.
pub fn install(path: &Path, systemctl: &Path) -> std::io::Result<bool> {
    if path.exists() {
        return Ok(false);
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, override_rules(systemctl))?;
    Ok(true)
}

/// Removes the override (at exit; a missing file is fine).
pub fn remove(path: &Path) {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => log::warn!("cannot remove {}: {e}", path.display()),
    }
}

/// The `nvmf-connect@` instance nvme-cli's rule would start for a DC event:
/// `--device=<dev>` plus host-traddr/host-iface when known, joined by the
/// 4-character text `\x09` (systemd-escaped tab).
pub fn connect_instance(
    device: &str,
    host_traddr: Option<&str>,
    host_iface: Option<&str>,
) -> String {
    let known = |v: Option<&str>| {
        v.filter(|v| !v.is_empty() && !v.eq_ignore_ascii_case("none"))
            .map(str::to_owned)
    };
    let mut parts = vec![format!("--device\\x3d{device}")];
    if let Some(t) = known(host_traddr) {
        parts.push(format!("--host-traddr\\x3d{t}"));
    }
    if let Some(i) = known(host_iface) {
        parts.push(format!("--host-iface\\x3d{i}"));
    }
    parts.join("\\x09")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn override_text_matches_upstream() {
        let t = override_rules(Path::new("/usr/bin/systemctl"));
        assert!(t.starts_with(
            "\nACTION==\"change\", SUBSYSTEM==\"fc\", ENV{FC_EVENT}==\"nvmediscovery\", \\\n"
        ));
        assert!(t.contains("  ENV{NVMEFC_HOST_TRADDR}==\"*\",  ENV{NVMEFC_TRADDR}==\"*\", \\\n"));
        assert!(t.contains("RUN+=\"/usr/bin/systemctl --no-block restart nvmf-connect@--device\\x3dnone\\x09--transport\\x3dfc\\x09"));
        assert!(t.ends_with(".service\"\n"));
    }

    #[test]
    fn install_keeps_an_existing_file_and_remove_is_quiet() {
        let dir = std::env::temp_dir().join(format!("stafd-udev-{}", std::process::id()));
        let path = dir.join("rules.d/70-nvmf-autoconnect.rules");
        let _ = std::fs::remove_dir_all(&dir);
        assert!(install(&path, Path::new("/bin/systemctl")).unwrap());
        assert!(
            !install(&path, Path::new("/bin/systemctl")).unwrap(),
            "already there"
        );
        remove(&path);
        assert!(!path.exists());
        remove(&path);
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn instance_text() {
        assert_eq!(
            connect_instance("nvme3", None, Some("none")),
            "--device\\x3dnvme3"
        );
        assert_eq!(
            connect_instance("nvme3", Some("10.0.0.5"), Some("eth0")),
            "--device\\x3dnvme3\\x09--host-traddr\\x3d10.0.0.5\\x09--host-iface\\x3deth0"
        );
    }
}
