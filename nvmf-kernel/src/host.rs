//! Host identity: `/etc/nvme/hostnqn` and `/etc/nvme/hostid`, and how
//! libnvme generates them (docs/kernel-interface.md §1.9).

use std::io::Read;
use std::path::PathBuf;

use nvmf_proto::dim::{format_uuid, parse_uuid};

use crate::{KernelError, KernelPaths};

/// The NQN prefix of a UUID-based host NQN.
pub const UUID_NQN_PREFIX: &str = "nqn.2014-08.org.nvmexpress:uuid:";

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

    /// A host ID the way libnvme makes one: DMI product_uuid, else the device
    /// tree's partition UUID, else random (version 4).
    pub fn generate_hostid(&self) -> Result<(String, HostIdSource), KernelError> {
        let dmi = self.paths.sys.join("class/dmi/id/product_uuid");
        if let Ok(Some(id)) = first_line(&dmi).map(|l| l.and_then(|t| usable_uuid(&t))) {
            return Ok((id, HostIdSource::Dmi));
        }
        let dt = self
            .paths
            .sys
            .join("firmware/devicetree/base/ibm,partition-uuid");
        if let Ok(Some(id)) =
            first_line(&dt).map(|l| l.and_then(|t| usable_uuid(t.trim_end_matches('\0'))))
        {
            return Ok((id, HostIdSource::DeviceTree));
        }
        let urandom = self.paths.dev.join("urandom");
        let mut id = [0u8; 16];
        std::fs::File::open(&urandom)
            .and_then(|mut f| f.read_exact(&mut id))
            .map_err(|e| KernelError::io("read", &urandom, e))?;
        id[6] = (id[6] & 0x0f) | 0x40; // version 4
        id[8] = (id[8] & 0x3f) | 0x80; // RFC 4122 variant
        Ok((format_uuid(&id), HostIdSource::Random))
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
    fn nqn_from_id() {
        assert_eq!(
            hostnqn_from_hostid("4c4c4544-0034-1036-8038-b2c04f313233"),
            "nqn.2014-08.org.nvmexpress:uuid:4c4c4544-0034-1036-8038-b2c04f313233"
        );
    }
}
