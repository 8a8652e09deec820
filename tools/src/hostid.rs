//! `stasadm hostnqn|hostid|set-symname|clear-symname`: host identity for
//! sys.conf, with nvme-stas's rules and file effects (docs/behaviour.md
//! §12.5).

use std::io::Read;
use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use nvmf_proto::dim::format_uuid;
use sha2::Sha256;

/// The HMAC key nvme-stas uses for machine-specific host UUIDs.
const APP_KEY: &[u8; 16] = b"$nvmexpress.org$";

/// Where the host's identifiers are read from (injectable for tests).
#[derive(Debug, Clone)]
pub struct Sources {
    /// `/etc/machine-id`.
    pub machine_id: PathBuf,
    /// `/sys/class/dmi/id/product_uuid`.
    pub dmi_uuid: PathBuf,
    /// `/proc/device-tree/ibm,partition-uuid`.
    pub device_tree_uuid: PathBuf,
    /// `/dev/urandom`.
    pub urandom: PathBuf,
}

impl Default for Sources {
    fn default() -> Self {
        Self {
            machine_id: "/etc/machine-id".into(),
            dmi_uuid: "/sys/class/dmi/id/product_uuid".into(),
            device_tree_uuid: "/proc/device-tree/ibm,partition-uuid".into(),
            urandom: "/dev/urandom".into(),
        }
    }
}

/// Reads at most `n` bytes; Some only if exactly `n` were there ("yields N
/// characters" in nvme-stas).
fn read_exactly(path: &Path, n: usize) -> Option<String> {
    let f = std::fs::File::open(path).ok()?;
    let mut buf = Vec::with_capacity(n);
    f.take(u64::try_from(n).ok()?).read_to_end(&mut buf).ok()?;
    (buf.len() == n)
        .then(|| String::from_utf8(buf).ok())
        .flatten()
}

fn set_v4(id: &mut [u8; 16]) {
    id[6] = 0x40 | (id[6] & 0x0f);
    id[8] = 0x80 | (id[8] & 0x3f);
}

/// The machine-specific host UUID: HMAC-SHA256 keyed with `$nvmexpress.org$`
/// over the 16 bytes of the machine id, cut to 16 bytes, made version 4.
pub fn machine_app_uuid(machine_id: &str) -> Option<String> {
    let hex = machine_id.trim();
    if hex.len() != 32 {
        return None;
    }
    let mut msg = [0u8; 16];
    for (i, b) in msg.iter_mut().enumerate() {
        *b = u8::from_str_radix(hex.get(i * 2..i * 2 + 2)?, 16).ok()?;
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(APP_KEY).ok()?;
    mac.update(&msg);
    let digest = mac.finalize().into_bytes();
    let mut id = [0u8; 16];
    id.copy_from_slice(digest.get(..16)?);
    set_v4(&mut id);
    Some(format_uuid(&id))
}

/// DMI's product UUID with the byte order of its first three groups
/// swapped, case kept (`AABBCCDD-EEFF-GGHH-...` -> `DDCCBBAA-FFEE-HHGG-...`).
pub fn swap_dmi_uuid(text: &str) -> Option<String> {
    let groups: Vec<&str> = text.split('-').collect();
    let [a, b, c, d, e] = groups.as_slice() else {
        return None;
    };
    let swap = |g: &str| -> Option<String> {
        let pairs: Vec<&str> = (0..g.len() / 2)
            .map(|i| g.get(i * 2..i * 2 + 2))
            .collect::<Option<_>>()?;
        Some(pairs.into_iter().rev().collect())
    };
    Some(format!("{}-{}-{}-{d}-{e}", swap(a)?, swap(b)?, swap(c)?))
}

/// A random version 4 UUID.
pub fn random_uuid(src: &Sources) -> std::io::Result<String> {
    let mut id = [0u8; 16];
    std::fs::File::open(&src.urandom)?.read_exact(&mut id)?;
    set_v4(&mut id);
    Ok(format_uuid(&id))
}

/// Why a host NQN could not be made.
#[derive(Debug, PartialEq, Eq)]
pub enum NqnError {
    /// Only root may read the hardware ids needed.
    NotRoot,
    /// Reading the random source failed.
    Io(String),
}

/// The host NQN nvme-stas's `stasadm hostnqn` generates: from the machine
/// id; else (root only) the swapped DMI UUID, the device tree's partition
/// UUID, or a random one.
pub fn host_nqn(src: &Sources, is_root: bool) -> Result<String, NqnError> {
    let uuid = match read_exactly(&src.machine_id, 32).and_then(|m| machine_app_uuid(&m)) {
        Some(u) => u,
        None if !is_root => return Err(NqnError::NotRoot),
        None => match read_exactly(&src.dmi_uuid, 36).and_then(|d| swap_dmi_uuid(&d)) {
            Some(u) => u,
            None => match read_exactly(&src.device_tree_uuid, 36) {
                Some(u) => u,
                None => random_uuid(src).map_err(|e| NqnError::Io(e.to_string()))?,
            },
        },
    };
    Ok(format!("nqn.2014-08.org.nvmexpress:uuid:{uuid}"))
}

/// A section's options and their (last) values.
type Options = Vec<(String, Option<String>)>;

/// Rewrites `conf` (sys.conf) with `key` in `[Host]` set to `value`, or
/// removed when `None`, the way nvme-stas's stasadm does: the existing
/// sections and keys are kept (comments are not), written as `[Section]` and
/// `key = value` lines with a blank line after each section.
pub fn update_conf(conf: &Path, key: &str, value: Option<&str>) -> Result<(), String> {
    let text = match std::fs::read_to_string(conf) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(format!("cannot read {}: {e}", conf.display())),
    };
    let ini = stas_config::ini::Ini::parse(&text, &conf.display().to_string())
        .map_err(|e| e.to_string())?;
    let mut sections: Vec<(String, Options)> = ini
        .sections()
        .iter()
        .map(|s| {
            let opts = s
                .options
                .iter()
                .map(|o| (o.name.clone(), o.last().and_then(|v| v.text.clone())))
                .collect();
            (s.name.clone(), opts)
        })
        .collect();
    if !sections.iter().any(|(n, _)| n == "Host") {
        sections.push(("Host".into(), Vec::new()));
    }
    for (name, opts) in &mut sections {
        if name != "Host" {
            continue;
        }
        opts.retain(|(k, _)| k != key);
        if let Some(v) = value {
            opts.push((key.to_owned(), Some(v.to_owned())));
        }
    }
    let mut out = String::new();
    for (name, opts) in &sections {
        out.push_str(&format!("[{name}]\n"));
        for (k, v) in opts {
            match v {
                Some(v) => out.push_str(&format!("{k} = {v}\n")),
                None => out.push_str(&format!("{k}\n")),
            }
        }
        out.push('\n');
    }
    std::fs::write(conf, out).map_err(|e| format!("cannot write {}: {e}", conf.display()))
}

/// Saves `value` under `key`: into `file` (value + newline) when given, and
/// into `conf` as the value itself or `file://<file>`.
pub fn save(conf: &Path, key: &str, value: &str, file: Option<&Path>) -> Result<(), String> {
    if let Some(f) = file {
        std::fs::write(f, format!("{value}\n"))
            .map_err(|e| format!("cannot write {}: {e}", f.display()))?;
    }
    if conf.as_os_str().is_empty() {
        return Ok(());
    }
    let stored = file.map_or_else(|| value.to_owned(), |f| format!("file://{}", f.display()));
    update_conf(conf, key, Some(&stored))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn machine_specific_uuids_match_nvme_stas() {
        assert_eq!(
            machine_app_uuid("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa").as_deref(),
            Some("3da64a01-16c5-4e10-ac46-397e2372b964")
        );
        assert_eq!(
            machine_app_uuid("0123456789abcdef0123456789abcdef").as_deref(),
            Some("f2782346-4809-484a-9a8b-952a04b57ba4")
        );
        assert_eq!(machine_app_uuid("short"), None);
        assert_eq!(machine_app_uuid("zz23456789abcdef0123456789abcdef"), None);
    }

    #[test]
    fn dmi_uuid_is_byte_swapped() {
        assert_eq!(
            swap_dmi_uuid("4C4C4544-0034-1036-8038-B2C04F313233").as_deref(),
            Some("44454C4C-3400-3610-8038-B2C04F313233")
        );
        assert_eq!(swap_dmi_uuid("nope"), None);
    }

    fn tmp(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("stasadm-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn nqn_sources_in_order() {
        let d = tmp("src");
        std::fs::write(d.join("urandom"), [0x11u8; 64]).unwrap();
        let src = Sources {
            machine_id: d.join("machine-id"),
            dmi_uuid: d.join("product_uuid"),
            device_tree_uuid: d.join("partition-uuid"),
            urandom: d.join("urandom"),
        };
        assert_eq!(
            host_nqn(&src, false),
            Err(NqnError::NotRoot),
            "no machine id and not root"
        );
        assert_eq!(
            host_nqn(&src, true).unwrap(),
            "nqn.2014-08.org.nvmexpress:uuid:11111111-1111-4111-9111-111111111111"
        );
        std::fs::write(
            d.join("partition-uuid"),
            "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0",
        )
        .unwrap();
        assert!(host_nqn(&src, true)
            .unwrap()
            .ends_with("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"));
        std::fs::write(
            d.join("product_uuid"),
            "4C4C4544-0034-1036-8038-B2C04F313233\n",
        )
        .unwrap();
        assert!(host_nqn(&src, true)
            .unwrap()
            .ends_with("44454C4C-3400-3610-8038-B2C04F313233"));
        std::fs::write(d.join("machine-id"), "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n").unwrap();
        assert_eq!(
            host_nqn(&src, false).unwrap(),
            "nqn.2014-08.org.nvmexpress:uuid:3da64a01-16c5-4e10-ac46-397e2372b964"
        );
        std::fs::remove_dir_all(&d).ok();
    }

    #[test]
    fn save_and_remove_with_nvme_stas_file_effects() {
        let d = tmp("save");
        let conf = d.join("sys.conf");
        save(&conf, "nqn", "my-nqn", None).unwrap();
        assert_eq!(
            std::fs::read_to_string(&conf).unwrap(),
            "[Host]\nnqn = my-nqn\n\n"
        );
        let file = d.join("hostid");
        save(
            &conf,
            "id",
            "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0",
            Some(&file),
        )
        .unwrap();
        assert_eq!(
            std::fs::read_to_string(&file).unwrap(),
            "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0\n"
        );
        assert_eq!(
            std::fs::read_to_string(&conf).unwrap(),
            format!("[Host]\nnqn = my-nqn\nid = file://{}\n\n", file.display())
        );
        update_conf(&conf, "nqn", None).unwrap();
        assert_eq!(
            std::fs::read_to_string(&conf).unwrap(),
            format!("[Host]\nid = file://{}\n\n", file.display())
        );
        // Other sections survive; comments do not (as upstream).
        std::fs::write(&conf, "# c\n[Other]\nx = 1\n").unwrap();
        save(&conf, "symname", "rack7", None).unwrap();
        assert_eq!(
            std::fs::read_to_string(&conf).unwrap(),
            "[Other]\nx = 1\n\n[Host]\nsymname = rack7\n\n"
        );
        // Only the file, no conf.
        save(Path::new(""), "nqn", "x", Some(&d.join("only"))).unwrap();
        assert_eq!(std::fs::read_to_string(d.join("only")).unwrap(), "x\n");
        std::fs::remove_dir_all(&d).ok();
    }
}
