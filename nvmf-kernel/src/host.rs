//! Host identity: `/etc/nvme/hostnqn` and `/etc/nvme/hostid`, how libnvme
//! generates a host ID (docs/kernel-interface.md §1.9), and how nvme-stas's
//! `stasadm hostnqn` and `stasadm hostid` generate theirs
//! (docs/behaviour.md §12.5).

use std::io::Read;
use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use nvmf_proto::dim::{format_uuid, parse_uuid};
use sha2::Sha256;

use crate::{KernelError, KernelPaths};

/// The NQN prefix of a UUID-based host NQN.
pub const UUID_NQN_PREFIX: &str = "nqn.2014-08.org.nvmexpress:uuid:";

/// The HMAC key nvme-stas uses for machine-specific host UUIDs.
const APP_KEY: &[u8; 16] = b"$nvmexpress.org$";

/// Why nvme-stas's host NQN could not be generated.
#[derive(Debug, thiserror::Error)]
pub enum HostNqnError {
    /// There is no usable machine id, and only root may read the hardware
    /// ids that come next (upstream's message).
    #[error("Permission denied. Root privileges required.")]
    NotRoot,
    /// Reading the random source, the last resort, failed.
    #[error(transparent)]
    Random(#[from] KernelError),
}

/// Where a generated host ID came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostIdSource {
    /// DMI `product_uuid` (x86 firmware).
    Dmi,
    /// The device tree's partition UUID (PowerPC LPARs).
    DeviceTree,
    /// Random (no stable hardware id).
    Random,
}

/// Host identity files and generation, under `paths`.
#[derive(Debug, Clone)]
pub struct HostIdentity {
    paths: KernelPaths,
}

/// The first line of a small identity file (a regular file of at most
/// 64 KiB; anything else is an error naming it).
fn first_line(path: &PathBuf) -> Result<Option<String>, KernelError> {
    use crate::files::{read_bounded, FileError, Links};
    match read_bounded(path, 64 << 10, Links::Follow) {
        Ok(Some(b)) => Ok(String::from_utf8_lossy(&b)
            .lines()
            .next()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_owned)),
        Ok(None) => Ok(None),
        Err(FileError::Io { source, .. }) => Err(KernelError::io("read", path, source)),
        Err(FileError::Refused { reason, .. }) => Err(KernelError::io(
            "read",
            path,
            std::io::Error::new(std::io::ErrorKind::InvalidData, reason),
        )),
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

/// Makes 16 random bytes a version 4, RFC 4122 variant UUID.
fn set_v4(id: &mut [u8; 16]) {
    id[6] = 0x40 | (id[6] & 0x0f);
    id[8] = 0x80 | (id[8] & 0x3f);
}

/// The machine-specific host UUID of nvme-stas: HMAC-SHA256 keyed with
/// `$nvmexpress.org$` over the 16 bytes of the machine id, cut to 16
/// bytes, made version 4.
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
/// swapped, case kept (`AABBCCDD-EEFF-GGHH-...` -> `DDCCBBAA-FFEE-HHGG-...`),
/// as nvme-stas does.
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

/// A host ID from DMI's product_uuid, unless it is one of the placeholder
/// values firmware writes when it has none.
fn usable_uuid(text: &str) -> Option<String> {
    let id = parse_uuid(text).ok()?;
    if id.iter().all(|&b| b == 0) || id.iter().all(|&b| b == 0xff) {
        return None;
    }
    Some(format_uuid(&id))
}

impl HostIdentity {
    /// Identity files under `paths.etc/nvme`, hardware ids under `paths.sys`.
    pub fn new(paths: &KernelPaths) -> Self {
        Self {
            paths: paths.clone(),
        }
    }

    /// `/etc/nvme/hostnqn`.
    pub fn hostnqn_path(&self) -> PathBuf {
        self.paths.etc.join("nvme/hostnqn")
    }

    /// `/etc/nvme/hostid`.
    pub fn hostid_path(&self) -> PathBuf {
        self.paths.etc.join("nvme/hostid")
    }

    /// The configured host NQN (first line of the file), if any.
    pub fn hostnqn(&self) -> Result<Option<String>, KernelError> {
        first_line(&self.hostnqn_path())
    }

    /// The configured host ID, if any.
    pub fn hostid(&self) -> Result<Option<String>, KernelError> {
        first_line(&self.hostid_path())
    }

    /// `/etc/machine-id` (systemd's).
    pub fn machine_id_path(&self) -> PathBuf {
        self.paths.etc.join("machine-id")
    }

    /// DMI's `product_uuid` (x86 firmware).
    fn dmi_uuid_path(&self) -> PathBuf {
        self.paths.sys.join("class/dmi/id/product_uuid")
    }

    /// The device tree's partition UUID (PowerPC LPARs); nvme-stas reads it
    /// through `/proc/device-tree`, a link to this directory.
    fn device_tree_uuid_path(&self) -> PathBuf {
        self.paths
            .sys
            .join("firmware/devicetree/base/ibm,partition-uuid")
    }

    /// A random version 4 UUID, from `/dev/urandom`; what `stasadm hostid`
    /// saves, and libnvme's last resort for a host ID.
    pub fn random_hostid(&self) -> Result<String, KernelError> {
        let urandom = self.paths.dev.join("urandom");
        let mut id = [0u8; 16];
        std::fs::File::open(&urandom)
            .and_then(|mut f| f.read_exact(&mut id))
            .map_err(|e| KernelError::io("read", &urandom, e))?;
        set_v4(&mut id);
        Ok(format_uuid(&id))
    }

    /// A host ID the way libnvme makes one: DMI product_uuid, else the device
    /// tree's partition UUID, else random (version 4).
    pub fn generate_hostid(&self) -> Result<(String, HostIdSource), KernelError> {
        if let Ok(Some(id)) =
            first_line(&self.dmi_uuid_path()).map(|l| l.and_then(|t| usable_uuid(&t)))
        {
            return Ok((id, HostIdSource::Dmi));
        }
        if let Ok(Some(id)) = first_line(&self.device_tree_uuid_path())
            .map(|l| l.and_then(|t| usable_uuid(t.trim_end_matches('\0'))))
        {
            return Ok((id, HostIdSource::DeviceTree));
        }
        Ok((self.random_hostid()?, HostIdSource::Random))
    }

    /// The host NQN nvme-stas's `stasadm hostnqn` generates: from the
    /// machine id ([`machine_app_uuid`]); else, for root only, the swapped
    /// DMI UUID ([`swap_dmi_uuid`]), the device tree's partition UUID, or a
    /// random one. Unlike libnvme's host ID, the DMI UUID keeps its case and
    /// placeholder UUIDs are not skipped (upstream's rules).
    pub fn generate_hostnqn(&self, is_root: bool) -> Result<String, HostNqnError> {
        let uuid = match read_exactly(&self.machine_id_path(), 32)
            .and_then(|m| machine_app_uuid(&m))
        {
            Some(u) => u,
            None if !is_root => return Err(HostNqnError::NotRoot),
            None => match read_exactly(&self.dmi_uuid_path(), 36).and_then(|d| swap_dmi_uuid(&d)) {
                Some(u) => u,
                None => match read_exactly(&self.device_tree_uuid_path(), 36) {
                    Some(u) => u,
                    None => self.random_hostid()?,
                },
            },
        };
        Ok(format!("{UUID_NQN_PREFIX}{uuid}"))
    }
}

/// Whether the process runs as root (effective UID 0).
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// The host name (`/proc/sys/kernel/hostname`), as DIM's ENAME.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

/// The OS description DIM registration sends as EVER: kernel type and
/// release, and os-release's NAME and VERSION_ID (libnvme's format).
pub fn entity_version(paths: &KernelPaths) -> String {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let os_release = std::fs::read_to_string(paths.etc.join("os-release")).unwrap_or_default();
    let field = |key: &str| {
        os_release
            .lines()
            .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
            .map(str::to_owned)
    };
    nvmf_proto::dim::entity_version(
        &read("/proc/sys/kernel/ostype"),
        &read("/proc/sys/kernel/osrelease"),
        field("NAME").as_deref(),
        field("VERSION_ID").as_deref(),
    )
}

/// The host NQN libnvme derives from a host ID.
pub fn hostnqn_from_hostid(hostid: &str) -> String {
    format!("{UUID_NQN_PREFIX}{hostid}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(tag: &str) -> PathBuf {
        let root =
            std::env::temp_dir().join(format!("nvmf-kernel-host-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("dev")).unwrap();
        std::fs::write(root.join("dev/urandom"), [0xabu8; 64]).unwrap();
        root
    }

    #[test]
    fn reads_first_line_and_absent_is_none() {
        let root = tree("read");
        let h = HostIdentity::new(&KernelPaths::under(&root));
        assert_eq!(h.hostnqn().unwrap(), None);
        std::fs::create_dir_all(root.join("etc/nvme")).unwrap();
        std::fs::write(
            root.join("etc/nvme/hostnqn"),
            "nqn.2014-08.org.nvmexpress:uuid:abc\nsecond\n",
        )
        .unwrap();
        std::fs::write(root.join("etc/nvme/hostid"), "  \n").unwrap();
        assert_eq!(
            h.hostnqn().unwrap().as_deref(),
            Some("nqn.2014-08.org.nvmexpress:uuid:abc")
        );
        assert_eq!(h.hostid().unwrap(), None, "a blank file is no id");
        std::fs::remove_dir_all(&root).ok();
    }

    #[test]
    fn generation_prefers_dmi_then_device_tree_then_random() {
        let root = tree("gen");
        let h = HostIdentity::new(&KernelPaths::under(&root));
        let (id, src) = h.generate_hostid().unwrap();
        assert_eq!(src, HostIdSource::Random);
        assert_eq!(id, "abababab-abab-4bab-abab-abababababab");

        std::fs::create_dir_all(root.join("sys/firmware/devicetree/base")).unwrap();
        std::fs::write(
            root.join("sys/firmware/devicetree/base/ibm,partition-uuid"),
            "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0\0",
        )
        .unwrap();
        assert_eq!(
            h.generate_hostid().unwrap(),
            (
                "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0".into(),
                HostIdSource::DeviceTree
            )
        );

        std::fs::create_dir_all(root.join("sys/class/dmi/id")).unwrap();
        std::fs::write(
            root.join("sys/class/dmi/id/product_uuid"),
            "00000000-0000-0000-0000-000000000000\n",
        )
        .unwrap();
        assert_eq!(
            h.generate_hostid().unwrap().1,
            HostIdSource::DeviceTree,
            "placeholder DMI id skipped"
        );
        std::fs::write(
            root.join("sys/class/dmi/id/product_uuid"),
            "4C4C4544-0034-1036-8038-B2C04F313233\n",
        )
        .unwrap();
        assert_eq!(
            h.generate_hostid().unwrap(),
            (
                "4c4c4544-0034-1036-8038-b2c04f313233".into(),
                HostIdSource::Dmi
            )
        );
        std::fs::remove_dir_all(&root).ok();
    }

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

    #[test]
    fn nqn_sources_in_order() {
        let root = tree("nqn");
        std::fs::write(root.join("dev/urandom"), [0x11u8; 64]).unwrap();
        let h = HostIdentity::new(&KernelPaths::under(&root));
        assert!(
            matches!(h.generate_hostnqn(false), Err(HostNqnError::NotRoot)),
            "no machine id and not root"
        );
        assert_eq!(
            h.generate_hostnqn(true).unwrap(),
            "nqn.2014-08.org.nvmexpress:uuid:11111111-1111-4111-9111-111111111111"
        );
        std::fs::create_dir_all(root.join("sys/firmware/devicetree/base")).unwrap();
        std::fs::write(
            root.join("sys/firmware/devicetree/base/ibm,partition-uuid"),
            "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0",
        )
        .unwrap();
        assert!(h
            .generate_hostnqn(true)
            .unwrap()
            .ends_with("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"));
        std::fs::create_dir_all(root.join("sys/class/dmi/id")).unwrap();
        std::fs::write(
            root.join("sys/class/dmi/id/product_uuid"),
            "4C4C4544-0034-1036-8038-B2C04F313233\n",
        )
        .unwrap();
        assert!(h
            .generate_hostnqn(true)
            .unwrap()
            .ends_with("44454C4C-3400-3610-8038-B2C04F313233"));
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::write(
            root.join("etc/machine-id"),
            "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n",
        )
        .unwrap();
        assert_eq!(
            h.generate_hostnqn(false).unwrap(),
            "nqn.2014-08.org.nvmexpress:uuid:3da64a01-16c5-4e10-ac46-397e2372b964"
        );
        std::fs::remove_dir_all(&root).ok();
    }

    #[test]
    fn nqn_from_id() {
        assert_eq!(
            hostnqn_from_hostid("4c4c4544-0034-1036-8038-b2c04f313233"),
            "nqn.2014-08.org.nvmexpress:uuid:4c4c4544-0034-1036-8038-b2c04f313233"
        );
    }
}
